//! The two engines behind one interface: open a file, apply an edit, answer
//! a completion request at a cursor, close the file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{json, Value};

use crate::report::{is_useful, Sample, LOCODE, PEER};
use crate::trace::{self, Session};
use crate::{lsp, peer};

/// What each engine does with the trace. `request` returns a sample, with
/// `error` set when that request failed; an `Err` means the engine is gone.
pub trait Driver {
    fn name(&self) -> &'static str;
    fn open(&mut self, s: &Session) -> anyhow::Result<()>;
    fn edit(&mut self, start: usize, end: usize, text: &str) -> anyhow::Result<()>;
    fn request(&mut self, s: &Session, cursor: usize, function: usize, step: usize, expected: &str) -> anyhow::Result<Sample>;
    fn close(&mut self) -> anyhow::Result<()>;
    /// Stops the engine; returns what the report says about it.
    fn finish(self: Box<Self>) -> Value;
}

#[derive(Clone)]
pub struct Settings {
    pub threads: u32,
    pub max_tokens: u32,
    pub timeout: Duration,
    pub peer_single_line: bool,
    pub model: PathBuf,
    pub out: PathBuf,
    /// `--remote`: locode completes through its remote engine against a
    /// llama-server of its own (this binary, the same model and threads).
    pub remote: Option<PathBuf>,
}

fn sample(engine: &'static str, s: &Session, doc: &str, cursor: usize, function: usize, step: usize, expected: &str) -> Sample {
    let pos = lsp::position(doc, cursor);
    Sample {
        engine,
        lang: s.lang,
        file: s.file_name.clone(),
        function: s.functions[function].name.clone(),
        step,
        line: pos["line"].as_u64().unwrap_or(0) as usize,
        col: pos["character"].as_u64().unwrap_or(0) as usize,
        latency_ms: 0.0,
        prompt_tokens: None,
        evaluated: 0,
        generated: 0,
        prompt_ms: None,
        generate_ms: None,
        suggestion: String::new(),
        expected: expected.to_string(),
        useful: false,
        shown: false,
        typed_through: false,
        error: None,
    }
}

fn scored(mut s: Sample) -> Sample {
    s.shown = !s.suggestion.trim().is_empty();
    s.useful = s.error.is_none() && is_useful(&s.suggestion, &s.expected);
    s
}

/// The text an inline completion item inserts at the cursor: its insertText,
/// less what its range covers before the cursor (already typed).
fn inline_text(item: &Value, doc: &str, cursor: usize) -> String {
    let text = match &item["insertText"] {
        Value::String(s) => s.clone(),
        v => v["value"].as_str().unwrap_or("").to_string(),
    };
    let start = &item["range"]["start"];
    let here = lsp::position(doc, cursor);
    if start.is_object() && start["line"] == here["line"] {
        let covered = here["character"].as_u64().unwrap_or(0).saturating_sub(start["character"].as_u64().unwrap_or(0)) as usize;
        if covered > 0 {
            let line_start = doc[..cursor].rfind('\n').map(|i| i + 1).unwrap_or(0);
            let line = &doc[line_start..cursor];
            let mut units = 0;
            let mut from = line.len();
            for (i, c) in line.char_indices().rev() {
                if units >= covered {
                    break;
                }
                units += c.len_utf16();
                from = i;
            }
            if let Some(rest) = text.strip_prefix(&line[from..]) {
                return rest.to_string();
            }
        }
    }
    text
}

/// locode, over LSP on stdio.
pub struct Locode {
    lsp: lsp::Lsp,
    log: PathBuf,
    meta: Value,
    dir: tempfile::TempDir,
    uri: String,
    doc: String,
    version: i64,
    timeout: Duration,
    /// `--remote`: the llama-server locode completes through (stopped with the driver).
    _backend: Option<peer::LlamaServer>,
}

impl Locode {
    pub fn start(bin: &Path, set: &Settings) -> anyhow::Result<Locode> {
        let args: Vec<String> =
            vec!["serve".into(), "--threads".into(), set.threads.to_string(), "--model".into(), set.model.display().to_string()];
        let mut options = json!({"maxTokens": set.max_tokens});
        let mut backend = None;
        if let Some(peer_bin) = &set.remote {
            let log = set.out.join("replay-locode-backend.log");
            eprintln!("replay: starting locode's remote engine {} (log {})", peer_bin.display(), log.display());
            let server = peer::LlamaServer::start(peer_bin, &set.model, set.threads, &log, Duration::from_secs(300))?;
            options["completionEngine"] = json!({
                "kind": "llamaServer",
                "endpoint": format!("http://127.0.0.1:{}", server.port),
                "timeoutMs": set.timeout.as_millis() as u64,
            });
            backend = Some(server);
        }
        let log = set.out.join("replay-locode.stderr.log");
        eprintln!("replay: starting {} {}", bin.display(), args.join(" "));
        let mut lsp = lsp::Lsp::spawn(bin, &args, &log)?;
        let caps = json!({
            "general": {"positionEncodings": ["utf-16"]},
            "textDocument": {
                "synchronization": {"dynamicRegistration": false, "didSave": false},
                "inlineCompletion": {"dynamicRegistration": false}
            },
            "window": {"workDoneProgress": false},
            // As the VS Code and Neovim plugins announce it: early answers
            // (the first line of a long answer at once, the rest later).
            "experimental": {"locode": {"suggestionReady": true}}
        });
        let init = json!({
            "processId": std::process::id(),
            "rootUri": null,
            "capabilities": caps,
            "initializationOptions": options,
        });
        let info = lsp.request("initialize", init, Duration::from_secs(30)).map_err(|e| anyhow::anyhow!("{e} (see {})", log.display()))?;
        lsp.notify("initialized", json!({}))?;
        let t = Instant::now();
        let status = loop {
            let st = lsp.request("locode/status", json!(null), Duration::from_secs(10)).map_err(|e| anyhow::anyhow!(e))?;
            if st["state"] != "loading" {
                break st;
            }
            if t.elapsed() > Duration::from_secs(300) {
                bail!("locode: model still loading after 5 minutes");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if status["state"] != "ready" {
            bail!("locode: model not ready: {status}");
        }
        eprintln!("replay: locode ready in {:.1} s", t.elapsed().as_secs_f64());
        let mut meta = json!({"binary": bin, "args": args, "server_info": info["serverInfo"], "status": status});
        if let Some(b) = &backend {
            meta["remote_engine"] = json!({"args": b.args, "build_info": b.props().unwrap_or_default()["build_info"]});
        }
        Ok(Locode {
            lsp,
            log,
            meta,
            dir: tempfile::tempdir()?,
            uri: String::new(),
            doc: String::new(),
            version: 0,
            timeout: set.timeout,
            _backend: backend,
        })
    }
}

impl Driver for Locode {
    fn name(&self) -> &'static str {
        LOCODE
    }

    fn open(&mut self, s: &Session) -> anyhow::Result<()> {
        let path = self.dir.path().join(&s.file_name);
        std::fs::write(&path, &s.text)?;
        self.uri = format!("file://{}", path.display());
        self.doc = s.text.clone();
        self.version = 1;
        self.lsp.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": self.uri, "languageId": s.lang.language_id(), "version": self.version, "text": self.doc}}),
        )
    }

    fn edit(&mut self, start: usize, end: usize, text: &str) -> anyhow::Result<()> {
        let range = json!({"start": lsp::position(&self.doc, start), "end": lsp::position(&self.doc, end)});
        trace::apply(&mut self.doc, start, end, text);
        self.version += 1;
        self.lsp.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": self.uri, "version": self.version}, "contentChanges": [{"range": range, "text": text}]}),
        )
    }

    fn request(&mut self, s: &Session, cursor: usize, function: usize, step: usize, expected: &str) -> anyhow::Result<Sample> {
        let mut smp = sample(LOCODE, s, &self.doc, cursor, function, step, expected);
        let params = json!({
            "textDocument": {"uri": self.uri},
            "position": lsp::position(&self.doc, cursor),
            "context": {"triggerKind": 2, "selectedCompletionInfo": null},
        });
        let (id, sent) = self.lsp.send_request("textDocument/inlineCompletion", params)?;
        match self.lsp.wait_response(id, self.timeout) {
            Some((at, resp)) => {
                smp.latency_ms = at.duration_since(sent).as_secs_f64() * 1000.0;
                if let Some(e) = resp.get("error") {
                    smp.error = Some(format!("inlineCompletion error: {e}"));
                } else {
                    let r = &resp["result"];
                    let items = if r.is_array() { r.as_array() } else { r["items"].as_array() };
                    if let Some(item) = items.and_then(|i| i.first()) {
                        smp.suggestion = inline_text(item, &self.doc, cursor);
                    }
                }
            }
            None => {
                smp.latency_ms = sent.elapsed().as_secs_f64() * 1000.0;
                smp.error = Some(format!("no answer within {:?}", self.timeout));
                let _ = self.lsp.notify("$/cancelRequest", json!({"id": id}));
                // Let the cancelled request drain before the next one.
                let _ = self.lsp.wait_response(id, Duration::from_secs(10));
            }
        }
        match self.lsp.request("locode/lastStats", json!({"uri": self.uri}), Duration::from_secs(10)) {
            Ok(st) => {
                let u = |k: &str| st[k].as_u64();
                smp.typed_through = st["typed_through"].as_bool().unwrap_or(false);
                // No prompt was built for an answer without engine work.
                smp.prompt_tokens = u("prompt_tokens").filter(|&p| p > 0 && !smp.typed_through);
                smp.evaluated = u("evaluated_tokens").unwrap_or(0);
                smp.generated = u("generated_tokens").unwrap_or(0);
                smp.prompt_ms = st["prompt_ms"].as_f64();
                smp.generate_ms = st["generate_ms"].as_f64();
            }
            Err(e) => eprintln!("replay: locode/lastStats: {e}"),
        }
        if !self.lsp.alive() {
            bail!("locode exited (see {})", self.log.display());
        }
        Ok(scored(smp))
    }

    fn close(&mut self) -> anyhow::Result<()> {
        self.lsp.notify("textDocument/didClose", json!({"textDocument": {"uri": self.uri}}))
    }

    fn finish(self: Box<Self>) -> Value {
        let mut meta = self.meta.clone();
        for p in &self.lsp.problems {
            eprintln!("replay: locode said: {p}");
        }
        meta["messages"] = json!(self.lsp.problems);
        self.lsp.shutdown();
        meta
    }
}

/// llama-server, over HTTP `/infill` on 127.0.0.1.
pub struct LlamaServer {
    server: peer::LlamaServer,
    log: PathBuf,
    meta: Value,
    doc: String,
    max_tokens: u32,
    single_line: bool,
    timeout: Duration,
}

impl LlamaServer {
    pub fn start(bin: &Path, set: &Settings) -> anyhow::Result<LlamaServer> {
        let log = set.out.join("replay-llama-server.log");
        eprintln!("replay: starting {} (log {})", bin.display(), log.display());
        let t = Instant::now();
        let server = peer::LlamaServer::start(bin, &set.model, set.threads, &log, Duration::from_secs(300))?;
        eprintln!("replay: llama-server ready on 127.0.0.1:{} in {:.1} s", server.port, t.elapsed().as_secs_f64());
        let props = server.props().unwrap_or(Value::Null);
        let meta = json!({
            "binary": bin,
            "args": server.args,
            "build_info": props["build_info"],
            "n_ctx": props["default_generation_settings"]["n_ctx"],
            "single_line_stop": set.peer_single_line,
        });
        Ok(LlamaServer {
            server,
            log,
            meta,
            doc: String::new(),
            max_tokens: set.max_tokens,
            single_line: set.peer_single_line,
            timeout: set.timeout,
        })
    }
}

impl Driver for LlamaServer {
    fn name(&self) -> &'static str {
        PEER
    }

    fn open(&mut self, s: &Session) -> anyhow::Result<()> {
        self.doc = s.text.clone();
        Ok(())
    }

    fn edit(&mut self, start: usize, end: usize, text: &str) -> anyhow::Result<()> {
        trace::apply(&mut self.doc, start, end, text);
        Ok(())
    }

    fn request(&mut self, s: &Session, cursor: usize, function: usize, step: usize, expected: &str) -> anyhow::Result<Sample> {
        let mut smp = sample(PEER, s, &self.doc, cursor, function, step, expected);
        let body = peer::infill_request(&self.doc, cursor, self.max_tokens, self.single_line).to_string();
        let t0 = Instant::now();
        let res = peer::http(self.server.port, "POST", "/infill", Some(&body), self.timeout);
        smp.latency_ms = t0.elapsed().as_secs_f64() * 1000.0;
        match res {
            Ok((200, text)) => match serde_json::from_str::<Value>(&text) {
                Ok(v) => {
                    smp.suggestion = v["content"].as_str().unwrap_or("").to_string();
                    let tm = &v["timings"];
                    smp.prompt_tokens = v["tokens_evaluated"].as_u64();
                    smp.evaluated = tm["prompt_n"].as_u64().unwrap_or(0);
                    smp.generated = tm["predicted_n"].as_u64().or(v["tokens_predicted"].as_u64()).unwrap_or(0);
                    smp.prompt_ms = tm["prompt_ms"].as_f64();
                    smp.generate_ms = tm["predicted_ms"].as_f64();
                }
                Err(e) => smp.error = Some(format!("bad JSON from /infill: {e}")),
            },
            Ok((code, text)) => smp.error = Some(format!("/infill answered {code}: {}", text.chars().take(300).collect::<String>())),
            Err(e) => smp.error = Some(format!("/infill: {e}")),
        }
        if !self.server.alive() {
            bail!("llama-server exited (see {})", self.log.display());
        }
        Ok(scored(smp))
    }

    fn close(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    fn finish(self: Box<Self>) -> Value {
        self.meta.clone()
    }
}
