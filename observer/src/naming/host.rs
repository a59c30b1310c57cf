//! The one host-name normaliser: every name gatewatch compares or labels
//! (SNI, HTTP `Host`, DNS questions, rule and catalogue patterns) goes
//! through it, so `API.OpenAI.com.` and `api.openai.com` are one name.

/// Lower-case, without the trailing dots of a fully-qualified name. All of
/// them: `a.com..` must not become a label value apart from `a.com`.
pub fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_trailing_dots_do_not_make_another_name() {
        assert_eq!(normalize_host("API.OpenAI.com."), "api.openai.com");
        assert_eq!(normalize_host("a.com.."), "a.com");
        assert_eq!(normalize_host("."), "");
    }
}
