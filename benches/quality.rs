//! Quality benchmark: pass@1 of locode's completions, through the same
//! pipeline the server runs (document -> anchor -> `complete::suggest`), on
//! HumanEval-infilling (Python) and masked lines of HumanEval-X Rust, next to
//! llama-server's `/infill` with the same model, greedy. See
//! benches/README.md, "Quality".

#[path = "quality/common.rs"]
mod common;
#[allow(dead_code)]
#[path = "replay/peer.rs"]
mod peer;
// (`server_bin` is for the benches that start the server.)
#[allow(dead_code)]
#[path = "replay/process.rs"]
mod process;
#[path = "quality/score.rs"]
mod score;
#[path = "quality/sets.rs"]
mod sets;

use anyhow::Context;
use clap::Parser;
use common::{
    counts, default_data, first_line, from_invocation_dir, llama_cut, loadavg, mean, ms, p50, stop_children_on_signal, write_report,
    Pretest, RunOpts, Tally,
};
use locode::complete::{self, Spot};
use locode::config::Config;
use locode::context::choose_anchor;
use locode::documents::Document;
use locode::engine::{CancelToken, Engine};
use locode::syntax::Language;
use serde::Serialize;
use serde_json::{json, Value};
use sets::{SetInfo, SetKind, Task};
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
    #[command(flatten)]
    run: RunOpts,
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
    /// locode's `firstAnswerMs`. Each task is a document just opened, whose
    /// first request the server answers from a small first window; 0 (the
    /// default) scores the answer from the whole prompt, which the server
    /// builds next and every later request gets. 1500 (the server's
    /// default) scores the first window.
    #[arg(long, default_value_t = 0)]
    first_answer_ms: u64,
    /// Timeout of each test run, seconds.
    #[arg(long, default_value_t = 10)]
    test_timeout_s: u64,
    /// Timeout of each completion request, seconds.
    #[arg(long, default_value_t = 120)]
    request_timeout_s: u64,
    /// Stop asking after this many minutes and score what ran.
    #[arg(long, default_value_t = 100.0)]
    max_minutes: f64,
    /// Only these task ids of the sample (comma-separated, e.g.
    /// `CPP/62/L0,JavaScript/125/L7`): to look again at single answers.
    #[arg(long)]
    only: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

pub use process::CHILDREN;

/// One engine's answer to one task.
#[derive(Debug, Clone, Default, Serialize)]
struct Answer {
    text: String,
    /// locode: the model's generation before post-processing.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<String>,
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

/// The fill of `variant` for a task, or None when that engine did not run
/// (or the variant does not apply to the set).
fn fill(task: &Task, variant: &str, locode: Option<&Answer>, peer: Option<&Answer>) -> Option<String> {
    match variant {
        "locode" => locode.map(|a| a.text.clone()),
        "locode_line" => locode.filter(|_| task.set.single_line()).map(|a| first_line(&a.text).to_string()),
        "llama_raw" => peer.map(|a| a.text.clone()),
        "llama_cut" => peer.map(|a| llama_cut(task, &a.text)),
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
        ecfg.threads = Some(opts.run.threads);
        ecfg.model = Some(model.to_path_buf());
        // No KV states on disk: a state an earlier run saved for the same
        // prompt would be restored and its time not measured.
        ecfg.kv_cache_mb = 0;
        let t = Instant::now();
        let (info, family) = engine.load(ecfg, |_| {}).await.context("locode cannot load the model")?;
        eprintln!("locode: {} ({}) loaded in {:.1} s", info.description, info.family, t.elapsed().as_secs_f64());
        let cfg = locode::config::CompletionConfig { first_answer_ms: opts.first_answer_ms, ..config.completion };
        Ok(Locode { engine, family, cfg })
    }

    /// Asks as the server does for a document just opened with this text and
    /// an inline completion request at the cursor: anchor, snapshot,
    /// `complete::suggest` with the default completion settings. One slot per
    /// set, as one editor buffer would have (KV reuse is exact).
    async fn ask(&self, task: &Task) -> Answer {
        let cfg = &self.cfg;
        let lang = Language::detect(task.lang.lsp_id(), "");
        let slot = format!("file:///quality/{}.{}", task.set.key(), task.lang.ext());
        let mut doc = Document::new(&task.doc, 1, lang);
        let cursor = doc.rope.byte_to_char(task.cursor);
        let anchor = choose_anchor(None, cursor, &doc.rope, cfg.middle_chars, lang);
        let snap = doc.snapshot();
        let spot = Spot { snap: &snap, cursor, anchor };
        let mode = format!("{:?}", complete::prepare(&self.family, &spot, cfg).0.mode);
        let t0 = Instant::now();
        let r = complete::suggest(&self.engine, &self.family, &slot, &spot, cfg, CancelToken::new()).await;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        match r {
            Ok(s) => Answer {
                text: s.text,
                raw: Some(s.stats.text),
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
    match common::infill(port, task, Config::default().completion.max_tokens, timeout) {
        (Ok(v), ms) => {
            let n = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0) as usize;
            Answer {
                text: v["content"].as_str().unwrap_or("").to_string(),
                ms,
                prompt_tokens: n("/tokens_evaluated"),
                evaluated_tokens: n("/timings/prompt_n"),
                generated_tokens: n("/timings/predicted_n"),
                mode: None,
                raw: None,
                error: None,
            }
        }
        (Err(e), ms) => Answer { ms, error: Some(e), ..Default::default() },
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
/// locode's answers, llama-server's, and the two engines' names.
type Generated = (Option<Answers>, Option<Answers>, (String, String));

fn generate(
    opts: &Opts,
    model: &Path,
    peer_bin: Option<&Path>,
    out_dir: &Path,
    sets: &[(SetKind, Vec<Task>)],
    pretest: &Pretest,
) -> anyhow::Result<Generated> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let locode = if opts.skip_locode { None } else { Some(rt.block_on(Locode::load(opts, model))?) };
    let server = match peer_bin {
        Some(bin) => Some(common::start_peer(bin, model, opts.run.threads, out_dir)?),
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

fn main() -> anyhow::Result<()> {
    let mut opts = Opts::parse();
    // The engine's and trimmer's debug lines, for a look at one task (`--only`).
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("LOCODE_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
    }
    for p in [&mut opts.run.model, &mut opts.peer_bin, &mut opts.data, &mut opts.out] {
        *p = p.take().map(|p| from_invocation_dir(&p));
    }
    stop_children_on_signal("quality");
    let data = opts.data.clone().unwrap_or_else(default_data);
    let model = common::model_path(opts.run.model.as_deref())?;
    let out_dir = common::out_dir(opts.out.as_deref(), "quality")?;
    let limit = common::parse_limit(opts.limit.as_deref())?;

    let mut sets: Vec<(SetKind, Vec<Task>)> = Vec::new();
    let mut infos: BTreeMap<&'static str, SetInfo> = BTreeMap::new();
    for name in opts.sets.split(',').filter(|s| !s.trim().is_empty()) {
        let kind = SetKind::parse(name)?;
        let (mut tasks, info) = sets::load(kind, &data, limit.unwrap_or(kind.default_limit()), opts.run.seed)?;
        if let Some(only) = &opts.only {
            let ids: Vec<&str> = only.split(',').map(str::trim).collect();
            tasks.retain(|t| ids.contains(&t.id.as_str()));
            // Each document as a file of its own, for `locode complete FILE:LINE:COL`.
            let docs = out_dir.join("docs");
            std::fs::create_dir_all(&docs)?;
            for t in &tasks {
                let before = &t.doc[..t.cursor];
                let (line, col) = (before.matches('\n').count() + 1, before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1);
                let name = format!("{}.{}", t.id.replace('/', "_"), t.lang.ext());
                std::fs::write(docs.join(&name), &t.doc)?;
                println!("  {}: {}:{line}:{col}", t.id, docs.join(&name).display());
            }
        }
        println!(
            "{:<26} {} of {} {} (seed {}){}",
            kind.title(),
            tasks.len(),
            info.population,
            if kind.masked_lines() { "maskable lines" } else { "problems" },
            opts.run.seed,
            if info.skipped.is_empty() {
                String::new()
            } else {
                format!("; {} problems skipped: {}", info.skipped.len(), info.skipped.join(", "))
            }
        );
        infos.insert(kind.key(), info);
        sets.push((kind, tasks));
    }
    println!("model: {}  threads: {}", model.display(), opts.run.threads);

    let peer_bin = common::peer_bin("quality", opts.skip_peer, opts.peer_bin.as_deref());
    let (pretest, tester) = common::start_tests(Duration::from_secs(opts.test_timeout_s));
    let (locode, peer, loads) = generate(&opts, &model, peer_bin.as_deref(), &out_dir, &sets, &pretest)?;
    drop(pretest);

    let mut scorer = common::finish_tests("quality", tester)?;
    let mut records = Vec::new();
    let mut md = String::new();
    let mut table = String::new();
    table.push_str("| set | n | locode | locode 1st line | llama-server raw | llama-server cut | locode ms mean / p50 | llama-server ms mean / p50 |\n");
    table.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut breakdown = String::new();
    let mut summary = Vec::new();
    for (kind, tasks) in &sets {
        let mut t = Tally::default();
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
                "before": common::before(task), "after": common::after(task),
                "locode": la, "llama_server": pa, "reference": reference.name(),
            });
            if !t.admit(&task.id, &reference) {
                records.push(rec);
                continue;
            }
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
                    t.count(v, &o);
                    rec[format!("{v}_fill")] = json!(f);
                    rec[format!("{v}_outcome")] = json!(o.name());
                }
            }
            records.push(rec);
        }
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            kind.title(),
            t.n,
            t.cell("locode"),
            t.cell("locode_line"),
            t.cell("llama_raw"),
            t.cell("llama_cut"),
            ms(&lms),
            ms(&pms)
        ));
        breakdown.push_str(&format!("\n{} (n = {}", kind.title(), t.n));
        breakdown.push_str(&t.left_out_notes(infos.get(kind.key()).map_or(0, |i| i.skipped.len())));
        breakdown.push_str(")\n");
        breakdown.push_str(&t.outcome_lines(12));
        if !modes.is_empty() {
            breakdown.push_str(&format!("  locode modes: {}; empty suggestions: {empty}\n", counts(&modes)));
        }
        summary.push(json!({
            "set": kind.key(), "n": t.n, "left_out": t.broken, "passed": t.passed, "outcomes": t.outcomes,
            "locode_ms_mean": mean(&lms), "locode_ms_p50": p50(&lms),
            "llama_server_ms_mean": mean(&pms), "llama_server_ms_p50": p50(&pms),
        }));
    }
    let load_line = format!("load average (1/5/15 min) {} at the start of generation, {} at its end", loads.0, loads.1);
    md.push_str("# Quality: pass@1, locode vs llama-server /infill\n\n");
    md.push_str(&format!(
        "model `{}`, {} threads per engine, greedy, seed {}, locode firstAnswerMs {}, {} test runs\n\n",
        model.display(),
        opts.run.threads,
        opts.run.seed,
        opts.first_answer_ms,
        scorer.runs
    ));
    md.push_str(&table);
    md.push_str(&format!("\n{load_line}\n\n```\n{}```\n", breakdown.trim_start()));
    println!("\n{table}");
    println!("{load_line}");
    println!("{breakdown}");
    let results = json!({
        "model": model, "threads": opts.run.threads, "seed": opts.run.seed, "sets": opts.sets, "limit": opts.limit,
        "first_answer_ms": opts.first_answer_ms,
        "load_average": loads, "summary": summary, "records": records,
    });
    write_report(&out_dir, &md, &results)?;
    Ok(())
}
