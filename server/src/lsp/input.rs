//! The client's byte stream before the JSON-RPC codec sees it.
//!
//! Editors whose strings are UTF-16 (JavaScript, Java, C#) can send a lone
//! surrogate as a JSON escape (`"\ud800"`), for instance half of an emoji
//! deleted in two steps. serde_json rejects such a message outright, so the
//! whole `didChange` would be lost and the server's copy of the document
//! would drift from the editor's. This filter rewrites each lone surrogate
//! escape to `\ufffd` (U+FFFD REPLACEMENT CHARACTER) inside each message body.
//! Both are one UTF-16 unit and six bytes, so positions and `Content-Length`
//! stay valid.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Longest header block looked at; a longer one is passed through untouched.
const MAX_HEADER: usize = 8 * 1024;

/// Wraps the client's input stream; see the module docs.
pub struct LoneSurrogates<R> {
    inner: R,
    /// Bytes read and not yet handed on.
    buf: Vec<u8>,
    /// How many bytes at the front of `buf` are final.
    ready: usize,
    eof: bool,
}

impl<R> LoneSurrogates<R> {
    pub fn new(inner: R) -> Self {
        LoneSurrogates { inner, buf: Vec::new(), ready: 0, eof: false }
    }

    /// Marks as final whatever complete messages (headers and body) lie
    /// after the final bytes, fixing their bodies.
    fn settle(&mut self) {
        loop {
            let rest = &self.buf[self.ready..];
            if rest.is_empty() {
                return;
            }
            let Some(header_end) = find(rest, b"\r\n\r\n").map(|i| i + 4) else {
                if self.eof || rest.len() > MAX_HEADER {
                    self.ready = self.buf.len();
                }
                return;
            };
            let Some(len) = content_length(&rest[..header_end]) else {
                // Not a header we understand: let the codec judge it.
                self.ready += header_end;
                continue;
            };
            let end = self.ready + header_end + len;
            if end > self.buf.len() {
                if self.eof {
                    self.ready = self.buf.len();
                }
                return;
            }
            fix_lone_surrogates(&mut self.buf[self.ready + header_end..end]);
            self.ready = end;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(header: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(header).ok()?;
    text.split("\r\n").find_map(|line| {
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

impl<R: AsyncRead + Unpin> AsyncRead for LoneSurrogates<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.drain(..n);
                this.ready -= n;
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
        let bodies = [r#"{"a":"\ud800"}"#, r#"{"b":"\ud83d\ude00 \\ud800"}"#, r#"{"c":"\udfff\udfff"}"#];
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
            LoneSurrogates::new(r).read_to_string(&mut out).await.unwrap();
            writer.await.unwrap();
            assert_eq!(out, expect, "chunks of {chunk}");
        }
    }
}
