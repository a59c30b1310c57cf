//! `gatewatch agents`: a Foundry project's agents and the route of their
//! model calls. Talks to the project's API directly, not to a daemon.
use std::{io::Write as _, path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Args;

use super::flows::Output;
use crate::{
    agents::{self, credential::TokenProvider, http::Http, output},
    daemon::{config::AgentSettings, settings::Settings},
};

#[derive(Debug, Args)]
pub struct AgentsArgs {
    /// TOML config file, as for `gatewatch run`: adds its project_endpoints, azure_ca_file and azure_credential.
    #[arg(long, env = "GATEWATCH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A Foundry project endpoint, https://<resource>.services.ai.azure.com/api/projects/<project>. Repeatable.
    #[arg(
        long = "project-endpoint",
        env = "GATEWATCH_PROJECT_ENDPOINT",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub project_endpoints: Vec<String>,
    /// Trust only the CA certificates in this PEM file [default: the system store; SSL_CERT_FILE is honoured].
    #[arg(long, env = "GATEWATCH_AZURE_CA_FILE", value_name = "PEM")]
    pub azure_ca_file: Option<PathBuf>,
    /// Which Azure credential [default: auto: the first configured of GATEWATCH_AZURE_TOKEN, workload identity, App Service identity, else IMDS].
    #[arg(
        long,
        env = "GATEWATCH_AZURE_CREDENTIAL",
        value_enum,
        value_name = "MODE"
    )]
    pub azure_credential: Option<agents::credential::Mode>,
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

impl AgentsArgs {
    fn settings(&self) -> anyhow::Result<AgentSettings> {
        let file = match &self.config {
            Some(path) => Settings::load(path)?,
            None => Settings::default(),
        };
        let flags = Settings {
            project_endpoints: self.project_endpoints.clone(),
            azure_ca_file: self.azure_ca_file.clone(),
            azure_credential: self.azure_credential,
            ..Settings::default()
        };
        Ok(AgentSettings::build(&file, &flags)?)
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
