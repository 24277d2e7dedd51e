use std::process::ExitCode;

use clap::Parser;
use promoter::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server narrates at info; the bootstrap commands speak only when asked.
    let level = match cli.command {
        None | Some(Command::Serve(_)) => "info",
        Some(_) => "warn",
    };
    promoter::telemetry::init(cli.log_level.as_deref(), level, cli.log_format);
    match promoter::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", promoter::error::describe(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}
