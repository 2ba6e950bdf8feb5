//! Code actions and `workspace/executeCommand`: explain and refactor a
//! selection, locally or (by explicit rule) with a cloud model.
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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use tower_lsp_server::jsonrpc::{Error as RpcError, ErrorCode, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::Client;

use super::{to_pos, Backend, ModelState};
use crate::commands::net::NetError;
use crate::commands::policy::{self, Plan};
use crate::commands::redact::{self, Redactor};
use crate::commands::{self as cmds, audit, cloud, prompts, validate, CommandsConfig, ExplainOutput};
use crate::documents;
use crate::engine::{CancelOnDrop, CancelToken, CompletionJob};
use crate::prompt::{ChatMessage, Piece};
use crate::syntax::{self, Language};

/// Commands the server executes.
pub const COMMANDS: &[&str] = &["locode.explain", "locode.refactor", "locode.refactorCloud", "locode.previewCloud"];

/// The engine slot of command jobs, apart from the per-document completion slots.
const SLOT: &str = "__commands__";

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

/// The code a command works on: whole lines of an open document.
struct Selection {
    uri: Uri,
    key: String,
    language: Language,
    version: i32,
    text: String,
    /// Byte offsets of the code in `text`.
    start: usize,
    end: usize,
    /// The same span as an LSP range.
    range: Range,
    code: String,
    lines: usize,
    file: String,
}

impl Selection {
    /// The file with `replacement` in place of the code.
    fn with(&self, replacement: &str) -> String {
        format!("{}{}{}", &self.text[..self.start], replacement, &self.text[self.end..])
    }

    fn path(&self) -> String {
        self.uri.to_file_path().map(|p| p.display().to_string()).unwrap_or_else(|| self.uri.as_str().to_string())
    }
}

fn resolve(backend: &Backend, args: &Args) -> Result<Selection> {
    let enc = backend.encoding();
    let key = args.uri.as_str().to_string();
    let snap = {
        let mut docs = backend.state.docs.lock().unwrap();
        let doc = docs.get_mut(&key).ok_or_else(|| invalid(format!("document not open: {key}")))?;
        doc.snapshot()
    };
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
    let file = args
        .uri
        .to_file_path()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| key.rsplit('/').next().unwrap_or("untitled").to_string());
    Ok(Selection {
        uri: args.uri.clone(),
        key,
        language: snap.language,
        version: snap.version,
        text,
        start: rope.char_to_byte(start_char),
        end: rope.char_to_byte(end_char),
        range: Range::new(Position::new(p0.line, p0.character), Position::new(p1.line, p1.character)),
        lines: last - first + 1,
        code,
        file,
    })
}

/// `$/progress` for one command, sent in order from a task; ends when dropped
/// (a cancelled request still closes its progress).
struct Progress {
    tx: Option<tokio::sync::mpsc::UnboundedSender<WorkDoneProgress>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

static PROGRESS_IDS: AtomicUsize = AtomicUsize::new(1);

impl Progress {
    async fn begin(backend: &Backend, given: Option<ProgressToken>, title: &str, message: String) -> Progress {
        let client = backend.client.clone();
        let token = match given {
            Some(t) => Some(t),
            None if *backend.state.client_progress.read().unwrap() => {
                let t = ProgressToken::String(format!("locode/command/{}", PROGRESS_IDS.fetch_add(1, Ordering::Relaxed)));
                client.create_work_done_progress(t.clone()).await.ok().map(|_| t)
            }
            None => None,
        };
        let Some(token) = token else { return Progress { tx: None, task: None } };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<WorkDoneProgress>();
        let task = tokio::spawn(async move {
            while let Some(value) = rx.recv().await {
                let end = matches!(value, WorkDoneProgress::End(_));
                send_progress(&client, &token, value).await;
                if end {
                    return;
                }
            }
            send_progress(&client, &token, WorkDoneProgress::End(WorkDoneProgressEnd { message: Some("stopped".into()) })).await;
        });
        let _ = tx.send(WorkDoneProgress::Begin(WorkDoneProgressBegin {
            title: title.into(),
            cancellable: Some(true),
            message: Some(message),
            percentage: None,
        }));
        Progress { tx: Some(tx), task: Some(task) }
    }

    fn reporter(&self) -> impl Fn(String) + Send + Sync + Clone + 'static {
        let tx = self.tx.clone();
        move |message: String| {
            if let Some(tx) = &tx {
                let _ = tx.send(WorkDoneProgress::Report(WorkDoneProgressReport {
                    cancellable: Some(true),
                    message: Some(message),
                    percentage: None,
                }));
            }
        }
    }

    /// Ends the progress and waits until the end is sent, so that it reaches
    /// the client before the command's response.
    async fn end(mut self, message: &str) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(WorkDoneProgress::End(WorkDoneProgressEnd { message: Some(message.into()) }));
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(WorkDoneProgress::End(WorkDoneProgressEnd { message: Some("cancelled".into()) }));
        }
    }
}

async fn send_progress(client: &Client, token: &ProgressToken, value: WorkDoneProgress) {
    client
        .send_notification::<notification::Progress>(ProgressParams { token: token.clone(), value: ProgressParamsValue::WorkDone(value) })
        .await;
}

/// Waits (up to two minutes) for the model to be loaded.
async fn wait_model(backend: &Backend) -> std::result::Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match &*backend.state.model.read().unwrap() {
            ModelState::Ready { .. } => return Ok(()),
            ModelState::Failed(e) => return Err(format!("no local model: {e}")),
            ModelState::Loading if Instant::now() > deadline => return Err("the model is still loading".into()),
            ModelState::Loading => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Generates a chat answer with the local model. With `stop_at_fence`,
/// generation stops once a fenced code block has closed.
async fn generate_local(
    backend: &Backend,
    messages: Vec<ChatMessage>,
    max_tokens: u32,
    report: impl Fn(String) + Send + 'static,
    what: &'static str,
    stop_at_fence: bool,
) -> std::result::Result<(String, crate::engine::Generation), String> {
    wait_model(backend).await?;
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
                report(format!("{what}: {n} tokens"));
            }
            if stop_at_fence && cmds::fence_closed(text) {
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
        early: None,
        avoid: None,
    };
    let gen = backend.state.engine.complete(job).await.map_err(|e| e.to_string())?;
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

pub async fn code_action(backend: &Backend, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
    let key = params.text_document.uri.as_str().to_string();
    let r = params.range;
    let (language, around) = {
        let mut docs = backend.state.docs.lock().unwrap();
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
    let sel = resolve(backend, args)?;
    let cfg = settings(backend);
    let t0 = Instant::now();
    let (code, _) = cmds::dedent(&sel.code);
    let messages = prompts::builtin().explain(sel.language, &sel.file, &code);
    let progress = Progress::begin(backend, token, "locode: explain", format!("{} lines of {}", sel.lines, sel.file)).await;
    let (text, gen) = match generate_local(backend, messages, cfg.explain_max_tokens, progress.reporter(), "explaining", false).await {
        Ok(r) => r,
        Err(e) => {
            progress.end("failed").await;
            return Err(failed(format!("locode: explain failed: {e}")));
        }
    };
    progress.end("done").await;
    let first_line = sel.range.start.line + 1;
    let markdown = format!("**{}:{}-{}**\n\n{}\n", sel.file, first_line, first_line as usize + sel.lines - 1, text.trim());
    let elapsed_ms = t0.elapsed().as_millis() as u64;
    let shown = show_explanation(backend, &sel, &markdown, cfg.explain_output).await;
    let stats = json!({
        "promptTokens": gen.prompt_tokens,
        "evaluatedTokens": gen.evaluated_tokens,
        "generatedTokens": gen.generated_tokens,
        "promptMs": gen.prompt_ms.round(),
        "generateMs": gen.generate_ms.round(),
    });
    Ok(Some(json!({"kind": "markdown", "value": markdown, "shown": shown, "elapsedMs": elapsed_ms, "stats": stats})))
}

/// The fallback for clients that do not display a command's result: a
/// markdown file opened with `window/showDocument`, else a message.
async fn show_explanation(backend: &Backend, sel: &Selection, markdown: &str, how: ExplainOutput) -> &'static str {
    if how == ExplainOutput::Result {
        return "result";
    }
    if matches!(how, ExplainOutput::Auto | ExplainOutput::Document) {
        if let Some(uri) = write_explanation(sel, markdown) {
            let params = ShowDocumentParams { uri, external: Some(false), take_focus: Some(true), selection: None };
            if let Ok(true) = backend.client.show_document(params).await {
                return "document";
            }
        }
    }
    backend.client.show_message(MessageType::INFO, markdown).await;
    "message"
}

/// Writes the explanation to a private temporary markdown file.
fn write_explanation(sel: &Selection, markdown: &str) -> Option<Uri> {
    let dir = dirs::runtime_dir().unwrap_or_else(std::env::temp_dir).join(format!("locode-{}", std::process::id()));
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(&dir).ok()?;
    let stem = sel.file.rsplit_once('.').map(|(s, _)| s).unwrap_or(&sel.file);
    let path = dir.join(format!("explain-{stem}-{}.md", sel.range.start.line + 1));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    use std::io::Write;
    opts.open(&path).and_then(|mut f| f.write_all(markdown.as_bytes())).ok()?;
    Uri::from_file_path(&path)
}

fn instruction_of(args: &Args) -> Result<String> {
    if let Some(i) = args.instruction.as_ref().filter(|i| !i.trim().is_empty()) {
        return Ok(i.trim().to_string());
    }
    match &args.action {
        Some(id) => prompts::builtin().action(id).map(|a| a.instruction.clone()).ok_or_else(|| {
            let known: Vec<&str> = prompts::builtin().actions.iter().map(|a| a.id.as_str()).collect();
            invalid(format!("unknown refactor action {id:?} (known: {})", known.join(", ")))
        }),
        None => Err(invalid("a refactor needs an `instruction` (or a canned `action`)")),
    }
}

/// Why an attempt produced nothing to apply.
enum Failure {
    /// Both attempts failed validation: the message of the last.
    Invalid(String),
    /// Anything else (engine, network, refusal, declined): final.
    Other(String),
}

/// A validated replacement for the selection.
struct Outcome {
    code: String,
    source: &'static str,
    attempts: usize,
}

/// The model's reply turned into a replacement for the selection, validated.
fn candidate(sel: &Selection, indent: &str, reply: &str) -> std::result::Result<String, String> {
    let mut code = cmds::indent(&cmds::extract_code(reply), indent);
    if !sel.code.ends_with('\n') {
        // The last line of a file without a final newline stays so.
        while code.ends_with('\n') {
            code.pop();
        }
    }
    validate::check(sel.language, &sel.text, &sel.with(&code), &code).map_err(|e| e.to_string())?;
    if code == sel.code {
        return Err("the result is identical to the selection".into());
    }
    Ok(code)
}

async fn local_refactor(
    backend: &Backend,
    sel: &Selection,
    instruction: &str,
    max_tokens: u32,
    report: impl Fn(String) + Send + Sync + Clone + 'static,
) -> std::result::Result<Outcome, Failure> {
    let (code, indent) = cmds::dedent(&sel.code);
    let p = prompts::builtin();
    let mut messages = p.refactor(sel.language, &sel.file, &code, instruction);
    let mut last = String::new();
    for attempt in 1..=2 {
        let what = if attempt == 1 { "refactoring" } else { "refactoring (retry)" };
        let (reply, _) = generate_local(backend, messages.clone(), max_tokens, report.clone(), what, true).await.map_err(Failure::Other)?;
        match candidate(sel, &indent, &reply) {
            Ok(code) => return Ok(Outcome { code, source: "local", attempts: attempt }),
            Err(e) => {
                tracing::info!("local refactor attempt {attempt} unusable: {e}");
                messages = p.retry(sel.language, messages, &reply, &e);
                last = e;
            }
        }
    }
    Err(Failure::Invalid(last))
}

/// The redacted messages and request for the cloud.
struct CloudPlan {
    redactor: Redactor,
    messages: Vec<ChatMessage>,
    request: cloud::CloudRequest,
    indent: String,
}

fn refused(cfg: &cloud::CloudConfig, sel: &Selection) -> Option<String> {
    redact::secret_file_pattern(&sel.path(), &cfg.refuse_files)
        .map(|pat| format!("locode: {} matches the secret-file pattern {pat:?}: it is never sent to a cloud model", sel.file))
}

fn plan_cloud(cfg: &CommandsConfig, sel: &Selection, instruction: &str) -> std::result::Result<CloudPlan, String> {
    let (code, indent) = cmds::dedent(&sel.code);
    let mut redactor = Redactor::new();
    let messages: Vec<ChatMessage> = prompts::builtin()
        .refactor(sel.language, &sel.file, &code, instruction)
        .into_iter()
        .map(|m| ChatMessage { content: redactor.redact(&m.content), role: m.role })
        .collect();
    let request = cloud::build_request(&cfg.cloud, &messages, max_refactor_tokens(cfg.cloud.max_tokens, &code))
        .map_err(|e| format!("locode: {e}"))?;
    Ok(CloudPlan { redactor, messages, request, indent })
}

fn max_refactor_tokens(cap: u32, code: &str) -> u32 {
    // About 3.5 bytes per token, room for growth (docstrings, hints) and fences.
    ((code.len() as u32 / 3) * 2 + 160).min(cap.max(64))
}

async fn cloud_refactor(
    backend: &Backend,
    cfg: &CommandsConfig,
    sel: &Selection,
    instruction: &str,
    ask: bool,
    why: Option<&str>,
    report: impl Fn(String) + Send + Sync + Clone + 'static,
) -> std::result::Result<Outcome, Failure> {
    if let Some(msg) = refused(&cfg.cloud, sel) {
        return Err(Failure::Other(msg));
    }
    let mut plan = plan_cloud(cfg, sel, instruction).map_err(Failure::Other)?;
    let key = cfg.cloud.api_key().map_err(|e| Failure::Other(format!("locode: {e}; nothing was sent")))?;
    let provider = cfg.cloud.provider.name();
    if ask {
        let n = plan.redactor.redactions.len();
        let question = format!(
            "locode: {}send {} lines of {} to {provider} ({}, model {})? {} bytes, {n} secret(s) redacted; a second request follows if the answer does not parse.",
            why.map(|w| format!("{w} ")).unwrap_or_default(),
            sel.lines,
            sel.file,
            plan.request.url,
            plan.request.model,
            plan.request.body.len(),
        );
        let answer = backend
            .client
            .show_message_request(
                MessageType::WARNING,
                question,
                Some(vec![
                    MessageActionItem { title: "Send".into(), properties: HashMap::new() },
                    MessageActionItem { title: "Cancel".into(), properties: HashMap::new() },
                ]),
            )
            .await;
        if !matches!(answer, Ok(Some(ref a)) if a.title == "Send") {
            return Err(Failure::Other("locode: not sent to the cloud (declined)".into()));
        }
    }
    let cancel = CancelToken::new();
    let _guard = CancelOnDrop(cancel.clone());
    let p = prompts::builtin();
    let mut last = String::new();
    for attempt in 1..=2 {
        let record = audit::AuditRecord {
            time: audit::now_rfc3339(),
            provider: provider.into(),
            endpoint: plan.request.url.clone(),
            model: plan.request.model.clone(),
            action: if attempt == 1 { "refactor".into() } else { "refactor-retry".into() },
            file: sel.uri.as_str().to_string(),
            bytes: plan.request.body.len(),
            sha256: audit::sha256_hex(&plan.request.body),
            redactions: plan.redactor.summary(),
        };
        let path = cfg.cloud.audit_path();
        audit::append(&path, &record)
            .map_err(|e| Failure::Other(format!("locode: cannot write the audit log {}: {e}; nothing was sent", path.display())))?;
        let r = report.clone();
        let mut chars = 0usize;
        let reply = cloud::send(&plan.request, &key, cfg.cloud.timeout_ms, &cancel, move |t| {
            if t.len() >= chars + 200 || chars == 0 {
                chars = t.len();
                r(format!("{provider}: {} characters", t.len()));
            }
        })
        .await
        .map_err(|e| match e {
            NetError::Cancelled => Failure::Other("cancelled".into()),
            e => Failure::Other(format!("locode: the cloud model failed: {e}")),
        })?;
        let restored = plan.redactor.restore(&reply);
        let stray = plan.redactor.stray_placeholders(&sel.code, &restored);
        let result = if stray.is_empty() {
            candidate(sel, &plan.indent, &restored)
        } else {
            Err(format!("the answer altered redaction placeholders ({})", stray.join(", ")))
        };
        match result {
            Ok(code) => return Ok(Outcome { code, source: "cloud", attempts: attempt }),
            Err(e) => {
                tracing::info!("cloud refactor attempt {attempt} unusable: {e}");
                last = e.clone();
                if attempt == 2 {
                    break;
                }
                let error = plan.redactor.redact(&e);
                plan.messages = p.retry(sel.language, std::mem::take(&mut plan.messages), &reply, &error);
                plan.request = cloud::build_request(&cfg.cloud, &plan.messages, plan.request_max_tokens())
                    .map_err(|e| Failure::Other(format!("locode: {e}")))?;
            }
        }
    }
    Err(Failure::Invalid(last))
}

impl CloudPlan {
    fn request_max_tokens(&self) -> u32 {
        serde_json::from_slice::<Value>(&self.request.body).ok().and_then(|v| v["max_tokens"].as_u64()).unwrap_or(1024) as u32
    }
}

async fn refactor(backend: &Backend, args: &Args, token: Option<ProgressToken>, explicit_cloud: bool) -> Result<Option<LSPAny>> {
    let sel = resolve(backend, args)?;
    let instruction = instruction_of(args)?;
    if sel.language.ts_language().is_none() {
        return Err(invalid(validate::Invalid::NoGrammar(sel.language.name())));
    }
    let cfg = settings(backend);
    let plan =
        policy::plan(cfg.cloud.route, cfg.cloud.max_local_lines, sel.lines, explicit_cloud).map_err(|e| failed(format!("locode: {e}")))?;
    let title = if explicit_cloud { "locode: refactor with cloud" } else { "locode: refactor" };
    let progress = Progress::begin(backend, token, title, format!("{} lines of {}", sel.lines, sel.file)).await;
    let report = progress.reporter();
    let (code, _) = cmds::dedent(&sel.code);
    let max_tokens = max_refactor_tokens(cfg.refactor_max_tokens, &code);
    let result = match plan {
        Plan::Local => local_refactor(backend, &sel, &instruction, max_tokens, report).await,
        Plan::Cloud { ask } => cloud_refactor(backend, &cfg, &sel, &instruction, ask, None, report).await,
        Plan::LocalThenCloud { ask } => match local_refactor(backend, &sel, &instruction, max_tokens, report.clone()).await {
            Err(Failure::Invalid(e)) => {
                tracing::info!("local refactor failed validation ({e}); escalating per cloud.route");
                let why = format!("The local result did not parse ({e}).");
                cloud_refactor(backend, &cfg, &sel, &instruction, ask, Some(&why), report).await
            }
            other => other,
        },
    };
    let outcome = match result {
        Ok(o) => o,
        Err(Failure::Invalid(e)) => {
            progress.end("not applied").await;
            let msg = format!("locode: the refactor was not applied: {e} (after a retry). Nothing was changed.");
            backend.client.show_message(MessageType::ERROR, &msg).await;
            return Err(failed(msg));
        }
        Err(Failure::Other(e)) => {
            progress.end("failed").await;
            if e != "cancelled" {
                backend.client.show_message(MessageType::ERROR, &e).await;
            }
            return Err(failed(e));
        }
    };
    let current = backend.state.docs.lock().unwrap().get(&sel.key).map(|d| d.version);
    if current != Some(sel.version) {
        progress.end("not applied").await;
        return Err(failed("locode: the document changed while locode was working; the refactor was not applied"));
    }
    progress.report_done();
    let edit = WorkspaceEdit {
        changes: Some(HashMap::from([(sel.uri.clone(), vec![TextEdit { range: sel.range, new_text: outcome.code.clone() }])])),
        ..Default::default()
    };
    let applied = backend.client.apply_edit(edit).await;
    progress.end("done").await;
    match applied {
        Ok(r) if r.applied => Ok(Some(json!({
            "applied": true,
            "source": outcome.source,
            "attempts": outcome.attempts,
            "range": sel.range,
            "newText": outcome.code,
        }))),
        Ok(r) => Err(failed(format!(
            "locode: the editor did not apply the refactor{}",
            r.failure_reason.map(|f| format!(": {f}")).unwrap_or_default()
        ))),
        Err(e) => Err(failed(format!("locode: the editor did not apply the refactor: {}", e.message))),
    }
}

impl Progress {
    fn report_done(&self) {
        (self.reporter())("applying the edit".into());
    }
}

/// Exactly what "Refactor with cloud" would send, without sending anything.
fn preview(backend: &Backend, args: &Args) -> Result<Option<LSPAny>> {
    let sel = resolve(backend, args)?;
    let cfg = settings(backend);
    let instruction = instruction_of(args).unwrap_or_else(|_| "Simplify the code.".into());
    let base = json!({
        "route": cfg.cloud.route,
        "enabled": cfg.cloud.enabled(),
        "provider": cfg.cloud.provider.name(),
        "endpoint": cfg.cloud.url(),
        "apiKeyEnv": cfg.cloud.key_env(),
        "file": sel.uri.as_str(),
        "lines": sel.lines,
    });
    if let Some(msg) = refused(&cfg.cloud, &sel) {
        let mut v = base;
        v["refused"] = json!(msg);
        return Ok(Some(v));
    }
    let plan = plan_cloud(&cfg, &sel, &instruction).map_err(failed)?;
    let mut v = base;
    v["model"] = json!(plan.request.model);
    v["headers"] = plan.request.headers_preview(&cfg.cloud.key_env());
    v["bytes"] = json!(plan.request.body.len());
    v["sha256"] = json!(audit::sha256_hex(&plan.request.body));
    v["redactions"] = json!(plan.redactor.redactions);
    v["body"] = serde_json::from_slice(&plan.request.body).unwrap_or(Value::Null);
    Ok(Some(v))
}
