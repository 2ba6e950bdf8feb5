//! Refactor a selection, locally or (by `cloud.route`, or when asked for) with
//! a cloud model: the answer is validated (it parses, with a retry that says
//! why not) before anything is applied; what goes to the cloud is redacted
//! and audited, and can be previewed without sending anything.

use serde_json::{json, Value};

use super::local::{self, Local};
use super::policy::{self, Plan};
use super::{audit, cloud, dedent, extract_code, indent, prompts, validate, CommandsConfig, Level, Reporter, Selection, Ui};
use crate::engine::{CancelOnDrop, CancelToken};
use crate::net::NetError;
use crate::prompt::ChatMessage;
use crate::redact::Redactor;
use crate::secret_files;

/// Why a refactor was not done.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// It cannot be done as asked (no grammar to validate with).
    Invalid(String),
    /// It was tried and failed, or was not allowed (the message was shown).
    Failed(String),
}

/// A validated replacement for the selection.
pub struct Outcome {
    pub code: String,
    /// `local` or `cloud`.
    pub source: &'static str,
    pub attempts: usize,
}

/// The instruction of a refactor: the one given, else that of a canned action.
pub fn instruction(given: Option<&str>, action: Option<&str>) -> Result<String, String> {
    if let Some(i) = given.filter(|i| !i.trim().is_empty()) {
        return Ok(i.trim().to_string());
    }
    match action {
        Some(id) => prompts::builtin().action(id).map(|a| a.instruction.clone()).ok_or_else(|| {
            let known: Vec<&str> = prompts::builtin().actions.iter().map(|a| a.id.as_str()).collect();
            format!("unknown refactor action {id:?} (known: {})", known.join(", "))
        }),
        None => Err("a refactor needs an `instruction` (or a canned `action`)".into()),
    }
}

/// Refactors the selection locally or with the cloud, per `cloud.route`
/// (`explicit_cloud`: the user asked for the cloud).
///
/// On success the progress is still open: the caller applies the edit, then
/// ends it. On failure it is ended, and the error shown unless cancelled.
pub async fn refactor(
    local: &Local<'_>,
    ui: &impl Ui,
    cfg: &CommandsConfig,
    sel: &Selection,
    instruction: &str,
    explicit_cloud: bool,
) -> Result<Outcome, Error> {
    if sel.language.ts_language().is_none() {
        return Err(Error::Invalid(validate::Invalid::NoGrammar(sel.language.name()).to_string()));
    }
    let plan = policy::plan(cfg.cloud.route, cfg.cloud.max_local_lines, sel.lines, explicit_cloud)
        .map_err(|e| Error::Failed(format!("locode: {e}")))?;
    let title = if explicit_cloud { "locode: refactor with cloud" } else { "locode: refactor" };
    ui.begin(title, format!("{} lines of {}", sel.lines, sel.file)).await;
    let report = ui.reporter();
    let (code, _) = dedent(&sel.code);
    let max_tokens = max_refactor_tokens(cfg.refactor_max_tokens, &code);
    let result = match plan {
        Plan::Local => local_refactor(local, sel, instruction, max_tokens, report).await,
        Plan::Cloud { ask } => cloud_refactor(ui, cfg, sel, instruction, ask, None, report).await,
        Plan::LocalThenCloud { ask } => match local_refactor(local, sel, instruction, max_tokens, report.clone()).await {
            Err(Failure::Invalid(e)) => {
                // The reason quotes code: only at debug, never at the default level.
                tracing::info!("local refactor failed validation; escalating per cloud.route");
                tracing::debug!("local refactor failed validation: {e}");
                let why = format!("The local result did not parse ({e}).");
                cloud_refactor(ui, cfg, sel, instruction, ask, Some(&why), report).await
            }
            other => other,
        },
    };
    match result {
        Ok(outcome) => Ok(outcome),
        Err(Failure::Invalid(e)) => {
            ui.end("not applied").await;
            let msg = format!("locode: the refactor was not applied: {e} (after a retry). Nothing was changed.");
            ui.show(Level::Error, &msg).await;
            Err(Error::Failed(msg))
        }
        Err(Failure::Other(e)) => {
            ui.end("failed").await;
            if e != "cancelled" {
                ui.show(Level::Error, &e).await;
            }
            Err(Error::Failed(e))
        }
    }
}

/// Why an attempt produced nothing to apply.
enum Failure {
    /// Both attempts failed validation: the message of the last.
    Invalid(String),
    /// Anything else (engine, network, refusal, declined): final.
    Other(String),
}

/// The model's reply turned into a replacement for the selection, validated.
fn candidate(sel: &Selection, indentation: &str, reply: &str) -> Result<String, String> {
    let mut code = indent(&extract_code(reply), indentation);
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
    local: &Local<'_>,
    sel: &Selection,
    instruction: &str,
    max_tokens: u32,
    report: Reporter,
) -> Result<Outcome, Failure> {
    let (code, indentation) = dedent(&sel.code);
    let p = prompts::builtin();
    let mut messages = p.refactor(sel.language, &sel.file, &code, instruction);
    let mut last = String::new();
    for attempt in 1..=2 {
        let what = if attempt == 1 { "refactoring" } else { "refactoring (retry)" };
        let (reply, _) = local::generate(local, messages.clone(), max_tokens, report.clone(), what, true).await.map_err(Failure::Other)?;
        match candidate(sel, &indentation, &reply) {
            Ok(code) => return Ok(Outcome { code, source: "local", attempts: attempt }),
            Err(e) => {
                tracing::info!("local refactor attempt {attempt} unusable");
                tracing::debug!("local refactor attempt {attempt} unusable: {e}");
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
    /// The redacted prompt as first sent: an answer may hold its placeholders at most as often.
    sent: String,
    messages: Vec<ChatMessage>,
    request: cloud::CloudRequest,
    indent: String,
}

impl CloudPlan {
    fn request_max_tokens(&self) -> u32 {
        serde_json::from_slice::<Value>(&self.request.body).ok().and_then(|v| v["max_tokens"].as_u64()).unwrap_or(1024) as u32
    }
}

fn refused(cfg: &cloud::CloudConfig, sel: &Selection) -> Option<String> {
    secret_files::secret_file_pattern(&sel.path, &cfg.refuse_files)
        .map(|pat| format!("locode: {} matches the secret-file pattern {pat:?}: it is never sent to a cloud model", sel.file))
}

fn plan_cloud(cfg: &CommandsConfig, sel: &Selection, instruction: &str) -> Result<CloudPlan, String> {
    let (code, indent) = dedent(&sel.code);
    let mut redactor = Redactor::new();
    let messages: Vec<ChatMessage> = prompts::builtin()
        .refactor(sel.language, &sel.file, &code, instruction)
        .into_iter()
        .map(|m| ChatMessage { content: redactor.redact(&m.content), role: m.role })
        .collect();
    let request = cloud::build_request(&cfg.cloud, &messages, max_refactor_tokens(cfg.cloud.max_tokens, &code))
        .map_err(|e| format!("locode: {e}"))?;
    let sent = messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n");
    Ok(CloudPlan { redactor, sent, messages, request, indent })
}

fn max_refactor_tokens(cap: u32, code: &str) -> u32 {
    // About 3.5 bytes per token, room for growth (docstrings, hints) and fences.
    ((code.len() as u32 / 3) * 2 + 160).min(cap.max(64))
}

async fn cloud_refactor(
    ui: &impl Ui,
    cfg: &CommandsConfig,
    sel: &Selection,
    instruction: &str,
    ask: bool,
    why: Option<&str>,
    report: Reporter,
) -> Result<Outcome, Failure> {
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
        if ui.confirm(&question, &["Send", "Cancel"]).await.as_deref() != Some("Send") {
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
            file: sel.uri.clone(),
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
                r(&format!("{provider}: {} characters", t.len()));
            }
        })
        .await
        .map_err(|e| match e {
            NetError::Cancelled => Failure::Other("cancelled".into()),
            e => Failure::Other(format!("locode: the cloud model failed: {e}")),
        })?;
        // Secrets go back only where placeholders were sent, as often as they were.
        let result = match plan.redactor.restore_checked(&plan.sent, &reply) {
            Err(e) => Err(format!("the answer repeated or invented redaction placeholders ({e})")),
            Ok(restored) => {
                let stray = plan.redactor.stray_placeholders(&sel.code, &restored);
                if stray.is_empty() {
                    candidate(sel, &plan.indent, &restored)
                } else {
                    Err(format!("the answer altered redaction placeholders ({})", stray.join(", ")))
                }
            }
        };
        match result {
            Ok(code) => return Ok(Outcome { code, source: "cloud", attempts: attempt }),
            Err(e) => {
                // The error may quote restored code: sent redacted, logged at debug only.
                let error = plan.redactor.redact(&e);
                tracing::info!("cloud refactor attempt {attempt} unusable");
                tracing::debug!("cloud refactor attempt {attempt} unusable: {error}");
                last = e;
                if attempt == 2 {
                    break;
                }
                plan.messages = p.retry(sel.language, std::mem::take(&mut plan.messages), &reply, &error);
                plan.request = cloud::build_request(&cfg.cloud, &plan.messages, plan.request_max_tokens())
                    .map_err(|e| Failure::Other(format!("locode: {e}")))?;
            }
        }
    }
    Err(Failure::Invalid(last))
}

/// Exactly what a cloud refactor would send, without sending anything.
pub fn preview(cfg: &CommandsConfig, sel: &Selection, instruction: &str) -> Result<Value, String> {
    let mut v = json!({
        "route": cfg.cloud.route,
        "enabled": cfg.cloud.enabled(),
        "provider": cfg.cloud.provider.name(),
        "endpoint": cfg.cloud.url(),
        "apiKeyEnv": cfg.cloud.key_env(),
        "file": sel.uri,
        "lines": sel.lines,
    });
    if let Some(msg) = refused(&cfg.cloud, sel) {
        v["refused"] = json!(msg);
        return Ok(v);
    }
    let plan = plan_cloud(cfg, sel, instruction)?;
    v["model"] = json!(plan.request.model);
    v["headers"] = plan.request.headers_preview(&cfg.cloud.key_env());
    v["bytes"] = json!(plan.request.body.len());
    v["sha256"] = json!(audit::sha256_hex(&plan.request.body));
    v["redactions"] = json!(plan.redactor.redactions);
    v["body"] = serde_json::from_slice(&plan.request.body).unwrap_or(Value::Null);
    Ok(v)
}
