//! Planted secrets: files in Python, Rust, TypeScript, YAML, shell and
//! Markdown under tests/data/planted/, each `NAME.EXT` with a sidecar
//! `NAME.EXT.secrets` listing its secret values one per line, every form of
//! secret at least twice. None may leak through the redactor, through
//! `locode.previewCloud`, or in the requests a cloud receives (the first
//! try and the retry). And the false-positive budget: real code gets no
//! redactions at all.
//!
//! No model is needed: the server is pointed at a model file that does not
//! exist, and the cloud is an HTTP server on 127.0.0.1.

#[path = "common/loopback.rs"]
mod loopback;
#[path = "common/lsp_client.rs"]
mod lsp_client;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use locode::redact::Redactor;
use loopback::{loopback, Recorded};
use lsp_client::{bin, LspClient};
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every planted file with its secrets.
fn planted() -> Vec<(PathBuf, String, Vec<String>)> {
    let dir = root().join("tests/data/planted");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "secrets") {
            continue;
        }
        let sidecar = PathBuf::from(format!("{}.secrets", path.display()));
        let secrets: Vec<String> = std::fs::read_to_string(&sidecar)
            .unwrap_or_else(|e| panic!("{}: {e}", sidecar.display()))
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        let text = std::fs::read_to_string(&path).unwrap();
        for s in &secrets {
            assert!(text.contains(s.as_str()), "{}: the sidecar's {s:?} is not in the file", path.display());
        }
        out.push((path, text, secrets));
    }
    out.sort();
    let exts: Vec<String> = out.iter().map(|(p, _, _)| p.extension().unwrap().to_string_lossy().into_owned()).collect();
    for want in ["py", "rs", "ts", "yaml", "sh", "md"] {
        assert!(exts.iter().any(|e| e == want), "no planted .{want} file in {}", dir.display());
    }
    out
}

/// The secrets of `secrets` that `sent` shows: whole, or a 12-character
/// piece of a long one.
fn leaks(sent: &str, secrets: &[String]) -> Vec<String> {
    secrets
        .iter()
        .filter(|s| {
            let chars: Vec<char> = s.chars().collect();
            sent.contains(s.as_str())
                || (chars.len() >= 16 && chars.windows(12).map(|w| w.iter().collect::<String>()).any(|w| sent.contains(&w)))
        })
        .cloned()
        .collect()
}

#[test]
fn planted_secrets_do_not_leak_from_the_redactor() {
    let mut total = 0;
    for (path, text, secrets) in planted() {
        let mut r = Redactor::new();
        let out = r.redact(&text);
        let leaked = leaks(&out, &secrets);
        assert!(leaked.is_empty(), "{}: leaked {leaked:?}\n{out}", path.display());
        assert_eq!(r.restore(&out), text, "{}: restores", path.display());
        total += secrets.len();
    }
    println!("planted: {total} secrets, none leaked");
}

/// Real code: the shared corpus and locode's own sources. redact.rs is left
/// out: its documentation and tests are made of examples of secrets.
fn real_code() -> Vec<PathBuf> {
    fn walk(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("node_modules") {
                    walk(&p, exts, out);
                }
            } else if exts.is_empty() || p.extension().is_some_and(|x| exts.iter().any(|e| x == *e)) {
                out.push(p);
            }
        }
    }
    let root = root();
    let corpus = root.join("../shared/bench-data/corpus");
    assert!(corpus.is_dir(), "the shared corpus is missing at {} (it sits beside the clone)", corpus.display());
    let mut files = Vec::new();
    walk(&corpus, &[], &mut files);
    walk(&root.join("server/src"), &["rs"], &mut files);
    walk(&root.join("benches"), &["rs"], &mut files);
    walk(&root.join("editors"), &["lua", "ts"], &mut files);
    files.retain(|p| !p.ends_with("server/src/redact.rs"));
    files.sort();
    files
}

#[test]
fn real_code_gets_no_redactions() {
    let files = real_code();
    assert!(files.len() >= 50, "only {} files of real code", files.len());
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let mut r = Redactor::new();
        let out = r.redact(&text);
        for (a, b) in text.lines().zip(out.lines()).filter(|(a, b)| a != b) {
            found.push(format!("{}:\n  - {a}\n  + {b}", f.display()));
        }
    }
    println!("real code: {} files, {} redacted lines", files.len(), found.len());
    assert!(found.is_empty(), "ordinary code was redacted:\n{}", found.join("\n"));
}

/// The cloud's answer to the code it was sent (the first user message,
/// between its first fence and its last). `broken`: the lines that hold
/// placeholders, each with a `(` appended, so the answer does not parse and
/// the validation error quotes restored code. Otherwise the code as it was
/// sent, plus a placeholder the redactor never issued (its nonce copied from
/// the prompt), which is refused before validation. Either way a retry
/// follows.
fn answer(q: &Recorded, broken: bool) -> (u16, Value) {
    let messages = q.body["messages"].as_array().unwrap();
    let user = messages.iter().find(|m| m["role"] == "user").and_then(|m| m["content"].as_str()).unwrap();
    let lines: Vec<&str> = user.lines().collect();
    let first = lines.iter().position(|l| l.starts_with("```")).unwrap();
    let last = lines.iter().rposition(|l| l.starts_with("```")).unwrap();
    let code = &lines[first + 1..last];
    let body: Vec<String> = if broken {
        code.iter().filter(|l| l.contains("REDACTED_")).map(|l| format!("{l} (")).collect()
    } else {
        let ours = |w: &&str| w.starts_with("REDACTED_") && w.rsplit('_').next().is_some_and(|n| n.len() == 6);
        let placeholder = user.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).find(ours).unwrap();
        let nonce = placeholder.rsplit('_').next().unwrap();
        code.iter().map(|l| l.to_string()).chain([format!("INVENTED = \"REDACTED_INVENTED_99_{nonce}\"")]).collect()
    };
    let content = format!("{}\n{}\n```", lines[first], body.join("\n"));
    (200, json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}))
}

#[test]
fn planted_secrets_do_not_leak_over_lsp_to_the_cloud() {
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit.jsonl");
    let broken = Arc::new(Mutex::new(false));
    let mode = broken.clone();
    let srv = loopback(move |q| answer(q, *mode.lock().unwrap()));
    let options = json!({
        // No model: previews and cloud refactors do not need one.
        "model": tmp.path().join("no-model.gguf"),
        "cloud": {"route": "onValidationFailure", "provider": "openai", "endpoint": format!("{}/v1", srv.url), "model": "gpt-test",
                  "apiKeyEnv": "LOCODE_PLANTED_KEY", "auditLog": audit, "stream": false, "timeoutMs": 20000},
    });
    let edits: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = edits.clone();
    let handler: lsp_client::Handler = Arc::new(move |m: &Value| {
        if m["method"] == "workspace/applyEdit" {
            seen.lock().unwrap().push(m.clone());
            json!({"applied": true})
        } else {
            Value::Null
        }
    });
    let mut c = LspClient::spawn_with(bin(), &["serve"], &[("LOCODE_PLANTED_KEY", "planted-test-key")], handler);
    c.initialize(json!({"window": {"workDoneProgress": true}}), options);
    let (mut checked, mut files) = (0, 0);
    for (path, text, secrets) in planted() {
        files += 1;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let uri = format!("file:///tmp/locode-planted/{name}");
        // Refactors need a grammar: files in other languages are opened as
        // Python. Redaction does not depend on the language. Only where the
        // language is real does broken code fail validation.
        let language = if name.ends_with(".rs") { "rust" } else { "python" };
        *broken.lock().unwrap() = name.ends_with(".rs") || name.ends_with(".py");
        c.notify("textDocument/didOpen", json!({"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": text}}));
        let lines = text.lines().count() as u32;
        let args = json!({"uri": uri, "range": {"start": {"line": 0, "character": 0}, "end": {"line": lines, "character": 0}}, "action": "simplify"});
        let exec = |c: &mut LspClient, command: &str| {
            let id = c.send_request("workspace/executeCommand", json!({"command": command, "arguments": [args.clone()]}));
            c.response(id, Duration::from_secs(120))
        };

        let preview = exec(&mut c, "locode.previewCloud")["result"].clone();
        assert!(preview["body"].is_object(), "{name}: no preview: {preview}");
        let leaked = leaks(&preview.to_string(), &secrets);
        assert!(leaked.is_empty(), "{name}: the preview shows {leaked:?}");
        assert!(preview["redactions"].as_array().is_some_and(|r| r.len() >= secrets.len() / 2), "{name}: {}", preview["redactions"]);

        let before = srv.requests().len();
        let r = exec(&mut c, "locode.refactorCloud");
        let msg = r["error"]["message"].as_str().unwrap_or_else(|| panic!("{name}: a broken refactor was accepted: {r}"));
        assert!(msg.contains("not applied"), "{name}: {msg}");
        let reqs = srv.requests()[before..].to_vec();
        assert_eq!(reqs.len(), 2, "{name}: expected the first try and the retry");
        assert_eq!(reqs[1].body["messages"].as_array().unwrap().len(), 4, "{name}: the retry carries the answer and the error");
        for (i, q) in reqs.iter().enumerate() {
            let leaked = leaks(&String::from_utf8_lossy(&q.raw), &secrets);
            assert!(leaked.is_empty(), "{name}: request {} sent {leaked:?}", i + 1);
        }
        checked += secrets.len();
    }
    assert!(edits.lock().unwrap().is_empty(), "a broken refactor was applied");
    let log = std::fs::read_to_string(&audit).unwrap();
    assert_eq!(log.lines().count(), 2 * files, "two audited sends per file");
    let all: Vec<String> = planted().into_iter().flat_map(|(_, _, s)| s).collect();
    assert!(leaks(&log, &all).is_empty(), "the audit log holds secrets");
    println!("planted over LSP: {checked} secrets, {files} previews and {} cloud requests, none leaked", 2 * files);
    c.shutdown();
}
