//! Runs a filled program's tests: `python3` for Python, `rustc --test` and
//! the test binary for Rust, each in a fresh temporary folder with a
//! timeout. Results are cached by program text (engines often agree).

use crate::sets::Lang;
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Did not parse / compile.
    Syntax,
    /// Ran and failed (assertion, exception, panic).
    Fail,
    Timeout,
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Syntax => "syntax",
            Outcome::Fail => "fail",
            Outcome::Timeout => "timeout",
        }
    }
}

pub struct Scorer {
    cache: HashMap<String, Outcome>,
    pub run_timeout: Duration,
    pub compile_timeout: Duration,
    pub runs: usize,
    /// Niceness of the test processes.
    pub nice: i32,
}

/// Waits for a command with a timeout; kills it (its own pid) when it runs
/// past it. `None` on timeout, else (success, stderr tail).
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> std::io::Result<Option<(bool, String)>> {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let err = reader.join().unwrap_or_default();
    Ok(status.map(|s| (s.success(), err)))
}

impl Scorer {
    pub fn new(run_timeout: Duration) -> Scorer {
        Scorer { cache: HashMap::new(), run_timeout, compile_timeout: Duration::from_secs(180), runs: 0, nice: 0 }
    }

    /// Forgets timeouts, to run them again (after a run at low priority).
    pub fn forget_timeouts(&mut self) {
        self.cache.retain(|_, o| *o != Outcome::Timeout);
    }

    pub fn score(&mut self, lang: Lang, program: &str) -> Outcome {
        if let Some(o) = self.cache.get(program) {
            return o.clone();
        }
        self.runs += 1;
        let o = match lang {
            Lang::Python => self.python(program),
            Lang::Rust => self.rust(program),
        }
        .unwrap_or_else(|e| {
            eprintln!("quality: cannot run a test: {e}");
            Outcome::Fail
        });
        self.cache.insert(program.to_string(), o.clone());
        o
    }

    fn python(&self, program: &str) -> anyhow::Result<Outcome> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("prog.py");
        std::fs::write(&file, program)?;
        let mut cmd = Command::new("nice");
        cmd.args(["-n", &self.nice.to_string(), "python3"]).arg(&file).current_dir(dir.path()).env("PYTHONDONTWRITEBYTECODE", "1");
        Ok(match run_with_timeout(&mut cmd, self.run_timeout)? {
            None => Outcome::Timeout,
            Some((true, _)) => Outcome::Pass,
            Some((false, err)) if err.contains("SyntaxError") || err.contains("IndentationError") => Outcome::Syntax,
            Some((false, _)) => Outcome::Fail,
        })
    }

    fn rust(&self, program: &str) -> anyhow::Result<Outcome> {
        let dir = tempfile::tempdir()?;
        let src = dir.path().join("main.rs");
        let bin = dir.path().join("tests");
        std::fs::write(&src, program)?;
        let mut rustc = Command::new("nice");
        rustc
            .args(["-n", &self.nice.to_string()])
            .arg(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
            .args(["--edition", "2021", "--test", "-C", "opt-level=0", "-C", "debuginfo=0", "-A", "warnings", "--crate-name", "prog"])
            .arg("-o")
            .arg(&bin)
            .arg(&src)
            .current_dir(dir.path());
        match run_with_timeout(&mut rustc, self.compile_timeout)? {
            None => return Ok(Outcome::Timeout),
            Some((false, _)) => return Ok(Outcome::Syntax),
            Some((true, _)) => {}
        }
        let mut run = Command::new("nice");
        run.args(["-n", &self.nice.to_string()]).arg(&bin).args(["--test-threads", "1"]).current_dir(dir.path());
        Ok(match run_with_timeout(&mut run, self.run_timeout)? {
            None => Outcome::Timeout,
            Some((true, _)) => Outcome::Pass,
            Some((false, _)) => Outcome::Fail,
        })
    }
}
