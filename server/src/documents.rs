//! Open documents: a rope, the client's version, and an incrementally edited
//! tree-sitter tree. Pure: no protocol types, no I/O.
//!
//! Positions arrive as (line, character) in the negotiated encoding
//! (UTF-8, UTF-16 or UTF-32 code units) and are converted to char indices of
//! the rope here. Lines end at LF, CR or CRLF, exactly as LSP counts them.

use ropey::Rope;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tree_sitter::{InputEdit, ParseOptions, ParseState, Parser, Point, Tree};

use crate::syntax::Language;

/// How the client counts characters within a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    Utf8,
    #[default]
    Utf16,
    Utf32,
}

impl Encoding {
    fn units(self, c: char) -> usize {
        match self {
            Encoding::Utf8 => c.len_utf8(),
            Encoding::Utf16 => c.len_utf16(),
            Encoding::Utf32 => 1,
        }
    }
}

/// A position as the client sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub character: u32,
}

impl Pos {
    pub fn new(line: u32, character: u32) -> Self {
        Pos { line, character }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PositionError {
    #[error("line {line} is past the end of the document ({lines} lines)")]
    LineOutOfRange { line: u32, lines: usize },
    #[error("character {character} is past the end of line {line} ({len} code units)")]
    CharacterOutOfRange { line: u32, character: u32, len: usize },
}

/// One content change: `range` None replaces the whole text.
#[derive(Debug, Clone)]
pub struct Change {
    pub range: Option<(Pos, Pos)>,
    pub text: String,
}

/// Number of chars in line `line` without its terminator.
fn line_len_chars(rope: &Rope, line: usize) -> usize {
    let slice = rope.line(line);
    let mut n = slice.len_chars();
    if n > 0 && slice.char(n - 1) == '\n' {
        n -= 1;
    }
    if n > 0 && slice.char(n - 1) == '\r' {
        n -= 1;
    }
    n
}

/// Converts a client position to a char index. Strict: errors past the end.
pub fn pos_to_char(rope: &Rope, pos: Pos, enc: Encoding) -> Result<usize, PositionError> {
    let line = pos.line as usize;
    if line >= rope.len_lines() {
        return Err(PositionError::LineOutOfRange { line: pos.line, lines: rope.len_lines() });
    }
    let start = rope.line_to_char(line);
    let len = line_len_chars(rope, line);
    let want = pos.character as usize;
    let mut units = 0usize;
    for (i, c) in rope.slice(start..start + len).chars().enumerate() {
        if units >= want {
            return Ok(start + i);
        }
        let u = enc.units(c);
        if units + u > want {
            // Inside a multi-unit character (half a surrogate pair): snap to its start.
            return Ok(start + i);
        }
        units += u;
    }
    if units >= want {
        Ok(start + len)
    } else {
        Err(PositionError::CharacterOutOfRange { line: pos.line, character: pos.character, len: units })
    }
}

/// Converts a client position to a char index, clamping past-the-end lines and
/// characters to the nearest valid place (what editors do with stale ranges).
pub fn pos_to_char_clamped(rope: &Rope, pos: Pos, enc: Encoding) -> usize {
    match pos_to_char(rope, pos, enc) {
        Ok(c) => c,
        Err(PositionError::LineOutOfRange { .. }) => rope.len_chars(),
        Err(PositionError::CharacterOutOfRange { .. }) => {
            let line = pos.line as usize;
            rope.line_to_char(line) + line_len_chars(rope, line)
        }
    }
}

/// Converts a char index back to a client position.
pub fn char_to_pos(rope: &Rope, char_idx: usize, enc: Encoding) -> Pos {
    let char_idx = char_idx.min(rope.len_chars());
    let line = rope.char_to_line(char_idx);
    let start = rope.line_to_char(line);
    let character: usize = rope.slice(start..char_idx).chars().map(|c| enc.units(c)).sum();
    Pos { line: line as u32, character: character as u32 }
}

/// How long `Document::tree` may spend reparsing after an edit, in the
/// thread's CPU time (time it spent preempted does not count, so what a
/// request sees does not depend on the machine's load). Most incremental
/// reparses of a 5,000-line file take well under a millisecond; the rare one
/// that re-reads much of the file (a character typed into indentation or a
/// string delimiter in Python) goes on in the background, and until it is
/// done the tree is the previous one with the edits applied.
pub const PARSE_BUDGET: Duration = Duration::from_millis(2);

/// The longest a request waits for the tree of the text as it is (a first
/// parse, or a reparse in the background). Some texts keep tree-sitter's
/// error recovery busy for minutes (seen with 1 MiB of fuzzed text), and
/// the message loop must not wait for that: past it, the request goes on
/// with the tree there is (the previous one with the edits applied, or
/// none) and the parse finishes in the background.
pub const EXACT_WAIT: Duration = Duration::from_secs(1);

/// After this many reparses in a row past `PARSE_BUDGET`, the next ones
/// start in the background at once: where the parser recovers from errors
/// all over the file (ggml's C sources: about 9 ms per reparse wherever the
/// edit is) every keystroke takes as long, and a try here first only costs
/// the request its budget. One that is quick again in the background brings
/// back the tries.
const SLOW_STREAK: u32 = 2;

fn point_at(rope: &Rope, byte: usize) -> Point {
    let row = rope.byte_to_line(byte);
    Point { row, column: byte - rope.line_to_byte(row) }
}

/// An open document.
pub struct Document {
    pub rope: Rope,
    pub version: i32,
    pub language: Language,
    parser: Option<Parser>,
    tree: Option<Tree>,
    tree_stale: bool,
    /// How long `tree` may reparse before the parse moves to the background
    /// (see `PARSE_BUDGET`).
    pub parse_budget: Duration,
    /// How long a request waits for the tree of the text as it is (see
    /// `EXACT_WAIT`).
    pub exact_wait: Duration,
    background: Option<BackgroundParse>,
    /// Reparses in a row that took longer than `parse_budget` (see `SLOW_STREAK`).
    slow_reparses: u32,
}

/// A reparse that ran past the parse budget, finishing on its own thread
/// with the document's parser; the tree it makes is of the text as it was
/// when it started.
struct BackgroundParse {
    /// The parser, its tree, and the thread's CPU time (wall time where
    /// that cannot be read).
    handle: JoinHandle<(Parser, Option<Tree>, Duration)>,
    /// The edits applied since it started, to bring its tree up to date;
    /// None once the whole text was replaced (its tree is of no use then).
    edits: Option<Vec<InputEdit>>,
    cancel: Arc<AtomicBool>,
    started: Instant,
    /// Started without a try within the budget first (see `SLOW_STREAK`):
    /// its CPU time says whether the next reparse tries again.
    at_once: bool,
}

/// The rope's text from `byte` to the end of its chunk, for tree-sitter.
fn read_rope(rope: &Rope, byte: usize) -> &[u8] {
    if byte >= rope.len_bytes() {
        return &[];
    }
    let (chunk, chunk_byte, _, _) = rope.chunk_at_byte(byte);
    &chunk.as_bytes()[byte - chunk_byte..]
}

impl Drop for Document {
    fn drop(&mut self) {
        if let Some(bg) = &self.background {
            bg.cancel.store(true, Ordering::Relaxed);
        }
    }
}

/// What one change did: it replaced chars `start..end` of the text before
/// it with `inserted` chars (for those that keep positions in the text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edit {
    pub start: usize,
    pub end: usize,
    pub inserted: usize,
}

/// An immutable view of a document for a request (cheap: the rope is shared).
#[derive(Clone)]
pub struct Snapshot {
    pub rope: Rope,
    pub version: i32,
    pub language: Language,
    pub tree: Option<Tree>,
    /// The prompt's prefix window start, see `context::Layout` (None in a
    /// snapshot of the text alone).
    pub window: Option<usize>,
    pub cross_file: Option<Arc<CrossFile>>,
    pub header: Option<(usize, Arc<str>)>,
}

/// Text from other files for the prompt (see `context::Layout::cross_file`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CrossFile {
    /// The window start it was chosen for.
    pub window: usize,
    /// The workspace root's folder name.
    pub repo: String,
    /// This document's path, relative to its workspace root.
    pub path: String,
    /// Other files' paths (relative) and the definitions taken from them.
    pub chunks: Vec<(String, String)>,
}

impl Document {
    pub fn new(text: &str, version: i32, language: Language) -> Self {
        let parser = crate::syntax::parser(language);
        Document {
            rope: Rope::from_str(text),
            version,
            language,
            parser,
            tree: None,
            tree_stale: true,
            parse_budget: PARSE_BUDGET,
            exact_wait: EXACT_WAIT,
            background: None,
            slow_reparses: 0,
        }
    }

    pub fn text(&self) -> String {
        self.rope.to_string()
    }

    /// Applies the changes of one `didChange` in arrival order (the LSP layer
    /// handles notifications in order, synchronously) and records the version.
    /// Returns what each change did, in order.
    pub fn apply_versioned(&mut self, version: i32, changes: Vec<Change>, enc: Encoding) -> Vec<Edit> {
        if version <= self.version {
            tracing::warn!(version, current = self.version, "didChange version did not increase");
        }
        let edits = changes.into_iter().map(|c| self.apply(c, enc)).collect();
        self.version = version;
        edits
    }

    /// Applies one content change.
    pub fn apply(&mut self, change: Change, enc: Encoding) -> Edit {
        let (start, end) = match change.range {
            None => (0, self.rope.len_chars()),
            Some((a, b)) => {
                let s = pos_to_char_clamped(&self.rope, a, enc);
                let e = pos_to_char_clamped(&self.rope, b, enc);
                (s.min(e), s.max(e))
            }
        };
        let done = Edit { start, end, inserted: change.text.chars().count() };
        let start_byte = self.rope.char_to_byte(start);
        let old_end_byte = self.rope.char_to_byte(end);
        let start_position = point_at(&self.rope, start_byte);
        let old_end_position = point_at(&self.rope, old_end_byte);
        if end > start {
            self.rope.remove(start..end);
        }
        if !change.text.is_empty() {
            self.rope.insert(start, &change.text);
        }
        let new_end_byte = start_byte + change.text.len();
        if change.range.is_none() {
            self.tree = None;
            if let Some(bg) = self.background.as_mut() {
                // Its tree is of no use now: stop it, so the parser comes back soon.
                bg.edits = None;
                bg.cancel.store(true, Ordering::Relaxed);
            }
        } else {
            let edit = InputEdit {
                start_byte,
                old_end_byte,
                new_end_byte,
                start_position,
                old_end_position,
                new_end_position: point_at(&self.rope, new_end_byte),
            };
            if let Some(tree) = self.tree.as_mut() {
                tree.edit(&edit);
            }
            if let Some(edits) = self.background.as_mut().and_then(|bg| bg.edits.as_mut()) {
                edits.push(edit);
            }
        }
        self.tree_stale = true;
        done
    }

    /// The syntax tree, reparsed incrementally from the rope if edits came in
    /// since the last parse. None for languages without a grammar.
    ///
    /// A reparse that runs past `parse_budget` goes on in the background;
    /// until it is done, this is the last tree with the edits since applied
    /// (positions shifted, structure as it was). Without a tree to fall back
    /// on (the first parse, or after the whole text was replaced) it parses
    /// in full here.
    pub fn tree(&mut self) -> Option<&Tree> {
        self.collect_background(None);
        if self.tree_stale && self.background.is_none() {
            if self.tree.is_none() {
                // Without a tree to fall back on, it is worth waiting longer.
                self.reparse(Some(self.exact_wait.max(self.parse_budget)));
            } else if self.slow_reparses >= SLOW_STREAK {
                self.parse_in_background(true);
            } else if self.reparse(Some(self.parse_budget)) {
                self.slow_reparses = 0;
            } else {
                self.slow_reparses += 1;
            }
        }
        self.tree.as_ref()
    }

    /// The syntax tree of the text as it is now: waits for a background
    /// reparse and reparses without a budget.
    ///
    /// It waits `exact_wait` at most, counted from the start of the parse;
    /// past that, see `tree_is_current`.
    pub fn exact_tree(&mut self) -> Option<&Tree> {
        let deadline = self.background.as_ref().map(|bg| bg.started + self.exact_wait);
        self.collect_background(deadline);
        if self.tree_stale && self.background.is_none() {
            self.reparse(Some(self.exact_wait.max(self.parse_budget)));
        }
        self.tree.as_ref()
    }

    /// Whether the tree is of the text as it is now (not the previous tree
    /// with edits applied, while a reparse is pending or in the background).
    pub fn tree_is_current(&self) -> bool {
        !self.tree_stale
    }

    /// Reparses here within `budget`; false when it went past it and goes on
    /// in the background.
    fn reparse(&mut self, budget: Option<Duration>) -> bool {
        let Some(parser) = self.parser.as_mut() else {
            self.tree_stale = false;
            return true;
        };
        let rope = &self.rope;
        let mut read = |byte: usize, _: Point| read_rope(rope, byte);
        let parsed = match budget {
            None => parser.parse_with_options(&mut read, self.tree.as_ref(), None),
            Some(budget) => {
                let wall = Instant::now();
                let cpu = cpu_time::ThreadTime::try_now().ok();
                // The wall clock first (cheap); past the budget, the thread's
                // CPU time (a system call) decides.
                let mut over =
                    |_: &ParseState| wall.elapsed() > budget && cpu.as_ref().is_none_or(|c| c.try_elapsed().map_or(true, |e| e > budget));
                let parsed =
                    parser.parse_with_options(&mut read, self.tree.as_ref(), Some(ParseOptions::new().progress_callback(&mut over)));
                if parsed.is_none() {
                    // Past the budget: the same parser resumes where it
                    // stopped, on its own thread.
                    self.parse_in_background(false);
                    return false;
                }
                parsed
            }
        };
        self.tree = parsed;
        self.tree_stale = false;
        true
    }

    /// Goes on with the parse on a thread of its own; `at_once`: without a
    /// try here first.
    fn parse_in_background(&mut self, at_once: bool) {
        let Some(mut parser) = self.parser.take() else { return };
        let rope = self.rope.clone();
        let old = self.tree.clone();
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = cancel.clone();
        let spawned = std::thread::Builder::new().name("locode-parse".into()).spawn(move || {
            let (wall, cpu) = (Instant::now(), cpu_time::ThreadTime::try_now().ok());
            let mut read = |byte: usize, _: Point| read_rope(&rope, byte);
            let mut cancelled = |_: &ParseState| stop.load(Ordering::Relaxed);
            let tree = parser.parse_with_options(&mut read, old.as_ref(), Some(ParseOptions::new().progress_callback(&mut cancelled)));
            if tree.is_none() {
                parser.reset();
            }
            (parser, tree, cpu.and_then(|c| c.try_elapsed().ok()).unwrap_or_else(|| wall.elapsed()))
        });
        match spawned {
            Ok(handle) => {
                self.background = Some(BackgroundParse { handle, edits: Some(Vec::new()), cancel, started: Instant::now(), at_once })
            }
            Err(e) => {
                // No thread: parse here after all, with a fresh parser.
                tracing::warn!("cannot start a parse thread: {e}");
                self.parser = crate::syntax::parser(self.language);
                self.reparse(None);
            }
        }
    }

    /// Takes the background parse's tree once it is done (waiting for it
    /// until `deadline` at most, or for a cancelled one until it stops) and
    /// brings it up to date with the edits made since.
    fn collect_background(&mut self, deadline: Option<Instant>) {
        let Some(bg) = self.background.as_ref() else { return };
        if bg.edits.is_some() {
            while !bg.handle.is_finished() && deadline.is_some_and(|d| Instant::now() < d) {
                std::thread::sleep(Duration::from_millis(1));
            }
            if !bg.handle.is_finished() {
                return;
            }
        }
        let bg = self.background.take().expect("checked above");
        match bg.handle.join() {
            Ok((parser, tree, cpu)) => {
                self.parser = Some(parser);
                // Quick this time: the next reparse tries here again.
                if bg.at_once && tree.is_some() && cpu <= self.parse_budget {
                    self.slow_reparses = 0;
                }
                if let (Some(mut tree), Some(edits)) = (tree, bg.edits) {
                    for e in &edits {
                        tree.edit(e);
                    }
                    self.tree = Some(tree);
                    self.tree_stale = !edits.is_empty();
                }
            }
            Err(_) => {
                tracing::error!("the background parse panicked");
                self.parser = crate::syntax::parser(self.language);
            }
        }
    }

    /// A snapshot of the text (with no prompt layout: see
    /// `context::Layout::snapshot`).
    pub fn snapshot(&mut self) -> Snapshot {
        let tree = self.tree().cloned();
        Snapshot {
            rope: self.rope.clone(),
            version: self.version,
            language: self.language,
            tree,
            window: None,
            cross_file: None,
            header: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::change as ch;

    #[test]
    fn utf16_positions_with_emoji_and_cjk() {
        let rope = Rope::from_str("a😀b\n漢字x\n");
        // 😀 is two UTF-16 units, four UTF-8 bytes, one scalar.
        assert_eq!(pos_to_char(&rope, Pos::new(0, 3), Encoding::Utf16), Ok(2));
        assert_eq!(pos_to_char(&rope, Pos::new(0, 5), Encoding::Utf8), Ok(2));
        assert_eq!(pos_to_char(&rope, Pos::new(0, 2), Encoding::Utf32), Ok(2));
        // Half a surrogate pair snaps to the start of the emoji.
        assert_eq!(pos_to_char(&rope, Pos::new(0, 2), Encoding::Utf16), Ok(1));
        // CJK: one UTF-16 unit, three UTF-8 bytes each.
        assert_eq!(pos_to_char(&rope, Pos::new(1, 2), Encoding::Utf16), Ok(6));
        assert_eq!(pos_to_char(&rope, Pos::new(1, 6), Encoding::Utf8), Ok(6));
        assert_eq!(char_to_pos(&rope, 6, Encoding::Utf16), Pos::new(1, 2));
        assert_eq!(char_to_pos(&rope, 6, Encoding::Utf8), Pos::new(1, 6));
        assert_eq!(char_to_pos(&rope, 2, Encoding::Utf16), Pos::new(0, 3));
    }

    #[test]
    fn combining_marks_count_per_scalar() {
        // "e" + COMBINING ACUTE ACCENT: two scalars, two UTF-16 units.
        let rope = Rope::from_str("e\u{301}x");
        assert_eq!(pos_to_char(&rope, Pos::new(0, 2), Encoding::Utf16), Ok(2));
        assert_eq!(pos_to_char(&rope, Pos::new(0, 3), Encoding::Utf8), Ok(2));
    }

    #[test]
    fn crlf_and_cr_lines() {
        let rope = Rope::from_str("ab\r\ncd\ref\n");
        assert_eq!(rope.len_lines(), 4);
        assert_eq!(pos_to_char(&rope, Pos::new(1, 1), Encoding::Utf16), Ok(5));
        assert_eq!(pos_to_char(&rope, Pos::new(2, 0), Encoding::Utf16), Ok(7));
        // The end of a line is before its CRLF, and nothing lies past it.
        assert_eq!(pos_to_char(&rope, Pos::new(0, 2), Encoding::Utf16), Ok(2));
        assert!(pos_to_char(&rope, Pos::new(0, 3), Encoding::Utf16).is_err());
        assert_eq!(char_to_pos(&rope, 5, Encoding::Utf16), Pos::new(1, 1));
    }

    #[test]
    fn only_lf_crlf_and_cr_end_lines() {
        // LSP counts lines at LF, CRLF and CR only: form feed, vertical tab,
        // NEL and the Unicode line and paragraph separators are ordinary
        // characters (ropey would count them with its `unicode_lines` feature).
        let rope = Rope::from_str("a\u{c}b\u{b}c\u{85}d\u{2028}e\u{2029}f\nx");
        assert_eq!(rope.len_lines(), 2);
        assert_eq!(pos_to_char(&rope, Pos::new(0, 11), Encoding::Utf16), Ok(11));
        assert_eq!(pos_to_char(&rope, Pos::new(1, 1), Encoding::Utf16), Ok(13));
        let mut doc = Document::new("x = 1\u{2028}\ny = 2\n", 1, Language::Python);
        doc.apply_versioned(2, vec![ch(1, 0, 1, 1, "z")], Encoding::Utf16);
        assert_eq!(doc.text(), "x = 1\u{2028}\nz = 2\n");
    }

    #[test]
    fn out_of_range_positions() {
        let rope = Rope::from_str("abc\n");
        assert!(matches!(pos_to_char(&rope, Pos::new(7, 0), Encoding::Utf16), Err(PositionError::LineOutOfRange { .. })));
        assert_eq!(pos_to_char_clamped(&rope, Pos::new(7, 0), Encoding::Utf16), 4);
        assert_eq!(pos_to_char_clamped(&rope, Pos::new(0, 99), Encoding::Utf16), 3);
    }

    #[test]
    fn incremental_edits_keep_text_and_tree() {
        let mut doc = Document::new("def f(a, b):\n    return a\n", 1, Language::Python);
        assert!(doc.tree().is_some());
        doc.apply_versioned(2, vec![ch(1, 12, 1, 12, " + b")], Encoding::Utf16);
        assert_eq!(doc.text(), "def f(a, b):\n    return a + b\n");
        doc.apply_versioned(3, vec![ch(0, 4, 0, 5, "add"), ch(1, 4, 1, 10, "yield")], Encoding::Utf16);
        assert_eq!(doc.text(), "def add(a, b):\n    yield a + b\n");
        let tree = doc.tree().unwrap().clone();
        assert!(!tree.root_node().has_error());
        // The incremental tree equals a fresh parse.
        let fresh = Document::new(&doc.text(), 0, Language::Python).tree().unwrap().root_node().to_sexp();
        assert_eq!(tree.root_node().to_sexp(), fresh);
        assert_eq!(doc.version, 3);
    }

    #[test]
    fn edits_across_non_ascii() {
        let mut doc = Document::new("s = \"😀😀\"\n", 1, Language::Python);
        // Replace the second emoji (UTF-16 columns 7..9).
        doc.apply_versioned(2, vec![ch(0, 7, 0, 9, "漢")], Encoding::Utf16);
        assert_eq!(doc.text(), "s = \"😀漢\"\n");
        doc.apply_versioned(3, vec![ch(0, 5, 0, 9, "é")], Encoding::Utf8);
        assert_eq!(doc.text(), "s = \"é漢\"\n");
        let fresh = Document::new(&doc.text(), 0, Language::Python).tree().unwrap().root_node().to_sexp();
        assert_eq!(doc.tree().unwrap().root_node().to_sexp(), fresh);
    }

    #[test]
    fn full_replacement_and_clamped_ranges() {
        let mut doc = Document::new("fn main() {}\n", 1, Language::Rust);
        doc.apply_versioned(2, vec![Change { range: None, text: "fn x() {}".into() }], Encoding::Utf16);
        assert_eq!(doc.text(), "fn x() {}");
        // A range past the end is clamped, not a crash.
        doc.apply_versioned(3, vec![ch(0, 9, 40, 2, "\n")], Encoding::Utf16);
        assert_eq!(doc.text(), "fn x() {}\n");
        assert!(!doc.tree().unwrap().root_node().has_error());
    }

    fn big_python() -> String {
        (0..400).map(|i| format!("def f{i}(a, b):\n    if a:\n        return a + b  # {i}\n    return \"s{i}\"\n\n")).collect()
    }

    fn fresh_sexp(text: &str) -> String {
        Document::new(text, 0, Language::Python).tree().unwrap().root_node().to_sexp()
    }

    /// A big document whose reparse after `edit` went to the background.
    fn reparsing_in_background(edit: Change) -> Document {
        let mut doc = Document::new(&big_python(), 1, Language::Python);
        doc.tree();
        doc.parse_budget = Duration::ZERO;
        doc.apply_versioned(2, vec![edit], Encoding::Utf16);
        doc.tree();
        assert!(doc.background.is_some(), "the reparse went to the background");
        doc
    }

    /// `tree` with an unlimited budget is of the text as it is, parsed here.
    fn assert_reparsed_here(doc: &mut Document) {
        doc.parse_budget = Duration::MAX;
        let tree = doc.tree().unwrap().root_node().to_sexp();
        assert!(doc.background.is_none() && !doc.tree_stale);
        assert!(tree == fresh_sexp(&doc.text()), "the tree is of the text as it is");
    }

    #[test]
    fn a_reparse_past_its_budget_finishes_in_the_background() {
        let mut doc = Document::new(&big_python(), 1, Language::Python);
        let before = doc.tree().unwrap().root_node().to_sexp();
        doc.parse_budget = Duration::ZERO;
        // Opening a string at the top turns the whole file into something else.
        doc.apply_versioned(2, vec![ch(0, 0, 0, 0, "\"\"\"")], Encoding::Utf16);
        let edited = doc.tree().unwrap().clone();
        assert!(doc.background.is_some(), "the reparse went to the background");
        // Until it is done: the previous tree, its positions moved by the edit.
        assert!(edited.root_node().to_sexp() == before, "the previous tree");
        assert_eq!(edited.root_node().child(0).unwrap().start_byte(), 3);
        // Edits while it runs are applied to what it makes.
        doc.apply_versioned(3, vec![ch(2, 8, 2, 14, "yield")], Encoding::Utf16);
        doc.apply_versioned(4, vec![ch(5, 0, 5, 0, "x = 1\n")], Encoding::Utf16);
        assert!(doc.text().starts_with("\"\"\"def f0(a, b):\n    if a:\n        yield a + b"));
        let exact = doc.exact_tree().unwrap().root_node().to_sexp();
        assert!(exact == fresh_sexp(&doc.text()), "the tree is of the text as it is");
        assert!(exact != before);
        assert!(doc.background.is_none() && !doc.tree_stale);
        // The parser came back: the next edit reparses here again.
        doc.apply_versioned(5, vec![ch(0, 0, 0, 3, "")], Encoding::Utf16);
        assert_reparsed_here(&mut doc);
    }

    #[test]
    fn reparses_that_keep_going_past_the_budget_start_in_the_background() {
        let mut doc = Document::new(&big_python(), 1, Language::Python);
        doc.tree();
        let mut version = 1;
        let mut type_x = |doc: &mut Document| {
            version += 1;
            doc.apply_versioned(version, vec![ch(3, 4, 3, 4, "x")], Encoding::Utf16);
            doc.tree();
            let in_place = doc.tree_is_current();
            doc.exact_tree();
            in_place
        };
        // Two past the budget (none fits in zero)...
        doc.parse_budget = Duration::ZERO;
        assert!(!type_x(&mut doc) && !type_x(&mut doc));
        // ... and the next starts in the background, though it would fit now.
        doc.parse_budget = Duration::MAX;
        assert!(!type_x(&mut doc), "no try here");
        // That one was quick: the tries are back.
        assert!(type_x(&mut doc), "reparsed here");
        assert!(doc.exact_tree().unwrap().root_node().to_sexp() == fresh_sexp(&doc.text()));
    }

    #[test]
    fn a_request_waits_for_the_exact_tree_only_so_long() {
        // A first parse and a reparse that take longer than a request may
        // wait (zero here; a second in the server) go on in the background.
        let mut doc = Document::new(&big_python(), 1, Language::Python);
        doc.parse_budget = Duration::ZERO;
        doc.exact_wait = Duration::ZERO;
        assert!(doc.exact_tree().is_none(), "no tree yet: the first parse went to the background");
        assert!(doc.background.is_some() && !doc.tree_is_current());
        doc.exact_wait = EXACT_WAIT;
        assert!(doc.exact_tree().is_some() && doc.tree_is_current(), "collected within the wait");
        doc.exact_wait = Duration::ZERO;
        doc.apply_versioned(2, vec![ch(0, 0, 0, 0, "\"\"\"")], Encoding::Utf16);
        assert!(doc.exact_tree().is_some(), "the previous tree, edits applied");
        assert!(doc.background.is_some() && !doc.tree_is_current());
        // A whole new text stops the parse of the old one at once.
        let t = Instant::now();
        doc.apply_versioned(3, vec![Change { range: None, text: "x = 1\n".into() }], Encoding::Utf16);
        doc.exact_wait = EXACT_WAIT;
        assert!(doc.exact_tree().unwrap().root_node().to_sexp() == fresh_sexp("x = 1\n"));
        assert!(t.elapsed() < EXACT_WAIT, "{:?}", t.elapsed());
    }

    #[test]
    fn a_background_reparse_is_collected_by_a_later_request() {
        let mut doc = reparsing_in_background(ch(3, 4, 3, 4, "  "));
        let t = Instant::now();
        while doc.background.as_ref().is_some_and(|bg| !bg.handle.is_finished()) {
            assert!(t.elapsed() < Duration::from_secs(30), "the background parse ends");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_reparsed_here(&mut doc);
    }

    #[test]
    fn a_whole_text_change_during_a_background_reparse() {
        let mut doc = reparsing_in_background(ch(0, 0, 0, 0, "'''"));
        doc.apply_versioned(3, vec![Change { range: None, text: "def g():\n    pass\n".into() }], Encoding::Utf16);
        assert!(doc.tree().unwrap().root_node().to_sexp() == fresh_sexp("def g():\n    pass\n"));
        // Closing a document whose reparse is running does not wait for it.
        doc.apply_versioned(4, vec![Change { range: None, text: big_python() }], Encoding::Utf16);
        doc.tree();
        doc.apply_versioned(5, vec![ch(0, 0, 0, 0, "'''")], Encoding::Utf16);
        doc.tree();
        assert!(doc.background.is_some());
        drop(doc);
    }
}
