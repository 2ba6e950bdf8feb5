//! Statistics, the printed table, the JSON summary and the latency plot.

use crate::trace::Lang;
use serde_json::{json, Value};
use std::fmt::Write as _;

pub const LOCODE: &str = "locode";
pub const PEER: &str = "llama-server";

/// One completion request as one engine answered it.
#[derive(Clone, Debug)]
pub struct Sample {
    pub engine: &'static str,
    pub lang: Lang,
    pub file: String,
    pub function: String,
    pub step: usize,
    /// 0-based line and UTF-16 column of the cursor.
    pub line: usize,
    pub col: usize,
    pub latency_ms: f64,
    /// Tokens in the whole prompt (None when the engine did not say).
    pub prompt_tokens: Option<u64>,
    /// Prompt tokens the engine had to evaluate (0 when no engine work).
    pub evaluated: u64,
    pub generated: u64,
    pub prompt_ms: Option<f64>,
    pub generate_ms: Option<f64>,
    pub suggestion: String,
    pub expected: String,
    pub useful: bool,
    pub shown: bool,
    /// locode answered from its typed-through cache (no engine work).
    pub typed_through: bool,
    pub error: Option<String>,
}

/// First line of a suggestion, trailing whitespace trimmed.
pub fn first_line(s: &str) -> &str {
    s.split('\n').next().unwrap_or("").trim_end()
}

/// Useful: the first line is non-empty and a prefix of (or equal to) what the
/// user types next on that line, both with trailing whitespace trimmed.
pub fn is_useful(suggestion: &str, expected: &str) -> bool {
    let first = first_line(suggestion);
    !first.is_empty() && expected.trim_end().starts_with(first)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub n: usize,
    pub failed: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub mean_ms: f64,
    pub eval_mean: f64,
    pub eval_p50: f64,
    pub eval_p95: f64,
    pub prompt_mean: f64,
    pub gen_mean: f64,
    pub gen_total: u64,
    pub shown: f64,
    pub useful: f64,
    pub typed_through: f64,
}

pub fn summarize(samples: &[&Sample]) -> Summary {
    let mut lat: Vec<f64> = samples.iter().map(|s| s.latency_ms).collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let mut eval: Vec<f64> = samples.iter().map(|s| s.evaluated as f64).collect();
    eval.sort_by(|a, b| a.total_cmp(b));
    let prompt: Vec<f64> = samples.iter().filter_map(|s| s.prompt_tokens.map(|p| p as f64)).collect();
    let generated: Vec<f64> = samples.iter().map(|s| s.generated as f64).collect();
    let n = samples.len();
    let share = |f: &dyn Fn(&Sample) -> bool| {
        if n == 0 {
            f64::NAN
        } else {
            samples.iter().filter(|s| f(s)).count() as f64 / n as f64
        }
    };
    Summary {
        n,
        failed: samples.iter().filter(|s| s.error.is_some()).count(),
        p50_ms: percentile(&lat, 50.0),
        p95_ms: percentile(&lat, 95.0),
        mean_ms: mean(&lat),
        eval_mean: mean(&eval),
        eval_p50: percentile(&eval, 50.0),
        eval_p95: percentile(&eval, 95.0),
        prompt_mean: mean(&prompt),
        gen_mean: mean(&generated),
        gen_total: samples.iter().map(|s| s.generated).sum(),
        shown: share(&|s| s.shown),
        useful: share(&|s| s.useful),
        typed_through: share(&|s| s.typed_through),
    }
}

fn summary_json(s: &Summary) -> Value {
    let f = |x: f64| if x.is_finite() { json!((x * 100.0).round() / 100.0) } else { Value::Null };
    json!({
        "requests": s.n,
        "failed": s.failed,
        "latency_p50_ms": f(s.p50_ms),
        "latency_p95_ms": f(s.p95_ms),
        "latency_mean_ms": f(s.mean_ms),
        "evaluated_tokens_mean": f(s.eval_mean),
        "evaluated_tokens_p50": f(s.eval_p50),
        "evaluated_tokens_p95": f(s.eval_p95),
        "prompt_tokens_mean": f(s.prompt_mean),
        "generated_tokens_mean": f(s.gen_mean),
        "generated_tokens_total": s.gen_total,
        "shown_share": f(s.shown),
        "useful_share": f(s.useful),
        "typed_through_share": f(s.typed_through),
    })
}

pub const GROUPS: [(&str, Option<Lang>); 3] = [("python", Some(Lang::Python)), ("rust", Some(Lang::Rust)), ("all", None)];

fn pick<'a>(samples: &'a [Sample], engine: &str, lang: Option<Lang>) -> Vec<&'a Sample> {
    samples.iter().filter(|s| s.engine == engine && lang.is_none_or(|l| s.lang == l)).collect()
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (a.is_finite() && b.is_finite() && b > 0.0).then(|| a / b)
}

/// The table printed at the end of a run.
pub fn table(samples: &[Sample], engines: &[&'static str]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<7} {:<13} {:>4} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>10} {:>8} {:>6} {:>6} {:>6} {:>6}",
        "lang",
        "engine",
        "reqs",
        "p50 ms",
        "p95 ms",
        "mean ms",
        "eval avg",
        "eval p50",
        "eval p95",
        "prompt avg",
        "gen avg",
        "shown",
        "useful",
        "t-thru",
        "failed"
    );
    let pct = |x: f64| if x.is_finite() { format!("{:.0}%", x * 100.0) } else { "-".into() };
    let num = |x: f64, d: usize| if x.is_finite() { format!("{x:.d$}") } else { "-".into() };
    for (name, lang) in GROUPS {
        let mut sums = Vec::new();
        for &e in engines {
            let s = summarize(&pick(samples, e, lang));
            if s.n == 0 {
                continue;
            }
            let _ = writeln!(
                out,
                "{:<7} {:<13} {:>4} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>10} {:>8} {:>6} {:>6} {:>6} {:>6}",
                name,
                e,
                s.n,
                num(s.p50_ms, 0),
                num(s.p95_ms, 0),
                num(s.mean_ms, 0),
                num(s.eval_mean, 1),
                num(s.eval_p50, 0),
                num(s.eval_p95, 0),
                num(s.prompt_mean, 0),
                num(s.gen_mean, 1),
                pct(s.shown),
                pct(s.useful),
                pct(s.typed_through),
                s.failed
            );
            sums.push((e, s));
        }
        if sums.is_empty() {
            continue;
        }
        if let [(LOCODE, l), (PEER, p)] = sums.as_slice() {
            let r = |x: Option<f64>| x.map(|v| format!("{v:.2}x")).unwrap_or("-".into());
            let _ = writeln!(
                out,
                "{:<7} {:<13} {:>4} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8}",
                name,
                "ratio l/s",
                "",
                r(ratio(l.p50_ms, p.p50_ms)),
                r(ratio(l.p95_ms, p.p95_ms)),
                r(ratio(l.mean_ms, p.mean_ms)),
                r(ratio(l.eval_mean, p.eval_mean)),
                r(ratio(l.eval_p50, p.eval_p50)),
                r(ratio(l.eval_p95, p.eval_p95)),
            );
        }
        let _ = writeln!(out);
    }
    out
}

pub fn summary_value(samples: &[Sample], engines: &[&'static str]) -> Value {
    let mut groups = serde_json::Map::new();
    for (name, lang) in GROUPS {
        let mut g = serde_json::Map::new();
        let mut sums = Vec::new();
        for &e in engines {
            let s = summarize(&pick(samples, e, lang));
            if s.n > 0 {
                g.insert(e.to_string(), summary_json(&s));
                sums.push((e, s));
            }
        }
        if let [(LOCODE, l), (PEER, p)] = sums.as_slice() {
            g.insert(
                "ratio_locode_over_llama_server".into(),
                json!({
                    "latency_p50": ratio(l.p50_ms, p.p50_ms),
                    "latency_p95": ratio(l.p95_ms, p.p95_ms),
                    "latency_mean": ratio(l.mean_ms, p.mean_ms),
                    "evaluated_tokens_mean": ratio(l.eval_mean, p.eval_mean),
                }),
            );
        }
        groups.insert(name.into(), Value::Object(g));
    }
    Value::Object(groups)
}

pub fn sample_json(s: &Sample) -> Value {
    json!({
        "engine": s.engine,
        "lang": s.lang.name(),
        "file": s.file,
        "function": s.function,
        "step": s.step,
        "line": s.line,
        "col": s.col,
        "latency_ms": (s.latency_ms * 100.0).round() / 100.0,
        "prompt_tokens": s.prompt_tokens,
        "evaluated_tokens": s.evaluated,
        "generated_tokens": s.generated,
        "prompt_ms": s.prompt_ms,
        "generate_ms": s.generate_ms,
        "suggestion": s.suggestion,
        "expected": s.expected,
        "shown": s.shown,
        "useful": s.useful,
        "typed_through": s.typed_through,
        "error": s.error,
    })
}

/// A sample read back from `replay.json` (for `--report`).
pub fn sample_from_json(v: &Value) -> Option<Sample> {
    let engine = match v["engine"].as_str()? {
        LOCODE => LOCODE,
        PEER => PEER,
        _ => return None,
    };
    let lang = match v["lang"].as_str()? {
        "python" => Lang::Python,
        "rust" => Lang::Rust,
        _ => return None,
    };
    let st = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    Some(Sample {
        engine,
        lang,
        file: st("file"),
        function: st("function"),
        step: n("step") as usize,
        line: n("line") as usize,
        col: n("col") as usize,
        latency_ms: v["latency_ms"].as_f64()?,
        prompt_tokens: v["prompt_tokens"].as_u64(),
        evaluated: n("evaluated_tokens"),
        generated: n("generated_tokens"),
        prompt_ms: v["prompt_ms"].as_f64(),
        generate_ms: v["generate_ms"].as_f64(),
        suggestion: st("suggestion"),
        expected: st("expected"),
        useful: v["useful"].as_bool().unwrap_or(false),
        shown: v["shown"].as_bool().unwrap_or(false),
        typed_through: v["typed_through"].as_bool().unwrap_or(false),
        error: v["error"].as_str().map(str::to_string),
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Empirical CDFs of the request latencies of each engine, log-scaled time
/// axis, as a self-contained SVG.
pub fn latency_svg(samples: &[Sample], engines: &[&'static str], title: &str) -> String {
    let (w, h) = (760.0_f64, 440.0_f64);
    let (ml, mr, mt, mb) = (70.0, 200.0, 40.0, 50.0);
    let (pw, ph) = (w - ml - mr, h - mt - mb);
    let all: Vec<f64> = samples.iter().map(|s| s.latency_ms.max(1.0)).collect();
    let lo = all.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = all.iter().cloned().fold(0.0, f64::max);
    let (lo, hi) = if all.is_empty() { (1.0, 10.0) } else { (lo, hi) };
    let x0 = lo.log10().floor();
    let x1 = hi.log10().ceil().max(x0 + 1.0);
    let sx = |ms: f64| ml + (ms.max(1.0).log10() - x0) / (x1 - x0) * pw;
    let sy = |q: f64| mt + (1.0 - q) * ph;
    let colors = ["#1f77b4", "#d62728", "#2ca02c"];
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(o, r#"<text x="{}" y="22" font-size="14" font-weight="bold">{}</text>"#, ml, escape(title));
    // Grid and ticks: 1, 2, 5 per decade.
    let mut d = x0 as i32;
    while (d as f64) <= x1 {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(d);
            let lv = v.log10();
            if lv < x0 - 1e-9 || lv > x1 + 1e-9 {
                continue;
            }
            let x = sx(v);
            let major = m == 1.0;
            let _ = writeln!(
                o,
                r##"<line x1="{x:.1}" y1="{mt}" x2="{x:.1}" y2="{:.1}" stroke="{}" stroke-width="1"/>"##,
                mt + ph,
                if major { "#cccccc" } else { "#eeeeee" }
            );
            // Label 2 and 5 only when there is room (three decades or fewer).
            if major || x1 - x0 <= 3.0 {
                let label = if v >= 1000.0 { format!("{}s", v / 1000.0) } else { format!("{v}ms") };
                let _ = writeln!(o, r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#, mt + ph + 16.0);
            }
        }
        d += 1;
    }
    for q in [0.0, 0.25, 0.5, 0.75, 0.95, 1.0] {
        let y = sy(q);
        let _ = writeln!(
            o,
            r##"<line x1="{ml}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#dddddd" stroke-dasharray="{}"/>"##,
            ml + pw,
            if q == 0.95 { "4 3" } else { "none" }
        );
        let _ = writeln!(o, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{:.0}%</text>"#, ml - 6.0, y + 4.0, q * 100.0);
    }
    let _ = writeln!(o, r#"<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#);
    let _ =
        writeln!(o, r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">latency per request (log scale)</text>"#, ml + pw / 2.0, h - 10.0);
    let _ = writeln!(
        o,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">share of requests answered</text>"#,
        mt + ph / 2.0,
        mt + ph / 2.0
    );
    for (i, &e) in engines.iter().enumerate() {
        let mut lat: Vec<f64> = samples.iter().filter(|s| s.engine == e).map(|s| s.latency_ms).collect();
        if lat.is_empty() {
            continue;
        }
        lat.sort_by(|a, b| a.total_cmp(b));
        let n = lat.len() as f64;
        let c = colors[i % colors.len()];
        let mut path = format!("M{:.1},{:.1}", sx(lat[0]), sy(0.0));
        for (k, v) in lat.iter().enumerate() {
            let x = sx(*v);
            let _ = write!(path, " L{x:.1},{:.1} L{x:.1},{:.1}", sy(k as f64 / n), sy((k + 1) as f64 / n));
        }
        let _ = writeln!(o, r#"<path d="{path}" fill="none" stroke="{c}" stroke-width="2"/>"#);
        let p50 = percentile(&lat, 50.0);
        let p95 = percentile(&lat, 95.0);
        for (p, q) in [(p50, 0.5), (p95, 0.95)] {
            let _ = writeln!(o, r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{c}"/>"#, sx(p), sy(q));
        }
        let ly = mt + 10.0 + i as f64 * 56.0;
        let lx = ml + pw + 16.0;
        let _ = writeln!(o, r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{c}" stroke-width="3"/>"#, lx + 24.0);
        let _ = writeln!(o, r#"<text x="{}" y="{}" font-weight="bold">{}</text>"#, lx + 30.0, ly + 4.0, escape(e));
        let _ = writeln!(o, r#"<text x="{}" y="{}">n={} p50={:.0} ms</text>"#, lx + 30.0, ly + 20.0, lat.len(), p50);
        let _ = writeln!(o, r#"<text x="{}" y="{}">p95={:.0} ms</text>"#, lx + 30.0, ly + 36.0, p95);
    }
    let _ = writeln!(o, "</svg>");
    o
}
