//! Memory: the resident set of `locode serve` with the default model and
//! engine settings (4 KV slots, an 8k-token context), once every slot holds
//! a document's prompt.
//!
//! Four documents are opened (the two corpus files, each under two URIs) and
//! one inline completion is asked in each, far enough down that the prompt
//! fills the default window; together they fill the shared 8k KV cache.
//! VmRSS is printed after the model loads and after each document, and the
//! peak (VmHWM) at the end, against the 900 MB budget.
//!
//! cargo bench --bench memory -- [--limit-mb 900] [--threads N] [--model PATH] [--corpus DIR]

#[path = "../tests/common/lsp_client.rs"]
mod lsp_client;

use lsp_client::LspClient;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let limit_mb: f64 = opt("--limit-mb").map_or(900.0, |v| v.parse().expect("--limit-mb N"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let corpus = opt("--corpus").map(PathBuf::from).unwrap_or_else(|| {
        [root.join("shared/bench-data/corpus"), root.join("../shared/bench-data/corpus")]
            .into_iter()
            .find(|c| c.is_dir())
            .unwrap_or_else(|| root.join("../shared/bench-data/corpus"))
    });
    let mut serve: Vec<String> = vec!["serve".into()];
    if let Some(m) = opt("--model") {
        serve.extend(["--model".into(), m]);
    }
    if let Some(t) = opt("--threads") {
        serve.extend(["--threads".into(), t]);
    }
    let serve: Vec<&str> = serve.iter().map(String::as_str).collect();
    let mut c = LspClient::spawn(Path::new(env!("CARGO_BIN_EXE_locode")), &serve);
    c.initialize(json!({}), json!({"maxTokens": 16}));
    let st = c.wait_model(Duration::from_secs(600));
    assert_eq!(st["state"], "ready", "the model did not load: {st}");
    let pid = c.pid();
    let defaults = locode::config::EngineConfig::default();
    println!("memory: locode serve, default model, {} slots, {}-token context", defaults.slots, defaults.context_size);
    println!("  model loaded:          VmRSS {:>7.1} MB", mb(status_kib(pid, "VmRSS:")));

    let files = [("requests_sessions.py", "python"), ("serde_json_read.rs", "rust")];
    for copy in 0..2 {
        for (name, lang) in files {
            let path = corpus.join(name);
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (pass --corpus DIR)", path.display()));
            let uri = format!("file:///tmp/locode-memory/{copy}/{name}");
            c.notify("textDocument/didOpen", json!({"textDocument": {"uri": uri, "languageId": lang, "version": 1, "text": text}}));
            // The end of a line about 300 lines down: a full prefix window.
            let lines: Vec<&str> = text.lines().collect();
            let line = (300 + copy * 7).min(lines.len() - 1);
            let col = lines[line].encode_utf16().count();
            let t = Instant::now();
            let id = c.send_request(
                "textDocument/inlineCompletion",
                json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": col}, "context": {"triggerKind": 1}}),
            );
            let r: Value = c.response(id, Duration::from_secs(600));
            assert!(r.get("error").is_none(), "completion failed: {r}");
            println!(
                "  + {:<28} VmRSS {:>7.1} MB  ({:.1} s)",
                format!("{copy}/{name}"),
                mb(status_kib(pid, "VmRSS:")),
                t.elapsed().as_secs_f64()
            );
        }
    }
    let rss = status_kib(pid, "VmRSS:");
    let peak = status_kib(pid, "VmHWM:");
    println!(
        "memory: 4 documents in 4 slots: VmRSS {:.1} MB, peak {:.1} MB ({:.1} MiB); limit {limit_mb:.0} MB: {}",
        mb(rss),
        mb(peak),
        peak as f64 / 1024.0,
        if mb(peak) <= limit_mb { "PASS" } else { "FAIL" }
    );
    c.shutdown();
}
