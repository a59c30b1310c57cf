//! Where the kernel programs spend their time: system-wide `perf record`
//! call graphs during a load, each sample inside one of our programs
//! attributed to the kernel function the BPF code called (a helper or
//! map operation), or to the BPF code itself.
use std::{collections::BTreeMap, path::Path, process::Command};

use anyhow::{Context as _, bail};

/// One program's samples.
pub struct Profile {
    pub total: u64,
    /// (callee, samples, hottest leaf under it), most samples first.
    pub callees: Vec<(String, u64, String)>,
    /// Samples in `native_write_msr` under a `bpf_ringbuf_*` helper: the
    /// self-IPI that wakes the ring buffer's reader.
    pub wakeup_ipi: u64,
}

/// Program name → its profile.
pub type Attribution = BTreeMap<String, Profile>;

/// Starts `perf record -a -g` for `seconds` into `out`; wait on the child.
pub fn record(out: &Path, seconds: u32) -> anyhow::Result<std::process::Child> {
    start_record(&["-a", "-g"], out, seconds)
}

/// `perf record -F 999 -q ARGS -o OUT -- sleep SECONDS`, quiet.
fn start_record(args: &[&str], out: &Path, seconds: u32) -> anyhow::Result<std::process::Child> {
    Command::new("perf")
        .arg("record")
        .args(args)
        .args(["-F", "999", "-q", "-o"])
        .arg(out)
        .args(["--", "sleep", &seconds.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("start perf (linux-perf)")
}

/// Attributes samples to the programs named in `progs`, by their JIT image
/// names in kallsyms, `bpf_prog_<tag>_<name>`. The tag there is not
/// bpftool's for a program with BPF-to-BPF calls (connect4 calls
/// try_connect), so images are matched by name: another process's loaded
/// programs of the same names would be counted too (the report says how
/// many are loaded).
///
/// One pass over `perf script` output, sample by sample: the per-sample
/// state reads best in one function.
pub fn attribute(data: &Path, progs: &[String]) -> anyhow::Result<Attribution> {
    let out = Command::new("perf")
        .args(["script", "-F", "ip,sym", "-i"])
        .arg(data)
        .output()
        .context("run perf script")?;
    if !out.status.success() {
        bail!(
            "perf script failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let ours = |frame: &str| -> Option<String> {
        let rest = frame.strip_prefix("bpf_prog_")?;
        let (tag, name) = rest.split_once('_')?;
        (tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| progs.iter().find(|p| *p == name).cloned())?
    };
    // (program, callee) → samples, and (program, callee, leaf) → samples.
    let mut per_prog: BTreeMap<String, u64> = BTreeMap::new();
    let mut callees: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut leaves: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for sample in text.split("\n\n") {
        // Leaf first: "ADDR SYMBOL+0xOFF" per frame (with -F ip,sym).
        let frames: Vec<&str> = sample
            .lines()
            .filter_map(|l| {
                let (_, sym) = l.trim().split_once(' ')?;
                Some(sym.rsplit_once("+0x").map_or(sym, |(s, _)| s).trim())
            })
            .collect();
        let Some(prog) = frames.iter().rev().find_map(|f| ours(f)) else {
            continue;
        };
        let innermost = frames
            .iter()
            .position(|f| f.starts_with("bpf_prog_"))
            .unwrap_or(0);
        let callee = if innermost == 0 {
            "(BPF code itself)".to_owned()
        } else {
            frames[innermost - 1].to_owned()
        };
        let leaf = frames.first().copied().unwrap_or("?").to_owned();
        *per_prog.entry(prog.clone()).or_default() += 1;
        *callees.entry((prog.clone(), callee.clone())).or_default() += 1;
        *leaves.entry((prog.clone(), callee, leaf)).or_default() += 1;
    }
    let mut out = Attribution::new();
    for (prog, total) in per_prog {
        let wakeup_ipi = leaves
            .iter()
            .filter(|((p, c, l), _)| {
                *p == prog && c.starts_with("bpf_ringbuf_") && l == "native_write_msr"
            })
            .map(|(_, n)| *n)
            .sum();
        let mut rows: Vec<(String, u64, String)> = callees
            .iter()
            .filter(|((p, _), _)| *p == prog)
            .map(|((_, callee), &n)| {
                let leaf = leaves
                    .iter()
                    .filter(|((p, c, _), _)| *p == prog && c == callee)
                    .max_by_key(|(_, n)| **n)
                    .map(|((_, _, l), _)| l.clone())
                    .unwrap_or_default();
                (callee.clone(), n, leaf)
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1));
        out.insert(
            prog,
            Profile {
                total,
                callees: rows,
                wakeup_ipi,
            },
        );
    }
    Ok(out)
}

/// Starts `perf record` of one process (user and kernel, no call graphs)
/// for `seconds` into `out`; wait on the child.
pub fn record_process(out: &Path, pid: u32, seconds: u32) -> anyhow::Result<std::process::Child> {
    start_record(&["-p", &pid.to_string()], out, seconds)
}

/// One function of a process profile: (share of samples in %, binary, function).
pub type HotFunction = (f64, String, String);

/// The `rows` hottest functions of a process profile, and the share of
/// samples spent in the kernel.
pub fn top_functions(data: &Path, rows: usize) -> anyhow::Result<(Vec<HotFunction>, f64)> {
    let out = Command::new("perf")
        .args([
            "report",
            "--no-children",
            "--sort",
            "dso,sym",
            "-g",
            "none",
            "--stdio",
            "-i",
        ])
        .arg(data)
        .output()
        .context("run perf report")?;
    if !out.status.success() {
        bail!(
            "perf report failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut all = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        // "    15.46%  libc.so.6  [.] __memcmp_evex_movbe"
        let mut parts = line.split_whitespace();
        let Some(share) = parts
            .next()
            .and_then(|p| p.strip_suffix('%')?.parse::<f64>().ok())
        else {
            continue;
        };
        let Some(dso) = parts.next() else { continue };
        let _kind = parts.next();
        let sym: Vec<&str> = parts.collect();
        all.push((share, dso.to_owned(), sym.join(" ")));
    }
    let kernel = all
        .iter()
        .filter(|(_, dso, _)| dso.starts_with("[kernel"))
        .map(|(s, _, _)| s)
        .sum();
    all.truncate(rows);
    Ok((all, kernel))
}
