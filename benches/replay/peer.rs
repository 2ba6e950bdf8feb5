//! The peer: llama.cpp's `llama-server`, asked for `/infill` completions the
//! way llama.vim asks, over a plain HTTP/1.1 client on 127.0.0.1 only.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct LlamaServer {
    child: Child,
    pub port: u16,
    pub args: Vec<String>,
}

/// A free port on the loopback interface.
fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

impl LlamaServer {
    /// Starts llama-server on a free loopback port and waits for `/health`.
    pub fn start(bin: &Path, model: &Path, threads: u32, stderr_log: &Path, timeout: Duration) -> anyhow::Result<LlamaServer> {
        let port = free_port()?;
        let log = std::fs::File::create(stderr_log)?;
        let log2 = log.try_clone()?;
        let args: Vec<String> = vec![
            "-m".into(),
            model.display().to_string(),
            "-t".into(),
            threads.to_string(),
            "--cache-reuse".into(),
            "256".into(),
            "-c".into(),
            "8192".into(),
            // One client, one document: one slot, as llama.vim users run it.
            "-np".into(),
            "1".into(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
            "--no-webui".into(),
        ];
        let child = Command::new(bin)
            .args(&args)
            // As its users run it: OpenMP's default wait, not the
            // short spin locode sets for itself (and `make` exports).
            .env_remove("OMP_WAIT_POLICY")
            .env_remove("GOMP_SPINCOUNT")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
        let mut server = LlamaServer { child, port, args };
        crate::CHILDREN.lock().unwrap().push(server.child.id());
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                anyhow::bail!("llama-server exited with {status} (see {})", stderr_log.display());
            }
            if let Ok((200, _)) = http(port, "GET", "/health", None, Duration::from_secs(2)) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                anyhow::bail!("llama-server not healthy after {timeout:?} (see {})", stderr_log.display());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `GET /props`, for the report (build info, slot settings).
    pub fn props(&self) -> Option<Value> {
        let (code, body) = http(self.port, "GET", "/props", None, Duration::from_secs(5)).ok()?;
        (code == 200).then(|| serde_json::from_str(&body).ok()).flatten()
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port` with `Connection: close`:
/// (status, body). Every step is bounded by `timeout`.
pub fn http(port: u16, method: &str, path: &str, body: Option<&str>, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_nodelay(true)?;
    s.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            anyhow::bail!("timed out after {timeout:?}");
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if response_complete(&raw) {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                anyhow::bail!("timed out after {timeout:?}")
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    parse_response(&raw)
}

fn split_head(raw: &[u8]) -> Option<(String, &[u8])> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((String::from_utf8_lossy(&raw[..end]).into_owned(), &raw[end + 4..]))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// True when a Content-Length body has fully arrived (chunked and
/// close-delimited bodies are read to EOF).
fn response_complete(raw: &[u8]) -> bool {
    let Some((head, body)) = split_head(raw) else { return false };
    match header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(n) => body.len() >= n,
        None => false,
    }
}

fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, String)> {
    let (head, body) = split_head(raw).ok_or_else(|| anyhow::anyhow!("incomplete HTTP response"))?;
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("bad status line: {}", head.lines().next().unwrap_or("")))?;
    let body = if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(body)?
    } else if let Some(n) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        body[..n.min(body.len())].to_vec()
    } else {
        body.to_vec()
    };
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut b: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").ok_or_else(|| anyhow::anyhow!("bad chunk"))?;
        let size = std::str::from_utf8(&b[..eol])?.split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(size, 16)?;
        b = &b[eol + 2..];
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&b[..n.min(b.len())]);
        b = &b[(n + 2).min(b.len())..];
    }
}

/// The `/infill` request llama.vim would send at byte offset `cursor`:
/// 256 lines before the cursor line, 64 after, the cursor line's text before
/// the cursor as `prompt`, the rest of the line opening `input_suffix`.
pub fn infill_request(text: &str, cursor: usize, n_predict: u32, single_line: bool) -> Value {
    let line_start = text[..cursor].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text[cursor..].find('\n').map(|i| cursor + i).unwrap_or(text.len());
    let before: Vec<&str> = text[..line_start].split_terminator('\n').collect();
    let after: Vec<&str> = if line_end < text.len() { text[line_end + 1..].split_terminator('\n').collect() } else { Vec::new() };
    let prefix_lines = &before[before.len().saturating_sub(256)..];
    let suffix_lines = &after[..after.len().min(64)];
    let mut prefix = prefix_lines.join("\n");
    prefix.push('\n');
    let mut suffix = text[cursor..line_end].to_string();
    suffix.push('\n');
    suffix.push_str(&suffix_lines.join("\n"));
    suffix.push('\n');
    let mut req = json!({
        "input_prefix": prefix,
        "input_suffix": suffix,
        "prompt": &text[line_start..cursor],
        "input_extra": [],
        "n_predict": n_predict,
        "temperature": 0.0,
        "top_k": 1,
        "samplers": ["top_k"],
        "cache_prompt": true,
        "stream": false,
    });
    if single_line {
        req["stop"] = json!(["\n"]);
    }
    req
}
