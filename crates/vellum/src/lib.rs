//! The `vellum` binary's library: configuration, start-up and shutdown, and the CLI.
//!
//! The binary (`main.rs`) only calls [`cli::run`]. Tests start the same [`startup::Application`]
//! the binary does, on `127.0.0.1:0`, so they exercise the real server.

pub mod cli;
pub mod config;
pub mod copy_cli;
pub mod export_cli;
pub mod jobs;
pub mod metrics;
pub mod ops_cli;
pub mod signing;
pub mod startup;
pub mod telemetry;
pub mod terminal;
pub mod verify;
