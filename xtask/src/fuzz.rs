//! Fuzzing with cargo-fuzz (libFuzzer, AddressSanitizer): `fuzz/` is its own
//! cargo project, one target per input the agent reads from outside (TLS,
//! HTTP and DNS bytes, QUIC Initial packets, ring buffer records, the config
//! file) and one for the flow table fed event sequences.
//!
//! Corpora live in `fuzz/corpus/<target>` (git-ignored), seeded from the real
//! captures in `observer/fixtures` and `fuzz/seeds`, so a longer run on a
//! developer machine keeps what it learned for the next one. A crash leaves
//! its input in `fuzz/artifacts/<target>/`.
use std::{
    collections::VecDeque,
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};

use crate::{install, status, workspace_root};

/// Pinned so every machine fuzzes with the same driver; builds with stable
/// 1.95 in about 30 s.
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// Seconds per target in `cargo xtask test`: the first build of the fuzz
/// targets (all of gatewatch's dependencies, instrumented) dominates.
const CI_SECONDS: u64 = 15;
/// Sanitizer builds hold about 500 MB; more than this is a leak or a lying
/// length turned into an allocation, and counts as a crash.
const RSS_LIMIT_MB: u64 = 2048;
/// One input taking this long is a hang, and counts as a crash.
const TIMEOUT_SECONDS: u64 = 10;

struct Target {
    name: &'static str,
    /// Longest input tried: what the kernel can hand the parser, no more.
    max_len: usize,
    /// Fixtures copied into the corpus, by file-name prefix under
    /// `observer/fixtures` (`quic/` is every file of that folder).
    fixtures: &'static [&'static str],
}

const TARGETS: &[Target] = &[
    // A stream is up to 4 captured segments of 2 KiB
    // (observer_common::PAYLOAD_SEGMENTS_MAX × PAYLOAD_CAPTURE_MAX).
    Target {
        name: "tls",
        max_len: 8192,
        fixtures: &["tls_", "http_"],
    },
    Target {
        name: "http",
        max_len: 8192,
        fixtures: &["http_", "tls_"],
    },
    // The kernel cuts DNS responses at DNS_CAPTURE_MAX.
    Target {
        name: "dns",
        max_len: 2048,
        fixtures: &["dns_"],
    },
    // A mode byte and a whole payload record, with room to overflow it.
    Target {
        name: "event",
        max_len: 4200,
        fixtures: &[],
    },
    Target {
        name: "config",
        max_len: 4096,
        fixtures: &[],
    },
    // Event sequences for the flow table; the target embeds the captures.
    Target {
        name: "flows",
        max_len: 4096,
        fixtures: &[],
    },
    // TLS plaintext pieces of one connection, both directions.
    Target {
        name: "plaintext",
        max_len: 8192,
        fixtures: &["http_"],
    },
    // Client datagrams: two of PAYLOAD_CAPTURE_MAX (the target also splits
    // its input in two, and seals it as the frames of Initial packets).
    Target {
        name: "quic_initial",
        max_len: 4096,
        fixtures: &["quic/"],
    },
];

/// The bounded run `cargo xtask test` includes: (targets that ran clean,
/// targets that crashed). Setup errors (cargo-fuzz or the build failing)
/// count as one failure so the rest of the test summary still prints.
pub fn ci() -> anyhow::Result<(u64, u64)> {
    match fuzz_all(CI_SECONDS) {
        Ok(counts) => Ok(counts),
        Err(e) => {
            println!("fuzz: setup failed: {e:#}");
            Ok((0, 1))
        }
    }
}

/// `cargo xtask fuzz --seconds N`: every target for N seconds. Fails when a
/// target crashed, after running the others.
pub fn run(seconds: u64) -> anyhow::Result<(u64, u64)> {
    let (passed, failed) = fuzz_all(seconds)?;
    println!("fuzz: {passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} fuzz targets crashed: inputs are in fuzz/artifacts/");
    }
    Ok((passed, failed))
}

fn fuzz_all(seconds: u64) -> anyhow::Result<(u64, u64)> {
    let started = Instant::now();
    install::toolchain()?;
    // libFuzzer itself is C++, compiled by libfuzzer-sys's build script.
    install::debian_packages(&["g++"])?;
    install_cargo_fuzz()?;
    let root = workspace_root();
    // One cargo invocation builds every target, sharing the dependencies.
    let target_dir = target_dir();
    status(
        cargo_fuzz(&root)
            .args(["build", "-O", "--fuzz-dir", "fuzz", "--target-dir"])
            .arg(&target_dir),
    )?;
    let binaries = binary_dir(&target_dir)?;
    println!(
        "fuzz: built in {} s; {seconds} s per target",
        started.elapsed().as_secs()
    );
    let (mut passed, mut failed) = (0, 0);
    for target in TARGETS {
        let corpus = root.join("fuzz/corpus").join(target.name);
        seed(&root, target, &corpus)?;
        if fuzz_one(&root, &binaries, target, &corpus, seconds)? {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    println!("fuzz: done in {} s", started.elapsed().as_secs());
    Ok((passed, failed))
}

fn install_cargo_fuzz() -> anyhow::Result<()> {
    let list = Command::new("cargo")
        .args(["install", "--list"])
        .output()
        .context("cannot run cargo install --list")?;
    let want = format!("cargo-fuzz v{CARGO_FUZZ_VERSION}:");
    if String::from_utf8_lossy(&list.stdout)
        .lines()
        .any(|l| l.starts_with(&want))
    {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
    status(Command::new("cargo").args([
        "install",
        "cargo-fuzz",
        "--version",
        CARGO_FUZZ_VERSION,
        "--locked",
    ]))
}

/// `cargo +nightly fuzz`, run from the workspace root.
fn cargo_fuzz(root: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly").arg("fuzz").current_dir(root);
    // `cargo xtask` runs under stable; these would pin the inner cargo and
    // rustc to it, and sanitizer flags need nightly.
    for var in ["RUSTUP_TOOLCHAIN", "RUSTC", "CARGO"] {
        cmd.env_remove(var);
    }
    cmd
}

/// Adds the seeds the corpus lacks (file names start with `seed-`): kept
/// apart from the inputs libFuzzer adds, which are named by their hash.
fn seed(root: &Path, target: &Target, corpus: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(corpus).with_context(|| format!("cannot create {}", corpus.display()))?;
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    let fixtures = root.join("observer/fixtures");
    for pattern in target.fixtures {
        let (dir, prefix) = pattern.rsplit_once('/').unwrap_or(("", pattern));
        for path in sorted_files(&fixtures.join(dir))? {
            let name = file_name(&path);
            if name.ends_with(".bin") && name.starts_with(prefix) {
                seeds.push((name.clone(), read(&path)?));
            }
        }
    }
    match target.name {
        // The event target's own input format (fuzz_targets/event.rs): a mode
        // byte, then for mode 5 20 bytes of header fields and the captured
        // bytes. Each capture becomes the record the kernel would write.
        "event" => {
            for mode in 0..5u8 {
                seeds.push((format!("mode{mode}"), vec![mode]));
            }
            for path in sorted_files(&fixtures)? {
                let name = file_name(&path);
                if name.ends_with(".bin") {
                    let mut input = vec![5u8];
                    // Even first byte: a payload; odd: a DNS response.
                    input.extend_from_slice(&[u8::from(name.starts_with("dns_")); 20]);
                    input.extend_from_slice(&read(&path)?);
                    seeds.push((format!("chunk-{name}"), input));
                }
            }
        }
        _ => {
            let dir = root.join("fuzz/seeds").join(target.name);
            if dir.is_dir() {
                for path in sorted_files(&dir)? {
                    seeds.push((file_name(&path), read(&path)?));
                }
            }
        }
    }
    for (name, bytes) in seeds {
        let path = corpus.join(format!("seed-{name}"));
        if !path.exists() {
            fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(())
}

fn sorted_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Runs one built target for `seconds`; prints `fuzz NAME: ok (N runs, ...)`
/// or the crash. True when it ran clean. The binary runs directly, not
/// through `cargo fuzz run`, so a source edited meanwhile cannot start a
/// rebuild inside the time budget.
fn fuzz_one(
    root: &Path,
    binaries: &Path,
    target: &Target,
    corpus: &Path,
    seconds: u64,
) -> anyhow::Result<bool> {
    let binary = binaries.join(target.name);
    let artifacts = root.join("fuzz/artifacts").join(target.name);
    fs::create_dir_all(&artifacts)
        .with_context(|| format!("cannot create {}", artifacts.display()))?;
    let mut cmd = Command::new(&binary);
    cmd.args([
        // libFuzzer wants the separator: the prefix is a string, not a path.
        format!("-artifact_prefix={}/", artifacts.display()),
        format!("-max_total_time={seconds}"),
        format!("-rss_limit_mb={RSS_LIMIT_MB}"),
        format!("-timeout={TIMEOUT_SECONDS}"),
        format!("-max_len={}", target.max_len),
    ]);
    let dict = root.join("fuzz/dict").join(format!("{}.dict", target.name));
    if dict.is_file() {
        cmd.arg(format!("-dict={}", dict.display()));
    }
    cmd.arg(corpus).current_dir(root);
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let stderr = child.stderr.take().context("fuzzer stderr")?;
    let FuzzerLog {
        tail,
        runs,
        stats,
        artifact,
        panic,
    } = FuzzerLog::read(stderr)?;
    let st = child.wait().context("wait for the fuzzer")?;
    let stats = stats.unwrap_or_default();
    if st.success() {
        let runs = runs.map_or_else(|| "?".to_owned(), |n| n.to_string());
        println!("fuzz {}: ok ({runs} runs{stats})", target.name);
        return Ok(true);
    }
    for line in &tail {
        println!("  | {line}");
    }
    let why = panic
        .or_else(|| {
            tail.iter().find_map(|l| {
                l.split_once("ERROR: libFuzzer: ")
                    .map(|(_, e)| e.to_owned())
            })
        })
        .unwrap_or_else(|| format!("the fuzzer exited with {st}"));
    match artifact {
        Some(path) => println!(
            "fuzz {}: CRASH {why}{stats}; input {path}; reproduce: {} {path}",
            target.name,
            binary.display()
        ),
        None => println!("fuzz {}: CRASH {why}{stats}", target.name),
    }
    Ok(false)
}

/// What libFuzzer said on stderr: the numbers, and the end for a crash report.
#[derive(Default)]
struct FuzzerLog {
    tail: VecDeque<String>,
    runs: Option<u64>,
    stats: Option<String>,
    artifact: Option<String>,
    /// "panicked at FILE:LINE:COL:" and the message on the next line, which
    /// a long backtrace would push out of the tail.
    panic: Option<String>,
}

impl FuzzerLog {
    /// Lines of the tail kept for a crash report.
    const TAIL_LINES: usize = 60;

    fn read(stderr: impl std::io::Read) -> anyhow::Result<Self> {
        let mut log = FuzzerLog::default();
        let mut panic_next = false;
        for line in BufReader::new(stderr).lines() {
            let line = line.context("read fuzzer output")?;
            if panic_next {
                log.panic = log.panic.map(|at| format!("{at} {}", line.trim()));
                panic_next = false;
            }
            if log.panic.is_none()
                && let Some((_, at)) = line.split_once("panicked at ")
            {
                log.panic = Some(format!("panicked at {at}"));
                panic_next = true;
            }
            // "Done 423021 runs in 31 second(s)"
            if let Some(rest) = line.strip_prefix("Done ") {
                log.runs = rest.split(' ').next().and_then(|n| n.parse::<u64>().ok());
            }
            // "#423021 DONE cov: 1402 ft: 4928 corp: 968/102Kb ..." and the
            // periodic lines before it: the last one seen is the final state.
            if line.starts_with('#') && line.contains("cov: ") {
                log.stats = Some(coverage(&line));
            }
            if let Some((_, path)) = line.split_once("Test unit written to ") {
                log.artifact = Some(path.trim().to_owned());
            }
            log.tail.push_back(line);
            if log.tail.len() > Self::TAIL_LINES {
                log.tail.pop_front();
            }
        }
        Ok(log)
    }
}

/// Build cache for the fuzz targets. Kept outside the checkout: every
/// dependency of gatewatch (kube and k8s-openapi included) is compiled with
/// sanitizer instrumentation, about 13 CPU-minutes on this 2-core machine,
/// and CI runs in a fresh clone each time. Cargo's fingerprints keep a
/// shared target directory correct; only the path crates rebuild per clone.
fn target_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/gatewatch/fuzz-target"),
        None => workspace_root().join("fuzz/target"),
    }
}

/// Where `cargo fuzz build -O` puts the targets: it builds for the host
/// triple explicitly, so sanitizer flags stay off build scripts.
fn binary_dir(target_dir: &Path) -> anyhow::Result<PathBuf> {
    let out = Command::new("rustc")
        .args(["+nightly", "-vV"])
        .output()
        .context("cannot run rustc +nightly -vV")?;
    let host = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("rustc +nightly -vV names no host")?;
    Ok(target_dir.join(host).join("release"))
}

/// ", cov C, ft F, corpus K" from a libFuzzer status line.
fn coverage(line: &str) -> String {
    let field = |key: &str| {
        line.split_once(key)
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .map(|v| v.split('/').next().unwrap_or(v).to_owned())
    };
    match (field("cov: "), field("ft: "), field("corp: ")) {
        (Some(cov), Some(ft), Some(corp)) => {
            format!(", cov {cov}, features {ft}, corpus {corp}")
        }
        _ => String::new(),
    }
}
