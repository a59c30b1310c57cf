//! Shell-style globs for selector values: `*` is any run of characters
//! (including `/`), `?` is one character, everything else is literal.
//! Matching backtracks to the last star only, so it costs at most
//! pattern × text steps: a hostile `*a*a*a*b` cannot blow up.
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Self {
            pattern: pattern.to_owned(),
        }
    }

    /// True when the pattern has no wildcard.
    pub fn is_literal(&self) -> bool {
        !self.pattern.contains(['*', '?'])
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    pub fn matches(&self, text: &str) -> bool {
        if self.is_literal() {
            return self.pattern == text;
        }
        let p: Vec<char> = self.pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        let (mut pi, mut ti) = (0, 0);
        // Last star seen: (its index in p, the text index it resumes from).
        let mut star: Option<(usize, usize)> = None;
        while let Some(&tc) = t.get(ti) {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(&pc) if pc == '?' || pc == tc => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    // Let the star swallow one more character and retry.
                    Some((sp, st)) => {
                        star = Some((sp, st + 1));
                        pi = sp + 1;
                        ti = st + 1;
                    }
                    None => return false,
                },
            }
        }
        p.get(pi..)
            .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).matches(text)
    }

    #[test]
    fn literal_matches_only_itself() {
        assert!(m("proxy", "proxy"));
        assert!(!m("proxy", "proxy2"));
        assert!(!m("proxy", "Proxy"));
        assert!(!m("proxy", ""));
    }

    #[test]
    fn star_matches_any_run_including_empty_and_slashes() {
        assert!(m("litellm-*", "litellm-7d9f8-x2x4q"));
        assert!(m("litellm-*", "litellm-"));
        assert!(!m("litellm-*", "litellm"));
        assert!(m("/usr/bin/python3*", "/usr/bin/python3.12"));
        assert!(m("*python*", "/opt/venv/bin/python"));
        assert!(m("*", ""));
        assert!(m("**", "abc"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        assert!(m("pod-?", "pod-a"));
        assert!(!m("pod-?", "pod-"));
        assert!(!m("pod-?", "pod-ab"));
        assert!(m("?é?", "aéb"), "characters, not bytes");
    }

    #[test]
    fn backtracking_finds_late_matches() {
        assert!(m("*ab", "aaab"));
        assert!(m("a*ab", "aab"));
        assert!(!m("*a*a*a*b", &"a".repeat(5000)));
    }

    #[test]
    fn literal_detection() {
        assert!(Glob::new("proxy").is_literal());
        assert!(!Glob::new("p*").is_literal());
        assert!(!Glob::new("p?").is_literal());
    }
}
