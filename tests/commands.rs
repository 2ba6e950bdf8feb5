//! Explain/refactor, cloud escalation, the privacy guard and remote engines.
//!
//! Every provider and engine path runs against an axum server on 127.0.0.1
//! speaking that provider's wire protocol; the tests assert the request shape.
//! The LSP tests run the `locode` binary over stdio with the real default
//! model (`make model`), one at a time.

#[path = "common/fake_http.rs"]
mod fake_http;
#[path = "common/lsp_client.rs"]
mod lsp_client;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_http::{counting_listener, json_reply, loopback, sse_reply, Loopback, Recorded, Reply};
use locode::commands::cloud::{self, CloudConfig, Provider};
use locode::complete::{self, Suggestion};
use locode::config::{CompletionConfig, RemoteEngineConfig, RemoteKind};
use locode::documents::Document;
use locode::engine::remote::ErrorLatch;
use locode::engine::{CancelToken, CompletionJob, Early, Engine, EngineError, StopRule};
use locode::net::NetError;
use locode::prompt::{ChatMessage, Family, Piece};
use locode::redact::Redactor;
use locode::secret_files;
use locode::syntax::Language;
use lsp_client::{bin, model_path, LspClient};
use serde_json::{json, Value};

// ---------------------------------------------------------------- loopback

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn msgs() -> Vec<ChatMessage> {
    vec![
        ChatMessage { role: "system".into(), content: "You refactor code.".into() },
        ChatMessage { role: "user".into(), content: "Simplify: x = 1 + 0".into() },
    ]
}

const KEY: &str = "test-key-0123456789abcdef";

fn cloud_cfg(provider: Provider, url: &str, stream: bool) -> CloudConfig {
    CloudConfig { provider, endpoint: url.into(), model: "test-model".into(), stream, timeout_ms: 3_000, ..Default::default() }
}

fn send(cfg: &CloudConfig) -> Result<(String, Vec<String>), NetError> {
    let req = cloud::build_request(cfg, &msgs(), 256).unwrap();
    let mut seen = Vec::new();
    let r = rt().block_on(cloud::send(&req, KEY, cfg.timeout_ms, &CancelToken::new(), |t| seen.push(t.to_string())));
    r.map(|t| (t, seen))
}

// ------------------------------------------------------------ redaction

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/secrets")
}

#[test]
fn redaction_corpus_has_zero_leaks() {
    let dir = corpus_dir();
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    let mut by_file: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut total = 0;
    for line in manifest.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let mut parts = line.splitn(3, '\t');
        let (file, kind, secret) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        by_file.entry(file.into()).or_default().push((kind.into(), secret.into()));
        total += 1;
    }
    assert!(total >= 40, "the corpus must hold at least 40 secrets, it has {total}");
    let mut leaks = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for (file, secrets) in &by_file {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let mut r = Redactor::new();
        let out = r.redact(&text);
        for (kind, secret) in secrets {
            assert!(text.contains(secret.as_str()), "{file}: the manifest's {kind} secret is not in the file");
            kinds.insert(kind.clone());
            // A leak: the secret, or any 12-character piece of a long one.
            let chars: Vec<char> = secret.chars().collect();
            let leaked = out.contains(secret.as_str())
                || (chars.len() >= 16 && chars.windows(12).map(|w| w.iter().collect::<String>()).any(|w| out.contains(&w)));
            if leaked {
                leaks.push(format!("{file}: {kind} {secret}"));
            }
        }
        assert_eq!(r.restore(&out), text, "{file}: restoring the placeholders gives the original back");
    }
    println!("redaction corpus: {total} secrets of {} kinds in {} files, {} leaks", kinds.len(), by_file.len(), leaks.len());
    assert!(leaks.is_empty(), "leaked secrets:\n{}", leaks.join("\n"));
}

#[test]
fn ordinary_code_is_not_redacted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for f in ["examples/demo.py", "server/src/complete.rs"] {
        let text = std::fs::read_to_string(root.join(f)).unwrap();
        let mut r = Redactor::new();
        let out = r.redact(&text);
        assert_eq!(out, text, "{f} was changed: {:?}", r.redactions);
    }
}

#[test]
fn secret_files_are_refused() {
    for p in [
        "/p/.env",
        "/p/.env.local",
        "/home/u/.ssh/id_ed25519",
        "/etc/tls/site.pem",
        "/home/u/.netrc",
        "/p/secrets.py",
        "/home/u/.aws/credentials",
    ] {
        assert!(secret_files::secret_file_pattern(p, &[]).is_some(), "{p} should be refused");
    }
    for p in ["/p/main.py", "/p/.env.example", "/home/u/.ssh/id_ed25519.pub", "/p/src/lib.rs"] {
        assert!(secret_files::secret_file_pattern(p, &[]).is_none(), "{p} should be allowed");
    }
}

// ------------------------------------------------------- cloud providers

#[test]
fn openai_chat_completions_non_streaming() {
    let srv = loopback(|_, _| {
        json_reply(
            200,
            json!({"id": "c1", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "```python\nx = 1\n```"}, "finish_reason": "stop"}]}),
        )
    });
    let cfg = cloud_cfg(Provider::Openai, &format!("{}/v1", srv.url), false);
    let (text, _) = send(&cfg).unwrap();
    assert_eq!(text, "```python\nx = 1\n```");
    let r = &srv.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.headers["authorization"], format!("Bearer {KEY}"));
    assert!(r.headers["content-type"].starts_with("application/json"));
    assert!(!r.headers.contains_key("x-api-key"));
    assert_eq!(r.body["model"], "test-model");
    assert_eq!(r.body["stream"], false);
    assert_eq!(r.body["max_tokens"], 256);
    assert_eq!(
        r.body["messages"],
        json!([{"role": "system", "content": "You refactor code."}, {"role": "user", "content": "Simplify: x = 1 + 0"}])
    );
}

#[test]
fn openai_chat_completions_streaming() {
    let srv = loopback(|_, _| {
        let chunk = |t: &str| {
            format!("data: {}\n\n", json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": t}}]}))
        };
        sse_reply(&[
            format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})),
            chunk("x = "),
            chunk("1"),
            chunk("\n"),
            "data: [DONE]\n\n".into(),
        ])
    });
    let cfg = cloud_cfg(Provider::Openai, &srv.url, true);
    let (text, seen) = send(&cfg).unwrap();
    assert_eq!(text, "x = 1\n");
    assert_eq!(seen, vec!["x = ", "x = 1", "x = 1\n"], "progress sees the text grow");
    let r = &srv.requests()[0];
    assert_eq!(r.path, "/chat/completions");
    assert_eq!(r.body["stream"], true);
    assert_eq!(r.headers["accept"], "text/event-stream");
}

#[test]
fn anthropic_messages_non_streaming() {
    let srv = loopback(|_, _| {
        json_reply(
            200,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "x = 1"}, {"type": "text", "text": "\n"}], "stop_reason": "end_turn"}),
        )
    });
    let cfg = cloud_cfg(Provider::Anthropic, &srv.url, false);
    let (text, _) = send(&cfg).unwrap();
    assert_eq!(text, "x = 1\n");
    let r = &srv.requests()[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.headers["x-api-key"], KEY);
    assert_eq!(r.headers["anthropic-version"], "2023-06-01");
    assert!(!r.headers.contains_key("authorization"), "the key goes only in x-api-key");
    assert_eq!(r.body["system"], "You refactor code.");
    assert_eq!(r.body["messages"], json!([{"role": "user", "content": "Simplify: x = 1 + 0"}]));
    assert_eq!(r.body["max_tokens"], 256);
    assert_eq!(r.body["model"], "test-model");
}

#[test]
fn anthropic_messages_streaming() {
    let srv = loopback(|_, _| {
        let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
        sse_reply(&[
            ev("message_start", json!({"type": "message_start", "message": {"id": "msg_1", "content": []}})),
            ev("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
            ev("ping", json!({"type": "ping"})),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "def f():"}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "\n    return 1\n"}}),
            ),
            ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}})),
            ev("message_stop", json!({"type": "message_stop"})),
        ])
    });
    let cfg = cloud_cfg(Provider::Anthropic, &srv.url, true);
    let (text, seen) = send(&cfg).unwrap();
    assert_eq!(text, "def f():\n    return 1\n");
    assert_eq!(seen.len(), 2);
    assert_eq!(srv.requests()[0].body["stream"], true);
}

#[test]
fn cloud_errors_are_clear() {
    // 429 with Retry-After, OpenAI error body.
    let srv = loopback(|_, _| {
        let mut r = json_reply(429, json!({"error": {"message": "Rate limit reached for requests", "type": "requests"}}));
        r.headers.push(("retry-after", "7".into()));
        r
    });
    let e = send(&cloud_cfg(Provider::Openai, &srv.url, false)).unwrap_err();
    assert!(matches!(e, NetError::Http { status: 429, retry_after: Some(7), .. }), "{e:?}");
    assert!(e.to_string().contains("rate limited; retry after 7 s") && e.to_string().contains("Rate limit reached"), "{e}");

    // 500 with Anthropic's error body.
    let srv =
        loopback(|_, _| json_reply(500, json!({"type": "error", "error": {"type": "api_error", "message": "Internal server error"}})));
    let e = send(&cloud_cfg(Provider::Anthropic, &srv.url, true)).unwrap_err();
    assert!(matches!(e, NetError::Http { status: 500, .. }), "{e:?}");
    assert!(e.to_string().contains("Internal server error"), "{e}");

    // Malformed JSON, non-streaming and streaming.
    let srv = loopback(|_, _| Reply {
        status: 200,
        content_type: "application/json",
        body: "{\"choices\": [".into(),
        delay_ms: 0,
        headers: vec![],
    });
    let e = send(&cloud_cfg(Provider::Openai, &srv.url, false)).unwrap_err();
    assert!(matches!(e, NetError::Malformed { .. }), "{e:?}");
    let srv = loopback(|_, _| sse_reply(&["data: {\"choices\": [{\"delta\": \n\n".into()]));
    let e = send(&cloud_cfg(Provider::Openai, &srv.url, true)).unwrap_err();
    assert!(matches!(e, NetError::Malformed { .. }), "{e:?}");
    // Well-formed JSON of the wrong shape.
    let srv = loopback(|_, _| json_reply(200, json!({"content": "no blocks"})));
    let e = send(&cloud_cfg(Provider::Anthropic, &srv.url, false)).unwrap_err();
    assert!(matches!(e, NetError::Malformed { .. }), "{e:?}");

    // An error event in the middle of an Anthropic stream.
    let srv = loopback(|_, _| {
        sse_reply(&[
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n".into(),
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n".into(),
        ])
    });
    let e = send(&cloud_cfg(Provider::Anthropic, &srv.url, true)).unwrap_err();
    assert!(matches!(e, NetError::Provider { .. }) && e.to_string().contains("Overloaded"), "{e:?}");

    // Timeout: the server answers after the configured limit.
    let srv = loopback(|_, _| {
        let mut r = json_reply(200, json!({"choices": [{"message": {"content": "late"}}]}));
        r.delay_ms = 3_000;
        r
    });
    let mut cfg = cloud_cfg(Provider::Openai, &srv.url, false);
    cfg.timeout_ms = 300;
    let t0 = Instant::now();
    let e = send(&cfg).unwrap_err();
    assert!(matches!(e, NetError::Timeout { ms: 300, .. }), "{e:?}");
    assert!(t0.elapsed() < Duration::from_millis(2_500), "gave up after {:?}", t0.elapsed());

    // Nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = send(&cloud_cfg(Provider::Openai, &format!("http://127.0.0.1:{port}"), false)).unwrap_err();
    assert!(matches!(e, NetError::Connect { .. }), "{e:?}");
}

#[test]
fn cloud_request_is_cancelled_promptly() {
    let srv = loopback(|_, _| {
        let mut r = json_reply(200, json!({"choices": [{"message": {"content": "late"}}]}));
        r.delay_ms = 5_000;
        r
    });
    let cfg = cloud_cfg(Provider::Openai, &srv.url, false);
    let req = cloud::build_request(&cfg, &msgs(), 16).unwrap();
    let cancel = CancelToken::new();
    let c2 = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        c2.cancel();
    });
    let t0 = Instant::now();
    let r = rt().block_on(cloud::send(&req, KEY, 10_000, &cancel, |_| {}));
    assert_eq!(r, Err(NetError::Cancelled));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}

// -------------------------------------------------------- remote engines

fn remote_cfg(kind: RemoteKind, url: &str, stream: bool) -> RemoteEngineConfig {
    RemoteEngineConfig { kind, endpoint: url.into(), model: "qwen2.5-coder:1.5b".into(), timeout_ms: 2_000, stream, ..Default::default() }
}

const ADD: &str = "def add(a, b):\n    return \n\n\nprint(add(1, 2))\n";

/// A remote engine behind the `Engine` handle, and its family.
fn remote_engine(rt: &tokio::runtime::Runtime, cfg: &RemoteEngineConfig) -> (Engine, Family) {
    let engine = Engine::spawn();
    let (info, family) = rt.block_on(engine.load_remote(cfg.clone())).unwrap();
    assert_eq!(info.family, "qwen2.5-coder");
    assert_eq!(info.path, PathBuf::from(cfg.url()));
    (engine, family)
}

/// The suggestion at the cursor after `return ` in ADD, through the same
/// pipeline as the embedded engine's (`complete::suggest`), for document `slot`.
fn suggest_at(rt: &tokio::runtime::Runtime, engine: &Engine, family: &Family, slot: &str) -> Result<Suggestion, EngineError> {
    let mut doc = Document::new(ADD, 3, Language::Python);
    let snap = doc.snapshot();
    let cursor = "def add(a, b):\n    return ".chars().count();
    let spot = complete::Spot { snap: &snap, cursor, anchor: cursor };
    rt.block_on(complete::suggest(engine, family, slot, &spot, &CompletionConfig::default(), CancelToken::new()))
}

/// The raw prompt a request carried, checked to be the family's FIM layout.
fn raw_prompt(body: &Value) -> String {
    let p = body["prompt"].as_str().unwrap_or_else(|| panic!("a raw prompt: {body}")).to_string();
    assert!(p.starts_with("<|fim_prefix|>def add(a, b):\n"), "{p:?}");
    assert!(p.contains("<|fim_suffix|>"), "{p:?}");
    assert!(p.contains("<|fim_middle|>"), "{p:?}");
    p
}

fn not_props(srv: &Loopback) -> Vec<Recorded> {
    srv.requests().into_iter().filter(|r| r.path != "/props").collect()
}

fn llama_final(content: &str) -> Value {
    json!({"content": content, "stop": true, "stop_type": "eos", "tokens_evaluated": 40, "tokens_cached": 36,
        "timings": {"cache_n": 36, "prompt_n": 4, "prompt_ms": 12.5, "predicted_n": 3, "predicted_ms": 30.0}})
}

#[test]
fn llama_server_completion_with_the_raw_anchored_prompt() {
    let srv = loopback(|r, _| match r.path.as_str() {
        "/props" => json_reply(200, json!({"total_slots": 2, "default_generation_settings": {"n_ctx": 4096}})),
        _ => json_reply(200, llama_final("a + b")),
    });
    let rt = rt();
    let (engine, family) = remote_engine(&rt, &remote_cfg(RemoteKind::LlamaServer, &srv.url, false));
    let s = suggest_at(&rt, &engine, &family, "file:///a.py").unwrap();
    assert_eq!(s.text, "a + b");
    assert_eq!((s.stats.prompt_tokens, s.stats.evaluated_tokens, s.stats.generated_tokens), (40, 4, 3));
    assert_eq!((s.stats.prompt_ms, s.stats.generate_ms), (12.5, 30.0));
    suggest_at(&rt, &engine, &family, "file:///b.py").unwrap();
    suggest_at(&rt, &engine, &family, "file:///a.py").unwrap();
    let reqs = not_props(&srv);
    let r = &reqs[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/completion"));
    let p = raw_prompt(&r.body);
    // Anchored at the cursor: nothing typed since, the suffix before it.
    // (The blank before the cursor is healed: the text must start with it.)
    assert!(p.ends_with("\nprint(add(1, 2))\n<|fim_middle|> "), "{p:?}");
    assert!(r.body.get("input_prefix").is_none() && r.body.get("input_suffix").is_none(), "{}", r.body);
    assert_eq!(r.body["cache_prompt"], true);
    assert_eq!(r.body["n_predict"], CompletionConfig::default().max_tokens);
    assert_eq!(r.body["temperature"], 0);
    assert_eq!(r.body["stream"], false);
    // A slot per document: a.py, b.py, a.py again.
    let slots: Vec<&Value> = reqs.iter().map(|r| &r.body["id_slot"]).collect();
    assert_eq!(slots, [&json!(0), &json!(1), &json!(0)]);

    // Streamed: SSE chunks, timings in each.
    let srv = loopback(|r, _| match r.path.as_str() {
        "/props" => json_reply(404, json!({"error": "no props here"})),
        _ => sse_reply(&[
            format!("data: {}\n\n", json!({"content": "a", "stop": false})),
            format!("data: {}\n\n", json!({"content": " + b", "stop": false})),
            format!("data: {}\n\n", llama_final("")),
        ]),
    });
    let (engine, family) = remote_engine(&rt, &remote_cfg(RemoteKind::LlamaServer, &srv.url, true));
    let s = suggest_at(&rt, &engine, &family, "file:///a.py").unwrap();
    assert_eq!(s.text, "a + b");
    assert_eq!(s.stats.evaluated_tokens, 4);
    let r = &not_props(&srv)[0];
    assert_eq!(r.body["stream"], true);
    // /props did not answer: the server chooses the slot.
    assert_eq!(r.body["id_slot"], -1);
}

#[test]
fn ollama_generate_raw() {
    let srv = loopback(|_, _| {
        json_reply(
            200,
            json!({"model": "qwen2.5-coder:1.5b", "response": "a + b", "done": true, "done_reason": "stop", "prompt_eval_count": 9}),
        )
    });
    let rt = rt();
    let (engine, family) = remote_engine(&rt, &remote_cfg(RemoteKind::Ollama, &srv.url, false));
    let s = suggest_at(&rt, &engine, &family, "file:///a.py").unwrap();
    assert_eq!(s.text, "a + b");
    assert_eq!(s.stats.evaluated_tokens, 9);
    let r = &srv.requests()[0];
    assert_eq!(r.path, "/api/generate");
    assert_eq!(r.body["model"], "qwen2.5-coder:1.5b");
    assert_eq!(r.body["raw"], true);
    raw_prompt(&r.body);
    assert!(r.body.get("suffix").is_none(), "{}", r.body);
    assert_eq!(r.body["options"]["num_predict"], CompletionConfig::default().max_tokens);
    assert_eq!(r.body["stream"], false);

    // Streaming is NDJSON: one object per line.
    let srv = loopback(|_, _| Reply {
        status: 200,
        content_type: "application/x-ndjson",
        body: [json!({"response": "a", "done": false}), json!({"response": " + b", "done": false}), json!({"response": "", "done": true})]
            .iter()
            .map(|v| format!("{v}\n"))
            .collect(),
        delay_ms: 0,
        headers: vec![],
    });
    let (engine, family) = remote_engine(&rt, &remote_cfg(RemoteKind::Ollama, &srv.url, true));
    assert_eq!(suggest_at(&rt, &engine, &family, "file:///a.py").unwrap().text, "a + b");

    // Ollama reports a missing model as {"error": ...} with 404.
    let srv = loopback(|_, _| json_reply(404, json!({"error": "model \"qwen2.5-coder:1.5b\" not found, try pulling it first"})));
    let (engine, family) = remote_engine(&rt, &remote_cfg(RemoteKind::Ollama, &srv.url, false));
    let e = suggest_at(&rt, &engine, &family, "file:///a.py").unwrap_err();
    assert!(e.to_string().contains("not found, try pulling it first"), "{e}");
}

#[test]
fn openai_completions_with_the_raw_prompt_and_no_suffix() {
    std::env::set_var("LOCODE_TEST_REMOTE_KEY", "remote-secret-1");
    let srv = loopback(|_, _| {
        json_reply(
            200,
            json!({"id": "cmpl-1", "object": "text_completion", "choices": [{"index": 0, "text": "a + b", "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 48}}}),
        )
    });
    let rt = rt();
    let mut cfg = remote_cfg(RemoteKind::Openai, &format!("{}/v1", srv.url), false);
    cfg.api_key_env = "LOCODE_TEST_REMOTE_KEY".into();
    let (engine, family) = remote_engine(&rt, &cfg);
    let s = suggest_at(&rt, &engine, &family, "file:///a.py").unwrap();
    assert_eq!(s.text, "a + b");
    assert_eq!((s.stats.prompt_tokens, s.stats.evaluated_tokens), (50, 2));
    let r = &srv.requests()[0];
    assert_eq!(r.path, "/v1/completions");
    assert_eq!(r.headers["authorization"], "Bearer remote-secret-1");
    raw_prompt(&r.body);
    assert!(r.body.get("suffix").is_none(), "{}", r.body);
    assert_eq!(r.body["max_tokens"], CompletionConfig::default().max_tokens);
    assert_eq!(r.body["model"], "qwen2.5-coder:1.5b");

    let srv = loopback(|_, _| {
        sse_reply(&[
            format!("data: {}\n\n", json!({"choices": [{"index": 0, "text": "a", "finish_reason": null}]})),
            format!("data: {}\n\n", json!({"choices": [{"index": 0, "text": " + b", "finish_reason": null}]})),
            format!("data: {}\n\n", json!({"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 3}})),
            "data: [DONE]\n\n".into(),
        ])
    });
    let (engine, family) = remote_engine(&rt, &remote_cfg(RemoteKind::Openai, &srv.url, true));
    let s = suggest_at(&rt, &engine, &family, "file:///a.py").unwrap();
    assert_eq!(s.text, "a + b");
    assert_eq!(s.stats.prompt_tokens, 50);
    let r = &srv.requests()[0];
    assert_eq!(r.body["stream_options"]["include_usage"], true);
    assert!(!r.headers.contains_key("authorization"), "no key configured: no header");
}

#[test]
fn remote_engine_errors_429_500_timeout_malformed() {
    let rt = rt();
    for kind in [RemoteKind::LlamaServer, RemoteKind::Ollama, RemoteKind::Openai] {
        let n = AtomicUsize::new(0);
        let srv = loopback(move |r, _| {
            if r.path == "/props" {
                return json_reply(200, json!({"total_slots": 1}));
            }
            match n.fetch_add(1, Ordering::SeqCst) + 1 {
                1 => json_reply(429, json!({"error": {"message": "too many requests"}})),
                2 => json_reply(500, json!({"error": {"code": 500, "message": "slot unavailable"}})),
                3 => Reply { status: 200, content_type: "application/json", body: "not json".into(), delay_ms: 0, headers: vec![] },
                _ => {
                    let mut r = json_reply(200, json!({"content": "late", "response": "late", "choices": [{"text": "late"}]}));
                    r.delay_ms = 2_000;
                    r
                }
            }
        });
        let mut cfg = remote_cfg(kind, &srv.url, false);
        cfg.timeout_ms = 400;
        let (engine, family) = remote_engine(&rt, &cfg);
        let net = |e: EngineError| match e {
            EngineError::Remote(n) => n,
            e => panic!("{kind:?}: not a remote error: {e:?}"),
        };
        let e1 = net(suggest_at(&rt, &engine, &family, "file:///a.py").unwrap_err());
        assert!(matches!(e1, NetError::Http { status: 429, .. }) && e1.to_string().contains("too many requests"), "{kind:?}: {e1}");
        let e2 = net(suggest_at(&rt, &engine, &family, "file:///a.py").unwrap_err());
        assert!(matches!(e2, NetError::Http { status: 500, .. }) && e2.to_string().contains("slot unavailable"), "{kind:?}: {e2}");
        let e3 = net(suggest_at(&rt, &engine, &family, "file:///a.py").unwrap_err());
        assert!(matches!(e3, NetError::Malformed { .. }), "{kind:?}: {e3:?}");
        let t0 = Instant::now();
        let e4 = net(suggest_at(&rt, &engine, &family, "file:///a.py").unwrap_err());
        assert!(matches!(e4, NetError::Timeout { .. }), "{kind:?}: {e4:?}");
        assert!(t0.elapsed() < Duration::from_millis(1_500));
        // The latch reports each new kind of failure once.
        let latch = ErrorLatch::default();
        assert!(latch.failed(&e4).unwrap().contains("timeout"));
        assert!(latch.failed(&e4).is_none());
    }
}

#[test]
fn remote_suggestion_gets_the_same_post_processing() {
    // The server returns more than the line: mid-line completions keep one line,
    // exactly as with the embedded engine.
    let srv = loopback(|r, _| match r.path.as_str() {
        "/props" => json_reply(200, json!({"total_slots": 1})),
        _ => json_reply(200, json!({"content": "a + b\n\nprint(add(1, 2))\n", "stop": true, "stop_type": "limit"})),
    });
    let rt = rt();
    let (engine, family) = remote_engine(&rt, &remote_cfg(RemoteKind::LlamaServer, &srv.url, false));
    let s = suggest_at(&rt, &engine, &family, "file:///a.py").unwrap();
    assert_eq!(s.text, "a + b");
    assert_eq!(s.version, 3);
    // The forced prefix (the healed blank) starts the text, as the embedded engine's.
    assert_eq!(s.stats.text, " a + b\n\nprint(add(1, 2))\n");
    assert!(!s.stats.stopped, "stop_type limit: cut by the length limit");
}

/// A fake llama-server whose `/completion` streams `n` chunks of `piece`,
/// one every `every_ms`, and notes how many it sent and whether the
/// client dropped the stream before its end.
struct Streamer {
    url: String,
    sent: Arc<AtomicUsize>,
    dropped: Arc<std::sync::atomic::AtomicBool>,
    bodies: Arc<Mutex<Vec<Value>>>,
}

fn streamer(n: usize, piece: &'static str, every_ms: u64) -> Streamer {
    use std::sync::atomic::AtomicBool;
    let sent = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (s2, d2, b2) = (sent.clone(), dropped.clone(), bodies.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            /// Set when the body stream is dropped before its end.
            struct Guard(Arc<AtomicBool>, bool);
            impl Guard {
                fn ended(&mut self) {
                    self.1 = true;
                }
            }
            impl Drop for Guard {
                fn drop(&mut self) {
                    if !self.1 {
                        self.0.store(true, Ordering::SeqCst);
                    }
                }
            }
            let props = axum::routing::get(|| async { axum::Json(json!({"total_slots": 4})) });
            let completion = axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let (sent, dropped) = (s2.clone(), d2.clone());
                b2.lock().unwrap().push(body.clone());
                async move {
                    let max = body["n_predict"].as_u64().unwrap_or(0) as usize;
                    let n = if max == 0 { 0 } else { n.min(max) };
                    let stream = body["stream"].as_bool().unwrap_or(false);
                    if !stream {
                        let content = piece.repeat(n);
                        return axum::response::Response::builder()
                            .header("content-type", "application/json")
                            .body(axum::body::Body::from(llama_final(&content).to_string()))
                            .unwrap();
                    }
                    let guard = Guard(dropped, false);
                    let chunks = futures_util::stream::unfold((0usize, guard), move |(i, mut guard)| {
                        let sent = sent.clone();
                        async move {
                            if i > n {
                                guard.ended();
                                return None;
                            }
                            tokio::time::sleep(Duration::from_millis(every_ms)).await;
                            let v = if i == n { llama_final("") } else { json!({"content": piece, "stop": false}) };
                            sent.fetch_add(1, Ordering::SeqCst);
                            Some((Ok::<_, std::io::Error>(format!("data: {v}\n\n")), (i + 1, guard)))
                        }
                    });
                    axum::response::Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(axum::body::Body::from_stream(chunks))
                        .unwrap()
                }
            });
            let app = axum::Router::new().route("/props", props).route("/completion", completion);
            axum::serve(listener, app).await.unwrap();
        });
    });
    let port = rx.recv().unwrap();
    Streamer { url: format!("http://127.0.0.1:{port}"), sent, dropped, bodies }
}

fn job(slot: &str, prompt: &str, max_tokens: u32) -> CompletionJob {
    CompletionJob::new(
        slot,
        vec![Piece::Special("<|fim_prefix|>".into()), Piece::Text(prompt.into()), Piece::Special("<|fim_middle|>".into())],
        max_tokens,
    )
}

/// A runtime whose tasks (the HTTP client's connections) go on between
/// `block_on` calls: a dropped stream's connection closes at once.
fn mt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_stream_is_dropped_once_the_suggestion_is_settled() {
    // Line after line, far more than a one-line suggestion needs.
    let srv = streamer(200, "a + b\n", 5);
    let rt = mt();
    let (engine, family) = remote_engine(&rt, &remote_cfg(RemoteKind::LlamaServer, &srv.url, true));
    let t0 = Instant::now();
    let s = suggest_at(&rt, &engine, &family, "file:///a.py").unwrap();
    assert_eq!(s.text, "a + b");
    assert!(t0.elapsed() < Duration::from_millis(500), "{:?}", t0.elapsed());
    wait_for("the server to see the stream dropped", || srv.dropped.load(Ordering::SeqCst));
    let sent = srv.sent.load(Ordering::SeqCst);
    assert!(sent < 10, "the trimmer was done after the first line; the server sent {sent} chunks");
    assert_eq!(srv.bodies.lock().unwrap()[0]["timings_per_token"], true);
}

#[test]
fn a_cancelled_request_is_dropped() {
    let srv = streamer(400, "x", 10);
    let rt = mt();
    let (engine, _) = remote_engine(&rt, &remote_cfg(RemoteKind::LlamaServer, &srv.url, true));
    let j = job("file:///a.py", "def f():\n    ", 400);
    let cancel = j.cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        cancel.cancel();
    });
    let t0 = Instant::now();
    let g = rt.block_on(engine.complete(j)).unwrap();
    assert!(g.cancelled && g.text.is_empty(), "{g:?}");
    assert!(t0.elapsed() < Duration::from_millis(1_000), "{:?}", t0.elapsed());
    wait_for("the server to see the stream dropped", || srv.dropped.load(Ordering::SeqCst));
    assert!(srv.sent.load(Ordering::SeqCst) < 100);
}

/// A stop rule that shows each complete line early and is never done.
struct Lines;

impl StopRule for Lines {
    fn is_done(&self, _: &str) -> bool {
        false
    }
    fn early(&self, generated: &str) -> Option<String> {
        generated.rfind('\n').map(|i| generated[..i].to_string())
    }
}

#[test]
fn early_answers_then_the_rest_in_the_background_until_a_request_comes() {
    let srv = streamer(300, "x = 1\n", 10);
    let rt = mt();
    let (engine, _) = remote_engine(&rt, &remote_cfg(RemoteKind::LlamaServer, &srv.url, true));
    let (tx, early_rx) = tokio::sync::oneshot::channel();
    let mut j = job("file:///a.py", "def f():\n", 300);
    j.stop = Some(Arc::new(Lines));
    j.early = Some(Early { at: std::time::Instant::now() + Duration::from_millis(50), tx, cancel: CancelToken::new() });
    let e2 = engine.clone();
    let rest = rt.spawn(async move { e2.complete(j).await });
    let (shown, answer) = rt.block_on(early_rx).unwrap();
    assert!(answer.starts_with("x = 1"), "{answer:?}");
    assert!(shown.text.starts_with("x = 1\n"), "{shown:?}");
    // A foreground request: the rest yields to it with what it has.
    rt.block_on(engine.complete(job("file:///b.py", "y", 1))).unwrap();
    let whole = rt.block_on(rest).unwrap().unwrap();
    assert!(whole.yielded && !whole.cancelled, "{whole:?}");
    assert!(whole.text.starts_with(&shown.text) && whole.text.len() >= shown.text.len());
    wait_for("the server to see the stream dropped", || srv.dropped.load(Ordering::SeqCst));
}

/// An early answer is due `earlyAnswerMs` after the request was made, not
/// after the engine took it up: a request that already waited that long
/// (behind a build's share, another request) is answered at its first
/// complete line; one that did not waits for its deadline.
#[test]
fn an_early_answer_is_due_from_when_the_request_was_made() {
    let srv = streamer(60, "x = 1\n", 20);
    let rt = mt();
    let (engine, _) = remote_engine(&rt, &remote_cfg(RemoteKind::LlamaServer, &srv.url, true));
    let shown_lines = |at: std::time::Instant| {
        let (tx, early_rx) = tokio::sync::oneshot::channel();
        let mut j = job("file:///a.py", "def f():\n", 60);
        j.stop = Some(Arc::new(Lines));
        j.early = Some(Early { at, tx, cancel: CancelToken::new() });
        let e2 = engine.clone();
        let rest = rt.spawn(async move { e2.complete(j).await });
        let (shown, _) = rt.block_on(early_rx).unwrap();
        rt.block_on(engine.complete(job("file:///b.py", "y", 1))).unwrap();
        let _ = rt.block_on(rest);
        shown.text.matches('\n').count()
    };
    let waited = shown_lines(std::time::Instant::now() - Duration::from_secs(1));
    let fresh = shown_lines(std::time::Instant::now() + Duration::from_millis(400));
    assert!(waited < 5, "a request past its deadline: {waited} lines shown");
    assert!(fresh >= 10, "a fresh request, due in 400 ms: {fresh} lines shown");
}

#[test]
fn warm_ups_healing_and_second_tries_on_the_wire() {
    let srv = streamer(3, "ius", 1);
    let rt = rt();
    let (engine, family) = remote_engine(&rt, &remote_cfg(RemoteKind::LlamaServer, &srv.url, true));
    // A warm-up only fills the slot's cache.
    let mut doc = Document::new(ADD, 1, Language::Python);
    let snap = doc.snapshot();
    let cursor = "def add(a, b):\n    return ".chars().count();
    let spot = complete::Spot { snap: &snap, cursor, anchor: cursor };
    assert!(rt.block_on(complete::warm(&engine, &family, "file:///a.py", &spot, &CompletionConfig::default())));
    // Token healing: the partial word goes into the prompt, and the text starts with it.
    let mut j = job("file:///a.py", "r = 2\narea = 3.14 * r", 8);
    j.forced_prefix = "ad".into();
    let g = rt.block_on(engine.complete(j)).unwrap();
    assert!(g.text.starts_with("adius"), "{g:?}");
    // A second try bans the first try's first word.
    let mut j = job("file:///a.py", "x = ", 8);
    j.avoid = Some(" None".into());
    rt.block_on(engine.complete(j)).unwrap();
    let bodies = srv.bodies.lock().unwrap().clone();
    assert_eq!((bodies[0]["n_predict"].clone(), bodies[0]["stream"].clone()), (json!(0), json!(false)));
    assert!(bodies[0]["prompt"].as_str().unwrap().starts_with("<|fim_prefix|>def add(a, b):\n"));
    assert!(bodies[1]["prompt"].as_str().unwrap().ends_with("<|fim_middle|>ad"), "{}", bodies[1]["prompt"]);
    assert_eq!(bodies[2]["logit_bias"], json!([[" None", false]]));
    // Same document, same slot.
    assert_eq!(bodies.iter().map(|b| b["id_slot"].clone()).collect::<Vec<_>>(), [json!(0), json!(0), json!(0)]);
    // A server that takes no bias by text gets no second try.
    let srv = loopback(|_, _| json_reply(200, json!({"response": "never asked", "done": true})));
    let (engine, _) = remote_engine(&rt, &remote_cfg(RemoteKind::Ollama, &srv.url, false));
    let mut j = job("file:///a.py", "x = ", 8);
    j.avoid = Some(" None".into());
    let g = rt.block_on(engine.complete(j)).unwrap();
    assert!(g.text.is_empty() && srv.requests().is_empty(), "{g:?}");
}

// ------------------------------------------------------ over LSP (binary)

/// LSP tests share the model and the two cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn require_model() {
    model_path();
}

type Seen = Arc<Mutex<Vec<Value>>>;

/// A locode server (optionally under strace) whose client records the
/// server's requests and answers them with `answer`.
fn server(
    options: Value,
    envs: &[(&str, &str)],
    strace_to: Option<&Path>,
    answer: impl Fn(&Value) -> Value + Send + Sync + 'static,
) -> (LspClient, Seen) {
    require_model();
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let handler: lsp_client::Handler = Arc::new(move |msg: &Value| {
        s2.lock().unwrap().push(msg.clone());
        answer(msg)
    });
    let mut c = match strace_to {
        Some(out) => {
            let out = out.to_str().unwrap();
            let args = ["-f", "-qq", "-e", "trace=connect", "-o", out, bin().to_str().unwrap(), "serve"];
            LspClient::spawn_with(Path::new("strace"), &args, envs, handler)
        }
        None => LspClient::spawn_with(bin(), &["serve"], envs, handler),
    };
    c.initialize(json!({"window": {"workDoneProgress": true}}), options);
    let st = c.wait_model(Duration::from_secs(120));
    assert_eq!(st["state"], "ready", "model did not load: {st}");
    (c, seen)
}

fn open(c: &mut LspClient, uri: &str, text: &str) {
    let lang = if uri.ends_with(".rs") { "rust" } else { "python" };
    c.notify("textDocument/didOpen", json!({"textDocument": {"uri": uri, "languageId": lang, "version": 1, "text": text}}));
}

fn exec(c: &mut LspClient, command: &str, args: Value, token: Option<&str>) -> Value {
    let mut params = json!({"command": command, "arguments": [args]});
    if let Some(t) = token {
        params["workDoneToken"] = json!(t);
    }
    let id = c.send_request("workspace/executeCommand", params);
    c.response(id, Duration::from_secs(180))
}

fn doc_text(c: &mut LspClient, uri: &str) -> String {
    c.request("locode/documentState", json!({"uri": uri}))["text"].as_str().unwrap().to_string()
}

fn whole(text: &str) -> Value {
    let lines = text.lines().count() as u32;
    json!({"start": {"line": 0, "character": 0}, "end": {"line": lines, "character": 0}})
}

const THIRTY_LINES: &str = r#"import time


def summarize_orders(orders, tax_rate=0.2, currency="EUR"):
    started = time.perf_counter()
    if not orders:
        return "no orders"
    if tax_rate < 0:
        raise ValueError("tax_rate must not be negative")
    totals = {}
    skipped = 0
    for order in orders:
        if not order.get("paid"):
            skipped += 1
            continue
        customer = order["customer"]
        amount = 0.0
        for line in order["lines"]:
            price = line["price"] * line.get("quantity", 1)
            if line.get("discount"):
                price -= price * line["discount"]
            amount += price
        amount *= 1 + tax_rate
        totals[customer] = totals.get(customer, 0.0) + amount
    ranked = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)
    report = []
    for rank, (customer, total) in enumerate(ranked, start=1):
        report.append(f"{rank}. {customer}: {total:.2f} {currency}")
    elapsed = time.perf_counter() - started
    if skipped:
        report.append(f"({skipped} unpaid orders skipped)")
    report.append(f"computed in {elapsed * 1000:.1f} ms")
    return "\n".join(report)
"#;

#[test]
fn explain_a_30_line_function_with_progress() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut c, seen) = server(json!({}), &[], None, |_| Value::Null);
    let uri = "file:///tmp/locode-commands/orders.py";
    open(&mut c, uri, THIRTY_LINES);
    // Lines 4..33 (0-based 3..32): the function, 30 lines.
    let range = json!({"start": {"line": 3, "character": 0}, "end": {"line": 33, "character": 0}});
    let actions =
        c.request("textDocument/codeAction", json!({"textDocument": {"uri": uri}, "range": range, "context": {"diagnostics": []}}));
    let titles: Vec<&str> = actions.as_array().unwrap().iter().map(|a| a["title"].as_str().unwrap()).collect();
    for t in ["locode: Explain", "locode: Add a docstring", "locode: Simplify", "locode: Extract a function", "locode: Add type hints"] {
        assert!(titles.contains(&t), "{titles:?}");
    }
    assert!(!titles.iter().any(|t| t.contains("cloud")), "escalation is off: no cloud action ({titles:?})");
    assert!(!titles.iter().any(|t| t.contains("iterator")), "a Rust-only action offered for Python: {titles:?}");

    let t0 = Instant::now();
    let resp = exec(&mut c, "locode.explain", json!({"uri": uri, "range": range}), Some("explain-1"));
    let elapsed = t0.elapsed();
    let result = resp.get("result").unwrap_or_else(|| panic!("explain failed: {resp}"));
    let md = result["value"].as_str().unwrap();
    println!(
        "explain of a 30-line function: {:.2} s ({} ms in the server; {}; load average {})\n{md}",
        elapsed.as_secs_f64(),
        result["elapsedMs"],
        result["stats"],
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    assert_eq!(result["kind"], "markdown");
    assert!(md.contains("orders.py:4-33"), "{md}");
    let body = md.to_lowercase();
    assert!(body.len() > 150, "too short: {md}");
    assert!(
        ["order", "customer", "total", "tax"].iter().filter(|w| body.contains(*w)).count() >= 2,
        "the explanation does not talk about the code: {md}"
    );
    // Speed is a benchmark figure, not a test verdict: printed for the record
    // (target: under 10 s on an idle 2-core machine).
    eprintln!("explain of a 30-line function: {elapsed:?}");

    // $/progress on the client's token: begin, at least one report, end.
    let progress_end = |token: &'static str| {
        move |m: &Value| m["method"] == "$/progress" && m["params"]["token"] == token && m["params"]["value"]["kind"] == "end"
    };
    assert!(c.await_notification(Duration::from_secs(10), progress_end("explain-1")), "no progress end");
    let progress: Vec<Value> = c.notifications("$/progress").into_iter().filter(|n| n["params"]["token"] == "explain-1").collect();
    let kinds: Vec<&str> = progress.iter().map(|p| p["params"]["value"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"begin"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"end"), "{kinds:?}");
    assert!(kinds.contains(&"report"), "{kinds:?}");

    // The client answered showDocument with null (cannot show it): the
    // explanation came as a message instead.
    assert_eq!(result["shown"], "message");
    assert!(seen.lock().unwrap().iter().any(|m| m["method"] == "window/showDocument"));
    let shown = c.await_notification(Duration::from_secs(10), |m| {
        m["method"] == "window/showMessage" && m["params"]["message"].as_str() == Some(md)
    });
    assert!(shown, "{:?}", c.notifications("window/showMessage"));

    // Cancellation: a cancelled explain answers RequestCancelled at once and
    // the server stays usable.
    let id = c.send_request("workspace/executeCommand", json!({"command": "locode.explain", "arguments": [{"uri": uri, "range": range}]}));
    std::thread::sleep(Duration::from_millis(700));
    let t1 = Instant::now();
    c.notify("$/cancelRequest", json!({"id": id}));
    let r = c.response(id, Duration::from_secs(30));
    assert_eq!(r["error"]["code"], -32800, "{r}");
    assert!(t1.elapsed() < Duration::from_secs(10), "cancel took {:?}", t1.elapsed());

    // Bad input: clear errors, server keeps running.
    let r = exec(&mut c, "locode.explain", json!({"uri": "file:///nope.py", "range": range}), None);
    assert!(r["error"]["message"].as_str().unwrap().contains("not open"), "{r}");
    let r = exec(&mut c, "locode.refactor", json!({"range": range}), None);
    assert!(r["error"]["message"].as_str().unwrap().contains("{uri, range, instruction}"), "{r}");
    let r = exec(&mut c, "locode.refactor", json!({"uri": uri, "range": range, "action": "rewrite-in-cobol"}), None);
    assert!(r["error"]["message"].as_str().unwrap().contains("unknown refactor action"), "{r}");
    let bad = json!({"start": {"line": 90, "character": 0}, "end": {"line": 95, "character": 0}});
    let r = exec(&mut c, "locode.explain", json!({"uri": uri, "range": bad}), None);
    assert!(r["error"]["message"].as_str().unwrap().contains("past the end"), "{r}");
    assert_eq!(c.request("locode/status", json!(null))["state"], "ready");
    c.shutdown();
}

#[test]
fn explain_opens_a_markdown_document_when_the_client_can() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut c, seen) = server(json!({"explainMaxTokens": 48}), &[], None, |m| {
        if m["method"] == "window/showDocument" {
            json!({"success": true})
        } else {
            Value::Null
        }
    });
    let uri = "file:///tmp/locode-commands/area.py";
    open(&mut c, uri, "def area(w, h):\n    return w * h\n");
    // No selection, cursor inside the function: the whole function.
    let r = exec(
        &mut c,
        "locode.explain",
        json!({"uri": uri, "range": {"start": {"line": 1, "character": 4}, "end": {"line": 1, "character": 4}}}),
        None,
    );
    let result = &r["result"];
    assert_eq!(result["shown"], "document", "{r}");
    let md = result["value"].as_str().unwrap();
    assert!(md.starts_with("**area.py:1-2**"), "{md}");
    let shown = seen.lock().unwrap().iter().find(|m| m["method"] == "window/showDocument").cloned().unwrap();
    let path = shown["params"]["uri"].as_str().unwrap().strip_prefix("file://").unwrap().to_string();
    assert!(path.ends_with(".md"), "{path}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), md);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    c.shutdown();
}

#[test]
fn local_refactor_is_validated_and_applied_with_apply_edit() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut c, seen) =
        server(json!({}), &[], None, |m| if m["method"] == "workspace/applyEdit" { json!({"applied": true}) } else { Value::Null });
    let uri = "file:///tmp/locode-commands/shapes.py";
    let text = "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius ** 2\n\n\nprint(circle_area(2.0))\n";
    open(&mut c, uri, text);
    let range = json!({"start": {"line": 3, "character": 0}, "end": {"line": 5, "character": 0}});
    let t0 = Instant::now();
    let r = exec(&mut c, "locode.refactor", json!({"uri": uri, "range": range, "action": "docstring"}), Some("refactor-1"));
    println!("local refactor (docstring): {:.2} s: {r}", t0.elapsed().as_secs_f64());
    let result = r.get("result").unwrap_or_else(|| panic!("refactor failed: {r}"));
    assert_eq!(result["applied"], true);
    assert_eq!(result["source"], "local");
    let edits: Vec<Value> = seen.lock().unwrap().iter().filter(|m| m["method"] == "workspace/applyEdit").cloned().collect();
    assert_eq!(edits.len(), 1);
    let change = &edits[0]["params"]["edit"]["changes"][uri][0];
    assert_eq!(change["range"], json!({"start": {"line": 3, "character": 0}, "end": {"line": 5, "character": 0}}));
    let new_text = change["newText"].as_str().unwrap();
    assert_eq!(new_text, result["newText"].as_str().unwrap());
    assert!(new_text.contains("def circle_area(radius"), "{new_text}");
    assert!(new_text.contains("\"\"\"") || new_text.contains("'''"), "no docstring added: {new_text}");
    // The edited file parses.
    let edited = text.replacen("def circle_area(radius):\n    return math.pi * radius ** 2\n", new_text, 1);
    let problems = locode::commands::validate::problems(Language::Python, &edited).unwrap();
    assert!(problems.is_empty(), "{problems:?} in\n{edited}");
    // Progress was reported on the client's token.
    assert!(
        c.await_notification(Duration::from_secs(10), |m| m["method"] == "$/progress"
            && m["params"]["token"] == "refactor-1"
            && m["params"]["value"]["kind"] == "end"),
        "no progress end"
    );
    let kinds: Vec<String> = c
        .notifications("$/progress")
        .iter()
        .filter(|n| n["params"]["token"] == "refactor-1")
        .map(|n| n["params"]["value"]["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("begin"), "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("end"), "{kinds:?}");
    c.shutdown();
}

/// Counts `connect()` calls to AF_INET/AF_INET6 in an strace log.
fn inet_connects(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("connect(") && (l.contains("AF_INET") || l.contains("AF_INET6")))
        .map(str::to_string)
        .collect()
}

fn strace_available() -> bool {
    std::process::Command::new("strace").args(["-qq", "-e", "trace=connect", "true"]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn escalation_off_opens_no_network_connection() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let counter = counting_listener();
    let endpoint = format!("http://127.0.0.1:{}", counter.port);
    let audit = tmp.path().join("audit.jsonl");
    // strace counts every connect(); the listener only those that reached it.
    assert!(strace_available(), "strace is needed to count connect() calls and does not work here: install it (`make test-deps`)");
    let use_strace = true;
    let cloud = |route: &str| {
        json!({"cloud": {"route": route, "provider": "openai", "endpoint": endpoint, "model": "m",
                         "apiKeyEnv": "LOCODE_TEST_CLOUD_KEY", "auditLog": audit, "maxLocalLines": 1}})
    };
    let envs = [("LOCODE_TEST_CLOUD_KEY", "sk-test-cloud-key-should-never-be-used"), ("XDG_STATE_HOME", tmp.path().to_str().unwrap())];
    let log_off = tmp.path().join("strace-off.txt");
    {
        let (mut c, _) = server(cloud("never"), &envs, use_strace.then_some(log_off.as_path()), |_| Value::Null);
        let uri = "file:///tmp/locode-commands/net.py";
        let text = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n";
        open(&mut c, uri, text);
        let range = whole(text);
        let r = exec(&mut c, "locode.explain", json!({"uri": uri, "range": range}), None);
        assert!(r.get("result").is_some(), "{r}");
        // A local refactor (applied or not: either way it stays local).
        let _ = exec(&mut c, "locode.refactor", json!({"uri": uri, "range": range, "instruction": "Add type hints"}), None);
        let r = exec(&mut c, "locode.refactorCloud", json!({"uri": uri, "range": range, "action": "simplify"}), None);
        assert!(r["error"]["message"].as_str().unwrap().contains("cloud escalation is off"), "{r}");
        let p = exec(&mut c, "locode.previewCloud", json!({"uri": uri, "range": range, "action": "simplify"}), None);
        assert_eq!(p["result"]["enabled"], false, "{p}");
        assert!(p["result"]["bytes"].as_u64().unwrap() > 100, "{p}");
        // Completions never escalate either.
        let _ = c.request(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": uri}, "position": {"line": 1, "character": 11}, "context": {"triggerKind": 2}}),
        );
        c.shutdown();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter.accepts.load(Ordering::SeqCst), 0, "a connection reached the cloud endpoint with escalation off");
    assert!(!audit.exists(), "nothing was sent, so nothing was audited");
    if use_strace {
        let connects = inet_connects(&log_off);
        println!(
            "escalation off: {} inet connect() calls, {} accepted connections",
            connects.len(),
            counter.accepts.load(Ordering::SeqCst)
        );
        assert!(connects.is_empty(), "network connections with escalation off:\n{}", connects.join("\n"));
    }

    // The control: the same set-up with escalation on does connect, so both
    // counters can see a connection.
    let log_on = tmp.path().join("strace-on.txt");
    {
        let (mut c, _) = server(cloud("onValidationFailure"), &envs, use_strace.then_some(log_on.as_path()), |_| Value::Null);
        let uri = "file:///tmp/locode-commands/net.py";
        open(&mut c, uri, "def add(a, b):\n    return a + b\n");
        let r = exec(&mut c, "locode.refactorCloud", json!({"uri": uri, "range": whole("a\nb\n"), "action": "simplify"}), None);
        assert!(r["error"]["message"].as_str().unwrap().contains("the cloud model failed"), "{r}");
        c.shutdown();
    }
    assert!(counter.accepts.load(Ordering::SeqCst) >= 1, "the control request did not reach the listener");
    if use_strace {
        assert!(!inet_connects(&log_on).is_empty(), "strace saw no connect() in the control run");
    }
    assert_eq!(std::fs::read_to_string(&audit).unwrap().lines().count(), 1, "the control send was audited");
}

#[test]
fn broken_cloud_refactor_is_never_applied_and_everything_is_audited() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("state").join("audit.jsonl");
    // An OpenAI-compatible cloud that always answers with code that does not parse.
    let srv = loopback(|_, _| {
        json_reply(
            200,
            json!({"choices": [{"index": 0, "message": {"role": "assistant",
            "content": "```python\ndef load(url:\n    return requests.get(url, headers={\"Authorization\": API_TOKEN}\n```"}}]}),
        )
    });
    let key = "sk-test-9c1f0d2e7b6a5948372615aa";
    let options = json!({"cloud": {"route": "onValidationFailure", "provider": "openai", "endpoint": format!("{}/v1", srv.url),
                                   "model": "gpt-test", "apiKeyEnv": "LOCODE_TEST_CLOUD_KEY", "auditLog": audit, "stream": false}});
    let (mut c, seen) = server(options, &[("LOCODE_TEST_CLOUD_KEY", key)], None, |m| {
        if m["method"] == "workspace/applyEdit" {
            json!({"applied": true})
        } else {
            Value::Null
        }
    });
    let secret = "ghp_Zq8vN3xT1mK7pL0aR5sW2yB9cD4eF6gH1jK3";
    let text = format!("import requests\n\nAPI_TOKEN = \"{secret}\"\n\n\ndef load(url):\n    return requests.get(url, headers={{\"Authorization\": API_TOKEN}}).json()\n");
    let uri = "file:///tmp/locode-commands/client.py";
    open(&mut c, uri, &text);
    let range = whole(&text);

    // Cloud actions are offered now, next to the local ones.
    let actions =
        c.request("textDocument/codeAction", json!({"textDocument": {"uri": uri}, "range": range, "context": {"diagnostics": []}}));
    let titles: Vec<String> = actions.as_array().unwrap().iter().map(|a| a["title"].as_str().unwrap().to_string()).collect();
    assert!(titles.iter().any(|t| t == "locode: Simplify with cloud (openai)"), "{titles:?}");
    assert!(titles.iter().any(|t| t.starts_with("locode: Preview what would be sent")), "{titles:?}");

    // The preview: redacted, no key, sends nothing.
    let p = exec(&mut c, "locode.previewCloud", json!({"uri": uri, "range": range, "action": "simplify"}), None)["result"].clone();
    let preview_body = p["body"].to_string();
    assert!(!preview_body.contains(secret), "the preview shows the secret: {preview_body}");
    assert!(preview_body.contains("REDACTED_GITHUB_TOKEN_1"), "{preview_body}");
    assert!(!p.to_string().contains(key), "the preview shows the API key");
    assert_eq!(p["headers"]["authorization"], "Bearer <$LOCODE_TEST_CLOUD_KEY>");
    assert!(srv.requests().is_empty(), "the preview sent something");

    let r = exec(&mut c, "locode.refactorCloud", json!({"uri": uri, "range": range, "action": "simplify"}), Some("cloud-1"));
    let msg = r["error"]["message"].as_str().unwrap_or_else(|| panic!("a broken refactor was accepted: {r}"));
    assert!(msg.contains("not applied") && msg.contains("does not parse as python"), "{msg}");
    assert!(!seen.lock().unwrap().iter().any(|m| m["method"] == "workspace/applyEdit"), "a broken edit was sent to the client");
    assert_eq!(doc_text(&mut c, uri), text, "the document changed");
    let shown = c.await_notification(Duration::from_secs(10), |m| {
        m["method"] == "window/showMessage" && m["params"]["message"].as_str().is_some_and(|s| s.contains("not applied"))
    });
    assert!(shown, "{:?}", c.notifications("window/showMessage"));

    // One retry, and what left the machine: redacted, with the key only in the header.
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2, "expected the first try and one retry");
    for q in &reqs {
        let raw = String::from_utf8_lossy(&q.raw);
        assert!(!raw.contains(secret), "the secret left the machine");
        assert!(raw.contains("REDACTED_GITHUB_TOKEN_1"));
        assert!(!raw.contains(key));
        assert_eq!(q.headers["authorization"], format!("Bearer {key}"));
        assert_eq!(q.path, "/v1/chat/completions");
        assert_eq!(q.body["model"], "gpt-test");
    }
    assert_eq!(reqs[1].body["messages"].as_array().unwrap().len(), 4, "the retry carries the failed answer and the error");
    assert!(reqs[1].body["messages"][3]["content"].as_str().unwrap().contains("does not parse"));

    // The audit log: one record per request, sha256 of exactly the bytes sent,
    // never the key, mode 0600; the preview's hash is the first request's.
    let log = std::fs::read_to_string(&audit).unwrap();
    let records: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2);
    for (rec, q) in records.iter().zip(&reqs) {
        assert_eq!(rec["sha256"], locode::commands::audit::sha256_hex(&q.raw));
        assert_eq!(rec["bytes"], q.raw.len());
        assert_eq!(rec["provider"], "openai");
        assert_eq!(rec["endpoint"], format!("{}/v1/chat/completions", srv.url));
        assert_eq!(rec["redactions"]["github-token"], 1);
        assert!(rec["time"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(p["sha256"], records[0]["sha256"], "the preview is exactly what was sent");
    assert!(!log.contains(key), "the audit log contains the key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&audit).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // Secret files are refused before anything is sent.
    let suri = "file:///tmp/locode-commands/secrets.py";
    open(&mut c, suri, "DB = 'x'\n\n\ndef f():\n    return DB\n");
    let r = exec(&mut c, "locode.refactorCloud", json!({"uri": suri, "range": whole("a\nb\nc\nd\ne\n"), "action": "simplify"}), None);
    assert!(r["error"]["message"].as_str().unwrap().contains("secret-file pattern"), "{r}");
    assert_eq!(srv.requests().len(), 2, "a secret file was sent");
    assert_eq!(std::fs::read_to_string(&audit).unwrap().lines().count(), 2);
    c.shutdown();
}

#[test]
fn cloud_refactor_that_parses_is_applied_with_secrets_restored() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    // An Anthropic-style cloud, streaming, that echoes the redacted constant back.
    let srv = loopback(|q, _| {
        let user = q.body["messages"][0]["content"].as_str().unwrap_or("");
        let placeholder = user.split(['"', '\'']).find(|s| s.starts_with("REDACTED_")).unwrap_or("MISSING").to_string();
        let code = format!("```python\nAPI_TOKEN = \"{placeholder}\"\n\n\ndef auth_headers():\n    return {{\"Authorization\": f\"token {{API_TOKEN}}\"}}\n```");
        let ev = |v: Value| format!("event: x\ndata: {v}\n\n");
        sse_reply(&[
            ev(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": code}})),
            ev(json!({"type": "message_stop"})),
        ])
    });
    let options = json!({"cloud": {"route": "ask", "provider": "anthropic", "endpoint": srv.url, "model": "claude-test",
                                   "apiKeyEnv": "LOCODE_TEST_ANTHROPIC", "auditLog": tmp.path().join("a.jsonl")}});
    let (mut c, seen) = server(options, &[("LOCODE_TEST_ANTHROPIC", "anthropic-test-key")], None, |m| match m["method"].as_str() {
        Some("workspace/applyEdit") => json!({"applied": true}),
        // route = ask: the user agrees to send.
        Some("window/showMessageRequest") => json!({"title": "Send"}),
        _ => Value::Null,
    });
    let secret = "ghp_Zq8vN3xT1mK7pL0aR5sW2yB9cD4eF6gH1jK3";
    let text = format!("API_TOKEN = \"{secret}\"\n\n\ndef auth_headers():\n    headers = {{}}\n    headers[\"Authorization\"] = \"token \" + API_TOKEN\n    return headers\n");
    let uri = "file:///tmp/locode-commands/auth.py";
    open(&mut c, uri, &text);
    let r = exec(&mut c, "locode.refactorCloud", json!({"uri": uri, "range": whole(&text), "action": "simplify"}), None);
    let result = r.get("result").unwrap_or_else(|| panic!("cloud refactor failed: {r}"));
    assert_eq!(result["source"], "cloud");
    let asked = seen.lock().unwrap().iter().find(|m| m["method"] == "window/showMessageRequest").cloned().expect("route ask asks first");
    assert!(asked["params"]["message"].as_str().unwrap().contains("secret(s) redacted"), "{asked}");
    let q = &srv.requests()[0];
    assert_eq!(q.headers["x-api-key"], "anthropic-test-key");
    assert!(!String::from_utf8_lossy(&q.raw).contains(secret));
    let edit = seen.lock().unwrap().iter().find(|m| m["method"] == "workspace/applyEdit").cloned().unwrap();
    let new_text = edit["params"]["edit"]["changes"][uri][0]["newText"].as_str().unwrap().to_string();
    assert!(new_text.contains(secret), "the secret was not restored locally: {new_text}");
    assert!(!new_text.contains("REDACTED_"), "{new_text}");

    // Declining sends nothing.
    let before = srv.requests().len();
    drop(c);
    let options = json!({"cloud": {"route": "ask", "provider": "anthropic", "endpoint": srv.url, "model": "claude-test",
                                   "apiKeyEnv": "LOCODE_TEST_ANTHROPIC", "auditLog": tmp.path().join("a.jsonl")}});
    let (mut c, _) = server(options, &[("LOCODE_TEST_ANTHROPIC", "anthropic-test-key")], None, |m| match m["method"].as_str() {
        Some("window/showMessageRequest") => json!({"title": "Cancel"}),
        _ => Value::Null,
    });
    open(&mut c, uri, &text);
    let r = exec(&mut c, "locode.refactorCloud", json!({"uri": uri, "range": whole(&text), "action": "simplify"}), None);
    assert!(r["error"]["message"].as_str().unwrap().contains("declined"), "{r}");
    assert_eq!(srv.requests().len(), before);
    c.shutdown();
}

#[test]
fn completion_engine_switches_between_remote_and_embedded_over_lsp() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let srv = streamer(1, "a + b", 1);
    let options = json!({"completionEngine": {"kind": "llamaServer", "endpoint": srv.url, "timeoutMs": 5000}});
    let (mut c, _) = server(options, &[], None, |_| Value::Null);
    let st = c.request("locode/status", json!(null));
    assert_eq!(st["model"]["path"], format!("{}/completion", srv.url), "{st}");
    let uri = "file:///tmp/locode-remote/add.py";
    open(&mut c, uri, ADD);
    let ask = |c: &mut LspClient| {
        let params = json!({"textDocument": {"uri": uri}, "position": {"line": 1, "character": 11}, "context": {"triggerKind": 1}});
        let r = c.request("textDocument/inlineCompletion", params);
        let items = if r.is_array() { r } else { r["items"].clone() };
        items[0]["insertText"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(ask(&mut c), "a + b");
    let bodies = srv.bodies.lock().unwrap().clone();
    let last = bodies.last().unwrap();
    raw_prompt(last);
    assert_eq!((last["cache_prompt"].clone(), last["id_slot"].clone()), (json!(true), json!(0)));

    // Back to the embedded model: the server is asked nothing more.
    c.notify("workspace/didChangeConfiguration", json!({"settings": {"completionEngine": {"kind": "embedded"}}}));
    let t0 = Instant::now();
    loop {
        let st = c.request("locode/status", json!(null));
        if st["state"] == "ready" && st["model"]["path"].as_str().is_some_and(|p| p.ends_with(".gguf")) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "still not embedded: {st}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let n = srv.bodies.lock().unwrap().len();
    ask(&mut c);
    assert_eq!(srv.bodies.lock().unwrap().len(), n, "the embedded engine answered");
    c.shutdown();
}
