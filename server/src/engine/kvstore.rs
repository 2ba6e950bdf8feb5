//! Prompt KV states kept on disk between runs: a document's slot is saved
//! when it is evicted, when the document closes and at shutdown, and a later
//! request (after an editor restart, say) whose prompt starts with the same
//! tokens loads it instead of evaluating them again.
//!
//! One file per state, named after the model and the tokens it holds:
//!
//! ```text
//! "LOCODEKV" | version u32 | model sha256 [32] | n u32 | n tokens i32 | state length u64 | state | sha256 of all before [32]
//! ```
//!
//! (little-endian). Files are written to a temporary name and renamed, so a
//! reader never sees half a file. A file that is truncated, corrupt or of
//! another format is deleted when it is found; one made for another model is
//! never offered (it stays, for that model, within the same size bound). The
//! folder is kept under a byte bound, least recently used files removed
//! first. Nothing here knows llama.cpp: states are bytes, tokens are ids.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"LOCODEKV";
const VERSION: u32 = 1;
/// Magic, version, model hash and token count.
const HEAD: usize = 8 + 4 + 32 + 4;
/// Longest token list a file may claim (a larger count is corruption).
const MAX_TOKENS: usize = 1 << 20;

/// A state on disk, as its header describes it.
#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    model: [u8; 32],
    tokens: Vec<i32>,
    bytes: u64,
    used: SystemTime,
}

/// The saved states of one folder, for one model.
#[derive(Debug)]
pub struct KvStore {
    dir: PathBuf,
    limit: u64,
    model: [u8; 32],
    entries: Vec<Entry>,
}

/// A state read back: the tokens it holds and llama.cpp's bytes for them.
#[derive(Debug)]
pub struct Saved {
    pub tokens: Vec<i32>,
    pub state: Vec<u8>,
}

impl KvStore {
    /// The states in `dir` (created if missing), bounded to `limit` bytes,
    /// offered for the model whose file hashes to `model`. Unreadable or
    /// malformed files are deleted (and logged).
    pub fn open(dir: &Path, limit: u64, model: [u8; 32]) -> io::Result<KvStore> {
        fs::create_dir_all(dir)?;
        let mut entries = Vec::new();
        for e in fs::read_dir(dir)? {
            let path = e?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') && name.contains(".tmp-") {
                // A write that never finished (the process died mid-save).
                let _ = fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".kv") {
                continue;
            }
            match read_header(&path) {
                Ok(entry) => entries.push(entry),
                Err(why) => {
                    tracing::warn!(file = %path.display(), "KV cache file ignored and deleted: {why}");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let mut store = KvStore { dir: dir.to_path_buf(), limit, model, entries };
        store.bound();
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes the folder's states take.
    pub fn total_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.bytes).sum()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The saved state of this model that shares the longest start with
    /// `prompt`, if that start is longer than `more_than` tokens: its index
    /// for `load`, and the length of the shared start.
    pub fn best(&self, prompt: &[i32], more_than: usize) -> Option<(usize, usize)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.model == self.model)
            .map(|(i, e)| (i, e.tokens.iter().zip(prompt).take_while(|(a, b)| a == b).count()))
            .filter(|&(_, n)| n > more_than)
            .max_by_key(|&(_, n)| n)
    }

    /// Reads state `i` (from `best`), checking all of it. A file that fails
    /// the check is deleted and forgotten.
    pub fn load(&mut self, i: usize) -> Result<Saved, String> {
        let entry = self.entries.get(i).cloned().ok_or("no such state")?;
        match read_whole(&entry.path, &self.model) {
            Ok(saved) => {
                let now = SystemTime::now();
                let _ = File::options().write(true).open(&entry.path).and_then(|f| f.set_modified(now));
                self.entries[i].used = now;
                Ok(saved)
            }
            Err(why) => {
                tracing::warn!(file = %entry.path.display(), "KV cache file refused and deleted: {why}");
                let _ = fs::remove_file(&entry.path);
                self.entries.remove(i);
                Err(why)
            }
        }
    }

    /// Saves a state for `tokens` (replacing one for the same tokens), then
    /// removes the least recently used states past the bound.
    pub fn save(&mut self, tokens: &[i32], state: &[u8]) -> io::Result<()> {
        let total = (HEAD + tokens.len() * 4 + 8 + state.len() + 32) as u64;
        if total > self.limit {
            return Ok(());
        }
        let name = file_name(&self.model, tokens);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let write = || -> io::Result<()> {
            let mut hash = Sha256::new();
            let mut f = io::BufWriter::new(File::create(&tmp)?);
            let mut put = |b: &[u8]| -> io::Result<()> {
                hash.update(b);
                f.write_all(b)
            };
            put(MAGIC)?;
            put(&VERSION.to_le_bytes())?;
            put(&self.model)?;
            put(&(tokens.len() as u32).to_le_bytes())?;
            let mut tb = Vec::with_capacity(tokens.len() * 4);
            for t in tokens {
                tb.extend_from_slice(&t.to_le_bytes());
            }
            put(&tb)?;
            put(&(state.len() as u64).to_le_bytes())?;
            put(state)?;
            let digest = hash.finalize();
            f.write_all(&digest)?;
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.entries.retain(|e| e.path != path);
        self.entries.push(Entry { path, model: self.model, tokens: tokens.to_vec(), bytes: total, used: SystemTime::now() });
        self.bound();
        Ok(())
    }

    /// Removes the least recently used states until the rest fit the bound.
    fn bound(&mut self) {
        self.entries.sort_by_key(|e| std::cmp::Reverse(e.used));
        let mut total = 0;
        let mut keep = 0;
        for e in &self.entries {
            if total + e.bytes > self.limit {
                break;
            }
            total += e.bytes;
            keep += 1;
        }
        for e in self.entries.drain(keep..) {
            tracing::debug!(file = %e.path.display(), "KV cache bound: removing the least recently used state");
            let _ = fs::remove_file(&e.path);
        }
    }
}

/// The name of the state of `tokens` under `model`.
fn file_name(model: &[u8; 32], tokens: &[i32]) -> String {
    let mut h = Sha256::new();
    h.update(model);
    for t in tokens {
        h.update(t.to_le_bytes());
    }
    let d = h.finalize();
    let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{hex}.kv")
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// The header of a state file, checked against the file's length.
fn read_header(path: &Path) -> Result<Entry, String> {
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let meta = f.metadata().map_err(|e| e.to_string())?;
    let mut head = [0u8; HEAD];
    f.read_exact(&mut head).map_err(|_| "shorter than a header")?;
    if &head[..8] != MAGIC {
        return Err("not a locode KV file".into());
    }
    if u32_at(&head, 8) != VERSION {
        return Err(format!("format version {} (this build reads {VERSION})", u32_at(&head, 8)));
    }
    let model: [u8; 32] = head[12..44].try_into().expect("32 bytes");
    let n = u32_at(&head, 44) as usize;
    if n > MAX_TOKENS {
        return Err(format!("claims {n} tokens"));
    }
    let mut tb = vec![0u8; n * 4 + 8];
    f.read_exact(&mut tb).map_err(|_| "truncated in its tokens")?;
    let tokens = tb[..n * 4].chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
    let state_len = u64::from_le_bytes(tb[n * 4..].try_into().expect("8 bytes"));
    let expected = (HEAD + n * 4 + 8) as u64 + state_len + 32;
    if meta.len() != expected {
        return Err(format!("{} bytes where its header says {expected}", meta.len()));
    }
    Ok(Entry { path: path.to_path_buf(), model, tokens, bytes: meta.len(), used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH) })
}

/// All of a state file, its checksum and model checked.
fn read_whole(path: &Path, model: &[u8; 32]) -> Result<Saved, String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    if bytes.len() < HEAD + 8 + 32 || &bytes[..8] != MAGIC || u32_at(&bytes, 8) != VERSION {
        return Err("not a locode KV file of this version".into());
    }
    if &bytes[12..44] != model {
        return Err("made for another model".into());
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err("checksum mismatch (corrupt)".into());
    }
    let n = u32_at(body, 44) as usize;
    let tokens_end = HEAD + n * 4;
    if n > MAX_TOKENS || body.len() < tokens_end + 8 {
        return Err("malformed header".into());
    }
    let state_len = u64::from_le_bytes(body[tokens_end..tokens_end + 8].try_into().expect("8 bytes")) as usize;
    if body.len() != tokens_end + 8 + state_len {
        return Err("length mismatch".into());
    }
    let tokens = body[HEAD..tokens_end].chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
    Ok(Saved { tokens, state: body[tokens_end + 8..].to_vec() })
}

/// The sha256 of a model file, remembered in `dir` by the file's path,
/// length and modification time so a model is hashed once.
pub fn model_sha256(model: &Path, dir: &Path) -> io::Result<[u8; 32]> {
    let (memo, key) = memo_path(model, dir)?;
    if let Ok(text) = fs::read_to_string(&memo) {
        if let Some(d) = parse_hex32(text.trim()) {
            return Ok(d);
        }
    }
    let mut f = io::BufReader::with_capacity(1 << 20, File::open(model)?);
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h)?;
    let d: [u8; 32] = h.finalize().into();
    fs::create_dir_all(dir)?;
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".model-{key}.tmp-{}", std::process::id()));
    fs::write(&tmp, hex).and_then(|_| fs::rename(&tmp, &memo))?;
    Ok(d)
}

/// Where the hash of `model` is remembered, and the name's key.
fn memo_path(model: &Path, dir: &Path) -> io::Result<(PathBuf, String)> {
    let meta = fs::metadata(model)?;
    let mtime = meta.modified()?.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let canon = model.canonicalize().unwrap_or_else(|_| model.to_path_buf());
    let key = Sha256::digest(format!("{}\0{}\0{mtime}", canon.display(), meta.len()).as_bytes());
    let key: String = key.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Ok((dir.join(format!("model-{key}.sha256")), key))
}

/// True when the hash of `model` is remembered in `dir` (`model_sha256` is quick).
pub fn model_sha256_known(model: &Path, dir: &Path) -> bool {
    memo_path(model, dir).is_ok_and(|(memo, _)| memo.exists())
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [1; 32];
    const B: [u8; 32] = [2; 32];

    fn state(n: usize, fill: u8) -> Vec<u8> {
        vec![fill; n]
    }

    #[test]
    fn a_saved_state_comes_back_for_a_prompt_that_starts_with_its_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = KvStore::open(dir.path(), 1 << 20, A).unwrap();
        s.save(&[1, 2, 3, 4, 5], &state(100, 7)).unwrap();
        s.save(&[1, 2, 9], &state(10, 8)).unwrap();
        // Reopened, as after a restart.
        let mut s = KvStore::open(dir.path(), 1 << 20, A).unwrap();
        assert_eq!(s.len(), 2);
        let (i, n) = s.best(&[1, 2, 3, 4, 6, 6], 2).expect("a shared start of 4");
        assert_eq!(n, 4);
        let saved = s.load(i).unwrap();
        assert_eq!(saved.tokens, [1, 2, 3, 4, 5]);
        assert_eq!(saved.state, state(100, 7));
        // Too short a shared start, or none.
        assert!(s.best(&[1, 2, 3, 4], 4).is_none());
        assert!(s.best(&[5, 5], 0).is_none());
    }

    #[test]
    fn a_state_of_another_model_is_never_offered_or_loaded() {
        let dir = tempfile::tempdir().unwrap();
        KvStore::open(dir.path(), 1 << 20, B).unwrap().save(&[1, 2, 3], &state(10, 1)).unwrap();
        let mut s = KvStore::open(dir.path(), 1 << 20, A).unwrap();
        assert!(s.best(&[1, 2, 3, 4], 0).is_none());
        // Even asked for directly, the check on the file refuses it.
        assert!(s.load(0).unwrap_err().contains("another model"));
    }

    #[test]
    fn corrupt_truncated_and_foreign_files_are_refused_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = KvStore::open(dir.path(), 1 << 20, A).unwrap();
        s.save(&[1, 2, 3], &state(64, 3)).unwrap();
        s.save(&[4, 5, 6], &state(64, 4)).unwrap();
        let files: Vec<PathBuf> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        let file_of = |tokens: &[i32]| dir.path().join(file_name(&A, tokens));
        // A flipped byte in the state: the header still reads, the checksum fails at load.
        let p = file_of(&[1, 2, 3]);
        let mut b = fs::read(&p).unwrap();
        let mid = b.len() - 40;
        b[mid] ^= 0xff;
        fs::write(&p, b).unwrap();
        // A truncated file and a file that is not ours.
        let q = file_of(&[4, 5, 6]);
        let b = fs::read(&q).unwrap();
        fs::write(&q, &b[..b.len() - 10]).unwrap();
        fs::write(dir.path().join("junk.kv"), b"hello").unwrap();
        assert_eq!(files.len(), 2);

        let mut s = KvStore::open(dir.path(), 1 << 20, A).unwrap();
        assert!(!q.exists() && !dir.path().join("junk.kv").exists(), "refused at open");
        let (i, _) = s.best(&[1, 2, 3], 0).expect("its header is intact");
        assert!(s.load(i).unwrap_err().contains("checksum"));
        assert!(!p.exists(), "deleted once refused");
        assert!(s.is_empty());
    }

    #[test]
    fn the_disk_bound_removes_the_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let one = (HEAD + 4 + 8 + 1000 + 32) as u64;
        let mut s = KvStore::open(dir.path(), one * 3, A).unwrap();
        s.save(&[1], &state(1000, 1)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        s.save(&[2], &state(1000, 2)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        s.save(&[3], &state(1000, 3)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        // Using [1] makes [2] the least recently used.
        let (i, _) = s.best(&[1], 0).unwrap();
        s.load(i).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        s.save(&[4], &state(1000, 4)).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.total_bytes() <= one * 3);
        assert!(s.best(&[2], 0).is_none(), "the least recently used went");
        for t in [1, 3, 4] {
            assert!(s.best(&[t], 0).is_some(), "{t} stays");
        }
        let on_disk = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(on_disk, 3);
        // A smaller bound at the next start holds too.
        let s = KvStore::open(dir.path(), one, A).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // A state larger than the whole bound is not written.
        let mut s = KvStore::open(dir.path(), one, A).unwrap();
        s.save(&[9], &state(5000, 9)).unwrap();
        assert!(s.best(&[9], 0).is_none());
    }

    #[test]
    fn a_half_written_file_is_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".abc.kv.tmp-123"), b"partial").unwrap();
        let s = KvStore::open(dir.path(), 1 << 20, A).unwrap();
        assert!(s.is_empty());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_model_is_hashed_once() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.gguf");
        fs::write(&model, b"GGUF model bytes").unwrap();
        let d = model_sha256(&model, &dir.path().join("kv")).unwrap();
        assert_eq!(d.as_slice(), Sha256::digest(b"GGUF model bytes").as_slice());
        // The memo answers (a different memo content proves it is read).
        let memo = fs::read_dir(dir.path().join("kv")).unwrap().next().unwrap().unwrap().path();
        fs::write(&memo, "11".repeat(32)).unwrap();
        assert_eq!(model_sha256(&model, &dir.path().join("kv")).unwrap(), [0x11; 32]);
    }
}
