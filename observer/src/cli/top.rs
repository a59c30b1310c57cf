//! `gatewatch top`: a refreshing per-workload summary, most direct first.
use std::{
    collections::{HashMap, HashSet},
    io::Write as _,
    time::{Duration, Instant},
};

use clap::Args;
use crossterm::{
    event::{self, Event, KeyCode, KeyModifiers},
    terminal,
};

use super::{
    client::{Client, DEFAULT_ADDR},
    flows::Output,
    view,
};
use crate::{
    agents::audit::{WorkloadAgents, WorkloadKey},
    outputs::flow_log::{FlowFilter, SummaryKey, SummaryRow},
};

/// The workloads to mark: those calling a Foundry resource where an audited
/// agent routes its model calls direct. Empty when the daemon runs without
/// `--agent-audit` or predates it (404): the marker is optional.
fn direct_agent_workloads(client: &Client) -> HashSet<WorkloadKey> {
    client
        .get::<Vec<WorkloadAgents>>("/api/v1/agents/workloads", &FlowFilter::default())
        .unwrap_or_default()
        .into_iter()
        .filter(|w| w.direct > 0)
        .map(|w| w.workload)
        .collect()
}

fn workload_of(key: &SummaryKey) -> WorkloadKey {
    WorkloadKey {
        namespace: key.namespace.clone(),
        pod: key.pod.clone(),
        container: key.container.clone(),
        process: key.process.clone(),
    }
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// The daemon's HTTP address (its --metrics-addr).
    #[arg(long, env = "GATEWATCH_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: String,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 2.0)]
    pub interval: f64,
    /// Print one summary (totals since start) and exit, for scripts.
    #[arg(long)]
    pub once: bool,
    /// Rows to show.
    #[arg(long, default_value_t = 20)]
    pub rows: usize,
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Share of a workload's connections that went direct, by workload.
fn direct_shares(rows: &[SummaryRow]) -> HashMap<(String, String, String, String), f64> {
    let mut totals: HashMap<_, (u64, u64)> = HashMap::new();
    for r in rows {
        let k = (
            r.key.namespace.clone(),
            r.key.pod.clone(),
            r.key.container.clone(),
            r.key.process.clone(),
        );
        let t = totals.entry(k).or_default();
        t.1 += r.connections;
        if r.key.route == "direct" {
            t.0 += r.connections;
        }
    }
    totals
        .into_iter()
        .map(|(k, (d, all))| (k, if all == 0 { 0.0 } else { d as f64 / all as f64 }))
        .collect()
}

/// How much a counter grew since `before`. A counter that went down was
/// reset (the daemon restarted under `top`) and counted again from 0, so
/// all of its new value is the increase, as Prometheus `rate()` treats it.
fn increase(now: u64, before: Option<u64>) -> u64 {
    match before {
        Some(b) if b <= now => now - b,
        _ => now,
    }
}

/// Lines of one frame; rates are per second since `prev` (totals when none).
/// Workloads in `marked` get a `!` before their name.
pub fn frame(
    rows: &[SummaryRow],
    prev: Option<(&HashMap<SummaryKey, SummaryRow>, f64)>,
    max_rows: usize,
    marked: &HashSet<WorkloadKey>,
) -> Vec<String> {
    let shares = direct_shares(rows);
    let mut lines: Vec<(f64, f64, String)> = rows
        .iter()
        .map(|r| {
            let rates = match prev {
                Some((before, secs)) => {
                    let b = before.get(&r.key);
                    let up = |now: u64, then: fn(&SummaryRow) -> u64| {
                        increase(now, b.map(then)) as f64 / secs
                    };
                    view::Rates {
                        connections: up(r.connections, |b| b.connections),
                        bytes: up(r.bytes_sent, |b| b.bytes_sent)
                            + up(r.bytes_received, |b| b.bytes_received),
                        requests: up(r.requests, |b| b.requests),
                        tokens: up(r.tokens, |b| b.tokens),
                    }
                }
                None => view::Rates {
                    connections: r.connections as f64,
                    bytes: (r.bytes_sent + r.bytes_received) as f64,
                    requests: r.requests as f64,
                    tokens: r.tokens as f64,
                },
            };
            let conn = rates.connections;
            let share = shares
                .get(&(
                    r.key.namespace.clone(),
                    r.key.pod.clone(),
                    r.key.container.clone(),
                    r.key.process.clone(),
                ))
                .copied()
                .unwrap_or(0.0);
            let direct = if r.key.route == "direct" { conn } else { 0.0 };
            let mark = marked.contains(&workload_of(&r.key));
            (direct, conn, view::top_line(r, rates, share, mark))
        })
        .collect();
    // Most direct traffic first, then busiest.
    lines.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1)));
    std::iter::once(view::TOP_HEADER.to_owned())
        .chain(lines.into_iter().take(max_rows).map(|l| l.2))
        .collect()
}

/// Restores the terminal however `top` ends.
struct RawMode;

impl RawMode {
    fn enter() -> anyhow::Result<Self> {
        terminal::enable_raw_mode()?;
        Ok(Self)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = terminal::disable_raw_mode();
    }
}

/// Waits up to `d` for q, Esc or Ctrl-C; true means quit.
fn quit_requested(d: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + d;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if !event::poll(left)? {
            break;
        }
        if let Event::Key(k) = event::read()? {
            let ctrl_c =
                k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
            if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

pub fn run(args: &TopArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.interval > 0.0, "--interval must be positive");
    let client = Client::new(&args.addr);
    let fetch = || client.get::<Vec<SummaryRow>>("/api/v1/summary", &FlowFilter::default());
    let rows = fetch()?;
    if args.once || !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        match args.output {
            Output::Json => rows
                .iter()
                .try_for_each(|r| serde_json::to_string(r).map(|l| println!("{l}")))?,
            Output::Table => frame(&rows, None, args.rows, &direct_agent_workloads(&client))
                .iter()
                .for_each(|l| println!("{l}")),
        }
        return Ok(());
    }
    let interval = Duration::from_secs_f64(args.interval);
    let _raw = RawMode::enter()?;
    let mut prev: HashMap<SummaryKey, SummaryRow> =
        rows.into_iter().map(|r| (r.key.clone(), r)).collect();
    let mut last = Instant::now();
    loop {
        if quit_requested(interval)? {
            return Ok(());
        }
        let rows = fetch()?;
        let secs = last.elapsed().as_secs_f64();
        last = Instant::now();
        let mut out = std::io::stdout().lock();
        // Raw mode: explicit carriage returns; clear and home the cursor each frame.
        write!(
            out,
            "\x1b[H\x1b[2Jgatewatch top  {}  every {:.1}s  (q to quit; ! = its Foundry agents route direct)\r\n\r\n",
            args.addr, args.interval
        )?;
        let marked = direct_agent_workloads(&client);
        for line in frame(&rows, Some((&prev, secs)), args.rows, &marked) {
            write!(out, "{line}\r\n")?;
        }
        out.flush()?;
        prev = rows.into_iter().map(|r| (r.key.clone(), r)).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ns: &str, route: &str, conns: u64) -> SummaryRow {
        SummaryRow {
            key: SummaryKey {
                namespace: ns.into(),
                pod: "p".into(),
                container: "c".into(),
                process: "python3".into(),
                route: route.into(),
                provider: "openai".into(),
            },
            connections: conns,
            ..Default::default()
        }
    }

    #[test]
    fn frames_sort_by_direct_traffic_and_show_the_direct_share() {
        let rows = vec![
            row("busy", "gateway", 50),
            row("leaky", "direct", 3),
            row("leaky", "gateway", 1),
        ];
        let lines = frame(&rows, None, 10, &HashSet::new());
        assert_eq!(lines[0], view::TOP_HEADER);
        assert!(
            lines[1].starts_with("leaky/p/c")
                && lines[1].contains("direct")
                && lines[1].ends_with("75%"),
            "{lines:#?}"
        );
        assert!(
            lines[2].starts_with("busy/p/c") && lines[2].ends_with(" 0%"),
            "{lines:#?}"
        );
        assert!(lines.iter().all(|l| l.len() <= 80), "{lines:#?}");
    }

    #[test]
    fn rates_are_per_second_since_the_last_frame() {
        let before: HashMap<_, _> = [row("a", "direct", 10)]
            .into_iter()
            .map(|r| (r.key.clone(), r))
            .collect();
        let lines = frame(
            &[row("a", "direct", 30)],
            Some((&before, 2.0)),
            10,
            &HashSet::new(),
        );
        assert!(lines[1].contains("  10.0 "), "{lines:#?}");
    }

    #[test]
    fn requests_and_tokens_are_rates_too() {
        let mut old = row("a", "direct", 1);
        old.requests = 4;
        old.tokens = 1000;
        let before: HashMap<_, _> = [(old.key.clone(), old)].into_iter().collect();
        let mut now = row("a", "direct", 1);
        now.requests = 10;
        now.tokens = 5000;
        let lines = frame(&[now], Some((&before, 2.0)), 10, &HashSet::new());
        // 6 requests and 4000 tokens over 2 seconds.
        assert!(lines[1].contains("   3.0   2.0k"), "{lines:#?}");
    }

    #[test]
    fn workloads_whose_agents_route_direct_are_marked() {
        let rows = vec![row("agents", "direct", 2), row("plain", "direct", 1)];
        let marked = HashSet::from([workload_of(&rows[0].key)]);
        let lines = frame(&rows, None, 10, &marked);
        assert!(lines[1].starts_with("!agents/p/c"), "{lines:#?}");
        assert!(lines[2].starts_with("plain/p/c"), "{lines:#?}");
        assert!(lines.iter().all(|l| l.len() <= 80), "{lines:#?}");
    }

    #[test]
    fn a_counter_that_went_down_restarted_from_zero() {
        // The daemon restarted between frames: its totals start again from
        // 0, so the new value is the whole increase (Prometheus rate()).
        let mut old = row("a", "direct", 500);
        old.bytes_sent = 1_000_000;
        old.bytes_received = 10;
        let before: HashMap<_, _> = [(old.key.clone(), old)].into_iter().collect();
        let mut now = row("a", "direct", 8);
        now.bytes_sent = 4096;
        now.bytes_received = 20;
        let lines = frame(&[now], Some((&before, 2.0)), 10, &HashSet::new());
        // 8 connections and 4096 + (20 - 10) bytes over 2 seconds.
        assert!(lines[1].contains("   4.0 "), "{lines:#?}");
        assert!(lines[1].contains(&view::bytes(2053)), "{lines:#?}");
    }
}
