//! The `promoter` command line: `serve`, the client commands (`client`), and
//! the bootstrap commands an operator with database access uses before any key
//! exists (contract section 6), one module per group of commands.

mod feeds;
mod keys;
mod packages;
mod serve;
mod webhooks;

use anyhow::bail;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

use crate::client;
use crate::config::DatabaseArgs;
use crate::domain::FeedName;
use crate::store::Store;
use crate::telemetry::LogFormat;

pub use self::feeds::{FeedsCommand, GroupsCommand};
pub use self::keys::{CreateKey, CreateKeyScope, KeysCommand};
pub use self::packages::PackagesCommand;
pub use self::serve::{HealthArgs, ServeArgs};
pub use self::webhooks::WebhooksCommand;

#[derive(Debug, Parser)]
#[command(
    name = "promoter",
    version,
    about = "Promotes packages between package feeds.",
    long_about = "Promotes packages between package feeds, speaking ProGet's Promote Package API.\n\n\
                  `promoter` with no command serves the HTTP API, as `promoter serve` does, with \
                  its settings from the environment (`promoter serve --help` lists them)."
)]
pub struct Cli {
    /// How log lines are written: `human` (in colour on a terminal only) or
    /// `json` (one object per line, for log collectors).
    #[arg(
        long,
        env = "PROMOTER_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Human,
        global = true
    )]
    pub log_format: LogFormat,
    /// What is logged: a level (error, warn, info, debug, trace, off) or a
    /// `tracing` filter such as `info,promoter::webhooks=debug`. Without it,
    /// RUST_LOG; without that, info for `serve` and warn for other commands.
    #[arg(
        long,
        env = "PROMOTER_LOG_LEVEL",
        value_parser = crate::telemetry::parse_log_level,
        global = true
    )]
    pub log_level: Option<String>,
    /// Without a command, `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Parses the command line. Every setting read from the environment is shown
/// in help as `[env: NAME]`, never with its value (clap would print the value
/// it finds, a secret's included, or an empty one as `NAME=`).
pub fn parse() -> Result<Cli, clap::Error> {
    fn hide_env_values(command: clap::Command) -> clap::Command {
        command
            .mut_args(|arg| arg.hide_env_values(true))
            .mut_subcommands(hide_env_values)
    }
    let mut matches =
        hide_env_values(<Cli as clap::CommandFactory>::command()).try_get_matches()?;
    let mut cli = <Cli as clap::FromArgMatches>::from_arg_matches_mut(&mut matches)?;
    // `promoter` alone serves, with `serve`'s settings from the environment,
    // checked as they would be on the command line.
    if cli.command.is_none() {
        let serve = ServeFromEnvironment::try_parse_from(["promoter"])?.serve;
        cli.command = Some(Command::Serve(serve));
    }
    Ok(cli)
}

/// A clap error as one line: its message, possible values and tips, without
/// the usage and help hints, as every other start-up error is.
pub fn one_line(error: &clap::Error) -> String {
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
    message.join(" ")
}

/// `serve`'s settings when no command is given: the environment's and the
/// defaults (the top level takes no `serve` flags, so that a flag means the
/// same wherever it is accepted).
#[derive(Debug, Parser)]
#[command(name = "promoter")]
struct ServeFromEnvironment {
    #[command(flatten)]
    serve: ServeArgs,
}

/// Two kinds of command: the client commands call a running server over HTTP
/// (a URL and a key); the database commands work on the database directly, for
/// an operator setting up a server (they need --database-url).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (what `promoter` alone does).
    #[command(display_order = 1)]
    Serve(ServeArgs),
    /// Exit 0 when the local server answers /health with 200, 1 otherwise: a
    /// health check that needs nothing but this binary (the Docker image's).
    #[command(display_order = 4)]
    Health(HealthArgs),
    /// Client: promote package versions on a running server (PROMOTER_URL, PROMOTER_API_KEY).
    #[command(display_order = 2)]
    Promote(client::PromoteArgs),
    /// Client: undo a promotion or a batch on a running server (PROMOTER_URL, PROMOTER_API_KEY).
    #[command(display_order = 3)]
    Revert(client::RevertArgs),
    /// Database: create and list feeds.
    #[command(display_order = 10)]
    Feeds(OnDatabase<FeedsCommand>),
    /// Database: create feed groups, which feed keys can be scoped to.
    #[command(display_order = 11)]
    Groups(OnDatabase<GroupsCommand>),
    /// Database: create, list and revoke API keys.
    #[command(display_order = 12)]
    Keys(OnDatabase<KeysCommand>),
    /// Database: load package records into a feed.
    #[command(display_order = 13)]
    Packages(OnDatabase<PackagesCommand>),
    /// Database: add, list, pause and remove webhooks, and see their deliveries.
    #[command(display_order = 14)]
    Webhooks(OnDatabase<WebhooksCommand>),
}

impl Command {
    /// The server narrates at info; the other commands speak only when asked.
    pub fn default_log_level(command: Option<&Command>) -> &'static str {
        match command {
            None | Some(Command::Serve(_)) => "info",
            Some(_) => "warn",
        }
    }
}

/// A database command: the database (`--database-url`, accepted before or
/// after the subcommand) and what to do there.
#[derive(Debug, Args)]
pub struct OnDatabase<C: Subcommand> {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(subcommand)]
    command: C,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Some(command) = cli.command else {
        bail!("no command: `promoter serve` is what `promoter` alone runs");
    };
    match command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Health(HealthArgs { listen }) => client::health(&listen).await,
        Command::Promote(args) => client::promote(args).await,
        Command::Revert(args) => client::revert(args).await,
        Command::Feeds(on) => {
            on_database(on, |store, command| async move {
                feeds::feeds(&store, command).await
            })
            .await
        }
        Command::Groups(on) => {
            on_database(on, |store, command| async move {
                feeds::groups(&store, command).await
            })
            .await
        }
        Command::Keys(on) => {
            on_database(on, |store, command| async move {
                keys::keys(&store, command).await
            })
            .await
        }
        Command::Packages(on) => {
            on_database(on, |store, command| async move {
                packages::packages(&store, command).await
            })
            .await
        }
        Command::Webhooks(on) => {
            on_database(on, |store, command| async move {
                webhooks::webhooks(&store, command).await
            })
            .await
        }
    }
}

/// Runs a database command on its database, closing it afterwards.
async fn on_database<C: Subcommand, F, Fut>(on: OnDatabase<C>, run: F) -> anyhow::Result<()>
where
    F: FnOnce(Store, C) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let store = Store::open(on.database.database_url.expose()).await?;
    let result = run(store.clone(), on.command).await;
    store.close().await;
    result
}

fn feed_name(raw: &str) -> anyhow::Result<FeedName> {
    FeedName::parse(raw).map_err(|rule| anyhow::anyhow!("feed name {raw:?} {rule}"))
}

/// A time as listings show it: UTC, to the second.
fn utc(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parsed_command_line_never_shows_the_password() {
        let cli = <Cli as clap::Parser>::parse_from([
            "promoter",
            "feeds",
            "--database-url",
            "postgres://bob:hunter2@db/promoter",
            "list",
        ]);
        assert!(!format!("{cli:?}").contains("hunter2"));
        let cli = <Cli as clap::Parser>::parse_from([
            "promoter",
            "feeds",
            "create",
            "private-npm",
            "--type",
            "npm",
            "--connector",
            "https://npm.example.com/",
            "--connector-username",
            "bob",
            "--connector-password",
            "hunter3",
        ]);
        let shown = format!("{cli:?}");
        assert!(
            shown.contains("npm.example.com") && !shown.contains("hunter3"),
            "{shown}"
        );
    }
}
