use super::*;
use crate::workload::test_support::TempDir;

/// A stat line shaped like the kernel's, with the given comm and start time.
fn stat_line(pid: u32, comm: &str, start_time: u64) -> String {
    // Fields 3..=21, then starttime (22), then a few more.
    let mut fields = vec!["S".to_owned()];
    fields.extend((4..=21).map(|n| n.to_string()));
    fields.push(start_time.to_string());
    fields.extend(["1234", "56", "18446744073709551615"].map(str::to_owned));
    format!("{pid} ({comm}) {}\n", fields.join(" "))
}

fn fake_process(root: &TempDir, pid: u32, start_time: u64, exe: &str) {
    root.write(
        &format!("{pid}/stat"),
        &stat_line(pid, "python3", start_time),
    );
    root.symlink(exe, &format!("{pid}/exe"));
}

#[test]
fn start_time_is_field_22() {
    assert_eq!(parse_start_time(&stat_line(1, "init", 42)), Some(42));
}

#[test]
fn comm_with_spaces_and_parentheses_does_not_shift_fields() {
    for comm in ["a b", "x) (y", "((", "))", ") 1 2 3 4 5 (", ""] {
        assert_eq!(
            parse_start_time(&stat_line(7, comm, 987_654)),
            Some(987_654),
            "comm {comm:?}"
        );
    }
}

#[test]
fn malformed_stat_yields_none() {
    assert_eq!(parse_start_time(""), None);
    assert_eq!(parse_start_time("1 (x S 1 2 3"), None);
    assert_eq!(parse_start_time("1 (x) S 1 2 3"), None);
    let bad = stat_line(1, "x", 5).replace(" 5 1234", " five 1234");
    assert_eq!(parse_start_time(&bad), None);
}

#[test]
fn own_process_exe_matches_current_exe_on_real_proc() {
    let mut cache = ProcessCache::new(PathBuf::from("/proc"));
    let want = std::env::current_exe().unwrap();
    let got = cache.exe(std::process::id()).expect("own exe readable");
    assert_eq!(PathBuf::from(got), want);
    // Real stat parses too.
    let stat = fs::read_to_string("/proc/self/stat").unwrap();
    assert!(parse_start_time(&stat).is_some());
}

#[test]
fn exe_is_read_from_a_fake_proc_root() {
    let root = TempDir::new("proc-basic");
    fake_process(&root, 4242, 100, "/usr/bin/python3.12");
    let mut cache = ProcessCache::new(root.path().to_owned());
    assert_eq!(cache.exe(4242).as_deref(), Some("/usr/bin/python3.12"));
}

#[test]
fn same_start_time_serves_the_cached_path() {
    let root = TempDir::new("proc-cached");
    fake_process(&root, 10, 100, "/bin/first");
    let mut cache = ProcessCache::new(root.path().to_owned());
    assert_eq!(cache.exe(10).as_deref(), Some("/bin/first"));
    // Only the link changes: the cache (keyed on start time) wins.
    root.symlink("/bin/second", "10/exe");
    assert_eq!(cache.exe(10).as_deref(), Some("/bin/first"));
}

#[test]
fn pid_reuse_is_detected_by_start_time() {
    let root = TempDir::new("proc-reuse");
    fake_process(&root, 10, 100, "/bin/old");
    let mut cache = ProcessCache::new(root.path().to_owned());
    assert_eq!(cache.exe(10).as_deref(), Some("/bin/old"));
    fake_process(&root, 10, 200, "/bin/new");
    assert_eq!(cache.exe(10).as_deref(), Some("/bin/new"));
}

#[test]
fn exited_process_keeps_its_last_known_exe() {
    let root = TempDir::new("proc-exited");
    fake_process(&root, 10, 100, "/usr/bin/curl");
    let mut cache = ProcessCache::new(root.path().to_owned());
    assert_eq!(cache.exe(10).as_deref(), Some("/usr/bin/curl"));
    fs::remove_dir_all(root.path().join("10")).unwrap();
    assert_eq!(cache.exe(10).as_deref(), Some("/usr/bin/curl"));
}

#[test]
fn unknown_or_unreadable_process_is_none() {
    let root = TempDir::new("proc-none");
    let mut cache = ProcessCache::new(root.path().to_owned());
    assert_eq!(cache.exe(999), None);
    assert_eq!(cache.exe(0), None);
    // A kernel thread: stat but no exe link.
    root.write("2/stat", &stat_line(2, "kthreadd", 3));
    assert_eq!(cache.exe(2), None);
    assert!(cache.cache.contains(&2), "failure is remembered");
}

#[test]
fn cache_stays_bounded() {
    let cache = ProcessCache::new(PathBuf::from("/nonexistent"));
    assert_eq!(cache.cache.cap().get(), PROCESS_CACHE_CAPACITY);
}

#[test]
fn the_same_process_seen_again_is_served_without_reading_proc_until_the_recheck() {
    let root = TempDir::new("proc-seen");
    fake_process(&root, 10, 100, "/bin/first");
    let mut cache = ProcessCache::new(root.path().to_owned());
    let seen = Seen {
        cgroup_id: 7,
        comm: *b"python3\0\0\0\0\0\0\0\0\0",
    };
    let t0 = Instant::now();
    assert_eq!(cache.exe_seen(10, seen, t0).as_deref(), Some("/bin/first"));
    // procfs now says another process has the pid; within the recheck
    // interval the same cgroup and comm are trusted without a read.
    fake_process(&root, 10, 200, "/bin/second");
    let soon = t0 + PROCESS_RECHECK / 2;
    assert_eq!(
        cache.exe_seen(10, seen, soon).as_deref(),
        Some("/bin/first")
    );
    // Another comm (an exec) or another cgroup is checked at once...
    let other = Seen {
        cgroup_id: 8,
        ..seen
    };
    assert_eq!(
        cache.exe_seen(10, other, soon).as_deref(),
        Some("/bin/second")
    );
    // ...and so is anything after the recheck interval.
    fake_process(&root, 10, 300, "/bin/third");
    let later = soon + PROCESS_RECHECK;
    assert_eq!(
        cache.exe_seen(10, other, later).as_deref(),
        Some("/bin/third")
    );
}

#[test]
fn comm_and_start_time_are_read_until_the_process_is_gone() {
    let root = TempDir::new("proc-comm");
    fake_process(&root, 12, 77, "/usr/bin/litellm");
    root.write("12/comm", "litellm\n");
    assert_eq!(read_comm(root.path(), 12).as_deref(), Some("litellm"));
    assert_eq!(read_start_time(root.path(), 12), Some(77));
    assert_eq!(read_comm(root.path(), 13), None);
    assert_eq!(read_start_time(root.path(), 13), None);
}
