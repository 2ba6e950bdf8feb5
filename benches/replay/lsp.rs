//! A minimal LSP client over a child process's stdio, with timeouts that
//! never panic: the benchmark must end by itself whatever the server does.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Lsp {
    child: Child,
    stdin: Arc<Mutex<ChildStdin>>,
    /// Messages from the server, stamped when they were read.
    rx: Receiver<(Instant, Value)>,
    next_id: i64,
    /// Error or warning messages the server showed or logged.
    pub problems: Vec<String>,
    /// Notification methods kept for `wait_message` while waiting for a
    /// response, instead of dropped (none by default).
    pub keep: Vec<&'static str>,
    /// The notifications kept so far, stamped when they were read.
    pub kept: Vec<(Instant, Value)>,
}

fn write_msg(w: &mut impl Write, v: &Value) -> std::io::Result<()> {
    let body = serde_json::to_string(v).unwrap();
    write!(w, "Content-Length: {}\r\n\r\n{}", body.len(), body)?;
    w.flush()
}

impl Lsp {
    pub fn spawn(bin: &Path, args: &[String], stderr_log: &Path) -> anyhow::Result<Lsp> {
        Lsp::spawn_with_env(bin, args, &[], stderr_log)
    }

    /// `spawn`, with these environment variables set for the server.
    pub fn spawn_with_env(bin: &Path, args: &[String], env: &[(&str, &Path)], stderr_log: &Path) -> anyhow::Result<Lsp> {
        let log = std::fs::File::create(stderr_log)?;
        let mut child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
        crate::CHILDREN.lock().unwrap().push(child.id());
        let stdin = Arc::new(Mutex::new(child.stdin.take().unwrap()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        let reply = stdin.clone();
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
                let Some(len) = len else { return };
                let mut buf = vec![0; len];
                if r.read_exact(&mut buf).is_err() {
                    return;
                }
                let now = Instant::now();
                let Ok(msg) = serde_json::from_slice::<Value>(&buf) else { return };
                if msg.get("method").is_some() && msg.get("id").is_some() {
                    // A request from the server (progress, configuration): answer null.
                    let ans = json!({"jsonrpc": "2.0", "id": msg["id"], "result": null});
                    let _ = write_msg(&mut *reply.lock().unwrap(), &ans);
                }
                if tx.send((now, msg)).is_err() {
                    return;
                }
            }
        });
        Ok(Lsp { child, stdin, rx, next_id: 1, problems: Vec::new(), keep: Vec::new(), kept: Vec::new() })
    }

    fn send(&mut self, v: &Value) -> anyhow::Result<()> {
        write_msg(&mut *self.stdin.lock().unwrap(), v).map_err(|e| anyhow::anyhow!("server stdin closed: {e}"))
    }

    pub fn notify(&mut self, method: &str, params: Value) -> anyhow::Result<()> {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
    }

    /// Sends a request; returns its id and when it was written.
    pub fn send_request(&mut self, method: &str, params: Value) -> anyhow::Result<(i64, Instant)> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        Ok((id, Instant::now()))
    }

    /// Waits for the response to `id`; other messages are dropped (errors and
    /// warnings the server shows are kept in `problems`).
    pub fn wait_response(&mut self, id: i64, timeout: Duration) -> Option<(Instant, Value)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((at, msg)) => {
                    if msg.get("id") == Some(&json!(id)) && msg.get("method").is_none() {
                        return Some((at, msg));
                    }
                    self.set_aside(at, msg);
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// A message not waited for: kept when its method is in `keep`, noted
    /// in `problems` when it shows an error or a warning, else dropped.
    fn set_aside(&mut self, at: Instant, msg: Value) {
        let m = msg["method"].as_str().unwrap_or("");
        if (m == "window/showMessage" || m == "window/logMessage") && msg["params"]["type"].as_i64().unwrap_or(4) <= 2 {
            self.problems.push(msg["params"]["message"].as_str().unwrap_or("").to_string());
        }
        if msg.get("id").is_none() && self.keep.contains(&m) {
            self.kept.push((at, msg));
        }
    }

    /// Waits for a message matching `pred`: first among those kept, then
    /// among those arriving (the others are set aside as `wait_response`
    /// does).
    #[allow(dead_code)]
    pub fn wait_message(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<(Instant, Value)> {
        if let Some(i) = self.kept.iter().position(|(_, m)| pred(m)) {
            return Some(self.kept.remove(i));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((at, msg)) if pred(&msg) => return Some((at, msg)),
                Ok((at, msg)) => self.set_aside(at, msg),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// The server's process id.
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A request with a timeout: the result, or an error message.
    pub fn request(&mut self, method: &str, params: Value, timeout: Duration) -> Result<Value, String> {
        let (id, _) = self.send_request(method, params).map_err(|e| e.to_string())?;
        match self.wait_response(id, timeout) {
            Some((_, resp)) => match resp.get("error") {
                Some(e) => Err(format!("{method} failed: {e}")),
                None => Ok(resp["result"].clone()),
            },
            None => {
                let _ = self.notify("$/cancelRequest", json!({"id": id}));
                Err(format!("no answer to {method} within {timeout:?}"))
            }
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn shutdown(mut self) {
        let _ = self.request("shutdown", json!(null), Duration::from_secs(10));
        let _ = self.notify("exit", json!(null));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lsp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// LSP position (line, UTF-16 column) of byte offset `off` in `text`.
pub fn position(text: &str, off: usize) -> Value {
    let before = &text[..off];
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col: usize = before[line_start..].chars().map(char::len_utf16).sum();
    json!({"line": line, "character": col})
}
