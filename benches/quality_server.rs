//! Quality through the server: pass@1 of the suggestions `locode serve`
//! gives over LSP stdio, driven the way an editor drives it: every task's
//! document written into one workspace folder per set, one server per set,
//! the tasks opened one after another in the same session and asked for an
//! inline completion at the cursor. Two answers per task: the first one the
//! editor gets, and the final one (after `locode/suggestionReady`, when an
//! early answer's rest follows). See benches/README.md, "Quality through the
//! server".

#[path = "quality/common.rs"]
mod common;
#[allow(dead_code)]
#[path = "replay/lsp.rs"]
mod lsp;
#[allow(dead_code)]
#[path = "replay/peer.rs"]
mod peer;
#[path = "replay/process.rs"]
mod process;
#[path = "quality/score.rs"]
mod score;
#[path = "quality/sets.rs"]
mod sets;

use anyhow::{bail, Context};
use clap::Parser;
use common::{
    default_data, from_invocation_dir, llama_cut, loadavg, mean, ms, p50, pct, stop_children_on_signal, write_report, Pretest, RunOpts,
    Tally,
};
use locode::config::Config;
use process::server_bin;
use score::Outcome;
use serde::Serialize;
use serde_json::{json, Value};
use sets::{Lang, SetInfo, SetKind, Task};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "pass@1 of locode's suggestions through `locode serve` over LSP, first and final answers")]
struct Opts {
    /// Sets to run, comma-separated: single, multi, span, rust, xfile
    /// (helpers moved to another file), xfile-inline (the same tasks with the
    /// helpers left in the document), xcall (the body is a call to the
    /// implementation in another file).
    #[arg(long, default_value = "single,multi,span,rust,xfile")]
    sets: String,
    /// Tasks per set (a seeded sample): a number or `all`. Default: single
    /// 200, multi 150, span all (164), rust 150, xfile and xcall all.
    #[arg(long)]
    limit: Option<String>,
    /// Do not run llama-server next to locode.
    #[arg(long)]
    skip_peer: bool,
    #[command(flatten)]
    run: RunOpts,
    /// The locode binary (default: the one cargo built for this bench,
    /// target/release/locode).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// llama-server binary (default: ~/.cache/locode/peer/llama-server).
    #[arg(long)]
    peer_bin: Option<PathBuf>,
    /// Folder with human-eval-infilling/ and humaneval-x-rust/
    /// (default: $LOCODE_BENCH_DATA, else ../shared/bench-data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder (default: <target>/quality-server).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Folder the workspaces (`ws-<set>/`) are written in (default:
    /// $TMPDIR/locode-quality-server). Not inside a git-ignored folder such
    /// as target/: the server's index skips ignored files, as editors' users
    /// expect.
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// `crossFileChars` in initializationOptions (default: the server's).
    #[arg(long)]
    cross_file_chars: Option<usize>,
    /// `earlyAnswerMs` in initializationOptions (default: the server's).
    #[arg(long)]
    early_answer_ms: Option<u64>,
    /// `firstAnswerMs` in initializationOptions (default: the server's; 0:
    /// always the whole prompt, no first window).
    #[arg(long)]
    first_answer_ms: Option<u64>,
    /// `maxTokens` in initializationOptions, and llama-server's `n_predict`
    /// (default: the server's).
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Close each document after its task (default: keep it open, as
    /// editors keep files open).
    #[arg(long)]
    close_after: bool,
    /// Where the hole is an empty line opened at column 0, put the indentation
    /// of the expected fill's first line before the cursor and the cursor
    /// after it, as an editor's auto-indent would after Enter.
    #[arg(long)]
    cursor_at_indent: bool,
    /// Ask as a client without locode's plugin (Helix, plain Neovim): no
    /// `experimental.locode.suggestionReady` capability, so the server
    /// gives whole answers and no early ones.
    #[arg(long)]
    generic_client: bool,
    /// Timeout of each test run, seconds.
    #[arg(long, default_value_t = 10)]
    test_timeout_s: u64,
    /// Timeout of each completion request, seconds.
    #[arg(long, default_value_t = 120)]
    request_timeout_s: u64,
    /// Longest wait for `locode/suggestionReady` after a first answer, seconds.
    #[arg(long, default_value_t = 120)]
    rest_timeout_s: u64,
    /// The server counts as done with a task (no rest coming) once its
    /// process has used almost no CPU for this long, milliseconds.
    #[arg(long, default_value_t = 500)]
    idle_ms: u64,
    /// Stop asking after this many minutes in all (split evenly over the
    /// sets, each getting an equal share of the time left when it starts)
    /// and score what ran.
    #[arg(long, default_value_t = 100.0)]
    max_minutes: f64,
    /// Only these task ids of the sample (comma-separated, e.g.
    /// `Go/109/L3,Go/137/L4`): to look again at single answers, with
    /// `LOCODE_LOG=locode=debug` (the server's log is in the output folder).
    #[arg(long)]
    only: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

pub use process::CHILDREN;

/// A `file://` URI for an absolute path (bytes outside the unreserved set
/// percent-encoded).
fn file_uri(path: &Path) -> String {
    let mut s = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

// ---------------------------------------------------------------------------
// The sets

/// A set of this bench: one of the in-process bench's, or the cross-file
/// set (helpers moved to another file), or its control (helpers inline), or
/// the cross-file call set (the body is a call to another file's function).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetName {
    Plain(SetKind),
    XFile,
    XInline,
    XCall,
}

impl SetName {
    fn parse(s: &str) -> anyhow::Result<SetName> {
        Ok(match s.trim() {
            "xfile" => SetName::XFile,
            "xfile-inline" => SetName::XInline,
            "xcall" => SetName::XCall,
            other => SetName::Plain(
                SetKind::parse(other)
                    .map_err(|_| anyhow::anyhow!("unknown set {other:?} (single, multi, span, rust, xfile, xfile-inline, xcall)"))?,
            ),
        })
    }

    fn key(self) -> &'static str {
        match self {
            SetName::Plain(k) => k.key(),
            SetName::XFile => "xfile",
            SetName::XInline => "xfile-inline",
            SetName::XCall => "xcall",
        }
    }

    fn title(self) -> &'static str {
        match self {
            SetName::Plain(k) => k.title(),
            SetName::XFile => "HumanEval helpers in another file",
            SetName::XInline => "same tasks, helpers inline",
            SetName::XCall => "HumanEval calls into another file",
        }
    }

    fn default_limit(self) -> Option<usize> {
        match self {
            SetName::Plain(k) => k.default_limit(),
            SetName::XFile | SetName::XInline | SetName::XCall => None,
        }
    }
}

/// Helper definitions moved out of a document into `<module>.py`.
#[derive(Debug)]
struct Helpers {
    module: String,
    /// The file's text: the document's top-level imports, then the helpers.
    code: String,
    /// The line that replaces them in the document.
    import_line: String,
    /// How the test program gets them: false, `code` prepended and
    /// `import_line` dropped (xfile); true, `code` run as the module
    /// `module` before the document, whose import then finds it (xcall:
    /// `import impl_<n>` needs the module, not only its names).
    as_module: bool,
}

/// One task as this bench runs it: the task, its file in the workspace,
/// and (cross-file set) the helpers its test program needs.
#[derive(Debug, Clone)]
struct Item {
    task: Task,
    /// File name in the workspace folder.
    file: String,
    /// The problem (`problem_of`): sibling tasks of the same problem are
    /// other files in the same workspace.
    problem: String,
    helpers: Option<Arc<Helpers>>,
    /// Bytes of indentation put before the cursor (`--cursor-at-indent`).
    indent_moved: usize,
}

impl Item {
    /// The program a fill is tested with: the task's, with the helpers
    /// prepended and their import line dropped (xfile), or with the helpers'
    /// file registered as the module the document imports (xcall), so it
    /// runs standalone.
    fn program(&self, fill: &str) -> String {
        let p = self.task.program(fill);
        match &self.helpers {
            Some(h) if h.as_module => format!("{}{p}", module_preamble(&h.module, &h.code)),
            Some(h) => format!("{}\n\n{}", h.code, p.replacen(&h.import_line, "", 1)),
            None => p,
        }
    }

    fn language_id(&self) -> &'static str {
        self.task.lang.lsp_id()
    }
}

fn sanitise(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// The problem of a task id: `HumanEval/32` for every HumanEval-infilling
/// set's tasks of problem 32, `Rust/12` for HumanEval-X Rust's.
fn problem_of(id: &str) -> String {
    let p = id.rsplit_once('/').map_or(id, |(p, _)| p);
    p.find("HumanEval/").map_or(p, |i| &p[i..]).to_string()
}

fn item(task: Task, helpers: Option<Arc<Helpers>>) -> Item {
    let ext = task.lang.ext();
    Item { file: format!("{}.{ext}", sanitise(&task.id)), problem: problem_of(&task.id), task, helpers, indent_moved: 0 }
}

/// `--cursor-at-indent`: a hole that is an empty line opened at column 0
/// gets the indentation of the expected fill's first line before the
/// cursor; the expected fill loses it (the fill goes in at the cursor).
fn cursor_at_indent(it: &mut Item) {
    let t = &mut it.task;
    if t.lang != Lang::Python || !(t.cursor == 0 || t.doc[..t.cursor].ends_with('\n')) || !t.doc[t.cursor..].starts_with('\n') {
        return;
    }
    let first = t.expected.split('\n').next().unwrap_or("");
    let indent = &first[..first.len() - first.trim_start_matches([' ', '\t']).len()];
    if indent.is_empty() {
        return;
    }
    let indent = indent.to_string();
    t.doc.insert_str(t.cursor, &indent);
    t.cursor += indent.len();
    t.expected = t.expected[indent.len()..].to_string();
    it.indent_moved = indent.len();
}

/// Top-level blocks of Python source: (start line, end line exclusive,
/// `def` name if a function), trailing blank lines left out of a block.
fn top_level_blocks(lines: &[&str]) -> Vec<(usize, usize, Option<String>)> {
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.trim().is_empty() || l.starts_with([' ', '\t']) {
            i += 1;
            continue;
        }
        let start = i;
        let name = l.strip_prefix("def ").map(|r| r.split(['(', ' ', ':']).next().unwrap_or("").to_string());
        let mut end = i + 1;
        let mut j = i + 1;
        while j < lines.len() && (lines[j].trim().is_empty() || lines[j].starts_with([' ', '\t'])) {
            if !lines[j].trim().is_empty() {
                end = j + 1;
            }
            j += 1;
        }
        blocks.push((start, end, name));
        i = j;
    }
    blocks
}

fn calls(text: &str, name: &str) -> bool {
    regex::Regex::new(&format!(r"\b{}\s*\(", regex::escape(name))).is_ok_and(|re| re.is_match(text))
}

/// The cross-file version of a HumanEval-infilling task whose prompt defines
/// top-level helper functions besides the entry point, one of which the
/// expected fill calls: every helper goes to `helpers_<problem>.py` (with
/// the document's top-level imports), replaced in the document by
/// `from helpers_<problem> import ...`. None when the task has no such helper.
fn cross_file_task(task: &Task, entry: &str) -> Option<(Task, Helpers)> {
    let prompt = &task.doc[..task.cursor];
    let lines: Vec<&str> = prompt.split_inclusive('\n').collect();
    let blocks = top_level_blocks(&lines);
    // A helper must end before the prompt's last top-level block (the entry
    // point, which holds the hole).
    let last = blocks.len().checked_sub(1)?;
    let helpers: Vec<&(usize, usize, Option<String>)> =
        blocks[..last].iter().filter(|(_, _, n)| n.as_deref().is_some_and(|n| !n.is_empty() && n != entry)).collect();
    let names: Vec<String> = helpers.iter().filter_map(|(_, _, n)| n.clone()).collect();
    if !names.iter().any(|n| calls(&task.expected, n)) || !prompt.contains(&format!("def {entry}")) {
        return None;
    }
    let number = task.id.split('/').nth(2).unwrap_or("0");
    let module = format!("helpers_{}", sanitise(number));
    let import_line = format!("from {module} import {}\n", names.join(", "));
    let imports: String = blocks
        .iter()
        .filter(|(s, _, n)| n.is_none() && (lines[*s].starts_with("import ") || lines[*s].starts_with("from ")))
        .map(|(s, e, _)| lines[*s..*e].concat())
        .collect();
    let mut code = imports;
    let mut doc = String::new();
    let mut next = 0;
    for (k, (s, e, _)) in helpers.iter().enumerate() {
        doc.push_str(&lines[next..*s].concat());
        if k == 0 {
            doc.push_str(&import_line);
        }
        code.push_str("\n\n");
        code.push_str(&lines[*s..*e].concat());
        next = *e;
    }
    doc.push_str(&lines[next..].concat());
    let cursor = doc.len();
    doc.push_str(&task.doc[task.cursor..]);
    let t = Task { doc, cursor, ..task.clone() };
    Some((t, Helpers { module, code, import_line, as_module: false }))
}

/// The cross-file set (or its control): SingleLine tasks that qualify, and
/// when fewer than 15 do, MultiLine and RandomSpanLight ones too; a seeded
/// sample of them.
fn load_xfile(data: &Path, limit: Option<usize>, seed: u64, inline: bool) -> anyhow::Result<(Vec<Item>, SetInfo, String)> {
    let mut all: Vec<Item> = Vec::new();
    let mut found = Vec::new();
    let mut found_single = 0;
    for kind in [SetKind::Single, SetKind::Multi, SetKind::Span] {
        if kind != SetKind::Single && found_single >= 15 {
            break;
        }
        let mut n = 0;
        for r in sets::rows(kind, data)? {
            let task = sets::python_row_task(kind, &r)?;
            let entry = r["entry_point"].as_str().unwrap_or("");
            if let Some((xt, h)) = cross_file_task(&task, entry) {
                n += 1;
                all.push(if inline { item(task, None) } else { item(xt, Some(Arc::new(h))) });
            }
        }
        if kind == SetKind::Single {
            found_single = n;
        }
        found.push(format!("{} {n}", kind.key()));
    }
    let problems: BTreeSet<&str> = all.iter().map(|i| i.problem.as_str()).collect();
    let note = format!(
        "found {} ({}) from {} problems ({})",
        all.len(),
        found.join(", "),
        problems.len(),
        problems.into_iter().collect::<Vec<_>>().join(", ")
    );
    let info = SetInfo { population: all.len(), skipped: Vec::new() };
    let order = sets::python_shuffle(all.len(), seed)?;
    let n = limit.unwrap_or(all.len()).min(all.len());
    Ok((order[..n].iter().map(|&i| all[i].clone()).collect(), info, note))
}

/// Python that makes `code` importable as `module`, to run first in a test
/// program: a module object, `code` run in it, put in `sys.modules`.
fn module_preamble(module: &str, code: &str) -> String {
    // A JSON string is a Python string literal.
    let lit = serde_json::to_string(code).unwrap_or_default();
    let file = format!("{module}.py");
    format!(
        "import sys as _bench_sys, types as _bench_types\n_bench_m = _bench_types.ModuleType({module:?})\n\
         exec(compile({lit}, {file:?}, \"exec\"), _bench_m.__dict__)\n_bench_sys.modules[{module:?}] = _bench_m\n\
         del _bench_sys, _bench_types, _bench_m\n\n"
    )
}

/// The parameters of a one-line `def` (the text between its parentheses,
/// split at top-level commas, trimmed) and the byte offset just after its
/// closing parenthesis. None when the line has no closed parameter list.
fn def_params(line: &str) -> Option<(Vec<String>, usize)> {
    let open = line.find('(')?;
    let mut depth = 0usize;
    let mut params = Vec::new();
    let mut cur = String::new();
    for (i, c) in line[open + 1..].char_indices() {
        match c {
            ')' | ']' | '}' if depth == 0 => {
                if !cur.trim().is_empty() {
                    params.push(cur.trim().to_string());
                }
                return Some((params, open + 1 + i + 1));
            }
            ',' if depth == 0 => {
                params.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
        cur.push(c);
    }
    None
}

/// A function body's lines (those after its `def` line, as a prompt has
/// them) less its docstring (the lines from where the first triple-quoted
/// string opens to where it closes) and blank lines.
fn without_docstring(body: &str) -> String {
    let quote = ["\"\"\"", "'''"].into_iter().filter_map(|q| body.find(q).map(|i| (i, q))).min();
    let kept = match quote {
        Some((i, q)) => {
            let start = body[..i].rfind('\n').map_or(0, |k| k + 1);
            let close = body[i + 3..].find(q).map_or(body.len(), |k| i + 3 + k + 3);
            let end = body[close..].find('\n').map_or(body.len(), |k| close + k + 1);
            format!("{}{}", &body[..start], &body[end..])
        }
        None => body.to_string(),
    };
    kept.split_inclusive('\n').filter(|l| !l.trim().is_empty()).collect()
}

/// The xcall task of one HumanEval problem, from its SingleLine row with the
/// shortest prompt (the problem's prompt, then blank lines; the prompt,
/// canonical fill and suffix together are the whole solution). Ok(None):
/// the entry point takes fewer than 2 parameters; Err(reason): it takes
/// more but the task cannot be made.
///
/// - `impl_<n>.py`: the prompt's top-level imports and other functions, and
///   the solution renamed `_kernel_<n>`, its parameters in reverse order,
///   without the docstring;
/// - `task_<n>.py`: the prompt, with `from impl_<n> import _kernel_<n>`
///   (even n) or `import impl_<n>` (odd n) after its imports (or at the
///   top), and an empty line opened after the docstring: the hole, whose
///   reference fill is `    return _kernel_<n>(<params reversed>)`
///   (`impl_<n>._kernel_<n>(...)` for odd n).
fn xcall_item(r: &Value, n: usize) -> anyhow::Result<Result<Option<Item>, String>> {
    let base = sets::python_row_task(SetKind::Single, r)?;
    let text = |k: &str| r[k].as_str().with_context(|| format!("field {k} missing in {}", r["task_id"]));
    let entry = text("entry_point")?;
    let prompt = format!("{}\n", text("prompt")?.trim_end());
    let lines: Vec<&str> = prompt.split_inclusive('\n').collect();
    let Some(d) = lines.iter().position(|l| l.starts_with(&format!("def {entry}("))) else {
        return Ok(Err(format!("HumanEval/{n} (no one-line `def {entry}(` in the prompt)")));
    };
    let Some((params, after)) = def_params(lines[d]) else {
        return Ok(Err(format!("HumanEval/{n} (its `def` line does not close its parameters)")));
    };
    if params.len() < 2 {
        return Ok(Ok(None));
    }
    if params.iter().any(|p| p.contains('=') || p.starts_with('*') || p == "/") {
        return Ok(Err(format!("HumanEval/{n} (defaults or starred parameters)")));
    }
    let names: Vec<&str> = params.iter().map(|p| p.split(':').next().unwrap_or("").trim()).collect();
    let kernel = format!("_kernel_{n}");
    let module = format!("impl_{n}");

    let is_import = |l: &str| l.starts_with("import ") || l.starts_with("from ");
    let mut code: String = lines[..d].iter().filter(|l| is_import(l)).copied().collect();
    for (s, e, name) in top_level_blocks(&lines[..d]) {
        if name.is_some() {
            code.push_str("\n\n");
            code.push_str(&lines[s..e].concat());
        }
    }
    if !code.is_empty() {
        code.push_str("\n\n");
    }
    let reversed: Vec<&str> = params.iter().rev().map(String::as_str).collect();
    code.push_str(&format!("def {kernel}({}){}", reversed.join(", "), &lines[d][after..]));
    code.push_str(&without_docstring(&lines[d + 1..].concat()));
    code.push_str(text("canonical_solution")?);
    code.push_str(text("suffix")?);
    if !code.ends_with('\n') {
        code.push('\n');
    }

    let from_form = n.is_multiple_of(2);
    let (import_line, callee, form) = if from_form {
        (format!("from {module} import {kernel}\n"), kernel.clone(), "from")
    } else {
        (format!("import {module}\n"), format!("{module}.{kernel}"), "import")
    };
    let args: Vec<&str> = names.iter().rev().copied().collect();
    let head = match lines[..d].iter().rposition(|l| is_import(l)) {
        Some(i) => format!("{}{import_line}{}", lines[..=i].concat(), lines[i + 1..].concat()),
        None => format!("{import_line}\n\n{}", prompt.trim_start_matches('\n')),
    };
    let task = Task {
        id: format!("XCall/HumanEval/{n}/{form}"),
        doc: format!("{head}\n"),
        cursor: head.len(),
        expected: format!("    return {callee}({})", args.join(", ")),
        ..base
    };
    let helpers = Helpers { module, code, import_line, as_module: true };
    Ok(Ok(Some(Item {
        task,
        file: format!("task_{n}.py"),
        problem: format!("HumanEval/{n}"),
        helpers: Some(Arc::new(helpers)),
        indent_moved: 0,
    })))
}

/// The cross-file call set: one task per HumanEval problem whose entry point
/// takes 2 or more parameters (`xcall_item`); a seeded sample of them.
fn load_xcall(data: &Path, limit: Option<usize>, seed: u64) -> anyhow::Result<(Vec<Item>, SetInfo, String)> {
    let mut shortest: BTreeMap<usize, Value> = BTreeMap::new();
    let plen = |r: &Value| r["prompt"].as_str().map_or(0, str::len);
    for r in sets::rows(SetKind::Single, data)? {
        let Some(n) = r["task_id"].as_str().and_then(|id| id.split('/').nth(2)).and_then(|s| s.parse::<usize>().ok()) else {
            continue;
        };
        if shortest.get(&n).is_none_or(|b| plen(&r) < plen(b)) {
            shortest.insert(n, r);
        }
    }
    let mut all: Vec<Item> = Vec::new();
    let mut info = SetInfo::default();
    for (n, r) in &shortest {
        match xcall_item(r, *n)? {
            Ok(Some(it)) => all.push(it),
            Ok(None) => {}
            Err(why) => info.skipped.push(why),
        }
    }
    info.population = all.len();
    let from = all.iter().filter(|i| i.task.id.ends_with("/from")).count();
    let note = format!(
        "{} of {} problems take 2 or more parameters: {from} `from impl_<n> import`, {} `import impl_<n>`",
        all.len(),
        shortest.len(),
        all.len() - from
    );
    let order = sets::python_shuffle(all.len(), seed)?;
    let n = limit.unwrap_or(all.len()).min(all.len());
    Ok((order[..n].iter().map(|&i| all[i].clone()).collect(), info, note))
}

/// Whether git ignores `dir` (false outside a repository or without git).
fn git_ignored(dir: &Path) -> bool {
    std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["check-ignore", "-q", "."])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes every task's document (and the helpers files) into a fresh
/// workspace folder.
fn write_workspace(dir: &Path, items: &[Item]) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot empty {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    for it in items {
        std::fs::write(dir.join(&it.file), &it.task.doc)?;
        if let Some(h) = &it.helpers {
            std::fs::write(dir.join(format!("{}.py", h.module)), &h.code)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Talking to the server

/// One answer as the editor gets it.
#[derive(Debug, Clone, Default, Serialize)]
struct Shown {
    text: String,
    /// From the first request to this answer, milliseconds.
    ms: f64,
    empty: bool,
    /// Several lines (contains a newline); else a line.
    block: bool,
}

impl Shown {
    fn new(text: String, ms: f64) -> Shown {
        Shown { empty: text.trim().is_empty(), block: text.contains('\n'), text, ms }
    }
}

/// locode's answers to one task.
#[derive(Debug, Clone, Default, Serialize)]
struct LocodeAnswer {
    first: Shown,
    #[serde(rename = "final")]
    final_: Shown,
    /// `locode/suggestionReady` arrived for this document and position.
    rest: bool,
    /// How many times (a rest, then an upgrade: 2).
    notifications: usize,
    /// When it arrived, from the first request, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    rest_ms: Option<f64>,
    /// No notification and the server still busy when `--rest-timeout-s` ran out.
    rest_timed_out: bool,
    /// `locode/lastStats` right after the first answer.
    first_stats: Value,
    /// Files whose definitions led the prompt (`locode/documentState`).
    cross_file: Vec<String>,
    /// One of them is a sibling task's file (same problem).
    sibling_context: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// CPU time of a process so far, in clock ticks (Linux).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime); `rest` starts at field 3.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks_per_s() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

fn inline_params(uri: &str, position: &Value) -> Value {
    json!({
        "textDocument": {"uri": uri},
        "position": position,
        "context": {"triggerKind": 2, "selectedCompletionInfo": null},
    })
}

/// LSP position of byte offset `off`: UTF-8 bytes or UTF-16 units.
fn position(text: &str, off: usize, utf8: bool) -> Value {
    let before = &text[..off];
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col: usize = if utf8 { off - line_start } else { before[line_start..].chars().map(char::len_utf16).sum() };
    json!({"line": line, "character": col})
}

/// The text an inline completion response inserts at the cursor: its first
/// item's insertText, less what its range covers before the cursor
/// (already in the document).
fn inline_text(result: &Value, doc: &str, cursor: usize, utf8: bool) -> String {
    let items = match result {
        Value::Array(a) => a.clone(),
        v => v["items"].as_array().cloned().unwrap_or_default(),
    };
    let Some(item) = items.first() else {
        return String::new();
    };
    let text = match &item["insertText"] {
        Value::String(s) => s.clone(),
        v => v["value"].as_str().unwrap_or("").to_string(),
    };
    let start = &item["range"]["start"];
    let here = position(doc, cursor, utf8);
    if !start.is_object() || start["line"] != here["line"] {
        return text;
    }
    let covered = here["character"].as_u64().unwrap_or(0).saturating_sub(start["character"].as_u64().unwrap_or(0)) as usize;
    if covered == 0 {
        return text;
    }
    let line_start = doc[..cursor].rfind('\n').map_or(0, |i| i + 1);
    let line = &doc[line_start..cursor];
    let mut units = 0;
    let mut from = line.len();
    for (i, c) in line.char_indices().rev() {
        if units >= covered {
            break;
        }
        units += if utf8 { c.len_utf8() } else { c.len_utf16() };
        from = i;
    }
    text.strip_prefix(&line[from..]).map(str::to_string).unwrap_or(text)
}

const SUGGESTION_READY: &str = "locode/suggestionReady";

/// `locode serve` over stdio, initialized on one workspace folder.
struct Server {
    lsp: lsp::Lsp,
    utf8: bool,
    pid: u32,
    ticks_per_s: u64,
    meta: Value,
    log: PathBuf,
}

impl Server {
    fn start(bin: &Path, opts: &Opts, model: &Path, root: &Path, log: &Path) -> anyhow::Result<Server> {
        let args: Vec<String> =
            vec!["serve".into(), "--threads".into(), opts.run.threads.to_string(), "--model".into(), model.display().to_string()];
        // A KV folder of its own, empty: no prompt is restored from an
        // earlier run's saved states, and the prompt speed that sizes first
        // windows is measured afresh.
        let kv = root.with_file_name(format!("kv-{}", root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()));
        if kv.exists() {
            std::fs::remove_dir_all(&kv).with_context(|| format!("cannot empty {}", kv.display()))?;
        }
        eprintln!("quality_server: starting {} {} (LOCODE_KV_DIR={})", bin.display(), args.join(" "), kv.display());
        let mut lsp = lsp::Lsp::spawn_with_env(bin, &args, &[("LOCODE_KV_DIR", &kv)], log)?;
        lsp.keep = vec![SUGGESTION_READY];
        let pid = lsp.pid();
        let root_uri = file_uri(root);
        let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut init_opts = serde_json::Map::new();
        if let Some(n) = opts.cross_file_chars {
            init_opts.insert("crossFileChars".into(), json!(n));
        }
        if let Some(n) = opts.early_answer_ms {
            init_opts.insert("earlyAnswerMs".into(), json!(n));
        }
        if let Some(n) = opts.max_tokens {
            init_opts.insert("maxTokens".into(), json!(n));
        }
        if let Some(n) = opts.first_answer_ms {
            init_opts.insert("firstAnswerMs".into(), json!(n));
        }
        // What an editor with inline completion sends (Neovim offers UTF-8
        // first; VS Code only UTF-16).
        let caps = json!({
            "general": {"positionEncodings": ["utf-8", "utf-16"]},
            "textDocument": {
                "synchronization": {"dynamicRegistration": false, "didSave": true, "willSave": false},
                "inlineCompletion": {"dynamicRegistration": false}
            },
            "workspace": {"workspaceFolders": true, "configuration": false},
            "window": {"workDoneProgress": false},
            // As locode's VS Code and Neovim plugins say (unless --generic-client).
            "experimental": {"locode": {"suggestionReady": !opts.generic_client}}
        });
        let init = json!({
            "processId": std::process::id(),
            "clientInfo": {"name": "locode-quality-server"},
            "rootUri": root_uri,
            "rootPath": root,
            "workspaceFolders": [{"uri": root_uri, "name": name}],
            "capabilities": caps,
            "initializationOptions": Value::Object(init_opts.clone()),
        });
        let info = lsp.request("initialize", init, Duration::from_secs(30)).map_err(|e| anyhow::anyhow!("{e} (see {})", log.display()))?;
        let utf8 = info["capabilities"]["positionEncoding"] == "utf-8";
        lsp.notify("initialized", json!({}))?;
        let t = Instant::now();
        let status = loop {
            let st = lsp
                .request("locode/status", json!(null), Duration::from_secs(10))
                .map_err(|e| anyhow::anyhow!("{e} (see {})", log.display()))?;
            if st["state"] != "loading" {
                break st;
            }
            if t.elapsed() > Duration::from_secs(300) {
                bail!("locode: model still loading after 5 minutes (see {})", log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if status["state"] != "ready" {
            bail!("locode: model not ready: {status} (see {})", log.display());
        }
        // The workspace index is built in the background since `initialize`;
        // a few hundred small files take well under the model's load time.
        std::thread::sleep(Duration::from_millis(500));
        eprintln!(
            "quality_server: locode ready in {:.1} s, position encoding {}",
            t.elapsed().as_secs_f64(),
            if utf8 { "utf-8" } else { "utf-16" }
        );
        let meta = json!({
            "binary": bin, "args": args, "server_info": info["serverInfo"], "position_encoding": if utf8 { "utf-8" } else { "utf-16" },
            "initialization_options": init_opts, "root": root, "model_status": status,
        });
        Ok(Server { lsp, utf8, pid, ticks_per_s: clock_ticks_per_s(), meta, log: log.to_path_buf() })
    }

    /// Waits for `locode/suggestionReady` for `uri` at `pos`, until it
    /// arrives (Some(when)), or the server has used almost no CPU for
    /// `idle` (nothing is being generated: no rest is coming), or `timeout`
    /// (Err).
    fn wait_rest(&mut self, uri: &str, pos: &Value, idle: Duration, timeout: Duration) -> Result<Option<Instant>, ()> {
        let matches =
            |m: &Value| m["method"] == SUGGESTION_READY && m["params"]["textDocument"]["uri"] == uri && m["params"]["position"] == *pos;
        let deadline = Instant::now() + timeout;
        // Idle: under 10% of one core over the window.
        let budget = (self.ticks_per_s as f64 * idle.as_secs_f64() * 0.1).ceil() as u64;
        let mut samples: std::collections::VecDeque<(Instant, u64)> = Default::default();
        let step = Duration::from_millis(50);
        loop {
            if let Some((at, _)) = self.lsp.wait_message(step, matches) {
                return Ok(Some(at));
            }
            let now = Instant::now();
            // (Without /proc, the notification alone, up to the timeout.)
            if let Some(t) = cpu_ticks(self.pid) {
                samples.push_back((now, t));
                while samples.len() > 1 && now.duration_since(samples[1].0) >= idle {
                    samples.pop_front();
                }
                let (t0, c0) = samples[0];
                if now.duration_since(t0) >= idle && t.saturating_sub(c0) <= budget {
                    // A notification written as the generation ended.
                    return Ok(self.lsp.wait_message(Duration::from_millis(200), matches).map(|(at, _)| at));
                }
            }
            if now > deadline {
                return Err(());
            }
            if !self.lsp.alive() {
                return Ok(None);
            }
        }
    }

    /// Opens the task's document, asks for an inline completion at the
    /// cursor, and for the final answer when a rest follows.
    fn ask(&mut self, it: &Item, ws: &Path, opts: &Opts, siblings: &BTreeMap<String, String>) -> LocodeAnswer {
        let mut a = LocodeAnswer::default();
        let uri = file_uri(&ws.join(&it.file));
        let doc = &it.task.doc;
        let timeout = Duration::from_secs(opts.request_timeout_s);
        // Notifications left from earlier tasks are of no use now.
        self.lsp.kept.clear();
        let opened = self.lsp.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": it.language_id(), "version": 1, "text": doc}}),
        );
        if let Err(e) = opened {
            a.error = Some(e.to_string());
            return a;
        }
        let pos = position(doc, it.task.cursor, self.utf8);
        let t0 = Instant::now();
        let first = self.lsp.request("textDocument/inlineCompletion", inline_params(&uri, &pos), timeout);
        let first_ms = t0.elapsed().as_secs_f64() * 1000.0;
        match first {
            Ok(r) => a.first = Shown::new(inline_text(&r, doc, it.task.cursor, self.utf8), first_ms),
            Err(e) => {
                a.error = Some(e);
                a.first.ms = first_ms;
                a.final_ = a.first.clone();
                return a;
            }
        }
        let short = Duration::from_secs(10);
        a.first_stats = self.lsp.request("locode/lastStats", json!({"uri": uri}), short).unwrap_or(Value::Null);
        if let Ok(st) = self.lsp.request("locode/documentState", json!({"uri": uri}), short) {
            a.cross_file =
                st["crossFile"].as_array().map(|v| v.iter().filter_map(|p| p.as_str().map(str::to_string)).collect()).unwrap_or_default();
        }
        a.sibling_context = a.cross_file.iter().any(|p| {
            let f = Path::new(p).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            f != it.file && siblings.get(&f) == Some(&it.problem)
        });
        a.final_ = a.first.clone();
        // The server offers no rest after an empty suggestion, unless it
        // came from a first window: the whole prompt's answer may follow.
        let first_window = a.first_stats["first_window"].as_bool() == Some(true);
        // Every notification until the server is idle: an early answer's
        // rest may come first and the whole prompt's upgrade after it; the
        // final answer is the last one, what a user who waits sees.
        let mut waiting = !a.first.empty || first_window;
        while waiting {
            waiting = false;
            match self.wait_rest(&uri, &pos, Duration::from_millis(opts.idle_ms), Duration::from_secs(opts.rest_timeout_s)) {
                Ok(Some(at)) => {
                    a.rest = true;
                    a.notifications += 1;
                    a.rest_ms = Some(at.duration_since(t0).as_secs_f64() * 1000.0);
                    match self.lsp.request("textDocument/inlineCompletion", inline_params(&uri, &pos), timeout) {
                        Ok(r) => {
                            a.final_ = Shown::new(inline_text(&r, doc, it.task.cursor, self.utf8), t0.elapsed().as_secs_f64() * 1000.0);
                            waiting = true;
                        }
                        Err(e) => a.error = Some(format!("asking again after {SUGGESTION_READY}: {e}")),
                    }
                }
                Ok(None) => {}
                Err(()) => a.rest_timed_out = true,
            }
        }
        if opts.close_after {
            let _ = self.lsp.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}}));
        }
        a
    }

    fn finish(mut self) -> Value {
        let status = self.lsp.request("locode/status", json!(null), Duration::from_secs(10)).unwrap_or(Value::Null);
        let problems = self.lsp.problems.clone();
        self.meta["final_status"] = json!({"continued": status["continued"], "upgraded": status["upgraded"], "warmups": status["warmups"]});
        self.meta["problems"] = json!(problems);
        self.meta["stderr_log"] = json!(self.log);
        let meta = self.meta.clone();
        self.lsp.shutdown();
        meta
    }
}

// ---------------------------------------------------------------------------
// The peer

/// llama-server's answer to one task.
#[derive(Debug, Clone, Default, Serialize)]
struct PeerAnswer {
    text: String,
    ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Asks llama-server's `/infill` the way llama.vim asks
/// (benches/replay/peer.rs), as quality.rs does: greedy, `n_predict` =
/// locode's `maxTokens`, `stop: ["\n"]` for the single-line sets. It sees
/// the document only (no other files).
fn ask_peer(port: u16, task: &Task, n_predict: u32, timeout: Duration) -> PeerAnswer {
    match common::infill(port, task, n_predict, timeout) {
        (Ok(v), ms) => PeerAnswer { text: v["content"].as_str().unwrap_or("").to_string(), ms, error: None },
        (Err(e), ms) => PeerAnswer { ms, error: Some(e), ..Default::default() },
    }
}

/// The fills scored, in table order.
const VARIANTS: [&str; 4] = ["first", "final", "llama_raw", "llama_cut"];

fn fill(task: &Task, variant: &str, l: Option<&LocodeAnswer>, p: Option<&PeerAnswer>) -> Option<String> {
    match variant {
        // A failed request counts as an empty answer.
        "first" => l.map(|a| a.first.text.clone()),
        "final" => l.map(|a| a.final_.text.clone()),
        "llama_raw" => p.map(|a| a.text.clone()),
        "llama_cut" => p.map(|a| llama_cut(task, &a.text)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Running a set

/// What ran of one set.
struct SetRun {
    name: SetName,
    items: Vec<Item>,
    info: SetInfo,
    note: String,
    locode: BTreeMap<String, LocodeAnswer>,
    peer: BTreeMap<String, PeerAnswer>,
    server: Value,
    errors: Vec<String>,
    minutes: f64,
    stopped_early: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn run_set(
    run: &mut SetRun,
    opts: &Opts,
    bin: &Path,
    model: &Path,
    out_dir: &Path,
    workspaces: &Path,
    peer: Option<&peer::LlamaServer>,
    deadline: Instant,
    pretest: &Pretest,
) {
    let started = Instant::now();
    let key = run.name.key();
    let ws = workspaces.join(format!("ws-{key}"));
    if let Err(e) = write_workspace(&ws, &run.items) {
        run.errors.push(format!("workspace: {e:#}"));
        return;
    }
    let ws = ws.canonicalize().unwrap_or(ws);
    let siblings: BTreeMap<String, String> = run.items.iter().map(|i| (i.file.clone(), i.problem.clone())).collect();
    let mut server = match Server::start(bin, opts, model, &ws, &out_dir.join(format!("locode-{key}.stderr.log"))) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("quality_server: {key}: {e:#}");
            run.errors.push(format!("locode: {e:#}"));
            return;
        }
    };
    let n_predict = opts.max_tokens.unwrap_or(Config::default().completion.max_tokens);
    let timeout = Duration::from_secs(opts.request_timeout_s);
    let mut fails = 0;
    let (mut fsum, mut lsum) = (0.0, 0.0);
    let total = run.items.len();
    for (k, it) in run.items.iter().enumerate() {
        if Instant::now() > deadline {
            run.stopped_early = Some(format!("its share of --max-minutes ran out after {k} of {total} tasks"));
            break;
        }
        if let Some(p) = peer {
            let a = ask_peer(p.port, &it.task, n_predict, timeout);
            run.peer.insert(it.task.id.clone(), a);
        }
        let a = server.ask(it, &ws, opts, &siblings);
        if let Some(e) = &a.error {
            fails += 1;
            eprintln!("quality_server: {key} {}: {e}", it.task.id);
            run.errors.push(format!("{}: {e}", it.task.id));
        } else {
            fails = 0;
        }
        fsum += a.first.ms;
        lsum += a.final_.ms;
        // Test the fills meanwhile, at the lowest priority.
        let _ = pretest.send((it.task.lang, it.program(&it.task.expected)));
        for v in VARIANTS {
            if let Some(f) = fill(&it.task, v, Some(&a), run.peer.get(&it.task.id)) {
                let _ = pretest.send((it.task.lang, it.program(&f)));
            }
        }
        run.locode.insert(it.task.id.clone(), a);
        let done = k + 1;
        if done % 5 == 0 || done == total {
            eprintln!(
                "[{key} {done}/{total}] first mean {:.0} ms, final mean {:.0} ms, {:.0} s in this set, load {}",
                fsum / done as f64,
                lsum / done as f64,
                started.elapsed().as_secs_f64(),
                loadavg()
            );
        }
        if fails >= 3 {
            run.stopped_early = Some(format!("3 failed requests in a row after {done} of {total} tasks"));
            break;
        }
        if !server.lsp.alive() {
            run.stopped_early = Some(format!("the server exited after {done} of {total} tasks (see {})", server.log.display()));
            break;
        }
    }
    if let Some(s) = &run.stopped_early {
        eprintln!("quality_server: {key}: stopped: {s}");
    }
    run.server = server.finish();
    run.minutes = started.elapsed().as_secs_f64() / 60.0;
}

// ---------------------------------------------------------------------------
// Report

fn main() -> anyhow::Result<()> {
    let mut opts = Opts::parse();
    for p in [&mut opts.run.model, &mut opts.server_bin, &mut opts.peer_bin, &mut opts.data, &mut opts.out] {
        *p = p.take().map(|p| from_invocation_dir(&p));
    }
    stop_children_on_signal("quality_server");
    let data = opts.data.clone().unwrap_or_else(default_data);
    let model = common::model_path(opts.run.model.as_deref())?;
    let out_dir = common::out_dir(opts.out.as_deref(), "quality-server")?;
    let out_dir = out_dir.canonicalize().unwrap_or(out_dir);
    let workspaces = opts.workspace.clone().unwrap_or_else(|| std::env::temp_dir().join("locode-quality-server"));
    std::fs::create_dir_all(&workspaces).with_context(|| format!("cannot create {}", workspaces.display()))?;
    let workspaces = workspaces.canonicalize().unwrap_or(workspaces);
    if git_ignored(&workspaces) {
        eprintln!(
            "quality_server: warning: {} is git-ignored; the server's index skips it, so no prompt gets other files' definitions",
            workspaces.display()
        );
    }
    let limit = common::parse_limit(opts.limit.as_deref())?;

    let mut runs: Vec<SetRun> = Vec::new();
    for name in opts.sets.split(',').filter(|s| !s.trim().is_empty()) {
        let name = SetName::parse(name)?;
        let lim = limit.unwrap_or(name.default_limit());
        let (mut items, info, note) = match name {
            SetName::Plain(kind) => {
                let (tasks, info) = sets::load(kind, &data, lim, opts.run.seed)?;
                (tasks.into_iter().map(|t| item(t, None)).collect::<Vec<_>>(), info, String::new())
            }
            SetName::XFile | SetName::XInline => load_xfile(&data, lim, opts.run.seed, name == SetName::XInline)?,
            SetName::XCall => load_xcall(&data, lim, opts.run.seed)?,
        };
        if let Some(only) = &opts.only {
            let ids: Vec<&str> = only.split(',').map(str::trim).collect();
            items.retain(|i| ids.contains(&i.task.id.as_str()));
        }
        if opts.cursor_at_indent {
            items.iter_mut().for_each(cursor_at_indent);
        }
        let moved = items.iter().filter(|i| i.indent_moved > 0).count();
        println!(
            "{:<34} {} of {} {} (seed {}){}{}{}",
            name.title(),
            items.len(),
            info.population,
            if matches!(name, SetName::Plain(k) if k.masked_lines()) { "maskable lines" } else { "tasks" },
            opts.run.seed,
            if note.is_empty() { String::new() } else { format!("; {note}") },
            if info.skipped.is_empty() { String::new() } else { format!("; {} problems skipped", info.skipped.len()) },
            if opts.cursor_at_indent { format!("; cursor moved to the indentation in {moved}") } else { String::new() },
        );
        runs.push(SetRun {
            name,
            items,
            info,
            note,
            locode: BTreeMap::new(),
            peer: BTreeMap::new(),
            server: Value::Null,
            errors: Vec::new(),
            minutes: 0.0,
            stopped_early: None,
        });
    }
    println!("model: {}  threads: {}", model.display(), opts.run.threads);
    let bin = server_bin(opts.server_bin.as_deref(), "quality_server")?;

    let peer_bin = common::peer_bin("quality_server", opts.skip_peer, opts.peer_bin.as_deref());
    let peer_server = peer_bin.map(|bin| common::start_peer(&bin, &model, opts.run.threads, &out_dir)).transpose()?;

    let (pretest, tester) = common::start_tests(Duration::from_secs(opts.test_timeout_s));

    let load_start = loadavg();
    let end = Instant::now() + Duration::from_secs_f64(opts.max_minutes * 60.0);
    let nsets = runs.len();
    for (i, run) in runs.iter_mut().enumerate() {
        // An equal share of the time left.
        let left = end.saturating_duration_since(Instant::now());
        let deadline = Instant::now() + left / (nsets - i) as u32;
        run_set(run, &opts, &bin, &model, &out_dir, &workspaces, peer_server.as_ref(), deadline, &pretest);
    }
    drop(peer_server);
    drop(pretest);
    let load_end = loadavg();

    let mut scorer = common::finish_tests("quality_server", tester)?;

    let mut records = Vec::new();
    let mut summary = Vec::new();
    let mut table = String::new();
    table.push_str("| set | ran | n | first | final | empty first / final | final block / line | rests | first ms mean / p50 | final ms mean / p50 | llama-server raw | llama-server cut |\n");
    table.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut breakdown = String::new();
    for run in &runs {
        let mut t = Tally::default();
        let mut ran = 0;
        let (mut fms, mut lms, mut pms) = (Vec::new(), Vec::new(), Vec::new());
        let (mut empty_first, mut empty_final, mut blocks, mut lines, mut rests, mut rest_timeouts) = (0, 0, 0, 0, 0, 0);
        let mut several = 0;
        let (mut with_cf, mut sibling, mut errors) = (0, 0, 0);
        let mut rest_passes = [0usize; 2];
        for it in &run.items {
            let task = &it.task;
            let la = run.locode.get(&task.id);
            let pa = run.peer.get(&task.id);
            if la.is_none() && pa.is_none() {
                continue; // not asked
            }
            ran += 1;
            let reference = scorer.score(task.lang, &it.program(&task.expected));
            let mut rec = json!({
                "set": run.name.key(), "id": task.id, "file": it.file, "problem": it.problem, "expected": task.expected,
                "before": common::before(task), "after": common::after(task),
                "indent_moved": it.indent_moved,
                "helpers_module": it.helpers.as_ref().map(|h| h.module.clone()),
                "locode": la, "llama_server": pa, "reference": reference.name(),
            });
            if !t.admit(&task.id, &reference) {
                records.push(rec);
                continue;
            }
            if let Some(a) = la {
                fms.push(a.first.ms);
                lms.push(a.final_.ms);
                empty_first += a.first.empty as usize;
                empty_final += a.final_.empty as usize;
                if !a.final_.empty {
                    if a.final_.block {
                        blocks += 1;
                    } else {
                        lines += 1;
                    }
                }
                rests += a.rest as usize;
                several += (a.notifications > 1) as usize;
                rest_timeouts += a.rest_timed_out as usize;
                with_cf += !a.cross_file.is_empty() as usize;
                sibling += a.sibling_context as usize;
                errors += a.error.is_some() as usize;
            }
            if let Some(a) = pa {
                pms.push(a.ms);
            }
            for v in VARIANTS {
                if let Some(f) = fill(task, v, la, pa) {
                    let o = scorer.score(task.lang, &it.program(&f));
                    t.count(v, &o);
                    rec[format!("{v}_outcome")] = json!(o.name());
                    if v.starts_with("llama") {
                        rec[format!("{v}_fill")] = json!(f);
                    }
                    if la.is_some_and(|a| a.rest) && o == Outcome::Pass {
                        match v {
                            "first" => rest_passes[0] += 1,
                            "final" => rest_passes[1] += 1,
                            _ => {}
                        }
                    }
                }
            }
            records.push(rec);
        }
        let n = t.n;
        let ran_cell = if ran < run.items.len() { format!("{ran} of {}", run.items.len()) } else { ran.to_string() };
        table.push_str(&format!(
            "| {} | {ran_cell} | {n} | {} | {} | {} / {} | {blocks} / {lines} | {rests} | {} | {} | {} | {} |\n",
            run.name.title(),
            t.cell("first"),
            t.cell("final"),
            pct(empty_first, n),
            pct(empty_final, n),
            ms(&fms),
            ms(&lms),
            t.cell("llama_raw"),
            t.cell("llama_cut"),
        ));
        breakdown.push_str(&format!(
            "\n{} ({}; {ran} of {} tasks asked, n = {n}, {:.1} min",
            run.name.title(),
            run.name.key(),
            run.items.len(),
            run.minutes
        ));
        if !run.note.is_empty() {
            breakdown.push_str(&format!("; {}", run.note));
        }
        breakdown.push_str(&t.left_out_notes(run.info.skipped.len()));
        breakdown.push_str(")\n");
        if let Some(s) = &run.stopped_early {
            breakdown.push_str(&format!("  stopped: {s}\n"));
        }
        breakdown.push_str(&t.outcome_lines(10));
        breakdown.push_str(&format!(
            "  rests (suggestionReady, asked again): {rests}, {several} of them more than once (first passed {}, final passed {}); waits past --rest-timeout-s: {rest_timeouts}; server's `continued`: {}, `upgraded`: {}\n",
            rest_passes[0], rest_passes[1], run.server["final_status"]["continued"], run.server["final_status"]["upgraded"]
        ));
        breakdown.push_str(&format!(
            "  prompts with other files' definitions: {with_cf}; with a sibling task's file (same problem): {sibling}; failed requests: {errors}\n"
        ));
        if !pms.is_empty() {
            breakdown.push_str(&format!("  llama-server ms mean / p50: {}\n", ms(&pms)));
        }
        for e in run.errors.iter().take(5) {
            breakdown.push_str(&format!("  error: {e}\n"));
        }
        summary.push(json!({
            "set": run.name.key(), "sampled": run.items.len(), "asked": ran, "n": n, "left_out": t.broken,
            "passed": t.passed, "outcomes": t.outcomes,
            "empty_first": empty_first, "empty_final": empty_final, "final_blocks": blocks, "final_lines": lines,
            "rests": rests, "rest_timeouts": rest_timeouts, "with_cross_file": with_cf, "sibling_context": sibling,
            "first_ms_mean": mean(&fms), "first_ms_p50": p50(&fms), "final_ms_mean": mean(&lms), "final_ms_p50": p50(&lms),
            "llama_server_ms_mean": mean(&pms), "llama_server_ms_p50": p50(&pms),
            "minutes": run.minutes, "stopped_early": run.stopped_early, "errors": run.errors, "server": run.server, "note": run.note,
        }));
    }
    let load_line = format!("load average (1/5/15 min) {load_start} at the start, {load_end} at the end of generation");
    let settings = format!(
        "model `{}`, {} threads, seed {}, initializationOptions: crossFileChars {}, earlyAnswerMs {}, maxTokens {}; documents {}; cursor {}; {} test runs",
        model.display(),
        opts.run.threads,
        opts.run.seed,
        opts.cross_file_chars.map_or("default".into(), |n| n.to_string()),
        opts.early_answer_ms.map_or("default".into(), |n| n.to_string()),
        opts.max_tokens.map_or("default".into(), |n| n.to_string()),
        if opts.close_after { "closed after each task" } else { "kept open" },
        if opts.cursor_at_indent { "at the indentation of an opened line" } else { "at column 0 of an opened line" },
        scorer.runs
    );
    let mut md = String::new();
    md.push_str("# Quality through the server: pass@1 of `locode serve` over LSP\n\n");
    md.push_str(&format!("{settings}\n\n"));
    md.push_str(&table);
    md.push_str(&format!("\n{load_line}\n\n```\n{}```\n", breakdown.trim_start()));
    println!("\n{settings}\n");
    println!("{table}");
    println!("{load_line}");
    println!("{breakdown}");
    let results = json!({
        "model": model, "threads": opts.run.threads, "seed": opts.run.seed, "sets": opts.sets, "limit": opts.limit,
        "cross_file_chars": opts.cross_file_chars, "early_answer_ms": opts.early_answer_ms, "max_tokens": opts.max_tokens,
        "close_after": opts.close_after, "cursor_at_indent": opts.cursor_at_indent, "generic_client": opts.generic_client, "idle_ms": opts.idle_ms, "workspaces": workspaces,
        "load_average": [load_start, load_end], "summary": summary, "records": records,
    });
    write_report(&out_dir, &md, &results)?;
    Ok(())
}
