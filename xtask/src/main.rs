//! `cargo xtask`: the project's automation, in Rust (the rust-analyzer pattern).
//!
//! Every subcommand is a thin entry point; the work lives in the module named after it.

mod conformance;
mod image;
mod install_clients;
mod report_diff;
mod report_merge;
mod repro;
mod run_scenarios;
mod soak;

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
    /// Build the fake-registry container image offline (the binary and the libraries it
    /// links, imported from a tar: no base image) and tag it regcompat/fake-registry:<version>.
    Image(image::Args),
    /// Install the real clients pinned in clients.toml into ~/.cache/regcompat (idempotent).
    InstallClients(install_clients::Args),
    /// The main job: provision the clients, run the scenario matrix, write reports
    /// (report.json, junit.xml, matrix.md, matrix-full.md, index.html), print a summary and
    /// append a compact entry to the history.
    RunScenarios(run_scenarios::Args),
    /// Run one cell of the matrix live and keep its fleet and daemons up: prints the command
    /// of its first unexpected step, to paste into a shell, until Ctrl-C.
    Repro(repro::Args),
    /// Compare two report.json files and print the changed cells as Markdown.
    #[command(alias = "diff-reports")]
    ReportDiff(report_diff::Args),
    /// Merge the reports of `run-scenarios --shard I/N` runs into the report of the whole
    /// matrix (every format run-scenarios writes). Refuses shards of different versions,
    /// scenarios, clients or shard counts, overlapping shards and missing ones.
    ReportMerge(report_merge::Args),
    /// Drive an in-process fake registry (memory, disk, bearer auth) with concurrent pushes
    /// and pulls for a duration; fails on any unexpected error, any unreadable acknowledged
    /// digest, or RSS or p50 at the end more than 2x their value after the first 10%.
    Soak(soak::SoakArgs),
    /// GET one 1 KiB blob N times with K keep-alive clients (in-process registry, journal on);
    /// fails if p50 or RSS at the end is more than 2x its value after the first window.
    Flood(soak::FloodArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Conformance(args) => conformance::run(args),
        Command::Image(args) => image::run(args),
        Command::InstallClients(args) => install_clients::run(args),
        Command::RunScenarios(args) => run_scenarios::run(args),
        Command::ReportDiff(args) => report_diff::run(args),
        Command::ReportMerge(args) => report_merge::run(args),
        Command::Repro(args) => repro::run(args),
        Command::Soak(args) => soak::run_soak(args),
        Command::Flood(args) => soak::run_flood(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The error and its causes, one line — no backtrace: these are answers for a
            // user (a failing matrix, a missing file), not crashes. A command-line mistake
            // exits 2, anything else 1.
            eprintln!("Error: {e:#}");
            if e.downcast_ref::<run_scenarios::UsageError>().is_some() {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_shard_is_a_usage_error_naming_the_flag() {
        for bad in ["0/3", "4/3", "x/y", "1/0", "3"] {
            let Err(error) = Cli::try_parse_from(["cargo xtask", "run-scenarios", "--shard", bad])
            else {
                panic!("--shard {bad} was accepted");
            };
            let message = error.to_string();
            assert!(message.contains("--shard"), "{bad}: {message}");
            assert!(message.contains(bad), "{bad}: {message}");
            assert_eq!(error.exit_code(), 2, "{bad}");
        }
        assert!(Cli::try_parse_from(["cargo xtask", "run-scenarios", "--shard", "2/3"]).is_ok());
    }

    #[test]
    fn report_merge_needs_an_output_and_inputs() {
        assert!(Cli::try_parse_from(["cargo xtask", "report-merge", "--out", "o"]).is_err());
        assert!(Cli::try_parse_from(["cargo xtask", "report-merge", "a.json"]).is_err());
        assert!(
            Cli::try_parse_from(["cargo xtask", "report-merge", "--out", "o", "a", "b"]).is_ok()
        );
    }
}
