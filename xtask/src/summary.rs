//! The tally `cargo xtask test` closes on: passed, failed and skipped.
//!
//! libtest has no notion of a skipped test: a privileged test that returns
//! early as non-root reports `ok`. `tests::privileged()` therefore appends the
//! test's name to the file named by [`SKIP_LOG_VAR`] when it skips, and the
//! tally moves those tests from passed to skipped.
use std::path::Path;

/// Variable naming the file `tests::privileged()` appends skipped tests to.
/// Keep in step with `tests/src/lib.rs`.
pub const SKIP_LOG_VAR: &str = "GATEWATCH_SKIP_LOG";

/// Totals over every test binary and the extra suites.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
}

impl Tally {
    /// Adds the counts of a libtest `test result: ...` line; other lines are
    /// ignored. Returns whether the line was a result line.
    pub fn add_cargo_line(&mut self, line: &str) -> bool {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return false;
        };
        let count = |word: &str| {
            rest.split(';')
                .find_map(|part| {
                    part.trim()
                        .trim_start_matches("ok. ")
                        .trim_start_matches("FAILED. ")
                        .strip_suffix(word)
                })
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        self.passed += count(" passed");
        self.failed += count(" failed");
        true
    }

    /// Moves the tests named in the skip log from passed to skipped: they
    /// returned early, so libtest counted them as passed.
    pub fn take_skips(&mut self, skipped: &[String]) {
        let n = skipped.len() as u64;
        self.skipped += n;
        self.passed = self.passed.saturating_sub(n);
    }

    /// Adds a suite's own (passed, failed) counts.
    pub fn add(&mut self, (passed, failed): (u64, u64)) {
        self.passed += passed;
        self.failed += failed;
    }

    /// The closing line, e.g. `tests: 120 passed, 0 failed, 35 skipped`.
    pub fn closing_line(&self) -> String {
        format!(
            "tests: {} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }

    /// Why this run fails, if it does. Under CI every skip is a failure: a
    /// skipped test is one that checked nothing.
    pub fn verdict(&self, ci: bool) -> Result<(), String> {
        if self.failed > 0 {
            return Err(format!("{} tests failed", self.failed));
        }
        if ci && self.skipped > 0 {
            return Err(format!(
                "{} tests skipped (CI=true makes a skip a failure)",
                self.skipped
            ));
        }
        Ok(())
    }
}

/// The names in a skip log, one per non-empty line.
pub fn parse_skip_log(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads the skip log at `path`; a missing file means nothing was skipped.
pub fn read_skip_log(path: &Path) -> std::io::Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse_skip_log(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_of_every_binary_are_summed_and_other_lines_ignored() {
        let mut t = Tally::default();
        for line in [
            "running 3 tests",
            "test a ... ok",
            "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s",
            "test result: FAILED. 5 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.20s",
            "note: test result: 99 passed",
        ] {
            t.add_cargo_line(line);
        }
        assert_eq!(
            t,
            Tally {
                passed: 8,
                failed: 2,
                skipped: 0
            }
        );
    }

    #[test]
    fn skipped_tests_move_from_passed_to_skipped_in_the_closing_line() {
        let mut t = Tally::default();
        t.add_cargo_line("test result: ok. 40 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.50s");
        let skips = parse_skip_log("foundation sigterm_detaches\n\nhostnames openai_by_sni\n");
        assert_eq!(
            skips,
            ["foundation sigterm_detaches", "hostnames openai_by_sni"]
        );
        t.take_skips(&skips);
        t.add((3, 0));
        assert_eq!(t.closing_line(), "tests: 41 passed, 0 failed, 2 skipped");
        assert_eq!(t.verdict(false), Ok(()));
    }

    #[test]
    fn under_ci_a_skip_fails_the_run_and_failures_always_do() {
        let skipped = Tally {
            passed: 10,
            failed: 0,
            skipped: 1,
        };
        assert!(skipped.verdict(true).is_err());
        assert!(skipped.verdict(false).is_ok());
        let failed = Tally {
            passed: 10,
            failed: 1,
            skipped: 0,
        };
        assert!(failed.verdict(false).is_err());
    }

    #[test]
    fn a_missing_skip_log_means_no_skips() {
        let path = std::env::temp_dir().join(format!("gw-no-skip-log-{}", std::process::id()));
        assert_eq!(read_skip_log(&path).unwrap(), Vec::<String>::new());
    }
}
