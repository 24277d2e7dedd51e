//! `promoter keys`.

use anyhow::bail;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use super::{feed_name, utc};
use crate::auth;
use crate::domain::{KeyName, Permission, Permissions};
use crate::store::{KeyScope, NewKey, Store};

/// Keys read from the database at a time by `keys list`.
const KEYS_PER_PAGE: i64 = 1000;

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

pub(super) async fn keys(store: &Store, command: KeysCommand) -> anyhow::Result<()> {
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
    let name = create
        .name
        .map(|name| KeyName::parse(&name).map_err(|rule| anyhow::anyhow!("--name {rule}")))
        .transpose()?;
    Ok(NewKey {
        name,
        scope,
        permissions,
        expires_at,
        description: None,
        logging: "None".to_owned(),
    })
}
