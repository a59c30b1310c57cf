//! The policy: model endpoints are reached directly only by the gateway's
//! own workloads and by workloads on the allow list. Pure values: the
//! flow table asks it about each classified flow.
use serde::{Deserialize, Serialize};

use crate::{classification::Route, flows::WorkloadInfo};

/// `--enforce`: what happens to a direct model call the policy forbids.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Nothing is judged or counted.
    #[default]
    Off,
    /// Counted (`gatewatch_denied_total{mode="audit"}`), never stopped.
    Audit,
    /// Stopped in the kernel and counted.
    Deny,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Off, Mode::Audit, Mode::Deny];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Audit => "audit",
            Mode::Deny => "deny",
        }
    }
}

/// Where a forbidden connection was (or would have been) stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// `connect()` failed with EPERM: the address is a provider's.
    Connect,
    /// The first bytes (ClientHello) named a model endpoint: dropped and
    /// the socket ended.
    FirstBytes,
}

impl Stage {
    pub const ALL: [Stage; 2] = [Stage::Connect, Stage::FirstBytes];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::FirstBytes => "first_bytes",
        }
    }
}

/// The policy's answer about one flow, on its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    pub stage: Stage,
    pub mode: Mode,
}

/// What the kernel already did to a flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelDid {
    pub refused_connect: bool,
    pub dropped_first_bytes: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
}

impl Policy {
    /// May this workload call model endpoints directly?
    pub fn may_call_directly(workload: &WorkloadInfo) -> bool {
        workload.is_gateway || workload.allowed_direct
    }

    /// Judges a classified flow. The kernel's own action always stands (it
    /// decided from the same rules); otherwise a `direct` flow from a
    /// workload that may not call providers directly is denied.
    pub fn judge(
        &self,
        route: Route,
        workload: &WorkloadInfo,
        kernel: KernelDid,
    ) -> Option<Denial> {
        if self.mode == Mode::Off {
            return None;
        }
        let stage = if kernel.refused_connect {
            Stage::Connect
        } else {
            Stage::FirstBytes
        };
        let forbidden = route == Route::Direct && !Self::may_call_directly(workload);
        (forbidden || kernel.refused_connect || kernel.dropped_first_bytes).then_some(Denial {
            stage,
            mode: self.mode,
        })
    }
}

/// Why a workload may or may not call an endpoint directly, for
/// `gatewatch classify --as`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// `allowed`, `denied` (under deny), `audited` (under audit) or, with
    /// enforcement off, `would be denied`.
    pub decision: &'static str,
    pub reason: String,
}

/// Explains the policy for a connection of `route` from a workload that
/// matched `gateway` (a gateway workload selector) or `allow` (an
/// `--allow-direct` selector), under `mode`.
pub fn explain(
    mode: Mode,
    route: Route,
    gateway: Option<&str>,
    allow: Option<&str>,
) -> Explanation {
    let allowed = |reason: String| Explanation {
        decision: "allowed",
        reason,
    };
    match (route, gateway, allow) {
        (Route::GatewayUpstream, Some(sel), _) => {
            allowed(format!("a gateway workload (--gateway-workload {sel})"))
        }
        (Route::Direct, _, Some(sel)) => {
            allowed(format!("on the allow list (--allow-direct {sel})"))
        }
        (Route::Direct, _, None) => Explanation {
            decision: match mode {
                Mode::Deny => "denied",
                Mode::Audit => "audited",
                Mode::Off => "would be denied",
            },
            reason: "a direct call to a model endpoint from a workload that is neither a gateway \
                     workload nor on --allow-direct"
                .into(),
        },
        (route, _, _) => allowed(format!("{route} traffic is never stopped")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(is_gateway: bool, allowed_direct: bool) -> WorkloadInfo {
        WorkloadInfo {
            is_gateway,
            allowed_direct,
            ..WorkloadInfo::default()
        }
    }

    #[test]
    fn only_direct_calls_from_workloads_not_allowed_are_denied() {
        let p = Policy { mode: Mode::Deny };
        let none = KernelDid::default();
        let denied = p.judge(Route::Direct, &workload(false, false), none);
        assert_eq!(
            denied,
            Some(Denial {
                stage: Stage::FirstBytes,
                mode: Mode::Deny
            })
        );
        assert_eq!(p.judge(Route::Direct, &workload(false, true), none), None);
        for route in [
            Route::Gateway,
            Route::GatewayUpstream,
            Route::AgentPlatform,
            Route::Other,
        ] {
            assert_eq!(
                p.judge(route, &workload(false, false), none),
                None,
                "{route:?}"
            );
        }
    }

    #[test]
    fn off_judges_nothing_and_audit_is_reported_as_audit() {
        let w = workload(false, false);
        let off = Policy { mode: Mode::Off };
        assert_eq!(off.judge(Route::Direct, &w, KernelDid::default()), None);
        let audit = Policy { mode: Mode::Audit };
        let d = audit.judge(Route::Direct, &w, KernelDid::default());
        assert_eq!(d.map(|d| d.mode), Some(Mode::Audit));
    }

    #[test]
    fn explanations_name_the_rule_that_decided() {
        let e = explain(Mode::Deny, Route::Direct, None, None);
        assert_eq!(e.decision, "denied");
        let e = explain(Mode::Off, Route::Direct, None, None);
        assert_eq!(e.decision, "would be denied");
        let e = explain(Mode::Deny, Route::Direct, None, Some("process=eval"));
        assert_eq!(e.decision, "allowed");
        assert!(e.reason.contains("--allow-direct process=eval"), "{e:?}");
        let e = explain(
            Mode::Deny,
            Route::GatewayUpstream,
            Some("process=litellm"),
            None,
        );
        assert!(
            e.reason.contains("--gateway-workload process=litellm"),
            "{e:?}"
        );
        let e = explain(Mode::Deny, Route::Other, None, None);
        assert_eq!(e.decision, "allowed");
    }

    #[test]
    fn a_connect_the_kernel_refused_is_a_connect_stage_denial() {
        let p = Policy { mode: Mode::Deny };
        let kernel = KernelDid {
            refused_connect: true,
            dropped_first_bytes: false,
        };
        let d = p.judge(Route::Direct, &workload(false, false), kernel);
        assert_eq!(d.map(|d| d.stage), Some(Stage::Connect));
    }
}
