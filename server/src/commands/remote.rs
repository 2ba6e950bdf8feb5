//! Remote completion engines: a shared llama-server (`/infill`), Ollama
//! (`/api/generate` with `suffix`) or an OpenAI-compatible server
//! (`/v1/completions` with `suffix`: vLLM, LM Studio...). The answer goes
//! through the same post-processing as the embedded engine's. Errors and
//! timeouts give an empty completion and one message (see [`ErrorLatch`]).

use std::sync::Mutex;
use std::time::Instant;

use serde_json::{json, Value};

use super::net::{self, NetError};
use crate::complete::{Spot, Suggestion};
use crate::config::CompletionConfig;
pub use crate::config::{RemoteEngineConfig, RemoteKind};
use crate::context;
use crate::engine::{CancelToken, Generation};
use crate::postprocess::Trimmer;

pub type RemoteError = NetError;

impl Default for RemoteEngineConfig {
    fn default() -> Self {
        RemoteEngineConfig {
            kind: RemoteKind::Embedded,
            endpoint: String::new(),
            model: String::new(),
            api_key_env: String::new(),
            timeout_ms: 5_000,
            stream: false,
        }
    }
}

impl RemoteEngineConfig {
    pub fn is_remote(&self) -> bool {
        self.kind != RemoteKind::Embedded
    }

    pub fn url(&self) -> String {
        let (default, path) = match self.kind {
            RemoteKind::Embedded | RemoteKind::LlamaServer => ("http://127.0.0.1:8080", "/infill"),
            RemoteKind::Ollama => ("http://127.0.0.1:11434", "/api/generate"),
            RemoteKind::Openai => ("http://127.0.0.1:8000", "/v1/completions"),
        };
        let e = self.endpoint.trim().trim_end_matches('/');
        let base = if e.is_empty() { default } else { e };
        if base.ends_with(path) {
            base.to_string()
        } else if self.kind == RemoteKind::Openai && base.ends_with("/v1") {
            format!("{base}/completions")
        } else {
            format!("{base}{path}")
        }
    }

    /// The request body for a fill-in-the-middle completion.
    pub fn body(&self, prefix: &str, suffix: &str, max_tokens: u32) -> Value {
        match self.kind {
            RemoteKind::Embedded | RemoteKind::LlamaServer => json!({
                "input_prefix": prefix,
                "input_suffix": suffix,
                "n_predict": max_tokens,
                "temperature": 0,
                "cache_prompt": true,
                "stream": self.stream,
            }),
            RemoteKind::Ollama => json!({
                "model": self.model,
                "prompt": prefix,
                "suffix": suffix,
                "stream": self.stream,
                "options": {"num_predict": max_tokens, "temperature": 0},
            }),
            RemoteKind::Openai => json!({
                "model": self.model,
                "prompt": prefix,
                "suffix": suffix,
                "max_tokens": max_tokens,
                "temperature": 0,
                "stream": self.stream,
            }),
        }
    }
}

/// One fill-in-the-middle completion from the configured remote engine: the
/// raw text between `prefix` and `suffix` (post-process it like the embedded
/// engine's output).
pub async fn remote_fim(
    cfg: &RemoteEngineConfig,
    prefix: &str,
    suffix: &str,
    max_tokens: u32,
    cancel: CancelToken,
) -> Result<String, RemoteError> {
    if !cfg.is_remote() {
        return Err(NetError::Config("completionEngine.kind is \"embedded\": no remote engine is configured".into()));
    }
    if matches!(cfg.kind, RemoteKind::Ollama | RemoteKind::Openai) && cfg.model.trim().is_empty() {
        return Err(NetError::Config("set completionEngine.model for an Ollama or OpenAI-compatible engine".into()));
    }
    let url = cfg.url();
    let url = url.as_str();
    let timeout = cfg.timeout_ms;
    let client = net::client(url, timeout)?;
    let mut rb = client.post(url).json(&cfg.body(prefix, suffix, max_tokens));
    if !cfg.api_key_env.trim().is_empty() {
        let var = cfg.api_key_env.trim();
        let key = std::env::var(var)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| NetError::Config(format!("the environment variable {var} (completionEngine.apiKeyEnv) is not set")))?;
        rb = rb.bearer_auth(key.trim());
    }
    let kind = cfg.kind;
    let stream = cfg.stream;
    let work = async move {
        let resp = rb.send().await.map_err(|e| net::map_reqwest(url, timeout, e))?;
        let resp = net::check_status(url, timeout, resp).await?;
        if !stream {
            let v = net::json_body(url, timeout, resp).await?;
            return text_of(kind, url, &v, false).map(|(t, _)| t);
        }
        let mut text = String::new();
        net::for_each_line(url, timeout, resp, |line| {
            let data = match kind {
                RemoteKind::Ollama => line,
                _ => match net::sse_data(line) {
                    Some(d) => d,
                    None => return Ok(true),
                },
            };
            let data = data.trim();
            if data.is_empty() {
                return Ok(true);
            }
            if data == "[DONE]" {
                return Ok(false);
            }
            let v = net::parse_json_line(url, data)?;
            let (t, done) = text_of(kind, url, &v, true)?;
            text.push_str(&t);
            Ok(!done)
        })
        .await?;
        Ok(text)
    };
    net::with_cancel(&cancel, work).await
}

/// The text of one answer (or one stream chunk) and whether it is the last.
fn text_of(kind: RemoteKind, url: &str, v: &Value, chunk: bool) -> Result<(String, bool), NetError> {
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        let message = e["message"].as_str().or(e.as_str()).map(str::to_string).unwrap_or_else(|| e.to_string());
        return Err(NetError::Provider { url: url.into(), message });
    }
    let malformed = |what: &str| NetError::Malformed { url: url.into(), reason: format!("no `{what}` in the answer") };
    match kind {
        RemoteKind::Embedded | RemoteKind::LlamaServer => {
            let t = v["content"].as_str().ok_or_else(|| malformed("content"))?;
            Ok((t.to_string(), v["stop"].as_bool().unwrap_or(!chunk)))
        }
        RemoteKind::Ollama => {
            let t = v["response"].as_str().ok_or_else(|| malformed("response"))?;
            Ok((t.to_string(), v["done"].as_bool().unwrap_or(!chunk)))
        }
        RemoteKind::Openai => {
            let c = &v["choices"][0];
            let t = c["text"].as_str().ok_or_else(|| malformed("choices[0].text"))?;
            Ok((t.to_string(), !chunk || c["finish_reason"].as_str().is_some()))
        }
    }
}

/// The completion pipeline with a remote engine: the same context window and
/// post-processing as `complete::suggest`, the model call over HTTP. A
/// cancelled request gives an empty suggestion marked cancelled.
pub async fn suggest_remote(
    cfg: &RemoteEngineConfig,
    spot: &Spot<'_>,
    ccfg: &CompletionConfig,
    cancel: CancelToken,
) -> Result<Suggestion, RemoteError> {
    let snap = spot.snap;
    let ctx = context::build(snap, spot.cursor, spot.anchor, ccfg);
    let trimmer = Trimmer::new(&ctx, ccfg.max_lines);
    let prefix = format!("{}{}", ctx.prefix, ctx.middle);
    let t0 = Instant::now();
    let result = remote_fim(cfg, &prefix, &ctx.suffix, ccfg.max_tokens, cancel).await;
    let mut stats = Generation { generate_ms: t0.elapsed().as_secs_f64() * 1e3, ..Default::default() };
    match result {
        Ok(raw) => {
            let text = trimmer.finish(&raw);
            stats.text = raw;
            Ok(Suggestion { text, version: snap.version, stats })
        }
        Err(NetError::Cancelled) => {
            stats.cancelled = true;
            Ok(Suggestion { text: String::new(), version: snap.version, stats })
        }
        Err(e) => Err(e),
    }
}

/// Reports a remote engine's failure once: the first error after a success
/// (or a different error) gives a message, repeats give none.
#[derive(Debug, Default)]
pub struct ErrorLatch(Mutex<Option<String>>);

impl ErrorLatch {
    /// The message to show for `err`, if it should be shown.
    pub fn failed(&self, err: &RemoteError) -> Option<String> {
        let key = format!("{:?}", std::mem::discriminant(err));
        let mut last = self.0.lock().unwrap();
        if last.as_deref() == Some(key.as_str()) {
            return None;
        }
        *last = Some(key);
        Some(format!("locode: the remote completion engine failed: {err}. Completions stay empty until it answers."))
    }

    /// A success: the next error is reported again.
    pub fn succeeded(&self) {
        *self.0.lock().unwrap() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_bodies() {
        let mut c = RemoteEngineConfig { kind: RemoteKind::LlamaServer, ..Default::default() };
        assert_eq!(c.url(), "http://127.0.0.1:8080/infill");
        c.endpoint = "http://gpu-box:9000/".into();
        assert_eq!(c.url(), "http://gpu-box:9000/infill");
        assert_eq!(c.body("a", "b", 7)["n_predict"], 7);
        c.kind = RemoteKind::Ollama;
        c.endpoint.clear();
        assert_eq!(c.url(), "http://127.0.0.1:11434/api/generate");
        assert_eq!(c.body("a", "b", 7)["suffix"], "b");
        c.kind = RemoteKind::Openai;
        c.endpoint = "http://h/v1".into();
        assert_eq!(c.url(), "http://h/v1/completions");
        assert_eq!(c.body("a", "b", 7)["max_tokens"], 7);
    }

    #[test]
    fn latch_reports_once_until_success() {
        let l = ErrorLatch::default();
        let e = NetError::Timeout { url: "u".into(), ms: 5 };
        assert!(l.failed(&e).is_some());
        assert!(l.failed(&e).is_none());
        l.succeeded();
        assert!(l.failed(&e).is_some());
        let other = NetError::Connect { url: "u".into(), reason: "refused".into() };
        assert!(l.failed(&other).is_some());
    }
}
