//! `cargo xtask`: the project's automation, in Rust (the rust-analyzer pattern).
//!
//! Every subcommand is a thin entry point; the work lives in the module named after it.

mod conformance;
mod install_clients;
mod report_writers;
mod run_scenarios;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "regcompat automation", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the pinned OCI distribution-spec conformance suite and run it, every
    /// workflow enabled, against a fresh `fake-registry serve`. Fails unless zero failures.
    Conformance(conformance::Args),
    /// Install the real clients pinned in clients.toml into ~/.cache/regcompat (idempotent).
    InstallClients(install_clients::Args),
    /// Run the scenario matrix (scenarios × clients) against in-process fake registries;
    /// installs missing clients first; reports go to reports/out/.
    RunScenarios(run_scenarios::Args),
}

fn main() -> Result<()> {
    // The xtask binary doubles as the sandbox's credential helper: the runner links it
    // into each cell as `docker-credential-regcompat`.
    let invoked_as = std::env::args_os().next().map(std::path::PathBuf::from);
    if invoked_as
        .as_deref()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == harness::credhelper::BINARY)
    {
        std::process::exit(harness::credhelper::main_with_env());
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Conformance(args) => conformance::run(args),
        Command::InstallClients(args) => install_clients::run(args),
        Command::RunScenarios(args) => run_scenarios::run(args),
    }
}
