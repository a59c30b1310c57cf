//! One name per connection, by precedence: TLS SNI > HTTP `Host` > a DNS
//! answer for the destination address (the client's cgroup first, then the
//! node's) > none. The `name_source` label says which won.
//!
//! A ClientHello with Encrypted Client Hello carries an outer SNI that may
//! be a relay's public name, not the destination: for those a DNS answer
//! comes first, and the outer SNI only names the flow when there is none.
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{name_cache::NameHit, opening::Opening};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameSource {
    Sni,
    HttpHost,
    Dns,
    Ip,
}

impl NameSource {
    pub const ALL: [NameSource; 4] = [
        NameSource::Sni,
        NameSource::HttpHost,
        NameSource::Dns,
        NameSource::Ip,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NameSource::Sni => "sni",
            NameSource::HttpHost => "http_host",
            NameSource::Dns => "dns",
            NameSource::Ip => "ip",
        }
    }
}

/// The name a connection is classified by, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChosenName {
    pub name: Option<String>,
    pub source: NameSource,
    /// The DNS answer's CNAME chain: evidence only, never classified.
    pub cnames: Vec<String>,
    /// The opening was an ECH ClientHello.
    pub ech: bool,
}

/// Picks the name by precedence. `dns` is asked only when the opening
/// named nothing, so the cache is not touched for named flows.
pub fn choose(opening: Opening, dns: impl FnOnce() -> Option<NameHit>) -> ChosenName {
    let ech = opening.ech;
    let named = |name, source, cnames| ChosenName {
        name: Some(name),
        source,
        cnames,
        ech,
    };
    if ech {
        if let Some(hit) = dns() {
            return named(hit.name, NameSource::Dns, hit.cnames);
        }
        if let Some(sni) = opening.sni {
            return named(sni, NameSource::Sni, Vec::new());
        }
        return ChosenName {
            name: None,
            source: NameSource::Ip,
            cnames: Vec::new(),
            ech,
        };
    }
    if let Some(sni) = opening.sni {
        return named(sni, NameSource::Sni, Vec::new());
    }
    // An address in Host (curl's default for http://10.0.0.5/) names nothing.
    if let Some(host) = opening.host.filter(|h| h.parse::<IpAddr>().is_err()) {
        return named(host, NameSource::HttpHost, Vec::new());
    }
    match dns() {
        Some(hit) => named(hit.name, NameSource::Dns, hit.cnames),
        None => ChosenName {
            name: None,
            source: NameSource::Ip,
            cnames: Vec::new(),
            ech,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::name_cache::Scope;

    fn hit(name: &str) -> Option<NameHit> {
        Some(NameHit {
            name: name.into(),
            cnames: vec!["x.azure-api.net".into()],
            scope: Scope::Cgroup,
        })
    }

    fn opening(sni: Option<&str>, host: Option<&str>) -> Opening {
        Opening {
            sni: sni.map(Into::into),
            host: host.map(Into::into),
            ..Opening::default()
        }
    }

    #[test]
    fn sni_beats_host_beats_dns_beats_nothing() {
        let c = choose(opening(Some("a.example"), Some("b.example")), || hit("c"));
        assert_eq!(
            (c.name.as_deref(), c.source),
            (Some("a.example"), NameSource::Sni)
        );
        let c = choose(opening(None, Some("b.example")), || hit("c"));
        assert_eq!(
            (c.name.as_deref(), c.source),
            (Some("b.example"), NameSource::HttpHost)
        );
        let c = choose(opening(None, None), || hit("c.example"));
        assert_eq!(
            (c.name.as_deref(), c.source),
            (Some("c.example"), NameSource::Dns)
        );
        assert_eq!(
            c.cnames,
            ["x.azure-api.net"],
            "the chain is kept as evidence"
        );
        let c = choose(opening(None, None), || None);
        assert_eq!((c.name, c.source), (None, NameSource::Ip));
    }

    #[test]
    fn an_address_in_the_host_header_names_nothing() {
        let c = choose(opening(None, Some("127.0.0.2")), || None);
        assert_eq!(c.source, NameSource::Ip);
    }

    #[test]
    fn an_ech_hello_is_named_by_dns_before_its_outer_sni() {
        let ech = Opening {
            ech: true,
            ..opening(Some("cloudflare-ech.com"), None)
        };
        let c = choose(ech.clone(), || hit("api.openai.com"));
        assert_eq!(
            (c.name.as_deref(), c.source),
            (Some("api.openai.com"), NameSource::Dns)
        );
        assert!(c.ech);
        let c = choose(ech, || None);
        assert_eq!(
            (c.name.as_deref(), c.source),
            (Some("cloudflare-ech.com"), NameSource::Sni)
        );
    }
}
