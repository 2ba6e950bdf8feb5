//! Side-by-side typing-replay benchmark: locode (over LSP) against llama.cpp's
//! own `llama-server` (over `/infill`, as llama.vim calls it).
//!
//! Functions are picked from real code, their bodies deleted and retyped word
//! by word; at sampled typing events both engines are asked for a completion
//! with the same text and cursor. See benches/README.md.
//!
//! ```sh
//! cargo bench --bench replay                       # both engines
//! cargo bench --bench replay -- --only locode      # locode alone
//! cargo bench --bench replay -- --remote           # locode through a llama-server of its own
//! ```

#[path = "replay/engines.rs"]
mod engines;
#[path = "replay/lsp.rs"]
mod lsp;
#[path = "replay/peer.rs"]
mod peer;
#[path = "replay/process.rs"]
mod process;
#[path = "replay/report.rs"]
mod report;
#[path = "replay/trace.rs"]
mod trace;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use serde_json::json;

use engines::{Driver, Settings};
pub use process::CHILDREN;
use process::{repo_root, server_bin, stop_children_on_signal, target_dir};
use report::{Sample, LOCODE, PEER};
use trace::{Action, Session};

#[derive(Parser, Debug, Clone)]
#[command(name = "replay", about = "Typing-replay benchmark: locode vs llama-server")]
struct Opts {
    /// Run one engine only: `locode` or `llama-server`.
    #[arg(long, value_parser = ["locode", "llama-server"])]
    only: Option<String>,
    /// Functions retyped per file.
    #[arg(long, default_value_t = 2)]
    functions: usize,
    /// Completion requests per function (typing events are sampled evenly).
    #[arg(long, default_value_t = 40)]
    requests: usize,
    /// The locode binary (default: the one cargo built for this bench, target/release/locode).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The llama-server binary (default: ${LOCODE_PEER_DIR:-~/.cache/locode/peer}/llama-server).
    #[arg(long)]
    peer_bin: Option<PathBuf>,
    /// GGUF model for both engines (default: locode's cached default model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Folder with the source files to retype (requests_sessions.py, serde_json_read.rs).
    #[arg(long, env = "LOCODE_BENCH_CORPUS")]
    corpus: Option<PathBuf>,
    /// CPU threads for each engine.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Most tokens generated per request, both engines (locode `maxTokens`, llama-server `n_predict`).
    #[arg(long, default_value_t = 64)]
    max_tokens: u32,
    /// Timeout of each completion request, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
    /// Idle time after each answer before typing on, in milliseconds (0: the
    /// next edits follow the answer at once; locode's warm-up needs a 250 ms pause).
    #[arg(long, default_value_t = 0)]
    pause_ms: u64,
    /// Let llama-server generate several lines (no "\n" stop); usefulness still looks at the first line.
    #[arg(long)]
    peer_multiline: bool,
    /// Stop issuing requests after this many minutes in all (what ran is still reported).
    #[arg(long, default_value_t = 60)]
    max_minutes: u64,
    /// Where replay.json, replay-latency.svg and the engines' logs go (default: target/bench).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run both engines side by side, asking each in turn at every step,
    /// instead of one after the other (fairer on a machine with other load).
    #[arg(long)]
    interleave: bool,
    /// locode completes through its remote engine (`completionEngine: llamaServer`)
    /// against a llama-server of its own (the peer binary, same model and
    /// threads), side by side with llama.vim's `/infill` against another.
    #[arg(long)]
    remote: bool,
    /// Print the table and redraw the plot from an earlier replay.json, without running anything.
    #[arg(long, value_name = "JSON")]
    report: Option<PathBuf>,
    /// Print the trace (functions, typing events) and exit.
    #[arg(long)]
    dry_run: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// `cargo bench` runs the benchmark in the package folder (server/); a
/// relative path on the command line is meant from where cargo was started
/// (the shell's $PWD).
fn from_invocation_dir(p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match std::env::var_os("PWD") {
        Some(d) => Path::new(&d).join(p),
        None => p.to_path_buf(),
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
}

fn default_model() -> PathBuf {
    if let Some(m) = std::env::var_os("LOCODE_MODEL") {
        return PathBuf::from(m);
    }
    let dir = if let Some(d) = std::env::var_os("LOCODE_MODEL_DIR") {
        PathBuf::from(d)
    } else if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        PathBuf::from(x).join("locode/models")
    } else {
        home().join(".cache/locode/models")
    };
    dir.join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
}

fn default_peer() -> PathBuf {
    let dir = std::env::var_os("LOCODE_PEER_DIR").map(PathBuf::from).unwrap_or_else(|| home().join(".cache/locode/peer"));
    dir.join("llama-server")
}

fn default_corpus() -> PathBuf {
    let root = repo_root();
    for c in [root.join("shared/bench-data/corpus"), root.join("../shared/bench-data/corpus")] {
        if c.is_dir() {
            return c;
        }
    }
    root.join("../shared/bench-data/corpus")
}

/// Replays the sessions on the drivers together: at each request, each
/// driver in turn answers it. A driver that fails three requests in a row or
/// dies is dropped; the run stops at the deadline.
fn replay(
    sessions: &[Session],
    drivers: &mut Vec<Box<dyn Driver>>,
    opts: &Opts,
    deadline: Instant,
    samples: &mut Vec<Sample>,
    errors: &mut Vec<String>,
) {
    let per_engine: usize = sessions.iter().map(Session::requests).sum();
    let mut fails = vec![0usize; drivers.len()];
    let mut done = vec![0usize; drivers.len()];
    let mut dead = vec![false; drivers.len()];
    let mut kill = |i: usize, name: &str, why: String, dead: &mut Vec<bool>| {
        eprintln!("replay: {name}: {why}");
        errors.push(format!("{name}: {why}"));
        dead[i] = true;
    };
    'sessions: for s in sessions {
        for (i, d) in drivers.iter_mut().enumerate() {
            if !dead[i] {
                if let Err(e) = d.open(s) {
                    kill(i, d.name(), format!("{e:#}"), &mut dead);
                }
            }
        }
        for a in &s.actions {
            if Instant::now() > deadline {
                errors.push(format!("stopped after --max-minutes {}", opts.max_minutes));
                break 'sessions;
            }
            if dead.iter().all(|d| *d) {
                break 'sessions;
            }
            for (i, d) in drivers.iter_mut().enumerate() {
                if dead[i] {
                    continue;
                }
                let res = match a {
                    Action::Edit { start, end, text } => d.edit(*start, *end, text).map(|_| None),
                    Action::Request { cursor, function, step, expected } => d.request(s, *cursor, *function, *step, expected).map(Some),
                };
                match res {
                    Ok(None) => {}
                    Ok(Some(smp)) => {
                        if let Some(e) = &smp.error {
                            fails[i] += 1;
                            eprintln!("replay: {} request failed: {e}", d.name());
                        } else {
                            fails[i] = 0;
                        }
                        done[i] += 1;
                        if done[i].is_multiple_of(20) || done[i] == per_engine {
                            eprintln!("replay: {:<12} {:>4}/{per_engine} requests (last {:.0} ms)", d.name(), done[i], smp.latency_ms);
                        }
                        samples.push(smp);
                        if fails[i] >= 3 {
                            kill(i, d.name(), "3 failed requests in a row; giving up on this engine".into(), &mut dead);
                        }
                    }
                    Err(e) => kill(i, d.name(), format!("{e:#}"), &mut dead),
                }
            }
            if matches!(a, Action::Request { .. }) && opts.pause_ms > 0 {
                std::thread::sleep(Duration::from_millis(opts.pause_ms));
            }
        }
        for (i, d) in drivers.iter_mut().enumerate() {
            if !dead[i] {
                if let Err(e) = d.close() {
                    kill(i, d.name(), format!("{e:#}"), &mut dead);
                }
            }
        }
    }
}

/// `--report`: the table and the plot again from a replay.json.
fn report_again(path: &Path, out: Option<PathBuf>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: serde_json::Value = serde_json::from_str(&text)?;
    let samples: Vec<Sample> =
        doc["samples"].as_array().map(|a| a.iter().filter_map(report::sample_from_json).collect()).unwrap_or_default();
    let engines: Vec<&'static str> = [LOCODE, PEER].into_iter().filter(|e| samples.iter().any(|s| s.engine == *e)).collect();
    print_legend(&doc["load_average"]["start"], &doc["load_average"]["end"]);
    print!("{}", report::table(&samples, &engines));
    let out = out.unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")).to_path_buf());
    let per_engine = samples.iter().filter(|s| Some(s.engine) == engines.first().copied()).count();
    let threads = doc["config"]["threads"].as_u64().unwrap_or(0);
    let svg = out.join("replay-latency.svg");
    let title = format!("typing replay: completion latency, {per_engine} requests per engine, {threads} threads");
    std::fs::write(&svg, report::latency_svg(&samples, &engines, &title))?;
    println!("wrote {}", svg.display());
    Ok(())
}

fn print_legend(load_start: &serde_json::Value, load_end: &serde_json::Value) {
    println!();
    if let (Some(a), Some(b)) = (load_start.as_str(), load_end.as_str()) {
        println!("load average (1, 5, 15 min) before: {a}; after: {b}  (anything above 0.5 means the numbers are noisy)");
    }
    println!("latency: wall clock per request; eval: prompt tokens evaluated per request (KV cache misses);");
    println!("prompt: prompt size in tokens; gen: tokens generated; shown: non-empty suggestion;");
    println!("useful: first line non-empty and a prefix of what is typed next on that line;");
    println!("t-thru: answered from locode's typed-through cache; ratio l/s: locode / llama-server");
    println!();
}

/// The 1, 5 and 15 minute load averages (Linux).
fn loadavg() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn main() -> anyhow::Result<()> {
    let mut opts = Opts::parse();
    for p in [&mut opts.server_bin, &mut opts.peer_bin, &mut opts.model, &mut opts.corpus, &mut opts.out, &mut opts.report] {
        *p = p.take().map(|p| from_invocation_dir(&p));
    }
    stop_children_on_signal("replay");
    if let Some(path) = &opts.report {
        return report_again(path, opts.out.clone());
    }
    let corpus = opts.corpus.clone().unwrap_or_else(default_corpus);
    let files = [corpus.join("requests_sessions.py"), corpus.join("serde_json_read.rs")];
    for f in &files {
        if !f.exists() {
            bail!("corpus file {} is missing (pass --corpus DIR or set LOCODE_BENCH_CORPUS)", f.display());
        }
    }
    let model = opts.model.clone().unwrap_or_else(default_model);
    if !model.exists() {
        bail!("model {} is missing: run `make model` (or pass --model PATH)", model.display());
    }
    let out = opts.out.clone().unwrap_or_else(|| target_dir().join("bench"));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let sessions: Vec<Session> = files.iter().map(|f| trace::session(f, opts.functions, opts.requests)).collect::<anyhow::Result<_>>()?;
    let total_requests: usize = sessions.iter().map(Session::requests).sum();
    println!(
        "typing replay: {} functions per file, up to {} requests per function, {} threads, {} max tokens",
        opts.functions, opts.requests, opts.threads, opts.max_tokens
    );
    println!("model: {}", model.display());
    for s in &sessions {
        for (f, ev) in s.functions.iter().zip(&s.events) {
            println!("  {:<6} {}:{} {}() body {} lines, {} typing events", s.lang.name(), s.file_name, f.line, f.name, f.body_lines, ev);
        }
    }
    println!("  {total_requests} requests per engine");
    if opts.dry_run {
        for s in &sessions {
            let mut doc = s.text.clone();
            for a in &s.actions {
                match a {
                    Action::Edit { start, end, text } => trace::apply(&mut doc, *start, *end, text),
                    Action::Request { cursor, function, step, expected } => {
                        let line_start = doc[..*cursor].rfind('\n').map(|i| i + 1).unwrap_or(0);
                        println!(
                            "{} {}#{step:<2} {:?} | {:?}",
                            s.lang.name(),
                            s.functions[*function].name,
                            &doc[line_start..*cursor],
                            expected
                        );
                    }
                }
            }
            assert_eq!(doc, s.text, "the replay must end on the original text");
        }
        return Ok(());
    }

    let settings = Settings {
        threads: opts.threads,
        max_tokens: opts.max_tokens,
        timeout: Duration::from_secs(opts.timeout_s),
        peer_single_line: !opts.peer_multiline,
        model: model.clone(),
        out: out.clone(),
        remote: None,
    };
    let mut settings = settings;
    if opts.remote {
        let bin = opts.peer_bin.clone().unwrap_or_else(default_peer);
        if !bin.exists() {
            bail!("--remote needs llama-server at {} (benches/peer/build-llama-server.sh, or --peer-bin PATH)", bin.display());
        }
        settings.remote = Some(bin);
    }
    let want = |e: &str| opts.only.as_deref().is_none_or(|o| o == e);
    let deadline = Instant::now() + Duration::from_secs(opts.max_minutes * 60);
    let mut errors = Vec::new();
    let mut samples = Vec::new();
    let mut meta = serde_json::Map::new();
    let load_start = loadavg();

    // Which engines run, and how each one starts.
    type Starter = Box<dyn Fn() -> anyhow::Result<Box<dyn Driver>>>;
    let mut starters: Vec<(&'static str, Starter)> = Vec::new();
    if want(PEER) {
        let bin = opts.peer_bin.clone().unwrap_or_else(default_peer);
        if bin.exists() {
            let set = settings.clone();
            starters.push((PEER, Box::new(move || Ok(Box::new(engines::LlamaServer::start(&bin, &set)?) as Box<dyn Driver>))));
        } else {
            let msg = format!(
                "llama-server not found at {}: build it with `benches/peer/build-llama-server.sh` \
                 (about 10 minutes on 2 cores) or pass --peer-bin PATH",
                bin.display()
            );
            if opts.only.as_deref() == Some(PEER) {
                bail!("{msg}");
            }
            let msg = format!("{msg}; running locode alone");
            eprintln!("replay: {msg}");
            errors.push(msg);
        }
    }
    if want(LOCODE) {
        let bin = server_bin(opts.server_bin.as_deref(), "replay")?;
        let set = settings.clone();
        // locode is asked last at each step in --interleave mode, so its next
        // edits follow its answer at once, as in a sequential run.
        starters.push((LOCODE, Box::new(move || Ok(Box::new(engines::Locode::start(&bin, &set)?) as Box<dyn Driver>))));
    }
    let mut engine_names: Vec<&'static str> = starters.iter().map(|(n, _)| *n).collect();
    engine_names.sort_by_key(|n| if *n == LOCODE { 0 } else { 1 });

    let start = |name: &'static str, f: &Starter, errors: &mut Vec<String>| match f() {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("replay: {name}: {e:#}");
            errors.push(format!("{name}: {e:#}"));
            None
        }
    };
    if opts.interleave {
        let mut drivers: Vec<Box<dyn Driver>> = starters.iter().filter_map(|(n, f)| start(n, f, &mut errors)).collect();
        replay(&sessions, &mut drivers, &opts, deadline, &mut samples, &mut errors);
        for d in drivers {
            let name = d.name();
            meta.insert(name.into(), d.finish());
        }
    } else {
        // One engine after the other, locode first.
        starters.sort_by_key(|(n, _)| if *n == LOCODE { 0 } else { 1 });
        for (name, f) in &starters {
            if let Some(d) = start(name, f, &mut errors) {
                let mut drivers = vec![d];
                replay(&sessions, &mut drivers, &opts, deadline, &mut samples, &mut errors);
                let d = drivers.pop().unwrap();
                meta.insert(name.to_string(), d.finish());
            }
        }
    }
    let engines = engine_names;

    let load_end = loadavg();
    print_legend(&json!(load_start), &json!(load_end));
    print!("{}", report::table(&samples, &engines));

    let summary = report::summary_value(&samples, &engines);
    let doc = json!({
        "benchmark": "typing replay",
        "config": {
            "functions_per_file": opts.functions,
            "requests_per_function": opts.requests,
            "threads": opts.threads,
            "max_tokens": opts.max_tokens,
            "timeout_s": opts.timeout_s,
            "pause_ms": opts.pause_ms,
            "interleave": opts.interleave,
            "remote": opts.remote,
            "peer_single_line_stop": !opts.peer_multiline,
            "model": model,
            "corpus": corpus,
        },
        "load_average": {"start": load_start, "end": load_end},
        "trace": sessions.iter().map(|s| json!({
            "lang": s.lang.name(),
            "file": s.file_name,
            "path": s.path,
            "functions": s.functions.iter().zip(&s.events).map(|(f, ev)| json!({
                "name": f.name, "line": f.line, "body_lines": f.body_lines, "typing_events": ev,
            })).collect::<Vec<_>>(),
            "requests": s.requests(),
        })).collect::<Vec<_>>(),
        "engines": meta,
        "summary": summary,
        "errors": errors,
        "samples": samples.iter().map(report::sample_json).collect::<Vec<_>>(),
    });
    let json_path = out.join("replay.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&doc)?)?;
    let svg_path = out.join("replay-latency.svg");
    let title = format!("typing replay: completion latency, {} requests per engine, {} threads", total_requests, opts.threads);
    std::fs::write(&svg_path, report::latency_svg(&samples, &engines, &title))?;
    println!("wrote {} and {}", json_path.display(), svg_path.display());
    for e in &errors {
        println!("note: {e}");
    }
    if samples.is_empty() {
        bail!("no request was answered");
    }
    Ok(())
}
