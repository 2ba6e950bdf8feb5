//! The only module that knows LSP: capabilities, methods, position encoding.
//! Handlers take a cheap snapshot under a short lock and never hold a lock
//! across an `.await`. One file per kind of request: `documents` (sync),
//! `completion`, `commands` (code actions, explain, refactor), work started
//! in the `background`, and the server's `state`.

use std::sync::Arc;

use tower_lsp_server::jsonrpc::{Error as RpcError, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService, Server};

use crate::config::Config;
use crate::documents::{Encoding, Pos};
use crate::engine::Engine;
use crate::index::{IndexLimits, WorkspaceIndex};
use state::{ItemsRegistration, ModelState, State};

mod background;
mod commands;
mod completion;
mod documents;
mod input;
mod state;

pub struct Backend {
    client: Client,
    state: Arc<State>,
}

/// Runs the server on stdin/stdout until the client exits.
pub async fn serve_stdio(config: Config) {
    serve(config, tokio::io::stdin(), tokio::io::stdout()).await
}

/// Runs the server on any byte streams (stdio, or in-memory pipes in tests)
/// until the client exits.
pub async fn serve<I, O>(config: Config, stdin: I, stdout: O)
where
    I: tokio::io::AsyncRead + Unpin,
    O: tokio::io::AsyncWrite,
{
    let engine = Engine::spawn();
    let engine_handle = engine.clone();
    let (service, socket) = LspService::build(|client| Backend { client, state: Arc::new(State::new(config, engine)) })
        .custom_method("textDocument/inlineCompletion", Backend::inline_completion)
        .custom_method("locode/documentState", Backend::document_state)
        .custom_method("locode/lastStats", Backend::last_stats)
        .custom_method("locode/status", Backend::status)
        .custom_method(input::REJECTED, Backend::rejected_message)
        .finish();
    // Messages are handled in order, but at most this many at once: a
    // request waiting on the engine holds its place, and with the library's
    // default of 4, a few completions in flight would hold up every
    // `didChange` and `$/cancelRequest` behind them.
    Server::new(input::CheckedInput::new(stdin), stdout, socket).concurrency_level(MAX_CONCURRENT_MESSAGES).serve(service).await;
    // The session is over: free the model before the process exits, but do
    // not hang on a request the engine is still finishing.
    let shutdown = tokio::task::spawn_blocking(move || engine_handle.shutdown());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), shutdown).await;
    crate::commands::explain::cleanup();
}

/// Messages handled at once (requests in flight, mostly completions waiting
/// for the engine; superseded ones finish as soon as the engine sees it).
const MAX_CONCURRENT_MESSAGES: usize = 256;

fn to_pos(p: Position) -> Pos {
    Pos::new(p.line, p.character)
}

fn invalid_params(msg: impl std::fmt::Display) -> RpcError {
    RpcError::invalid_params(msg.to_string())
}

/// Characters after which a client without ghost text (Helix) asks for
/// items by itself: where code goes on after a member access, an opening
/// bracket, a separator, an assignment or a space. Without them such a
/// client asks only after a word's first letters or a manual trigger.
const TRIGGER_CHARACTERS: [&str; 8] = [".", "(", "[", "{", ",", ":", "=", " "];

/// What the server says of its completion items (static or registered).
/// Only clients that get items see it: a client with ghost text gets no
/// `completionProvider` in `auto`, so no trigger characters either.
fn completion_options() -> CompletionOptions {
    CompletionOptions {
        resolve_provider: Some(false),
        trigger_characters: Some(TRIGGER_CHARACTERS.iter().map(|c| c.to_string()).collect()),
        ..Default::default()
    }
}

/// The id of the dynamic registration of `textDocument/completion`.
const ITEMS_REGISTRATION_ID: &str = "locode/completionItems";

impl Backend {
    fn encoding(&self) -> Encoding {
        *self.state.encoding.read().unwrap()
    }

    /// After a settings change: registers the completion-item provider when
    /// `completionItems` now offers items and it is not registered, or
    /// withdraws a dynamic registration when it no longer does (clients
    /// that register dynamically; the others keep what `initialize` said,
    /// and items requests are answered with nothing while they are off).
    async fn register_items(&self) {
        if !*self.state.client_items_dynamic.read().unwrap() {
            return;
        }
        let offered = self.state.items_offered();
        let now = *self.state.items_registration.lock().unwrap();
        match (offered, now) {
            (true, ItemsRegistration::None) => {
                let options = TextDocumentRegistrationOptions { document_selector: None };
                let mut value = serde_json::to_value(completion_options()).unwrap_or_default();
                if let (Some(v), Ok(serde_json::Value::Object(sel))) = (value.as_object_mut(), serde_json::to_value(options)) {
                    v.extend(sel);
                }
                let r = Registration {
                    id: ITEMS_REGISTRATION_ID.into(),
                    method: "textDocument/completion".into(),
                    register_options: Some(value),
                };
                if self.client.register_capability(vec![r]).await.is_ok() {
                    *self.state.items_registration.lock().unwrap() = ItemsRegistration::Dynamic;
                }
            }
            (false, ItemsRegistration::Dynamic) => {
                let u = Unregistration { id: ITEMS_REGISTRATION_ID.into(), method: "textDocument/completion".into() };
                if self.client.unregister_capability(vec![u]).await.is_ok() {
                    *self.state.items_registration.lock().unwrap() = ItemsRegistration::None;
                }
            }
            _ => {}
        }
    }

    /// The stand-in for a message the input filter dropped (over the size
    /// limit): an error to its sender, and a message for the user, since a
    /// notification has no answer.
    async fn rejected_message(&self, params: Rejected) -> Result<serde_json::Value> {
        self.client.show_message(MessageType::ERROR, &params.reason).await;
        Err(RpcError { code: tower_lsp_server::jsonrpc::ErrorCode::InvalidRequest, message: params.reason.into(), data: None })
    }
}

#[derive(serde::Deserialize)]
struct Rejected {
    reason: String,
}

/// Does the client ask again when told `locode/suggestionReady`?
fn asks_again(caps: &ClientCapabilities) -> bool {
    caps.experimental.as_ref().and_then(|e| e.pointer("/locode/suggestionReady")).and_then(serde_json::Value::as_bool).unwrap_or(false)
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let offered = params.capabilities.general.as_ref().and_then(|g| g.position_encodings.clone()).unwrap_or_default();
        let (enc, kind) = if offered.contains(&PositionEncodingKind::UTF8) {
            (Encoding::Utf8, PositionEncodingKind::UTF8)
        } else if offered.contains(&PositionEncodingKind::UTF32) {
            (Encoding::Utf32, PositionEncodingKind::UTF32)
        } else {
            (Encoding::Utf16, PositionEncodingKind::UTF16)
        };
        *self.state.encoding.write().unwrap() = enc;
        *self.state.client_progress.write().unwrap() =
            params.capabilities.window.as_ref().and_then(|w| w.work_done_progress).unwrap_or(false);
        *self.state.client_asks_again.write().unwrap() = asks_again(&params.capabilities);
        let text_caps = params.capabilities.text_document.as_ref();
        *self.state.client_inline.write().unwrap() = text_caps.is_some_and(|t| t.inline_completion.is_some());
        *self.state.client_items_dynamic.write().unwrap() =
            text_caps.and_then(|t| t.completion.as_ref()).and_then(|c| c.dynamic_registration).unwrap_or(false);
        if let Some(opts) = &params.initialization_options {
            // The model loads on `initialized`, whatever changed.
            if let (_, Some(e)) = self.apply_settings(opts) {
                self.client.log_message(MessageType::ERROR, format!("locode: {e}")).await;
                self.client.show_message(MessageType::ERROR, format!("locode: {e}")).await;
            }
        }
        #[allow(deprecated)]
        let mut roots: Vec<std::path::PathBuf> = match (&params.workspace_folders, &params.root_uri) {
            (Some(folders), _) if !folders.is_empty() => {
                folders.iter().filter_map(|f| f.uri.to_file_path().map(|p| p.into_owned())).collect()
            }
            (_, Some(root)) => root.to_file_path().map(|p| p.into_owned()).into_iter().collect(),
            _ => Vec::new(),
        };
        roots.retain(|r| r.is_dir());
        let items = self.state.items_offered();
        if items {
            *self.state.items_registration.lock().unwrap() = ItemsRegistration::Static;
        }
        if !roots.is_empty() && self.state.config.read().unwrap().completion.cross_file_chars > 0 {
            let index = WorkspaceIndex::new(roots, IndexLimits::default());
            index.set_refuse_files(self.state.config.read().unwrap().commands.cloud.refuse_files.clone());
            index.spawn_build();
            *self.state.index.write().unwrap() = Some(index);
        }
        Ok(InitializeResult {
            server_info: Some(ServerInfo { name: "locode".into(), version: Some(env!("CARGO_PKG_VERSION").into()) }),
            capabilities: ServerCapabilities {
                position_encoding: Some(kind),
                text_document_sync: Some(TextDocumentSyncCapability::Options(TextDocumentSyncOptions {
                    open_close: Some(true),
                    change: Some(TextDocumentSyncKind::INCREMENTAL),
                    save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions { include_text: Some(false) })),
                    ..Default::default()
                })),
                completion_provider: items.then(completion_options),
                inline_completion_provider: Some(OneOf::Left(true)),
                code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
                execute_command_provider: Some(ExecuteCommandOptions {
                    commands: commands::COMMANDS.iter().map(|c| c.to_string()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        self.load_model(true);
    }

    async fn shutdown(&self) -> Result<()> {
        if let Some(index) = self.state.index.read().unwrap().as_ref() {
            index.cancel();
        }
        for session in self.state.sessions.lock().unwrap().values_mut() {
            session.cancel_requests();
            // No early answer's rest is offered to a client that is leaving.
            if let Some(t) = session.continuation.take() {
                t.cancel();
            }
        }
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        self.open_document(params).await
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        self.change_document(params).await
    }

    async fn did_save(&self, params: DidSaveTextDocumentParams) {
        self.save_document(params).await
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        self.close_document(params).await
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        let (reload, error) = self.apply_settings(&params.settings);
        if reload.local || reload.completion {
            self.load_model(reload.local);
        }
        if let Some(e) = error {
            self.client.log_message(MessageType::ERROR, format!("locode: {e}")).await;
            self.client.show_message(MessageType::ERROR, format!("locode: {e}")).await;
        }
        self.register_items().await;
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        commands::code_action(self, params).await
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<LSPAny>> {
        commands::execute_command(self, params).await
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        self.completion_items(params).await
    }
}
