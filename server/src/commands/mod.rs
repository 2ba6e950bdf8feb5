//! Explain and refactor a selection, and the explicit and audited path to a
//! cloud model. Pure apart from `cloud` (HTTP, through `crate::net`),
//! `audit` (one append-only file) and the explanation file `explain` writes:
//! no protocol types here. The flows talk to the editor through [`Ui`],
//! which `lsp::commands` implements over LSP.
//!
//! With `cloud.route = "never"` (the default) nothing in this module opens a
//! network connection: the HTTP client is only built inside `cloud::send`,
//! which the server calls only when configured to. (Remote completion
//! engines are `engine::remote`.)

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

pub mod audit;
pub mod cloud;
pub mod explain;
mod local;
pub mod policy;
pub mod prompts;
pub mod refactor;
pub mod validate;

pub use crate::config::{CloudConfig, CommandsConfig, ExplainOutput, Provider, RemoteEngineConfig, RemoteKind, Route};
pub use local::{Local, ModelStatus};

use crate::syntax::Language;

/// The code a command works on: whole lines of a document, as it was when
/// the command arrived.
pub struct Selection {
    /// The document's URI (what the audit log records).
    pub uri: String,
    /// Its path, or its URI when it has none (what secret-file patterns are
    /// matched against).
    pub path: String,
    /// Its file name (what prompts and messages name).
    pub file: String,
    pub language: Language,
    /// The whole document.
    pub text: String,
    /// Byte offsets of the code in `text`.
    pub start: usize,
    pub end: usize,
    pub code: String,
    /// 0-based line of the code's first line.
    pub first_line: usize,
    pub lines: usize,
}

impl Selection {
    /// The file with `replacement` in place of the code.
    pub fn with(&self, replacement: &str) -> String {
        format!("{}{}{}", &self.text[..self.start], replacement, &self.text[self.end..])
    }
}

/// How a message is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// A sink for progress messages that a callback can keep (token streams).
pub type Reporter = Arc<dyn Fn(&str) + Send + Sync>;

/// What the flows need of the editor: progress, a question, and ways to
/// show a result.
pub trait Ui: Send + Sync {
    /// Starts the command's progress. It ends with [`Ui::end`], or when the
    /// `Ui` is dropped (a cancelled request still closes its progress).
    fn begin(&self, title: &str, message: String) -> impl Future<Output = ()> + Send;
    /// Progress messages, once begun (before that they go nowhere).
    fn reporter(&self) -> Reporter;
    fn progress(&self, message: &str) {
        (self.reporter())(message)
    }
    /// Ends the progress; returns once the end is sent, so that it reaches
    /// the editor before the command's result.
    fn end(&self, message: &str) -> impl Future<Output = ()> + Send;
    /// Asks `question`; the choice taken, None when dismissed.
    fn confirm(&self, question: &str, choices: &[&str]) -> impl Future<Output = Option<String>> + Send;
    fn show(&self, level: Level, text: &str) -> impl Future<Output = ()> + Send;
    /// Opens a file in the editor; false when it could not.
    fn show_file(&self, path: &Path) -> impl Future<Output = bool> + Send;
}

/// Removes the common leading whitespace of the non-blank lines; returns the
/// dedented text and the removed indent.
pub fn dedent(text: &str) -> (String, String) {
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| &l[..l.len() - l.trim_start().len()])
        .reduce(|a, b| {
            let n = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
            &a[..a.char_indices().nth(n).map(|(i, _)| i).unwrap_or(a.len())]
        })
        .unwrap_or("")
        .to_string();
    let out = text
        .split_inclusive('\n')
        .map(|l| l.strip_prefix(indent.as_str()).unwrap_or_else(|| if l.trim().is_empty() { l.trim_start_matches([' ', '\t']) } else { l }))
        .collect();
    (out, indent)
}

/// Puts `indent` before every non-blank line.
pub fn indent(text: &str, indent: &str) -> String {
    if indent.is_empty() {
        return text.to_string();
    }
    text.split_inclusive('\n').map(|l| if l.trim().is_empty() { l.to_string() } else { format!("{indent}{l}") }).collect()
}

/// The code of a model's reply: the first fenced block when there is one
/// (an unterminated fence runs to the end), else the whole reply; without
/// leading and trailing blank lines, ending with one newline.
pub fn extract_code(reply: &str) -> String {
    let mut body: Vec<&str> = Vec::new();
    let mut in_fence = false;
    let mut found_fence = false;
    for line in reply.lines() {
        let t = line.trim_start();
        if t.starts_with("```") {
            if in_fence {
                in_fence = false;
                break;
            }
            if !found_fence {
                found_fence = true;
                in_fence = true;
                continue;
            }
        }
        if in_fence {
            body.push(line);
        }
    }
    let _ = in_fence;
    let lines: Vec<&str> = if found_fence { body } else { reply.lines().collect() };
    let start = lines.iter().position(|l| !l.trim().is_empty()).unwrap_or(lines.len());
    let end = lines.iter().rposition(|l| !l.trim().is_empty()).map(|i| i + 1).unwrap_or(start);
    let mut s = lines[start..end.max(start)].join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    s
}

/// True once a reply has opened and closed a fenced code block.
pub fn fence_closed(reply: &str) -> bool {
    reply.lines().filter(|l| l.trim_start().starts_with("```")).count() >= 2 && reply.ends_with('\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedent_and_indent_round_trip() {
        let code = "    def f(self):\n        return 1\n\n    x = 2\n";
        let (d, ind) = dedent(code);
        assert_eq!(ind, "    ");
        assert_eq!(d, "def f(self):\n    return 1\n\nx = 2\n");
        assert_eq!(indent(&d, &ind), code);
    }

    #[test]
    fn extracts_the_first_fenced_block() {
        let r = "Here you go:\n```python\n\ndef f():\n    return 1\n```\nThis is shorter.\n```\nother\n```";
        assert_eq!(extract_code(r), "def f():\n    return 1\n");
        assert_eq!(extract_code("\nx = 1\n\n"), "x = 1\n");
        assert_eq!(extract_code("```rust\nfn a() {}\n"), "fn a() {}\n");
        assert!(fence_closed("```py\nx\n```\n"));
        assert!(!fence_closed("```py\nx\n"));
    }

    #[test]
    fn config_defaults_and_camel_case_keys() {
        let c: CommandsConfig = serde_json::from_value(serde_json::json!({
            "explainMaxTokens": 99,
            "cloud": {"route": "longerThan", "maxLocalLines": 10, "provider": "anthropic", "model": "m"},
            "completionEngine": {"kind": "ollama", "model": "qwen"}
        }))
        .unwrap();
        assert_eq!(c.explain_max_tokens, 99);
        assert_eq!(c.cloud.route, Route::LongerThan);
        assert_eq!(c.cloud.max_local_lines, 10);
        assert_eq!(c.cloud.provider, Provider::Anthropic);
        assert_eq!(c.completion_engine.kind, RemoteKind::Ollama);
        let d = CommandsConfig::default();
        assert_eq!(d.cloud.route, Route::Never);
        assert_eq!(d.completion_engine.kind, RemoteKind::Embedded);
        assert!(serde_json::from_value::<CommandsConfig>(serde_json::json!({"cloud": {"route": "sometimes"}})).is_err());
    }
}
