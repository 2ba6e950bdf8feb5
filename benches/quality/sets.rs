//! The benchmark's problem sets: HumanEval-infilling (Python) and masked
//! lines of HumanEval-X (Rust, C++, Go, Java, JavaScript), each turned into
//! a document, a cursor and the test program a fill is scored with.

use anyhow::{bail, Context};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    Single,
    Multi,
    Span,
    Rust,
    Cpp,
    Go,
    Java,
    Js,
}

impl SetKind {
    pub fn parse(s: &str) -> anyhow::Result<SetKind> {
        Ok(match s.trim() {
            "single" => SetKind::Single,
            "multi" => SetKind::Multi,
            "span" => SetKind::Span,
            "rust" => SetKind::Rust,
            "cpp" => SetKind::Cpp,
            "go" => SetKind::Go,
            "java" => SetKind::Java,
            "js" => SetKind::Js,
            other => bail!("unknown set {other:?} (single, multi, span, rust, cpp, go, java, js)"),
        })
    }

    pub fn key(self) -> &'static str {
        match self {
            SetKind::Single => "single",
            SetKind::Multi => "multi",
            SetKind::Span => "span",
            SetKind::Rust => "rust",
            SetKind::Cpp => "cpp",
            SetKind::Go => "go",
            SetKind::Java => "java",
            SetKind::Js => "js",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            SetKind::Single => "HumanEval SingleLine",
            SetKind::Multi => "HumanEval MultiLine",
            SetKind::Span => "HumanEval RandomSpanLight",
            SetKind::Rust => "HumanEval-X Rust lines",
            SetKind::Cpp => "HumanEval-X C++ lines",
            SetKind::Go => "HumanEval-X Go lines",
            SetKind::Java => "HumanEval-X Java lines",
            SetKind::Js => "HumanEval-X JavaScript lines",
        }
    }

    /// Problems per set when `--limit` is not given.
    pub fn default_limit(self) -> Option<usize> {
        match self {
            SetKind::Single => Some(200),
            SetKind::Multi => Some(150),
            SetKind::Span => None,
            SetKind::Rust => Some(150),
            SetKind::Cpp | SetKind::Go | SetKind::Java | SetKind::Js => Some(100),
        }
    }

    /// Sets where the hole is one line: llama-server is asked with
    /// `stop: ["\n"]`, as llama.vim asks.
    pub fn single_line(self) -> bool {
        self == SetKind::Single || self.masked_lines()
    }

    /// Sets of masked lines of HumanEval-X (one task per maskable line).
    pub fn masked_lines(self) -> bool {
        matches!(self, SetKind::Rust | SetKind::Cpp | SetKind::Go | SetKind::Java | SetKind::Js)
    }

    fn file(self) -> &'static str {
        match self {
            SetKind::Single => "human-eval-infilling/HumanEval-SingleLineInfilling.jsonl.gz",
            SetKind::Multi => "human-eval-infilling/HumanEval-MultiLineInfilling.jsonl.gz",
            SetKind::Span => "human-eval-infilling/HumanEval-RandomSpanInfillingLight.jsonl.gz",
            SetKind::Rust => "humaneval-x-rust/humaneval_rust.jsonl.gz",
            SetKind::Cpp => "humaneval-x/humaneval_cpp.jsonl.gz",
            SetKind::Go => "humaneval-x/humaneval_go.jsonl.gz",
            SetKind::Java => "humaneval-x/humaneval_java.jsonl.gz",
            SetKind::Js => "humaneval-x/humaneval_js.jsonl.gz",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Python,
    Rust,
    Cpp,
    Go,
    Java,
    JavaScript,
}

impl Lang {
    /// The file extension of its documents.
    pub fn ext(self) -> &'static str {
        match self {
            Lang::Python => "py",
            Lang::Rust => "rs",
            Lang::Cpp => "cpp",
            Lang::Go => "go",
            Lang::Java => "java",
            Lang::JavaScript => "js",
        }
    }

    /// The LSP `languageId` of its documents.
    pub fn lsp_id(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Rust => "rust",
            Lang::Cpp => "cpp",
            Lang::Go => "go",
            Lang::Java => "java",
            Lang::JavaScript => "javascript",
        }
    }
}

/// In a Go task's program, the line between the package's file and its
/// test file (`go test` takes tests from a `_test.go` file only).
pub const GO_TEST_FILE: &str = "\n// ---- main_test.go ----\n";

/// One completion request and how to score its fill.
#[derive(Debug, Clone)]
pub struct Task {
    pub set: SetKind,
    pub id: String,
    pub lang: Lang,
    /// The document as the editor holds it, the hole empty.
    pub doc: String,
    /// Byte offset of the cursor (the hole) in `doc`.
    pub cursor: usize,
    /// Appended to the filled document to test it.
    pub tail: String,
    /// The reference fill: the program with it must pass.
    pub expected: String,
}

impl Task {
    /// The document with `fill` inserted at the cursor, plus the tests.
    pub fn program(&self, fill: &str) -> String {
        let mut p = String::with_capacity(self.doc.len() + fill.len() + self.tail.len());
        p.push_str(&self.doc[..self.cursor]);
        p.push_str(fill);
        p.push_str(&self.doc[self.cursor..]);
        p.push_str(&self.tail);
        p
    }

    /// The first non-blank line after the cursor, trimmed (what the "plain
    /// cut" stops at).
    pub fn suffix_first_line(&self) -> Option<&str> {
        self.doc[self.cursor..].split('\n').map(str::trim).find(|l| !l.is_empty())
    }
}

fn read_jsonl_gz(path: &Path) -> anyhow::Result<Vec<Value>> {
    let out = Command::new("gzip").arg("-dc").arg(path).output().with_context(|| format!("cannot run gzip -dc {}", path.display()))?;
    if !out.status.success() {
        bail!("gzip -dc {} failed: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8(out.stdout)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("bad JSON line in {}", path.display())))
        .collect()
}

/// A permutation of 0..n: Python's `random.Random(seed).shuffle` (the
/// sampling the bench-data README's reference figure uses).
pub fn python_shuffle(n: usize, seed: u64) -> anyhow::Result<Vec<usize>> {
    let code = format!("import random\nl = list(range({n}))\nrandom.Random({seed}).shuffle(l)\nprint(' '.join(map(str, l)))\n");
    let out = Command::new("python3").args(["-c", &code]).output().context("cannot run python3")?;
    if !out.status.success() {
        bail!("python3 shuffle failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Vec<usize> = String::from_utf8(out.stdout)?.split_whitespace().map(|s| s.parse()).collect::<Result<_, _>>()?;
    if v.len() != n {
        bail!("python3 shuffle returned {} numbers for {n}", v.len());
    }
    Ok(v)
}

fn field<'a>(v: &'a Value, k: &str) -> anyhow::Result<&'a str> {
    v[k].as_str().with_context(|| format!("field {k} missing in {}", v["task_id"]))
}

/// What loading a set found besides its tasks.
#[derive(Debug, Default, Clone)]
pub struct SetInfo {
    /// Candidates before sampling (problems, or maskable Rust lines).
    pub population: usize,
    /// Problems left out, with the reason.
    pub skipped: Vec<String>,
}

/// Loads a set and takes `limit` tasks (all when None) from a
/// `python_shuffle(seed)` of its order.
pub fn load(kind: SetKind, data: &Path, limit: Option<usize>, seed: u64) -> anyhow::Result<(Vec<Task>, SetInfo)> {
    let rows = read_jsonl_gz(&data.join(kind.file()))?;
    let (all, mut info) = match kind {
        k if k.masked_lines() => line_tasks(k, &rows)?,
        _ => (rows.iter().map(|r| python_task(kind, r)).collect::<anyhow::Result<Vec<_>>>()?, SetInfo::default()),
    };
    info.population = all.len();
    let order = python_shuffle(all.len(), seed)?;
    let n = limit.unwrap_or(all.len()).min(all.len());
    let tasks = order[..n].iter().map(|&i| all[i].clone()).collect();
    Ok((tasks, info))
}

/// The rows of a set's data file, for benches that build tasks of their
/// own from them (`quality_server`'s cross-file set).
#[allow(dead_code)]
pub fn rows(kind: SetKind, data: &Path) -> anyhow::Result<Vec<Value>> {
    read_jsonl_gz(&data.join(kind.file()))
}

/// A HumanEval-infilling row as `load` makes it a task (Python sets only).
#[allow(dead_code)]
pub fn python_row_task(kind: SetKind, r: &Value) -> anyhow::Result<Task> {
    python_task(kind, r)
}

/// HumanEval-infilling: the document is `prompt + suffix`, the cursor
/// between them. When the hole is whole lines (the prompt ends a line and the
/// reference fill ends with a newline: every SingleLine and MultiLine
/// problem), the editor state is an empty line opened between them, the
/// cursor at its column 0: `prompt + "\n" + suffix`. Inserting a fill there
/// gives `prompt + fill + "\n" + suffix` (a fill that ends with its own
/// newline leaves a blank line, which Python ignores).
fn python_task(kind: SetKind, r: &Value) -> anyhow::Result<Task> {
    let prompt = field(r, "prompt")?;
    let suffix = field(r, "suffix")?;
    let canonical = field(r, "canonical_solution")?;
    let whole_lines = (prompt.is_empty() || prompt.ends_with('\n')) && canonical.ends_with('\n');
    let (doc, expected) = if whole_lines {
        (format!("{prompt}\n{suffix}"), canonical.strip_suffix('\n').unwrap_or(canonical).to_string())
    } else {
        (format!("{prompt}{suffix}"), canonical.to_string())
    };
    let tail = format!("\n\n{}\n\ncheck({})\n", field(r, "test")?, field(r, "entry_point")?);
    Ok(Task { set: kind, id: field(r, "task_id")?.to_string(), lang: Lang::Python, doc, cursor: prompt.len(), tail, expected })
}

/// Each line of a solution, and whether it is worth masking: not blank,
/// not only braces/brackets/punctuation, not a comment (`//`, `#` and
/// `/* ... */` across lines).
fn maskable_lines(solution: &str, lang: Lang) -> Vec<bool> {
    let mut in_block = false;
    solution
        .split_inclusive('\n')
        .map(|line| {
            let t = line.trim();
            if in_block {
                in_block = !t.contains("*/");
                return false;
            }
            if t.starts_with("/*") {
                in_block = !t.contains("*/");
                return false;
            }
            let comment = t.starts_with("//") || (lang == Lang::Python && t.starts_with('#'));
            !t.is_empty() && !t.chars().all(|c| "{}()[];,".contains(c)) && !comment
        })
        .collect()
}

/// A HumanEval-X problem as a file: the text above the solution (`head`),
/// the canonical solution, and what follows it to test it (`tail`).
struct Problem {
    id: String,
    lang: Lang,
    head: String,
    solution: String,
    tail: String,
}

/// HumanEval-X masked lines: the document is the problem's header, comment
/// and signature, and the canonical body with one line's content removed
/// (its indentation kept), the cursor after the indentation. The tests
/// follow only to run it.
fn line_tasks(kind: SetKind, rows: &[Value]) -> anyhow::Result<(Vec<Task>, SetInfo)> {
    let mut info = SetInfo::default();
    let mut tasks = Vec::new();
    for r in rows {
        let p = match kind {
            SetKind::Rust => rust_problem(r)?,
            SetKind::Cpp => Ok(cpp_problem(r)?),
            SetKind::Go => Ok(go_problem(r)?),
            SetKind::Java => Ok(java_problem(r)?),
            SetKind::Js => Ok(js_problem(r)?),
            _ => bail!("{} is not a set of masked lines", kind.key()),
        };
        let p = match p {
            Ok(p) => p,
            Err(skipped) => {
                info.skipped.push(skipped);
                continue;
            }
        };
        let doc_full = format!("{}{}", p.head, p.solution);
        let mut offset = p.head.len();
        for ((n, line), maskable) in p.solution.split_inclusive('\n').enumerate().zip(maskable_lines(&p.solution, p.lang)) {
            let content = line.trim_end_matches(['\n', '\r']);
            if maskable {
                let indent = content.len() - content.trim_start().len();
                let start = offset + indent;
                let end = offset + content.len();
                tasks.push(Task {
                    set: kind,
                    id: format!("{}/L{n}", p.id),
                    lang: p.lang,
                    doc: format!("{}{}", &doc_full[..start], &doc_full[end..]),
                    cursor: start,
                    tail: p.tail.clone(),
                    expected: content[indent..].to_string(),
                });
            }
            offset += line.len();
        }
    }
    Ok((tasks, info))
}

/// Crates the HumanEval-X Rust header imports; rustc is called directly, so
/// only problems that need none of them are kept.
const CRATE_USES: [&str; 3] = ["use rand::Rng;", "use regex::Regex;", "use md5;"];
const CRATE_MARKERS: [&str; 4] = ["rand::", "Regex", "md5::", "regex::"];

/// Rust: the header's `use` lines (without the external crates), the
/// problem's comment right above the function, the signature. The tests
/// module is appended only to compile. Err: skipped, and why.
fn rust_problem(r: &Value) -> anyhow::Result<Result<Problem, String>> {
    let id = field(r, "task_id")?;
    let decl = field(r, "declaration")?;
    let solution = field(r, "canonical_solution")?;
    let test = field(r, "test")?;
    let comment = field(r, "prompt")?;
    let body_and_tests = format!("{solution}\n{test}");
    if let Some(m) = CRATE_MARKERS.iter().find(|m| body_and_tests.contains(*m)) {
        return Ok(Err(format!("{id} (uses {})", m.trim_end_matches(':'))));
    }
    let decl: String = decl.split_inclusive('\n').filter(|l| !CRATE_USES.contains(&l.trim())).collect();
    // The comment goes right above the function it documents.
    let head = match decl.rfind("\nfn ") {
        Some(i) => format!("{}{}{}", &decl[..i + 1], comment.trim_start_matches('\n'), &decl[i + 1..]),
        None => format!("{comment}{decl}"),
    };
    Ok(Ok(Problem { id: id.to_string(), lang: Lang::Rust, head, solution: solution.to_string(), tail: format!("\n{test}\n") }))
}

/// C++: the problem's comment, then its declaration (the includes, `using
/// namespace std;`, the signature); the test's `main` follows.
fn cpp_problem(r: &Value) -> anyhow::Result<Problem> {
    let prompt = field(r, "prompt")?;
    let decl = field(r, "declaration")?;
    // The prompt is the comment, then the declaration's first lines.
    let comment = match prompt.find("*/") {
        Some(i) if prompt.trim_start().starts_with("/*") => &prompt[..i + 2],
        _ => "",
    };
    let head = if comment.is_empty() { decl.to_string() } else { format!("{comment}\n{}", decl.trim_start_matches('\n')) };
    Ok(Problem {
        id: field(r, "task_id")?.to_string(),
        lang: Lang::Cpp,
        head,
        solution: field(r, "canonical_solution")?.to_string(),
        tail: format!("\n{}\n", field(r, "test")?),
    })
}

/// Go: `package main`, the problem's imports, comment and signature; the
/// tests go to a `_test.go` file of the package (after `GO_TEST_FILE`).
fn go_problem(r: &Value) -> anyhow::Result<Problem> {
    Ok(Problem {
        id: field(r, "task_id")?.to_string(),
        lang: Lang::Go,
        head: format!("package main\n\n{}", field(r, "prompt")?),
        solution: field(r, "canonical_solution")?.to_string(),
        tail: format!("{GO_TEST_FILE}{}\n{}\n", field(r, "test_setup")?, field(r, "test")?),
    })
}

/// Java: the imports, `class Solution {`, the comment and the method's
/// signature; the test's `Main` class follows in the same file.
fn java_problem(r: &Value) -> anyhow::Result<Problem> {
    Ok(Problem {
        id: field(r, "task_id")?.to_string(),
        lang: Lang::Java,
        head: field(r, "prompt")?.to_string(),
        solution: field(r, "canonical_solution")?.to_string(),
        tail: format!("\n{}\n", field(r, "test")?),
    })
}

/// `console.assert` only prints: the tests are made to throw instead.
const JS_ASSERT: &str = "console.assert = (ok, ...msg) => { if (!ok) throw new Error(`Assertion failed ${msg.join(' ')}`); };\n";

/// JavaScript: the comment and the signature (`const f = (a) => {`); the
/// tests follow, with a `console.assert` that throws.
fn js_problem(r: &Value) -> anyhow::Result<Problem> {
    Ok(Problem {
        id: field(r, "task_id")?.to_string(),
        lang: Lang::JavaScript,
        head: field(r, "prompt")?.to_string(),
        solution: field(r, "canonical_solution")?.to_string(),
        tail: format!("\n{JS_ASSERT}{}\n", field(r, "test")?),
    })
}
