//! Talks to a running daemon's JSON API (the same endpoints users can curl).
use std::io::{BufRead as _, BufReader};

use anyhow::{Context as _, anyhow};
use serde::de::DeserializeOwned;

use crate::outputs::flow_log::FlowFilter;

/// Where `gatewatch run` serves by default, as seen from the same node.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:9464";

pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(addr: &str) -> Self {
        let base = if addr.contains("://") {
            addr.to_owned()
        } else {
            format!("http://{addr}")
        };
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(std::time::Duration::from_secs(3)))
            .build()
            .into();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    fn url(&self, path: &str, filter: &FlowFilter) -> String {
        let query = query_string(filter);
        if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{query}", self.base)
        }
    }

    fn unreachable(&self, err: ureq::Error) -> anyhow::Error {
        match err {
            ureq::Error::StatusCode(code) => {
                anyhow!("gatewatch at {} answered HTTP {code}", self.base)
            }
            other => anyhow!(
                "cannot reach gatewatch at {}: {other}. Is `gatewatch run` running there? Point --addr (or GATEWATCH_ADDR) at its --metrics-addr",
                self.base
            ),
        }
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str, filter: &FlowFilter) -> anyhow::Result<T> {
        let url = self.url(path, filter);
        let mut resp = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| self.unreachable(e))?;
        resp.body_mut()
            .read_json()
            .with_context(|| format!("unexpected answer from {url}"))
    }

    /// Calls `each` for every JSON line of a streaming endpoint until it ends
    /// or `each` returns false.
    pub fn stream<T: DeserializeOwned>(
        &self,
        path: &str,
        filter: &FlowFilter,
        connected: impl FnOnce(),
        mut each: impl FnMut(T) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let url = self.url(path, filter);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(std::time::Duration::from_secs(3)))
            .timeout_global(None)
            .build()
            .into();
        let resp = agent.get(&url).call().map_err(|e| self.unreachable(e))?;
        connected();
        let reader = BufReader::new(resp.into_body().into_reader());
        for line in reader.lines() {
            let line = line.context("stream interrupted")?;
            if line.trim().is_empty() {
                continue;
            }
            let value =
                serde_json::from_str(&line).with_context(|| format!("bad line from {url}"))?;
            if !each(value)? {
                break;
            }
        }
        Ok(())
    }
}

/// Query string for a filter (only the fields that are set).
fn query_string(filter: &FlowFilter) -> String {
    serde_urlencoded::to_string(filter).expect("a filter of strings and numbers encodes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classification::Route;

    #[test]
    fn filters_become_query_strings() {
        let f = FlowFilter {
            route: Some(Route::Direct),
            namespace: Some("team a".into()),
            limit: Some(5),
            ..Default::default()
        };
        assert_eq!(query_string(&f), "route=direct&namespace=team+a&limit=5");
        assert_eq!(query_string(&FlowFilter::default()), "");
        let denied = FlowFilter {
            denied: true,
            ..Default::default()
        };
        assert_eq!(query_string(&denied), "denied=true");
    }
}
