//! `promoter webhooks`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;

use super::{feed_name, utc};
use crate::config::WebhookArgs;
use crate::domain::{WebhookSecret, WebhookUrl};
use crate::store::Store;
use crate::webhooks::{targets, NewWebhook, Refused};

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

pub(super) async fn webhooks(store: &Store, command: WebhooksCommand) -> anyhow::Result<()> {
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
            let new = NewWebhook {
                url: &url,
                feeds: &feeds,
                secret: chosen.clone(),
                allow_private: webhooks.allow_private,
                allowed_by: targets::AllowedBy::Command,
            };
            // The API's rules, word for word but for the flag's name.
            let (webhook, secret) = match crate::webhooks::add(store, new).await {
                Ok(added) => added,
                Err(Refused::Feeds(rule)) => bail!("--feed {rule}"),
                Err(Refused::Url(rule)) => bail!("the URL {rule}"),
                Err(Refused::Store(error)) => return Err(error.into()),
            };
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
