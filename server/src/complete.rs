//! The completion pipeline shared by the LSP server and `locode complete`:
//! snapshot -> context -> prompt -> engine -> post-processing.

use crate::config::CompletionConfig;
use crate::context::{self, CompletionContext};
use crate::documents::Snapshot;
use crate::engine::{CancelToken, CompletionJob, Engine, EngineError, Generation};
use crate::postprocess::Trimmer;
use crate::prompt::{Family, FimParts};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Suggestion {
    /// Text to insert at the cursor (empty: nothing worth showing).
    pub text: String,
    /// Version of the document it was computed for.
    pub version: i32,
    pub stats: Generation,
}

/// What the prompt for a cursor will be. Pure.
pub fn prepare(
    family: &Family,
    snap: &Snapshot,
    cursor: usize,
    cfg: &CompletionConfig,
) -> (CompletionContext, Vec<crate::prompt::Piece>) {
    let ctx = context::build(snap, cursor, cursor, cfg);
    let pieces = family.render_fim(&FimParts { extra: "", prefix: &ctx.prefix, suffix: &ctx.suffix, middle: &ctx.middle });
    (ctx, pieces)
}

pub async fn suggest(
    engine: &Engine,
    family: &Family,
    slot: &str,
    snap: &Snapshot,
    cursor: usize,
    cfg: &CompletionConfig,
    cancel: CancelToken,
) -> Result<Suggestion, EngineError> {
    let (ctx, prompt) = prepare(family, snap, cursor, cfg);
    let trimmer = Trimmer::new(&ctx, cfg.max_lines);
    let job = CompletionJob {
        slot: slot.to_string(),
        prompt,
        max_tokens: cfg.max_tokens,
        trimmer: Some(trimmer.clone()),
        cancel,
    };
    let stats = engine.complete(job).await?;
    let text = if stats.cancelled { String::new() } else { trimmer.finish(&stats.text) };
    Ok(Suggestion { text, version: snap.version, stats })
}
