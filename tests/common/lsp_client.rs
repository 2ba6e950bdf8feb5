//! A small LSP client over a child process's stdio, for black-box tests and
//! benchmarks. Server-to-client requests are answered with `null`, or by a
//! handler given to [`LspClient::spawn_with`].
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct LspClient {
    child: Child,
    stdin: Arc<Mutex<ChildStdin>>,
    rx: Receiver<Value>,
    next_id: i64,
    /// Notifications and responses read but not yet asked for.
    backlog: Vec<Value>,
}

fn write_msg(w: &mut impl Write, v: &Value) -> std::io::Result<()> {
    let body = serde_json::to_string(v).unwrap();
    write!(w, "Content-Length: {}\r\n\r\n{}", body.len(), body)?;
    w.flush()
}

/// Answers a server-to-client request (the whole message) with a result.
pub type Handler = Arc<dyn Fn(&Value) -> Value + Send + Sync>;

impl LspClient {
    pub fn spawn(bin: &Path, args: &[&str]) -> LspClient {
        Self::spawn_with(bin, args, &[], Arc::new(|_: &Value| Value::Null))
    }

    /// Like `spawn`, with extra environment variables and a handler that
    /// answers the server's requests (`workspace/applyEdit`, ...).
    pub fn spawn_with(bin: &Path, args: &[&str], envs: &[(&str, &str)], handler: Handler) -> LspClient {
        // KV states on disk of this test run only: a state saved by an
        // earlier run must not change what a test's requests evaluate.
        let kv = std::env::temp_dir().join(format!("locode-test-kv-{}", std::process::id()));
        let mut child = Command::new(bin)
            .args(args)
            .env("LOCODE_KV_DIR", kv)
            .envs(envs.iter().map(|(k, v)| (*k, *v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the locode binary");
        let stdin = Arc::new(Mutex::new(child.stdin.take().unwrap()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        let reply_stdin = stdin.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
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
                let mut buf = vec![0; len.expect("Content-Length header")];
                if r.read_exact(&mut buf).is_err() {
                    return;
                }
                let msg: Value = serde_json::from_slice(&buf).expect("server sent JSON");
                if msg.get("method").is_some() && msg.get("id").is_some() {
                    // A request from the server: answer it.
                    let reply = json!({"jsonrpc": "2.0", "id": msg["id"], "result": handler(&msg)});
                    let _ = write_msg(&mut *reply_stdin.lock().unwrap(), &reply);
                }
                if tx.send(msg).is_err() {
                    return;
                }
            }
        });
        LspClient { child, stdin, rx, next_id: 1, backlog: Vec::new() }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        let msg = json!({"jsonrpc": "2.0", "method": method, "params": params});
        write_msg(&mut *self.stdin.lock().unwrap(), &msg).expect("write to server");
    }

    /// Writes bytes as they are (framing of the test's own making).
    pub fn write_raw(&mut self, bytes: &[u8]) {
        let mut w = self.stdin.lock().unwrap();
        w.write_all(bytes).and_then(|_| w.flush()).expect("write to server");
    }

    /// Sends a request and returns its id.
    pub fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        write_msg(&mut *self.stdin.lock().unwrap(), &msg).expect("write to server");
        id
    }

    /// Waits for a message matching `pred`, keeping the others.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return Some(self.backlog.remove(i));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(msg) if pred(&msg) => return Some(msg),
                Ok(msg) => self.backlog.push(msg),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// The whole response message (with `result` or `error`) for request `id`.
    pub fn response(&mut self, id: i64, timeout: Duration) -> Value {
        self.wait_for(timeout, |m| m.get("id") == Some(&json!(id)) && m.get("method").is_none())
            .unwrap_or_else(|| panic!("no response to request {id} within {timeout:?}"))
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        let resp = self.response(id, Duration::from_secs(600));
        if let Some(err) = resp.get("error") {
            panic!("{method} failed: {err}");
        }
        resp["result"].clone()
    }

    pub fn initialize(&mut self, capabilities: Value, options: Value) -> Value {
        let result = self.request(
            "initialize",
            json!({"processId": null, "rootUri": null, "capabilities": capabilities, "initializationOptions": options}),
        );
        self.notify("initialized", json!({}));
        result
    }

    /// Waits until `locode/status` says the model is ready (or failed).
    pub fn wait_model(&mut self, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.request("locode/status", json!(null));
            if st["state"] != "loading" || Instant::now() > deadline {
                return st;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until a notification matching `pred` has arrived, leaving it in
    /// the backlog. A server may write a request's response before the
    /// notifications it sent while answering it (they travel on separate
    /// queues), so tests wait for them rather than assume an order.
    pub fn await_notification(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> bool {
        match self.wait_for(timeout, |m| m.get("id").is_none() && pred(m)) {
            Some(m) => {
                self.backlog.push(m);
                true
            }
            None => false,
        }
    }

    /// All notifications with this method read so far.
    pub fn notifications(&mut self, method: &str) -> Vec<Value> {
        while let Ok(m) = self.rx.try_recv() {
            self.backlog.push(m);
        }
        self.backlog.iter().filter(|m| m["method"] == method).cloned().collect()
    }

    pub fn shutdown(mut self) {
        let _ = self.request("shutdown", json!(null));
        self.notify("exit", json!(null));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
    }
}

impl Drop for LspClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Splits a fixture at its `$0` cursor: (text, line, utf-16 column).
pub fn cursor(fixture: &str) -> (String, u32, u32) {
    let at = fixture.find("$0").expect("fixture has $0");
    let before = &fixture[..at];
    let line = before.matches('\n').count() as u32;
    let col = before.rsplit('\n').next().unwrap().encode_utf16().count() as u32;
    (fixture.replace("$0", ""), line, col)
}

/// The `locode` binary cargo built for this test.
#[allow(dead_code)]
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_locode"))
}

/// The cached default model; fails with how to get it when it is missing.
#[allow(dead_code)]
pub fn model_path() -> PathBuf {
    let out = Command::new(bin()).arg("model-path").output().unwrap();
    let p = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(p.exists(), "the default model is missing at {}: run `make model` first", p.display());
    p
}
