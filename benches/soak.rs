//! Soak: replayed typing against `locode serve` for a long time, watching
//! the server's memory, file descriptors and threads.
//!
//! The typing trace of the replay benchmark (functions of two real files,
//! their bodies deleted and retyped word by word, completions asked for
//! along the way) is replayed over and over; each round closes and reopens
//! the files. Every `--sample-secs` the server's VmRSS, open descriptors
//! (/proc/PID/fd) and threads (/proc/PID/task) are sampled. After the
//! warm-up, RSS may grow by at most 5% and descriptors and threads not at all.
//!
//! cargo bench --bench soak -- [--minutes 30] [--warmup-minutes M] [--sample-secs 10]
//!     [--pace-ms 120] [--threads N] [--model PATH] [--corpus DIR]

#[path = "../tests/common/lsp_client.rs"]
mod lsp_client;
#[allow(dead_code)]
#[path = "replay/trace.rs"]
mod trace;

use lsp_client::LspClient;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Opts {
    minutes: f64,
    warmup_minutes: Option<f64>,
    sample_secs: u64,
    pace_ms: u64,
    threads: Option<u32>,
    model: Option<PathBuf>,
    corpus: Option<PathBuf>,
}

fn parse_opts() -> Opts {
    let mut o = Opts { minutes: 30.0, warmup_minutes: None, sample_secs: 10, pace_ms: 120, threads: None, model: None, corpus: None };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = || args.get(i + 1).cloned().unwrap_or_else(|| panic!("{} needs a value", args[i]));
        match args[i].as_str() {
            "--minutes" => o.minutes = val().parse().expect("--minutes N"),
            "--warmup-minutes" => o.warmup_minutes = Some(val().parse().expect("--warmup-minutes N")),
            "--sample-secs" => o.sample_secs = val().parse().expect("--sample-secs N"),
            "--pace-ms" => o.pace_ms = val().parse().expect("--pace-ms N"),
            "--threads" => o.threads = Some(val().parse().expect("--threads N")),
            "--model" => o.model = Some(PathBuf::from(val())),
            "--corpus" => o.corpus = Some(PathBuf::from(val())),
            // Flags cargo bench passes along.
            "--bench" | "--nocapture" => {
                i += 1;
                continue;
            }
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    o
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn default_corpus() -> PathBuf {
    let root = repo_root();
    [root.join("shared/bench-data/corpus"), root.join("../shared/bench-data/corpus")]
        .into_iter()
        .find(|c| c.is_dir())
        .unwrap_or_else(|| root.join("../shared/bench-data/corpus"))
}

#[derive(Clone, Copy)]
struct Sample {
    t: f64,
    rss_kib: u64,
    fds: usize,
    threads: usize,
    completions: usize,
}

fn sample(pid: u32, t0: Instant, completions: usize) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let count = |d: String| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
    Sample {
        t: t0.elapsed().as_secs_f64(),
        rss_kib,
        fds: count(format!("/proc/{pid}/fd")),
        threads: count(format!("/proc/{pid}/task")),
        completions,
    }
}

/// The LSP position of byte offset `at` in `text` (UTF-16 columns).
fn position(text: &str, at: usize) -> Value {
    let before = &text[..at];
    let line = before.matches('\n').count();
    let col: usize = before.rsplit('\n').next().unwrap().encode_utf16().count();
    json!({"line": line, "character": col})
}

fn main() {
    let opts = parse_opts();
    let corpus = opts.corpus.clone().unwrap_or_else(default_corpus);
    let files = [corpus.join("requests_sessions.py"), corpus.join("serde_json_read.rs")];
    let sessions: Vec<trace::Session> =
        files.iter().map(|f| trace::session(f, 4, 8).unwrap_or_else(|e| panic!("{e} (pass --corpus DIR)"))).collect();
    let bin = Path::new(env!("CARGO_BIN_EXE_locode"));
    let mut args: Vec<String> = vec![];
    if let Some(m) = &opts.model {
        args.extend(["--model".into(), m.display().to_string()]);
    }
    if let Some(t) = opts.threads {
        args.extend(["--threads".into(), t.to_string()]);
    }
    let args: Vec<&str> = std::iter::once("serve").chain(args.iter().map(String::as_str)).collect();
    let mut c = LspClient::spawn(bin, &args);
    c.initialize(json!({}), json!({"maxTokens": 32}));
    let st = c.wait_model(Duration::from_secs(600));
    assert_eq!(st["state"], "ready", "the model did not load: {st}");
    let pid = c.pid();
    let duration = Duration::from_secs_f64(opts.minutes * 60.0);
    let warmup = Duration::from_secs_f64(opts.warmup_minutes.unwrap_or((opts.minutes / 6.0).max(2.0).min(opts.minutes / 2.0)) * 60.0);
    let every = Duration::from_secs(opts.sample_secs);
    println!(
        "soak: {:.1} min of replayed typing ({} files), warm-up {:.1} min, a sample every {} s, {} ms between keystroke events",
        opts.minutes,
        sessions.len(),
        warmup.as_secs_f64() / 60.0,
        opts.sample_secs,
        opts.pace_ms
    );
    println!("{:>8} {:>10} {:>6} {:>8} {:>12}", "t (s)", "RSS MiB", "fds", "threads", "completions");

    let t0 = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_sample = Duration::ZERO;
    let (mut completions, mut rounds, mut edits, mut slowest, mut latency_sum) = (0usize, 0usize, 0usize, 0f64, 0f64);
    let mut take = |c: &mut LspClient, samples: &mut Vec<Sample>, completions: usize| {
        if t0.elapsed() >= next_sample {
            next_sample = t0.elapsed() + every;
            let s = sample(pid, t0, completions);
            println!("{:>8.0} {:>10.1} {:>6} {:>8} {:>12}", s.t, s.rss_kib as f64 / 1024.0, s.fds, s.threads, s.completions);
            samples.push(s);
            // Keep the client's backlog of notifications from growing.
            let _ = c.notifications("window/logMessage");
        }
    };
    'outer: while t0.elapsed() < duration {
        rounds += 1;
        for (si, s) in sessions.iter().enumerate() {
            let uri = format!("file:///tmp/locode-soak/{}", s.file_name);
            let mut text = s.text.clone();
            let mut version = 1;
            c.notify(
                "textDocument/didOpen",
                json!({"textDocument": {"uri": uri, "languageId": s.lang.language_id(), "version": 1, "text": text}}),
            );
            for a in &s.actions {
                if t0.elapsed() >= duration {
                    c.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}}));
                    break 'outer;
                }
                match a {
                    trace::Action::Edit { start, end, text: new } => {
                        version += 1;
                        let range = json!({"start": position(&text, *start), "end": position(&text, *end)});
                        trace::apply(&mut text, *start, *end, new);
                        c.notify(
                            "textDocument/didChange",
                            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"range": range, "text": new}]}),
                        );
                        edits += 1;
                        std::thread::sleep(Duration::from_millis(opts.pace_ms));
                    }
                    trace::Action::Request { cursor, .. } => {
                        let t = Instant::now();
                        let id = c.send_request(
                            "textDocument/inlineCompletion",
                            json!({"textDocument": {"uri": uri}, "position": position(&text, *cursor), "context": {"triggerKind": 2}}),
                        );
                        let r = c.wait_for(Duration::from_secs(120), |m| m.get("id") == Some(&json!(id)) && m.get("method").is_none());
                        assert!(r.is_some(), "no answer to a completion within 120 s");
                        let ms = t.elapsed().as_secs_f64() * 1e3;
                        slowest = f64::max(slowest, ms);
                        latency_sum += ms;
                        completions += 1;
                    }
                }
                take(&mut c, &mut samples, completions);
            }
            // Every other round, leave one document open: the client keeps
            // files open for a while, then closes them.
            if rounds % 2 == 0 || si == 0 {
                c.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}}));
            }
            take(&mut c, &mut samples, completions);
        }
    }
    let last = sample(pid, t0, completions);
    samples.push(last);
    c.shutdown();

    // After the warm-up: the first samples against the last ones.
    let after: Vec<Sample> = samples.iter().copied().filter(|s| s.t >= warmup.as_secs_f64()).collect();
    println!(
        "soak: {} rounds, {edits} edits, {completions} completions (mean {:.0} ms, slowest {slowest:.0} ms) in {:.1} min",
        rounds,
        latency_sum / completions.max(1) as f64,
        t0.elapsed().as_secs_f64() / 60.0
    );
    if after.len() < 4 {
        println!("soak: too few samples after the warm-up ({}); run longer", after.len());
        std::process::exit(2);
    }
    let q = (after.len() / 4).max(1);
    let (first, last) = (&after[..q], &after[after.len() - q..]);
    let mean_rss = |v: &[Sample]| v.iter().map(|s| s.rss_kib as f64).sum::<f64>() / v.len() as f64 / 1024.0;
    let max_of = |v: &[Sample], f: fn(&Sample) -> usize| v.iter().map(f).max().unwrap_or(0);
    let min_of = |v: &[Sample], f: fn(&Sample) -> usize| v.iter().map(f).min().unwrap_or(0);
    let (rss0, rss1) = (mean_rss(first), mean_rss(last));
    let growth = (rss1 - rss0) / rss0 * 100.0;
    let peak = after.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64 / 1024.0;
    // A leak raises the floor: the fewest descriptors and threads of the last
    // quarter may not exceed the most of the first (short-lived threads, such
    // as tokio's blocking pool, come and go).
    let (fd0, fd1) = (max_of(first, |s| s.fds), min_of(last, |s| s.fds));
    let (th0, th1) = (max_of(first, |s| s.threads), min_of(last, |s| s.threads));
    let rss_ok = growth <= 5.0;
    let fd_ok = fd1 <= fd0;
    let th_ok = th1 <= th0;
    println!(
        "soak: RSS after warm-up {rss0:.1} MiB -> {rss1:.1} MiB at the end ({growth:+.2}%, peak {peak:.1} MiB; limit +5%): {}",
        if rss_ok { "PASS" } else { "FAIL" }
    );
    println!("soak: open fds {fd0} (most, first quarter) -> {fd1} (fewest, last quarter): {}", if fd_ok { "PASS" } else { "FAIL" });
    println!("soak: threads {th0} (most, first quarter) -> {th1} (fewest, last quarter): {}", if th_ok { "PASS" } else { "FAIL" });
    let ok = rss_ok && fd_ok && th_ok;
    println!("soak: {}", if ok { "PASS" } else { "FAIL" });
    if !ok {
        std::process::exit(1);
    }
}
