//! Terminal output for `flows` and `top`: fixed columns that fit an
//! 80-column terminal (long values are cut with '~'), or JSON lines.
use crate::{
    flows::{FlowRecord, FlowState},
    outputs::flow_log::SummaryRow,
};

/// Cuts `s` to `width` characters, marking the cut.
pub fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        format!("{s:<width$}")
    } else {
        let head: String = s.chars().take(width.saturating_sub(1)).collect();
        format!("{head}~")
    }
}

/// Human-readable bytes: 512, 1.5k, 3.2M.
pub fn bytes(n: u64) -> String {
    const UNITS: [(&str, f64); 3] = [("G", 1e9), ("M", 1e6), ("k", 1e3)];
    UNITS
        .iter()
        .find(|(_, size)| n as f64 >= *size)
        .map_or_else(
            || n.to_string(),
            |(unit, size)| format!("{:.1}{unit}", n as f64 / size),
        )
}

/// The workload as one column: namespace/pod/container, or the process off Kubernetes.
pub fn workload(namespace: &str, pod: &str, container: &str) -> String {
    match (namespace, pod, container) {
        ("", "", "") => "-".to_owned(),
        (ns, pod, "") => format!("{ns}/{pod}"),
        (ns, pod, c) => format!("{ns}/{pod}/{c}"),
    }
}

pub const FLOW_HEADER: &str =
    "TIME     ROUTE   PROVIDER  ENDPOINT           SRC  WORKLOAD   PROCES BYTES STATE";

fn hms(unix_ms: u64) -> String {
    let secs = (unix_ms / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

fn short_route(route: &str) -> &str {
    match route {
        "gateway_upstream" => "upstrm",
        "agent_platform" => "agent",
        other => other,
    }
}

fn short_state(state: FlowState) -> &'static str {
    match state {
        FlowState::Connecting => "conn",
        FlowState::Established => "open",
        FlowState::Closed => "close",
        FlowState::Failed => "fail",
    }
}

fn short_source(source: &str) -> &str {
    match source {
        "http_host" => "host",
        other => other,
    }
}

/// One flow, in 80 columns (UTC time; endpoint falls back to the address).
pub fn flow_line(f: &FlowRecord) -> String {
    let endpoint = if f.endpoint.is_empty() {
        f.dst.to_string()
    } else {
        f.endpoint.clone()
    };
    format!(
        "{} {} {} {} {} {} {} {:>5} {}",
        hms(f.time_unix_ms),
        fit(short_route(f.route.as_str()), 7),
        fit(
            if f.provider.is_empty() {
                "-"
            } else {
                &f.provider
            },
            9
        ),
        fit(&endpoint, 18),
        fit(short_source(f.name_source.as_str()), 4),
        fit(
            &workload(
                &f.workload.namespace,
                &f.workload.pod,
                &f.workload.container
            ),
            10
        ),
        fit(&f.process, 6),
        bytes(f.bytes_sent + f.bytes_received),
        match f.denied {
            // What --enforce did tells more than the state it left.
            Some(d) => d.mode.as_str(),
            None => short_state(f.state),
        },
    )
}

pub const TOP_HEADER: &str =
    "WORKLOAD       PROCESS  ROUTE   PROVIDER CONN/S BYTES/S REQ/S  TOK/S ACT DIR%";

/// Per-second rates of one summary row over the refresh interval (totals
/// for a single frame).
#[derive(Clone, Copy, Debug, Default)]
pub struct Rates {
    pub connections: f64,
    pub bytes: f64,
    /// `--tls-probes`: requests and tokens read inside the flows.
    pub requests: f64,
    pub tokens: f64,
}

/// One summary row with its rates, in 80 columns; `marked` puts a `!`
/// before the workload (its Foundry agents route direct).
pub fn top_line(row: &SummaryRow, rates: Rates, direct_share: f64, marked: bool) -> String {
    let name = workload(&row.key.namespace, &row.key.pod, &row.key.container);
    let name = if marked { format!("!{name}") } else { name };
    format!(
        "{} {} {} {} {:>6.1} {:>7} {:>5.1} {:>6} {:>3} {:>3.0}%",
        fit(&name, 14),
        fit(&row.key.process, 8),
        fit(short_route(&row.key.route), 7),
        fit(
            if row.key.provider.is_empty() {
                "-"
            } else {
                &row.key.provider
            },
            8
        ),
        rates.connections,
        bytes(rates.bytes as u64),
        rates.requests,
        bytes(rates.tokens as u64),
        row.active,
        direct_share * 100.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_and_mark_cuts() {
        assert_eq!(fit("openai", 8), "openai  ");
        assert_eq!(fit("contoso-apim.azure-api.net:443", 10), "contoso-a~");
        assert!(FLOW_HEADER.len() <= 80 && TOP_HEADER.len() <= 80);
    }

    #[test]
    fn bytes_are_humane() {
        assert_eq!(bytes(512), "512");
        assert_eq!(bytes(1500), "1.5k");
        assert_eq!(bytes(3_200_000), "3.2M");
    }
}
