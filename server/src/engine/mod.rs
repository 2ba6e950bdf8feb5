//! The inference engine, with two backends behind one handle (`Engine`):
//!
//! - embedded (`llama`): one OS thread owns the llama.cpp model and context;
//!   requests reach it over a channel, carry a cancel token, and answer on a
//!   oneshot. Only this module links llama.cpp.
//! - remote (`remote`): an inference server over HTTP (llama-server, Ollama,
//!   OpenAI-compatible) takes the same jobs, with the same prompt layout,
//!   stop rule, early answers and background work; set with
//!   `Engine::load_remote`, it answers the completion jobs from then on.
//!   Chat prompts (explain, refactor) stay with the embedded model.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::config::{EngineConfig, RemoteEngineConfig};
use crate::net::NetError;
use crate::prompt::{Family, Piece};

pub mod kvstore;
#[cfg(feature = "llama")]
mod llama;
pub mod remote;

/// Set to stop a request: checked between prompt batches and between tokens.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
    /// True when both handles control the same request.
    pub fn same_as(&self, other: &CancelToken) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Cancels its token when dropped: a request future dropped by `$/cancelRequest`
/// stops its engine work too.
pub struct CancelOnDrop(pub CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A callback with the text generated so far.
pub type OnToken = Box<dyn FnMut(&str) + Send>;

pub struct CompletionJob {
    /// Which KV slot (one per document) the request belongs to.
    pub slot: String,
    pub prompt: Vec<Piece>,
    pub max_tokens: u32,
    /// Lets generation stop as soon as the suggestion is settled.
    pub stop: Option<Arc<dyn StopRule>>,
    pub cancel: CancelToken,
    /// Called with the text generated so far after each token (progress, streaming).
    pub on_token: Option<OnToken>,
    /// Background work (cache warm-up): stops as soon as a foreground request waits.
    pub background: bool,
    /// Text the generation must start with (token healing): the prompt left
    /// out the partial word and blanks before the cursor, and decoding is
    /// constrained to tokens consistent with them until they are covered.
    pub forced_prefix: String,
    /// Once `forced_prefix` is covered, the next character is not a blank:
    /// the first line starts at the cursor's indentation, never deeper
    /// (`CompletionContext::settled_indent`).
    pub no_deeper: bool,
    /// Answer early with what is settled, then go on in the background.
    pub early: Option<Early>,
    /// A second try after an answer that came to nothing: the first token
    /// with code in it (past `forced_prefix`) must not be this one, and the
    /// generation must not end before it has code.
    pub avoid: Option<String>,
    /// With `avoid`: nor may a line break come before the code (on an open
    /// line, where the code belongs on the cursor's line).
    pub avoid_breaks: bool,
    /// A smaller prompt for when `prompt` would take longer than its
    /// budget to evaluate (a document's first request, a window move):
    /// the answer then comes from it, in a slot of its own, and the caller
    /// builds the whole prompt in the background (`Generation::first_window`).
    pub first_window: Option<FirstWindow>,
}

impl CompletionJob {
    /// A job for `prompt` in `slot`: no stop rule, callback, healing, early
    /// answer or first window (benches, tests, plain generations).
    pub fn new(slot: impl Into<String>, prompt: Vec<Piece>, max_tokens: u32) -> Self {
        CompletionJob {
            slot: slot.into(),
            prompt,
            max_tokens,
            stop: None,
            cancel: CancelToken::new(),
            on_token: None,
            background: false,
            forced_prefix: String::new(),
            no_deeper: false,
            early: None,
            avoid: None,
            avoid_breaks: false,
            first_window: None,
        }
    }
}

/// Builds a smaller window's prompt of about as many tokens as the engine
/// asks for (what it evaluates in a budget at its measured speed); None
/// when it would not be much smaller than the whole one.
pub type SmallPrompt = Arc<dyn Fn(usize) -> Option<Vec<Piece>> + Send + Sync>;

/// See `CompletionJob::first_window`.
pub struct FirstWindow {
    pub prompt: SmallPrompt,
    /// Most milliseconds the whole prompt's evaluation may take (as the
    /// engine's measured speed predicts it) before the small one is used.
    pub budget_ms: u64,
}

/// The caller's say on a generation in progress (its post-processing): the
/// engine knows nothing of what makes a suggestion.
pub trait StopRule: Send + Sync {
    /// True once `generated` holds everything the suggestion can use.
    fn is_done(&self, generated: &str) -> bool;
    /// What can be shown now of `generated`, an answer still being
    /// generated (see `Early`); None while nothing can.
    fn early(&self, generated: &str) -> Option<String>;
}

/// An early answer: once it is `at` and the stop rule has a suggestion
/// from the complete lines so far
/// (`StopRule::early`), it is sent on `tx` with the generation so far. From then on
/// the job is background work: it yields to any foreground request, and
/// `cancel` replaces the request's own token (the request has been
/// answered). The job's reply gets the whole generation, or as much as was
/// generated before it yielded.
pub struct Early {
    /// `earlyAnswerMs` after the request was made: time it waited for the
    /// engine (a build's share, a request ahead of it) counts, as it does
    /// for the user.
    pub at: std::time::Instant,
    pub tx: tokio::sync::oneshot::Sender<(Generation, String)>,
    pub cancel: CancelToken,
}

/// What one request cost and produced.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Generation {
    pub text: String,
    /// Tokens in the whole prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens that had to be evaluated (not found in the KV cache).
    pub evaluated_tokens: usize,
    pub generated_tokens: usize,
    pub prompt_ms: f64,
    pub generate_ms: f64,
    /// True when the request was cancelled or superseded; `text` is then empty.
    pub cancelled: bool,
    /// True when the answer came from the last suggestion without the model.
    pub typed_through: bool,
    /// Prompt-lookup speculation: tokens drafted and drafts accepted.
    pub drafted_tokens: usize,
    pub accepted_tokens: usize,
    /// The model ended the text itself (an end-of-generation or stop
    /// token), rather than a limit or the stop rule stopping it.
    pub stopped: bool,
    /// An early answer's continuation stopped to let a request through.
    pub yielded: bool,
    /// The text of the first token that brought code (past the forced
    /// prefix): what a second try avoids (`CompletionJob::avoid`).
    pub first_word: String,
    /// The answer came from the job's small first window: the whole
    /// prompt still has to be built (`CompletionJob::first_window`).
    pub first_window: bool,
    /// Prompt tokens loaded from a state saved on disk instead of evaluated.
    pub restored_tokens: usize,
    /// The answer came from a generation started for an earlier keystroke,
    /// whose text the user typed through while it ran (the request waited
    /// for it instead of starting over).
    pub joined: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub size_bytes: u64,
    pub description: String,
    pub family: String,
    /// The FIM tokens of the family with their ids in this model.
    pub fim_tokens: Vec<(String, i32)>,
    pub n_params: u64,
    pub n_ctx_train: u32,
    pub n_ctx: u32,
    pub threads: u32,
    pub gpu_layers: u32,
    pub gpu_offload_supported: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("model file not found: {0} (run `make model` to fetch the default model, or set `model` / --model to a GGUF file)")]
    ModelMissing(PathBuf),
    #[error("{path} is not a usable GGUF model: {reason}")]
    ModelInvalid { path: PathBuf, reason: String },
    #[error("model {path} has no fill-in-the-middle tokens of a known family (qwen2.5-coder, starcoder2, deepseek-coder, codellama, codestral); set `family` if it has FIM tokens under other names")]
    NoFim { path: PathBuf },
    #[error("model {path} needs about {need_mib} MiB of memory but only {available_mib} MiB is available; choose a smaller or more quantized model, or free memory")]
    TooLarge { path: PathBuf, need_mib: u64, available_mib: u64 },
    #[error("{0}")]
    Family(String),
    #[error("no model is loaded: {0}")]
    NotLoaded(String),
    #[error("prompt of {prompt} tokens plus {max_new} new ones does not fit the context of {n_ctx}")]
    PromptTooLong { prompt: usize, max_new: u32, n_ctx: u32 },
    #[error("llama.cpp failed: {0}")]
    Llama(String),
    #[error("this build has no embedded engine (built without the `llama` feature)")]
    Unavailable,
    #[error("the engine thread stopped")]
    Gone,
    /// A remote engine's request failed (see `remote::ErrorLatch`).
    #[error("{0}")]
    Remote(NetError),
}

/// Features this binary was built with, for `doctor`.
pub fn build_features() -> Vec<&'static str> {
    let mut f = Vec::new();
    if cfg!(feature = "llama") {
        f.push("llama");
    }
    if cfg!(feature = "cuda") {
        f.push("cuda");
    }
    if cfg!(feature = "metal") {
        f.push("metal");
    }
    if cfg!(feature = "vulkan") {
        f.push("vulkan");
    }
    f
}

/// Checks a model file before llama.cpp sees it, for a clear message.
pub fn check_model_file(path: &std::path::Path) -> Result<u64, EngineError> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|_| EngineError::ModelMissing(path.to_path_buf()))?;
    if !meta.is_file() {
        return Err(EngineError::ModelInvalid { path: path.into(), reason: "not a regular file".into() });
    }
    let mut magic = [0u8; 4];
    let ok = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok();
    if !ok || &magic != b"GGUF" {
        return Err(EngineError::ModelInvalid { path: path.into(), reason: "the file does not start with the GGUF magic".into() });
    }
    Ok(meta.len())
}

/// Refuses a model whose weights cannot fit in the memory available now
/// (RAM plus free swap, within the cgroup's limit): llama.cpp would map it
/// and then page without end, or be killed for memory.
pub fn check_memory(path: &std::path::Path, size_bytes: u64) -> Result<(), EngineError> {
    let Some(available) = available_memory() else { return Ok(()) };
    // Weights plus the KV cache and compute buffers, roughly.
    let need = size_bytes + size_bytes / 10 + (128 << 20);
    if need > available {
        return Err(EngineError::TooLarge { path: path.into(), need_mib: need >> 20, available_mib: available >> 20 });
    }
    Ok(())
}

/// Bytes of memory available to this process, where the system says (Linux).
fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
    };
    let mut available = field("MemAvailable:")? + field("SwapFree:").unwrap_or(0);
    // A cgroup v2 limit (containers) caps it further.
    let cg = |f: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{f}")).ok()?.trim().parse::<u64>().ok();
    if let (Some(max), Some(current)) = (cg("memory.max"), cg("memory.current")) {
        available = available.min(max.saturating_sub(current));
    }
    Some(available)
}

/// Fault injection for tests: true when `LOCODE_TEST_HOOKS=1` is set in the
/// environment and `slot` (a document URI) contains `marker`. Never set in
/// normal use; lets tests make the engine thread panic.
pub(crate) fn test_fault(slot: &str, marker: &str) -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("LOCODE_TEST_HOOKS").is_ok_and(|v| v == "1")) && slot.contains(marker)
}

pub(crate) enum Msg {
    Load {
        config: EngineConfig,
        progress: Box<dyn FnMut(f32) + Send>,
        reply: tokio::sync::oneshot::Sender<Result<(ModelInfo, Family), EngineError>>,
    },
    Complete {
        job: CompletionJob,
        reply: tokio::sync::oneshot::Sender<Result<Generation, EngineError>>,
    },
    /// Save a document's KV slot to disk and free it (the document closed).
    Release {
        slot: String,
    },
    /// Save the KV slots, free the model and context and end the thread.
    Shutdown,
}

/// A handle to the engine thread. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    tx: std::sync::mpsc::Sender<Msg>,
    /// Foreground requests sent and not yet picked up by the engine thread.
    pending: Arc<AtomicUsize>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
    /// The remote engine that answers completion jobs, if one is set.
    remote: Arc<RwLock<Option<Arc<remote::Remote>>>>,
    /// The embedded engine's prompt speed, tokens/s as f64 bits (0: not
    /// measured yet), for sizing a first window (`prompt_speed`).
    speed: Arc<AtomicU64>,
}

impl Engine {
    /// Starts the engine thread (no model yet).
    pub fn spawn() -> Engine {
        let (tx, rx) = std::sync::mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let speed = Arc::new(AtomicU64::new(0));
        let (p, sp) = (pending.clone(), speed.clone());
        let thread = std::thread::Builder::new().name("locode-engine".into()).spawn(move || run(rx, p, sp)).expect("spawn engine thread");
        Engine { tx, pending, thread: Arc::new(std::sync::Mutex::new(Some(thread))), remote: Arc::default(), speed }
    }

    /// How fast the embedded engine evaluates prompt tokens (tokens/s, as
    /// last measured); None before it has measured, or while a remote
    /// engine answers completions.
    pub fn prompt_speed(&self) -> Option<f64> {
        let v = f64::from_bits(self.speed.load(Ordering::Relaxed));
        (v > 0.0 && !self.is_remote()).then_some(v)
    }

    /// Saves the KV slot of a closed document to disk (when the KV cache
    /// is kept on disk) and frees it.
    pub fn release(&self, slot: &str) {
        let _ = self.tx.send(Msg::Release { slot: slot.to_string() });
    }

    /// Sets up a remote engine (`completionEngine`) and has it answer
    /// completion jobs from now on: the family its settings name, and a
    /// description of the server as the model.
    pub async fn load_remote(&self, config: RemoteEngineConfig) -> Result<(ModelInfo, Family), EngineError> {
        let (r, info, family) = remote::connect(config).await?;
        self.set_remote(Some(r));
        Ok((info, family))
    }

    /// Sets (or, with None, removes) the remote engine that answers
    /// completion jobs; without one the embedded model answers them.
    pub fn set_remote(&self, r: Option<remote::Remote>) {
        *self.remote.write().unwrap_or_else(|e| e.into_inner()) = r.map(Arc::new);
    }

    /// True while a remote engine answers completion jobs.
    pub fn is_remote(&self) -> bool {
        self.remote.read().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Ends the engine thread once the work queued before this call is done,
    /// and waits until llama.cpp has freed the model: the process must not
    /// exit (and run llama.cpp's static destructors) while the thread is
    /// still tearing down. Later requests on any handle get `Gone`.
    pub fn shutdown(&self) {
        // Counted as a waiting request, so a background warm-up yields to it
        // at its next batch instead of running to its end.
        self.pending.fetch_add(1, Ordering::AcqRel);
        let _ = self.tx.send(Msg::Shutdown);
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Loads (or reloads) a model. `progress` gets 0.0..=1.0 while loading.
    pub async fn load(&self, config: EngineConfig, progress: impl FnMut(f32) + Send + 'static) -> Result<(ModelInfo, Family), EngineError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx.send(Msg::Load { config, progress: Box::new(progress), reply }).map_err(|_| EngineError::Gone)?;
        rx.await.map_err(|_| EngineError::Gone)?
    }

    pub async fn complete(&self, job: CompletionJob) -> Result<Generation, EngineError> {
        let chat = job.prompt.iter().any(|p| matches!(p, Piece::Chat(_)));
        let remote = if chat { None } else { self.remote.read().unwrap_or_else(|e| e.into_inner()).clone() };
        if let Some(r) = remote {
            return r.complete(job).await;
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        let foreground = !job.background;
        if foreground {
            self.pending.fetch_add(1, Ordering::AcqRel);
        }
        if self.tx.send(Msg::Complete { job, reply }).is_err() {
            if foreground {
                self.pending.fetch_sub(1, Ordering::AcqRel);
            }
            return Err(EngineError::Gone);
        }
        rx.await.map_err(|_| EngineError::Gone)?
    }
}

#[cfg(feature = "llama")]
fn run(rx: std::sync::mpsc::Receiver<Msg>, pending: Arc<AtomicUsize>, speed: Arc<AtomicU64>) {
    llama::run(rx, pending, speed)
}

#[cfg(not(feature = "llama"))]
fn run(rx: std::sync::mpsc::Receiver<Msg>, pending: Arc<AtomicUsize>, _speed: Arc<AtomicU64>) {
    while let Ok(msg) = rx.recv() {
        if let Msg::Complete { job, .. } = &msg {
            if !job.background {
                pending.fetch_sub(1, Ordering::AcqRel);
            }
        }
        match msg {
            Msg::Load { reply, .. } => {
                let _ = reply.send(Err(EngineError::Unavailable));
            }
            Msg::Complete { reply, .. } => {
                let _ = reply.send(Err(EngineError::Unavailable));
            }
            Msg::Release { .. } => {}
            Msg::Shutdown => return,
        }
    }
}

/// How many rounds llama.cpp's OpenMP threads spin at a barrier before they
/// sleep. OpenMP's default (300,000) turns each token into a fight for the
/// cores when other programs want them, and passive waiting (0) makes the
/// hundreds of barriers of each token a sleep and a wake-up. 1,000 rounds
/// cover the gap between two operations of one token, no more: on 2 cores,
/// 47 ms a token against 65 passive and 42 for llama-server's default, and
/// with both cores busy with other programs 82-98 ms against 91-134 passive
/// and 300-900 at the default (benches/README.md, throughput).
pub const OPENMP_SPIN_ROUNDS: &str = "1000";

/// Starts the process again with `GOMP_SPINCOUNT` set to
/// `OPENMP_SPIN_ROUNDS` unless the OpenMP wait is set already (libgomp reads
/// it before `main`). `who` names the program in the error.
#[cfg(unix)]
pub fn ensure_openmp_wait(who: &str) {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("OMP_WAIT_POLICY").is_none() && std::env::var_os("GOMP_SPINCOUNT").is_none() {
        if let Ok(exe) = std::env::current_exe() {
            let err = std::process::Command::new(exe).args(std::env::args_os().skip(1)).env("GOMP_SPINCOUNT", OPENMP_SPIN_ROUNDS).exec();
            eprintln!("{who}: could not restart with GOMP_SPINCOUNT={OPENMP_SPIN_ROUNDS}: {err}");
        }
    }
}

#[cfg(not(unix))]
pub fn ensure_openmp_wait(_who: &str) {}
