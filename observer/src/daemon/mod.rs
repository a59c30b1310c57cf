//! The daemon's wiring: every setting defined once ([`settings`]), the
//! effective configuration built from them ([`config`]), and the event loop
//! that joins the stages ([`run`]).
pub mod config;
pub mod run;
pub mod settings;

pub use config::Config;
