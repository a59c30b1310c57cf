//! Destination patterns used by rules and the catalogue: a hostname (exact or
//! `*.suffix`) or an IP / CIDR, each optionally with a port.
//!
//! Accepted forms: `api.openai.com`, `*.openai.azure.com`, `host:443`,
//! `10.0.0.7`, `10.0.0.0/8`, `10.0.0.7:4000`, `::1`, `fd00::/8`,
//! `[::1]:443`, `[fd00::/8]:443`.
use std::{fmt, net::IpAddr, str::FromStr};

use ipnet::IpNet;

use crate::naming::host::normalize_host;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("empty pattern")]
    Empty,
    #[error("bad port {0:?}: expected a number from 1 to 65535")]
    Port(String),
    #[error("bad address {0:?} in brackets: expected an IPv6 address or CIDR")]
    Bracketed(String),
    #[error("{0:?} is not an IP, a CIDR or a hostname ({1})")]
    Host(String, &'static str),
}

/// A hostname pattern, stored lower-case without a trailing dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// `api.openai.com`
    Exact(String),
    /// `*.openai.azure.com`: one or more labels before `.openai.azure.com`.
    /// Holds the suffix with its leading dot.
    Suffix(String),
}

impl HostPattern {
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        let lower = normalize_host(s);
        if let Some(rest) = lower.strip_prefix("*.") {
            validate_host(rest).map_err(|why| PatternError::Host(s.to_owned(), why))?;
            Ok(Self::Suffix(format!(".{rest}")))
        } else {
            validate_host(&lower).map_err(|why| PatternError::Host(s.to_owned(), why))?;
            Ok(Self::Exact(lower))
        }
    }

    /// `host` must already be normalised with [`normalize_host`].
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(name) => name == host,
            Self::Suffix(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        }
    }

    /// Longer patterns are more specific: an exact name beats any wildcard,
    /// a longer suffix beats a shorter one.
    pub fn specificity(&self) -> usize {
        match self {
            Self::Exact(name) => usize::MAX / 2 + name.len(),
            Self::Suffix(suffix) => suffix.len(),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Suffix(suffix) => write!(f, "*{suffix}"),
        }
    }
}

fn validate_host(host: &str) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("empty name");
    }
    if host.len() > 253 {
        return Err("longer than 253 characters");
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err("empty label");
        }
        if label.len() > 63 {
            return Err("label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("only letters, digits, '-', '_' and a leading '*.' are allowed");
        }
    }
    Ok(())
}

/// Where a pattern points.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dest {
    Host(HostPattern),
    Net(IpNet),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    pub dest: Dest,
    pub port: Option<u16>,
}

impl Pattern {
    pub fn matches_host(&self, host: &str, port: u16) -> bool {
        matches!(&self.dest, Dest::Host(h) if h.matches(host)) && self.port_ok(port)
    }

    pub fn matches_addr(&self, addr: IpAddr, port: u16) -> bool {
        matches!(&self.dest, Dest::Net(net) if net.contains(&addr)) && self.port_ok(port)
    }

    /// How narrowly the pattern points, for "the most specific rule wins":
    /// a longer host pattern (an exact name beats any wildcard) or a longer
    /// network prefix, then a pattern with a port over one without.
    pub fn specificity(&self) -> (usize, bool) {
        let dest = match &self.dest {
            Dest::Host(h) => h.specificity(),
            Dest::Net(net) => usize::from(net.prefix_len()),
        };
        (dest, self.port.is_some())
    }

    fn port_ok(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }
}

fn parse_port(s: &str) -> Result<u16, PatternError> {
    match s.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(PatternError::Port(s.to_owned())),
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
        .map(|net| match net {
            // An IPv4-mapped IPv6 rule matches the IPv4 address it maps.
            IpNet::V6(v6) if v6.addr().to_ipv4_mapped().is_some() && v6.prefix_len() >= 96 => {
                let v4 = v6.addr().to_ipv4_mapped().expect("checked above");
                IpNet::new(v4.into(), v6.prefix_len() - 96).expect("prefix fits")
            }
            other => other,
        })
}

impl FromStr for Pattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (inner, after) = rest
                .split_once(']')
                .ok_or_else(|| PatternError::Bracketed(s.to_owned()))?;
            let net = parse_net(inner).ok_or_else(|| PatternError::Bracketed(inner.to_owned()))?;
            let port = match after {
                "" => None,
                _ => Some(parse_port(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| PatternError::Port(after.to_owned()))?,
                )?),
            };
            return Ok(Self {
                dest: Dest::Net(net),
                port,
            });
        }
        if let Some(net) = parse_net(s) {
            return Ok(Self {
                dest: Dest::Net(net),
                port: None,
            });
        }
        let (left, port) = match s.rsplit_once(':') {
            Some((left, port)) => (left, Some(parse_port(port)?)),
            None => (s, None),
        };
        // Host names lose their trailing dots, so an address written with
        // one (`127.0.0.2.`) is that address: as a host name it would match
        // no connection, yet show as the address.
        let dest = match parse_net(left.trim_end_matches('.')) {
            Some(net) => Dest::Net(net),
            None => Dest::Host(HostPattern::parse(left)?),
        };
        Ok(Self { dest, port })
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.dest, self.port) {
            (Dest::Host(h), None) => write!(f, "{h}"),
            (Dest::Host(h), Some(p)) => write!(f, "{h}:{p}"),
            (Dest::Net(n), None) => write!(f, "{}", display_net(n)),
            (Dest::Net(IpNet::V6(n)), Some(p)) => {
                write!(f, "[{}]:{p}", display_net(&IpNet::V6(*n)))
            }
            (Dest::Net(n), Some(p)) => write!(f, "{}:{p}", display_net(n)),
        }
    }
}

fn display_net(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        s.parse()
            .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    #[test]
    fn parses_ips_cidrs_and_ports() {
        assert_eq!(p("10.0.0.7").to_string(), "10.0.0.7");
        assert_eq!(p("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(p("127.0.0.3:8443").port, Some(8443));
        assert_eq!(p("::1").to_string(), "::1");
        assert_eq!(p("[::1]:443").to_string(), "[::1]:443");
        assert_eq!(p("[fd00::/8]:443").to_string(), "[fd00::/8]:443");
        assert_eq!(p("10.1.0.0/16:4000").to_string(), "10.1.0.0/16:4000");
    }

    #[test]
    fn parses_hostnames_case_insensitively_without_trailing_dot() {
        assert_eq!(p("API.OpenAI.com.").to_string(), "api.openai.com");
        assert_eq!(
            p("*.openai.azure.com:443").to_string(),
            "*.openai.azure.com:443"
        );
        assert!(p("litellm.ai.svc").matches_host("litellm.ai.svc", 4000));
    }

    #[test]
    fn address_with_trailing_dot_is_that_address() {
        // Found by fuzzing the config file: `127.0.0.2.:443` became a host
        // name pattern that no connection matches, shown as 127.0.0.2:443.
        assert_eq!(p("127.0.0.2.:443"), p("127.0.0.2:443"));
        assert_eq!(p("127.0.0.2."), p("127.0.0.2"));
        assert_eq!(p("10.0.0.0/8."), p("10.0.0.0/8"));
        let rule = p("127.0.0.2.:443");
        assert!(rule.matches_addr("127.0.0.2".parse().unwrap(), 443));
        assert_eq!(rule.to_string().parse::<Pattern>(), Ok(rule));
    }

    #[test]
    fn rejects_bad_patterns_with_reasons() {
        assert_eq!("".parse::<Pattern>(), Err(PatternError::Empty));
        assert!(matches!(
            "10.0.0.1:0".parse::<Pattern>(),
            Err(PatternError::Port(_))
        ));
        assert!(matches!(
            "a..b".parse::<Pattern>(),
            Err(PatternError::Host(..))
        ));
        assert!(matches!(
            "ex ample.com".parse::<Pattern>(),
            Err(PatternError::Host(..))
        ));
        assert!(matches!(
            "[::1".parse::<Pattern>(),
            Err(PatternError::Bracketed(_))
        ));
        assert!(matches!(
            "host:99999".parse::<Pattern>(),
            Err(PatternError::Port(_))
        ));
    }

    #[test]
    fn wildcard_needs_at_least_one_label_before_the_suffix() {
        let w = p("*.openai.azure.com");
        assert!(w.matches_host("contoso.openai.azure.com", 443));
        assert!(w.matches_host("a.b.openai.azure.com", 443));
        assert!(!w.matches_host("openai.azure.com", 443));
        assert!(!w.matches_host("evilopenai.azure.com", 443));
    }

    #[test]
    fn addresses_match_by_cidr_and_port() {
        let rule = p("127.0.0.0/24:443");
        assert!(rule.matches_addr("127.0.0.2".parse().unwrap(), 443));
        assert!(!rule.matches_addr("127.0.0.2".parse().unwrap(), 80));
        assert!(!rule.matches_addr("127.0.1.2".parse().unwrap(), 443));
        let mapped = p("::ffff:127.0.0.2");
        assert!(mapped.matches_addr("127.0.0.2".parse().unwrap(), 1));
    }
}
