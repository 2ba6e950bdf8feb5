//! The typing trace: functions picked from real source files, their bodies
//! deleted and retyped word by word.
//!
//! A trace is a list of sessions, one per file. A session starts from the
//! original file text and is a list of actions: edits (a byte range of the
//! current text replaced by new text, as an editor reports them) and requests
//! (ask for a completion at the cursor). Every engine replays the same actions,
//! so they all see the same text and cursor at each request.

use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Python,
    Rust,
}

impl Lang {
    pub fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Rust => "rust",
        }
    }

    pub fn language_id(self) -> &'static str {
        self.name()
    }

    fn from_path(p: &Path) -> Option<Lang> {
        match p.extension()?.to_str()? {
            "py" => Some(Lang::Python),
            "rs" => Some(Lang::Rust),
            _ => None,
        }
    }
}

/// A function whose body is retyped.
#[derive(Clone, Debug)]
pub struct Function {
    pub name: String,
    /// 1-based line of the `def` / `fn` keyword.
    pub line: usize,
    /// Byte offset of the newline that ends the header (signature, and for
    /// Python the docstring): the body is retyped from here.
    pub body_start: usize,
    /// Byte offset of the newline that ends the last body line.
    pub body_end: usize,
    /// Non-blank lines in the body.
    pub body_lines: usize,
}

#[derive(Clone, Debug)]
pub enum Action {
    /// Replace `start..end` (byte offsets in the current text) by `text`.
    Edit { start: usize, end: usize, text: String },
    /// Ask for a completion at byte offset `cursor`; `expected` is what the
    /// user types next on the cursor's line.
    Request { cursor: usize, function: usize, step: usize, expected: String },
}

#[derive(Clone, Debug)]
pub struct Session {
    pub lang: Lang,
    pub path: PathBuf,
    pub file_name: String,
    pub text: String,
    pub functions: Vec<Function>,
    /// Typing events per function (before sampling).
    pub events: Vec<usize>,
    pub actions: Vec<Action>,
}

impl Session {
    pub fn requests(&self) -> usize {
        self.actions.iter().filter(|a| matches!(a, Action::Request { .. })).count()
    }
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '\t']).len()
}

/// (byte offset of line start, line text without the newline) for each line.
fn lines_with_offsets(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    for l in text.split_inclusive('\n') {
        out.push((start, l.strip_suffix('\n').unwrap_or(l)));
        start += l.len();
    }
    out
}

/// The offset of the newline ending line `i` (or the end of the text).
fn line_end(lines: &[(usize, &str)], i: usize) -> usize {
    lines[i].0 + lines[i].1.len()
}

fn ident_after(s: &str) -> String {
    s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// Python functions (module level and methods) with their docstring kept as
/// part of the header.
fn python_functions(text: &str) -> Vec<Function> {
    let lines = lines_with_offsets(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (_, l) = lines[i];
        let t = l.trim_start();
        let Some(rest) = t.strip_prefix("def ").or_else(|| t.strip_prefix("async def ")) else {
            i += 1;
            continue;
        };
        let def_line = i;
        let name = ident_after(rest);
        let base = indent_of(l);
        // Header: up to the line where the brackets close and the line ends in ':'.
        let mut depth = 0i32;
        let mut h = i;
        let mut found = false;
        while h < lines.len() && h < i + 20 {
            for c in lines[h].1.chars() {
                match c {
                    '(' | '[' | '{' => depth += 1,
                    ')' | ']' | '}' => depth -= 1,
                    _ => {}
                }
            }
            if depth == 0 && lines[h].1.trim_end().ends_with(':') {
                found = true;
                break;
            }
            h += 1;
        }
        if !found {
            i += 1;
            continue;
        }
        // A docstring stays: it is documentation the user wrote first.
        let mut n = h + 1;
        while n < lines.len() && lines[n].1.trim().is_empty() {
            n += 1;
        }
        if n < lines.len() {
            let d = lines[n].1.trim_start();
            let d = d.strip_prefix('r').unwrap_or(d);
            if let Some(q) = ["\"\"\"", "'''"].into_iter().find(|q| d.starts_with(q)) {
                let mut e = n;
                if d[3..].contains(q) {
                    h = n;
                } else {
                    e += 1;
                    while e < lines.len() && !lines[e].1.contains(q) {
                        e += 1;
                    }
                    h = e.min(lines.len() - 1);
                }
            }
        }
        // Body: the lines indented deeper than the `def`.
        let mut last = None;
        let mut b = h + 1;
        while b < lines.len() {
            let l = lines[b].1;
            if !l.trim().is_empty() {
                if indent_of(l) <= base {
                    break;
                }
                last = Some(b);
            }
            b += 1;
        }
        if let Some(last) = last {
            let body = &lines[h + 1..=last];
            let non_blank = body.iter().filter(|(_, l)| !l.trim().is_empty()).count();
            let code = body.iter().filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#')).count();
            if (10..=30).contains(&non_blank) && code >= 8 {
                out.push(Function {
                    name,
                    line: def_line + 1,
                    body_start: line_end(&lines, h),
                    body_end: line_end(&lines, last),
                    body_lines: non_blank,
                });
            }
            i = last + 1;
        } else {
            i = h + 1;
        }
    }
    out
}

/// Rust functions with a body (`fn ... {` ... `}` at the same indentation).
fn rust_functions(text: &str) -> Vec<Function> {
    let lines = lines_with_offsets(text);
    let mut out = Vec::new();
    let mut i = 0;
    'scan: while i < lines.len() {
        let (_, l) = lines[i];
        let mut t = l.trim_start();
        loop {
            let before = t;
            for kw in ["pub(crate) ", "pub(super) ", "pub ", "const ", "async ", "unsafe ", "default ", "extern \"C\" "] {
                if let Some(r) = t.strip_prefix(kw) {
                    t = r;
                }
            }
            if t == before {
                break;
            }
        }
        let Some(rest) = t.strip_prefix("fn ") else {
            i += 1;
            continue;
        };
        let name = ident_after(rest);
        let base = &l[..indent_of(l)];
        let mut h = i;
        loop {
            if h >= lines.len() || h > i + 12 {
                i += 1;
                continue 'scan;
            }
            let s = lines[h].1.trim_end();
            if s.ends_with('{') {
                break;
            }
            if s.ends_with(';') || s.ends_with('}') {
                i = h + 1;
                continue 'scan;
            }
            h += 1;
        }
        let close = format!("{base}}}");
        let Some(c) = (h + 1..lines.len().min(h + 400)).find(|&k| lines[k].1.trim_end() == close) else {
            i = h + 1;
            continue;
        };
        if c > h + 1 {
            let body = &lines[h + 1..c];
            let non_blank = body.iter().filter(|(_, l)| !l.trim().is_empty()).count();
            let code = body.iter().filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with("//")).count();
            if (10..=30).contains(&non_blank) && code >= 8 {
                out.push(Function {
                    name,
                    line: i + 1,
                    body_start: line_end(&lines, h),
                    body_end: line_end(&lines, c - 1),
                    body_lines: non_blank,
                });
            }
        }
        i = c + 1;
    }
    out
}

/// Splits the retyped text into typing events: a word (identifier run) or a
/// punctuation burst, each with the spaces typed before it; or an Enter with
/// the new line's indentation (blank lines in between are part of it).
pub fn typing_events(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let is_space = |c: char| c == ' ' || c == '\t';
    while i < chars.len() {
        let start = i;
        if chars[i] == '\n' {
            // Enter (possibly several) and the indentation of the line typed next.
            loop {
                i += 1;
                while i < chars.len() && is_space(chars[i]) {
                    i += 1;
                }
                if i < chars.len() && chars[i] == '\n' {
                    continue;
                }
                break;
            }
        } else {
            while i < chars.len() && is_space(chars[i]) {
                i += 1;
            }
            if i == chars.len() || chars[i] == '\n' {
                // Trailing spaces: they go with the previous event.
                let s: String = chars[start..i].iter().collect();
                match out.last_mut() {
                    Some(prev) => prev.push_str(&s),
                    None => out.push(s),
                }
                continue;
            }
            if is_word(chars[i]) {
                while i < chars.len() && is_word(chars[i]) {
                    i += 1;
                }
            } else {
                while i < chars.len() && !is_word(chars[i]) && !is_space(chars[i]) && chars[i] != '\n' {
                    i += 1;
                }
            }
        }
        out.push(chars[start..i].iter().collect());
    }
    out
}

/// `count` indices spread evenly over `0..n` (all of them when n <= count).
pub fn spread(n: usize, count: usize) -> Vec<usize> {
    if n <= count {
        return (0..n).collect();
    }
    (0..count).map(|k| (2 * k + 1) * n / (2 * count)).collect()
}

/// Builds the session of one file: `functions` functions spread evenly over
/// the candidates, `requests` requests per function.
pub fn session(path: &Path, functions: usize, requests: usize) -> anyhow::Result<Session> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let lang = Lang::from_path(path).ok_or_else(|| anyhow::anyhow!("{}: not a .py or .rs file", path.display()))?;
    let candidates = match lang {
        Lang::Python => python_functions(&text),
        Lang::Rust => rust_functions(&text),
    };
    if candidates.is_empty() {
        anyhow::bail!("{}: no function with a 10-30 line body", path.display());
    }
    let picked: Vec<Function> = spread(candidates.len(), functions).into_iter().map(|k| candidates[k].clone()).collect();
    let mut actions = Vec::new();
    let mut events_per_fn = Vec::new();
    for (fi, f) in picked.iter().enumerate() {
        let body = &text[f.body_start..f.body_end];
        // Delete the body (the line ending of the header stays with the closing line).
        actions.push(Action::Edit { start: f.body_start, end: f.body_end, text: String::new() });
        let events = typing_events(body);
        assert_eq!(events.concat(), body, "typing events must rebuild the body");
        events_per_fn.push(events.len());
        let sampled = spread(events.len(), requests);
        let mut at = f.body_start;
        let mut next = 0;
        for (ei, ev) in events.iter().enumerate() {
            actions.push(Action::Edit { start: at, end: at, text: ev.clone() });
            at += ev.len();
            if next < sampled.len() && sampled[next] == ei {
                // The text is the original up to the cursor; what follows on
                // the original line is what the user types next.
                let rest = &text[at..];
                let expected = rest[..rest.find('\n').unwrap_or(rest.len())].to_string();
                actions.push(Action::Request { cursor: at, function: fi, step: next, expected });
                next += 1;
            }
        }
        assert_eq!(at, f.body_end);
    }
    Ok(Session {
        lang,
        file_name: path.file_name().unwrap().to_string_lossy().into_owned(),
        path: path.to_path_buf(),
        text,
        functions: picked,
        events: events_per_fn,
        actions,
    })
}

/// Applies an edit to a text.
pub fn apply(text: &mut String, start: usize, end: usize, new: &str) {
    text.replace_range(start..end, new);
}
