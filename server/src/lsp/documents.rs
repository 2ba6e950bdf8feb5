//! Document sync: `didOpen`, `didChange`, `didSave`, `didClose` (a session
//! per open document) and `locode/documentState`.

use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::*;

use super::{invalid_params, to_pos, Backend};
use crate::documents::{self, Change, Document};
use crate::session::Session;
use crate::syntax::Language;

impl Backend {
    pub(super) async fn open_document(&self, params: DidOpenTextDocumentParams) {
        let td = params.text_document;
        let key = td.uri.as_str().to_string();
        let lang = Language::detect(&td.language_id, &key);
        let doc = Document::new(&td.text, td.version, lang);
        if lang != Language::PlainText {
            self.reindex(&td.uri, td.text.clone());
        }
        // When the whole file fits in the prefix window, a prompt at its end
        // shares its prefix with the prompt at any cursor (everything before
        // the cursor's anchor): pre-fill that one at the first pause.
        let lines = doc.rope.len_lines();
        let end = doc.rope.len_chars();
        self.state.sessions.lock().unwrap().insert(key.clone(), Session::new(doc));
        if lang != Language::PlainText && lines <= self.state.config.read().unwrap().completion.prefix_lines {
            self.warm_after_enter(key, end, td.version);
        }
    }

    pub(super) async fn change_document(&self, params: DidChangeTextDocumentParams) {
        let enc = self.encoding();
        let key = params.text_document.uri.as_str();
        let changes: Vec<Change> = params
            .content_changes
            .into_iter()
            .map(|c| Change { range: c.range.map(|r| (to_pos(r.start), to_pos(r.end))), text: c.text })
            .collect();
        // After Enter (a last change that inserts a line break), the next
        // request will be at the end of the inserted text.
        let after_enter = changes.last().and_then(|c: &Change| match c.range {
            Some((start, _)) if c.text.contains('\n') && c.text.len() < 256 => Some((start, c.text.chars().count())),
            _ => None,
        });
        self.reindex_when_idle(&params.text_document.uri);
        let warm = {
            let mut docs = self.state.sessions.lock().unwrap();
            match docs.get_mut(key) {
                Some(session) => {
                    session.apply_versioned(params.text_document.version, changes, enc);
                    // An edit that is not typing through the suggestion ends
                    // the generation of its rest.
                    if session.last_suggestion.is_none() {
                        if let Some(t) = session.continuation.take() {
                            t.cancel();
                        }
                    }
                    let doc = &session.doc;
                    after_enter.map(|(start, n)| (documents::pos_to_char_clamped(&doc.rope, start, enc) + n, doc.version))
                }
                None => {
                    tracing::warn!("didChange for a document that is not open: {key}");
                    None
                }
            }
        };
        if let Some((cursor, version)) = warm {
            self.warm_after_enter(key.to_string(), cursor, version);
        }
    }

    pub(super) async fn save_document(&self, params: DidSaveTextDocumentParams) {
        // A save is a pause: the next request picks the other files'
        // definitions afresh (new imports, new names), paying for the whole
        // prompt once.
        let text = self.state.sessions.lock().unwrap().get_mut(params.text_document.uri.as_str()).map(|s| {
            s.layout.cross_file = None;
            s.doc.text()
        });
        if let Some(text) = params.text.or(text) {
            self.reindex(&params.text_document.uri, text);
        }
    }

    pub(super) async fn close_document(&self, params: DidCloseTextDocumentParams) {
        let session = self.state.sessions.lock().unwrap().remove(params.text_document.uri.as_str());
        if let Some(session) = session {
            session.close();
            // Its prompt's KV state goes to disk, for when it opens again.
            self.state.engine.release(params.text_document.uri.as_str());
        }
    }

    /// The server's copy of a document: `{uri}` -> `{version, text}`.
    pub(super) async fn document_state(&self, params: TextDocumentIdentifier) -> Result<serde_json::Value> {
        let docs = self.state.sessions.lock().unwrap();
        let session = docs.get(params.uri.as_str()).ok_or_else(|| invalid_params("document not open"))?;
        let cross_file: Vec<&str> = session.layout.cross_file.iter().flat_map(|c| c.chunks.iter().map(|(p, _)| p.as_str())).collect();
        Ok(serde_json::json!({ "version": session.doc.version, "text": session.doc.text(), "crossFile": cross_file }))
    }
}
