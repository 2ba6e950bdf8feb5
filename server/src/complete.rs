//! The completion pipeline shared by the LSP server and `locode complete`:
//! snapshot -> context -> prompt -> engine -> post-processing.

use crate::config::CompletionConfig;
use crate::context::{self, CompletionContext, Mode};
use crate::documents::{CrossFile, Snapshot};
use crate::engine::{CancelToken, CompletionJob, Early, Engine, EngineError, FirstWindow, Generation, SmallPrompt, StopRule};
use crate::index::WorkspaceIndex;
use crate::postprocess::Trimmer;
use crate::prompt::{Family, FimParts, Piece};
use std::sync::Arc;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Suggestion {
    /// Text to insert at the cursor (empty: nothing worth showing).
    pub text: String,
    /// Version of the document it was computed for.
    pub version: i32,
    pub stats: Generation,
}

/// Where a completion is asked for.
pub struct Spot<'a> {
    pub snap: &'a Snapshot,
    pub cursor: usize,
    /// Prompt anchor (char index <= cursor), see `context::choose_anchor`.
    pub anchor: usize,
}

/// The context and prompt for a spot. Pure.
pub fn prepare(family: &Family, spot: &Spot<'_>, cfg: &CompletionConfig) -> (CompletionContext, Vec<Piece>) {
    let ctx = context::build(spot.snap, spot.cursor, spot.anchor, cfg);
    // Other files' definitions, as picked for this window (kept with it).
    let extra = match spot.snap.cross_file.as_deref() {
        Some(cf) if cf.window == ctx.window_start => family.render_repo(&cf.repo, &cf.path, &cf.chunks),
        _ => Vec::new(),
    };
    let pieces = family.render_fim(&FimParts { extra: &extra, prefix: &ctx.prefix, suffix: &ctx.suffix, middle: &ctx.middle });
    (ctx, pieces)
}

pub async fn suggest(
    engine: &Engine,
    family: &Family,
    slot: &str,
    spot: &Spot<'_>,
    cfg: &CompletionConfig,
    cancel: CancelToken,
) -> Result<Suggestion, EngineError> {
    let (job, trimmer, again) = job_for(family, slot, spot, cfg, cancel, None);
    answer(engine, job, again, &trimmer, spot.snap.version).await
}

/// Called with the text generated past the cursor so far (the left-out
/// partial word already covered), after each token of a first try.
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

/// How a caller steers a suggestion in progress (`suggest_early`).
#[derive(Default)]
pub struct Flow {
    /// Stops the generation (the answer comes back cancelled).
    pub cancel: CancelToken,
    /// Stops the rest of an early answer.
    pub rest_cancel: CancelToken,
    pub progress: Option<Progress>,
}

/// The suggestion from `job`; where code belongs but it came to nothing
/// (the model wrote a line that does not fit, only blanks or comments, or nothing), or
/// where the code below reads names nothing binds and the answer names none
/// of them, a second try with `again`, which may neither start with the
/// first try's first word nor end before it has written code. A second try
/// after a non-empty answer is taken only if it names one of them. Its
/// prompt is cached, so it costs only its own tokens.
async fn answer(
    engine: &Engine,
    job: CompletionJob,
    again: Option<Retry>,
    trimmer: &Trimmer,
    version: i32,
) -> Result<Suggestion, EngineError> {
    let first = finish(trimmer, engine.complete(job).await?, version);
    let unfit = |text: &str, needed: &[String]| {
        text.is_empty() || trimmer.only_comments(text) || (!needed.is_empty() && !needed.iter().any(|n| crate::syntax::mentions(text, n)))
    };
    let Some(Retry { mut job, needed }) =
        again.filter(|r| unfit(&first.text, &r.needed) && !first.stats.cancelled && !first.stats.yielded && !r.job.cancel.is_cancelled())
    else {
        return Ok(first);
    };
    job.avoid = Some(first.stats.first_word.clone());
    job.avoid_breaks = trimmer.open_line();
    if let Some((lead, word)) = trimmer.loop_retry(&first.stats.text) {
        job.forced_prefix = lead;
        job.avoid = Some(word);
    }
    let second = finish(trimmer, engine.complete(job).await?, version);
    tracing::debug!(first = ?first.stats.text, second = ?second.stats.text, "both tries, as generated");
    let keep_first = !first.text.is_empty() && (second.stats.cancelled || unfit(&second.text, &needed));
    let (a, mut b) = if keep_first { (second, first) } else { (first, second) };
    // What the suggestion cost, both tries together.
    b.stats.evaluated_tokens += a.stats.evaluated_tokens;
    b.stats.generated_tokens += a.stats.generated_tokens;
    b.stats.prompt_ms += a.stats.prompt_ms;
    b.stats.generate_ms += a.stats.generate_ms;
    tracing::debug!(needed = ?needed, kept_first = keep_first, text = %b.text, "second try");
    Ok(b)
}

/// The rest of an early answer: resolves to the whole suggestion (or as
/// much of it as was generated before a request needed the engine).
pub type Rest = tokio::task::JoinHandle<Result<Suggestion, EngineError>>;

/// Like `suggest`, but an answer still being generated after
/// `cfg.early_answer_ms` is returned as soon as it has a complete line
/// (`Trimmer::early`), with the rest of the generation going on in the
/// background: `Rest` resolves to the whole suggestion, which, with greedy
/// decoding, is the one `suggest` gives. The background part yields to any
/// foreground request and stops when `rest_cancel` is cancelled.
pub async fn suggest_early(
    engine: &Engine,
    family: &Family,
    slot: &str,
    spot: &Spot<'_>,
    cfg: &CompletionConfig,
    flow: Flow,
) -> Result<(Suggestion, Option<Rest>), EngineError> {
    let Flow { cancel, rest_cancel, progress } = flow;
    let (mut job, trimmer, again) = job_for(family, slot, spot, cfg, cancel, progress);
    if cfg.early_answer_ms == 0 {
        return Ok((answer(engine, job, again, &trimmer, spot.snap.version).await?, None));
    }
    let (tx, early_rx) = tokio::sync::oneshot::channel();
    let at = std::time::Instant::now() + std::time::Duration::from_millis(cfg.early_answer_ms);
    job.early = Some(Early { at, tx, cancel: rest_cancel });
    let version = spot.snap.version;
    let engine = engine.clone();
    let mut whole = tokio::spawn(async move { answer(&engine, job, again, &trimmer, version).await });
    tokio::select! {
        shown = early_rx => match shown {
            Ok((stats, text)) => Ok((Suggestion { text, version, stats }, Some(whole))),
            // The job ended without an early answer.
            Err(_) => (&mut whole).await.map_err(|_| EngineError::Gone)?.map(|s| (s, None)),
        },
        done = &mut whole => done.map_err(|_| EngineError::Gone)?.map(|s| (s, None)),
    }
}

/// The job for a spot, its trimmer, and the job of a second try where code
/// belongs: an open line (nothing but blanks on it), or after a block opener.
fn job_for(
    family: &Family,
    slot: &str,
    spot: &Spot<'_>,
    cfg: &CompletionConfig,
    cancel: CancelToken,
    progress: Option<Progress>,
) -> (CompletionJob, Trimmer, Option<Retry>) {
    let (ctx, prompt) = prepare(family, spot, cfg);
    if tracing::enabled!(tracing::Level::TRACE) {
        let shown: String = prompt
            .iter()
            .map(|p| match p {
                Piece::Special(t) | Piece::Text(t) => t.as_str(),
                Piece::Chat(_) => "<chat>",
            })
            .collect();
        tracing::trace!(mode = ?ctx.mode, prompt = %shown, "completion prompt");
    }
    let small = first_window(family, spot, cfg, &prompt);
    let trimmer = Trimmer::new(&ctx, cfg.max_lines);
    let code_belongs = ctx.language != crate::syntax::Language::PlainText
        && ctx.line_suffix.trim().is_empty()
        && (ctx.line_prefix.trim().is_empty() || matches!(ctx.mode, Mode::Block { .. }));
    let stop: Arc<dyn StopRule> = Arc::new(TrimStop(trimmer.clone()));
    let job = |prompt: Vec<Piece>, cancel: CancelToken| CompletionJob {
        slot: slot.to_string(),
        prompt,
        max_tokens: cfg.max_tokens,
        stop: Some(stop.clone()),
        cancel,
        on_token: None,
        background: false,
        forced_prefix: ctx.heal.clone(),
        no_deeper: ctx.settled_indent,
        early: None,
        avoid: None,
        avoid_breaks: false,
        first_window: small.clone().map(|prompt| FirstWindow { prompt, budget_ms: cfg.first_answer_ms }),
    };
    let again = code_belongs.then(|| Retry {
        job: job(prompt.clone(), cancel.clone()),
        needed: if trimmer.open_line() { needed_below(spot) } else { Vec::new() },
    });
    let mut first = job(prompt, cancel);
    if let Some(progress) = progress {
        let t = trimmer.clone();
        first.on_token = Some(Box::new(move |generated: &str| {
            if let Some(text) = t.past_cursor(generated) {
                progress(text);
            }
        }));
    }
    (first, trimmer, again)
}

/// A second try's job, and the names the code below needs (see `answer`).
struct Retry {
    job: CompletionJob,
    needed: Vec<String>,
}

/// The names that code in the lines below the cursor's (`NEEDED_LINES`, and
/// not past the end of the function around it) reads and nothing binds
/// (`syntax::unbound_in`): what a line written here may have to bind. None
/// outside a function.
fn needed_below(spot: &Spot<'_>) -> Vec<String> {
    let snap = spot.snap;
    let Some(tree) = snap.tree.as_ref() else { return Vec::new() };
    let rope = &snap.rope;
    let cursor = spot.cursor.min(rope.len_chars());
    let line = rope.char_to_line(cursor);
    let from = rope.line_to_byte((line + 1).min(rope.len_lines()));
    let to = rope.line_to_byte((line + 1 + NEEDED_LINES).min(rope.len_lines()));
    let src = rope.to_string();
    let scopes = crate::syntax::enclosing_scopes(snap.language, tree, &src, rope.char_to_byte(cursor));
    let Some(f) = scopes.iter().find(|s| matches!(s.kind.as_str(), "function" | "method" | "closure")) else {
        return Vec::new();
    };
    crate::syntax::unbound_in(snap.language, tree, &src, from..f.byte_range.end.min(to))
}

/// How far below an open line a name it may have to bind is looked for: a
/// name first read further down is more likely bound by code still to come.
const NEEDED_LINES: usize = 12;

/// Characters a prompt token stands for in code, about (Qwen's and
/// StarCoder's tokenizers give 3-4): low, so the window stays within budget.
const CHARS_PER_TOKEN: usize = 3;

/// The prompt of a smaller window for a spot (see `CompletionJob::first_window`),
/// of about as many tokens as the engine names (the first window's, or the second's):
/// the nearest lines, 3/4 before the cursor and 1/4 after it, the imports
/// and enclosing headers when they fit, no other files; None when it is
/// off. Built only if the engine asks for it (the whole prompt is not
/// cached), so a warm keystroke does no work for it; that build gives None
/// when it is not much smaller than the whole prompt.
fn first_window(family: &Family, spot: &Spot<'_>, cfg: &CompletionConfig, whole: &[Piece]) -> Option<SmallPrompt> {
    if cfg.first_answer_ms == 0 {
        return None;
    }
    let cfg = cfg.clone();
    let size = |pieces: &[Piece]| pieces.iter().map(|p| if let Piece::Text(t) = p { t.len() } else { 1 }).sum::<usize>();
    let whole_size = size(whole);
    let (family, snap, cursor, anchor) = (family.clone(), spot.snap.clone(), spot.cursor, spot.anchor);
    Some(Arc::new(move |tokens: usize| {
        let chars = tokens * CHARS_PER_TOKEN;
        let small = CompletionConfig { prefix_chars: chars * 3 / 4, suffix_chars: chars / 4, cross_file_chars: 0, ..cfg.clone() };
        let window = Some(context::stepped_window(anchor, &snap.rope, &small));
        let snap = |header: Option<(usize, Arc<str>)>| Snapshot { window, cross_file: None, header, ..snap.clone() };
        let mut ctx = context::build(&snap(None), cursor, anchor, &small);
        if ctx.prefix.len() + ctx.middle.len() > chars {
            // The header does not fit: the nearest lines alone.
            ctx = context::build(&snap(Some((ctx.window_start, Arc::from("")))), cursor, anchor, &small);
        }
        let pieces = family.render_fim(&FimParts { extra: &[], prefix: &ctx.prefix, suffix: &ctx.suffix, middle: &ctx.middle });
        (size(&pieces) * 3 < whole_size * 2).then_some(pieces)
    }))
}

/// The engine's stop rule for a completion: post-processing's.
struct TrimStop(Trimmer);

impl StopRule for TrimStop {
    fn is_done(&self, generated: &str) -> bool {
        self.0.is_done(generated)
    }
    fn early(&self, generated: &str) -> Option<String> {
        self.0.early(generated)
    }
}

fn finish(trimmer: &Trimmer, stats: Generation, version: i32) -> Suggestion {
    let text = if stats.cancelled { String::new() } else { trimmer.finish_with(&stats.text, stats.stopped) };
    Suggestion { text, version, stats }
}

/// Pre-fills the slot's KV cache with the prompt for a spot, in the
/// background: it yields to any foreground request. When the whole prompt
/// is far from cached, a second window (`CompletionJob::first_window`)
/// is filled first. Returns whether it ran to the end.
pub async fn warm(engine: &Engine, family: &Family, slot: &str, spot: &Spot<'_>, cfg: &CompletionConfig) -> bool {
    matches!(warm_or_yield(engine, family, slot, spot, cfg).await, Ok(true))
}

/// `warm`, telling a build that yielded to a request (`Ok(false)`: what it
/// filled stays in the slot, so going on later costs only the rest) from
/// one that failed.
pub async fn warm_or_yield(
    engine: &Engine,
    family: &Family,
    slot: &str,
    spot: &Spot<'_>,
    cfg: &CompletionConfig,
) -> Result<bool, crate::engine::EngineError> {
    let (_, prompt) = prepare(family, spot, cfg);
    let first_window = first_window(family, spot, cfg, &prompt).map(|prompt| FirstWindow { prompt, budget_ms: cfg.first_answer_ms });
    let job = CompletionJob { background: true, first_window, ..CompletionJob::new(slot, prompt, 0) };
    engine.complete(job).await.map(|g| !g.cancelled)
}

/// Lines above the cursor (and below it) whose names are looked up in the
/// workspace index.
const NAMES_ABOVE: usize = 40;
const NAMES_BELOW: usize = 10;

/// Definitions from other workspace files for a prompt whose window starts
/// at `window`: those of the names used around the cursor, then of the
/// names the file imports, within `budget` chars, picked on evidence only
/// (`WorkspaceIndex::context_for_file`): never a name the document binds
/// anywhere or a builtin, an imported name only from the module it comes
/// from, others only from files whose module the document imports (or
/// sibling modules where the language has them). `path` is the document's
/// file. Runs once per window: the whole-file bindings query is paid there.
pub fn cross_file(
    index: &WorkspaceIndex,
    path: &std::path::Path,
    snap: &Snapshot,
    cursor: usize,
    window: usize,
    budget: usize,
) -> CrossFile {
    let mut cf = CrossFile {
        window,
        repo: index.root_of(path).and_then(|r| r.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        path: index.rel_path(path).to_string_lossy().into_owned(),
        chunks: Vec::new(),
    };
    let Some(tree) = snap.tree.as_ref() else { return cf };
    if budget == 0 {
        return cf;
    }
    let rope = &snap.rope;
    let cursor = cursor.min(rope.len_chars());
    let line = rope.char_to_line(cursor);
    let from = rope.line_to_byte(line.saturating_sub(NAMES_ABOVE));
    let to = rope.line_to_byte((line + NAMES_BELOW + 1).min(rope.len_lines()));
    let src = rope.to_string();
    let names = crate::syntax::identifiers_in(snap.language, tree, &src, from..to);
    let imports = crate::syntax::imports(snap.language, tree, &src);
    let bound = crate::syntax::bindings(snap.language, tree, &src);
    let file = crate::index::CurrentFile { path, language: snap.language, names: &names, imports: &imports, bound: &bound };
    cf.chunks = index.context_for_file(&file, budget).into_iter().map(|c| (c.path.to_string_lossy().into_owned(), c.text)).collect();
    cf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::{Change, Document, Encoding, Pos};
    use crate::index::IndexLimits;
    use crate::syntax::Language;

    /// The names the code below an open line needs: `$0` on the open line,
    /// the names expected beside it.
    #[test]
    fn names_the_code_below_needs_and_nothing_binds() {
        let cases: &[(Language, &str, &[&str])] = &[
            // The masked line bound `s`; `max_sum`, the loop's `num` and the
            // package's names are bound or imported.
            (
                Language::Go,
                "package main\n\nimport \"math\"\n\nfunc Min(nums []int) int {\n    max_sum := 0\n    $0\n    for _, num := range nums {\n        s += -num\n        if s < 0 {\n            s = 0\n        }\n        max_sum = int(math.Max(float64(s), float64(max_sum)))\n    }\n    return max_sum\n}\n",
                &["s"],
            ),
            (Language::Go, "package main\n\nfunc F(xs []int) int {\n    total := 0\n    $0\n    return total\n}\n", &[]),
            (
                Language::Cpp,
                "#include<vector>\nusing namespace std;\nint f(vector<int> l){\n    $0\n        if (l[i]>0) out+=l[i];\n    return out;\n}\n",
                &["i", "out"],
            ),
            (
                Language::Java,
                "import java.util.*;\n\nclass Solution {\n    public int f(List<Integer> l) {\n        $0\n        for (int x : l) {\n            sum += Math.abs(x);\n        }\n        return sum;\n    }\n}\n",
                &["sum"],
            ),
            (
                Language::JavaScript,
                "const f = (arr) => {\n  $0\n  for (let i = 0; i < arr.length; i++) {\n    p.push(arr[i])\n  }\n  return p.sort((a, b) => a - b)\n}\n",
                &["p"],
            ),
            (Language::TypeScript, "function f(xs: number[]): number {\n  $0\n  return xs.length + count;\n}\n", &["count"]),
            (Language::Rust, "fn f(xs: &[u8]) -> usize {\n    $0\n    for x in xs {\n        n += *x as usize;\n    }\n    n\n}\n", &["n"]),
            // (In Python `total += x` binds `total`: only names read count.)
            (Language::Python, "def f(xs):\n    $0\n    for x in xs:\n        if x > limit:\n            return [y for y in xs if y > limit]\n", &["limit"]),
            // A keyword argument's name is not a variable.
            (Language::Python, "def f(xs):\n    $0\n    return sorted(xs, reverse=flip)\n", &["flip"]),
            // Outside a function: nothing is asked for.
            (Language::Python, "$0\nprint(total)\n", &[]),
            // A keyword the parser's recovery leaves as a name (the `else`
            // of an `if` yet to be written) is no name to bind.
            (
                Language::Java,
                "class A {\n    int f(int n) {\n        int s = 0;\n        $0\n            s += n;\n        } else {\n            s -= n;\n        }\n        return s;\n    }\n}\n",
                &[],
            ),
        ];
        for (lang, fixture, want) in cases {
            let (text, byte) = crate::fixture::cursor(fixture);
            let mut doc = Document::new(&text, 1, *lang);
            let snap = doc.snapshot();
            let cursor = doc.rope.byte_to_char(byte);
            let got = needed_below(&Spot { snap: &snap, cursor, anchor: 0 });
            assert_eq!(got, *want, "{lang:?}: {fixture}");
        }
    }

    #[test]
    fn definitions_from_other_files_lead_the_prompt_and_stay_while_typing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("shop");
        std::fs::create_dir_all(root.join("billing")).unwrap();
        std::fs::write(
            root.join("billing/tax.py"),
            "def compute_tax(amount, rate):\n    return round(amount * rate, 2)\n\n\ndef unrelated():\n    pass\n",
        )
        .unwrap();
        let main =
            "from billing.tax import compute_tax\n\n\ndef total(amount):\n    tax = compute_tax(amount, 0.2)\n    return amount + \n";
        std::fs::write(root.join("main.py"), main).unwrap();
        let index = WorkspaceIndex::new(vec![root.clone()], IndexLimits::default());
        index.build();

        let mut doc = Document::new(main, 1, Language::Python);
        let mut layout = context::Layout::default();
        let cfg = CompletionConfig::default();
        let line = 5;
        let cursor = doc.rope.line_to_char(line) + "    return amount + ".len();
        let anchor = context::plan(&mut doc, &mut layout, cursor, &cfg);
        let window = layout.window.unwrap();
        let cf = cross_file(&index, &root.join("main.py"), &doc.snapshot(), cursor, window, cfg.cross_file_chars);
        assert_eq!(cf.repo, "shop");
        assert_eq!(cf.path, "main.py");
        assert_eq!(cf.chunks.len(), 1, "{:?}", cf.chunks);
        assert_eq!(cf.chunks[0].0, "billing/tax.py");
        assert!(cf.chunks[0].1.contains("def compute_tax(amount, rate):"), "{:?}", cf.chunks);
        assert!(!cf.chunks[0].1.contains("unrelated"), "only the names used: {:?}", cf.chunks);
        layout.cross_file = Some(std::sync::Arc::new(cf));

        let family = crate::prompt::by_name("qwen2.5-coder").unwrap();
        let snap = layout.snapshot(&mut doc);
        let (_, pieces) = prepare(&family, &Spot { snap: &snap, cursor, anchor }, &cfg);
        let head: Vec<String> = pieces
            .iter()
            .take(7)
            .map(|p| match p {
                Piece::Special(t) => t.clone(),
                Piece::Text(t) => t.clone(),
                Piece::Chat(_) => String::new(),
            })
            .collect();
        assert_eq!(head[0], "<|repo_name|>");
        assert_eq!(head[1], "shop\n");
        assert_eq!(head[2], "<|file_sep|>");
        assert!(head[3].starts_with("billing/tax.py\ndef compute_tax(amount, rate):"), "{head:?}");
        assert_eq!(head[4], "<|file_sep|>");
        assert_eq!(head[5], "main.py\n");
        assert_eq!(head[6], "<|fim_prefix|>");

        // Typing on: same window, so the same text leads the prompt.
        let edits = doc.apply_versioned(
            2,
            vec![Change { range: Some((Pos::new(line as u32, 20), Pos::new(line as u32, 20))), text: "ta".into() }],
            Encoding::Utf16,
        );
        for e in edits {
            layout.edited(e.start);
        }
        let anchor2 = context::plan(&mut doc, &mut layout, cursor + 2, &cfg);
        assert_eq!(layout.window, Some(window));
        let snap2 = layout.snapshot(&mut doc);
        let (_, pieces2) = prepare(&family, &Spot { snap: &snap2, cursor: cursor + 2, anchor: anchor2 }, &cfg);
        assert_eq!(pieces2[..7], pieces[..7]);
    }

    #[test]
    fn typescript_definitions_from_an_imported_file_lead_the_prompt() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("shop");
        std::fs::create_dir_all(root.join("lib")).unwrap();
        let users = "export function findUser(id: number): string {\n  return String(id);\n}\n\nexport function unrelated() {}\n";
        std::fs::write(root.join("lib/users.ts"), users).unwrap();
        let main =
            "import { findUser } from './lib/users';\n\nfunction greet(id: number): string {\n  const name = findUser(id);\n  return \n}\n";
        std::fs::write(root.join("app.ts"), main).unwrap();
        let index = WorkspaceIndex::new(vec![root.clone()], IndexLimits::default());
        index.build();

        let mut doc = Document::new(main, 1, Language::TypeScript);
        let mut layout = context::Layout::default();
        let cfg = CompletionConfig::default();
        let cursor = doc.rope.line_to_char(4) + "  return ".len();
        let anchor = context::plan(&mut doc, &mut layout, cursor, &cfg);
        let window = layout.window.unwrap();
        let cf = cross_file(&index, &root.join("app.ts"), &doc.snapshot(), cursor, window, cfg.cross_file_chars);
        let chunks: Vec<(&str, &str)> = cf.chunks.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        assert_eq!(chunks, [("lib/users.ts", "function findUser(id: number): string {\n  return String(id);\n}")]);
        layout.cross_file = Some(std::sync::Arc::new(cf));

        let family = crate::prompt::by_name("qwen2.5-coder").unwrap();
        let snap = layout.snapshot(&mut doc);
        let (_, pieces) = prepare(&family, &Spot { snap: &snap, cursor, anchor }, &cfg);
        let text: Vec<&str> = pieces
            .iter()
            .take(6)
            .map(|p| match p {
                Piece::Special(t) | Piece::Text(t) => t.as_str(),
                Piece::Chat(_) => "",
            })
            .collect();
        assert_eq!(text[..3], ["<|repo_name|>", "shop\n", "<|file_sep|>"]);
        assert!(text[3].starts_with("lib/users.ts\nfunction findUser(id: number): string {"), "{text:?}");
        assert_eq!(text[4..], ["<|file_sep|>", "app.ts\n"]);
    }

    #[test]
    fn files_opened_earlier_but_unrelated_give_no_context() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tasks");
        std::fs::create_dir_all(&root).unwrap();
        // Other tasks' files, opened earlier in the session.
        std::fs::write(
            root.join("t1.py"),
            "import sys\ninput = sys.stdin.readline\n\n\ndef solve(n):\n    return n\n\n\ndef helper(xs):\n    return sorted(xs)\n",
        )
        .unwrap();
        std::fs::write(root.join("t2.py"), "def count(s):\n    return len(s)\n\n\ndef main():\n    print(count(input()))\n").unwrap();
        let index = WorkspaceIndex::new(vec![root.clone()], IndexLimits::default());
        index.build();
        for f in ["t1.py", "t2.py"] {
            index.update_file(&root.join(f), &std::fs::read_to_string(root.join(f)).unwrap());
        }

        // Defines `input` and `solve` itself, uses `helper` and `count`
        // without importing them: nothing from the other files.
        let text = "import sys\ninput = sys.stdin.readline\n\n\ndef solve(xs):\n    count = 0\n    for x in helper(xs):\n        count += x\n    return \n\n\nprint(solve(list(map(int, input().split()))))\n";
        let mut doc = Document::new(text, 1, Language::Python);
        let cfg = CompletionConfig::default();
        let cursor = doc.rope.line_to_char(8) + "    return ".len();
        let mut layout = context::Layout::default();
        context::plan(&mut doc, &mut layout, cursor, &cfg);
        let window = layout.window.unwrap();
        let cf = cross_file(&index, &root.join("t3.py"), &doc.snapshot(), cursor, window, cfg.cross_file_chars);
        assert_eq!(cf.chunks, Vec::<(String, String)>::new());
    }
}
