//! The llama.cpp owner thread: model, context, per-document KV slots.
//!
//! Each slot is one llama.cpp sequence and remembers the tokens its KV cache
//! holds. A request evaluates only the tokens after the longest common prefix
//! of its prompt with the slot's tokens; generated tokens stay cached too, so
//! a suggestion the user types through is already in the cache.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::token::LlamaToken;

use super::kvstore::{self, KvStore};
use super::{check_model_file, CompletionJob, EngineError, FirstWindow, Generation, ModelInfo, Msg};
use crate::config::EngineConfig;
use crate::prompt::{self, Family, Piece};

pub(super) fn run(rx: Receiver<Msg>, pending: Arc<AtomicUsize>, speed: Arc<AtomicU64>) {
    let backend = match backend() {
        Ok(b) => b,
        Err(e) => {
            drain_with_error(rx, EngineError::Llama(format!("backend init: {e}")));
            return;
        }
    };
    let mut next: Option<Msg> = None;
    let mut last_error = "the server has not loaded one yet".to_string();
    loop {
        let msg = match next.take() {
            Some(m) => m,
            None => match rx.recv() {
                Ok(m) => m,
                Err(_) => return,
            },
        };
        match msg {
            Msg::Complete { reply, job } => {
                if !job.background {
                    pending.fetch_sub(1, Ordering::AcqRel);
                }
                let _ = reply.send(Err(EngineError::NotLoaded(last_error.clone())));
            }
            Msg::Release { .. } => {}
            Msg::Shutdown => return,
            Msg::Load { config, progress, reply } => match load(backend, &config, progress) {
                Ok((model, family, info)) => {
                    let _ = reply.send(Ok((info.clone(), family.clone())));
                    // Serve until a reload is asked for or the channel closes.
                    // A panic outside a request (a request's own is caught in
                    // `serve`) loses the context: serving restarts with a
                    // fresh one and the same model, unless it keeps panicking.
                    let mut quick_panics = 0;
                    loop {
                        let started = Instant::now();
                        match catch_unwind(AssertUnwindSafe(|| serve(backend, &model, &family, &config, &rx, &pending, &speed))) {
                            Ok(Ok(Some(reload))) => next = Some(reload),
                            Ok(Ok(None)) => return,
                            Ok(Err(e)) => last_error = e.to_string(),
                            Err(p) => {
                                quick_panics = if started.elapsed().as_secs() < 10 { quick_panics + 1 } else { 1 };
                                tracing::error!("the engine thread panicked: {}; restarting it", panic_text(&*p));
                                if quick_panics < 5 {
                                    continue;
                                }
                                last_error = format!("the engine panicked {quick_panics} times in a row: {}", panic_text(&*p));
                            }
                        }
                        break;
                    }
                }
                Err(e) => {
                    last_error = e.to_string();
                    let _ = reply.send(Err(e));
                }
            },
        }
    }
}

/// llama.cpp's backend is initialised once per process and shared by all
/// engine threads (a restarted engine, or several engines in tests).
fn backend() -> Result<&'static LlamaBackend, String> {
    static BACKEND: std::sync::OnceLock<Result<LlamaBackend, String>> = std::sync::OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn drain_with_error(rx: Receiver<Msg>, err: EngineError) {
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Load { reply, .. } => drop(reply.send(Err(err.clone()))),
            Msg::Complete { reply, .. } => drop(reply.send(Err(err.clone()))),
            Msg::Release { .. } => {}
            Msg::Shutdown => return,
        }
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
}

fn load(
    backend: &LlamaBackend,
    config: &EngineConfig,
    mut progress: Box<dyn FnMut(f32) + Send>,
) -> Result<(LlamaModel, Family, ModelInfo), EngineError> {
    let path = config.model_path();
    let size_bytes = check_model_file(&path)?;
    let gpu_layers = config.gpu_layers.unwrap_or(if backend.supports_gpu_offload() { 999 } else { 0 });
    if gpu_layers == 0 || !backend.supports_gpu_offload() {
        super::check_memory(&path, size_bytes)?;
    }
    let params = LlamaModelParams::default().with_n_gpu_layers(gpu_layers).with_progress_callback(move |p| {
        progress(p);
        true
    });
    let model = LlamaModel::load_from_file(backend, &path, &params).map_err(|e| EngineError::ModelInvalid {
        path: path.clone(),
        reason: format!("llama.cpp could not load it ({e}); the file may be truncated or corrupt"),
    })?;

    let mut family = match &config.family {
        Some(name) => prompt::by_name(name).map_err(|e| EngineError::Family(e.to_string()))?,
        None => prompt::detect(|t| special_token(&model, t).is_some()).ok_or(EngineError::NoFim { path: path.clone() })?,
    };
    // Optional tokens the model lacks (repository format) are left out, so
    // prompts never ask for them.
    let layout: Vec<String> = family.fim_tokens().into_iter().map(str::to_string).collect();
    family.tokens.retain(|_, t| layout.contains(t) || special_token(&model, t).is_some());
    let mut fim_tokens = Vec::new();
    for t in family.fim_tokens() {
        match special_token(&model, t) {
            Some(id) => fim_tokens.push((t.to_string(), id.0)),
            None => {
                return Err(EngineError::Family(format!(
                    "model {} lacks the token {t} that prompt family {} needs",
                    path.display(),
                    family.name
                )))
            }
        }
    }
    let info = ModelInfo {
        path,
        size_bytes,
        description: model.meta_val_str("general.name").unwrap_or_default(),
        family: family.name.clone(),
        fim_tokens,
        n_params: model.n_params(),
        n_ctx_train: model.n_ctx_train(),
        n_ctx: config.context_size,
        threads: config.threads(),
        gpu_layers,
        gpu_offload_supported: backend.supports_gpu_offload(),
    };
    Ok((model, family, info))
}

/// The id of `text` if it is exactly one special token of the model.
fn special_token(model: &LlamaModel, text: &str) -> Option<LlamaToken> {
    let vocab = model.vocab();
    let special = vocab.tokenize(text.as_bytes(), false, true);
    if special.len() != 1 {
        return None;
    }
    // A special token does not come out of plain-text tokenization.
    let plain = vocab.tokenize(text.as_bytes(), false, false);
    (plain != special).then_some(special[0])
}

/// A KV sequence: the document it holds (`key`, empty when free) and the
/// tokens in its cache.
struct Slot<T = LlamaToken> {
    key: String,
    tokens: Vec<T>,
    /// A smaller window's size in tokens, as first asked for: kept while
    /// the slot holds it, so that a wavering speed estimate does not
    /// change the window (and evaluate it again). 0 for a whole prompt.
    window: usize,
}

/// Slot indices, most recently used first.
type Recency = lru::LruCache<usize, ()>;

/// The slot for `key`: its own, else a free one, else the least recently
/// used (`recency`), else the first.
fn choose_slot<T>(slots: &[Slot<T>], recency: &Recency, key: &str) -> usize {
    slots
        .iter()
        .position(|s| s.key == key)
        .or_else(|| slots.iter().position(|s| s.key.is_empty()))
        .or_else(|| recency.peek_lru().map(|(&i, _)| i))
        .unwrap_or(0)
}

struct Server<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    n_batch: usize,
    /// KV cells of each slot's own stream: the most tokens a prompt and
    /// its answer may take.
    n_ctx_seq: usize,
    slots: Vec<Slot>,
    /// Slot indices, most recently used first.
    recency: Recency,
    /// Each token's text, for constrained decoding (token healing); built
    /// the first time it is needed. Control tokens have no text.
    pieces: Option<Vec<Vec<u8>>>,
    /// Every token that ends a generation (end-of-generation and the
    /// family's stops); built the first time a second try needs it.
    enders: Option<Vec<LlamaToken>>,
    /// Tokens with a line break in their text (`ban`), found once.
    breakers: Option<Vec<LlamaToken>>,
    stops: HashSet<LlamaToken>,
    specials: std::collections::HashMap<String, LlamaToken>,
    add_bos: bool,
    pending: Arc<AtomicUsize>,
    speculative: bool,
    /// Prompt tokens per second, as last measured (shared with `Engine`).
    speed: Arc<AtomicU64>,
    /// States saved on disk, once the model's hash is known (a thread
    /// computes it at start).
    kv: Arc<OnceLock<Arc<Mutex<KvStore>>>>,
    /// Saves in progress (joined at shutdown).
    saves: Vec<std::thread::JoinHandle<()>>,
}

/// Runs requests until a reload arrives (returned) or the channel closes.
fn serve(
    backend: &LlamaBackend,
    model: &LlamaModel,
    family: &Family,
    config: &EngineConfig,
    rx: &Receiver<Msg>,
    pending: &Arc<AtomicUsize>,
    speed: &Arc<AtomicU64>,
) -> Result<Option<Msg>, EngineError> {
    // Each slot (document) has a KV stream of its own, `context_size`
    // cells: in one unified cache, attention runs over every document's
    // cells, which made prompts about 10% and tokens 18% slower with the
    // other slots filled (benches/README.md, `throughput`).
    let n_ctx_seq = config.context_size.max(256).next_multiple_of(256);
    let n_batch = config.batch_size.clamp(32, n_ctx_seq);
    let n_slots = config.slots.clamp(1, 64);
    let n_ctx = n_ctx_seq.saturating_mul(n_slots);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_batch)
        .with_n_ubatch(n_batch)
        .with_n_seq_max(n_slots)
        .with_kv_unified(false)
        .with_n_threads(config.threads() as i32)
        .with_n_threads_batch(config.threads() as i32);
    let ctx =
        model.new_context(backend, params).map_err(|e| EngineError::Llama(format!("could not create a context of {n_ctx} tokens: {e}")))?;
    let mut stops = HashSet::new();
    for s in &family.fim.stop {
        if let Some(t) = special_token(model, s) {
            stops.insert(t);
        }
    }
    let mut specials = std::collections::HashMap::new();
    for t in family.tokens.values() {
        if let Some(id) = special_token(model, t) {
            specials.insert(t.clone(), id);
        }
    }
    let mut server = Server {
        model,
        ctx,
        batch: LlamaBatch::new(n_batch as usize, 1),
        n_batch: n_batch as usize,
        n_ctx_seq: n_ctx_seq as usize,
        slots: (0..n_slots).map(|_| Slot { key: String::new(), tokens: Vec::new(), window: 0 }).collect(),
        recency: lru::LruCache::new(std::num::NonZeroUsize::new(n_slots as usize).expect("at least one slot")),
        pieces: None,
        enders: None,
        breakers: None,
        stops,
        specials,
        add_bos: model.vocab().should_add_bos(),
        pending: pending.clone(),
        speculative: config.speculative,
        speed: speed.clone(),
        kv: Arc::default(),
        saves: Vec::new(),
    };
    server.open_kv_store(config);
    // The speed this model ran at last time on this machine, else a
    // measure now (which the first request would wait for).
    let speed_file = speed_file(config);
    match speed_file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()).and_then(|v| v.trim().parse::<f64>().ok()) {
        Some(v) if v > 0.0 => server.speed.store(v.to_bits(), Ordering::Relaxed),
        _ => {
            server.measure_speed();
            server.store_speed(speed_file.as_deref());
        }
    }
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Load { .. } => {
                server.save_all();
                server.store_speed(speed_file.as_deref());
                return Ok(Some(msg));
            }
            Msg::Shutdown => {
                server.save_all();
                server.store_speed(speed_file.as_deref());
                return Ok(None);
            }
            Msg::Release { slot } => server.release(&slot),
            Msg::Complete { job, reply } => {
                if !job.background {
                    server.pending.fetch_sub(1, Ordering::AcqRel);
                }
                if !job.background && super::test_fault(&job.slot, "locode-test-panic-engine") {
                    panic!("test fault: engine thread");
                }
                let result = catch_unwind(AssertUnwindSafe(|| server.complete(job))).unwrap_or_else(|p| {
                    let what =
                        p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
                    tracing::error!("engine panicked: {what}; clearing the KV cache");
                    server.reset();
                    Err(EngineError::Llama(format!("internal error: {what}")))
                });
                let _ = reply.send(result);
            }
        }
    }
    server.save_all();
    server.store_speed(speed_file.as_deref());
    Ok(None)
}

/// Where the prompt speed of a model with these threads is remembered
/// between runs, beside the KV states (none when those are off).
fn speed_file(config: &EngineConfig) -> Option<std::path::PathBuf> {
    if config.kv_cache_mb == 0 {
        return None;
    }
    let model = config.model_path();
    let size = std::fs::metadata(&model).map(|m| m.len()).unwrap_or(0);
    let name = model.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Some(config.kv_cache_dir().join(format!("speed-{name}-{size}-t{}-ctx{}.txt", config.threads(), config.context_size)))
}

/// How many tokens `a` and `b` start with alike.
fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The slot key of a document's first window (`CompletionJob::first_window`).
fn first_window_key(key: &str) -> String {
    format!("{key}\u{1}first-window")
}

/// The slot key of a document's second window: a window between the first
/// one and the whole prompt, which a build fills first and requests then
/// move to.
fn second_window_key(key: &str) -> String {
    format!("{key}\u{1}second-window")
}

/// Prompt tokens a smaller window may take, from the engine's speed: what
/// it evaluates in `budget_ms`, less a fifth for the answer's first tokens,
/// in steps (64, 96, 128, 192, 256...) so that the window, and with it the
/// cached small prompt, stays put while the measured speed wavers.
fn window_tokens(tps: f64, budget_ms: u64) -> usize {
    let t = (tps * budget_ms as f64 / 1e3 * 0.8) as usize;
    let mut step = 64;
    while step * 2 <= t {
        step *= 2;
    }
    if step * 3 / 2 <= t {
        step * 3 / 2
    } else {
        step
    }
}

/// The second window's budget, in first-window budgets: on 2 cores about
/// 500 tokens (the first is 64), built in 2-3 s of the engine's idle time.
const SECOND_WINDOW_FACTOR: u64 = 8;

/// A saved state must give at least this many more tokens than the slot
/// already holds to be worth reading from disk.
const RESTORE_MIN: usize = 64;

/// Slots holding fewer tokens than this are not saved to disk.
const SAVE_MIN: usize = 256;

impl Server<'_> {
    /// Opens the on-disk KV store in the background: hashing the model
    /// (once per model file, remembered) must not delay the first request.
    fn open_kv_store(&self, config: &EngineConfig) {
        if config.kv_cache_mb == 0 {
            return;
        }
        let (dir, limit, model) = (config.kv_cache_dir(), config.kv_cache_mb.saturating_mul(1 << 20), config.model_path());
        // A state holds a record per KV stream, so the number of slots is
        // part of its shape too.
        let shape = [self.n_ctx_seq as u32, self.slots.len() as u32];
        let cell = self.kv.clone();
        // Quick when the model's hash is remembered: then open it now, so
        // the first request can already restore.
        let known = kvstore::model_sha256_known(&model, &dir);
        let opening = std::thread::Builder::new().name("locode-kv-open".into()).spawn(move || {
            // States depend on the context's shape as well as the model.
            let opened = kvstore::model_sha256(&model, &dir).and_then(|sha| {
                let mut key = sha;
                for (i, b) in shape.iter().flat_map(|n| n.to_le_bytes()).enumerate() {
                    key[i] ^= b;
                }
                KvStore::open(&dir, limit, key)
            });
            match opened {
                Ok(store) => {
                    tracing::info!(dir = %dir.display(), states = store.len(), bytes = store.total_bytes(), "KV cache on disk");
                    let _ = cell.set(Arc::new(Mutex::new(store)));
                }
                Err(e) => tracing::warn!(dir = %dir.display(), "KV cache on disk unavailable: {e}"),
            }
        });
        if let (true, Ok(h)) = (known, opening) {
            let _ = h.join();
        }
    }

    /// Remembers the prompt speed for the next start (`speed_file`).
    fn store_speed(&self, file: Option<&std::path::Path>) {
        let v = f64::from_bits(self.speed.load(Ordering::Relaxed));
        if let (Some(f), true) = (file, v > 0.0) {
            let _ = std::fs::create_dir_all(f.parent().unwrap_or(f)).and_then(|_| std::fs::write(f, format!("{v:.1}\n")));
        }
    }

    /// A first measure of prompt speed: a 64-token batch, before any
    /// request (it also makes llama.cpp allocate its compute buffers now).
    fn measure_speed(&mut self) {
        let n = 64.min(self.n_batch).min(self.n_ctx_seq / 2);
        let tokens = vec![self.model.vocab().bos(); n];
        let t = Instant::now();
        if self.decode(0, &tokens, 0).is_ok() {
            self.note_speed(n, t.elapsed().as_secs_f64());
        }
        let _ = self.ctx.clear_kv_cache_seq(Some(0), None, None);
    }

    /// Folds a measured prompt evaluation into the speed estimate.
    fn note_speed(&self, tokens: usize, secs: f64) {
        if tokens < 32 || secs <= 0.0 {
            return;
        }
        let now = tokens as f64 / secs;
        let old = f64::from_bits(self.speed.load(Ordering::Relaxed));
        let v = if old > 0.0 { 0.5 * old + 0.5 * now } else { now };
        self.speed.store(v.to_bits(), Ordering::Relaxed);
    }

    fn tokens_per_s(&self) -> f64 {
        let v = f64::from_bits(self.speed.load(Ordering::Relaxed));
        if v > 0.0 {
            v
        } else {
            50.0
        }
    }

    /// Writes slot `i`'s state to disk in the background (when the store
    /// is open and the slot holds enough to be worth it).
    fn save_slot(&mut self, i: usize) {
        let Some(store) = self.kv.get().cloned() else { return };
        let slot = &self.slots[i];
        if slot.tokens.len() < SAVE_MIN || slot.key.contains('\u{1}') {
            return;
        }
        let flags = Default::default();
        let size = self.ctx.state_seq_get_size_ext(i as i32, flags);
        let mut state = vec![0u8; size];
        // SAFETY: the buffer has the size llama.cpp asked for.
        let n = unsafe { self.ctx.state_seq_get_data_ext(state.as_mut_ptr(), i as i32, flags) };
        if n != size {
            tracing::warn!("could not read a KV state to save ({n} of {size} bytes)");
            return;
        }
        let tokens: Vec<i32> = slot.tokens.iter().map(|t| t.0).collect();
        self.saves.retain(|h| !h.is_finished());
        let spawned = std::thread::Builder::new().name("locode-kv-save".into()).spawn(move || {
            let t = Instant::now();
            let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
            match store.save(&tokens, &state) {
                Ok(()) => tracing::debug!(tokens = tokens.len(), ms = t.elapsed().as_millis() as u64, "KV state saved"),
                Err(e) => tracing::warn!("could not save a KV state: {e}"),
            }
        });
        if let Ok(h) = spawned {
            self.saves.push(h);
        }
    }

    /// Saves every slot and waits for the writes (shutdown, reload).
    fn save_all(&mut self) {
        for i in 0..self.slots.len() {
            self.save_slot(i);
        }
        for h in self.saves.drain(..) {
            let _ = h.join();
        }
    }

    /// A document closed: its slot (and its smaller windows') is saved and freed.
    fn release(&mut self, key: &str) {
        let smaller = [first_window_key(key), second_window_key(key)];
        for i in 0..self.slots.len() {
            if self.slots[i].key == key || smaller.contains(&self.slots[i].key) {
                self.save_slot(i);
                self.free_slot(i);
            }
        }
    }

    fn free_slot(&mut self, i: usize) {
        self.slots[i].tokens.clear();
        self.slots[i].window = 0;
        self.slots[i].key.clear();
        self.recency.pop(&i);
        let _ = self.ctx.clear_kv_cache_seq(Some(i as u32), None, None);
    }

    /// Loads into slot `seq` the saved state sharing the longest start
    /// with `prompt`, when it gives more than the `n_past` tokens the slot
    /// already shares with it; returns the tokens now reusable.
    fn restore(&mut self, seq: usize, prompt: &[LlamaToken], n_past: usize, gen: &mut Generation) -> usize {
        let Some(store) = self.kv.get().cloned() else { return n_past };
        let ids: Vec<i32> = prompt.iter().map(|t| t.0).collect();
        let t = Instant::now();
        let saved = {
            let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
            let Some((i, _)) = store.best(&ids, n_past + RESTORE_MIN) else { return n_past };
            match store.load(i) {
                Ok(s) => s,
                Err(_) => return n_past,
            }
        };
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        // SAFETY: the bytes are a state llama.cpp wrote for this model and
        // context size (the store checks the model's hash, the context size
        // and a checksum); llama.cpp checks their shape again.
        if !unsafe { self.ctx.state_seq_set_data_ext(&saved.state, seq as i32, Default::default()) } {
            tracing::warn!("llama.cpp refused a saved KV state");
            let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
            self.slots[seq].tokens.clear();
            return 0;
        }
        self.slots[seq].tokens = saved.tokens.iter().map(|&t| LlamaToken(t)).collect();
        let shared = common_prefix(&self.slots[seq].tokens, prompt);
        gen.restored_tokens = shared;
        tracing::debug!(tokens = shared, ms = t.elapsed().as_millis() as u64, "KV state loaded from disk");
        shared
    }

    fn reset(&mut self) {
        self.ctx.clear_kv_cache();
        for s in &mut self.slots {
            s.tokens.clear();
            s.key.clear();
        }
    }

    fn tokenize(&self, pieces: &[Piece]) -> Result<Vec<LlamaToken>, EngineError> {
        let vocab = self.model.vocab();
        let mut out = Vec::new();
        if self.add_bos {
            out.push(vocab.bos());
        }
        for p in pieces {
            match p {
                Piece::Special(t) => {
                    out.push(*self.specials.get(t).ok_or_else(|| EngineError::Family(format!("the model has no token {t}")))?)
                }
                Piece::Text(s) => out.extend(vocab.tokenize(s.as_bytes(), false, false)),
                Piece::Chat(messages) => {
                    let template =
                        self.model.chat_template(None).map_err(|e| EngineError::Llama(format!("the model has no chat template: {e}")))?;
                    let chat = messages
                        .iter()
                        .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.replace('\0', "")))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| EngineError::Llama(e.to_string()))?;
                    let text = self
                        .model
                        .apply_chat_template(&template, &chat, true)
                        .map_err(|e| EngineError::Llama(format!("chat template: {e}")))?;
                    // The template output carries the role markers as special tokens.
                    if self.add_bos && out.len() == 1 && text.starts_with("<s>") {
                        out.clear();
                    }
                    out.extend(vocab.tokenize(text.as_bytes(), false, true));
                }
            }
        }
        Ok(out)
    }

    /// The slot for `key`: its own, else a free one, else the least recently used.
    fn slot_for(&mut self, key: &str) -> usize {
        let idx = choose_slot(&self.slots, &self.recency, key);
        if self.slots[idx].key != key {
            self.save_slot(idx);
            let slot = &mut self.slots[idx];
            slot.key = key.to_string();
            slot.tokens.clear();
            slot.window = 0;
            let _ = self.ctx.clear_kv_cache_seq(Some(idx as u32), None, None);
        }
        self.recency.put(idx, ());
        idx
    }

    /// Decodes `tokens` at positions from `pos` in sequence `seq`, asking for
    /// logits of the last one. (Each slot has a KV stream of its own, and a
    /// prompt is refused before it could outgrow it: evicting other slots
    /// would free nothing.)
    fn decode(&mut self, seq: usize, tokens: &[LlamaToken], pos: usize) -> Result<(), EngineError> {
        self.decode_with(seq, tokens, pos, false)
    }

    /// As `decode`, with logits for every token when `all_logits`.
    fn decode_with(&mut self, seq: usize, tokens: &[LlamaToken], pos: usize, all_logits: bool) -> Result<(), EngineError> {
        self.batch.clear();
        for (i, t) in tokens.iter().enumerate() {
            self.batch
                .add(*t, (pos + i) as i32, &[seq as i32], all_logits || i + 1 == tokens.len())
                .map_err(|e| EngineError::Llama(e.to_string()))?;
        }
        self.ctx.decode(&mut self.batch).map_err(|e| EngineError::Llama(e.to_string()))
    }

    /// Cancelled, or background work with a foreground request waiting.
    fn should_stop(&self, job: &CompletionJob) -> bool {
        job.cancel.is_cancelled() || (job.background && self.pending.load(Ordering::Acquire) > 0)
    }

    /// Evaluates `prompt` from `n_past` into slot `seq` (whose cache holds
    /// its first `n_past` tokens), in chunks; false when it stopped first
    /// (cancelled, or background work with a request waiting).
    fn fill(
        &mut self,
        seq: usize,
        prompt: &[LlamaToken],
        mut n_past: usize,
        job: &CompletionJob,
        gen: &mut Generation,
    ) -> Result<bool, EngineError> {
        self.ctx.clear_kv_cache_seq(Some(seq as u32), Some(n_past as u32), None).map_err(|e| EngineError::Llama(e.to_string()))?;
        self.slots[seq].tokens.truncate(n_past);
        // Chunks small enough that a cancel is seen within a fraction of a
        // second on a CPU, large enough to keep the matmuls efficient;
        // background work, which a keystroke must not wait for, in chunks
        // of about `BACKGROUND_CHUNK_S`.
        let chunk = if job.background { ((self.tokens_per_s() * BACKGROUND_CHUNK_S) as usize).clamp(16, EVAL_CHUNK) } else { EVAL_CHUNK };
        while n_past < prompt.len() {
            if job.cancel.is_cancelled() || self.should_stop(job) {
                return Ok(false);
            }
            let end = (n_past + self.n_batch.min(chunk)).min(prompt.len());
            let chunk = prompt[n_past..end].to_vec();
            self.decode(seq, &chunk, n_past)?;
            self.slots[seq].tokens.extend_from_slice(&chunk);
            gen.evaluated_tokens += chunk.len();
            n_past = end;
        }
        Ok(true)
    }

    /// How many of `prompt`'s first tokens the slot keyed `key` holds.
    fn cached_in(&self, key: &str, prompt: &[LlamaToken]) -> usize {
        self.slots.iter().find(|s| s.key == key).map_or(0, |s| common_prefix(&s.tokens, prompt))
    }

    /// The tokens of the smaller window kept in the slot `key`, sized to
    /// `budget_ms` of evaluation at the engine's speed (or to the size the
    /// slot was built at, while it holds it), and that size; empty when
    /// there is none (off, or not much smaller than the whole prompt of
    /// `whole` tokens).
    fn small_window(
        &self,
        fw: &FirstWindow,
        key: &str,
        budget_ms: u64,
        whole: usize,
        max_tokens: u32,
    ) -> Result<(Vec<LlamaToken>, usize), EngineError> {
        let kept = self.slots.iter().find(|s| s.key == key && !s.tokens.is_empty()).map_or(0, |s| s.window);
        let size = if kept > 0 { kept } else { window_tokens(self.tokens_per_s(), budget_ms) };
        let small = match (fw.prompt)(size) {
            Some(pieces) => self.tokenize(&pieces)?,
            None => return Ok((Vec::new(), size)),
        };
        let fits = small.len() + (max_tokens as usize) < self.n_ctx_seq && small.len() < whole;
        Ok((if fits { small } else { Vec::new() }, size))
    }

    /// The prompt of the largest window around the cursor (`fw`'s builder)
    /// of at most `room` tokens; empty when none is built.
    fn fitting_window(&self, fw: &FirstWindow, room: usize) -> Result<Vec<LlamaToken>, EngineError> {
        let mut size = room;
        // The builder sizes by characters, so a dense text may come out
        // longer than asked (shrink by what it overshot), and it builds
        // nothing not much smaller than the whole prompt (shrink a little).
        for _ in 0..6 {
            let tokens = match (fw.prompt)(size) {
                Some(pieces) => self.tokenize(&pieces)?,
                None => Vec::new(),
            };
            if !tokens.is_empty() && tokens.len() <= room {
                return Ok(tokens);
            }
            size = if tokens.is_empty() { size * 3 / 4 } else { size * room / tokens.len() * 9 / 10 };
            if size < 64 {
                break;
            }
        }
        Ok(Vec::new())
    }

    fn complete(&mut self, mut job: CompletionJob) -> Result<Generation, EngineError> {
        if !job.background && super::test_fault(&job.slot, "locode-test-panic-request") {
            panic!("test fault: request");
        }
        let mut gen = Generation::default();
        if self.should_stop(&job) {
            gen.cancelled = true;
            return Ok(gen);
        }
        let t0 = Instant::now();
        let mut prompt = self.tokenize(&job.prompt)?;
        let (n_ctx, whole) = (self.n_ctx_seq, prompt.len());
        // The most prompt tokens a slot's stream holds beside the answer.
        let room = n_ctx.saturating_sub(job.max_tokens as usize + 1);
        if whole > room {
            // Dense text (or windows set past `contextSize`): the nearest
            // lines that fit, where the caller can build them.
            prompt = match job.first_window.take() {
                Some(fw) => self.fitting_window(&fw, room)?,
                None => Vec::new(),
            };
            tracing::debug!(whole, fitting = prompt.len(), n_ctx, "the prompt outgrows a slot: answering from the window that fits");
        }
        if prompt.is_empty() {
            return Err(EngineError::PromptTooLong { prompt: whole, max_new: job.max_tokens, n_ctx: n_ctx as u32 });
        }
        gen.prompt_tokens = prompt.len();
        let mut seq = self.slot_for(&job.slot);

        // Reuse the longest common prefix (from the slot, else from a state
        // saved on disk); always evaluate at least the last prompt token,
        // whose logits start the generation.
        let mut n_past = common_prefix(&self.slots[seq].tokens, &prompt);
        if prompt.len() - n_past > RESTORE_MIN {
            n_past = self.restore(seq, &prompt, n_past, &mut gen);
        }
        // Too long to evaluate now: answer from a smaller window, in a slot
        // of its own (the caller builds the whole prompt meanwhile): the
        // second window once it is in the cache, else the first window.
        if let Some(fw) = job.first_window.take() {
            let keys = [first_window_key(&job.slot), second_window_key(&job.slot)];
            let need_ms = |n: usize, tps: f64| n as f64 / tps * 1e3;
            let budget = fw.budget_ms as f64;
            if need_ms(prompt.len() - n_past, self.tokens_per_s()) > budget && self.slots.len() > 1 {
                let (second, second_size) = if self.slots.len() > 2 {
                    self.small_window(&fw, &keys[1], fw.budget_ms.saturating_mul(SECOND_WINDOW_FACTOR), prompt.len(), job.max_tokens)?
                } else {
                    (Vec::new(), 0)
                };
                let second_cached = self.cached_in(&keys[1], &second);
                let second_missing = second.len() - second_cached;
                if job.background {
                    // A build: the second window first, then the whole;
                    // both yield to every request.
                    if second_missing > 0 {
                        let from = second_cached;
                        let s = self.slot_for(&keys[1]);
                        self.slots[s].window = second_size;
                        tracing::debug!(second = second.len(), from, "building the second window");
                        if !self.fill(s, &second, from, &job, &mut gen)? {
                            gen.cancelled = true;
                            return Ok(gen);
                        }
                        seq = self.slot_for(&job.slot);
                        n_past = n_past.min(self.slots[seq].tokens.len());
                    }
                } else {
                    // A move to the second window evaluates at most half the budget
                    // (the build brings it up to date in the background).
                    let (small, size, key) = if !second.is_empty() && need_ms(second_missing, self.tokens_per_s()) <= budget / 2.0 {
                        (second, second_size, &keys[1])
                    } else {
                        let (first, size) = self.small_window(&fw, &keys[0], fw.budget_ms, prompt.len(), job.max_tokens)?;
                        (first, size, &keys[0])
                    };
                    if !small.is_empty() {
                        tracing::debug!(whole = prompt.len(), small = small.len(), key = %key.escape_debug(), "answering from a smaller window");
                        prompt = small;
                        gen.prompt_tokens = prompt.len();
                        gen.first_window = true;
                        gen.restored_tokens = 0;
                        seq = self.slot_for(key);
                        self.slots[seq].window = size;
                        n_past = common_prefix(&self.slots[seq].tokens, &prompt);
                    }
                }
            } else {
                // The whole prompt is ready: the smaller windows are done with.
                for key in &keys {
                    if let Some(i) = self.slots.iter().position(|s| &s.key == key) {
                        self.free_slot(i);
                    }
                }
            }
        }
        n_past = n_past.min(prompt.len() - 1);
        let cached = &self.slots[seq].tokens;
        tracing::debug!(slot = seq, prompt = prompt.len(), cached = cached.len(), reused = n_past, "prompt reuse");
        if tracing::enabled!(tracing::Level::TRACE) && n_past < cached.len().min(prompt.len()) {
            let show = |t: &[LlamaToken]| {
                let mut b = Vec::new();
                for &x in t {
                    self.model.vocab().token_to_piece_into(x, &mut b, true, None);
                }
                String::from_utf8_lossy(&b).into_owned()
            };
            let from = n_past.saturating_sub(8);
            tracing::trace!(
                before = %show(&prompt[from..n_past]),
                cached = %show(&cached[n_past..cached.len().min(n_past + 8)]),
                now = %show(&prompt[n_past..prompt.len().min(n_past + 8)]),
                "prompt diverges from the cache"
            );
        }
        if !self.fill(seq, &prompt, n_past, &job, &mut gen)? {
            gen.cancelled = true;
            return Ok(gen);
        }
        n_past = prompt.len();
        gen.prompt_ms = t0.elapsed().as_secs_f64() * 1e3;
        if !job.background && gen.restored_tokens == 0 {
            self.note_speed(gen.evaluated_tokens, gen.prompt_ms / 1e3);
        }

        let t1 = Instant::now();
        let vocab = self.model.vocab();
        let mut bytes = Vec::new();
        // The prompt is the history drafts are looked up in.
        let mut history = prompt;
        let forced = std::mem::take(&mut job.forced_prefix).into_bytes();
        let avoid_word = job.avoid.take().map(String::into_bytes);
        let avoid = avoid_word.as_deref().map(|w| (w, job.avoid_breaks));
        let no_deeper = job.no_deeper;
        let mut next = self.pick(self.batch.n_tokens() - 1, &forced, &bytes, avoid, no_deeper);
        let mut early = job.early.take();
        // Complete lines already looked at for an early answer (bytes).
        let mut early_seen = 0;
        let mut done = false;
        while !done && (gen.generated_tokens as u32) < job.max_tokens {
            if job.cancel.is_cancelled() {
                gen.cancelled = true;
                gen.text.clear();
                self.truncate_kv(seq);
                return Ok(gen);
            }
            if job.background && self.pending.load(Ordering::Acquire) > 0 {
                gen.yielded = true;
                break;
            }
            // Answer with what is settled; the rest continues in the background.
            // (Only when a new line is complete: the stop rule's check may parse.)
            let lines_end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if lines_end > early_seen && early.as_ref().is_some_and(|e| Instant::now() >= e.at) {
                early_seen = lines_end;
                let text = String::from_utf8_lossy(&bytes);
                if let Some(answer) = job.stop.as_ref().and_then(|t| t.early(&text)) {
                    let e = early.take().expect("checked above");
                    let mut shown = gen.clone();
                    shown.text = text.into_owned();
                    shown.generate_ms = t1.elapsed().as_secs_f64() * 1e3;
                    if e.tx.send((shown, answer)).is_ok() {
                        job.cancel = e.cancel;
                        job.background = true;
                    } else {
                        // Nobody waits for the early answer, so neither for the rest.
                        gen.cancelled = true;
                        self.truncate_kv(seq);
                        return Ok(gen);
                    }
                }
            }
            // Accept `next`, then decode it together with drafted tokens that
            // follow an earlier occurrence of the recent tokens (prompt lookup).
            let token = next;
            if vocab.is_eog(token) || self.stops.contains(&token) {
                gen.stopped = true;
                break;
            }
            // (Looked for only until found: no scan per token after that.)
            let looking = gen.first_word.is_empty();
            let len = bytes.len();
            vocab.token_to_piece_into(token, &mut bytes, false, None);
            if looking && has_code(&bytes, &forced) {
                gen.first_word = String::from_utf8_lossy(&bytes[len..]).into_owned();
            }
            gen.generated_tokens += 1;
            history.push(token);
            if self.emit(&mut job, &bytes) || n_past + 1 >= n_ctx || gen.generated_tokens as u32 >= job.max_tokens {
                break;
            }
            let room = (job.max_tokens as usize - gen.generated_tokens).min(n_ctx - n_past - 2);
            let healing = bytes.len() < forced.len() || (avoid.is_some() && !has_code(&bytes, &forced));
            let draft = if self.speculative && !healing { lookup_draft(&history, room.min(MAX_DRAFT)) } else { Vec::new() };
            let mut batch_tokens = Vec::with_capacity(1 + draft.len());
            batch_tokens.push(token);
            batch_tokens.extend_from_slice(&draft);
            self.decode_with(seq, &batch_tokens, n_past, true)?;
            self.slots[seq].tokens.push(token);
            n_past += 1;
            gen.drafted_tokens += draft.len();
            next = self.pick(0, &forced, &bytes, avoid, no_deeper);
            for (i, &d) in draft.iter().enumerate() {
                if next != d {
                    break;
                }
                // The draft token is what greedy decoding picks; its KV is in place.
                if vocab.is_eog(d) || self.stops.contains(&d) {
                    gen.stopped = true;
                    done = true;
                    break;
                }
                vocab.token_to_piece_into(d, &mut bytes, false, None);
                gen.generated_tokens += 1;
                gen.accepted_tokens += 1;
                history.push(d);
                self.slots[seq].tokens.push(d);
                n_past += 1;
                if self.emit(&mut job, &bytes) || gen.generated_tokens as u32 >= job.max_tokens {
                    done = true;
                    break;
                }
                next = argmax(self.ctx.get_logits_ith(i as i32 + 1));
            }
            // Drop the KV of rejected drafts.
            self.truncate_kv(seq);
        }
        self.truncate_kv(seq);
        gen.text = String::from_utf8_lossy(&bytes).into_owned();
        gen.generate_ms = t1.elapsed().as_secs_f64() * 1e3;
        Ok(gen)
    }

    /// The greedy choice from the logits of batch entry `i`. While the text
    /// so far (`done`) does not yet cover `forced`, only tokens whose text
    /// agrees with the rest of `forced` are candidates: the model continues
    /// a half-typed word instead of starting a new one. With `no_deeper`,
    /// the token after `forced` (and `forced`'s own last token) does not add
    /// blanks to it.
    fn pick(&mut self, i: i32, forced: &[u8], done: &[u8], avoid: Option<(&[u8], bool)>, no_deeper: bool) -> LlamaToken {
        // A second try: until there is code, neither the first try's first
        // word nor the end of the generation (nor a line break, `breaks`).
        let banned;
        let logits = match avoid {
            Some((word, breaks)) if !has_code(done, forced) => {
                let mut l = self.ctx.get_logits_ith(i).to_vec();
                self.ban(&mut l, word, breaks);
                banned = l;
                &banned[..]
            }
            _ => self.ctx.get_logits_ith(i),
        };
        let settling = no_deeper && done == forced;
        if !settling && (done.len() >= forced.len() || !forced.starts_with(done)) {
            return argmax(logits);
        }
        let rest = &forced[done.len()..];
        let pieces = self.pieces.get_or_insert_with(|| {
            let vocab = self.model.vocab();
            let mut buf = Vec::new();
            (0..vocab.n_tokens())
                .map(|t| {
                    let token = LlamaToken(t);
                    if vocab.is_eog(token) || vocab.is_control(token) {
                        return Vec::new();
                    }
                    buf.clear();
                    vocab.token_to_piece_into(token, &mut buf, false, None);
                    buf.clone()
                })
                .collect()
        });
        // The best token that heals in the way the model was trained on,
        // else the best one that merely agrees with the forced text.
        let mut best = [None, None];
        let mut best_v = [f32::NEG_INFINITY; 2];
        for (t, &v) in logits.iter().enumerate() {
            if v > best_v[0] {
                let p = pieces.get(t).map(Vec::as_slice).unwrap_or_default();
                if no_deeper && adds_blank(p, rest) {
                    continue;
                }
                // Once `forced` is covered, any token but a blank one (the
                // end of the generation too).
                let fit = match heal_fit(p, rest) {
                    _ if settling => 0,
                    HealFit::Natural => 0,
                    HealFit::Agrees => 1,
                    HealFit::No => continue,
                };
                for k in fit..2 {
                    if v > best_v[k] {
                        best_v[k] = v;
                        best[k] = Some(t);
                    }
                }
            }
        }
        best[0].or(best[1]).map_or_else(|| argmax(logits), |t| LlamaToken(t as i32))
    }

    /// Sets the logits of `word` and of every token that ends the
    /// generation (with `breaks`, every token with a line break) to minus
    /// infinity.
    fn ban(&mut self, logits: &mut [f32], word: &[u8], breaks: bool) {
        let vocab = self.model.vocab();
        if breaks {
            let mut buf = Vec::new();
            let breakers = self.breakers.get_or_insert_with(|| {
                (0..vocab.n_tokens())
                    .map(LlamaToken)
                    .filter(|&t| {
                        buf.clear();
                        vocab.token_to_piece_into(t, &mut buf, false, None);
                        buf.contains(&b'\n')
                    })
                    .collect()
            });
            for t in breakers.iter() {
                if let Some(v) = logits.get_mut(t.0 as usize) {
                    *v = f32::NEG_INFINITY;
                }
            }
        }
        let stops = &self.stops;
        let enders = self
            .enders
            .get_or_insert_with(|| (0..vocab.n_tokens()).map(LlamaToken).filter(|&t| vocab.is_eog(t) || stops.contains(&t)).collect());
        for t in enders.iter() {
            if let Some(v) = logits.get_mut(t.0 as usize) {
                *v = f32::NEG_INFINITY;
            }
        }
        // The word as one token (how the first try wrote it), and without
        // its leading blank, as it comes after a forced one.
        let bare = word.trim_ascii_start();
        for w in [word, bare] {
            if w.is_empty() {
                continue;
            }
            if let [t] = vocab.tokenize(w, false, false)[..] {
                if let Some(v) = logits.get_mut(t.0 as usize) {
                    *v = f32::NEG_INFINITY;
                }
            }
        }
    }

    /// Reports progress; true once the suggestion is settled.
    fn emit(&self, job: &mut CompletionJob, bytes: &[u8]) -> bool {
        let text = String::from_utf8_lossy(bytes);
        if let Some(f) = job.on_token.as_mut() {
            f(&text);
        }
        job.stop.as_ref().is_some_and(|t| t.is_done(&text))
    }

    /// Makes the sequence's KV cache hold exactly the slot's tokens.
    fn truncate_kv(&mut self, seq: usize) {
        let n = self.slots[seq].tokens.len() as u32;
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), Some(n), None);
    }
}

/// Has the generation `done` anything but blanks past the forced prefix?
fn has_code(done: &[u8], forced: &[u8]) -> bool {
    done.get(forced.len()..).is_some_and(|rest| rest.iter().any(|b| !b.is_ascii_whitespace()))
}

/// How a token's text fits the forced text still to come (token healing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HealFit {
    /// It agrees with the forced text the way the tokenizer would have
    /// split it: a strict prefix of it, or all of it with code after it.
    Natural,
    /// It agrees, but ends the forced blanks with nothing or with more
    /// blanks: a whitespace-only token for the whole indentation. The
    /// tokenizer never makes one before code (`"        x"` is seven
    /// spaces and `" x"`), so after it the model writes blank lines.
    Agrees,
    No,
}

fn heal_fit(piece: &[u8], rest: &[u8]) -> HealFit {
    if piece.is_empty() {
        return HealFit::No;
    }
    if piece.len() < rest.len() {
        return if rest.starts_with(piece) { HealFit::Natural } else { HealFit::No };
    }
    if !piece.starts_with(rest) {
        return HealFit::No;
    }
    let blank = |b: &u8| matches!(b, b' ' | b'\t');
    let after = piece[rest.len()..].first();
    if rest.iter().all(blank) && after.is_none_or(|b| b.is_ascii_whitespace()) {
        HealFit::Agrees
    } else {
        HealFit::Natural
    }
}

/// Does `piece`, coming where `rest` of the forced text is still to be
/// written, go on with a blank past it (deeper than the forced indentation)?
fn adds_blank(piece: &[u8], rest: &[u8]) -> bool {
    piece.len() > rest.len() && piece.starts_with(rest) && matches!(piece[rest.len()], b' ' | b'\t')
}

/// Most prompt tokens evaluated between two looks at the cancel flag:
/// 256 evaluate about 5% faster than 128 (matmuls over more columns;
/// `throughput` bench: 212-218 against 202-206 tokens/s) and are still
/// about a second on 2 cores. Foreground fills are mostly shorter anyway:
/// a cold document is answered from a small first window.
const EVAL_CHUNK: usize = 256;

/// Seconds of evaluation between two looks at waiting requests, for
/// background work: what a request that comes mid-chunk waits, at most
/// (0.3 s was a good part of the replay's slow 5%).
const BACKGROUND_CHUNK_S: f64 = 0.1;

/// Most tokens drafted per step.
const MAX_DRAFT: usize = 8;

/// Prompt-lookup drafting: find the latest earlier occurrence of the last
/// few tokens of `history` and propose the tokens that followed it.
/// The longest tail that occurs earlier wins (4 tokens, then 3, then 2),
/// then the latest occurrence of it; the draft is at most `max` tokens and
/// stops where the tail itself starts.
fn lookup_draft<T: PartialEq + Copy>(history: &[T], max: usize) -> Vec<T> {
    if max == 0 {
        return Vec::new();
    }
    for n in (2..=4).rev() {
        if history.len() <= n {
            continue;
        }
        let tail = &history[history.len() - n..];
        let end = history.len() - n;
        // Search backwards, newest first, for the same n-gram.
        for start in (0..end).rev() {
            if &history[start..start + n] == tail {
                let from = start + n;
                let to = (from + max).min(history.len() - n);
                if to > from {
                    return history[from..to].to_vec();
                }
            }
        }
    }
    Vec::new()
}

fn argmax(logits: &[f32]) -> LlamaToken {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    LlamaToken(best as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healing_prefers_the_split_the_tokenizer_makes() {
        let indent = b"        ";
        // Seven spaces, then " self": how the tokenizer splits indented code.
        assert_eq!(heal_fit(b"       ", indent), HealFit::Natural);
        assert_eq!(heal_fit(b" self", b" "), HealFit::Natural);
        assert_eq!(heal_fit(b"        if", indent), HealFit::Natural);
        // All of the indentation as one blank token, or more blanks, or a
        // blank line: only when nothing natural is there.
        assert_eq!(heal_fit(b"        ", indent), HealFit::Agrees);
        assert_eq!(heal_fit(b"            ", indent), HealFit::Agrees);
        assert_eq!(heal_fit(b"        \n", indent), HealFit::Agrees);
        assert_eq!(heal_fit(b" ", b" "), HealFit::Agrees);
        assert_eq!(heal_fit(b"\t", b"\t"), HealFit::Agrees);
        // Disagreeing or empty.
        assert_eq!(heal_fit(b"    }", indent), HealFit::No);
        assert_eq!(heal_fit(b"x", indent), HealFit::No);
        assert_eq!(heal_fit(b"", indent), HealFit::No);
        // A half-typed word: its own token is natural.
        assert_eq!(heal_fit(b" rad", b" rad"), HealFit::Natural);
        assert_eq!(heal_fit(b" radius", b" rad"), HealFit::Natural);
        assert_eq!(heal_fit(b" r", b" rad"), HealFit::Natural);
        assert_eq!(heal_fit(b" rb", b" rad"), HealFit::No);
    }

    #[test]
    fn no_deeper_refuses_only_blanks_past_the_forced_ones() {
        let indent = b"    ";
        // Past the indentation: more blanks are deeper.
        assert!(adds_blank(b"      ", indent));
        assert!(adds_blank(b"     x", indent));
        assert!(adds_blank(b"    \t", indent));
        assert!(adds_blank(b" ", b""));
        // The indentation itself, code right after it, a blank line, a
        // piece still inside it.
        assert!(!adds_blank(b"    ", indent));
        assert!(!adds_blank(b"    if", indent));
        assert!(!adds_blank(b"    \n", indent));
        assert!(!adds_blank(b"  ", indent));
        assert!(!adds_blank(b"for", b""));
        assert!(!adds_blank(b"", b""));
    }

    #[test]
    fn drafts_follow_the_latest_earlier_occurrence() {
        let t = |v: &[i32]| v.iter().map(|&i| LlamaToken(i)).collect::<Vec<_>>();
        // "1 2 3 4 ... 1 2" drafts "3 4".
        assert_eq!(lookup_draft(&t(&[1, 2, 3, 4, 9, 1, 2]), 2), t(&[3, 4]));
        // The newest occurrence wins.
        assert_eq!(lookup_draft(&t(&[1, 2, 5, 1, 2, 6, 1, 2]), 1), t(&[6]));
        // Nothing repeats, or no room.
        assert!(lookup_draft(&t(&[1, 2, 3, 4]), 4).is_empty());
        assert!(lookup_draft(&t(&[1, 2, 3, 1, 2]), 0).is_empty());
    }

    #[test]
    fn no_draft_without_an_earlier_occurrence() {
        assert!(lookup_draft::<i32>(&[], 4).is_empty());
        assert!(lookup_draft(&[1, 2], 4).is_empty(), "too short to repeat");
        assert!(lookup_draft(&[1, 2, 3, 4, 5, 6, 7, 8], 4).is_empty());
        // Only one token of the tail occurs earlier: not enough.
        assert!(lookup_draft(&[2, 9, 8, 7, 1, 2], 4).is_empty());
    }

    #[test]
    fn a_draft_stops_where_the_tail_starts() {
        // The occurrence right before the tail has nothing after it to propose.
        assert!(lookup_draft(&[1, 2, 1, 2], 4).is_empty());
        assert!(lookup_draft(&[5, 1, 2, 1, 2], 4).is_empty());
        // One token between the occurrence and the tail: that one, whatever `max`.
        assert_eq!(lookup_draft(&[1, 2, 3, 1, 2], 4), [3]);
        // A run of one token: the occurrences overlap the tail; the earliest
        // leaves one token before it.
        assert_eq!(lookup_draft(&[7, 7, 7, 7, 7], 8), [7]);
    }

    #[test]
    fn a_longer_match_wins_over_a_later_one() {
        // "2 3" occurs last before "20 21", but "1 2 3" occurs before "10 11".
        let history = [1, 2, 3, 10, 11, 9, 2, 3, 20, 21, 1, 2, 3];
        assert_eq!(lookup_draft(&history, 2), [10, 11]);
        assert_eq!(lookup_draft(&history, 1), [10]);
        // Among equally long matches, the latest.
        assert_eq!(lookup_draft(&[4, 1, 2, 3, 8, 1, 2, 3, 9, 1, 2, 3], 3), [9]);
    }

    /// Slots from (key, number of cached tokens).
    fn slots(v: &[(&str, usize)]) -> Vec<Slot<u32>> {
        v.iter().map(|(key, n)| Slot { key: key.to_string(), tokens: vec![0; *n], window: 0 }).collect()
    }

    /// Recency after using the slots in this order (the last most recently).
    fn used(order: &[usize]) -> Recency {
        let mut r = Recency::new(std::num::NonZeroUsize::new(8).unwrap());
        for &i in order {
            r.put(i, ());
        }
        r
    }

    #[test]
    fn a_document_gets_its_own_slot_else_a_free_one_else_the_least_recently_used() {
        // Its own, even with a free one before it.
        assert_eq!(choose_slot(&slots(&[("", 0), ("a.py", 2)]), &used(&[1]), "a.py"), 1);
        // A new document: the first free slot.
        assert_eq!(choose_slot(&slots(&[("a.py", 2), ("", 0), ("", 0)]), &used(&[0]), "b.py"), 1);
        // All taken: the least recently used.
        let full = slots(&[("a.py", 1), ("b.py", 1), ("c.py", 1)]);
        assert_eq!(choose_slot(&full, &used(&[1, 0, 2]), "d.py"), 1);
        assert_eq!(choose_slot(&full, &used(&[1, 0, 2, 1]), "d.py"), 0, "slot 1 used again");
        assert_eq!(choose_slot(&full, &used(&[1, 0, 2]), "c.py"), 2, "its own, however recent");
        // No recency to go by: the first.
        assert_eq!(choose_slot(&full, &used(&[]), "d.py"), 0);
    }
}
