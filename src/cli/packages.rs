//! `promoter packages`: records loaded straight into a feed.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde::Deserialize;

use super::feed_name;
use crate::domain::{parse_qualifier, split_package, FeedType, Identifier, PackageId};
use crate::ecosystems::{reserved_version, version_refusal};
use crate::store::{NewFile, NewPackage, Store};

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

pub(super) async fn packages(store: &Store, command: PackagesCommand) -> anyhow::Result<()> {
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
        if let Some(rule) = version_refusal(feed_type, version.as_str()) {
            return Err(format!("the version {:?} {rule}", version.as_str()));
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
