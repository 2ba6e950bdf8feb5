//! The client's byte stream at its limits, over the `locode` binary: a
//! message over the size limit is answered with an error and the session
//! goes on; a header block ending in LF alone is read. No model is loaded
//! (`initialized` is never sent).

#[path = "common/lsp_client.rs"]
mod lsp_client;

use std::time::{Duration, Instant};

use lsp_client::{bin, LspClient};
use serde_json::json;

fn started() -> LspClient {
    let mut c = LspClient::spawn(bin(), &["serve"]);
    c.request("initialize", json!({"processId": null, "rootUri": null, "capabilities": {}}));
    c
}

#[test]
fn an_oversized_message_gets_an_error_and_the_next_request_is_answered() {
    let mut c = started();
    let t0 = Instant::now();
    // 64 MiB and a little more, as a request with id 900.
    let len = (64 << 20) + 100;
    let head = br#"{"jsonrpc":"2.0","id":900,"method":"textDocument/didOpen","params":{"text":""#;
    let mut body = head.to_vec();
    body.resize(len - 3, b'a');
    body.extend_from_slice(b"\"}}");
    c.write_raw(format!("Content-Length: {len}\r\n\r\n").as_bytes());
    c.write_raw(&body);
    let st = c.request("locode/status", json!(null));
    assert!(st["state"].is_string(), "{st}");
    let err = c.response(900, Duration::from_secs(30));
    let message = err["error"]["message"].as_str().unwrap_or_else(|| panic!("{err}"));
    assert!(message.contains(&format!("a message of {len} bytes is over the limit of 64 MiB")), "{message}");
    assert!(c.await_notification(Duration::from_secs(5), |m| m["method"] == "window/showMessage"));
    println!("a {} MiB message refused and the session went on in {:.2} s", len >> 20, t0.elapsed().as_secs_f64());
    c.shutdown();
}

#[test]
fn a_header_ending_in_lf_alone_is_read() {
    let mut c = started();
    let body = json!({"jsonrpc": "2.0", "id": 901, "method": "locode/status"}).to_string();
    c.write_raw(format!("Content-Length: {}\n\n{body}", body.len()).as_bytes());
    let r = c.response(901, Duration::from_secs(10));
    assert!(r["result"]["state"].is_string(), "{r}");
    // And the session goes on with ordinary framing.
    assert!(c.request("locode/status", json!(null))["state"].is_string());
    c.shutdown();
}
