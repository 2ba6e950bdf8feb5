//! The first minute with a file, side by side with llama.cpp's llama-server
//! in one run (same model, same threads, same file, same typing):
//!
//! 1. **open and type**: an unseen file of about 3,000 tokens is opened and
//!    a line is typed at once, a key every `--key-ms`, asking for a
//!    completion after each key as an editor does. Figure: time from
//!    `didOpen` to the first non-empty suggestion. llama-server is asked
//!    the way llama.vim asks (`/infill`, 256 lines before, 64 after), one
//!    request at a time, each after the key that follows the last answer.
//! 2. **after a restart**: locode is stopped (its KV states go to disk) and
//!    started again, and the same typing repeats. llama-server is restarted
//!    too (its cache lives in memory only).
//! 3. **throughput**: prompt and decode tokens/s of one long prompt, through
//!    locode's engine in-process and llama-server's `/completion`.
//!
//! cargo bench --bench first_minute -- [--file F] [--chars 10500] [--threads N]

#[allow(dead_code)]
#[path = "replay/lsp.rs"]
mod lsp;
#[allow(dead_code)]
#[path = "replay/peer.rs"]
mod peer;
#[path = "replay/process.rs"]
mod process;

pub use process::CHILDREN;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "time to the first suggestion in a fresh file, before and after a restart, against llama-server")]
struct Opts {
    /// Source file to cut the unseen file from (default: the shared corpus's requests_sessions.py).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Characters of it to keep (whole lines), about 3,000 tokens.
    #[arg(long, default_value_t = 10_500)]
    chars: usize,
    /// Milliseconds between two keys.
    #[arg(long, default_value_t = 150)]
    key_ms: u64,
    #[arg(long)]
    threads: Option<u32>,
    #[arg(long)]
    model: Option<PathBuf>,
    /// llama-server binary (default: the one benches/peer/build-llama-server.sh builds).
    #[arg(long)]
    peer: Option<PathBuf>,
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Skip llama-server.
    #[arg(long)]
    skip_peer: bool,
    /// Seconds to wait for locode's whole prompt to be built before the restart.
    #[arg(long, default_value_t = 180)]
    settle_s: u64,
    /// Keep the servers' logs (their folder is printed).
    #[arg(long)]
    keep: bool,
    /// What `cargo bench` passes.
    #[arg(long, hide = true)]
    bench: bool,
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"))
}

/// The file and where typing happens: the first `chars` characters (whole
/// lines) of the source, and a code line in its last fifth whose text after
/// the indentation is typed (it is removed from the file that is opened).
fn unseen_file(src: &str, chars: usize) -> (String, usize, String) {
    let mut kept = String::new();
    for line in src.split_inclusive('\n') {
        if kept.len() + line.len() > chars {
            break;
        }
        kept.push_str(line);
    }
    let lines: Vec<&str> = kept.split_inclusive('\n').collect();
    let from = lines.len() * 4 / 5;
    let pick = (from..lines.len())
        .find(|&i| {
            let t = lines[i].trim();
            t.len() >= 20 && !t.starts_with('#') && !t.starts_with("\"\"\"") && !t.starts_with("//") && !t.ends_with(':')
        })
        .unwrap_or(from);
    let line = lines[pick];
    let indent = line.len() - line.trim_start().len();
    let typed = line.trim().to_string();
    let mut text = String::new();
    let mut cursor = 0;
    for (i, l) in lines.iter().enumerate() {
        if i == pick {
            text.push_str(&line[..indent]);
            cursor = text.len();
            text.push('\n');
        } else {
            text.push_str(l);
        }
    }
    (text, cursor, typed)
}

/// What one engine's first minute gave.
#[derive(Debug, Default, Clone)]
struct First {
    /// From `didOpen` (or the first key) to the first non-empty suggestion.
    ms: Option<f64>,
    keys: usize,
    text: String,
    stats: Value,
}

/// Opens the file in a running locode and types; the first non-empty suggestion.
fn locode_first(c: &mut lsp::Lsp, uri: &str, text: &str, cursor: usize, typed: &str, key_ms: u64) -> First {
    let t0 = Instant::now();
    let _ = c.notify("textDocument/didOpen", json!({"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}));
    let mut doc = text.to_string();
    let mut at = cursor;
    let mut pending: Vec<i64> = Vec::new();
    let mut out = First::default();
    let deadline = t0 + Duration::from_secs(120);
    let mut next_key = 0usize;
    let chars: Vec<char> = typed.chars().collect();
    while Instant::now() < deadline {
        let key_due = t0 + Duration::from_millis(key_ms * next_key as u64);
        if next_key < chars.len() && Instant::now() >= key_due {
            let pos = lsp::position(&doc, at);
            let ch = chars[next_key].to_string();
            doc.insert_str(at, &ch);
            at += ch.len();
            next_key += 1;
            let _ = c.notify(
                "textDocument/didChange",
                json!({"textDocument": {"uri": uri, "version": next_key + 1}, "contentChanges": [{"range": {"start": pos, "end": pos}, "text": ch}]}),
            );
            if let Ok((id, _)) = c.send_request(
                "textDocument/inlineCompletion",
                json!({"textDocument": {"uri": uri}, "position": lsp::position(&doc, at), "context": {"triggerKind": 2}}),
            ) {
                pending.push(id);
            }
        }
        let wait = if next_key < chars.len() {
            key_due.saturating_duration_since(Instant::now()).max(Duration::from_millis(5))
        } else {
            Duration::from_millis(500)
        };
        let ids = pending.clone();
        if let Some((when, msg)) = c.wait_message(wait, |m| m.get("method").is_none() && m["id"].as_i64().is_some_and(|i| ids.contains(&i)))
        {
            pending.retain(|&i| Some(i) != msg["id"].as_i64());
            let items = msg["result"]["items"].as_array().or(msg["result"].as_array()).cloned().unwrap_or_default();
            let text = items.first().and_then(|i| i["insertText"].as_str()).unwrap_or("").to_string();
            if !text.trim().is_empty() {
                out.ms = Some(when.duration_since(t0).as_secs_f64() * 1e3);
                out.keys = next_key;
                out.text = text;
                out.stats = c.request("locode/lastStats", json!({"uri": uri}), Duration::from_secs(10)).unwrap_or_default();
                return out;
            }
        } else if next_key >= chars.len() && pending.is_empty() {
            break;
        }
    }
    out.keys = next_key;
    out
}

/// The same typing against llama-server, as llama.vim sends it: a request
/// after a key, the next one only once it is answered.
fn peer_first(port: u16, text: &str, cursor: usize, typed: &str, key_ms: u64) -> First {
    let t0 = Instant::now();
    let mut doc = text.to_string();
    let mut at = cursor;
    let mut out = First::default();
    for (k, ch) in typed.chars().enumerate() {
        let due = t0 + Duration::from_millis(key_ms * k as u64);
        if Instant::now() < due {
            // Keys typed while no request is out go in at their time.
            std::thread::sleep(due - Instant::now());
        }
        doc.insert(at, ch);
        at += ch.len_utf8();
        if Instant::now() > due + Duration::from_millis(key_ms) && k + 1 < typed.chars().count() {
            // The answer took longer than a key: the keys typed meanwhile are in.
            continue;
        }
        let req = peer::infill_request(&doc, at, 96, false);
        let Ok((200, body)) = peer::http(port, "POST", "/infill", Some(&req.to_string()), Duration::from_secs(300)) else { break };
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        let content = v["content"].as_str().unwrap_or("");
        let first_line = content.split('\n').next().unwrap_or("");
        if !first_line.trim().is_empty() || !content.trim().is_empty() {
            out.ms = Some(t0.elapsed().as_secs_f64() * 1e3);
            out.keys = k + 1;
            out.text = content.to_string();
            out.stats = v["timings"].clone();
            return out;
        }
    }
    out
}

fn start_locode(bin: &Path, opts: &Opts, model: &Path, kv: &Path, log: &Path) -> anyhow::Result<lsp::Lsp> {
    let mut args = vec!["serve".to_string(), "--model".into(), model.display().to_string()];
    if let Some(t) = opts.threads {
        args.extend(["--threads".into(), t.to_string()]);
    }
    std::env::set_var("LOCODE_KV_DIR", kv);
    let mut c = lsp::Lsp::spawn(bin, &args, log)?;
    c.request(
        "initialize",
        json!({"processId": null, "rootUri": null, "capabilities": {"experimental": {"locode": {"suggestionReady": true}}}}),
        Duration::from_secs(30),
    )
    .map_err(anyhow::Error::msg)?;
    c.notify("initialized", json!({}))?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let st = c.request("locode/status", json!(null), Duration::from_secs(10)).unwrap_or_default();
        if st["state"] == "ready" {
            return Ok(c);
        }
        anyhow::ensure!(st["state"] != "failed" && Instant::now() < deadline, "locode did not load the model: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn show(label: &str, f: &First) {
    let ms = f.ms.map_or("none".to_string(), |m| format!("{m:.0} ms"));
    let line = f.text.lines().next().unwrap_or("");
    println!("  {label:<28} {ms:>10}  after {:>2} keys  {line:?}", f.keys);
}

fn main() -> anyhow::Result<()> {
    process::stop_children_on_signal("first_minute");
    let opts = Opts::parse();
    let root = process::repo_root();
    let src_path = opts.file.clone().unwrap_or_else(|| root.join("../shared/bench-data/corpus/requests_sessions.py"));
    let src = std::fs::read_to_string(&src_path).map_err(|e| anyhow::anyhow!("{}: {e}", src_path.display()))?;
    let (text, cursor, typed) = unseen_file(&src, opts.chars);
    let model = opts.model.clone().unwrap_or_else(locode::config::default_model_path);
    let threads = opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(2));
    let bin = process::server_bin(opts.server_bin.as_deref(), "first_minute")?;
    let work = tempfile::tempdir()?;
    let kv = work.path().join("kv");
    let file = work.path().join("unseen.py");
    std::fs::write(&file, &text)?;
    let uri = format!("file://{}", file.display());
    println!(
        "first_minute: {} ({} chars, {} lines), typing {:?} at line {}, a key every {} ms; {threads} threads; load {}",
        src_path.file_name().unwrap_or_default().to_string_lossy(),
        text.len(),
        text.lines().count(),
        typed,
        text[..cursor].matches('\n').count() + 1,
        opts.key_ms,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );

    // locode: a fresh start, then a restart with the states it saved.
    let mut c = start_locode(&bin, &opts, &model, &kv, &work.path().join("locode-1.log"))?;
    let cold = locode_first(&mut c, &uri, &text, cursor, &typed, opts.key_ms);
    // Let the whole prompt be built, as it is while the user reads the
    // answer: wait for the background build without sending requests (it
    // yields to them). The restart below shows what was saved.
    let status = |c: &mut lsp::Lsp| c.request("locode/status", json!(null), Duration::from_secs(10)).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(opts.settle_s);
    let t_settle = Instant::now();
    while Instant::now() < deadline && status(&mut c)["building"].as_u64().unwrap_or(0) > 0 {
        std::thread::sleep(Duration::from_millis(250));
    }
    let settled = (status(&mut c)["building"].as_u64() == Some(0)).then(|| t_settle.elapsed());
    let _ = c.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}}));
    c.shutdown();
    let saved: u64 = std::fs::read_dir(&kv).map(|d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0);
    let mut c = start_locode(&bin, &opts, &model, &kv, &work.path().join("locode-2.log"))?;
    let restarted = locode_first(&mut c, &uri, &text, cursor, &typed, opts.key_ms);
    c.shutdown();

    // llama-server, the same typing, before and after a restart.
    let (mut peer_cold, mut peer_restarted) = (First::default(), First::default());
    if !opts.skip_peer {
        let peer_bin = opts.peer.clone().unwrap_or_else(|| home().join(".cache/locode/peer/llama-server"));
        for round in 0..2 {
            let p = peer::LlamaServer::start(&peer_bin, &model, threads, &work.path().join("peer.log"), Duration::from_secs(120))?;
            let f = peer_first(p.port, &text, cursor, &typed, opts.key_ms);
            if round == 0 {
                peer_cold = f;
            } else {
                peer_restarted = f;
            }
            drop(p);
        }
    }

    println!("time from didOpen to the first non-empty suggestion (typing at once):");
    show("locode, fresh", &cold);
    show("locode, after a restart", &restarted);
    if !opts.skip_peer {
        show("llama-server, fresh", &peer_cold);
        show("llama-server, after a restart", &peer_restarted);
    }
    println!(
        "locode fresh: prompt {} tokens (first window: {}), evaluated {}; after the restart: prompt {}, restored {}, evaluated {}",
        cold.stats["prompt_tokens"],
        cold.stats["first_window"],
        cold.stats["evaluated_tokens"],
        restarted.stats["prompt_tokens"],
        restarted.stats["restored_tokens"],
        restarted.stats["evaluated_tokens"]
    );
    match settled {
        Some(t) => println!(
            "whole prompt built in the background {:.1} s after the first answer; KV states saved: {:.1} MiB",
            t.as_secs_f64(),
            saved as f64 / 1048576.0
        ),
        None => println!("whole prompt NOT built within {} s; KV states saved: {:.1} MiB", opts.settle_s, saved as f64 / 1048576.0),
    }
    if !opts.skip_peer {
        println!("llama-server fresh timings: {}", peer_cold.stats);
    }
    println!("load at the end: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    if opts.keep {
        println!("logs kept in {}", work.keep().display());
    }
    Ok(())
}
