//! HTTP plumbing shared by cloud providers (`commands::cloud`) and remote
//! engines (`engine::remote`): one error type with clear messages, a client
//! built on demand, cancellation, and line-oriented streams (SSE and
//! NDJSON). It imports nothing of ours, so both may use it.
//!
//! Redirects are never followed: a 3xx is an error naming its target, so a
//! key or a body never reaches a host other than the one configured (and
//! checked by `outbound`). Every body read is bounded.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NetError {
    #[error("{0}")]
    Config(String),
    #[error("no answer from {url} within {ms} ms (timeout)")]
    Timeout { url: String, ms: u64 },
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url} answered HTTP {status}{}: {message}", retry_hint(.status, .retry_after))]
    Http { url: String, status: u16, message: String, retry_after: Option<u64> },
    #[error("{url} sent an answer that is not the expected JSON: {reason}")]
    Malformed { url: String, reason: String },
    #[error("{url}: the provider reported an error: {message}")]
    Provider { url: String, message: String },
    #[error("{url} answered HTTP {status}, a redirect to {location}: redirects are not followed (nothing was sent there); set the endpoint to the final address if you trust it")]
    Redirect { url: String, status: u16, location: String },
    #[error("{url} sent more than {limit} bytes{what}: the answer was dropped", what = if *.line { " in one line" } else { "" })]
    TooLarge { url: String, limit: usize, line: bool },
    /// The outbound policy refused to send (see `outbound`): no connection was made.
    #[error("{0}")]
    Refused(String),
    #[error("cancelled")]
    Cancelled,
}

fn retry_hint(status: &u16, retry_after: &Option<u64>) -> String {
    match (status, retry_after) {
        (429, Some(s)) => format!(" (rate limited; retry after {s} s)"),
        (429, None) => " (rate limited)".into(),
        (401 | 403, _) => " (the API key was refused)".into(),
        (s, _) if *s >= 500 => " (server error)".into(),
        _ => String::new(),
    }
}

impl NetError {
    pub fn is_cancelled(&self) -> bool {
        matches!(self, NetError::Cancelled)
    }
}

/// True when `url`'s host is a loopback address or `localhost`.
pub fn is_loopback(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string()))
        .is_some_and(|h| h == "localhost" || h.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false))
}

/// Most bytes of a whole (non-streamed) answer.
pub const MAX_BODY: usize = 8 << 20;
/// Most bytes of a streamed answer, all lines together.
pub const MAX_STREAM: usize = 32 << 20;
/// Most bytes of one line of a streamed answer.
pub const MAX_LINE: usize = 1 << 20;
/// Most bytes of an error answer that are read (for its message).
const MAX_ERROR_BODY: usize = 64 << 10;

/// The CA certificates of the PEM file that `setting` (`cloud.caFile`,
/// `completionEngine.caFile`) names, checked as the client will use them.
/// The error says what is wrong with the file; a caller sends nothing then.
pub fn load_ca_file(setting: &str, path: &Path) -> Result<Vec<reqwest::Certificate>, NetError> {
    let shown = path.display();
    let path = match path.strip_prefix("~") {
        Ok(rest) if path.starts_with("~/") => match dirs::home_dir() {
            Some(home) => home.join(rest),
            None => return Err(NetError::Config(format!("{setting} {shown}: there is no home directory for ~"))),
        },
        _ => path.to_path_buf(),
    };
    // Relative to what? The server's working folder is the editor's choice.
    if !path.is_absolute() {
        return Err(NetError::Config(format!("{setting} {shown}: give an absolute path (or one starting with ~/)")));
    }
    let bytes = std::fs::read(&path).map_err(|e| NetError::Config(format!("{setting} {shown}: cannot read it: {e}")))?;
    let certs = reqwest::Certificate::from_pem_bundle(&bytes)
        .map_err(|e| NetError::Config(format!("{setting} {shown}: not a PEM certificate file: {}", root_cause(&e))))?;
    if certs.is_empty() {
        return Err(NetError::Config(format!("{setting} {shown}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)")));
    }
    // The certificates are parsed when a client takes them.
    let mut b = reqwest::Client::builder();
    for c in &certs {
        b = b.add_root_certificate(c.clone());
    }
    b.build().map_err(|e| NetError::Config(format!("{setting} {shown}: not a valid CA certificate: {}", root_cause(&e))))?;
    Ok(certs)
}

/// A client for one request. Proxies from the environment are honoured except
/// for loopback endpoints; redirects are not followed ([`check_status`]).
/// `roots` are trusted besides the built-in ones ([`load_ca_file`]).
pub fn client(url: &str, timeout_ms: u64, roots: &[reqwest::Certificate]) -> Result<reqwest::Client, NetError> {
    reqwest::Url::parse(url).map_err(|e| NetError::Config(format!("invalid endpoint URL {url:?}: {e}")))?;
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(timeout_ms.max(1)))
        .connect_timeout(Duration::from_millis(timeout_ms.clamp(1, 10_000)))
        .user_agent(concat!("locode/", env!("CARGO_PKG_VERSION")));
    if is_loopback(url) {
        b = b.no_proxy();
    }
    for c in roots {
        b = b.add_root_certificate(c.clone());
    }
    b.build().map_err(|e| NetError::Config(format!("cannot build an HTTP client: {e}")))
}

pub fn map_reqwest(url: &str, timeout_ms: u64, e: reqwest::Error) -> NetError {
    if e.is_timeout() {
        NetError::Timeout { url: url.into(), ms: timeout_ms }
    } else if e.is_connect() {
        NetError::Connect { url: url.into(), reason: root_cause(&e) }
    } else if e.is_decode() {
        NetError::Malformed { url: url.into(), reason: root_cause(&e) }
    } else {
        NetError::Connect { url: url.into(), reason: root_cause(&e) }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// Resolves once `is_cancelled` says so (polled: a cancel token has no waker).
pub async fn cancelled(is_cancelled: impl Fn() -> bool) {
    while !is_cancelled() {
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// Runs `fut` unless cancelled first.
pub async fn with_cancel<T>(
    is_cancelled: impl Fn() -> bool,
    fut: impl std::future::Future<Output = Result<T, NetError>>,
) -> Result<T, NetError> {
    tokio::select! {
        r = fut => r,
        _ = cancelled(is_cancelled) => Err(NetError::Cancelled),
    }
}

/// Turns a non-success response into an error with the provider's message;
/// a redirect into one that names where it pointed.
pub async fn check_status(url: &str, timeout_ms: u64, resp: reqwest::Response) -> Result<reqwest::Response, NetError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    if status.is_redirection() {
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).chars().take(300).collect::<String>())
            .unwrap_or_else(|| "(no Location header)".into());
        return Err(NetError::Redirect { url: url.into(), status: status.as_u16(), location });
    }
    let retry_after =
        resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    // The message only: a huge error page is cut, not an error of its own.
    let body = match read_limited(url, timeout_ms, resp, MAX_ERROR_BODY).await {
        Ok(b) => b,
        Err(NetError::TooLarge { .. }) => b"(an error page too large to show)".to_vec(),
        Err(e) => return Err(e),
    };
    let body = String::from_utf8_lossy(&body);
    Err(NetError::Http { url: url.into(), status: status.as_u16(), message: error_message(&body), retry_after })
}

/// The whole body, or `TooLarge` once it passes `limit` bytes (read no further).
pub async fn read_limited(url: &str, timeout_ms: u64, resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, NetError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(NetError::TooLarge { url: url.into(), limit, line: false });
    }
    let mut stream = resp.bytes_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| map_reqwest(url, timeout_ms, e))?;
        if out.len() + chunk.len() > limit {
            return Err(NetError::TooLarge { url: url.into(), limit, line: false });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Splits a streamed body into lines within [`MAX_STREAM`] and [`MAX_LINE`].
#[derive(Debug, Default)]
pub struct Lines {
    buf: Vec<u8>,
    total: usize,
}

impl Lines {
    /// Takes a chunk; the complete lines it ends are then in [`Lines::next_line`].
    pub fn push(&mut self, url: &str, chunk: &[u8]) -> Result<(), NetError> {
        self.total += chunk.len();
        if self.total > MAX_STREAM {
            return Err(NetError::TooLarge { url: url.into(), limit: MAX_STREAM, line: false });
        }
        self.buf.extend_from_slice(chunk);
        let pending = self.buf.iter().rposition(|&b| b == b'\n').map_or(self.buf.len(), |i| self.buf.len() - i - 1);
        if pending > MAX_LINE {
            return Err(NetError::TooLarge { url: url.into(), limit: MAX_LINE, line: true });
        }
        Ok(())
    }

    /// The next complete line, without its line end.
    pub fn next_line(&mut self) -> Option<String> {
        let i = self.buf.iter().position(|&b| b == b'\n')?;
        let line: Vec<u8> = self.buf.drain(..=i).collect();
        Some(String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']).to_string())
    }

    /// What is left after the body ended (a last line without a line end).
    pub fn rest(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        (!rest.is_empty()).then(|| String::from_utf8_lossy(&rest).trim_end_matches(['\n', '\r']).to_string())
    }
}

/// The human message inside an error body (`{"error": {"message"}}`,
/// `{"error": "..."}`, `{"message": "..."}`), else the body itself, shortened.
pub fn error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        let m = v["error"]["message"].as_str().or(v["error"].as_str()).or(v["message"].as_str()).or(v["detail"].as_str());
        if let Some(m) = m {
            return m.to_string();
        }
    }
    let t = body.trim();
    if t.is_empty() {
        "(empty body)".into()
    } else {
        t.chars().take(300).collect()
    }
}

/// Parses a complete JSON body.
pub async fn json_body(url: &str, timeout_ms: u64, resp: reqwest::Response) -> Result<serde_json::Value, NetError> {
    let bytes = read_limited(url, timeout_ms, resp, MAX_BODY).await?;
    serde_json::from_slice(&bytes).map_err(|e| NetError::Malformed { url: url.into(), reason: e.to_string() })
}

/// Feeds each complete line of a streamed body to `on_line` (without the
/// line end) until it returns `false` or the body ends.
pub async fn for_each_line(
    url: &str,
    timeout_ms: u64,
    resp: reqwest::Response,
    mut on_line: impl FnMut(&str) -> Result<bool, NetError>,
) -> Result<(), NetError> {
    let mut stream = resp.bytes_stream();
    let mut lines = Lines::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| map_reqwest(url, timeout_ms, e))?;
        lines.push(url, &chunk)?;
        while let Some(line) = lines.next_line() {
            if !on_line(&line)? {
                return Ok(());
            }
        }
    }
    if let Some(line) = lines.rest() {
        on_line(&line)?;
    }
    Ok(())
}

/// The data of an SSE `data:` line, if it is one.
pub fn sse_data(line: &str) -> Option<&str> {
    line.strip_prefix("data:").map(|d| d.strip_prefix(' ').unwrap_or(d))
}

pub fn parse_json_line(url: &str, data: &str) -> Result<serde_json::Value, NetError> {
    serde_json::from_str(data).map_err(|e| NetError::Malformed { url: url.into(), reason: format!("{e} in {:?}", short(data)) })
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("http://127.0.0.1:8080/infill"));
        assert!(is_loopback("http://localhost:11434"));
        assert!(is_loopback("http://[::1]:9/x"));
        assert!(!is_loopback("https://api.anthropic.com/v1/messages"));
        assert!(!is_loopback("not a url"));
    }

    #[test]
    fn error_messages() {
        assert_eq!(error_message(r#"{"error":{"message":"slow down","type":"rate_limit"}}"#), "slow down");
        assert_eq!(error_message(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#), "Overloaded");
        assert_eq!(error_message(r#"{"error":"model not found"}"#), "model not found");
        assert_eq!(error_message("  "), "(empty body)");
        let e = NetError::Http { url: "u".into(), status: 429, message: "m".into(), retry_after: Some(3) };
        assert_eq!(e.to_string(), "u answered HTTP 429 (rate limited; retry after 3 s): m");
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> reqwest::Response {
        let mut b = axum::http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        reqwest::Response::from(b.body(body.to_string()).unwrap())
    }

    #[tokio::test]
    async fn a_redirect_is_an_error_that_names_its_target() {
        for status in [301, 302, 303, 307, 308] {
            let r = answer(status, &[("location", "http://elsewhere.example/v1/messages")], "");
            let e = check_status("https://api.example/v1/messages", 1000, r).await.unwrap_err();
            assert_eq!(
                e,
                NetError::Redirect {
                    url: "https://api.example/v1/messages".into(),
                    status,
                    location: "http://elsewhere.example/v1/messages".into()
                }
            );
            let m = e.to_string();
            assert!(m.contains("http://elsewhere.example/v1/messages") && m.contains("not followed"), "{m}");
        }
        let e = check_status("u", 1000, answer(302, &[], "")).await.unwrap_err();
        assert!(e.to_string().contains("no Location"), "{e}");
    }

    #[tokio::test]
    async fn bodies_are_bounded() {
        let big = "x".repeat(MAX_BODY + 1);
        let e = json_body("u", 1000, answer(200, &[], &big)).await.unwrap_err();
        assert_eq!(e, NetError::TooLarge { url: "u".into(), limit: MAX_BODY, line: false });
        assert_eq!(json_body("u", 1000, answer(200, &[], "{\"a\": 1}")).await.unwrap()["a"], 1);
        // A huge error page still gives an HTTP error, not a read of all of it.
        let e = check_status("u", 1000, answer(500, &[], &big)).await.unwrap_err();
        assert!(matches!(e, NetError::Http { status: 500, .. }), "{e}");

        let mut lines = Lines::default();
        lines.push("u", b"data: 1\ndata: 2\r\npart").unwrap();
        assert_eq!(lines.next_line().as_deref(), Some("data: 1"));
        assert_eq!(lines.next_line().as_deref(), Some("data: 2"));
        assert_eq!(lines.next_line(), None);
        assert_eq!(lines.rest().as_deref(), Some("part"));
        let mut lines = Lines::default();
        let e = lines.push("u", &vec![b'a'; MAX_LINE + 1]).unwrap_err();
        assert_eq!(e, NetError::TooLarge { url: "u".into(), limit: MAX_LINE, line: true });
        let mut lines = Lines::default();
        let chunk = [b"y".repeat(1000), b"\n".to_vec()].concat();
        let mut r = Ok(());
        for _ in 0..(MAX_STREAM / chunk.len() + 1) {
            r = lines.push("u", &chunk);
            while lines.next_line().is_some() {}
            if r.is_err() {
                break;
            }
        }
        assert_eq!(r.unwrap_err(), NetError::TooLarge { url: "u".into(), limit: MAX_STREAM, line: false });
    }
}
