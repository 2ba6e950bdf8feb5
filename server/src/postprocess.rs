//! Turns raw generated text into a suggestion that fits the spot: one line or
//! one block, no repetition of what follows the cursor, indentation kept.
//! Pure. `Trimmer::is_done` also lets the engine stop generating early.

use crate::context::{indent_width, CompletionContext, Mode};

#[derive(Debug, Clone)]
pub struct Trimmer {
    mode: Mode,
    max_lines: usize,
    line_suffix: String,
    next_line: Option<String>,
    heal: String,
}

impl Trimmer {
    pub fn new(ctx: &CompletionContext, max_lines: usize) -> Self {
        Trimmer {
            mode: ctx.mode,
            max_lines: max_lines.max(1),
            line_suffix: ctx.line_suffix.trim().to_string(),
            next_line: ctx.next_line.clone(),
            heal: ctx.heal.clone(),
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

    /// True once `generated` holds everything the suggestion can use.
    pub fn is_done(&self, generated: &str) -> bool {
        let generated = match self.healed(generated) {
            Ok(g) => g,
            Err(still_possible) => return !still_possible,
        };
        match self.mode {
            Mode::SingleLine => generated.trim_start_matches([' ', '\t']).contains('\n')
                && !generated.trim().is_empty()
                || generated.starts_with('\n'),
            Mode::Block { .. } => {
                // Every complete line is settled; stop once one ends the block.
                let complete = match generated.rfind('\n') {
                    Some(i) => &generated[..i],
                    None => return false,
                };
                let lines: Vec<&str> = complete.split('\n').collect();
                self.block_len(&lines) < lines.len() || lines.len() > self.max_lines
            }
        }
    }

    /// How many of `lines` belong to the block.
    fn block_len(&self, lines: &[&str]) -> usize {
        let Mode::Block { opener_indent } = self.mode else { return lines.len().min(1) };
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
            if self.next_line.as_deref() == Some(line.trim()) {
                return i; // repeats what already follows the cursor
            }
            seen_body = true;
        }
        lines.len()
    }

    /// The final suggestion for `generated`; empty when nothing fits.
    pub fn finish(&self, generated: &str) -> String {
        let Ok(generated) = self.healed(generated) else { return String::new() };
        let text = match self.mode {
            Mode::SingleLine => {
                let first = generated.split('\n').next().unwrap_or("");
                trim_suffix_overlap(first.trim_end(), &self.line_suffix).to_string()
            }
            Mode::Block { .. } => {
                let lines: Vec<&str> = generated.split('\n').collect();
                let n = self.block_len(&lines);
                let mut kept: Vec<&str> = lines[..n].iter().map(|l| l.trim_end()).collect();
                while kept.len() > 1 && kept.last().is_some_and(|l| l.is_empty()) {
                    kept.pop();
                }
                kept.join("\n")
            }
        };
        if text.trim().is_empty() {
            String::new()
        } else {
            text
        }
    }
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
    use crate::config::CompletionConfig;
    use crate::documents::Document;
    use crate::language::Language;

    /// Fixture with a `$0` cursor, the raw generation, the expected suggestion.
    fn check(lang: Language, fixture: &str, generated: &str, expected: &str) {
        let at = fixture.find("$0").unwrap();
        let text = fixture.replace("$0", "");
        let mut doc = Document::new(&text, 1, lang);
        let cursor = doc.rope.byte_to_char(at);
        let ctx = crate::context::build(&doc.snapshot(), cursor, cursor, &CompletionConfig::default());
        let t = Trimmer::new(&ctx, 12);
        assert_eq!(t.finish(generated), expected, "fixture {fixture:?}");
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
            "    return n % 2 == 0\n\n\ndef is_odd(n):\n    return not is_even(n)\n",
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
        check(
            Language::Python,
            "for x in xs:\n    $0\n    total += x\n",
            "    y = x * 2\n    total += x\n    print(total)\n",
            "y = x * 2",
        );
    }

    #[test]
    fn block_is_capped_in_lines() {
        let generated: String = (0..40).map(|i| format!("a{i} = {i}\n    ")).collect();
        let at = "def f():\n    ".len();
        let text = "def f():\n    \n";
        let mut doc = Document::new(text, 1, Language::Python);
        let ctx = crate::context::build(&doc.snapshot(), at, at, &CompletionConfig::default());
        let t = Trimmer::new(&ctx, 5);
        assert_eq!(t.finish(&generated).lines().count(), 5);
        assert!(t.is_done(&generated));
    }

    #[test]
    fn is_done_lets_the_engine_stop_early() {
        let at = "x = ".len();
        let mut doc = Document::new("x = \n", 1, Language::Python);
        let ctx = crate::context::build(&doc.snapshot(), at, at, &CompletionConfig::default());
        let t = Trimmer::new(&ctx, 12);
        assert!(!t.is_done("compute("));
        assert!(t.is_done("compute()\n"));

        let mut doc = Document::new("def f():\n    \n", 1, Language::Python);
        let at = "def f():\n    ".len();
        let ctx = crate::context::build(&doc.snapshot(), at, at, &CompletionConfig::default());
        let t = Trimmer::new(&ctx, 12);
        assert!(!t.is_done("a = 1\n    b = 2\n"));
        assert!(!t.is_done("a = 1\n    b = 2\n\ndef g"), "an unfinished line settles nothing");
        assert!(t.is_done("a = 1\n    b = 2\n\ndef g():\n"), "a dedented line ends the block");
    }
}
