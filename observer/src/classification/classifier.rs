//! Which route a connection took, from the name its client asked for, its
//! destination address and port, and whether it came from a gateway's own
//! workload. Pure: no I/O, no clocks.
//!
//! Decision order (documented in the README): what the user configured
//! first, then what the catalogue knows.
//! 1. A name (SNI, HTTP Host or DNS) against the user's host rules.
//! 2. The address and port against the user's IP/CIDR rules.
//! 3. The name against the built-in catalogue, unless an `ignore` pattern
//!    removes it.
//! 4. Otherwise `other`.
//!
//! Within each step the most specific pattern wins (an exact name beats a
//! wildcard, a longer suffix or prefix a shorter one, a port a portless
//! pattern); between equally specific user rules a `gateway` rule wins.
//!
//! Kinds map to routes: `model` and `mixed` → `direct`; `gateway` →
//! `gateway` (catalogue gateways only with `catalog_gateways = true`);
//! `agent_platform` → `agent_platform`; `model_control` and `exclude` →
//! `other`. A `direct` connection made by a gateway workload is
//! `gateway_upstream`.
use std::{net::IpAddr, sync::Arc};

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
    /// Shared with the classifier: made once per rule and catalogue
    /// pattern, not per connection.
    pub matched: Option<Arc<Matched>>,
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
    /// What each rule's verdict says matched, by rule position.
    rule_matched: Vec<Arc<Matched>>,
    /// The same per catalogue entry and pattern.
    catalog_matched: Vec<Vec<Arc<Matched>>>,
}

impl Classifier {
    pub fn new(
        rules: Vec<Rule>,
        catalog: Catalog,
        ignore: Vec<HostPattern>,
        catalog_gateways: bool,
    ) -> Self {
        let rule_matched = rules
            .iter()
            .map(|r| {
                Arc::new(Matched {
                    source: "rule".into(),
                    pattern: r.pattern.to_string(),
                    origin: r.origin.clone(),
                })
            })
            .collect();
        let catalog_matched = catalog
            .entries()
            .iter()
            .map(|e| {
                e.patterns
                    .iter()
                    .map(|p| {
                        Arc::new(Matched {
                            source: "catalog".into(),
                            pattern: p.to_string(),
                            origin: e.source.clone(),
                        })
                    })
                    .collect()
            })
            .collect();
        Self {
            rules,
            catalog,
            ignore,
            catalog_gateways,
            rule_matched,
            catalog_matched,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Host patterns the catalogue must not name (`ignore`).
    pub fn ignored(&self) -> &[HostPattern] {
        &self.ignore
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
        // What the user configured wins over what the catalogue guesses:
        // their host rules, then their address rules (a CONNECT to a
        // configured proxy is a gateway call whatever it tunnels to), then
        // the catalogue by name.
        let by_rule = host
            .as_deref()
            .and_then(|host| self.most_specific(|r| r.pattern.matches_host(host, port)))
            .or_else(|| self.most_specific(|r| r.pattern.matches_addr(addr, port)));
        let verdict = by_rule
            .map(|i| self.rule_verdict(i))
            .or_else(|| host.as_deref().and_then(|h| self.catalog_verdict(h, port)))
            .unwrap_or_else(Verdict::other);
        if from_gateway_workload && verdict.route == Route::Direct {
            return Verdict {
                route: Route::GatewayUpstream,
                ..verdict
            };
        }
        verdict
    }

    /// The matching user rule that points most narrowly; between equally
    /// specific rules a gateway rule wins, then the first given.
    fn most_specific(&self, matches: impl Fn(&Rule) -> bool) -> Option<usize> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| matches(r))
            .max_by_key(|(i, r)| {
                let (dest, port) = r.pattern.specificity();
                (dest, port, r.kind == Kind::Gateway, std::cmp::Reverse(*i))
            })
            .map(|(i, _)| i)
    }

    fn rule_verdict(&self, i: usize) -> Verdict {
        let rule = &self.rules[i];
        Verdict {
            route: route_for(rule.kind, true),
            provider: rule.provider.clone(),
            kind: Some(rule.kind),
            matched: self.rule_matched.get(i).cloned(),
        }
    }

    fn catalog_verdict(&self, host: &str, port: u16) -> Option<Verdict> {
        if self.ignore.iter().any(|p| p.matches(host)) {
            return None;
        }
        let (e, p) = self.catalog.lookup_index(host, port)?;
        let entry = &self.catalog.entries()[e];
        Some(Verdict {
            route: route_for(entry.kind, self.catalog_gateways),
            provider: entry.provider.clone(),
            kind: Some(entry.kind),
            matched: self.catalog_matched.get(e).and_then(|m| m.get(p)).cloned(),
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

    #[test]
    fn a_connect_through_a_configured_gateway_address_is_a_gateway_call() {
        // HTTPS_PROXY=http://10.0.0.5:3128: `CONNECT api.openai.com:443`.
        let c = classifier(&[("10.0.0.5:3128", Kind::Gateway, "corp-proxy")]);
        let v = c.classify(Some("api.openai.com"), ip("10.0.0.5"), 3128, false);
        assert_eq!(
            (v.route, v.provider.as_str()),
            (Route::Gateway, "corp-proxy")
        );
        // The same name to any other address is the catalogue's direct call.
        let v = c.classify(Some("api.openai.com"), ip("10.9.9.9"), 443, false);
        assert_eq!(v.route, Route::Direct);
    }

    #[test]
    fn the_most_specific_user_rule_wins_not_the_first() {
        let c = classifier(&[
            ("*.example.com", Kind::Model, "wide"),
            ("api.example.com", Kind::Exclude, "carve-out"),
            ("*.gw.example.com", Kind::Model, "narrow"),
        ]);
        let v = c.classify(Some("api.example.com"), ip("10.0.0.1"), 443, false);
        assert_eq!((v.route, v.provider.as_str()), (Route::Other, "carve-out"));
        let v = c.classify(Some("x.gw.example.com"), ip("10.0.0.1"), 443, false);
        assert_eq!(v.provider, "narrow");
        let v = c.classify(Some("y.example.com"), ip("10.0.0.1"), 443, false);
        assert_eq!(v.provider, "wide");
        // Addresses likewise: the longer prefix, then the port.
        let c = classifier(&[
            ("10.0.0.0/8", Kind::Model, "wide"),
            ("10.1.0.0/16", Kind::Exclude, "lab"),
            ("10.1.0.0/16:4000", Kind::Gateway, "lab-gw"),
        ]);
        assert_eq!(c.classify(None, ip("10.1.2.3"), 443, false).provider, "lab");
        assert_eq!(
            c.classify(None, ip("10.1.2.3"), 4000, false).provider,
            "lab-gw"
        );
        assert_eq!(
            c.classify(None, ip("10.9.2.3"), 4000, false).provider,
            "wide"
        );
    }

    #[test]
    fn a_user_rule_beats_the_catalogue_for_the_same_name() {
        let c = classifier(&[("api.openai.com", Kind::Gateway, "openai-via-egress-gw")]);
        let v = c.classify(Some("api.openai.com"), ip("10.0.0.1"), 443, false);
        assert_eq!(v.route, Route::Gateway);
    }
}
