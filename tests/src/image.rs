//! The container image for the as-deployed tests: a runtime base made of
//! Debian packages (mmdebstrap, then `podman import`: no container registry
//! is needed), kept between runs; deploy/Dockerfile built on it from the
//! binary under test (`BINARY_STAGE=prebuilt`) and run with podman and
//! runc. Images and containers a test makes are removed on drop.
use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use crate::{run_ok, unique};

/// What the runtime base holds: what gcr.io/distroless/cc-debian12 holds
/// (glibc, libgcc_s, CA certificates, /etc/services), no shell.
pub const BASE_PACKAGES: &str = "libc6,libgcc-s1,base-files,netbase,ca-certificates";
/// The Debian release of the base, as in deploy/Dockerfile's images.
pub const BASE_SUITE: &str = "bookworm";
pub const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";
/// The OCI runtime: crun, podman's default, refuses hybrid cgroup trees.
pub const OCI_RUNTIME: &str = "runc";
/// The container's process limit. podman's default (the kernel's maximum)
/// is refused by runc once the capabilities are dropped ("error setting
/// rlimit type 6"); on the machine this was written on 32768 was accepted
/// and 65536 refused, and gatewatch needs a few dozen threads.
pub const CONTAINER_NPROC: u64 = 32_768;
/// Seconds `podman stop` waits after SIGTERM (terminationGracePeriodSeconds).
pub const STOP_GRACE_SECS: &str = "30";

fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.args(["--runtime", OCI_RUNTIME]).stdin(Stdio::null());
    cmd
}

fn need(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{tool} is needed (cargo xtask install installs it)");
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A short stable hash, so the base's tag changes with its package list.
fn fnv(s: &str) -> String {
    let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{:08x}", h as u32)
}

/// The runtime base image's tag, made on first use and kept afterwards.
pub fn base_image() -> String {
    need("podman");
    let tag = format!(
        "localhost/gatewatch-test-base:{BASE_SUITE}-{}",
        fnv(&format!("{BASE_PACKAGES}\nca-bundle"))
    );
    let exists = podman()
        .args(["image", "exists", &tag])
        .status()
        .expect("run podman");
    if exists.success() {
        return tag;
    }
    need("mmdebstrap");
    let root = std::env::temp_dir().join(unique("base"));
    let tar = root.with_extension("tar");
    // `extract`: unpack the packages, run nothing (no shell to run it with).
    run_ok(
        Command::new("mmdebstrap")
            .arg("--variant=extract")
            .arg(format!("--include={BASE_PACKAGES}"))
            .arg(BASE_SUITE)
            .arg(&root)
            .arg(DEBIAN_MIRROR)
            .stdin(Stdio::null()),
    );
    write_ca_bundle(&root);
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    let _ = std::fs::remove_dir_all(&root);
    let imported = podman().arg("import").arg(&tar).arg(&tag).output();
    let _ = std::fs::remove_file(&tar);
    let imported = imported.expect("run podman import");
    assert!(
        imported.status.success(),
        "podman import: {}",
        String::from_utf8_lossy(&imported.stderr)
    );
    tag
}

/// What ca-certificates' postinst (update-ca-certificates) would write and
/// the `extract` variant does not run: the certificates, concatenated.
/// Without it the Kubernetes client (rustls, native roots) refuses to start.
fn write_ca_bundle(root: &Path) {
    let dir = root.join("usr/share/ca-certificates/mozilla");
    let mut certs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    certs.sort();
    let mut bundle = Vec::new();
    for cert in &certs {
        bundle.extend(std::fs::read(cert).expect("read certificate"));
    }
    std::fs::write(root.join("etc/ssl/certs/ca-certificates.crt"), bundle).expect("write bundle");
}

fn image_ids() -> Vec<String> {
    text(&run_ok(podman().args([
        "images",
        "--all",
        "--quiet",
        "--no-trunc",
    ])))
    .lines()
    .map(str::to_owned)
    .collect()
}

/// deploy/Dockerfile built from `binary` on `base`; the image and its
/// intermediate stages are removed on drop.
pub struct BuiltImage {
    pub tag: String,
    made: Vec<String>,
    context: PathBuf,
}

impl BuiltImage {
    pub fn build(base: &str, binary: &Path) -> Self {
        let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/Dockerfile");
        let context = std::env::temp_dir().join(unique("imgctx"));
        std::fs::create_dir_all(&context).expect("create build context");
        std::fs::copy(binary, context.join("gatewatch")).expect("copy the binary");
        let tag = format!("localhost/gatewatch-test:{}", unique("img"));
        let before = image_ids();
        let built = podman()
            .arg("build")
            .arg("--file")
            .arg(&dockerfile)
            .args([
                "--build-arg=BINARY_STAGE=prebuilt",
                "--build-arg=PREBUILT=gatewatch",
                &format!("--build-arg=RUNTIME_BASE={base}"),
                "--tag",
                &tag,
            ])
            .arg(&context)
            .output()
            .expect("run podman build");
        let made = image_ids()
            .into_iter()
            .filter(|id| !before.contains(id))
            .collect();
        let image = Self { tag, made, context };
        assert!(
            built.status.success(),
            "podman build:\n{}\n{}",
            text(&built),
            String::from_utf8_lossy(&built.stderr)
        );
        image
    }

    /// `podman run -d` of this image with host networking, the caller's
    /// `args` (options, then `--`, the image and its command), this
    /// process's open-file limit and [`CONTAINER_NPROC`] (podman's defaults
    /// are above what runc may set once the capabilities are dropped).
    pub fn run(&self, args: &[&str]) -> Container {
        let name = unique("ctr");
        let limit = |resource| {
            let mut rl = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes only into `rl`.
            assert_eq!(unsafe { libc::getrlimit(resource, &mut rl) }, 0);
            format!("{}:{}", rl.rlim_cur, rl.rlim_max)
        };
        run_ok(
            podman()
                .args(["run", "--detach", "--name", &name, "--network=host"])
                .arg(format!("--ulimit=nofile={}", limit(libc::RLIMIT_NOFILE)))
                .arg(format!(
                    "--ulimit=nproc={CONTAINER_NPROC}:{CONTAINER_NPROC}"
                ))
                .args(args),
        );
        Container { name }
    }
}

impl Drop for BuiltImage {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rmi", "--force", &self.tag])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for id in &self.made {
            let _ = podman()
                .args(["rmi", "--force", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.context);
    }
}

/// A container started by [`BuiltImage::run`], removed on drop.
pub struct Container {
    pub name: String,
}

impl Container {
    fn inspect(&self, format: &str) -> String {
        text(&run_ok(podman().args([
            "container",
            "inspect",
            "--format",
            format,
            &self.name,
        ])))
    }

    pub fn running(&self) -> bool {
        self.inspect("{{.State.Running}}") == "true"
    }

    /// The container's main process, as a host pid.
    pub fn host_pid(&self) -> u32 {
        self.inspect("{{.State.Pid}}")
            .parse()
            .expect("numeric State.Pid")
    }

    /// Its stdout and stderr so far.
    pub fn logs(&self) -> String {
        let out = podman()
            .args(["logs", &self.name])
            .output()
            .expect("run podman logs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// `podman stop` (SIGTERM, then SIGKILL after the grace period); the
    /// exit code.
    pub fn stop(&self) -> i32 {
        run_ok(podman().args(["stop", "--time", STOP_GRACE_SECS, &self.name]));
        self.inspect("{{.State.ExitCode}}")
            .parse()
            .expect("numeric State.ExitCode")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "--force", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
