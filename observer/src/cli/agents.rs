//! `gatewatch agents`: a Foundry project's agents and the route of their
//! model calls. Talks to the project's API directly, not to a daemon.
use std::{io::Write as _, process::ExitCode};

use anyhow::Context as _;
use clap::Args;

use super::{ConfigArgs, flows::Output};
use crate::{
    agents::{self, credential::TokenProvider, http::Http, output},
    daemon::config::AgentSettings,
};

#[derive(Debug, Args)]
pub struct AgentsArgs {
    /// The settings of `gatewatch run`: this command reads
    /// project_endpoints (`--project-endpoint`), azure_ca_file and
    /// azure_credential, from flags, variables or `--config`.
    #[command(flatten)]
    pub config: ConfigArgs,
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

impl AgentsArgs {
    fn settings(&self) -> anyhow::Result<AgentSettings> {
        Ok(AgentSettings::build(
            &self.config.file()?,
            &self.config.settings,
        )?)
    }
}

pub fn run(args: &AgentsArgs) -> anyhow::Result<ExitCode> {
    let s = args.settings()?;
    anyhow::ensure!(
        !s.projects.is_empty(),
        "no project: give --project-endpoint URL (or project_endpoints in --config)"
    );
    let http = Http::new(&s.roots)?;
    let mut creds = TokenProvider::from_env(s.credential)?;
    let mut rows = Vec::new();
    let mut failed = false;
    for p in &s.projects {
        match agents::audit_project(&http, &mut creds, p, &agents::catalogue_model_host) {
            Ok(report) => {
                for n in report.notes {
                    eprintln!("gatewatch: note: {}: {n}", p.label());
                }
                rows.extend(report.rows);
            }
            Err(e) => {
                eprintln!("gatewatch: error: {}: {e}", p.label());
                failed = true;
            }
        }
    }
    let mut out = std::io::stdout().lock();
    match args.output {
        // A header over nothing reads like "no agents": say that only when true.
        Output::Table if rows.is_empty() && failed => {}
        Output::Table if rows.is_empty() => writeln!(out, "no agents")?,
        Output::Table => output::write_table(&mut out, &rows)?,
        Output::Json => output::write_json(&mut out, &rows)?,
    }
    out.flush().context("stdout")?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
