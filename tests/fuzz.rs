//! Fuzzing the LSP surface with proptest: random sequences of `didOpen`,
//! `didChange` (valid, reversed and out-of-range ranges, CRLF and lone CR,
//! Unicode line separators, emoji, lone surrogates sent as `\ud800` escapes,
//! empty and huge edits), requests (completions, code actions, unknown
//! methods, bad params), `$/cancelRequest`, malformed messages and closes.
//!
//! Invariants checked on every case:
//! - no panic (a panic hook counts them; the server must stay up);
//! - every request is answered exactly once (a result, an error, or cancelled);
//! - after every change, the server's text (`locode/documentState`) equals a
//!   reference model kept here, which counts positions in UTF-16 units, ends
//!   lines at LF, CRLF and CR only, clamps past-the-end positions, orders
//!   reversed ranges, and reads lone surrogates as U+FFFD.
//!
//! Two servers are fuzzed: `locode::lsp::serve` in-process on memory pipes,
//! completing through a fake llama-server on loopback (fast: thousands of
//! messages), and the real `locode serve` binary with the real model when it
//! is present (fewer cases). Counts: `LOCODE_FUZZ_CASES` (default 1000) and
//! `LOCODE_FUZZ_MODEL_CASES` (default 40). Each run prints its random seed;
//! `LOCODE_FUZZ_SEED` reruns the same cases.

use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            prev(info)
        }));
    });
}

/// A seed from the clock and the process id (no extra dependency).
fn rand_seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (t.as_nanos() as u64) ^ ((std::process::id() as u64) << 32)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

// ---------------------------------------------------------------- transport

/// A connection to a server: raw bytes out, decoded messages in.
struct Conn {
    send: Box<dyn Fn(Vec<u8>) + Send>,
    rx: Receiver<Value>,
    /// Panics seen in the server (in-process hook count, or `panicked at`
    /// lines on the binary's stderr).
    panics: Box<dyn Fn() -> usize + Send>,
    alive: Box<dyn Fn() -> bool + Send>,
    _keep: Box<dyn std::any::Any + Send>,
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    v.extend_from_slice(body);
    v
}

/// Reads framed messages, answers server-to-client requests with `null`
/// through `reply`, and forwards every message.
fn read_frames(mut r: impl BufRead, reply: impl Fn(Vec<u8>), tx: std::sync::mpsc::Sender<Value>) {
    loop {
        let mut len = None;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                len = v.parse::<usize>().ok();
            }
        }
        let mut buf = vec![0; len.expect("Content-Length header from the server")];
        if r.read_exact(&mut buf).is_err() {
            return;
        }
        let msg: Value = serde_json::from_slice(&buf).expect("the server sent JSON");
        if msg.get("method").is_some() && msg.get("id").is_some() {
            let body = json!({"jsonrpc": "2.0", "id": msg["id"], "result": null}).to_string();
            reply(frame(body.as_bytes()));
        }
        if tx.send(msg).is_err() {
            return;
        }
    }
}

/// Completion requests the fake llama-server answered.
static COMPLETIONS: AtomicUsize = AtomicUsize::new(0);

/// A fake llama-server on loopback (`/props`, `/completion`): answers
/// instantly with a plausible completion, streamed or not as asked, so the
/// whole completion path (context, prompt, post-processing, stale-result
/// checks, typed-through) runs.
async fn fake_llama_server() -> u16 {
    use axum::routing::{get, post};
    async fn props() -> axum::Json<Value> {
        axum::Json(json!({"total_slots": 4}))
    }
    async fn completion(axum::Json(body): axum::Json<Value>) -> axum::response::Response {
        COMPLETIONS.fetch_add(1, Ordering::SeqCst);
        let prompt = body["prompt"].as_str().unwrap_or_default();
        assert!(prompt.contains("<|fim_middle|>"), "a raw FIM prompt: {prompt:?}");
        let content = match prompt.len() % 4 {
            0 => "value + 1",
            1 => "(a, b):\n    return a + b\n",
            2 => "",
            _ => "😀 x\r\n    y",
        };
        let content = if body["n_predict"] == 0 { "" } else { content };
        let done = json!({"content": "", "stop": true, "stop_type": "eos", "timings": {"prompt_n": 1, "cache_n": 10}});
        let (kind, text) = if body["stream"] == true {
            let mut events: String =
                content.split_inclusive(' ').map(|c| format!("data: {}\n\n", json!({"content": c, "stop": false}))).collect();
            events.push_str(&format!("data: {done}\n\n"));
            ("text/event-stream", events)
        } else {
            let mut v = done;
            v["content"] = json!(content);
            ("application/json", v.to_string())
        };
        axum::response::Response::builder().header("content-type", kind).body(axum::body::Body::from(text)).unwrap()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route("/props", get(props)).route("/completion", post(completion));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// `locode::lsp::serve` in this process, on memory pipes.
fn in_process() -> (Conn, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let port = rt.block_on(fake_llama_server());
    let (mut client_w, server_r) = tokio::io::duplex(1 << 16);
    let (server_w, client_r) = tokio::io::duplex(1 << 16);
    let server = Arc::new(rt.spawn(locode::lsp::serve(locode::config::Config::default(), server_r, server_w)));
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    rt.spawn(async move {
        while let Some(b) = out_rx.recv().await {
            if client_w.write_all(&b).await.is_err() {
                return;
            }
        }
    });
    let (tx, rx) = channel();
    let reply_tx = out_tx.clone();
    // The server's output, read on a plain thread through a blocking bridge.
    let (bridge_r, mut bridge_w) = os_pipe();
    rt.spawn(async move {
        let mut r = client_r;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if bridge_w.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || read_frames(BufReader::new(bridge_r), move |b| drop(reply_tx.send(b)), tx));
    let options = json!({
        "model": "/nonexistent/locode-fuzz.gguf",
        "completionEngine": {"kind": "llamaServer", "endpoint": format!("http://127.0.0.1:{port}"), "timeoutMs": 5000},
        "maxTokens": 16
    });
    let conn = Conn {
        send: Box::new(move |b| drop(out_tx.send(b))),
        rx,
        panics: Box::new(|| PANICS.load(Ordering::SeqCst)),
        // The serve task ends only when the session does.
        alive: Box::new(move || !server.is_finished()),
        _keep: Box::new(rt),
    };
    (conn, options)
}

/// A byte pipe between a tokio task and a plain thread.
fn os_pipe() -> (impl Read + Send + 'static, impl Write + Send + 'static) {
    struct R(Receiver<Vec<u8>>, Vec<u8>, usize);
    impl Read for R {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.2 >= self.1.len() {
                match self.0.recv() {
                    Ok(v) => {
                        self.1 = v;
                        self.2 = 0;
                    }
                    Err(_) => return Ok(0),
                }
            }
            let n = out.len().min(self.1.len() - self.2);
            out[..n].copy_from_slice(&self.1[self.2..self.2 + n]);
            self.2 += n;
            Ok(n)
        }
    }
    struct W(std::sync::mpsc::Sender<Vec<u8>>);
    impl Write for W {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.send(b.to_vec()).map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (tx, rx) = channel();
    (R(rx, Vec::new(), 0), W(tx))
}

/// The `locode serve` binary over stdio (with the real default model).
fn binary(model: &Path, stderr_log: &Path) -> (Conn, Value) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_locode"))
        .args(["serve", "--model", model.to_str().unwrap(), "--threads", "2"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(stderr_log).unwrap())
        .spawn()
        .unwrap();
    let stdin = Arc::new(Mutex::new(child.stdin.take().unwrap()));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    let w = stdin.clone();
    std::thread::spawn(move || {
        read_frames(BufReader::new(stdout), move |b| drop(w.lock().unwrap().write_all(&b)), tx);
    });
    let child = Arc::new(Mutex::new(child));
    let c2 = child.clone();
    let log = stderr_log.to_path_buf();
    struct Kill(Arc<Mutex<std::process::Child>>);
    impl Drop for Kill {
        fn drop(&mut self) {
            let mut c = self.0.lock().unwrap();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    let conn = Conn {
        send: Box::new(move |b| {
            let mut s = stdin.lock().unwrap();
            let _ = s.write_all(&b);
            let _ = s.flush();
        }),
        rx,
        panics: Box::new(move || std::fs::read_to_string(&log).unwrap_or_default().matches("panicked at").count()),
        alive: Box::new(move || c2.lock().unwrap().try_wait().map(|s| s.is_none()).unwrap_or(false)),
        _keep: Box::new(Kill(child)),
    };
    (conn, json!({"maxTokens": 24}))
}

// ---------------------------------------------------------------- client

#[derive(Default, Debug)]
struct Counts {
    messages: usize,
    changes: usize,
    opens: usize,
    requests: usize,
    cancels: usize,
    malformed: usize,
    text_checks: usize,
    responses: usize,
    cancelled: usize,
    errors: usize,
}

struct Client {
    conn: Conn,
    next_id: i64,
    /// Responses per id (more than one is a bug).
    answers: HashMap<i64, Vec<Value>>,
    /// The method of each request sent, for failure reports.
    methods: HashMap<i64, String>,
    null_id_errors: usize,
    counts: Counts,
}

impl Client {
    fn raw(&mut self, body: &[u8]) {
        (self.conn.send)(frame(body));
        self.counts.messages += 1;
    }

    fn notify(&mut self, method: &str, params: &str) {
        let body = format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params}}}"#);
        self.raw(body.as_bytes());
    }

    fn request(&mut self, method: &str, params: &str) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#);
        self.raw(body.as_bytes());
        self.counts.requests += 1;
        self.methods.insert(id, method.to_string());
        id
    }

    fn take(&mut self, msg: Value) {
        if msg.get("method").is_some() {
            return; // a notification or request from the server
        }
        match msg.get("id").and_then(Value::as_i64) {
            Some(id) => {
                self.counts.responses += 1;
                if msg["error"]["code"] == -32800 {
                    self.counts.cancelled += 1;
                } else if msg.get("error").is_some() {
                    self.counts.errors += 1;
                }
                self.answers.entry(id).or_default().push(msg);
            }
            None => self.null_id_errors += 1,
        }
    }

    /// Waits until every id in `ids` has an answer.
    fn wait_all(&mut self, ids: &[i64], timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Ok(m) = self.conn.rx.try_recv() {
                self.take(m);
            }
            let missing: Vec<i64> = ids.iter().copied().filter(|id| !self.answers.contains_key(id)).collect();
            if missing.is_empty() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let what: Vec<String> =
                    missing.iter().map(|id| format!("{id} {}", self.methods.get(id).map_or("?", |m| m.as_str()))).collect();
                return Err(format!("no answer within {timeout:?} to requests {what:?} (server alive: {})", (self.conn.alive)()));
            }
            if let Ok(m) = self.conn.rx.recv_timeout(left.min(Duration::from_millis(200))) {
                self.take(m)
            }
        }
    }

    fn initialize(&mut self, options: &Value) {
        let id = self.request(
            "initialize",
            &json!({"processId": null, "rootUri": null, "capabilities": {}, "initializationOptions": options}).to_string(),
        );
        self.wait_all(&[id], Duration::from_secs(60)).unwrap();
        self.answers.remove(&id);
        self.notify("initialized", "{}");
    }
}

// ---------------------------------------------------------------- reference model

/// The client's copy of a document.
#[derive(Clone, Debug, Default)]
struct RefDoc {
    text: Vec<char>,
    version: i64,
}

impl RefDoc {
    /// (start, end-without-terminator) char indices of each line; only LF,
    /// CRLF and CR end a line.
    fn lines(&self) -> Vec<(usize, usize)> {
        let t = &self.text;
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < t.len() {
            match t[i] {
                '\n' => {
                    out.push((start, i));
                    start = i + 1;
                }
                '\r' => {
                    out.push((start, i));
                    if t.get(i + 1) == Some(&'\n') {
                        i += 1;
                    }
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        out.push((start, t.len()));
        out
    }

    /// A UTF-16 position to a char index: past the last line is the end,
    /// past a line's end is that end, inside a surrogate pair is its start.
    fn offset(&self, lines: &[(usize, usize)], line: u64, ch: u64) -> usize {
        let Some(&(start, end)) = lines.get(line as usize) else { return self.text.len() };
        let mut units = 0u64;
        for i in start..end {
            let u = self.text[i].len_utf16() as u64;
            if units >= ch || units + u > ch {
                return i;
            }
            units += u;
        }
        end
    }

    fn apply(&mut self, range: Option<(u64, u64, u64, u64)>, ins: &[char]) {
        let (a, b) = match range {
            None => (0, self.text.len()),
            Some((l1, c1, l2, c2)) => {
                let lines = self.lines();
                let s = self.offset(&lines, l1, c1);
                let e = self.offset(&lines, l2, c2);
                (s.min(e), s.max(e))
            }
        };
        self.text.splice(a..b, ins.iter().copied());
    }

    fn string(&self) -> String {
        self.text.iter().collect()
    }
}

// ---------------------------------------------------------------- operations

/// Pieces of inserted text. `None` entries are lone surrogates.
const ATOMS: &[Option<&str>] = &[
    Some("a"),
    Some("b"),
    Some("x"),
    Some("_"),
    Some("("),
    Some(")"),
    Some("{"),
    Some("}"),
    Some(":"),
    Some(" "),
    Some("    "),
    Some("\n"),
    Some("\n"),
    Some("\r"),
    Some("\r\n"),
    Some("\t"),
    Some("\""),
    Some("\\"),
    Some("def f"),
    Some("fn f"),
    Some("return "),
    Some("😀"),
    Some("漢"),
    Some("é"),
    Some("e\u{301}"),
    Some("\u{0}"),
    Some("\u{b}"),
    Some("\u{c}"),
    Some("\u{85}"),
    Some("\u{2028}"),
    Some("\u{2029}"),
    Some("\u{feff}"),
    Some("\\ud800"),
    None,
    None,
];

#[derive(Clone, Debug)]
enum Text {
    /// Atom indices; lone surrogates take their value from the index.
    Atoms(Vec<(u8, u16)>),
    /// A large block of code (`size` in KiB).
    Huge(u16),
}

impl Text {
    /// The UTF-16 units the client sends.
    fn units(&self, huge_limit_kib: u16) -> Vec<u16> {
        match self {
            Text::Atoms(a) => {
                let mut u = Vec::new();
                for &(i, r) in a {
                    match ATOMS[i as usize % ATOMS.len()] {
                        Some(s) => u.extend(s.encode_utf16()),
                        // Half of the lone ones are high, half low surrogates.
                        None if r % 2 == 0 => u.push(0xD800 + r % 0x400),
                        None => u.push(0xDC00 + r % 0x400),
                    }
                }
                u
            }
            Text::Huge(kib) => {
                let kib = (*kib).min(huge_limit_kib) as usize;
                let line = "def function_with_a_long_name(value):  # 漢字 😀\n    return value * 2\n";
                line.repeat(kib * 1024 / line.len() + 1).encode_utf16().collect()
            }
        }
    }
}

/// What the server makes of the units: lone surrogates become U+FFFD.
fn decode(units: &[u16]) -> Vec<char> {
    char::decode_utf16(units.iter().copied()).map(|r| r.unwrap_or('\u{fffd}')).collect()
}

/// A JSON string literal for the units; `raw` sends valid non-ASCII
/// characters as UTF-8, else everything non-ASCII is `\uXXXX`-escaped.
fn json_string(units: &[u16], raw: bool) -> String {
    let mut s = String::from("\"");
    for r in char::decode_utf16(units.iter().copied()) {
        match r {
            Ok(c) if c == '"' || c == '\\' => {
                s.push('\\');
                s.push(c);
            }
            Ok(c) if (c as u32) >= 0x20 && (c.is_ascii() || raw) && c != '\u{7f}' => s.push(c),
            Ok(c) => {
                let mut b = [0u16; 2];
                for u in c.encode_utf16(&mut b) {
                    s.push_str(&format!("\\u{:04x}", u));
                }
            }
            Err(e) => s.push_str(&format!("\\u{:04X}", e.unpaired_surrogate())),
        }
    }
    s.push('"');
    s
}

/// A position chosen relative to the document when the op runs.
#[derive(Clone, Copy, Debug)]
struct PosSel {
    line: u32,
    ch: u32,
    kind: u8,
}

impl PosSel {
    fn resolve(&self, doc: &RefDoc, lines: &[(usize, usize)]) -> (u64, u64) {
        let n = lines.len() as u32;
        match self.kind % 12 {
            0 => (u32::MAX as u64, self.ch as u64),
            1 => ((n + self.line % 4) as u64, self.ch as u64 % 8),
            2 => ((self.line % n) as u64, u32::MAX as u64),
            _ => {
                let l = self.line % n;
                let (s, e) = lines[l as usize];
                let units: u32 = doc.text[s..e].iter().map(|c| c.len_utf16() as u32).sum();
                (l as u64, (self.ch % (units + 3)) as u64)
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// One `didChange` with several changes; `full` replaces the whole text.
    Change { changes: Vec<(Option<(PosSel, PosSel)>, Text)>, version_step: i8, raw: bool },
    /// A request, cancelled right away when `cancel`.
    Request { kind: u8, pos: PosSel, end: PosSel, cancel: bool },
    /// Cancel an earlier request of this case (or an unknown id).
    CancelEarlier(u16),
    /// A message the server must survive and otherwise ignore.
    Malformed(u8, Vec<u8>),
    /// A `didChange` with invalid params: dropped as a whole.
    BadChange(u8),
    /// Close and reopen with new text.
    Reopen(Text),
    /// A `didChange` for a document that is not open.
    ChangeUnopened,
}

fn text_strategy() -> impl Strategy<Value = Text> {
    prop_oneof![
        40 => prop::collection::vec((any::<u8>(), any::<u16>()), 0..12).prop_map(Text::Atoms),
        1 => (1u16..1024).prop_map(Text::Huge),
    ]
}

fn pos_strategy() -> impl Strategy<Value = PosSel> {
    (any::<u32>(), any::<u32>(), any::<u8>()).prop_map(|(line, ch, kind)| PosSel { line, ch, kind })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let change = (
        prop::collection::vec((prop::option::weighted(0.95, (pos_strategy(), pos_strategy())), text_strategy()), 1..4),
        -1i8..4,
        any::<bool>(),
    )
        .prop_map(|(changes, version_step, raw)| Op::Change { changes, version_step, raw });
    prop_oneof![
        50 => change,
        15 => (any::<u8>(), pos_strategy(), pos_strategy(), prop::bool::weighted(0.3))
            .prop_map(|(kind, pos, end, cancel)| Op::Request { kind, pos, end, cancel }),
        4 => any::<u16>().prop_map(Op::CancelEarlier),
        3 => (any::<u8>(), prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(k, b)| Op::Malformed(k, b)),
        3 => any::<u8>().prop_map(Op::BadChange),
        2 => text_strategy().prop_map(Op::Reopen),
        1 => Just(Op::ChangeUnopened),
    ]
}

fn case_strategy(max_ops: usize) -> impl Strategy<Value = (Text, Vec<Op>)> {
    (text_strategy(), prop::collection::vec(op_strategy(), 1..max_ops))
}

// ---------------------------------------------------------------- one case

struct Runner {
    client: Client,
    case_no: usize,
    huge_limit_kib: u16,
    answer_timeout: Duration,
}

fn range_json(a: (u64, u64), b: (u64, u64)) -> String {
    format!(r#"{{"start":{{"line":{},"character":{}}},"end":{{"line":{},"character":{}}}}}"#, a.0, a.1, b.0, b.1)
}

impl Runner {
    fn run_case(&mut self, initial: &Text, ops: &[Op]) -> Result<(), TestCaseError> {
        self.case_no += 1;
        let uri = format!("file:///fuzz/case{}/doc.py", self.case_no);
        let uri_json = json!(uri).to_string();
        let c = &mut self.client;
        let panics_before = (c.conn.panics)();
        let mut doc = RefDoc::default();
        let mut ids: Vec<i64> = Vec::new();
        // documentState ids and the (version, text) the reference expects.
        let mut checks: Vec<(i64, i64, String)> = Vec::new();
        // Requests that must fail with a given code (unless cancelled).
        let mut expect_code: HashMap<i64, i64> = HashMap::new();

        let open = |c: &mut Client, doc: &mut RefDoc, text: &Text, version: i64, huge: u16| {
            let units = text.units(huge);
            *doc = RefDoc { text: decode(&units), version };
            c.notify(
                "textDocument/didOpen",
                &format!(
                    r#"{{"textDocument":{{"uri":{uri_json},"languageId":"python","version":{version},"text":{}}}}}"#,
                    json_string(&units, version % 2 == 0)
                ),
            );
            c.counts.opens += 1;
        };
        let check = |c: &mut Client, doc: &RefDoc, checks: &mut Vec<(i64, i64, String)>, ids: &mut Vec<i64>| {
            let id = c.request("locode/documentState", &format!(r#"{{"uri":{uri_json}}}"#));
            checks.push((id, doc.version, doc.string()));
            ids.push(id);
            c.counts.text_checks += 1;
        };

        open(c, &mut doc, initial, 1, self.huge_limit_kib);
        check(c, &doc, &mut checks, &mut ids);
        for op in ops {
            match op {
                Op::Change { changes, version_step, raw } => {
                    let mut parts = Vec::new();
                    for (range, text) in changes {
                        let units = text.units(self.huge_limit_kib);
                        let r = range.map(|(a, b)| {
                            let lines = doc.lines();
                            (a.resolve(&doc, &lines), b.resolve(&doc, &lines))
                        });
                        doc.apply(r.map(|(a, b)| (a.0, a.1, b.0, b.1)), &decode(&units));
                        let t = json_string(&units, *raw);
                        parts.push(match r {
                            Some((a, b)) => format!(r#"{{"range":{},"text":{t}}}"#, range_json(a, b)),
                            None => format!(r#"{{"text":{t}}}"#),
                        });
                    }
                    doc.version += *version_step as i64;
                    c.notify(
                        "textDocument/didChange",
                        &format!(
                            r#"{{"textDocument":{{"uri":{uri_json},"version":{}}},"contentChanges":[{}]}}"#,
                            doc.version,
                            parts.join(",")
                        ),
                    );
                    c.counts.changes += 1;
                    // Keep documents from growing without bound.
                    if doc.text.len() > 3_000_000 {
                        doc.version += 1;
                        doc.text.clear();
                        c.notify(
                            "textDocument/didChange",
                            &format!(
                                r#"{{"textDocument":{{"uri":{uri_json},"version":{}}},"contentChanges":[{{"text":""}}]}}"#,
                                doc.version
                            ),
                        );
                        c.counts.changes += 1;
                    }
                    check(c, &doc, &mut checks, &mut ids);
                }
                Op::Request { kind, pos, end, cancel } => {
                    let lines = doc.lines();
                    let p = pos.resolve(&doc, &lines);
                    let e = end.resolve(&doc, &lines);
                    let at = format!(r#""position":{{"line":{},"character":{}}}"#, p.0, p.1);
                    let id = match kind % 9 {
                        0 | 1 => c.request(
                            "textDocument/inlineCompletion",
                            &format!(r#"{{"textDocument":{{"uri":{uri_json}}},{at},"context":{{"triggerKind":{}}}}}"#, 1 + kind % 2),
                        ),
                        2 => c.request("textDocument/completion", &format!(r#"{{"textDocument":{{"uri":{uri_json}}},{at}}}"#)),
                        3 => c.request(
                            "textDocument/codeAction",
                            &format!(
                                r#"{{"textDocument":{{"uri":{uri_json}}},"range":{},"context":{{"diagnostics":[]}}}}"#,
                                range_json(p, e)
                            ),
                        ),
                        4 => c.request("locode/lastStats", &format!(r#"{{"uri":{uri_json}}}"#)),
                        5 => c.request("locode/status", "null"),
                        6 => {
                            let id = c.request("locode/noSuchMethod", "{}");
                            expect_code.insert(id, -32601);
                            id
                        }
                        7 => {
                            let id = c.request(
                                "textDocument/inlineCompletion",
                                &format!(r#"{{"textDocument":{{"uri":"file:///fuzz/not-open.py"}},{at},"context":{{"triggerKind":1}}}}"#),
                            );
                            expect_code.insert(id, -32602);
                            id
                        }
                        _ => {
                            // Wrong params shape: an error, not a crash.
                            let id = c.request("textDocument/inlineCompletion", "[1,2,3]");
                            expect_code.insert(id, -32602);
                            id
                        }
                    };
                    ids.push(id);
                    if *cancel {
                        c.notify("$/cancelRequest", &format!(r#"{{"id":{id}}}"#));
                        c.counts.cancels += 1;
                    }
                }
                Op::CancelEarlier(k) => {
                    let id = if ids.is_empty() || k % 5 == 0 { 1_000_000_000 + *k as i64 } else { ids[*k as usize % ids.len()] };
                    c.notify("$/cancelRequest", &format!(r#"{{"id":{id}}}"#));
                    c.counts.cancels += 1;
                }
                Op::Malformed(k, bytes) => {
                    let body: Vec<u8> = match k % 6 {
                        0 => br#"{"jsonrpc":"2.0","method":"textDocument/didChange","params":{"textDocument":"#.to_vec(),
                        1 => bytes.clone(),
                        2 => b"[1,2,3]".to_vec(),
                        3 => br#"{"jsonrpc":"2.0"}"#.to_vec(),
                        4 => {
                            // Invalid UTF-8 inside the text of a change: the
                            // message is rejected as a whole.
                            let mut b = format!(
                                r#"{{"jsonrpc":"2.0","method":"textDocument/didChange","params":{{"textDocument":{{"uri":{uri_json},"version":{}}},"contentChanges":[{{"text":"x"#,
                                doc.version + 1
                            )
                            .into_bytes();
                            b.extend_from_slice(&[0xff, 0xfe, 0xc3]);
                            b.extend_from_slice(br#""}]}}"#);
                            b
                        }
                        _ => format!(
                            r#"{{"jsonrpc":"2.0","method":"textDocument/didChange","params":{}}}"#,
                            json!(String::from_utf8_lossy(bytes))
                        )
                        .into_bytes(),
                    };
                    c.raw(&body);
                    c.counts.malformed += 1;
                    check(c, &doc, &mut checks, &mut ids);
                }
                Op::BadChange(k) => {
                    let v = doc.version + 1;
                    let params = match k % 6 {
                        0 => format!(
                            r#"{{"textDocument":{{"uri":{uri_json},"version":{v}}},"contentChanges":[{{"range":{{"start":{{"line":-1,"character":0}},"end":{{"line":0,"character":0}}}},"text":"x"}}]}}"#
                        ),
                        1 => format!(
                            r#"{{"textDocument":{{"uri":{uri_json},"version":{v}}},"contentChanges":[{{"range":{{"start":{{"line":0,"character":1e12}},"end":{{"line":0,"character":0}}}},"text":"x"}}]}}"#
                        ),
                        2 => format!(r#"{{"textDocument":{{"uri":{uri_json},"version":{v}}},"contentChanges":[{{"text":5}}]}}"#),
                        3 => format!(r#"{{"textDocument":{{"uri":{uri_json},"version":{v}}}}}"#),
                        4 => format!(
                            r#"{{"textDocument":{{"uri":{uri_json},"version":{v}}},"contentChanges":[{{"range":{{"start":{{"line":0,"character":0}}}},"text":"x"}}]}}"#
                        ),
                        _ => format!(r#"{{"textDocument":{{"uri":{uri_json},"version":"{v}"}},"contentChanges":[{{"text":"x"}}]}}"#),
                    };
                    c.notify("textDocument/didChange", &params);
                    c.counts.malformed += 1;
                    check(c, &doc, &mut checks, &mut ids);
                }
                Op::Reopen(text) => {
                    c.notify("textDocument/didClose", &format!(r#"{{"textDocument":{{"uri":{uri_json}}}}}"#));
                    let v = doc.version + 1;
                    open(c, &mut doc, text, v, self.huge_limit_kib);
                    check(c, &doc, &mut checks, &mut ids);
                }
                Op::ChangeUnopened => {
                    c.notify(
                        "textDocument/didChange",
                        r#"{"textDocument":{"uri":"file:///fuzz/not-open.py","version":3},"contentChanges":[{"text":"zzz"}]}"#,
                    );
                    c.counts.changes += 1;
                }
            }
        }
        c.notify("textDocument/didClose", &format!(r#"{{"textDocument":{{"uri":{uri_json}}}}}"#));

        c.wait_all(&ids, self.answer_timeout).map_err(TestCaseError::fail)?;
        // Late duplicates would arrive now.
        std::thread::sleep(Duration::from_millis(5));
        while let Ok(m) = c.conn.rx.try_recv() {
            c.take(m);
        }
        for id in &ids {
            let n = c.answers[id].len();
            prop_assert_eq!(n, 1, "request {} answered {} times: {:?}", id, n, c.answers[id]);
            let a = &c.answers[id][0];
            prop_assert!(a.get("result").is_some() || a.get("error").is_some(), "not an answer: {}", a);
            if let (Some(code), Some(err)) = (expect_code.get(id), a.get("error")) {
                prop_assert!(err["code"] == *code || err["code"] == -32800, "request {}: {} (expected {})", id, a, code);
            } else if let Some(err) = a.get("error") {
                // Completions at past-the-end positions are invalid params.
                let code = err["code"].as_i64().unwrap_or_default();
                prop_assert!(code == -32602 || code == -32800, "unexpected error for request {}: {}", id, a);
            }
        }
        for (id, version, text) in &checks {
            let a = &c.answers[id][0];
            if a["error"]["code"] == -32800 {
                continue;
            }
            let got = a["result"]["text"].as_str().unwrap_or("<no text>");
            if got != text {
                let at = got.chars().zip(text.chars()).take_while(|(a, b)| a == b).count();
                let near = |s: &str| s.chars().skip(at.saturating_sub(10)).take(30).collect::<String>();
                return Err(TestCaseError::fail(format!(
                    "text differs after request {id} at char {at}: server {:?} vs reference {:?} (lengths {} / {})",
                    near(got),
                    near(text),
                    got.chars().count(),
                    text.chars().count()
                )));
            }
            prop_assert_eq!(a["result"]["version"].as_i64(), Some(*version), "version after request {}", id);
        }
        prop_assert!((c.conn.alive)(), "the server exited");
        prop_assert_eq!((c.conn.panics)(), panics_before, "the server panicked");
        for id in &ids {
            c.answers.remove(id);
            c.methods.remove(id);
        }
        Ok(())
    }
}

fn fuzz(conn: Conn, options: Value, cases: usize, max_ops: usize, huge_limit_kib: u16, answer_timeout: Duration, label: &str) {
    count_panics();
    let mut client =
        Client { conn, next_id: 1, answers: HashMap::new(), methods: HashMap::new(), null_id_errors: 0, counts: Counts::default() };
    client.initialize(&options);
    // Wait until the model has loaded (or failed to), so completions run for real.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let id = client.request("locode/status", "null");
        client.wait_all(&[id], Duration::from_secs(60)).unwrap();
        let st = client.answers.remove(&id).unwrap().remove(0);
        if st["result"]["state"] != "loading" || Instant::now() > deadline {
            println!("fuzz[{label}]: model state {}", st["result"]["state"]);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let runner = Mutex::new(Runner { client, case_no: 0, huge_limit_kib, answer_timeout });
    let t0 = Instant::now();
    // A new seed each run finds new cases; printed, so a failure can be rerun.
    let seed = std::env::var("LOCODE_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand_seed);
    println!("fuzz[{label}]: seed {seed} (rerun with LOCODE_FUZZ_SEED={seed})");
    let mut pt = TestRunner::new(PtConfig {
        cases: cases as u32,
        failure_persistence: None,
        max_shrink_iters: 64,
        // Each shrink step may wait out a request timeout: bound the total so a failure stays quick in CI.
        max_shrink_time: 180_000,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..PtConfig::default()
    });
    let result = pt.run(&case_strategy(max_ops), |(initial, ops)| {
        let r = runner.lock().unwrap_or_else(|e| e.into_inner()).run_case(&initial, &ops);
        if let Err(e) = &r {
            eprintln!("fuzz[{label}]: failing case ({} ops): {e}", ops.len());
        }
        r
    });
    let r = runner.into_inner().unwrap_or_else(|e| e.into_inner());
    let k = &r.client.counts;
    println!(
        "fuzz[{label}]: {} cases in {:.1} s: {} messages sent ({} didChange, {} didOpen, {} requests of which {} text checks, {} cancels, {} malformed); {} responses ({} cancelled, {} errors), {} id-less parse errors; panics {}",
        r.case_no,
        t0.elapsed().as_secs_f64(),
        k.messages,
        k.changes,
        k.opens,
        k.requests,
        k.text_checks,
        k.cancels,
        k.malformed,
        k.responses,
        k.cancelled,
        k.errors,
        r.client.null_id_errors,
        (r.client.conn.panics)()
    );
    if let Err(e) = result {
        panic!("fuzz[{label}] found a failure: {e}");
    }
    let stray: HashSet<i64> = r.client.answers.keys().copied().collect();
    assert!(stray.is_empty(), "answers to requests never sent: {stray:?}");
}

#[test]
fn fuzz_lsp_in_process() {
    let (conn, options) = in_process();
    fuzz(conn, options, env_usize("LOCODE_FUZZ_CASES", 1000), 40, 1024, Duration::from_secs(20), "in-process");
    assert!(COMPLETIONS.load(Ordering::SeqCst) > 0, "completions went through the remote engine");
}

#[test]
fn fuzz_lsp_binary_with_model() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_locode")).arg("model-path").output().unwrap();
    let model = std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(model.exists(), "fuzz[binary]: the default model is missing at {}: run `make model` first", model.display());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.txt");
    let (conn, options) = binary(&model, &log);
    // Wait for the model, so completions really run.
    fuzz(conn, options, env_usize("LOCODE_FUZZ_MODEL_CASES", 40), 25, 64, Duration::from_secs(300), "binary+model");
}
