//! The benchmark's problem sets: HumanEval-infilling (Python) and masked
//! lines of HumanEval-X Rust, each turned into a document, a cursor and the
//! test program a fill is scored with.

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
}

impl SetKind {
    pub fn parse(s: &str) -> anyhow::Result<SetKind> {
        Ok(match s.trim() {
            "single" => SetKind::Single,
            "multi" => SetKind::Multi,
            "span" => SetKind::Span,
            "rust" => SetKind::Rust,
            other => bail!("unknown set {other:?} (single, multi, span, rust)"),
        })
    }

    pub fn key(self) -> &'static str {
        match self {
            SetKind::Single => "single",
            SetKind::Multi => "multi",
            SetKind::Span => "span",
            SetKind::Rust => "rust",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            SetKind::Single => "HumanEval SingleLine",
            SetKind::Multi => "HumanEval MultiLine",
            SetKind::Span => "HumanEval RandomSpanLight",
            SetKind::Rust => "HumanEval-X Rust lines",
        }
    }

    /// Problems per set when `--limit` is not given.
    pub fn default_limit(self) -> Option<usize> {
        match self {
            SetKind::Single => Some(200),
            SetKind::Multi => Some(150),
            SetKind::Span => None,
            SetKind::Rust => Some(150),
        }
    }

    /// Sets where the hole is one line: llama-server is asked with
    /// `stop: ["\n"]`, as llama.vim asks.
    pub fn single_line(self) -> bool {
        matches!(self, SetKind::Single | SetKind::Rust)
    }

    fn file(self) -> &'static str {
        match self {
            SetKind::Single => "human-eval-infilling/HumanEval-SingleLineInfilling.jsonl.gz",
            SetKind::Multi => "human-eval-infilling/HumanEval-MultiLineInfilling.jsonl.gz",
            SetKind::Span => "human-eval-infilling/HumanEval-RandomSpanInfillingLight.jsonl.gz",
            SetKind::Rust => "humaneval-x-rust/humaneval_rust.jsonl.gz",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Python,
    Rust,
}

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
        SetKind::Rust => rust_tasks(&rows)?,
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

/// Crates the HumanEval-X Rust header imports; rustc is called directly, so
/// only problems that need none of them are kept.
const CRATE_USES: [&str; 3] = ["use rand::Rng;", "use regex::Regex;", "use md5;"];
const CRATE_MARKERS: [&str; 4] = ["rand::", "Regex", "md5::", "regex::"];

/// A line worth masking: not blank, not only braces/brackets/punctuation,
/// not a comment.
fn maskable(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.chars().all(|c| "{}()[];,".contains(c)) && !t.starts_with("//")
}

/// HumanEval-X Rust: the document is the header's `use` lines (without the
/// external crates), the problem's comment, the signature and the canonical
/// body with one line's content removed (its indentation kept), the cursor
/// after the indentation. The tests module is appended only to compile.
fn rust_tasks(rows: &[Value]) -> anyhow::Result<(Vec<Task>, SetInfo)> {
    let mut info = SetInfo::default();
    let mut tasks = Vec::new();
    for r in rows {
        let id = field(r, "task_id")?;
        let decl = field(r, "declaration")?;
        let solution = field(r, "canonical_solution")?;
        let test = field(r, "test")?;
        let comment = field(r, "prompt")?;
        let body_and_tests = format!("{solution}\n{test}");
        if let Some(m) = CRATE_MARKERS.iter().find(|m| body_and_tests.contains(*m)) {
            info.skipped.push(format!("{id} (uses {})", m.trim_end_matches(':')));
            continue;
        }
        let decl: String = decl.split_inclusive('\n').filter(|l| !CRATE_USES.contains(&l.trim())).collect();
        // The comment goes right above the function it documents.
        let head = match decl.rfind("\nfn ") {
            Some(i) => format!("{}{}{}", &decl[..i + 1], comment.trim_start_matches('\n'), &decl[i + 1..]),
            None => format!("{comment}{decl}"),
        };
        let doc_full = format!("{head}{solution}");
        let tail = format!("\n{test}\n");
        let mut offset = head.len();
        for (n, line) in solution.split_inclusive('\n').enumerate() {
            let content = line.trim_end_matches(['\n', '\r']);
            if maskable(content) {
                let indent = content.len() - content.trim_start().len();
                let start = offset + indent;
                let end = offset + content.len();
                let doc = format!("{}{}", &doc_full[..start], &doc_full[end..]);
                tasks.push(Task {
                    set: SetKind::Rust,
                    id: format!("{id}/L{n}"),
                    lang: Lang::Rust,
                    doc,
                    cursor: start,
                    tail: tail.clone(),
                    expected: content[indent..].to_string(),
                });
            }
            offset += line.len();
        }
    }
    Ok((tasks, info))
}
