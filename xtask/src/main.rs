//! Developer tasks. `cargo xtask test` and `cargo xtask run -- ARGS` install
//! whatever is missing first, so a fresh machine needs nothing else.
mod bench;
mod fuzz;
mod install;
mod kernel;
mod summary;

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
    /// The release build, as deployed and benchmarked; `--debug` for the debug one.
    Run {
        #[arg(long)]
        debug: bool,
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
        Task::Run { debug, args } => {
            install::toolchain()?;
            let bin = build(!debug)?;
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
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            let mut tally = test_with_summary(&mut cmd)?;
            // Bounded extra suites CI runs with the tests: a short fuzz run and
            // the kernel matrix. Each reports what it ran.
            for counts in [fuzz::ci()?, kernel::ci()?] {
                tally.add(counts);
            }
            println!("{}", tally.closing_line());
            tally.verdict(ci).map_err(anyhow::Error::msg)
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
/// test binary, with the privileged tests that skipped (listed in the skip
/// log, see `summary`) counted as skipped rather than passed.
fn test_with_summary(cmd: &mut Command) -> anyhow::Result<summary::Tally> {
    use std::io::{BufRead as _, BufReader};
    let skip_log = std::env::temp_dir().join(format!("gatewatch-skips-{}", std::process::id()));
    match std::fs::remove_file(&skip_log) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove {}", skip_log.display()));
        }
        _ => {}
    }
    let mut child = cmd
        .env(summary::SKIP_LOG_VAR, &skip_log)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let mut tally = summary::Tally::default();
    let stdout = child.stdout.take().context("cargo test stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("read cargo test output")?;
        println!("{line}");
        tally.add_cargo_line(&line);
    }
    let st = child.wait().context("wait for cargo test")?;
    let skips = summary::read_skip_log(&skip_log)
        .with_context(|| format!("cannot read {}", skip_log.display()))?;
    let _ = std::fs::remove_file(&skip_log);
    for name in &skips {
        println!("skipped: {name}");
    }
    tally.take_skips(&skips);
    if !st.success() {
        println!("{}", tally.closing_line());
        bail!("cargo test failed: {st}");
    }
    if tally.passed == 0 {
        bail!("cargo test ran no test");
    }
    Ok(tally)
}
