//! What an endpoint is ([`Kind`], from the catalogue or a rule) and which
//! route a connection took ([`Route`]), and how one maps to the other.
use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Gateway,
    Direct,
    GatewayUpstream,
    AgentPlatform,
    Other,
}

impl Route {
    pub const ALL: [Route; 5] = [
        Route::Gateway,
        Route::Direct,
        Route::GatewayUpstream,
        Route::AgentPlatform,
        Route::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Route::Gateway => "gateway",
            Route::Direct => "direct",
            Route::GatewayUpstream => "gateway_upstream",
            Route::AgentPlatform => "agent_platform",
            Route::Other => "other",
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Route {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Route::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown route {s:?}: expected gateway, direct, gateway_upstream, agent_platform or other")
            })
    }
}

/// What an endpoint is, as the catalogue or a rule says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Model inference API.
    Model,
    /// An AI gateway in front of model providers.
    Gateway,
    /// A hosted agent service's API (the model call happens server-side).
    AgentPlatform,
    /// One host serves model inference and an agent or management API.
    Mixed,
    /// A provider's management API, not inference.
    ModelControl,
    /// Known not to be a gateway or model endpoint (e.g. hosts only seen in
    /// CNAME chains).
    Exclude,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Model => "model",
            Kind::Gateway => "gateway",
            Kind::AgentPlatform => "agent_platform",
            Kind::Mixed => "mixed",
            Kind::ModelControl => "model_control",
            Kind::Exclude => "exclude",
        }
    }
}

/// The route of a connection to an endpoint of `kind`. Catalogue gateways
/// count as `gateway` only when `gateways_enabled` (`catalog_gateways`).
pub fn route_for(kind: Kind, gateways_enabled: bool) -> Route {
    match kind {
        Kind::Model | Kind::Mixed => Route::Direct,
        Kind::Gateway if gateways_enabled => Route::Gateway,
        Kind::AgentPlatform => Route::AgentPlatform,
        Kind::Gateway | Kind::ModelControl | Kind::Exclude => Route::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_round_trip() {
        for r in Route::ALL {
            assert_eq!(r.as_str().parse::<Route>(), Ok(r));
        }
        assert!("bypass".parse::<Route>().is_err());
    }
}
