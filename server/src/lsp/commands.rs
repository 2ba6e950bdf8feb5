//! Code actions and `workspace/executeCommand`: the protocol side of
//! explaining and refactoring a selection (the flows are in
//! `commands::{explain, refactor}`, and talk to the client through `LspUi`).
//!
//! Commands (each takes one argument object):
//! - `locode.explain {uri, range}`: markdown explanation as the result (and a
//!   document or message for clients that do not show results).
//! - `locode.refactor {uri, range, instruction | action}`: a validated
//!   `WorkspaceEdit` applied with `workspace/applyEdit`.
//! - `locode.refactorCloud {uri, range, instruction | action}`: the same with
//!   the configured cloud model (only when `cloud.route` is not "never").
//! - `locode.previewCloud {uri, range, instruction | action}`: exactly what
//!   would be sent (redacted body, size, sha256, redactions); sends nothing.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Value};
use tower_lsp_server::jsonrpc::{Error as RpcError, ErrorCode, Result};
use tower_lsp_server::ls_types::*;

use super::{to_pos, Backend, ModelState};
use crate::commands::{explain, prompts, refactor, CommandsConfig, Local, ModelStatus, Selection, Ui};
use crate::documents::{self, Snapshot};
use crate::syntax;

mod ui;
use ui::LspUi;

/// Commands the server executes.
pub const COMMANDS: &[&str] = &["locode.explain", "locode.refactor", "locode.refactorCloud", "locode.previewCloud"];

/// The commands settings (one place to change where they come from).
fn settings(backend: &Backend) -> CommandsConfig {
    backend.state.config.read().unwrap().commands.clone()
}

/// `RequestFailed` (LSP 3.17): the request was valid but could not be done.
fn failed(msg: impl std::fmt::Display) -> RpcError {
    RpcError { code: ErrorCode::ServerError(-32803), message: msg.to_string().into(), data: None }
}

fn invalid(msg: impl std::fmt::Display) -> RpcError {
    RpcError::invalid_params(msg.to_string())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Args {
    uri: Uri,
    #[serde(default)]
    range: Option<Range>,
    #[serde(default)]
    instruction: Option<String>,
    #[serde(default)]
    action: Option<String>,
}

fn parse_args(command: &str, arguments: &[Value]) -> Result<Args> {
    let usage = format!("{command} takes one argument {{uri, range, instruction}} (or {{uri, range, action}})");
    let Some(first) = arguments.first() else {
        return Err(invalid(format!("{usage}; it got none")));
    };
    serde_json::from_value(first.clone()).map_err(|e| invalid(format!("{usage}: {e}")))
}

/// A command's selection, and where its replacement goes.
struct Target {
    sel: Selection,
    uri: Uri,
    key: String,
    /// The document's version the selection was taken from.
    version: i32,
    /// The selection as an LSP range.
    range: Range,
}

/// The document under a short lock (a snapshot is cheap: the rope is shared).
fn snapshot(backend: &Backend, key: &str) -> Option<Snapshot> {
    backend.state.sessions.lock().unwrap().get_mut(key).map(|doc| doc.snapshot())
}

fn resolve(backend: &Backend, args: &Args) -> Result<Target> {
    let enc = backend.encoding();
    let key = args.uri.as_str().to_string();
    let snap = snapshot(backend, &key).ok_or_else(|| invalid(format!("document not open: {key}")))?;
    let rope = &snap.rope;
    let text = rope.to_string();
    let (mut a, mut b) = match args.range {
        Some(r) => {
            let a = documents::pos_to_char(rope, to_pos(r.start), enc).map_err(|e| invalid(format!("range start: {e}")))?;
            let b = documents::pos_to_char(rope, to_pos(r.end), enc).map_err(|e| invalid(format!("range end: {e}")))?;
            (a.min(b), a.max(b))
        }
        None => (0, 0),
    };
    if args.range.is_none() || a == b {
        // No selection: the function (or class, or item) around the cursor.
        let item = snap.tree.as_ref().and_then(|t| syntax::enclosing_item(snap.language, t, &text, rope.char_to_byte(a)));
        let Some(item) = item else {
            return Err(invalid("select the code first (the cursor is not inside a function or class)"));
        };
        a = rope.byte_to_char(item.start);
        b = rope.byte_to_char(item.end);
    }
    // Whole lines: from the start of the first line through the end of the
    // last (a selection ending at column 0 ends on the line before).
    let first = rope.char_to_line(a);
    let mut last = rope.char_to_line(b);
    if last > first && b == rope.line_to_char(last) {
        last -= 1;
    }
    let start_char = rope.line_to_char(first);
    let end_char = if last + 1 < rope.len_lines() { rope.line_to_char(last + 1) } else { rope.len_chars() };
    let code = rope.slice(start_char..end_char).to_string();
    if code.trim().is_empty() {
        return Err(invalid("the selection is empty"));
    }
    if code.len() > 60_000 {
        return Err(invalid(format!("the selection is too large ({} bytes; at most 60000)", code.len())));
    }
    let p0 = documents::char_to_pos(rope, start_char, enc);
    let p1 = documents::char_to_pos(rope, end_char, enc);
    let path = args.uri.to_file_path();
    let file = path
        .as_ref()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| key.rsplit('/').next().unwrap_or("untitled").to_string());
    let sel = Selection {
        uri: key.clone(),
        path: path.map(|p| p.display().to_string()).unwrap_or_else(|| key.clone()),
        file,
        language: snap.language,
        start: rope.char_to_byte(start_char),
        end: rope.char_to_byte(end_char),
        text,
        code,
        first_line: first,
        lines: last - first + 1,
    };
    let range = Range::new(Position::new(p0.line, p0.character), Position::new(p1.line, p1.character));
    Ok(Target { sel, uri: args.uri.clone(), key, version: snap.version, range })
}

fn model_status(backend: &Backend) -> ModelStatus {
    match &*backend.state.local_model.read().unwrap() {
        ModelState::Ready { .. } => ModelStatus::Ready,
        ModelState::Loading => ModelStatus::Loading,
        ModelState::Failed(e) => ModelStatus::Failed(e.clone()),
    }
}

fn lsp_ui(backend: &Backend, token: Option<ProgressToken>) -> LspUi {
    LspUi::new(backend.client.clone(), token, *backend.state.client_progress.read().unwrap())
}

pub async fn code_action(backend: &Backend, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
    let key = params.text_document.uri.as_str().to_string();
    let r = params.range;
    let (language, around) = {
        let mut docs = backend.state.sessions.lock().unwrap();
        let Some(doc) = docs.get_mut(&key) else { return Ok(None) };
        // An empty range asks for the item around the cursor: the cursor's
        // byte, the tree and the text (the query runs outside the lock).
        let around = (r.start == r.end).then(|| {
            let c = documents::pos_to_char_clamped(&doc.rope, to_pos(r.start), backend.encoding());
            (doc.rope.char_to_byte(c), doc.tree().cloned(), doc.rope.clone())
        });
        (doc.language, around)
    };
    let has_target = match around {
        None => true,
        Some((byte, tree, rope)) => tree.is_some_and(|t| syntax::enclosing_item(language, &t, &rope.to_string(), byte).is_some()),
    };
    if !has_target {
        return Ok(None);
    }
    let wants =
        |kind: &CodeActionKind| {
            params.context.only.as_ref().is_none_or(|only| {
                only.iter().any(|o| kind.as_str() == o.as_str() || kind.as_str().starts_with(&format!("{}.", o.as_str())))
            })
        };
    let cfg = settings(backend);
    let base = json!({"uri": params.text_document.uri, "range": params.range});
    let with = |extra: (&str, &str)| {
        let mut a = base.clone();
        a[extra.0] = json!(extra.1);
        vec![a]
    };
    let action = |title: String, kind: CodeActionKind, command: &str, arguments: Vec<Value>| {
        CodeActionOrCommand::CodeAction(CodeAction {
            title: title.clone(),
            kind: Some(kind),
            command: Some(Command { title, command: command.into(), arguments: Some(arguments) }),
            ..Default::default()
        })
    };
    let mut out = Vec::new();
    let explain_kind = CodeActionKind::new("source.locode.explain");
    let refactor_kind = CodeActionKind::new("refactor.rewrite.locode");
    if params.context.only.is_none() || wants(&explain_kind) {
        out.push(action("locode: Explain".into(), explain_kind, "locode.explain", vec![base.clone()]));
    }
    if language.ts_language().is_some() && wants(&refactor_kind) {
        let p = prompts::builtin();
        for a in p.actions_for(language) {
            out.push(action(format!("locode: {}", a.title), refactor_kind.clone(), "locode.refactor", with(("action", &a.id))));
        }
        if cfg.cloud.enabled() {
            let provider = cfg.cloud.provider.name();
            for a in p.actions_for(language) {
                out.push(action(
                    format!("locode: {} with cloud ({provider})", a.title),
                    refactor_kind.clone(),
                    "locode.refactorCloud",
                    with(("action", &a.id)),
                ));
            }
            out.push(action(
                format!("locode: Preview what would be sent to the cloud ({provider})"),
                refactor_kind.clone(),
                "locode.previewCloud",
                with(("action", "simplify")),
            ));
        }
    }
    Ok(Some(out))
}

pub async fn execute_command(backend: &Backend, params: ExecuteCommandParams) -> Result<Option<LSPAny>> {
    let token = params.work_done_progress_params.work_done_token.clone();
    let command = params.command.as_str();
    if !COMMANDS.contains(&command) {
        return Err(invalid(format!("unknown command {command} (known: {})", COMMANDS.join(", "))));
    }
    let args = parse_args(command, &params.arguments)?;
    match command {
        "locode.explain" => explain(backend, &args, token).await,
        "locode.previewCloud" => preview(backend, &args),
        "locode.refactor" => refactor(backend, &args, token, false).await,
        _ => refactor(backend, &args, token, true).await,
    }
}

async fn explain(backend: &Backend, args: &Args, token: Option<ProgressToken>) -> Result<Option<LSPAny>> {
    let target = resolve(backend, args)?;
    let cfg = settings(backend);
    let ui = lsp_ui(backend, token);
    let status = || model_status(backend);
    let local = Local { engine: &backend.state.engine, status: &status };
    let e = explain::explain(&local, &ui, &cfg, &target.sel).await.map_err(failed)?;
    let g = &e.generation;
    let stats = json!({
        "promptTokens": g.prompt_tokens,
        "evaluatedTokens": g.evaluated_tokens,
        "generatedTokens": g.generated_tokens,
        "promptMs": g.prompt_ms.round(),
        "generateMs": g.generate_ms.round(),
    });
    Ok(Some(json!({"kind": "markdown", "value": e.markdown, "shown": e.shown, "elapsedMs": e.elapsed_ms, "stats": stats})))
}

async fn refactor(backend: &Backend, args: &Args, token: Option<ProgressToken>, explicit_cloud: bool) -> Result<Option<LSPAny>> {
    let target = resolve(backend, args)?;
    let instruction = refactor::instruction(args.instruction.as_deref(), args.action.as_deref()).map_err(invalid)?;
    let cfg = settings(backend);
    let ui = lsp_ui(backend, token);
    let status = || model_status(backend);
    let local = Local { engine: &backend.state.engine, status: &status };
    let outcome = refactor::refactor(&local, &ui, &cfg, &target.sel, &instruction, explicit_cloud).await.map_err(|e| match e {
        refactor::Error::Invalid(m) => invalid(m),
        refactor::Error::Failed(m) => failed(m),
    })?;
    // The progress is still open: the edit is applied, then it ends.
    let current = backend.state.sessions.lock().unwrap().get(&target.key).map(|d| d.version);
    if current != Some(target.version) {
        ui.end("not applied").await;
        return Err(failed("locode: the document changed while locode was working; the refactor was not applied"));
    }
    ui.progress("applying the edit");
    let edit = WorkspaceEdit {
        changes: Some(HashMap::from([(target.uri.clone(), vec![TextEdit { range: target.range, new_text: outcome.code.clone() }])])),
        ..Default::default()
    };
    let applied = backend.client.apply_edit(edit).await;
    ui.end("done").await;
    match applied {
        Ok(r) if r.applied => Ok(Some(json!({
            "applied": true,
            "source": outcome.source,
            "attempts": outcome.attempts,
            "range": target.range,
            "newText": outcome.code,
        }))),
        Ok(r) => Err(failed(format!(
            "locode: the editor did not apply the refactor{}",
            r.failure_reason.map(|f| format!(": {f}")).unwrap_or_default()
        ))),
        Err(e) => Err(failed(format!("locode: the editor did not apply the refactor: {}", e.message))),
    }
}

/// Exactly what "Refactor with cloud" would send, without sending anything.
fn preview(backend: &Backend, args: &Args) -> Result<Option<LSPAny>> {
    let target = resolve(backend, args)?;
    let cfg = settings(backend);
    let instruction =
        refactor::instruction(args.instruction.as_deref(), args.action.as_deref()).unwrap_or_else(|_| "Simplify the code.".into());
    refactor::preview(&cfg, &target.sel, &instruction).map(Some).map_err(failed)
}
