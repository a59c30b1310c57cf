//! `--tls-probes` on Go programs: where in a Go binary `crypto/tls`'s
//! `(*Conn).Write` and `(*Conn).Read` are, and where `Read` returns. Go
//! moves goroutine stacks, so a return probe (which rewrites the return
//! address on the stack) is unsafe; each RET instruction is probed instead,
//! found by decoding the function's machine code (x86-64).
use std::path::Path;

use iced_x86::{Decoder, DecoderOptions, Mnemonic};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, read::ReadCache};

pub const GO_TLS_WRITE: &str = "crypto/tls.(*Conn).Write";
pub const GO_TLS_READ: &str = "crypto/tls.(*Conn).Read";
/// A function longer than this is not what we think it is.
const FUNCTION_MAX: u64 = 64 * 1024;

/// The probe points of one Go binary.
#[derive(Debug, PartialEq, Eq)]
pub struct GoTls {
    /// Offsets of `(*Conn).Read`'s RET instructions from its start.
    pub read_returns: Vec<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum GoBinaryError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("not an ELF file we can read: {0}")]
    Elf(#[from] object::Error),
    #[error("{0} is not x86-64 (Go TLS probes read x86-64 registers)")]
    Arch(String),
    #[error("{GO_TLS_READ} has no RET instruction")]
    NoReturn,
}

/// The probe points of the Go binary at `path`; `None` when it is not a
/// Go program using `crypto/tls` (or its symbols were stripped).
pub fn go_tls(path: &Path) -> Result<Option<GoTls>, GoBinaryError> {
    let file = std::fs::File::open(path)
        .map_err(|e| GoBinaryError::Read(path.display().to_string(), e))?;
    let cache = ReadCache::new(file);
    // Most executables are not Go: tell from the section headers alone,
    // before the symbol tables (megabytes in a large binary) are read.
    if !is_go(&cache)? {
        return Ok(None);
    }
    let elf = object::File::parse(&cache)?;
    if elf.architecture() != object::Architecture::X86_64 {
        return Err(GoBinaryError::Arch(path.display().to_string()));
    }
    let (mut write, mut read) = (false, None);
    for sym in elf.symbols() {
        match sym.name() {
            Ok(GO_TLS_WRITE) => write = true,
            Ok(GO_TLS_READ) => read = Some((sym.address(), sym.size(), sym.section_index())),
            _ => {}
        }
    }
    let (true, Some((address, size, Some(section)))) = (write, read) else {
        return Ok(None);
    };
    if size == 0 || size > FUNCTION_MAX {
        return Ok(None);
    }
    let section = elf.section_by_index(section)?;
    let code = section
        .data_range(address, size)?
        .ok_or(GoBinaryError::NoReturn)?;
    let read_returns = returns(code, address);
    if read_returns.is_empty() {
        return Err(GoBinaryError::NoReturn);
    }
    Ok(Some(GoTls { read_returns }))
}

/// Whether an ELF file has Go's build-info section, from its section
/// headers only.
fn is_go<'data, R: object::ReadRef<'data>>(data: R) -> Result<bool, object::Error> {
    use object::read::elf::FileHeader as _;
    let Ok(header) = object::elf::FileHeader64::<object::Endianness>::parse(data) else {
        return Ok(false);
    };
    let endian = header.endian()?;
    let sections = header.sections(endian, data)?;
    Ok(sections
        .iter()
        .any(|s| sections.section_name(endian, s) == Ok(&b".go.buildinfo"[..])))
}

/// Offsets (from `address`, where `code` starts) of the RET instructions
/// in `code`.
pub fn returns(code: &[u8], address: u64) -> Vec<u64> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut out = Vec::new();
    for insn in &mut decoder {
        if insn.mnemonic() == Mnemonic::Ret {
            out.push(insn.ip() - address);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_real_ret_instructions() {
        // mov eax, 0xc3c3c3c3 (0xc3 bytes inside an immediate); ret;
        // xor eax, eax; ret 8
        let code = [
            0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0x31, 0xc0, 0xc2, 0x08, 0x00,
        ];
        assert_eq!(returns(&code, 0x1000), vec![5, 8]);
    }

    #[test]
    fn a_file_that_is_not_go_has_no_probe_points() {
        let exe = std::env::current_exe().expect("the test binary");
        assert_eq!(go_tls(&exe).expect("an ELF file"), None);
        assert!(go_tls(Path::new("/nonexistent")).is_err());
    }
}
