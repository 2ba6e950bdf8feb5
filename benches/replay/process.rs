//! What every benchmark that starts processes needs: where the repository
//! and the build are, the locode binary, and the children to stop when the
//! benchmark is interrupted. Included by `replay`, `quality` and
//! `quality_server` (replay/lsp.rs and replay/peer.rs register their
//! children in `crate::CHILDREN`, which each re-exports).

use anyhow::bail;
use std::path::{Path, PathBuf};

/// Engine processes to stop if the benchmark itself is interrupted or
/// killed (llama-server would otherwise outlive it).
pub static CHILDREN: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"))
}

/// On SIGINT, SIGTERM or SIGHUP: kills the `CHILDREN`, says `<bench>:
/// interrupted` and exits with 130.
pub fn stop_children_on_signal(bench: &'static str) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term), Ok(mut hup)) =
                (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()))
            else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            for pid in CHILDREN.lock().unwrap().iter() {
                let _ = std::process::Command::new("kill").arg(pid.to_string()).status();
            }
            eprintln!("{bench}: interrupted");
            std::process::exit(130);
        });
    });
}

/// The locode binary: `explicit` (`--server-bin`), else the one cargo built
/// for this bench, else target/release/locode, built with `cargo build
/// --release` when missing.
pub fn server_bin(explicit: Option<&Path>, bench: &str) -> anyhow::Result<PathBuf> {
    if let Some(b) = explicit {
        return Ok(b.to_path_buf());
    }
    if let Some(b) = option_env!("CARGO_BIN_EXE_locode") {
        if Path::new(b).exists() {
            return Ok(PathBuf::from(b));
        }
    }
    let bin = target_dir().join("release/locode");
    if !bin.exists() {
        eprintln!("{bench}: {} is missing; running cargo build --release", bin.display());
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let st = std::process::Command::new(cargo).args(["build", "--release", "--bin", "locode"]).current_dir(repo_root()).status()?;
        if !st.success() || !bin.exists() {
            bail!("cargo build --release failed");
        }
    }
    Ok(bin)
}
