//! The server's state: settings, the model, the engine, the index, and the
//! open documents' sessions; loading the model and applying settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::*;

use super::Backend;
use crate::config::Config;
use crate::documents::Encoding;
use crate::engine::{Engine, ModelInfo};
use crate::index::WorkspaceIndex;
use crate::prompt::Family;
use crate::session::Session;

#[derive(Clone)]
pub(super) enum ModelState {
    Loading,
    Ready { info: ModelInfo, family: Arc<Family> },
    Failed(String),
}

pub(super) struct State {
    /// The open documents, each with its completion session (one removal
    /// closes both).
    pub(super) sessions: Mutex<HashMap<String, Session>>,
    pub(super) encoding: RwLock<Encoding>,
    pub(super) config: RwLock<Config>,
    /// The completion engine: the embedded model, or a remote engine
    /// (`completionEngine`) with its family and a description of the server.
    pub(super) model: RwLock<ModelState>,
    /// The embedded model, which explain and refactor use (the same as
    /// `model` unless a remote engine answers completions).
    pub(super) local_model: RwLock<ModelState>,
    /// Counts `load_model` calls: a load that finishes after a newer one
    /// started changes nothing.
    pub(super) loads: std::sync::atomic::AtomicU64,
    pub(super) engine: Engine,
    pub(super) client_progress: RwLock<bool>,
    /// The client asks again on `locode/suggestionReady` (it says so with
    /// `capabilities.experimental.locode.suggestionReady`): only such a
    /// client is given early answers, since no other ever sees their rest.
    pub(super) client_asks_again: RwLock<bool>,
    /// The client announces inline completion (ghost text): with
    /// `completionItems: auto` it gets no completion items.
    pub(super) client_inline: RwLock<bool>,
    /// The client can register `textDocument/completion` dynamically.
    pub(super) client_items_dynamic: RwLock<bool>,
    /// How the completion-item provider is registered now.
    pub(super) items_registration: Mutex<ItemsRegistration>,
    /// Reports a remote completion engine's failures once per kind.
    pub(super) remote_errors: crate::engine::remote::ErrorLatch,
    /// Background cache warm-ups that ran to the end (`locode/status`).
    pub(super) warmups: std::sync::atomic::AtomicUsize,
    /// Documents whose whole prompt is being built after a first-window
    /// answer (`build_whole_prompt`).
    pub(super) building: Mutex<std::collections::HashSet<String>>,
    /// Early answers whose rest was generated and offered (`locode/status`).
    pub(super) continued: std::sync::atomic::AtomicUsize,
    /// First-window answers replaced by the whole prompt's (`locode/status`).
    pub(super) upgraded: std::sync::atomic::AtomicUsize,
    /// Definitions of the workspace's files, for cross-file context; built
    /// in the background after `initialize`.
    pub(super) index: RwLock<Option<Arc<WorkspaceIndex>>>,
    /// Documents with a re-index waiting for a pause in their changes.
    pub(super) reindex_pending: Mutex<std::collections::HashSet<String>>,
}

/// How the server told the client it answers `textDocument/completion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ItemsRegistration {
    None,
    /// In the `initialize` answer (it cannot be withdrawn; requests are then
    /// answered with no items while the setting says so).
    Static,
    /// With `client/registerCapability` (withdrawn with `unregisterCapability`).
    Dynamic,
}

impl State {
    /// Is the document `key` open and still at `version` (nothing typed
    /// since background work on it began)?
    pub(super) fn at_version(&self, key: &str, version: i32) -> bool {
        self.sessions.lock().unwrap().get(key).is_some_and(|s| s.doc.version == version)
    }

    /// Are suggestions offered as completion items now (the
    /// `completionItems` setting and the client's inline completion)?
    pub(super) fn items_offered(&self) -> bool {
        self.config.read().unwrap().completion_items.offered(*self.client_inline.read().unwrap())
    }

    pub(super) fn new(config: Config, engine: Engine) -> Self {
        State {
            sessions: Mutex::new(HashMap::new()),
            encoding: RwLock::new(Encoding::Utf16),
            config: RwLock::new(config),
            model: RwLock::new(ModelState::Loading),
            local_model: RwLock::new(ModelState::Loading),
            loads: Default::default(),
            engine,
            client_progress: RwLock::new(false),
            client_asks_again: RwLock::new(false),
            client_inline: RwLock::new(false),
            client_items_dynamic: RwLock::new(false),
            items_registration: Mutex::new(ItemsRegistration::None),
            remote_errors: Default::default(),
            warmups: Default::default(),
            building: Default::default(),
            continued: Default::default(),
            upgraded: Default::default(),
            index: RwLock::new(None),
            reindex_pending: Mutex::new(Default::default()),
        }
    }

    /// The workspace index and the document's file, for cross-file context
    /// (None without an index or for a URI that is not a file).
    pub(super) fn workspace(&self, uri: &Uri) -> Option<(Arc<WorkspaceIndex>, std::path::PathBuf)> {
        let index = self.index.read().unwrap().clone()?;
        Some((index, uri.to_file_path()?.into_owned()))
    }
}

/// The outbound policy's part of a remote engine's set-up: the refuse list,
/// and the audit record of its first send to another machine (in the cloud's
/// audit log; a log that cannot be written stops the send).
fn remote_outbound(cloud: &crate::config::CloudConfig) -> crate::engine::remote::Outbound {
    use crate::commands::audit;
    let path = cloud.audit_path();
    let hook = move |s: &crate::engine::remote::FirstSend<'_>| {
        let kind = serde_json::to_value(s.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let record = audit::AuditRecord {
            time: audit::now_rfc3339(),
            provider: format!("completionEngine:{kind}"),
            endpoint: s.url.to_string(),
            model: s.model.to_string(),
            action: "completion (first of this session)".into(),
            file: s.document.to_string(),
            bytes: s.body.len(),
            sha256: audit::sha256_hex(s.body),
            redactions: s.redactions.clone(),
        };
        audit::append(&path, &record).map_err(|e| format!("locode: cannot write the audit log {}: {e}", path.display()))
    };
    crate::engine::remote::Outbound { refuse_files: cloud.refuse_files.clone(), on_first_send: Some(std::sync::Arc::new(hook)) }
}

/// What a settings change makes load again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Reload {
    /// The embedded model (`model`, `threads`, ... changed).
    pub(super) local: bool,
    /// The completion engine (`completionEngine` changed).
    pub(super) completion: bool,
}

impl Backend {
    /// Loads (or reloads) the completion engine in the background: a
    /// remote engine when `completionEngine` names one, else the embedded
    /// model. With `local`, the embedded model is (re)loaded too, with
    /// progress: explain and refactor use it whichever engine completes.
    pub(super) fn load_model(&self, local: bool) {
        let state = self.state.clone();
        let (remote, outbound) = {
            let cfg = state.config.read().unwrap();
            (cfg.commands.completion_engine.clone(), remote_outbound(&cfg.commands.cloud))
        };
        let load = {
            let mut model = state.model.write().unwrap();
            let load = state.loads.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1;
            if remote.is_remote() {
                *model = ModelState::Loading;
            } else {
                state.engine.set_remote(None);
                *model = if local { ModelState::Loading } else { state.local_model.read().unwrap().clone() };
            }
            load
        };
        if remote.is_remote() {
            let client = self.client.clone();
            let state = state.clone();
            tokio::spawn(async move {
                let connected = crate::engine::remote::connect_with(remote, outbound).await;
                let message = {
                    let mut model = state.model.write().unwrap();
                    if state.loads.load(std::sync::atomic::Ordering::Acquire) != load {
                        return;
                    }
                    match connected {
                        Ok((r, info, family)) => {
                            state.engine.set_remote(Some(r));
                            let m = format!("locode: completions from {} ({})", info.description, info.family);
                            *model = ModelState::Ready { info, family: Arc::new(family) };
                            state.remote_errors.succeeded();
                            Ok(m)
                        }
                        Err(e) => {
                            state.engine.set_remote(None);
                            *model = ModelState::Failed(e.to_string());
                            Err(format!("locode: {e}"))
                        }
                    }
                };
                match message {
                    Ok(m) => client.log_message(MessageType::INFO, m).await,
                    Err(m) => {
                        tracing::error!("{m}");
                        client.log_message(MessageType::ERROR, &m).await;
                        client.show_message(MessageType::ERROR, &m).await;
                    }
                }
            });
        }
        if local {
            self.load_local();
        }
    }

    /// Loads (or reloads) the embedded model in the background, with progress.
    fn load_local(&self) {
        let client = self.client.clone();
        let state = self.state.clone();
        let engine_config = state.config.read().unwrap().engine.clone();
        *state.local_model.write().unwrap() = ModelState::Loading;
        let with_progress = *state.client_progress.read().unwrap();
        tokio::spawn(async move {
            let path = engine_config.model_path();
            let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel::<u32>();
            let mut last = 0u32;
            let load_model = state.engine.load(engine_config, move |p| {
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
            let (result, ()) = tokio::join!(load_model, progress);
            let (loaded, message) = match result {
                Ok((info, family)) => {
                    tracing::info!(model = %info.path.display(), family = %info.family, "model loaded");
                    let m = format!("locode: loaded {} ({})", info.path.display(), info.family);
                    (ModelState::Ready { info, family: Arc::new(family) }, Ok(m))
                }
                Err(e) => {
                    let msg = format!("locode: {e}");
                    tracing::error!("{msg}");
                    (ModelState::Failed(e.to_string()), Err(msg))
                }
            };
            // The state first, then the messages: a client that asks for
            // `locode/status` on the message sees what it says.
            {
                // The completion engine too, unless a remote engine is (or
                // is being) set up. (Loads reach the engine thread in order:
                // a newer one's result comes after this one.)
                let mut model = state.model.write().unwrap();
                *state.local_model.write().unwrap() = loaded.clone();
                if !state.config.read().unwrap().commands.completion_engine.is_remote() {
                    *model = loaded;
                }
            }
            match message {
                Ok(m) => client.log_message(MessageType::INFO, m).await,
                Err(m) => {
                    client.log_message(MessageType::ERROR, &m).await;
                    client.show_message(MessageType::ERROR, &m).await;
                }
            }
        });
    }

    /// Applies client settings; returns what must be loaded again, and the
    /// error to show when they are invalid. Invalid settings leave the
    /// previous ones in place with everything outbound off (cloud
    /// escalation, a remote engine) until they are fixed: a misspelt key
    /// must not leave code going where it went before.
    pub(super) fn apply_settings(&self, value: &serde_json::Value) -> (Reload, Option<String>) {
        let (reload, changed, error, refuse) = {
            let mut cfg = self.state.config.write().unwrap();
            let (new, error) = match cfg.merged(value) {
                Ok(new) => (new, None),
                Err(e) => {
                    let mut off = cfg.clone();
                    off.commands.cloud.route = crate::config::Route::Never;
                    off.commands.completion_engine.kind = crate::config::RemoteKind::Embedded;
                    let m = format!(
                        "{e}. Until the settings are fixed nothing leaves this machine: cloud escalation and any remote completion engine are off."
                    );
                    (off, Some(m))
                }
            };
            let refuse_changed = new.commands.cloud.refuse_files != cfg.commands.cloud.refuse_files;
            let reload = Reload {
                local: new.engine != cfg.engine,
                completion: new.commands.completion_engine != cfg.commands.completion_engine
                    || (refuse_changed && new.commands.completion_engine.is_remote()),
            };
            let changed = reload.local || reload.completion || new.completion != cfg.completion;
            let refuse = refuse_changed.then(|| new.commands.cloud.refuse_files.clone());
            *cfg = new;
            (reload, changed, error, refuse)
        };
        if let (Some(patterns), Some(index)) = (refuse, self.state.index.read().unwrap().clone()) {
            index.set_refuse_files(patterns);
        }
        if let Some(e) = &error {
            tracing::error!("{e}");
        }
        // Suggestions made under the old settings are not offered again.
        if changed {
            for session in self.state.sessions.lock().unwrap().values_mut() {
                session.forget_answers();
            }
        }
        (reload, error)
    }

    /// Model state: `{state: "loading"|"ready"|"failed", ...}`.
    pub(super) async fn status(&self) -> Result<serde_json::Value> {
        let warmups = self.state.warmups.load(std::sync::atomic::Ordering::Relaxed);
        let continued = self.state.continued.load(std::sync::atomic::Ordering::Relaxed);
        let upgraded = self.state.upgraded.load(std::sync::atomic::Ordering::Relaxed);
        // Whole prompts being built after first-window answers.
        let building = self.state.building.lock().unwrap().len();
        Ok(match &*self.state.model.read().unwrap() {
            ModelState::Loading => serde_json::json!({"state": "loading"}),
            ModelState::Ready { info, .. } => {
                serde_json::json!({"state": "ready", "model": info, "warmups": warmups, "continued": continued, "upgraded": upgraded, "building": building})
            }
            ModelState::Failed(e) => serde_json::json!({"state": "failed", "error": e}),
        })
    }
}
