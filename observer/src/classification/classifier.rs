//! Which route a connection took, from the name its client asked for, its
//! destination address and port, and whether it came from a gateway's own
//! workload. Pure: no I/O, no clocks.
//!
//! Decision order (documented in the README):
//! 1. A name (SNI, HTTP Host or DNS) against the user's host rules: a
//!    `gateway` rule wins over any other rule that also matches.
//! 2. The name against the built-in catalogue, unless an `ignore` pattern
//!    removes it: the most specific entry wins.
//! 3. The address against the user's IP/CIDR rules, gateway rules first.
//! 4. Otherwise `other`.
//!
//! Kinds map to routes: `model` and `mixed` → `direct`; `gateway` →
//! `gateway` (catalogue gateways only with `catalog_gateways = true`);
//! `agent_platform` → `agent_platform`; `model_control` and `exclude` →
//! `other`. A `direct` connection made by a gateway workload is
//! `gateway_upstream`.
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{
    catalog::Catalog,
    kind::{Kind, Route, route_for},
    pattern::HostPattern,
    rules::Rule,
};
use crate::naming::host::normalize_host;

/// What matched, for `gatewatch classify` and the flow API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matched {
    /// `rule` or `catalog`.
    pub source: String,
    pub pattern: String,
    pub origin: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub route: Route,
    pub provider: String,
    pub kind: Option<Kind>,
    pub matched: Option<Matched>,
}

impl Verdict {
    fn other() -> Self {
        Self {
            route: Route::Other,
            provider: String::new(),
            kind: None,
            matched: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Classifier {
    rules: Vec<Rule>,
    catalog: Catalog,
    ignore: Vec<HostPattern>,
    catalog_gateways: bool,
}

impl Classifier {
    pub fn new(
        rules: Vec<Rule>,
        catalog: Catalog,
        ignore: Vec<HostPattern>,
        catalog_gateways: bool,
    ) -> Self {
        // Gateway rules first: when a gateway and a provider rule overlap,
        // the gateway wins.
        let mut rules = rules;
        rules.sort_by_key(|r| r.kind != Kind::Gateway);
        Self {
            rules,
            catalog,
            ignore,
            catalog_gateways,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Classifies a connection to `addr:port` whose client asked for `name`.
    pub fn classify(
        &self,
        name: Option<&str>,
        addr: IpAddr,
        port: u16,
        from_gateway_workload: bool,
    ) -> Verdict {
        let addr = addr.to_canonical();
        let host = name.map(normalize_host);
        let by_name = host.as_deref().and_then(|host| {
            self.rules
                .iter()
                .find(|r| r.pattern.matches_host(host, port))
                .map(|r| self.rule_verdict(r))
                .or_else(|| self.catalog_verdict(host, port))
        });
        let verdict = by_name
            .or_else(|| {
                self.rules
                    .iter()
                    .find(|r| r.pattern.matches_addr(addr, port))
                    .map(|r| self.rule_verdict(r))
            })
            .unwrap_or_else(Verdict::other);
        if from_gateway_workload && verdict.route == Route::Direct {
            return Verdict {
                route: Route::GatewayUpstream,
                ..verdict
            };
        }
        verdict
    }

    fn rule_verdict(&self, rule: &Rule) -> Verdict {
        Verdict {
            route: route_for(rule.kind, true),
            provider: rule.provider.clone(),
            kind: Some(rule.kind),
            matched: Some(Matched {
                source: "rule".into(),
                pattern: rule.pattern.to_string(),
                origin: rule.origin.clone(),
            }),
        }
    }

    fn catalog_verdict(&self, host: &str, port: u16) -> Option<Verdict> {
        if self.ignore.iter().any(|p| p.matches(host)) {
            return None;
        }
        let (entry, pattern) = self.catalog.lookup(host, port)?;
        Some(Verdict {
            route: route_for(entry.kind, self.catalog_gateways),
            provider: entry.provider.clone(),
            kind: Some(entry.kind),
            matched: Some(Matched {
                source: "catalog".into(),
                pattern: pattern.to_string(),
                origin: entry.source.clone(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classification::rules::rule;

    fn classifier(rules: &[(&str, Kind, &str)]) -> Classifier {
        let rules = rules
            .iter()
            .map(|(p, k, name)| rule(p, *k, name, "test").expect("valid test rule"))
            .collect();
        Classifier::new(rules, Catalog::builtin().clone(), Vec::new(), false)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn ip_rules_classify_gateway_direct_and_other() {
        let c = classifier(&[
            ("127.0.0.3:8443", Kind::Gateway, "corp-gw"),
            ("127.0.0.2:443", Kind::Model, "openai"),
            ("[::1]:443", Kind::Model, "openai"),
        ]);
        let v = c.classify(None, ip("127.0.0.3"), 8443, false);
        assert_eq!((v.route, v.provider.as_str()), (Route::Gateway, "corp-gw"));
        let v = c.classify(None, ip("127.0.0.2"), 443, false);
        assert_eq!((v.route, v.provider.as_str()), (Route::Direct, "openai"));
        let v = c.classify(None, ip("::1"), 443, false);
        assert_eq!(v.route, Route::Direct);
        assert_eq!(
            c.classify(None, ip("127.0.0.2"), 80, false).route,
            Route::Other
        );
        assert_eq!(
            c.classify(None, ip("127.0.0.9"), 443, false),
            Verdict::other()
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_destinations_match_ipv4_rules() {
        let c = classifier(&[("127.0.0.2:443", Kind::Model, "openai")]);
        assert_eq!(
            c.classify(None, ip("::ffff:127.0.0.2"), 443, false).route,
            Route::Direct
        );
    }

    #[test]
    fn gateway_rule_wins_when_it_overlaps_a_provider_rule() {
        let c = classifier(&[
            ("10.0.0.0/8", Kind::Model, "wide-provider"),
            ("10.1.2.3", Kind::Gateway, "corp-gw"),
        ]);
        let v = c.classify(None, ip("10.1.2.3"), 443, false);
        assert_eq!((v.route, v.provider.as_str()), (Route::Gateway, "corp-gw"));
        assert_eq!(
            c.classify(None, ip("10.9.9.9"), 443, false).route,
            Route::Direct
        );
    }

    #[test]
    fn gateway_workload_calls_to_providers_are_gateway_upstream() {
        let c = classifier(&[("127.0.0.2", Kind::Model, "openai")]);
        let v = c.classify(None, ip("127.0.0.2"), 443, true);
        assert_eq!(v.route, Route::GatewayUpstream);
        assert_eq!(
            c.classify(None, ip("127.0.0.9"), 443, true).route,
            Route::Other
        );
    }

    #[test]
    fn a_name_rule_beats_an_address_rule() {
        let c = classifier(&[
            ("contoso-apim.azure-api.net", Kind::Gateway, "contoso-apim"),
            ("127.0.0.0/8", Kind::Model, "loopback-model"),
        ]);
        let v = c.classify(
            Some("Contoso-APIM.azure-api.net."),
            ip("127.0.0.5"),
            443,
            false,
        );
        assert_eq!(
            (v.route, v.provider.as_str()),
            (Route::Gateway, "contoso-apim")
        );
    }
}
