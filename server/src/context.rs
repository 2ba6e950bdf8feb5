//! Chooses what the model sees for a completion: the prefix/suffix window
//! around the cursor and whether a single line or a block is wanted. Pure.

use crate::config::CompletionConfig;
use crate::documents::{CrossFile, Document, Snapshot};
use crate::syntax::Language;
use ropey::Rope;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Complete the rest of the current line.
    SingleLine,
    /// Complete the body of the block the cursor opens; lines indented deeper
    /// than `opener_indent` belong to it.
    Block { opener_indent: usize },
}

#[derive(Debug, Clone)]
pub struct CompletionContext {
    pub language: Language,
    /// Text before the anchor (or the cursor), within the window.
    pub prefix: String,
    /// Text after the cursor, within the window.
    pub suffix: String,
    /// Text between the anchor and the cursor (empty when anchored at the cursor).
    pub middle: String,
    pub mode: Mode,
    /// The cursor line before / after the cursor.
    pub line_prefix: String,
    pub line_suffix: String,
    /// The first non-blank line after the cursor line, trimmed.
    pub next_line: Option<String>,
    /// The partial word and blanks just before the cursor, left out of the
    /// prompt and expected at the start of the generation instead (token
    /// healing). A prompt that ends in a lone space or half a word makes the
    /// model start a new token (" b" after "a + ", " ** 2" after "rad").
    pub heal: String,
    /// On an open line (nothing on the cursor's line but blanks) or at the
    /// end of a line: the indentation of the line that starts the innermost scope around the
    /// cursor (function, class, impl). A multi-line answer stays deeper than
    /// that: a line at or above it has left the scope.
    pub scope_indent: Option<usize>,
    /// Char index where the prefix window starts.
    pub window_start: usize,
    /// The cursor's line holds only its indentation, and that is where the
    /// line's code starts (see `settled_indent`): the answer's first line
    /// starts at the cursor, never deeper.
    pub settled_indent: bool,
}

/// Width of a line's leading whitespace (a tab counts as four).
pub fn indent_width(line: &str) -> usize {
    line.chars().take_while(|c| *c == ' ' || *c == '\t').map(|c| if c == '\t' { 4 } else { 1 }).sum()
}

fn line_text(rope: &Rope, line: usize) -> String {
    let s = rope.line(line).to_string();
    s.trim_end_matches(['\n', '\r']).to_string()
}

/// Where the prompt is anchored: everything before the anchor is the FIM
/// prefix, the text from the anchor to the cursor goes after the middle
/// token. Keeping the anchor while the user types keeps the whole prompt up
/// to the middle token identical, so the KV cache is reused exactly and a
/// keystroke costs only its own tokens. `current` is kept while it is before
/// the cursor and at most `budget` chars behind it; otherwise the new anchor
/// is the start of the cursor's line (or the cursor itself on a line longer
/// than the budget). In a language whose prefix keeps a line's indentation
/// (`Grammar::indentation_in_prefix`), a fresh anchor on a line follows
/// its indentation: the prefix ends with it, as in the FIM training data (a
/// prefix cut after `"}\n        "`), where a model given `"}\n"` and
/// made to start the middle with the blanks writes worse Java, or none.
pub fn choose_anchor(current: Option<usize>, cursor: usize, rope: &Rope, budget: usize, language: Language) -> usize {
    if let Some(a) = current {
        if a <= cursor && cursor - a <= budget {
            return a;
        }
    }
    let line_start = rope.line_to_char(rope.char_to_line(cursor));
    if cursor - line_start <= budget {
        let indent = if indentation_in_prefix(language) {
            rope.slice(line_start..cursor).chars().take_while(|c| *c == ' ' || *c == '\t').count()
        } else {
            0
        };
        line_start + indent
    } else {
        cursor
    }
}

fn indentation_in_prefix(language: Language) -> bool {
    crate::syntax::grammar(language).is_some_and(|g| g.indentation_in_prefix)
}

/// How far past its budget (in lines and chars) a kept window may grow
/// before it moves: typing on below the window start costs nothing until
/// then, and a move costs one full evaluation of the prompt.
const WINDOW_STRETCH: f64 = 1.5;

/// What completion keeps of a document's prompt between requests (a
/// session holds it): kept while the user types so the cached prompt stays
/// valid, dropped by edits above it (`edited`).
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The prompt anchor (char index); cleared by any edit that starts
    /// before it.
    pub anchor: Option<usize>,
    /// The first char of the prompt's prefix window (a line start); cleared
    /// by any edit that starts before it.
    pub window: Option<usize>,
    /// What leads a window that starts below the top of the file (imports,
    /// enclosing headers), with the window start it was made for: the text
    /// above the window cannot change while the window stays.
    pub header: Option<(usize, Arc<str>)>,
    /// Definitions from other files shown ahead of the prompt, chosen for
    /// the window they were picked at and kept while it stays.
    pub cross_file: Option<Arc<CrossFile>>,
}

impl Layout {
    /// An edit of the text from char `start` on (in the text before it).
    pub fn edited(&mut self, start: usize) {
        if self.anchor.is_some_and(|a| start < a) {
            self.anchor = None;
        }
        if self.window.is_some_and(|w| start < w) {
            // The text above the window changed: what was picked for it goes too.
            self.window = None;
            self.header = None;
            self.cross_file = None;
        }
    }

    /// A snapshot of the document for a request, with this layout's window,
    /// header and cross-file picks.
    pub fn snapshot(&self, doc: &mut Document) -> Snapshot {
        Snapshot { window: self.window, cross_file: self.cross_file.clone(), header: self.header.clone(), ..doc.snapshot() }
    }
}

/// Chooses the prompt anchor and the prefix window for a request at
/// `cursor`, keeping the layout's current ones where they still serve, and
/// remembers them in the layout. Returns the anchor.
pub fn plan(doc: &mut Document, layout: &mut Layout, cursor: usize, cfg: &CompletionConfig) -> usize {
    let cursor = cursor.min(doc.rope.len_chars());
    let anchor = choose_anchor(layout.anchor, cursor, &doc.rope, cfg.middle_chars, doc.language);
    layout.anchor = Some(anchor);
    let window = choose_window(layout.window, anchor, &doc.rope, cfg);
    layout.window = Some(window);
    // What is made from the syntax tree for more than this keystroke (the
    // window's header), or decides the answer's shape (the open-line
    // checks), waits for a reparse that went to the background; the tree
    // is only out of date after the rare reparse past the budget.
    if on_open_line(&doc.rope, cursor) {
        doc.exact_tree();
    }
    // The window's header, once per window (not per keystroke).
    if layout.header.as_ref().is_none_or(|(w, _)| *w != window) {
        doc.exact_tree();
        let header = far_header(&doc.snapshot(), window, cursor);
        layout.header = Some((window, header.into()));
    }
    anchor
}

/// The start of the prefix window for a prompt anchored at `anchor`: the
/// current one while it is before the anchor and at most `WINDOW_STRETCH`
/// times the budget behind it, else a fresh one.
pub fn choose_window(current: Option<usize>, anchor: usize, rope: &Rope, cfg: &CompletionConfig) -> usize {
    match current {
        Some(w) if window_fits(w, anchor, rope, cfg) => w,
        _ => fresh_window(anchor, rope, cfg),
    }
}

fn window_fits(w: usize, anchor: usize, rope: &Rope, cfg: &CompletionConfig) -> bool {
    if w > anchor || anchor > rope.len_chars() {
        return false;
    }
    let lines = rope.char_to_line(anchor) - rope.char_to_line(w);
    (lines as f64) <= cfg.prefix_lines as f64 * WINDOW_STRETCH && ((anchor - w) as f64) <= cfg.prefix_chars as f64 * WINDOW_STRETCH
}

/// A new window start: `prefix_lines` lines above the anchor's line and at
/// most `prefix_chars` chars before it, moved down to the next item boundary
/// (an unindented line after a blank one: a top-level item with its
/// comments and attributes) when there is one in the first half of the
/// window; on one huge line, its last `prefix_chars` chars.
pub fn fresh_window(anchor: usize, rope: &Rope, cfg: &CompletionConfig) -> usize {
    let anchor_line = rope.char_to_line(anchor);
    // The first line that keeps the window within the char budget.
    let (mut lo, mut hi) = (anchor_line.saturating_sub(cfg.prefix_lines), anchor_line);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if anchor - rope.line_to_char(mid) <= cfg.prefix_chars {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let first = lo;
    if first == anchor_line && anchor - rope.line_to_char(first) > cfg.prefix_chars {
        return anchor - cfg.prefix_chars;
    }
    if first == 0 {
        return 0;
    }
    let limit = first + (anchor_line - first) / 2;
    let boundary = (first..=limit).find(|&l| is_item_start(rope, l));
    rope.line_to_char(boundary.unwrap_or(first))
}

/// A start for a smaller window (the first or second window of a cold
/// document) that moves in steps: `fresh_window`'s, moved down to the next
/// multiple of a quarter of its lines (a power of two). Typing down the
/// lines then keeps the window's start, and the KV cache of the window
/// built so far, for that many lines, where a start one line lower each
/// line made a build of the second window start over (typing replay).
pub fn stepped_window(anchor: usize, rope: &Rope, cfg: &CompletionConfig) -> usize {
    let start = fresh_window(anchor, rope, cfg);
    let (first, anchor_line) = (rope.char_to_line(start), rope.char_to_line(anchor));
    let quarter = (anchor_line - first) / 4;
    if quarter < 2 {
        return start;
    }
    let step = 1 << quarter.ilog2();
    let line = first.next_multiple_of(step);
    if line >= anchor_line {
        start
    } else {
        rope.line_to_char(line)
    }
}

fn is_item_start(rope: &Rope, line: usize) -> bool {
    if line == 0 {
        return true;
    }
    let text = rope.line(line);
    let starts_item = text.chars().next().is_some_and(|c| !c.is_whitespace() && !matches!(c, ')' | ']' | '}'));
    starts_item && line_text(rope, line - 1).trim().is_empty()
}

/// Builds the context for a cursor at char index `cursor`, with the prompt
/// anchored at char index `anchor` (<= cursor; pass `cursor` for the usual
/// layout).
pub fn build(snap: &Snapshot, cursor: usize, anchor: usize, cfg: &CompletionConfig) -> CompletionContext {
    let rope = &snap.rope;
    let cursor = cursor.min(rope.len_chars());
    let anchor = anchor.min(cursor);
    let cur_line = rope.char_to_line(cursor);
    let line_start = rope.line_to_char(cur_line);
    let line_prefix = rope.slice(line_start..cursor).to_string();
    let line_suffix = {
        let full = line_text(rope, cur_line);
        full.chars().skip(cursor - line_start).collect::<String>()
    };

    // Prefix: from the document's window start while it still fits, else a
    // fresh one (see `choose_window`).
    let start = match snap.window {
        Some(w) if window_fits(w, anchor, rope, cfg) => w,
        _ => fresh_window(anchor, rope, cfg),
    };
    let mut prefix = rope.slice(start..anchor).to_string();
    let mut middle = rope.slice(anchor..cursor).to_string();
    let heal: String = {
        let before = if middle.is_empty() { &prefix } else { &middle };
        // A partial word and the blanks before it, or trailing blanks.
        let word_start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
            .take(32)
            .last()
            .map_or(before.len(), |(i, _)| i);
        let kept = before[..word_start].trim_end_matches([' ', '\t']);
        // (A line's indentation at the end of the prefix stays there.)
        let indentation = indentation_in_prefix(snap.language)
            && middle.is_empty()
            && word_start == before.len()
            && (kept.is_empty() || kept.ends_with('\n'));
        if indentation {
            String::new()
        } else {
            before[kept.len()..].to_string()
        }
    };
    if middle.is_empty() {
        prefix.truncate(prefix.len() - heal.len());
    } else {
        middle.truncate(middle.len() - heal.len());
    }
    // A window below the file's start still shows the imports and the
    // headers of the scopes the cursor is in.
    match &snap.header {
        Some((w, header)) if *w == start => prefix.insert_str(0, header),
        _ => prefix.insert_str(0, &far_header(snap, start, cursor)),
    }

    // Suffix: `suffix_lines` lines after the cursor's, capped in chars.
    // Both counts start at the cursor, so typing (Enter included) leaves the
    // suffix's text as it is and the cached prompt reusable: a window end on
    // a fixed line number would lose a line at each Enter above it.
    let end_line = cur_line + 1 + cfg.suffix_lines;
    let end = if end_line >= rope.len_lines() { rope.len_chars() } else { rope.line_to_char(end_line) };
    let mut suffix_end = end.min(cursor + cfg.suffix_chars);
    if suffix_end < end {
        // Cut at a line end when there is one.
        let cut_line = rope.char_to_line(suffix_end);
        let at = rope.line_to_char(cut_line);
        if at > cursor {
            suffix_end = at;
        }
    }
    let suffix = rope.slice(cursor..suffix_end).to_string();

    let next_line = (cur_line + 1..rope.len_lines().min(cur_line + 200))
        .map(|l| line_text(rope, l))
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string());

    let mut mode = choose_mode(rope, snap.language, cur_line, &line_prefix, &line_suffix);
    let mut scope_indent = None;
    let open_line = on_open_line(rope, cursor);
    // An open line, or the end of a finished line, where an answer may start a new one.
    if open_line || ends_finished_line(snap.language, &line_prefix, &line_suffix) {
        if let Some(tree) = snap.tree.as_ref() {
            let src = rope.to_string();
            let byte = rope.char_to_byte(cursor);
            scope_indent = crate::syntax::enclosing_scopes(snap.language, tree, &src, byte)
                .first()
                .map(|s| indent_width(&line_text(rope, s.start_line)));
            // The syntax tree knows openers the line text does not show (a
            // Python body after a multi-line signature, an empty Rust body).
            if open_line && mode == Mode::SingleLine && crate::syntax::opens_block(snap.language, tree, &src, byte) {
                let opener_indent = (0..=cur_line)
                    .rev()
                    .map(|l| line_text(rope, l))
                    .find(|l| !l.trim().is_empty() && (l.len() > line_prefix.len() || cur_line == 0))
                    .map_or(0, |l| indent_width(&l));
                if !body_goes_on_below(rope, cur_line, opener_indent) {
                    mode = Mode::Block { opener_indent };
                }
            }
        }
    }
    let settled_indent = settled_indent(rope, snap.language, cur_line, &line_prefix, &line_suffix);
    CompletionContext {
        language: snap.language,
        prefix,
        suffix,
        middle,
        mode,
        line_prefix,
        line_suffix,
        next_line,
        heal,
        scope_indent,
        window_start: start,
        settled_indent,
    }
}

/// Is the cursor's indentation the line's own: an open line, indented, below
/// a line that neither goes on (an operator, comma or open bracket at its
/// end: a continuation may sit anywhere) nor opens a block the cursor is not
/// yet inside? A model that starts such a line deeper has taken the cursor to
/// be in a block that is not there (HumanEval-X Go/12: the loop's body below
/// an emptied `for` line, written again instead of the `for`).
fn settled_indent(rope: &Rope, lang: Language, cur_line: usize, line_prefix: &str, line_suffix: &str) -> bool {
    let cursor_w = indent_width(line_prefix);
    if lang == Language::PlainText || !line_prefix.trim().is_empty() || !line_suffix.trim().is_empty() || cursor_w == 0 {
        return false;
    }
    let Some(prev) = (0..cur_line).rev().map(|l| line_text(rope, l)).find(|l| !l.trim().is_empty()) else { return true };
    let code = lang.code_of_line(&prev).trim_end();
    if lang.opens_block(code) || lang.braceless_header(code) {
        return cursor_w > indent_width(&prev);
    }
    // A comment line, or a finished one.
    code.trim().is_empty() || ends_finished_line(lang, code, "")
}

/// Most chars of import lines and of scope headers kept above a window.
const HEADER_IMPORT_CHARS: usize = 1_500;
const HEADER_SCOPE_CHARS: usize = 400;

/// For a window starting at char `start` > 0: the file's import statements
/// above it, then the header line(s) of each scope around the cursor that
/// starts above it (`class A:`, `    def f(self, x):`, `impl A {`), outermost
/// first, each as it reads in the file. Empty when the window starts at the
/// top or there is nothing above it to keep. It depends only on text above
/// the window, so it stays while the user types.
fn far_header(snap: &Snapshot, start: usize, cursor: usize) -> String {
    let Some(tree) = snap.tree.as_ref().filter(|_| start > 0) else { return String::new() };
    let rope = &snap.rope;
    let src = rope.to_string();
    let start_byte = rope.char_to_byte(start);
    let mut out = String::new();
    let mut shown_to = 0;
    for imp in crate::syntax::imports(snap.language, tree, &src) {
        let r = imp.byte_range;
        // An import inside one already shown (Go's specs) is shown with it.
        if r.end <= shown_to {
            continue;
        }
        shown_to = r.end;
        if r.end > start_byte || out.len() + (r.end - r.start) > HEADER_IMPORT_CHARS {
            break;
        }
        // (A C include's node holds its line end.)
        out.push_str(src[r].trim_end());
        out.push('\n');
    }
    if !out.is_empty() {
        out.push('\n');
    }
    let scopes = crate::syntax::enclosing_scopes(snap.language, tree, &src, rope.char_to_byte(cursor));
    for scope in scopes.iter().rev().filter(|s| s.byte_range.start < start_byte && s.body_start <= start_byte) {
        let from = rope.line_to_byte(scope.start_line);
        // Through the body's `{`, or up to a Python body's first statement.
        let to = if src[scope.body_start..].starts_with('{') { scope.body_start + 1 } else { scope.body_start };
        let text = src[from..to].trim_end();
        if text.len() <= HEADER_SCOPE_CHARS {
            out.push_str(text);
            out.push('\n');
        }
    }
    out
}

/// A cursor with only blanks before it and only closers after it on its
/// line: where `build` asks the syntax tree for the enclosing scope and
/// whether the line opens a block.
/// Is the cursor at the end of a finished line: code before it that does not
/// go on (no operator, comma, open bracket or block opener at its end) and
/// nothing after it? An answer there may start on the next line.
pub fn ends_finished_line(lang: Language, line_prefix: &str, line_suffix: &str) -> bool {
    let code = lang.code_of_line(line_prefix).trim_end();
    let goes_on =
        code.ends_with(['=', '+', '-', '*', '/', '%', '<', '>', '&', '|', '^', ',', '(', '[', '{', '.', '\\', ':', '!', '~', '@']);
    lang != Language::PlainText && line_suffix.trim().is_empty() && !code.trim().is_empty() && !goes_on && !lang.opens_block(code)
}

fn on_open_line(rope: &Rope, cursor: usize) -> bool {
    let line = rope.char_to_line(cursor);
    let col = cursor - rope.line_to_char(line);
    let text = rope.line(line);
    text.slice(..col).chars().all(char::is_whitespace) && is_only_closers(&text.slice(col..).to_string())
}

fn is_only_closers(s: &str) -> bool {
    s.trim().chars().all(|c| matches!(c, ')' | ']' | '}' | ';' | ','))
}

/// Below an opener at `opener_indent`, does its body already go on after
/// the cursor's line (the first line of code below is deeper than the opener,
/// not its closer)? Then the cursor is on a line of that body, not in an
/// empty one: an answer there is a line, or lines that join the code below
/// (the open-line rule), not a block of the model's own.
fn body_goes_on_below(rope: &Rope, cur_line: usize, opener_indent: usize) -> bool {
    let next = (cur_line + 1..rope.len_lines().min(cur_line + 200)).map(|l| line_text(rope, l)).find(|l| !l.trim().is_empty());
    next.is_some_and(|l| indent_width(&l) > opener_indent && !is_only_closers(&l))
}

fn choose_mode(rope: &Rope, lang: Language, cur_line: usize, line_prefix: &str, line_suffix: &str) -> Mode {
    if !is_only_closers(line_suffix) {
        return Mode::SingleLine;
    }
    if line_prefix.trim().is_empty() {
        // An empty line: a block when the line above opens one.
        let prev = (cur_line.saturating_sub(50)..cur_line).rev().map(|l| line_text(rope, l)).find(|l| !l.trim().is_empty());
        if let Some(prev) = prev {
            if lang.opens_block(&prev) && !body_goes_on_below(rope, cur_line, indent_width(&prev)) {
                return Mode::Block { opener_indent: indent_width(&prev) };
            }
        }
        return Mode::SingleLine;
    }
    if lang.opens_block(line_prefix) {
        return Mode::Block { opener_indent: indent_width(line_prefix) };
    }
    Mode::SingleLine
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::{Change, Encoding, Pos};
    use crate::fixture::context as ctx;
    use expect_test::{expect, Expect};

    /// Text with its line ends shown (`⏎`) and its end (`¶`), so trailing
    /// blanks stay visible in a snapshot.
    fn lines(text: &str) -> String {
        format!("{}¶", text.replace('\n', "⏎\n"))
    }

    /// A context, field by field.
    fn show(c: &CompletionContext) -> String {
        format!(
            "mode: {:?}\nscope_indent: {:?}\nheal: {:?}\nline_prefix: {:?}\nline_suffix: {:?}\nnext_line: {:?}\nwindow_start: {}\n\
             --- prefix\n{}\n--- middle\n{}\n--- suffix\n{}\n",
            c.mode,
            c.scope_indent,
            c.heal,
            c.line_prefix,
            c.line_suffix,
            c.next_line,
            c.window_start,
            lines(&c.prefix),
            lines(&c.middle),
            lines(&c.suffix)
        )
    }

    fn check(lang: Language, fixture: &str, expect: Expect) {
        expect.assert_eq(&show(&ctx(lang, fixture)));
    }

    #[test]
    fn python_contexts() {
        // Mid-line, a partial word healed.
        check(
            Language::Python,
            "import math\n\ndef area(radius):\n    return math.pi * rad$0\n\nprint(area(2))\n",
            expect![[r#"
                mode: SingleLine
                scope_indent: Some(0)
                heal: " rad"
                line_prefix: "    return math.pi * rad"
                line_suffix: ""
                next_line: Some("print(area(2))")
                window_start: 0
                --- prefix
                import math⏎
                ⏎
                def area(radius):⏎
                    return math.pi *¶
                --- middle
                ¶
                --- suffix
                ⏎
                ⏎
                print(area(2))⏎
                ¶
            "#]],
        );
        // An open line in a body: a block, in the function's scope.
        check(
            Language::Python,
            "class A:\n    def f(self, xs):\n        for x in xs:\n            $0\n        return 0\n",
            expect![[r#"
                mode: Block { opener_indent: 8 }
                scope_indent: Some(4)
                heal: "            "
                line_prefix: "            "
                line_suffix: ""
                next_line: Some("return 0")
                window_start: 0
                --- prefix
                class A:⏎
                    def f(self, xs):⏎
                        for x in xs:⏎
                ¶
                --- middle
                ¶
                --- suffix
                ⏎
                        return 0⏎
                ¶
            "#]],
        );
    }

    #[test]
    fn rust_contexts() {
        // An open line in a function body, a closer after it.
        check(
            Language::Rust,
            "impl A {\n    fn total(xs: &[u32]) -> u32 {\n        let mut t = 0;\n        $0\n    }\n}\n",
            expect![[r#"
                mode: SingleLine
                scope_indent: Some(4)
                heal: "        "
                line_prefix: "        "
                line_suffix: ""
                next_line: Some("}")
                window_start: 0
                --- prefix
                impl A {⏎
                    fn total(xs: &[u32]) -> u32 {⏎
                        let mut t = 0;⏎
                ¶
                --- middle
                ¶
                --- suffix
                ⏎
                    }⏎
                }⏎
                ¶
            "#]],
        );
        // Right after an opener, text after the cursor on its line.
        check(
            Language::Rust,
            "fn main() {\n    let v = vec![$0];\n}\n",
            expect![[r#"
            mode: SingleLine
            scope_indent: None
            heal: ""
            line_prefix: "    let v = vec!["
            line_suffix: "];"
            next_line: Some("}")
            window_start: 0
            --- prefix
            fn main() {⏎
                let v = vec![¶
            --- middle
            ¶
            --- suffix
            ];⏎
            }⏎
            ¶
        "#]],
        );
    }

    /// The header a far window of the fixture gets: what `plan` and
    /// `build` put ahead of the window's text.
    fn far_window_header(lang: Language, fixture: &str) -> String {
        let (mut doc, cursor) = crate::fixture::document(lang, fixture);
        let cfg = CompletionConfig::default();
        let mut layout = Layout::default();
        let anchor = plan(&mut doc, &mut layout, cursor, &cfg);
        let snap = layout.snapshot(&mut doc);
        let c = build(&snap, cursor, anchor, &cfg);
        assert!(c.window_start > 0, "a far window");
        let header = far_header(&snap, c.window_start, cursor);
        assert!(c.prefix.starts_with(&header));
        assert_eq!(snap.header.as_ref().map(|(w, h)| (*w, h.to_string())), Some((c.window_start, header.clone())), "as planned");
        lines(&header)
    }

    #[test]
    fn far_window_headers() {
        let body: String = (0..300).map(|i| format!("        total += len(paths[{i}])\n")).collect();
        let py = format!(
            "import os\nfrom typing import List\n\n\nclass Store:\n    def load(self,\n             paths: List[str]):\n        total = 0\n{body}        $0\n"
        );
        expect![[r#"
            import os⏎
            from typing import List⏎
            ⏎
            class Store:⏎
                def load(self,⏎
                         paths: List[str]):⏎
            ¶"#]]
        .assert_eq(&far_window_header(Language::Python, &py));
        let body: String = (0..300).map(|i| format!("            total += paths[{i}].len();\n")).collect();
        let rs = format!(
            "use std::fmt;\nuse std::io::{{self, Write}};\n\nmod store {{\n    pub struct Store;\n\n    impl Store {{\n        pub fn load(&self, paths: &[&str]) -> usize {{\n            let mut total = 0;\n{body}            $0\n        }}\n    }}\n}}\n"
        );
        expect![[r#"
            use std::fmt;⏎
            use std::io::{self, Write};⏎
            ⏎
            mod store {⏎
                impl Store {⏎
                    pub fn load(&self, paths: &[&str]) -> usize {⏎
            ¶"#]]
        .assert_eq(&far_window_header(Language::Rust, &rs));
    }

    #[test]
    fn typescript_contexts() {
        // After an opener with a comment: a block, in the method's scope.
        check(
            Language::TypeScript,
            "export class Cart {\n    total(items: Item[]): number { // the sum\n        $0\n    }\n}\n",
            expect![[r#"
                mode: Block { opener_indent: 4 }
                scope_indent: Some(4)
                heal: ""
                line_prefix: "        "
                line_suffix: ""
                next_line: Some("}")
                window_start: 0
                --- prefix
                export class Cart {⏎
                    total(items: Item[]): number { // the sum⏎
                        ¶
                --- middle
                ¶
                --- suffix
                ⏎
                    }⏎
                }⏎
                ¶
            "#]],
        );
        // At the end of a finished line: a single line that may start a new one.
        check(
            Language::TypeScript,
            "function f(xs: number[]) {\n    const n = xs.length;$0\n}\n",
            expect![[r#"
            mode: SingleLine
            scope_indent: Some(0)
            heal: ""
            line_prefix: "    const n = xs.length;"
            line_suffix: ""
            next_line: Some("}")
            window_start: 0
            --- prefix
            function f(xs: number[]) {⏎
                const n = xs.length;¶
            --- middle
            ¶
            --- suffix
            ⏎
            }⏎
            ¶
        "#]],
        );
    }

    #[test]
    fn brace_languages_open_blocks() {
        for (lang, fixture) in [
            (Language::JavaScript, "const f = (xs) => {\n  $0\n};\n"),
            (Language::Go, "func f(xs []int) int {\n\tfor _, x := range xs {\n\t\t$0\n\t}\n}\n"),
            (Language::C, "int f(int n) {\n    if (n > 0) { /* positive */\n        $0\n    }\n}\n"),
            (Language::Cpp, "int f(vector<int> v) {\n    for (auto x : v) { // each\n        $0\n    }\n}\n"),
            (Language::Java, "class A {\n    int f(int n) {\n        while (n > 0) {\n            $0\n        }\n    }\n}\n"),
        ] {
            let c = ctx(lang, fixture);
            assert!(matches!(c.mode, Mode::Block { .. }), "{lang:?}: {fixture}");
            assert!(c.scope_indent.is_some(), "{lang:?}: {fixture}");
        }
        // A comment that ends in an operator does not make a line go on.
        assert!(ends_finished_line(Language::Go, "\tx := 1 // a+", ""));
        assert!(!ends_finished_line(Language::Go, "\tx := a +", ""));
        assert!(ends_finished_line(Language::Python, "x = 1  # a+", ""));
    }

    #[test]
    fn brace_languages_far_window_headers() {
        let body: String = (0..300).map(|i| format!("        total += paths[{i}].length;\n")).collect();
        let ts = format!(
            "import {{ readFileSync }} from \"fs\";\nimport * as path from \"path\";\n\nexport class Store {{\n    load(paths: string[]): number {{\n        let total = 0;\n{body}        $0\n    }}\n}}\n"
        );
        expect![[r#"
            import { readFileSync } from "fs";⏎
            import * as path from "path";⏎
            ⏎
            export class Store {⏎
                load(paths: string[]): number {⏎
            ¶"#]]
        .assert_eq(&far_window_header(Language::TypeScript, &ts));
        let body: String = (0..300).map(|i| format!("\t\ttotal += len(paths[{i}])\n")).collect();
        let go = format!(
            "package store\n\nimport (\n\t\"fmt\"\n\t\"strings\"\n)\n\nfunc (s *Store) Load(paths []string) int {{\n\ttotal := 0\n\tfor range paths {{\n{body}\t\t$0\n\t}}\n\treturn total\n}}\n"
        );
        expect![[r#"
            import (⏎
            	"fmt"⏎
            	"strings"⏎
            )⏎
            ⏎
            func (s *Store) Load(paths []string) int {⏎
            ¶"#]]
        .assert_eq(&far_window_header(Language::Go, &go));
        let body: String = (0..300).map(|i| format!("            total += paths[{i}].length();\n")).collect();
        let java = format!(
            "package a;\n\nimport java.util.List;\n\npublic class Store {{\n    public int load(List<String> paths) {{\n        int total = 0;\n{body}            $0\n        return total;\n    }}\n}}\n"
        );
        expect![[r#"
            import java.util.List;⏎
            ⏎
            public class Store {⏎
                public int load(List<String> paths) {⏎
            ¶"#]]
        .assert_eq(&far_window_header(Language::Java, &java));
        let body: String = (0..300).map(|i| format!("        total += paths[{i}].size();\n")).collect();
        let cpp = format!(
            "#include <string>\n#include \"store.h\"\nusing namespace std;\n\nnamespace io {{\nint Store::load(const vector<string>& paths) {{\n    int total = 0;\n{body}    $0\n    return total;\n}}\n}}\n"
        );
        expect![[r##"
            #include <string>⏎
            #include "store.h"⏎
            using namespace std;⏎
            ⏎
            namespace io {⏎
            int Store::load(const vector<string>& paths) {⏎
            ¶"##]]
        .assert_eq(&far_window_header(Language::Cpp, &cpp));
    }

    #[test]
    fn mid_line_is_single_line() {
        let c = ctx(Language::Python, "def add(a, b):\n    return a + $0\n\nprint(1)\n");
        assert_eq!(c.mode, Mode::SingleLine);
        assert_eq!(c.prefix, "def add(a, b):\n    return a +");
        assert_eq!(c.heal, " ");
        assert_eq!(c.suffix, "\n\nprint(1)\n");
        assert_eq!(c.line_prefix, "    return a + ");
        assert_eq!(c.next_line.as_deref(), Some("print(1)"));
    }

    #[test]
    fn a_partial_word_is_healed() {
        let c = ctx(Language::Python, "def area(radius):\n    return 3.14 * rad$0\n");
        assert_eq!(c.heal, " rad");
        assert!(c.prefix.ends_with("3.14 *"), "{:?}", c.prefix);
        let c = ctx(Language::Python, "x = foo.ba$0\n");
        assert_eq!(c.heal, "ba");
        assert!(c.prefix.ends_with("foo."));
        let c = ctx(Language::Python, "x = f(a)$0\n");
        assert_eq!(c.heal, "");
    }

    #[test]
    fn after_a_block_opener_is_a_block() {
        let c = ctx(Language::Python, "class A:\n    def f(self):$0\n");
        assert_eq!(c.mode, Mode::Block { opener_indent: 4 });
        let c = ctx(Language::Python, "def f(x):\n    $0\n");
        assert_eq!(c.mode, Mode::Block { opener_indent: 0 });
        let c = ctx(Language::Rust, "fn main() {\n    $0\n}\n");
        assert_eq!(c.mode, Mode::Block { opener_indent: 0 });
        let c = ctx(Language::Rust, "fn main() {$0}\n");
        assert_eq!(c.mode, Mode::Block { opener_indent: 0 });
    }

    #[test]
    fn a_body_that_goes_on_below_is_not_a_new_block() {
        // The cursor on the first line of a body that goes on below it (a
        // blank line after the opener or not): one line, by the open-line rule.
        for (lang, fixture) in [
            (
                Language::Java,
                "class Solution {\n    public List<Integer> f(List<Integer> lst){\n\n        $0\n        List<Integer> b = lst;\n        return b;\n    }\n}\n",
            ),
            (Language::JavaScript, "const maximum = (arr, k) => {\n\n  $0\n  for (let j = 0; j < p.length; j++) {\n  }\n  return p\n}\n"),
            (Language::TypeScript, "function f(xs: number[]): number {\n    $0\n    return t;\n}\n"),
            (Language::Go, "func f(xs []int) int {\n\tfor _, x := range xs {\n\t\t$0\n\t\tt += x\n\t}\n\treturn t\n}\n"),
            (Language::Cpp, "int f(int n) {\n    if (n > 0) {\n        $0\n        n--;\n    }\n}\n"),
            (Language::Rust, "fn main() { // entry\n    $0\n    run();\n}\n"),
            (Language::Python, "def f(x):\n    $0\n    return y\n"),
            (Language::Python, "def f(x):  # double it\n    $0\n    return y\n"),
        ] {
            assert_eq!(ctx(lang, fixture).mode, Mode::SingleLine, "{lang:?}: {fixture}");
        }
        // An empty body, or the code below after the block: a block.
        for (lang, fixture, opener_indent) in [
            (Language::Java, "class A {\n    int f(int n) {\n\n        $0\n    }\n}\n", 4),
            (Language::JavaScript, "function f(p) {\n  if (p) {\n    $0\n  }\n  return p\n}\n", 2),
            (Language::TypeScript, "function f(): number {\n    $0\n}\nconst x = f();\n", 0),
            (Language::Python, "def f(xs):\n    for x in xs:\n        $0\n    return 0\n", 4),
        ] {
            assert_eq!(ctx(lang, fixture).mode, Mode::Block { opener_indent }, "{lang:?}: {fixture}");
        }
    }

    #[test]
    fn the_syntax_tree_finds_openers_the_line_text_hides() {
        // A comment after the colon, a body opened on the line before.
        let c = ctx(Language::Python, "def f(x):  # double it\n    $0\n");
        assert_eq!(c.mode, Mode::Block { opener_indent: 0 });
        let c = ctx(Language::Rust, "fn main() { // entry\n    $0\n}\n");
        assert_eq!(c.mode, Mode::Block { opener_indent: 0 });
        // A non-empty body: one line.
        let c = ctx(Language::Python, "def f(x):  # double it\n    y = x\n    $0\n");
        assert_eq!(c.mode, Mode::SingleLine);
    }

    #[test]
    fn text_after_the_cursor_keeps_it_single_line() {
        let c = ctx(Language::Rust, "fn main() {$0 let x = 1; }\n");
        assert_eq!(c.mode, Mode::SingleLine);
        assert_eq!(c.line_suffix, " let x = 1; }");
        let c = ctx(Language::Python, "x = 1\n$0\n");
        assert_eq!(c.mode, Mode::SingleLine);
    }

    #[test]
    fn the_window_starts_at_an_item_and_stays_while_typing() {
        // 50 functions of 10 lines.
        let mut text = String::new();
        for i in 0..50 {
            text.push_str(&format!("def f{i}(x):\n"));
            for j in 0..7 {
                text.push_str(&format!("    x = x + {j}\n"));
            }
            text.push_str("    return x\n\n");
        }
        let cfg = CompletionConfig { prefix_lines: 100, ..Default::default() };
        let mut doc = Document::new(&text, 1, Language::Python);
        let mut layout = Layout::default();
        let line = 395;
        let cursor = doc.rope.line_to_char(line);
        let anchor = plan(&mut doc, &mut layout, cursor, &cfg);
        let w = layout.window.unwrap();
        // 100 lines up is line 295, inside f29 (lines 290..300): the window
        // starts at the next function.
        assert_eq!(doc.rope.char_to_line(w), 300);
        assert!(doc.rope.line(300).to_string().starts_with("def f30"));
        let c = build(&layout.snapshot(&mut doc), cursor, anchor, &cfg);
        assert!(c.prefix.starts_with("def f30(x):\n"), "{}", &c.prefix[..20]);

        // Typing 40 new lines below keeps the window (and the cached prompt).
        for k in 0..40 {
            let l = (line + k) as u32;
            let e = doc.apply(Change { range: Some((Pos::new(l, 0), Pos::new(l, 0))), text: "    y = 1\n".into() }, Encoding::Utf16);
            layout.edited(e.start);
            let cursor = doc.rope.line_to_char(line + k + 1);
            plan(&mut doc, &mut layout, cursor, &cfg);
            assert_eq!(layout.window, Some(w), "moved after {k} lines");
        }
        // Far below (past 1.5 x 100 lines): a new window.
        let cursor = doc.rope.line_to_char(doc.rope.len_lines() - 1);
        layout.anchor = None;
        plan(&mut doc, &mut layout, cursor, &cfg);
        assert!(layout.window.unwrap() > w);
        // An edit before the window clears it, and what was picked for it.
        let e = doc.apply(Change { range: Some((Pos::new(0, 0), Pos::new(0, 0))), text: "# hi\n".into() }, Encoding::Utf16);
        layout.edited(e.start);
        assert_eq!(layout.window, None);
        assert!(layout.header.is_none() && layout.anchor.is_none());
    }

    #[test]
    fn the_suffix_stays_while_typing_lines() {
        // Lines typed at the cursor (Enter included) leave the suffix's text
        // as it was: the cached prompt up to the middle token stays valid.
        let text: String = (0..300).map(|i| format!("x{i} = {i}\n")).collect();
        let mut doc = Document::new(&text, 1, Language::Python);
        let cfg = CompletionConfig::default();
        let cursor = doc.rope.line_to_char(100);
        let first = build(&doc.snapshot(), cursor, cursor, &cfg).suffix;
        assert_eq!(first.lines().count(), cfg.suffix_lines + 1);
        for k in 0..40u32 {
            doc.apply(Change { range: Some((Pos::new(100 + k, 0), Pos::new(100 + k, 0))), text: "y = 1\n".into() }, Encoding::Utf16);
            let cursor = doc.rope.line_to_char(101 + k as usize);
            assert_eq!(build(&doc.snapshot(), cursor, cursor, &cfg).suffix, first, "after {k} lines");
        }
    }

    #[test]
    fn a_far_window_keeps_the_imports_and_the_enclosing_headers() {
        let mut text = String::from(
            "import os\nfrom typing import List\n\n\nclass Store:\n    def load(self, paths: List[str]):\n        total = 0\n",
        );
        for i in 0..300 {
            text.push_str(&format!("        total += len(paths[{i}])\n"));
        }
        text.push_str("        return total\n");
        let mut doc = Document::new(&text, 1, Language::Python);
        let cfg = CompletionConfig::default();
        let cursor = doc.rope.line_to_char(306) - 1;
        let mut layout = Layout::default();
        let anchor = plan(&mut doc, &mut layout, cursor, &cfg);
        let c = build(&layout.snapshot(&mut doc), cursor, anchor, &cfg);
        assert!(c.window_start > 0);
        assert!(
            c.prefix.starts_with(
                "import os\nfrom typing import List\n\nclass Store:\n    def load(self, paths: List[str]):\n        total += len("
            ),
            "{:?}",
            &c.prefix[..120]
        );
        // A window at the top: nothing added.
        let small = "import os\n\ndef f():\n    return os.sep\n";
        let mut doc = Document::new(small, 1, Language::Python);
        let cursor = small.len() - 1;
        let mut layout = Layout::default();
        let anchor = plan(&mut doc, &mut layout, cursor, &cfg);
        assert!(build(&layout.snapshot(&mut doc), cursor, anchor, &cfg).prefix.starts_with("import os\n\ndef f():"));
    }

    #[test]
    fn huge_single_line_is_capped() {
        let text = format!("var a={};$0", "1+".repeat(100_000));
        let c = ctx(Language::PlainText, &text);
        assert_eq!(c.prefix.chars().count(), CompletionConfig::default().prefix_chars);
        assert!(c.prefix.ends_with("1+1+;"));
    }

    #[test]
    fn an_indented_open_line_below_a_finished_one_has_its_indentation_settled() {
        let settled = |lang, fixture| ctx(lang, fixture).settled_indent;
        // Below a statement, or a comment: the line starts where the cursor is.
        assert!(settled(Language::Go, "func f() {\n    n := 0\n    $0\n        g(n)\n    }\n}\n"));
        assert!(settled(Language::Python, "def f(xs):\n    # the total\n    $0\n"));
        assert!(settled(
            Language::Java,
            "class A {\n    void f() {\n        if (a) {\n            g();\n        }\n        $0\n    }\n}\n"
        ));
        // Inside the block an opener starts, once the cursor is in it.
        assert!(settled(Language::Rust, "fn f() {\n    $0\n}\n"));
        assert!(!settled(Language::Rust, "fn f() {\n$0\n}\n"));
        assert!(settled(Language::Cpp, "int f(int a) {\n    if (a > 1)\n        $0\n}\n"));
        assert!(!settled(Language::Cpp, "int f(int a) {\n    if (a > 1)\n    $0\n}\n"));
        // A line that goes on, code on the cursor's line, plain text: not settled.
        assert!(!settled(Language::JavaScript, "const x = f(a,\n    $0\n"));
        assert!(!settled(Language::Go, "func f() {\n    n := 0\n    n$0\n}\n"));
        assert!(!settled(Language::PlainText, "a\n    $0\n"));
    }

    #[test]
    fn anchor_is_kept_while_typing_and_moves_past_the_budget() {
        let rope = Rope::from_str("def f(x):\n    return x * 2\n");
        let line1 = 10;
        // A fresh anchor follows the line's indentation, where the
        // language keeps it in the prefix (not Rust's).
        assert_eq!(choose_anchor(None, line1 + 6, &rope, 600, Language::Java), line1 + 4);
        assert_eq!(choose_anchor(None, line1 + 6, &rope, 600, Language::Rust), line1);
        assert_eq!(choose_anchor(None, line1 + 2, &rope, 600, Language::Java), line1 + 2);
        assert_eq!(choose_anchor(Some(line1), line1 + 12, &rope, 600, Language::Java), line1);
        // The cursor moved before the anchor: re-anchor at its line start.
        assert_eq!(choose_anchor(Some(line1), 3, &rope, 600, Language::Java), 0);
        // Past the budget: re-anchor.
        assert_eq!(choose_anchor(Some(0), line1 + 12, &rope, 14, Language::Java), line1 + 4);
        // A line longer than the budget anchors at the cursor.
        assert_eq!(choose_anchor(None, line1 + 12, &rope, 5, Language::Java), line1 + 12);
    }

    #[test]
    fn anchored_middle() {
        let text = "def f(x):\n    return x * 2\n";
        let mut doc = Document::new(text, 1, Language::Python);
        let cursor = text.find("* 2").unwrap();
        let anchor = text.find("return").unwrap();
        let c = build(&doc.snapshot(), cursor, anchor, &CompletionConfig::default());
        assert_eq!(c.prefix, "def f(x):\n    ");
        assert_eq!(c.middle, "return x");
        assert_eq!(c.heal, " ");
        assert_eq!(c.suffix, "* 2\n");
    }

    #[test]
    fn the_open_line_checks_and_a_new_header_wait_for_a_background_reparse() {
        let body: String = (0..300).map(|i| format!("def f{i}(a, b):\n    if a:\n        return a + b\n    return b\n\n")).collect();
        let text = format!("import os\n\n{body}class K:\n    def m(self):\n        \n");
        let mut doc = Document::new(&text, 1, Language::Python);
        doc.tree();
        doc.parse_budget = std::time::Duration::ZERO;
        let cfg = CompletionConfig::default();
        let edit = |doc: &mut Document, v: i32, line: u32, a: u32, b: u32, t: &str| {
            doc.apply_versioned(v, vec![Change { range: Some((Pos::new(line, a), Pos::new(line, b))), text: t.into() }], Encoding::Utf16);
        };
        // An edit whose reparse goes past the budget, then a request in the
        // middle of a line: the window's header waits for the tree...
        edit(&mut doc, 2, 0, 0, 0, "# x\n");
        let mid = doc.rope.line_to_char(1002) + 8; // `return a| + b`, far below the top
        let mut layout = Layout::default();
        plan(&mut doc, &mut layout, mid, &cfg);
        assert!(doc.tree_is_current(), "a new window's header is made from the current tree");
        // ...a keystroke that keeps the window does not (here a string
        // opened below the cursor).
        edit(&mut doc, 3, 1100, 0, 0, "'''");
        plan(&mut doc, &mut layout, mid, &cfg);
        let _ = doc.snapshot();
        assert!(!doc.tree_is_current(), "a mid-line request goes on with the previous tree");
        // An open line in a body does: its scope and shape come from the tree.
        edit(&mut doc, 4, 1100, 0, 3, "");
        let open = doc.rope.len_chars() - 1;
        plan(&mut doc, &mut layout, open, &cfg);
        assert!(doc.tree_is_current(), "the open-line checks use the current tree");
        let c = build(&layout.snapshot(&mut doc), open, open, &cfg);
        assert_eq!(c.scope_indent, Some(4), "inside `def m`");
        assert!(matches!(c.mode, Mode::Block { .. }), "{:?}", c.mode);
    }

    #[test]
    fn a_small_window_start_stays_while_typing_goes_down_the_lines() {
        // Indented lines with no item boundary (methods of a class), as in
        // the typing replay's Python file.
        let text: String = (0..400).map(|i| format!("        x{i} = f(x{})\n", i.max(1) - 1)).collect();
        let rope = Rope::from_str(&text);
        let cfg = CompletionConfig { prefix_chars: 2400, prefix_lines: 400, ..CompletionConfig::default() };
        let starts: Vec<usize> = (300..332).map(|l| rope.char_to_line(stepped_window(rope.line_to_char(l), &rope, &cfg))).collect();
        let fresh: Vec<usize> = (300..332).map(|l| rope.char_to_line(fresh_window(rope.line_to_char(l), &rope, &cfg))).collect();
        // The fresh start moves a line with every line; the stepped one
        // moves in steps of 16 (a quarter of about 100 lines, a power of
        // two), never above the fresh one (the budget holds).
        assert_eq!(fresh.windows(2).filter(|w| w[0] != w[1]).count(), 31);
        assert!(starts.windows(2).filter(|w| w[0] != w[1]).count() <= 2, "{starts:?}");
        assert!(starts.iter().zip(&fresh).all(|(s, f)| s >= f && s - f < 16), "{starts:?} {fresh:?}");
        // A window of a few lines is not moved.
        let small = CompletionConfig { prefix_chars: 100, ..cfg };
        let a = rope.line_to_char(300);
        assert_eq!(stepped_window(a, &rope, &small), fresh_window(a, &rope, &small));
    }
}
