//! Runs a filled program's tests: `python3` for Python, `rustc --test` and
//! the test binary for Rust, `g++` for C++, `go test` for Go, `javac` and
//! `java` for Java, `node` for JavaScript, each in a fresh temporary folder
//! with a timeout. Results are cached by program text (engines often agree).

use crate::sets::{Lang, GO_TEST_FILE};
use std::collections::HashMap;
use std::path::Path;
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

/// Bytes of address space a test may take (the JVM reserves a quarter of
/// the machine's memory for its heap up front).
const MEMORY_CAP: u64 = 12 << 30;

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
            Lang::Cpp => self.cpp(program),
            Lang::Go => self.go(program),
            Lang::Java => self.java(program),
            Lang::JavaScript => self.javascript(program),
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
        let mut cmd = self.niced("python3");
        cmd.arg(&file).current_dir(dir.path()).env("PYTHONDONTWRITEBYTECODE", "1");
        Ok(match run_with_timeout(&mut cmd, self.run_timeout)? {
            None => Outcome::Timeout,
            Some((true, _)) => Outcome::Pass,
            Some((false, err)) if err.contains("SyntaxError") || err.contains("IndentationError") => Outcome::Syntax,
            Some((false, _)) => Outcome::Fail,
        })
    }

    /// `program` at the scorer's priority, with at most `MEMORY_CAP` of
    /// address space: a wrong fill that allocates without end (a Go test
    /// took 22 GB once) fails its test instead of waking the kernel's OOM
    /// killer, which may pick another process.
    fn niced(&self, program: &str) -> Command {
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--as={MEMORY_CAP}")).args(["nice", "-n", &self.nice.to_string(), program]);
        cmd
    }

    /// Compiles with `compile` (a failure: `Syntax`), then runs `run`.
    fn compile_and_run(&self, compile: &mut Command, run: &mut Command) -> anyhow::Result<Outcome> {
        match run_with_timeout(compile, self.compile_timeout)? {
            None => return Ok(Outcome::Timeout),
            Some((false, _)) => return Ok(Outcome::Syntax),
            Some((true, _)) => {}
        }
        Ok(match run_with_timeout(run, self.run_timeout)? {
            None => Outcome::Timeout,
            Some((true, _)) => Outcome::Pass,
            Some((false, _)) => Outcome::Fail,
        })
    }

    fn cpp(&self, program: &str) -> anyhow::Result<Outcome> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("prog.cpp"), program)?;
        let mut gxx = self.niced("g++");
        gxx.args(["-std=c++17", "-O0", "-w", "-o", "prog", "prog.cpp"]).current_dir(dir.path());
        let mut run = self.niced("./prog");
        run.current_dir(dir.path());
        self.compile_and_run(&mut gxx, &mut run)
    }

    /// `go test` on a package of the program's file and its test file, in
    /// GOPATH mode with the testify package from Debian
    /// (`golang-github-stretchr-testify-dev`, under `/usr/share/gocode`):
    /// nothing is downloaded. The build cache is kept under `target/`.
    fn go(&self, program: &str) -> anyhow::Result<Outcome> {
        let dir = tempfile::tempdir()?;
        let (main, test) = program.split_once(GO_TEST_FILE).unwrap_or((program, ""));
        std::fs::write(dir.path().join("main.go"), main)?;
        std::fs::write(dir.path().join("main_test.go"), test)?;
        let gopath = std::env::var_os("LOCODE_BENCH_GOPATH").unwrap_or_else(|| "/usr/share/gocode".into());
        if !Path::new(&gopath).join("src/github.com/stretchr/testify").is_dir() {
            anyhow::bail!("testify is not under {gopath:?}: apt-get install golang-go golang-github-stretchr-testify-dev");
        }
        let cache = std::env::temp_dir().join("locode-quality-gocache");
        // Compile errors and test failures both exit 1: `go vet` is off and
        // the build is run first to tell them apart.
        let mut build = self.niced("go");
        build.args(["test", "-vet=off", "-count=1", "-run", "^$", "."]);
        let mut run = self.niced("go");
        run.args(["test", "-vet=off", "-count=1", "."]);
        for cmd in [&mut build, &mut run] {
            cmd.current_dir(dir.path()).env("GO111MODULE", "off").env("GOPATH", &gopath).env("GOCACHE", &cache).env("GOFLAGS", "");
        }
        self.compile_and_run(&mut build, &mut run)
    }

    fn java(&self, program: &str) -> anyhow::Result<Outcome> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("Main.java"), program)?;
        let mut javac = self.niced("javac");
        javac.args(["-nowarn", "-J-XX:TieredStopAtLevel=1", "Main.java"]).current_dir(dir.path());
        let mut run = self.niced("java");
        run.args(["-XX:TieredStopAtLevel=1", "-ea", "-cp", ".", "Main"]).current_dir(dir.path());
        self.compile_and_run(&mut javac, &mut run)
    }

    fn javascript(&self, program: &str) -> anyhow::Result<Outcome> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("prog.js");
        std::fs::write(&file, program)?;
        let mut cmd = self.niced("node");
        cmd.arg(&file).current_dir(dir.path());
        Ok(match run_with_timeout(&mut cmd, self.run_timeout)? {
            None => Outcome::Timeout,
            Some((true, _)) => Outcome::Pass,
            Some((false, err)) if err.contains("SyntaxError") => Outcome::Syntax,
            Some((false, _)) => Outcome::Fail,
        })
    }

    fn rust(&self, program: &str) -> anyhow::Result<Outcome> {
        let dir = tempfile::tempdir()?;
        let src = dir.path().join("main.rs");
        let bin = dir.path().join("tests");
        std::fs::write(&src, program)?;
        let rustc_bin = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let mut rustc = self.niced(&rustc_bin);
        rustc
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
        let mut run = self.niced(&bin.to_string_lossy());
        run.args(["--test-threads", "1"]).current_dir(dir.path());
        Ok(match run_with_timeout(&mut run, self.run_timeout)? {
            None => Outcome::Timeout,
            Some((true, _)) => Outcome::Pass,
            Some((false, _)) => Outcome::Fail,
        })
    }
}
