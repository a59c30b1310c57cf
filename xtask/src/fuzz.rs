//! (Being written by a helper: see the lead's task note.)

/// The bounded run `cargo xtask test` includes: (passed, failed).
pub fn ci() -> anyhow::Result<(u64, u64)> {
    Ok((0, 0))
}

pub fn run(_seconds: u64) -> anyhow::Result<(u64, u64)> {
    anyhow::bail!("not written yet")
}
