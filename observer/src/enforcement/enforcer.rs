//! Carries out what the flow table decided under `--enforce deny`: tells
//! the kernel each process's policy and the DNS-learned addresses it
//! refuses, and ends denied sockets. Bounded and
//! aged: a process's policy is forgotten (in the kernel too) once the
//! process is gone, and the record of ended sockets is a short ring.
use std::{
    collections::VecDeque,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::Arc,
};

use observer_common::{AddrKey, POLICY_ENTRIES, POLICY_MAY_DIRECT, POLICY_NOT_DIRECT, PolicyKey};

use super::{
    destroy::{self, DestroyError, SocketId},
    dns_addrs::AddrChange,
};
use crate::{
    capture::{DenyAddrsMap, PolicyMap, mapped_octets},
    fast_map::FastMap,
    outputs::Metrics,
    workload::read_start_time,
};

/// Sockets remembered as ended, so a flow the kernel and userspace both
/// judged is ended once.
const ENDED_REMEMBERED: usize = 1024;

/// What the flow table asks of the enforcer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The kernel held a process's first bytes to a model endpoint: its
    /// answer.
    Decide { key: PolicyKey, may_direct: bool },
    /// Refuse (or stop refusing) `connect()` to an address a cgroup
    /// learned only for denied names.
    Addr(AddrChange),
    /// End a denied socket. `src` is known when the kernel reported the
    /// socket; otherwise it is looked up by cookie.
    End {
        tgid: u32,
        cookie: u64,
        protocol: u8,
        dst: SocketAddr,
        src: Option<SocketAddr>,
    },
}

pub struct Enforcer {
    policy: PolicyMap,
    addrs: DenyAddrsMap,
    proc_root: PathBuf,
    metrics: Arc<Metrics>,
    /// What was told to the kernel, with the process's start time.
    decided: FastMap<PolicyKey, Option<u64>>,
    ended: VecDeque<u64>,
}

impl Enforcer {
    pub fn new(
        policy: PolicyMap,
        addrs: DenyAddrsMap,
        proc_root: PathBuf,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            policy,
            addrs,
            proc_root,
            metrics,
            decided: FastMap::default(),
            ended: VecDeque::with_capacity(ENDED_REMEMBERED),
        }
    }

    pub fn apply(&mut self, actions: impl IntoIterator<Item = Action>) {
        for action in actions {
            match action {
                Action::Decide { key, may_direct } => self.decide(key, may_direct),
                Action::Addr(change) => self.addr(change),
                Action::End {
                    tgid,
                    cookie,
                    protocol,
                    dst,
                    src,
                } => self.end(tgid, cookie, protocol, dst, src),
            }
        }
    }

    fn decide(&mut self, key: PolicyKey, may_direct: bool) {
        if self.decided.len() >= POLICY_ENTRIES as usize {
            self.sweep();
        }
        let value = if may_direct {
            POLICY_MAY_DIRECT
        } else {
            POLICY_NOT_DIRECT
        };
        match self.policy.insert(key, value, 0) {
            Ok(()) => {
                log::debug!(
                    "--enforce: pid {} in cgroup {} may call model endpoints directly: {may_direct}",
                    key.tgid,
                    key.cgroup_id
                );
                let start = read_start_time(&self.proc_root, key.tgid);
                self.decided.insert(key, start);
            }
            Err(e) => {
                self.error("policy_write");
                log::warn!(
                    "--enforce: cannot write the policy of pid {}: {e}",
                    key.tgid
                );
            }
        }
    }

    fn addr(&mut self, change: AddrChange) {
        let key = |cgroup_id: u64, ip: IpAddr| AddrKey {
            cgroup_id,
            addr: mapped_octets(ip),
        };
        let result = match change {
            AddrChange::Deny(cgroup, ip) => self.addrs.insert(key(cgroup, ip), 1, 0),
            // Evicted by the kernel's LRU already: nothing to forget.
            AddrChange::Forget(cgroup, ip) => {
                let _ = self.addrs.remove(&key(cgroup, ip));
                Ok(())
            }
        };
        if let Err(e) = result {
            self.error("policy_write");
            log::warn!("--enforce: cannot write a DNS-learned address: {e}");
        }
    }

    fn end(
        &mut self,
        tgid: u32,
        cookie: u64,
        protocol: u8,
        dst: SocketAddr,
        src: Option<SocketAddr>,
    ) {
        if self.ended.contains(&cookie) {
            return;
        }
        if self.ended.len() == ENDED_REMEMBERED {
            self.ended.pop_front();
        }
        self.ended.push_back(cookie);
        let netns = self.proc_root.join(tgid.to_string()).join("ns/net");
        let result = destroy::diag_socket_in(&netns).and_then(|fd| {
            let id = match src {
                Some(src) => SocketId {
                    protocol,
                    src,
                    dst,
                    cookie,
                },
                None => destroy::find(&fd, protocol, dst, cookie)?,
            };
            destroy::destroy(&fd, &id)
        });
        match result {
            Ok(()) => log::debug!("--enforce: ended denied socket {cookie} of pid {tgid} to {dst}"),
            // Closed by its process already (or the process is gone).
            Err(DestroyError::NotFound) => {}
            Err(DestroyError::Namespace { .. })
                if read_start_time(&self.proc_root, tgid).is_none() => {}
            Err(e) => {
                self.error("destroy");
                log::warn!("--enforce: cannot end denied socket of pid {tgid} to {dst}: {e}");
            }
        }
    }

    /// Forgets the policy of processes that are gone (or whose pid now
    /// names another process), in the kernel too.
    pub fn sweep(&mut self) {
        let proc_root = &self.proc_root;
        let gone: Vec<PolicyKey> = self
            .decided
            .iter()
            .filter(|(key, start)| {
                let now = read_start_time(proc_root, key.tgid);
                now.is_none() || now != **start
            })
            .map(|(key, _)| *key)
            .collect();
        for key in gone {
            self.decided.remove(&key);
            // An entry the LRU already evicted is not an error.
            let _ = self.policy.remove(&key);
        }
    }

    pub fn decided_len(&self) -> usize {
        self.decided.len()
    }

    fn error(&self, op: &str) {
        self.metrics.enforce_errors.with_label_values(&[op]).inc();
    }
}
