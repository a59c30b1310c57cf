//! A small TCP client for the integration tests: connects, optionally sends
//! bytes (in several segments), and exits. Its `comm` is known (`gwclient`,
//! or `--comm NAME`) so tests can assert the `process` label.
//!
//! gwclient [--comm NAME] [--count N] [--send-file F] [--send TEXT]
//!          [--send-bytes N] [--split N] [--gap-ms MS] [--read] [--hold-ms MS] ADDR...
//!
//! `--read` half-closes after sending and reads until the peer closes.
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::ExitCode,
    time::Duration,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

struct Opts {
    count: usize,
    payload: Vec<u8>,
    split: usize,
    gap: Duration,
    read: bool,
    hold: Duration,
    targets: Vec<SocketAddr>,
}

fn parse() -> Result<(Option<String>, Opts), String> {
    let mut args = std::env::args().skip(1);
    let mut comm = None;
    let mut o = Opts {
        count: 1,
        payload: Vec::new(),
        split: 1,
        gap: Duration::from_millis(50),
        read: false,
        hold: Duration::ZERO,
        targets: Vec::new(),
    };
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--comm" => comm = Some(val()?),
            "--count" => o.count = val()?.parse().map_err(|e| format!("--count: {e}"))?,
            "--send" => o.payload = val()?.replace("\\r\\n", "\r\n").into_bytes(),
            "--send-file" => {
                o.payload = std::fs::read(val()?).map_err(|e| format!("--send-file: {e}"))?
            }
            "--split" => o.split = val()?.parse().map_err(|e| format!("--split: {e}"))?,
            "--gap-ms" => {
                o.gap = Duration::from_millis(val()?.parse().map_err(|e| format!("--gap-ms: {e}"))?)
            }
            "--send-bytes" => {
                o.payload = vec![b'x'; val()?.parse().map_err(|e| format!("--send-bytes: {e}"))?]
            }
            "--hold-ms" => {
                o.hold =
                    Duration::from_millis(val()?.parse().map_err(|e| format!("--hold-ms: {e}"))?)
            }
            "--read" => o.read = true,
            t => o
                .targets
                .push(t.parse().map_err(|e| format!("bad target {t:?}: {e}"))?),
        }
    }
    Ok((comm, o))
}

fn set_comm(name: &str) {
    let c = std::ffi::CString::new(name).expect("comm without NUL");
    // SAFETY: PR_SET_NAME reads a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

fn one(target: SocketAddr, o: &Opts) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT)?;
    s.set_nodelay(true)?;
    if !o.payload.is_empty() {
        let piece = o.payload.len().div_ceil(o.split.max(1));
        for (i, chunk) in o.payload.chunks(piece.max(1)).enumerate() {
            if i > 0 {
                std::thread::sleep(o.gap);
            }
            s.write_all(chunk)?;
        }
    }
    std::thread::sleep(o.hold);
    if o.read {
        s.shutdown(std::net::Shutdown::Write)?;
        s.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        println!("{}", buf.len());
    }
    Ok(())
}

fn main() -> ExitCode {
    let (comm, opts) = match parse() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gwclient: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(c) = comm {
        set_comm(&c);
    }
    let mut failed = 0;
    for target in &opts.targets {
        for _ in 0..opts.count {
            if let Err(e) = one(*target, &opts) {
                eprintln!("gwclient: {target}: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
