//! First completion in a ~3,000-token Python file, then one more typed
//! character: latency and prompt tokens evaluated for each. Then the same
//! first completion in a fresh slot once the server's warm-up
//! (`complete::warm`, what didOpen and Enter run at a pause) has pre-filled
//! its prompt: its latency against its own decode time (target <= 1.5x).
//!   cargo bench --bench keystroke [-- FILE]
//! Default file: ../shared/bench-data/corpus/requests_sessions.py, first 360 lines.

use locode::complete::{self, Spot};
use locode::config::{CompletionConfig, EngineConfig};
use locode::documents::{Change, Document, Encoding, Pos};
use locode::engine::{CancelToken, Engine};
use locode::session::Session;
use locode::syntax::Language;
use std::time::Instant;

#[tokio::main]
async fn main() {
    let path = std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with('-'))
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/bench-data/corpus/requests_sessions.py").to_string());
    let full = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let text: String = full.lines().take(360).map(|l| format!("{l}\n")).collect();
    let engine = Engine::spawn();
    let t = Instant::now();
    let (info, family) = engine.load(EngineConfig::default(), |_| {}).await.expect("model (make model)");
    println!("model load: {:.0} ms, {} threads", t.elapsed().as_secs_f64() * 1e3, info.threads);
    let cfg = CompletionConfig { prefix_lines: 400, prefix_chars: 20_000, ..Default::default() };
    // The cursor: the end of the last line of the file's last `return` statement, mid-line.
    let line = text.lines().enumerate().filter(|(_, l)| l.trim_start().starts_with("return ")).map(|(i, _)| i).last().unwrap();
    let col = text.lines().nth(line).unwrap().find("return ").unwrap() + "return ".len();
    let mut doc = Session::new(Document::new(&text, 1, Language::Python));
    for step in 0..2 {
        if step == 1 {
            let ch = text.lines().nth(line).unwrap()[col..].chars().next().unwrap_or('x');
            doc.apply_versioned(
                2,
                vec![Change { range: Some((Pos::new(line as u32, col as u32), Pos::new(line as u32, col as u32))), text: ch.to_string() }],
                Encoding::Utf16,
            );
        }
        let cursor = doc.rope.line_to_char(line) + col + step;
        let (snap, anchor) = doc.plan(cursor, &cfg, None);
        let t = Instant::now();
        let s =
            complete::suggest(&engine, &family, "bench", &Spot { snap: &snap, cursor, anchor }, &cfg, CancelToken::new()).await.unwrap();
        println!(
            "{}: {:.0} ms total; prompt {} tokens, {} evaluated ({:.0} ms); {} generated ({:.0} ms); suggestion {:?}",
            if step == 0 { "first completion" } else { "after one more character" },
            t.elapsed().as_secs_f64() * 1e3,
            s.stats.prompt_tokens,
            s.stats.evaluated_tokens,
            s.stats.prompt_ms,
            s.stats.generated_tokens,
            s.stats.generate_ms,
            s.text
        );
    }

    // Opened again in another slot: the warm-up runs first (in the server it
    // starts at the first pause), then the first completion comes.
    let mut doc = Session::new(Document::new(&text, 1, Language::Python));
    let cursor = doc.rope.line_to_char(line) + col;
    let (snap, anchor) = doc.plan(cursor, &cfg, None);
    let spot = Spot { snap: &snap, cursor, anchor };
    let t = Instant::now();
    let warmed = complete::warm(&engine, &family, "opened", &spot, &cfg).await;
    let warm_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let s = complete::suggest(&engine, &family, "opened", &spot, &cfg, CancelToken::new()).await.unwrap();
    let total = t.elapsed().as_secs_f64() * 1e3;
    let ratio = total / s.stats.generate_ms.max(1.0);
    println!(
        "after warm-up ({} in {warm_ms:.0} ms): first completion {total:.0} ms total; {} evaluated ({:.0} ms); {} generated ({:.0} ms); {ratio:.2}x its decode time, target <= 1.5x: {}",
        if warmed { "done" } else { "NOT done" },
        s.stats.evaluated_tokens,
        s.stats.prompt_ms,
        s.stats.generated_tokens,
        s.stats.generate_ms,
        if warmed && ratio <= 1.5 { "met" } else { "MISSED" }
    );
}
