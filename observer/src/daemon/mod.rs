//! The daemon's wiring: every setting defined once ([`settings`]), the
//! effective configuration built from them ([`config`]), and the event loop
//! that joins the stages ([`run`]), and the `--agent-audit` task beside it
//! ([`agent_audit`]).
pub mod agent_audit;
pub mod config;
pub mod run;
pub mod settings;

pub use config::Config;
