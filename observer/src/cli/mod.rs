//! Command line: `gatewatch run | flows | top | agents | classify | catalog
//! | check-config | version | completions`.
pub mod agents;
mod client;
mod flows;
mod top;
mod view;

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::{
    classification::{Catalog, Classifier},
    daemon::{config::Config, settings::Settings},
    enforcement,
    workload::{GatewaySelector, describe_workload},
};

#[derive(Debug, Parser)]
#[command(name = "gatewatch", version, about = "Which workloads call LLM providers directly, bypassing the AI gateway.", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach to the node's cgroup v2 tree and export metrics (needs root or CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN).
    ///
    /// Example: gatewatch run --gateway corp=contoso-apim.azure-api.net --provider openai=10.0.0.0/8:443
    Run(RunArgs),
    /// Show recent connections from a running daemon, or follow new ones.
    ///
    /// Example: gatewatch flows --follow --route direct --namespace team-a
    Flows(flows::FlowsArgs),
    /// A refreshing summary per workload, route and provider, most direct traffic first (q quits).
    ///
    /// Example: gatewatch top --addr http://10.0.0.5:9464
    Top(top::TopArgs),
    /// A Foundry project's agents and whether their model calls go through the AI gateway (asks the project's API; Azure AI User role).
    ///
    /// Example: gatewatch agents --project-endpoint https://contoso.services.ai.azure.com/api/projects/sales
    Agents(agents::AgentsArgs),
    /// Validate a config file; exits non-zero naming the bad field.
    ///
    /// Example: gatewatch check-config /etc/gatewatch/config.toml
    CheckConfig {
        /// TOML config file.
        file: PathBuf,
    },
    /// Show how a destination would be classified, and the rule that decided.
    ///
    /// Example: gatewatch classify api.openai.com:443
    Classify(ClassifyArgs),
    /// List the built-in catalogue of providers, gateways and agent platforms.
    Catalog {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print version and commit.
    Version,
    /// Print a shell completion script.
    ///
    /// Example: gatewatch completions bash > /etc/bash_completion.d/gatewatch
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// TOML config file (see README: Configuration).
    #[arg(long, env = "GATEWATCH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Settings,
}

impl ConfigArgs {
    /// The config file's layer (empty without `--config`).
    fn file(&self) -> anyhow::Result<Settings> {
        match &self.config {
            Some(path) => Ok(Settings::load(path)?),
            None => Ok(Settings::default()),
        }
    }

    /// The effective configuration: the file's layer under the flags'.
    fn config(&self) -> anyhow::Result<Config> {
        Ok(Config::build(&self.file()?, &self.settings)?)
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// HOST[:PORT], IP[:PORT] or [IPv6]:PORT; the port defaults to 443.
    pub target: String,
    /// Classify as a connection made by a gateway workload.
    #[arg(long)]
    pub from_gateway: bool,
    /// Also say what the --enforce policy does with it, for the workload described in selector syntax, e.g. namespace=team-a,pod=agent-0,process=python3 (matched against --gateway-workload and --allow-direct).
    #[arg(long = "as", value_name = "WORKLOAD")]
    pub as_workload: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run(_)) {
        // Commands that print end quietly when their reader goes away
        // (`gatewatch catalog | head`), as other command-line tools do.
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("gatewatch: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => {
            let cfg = args.config.config()?;
            // Other crates (aya's loader is chatty at debug) stay at info at most.
            env_logger::Builder::new()
                .filter_level(cfg.log_level.min(log::LevelFilter::Info))
                .filter_module("observer", cfg.log_level)
                .format_target(false)
                .init();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(crate::daemon::run::run(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => {
            let cfg = Config::build(&Settings::load(&file)?, &Settings::default())?;
            println!(
                "{}: ok ({} rules, {} ignored catalogue patterns, metrics on {})",
                file.display(),
                cfg.rules.len(),
                cfg.ignore.len(),
                cfg.metrics_addr
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Classify(args) => classify(&args),
        Command::Catalog { json } => {
            print_catalog(Catalog::builtin(), json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("gatewatch {} ({})", crate::VERSION, crate::GIT_SHA);
            Ok(ExitCode::SUCCESS)
        }
        Command::Flows(args) => flows::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Top(args) => top::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Agents(args) => agents::run(&args),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "gatewatch",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Splits `HOST[:PORT]`, `IP[:PORT]` or `[IPv6]:PORT`; port 443 by default.
pub fn split_target(target: &str) -> anyhow::Result<(String, u16)> {
    const DEFAULT_PORT: u16 = 443;
    if let Some(rest) = target.strip_prefix('[') {
        let (host, port) = rest.split_once("]:").context("expected [IPv6]:PORT")?;
        return Ok((host.to_owned(), port.parse().context("bad port")?));
    }
    if target.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok((target.to_owned(), DEFAULT_PORT));
    }
    match target.rsplit_once(':') {
        Some((host, port)) => Ok((
            host.to_owned(),
            port.parse().with_context(|| format!("bad port {port:?}"))?,
        )),
        None => Ok((target.to_owned(), DEFAULT_PORT)),
    }
}

fn classify(args: &ClassifyArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config.config()?;
    let classifier = Classifier::new(
        cfg.rules,
        Catalog::builtin().clone(),
        cfg.ignore,
        cfg.catalog_gateways,
    );
    let (host, port) = split_target(&args.target)?;
    let (name, addr) = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => (None, ip),
        Err(_) => (Some(host.as_str()), std::net::IpAddr::from([0, 0, 0, 0])),
    };
    let workload = args
        .as_workload
        .as_deref()
        .map(describe_workload)
        .transpose()
        .context("--as")?;
    let first_match = |selectors: &[GatewaySelector]| {
        workload.as_ref().and_then(|(w, comm)| {
            selectors
                .iter()
                .find(|s| s.matches(w, comm))
                .map(ToString::to_string)
        })
    };
    let gateway = first_match(&cfg.gateway_workloads);
    let allow = first_match(&cfg.allow_direct);
    let verdict = classifier.classify(name, addr, port, args.from_gateway || gateway.is_some());
    let policy = workload.as_ref().map(|_| {
        enforcement::explain(
            cfg.enforce,
            verdict.route,
            gateway.as_deref(),
            allow.as_deref(),
        )
    });
    if args.json {
        let mut value = serde_json::to_value(&verdict)?;
        if let Some(p) = &policy {
            value["policy"] = serde_json::json!({
                "enforce": cfg.enforce, "decision": p.decision, "reason": p.reason,
            });
        }
        println!("{value}");
    } else {
        println!("route:    {}", verdict.route);
        println!(
            "provider: {}",
            if verdict.provider.is_empty() {
                "-"
            } else {
                &verdict.provider
            }
        );
        println!("kind:     {}", verdict.kind.map_or("-", |k| k.as_str()));
        match &verdict.matched {
            Some(m) => println!("matched:  {} {} ({})", m.source, m.pattern, m.origin),
            None => println!("matched:  nothing (not AI traffic as far as gatewatch knows)"),
        }
        if let Some(p) = &policy {
            println!(
                "policy:   {} (--enforce {}): {}",
                p.decision,
                cfg.enforce.as_str(),
                p.reason
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_catalog(catalog: &Catalog, json: bool) {
    if !json {
        println!(
            "catalogue {} ({} entries)",
            catalog.version,
            catalog.entries().len()
        );
        println!("{:<16} {:<24} {:<5} PATTERNS", "KIND", "PROVIDER", "CERT");
    }
    for e in catalog.entries() {
        let patterns: Vec<String> = e.patterns.iter().map(|p| p.to_string()).collect();
        if json {
            let row = serde_json::json!({
                "kind": e.kind, "provider": e.provider, "certainty": format!("{:?}", e.certainty),
                "patterns": patterns, "ports": e.ports, "source": e.source, "note": e.note,
            });
            println!("{row}");
        } else {
            println!(
                "{:<16} {:<24} {:<5} {}",
                e.kind.as_str(),
                e.provider,
                format!("{:?}", e.certainty),
                patterns.join(" ")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn targets_split_into_host_and_port() {
        assert_eq!(
            split_target("api.openai.com").unwrap(),
            ("api.openai.com".into(), 443)
        );
        assert_eq!(
            split_target("10.0.0.1:4000").unwrap(),
            ("10.0.0.1".into(), 4000)
        );
        assert_eq!(split_target("[::1]:8443").unwrap(), ("::1".into(), 8443));
        assert_eq!(split_target("::1").unwrap(), ("::1".into(), 443));
        assert!(split_target("host:http").is_err());
    }
}
