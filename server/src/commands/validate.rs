//! Validation of a refactor before it is applied: the edited file must still
//! parse with tree-sitter, with no ERROR or MISSING node it did not have before.

use tree_sitter::Node;

use crate::syntax::Language;

/// A syntax problem: an ERROR or MISSING node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based.
    pub line: usize,
    pub column: usize,
    pub missing: bool,
    /// What is missing, or the text of the erroneous node (shortened).
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.missing {
            write!(f, "line {}: missing `{}`", self.line, self.what)
        } else {
            write!(f, "line {}: syntax error at `{}`", self.line, self.what)
        }
    }
}

/// The syntax problems of `text`; None for a language without a grammar.
pub fn problems(language: Language, text: &str) -> Option<Vec<Problem>> {
    let tree = crate::syntax::parse(language, text)?;
    let mut out = Vec::new();
    collect(tree.root_node(), text, &mut out);
    Some(out)
}

fn collect(node: Node<'_>, text: &str, out: &mut Vec<Problem>) {
    if node.is_missing() || node.is_error() {
        let p = node.start_position();
        let what = if node.is_missing() {
            node.kind().to_string()
        } else {
            text.get(node.byte_range()).unwrap_or("").lines().next().unwrap_or("").chars().take(40).collect()
        };
        out.push(Problem { line: p.row + 1, column: p.column + 1, missing: node.is_missing(), what });
        if node.is_error() {
            // Count an ERROR once, not every node under it.
            return;
        }
    }
    if !node.has_error() {
        return;
    }
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        collect(child, text, out);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("the model returned no code")]
    Empty,
    #[error("the result does not parse as {language}: {count} new syntax error(s), first at {first}")]
    Syntax { language: &'static str, count: usize, first: Problem },
    #[error("locode cannot check {0} code (no grammar), so it does not apply refactors to it")]
    NoGrammar(&'static str),
}

/// Checks that `after` (the whole edited file) has no syntax problem that
/// `before` did not have.
pub fn check(language: Language, before: &str, after: &str, replacement: &str) -> Result<(), Invalid> {
    if replacement.trim().is_empty() {
        return Err(Invalid::Empty);
    }
    let old = problems(language, before).ok_or(Invalid::NoGrammar(language.name()))?;
    let new = problems(language, after).ok_or(Invalid::NoGrammar(language.name()))?;
    if new.len() > old.len() {
        let first = new.iter().find(|p| !old.contains(p)).unwrap_or(&new[0]).clone();
        return Err(Invalid::Syntax { language: language.name(), count: new.len() - old.len(), first });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_and_rust_problems() {
        assert_eq!(problems(Language::Python, "def f(a):\n    return a\n").unwrap(), vec![]);
        let p = problems(Language::Python, "def f(a:\n    return a\n").unwrap();
        assert!(!p.is_empty());
        assert!(!problems(Language::Rust, "fn f() { let x = ; }").unwrap().is_empty());
        assert!(problems(Language::PlainText, "x").is_none());
    }

    #[test]
    fn check_compares_with_before() {
        let before = "def f(a):\n    return a\n";
        assert_eq!(check(Language::Python, before, "def f(a):\n    return a + 1\n", "x"), Ok(()));
        let err = check(Language::Python, before, "def f(a):\n    return (a + \n", "x").unwrap_err();
        assert!(err.to_string().contains("does not parse as python"), "{err}");
        // A file already broken elsewhere may stay as broken, not worse.
        let broken = "def g(:\n    pass\ndef f(a):\n    return a\n";
        assert_eq!(check(Language::Python, broken, "def g(:\n    pass\ndef f(a):\n    return a * 2\n", "x"), Ok(()));
        assert_eq!(check(Language::Python, before, before, "  \n"), Err(Invalid::Empty));
        assert!(matches!(check(Language::PlainText, "a", "b", "b"), Err(Invalid::NoGrammar(_))));
    }
}
