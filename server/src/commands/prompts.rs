//! The explain and refactor prompts (`prompts/commands.toml`), compiled in.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

use crate::prompt::ChatMessage;
use crate::syntax::Language;

const BUILTIN: &str = include_str!("../../../prompts/commands.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Prompts {
    pub explain: ChatPrompt,
    pub refactor: RefactorPrompt,
    #[serde(default, rename = "action")]
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatPrompt {
    pub system: String,
    pub user: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RefactorPrompt {
    pub system: String,
    pub user: String,
    pub retry: String,
}

/// A canned refactor.
#[derive(Debug, Clone, Deserialize)]
pub struct Action {
    pub id: String,
    pub title: String,
    pub languages: Vec<String>,
    pub instruction: String,
}

static PROMPTS: LazyLock<Prompts> = LazyLock::new(|| toml::from_str(BUILTIN).expect("prompts/commands.toml parses"));

pub fn builtin() -> &'static Prompts {
    &PROMPTS
}

/// Fills `{name}` placeholders in one pass; unknown ones stay as they are and
/// inserted values are never re-scanned (code may contain braces).
pub fn render(template: &str, vars: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if vars.contains_key(&after[..close]) => {
                out.push_str(vars[&after[..close]]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn msg(role: &str, content: String) -> ChatMessage {
    ChatMessage { role: role.into(), content }
}

impl Prompts {
    pub fn actions_for(&self, language: Language) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(move |a| a.languages.iter().any(|l| l == language.name()))
    }

    pub fn action(&self, id: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.id == id)
    }

    pub fn explain(&self, language: Language, file: &str, code: &str) -> Vec<ChatMessage> {
        let vars = HashMap::from([("language", language.name()), ("file", file), ("code", code.trim_end())]);
        vec![msg("system", render(&self.explain.system, &vars)), msg("user", render(&self.explain.user, &vars))]
    }

    pub fn refactor(&self, language: Language, file: &str, code: &str, instruction: &str) -> Vec<ChatMessage> {
        let vars =
            HashMap::from([("language", language.name()), ("file", file), ("code", code.trim_end()), ("instruction", instruction.trim())]);
        vec![msg("system", render(&self.refactor.system, &vars)), msg("user", render(&self.refactor.user, &vars))]
    }

    /// The conversation continued after an unusable answer.
    pub fn retry(&self, language: Language, mut messages: Vec<ChatMessage>, answer: &str, error: &str) -> Vec<ChatMessage> {
        let vars = HashMap::from([("language", language.name()), ("error", error)]);
        messages.push(msg("assistant", answer.to_string()));
        messages.push(msg("user", render(&self.refactor.retry, &vars)));
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_prompts_parse_and_cover_the_actions() {
        let p = builtin();
        let py: Vec<&str> = p.actions_for(Language::Python).map(|a| a.id.as_str()).collect();
        let rs: Vec<&str> = p.actions_for(Language::Rust).map(|a| a.id.as_str()).collect();
        for id in ["docstring", "simplify", "extract-function", "type-hints"] {
            assert!(py.contains(&id), "{py:?}");
        }
        for id in ["doc-comment", "simplify", "extract-function", "iterator-chain"] {
            assert!(rs.contains(&id), "{rs:?}");
        }
        assert!(!py.contains(&"iterator-chain"));
    }

    #[test]
    fn render_does_not_rescan_values() {
        let vars = HashMap::from([("code", "f'{language}' {x}"), ("language", "python")]);
        assert_eq!(render("{language}: {code} {unknown}", &vars), "python: f'{language}' {x} {unknown}");
        let m = builtin().refactor(Language::Python, "a.py", "x = {1: 2}\n", "Simplify");
        assert_eq!(m[0].role, "system");
        assert!(m[1].content.contains("x = {1: 2}\n```"), "{}", m[1].content);
        assert!(m[1].content.contains("Task: Simplify"));
        let r = builtin().retry(Language::Python, m, "```python\nx = (\n```", "line 1: missing `)`");
        assert_eq!(r.len(), 4);
        assert_eq!(r[2].role, "assistant");
        assert!(r[3].content.contains("missing `)`"));
    }
}
