//! User rules: from the config file or `--gateway` / `--provider` flags.
use super::{
    kind::Kind,
    pattern::{Dest, Pattern},
};

/// A user rule: from the config file or a `--gateway` / `--provider` flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub pattern: Pattern,
    pub kind: Kind,
    /// The `provider` label: the provider's or gateway's configured name.
    pub provider: String,
    /// Where the rule came from, e.g. `--gateway` or `config gateways[0]`.
    pub origin: String,
}

/// Builds a user rule, as `--gateway` and `--provider` do.
pub fn rule(pattern: &str, kind: Kind, provider: &str, origin: &str) -> Result<Rule, String> {
    let pattern: Pattern = pattern.parse().map_err(|e| format!("{e}"))?;
    Ok(Rule {
        pattern,
        kind,
        provider: provider.to_owned(),
        origin: origin.to_owned(),
    })
}

/// True when `pattern` is an address rule (for docs and summaries).
pub fn is_address_rule(rule: &Rule) -> bool {
    matches!(rule.pattern.dest, Dest::Net(_))
}
