//! pgconverge command-line entry point: parses arguments, runs one command, maps the outcome
//! to the documented exit codes (0 ok/no changes, 1 any error, 2 plan changes with
//! `--detailed-exitcode`, warnings only from `status --check`, differences from `verify`).

mod cli;
mod commands;
mod config_source;
mod engine_error;
mod error;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::CommandError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap exits 2 on usage errors; 2 means "changes present" to CI here.
            let _ = err.print();
            return match err.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(1),
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(run(cli));
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            err.report();
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<u8, CommandError> {
    let global = &cli.global;
    match &cli.command {
        Command::Validate(args) => commands::validate::run(global, args),
        Command::Plan(args) => commands::plan::run(global, args).await,
        Command::Apply(args) => commands::apply::run(global, args).await,
        Command::Status(args) => commands::status::run(global, args).await,
        Command::Verify(args) => commands::verify::run(global, args).await,
        Command::Generate(args) => commands::generate::run(global, args),
        Command::Sandbox(args) => commands::sandbox::run(global, args),
        Command::Import(args) => commands::import::run(global, args).await,
        Command::State(args) => commands::state::run(global, args),
    }
}
