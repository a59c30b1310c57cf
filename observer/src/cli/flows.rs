//! `gatewatch flows`: recent or live connections from a running daemon.
use std::io::Write as _;

use clap::{Args, ValueEnum};

use super::{
    client::{Client, DEFAULT_ADDR},
    view,
};
use crate::{classification::Route, flows::FlowRecord, outputs::FlowFilter};

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum Output {
    /// Columns for an 80-column terminal.
    #[default]
    Table,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub struct Filters {
    /// Only this route: gateway, direct, gateway_upstream, agent_platform or other.
    #[arg(long)]
    pub route: Option<Route>,
    /// Only this provider label, e.g. openai.
    #[arg(long)]
    pub provider: Option<String>,
    /// Only this Kubernetes namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Only this pod.
    #[arg(long)]
    pub pod: Option<String>,
    /// Only this process (comm).
    #[arg(long)]
    pub process: Option<String>,
    /// Only connections the --enforce policy forbade (stopped under deny, counted under audit).
    #[arg(long)]
    pub denied: bool,
}

impl Filters {
    pub fn to_filter(&self, limit: Option<usize>) -> FlowFilter {
        FlowFilter {
            route: self.route,
            provider: self.provider.clone(),
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            process: self.process.clone(),
            limit,
            denied: self.denied,
        }
    }
}

#[derive(Debug, Args)]
pub struct FlowsArgs {
    /// The daemon's HTTP address (its --metrics-addr).
    #[arg(long, env = "GATEWATCH_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: String,
    /// Keep streaming new and updated flows until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// Recent flows to show (without --follow).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    pub filters: Filters,
}

fn print(flow: &FlowRecord, output: Output) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match output {
        Output::Table => writeln!(out, "{}", view::flow_line(flow))?,
        Output::Json => writeln!(out, "{}", serde_json::to_string(flow)?)?,
    }
    out.flush()?;
    Ok(())
}

pub fn run(args: &FlowsArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.addr);
    let header = || {
        if matches!(args.output, Output::Table) {
            println!("{}", view::FLOW_HEADER);
        }
    };
    if args.follow {
        let filter = args.filters.to_filter(None);
        return client.stream(
            "/api/v1/flows/stream",
            &filter,
            header,
            |flow: FlowRecord| {
                print(&flow, args.output)?;
                Ok(true)
            },
        );
    }
    let flows: Vec<FlowRecord> =
        client.get("/api/v1/flows", &args.filters.to_filter(Some(args.limit)))?;
    header();
    for flow in &flows {
        print(flow, args.output)?;
    }
    Ok(())
}
