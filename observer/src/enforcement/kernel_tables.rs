//! The kernel's name and address tables, derived from the classifier so
//! the kernel can never deny what userspace would not call `direct`.
//!
//! Every host pattern (user rules, catalogue, `ignore`) becomes one entry
//! whose verdict is what the classifier itself says of a name under that
//! pattern and no narrower one; the kernel's longest match then reproduces
//! the classifier's answer. A pattern whose answer depends on the port is
//! entered as allowed: the kernel does not know which ports a rule meant,
//! and userspace still ends such a connection if it is denied.
use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    net::{IpAddr, Ipv6Addr},
};

use ipnet::IpNet;
use observer_common::{
    ADDR_ALLOW, ADDR_DENY, AddrRuleValue, NAME_EXACT_ALLOW, NAME_EXACT_DENY, NAME_SUFFIX_ALLOW,
    NAME_SUFFIX_DENY, name_hash,
};

use crate::{
    capture::KernelTables,
    classification::{Classifier, HostPattern, Route, kind::route_for, pattern::Dest},
};

/// A label no real host carries, to ask the classifier about the names
/// under a wildcard without hitting a narrower pattern.
const REPRESENTATIVE_LABEL: &str = "gatewatch-representative-0";
/// An address in the IPv6 discard prefix (RFC 6666): no address rule of a
/// real network names it, so names are judged by name alone.
const NO_RULE_ADDR: IpAddr = IpAddr::V6(Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 1));
/// Where TLS usually goes; the ports rules name are tried too.
const HTTPS_PORT: u16 = 443;

/// Judges host names as the kernel's tables do: denied when the classifier
/// calls the name `direct` on every port any rule names (and 443), by name
/// alone. Built once from the classifier's rules.
#[derive(Clone, Debug)]
pub struct NameJudge {
    ports: BTreeSet<u16>,
}

impl NameJudge {
    pub fn new(classifier: &Classifier) -> Self {
        let mut ports: BTreeSet<u16> = BTreeSet::from([HTTPS_PORT]);
        for rule in classifier.rules() {
            ports.extend(rule.pattern.port);
        }
        for entry in classifier.catalog().entries() {
            ports.extend(entry.ports.iter().copied());
        }
        Self { ports }
    }

    /// True when a connection named `host` (normalised) is a direct model
    /// call whatever its port.
    pub fn denies(&self, classifier: &Classifier, host: &str) -> bool {
        self.ports.iter().all(|port| {
            classifier
                .classify(Some(host), NO_RULE_ADDR, *port, false)
                .route
                == Route::Direct
        })
    }
}

pub fn kernel_tables(classifier: &Classifier) -> KernelTables {
    let judge = NameJudge::new(classifier);
    let mut patterns: HashSet<HostPattern> = HashSet::new();
    for rule in classifier.rules() {
        if let Dest::Host(h) = &rule.pattern.dest {
            patterns.insert(h.clone());
        }
    }
    for entry in classifier.catalog().entries() {
        patterns.extend(entry.patterns.iter().cloned());
    }
    patterns.extend(classifier.ignored().iter().cloned());

    let mut names: BTreeMap<u64, u8> = BTreeMap::new();
    for pattern in &patterns {
        let (key, host, deny_bit, allow_bit) = match pattern {
            HostPattern::Exact(name) => (
                name.as_str(),
                name.clone(),
                NAME_EXACT_DENY,
                NAME_EXACT_ALLOW,
            ),
            HostPattern::Suffix(suffix) => (
                &suffix[1..],
                format!("{REPRESENTATIVE_LABEL}{suffix}"),
                NAME_SUFFIX_DENY,
                NAME_SUFFIX_ALLOW,
            ),
        };
        let bit = if judge.denies(classifier, &host) {
            deny_bit
        } else {
            allow_bit
        };
        *names.entry(name_hash(key.as_bytes())).or_default() |= bit;
    }

    let mut nets: BTreeMap<IpNet, AddrRuleValue> = BTreeMap::new();
    for rule in classifier.rules() {
        let Dest::Net(net) = &rule.pattern.dest else {
            continue;
        };
        let deny = route_for(rule.kind, true) == Route::Direct;
        let value = AddrRuleValue {
            verdict: if deny { ADDR_DENY } else { ADDR_ALLOW },
            _pad: 0,
            port: rule.pattern.port.unwrap_or(0),
        };
        // Two rules on one network: the kernel keeps one value per prefix,
        // so a gateway anywhere on it wins and covers every port.
        nets.entry(*net)
            .and_modify(|old| {
                if old.verdict != value.verdict || old.port != value.port {
                    *old = AddrRuleValue {
                        verdict: ADDR_ALLOW,
                        _pad: 0,
                        port: 0,
                    };
                }
            })
            .or_insert(value);
    }
    KernelTables {
        names: names.into_iter().collect(),
        addr_rules: nets.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classification::{Catalog, Kind, rule};
    use observer_common::{NAME_HASH_SEED, name_hash_step};

    fn classifier(rules: &[(&str, Kind)]) -> Classifier {
        let rules = rules
            .iter()
            .map(|(p, k)| rule(p, *k, "x", "test").expect("valid test rule"))
            .collect();
        Classifier::new(rules, Catalog::builtin().clone(), Vec::new(), false)
    }

    /// The kernel's walk (observer-ebpf `enforce::names_model_endpoint`),
    /// over the same table: true when the name is denied.
    fn kernel_denies(tables: &KernelTables, name: &str) -> bool {
        let table: BTreeMap<u64, u8> = tables.names.iter().copied().collect();
        let mut hash = NAME_HASH_SEED;
        let mut deny = false;
        for byte in name.bytes().rev() {
            if byte == b'.'
                && let Some(bits) = table.get(&hash)
            {
                if bits & NAME_SUFFIX_DENY != 0 {
                    deny = true;
                } else if bits & NAME_SUFFIX_ALLOW != 0 {
                    deny = false;
                }
            }
            hash = name_hash_step(hash, byte);
        }
        match table.get(&hash) {
            Some(bits) if bits & NAME_EXACT_DENY != 0 => true,
            Some(bits) if bits & NAME_EXACT_ALLOW != 0 => false,
            _ => deny,
        }
    }

    #[test]
    fn the_kernel_walk_denies_exactly_what_the_classifier_calls_direct() {
        let c = classifier(&[
            ("corp-gw.openai.azure.com", Kind::Gateway),
            ("llm.internal.example", Kind::Model),
        ]);
        let tables = kernel_tables(&c);
        for name in [
            "api.openai.com",
            "API.OpenAI.com",
            "contoso.openai.azure.com",
            "corp-gw.openai.azure.com",
            "llm.internal.example",
            "api.anthropic.com",
            "example.com",
            "openai.azure.com",
            "www.google.com",
            "contoso.services.ai.azure.com",
            "generativelanguage.googleapis.com",
            "storage.googleapis.com",
        ] {
            let direct = c
                .classify(Some(name), NO_RULE_ADDR, HTTPS_PORT, false)
                .route
                == Route::Direct;
            assert_eq!(
                kernel_denies(&tables, &name.to_ascii_lowercase()),
                direct,
                "kernel and classifier disagree on {name}"
            );
        }
    }

    #[test]
    fn a_user_wildcard_over_a_catalogue_model_pattern_keeps_it_allowed() {
        // A user rule beats any catalogue pattern, however specific.
        let c = classifier(&[("*.azure.com", Kind::Gateway)]);
        let tables = kernel_tables(&c);
        assert!(!kernel_denies(&tables, "contoso.openai.azure.com"));
        assert!(kernel_denies(&tables, "api.openai.com"));
    }

    #[test]
    fn a_pattern_whose_verdict_depends_on_the_port_is_never_denied_in_the_kernel() {
        let c = classifier(&[("corp.openai.azure.com:8443", Kind::Gateway)]);
        let tables = kernel_tables(&c);
        assert!(!kernel_denies(&tables, "corp.openai.azure.com"));
        assert!(kernel_denies(&tables, "other.openai.azure.com"));
    }

    #[test]
    fn address_rules_become_trie_entries_and_a_gateway_wins_a_shared_network() {
        let c = classifier(&[
            ("10.0.0.0/8", Kind::Model),
            ("192.0.2.7:443", Kind::Model),
            ("192.0.2.7:8443", Kind::Gateway),
        ]);
        let tables = kernel_tables(&c);
        let find = |net: &str| {
            let net: IpNet = net.parse().unwrap();
            tables
                .addr_rules
                .iter()
                .find(|(n, _)| *n == net)
                .map(|(_, v)| *v)
        };
        assert_eq!(
            find("10.0.0.0/8").map(|v| (v.verdict, v.port)),
            Some((ADDR_DENY, 0))
        );
        assert_eq!(
            find("192.0.2.7/32").map(|v| (v.verdict, v.port)),
            Some((ADDR_ALLOW, 0))
        );
    }

    #[test]
    fn the_builtin_catalogue_fits_the_kernel_table() {
        let tables = kernel_tables(&classifier(&[]));
        assert!(tables.check_size().is_ok());
        assert!(tables.names.len() > 20, "the catalogue has model patterns");
    }
}
