use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};

use locode::config::{self, Config};
use locode::documents::Document;
use locode::engine::{self, Engine};
use locode::session::{Prepared, Session};
use locode::syntax::Language;

#[derive(Parser)]
#[command(name = "locode", version, about = "Private, offline AI code completion as a language server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the language server on stdin/stdout.
    Serve(EngineArgs),
    /// Print the completion at FILE:LINE:COL (1-based line and column, in characters).
    Complete {
        /// FILE:LINE:COL
        at: String,
        /// Print the suggestion with its statistics as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Check the model, its family and FIM tokens, threads and build
    /// features, and (with --settings) the editor's settings and where they
    /// would send code.
    Doctor {
        #[command(flatten)]
        engine: EngineArgs,
        /// A JSON file with the settings the editor sends (initializationOptions).
        #[arg(long)]
        settings: Option<PathBuf>,
    },
    /// Print where the default model is cached.
    ModelPath,
}

#[derive(Args, Clone, Default)]
struct EngineArgs {
    /// GGUF model file (default: the cached default model).
    #[arg(long, env = "LOCODE_MODEL")]
    model: Option<PathBuf>,
    /// Prompt family override (qwen2.5-coder, starcoder2, deepseek-coder, codellama, codestral).
    #[arg(long)]
    family: Option<String>,
    /// CPU threads for inference (default: all cores).
    #[arg(long)]
    threads: Option<u32>,
    /// Context size in tokens.
    #[arg(long)]
    context_size: Option<u32>,
    /// Layers to offload to the GPU.
    #[arg(long)]
    gpu_layers: Option<u32>,
}

impl EngineArgs {
    fn config(&self) -> Config {
        let mut c = Config::default();
        c.engine.model = self.model.clone();
        c.engine.family = self.family.clone();
        c.engine.threads = self.threads;
        if let Some(n) = self.context_size {
            c.engine.context_size = n;
        }
        c.engine.gpu_layers = self.gpu_layers;
        c
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOCODE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,locode=info,llama-cpp-2=error"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
}

fn parse_at(at: &str) -> anyhow::Result<(PathBuf, usize, usize)> {
    let mut parts = at.rsplitn(3, ':');
    let col = parts.next().unwrap_or_default();
    let line = parts.next().context("expected FILE:LINE:COL")?;
    let file = parts.next().context("expected FILE:LINE:COL")?;
    let line: usize = line.parse().context("LINE must be a number")?;
    let col: usize = col.parse().context("COL must be a number")?;
    if line == 0 || col == 0 {
        bail!("LINE and COL count from 1");
    }
    Ok((PathBuf::from(file), line, col))
}

async fn complete(at: &str, json: bool, config: Config) -> anyhow::Result<()> {
    let (path, line, col) = parse_at(at)?;
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))?;
    let doc = Document::new(&text, 0, Language::from_path(&path));
    if line > doc.rope.len_lines() {
        bail!("{} has {} lines; line {line} is past the end", path.display(), doc.rope.len_lines());
    }
    let line_start = doc.rope.line_to_char(line - 1);
    let line_len = doc.rope.line(line - 1).chars().filter(|c| *c != '\n' && *c != '\r').count();
    if col > line_len + 1 {
        bail!("line {line} has {line_len} characters; column {col} is past its end");
    }
    let cursor = line_start + col - 1;
    let engine = Engine::spawn();
    let (_info, family) = engine.load(config.engine.clone(), |_| {}).await?;
    // The server's path for a request: the session plans the prompt, the
    // pipeline runs it. Like a client that does not ask again, no early
    // answer (it would never see the rest).
    // Nor a first window: nothing would build the whole prompt after it.
    let cfg = locode::config::CompletionConfig { early_answer_ms: 0, first_answer_ms: 0, ..config.completion };
    let mut session = Session::new(doc);
    let Prepared::Fresh { snap, anchor } = session.prepare(cursor, &cfg, None) else { unreachable!("nothing was shown") };
    let key = path.display().to_string();
    let spot = locode::complete::Spot { snap: &snap, cursor, anchor };
    let s = locode::complete::suggest_early(&engine, &family, &key, &spot, &cfg, Default::default()).await;
    engine.shutdown();
    let (s, _) = s?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!("{}", s.text);
        eprintln!(
            "locode: {} prompt tokens ({} evaluated) in {:.0} ms, {} generated in {:.0} ms",
            s.stats.prompt_tokens, s.stats.evaluated_tokens, s.stats.prompt_ms, s.stats.generated_tokens, s.stats.generate_ms
        );
    }
    Ok(())
}

/// The settings file merged over `config`, with what it says about where
/// code goes; false when the settings are invalid.
fn doctor_settings(config: &mut Config, file: &std::path::Path) -> bool {
    let read = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).map_err(|e| format!("{} is not JSON: {e}", file.display())))
        .and_then(|v| config.merged(&v));
    match read {
        Ok(c) => *config = c,
        Err(e) => {
            println!("settings:       PROBLEM: {e}");
            println!("outbound:       nothing is sent while the settings are invalid");
            return false;
        }
    }
    println!("settings:       {} ok", file.display());
    for (setting, ca) in
        [("cloud.caFile", &config.commands.cloud.ca_file), ("completionEngine.caFile", &config.commands.completion_engine.ca_file)]
    {
        if let Some(ca) = ca {
            println!("TLS:            {setting}: the CAs in {} are trusted besides the built-in roots", ca.display());
        }
    }
    let remote = &config.commands.completion_engine;
    let mut ok = true;
    if remote.is_remote() {
        match engine::remote::refusal(remote) {
            None => println!("completions:    {:?} at {} (prompts redacted, secret files refused)", remote.kind, remote.url()),
            Some(why) => {
                println!("completions:    PROBLEM: {why}");
                ok = false;
            }
        }
    } else {
        println!("completions:    the embedded model (nothing leaves this machine)");
    }
    let cloud = &config.commands.cloud;
    if cloud.enabled() {
        match locode::commands::cloud::check_endpoint(cloud) {
            Ok(()) => println!(
                "cloud:          route {:?} to {} (redacted, audited in {})",
                cloud.route,
                cloud.url(),
                cloud.audit_path().display()
            ),
            Err(e) => {
                println!("cloud:          PROBLEM: {e}");
                ok = false;
            }
        }
    } else {
        println!("cloud:          off (cloud.route is never)");
    }
    ok
}

async fn doctor(mut config: Config, settings: Option<PathBuf>) -> bool {
    let settings_ok = settings.as_deref().is_none_or(|f| doctor_settings(&mut config, f));
    if !settings_ok {
        println!("status:         PROBLEM: see above");
        return false;
    }
    let path = config.engine.model_path();
    println!("locode {}", env!("CARGO_PKG_VERSION"));
    println!("build features: {}", engine::build_features().join(", "));
    println!("model cache:    {}", config::model_dir().display());
    println!("model:          {}", path.display());
    println!("threads:        {}", config.engine.threads());
    println!("context size:   {} tokens in each of {} slots", config.engine.context_size, config.engine.slots);
    let kv = config.engine.kv_cache_dir();
    if config.engine.kv_cache_mb == 0 {
        println!("KV cache:       off (kvCacheMb = 0)");
    } else {
        let files: Vec<u64> = std::fs::read_dir(&kv)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "kv"))
                    .filter_map(|e| e.metadata().ok().map(|m| m.len()))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "KV cache:       {} ({} states, {:.1} MiB of {} MiB)",
            kv.display(),
            files.len(),
            files.iter().sum::<u64>() as f64 / (1u64 << 20) as f64,
            config.engine.kv_cache_mb
        );
    }
    let engine = Engine::spawn();
    let loaded = engine.load(config.engine.clone(), |_| {}).await;
    engine.shutdown();
    match loaded {
        Ok((info, _)) => {
            println!("model size:     {} bytes", info.size_bytes);
            println!("model name:     {}", info.description);
            println!("parameters:     {}", info.n_params);
            println!("trained ctx:    {}", info.n_ctx_train);
            println!("family:         {}", info.family);
            let toks: Vec<String> = info.fim_tokens.iter().map(|(t, id)| format!("{t}={id}")).collect();
            println!("FIM tokens:     {}", toks.join(" "));
            println!("GPU offload:    {} ({} layers)", if info.gpu_offload_supported { "yes" } else { "no" }, info.gpu_layers);
            println!("status:         ok");
            true
        }
        Err(e) => {
            println!("status:         PROBLEM: {e}");
            false
        }
    }
}

fn main() -> ExitCode {
    engine::ensure_openmp_wait("locode");
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime").block_on(run())
}

/// A command whose output goes into a pipe the reader closed early
/// (`locode doctor | head`) ends quietly, as Unix tools do, instead of
/// panicking on the failed write. Not for `serve`: there the server saves
/// its KV states when the editor goes away.
fn exit_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: sets the default action of one signal; no handler of ours runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

async fn run() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        exit_on_closed_pipe();
    }
    match cli.command {
        Command::Serve(args) => {
            locode::lsp::serve_stdio(args.config()).await;
            ExitCode::SUCCESS
        }
        Command::Complete { at, json, engine } => match complete(&at, json, engine.config()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("locode: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Doctor { engine, settings } => {
            if doctor(engine.config(), settings).await {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::ModelPath => {
            println!("{}", config::default_model_path().display());
            ExitCode::SUCCESS
        }
    }
}
