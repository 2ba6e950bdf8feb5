//! The item around the cursor, per `items.scm`: what explain and refactor
//! work on when nothing is selected.

use std::ops::Range;

use tree_sitter::{Node, QueryCursor, StreamingIterator, Tree};

use super::{compiled, Language};

/// Byte range of the innermost `@item` (function, class, impl...) around
/// the cursor at `byte` (from its first byte up to, not including, its end).
///
/// An item whose parent node is an item too is taken with its parent: a
/// Python function comes with its decorators.
pub fn enclosing_item(lang: Language, tree: &Tree, src: &str, byte: usize) -> Option<Range<usize>> {
    let (_, c) = compiled(lang)?;
    let item_ix = c.items_item?;
    let mut cursor = QueryCursor::new();
    // Only the nodes around the cursor, not the whole tree.
    cursor.set_byte_range(byte..byte.saturating_add(1));
    let mut around: Vec<Node> = Vec::new();
    let mut matches = cursor.matches(&c.items, tree.root_node(), src.as_bytes());
    while let Some(m) = matches.next() {
        for cap in m.captures.iter().filter(|cap| cap.index == item_ix) {
            let n = cap.node;
            if n.start_byte() <= byte && byte < n.end_byte() && !around.iter().any(|a| a.id() == n.id()) {
                around.push(n);
            }
        }
    }
    // They all contain the cursor, so they nest: the shortest is innermost.
    let mut item = *around.iter().min_by_key(|n| n.byte_range().len())?;
    while let Some(parent) = item.parent().filter(|p| around.iter().any(|a| a.id() == p.id())) {
        item = parent;
    }
    Some(item.byte_range())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::parse;

    /// The text of the item around the `$0` cursor of `fixture`.
    fn item_at(lang: Language, fixture: &str) -> Option<String> {
        let (src, at) = crate::fixture::cursor(fixture);
        let tree = parse(lang, &src).expect("parses");
        enclosing_item(lang, &tree, &src, at).map(|r| src[r].to_string())
    }

    const RUST: &str = r#"use std::fmt;

const LIMIT: usize = 3;

#[derive(Debug)]
struct Point {
    x: u8,
}

enum Shape {
    Circle(f64),
}

trait Area {
    fn area(&self) -> f64;
}

mod inner {
    impl Point {
        fn new() -> Self {
            let f = |y: u8| {
                y + 1
            };
            Point { x: f(1) }
        }

        const ZERO: u8 = 0;
    }
}

macro_rules! square { ($x:expr) => { $x * $x } }
"#;

    const PYTHON: &str = r#"import os

LIMIT = 3

@dataclass
@frozen
class Config:
    name: str = "x"

    @property
    def label(self) -> str:
        return self.name

    def load(self, path):
        def inner():
            pass
        return inner

def main():
    return 0
"#;

    /// `RUST` or `PYTHON` with the cursor at the first occurrence of `at`.
    fn at(src: &str, at: &str) -> String {
        let i = src.find(at).unwrap_or_else(|| panic!("{at:?}"));
        format!("{}$0{}", &src[..i], &src[i..])
    }

    #[test]
    fn rust_items() {
        let r = Language::Rust;
        let item = |cursor: &str| item_at(r, &at(RUST, cursor));
        let new = "fn new() -> Self {\n            let f = |y: u8| {\n                y + 1\n            };\n            Point { x: f(1) }\n        }";
        // A closure is not an item: the function around it.
        assert_eq!(item("y + 1").as_deref(), Some(new));
        assert_eq!(item("fn new").as_deref(), Some(new));
        // Between the functions of an impl: the impl.
        assert!(item("const ZERO").unwrap().starts_with("impl Point {"));
        assert!(item("impl Point").unwrap().starts_with("impl Point {"));
        assert!(item("    impl Point").unwrap().starts_with("mod inner {"));
        assert_eq!(item("x: u8").as_deref(), Some("struct Point {\n    x: u8,\n}"));
        // An attribute is not part of the item.
        assert_eq!(item("derive"), None);
        assert_eq!(item("Circle").as_deref(), Some("enum Shape {\n    Circle(f64),\n}"));
        assert_eq!(item("fn area").as_deref(), Some("trait Area {\n    fn area(&self) -> f64;\n}"));
        // Outside any item, or in one the query leaves out.
        assert_eq!(item("use std"), None);
        assert_eq!(item("LIMIT"), None);
        assert_eq!(item("square"), None);
        // Right after an item's last byte: outside it.
        assert_eq!(item_at(r, "fn f() {}$0\nfn g() {}\n"), None);
        assert_eq!(item_at(r, "$0fn f() {}\n").as_deref(), Some("fn f() {}"));
    }

    #[test]
    fn python_items() {
        let p = Language::Python;
        let item = |cursor: &str| item_at(p, &at(PYTHON, cursor));
        let label = "@property\n    def label(self) -> str:\n        return self.name";
        // A decorated function comes with its decorators, from anywhere in it.
        assert_eq!(item("return self.name").as_deref(), Some(label));
        assert_eq!(item("property").as_deref(), Some(label));
        assert_eq!(item("def label").as_deref(), Some(label));
        assert_eq!(item("pass").as_deref(), Some("def inner():\n            pass"));
        assert!(item("return inner").unwrap().starts_with("def load(self, path):"));
        // The class body between methods: the class, with its decorators.
        let class = item("name: str").unwrap();
        assert!(class.starts_with("@dataclass\n@frozen\nclass Config:") && class.ends_with("return inner"), "{class}");
        assert_eq!(item("frozen"), Some(class));
        assert_eq!(item("return 0").as_deref(), Some("def main():\n    return 0"));
        assert_eq!(item("import os"), None);
        assert_eq!(item("LIMIT"), None);
    }

    #[test]
    fn no_grammar_no_item() {
        let tree = parse(Language::Rust, "fn f() {}\n").unwrap();
        assert_eq!(enclosing_item(Language::PlainText, &tree, "fn f() {}\n", 3), None);
    }

    /// The node kinds `items.scm` replaced, and how they were used: the
    /// first one among the cursor's ancestors, with a decorated definition
    /// around it.
    fn by_the_old_table(tree: &Tree, byte: usize) -> Option<Range<usize>> {
        const CONTAINERS: &[&str] = &[
            "function_definition",
            "decorated_definition",
            "class_definition",
            "function_item",
            "impl_item",
            "struct_item",
            "enum_item",
            "trait_item",
            "mod_item",
        ];
        let mut node = tree.root_node().descendant_for_byte_range(byte, byte)?;
        loop {
            if CONTAINERS.contains(&node.kind()) {
                let outer = node.parent().filter(|p| p.kind() == "decorated_definition").unwrap_or(node);
                return Some(outer.byte_range());
            }
            node = node.parent()?;
        }
    }

    #[test]
    fn same_as_the_old_table_at_every_byte() {
        for (lang, src) in [
            (Language::Rust, RUST),
            (Language::Python, PYTHON),
            (Language::Python, "@a\n@b(1)\ndef f():\n    @c\n    class K: pass\n"),
            // Code the parser could not make sense of (ERROR nodes).
            (Language::Rust, "fn a() {}\nfn f(x: u8) {\n    let y = x;\n\nimpl B { fn g( }\nstruct S { a: }\n"),
            (Language::Python, "class A:\n    def f(self:\n        pass\n@d\ndef g(): return 1\n@e\n"),
        ] {
            let tree = parse(lang, src).unwrap();
            for byte in 0..=src.len() {
                assert_eq!(enclosing_item(lang, &tree, src, byte), by_the_old_table(&tree, byte), "{lang:?} at {byte}");
            }
        }
    }
}
