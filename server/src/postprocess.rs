//! Turns raw generated text into a suggestion that fits the spot: one line or
//! one block, no repetition of what follows the cursor, indentation kept.
//! Pure. `Trimmer::is_done` also lets the engine stop generating early.

use crate::context::{indent_width, CompletionContext, Mode};
use crate::syntax;
use crate::syntax::Language;

/// Most blanks a generated line may start with, beyond the cursor's, before
/// anything but blanks: past it the generation is given up on.
const MAX_BLANK_RUN: usize = 16;

#[derive(Debug, Clone)]
pub struct Trimmer {
    mode: Mode,
    max_lines: usize,
    line_suffix: String,
    next_line: Option<String>,
    heal: String,
    /// The text before the cursor on its line.
    line_prefix: String,
    /// The indentation of the first non-blank line below the cursor's.
    next_indent: Option<usize>,
    language: Language,
    /// The window's text before and after the insertion point, for the
    /// syntax check of cut points.
    before: String,
    after: String,
    /// Whitespace before the cursor on its line, when that is all there is.
    cursor_indent: Option<String>,
    /// The document indents with tabs.
    tabs: bool,
    /// An open line (only blanks on the cursor's line, see `open_lines`).
    open_line: bool,
    /// See `CompletionContext::scope_indent`.
    scope_indent: Option<usize>,
    /// The non-blank lines below the cursor's (up to `BELOW_LINES`): their
    /// indentation and trimmed text.
    below: Vec<(usize, String)>,
    /// The non-blank lines above the cursor's, nearest first (up to
    /// `BELOW_LINES`): their indentation and trimmed text.
    above: Vec<(usize, String)>,
    /// At the end of a finished line: the trimmer of a new line opened
    /// below it, for an answer that starts with a line break (see `next_line_answer`).
    new_line: Option<Box<Trimmer>>,
}

/// Lines below the cursor an open-line answer may join.
const BELOW_LINES: usize = 16;
/// A line further down than the first counts as a join only when it is at
/// least this long (`}` or `else:` repeat everywhere).
const JOIN_MIN_CHARS: usize = 8;

impl Trimmer {
    pub fn new(ctx: &CompletionContext, max_lines: usize) -> Self {
        Trimmer {
            mode: ctx.mode,
            max_lines: max_lines.max(1),
            line_suffix: ctx.line_suffix.trim().to_string(),
            next_line: ctx.next_line.clone(),
            heal: ctx.heal.clone(),
            line_prefix: ctx.line_prefix.clone(),
            next_indent: ctx.suffix.split('\n').skip(1).find(|l| !l.trim().is_empty()).map(indent_width),
            language: ctx.language,
            before: format!("{}{}{}", ctx.prefix, ctx.middle, ctx.heal),
            after: ctx.suffix.clone(),
            cursor_indent: ctx.line_prefix.trim().is_empty().then(|| ctx.line_prefix.clone()),
            tabs: uses_tabs(&ctx.prefix),
            open_line: ctx.line_prefix.trim().is_empty() && ctx.line_suffix.trim().is_empty() && ctx.language != Language::PlainText,
            scope_indent: ctx.scope_indent,
            below: code_lines(ctx.suffix.split('\n').skip(1)),
            above: Vec::new(),
            new_line: None,
        }
        .with_above()
        .with_new_line()
    }

    /// The lines above the cursor's, from `before`.
    fn with_above(mut self) -> Self {
        let above = self.before.rsplit_once('\n').map_or("", |(a, _)| a);
        self.above = code_lines(above.rsplit('\n'));
        self
    }

    /// At the end of a finished line (`context::ends_finished_line`), the
    /// model often starts with a line break: the code that belongs there is
    /// on the next line. Such an answer is read as if the line break had
    /// been typed, on an open line below the cursor's.
    fn with_new_line(mut self) -> Self {
        if self.mode != Mode::SingleLine || !crate::context::ends_finished_line(self.language, &self.line_prefix, &self.line_suffix) {
            return self;
        }
        let mut open = self.clone();
        open.line_prefix = String::new();
        open.heal = String::new();
        open.cursor_indent = Some(String::new());
        open.open_line = true;
        open.before = format!("{}\n", self.before);
        self.new_line = Some(Box::new(open.with_above()));
        self
    }

    /// The generation after a first line break, when the answer is to go on
    /// a new line below the cursor's (`with_new_line`): the line break may
    /// follow blanks, never code.
    fn next_line_answer<'g>(&self, generated: &'g str) -> Option<(&Trimmer, &'g str)> {
        let open = self.new_line.as_deref()?;
        let rest = generated.trim_start_matches([' ', '\t']).strip_prefix('\n')?;
        Some((open, rest))
    }

    /// Is a generated line at `width` the code already below the cursor:
    /// the first line below, or a longer one further down (the model has
    /// skipped ahead), at the same depth?
    fn joins_below(&self, line: &str, width: usize) -> bool {
        self.join_at(line, width).is_some()
    }

    /// Which line below (0: the first) a generated line at `width` is, as
    /// `joins_below` tells.
    fn join_at(&self, line: &str, width: usize) -> Option<usize> {
        let line = line.trim();
        self.below.iter().enumerate().position(|(i, (w, l))| *w == width && same_code(l, line) && (i == 0 || l.len() >= JOIN_MIN_CHARS))
    }

    /// On an open line inside a block whose closing brace is already below
    /// (the first line below is `}` or `} else {`, left of the cursor), does
    /// the answer start by closing that block (`} else {`, `}`)? It leaves
    /// the line it was asked for empty, and what follows belongs elsewhere:
    /// nothing is suggested (the second try starts differently).
    fn leaves_its_block(&self, generated: &str) -> bool {
        let Some(cursor_w) = self.cursor_indent.as_deref().map(indent_width).filter(|_| self.open_line) else { return false };
        let closed_below = self.below.first().is_some_and(|(w, l)| *w < cursor_w && l.starts_with('}'));
        closed_below && generated.trim_start().starts_with('}')
    }

    /// On an open line, does the answer's first line (complete) repeat a line above
    /// that opens a block and is less indented than the cursor (the
    /// enclosing function's header, HumanEval-X CPP/8)? The model has lost
    /// its place: what it writes is that block again. Nothing is suggested
    /// (the second try starts differently). Not a line that goes on from a
    /// block's end (`} else {`, `} catch (E e) {`): such lines repeat
    /// wherever the code branches (HumanEval-X JavaScript/125).
    fn repeats_an_opener(&self, first: &str) -> bool {
        let Some(cursor_w) = self.cursor_indent.as_deref().map(indent_width).filter(|_| self.open_line) else { return false };
        !first.trim().is_empty()
            && !first.trim_start().starts_with('}')
            && self
                .above
                .iter()
                .any(|(w, l)| *w < cursor_w && l.len() >= JOIN_MIN_CHARS && same_code(l, first) && self.language.opens_block(l))
    }

    /// Where the lines of an answer on an open line end: at the first
    /// complete line that repeats the first line below the cursor at its
    /// indentation (the answer has joined the code that follows), or that is
    /// no deeper than the enclosing scope's first line (it has left the
    /// scope). `Some(i)`: lines `..i` are the answer. `None`: not known yet
    /// (no such line among the complete ones, within `max_lines`).
    fn open_end(&self, lines: &[&str], ended: bool) -> Option<usize> {
        let cursor_w = self.cursor_indent.as_deref().map_or(0, indent_width);
        for (i, line) in lines.iter().enumerate() {
            if i >= self.max_lines {
                return None;
            }
            let complete = i + 1 < lines.len() || ended;
            if !complete {
                return None;
            }
            if line.trim().is_empty() {
                continue;
            }
            let width = indent_width(line) + if i == 0 { cursor_w } else { 0 };
            if self.joins_below(line, width)
                || self.scope_indent.is_some_and(|s| width <= s)
                || self.closes_early(line, width)
                || (i > 0 && self.repeats_line_above(line, width))
            {
                return Some(i);
            }
        }
        ended.then_some(lines.len())
    }

    /// Is a line at `width` the line just above the cursor again, both at
    /// the cursor's indentation? The model has gone back to the code above
    /// (HumanEval-X JavaScript/113: `let p = 0;` once more); the answer ends
    /// before it.
    fn repeats_line_above(&self, line: &str, width: usize) -> bool {
        let cursor_w = self.cursor_w();
        width == cursor_w && self.above.first().is_some_and(|(w, l)| *w == cursor_w && l.len() >= JOIN_MIN_CHARS && same_code(l, line))
    }

    /// Does a line at `width` close the block the cursor is in (`}`,
    /// `} catch (E e) {`) where the code below closes it already (its first
    /// line is left of the cursor)? What follows belongs outside the block,
    /// where the code is there already (HumanEval-X Java/67: a second
    /// `catch` of the same exception).
    fn closes_early(&self, line: &str, width: usize) -> bool {
        let cursor_w = self.cursor_w();
        width < cursor_w && line.trim_start().starts_with(['}', ')', ']']) && self.below.first().is_some_and(|(w, _)| *w < cursor_w)
    }

    /// A multi-line answer on an open line, kept only when the model closed
    /// it: it stopped by itself, joined the code below, or left the scope.
    /// An answer the model did not close is cut to its first line (or the
    /// block its first line opens) by the caller.
    fn open_lines(&self, generated: &str, ended: bool) -> Option<String> {
        if !self.open_line {
            return None;
        }
        let lines: Vec<&str> = generated.split('\n').collect();
        let end = self.open_end(&lines, ended)?;
        // The code below is deeper than the answer's first line: that line
        // opens the block whose body is already there (the line itself was
        // emptied), so it is the whole answer, never a new body.
        if !syntax::grammar(self.language).is_some_and(|g| g.indent_blocks) {
            let first_w = lines.first().map_or(0, |l| indent_width(l)) + self.cursor_w();
            if self.next_indent.is_some_and(|n| n > first_w) {
                return None;
            }
        }
        // Between two statements of a block that goes on below, several
        // lines only where the model came back to the code below: else
        // the lines after the first are a guess at what that code does.
        // And only where it came back to the very next line: a join
        // further down means the model's lines stand for the lines it
        // skipped (HumanEval-X CPP/6, CPP/14), which are there already.
        let joined = lines.get(end).and_then(|l| self.join_at(l, indent_width(l) + if end == 0 { self.cursor_w() } else { 0 }));
        if joined != Some(0) && self.block_goes_on_below() {
            return None;
        }
        // A control header without its brace (`for (...)` in C++, Java,
        // JavaScript) takes the statement below as its body: the model's
        // own body would come before it (CPP/26, CPP/40).
        if let Some(first) = lines.first().filter(|l| self.language.braceless_header(l)) {
            let w = indent_width(first) + self.cursor_w();
            if self.below.first().is_some_and(|(bw, l)| *bw >= w && !l.starts_with('}')) {
                return None;
            }
        }
        // The body of a control header without its brace above (`if (x)`
        // in C++): one statement, the first line (HumanEval-X CPP/113).
        if self.above.first().is_some_and(|(_, l)| self.language.braceless_header(l))
            && lines.first().is_some_and(|l| !l.trim().is_empty() && !l.trim().starts_with('{') && !self.language.braceless_header(l))
        {
            return None;
        }
        let mut kept = kept_lines(&lines[..end]);
        // With indentation blocks, the code below must fit after the last
        // line: deeper only after an opener, never deeper otherwise.
        while !self.fits_below(&kept) {
            kept.pop();
            while kept.last().is_some_and(|l| l.trim().is_empty()) {
                kept.pop();
            }
        }
        // The model began with a line break: its code starts on the next
        // line, which goes on the cursor's, when it is at the cursor's
        // indentation (`\n    true` at the end of a Rust function).
        let lead = kept.iter().take_while(|l| l.trim().is_empty()).count();
        if lead > 0 {
            return self.at_cursor(&kept);
        }
        // Lines that copy the code just above are the model going over it
        // again (HumanEval-X CPP/86: a loop's body once more, then the
        // `return` that belongs here); what it wrote after them is the answer,
        // and a copy alone is no answer of several lines.
        let copied = self.copied_above(&kept);
        if copied > 0 {
            return self.at_cursor(&kept[copied..]);
        }
        let code = kept.iter().filter(|l| !l.trim().is_empty()).count();
        (code >= 2).then(|| kept.join("\n"))
    }

    /// Lines of an answer that start on a line of their own, as the answer
    /// at the cursor: blank lines before it are dropped and the first line
    /// loses the indentation the cursor already has. None when it is not at
    /// the cursor's indentation.
    fn at_cursor(&self, lines: &[&str]) -> Option<String> {
        let lines = &lines[lines.iter().take_while(|l| l.trim().is_empty()).count()..];
        let (first, rest) = lines.split_first().filter(|(l, _)| indent_width(l) == self.cursor_w())?;
        Some(std::iter::once(first.trim_start()).chain(rest.iter().copied()).collect::<Vec<_>>().join("\n"))
    }

    /// How many of an answer's first lines are, in order, a run of the lines
    /// above the cursor (at least two, the first a long one). 0 when they
    /// are not.
    fn copied_above(&self, lines: &[&str]) -> usize {
        if lines.first().is_none_or(|l| l.trim().len() < JOIN_MIN_CHARS) {
            return 0;
        }
        let doc: Vec<&str> = self.above.iter().rev().map(|(_, l)| l.as_str()).collect();
        let n = (0..doc.len()).map(|start| doc[start..].iter().zip(lines).take_while(|(a, b)| same_code(a, b)).count()).max().unwrap_or(0);
        if n >= 2 {
            n
        } else {
            0
        }
    }

    /// Only blanks on the cursor's line, in a language with code.
    pub fn open_line(&self) -> bool {
        self.open_line
    }

    fn cursor_w(&self) -> usize {
        self.cursor_indent.as_deref().map_or(0, indent_width)
    }

    /// Is the first line below the cursor's, at the cursor's indentation,
    /// more of the same block (not its end: `}`, `)`, `]`)?
    fn block_goes_on_below(&self) -> bool {
        let w = self.cursor_w();
        w > 0 && self.below.first().is_some_and(|(bw, l)| *bw == w && !l.starts_with(['}', ')', ']']))
    }

    /// Does the first line below the cursor's follow `lines` (inserted at
    /// the cursor) as code that parses and runs? Not after a `return` (or
    /// `break`, `continue`, `raise`) in the same block, where it could never
    /// run; with indentation blocks, deeper only after an opener and never
    /// deeper otherwise.
    fn fits_below(&self, lines: &[&str]) -> bool {
        let Some(next) = self.next_indent else { return true };
        let cursor_w = self.cursor_indent.as_deref().map_or(0, indent_width);
        let Some((i, last)) = lines.iter().enumerate().rev().find(|(_, l)| !l.trim().is_empty()) else { return true };
        let width = indent_width(last) + if i == 0 { cursor_w } else { 0 };
        if width == next && ends_flow(self.language, last) {
            return false;
        }
        if !syntax::grammar(self.language).is_some_and(|g| g.indent_blocks) {
            return true;
        }
        if self.language.opens_block(last) {
            next > width
        } else {
            next <= width
        }
    }

    /// The generation without the text the prompt left out (see
    /// `CompletionContext::heal`): blanks leniently (the model may skip or
    /// shorten them), the partial word strictly. `Err(true)` while the
    /// generation is still a prefix of the left-out word, `Err(false)` when
    /// it does not continue it.
    fn healed<'a>(&self, generated: &'a str) -> Result<&'a str, bool> {
        let word = self.heal.trim_start_matches([' ', '\t']);
        let blanks = &self.heal[..self.heal.len() - word.len()];
        let common = generated.bytes().zip(blanks.bytes()).take_while(|(a, b)| a == b).count();
        let g = &generated[common..];
        if let Some(rest) = g.strip_prefix(word) {
            Ok(rest)
        } else {
            Err(word.starts_with(g))
        }
    }

    /// What `generated` holds past the cursor, once it has covered the
    /// text the prompt left out (see `healed`).
    pub fn past_cursor<'a>(&self, generated: &'a str) -> Option<&'a str> {
        self.healed(generated).ok()
    }

    /// True once `generated` holds everything the suggestion can use.
    pub fn is_done(&self, generated: &str) -> bool {
        let generated = match self.healed(generated) {
            Ok(g) => g,
            Err(still_possible) => return !still_possible,
        };
        // Ever more blanks and nothing else on the cursor's line: the model
        // would rather have written nothing here, and only blanks follow
        // (up to the token limit, 85 ms each on a laptop CPU).
        if generated.len() > MAX_BLANK_RUN && generated.bytes().all(|b| b == b' ' || b == b'\t') {
            return true;
        }
        if self.leaves_its_block(generated) || generated.split_once('\n').is_some_and(|(first, _)| self.repeats_an_opener(first)) {
            return true;
        }
        if self.open_line {
            let complete = match generated.rfind('\n') {
                Some(i) => &generated[..i],
                None => return false,
            };
            let lines: Vec<&str> = complete.split('\n').collect();
            return lines.len() > self.max_lines || self.open_end(&lines, true).is_some_and(|e| e < lines.len());
        }
        if let Some((open, rest)) = self.next_line_answer(generated) {
            return open.is_done(rest);
        }
        if let Some(mode) = self.opened_block(generated) {
            return self.block_done(mode, generated);
        }
        match self.mode {
            Mode::SingleLine => {
                generated.trim_start_matches([' ', '\t']).contains('\n') && !generated.trim().is_empty() || generated.starts_with('\n')
            }
            Mode::Block { .. } => self.block_done(self.mode, generated),
        }
    }

    /// In a block: every complete line is settled; done once one ends the
    /// block, or there are more lines than wanted.
    fn block_done(&self, mode: Mode, generated: &str) -> bool {
        let complete = match generated.rfind('\n') {
            Some(i) => &generated[..i],
            None => return false,
        };
        let lines: Vec<&str> = complete.split('\n').collect();
        self.block_len(mode, &lines) < lines.len() || lines.len() > self.max_lines
    }

    /// A single-line suggestion whose line the model ends with a block
    /// opener (`for x in xs:`, `if ok {`) at the end of the cursor's line:
    /// the line is of no use without its body, so the suggestion goes on
    /// with the block that line opens, as after a typed opener. Known once
    /// the first generated line is complete.
    fn opened_block(&self, generated: &str) -> Option<Mode> {
        if self.mode != Mode::SingleLine || !self.line_suffix.is_empty() || self.language == Language::PlainText {
            return None;
        }
        let first = generated.split_once('\n')?.0;
        let line = format!("{}{}", self.line_prefix, first);
        let indent = indent_width(&line);
        // A body already below (the line itself was being rewritten) stays
        // the body: only the line is suggested.
        let has_body = self.next_indent.is_some_and(|n| n > indent);
        (!first.trim().is_empty() && !has_body && self.language.opens_block(&line)).then_some(Mode::Block { opener_indent: indent })
    }

    /// How many of `lines` belong to the block.
    fn block_len(&self, mode: Mode, lines: &[&str]) -> usize {
        let Mode::Block { opener_indent } = mode else { return lines.len().min(1) };
        let mut seen_body = !lines.first().is_none_or(|l| l.trim().is_empty());
        for (i, line) in lines.iter().enumerate() {
            if i >= self.max_lines {
                return i;
            }
            if i == 0 || line.trim().is_empty() {
                continue;
            }
            if indent_width(line) <= opener_indent && seen_body {
                return i; // dedent: the block has ended
            }
            // A `}` deeper than the line below closes a nested block.
            let nested_close = line.trim_start().starts_with('}') && self.next_indent.is_some_and(|n| indent_width(line) > n);
            if self.next_line.as_deref() == Some(line.trim()) && !nested_close {
                return i; // repeats what already follows the cursor
            }
            seen_body = true;
        }
        lines.len()
    }

    /// What can be shown now of an answer still being generated: the
    /// suggestion made of its complete lines, as if the model had been cut
    /// off there (an open line falls back to its first line, a block to its
    /// complete lines). None when no complete line makes a suggestion yet.
    /// The rest follows when the generation ends (see `complete::suggest_early`).
    ///
    /// In a language of braces, a block still open there (its body has a
    /// complete line) is shown closed, as the model would close it: `}`
    /// at its opener's indentation, after the brackets its opener left
    /// open (`});`). Otherwise an answer that opens a block (a match arm,
    /// an `if`) shows nothing until the block's end is generated, often
    /// a second or more (typing replay, stop 34).
    pub fn early(&self, generated: &str) -> Option<String> {
        let cut = generated.rfind('\n')?;
        let lines = &generated[..=cut];
        let text = self.finish(lines);
        if !text.trim().is_empty() {
            return Some(text);
        }
        let healed = self.healed(lines).ok()?;
        // One try (each is a parse of the document, on the engine's thread
        // between tokens): a call's closer ends its statement (`});`), as
        // is the style outside Go.
        let semicolon = if self.language == Language::Go { "" } else { ";" };
        let closed = self.open_block_closers(healed).and_then(|closers| {
            let closed: String =
                closers.iter().map(|c| if c.ends_with(')') { format!("{c}{semicolon}\n") } else { format!("{c}\n") }).collect();
            let text = self.finish(&format!("{lines}{closed}"));
            (!text.trim().is_empty()).then_some(text)
        });
        closed.or_else(|| self.opener_alone(healed))
    }

    /// The first line of `healed` alone, when it opens a block whose body is
    /// still to come: what a completer of single lines shows (llama.vim),
    /// and what the whole answer goes on from. A line that does not parse
    /// without its body, so shown only while the rest is generated.
    fn opener_alone(&self, healed: &str) -> Option<String> {
        let first = healed.split('\n').next()?.trim_end();
        let line = format!("{}{first}", self.line_prefix);
        let new_block = self.line_suffix.is_empty()
            && !self.language.code_of_line(first).trim().is_empty()
            && self.language.opens_block(&line)
            && self.next_indent.is_none_or(|n| n <= indent_width(&line));
        let again = self.leaves_its_block(first)
            || self.repeats_an_opener(first)
            || (self.open_line && self.join_at(first, indent_width(first) + self.cursor_w()) == Some(0));
        (new_block && !again).then(|| first.to_string())
    }

    /// The lines that close the blocks `lines` (complete lines of an answer,
    /// healed) leaves open, innermost first; None in a language of indented blocks,
    /// when none is open, or when the innermost has no body line yet.
    fn open_block_closers(&self, lines: &str) -> Option<Vec<String>> {
        if syntax::grammar(self.language).is_none_or(|g| g.block_openers != ["{"]) {
            return None;
        }
        let mut open: Vec<String> = Vec::new();
        let mut body = false;
        for (i, line) in lines.split('\n').enumerate() {
            let code = self.language.code_of_line(line).trim();
            if code.is_empty() {
                continue;
            }
            if code.starts_with('}') {
                open.pop();
            }
            body = true;
            if self.language.opens_block(line) {
                let whole = if i == 0 { format!("{}{line}", self.line_prefix) } else { line.to_string() };
                let lead = &whole[..whole.len() - whole.trim_start().len()];
                // Brackets the opener leaves open before its brace (`f(function() {`).
                let parens = code.matches('(').count().saturating_sub(code.matches(')').count());
                open.push(format!("{lead}}}{}", ")".repeat(parens)));
                body = false;
            }
        }
        (body && !open.is_empty()).then(|| open.into_iter().rev().collect())
    }

    /// A second try after a loop header that came to nothing (`for i, v :=
    /// range xs {` with `v` never read, `for n > 0 {` where the code below
    /// reads a loop variable it does not bind): a loop again, but not over
    /// the same first name. The text the second try starts with (as
    /// generated, up to `for `) and the word after it that it may not write;
    /// None when `generated` is not such a header (`for (` is left alone).
    pub fn loop_retry(&self, generated: &str) -> Option<(String, String)> {
        if !self.open_line {
            return None;
        }
        let lead = generated.len() - generated.trim_start().len();
        let after = generated[lead..].strip_prefix("for ")?;
        let word_len = after.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(after.len());
        (word_len > 0 && generated.starts_with(&self.heal)).then(|| (generated[..lead + 4].to_string(), format!(" {}", &after[..word_len])))
    }

    /// The final suggestion for `generated`, not known to have ended; empty
    /// when nothing fits.
    pub fn finish(&self, generated: &str) -> String {
        self.finish_with(generated, false)
    }

    /// The final suggestion for `generated`; `ended`: the model stopped by
    /// itself (an end-of-generation token), not at a limit.
    pub fn finish_with(&self, generated: &str, ended: bool) -> String {
        let Ok(generated) = self.healed(generated) else { return String::new() };
        if self.leaves_its_block(generated) || self.repeats_an_opener(generated.split('\n').next().unwrap_or("")) {
            return String::new();
        }
        if let Some((open, rest)) = self.next_line_answer(generated) {
            // Not the line below again (it follows already).
            let first = rest.split('\n').find(|l| !l.trim().is_empty());
            if first.is_some_and(|l| !open.joins_below(l, indent_width(l))) {
                let text = open.finish_with(rest, ended);
                if !text.trim().is_empty() {
                    return format!("\n{text}");
                }
            }
            return String::new();
        }
        if let Some(text) = self.open_lines(generated, ended) {
            let text = self.syntax_cut(text, Mode::Block { opener_indent: 0 });
            if !text.trim().is_empty() {
                return text;
            }
        }
        let opened = self.opened_block(generated);
        let text = match self.mode {
            Mode::SingleLine if opened.is_some() => {
                // The generated opener line and the body it opens, as the
                // model indented it.
                let lines: Vec<&str> = generated.split('\n').collect();
                let mut n = self.block_len(opened.unwrap_or(self.mode), &lines);
                // A brace block ends with its own closing line.
                if let (Some(Mode::Block { opener_indent }), Some(end)) = (opened, lines.get(n)) {
                    if indent_width(end) == opener_indent && matches!(end.trim(), "}" | "};" | "})" | "});" | "},") {
                        n += 1;
                    }
                }
                let kept = kept_lines(&lines[..n]);
                if kept.len() < 2 {
                    // An opener without its body does not parse (whatever
                    // the grammar's error recovery says), unless the body
                    // is below already: the line was emptied (HumanEval-X
                    // Java/123/L5).
                    let width = kept.first().map_or(0, |l| indent_width(l)) + self.cursor_w();
                    if !(self.open_line && self.next_indent.is_some_and(|n| n > width)) {
                        return String::new();
                    }
                }
                kept.join("\n")
            }
            Mode::SingleLine => {
                let first = generated.split('\n').next().unwrap_or("");
                // On an open line, the line below again is no answer (it
                // follows already).
                if self.open_line && self.join_at(first, indent_width(first) + self.cursor_w()) == Some(0) {
                    return String::new();
                }
                trim_suffix_overlap(first.trim_end(), &self.line_suffix).to_string()
            }
            Mode::Block { .. } => {
                let fixed = self.fix_indentation(generated);
                let lines: Vec<&str> = fixed.split('\n').collect();
                let n = self.block_len(self.mode, &lines);
                kept_lines(&lines[..n]).join("\n")
            }
        };
        let text = self.syntax_cut(text, opened.unwrap_or(self.mode));
        if self.strands_below(&text) {
            // `if (c) { body }` whose body is the code below: its opener.
            return self.opener_of_inline_body(generated.split('\n').next().unwrap_or("")).unwrap_or_default();
        }
        if text.trim().is_empty() || self.leaves_unused(&text) || self.news_a_value(&text) {
            String::new()
        } else {
            text
        }
    }

    /// On an open line above deeper code, an answer that is a header with
    /// its body on the same line (`if (y == 1) return true`, `if (c) { p *=
    /// y; }`) where that body is the code below: the model wrote the emptied
    /// opener and its body at once. Its header, opening the block below
    /// (HumanEval-X JavaScript/154/L8, JavaScript/131/L4).
    fn opener_of_inline_body(&self, line: &str) -> Option<String> {
        if !self.open_line || syntax::grammar(self.language).is_none_or(|g| g.block_openers != ["{"]) {
            return None;
        }
        let code = self.language.code_of_line(line).trim_end();
        let lead = &code[..code.len() - code.trim_start().len()];
        let code = code.trim_start();
        if !matches!(syntax::leading_word(code.trim_start_matches(['}', ' '])), "if" | "for" | "while" | "else" | "switch") {
            return None;
        }
        // The header ends at the first `{` outside brackets, or (braceless)
        // at the `)` that closes its condition.
        let (mut depth, mut open_at, mut cond_end) = (0i32, None, None);
        for (i, c) in code.char_indices() {
            match c {
                '(' | '[' => depth += 1,
                ')' | ']' => {
                    depth -= 1;
                    if depth == 0 && cond_end.is_none() {
                        cond_end = Some(i + 1);
                    }
                }
                '{' if depth == 0 => {
                    open_at = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let (header, body) = match (open_at, cond_end) {
            (Some(i), _) => (&code[..i], code[i + 1..].trim().trim_end_matches('}')),
            (None, Some(i)) => (&code[..i], &code[i..]),
            _ => return None,
        };
        let width = self.cursor_w() + indent_width(lead);
        let deeper: String = self.below.iter().take_while(|(w, _)| *w > width).map(|(_, l)| l.as_str()).collect();
        let plain = |s: &str| s.chars().filter(|c| !c.is_whitespace() && *c != ';').collect::<String>();
        let body = plain(body);
        (!body.is_empty() && plain(&deeper).starts_with(&body)).then(|| format!("{lead}{} {{", header.trim_end()))
    }

    /// On an open line of a language of braces, is the code below deeper
    /// than the answer's last line while that line ends a statement? That
    /// code is then the body (or the rest) of an emptied line, left without
    /// what opens it (HumanEval-X Go/56/L12: `return count == 0` above the
    /// `if`'s body and its `} else {`).
    fn strands_below(&self, text: &str) -> bool {
        if !self.open_line || syntax::grammar(self.language).is_none_or(|g| g.indent_blocks) {
            return false;
        }
        let (Some(next), Some((_, below))) = (self.next_indent, self.below.first()) else { return false };
        let Some((i, last)) = text.split('\n').enumerate().filter(|(_, l)| !l.trim().is_empty()).last() else { return false };
        let width = indent_width(last) + if i == 0 { self.cursor_w() } else { 0 };
        // A line below that goes on from the one before (`.then(f)`, `&& b`).
        let goes_on = below.starts_with(['.', '?', ':', '+', '-', '*', '/', '%', '&', '|', '^', '<', '>', '=', ')', ']', '}', ',']);
        if next <= width || goes_on {
            return false;
        }
        let code = self.language.code_of_line(last).trim();
        // A comment opens nothing either (HumanEval-X Java/123/L5).
        if code.is_empty() {
            return true;
        }
        let word = code.rsplit(|c: char| !c.is_ascii_alphanumeric() && c != '_').next().unwrap_or("");
        crate::context::ends_finished_line(self.language, code, "")
            && !matches!(word, "else" | "do")
            && !self.language.braceless_header(code)
    }

    /// Is an answer on an open line nothing but comments, where code belongs?
    /// (HumanEval-X Java/20/L14: `// Test the function with provided data
    /// points` between two statements.) A second try is asked for; the
    /// comment stays when that brings no code either.
    pub fn only_comments(&self, text: &str) -> bool {
        self.open_line
            && syntax::grammar(self.language).is_some()
            && !text.trim().is_empty()
            && text.split('\n').all(|l| self.language.code_of_line(l).trim().is_empty())
    }

    /// In a language where a local declared and never read does not compile
    /// (Go), does the answer declare one (`a, b := f()`, `for i, v := range
    /// xs`) that neither the rest of the answer nor the code after the
    /// cursor in the same scope reads? (HumanEval-X Go/111/L5: `v` in
    /// `for i, v := range lst` where the code below reads `i` as the element.)
    fn leaves_unused(&self, text: &str) -> bool {
        if !syntax::grammar(self.language).is_some_and(|g| g.unused_is_error) {
            return false;
        }
        let first = self.language.code_of_line(text.split('\n').next().unwrap_or(""));
        let Some((lhs, _)) = first.split_once(":=") else { return false };
        let rest = &text[text.find(":=").map_or(0, |i| i + 2)..];
        let lhs = lhs.trim_start().trim_start_matches("for ").trim_start_matches("if ").trim_start_matches("switch ");
        let names: Vec<&str> = lhs.split(',').map(str::trim).collect();
        if !names.iter().all(|n| !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_')) {
            return false;
        }
        // The rest of the scope around the cursor: up to the first line
        // below at or left of the line that starts it (its `}`).
        let scope_end = self.scope_indent.map_or(self.after.len(), |w| {
            let mut at = self.after.find('\n').map_or(self.after.len(), |i| i + 1);
            for line in self.after[at..].split_inclusive('\n') {
                if !line.trim().is_empty() && indent_width(line) <= w {
                    break;
                }
                at += line.len();
            }
            at
        });
        let scope = &self.after[..scope_end];
        names.iter().any(|&n| n != "_" && !syntax::mentions(rest, n) && !syntax::mentions(scope, n))
    }

    /// Does a line of the answer initialize a value type with a `new`
    /// object (`int result = new ArrayList<>();`)? It does not compile.
    /// (HumanEval-X Java/142/L0, where the code below calls `result.add`.)
    fn news_a_value(&self, text: &str) -> bool {
        let Some(prims) = syntax::grammar(self.language).map(|g| g.primitive_types).filter(|p| !p.is_empty()) else {
            return false;
        };
        text.split('\n').any(|line| {
            let mut words = self.language.code_of_line(line).split_whitespace().skip_while(|w| matches!(*w, "final" | "const" | "static"));
            let mut prim = None;
            let mut name = None;
            for w in words.by_ref() {
                if prims.contains(&w) {
                    prim = Some(w);
                } else {
                    name = Some(w);
                    break;
                }
            }
            let (Some(prim), Some(name)) = (prim, name) else { return false };
            if !name.chars().all(|c| c.is_alphanumeric() || c == '_') || words.next() != Some("=") || words.next() != Some("new") {
                return false;
            }
            let class: String = words.next().unwrap_or("").chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            !class.is_empty() && !class.to_lowercase().starts_with(prim)
        })
    }

    /// Block bodies indented to the cursor's context: a body the model put
    /// at the opener's level (or less) moves one level in, and indentation
    /// follows the document's tabs or spaces.
    fn fix_indentation(&self, generated: &str) -> String {
        let Mode::Block { opener_indent } = self.mode else { return generated.to_string() };
        let cursor_w = self.cursor_indent.as_deref().map_or(0, indent_width);
        // The first line that has code, and its column in the document.
        let first = generated.split('\n').enumerate().find(|(_, l)| !l.trim().is_empty());
        let (shift, first_col) = match first {
            Some((i, l)) => {
                let col = indent_width(l) + if i == 0 { cursor_w } else { 0 };
                (if col <= opener_indent { opener_indent + 4 - col } else { 0 }, col)
            }
            None => (0, 0),
        };
        if shift == 0 && !self.tabs {
            return generated.to_string();
        }
        let mut out = Vec::new();
        let mut blank_seen = false;
        for l in generated.split('\n') {
            if l.trim().is_empty() {
                blank_seen = true;
                out.push(l.to_string());
                continue;
            }
            // A body written at the opener's level: after a blank line, a
            // line at that level again is the next statement, not the body.
            if shift > 0 && blank_seen && indent_width(l) <= first_col {
                break;
            }
            // (The first line adds to the whitespace already before the cursor.)
            let keep = indent_width(l) + shift;
            let body = l.trim_start_matches([' ', '\t']);
            let indent = if self.tabs { "\t".repeat(keep / 4) + &" ".repeat(keep % 4) } else { " ".repeat(keep) };
            out.push(format!("{indent}{body}"));
        }
        out.join("\n")
    }

    /// The longest cut of `text` (at a line end, or in a single line at a
    /// closing bracket or a word end) whose insertion adds no syntax errors
    /// to the window compared with the window without it.
    fn syntax_cut(&self, text: String, mode: Mode) -> String {
        if text.trim().is_empty() || syntax::grammar(self.language).is_none() {
            return text;
        }
        let problems = |insert: &str| {
            let doc = format!("{}{insert}{}", self.before, self.after);
            syntax::parse(self.language, &doc).map(|t| syntax::problem_count(&t))
        };
        let Some(baseline) = problems("") else { return text };
        for cut in cut_points(&text, mode) {
            let candidate = text[..cut].trim_end();
            if candidate.trim().is_empty() {
                break;
            }
            if problems(candidate).is_some_and(|p| p <= baseline) {
                return candidate.to_string();
            }
        }
        String::new()
    }
}

/// Does `whole` (the finished answer) go on from `shown` (its early
/// answer)? It starts with what was shown, save the lines that closed its
/// open blocks (see `Trimmer::early`), and says more.
pub fn goes_on_from(shown: &str, whole: &str) -> bool {
    let mut stem = shown;
    while let Some((rest, last)) = stem.rsplit_once('\n') {
        if !last.trim().trim_end_matches(';').chars().all(|c| matches!(c, '}' | ')')) {
            break;
        }
        stem = rest;
    }
    whole != shown && whole.len() > stem.len() && whole.starts_with(stem)
}

/// Does this line leave its block (nothing after it in the block runs)?
/// Per the language's jump statements (`return`, `raise`, `throw`...).
fn ends_flow(lang: Language, line: &str) -> bool {
    let t = line.trim();
    let jumps: &[&str] = syntax::grammar(lang).map_or(&["return", "break", "continue"], |g| g.jumps);
    jumps.iter().any(|k| t.strip_prefix(k).is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', ';', '('])))
}

/// The lines of a block suggestion, without trailing blanks.
/// The first `BELOW_LINES` non-blank lines: their indentation and trimmed text.
fn code_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(usize, String)> {
    lines.filter(|l| !l.trim().is_empty()).take(BELOW_LINES).map(|l| (indent_width(l), l.trim().to_string())).collect()
}

fn kept_lines<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    let mut kept: Vec<&str> = lines.iter().map(|l| l.trim_end()).collect();
    while kept.len() > 1 && kept.last().is_some_and(|l| l.is_empty()) {
        kept.pop();
    }
    kept
}

/// Where `text` may be cut, longest first: its end, then line ends (a
/// block), or after closing brackets and at word ends (one line).
fn cut_points(text: &str, mode: Mode) -> Vec<usize> {
    let mut cuts = vec![text.len()];
    match mode {
        Mode::Block { .. } => cuts.extend(text.match_indices('\n').map(|(i, _)| i).rev()),
        Mode::SingleLine => {
            let b = text.as_bytes();
            for i in (1..text.len()).rev() {
                let after_closer = matches!(b[i - 1], b')' | b']' | b'}' | b'"' | b'\'' | b'`');
                let word_end = (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') && !(b[i].is_ascii_alphanumeric() || b[i] == b'_');
                if (after_closer || word_end) && text.is_char_boundary(i) {
                    cuts.push(i);
                }
            }
        }
    }
    cuts.dedup();
    cuts
}

/// Two lines of code alike but for their blanks (`"one":   1,` is
/// `"one": 1,` aligned by a formatter).
fn same_code(a: &str, b: &str) -> bool {
    a.split_whitespace().flat_map(str::chars).eq(b.split_whitespace().flat_map(str::chars))
}

/// Does this text indent with tabs (more lines start with a tab than with spaces)?
fn uses_tabs(text: &str) -> bool {
    let (mut tabs, mut spaces) = (0, 0);
    for l in text.lines().rev().take(200) {
        if l.starts_with('\t') {
            tabs += 1;
        } else if l.starts_with("  ") {
            spaces += 1;
        }
    }
    tabs > spaces
}

/// Drops the end of `completion` that repeats the start of the text after
/// the cursor on the same line (e.g. a closing bracket the editor already has).
pub fn trim_suffix_overlap<'a>(completion: &'a str, line_suffix: &str) -> &'a str {
    if line_suffix.is_empty() {
        return completion;
    }
    if let Some(stripped) = completion.strip_suffix(line_suffix) {
        return stripped.trim_end();
    }
    // The longest tail of the completion that is a head of the suffix.
    let mut best = 0;
    for (i, _) in completion.char_indices() {
        let tail = &completion[i..];
        if !tail.trim().is_empty() && line_suffix.starts_with(tail) {
            best = completion.len() - i;
            break;
        }
    }
    completion[..completion.len() - best].trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::Language;

    /// Fixture with a `$0` cursor, the raw generation, the expected suggestion.
    fn check(lang: Language, fixture: &str, generated: &str, expected: &str) {
        check_ended(lang, fixture, generated, false, expected)
    }

    /// As `check`, for a generation the model ended itself (`ended`) or not.
    fn check_ended(lang: Language, fixture: &str, generated: &str, ended: bool, expected: &str) {
        let ctx = crate::fixture::context(lang, fixture);
        let t = Trimmer::new(&ctx, 12);
        assert_eq!(t.finish_with(generated, ended), expected, "fixture {fixture:?}, generated {generated:?}");
    }

    #[test]
    fn an_open_line_takes_the_lines_the_model_closes() {
        let py = "def total(xs):\n    t = 0\n$0\n    return t\n";
        // Joined the line below: the lines before it.
        check_ended(Language::Python, py, "    for x in xs:\n        t += x\n    return t\n", false, "    for x in xs:\n        t += x");
        // Ended by the model.
        check_ended(Language::Python, py, "    t += sum(xs)\n    t *= 2", true, "    t += sum(xs)\n    t *= 2");
        // Left the function: the lines inside it.
        check_ended(
            Language::Python,
            py,
            "    t += sum(xs)\n    t *= 2\n\ndef check():\n    pass\n",
            false,
            "    t += sum(xs)\n    t *= 2",
        );
        // Not closed (a limit cut it short): its first line only.
        check_ended(Language::Python, py, "    t += sum(xs)\n    t *= 2\n    t -= 1", false, "    t += sum(xs)");
        // A repeat of the line below at another depth is not a join.
        check_ended(
            Language::Python,
            py,
            "    for x in xs:\n        return t\n    return t\n",
            false,
            "    for x in xs:\n        return t",
        );
        // Lines that do not parse with the code around them are cut back.
        check_ended(Language::Python, py, "    t += sum(xs)\n    t = (\n    return t\n", false, "    t += sum(xs)");
        // The code below is an indented body: the answer must end with its opener.
        let body_below = "def f(xs):\n    t = 0\n$0\n        t += x\n    return t\n";
        check_ended(Language::Python, body_below, "    t = 1\n    for x in xs:\n        t += x\n", false, "    t = 1\n    for x in xs:");
        check_ended(
            Language::Python,
            body_below,
            "    t = 1\n    for x in xs:\n        t += 2\n    t = 3",
            true,
            "    t = 1\n    for x in xs:\n        t += 2",
        );
        // Nothing after a return in the same block would run.
        let after = "def f(x, y):\n    if x > y:\n$0\n    if x == y:\n        return 0\n    return y\n";
        check_ended(Language::Python, after, "        return x\n    return y - 1", true, "        return x");
        // Skipping ahead to a line further down also joins.
        let longer = "def f(xs):\n    t = 0\n$0\n    for x in xs:\n        t += x\n    return sorted(t)\n";
        check_ended(Language::Python, longer, "    t = len(xs)\n    t += 1\n    return sorted(t)\n", true, "    t = len(xs)\n    t += 1");
        // Rust: the closing brace below is the join; the model's own braces are kept.
        let rs = "fn total(xs: &[u32]) -> u32 {\n    let mut t = 0;\n    $0\n}\n";
        check_ended(
            Language::Rust,
            rs,
            "for x in xs {\n        t += x;\n    }\n    t\n}\n\nfn main() {",
            false,
            "for x in xs {\n        t += x;\n    }\n    t",
        );
    }

    #[test]
    fn a_finished_line_may_go_on_below() {
        let py = "def f(xs):\n    count = 0$0\n    return count\n";
        // The model breaks the line first (after the healed `0`): the answer goes on below it.
        check(
            Language::Python,
            py,
            " 0 \n    for x in xs:\n        count += x\n    return count\n",
            "\n    for x in xs:\n        count += x",
        );
        check_ended(Language::Python, py, " 0\n    count += len(xs)", true, "\n    count += len(xs)");
        // Only the line that follows anyway, or nothing: no answer.
        check(Language::Python, py, " 0\n    return count\n", "");
        check_ended(Language::Python, py, " 0\n", true, "");
        // A line that goes on, or code before the break, is not a finished line.
        check(Language::Python, "def f(xs):\n    count = $0\n", "\n    len(xs)\n", "");
        check(Language::Python, py, " 0  # none\n    for x in xs:\n", "  # none");
        // Rust: a statement, then the next one.
        let rs = "fn f(v: &[u32]) -> u32 {\n    let mut n = 0;$0\n    n\n}\n";
        check(Language::Rust, rs, "\n    for x in v {\n        n += x;\n    }\n    n\n}\n", "\n    for x in v {\n        n += x;\n    }");
        // The engine goes on past the line break, and stops once it is settled.
        let t = Trimmer::new(&crate::fixture::context(Language::Python, py), 12);
        assert!(!t.is_done(" 0 \n"));
        assert!(!t.is_done(" 0 \n    for x in xs:\n"));
        assert!(t.is_done(" 0 \n    for x in xs:\n        count += x\n    return count\n"));
        assert_eq!(t.early(" 0 \n    count += 1\n    ret").as_deref(), Some("\n    count += 1"));
    }

    #[test]
    fn single_line_stops_at_the_newline() {
        check(Language::Python, "def add(a, b):\n    return a + $0\n", " b\n\ndef sub(a, b):\n", "b");
        // The model may also skip the space the prompt left out.
        check(Language::Python, "def add(a, b):\n    return a + $0\n", "b\n", "b");
    }

    #[test]
    fn the_partial_word_must_be_continued() {
        check(Language::Python, "def area(radius):\n    return 3.14 * rad$0\n", " radius ** 2\n", "ius ** 2");
        check(Language::Python, "def area(radius):\n    return 3.14 * rad$0\n", "radius ** 2\n", "ius ** 2");
        check(Language::Python, "def area(radius):\n    return 3.14 * rad$0\n", " r ** 2\n", "");
    }

    #[test]
    fn single_line_drops_the_closing_brackets_already_there() {
        check(Language::Python, "print(add(1, $0))\n", "2))", "2");
        check(Language::Rust, "let v = vec![$0];\n", "1, 2, 3];", "1, 2, 3");
        check(Language::Rust, "foo($0)\n", "a, b)", "a, b");
    }

    #[test]
    fn single_line_that_only_repeats_the_suffix_is_empty() {
        check(Language::Python, "x = compute($0)\n", ")", "");
        check(Language::Python, "x = 1$0\n", "\n    y = 2", "");
        check(Language::Python, "x = $0\n", " \n", "");
    }

    #[test]
    fn block_after_opener_keeps_the_body_only() {
        check(
            Language::Python,
            "def is_even(n):\n    $0\n\nprint(is_even(2))\n",
            "return n % 2 == 0\n\n\ndef is_odd(n):\n    return not is_even(n)\n",
            "return n % 2 == 0",
        );
        check(
            Language::Rust,
            "fn square(x: i32) -> i32 {$0\n}\n",
            "\n    let y = x * x;\n    y\n}\n\nfn main() {}\n",
            "\n    let y = x * x;\n    y",
        );
    }

    #[test]
    fn block_stops_where_it_repeats_the_suffix() {
        check(Language::Python, "for x in xs:\n    $0\n    total += x\n", "y = x * 2\n    total += x\n    print(total)\n", "y = x * 2");
    }

    #[test]
    fn a_body_at_the_opener_level_is_indented() {
        check(Language::Python, "def f(x):\n$0\n", "return x + 1\n\nprint(f(2))\n", "    return x + 1");
        check(Language::Python, "class A:\n    def f(self):\n    $0\n", "return 1\n", "    return 1");
        // Already right: unchanged.
        check(Language::Python, "def f(x):\n    $0\n", "y = x\n    return y\n", "y = x\n    return y");
        // Tabs in the document: tabs in the suggestion.
        check(Language::Python, "def g():\n\tpass\n\ndef f(x):\n\t$0\n", "y = x\n    return y\n", "y = x\n\treturn y");
    }

    #[test]
    fn the_cut_adds_no_syntax_errors() {
        // One closer too many: cut at the word end.
        check(Language::Python, "print(len($0))\n", "items)))\n", "items");
        // A block whose last line opens something it never closes.
        check(Language::Rust, "fn f() -> i32 {$0\n}\n", "\n    let x = 1;\n    let y = (x\n", "\n    let x = 1;");
        // Fine as it is: kept whole.
        check(Language::Rust, "fn f() -> i32 {$0\n}\n", "\n    let x = 1;\n    x + 1\n}\n", "\n    let x = 1;\n    x + 1");
    }

    #[test]
    fn a_generated_opener_brings_its_body() {
        // An empty line in a body: the model writes a loop; its body comes with it.
        check(
            Language::Python,
            "def total(xs):\n    s = 0\n    $0\n    return s\n",
            "for x in xs:\n        s += x\n    return s\n",
            "for x in xs:\n        s += x",
        );
        check(
            Language::Rust,
            "fn f(v: &[i32]) -> i32 {\n    let mut s = 0;\n    $0\n    s\n}\n",
            "for x in v {\n        s += x;\n    }\n    s\n}\n",
            "for x in v {\n        s += x;\n    }",
        );
        // Mid-line, the same: the opener completes the line, the body follows.
        check(Language::Python, "def f(xs):\n    for x in $0\n", "xs:\n        print(x)\n\nf([])\n", "xs:\n        print(x)");
        // Text after the cursor keeps it to the line; a plain line stays one line.
        check(Language::Python, "def f(xs):\n    for x in $0 if x]\n", "xs:\n        pass\n", "xs:");
        check(Language::Python, "def f(xs):\n    a = 0\n    $0\n", "y = 1\n    z = 2\n", "y = 1");
        // The body is already there: the opener line alone.
        check(Language::Python, "def f(xs):\n    a = 1\n    $0\n        print(x)\n", "for x in xs:\n        print(x)\n", "for x in xs:");
        check(
            Language::Rust,
            "fn f() {\n    let a = 1;\n    $0\n        g(x);\n    }\n}\n",
            "for x in v {\n        g(x);\n    }\n",
            "for x in v {",
        );
        // An opener with no body at all is left out (it would not parse).
        check(Language::Python, "def f(xs):\n    y = 1\n    $0\n", "if y:\n", "");
    }

    #[test]
    fn brace_languages_block_after_an_opener() {
        // TypeScript: the body after the `{`, not the next function.
        check(
            Language::TypeScript,
            "function square(x: number): number {$0\n}\n",
            "\n    const y = x * x;\n    return y;\n}\n\nfunction cube(x: number) {}\n",
            "\n    const y = x * x;\n    return y;",
        );
        check(
            Language::TypeScript,
            "class A {\n    total(xs: number[]): number {\n        $0\n    }\n}\n",
            "let t = 0;\n        for (const x of xs) t += x;\n        return t;\n    }\n}\n",
            "let t = 0;\n        for (const x of xs) t += x;\n        return t;",
        );
        check(Language::JavaScript, "const f = (xs) => {\n  $0\n};\n", "return xs.length;\n};\n\nf([]);\n", "return xs.length;");
        check(Language::Go, "func f(n int) int {\n\t$0\n}\n", "return n * 2\n}\n\nfunc g() {}\n", "return n * 2");
        check(Language::Java, "class A {\n    int f(int n) {\n        $0\n    }\n}\n", "return n + 1;\n    }\n}\n", "return n + 1;");
        check(Language::Cpp, "int f(int n) {\n    $0\n}\n", "return n - 1;\n}\n\nint main() {}\n", "return n - 1;");
        check(Language::C, "int f(int n) {\n    $0\n}\n", "return n % 2;\n}\n", "return n % 2;");
    }

    #[test]
    fn brace_languages_generated_opener_brings_its_body() {
        check(
            Language::TypeScript,
            "function total(xs: number[]): number {\n    let s = 0;\n    $0\n    return s;\n}\n",
            "for (const x of xs) {\n        s += x;\n    }\n    return s;\n}\n",
            "for (const x of xs) {\n        s += x;\n    }",
        );
        check(
            Language::Go,
            "func total(xs []int) int {\n\ts := 0\n\t$0\n\treturn s\n}\n",
            "for _, x := range xs {\n\t\ts += x\n\t}\n\treturn s\n}\n",
            "for _, x := range xs {\n\t\ts += x\n\t}",
        );
        check(
            Language::Cpp,
            "int total(vector<int> xs) {\n    int s = 0;\n    $0\n    return s;\n}\n",
            "for (int x : xs) {\n        s += x;\n    }\n    return s;\n}\n",
            "for (int x : xs) {\n        s += x;\n    }",
        );
        check(
            Language::Java,
            "class A {\n    int total(int[] xs) {\n        int s = 0;\n        $0\n        return s;\n    }\n}\n",
            "for (int x : xs) {\n            s += x;\n        }\n        return s;\n",
            "for (int x : xs) {\n            s += x;\n        }",
        );
    }

    #[test]
    fn an_open_line_above_a_deeper_body_must_open_it() {
        // The `if` line was emptied: its body and `} else {` are below.
        let go = "func f(count int) bool {\n    $0\n        return true\n    } else {\n        return false\n    }\n}\n";
        check(Language::Go, go, "return count == 0\n}\n", "");
        check(Language::Go, go, "if count == 0 {\n", "if count == 0 {");
        // A braceless header takes the deeper line as its body.
        let java = "class A {\n    int f(int x) {\n        $0\n            return 1;\n        return 0;\n    }\n}\n";
        check(Language::Java, java, "if (x > 0)\n", "if (x > 0)");
        check(Language::Java, java, "x++;\n", "");
        // An opener alone, its body (and its `}`) below.
        let java2 = "class A {\n    int f(int x) {\n        $0\n            return 1;\n        }\n        return 0;\n    }\n}\n";
        check(Language::Java, java2, "if (x > 0) {\n", "if (x > 0) {");
        // A comment leaves it stranded too.
        check(Language::Java, java, "// x is positive\n", "");
        // A header with the body below written inline: its opener.
        let js2 = "function f(y) {\n  let p = 1\n  $0\n    p *= y; k = 0;\n  }\n  return p\n}\n";
        check(Language::JavaScript, js2, "if (y % 2 !== 0) { p *= y; k = 0; }\n  }\n", "if (y % 2 !== 0) {");
        check(Language::JavaScript, js2, "if (y > 1) p *= y\n", "if (y > 1) {");
        check(Language::JavaScript, js2, "if (y > 1) { p += y }\n", "");
        check(Language::Go, go, "if count == 0 { return true }\n", "if count == 0 {");
        // A deeper line that goes on from this one (`.then(...)`).
        let js = "function f(p) {\n  $0\n    .then((r) => r.json());\n}\n";
        check(Language::JavaScript, js, "return fetch(p)\n", "return fetch(p)");
    }

    #[test]
    fn a_value_type_is_not_initialized_with_a_new_object() {
        let java = "class A {\n    int f(List<Integer> lst) {\n        $0\n        result.add(1);\n    }\n}\n";
        check(Language::Java, java, "int result = new ArrayList<>();\n", "");
        check(Language::Java, java, "final double result = new Foo(2);\n", "");
        // Its box class, an array, an object type: they compile.
        check(Language::Java, java, "int result = new Integer(3);\n", "int result = new Integer(3);");
        check(Language::Java, java, "int[] result = new int[3];\n", "int[] result = new int[3];");
        check(Language::Java, java, "List<Integer> result = new ArrayList<>();\n", "List<Integer> result = new ArrayList<>();");
        let cpp = "int f() {\n    $0\n    return *p;\n}\n";
        check(Language::Cpp, cpp, "unsigned int n = new Node();\n", "");
        check(Language::Cpp, cpp, "int *p = new int(3);\n", "int *p = new int(3);");
    }

    #[test]
    fn go_answers_do_not_declare_what_nothing_reads() {
        let go = "func f(lst []int) int {\n    s := 0\n    $0\n        s += i\n    }\n    return s\n}\n";
        // `v` is never read: "declared and not used".
        check(Language::Go, go, "for i, v := range lst {\n", "");
        check(Language::Go, go, "for _, i := range lst {\n", "for _, i := range lst {");
        // Read below, or not.
        let go2 = "func f(a []int) int {\n    $0\n    return n\n}\n";
        check(Language::Go, go2, "n := len(a)\n", "n := len(a)");
        check(Language::Go, go2, "n, err := g(a)\n", "");
        // `ok` read in the answer itself (its own condition), `n` below.
        let go3 = "func f(a []int) int {\n    $0\n        return n\n    }\n    return 0\n}\n";
        check(Language::Go, go3, "if n, ok := g(a); ok {\n", "if n, ok := g(a); ok {");
        // Read only in another function further down: not read here.
        let go4 = "func f(a []int) int {\n    $0\n    return 0\n}\n\nfunc g(n int) int {\n    return n\n}\n";
        check(Language::Go, go4, "n := len(a)\n", "");
        // Other languages leave unread locals alone.
        let ts = "function f(a: number[]): number {\n    $0\n    return 0;\n}\n";
        check(Language::TypeScript, ts, "const n = a.length;\n", "const n = a.length;");
    }

    #[test]
    fn a_comment_alone_is_no_code() {
        let java = "class A {\n    int f(int x) {\n        x++;\n        $0\n        return x;\n    }\n}\n";
        let t = Trimmer::new(&crate::fixture::context(Language::Java, java), 12);
        assert!(t.only_comments("// Test the function"));
        assert!(!t.only_comments("x *= 2; // twice"));
        assert!(!t.only_comments(""));
    }

    #[test]
    fn a_loop_header_retries_as_a_loop_over_another_name() {
        let go = "func f(lst []int) int {\n    s := 0\n    $0\n        s += i\n    }\n    return s\n}\n";
        let t = Trimmer::new(&crate::fixture::context(Language::Go, go), 12);
        assert_eq!(t.loop_retry("for i, v := range lst {"), Some(("for ".to_string(), " i".to_string())));
        // C's `for (` is left alone, as is any other line.
        let c = "int f(int n) {\n    int s = 0;\n    $0\n    return s;\n}\n";
        let t = Trimmer::new(&crate::fixture::context(Language::C, c), 12);
        assert_eq!(t.loop_retry("for (int i = 0; i < n; i++) {"), None);
        assert_eq!(t.loop_retry("s = n;"), None);
    }

    #[test]
    fn brace_languages_cut_adds_no_syntax_errors() {
        // TypeScript: a closer too many, cut at the word end.
        check(Language::TypeScript, "const n = Math.max(xs.length, $0);\n", "limit));\n", "limit");
        // A block whose last line opens something it never closes.
        check(Language::TypeScript, "function f(): number {$0\n}\n", "\n    const x = 1;\n    const y = (x\n", "\n    const x = 1;");
        check(Language::JavaScript, "console.log(`${$0}`);\n", "name}`);\n", "name");
        check(Language::Go, "func f() {\n\tx := g($0)\n}\n", "a, b))\n", "a, b");
        check(Language::Java, "class A {\n    void f() {\n        int x = g($0);\n    }\n}\n", "a, b));\n", "a, b");
        check(Language::Cpp, "int f() {\n    return max($0);\n}\n", "a, b));\n", "a, b");
        // Unreachable code after a jump is left out, per the language's jumps.
        check_ended(
            Language::Java,
            "class A {\n    int f(int x) {\n        $0\n        return 0;\n    }\n}\n",
            "if (x < 0) {\n            return 1;\n        }\n        throw new IllegalStateException();\n",
            true,
            "if (x < 0) {\n            return 1;\n        }",
        );
    }

    #[test]
    fn a_body_that_goes_on_below_gets_a_line_not_a_new_block() {
        // The first line of a body that goes on below (HumanEval-X Java/136,
        // JavaScript/120): the model's own lines, not joined to the code below
        // before a limit, are cut to the first.
        let java = "class Solution {\n    public List<Integer> f(List<Integer> lst) {\n\n        $0\n        List<Integer> largest = lst;\n        return largest;\n    }\n}\n";
        check(
            Language::Java,
            java,
            "List<Integer> smallest = lst;\n        int n = 0;\n        for (int x : lst) {\n            n += x;\n",
            "List<Integer> smallest = lst;",
        );
        // Lines that join the code below are kept up to it.
        check(
            Language::Java,
            java,
            "List<Integer> smallest = lst;\n        smallest.sort(null);\n        List<Integer> largest = lst;\n",
            "List<Integer> smallest = lst;\n        smallest.sort(null);",
        );
        // Ended by the model, but not where the code below goes on (HumanEval-X
        // CPP/9): still its first line.
        check_ended(Language::Java, java, "List<Integer> smallest = lst;\n        int n = 0;", true, "List<Integer> smallest = lst;");
        let js = "const maximum = (arr, k) => {\n\n  $0\n  for (let j = 0; j < p.length; j++) {\n    p[j] = 0\n  }\n  return p\n}\n";
        check(Language::JavaScript, js, "let p = arr\n  let q = 1\n  let r = 2\n", "let p = arr");
        let ts = "function f(xs: number[]): number {\n    $0\n    return t;\n}\n";
        check(Language::TypeScript, ts, "let t = 0;\n    for (const x of xs) {\n        t += x;\n", "let t = 0;");
        // An empty body still takes the block.
        check(
            Language::Java,
            "class A {\n    int f(int n) {\n\n        $0\n    }\n}\n",
            "int m = n * 2;\n        return m;\n",
            "int m = n * 2;\n        return m;",
        );
    }

    #[test]
    fn an_emptied_opener_gets_its_line_not_a_second_body() {
        // The body is already below, deeper than the cursor (HumanEval-X
        // Go/114): the model's opener comes with a body of its own, which
        // would repeat or contradict the one below.
        let go = "package main\n\nfunc f(nums []int) int {\n    s := 0\n    $0\n        s += -num\n        if s < 0 {\n            s = 0\n        }\n    }\n    return s\n}\n";
        check_ended(
            Language::Go,
            go,
            "for _, num := range nums {\n        s += num\n    }\n    return s\n",
            true,
            "for _, num := range nums {",
        );
        let java = "class A {\n    int f(int[] xs) {\n        int t = 0;\n        $0\n            t += x;\n        }\n        return t;\n    }\n}\n";
        check_ended(Language::Java, java, "for (int x : xs) {\n            t += 2 * x;\n        }\n", true, "for (int x : xs) {");
    }

    #[test]
    fn lines_that_skip_the_code_below_give_their_first() {
        // The model's lines come back to the code below further down
        // (HumanEval-X CPP/6): they stand for the lines skipped, which are
        // there already.
        let cpp = "vector<int> f(string s){\n    $0\n    string cur;\n    int level=0;\n    for (int i=0;i<s.length();i++)\n        cur+=s[i];\n    return out;\n}\n";
        check(Language::Cpp, cpp, "vector<int> out;\n    int i;\n    for (int i=0;i<s.length();i++)\n", "vector<int> out;");
        // Back at the very next line: the lines before it.
        check(Language::Cpp, cpp, "vector<int> out;\n    out.reserve(4);\n    string cur;\n", "vector<int> out;\n    out.reserve(4);");
    }

    #[test]
    fn a_header_without_its_brace_takes_the_statement_below() {
        // `for (...)` without a brace: its body is the statement below, at
        // any indentation (HumanEval-X CPP/26, CPP/7).
        let cpp = "vector<int> f(vector<int> xs){\n    vector<int> out;\n    $0\n    if (xs[i]>0)\n        out.push_back(xs[i]);\n    return out;\n}\n";
        check(
            Language::Cpp,
            cpp,
            "for (int i=0;i<xs.size();i++)\n    {\n        out.push_back(2*xs[i]);\n    }\n    if (xs[i]>0)\n",
            "for (int i=0;i<xs.size();i++)",
        );
        // The body the statement below is not (it belongs to an outer block).
        let js = "function f(xs) {\n  for (const x of xs)\n    $0\n  return t\n}\n";
        check_ended(Language::JavaScript, js, "if (x > 0)\n      t += x", true, "if (x > 0)\n      t += x");
    }

    #[test]
    fn an_answer_that_starts_with_a_line_break_starts_on_the_cursors_line() {
        // HumanEval-X Rust/56: the model writes a blank line first.
        let rust = "fn f(level: i32) -> bool {\n    if level != 0 {\n        return false;\n    }\n    $0\n}\n";
        check(Language::Rust, rust, "\n    true\n}\n\n", "true");
        check(Language::Rust, rust, "\n\n    let ok = level == 0;\n    ok\n}\n", "let ok = level == 0;\n    ok");
        // Not at the cursor's indentation: nothing.
        check(Language::Rust, rust, "\n        true\n}\n", "");
    }

    #[test]
    fn a_line_aligned_otherwise_still_joins_the_code_below() {
        // gofmt aligns map values (HumanEval-X Go/19); the model does not.
        let go = "package main\n\nfunc f() map[string]int {\n\tm := map[string]int{\n\t\t\"zero\":  0,\n\t\t$0\n\t\t\"two\":   2,\n\t}\n\treturn m\n}\n";
        check(Language::Go, go, "\"one\": 1,\n\t\t\"two\": 2,\n\t\t\"three\": 3,\n", "\"one\": 1,");
        // So generation stops there, not at the line limit.
        let t = Trimmer::new(&crate::fixture::context(Language::Go, go), 12);
        assert!(t.is_done("\"one\": 1,\n\t\t\"two\": 2,\n"));
        assert!(!t.is_done("\"one\": 1,\n\t\t\"one_half\": 2,\n"));
    }

    #[test]
    fn an_answer_does_not_close_the_block_it_was_asked_in() {
        // Above `} else {` (HumanEval-X Java/6): the line the block needs, not `} else {`.
        let java = "class A {\n    int f(String g) {\n        int depth = 0, max = 0;\n        for (char c : g.toCharArray()) {\n            if (c == '(') {\n                depth += 1;\n                $0\n            } else {\n                depth -= 1;\n            }\n        }\n        return max;\n    }\n}\n";
        check(Language::Java, java, "} else {\n                depth -= 1;\n", "");
        check(Language::Java, java, "max = Math.max(depth, max);\n", "max = Math.max(depth, max);");
        // Above a lone `}` (Java/140), in JavaScript and TypeScript too.
        check(
            Language::Java,
            "class A {\n    void f(int e) {\n        if (e > 2) {\n            g();\n            $0\n        }\n    }\n}\n",
            "}\n",
            "",
        );
        check(Language::JavaScript, "function f(p) {\n  if (p) {\n    g(p)\n    $0\n  }\n}\n", "} else {\n    h(p)\n", "");
        check(Language::TypeScript, "function f(p: number) {\n    if (p) {\n        g(p);\n        $0\n    }\n}\n", "}\n", "");
        // A line, then the block's end and code after it (Java/67): the line.
        let java_try = "class A {\n    void f(String[] xs) {\n        for (String i : xs) {\n            try {\n                $0\n            } catch (NumberFormatException ignored) {\n            }\n        }\n    }\n}\n";
        check(
            Language::Java,
            java_try,
            "lis.add(Integer.parseInt(i));\n            } catch (NumberFormatException e) {\n                log(i);\n",
            "lis.add(Integer.parseInt(i));",
        );
        // Two lines before it stay.
        check(
            Language::Java,
            java_try,
            "int n = Integer.parseInt(i);\n                lis.add(n);\n            } catch (NumberFormatException e) {\n",
            "int n = Integer.parseInt(i);\n                lis.add(n);",
        );
        // The engine stops at once.
        let t = Trimmer::new(&crate::fixture::context(Language::Java, java), 12);
        assert!(t.is_done("}"));
        assert!(!t.is_done("max ="));
        // Without a closing brace below (typing at the end of the file), a `}` closes the block.
        check_ended(Language::TypeScript, "function f(p: number) {\n    if (p) {\n        g(p);\n        $0", "}\n}\n", true, "}\n}");
    }

    #[test]
    fn an_answer_that_loses_its_place_stops_where_it_does() {
        // The body of a braceless `if` (HumanEval-X CPP/113): one statement.
        let cpp = "int f(string s){\n    int n=0;\n    for (int i=0;i<3;i++)\n        {\n            for (int j=0;j<s.length();j++)\n                if (s[j]=='a')\n                $0\n            string t=\"\";\n            g(t);\n        }\n    return n;\n}\n";
        check(Language::Cpp, cpp, "    n+=1;\n            g(s);\n        }\n", "    n+=1;");
        // Allman braces after it keep their block.
        check(
            Language::Cpp,
            cpp,
            "{\n                    n+=1;\n                }\n            string t=\"\";\n",
            "{\n                    n+=1;\n                }",
        );
        // The line just above again (JavaScript/113): the lines before it.
        let js = "const f = (lst) => {\n  for (let i = 0; i < lst.length; i++) {\n    let p = 0;\n    $0\n    for (let j = 0; j < h; j++) {\n      p++\n    }\n  }\n}\n";
        check(
            Language::JavaScript,
            js,
            "let h = lst[i].length\n    let p = 0;\n    for (let j = 0; j < h; j++) {\n",
            "let h = lst[i].length",
        );
        check(
            Language::JavaScript,
            js,
            "let h = lst[i].length\n    p += 1;\n    for (let j = 0; j < h; j++) {\n",
            "let h = lst[i].length\n    p += 1;",
        );
        // The enclosing function's header again (CPP/8): nothing, and the engine stops there.
        let cpp = "vector<int> sum_product(vector<int> numbers){\n    int sum=0,product=1;\n    for (int i=0;i<numbers.size();i++)\n    {\n        sum+=numbers[i];\n    }\n    $0\n}\n";
        check(Language::Cpp, cpp, "vector<int> sum_product(vector<int> numbers){\n        int sum=0;\n", "");
        check(Language::Cpp, cpp, "return {sum,product};\n}\n", "return {sum,product};");
        // The line below again (Java/20): nothing.
        let java = "class A {\n    List<Double> f(List<Double> xs) {\n        for (double x : xs) {\n            g(x);\n        }\n        $0\n        return closest_pair;\n    }\n}\n";
        check(Language::Java, java, "return closest_pair;\n    }\n", "");
        check(Language::Java, java, "Collections.sort(closest_pair);\n        return closest_pair;\n", "Collections.sort(closest_pair);");
        let t = Trimmer::new(&crate::fixture::context(Language::Cpp, cpp), 12);
        assert!(t.is_done("vector<int> sum_product(vector<int> numbers){\n"));
        assert!(!t.is_done("vector<int> sum_product(vector<int> numbers){"));
        assert!(!t.is_done("for (int i=0;i<numbers.size();i++)\n"));
    }

    #[test]
    fn block_is_capped_in_lines() {
        let generated: String = (0..40).map(|i| format!("a{i} = {i}\n    ")).collect();
        let t = Trimmer::new(&crate::fixture::context(Language::Python, "def f():\n    $0\n"), 5);
        assert_eq!(t.finish(&generated).lines().count(), 5);
        assert!(t.is_done(&generated));
    }

    #[test]
    fn an_early_answer_is_made_of_complete_lines() {
        let t = |fixture: &str| Trimmer::new(&crate::fixture::context(Language::Python, fixture), 12);
        // An open line: the first complete line, as for an answer cut off there.
        let open = t("def f(xs):\n    total = 0\n    $0\n\n\ndef g():\n    pass\n");
        assert_eq!(open.early("for x in"), None, "no complete line yet");
        assert_eq!(open.early("\n"), None, "a blank line is no suggestion");
        assert_eq!(open.early("total += sum(xs)\n    ret").as_deref(), Some("total += sum(xs)"));
        assert_eq!(open.early("for x in xs:\n        tot").as_deref(), Some("for x in xs:"), "an opener, its body to come");
        // After an opener: the block's complete lines.
        let block = t("def f(xs):\n    for x in xs:\n        $0\n    return 0\n");
        assert_eq!(block.early("if x:\n            print(x)\n        el").as_deref(), Some("if x:\n            print(x)"));
        // The whole answer starts with the early one.
        let whole = block.finish_with("if x:\n            print(x)\n        else:\n            pass\n    return 0\n", true);
        assert!(whole.starts_with(&block.early("if x:\n            print(x)\n        el").unwrap()), "{whole:?}");
    }

    #[test]
    fn an_early_answer_closes_a_brace_block_still_open() {
        let t = |lang, fixture: &str| Trimmer::new(&crate::fixture::context(lang, fixture), 12);
        // A match arm whose body is still being generated: shown closed.
        let arm = t(Language::Rust, "fn f(c: u8) -> u32 {\n    match c {\n        $0\n        _ => 0,\n    }\n}\n");
        let generated = "b'0'..=b'9' => {\n            let n = c - b'0';\n            n as u";
        assert_eq!(arm.early(generated).as_deref(), Some("b'0'..=b'9' => {\n            let n = c - b'0';\n        }"));
        // No body line yet: the opener alone, which the whole answer goes on from.
        assert_eq!(arm.early("b'0'..=b'9' => {\n            let").as_deref(), Some("b'0'..=b'9' => {"));
        let above = t(Language::Rust, "fn f(c: u8) {\n    $0\n    if c > 0 {\n        g();\n    }\n}\n");
        assert_eq!(above.early("if c > 0 {\n        g"), None, "the line below again");
        // A healed partial word: the generation starts with the line's blanks and the word.
        let healed = t(Language::Rust, "fn f(c: u8) -> u32 {\n    match c {\n        b$0\n        _ => 0,\n    }\n}\n");
        let generated = "        b'0'..=b'9' => {\n            let n = c - b'0';\n            n as u";
        assert_eq!(healed.early(generated).as_deref(), Some("'0'..=b'9' => {\n            let n = c - b'0';\n        }"));
        // Nested, and an opener that leaves a bracket open (`});`), tabs kept.
        let js = t(Language::JavaScript, "function f(xs) {\n\t$0\n}\n");
        let generated = "xs.forEach(function (x) {\n\t\tif (x > 0) {\n\t\t\tconsole.log(x);\n\t\t\tco";
        assert_eq!(
            js.early(generated).as_deref(),
            Some("xs.forEach(function (x) {\n\t\tif (x > 0) {\n\t\t\tconsole.log(x);\n\t\t}\n\t});")
        );
        // The finished answer replaces it.
        let whole = "b'0'..=b'9' => {\n            let n = c - b'0';\n            n as u32\n        }";
        assert!(goes_on_from(&arm.early("b'0'..=b'9' => {\n            let n = c - b'0';\n").unwrap(), whole));
        assert!(!goes_on_from(whole, whole));
        assert!(!goes_on_from("let a = 1;", "let b = 2;"));
        // Python's blocks need no closing line.
        let py = t(Language::Python, "def f(xs):\n    $0\n");
        assert_eq!(py.open_block_closers("for x in xs:\n        print(x)\n"), None);
    }

    #[test]
    fn is_done_lets_the_engine_stop_early() {
        let t = Trimmer::new(&crate::fixture::context(Language::Python, "x = $0\n"), 12);
        assert!(!t.is_done("compute("));
        assert!(t.is_done("compute()\n"));

        let t = Trimmer::new(&crate::fixture::context(Language::Python, "def f():\n    $0\n"), 12);
        assert!(!t.is_done("a = 1\n    b = 2\n"));
        assert!(!t.is_done("a = 1\n    b = 2\n\ndef g"), "an unfinished line settles nothing");
        assert!(t.is_done("a = 1\n    b = 2\n\ndef g():\n"), "a dedented line ends the block");
        // Blanks that go on and on: given up on (the answer is nothing).
        let blanks = |n: usize| format!("    {}", " ".repeat(n));
        assert!(!t.is_done(&blanks(12)));
        assert!(!t.is_done(&format!("{}x", blanks(12))), "deeper, then code");
        assert!(t.is_done(&blanks(40)));
        assert_eq!(t.finish(&blanks(40)), "");
    }

    #[test]
    fn an_emptied_else_line_may_repeat_one_above() {
        // HumanEval-X JavaScript/125: the line between a branch and the
        // else body below is `} else {`, as an enclosing one above is.
        let js = "const f = (t) => {\n  if (t > 1) {\n    return t\n  } else {\n    t = g(t)\n    if (t > 1) {\n      return t\n    $0\n      return h(t)\n    }\n  }\n}\n";
        check(Language::JavaScript, js, "} else {\n", "} else {");
        // The enclosing header itself again is still refused (CPP/8).
        check(Language::JavaScript, js, "const f = (t) => {\n", "");
    }

    #[test]
    fn lines_that_copy_the_code_above_are_left_out() {
        // HumanEval-X CPP/86: after a loop, the model writes its body again,
        // then the line that belongs here.
        let cpp = "string f(string s){\n    string out=\"\";\n    for (int i=0;i<s.length();i++)\n    if (s[i]==' ')\n    {\n        sort(cur.begin(),cur.end());\n        out=out+cur;\n        cur=\"\";\n    }\n    else cur=cur+s[i];\n    $0\n}\n";
        check_ended(Language::Cpp, cpp, "sort(cur.begin(),cur.end());\n        out=out+cur;\n    return out;\n}\n", true, "return out;");
        // A copy and nothing after it: not several lines (the first, as
        // any answer the model did not close).
        check_ended(Language::Cpp, cpp, "sort(cur.begin(),cur.end());\n        out=out+cur;\n", true, "sort(cur.begin(),cur.end());");
    }
}
