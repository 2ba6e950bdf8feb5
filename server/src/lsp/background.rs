//! Work the server starts on its own, off the message loop: the rest of an
//! early answer, cache warm-ups at a pause, and re-indexing of a document's
//! definitions. Each checks the document's version before it changes
//! anything, and yields to requests.

use std::sync::Arc;

use tower_lsp_server::ls_types::*;

use super::state::{ModelState, State};
use super::Backend;
use crate::complete;
use crate::config::CompletionConfig;
use crate::context;
use crate::documents::Snapshot;
use crate::engine::CancelToken;
use crate::prompt::Family;
use crate::session::{Session, ShownSuggestion, Workspace};

/// `locode/suggestionReady` (server to client): the rest of an early answer,
/// or the whole prompt's answer after a first-window one, is ready at
/// `position` of `textDocument` (uri, version); asking there again gets it
/// at once.
enum SuggestionReady {}

impl notification::Notification for SuggestionReady {
    type Params = serde_json::Value;
    const METHOD: &'static str = "locode/suggestionReady";
}

/// Tells the client a better suggestion waits at `position` of `uri`.
async fn suggestion_ready(client: &tower_lsp_server::Client, uri: &str, version: i32, position: Position) {
    let params = serde_json::json!({ "textDocument": { "uri": uri, "version": version }, "position": position });
    client.send_notification::<SuggestionReady>(params).await;
}

/// How long a document must stay unchanged before its definitions are
/// indexed again.
const REINDEX_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// How long the user must pause before background warm-up starts.
const WARM_PAUSE_MS: u64 = 250;

/// How long a whole prompt's answer waits for what is in flight at the
/// same spot (a request, an early answer's rest) before it is given up.
const UPGRADE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// How often a whole-prompt build that yielded to requests goes on again
/// while its document is unchanged, and the pause before it does (the
/// requests it yielded to are queued ahead of it by then).
const BUILD_RESUMES: usize = 64;
const BUILD_RESUME_MS: u64 = 20;

/// Does the rest of an early answer replace what was shown? When it goes on
/// from it, and when it ran to its end whatever it says: the whole answer
/// is the one a client without early answers gets, and an opener shown
/// alone, or a block closed early, must not stay if the rest is not their
/// continuation (`postprocess::goes_on_from`). Not a rest that stopped for
/// a request: its text is cut short.
fn rest_replaces(shown: &str, whole: &complete::Suggestion) -> bool {
    let stats = &whole.stats;
    !stats.cancelled && (crate::postprocess::goes_on_from(shown, &whole.text) || (!stats.yielded && whole.text != shown))
}

impl Backend {
    /// The rest of an early answer: once generated, it replaces the shown
    /// suggestion (if that is still the last one, typed through or not), and
    /// the client hears of it with `locode/suggestionReady`, so it can ask
    /// again and get the whole suggestion at once (typed-through).
    /// `typed`: what the user typed since the generation's own cursor (a
    /// request that joined it), which the rest starts with.
    pub(super) fn offer_rest(&self, uri: Uri, cursor: usize, position: Position, typed: String, shown: String, rest: complete::Rest) {
        let state = self.state.clone();
        let client = self.client.clone();
        tokio::spawn(async move {
            let mut whole = match rest.await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!("the rest of an early answer failed: {e}");
                    return;
                }
                Err(_) => return,
            };
            if let Some(r) = whole.text.strip_prefix(typed.as_str()) {
                whole.text = r.to_string();
            } else {
                return;
            }
            let replaces = rest_replaces(&shown, &whole);
            tracing::debug!(
                generated = whole.stats.generated_tokens,
                yielded = whole.stats.yielded,
                shown_chars = shown.len(),
                whole_chars = whole.text.len(),
                replaces,
                "rest of an early answer"
            );
            if !replaces {
                return;
            }
            let version = {
                let mut docs = state.sessions.lock().unwrap();
                let Some(session) = docs.get_mut(uri.as_str()) else { return };
                match session.last_suggestion.as_mut() {
                    Some(s) if s.cursor == cursor && s.text == shown => s.text = whole.text.clone(),
                    _ => return,
                }
                state.continued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                session.doc.version
            };
            suggestion_ready(&client, uri.as_str(), version, position).await;
        });
    }

    /// After Enter (or on opening a file), at a pause with no request in
    /// flight, pre-fills the cache for the prompt at `cursor`, so the first
    /// suggestion there costs only its own tokens. Yields to any real request.
    pub(super) fn warm_after_enter(&self, key: String, cursor: usize, version: i32) {
        let cfg = self.state.config.read().unwrap().completion.clone();
        if !cfg.enabled {
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
                let mut docs = state.sessions.lock().unwrap();
                // A request in flight has the engine; it warms its own prompt.
                let Some(session) = docs.get_mut(&key).filter(|s| s.idle() && s.doc.version == version) else { return };
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

    /// The answer came from a smaller window (the whole prompt would have
    /// taken too long): build the whole prompt's cache now, in the
    /// background; once it is in, requests use it. One build in flight per
    /// document. It fills a second window first (about 8 first windows),
    /// then the whole prompt; both yield to every request, and go on in the
    /// gaps between them. (A share of the engine that kept requests waiting
    /// for it made a typing replay's slowest requests wait 150-400 ms each;
    /// stop 34.)
    ///
    /// `upgrade`: the position the first-window answer was shown at. When
    /// the build is done and the user has neither edited nor asked
    /// elsewhere, the whole prompt answers there too; if that answer
    /// differs, it replaces the shown one and the client hears of it with
    /// `locode/suggestionReady` (the small window's answer is the worse one
    /// on every quality set; see benches/README.md, "First answers and
    /// upgrades").
    #[allow(clippy::too_many_arguments)]
    pub(super) fn build_whole_prompt(
        &self,
        key: String,
        snap: Snapshot,
        cursor: usize,
        anchor: usize,
        family: Arc<Family>,
        cfg: CompletionConfig,
        upgrade: Option<Position>,
    ) {
        if !self.state.building.lock().unwrap().insert(key.clone()) {
            return;
        }
        let state = self.state.clone();
        let client = self.client.clone();
        tokio::spawn(async move {
            let spot = complete::Spot { snap: &snap, cursor, anchor };
            let mut done = false;
            // A build yields to every request: the rest of an early answer
            // and its second try come right after the answer that started
            // it (HumanEval-X Go/68/L0 through the server: the whole prompt
            // was never built, so no upgrade came). It goes on once they
            // are served, while the document is unchanged; after an edit
            // the next first-window answer starts a build of its own.
            for _ in 0..BUILD_RESUMES {
                match complete::warm_or_yield(&state.engine, &family, &key, &spot, &cfg).await {
                    Ok(true) => done = true,
                    Ok(false) if state.at_version(&key, snap.version) => {
                        tokio::time::sleep(std::time::Duration::from_millis(BUILD_RESUME_MS)).await;
                        continue;
                    }
                    Ok(false) => {}
                    Err(e) => tracing::debug!("building the whole prompt failed: {e}"),
                }
                break;
            }
            state.building.lock().unwrap().remove(&key);
            if done {
                state.warmups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            tracing::debug!(done, upgrade = upgrade.is_some(), "whole prompt after a first-window answer");
            let Some(position) = upgrade.filter(|_| done) else { return };
            // Still where the first answer was shown: no edit, no request in
            // flight, and no suggestion shown elsewhere since.
            let still = |s: &Session| {
                s.doc.version == snap.version
                    && s.idle()
                    && s.last_suggestion.as_ref().is_none_or(|l| l.cursor == cursor && l.typed_end == cursor)
            };
            // A request or an early answer's rest still in flight at the same
            // version: the upgrade waits for it (it was lost when the build
            // ended first: HumanEval-X Go/109/L3 through the server).
            let deadline = std::time::Instant::now() + UPGRADE_WAIT;
            loop {
                let busy = {
                    let docs = state.sessions.lock().unwrap();
                    docs.get(&key).is_some_and(|s| s.doc.version == snap.version && !s.idle())
                };
                if !busy || std::time::Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(BUILD_RESUME_MS)).await;
            }
            let cancel = CancelToken::new();
            {
                let mut docs = state.sessions.lock().unwrap();
                let Some(session) = docs.get_mut(&key).filter(|s| still(s)) else {
                    tracing::debug!("no upgrade: the document changed, or a suggestion was shown elsewhere");
                    return;
                };
                // A ghost-text request stops it, as it stops an early answer's rest.
                if let Some(old) = session.continuation.replace(cancel.clone()) {
                    old.cancel();
                }
            }
            let cfg = CompletionConfig { early_answer_ms: 0, ..cfg };
            let better = match complete::suggest(&state.engine, &family, &key, &spot, &cfg, cancel).await {
                Ok(s) if !s.stats.cancelled && !s.stats.first_window && !s.text.is_empty() => s,
                Ok(s) => {
                    tracing::debug!(
                        cancelled = s.stats.cancelled,
                        first_window = s.stats.first_window,
                        "no upgrade: no whole-prompt answer"
                    );
                    return;
                }
                Err(e) => {
                    tracing::debug!("the whole prompt's answer failed: {e}");
                    return;
                }
            };
            let version = {
                let mut docs = state.sessions.lock().unwrap();
                let Some(session) = docs.get_mut(&key).filter(|s| still(s)) else { return };
                let same = session.last_suggestion.as_ref().is_some_and(|l| l.text == better.text);
                tracing::debug!(same, text = %better.text, "the whole prompt's answer");
                if same {
                    return;
                }
                session.last_suggestion = Some(ShownSuggestion::new(cursor, better.text));
                session.last_stats = Some(better.stats);
                state.upgraded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                session.doc.version
            };
            suggestion_ready(&client, &key, version, position).await;
        });
    }

    /// The typed middle is getting long: at a pause, pre-fill the cache for
    /// a prompt anchored at the cursor's line and switch to it when done, so
    /// the next request does not pay for re-anchoring.
    pub(super) fn warm_reanchored(
        &self,
        key: String,
        snap: Snapshot,
        cursor: usize,
        anchor: usize,
        family: Arc<Family>,
        cfg: CompletionConfig,
    ) {
        let new_anchor = context::choose_anchor(None, cursor, &snap.rope, cfg.middle_chars, snap.language);
        if new_anchor <= anchor {
            return;
        }
        let state = self.state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(WARM_PAUSE_MS)).await;
            if !state.at_version(&key, snap.version) {
                return;
            }
            let spot = complete::Spot { snap: &snap, cursor, anchor: new_anchor };
            if complete::warm(&state.engine, &family, &key, &spot, &cfg).await {
                state.warmups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut docs = state.sessions.lock().unwrap();
                if let Some(session) = docs.get_mut(&key) {
                    if session.doc.version == snap.version {
                        session.layout.anchor = Some(new_anchor);
                    }
                }
            }
        });
    }

    /// Re-indexes a document's definitions from its text, off the message loop.
    pub(super) fn reindex(&self, uri: &Uri, text: String) {
        let Some(index) = self.state.index.read().unwrap().clone() else { return };
        let Some(path) = uri.to_file_path().map(|p| p.into_owned()) else { return };
        tokio::task::spawn_blocking(move || index.update_file(&path, &text));
    }

    /// Re-indexes a document once its text has stayed unchanged for
    /// `REINDEX_IDLE`; one waiting task per document however fast the
    /// changes come.
    pub(super) fn reindex_when_idle(&self, uri: &Uri) {
        if self.state.index.read().unwrap().is_none() || !self.state.reindex_pending.lock().unwrap().insert(uri.as_str().to_string()) {
            return;
        }
        let state = self.state.clone();
        let uri = uri.clone();
        let client = self.client.clone();
        tokio::spawn(async move {
            let version = |state: &State| state.sessions.lock().unwrap().get(uri.as_str()).map(|s| s.doc.version);
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
            let text = state.sessions.lock().unwrap().get(uri.as_str()).map(|s| s.doc.text());
            if let Some(text) = text {
                Backend { client, state }.reindex(&uri, text);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Generation;

    #[test]
    fn the_rest_replaces_an_early_answer_unless_it_was_cut_short() {
        let whole = |text: &str, cancelled, yielded| complete::Suggestion {
            text: text.into(),
            version: 1,
            stats: Generation { cancelled, yielded, ..Default::default() },
        };
        let opener = "for x in xs:";
        assert!(rest_replaces(opener, &whole("for x in xs:\n        total += x", false, false)), "goes on from it");
        assert!(rest_replaces(opener, &whole("", false, false)), "the whole answer is none: the opener goes");
        assert!(rest_replaces(opener, &whole("for y in ys:\n        g(y)", false, false)));
        assert!(!rest_replaces(opener, &whole("", true, false)), "cancelled");
        assert!(!rest_replaces(opener, &whole("", false, true)), "cut short for a request");
        assert!(rest_replaces(opener, &whole("for x in xs:\n        total", false, true)), "cut short, but it goes on");
        assert!(!rest_replaces(opener, &whole(opener, false, false)), "the same");
    }
}
