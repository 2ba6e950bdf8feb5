//! Prompt families (`prompts/*.toml`) and fill-in-the-middle rendering. Pure:
//! renders to pieces of text and special-token names; the engine tokenizes.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The families shipped in `prompts/`, compiled into the binary.
const BUILTIN: &[(&str, &str)] = &[
    ("qwen2.5-coder", include_str!("../../prompts/qwen2.5-coder.toml")),
    ("starcoder2", include_str!("../../prompts/starcoder2.toml")),
    ("deepseek-coder", include_str!("../../prompts/deepseek-coder.toml")),
    ("codellama", include_str!("../../prompts/codellama.toml")),
    ("codestral", include_str!("../../prompts/codestral.toml")),
];

#[derive(Debug, Clone, Deserialize)]
pub struct Family {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Special tokens by role, as their text in the vocabulary.
    pub tokens: BTreeMap<String, String>,
    pub fim: Fim,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Fim {
    pub layout: Vec<String>,
    #[serde(default)]
    pub stop: Vec<String>,
}

/// One part of a rendered prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A special token, by its text in the vocabulary (never parsed from user text).
    Special(String),
    /// Plain text, tokenized with special-token parsing off.
    Text(String),
    /// A chat, rendered by the engine with the model's own chat template
    /// (from the GGUF), ending with the assistant's turn opened.
    Chat(Vec<ChatMessage>),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// "system", "user" or "assistant".
    pub role: String,
    pub content: String,
}

/// The texts that fill a FIM layout.
#[derive(Debug, Clone, Default)]
pub struct FimParts<'a> {
    /// Ahead of the prefix: other files' text, see `Family::render_repo`.
    pub extra: &'a [Piece],
    pub prefix: &'a str,
    pub suffix: &'a str,
    pub middle: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("unknown prompt family '{0}' (known: {1})")]
    UnknownFamily(String, String),
    #[error("prompt family '{family}': layout entry '{entry}' names no token or text")]
    BadLayout { family: String, entry: String },
    #[error("prompt family '{0}' does not parse: {1}")]
    Parse(String, String),
}

impl Family {
    pub fn parse(name: &str, toml_text: &str) -> Result<Family, PromptError> {
        let f: Family = toml::from_str(toml_text).map_err(|e| PromptError::Parse(name.into(), e.to_string()))?;
        for entry in &f.fim.layout {
            let ok = match layout_entry(entry) {
                Some(Entry::Token(t)) => f.tokens.contains_key(t),
                Some(Entry::Text(t)) => matches!(t, "extra" | "prefix" | "suffix" | "middle"),
                None => false,
            };
            if !ok {
                return Err(PromptError::BadLayout { family: f.name.clone(), entry: entry.clone() });
            }
        }
        Ok(f)
    }

    /// The special tokens the FIM layout uses: a model must have all of them.
    pub fn fim_tokens(&self) -> Vec<&str> {
        self.fim
            .layout
            .iter()
            .filter_map(|e| match layout_entry(e) {
                Some(Entry::Token(t)) => self.tokens.get(t).map(String::as_str),
                _ => None,
            })
            .collect()
    }

    /// Other files' text for the `{extra}` part of the layout, in the
    /// model's repository format: each file after a file-separator token
    /// with its path on the first line, then the current file's path; the
    /// family's `repo_name` token first when it has one. Empty when the
    /// family has no `file_sep` token or there is nothing to show.
    pub fn render_repo(&self, repo: &str, current: &str, chunks: &[(String, String)]) -> Vec<Piece> {
        let Some(sep) = self.token("file_sep") else { return Vec::new() };
        if chunks.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(2 * chunks.len() + 4);
        if let Some(r) = self.token("repo_name") {
            out.push(Piece::Special(r.to_string()));
            out.push(Piece::Text(format!("{repo}\n")));
        }
        for (path, text) in chunks {
            out.push(Piece::Special(sep.to_string()));
            out.push(Piece::Text(format!("{path}\n{}\n", text.trim_end())));
        }
        out.push(Piece::Special(sep.to_string()));
        out.push(Piece::Text(format!("{current}\n")));
        out
    }

    pub fn token(&self, role: &str) -> Option<&str> {
        self.tokens.get(role).map(String::as_str)
    }

    /// Renders the FIM prompt. Empty texts are left out.
    pub fn render_fim(&self, parts: &FimParts<'_>) -> Vec<Piece> {
        let mut out = Vec::with_capacity(self.fim.layout.len());
        for entry in &self.fim.layout {
            match layout_entry(entry) {
                Some(Entry::Token(t)) => out.push(Piece::Special(self.tokens[t].clone())),
                Some(Entry::Text("extra")) => out.extend(parts.extra.iter().cloned()),
                Some(Entry::Text(t)) => {
                    let text = match t {
                        "prefix" => parts.prefix,
                        "suffix" => parts.suffix,
                        _ => parts.middle,
                    };
                    if !text.is_empty() {
                        out.push(Piece::Text(text.to_string()));
                    }
                }
                None => unreachable!("layout checked in Family::parse"),
            }
        }
        out
    }
}

impl Family {
    /// The indexes of the pieces of a [`Family::render_fim`] prompt that
    /// hold the document's text around the cursor, in the document's order:
    /// prefix, typed middle, suffix (`None` where one is empty). A secret
    /// the cursor cuts in two is whole only in them joined.
    pub fn cursor_texts(&self, pieces: &[Piece]) -> [Option<usize>; 3] {
        let mut out = [None; 3];
        let entries: Vec<Entry<'_>> = self.fim.layout.iter().filter_map(|e| layout_entry(e)).collect();
        let after_extra = entries.iter().position(|e| matches!(e, Entry::Text("extra"))).map_or(0, |i| i + 1);
        let entries = &entries[after_extra..];
        let Some(Entry::Token(first)) = entries.first() else { return out };
        // The cross-file part holds other special tokens (file separators) only.
        let Some(mut i) = pieces.iter().position(|p| matches!(p, Piece::Special(s) if Some(s) == self.tokens.get(*first))) else {
            return out;
        };
        for e in entries {
            match (e, pieces.get(i)) {
                (Entry::Token(t), Some(Piece::Special(s))) if Some(s) == self.tokens.get(*t) => i += 1,
                (Entry::Token(_), _) => break,
                (Entry::Text(role), Some(Piece::Text(_))) => {
                    let order = match *role {
                        "prefix" => 0,
                        "middle" => 1,
                        _ => 2,
                    };
                    out[order] = Some(i);
                    i += 1;
                }
                // An empty text is left out of the prompt.
                (Entry::Text(_), _) => {}
            }
        }
        out
    }
}

enum Entry<'a> {
    Token(&'a str),
    Text(&'a str),
}

fn layout_entry(e: &str) -> Option<Entry<'_>> {
    if let Some(t) = e.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
        Some(Entry::Token(t))
    } else {
        e.strip_prefix('{').and_then(|t| t.strip_suffix('}')).map(Entry::Text)
    }
}

/// All built-in families, in detection order.
pub fn builtin() -> Vec<Family> {
    BUILTIN.iter().map(|(name, text)| Family::parse(name, text).expect("built-in prompt family parses")).collect()
}

pub fn by_name(name: &str) -> Result<Family, PromptError> {
    let all = builtin();
    let known = all.iter().map(|f| f.name.clone()).collect::<Vec<_>>().join(", ");
    all.into_iter().find(|f| f.name.eq_ignore_ascii_case(name)).ok_or_else(|| PromptError::UnknownFamily(name.into(), known))
}

/// Picks the first family whose FIM tokens are all single special tokens of
/// the model. `is_special_token(text)` answers that for the model's vocabulary.
pub fn detect(is_special_token: impl Fn(&str) -> bool) -> Option<Family> {
    builtin().into_iter().find(|f| f.fim_tokens().iter().all(|t| is_special_token(t)))
}

/// Flattens pieces to text, for logs and tests (specials shown by their text).
pub fn to_display_string(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Special(s) | Piece::Text(s) => s.clone(),
            Piece::Chat(msgs) => msgs.iter().map(|m| format!("[{}] {}\n", m.role, m.content)).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::Language;
    use expect_test::{expect, Expect};

    /// Pieces one a line: `special` and the token's text, or `text` and
    /// the text as a string literal.
    fn show(pieces: &[Piece]) -> String {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Special(s) => format!("special {s}\n"),
                Piece::Text(t) => format!("text {t:?}\n"),
                Piece::Chat(m) => format!("chat {m:?}\n"),
            })
            .collect()
    }

    /// The FIM prompt `family` renders for the context at the fixture's
    /// `$0` cursor, as `complete::prepare` fills it (no other files).
    fn check_fim(family: &str, lang: Language, fixture: &str, expect: Expect) {
        let ctx = crate::fixture::context(lang, fixture);
        let pieces =
            by_name(family).unwrap().render_fim(&FimParts { extra: &[], prefix: &ctx.prefix, suffix: &ctx.suffix, middle: &ctx.middle });
        expect.assert_eq(&show(&pieces));
    }

    const PY: &str = "import math\n\ndef area(radius):\n    return math.pi * rad$0\n\nprint(area(2))\n";

    #[test]
    fn the_texts_at_the_cursor_in_document_order() {
        let extra = vec![Piece::Special("<|file_sep|>".into()), Piece::Text("a.py\nx = 1\n".into())];
        let texts = |family: &Family, parts: &FimParts<'_>| -> Vec<String> {
            let pieces = family.render_fim(parts);
            family
                .cursor_texts(&pieces)
                .into_iter()
                .flatten()
                .map(|i| match &pieces[i] {
                    Piece::Text(t) => t.clone(),
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        let parts = FimParts { extra: &extra, prefix: "pw = \"hun", suffix: "ter2\"\n", middle: "ter" };
        for name in ["qwen2.5-coder", "codestral", "starcoder2", "deepseek-coder", "codellama"] {
            let family = by_name(name).unwrap();
            assert_eq!(texts(&family, &parts), ["pw = \"hun", "ter", "ter2\"\n"], "{name}");
            let no_middle = FimParts { middle: "", ..parts };
            assert_eq!(texts(&family, &no_middle), ["pw = \"hun", "ter2\"\n"], "{name}");
        }
    }

    #[test]
    fn fim_prompts_for_a_fixture() {
        // The half-typed ` rad` is not in the prompt: the engine forces it
        // as the answer's start (token healing, `CompletionContext::heal`).
        check_fim(
            "qwen2.5-coder",
            Language::Python,
            PY,
            expect![[r#"
            special <|fim_prefix|>
            text "import math\n\ndef area(radius):\n    return math.pi *"
            special <|fim_suffix|>
            text "\n\nprint(area(2))\n"
            special <|fim_middle|>
        "#]],
        );
        check_fim(
            "starcoder2",
            Language::Python,
            PY,
            expect![[r#"
            special <fim_prefix>
            text "import math\n\ndef area(radius):\n    return math.pi *"
            special <fim_suffix>
            text "\n\nprint(area(2))\n"
            special <fim_middle>
        "#]],
        );
        check_fim(
            "deepseek-coder",
            Language::Python,
            PY,
            expect![[r#"
            special <｜fim▁begin｜>
            text "import math\n\ndef area(radius):\n    return math.pi *"
            special <｜fim▁hole｜>
            text "\n\nprint(area(2))\n"
            special <｜fim▁end｜>
        "#]],
        );
        check_fim(
            "codellama",
            Language::Python,
            PY,
            expect![[r#"
            special ▁<PRE>
            text "import math\n\ndef area(radius):\n    return math.pi *"
            special ▁<SUF>
            text "\n\nprint(area(2))\n"
            special ▁<MID>
        "#]],
        );
        check_fim(
            "codestral",
            Language::Python,
            PY,
            expect![[r#"
            special [SUFFIX]
            text "\n\nprint(area(2))\n"
            special [PREFIX]
            text "import math\n\ndef area(radius):\n    return math.pi *"
        "#]],
        );
        check_fim(
            "qwen2.5-coder",
            Language::Rust,
            "fn total(xs: &[u32]) -> u32 {\n    let mut t = 0;\n    $0\n}\n",
            expect![[r#"
                special <|fim_prefix|>
                text "fn total(xs: &[u32]) -> u32 {\n    let mut t = 0;\n"
                special <|fim_suffix|>
                text "\n}\n"
                special <|fim_middle|>
            "#]],
        );
    }

    #[test]
    fn repository_prompt_with_other_files() {
        let chunks = vec![
            ("src/geometry.py".to_string(), "def circle(r):\n    return math.pi * r * r\n\n".to_string()),
            ("src/units.py".to_string(), "CM_PER_INCH = 2.54".to_string()),
        ];
        let qwen = by_name("qwen2.5-coder").unwrap();
        let extra = qwen.render_repo("shapes", "src/main.py", &chunks);
        expect![[r#"
            special <|repo_name|>
            text "shapes\n"
            special <|file_sep|>
            text "src/geometry.py\ndef circle(r):\n    return math.pi * r * r\n"
            special <|file_sep|>
            text "src/units.py\nCM_PER_INCH = 2.54\n"
            special <|file_sep|>
            text "src/main.py\n"
        "#]]
        .assert_eq(&show(&extra));
        let whole = qwen.render_fim(&FimParts { extra: &extra, prefix: "r = ", suffix: "\n", middle: "" });
        expect![[r#"
            special <|repo_name|>
            text "shapes\n"
            special <|file_sep|>
            text "src/geometry.py\ndef circle(r):\n    return math.pi * r * r\n"
            special <|file_sep|>
            text "src/units.py\nCM_PER_INCH = 2.54\n"
            special <|file_sep|>
            text "src/main.py\n"
            special <|fim_prefix|>
            text "r = "
            special <|fim_suffix|>
            text "\n"
            special <|fim_middle|>
        "#]]
        .assert_eq(&show(&whole));
        // A family without a file separator shows no other files.
        assert!(by_name("codellama").unwrap().render_repo("shapes", "src/main.py", &chunks).is_empty());
        // Nor does one with it when there is nothing to show.
        assert!(qwen.render_repo("shapes", "src/main.py", &[]).is_empty());
    }

    fn render(family: &str) -> String {
        let f = by_name(family).unwrap();
        to_display_string(&f.render_fim(&FimParts {
            extra: &[],
            prefix: "def add(a, b):\n    return a + ",
            suffix: "\n\nprint(add(1, 2))\n",
            middle: "",
        }))
    }

    #[test]
    fn every_family_renders_its_fim_layout() {
        assert_eq!(
            render("qwen2.5-coder"),
            "<|fim_prefix|>def add(a, b):\n    return a + <|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>"
        );
        assert_eq!(render("starcoder2"), "<fim_prefix>def add(a, b):\n    return a + <fim_suffix>\n\nprint(add(1, 2))\n<fim_middle>");
        assert_eq!(
            render("deepseek-coder"),
            "<｜fim▁begin｜>def add(a, b):\n    return a + <｜fim▁hole｜>\n\nprint(add(1, 2))\n<｜fim▁end｜>"
        );
        assert_eq!(render("codellama"), "▁<PRE>def add(a, b):\n    return a + ▁<SUF>\n\nprint(add(1, 2))\n▁<MID>");
        assert_eq!(render("codestral"), "[SUFFIX]\n\nprint(add(1, 2))\n[PREFIX]def add(a, b):\n    return a + ");
    }

    #[test]
    fn anchored_middle_follows_the_middle_token() {
        let f = by_name("qwen2.5-coder").unwrap();
        let pieces = f.render_fim(&FimParts { extra: &[], prefix: "x = ", suffix: "\n", middle: "fo" });
        assert_eq!(
            pieces,
            vec![
                Piece::Special("<|fim_prefix|>".into()),
                Piece::Text("x = ".into()),
                Piece::Special("<|fim_suffix|>".into()),
                Piece::Text("\n".into()),
                Piece::Special("<|fim_middle|>".into()),
                Piece::Text("fo".into()),
            ]
        );
    }

    #[test]
    fn user_text_that_looks_like_a_token_stays_text() {
        let f = by_name("qwen2.5-coder").unwrap();
        let pieces = f.render_fim(&FimParts { prefix: "s = '<|fim_middle|>'", ..Default::default() });
        assert_eq!(pieces[1], Piece::Text("s = '<|fim_middle|>'".into()));
    }

    #[test]
    fn detection_by_vocabulary() {
        let qwen_vocab = ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"];
        assert_eq!(detect(|t| qwen_vocab.contains(&t)).unwrap().name, "qwen2.5-coder");
        let ds = ["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"];
        assert_eq!(detect(|t| ds.contains(&t)).unwrap().name, "deepseek-coder");
        let mistral = ["[PREFIX]", "[SUFFIX]"];
        assert_eq!(detect(|t| mistral.contains(&t)).unwrap().name, "codestral");
        assert!(detect(|_| false).is_none());
    }

    #[test]
    fn bad_layouts_and_names_are_errors() {
        assert!(by_name("nonesuch").unwrap_err().to_string().contains("qwen2.5-coder"));
        let bad = "name='x'\n[tokens]\nprefix='<p>'\n[fim]\nlayout=['<prefix>','<nope>']\n";
        assert!(matches!(Family::parse("x", bad), Err(PromptError::BadLayout { .. })));
    }
}
