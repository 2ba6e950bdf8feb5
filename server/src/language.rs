//! Languages locode knows the syntax of; everything else is plain text.

use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    Rust,
    Python,
    PlainText,
}

impl Language {
    /// From an LSP `languageId`, falling back to the file extension of `uri`.
    pub fn detect(language_id: &str, uri: &str) -> Language {
        match language_id {
            "rust" => Language::Rust,
            "python" => Language::Python,
            _ => Self::from_path(Path::new(uri)),
        }
    }

    pub fn from_path(path: &Path) -> Language {
        match path.extension().and_then(|e| e.to_str()) {
            Some("rs") => Language::Rust,
            Some("py") | Some("pyi") => Language::Python,
            _ => Language::PlainText,
        }
    }

    /// The tree-sitter grammar, from the table in `syntax::GRAMMARS`.
    pub fn ts_language(self) -> Option<tree_sitter::Language> {
        crate::syntax::grammar(self).map(|g| g.ts_language())
    }

    /// Does a line whose code ends with this text open an indented block?
    pub fn opens_block(self, line_before_cursor: &str) -> bool {
        let t = line_before_cursor.trim_end();
        match self {
            Language::Python => t.ends_with(':'),
            Language::Rust => t.ends_with('{'),
            Language::PlainText => t.ends_with('{') || t.ends_with(':'),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::PlainText => "plaintext",
        }
    }
}
