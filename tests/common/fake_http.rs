//! Fake HTTP servers on 127.0.0.1 for the cloud, remote-engine and
//! outbound tests: one that records every request and answers as told, and
//! a bare listener that counts connections.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub raw: Vec<u8>,
    pub body: Value,
}

#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub delay_ms: u64,
    pub headers: Vec<(&'static str, String)>,
}

pub fn json_reply(status: u16, v: Value) -> Reply {
    Reply { status, content_type: "application/json", body: v.to_string(), delay_ms: 0, headers: vec![] }
}

pub fn sse_reply(events: &[String]) -> Reply {
    Reply { status: 200, content_type: "text/event-stream", body: events.concat(), delay_ms: 0, headers: vec![] }
}

pub type ReplyFn = Arc<dyn Fn(&Recorded, usize) -> Reply + Send + Sync>;

pub struct Loopback {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Loopback {
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

/// An HTTP server on 127.0.0.1 (its own thread and runtime) that records
/// every request and answers with `reply(request, n)` (n counts from 1).
pub fn loopback(reply: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) -> Loopback {
    let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
    let reply: ReplyFn = Arc::new(reply);
    let (tx, rx) = std::sync::mpsc::channel();
    let reqs = requests.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
                let reqs = reqs.clone();
                let reply = reply.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let raw = axum::body::to_bytes(body, 16 << 20).await.unwrap().to_vec();
                    let rec = Recorded {
                        method: parts.method.to_string(),
                        path: parts.uri.path().to_string(),
                        headers: parts
                            .headers
                            .iter()
                            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or("").to_string()))
                            .collect(),
                        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
                        raw,
                    };
                    let n = {
                        let mut r = reqs.lock().unwrap();
                        r.push(rec.clone());
                        r.len()
                    };
                    let r = reply(&rec, n);
                    if r.delay_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(r.delay_ms)).await;
                    }
                    let mut b = axum::response::Response::builder().status(r.status).header("content-type", r.content_type);
                    for (k, v) in &r.headers {
                        b = b.header(*k, v.as_str());
                    }
                    b.body(axum::body::Body::from(r.body)).unwrap()
                }
            });
            axum::serve(listener, app).await.unwrap();
        });
    });
    let port = rx.recv().unwrap();
    Loopback { url: format!("http://127.0.0.1:{port}"), requests }
}

/// A bare TCP listener that counts the connections it accepts (and closes them).
pub struct Counter {
    pub port: u16,
    pub accepts: Arc<AtomicUsize>,
}

pub fn counting_listener() -> Counter {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let accepts = Arc::new(AtomicUsize::new(0));
    let a = accepts.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            if s.is_ok() {
                a.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    Counter { port, accepts }
}
