//! Defaults and the settings shared by every command. Flags win over environment
//! variables, which win over these defaults (clap does the layering).

use std::fmt;
use std::str::FromStr;

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

impl WebhookServeArgs {
    pub fn settings(&self) -> crate::webhooks::Settings {
        crate::webhooks::Settings {
            allow_private: self.target.allow_private,
            poll: std::time::Duration::from_secs(self.poll_seconds),
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
        let cli = <crate::cli::Cli as clap::Parser>::parse_from([
            "promoter",
            "--database-url",
            "postgres://bob:hunter2@db/promoter",
            "feeds",
            "list",
        ]);
        assert!(!format!("{cli:?}").contains("hunter2"));
    }
}
