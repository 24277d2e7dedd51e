//! Defaults and the settings shared by every command. Flags win over environment
//! variables, which win over these defaults (clap does the layering).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;

/// ProGet's own port, so that clients configured for ProGet find us.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8624";

/// An embedded SQLite file in the working directory, created on first start, so
/// that the service runs on a bare machine.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://promoter.db?mode=rwc";

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// postgres://USER:PASSWORD@HOST/DB for PostgreSQL (add ?sslmode=require for
    /// TLS), sqlite://PATH for a SQLite file.
    #[arg(
        long,
        env = "PROMOTER_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true,
        global = true
    )]
    pub database_url: DatabaseUrl,
}

/// Whether webhooks may call private addresses: a setting of the server, and of
/// `webhooks add`, which checks a new webhook's URL as the server would.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct WebhookArgs {
    /// Let webhooks call loopback, link-local and private addresses, which are
    /// refused by default (a webhook must not reach into the server's network).
    #[arg(long = "webhook-allow-private", env = "PROMOTER_WEBHOOK_ALLOW_PRIVATE")]
    pub allow_private: bool,
}

/// The server's webhook settings.
#[derive(Debug, Clone, Copy, Args)]
pub struct WebhookServeArgs {
    #[command(flatten)]
    pub target: WebhookArgs,
    /// Seconds between looks at the webhook outbox when no notification wakes
    /// the dispatcher (1-3600); a fallback, as new events notify it.
    #[arg(
        long = "webhook-poll-seconds",
        env = "PROMOTER_WEBHOOK_POLL_SECONDS",
        default_value_t = 5,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub poll_seconds: u64,
}

/// `promoter serve`'s connector settings (contract section 16).
#[derive(Debug, Clone, Args)]
pub struct ConnectorArgs {
    /// Let connectors call loopback and private addresses (upstreams inside
    /// your network, tests); by default only public addresses, as for webhooks.
    #[arg(long, env = "PROMOTER_CONNECTOR_ALLOW_PRIVATE")]
    pub connector_allow_private: bool,
    /// Seconds upstream metadata is used before it is revalidated with its
    /// ETag (0-86400).
    #[arg(
        long,
        env = "PROMOTER_CONNECTOR_CACHE_SECONDS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(0..=86_400)
    )]
    pub connector_cache_seconds: u64,
    /// Seconds an upstream may take to answer a metadata request, to start
    /// sending a file, or between two chunks of a file (1-600); short enough
    /// that a dead upstream answers before clients such as pip give up.
    #[arg(
        long,
        env = "PROMOTER_CONNECTOR_TIMEOUT_SECONDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=600)
    )]
    pub connector_timeout_seconds: u64,
}

/// Group commit of single promotions (`store::promotions::group`).
#[derive(Debug, Clone, Copy, Args)]
pub struct GroupCommitArgs {
    /// Write the single promotions that arrive while one is being written
    /// together, in one statement and one commit (true or false). Each still
    /// gets its own answer; there is no timer, so a promotion waits only for
    /// the rounds ahead of it.
    #[arg(
        long,
        env = "PROMOTER_GROUP_COMMIT",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub group_commit: bool,
    /// The most single promotions one group commit writes (1-1000); more
    /// wait for the next.
    #[arg(
        long,
        env = "PROMOTER_GROUP_COMMIT_MAX",
        default_value_t = DEFAULT_GROUP_COMMIT_MAX as u64,
        value_parser = clap::value_parser!(u64).range(1..=1000)
    )]
    pub group_commit_max: u64,
}

/// The most single promotions one group commit writes unless set: past a few
/// hundred, a round's statement costs more than waiting for the next.
pub const DEFAULT_GROUP_COMMIT_MAX: usize = 256;

impl GroupCommitArgs {
    /// The largest round, or `None` for no group commit.
    pub fn max_round(&self) -> Option<usize> {
        self.group_commit.then_some(self.group_commit_max as usize)
    }
}

/// The server's timeouts and body limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long one request may take before it is abandoned (408).
    pub request_timeout: Duration,
    /// How long one database statement may run, lock waits included (503).
    pub statement_timeout: Duration,
    /// The largest body of any request but a batch (413).
    pub body_limit: usize,
    /// The largest body of a batch, which may list 1,000 package versions.
    pub batch_body_limit: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(60),
            statement_timeout: Duration::from_secs(20),
            body_limit: 64 * 1024,
            batch_body_limit: 1024 * 1024,
        }
    }
}

/// What a write may wait on besides its statements: a connection, then the
/// commit and the answer. A request timeout shorter than the statement timeout
/// plus this could answer 408 about a change that then commits.
const WAITS_BESIDE_STATEMENTS: Duration = ACQUIRE_TIMEOUT.saturating_add(COMMIT_MARGIN);

/// How long a request waits for a database connection before it is answered 503.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Time a write keeps in hand for the commit and the answer after its last
/// wait.
pub const COMMIT_MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, Args)]
pub struct LimitArgs {
    /// Seconds a request may take before it is abandoned with 408 (1-3600); at
    /// least twice the statement timeout plus 10. Uploads and downloads are
    /// not bound by it.
    #[arg(
        long,
        env = "PROMOTER_REQUEST_TIMEOUT_SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub request_timeout_seconds: u64,
    /// Seconds one database statement may run, lock waits included, before the
    /// request is answered 503 (1-3600).
    #[arg(
        long,
        env = "PROMOTER_STATEMENT_TIMEOUT_SECONDS",
        default_value_t = 20,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub statement_timeout_seconds: u64,
    /// The largest request body in KiB, batches aside (1-65536); larger is 413.
    #[arg(
        long,
        env = "PROMOTER_BODY_LIMIT_KIB",
        default_value_t = 64,
        value_parser = clap::value_parser!(u64).range(1..=65536)
    )]
    pub body_limit_kib: u64,
    /// The largest batch body in KiB (1-65536, at least --body-limit-kib);
    /// 1,000 package versions need about 100.
    #[arg(
        long,
        env = "PROMOTER_BATCH_BODY_LIMIT_KIB",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u64).range(1..=65536)
    )]
    pub batch_body_limit_kib: u64,
}

impl LimitArgs {
    /// The limits, once they agree with each other.
    pub fn limits(&self) -> anyhow::Result<Limits> {
        let limits = Limits {
            request_timeout: Duration::from_secs(self.request_timeout_seconds),
            statement_timeout: Duration::from_secs(self.statement_timeout_seconds),
            body_limit: self.body_limit_kib as usize * 1024,
            batch_body_limit: self.batch_body_limit_kib as usize * 1024,
        };
        // On SQLite a write may wait the statement timeout twice: in this
        // process's queue, then on the file's lock.
        if limits.statement_timeout * 2 + WAITS_BESIDE_STATEMENTS > limits.request_timeout {
            anyhow::bail!(
                "--request-timeout-seconds ({}) must be at least twice --statement-timeout-seconds ({}) plus {}, so that no request is answered 408 while its change goes on to commit",
                self.request_timeout_seconds,
                self.statement_timeout_seconds,
                WAITS_BESIDE_STATEMENTS.as_secs()
            );
        }
        if limits.batch_body_limit < limits.body_limit {
            anyhow::bail!(
                "--batch-body-limit-kib ({}) must be at least --body-limit-kib ({}): a batch carries more than one promotion",
                self.batch_body_limit_kib,
                self.body_limit_kib
            );
        }
        Ok(limits)
    }
}

/// How connections are held to deadlines (see `http::connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client may take to send a request's head, which is also how
    /// long a kept-alive connection may wait idle for its next request.
    pub header_read: Duration,
    /// How long a connection may go without progress while a body moves: an
    /// upload that sends nothing, an answer the client reads nothing of.
    pub stall: Duration,
    /// The most connections served at once.
    pub max_connections: usize,
    /// The most of them from one client address (0: no limit).
    pub max_connections_per_address: usize,
    /// How long shutdown waits for requests and deliveries in flight.
    pub shutdown: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read: Duration::from_secs(20),
            stall: Duration::from_secs(60),
            max_connections: 1000,
            max_connections_per_address: 100,
            shutdown: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, Args)]
pub struct ConnectionArgs {
    /// Seconds a client may take to send a request's head (1-3600), which is
    /// also how long a kept-alive connection may sit idle; then it is closed.
    #[arg(
        long,
        env = "PROMOTER_HEADER_READ_TIMEOUT_SECONDS",
        default_value_t = 20,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub header_read_timeout_seconds: u64,
    /// Seconds a body may go without progress (1-3600): an upload that sends
    /// nothing is abandoned with 408, an answer (a download above all) that
    /// the client reads nothing of is dropped.
    #[arg(
        long,
        env = "PROMOTER_STALL_TIMEOUT_SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub stall_timeout_seconds: u64,
    /// The most connections served at once (1-100000); past it new ones wait
    /// to be accepted. Keep it below the open-file limit (`ulimit -n`) less
    /// what the database and package files need.
    #[arg(
        long,
        env = "PROMOTER_MAX_CONNECTIONS",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..=100_000)
    )]
    pub max_connections: u64,
    /// The most connections from one client address (an IPv6 client's /64)
    /// at once (0-100000, 0 for no limit); past it a new one is closed at
    /// once, so that one client cannot hold them all. Behind a reverse proxy
    /// every connection comes from the proxy: 0, and limit in the proxy.
    #[arg(
        long,
        env = "PROMOTER_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 100,
        value_parser = clap::value_parser!(u64).range(0..=100_000)
    )]
    pub max_connections_per_address: u64,
    /// Seconds shutdown (SIGTERM, Ctrl-C) lets requests and webhook
    /// deliveries in flight finish before it exits anyway (0-3600).
    #[arg(
        long,
        env = "PROMOTER_SHUTDOWN_TIMEOUT_SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(0..=3600)
    )]
    pub shutdown_timeout_seconds: u64,
}

impl ConnectionArgs {
    pub fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read: Duration::from_secs(self.header_read_timeout_seconds),
            stall: Duration::from_secs(self.stall_timeout_seconds),
            max_connections: self.max_connections as usize,
            max_connections_per_address: self.max_connections_per_address as usize,
            shutdown: Duration::from_secs(self.shutdown_timeout_seconds),
        }
    }
}

/// A database URL. It may hold a password, so `Debug` shows only its scheme.
#[derive(Clone)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(DatabaseUrl(text.to_owned()))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.0.split_once(':').map_or("?", |(scheme, _)| scheme);
        write!(f, "DatabaseUrl({scheme}:…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let url: DatabaseUrl = "postgres://bob:hunter2@db/promoter".parse().unwrap();
        assert_eq!(format!("{url:?}"), "DatabaseUrl(postgres:…)");
    }
}
