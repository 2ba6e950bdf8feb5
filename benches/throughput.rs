//! Prompt and decode throughput of locode's engine against llama.cpp's own
//! llama-server, in one run: the same model, threads, prompt text and
//! number of tokens to generate. Then locode's decode speed with one filled
//! KV slot (one document) against four (four documents open), which shows
//! whether attention over a unified cache slows decoding as documents fill
//! their slots.
//!
//! cargo bench --bench throughput -- [--prompt-chars 7000] [--gen 64] [--reps 3] [--threads N]
//! (`OMP_WAIT_POLICY=passive` or `GOMP_SPINCOUNT=N cargo bench ...` for locode's engine with another OpenMP wait.)
//!
//! locode runs in-process (`Engine::complete`, a fresh slot each repetition
//! while the other slots hold other documents,
//! no stop rule, no KV states on disk); llama-server gets `/completion` with
//! `cache_prompt: false`, so both evaluate the whole prompt every time.
//! Figures are medians over the repetitions.

#[allow(dead_code)]
#[path = "replay/peer.rs"]
mod peer;
#[allow(dead_code)]
#[path = "replay/process.rs"]
mod process;

pub use process::CHILDREN;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use locode::config::EngineConfig;
use locode::engine::{CompletionJob, Engine, Generation};
use locode::prompt::Piece;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "prompt and decode tokens/s: locode's engine against llama-server, and decode with 1 and 4 filled slots")]
struct Opts {
    /// Characters of prompt (about 3.3 per token for the default file).
    #[arg(long, default_value_t = 7_000)]
    prompt_chars: usize,
    /// Tokens to generate.
    #[arg(long, default_value_t = 64)]
    gen: u32,
    #[arg(long, default_value_t = 3)]
    reps: usize,
    #[arg(long)]
    threads: Option<u32>,
    #[arg(long)]
    model: Option<PathBuf>,
    /// llama-server binary (default: the one benches/peer/build-llama-server.sh builds).
    #[arg(long)]
    peer: Option<PathBuf>,
    #[arg(long)]
    skip_peer: bool,
    /// What `cargo bench` passes.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One run's figures.
#[derive(Debug, Clone, Copy)]
struct Run {
    prompt_tokens: f64,
    prompt_tps: f64,
    generated: f64,
    decode_ms: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn summary(runs: &[Run]) -> Run {
    Run {
        prompt_tokens: median(runs.iter().map(|r| r.prompt_tokens).collect()),
        prompt_tps: median(runs.iter().map(|r| r.prompt_tps).collect()),
        generated: median(runs.iter().map(|r| r.generated).collect()),
        decode_ms: median(runs.iter().map(|r| r.decode_ms).collect()),
    }
}

fn job(slot: &str, text: &str, gen: u32) -> CompletionJob {
    CompletionJob::new(slot.to_string(), vec![Piece::Text(text.to_string())], gen)
}

fn from_generation(g: &Generation) -> Run {
    Run {
        prompt_tokens: g.evaluated_tokens as f64,
        prompt_tps: g.evaluated_tokens as f64 / (g.prompt_ms / 1e3),
        generated: g.generated_tokens as f64,
        decode_ms: g.generate_ms / g.generated_tokens.max(1) as f64,
    }
}

fn show(label: &str, r: &Run) {
    println!(
        "  {label:<34} prompt {:>5.0} tokens at {:>6.1} tokens/s; decode {:>3.0} tokens at {:>5.1} ms/token ({:.1} tokens/s)",
        r.prompt_tokens,
        r.prompt_tps,
        r.generated,
        r.decode_ms,
        1e3 / r.decode_ms
    );
}

/// The first `chars` characters of `src`, in whole lines.
fn cut(src: &str, chars: usize) -> String {
    let mut out = String::new();
    for line in src.split_inclusive('\n') {
        if out.len() + line.len() > chars {
            break;
        }
        out.push_str(line);
    }
    out
}

fn main() -> anyhow::Result<()> {
    // The wait the server runs its engine with (see `ensure_openmp_wait`).
    locode::engine::ensure_openmp_wait("throughput");
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    process::stop_children_on_signal("throughput");
    let opts = Opts::parse();
    let root = process::repo_root();
    let corpus = root.join("../shared/bench-data/corpus");
    let read = |name: &str| std::fs::read_to_string(corpus.join(name)).map_err(|e| anyhow::anyhow!("{name}: {e}"));
    let text = cut(&read("requests_sessions.py")?, opts.prompt_chars);
    let model = opts.model.clone().unwrap_or_else(locode::config::default_model_path);
    let threads = opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(2));
    println!(
        "throughput: {} chars of requests_sessions.py, {} tokens generated, {} repetitions, {threads} threads, locode's OpenMP wait {}; load {}",
        text.len(),
        opts.gen,
        opts.reps,
        ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT"]
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(" "),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );

    // locode's engine, in-process, with the server's defaults (4 slots).
    let engine = Engine::spawn();
    let cfg = EngineConfig { model: Some(model.clone()), threads: Some(threads), kv_cache_mb: 0, ..EngineConfig::default() };
    let (info, _) = engine.load(cfg, |_| {}).await.map_err(|e| anyhow::anyhow!("{e} (make model)"))?;
    // First, on the empty engine: decode with one filled slot, then with
    // all of them filled by other documents of about the same length: the
    // same request in slot 0 (its prompt cached, so only the decode
    // differs). Measured before the rest so that "one" is one.
    let one = from_generation(&engine.complete(job("doc-0", &text, opts.gen)).await?);
    let others = ["serde_json_read.rs", "requests_sessions.py", "serde_json_read.rs"];
    for (i, name) in others.iter().enumerate() {
        // Different text in each slot (no shared prefix with doc-0).
        let src = read(name)?;
        let body = cut(&src[src.len() / (i + 2)..], opts.prompt_chars);
        engine.complete(job(&format!("doc-{}", i + 1), &body, 1)).await?;
    }
    let mut filled = Vec::new();
    for _ in 0..opts.reps {
        filled.push(from_generation(&engine.complete(job("doc-0", &text, opts.gen)).await?));
    }
    let four = summary(&filled);

    // Then the whole prompt in a fresh slot each repetition, as a newly
    // opened document is: the other slots stay filled, as in an editor
    // with other files open.
    let mut ours = Vec::new();
    for rep in 0..opts.reps {
        let g = engine.complete(job(&format!("fresh-{rep}"), &text, opts.gen)).await?;
        ours.push(from_generation(&g));
    }
    let ours = summary(&ours);

    // llama-server, the same prompt and length, its prompt cache off.
    let theirs = if opts.skip_peer {
        None
    } else {
        let peer_bin = opts
            .peer
            .clone()
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/locode/peer/llama-server"));
        let work = tempfile::tempdir()?;
        let p = peer::LlamaServer::start(&peer_bin, &model, threads, &work.path().join("peer.log"), Duration::from_secs(120))?;
        let mut runs = Vec::new();
        for _ in 0..opts.reps {
            let req = json!({"prompt": text, "n_predict": opts.gen, "cache_prompt": false, "temperature": 0.0, "top_k": 1});
            let (status, body) = peer::http(p.port, "POST", "/completion", Some(&req.to_string()), Duration::from_secs(600))?;
            anyhow::ensure!(status == 200, "llama-server answered {status}: {body}");
            let t: Value = serde_json::from_str::<Value>(&body)?["timings"].clone();
            runs.push(Run {
                prompt_tokens: t["prompt_n"].as_f64().unwrap_or(0.0),
                prompt_tps: t["prompt_per_second"].as_f64().unwrap_or(0.0),
                generated: t["predicted_n"].as_f64().unwrap_or(0.0),
                decode_ms: t["predicted_per_token_ms"].as_f64().unwrap_or(0.0),
            });
        }
        Some(summary(&runs))
    };

    println!("medians:");
    show("locode (engine in-process)", &ours);
    if let Some(t) = &theirs {
        show("llama-server /completion", t);
        println!(
            "  locode / llama-server: prompt {:.2}x, decode {:.2}x (tokens/s; at least 0.95x wanted)",
            ours.prompt_tps / t.prompt_tps,
            t.decode_ms / ours.decode_ms
        );
    }
    println!("locode decode, {} slots of {} tokens each:", others.len() + 1, info.n_ctx);
    show("1 slot filled", &one);
    show(&format!("{} slots filled", others.len() + 1), &four);
    println!("  decode with 4 filled / with 1: {:.2}x ms/token", four.decode_ms / one.decode_ms);
    println!("load at the end: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    engine.shutdown();
    Ok(())
}
