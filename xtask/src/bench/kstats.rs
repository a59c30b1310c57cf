//! Per-program kernel cost from BPF run-time statistics: `run_time_ns` and
//! `run_cnt` of the programs attached to one cgroup, as bpftool reports them.
use std::{collections::BTreeMap, path::Path, process::Command};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// Program name → id, for the programs attached directly to `cgroup`.
pub fn attached(cgroup: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    let v = bpftool(
        Command::new("bpftool")
            .args(["-j", "cgroup", "show"])
            .arg(cgroup),
    )?;
    let mut out = BTreeMap::new();
    for p in v.as_array().context("bpftool cgroup show: not a list")? {
        let id = p["id"].as_u64().context("program without id")?;
        let name = p["name"].as_str().unwrap_or("?").to_owned();
        out.insert(name, id);
    }
    if out.is_empty() {
        bail!("no program attached to {}", cgroup.display());
    }
    Ok(out)
}

/// Program name → id, for the programs of process `pid` with these names
/// (kernel names: 15 bytes at most). The ids come from the process's file
/// descriptors (`prog_id:` in /proc/PID/fdinfo, for programs and links),
/// which needs no bpftool built with pid iterators.
pub fn of_process(pid: u32, names: &[&str]) -> anyhow::Result<BTreeMap<String, u64>> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut ids = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("read {dir}"))? {
        let Ok(text) = std::fs::read_to_string(entry?.path()) else {
            continue;
        };
        for line in text.lines() {
            if let Some(id) = line
                .strip_prefix("prog_id:")
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                ids.insert(id);
            }
        }
    }
    let mut out = BTreeMap::new();
    for id in ids {
        let v =
            bpftool(Command::new("bpftool").args(["-j", "prog", "show", "id", &id.to_string()]))?;
        let name = v["name"].as_str().unwrap_or_default();
        if let Some(wanted) = names.iter().find(|n| same_program(n, name)) {
            out.insert((*wanted).to_owned(), id);
        }
    }
    Ok(out)
}

/// The kernel keeps 15 bytes of a program's name; bpftool shows the whole
/// name when the program has BTF. Either way, the same program.
fn same_program(a: &str, b: &str) -> bool {
    a.as_bytes()[..a.len().min(15)] == b.as_bytes()[..b.len().min(15)]
}

/// (run_time_ns, run_cnt) per program id.
pub fn snapshot(ids: &BTreeMap<String, u64>) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
    let mut out = BTreeMap::new();
    for (name, id) in ids {
        let v =
            bpftool(Command::new("bpftool").args(["-j", "prog", "show", "id", &id.to_string()]))?;
        // bpftool leaves the fields out while they are zero.
        let ns = v["run_time_ns"].as_u64().unwrap_or(0);
        let cnt = v["run_cnt"].as_u64().unwrap_or(0);
        out.insert(name.clone(), (ns, cnt));
    }
    Ok(out)
}

/// How many loaded programs (of any process) have each of these names.
pub fn loaded_with_names(names: &[String]) -> anyhow::Result<BTreeMap<String, usize>> {
    let v = bpftool(Command::new("bpftool").args(["-j", "prog", "show"]))?;
    let mut out: BTreeMap<String, usize> = names.iter().map(|n| (n.clone(), 0)).collect();
    for p in v.as_array().context("bpftool prog show: not a list")? {
        if let Some(n) = p["name"].as_str().and_then(|n| out.get_mut(n)) {
            *n += 1;
        }
    }
    Ok(out)
}

/// Per program: runs and mean ns per run between two snapshots.
pub fn delta(
    before: &BTreeMap<String, (u64, u64)>,
    after: &BTreeMap<String, (u64, u64)>,
) -> BTreeMap<String, (u64, Option<f64>)> {
    after
        .iter()
        .map(|(name, &(ns, cnt))| {
            let (ns0, cnt0) = before.get(name).copied().unwrap_or((0, 0));
            let runs = cnt.saturating_sub(cnt0);
            let mean = (runs > 0).then(|| ns.saturating_sub(ns0) as f64 / runs as f64);
            (name.clone(), (runs, mean))
        })
        .collect()
}

fn bpftool(cmd: &mut Command) -> anyhow::Result<Value> {
    let out = cmd
        .output()
        .context("run bpftool (is bpftool installed?)")?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("{cmd:?}: not JSON"))
}
