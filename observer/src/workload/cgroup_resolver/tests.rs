use std::fs;

use super::*;
use crate::workload::test_support::TempDir;

const POD: &str = "kubepods.slice/kubepods-pod1_2.slice";

fn resolver(tree: &TempDir) -> CgroupResolver {
    CgroupResolver::new(tree.path().to_owned()).with_rescan_interval(Duration::ZERO)
}

#[test]
fn resolves_nested_directory_by_inode() {
    let tree = TempDir::new("cg-nested");
    tree.mkdir(&format!("{POD}/cri-containerd-abc.scope"));
    tree.mkdir("system.slice/sshd.service");
    let mut r = resolver(&tree);
    let id = tree.ino(&format!("{POD}/cri-containerd-abc.scope"));
    assert_eq!(
        r.resolve(id).as_deref(),
        Some("/kubepods.slice/kubepods-pod1_2.slice/cri-containerd-abc.scope")
    );
    assert_eq!(
        r.resolve(tree.ino("system.slice")).as_deref(),
        Some("/system.slice")
    );
}

#[test]
fn root_resolves_to_slash() {
    let tree = TempDir::new("cg-root");
    let mut r = resolver(&tree);
    assert_eq!(r.resolve(tree.ino("")).as_deref(), Some("/"));
}

#[test]
fn unknown_id_is_none() {
    let tree = TempDir::new("cg-unknown");
    tree.mkdir("a");
    let mut r = resolver(&tree);
    assert_eq!(r.resolve(u64::MAX), None);
}

#[test]
fn missing_root_is_none_not_a_panic() {
    let tree = TempDir::new("cg-missing");
    let mut r = CgroupResolver::new(tree.path().join("nope"));
    assert_eq!(r.resolve(1), None);
}

#[test]
fn one_scan_fills_the_cache_for_siblings() {
    let tree = TempDir::new("cg-prefetch");
    tree.mkdir("a");
    tree.mkdir("b");
    let mut r =
        CgroupResolver::new(tree.path().to_owned()).with_rescan_interval(Duration::from_secs(3600));
    let t0 = Instant::now();
    assert_eq!(r.resolve_at(tree.ino("a"), None, t0).as_deref(), Some("/a"));
    // The gate is now closed, yet b is known from the same scan.
    assert_eq!(r.resolve_at(tree.ino("b"), None, t0).as_deref(), Some("/b"));
}

#[test]
fn miss_rescans_at_most_once_per_interval() {
    let tree = TempDir::new("cg-throttle");
    let mut r =
        CgroupResolver::new(tree.path().to_owned()).with_rescan_interval(Duration::from_secs(2));
    let t0 = Instant::now();
    assert_eq!(r.resolve_at(u64::MAX, None, t0), None); // first scan
    tree.mkdir("late");
    let late = tree.ino("late");
    assert_eq!(r.resolve_at(late, None, t0 + Duration::from_secs(1)), None);
    assert_eq!(
        r.resolve_at(late, None, t0 + Duration::from_secs(2))
            .as_deref(),
        Some("/late")
    );
}

#[test]
fn a_hit_is_trusted_without_a_stat_until_the_recheck_then_a_removed_cgroup_is_dropped() {
    let tree = TempDir::new("cg-removed");
    tree.mkdir("gone");
    let id = tree.ino("gone");
    let mut r = resolver(&tree);
    let t0 = Instant::now();
    assert_eq!(r.resolve_at(id, None, t0).as_deref(), Some("/gone"));
    fs::remove_dir(tree.path().join("gone")).unwrap();
    // cgroup ids are never reused: within the recheck interval the cache
    // answers without touching the filesystem.
    let soon = t0 + CGROUP_RECHECK / 2;
    assert_eq!(r.resolve_at(id, None, soon).as_deref(), Some("/gone"));
    assert_eq!(r.resolve_at(id, None, t0 + CGROUP_RECHECK), None);
    assert!(!r.cache.contains(&id));
}

#[test]
fn cached_path_with_another_inode_is_replaced_by_a_rescan() {
    let tree = TempDir::new("cg-renamed");
    tree.mkdir("a");
    let id = tree.ino("a");
    let mut r = resolver(&tree);
    assert_eq!(r.resolve(id).as_deref(), Some("/a"));
    // The old inode moves away; a new directory takes its path.
    fs::rename(tree.path().join("a"), tree.path().join("b")).unwrap();
    tree.mkdir("a");
    assert_ne!(tree.ino("a"), id);
    let later = Instant::now() + CGROUP_RECHECK;
    assert_eq!(r.resolve_at(id, None, later).as_deref(), Some("/b"));
    assert_eq!(
        r.resolve_at(tree.ino("a"), None, later).as_deref(),
        Some("/a")
    );
}

#[test]
fn stale_entry_is_dropped_even_when_the_gate_is_closed() {
    let tree = TempDir::new("cg-stale-closed");
    tree.mkdir("x");
    let id = tree.ino("x");
    let mut r =
        CgroupResolver::new(tree.path().to_owned()).with_rescan_interval(Duration::from_secs(3600));
    let t0 = Instant::now();
    assert_eq!(r.resolve_at(id, None, t0).as_deref(), Some("/x"));
    fs::remove_dir(tree.path().join("x")).unwrap();
    assert_eq!(r.resolve_at(id, None, t0 + CGROUP_RECHECK), None);
    assert!(!r.cache.contains(&id));
}

#[test]
fn symlinked_directories_are_not_followed() {
    let tree = TempDir::new("cg-symlink");
    tree.mkdir("real");
    tree.symlink(&tree.path().join("real").to_string_lossy(), "link");
    let mut r = resolver(&tree);
    assert_eq!(r.resolve(tree.ino("real")).as_deref(), Some("/real"));
    let mut paths: Vec<String> = r.cache.iter().map(|(_, c)| c.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["/", "/real"]);
}

#[test]
fn cache_stays_bounded() {
    assert_eq!(
        CgroupResolver::new(PathBuf::from("/nonexistent"))
            .cache
            .cap()
            .get(),
        CGROUP_CACHE_CAPACITY
    );
}
