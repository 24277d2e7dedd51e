//! `promoter feeds` and `promoter groups`.

use clap::Subcommand;

use super::feed_name;
use crate::domain::{Description, FeedType};
use crate::store::Store;

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

pub(super) async fn feeds(store: &Store, command: FeedsCommand) -> anyhow::Result<()> {
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
            let description = description
                .as_deref()
                .map(Description::parse)
                .transpose()
                .map_err(|rule| anyhow::anyhow!("--description {rule}"))?
                .flatten();
            let feed = store
                .create_feed(
                    &feed_name(&name)?,
                    feed_type,
                    promote_to.as_ref(),
                    description.as_ref(),
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
