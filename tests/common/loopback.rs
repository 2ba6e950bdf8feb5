//! An HTTP server on 127.0.0.1 that records every request and answers with
//! JSON from a function of the request: a stand-in for a cloud provider.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub raw: Vec<u8>,
    pub body: Value,
}

pub struct Loopback {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Loopback {
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

type ReplyFn = Arc<dyn Fn(&Recorded) -> (u16, Value) + Send + Sync>;

/// Serves on its own thread and runtime until the test process ends.
pub fn loopback(reply: impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static) -> Loopback {
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
                let (reqs, reply) = (reqs.clone(), reply.clone());
                async move {
                    let (parts, body) = req.into_parts();
                    let raw = axum::body::to_bytes(body, 64 << 20).await.unwrap().to_vec();
                    let rec =
                        Recorded { path: parts.uri.path().to_string(), body: serde_json::from_slice(&raw).unwrap_or(Value::Null), raw };
                    reqs.lock().unwrap().push(rec.clone());
                    let (status, v) = reply(&rec);
                    axum::response::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(axum::body::Body::from(v.to_string()))
                        .unwrap()
                }
            });
            axum::serve(listener, app).await.unwrap();
        });
    });
    let port = rx.recv().unwrap();
    Loopback { url: format!("http://127.0.0.1:{port}"), requests }
}
