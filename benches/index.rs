//! Workspace index and per-request syntax work.
//!
//! 1. Builds a synthetic 2,000-file workspace of every language with a
//!    grammar (Rust and Python from the bench corpus; C++, Go, Java and
//!    JavaScript from HumanEval-X, its JavaScript also as TypeScript; C from
//!    llama.cpp's sources, which the build of locode unpacks), indexes it on
//!    the background thread, and prints the build time, files and
//!    definitions indexed, and memory: the RSS delta and the index's own
//!    estimate. Each copy has its definitions renamed (`name` ->
//!    `name_<copy>`) so names are not all 1,000-fold duplicates, except two
//!    copies per language that keep the original names (what the big files
//!    below refer to).
//! 2. On a file of at least 5,000 lines per language (its files
//!    concatenated), times the syntax work of one completion request at 500
//!    random cursor positions, through the server's `Document`: a
//!    one-character edit and the snapshot with its incremental reparse
//!    (within the parse budget; a longer reparse finishes in the background
//!    and the bench counts how often), `enclosing_scopes`, `imports`,
//!    `identifiers_in` over the 40 lines around the cursor,
//!    `top_level_item_lines` and an index `context_for` lookup. Prints p50/p99/max per step and for the whole, as measured
//!    (the first run at each position) and best of 3 runs at each position
//!    (without the time other processes held the cores, on a shared
//!    machine). Target: p99 of the whole <= 5 ms.
//!
//! ```sh
//! cargo bench --bench index                       # data: ../shared/bench-data
//! cargo bench --bench index -- --files 500 --positions 200 --corpus DIR --data DIR --langs go,java
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use locode::documents::{Change, Document, Encoding, Pos, PARSE_BUDGET};
use locode::index::{IndexLimits, WorkspaceIndex};
use locode::syntax;
use locode::syntax::Language;

struct Opts {
    corpus: PathBuf,
    /// HumanEval-X (`humaneval-x/` under it).
    data: PathBuf,
    files: usize,
    positions: usize,
    /// Languages whose big file is timed (all by default).
    langs: Option<Vec<String>>,
}

fn opts() -> Opts {
    let corpus = default_corpus();
    let data = corpus.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut o = Opts { corpus, data, files: 2000, positions: 500, langs: None };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--corpus" => o.corpus = PathBuf::from(args.next().expect("--corpus DIR")),
            "--data" => o.data = PathBuf::from(args.next().expect("--data DIR")),
            "--langs" => o.langs = Some(args.next().expect("--langs LIST").split(',').map(str::to_string).collect()),
            "--files" => o.files = args.next().and_then(|v| v.parse().ok()).expect("--files N"),
            "--positions" => o.positions = args.next().and_then(|v| v.parse().ok()).expect("--positions N"),
            _ => {} // `--bench` and anything else cargo passes
        }
    }
    o
}

fn default_corpus() -> PathBuf {
    if let Some(d) = std::env::var_os("LOCODE_BENCH_DATA") {
        return PathBuf::from(d).join("corpus");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for c in [root.join("shared/bench-data/corpus"), root.join("../shared/bench-data/corpus")] {
        if c.is_dir() {
            return c;
        }
    }
    root.join("../shared/bench-data/corpus")
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// A small deterministic generator (xorshift), so runs pick the same spots.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Source files of the corpus, by language.
fn corpus(dir: &Path) -> Vec<(Language, String)> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let lang = Language::from_path(&p);
        if lang.ts_language().is_none() {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(&p) {
            out.push((lang, text));
        }
    }
    assert!(
        out.iter().any(|(l, _)| *l == Language::Rust) && out.iter().any(|(l, _)| *l == Language::Python),
        "the corpus at {} needs Rust and Python files",
        dir.display()
    );
    out
}

fn jsonl_gz(path: &Path) -> Vec<serde_json::Value> {
    let out =
        std::process::Command::new("gzip").arg("-dc").arg(path).output().unwrap_or_else(|e| panic!("gzip -dc {}: {e}", path.display()));
    assert!(out.status.success(), "gzip -dc {} failed", path.display());
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect()
}

/// One file per HumanEval-X problem (its prompt and canonical solution) of
/// C++, Go, Java and JavaScript, the JavaScript ones also as TypeScript.
fn humaneval_x(data: &Path) -> Vec<(Language, String)> {
    let mut out = Vec::new();
    for (lang, file) in [(Language::Cpp, "cpp"), (Language::Go, "go"), (Language::Java, "java"), (Language::JavaScript, "js")] {
        let rows = jsonl_gz(&data.join(format!("humaneval-x/humaneval_{file}.jsonl.gz")));
        for r in rows {
            let f = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            let text = match lang {
                Language::Go => format!("package main\n\n{}{}", f("prompt"), f("canonical_solution")),
                _ => format!("{}{}", f("prompt"), f("canonical_solution")),
            };
            if lang == Language::JavaScript {
                out.push((Language::TypeScript, text.clone()));
            }
            out.push((lang, text));
        }
    }
    out
}

/// C sources: ggml's, from the llama.cpp that `llama-cpp-sys-2` unpacks in
/// cargo's registry (locode's build needs it there).
fn c_sources() -> Vec<(Language, String)> {
    let home = std::env::var_os("CARGO_HOME").map(PathBuf::from).or_else(|| dirs::home_dir().map(|h| h.join(".cargo"))).unwrap_or_default();
    let mut found: Vec<PathBuf> = Vec::new();
    for reg in std::fs::read_dir(home.join("registry/src")).into_iter().flatten().flatten() {
        for krate in std::fs::read_dir(reg.path()).into_iter().flatten().flatten() {
            if !krate.file_name().to_string_lossy().starts_with("llama-cpp-sys-2-") {
                continue;
            }
            let src = krate.path().join("llama.cpp/ggml/src");
            for f in std::fs::read_dir(&src).into_iter().flatten().flatten() {
                if f.path().extension().is_some_and(|e| e == "c") {
                    found.push(f.path());
                }
            }
        }
    }
    found.sort();
    assert!(!found.is_empty(), "no C sources (llama.cpp's ggml/src/*.c) under {}: build locode first", home.display());
    found.iter().filter_map(|p| std::fs::read_to_string(p).ok()).map(|t| (Language::C, t)).collect()
}

/// The text of a language's big file: its files concatenated to >= 5,000
/// lines, as one file of that language (Go: one package clause and the
/// imports at the top; Java: the imports at the top, each `Solution` class
/// named apart).
fn big_file(lang: Language, files: &[(Language, String)]) -> String {
    let mut text = String::new();
    let mut body = String::new();
    let mut imports: Vec<String> = Vec::new();
    let mut k = 0;
    'fill: loop {
        for (_, t) in files.iter().filter(|(l, _)| *l == lang) {
            k += 1;
            let t = match lang {
                Language::Go | Language::Java => {
                    let mut kept = String::new();
                    let mut in_import = false;
                    for line in t.lines() {
                        let tr = line.trim();
                        if tr.starts_with("package ") {
                            continue;
                        }
                        if in_import || tr.starts_with("import") {
                            in_import = tr.ends_with('(') || (in_import && tr != ")");
                            let spec = tr.trim_start_matches("import").trim().trim_matches(['(', ')']).trim().to_string();
                            if !spec.is_empty() && !imports.contains(&spec) {
                                imports.push(spec);
                            }
                            continue;
                        }
                        kept.push_str(&line.replace("class Solution", &format!("class Solution{k}")));
                        kept.push('\n');
                    }
                    kept
                }
                _ => t.clone(),
            };
            body.push_str(&t);
            if !body.ends_with('\n') {
                body.push('\n');
            }
            if body.lines().count() >= 5000 {
                break 'fill;
            }
        }
    }
    match lang {
        Language::Go => {
            text.push_str("package main\n\nimport (\n");
            for i in &imports {
                text.push_str(&format!("    {i}\n"));
            }
            text.push_str(")\n\n");
        }
        Language::Java => {
            for i in &imports {
                text.push_str(&format!("import {i}\n"));
            }
            text.push('\n');
        }
        _ => {}
    }
    text.push_str(&body);
    text
}

fn ext(lang: Language) -> &'static str {
    match lang {
        Language::Rust => "rs",
        Language::Python => "py",
        Language::JavaScript => "js",
        Language::TypeScript => "ts",
        Language::Tsx => "tsx",
        Language::Go => "go",
        Language::C => "c",
        Language::Cpp => "cpp",
        Language::Java => "java",
        Language::PlainText => "txt",
    }
}

/// `text` with every definition name (but dunder names) suffixed `_<k>`.
fn renamed(lang: Language, text: &str, k: usize) -> String {
    let tree = syntax::parse(lang, text).expect("parse");
    let mut names: Vec<String> =
        syntax::definitions(lang, &tree, text).into_iter().map(|d| d.name).filter(|n| n.len() >= 3 && !n.starts_with("__")).collect();
    names.sort();
    names.dedup();
    let alternation: Vec<String> = names.iter().map(|n| regex::escape(n)).collect();
    let re = regex::Regex::new(&format!(r"\b({})\b", alternation.join("|"))).expect("regex");
    re.replace_all(text, |c: &regex::Captures| format!("{}_{k}", &c[1])).into_owned()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    (at(0.5), at(0.99), *v.last().unwrap())
}

fn main() {
    let o = opts();
    let t = Instant::now();
    assert!(syntax::warm_up().is_empty(), "queries compile");
    println!(
        "{} CPUs, load average {}; queries compiled in {:.1} ms",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg(),
        ms(t.elapsed())
    );
    let mut files = corpus(&o.corpus);
    files.extend(humaneval_x(&o.data));
    files.extend(c_sources());
    let langs: Vec<Language> =
        syntax::GRAMMARS.iter().map(|g| g.language).filter(|l| *l != Language::Tsx && files.iter().any(|(f, _)| f == l)).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();

    // The big file of each language: its files concatenated to >= 5,000 lines.
    let timed = |l: &Language| o.langs.as_ref().is_none_or(|v| v.iter().any(|n| n == l.name()));
    let big: Vec<(Language, String, PathBuf)> =
        langs.iter().filter(|l| timed(l)).map(|&l| (l, big_file(l, &files), root.join(format!("current/big.{}", ext(l))))).collect();

    // 1. The workspace: `o.files` files, the languages in turn.
    let t = Instant::now();
    // Files of the corpus's size at most (not ggml.c's 260 KB, copied hundreds of times).
    let pools: Vec<Vec<&String>> =
        langs.iter().map(|&lang| files.iter().filter(|(l, t)| *l == lang && t.len() <= 64 << 10).map(|(_, t)| t).collect()).collect();
    let mut bytes_on_disk = 0usize;
    for i in 0..o.files {
        let which = i % langs.len();
        let (lang, pool) = (langs[which], &pools[which]);
        let k = i / langs.len();
        let src = pool[k % pool.len()];
        // Copies 0 and 1 keep the original names.
        let text = if k < 2 { src.to_string() } else { renamed(lang, src, k) };
        let path = root.join(format!("pkg{:02}/sub{}/module_{i:04}.{}", i % 40, i % 3, ext(lang)));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        bytes_on_disk += text.len();
        std::fs::write(&path, text).unwrap();
    }
    for (_, text, path) in &big {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    println!(
        "workspace: {} files of {} languages ({}) + {} big files, {:.1} MB, written in {:.1} s",
        o.files,
        langs.len(),
        langs.iter().map(|l| l.name()).collect::<Vec<_>>().join(", "),
        big.len(),
        bytes_on_disk as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let rss_before = rss_kib();
    let index = WorkspaceIndex::new(vec![root.to_path_buf()], IndexLimits::default());
    let t = Instant::now();
    let handle = index.spawn_build();
    // Lookups while the build runs: they must not wait for it.
    let mut during = Vec::new();
    while index.is_building() {
        let q = Instant::now();
        let _ = index.lookup("Deserializer");
        during.push(ms(q.elapsed()));
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.join().unwrap();
    let build = t.elapsed();
    let rss_after = rss_kib();
    let s = index.stats();
    println!(
        "index build: {} files, {} defs, {:.2} s, RSS +{:.1} MB, index estimate {:.1} MB{}",
        s.files,
        s.definitions,
        build.as_secs_f64(),
        (rss_after.saturating_sub(rss_before)) as f64 / 1024.0,
        s.bytes as f64 / (1 << 20) as f64,
        if s.truncated { " (limits reached)" } else { "" }
    );
    println!("  skipped: {:?}", s.skipped);
    if !during.is_empty() {
        let (p50, p99, max) = percentiles(during.clone());
        println!("  lookups during the build: {} lookups, p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms", during.len());
    }

    // 2. Per-request syntax work on the big files.
    for (lang, src, path) in &big {
        per_request(&index, *lang, src, path, o.positions);
    }
}

/// Byte offset of the start of each line.
fn line_offsets(src: &str) -> Vec<usize> {
    let mut v = vec![0];
    v.extend(src.match_indices('\n').map(|(i, _)| i + 1));
    v
}

/// The LSP position (UTF-8 columns) of a byte offset.
fn pos_of(lines: &[usize], byte: usize) -> Pos {
    let row = lines.partition_point(|&s| s <= byte) - 1;
    Pos::new(row as u32, (byte - lines[row]) as u32)
}

/// Runs of each request at one position (see `per_request`).
const REPEATS: usize = 3;

/// What the server does for one keystroke and completion request, as the
/// server does it: the `didChange` edit applied to the open `Document`, its
/// snapshot (the tree reparsed within `PARSE_BUDGET`, a longer reparse
/// going on in the background), the text copied for the queries, then the
/// queries and the index lookup of `context::build` and `cross_file`.
fn per_request(index: &WorkspaceIndex, lang: Language, src: &str, path: &Path, positions: usize) {
    let mut doc = Document::new(src, 0, lang);
    assert!(doc.tree().is_some(), "parse");
    let lines = line_offsets(src);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let steps = ["edit + reparse", "copy text", "enclosing_scopes", "imports", "identifiers_in", "top_level_item_lines", "context_for"];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); steps.len()];
    let mut totals = Vec::new();
    let mut best_times: Vec<Vec<f64>> = vec![Vec::new(); steps.len()];
    let mut best_totals = Vec::new();
    let mut chunks_found = 0usize;
    let mut context_chars = 0usize;
    let mut past_budget = 0usize;
    let mut version = 0;
    for _ in 0..positions {
        let mut at = rng.below(src.len());
        while !src.is_char_boundary(at) {
            at -= 1;
        }
        let start = pos_of(&lines, at);
        let after = Pos::new(start.line, start.character + 1);
        let row = start.line as usize;

        // The whole request, `REPEATS` times: the first run as measured, and
        // the fastest, which leaves out the time other processes held the
        // (shared) cores. Between runs (not timed) the character is taken
        // back and the tree brought up to date.
        let mut best: Option<[f64; 7]> = None;
        for run in 0..REPEATS {
            version += 1;
            let t0 = Instant::now();
            // Type one character at the cursor.
            doc.apply_versioned(version, vec![Change { range: Some((start, start)), text: "x".into() }], Encoding::Utf8);
            let snap = doc.snapshot();
            let tree = snap.tree.as_ref().expect("tree");
            let t1 = Instant::now();
            let text = snap.rope.to_string();
            let t2 = Instant::now();
            let cursor = at + 1;
            let scopes = syntax::enclosing_scopes(lang, tree, &text, cursor);
            let t3 = Instant::now();
            let imports = syntax::imports(lang, tree, &text);
            let t4 = Instant::now();
            let from = lines[row.saturating_sub(20)];
            let to = lines.get(row + 20).map_or(text.len(), |&b| (b + 1).min(text.len()));
            let names = syntax::identifiers_in(lang, tree, &text, from..to);
            let t5 = Instant::now();
            let items = syntax::top_level_item_lines(lang, tree);
            let t6 = Instant::now();
            let chunks = index.context_for_imports(path, &names, &imports, 4000);
            let t7 = Instant::now();

            std::hint::black_box((&scopes, &items));
            let step = [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6), (t6, t7)].map(|(a, b)| ms(b - a));
            if run == 0 {
                chunks_found += chunks.len();
                context_chars += chunks.iter().map(|c| c.text.len()).sum::<usize>();
                past_budget += usize::from(!doc.tree_is_current());
                for (i, t) in step.iter().enumerate() {
                    times[i].push(*t);
                }
                totals.push(ms(t7 - t0));
            }
            if best.is_none_or(|b| b.iter().sum::<f64>() > step.iter().sum::<f64>()) {
                best = Some(step);
            }
            drop(snap);
            version += 1;
            doc.apply_versioned(version, vec![Change { range: Some((start, after)), text: String::new() }], Encoding::Utf8);
            doc.exact_tree();
        }
        let best = best.expect("one run");
        for (i, t) in best.iter().enumerate() {
            best_times[i].push(*t);
        }
        best_totals.push(best.iter().sum());
    }
    assert_eq!(doc.text(), src, "every edit was taken back");
    println!(
        "per request, {} file of {} lines ({:.0} KB), {} cursor positions (context: {:.1} chunks, {:.0} chars on average):",
        lang.name(),
        lines.len(),
        src.len() as f64 / 1024.0,
        positions,
        chunks_found as f64 / positions as f64,
        context_chars as f64 / positions as f64
    );
    println!(
        "  reparses past the budget ({PARSE_BUDGET:?} of CPU time), finished in the background: {past_budget} of {positions} ({:.1}%)",
        100.0 * past_budget as f64 / positions as f64
    );
    println!("  {:<22} {:<44} best of {REPEATS} per position", "", "as measured (first run)");
    for ((name, t), bt) in steps.iter().zip(times).zip(best_times) {
        let (p50, p99, max) = percentiles(t);
        let (b50, b99, bmax) = percentiles(bt);
        println!("  {name:<22} p50 {p50:6.3}  p99 {p99:6.3}  max {max:7.3} ms    p50 {b50:6.3}  p99 {b99:6.3}  max {bmax:7.3} ms");
    }
    let (p50, p99, max) = percentiles(totals);
    let (b50, b99, bmax) = percentiles(best_totals);
    println!("  {:<22} p50 {p50:6.3}  p99 {p99:6.3}  max {max:7.3} ms    p50 {b50:6.3}  p99 {b99:6.3}  max {bmax:7.3} ms", "total");
    println!(
        "  target p99 <= 5 ms: {} as measured, {} best of {REPEATS}",
        if p99 <= 5.0 { "met" } else { "MISSED" },
        if b99 <= 5.0 { "met" } else { "MISSED" }
    );
}
