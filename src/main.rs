use std::process::ExitCode;

use promoter::cli::Command;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match promoter::cli::parse() {
        Ok(cli) => cli,
        // Help and --version print as clap prints them; a bad setting is one
        // line, as every other start-up error is.
        Err(error) if !error.use_stderr() => error.exit(),
        Err(error) => {
            eprintln!("{}", promoter::cli::one_line(&error));
            return ExitCode::from(2);
        }
    };
    let level = Command::default_log_level(cli.command.as_ref());
    promoter::telemetry::init(cli.log_level.as_deref(), level, cli.log_format);
    match promoter::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", promoter::error::describe(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}
