//! Kernel matrix: boots Debian's packaged kernels in qemu with a small
//! initramfs (static busybox, gatewatch and its shared libraries) whose /init
//! starts gatewatch on the cgroup v2 root, makes IPv4 and IPv6 connections on
//! loopback, checks they are counted and prints one `GATEWATCH-VERDICT:` line
//! on the serial console. A verifier rejection shows up as a FAIL with the
//! verifier log tail gatewatch prints.
//!
//! Kernels are resolved through apt and only their `vmlinuz` is kept, under
//! `target/kernel-matrix/kernels/`, so a rerun needs no download.
mod cpio;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{install, workspace_root};

/// Debian packages booted by the matrix. Meta-packages are followed to the
/// kernel image they depend on, so the matrix tracks what a freshly updated
/// Debian 12 node runs (pinned ABI packages like `linux-image-6.1.0-47-amd64`
/// leave the archive after a point release); each result line names the exact
/// kernel. `GATEWATCH_KERNELS="pkg ..."` overrides the list.
const KERNELS: &[&str] = &[
    // Debian 12 (bookworm)'s own kernel, the 6.1 LTS series: the oldest in the matrix.
    "linux-image-amd64",
    // The newest Debian kernel bookworm carries (6.12 LTS, Debian 13's series).
    "linux-image-6.12-amd64",
];

/// Tools the matrix runs: qemu and a static busybox for the guest.
const PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static"];

/// The guest's /init.
const INIT: &str = include_str!("../assets/kernel-matrix-init.sh");
const VERDICT: &str = "GATEWATCH-VERDICT:";
/// What /init prints first: a boot without it never ran gatewatch.
const INIT_STARTED: &str = "GATEWATCH-INIT: started";
/// Boots per kernel when the guest fails before /init (a kernel crash
/// during an emulated boot says nothing about gatewatch).
const BOOT_ATTEMPTS: u32 = 2;
/// Whole boot, checks and power-off. A boot takes a few seconds under KVM
/// and about ten under TCG; the guest gives up by itself 480 s after /init
/// starts (6.1 under TCG spends its verifier's whole budget on
/// --tls-probes' long copy before the short variant loads), so these only
/// catch a kernel that never gets there.
const BOOT_TIMEOUT_KVM: Duration = Duration::from_secs(540);
const BOOT_TIMEOUT_TCG: Duration = Duration::from_secs(540);
const GUEST_MEMORY: &str = "512M";

#[derive(Clone, Copy, PartialEq)]
enum Accel {
    Kvm,
    Tcg,
}

/// The bounded run `cargo xtask test` includes: (passed, failed).
///
/// It uses KVM when the machine has hardware virtualization and emulates the
/// CPU otherwise: a Debian kernel boots and runs the checks in about ten
/// seconds under TCG on two cores, so the matrix is never skipped. Setup
/// errors (no apt, no network on a cold cache) count as one failure so the
/// rest of the test summary still prints.
pub fn ci() -> anyhow::Result<(u64, u64)> {
    match matrix(accel()) {
        Ok(counts) => Ok(counts),
        Err(e) => {
            println!("kernel matrix: FAIL: {e:#}");
            Ok((0, 1))
        }
    }
}

/// `cargo xtask kernel-matrix`: the whole matrix; fails if any kernel fails.
pub fn run() -> anyhow::Result<(u64, u64)> {
    let (passed, failed) = matrix(accel())?;
    if failed > 0 {
        bail!("{failed} of {} kernels failed", passed + failed);
    }
    Ok((passed, failed))
}

/// KVM when it can run an unmodified kernel, else TCG, with a line saying why.
fn accel() -> Accel {
    match hardware_kvm() {
        Ok(()) => {
            println!("kernel matrix: booting under KVM");
            Accel::Kvm
        }
        Err(why) => {
            println!("kernel matrix: emulating the CPU (TCG): {why:#}");
            Accel::Tcg
        }
    }
}

/// A usable /dev/kvm backed by VT-x or AMD-V. Some sandboxes expose a
/// /dev/kvm backed by PVM (module kvm_pvm, no vmx/svm flag), which only runs
/// guests built for PVM: a stock kernel hangs in early boot there or dies
/// with "KVM internal error. Suberror: 1".
fn hardware_kvm() -> anyhow::Result<()> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .context("cannot open /dev/kvm read-write")?;
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").context("cannot read /proc/cpuinfo")?;
    let flags = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags")?.split_once(':'))
        .map_or("", |(_, f)| f);
    if !flags.split_whitespace().any(|f| f == "vmx" || f == "svm") {
        let pvm = Path::new("/sys/module/kvm_pvm").exists();
        bail!(
            "/dev/kvm is there but the CPU has no vmx/svm flag{}: it cannot boot a stock kernel",
            if pvm {
                " (it is PVM, module kvm_pvm)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn matrix(accel: Accel) -> anyhow::Result<(u64, u64)> {
    let started = Instant::now();
    install::debian_packages(PACKAGES)?;
    install::toolchain()?;
    let gatewatch = crate::build(false)?;
    let dir = workspace_root().join("target/kernel-matrix");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let initrd = dir.join("initramfs.cpio");
    build_initramfs(&gatewatch, &initrd)?;
    println!(
        "kernel matrix: tools, gatewatch build and initramfs ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let list: Vec<String> = match std::env::var("GATEWATCH_KERNELS") {
        Ok(v) if !v.trim().is_empty() => v.split_whitespace().map(str::to_owned).collect(),
        _ => KERNELS.iter().map(|k| (*k).to_owned()).collect(),
    };
    let mut apt = Apt::default();
    let (mut passed, mut failed) = (0u64, 0u64);
    for entry in &list {
        let kernel = match apt.kernel(entry, &dir.join("kernels")) {
            Ok(k) => k,
            Err(e) => {
                println!("kernel {entry}: FAIL (cannot get the kernel: {e:#})");
                failed += 1;
                continue;
            }
        };
        let mut outcome = boot(&kernel, &initrd, &dir, accel)?;
        for _ in 1..BOOT_ATTEMPTS {
            if !boot_failed_before_init(&outcome) {
                break;
            }
            println!(
                "kernel {}: the guest failed before /init started (serial log kept as {}); booting again",
                kernel.release,
                outcome.serial.display()
            );
            outcome = boot(&kernel, &initrd, &dir, accel)?;
        }
        let secs = outcome.seconds;
        match outcome.verdict {
            Verdict::Pass(detail) => {
                passed += 1;
                println!(
                    "kernel {} ({} {}): PASS ({detail}) [{secs:.1}s]",
                    kernel.release, kernel.package, kernel.version
                );
            }
            Verdict::Fail(reason, details) => {
                failed += 1;
                println!(
                    "kernel {} ({} {}): FAIL ({reason}) [{secs:.1}s]",
                    kernel.release, kernel.package, kernel.version
                );
                for line in details {
                    println!("    {line}");
                }
            }
        }
    }
    println!(
        "kernel matrix: {passed} passed, {failed} failed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok((passed, failed))
}

struct Kernel {
    /// The concrete image package, e.g. linux-image-6.1.0-56-amd64.
    package: String,
    version: String,
    /// `uname -r`, from the vmlinuz file name.
    release: String,
    vmlinuz: PathBuf,
}

#[derive(Default)]
struct Apt {
    updated: bool,
}

impl Apt {
    fn update(&mut self) -> anyhow::Result<()> {
        eprintln!("xtask: refreshing the apt package lists");
        crate::status(Command::new("apt-get").args(["update", "-qq"]))?;
        self.updated = true;
        Ok(())
    }

    /// Output of `apt-cache ARGS`, refreshing the package lists once if apt
    /// does not know the package.
    fn cache(&mut self, args: &[&str]) -> anyhow::Result<String> {
        loop {
            let out = Command::new("apt-cache")
                .args(args)
                .output()
                .context("cannot start apt-cache: the kernel matrix needs a Debian host")?;
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && !stdout.trim().is_empty() {
                return Ok(stdout);
            }
            if self.updated {
                bail!(
                    "apt-cache {} found nothing: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            self.update()?;
        }
    }

    /// The kernel `entry` names, from the cache or downloaded. Stale package
    /// lists can name a version the archive no longer has: then the lists
    /// are refreshed and the kernel resolved again, once.
    fn kernel(&mut self, entry: &str, cache: &Path) -> anyhow::Result<Kernel> {
        match self.fetch(entry, cache) {
            Err(e) if !self.updated => {
                eprintln!("xtask: {e:#}");
                self.update()?;
                self.fetch(entry, cache)
            }
            result => result,
        }
    }

    /// Follows meta-packages to the image package, then returns its cached
    /// vmlinuz, downloading the .deb once.
    fn fetch(&mut self, entry: &str, cache: &Path) -> anyhow::Result<Kernel> {
        let (package, version) = match self.resolve(entry, cache)? {
            Resolved::Cached(kernel) => return Ok(kernel),
            Resolved::Package { package, version } => (package, version),
        };
        if let Some(kernel) = cached(cache, &package, &version) {
            return Ok(kernel);
        }
        download(cache, package, version)
    }

    /// The image package and version a (meta-)package stands for.
    fn resolve(&mut self, entry: &str, cache: &Path) -> anyhow::Result<Resolved> {
        let mut package = entry.to_owned();
        // Known without asking apt when a meta-package pins it with `(= V)`.
        let mut pinned: Option<String> = None;
        for _hop in 0..=MAX_META_HOPS {
            if let Some(kernel) = pinned.as_deref().and_then(|v| cached(cache, &package, v)) {
                return Ok(Resolved::Cached(kernel));
            }
            let show = self.cache(&["show", "--no-all-versions", &package])?;
            let version = field(&show, "Version")
                .with_context(|| format!("no Version for {package}"))?
                .to_owned();
            let next = field(&show, "Depends").and_then(|deps| {
                deps.split(',')
                    .map(str::trim)
                    .find(|d| d.starts_with("linux-image-"))
            });
            let Some(next) = next else {
                return Ok(Resolved::Package { package, version });
            };
            let (name, constraint) = next.split_once(' ').unwrap_or((next, ""));
            package = name.to_owned();
            pinned = constraint
                .trim()
                .strip_prefix("(=")
                .and_then(|v| v.strip_suffix(')'))
                .map(|v| v.trim().to_owned());
        }
        bail!("{entry}: too many meta-package hops")
    }
}

/// Meta-packages followed at most from an entry to its image package.
const MAX_META_HOPS: usize = 4;

enum Resolved {
    Cached(Kernel),
    Package { package: String, version: String },
}

/// Downloads the image package and unpacks its vmlinuz into the cache.
fn download(cache: &Path, package: String, version: String) -> anyhow::Result<Kernel> {
    let dir = cache.join(format!("{package}_{version}"));
    eprintln!("xtask: downloading {package} {version}");
    let work = cache.join(format!(".download-{package}"));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let out = Command::new("apt-get")
        // apt drops to _apt to download; it cannot write into target/.
        .args(["-q", "-o", "APT::Sandbox::User=root", "download"])
        .arg(format!("{package}={version}"))
        .current_dir(&work)
        .output()
        .context("cannot start apt-get")?;
    if !out.status.success() {
        bail!(
            "apt-get download {package}={version} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let deb = fs::read_dir(&work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .with_context(|| format!("apt-get download left no .deb in {}", work.display()))?;
    let mut unpack = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start dpkg-deb")?;
    let tar = Command::new("tar")
        .args(["-x", "--wildcards", "./boot/vmlinuz-*"])
        .current_dir(&work)
        .stdin(unpack.stdout.take().context("dpkg-deb stdout")?)
        .status()
        .context("cannot start tar")?;
    let unpacked = unpack.wait()?;
    if !tar.success() || !unpacked.success() {
        bail!("cannot extract boot/vmlinuz-* from {}", deb.display());
    }
    let image = fs::read_dir(work.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .next()
        .with_context(|| format!("no boot/vmlinuz-* in {}", deb.display()))?;
    let release = image
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .context("unexpected vmlinuz name")?
        .to_owned();
    let vmlinuz = dir.join("vmlinuz");
    fs::create_dir_all(&dir)?;
    fs::rename(&image, &vmlinuz)?;
    fs::write(dir.join("release"), format!("{release}\n"))?;
    let _ = fs::remove_dir_all(&work);
    Ok(Kernel {
        package,
        version,
        release,
        vmlinuz,
    })
}

/// A kernel unpacked by an earlier run.
fn cached(cache: &Path, package: &str, version: &str) -> Option<Kernel> {
    let dir = cache.join(format!("{package}_{version}"));
    let vmlinuz = dir.join("vmlinuz");
    let release = fs::read_to_string(dir.join("release")).ok()?;
    vmlinuz.is_file().then(|| Kernel {
        package: package.to_owned(),
        version: version.to_owned(),
        release: release.trim().to_owned(),
        vmlinuz,
    })
}

/// The value of a `Field: value` line of apt-cache show.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Writes an uncompressed newc initramfs (the kernel takes it as is): /init,
/// busybox and its applets, gatewatch without debug info, and the shared
/// libraries `ldd` lists for it.
fn build_initramfs(gatewatch: &Path, out: &Path) -> anyhow::Result<()> {
    let busybox = Path::new("/bin/busybox");
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .context("cannot run /bin/busybox (package busybox-static)")?;
    let applets = String::from_utf8_lossy(&list.stdout);
    let mut archive = cpio::Archive::new();
    for dir in ["dev", "proc", "sys", "tmp", "run"] {
        archive.dir(dir);
    }
    archive.char_device("dev/console", 0o600, 5, 1);
    archive.file("init", 0o755, INIT.as_bytes());
    archive.file("bin/busybox", 0o755, &read(busybox)?);
    for applet in applets.lines().map(str::trim) {
        if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
            archive.symlink(&format!("bin/{applet}"), "busybox");
        }
    }

    let stripped = out.with_file_name("gatewatch.stripped");
    let strip = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&stripped)
        .arg(gatewatch)
        .status();
    let binary = match strip {
        Ok(s) if s.success() => stripped.as_path(),
        _ => {
            eprintln!("xtask: strip failed; packing gatewatch with its debug info");
            gatewatch
        }
    };
    archive.file("bin/gatewatch", 0o755, &read(binary)?);
    let _ = fs::remove_file(&stripped);

    let ldd = Command::new("ldd")
        .arg(gatewatch)
        .output()
        .context("cannot start ldd")?;
    if !ldd.status.success() {
        bail!(
            "ldd {} failed: {}",
            gatewatch.display(),
            String::from_utf8_lossy(&ldd.stderr).trim()
        );
    }
    for lib in shared_libraries(&String::from_utf8_lossy(&ldd.stdout))? {
        archive.file(&lib, 0o755, &read(Path::new(&lib))?);
    }
    fs::write(out, archive.finish()).with_context(|| format!("cannot write {}", out.display()))
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Paths of the libraries in `ldd` output, the dynamic loader included.
fn shared_libraries(ldd: &str) -> anyhow::Result<Vec<String>> {
    let mut libs = Vec::new();
    for line in ldd.lines().map(str::trim) {
        let path = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    bail!("ldd: {} not found", name.trim());
                }
                rest.split_whitespace().next().unwrap_or("")
            }
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if path.starts_with('/') {
            libs.push(path.to_owned());
        }
    }
    Ok(libs)
}

enum Verdict {
    Pass(String),
    /// Reason and the lines worth showing (gatewatch's log, dmesg, serial tail).
    Fail(String, Vec<String>),
}

struct Outcome {
    verdict: Verdict,
    seconds: f64,
    /// /init ran, so the verdict is about gatewatch, not the boot.
    reached_init: bool,
    /// Where a failed boot's console was kept.
    serial: PathBuf,
}

fn boot(kernel: &Kernel, initrd: &Path, dir: &Path, accel: Accel) -> anyhow::Result<Outcome> {
    let serial = dir.join(format!("serial-{}.log", kernel.release));
    let _ = fs::remove_file(&serial);
    let qemu_log = dir.join(format!("qemu-{}.log", kernel.release));
    let qemu_out = fs::File::create(&qemu_log)
        .with_context(|| format!("cannot create {}", qemu_log.display()))?;
    let (accel_args, timeout) = match accel {
        Accel::Kvm => (["-accel", "kvm", "-cpu", "host"], BOOT_TIMEOUT_KVM),
        Accel::Tcg => (["-accel", "tcg", "-cpu", "max"], BOOT_TIMEOUT_TCG),
    };
    let started = Instant::now();
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(accel_args)
        .args(["-m", GUEST_MEMORY, "-smp", "2", "-no-reboot"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .stdin(Stdio::null())
        .stdout(qemu_out.try_clone()?)
        .stderr(qemu_out);
    let mut child = qemu.spawn().context("cannot start qemu-system-x86_64")?;
    let exited = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let seconds = started.elapsed().as_secs_f64();
    let qemu_err = fs::read_to_string(&qemu_log).unwrap_or_default();
    let console = fs::read(&serial)
        .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
        .unwrap_or_default();
    let verdict = match (verdict_of(&console), exited) {
        (Some(v), _) => v,
        (None, None) => Verdict::Fail(
            format!(
                "no verdict within {}s; serial log {}",
                timeout.as_secs(),
                serial.display()
            ),
            tail(&console, 30),
        ),
        (None, Some(status)) => {
            let mut lines = tail(&console, 30);
            lines.extend(tail(&qemu_err, 10));
            Verdict::Fail(
                format!(
                    "qemu exited ({status}) without a verdict; serial log {}",
                    serial.display()
                ),
                lines,
            )
        }
    };
    // Keep a failed boot's console for a look after a retry overwrites it.
    let kept = serial.with_extension("previous.log");
    let _ = fs::copy(&serial, &kept);
    Ok(Outcome {
        verdict,
        seconds,
        reached_init: console.contains(INIT_STARTED),
        serial: kept,
    })
}

/// A failure that is no verdict on gatewatch: /init never started.
fn boot_failed_before_init(outcome: &Outcome) -> bool {
    !outcome.reached_init && matches!(outcome.verdict, Verdict::Fail(..))
}

fn tail(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

/// Reads the guest's verdict line; on FAIL, keeps the diagnostic sections
/// /init printed before it.
fn verdict_of(console: &str) -> Option<Verdict> {
    let line = console.lines().find_map(|l| {
        let at = l.find(VERDICT)?;
        Some(l[at + VERDICT.len()..].trim())
    })?;
    let (result, rest) = line.split_once(' ').unwrap_or((line, ""));
    // rest = "kernel=RELEASE DETAIL"
    let detail = rest.split_once(' ').map_or("", |(_, d)| d).to_owned();
    if result == "PASS" {
        return Some(Verdict::Pass(detail));
    }
    let mut lines = Vec::new();
    let mut inside = false;
    for l in console.lines() {
        if l.starts_with("--- ") && !l.starts_with("--- end") {
            inside = true;
        }
        if inside {
            lines.push(l.to_owned());
        }
        if l.starts_with("--- end") {
            inside = false;
        }
    }
    Some(Verdict::Fail(detail, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failure_before_init_boots_again() {
        let outcome = |verdict, reached_init| Outcome {
            verdict,
            seconds: 1.0,
            reached_init,
            serial: PathBuf::new(),
        };
        let fail = || Verdict::Fail("qemu exited without a verdict".into(), Vec::new());
        assert!(boot_failed_before_init(&outcome(fail(), false)));
        assert!(
            !boot_failed_before_init(&outcome(fail(), true)),
            "a verdict on gatewatch stands"
        );
        assert!(!boot_failed_before_init(&outcome(
            Verdict::Pass(String::new()),
            false
        )));
    }

    #[test]
    fn ldd_output_gives_library_paths() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f9b)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f9a)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f9c)\n";
        assert_eq!(
            shared_libraries(ldd).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
        assert!(shared_libraries("\tlibfoo.so => not found\n").is_err());
    }

    #[test]
    fn verdicts_are_read_from_the_console() {
        let pass = "[    1.0] random: crng init done\r\nGATEWATCH-VERDICT: PASS kernel=6.1.0-56-amd64 5 programs attached\n";
        match verdict_of(&pass.replace('\r', "")) {
            Some(Verdict::Pass(d)) => assert_eq!(d, "5 programs attached"),
            _ => panic!("not a pass"),
        }
        let fail = "--- gatewatch log ---\nthe kernel refused program egress: bad\n--- end gatewatch log ---\nnoise\nGATEWATCH-VERDICT: FAIL kernel=6.1.0-56-amd64 gatewatch exited\n";
        match verdict_of(fail) {
            Some(Verdict::Fail(reason, lines)) => {
                assert_eq!(reason, "gatewatch exited");
                assert_eq!(lines.len(), 3);
                assert!(lines[1].contains("refused program egress"));
            }
            _ => panic!("not a fail"),
        }
        assert!(verdict_of("Kernel panic - not syncing\n").is_none());
    }

    #[test]
    fn apt_fields() {
        let show = "Package: linux-image-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\n";
        assert_eq!(field(show, "Version"), Some("6.1.192-2"));
        assert_eq!(
            field(show, "Depends"),
            Some("linux-image-6.1.0-56-amd64 (= 6.1.192-2)")
        );
        assert_eq!(field(show, "Pre-Depends"), None);
    }
}
