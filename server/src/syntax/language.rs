//! Languages locode knows the syntax of; everything else is plain text.
//! What tells them apart (language ids, file extensions, block openers) is
//! in each one's entry in `GRAMMARS`.

use std::path::Path;

use super::{grammar, GRAMMARS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    Rust,
    Python,
    PlainText,
}

impl Language {
    /// From an LSP `languageId`, falling back to the file extension of `uri`.
    pub fn detect(language_id: &str, uri: &str) -> Language {
        GRAMMARS.iter().find(|g| g.language_ids.contains(&language_id)).map_or_else(|| Self::from_path(Path::new(uri)), |g| g.language)
    }

    pub fn from_path(path: &Path) -> Language {
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else { return Language::PlainText };
        GRAMMARS.iter().find(|g| g.extensions.contains(&ext)).map_or(Language::PlainText, |g| g.language)
    }

    /// The tree-sitter grammar, from the table in `GRAMMARS`.
    pub fn ts_language(self) -> Option<tree_sitter::Language> {
        grammar(self).map(|g| g.ts_language())
    }

    /// Does a line whose code ends with this text open an indented block?
    pub fn opens_block(self, line_before_cursor: &str) -> bool {
        let t = line_before_cursor.trim_end();
        let openers: &[&str] = grammar(self).map_or(&["{", ":"], |g| g.block_openers);
        openers.iter().any(|o| t.ends_with(o))
    }

    pub fn name(self) -> &'static str {
        grammar(self).map_or("plaintext", |g| g.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detected_from_the_grammar_table() {
        assert_eq!(Language::detect("rust", "file:///a.txt"), Language::Rust);
        assert_eq!(Language::detect("python", "untitled:1"), Language::Python);
        // An id nobody claims falls back to the extension.
        assert_eq!(Language::detect("", "file:///pkg/stubs.pyi"), Language::Python);
        assert_eq!(Language::detect("plaintext", "file:///src/main.rs"), Language::Rust);
        assert_eq!(Language::from_path(Path::new("notes.txt")), Language::PlainText);
        assert_eq!(Language::from_path(Path::new("Makefile")), Language::PlainText);
        assert_eq!(Language::Python.name(), "python");
        assert_eq!(Language::PlainText.name(), "plaintext");
        assert!(Language::Python.opens_block("    for x in xs:  "));
        assert!(!Language::Python.opens_block("x = {"));
        assert!(Language::Rust.opens_block("fn main() {"));
        assert!(Language::PlainText.opens_block("if x:") && Language::PlainText.opens_block("a {"));
    }
}
