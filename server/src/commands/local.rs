//! Chat answers from the local model, for explain and refactor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Reporter;
use crate::engine::{CancelOnDrop, CancelToken, CompletionJob, Engine, Generation};
use crate::prompt::{ChatMessage, Piece};

/// The engine slot of command jobs, apart from the per-document completion slots.
const SLOT: &str = "__commands__";

/// Whether the local model is loaded.
pub enum ModelStatus {
    Loading,
    Ready,
    Failed(String),
}

/// The engine, and where to read whether its model is loaded.
pub struct Local<'a> {
    pub engine: &'a Engine,
    pub status: &'a (dyn Fn() -> ModelStatus + Send + Sync),
}

/// Waits (up to two minutes) for the model to be loaded.
async fn wait_model(local: &Local<'_>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match (local.status)() {
            ModelStatus::Ready => return Ok(()),
            ModelStatus::Failed(e) => return Err(format!("no local model: {e}")),
            ModelStatus::Loading if Instant::now() > deadline => return Err("the model is still loading".into()),
            ModelStatus::Loading => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Generates a chat answer with the local model. With `stop_at_fence`,
/// generation stops once a fenced code block has closed.
pub(super) async fn generate(
    local: &Local<'_>,
    messages: Vec<ChatMessage>,
    max_tokens: u32,
    report: Reporter,
    what: &'static str,
    stop_at_fence: bool,
) -> Result<(String, Generation), String> {
    wait_model(local).await?;
    let cancel = CancelToken::new();
    let _guard = CancelOnDrop(cancel.clone());
    let captured = Arc::new(Mutex::new(String::new()));
    let early = Arc::new(AtomicBool::new(false));
    let on_token = {
        let (captured, early, cancel) = (captured.clone(), early.clone(), cancel.clone());
        let mut n = 0usize;
        let mut last = Instant::now();
        move |text: &str| {
            n += 1;
            if last.elapsed() >= Duration::from_millis(250) || n == 1 {
                last = Instant::now();
                report(&format!("{what}: {n} tokens"));
            }
            if stop_at_fence && super::fence_closed(text) {
                *captured.lock().unwrap() = text.to_string();
                early.store(true, Ordering::Release);
                cancel.cancel();
            }
        }
    };
    let job = CompletionJob {
        slot: SLOT.into(),
        prompt: vec![Piece::Chat(messages)],
        max_tokens,
        stop: None,
        cancel: cancel.clone(),
        on_token: Some(Box::new(on_token)),
        background: false,
        forced_prefix: String::new(),
        no_deeper: false,
        early: None,
        avoid: None,
        avoid_breaks: false,
        first_window: None,
    };
    let gen = local.engine.complete(job).await.map_err(|e| e.to_string())?;
    tracing::debug!(
        prompt = gen.prompt_tokens,
        evaluated = gen.evaluated_tokens,
        generated = gen.generated_tokens,
        prompt_ms = gen.prompt_ms,
        generate_ms = gen.generate_ms,
        "{what}"
    );
    if gen.cancelled {
        if early.load(Ordering::Acquire) {
            let text = captured.lock().unwrap().clone();
            return Ok((text, gen));
        }
        return Err("cancelled".into());
    }
    Ok((gen.text.clone(), gen))
}
