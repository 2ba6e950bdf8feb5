//! End to end: the `locode` binary over stdio with the real default model,
//! greedy decoding. Needs the model (`make model`).

#[path = "common/lsp_client.rs"]
mod lsp_client;

use lsp_client::{bin, cursor, model_path, LspClient};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// A server with the model loaded, speaking UTF-16.
fn ready_server() -> LspClient {
    model_path();
    let mut c = LspClient::spawn(bin(), &["serve"]);
    c.initialize(json!({"window": {"workDoneProgress": true}}), json!({}));
    let st = c.wait_model(Duration::from_secs(300));
    assert_eq!(st["state"], "ready", "model did not load: {st}");
    c
}

fn open(c: &mut LspClient, uri: &str, lang: &str, text: &str) {
    c.notify("textDocument/didOpen", json!({"textDocument": {"uri": uri, "languageId": lang, "version": 1, "text": text}}));
}

/// Types `s` one character at a time at (line, col) with incremental changes.
fn type_text(c: &mut LspClient, uri: &str, version: &mut i32, line: u32, mut col: u32, s: &str) -> u32 {
    for ch in s.chars() {
        *version += 1;
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": *version},
                   "contentChanges": [{"range": {"start": {"line": line, "character": col},
                                                 "end": {"line": line, "character": col}},
                                       "text": ch.to_string()}]}),
        );
        col += ch.len_utf16() as u32;
    }
    col
}

fn inline(c: &mut LspClient, uri: &str, line: u32, col: u32) -> Value {
    c.request(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": col},
               "context": {"triggerKind": 2}}),
    )
}

fn first_text(resp: &Value) -> String {
    let items = resp.as_array().cloned().or_else(|| resp["items"].as_array().cloned()).unwrap_or_default();
    items.first().and_then(|i| i["insertText"].as_str()).unwrap_or("").to_string()
}

fn server_text(c: &mut LspClient, uri: &str) -> (i64, String) {
    let st = c.request("locode/documentState", json!({"uri": uri}));
    (st["version"].as_i64().unwrap(), st["text"].as_str().unwrap().to_string())
}

#[test]
fn python_completion_after_typing() {
    let mut c = ready_server();
    let uri = "file:///tmp/locode-e2e/add.py";
    let (text, line, col) = cursor("def add(a, b):\n    return $0\n\n\nprint(add(1, 2))\n");
    open(&mut c, uri, "python", &text);
    let mut v = 1;
    let col = type_text(&mut c, uri, &mut v, line, col, "a + ");
    assert_eq!(server_text(&mut c, uri).1, "def add(a, b):\n    return a + \n\n\nprint(add(1, 2))\n");
    let resp = inline(&mut c, uri, line, col);
    let item = &resp.as_array().expect("an array of items")[0];
    let text = item["insertText"].as_str().unwrap();
    assert!(text.contains('b'), "suggestion {text:?} should use b");
    assert!(!text.contains('\n'), "mid-line suggestion {text:?} should be one line");
    assert_eq!(item["range"]["start"], json!({"line": line, "character": col}));
    assert_eq!(item["range"]["end"], json!({"line": line, "character": col}));
    let stats = c.request("locode/lastStats", json!({"uri": uri}));
    assert!(stats["prompt_tokens"].as_u64().unwrap() > 10, "{stats}");
    c.shutdown();
}

#[test]
fn rust_completion_and_block_mode() {
    let mut c = ready_server();
    let uri = "file:///tmp/locode-e2e/lib.rs";
    let (text, line, col) = cursor("pub fn add(a: i32, b: i32) -> i32 {\n    $0\n}\n\nfn main() {\n    println!(\"{}\", add(1, 2));\n}\n");
    open(&mut c, uri, "rust", &text);
    let mut v = 1;
    let col2 = type_text(&mut c, uri, &mut v, line, col, "a + ");
    let t = first_text(&inline(&mut c, uri, line, col2));
    assert!(t.contains('b'), "suggestion {t:?} should use b");

    // On an empty line in an empty body, the suggestion is the body: it may
    // span lines but never runs past the block (no `fn main` again).
    let (text, line, col) = cursor("fn is_even(n: u32) -> bool {\n    $0\n}\n\nfn main() {\n    println!(\"{}\", is_even(4));\n}\n");
    let uri2 = "file:///tmp/locode-e2e/even.rs";
    open(&mut c, uri2, "rust", &text);
    let t = first_text(&inline(&mut c, uri2, line, col));
    assert!(!t.is_empty(), "expected a body suggestion");
    assert!(!t.contains("fn main"), "suggestion {t:?} runs past the block");
    assert!(t.contains('n'), "suggestion {t:?} should use n");
    c.shutdown();
}

#[test]
fn completion_item_for_clients_without_inline_completion() {
    let mut c = ready_server();
    let uri = "file:///tmp/locode-e2e/circle.py";
    let (text, line, col) = cursor("import math\n\n\ndef circle_area(radius):\n    return math.pi * rad$0\n");
    open(&mut c, uri, "python", &text);
    let resp = c.request("textDocument/completion", json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": col}}));
    let item = &resp["items"][0];
    let edit = &item["textEdit"];
    // The edit replaces the word being typed with itself plus the suggestion,
    // so clients that filter by that word keep the item.
    assert_eq!(edit["range"]["start"], json!({"line": line, "character": col - 3}));
    assert_eq!(edit["range"]["end"], json!({"line": line, "character": col}));
    let new_text = edit["newText"].as_str().unwrap();
    assert!(new_text.starts_with("rad") && new_text.len() > 3, "{new_text:?}");
    assert!(new_text.contains("radius"), "{new_text:?}");
    assert_eq!(item["filterText"], edit["newText"]);
    c.shutdown();
}

/// VS Code's capabilities, in short: ghost text (`inlineCompletion`) and
/// completion providers that may be registered dynamically.
fn inline_client_caps() -> Value {
    json!({"textDocument": {"inlineCompletion": {"dynamicRegistration": true},
                            "completion": {"dynamicRegistration": true}}})
}

/// A client with ghost text gets no completion items (`completionItems`
/// `auto`): no `completionProvider` in the `initialize` answer, no items
/// when it asks all the same. `always` offers them, and a settings change
/// registers and withdraws the provider with `client/registerCapability`.
#[test]
fn a_client_with_inline_completion_gets_no_completion_items() {
    model_path();
    let mut c = LspClient::spawn(bin(), &["serve"]);
    let init = c.initialize(inline_client_caps(), json!({}));
    assert!(init["capabilities"].get("completionProvider").is_none(), "{init}");
    assert!(init["capabilities"]["inlineCompletionProvider"].as_bool().unwrap_or(false), "{init}");
    assert_eq!(c.wait_model(Duration::from_secs(300))["state"], "ready");
    let uri = "file:///tmp/locode-e2e/items-auto.py";
    let (text, line, col) = cursor("import math\n\n\ndef circle_area(radius):\n    return math.pi * rad$0\n");
    open(&mut c, uri, "python", &text);
    let pos = json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": col}});
    assert_eq!(c.request("textDocument/completion", pos.clone()), json!([]), "items for a client with ghost text");
    assert!(!first_text(&inline(&mut c, uri, line, col)).is_empty(), "ghost text still comes");

    // `always`: registered, and items come.
    c.notify("workspace/didChangeConfiguration", json!({"settings": {"locode": {"completionItems": "always"}}}));
    let reg = c
        .wait_for(Duration::from_secs(10), |m| m["method"] == "client/registerCapability")
        .expect("completionItems always registers the completion provider");
    assert_eq!(reg["params"]["registrations"][0]["method"], "textDocument/completion", "{reg}");
    let items = c.request("textDocument/completion", pos.clone());
    let new_text = items["items"][0]["textEdit"]["newText"].as_str().unwrap_or("").to_string();
    assert!(new_text.starts_with("rad") && new_text.len() > 3, "{items}");

    // `never`: withdrawn, and none come.
    c.notify("workspace/didChangeConfiguration", json!({"settings": {"locode": {"completionItems": "never"}}}));
    let unreg = c
        .wait_for(Duration::from_secs(10), |m| m["method"] == "client/unregisterCapability")
        .expect("completionItems never withdraws the registration");
    assert_eq!(unreg["params"]["unregisterations"][0]["id"], reg["params"]["registrations"][0]["id"], "{unreg}");
    assert_eq!(c.request("textDocument/completion", pos), json!([]));
    c.shutdown();

    // A client without ghost text gets items by default; with `never`, none.
    let mut c = LspClient::spawn(bin(), &["serve"]);
    assert!(c.initialize(json!({}), json!({}))["capabilities"]["completionProvider"].is_object());
    c.shutdown();
    let mut c = LspClient::spawn(bin(), &["serve"]);
    assert!(c.initialize(json!({}), json!({"completionItems": "never"}))["capabilities"].get("completionProvider").is_none());
    c.shutdown();
    // A client with ghost text that asks for items from the start.
    let mut c = LspClient::spawn(bin(), &["serve"]);
    let init = c.initialize(inline_client_caps(), json!({"locode": {"completionItems": "always"}}));
    assert!(init["capabilities"]["completionProvider"].is_object(), "{init}");
    c.shutdown();
}

/// A client that asks for ghost text and items at the same spot (VS Code
/// with `completionItems: always`) gets both: the two kinds of request do
/// not cancel each other (a newer request of the same kind still
/// supersedes the older: `superseded_and_cancelled_requests_return_quickly`).
#[test]
fn ghost_text_and_item_requests_do_not_cancel_each_other() {
    model_path();
    let mut c = LspClient::spawn(bin(), &["serve"]);
    c.initialize(inline_client_caps(), json!({"completionItems": "always"}));
    assert_eq!(c.wait_model(Duration::from_secs(300))["state"], "ready");
    let uri = "file:///tmp/locode-e2e/both.py";
    // A long file, so the cold prompt is still being evaluated when the
    // second request comes.
    let mut text: String =
        (0..120).map(|i| format!("def function_{i}(value):\n    total = value * {i} + {}\n    return total\n\n", i * 7)).collect();
    text.push_str("def final(value):\n    return \n");
    let line = text.lines().count() as u32 - 1;
    open(&mut c, uri, "python", &text);
    let pos = json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": 11}, "context": {"triggerKind": 2}});
    let ghost = c.send_request("textDocument/inlineCompletion", pos.clone());
    std::thread::sleep(Duration::from_millis(200));
    let items = c.send_request("textDocument/completion", pos.clone());
    let ghost = c.response(ghost, Duration::from_secs(600));
    let items = c.response(items, Duration::from_secs(600));
    assert!(!first_text(&ghost["result"]).is_empty(), "the ghost text was cancelled by the item request: {ghost}");
    let item = &items["result"]["items"][0];
    assert!(item["textEdit"]["newText"].as_str().is_some_and(|t| !t.trim().is_empty()), "no item: {items}");
    c.shutdown();
}

#[test]
fn utf16_and_utf8_positions_with_non_ascii_text() {
    // UTF-16: an emoji before the cursor counts two units.
    let mut c = ready_server();
    let uri = "file:///tmp/locode-e2e/emoji.py";
    let (text, line, col) = cursor("def greet(name):\n    return \"😀 hello \" + $0\n");
    assert_eq!(col, "    return \"😀 hello \" + ".encode_utf16().count() as u32);
    open(&mut c, uri, "python", &text);
    let resp = inline(&mut c, uri, line, col);
    let t = first_text(&resp);
    assert!(t.contains("name"), "{t:?}");
    // A position inside the line's end is an error, not a crash; the server goes on.
    let id = c.send_request(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": col + 40}, "context": {"triggerKind": 1}}),
    );
    let resp = c.response(id, Duration::from_secs(300));
    assert_eq!(resp["error"]["code"], -32602, "{resp}");
    assert_eq!(server_text(&mut c, uri).1, text);
    c.shutdown();

    // UTF-8 when the client offers it.
    let mut c = LspClient::spawn(bin(), &["serve"]);
    let init = c.initialize(json!({"general": {"positionEncodings": ["utf-8", "utf-16"]}}), json!({}));
    assert_eq!(init["capabilities"]["positionEncoding"], "utf-8");
    let uri = "file:///tmp/locode-e2e/cjk.py";
    open(&mut c, uri, "python", "s = '漢字'\n");
    // Insert after 漢 (UTF-8 column 8) and after 字 (column 11, after the first insert).
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
            {"range": {"start": {"line": 0, "character": 8}, "end": {"line": 0, "character": 8}}, "text": "é"},
            {"range": {"start": {"line": 0, "character": 13}, "end": {"line": 0, "character": 13}}, "text": "!"}
        ]}),
    );
    assert_eq!(server_text(&mut c, uri), (2, "s = '漢é字!'\n".to_string()));
    c.shutdown();
}

#[test]
fn superseded_and_cancelled_requests_return_quickly() {
    let mut c = ready_server();
    let uri = "file:///tmp/locode-e2e/big.py";
    // A long file, so a cold prompt takes seconds to evaluate.
    let mut text: String =
        (0..120).map(|i| format!("def function_{i}(value):\n    total = value * {i} + {}\n    return total\n\n", i * 7)).collect();
    text.push_str("def final(value):\n    return \n");
    let line = text.lines().count() as u32 - 1;
    open(&mut c, uri, "python", &text);
    let pos = json!({"line": line, "character": 11});
    let params = json!({"textDocument": {"uri": uri}, "position": pos, "context": {"triggerKind": 2}});
    let t0 = Instant::now();
    let first = c.send_request("textDocument/inlineCompletion", params.clone());
    std::thread::sleep(Duration::from_millis(200));
    let second = c.send_request("textDocument/inlineCompletion", params.clone());
    let r1 = c.response(first, Duration::from_secs(600));
    let t1 = t0.elapsed();
    let r2 = c.response(second, Duration::from_secs(600));
    let t2 = t0.elapsed();
    assert_eq!(r1["result"], json!([]), "the superseded request returns nothing: {r1}");
    assert!(t1 < t2, "the superseded request answered first ({t1:?} vs {t2:?})");
    assert!(!first_text(&r2["result"]).is_empty(), "the newer request gets the suggestion: {r2}");

    // $/cancelRequest on an in-flight request: answered as cancelled.
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
            {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "text": "# changed\n"}]}),
    );
    let pos = json!({"line": line + 1, "character": 11});
    let third = c.send_request(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": uri}, "position": pos, "context": {"triggerKind": 2}}),
    );
    std::thread::sleep(Duration::from_millis(100));
    let t3 = Instant::now();
    c.notify("$/cancelRequest", json!({"id": third}));
    let r3 = c.response(third, Duration::from_secs(300));
    assert_eq!(r3["error"]["code"], -32800, "{r3}");
    assert!(t3.elapsed() < Duration::from_secs(30));
    // The engine is free again: a new request completes.
    let r4 = inline(&mut c, uri, line + 1, 11);
    assert!(!first_text(&r4).is_empty(), "{r4}");
    c.shutdown();
}

#[test]
fn rapid_changes_keep_the_text_exact() {
    let mut c = ready_server();
    let uri = "file:///tmp/locode-e2e/rapid.py";
    let mut client_text = String::from("x = 1\n");
    open(&mut c, uri, "python", &client_text);
    let mut version = 1;
    // 50 edits: typed characters, newlines, and deletions, without waiting,
    // with completion requests interleaved.
    for i in 0..50 {
        version += 1;
        let lines: Vec<&str> = client_text.split('\n').collect();
        let last = lines.len() as u32 - 1;
        let last_len = lines[last as usize].len() as u32;
        let (range, new) = match i % 5 {
            0 => ((last, last_len, last, last_len), "\n".to_string()),
            4 if last_len > 0 => ((last, last_len - 1, last, last_len), String::new()),
            _ => ((last, last_len, last, last_len), format!("v{i}")),
        };
        // Apply to the client's copy (ASCII, so columns are bytes).
        let offset =
            |l: u32, col: u32| -> usize { client_text.split('\n').take(l as usize).map(|s| s.len() + 1).sum::<usize>() + col as usize };
        let (a, b) = (offset(range.0, range.1), offset(range.2, range.3));
        client_text.replace_range(a..b, &new);
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [
                {"range": {"start": {"line": range.0, "character": range.1}, "end": {"line": range.2, "character": range.3}},
                 "text": new}]}),
        );
        if i % 10 == 3 {
            c.send_request(
                "textDocument/inlineCompletion",
                json!({"textDocument": {"uri": uri}, "position": {"line": 0, "character": 0}, "context": {"triggerKind": 2}}),
            );
        }
    }
    assert_eq!(server_text(&mut c, uri), (version as i64, client_text));
    c.shutdown();
}

fn expect_model_error(model: &Path, needle: &str) {
    let mut c = LspClient::spawn(bin(), &["serve", "--model", model.to_str().unwrap()]);
    c.initialize(json!({}), json!({}));
    let msg = c.wait_for(Duration::from_secs(300), |m| m["method"] == "window/showMessage").expect("a showMessage about the model");
    assert_eq!(msg["params"]["type"], 1, "an error: {msg}");
    let text = msg["params"]["message"].as_str().unwrap();
    assert!(text.contains(needle), "{text:?} should mention {needle:?}");
    assert!(c.await_notification(Duration::from_secs(10), |m| m["method"] == "window/logMessage"), "the problem is logged too");
    // The server keeps answering.
    let uri = "file:///tmp/locode-e2e/nomodel.py";
    open(&mut c, uri, "python", "x = \n");
    let resp = inline(&mut c, uri, 0, 4);
    assert_eq!(resp, json!([]));
    assert_eq!(server_text(&mut c, uri).1, "x = \n");
    assert_eq!(c.request("locode/status", json!(null))["state"], "failed");
    c.shutdown();
}

#[test]
fn missing_truncated_and_foreign_models_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    expect_model_error(&dir.path().join("nope.gguf"), "not found");

    // The first 8 MiB of the real model: a valid header, missing tensor data.
    let truncated = dir.path().join("truncated.gguf");
    let mut f = std::fs::File::open(model_path()).unwrap();
    let mut head = vec![0u8; 8 << 20];
    std::io::Read::read_exact(&mut f, &mut head).unwrap();
    std::fs::write(&truncated, &head).unwrap();
    expect_model_error(&truncated, "truncated or corrupt");

    let foreign = dir.path().join("notes.gguf");
    std::fs::write(&foreign, "these are not weights\n").unwrap();
    expect_model_error(&foreign, "GGUF magic");
}

#[test]
fn cli_complete_and_doctor() {
    model_path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let demo = root.join("examples/demo.py");
    let out = std::process::Command::new(bin()).args(["complete", &format!("{}:10:22", demo.display()), "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["text"].as_str().unwrap().contains("radius"), "{v}");
    assert_eq!(v["stats"]["evaluated_tokens"], v["stats"]["prompt_tokens"]);

    let out = std::process::Command::new(bin()).args(["complete", &format!("{}:99:1", demo.display())]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("past the end"));

    let out = std::process::Command::new(bin()).arg("doctor").output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    assert!(s.contains("family:         qwen2.5-coder"), "{s}");
    assert!(s.contains("<|fim_prefix|>="), "{s}");
}

/// `locode doctor | head -1`: a reader that stops early ends the command
/// quietly, as with any Unix tool, instead of a panic on the failed write.
#[test]
fn a_reader_that_stops_early_ends_doctor_quietly() {
    use std::process::Stdio;
    let mut child = std::process::Command::new(bin()).arg("doctor").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Closed before the command has started writing.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        // Ended by SIGPIPE (13), the default action of a write to a closed pipe.
        assert_eq!(out.status.signal(), Some(13), "{:?}: {err}", out.status);
    }
}

/// After Enter, the server pre-fills the cache at a pause, so the first
/// request on the new line evaluates only a few tokens of a long prompt.
#[test]
fn enter_warms_the_cache_for_the_new_line() {
    let mut c = ready_server();
    let uri = "file:///tmp/locode-e2e/warm.py";
    let mut text = String::new();
    for i in 0..30 {
        text.push_str(&format!("def scale_{i}(values, factor):\n    return [v * factor + {i} for v in values]\n\n\n"));
    }
    text.push_str("def total(values):\n    result = 0\n    return result\n");
    open(&mut c, uri, "python", &text);
    let line = text.lines().count() as u32 - 2; // `    result = 0`
    let before = c.request("locode/status", json!(null))["warmups"].as_u64().unwrap();
    // Enter with auto-indent at the end of `    result = 0`.
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2},
               "contentChanges": [{"range": {"start": {"line": line, "character": 14}, "end": {"line": line, "character": 14}},
                                   "text": "\n    "}]}),
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    while c.request("locode/status", json!(null))["warmups"].as_u64().unwrap() == before {
        assert!(Instant::now() < deadline, "no warm-up after Enter");
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = Instant::now();
    let resp = inline(&mut c, uri, line + 1, 4);
    let stats = c.request("locode/lastStats", json!({"uri": uri}));
    println!("after Enter, warmed: {:?} in {:?}, {stats}", first_text(&resp), t.elapsed());
    let prompt = stats["prompt_tokens"].as_u64().or(stats["promptTokens"].as_u64()).unwrap();
    let evaluated = stats["evaluated_tokens"].as_u64().or(stats["evaluatedTokens"].as_u64()).unwrap();
    assert!(prompt > 500, "{stats}");
    assert!(evaluated <= 4, "the warmed prompt was evaluated again: {stats}");
    c.shutdown();
}

/// With a workspace folder, definitions from the files a document imports
/// lead its prompt: the index is built in the background, and the first
/// request picks them for its window.
#[test]
fn definitions_from_imported_files_reach_the_prompt() {
    model_path();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shop");
    std::fs::create_dir_all(root.join("billing")).unwrap();
    std::fs::write(
        root.join("billing/tax.py"),
        "def compute_tax(amount, rate):\n    \"\"\"The tax on amount, rounded to cents.\"\"\"\n    return round(amount * rate, 2)\n",
    )
    .unwrap();
    let main = "from billing.tax import compute_tax\n\n\ndef total(amount):\n    tax = \n";
    std::fs::write(root.join("main.py"), main).unwrap();
    let root_uri = format!("file://{}", root.display());
    let uri = format!("{root_uri}/main.py");

    let mut c = LspClient::spawn(bin(), &["serve"]);
    c.request(
        "initialize",
        // The whole prompt, not a first window (which has no other files),
        // however slow the engine measured itself here.
        json!({"processId": null, "rootUri": root_uri, "capabilities": {},
               "initializationOptions": {"firstAnswerMs": 0},
               "workspaceFolders": [{"uri": root_uri, "name": "shop"}]}),
    );
    c.notify("initialized", json!({}));
    let st = c.wait_model(Duration::from_secs(300));
    assert_eq!(st["state"], "ready", "model did not load: {st}");
    // The background build is quick for two files; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    open(&mut c, &uri, "python", main);
    let resp = inline(&mut c, &uri, 4, 10);
    let doc = c.request("locode/documentState", json!({"uri": uri}));
    assert_eq!(doc["crossFile"], json!(["billing/tax.py"]), "{doc}");
    let stats = c.request("locode/lastStats", json!({"uri": uri}));
    println!("with cross-file context: {:?}, {stats}", first_text(&resp));
    let prompt = stats["prompt_tokens"].as_u64().unwrap();
    assert!(prompt > 40, "the definitions are in the prompt: {stats}");
    assert!(first_text(&resp).contains("compute_tax("), "suggestion {:?}", first_text(&resp));
    c.shutdown();
}

/// A multi-line answer still being generated is shown from its first line;
/// the rest follows with `locode/suggestionReady`, and asking again there
/// gives all of it at once, without the model.
#[test]
fn an_early_answer_is_followed_by_the_rest() {
    model_path();
    let mut c = LspClient::spawn(bin(), &["serve"]);
    c.initialize(json!({"experimental": {"locode": {"suggestionReady": true}}}), json!({"earlyAnswerMs": 1}));
    assert_eq!(c.wait_model(Duration::from_secs(300))["state"], "ready");
    let uri = "file:///tmp/locode-e2e/early.py";
    let (text, line) = early_answer_source();
    open(&mut c, uri, "python", &text);
    let first = first_text(&inline(&mut c, uri, line, 4));
    assert!(!first.trim().is_empty() && !first.contains('\n'), "the first line alone: {first:?}");
    let ready =
        c.wait_for(Duration::from_secs(120), |m| m["method"] == "locode/suggestionReady").expect("no locode/suggestionReady for the rest");
    assert_eq!(ready["params"]["textDocument"], json!({"uri": uri, "version": 1}));
    assert_eq!(ready["params"]["position"], json!({"line": line, "character": 4}));
    let whole = first_text(&inline(&mut c, uri, line, 4));
    let stats = c.request("locode/lastStats", json!({"uri": uri}));
    println!("early {first:?}, then {whole:?}");
    assert_eq!(stats["typed_through"], true, "asked again, answered from what was generated: {stats}");
    assert!(whole.starts_with(&first) && whole.lines().count() > 1, "{first:?} / {whole:?}");
    assert_eq!(c.request("locode/status", json!(null))["continued"], 1);
    c.shutdown();
}

/// A document where the model writes a docstring, then a return, then
/// stops (as in tests/engine.rs), and the line of its empty body.
fn early_answer_source() -> (String, u32) {
    let mut text = String::from("import math\n\n\n");
    for i in 0..40 {
        text.push_str(&format!(
            "def scale_{i}(values, factor):\n    \"\"\"Multiply every value by factor and add {i}.\"\"\"\n    return [v * factor + {i} for v in values]\n\n\n"
        ));
    }
    text.push_str("def distance(x1, y1, x2, y2):\n    \n\n\nprint(distance(0, 0, 3, 4))\n");
    let line = text.lines().position(|l| l.starts_with("def distance")).unwrap() as u32 + 1;
    (text, line)
}

/// A server whose client asks again on `locode/suggestionReady`, without
/// early answers.
fn upgrading_client() -> LspClient {
    model_path();
    let mut c = LspClient::spawn(bin(), &["serve"]);
    c.initialize(json!({"experimental": {"locode": {"suggestionReady": true}}}), json!({"earlyAnswerMs": 0}));
    assert_eq!(c.wait_model(Duration::from_secs(300))["state"], "ready");
    c
}

/// A file long enough to be answered from a first window at its last line,
/// `    return ` (column 11), whose answer needs a name from its top. `name`
/// heads it, so that no two tests' files share a prompt (the tests of a
/// run share a KV folder, and a saved state would answer at once).
fn upgrade_source(name: &str) -> (String, u32) {
    let mut text = format!("\"\"\"{name}\"\"\"\nUPLOAD_RETRY_LIMIT = 17\n\n\n");
    for i in 0..24 {
        text.push_str(&format!("def scale_{i}(values, factor):\n    return [v * factor + {i} for v in values]\n\n\n"));
    }
    text.push_str("def upload_attempts_left(attempts_made):\n    return \n");
    let line = text.lines().count() as u32 - 1;
    (text, line)
}

/// A document opened cold is answered at once from a small first window of
/// the nearest lines; once its whole prompt is in (built in the
/// background), the whole prompt answers at the same spot, and its answer,
/// which here needs a name from the top of the file, replaces the shown
/// one: `locode/suggestionReady`, then asking again gets it without the
/// model.
#[test]
fn a_first_window_answer_is_replaced_by_the_whole_prompts() {
    let mut c = upgrading_client();
    let uri = "file:///tmp/locode-e2e/upgrade.py";
    let (text, line) = upgrade_source("Upload limits.");
    open(&mut c, uri, "python", &text);
    let first = first_text(&inline(&mut c, uri, line, 11));
    let stats = c.request("locode/lastStats", json!({"uri": uri}));
    assert_eq!(stats["first_window"], true, "answered from a first window: {stats}");
    assert!(!first.contains("UPLOAD_RETRY_LIMIT"), "the first window does not reach the top: {first:?}");
    let ready = c
        .wait_for(Duration::from_secs(180), |m| m["method"] == "locode/suggestionReady")
        .expect("no locode/suggestionReady after the whole prompt");
    assert_eq!(ready["params"]["textDocument"], json!({"uri": uri, "version": 1}));
    assert_eq!(ready["params"]["position"], json!({"line": line, "character": 11}));
    let whole = first_text(&inline(&mut c, uri, line, 11));
    let stats = c.request("locode/lastStats", json!({"uri": uri}));
    println!("first window {first:?}, then {whole:?}");
    assert!(whole.contains("UPLOAD_RETRY_LIMIT"), "the whole prompt's answer: {whole:?}");
    assert_eq!(stats["typed_through"], true, "answered from what was generated: {stats}");
    assert_eq!(c.request("locode/status", json!(null))["upgraded"], 1);
    // Asked again: the same answer.
    assert_eq!(first_text(&inline(&mut c, uri, line, 11)), whole);
    c.shutdown();
}

/// The whole prompt's build yields to every request, here one for another
/// document made right after the first-window answer; it goes on once that
/// is served (the document is unchanged), and the upgrade still comes.
#[test]
fn a_whole_prompt_build_goes_on_after_yielding_to_a_request() {
    let mut c = upgrading_client();
    let uri = "file:///tmp/locode-e2e/yields.py";
    let (text, line) = upgrade_source("Upload limits, second module.");
    open(&mut c, uri, "python", &text);
    let other = "file:///tmp/locode-e2e/other.py";
    open(&mut c, other, "python", "def area(w, h):\n    return \n");
    inline(&mut c, uri, line, 11);
    assert_eq!(c.request("locode/lastStats", json!({"uri": uri}))["first_window"], true);
    // While the build runs: a request elsewhere, which it yields to.
    inline(&mut c, other, 1, 11);
    let ready = c
        .wait_for(Duration::from_secs(180), |m| m["method"] == "locode/suggestionReady" && m["params"]["textDocument"]["uri"] == uri)
        .expect("no locode/suggestionReady after the build yielded");
    assert_eq!(ready["params"]["position"], json!({"line": line, "character": 11}));
    let whole = first_text(&inline(&mut c, uri, line, 11));
    assert!(whole.contains("UPLOAD_RETRY_LIMIT"), "the whole prompt's answer: {whole:?}");
    c.shutdown();
}

/// A client that does not say it asks again on `locode/suggestionReady`
/// (Helix, plain Neovim) would never see the rest of an early answer: it
/// gets the whole block in its one answer, whatever `earlyAnswerMs` says.
#[test]
fn a_client_that_does_not_ask_again_gets_the_whole_answer() {
    model_path();
    let mut c = LspClient::spawn(bin(), &["serve"]);
    c.initialize(json!({}), json!({"earlyAnswerMs": 1}));
    assert_eq!(c.wait_model(Duration::from_secs(300))["state"], "ready");
    let uri = "file:///tmp/locode-e2e/generic.py";
    let (text, line) = early_answer_source();
    open(&mut c, uri, "python", &text);
    let whole = first_text(&inline(&mut c, uri, line, 4));
    assert!(whole.lines().count() > 1, "a block in one answer: {whole:?}");
    assert_eq!(c.request("locode/status", json!(null))["continued"], 0);
    c.shutdown();
}

/// A document where the model answers a line (`whole`), opened again
/// (nothing shown), then `keys` typed 30 ms apart from its cursor, a request
/// after each key: each request's answer.
fn type_through_a_generation(c: &mut LspClient, uri: &str, keys: impl Fn(&str) -> String) -> (String, String, Vec<String>) {
    let (text, line, col) = cursor(
        "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius ** 2\n\n\ndef sphere_volume(radius):\n    return $0\n",
    );
    // What the model says there (the prompt is then in the cache).
    open(c, uri, "python", &text);
    let whole = first_text(&inline(c, uri, line, col));
    c.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}}));
    open(c, uri, "python", &text);
    let typed = keys(&whole);
    let (mut version, mut col_now, mut ids) = (1, col, Vec::new());
    for ch in typed.chars() {
        col_now = type_text(c, uri, &mut version, line, col_now, &ch.to_string());
        ids.push(c.send_request(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": col_now}, "context": {"triggerKind": 2}}),
        ));
        std::thread::sleep(Duration::from_millis(30));
    }
    let answers = ids.iter().map(|&id| first_text(&c.response(id, Duration::from_secs(120))["result"])).collect();
    (whole, typed, answers)
}

/// Typing fast through the text a generation is producing: each key's
/// request joins the generation in flight instead of cancelling it, so an
/// answer comes while the user is still typing (the rest past what was
/// typed), not only once they stop.
#[test]
fn keys_typed_through_a_generation_in_flight_get_its_answer() {
    let mut c = ready_server();
    let uri = "file:///tmp/locode-e2e/joined.py";
    // The answer's first characters typed.
    let (whole, typed, answers) = type_through_a_generation(&mut c, uri, |whole| whole.chars().take(4).collect());
    assert!(whole.chars().count() > 8, "a line to type through: {whole:?}");
    let rest = whole.strip_prefix(typed.as_str()).unwrap();
    assert_eq!(answers.last().unwrap(), rest, "the last key gets the rest of the answer: {answers:?}");
    assert!(answers[..answers.len() - 1].iter().all(|a| a.is_empty()), "older keys' requests are superseded: {answers:?}");
    let stats = c.request("locode/lastStats", json!({"uri": uri}));
    assert_eq!(stats["joined"], true, "answered by the generation the first key started: {stats}");
    assert!(stats["generated_tokens"].as_u64().unwrap() > 0, "{stats}");
    c.shutdown();
}

#[test]
fn keys_that_go_another_way_than_the_generation_in_flight_get_an_answer_of_their_own() {
    let mut c = ready_server();
    let uri = "file:///tmp/locode-e2e/another-way.py";
    // Keys the model would not write there: each request joins the
    // generation the one before started until its text differs.
    let (whole, typed, answers) = type_through_a_generation(&mut c, uri, |_| "4 / 3 * ".into());
    assert!(!whole.starts_with(&typed), "the model's own answer: {whole:?}");
    let last = answers.last().unwrap();
    assert!(last.contains("radius"), "the last key gets an answer after what was typed: {answers:?}");
    assert!(answers[..answers.len() - 1].iter().all(|a| a.is_empty()), "older keys' requests are superseded: {answers:?}");
    c.shutdown();
}
