//! Explain a selection with the local model: a markdown explanation as the
//! result, and a document or a message for editors that do not show it.

use std::path::PathBuf;
use std::time::Instant;

use super::local::{self, Local};
use super::{dedent, prompts, CommandsConfig, ExplainOutput, Level, Selection, Ui};
use crate::engine::Generation;

pub struct Explanation {
    pub markdown: String,
    /// Where it was shown besides the result: `result` (nowhere),
    /// `document` or `message`.
    pub shown: &'static str,
    /// From the start of the flow until the explanation was ready.
    pub elapsed_ms: u64,
    pub generation: Generation,
}

pub async fn explain(local: &Local<'_>, ui: &impl Ui, cfg: &CommandsConfig, sel: &Selection) -> Result<Explanation, String> {
    let t0 = Instant::now();
    let (code, _) = dedent(&sel.code);
    let messages = prompts::builtin().explain(sel.language, &sel.file, &code);
    ui.begin("locode: explain", format!("{} lines of {}", sel.lines, sel.file)).await;
    let (text, generation) = match local::generate(local, messages, cfg.explain_max_tokens, ui.reporter(), "explaining", false).await {
        Ok(r) => r,
        Err(e) => {
            ui.end("failed").await;
            return Err(format!("locode: explain failed: {e}"));
        }
    };
    ui.end("done").await;
    let first_line = sel.first_line + 1;
    let markdown = format!("**{}:{}-{}**\n\n{}\n", sel.file, first_line, first_line + sel.lines - 1, text.trim());
    let elapsed_ms = t0.elapsed().as_millis() as u64;
    let shown = show(ui, sel, &markdown, cfg.explain_output).await;
    Ok(Explanation { markdown, shown, elapsed_ms, generation })
}

/// The fallback for editors that do not display a command's result: a
/// markdown file opened in the editor, else a message.
async fn show(ui: &impl Ui, sel: &Selection, markdown: &str, how: ExplainOutput) -> &'static str {
    if how == ExplainOutput::Result {
        return "result";
    }
    if matches!(how, ExplainOutput::Auto | ExplainOutput::Document) {
        if let Some(path) = write_explanation(sel, markdown) {
            if ui.show_file(&path).await {
                return "document";
            }
        }
    }
    ui.show(Level::Info, markdown).await;
    "message"
}

/// Writes the explanation to a private temporary markdown file.
fn write_explanation(sel: &Selection, markdown: &str) -> Option<PathBuf> {
    let dir = dirs::runtime_dir().unwrap_or_else(std::env::temp_dir).join(format!("locode-{}", std::process::id()));
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(&dir).ok()?;
    let stem = sel.file.rsplit_once('.').map(|(s, _)| s).unwrap_or(&sel.file);
    let path = dir.join(format!("explain-{stem}-{}.md", sel.first_line + 1));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    use std::io::Write;
    opts.open(&path).and_then(|mut f| f.write_all(markdown.as_bytes())).ok()?;
    Some(path)
}
