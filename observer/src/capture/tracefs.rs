//! tracefs, where `--tls-probes` finds the `syscalls/sys_enter_*`
//! tracepoints that join a TLS session to its socket.
//!
//! Most distributions' init mounts it at /sys/kernel/tracing; minimal
//! hosts, VMs and some sandboxes do not, and aya then reports only
//! "tracefs not found". gatewatch mounts it itself (root already holds
//! CAP_SYS_ADMIN for the cgroup attach), as systemd would at boot, and
//! leaves it mounted: another tool may start using it meanwhile.
use std::{
    io,
    path::{Path, PathBuf},
};

/// Where the kernel documents tracefs's mount point.
const TRACEFS: &str = "/sys/kernel/tracing";
/// Where it appears under debugfs on older setups.
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// What [`ensure_mounted`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tracefs {
    /// Already mounted there.
    Found(PathBuf),
    /// Not mounted anywhere aya looks: mounted here now.
    Mounted(PathBuf),
}

#[derive(Debug, thiserror::Error)]
#[error(
    "tracefs is not mounted and mounting it at {path} failed ({source}): mount it with \
     `mount -t tracefs tracefs /sys/kernel/tracing`, or in Kubernetes give the pod a hostPath \
     of /sys/kernel/tracing"
)]
pub struct MountError {
    path: PathBuf,
    source: io::Error,
}

/// Makes tracefs reachable where aya looks for it (the same two places,
/// in the same order), mounting it at /sys/kernel/tracing if neither is.
/// Must run before aya's first tracepoint attach, which caches the answer.
pub fn ensure_mounted() -> Result<Tracefs, MountError> {
    ensure_at(
        &[Path::new(TRACEFS), Path::new(DEBUGFS_TRACING)],
        mount_tracefs,
    )
}

/// The first of `dirs` that holds a tracefs, or `dirs[0]` once `mount`
/// put one there. A mount that fails because another process (a second
/// agent starting at once, an init system) mounted it meanwhile is not an
/// error: the kernel refuses the same tracefs twice on one mount point
/// (EBUSY), and the mount point is then populated.
fn ensure_at(
    dirs: &[&Path],
    mount: impl FnOnce(&Path) -> io::Result<()>,
) -> Result<Tracefs, MountError> {
    let found = || dirs.iter().find(|d| populated(d)).map(|d| d.to_path_buf());
    if let Some(dir) = found() {
        return Ok(Tracefs::Found(dir));
    }
    match mount(dirs[0]) {
        Ok(()) => Ok(Tracefs::Mounted(dirs[0].to_owned())),
        Err(source) => found().map(Tracefs::Found).ok_or_else(|| MountError {
            path: dirs[0].to_owned(),
            source,
        }),
    }
}

fn mount_tracefs(dir: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            dir.as_ptr(),
            c"tracefs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A mounted tracefs lists its files; its bare mount point is empty (the
/// kernel makes /sys/kernel/tracing whether or not it is mounted).
fn populated(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gatewatch-tracefs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    #[test]
    fn an_empty_mount_point_is_not_a_mounted_tracefs() {
        let dir = temp_dir("empty");
        assert!(!populated(&dir));
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
    }

    #[test]
    fn a_missing_directory_is_not_a_mounted_tracefs() {
        let dir = temp_dir("missing");
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
        assert!(!populated(&dir));
    }

    #[test]
    fn a_mount_lost_to_another_process_that_mounted_it_finds_theirs() {
        let dir = temp_dir("raced");
        let got = ensure_at(&[&dir], |d| {
            // The other agent's mount lands first; ours is refused.
            std::fs::create_dir(d.join("events")).expect("create events");
            Err(io::Error::from_raw_os_error(libc::EBUSY))
        });
        assert_eq!(
            got.expect("their mount is found"),
            Tracefs::Found(dir.clone())
        );
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
    }

    #[test]
    fn a_failed_mount_with_nothing_mounted_is_an_error_naming_the_fix() {
        let dir = temp_dir("refused");
        let err = ensure_at(&[&dir], |_| Err(io::Error::from_raw_os_error(libc::EPERM)))
            .expect_err("nothing is mounted");
        let text = err.to_string();
        assert!(text.contains("mount -t tracefs"), "{text}");
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
    }

    #[test]
    fn a_mounted_tracefs_is_used_without_mounting() {
        let dir = temp_dir("present");
        std::fs::create_dir(dir.join("events")).expect("create events");
        let got = ensure_at(&[Path::new("/nonexistent-tracefs"), &dir], |_| {
            panic!("must not mount")
        });
        assert_eq!(got.expect("found"), Tracefs::Found(dir.clone()));
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
    }

    #[test]
    fn a_directory_with_entries_is_a_mounted_tracefs() {
        let dir = temp_dir("full");
        std::fs::create_dir(dir.join("events")).expect("create events");
        assert!(populated(&dir));
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
    }
}
