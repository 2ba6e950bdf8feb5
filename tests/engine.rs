//! The engine with the real default model: the anchored prompt is reused
//! exactly from the KV cache while typing. Needs the model (`make model`).

use locode::complete::{self, Spot};
use locode::config::{CompletionConfig, EngineConfig};
use locode::documents::{Change, Document, Encoding, Pos};
use locode::engine::{CancelToken, Engine, Generation};
use locode::session::Session;
use locode::syntax::Language;

fn source() -> String {
    let mut text = String::from("import math\n\n\n");
    for i in 0..40 {
        text.push_str(&format!(
            "def scale_{i}(values, factor):\n    \"\"\"Multiply every value by factor and add {i}.\"\"\"\n    return [v * factor + {i} for v in values]\n\n\n"
        ));
    }
    text.push_str("def distance(x1, y1, x2, y2):\n    \n\n\nprint(distance(0, 0, 3, 4))\n");
    text
}

/// The whole prompt at every request (no first window), and no KV states
/// on disk: these tests count what each request evaluates.
fn engine_config() -> EngineConfig {
    EngineConfig { kv_cache_mb: 0, ..Default::default() }
}

fn whole_prompt() -> CompletionConfig {
    CompletionConfig { first_answer_ms: 0, ..Default::default() }
}

async fn run(engine: &Engine, family: &locode::prompt::Family, slot: &str, doc: &mut Session, cursor: usize) -> (String, Generation) {
    run_with(engine, family, slot, doc, cursor, &whole_prompt()).await
}

async fn run_with(
    engine: &Engine,
    family: &locode::prompt::Family,
    slot: &str,
    doc: &mut Session,
    cursor: usize,
    cfg: &CompletionConfig,
) -> (String, Generation) {
    let cfg = cfg.clone();
    let (snap, anchor) = doc.plan(cursor, &cfg, None);
    let spot = Spot { snap: &snap, cursor, anchor };
    let s = complete::suggest(engine, family, slot, &spot, &cfg, CancelToken::new()).await.unwrap();
    (s.text, s.stats)
}

#[tokio::test(flavor = "multi_thread")]
async fn keystrokes_reuse_the_cache_exactly() {
    let engine = Engine::spawn();
    let (_, family) = engine.load(engine_config(), |_| {}).await.expect("model loads (run `make model`)");
    let text = source();
    let line = text.lines().position(|l| l.starts_with("def distance")).unwrap() as u32 + 1;
    let mut doc = Session::new(Document::new(&text, 1, Language::Python));
    let typed = "return math.sqrt((x2 - x1) ** 2 + ";
    let mut col = 4u32;
    let mut results = Vec::new();
    for (i, ch) in typed.chars().enumerate() {
        doc.apply_versioned(
            i as i32 + 2,
            vec![Change { range: Some((Pos::new(line, col), Pos::new(line, col))), text: ch.to_string() }],
            Encoding::Utf16,
        );
        col += 1;
        // A request after each word, as an editor sends them while typing.
        if ch == ' ' || ch == '(' || i + 1 == typed.len() {
            let cursor = doc.rope.line_to_char(line as usize) + col as usize;
            results.push(run(&engine, &family, "typing", &mut doc, cursor).await);
        }
    }
    let (first, later) = results.split_first().unwrap();
    assert_eq!(first.1.evaluated_tokens, first.1.prompt_tokens, "the first request is cold");
    assert!(first.1.prompt_tokens > 600, "a long prompt: {}", first.1.prompt_tokens);
    for (text, g) in later {
        assert!(g.evaluated_tokens <= 8, "a keystroke evaluated {} of {} tokens ({text:?})", g.evaluated_tokens, g.prompt_tokens);
    }
    let (warm_text, warm) = results.last().unwrap().clone();
    assert!(warm_text.contains("y2") || warm_text.contains("y1"), "{warm_text:?}");

    // The same prompt evaluated cold in another slot gives the same suggestion.
    let cursor = doc.rope.line_to_char(line as usize) + col as usize;
    let (cold_text, cold) = run(&engine, &family, "cold", &mut doc, cursor).await;
    assert_eq!(cold.prompt_tokens, warm.prompt_tokens);
    assert_eq!(cold.evaluated_tokens, cold.prompt_tokens);
    assert_eq!(cold_text, warm_text, "reuse must be exact");
    eprintln!(
        "first: {} prompt tokens, {:.0} ms; typing: max {} evaluated, mean {:.0} ms",
        first.1.prompt_tokens,
        first.1.prompt_ms + first.1.generate_ms,
        later.iter().map(|r| r.1.evaluated_tokens).max().unwrap(),
        later.iter().map(|r| r.1.prompt_ms + r.1.generate_ms).sum::<f64>() / later.len() as f64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn speculative_decoding_keeps_greedy_output_identical() {
    let spec = Engine::spawn();
    let (_, family) = spec.load(EngineConfig { speculative: true, ..engine_config() }, |_| {}).await.expect("model loads");
    let plain = Engine::spawn();
    plain.load(EngineConfig { speculative: false, ..Default::default() }, |_| {}).await.unwrap();

    // Repetitive code, where earlier lines predict the next ones.
    let mut text = String::new();
    for i in 0..8 {
        text.push_str(&format!(
            "def scale_{i}(values, factor):\n    \"\"\"Multiply every value by factor and add {i}.\"\"\"\n    return [v * factor + {i} for v in values]\n\n\n"
        ));
    }
    text.push_str("def scale_8(values, factor):\n    \n");
    let body = text.lines().count() - 1;
    let mut accepted = 0;
    for (line, col) in [(body, 4), (body, 0)] {
        let mut a = Session::new(Document::new(&text, 1, Language::Python));
        let mut b = Session::new(Document::new(&text, 1, Language::Python));
        let cursor = a.rope.line_to_char(line) + col;
        let (ta, ga) = run(&spec, &family, "spec", &mut a, cursor).await;
        let (tb, gb) = run(&plain, &family, "plain", &mut b, cursor).await;
        assert_eq!(ta, tb, "speculation changed the output at {line}:{col}");
        assert!(!ta.is_empty());
        assert_eq!(gb.drafted_tokens, 0);
        accepted += ga.accepted_tokens;
        eprintln!(
            "{line}:{col}: {} tokens, {} drafted, {} accepted, {:.0} ms with / {:.0} ms without",
            ga.generated_tokens, ga.drafted_tokens, ga.accepted_tokens, ga.generate_ms, gb.generate_ms
        );
    }
    assert!(accepted > 0, "repetitive code should accept some drafted tokens");
}

/// Token healing: the prompt leaves out the half-typed word, and decoding is
/// held to tokens that agree with it until it is covered, so the suggestion
/// continues the word instead of starting a new one, even a word the model
/// would never pick on its own.
#[tokio::test(flavor = "multi_thread")]
async fn healing_holds_the_generation_to_the_typed_word() {
    use locode::engine::CompletionJob;
    use locode::prompt::FimParts;
    let engine = Engine::spawn();
    let (_, family) = engine.load(engine_config(), |_| {}).await.expect("model loads");
    let prefix = "import requests\n\n\ndef fetch(url):\n    response = requests.get(url)\n    print(response.";
    let suffix = ")\n    return response\n";
    let job = |forced: &str| CompletionJob {
        slot: "heal".into(),
        prompt: family.render_fim(&FimParts { extra: &[], prefix, suffix, middle: "" }),
        max_tokens: 12,
        stop: None,
        cancel: CancelToken::new(),
        on_token: None,
        background: false,
        forced_prefix: forced.into(),
        no_deeper: false,
        early: None,
        avoid: None,
        avoid_breaks: false,
        first_window: None,
    };
    let free = engine.complete(job("")).await.unwrap().text;
    for word in ["stat", "headers", "zqx_", "elap"] {
        let g = engine.complete(job(word)).await.unwrap();
        eprintln!("after {word:?}: {:?} (free: {free:?})", g.text);
        assert!(g.text.starts_with(word), "{word:?} -> {:?}", g.text);
        assert!(g.text.len() > word.len(), "nothing after {word:?}: {:?}", g.text);
    }
    // No forced text: the model's own choice, unconstrained.
    assert!(!free.starts_with("zqx_"));
}

/// `no_deeper`: the first line starts at the cursor's indentation, which
/// ends the prompt. Right below a loop header, the model on its own writes
/// the loop's body, deeper than the cursor. (With the blanks forced instead,
/// `adds_blank` refuses the same pieces: unit test in engine::llama.)
#[tokio::test(flavor = "multi_thread")]
async fn no_deeper_keeps_the_first_line_at_the_cursor() {
    use locode::engine::CompletionJob;
    use locode::prompt::FimParts;
    let engine = Engine::spawn();
    let (_, family) = engine.load(engine_config(), |_| {}).await.expect("model loads");
    let prefix = "def total(xs):\n    t = 0\n    for x in xs:\n    ";
    let suffix = "\n    return t\n";
    let job = |no_deeper: bool| {
        let mut j = CompletionJob::new("deeper", family.render_fim(&FimParts { extra: &[], prefix, suffix, middle: "" }), 12);
        j.no_deeper = no_deeper;
        j
    };
    let free = engine.complete(job(false)).await.unwrap().text;
    let held = engine.complete(job(true)).await.unwrap().text;
    eprintln!("held {held:?}, free {free:?}");
    // The model goes deeper on its own here; held, it does not.
    assert!(free.starts_with([' ', '\t']), "free: {free:?}");
    assert!(!held.starts_with(char::is_whitespace) && !held.is_empty(), "held: {held:?}");
}

/// A second try on an open line (`avoid_breaks`): after the loops of
/// HumanEval-X Java/20, where the first try gave nothing, the model starts
/// its second try with a line break (a comment on the line after); held to
/// the cursor's line, it writes code there.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_try_on_an_open_line_starts_on_it() {
    use locode::engine::CompletionJob;
    use locode::prompt::FimParts;
    let engine = Engine::spawn();
    let (_, family) = engine.load(engine_config(), |_| {}).await.expect("model loads");
    let prefix = "import java.util.*;\nimport java.lang.*;\n\nclass Solution {\n    /**\n    From a supplied list of numbers (of length at least two) select and return two that are the closest to each\n    other and return them in order (smaller number, larger number).\n    >>> findClosestElements(Arrays.asList(1.0, 2.0, 3.0, 4.0, 5.0, 2.2))\n    [2.0, 2.2]\n    >>> findClosestElements(Arrays.asList(1.0, 2.0, 3.0, 4.0, 5.0, 2.0))\n    [2.0, 2.0]\n     */\n    public List<Double> findClosestElements(List<Double> numbers) {\n        List<Double> closest_pair = new ArrayList<>();\n        closest_pair.add(numbers.get(0));\n        closest_pair.add(numbers.get(1));\n        double distance = Math.abs(numbers.get(1) - numbers.get(0));\n        for (int i = 0; i < numbers.size(); i++) {\n            for (int j = i + 1; j < numbers.size(); j++) {\n                if (Math.abs(numbers.get(i) - numbers.get(j)) < distance) {\n                    closest_pair.clear();\n                    closest_pair.add(numbers.get(i));\n                    closest_pair.add(numbers.get(j));\n                    distance = Math.abs(numbers.get(i) - numbers.get(j));\n                }\n            }\n        }\n        ";
    let suffix = "\n        return closest_pair;\n    }\n}";
    let job = |avoid: Option<&str>, breaks: bool| {
        let mut j = CompletionJob::new("again", family.render_fim(&FimParts { extra: &[], prefix, suffix, middle: "" }), 12);
        j.avoid = avoid.map(String::from);
        j.avoid_breaks = breaks;
        j
    };
    let first = engine.complete(job(None, false)).await.unwrap();
    let word = first.first_word.as_str();
    let free = engine.complete(job(Some(word), false)).await.unwrap().text;
    let held = engine.complete(job(Some(word), true)).await.unwrap().text;
    eprintln!("first {:?} ({word:?}), second free {free:?}, held {held:?}", first.text);
    assert!(free.trim_start_matches(' ').starts_with('\n'), "free: {free:?}");
    let line = held.split('\n').next().unwrap_or("");
    assert!(!line.trim().is_empty() && !line.trim_start().starts_with(word.trim()), "held: {held:?}");
}

/// A line the code below needs: on HumanEval-X Go/114's open line, the code
/// below reads `s`, which nothing binds. The model's first answer binds
/// another name (`sum := 0`); the second try, taken because it names `s`,
/// binds it.
#[tokio::test(flavor = "multi_thread")]
async fn an_open_line_binds_the_name_the_code_below_reads() {
    let engine = Engine::spawn();
    let (_, family) = engine.load(engine_config(), |_| {}).await.expect("model loads");
    let text = "package main\n\nimport (\n    \"math\"\n)\n\n// Given an array of integers nums, find the minimum sum of any non-empty sub-array\n// of nums.\n// Example\n// Minsubarraysum([2, 3, 4, 1, 2, 4]) == 1\n// Minsubarraysum([-1, -2, -3]) == -6\nfunc Minsubarraysum(nums []int) int {\n    max_sum := 0\n    \n    for _, num := range nums {\n        s += -num\n        if s < 0 {\n            s = 0\n        }\n        if s > max_sum {\n            max_sum = s\n        }\n    }\n    if max_sum == 0 {\n        max_sum = math.MinInt\n        for _, i := range nums {\n            if -i > max_sum {\n                max_sum = -i\n            }\n        }\n    }\n    return -max_sum\n}\n\n";
    let mut doc = Session::new(Document::new(text, 1, Language::Go));
    let line = text.lines().position(|l| l.trim().is_empty() && l.len() == 4).expect("the open line");
    let cursor = doc.rope.line_to_char(line) + 4;
    let (answer, _) = run(&engine, &family, "go", &mut doc, cursor).await;
    assert_eq!(answer.trim(), "s := 0");
}

/// One KV slot per document: switching between two files keeps both caches;
/// a third file takes the least recently used slot.
#[tokio::test(flavor = "multi_thread")]
async fn documents_keep_their_own_cache_with_lru_eviction() {
    let engine = Engine::spawn();
    let (_, family) = engine.load(EngineConfig { slots: 2, ..engine_config() }, |_| {}).await.expect("model loads");
    let file = |name: &str| {
        let mut text = String::new();
        for i in 0..12 {
            text.push_str(&format!("def {name}_{i}(values):\n    return [v + {i} for v in values]\n\n\n"));
        }
        text.push_str(&format!("def {name}_total(values):\n    return sum(\n"));
        let mut doc = Session::new(Document::new(&text, 1, Language::Python));
        let cursor = doc.rope.line_to_char(doc.rope.len_lines() - 2) + "    return sum(".len();
        doc.layout.anchor = None;
        (doc, cursor)
    };
    let (mut a, ca) = file("alpha");
    let (mut b, cb) = file("beta");
    let (mut c, cc) = file("gamma");
    let evaluated = |g: &Generation| (g.evaluated_tokens, g.prompt_tokens);
    let a1 = run(&engine, &family, "a", &mut a, ca).await.1;
    let b1 = run(&engine, &family, "b", &mut b, cb).await.1;
    assert_eq!(a1.evaluated_tokens, a1.prompt_tokens);
    assert_eq!(b1.evaluated_tokens, b1.prompt_tokens);
    let a2 = run(&engine, &family, "a", &mut a, ca).await.1;
    let b2 = run(&engine, &family, "b", &mut b, cb).await.1;
    assert!(a2.evaluated_tokens <= 1 && b2.evaluated_tokens <= 1, "switching lost a cache: {:?} {:?}", evaluated(&a2), evaluated(&b2));
    // A third document evicts the least recently used one (a).
    let a3 = run(&engine, &family, "a", &mut a, ca).await.1; // a is now the most recent
    let c1 = run(&engine, &family, "c", &mut c, cc).await.1;
    assert_eq!(c1.evaluated_tokens, c1.prompt_tokens);
    let a4 = run(&engine, &family, "a", &mut a, ca).await.1;
    let b3 = run(&engine, &family, "b", &mut b, cb).await.1;
    assert!(a3.evaluated_tokens <= 1 && a4.evaluated_tokens <= 1, "a was recent and kept: {:?}", evaluated(&a4));
    assert_eq!(b3.evaluated_tokens, b3.prompt_tokens, "b was the least recently used and evicted");
}

/// An early answer: shown once its first line is complete, the rest
/// generated in the background. The whole suggestion is the one a request
/// that waits gives (greedy), and the background part yields to the next
/// request.
#[tokio::test(flavor = "multi_thread")]
async fn an_early_answer_is_the_start_of_the_whole_one() {
    let engine = Engine::spawn();
    let (_, family) = engine.load(engine_config(), |_| {}).await.expect("model loads");
    let text = source();
    let line = text.lines().position(|l| l.starts_with("def distance")).unwrap() + 1;
    let mut doc = Session::new(Document::new(&text, 1, Language::Python));
    let cursor = doc.rope.line_to_char(line) + 4;
    let cfg = CompletionConfig { early_answer_ms: 1, ..whole_prompt() };
    let (snap, anchor) = doc.plan(cursor, &cfg, None);
    let spot = Spot { snap: &snap, cursor, anchor };

    let (shown, rest) = complete::suggest_early(&engine, &family, "early", &spot, &cfg, Default::default()).await.unwrap();
    let rest = rest.expect("a multi-line answer is answered early");
    let whole = rest.await.unwrap().unwrap();
    // In the same slot: another slot's cells give other rounding in the
    // attention sums (seen with AVX-512), and greedy decoding may then
    // take another word.
    let waited = complete::suggest(&engine, &family, "early", &spot, &cfg, CancelToken::new()).await.unwrap();
    eprintln!(
        "early {:?} after {} tokens; whole {:?} after {}",
        shown.text, shown.stats.generated_tokens, whole.text, whole.stats.generated_tokens
    );
    assert!(!shown.text.trim().is_empty());
    assert!(!shown.text.contains('\n'), "the first line: {:?}", shown.text);
    assert!(shown.stats.generated_tokens < whole.stats.generated_tokens);
    assert!(whole.text.starts_with(&shown.text) && whole.text.len() > shown.text.len(), "{:?} / {:?}", shown.text, whole.text);
    assert_eq!(whole.text, waited.text, "the early answer's rest must be what waiting gives");
    assert!(!whole.stats.yielded);

    // A request arriving while the rest is generated goes first.
    let (shown, rest) = complete::suggest_early(&engine, &family, "early", &spot, &cfg, Default::default()).await.unwrap();
    let rest = rest.expect("answered early again");
    let other = complete::suggest(&engine, &family, "early", &spot, &cfg, CancelToken::new()).await.unwrap();
    let partial = rest.await.unwrap().unwrap();
    assert!(partial.stats.yielded, "the background part yields to a request");
    assert!(partial.stats.generated_tokens < whole.stats.generated_tokens);
    assert!(partial.text.starts_with(&shown.text), "{:?} / {:?}", shown.text, partial.text);
    assert_eq!(other.text, waited.text);
}

/// A first request whose whole prompt would take long to evaluate is
/// answered from a small window of the nearest lines, in a slot of its
/// own; the build in the background fills a larger second window first,
/// which the next requests use, then the whole prompt, which requests use
/// once it is in, and cost only their own tokens.
#[tokio::test(flavor = "multi_thread")]
async fn a_cold_document_is_answered_from_a_first_window_then_the_whole_prompt() {
    let engine = Engine::spawn();
    let (_, family) = engine.load(engine_config(), |_| {}).await.expect("model loads");
    // The engine measures its speed right after the model loads.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let speed = loop {
        if let Some(s) = engine.prompt_speed() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "the engine never measured its speed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let text = source();
    let line = text.lines().position(|l| l.starts_with("def distance")).unwrap() + 1;
    let mut doc = Session::new(Document::new(&text, 1, Language::Python));
    let cursor = doc.rope.line_to_char(line) + 4;
    // A budget for a first window of about 64 tokens at this machine's
    // speed, so that the second (8 budgets, about 512 tokens) is well
    // under the whole prompt on any CPU (with the default 1,500 ms, a fast
    // one's second window is the whole file, and there is none).
    let first_answer_ms = (64.0 / (0.8 * speed) * 1e3).ceil() as u64 + 1;
    let cfg = CompletionConfig { early_answer_ms: 0, first_answer_ms, ..Default::default() };
    let (first_text, first) = run_with(&engine, &family, "doc", &mut doc, cursor, &cfg).await;
    eprintln!("first window at {speed:.0} tokens/s ({first_answer_ms} ms): {first_text:?} {first:?}");
    assert!(first.first_window, "{first:?}");
    assert!(first.prompt_tokens < 400, "a small prompt: {first:?}");
    // (A window is never under 64 tokens, however slow the machine.)
    let budget = (speed * cfg.first_answer_ms as f64 / 1e3).max(64.0);
    assert!(first.prompt_tokens as f64 <= budget * 1.5, "sized to the budget: {first:?}");
    assert!(!first_text.trim().is_empty(), "the first window answers");

    // The server's build after such an answer: a second window first, then
    // the whole prompt. It yields to every request and goes on after it, as
    // the server's does; once the second window is in, requests move to it.
    let (snap, anchor) = doc.plan(cursor, &cfg, None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let (second_text, second) = loop {
        let build = {
            let (engine, family, snap, cfg) = (engine.clone(), family.clone(), snap.clone(), cfg.clone());
            tokio::spawn(async move { complete::warm(&engine, &family, "doc", &Spot { snap: &snap, cursor, anchor }, &cfg).await })
        };
        // About 128 tokens of building between requests: the whole prompt
        // (over a thousand tokens past the second window) is never done first.
        tokio::time::sleep(std::time::Duration::from_secs_f64(128.0 / speed)).await;
        let (text, answer) = run_with(&engine, &family, "doc", &mut doc, cursor, &cfg).await;
        assert!(!build.await.unwrap(), "the build yields to the request");
        assert!(answer.first_window, "{answer:?}");
        if answer.prompt_tokens > first.prompt_tokens * 2 {
            break (text, answer);
        }
        assert!(std::time::Instant::now() < deadline, "no request moved to a second window");
    };
    eprintln!("second window: {second_text:?} {second:?}");
    assert!(second.evaluated_tokens * 4 < second.prompt_tokens, "built by the background: {second:?}");
    assert!(!second_text.trim().is_empty());

    // The rest of the build, when nothing waits.
    assert!(complete::warm(&engine, &family, "doc", &Spot { snap: &snap, cursor, anchor }, &cfg).await);
    let (whole_text, whole) = run_with(&engine, &family, "doc", &mut doc, cursor, &cfg).await;
    assert!(!whole.first_window);
    assert!(whole.prompt_tokens > 600 && whole.evaluated_tokens <= 1, "{whole:?}");
    assert!(!whole_text.trim().is_empty());
    // The whole prompt is the one a request that waits for it evaluates.
    // (Its text may differ by rounding: the background built it in
    // smaller batches.)
    let (_, direct) = run(&engine, &family, "direct", &mut doc, cursor).await;
    assert_eq!(whole.prompt_tokens, direct.prompt_tokens);
    assert_eq!(direct.evaluated_tokens, direct.prompt_tokens);
}

/// A document's KV state saved when it closes comes back in a new engine
/// (an editor restart) for a prompt that starts with the same tokens, and
/// gives the same greedy suggestion as a fresh evaluation. A corrupt state
/// file is refused, and the prompt is evaluated again.
#[tokio::test(flavor = "multi_thread")]
async fn a_state_saved_on_disk_gives_the_same_suggestion_as_a_fresh_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig { kv_cache_dir: Some(dir.path().to_path_buf()), ..Default::default() };
    let mut text = String::from("import math\n\n\n");
    for i in 0..16 {
        text.push_str(&format!("def area_{i}(r):\n    return math.pi * r * r * {i}\n\n\n"));
    }
    text.push_str("def circumference(r):\n    return \n");
    let line = text.lines().count() - 1;
    let doc = || Session::new(Document::new(&text, 1, Language::Python));
    let cursor = doc().rope.line_to_char(line) + "    return ".len();
    let load = || async {
        let engine = Engine::spawn();
        let (_, family) = engine.load(config.clone(), |_| {}).await.expect("model loads");
        (engine, family)
    };

    let (engine, family) = load().await;
    let (fresh_text, fresh) = run(&engine, &family, "file:///c.py", &mut doc(), cursor).await;
    assert_eq!(fresh.evaluated_tokens, fresh.prompt_tokens);
    assert!(fresh.prompt_tokens >= 256, "long enough to be saved: {fresh:?}");
    // The model's hash is computed in the background at the first load.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_dir(dir.path()).unwrap().flatten().any(|e| e.file_name().to_string_lossy().ends_with(".sha256")) {
        assert!(std::time::Instant::now() < deadline, "the model was never hashed");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    engine.release("file:///c.py");
    engine.shutdown();
    let states: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "kv")).collect();
    assert_eq!(states.len(), 1, "one state saved at close");

    let (engine, family) = load().await;
    let (restored_text, restored) = run(&engine, &family, "file:///c.py", &mut doc(), cursor).await;
    eprintln!("fresh {fresh:?}\nrestored {restored:?}");
    assert!(restored.restored_tokens + 1 >= restored.prompt_tokens, "{restored:?}");
    assert!(restored.evaluated_tokens <= 1, "{restored:?}");
    assert_eq!(restored_text, fresh_text, "a restored state must answer as a fresh evaluation");
    engine.shutdown();

    // Corrupt every saved state: refused (and deleted), evaluated again.
    for e in std::fs::read_dir(dir.path()).unwrap().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "kv")) {
        let mut b = std::fs::read(e.path()).unwrap();
        let at = b.len() / 2;
        b[at] ^= 0x5a;
        std::fs::write(e.path(), b).unwrap();
    }
    let (engine, family) = load().await;
    let (again_text, again) = run(&engine, &family, "file:///c.py", &mut doc(), cursor).await;
    assert_eq!(again.restored_tokens, 0, "{again:?}");
    assert_eq!(again.evaluated_tokens, again.prompt_tokens);
    assert_eq!(again_text, fresh_text);
    engine.shutdown();
}
