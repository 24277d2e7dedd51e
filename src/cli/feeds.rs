//! `promoter feeds` and `promoter groups`.

use clap::Subcommand;

use super::feed_name;
use crate::domain::{Description, FeedType};
use crate::store::{FeedChange, FeedSettings, Store};

/// `--description`: blank clears it.
fn description_of(raw: &str) -> anyhow::Result<Option<Description>> {
    Description::parse(raw).map_err(|rule| anyhow::anyhow!("--description {rule}"))
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
        /// Let anyone view the feed without a key (its native endpoint and downloads).
        #[arg(long)]
        public: bool,
    },
    /// Change a feed's visibility, description or fixed target.
    Update {
        name: String,
        /// Whether anyone may view the feed without a key: `--public` or `--public false`.
        #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
        public: Option<bool>,
        /// The new description; an empty one clears it.
        #[arg(long)]
        description: Option<String>,
        /// The only feed packages may be promoted to; an empty one allows any.
        #[arg(long)]
        promote_to: Option<String>,
    },
    /// List every feed: name, type, whether it is enabled and public, its fixed target.
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

pub(super) async fn feeds(store: &Store, command: FeedsCommand) -> anyhow::Result<()> {
    match command {
        FeedsCommand::Create {
            name,
            feed_type,
            promote_to,
            description,
            public,
        } => {
            let feed_type: FeedType = feed_type
                .parse()
                .map_err(|rule| anyhow::anyhow!("--type {rule}"))?;
            let promote_to = promote_to.as_deref().map(feed_name).transpose()?;
            let description = description
                .as_deref()
                .map(description_of)
                .transpose()?
                .flatten();
            let settings = FeedSettings {
                promote_to: promote_to.as_ref(),
                description: description.as_ref(),
                public,
                ..FeedSettings::default()
            };
            let feed = store
                .create_feed(&feed_name(&name)?, feed_type, settings)
                .await?;
            let public = if feed.public { "public " } else { "" };
            println!("Created {public}{} feed {}.", feed.feed_type, feed.name);
        }
        FeedsCommand::Update {
            name,
            public,
            description,
            promote_to,
        } => {
            let feed = store.existing_feed(&feed_name(&name)?).await?;
            let promote_to = promote_to
                .map(|target| match target.trim() {
                    "" => Ok(None),
                    target => feed_name(target).map(Some),
                })
                .transpose()?;
            let change = FeedChange {
                description: description.as_deref().map(description_of).transpose()?,
                public,
                promote_to,
                ..FeedChange::default()
            };
            let feed = store.update_feed(&feed, &change).await?;
            let visibility = if feed.public { "public" } else { "not public" };
            println!("Updated feed {} ({visibility}).", feed.name);
        }
        FeedsCommand::List => {
            println!(
                "{:<30} {:<11} {:<8} {:<8} PROMOTE-TO",
                "NAME", "TYPE", "ACTIVE", "PUBLIC"
            );
            let yes_no = |flag: bool| if flag { "yes" } else { "no" };
            for feed in store.list_feeds().await? {
                println!(
                    "{:<30} {:<11} {:<8} {:<8} {}",
                    feed.name,
                    feed.feed_type,
                    yes_no(feed.active),
                    yes_no(feed.public),
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

pub(super) async fn groups(store: &Store, command: GroupsCommand) -> anyhow::Result<()> {
    let GroupsCommand::Create { name, feeds } = command;
    let members = feeds
        .iter()
        .map(|feed| feed_name(feed))
        .collect::<anyhow::Result<Vec<_>>>()?;
    store.create_group(&feed_name(&name)?, &members).await?;
    println!("Created feed group {name} with feeds {}.", feeds.join(", "));
    Ok(())
}
