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
//! ```

#[path = "replay/lsp.rs"]
mod lsp;
#[path = "replay/peer.rs"]
mod peer;
#[path = "replay/report.rs"]
mod report;
#[path = "replay/trace.rs"]
mod trace;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use serde_json::{json, Value};

use report::{is_useful, Sample, LOCODE, PEER};
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
    /// Idle time before each request, in milliseconds (0: requests right after the edits).
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
    /// Print the trace (functions, typing events) and exit.
    #[arg(long)]
    dry_run: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"))
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

/// The locode binary: the one cargo built for this bench, else
/// target/release/locode, built with `cargo build --release` when missing.
fn server_bin(opts: &Opts) -> anyhow::Result<PathBuf> {
    if let Some(b) = &opts.server_bin {
        return Ok(b.clone());
    }
    if let Some(b) = option_env!("CARGO_BIN_EXE_locode") {
        if Path::new(b).exists() {
            return Ok(PathBuf::from(b));
        }
    }
    let bin = target_dir().join("release/locode");
    if !bin.exists() {
        eprintln!("replay: {} is missing; running cargo build --release", bin.display());
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let st = std::process::Command::new(cargo).args(["build", "--release", "--bin", "locode"]).current_dir(repo_root()).status()?;
        if !st.success() || !bin.exists() {
            bail!("cargo build --release failed");
        }
    }
    Ok(bin)
}

struct Run<'a> {
    opts: &'a Opts,
    deadline: Instant,
    samples: Vec<Sample>,
    total: usize,
    failures_in_a_row: usize,
}

impl Run<'_> {
    fn over(&self) -> bool {
        Instant::now() > self.deadline || self.failures_in_a_row >= 3
    }

    fn record(&mut self, s: Sample) {
        if s.error.is_some() {
            self.failures_in_a_row += 1;
            eprintln!("replay: {} request failed: {}", s.engine, s.error.as_deref().unwrap_or(""));
        } else {
            self.failures_in_a_row = 0;
        }
        self.samples.push(s);
        let n = self.samples.len();
        if n % 20 == 0 || n == self.total {
            let last = self.samples.last().unwrap();
            eprintln!("replay: {:<12} {n:>4}/{} requests (last {:.0} ms)", last.engine, self.total, last.latency_ms);
        }
    }

    fn pause(&self) {
        if self.opts.pause_ms > 0 {
            std::thread::sleep(Duration::from_millis(self.opts.pause_ms));
        }
    }
}

fn sample_base(engine: &'static str, s: &Session, doc: &str, cursor: usize, function: usize, step: usize, expected: &str) -> Sample {
    let pos = lsp::position(doc, cursor);
    Sample {
        engine,
        lang: s.lang,
        file: s.file_name.clone(),
        function: s.functions[function].name.clone(),
        step,
        line: pos["line"].as_u64().unwrap_or(0) as usize,
        col: pos["character"].as_u64().unwrap_or(0) as usize,
        latency_ms: 0.0,
        prompt_tokens: None,
        evaluated: 0,
        generated: 0,
        prompt_ms: None,
        generate_ms: None,
        suggestion: String::new(),
        expected: expected.to_string(),
        useful: false,
        shown: false,
        error: None,
    }
}

fn finish(mut s: Sample) -> Sample {
    s.shown = !s.suggestion.trim().is_empty();
    s.useful = s.error.is_none() && is_useful(&s.suggestion, &s.expected);
    s
}

/// The text an inline completion item inserts at the cursor: its insertText,
/// less what its range covers before the cursor (already typed).
fn inline_text(item: &Value, doc: &str, cursor: usize) -> String {
    let text = match &item["insertText"] {
        Value::String(s) => s.clone(),
        v => v["value"].as_str().unwrap_or("").to_string(),
    };
    let start = &item["range"]["start"];
    let here = lsp::position(doc, cursor);
    if start.is_object() && start["line"] == here["line"] {
        let covered_units = here["character"].as_u64().unwrap_or(0).saturating_sub(start["character"].as_u64().unwrap_or(0)) as usize;
        if covered_units > 0 {
            let line_start = doc[..cursor].rfind('\n').map(|i| i + 1).unwrap_or(0);
            let line = &doc[line_start..cursor];
            let mut units = 0;
            let mut from = line.len();
            for (i, c) in line.char_indices().rev() {
                if units >= covered_units {
                    break;
                }
                units += c.len_utf16();
                from = i;
            }
            if let Some(rest) = text.strip_prefix(&line[from..]) {
                return rest.to_string();
            }
        }
    }
    text
}

fn run_locode(run: &mut Run, sessions: &[Session], bin: &Path, model: &Path, out: &Path) -> anyhow::Result<Value> {
    let opts = run.opts;
    let args: Vec<String> =
        vec!["serve".into(), "--threads".into(), opts.threads.to_string(), "--model".into(), model.display().to_string()];
    let log = out.join("replay-locode.stderr.log");
    eprintln!("replay: starting {} {}", bin.display(), args.join(" "));
    let mut lsp = lsp::Lsp::spawn(bin, &args, &log)?;
    let caps = json!({
        "general": {"positionEncodings": ["utf-16"]},
        "textDocument": {
            "synchronization": {"dynamicRegistration": false, "didSave": false},
            "inlineCompletion": {"dynamicRegistration": false}
        },
        "window": {"workDoneProgress": false}
    });
    let init = json!({
        "processId": std::process::id(),
        "rootUri": null,
        "capabilities": caps,
        "initializationOptions": {"maxTokens": opts.max_tokens},
    });
    lsp.request("initialize", init, Duration::from_secs(30)).map_err(|e| anyhow::anyhow!("{e} (see {})", log.display()))?;
    lsp.notify("initialized", json!({}))?;
    let t = Instant::now();
    let status = loop {
        let st = lsp.request("locode/status", json!(null), Duration::from_secs(10)).map_err(|e| anyhow::anyhow!(e))?;
        if st["state"] != "loading" {
            break st;
        }
        if t.elapsed() > Duration::from_secs(300) {
            bail!("locode: model still loading after 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if status["state"] != "ready" {
        bail!("locode: model not ready: {status}");
    }
    eprintln!("replay: locode ready in {:.1} s", t.elapsed().as_secs_f64());
    let timeout = Duration::from_secs(opts.timeout_s);
    let dir = tempfile::tempdir()?;
    'sessions: for s in sessions {
        let path = dir.path().join(&s.file_name);
        std::fs::write(&path, &s.text)?;
        let uri = format!("file://{}", path.display());
        let mut doc = s.text.clone();
        let mut version = 1;
        lsp.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": s.lang.language_id(), "version": version, "text": doc}}),
        )?;
        for a in &s.actions {
            if run.over() {
                break 'sessions;
            }
            match a {
                Action::Edit { start, end, text } => {
                    let range = json!({"start": lsp::position(&doc, *start), "end": lsp::position(&doc, *end)});
                    trace::apply(&mut doc, *start, *end, text);
                    version += 1;
                    lsp.notify(
                        "textDocument/didChange",
                        json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"range": range, "text": text}]}),
                    )?;
                }
                Action::Request { cursor, function, step, expected } => {
                    run.pause();
                    let mut smp = sample_base(LOCODE, s, &doc, *cursor, *function, *step, expected);
                    let params = json!({
                        "textDocument": {"uri": uri},
                        "position": lsp::position(&doc, *cursor),
                        "context": {"triggerKind": 2, "selectedCompletionInfo": null},
                    });
                    let (id, sent) = lsp.send_request("textDocument/inlineCompletion", params)?;
                    match lsp.wait_response(id, timeout) {
                        Some((at, resp)) => {
                            smp.latency_ms = at.duration_since(sent).as_secs_f64() * 1000.0;
                            if let Some(e) = resp.get("error") {
                                smp.error = Some(format!("inlineCompletion error: {e}"));
                            } else {
                                let r = &resp["result"];
                                let items = if r.is_array() { r.as_array() } else { r["items"].as_array() };
                                if let Some(item) = items.and_then(|i| i.first()) {
                                    smp.suggestion = inline_text(item, &doc, *cursor);
                                }
                            }
                        }
                        None => {
                            smp.latency_ms = sent.elapsed().as_secs_f64() * 1000.0;
                            smp.error = Some(format!("no answer within {timeout:?}"));
                            let _ = lsp.notify("$/cancelRequest", json!({"id": id}));
                            // Let the cancelled request drain before the next one.
                            let _ = lsp.wait_response(id, Duration::from_secs(10));
                        }
                    }
                    match lsp.request("locode/lastStats", json!({"uri": uri}), Duration::from_secs(10)) {
                        Ok(st) => {
                            let u = |k: &str| st[k].as_u64();
                            smp.prompt_tokens = u("prompt_tokens");
                            smp.evaluated = u("evaluated_tokens").unwrap_or(0);
                            smp.generated = u("generated_tokens").unwrap_or(0);
                            smp.prompt_ms = st["prompt_ms"].as_f64();
                            smp.generate_ms = st["generate_ms"].as_f64();
                        }
                        Err(e) => eprintln!("replay: locode/lastStats: {e}"),
                    }
                    run.record(finish(smp));
                    if !lsp.alive() {
                        bail!("locode exited (see {})", log.display());
                    }
                }
            }
        }
        lsp.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}}))?;
    }
    for p in &lsp.problems {
        eprintln!("replay: locode said: {p}");
    }
    let problems = lsp.problems.clone();
    lsp.shutdown();
    Ok(json!({"binary": bin, "args": args, "status": status, "messages": problems}))
}

fn run_peer(run: &mut Run, sessions: &[Session], bin: &Path, model: &Path, out: &Path) -> anyhow::Result<Value> {
    let opts = run.opts;
    let log = out.join("replay-llama-server.log");
    eprintln!("replay: starting {} (log {})", bin.display(), log.display());
    let t = Instant::now();
    let mut server = peer::LlamaServer::start(bin, model, opts.threads, &log, Duration::from_secs(300))?;
    eprintln!("replay: llama-server ready on 127.0.0.1:{} in {:.1} s", server.port, t.elapsed().as_secs_f64());
    let props = server.props();
    let timeout = Duration::from_secs(opts.timeout_s);
    'sessions: for s in sessions {
        let mut doc = s.text.clone();
        for a in &s.actions {
            if run.over() {
                break 'sessions;
            }
            match a {
                Action::Edit { start, end, text } => trace::apply(&mut doc, *start, *end, text),
                Action::Request { cursor, function, step, expected } => {
                    run.pause();
                    let mut smp = sample_base(PEER, s, &doc, *cursor, *function, *step, expected);
                    let body = peer::infill_request(&doc, *cursor, opts.max_tokens, !opts.peer_multiline).to_string();
                    let t0 = Instant::now();
                    let res = peer::http(server.port, "POST", "/infill", Some(&body), timeout);
                    smp.latency_ms = t0.elapsed().as_secs_f64() * 1000.0;
                    match res {
                        Ok((200, text)) => match serde_json::from_str::<Value>(&text) {
                            Ok(v) => {
                                smp.suggestion = v["content"].as_str().unwrap_or("").to_string();
                                let tm = &v["timings"];
                                smp.prompt_tokens = v["tokens_evaluated"].as_u64();
                                smp.evaluated = tm["prompt_n"].as_u64().unwrap_or(0);
                                smp.generated = tm["predicted_n"].as_u64().or(v["tokens_predicted"].as_u64()).unwrap_or(0);
                                smp.prompt_ms = tm["prompt_ms"].as_f64();
                                smp.generate_ms = tm["predicted_ms"].as_f64();
                            }
                            Err(e) => smp.error = Some(format!("bad JSON from /infill: {e}")),
                        },
                        Ok((code, text)) => smp.error = Some(format!("/infill answered {code}: {}", text.chars().take(300).collect::<String>())),
                        Err(e) => smp.error = Some(format!("/infill: {e}")),
                    }
                    run.record(finish(smp));
                    if !server.alive() {
                        bail!("llama-server exited (see {})", log.display());
                    }
                }
            }
        }
    }
    let build = props.as_ref().map(|p| p["build_info"].clone()).unwrap_or(Value::Null);
    Ok(json!({"binary": bin, "build_info": build, "single_line_stop": !opts.peer_multiline}))
}

fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
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
    println!("typing replay: {} functions per file, up to {} requests per function, {} threads, {} max tokens", opts.functions, opts.requests, opts.threads, opts.max_tokens);
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
                        println!("{} {}#{step:<2} {:?} | {:?}", s.lang.name(), s.functions[*function].name, &doc[line_start..*cursor], expected);
                    }
                }
            }
            assert_eq!(doc, s.text, "the replay must end on the original text");
        }
        return Ok(());
    }

    let mut engines: Vec<&'static str> = Vec::new();
    let want = |e: &str| opts.only.as_deref().is_none_or(|o| o == e);
    let mut meta = serde_json::Map::new();
    let mut run = Run { opts: &opts, deadline: Instant::now() + Duration::from_secs(opts.max_minutes * 60), samples: Vec::new(), total: total_requests, failures_in_a_row: 0 };
    let mut errors = Vec::new();

    if want(LOCODE) {
        let bin = server_bin(&opts)?;
        run.total = run.samples.len() + total_requests;
        run.failures_in_a_row = 0;
        match run_locode(&mut run, &sessions, &bin, &model, &out) {
            Ok(m) => {
                meta.insert(LOCODE.into(), m);
            }
            Err(e) => {
                eprintln!("replay: locode: {e:#}");
                errors.push(format!("locode: {e:#}"));
            }
        }
        engines.push(LOCODE);
    }
    if want(PEER) {
        let bin = opts.peer_bin.clone().unwrap_or_else(default_peer);
        if !bin.exists() {
            let msg = format!(
                "llama-server not found at {}: build it with `benches/peer/build-llama-server.sh` \
                 (about 10 minutes on 2 cores) or pass --peer-bin PATH; running locode alone \
                 (`--only locode` skips this message)",
                bin.display()
            );
            eprintln!("replay: {msg}");
            if opts.only.as_deref() == Some(PEER) {
                bail!("{msg}");
            }
            errors.push(msg);
        } else {
            run.total = run.samples.len() + total_requests;
            run.failures_in_a_row = 0;
            match run_peer(&mut run, &sessions, &bin, &model, &out) {
                Ok(m) => {
                    meta.insert(PEER.into(), m);
                }
                Err(e) => {
                    eprintln!("replay: llama-server: {e:#}");
                    errors.push(format!("llama-server: {e:#}"));
                }
            }
            engines.push(PEER);
        }
    }
    if Instant::now() > run.deadline {
        errors.push(format!("stopped after --max-minutes {}", opts.max_minutes));
    }

    let samples = run.samples;
    println!();
    println!("latency: wall clock per request; eval: prompt tokens evaluated per request (KV cache misses);");
    println!("prompt: prompt size in tokens; gen: tokens generated; shown: non-empty suggestion;");
    println!("useful: first line non-empty and a prefix of what is typed next on that line; ratio l/s: locode / llama-server");
    println!();
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
            "peer_single_line_stop": !opts.peer_multiline,
            "model": model,
            "corpus": corpus,
        },
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
