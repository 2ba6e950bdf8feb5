//! Completion requests: `textDocument/inlineCompletion`,
//! `textDocument/completion` and `locode/lastStats`, all answered by
//! `suggest` (one request of each kind in flight per document, burst hold,
//! typed-through answers, early answers whose rest comes later).
//! Completion items go only to clients without inline completion unless
//! `completionItems` says otherwise.

use std::time::Instant;

use tower_lsp_server::jsonrpc::{Error as RpcError, Result};
use tower_lsp_server::ls_types::*;

use super::{invalid_params, to_pos, Backend, ModelState};
use crate::complete::{self, Suggestion};
use crate::documents;
use crate::engine::{CancelOnDrop, CancelToken, EngineError, Generation};
use crate::session::{Flight, FlightOutcome, FlightWait, Joined, Prepared, RequestKind, ShownSuggestion, Workspace};

/// A completion request that supersedes one that arrived less than this long
/// before it waits this long before it reaches the engine (see `suggest`). Keystrokes come 50 ms or more apart; bursts of requests from a
/// client without a debounce, or replayed edits, come faster.
const BURST_HOLD: std::time::Duration = std::time::Duration::from_millis(20);

/// Resolves once `token` is cancelled (a newer request, or the client's
/// cancel): a request waiting for a generation returns at once.
async fn cancelled(token: &CancelToken) {
    while !token.is_cancelled() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

impl Backend {
    /// Computes the suggestion at a position; None when there is nothing to
    /// offer (no model, cancelled, superseded, stale). A request supersedes
    /// only the one of its own kind: a client that asks for ghost text and
    /// items at each keystroke gets both.
    pub(super) async fn suggest(&self, uri: &Uri, position: Position, kind: RequestKind) -> Result<Option<(Suggestion, Range)>> {
        let key = uri.as_str().to_string();
        let enc = self.encoding();
        let mut cfg = self.state.config.read().unwrap().completion.clone();
        if !cfg.enabled {
            return Ok(None);
        }
        // Early answers only as ghost text, to a client that asks again
        // for the rest (a completion list shows one answer).
        if kind == RequestKind::Items || !*self.state.client_asks_again.read().unwrap() {
            cfg.early_answer_ms = 0;
        }
        let family = match &*self.state.model.read().unwrap() {
            ModelState::Ready { family, .. } => family.clone(),
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
        // in flight, and is answered (typed through the last suggestion),
        // joins the generation in flight (typed through what it generates)
        // or starts its own.
        let (snap, cursor, anchor, joined, burst) = {
            let mut docs = self.state.sessions.lock().unwrap();
            let session = docs.get_mut(&key).ok_or_else(|| invalid_params(format!("document not open: {key}")))?;
            let cursor = documents::pos_to_char(&session.doc.rope, to_pos(position), enc).map_err(invalid_params)?;
            let prepared = session.prepare(cursor, &cfg, workspace);
            let superseded = session.requests(kind).inflight.replace(cancel.clone());
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
            let joined = session.join(kind, cursor);
            // Requests that come faster than any can be answered (a client
            // that asks on every change, with no debounce of its own) wait a
            // moment first: the next one supersedes them before they cost
            // any evaluation, and the cores stay free for the messages still
            // coming in. A request that finds none in flight, or comes at
            // typing pace, goes to the engine at once.
            let now = Instant::now();
            let prev = session.requests(kind).last_request.replace(now);
            let burst = superseded.is_some() && prev.is_some_and(|t| now.duration_since(t) < BURST_HOLD);
            (snap, cursor, anchor, joined, burst)
        };
        let version = snap.version;
        let mut joined = Some(joined);
        let (suggestion, rest, typed) = loop {
            let (mut wait, typed) = match joined.take() {
                Some(Joined::Wait(wait, typed)) => (wait, typed),
                Some(Joined::Start) | None => {
                    if burst {
                        tokio::time::sleep(BURST_HOLD).await;
                    }
                    if cancel.is_cancelled() {
                        return Ok(None);
                    }
                    match self.start_flight(&key, kind, &snap, cursor, anchor, &family, &cfg) {
                        Some(wait) => (wait, String::new()),
                        None => return Ok(None),
                    }
                }
            };
            let another_way = wait.goes_another_way(&typed);
            let outcome = tokio::select! {
                o = wait.outcome() => o,
                _ = cancelled(&cancel) => return Ok(None),
                // Joined, but its text so far already differs from what was
                // typed: a generation of its own at once (which cancels it).
                _ = another_way => {
                    joined = Some(Joined::Start);
                    continue;
                }
            };
            let Some(outcome) = outcome else { return Ok(None) };
            let s = match &outcome.result {
                Ok(s) => s,
                // A remote engine's failure: an empty completion, and one
                // message per kind of failure.
                Err(EngineError::Remote(e)) => {
                    if let Some(m) = self.state.remote_errors.failed(e) {
                        self.client.show_message(MessageType::WARNING, m).await;
                    }
                    return Ok(None);
                }
                Err(e) => {
                    tracing::warn!("completion failed: {e}");
                    return Err(RpcError {
                        code: tower_lsp_server::jsonrpc::ErrorCode::InternalError,
                        message: e.to_string().into(),
                        data: None,
                    });
                }
            };
            self.state.remote_errors.succeeded();
            if s.stats.first_window {
                // Only to a client that asks again on suggestionReady, for
                // ghost text (a completion list is not asked again), at the
                // request's own cursor (one that joined a generation is not).
                let asks_again = kind == RequestKind::Inline && *self.state.client_asks_again.read().unwrap();
                let upgrade = (asks_again && typed.is_empty()).then_some(position);
                self.build_whole_prompt(key.clone(), snap.clone(), cursor, anchor, family.clone(), cfg.clone(), upgrade);
            }
            if typed.is_empty() {
                let rest = outcome.rest.lock().unwrap().take();
                break (s.clone(), rest, typed);
            }
            // Joined: what the generation brought past the typed text.
            match s.text.strip_prefix(typed.as_str()).filter(|r| !r.trim().is_empty()) {
                Some(r) => {
                    let stats = Generation { joined: true, ..s.stats.clone() };
                    let rest = outcome.rest.lock().unwrap().take();
                    break (Suggestion { text: r.to_string(), version, stats }, rest, typed);
                }
                // It went another way than the user: a generation of its own.
                None if !s.stats.cancelled => joined = Some(Joined::Start),
                None => return Ok(None),
            }
        };
        if let Some(session) = self.state.sessions.lock().unwrap().get_mut(&key) {
            let requests = session.requests(kind);
            if requests.inflight.as_ref().is_some_and(|t| t.same_as(&cancel)) {
                requests.inflight = None;
            }
        }
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
            let mut docs = self.state.sessions.lock().unwrap();
            let Some(session) = docs.get_mut(&key) else { return Ok(None) };
            session.last_stats = Some(suggestion.stats.clone());
            if suggestion.stats.cancelled || suggestion.text.is_empty() || session.doc.version != version {
                return Ok(None);
            }
            // An item answer does not replace the ghost text shown at the
            // same spot, whose rest may still be coming.
            let keep = kind == RequestKind::Items && session.last_suggestion.as_ref().is_some_and(|s| s.cursor == cursor);
            if !keep {
                session.last_suggestion = Some(ShownSuggestion::new(cursor, suggestion.text.clone()));
            }
        }
        if let Some(rest) = rest {
            self.offer_rest(uri.clone(), cursor, position, typed, suggestion.text.clone(), rest);
        }
        if cursor - anchor > cfg.middle_chars / 2 {
            self.warm_reanchored(key, snap, cursor, anchor, family, cfg);
        }
        Ok(Some((suggestion, range)))
    }

    /// Starts the generation for a request at `cursor` as its kind's
    /// flight (see `session::Flight`), and the request's wait for it; None
    /// when the document changed or closed since the request was planned.
    #[allow(clippy::too_many_arguments)]
    fn start_flight(
        &self,
        key: &str,
        kind: RequestKind,
        snap: &crate::documents::Snapshot,
        cursor: usize,
        anchor: usize,
        family: &crate::prompt::Family,
        cfg: &crate::config::CompletionConfig,
    ) -> Option<FlightWait> {
        let flight_cancel = CancelToken::new();
        let rest_cancel = CancelToken::new();
        let (wait, tx, progress) = {
            let mut docs = self.state.sessions.lock().unwrap();
            let session = docs.get_mut(key).filter(|s| s.doc.version == snap.version)?;
            let (flight, tx, progress) = Flight::start(cursor, flight_cancel.clone());
            let wait = flight.wait_handle();
            if let Some(old) = session.requests(kind).flight.replace(flight) {
                old.cancel.cancel();
            }
            // A ghost-text request ends the rest of the last early answer
            // (it may start its own); an item request leaves it running.
            if kind == RequestKind::Inline {
                if let Some(old) = session.continuation.replace(rest_cancel.clone()) {
                    old.cancel();
                }
            }
            (wait, tx, progress)
        };
        let engine = self.state.engine.clone();
        let (key, snap, family, cfg) = (key.to_string(), snap.clone(), family.clone(), cfg.clone());
        tokio::spawn(async move {
            let spot = complete::Spot { snap: &snap, cursor, anchor };
            let flow = complete::Flow { cancel: flight_cancel, rest_cancel, progress: Some(progress) };
            let result = complete::suggest_early(&engine, &family, &key, &spot, &cfg, flow).await;
            let outcome = match result {
                Ok((s, rest)) => FlightOutcome { result: Ok(s), rest: std::sync::Mutex::new(rest) },
                Err(e) => FlightOutcome { result: Err(e), rest: std::sync::Mutex::new(None) },
            };
            let _ = tx.send(Some(std::sync::Arc::new(outcome)));
        });
        Some(wait)
    }

    pub(super) async fn inline_completion(&self, params: InlineCompletionParams) -> Result<Option<InlineCompletionResponse>> {
        let tdp = params.text_document_position;
        let Some((s, range)) = self.suggest(&tdp.text_document.uri, tdp.position, RequestKind::Inline).await? else {
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

    pub(super) async fn completion_items(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        let tdp = params.text_document_position;
        // A client with ghost text gets none (`completionItems: auto`): the
        // same suggestion in its list would sit above the language's own.
        if !self.state.items_offered() {
            return Ok(Some(CompletionResponse::Array(vec![])));
        }
        let Some((s, _)) = self.suggest(&tdp.text_document.uri, tdp.position, RequestKind::Items).await? else {
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

    /// Statistics of the last completion for a document: prompt tokens,
    /// evaluated tokens, generated tokens and timings.
    pub(super) async fn last_stats(&self, params: TextDocumentIdentifier) -> Result<serde_json::Value> {
        let stats = self.state.sessions.lock().unwrap().get(params.uri.as_str()).and_then(|s| s.last_stats.clone());
        Ok(serde_json::to_value(stats).unwrap_or_default())
    }

    /// The identifier characters before the cursor, which completion clients
    /// filter items by; the completion item replaces them with themselves plus
    /// the suggestion.
    fn word_before(&self, uri: &Uri, position: Position) -> Option<(String, Position)> {
        let enc = self.encoding();
        let docs = self.state.sessions.lock().unwrap();
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
