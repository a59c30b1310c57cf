//! Where to attach: the host's cgroup v2 mount, unified or hybrid.
use std::path::{Path, PathBuf};

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Finds the cgroup v2 mount: `/sys/fs/cgroup` when it is v2 (unified),
/// else `/sys/fs/cgroup/unified` (hybrid), else the first cgroup2 mount.
pub fn find_cgroup2_root(mountinfo: &str) -> Option<PathBuf> {
    let mounts: Vec<&str> = mountinfo
        .lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let fstype = post.split_whitespace().next()?;
            let mount_point = pre.split_whitespace().nth(4)?;
            (fstype == "cgroup2").then_some(mount_point)
        })
        .collect();
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .find(|p| mounts.contains(p))
        .or_else(|| mounts.first().copied())
        .map(PathBuf::from)
}

pub fn is_cgroup2(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statfs fills a zeroed struct from a valid C string path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_type as i64 == CGROUP2_SUPER_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_unified_and_hybrid_cgroup2_mounts() {
        let unified = "29 1 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
        assert_eq!(
            find_cgroup2_root(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        let hybrid = "25 1 0:22 / /sys/fs/cgroup ro - tmpfs tmpfs ro\n\
                      26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                      27 25 0:24 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(
            find_cgroup2_root(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let elsewhere = "30 1 0:27 / /host/cgroup rw - cgroup2 none rw\n";
        assert_eq!(
            find_cgroup2_root(elsewhere),
            Some(PathBuf::from("/host/cgroup"))
        );
        assert_eq!(
            find_cgroup2_root("26 25 0:24 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw\n"),
            None
        );
    }
}
