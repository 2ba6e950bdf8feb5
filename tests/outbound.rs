//! The outbound policy end to end: what a remote completion engine and the
//! cloud path may receive, over the `locode` binary and in-process, against
//! fake servers on 127.0.0.1.
//!
//! None of these tests loads the model: the servers run with `LOCODE_MODEL`
//! pointing at a file that does not exist, so completions come from the
//! remote engine alone.

#[path = "common/fake_http.rs"]
mod fake_http;
#[path = "common/lsp_client.rs"]
mod lsp_client;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_http::{counting_listener, json_reply, loopback, loopback_tls, test_ca, Loopback, Recorded, Reply, TestCa};
use locode::commands::cloud::{self, CloudConfig, Provider};
use locode::config::{RemoteEngineConfig, RemoteKind};
use locode::engine::{CancelToken, CompletionJob, Engine, EngineError};
use locode::net::NetError;
use locode::prompt::{ChatMessage, Piece};
use lsp_client::{bin, LspClient};
use serde_json::{json, Value};

const NO_MODEL: &str = "/nonexistent/locode-outbound-test-no-model.gguf";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A fake llama-server: `/props` with two slots, and `/completion`
/// answering (not streamed) with `content(request)`.
fn fake_llama_server(content: impl Fn(&Recorded) -> String + Send + Sync + 'static) -> Loopback {
    loopback(move |r, _| match r.path.as_str() {
        "/props" => json_reply(200, json!({"total_slots": 2, "default_generation_settings": {"n_ctx": 4096}})),
        _ => json_reply(200, json!({"content": content(r), "stop": true, "stop_type": "eos"})),
    })
}

fn completions(srv: &Loopback) -> Vec<Recorded> {
    srv.requests().into_iter().filter(|r| r.path.ends_with("/completion")).collect()
}

/// Every byte a fake server received: paths, headers and bodies, and the
/// bodies' JSON strings decoded (a value with a quote in it is escaped on
/// the wire).
fn everything(reqs: &[Recorded]) -> String {
    fn strings(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            Value::Object(o) => o.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    for r in reqs {
        out.push_str(&r.path);
        for (k, v) in &r.headers {
            out.push_str(&format!("\n{k}: {v}"));
        }
        out.push('\n');
        out.push_str(&String::from_utf8_lossy(&r.raw));
        out.push('\n');
        strings(&r.body, &mut out);
    }
    out
}

/// A `locode serve` without a model (optionally under strace), initialized
/// with `options` and `root` as its workspace.
fn server(options: Value, envs: &[(&str, &str)], root: Option<&Path>, strace_to: Option<&Path>) -> LspClient {
    let mut all: Vec<(&str, &str)> = vec![("LOCODE_MODEL", NO_MODEL)];
    all.extend_from_slice(envs);
    let null: lsp_client::Handler = Arc::new(|_: &Value| Value::Null);
    let mut c = match strace_to {
        Some(out) => {
            let args = ["-f", "-qq", "-e", "trace=connect", "-o", out.to_str().unwrap(), bin().to_str().unwrap(), "serve"];
            LspClient::spawn_with(Path::new("strace"), &args, &all, null)
        }
        None => LspClient::spawn_with(bin(), &["serve"], &all, null),
    };
    let root_uri = root.map(|r| format!("file://{}", r.display()));
    c.request("initialize", json!({"processId": null, "rootUri": root_uri, "capabilities": {}, "initializationOptions": options}));
    c.notify("initialized", json!({}));
    c
}

/// Waits for the completion engine to be set up (or refused).
fn engine_state(c: &mut LspClient) -> Value {
    let t0 = Instant::now();
    loop {
        let st = c.request("locode/status", json!(null));
        if st["state"] != "loading" || t0.elapsed() > Duration::from_secs(30) {
            return st;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn language_id(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "py" => "python",
        "rs" => "rust",
        "ts" => "typescript",
        "js" => "javascript",
        "yaml" | "yml" => "yaml",
        "sh" | "bash" => "shellscript",
        "md" => "markdown",
        "toml" => "toml",
        "json" => "json",
        _ => "plaintext",
    }
}

fn open(c: &mut LspClient, uri: &str, text: &str) {
    c.notify("textDocument/didOpen", json!({"textDocument": {"uri": uri, "languageId": language_id(uri), "version": 1, "text": text}}));
}

/// An explicitly invoked inline completion at (line, UTF-16 column).
fn complete_at(c: &mut LspClient, uri: &str, line: u32, col: u32) -> String {
    let params = json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": col}, "context": {"triggerKind": 1}});
    let r = c.request("textDocument/inlineCompletion", params);
    let items = if r.is_array() { r } else { r["items"].clone() };
    items[0]["insertText"].as_str().unwrap_or_default().to_string()
}

fn shown_messages(c: &mut LspClient) -> Vec<String> {
    c.notifications("window/showMessage").iter().map(|m| m["params"]["message"].as_str().unwrap_or_default().to_string()).collect()
}

/// strace, which the no-connect tests need (`make test` installs it).
fn require_strace() {
    let ok = std::process::Command::new("strace").args(["-qq", "-e", "trace=connect", "true"]).output().is_ok_and(|o| o.status.success());
    assert!(ok, "strace is needed to count connect() calls and does not work here: install it (`make test-deps`) or allow ptrace");
}

/// connect() calls to AF_INET/AF_INET6 addresses in an strace log.
fn inet_connects(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("connect(") && l.contains("AF_INET"))
        .map(str::to_string)
        .collect()
}

// ------------------------------------------------- consent, no connect()

#[test]
fn a_remote_engine_off_this_machine_without_consent_sends_nothing_and_says_why() {
    require_strace();
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (json!({"kind": "llamaServer", "endpoint": "https://gpu-box.example:8080"}), "completionEngine.allowRemote"),
        (
            json!({"kind": "ollama", "model": "m", "endpoint": "http://gpu-box.example:11434", "allowRemote": true}),
            "completionEngine.allowInsecure",
        ),
    ];
    for (i, (engine, setting)) in cases.into_iter().enumerate() {
        let log = tmp.path().join(format!("strace-{i}.txt"));
        let mut c = server(json!({"completionEngine": engine}), &[], None, Some(&log));
        let st = engine_state(&mut c);
        assert_eq!(st["state"], "failed", "{st}");
        let error = st["error"].as_str().unwrap().to_string();
        assert!(error.contains("nothing is sent to gpu-box.example") && error.contains(setting), "{error}");
        let uri = "file:///tmp/locode-outbound/main.py";
        open(&mut c, uri, "API_TOKEN = 'x'\ndef f():\n    return ");
        assert_eq!(complete_at(&mut c, uri, 2, 11), "");
        assert!(c.await_notification(Duration::from_secs(10), |m| m["method"] == "window/showMessage"
            && m["params"]["message"].as_str().is_some_and(|t| t.contains(setting))));
        c.shutdown();
        let connects = inet_connects(&log);
        println!("{setting}: {} inet connect() calls", connects.len());
        assert!(connects.is_empty(), "connect() with no consent:\n{}", connects.join("\n"));
        // The strace log is real: it has the process's other calls filtered out, but exists.
        assert!(log.exists());
    }
    // `locode doctor` says the same, and fails.
    let settings = tmp.path().join("settings.json");
    std::fs::write(&settings, json!({"completionEngine": {"kind": "llamaServer", "endpoint": "https://gpu-box.example"}}).to_string())
        .unwrap();
    let out = std::process::Command::new(bin())
        .args(["doctor", "--settings", settings.to_str().unwrap()])
        .env("LOCODE_MODEL", NO_MODEL)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("completions:    PROBLEM: nothing is sent to gpu-box.example"), "{stdout}");
    println!("consent test: {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn misspelt_settings_are_shown_and_turn_everything_outbound_off() {
    let srv = fake_llama_server(|_| "x".into());
    let engine = json!({"kind": "llamaServer", "endpoint": srv.url, "stream": false});
    let mut c = server(json!({"completionEngine": engine}), &[], None, None);
    assert_eq!(engine_state(&mut c)["state"], "ready");
    let uri = "file:///tmp/locode-outbound/typo.py";
    open(&mut c, uri, "def f():\n    return ");
    assert_eq!(complete_at(&mut c, uri, 1, 11), "x");
    let before = completions(&srv).len();
    // A typo under `completionEngine`: an error naming it, and nothing more is sent.
    let typo = json!({"completionEngine": {"kind": "llamaServer", "endpiont": srv.url}});
    c.notify("workspace/didChangeConfiguration", json!({"settings": typo}));
    assert!(c.await_notification(Duration::from_secs(10), |m| m["method"] == "window/showMessage"
        && m["params"]["message"]
            .as_str()
            .is_some_and(|t| t.contains("completionEngine.endpiont is not a setting (did you mean completionEngine.endpoint?)")
                && t.contains("nothing leaves this machine"))));
    std::thread::sleep(Duration::from_millis(300));
    let _ = complete_at(&mut c, uri, 1, 11);
    assert_eq!(completions(&srv).len(), before, "a request was sent while the settings were invalid");
    c.shutdown();
    // doctor too.
    let tmp = tempfile::tempdir().unwrap();
    let settings = tmp.path().join("settings.json");
    std::fs::write(&settings, json!({"cloud": {"route": "ask", "endpoitn": "https://gw.internal"}}).to_string()).unwrap();
    let out = std::process::Command::new(bin()).args(["doctor", "--settings", settings.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("cloud.endpoitn is not a setting (did you mean cloud.endpoint?)"), "{stdout}");
}

// ------------------------------------------- redaction and secret files

#[test]
fn prompts_are_redacted_per_document_and_restored_and_secret_files_get_nothing() {
    let t0 = Instant::now();
    // The fake answers with the first placeholder it was sent, as a model
    // that copies a value from the context would.
    let srv = fake_llama_server(|r| {
        let p = r.body["prompt"].as_str().unwrap_or_default();
        let re = regex::Regex::new(r"REDACTED_[A-Z0-9_]+_[0-9]+_[a-z0-9]+").unwrap();
        re.find(p).map(|m| format!("\"{}\"", m.as_str())).unwrap_or_else(|| "None".into())
    });
    let engine = json!({"kind": "llamaServer", "endpoint": srv.url, "stream": false});
    let mut c = server(json!({"completionEngine": engine}), &[], None, None);
    assert_eq!(engine_state(&mut c)["state"], "ready");
    let secret = "ghp_R8mKq2VxT5nL9wJc3HfY7bPz4sDg6uNa1eQo";
    let uri = "file:///tmp/locode-outbound/client.py";
    let text = format!("GITHUB_TOKEN = \"{secret}\"\n\n\ndef token():\n    return \n\n\nprint(token())\n");
    open(&mut c, uri, &text);
    let shown = complete_at(&mut c, uri, 4, 11);
    assert!(shown.contains(secret), "the placeholder is put back in the suggestion: {shown:?}");
    // A keystroke later, the same placeholder (the server's cache prefix holds).
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
            {"range": {"start": {"line": 4, "character": 11}, "end": {"line": 4, "character": 11}}, "text": "t"}]}),
    );
    let _ = complete_at(&mut c, uri, 4, 12);
    let reqs = completions(&srv);
    assert!(reqs.len() >= 2, "{} requests", reqs.len());
    let wire = everything(&srv.requests());
    assert!(!wire.contains(secret) && !wire.contains("R8mKq2VxT5nL9wJc3HfY7bPz4sDg6uNa1eQo"), "the token reached the server");
    let prompts: Vec<String> = reqs.iter().map(|r| r.body["prompt"].as_str().unwrap().to_string()).collect();
    let line = |p: &str| p.lines().find(|l| l.contains("GITHUB_TOKEN")).unwrap().to_string();
    assert!(line(&prompts[0]).contains("REDACTED_"), "{}", prompts[0]);
    assert!(prompts.iter().all(|p| line(p) == line(&prompts[0])), "placeholders changed between keystrokes: {prompts:?}");

    // A secret file: no request at all, and a message that says why.
    let n = completions(&srv).len();
    let env_uri = "file:///tmp/locode-outbound/.env";
    open(&mut c, env_uri, "DB_PASSWORD=hunter2hunter2\nAPI_KEY=");
    assert_eq!(complete_at(&mut c, env_uri, 1, 8), "");
    assert_eq!(completions(&srv).len(), n, "a secret file's prompt was sent");
    assert!(c.await_notification(Duration::from_secs(10), |m| m["method"] == "window/showMessage"
        && m["params"]["message"].as_str().is_some_and(|t| t.contains(".env matches the secret-file pattern"))));
    // And cloud.refuseFiles counts for the remote engine too.
    let refuse = json!({"completionEngine": engine, "cloud": {"refuseFiles": ["*.secret.py"]}});
    c.notify("workspace/didChangeConfiguration", json!({"settings": refuse}));
    assert_eq!(engine_state(&mut c)["state"], "ready");
    std::thread::sleep(Duration::from_millis(200));
    let own = "file:///tmp/locode-outbound/prod.secret.py";
    open(&mut c, own, "def f():\n    return ");
    let n = completions(&srv).len();
    assert_eq!(complete_at(&mut c, own, 1, 11), "");
    assert_eq!(completions(&srv).len(), n, "a refuseFiles match was sent");
    assert!(
        c.await_notification(Duration::from_secs(10), |m| m["method"] == "window/showMessage"
            && m["params"]["message"]
                .as_str()
                .is_some_and(|t| t.contains("prod.secret.py matches the secret-file pattern \"*.secret.py\""))),
        "{:?}",
        shown_messages(&mut c)
    );
    c.shutdown();
    println!("redaction test: {:.1} s", t0.elapsed().as_secs_f64());
}

// ------------------------------------------------------------ the audit

#[test]
fn the_first_send_to_another_machine_is_audited_once() {
    // The engine is "on another machine" (gpu-box.example); an HTTP proxy on
    // 127.0.0.1 takes its requests, so nothing leaves loopback.
    let proxy = fake_llama_server(|_| "a + b".into());
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit.jsonl");
    let options = json!({
        "completionEngine": {"kind": "llamaServer", "endpoint": "http://gpu-box.example:8080", "allowRemote": true,
                             "allowInsecure": true, "stream": false},
        "cloud": {"auditLog": audit},
    });
    let envs = [("HTTP_PROXY", proxy.url.as_str()), ("http_proxy", proxy.url.as_str()), ("NO_PROXY", ""), ("no_proxy", "")];
    let mut c = server(options, &envs, None, None);
    assert_eq!(engine_state(&mut c)["state"], "ready");
    let uri = "file:///tmp/locode-outbound/add.py";
    open(&mut c, uri, "def add(a, b):\n    return \n");
    assert_eq!(complete_at(&mut c, uri, 1, 11), "a + b");
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
            {"range": {"start": {"line": 1, "character": 11}, "end": {"line": 1, "character": 11}}, "text": "x"}]}),
    );
    let _ = complete_at(&mut c, uri, 1, 12);
    c.shutdown();
    let reqs = completions(&proxy);
    assert!(reqs.len() >= 2, "{} requests", reqs.len());
    assert!(reqs.iter().all(|r| r.headers.get("host").map(String::as_str) == Some("gpu-box.example:8080")), "not through the proxy");
    let log = std::fs::read_to_string(&audit).unwrap();
    let records: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 1, "{log}");
    let r = &records[0];
    assert_eq!(r["endpoint"], "http://gpu-box.example:8080/completion");
    assert_eq!(r["provider"], "completionEngine:llamaServer");
    assert_eq!(r["file"], uri);
    assert_eq!(r["sha256"], locode::commands::audit::sha256_hex(&reqs[0].raw));
    assert_eq!(r["bytes"], reqs[0].raw.len());
}

// ------------------------------------------------------------ redirects

const KEY: &str = "test-key-must-stay-on-the-first-host-0123";

/// Sends `body` to the cloud endpoint of `cfg`, which answers `status`
/// towards `target`: the error, which must be that redirect (not followed).
fn cloud_redirect(cfg: &CloudConfig, body: &str, status: u16, target: &str) -> NetError {
    let msgs = vec![ChatMessage { role: "user".into(), content: body.into() }];
    let req = cloud::build_request(cfg, &msgs, 64).unwrap();
    let e = rt().block_on(cloud::send(&req, KEY, 3_000, &CancelToken::new(), |_| {})).unwrap_err();
    match &e {
        NetError::Redirect { status: s, location, .. } => assert_eq!((*s, location.as_str()), (status, target)),
        other => panic!("{status} {:?}: not a redirect error: {other}", cfg.provider),
    }
    e
}

/// A server that answers every request with `status` and a Location on
/// another host (`localhost` rather than `127.0.0.1`, another port).
fn redirecting(status: u16, to: &str) -> Loopback {
    let to = to.to_string();
    loopback(move |_, _| Reply {
        status,
        content_type: "text/plain",
        body: "moved".into(),
        delay_ms: 0,
        headers: vec![("location", to.clone())],
    })
}

#[test]
fn redirects_are_errors_and_nothing_reaches_the_second_host() {
    let second = loopback(|_, _| json_reply(200, json!({"choices": [{"message": {"content": "leaked"}}], "content": "leaked"})));
    let port = second.url.rsplit(':').next().unwrap().to_string();
    let target = format!("http://localhost:{port}/v1/chat/completions");
    let body = "x = 1 + 0  # the body that must not travel";
    for status in [301, 302, 307, 308] {
        // The cloud path, with the key in a header.
        for provider in [Provider::Openai, Provider::Anthropic] {
            let first = redirecting(status, &target);
            let cfg = CloudConfig {
                provider,
                endpoint: first.url.clone(),
                model: "m".into(),
                stream: false,
                timeout_ms: 3_000,
                ..Default::default()
            };
            let e = cloud_redirect(&cfg, body, status, &target);
            assert!(e.to_string().contains(&target), "{e}");
            assert_eq!(first.requests().len(), 1);
        }
        // A remote engine: the prompt in the body, a bearer token.
        let first = redirecting(status, &target);
        std::env::set_var("LOCODE_TEST_REMOTE_KEY", KEY);
        let cfg = RemoteEngineConfig {
            kind: RemoteKind::LlamaServer,
            endpoint: first.url.clone(),
            api_key_env: "LOCODE_TEST_REMOTE_KEY".into(),
            stream: status % 2 == 0,
            timeout_ms: 3_000,
            ..Default::default()
        };
        let rt = rt();
        let engine = Engine::spawn();
        rt.block_on(engine.load_remote(cfg)).unwrap();
        let job = CompletionJob::new(
            "file:///w/a.py",
            vec![Piece::Special("<|fim_prefix|>".into()), Piece::Text(body.into()), Piece::Special("<|fim_middle|>".into())],
            8,
        );
        match rt.block_on(engine.complete(job)) {
            Err(EngineError::Remote(NetError::Redirect { location, .. })) => assert_eq!(location, target),
            other => panic!("{status}: {other:?}"),
        }
        engine.shutdown();
    }
    assert!(second.requests().is_empty(), "the second host got {} requests", second.requests().len());
}

// ------------------------------------------- https -> http, and caFile

/// What a user puts in `caFile`: the CA's certificate, in a PEM file.
fn write_ca(ca: &TestCa, dir: &Path) -> PathBuf {
    let path = dir.join("corporate-ca.pem");
    std::fs::write(&path, &ca.ca_pem).unwrap();
    path
}

/// A FIM job for a remote engine, `text` as the prefix.
fn fim_job(text: &str) -> CompletionJob {
    CompletionJob::new(
        "file:///w/a.py",
        vec![Piece::Special("<|fim_prefix|>".into()), Piece::Text(text.into()), Piece::Special("<|fim_middle|>".into())],
        8,
    )
}

#[test]
fn https_redirects_to_plain_http_are_errors_and_nothing_reaches_the_http_host() {
    let ca = test_ca();
    let tmp = tempfile::tempdir().unwrap();
    let ca_path = write_ca(&ca, tmp.path());
    // The plain-http host is a bare listener: "nothing reached it" is "no connection at all".
    let http = counting_listener();
    let target = format!("http://localhost:{}/v1/chat/completions", http.port);
    let body = "x = 1 + 0  # the body that must not travel";
    let redirect = |status: u16| {
        let to = target.clone();
        move |_: &Recorded, _| Reply {
            status,
            content_type: "text/plain",
            body: "moved".into(),
            delay_ms: 0,
            headers: vec![("location", to.clone())],
        }
    };
    let mut checked = 0;
    for status in [301, 302, 307, 308] {
        // The cloud path: OpenAI's bearer and Anthropic's x-api-key.
        for provider in [Provider::Openai, Provider::Anthropic] {
            let first = loopback_tls(&ca, redirect(status));
            assert!(first.url.starts_with("https://127.0.0.1:"), "{}", first.url);
            let cfg = CloudConfig {
                provider,
                endpoint: first.url.clone(),
                model: "m".into(),
                stream: status % 2 == 0,
                timeout_ms: 3_000,
                ca_file: Some(ca_path.clone()),
                ..Default::default()
            };
            let e = cloud_redirect(&cfg, body, status, &target);
            assert!(e.to_string().contains(&target) && e.to_string().contains("not followed"), "{e}");
            // The configured https host got the request, over TLS, with its key: the test is real.
            let got = first.requests();
            assert_eq!(got.len(), 1, "{status} {provider:?}");
            let key_sent = match provider {
                Provider::Openai => got[0].headers.get("authorization") == Some(&format!("Bearer {KEY}")),
                Provider::Anthropic => got[0].headers.get("x-api-key") == Some(&KEY.to_string()),
            };
            assert!(key_sent && String::from_utf8_lossy(&got[0].raw).contains(body), "{:?}", got[0].headers);
            checked += 1;
        }
        // A remote engine: the prompt in the body, a bearer token.
        let first = loopback_tls(&ca, redirect(status));
        std::env::set_var("LOCODE_TEST_REMOTE_KEY", KEY);
        let cfg = RemoteEngineConfig {
            kind: RemoteKind::LlamaServer,
            endpoint: first.url.clone(),
            api_key_env: "LOCODE_TEST_REMOTE_KEY".into(),
            stream: status % 2 == 0,
            timeout_ms: 3_000,
            ca_file: Some(ca_path.clone()),
            ..Default::default()
        };
        let rt = rt();
        let engine = Engine::spawn();
        rt.block_on(engine.load_remote(cfg)).unwrap();
        match rt.block_on(engine.complete(fim_job(body))) {
            Err(EngineError::Remote(e @ NetError::Redirect { .. })) => assert!(e.to_string().contains(&target), "{e}"),
            other => panic!("{status}: {other:?}"),
        }
        engine.shutdown();
        let got: Vec<Recorded> = first.requests().into_iter().filter(|r| r.path == "/completion").collect();
        assert_eq!(got.len(), 1, "{status}");
        assert_eq!(got[0].headers.get("authorization"), Some(&format!("Bearer {KEY}")));
        assert!(got[0].body["prompt"].as_str().unwrap().contains(body));
        checked += 1;
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(http.accepts.load(std::sync::atomic::Ordering::SeqCst), 0, "the plain-http host was connected to");
    println!("https -> http: {checked} redirects refused, 0 connections to the http host");
}

#[test]
fn an_https_endpoint_signed_by_an_unknown_ca_gets_no_request() {
    let ca = test_ca();
    let srv = loopback_tls(&ca, |_, _| json_reply(200, json!({"choices": [{"message": {"content": "x"}}]})));
    let cfg = CloudConfig { endpoint: srv.url.clone(), model: "m".into(), stream: false, timeout_ms: 3_000, ..Default::default() };
    let msgs = vec![ChatMessage { role: "user".into(), content: "x = 1".into() }];
    let req = cloud::build_request(&cfg, &msgs, 64).unwrap();
    let e = rt().block_on(cloud::send(&req, KEY, 3_000, &CancelToken::new(), |_| {})).unwrap_err();
    assert!(matches!(&e, NetError::Connect { reason, .. } if reason.contains("certificate")), "{e}");
    assert!(srv.requests().is_empty());
    // With the CA in cloud.caFile, the same endpoint answers.
    let tmp = tempfile::tempdir().unwrap();
    let req = cloud::build_request(&CloudConfig { ca_file: Some(write_ca(&ca, tmp.path())), ..cfg }, &msgs, 64).unwrap();
    assert_eq!(rt().block_on(cloud::send(&req, KEY, 3_000, &CancelToken::new(), |_| {})).unwrap(), "x");
}

#[test]
fn a_redirect_from_an_https_engine_is_shown_to_the_user_with_its_target() {
    let ca = test_ca();
    let tmp = tempfile::tempdir().unwrap();
    let http = counting_listener();
    let target = format!("http://localhost:{}/completion", http.port);
    let to = target.clone();
    let srv = loopback_tls(&ca, move |r, _| match r.path.as_str() {
        "/props" => json_reply(200, json!({"total_slots": 1, "default_generation_settings": {"n_ctx": 4096}})),
        _ => Reply { status: 308, content_type: "text/plain", body: String::new(), delay_ms: 0, headers: vec![("location", to.clone())] },
    });
    let engine = json!({"kind": "llamaServer", "endpoint": srv.url, "stream": false, "apiKeyEnv": "LOCODE_TEST_ENGINE_KEY",
                        "caFile": write_ca(&ca, tmp.path())});
    let mut c = server(json!({"completionEngine": engine}), &[("LOCODE_TEST_ENGINE_KEY", KEY)], None, None);
    assert_eq!(engine_state(&mut c)["state"], "ready");
    let uri = "file:///tmp/locode-outbound/moved.py";
    open(&mut c, uri, "def f():\n    return ");
    assert_eq!(complete_at(&mut c, uri, 1, 11), "");
    assert!(
        c.await_notification(Duration::from_secs(10), |m| m["method"] == "window/showMessage"
            && m["params"]["message"].as_str().is_some_and(|t| t.contains(&target) && t.contains("redirect"))),
        "{:?}",
        shown_messages(&mut c)
    );
    c.shutdown();
    assert_eq!(completions(&srv).len(), 1);
    assert_eq!(http.accepts.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn an_unusable_ca_file_is_a_settings_error_and_nothing_is_sent() {
    let srv = fake_llama_server(|_| "x".into());
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n").unwrap();
    let cases = [
        (tmp.path().join("missing.pem"), "cannot read it"),
        (tmp.path().to_path_buf(), "cannot read it"),
        (garbage, "not a valid CA certificate"),
        (PathBuf::from("certs/ca.pem"), "absolute path"),
    ];
    let engine = json!({"kind": "llamaServer", "endpoint": srv.url, "stream": false});
    let mut c = server(json!({"completionEngine": engine}), &[], None, None);
    assert_eq!(engine_state(&mut c)["state"], "ready");
    let uri = "file:///tmp/locode-outbound/ca.py";
    open(&mut c, uri, "def f():\n    return ");
    assert_eq!(complete_at(&mut c, uri, 1, 11), "x");
    let before = completions(&srv).len();
    for (path, why) in &cases {
        let bad = json!({"completionEngine": {"kind": "llamaServer", "endpoint": srv.url, "stream": false, "caFile": path}});
        c.notify("workspace/didChangeConfiguration", json!({"settings": bad}));
        let shown = format!("completionEngine.caFile {}: ", path.display());
        assert!(
            c.await_notification(Duration::from_secs(10), |m| m["method"] == "window/showMessage"
                && m["params"]["message"]
                    .as_str()
                    .is_some_and(|t| t.contains(&shown) && t.contains(why) && t.contains("nothing leaves this machine"))),
            "{why}: {:?}",
            shown_messages(&mut c)
        );
        std::thread::sleep(Duration::from_millis(200));
        let _ = complete_at(&mut c, uri, 1, 11);
        assert_eq!(completions(&srv).len(), before, "sent with a bad caFile ({why})");
    }
    c.shutdown();
    // doctor says it for the cloud too.
    let settings = tmp.path().join("settings.json");
    let cloud = json!({"cloud": {"route": "ask", "endpoint": "https://gw.internal", "model": "m", "caFile": tmp.path().join("nope.pem")}});
    std::fs::write(&settings, cloud.to_string()).unwrap();
    let out = std::process::Command::new(bin()).args(["doctor", "--settings", settings.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("settings:       PROBLEM: invalid locode settings: cloud.caFile ") && stdout.contains("cannot read it"),
        "{stdout}"
    );
    assert!(stdout.contains("nothing is sent while the settings are invalid"), "{stdout}");
}

// ---------------------------------------------- a cursor inside a secret

#[test]
fn a_cursor_inside_a_secret_sends_neither_half() {
    let srv = fake_llama_server(|_| String::new());
    let engine = json!({"kind": "llamaServer", "endpoint": srv.url, "stream": false});
    let mut c = server(json!({"completionEngine": engine}), &[], None, None);
    assert_eq!(engine_state(&mut c)["state"], "ready");
    // (line, value): a format, a quoted password, an unquoted .env-style value, a random token.
    let lines = [
        "GITHUB_TOKEN = \"ghp_R8mKq2VxT5nL9wJc3HfY7bPz4sDg6uNa1eQo\"",
        "db_password = \"Winter.abcd.Coming42\"",
        "SMTP_PASS=abc123xyz789",
        "session = Client(\"q7Vx2LmN9pR4tZ8wK3jH6bYc\")",
    ];
    let values = ["ghp_R8mKq2VxT5nL9wJc3HfY7bPz4sDg6uNa1eQo", "Winter.abcd.Coming42", "abc123xyz789", "q7Vx2LmN9pR4tZ8wK3jH6bYc"];
    let text = format!("import os\n\n{}\n\n\ndef main():\n    pass\n", lines.join("\n"));
    let uri = "file:///tmp/locode-outbound/cut.py";
    open(&mut c, uri, &text);
    let mut cuts = 0;
    for (i, (line, value)) in lines.iter().zip(values).enumerate() {
        let start = line.find(value).unwrap();
        // Right after the opening quote, in the middle, one before the end.
        for cut in [0, value.len() / 2, value.len() - 1] {
            let col = (start + cut) as u32;
            let n = completions(&srv).len();
            let _ = complete_at(&mut c, uri, 2 + i as u32, col);
            assert!(completions(&srv).len() > n, "no request at {line:?} col {col}");
            let wire = everything(&completions(&srv)[n..]);
            let (left, right) = value.split_at(cut);
            for half in [left, right].into_iter().filter(|h| h.len() >= 3) {
                assert!(!wire.contains(half), "{half:?} of {value:?} (cursor at {col}) reached the engine:\n{wire}");
            }
            cuts += 1;
        }
    }
    // Typing inside the secret: the typed text is the prompt's middle.
    let (line, col) = (2u32, lines[0].find("T5nL").unwrap() as u32);
    for (k, ch) in "Zq".chars().enumerate() {
        let at = col + k as u32;
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2 + k}, "contentChanges": [
                {"range": {"start": {"line": line, "character": at}, "end": {"line": line, "character": at}}, "text": ch.to_string()}]}),
        );
        let _ = complete_at(&mut c, uri, line, at + 1);
        cuts += 1;
    }
    let wire = everything(&srv.requests());
    for half in ["ghp_R8mKq2Vx", "T5nL9wJc3HfY7bPz4sDg6uNa1eQo", "ghp_R8mKq2VxZ", "ZqT5nL9wJc"] {
        assert!(!wire.contains(half), "{half:?} reached the engine after typing inside the secret");
    }
    c.shutdown();
    println!("cursor inside a secret: {cuts} cursors, {} requests, no half sent", completions(&srv).len());
}

// ------------------------------------------------------ planted secrets

fn planted_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/planted")
}

/// The fixtures (`NAME.EXT`, each with `NAME.EXT.secrets`).
fn planted() -> Vec<(PathBuf, Vec<String>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(planted_dir()).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "secrets") || !path.is_file() {
            continue;
        }
        let sidecar = PathBuf::from(format!("{}.secrets", path.display()));
        let Ok(list) = std::fs::read_to_string(&sidecar) else { continue };
        let secrets: Vec<String> = list.lines().map(|l| l.trim_end_matches('\r').to_string()).filter(|l| !l.trim().is_empty()).collect();
        out.push((path, secrets));
    }
    out.sort();
    out
}

/// Cursors at the start of a few lines and at the very end: places that
/// cut no token in two.
fn cursors(text: &str) -> Vec<(u32, u32)> {
    let lines: Vec<&str> = text.split('\n').collect();
    let n = lines.len();
    let mut out: Vec<(u32, u32)> = [0, n / 3, 2 * n / 3].iter().map(|&l| (l as u32, 0)).collect();
    let last = n - 1;
    out.push((last as u32, lines[last].encode_utf16().count() as u32));
    out.dedup();
    out
}

/// A cursor in the middle of each secret of 12 characters or more (its
/// first occurrence), with the two halves it cuts it into.
fn cursors_inside(text: &str, secrets: &[String]) -> Vec<(u32, u32, String, String)> {
    let mut out = Vec::new();
    for s in secrets.iter().filter(|s| s.chars().count() >= 12 && !s.contains('\n')) {
        let Some(at) = text.find(s.as_str()) else { continue };
        let half = s.char_indices().nth(s.chars().count() / 2).unwrap().0;
        let cut = at + half;
        let line_start = text[..cut].rfind('\n').map_or(0, |i| i + 1);
        let line = text[..line_start].matches('\n').count() as u32;
        let col = text[line_start..cut].encode_utf16().count() as u32;
        out.push((line, col, s[..half].to_string(), s[half..].to_string()));
    }
    out
}

#[test]
fn planted_secrets_never_reach_a_remote_engine() {
    let t0 = Instant::now();
    let fixtures = planted();
    assert!(fixtures.len() >= 2, "no planted fixtures under {}", planted_dir().display());
    let srv = fake_llama_server(|_| String::new());
    let engine = json!({"kind": "llamaServer", "endpoint": srv.url, "stream": false});
    let root = planted_dir().canonicalize().unwrap();
    let mut c = server(json!({"completionEngine": engine}), &[], Some(&root), None);
    assert_eq!(engine_state(&mut c)["state"], "ready");
    let mut secrets_checked = 0;
    let mut requests_made = 0;
    let mut cut_secrets = 0;
    for (path, secrets) in &fixtures {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for s in secrets {
            assert!(text.contains(s.as_str()), "{name}: the planted value {s:?} is not in the fixture");
        }
        let uri = format!("file://{}", root.join(&name).display());
        open(&mut c, &uri, &text);
        let before = srv.requests().len();
        let n = completions(&srv).len();
        for (line, col) in cursors(&text) {
            let _ = complete_at(&mut c, &uri, line, col);
        }
        // And with the cursor inside each secret: neither half may be sent.
        for (line, col, left, right) in cursors_inside(&text, secrets) {
            let m = srv.requests().len();
            let _ = complete_at(&mut c, &uri, line, col);
            let wire = everything(&srv.requests()[m..]);
            for half in [&left, &right] {
                assert!(
                    !wire.contains(half.as_str()),
                    "{name}: {half:?}, half of {left}{right} cut by the cursor, reached the remote engine"
                );
            }
            cut_secrets += 1;
        }
        let sent = completions(&srv).len() - n;
        if locode::outbound::refused_file(&uri, &[]).is_some() {
            assert_eq!(sent, 0, "{name} is a secret file, yet {sent} requests were sent");
        } else {
            assert!(sent > 0, "{name}: no completion request reached the fake server, so nothing was checked");
        }
        requests_made += sent;
        let wire = everything(&srv.requests()[before..]);
        for s in secrets {
            assert!(!wire.contains(s.as_str()), "{name}: the planted value {s:?} reached the remote engine");
            secrets_checked += 1;
        }
        c.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}}));
    }
    // And all of them, against everything sent in the session (cross-file context included).
    let wire = everything(&srv.requests());
    for (path, secrets) in &fixtures {
        for s in secrets {
            assert!(!wire.contains(s.as_str()), "{}: {s:?} reached the remote engine", path.display());
        }
    }
    c.shutdown();
    println!(
        "planted: {} fixtures, {secrets_checked} values, {cut_secrets} cut by the cursor, {requests_made} completion requests, none leaked ({:.1} s)",
        fixtures.len(),
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn planted_secrets_never_reach_the_cloud_nor_its_preview() {
    let t0 = Instant::now();
    let fixtures = planted();
    assert!(fixtures.len() >= 2, "no planted fixtures under {}", planted_dir().display());
    // A cloud whose answers never parse: every refactor is sent twice (the retry).
    let cloud = loopback(|_, _| json_reply(200, json!({"choices": [{"message": {"content": "```\ndef broken(:\n```"}}]})));
    let tmp = tempfile::tempdir().unwrap();
    let options = json!({"cloud": {"route": "onValidationFailure", "provider": "openai", "endpoint": cloud.url, "model": "m",
                                   "apiKeyEnv": "LOCODE_TEST_CLOUD_KEY", "stream": false, "auditLog": tmp.path().join("audit.jsonl")}});
    let root = planted_dir().canonicalize().unwrap();
    let mut c = server(options, &[("LOCODE_TEST_CLOUD_KEY", "sk-test-planted-cloud-key")], Some(&root), None);
    let (mut previews, mut sent) = (0, 0);
    for (path, secrets) in &fixtures {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let uri = format!("file://{}", root.join(&name).display());
        open(&mut c, &uri, &text);
        let (last, end) = cursors(&text).pop().unwrap();
        let whole = json!({"start": {"line": 0, "character": 0}, "end": {"line": last, "character": end}});
        let args = json!({"uri": uri, "range": whole, "action": "simplify"});
        let before = cloud.requests().len();
        let id = c.send_request("workspace/executeCommand", json!({"command": "locode.previewCloud", "arguments": [args]}));
        let preview = c.response(id, Duration::from_secs(30));
        let id = c.send_request("workspace/executeCommand", json!({"command": "locode.refactorCloud", "arguments": [args]}));
        let refactor = c.response(id, Duration::from_secs(60));
        assert!(refactor.get("error").is_some(), "{name}: an unparseable answer was applied: {refactor}");
        let reqs = cloud.requests()[before..].to_vec();
        if preview.get("result").is_some() {
            previews += 1;
        }
        sent += reqs.len();
        if name.ends_with(".py") || name.ends_with(".rs") {
            assert_eq!(reqs.len(), 2, "{name}: the request and its retry: {refactor}");
        }
        let wire = everything(&reqs) + &preview.to_string() + &refactor.to_string();
        for s in secrets {
            let escaped = serde_json::to_string(s).unwrap();
            let escaped = escaped.trim_matches('"');
            assert!(!wire.contains(s.as_str()) && !wire.contains(escaped), "{name}: the planted value {s:?} left through the cloud path");
        }
        c.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}}));
    }
    c.shutdown();
    println!(
        "planted (cloud): {} fixtures, {previews} previews, {sent} cloud requests, none leaked ({:.1} s)",
        fixtures.len(),
        t0.elapsed().as_secs_f64()
    );
}
