//! Remote engines: the same jobs as the embedded engine, answered by an
//! inference server over HTTP. The job's prompt (the anchored FIM layout
//! the family renders, cross-file context first) is sent as one raw string,
//! special pieces as their token text, so the server's prefix cache keeps
//! everything before the text typed since the anchor:
//!
//! - llama-server: `POST /completion` with `cache_prompt` and a slot of its
//!   own per document (`id_slot`, from `GET /props`'s `total_slots`, the
//!   least recently used document giving its slot up);
//! - OpenAI-compatible servers (vLLM, llama-server, LM Studio):
//!   `POST /v1/completions` with the raw `prompt` and no `suffix`;
//! - Ollama: `POST /api/generate` with `raw: true`.
//!
//! `/infill` and `suffix` APIs put the typed text before the suffix, so a
//! keystroke re-evaluates the whole suffix; they are not used.
//!
//! Streamed answers go through the job's stop rule and are dropped as soon
//! as the suggestion is settled; early answers and cancellation behave as
//! in the embedded engine, a dropped request being how a remote one stops.
//! The rest of an early answer yields to the next foreground request; a
//! warm-up runs to its end (see `Remote::complete`). Errors and timeouts
//! are `EngineError::Remote`, which the language server reports once per
//! kind ([`ErrorLatch`]) with an empty completion.
//!
//! The outbound policy (`crate::outbound`) holds here as for the cloud: an
//! endpoint off this machine needs `allowRemote` (and https, or
//! `allowInsecure`), checked before any connection; a secret file's
//! prompt is never sent; every prompt is redacted, with one `Redactor` per
//! document so a secret keeps its placeholder from keystroke to keystroke
//! (the server's prefix cache stays valid), and placeholders in the answer
//! are put back; the first send to another machine is audited
//! ([`Outbound::on_first_send`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt;
use serde_json::{json, Value};

use super::{CancelToken, CompletionJob, EngineError, Generation, ModelInfo};
use crate::config::{RemoteEngineConfig, RemoteKind};
use crate::net::{self, NetError};
use crate::outbound::{self, Consent, Endpoint};
use crate::prompt::{self, Family, Piece};
use crate::redact::Redactor;

impl Default for RemoteEngineConfig {
    fn default() -> Self {
        RemoteEngineConfig {
            kind: RemoteKind::Embedded,
            endpoint: String::new(),
            model: String::new(),
            family: "qwen2.5-coder".into(),
            api_key_env: String::new(),
            timeout_ms: 5_000,
            stream: true,
            allow_remote: false,
            allow_insecure: false,
            ca_file: None,
        }
    }
}

impl RemoteEngineConfig {
    pub fn is_remote(&self) -> bool {
        self.kind != RemoteKind::Embedded
    }

    /// The server's base URL, without the API path.
    fn base(&self) -> String {
        let default = match self.kind {
            RemoteKind::Embedded | RemoteKind::LlamaServer => "http://127.0.0.1:8080",
            RemoteKind::Ollama => "http://127.0.0.1:11434",
            RemoteKind::Openai => "http://127.0.0.1:8000",
        };
        let e = self.endpoint.trim().trim_end_matches('/');
        let e = if e.is_empty() { default } else { e };
        let e = e.strip_suffix(self.path()).unwrap_or(e);
        // An OpenAI-compatible base is often given with its `/v1`.
        e.strip_suffix("/v1").filter(|_| self.kind == RemoteKind::Openai).unwrap_or(e).to_string()
    }

    fn path(&self) -> &'static str {
        match self.kind {
            RemoteKind::Embedded | RemoteKind::LlamaServer => "/completion",
            RemoteKind::Ollama => "/api/generate",
            RemoteKind::Openai => "/v1/completions",
        }
    }

    /// The URL completions are asked at.
    pub fn url(&self) -> String {
        format!("{}{}", self.base(), self.path())
    }
}

/// The raw prompt text of a FIM prompt: special pieces as their token text
/// (the server parses them back into special tokens), text as it is.
pub fn prompt_text(pieces: &[Piece]) -> Result<String, EngineError> {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Special(t) | Piece::Text(t) => out.push_str(t),
            Piece::Chat(_) => return Err(EngineError::Family("a remote engine takes fill-in-the-middle prompts only".into())),
        }
    }
    Ok(out)
}

/// Byte ranges of [`prompt_text`]`(pieces) + forced` that hold the document
/// around the cursor, in its order: prefix, typed middle, the forced
/// (token-healing) text cut from their end, suffix.
fn cursor_runs(family: &Family, pieces: &[Piece], forced: usize) -> Vec<std::ops::Range<usize>> {
    let mut starts = Vec::with_capacity(pieces.len());
    let mut at = 0;
    for p in pieces {
        starts.push(at);
        if let Piece::Special(t) | Piece::Text(t) = p {
            at += t.len();
        }
    }
    let run = |i: Option<usize>| i.map(|i| starts[i]..starts.get(i + 1).copied().unwrap_or(at));
    let [prefix, middle, suffix] = family.cursor_texts(pieces);
    // The healed text was cut from the end of the prefix or middle.
    let healed = (forced > 0).then_some(at..at + forced);
    [run(prefix), run(middle), healed, run(suffix)].into_iter().flatten().collect()
}

/// llama-server slots, one per document: its own while it has one, else a
/// free one, else the least recently used document's. Without a slot count
/// (`/props` did not answer) every request gets `-1`, the server's choice.
#[derive(Debug)]
pub struct Slots(Option<lru::LruCache<String, usize>>);

impl Slots {
    pub fn new(total: usize) -> Slots {
        Slots(std::num::NonZeroUsize::new(total).map(lru::LruCache::new))
    }

    pub fn slot_for(&mut self, key: &str) -> i64 {
        let Some(lru) = &mut self.0 else { return -1 };
        if let Some(&i) = lru.get(key) {
            return i as i64;
        }
        let i = if lru.len() < lru.cap().get() {
            (0..).find(|i| !lru.iter().any(|(_, v)| v == i)).expect("a free slot")
        } else {
            lru.pop_lru().expect("a full cache").1
        };
        lru.put(key.to_string(), i);
        i as i64
    }
}

/// Fills in a generation's counts and timings from an answer (or a stream
/// chunk) that has them: llama-server's `timings` (`prompt_n` evaluated,
/// `cache_n` reused) or its older `tokens_evaluated`/`tokens_cached`,
/// Ollama's `prompt_eval_count` and durations, OpenAI's `usage`.
pub fn read_timings(v: &Value, gen: &mut Generation) {
    let n = |v: &Value| v.as_u64().map(|n| n as usize);
    let t = &v["timings"];
    if let Some(evaluated) = n(&t["prompt_n"]) {
        gen.evaluated_tokens = evaluated;
        gen.prompt_tokens = evaluated + n(&t["cache_n"]).unwrap_or(0);
        gen.prompt_ms = t["prompt_ms"].as_f64().unwrap_or(gen.prompt_ms);
        gen.generated_tokens = n(&t["predicted_n"]).unwrap_or(gen.generated_tokens);
        gen.generate_ms = t["predicted_ms"].as_f64().unwrap_or(gen.generate_ms);
    } else if let Some(total) = n(&v["tokens_evaluated"]) {
        gen.prompt_tokens = total;
        gen.evaluated_tokens = total.saturating_sub(n(&v["tokens_cached"]).unwrap_or(0));
    }
    if let Some(evaluated) = n(&v["prompt_eval_count"]) {
        // Ollama counts what it evaluated; the prompt's size it does not say.
        gen.evaluated_tokens = evaluated;
        gen.prompt_tokens = gen.prompt_tokens.max(evaluated);
        gen.prompt_ms = v["prompt_eval_duration"].as_f64().map_or(gen.prompt_ms, |ns| ns / 1e6);
        gen.generated_tokens = n(&v["eval_count"]).unwrap_or(gen.generated_tokens);
        gen.generate_ms = v["eval_duration"].as_f64().map_or(gen.generate_ms, |ns| ns / 1e6);
    }
    let u = &v["usage"];
    if let Some(total) = n(&u["prompt_tokens"]) {
        gen.prompt_tokens = total;
        gen.evaluated_tokens = total.saturating_sub(n(&u["prompt_tokens_details"]["cached_tokens"]).unwrap_or(0));
        gen.generated_tokens = n(&u["completion_tokens"]).unwrap_or(gen.generated_tokens);
    }
}

/// The first request about to leave for another machine (for the audit log).
#[derive(Debug)]
pub struct FirstSend<'a> {
    pub url: &'a str,
    pub kind: RemoteKind,
    pub model: &'a str,
    /// The document the prompt came from (its URI).
    pub document: &'a str,
    /// Exactly the bytes of the request body.
    pub body: &'a [u8],
    /// Redactions made in this prompt, per kind.
    pub redactions: BTreeMap<String, usize>,
}

/// Records a first send; an error stops it (nothing is sent).
pub type FirstSendHook = Arc<dyn Fn(&FirstSend<'_>) -> Result<(), String> + Send + Sync>;

/// What the outbound policy gives a remote engine besides its own settings.
#[derive(Clone, Default)]
pub struct Outbound {
    /// `cloud.refuseFiles`: more secret-file patterns.
    pub refuse_files: Vec<String>,
    /// Called once, before the first request to an endpoint that is not on
    /// this machine (the language server writes the audit log with it).
    pub on_first_send: Option<FirstSendHook>,
}

/// Documents whose redaction tables are kept (the least recently used go).
const REDACTORS: usize = 64;

/// A remote engine, ready for jobs (see [`connect`]).
pub struct Remote {
    cfg: RemoteEngineConfig,
    url: String,
    endpoint: Endpoint,
    outbound: Outbound,
    /// The first send to another machine happened (and was recorded).
    first_sent: Mutex<bool>,
    /// One per document: the same secret, the same placeholder.
    redactors: Mutex<lru::LruCache<String, Redactor>>,
    client: reqwest::Client,
    /// The bearer token, or why there is none when one is wanted.
    key: Result<Option<String>, NetError>,
    slots: Mutex<Slots>,
    family: Family,
    /// Counts foreground requests as they start: background work watches
    /// it and yields to the next one.
    started: tokio::sync::watch::Sender<u64>,
}

/// [`connect_with`] without a refuse list or an audit hook (tests, tools).
pub async fn connect(cfg: RemoteEngineConfig) -> Result<(Remote, ModelInfo, Family), EngineError> {
    connect_with(cfg, Outbound::default()).await
}

/// Checks the endpoint against the outbound policy (no connection is made
/// when it refuses), then sets up a remote engine: the prompt family named
/// in the settings, a client, and (llama-server) the number of slots from
/// `GET /props`. A server that is not up yet is no error here: requests
/// report it.
pub async fn connect_with(cfg: RemoteEngineConfig, outbound: Outbound) -> Result<(Remote, ModelInfo, Family), EngineError> {
    let family = prompt::by_name(cfg.family.trim()).map_err(|e| EngineError::Family(format!("completionEngine.family: {e}")))?;
    if !cfg.is_remote() {
        return Err(EngineError::Remote(NetError::Config("completionEngine.kind is \"embedded\": no remote engine is configured".into())));
    }
    if matches!(cfg.kind, RemoteKind::Ollama | RemoteKind::Openai) && cfg.model.trim().is_empty() {
        return Err(EngineError::Remote(NetError::Config("set completionEngine.model for an Ollama or OpenAI-compatible engine".into())));
    }
    let url = cfg.url();
    let endpoint = outbound::check_endpoint(&url, consent(&cfg)).map_err(EngineError::Remote)?;
    let roots = match &cfg.ca_file {
        Some(path) => net::load_ca_file("completionEngine.caFile", path).map_err(EngineError::Remote)?,
        None => Vec::new(),
    };
    let client = net::client(&url, cfg.timeout_ms, &roots).map_err(EngineError::Remote)?;
    let key = match cfg.api_key_env.trim() {
        "" => Ok(None),
        var => std::env::var(var)
            .ok()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .map(Some)
            .ok_or_else(|| NetError::Config(format!("the environment variable {var} (completionEngine.apiKeyEnv) is not set"))),
    };
    let mut description = format!("{:?} at {}", cfg.kind, cfg.base());
    let mut n_ctx = 0;
    let mut total_slots = 0;
    if cfg.kind == RemoteKind::LlamaServer {
        let props_url = format!("{}/props", cfg.base());
        let mut rb = client.get(&props_url).timeout(std::time::Duration::from_millis(cfg.timeout_ms.min(3_000)));
        if let Ok(Some(k)) = &key {
            rb = rb.bearer_auth(k);
        }
        let props = match rb.send().await {
            Ok(r) if r.status().is_success() => net::json_body(&props_url, cfg.timeout_ms, r).await.ok(),
            _ => None,
        };
        match props {
            Some(p) => {
                total_slots = p["total_slots"].as_u64().unwrap_or(0) as usize;
                n_ctx = p["default_generation_settings"]["n_ctx"].as_u64().unwrap_or(0) as u32;
                if let Some(m) = p["model_path"].as_str().or(p["model_alias"].as_str()) {
                    description = format!("{description} ({m})");
                }
            }
            None => tracing::warn!("{props_url} did not answer: requests leave the choice of a slot to the server"),
        }
    } else if !cfg.model.trim().is_empty() {
        description = format!("{description} ({})", cfg.model.trim());
    }
    let info = ModelInfo {
        path: url.clone().into(),
        size_bytes: 0,
        description,
        family: family.name.clone(),
        fim_tokens: family.fim_tokens().into_iter().map(|t| (t.to_string(), -1)).collect(),
        n_params: 0,
        n_ctx_train: 0,
        n_ctx,
        threads: 0,
        gpu_layers: 0,
        gpu_offload_supported: false,
    };
    let remote = Remote {
        cfg,
        url,
        endpoint,
        outbound,
        first_sent: Mutex::new(false),
        redactors: Mutex::new(lru::LruCache::new(std::num::NonZeroUsize::new(REDACTORS).expect("nonzero"))),
        client,
        key,
        slots: Mutex::new(Slots::new(total_slots)),
        family: family.clone(),
        started: tokio::sync::watch::Sender::new(0),
    };
    Ok((remote, info, family))
}

/// What `completionEngine` consents to.
fn consent(cfg: &RemoteEngineConfig) -> Consent<'static> {
    Consent {
        section: "completionEngine",
        remote: cfg.allow_remote,
        remote_setting: "completionEngine.allowRemote",
        insecure: cfg.allow_insecure,
    }
}

/// Why a remote engine would send nothing under `cfg`, if it would not
/// (for `locode doctor`; the same check as [`connect_with`]'s).
pub fn refusal(cfg: &RemoteEngineConfig) -> Option<String> {
    if !cfg.is_remote() {
        return None;
    }
    outbound::check_endpoint(&cfg.url(), consent(cfg)).err().map(|e| e.to_string())
}

/// Why a request stopped before its answer was complete.
enum Interrupted {
    Cancelled,
    Yielded,
}

/// Resolves when `cancel` is set, or (with `yield_to`) when a foreground
/// request starts.
async fn interrupted(cancel: &CancelToken, yield_to: &mut Option<tokio::sync::watch::Receiver<u64>>) -> Interrupted {
    let yielded = async {
        match yield_to {
            Some(rx) => drop(rx.changed().await),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = net::cancelled(|| cancel.is_cancelled()) => Interrupted::Cancelled,
        _ = yielded => Interrupted::Yielded,
    }
}

/// One piece of an answer: its text, whether it is the last, and whether
/// the model ended the text itself (rather than a length limit).
struct Chunk {
    text: String,
    last: bool,
    stopped: bool,
}

/// Has `text` anything but blanks past the forced prefix?
fn has_code(text: &str, forced: &str) -> bool {
    text.get(forced.len()..).is_some_and(|rest| rest.chars().any(|c| !c.is_whitespace()))
}

/// The first word with code of a whole answer past `forced` (its blanks
/// before it, then a run of word characters, or one other character): what
/// a token would have been, for an answer that did not come token by token.
fn first_word(text: &str, forced: &str) -> String {
    let rest = text.get(forced.len()..).unwrap_or_default();
    let start = rest.len() - rest.trim_start().len();
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let body = &rest[start..];
    let len = match body.chars().next() {
        Some(c) if word(c) => body.find(|c: char| !word(c)).unwrap_or(body.len()),
        Some(c) => c.len_utf8(),
        None => return String::new(),
    };
    rest[..start + len].to_string()
}

/// A generation in progress: the text so far (from the forced prefix on)
/// and what the answer says of its cost.
struct Run {
    gen: Generation,
    /// The forced prefix and the answer, placeholders put back.
    text: String,
    /// The answer as the server sent it (placeholders as they were sent).
    raw: String,
    /// The document's redaction table when the prompt was sent.
    redactor: Redactor,
    forced: String,
    t0: Instant,
    first_chunk_ms: Option<f64>,
    chunks: usize,
    /// Complete lines already looked at for an early answer (bytes).
    early_seen: usize,
    /// An early answer was sent: the rest is background work.
    answered_early: bool,
}

impl Run {
    /// Adds a piece of the answer.
    fn push(&mut self, piece: &str) {
        self.raw.push_str(piece);
        self.text = format!("{}{}", self.forced, self.redactor.restore(&self.raw));
    }

    /// The generation as it stands, stopped for `why`.
    fn interrupted(mut self, why: Interrupted) -> Generation {
        match why {
            Interrupted::Cancelled => {
                self.gen.cancelled = true;
                self.text.clear();
            }
            // Nothing generated yet: as a warm-up that yields during its prompt.
            Interrupted::Yielded if self.chunks == 0 => self.gen.cancelled = true,
            Interrupted::Yielded => self.gen.yielded = true,
        }
        self.finish()
    }

    fn finish(mut self) -> Generation {
        let total = self.t0.elapsed().as_secs_f64() * 1e3;
        // The server's own timings, where it sent them, replace the clock's.
        if self.gen.prompt_ms == 0.0 && self.gen.generate_ms == 0.0 {
            let first = self.first_chunk_ms.unwrap_or(total);
            self.gen.prompt_ms = first;
            self.gen.generate_ms = total - first;
        }
        if self.gen.generated_tokens == 0 {
            self.gen.generated_tokens = self.chunks;
        }
        if self.gen.cancelled {
            self.text.clear();
        }
        self.gen.text = self.text;
        self.gen
    }
}

impl Remote {
    /// The request body for `prompt`.
    fn body(&self, prompt: String, max_tokens: u32, stream: bool, slot: i64, avoid: Option<&str>) -> Value {
        match self.cfg.kind {
            RemoteKind::Embedded | RemoteKind::LlamaServer => {
                let mut b = json!({
                    "prompt": prompt,
                    // 0: the prompt is only evaluated into the slot's cache (a warm-up).
                    "n_predict": max_tokens,
                    "temperature": 0,
                    "top_k": 1,
                    "cache_prompt": true,
                    "id_slot": slot,
                    "stream": stream,
                    // Each chunk says what the prompt cost: a stream dropped
                    // early still has it.
                    "timings_per_token": stream,
                    "response_fields": ["content", "stop", "stop_type", "timings", "tokens_evaluated", "tokens_cached", "tokens_predicted"],
                });
                // A second try: llama-server takes a bias by text, which it
                // applies to every token of the word for the whole answer (the
                // embedded engine bans it only as the first token with code,
                // and also forbids ending before code; that a server cannot do).
                if let Some(word) = avoid {
                    b["logit_bias"] = json!([[word, false]]);
                }
                b
            }
            RemoteKind::Ollama => json!({
                "model": self.cfg.model,
                "prompt": prompt,
                "raw": true,
                "stream": stream,
                // A warm-up generates one token: Ollama reads 0 as "no limit".
                "options": {"num_predict": max_tokens.max(1), "temperature": 0},
            }),
            RemoteKind::Openai => {
                let mut b = json!({
                    "model": self.cfg.model,
                    "prompt": prompt,
                    // A warm-up generates one token: OpenAI-compatible servers refuse 0.
                    "max_tokens": max_tokens.max(1),
                    "temperature": 0,
                    "stream": stream,
                });
                if stream {
                    b["stream_options"] = json!({"include_usage": true});
                }
                b
            }
        }
    }

    /// The text of one answer or stream chunk, after its counts and timings.
    fn chunk(&self, v: &Value, gen: &mut Generation, streamed: bool) -> Result<Chunk, NetError> {
        let url = self.url.as_str();
        if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
            let message = e["message"].as_str().or(e.as_str()).map(str::to_string).unwrap_or_else(|| e.to_string());
            return Err(NetError::Provider { url: url.into(), message });
        }
        read_timings(v, gen);
        let malformed = |what: &str| NetError::Malformed { url: url.into(), reason: format!("no `{what}` in the answer") };
        match self.cfg.kind {
            RemoteKind::Embedded | RemoteKind::LlamaServer => {
                let text = v["content"].as_str().ok_or_else(|| malformed("content"))?.to_string();
                let last = v["stop"].as_bool().unwrap_or(!streamed);
                Ok(Chunk { text, last, stopped: last && matches!(v["stop_type"].as_str(), Some("eos" | "word") | None) })
            }
            RemoteKind::Ollama => {
                let text = v["response"].as_str().ok_or_else(|| malformed("response"))?.to_string();
                let last = v["done"].as_bool().unwrap_or(!streamed);
                Ok(Chunk { text, last, stopped: last && v["done_reason"].as_str() != Some("length") })
            }
            RemoteKind::Openai => {
                let c = &v["choices"][0];
                let text = match c["text"].as_str() {
                    Some(t) => t.to_string(),
                    // The last chunk of a stream may carry only the usage.
                    None if streamed && v["usage"].is_object() => String::new(),
                    None => return Err(malformed("choices[0].text")),
                };
                let reason = c["finish_reason"].as_str();
                Ok(Chunk { text, last: !streamed || reason.is_some(), stopped: reason.is_none_or(|r| r != "length") })
            }
        }
    }

    /// Runs a job on the server. Cancelled, it gives an empty generation
    /// marked cancelled; background work yields to the next foreground
    /// request.
    pub async fn complete(&self, mut job: CompletionJob) -> Result<Generation, EngineError> {
        // Background work that generates yields to the next foreground
        // request. A warm-up does not: the server would notice the dropped
        // request only at its next poll (up to a second, llama-server), and
        // the request, on the same slot, waits for it and reuses what it
        // evaluated, or runs beside it on another.
        let mut yield_to = None;
        if !job.background {
            self.started.send_modify(|n| *n += 1);
        } else if job.max_tokens > 0 {
            yield_to = Some(self.started.subscribe());
        }
        let forced = std::mem::take(&mut job.forced_prefix);
        let mut run = Run {
            gen: Generation::default(),
            text: forced.clone(),
            raw: String::new(),
            redactor: Redactor::new(),
            forced,
            t0: Instant::now(),
            first_chunk_ms: None,
            chunks: 0,
            early_seen: 0,
            answered_early: false,
        };
        if job.cancel.is_cancelled() {
            return Ok(run.interrupted(Interrupted::Cancelled));
        }
        let avoid = job.avoid.take();
        if let Some(word) = &avoid {
            // Only llama-server takes a bias by text; a second try without
            // one would be the first again (greedy), so it is not sent.
            if self.cfg.kind != RemoteKind::LlamaServer || word.trim().is_empty() {
                return Ok(run.finish());
            }
        }
        if let Some(why) = outbound::refused_file(&job.slot, &self.outbound.refuse_files) {
            return Err(EngineError::Remote(NetError::Refused(format!(
                "locode: {why}; the remote completion engine gets nothing of it (no completions there)"
            ))));
        }
        let key = self.key.clone().map_err(EngineError::Remote)?;
        // A token-healing prefix cannot be constrained remotely: it is written
        // into the prompt, and the text starts with it as the embedded engine's does.
        let prompt = prompt_text(&job.prompt)? + &run.forced;
        let runs = cursor_runs(&self.family, &job.prompt, run.forced.len());
        // Redacted as one text (cross-file context, prefix, suffix, the typed
        // middle), with the document's own table, and what is around the
        // cursor also joined as the document has it: a cursor inside a
        // secret splits it between the prefix and the suffix.
        let (prompt, redactions) = {
            let mut redactors = self.redactors.lock().unwrap_or_else(|e| e.into_inner());
            let r = redactors.get_or_insert_mut(job.slot.clone(), Redactor::new);
            let prompt = r.redact_runs(&prompt, &runs);
            let redactions = r.summary();
            // Only the table is kept: the list would grow with every keystroke.
            r.redactions.clear();
            run.redactor = r.clone();
            (prompt, redactions)
        };
        // A warm-up generates nothing worth streaming.
        let stream = self.cfg.stream && job.max_tokens > 0;
        let slot = self.slots.lock().unwrap_or_else(|e| e.into_inner()).slot_for(&job.slot);
        let body = serde_json::to_vec(&self.body(prompt, job.max_tokens, stream, slot, avoid.as_deref())).expect("JSON body");
        if !self.endpoint.loopback {
            let mut sent = self.first_sent.lock().unwrap_or_else(|e| e.into_inner());
            if !*sent {
                if let Some(hook) = &self.outbound.on_first_send {
                    let first = FirstSend {
                        url: &self.url,
                        kind: self.cfg.kind,
                        model: &self.cfg.model,
                        document: &job.slot,
                        body: &body,
                        redactions,
                    };
                    hook(&first).map_err(|e| EngineError::Remote(NetError::Refused(format!("{e}; nothing was sent"))))?;
                }
                *sent = true;
            }
        }
        let mut rb = self.client.post(&self.url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        if let Some(k) = &key {
            rb = rb.bearer_auth(k);
        }
        let (url, timeout) = (self.url.as_str(), self.cfg.timeout_ms);
        let send = async {
            let resp = rb.send().await.map_err(|e| net::map_reqwest(url, timeout, e))?;
            net::check_status(url, timeout, resp).await
        };
        let resp = tokio::select! {
            r = send => r.map_err(EngineError::Remote)?,
            why = interrupted(&job.cancel, &mut yield_to) => return Ok(run.interrupted(why)),
        };
        if !stream {
            let v = tokio::select! {
                v = net::json_body(url, timeout, resp) => v.map_err(EngineError::Remote)?,
                why = interrupted(&job.cancel, &mut yield_to) => return Ok(run.interrupted(why)),
            };
            let c = self.chunk(&v, &mut run.gen, false).map_err(EngineError::Remote)?;
            run.push(&c.text);
            run.gen.stopped = c.stopped;
            // As the server wrote it: a second try's bias goes back to it.
            run.gen.first_word = first_word(&format!("{}{}", run.forced, run.raw), &run.forced);
            if let Some(f) = job.on_token.as_mut() {
                f(&run.text);
            }
            return Ok(run.finish());
        }
        let mut body = resp.bytes_stream();
        let mut lines = net::Lines::default();
        loop {
            let next = tokio::select! {
                c = body.next() => c,
                why = interrupted(&job.cancel, &mut yield_to) => return Ok(run.interrupted(why)),
            };
            let bytes = match next {
                Some(Ok(b)) => b,
                Some(Err(e)) => return self.failed(run, net::map_reqwest(url, timeout, e)),
                None => break,
            };
            if let Err(e) = lines.push(url, &bytes) {
                return self.failed(run, e);
            }
            while let Some(line) = lines.next_line() {
                match self.line(&line, &mut run, &mut job, &mut yield_to) {
                    Ok(true) => {}
                    Ok(false) => return Ok(run.finish()),
                    Err(e) => return self.failed(run, e),
                }
            }
        }
        if let Some(line) = lines.rest() {
            if let Err(e) = self.line(&line, &mut run, &mut job, &mut yield_to) {
                return self.failed(run, e);
            }
        }
        Ok(run.finish())
    }

    /// A failure: the request's error, unless an early answer went out, in
    /// which case the rest ends with what it has.
    fn failed(&self, mut run: Run, e: NetError) -> Result<Generation, EngineError> {
        if run.answered_early {
            tracing::debug!("the rest of an early answer stopped: {e}");
            run.gen.yielded = true;
            return Ok(run.finish());
        }
        Err(EngineError::Remote(e))
    }

    /// One line of a streamed answer; false once the generation is over
    /// (the last chunk, or the stop rule has all it needs).
    fn line(
        &self,
        line: &str,
        run: &mut Run,
        job: &mut CompletionJob,
        yield_to: &mut Option<tokio::sync::watch::Receiver<u64>>,
    ) -> Result<bool, NetError> {
        let line = line.trim_end_matches(['\n', '\r']);
        let data = match self.cfg.kind {
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
        let v = net::parse_json_line(&self.url, data)?;
        let c = self.chunk(&v, &mut run.gen, true)?;
        if !c.text.is_empty() {
            run.first_chunk_ms.get_or_insert_with(|| run.t0.elapsed().as_secs_f64() * 1e3);
            run.chunks += 1;
            let before = has_code(&run.text, &run.forced);
            run.push(&c.text);
            if !before && has_code(&run.text, &run.forced) {
                run.gen.first_word = c.text;
            }
            if let Some(f) = job.on_token.as_mut() {
                f(&run.text);
            }
        }
        if c.last {
            run.gen.stopped = c.stopped;
            return Ok(false);
        }
        if job.stop.as_ref().is_some_and(|s| s.is_done(&run.text)) {
            return Ok(false);
        }
        // Answer with what is settled; the rest continues in the background.
        // (Only when a new line is complete: the stop rule's check may parse.)
        let lines_end = run.text.rfind('\n').map_or(0, |i| i + 1);
        let due = job.early.as_ref().is_some_and(|e| std::time::Instant::now() >= e.at);
        if due && lines_end > run.early_seen {
            run.early_seen = lines_end;
            if let Some(answer) = job.stop.as_ref().and_then(|s| s.early(&run.text)) {
                let e = job.early.take().expect("checked above");
                let mut shown = run.gen.clone();
                shown.text = run.text.clone();
                shown.generated_tokens = shown.generated_tokens.max(run.chunks);
                if e.tx.send((shown, answer)).is_err() {
                    // Nobody waits for the early answer, so neither for the rest.
                    job.cancel.cancel();
                    return Ok(true);
                }
                job.cancel = e.cancel;
                job.background = true;
                *yield_to = Some(self.started.subscribe());
                run.answered_early = true;
            }
        }
        Ok(true)
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).field("family", &self.family.name).finish()
    }
}

/// Reports a remote engine's failure once: the first error after a success
/// (or a different error) gives a message, repeats give none.
#[derive(Debug, Default)]
pub struct ErrorLatch(Mutex<Option<String>>);

impl ErrorLatch {
    /// The message to show for `err`, if it should be shown.
    pub fn failed(&self, err: &NetError) -> Option<String> {
        // A refusal is per file (or per setting): each one is said once.
        let key = match err {
            NetError::Refused(m) => m.clone(),
            _ => format!("{:?}", std::mem::discriminant(err)),
        };
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_deref() == Some(key.as_str()) {
            return None;
        }
        *last = Some(key);
        Some(match err {
            NetError::Refused(m) => m.clone(),
            _ => format!("locode: the remote completion engine failed: {err}. Completions stay empty until it answers."),
        })
    }

    /// A success: the next error is reported again.
    pub fn succeeded(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let mut c = RemoteEngineConfig { kind: RemoteKind::LlamaServer, ..Default::default() };
        assert_eq!(c.url(), "http://127.0.0.1:8080/completion");
        c.endpoint = "http://gpu-box:9000/".into();
        assert_eq!(c.url(), "http://gpu-box:9000/completion");
        c.endpoint = "http://gpu-box:9000/completion".into();
        assert_eq!(c.url(), "http://gpu-box:9000/completion");
        c.kind = RemoteKind::Ollama;
        c.endpoint.clear();
        assert_eq!(c.url(), "http://127.0.0.1:11434/api/generate");
        c.kind = RemoteKind::Openai;
        c.endpoint = "http://h/v1".into();
        assert_eq!(c.url(), "http://h/v1/completions");
        c.endpoint = "http://h/v1/completions".into();
        assert_eq!(c.url(), "http://h/v1/completions");
        c.endpoint = "http://h:8000".into();
        assert_eq!(c.url(), "http://h:8000/v1/completions");
    }

    #[test]
    fn the_raw_prompt_writes_special_pieces_as_their_token_text() {
        let family = prompt::by_name("qwen2.5-coder").unwrap();
        let extra = family.render_repo("shop", "main.py", &[("tax.py".into(), "def tax(x):\n    return x\n".into())]);
        let parts = prompt::FimParts { extra: &extra, prefix: "def f(a):\n", suffix: "\nprint(f(1))\n", middle: "    return a" };
        let text = prompt_text(&family.render_fim(&parts)).unwrap();
        expect_test::expect![[r#"
            <|repo_name|>shop
            <|file_sep|>tax.py
            def tax(x):
                return x
            <|file_sep|>main.py
            <|fim_prefix|>def f(a):
            <|fim_suffix|>
            print(f(1))
            <|fim_middle|>    return a"#]]
        .assert_eq(&text);
        let chat = [Piece::Chat(vec![])];
        assert!(prompt_text(&chat).is_err());
    }

    #[test]
    fn each_document_keeps_its_slot_until_the_least_recently_used_gives_it_up() {
        let mut s = Slots::new(2);
        assert_eq!(s.slot_for("a.py"), 0);
        assert_eq!(s.slot_for("b.py"), 1);
        assert_eq!(s.slot_for("a.py"), 0);
        // Full: b.py was used least recently.
        assert_eq!(s.slot_for("c.py"), 1);
        assert_eq!(s.slot_for("a.py"), 0);
        assert_eq!(s.slot_for("b.py"), 1, "c.py gave it up");
        assert_eq!(s.slot_for("c.py"), 0);
        // No slot count: the server chooses.
        let mut none = Slots::new(0);
        assert_eq!(none.slot_for("a.py"), -1);
        assert_eq!(none.slot_for("b.py"), -1);
    }

    #[test]
    fn timings_of_each_server() {
        let mut g = Generation::default();
        let llama = json!({"content": "", "stop": true, "tokens_evaluated": 300, "tokens_cached": 296,
            "timings": {"cache_n": 296, "prompt_n": 4, "prompt_ms": 31.5, "predicted_n": 12, "predicted_ms": 120.0}});
        read_timings(&llama, &mut g);
        assert_eq!((g.prompt_tokens, g.evaluated_tokens, g.generated_tokens), (300, 4, 12));
        assert_eq!((g.prompt_ms, g.generate_ms), (31.5, 120.0));

        // An older llama-server: no timings, the counts only.
        let mut g = Generation::default();
        read_timings(&json!({"tokens_evaluated": 300, "tokens_cached": 280}), &mut g);
        assert_eq!((g.prompt_tokens, g.evaluated_tokens), (300, 20));

        let mut g = Generation::default();
        let ollama = json!({"response": "", "done": true, "prompt_eval_count": 7, "prompt_eval_duration": 2_500_000,
            "eval_count": 5, "eval_duration": 50_000_000});
        read_timings(&ollama, &mut g);
        assert_eq!((g.prompt_tokens, g.evaluated_tokens, g.generated_tokens), (7, 7, 5));
        assert_eq!((g.prompt_ms, g.generate_ms), (2.5, 50.0));

        let mut g = Generation::default();
        let openai = json!({"choices": [], "usage": {"prompt_tokens": 120, "completion_tokens": 9,
            "prompt_tokens_details": {"cached_tokens": 112}}});
        read_timings(&openai, &mut g);
        assert_eq!((g.prompt_tokens, g.evaluated_tokens, g.generated_tokens), (120, 8, 9));
    }

    #[test]
    fn first_words_past_the_forced_prefix() {
        assert_eq!(first_word("    return a", ""), "    return");
        assert_eq!(first_word(" x(1)", " "), "x");
        assert_eq!(first_word("\n\n  (a, b)", ""), "\n\n  (");
        assert_eq!(first_word("   ", ""), "");
        assert!(has_code("  x", " "));
        assert!(!has_code("  \n", " "));
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
