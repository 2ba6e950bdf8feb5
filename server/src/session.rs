//! A completion session per open document: the document's text state and
//! everything completion keeps for it between requests (the prompt's layout
//! and cross-file picks, the last suggestion shown, the request in flight,
//! the rest of an early answer, the last request's time and statistics).
//! No protocol types: the server and `locode complete` both start a
//! completion with `Session::prepare`.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::complete::{self, Progress, Rest, Suggestion};
use crate::config::CompletionConfig;
use crate::context::{self, Layout};
use crate::documents::{Change, Document, Edit, Encoding, Snapshot};
use crate::engine::{CancelToken, EngineError, Generation};
use crate::index::WorkspaceIndex;

/// A suggestion as it was shown: the cursor it was for and its text. Edits
/// since then have all been within `cursor..typed_end` (what the user typed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownSuggestion {
    pub cursor: usize,
    pub text: String,
    pub typed_end: usize,
}

impl ShownSuggestion {
    pub fn new(cursor: usize, text: String) -> Self {
        ShownSuggestion { cursor, text, typed_end: cursor }
    }
}

/// Where the definitions of other files come from: the workspace index and
/// the document's own file.
#[derive(Clone, Copy)]
pub struct Workspace<'a> {
    pub index: &'a WorkspaceIndex,
    pub path: &'a Path,
}

/// The two kinds of completion request: ghost text
/// (`textDocument/inlineCompletion`) and completion items
/// (`textDocument/completion`). Each kind has its own request in flight, so
/// a client that sends both never has one cancel the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Inline,
    Items,
}

/// One kind's newest request: a newer one of the same kind cancels it.
#[derive(Default)]
pub struct Requests {
    pub inflight: Option<CancelToken>,
    /// The generation the newest request waits for (see `Flight`).
    pub flight: Option<Flight>,
    /// When the last request arrived (burst hold).
    pub last_request: Option<Instant>,
}

/// How long a generation nobody waits for any more (its request cancelled
/// by the client) goes on: long enough for the request of the key that
/// follows the cancel to join it.
const ORPHAN_GRACE: Duration = Duration::from_millis(300);

/// What a generation ended with: the suggestion (or the early part of it)
/// and the rest of an early answer, which the first request still current
/// takes.
pub struct FlightOutcome {
    pub result: Result<Suggestion, EngineError>,
    pub rest: Mutex<Option<Rest>>,
}

/// A generation started for one request, which later requests join when
/// the user typed only at its cursor since: typing through the text it is
/// generating, a key waits for its answer instead of starting over. Typing
/// at once in a fresh file would otherwise cancel every answer before its
/// first line is done. Cancelled by an edit elsewhere, by a request that
/// does not join it, or once no request has waited for it for a moment.
pub struct Flight {
    /// Where it completes; every edit since lies in `cursor..typed_end`.
    pub cursor: usize,
    pub typed_end: usize,
    pub cancel: CancelToken,
    outcome: tokio::sync::watch::Receiver<Option<Arc<FlightOutcome>>>,
    /// The text generated past its cursor so far.
    partial: tokio::sync::watch::Receiver<String>,
    waiting: Arc<AtomicUsize>,
}

/// Sends a flight's outcome (see `Flight::start`).
pub type FlightSender = tokio::sync::watch::Sender<Option<Arc<FlightOutcome>>>;

impl Flight {
    /// A flight at `cursor`, the sender its generation ends with, and the
    /// progress callback its generation reports its text to.
    pub fn start(cursor: usize, cancel: CancelToken) -> (Flight, FlightSender, Progress) {
        let (tx, outcome) = tokio::sync::watch::channel(None);
        let (partial_tx, partial) = tokio::sync::watch::channel(String::new());
        let progress: Progress = Arc::new(move |text: &str| {
            partial_tx.send_replace(text.to_string());
        });
        (Flight { cursor, typed_end: cursor, cancel, outcome, partial, waiting: Arc::default() }, tx, progress)
    }

    /// Ended (or dropped by its generation's task).
    pub fn finished(&self) -> bool {
        self.outcome.borrow().is_some() || self.outcome.has_changed().is_err()
    }

    /// A request at `cursor` can wait for this flight.
    fn joinable(&self, cursor: usize) -> bool {
        cursor == self.typed_end && !self.cancel.is_cancelled()
    }

    /// A handle to wait with; while none is held, the flight is cancelled
    /// after `ORPHAN_GRACE`.
    pub fn wait_handle(&self) -> FlightWait {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        FlightWait {
            outcome: self.outcome.clone(),
            partial: self.partial.clone(),
            waiting: self.waiting.clone(),
            cancel: self.cancel.clone(),
        }
    }
}

/// A request's wait for a flight.
pub struct FlightWait {
    outcome: tokio::sync::watch::Receiver<Option<Arc<FlightOutcome>>>,
    partial: tokio::sync::watch::Receiver<String>,
    waiting: Arc<AtomicUsize>,
    cancel: CancelToken,
}

impl FlightWait {
    /// The outcome; None when the generation's task went away without one.
    pub async fn outcome(&mut self) -> Option<Arc<FlightOutcome>> {
        self.outcome.wait_for(|o| o.is_some()).await.ok().and_then(|o| o.clone())
    }

    /// Resolves as soon as the text generated so far goes another way than
    /// `typed` (never, if it does not): the answer would be of no use, and
    /// each token more delays the generation that fits what was typed.
    pub fn goes_another_way(&self, typed: &str) -> impl std::future::Future<Output = ()> + 'static {
        let (mut partial, typed) = (self.partial.clone(), typed.to_string());
        async move {
            // Nothing typed yet: nothing to go against, no look at each token.
            if typed.is_empty() || partial.wait_for(|p| diverges(p, &typed)).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Whether a generation's text so far can no longer start with `typed`.
/// Only within a line: across lines, post-processing may re-indent.
fn diverges(partial: &str, typed: &str) -> bool {
    if typed.contains('\n') {
        return false;
    }
    !(partial.starts_with(typed) || typed.starts_with(partial))
}

impl Drop for FlightWait {
    fn drop(&mut self) {
        if self.waiting.fetch_sub(1, Ordering::AcqRel) != 1 || self.outcome.borrow().is_some() {
            return;
        }
        let (waiting, cancel) = (self.waiting.clone(), self.cancel.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                tokio::time::sleep(ORPHAN_GRACE).await;
                if waiting.load(Ordering::Acquire) == 0 {
                    cancel.cancel();
                }
            });
        } else {
            cancel.cancel();
        }
    }
}

/// How a request at a cursor relates to its kind's flight.
pub enum Joined {
    /// It waits for the flight; the text typed since the flight's cursor.
    Wait(FlightWait, String),
    /// It starts a flight of its own.
    Start,
}

/// What a completion request starts from.
pub enum Prepared {
    /// The user typed the start of the last suggestion: the rest of it
    /// still stands (no model run needed).
    TypedThrough(String),
    /// A prompt to run: the snapshot it is made from and its anchor.
    Fresh { snap: Snapshot, anchor: usize },
}

/// An open document and its completion state.
pub struct Session {
    pub doc: Document,
    /// Anchor, window, header and cross-file picks of the prompt.
    pub layout: Layout,
    /// The last suggestion shown, for answering typed-through requests;
    /// cleared by any edit that starts before its cursor.
    pub last_suggestion: Option<ShownSuggestion>,
    /// The newest ghost-text request and the newest item request.
    pub inline: Requests,
    pub items: Requests,
    /// Stops the background rest of the last early answer.
    pub continuation: Option<CancelToken>,
    /// Statistics of the last completion.
    pub last_stats: Option<Generation>,
}

/// A session reads as its document (rope, version, tree, language) for
/// handlers that need only the text.
impl Deref for Session {
    type Target = Document;
    fn deref(&self) -> &Document {
        &self.doc
    }
}

impl DerefMut for Session {
    fn deref_mut(&mut self) -> &mut Document {
        &mut self.doc
    }
}

impl Session {
    pub fn new(doc: Document) -> Self {
        Session {
            doc,
            layout: Layout::default(),
            last_suggestion: None,
            inline: Requests::default(),
            items: Requests::default(),
            continuation: None,
            last_stats: None,
        }
    }

    /// Applies the changes of one `didChange` (see
    /// `Document::apply_versioned`) and drops what they invalidate.
    pub fn apply_versioned(&mut self, version: i32, changes: Vec<Change>, enc: Encoding) {
        for e in self.doc.apply_versioned(version, changes, enc) {
            self.edited(e);
        }
    }

    /// Applies one content change and drops what it invalidates.
    pub fn apply(&mut self, change: Change, enc: Encoding) {
        let e = self.doc.apply(change, enc);
        self.edited(e);
    }

    fn edited(&mut self, e: Edit) {
        self.layout.edited(e.start);
        for r in [&mut self.inline, &mut self.items] {
            if let Some(f) = r.flight.as_mut() {
                if e.start < f.cursor || e.end > f.typed_end {
                    // Its answer no longer fits the text: free the engine now.
                    f.cancel.cancel();
                    r.flight = None;
                } else {
                    f.typed_end = f.typed_end - (e.end - e.start) + e.inserted;
                }
            }
        }
        if let Some(s) = self.last_suggestion.as_mut() {
            if e.start < s.cursor || e.end > s.typed_end {
                // An edit before the suggestion or into the text after it.
                self.last_suggestion = None;
            } else {
                s.typed_end = s.typed_end - (e.end - e.start) + e.inserted;
            }
        }
    }

    /// If the text typed since `last_suggestion` was shown is the start of
    /// that suggestion, the rest of it (typed-through: no model run needed).
    pub fn typed_through(&self, cursor: usize) -> Option<String> {
        let s = self.last_suggestion.as_ref()?;
        // (At the suggestion's own cursor, with nothing typed: all of it, as
        // when the client asks again once the rest of an early answer is in;
        // even nothing, when that rest came to nothing: generating again
        // would show the same early answer again.)
        if cursor < s.cursor || cursor != s.typed_end {
            return None;
        }
        let typed: String = self.doc.rope.slice(s.cursor..cursor).chars().collect();
        let rest = s.text.strip_prefix(typed.as_str())?;
        (typed.is_empty() || !rest.trim().is_empty()).then(|| rest.to_string())
    }

    /// A snapshot for a request: the text with the prompt's layout.
    pub fn snapshot(&mut self) -> Snapshot {
        self.layout.snapshot(&mut self.doc)
    }

    /// A completion request at `cursor`: the rest of the last suggestion if
    /// the user typed through it, else the prompt's snapshot and anchor
    /// (planned, with other files' definitions picked for a new window).
    pub fn prepare(&mut self, cursor: usize, cfg: &CompletionConfig, workspace: Option<Workspace<'_>>) -> Prepared {
        match self.typed_through(cursor) {
            Some(text) => {
                // The layout follows the cursor all the same.
                context::plan(&mut self.doc, &mut self.layout, cursor, cfg);
                Prepared::TypedThrough(text)
            }
            None => {
                let (snap, anchor) = self.plan(cursor, cfg, workspace);
                Prepared::Fresh { snap, anchor }
            }
        }
    }

    /// The prompt's snapshot and anchor for `cursor` (a request, or a
    /// warm-up of the cache).
    pub fn plan(&mut self, cursor: usize, cfg: &CompletionConfig, workspace: Option<Workspace<'_>>) -> (Snapshot, usize) {
        let anchor = context::plan(&mut self.doc, &mut self.layout, cursor, cfg);
        if let Some(ws) = workspace {
            self.refresh_cross_file(ws, cursor, cfg);
        }
        (self.snapshot(), anchor)
    }

    /// Picks the definitions from other files for the prompt when its
    /// window has none yet (a new window, or the first request): they stay
    /// until the window moves, so the cached prompt stays valid.
    fn refresh_cross_file(&mut self, ws: Workspace<'_>, cursor: usize, cfg: &CompletionConfig) {
        let Some(window) = self.layout.window else { return };
        if cfg.cross_file_chars == 0 || self.layout.cross_file.as_ref().is_some_and(|c| c.window == window) {
            return;
        }
        // Picked for the whole window: from the tree as the text is now.
        self.doc.exact_tree();
        let snap = self.doc.snapshot();
        let cf = complete::cross_file(ws.index, ws.path, &snap, cursor, window, cfg.cross_file_chars);
        tracing::debug!(files = cf.chunks.len(), chars = cf.chunks.iter().map(|c| c.1.len()).sum::<usize>(), "cross-file context");
        self.layout.cross_file = Some(Arc::new(cf));
    }

    /// The requests of one kind.
    pub fn requests(&mut self, kind: RequestKind) -> &mut Requests {
        match kind {
            RequestKind::Inline => &mut self.inline,
            RequestKind::Items => &mut self.items,
        }
    }

    /// A request of `kind` at `cursor` joins the flight in progress if the
    /// user typed only at its cursor since; else that flight is cancelled
    /// and the request starts its own.
    pub fn join(&mut self, kind: RequestKind, cursor: usize) -> Joined {
        let flight = self.requests(kind).flight.take();
        match flight {
            Some(f) if f.joinable(cursor) => {
                let typed: String = self.doc.rope.slice(f.cursor..cursor).chars().collect();
                let wait = f.wait_handle();
                self.requests(kind).flight = Some(f);
                Joined::Wait(wait, typed)
            }
            Some(f) => {
                f.cancel.cancel();
                Joined::Start
            }
            None => Joined::Start,
        }
    }

    /// No completion request or generation of either kind in flight. A
    /// request's token is cancelled once it is answered, whichever way
    /// (`CancelOnDrop`), so a token left behind (an answer typed through)
    /// is none: that one kept the session busy until the next request, and
    /// the whole prompt's upgrade and warm-ups waited for it in vain.
    pub fn idle(&self) -> bool {
        [&self.inline, &self.items]
            .iter()
            .all(|r| r.inflight.as_ref().is_none_or(CancelToken::is_cancelled) && r.flight.as_ref().is_none_or(Flight::finished))
    }

    /// Cancels the requests in flight (the document is closed, or the
    /// client leaves).
    pub fn cancel_requests(&mut self) {
        for r in [&mut self.inline, &mut self.items] {
            if let Some(t) = &r.inflight {
                t.cancel();
            }
            if let Some(f) = r.flight.take() {
                f.cancel.cancel();
            }
        }
    }

    /// Drops the answers made so far (the last one shown, and the
    /// generations keys could join): settings changed.
    pub fn forget_answers(&mut self) {
        self.last_suggestion = None;
        for r in [&mut self.inline, &mut self.items] {
            if let Some(f) = r.flight.take() {
                f.cancel.cancel();
            }
        }
    }

    /// Cancels the requests in flight and the rest of the last early answer
    /// (the document is closed).
    pub fn close(mut self) {
        self.cancel_requests();
        if let Some(t) = self.continuation {
            t.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::Language;

    use crate::fixture::change as ch;

    #[test]
    fn a_request_answered_is_no_longer_in_flight() {
        let mut s = Session::new(Document::new("x = 1\n", 1, Language::Python));
        assert!(s.idle());
        let token = CancelToken::new();
        s.requests(RequestKind::Inline).inflight = Some(token.clone());
        assert!(!s.idle(), "a request in flight");
        // Answered (typed through, say): its guard cancels the token.
        token.cancel();
        assert!(s.idle(), "its token left behind is no request");
    }

    #[test]
    fn typed_through_and_anchor_invalidation() {
        let mut s = Session::new(Document::new("x = \ny = 2\n", 1, Language::Python));
        s.layout.anchor = Some(0);
        s.last_suggestion = Some(ShownSuggestion::new(4, "compute(1)".into()));
        assert_eq!(s.typed_through(4).as_deref(), Some("compute(1)"), "asked again where it was shown");
        assert_eq!(s.typed_through(3), None);
        let kept = s.last_suggestion.replace(ShownSuggestion::new(4, String::new()));
        assert_eq!(s.typed_through(4).as_deref(), Some(""), "an early answer's rest that came to nothing");
        s.last_suggestion = kept;
        s.apply_versioned(2, vec![ch(0, 4, 0, 4, "com")], Encoding::Utf16);
        assert_eq!(s.typed_through(7).as_deref(), Some("pute(1)"));
        assert_eq!(s.layout.anchor, Some(0), "an edit after the anchor keeps it");
        // Typing something else: no typed-through.
        s.apply_versioned(3, vec![ch(0, 7, 0, 7, "X")], Encoding::Utf16);
        assert_eq!(s.typed_through(8), None);
        // Backspace over it: typed-through again.
        s.apply_versioned(4, vec![ch(0, 7, 0, 8, "")], Encoding::Utf16);
        assert_eq!(s.typed_through(7).as_deref(), Some("pute(1)"));
        // An edit after the cursor changes the suffix: no typed-through.
        s.apply_versioned(5, vec![ch(1, 4, 1, 5, "3")], Encoding::Utf16);
        assert_eq!(s.typed_through(7), None);
        assert_eq!(s.last_suggestion, None);
        // An edit before the anchor or the suggestion clears them.
        s.layout.anchor = Some(4);
        s.apply_versioned(6, vec![ch(0, 0, 0, 1, "z")], Encoding::Utf16);
        assert_eq!(s.layout.anchor, None);
        assert_eq!(s.last_suggestion, None);
    }

    #[tokio::test]
    async fn keys_typed_at_a_generations_cursor_join_it_and_other_edits_cancel_it() {
        let mut s = Session::new(Document::new("x = \ny = 2\n", 1, Language::Python));
        assert!(matches!(s.join(RequestKind::Inline, 4), Joined::Start), "nothing in flight");
        let cancel = CancelToken::new();
        let (flight, tx, progress) = Flight::start(4, cancel.clone());
        let first = flight.wait_handle();
        s.inline.flight = Some(flight);
        assert!(!s.idle(), "a generation runs");
        // Two keys typed at its cursor: the request of each joins it, with what was typed.
        s.apply_versioned(2, vec![ch(0, 4, 0, 4, "c")], Encoding::Utf16);
        s.apply_versioned(3, vec![ch(0, 5, 0, 5, "o")], Encoding::Utf16);
        let Joined::Wait(mut wait, typed) = s.join(RequestKind::Inline, 6) else { panic!("typed at its cursor") };
        assert_eq!(typed, "co");
        assert!(matches!(s.join(RequestKind::Items, 6), Joined::Start), "the other kind has its own");
        // Its text so far agrees with the keys (shorter, then longer): the wait goes on.
        let quiet = Duration::from_millis(20);
        progress("c");
        assert!(tokio::time::timeout(quiet, wait.goes_another_way(&typed)).await.is_err());
        progress("compu");
        assert!(tokio::time::timeout(quiet, wait.goes_another_way(&typed)).await.is_err());
        // The first request goes away: the joined one still waits, nothing is cancelled.
        drop(first);
        tokio::time::sleep(ORPHAN_GRACE * 2).await;
        assert!(!cancel.is_cancelled());
        let stats = Generation::default();
        let outcome = FlightOutcome { result: Ok(Suggestion { text: "compute(1)".into(), version: 1, stats }), rest: Mutex::new(None) };
        tx.send(Some(Arc::new(outcome))).unwrap();
        let got = wait.outcome().await.expect("an outcome");
        assert_eq!(got.result.as_ref().unwrap().text, "compute(1)");
        assert!(s.idle(), "it ended");
        // A request elsewhere (no edit) does not join it and cancels it.
        assert!(matches!(s.join(RequestKind::Inline, 2), Joined::Start));
        assert!(cancel.is_cancelled());

        // An edit before its cursor cancels a generation in flight at once.
        let cancel = CancelToken::new();
        s.inline.flight = Some(Flight::start(6, cancel.clone()).0);
        s.apply_versioned(4, vec![ch(1, 0, 1, 1, "z")], Encoding::Utf16);
        assert!(cancel.is_cancelled() && s.inline.flight.is_none(), "an edit after the typed text");

        // Nobody waits any more (the client cancelled its request, no key followed): cancelled after a moment.
        let cancel = CancelToken::new();
        let (flight, _tx, _) = Flight::start(6, cancel.clone());
        drop(flight.wait_handle());
        s.inline.flight = Some(flight);
        tokio::time::sleep(ORPHAN_GRACE * 2).await;
        assert!(cancel.is_cancelled(), "an orphan generation stops");

        // A generation whose text so far went another way than the keys: the waiting request learns at once.
        let (flight, _tx, progress) = Flight::start(4, CancelToken::new());
        let wait = flight.wait_handle();
        progress("pr");
        assert!(tokio::time::timeout(quiet, wait.goes_another_way("co")).await.is_ok());
        assert!(tokio::time::timeout(quiet, wait.goes_another_way("p\nx")).await.is_err(), "not across lines");

        // New settings: no answer made under the old ones is joined.
        let cancel = CancelToken::new();
        s.inline.flight = Some(Flight::start(6, cancel.clone()).0);
        s.forget_answers();
        assert!(cancel.is_cancelled() && matches!(s.join(RequestKind::Inline, 6), Joined::Start));
    }

    #[test]
    fn a_typed_through_request_still_plans_and_a_fresh_one_snapshots_the_layout() {
        let text: String = (0..400).map(|i| format!("x{i} = {i}\n")).collect();
        let mut s = Session::new(Document::new(&text, 1, Language::Python));
        let cfg = CompletionConfig::default();
        let cursor = s.doc.rope.line_to_char(390);
        let Prepared::Fresh { snap, anchor } = s.prepare(cursor, &cfg, None) else { panic!("nothing shown yet") };
        assert_eq!(anchor, cursor);
        assert!(snap.window.is_some_and(|w| w > 0) && snap.window == s.layout.window);
        assert_eq!(snap.header, s.layout.header);
        s.last_suggestion = Some(ShownSuggestion::new(cursor, "y = 1\n".into()));
        s.layout = Layout::default();
        assert!(matches!(s.prepare(cursor, &cfg, None), Prepared::TypedThrough(t) if t == "y = 1\n"));
        assert_eq!(s.layout.anchor, Some(cursor));
    }
}
