//! The flows' [`Ui`] over LSP: work-done progress (`$/progress`),
//! `window/showMessageRequest`, `window/showDocument` and messages.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tower_lsp_server::ls_types::*;
use tower_lsp_server::Client;

use crate::commands::{Level, Reporter, Ui};

pub struct LspUi {
    client: Client,
    /// The request's work-done token, if the client gave one.
    token: Option<ProgressToken>,
    /// Without a token, may the server create one (the client said so)?
    may_create: bool,
    progress: Mutex<Option<Progress>>,
}

impl LspUi {
    pub fn new(client: Client, token: Option<ProgressToken>, may_create: bool) -> Self {
        LspUi { client, token, may_create, progress: Mutex::new(None) }
    }
}

impl Ui for LspUi {
    async fn begin(&self, title: &str, message: String) {
        let progress = Progress::begin(&self.client, self.token.clone(), self.may_create, title, message).await;
        *self.progress.lock().unwrap() = Some(progress);
    }

    fn reporter(&self) -> Reporter {
        let tx = self.progress.lock().unwrap().as_ref().and_then(|p| p.tx.clone());
        Arc::new(move |message: &str| {
            if let Some(tx) = &tx {
                let _ = tx.send(WorkDoneProgress::Report(WorkDoneProgressReport {
                    cancellable: Some(true),
                    message: Some(message.into()),
                    percentage: None,
                }));
            }
        })
    }

    async fn end(&self, message: &str) {
        let progress = self.progress.lock().unwrap().take();
        if let Some(p) = progress {
            p.end(message).await;
        }
    }

    async fn confirm(&self, question: &str, choices: &[&str]) -> Option<String> {
        let actions = choices.iter().map(|c| MessageActionItem { title: c.to_string(), properties: HashMap::new() }).collect();
        let answer = self.client.show_message_request(MessageType::WARNING, question, Some(actions)).await;
        answer.ok().flatten().map(|a| a.title)
    }

    async fn show(&self, level: Level, text: &str) {
        let kind = match level {
            Level::Info => MessageType::INFO,
            Level::Error => MessageType::ERROR,
        };
        self.client.show_message(kind, text).await;
    }

    async fn show_file(&self, path: &Path) -> bool {
        let Some(uri) = Uri::from_file_path(path) else { return false };
        let params = ShowDocumentParams { uri, external: Some(false), take_focus: Some(true), selection: None };
        matches!(self.client.show_document(params).await, Ok(true))
    }
}

/// `$/progress` for one command, sent in order from a task; ends when dropped
/// (a cancelled request still closes its progress).
struct Progress {
    tx: Option<tokio::sync::mpsc::UnboundedSender<WorkDoneProgress>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

static PROGRESS_IDS: AtomicUsize = AtomicUsize::new(1);

impl Progress {
    async fn begin(client: &Client, given: Option<ProgressToken>, may_create: bool, title: &str, message: String) -> Progress {
        let client = client.clone();
        let token = match given {
            Some(t) => Some(t),
            None if may_create => {
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

    /// Ends the progress and waits until the end is sent.
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
