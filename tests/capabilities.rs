//! The `initialize` answer for each kind of client, over the `locode`
//! binary. No model is loaded (`initialized` is never sent): what the server
//! offers does not depend on it.

#[path = "common/lsp_client.rs"]
mod lsp_client;

use lsp_client::{bin, LspClient};
use serde_json::{json, Value};

fn capabilities(client: Value, options: Value) -> Value {
    let mut c = LspClient::spawn(bin(), &["serve"]);
    let init =
        c.request("initialize", json!({"processId": null, "rootUri": null, "capabilities": client, "initializationOptions": options}));
    c.shutdown();
    init["capabilities"].clone()
}

/// Helix 25.07's completion capabilities: items, no ghost text, no dynamic
/// registration.
fn helix_caps() -> Value {
    json!({"textDocument": {"completion": {
        "completionItem": {"snippetSupport": true, "deprecatedSupport": true, "insertReplaceSupport": true,
                           "resolveSupport": {"properties": ["documentation", "detail", "additionalTextEdits"]},
                           "tagSupport": {"valueSet": [1]}},
        "completionItemKind": {}}}})
}

/// VS Code's, in short: ghost text, and providers registered dynamically.
fn vscode_caps() -> Value {
    json!({"textDocument": {"inlineCompletion": {"dynamicRegistration": true},
                            "completion": {"dynamicRegistration": true}}})
}

fn trigger_characters(caps: &Value) -> Vec<String> {
    caps["completionProvider"]["triggerCharacters"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// A client without ghost text asks for items on its own after these, not
/// only after a word's first letters or a manual trigger.
#[test]
fn a_client_without_inline_completion_gets_items_with_trigger_characters() {
    let caps = capabilities(helix_caps(), json!({}));
    assert!(caps["completionProvider"].is_object(), "{caps}");
    let triggers = trigger_characters(&caps);
    for c in [".", "(", ",", ":", "=", " "] {
        assert!(triggers.iter().any(|t| t == c), "{c:?} is not a trigger character: {triggers:?}");
    }
}

/// A client with ghost text gets neither items nor trigger characters in
/// `auto`; asked for with `always`, items come with the same triggers.
#[test]
fn a_client_with_inline_completion_gets_no_completion_provider() {
    let caps = capabilities(vscode_caps(), json!({}));
    assert!(caps.get("completionProvider").is_none(), "{caps}");
    assert_eq!(caps["inlineCompletionProvider"], json!(true), "{caps}");

    let caps = capabilities(vscode_caps(), json!({"locode": {"completionItems": "always"}}));
    assert_eq!(trigger_characters(&caps), trigger_characters(&capabilities(helix_caps(), json!({}))), "{caps}");

    let caps = capabilities(helix_caps(), json!({"locode": {"completionItems": "never"}}));
    assert!(caps.get("completionProvider").is_none(), "{caps}");
}
