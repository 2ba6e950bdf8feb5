//! What the two quality benches share (quality.rs in-process,
//! quality_server.rs over LSP): paths and defaults, stopping the engines on a
//! signal, the test thread, llama-server's `/infill` answers and their plain
//! cut, the report's numbers and files.

use crate::peer;
pub use crate::process::{repo_root, stop_children_on_signal, target_dir};
use crate::score::{Outcome, Scorer};
use crate::sets::{Lang, Task};
use anyhow::{bail, Context};
use locode::config::Config;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Options both benches take, in the same place in their --help (flattened
/// into each one's options).
#[derive(clap::Args, Debug)]
pub struct RunOpts {
    /// CPU threads for each engine.
    #[arg(long, default_value_t = 2)]
    pub threads: u32,
    /// Seed of the sample (Python `random.Random(seed).shuffle`).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// GGUF model for both engines (default: locode's cached default model).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

/// `cargo bench` runs the benchmark in the package folder (server/); a
/// relative path on the command line is meant from where cargo was started
/// (the shell's $PWD).
pub fn from_invocation_dir(p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match std::env::var_os("PWD") {
        Some(d) => Path::new(&d).join(p),
        None => p.to_path_buf(),
    }
}

/// The folder with human-eval-infilling/ and humaneval-x-rust/:
/// $LOCODE_BENCH_DATA, else shared/bench-data or ../shared/bench-data.
pub fn default_data() -> PathBuf {
    if let Some(d) = std::env::var_os("LOCODE_BENCH_DATA") {
        return PathBuf::from(d);
    }
    let root = repo_root();
    for c in [root.join("shared/bench-data"), root.join("../shared/bench-data")] {
        if c.is_dir() {
            return c;
        }
    }
    root.join("../shared/bench-data")
}

pub fn default_peer() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
    std::env::var_os("LOCODE_PEER_DIR").map(PathBuf::from).unwrap_or_else(|| home.join(".cache/locode/peer")).join("llama-server")
}

/// --model, else locode's cached default model; an error when it is missing.
pub fn model_path(model: Option<&Path>) -> anyhow::Result<PathBuf> {
    let model = model.map(Path::to_path_buf).unwrap_or_else(|| Config::default().engine.model_path());
    if !model.exists() {
        bail!("model {} is missing: run `make model` (or pass --model PATH)", model.display());
    }
    Ok(model)
}

/// --out, else `<target>/<default>`, created.
pub fn out_dir(out: Option<&Path>, default: &str) -> anyhow::Result<PathBuf> {
    let out_dir = out.map(Path::to_path_buf).unwrap_or_else(|| target_dir().join(default));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    Ok(out_dir)
}

/// --limit: None when not given (each set's default), Some(None) for `all`.
pub fn parse_limit(limit: Option<&str>) -> anyhow::Result<Option<Option<usize>>> {
    Ok(match limit {
        None => None,
        Some("all") => Some(None),
        Some(n) => Some(Some(n.parse().context("--limit takes a number or `all`")?)),
    })
}

/// The llama-server binary to run: None with --skip-peer, or (said on
/// stderr) when it is missing.
pub fn peer_bin(bench: &str, skip: bool, bin: Option<&Path>) -> Option<PathBuf> {
    let bin = bin.map(Path::to_path_buf).unwrap_or_else(default_peer);
    if skip {
        None
    } else if !bin.exists() {
        eprintln!("{bench}: {} is missing; build it with benches/peer/build-llama-server.sh. Running locode alone.", bin.display());
        None
    } else {
        Some(bin)
    }
}

/// Starts llama-server on the model, its stderr in `<out_dir>/llama-server.log`.
pub fn start_peer(bin: &Path, model: &Path, threads: u32, out_dir: &Path) -> anyhow::Result<peer::LlamaServer> {
    let s = peer::LlamaServer::start(bin, model, threads, &out_dir.join("llama-server.log"), Duration::from_secs(300))?;
    eprintln!("llama-server: {} {}", bin.display(), s.args.join(" "));
    Ok(s)
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Programs to test while the engines generate.
pub type Pretest = Sender<(Lang, String)>;

/// Tests run on a background thread at `nice -n 19` while the engines
/// generate (pass rates do not depend on timing); what is left is run after
/// generation (`finish_tests`).
pub fn start_tests(test_timeout: Duration) -> (Pretest, JoinHandle<Scorer>) {
    let (pretest, queue) = std::sync::mpsc::channel::<(Lang, String)>();
    let tester = std::thread::spawn(move || {
        let mut scorer = Scorer::new(test_timeout);
        scorer.nice = 19;
        while let Ok((lang, program)) = queue.recv() {
            scorer.score(lang, &program);
        }
        scorer
    });
    (pretest, tester)
}

/// The scorer, once every `Pretest` sender is dropped and the queue tested.
pub fn finish_tests(bench: &str, tester: JoinHandle<Scorer>) -> anyhow::Result<Scorer> {
    eprintln!("{bench}: finishing the tests");
    let mut scorer = tester.join().map_err(|_| anyhow::anyhow!("the test thread panicked"))?;
    // A timeout at nice 19 may be starvation: run those again at normal priority.
    scorer.nice = 0;
    scorer.forget_timeouts();
    Ok(scorer)
}

/// Asks llama-server's `/infill` the way llama.vim asks
/// (benches/replay/peer.rs): greedy, `n_predict` tokens at most, `stop:
/// ["\n"]` for the single-line sets. It sees the document only. The answer's
/// JSON or the error, and the milliseconds it took.
pub fn infill(port: u16, task: &Task, n_predict: u32, timeout: Duration) -> (Result<Value, String>, f64) {
    let body = peer::infill_request(&task.doc, task.cursor, n_predict, task.set.single_line()).to_string();
    let t0 = Instant::now();
    let r = peer::http(port, "POST", "/infill", Some(&body), timeout);
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let r = match r {
        Ok((200, body)) => Ok(serde_json::from_str(&body).unwrap_or(Value::Null)),
        Ok((code, body)) => Err(format!("HTTP {code}: {}", body.chars().take(200).collect::<String>())),
        Err(e) => Err(e.to_string()),
    };
    (r, ms)
}

pub fn first_line(s: &str) -> &str {
    s.split('\n').next().unwrap_or("")
}

/// The "plain cut": the generation up to (not including) the first line that
/// repeats the first non-blank line after the cursor. The generation's first
/// line counts only when the cursor starts its line (a whole-line hole).
pub fn plain_cut<'a>(task: &Task, gen: &'a str) -> &'a str {
    let Some(target) = task.suffix_first_line() else { return gen };
    let line_start = task.doc[..task.cursor].rfind('\n').map_or(0, |i| i + 1);
    let whole_line = task.doc[line_start..task.cursor].trim().is_empty();
    let mut start: usize = 0;
    for (i, line) in gen.split('\n').enumerate() {
        if (i > 0 || whole_line) && line.trim() == target {
            return &gen[..start.saturating_sub(1)];
        }
        start += line.len() + 1;
    }
    gen
}

/// llama-server's fill, cut: its first line in the single-line sets, else
/// the plain cut.
pub fn llama_cut(task: &Task, gen: &str) -> String {
    if task.set.single_line() {
        first_line(gen).to_string()
    } else {
        plain_cut(task, gen).to_string()
    }
}

/// The last 400 characters before the cursor, for the records.
pub fn before(task: &Task) -> String {
    task.doc[..task.cursor].chars().rev().take(400).collect::<String>().chars().rev().collect()
}

/// The first 200 characters after the cursor, for the records.
pub fn after(task: &Task) -> String {
    task.doc[task.cursor..].chars().take(200).collect()
}

pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

pub fn p50(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[(s.len() - 1) / 2]
}

pub fn pct(k: usize, n: usize) -> String {
    if n == 0 {
        "—".into()
    } else {
        format!("{:.3}", k as f64 / n as f64)
    }
}

/// Milliseconds `mean / p50`, or a dash.
pub fn ms(v: &[f64]) -> String {
    if v.is_empty() {
        "—".into()
    } else {
        format!("{:.0} / {:.0}", mean(v), p50(v))
    }
}

/// `k1 c1, k2 c2, ...`
pub fn counts<K: Display>(m: &BTreeMap<K, usize>) -> String {
    m.iter().map(|(k, c)| format!("{k} {c}")).collect::<Vec<_>>().join(", ")
}

/// One set's scores: the tasks counted, those left out, and each fill
/// variant's passes and outcomes.
#[derive(Debug, Default)]
pub struct Tally {
    /// Tasks counted (their reference fill passes).
    pub n: usize,
    /// Tasks left out because their reference fill fails.
    pub broken: Vec<String>,
    pub passed: BTreeMap<&'static str, usize>,
    pub outcomes: BTreeMap<&'static str, BTreeMap<&'static str, usize>>,
}

impl Tally {
    /// Counts the task when its reference fill passes (true); else leaves
    /// it out.
    pub fn admit(&mut self, id: &str, reference: &Outcome) -> bool {
        if *reference != Outcome::Pass {
            self.broken.push(id.to_string());
            return false;
        }
        self.n += 1;
        true
    }

    /// Counts the outcome of a variant's fill of a counted task.
    pub fn count(&mut self, variant: &'static str, o: &Outcome) {
        *self.passed.entry(variant).or_default() += (*o == Outcome::Pass) as usize;
        *self.outcomes.entry(variant).or_default().entry(o.name()).or_default() += 1;
    }

    /// A variant's pass rate, or a dash where it did not run.
    pub fn cell(&self, variant: &str) -> String {
        if self.outcomes.contains_key(variant) {
            pct(self.passed.get(variant).copied().unwrap_or(0), self.n)
        } else {
            "—".into()
        }
    }

    /// The breakdown's notes on tasks left out of the set: those whose
    /// reference fill fails, and problems skipped for external crates.
    pub fn left_out_notes(&self, skipped: usize) -> String {
        let mut s = String::new();
        if !self.broken.is_empty() {
            s.push_str(&format!("; {} left out because the reference fill fails: {}", self.broken.len(), self.broken.join(", ")));
        }
        if skipped > 0 {
            s.push_str(&format!("; {skipped} problems skipped for external crates"));
        }
        s
    }

    /// The breakdown's lines of outcomes, one per variant, its name `width`
    /// wide.
    pub fn outcome_lines(&self, width: usize) -> String {
        self.outcomes.iter().map(|(v, o)| format!("  {v:<width$} {}\n", counts(o))).collect()
    }
}

/// Writes report.md and results.json into `out_dir` and says so.
pub fn write_report(out_dir: &Path, md: &str, results: &Value) -> anyhow::Result<()> {
    std::fs::write(out_dir.join("report.md"), md)?;
    std::fs::write(out_dir.join("results.json"), serde_json::to_string_pretty(results)?)?;
    println!("wrote {} and {}", out_dir.join("report.md").display(), out_dir.join("results.json").display());
    Ok(())
}
