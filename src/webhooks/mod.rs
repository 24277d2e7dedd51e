//! Webhooks (contract section 8): every promotion is announced to the URLs that
//! asked for it, signed, at least once. The events are written by the database
//! in the promotion's own transaction (the outbox, see `store::webhooks`); the
//! dispatcher delivers them after commit.

pub mod dispatcher;
pub mod event;
pub mod targets;

use std::time::Duration;

use crate::domain::{check_filter_size, FeedName, WebhookSecret, WebhookUrl};
use crate::error::Error;
use crate::store::{Store, Webhook};

/// How a server delivers webhooks.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Let webhooks call loopback, link-local and private addresses.
    pub allow_private: bool,
    /// How often the outbox is looked at when no notification arrives.
    pub poll: Duration,
}

impl From<&crate::config::WebhookServeArgs> for Settings {
    fn from(args: &crate::config::WebhookServeArgs) -> Self {
        Settings {
            allow_private: args.target.allow_private,
            poll: Duration::from_secs(args.poll_seconds),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow_private: false,
            poll: Duration::from_secs(5),
        }
    }
}

/// A webhook to add, as the API's body or `promoter webhooks add` gives it.
pub struct NewWebhook<'a> {
    pub url: &'a WebhookUrl,
    pub feeds: &'a [FeedName],
    /// The caller's secret; one is made when `None`.
    pub secret: Option<WebhookSecret>,
    pub allow_private: bool,
    pub allowed_by: targets::AllowedBy,
}

/// Why a webhook was not added: an input breaking a rule (which each caller
/// words in its own terms: a field, a flag), or the store's refusal.
pub enum Refused {
    Feeds(String),
    Url(String),
    Store(Error),
}

/// Adds a webhook under the rules the API and the command line share: at most
/// so many feeds, a target the server may call, a signing secret. Returns the
/// webhook and its secret (to be shown once).
pub async fn add(store: &Store, new: NewWebhook<'_>) -> Result<(Webhook, WebhookSecret), Refused> {
    check_filter_size(new.feeds.len()).map_err(Refused::Feeds)?;
    targets::check(new.url.as_url(), new.allow_private, new.allowed_by)
        .await
        .map_err(Refused::Url)?;
    let secret = new.secret.unwrap_or_else(WebhookSecret::generate);
    let webhook = store
        .create_webhook(new.url, new.feeds, &secret)
        .await
        .map_err(Refused::Store)?;
    Ok((webhook, secret))
}
