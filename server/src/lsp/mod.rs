//! The only module that knows LSP: capabilities, methods, position encoding.
//! Handlers take a cheap snapshot under a short lock and never hold a lock
//! across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tower_lsp_server::jsonrpc::{Error as RpcError, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService, Server};

use crate::complete::{self, Suggestion};
use crate::config::CompletionConfig;
use crate::config::Config;
use crate::context;
use crate::documents::{self, Change, Document, Encoding, Pos, Snapshot};
use crate::engine::{CancelOnDrop, CancelToken, Engine, Generation, ModelInfo};
use crate::index::{IndexLimits, WorkspaceIndex};
use crate::prompt::Family;
use crate::session::{Prepared, Session, ShownSuggestion, Workspace};
use crate::syntax::Language;

mod commands;
mod input;

/// `locode/suggestionReady` (server to client): the rest of an early answer
/// is ready at `position` of `textDocument` (uri, version); asking there
/// again gets the whole suggestion at once.
enum SuggestionReady {}

impl notification::Notification for SuggestionReady {
    type Params = serde_json::Value;
    const METHOD: &'static str = "locode/suggestionReady";
}

enum ModelState {
    Loading,
    Ready { info: ModelInfo, family: Arc<Family> },
    Failed(String),
}

struct State {
    /// The open documents, each with its completion session (one removal
    /// closes both).
    docs: Mutex<HashMap<String, Session>>,
    encoding: RwLock<Encoding>,
    config: RwLock<Config>,
    model: RwLock<ModelState>,
    engine: Engine,
    client_progress: RwLock<bool>,
    /// The client asks again on `locode/suggestionReady` (it says so with
    /// `capabilities.experimental.locode.suggestionReady`): only such a
    /// client is given early answers, since no other ever sees their rest.
    client_asks_again: RwLock<bool>,
    /// Reports a remote completion engine's failures once per kind.
    remote_errors: crate::commands::remote::ErrorLatch,
    /// Background cache warm-ups that ran to the end (`locode/status`).
    warmups: std::sync::atomic::AtomicUsize,
    /// Early answers whose rest was generated and offered (`locode/status`).
    continued: std::sync::atomic::AtomicUsize,
    /// Definitions of the workspace's files, for cross-file context; built
    /// in the background after `initialize`.
    index: RwLock<Option<Arc<WorkspaceIndex>>>,
    /// Documents with a re-index waiting for a pause in their changes.
    reindex_pending: Mutex<std::collections::HashSet<String>>,
}

impl State {
    /// The workspace index and the document's file, for cross-file context
    /// (None without an index or for a URI that is not a file).
    fn workspace(&self, uri: &Uri) -> Option<(Arc<WorkspaceIndex>, std::path::PathBuf)> {
        let index = self.index.read().unwrap().clone()?;
        Some((index, uri.to_file_path()?.into_owned()))
    }
}

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
    let (service, socket) = LspService::build(|client| Backend {
        client,
        state: Arc::new(State {
            docs: Mutex::new(HashMap::new()),
            encoding: RwLock::new(Encoding::Utf16),
            config: RwLock::new(config),
            model: RwLock::new(ModelState::Loading),
            engine,
            client_progress: RwLock::new(false),
            client_asks_again: RwLock::new(false),
            remote_errors: Default::default(),
            warmups: Default::default(),
            continued: Default::default(),
            index: RwLock::new(None),
            reindex_pending: Mutex::new(Default::default()),
        }),
    })
    .custom_method("textDocument/inlineCompletion", Backend::inline_completion)
    .custom_method("locode/documentState", Backend::document_state)
    .custom_method("locode/lastStats", Backend::last_stats)
    .custom_method("locode/status", Backend::status)
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
}

/// Messages handled at once (requests in flight, mostly completions waiting
/// for the engine; superseded ones finish as soon as the engine sees it).
const MAX_CONCURRENT_MESSAGES: usize = 256;

/// A completion request that supersedes one that arrived less than this long
/// before it waits this long before it reaches the engine (see `suggest`). Keystrokes come 50 ms or more apart; bursts of requests from a
/// client without a debounce, or replayed edits, come faster.
const BURST_HOLD: std::time::Duration = std::time::Duration::from_millis(20);

/// How long a document must stay unchanged before its definitions are
/// indexed again.
const REINDEX_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// How long the user must pause before background warm-up starts.
const WARM_PAUSE_MS: u64 = 250;

fn to_pos(p: Position) -> Pos {
    Pos::new(p.line, p.character)
}

fn invalid_params(msg: impl std::fmt::Display) -> RpcError {
    RpcError::invalid_params(msg.to_string())
}

impl Backend {
    fn encoding(&self) -> Encoding {
        *self.state.encoding.read().unwrap()
    }

    /// Loads (or reloads) the model in the background, with progress.
    fn load_model(&self) {
        let client = self.client.clone();
        let state = self.state.clone();
        let engine_config = state.config.read().unwrap().engine.clone();
        *state.model.write().unwrap() = ModelState::Loading;
        let with_progress = *state.client_progress.read().unwrap();
        tokio::spawn(async move {
            let path = engine_config.model_path();
            let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel::<u32>();
            let mut last = 0u32;
            let load = state.engine.load(engine_config, move |p| {
                let pct = (p * 100.0) as u32;
                if pct >= last + 5 || pct == 100 {
                    last = pct;
                    let _ = ptx.send(pct);
                }
            });
            let progress = async {
                if !with_progress {
                    while prx.recv().await.is_some() {}
                    return;
                }
                let token = ProgressToken::String(format!("locode/load/{}", std::process::id()));
                if client.create_work_done_progress(token.clone()).await.is_err() {
                    while prx.recv().await.is_some() {}
                    return;
                }
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let p = client.progress(token, "locode: loading model").with_message(name).with_percentage(0).begin().await;
                while let Some(pct) = prx.recv().await {
                    p.report(pct).await;
                }
                p.finish_with_message("done").await;
            };
            let (result, ()) = tokio::join!(load, progress);
            match result {
                Ok((info, family)) => {
                    tracing::info!(model = %info.path.display(), family = %info.family, "model loaded");
                    client.log_message(MessageType::INFO, format!("locode: loaded {} ({})", info.path.display(), info.family)).await;
                    *state.model.write().unwrap() = ModelState::Ready { info, family: Arc::new(family) };
                }
                Err(e) => {
                    let msg = format!("locode: {e}");
                    tracing::error!("{msg}");
                    *state.model.write().unwrap() = ModelState::Failed(e.to_string());
                    client.log_message(MessageType::ERROR, &msg).await;
                    client.show_message(MessageType::ERROR, &msg).await;
                }
            }
        });
    }

    fn apply_settings(&self, value: &serde_json::Value) -> std::result::Result<bool, String> {
        let (reload, changed) = {
            let mut cfg = self.state.config.write().unwrap();
            let new = cfg.merged(value)?;
            let reload = new.engine != cfg.engine;
            let changed = reload || new.completion != cfg.completion;
            *cfg = new;
            (reload, changed)
        };
        // Suggestions made under the old settings are not offered again.
        if changed {
            for session in self.state.docs.lock().unwrap().values_mut() {
                session.last_suggestion = None;
            }
        }
        Ok(reload)
    }

    /// Computes the suggestion at a position; None when there is nothing to
    /// offer (no model, cancelled, superseded, stale).
    async fn suggest(&self, uri: &Uri, position: Position) -> Result<Option<(Suggestion, Range)>> {
        let key = uri.as_str().to_string();
        let enc = self.encoding();
        let mut cfg = self.state.config.read().unwrap().completion.clone();
        if !cfg.enabled {
            return Ok(None);
        }
        if !*self.state.client_asks_again.read().unwrap() {
            cfg.early_answer_ms = 0;
        }
        let remote = self.state.config.read().unwrap().commands.completion_engine.clone();
        let family = match &*self.state.model.read().unwrap() {
            ModelState::Ready { family, .. } => Some(family.clone()),
            _ if remote.is_remote() => None,
            ModelState::Loading => return Ok(None),
            ModelState::Failed(e) => {
                tracing::debug!("no completion: {e}");
                return Ok(None);
            }
        };
        let workspace = self.state.workspace(uri);
        let workspace = workspace.as_ref().map(|(index, path)| Workspace { index, path });
        let cancel = CancelToken::new();
        let _guard = CancelOnDrop(cancel.clone());
        let range = Range::new(position, position);
        // Under one short lock: the request is planned, supersedes the one
        // in flight, and (typed through the last suggestion) is answered.
        let (snap, cursor, anchor, burst) = {
            let mut docs = self.state.docs.lock().unwrap();
            let session = docs.get_mut(&key).ok_or_else(|| invalid_params(format!("document not open: {key}")))?;
            let cursor = documents::pos_to_char(&session.doc.rope, to_pos(position), enc).map_err(invalid_params)?;
            let prepared = session.prepare(cursor, &cfg, workspace);
            let superseded = session.inflight.replace(cancel.clone());
            if let Some(old) = &superseded {
                old.cancel();
            }
            let (snap, anchor) = match prepared {
                Prepared::Fresh { snap, anchor } => (snap, anchor),
                Prepared::TypedThrough(text) => {
                    // Typed through the last suggestion: the rest of it still stands.
                    let stats = Generation { typed_through: true, ..Default::default() };
                    session.last_stats = Some(stats.clone());
                    let version = session.doc.version;
                    return Ok(Some((Suggestion { text, version, stats }, range)));
                }
            };
            // Requests that come faster than any can be answered (a client
            // that asks on every change, with no debounce of its own) wait a
            // moment first: the next one supersedes them before they cost
            // any evaluation, and the cores stay free for the messages still
            // coming in. A request that finds none in flight, or comes at
            // typing pace, goes to the engine at once.
            let now = Instant::now();
            let prev = session.last_request.replace(now);
            let burst = superseded.is_some() && prev.is_some_and(|t| now.duration_since(t) < BURST_HOLD);
            (snap, cursor, anchor, burst)
        };
        if burst {
            tokio::time::sleep(BURST_HOLD).await;
            if cancel.is_cancelled() {
                return Ok(None);
            }
        }
        let spot = complete::Spot { snap: &snap, cursor, anchor };
        let result = match &family {
            _ if remote.is_remote() => match crate::commands::remote::suggest_remote(&remote, &spot, &cfg, cancel.clone()).await {
                Ok(s) => {
                    self.state.remote_errors.succeeded();
                    Ok((s, None))
                }
                Err(e) => {
                    if let Some(m) = self.state.remote_errors.failed(&e) {
                        self.client.show_message(MessageType::WARNING, m).await;
                    }
                    return Ok(None);
                }
            },
            Some(family) => {
                let rest_cancel = CancelToken::new();
                let old = self.state.docs.lock().unwrap().get_mut(&key).and_then(|s| s.continuation.replace(rest_cancel.clone()));
                if let Some(old) = old {
                    old.cancel();
                }
                complete::suggest_early(&self.state.engine, family, &key, &spot, &cfg, cancel.clone(), rest_cancel).await
            }
            None => return Ok(None),
        };
        if let Some(session) = self.state.docs.lock().unwrap().get_mut(&key) {
            if session.inflight.as_ref().is_some_and(|t| t.same_as(&cancel)) {
                session.inflight = None;
            }
        }
        let (suggestion, rest) = match result {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("completion failed: {e}");
                return Err(RpcError {
                    code: tower_lsp_server::jsonrpc::ErrorCode::InternalError,
                    message: e.to_string().into(),
                    data: None,
                });
            }
        };
        tracing::debug!(
            prompt = suggestion.stats.prompt_tokens,
            evaluated = suggestion.stats.evaluated_tokens,
            generated = suggestion.stats.generated_tokens,
            prompt_ms = suggestion.stats.prompt_ms,
            generate_ms = suggestion.stats.generate_ms,
            "completion"
        );
        // Drop results for a document that changed meanwhile; remember the
        // one shown for typed-through answers.
        {
            let mut docs = self.state.docs.lock().unwrap();
            let Some(session) = docs.get_mut(&key) else { return Ok(None) };
            session.last_stats = Some(suggestion.stats.clone());
            if suggestion.stats.cancelled || suggestion.text.is_empty() || session.doc.version != suggestion.version {
                return Ok(None);
            }
            session.last_suggestion = Some(ShownSuggestion::new(cursor, suggestion.text.clone()));
        }
        if let Some(rest) = rest {
            self.offer_rest(uri.clone(), cursor, position, suggestion.text.clone(), rest);
        }
        if let Some(family) = family.filter(|_| !remote.is_remote() && cursor - anchor > cfg.middle_chars / 2) {
            self.warm_reanchored(key, snap, cursor, anchor, family, cfg);
        }
        Ok(Some((suggestion, range)))
    }

    /// Re-indexes a document's definitions from its text, off the message loop.
    fn reindex(&self, uri: &Uri, text: String) {
        let Some(index) = self.state.index.read().unwrap().clone() else { return };
        let Some(path) = uri.to_file_path().map(|p| p.into_owned()) else { return };
        tokio::task::spawn_blocking(move || index.update_file(&path, &text));
    }

    /// Re-indexes a document once its text has stayed unchanged for
    /// `REINDEX_IDLE`; one waiting task per document however fast the
    /// changes come.
    fn reindex_when_idle(&self, uri: &Uri) {
        if self.state.index.read().unwrap().is_none() || !self.state.reindex_pending.lock().unwrap().insert(uri.as_str().to_string()) {
            return;
        }
        let state = self.state.clone();
        let uri = uri.clone();
        let client = self.client.clone();
        tokio::spawn(async move {
            let version = |state: &State| state.docs.lock().unwrap().get(uri.as_str()).map(|s| s.doc.version);
            let mut seen = version(&state);
            loop {
                tokio::time::sleep(REINDEX_IDLE).await;
                let now = version(&state);
                if now == seen {
                    break;
                }
                seen = now;
            }
            state.reindex_pending.lock().unwrap().remove(uri.as_str());
            let text = state.docs.lock().unwrap().get(uri.as_str()).map(|s| s.doc.text());
            if let Some(text) = text {
                Backend { client, state }.reindex(&uri, text);
            }
        });
    }

    /// The server's copy of a document: `{uri}` -> `{version, text}`.
    async fn document_state(&self, params: TextDocumentIdentifier) -> Result<serde_json::Value> {
        let docs = self.state.docs.lock().unwrap();
        let session = docs.get(params.uri.as_str()).ok_or_else(|| invalid_params("document not open"))?;
        let cross_file: Vec<&str> = session.layout.cross_file.iter().flat_map(|c| c.chunks.iter().map(|(p, _)| p.as_str())).collect();
        Ok(serde_json::json!({ "version": session.doc.version, "text": session.doc.text(), "crossFile": cross_file }))
    }

    /// Statistics of the last completion for a document: prompt tokens,
    /// evaluated tokens, generated tokens and timings.
    async fn last_stats(&self, params: TextDocumentIdentifier) -> Result<serde_json::Value> {
        let stats = self.state.docs.lock().unwrap().get(params.uri.as_str()).and_then(|s| s.last_stats.clone());
        Ok(serde_json::to_value(stats).unwrap_or_default())
    }

    /// Model state: `{state: "loading"|"ready"|"failed", ...}`.
    async fn status(&self) -> Result<serde_json::Value> {
        let warmups = self.state.warmups.load(std::sync::atomic::Ordering::Relaxed);
        let continued = self.state.continued.load(std::sync::atomic::Ordering::Relaxed);
        Ok(match &*self.state.model.read().unwrap() {
            ModelState::Loading => serde_json::json!({"state": "loading"}),
            ModelState::Ready { info, .. } => {
                serde_json::json!({"state": "ready", "model": info, "warmups": warmups, "continued": continued})
            }
            ModelState::Failed(e) => serde_json::json!({"state": "failed", "error": e}),
        })
    }

    /// The rest of an early answer: once generated, it replaces the shown
    /// suggestion (if that is still the last one, typed through or not), and
    /// the client hears of it with `locode/suggestionReady`, so it can ask
    /// again and get the whole suggestion at once (typed-through).
    fn offer_rest(&self, uri: Uri, cursor: usize, position: Position, shown: String, rest: complete::Rest) {
        let state = self.state.clone();
        let client = self.client.clone();
        tokio::spawn(async move {
            let whole = match rest.await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!("the rest of an early answer failed: {e}");
                    return;
                }
                Err(_) => return,
            };
            let extends = whole.text.len() > shown.len() && whole.text.starts_with(&shown);
            tracing::debug!(
                generated = whole.stats.generated_tokens,
                yielded = whole.stats.yielded,
                shown_chars = shown.len(),
                whole_chars = whole.text.len(),
                extends,
                "rest of an early answer"
            );
            if !extends {
                return;
            }
            let version = {
                let mut docs = state.docs.lock().unwrap();
                let Some(session) = docs.get_mut(uri.as_str()) else { return };
                match session.last_suggestion.as_mut() {
                    Some(s) if s.cursor == cursor && s.text == shown => s.text = whole.text.clone(),
                    _ => return,
                }
                state.continued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                session.doc.version
            };
            let params = serde_json::json!({
                "textDocument": { "uri": uri.as_str(), "version": version },
                "position": position,
            });
            client.send_notification::<SuggestionReady>(params).await;
        });
    }

    /// After Enter (or on opening a file), at a pause with no request in
    /// flight, pre-fills the cache for the prompt at `cursor`, so the first
    /// suggestion there costs only its own tokens. Yields to any real request.
    fn warm_after_enter(&self, key: String, cursor: usize, version: i32) {
        let cfg = self.state.config.read().unwrap().completion.clone();
        if !cfg.enabled || self.state.config.read().unwrap().commands.completion_engine.is_remote() {
            return;
        }
        let state = self.state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(WARM_PAUSE_MS)).await;
            let family = match &*state.model.read().unwrap() {
                ModelState::Ready { family, .. } => family.clone(),
                _ => return,
            };
            let workspace = key.parse::<Uri>().ok().and_then(|uri| state.workspace(&uri));
            let workspace = workspace.as_ref().map(|(index, path)| Workspace { index, path });
            let (snap, anchor) = {
                let mut docs = state.docs.lock().unwrap();
                // A request in flight has the engine; it warms its own prompt.
                let Some(session) = docs.get_mut(&key).filter(|s| s.inflight.is_none() && s.doc.version == version) else { return };
                session.plan(cursor, &cfg, workspace)
            };
            let spot = complete::Spot { snap: &snap, cursor, anchor };
            let done = complete::warm(&state.engine, &family, &key, &spot, &cfg).await;
            if done {
                state.warmups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            tracing::debug!(done, "warm-up after Enter");
        });
    }

    /// The typed middle is getting long: at a pause, pre-fill the cache for
    /// a prompt anchored at the cursor's line and switch to it when done, so
    /// the next request does not pay for re-anchoring.
    fn warm_reanchored(&self, key: String, snap: Snapshot, cursor: usize, anchor: usize, family: Arc<Family>, cfg: CompletionConfig) {
        let new_anchor = context::choose_anchor(None, cursor, &snap.rope, cfg.middle_chars);
        if new_anchor <= anchor {
            return;
        }
        let state = self.state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(WARM_PAUSE_MS)).await;
            let unchanged = |state: &State| state.docs.lock().unwrap().get(&key).is_some_and(|s| s.doc.version == snap.version);
            if !unchanged(&state) {
                return;
            }
            let spot = complete::Spot { snap: &snap, cursor, anchor: new_anchor };
            if complete::warm(&state.engine, &family, &key, &spot, &cfg).await {
                state.warmups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut docs = state.docs.lock().unwrap();
                if let Some(session) = docs.get_mut(&key) {
                    if session.doc.version == snap.version {
                        session.layout.anchor = Some(new_anchor);
                    }
                }
            }
        });
    }

    async fn inline_completion(&self, params: InlineCompletionParams) -> Result<Option<InlineCompletionResponse>> {
        let tdp = params.text_document_position;
        let Some((s, range)) = self.suggest(&tdp.text_document.uri, tdp.position).await? else {
            return Ok(Some(InlineCompletionResponse::Array(vec![])));
        };
        Ok(Some(InlineCompletionResponse::Array(vec![InlineCompletionItem {
            insert_text: s.text,
            filter_text: None,
            range: Some(range),
            command: None,
            insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
        }])))
    }

    /// The identifier characters before the cursor, which completion clients
    /// filter items by; the completion item replaces them with themselves plus
    /// the suggestion.
    fn word_before(&self, uri: &Uri, position: Position) -> Option<(String, Position)> {
        let enc = self.encoding();
        let docs = self.state.docs.lock().unwrap();
        let doc = &docs.get(uri.as_str())?.doc;
        let cursor = documents::pos_to_char(&doc.rope, to_pos(position), enc).ok()?;
        let line_start = doc.rope.line_to_char(doc.rope.char_to_line(cursor));
        let mut start = cursor;
        while start > line_start {
            let c = doc.rope.char(start - 1);
            if c.is_alphanumeric() || c == '_' {
                start -= 1;
            } else {
                break;
            }
        }
        let word = doc.rope.slice(start..cursor).to_string();
        let p = documents::char_to_pos(&doc.rope, start, enc);
        Some((word, Position::new(p.line, p.character)))
    }
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
        if let Some(opts) = &params.initialization_options {
            if let Err(e) = self.apply_settings(opts) {
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
        if !roots.is_empty() && self.state.config.read().unwrap().completion.cross_file_chars > 0 {
            let index = WorkspaceIndex::new(roots, IndexLimits::default());
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
                completion_provider: Some(CompletionOptions { resolve_provider: Some(false), ..Default::default() }),
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
        self.load_model();
    }

    async fn shutdown(&self) -> Result<()> {
        if let Some(index) = self.state.index.read().unwrap().as_ref() {
            index.cancel();
        }
        for session in self.state.docs.lock().unwrap().values_mut() {
            if let Some(t) = &session.inflight {
                t.cancel();
            }
            // No early answer's rest is offered to a client that is leaving.
            if let Some(t) = session.continuation.take() {
                t.cancel();
            }
        }
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let td = params.text_document;
        let key = td.uri.as_str().to_string();
        let lang = Language::detect(&td.language_id, &key);
        let doc = Document::new(&td.text, td.version, lang);
        if lang != Language::PlainText {
            self.reindex(&td.uri, td.text.clone());
        }
        // When the whole file fits in the prefix window, a prompt at its end
        // shares its prefix with the prompt at any cursor (everything before
        // the cursor's anchor): pre-fill that one at the first pause.
        let lines = doc.rope.len_lines();
        let end = doc.rope.len_chars();
        self.state.docs.lock().unwrap().insert(key.clone(), Session::new(doc));
        if lang != Language::PlainText && lines <= self.state.config.read().unwrap().completion.prefix_lines {
            self.warm_after_enter(key, end, td.version);
        }
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let enc = self.encoding();
        let key = params.text_document.uri.as_str();
        let changes: Vec<Change> = params
            .content_changes
            .into_iter()
            .map(|c| Change { range: c.range.map(|r| (to_pos(r.start), to_pos(r.end))), text: c.text })
            .collect();
        // After Enter (a last change that inserts a line break), the next
        // request will be at the end of the inserted text.
        let after_enter = changes.last().and_then(|c: &Change| match c.range {
            Some((start, _)) if c.text.contains('\n') && c.text.len() < 256 => Some((start, c.text.chars().count())),
            _ => None,
        });
        self.reindex_when_idle(&params.text_document.uri);
        let warm = {
            let mut docs = self.state.docs.lock().unwrap();
            match docs.get_mut(key) {
                Some(session) => {
                    session.apply_versioned(params.text_document.version, changes, enc);
                    // An edit that is not typing through the suggestion ends
                    // the generation of its rest.
                    if session.last_suggestion.is_none() {
                        if let Some(t) = session.continuation.take() {
                            t.cancel();
                        }
                    }
                    let doc = &session.doc;
                    after_enter.map(|(start, n)| (documents::pos_to_char_clamped(&doc.rope, start, enc) + n, doc.version))
                }
                None => {
                    tracing::warn!("didChange for a document that is not open: {key}");
                    None
                }
            }
        };
        if let Some((cursor, version)) = warm {
            self.warm_after_enter(key.to_string(), cursor, version);
        }
    }

    async fn did_save(&self, params: DidSaveTextDocumentParams) {
        // A save is a pause: the next request picks the other files'
        // definitions afresh (new imports, new names), paying for the whole
        // prompt once.
        let text = self.state.docs.lock().unwrap().get_mut(params.text_document.uri.as_str()).map(|s| {
            s.layout.cross_file = None;
            s.doc.text()
        });
        if let Some(text) = params.text.or(text) {
            self.reindex(&params.text_document.uri, text);
        }
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let session = self.state.docs.lock().unwrap().remove(params.text_document.uri.as_str());
        if let Some(session) = session {
            session.close();
        }
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        match self.apply_settings(&params.settings) {
            Ok(true) => self.load_model(),
            Ok(false) => {}
            Err(e) => self.client.show_message(MessageType::ERROR, format!("locode: {e}")).await,
        }
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        commands::code_action(self, params).await
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<LSPAny>> {
        commands::execute_command(self, params).await
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        let tdp = params.text_document_position;
        let Some((s, _)) = self.suggest(&tdp.text_document.uri, tdp.position).await? else {
            return Ok(Some(CompletionResponse::Array(vec![])));
        };
        let (word, start) = self.word_before(&tdp.text_document.uri, tdp.position).unwrap_or_default();
        let new_text = format!("{word}{}", s.text);
        let first_line = s.text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        let mut label: String = format!("{word}{first_line}").chars().take(80).collect();
        if s.text.trim().lines().count() > 1 {
            label.push_str(" …");
        }
        let item = CompletionItem {
            label,
            kind: Some(CompletionItemKind::TEXT),
            detail: Some("locode".into()),
            documentation: Some(Documentation::MarkupContent(MarkupContent {
                kind: MarkupKind::Markdown,
                value: format!("```\n{new_text}\n```"),
            })),
            filter_text: Some(new_text.clone()),
            sort_text: Some("0".into()),
            preselect: Some(true),
            insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
            text_edit: Some(CompletionTextEdit::Edit(TextEdit { range: Range::new(start, tdp.position), new_text })),
            ..Default::default()
        };
        Ok(Some(CompletionResponse::List(CompletionList { is_incomplete: true, items: vec![item] })))
    }
}
