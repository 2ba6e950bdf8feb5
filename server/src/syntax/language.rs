//! Languages locode knows the syntax of; everything else is plain text.
//! What tells them apart (language ids, file extensions, block openers) is
//! in each one's entry in `GRAMMARS`.

use std::path::Path;

use super::{grammar, GRAMMARS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    Rust,
    Python,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
    C,
    Cpp,
    Java,
    PlainText,
}

impl Language {
    /// From an LSP `languageId`, falling back to the file extension of `uri`.
    pub fn detect(language_id: &str, uri: &str) -> Language {
        match GRAMMARS.iter().find(|g| g.language_ids.contains(&language_id)) {
            Some(g) if g.loads() => g.language,
            Some(_) => Language::PlainText,
            None => Self::from_path(Path::new(uri)),
        }
    }

    pub fn from_path(path: &Path) -> Language {
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else { return Language::PlainText };
        GRAMMARS.iter().find(|g| g.extensions.contains(&ext)).filter(|g| g.loads()).map_or(Language::PlainText, |g| g.language)
    }

    /// The tree-sitter grammar, from the table in `GRAMMARS`.
    pub fn ts_language(self) -> Option<tree_sitter::Language> {
        grammar(self).map(|g| g.ts_language())
    }

    /// Does a line whose code ends with this text open an indented block?
    pub fn opens_block(self, line_before_cursor: &str) -> bool {
        let t = self.code_of_line(line_before_cursor).trim_end();
        let openers: &[&str] = grammar(self).map_or(&["{", ":"], |g| g.block_openers);
        openers.iter().any(|o| t.ends_with(o))
    }

    /// Is this line a control header without its brace (`if (x)`,
    /// `for (...)`, `else`), in a language whose blocks are braces? Its
    /// body is then the next statement, whatever its indentation.
    pub fn braceless_header(self, line: &str) -> bool {
        if grammar(self).is_none_or(|g| g.block_openers != ["{"]) {
            return false;
        }
        let t = self.code_of_line(line).trim();
        match super::leading_word(t) {
            "if" | "for" | "while" => t.ends_with(')'),
            "else" => t == "else" || (t.starts_with("else if") && t.ends_with(')')),
            _ => false,
        }
    }

    /// A line without the comment that ends it (`if (x) { // why`), per the
    /// language's comment and string rules: a comment marker inside a
    /// string (`"http://a"`) is not one. The line as it is in plain text.
    pub fn code_of_line(self, line: &str) -> &str {
        let Some(g) = grammar(self) else { return line };
        let marker = g.line_comment;
        let mut quote: Option<char> = None;
        let mut escaped = false;
        for (i, c) in line.char_indices() {
            if let Some(q) = quote {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            } else if g.quotes.contains(&c) {
                quote = Some(c);
            } else if line[i..].starts_with(marker) {
                return &line[..i];
            }
        }
        line
    }

    /// Languages whose files see each other's definitions have the same
    /// family (see `Grammar::family`).
    pub fn family(self) -> &'static str {
        grammar(self).map_or("plaintext", |g| g.family)
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
        // Each language's comments and strings.
        assert!(Language::Cpp.opens_block("for (int i = 0; i < n; i++) { // every one"));
        assert!(!Language::Cpp.opens_block("x = 1; // {"));
        assert!(Language::Python.opens_block("if x:  # {"));
        assert!(!Language::Go.opens_block("s := \"a{\" + b"));
        assert_eq!(Language::JavaScript.code_of_line("const u = 'http://x'; // url"), "const u = 'http://x'; ");
        assert_eq!(Language::Go.code_of_line("p := `a//b` // raw"), "p := `a//b` ");
        assert_eq!(Language::Java.code_of_line("s = \"\\\"//\"; // q"), "s = \"\\\"//\"; ");
        assert_eq!(Language::Python.code_of_line("x = '#' # y"), "x = '#' ");
        assert_eq!(Language::PlainText.code_of_line("a // b"), "a // b");
        for (id, path, lang) in [
            ("typescript", "a.ts", Language::TypeScript),
            ("typescriptreact", "a.tsx", Language::Tsx),
            ("javascript", "a.js", Language::JavaScript),
            ("javascriptreact", "a.jsx", Language::JavaScript),
            ("go", "a.go", Language::Go),
            ("c", "a.c", Language::C),
            ("cpp", "a.cpp", Language::Cpp),
            ("java", "A.java", Language::Java),
        ] {
            assert_eq!(Language::detect(id, "untitled:1"), lang, "{id}");
            assert_eq!(Language::from_path(Path::new(path)), lang, "{path}");
        }
        // A header is read as C++ (which parses C headers too); both share an index family.
        assert_eq!(Language::from_path(Path::new("util.h")), Language::Cpp);
        assert_eq!(Language::C.family(), Language::Cpp.family());
        assert_eq!(Language::TypeScript.family(), Language::JavaScript.family());
    }
}
