//! The workspace index: definitions by name across the workspace's files,
//! shown to the model as context from other files.
//!
//! Built in the background over the workspace roots (respecting `.gitignore`
//! and `.ignore`, skipping hidden, secret-looking, binary, invalid UTF-8 and
//! huge files, never following a symlink), kept up to date from the editor
//! with [`WorkspaceIndex::update_file`] and [`WorkspaceIndex::remove_file`],
//! and queried from request handlers while that runs: the build takes the
//! lock once per file, briefly, so a lookup never waits for the whole build.
//!
//! Memory is bounded by [`IndexLimits`]: files, definitions and stored bytes,
//! and each definition keeps only a short snippet (its signature and the
//! first lines of its body).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use tree_sitter::Parser;

use crate::language::Language;
use crate::syntax::{self, Import};

/// Bounds on what the index holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexLimits {
    /// Files indexed at most.
    pub max_files: usize,
    /// Definitions stored at most.
    pub max_definitions: usize,
    /// Bytes of stored text (snippets, names, paths) at most.
    pub max_bytes: usize,
    /// Files larger than this are skipped.
    pub max_file_size: u64,
    /// A snippet is cut to this many bytes ...
    pub snippet_max_bytes: usize,
    /// ... and this many lines (a `...` line included when cut).
    pub snippet_max_lines: usize,
}

impl Default for IndexLimits {
    fn default() -> Self {
        IndexLimits {
            max_files: 20_000,
            max_definitions: 200_000,
            max_bytes: 64 << 20,
            max_file_size: 1 << 20,
            snippet_max_bytes: 600,
            snippet_max_lines: 12,
        }
    }
}

/// One definition in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedDef {
    pub name: String,
    /// As in [`syntax::Definition::kind`]: `function`, `method`, `struct`...
    pub kind: String,
    /// Absolute path of its file.
    pub path: Arc<Path>,
    /// The path relative to its workspace root, for display.
    pub rel_path: Arc<Path>,
    /// 0-based line of the item's start.
    pub line: usize,
    /// The item's text, dedented: whole when short, else its signature and
    /// the first lines of its body, then a `...` line.
    pub snippet: String,
}

/// Text from another file to show the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Relative to its workspace root.
    pub path: PathBuf,
    pub text: String,
}

/// Files left out, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkippedFiles {
    /// Names that look like credentials or keys (`secrets.py`, `id_rsa`...).
    pub secret: usize,
    /// No grammar for its extension.
    pub unknown_language: usize,
    /// Larger than [`IndexLimits::max_file_size`].
    pub too_large: usize,
    /// Contains a NUL byte.
    pub binary: usize,
    /// Not valid UTF-8.
    pub invalid_utf8: usize,
    /// A symbolic link (never followed).
    pub symlink: usize,
    /// Could not be read, or the walk failed there.
    pub unreadable: usize,
    /// Left out, or cut short, because a limit of [`IndexLimits`] was reached.
    pub over_limit: usize,
}

/// What the index holds and what its build did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Files with entries in the index now.
    pub files: usize,
    pub definitions: usize,
    /// Approximate bytes held (text and per-entry overhead).
    pub bytes: usize,
    /// Files the build left out, by reason.
    pub skipped: SkippedFiles,
    /// Files the build looked at (indexed or skipped).
    pub files_seen: usize,
    pub building: bool,
    /// How long the last finished build took.
    pub build_time: Option<Duration>,
    /// A limit was reached: some files or definitions are missing.
    pub truncated: bool,
}

/// Per-definition overhead on top of its text, for the byte estimate: the
/// struct, its `Arc`, and its slots in the two maps.
const DEF_OVERHEAD: usize = std::mem::size_of::<IndexedDef>() + 16 + 2 * 8;
/// Per-file overhead: the map entry and the path (counted once, shared).
const FILE_OVERHEAD: usize = 64;

/// Names with more definitions than this outside the current file are
/// ambiguous (`new`, `__init__`, `fmt`) and left out of the context unless
/// an import says which one is meant.
const MAX_AMBIGUOUS: usize = 4;
/// At most this many definitions per name go into the context.
const MAX_PER_NAME: usize = 3;
/// At most this many names are looked at per request.
const MAX_NAMES: usize = 64;

struct FileEntry {
    defs: Vec<Arc<IndexedDef>>,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    files: HashMap<Arc<Path>, FileEntry>,
    by_name: HashMap<String, Vec<Arc<IndexedDef>>>,
    definitions: usize,
    bytes: usize,
    /// Files whose content came from the editor (or that it removed): the
    /// background build leaves them alone.
    pinned: HashSet<PathBuf>,
    skipped: SkippedFiles,
    files_seen: usize,
    truncated: bool,
    build_time: Option<Duration>,
}

impl Inner {
    fn remove(&mut self, path: &Path) {
        let Some(entry) = self.files.remove(path) else {
            return;
        };
        for def in &entry.defs {
            if let Some(list) = self.by_name.get_mut(&def.name) {
                list.retain(|d| !Arc::ptr_eq(d, def));
                if list.is_empty() {
                    self.by_name.remove(&def.name);
                }
            }
        }
        self.definitions -= entry.defs.len();
        self.bytes -= entry.bytes;
    }

    /// Replace `path`'s entries with `defs`, as many as the limits allow.
    /// False when a limit left something out.
    fn insert(&mut self, path: &Arc<Path>, defs: Vec<IndexedDef>, limits: &IndexLimits) -> bool {
        self.remove(path);
        if self.files.len() >= limits.max_files {
            return false;
        }
        let mut bytes = FILE_OVERHEAD + path.as_os_str().len() * 2;
        if self.bytes + bytes > limits.max_bytes {
            return false;
        }
        let mut kept = Vec::with_capacity(defs.len());
        let mut complete = true;
        for def in defs {
            let cost = def_bytes(&def);
            if self.definitions + kept.len() >= limits.max_definitions
                || self.bytes + bytes + cost > limits.max_bytes
            {
                complete = false;
                break;
            }
            bytes += cost;
            kept.push(Arc::new(def));
        }
        for def in &kept {
            self.by_name
                .entry(def.name.clone())
                .or_default()
                .push(def.clone());
        }
        self.definitions += kept.len();
        self.bytes += bytes;
        self.files
            .insert(path.clone(), FileEntry { defs: kept, bytes });
        complete
    }
}

fn def_bytes(d: &IndexedDef) -> usize {
    // The name twice: in the definition and as the map key.
    DEF_OVERHEAD + d.name.len() * 2 + d.kind.len() + d.snippet.len()
}

/// Does this file name look like it holds credentials or keys?
pub fn is_secret_path(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let name = name.to_ascii_lowercase();
    let exact = [
        ".env",
        ".netrc",
        "_netrc",
        ".npmrc",
        ".pypirc",
        ".pgpass",
        ".htpasswd",
        ".git-credentials",
        ".dockercfg",
        "known_hosts",
        "authorized_keys",
    ];
    let prefixes = [
        ".env.",
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        "credentials",
        "secrets.",
        "secret.",
        ".secrets",
    ];
    let suffixes = [
        ".pem",
        ".key",
        ".p12",
        ".pfx",
        ".jks",
        ".keystore",
        ".kdbx",
        ".ppk",
        ".asc",
        ".gpg",
        ".crt",
        ".der",
        ".ovpn",
        ".tfstate",
        ".tfvars",
    ];
    exact.contains(&name.as_str())
        || prefixes.iter().any(|p| name.starts_with(p))
        || suffixes.iter().any(|s| name.ends_with(s))
}

/// `path` made absolute and free of symlinks when it exists; as given when
/// it does not (a new, unsaved file).
fn normalize(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// The snippet of a definition: the item's text from the start of its first
/// line, dedented by that line's indentation, cut to the limits.
fn snippet(src: &str, def: &syntax::Definition, limits: &IndexLimits) -> String {
    let line_start = src[..def.byte_range.start].rfind('\n').map_or(0, |i| i + 1);
    let lead = &src[line_start..def.byte_range.start];
    let indent = if lead.bytes().all(|b| b == b' ' || b == b'\t') {
        lead.len()
    } else {
        0
    };
    let start = if indent > 0 {
        line_start
    } else {
        def.byte_range.start
    };
    let item = &src[start..def.byte_range.end.min(src.len())];
    let max_lines = limits.snippet_max_lines.max(2);
    let max_bytes = limits.snippet_max_bytes.max(16);
    let mut out = String::new();
    let mut cut = false;
    let mut lines = item.split('\n').peekable();
    let mut n = 0;
    while let Some(line) = lines.next() {
        let line = line.trim_end();
        let line = strip_indent(line, indent);
        let last = lines.peek().is_none();
        // Keep room for the `...` line unless this is the item's last line.
        let room_lines = if last { max_lines } else { max_lines - 1 };
        let room_bytes = if last {
            max_bytes
        } else {
            max_bytes.saturating_sub(4)
        };
        if n >= room_lines || out.len() + line.len() + 1 > room_bytes {
            if n == 0 {
                // A single line longer than the budget: cut it.
                let mut end = room_bytes.min(line.len());
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                out.push_str(&line[..end]);
            }
            cut = true;
            break;
        }
        if n > 0 {
            out.push('\n');
        }
        out.push_str(line);
        n += 1;
    }
    if cut {
        out.push_str("\n...");
    }
    out.shrink_to_fit();
    out
}

fn strip_indent(line: &str, indent: usize) -> &str {
    let ws = line.len() - line.trim_start_matches([' ', '\t']).len();
    &line[ws.min(indent)..]
}

/// The definitions of one file, ready for the index.
fn file_defs(
    parser: &mut Parser,
    lang: Language,
    path: &Arc<Path>,
    rel: &Arc<Path>,
    src: &str,
    limits: &IndexLimits,
) -> Vec<IndexedDef> {
    let Some(ts) = lang.ts_language() else {
        return Vec::new();
    };
    if parser.set_language(&ts).is_err() {
        return Vec::new();
    }
    let Some(tree) = parser.parse(src, None) else {
        return Vec::new();
    };
    syntax::definitions(lang, &tree, src)
        .iter()
        .map(|d| IndexedDef {
            name: d.name.clone(),
            kind: d.kind.clone(),
            path: path.clone(),
            rel_path: rel.clone(),
            line: d.start_line,
            snippet: snippet(src, d, limits),
        })
        .collect()
}

/// Why a file is not indexed.
enum Skip {
    Secret,
    UnknownLanguage,
    TooLarge,
    Binary,
    InvalidUtf8,
}

fn check_text(bytes: Vec<u8>) -> Result<String, Skip> {
    if bytes.contains(&0) {
        return Err(Skip::Binary);
    }
    String::from_utf8(bytes).map_err(|_| Skip::InvalidUtf8)
}

/// The workspace index. Hold it in an `Arc`: the build runs on its own
/// thread while requests look things up.
pub struct WorkspaceIndex {
    roots: Vec<PathBuf>,
    limits: IndexLimits,
    inner: RwLock<Inner>,
    building: AtomicBool,
    cancelled: AtomicBool,
}

impl WorkspaceIndex {
    /// An empty index over `roots` (made absolute and free of symlinks).
    pub fn new(roots: Vec<PathBuf>, limits: IndexLimits) -> Arc<Self> {
        let mut roots: Vec<PathBuf> = roots.iter().map(|r| normalize(r)).collect();
        roots.sort();
        roots.dedup();
        Arc::new(WorkspaceIndex {
            roots,
            limits,
            inner: RwLock::new(Inner::default()),
            building: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
        })
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    pub fn limits(&self) -> &IndexLimits {
        &self.limits
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Build the index on a background thread.
    pub fn spawn_build(self: &Arc<Self>) -> std::thread::JoinHandle<()> {
        let me = self.clone();
        self.building.store(true, Ordering::SeqCst);
        std::thread::Builder::new()
            .name("locode-index".into())
            .spawn(move || me.build())
            .expect("spawn the index thread")
    }

    /// Stop a build in progress (what is indexed so far stays).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    pub fn is_building(&self) -> bool {
        self.building.load(Ordering::SeqCst)
    }

    /// The root `path` is under (the deepest one), if any.
    pub fn root_of(&self, path: &Path) -> Option<&Path> {
        self.roots
            .iter()
            .filter(|r| path.starts_with(r))
            .max_by_key(|r| r.as_os_str().len())
            .map(|r| r.as_path())
    }

    pub fn rel_path(&self, path: &Path) -> PathBuf {
        match self.root_of(path) {
            Some(root) => path.strip_prefix(root).unwrap_or(path).to_path_buf(),
            None => path.to_path_buf(),
        }
    }

    /// Walk the roots and index every file there (what [`Self::spawn_build`]
    /// runs). Files the editor has sent are left as the editor sent them.
    pub fn build(&self) {
        self.building.store(true, Ordering::SeqCst);
        self.cancelled.store(false, Ordering::SeqCst);
        let started = Instant::now();
        {
            let mut inner = self.write();
            inner.skipped = SkippedFiles::default();
            inner.files_seen = 0;
            inner.truncated = false;
        }
        let Some((first, rest)) = self.roots.split_first() else {
            self.finish(started);
            return;
        };
        let mut walk = ignore::WalkBuilder::new(first);
        for r in rest {
            walk.add(r);
        }
        walk.follow_links(false)
            .require_git(false)
            .hidden(true)
            .parents(true)
            .sort_by_file_name(|a, b| a.cmp(b));
        let mut parsers: HashMap<Language, Parser> = HashMap::new();
        for entry in walk.build() {
            if self.cancelled.load(Ordering::SeqCst) {
                break;
            }
            let entry = match entry {
                Ok(e) => e,
                Err(_) => {
                    self.write().skipped.unreadable += 1;
                    continue;
                }
            };
            let Some(ft) = entry.file_type() else {
                continue;
            };
            if ft.is_dir() {
                continue;
            }
            let path = entry.path();
            if ft.is_symlink() {
                let mut inner = self.write();
                inner.files_seen += 1;
                inner.skipped.symlink += 1;
                continue;
            }
            if !ft.is_file() {
                continue;
            }
            {
                let inner = self.read();
                if inner.files.len() >= self.limits.max_files && !inner.files.contains_key(path) {
                    drop(inner);
                    let mut inner = self.write();
                    inner.truncated = true;
                    inner.skipped.over_limit += 1;
                    // Nothing more can go in: stop walking.
                    break;
                }
            }
            let lang = Language::from_path(path);
            let text = self.read_file(path, lang, entry.metadata().ok().map(|m| m.len()));
            let text = match text {
                Ok(t) => t,
                Err(skip) => {
                    let mut inner = self.write();
                    inner.files_seen += 1;
                    match skip {
                        None => inner.skipped.unreadable += 1,
                        Some(Skip::Secret) => inner.skipped.secret += 1,
                        Some(Skip::UnknownLanguage) => inner.skipped.unknown_language += 1,
                        Some(Skip::TooLarge) => inner.skipped.too_large += 1,
                        Some(Skip::Binary) => inner.skipped.binary += 1,
                        Some(Skip::InvalidUtf8) => inner.skipped.invalid_utf8 += 1,
                    }
                    continue;
                }
            };
            let abs: Arc<Path> = Arc::from(path);
            let rel: Arc<Path> = Arc::from(self.rel_path(path));
            let parser = parsers.entry(lang).or_default();
            let defs = file_defs(parser, lang, &abs, &rel, &text, &self.limits);
            let mut inner = self.write();
            inner.files_seen += 1;
            if inner.pinned.contains(path) {
                continue;
            }
            if !inner.insert(&abs, defs, &self.limits) {
                inner.truncated = true;
                inner.skipped.over_limit += 1;
            }
        }
        self.finish(started);
    }

    fn finish(&self, started: Instant) {
        self.write().build_time = Some(started.elapsed());
        self.building.store(false, Ordering::SeqCst);
    }

    /// The text of a file the walk found, or why it is skipped (None:
    /// unreadable).
    fn read_file(
        &self,
        path: &Path,
        lang: Language,
        len: Option<u64>,
    ) -> Result<String, Option<Skip>> {
        if is_secret_path(path) {
            return Err(Some(Skip::Secret));
        }
        if lang.ts_language().is_none() {
            return Err(Some(Skip::UnknownLanguage));
        }
        if len.is_some_and(|l| l > self.limits.max_file_size) {
            return Err(Some(Skip::TooLarge));
        }
        let bytes = std::fs::read(path).map_err(|_| None)?;
        if bytes.len() as u64 > self.limits.max_file_size {
            return Err(Some(Skip::TooLarge));
        }
        check_text(bytes).map_err(Some)
    }

    /// Replace `path`'s entries with the definitions in `text` (the editor's
    /// content of an open document, on didOpen/didChange/didSave). Only files
    /// under a root, in a known language, not secret-looking, within the
    /// size limit and free of NUL bytes are indexed; the file is left out
    /// otherwise. True when it was indexed. From then on the background build
    /// leaves this file alone.
    pub fn update_file(&self, path: &Path, text: &str) -> bool {
        let path = normalize(path);
        let lang = Language::from_path(&path);
        let ok = self.root_of(&path).is_some()
            && !is_secret_path(&path)
            && lang.ts_language().is_some()
            && text.len() as u64 <= self.limits.max_file_size
            && !text.as_bytes().contains(&0);
        let abs: Arc<Path> = Arc::from(path.as_path());
        if !ok {
            let mut inner = self.write();
            inner.remove(&path);
            return false;
        }
        let rel: Arc<Path> = Arc::from(self.rel_path(&path));
        let mut parser = Parser::new();
        let defs = file_defs(&mut parser, lang, &abs, &rel, text, &self.limits);
        let mut inner = self.write();
        inner.pinned.insert(path.clone());
        if !inner.insert(&abs, defs, &self.limits) {
            inner.truncated = true;
        }
        true
    }

    /// Forget `path` (deleted, or no longer to be indexed); the background
    /// build does not bring it back.
    pub fn remove_file(&self, path: &Path) {
        let path = normalize(path);
        let mut inner = self.write();
        inner.remove(&path);
        inner.pinned.insert(path);
    }

    /// Every definition named `name`, sorted by path, then line.
    pub fn lookup(&self, name: &str) -> Vec<IndexedDef> {
        let inner = self.read();
        let mut defs: Vec<IndexedDef> = inner
            .by_name
            .get(name)
            .map(|v| v.iter().map(|d| (**d).clone()).collect())
            .unwrap_or_default();
        defs.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
        defs
    }

    /// Definitions to show the model for the names used near the cursor
    /// (most relevant first, e.g. from [`syntax::identifiers_in`]), leaving
    /// out those of `current` itself, within `budget_chars` (paths and
    /// separators counted). One chunk per file; chunks sorted by path and
    /// definitions by line, so the same definitions always read the same and
    /// stay in the reusable start of the prompt.
    pub fn context_for(&self, current: &Path, names: &[String], budget_chars: usize) -> Vec<Chunk> {
        self.context_for_imports(current, names, &[], budget_chars)
    }

    /// [`Self::context_for`], also using the current file's imports: the
    /// names they bring in count (after `names`), and an imported name is
    /// looked for first in files matching the module it is imported from
    /// (`crate::engine::Engine` -> `engine.rs` or `engine/`), which also
    /// settles names defined in many files.
    pub fn context_for_imports(
        &self,
        current: &Path,
        names: &[String],
        imports: &[Import],
        budget_chars: usize,
    ) -> Vec<Chunk> {
        let current = normalize(current);
        // The module each imported name comes from.
        let mut module_of: HashMap<&str, &str> = HashMap::new();
        for imp in imports {
            if let Some(m) = imp.module.as_deref() {
                for n in &imp.names {
                    module_of.entry(n.as_str()).or_insert(m);
                }
            }
        }
        let mut order: Vec<&str> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        let imported = imports.iter().flat_map(|i| i.names.iter());
        for n in names.iter().chain(imported) {
            if order.len() >= MAX_NAMES {
                break;
            }
            if !n.is_empty() && seen.insert(n.as_str()) {
                order.push(n.as_str());
            }
        }

        let inner = self.read();
        let mut picked: Vec<Arc<IndexedDef>> = Vec::new();
        let mut files: HashSet<Arc<Path>> = HashSet::new();
        let mut used = 0usize;
        for name in order {
            let Some(all) = inner.by_name.get(name) else {
                continue;
            };
            let module = module_of.get(name);
            // (Paths are normalized: their bytes compare. A name not imported
            // from a module is given up on once it has too many definitions.)
            let mut cands: Vec<&Arc<IndexedDef>> = Vec::new();
            for d in all.iter().filter(|d| d.path.as_os_str() != current.as_os_str()) {
                cands.push(d);
                if module.is_none() && cands.len() > MAX_AMBIGUOUS {
                    break;
                }
            }
            if cands.is_empty() {
                continue;
            }
            if let Some(module) = module {
                let key = module_key(module);
                let from_module: Vec<&Arc<IndexedDef>> = cands
                    .iter()
                    .copied()
                    .filter(|d| key.is_some_and(|k| path_matches_module(&d.rel_path, k)))
                    .collect();
                if !from_module.is_empty() {
                    cands = from_module;
                }
            }
            if cands.len() > MAX_AMBIGUOUS {
                continue;
            }
            cands.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
            for d in cands.into_iter().take(MAX_PER_NAME) {
                if picked.iter().any(|p| Arc::ptr_eq(p, d)) {
                    continue;
                }
                let mut cost = d.snippet.len() + 2;
                if !files.contains(&d.path) {
                    cost += d.rel_path.as_os_str().len() + 2;
                }
                if used + cost > budget_chars {
                    continue;
                }
                used += cost;
                files.insert(d.path.clone());
                picked.push(d.clone());
            }
        }
        drop(inner);

        picked.sort_by(|a, b| (&a.rel_path, &a.path, a.line).cmp(&(&b.rel_path, &b.path, b.line)));
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut last: Option<&Arc<Path>> = None;
        for d in &picked {
            if last.is_some_and(|p| Arc::ptr_eq(p, &d.path) || **p == *d.path) {
                let c = chunks.last_mut().expect("a chunk for this file");
                c.text.push_str("\n\n");
                c.text.push_str(&d.snippet);
            } else {
                chunks.push(Chunk {
                    path: d.rel_path.to_path_buf(),
                    text: d.snippet.clone(),
                });
            }
            last = Some(&d.path);
        }
        chunks
    }

    /// Counts and sizes, and what the last build did.
    pub fn stats(&self) -> IndexStats {
        let inner = self.read();
        IndexStats {
            files: inner.files.len(),
            definitions: inner.definitions,
            bytes: inner.bytes,
            skipped: inner.skipped.clone(),
            files_seen: inner.files_seen,
            building: self.is_building(),
            build_time: inner.build_time,
            truncated: inner.truncated,
        }
    }
}

/// The part of an import's module path that names a file or folder:
/// `crate::engine` -> `engine`, `..util.text` -> `text`.
fn module_key(module: &str) -> Option<&str> {
    module
        .split(|c| c == ':' || c == '.')
        .rfind(|s| !s.is_empty() && !matches!(*s, "crate" | "self" | "super"))
}

/// Does the file at `rel` hold the module `key` (as its stem or a folder)?
fn path_matches_module(rel: &Path, key: &str) -> bool {
    rel.file_stem().is_some_and(|s| s == key)
        || rel
            .parent()
            .is_some_and(|p| p.components().any(|c| c.as_os_str() == key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(root: &Path, rel: &str, text: &str) -> PathBuf {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        p
    }

    fn built(root: &Path, limits: IndexLimits) -> Arc<WorkspaceIndex> {
        let index = WorkspaceIndex::new(vec![root.to_path_buf()], limits);
        index.spawn_build().join().unwrap();
        index
    }

    fn names_in(index: &WorkspaceIndex, name: &str) -> Vec<String> {
        index
            .lookup(name)
            .into_iter()
            .map(|d| d.rel_path.to_string_lossy().replace('\\', "/"))
            .collect()
    }

    #[test]
    fn gitignore_and_hidden_files_are_respected() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, ".gitignore", "target/\n*.gen.rs\n");
        write(root, "src/lib.rs", "pub fn alpha() {}\n");
        write(root, "target/debug/build.rs", "pub fn beta() {}\n");
        write(root, "src/x.gen.rs", "pub fn gamma() {}\n");
        write(root, ".hidden/d.rs", "pub fn delta() {}\n");
        write(root, "pkg/.ignore", "skip_me.py\n");
        write(root, "pkg/skip_me.py", "def epsilon(): pass\n");
        write(root, "pkg/keep.py", "def zeta(): pass\n");
        let index = built(root, IndexLimits::default());
        assert_eq!(names_in(&index, "alpha"), ["src/lib.rs"]);
        assert_eq!(names_in(&index, "zeta"), ["pkg/keep.py"]);
        for gone in ["beta", "gamma", "delta", "epsilon"] {
            assert!(
                index.lookup(gone).is_empty(),
                "{gone} should not be indexed"
            );
        }
        let s = index.stats();
        assert_eq!((s.files, s.definitions, s.building), (2, 2, false));
        assert!(s.build_time.is_some());
    }

    #[test]
    fn secret_looking_files_are_skipped() {
        for (name, secret) in [
            (".env", true),
            (".env.local", true),
            ("id_rsa", true),
            ("id_ed25519.pub", true),
            ("server.key", true),
            ("cert.PEM", true),
            ("store.p12", true),
            ("store.pfx", true),
            ("credentials.json", true),
            (".netrc", true),
            (".npmrc", true),
            (".pypirc", true),
            ("secrets.py", true),
            ("secrets.yaml", true),
            ("keys.rs", false),
            ("tokens.py", false),
            ("environment.py", false),
            ("main.rs", false),
        ] {
            assert_eq!(is_secret_path(Path::new(name)), secret, "{name}");
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "app/secrets.py",
            "API_KEY = 'x'\ndef leaked(): pass\n",
        );
        write(root, "app/credentials.py", "def leaked2(): pass\n");
        write(root, "src/secret.rs", "fn leaked3() {}\n");
        write(root, "app/main.py", "def main(): pass\n");
        write(root, "notes.txt", "fn not_code() {}\n");
        let index = built(root, IndexLimits::default());
        for gone in ["leaked", "leaked2", "leaked3", "API_KEY", "not_code"] {
            assert!(index.lookup(gone).is_empty(), "{gone}");
        }
        assert_eq!(index.lookup("main").len(), 1);
        let s = index.stats();
        assert_eq!(s.skipped.secret, 3);
        assert_eq!(s.skipped.unknown_language, 1);
        // Nor through the editor.
        assert!(!index.update_file(&root.join("app/secrets.py"), "def leaked(): pass\n"));
        assert!(index.lookup("leaked").is_empty());
    }

    #[test]
    fn binary_invalid_utf8_and_huge_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "ok.rs", "fn fine() {}\n");
        fs::write(root.join("bin.rs"), b"fn nul() {}\n\0\0\x01").unwrap();
        fs::write(
            root.join("latin1.py"),
            b"def bad():\n    return '\xe9t\xe9'\n",
        )
        .unwrap();
        let big = format!("fn huge() {{}}\n{}", "// padding\n".repeat(200));
        write(root, "big.rs", &big);
        let limits = IndexLimits {
            max_file_size: 1000,
            ..IndexLimits::default()
        };
        let index = built(root, limits);
        assert_eq!(names_in(&index, "fine"), ["ok.rs"]);
        for gone in ["nul", "bad", "huge"] {
            assert!(index.lookup(gone).is_empty(), "{gone}");
        }
        let s = index.stats();
        assert_eq!(
            (
                s.skipped.binary,
                s.skipped.invalid_utf8,
                s.skipped.too_large,
                s.files
            ),
            (1, 1, 1, 1)
        );
        // The same checks apply to the editor's text.
        assert!(!index.update_file(&root.join("big.rs"), &big));
        assert!(!index.update_file(&root.join("ok.rs"), "fn a() {}\0"));
        assert!(
            index.lookup("fine").is_empty(),
            "a rejected update drops the old entries"
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_root_are_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "lib.rs", "pub fn outside_fn() {}\n");
        write(outside.path(), "pkg/mod.py", "def outside_py(): pass\n");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "main.rs", "fn inside() {}\n");
        std::os::unix::fs::symlink(outside.path().join("lib.rs"), root.join("link.rs")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("pkg"), root.join("pkgdir")).unwrap();
        let index = built(root, IndexLimits::default());
        assert_eq!(names_in(&index, "inside"), ["main.rs"]);
        assert!(index.lookup("outside_fn").is_empty());
        assert!(index.lookup("outside_py").is_empty());
        assert_eq!(index.stats().skipped.symlink, 2);
        // Nor through the editor: the link resolves outside every root.
        assert!(!index.update_file(&root.join("link.rs"), "pub fn outside_fn() {}\n"));
        assert!(index.lookup("outside_fn").is_empty());
        // A file outside every root is not indexed either.
        assert!(!index.update_file(&outside.path().join("lib.rs"), "pub fn outside_fn() {}\n"));
        assert!(index.lookup("outside_fn").is_empty());
    }

    #[test]
    fn limits_are_respected() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for i in 0..5 {
            write(
                root,
                &format!("f{i}.rs"),
                &format!("fn a{i}() {{}}\nfn b{i}() {{}}\nfn c{i}() {{}}\n"),
            );
        }
        let index = built(
            root,
            IndexLimits {
                max_files: 3,
                ..IndexLimits::default()
            },
        );
        let s = index.stats();
        assert_eq!((s.files, s.definitions, s.truncated), (3, 9, true));
        // Files are walked in name order: the first three are in.
        assert_eq!(index.lookup("a2").len(), 1);
        assert!(index.lookup("a3").is_empty());

        let index = built(
            root,
            IndexLimits {
                max_definitions: 7,
                ..IndexLimits::default()
            },
        );
        let s = index.stats();
        assert_eq!((s.definitions, s.truncated), (7, true));
        assert!(s.skipped.over_limit >= 1);

        let index = built(
            root,
            IndexLimits {
                max_bytes: 1200,
                ..IndexLimits::default()
            },
        );
        let s = index.stats();
        assert!(
            s.bytes <= 1200 && s.definitions > 0 && s.definitions < 15,
            "{s:?}"
        );
        assert!(s.truncated);

        // Snippets: whole when short, cut to the line and byte caps when long.
        let body: String = (0..40).map(|i| format!("    let v{i} = {i};\n")).collect();
        let long =
            format!("fn long(a: u8) -> u8 {{\n{body}    a\n}}\n\nfn short() -> u8 {{\n    1\n}}\n");
        let src_dir = tempfile::tempdir().unwrap();
        write(src_dir.path(), "long.rs", &long);
        let limits = IndexLimits {
            snippet_max_lines: 12,
            snippet_max_bytes: 600,
            ..IndexLimits::default()
        };
        let index = built(src_dir.path(), limits);
        let d = &index.lookup("long")[0];
        assert!(d
            .snippet
            .starts_with("fn long(a: u8) -> u8 {\n    let v0 = 0;"));
        assert!(d.snippet.ends_with("\n..."));
        assert_eq!(d.snippet.lines().count(), 12);
        assert_eq!(
            index.lookup("short")[0].snippet,
            "fn short() -> u8 {\n    1\n}"
        );
        let limits = IndexLimits {
            snippet_max_bytes: 100,
            ..IndexLimits::default()
        };
        let index = built(src_dir.path(), limits);
        let d = &index.lookup("long")[0];
        assert!(
            d.snippet.len() <= 100 && d.snippet.ends_with("\n..."),
            "{:?}",
            d.snippet
        );
    }

    #[test]
    fn methods_are_dedented() {
        let dir = tempfile::tempdir().unwrap();
        let src = "class Session:\n    def request(self, method, url):\n        return send(method, url)\n";
        write(dir.path(), "s.py", src);
        let index = built(dir.path(), IndexLimits::default());
        let d = &index.lookup("request")[0];
        assert_eq!(
            d.snippet,
            "def request(self, method, url):\n    return send(method, url)"
        );
        assert_eq!((d.kind.as_str(), d.line), ("method", 1));
    }

    #[test]
    fn updates_replace_a_files_entries() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let a = write(root, "a.py", "def old(): pass\ndef kept(): pass\n");
        write(root, "b.py", "def other(): pass\n");
        let index = built(root, IndexLimits::default());
        assert_eq!(index.stats().definitions, 3);
        assert!(index.update_file(&a, "def new(): pass\ndef kept(): pass\ndef kept2(): pass\n"));
        assert!(index.lookup("old").is_empty());
        assert_eq!(names_in(&index, "new"), ["a.py"]);
        assert_eq!(names_in(&index, "kept"), ["a.py"]);
        assert_eq!(index.stats().definitions, 4);
        // The editor's version wins over the disk in a later build.
        index.spawn_build().join().unwrap();
        assert!(index.lookup("old").is_empty());
        assert_eq!(index.stats().definitions, 4);
        // A new, unsaved file under the root.
        assert!(index.update_file(&root.join("c.rs"), "struct Fresh;\n"));
        assert_eq!(names_in(&index, "Fresh"), ["c.rs"]);
        index.remove_file(&a);
        assert!(index.lookup("new").is_empty() && index.lookup("kept").is_empty());
        assert_eq!(index.stats().definitions, 2);
        let bytes = index.stats().bytes;
        index.remove_file(&root.join("b.py"));
        index.remove_file(&root.join("c.rs"));
        let s = index.stats();
        assert_eq!((s.files, s.definitions, s.bytes), (0, 0, 0));
        assert!(bytes > 0);
    }

    /// A workspace where `Config` and `helper` are defined in a few files.
    fn workspace(root: &Path) {
        write(root, "src/config.rs", "pub struct Config {\n    pub limit: u8,\n}\n\npub fn helper(c: &Config) -> u8 {\n    c.limit\n}\n");
        write(
            root,
            "src/engine/mod.rs",
            "pub struct Engine;\n\nimpl Engine {\n    pub fn run(&self) {}\n}\n",
        );
        write(root, "src/util.rs", "pub fn helper() -> u8 {\n    0\n}\n");
        write(
            root,
            "src/main.rs",
            "fn main() {\n    let c = Config { limit: 1 };\n}\n",
        );
        for i in 0..6 {
            write(
                root,
                &format!("src/n{i}.rs"),
                "pub fn new() -> u8 {\n    0\n}\n",
            );
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lookups_and_context_are_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        workspace(root);
        let a = built(root, IndexLimits::default());
        // The same workspace fed file by file in reverse order.
        let b = WorkspaceIndex::new(vec![root.to_path_buf()], IndexLimits::default());
        let mut files: Vec<PathBuf> = ignore::WalkBuilder::new(root)
            .build()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
            .map(|e| e.into_path())
            .collect();
        files.sort();
        files.reverse();
        for f in &files {
            assert!(b.update_file(f, &fs::read_to_string(f).unwrap()));
        }
        assert_eq!(names_in(&a, "helper"), ["src/config.rs", "src/util.rs"]);
        assert_eq!(a.lookup("helper"), b.lookup("helper"));

        let main = root.join("src/main.rs");
        let names = strings(&["helper", "Config", "c", "limit"]);
        let ctx = a.context_for(&main, &names, 10_000);
        assert_eq!(ctx, b.context_for(&main, &names, 10_000));
        let paths: Vec<String> = ctx
            .iter()
            .map(|c| c.path.to_string_lossy().into_owned())
            .collect();
        assert_eq!(paths, ["src/config.rs", "src/util.rs"]);
        assert_eq!(
            ctx[0].text,
            "pub struct Config {\n    pub limit: u8,\n}\n\npub fn helper(c: &Config) -> u8 {\n    c.limit\n}"
        );
        // The order of the names changes nothing when all fit.
        let reversed: Vec<String> = names.iter().rev().cloned().collect();
        assert_eq!(a.context_for(&main, &reversed, 10_000), ctx);

        // The current file's own definitions are left out.
        let cfg = root.join("src/config.rs");
        let ctx = a.context_for(&cfg, &names, 10_000);
        assert_eq!(ctx.len(), 1);
        assert_eq!(ctx[0].path, Path::new("src/util.rs"));

        // Ambiguous names (six `new`s) are left out.
        assert!(a.context_for(&main, &strings(&["new"]), 10_000).is_empty());

        // Within the budget, the first names win.
        let ctx = a.context_for(&main, &strings(&["Config", "helper"]), 60);
        let total: usize = ctx
            .iter()
            .map(|c| c.text.len() + c.path.as_os_str().len() + 4)
            .sum();
        assert!(total <= 60, "{ctx:?}");
        assert_eq!(ctx.len(), 1);
        assert!(ctx[0].text.starts_with("pub struct Config"));
        assert!(a.context_for(&main, &names, 10).is_empty());
    }

    #[test]
    fn imports_pick_the_module() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        workspace(root);
        let index = built(root, IndexLimits::default());
        let src = "use crate::util::helper;\nuse crate::n3::new;\nfn f() {}\n";
        let tree = syntax::parse(Language::Rust, src).unwrap();
        let imports = syntax::imports(Language::Rust, &tree, src);
        let main = root.join("src/main.rs");
        let ctx = index.context_for_imports(&main, &strings(&["helper"]), &imports, 10_000);
        let paths: Vec<&Path> = ctx.iter().map(|c| c.path.as_path()).collect();
        assert_eq!(paths, [Path::new("src/n3.rs"), Path::new("src/util.rs")]);
        assert_eq!(ctx[1].text, "pub fn helper() -> u8 {\n    0\n}");
    }

    #[test]
    fn lookups_run_while_the_build_does() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let body: String = (0..30)
            .map(|i| format!("def f{i}(x):\n    return x + {i}\n\n"))
            .collect();
        for i in 0..300 {
            write(
                root,
                &format!("m{i:03}.py"),
                &format!("class C{i}:\n    pass\n\n{body}"),
            );
        }
        let index = WorkspaceIndex::new(vec![root.to_path_buf()], IndexLimits::default());
        let handle = index.spawn_build();
        // Lookups that returned while the build was still running: they did
        // not wait for it.
        let mut answered_during_build = 0;
        while index.is_building() {
            let found = index.lookup("C150").len();
            let _ = index.context_for(Path::new("/nowhere.py"), &strings(&["C1", "f3"]), 2000);
            assert!(found <= 1);
            if index.is_building() {
                answered_during_build += 1;
            }
        }
        handle.join().unwrap();
        let s = index.stats();
        assert_eq!((s.files, s.definitions), (300, 300 * 31));
        assert_eq!(index.lookup("C150").len(), 1);
        assert!(answered_during_build > 0);
    }
}
