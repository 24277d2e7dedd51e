//! Webhooks (contract section 8): every promotion is announced to the URLs that
//! asked for it, signed, at least once. The events are written by the database
//! in the promotion's own transaction (the outbox, see `store::webhooks`); the
//! dispatcher delivers them after commit.

pub mod dispatcher;
pub mod event;
pub mod targets;

use std::time::Duration;

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
