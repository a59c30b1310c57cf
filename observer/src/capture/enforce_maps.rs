//! The kernel's enforcement maps (`--enforce deny`) as userspace writes
//! them: the name and address tables once at load, the per-process policy
//! as processes are judged. What goes in them is decided in
//! [`crate::enforcement`]; this module only moves values into maps.
use std::net::IpAddr;

use aya::{
    Ebpf,
    maps::{HashMap, MapData, lpm_trie::Key, lpm_trie::LpmTrie},
};
use ipnet::IpNet;
use observer_common::{ADDR_RULES_MAX, AddrKey, AddrRuleValue, DENY_NAMES_MAX, PolicyKey};

use super::loader::LoadError;

/// `POLICY`: process → may it call model endpoints directly.
pub type PolicyMap = HashMap<MapData, PolicyKey, u8>;
/// `DENY_ADDRS`: (cgroup, address) pairs `connect()` refuses.
pub type DenyAddrsMap = HashMap<MapData, AddrKey, u8>;

/// What the kernel decides with, built from the classifier's rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelTables {
    /// `name_hash` → `NAME_*` bits.
    pub names: Vec<(u64, u8)>,
    /// The user's address rules, most specific prefix wins in the trie.
    pub addr_rules: Vec<(IpNet, AddrRuleValue)>,
}

impl KernelTables {
    /// Checks the tables fit the kernel maps.
    pub fn check_size(&self) -> Result<(), String> {
        if self.names.len() > DENY_NAMES_MAX as usize {
            return Err(format!(
                "{} host patterns, more than the kernel table's {DENY_NAMES_MAX}",
                self.names.len()
            ));
        }
        if self.addr_rules.len() > ADDR_RULES_MAX as usize {
            return Err(format!(
                "{} address rules, more than the kernel table's {ADDR_RULES_MAX}",
                self.addr_rules.len()
            ));
        }
        Ok(())
    }

    pub(super) fn write(&self, ebpf: &mut Ebpf) -> Result<(), LoadError> {
        let err = |action: &str| {
            let action = action.to_owned();
            move |e: aya::maps::MapError| LoadError::Other {
                action,
                source: Box::new(e),
            }
        };
        let map = ebpf
            .map_mut("DENY_NAMES")
            .ok_or_else(|| missing("DENY_NAMES"))?;
        let mut names: HashMap<&mut MapData, u64, u8> =
            HashMap::try_from(map).map_err(err("open DENY_NAMES"))?;
        for (hash, bits) in &self.names {
            names
                .insert(hash, bits, 0)
                .map_err(err("write DENY_NAMES"))?;
        }
        let map = ebpf
            .map_mut("ADDR_RULES")
            .ok_or_else(|| missing("ADDR_RULES"))?;
        let mut rules: LpmTrie<&mut MapData, [u8; 16], AddrRuleValue> =
            LpmTrie::try_from(map).map_err(err("open ADDR_RULES"))?;
        for (net, value) in &self.addr_rules {
            let (prefix, bytes) = trie_key(net);
            rules
                .insert(&Key::new(prefix, bytes), value, 0)
                .map_err(err("write ADDR_RULES"))?;
        }
        Ok(())
    }
}

fn missing(map: &str) -> LoadError {
    LoadError::Other {
        action: format!("find map {map}"),
        source: "not in the eBPF object".into(),
    }
}

/// An address as the kernel's enforcement maps hold it: IPv4 as
/// `::ffff:a.b.c.d`.
pub fn mapped_octets(ip: IpAddr) -> [u8; 16] {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A network as the kernel's trie holds it: IPv4 as `::ffff:a.b.c.d/96+n`.
pub fn trie_key(net: &IpNet) -> (u32, [u8; 16]) {
    let offset = if net.network().is_ipv4() { 96 } else { 0 };
    (
        offset + u32::from(net.prefix_len()),
        mapped_octets(net.network()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_networks_are_keyed_as_mapped_ipv6() {
        let (prefix, bytes) = trie_key(&"10.1.0.0/16".parse().unwrap());
        assert_eq!(prefix, 112);
        assert_eq!(&bytes[10..], &[0xff, 0xff, 10, 1, 0, 0]);
        let (prefix, _) = trie_key(&"2001:db8::/32".parse().unwrap());
        assert_eq!(prefix, 32);
    }
}
