use std::process::ExitCode;

use clap::Parser;
use promoter::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and --version print as clap prints them; a bad setting is one
        // line, as every other start-up error is.
        Err(error) if !error.use_stderr() => error.exit(),
        Err(error) => {
            // clap's message, possible values and tips on one line, without
            // the usage and help hints.
            let rendered = error.to_string();
            let message: Vec<&str> = rendered
                .lines()
                .map(str::trim)
                .filter(|line| {
                    !line.is_empty()
                        && !line.starts_with("Usage:")
                        && !line.starts_with("For more information")
                })
                .collect();
            eprintln!("{}", message.join(" "));
            return ExitCode::from(2);
        }
    };
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
