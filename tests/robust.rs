//! Robustness under load, faults and bad input, and privacy: the `locode`
//! binary over stdio with the real default model (`make model`).
//!
//! - A storm of `didChange` notifications with completions and cancels in flight.
//! - Big and odd documents: time per request and memory stay bounded.
//! - Model faults: no FIM tokens, too large for memory, a prompt longer than
//!   the context, a panic on the engine thread.
//! - Privacy: zero `connect()` calls with escalation off (strace, and inside
//!   a network namespace), no document text in default logs, private files.
//!
//! Every figure is printed (`cargo test --release --test robust -- --nocapture`).

#[path = "common/lsp_client.rs"]
mod lsp_client;

use lsp_client::{bin, model_path, LspClient};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `locode serve ARGS` with its stderr written to `log` (when given).
fn spawn(args: &[&str], envs: &[(&str, &str)], log: Option<&Path>) -> LspClient {
    let null: lsp_client::Handler = Arc::new(|_: &Value| Value::Null);
    match log {
        None => {
            let mut a = vec!["serve"];
            a.extend_from_slice(args);
            LspClient::spawn_with(bin(), &a, envs, null)
        }
        Some(log) => {
            let mut a = vec!["-c", r#"log="$1"; shift; exec "$@" 2>"$log""#, "sh", log.to_str().unwrap(), bin().to_str().unwrap(), "serve"];
            a.extend_from_slice(args);
            LspClient::spawn_with(Path::new("sh"), &a, envs, null)
        }
    }
}

/// A server with the default model loaded, speaking UTF-16.
fn ready(options: Value, envs: &[(&str, &str)], log: Option<&Path>) -> LspClient {
    model_path();
    let mut c = spawn(&[], envs, log);
    c.initialize(json!({}), options);
    let st = c.wait_model(Duration::from_secs(300));
    assert_eq!(st["state"], "ready", "model did not load: {st}");
    c
}

fn open(c: &mut LspClient, uri: &str, lang: &str, text: &str) {
    c.notify("textDocument/didOpen", json!({"textDocument": {"uri": uri, "languageId": lang, "version": 1, "text": text}}));
}

fn inline_params(uri: &str, line: u32, col: u32) -> Value {
    json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": col}, "context": {"triggerKind": 2}})
}

fn server_text(c: &mut LspClient, uri: &str) -> (i64, String) {
    let st = c.request("locode/documentState", json!({"uri": uri}));
    (st["version"].as_i64().unwrap(), st["text"].as_str().unwrap().to_string())
}

fn first_text(resp: &Value) -> String {
    let items = resp.as_array().cloned().or_else(|| resp["items"].as_array().cloned()).unwrap_or_default();
    items.first().and_then(|i| i["insertText"].as_str()).unwrap_or("").to_string()
}

fn proc_status(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The process's threads but tokio's own (its blocking pool grows and
/// shrinks with the work of the moment), by name.
fn threads_but_tokio(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        // Tokio's workers and blocking pool (`tokio-rt-worker`,
        // `tokio-runtime-w`), which grow and shrink on their own.
        .filter(|name| !name.starts_with("tokio-"))
        .count() as u64
}

fn rss_mib(pid: u32) -> f64 {
    proc_status(pid, "VmRSS:") as f64 / 1024.0
}

fn hwm_mib(pid: u32) -> f64 {
    proc_status(pid, "VmHWM:") as f64 / 1024.0
}

// ------------------------------------------------------------------ storm

/// The client's copy of an ASCII document, as lines, and a typist who
/// types a line or two at its end and deletes them again, over and over
/// (the document stays the same size, as in a long editing session).
struct Typist {
    lines: Vec<String>,
    source: Vec<char>,
    next: usize,
    typed: usize,
    deleting: bool,
}

impl Typist {
    /// The next keystroke as an LSP change: (start, end, text).
    fn keystroke(&mut self) -> ((u32, u32), (u32, u32), String) {
        if !self.deleting && self.typed >= 70 {
            self.deleting = true;
        } else if self.deleting && self.typed == 0 {
            self.deleting = false;
        }
        let line = self.lines.len() - 1;
        let col = self.lines[line].len() as u32;
        let at = (line as u32, col);
        if self.deleting {
            self.typed -= 1;
            if col > 0 {
                self.lines[line].pop();
                return ((line as u32, col - 1), at, String::new());
            }
            // Backspace over a line break.
            self.lines.pop();
            let prev = (line as u32 - 1, self.lines[line - 1].len() as u32);
            return (prev, at, String::new());
        }
        let c = self.source[self.next % self.source.len()];
        self.next += 1;
        self.typed += 1;
        if c == '\n' {
            self.lines.push(String::new());
        } else {
            self.lines[line].push(c);
        }
        (at, at, c.to_string())
    }

    fn text(&self) -> String {
        self.lines.join("\n")
    }
}

#[test]
fn storm_of_changes_with_completions_and_cancels_in_flight() {
    let rate: u64 = std::env::var("LOCODE_STORM_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let secs: u64 = std::env::var("LOCODE_STORM_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let mut c = ready(json!({"maxTokens": 24}), &[], None);
    let uri = "file:///tmp/locode-robust/storm.py";
    let mut base: String = (0..60).map(|i| format!("def helper_{i}(value):\n    return value * {i}\n\n")).collect();
    base.push_str("def main():\n    ");
    open(&mut c, uri, "python", &base);
    // The file has been open a while when the storm comes: its cache is
    // warm (the warm-up after didOpen has run).
    let warm_deadline = Instant::now() + Duration::from_secs(180);
    while c.request("locode/status", json!(null))["warmups"].as_u64().unwrap_or(0) == 0 {
        assert!(Instant::now() < warm_deadline, "no warm-up after didOpen");
        std::thread::sleep(Duration::from_millis(100));
    }
    let source: Vec<char> = "total = helper_3(4) + helper_7(total)\n    print(total)\n    ".chars().collect();
    let mut typist = Typist { lines: base.split('\n').map(str::to_string).collect(), source, next: 0, typed: 0, deleting: false };
    let mut version = 1;
    let mut requests: Vec<i64> = Vec::new();
    let mut cancelled = 0usize;
    let mut to_cancel: Option<i64> = None;
    let t0 = Instant::now();
    let storm = Duration::from_secs(secs);
    let mut changes = 0u64;
    let mut next_completion = Duration::ZERO;
    while t0.elapsed() < storm {
        let due = (t0.elapsed().as_micros() as u64 * rate / 1_000_000).max(changes);
        loop {
            if t0.elapsed() >= next_completion {
                next_completion += Duration::from_millis(5);
                if let Some(id) = to_cancel.take() {
                    c.notify("$/cancelRequest", json!({"id": id}));
                    cancelled += 1;
                }
                let line = typist.lines.len() as u32 - 1;
                let col = typist.lines.last().unwrap().len() as u32;
                let id = c.send_request("textDocument/inlineCompletion", inline_params(uri, line, col));
                // Every third request is cancelled by the client 5 ms later.
                if requests.len().is_multiple_of(3) {
                    to_cancel = Some(id);
                }
                requests.push(id);
            }
            if changes >= due {
                break;
            }
            let (a, b, text) = typist.keystroke();
            version += 1;
            c.notify(
                "textDocument/didChange",
                json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [
                    {"range": {"start": {"line": a.0, "character": a.1}, "end": {"line": b.0, "character": b.1}}, "text": text}]}),
            );
            changes += 1;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let storm_s = t0.elapsed().as_secs_f64();
    let end = Instant::now();
    // Every request is answered (result, error or cancelled) within 2 s of the storm's end.
    let limit = Duration::from_millis(std::env::var("LOCODE_STORM_LIMIT_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000));
    let mut last = Duration::ZERO;
    let (mut empty, mut with_text, mut cancelled_answers, mut errors) = (0, 0, 0, 0);
    let mut late = Vec::new();
    for &id in &requests {
        let left = (end + limit).saturating_duration_since(Instant::now());
        let Some(r) = c.wait_for(left, |m| m.get("id") == Some(&json!(id)) && m.get("method").is_none()) else {
            late.push(id);
            continue;
        };
        last = last.max(end.elapsed());
        match (&r.get("result"), r["error"]["code"].as_i64()) {
            (_, Some(-32800)) => cancelled_answers += 1,
            (_, Some(_)) => errors += 1,
            (Some(res), None) if first_text(res).is_empty() => empty += 1,
            _ => with_text += 1,
        }
    }
    // No request is answered twice.
    let ids: std::collections::HashSet<i64> = requests.iter().copied().collect();
    let dup = c.wait_for(Duration::from_millis(300), |m| m.get("method").is_none() && m["id"].as_i64().is_some_and(|i| ids.contains(&i)));
    assert!(dup.is_none(), "a request was answered twice: {dup:?}");
    let after = Instant::now();
    let (v, text) = server_text(&mut c, uri);
    let state_ms = after.elapsed().as_secs_f64() * 1e3;
    println!(
        "storm: {changes} didChange in {storm_s:.1} s ({:.0}/s, target {rate}/s), {} completion requests ({cancelled} cancelled by the client); \
         answers: {with_text} with text, {empty} empty, {cancelled_answers} cancelled, {errors} errors; \
         {} unanswered after 2 s, the others answered by {:.0} ms after the storm; documentState {state_ms:.0} ms; text {} chars",
        changes as f64 / storm_s,
        requests.len(),
        late.len(),
        last.as_secs_f64() * 1e3,
        text.len()
    );
    assert!(late.is_empty(), "{} of {} requests not answered within {limit:?} after the storm: {late:?}", late.len(), requests.len());
    assert_eq!(errors, 0, "completion errors during the storm");
    assert_eq!(v, version as i64, "the last version");
    assert!(text == typist.text(), "the server's text differs from the client's after the storm");
    // A completion after the storm works normally.
    let line = typist.lines.len() as u32 - 1;
    let col = typist.lines.last().unwrap().len() as u32;
    let t = Instant::now();
    let r = c.request("textDocument/inlineCompletion", inline_params(uri, line, col));
    println!("storm: first completion after the storm {:.0} ms: {:?}", t.elapsed().as_secs_f64() * 1e3, first_text(&r));
    assert!(r.is_array(), "{r}");
    c.shutdown();
}

// ------------------------------------------------------------------ big and odd inputs

struct Case {
    name: &'static str,
    lang: &'static str,
    text: String,
    /// Where to complete: (line, UTF-16 column).
    at: (u32, u32),
}

fn big_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    // The baseline: an ordinary file.
    let mut t: String = (0..100).map(|i| format!("def helper_{i}(value):\n    return value * {i}\n\n")).collect();
    t.push_str("result = ");
    cases.push(Case { name: "baseline: 300-line file", lang: "python", at: (300, 9), text: t });
    // 100,000 lines.
    let mut t: String = (0..99_999).map(|i| format!("x_{i} = compute({i}, 'v{}')\n", i % 97)).collect();
    t.push_str("result = ");
    cases.push(Case { name: "100,000-line file", lang: "python", at: (99_999, 9), text: t });
    // 5 MB on one line (minified).
    let unit = "function a(b,c){return b+c*2;}var d=[1,2,3].map(function(e){return a(e,4)});";
    let t = unit.repeat(5_000_000 / unit.len() + 1);
    let col = t.encode_utf16().count() as u32;
    cases.push(Case { name: "5 MB single line", lang: "javascript", at: (0, col), text: t });
    // Binary content as an editor sends it: every byte value, lossily decoded.
    let mut state = 0x2545F4914F6CDD1Du64;
    let bytes: Vec<u8> = (0..1_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    // (CR ends lines too; keep LF as the only terminator to find the last line.)
    let t = String::from_utf8_lossy(&bytes).replace('\r', " ");
    let lines = t.split('\n').count() as u32;
    let at = (lines - 1, t.rsplit('\n').next().unwrap().encode_utf16().count() as u32);
    cases.push(Case { name: "1 MB of binary bytes", lang: "python", at, text: t });
    // 10,000 levels of nesting, cursor at the deepest level.
    let depth = 10_000;
    let mut t = String::from("fn main() {\n    let v = ");
    t.push_str(&"[".repeat(depth));
    let col = t.rsplit('\n').next().unwrap().len() as u32;
    t.push_str(&"]".repeat(depth));
    t.push_str(";\n}\n");
    cases.push(Case { name: "10,000 nested brackets (Rust)", lang: "rust", at: (1, col), text: t });
    let mut t = String::new();
    for i in 0..depth {
        t.push_str(&format!("{}if x{i}:\n", " ".repeat(i % 200)));
    }
    t.push_str(&format!("{}return ", " ".repeat(depth % 200)));
    let col = (depth % 200) as u32 + 7;
    cases.push(Case { name: "10,000 nested blocks (Python)", lang: "python", at: (depth as u32, col), text: t });
    let mut t = String::new();
    let mut line = 0;
    for i in 0..depth {
        t.push_str(&format!("{}{{\n", " ".repeat(i % 100)));
        line += 1;
    }
    t.push_str("let total = ");
    let col = 12;
    t.push_str(&"\n}".repeat(depth));
    cases.push(Case { name: "10,000 nested blocks (Rust)", lang: "rust", at: (line, col), text: t });
    // 50,000 definitions.
    let mut t: String = (0..50_000).map(|i| format!("def function_{i}(a, b):\n    return a * {i} + b\n\n")).collect();
    let lines = t.matches('\n').count() as u32;
    t.push_str("def final(a, b):\n    return function_");
    cases.push(Case { name: "50,000 definitions", lang: "python", at: (lines + 1, 20), text: t });
    cases
}

#[test]
fn big_and_odd_documents_keep_requests_and_memory_bounded() {
    // A smaller prompt than the default keeps the test quick on a CPU; the
    // point is that no input makes a request cost more than an ordinary one.
    // Whole prompts only (no first window), so each case's prompt compares with the baseline's.
    let mut c = ready(json!({"maxTokens": 16, "prefixChars": 1500, "suffixChars": 500, "firstAnswerMs": 0}), &[], None);
    let pid = c.pid();
    let base_rss = rss_mib(pid);
    println!("big inputs: RSS with the model loaded {base_rss:.0} MiB");
    println!("{:<32} {:>9} {:>10} {:>10} {:>8} {:>10} {:>9}", "input", "size", "open ms", "cold ms", "tokens", "warm ms", "RSS MiB");
    let mut worst = (0f64, 0f64);
    let mut baseline: Option<(f64, u64)> = None;
    for (i, case) in big_cases().into_iter().enumerate() {
        let uri = format!(
            "file:///tmp/locode-robust/big{i}.{}",
            if case.lang == "rust" {
                "rs"
            } else if case.lang == "python" {
                "py"
            } else {
                "js"
            }
        );
        let t = Instant::now();
        open(&mut c, &uri, case.lang, &case.text);
        let (_, text) = server_text(&mut c, &uri);
        let open_ms = t.elapsed().as_secs_f64() * 1e3;
        assert!(text == case.text, "{}: the server's text differs", case.name);
        // A cold completion at the cursor, then one keystroke and a warm one.
        let t = Instant::now();
        let r = c.request("textDocument/inlineCompletion", inline_params(&uri, case.at.0, case.at.1));
        let cold = t.elapsed().as_secs_f64() * 1e3;
        assert!(r.is_array(), "{}: {r}", case.name);
        let tokens = c.request("locode/lastStats", json!({"uri": uri}))["prompt_tokens"].as_u64().unwrap_or(0);
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
                {"range": {"start": {"line": case.at.0, "character": case.at.1}, "end": {"line": case.at.0, "character": case.at.1}}, "text": "x"}]}),
        );
        let t = Instant::now();
        let r = c.request("textDocument/inlineCompletion", inline_params(&uri, case.at.0, case.at.1 + 1));
        let warm = t.elapsed().as_secs_f64() * 1e3;
        assert!(r.is_array(), "{}: {r}", case.name);
        let rss = rss_mib(pid);
        println!(
            "{:<32} {:>8.1}M {:>10.0} {:>10.0} {:>8} {:>10.0} {:>9.0}",
            case.name,
            case.text.len() as f64 / 1e6,
            open_ms,
            cold,
            tokens,
            warm,
            rss
        );
        worst = (worst.0.max(cold.max(warm)), worst.1.max(rss));
        // Bounds: the prompt is capped whatever the input, so no request costs
        // much more than the baseline's (generous: a loaded 2-core machine).
        let (base_ms, base_tokens) = *baseline.get_or_insert((cold, tokens));
        assert!(tokens <= base_tokens * 4 + 64, "{}: a prompt of {tokens} tokens (baseline {base_tokens})", case.name);
        assert!(
            cold.max(warm) < base_ms * 4.0 + 10_000.0,
            "{}: a completion took {:.0} ms (baseline {base_ms:.0} ms)",
            case.name,
            cold.max(warm)
        );
        assert!(open_ms < 30_000.0, "{}: opening took {open_ms:.0} ms", case.name);
        c.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}}));
    }
    let peak = hwm_mib(pid);
    let end_rss = rss_mib(pid);
    println!(
        "big inputs: slowest request {:.0} ms; RSS peak {peak:.0} MiB, after closing all {end_rss:.0} MiB (base {base_rss:.0})",
        worst.0
    );
    assert!(peak < base_rss + 1024.0, "peak RSS {peak:.0} MiB grew more than 1 GiB over {base_rss:.0} MiB");
    c.shutdown();
}

#[test]
fn workspace_with_invalid_utf8_and_binary_files_on_disk() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("latin1.py"), b"# caf\xe9 cr\xe8me\ndef brul\xe9e(x):\n    return x\n").unwrap();
    std::fs::write(ws.path().join("broken.rs"), b"fn main() { let s = \"\xff\xfe\xfd\"; }\n").unwrap();
    let blob: Vec<u8> = (0..2_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(ws.path().join("data.py"), &blob).unwrap();
    std::fs::write(ws.path().join("image.png"), &blob[..100_000]).unwrap();
    std::fs::write(ws.path().join("util.py"), "def scale(value, factor):\n    return value * factor\n").unwrap();
    let root = format!("file://{}", ws.path().display());
    model_path();
    let mut c = spawn(&[], &[], None);
    c.request(
        "initialize",
        json!({"processId": null, "rootUri": root, "capabilities": {},
               "workspaceFolders": [{"uri": root, "name": "ws"}], "initializationOptions": {"maxTokens": 16}}),
    );
    c.notify("initialized", json!({}));
    assert_eq!(c.wait_model(Duration::from_secs(300))["state"], "ready");
    let uri = format!("{root}/main.py");
    let text = "from util import scale\n\n\ndef run(x):\n    return scale(";
    open(&mut c, &uri, "python", text);
    let t = Instant::now();
    let r = c.request("textDocument/inlineCompletion", inline_params(&uri, 4, 17));
    println!(
        "workspace with invalid UTF-8 and binary files: completion in {:.0} ms: {:?}",
        t.elapsed().as_secs_f64() * 1e3,
        first_text(&r)
    );
    assert!(r.is_array(), "{r}");
    // A file that is not UTF-8, opened by the editor after its own decoding.
    let uri2 = format!("{root}/latin1.py");
    let latin = "# café crème\ndef brulée(x):\n    return x\n";
    open(&mut c, &uri2, "python", latin);
    assert_eq!(server_text(&mut c, &uri2).1, latin);
    assert_eq!(c.request("locode/status", json!(null))["state"], "ready");
    c.shutdown();
}

// ------------------------------------------------------------------ model faults

/// Starts a server on `model`, expects an error message containing `needle`
/// (shown and logged), and checks the server keeps answering.
fn expect_model_error(model: &Path, needle: &str) -> String {
    let mut c = spawn(&["--model", model.to_str().unwrap()], &[], None);
    c.initialize(json!({}), json!({}));
    let msg = c.wait_for(Duration::from_secs(300), |m| m["method"] == "window/showMessage").expect("a showMessage about the model");
    assert_eq!(msg["params"]["type"], 1, "an error: {msg}");
    let text = msg["params"]["message"].as_str().unwrap().to_string();
    assert!(text.contains(needle), "{text:?} should mention {needle:?}");
    let uri = "file:///tmp/locode-robust/fault.py";
    open(&mut c, uri, "python", "x = \n");
    assert_eq!(c.request("textDocument/inlineCompletion", inline_params(uri, 0, 4)), json!([]));
    let st = c.request("locode/status", json!(null));
    assert_eq!(st["state"], "failed");
    assert!(st["error"].as_str().unwrap().contains(needle), "{st}");
    c.shutdown();
    text
}

#[test]
fn model_without_fim_tokens_is_refused_with_a_clear_message() {
    // The real model with its FIM tokens renamed in the vocabulary
    // (`<|fim_prefix|>` -> `<|xim_prefix|>`: same length, so offsets hold).
    let dir = tempfile::tempdir().unwrap();
    let patched = dir.path().join("no-fim.gguf");
    std::fs::copy(model_path(), &patched).unwrap();
    let mut head = vec![0u8; 32 << 20];
    {
        use std::io::{Read, Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().read(true).write(true).open(&patched).unwrap();
        f.read_exact(&mut head).unwrap();
        let mut n = 0;
        let mut i = 0;
        while let Some(p) = head[i..].windows(6).position(|w| w == b"<|fim_") {
            head[i + p + 2] = b'x';
            n += 1;
            i += p + 6;
        }
        assert!(n >= 3, "found {n} FIM tokens to rename");
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(&head).unwrap();
    }
    let msg = expect_model_error(&patched, "no fill-in-the-middle tokens");
    println!("no FIM tokens: {msg}");
}

#[test]
fn model_too_large_for_memory_is_refused_before_loading() {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib = |name: &str| -> u64 {
        meminfo.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let total = (kib("MemTotal:") + kib("SwapTotal:")) * 1024;
    // A sparse file: a GGUF header and a declared size of twice all memory.
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.gguf");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&huge).unwrap();
        f.write_all(b"GGUF\x03\x00\x00\x00").unwrap();
        f.set_len((total * 2).min(8 << 40)).unwrap();
    }
    let t = Instant::now();
    let msg = expect_model_error(&huge, "memory");
    println!("too large ({:.0} GiB file): {msg} ({:.0} ms)", (total * 2) as f64 / (1u64 << 30) as f64, t.elapsed().as_secs_f64() * 1e3);
    assert!(msg.contains("MiB"), "{msg}");
}

#[test]
fn prompt_longer_than_a_slot_is_answered_from_the_lines_that_fit_else_refused_clearly() {
    let mut c = ready(json!({"contextSize": 256}), &[], None);
    let uri = "file:///tmp/locode-robust/long.py";
    let mut text: String = (0..300).map(|i| format!("def f{i}(value):\n    return value * {i} + {}\n\n", i * 3)).collect();
    text.push_str("def last(value):\n    return ");
    let line = text.matches('\n').count() as u32;
    open(&mut c, uri, "python", &text);
    // The whole prompt is thousands of tokens; a slot holds 256 with the
    // answer: the nearest lines that fit answer.
    let id = c.send_request("textDocument/inlineCompletion", inline_params(uri, line, 11));
    let r = c.response(id, Duration::from_secs(300));
    println!("prompt longer than a slot: {r}");
    assert!(r.get("error").is_none() && !first_text(&r["result"]).is_empty(), "answered from the lines that fit: {r}");
    // Without smaller windows (`firstAnswerMs` 0) nothing fits: a clear error.
    c.notify("workspace/didChangeConfiguration", json!({"settings": {"locode": {"firstAnswerMs": 0}}}));
    let id = c.send_request("textDocument/inlineCompletion", inline_params(uri, line, 11));
    let r = c.response(id, Duration::from_secs(300));
    println!("prompt longer than a slot, no smaller windows: {r}");
    let m = r["error"]["message"].as_str().unwrap_or_default();
    assert!(m.contains("context"), "the error should say the prompt does not fit the context: {r}");
    // The server goes on: a short document completes.
    let uri2 = "file:///tmp/locode-robust/short.py";
    open(&mut c, uri2, "python", "def add(a, b):\n    return ");
    let r = c.request("textDocument/inlineCompletion", inline_params(uri2, 1, 11));
    assert!(!first_text(&r).is_empty(), "a short prompt still completes: {r}");
    c.shutdown();
}

#[test]
fn engine_thread_panic_is_caught_and_the_engine_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.txt");
    let mut c = ready(json!({"maxTokens": 16}), &[("LOCODE_TEST_HOOKS", "1")], Some(&log));
    let pid = c.pid();
    let threads_before = threads_but_tokio(pid);
    let ok_uri = "file:///tmp/locode-robust/ok.py";
    open(&mut c, ok_uri, "python", "def add(a, b):\n    return ");
    let works = |c: &mut LspClient| {
        let r = c.request("textDocument/inlineCompletion", inline_params(ok_uri, 1, 11));
        assert!(!first_text(&r).is_empty(), "the engine answers: {r}");
    };
    works(&mut c);
    for (marker, expect) in [("locode-test-panic-request", "internal error"), ("locode-test-panic-engine", "engine thread stopped")] {
        let uri = format!("file:///tmp/locode-robust/{marker}.py");
        open(&mut c, &uri, "python", "x = ");
        let id = c.send_request("textDocument/inlineCompletion", inline_params(&uri, 0, 4));
        let r = c.response(id, Duration::from_secs(60));
        println!("panic {marker}: {r}");
        assert!(r["error"]["message"].as_str().unwrap_or_default().contains(expect), "{r}");
        // The server and the engine go on.
        works(&mut c);
        assert_eq!(c.request("locode/status", json!(null))["state"], "ready");
    }
    let threads_after = threads_but_tokio(pid);
    c.shutdown();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(stderr.contains("engine panicked: test fault: request"), "{stderr}");
    assert!(stderr.contains("the engine thread panicked: test fault: engine thread; restarting it"), "{stderr}");
    println!("engine panics: threads {threads_before} -> {threads_after}");
    assert!(threads_after <= threads_before + 1, "threads leaked: {threads_before} -> {threads_after}");
}

// ------------------------------------------------------------------ privacy

/// Runs a session of completions and code actions (escalation off, the
/// default) under `wrapper`, returning the completion it got.
fn private_session(wrapper: &[&str], envs: &[(&str, &str)]) -> String {
    let null: lsp_client::Handler = Arc::new(|_: &Value| Value::Null);
    let mut args: Vec<&str> = wrapper[1..].to_vec();
    args.extend_from_slice(&[bin().to_str().unwrap(), "serve"]);
    let mut c = LspClient::spawn_with(Path::new(wrapper[0]), &args, envs, null);
    c.initialize(json!({}), json!({"maxTokens": 16}));
    assert_eq!(c.wait_model(Duration::from_secs(300))["state"], "ready");
    let uri = "file:///tmp/locode-robust/private.py";
    open(&mut c, uri, "python", "def area(radius):\n    return 3.14159 * ");
    let r = c.request("textDocument/inlineCompletion", inline_params(uri, 1, 21));
    let _ = c.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": uri}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 21}}, "context": {"diagnostics": []}}),
    );
    c.notify("workspace/didChangeConfiguration", json!({"settings": {"locode": {"maxLines": 4}}}));
    let _ = c.request("textDocument/completion", json!({"textDocument": {"uri": uri}, "position": {"line": 1, "character": 21}}));
    c.shutdown();
    first_text(&r)
}

fn works(cmd: &[&str]) -> bool {
    std::process::Command::new(cmd[0]).args(&cmd[1..]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn escalation_off_makes_zero_connect_calls_and_works_without_a_network() {
    model_path();
    let mut shown = 0;
    // Every connect() of any address family, in every thread.
    if works(&["strace", "-qq", "-e", "trace=connect", "true"]) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("strace.txt");
        let text = private_session(&["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", log.to_str().unwrap()], &[]);
        let trace = std::fs::read_to_string(&log).unwrap();
        let connects: Vec<&str> = trace.lines().filter(|l| l.contains("connect(")).collect();
        let sends: Vec<&str> = trace.lines().filter(|l| l.contains("sendto(") || l.contains("sendmsg(")).collect();
        println!("strace: {} connect() calls, {} sendto/sendmsg calls; completion {text:?}", connects.len(), sends.len());
        assert!(connects.is_empty(), "connect() calls with escalation off:\n{}", connects.join("\n"));
        assert!(sends.is_empty(), "datagrams sent with escalation off:\n{}", sends.join("\n"));
        assert!(!text.is_empty(), "the session completed");
        shown += 1;
    }
    // In a network namespace with no interface up: everything still works.
    if works(&["unshare", "-n", "true"]) {
        let text = private_session(&["unshare", "-n"], &[]);
        println!("network namespace (unshare -n): completion {text:?}");
        assert!(!text.is_empty(), "completions work with no network at all");
        shown += 1;
    }
    assert!(
        shown > 0,
        "neither strace nor `unshare -n` works here, so no connection was counted: install strace (`make test-deps`) or allow ptrace"
    );
}

#[test]
fn default_logs_hold_no_document_text() {
    let dir = tempfile::tempdir().unwrap();
    let marker = "zq_private_marker_7731";
    let run = |envs: &[(&str, &str)], name: &str| -> String {
        let log = dir.path().join(name);
        let mut c = ready(json!({"maxTokens": 16}), envs, Some(&log));
        let uri = "file:///tmp/locode-robust/secret.py";
        open(&mut c, uri, "python", &format!("{marker}_a = 1\ndef f():\n    return "));
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
                {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "text": format!("# {marker}_b\n")}]}),
        );
        // A completion, an error (past the end), a change with an old version,
        // a change to a closed document, a malformed message, a refused command.
        let _ = c.request("textDocument/inlineCompletion", inline_params(uri, 3, 11));
        let id = c.send_request("textDocument/inlineCompletion", inline_params(uri, 3, 400));
        assert!(c.response(id, Duration::from_secs(60)).get("error").is_some());
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 1}, "contentChanges": [
                {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "text": format!("{marker}_c")}]}),
        );
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": "file:///tmp/locode-robust/closed.py", "version": 5}, "contentChanges": [{"text": format!("{marker}_d")}]}),
        );
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": "x"}, "contentChanges": [{"text": format!("{marker}_e")}]}),
        );
        let id = c.send_request(
            "workspace/executeCommand",
            json!({"command": "locode.refactorCloud", "arguments": [{"uri": uri, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}, "action": "simplify"}]}),
        );
        let _ = c.response(id, Duration::from_secs(60));
        c.shutdown();
        std::fs::read_to_string(&log).unwrap()
    };
    let default_log = run(&[], "default.txt");
    let debug_log = run(&[("LOCODE_LOG", "debug")], "debug.txt");
    println!(
        "logs: default {} lines, document text {}; LOCODE_LOG=debug {} lines, document text {}",
        default_log.lines().count(),
        if default_log.contains(marker) { "PRESENT" } else { "absent" },
        debug_log.lines().count(),
        if debug_log.contains(marker) { "present" } else { "absent" },
    );
    assert!(!default_log.contains(marker), "document text in the default log:\n{default_log}");
    assert!(debug_log.lines().count() > default_log.lines().count(), "debug logging adds lines");
}

#[test]
fn files_the_server_writes_are_private() {
    // Every place the server may write to, in a fresh tree; the model stays where it is.
    let home = tempfile::tempdir().unwrap();
    let dirs = ["cache", "state", "runtime", "data", "config", "tmp"];
    for d in dirs {
        std::fs::create_dir(home.path().join(d)).unwrap();
    }
    let p = |d: &str| home.path().join(d).to_str().unwrap().to_string();
    let model = model_path().to_str().unwrap().to_string();
    let (cache, state, runtime, data, config, tmp) = (p("cache"), p("state"), p("runtime"), p("data"), p("config"), p("tmp"));
    let envs = [
        ("LOCODE_MODEL", model.as_str()),
        ("XDG_CACHE_HOME", cache.as_str()),
        ("XDG_STATE_HOME", state.as_str()),
        ("XDG_RUNTIME_DIR", runtime.as_str()),
        ("XDG_DATA_HOME", data.as_str()),
        ("XDG_CONFIG_HOME", config.as_str()),
        ("TMPDIR", tmp.as_str()),
    ];
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("util.py"), "def scale(v, k):\n    return v * k\n").unwrap();
    let root = format!("file://{}", ws.path().display());
    let mut c = spawn(&[], &envs, None);
    c.request(
        "initialize",
        json!({"processId": null, "rootUri": root, "capabilities": {"window": {"showDocument": {"support": true}}},
               "workspaceFolders": [{"uri": root, "name": "ws"}],
               "initializationOptions": {"maxTokens": 16, "explainMaxTokens": 24}}),
    );
    c.notify("initialized", json!({}));
    assert_eq!(c.wait_model(Duration::from_secs(300))["state"], "ready");
    let uri = format!("{root}/main.py");
    let text = "def double(x):\n    return x * 2\n";
    open(&mut c, &uri, "python", text);
    let _ = c.request("textDocument/inlineCompletion", inline_params(&uri, 1, 16));
    let id = c.send_request(
        "workspace/executeCommand",
        json!({"command": "locode.explain", "arguments": [{"uri": uri, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}}]}),
    );
    let r = c.response(id, Duration::from_secs(300));
    assert!(r.get("result").is_some(), "{r}");
    // Looked at while the session runs: explanation files go when it ends.
    let mut files = Vec::new();
    let mut stack = vec![home.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            }
            if e.path().parent() != Some(home.path()) {
                files.push((e.path(), meta));
            }
        }
    }
    use std::os::unix::fs::PermissionsExt;
    for (path, meta) in &files {
        let mode = meta.permissions().mode() & 0o777;
        println!("written: {} {:o}", path.strip_prefix(home.path()).unwrap().display(), mode);
        assert_eq!(mode & 0o077, 0, "{} is readable by others ({mode:o})", path.display());
    }
    assert!(!files.is_empty(), "the explanation was written somewhere under the test's directories");
    let explanations: Vec<&PathBuf> =
        files.iter().map(|(p, _)| p).filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("explain-"))).collect();
    assert!(!explanations.is_empty(), "no explanation file among {files:?}");
    c.shutdown();
    for p in explanations {
        assert!(!p.exists() && !p.parent().unwrap().exists(), "{} is left behind after the session", p.display());
    }
}
