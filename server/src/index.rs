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
//!
//! Context from other files only helps when it is what the code around the
//! cursor refers to; anything else distracts the model (a file-level
//! `input = sys.stdin.readline` from an unrelated file, shown to a document
//! that defines `input` itself, made it write only blanks). So a definition
//! is picked on evidence only ([`WorkspaceIndex::context_for_file`]):
//! - never a name the current file binds, nor a builtin of its language;
//! - an imported name only from the files of the module it is imported from;
//! - any other name from a file whose module the current file imports
//!   (strong), or, where the language lets a file use its sibling modules
//!   by path (Rust's `util::helper()` after `mod util;`), from a file in the
//!   same folder (medium; not methods, which need their file evidenced);
//! - nothing else, even when the budget has room.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use tree_sitter::Parser;

use crate::syntax::Language;
use crate::syntax::{self, Import, ImportPaths};

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

/// The current file, as the cross-file context sees it (see
/// [`WorkspaceIndex::context_for_file`]).
#[derive(Debug, Clone, Copy)]
pub struct CurrentFile<'a> {
    /// Its path: its own definitions are never picked.
    pub path: &'a Path,
    pub language: Language,
    /// Names used around the cursor, most relevant first (from
    /// [`syntax::identifiers_in`]).
    pub names: &'a [String],
    /// Its imports ([`syntax::imports`]).
    pub imports: &'a [Import],
    /// The names it binds anywhere ([`syntax::bindings`]): never picked.
    pub bound: &'a HashSet<String>,
}

/// How much the current file says a definition elsewhere is the one it
/// refers to. Only `Strong` and `Medium` are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Evidence {
    /// Nothing but the name: not picked.
    Weak,
    /// A sibling module (same folder) where the language allows using one
    /// without an import.
    Medium,
    /// Imported from the module the file holds, or the file's module is
    /// imported.
    Strong,
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
/// Per module key of a file (`module_keys`): its map entry and the path's slot.
const MODULE_KEY_OVERHEAD: usize = 48;

/// Names with more definitions than this in the files the evidence points
/// to are ambiguous (`new`, `__init__`, `fmt`) and left out of the context.
const MAX_AMBIGUOUS: usize = 4;
/// At most this many definitions per name go into the context.
const MAX_PER_NAME: usize = 3;
/// At most this many names are looked at per request.
const MAX_NAMES: usize = 64;
/// Most definitions shown of a module imported whole that no name led to.
const MAX_MODULE_API: usize = 6;
/// The kinds of definition that make a module's API (not methods or fields:
/// their type comes first).
const API_KINDS: &[&str] = &["function", "class", "struct", "enum", "trait", "type", "constant", "macro"];

struct FileEntry {
    defs: Vec<Arc<IndexedDef>>,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    files: HashMap<Arc<Path>, FileEntry>,
    by_name: HashMap<String, Vec<Arc<IndexedDef>>>,
    /// Files with definitions by their stem and by their folder's name
    /// (`module_keys`): the files a module imported whole may be, found
    /// without a pass over every file on each request.
    by_module_key: HashMap<String, Vec<Arc<Path>>>,
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
        if let Some(d0) = entry.defs.first() {
            for key in module_keys(&d0.rel_path) {
                if let Some(list) = self.by_module_key.get_mut(key) {
                    list.retain(|p| **p != *path);
                    if list.is_empty() {
                        self.by_module_key.remove(key);
                    }
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
            if self.definitions + kept.len() >= limits.max_definitions || self.bytes + bytes + cost > limits.max_bytes {
                complete = false;
                break;
            }
            bytes += cost;
            kept.push(Arc::new(def));
        }
        for def in &kept {
            self.by_name.entry(def.name.clone()).or_default().push(def.clone());
        }
        if let Some(d0) = kept.first() {
            for key in module_keys(&d0.rel_path) {
                bytes += key.len() + MODULE_KEY_OVERHEAD;
                self.by_module_key.entry(key.to_string()).or_default().push(path.clone());
            }
        }
        self.definitions += kept.len();
        self.bytes += bytes;
        self.files.insert(path.clone(), FileEntry { defs: kept, bytes });
        complete
    }
}

fn def_bytes(d: &IndexedDef) -> usize {
    // The name twice: in the definition and as the map key.
    DEF_OVERHEAD + d.name.len() * 2 + d.kind.len() + d.snippet.len()
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
    let indent = if lead.bytes().all(|b| b == b' ' || b == b'\t') { lead.len() } else { 0 };
    let start = if indent > 0 { line_start } else { def.byte_range.start };
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
        let room_bytes = if last { max_bytes } else { max_bytes.saturating_sub(4) };
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
fn file_defs(parser: &mut Parser, lang: Language, path: &Arc<Path>, rel: &Arc<Path>, src: &str, limits: &IndexLimits) -> Vec<IndexedDef> {
    let Some(ts) = lang.ts_language() else {
        return Vec::new();
    };
    if parser.set_language(&ts).is_err() {
        return Vec::new();
    }
    // A file whose parse runs for seconds (tree-sitter's error recovery on
    // some texts) is left out rather than holding up the rest.
    let start = std::time::Instant::now();
    let mut over = |_: &tree_sitter::ParseState| start.elapsed() > std::time::Duration::from_secs(2);
    let mut read = |i: usize, _: tree_sitter::Point| src.as_bytes().get(i..).unwrap_or_default();
    let Some(tree) = parser.parse_with_options(&mut read, None, Some(tree_sitter::ParseOptions::new().progress_callback(&mut over))) else {
        parser.reset();
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
    /// `cloud.refuseFiles`: more secret-file patterns (see [`crate::secret_files`]).
    refuse_files: RwLock<Vec<String>>,
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
            refuse_files: RwLock::default(),
        })
    }

    /// Does this file hold credentials or keys (by its name, see
    /// [`crate::secret_files`], with `cloud.refuseFiles`)? Such files are
    /// never indexed, so nothing of them reaches a prompt.
    pub fn is_secret(&self, path: &Path) -> bool {
        let extra = self.refuse_files.read().unwrap_or_else(|e| e.into_inner());
        crate::secret_files::secret_file_pattern(&path.to_string_lossy(), &extra).is_some()
    }

    /// Sets `cloud.refuseFiles`, dropping the files already indexed that match.
    pub fn set_refuse_files(&self, patterns: Vec<String>) {
        *self.refuse_files.write().unwrap_or_else(|e| e.into_inner()) = patterns;
        let files: Vec<PathBuf> = self.read().files.keys().map(|p| p.to_path_buf()).collect();
        for f in files.iter().filter(|f| self.is_secret(f)) {
            let mut inner = self.write();
            inner.remove(f);
            inner.skipped.secret += 1;
        }
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
        std::thread::Builder::new().name("locode-index".into()).spawn(move || me.build()).expect("spawn the index thread")
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
        self.roots.iter().filter(|r| path.starts_with(r)).max_by_key(|r| r.as_os_str().len()).map(|r| r.as_path())
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
        walk.follow_links(false).require_git(false).hidden(true).parents(true).sort_by_file_name(|a, b| a.cmp(b));
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
    fn read_file(&self, path: &Path, lang: Language, len: Option<u64>) -> Result<String, Option<Skip>> {
        if self.is_secret(path) {
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
            && !self.is_secret(&path)
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
        let mut defs: Vec<IndexedDef> = inner.by_name.get(name).map(|v| v.iter().map(|d| (**d).clone()).collect()).unwrap_or_default();
        defs.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
        defs
    }

    /// Definitions to show the model for the names used near the cursor
    /// (most relevant first, e.g. from [`syntax::identifiers_in`]) in the
    /// file `current` (its language from its extension), within
    /// `budget_chars` (paths and separators counted): see
    /// [`Self::context_for_file`], without imports or bindings.
    pub fn context_for(&self, current: &Path, names: &[String], budget_chars: usize) -> Vec<Chunk> {
        self.context_for_imports(current, names, &[], budget_chars)
    }

    /// [`Self::context_for`], also using the current file's imports (see
    /// [`Self::context_for_file`]); the file's own bindings are not known
    /// here, builtins are still left out.
    pub fn context_for_imports(&self, current: &Path, names: &[String], imports: &[Import], budget_chars: usize) -> Vec<Chunk> {
        let bound = HashSet::new();
        let file = CurrentFile { path: current, language: Language::from_path(current), names, imports, bound: &bound };
        self.context_for_file(&file, budget_chars)
    }

    /// Definitions from other files of the current file's language for the
    /// names `file` uses, picked on evidence (see the module doc), within
    /// `budget_chars` (paths and separators counted):
    /// - a name `file` binds, or a builtin of its language, is never picked;
    /// - a name it imports is looked up only in the files that hold the
    ///   module it comes from (`crate::engine::Engine` -> `engine.rs`,
    ///   `engine/mod.rs` or a file under `engine/`; `from billing.tax import
    ///   f` -> `billing/tax.py`), the ones nearest the current file when
    ///   several do; none: it is not picked;
    /// - any other name is looked up in the files whose module `file`
    ///   imports (`import billing.tax`, `from billing import tax`, `use
    ///   crate::util;`, a star import) or in which an imported name was
    ///   found (strong; medium when the folders above the module are not
    ///   the current file's: another crate's `util.rs`), else, for a
    ///   language with sibling modules, in the files of the current file's
    ///   folder and of its own module's folder (medium). Methods and
    ///   attributes are resolved through a type: only picked from a file
    ///   with strong evidence. Only the best evidence found for a name
    ///   counts, from the files nearest the current file, and a name with
    ///   more than a few definitions there is ambiguous and left out.
    ///
    /// Strong picks go first, then by the order of the names (those around
    /// the cursor, then the imported ones); what does not fit is left out,
    /// and nothing weaker fills the room. One chunk per file; chunks sorted
    /// by path and definitions by line, so the same definitions always read
    /// the same and stay in the reusable start of the prompt.
    pub fn context_for_file(&self, file: &CurrentFile<'_>, budget_chars: usize) -> Vec<Chunk> {
        let current = normalize(file.path);
        let inner = self.read();
        let mut picked = self.pick(&inner, file, &current, budget_chars);
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
                chunks.push(Chunk { path: d.rel_path.to_path_buf(), text: d.snippet.clone() });
            }
            last = Some(&d.path);
        }
        chunks
    }

    /// The definitions [`Self::context_for_file`] shows, unsorted.
    fn pick(&self, inner: &Inner, file: &CurrentFile<'_>, current: &Path, budget_chars: usize) -> Vec<Arc<IndexedDef>> {
        let lang = file.language;
        let Some(grammar) = syntax::grammar(lang) else {
            return Vec::new();
        };
        let cur_rel = self.rel_path(current);
        let usable = |n: &str| !n.is_empty() && !file.bound.contains(n) && !grammar.is_builtin(n);

        // The module each imported name comes from (None: not known), and
        // the modules the file imports: each import's module, and module +
        // name (`from billing import tax`, `use crate::util;`).
        let mut module_of: HashMap<&str, Option<Vec<&str>>> = HashMap::new();
        let mut modules: Vec<Vec<&str>> = Vec::new();
        // What may be a module imported whole: an import's module when it
        // names nothing in it or binds its first segment (`import a.b`
        // binds `a`), else module + name (`from pkg import util`).
        let mut whole: Vec<Vec<&str>> = Vec::new();
        for imp in file.imports {
            let module = imp.module.as_deref().map(|m| module_segments(m, grammar.import_paths));
            if let Some(m) = module.as_ref().filter(|m| !m.is_empty()) {
                modules.push(m.clone());
                if imp.names.is_empty() || imp.names.iter().any(|n| n == m[0]) {
                    whole.push(m.clone());
                }
            }
            for n in &imp.names {
                module_of.entry(n.as_str()).or_insert_with(|| module.clone());
                let mut m = module.clone().unwrap_or_default();
                m.push(n.as_str());
                modules.push(m.clone());
                whole.push(m);
            }
        }
        let mut order: Vec<&str> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        let imported = file.imports.iter().flat_map(|i| i.names.iter());
        for n in file.names.iter().chain(imported) {
            if order.len() >= MAX_NAMES {
                break;
            }
            if usable(n) && seen.insert(n.as_str()) {
                order.push(n.as_str());
            }
        }
        // (Paths are normalized: their bytes compare.)
        let family = lang.family();
        let elsewhere = |d: &&Arc<IndexedDef>| d.path.as_os_str() != current.as_os_str() && Language::from_path(&d.path).family() == family;
        let cur_dir = cur_rel.parent().unwrap_or(Path::new(""));

        // (evidence, rank of the name, definition)
        let mut cands: Vec<(Evidence, usize, &Arc<IndexedDef>)> = Vec::new();
        // The ones nearest the current file, of those a name is found in.
        let near = |d: &Arc<IndexedDef>| shared_prefix(&d.rel_path, &cur_rel);
        // Files in which an imported name was found.
        let mut resolved: HashSet<usize> = HashSet::new();
        for (rank, name) in order.iter().enumerate() {
            let Some(module) = module_of.get(name) else {
                continue;
            };
            let (Some(module), Some(all)) = (module, inner.by_name.get(*name)) else {
                continue;
            };
            let mut found: Vec<&Arc<IndexedDef>> = all
                .iter()
                .filter(elsewhere)
                .filter(|d| {
                    if module.is_empty() {
                        // `use super::x`, `use crate::X`, `from . import x`:
                        // this folder or one above it.
                        d.rel_path.parent().is_some_and(|p| cur_dir.starts_with(p))
                    } else {
                        module_holds(&file_module(&d.rel_path), module, grammar.import_paths == ImportPaths::Packages)
                    }
                })
                .collect();
            let nearest = found.iter().map(|d| near(d)).max().unwrap_or(0);
            found.retain(|d| near(d) == nearest);
            if found.len() > MAX_AMBIGUOUS {
                continue;
            }
            for d in found {
                resolved.insert(path_id(&d.path));
                cands.push((Evidence::Strong, rank, d));
            }
        }

        let mut near_dirs: Vec<PathBuf> = Vec::new();
        if grammar.sibling_modules {
            near_dirs.push(cur_dir.to_path_buf());
            if let Some(stem) = cur_rel.file_stem().and_then(|s| s.to_str()) {
                if !grammar.folder_modules.contains(&stem) {
                    near_dirs.push(cur_dir.join(stem));
                }
            }
        }
        let cur_dir_parts: Vec<&str> = cur_dir.components().filter_map(|c| c.as_os_str().to_str()).collect();
        let mut file_evidence: HashMap<usize, Evidence> = HashMap::new();
        let mut evidence = |d: &IndexedDef| {
            *file_evidence.entry(path_id(&d.path)).or_insert_with(|| {
                if resolved.contains(&path_id(&d.path)) {
                    return Evidence::Strong;
                }
                // The file holds an imported module: strong where the
                // folders above that module are the current file's too (the
                // same crate or package), else medium (`src/` layouts,
                // another crate's file of the same name).
                let m = file_module(&d.rel_path);
                let mut best = Evidence::Weak;
                for i in modules.iter() {
                    let Some(shared) = module_tail(&m, i, grammar.import_paths == ImportPaths::Packages) else { continue };
                    if cur_dir_parts.starts_with(&m[..m.len() - shared]) {
                        return Evidence::Strong;
                    }
                    best = Evidence::Medium;
                }
                if d.rel_path.parent().is_some_and(|p| near_dirs.iter().any(|n| n == p)) {
                    best = Evidence::Medium;
                }
                best
            })
        };
        for (rank, name) in order.iter().enumerate() {
            if module_of.contains_key(name) {
                continue;
            }
            let Some(all) = inner.by_name.get(*name) else {
                continue;
            };
            let mut best = Evidence::Medium;
            let mut found: Vec<&Arc<IndexedDef>> = Vec::new();
            for d in all.iter().filter(elsewhere) {
                let mut e = evidence(d);
                // Resolved through a type: only from an evidenced file.
                if e < Evidence::Strong && matches!(d.kind.as_str(), "method" | "attribute") {
                    e = Evidence::Weak;
                }
                if e < best {
                    continue;
                }
                if e > best {
                    best = e;
                    found.clear();
                }
                found.push(d);
            }
            let nearest = found.iter().map(|d| near(d)).max().unwrap_or(0);
            found.retain(|d| near(d) == nearest);
            if found.len() > MAX_AMBIGUOUS {
                continue;
            }
            cands.extend(found.into_iter().map(|d| (best, rank, d)));
        }

        cands.sort_by(|a, b| {
            b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then_with(|| (&a.2.rel_path, &a.2.path, a.2.line).cmp(&(&b.2.rel_path, &b.2.path, b.2.line)))
        });
        // A module the file imports whole (`import util`, `use crate::util;`)
        // that no name led to yet: its top-level API (functions, types), in
        // line order, after every name and within what the budget leaves.
        // `util.` is where its names are about to be written.
        let named: HashSet<usize> = cands.iter().map(|c| path_id(&c.2.path)).collect();
        let mut api_files: Vec<&FileEntry> = Vec::new();
        let lasts: HashSet<&str> = whole.iter().filter_map(|m| m.last().copied()).collect();
        // A cheap test first, through the index of module keys: the
        // module's last segment names the file or its folder.
        let mut seen_files: HashSet<usize> = HashSet::new();
        for path in lasts.iter().filter_map(|l| inner.by_module_key.get(*l)).flatten() {
            let Some(entry) = inner.files.get(path).filter(|_| seen_files.insert(path_id(path))) else { continue };
            let Some(d0) = entry.defs.first() else { continue };
            let fm = file_module(&d0.rel_path);
            let strong = whole.iter().any(|m| {
                module_tail(&fm, m, grammar.import_paths == ImportPaths::Packages)
                    .is_some_and(|n| cur_dir_parts.starts_with(&fm[..fm.len() - n]))
            });
            if strong && elsewhere(&d0) && !named.contains(&path_id(path)) {
                api_files.push(entry);
            }
        }
        // (The same order on every call: the prompt stays the same.)
        api_files.sort_by_key(|f| f.defs.first().map(|d| d.rel_path.clone()));
        let api = api_files.iter().flat_map(|f| {
            let mut defs: Vec<&Arc<IndexedDef>> =
                f.defs.iter().filter(|d| API_KINDS.contains(&d.kind.as_str()) && usable(&d.name)).collect();
            defs.sort_by_key(|d| d.line);
            defs.into_iter().take(MAX_MODULE_API)
        });
        let cands = cands.into_iter().chain(api.enumerate().map(|(i, d)| (Evidence::Strong, MAX_NAMES + i, d)));

        let mut picked: Vec<Arc<IndexedDef>> = Vec::new();
        let mut files: HashSet<&Path> = HashSet::new();
        let mut used = 0usize;
        let mut per_name = (usize::MAX, 0usize);
        for (_, rank, d) in cands {
            if per_name.0 != rank {
                per_name = (rank, 0);
            }
            if per_name.1 >= MAX_PER_NAME || picked.iter().any(|p| Arc::ptr_eq(p, d)) {
                continue;
            }
            per_name.1 += 1;
            let mut cost = d.snippet.len() + 2;
            if !files.contains(&*d.path) {
                cost += d.rel_path.as_os_str().len() + 2;
            }
            if used + cost > budget_chars {
                continue;
            }
            used += cost;
            files.insert(&d.path);
            picked.push(d.clone());
        }
        picked
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

/// The segments of an import's module path that name files or folders:
/// `crate::engine` -> `[engine]`, `..util.text` -> `[util, text]`,
/// `./lib/util.js` -> `[lib, util]`, `util.h` -> `[util]`,
/// `example.com/app/util` -> `[example.com, app, util]`.
fn module_segments(module: &str, paths: ImportPaths) -> Vec<&str> {
    let parts: Vec<&str> = match paths {
        ImportPaths::Modules => module.split([':', '.']).collect(),
        ImportPaths::Packages => module.split('/').collect(),
        ImportPaths::Files => {
            // A file name's extension is not a segment.
            let module = match module.rsplit_once('.') {
                Some((stem, ext)) if is_source_extension(ext) && !stem.is_empty() && !stem.ends_with(['.', '/']) => stem,
                _ => module,
            };
            module.split(['/', '\\']).collect()
        }
    };
    parts.into_iter().filter(|s| !s.is_empty() && !matches!(*s, "crate" | "self" | "super" | "." | "..")).collect()
}

fn is_source_extension(ext: &str) -> bool {
    syntax::GRAMMARS.iter().any(|g| g.extensions.contains(&ext))
}

/// How many trailing segments of a file's module `file` match an import's
/// module `import`: all of `import` (the file's module ends with it:
/// `src/billing/tax.py` for `billing.tax`), or, with `import_path_prefix`
/// (Go), all of `file` where the import ends with it (`pkg/util` for
/// `example.com/app/pkg/util`). None when they do not match.
fn module_tail(file: &[&str], import: &[&str], import_path_prefix: bool) -> Option<usize> {
    if file.ends_with(import) {
        Some(import.len())
    } else if import_path_prefix && !file.is_empty() && import.ends_with(file) {
        Some(file.len())
    } else {
        None
    }
}

/// Does a file of module `file` hold what is imported from `module`?
fn module_holds(file: &[&str], module: &[&str], import_path_prefix: bool) -> bool {
    file.windows(module.len()).any(|w| w == module) || (import_path_prefix && module_tail(file, module, true).is_some())
}

/// The module a file holds, as path segments: its folders and stem, less a
/// stem that stands for its folder (`src/engine/mod.rs` -> `[src, engine]`,
/// `billing/tax.py` -> `[billing, tax]`). Empty for a path that is not UTF-8.
fn file_module(rel: &Path) -> Vec<&str> {
    let mut parts: Vec<&str> = Vec::new();
    if let Some(dir) = rel.parent() {
        for c in dir.components() {
            match c.as_os_str().to_str() {
                Some(s) => parts.push(s),
                None => return Vec::new(),
            }
        }
    }
    let Some(stem) = rel.file_stem().and_then(|s| s.to_str()) else {
        return Vec::new();
    };
    let folder = syntax::grammar(Language::from_path(rel)).is_some_and(|g| g.folder_is_module || g.folder_modules.contains(&stem));
    if !folder {
        parts.push(stem);
    }
    parts
}

/// The keys a file is found by for a module imported whole: its stem and
/// its folder's name (one key when they are the same; none for a path that
/// is not UTF-8).
fn module_keys(rel: &Path) -> impl Iterator<Item = &str> {
    let stem = rel.file_stem().and_then(|s| s.to_str()).filter(|s| !s.is_empty());
    let folder = rel.parent().and_then(|p| p.file_name()).and_then(|s| s.to_str()).filter(|f| Some(*f) != stem);
    stem.into_iter().chain(folder)
}

/// How many leading folders two paths share.
fn shared_prefix(a: &Path, b: &Path) -> usize {
    let (a, b) = (a.parent().unwrap_or(a), b.parent().unwrap_or(b));
    a.components().zip(b.components()).take_while(|(x, y)| x == y).count()
}

/// A file's identity for the length of a lookup: its path's allocation
/// (shared by all its definitions).
fn path_id(p: &Arc<Path>) -> usize {
    Arc::as_ptr(p) as *const u8 as usize
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
        index.lookup(name).into_iter().map(|d| d.rel_path.to_string_lossy().replace('\\', "/")).collect()
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
            assert!(index.lookup(gone).is_empty(), "{gone} should not be indexed");
        }
        let s = index.stats();
        assert_eq!((s.files, s.definitions, s.building), (2, 2, false));
        assert!(s.build_time.is_some());
    }

    #[test]
    fn secret_looking_files_are_skipped() {
        // The names themselves: `secret_files`' tests.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "app/secrets.py", "API_KEY = 'x'\ndef leaked(): pass\n");
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
        // `cloud.refuseFiles` counts too, for files already indexed and for edits.
        assert!(index.update_file(&root.join("app/Prod_Settings.py"), "def leaked4(): pass\n"));
        assert_eq!(index.lookup("leaked4").len(), 1);
        index.set_refuse_files(vec!["prod_*.py".into()]);
        assert!(index.lookup("leaked4").is_empty());
        assert!(!index.update_file(&root.join("app/Prod_Settings.py"), "def leaked4(): pass\n"));
        assert_eq!(index.lookup("main").len(), 1);
    }

    #[test]
    fn binary_invalid_utf8_and_huge_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "ok.rs", "fn fine() {}\n");
        fs::write(root.join("bin.rs"), b"fn nul() {}\n\0\0\x01").unwrap();
        fs::write(root.join("latin1.py"), b"def bad():\n    return '\xe9t\xe9'\n").unwrap();
        let big = format!("fn huge() {{}}\n{}", "// padding\n".repeat(200));
        write(root, "big.rs", &big);
        let limits = IndexLimits { max_file_size: 1000, ..IndexLimits::default() };
        let index = built(root, limits);
        assert_eq!(names_in(&index, "fine"), ["ok.rs"]);
        for gone in ["nul", "bad", "huge"] {
            assert!(index.lookup(gone).is_empty(), "{gone}");
        }
        let s = index.stats();
        assert_eq!((s.skipped.binary, s.skipped.invalid_utf8, s.skipped.too_large, s.files), (1, 1, 1, 1));
        // The same checks apply to the editor's text.
        assert!(!index.update_file(&root.join("big.rs"), &big));
        assert!(!index.update_file(&root.join("ok.rs"), "fn a() {}\0"));
        assert!(index.lookup("fine").is_empty(), "a rejected update drops the old entries");
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
            write(root, &format!("f{i}.rs"), &format!("fn a{i}() {{}}\nfn b{i}() {{}}\nfn c{i}() {{}}\n"));
        }
        let index = built(root, IndexLimits { max_files: 3, ..IndexLimits::default() });
        let s = index.stats();
        assert_eq!((s.files, s.definitions, s.truncated), (3, 9, true));
        // Files are walked in name order: the first three are in.
        assert_eq!(index.lookup("a2").len(), 1);
        assert!(index.lookup("a3").is_empty());

        let index = built(root, IndexLimits { max_definitions: 7, ..IndexLimits::default() });
        let s = index.stats();
        assert_eq!((s.definitions, s.truncated), (7, true));
        assert!(s.skipped.over_limit >= 1);

        let index = built(root, IndexLimits { max_bytes: 1200, ..IndexLimits::default() });
        let s = index.stats();
        assert!(s.bytes <= 1200 && s.definitions > 0 && s.definitions < 15, "{s:?}");
        assert!(s.truncated);

        // Snippets: whole when short, cut to the line and byte caps when long.
        let body: String = (0..40).map(|i| format!("    let v{i} = {i};\n")).collect();
        let long = format!("fn long(a: u8) -> u8 {{\n{body}    a\n}}\n\nfn short() -> u8 {{\n    1\n}}\n");
        let src_dir = tempfile::tempdir().unwrap();
        write(src_dir.path(), "long.rs", &long);
        let limits = IndexLimits { snippet_max_lines: 12, snippet_max_bytes: 600, ..IndexLimits::default() };
        let index = built(src_dir.path(), limits);
        let d = &index.lookup("long")[0];
        assert!(d.snippet.starts_with("fn long(a: u8) -> u8 {\n    let v0 = 0;"));
        assert!(d.snippet.ends_with("\n..."));
        assert_eq!(d.snippet.lines().count(), 12);
        assert_eq!(index.lookup("short")[0].snippet, "fn short() -> u8 {\n    1\n}");
        let limits = IndexLimits { snippet_max_bytes: 100, ..IndexLimits::default() };
        let index = built(src_dir.path(), limits);
        let d = &index.lookup("long")[0];
        assert!(d.snippet.len() <= 100 && d.snippet.ends_with("\n..."), "{:?}", d.snippet);
    }

    #[test]
    fn methods_are_dedented() {
        let dir = tempfile::tempdir().unwrap();
        let src = "class Session:\n    def request(self, method, url):\n        return send(method, url)\n";
        write(dir.path(), "s.py", src);
        let index = built(dir.path(), IndexLimits::default());
        let d = &index.lookup("request")[0];
        assert_eq!(d.snippet, "def request(self, method, url):\n    return send(method, url)");
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
        write(root, "src/engine/mod.rs", "pub struct Engine;\n\nimpl Engine {\n    pub fn run(&self) {}\n}\n");
        write(root, "src/util.rs", "pub fn helper() -> u8 {\n    0\n}\n");
        write(root, "src/main.rs", "fn main() {\n    let c = Config { limit: 1 };\n}\n");
        for i in 0..6 {
            write(root, &format!("src/n{i}.rs"), "pub fn new() -> u8 {\n    0\n}\n");
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
        let paths: Vec<String> = ctx.iter().map(|c| c.path.to_string_lossy().into_owned()).collect();
        assert_eq!(paths, ["src/config.rs", "src/util.rs"]);
        assert_eq!(ctx[0].text, "pub struct Config {\n    pub limit: u8,\n}\n\npub fn helper(c: &Config) -> u8 {\n    c.limit\n}");
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
        let total: usize = ctx.iter().map(|c| c.text.len() + c.path.as_os_str().len() + 4).sum();
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

    /// What the cross-file context picks for the document `src` at `rel`
    /// (its names, imports and bindings, gathered as `complete::cross_file`
    /// does, from the whole document): `path: first line` of each pick.
    fn picks(index: &WorkspaceIndex, root: &Path, rel: &str, src: &str) -> Vec<String> {
        let lang = Language::from_path(Path::new(rel));
        let tree = syntax::parse(lang, src).unwrap();
        let names = syntax::identifiers_in(lang, &tree, src, 0..src.len());
        let imports = syntax::imports(lang, &tree, src);
        let bound = syntax::bindings(lang, &tree, src);
        let path = root.join(rel);
        let file = CurrentFile { path: &path, language: lang, names: &names, imports: &imports, bound: &bound };
        let chunks = index.context_for_file(&file, 100_000);
        // The snippets of a chunk, each starting at column 0 after a blank line.
        let mut out = Vec::new();
        for c in &chunks {
            for part in c.text.split("\n\n").filter(|p| !p.starts_with([' ', '\t'])) {
                out.push(format!("{}: {}", c.path.to_string_lossy().replace('\\', "/"), part.lines().next().unwrap_or("")));
            }
        }
        out
    }

    #[test]
    fn unrelated_files_give_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // Other tasks' files in the same folder, each defining common names.
        write(root, "task_0.py", "import sys\ninput = sys.stdin.readline\n\n\ndef helper(xs):\n    return sorted(xs)\n\n\ndef solve(n):\n    count = 0\n    for i in range(n):\n        count += i\n    return count\n\n\ndef main():\n    print(solve(int(input())))\n");
        write(root, "task_1.py", "from typing import List\n\n\ndef count(s: str) -> int:\n    return len(s)\n\n\ndef helper(a, b):\n    return a + b\n\n\nclass Solver:\n    def solve(self, xs):\n        return max(xs)\n\n\ndef main():\n    pass\n");
        write(root, "task_2.py", "import sys\n\ninput = sys.stdin.readline\ntotal = 0\n\n\ndef parse(line):\n    return list(map(int, line.split()))\n\n\nif __name__ == \"__main__\":\n    main()\n");
        let index = built(root, IndexLimits::default());
        assert!(index.lookup("input").len() == 2 && index.lookup("helper").len() == 2);

        // Defines `input`, `solve`, `main`, `count` itself; uses `helper`,
        // `total` and `parse` without importing them.
        let doc = "import sys\nfrom typing import List\n\ninput = sys.stdin.readline\n\n\ndef solve(nums: List[int]) -> int:\n    count = 0\n    for x in nums:\n        if helper(x) and total:\n            count += parse(x)\n    return count\n\n\ndef main():\n    n = int(input())\n    print(solve(list(map(int, input().split()))))\n";
        assert_eq!(picks(&index, root, "task_3.py", doc), Vec::<String>::new());
        // The same through the names alone (no bindings known): still nothing,
        // an un-imported Python name cannot come from another file.
        let names = strings(&["input", "helper", "solve", "count", "main", "total", "parse"]);
        assert!(index.context_for(&root.join("task_3.py"), &names, 10_000).is_empty());
    }

    #[test]
    fn python_imported_names_come_from_their_module_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "shop/billing/tax.py", "def compute_tax(amount, rate):\n    return round(amount * rate, 2)\n\n\nclass Calculator:\n    def rate(self, region):\n        return 0.2\n\n\ndef unrelated():\n    pass\n");
        write(root, "shop/billing/__init__.py", "VERSION = 1\n");
        write(root, "legacy/tax2.py", "def compute_tax(amount):\n    return amount\n");
        write(root, "shop/other.py", "def compute_tax(a, b, c):\n    pass\n\n\nclass Other:\n    def rate(self):\n        return 1\n");
        write(
            root,
            "shop/compat.py",
            "import sys\ninput = sys.stdin.readline\n\n\ndef len(x):\n    return 0\n\n\ndef shout(s):\n    return s.upper()\n",
        );
        let index = built(root, IndexLimits::default());
        let tax = "shop/billing/tax.py: def compute_tax(amount, rate):";
        let calc = "shop/billing/tax.py: class Calculator:";
        let rate = "shop/billing/tax.py: def rate(self, region):";
        for (doc, expected) in [
            // An imported name: from its module's file only.
            ("from shop.billing.tax import compute_tax\n\ndef total(a):\n    return a + compute_tax(a, 0.2)\n", vec![tax]),
            // The module imported, the name used through it; a method of a
            // class of that module is resolved there too, not in other.py.
            ("from shop.billing import tax\n\ndef total(a, c):\n    return tax.compute_tax(a, c.rate(1))\n", vec![tax, rate]),
            ("import shop.billing.tax\n\ndef total(a):\n    return shop.billing.tax.compute_tax(a, 0.2)\n", vec![tax]),
            // A star import counts as importing the module.
            ("from shop.billing.tax import *\n\ndef total(a):\n    return compute_tax(a, Calculator().rate(1))\n", vec![tax, calc, rate]),
            // A module with no file here: nothing, not any file's `compute_tax`.
            ("from vendor.tax import compute_tax\n\ndef total(a):\n    return compute_tax(a, 0.2)\n", vec![]),
            // Imported but defined here too: the file's own wins.
            ("from shop.billing.tax import compute_tax\n\ndef compute_tax(a, r):\n    return 0\n", vec![]),
            // Builtins are never picked, imported or not, though compat.py
            // defines them; the module's other names still are.
            ("from shop.compat import input, len, shout\n\nn = len(input())\nprint(shout(n))\n", vec!["shop/compat.py: def shout(s):"]),
            // A module imported whole that no name leads to: its API (less
            // the builtins), for the `compat.` about to be written.
            ("import shop.compat\n\nn = len(input())\n", vec!["shop/compat.py: def shout(s):"]),
        ] {
            assert_eq!(picks(&index, root, "shop/main.py", doc), strings(&expected), "{doc}");
        }
    }

    #[test]
    fn a_module_imported_whole_shows_its_api() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "impl_7.py", "import math\n\n\ndef _kernel_7(b, a):\n    return math.gcd(a, b)\n\n\ndef _other(x):\n    return x\n");
        write(root, "pkg/util.py", "def helper(x, *, strict):\n    return x\n\n\nclass Cache:\n    def get(self, k):\n        return k\n");
        write(root, "pkg/noise.py", "def helper(y):\n    return y\n");
        write(root, "src/util.rs", "pub fn helper(limit: u8, name: &str) -> u8 {\n    limit\n}\n");
        let index = built(root, IndexLimits::default());
        for (rel, doc, expected) in [
            // Nothing of it is named yet: its functions, in line order.
            (
                "task_7.py",
                "import impl_7\n\n\ndef gcd(a, b):\n    \"\"\"The gcd.\"\"\"\n    \n",
                vec!["impl_7.py: def _kernel_7(b, a):", "impl_7.py: def _other(x):"],
            ),
            // A module imported by name from its package: its API (not methods).
            ("pkg/main.py", "from pkg import util\n\nx = 1\n", vec!["pkg/util.py: def helper(x, *, strict):", "pkg/util.py: class Cache:"]),
            // A name already leads to it: that name only.
            ("pkg/main.py", "from pkg import util\n\nx = util.helper(1)\n", vec!["pkg/util.py: def helper(x, *, strict):"]),
            // Rust: `use crate::util;`.
            ("src/main.rs", "use crate::util;\n\nfn main() {\n}\n", vec!["src/util.rs: pub fn helper(limit: u8, name: &str) -> u8 {"]),
            // An imported name is not a module: nothing.
            ("pkg/main.py", "from pkg.util import Cache\n\nclass C(Cache):\n    pass\n", vec!["pkg/util.py: class Cache:"]),
        ] {
            assert_eq!(picks(&index, root, rel, doc), strings(&expected), "{doc}");
        }
    }

    #[test]
    fn a_module_imported_whole_follows_edits_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "pkg/util.py", "def helper(x):\n    return x\n");
        // Found by its folder's name, not its stem.
        write(root, "lib/text/__init__.py", "def shout(s):\n    return s.upper()\n");
        let index = built(root, IndexLimits::default());
        let doc = "from pkg import util\nimport lib.text\n\nx = 1\n";
        let both = ["lib/text/__init__.py: def shout(s):", "pkg/util.py: def helper(x):"];
        assert_eq!(picks(&index, root, "pkg/main.py", doc), strings(&both));
        // Edited: the new API, once.
        assert!(index.update_file(&root.join("pkg/util.py"), "def helper2(x):\n    return x\n"));
        assert_eq!(picks(&index, root, "pkg/main.py", doc), strings(&[both[0], "pkg/util.py: def helper2(x):"]));
        // No definitions left, then removed: nothing of it.
        assert!(index.update_file(&root.join("pkg/util.py"), "x = 1\n"));
        assert_eq!(picks(&index, root, "pkg/main.py", doc), strings(&both[..1]));
        assert!(index.update_file(&root.join("pkg/util.py"), "def helper(x):\n    return x\n"));
        index.remove_file(&root.join("lib/text/__init__.py"));
        assert_eq!(picks(&index, root, "pkg/main.py", doc), strings(&both[1..]));
        // Nothing stale left behind: `pkg/util.py` once, `text` gone.
        let mut keys: Vec<(String, usize)> = index.read().by_module_key.iter().map(|(k, v)| (k.clone(), v.len())).collect();
        keys.sort();
        assert_eq!(keys, [("pkg".to_string(), 1), ("util".to_string(), 1)]);
    }

    #[test]
    fn typescript_and_javascript_picks_follow_relative_imports() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "src/lib/users.ts", "export interface User {\n  name: string;\n}\n\nexport function findUser(id: number): User {\n  return { name: String(id) };\n}\n");
        write(root, "src/lib/format.js", "function shout(s) {\n  return s.toUpperCase();\n}\n\nmodule.exports = { shout };\n");
        write(root, "src/lib/index.ts", "export const VERSION = 1;\n");
        write(root, "other/users.ts", "export function findUser(name: string) {\n  return null;\n}\n");
        let index = built(root, IndexLimits::default());
        let find = "src/lib/users.ts: function findUser(id: number): User {";
        let user = "src/lib/users.ts: interface User {";
        let shout = "src/lib/format.js: function shout(s) {";
        for (rel, doc, expected) in [
            // An imported name from the file its relative path names.
            ("src/app.ts", "import { findUser } from './lib/users';\n\nconst u = findUser(1);\n", vec![find]),
            // With the extension, from a folder below; a type too.
            // (`name`, a property of the imported interface, comes with it.)
            ("src/ui/view.tsx", "import { findUser, User } from '../lib/users.ts';\n\nexport function View(u: User) {\n  return <p>{findUser(1).name}</p>;\n}\n", vec![user, "src/lib/users.ts: name: string", find]),
            // A module imported whole: the names used through it.
            ("src/app.ts", "import * as users from './lib/users';\n\nconst u = users.findUser(1);\n", vec![find]),
            // TypeScript requiring a JavaScript file: one family.
            ("src/app.ts", "const { shout } = require('./lib/format');\n\nshout('a');\n", vec![shout]),
            ("src/app.js", "const fmt = require('./lib/format.js');\n\nfmt.shout('a');\n", vec![shout]),
            // A folder's index file stands for the folder.
            ("src/app.ts", "import { VERSION } from './lib';\n\nconsole.log(VERSION);\n", vec!["src/lib/index.ts: const VERSION = 1;"]),
            // Not imported: nothing, though two files define it.
            ("src/app.ts", "const u = findUser(1);\n", vec![]),
        ] {
            assert_eq!(picks(&index, root, rel, doc), strings(&expected), "{doc}");
        }
    }

    #[test]
    fn go_picks_follow_packages() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "go.mod", "module example.com/app\n");
        write(root, "pkg/util/strings.go", "package util\n\nfunc Clean(s string) string {\n\treturn s\n}\n");
        write(root, "pkg/util/nums.go", "package util\n\nfunc Double(n int) int {\n\treturn n * 2\n}\n");
        write(root, "cmd/server/routes.go", "package main\n\nfunc routes() []string {\n\treturn nil\n}\n");
        write(root, "vendorish/util/strings.go", "package util\n\nfunc Clean(s string) string {\n\treturn \"\"\n}\n");
        let index = built(root, IndexLimits::default());
        let clean = "pkg/util/strings.go: func Clean(s string) string {";
        let double = "pkg/util/nums.go: func Double(n int) int {";
        for (rel, doc, expected) in [
            // A package is a folder, named by its import path's tail.
            // (The package is imported whole: the API of its other files follows.)
            ("cmd/server/main.go", "package main\n\nimport (\n\t\"fmt\"\n\t\"example.com/app/pkg/util\"\n)\n\nfunc main() {\n\tfmt.Println(util.Clean(\"a\"))\n}\n", vec![double, clean]),
            // Renamed.
            ("cmd/server/main.go", "package main\n\nimport u \"example.com/app/pkg/util\"\n\nfunc main() {\n\tu.Double(2)\n}\n", vec![double]),
            // A file of the same package needs no import.
            ("cmd/server/main.go", "package main\n\nfunc main() {\n\t_ = routes()\n}\n", vec!["cmd/server/routes.go: func routes() []string {"]),
            // Not imported, another package: nothing.
            ("cmd/server/main.go", "package main\n\nfunc main() {\n\tClean(\"a\")\n}\n", vec![]),
        ] {
            assert_eq!(picks(&index, root, rel, doc), strings(&expected), "{doc}");
        }
    }

    #[test]
    fn c_and_cpp_picks_follow_includes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "src/geom.h", "#pragma once\n\nstruct point {\n    int x, y;\n};\n\nint dist2(struct point a, struct point b);\n");
        write(root, "src/shape.hpp", "class Shape {\npublic:\n    virtual double area() const = 0;\n};\n");
        write(root, "lib/other.c", "int dist2(int a, int b) {\n    return a - b;\n}\n");
        let index = built(root, IndexLimits::default());
        let dist = "src/geom.h: int dist2(struct point a, struct point b);";
        for (rel, doc, expected) in [
            // A C file: the header it includes (read as C++, one family).
            ("src/main.c", "#include <stdio.h>\n#include \"geom.h\"\n\nint main(void) {\n    return dist2(p, q);\n}\n", vec![dist]),
            ("src/main.cpp", "#include \"shape.hpp\"\n\nclass Square : public Shape {\n};\n", vec!["src/shape.hpp: class Shape {"]),
            // Not included: nothing.
            ("src/main.c", "int main(void) {\n    return dist2(1, 2);\n}\n", vec![]),
        ] {
            assert_eq!(picks(&index, root, rel, doc), strings(&expected), "{doc}");
        }
    }

    #[test]
    fn java_picks_follow_packages_and_imports() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let base = "src/main/java/com/acme";
        write(root, &format!("{base}/util/Strings.java"), "package com.acme.util;\n\npublic class Strings {\n    public static String shout(String s) {\n        return s.toUpperCase();\n    }\n}\n");
        write(root, &format!("{base}/shop/Item.java"), "package com.acme.shop;\n\npublic record Item(String name, int price) {}\n");
        write(root, "legacy/Strings.java", "public class Strings {\n}\n");
        let index = built(root, IndexLimits::default());
        let strings_class = "src/main/java/com/acme/util/Strings.java: public class Strings {";
        let shout = "src/main/java/com/acme/util/Strings.java: public static String shout(String s) {";
        for (doc, expected) in [
            // An imported class, from its package's folder.
            ("package com.acme.shop;\n\nimport com.acme.util.Strings;\n\nclass Cart {\n    String f() { return Strings.shout(\"a\"); }\n}\n", vec![strings_class, shout]),
            // A class of the same package needs no import.
            ("package com.acme.shop;\n\nclass Cart {\n    Item first;\n}\n", vec!["src/main/java/com/acme/shop/Item.java: public record Item(String name, int price) {}"]),
        ] {
            assert_eq!(picks(&index, root, &format!("{base}/shop/Cart.java"), doc), strings(&expected), "{doc}");
        }
    }

    #[test]
    fn module_paths_per_language() {
        assert_eq!(module_segments("crate::engine::Engine", ImportPaths::Modules), ["engine", "Engine"]);
        assert_eq!(module_segments("..util.text", ImportPaths::Modules), ["util", "text"]);
        assert_eq!(module_segments("./lib/util.js", ImportPaths::Files), ["lib", "util"]);
        assert_eq!(module_segments("../a/b", ImportPaths::Files), ["a", "b"]);
        assert_eq!(module_segments("util.h", ImportPaths::Files), ["util"]);
        assert_eq!(module_segments("lodash.merge", ImportPaths::Files), ["lodash.merge"]);
        assert_eq!(module_segments("example.com/app/pkg/util", ImportPaths::Packages), ["example.com", "app", "pkg", "util"]);
        assert_eq!(file_module(Path::new("pkg/util/strings.go")), ["pkg", "util"]);
        assert_eq!(file_module(Path::new("src/lib/index.ts")), ["src", "lib"]);
        assert_eq!(module_tail(&["pkg", "util"], &["example.com", "app", "pkg", "util"], true), Some(2));
        assert_eq!(module_tail(&["pkg", "util"], &["example.com", "app", "pkg", "util"], false), None);
    }

    #[test]
    fn rust_picks_need_a_use_a_mod_or_a_sibling() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "src/config.rs", "pub struct Config {\n    pub limit: u8,\n}\n\nimpl Config {\n    pub fn new() -> Self {\n        Config { limit: 1 }\n    }\n\n    pub fn limit(&self) -> u8 {\n        self.limit\n    }\n}\n");
        write(root, "src/util.rs", "pub fn helper() -> u8 {\n    0\n}\n");
        write(root, "src/engine/mod.rs", "pub struct Engine;\n\nimpl Engine {\n    pub fn run(&self) {}\n}\n");
        write(root, "src/other.rs", "pub struct Other;\n\nimpl Other {\n    pub fn run(&self) {}\n}\n\npub fn push(v: u8) {}\n");
        // Another crate with the same file and function names.
        write(root, "tools/gen/src/util.rs", "pub fn helper() -> u8 {\n    1\n}\n\npub fn limit() -> u8 {\n    2\n}\n");
        write(root, "tools/gen/src/config.rs", "pub struct Config;\n");
        let index = built(root, IndexLimits::default());
        let config = [
            "src/config.rs: pub struct Config {",
            "src/config.rs: impl Config {",
            "src/config.rs: pub fn new() -> Self {",
            "src/config.rs: pub fn limit(&self) -> u8 {",
        ];
        let helper = "src/util.rs: pub fn helper() -> u8 {";
        let run = "src/engine/mod.rs: pub fn run(&self) {}";
        for (doc, expected) in [
            // `use` of a type: the type and its methods from its file.
            ("use crate::config::Config;\n\nfn main() {\n    let cfg = Config::new();\n    let n = cfg.limit();\n}\n", config.to_vec()),
            // `mod util;`: a sibling module used by path (medium).
            ("mod util;\n\nfn main() {\n    let n = util::helper();\n}\n", vec![helper]),
            // `use crate::util;`: the module imported (strong); not the
            // other crate's util.rs.
            ("use crate::util;\n\nfn main() {\n    let n = util::helper();\n}\n", vec![helper]),
            // A method needs its file evidenced: none for `run` here ...
            ("fn main(e: &Thing) {\n    e.run();\n}\n", vec![]),
            // ... the engine's once its type is imported.
            ("use crate::engine::Engine;\n\nfn main(e: &Engine) {\n    e.run();\n}\n", vec!["src/engine/mod.rs: pub struct Engine;", "src/engine/mod.rs: impl Engine {", run]),
            // Builtins and the file's own bindings: nothing, though
            // other.rs defines `push` and util.rs `helper`.
            ("fn main() {\n    let mut v: Vec<u8> = Vec::new();\n    v.push(helper());\n    println!(\"{}\", v.len());\n}\n\nfn helper() -> u8 {\n    0\n}\n", vec![]),
        ] {
            assert_eq!(picks(&index, root, "src/main.rs", doc), strings(&expected), "{doc}");
        }
        // From the other crate: its own util.rs and config.rs, not src/'s.
        let doc = "mod util;\nuse crate::config::Config;\n\nfn main() {\n    let n = util::helper() + limit();\n    let c = Config;\n}\n";
        assert_eq!(
            picks(&index, root, "tools/gen/src/main.rs", doc),
            strings(&[
                "tools/gen/src/config.rs: pub struct Config;",
                "tools/gen/src/util.rs: pub fn helper() -> u8 {",
                "tools/gen/src/util.rs: pub fn limit() -> u8 {"
            ])
        );
    }

    #[test]
    fn lookups_run_while_the_build_does() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let body: String = (0..30).map(|i| format!("def f{i}(x):\n    return x + {i}\n\n")).collect();
        for i in 0..300 {
            write(root, &format!("m{i:03}.py"), &format!("class C{i}:\n    pass\n\n{body}"));
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
