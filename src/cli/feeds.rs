//! `promoter feeds` and `promoter groups`.

use clap::Subcommand;

use super::feed_name;
use crate::domain::{Connector, Connectors, Description, FeedType, MAX_CONNECTORS};
use crate::store::{FeedChange, FeedSettings, Store};
use crate::webhooks::targets::AllowedBy;

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
        #[command(flatten)]
        connectors: ConnectorFlags,
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
        #[command(flatten)]
        connectors: ConnectorFlags,
        /// Remove every connector of the feed.
        #[arg(long, conflicts_with = "connector")]
        no_connectors: bool,
    },
    /// List every feed: name, type, whether it is enabled and public, its fixed target.
    List,
    /// Disable a feed: it then takes part in no promotion.
    Disable { name: String },
    /// Enable a disabled feed again.
    Enable { name: String },
}

/// A feed's connectors as flags (contract section 16). `Debug` never shows
/// the password or token.
#[derive(clap::Args)]
pub struct ConnectorFlags {
    /// An upstream registry the feed offers packages from, such as
    /// https://registry.npmjs.org/ (repeatable, asked in order; on update,
    /// replaces the feed's connectors).
    #[arg(long)]
    connector: Vec<String>,
    /// The user name the connectors sign in with (Basic), with
    /// PROMOTER_CONNECTOR_PASSWORD.
    #[arg(long, requires = "connector")]
    connector_username: Option<String>,
    #[arg(
        long,
        env = "PROMOTER_CONNECTOR_PASSWORD",
        hide = true,
        hide_env_values = true
    )]
    connector_password: Option<String>,
    /// The connectors sign in with the bearer token in this variable instead.
    #[arg(
        long,
        env = "PROMOTER_CONNECTOR_TOKEN",
        hide = true,
        hide_env_values = true
    )]
    connector_token: Option<String>,
    /// Say nothing about a connector to a loopback or private address: the
    /// server calls it only when it runs with --connector-allow-private.
    #[arg(long, env = "PROMOTER_CONNECTOR_ALLOW_PRIVATE")]
    connector_allow_private: bool,
}

impl std::fmt::Debug for ConnectorFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorFlags")
            .field("connector", &self.connector)
            .field("connector_username", &self.connector_username)
            .field("connector_allow_private", &self.connector_allow_private)
            .finish_non_exhaustive()
    }
}

impl ConnectorFlags {
    /// The connectors given, checked; `None` when no --connector was given.
    /// Credentials sign in to one upstream, so they are refused with several
    /// (each would be sent to every one); set those through the API.
    async fn read(self, feed_type: FeedType) -> anyhow::Result<Option<Connectors>> {
        if self.connector.is_empty() {
            return Ok(None);
        }
        if self.connector.len() > MAX_CONNECTORS {
            anyhow::bail!("--connector may be given at most {MAX_CONNECTORS} times");
        }
        let credentials = self.connector_username.is_some()
            || self.connector_password.is_some()
            || self.connector_token.is_some();
        if credentials && self.connector.len() > 1 {
            anyhow::bail!(
                "--connector-username, PROMOTER_CONNECTOR_PASSWORD and PROMOTER_CONNECTOR_TOKEN sign in to one connector: give one --connector with them, or set each connector's credentials through the management API"
            );
        }
        let mut connectors = Vec::new();
        for url in &self.connector {
            let connector = Connector::new(
                url,
                self.connector_username.clone(),
                self.connector_password.clone(),
                self.connector_token.clone(),
                "--connector",
                &format!("--connector {url}:"),
            )
            .map_err(anyhow::Error::msg)?;
            // The command runs with the database's own rights, so a private
            // address is the operator's choice: said, not refused. Whoever
            // sets one through the API is refused unless the server allows
            // it, and the server checks every connection it makes anyway.
            if let Err(refusal) = crate::connectors::check(
                feed_type,
                &connector,
                self.connector_allow_private,
                AllowedBy::ConnectorCommand,
                &format!("--connector {url}:"),
            )
            .await
            {
                if !crate::connectors::supports(feed_type) {
                    anyhow::bail!(refusal);
                }
                eprintln!("note: {refusal}");
            }
            connectors.push(connector);
        }
        Ok(Some(Connectors(connectors.into())))
    }
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
            connectors,
        } => {
            let feed_type: FeedType = feed_type
                .parse()
                .map_err(|rule| anyhow::anyhow!("--type {rule}"))?;
            let connectors = connectors.read(feed_type).await?.unwrap_or_default();
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
                connectors,
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
            connectors,
            no_connectors,
        } => {
            let feed = store.existing_feed(&feed_name(&name)?).await?;
            let connectors = match no_connectors {
                true => Some(Connectors::default()),
                false => connectors.read(feed.feed_type).await?,
            };
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
                connectors,
                ..FeedChange::default()
            };
            let feed = store.update_feed(&feed, &change).await?;
            let visibility = if feed.public { "public" } else { "not public" };
            println!("Updated feed {} ({visibility}).", feed.name);
        }
        FeedsCommand::List => {
            println!(
                "{:<30} {:<11} {:<8} {:<8} {:<30} CONNECTORS",
                "NAME", "TYPE", "ACTIVE", "PUBLIC", "PROMOTE-TO"
            );
            let yes_no = |flag: bool| if flag { "yes" } else { "no" };
            for feed in store.list_feeds().await? {
                let connectors: Vec<&str> =
                    feed.connectors.iter().map(|c| c.url.as_str()).collect();
                let line = format!(
                    "{:<30} {:<11} {:<8} {:<8} {:<30} {}",
                    feed.name,
                    feed.feed_type,
                    yes_no(feed.active),
                    yes_no(feed.public),
                    feed.promote_to.as_deref().unwrap_or("-"),
                    connectors.join(" ")
                );
                println!("{}", line.trim_end());
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
