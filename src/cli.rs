//! The `promoter` command line: `serve`, and the bootstrap commands an operator
//! with database access uses before any key exists (contract section 6).

use std::io::{BufRead, BufReader, Read};
use std::num::NonZeroU32;
use std::path::PathBuf;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::auth;
use crate::client;
use crate::config::{
    ConnectionArgs, DatabaseArgs, LimitArgs, WebhookArgs, WebhookServeArgs, DEFAULT_LISTEN,
};
use crate::domain::{
    is_free_text, parse_qualifier, reserved_version, split_package, FeedName, FeedType, Identifier,
    PackageId, Permission, Permissions, WebhookSecret, WebhookUrl, FREE_TEXT_RULE,
};
use crate::http::limits::RateLimits;
use crate::startup::{shutdown_signal, Application};
use crate::store::{self, KeyScope, NewFile, NewKey, NewPackage, Store};
use crate::telemetry::LogFormat;
use crate::webhooks::targets;

/// Keys read from the database at a time by `keys list`.
const KEYS_PER_PAGE: i64 = 1000;

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

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Address and port to listen on.
    #[arg(long, env = "PROMOTER_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Most PostgreSQL connections the server holds (1-1000; default: four
    /// per CPU core, at least 8). More only adds contention once the
    /// database's cores are busy. SQLite always uses 8.
    #[arg(long, env = "PROMOTER_DB_POOL_SIZE", value_parser = clap::value_parser!(u32).range(1..=1000))]
    db_pool_size: Option<u32>,
    /// A token that `GET /metrics` then asks for as `Authorization: Bearer
    /// TOKEN`; without it the metrics are open to anyone who can reach the port.
    #[arg(long, env = "PROMOTER_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Requests per second allowed from one client address (the connection's
    /// peer: behind a proxy, limit there instead); 0 for no limit.
    #[arg(long, env = "PROMOTER_RATE_LIMIT_PER_ADDRESS", default_value_t = 0)]
    rate_limit_per_address: u32,
    /// Requests per second allowed with one API key; 0 for no limit.
    #[arg(long, env = "PROMOTER_RATE_LIMIT_PER_KEY", default_value_t = 0)]
    rate_limit_per_key: u32,
    /// Failed authentications per minute allowed from one client address;
    /// past it the address is refused (429) until it may try again. 0 for no
    /// limit.
    #[arg(long, env = "PROMOTER_AUTH_FAILURES_PER_MINUTE", default_value_t = 60)]
    auth_failures_per_minute: u32,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    connections: ConnectionArgs,
    /// The folder package files are stored in (created when needed): one file
    /// per distinct content, whatever feeds hold it.
    #[arg(long, env = "PROMOTER_STORAGE_PATH", default_value = crate::content::DEFAULT_STORAGE_PATH)]
    storage_path: PathBuf,
    /// s3://bucket[/prefix]: keep package files in an S3-compatible object
    /// store instead (credentials, region and endpoint from the AWS_…
    /// environment variables); uploads are still staged under --storage-path.
    #[arg(long, env = "PROMOTER_STORAGE_URL")]
    storage_url: Option<String>,
    /// The largest package file an upload may send, in MiB (1-1048576); larger
    /// is 413.
    #[arg(
        long,
        env = "PROMOTER_MAX_UPLOAD_MIB",
        default_value_t = 2048,
        value_parser = clap::value_parser!(u64).range(1..=1_048_576)
    )]
    max_upload_mib: u64,
    #[command(flatten)]
    webhooks: WebhookServeArgs,
}

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// The address the server listens on (its --listen); 0.0.0.0 and [::] are
    /// checked on the loopback address.
    #[arg(long, env = "PROMOTER_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: String,
}

#[derive(Debug, Subcommand)]
pub enum FeedsCommand {
    /// Create a feed (enabled), e.g. `feeds create approved-npm --type npm`.
    Create {
        /// The feed's name: letters, digits, `.`, `-` and `_`.
        name: String,
        /// The package format the feed holds; packages move only between feeds of one type.
        #[arg(
            long = "type",
            ignore_case = true,
            value_parser = clap::builder::PossibleValuesParser::new(FeedType::ALL.iter().map(|t| t.as_str()))
        )]
        feed_type: String,
        /// The only feed that packages in this feed may be promoted to.
        #[arg(long)]
        promote_to: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List every feed: name, type, whether it is enabled, its fixed target.
    List,
    /// Disable a feed: it then takes part in no promotion.
    Disable { name: String },
    /// Enable a disabled feed again.
    Enable { name: String },
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Create a feed group, to which feed keys can be scoped (`keys create --group`).
    Create {
        /// The group's name: letters, digits, `.`, `-` and `_`.
        name: String,
        /// Comma-separated feed names.
        #[arg(long, value_delimiter = ',', required = true)]
        feeds: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its text once on stdout (details go to stderr).
    Create(CreateKey),
    /// List keys: never their text, only a label (the start of the key's hash).
    List,
    /// Revoke a key by its id (from `keys list`): it stops working at once on
    /// this database's servers (within 100 ms on other replicas).
    Revoke { id: i64 },
}

#[derive(Debug, Args)]
#[group(id = "scope", required = true, multiple = false)]
pub struct CreateKeyScope {
    /// A key for every feed, and for management when it has `manage`.
    #[arg(long, group = "scope")]
    system: bool,
    /// A key for this one feed.
    #[arg(long, group = "scope")]
    feed: Option<String>,
    /// A key for the feeds of this feed group (`groups create`).
    #[arg(long, group = "scope")]
    group: Option<String>,
}

#[derive(Debug, Args)]
pub struct CreateKey {
    #[command(flatten)]
    scope: CreateKeyScope,
    /// Comma-separated: view, add, promote, delete (and manage for system keys).
    /// Defaults to all of them.
    #[arg(long)]
    permissions: Option<String>,
    /// Recorded as the `user` of every promotion the key makes.
    #[arg(long)]
    name: Option<String>,
    /// Time after which the key stops working: RFC 3339, or a date (midnight UTC).
    #[arg(long)]
    expires: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PackagesCommand {
    /// Add one package file.
    Add {
        #[arg(long)]
        feed: String,
        /// [GROUP/]NAME, split at the last '/', as pgutil does.
        #[arg(long)]
        package: String,
        #[arg(long)]
        version: String,
        #[arg(long, default_value = "")]
        qualifier: String,
        #[arg(long)]
        sha256: Option<String>,
        #[arg(long)]
        size: Option<i64>,
    },
    /// Load package files from FILE ('-' for stdin), one JSON object per line:
    /// {"package":"[group/]name","version":"…"} with optional qualifier, sha256, size.
    Import {
        #[arg(long)]
        feed: String,
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Add a webhook and print its id; the signing secret is generated and printed
    /// once on stdout, unless --secret-file gives one.
    Add {
        /// The http(s) URL that receives a POST for every promotion.
        url: String,
        /// Only promotions into this feed (repeat, or separate with commas);
        /// without it, every promotion.
        #[arg(long = "feed", value_delimiter = ',')]
        feeds: Vec<String>,
        /// Read the signing secret from this file instead of generating one.
        #[arg(long)]
        secret_file: Option<PathBuf>,
        #[command(flatten)]
        webhooks: WebhookArgs,
    },
    /// List webhooks (never their secrets).
    List,
    /// Remove a webhook, with its pending deliveries and its attempts.
    Remove { id: i64 },
    /// Stop sending a webhook's events; they queue until it is resumed.
    Pause { id: i64 },
    /// Send a paused webhook's queued and new events again.
    Resume { id: i64 },
    /// Show a webhook's delivery attempts, newest first.
    Deliveries {
        id: i64,
        /// How many attempts to show (1-1000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=1000))]
        limit: i64,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Some(command) = cli.command else {
        bail!("no command: `promoter serve` is what `promoter` alone runs");
    };
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Health(HealthArgs { listen }) => client::health(&listen).await,
        Command::Promote(args) => client::promote(args).await,
        Command::Revert(args) => client::revert(args).await,
        Command::Feeds(on) => {
            on_database(
                on,
                |store, command| async move { feeds(&store, command).await },
            )
            .await
        }
        Command::Groups(on) => {
            on_database(
                on,
                |store, command| async move { groups(&store, command).await },
            )
            .await
        }
        Command::Keys(on) => {
            on_database(
                on,
                |store, command| async move { keys(&store, command).await },
            )
            .await
        }
        Command::Packages(on) => {
            on_database(on, |store, command| async move {
                packages(&store, command).await
            })
            .await
        }
        Command::Webhooks(on) => {
            on_database(on, |store, command| async move {
                webhooks(&store, command).await
            })
            .await
        }
    }
}

/// `promoter serve`: every setting is checked before anything is opened, so
/// that a bad one is one line and leaves nothing behind.
async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        database,
        listen,
        db_pool_size,
        metrics_token,
        rate_limit_per_address,
        rate_limit_per_key,
        auth_failures_per_minute,
        limits,
        connections,
        storage_path,
        storage_url,
        max_upload_mib,
        webhooks,
    } = args;
    let settings = limits.limits()?;
    let content = match storage_url {
        Some(url) => crate::content::Settings::s3(&url, &storage_path, &[])?,
        None => crate::content::Settings::directory(&storage_path),
    };
    let rate_limits = RateLimits {
        per_address: NonZeroU32::new(rate_limit_per_address),
        per_key: NonZeroU32::new(rate_limit_per_key),
        auth_failures_per_address: NonZeroU32::new(auth_failures_per_minute),
    };
    // The address, then the package folder, then the database: whatever is
    // wrong is said before anything is created.
    let _resolved = tokio::net::lookup_host(&listen)
        .await
        .with_context(|| format!("could not listen on {listen}"))?;
    content.storage.check_staging().await.with_context(|| {
        format!(
            "could not write package files under {}",
            content.storage.staging().display()
        )
    })?;
    let pool_size = db_pool_size.unwrap_or_else(store::default_pool_size);
    let app = Application::build_with(&listen, database.database_url.expose(), pool_size, settings)
        .await?
        .webhooks(crate::webhooks::Settings::from(&webhooks))
        .metrics_token(metrics_token)
        .rate_limits(rate_limits)
        .connections(connections.limits())
        .content(crate::content::Settings {
            max_upload: max_upload_mib * 1024 * 1024,
            ..content
        });
    app.run(shutdown_signal()).await?;
    Ok(())
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

async fn feeds(store: &Store, command: FeedsCommand) -> anyhow::Result<()> {
    match command {
        FeedsCommand::Create {
            name,
            feed_type,
            promote_to,
            description,
        } => {
            let feed_type: FeedType = feed_type
                .parse()
                .map_err(|rule| anyhow::anyhow!("--type {rule}"))?;
            let promote_to = promote_to.as_deref().map(feed_name).transpose()?;
            if description.as_deref().is_some_and(|d| !is_free_text(d)) {
                bail!("--description {FREE_TEXT_RULE}");
            }
            let feed = store
                .create_feed(
                    &feed_name(&name)?,
                    feed_type,
                    promote_to.as_ref(),
                    description.as_deref(),
                    true,
                )
                .await?;
            println!("Created {} feed {}.", feed.feed_type, feed.name);
        }
        FeedsCommand::List => {
            println!("{:<30} {:<11} {:<8} PROMOTE-TO", "NAME", "TYPE", "ACTIVE");
            for feed in store.list_feeds().await? {
                println!(
                    "{:<30} {:<11} {:<8} {}",
                    feed.name,
                    feed.feed_type,
                    if feed.active { "yes" } else { "no" },
                    feed.promote_to.as_deref().unwrap_or("-")
                );
            }
        }
        FeedsCommand::Disable { name } => {
            let feed = store.set_feed_active(&feed_name(&name)?, false).await?;
            println!("Disabled feed {}.", feed.name);
        }
        FeedsCommand::Enable { name } => {
            let feed = store.set_feed_active(&feed_name(&name)?, true).await?;
            println!("Enabled feed {}.", feed.name);
        }
    }
    Ok(())
}

async fn groups(store: &Store, command: GroupsCommand) -> anyhow::Result<()> {
    let GroupsCommand::Create { name, feeds } = command;
    let members = feeds
        .iter()
        .map(|feed| feed_name(feed))
        .collect::<anyhow::Result<Vec<_>>>()?;
    store.create_group(&feed_name(&name)?, &members).await?;
    println!("Created feed group {name} with feeds {}.", feeds.join(", "));
    Ok(())
}

async fn keys(store: &Store, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create(create) => {
            let new = new_key(create)?;
            let (key, stored) = auth::create_key(store, &new, None).await?;
            eprintln!(
                "Created key {} \"{}\" ({}, {}). Its text follows; it is shown only this once.",
                stored.id,
                stored.name,
                stored.scope_text(),
                stored.permissions
            );
            println!("{}", key.expose());
        }
        KeysCommand::List => {
            println!(
                "{:<5} {:<20} {:<16} {:<24} {:<32} {:<21} REVOKED",
                "ID", "NAME", "LABEL", "SCOPE", "PERMISSIONS", "EXPIRES"
            );
            let time = |t: Option<DateTime<Utc>>| t.map_or("-".to_owned(), utc);
            let mut after = 0;
            loop {
                let page = store.list_keys(true, after, KEYS_PER_PAGE).await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                for key in page {
                    println!(
                        "{:<5} {:<20} {:<16} {:<24} {:<32} {:<21} {}",
                        key.id,
                        key.name,
                        key.key_prefix,
                        key.scope_text(),
                        key.permissions,
                        time(key.expires_at),
                        time(key.revoked_at)
                    );
                }
            }
        }
        KeysCommand::Revoke { id } => {
            if !store.revoke_key(id).await? {
                bail!("there is no key with id {id} that is not already revoked");
            }
            println!("Revoked key {id}.");
        }
    }
    Ok(())
}

async fn webhooks(store: &Store, command: WebhooksCommand) -> anyhow::Result<()> {
    match command {
        WebhooksCommand::Add {
            url,
            feeds,
            secret_file,
            webhooks,
        } => {
            let url = WebhookUrl::parse(&url).map_err(|rule| anyhow::anyhow!("the URL {rule}"))?;
            let feeds = feeds
                .iter()
                .map(|feed| feed_name(feed))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let chosen = match &secret_file {
                Some(file) => {
                    let text = std::fs::read_to_string(file).with_context(|| {
                        format!("could not read the secret from {}", file.display())
                    })?;
                    Some(
                        WebhookSecret::chosen(text.trim_end_matches(['\r', '\n'])).map_err(
                            |rule| anyhow::anyhow!("the secret in {} {rule}", file.display()),
                        )?,
                    )
                }
                None => None,
            };
            targets::check(&url, webhooks.allow_private, targets::AllowedBy::Command)
                .await
                .map_err(|rule| anyhow::anyhow!("the URL {rule}"))?;
            let secret = chosen.clone().unwrap_or_else(WebhookSecret::generate);
            let webhook = store.create_webhook(&url, &feeds, &secret).await?;
            let filter = match webhook.feeds.is_empty() {
                true => "every feed".to_owned(),
                false => webhook.feeds.join(", "),
            };
            if chosen.is_some() {
                println!("Added webhook {} for {filter}.", webhook.id);
            } else {
                eprintln!(
                    "Added webhook {} for {filter}. Its signing secret follows; it is shown only this once.",
                    webhook.id
                );
                println!("{}", secret.expose());
            }
        }
        WebhooksCommand::List => {
            println!(
                "{:<5} {:<7} {:<21} {:<30} URL",
                "ID", "ACTIVE", "CREATED", "FEEDS"
            );
            for webhook in store.list_webhooks().await? {
                let feeds = match webhook.feeds.is_empty() {
                    true => "(all)".to_owned(),
                    false => webhook.feeds.join(","),
                };
                println!(
                    "{:<5} {:<7} {:<21} {:<30} {}",
                    webhook.id,
                    if webhook.active { "yes" } else { "paused" },
                    utc(webhook.created_at),
                    feeds,
                    webhook.url
                );
            }
        }
        WebhooksCommand::Remove { id } => {
            if !store.delete_webhook(id).await? {
                bail!("there is no webhook with id {id}");
            }
            println!("Removed webhook {id}.");
        }
        WebhooksCommand::Pause { id } | WebhooksCommand::Resume { id } => {
            let resume = matches!(command, WebhooksCommand::Resume { .. });
            if !store.set_webhook_active(id, resume).await? {
                bail!("there is no webhook with id {id}");
            }
            println!(
                "{} webhook {id}.",
                if resume { "Resumed" } else { "Paused" }
            );
        }
        WebhooksCommand::Deliveries { id, limit } => {
            let Some(attempts) = store.webhook_attempts(id, limit).await? else {
                bail!("there is no webhook with id {id}");
            };
            println!(
                "{:<21} {:<36} {:<9} {:<7} {:<9} {:<9} RESULT",
                "TIME", "DELIVERY", "PROMOTION", "ATTEMPT", "MS", "STATE"
            );
            for attempt in attempts {
                let result = match (attempt.status_code, attempt.error) {
                    (Some(status), _) => format!("HTTP {status}"),
                    (None, Some(error)) => error,
                    (None, None) => "-".to_owned(),
                };
                println!(
                    "{:<21} {:<36} {:<9} {:<7} {:<9} {:<9} {}",
                    utc(attempt.attempted_at),
                    attempt.delivery_id,
                    attempt.promotion_id,
                    attempt.attempt,
                    attempt.duration_ms,
                    attempt.state,
                    result
                );
            }
        }
    }
    Ok(())
}

/// A time as listings show it: UTC, to the second.
fn utc(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn new_key(create: CreateKey) -> anyhow::Result<NewKey> {
    let scope = match (create.scope.system, create.scope.feed, create.scope.group) {
        (true, _, _) => KeyScope::System,
        (_, Some(feed), _) => KeyScope::Feed(feed_name(&feed)?),
        (_, _, Some(group)) => KeyScope::Group(feed_name(&group)?),
        _ => bail!("say which feeds the key is for: --system, --feed FEED or --group GROUP"),
    };
    let permissions = match create.permissions {
        Some(text) => text
            .parse::<Permissions>()
            .map_err(|e| anyhow::anyhow!("--permissions: {e}"))?,
        None if scope == KeyScope::System => Permissions::ALL,
        None => Permissions::FEED_ALL,
    };
    if permissions.is_empty() {
        bail!("--permissions must name at least one permission");
    }
    if scope != KeyScope::System && permissions.contains(Permission::Manage) {
        bail!("--permissions: manage is only for --system keys");
    }
    let expires_at = create
        .expires
        .map(|text| {
            auth::parse_expiry(&text).map_err(|rule| anyhow::anyhow!("--expires {text:?} {rule}"))
        })
        .transpose()?;
    let name = create.name.map(|name| name.trim().to_owned());
    if name
        .as_deref()
        .is_some_and(|n| n.is_empty() || n.chars().any(char::is_control))
    {
        bail!("--name must not be empty or contain control characters");
    }
    Ok(NewKey {
        name,
        scope,
        permissions,
        expires_at,
        description: None,
        logging: "None".to_owned(),
    })
}

async fn packages(store: &Store, command: PackagesCommand) -> anyhow::Result<()> {
    match command {
        PackagesCommand::Add {
            feed,
            package,
            version,
            qualifier,
            sha256,
            size,
        } => {
            let feed = store.existing_feed(&feed_name(&feed)?).await?;
            let line = PackageLine {
                package,
                version,
                qualifier: Some(qualifier),
                sha256,
                size,
            };
            let new = line
                .into_package(feed.feed_type)
                .map_err(|e| anyhow::anyhow!(e))?;
            if store.add_package(&feed, &new).await? {
                println!("Added {} to feed {}.", new.id, feed.name);
            } else {
                println!(
                    "Feed {} already has {}; nothing changed.",
                    feed.name, new.id
                );
            }
        }
        PackagesCommand::Import { feed, file } => {
            let feed = store.existing_feed(&feed_name(&feed)?).await?;
            let reader: Box<dyn Read> = if file.as_os_str() == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(
                    std::fs::File::open(&file)
                        .with_context(|| format!("could not open {}", file.display()))?,
                )
            };
            // Every line is checked before anything is written, so a bad file
            // changes nothing.
            let packages = read_import(reader, feed.feed_type)?;
            let summary = store.import_packages(&feed, &packages).await?;
            println!(
                "Imported {} files into feed {} ({} were already there); it now holds {} files.",
                summary.files_added,
                feed.name,
                summary.files_present,
                store.count_files(&feed).await?
            );
        }
    }
    Ok(())
}

/// One line of an import file, and the fields of `packages add`.
#[derive(Debug, Deserialize)]
struct PackageLine {
    package: String,
    version: String,
    qualifier: Option<String>,
    sha256: Option<String>,
    size: Option<i64>,
}

impl PackageLine {
    fn into_package(self, feed_type: FeedType) -> Result<NewPackage, String> {
        let (group, name) = split_package(&self.package);
        let group = group
            .map(Identifier::parse)
            .transpose()
            .map_err(|rule| format!("the package's group {rule}"))?;
        let name = Identifier::parse(name).map_err(|rule| format!("the package name {rule}"))?;
        let version =
            Identifier::parse(&self.version).map_err(|rule| format!("the version {rule}"))?;
        if let Some(rule) = reserved_version(feed_type, version.as_str()) {
            return Err(format!("the version {rule}"));
        }
        let id = PackageId::new(feed_type, group.as_ref(), &name, &version)
            .map_err(|rule| format!("the package's group {rule}"))?;
        let qualifier = parse_qualifier(&self.qualifier.unwrap_or_default())
            .map_err(|rule| format!("the qualifier {rule}"))?;
        if let Some(sha) = &self.sha256 {
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("sha256 must be 64 hexadecimal digits".into());
            }
        }
        if self.size.is_some_and(|size| size < 0) {
            return Err("size must not be negative".into());
        }
        Ok(NewPackage {
            id,
            file: NewFile {
                qualifier,
                size: self.size,
                sha256: self.sha256.map(|sha| sha.to_ascii_lowercase()),
            },
        })
    }
}

fn read_import(reader: impl Read, feed_type: FeedType) -> anyhow::Result<Vec<NewPackage>> {
    let mut packages = Vec::new();
    for (index, line) in BufReader::new(reader).lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("could not read line {number}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: PackageLine = serde_json::from_str(&line)
            .with_context(|| format!("line {number} is not a package object"))?;
        let package = parsed
            .into_package(feed_type)
            .map_err(|e| anyhow::anyhow!("line {number}: {e}"))?;
        packages.push(package);
    }
    Ok(packages)
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
    }

    #[test]
    fn import_lines_split_the_package_at_the_last_slash() {
        let input = "{\"package\":\"@babel/runtime\",\"version\":\"7.21.0\"}\n\n\
                     {\"package\":\"babel/core\",\"version\":\"7.0.0\",\"qualifier\":\"x\",\"size\":3}\n";
        let packages = read_import(input.as_bytes(), FeedType::Npm).unwrap();
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0].id.to_string(), "@babel/runtime 7.21.0");
        assert_eq!(packages[1].id.group(), "@babel");
        assert_eq!(packages[1].file.size, Some(3));
    }

    #[test]
    fn bad_import_lines_are_reported_by_number() {
        let input =
            "{\"package\":\"a\",\"version\":\"1\"}\n{\"package\":\"b\",\"version\":\" \"}\n";
        let error = read_import(input.as_bytes(), FeedType::Universal).unwrap_err();
        assert_eq!(error.to_string(), "line 2: the version must not be empty");
        let error = read_import("nope".as_bytes(), FeedType::Universal).unwrap_err();
        assert!(error.to_string().starts_with("line 1"));
        let latest = "{\"package\":\"a\",\"version\":\"Latest-Stable\"}\n";
        let error = read_import(latest.as_bytes(), FeedType::Npm).unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 1: the version is \"Latest-Stable\", which requests use to ask for the highest version, so a version by that name could never be asked for exactly"
        );
        assert!(read_import(
            "{\"package\":\"a\",\"version\":\"latest\"}".as_bytes(),
            FeedType::Docker
        )
        .is_ok());
    }
}
