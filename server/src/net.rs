//! HTTP plumbing shared by cloud providers (`commands::cloud`) and remote
//! engines (`engine::remote`): one error type with clear messages, a client
//! built on demand, cancellation, and line-oriented streams (SSE and
//! NDJSON). It imports nothing of ours, so both may use it.

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

/// A client for one request. Proxies from the environment are honoured except
/// for loopback endpoints.
pub fn client(url: &str, timeout_ms: u64) -> Result<reqwest::Client, NetError> {
    reqwest::Url::parse(url).map_err(|e| NetError::Config(format!("invalid endpoint URL {url:?}: {e}")))?;
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_millis(timeout_ms.max(1)))
        .connect_timeout(Duration::from_millis(timeout_ms.clamp(1, 10_000)))
        .user_agent(concat!("locode/", env!("CARGO_PKG_VERSION")));
    if is_loopback(url) {
        b = b.no_proxy();
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

/// Turns a non-success response into an error with the provider's message.
pub async fn check_status(url: &str, timeout_ms: u64, resp: reqwest::Response) -> Result<reqwest::Response, NetError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after =
        resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let body = resp.text().await.map_err(|e| map_reqwest(url, timeout_ms, e))?;
    Err(NetError::Http { url: url.into(), status: status.as_u16(), message: error_message(&body), retry_after })
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
    let bytes = resp.bytes().await.map_err(|e| map_reqwest(url, timeout_ms, e))?;
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
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| map_reqwest(url, timeout_ms, e))?;
        buf.extend_from_slice(&chunk);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line);
            if !on_line(line.trim_end_matches(['\n', '\r']))? {
                return Ok(());
            }
        }
    }
    if !buf.is_empty() {
        let line = String::from_utf8_lossy(&buf).into_owned();
        on_line(line.trim_end_matches(['\n', '\r']))?;
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
}
