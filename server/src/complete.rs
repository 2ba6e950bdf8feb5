//! The completion pipeline shared by the LSP server and `locode complete`:
//! snapshot -> context -> prompt -> engine -> post-processing.

use crate::config::CompletionConfig;
use crate::context::{self, CompletionContext};
use crate::documents::Snapshot;
use crate::engine::{CancelToken, CompletionJob, Engine, EngineError, Generation};
use crate::postprocess::Trimmer;
use crate::prompt::{Family, FimParts, Piece};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Suggestion {
    /// Text to insert at the cursor (empty: nothing worth showing).
    pub text: String,
    /// Version of the document it was computed for.
    pub version: i32,
    pub stats: Generation,
}

/// Where a completion is asked for.
pub struct Spot<'a> {
    pub snap: &'a Snapshot,
    pub cursor: usize,
    /// Prompt anchor (char index <= cursor), see `context::choose_anchor`.
    pub anchor: usize,
}

/// The context and prompt for a spot. Pure.
pub fn prepare(family: &Family, spot: &Spot<'_>, cfg: &CompletionConfig) -> (CompletionContext, Vec<Piece>) {
    let ctx = context::build(spot.snap, spot.cursor, spot.anchor, cfg);
    let pieces = family.render_fim(&FimParts { extra: "", prefix: &ctx.prefix, suffix: &ctx.suffix, middle: &ctx.middle });
    (ctx, pieces)
}

pub async fn suggest(
    engine: &Engine,
    family: &Family,
    slot: &str,
    spot: &Spot<'_>,
    cfg: &CompletionConfig,
    cancel: CancelToken,
) -> Result<Suggestion, EngineError> {
    let (ctx, prompt) = prepare(family, spot, cfg);
    let trimmer = Trimmer::new(&ctx, cfg.max_lines);
    let job = CompletionJob {
        slot: slot.to_string(),
        prompt,
        max_tokens: cfg.max_tokens,
        trimmer: Some(trimmer.clone()),
        cancel,
        on_token: None,
        background: false,
        forced_prefix: ctx.heal.clone(),
    };
    let stats = engine.complete(job).await?;
    let text = if stats.cancelled { String::new() } else { trimmer.finish_with(&stats.text, stats.stopped) };
    Ok(Suggestion { text, version: spot.snap.version, stats })
}

/// Pre-fills the slot's KV cache with the prompt for a spot, in the
/// background: it yields to any foreground request. Returns whether it ran
/// to the end.
pub async fn warm(engine: &Engine, family: &Family, slot: &str, spot: &Spot<'_>, cfg: &CompletionConfig) -> bool {
    let (_, prompt) = prepare(family, spot, cfg);
    let job = CompletionJob {
        slot: slot.to_string(),
        prompt,
        max_tokens: 0,
        trimmer: None,
        cancel: CancelToken::new(),
        on_token: None,
        background: true,
        forced_prefix: String::new(),
    };
    matches!(engine.complete(job).await, Ok(g) if !g.cancelled)
}
