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

/// The folder explanation files go in: made once per session with a random
/// name and mode 0700 (`tempfile`), in `$XDG_RUNTIME_DIR` when that is a
/// real directory of ours that only we can open, else in the temporary
/// directory; removed by [`cleanup`] when the session ends.
static FOLDER: std::sync::Mutex<Option<tempfile::TempDir>> = std::sync::Mutex::new(None);

/// Writes the explanation to a markdown file in the private folder.
fn write_explanation(sel: &Selection, markdown: &str) -> Option<PathBuf> {
    let mut folder = FOLDER.lock().unwrap_or_else(|e| e.into_inner());
    if folder.as_ref().is_none_or(|d| !private_dir(d.path(), None)) {
        *folder = Some(make_folder()?);
    }
    let dir = folder.as_ref()?.path();
    let stem = sel.file.rsplit_once('.').map(|(s, _)| s).unwrap_or(&sel.file);
    let stem: String = stem.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    let path = dir.join(format!("explain-{stem}-{}.md", sel.first_line + 1));
    // A file of ours from an earlier explanation of the same lines: the new
    // one is created afresh (never through whatever is at that name).
    let _ = std::fs::remove_file(&path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    use std::io::Write;
    opts.open(&path).and_then(|mut f| f.write_all(markdown.as_bytes())).ok()?;
    Some(path)
}

fn make_folder() -> Option<tempfile::TempDir> {
    let mut b = tempfile::Builder::new();
    b.prefix("locode-explain-");
    #[cfg(unix)]
    b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let uid = own_uid()?;
    let runtime = dirs::runtime_dir().filter(|d| private_dir(d, Some(uid)));
    let dir = match runtime {
        Some(r) => b.tempdir_in(r),
        None => b.tempdir_in(std::env::temp_dir()),
    }
    .ok()?;
    private_dir(dir.path(), None).then_some(dir)
}

/// Is `dir` a directory (not a symlink to one) that only its owner can
/// open, and (with `uid`) owned by that user?
#[cfg(unix)]
fn private_dir(dir: &std::path::Path, uid: Option<u32>) -> bool {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.file_type().is_dir() && m.permissions().mode() & 0o077 == 0 && uid.is_none_or(|u| m.uid() == u))
}

#[cfg(not(unix))]
fn private_dir(dir: &std::path::Path, _: Option<u32>) -> bool {
    std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_dir())
}

/// This process's user: the owner of a file it creates.
#[cfg(unix)]
fn own_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile::tempfile().ok()?;
    probe.metadata().ok().map(|m| m.uid())
}

#[cfg(not(unix))]
fn own_uid() -> Option<u32> {
    Some(0)
}

/// Removes the explanation folder and its files (the session is over).
pub fn cleanup() {
    if let Some(dir) = FOLDER.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = dir.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn explanations_go_in_a_private_folder_that_is_removed() {
        use std::os::unix::fs::PermissionsExt;
        let code = "def f():\n    return 1\n";
        let sel = Selection {
            uri: "file:///w/util.py".into(),
            path: "/w/util.py".into(),
            file: "util.py".into(),
            language: crate::syntax::Language::Python,
            text: code.into(),
            start: 0,
            end: code.len(),
            code: code.into(),
            first_line: 0,
            lines: 2,
        };
        let path = write_explanation(&sel, "**util.py:1-2**\n\nreturns 1\n").unwrap();
        let dir = path.parent().unwrap().to_path_buf();
        assert!(dir.file_name().unwrap().to_str().unwrap().starts_with("locode-explain-"), "{}", dir.display());
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // A second explanation of the same lines replaces the first.
        assert_eq!(write_explanation(&sel, "again").unwrap(), path);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "again");
        // The folder is checked again before each write.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let moved = write_explanation(&sel, "third").unwrap();
        assert_ne!(moved.parent().unwrap(), dir, "a folder others can open is not used");
        assert!(!dir.exists(), "the old folder (ours) is removed");
        let dir = moved.parent().unwrap().to_path_buf();
        cleanup();
        assert!(!dir.exists(), "{} is left behind", dir.display());
        // Not a private folder: a symlink to one, or someone else's.
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&real, tmp.path().join("link")).unwrap();
        assert!(private_dir(&real, own_uid()));
        assert!(!private_dir(&tmp.path().join("link"), None));
        assert!(!private_dir(&real, Some(own_uid().unwrap() + 1)));
    }
}
