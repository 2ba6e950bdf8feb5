//! Test fixtures: source text with markers, shared by the unit tests.
//!
//! The markers:
//! - `$0` is the cursor: `"x = foo.ba$0\n"`.
//! - `$0` … `$1` is a selection, from `$0` to `$1`: `"fn f() {\n    $0g(x);$1\n}\n"`.
//!
//! A fixture has exactly one `$0` (and at most one `$1`, after it). Offsets
//! are byte offsets into the text with the markers taken out; `document` and
//! `context` turn the cursor into the char index the rope counts in.

use std::ops::Range;

use crate::config::CompletionConfig;
use crate::context::CompletionContext;
use crate::documents::{Change, Document, Pos};
use crate::syntax::Language;

/// The cursor, or where a selection starts.
pub(crate) const CURSOR: &str = "$0";
/// Where a selection ends.
pub(crate) const SELECTION_END: &str = "$1";

/// A `didChange` content change replacing `(l1, c1)..(l2, c2)` with `text`.
pub(crate) fn change(l1: u32, c1: u32, l2: u32, c2: u32, text: &str) -> Change {
    Change { range: Some((Pos::new(l1, c1), Pos::new(l2, c2))), text: text.into() }
}

/// The text of `fixture` without its `$0` cursor, and the cursor's byte
/// offset in it. Panics unless there is exactly one `$0` and no `$1`.
pub(crate) fn cursor(fixture: &str) -> (String, usize) {
    assert!(!fixture.contains(SELECTION_END), "a cursor fixture has no {SELECTION_END}: {fixture:?}");
    take_marker(fixture, CURSOR)
}

/// The text of `fixture` without its markers, and the byte range selected
/// from `$0` to `$1`. Panics unless there is one of each, `$0` first.
pub(crate) fn selection(fixture: &str) -> (String, Range<usize>) {
    let (text, start) = take_marker(fixture, CURSOR);
    let (text, end) = take_marker(&text, SELECTION_END);
    assert!(start <= end, "{CURSOR} comes before {SELECTION_END}: {fixture:?}");
    (text, start..end)
}

/// A document of `lang` holding the fixture's text (version 1), and the
/// `$0` cursor as a char index.
pub(crate) fn document(lang: Language, fixture: &str) -> (Document, usize) {
    let (text, at) = cursor(fixture);
    let doc = Document::new(&text, 1, lang);
    let at = doc.rope.byte_to_char(at);
    (doc, at)
}

/// The completion context at the `$0` cursor, anchored at the cursor, with
/// the default settings.
pub(crate) fn context(lang: Language, fixture: &str) -> CompletionContext {
    let (mut doc, at) = document(lang, fixture);
    crate::context::build(&doc.snapshot(), at, at, &CompletionConfig::default())
}

/// Takes the one `marker` out of `fixture`: the text without it and its byte offset.
fn take_marker(fixture: &str, marker: &str) -> (String, usize) {
    let mut found = fixture.match_indices(marker);
    let Some((at, _)) = found.next() else { panic!("fixture has no {marker}: {fixture:?}") };
    assert!(found.next().is_none(), "fixture has more than one {marker}: {fixture:?}");
    (format!("{}{}", &fixture[..at], &fixture[at + marker.len()..]), at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_a_byte_offset_in_the_text_without_it() {
        assert_eq!(cursor("x = foo.ba$0\n"), ("x = foo.ba\n".to_string(), 10));
        assert_eq!(cursor("$0fn f() {}\n"), ("fn f() {}\n".to_string(), 0));
        assert_eq!(cursor("é = 1$0"), ("é = 1".to_string(), 6));
    }

    #[test]
    fn a_document_counts_the_cursor_in_chars() {
        let (doc, at) = document(Language::Python, "é = 1$0\n");
        assert_eq!(doc.rope.to_string(), "é = 1\n");
        assert_eq!(at, 5);
    }

    #[test]
    fn a_selection_runs_from_the_cursor_marker_to_the_end_marker() {
        let (text, range) = selection("fn f() {\n    $0g(x);$1\n}\n");
        assert_eq!(text, "fn f() {\n    g(x);\n}\n");
        assert_eq!(&text[range], "g(x);");
        assert_eq!(selection("a$0$1b"), ("ab".to_string(), 1..1));
    }

    #[test]
    #[should_panic(expected = "more than one")]
    fn two_cursors_are_a_mistake() {
        cursor("a$0b$0");
    }

    #[test]
    #[should_panic(expected = "comes before")]
    fn a_selection_ends_after_it_starts() {
        selection("a$1b$0c");
    }
}
