//! Quality benchmark: pass@1 of locode's completions, through the same
//! pipeline the server runs (document -> anchor -> `complete::suggest`), on
//! HumanEval-infilling (Python) and masked lines of HumanEval-X Rust, next to
//! llama-server's `/infill` with the same model, greedy. See
//! benches/README.md, "Quality".

#[allow(dead_code)]
#[path = "replay/peer.rs"]
mod peer;
#[path = "quality/score.rs"]
mod score;
#[path = "quality/sets.rs"]
mod sets;

use anyhow::{bail, Context};
use clap::Parser;
use locode::complete::{self, Spot};
use locode::config::Config;
use locode::context::choose_anchor;
use locode::documents::Document;
use locode::engine::{CancelToken, Engine};
use locode::syntax::Language;
use score::{Outcome, Scorer};
use serde::Serialize;
use serde_json::{json, Value};
use sets::{Lang, SetKind, SetInfo, Task};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "pass@1 of locode vs llama-server /infill on HumanEval-infilling and HumanEval-X Rust lines")]
struct Opts {
    /// Sets to run, comma-separated: single, multi, span, rust.
    #[arg(long, default_value = "single,multi,span,rust")]
    sets: String,
    /// Tasks per set (a seeded sample): a number or `all`. Default: single
    /// 200, multi 150, span all (164), rust 150.
    #[arg(long)]
    limit: Option<String>,
    /// Run locode only.
    #[arg(long)]
    skip_peer: bool,
    /// Run llama-server only.
    #[arg(long)]
    skip_locode: bool,
    /// CPU threads for each engine.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Seed of the sample (Python `random.Random(seed).shuffle`).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// GGUF model for both engines (default: locode's cached default model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// llama-server binary (default: ~/.cache/locode/peer/llama-server).
    #[arg(long)]
    peer_bin: Option<PathBuf>,
    /// Folder with human-eval-infilling/ and humaneval-x-rust/
    /// (default: $LOCODE_BENCH_DATA, else ../shared/bench-data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder (default: <target>/quality).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Timeout of each test run, seconds.
    #[arg(long, default_value_t = 10)]
    test_timeout_s: u64,
    /// Timeout of each completion request, seconds.
    #[arg(long, default_value_t = 120)]
    request_timeout_s: u64,
    /// Stop asking after this many minutes and score what ran.
    #[arg(long, default_value_t = 100.0)]
    max_minutes: f64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Engine processes to stop if the benchmark is interrupted (used by peer.rs).
pub static CHILDREN: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

fn stop_children_on_signal() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term), Ok(mut hup)) =
                (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()))
            else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            for pid in CHILDREN.lock().unwrap().iter() {
                let _ = std::process::Command::new("kill").arg(pid.to_string()).status();
            }
            eprintln!("quality: interrupted");
            std::process::exit(130);
        });
    });
}

fn from_invocation_dir(p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match std::env::var_os("PWD") {
        Some(d) => Path::new(&d).join(p),
        None => p.to_path_buf(),
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"))
}

fn default_data() -> PathBuf {
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

fn default_peer() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
    std::env::var_os("LOCODE_PEER_DIR").map(PathBuf::from).unwrap_or_else(|| home.join(".cache/locode/peer")).join("llama-server")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// One engine's answer to one task.
#[derive(Debug, Clone, Default, Serialize)]
struct Answer {
    text: String,
    ms: f64,
    prompt_tokens: usize,
    evaluated_tokens: usize,
    generated_tokens: usize,
    /// locode's mode at the cursor (`SingleLine`, `Block { .. }`).
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The fills scored, in table order.
const VARIANTS: [&str; 4] = ["locode", "locode_line", "llama_raw", "llama_cut"];

fn first_line(s: &str) -> &str {
    s.split('\n').next().unwrap_or("")
}

/// The "plain cut": the generation up to (not including) the first line that
/// repeats the first non-blank line after the cursor. The generation's first
/// line counts only when the cursor starts its line (a whole-line hole).
fn plain_cut<'a>(task: &Task, gen: &'a str) -> &'a str {
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

/// The fill of `variant` for a task, or None when that engine did not run
/// (or the variant does not apply to the set).
fn fill(task: &Task, variant: &str, locode: Option<&Answer>, peer: Option<&Answer>) -> Option<String> {
    match variant {
        "locode" => locode.map(|a| a.text.clone()),
        "locode_line" => locode.filter(|_| task.set.single_line()).map(|a| first_line(&a.text).to_string()),
        "llama_raw" => peer.map(|a| a.text.clone()),
        "llama_cut" => peer.map(|a| if task.set.single_line() { first_line(&a.text).to_string() } else { plain_cut(task, &a.text).to_string() }),
        _ => None,
    }
}

/// locode's pipeline, in-process, as `locode serve` holds it.
struct Locode {
    engine: Engine,
    family: locode::prompt::Family,
    cfg: locode::config::CompletionConfig,
}

impl Locode {
    async fn load(opts: &Opts, model: &Path) -> anyhow::Result<Locode> {
        let engine = Engine::spawn();
        let config = Config::default();
        let mut ecfg = config.engine.clone();
        ecfg.threads = Some(opts.threads);
        ecfg.model = Some(model.to_path_buf());
        let t = Instant::now();
        let (info, family) = engine.load(ecfg, |_| {}).await.context("locode cannot load the model")?;
        eprintln!("locode: {} ({}) loaded in {:.1} s", info.description, info.family, t.elapsed().as_secs_f64());
        Ok(Locode { engine, family, cfg: config.completion })
    }

    /// Asks as the server does for a document just opened with this text and
    /// an inline completion request at the cursor: anchor, snapshot,
    /// `complete::suggest` with the default completion settings. One slot per
    /// set, as one editor buffer would have (KV reuse is exact).
    async fn ask(&self, task: &Task) -> Answer {
        let cfg = &self.cfg;
        let lang = match task.lang {
            Lang::Python => Language::Python,
            Lang::Rust => Language::Rust,
        };
        let slot = format!("file:///quality/{}.{}", task.set.key(), if task.lang == Lang::Rust { "rs" } else { "py" });
        let mut doc = Document::new(&task.doc, 1, lang);
        let cursor = doc.rope.byte_to_char(task.cursor);
        let anchor = choose_anchor(doc.anchor, cursor, &doc.rope, cfg.middle_chars);
        doc.anchor = Some(anchor);
        let snap = doc.snapshot();
        let spot = Spot { snap: &snap, cursor, anchor };
        let mode = format!("{:?}", complete::prepare(&self.family, &spot, cfg).0.mode);
        let t0 = Instant::now();
        let r = complete::suggest(&self.engine, &self.family, &slot, &spot, cfg, CancelToken::new()).await;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        match r {
            Ok(s) => Answer {
                text: s.text,
                ms,
                prompt_tokens: s.stats.prompt_tokens,
                evaluated_tokens: s.stats.evaluated_tokens,
                generated_tokens: s.stats.generated_tokens,
                mode: Some(mode),
                error: None,
            },
            Err(e) => Answer { ms, mode: Some(mode), error: Some(e.to_string()), ..Default::default() },
        }
    }
}

/// Asks llama-server's `/infill` the way llama.vim asks
/// (benches/replay/peer.rs): greedy, `n_predict` = locode's `maxTokens`,
/// `stop: ["\n"]` for the single-line sets.
fn ask_peer(port: u16, task: &Task, timeout: Duration) -> Answer {
    let n_predict = Config::default().completion.max_tokens;
    let body = peer::infill_request(&task.doc, task.cursor, n_predict, task.set.single_line()).to_string();
    let t0 = Instant::now();
    let r = peer::http(port, "POST", "/infill", Some(&body), timeout);
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    match r {
        Ok((200, body)) => {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let n = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0) as usize;
            Answer {
                text: v["content"].as_str().unwrap_or("").to_string(),
                ms,
                prompt_tokens: n("/tokens_evaluated"),
                evaluated_tokens: n("/timings/prompt_n"),
                generated_tokens: n("/timings/predicted_n"),
                mode: None,
                error: None,
            }
        }
        Ok((code, body)) => Answer { ms, error: Some(format!("HTTP {code}: {}", body.chars().take(200).collect::<String>())), ..Default::default() },
        Err(e) => Answer { ms, error: Some(e.to_string()), ..Default::default() },
    }
}

/// The order tasks are asked in: round-robin over the sets, so that a run
/// stopped by `--max-minutes` still covers every set.
fn schedule(sets: &[(SetKind, Vec<Task>)]) -> Vec<(usize, usize)> {
    let longest = sets.iter().map(|(_, t)| t.len()).max().unwrap_or(0);
    (0..longest).flat_map(|i| (0..sets.len()).filter(move |&s| i < sets[s].1.len()).map(move |s| (s, i))).collect()
}

type Answers = BTreeMap<String, Answer>;

/// Both engines up at once, asked in turn for every task (llama-server
/// first, then locode), so that load from other processes hits both alike
/// and a stopped run has answers from both for the same tasks.
fn generate(
    opts: &Opts,
    model: &Path,
    peer_bin: Option<&Path>,
    out_dir: &Path,
    sets: &[(SetKind, Vec<Task>)],
    pretest: &std::sync::mpsc::Sender<(Lang, String)>,
) -> anyhow::Result<(Option<Answers>, Option<Answers>, (String, String))> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let locode = if opts.skip_locode { None } else { Some(rt.block_on(Locode::load(opts, model))?) };
    let server = match peer_bin {
        Some(bin) => {
            let s = peer::LlamaServer::start(bin, model, opts.threads, &out_dir.join("llama-server.log"), Duration::from_secs(300))?;
            eprintln!("llama-server: {} {}", bin.display(), s.args.join(" "));
            Some(s)
        }
        None => None,
    };
    let timeout = Duration::from_secs(opts.request_timeout_s);
    let order = schedule(sets);
    let (mut la, mut pa) = (Answers::new(), Answers::new());
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(opts.max_minutes * 60.0);
    let load_start = loadavg();
    let (mut lsum, mut psum) = (0.0, 0.0);
    for (k, &(s, i)) in order.iter().enumerate() {
        if Instant::now() > deadline {
            eprintln!("quality: --max-minutes {} reached after {k} of {} tasks; scoring what ran", opts.max_minutes, order.len());
            break;
        }
        let task = &sets[s].1[i];
        if let Some(server) = &server {
            let a = ask_peer(server.port, task, timeout);
            psum += a.ms;
            pa.insert(task.id.clone(), a);
        }
        if let Some(l) = &locode {
            let a = rt.block_on(l.ask(task));
            lsum += a.ms;
            la.insert(task.id.clone(), a);
        }
        // Test the fills meanwhile, at the lowest priority.
        let _ = pretest.send((task.lang, task.program(&task.expected)));
        for v in VARIANTS {
            if let Some(f) = fill(task, v, la.get(&task.id), pa.get(&task.id)) {
                let _ = pretest.send((task.lang, task.program(&f)));
            }
        }
        let done = k + 1;
        if done % 10 == 0 || done == order.len() {
            let elapsed = started.elapsed().as_secs_f64();
            eprintln!(
                "[{done}/{}] locode mean {:.0} ms, llama-server mean {:.0} ms, {:.0} s elapsed, eta {:.0} s, load {}",
                order.len(),
                lsum / done as f64,
                psum / done as f64,
                elapsed,
                elapsed / done as f64 * (order.len() - done) as f64,
                loadavg()
            );
        }
    }
    let loads = (load_start, loadavg());
    Ok((locode.map(|_| la), server.map(|_| pa), loads))
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn p50(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[(s.len() - 1) / 2]
}

fn pct(passed: usize, n: usize) -> String {
    if n == 0 {
        "—".into()
    } else {
        format!("{:.3}", passed as f64 / n as f64)
    }
}

fn main() -> anyhow::Result<()> {
    let mut opts = Opts::parse();
    for p in [&mut opts.model, &mut opts.peer_bin, &mut opts.data, &mut opts.out] {
        *p = p.take().map(|p| from_invocation_dir(&p));
    }
    stop_children_on_signal();
    let data = opts.data.clone().unwrap_or_else(default_data);
    let model = opts.model.clone().unwrap_or_else(|| Config::default().engine.model_path());
    if !model.exists() {
        bail!("model {} is missing: run `make model` (or pass --model PATH)", model.display());
    }
    let out_dir = opts.out.clone().unwrap_or_else(|| target_dir().join("quality"));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let limit: Option<Option<usize>> = match opts.limit.as_deref() {
        None => None,
        Some("all") => Some(None),
        Some(n) => Some(Some(n.parse().context("--limit takes a number or `all`")?)),
    };

    let mut sets: Vec<(SetKind, Vec<Task>)> = Vec::new();
    let mut infos: BTreeMap<&'static str, SetInfo> = BTreeMap::new();
    for name in opts.sets.split(',').filter(|s| !s.trim().is_empty()) {
        let kind = SetKind::parse(name)?;
        let (tasks, info) = sets::load(kind, &data, limit.unwrap_or(kind.default_limit()), opts.seed)?;
        println!(
            "{:<26} {} of {} {} (seed {}){}",
            kind.title(),
            tasks.len(),
            info.population,
            if kind == SetKind::Rust { "maskable lines" } else { "problems" },
            opts.seed,
            if info.skipped.is_empty() { String::new() } else { format!("; {} problems skipped: {}", info.skipped.len(), info.skipped.join(", ")) }
        );
        infos.insert(kind.key(), info);
        sets.push((kind, tasks));
    }
    println!("model: {}  threads: {}", model.display(), opts.threads);

    let peer_bin = opts.peer_bin.clone().unwrap_or_else(default_peer);
    let peer_bin = if opts.skip_peer {
        None
    } else if !peer_bin.exists() {
        eprintln!("quality: {} is missing; build it with benches/peer/build-llama-server.sh. Running locode alone.", peer_bin.display());
        None
    } else {
        Some(peer_bin)
    };
    // Tests run on a background thread at `nice -n 19` while the engines
    // generate (pass rates do not depend on timing); what is left is run
    // after generation.
    let (pretest, queue) = std::sync::mpsc::channel::<(Lang, String)>();
    let test_timeout = Duration::from_secs(opts.test_timeout_s);
    let tester = std::thread::spawn(move || {
        let mut scorer = Scorer::new(test_timeout);
        scorer.nice = 19;
        while let Ok((lang, program)) = queue.recv() {
            scorer.score(lang, &program);
        }
        scorer
    });
    let (locode, peer, loads) = generate(&opts, &model, peer_bin.as_deref(), &out_dir, &sets, &pretest)?;
    drop(pretest);

    eprintln!("quality: finishing the tests");
    let mut scorer = tester.join().map_err(|_| anyhow::anyhow!("the test thread panicked"))?;
    // A timeout at nice 19 may be starvation: run those again at normal priority.
    scorer.nice = 0;
    scorer.forget_timeouts();
    let mut records = Vec::new();
    let mut md = String::new();
    let mut table = String::new();
    table.push_str("| set | n | locode | locode 1st line | llama-server raw | llama-server cut | locode ms mean / p50 | llama-server ms mean / p50 |\n");
    table.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut breakdown = String::new();
    let mut summary = Vec::new();
    for (kind, tasks) in &sets {
        let mut passed: BTreeMap<&str, usize> = BTreeMap::new();
        let mut outcomes: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
        let mut n = 0;
        let mut broken = Vec::new();
        let (mut lms, mut pms) = (Vec::new(), Vec::new());
        let mut modes: BTreeMap<String, usize> = BTreeMap::new();
        let mut empty = 0;
        for task in tasks {
            let la = locode.as_ref().and_then(|m| m.get(&task.id));
            let pa = peer.as_ref().and_then(|m| m.get(&task.id));
            if la.is_none() && pa.is_none() {
                continue; // not asked (--max-minutes)
            }
            let reference = scorer.score(task.lang, &task.program(&task.expected));
            let mut rec = json!({
                "set": kind.key(), "id": task.id, "expected": task.expected,
                "before": task.doc[..task.cursor].chars().rev().take(400).collect::<String>().chars().rev().collect::<String>(),
                "after": task.doc[task.cursor..].chars().take(200).collect::<String>(),
                "locode": la, "llama_server": pa, "reference": reference.name(),
            });
            if reference != Outcome::Pass {
                broken.push(task.id.clone());
                records.push(rec);
                continue;
            }
            n += 1;
            if let Some(a) = la {
                lms.push(a.ms);
                *modes.entry(a.mode.clone().unwrap_or_default().split(' ').next().unwrap_or("").to_string()).or_default() += 1;
                empty += a.text.trim().is_empty() as usize;
            }
            if let Some(a) = pa {
                pms.push(a.ms);
            }
            for v in VARIANTS {
                if let Some(f) = fill(task, v, la, pa) {
                    let o = scorer.score(task.lang, &task.program(&f));
                    *passed.entry(v).or_default() += (o == Outcome::Pass) as usize;
                    *outcomes.entry(v).or_default().entry(o.name()).or_default() += 1;
                    rec[format!("{v}_fill")] = json!(f);
                    rec[format!("{v}_outcome")] = json!(o.name());
                }
            }
            records.push(rec);
        }
        let cell = |v: &str| if outcomes.contains_key(v) { pct(passed.get(v).copied().unwrap_or(0), n) } else { "—".into() };
        let ms = |v: &[f64]| if v.is_empty() { "—".into() } else { format!("{:.0} / {:.0}", mean(v), p50(v)) };
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            kind.title(),
            n,
            cell("locode"),
            cell("locode_line"),
            cell("llama_raw"),
            cell("llama_cut"),
            ms(&lms),
            ms(&pms)
        ));
        breakdown.push_str(&format!("\n{} (n = {n}", kind.title()));
        if !broken.is_empty() {
            breakdown.push_str(&format!("; {} left out because the reference fill fails: {}", broken.len(), broken.join(", ")));
        }
        if let Some(info) = infos.get(kind.key()).filter(|i| !i.skipped.is_empty()) {
            breakdown.push_str(&format!("; {} problems skipped for external crates", info.skipped.len()));
        }
        breakdown.push_str(")\n");
        for (v, o) in &outcomes {
            breakdown.push_str(&format!("  {v:<12} {}\n", o.iter().map(|(k, c)| format!("{k} {c}")).collect::<Vec<_>>().join(", ")));
        }
        if !modes.is_empty() {
            breakdown.push_str(&format!(
                "  locode modes: {}; empty suggestions: {empty}\n",
                modes.iter().map(|(k, c)| format!("{k} {c}")).collect::<Vec<_>>().join(", ")
            ));
        }
        summary.push(json!({
            "set": kind.key(), "n": n, "left_out": broken, "passed": passed, "outcomes": outcomes,
            "locode_ms_mean": mean(&lms), "locode_ms_p50": p50(&lms),
            "llama_server_ms_mean": mean(&pms), "llama_server_ms_p50": p50(&pms),
        }));
    }
    let load_line = format!("load average (1/5/15 min) {} at the start of generation, {} at its end", loads.0, loads.1);
    md.push_str("# Quality: pass@1, locode vs llama-server /infill\n\n");
    md.push_str(&format!("model `{}`, {} threads per engine, greedy, seed {}, {} test runs\n\n", model.display(), opts.threads, opts.seed, scorer.runs));
    md.push_str(&table);
    md.push_str(&format!("\n{load_line}\n\n```\n{}```\n", breakdown.trim_start()));
    println!("\n{table}");
    println!("{load_line}");
    println!("{breakdown}");
    std::fs::write(out_dir.join("report.md"), &md)?;
    let results = json!({
        "model": model, "threads": opts.threads, "seed": opts.seed, "sets": opts.sets, "limit": opts.limit,
        "load_average": loads, "summary": summary, "records": records,
    });
    std::fs::write(out_dir.join("results.json"), serde_json::to_string_pretty(&results)?)?;
    println!("wrote {} and {}", out_dir.join("report.md").display(), out_dir.join("results.json").display());
    Ok(())
}
