//! Planted secrets: files in Python, Rust, TypeScript, YAML, shell and
//! Markdown under tests/data/planted/, each `NAME.EXT` with a sidecar
//! `NAME.EXT.secrets` listing its secret values one per line, every form of
//! secret at least twice. None may leak through the redactor, through
//! `locode.previewCloud`, or in the requests a cloud receives (the first
//! try and the retry). And the false-positive budget: real code gets no
//! redactions at all.
//!
//! No model is needed: the server is pointed at a model file that does not
//! exist, and the cloud is an HTTP server on 127.0.0.1.

#[path = "common/lsp_client.rs"]
mod lsp_client;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use locode::redact::Redactor;
use lsp_client::{bin, LspClient};
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every planted file with its secrets.
fn planted() -> Vec<(PathBuf, String, Vec<String>)> {
    let dir = root().join("tests/data/planted");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "secrets") {
            continue;
        }
        let sidecar = PathBuf::from(format!("{}.secrets", path.display()));
        let secrets: Vec<String> = std::fs::read_to_string(&sidecar)
            .unwrap_or_else(|e| panic!("{}: {e}", sidecar.display()))
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        let text = std::fs::read_to_string(&path).unwrap();
        for s in &secrets {
            assert!(text.contains(s.as_str()), "{}: the sidecar's {s:?} is not in the file", path.display());
        }
        out.push((path, text, secrets));
    }
    out.sort();
    let exts: Vec<String> = out.iter().map(|(p, _, _)| p.extension().unwrap().to_string_lossy().into_owned()).collect();
    for want in ["py", "rs", "ts", "yaml", "sh", "md"] {
        assert!(exts.iter().any(|e| e == want), "no planted .{want} file in {}", dir.display());
    }
    out
}

/// The secrets of `secrets` that `sent` shows: whole, or a 12-character
/// piece of a long one.
fn leaks(sent: &str, secrets: &[String]) -> Vec<String> {
    secrets
        .iter()
        .filter(|s| {
            let chars: Vec<char> = s.chars().collect();
            sent.contains(s.as_str())
                || (chars.len() >= 16 && chars.windows(12).map(|w| w.iter().collect::<String>()).any(|w| sent.contains(&w)))
        })
        .cloned()
        .collect()
}

#[test]
fn planted_secrets_do_not_leak_from_the_redactor() {
    let mut total = 0;
    for (path, text, secrets) in planted() {
        let mut r = Redactor::new();
        let out = r.redact(&text);
        let leaked = leaks(&out, &secrets);
        assert!(leaked.is_empty(), "{}: leaked {leaked:?}\n{out}", path.display());
        assert_eq!(r.restore(&out), text, "{}: restores", path.display());
        total += secrets.len();
    }
    println!("planted: {total} secrets, none leaked");
}

/// Real code: the shared corpus and locode's own sources. redact.rs is left
/// out: its documentation and tests are made of examples of secrets.
fn real_code() -> Vec<PathBuf> {
    fn walk(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("node_modules") {
                    walk(&p, exts, out);
                }
            } else if exts.is_empty() || p.extension().is_some_and(|x| exts.iter().any(|e| x == *e)) {
                out.push(p);
            }
        }
    }
    let root = root();
    let corpus = root.join("../shared/bench-data/corpus");
    assert!(corpus.is_dir(), "the shared corpus is missing at {} (it sits beside the clone)", corpus.display());
    let mut files = Vec::new();
    walk(&corpus, &[], &mut files);
    walk(&root.join("server/src"), &["rs"], &mut files);
    walk(&root.join("benches"), &["rs"], &mut files);
    walk(&root.join("editors"), &["lua", "ts"], &mut files);
    files.retain(|p| !p.ends_with("server/src/redact.rs"));
    files.sort();
    files
}

#[test]
fn real_code_gets_no_redactions() {
    let files = real_code();
    assert!(files.len() >= 50, "only {} files of real code", files.len());
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let mut r = Redactor::new();
        let out = r.redact(&text);
        for (a, b) in text.lines().zip(out.lines()).filter(|(a, b)| a != b) {
            found.push(format!("{}:\n  - {a}\n  + {b}", f.display()));
        }
    }
    println!("real code: {} files, {} redacted lines", files.len(), found.len());
    assert!(found.is_empty(), "ordinary code was redacted:\n{}", found.join("\n"));
}
