//! The client's byte stream before the JSON-RPC codec sees it.
//!
//! The codec (tower-lsp-server on tokio-util's `FramedRead`) ends the whole
//! session at the first message it cannot decode: invalid JSON, invalid
//! UTF-8, a JSON value that is not a JSON-RPC message, or a header without
//! `Content-Length`. One bad message from a client must not take the server
//! down, so this filter frames messages itself and hands the codec only
//! messages it can decode:
//!
//! - Lone surrogates. Editors whose strings are UTF-16 (JavaScript, Java, C#)
//!   can send one as a JSON escape (`"\ud800"`), for instance half of an
//!   emoji deleted in two steps. serde_json rejects such a message outright,
//!   so a whole `didChange` would be lost and the document would drift from
//!   the editor's. Each lone surrogate escape becomes `\ufffd` (U+FFFD): both
//!   are one UTF-16 unit, so positions stay valid.
//! - A body that still does not decode is replaced by a request to an unknown
//!   method, with the same id when the body is JSON with an id, else with id
//!   null: the client gets an error for it, as for a parse error, and a
//!   warning is logged without the message's content.
//! - Header blocks without a usable `Content-Length` are skipped up to the
//!   next `Content-Length`. A header block whose lines end in LF alone
//!   (not CRLF, as some hand-written clients send) is read all the same.
//! - A message over [`MAX_MESSAGE`] bytes is not kept: its bytes are
//!   dropped as they come, and it is replaced by a request the server
//!   answers with an error that says so (to the message's id when its first
//!   bytes show one), so the session goes on with the next message.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tower_lsp_server::jsonrpc::{Request, Response};

/// Longest header block looked at before it is skipped as garbage.
const MAX_HEADER: usize = 8 * 1024;

/// Largest message kept: a bigger one is answered with an error.
pub const MAX_MESSAGE: usize = 64 << 20;

/// Bytes of an oversized message kept to find its id.
const ID_WINDOW: usize = 4 * 1024;

/// The method of the stand-in for a message over the limit (`Backend::rejected_message`).
pub const REJECTED: &str = "locode/rejectedMessage";

/// An oversized message being dropped.
struct Dropping {
    /// Its declared length.
    len: usize,
    /// Bytes still to drop.
    remaining: usize,
    /// Its first bytes (up to [`ID_WINDOW`]).
    head: Vec<u8>,
}

/// What the codec accepts, as it decodes it.
#[derive(serde::Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
enum Message {
    Response(Response),
    Request(Request),
}

/// Wraps the client's input stream; see the module docs.
pub struct CheckedInput<R> {
    inner: R,
    /// Bytes read and not yet framed.
    buf: Vec<u8>,
    /// Framed, checked messages ready for the codec.
    out: Vec<u8>,
    eof: bool,
    dropping: Option<Dropping>,
}

impl<R> CheckedInput<R> {
    pub fn new(inner: R) -> Self {
        CheckedInput { inner, buf: Vec::new(), out: Vec::new(), eof: false, dropping: None }
    }

    /// Moves every complete message from `buf` to `out`, fixed or replaced.
    fn settle(&mut self) {
        loop {
            if let Some(d) = &mut self.dropping {
                let n = d.remaining.min(self.buf.len());
                let keep = n.min(ID_WINDOW.saturating_sub(d.head.len()));
                d.head.extend_from_slice(&self.buf[..keep]);
                self.buf.drain(..n);
                d.remaining -= n;
                if d.remaining > 0 && !self.eof {
                    return;
                }
                let d = self.dropping.take().expect("checked above");
                tracing::warn!(bytes = d.len, "dropped a message over the size limit");
                self.emit(&rejected(&d));
                continue;
            }
            if self.buf.is_empty() {
                return;
            }
            let Some(header_end) = header_end(&self.buf) else {
                if self.eof || self.buf.len() > MAX_HEADER {
                    self.skip_garbage();
                    if self.eof {
                        self.buf.clear();
                    }
                    continue;
                }
                return;
            };
            let Some(len) = content_length(&self.buf[..header_end]) else {
                tracing::warn!("skipped a message header without a valid Content-Length");
                self.skip_garbage();
                continue;
            };
            if len > MAX_MESSAGE {
                self.buf.drain(..header_end);
                self.dropping = Some(Dropping { len, remaining: len, head: Vec::new() });
                continue;
            }
            let end = header_end.saturating_add(len);
            if end > self.buf.len() {
                if self.eof {
                    tracing::warn!("the input ended inside a message");
                    self.buf.clear();
                }
                return;
            }
            let mut body: Vec<u8> = self.buf.drain(..end).skip(header_end).collect();
            fix_lone_surrogates(&mut body);
            let body = checked(body);
            self.emit(&body);
        }
    }

    fn emit(&mut self, body: &[u8]) {
        self.out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        self.out.extend_from_slice(body);
    }

    /// Drops bytes up to the next `Content-Length` after the first byte.
    fn skip_garbage(&mut self) {
        let next = find(&self.buf[1..], b"Content-Length").map(|i| i + 1);
        let n = next.unwrap_or(self.buf.len().saturating_sub(b"Content-Length".len())).max(1);
        self.buf.drain(..n.min(self.buf.len()));
    }
}

/// The body if the codec can decode it, else a stand-in it can.
///
/// An empty body is replaced too: the codec reads it as "no message yet" and
/// would then wait for more input before decoding the messages already
/// buffered behind it, so they would go unanswered until the client sent
/// something else.
fn checked(body: Vec<u8>) -> Vec<u8> {
    let err = match serde_json::from_slice::<Message>(&body) {
        Ok(_) => return body,
        Err(e) => e,
    };
    let id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .filter(|id| id.is_i64() || id.is_u64() || id.is_string());
    tracing::warn!(bytes = body.len(), "ignored a malformed message: {err}");
    // An unknown method: the server answers it with an error, to the
    // message's id when it has one, else to id null (as JSON-RPC answers a
    // parse error).
    let id = id.unwrap_or(serde_json::Value::Null);
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "locode/malformedMessage"}).to_string().into_bytes()
}

/// The stand-in for a message over the limit: a request the server answers
/// with an error naming the size and the limit.
fn rejected(d: &Dropping) -> Vec<u8> {
    let id = top_level_id(&d.head).unwrap_or(serde_json::Value::Null);
    let reason = format!("locode: a message of {} bytes is over the limit of {} MiB and was dropped", d.len, MAX_MESSAGE >> 20);
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": REJECTED, "params": {"reason": reason}}).to_string().into_bytes()
}

/// The `id` of a JSON-RPC message from its first bytes, if they hold it at
/// the top level (`{"jsonrpc":"2.0","id":7,...}`, as clients write it).
fn top_level_id(head: &[u8]) -> Option<serde_json::Value> {
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    let mut i = 0;
    while i < head.len() {
        let b = head[i];
        if in_str {
            match b {
                _ if esc => esc = false,
                b'\\' => esc = true,
                b'"' => in_str = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' if depth == 1 && head[i..].starts_with(b"\"id\"") => {
                let rest = &head[i + 4..];
                let colon = rest.iter().position(|c| !c.is_ascii_whitespace())?;
                if rest[colon] != b':' {
                    in_str = true;
                    i += 1;
                    continue;
                }
                let value = &rest[colon + 1..];
                let end = value.iter().position(|&c| c == b',' || c == b'}')?;
                let v: serde_json::Value = serde_json::from_slice(&value[..end]).ok()?;
                return (v.is_i64() || v.is_u64() || v.is_string()).then_some(v);
            }
            b'"' => in_str = true,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Where a header block ends: at its blank line, CRLF or LF alone.
fn header_end(buf: &[u8]) -> Option<usize> {
    let crlf = find(buf, b"\r\n\r\n").map(|i| i + 4);
    let lf = find(buf, b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(header: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(header).ok()?;
    text.split('\n').map(|l| l.trim_end_matches('\r')).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
    })
}

fn hex4(b: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(b.get(..4)?).ok()?;
    u32::from_str_radix(s, 16).ok().filter(|_| s.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// Rewrites `\uXXXX` escapes of unpaired surrogates in a JSON text to `\ufffd`.
pub fn fix_lone_surrogates(body: &mut [u8]) {
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            i += 1;
            continue;
        }
        // An escape: `\` and the character it escapes.
        if body.get(i + 1) != Some(&b'u') {
            i += 2;
            continue;
        }
        let Some(cp) = hex4(&body[i + 2..]) else {
            i += 2;
            continue;
        };
        match cp {
            0xD800..=0xDBFF => {
                let paired = body.get(i + 6) == Some(&b'\\')
                    && body.get(i + 7) == Some(&b'u')
                    && body.get(i + 8..).and_then(hex4).is_some_and(|lo| (0xDC00..=0xDFFF).contains(&lo));
                if paired {
                    i += 12;
                } else {
                    body[i + 2..i + 6].copy_from_slice(b"fffd");
                    i += 6;
                }
            }
            0xDC00..=0xDFFF => {
                body[i + 2..i + 6].copy_from_slice(b"fffd");
                i += 6;
            }
            _ => i += 6,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for CheckedInput<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(out.remaining());
                out.put_slice(&this.out[..n]);
                this.out.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    if rb.filled().is_empty() {
                        this.eof = true;
                    } else {
                        this.buf.extend_from_slice(rb.filled());
                    }
                    this.settle();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn fixed(s: &str) -> String {
        let mut b = s.as_bytes().to_vec();
        fix_lone_surrogates(&mut b);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        assert_eq!(fixed(r#"{"t":"a\ud800b"}"#), r#"{"t":"a\ufffdb"}"#);
        assert_eq!(fixed(r#"{"t":"\uDC00"}"#), r#"{"t":"\ufffd"}"#);
        assert_eq!(fixed(r#"{"t":"\ud83d\ude00"}"#), r#"{"t":"\ud83d\ude00"}"#);
        assert_eq!(fixed(r#"{"t":"\ud83d\ud83d\ude00"}"#), r#"{"t":"\ufffd\ud83d\ude00"}"#);
        assert_eq!(fixed(r#"{"t":"\ude00\ud83d"}"#), r#"{"t":"\ufffd\ufffd"}"#);
        // An escaped backslash followed by "ud800" is plain text.
        assert_eq!(fixed(r#"{"t":"\\ud800"}"#), r#"{"t":"\\ud800"}"#);
        assert_eq!(fixed(r#"{"t":"\\\ud800"}"#), r#"{"t":"\\\ufffd"}"#);
        assert_eq!(fixed(r#"{"t":"\u00e9\n"}"#), r#"{"t":"\u00e9\n"}"#);
        // Truncated escapes are left for the parser to reject.
        assert_eq!(fixed(r#"\ud8"#), r#"\ud8"#);
        let v: serde_json::Value = serde_json::from_str(&fixed(r#"{"t":"x\udbff"}"#)).unwrap();
        assert_eq!(v["t"], "x\u{fffd}");
    }

    #[tokio::test]
    async fn framed_stream_is_fixed_per_message_in_any_chunking() {
        let bodies = [
            r#"{"jsonrpc":"2.0","method":"a","params":"\ud800"}"#,
            r#"{"jsonrpc":"2.0","method":"b","params":"\ud83d\ude00 \\ud800"}"#,
            r#"{"jsonrpc":"2.0","method":"c","params":"\udfff\udfff"}"#,
        ];
        let mut input = Vec::new();
        for b in bodies {
            input.extend_from_slice(format!("Content-Length: {}\r\n\r\n{b}", b.len()).as_bytes());
        }
        let expect = String::from_utf8(input.clone()).unwrap().replace(r#""\ud800""#, r#""\ufffd""#).replace(r"\udfff", r"\ufffd");
        for chunk in [1usize, 3, 7, 1000] {
            let (mut w, r) = tokio::io::duplex(chunk);
            let data = input.clone();
            let writer = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                for c in data.chunks(chunk) {
                    w.write_all(c).await.unwrap();
                }
            });
            let mut out = String::new();
            CheckedInput::new(r).read_to_string(&mut out).await.unwrap();
            writer.await.unwrap();
            assert_eq!(out, expect, "chunks of {chunk}");
        }
    }

    async fn filtered(input: &[u8]) -> String {
        let mut out = String::new();
        CheckedInput::new(input).read_to_string(&mut out).await.unwrap();
        out
    }

    fn framed(body: &str) -> String {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    }

    #[tokio::test]
    async fn undecodable_messages_are_replaced_and_garbage_skipped() {
        let good = r#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#;
        // Invalid JSON with an id: a request the server answers with an error.
        let out = filtered(format!("{}{}", framed(r#"{"jsonrpc":"2.0","id":7,"method":"x","params":{"#), framed(good)).as_bytes()).await;
        let null_id = framed(r#"{"id":null,"jsonrpc":"2.0","method":"locode/malformedMessage"}"#);
        assert_eq!(out, format!("{null_id}{}", framed(good)));
        // Valid JSON with an id, but not a request: an error to that id.
        let out = filtered(framed(r#"{"jsonrpc":"2.0","id":7,"method":5}"#).as_bytes()).await;
        assert_eq!(out, framed(r#"{"id":7,"jsonrpc":"2.0","method":"locode/malformedMessage"}"#));
        // Not JSON-RPC, invalid UTF-8, and a header without a length.
        let mut input = framed("[1,2,3]").into_bytes();
        input.extend_from_slice(b"Content-Length: 3\r\n\r\n\xff\xfe\x00");
        input.extend_from_slice(b"X-Garbage: 1\r\n\r\n{}");
        input.extend_from_slice(framed(good).as_bytes());
        assert_eq!(filtered(&input).await, format!("{null_id}{null_id}{}", framed(good)));
        // An empty body: an error to id null, and the message behind it
        // goes through with it.
        let out = filtered(format!("Content-Length: 0\r\n\r\n{}", framed(good)).as_bytes()).await;
        assert_eq!(out, format!("{null_id}{}", framed(good)));
        // A Content-Type header is dropped, the length kept.
        let with_type = format!("Content-Length: {}\r\nContent-Type: application/vscode-jsonrpc; charset=latin1\r\n\r\n{good}", good.len());
        assert_eq!(filtered(with_type.as_bytes()).await, framed(good));
    }

    #[tokio::test]
    async fn headers_ending_in_lf_alone_are_read() {
        let good = r#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#;
        let lf = format!("Content-Length: {}\n\n{good}", good.len());
        assert_eq!(filtered(lf.as_bytes()).await, framed(good));
        let mixed = format!("Content-Length: {}\r\nContent-Type: x\n\n{good}{}", good.len(), framed(good));
        assert_eq!(filtered(mixed.as_bytes()).await, format!("{}{}", framed(good), framed(good)));
    }

    #[tokio::test]
    async fn a_message_over_the_limit_is_dropped_as_it_comes_and_answered() {
        let good = r#"{"jsonrpc":"2.0","id":8,"method":"locode/status"}"#;
        let len = MAX_MESSAGE + 10;
        let mut big = br#"{"jsonrpc":"2.0","id":7,"method":"textDocument/didOpen","params":{"text":""#.to_vec();
        big.resize(len - 3, b'a');
        big.extend_from_slice(b"\"}}");
        let mut input = format!("Content-Length: {len}\r\n\r\n").into_bytes();
        input.extend_from_slice(&big);
        input.extend_from_slice(framed(good).as_bytes());
        // Through a small pipe: the filter never holds the whole message.
        let (mut w, r) = tokio::io::duplex(64 * 1024);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            w.write_all(&input).await.unwrap();
        });
        let mut filter = CheckedInput::new(r);
        let mut out = String::new();
        let mut most = 0;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = filter.read(&mut chunk).await.unwrap();
            most = most.max(filter.buf.len());
            if n == 0 {
                break;
            }
            out.push_str(std::str::from_utf8(&chunk[..n]).unwrap());
        }
        writer.await.unwrap();
        assert!(most < 1 << 20, "buffered {most} bytes");
        let reason = format!("locode: a message of {len} bytes is over the limit of 64 MiB and was dropped");
        let stand_in = serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": REJECTED, "params": {"reason": reason}}).to_string();
        assert_eq!(out, format!("{}{}", framed(&stand_in), framed(good)));
    }

    #[test]
    fn ids_are_read_at_the_top_level_only() {
        assert_eq!(top_level_id(br#"{"jsonrpc":"2.0","id":7,"method":"x""#), Some(serde_json::json!(7)));
        assert_eq!(top_level_id(br#"{"id" : "a-1", "params":"#), Some(serde_json::json!("a-1")));
        assert_eq!(top_level_id(br#"{"params":{"id":3},"id":4,"#), Some(serde_json::json!(4)));
        assert_eq!(top_level_id(br#"{"method":"x","params":{"id":3,"text":"aaaa"#), None);
        assert_eq!(top_level_id(br#"{"method":"\"id\":5","params":"#), None);
    }
}
