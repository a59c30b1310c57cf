//! Developer tasks. `cargo xtask test` and `cargo xtask run -- ARGS` install
//! whatever is missing first, so a fresh machine needs nothing else.
mod bench;
mod fuzz;
mod install;
mod kernel;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the toolchain pieces and test peers (idempotent).
    Install,
    /// Build gatewatch (kernel programs embedded).
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Build and run gatewatch with ARGS, e.g. `cargo xtask run -- run --provider openai=127.0.0.2:443`.
    Run {
        #[arg(long)]
        release: bool,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Unit and privileged integration tests (run as root; CI=true turns skips into failures).
    Test {
        /// Extra arguments for `cargo test`, e.g. `-- foundation`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// cargo fmt --check and clippy on every userspace crate, warnings as errors.
    Lint,
    /// Fuzz the parsers, the event decoder and the config parser for SECONDS each.
    Fuzz {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Boot Debian's packaged kernels in qemu and check every program loads and attaches there.
    KernelMatrix,
    /// Side-by-side overhead benchmarks; writes BENCHMARKS.md.
    Bench,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

pub fn status(cmd: &mut Command) -> anyhow::Result<()> {
    let st = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

fn build(release: bool) -> anyhow::Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args(["build", "--package", "observer"]);
    if release {
        cmd.arg("--release");
    }
    status(&mut cmd)?;
    Ok(workspace_root()
        .join("target")
        .join(if release { "release" } else { "debug" })
        .join("gatewatch"))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Task::Install => install::all(),
        Task::Build { release } => {
            install::toolchain()?;
            build(release).map(|_| ())
        }
        Task::Run { release, args } => {
            install::toolchain()?;
            let bin = build(release)?;
            status(Command::new(bin).args(args))
        }
        Task::Test { args } => {
            install::all()?;
            let bin = build(false)?;
            let mut cmd = cargo();
            cmd.args([
                "test",
                "--workspace",
                "--exclude",
                "observer-ebpf",
                "--all-targets",
            ])
            .args(args)
            .env("GATEWATCH_BIN", bin);
            let (mut passed, mut failed) = test_with_summary(&mut cmd)?;
            // Bounded extra suites CI runs with the tests: a short fuzz run and
            // the kernel matrix. Each reports what it ran.
            for (p, f) in [fuzz::ci()?, kernel::ci()?] {
                passed += p;
                failed += f;
            }
            println!("tests: {passed} passed, {failed} failed");
            if failed > 0 {
                bail!("{failed} tests failed");
            }
            Ok(())
        }
        Task::Fuzz { seconds } => fuzz::run(seconds).map(|_| ()),
        Task::KernelMatrix => kernel::run().map(|_| ()),
        Task::Bench => bench::run(),
        Task::Lint => {
            install::toolchain()?;
            status(cargo().args(["fmt", "--all", "--", "--check"]))?;
            status(cargo().args([
                "clippy",
                "--workspace",
                "--exclude",
                "observer-ebpf",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))
        }
    }
}

/// Runs `cargo test`, echoing its output; returns the totals over every
/// test binary. The caller prints the closing `tests: N passed, M failed`.
fn test_with_summary(cmd: &mut Command) -> anyhow::Result<(u64, u64)> {
    use std::io::{BufRead as _, BufReader};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let (mut passed, mut failed) = (0u64, 0u64);
    let stdout = child.stdout.take().context("cargo test stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("read cargo test output")?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |word: &str| {
                rest.split(';')
                    .find_map(|part| {
                        part.trim()
                            .trim_start_matches("ok. ")
                            .trim_start_matches("FAILED. ")
                            .strip_suffix(word)
                    })
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            passed += count(" passed");
            failed += count(" failed");
        }
    }
    let st = child.wait().context("wait for cargo test")?;
    if !st.success() {
        println!("tests: {passed} passed, {failed} failed");
        bail!("cargo test failed: {st}");
    }
    if passed == 0 {
        bail!("cargo test ran no test");
    }
    Ok((passed, failed))
}
