//! Cloud chat providers: OpenAI-compatible chat completions and Anthropic
//! messages, streaming (SSE) or not. The request body is built once
//! ([`build_request`]) so the preview, the audit hash and the bytes sent are
//! the same bytes. The API key comes only from the environment variable named
//! in config, and appears only in a request header.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::config::Route;
pub use crate::config::{CloudConfig, Provider};
use crate::engine::CancelToken;
use crate::net::{self, NetError};
use crate::outbound::{self, Consent};
use crate::prompt::ChatMessage;

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
        }
    }
}

pub const ANTHROPIC_VERSION: &str = "2023-06-01";

impl Default for CloudConfig {
    fn default() -> Self {
        CloudConfig {
            route: Route::Never,
            max_local_lines: 60,
            provider: Provider::Openai,
            endpoint: String::new(),
            model: String::new(),
            api_key_env: String::new(),
            stream: true,
            timeout_ms: 120_000,
            max_tokens: 4096,
            audit_log: None,
            refuse_files: Vec::new(),
            allow_insecure: false,
            ca_file: None,
        }
    }
}

impl CloudConfig {
    pub fn enabled(&self) -> bool {
        self.route != Route::Never
    }

    pub fn url(&self) -> String {
        let (default, suffix, base_suffix) = match self.provider {
            Provider::Openai => ("https://api.openai.com/v1/chat/completions", "/chat/completions", "/chat/completions"),
            Provider::Anthropic => ("https://api.anthropic.com/v1/messages", "/messages", "/v1/messages"),
        };
        let e = self.endpoint.trim().trim_end_matches('/');
        if e.is_empty() {
            default.to_string()
        } else if e.ends_with(suffix) {
            e.to_string()
        } else if self.provider == Provider::Anthropic && e.ends_with("/v1") {
            format!("{e}/messages")
        } else {
            format!("{e}{base_suffix}")
        }
    }

    pub fn key_env(&self) -> String {
        if !self.api_key_env.trim().is_empty() {
            return self.api_key_env.trim().to_string();
        }
        match self.provider {
            Provider::Openai => "OPENAI_API_KEY".into(),
            Provider::Anthropic => "ANTHROPIC_API_KEY".into(),
        }
    }

    pub fn audit_path(&self) -> PathBuf {
        self.audit_log.clone().unwrap_or_else(super::audit::default_path)
    }

    /// The API key from the environment.
    pub fn api_key(&self) -> Result<String, NetError> {
        let var = self.key_env();
        match std::env::var(&var) {
            Ok(k) if !k.trim().is_empty() => Ok(k.trim().to_string()),
            _ => Err(NetError::Config(format!(
                "the environment variable {var} (cloud.apiKeyEnv) is not set: locode reads the API key only from there"
            ))),
        }
    }
}

/// Whether the outbound policy lets `cfg`'s endpoint be sent to (for
/// `locode doctor`; [`build_request`] checks the same).
pub fn check_endpoint(cfg: &CloudConfig) -> Result<(), NetError> {
    let consent = Consent { section: "cloud", remote: true, remote_setting: "cloud.route", insecure: cfg.allow_insecure };
    outbound::check_endpoint(&cfg.url(), consent).map(|_| ())
}

/// A request ready to send: exactly these body bytes go out.
#[derive(Debug, Clone)]
pub struct CloudRequest {
    pub provider: Provider,
    pub url: String,
    pub model: String,
    pub stream: bool,
    pub body: Vec<u8>,
    /// `cloud.caFile`: CA certificates trusted besides the built-in roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl CloudRequest {
    /// The headers sent, the key masked (for the preview).
    pub fn headers_preview(&self, key_env: &str) -> Value {
        match self.provider {
            Provider::Openai => {
                json!({"content-type": "application/json", "authorization": format!("Bearer <${key_env}>")})
            }
            Provider::Anthropic => {
                json!({"content-type": "application/json", "x-api-key": format!("<${key_env}>"), "anthropic-version": ANTHROPIC_VERSION})
            }
        }
    }
}

/// Builds the request body for `messages` (already redacted).
pub fn build_request(cfg: &CloudConfig, messages: &[ChatMessage], max_tokens: u32) -> Result<CloudRequest, NetError> {
    if cfg.model.trim().is_empty() {
        return Err(NetError::Config("set `cloud.model` to the provider's model name".into()));
    }
    let max_tokens = max_tokens.clamp(1, cfg.max_tokens.max(1));
    let body = match cfg.provider {
        Provider::Openai => json!({
            "model": cfg.model,
            "messages": messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect::<Vec<_>>(),
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": cfg.stream,
        }),
        Provider::Anthropic => {
            let system: Vec<&str> = messages.iter().filter(|m| m.role == "system").map(|m| m.content.as_str()).collect();
            let rest: Vec<Value> = messages
                .iter()
                .filter(|m| m.role != "system")
                .map(|m| json!({"role": if m.role == "assistant" { "assistant" } else { "user" }, "content": m.content}))
                .collect();
            let mut b = json!({
                "model": cfg.model,
                "max_tokens": max_tokens,
                "messages": rest,
                "temperature": 0,
                "stream": cfg.stream,
            });
            if !system.is_empty() {
                b["system"] = json!(system.join("\n\n"));
            }
            b
        }
    };
    let url = cfg.url();
    reqwest::Url::parse(&url).map_err(|e| NetError::Config(format!("invalid cloud.endpoint {url:?}: {e}")))?;
    // `cloud.route` (and, with `ask`, the user's yes) is the consent to send
    // off this machine; plain http there needs its own setting.
    check_endpoint(cfg)?;
    Ok(CloudRequest {
        provider: cfg.provider,
        url,
        model: cfg.model.clone(),
        stream: cfg.stream,
        body: serde_json::to_vec(&body).expect("JSON body"),
        ca_file: cfg.ca_file.clone(),
    })
}

/// Sends `req` and returns the reply text. `on_text` gets the text so far as
/// it streams.
pub async fn send(
    req: &CloudRequest,
    api_key: &str,
    timeout_ms: u64,
    cancel: &CancelToken,
    mut on_text: impl FnMut(&str) + Send,
) -> Result<String, NetError> {
    let url = req.url.as_str();
    let roots = match &req.ca_file {
        Some(path) => net::load_ca_file("cloud.caFile", path)?,
        None => Vec::new(),
    };
    let client = net::client(url, timeout_ms, &roots)?;
    let mut rb = client.post(url).header("content-type", "application/json").body(req.body.clone());
    rb = match req.provider {
        Provider::Openai => rb.bearer_auth(api_key),
        Provider::Anthropic => rb.header("x-api-key", api_key).header("anthropic-version", ANTHROPIC_VERSION),
    };
    if req.stream {
        rb = rb.header("accept", "text/event-stream");
    }
    let work = async {
        let resp = rb.send().await.map_err(|e| net::map_reqwest(url, timeout_ms, e))?;
        let resp = net::check_status(url, timeout_ms, resp).await?;
        if !req.stream {
            let v = net::json_body(url, timeout_ms, resp).await?;
            let text = reply_text(req.provider, url, &v)?;
            on_text(&text);
            return Ok(text);
        }
        let mut text = String::new();
        let mut done = false;
        net::for_each_line(url, timeout_ms, resp, |line| {
            let Some(data) = net::sse_data(line) else { return Ok(true) };
            if data.trim() == "[DONE]" {
                done = true;
                return Ok(false);
            }
            if data.trim().is_empty() {
                return Ok(true);
            }
            let v = net::parse_json_line(url, data)?;
            match stream_event(req.provider, url, &v)? {
                Event::Text(t) => {
                    text.push_str(&t);
                    on_text(&text);
                }
                Event::Done => {
                    done = true;
                    return Ok(false);
                }
                Event::Other => {}
            }
            Ok(true)
        })
        .await?;
        if !done && text.is_empty() {
            return Err(NetError::Malformed { url: url.into(), reason: "the event stream ended without any text".into() });
        }
        Ok(text)
    };
    net::with_cancel(|| cancel.is_cancelled(), work).await
}

enum Event {
    Text(String),
    Done,
    Other,
}

fn stream_event(provider: Provider, url: &str, v: &Value) -> Result<Event, NetError> {
    if v.get("error").is_some_and(|e| !e.is_null()) {
        return Err(NetError::Provider { url: url.into(), message: net::error_message(&v.to_string()) });
    }
    match provider {
        Provider::Openai => {
            let choice = &v["choices"][0];
            if let Some(t) = choice["delta"]["content"].as_str() {
                return Ok(Event::Text(t.to_string()));
            }
            if v.get("choices").is_none() {
                return Err(NetError::Malformed { url: url.into(), reason: "a stream chunk without `choices`".into() });
            }
            Ok(Event::Other)
        }
        Provider::Anthropic => match v["type"].as_str() {
            Some("content_block_delta") => Ok(v["delta"]["text"].as_str().map(|t| Event::Text(t.to_string())).unwrap_or(Event::Other)),
            Some("message_stop") => Ok(Event::Done),
            Some(_) => Ok(Event::Other),
            None => Err(NetError::Malformed { url: url.into(), reason: "a stream event without `type`".into() }),
        },
    }
}

/// The text of a non-streamed reply.
pub fn reply_text(provider: Provider, url: &str, v: &Value) -> Result<String, NetError> {
    if v.get("error").is_some_and(|e| !e.is_null()) {
        return Err(NetError::Provider { url: url.into(), message: net::error_message(&v.to_string()) });
    }
    let text = match provider {
        Provider::Openai => v["choices"][0]["message"]["content"].as_str().map(str::to_string),
        Provider::Anthropic => v["content"]
            .as_array()
            .map(|blocks| blocks.iter().filter(|b| b["type"] == "text").filter_map(|b| b["text"].as_str()).collect::<String>()),
    };
    text.ok_or_else(|| NetError::Malformed {
        url: url.into(),
        reason: match provider {
            Provider::Openai => "no `choices[0].message.content`".into(),
            Provider::Anthropic => "no `content` blocks".into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(provider: Provider, endpoint: &str) -> CloudConfig {
        CloudConfig { provider, endpoint: endpoint.into(), model: "m".into(), ..Default::default() }
    }

    #[test]
    fn urls() {
        assert_eq!(cfg(Provider::Openai, "").url(), "https://api.openai.com/v1/chat/completions");
        assert_eq!(cfg(Provider::Openai, "http://h:1/v1").url(), "http://h:1/v1/chat/completions");
        assert_eq!(cfg(Provider::Openai, "http://h:1/v1/chat/completions").url(), "http://h:1/v1/chat/completions");
        assert_eq!(cfg(Provider::Anthropic, "").url(), "https://api.anthropic.com/v1/messages");
        assert_eq!(cfg(Provider::Anthropic, "http://h:1").url(), "http://h:1/v1/messages");
        assert_eq!(cfg(Provider::Anthropic, "http://h:1/v1/").url(), "http://h:1/v1/messages");
    }

    #[test]
    fn bodies() {
        let msgs =
            vec![ChatMessage { role: "system".into(), content: "S".into() }, ChatMessage { role: "user".into(), content: "U".into() }];
        let r = build_request(&cfg(Provider::Anthropic, ""), &msgs, 100).unwrap();
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["system"], "S");
        assert_eq!(v["messages"], json!([{"role": "user", "content": "U"}]));
        assert_eq!(v["max_tokens"], 100);
        let r = build_request(&cfg(Provider::Openai, ""), &msgs, 100_000).unwrap();
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["messages"][0], json!({"role": "system", "content": "S"}));
        assert_eq!(v["max_tokens"], 4096);
        let mut c = cfg(Provider::Openai, "");
        c.model.clear();
        assert!(build_request(&c, &msgs, 1).unwrap_err().to_string().contains("cloud.model"));
        c.model = "m".into();
        c.endpoint = "::not a url".into();
        assert!(build_request(&c, &msgs, 1).is_err());
        // Plain http leaves the machine only when asked for.
        c.endpoint = "http://gateway.internal/v1".into();
        let e = build_request(&c, &msgs, 1).unwrap_err().to_string();
        assert!(e.contains("plain http") && e.contains("cloud.allowInsecure"), "{e}");
        c.allow_insecure = true;
        assert!(build_request(&c, &msgs, 1).is_ok());
        c.endpoint = "http://127.0.0.1:9/v1".into();
        c.allow_insecure = false;
        assert!(build_request(&c, &msgs, 1).is_ok());
    }

    #[test]
    fn key_only_from_the_named_variable() {
        let mut c = cfg(Provider::Anthropic, "");
        assert_eq!(c.key_env(), "ANTHROPIC_API_KEY");
        c.api_key_env = "LOCODE_TEST_KEY_THAT_IS_NOT_SET_1234".into();
        let e = c.api_key().unwrap_err().to_string();
        assert!(e.contains("LOCODE_TEST_KEY_THAT_IS_NOT_SET_1234"), "{e}");
    }
}
