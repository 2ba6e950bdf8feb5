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
    serve(None, reply)
}

/// A certificate authority made for one test run, and a server certificate
/// it signed for 127.0.0.1 and localhost.
pub struct TestCa {
    /// The CA's certificate, PEM: what a user's `caFile` holds.
    pub ca_pem: String,
    server_cert: Vec<u8>,
    server_key: Vec<u8>,
}

pub fn test_ca() -> TestCa {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "locode test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "locode test server");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    TestCa { ca_pem, server_cert: cert.der().to_vec(), server_key: key.serialize_der() }
}

/// [`loopback`] over HTTPS with `ca`'s server certificate: `https://127.0.0.1:PORT`.
/// A client that does not trust `ca` fails its handshake, and no request is recorded.
pub fn loopback_tls(ca: &TestCa, reply: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) -> Loopback {
    use tokio_rustls::rustls::{self, pki_types};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = pki_types::PrivateKeyDer::Pkcs8(pki_types::PrivatePkcs8KeyDer::from(ca.server_key.clone()));
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki_types::CertificateDer::from(ca.server_cert.clone())], key)
        .unwrap();
    let mut srv = serve(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))), reply);
    srv.url = srv.url.replace("http://", "https://");
    srv
}

/// TCP connections accepted once their TLS handshake succeeds.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else { continue };
            // One at a time is enough for tests; a failed handshake is a client that did not trust us.
            if let Ok(Ok(io)) = tokio::time::timeout(Duration::from_secs(5), self.tls.accept(tcp)).await {
                return (io, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn serve(tls: Option<tokio_rustls::TlsAcceptor>, reply: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) -> Loopback {
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
            match tls {
                Some(tls) => axum::serve(TlsListener { tcp: listener, tls }, app).await.unwrap(),
                None => axum::serve(listener, app).await.unwrap(),
            }
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
