//! Syntax facts from tree-sitter: definitions, imports, enclosing scopes,
//! block openers and identifiers, driven by the query files in
//! `grammars/<language>/`.
//!
//! Pure: every function takes a parsed [`Tree`] and its source and does no
//! I/O. Queries are compiled once per language, on first use.
//!
//! Adding a language: add its grammar crate, a `Language` variant, a folder
//! `grammars/<name>/` with `tags.scm`, `scopes.scm`, `imports.scm`,
//! `blocks.scm`, `identifiers.scm`, `bindings.scm`, `items.scm` and
//! `builtins.txt`, and
//! one entry in [`GRAMMARS`] (its LSP language ids and file extensions too).
//! Nothing else changes.
//!
//! Capture names the code relies on:
//! - `tags.scm`: `@definition.<kind>` (the item) and `@name`.
//! - `scopes.scm`: `@scope.<kind>` (the scope) and `@body`.
//! - `imports.scm`: `@import`, `@import.name`, `@import.module`.
//! - `blocks.scm`: `@block` and `@body`.
//! - `identifiers.scm`: `@name`.
//! - `bindings.scm`: `@name`.
//! - `items.scm`: `@item` (see [`items`]).

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::OnceLock;

use tree_sitter::{Node, Parser, Query, QueryCursor, StreamingIterator, Tree};

mod items;
mod language;
pub use items::enclosing_item;
pub use language::Language;

/// How a language's imports name what they import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportPaths {
    /// Module paths (`crate::engine`, `billing.tax`, `com.acme.util`),
    /// whose segments are folders and a file's stem.
    Modules,
    /// File paths (`./lib/util.js`, `util.h`): folders, then a file name
    /// whose extension may be left out.
    Files,
    /// Package paths (Go's `example.com/app/pkg/util`): the package is the
    /// last folders, after a module path that names no folder of the
    /// workspace, so a file's folder matches a path that ends with it.
    Packages,
}

/// One language's grammar and query folder.
pub struct Grammar {
    pub language: Language,
    /// The folder under `grammars/`, and the language's name.
    pub dir: &'static str,
    /// LSP `languageId`s of its documents.
    pub language_ids: &'static [&'static str],
    /// File extensions of its files (without the dot).
    pub extensions: &'static [&'static str],
    /// Blocks are delimited by indentation (Python), not by brackets: a
    /// cursor on a blank line indented deeper than a scope's header, right
    /// after the scope's last statement, is still inside the scope.
    pub indent_blocks: bool,
    /// Tokens that open a block (`{`, `:`) at the end of a line: what
    /// `Language::opens_block` looks for in the text, and [`opens_block`]
    /// where the parser could not make sense of the code (an ERROR node).
    pub block_openers: &'static [&'static str],
    /// Words that every import statement contains as a token of its own
    /// (`use`, `import`, `require`): [`imports`] finds statements by looking
    /// these up in the text instead of walking the whole tree (the statement
    /// is the token's nearest ancestor of an import kind). Empty: walk the
    /// tree.
    pub import_keywords: &'static [&'static str],
    /// A name can come from another file of the same folder without an
    /// import (Rust: a sibling module named by a path, `util::helper()`,
    /// after `mod util;`). False: a name that is neither bound in the file
    /// nor imported cannot come from another file, unless that file's module
    /// is imported (Python).
    pub sibling_modules: bool,
    /// File stems that stand for their folder's module (`mod`, `lib`,
    /// `main`; `__init__`; `index`): `engine/mod.rs` is the module `engine`.
    pub folder_modules: &'static [&'static str],
    /// Every file is part of its folder's module (a Go package): a file's
    /// module is its folder, whatever its stem.
    pub folder_is_module: bool,
    /// How its imports name what they import.
    pub import_paths: ImportPaths,
    /// Languages whose files see each other's definitions share a family
    /// (C and C++ through headers; JavaScript and TypeScript); else the
    /// folder name.
    pub family: &'static str,
    /// What starts a comment that runs to the end of the line.
    pub line_comment: &'static str,
    /// Characters that open and close a string literal on one line.
    pub quotes: &'static [char],
    /// Statements after which nothing more of their block runs.
    pub jumps: &'static [&'static str],
    /// On a line holding only its indentation, the prompt's prefix ends
    /// with that indentation (as llama-server's does) rather than at the
    /// line break, the blanks forced at the start of the generation:
    /// measured per language on the quality bench (Java, JavaScript and Go
    /// write better lines with it; Rust's end-of-function lines worse).
    pub indentation_in_prefix: bool,
    /// A local variable declared and never read does not compile (Go's
    /// "declared and not used"): an answer that declares one that nothing
    /// after it reads is no answer.
    pub unused_is_error: bool,
    /// Value types a `new` object cannot initialize (`int n = new
    /// ArrayList<>()` does not compile); their box classes can (Java's
    /// `Integer` for `int`: a name that starts with the type's, any case).
    pub primitive_types: &'static [&'static str],
    ts: fn() -> tree_sitter::Language,
    tags: &'static str,
    scopes: &'static str,
    imports: &'static str,
    blocks: &'static str,
    identifiers: &'static str,
    bindings: &'static str,
    items: &'static str,
    /// `builtins.txt`: names the language provides without an import.
    builtins: &'static str,
    compiled: OnceLock<Option<Compiled>>,
    builtin_names: OnceLock<HashSet<&'static str>>,
    /// Whether the grammar loads into a parser (its ABI is one this
    /// tree-sitter reads) and its queries compile: checked once.
    loads: OnceLock<bool>,
}

macro_rules! grammar {
    ($lang:expr, $ts:expr, $dir:literal, queries: $q:literal, language_ids: $ids:expr, extensions: $exts:expr,
     indent_blocks: $indent:expr, block_openers: $openers:expr, import_keywords: $keywords:expr,
     sibling_modules: $siblings:expr, folder_modules: $folder_modules:expr, folder_is_module: $folder_is_module:expr,
     import_paths: $paths:expr, family: $family:literal, line_comment: $comment:literal, quotes: $quotes:expr,
     jumps: $jumps:expr, indentation_in_prefix: $indent_prefix:expr, unused_is_error: $unused:expr,
     primitive_types: $prims:expr) => {
        Grammar {
            language: $lang,
            dir: $dir,
            language_ids: $ids,
            extensions: $exts,
            indent_blocks: $indent,
            block_openers: $openers,
            import_keywords: $keywords,
            sibling_modules: $siblings,
            folder_modules: $folder_modules,
            folder_is_module: $folder_is_module,
            import_paths: $paths,
            family: $family,
            line_comment: $comment,
            quotes: $quotes,
            jumps: $jumps,
            indentation_in_prefix: $indent_prefix,
            unused_is_error: $unused,
            primitive_types: $prims,
            ts: || $ts.into(),
            tags: include_str!(concat!("../../../grammars/", $q, "/tags.scm")),
            scopes: include_str!(concat!("../../../grammars/", $q, "/scopes.scm")),
            imports: include_str!(concat!("../../../grammars/", $q, "/imports.scm")),
            blocks: include_str!(concat!("../../../grammars/", $q, "/blocks.scm")),
            identifiers: include_str!(concat!("../../../grammars/", $q, "/identifiers.scm")),
            bindings: include_str!(concat!("../../../grammars/", $q, "/bindings.scm")),
            items: include_str!(concat!("../../../grammars/", $q, "/items.scm")),
            builtins: include_str!(concat!("../../../grammars/", $q, "/builtins.txt")),
            compiled: OnceLock::new(),
            builtin_names: OnceLock::new(),
            loads: OnceLock::new(),
        }
    };
}

/// The languages with a grammar: the one table to extend. (`queries`: the
/// folder of its query files, shared by dialects of one grammar.)
pub static GRAMMARS: [Grammar; 9] = [
    grammar!(
        Language::Rust,
        tree_sitter_rust::LANGUAGE,
        "rust",
        queries: "rust",
        language_ids: &["rust"],
        extensions: &["rs"],
        indent_blocks: false,
        block_openers: &["{"],
        import_keywords: &["use", "extern"],
        sibling_modules: true,
        folder_modules: &["mod", "lib", "main"],
        folder_is_module: false,
        import_paths: ImportPaths::Modules,
        family: "rust",
        line_comment: "//",
        quotes: &['"'],
        jumps: &["return", "break", "continue"],
        indentation_in_prefix: false,
        unused_is_error: false,
        primitive_types: &[]
    ),
    grammar!(
        Language::Python,
        tree_sitter_python::LANGUAGE,
        "python",
        queries: "python",
        language_ids: &["python"],
        extensions: &["py", "pyi"],
        indent_blocks: true,
        block_openers: &[":"],
        import_keywords: &["import"],
        sibling_modules: false,
        folder_modules: &["__init__"],
        folder_is_module: false,
        import_paths: ImportPaths::Modules,
        family: "python",
        line_comment: "#",
        quotes: &['"', '\''],
        jumps: &["return", "break", "continue", "raise"],
        indentation_in_prefix: false,
        unused_is_error: false,
        primitive_types: &[]
    ),
    grammar!(
        Language::JavaScript,
        tree_sitter_javascript::LANGUAGE,
        "javascript",
        queries: "javascript",
        language_ids: &["javascript", "javascriptreact"],
        extensions: &["js", "mjs", "cjs", "jsx"],
        indent_blocks: false,
        block_openers: &["{"],
        import_keywords: &["import", "require"],
        sibling_modules: false,
        folder_modules: &["index"],
        folder_is_module: false,
        import_paths: ImportPaths::Files,
        family: "js",
        line_comment: "//",
        quotes: &['"', '\'', '`'],
        jumps: &["return", "break", "continue", "throw"],
        indentation_in_prefix: true,
        unused_is_error: false,
        primitive_types: &[]
    ),
    grammar!(
        Language::TypeScript,
        tree_sitter_typescript::LANGUAGE_TYPESCRIPT,
        "typescript",
        queries: "typescript",
        language_ids: &["typescript"],
        extensions: &["ts", "mts", "cts"],
        indent_blocks: false,
        block_openers: &["{"],
        import_keywords: &["import", "require"],
        sibling_modules: false,
        folder_modules: &["index"],
        folder_is_module: false,
        import_paths: ImportPaths::Files,
        family: "js",
        line_comment: "//",
        quotes: &['"', '\'', '`'],
        jumps: &["return", "break", "continue", "throw"],
        indentation_in_prefix: true,
        unused_is_error: false,
        primitive_types: &[]
    ),
    grammar!(
        Language::Tsx,
        tree_sitter_typescript::LANGUAGE_TSX,
        "tsx",
        queries: "typescript",
        language_ids: &["typescriptreact"],
        extensions: &["tsx"],
        indent_blocks: false,
        block_openers: &["{"],
        import_keywords: &["import", "require"],
        sibling_modules: false,
        folder_modules: &["index"],
        folder_is_module: false,
        import_paths: ImportPaths::Files,
        family: "js",
        line_comment: "//",
        quotes: &['"', '\'', '`'],
        jumps: &["return", "break", "continue", "throw"],
        indentation_in_prefix: true,
        unused_is_error: false,
        primitive_types: &[]
    ),
    grammar!(
        Language::Go,
        tree_sitter_go::LANGUAGE,
        "go",
        queries: "go",
        language_ids: &["go"],
        extensions: &["go"],
        indent_blocks: false,
        block_openers: &["{"],
        import_keywords: &["import"],
        sibling_modules: true,
        folder_modules: &[],
        folder_is_module: true,
        import_paths: ImportPaths::Packages,
        family: "go",
        line_comment: "//",
        quotes: &['"', '\'', '`'],
        jumps: &["return", "break", "continue", "goto", "panic"],
        indentation_in_prefix: true,
        unused_is_error: true,
        primitive_types: &[]
    ),
    grammar!(
        Language::C,
        tree_sitter_c::LANGUAGE,
        "c",
        queries: "c",
        language_ids: &["c"],
        extensions: &["c"],
        indent_blocks: false,
        block_openers: &["{"],
        import_keywords: &["#include"],
        sibling_modules: false,
        folder_modules: &[],
        folder_is_module: false,
        import_paths: ImportPaths::Files,
        family: "c",
        line_comment: "//",
        quotes: &['"', '\''],
        jumps: &["return", "break", "continue", "goto"],
        indentation_in_prefix: true,
        unused_is_error: false,
        primitive_types: &[]
    ),
    grammar!(
        Language::Cpp,
        tree_sitter_cpp::LANGUAGE,
        "cpp",
        queries: "cpp",
        language_ids: &["cpp", "cuda-cpp"],
        extensions: &["cpp", "cc", "cxx", "c++", "hpp", "hh", "hxx", "h", "ipp", "tpp"],
        indent_blocks: false,
        block_openers: &["{"],
        import_keywords: &["#include", "using"],
        sibling_modules: false,
        folder_modules: &[],
        folder_is_module: false,
        import_paths: ImportPaths::Files,
        family: "c",
        line_comment: "//",
        quotes: &['"', '\''],
        jumps: &["return", "break", "continue", "throw", "goto"],
        indentation_in_prefix: true,
        unused_is_error: false,
        primitive_types: &["int", "long", "short", "char", "bool", "float", "double", "unsigned", "signed"]
    ),
    grammar!(
        Language::Java,
        tree_sitter_java::LANGUAGE,
        "java",
        queries: "java",
        language_ids: &["java"],
        extensions: &["java"],
        indent_blocks: false,
        block_openers: &["{"],
        import_keywords: &["import"],
        sibling_modules: true,
        folder_modules: &[],
        folder_is_module: false,
        import_paths: ImportPaths::Modules,
        family: "java",
        line_comment: "//",
        quotes: &['"', '\''],
        jumps: &["return", "break", "continue", "throw"],
        indentation_in_prefix: true,
        unused_is_error: false,
        primitive_types: &["int", "long", "short", "byte", "char", "boolean", "float", "double"]
    ),
];

/// Queries of one language, compiled, with the capture indices looked up.
struct Compiled {
    tags: Query,
    tags_name: Option<u32>,
    scopes: Query,
    scopes_body: Option<u32>,
    imports: Query,
    import: Option<u32>,
    import_name: Option<u32>,
    import_module: Option<u32>,
    /// Node kinds of the `@import` statements (the roots of the patterns that
    /// capture `@import`); None when a pattern's root is not a plain node.
    import_kinds: Option<Vec<String>>,
    blocks: Query,
    blocks_block: Option<u32>,
    blocks_body: Option<u32>,
    identifiers: Query,
    bindings: Query,
    bindings_name: Option<u32>,
    items: Query,
    items_item: Option<u32>,
}

/// A query file that does not compile against its grammar.
#[derive(Debug)]
pub struct QueryError {
    pub file: String,
    pub error: tree_sitter::QueryError,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: row {}, column {}: {:?} {}", self.file, self.error.row, self.error.column, self.error.kind, self.error.message)
    }
}

impl Grammar {
    fn compile(&self) -> Result<Compiled, QueryError> {
        let lang = (self.ts)();
        let q = |file: &str, text: &str| {
            Query::new(&lang, text).map_err(|error| QueryError { file: format!("grammars/{}/{file}", self.dir), error })
        };
        let tags = q("tags.scm", self.tags)?;
        let scopes = q("scopes.scm", self.scopes)?;
        let imports = q("imports.scm", self.imports)?;
        let blocks = q("blocks.scm", self.blocks)?;
        let identifiers = q("identifiers.scm", self.identifiers)?;
        let bindings = q("bindings.scm", self.bindings)?;
        let items = q("items.scm", self.items)?;
        Ok(Compiled {
            tags_name: tags.capture_index_for_name("name"),
            scopes_body: scopes.capture_index_for_name("body"),
            import: imports.capture_index_for_name("import"),
            import_name: imports.capture_index_for_name("import.name"),
            import_module: imports.capture_index_for_name("import.module"),
            import_kinds: root_kinds_capturing(&imports, self.imports, "import"),
            blocks_block: blocks.capture_index_for_name("block"),
            blocks_body: blocks.capture_index_for_name("body"),
            bindings_name: bindings.capture_index_for_name("name"),
            items_item: items.capture_index_for_name("item"),
            tags,
            scopes,
            imports,
            blocks,
            identifiers,
            bindings,
            items,
        })
    }

    /// Compile every query file of this language (what the tests check).
    pub fn check_queries(&self) -> Result<(), QueryError> {
        self.compile().map(|_| ())
    }

    pub fn ts_language(&self) -> tree_sitter::Language {
        (self.ts)()
    }

    /// Is `name` provided by the language without an import (a builtin, a
    /// prelude name, a common method of its standard types), per
    /// `builtins.txt`?
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin_names
            .get_or_init(|| self.builtins.lines().map(|l| l.split('#').next().unwrap_or("")).flat_map(str::split_whitespace).collect())
            .contains(name)
    }

    /// Does the grammar load (a parser takes it, its queries compile)? A
    /// language whose grammar does not is plain text: said once in the log.
    pub fn loads(&self) -> bool {
        *self.loads.get_or_init(|| {
            let lang = (self.ts)();
            if let Err(e) = Parser::new().set_language(&lang) {
                tracing::warn!("the {} grammar cannot be loaded ({e}): its files get plain-text completions", self.dir);
                return false;
            }
            if self.compiled().is_none() {
                tracing::warn!("the {} queries do not compile: its files get plain-text completions", self.dir);
                return false;
            }
            true
        })
    }

    fn compiled(&self) -> Option<&Compiled> {
        self.compiled
            .get_or_init(|| match self.compile() {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!("{e}");
                    None
                }
            })
            .as_ref()
    }
}

/// The node kinds at the root of the patterns of `query` (compiled from
/// `source`) that capture `@<capture>` exactly; None if one of those
/// patterns does not start with a plain `(kind`.
fn root_kinds_capturing(query: &Query, source: &str, capture: &str) -> Option<Vec<String>> {
    let tag = format!("@{capture}");
    let mut kinds: Vec<String> = Vec::new();
    for i in 0..query.pattern_count() {
        let text = source.get(query.start_byte_for_pattern(i)..query.end_byte_for_pattern(i))?;
        let captures_it = text
            .match_indices(&tag)
            .any(|(at, _)| !text[at + tag.len()..].starts_with(|c: char| c == '.' || c == '_' || c == '-' || c.is_alphanumeric()));
        if !captures_it {
            continue;
        }
        let kind: String =
            text.trim_start().strip_prefix('(')?.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if kind.is_empty() {
            return None;
        }
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Some(kinds)
}

/// Compile the queries of every language now (a few milliseconds each)
/// rather than on the first request that needs them. Returns the languages
/// whose queries failed to compile (logged; their functions return nothing).
pub fn warm_up() -> Vec<Language> {
    GRAMMARS.iter().filter(|g| !g.loads()).map(|g| g.language).collect()
}

/// The grammar of `lang`, if it has one that loads.
pub fn grammar(lang: Language) -> Option<&'static Grammar> {
    GRAMMARS.iter().find(|g| g.language == lang).filter(|g| g.loads())
}

fn compiled(lang: Language) -> Option<(&'static Grammar, &'static Compiled)> {
    let g = grammar(lang)?;
    Some((g, g.compiled()?))
}

/// The longest a one-off parse may take. Parsing a few kilobytes takes
/// about a millisecond, but some texts keep tree-sitter's error recovery
/// busy for minutes, and callers run on the message loop.
const ONE_OFF_PARSE_LIMIT: std::time::Duration = std::time::Duration::from_millis(500);

/// A fresh parse of `src` (for one-off checks; documents reparse
/// incrementally). None past `ONE_OFF_PARSE_LIMIT`.
pub fn parse(lang: Language, src: &str) -> Option<Tree> {
    let start = std::time::Instant::now();
    let mut over = |_: &tree_sitter::ParseState| start.elapsed() > ONE_OFF_PARSE_LIMIT;
    let bytes = src.as_bytes();
    let mut read = |i: usize, _: tree_sitter::Point| bytes.get(i..).unwrap_or_default();
    parser(lang)?.parse_with_options(&mut read, None, Some(tree_sitter::ParseOptions::new().progress_callback(&mut over)))
}

/// A parser set to `lang`'s grammar; None for a language without one.
pub fn parser(lang: Language) -> Option<Parser> {
    let mut parser = Parser::new();
    parser.set_language(&grammar(lang)?.ts_language()).ok()?;
    Some(parser)
}

fn text<'a>(src: &'a str, node: Node) -> &'a str {
    src.get(node.byte_range()).unwrap_or("")
}

/// The first `max_lines` lines of `s`, without trailing whitespace.
fn first_lines(s: &str, max_lines: usize) -> &str {
    let mut end = s.len();
    let mut seen = 0;
    for (i, b) in s.bytes().enumerate() {
        if b == b'\n' {
            seen += 1;
            if seen == max_lines {
                end = i;
                break;
            }
        }
    }
    s[..end].trim_end()
}

/// The body of an item: its `body` field, or that of the definition it wraps
/// (a Python decorated definition).
fn body_of(node: Node) -> Option<Node> {
    node.child_by_field_name("body").or_else(|| node.child_by_field_name("definition").and_then(|d| d.child_by_field_name("body")))
}

const SIGNATURE_MAX_LINES: usize = 6;

/// The header of an item: from its start up to its body; the first lines of
/// an item without a body.
fn header_of(src: &str, node: Node) -> String {
    let start = node.start_byte();
    let end = match body_of(node) {
        Some(body) if body.start_byte() > start => body.start_byte(),
        _ => node.end_byte(),
    };
    first_lines(src.get(start..end).unwrap_or(""), SIGNATURE_MAX_LINES).to_string()
}

/// A definition found by `tags.scm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    /// The `<kind>` of its `@definition.<kind>` capture: `function`, `method`,
    /// `class`, `struct`, `enum`, `trait`, `impl`, `constant`, `type`,
    /// `module`, `macro`, `attribute`.
    pub kind: String,
    pub byte_range: Range<usize>,
    /// 0-based.
    pub start_line: usize,
    /// 0-based, inclusive.
    pub end_line: usize,
    /// The header: text from the item start up to its body (e.g.
    /// `def f(a, b) -> int:` or `pub fn f(a: u8) -> u8`), one line or a few;
    /// the first lines of an item without a body (`const X: u8 = 1;`).
    pub signature: String,
}

/// All definitions in `tree`, in source order (outer items before the items
/// nested in them).
pub fn definitions(lang: Language, tree: &Tree, src: &str) -> Vec<Definition> {
    let Some((_, c)) = compiled(lang) else {
        return Vec::new();
    };
    let Some(name_ix) = c.tags_name else {
        return Vec::new();
    };
    let names = c.tags.capture_names();
    // Per name node: the earliest pattern that captured it.
    let mut best: HashMap<usize, (usize, Definition)> = HashMap::new();
    let mut cursor = QueryCursor::new();
    let mut matches = cursor.matches(&c.tags, tree.root_node(), src.as_bytes());
    while let Some(m) = matches.next() {
        let mut name_node = None;
        let mut item = None;
        for cap in m.captures {
            if cap.index == name_ix {
                name_node = Some(cap.node);
            } else if let Some(kind) = names[cap.index as usize].strip_prefix("definition.") {
                item = Some((cap.node, kind));
            }
        }
        let (Some(name_node), Some((node, kind))) = (name_node, item) else {
            continue;
        };
        if let Some((pattern, _)) = best.get(&name_node.id()) {
            if *pattern <= m.pattern_index {
                continue;
            }
        }
        let def = Definition {
            name: text(src, name_node).to_string(),
            kind: kind.to_string(),
            byte_range: node.byte_range(),
            start_line: node.start_position().row,
            end_line: node.end_position().row,
            signature: header_of(src, node),
        };
        best.insert(name_node.id(), (m.pattern_index, def));
    }
    let mut defs: Vec<Definition> = best.into_values().map(|(_, d)| d).collect();
    defs.sort_by(|a, b| {
        (a.byte_range.start, std::cmp::Reverse(a.byte_range.end), &a.name).cmp(&(
            b.byte_range.start,
            std::cmp::Reverse(b.byte_range.end),
            &b.name,
        ))
    });
    defs
}

/// An import statement (`use ...;`, `import ...`, `from ... import ...`),
/// or an import inside one (a spec of Go's `import ( ... )`, listed after
/// the statement that holds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub byte_range: Range<usize>,
    pub start_line: usize,
    pub end_line: usize,
    /// The module imported from: `crate::engine` for `use crate::engine::Engine;`,
    /// `.models` for `from .models import User`, `os.path` for `import os.path`.
    pub module: Option<String>,
    /// The names brought into scope, in source order (aliases when renamed).
    pub names: Vec<String>,
}

/// For a grammar without import keywords: how deep in the tree an import
/// statement is looked for (the root's children are at depth 1).
const IMPORT_MAX_DEPTH: u32 = 6;

/// How far above an import keyword's token its statement may be.
const KEYWORD_MAX_DEPTH: usize = 4;

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Where `word` occurs in `text` as a whole word (byte offsets).
fn whole_words<'a>(text: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    let b = text.as_bytes();
    text.match_indices(word).map(|(at, _)| at).filter(move |&at| {
        let end = at + word.len();
        !((at > 0 && is_word_byte(b[at - 1])) || (end < b.len() && is_word_byte(b[end])))
    })
}

/// The statements of `kinds` that have one of `keywords` as a token of
/// their own: each whole-word occurrence of a keyword in `src` is checked
/// against the tree (one in a comment, a string or an identifier is not).
///
/// Occurrences are visited in order with one cursor moving along the root's
/// children, then down to the keyword's token: `Node::parent` and
/// `descendant_for_byte_range` from the root would scan the root's children
/// again for each one.
fn statements_at_keywords<'t>(tree: &'t Tree, src: &str, kinds: &[String], keywords: &[&str], out: &mut Vec<Node<'t>>) {
    let mut hits: Vec<(usize, usize)> = keywords.iter().flat_map(|kw| whole_words(src, kw).map(move |at| (at, at + kw.len()))).collect();
    hits.sort_unstable();
    let root = tree.root_node();
    let mut top = root.walk();
    if !top.goto_first_child() {
        return;
    }
    let mut down = root.walk();
    for (at, end) in hits {
        while top.node().end_byte() <= at {
            if !top.goto_next_sibling() {
                return;
            }
        }
        // The path down to the keyword's token; the statement is its
        // nearest ancestor of an import kind, a few levels up at most (the
        // `import` token's parent; the statement around a `require(...)` call).
        let mut path: Vec<Node> = vec![root];
        let mut node = top.node();
        down.reset(node);
        loop {
            if node.start_byte() > at {
                break;
            }
            if node.start_byte() == at && node.end_byte() == end && node.child_count() == 0 {
                if let Some(stmt) = path.iter().rev().take(KEYWORD_MAX_DEPTH).find(|p| kinds.iter().any(|k| k == p.kind())) {
                    out.push(*stmt);
                }
                break;
            }
            if down.goto_first_child_for_byte(at).is_none() {
                break;
            }
            path.push(node);
            node = down.node();
        }
    }
}

/// All imports in `tree`, in source order, wherever they are (a Python
/// import inside a function, a Rust `use` in a `mod tests { }`).
pub fn imports(lang: Language, tree: &Tree, src: &str) -> Vec<Import> {
    let Some((g, c)) = compiled(lang) else {
        return Vec::new();
    };
    let mut stmts: Vec<Node> = Vec::new();
    // (node, is_module)
    let mut parts: Vec<(Node, bool)> = Vec::new();
    let mut cursor = QueryCursor::new();
    // First the statements. Matching the query over the whole tree of a
    // 5,000-line file takes milliseconds, so look up the keywords in the text
    // and check the nodes there; without keywords, match near the top only.
    match &c.import_kinds {
        Some(kinds) if !g.import_keywords.is_empty() => statements_at_keywords(tree, src, kinds, g.import_keywords, &mut stmts),
        _ => {
            cursor.set_max_start_depth(Some(IMPORT_MAX_DEPTH));
            let mut matches = cursor.matches(&c.imports, tree.root_node(), src.as_bytes());
            while let Some(m) = matches.next() {
                for cap in m.captures {
                    if Some(cap.index) == c.import {
                        stmts.push(cap.node);
                    }
                }
            }
        }
    }
    stmts.sort_by_key(|n| (n.start_byte(), std::cmp::Reverse(n.end_byte())));
    stmts.dedup_by_key(|n| n.id());
    // Then the names and modules within each statement, and the imports
    // a statement holds of its own (each spec of Go's `import ( ... )`).
    cursor.set_max_start_depth(None);
    let mut nested: Vec<Node> = Vec::new();
    // Statements a pattern captured as `@import` (a keyword's statement
    // may match none: `const x = f(require('y'))`).
    let mut captured: HashSet<usize> = HashSet::new();
    for stmt in &stmts {
        let mut matches = cursor.matches(&c.imports, *stmt, src.as_bytes());
        while let Some(m) = matches.next() {
            for cap in m.captures {
                let ix = Some(cap.index);
                if ix == c.import_name {
                    parts.push((cap.node, false));
                } else if ix == c.import_module {
                    parts.push((cap.node, true));
                } else if ix == c.import {
                    captured.insert(cap.node.id());
                    if cap.node.id() != stmt.id() {
                        nested.push(cap.node);
                    }
                }
            }
        }
    }
    stmts.retain(|n| captured.contains(&n.id()));
    stmts.extend(nested);
    stmts.sort_by_key(|n| (n.start_byte(), std::cmp::Reverse(n.end_byte())));
    stmts.dedup_by_key(|n| n.id());
    let mut out: Vec<Import> = stmts
        .iter()
        .map(|n| Import {
            byte_range: n.byte_range(),
            start_line: n.start_position().row,
            end_line: n.end_position().row,
            module: None,
            names: Vec::new(),
        })
        .collect();
    // Each name/module goes to the innermost import containing it; the
    // module is the earliest (outermost) path captured.
    parts.sort_by_key(|(n, _)| (n.start_byte(), std::cmp::Reverse(n.end_byte())));
    parts.dedup_by_key(|(n, m)| (n.id(), *m));
    let mut seen_names: Vec<Vec<usize>> = vec![Vec::new(); out.len()];
    for (node, is_module) in parts {
        let r = node.byte_range();
        let Some(i) = (0..out.len())
            .filter(|&i| out[i].byte_range.start <= r.start && r.end <= out[i].byte_range.end)
            .min_by_key(|&i| out[i].byte_range.len())
        else {
            continue;
        };
        let t = text(src, node).to_string();
        if is_module {
            if out[i].module.is_none() {
                out[i].module = Some(t);
            }
        } else if !seen_names[i].contains(&node.id()) && !out[i].names.contains(&t) {
            seen_names[i].push(node.id());
            out[i].names.push(t);
        }
    }
    out
}

/// A scope found by `scopes.scm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The `<kind>` of its `@scope.<kind>` capture: `function`, `class`,
    /// `impl`, `trait`, `module`, `closure`, `struct`, `enum`, `extern`.
    pub kind: String,
    pub byte_range: Range<usize>,
    /// 0-based.
    pub start_line: usize,
    /// Byte where the scope's body starts, after the header: the `{` of a
    /// Rust body, the first statement of a Python block.
    pub body_start: usize,
    /// The text before the body, trailing whitespace trimmed:
    /// `pub fn f(a: u8) -> u8`, `def f(a, b) -> int:`.
    pub header: String,
}

/// Last byte of non-whitespace before `byte` (or `byte` itself when there is
/// none before it on any line).
fn anchor_before(src: &str, byte: usize) -> usize {
    let b = src.as_bytes();
    let mut i = byte.min(b.len());
    while i > 0 && b[i - 1].is_ascii_whitespace() {
        i -= 1;
    }
    if i == 0 {
        byte.min(b.len())
    } else {
        i - 1
    }
}

fn line_start(src: &str, byte: usize) -> usize {
    src.as_bytes()[..byte].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
}

/// Is the cursor at `byte` inside `node`?
///
/// Strictly after its start; before its end, or at its end unless the node
/// ends with a closing bracket. With indentation blocks, also on a blank line
/// after the node's last line, indented deeper than the node's first line.
fn contains_cursor(g: &Grammar, src: &str, node: Node, byte: usize) -> bool {
    let r = node.byte_range();
    if byte <= r.start {
        return false;
    }
    if byte < r.end {
        return true;
    }
    if byte == r.end {
        let closed = src[..r.end].ends_with(['}', ')', ']']);
        let last_missing = node.child(node.child_count().saturating_sub(1)).is_some_and(|c| c.is_missing());
        return g.indent_blocks || !closed || last_missing;
    }
    if !g.indent_blocks {
        return false;
    }
    let gap = &src[r.end..byte];
    if !gap.contains('\n') || !gap.bytes().all(|b| b.is_ascii_whitespace()) {
        return false;
    }
    let column = byte - line_start(src, byte);
    column > node.start_position().column
}

/// The scopes around the cursor at `byte`, innermost first.
///
/// Code the parser gave up on (an unclosed `{` followed by more items) is an
/// ERROR node and yields no scope there.
pub fn enclosing_scopes(lang: Language, tree: &Tree, src: &str, byte: usize) -> Vec<Scope> {
    let Some((g, c)) = compiled(lang) else {
        return Vec::new();
    };
    let byte = byte.min(src.len());
    let names = c.scopes.capture_names();
    let lo = anchor_before(src, byte);
    let hi = (byte + 1).min(src.len()).max(lo + 1);
    let mut cursor = QueryCursor::new();
    cursor.set_byte_range(lo..hi);
    let mut found: Vec<(Node, &str, Option<Node>)> = Vec::new();
    let mut matches = cursor.matches(&c.scopes, tree.root_node(), src.as_bytes());
    while let Some(m) = matches.next() {
        let mut scope = None;
        let mut body = None;
        for cap in m.captures {
            if Some(cap.index) == c.scopes_body {
                body = Some(cap.node);
            } else if let Some(kind) = names[cap.index as usize].strip_prefix("scope.") {
                scope = Some((cap.node, kind));
            }
        }
        if let Some((node, kind)) = scope {
            if contains_cursor(g, src, node, byte) && !found.iter().any(|(n, _, _)| n.id() == node.id()) {
                found.push((node, kind, body));
            }
        }
    }
    found.sort_by_key(|(n, _, _)| (std::cmp::Reverse(n.start_byte()), n.end_byte()));
    found
        .into_iter()
        .map(|(node, kind, body)| {
            let body_start = body.map_or(node.end_byte(), |b| b.start_byte());
            let header = match body {
                Some(b) if b.start_byte() > node.start_byte() => src[node.start_byte()..b.start_byte()].trim_end().to_string(),
                _ => first_lines(text(src, node), 1).to_string(),
            };
            Scope { kind: kind.to_string(), byte_range: node.byte_range(), start_line: node.start_position().row, body_start, header }
        })
        .collect()
}

/// 0-based start lines of the root's named children (top-level item
/// boundaries), sorted and deduplicated.
pub fn top_level_item_lines(_lang: Language, tree: &Tree) -> Vec<usize> {
    let root = tree.root_node();
    let mut cursor = root.walk();
    let mut lines: Vec<usize> = root.named_children(&mut cursor).map(|n| n.start_position().row).collect();
    lines.sort_unstable();
    lines.dedup();
    lines
}

/// The names (identifiers, type names, field names: per `identifiers.scm`)
/// used in `byte_range`, deduplicated, the one last used nearest the end of
/// the range first.
pub fn identifiers_in(lang: Language, tree: &Tree, src: &str, byte_range: Range<usize>) -> Vec<String> {
    let Some((_, c)) = compiled(lang) else {
        return Vec::new();
    };
    let start = byte_range.start.min(src.len());
    let end = byte_range.end.min(src.len()).max(start);
    let mut cursor = QueryCursor::new();
    cursor.set_byte_range(start..end);
    let mut last_use: HashMap<&str, usize> = HashMap::new();
    let mut captures = cursor.captures(&c.identifiers, tree.root_node(), src.as_bytes());
    while let Some((m, i)) = captures.next() {
        let node = m.captures[*i].node;
        let r = node.byte_range();
        if r.start < start || r.end > end || r.is_empty() {
            continue;
        }
        let t = &src[r.clone()];
        let e = last_use.entry(t).or_insert(r.start);
        *e = (*e).max(r.start);
    }
    let mut names: Vec<(&str, usize)> = last_use.into_iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    names.into_iter().map(|(n, _)| n.to_string()).collect()
}

/// The names bound anywhere in the file (per `bindings.scm`: definitions,
/// parameters, assignment and pattern targets; not imports). One pass of the
/// query over the whole tree: linear in the file, but a walk of every node
/// (about 15-20 ms for a 5,700-line file on 2 busy cores, as much as any
/// whole-file query), so for once per prompt window, not per keystroke.
pub fn bindings(lang: Language, tree: &Tree, src: &str) -> HashSet<String> {
    let Some((_, c)) = compiled(lang) else {
        return HashSet::new();
    };
    let Some(name_ix) = c.bindings_name else {
        return HashSet::new();
    };
    let mut found: HashSet<&str> = HashSet::new();
    let mut cursor = QueryCursor::new();
    let mut matches = cursor.matches(&c.bindings, tree.root_node(), src.as_bytes());
    while let Some(m) = matches.next() {
        for cap in m.captures {
            if cap.index == name_ix {
                let t = text(src, cap.node);
                if !t.is_empty() {
                    found.insert(t);
                }
            }
        }
    }
    found.into_iter().map(str::to_string).collect()
}

/// The word `code` starts with (`if` of `if (x) {`); empty when it starts
/// with anything else.
pub fn leading_word(code: &str) -> &str {
    code.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').next().unwrap_or("")
}

/// Does `name` occur in `text` as a whole word?
pub fn mentions(text: &str, name: &str) -> bool {
    whole_words(text, name).next().is_some()
}

/// The plain names that code in `range` reads but nothing provides: not
/// bound anywhere in the file (`bindings.scm`), not a builtin, and not a
/// word of the text before `range` (which holds the imports, the enclosing
/// function's parameters, globals from other files already in use). Calls,
/// members, and names qualified by a capitalised type (`Math.max`) are left
/// out: they may come from elsewhere. What the code below an open line
/// needs a line yet to be written to bind (`s` in `s += x` when the masked
/// line was `s := 0`). In source order, deduplicated.
pub fn unbound_in(lang: Language, tree: &Tree, src: &str, range: Range<usize>) -> Vec<String> {
    if grammar(lang).is_none() {
        return Vec::new();
    }
    let (start, end) = (range.start.min(src.len()), range.end.min(src.len()));
    // (name, assigned to somewhere in the range)
    let mut used: Vec<(&str, bool)> = Vec::new();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        let r = node.byte_range();
        if r.end <= start || r.start >= end {
            continue;
        }
        if node.kind() == "identifier" && r.start >= start && r.end <= end {
            let name = &src[r.clone()];
            let after = src[r.end..].trim_start();
            let before = src[..r.start].trim_end();
            let called = after.starts_with('(');
            let member = before.ends_with('.') || before.ends_with("->") || before.ends_with("::");
            // A keyword argument's name (`f(key=1)`) names a parameter.
            let keyword = node.parent().is_some_and(|p| p.kind() == "keyword_argument" && p.child_by_field_name("name") == Some(node));
            let qualifier = after.starts_with('.') && name.starts_with(|c: char| c.is_ascii_uppercase());
            let assigned = ["++", "--", "+=", "-=", "*=", "/=", "%=", "|=", "&="].iter().any(|op| after.starts_with(op))
                || (after.starts_with('=') && !after.starts_with("=="));
            // A keyword the error recovery left as a name (`else` of a
            // `} else {` whose `if` is the line yet to be written: Java/123/L5).
            let reserved = tree.language().id_for_node_kind(name, false) != 0;
            if !called && !member && !qualifier && !keyword && !reserved {
                match used.iter_mut().find(|(n, _)| *n == name) {
                    Some(u) => u.1 |= assigned,
                    None => used.push((name, assigned)),
                }
            }
            continue;
        }
        let mut cursor = node.walk();
        let children: Vec<Node> = node.children(&mut cursor).collect();
        stack.extend(children.into_iter().rev());
    }
    // A builtin's name (`sum`, `max`, `out` in some languages) assigned to
    // is the code's own variable.
    let above = &src[..start];
    used.retain(|&(n, assigned)| (assigned || !is_builtin(lang, n)) && !mentions(above, n));
    if used.is_empty() {
        return Vec::new();
    }
    let bound = bindings(lang, tree, src);
    used.into_iter().filter(|(n, _)| !bound.contains(*n)).map(|(n, _)| n.to_string()).collect()
}

/// Is `name` a builtin of `lang` (see [`Grammar::is_builtin`])? False for a
/// language without a grammar.
pub fn is_builtin(lang: Language, name: &str) -> bool {
    grammar(lang).is_some_and(|g| g.is_builtin(name))
}

/// Is the cursor at `byte` right after a block opener (`def f():`, `if x:`,
/// `fn f() {`: only whitespace between the opener and the cursor) or inside
/// an empty body of a block, per `blocks.scm`?
pub fn opens_block(lang: Language, tree: &Tree, src: &str, byte: usize) -> bool {
    let Some((g, c)) = compiled(lang) else {
        return false;
    };
    let (Some(block_ix), Some(body_ix)) = (c.blocks_block, c.blocks_body) else {
        return false;
    };
    let byte = byte.min(src.len());
    let lo = anchor_before(src, byte);
    let hi = (byte + 1).min(src.len()).max(lo + 1);
    let mut cursor = QueryCursor::new();
    cursor.set_byte_range(lo..hi);
    let mut matches = cursor.matches(&c.blocks, tree.root_node(), src.as_bytes());
    while let Some(m) = matches.next() {
        let mut block = None;
        let mut body = None;
        for cap in m.captures {
            if cap.index == block_ix {
                block = Some(cap.node);
            }
            if cap.index == body_ix {
                body = Some(cap.node);
            }
        }
        let (Some(block), Some(body)) = (block, body) else {
            continue;
        };
        if let Some(opener_end) = opener_end(block, body) {
            if opener_end <= byte
                && src[opener_end..byte].bytes().all(|b| b.is_ascii_whitespace())
                && (g.indent_blocks || byte < body.end_byte() || body_unclosed(body))
            {
                return true;
            }
        }
        if body_is_empty(body) && contains_cursor(g, src, body, byte) {
            return true;
        }
    }
    // Code the parser could not make sense of (`fn f() {` at the end of the
    // file): an opener token inside an ERROR node, then only whitespace up to
    // the cursor and nothing after it on its line.
    let rest_of_line = src[byte..].split('\n').next().unwrap_or("");
    if !rest_of_line.trim().is_empty() {
        return false;
    }
    let Some(leaf) = tree.root_node().descendant_for_byte_range(lo, lo + 1) else {
        return false;
    };
    !leaf.is_named()
        && leaf.end_byte() <= byte
        && g.block_openers.contains(&leaf.kind())
        && src[leaf.end_byte()..byte].bytes().all(|b| b.is_ascii_whitespace())
        && in_error(leaf)
}

fn in_error(node: Node) -> bool {
    let mut n = Some(node);
    while let Some(x) = n {
        if x.is_error() {
            return true;
        }
        n = x.parent();
    }
    false
}

/// Where the opener of `body` ends: after its leading `{` when the body
/// starts with a bracket token, else after the token before the body (the
/// `:` of a Python compound statement).
fn opener_end(block: Node, body: Node) -> Option<usize> {
    if let Some(first) = body.child(0) {
        if !first.is_named() && !first.is_missing() {
            return Some(first.end_byte());
        }
    }
    let prev = body.prev_sibling()?;
    if prev.start_byte() < block.start_byte() {
        return None;
    }
    Some(prev.end_byte())
}

/// Does the body end without its closing bracket?
fn body_unclosed(body: Node) -> bool {
    match body.child(body.child_count().saturating_sub(1)) {
        Some(last) => last.is_missing() || last.is_named() || body.child_count() == 1,
        None => true,
    }
}

/// A body with no named children but comments.
fn body_is_empty(body: Node) -> bool {
    let mut cursor = body.walk();
    let empty = body.named_children(&mut cursor).all(|n| n.is_extra() || n.kind().contains("comment"));
    empty
}

/// Number of ERROR and MISSING nodes in `tree`.
pub fn problem_count(tree: &Tree) -> usize {
    let root = tree.root_node();
    if !root.has_error() {
        return 0;
    }
    let mut count = 0;
    let mut cursor = root.walk();
    loop {
        let node = cursor.node();
        if node.is_error() || node.is_missing() {
            count += 1;
        }
        // Descend only into subtrees that contain problems.
        if node.has_error() && cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return count;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::cursor;

    fn tree(lang: Language, src: &str) -> Tree {
        parse(lang, src).expect("parses")
    }

    #[test]
    fn every_query_compiles() {
        for g in &GRAMMARS {
            if let Err(e) = g.check_queries() {
                panic!("{e}");
            }
            assert!(compiled(g.language).is_some(), "{}", g.dir);
            let c = compiled(g.language).unwrap().1;
            // The import statements are found from the patterns' roots.
            assert!(c.import_kinds.as_ref().is_some_and(|k| !k.is_empty()), "{}", g.dir);
            // The capture names the code relies on (see the module doc).
            let has = |q: &Query, prefix: &str| q.capture_names().iter().any(|n| n.starts_with(prefix));
            assert!(c.tags_name.is_some() && has(&c.tags, "definition."), "{}: tags.scm", g.dir);
            assert!(c.scopes_body.is_some() && has(&c.scopes, "scope."), "{}: scopes.scm", g.dir);
            // (`@import.name` may be missing: C's includes bind no names.)
            assert!(c.import.is_some() && c.import_module.is_some(), "{}: imports.scm", g.dir);
            assert!(c.blocks_block.is_some() && c.blocks_body.is_some(), "{}: blocks.scm", g.dir);
            assert!(c.identifiers.capture_index_for_name("name").is_some(), "{}: identifiers.scm", g.dir);
            assert!(c.bindings_name.is_some(), "{}: bindings.scm", g.dir);
            assert!(c.items_item.is_some(), "{}: items.scm", g.dir);
            let first = g.builtins.lines().map(|l| l.split('#').next().unwrap_or("")).find_map(|l| l.split_whitespace().next());
            assert!(first.is_some_and(|w| g.is_builtin(w)), "{}: builtins.txt", g.dir);
            assert!(!g.language_ids.is_empty() && !g.extensions.is_empty() && !g.block_openers.is_empty(), "{}", g.dir);
        }
        assert!(warm_up().is_empty());
    }

    /// (name, kind, start_line) of every definition.
    fn defs(lang: Language, src: &str) -> Vec<(String, String, usize)> {
        definitions(lang, &tree(lang, src), src).into_iter().map(|d| (d.name, d.kind, d.start_line)).collect()
    }

    fn owned(v: &[(&str, &str, usize)]) -> Vec<(String, String, usize)> {
        v.iter().map(|(a, b, l)| (a.to_string(), b.to_string(), *l)).collect()
    }

    const RUST_ITEMS: &str = r#"use std::fmt;

pub const LIMIT: usize = 10;
static mut COUNT: u32 = 0;
pub type Res<T> = Result<T, Error>;

#[derive(Debug)]
pub struct Point<T> {
    x: T,
    y: T,
}

enum Shape { Circle(f64), Square(f64) }

pub trait Area {
    type Unit;
    fn area(&self) -> f64;
    fn twice(&self) -> f64 {
        self.area() * 2.0
    }
}

impl<T> Point<T> {
    pub fn new(x: T, y: T) -> Self {
        Point { x, y }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "shape")
    }
}

mod inner {
    pub fn helper(a: u8,
                  b: u8) -> u8 where u8: Copy {
        fn nested() {}
        a + b
    }
}

macro_rules! square { ($x:expr) => { $x * $x } }
"#;

    #[test]
    fn rust_definitions() {
        assert_eq!(
            defs(Language::Rust, RUST_ITEMS),
            owned(&[
                ("LIMIT", "constant", 2),
                ("COUNT", "constant", 3),
                ("Res", "type", 4),
                ("Point", "struct", 7),
                ("Shape", "enum", 12),
                ("Area", "trait", 14),
                ("Unit", "type", 15),
                ("area", "method", 16),
                ("twice", "method", 17),
                ("Point", "impl", 22),
                ("new", "method", 23),
                ("Shape", "impl", 28),
                ("fmt", "method", 29),
                ("inner", "module", 34),
                ("helper", "function", 35),
                ("nested", "function", 37),
                ("square", "macro", 42),
            ])
        );
    }

    #[test]
    fn rust_signatures_stop_at_the_body() {
        let t = tree(Language::Rust, RUST_ITEMS);
        let sig = |name: &str, kind: &str| {
            definitions(Language::Rust, &t, RUST_ITEMS)
                .into_iter()
                .find(|d| d.name == name && d.kind == kind)
                .unwrap_or_else(|| panic!("{name} {kind}"))
                .signature
        };
        assert_eq!(sig("new", "method"), "pub fn new(x: T, y: T) -> Self");
        assert_eq!(sig("Point", "struct"), "pub struct Point<T>");
        assert_eq!(sig("Point", "impl"), "impl<T> Point<T>");
        assert_eq!(sig("Shape", "impl"), "impl fmt::Display for Shape");
        assert_eq!(sig("area", "method"), "fn area(&self) -> f64;");
        assert_eq!(sig("LIMIT", "constant"), "pub const LIMIT: usize = 10;");
        assert_eq!(sig("helper", "function"), "pub fn helper(a: u8,\n                  b: u8) -> u8 where u8: Copy");
        let new = definitions(Language::Rust, &t, RUST_ITEMS).into_iter().find(|d| d.name == "new").unwrap();
        assert_eq!((new.start_line, new.end_line), (23, 25));
        assert!(RUST_ITEMS[new.byte_range].starts_with("pub fn new"));
    }

    const PY_ITEMS: &str = r#"import os

MAX_RETRIES = 3
timeout: float = 2.5

@dataclass
class Config:
    name: str = ""
    retries = 0

    @property
    def label(self) -> str:
        return self.name

    def load(self, path,
             strict=False):
        def inner():
            pass
        return inner

def main(argv: list[str]) -> int:
    x = 1
    return 0

class Empty: pass
"#;

    #[test]
    fn python_definitions() {
        assert_eq!(
            defs(Language::Python, PY_ITEMS),
            owned(&[
                ("MAX_RETRIES", "constant", 2),
                ("timeout", "constant", 3),
                ("Config", "class", 5),
                ("name", "attribute", 7),
                ("retries", "attribute", 8),
                ("label", "method", 10),
                ("load", "method", 14),
                ("inner", "function", 16),
                ("main", "function", 20),
                ("Empty", "class", 24),
            ])
        );
        let t = tree(Language::Python, PY_ITEMS);
        let all = definitions(Language::Python, &t, PY_ITEMS);
        let sig = |name: &str| all.iter().find(|d| d.name == name).unwrap().signature.clone();
        assert_eq!(sig("Config"), "@dataclass\nclass Config:");
        assert_eq!(sig("label"), "@property\n    def label(self) -> str:");
        assert_eq!(sig("load"), "def load(self, path,\n             strict=False):");
        assert_eq!(sig("main"), "def main(argv: list[str]) -> int:");
        assert_eq!(sig("Empty"), "class Empty:");
        assert_eq!(sig("MAX_RETRIES"), "MAX_RETRIES = 3");
        // A function-local assignment is not a definition.
        assert!(!all.iter().any(|d| d.name == "x"));
    }

    fn imps(lang: Language, src: &str) -> Vec<(usize, Option<String>, Vec<String>)> {
        imports(lang, &tree(lang, src), src)
            .into_iter()
            .map(|i| {
                let words: [&str; 2] = if lang == Language::Rust { ["use", "extern"] } else { ["import", "from"] };
                let stmt = &src[i.byte_range.clone()];
                assert!(words.iter().any(|w| stmt.contains(w)), "{stmt}");
                (i.start_line, i.module, i.names)
            })
            .collect()
    }

    fn imp(line: usize, module: Option<&str>, names: &[&str]) -> (usize, Option<String>, Vec<String>) {
        (line, module.map(str::to_string), names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn rust_imports() {
        let src = r#"use std::collections::{HashMap, BTreeMap as Map};
use crate::engine::Engine;
use anyhow;
use a::b::*;
use tree_sitter::{self, Node as TsNode, query::{Query, QueryCursor}};
use foo::Bar as Baz;
extern crate serde as s;
pub(crate) use super::x::{
    y,
    z,
};
fn f() {
    use inner::Thing;
}
"#;
        assert_eq!(
            imps(Language::Rust, src),
            vec![
                imp(0, Some("std::collections"), &["HashMap", "Map"]),
                imp(1, Some("crate::engine"), &["Engine"]),
                imp(2, None, &["anyhow"]),
                imp(3, Some("a::b"), &[]),
                imp(4, Some("tree_sitter"), &["tree_sitter", "TsNode", "Query", "QueryCursor"]),
                imp(5, Some("foo"), &["Baz"]),
                imp(6, None, &["s"]),
                imp(7, Some("super::x"), &["y", "z"]),
                imp(12, Some("inner"), &["Thing"]),
            ]
        );
    }

    #[test]
    fn python_imports() {
        let src = r#"import os.path
import numpy as np, sys
from .models import User, Group as G
from ..util.text import (
    slug,
    trim,
)
from typing import *
from __future__ import annotations

def f():
    import json
"#;
        assert_eq!(
            imps(Language::Python, src),
            vec![
                imp(0, Some("os.path"), &["os"]),
                imp(1, Some("numpy"), &["np", "sys"]),
                imp(2, Some(".models"), &["User", "G"]),
                imp(3, Some("..util.text"), &["slug", "trim"]),
                imp(7, Some("typing"), &[]),
                imp(8, None, &["annotations"]),
                imp(11, Some("json"), &["json"]),
            ]
        );
    }

    /// (kind, header) of the scopes around the `$0` cursor, innermost first.
    fn scopes_at(lang: Language, fixture: &str) -> Vec<(String, String)> {
        let (src, at) = cursor(fixture);
        let t = tree(lang, &src);
        enclosing_scopes(lang, &t, &src, at)
            .into_iter()
            .map(|s| {
                assert!(s.byte_range.start < at && s.body_start <= s.byte_range.end);
                assert!(src[..s.body_start].trim_end().ends_with(&s.header));
                (s.kind, s.header)
            })
            .collect()
    }

    fn sc(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn rust_enclosing_scopes() {
        let fixture = r#"mod m {
    impl Foo {
        pub fn bar(&self, x: u8) -> u8 {
            let f = |y: u8| {
                y + $0
            };
            f(x)
        }
    }
}
"#;
        assert_eq!(
            scopes_at(Language::Rust, fixture),
            sc(&[("closure", "|y: u8|"), ("function", "pub fn bar(&self, x: u8) -> u8"), ("impl", "impl Foo"), ("module", "mod m"),])
        );
        // Right after a closing brace: outside that function.
        assert_eq!(scopes_at(Language::Rust, "impl A {\n    fn f() {}$0\n}\n"), sc(&[("impl", "impl A")]));
        assert_eq!(scopes_at(Language::Rust, "fn f() {}\n$0\nfn g() {}\n"), sc(&[]));
        // Before the item starts: not inside it.
        assert_eq!(scopes_at(Language::Rust, "$0fn f() {}\n"), sc(&[]));
        // Unclosed body while typing.
        assert_eq!(scopes_at(Language::Rust, "fn a() {}\nfn f(x: u8) {\n    let y = x;$0\n}\n"), sc(&[("function", "fn f(x: u8)")]));
    }

    #[test]
    fn python_enclosing_scopes() {
        let fixture = "class A(Base):\n    def f(self, x):\n        y = x\n        $0\n\ndef g():\n    pass\n";
        assert_eq!(scopes_at(Language::Python, fixture), sc(&[("function", "def f(self, x):"), ("class", "class A(Base):")]));
        // Dedented to the class body: only the class.
        let fixture = "class A:\n    def f(self):\n        return 1\n\n    $0\n";
        assert_eq!(scopes_at(Language::Python, fixture), sc(&[("class", "class A:")]));
        // Column 0 after the class: nothing.
        let fixture = "class A:\n    def f(self):\n        return 1\n$0\n";
        assert_eq!(scopes_at(Language::Python, fixture), sc(&[]));
        // At the end of the last statement, even after a `)`.
        let fixture = "def f(a,\n      b):\n    return g(a)$0\n";
        assert_eq!(scopes_at(Language::Python, fixture), sc(&[("function", "def f(a,\n      b):")]));
        // Decorated: the scope is the function itself.
        let fixture = "@cache\ndef f():\n    x = 1$0\n";
        assert_eq!(scopes_at(Language::Python, fixture), sc(&[("function", "def f():")]));
    }

    #[test]
    fn top_level_lines() {
        let t = tree(Language::Rust, RUST_ITEMS);
        assert_eq!(top_level_item_lines(Language::Rust, &t), vec![0, 2, 3, 4, 6, 7, 12, 14, 22, 28, 34, 42]);
        let t = tree(Language::Python, PY_ITEMS);
        assert_eq!(top_level_item_lines(Language::Python, &t), vec![0, 2, 3, 5, 20, 24]);
    }

    #[test]
    fn identifiers_nearest_last_use_first() {
        let src = "fn f(cfg: Config) -> u8 {\n    let a = cfg.limit;\n    let b = helper(a, cfg);\n    b.max$0\n}\n";
        let (src, at) = cursor(src);
        let t = tree(Language::Rust, &src);
        let line1 = src.find("    let a").unwrap();
        assert_eq!(identifiers_in(Language::Rust, &t, &src, line1..at), ["max", "b", "cfg", "a", "helper", "limit"]);
        // The whole function: the parameter and type names too.
        assert_eq!(identifiers_in(Language::Rust, &t, &src, 0..src.len()), ["max", "b", "cfg", "a", "helper", "limit", "Config", "f"]);
        // A node cut by the range's start is left out.
        let mid = src.find("helper").unwrap() + 2;
        assert_eq!(identifiers_in(Language::Rust, &t, &src, mid..at), ["max", "b", "cfg", "a"]);

        let src = "import os\nclass A:\n    def f(self):\n        return os.path.join(self.root, name)\n";
        let t = tree(Language::Python, src);
        let from = src.find("return").unwrap();
        assert_eq!(identifiers_in(Language::Python, &t, src, from..src.len()), ["name", "root", "self", "join", "path", "os"]);
        assert!(identifiers_in(Language::PlainText, &t, src, 0..src.len()).is_empty());
    }

    fn bound(lang: Language, src: &str) -> Vec<String> {
        let mut v: Vec<String> = bindings(lang, &tree(lang, src), src).into_iter().collect();
        v.sort();
        v
    }

    #[test]
    fn python_bindings_everywhere_but_imports() {
        let src = r#"import sys
from billing.tax import compute_tax
input = sys.stdin.readline

class Solver(Base):
    limit: int = 3

    def solve(self, n, k=1, *args, scale: float = 1.0, flag: bool, **kw):
        self.count = 0
        total, (a, b) = 0, (1, 2)
        [p, q] = [1, 2]
        for i, x in enumerate(args):
            total += x
        squares = [y * y for y in range(n)]
        with open("f") as fh, lock:
            pass
        try:
            pass
        except ValueError as err:
            pass
        if (m := len(squares)) > 2:
            pass
        f = lambda u, v=2: u + v
        obj.attr = compute_tax(total)
        return helper(total)
"#;
        assert_eq!(
            bound(Language::Python, src),
            strings(&[
                "Solver", "a", "args", "attr", "b", "count", "err", "f", "fh", "flag", "i", "input", "k", "kw", "limit", "m", "n", "p",
                "q", "scale", "self", "solve", "squares", "total", "u", "v", "x", "y",
            ])
        );
    }

    #[test]
    fn rust_bindings_everywhere_but_uses() {
        let src = r#"use crate::config::Config;
use std::collections::HashMap;
mod util;
const LIMIT: usize = 3;
struct Point<T> { x: T, y: T }
enum Shape { Circle(f64), Empty }
trait Area { type Unit; fn area(&self) -> f64; }
macro_rules! square { ($x:expr) => { $x * $x } }

fn run<const N: usize>(cfg: &Config, mut count: u8, (left, right): (u8, u8)) -> u8 {
    let total = util::helper(cfg);
    let (a, mut b) = (1, 2);
    let Point { x, y: py } = origin();
    let [first, .., last] = [1, 2, 3];
    for (i, item) in items.iter().enumerate() {}
    if let Some(found) = lookup(total) {}
    while let Some(ref r) = next() {}
    match shape {
        Shape::Circle(radius) => {}
        whole @ Shape::Empty => {}
        other => {}
    }
    let add = |p, q: u8| p + q;
    let &z = &1;
    total
}
"#;
        assert_eq!(
            bound(Language::Rust, src),
            strings(&[
                "Area", "Circle", "Empty", "LIMIT", "N", "Point", "Shape", "T", "Unit", "a", "add", "area", "b", "cfg", "count", "first",
                "found", "i", "item", "last", "left", "other", "p", "py", "q", "r", "radius", "right", "run", "square", "total", "util",
                "whole", "x", "y", "z",
            ])
        );
    }

    #[test]
    fn builtins_are_data() {
        for name in ["input", "print", "len", "range", "str", "int", "list", "dict", "open", "sorted", "map", "count"] {
            assert!(is_builtin(Language::Python, name), "{name}");
        }
        for name in [
            "Vec", "String", "Option", "Some", "None", "Ok", "Err", "Box", "println", "format", "len", "push", "iter", "map", "collect",
            "unwrap", "clone",
        ] {
            assert!(is_builtin(Language::Rust, name), "{name}");
        }
        for name in ["helper", "compute_tax", "main", "solve", "Config", "new", "#"] {
            assert!(!is_builtin(Language::Python, name) && !is_builtin(Language::Rust, name), "{name}");
        }
        assert!(!is_builtin(Language::Python, "Vec") && !is_builtin(Language::PlainText, "len"));
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn opens(lang: Language, fixture: &str) -> bool {
        let (src, at) = cursor(fixture);
        let t = tree(lang, &src);
        opens_block(lang, &t, &src, at)
    }

    #[test]
    fn rust_block_openers() {
        let r = Language::Rust;
        assert!(opens(r, "fn f() {$0}\n"));
        assert!(opens(r, "fn f() {\n    $0\n}\n"));
        assert!(opens(r, "fn f() {\n    if x {\n        $0\n    }\n}\n"));
        assert!(opens(r, "fn f() {\n    for i in 0..3 {$0\n}\n"));
        assert!(opens(r, "impl A {\n    $0\n}\n"));
        assert!(opens(r, "fn f(x: u8) {\n    match x {\n        $0\n    }\n}\n"));
        // Unclosed at the end of the file: the parser gives up (ERROR).
        assert!(opens(r, "fn a() {}\nfn f() {\n    $0"));
        // Not after an opener.
        assert!(!opens(r, "fn f() {\n    let x = 1;\n    $0\n}\n"));
        assert!(!opens(r, "fn f() {\n    let x = g($0);\n}\n"));
        assert!(!opens(r, "fn f() {}\n$0\n"));
        assert!(!opens(r, "fn f() {\n    let x = 1;$0\n}\n"));
        assert!(!opens(r, "fn f() {}$0\n"));
        // A struct literal is not a block.
        assert!(!opens(r, "fn f() {\n    let p = Point {$0};\n}\n"));
    }

    #[test]
    fn python_block_openers() {
        let p = Language::Python;
        assert!(opens(p, "def f():$0"));
        assert!(opens(p, "def f():\n    $0"));
        assert!(opens(p, "def f(a, b) -> int:\n    $0\n\ndef g():\n    pass\n"));
        assert!(opens(p, "x = 1\nif x:$0\n"));
        assert!(opens(p, "for i in range(3):\n    $0\nprint(1)\n"));
        assert!(opens(p, "class A:\n    def f(self):\n        $0\n"));
        assert!(opens(p, "try:\n    $0\n"));
        assert!(opens(p, "while True:  # forever\n    $0\n"));
        assert!(opens(p, "with open(p) as f:\n    $0\n"));
        assert!(!opens(p, "def f():\n    return 1$0\n"));
        assert!(!opens(p, "def f():\n    return 1\n$0"));
        assert!(!opens(p, "d = {1: $0}\n"));
        assert!(!opens(p, "x = a[1:$0]\n"));
        assert!(!opens(p, "x = 1$0\n"));
        let t = tree(p, "def f():");
        assert!(!opens_block(Language::PlainText, &t, "def f():", 8));
        assert!(opens_block(p, &t, "def f():", 8));
    }

    #[test]
    fn problems_counted() {
        assert_eq!(problem_count(&tree(Language::Rust, RUST_ITEMS)), 0);
        assert_eq!(problem_count(&tree(Language::Python, PY_ITEMS)), 0);
        assert!(problem_count(&tree(Language::Rust, "fn f( {\n let = ;\n")) >= 1);
        // A missing `)`.
        let t = tree(Language::Python, "print(1\n");
        assert!(problem_count(&t) >= 1);
        assert!(parse(Language::PlainText, "x").is_none());
    }

    const TS_ITEMS: &str = r#"import { Config, load as loadConfig } from "./config";
import * as path from "node:path";
import Default from '../lib/util';
import fs = require("fs");
const { join } = require("./join");

export interface Shape {
    area(): number;
    name: string;
}

export type Id = string | number;

enum Color { Red, Green }

export abstract class Base {
    abstract size(): number;
}

export class Circle extends Base implements Shape {
    name = "circle";
    constructor(private r: number) { super(); }
    area(): number {
        return Math.PI * this.r ** 2;
    }
    size() { return 1; }
}

export function describe(s: Shape, verbose?: boolean): string {
    return s.name;
}

export const double = (x: number): number => x * 2;
const LIMIT = 10;
"#;

    #[test]
    fn typescript_definitions_and_imports() {
        let ts = Language::TypeScript;
        assert_eq!(
            defs(ts, TS_ITEMS),
            owned(&[
                ("Shape", "trait", 6),
                ("area", "method", 7),
                ("name", "attribute", 8),
                ("Id", "type", 11),
                ("Color", "enum", 13),
                ("Base", "class", 15),
                ("size", "method", 16),
                ("Circle", "class", 19),
                ("name", "attribute", 20),
                ("constructor", "method", 21),
                ("area", "method", 22),
                ("size", "method", 25),
                ("describe", "function", 28),
                ("double", "function", 32),
                ("LIMIT", "constant", 33),
            ])
        );
        let t = tree(ts, TS_ITEMS);
        let all = definitions(ts, &t, TS_ITEMS);
        let sig = |name: &str| all.iter().find(|d| d.name == name).unwrap().signature.clone();
        // (An exported item is the declaration in the export statement.)
        assert_eq!(sig("describe"), "function describe(s: Shape, verbose?: boolean): string");
        assert_eq!(sig("Circle"), "class Circle extends Base implements Shape");
        let got: Vec<_> = imports(ts, &t, TS_ITEMS).into_iter().map(|i| (i.start_line, i.module, i.names)).collect();
        assert_eq!(
            got,
            vec![
                imp(0, Some("./config"), &["Config", "loadConfig"]),
                imp(1, Some("node:path"), &["path"]),
                imp(2, Some("../lib/util"), &["Default"]),
                imp(3, Some("fs"), &["fs"]),
                imp(4, Some("./join"), &["join"]),
            ]
        );
        // The same queries serve TSX.
        let tsx = "import React from 'react';\nexport function App(p: Props) {\n  return <div>{p.title}</div>;\n}\n";
        assert_eq!(defs(Language::Tsx, tsx), owned(&[("App", "function", 1)]));
        assert_eq!(imports(Language::Tsx, &tree(Language::Tsx, tsx), tsx)[0].names, ["React"]);
    }

    #[test]
    fn javascript_definitions_and_imports() {
        let js = Language::JavaScript;
        let src = r#"const fs = require('fs');
const { helper, other: renamed } = require("./util");
import def, { a } from "./mod.js";

class Stack {
  items = [];
  push(x) { this.items.push(x); }
}

function sum(xs) {
  return xs.reduce((a, b) => a + b, 0);
}

const mean = (xs) => sum(xs) / xs.length;
let count = 0;
module.exports = { sum, mean };
"#;
        assert_eq!(
            defs(js, src),
            owned(&[
                ("Stack", "class", 4),
                ("items", "attribute", 5),
                ("push", "method", 6),
                ("sum", "function", 9),
                ("mean", "function", 13),
                ("count", "constant", 14),
            ])
        );
        let got: Vec<_> = imports(js, &tree(js, src), src).into_iter().map(|i| (i.start_line, i.module, i.names)).collect();
        assert_eq!(
            got,
            vec![imp(0, Some("fs"), &["fs"]), imp(1, Some("./util"), &["helper", "renamed"]), imp(2, Some("./mod.js"), &["def", "a"])]
        );
        // Required names are imports, not bindings; declared ones are bound.
        let b = bound(js, src);
        assert!(!b.contains(&"fs".to_string()) && !b.contains(&"helper".to_string()), "{b:?}");
        for n in ["Stack", "sum", "mean", "count", "xs", "x", "a", "b"] {
            assert!(b.contains(&n.to_string()), "{n}: {b:?}");
        }
    }

    #[test]
    fn go_definitions_and_imports() {
        let go = Language::Go;
        let src = r#"package store

import (
	"fmt"
	u "example.com/app/pkg/util"
)
import "strings"

const Limit = 10

type Item struct {
	Name string
}

type Store interface {
	Get(id int) Item
}

func (s *memStore) Get(id int) Item {
	return s.items[id]
}

func New(names ...string) *memStore {
	for i, n := range names {
		fmt.Println(i, u.Clean(n), strings.ToUpper(n))
	}
	return nil
}
"#;
        assert_eq!(
            defs(go, src),
            owned(&[
                ("Limit", "constant", 8),
                ("Item", "struct", 10),
                ("Name", "attribute", 11),
                ("Store", "trait", 14),
                ("Get", "method", 15),
                ("Get", "method", 18),
                ("New", "function", 22),
            ])
        );
        let got: Vec<_> = imports(go, &tree(go, src), src).into_iter().map(|i| (i.start_line, i.module, i.names)).collect();
        // The statement, then each spec in it.
        assert_eq!(
            got,
            vec![
                imp(2, None, &[]),
                imp(3, Some("fmt"), &[]),
                imp(4, Some("example.com/app/pkg/util"), &["u"]),
                imp(6, None, &[]),
                imp(6, Some("strings"), &[]),
            ]
        );
        let b = bound(go, src);
        for n in ["Limit", "Item", "Name", "Store", "Get", "s", "id", "New", "names", "i", "n"] {
            assert!(b.contains(&n.to_string()), "{n}: {b:?}");
        }
        assert!(!b.contains(&"u".to_string()) && !b.contains(&"fmt".to_string()));
    }

    #[test]
    fn c_and_cpp_definitions_and_includes() {
        let c = Language::C;
        let src = "#include <stdio.h>\n#include \"util.h\"\n#define MAX 10\n\ntypedef struct point { int x; int y; } point_t;\n\nstatic int count = 0;\nint add(int a, int b);\n\nchar *dup(const char *s) {\n    return 0;\n}\n\nint add(int a, int b) {\n    return a + b;\n}\n";
        assert_eq!(
            defs(c, src),
            owned(&[
                ("MAX", "constant", 2),
                ("point_t", "type", 4),
                ("point", "struct", 4),
                ("count", "constant", 6),
                ("add", "function", 7),
                ("dup", "function", 9),
                ("add", "function", 13),
            ])
        );
        let got: Vec<_> = imports(c, &tree(c, src), src).into_iter().map(|i| (i.start_line, i.module, i.names)).collect();
        assert_eq!(got, vec![imp(0, Some("<stdio.h>"), &[]), imp(1, Some("util.h"), &[])]);

        let cpp = Language::Cpp;
        let src = r#"#include <vector>
#include "shape.h"
using namespace std;
using geo::Point;

namespace geo {
class Circle : public Shape {
public:
    explicit Circle(double r) : r_(r) {}
    double area() const override;
private:
    double r_;
};

double Circle::area() const {
    return 3.14 * r_ * r_;
}
}

template <typename T>
T largest(const vector<T>& xs) {
    T best = xs[0];
    for (const auto& x : xs) {
        if (x > best) best = x;
    }
    return best;
}
"#;
        assert_eq!(
            defs(cpp, src),
            owned(&[
                ("geo", "module", 5),
                ("Circle", "class", 6),
                ("Circle", "method", 8),
                ("area", "method", 9),
                ("r_", "attribute", 11),
                ("area", "method", 14),
                ("largest", "function", 20),
            ])
        );
        let got: Vec<_> = imports(cpp, &tree(cpp, src), src).into_iter().map(|i| (i.start_line, i.module, i.names)).collect();
        assert_eq!(
            got,
            vec![imp(0, Some("<vector>"), &[]), imp(1, Some("shape.h"), &[]), imp(2, Some("std"), &[]), imp(3, Some("geo"), &["Point"])]
        );
        let b = bound(cpp, src);
        for n in ["Circle", "area", "r", "r_", "largest", "xs", "best", "x", "T", "geo"] {
            assert!(b.contains(&n.to_string()), "{n}: {b:?}");
        }
    }

    #[test]
    fn java_definitions_and_imports() {
        let java = Language::Java;
        let src = r#"package com.acme.shop;

import java.util.*;
import com.acme.util.Strings;
import static com.acme.util.Math.clamp;

public class Cart implements Priced {
    public static final int LIMIT = 10;
    private final List<Item> items = new ArrayList<>();

    public Cart() {}

    public int total(int discount) {
        int sum = 0;
        for (Item it : items) {
            sum += it.price();
        }
        return clamp(sum - discount);
    }
}

interface Priced { int total(int discount); }
"#;
        assert_eq!(
            defs(java, src),
            owned(&[
                ("Cart", "class", 6),
                ("LIMIT", "constant", 7),
                ("items", "attribute", 8),
                ("Cart", "method", 10),
                ("total", "method", 12),
                ("Priced", "trait", 21),
                ("total", "method", 21),
            ])
        );
        let got: Vec<_> = imports(java, &tree(java, src), src).into_iter().map(|i| (i.start_line, i.module, i.names)).collect();
        assert_eq!(
            got,
            vec![
                imp(2, Some("java.util"), &[]),
                imp(3, Some("com.acme.util"), &["Strings"]),
                imp(4, Some("com.acme.util.Math"), &["clamp"]),
            ]
        );
        let b = bound(java, src);
        for n in ["Cart", "LIMIT", "items", "total", "discount", "sum", "it", "Priced"] {
            assert!(b.contains(&n.to_string()), "{n}: {b:?}");
        }
    }

    #[test]
    fn brace_languages_block_openers() {
        for (lang, yes, no) in [
            (
                Language::TypeScript,
                vec![
                    "function f(x: number) {$0}\n",
                    "if (x) {\n    $0\n}\n",
                    "class A {\n  m() {\n    $0\n  }\n}\n",
                    "const f = () => {\n  $0\n};\n",
                ],
                vec!["const o = {$0};\n", "f(x);\n$0\n", "function f() {\n  return 1;$0\n}\n"],
            ),
            (
                Language::JavaScript,
                vec!["for (const x of xs) {\n  $0\n}\n", "function f() {\n  $0"],
                vec!["const o = { a: $0 };\n", "let x = 1;$0\n"],
            ),
            (
                Language::Go,
                vec!["func f() {\n\t$0\n}\n", "func f() {\n\tfor i := range xs {\n\t\t$0\n\t}\n}\n", "type T struct {\n\t$0\n}\n"],
                vec!["func f() {\n\tx := T{$0}\n}\n", "func f() {\n\tx := 1\n\t$0\n}\n"],
            ),
            (
                Language::C,
                vec!["int f(void) {\n    $0\n}\n", "int f(int n) {\n    while (n) {\n        $0\n    }\n}\n"],
                vec!["int a[] = {$0};\n", "int f(void) {\n    int x = 1;$0\n}\n"],
            ),
            (
                Language::Cpp,
                vec![
                    "int f(vector<int> v) {\n    for (auto x : v) {\n        $0\n    }\n}\n",
                    "class A {\n    $0\n};\n",
                    "auto g = [](int x) {\n    $0\n};\n",
                ],
                vec!["vector<int> v = {$0};\n", "int f() {\n    return 1;$0\n}\n"],
            ),
            (
                Language::Java,
                vec![
                    "class A {\n    int f() {\n        $0\n    }\n}\n",
                    "class A {\n    void f() {\n        try {\n            $0\n        }\n    }\n}\n",
                ],
                vec!["class A {\n    int[] a = {$0};\n}\n", "class A {\n    int f() {\n        return 1;$0\n    }\n}\n"],
            ),
        ] {
            for f in yes {
                assert!(opens(lang, f), "{lang:?} opens: {f}");
            }
            for f in no {
                assert!(!opens(lang, f), "{lang:?} does not open: {f}");
            }
        }
    }

    #[test]
    fn brace_languages_enclosing_scopes() {
        let fixture = "export class A {\n  m(x: number): number {\n    return x + $0;\n  }\n}\n";
        assert_eq!(scopes_at(Language::TypeScript, fixture), sc(&[("method", "m(x: number): number"), ("class", "class A")]));
        let fixture = "func (s *S) Run(n int) error {\n\tgo func() {\n\t\t$0\n\t}()\n\treturn nil\n}\n";
        assert_eq!(scopes_at(Language::Go, fixture), sc(&[("closure", "func()"), ("method", "func (s *S) Run(n int) error")]));
        let fixture = "namespace n {\nstruct P {\n    int f(int a) const {\n        return $0;\n    }\n};\n}\n";
        assert_eq!(
            scopes_at(Language::Cpp, fixture),
            sc(&[("function", "int f(int a) const"), ("struct", "struct P"), ("module", "namespace n")])
        );
        let fixture = "class A {\n    public static int f(int a) {\n        return $0;\n    }\n}\n";
        assert_eq!(scopes_at(Language::Java, fixture), sc(&[("method", "public static int f(int a)"), ("class", "class A")]));
    }

    #[test]
    fn languages_without_grammar_give_nothing() {
        let t = tree(Language::Rust, RUST_ITEMS);
        let p = Language::PlainText;
        assert!(definitions(p, &t, RUST_ITEMS).is_empty());
        assert!(imports(p, &t, RUST_ITEMS).is_empty());
        assert!(enclosing_scopes(p, &t, RUST_ITEMS, 10).is_empty());
    }
}
