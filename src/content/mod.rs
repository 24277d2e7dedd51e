//! Package content (contract section 10): uploads read, stored once per SHA-256
//! and recorded; blobs no record refers to collected. A promotion never comes
//! here: it moves records only (`store::promotions`).

pub mod backfill;
pub mod s3;
pub mod storage;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::Stream;

use self::storage::{BlobStore, ByteStream, Directory, StageError, Staged};
use crate::config::ConnectionLimits;
use crate::domain::{FeedType, Identifier, PackageId};
use crate::ecosystems::{self, Found};
use crate::ecosystems::{reserved_version, version_refusal};
use crate::error::{Error, Result};
use crate::store::{ContentFile, Feed, Origin, Recorded, Store};

/// Where blobs are kept: the one place that chooses between the stores.
#[derive(Debug, Clone)]
pub enum Storage {
    Directory(Directory),
    S3(s3::S3),
}

impl Storage {
    /// Where uploads are staged: a local folder (on the blobs' file system for
    /// a directory, so that publishing is a rename).
    pub fn staging(&self) -> PathBuf {
        match self {
            Storage::Directory(directory) => directory.staging(),
            Storage::S3(s3) => s3.staging(),
        }
    }

    /// Checks at start-up that uploads can be staged, by creating the folder
    /// and a file in it once: a folder the server cannot write is then one
    /// line at start rather than a 500 on every upload.
    pub async fn check_staging(&self) -> io::Result<()> {
        let staging = self.staging();
        tokio::fs::create_dir_all(&staging).await?;
        let probe = staging.join(format!(".probe-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&probe, b"").await?;
        tokio::fs::remove_file(&probe).await
    }

    pub async fn publish(&self, staged: &Staged) -> io::Result<()> {
        match self {
            Storage::Directory(directory) => directory.publish(staged).await,
            Storage::S3(s3) => s3.publish(staged).await,
        }
    }

    pub async fn exists(&self, sha256: &str) -> io::Result<bool> {
        match self {
            Storage::Directory(directory) => directory.exists(sha256).await,
            Storage::S3(s3) => s3.exists(sha256).await,
        }
    }

    pub async fn open(
        &self,
        sha256: &str,
        start: u64,
        length: u64,
    ) -> io::Result<Option<ByteStream>> {
        match self {
            Storage::Directory(directory) => directory.open(sha256, start, length).await,
            Storage::S3(s3) => s3.open(sha256, start, length).await,
        }
    }

    pub async fn remove(&self, sha256: &str) -> io::Result<()> {
        match self {
            Storage::Directory(directory) => directory.remove(sha256).await,
            Storage::S3(s3) => s3.remove(sha256).await,
        }
    }
}

/// Where package files are stored, and how large an upload may be.
#[derive(Debug, Clone)]
pub struct Settings {
    pub storage: Storage,
    /// The largest upload, in bytes (`--max-upload-mib`).
    pub max_upload: u64,
    /// An upload whose body sends nothing for this long is abandoned (408;
    /// `--stall-timeout-seconds`); the body's stream reports it as an error
    /// of kind `TimedOut`.
    pub stall: Duration,
    /// Held by the collector, so that one server runs one collection at a
    /// time however many deletions ask for one.
    pub collecting: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Where blobs go unless told otherwise (`--storage-path`).
pub const DEFAULT_STORAGE_PATH: &str = "promoter-data";

/// 2 GiB (`--max-upload-mib`).
pub const DEFAULT_MAX_UPLOAD: u64 = 2 * 1024 * 1024 * 1024;

impl Settings {
    /// Blobs in `folder`, uploads up to the default limit.
    pub fn directory(folder: impl Into<PathBuf>) -> Settings {
        Settings {
            storage: Storage::Directory(Directory::new(folder.into())),
            max_upload: DEFAULT_MAX_UPLOAD,
            stall: ConnectionLimits::default().stall,
            collecting: Default::default(),
        }
    }
}

impl Settings {
    /// Blobs in the S3-compatible store at `url` (`s3://bucket/prefix`),
    /// uploads staged in `local/staging`; `options` as for [`s3::S3::new`].
    pub fn s3(
        url: &str,
        local: impl Into<PathBuf>,
        options: &[(&str, &str)],
    ) -> anyhow::Result<Settings> {
        Ok(Settings {
            storage: Storage::S3(s3::S3::new(url, local.into().join("staging"), options)?),
            max_upload: DEFAULT_MAX_UPLOAD,
            stall: ConnectionLimits::default().stall,
            collecting: Default::default(),
        })
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::directory(DEFAULT_STORAGE_PATH)
    }
}

/// The package a caller names in the query string, for feed types whose files
/// do not say (and to check against those that do).
#[derive(Debug, Default, Clone)]
pub struct Declared {
    pub group: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub qualifier: Option<String>,
}

/// What an upload stored.
pub struct Uploaded {
    pub recorded: Recorded,
    pub package: PackageId,
}

/// Streams `body` to staging (at most `settings.max_upload` bytes, each chunk
/// within `settings.stall` of the last), reads which package it is,
/// and records it in `feed`, publishing the bytes as the record commits.
pub async fn upload(
    store: &Store,
    settings: &Settings,
    feed: &Feed,
    file_name: Option<&str>,
    declared: Declared,
    body: impl Stream<Item = io::Result<Bytes>> + Unpin,
) -> Result<Uploaded> {
    let staged = stage(settings, body).await?;
    if staged.size == 0 {
        return Err(Error::invalid(
            "The request body is empty: send the package file.",
        ));
    }
    record(store, settings, feed, file_name, declared, staged, None).await
}

/// The first half of an upload: `body` in staging, with its digests, for a
/// caller that checks them against what the client said (twine's
/// `sha256_digest`) before [`record`], and refuses an empty one in its own
/// words. Dropped, the staged file goes.
pub async fn stage(
    settings: &Settings,
    body: impl Stream<Item = io::Result<Bytes>> + Unpin,
) -> Result<Staged> {
    let (storage, limit) = (&settings.storage, settings.max_upload);
    let staged = storage::stage(&storage.staging(), body, limit)
        .await
        .map_err(|error| match error {
            StageError::TooLarge => Error::UploadTooLarge {
                limit_mib: limit / (1024 * 1024),
            },
            StageError::Body => Error::invalid("The request body could not be read to its end."),
            StageError::Stalled => Error::UploadStalled {
                seconds: settings.stall.as_secs(),
            },
            StageError::Io(e) => Error::Internal(anyhow::anyhow!("could not stage an upload: {e}")),
        })?;
    Ok(staged)
}

/// The second half of an upload: reads which package the staged file is,
/// and records it in `feed`, publishing the bytes as the record commits;
/// with `origin`, as cached from a connector.
pub async fn record(
    store: &Store,
    settings: &Settings,
    feed: &Feed,
    file_name: Option<&str>,
    declared: Declared,
    staged: Staged,
    origin: Option<Origin<'_>>,
) -> Result<Uploaded> {
    let storage = &settings.storage;
    let feed_type = feed.feed_type;
    let path = staged.path.clone();
    let owned_name = file_name.map(str::to_owned);
    let found = tokio::task::spawn_blocking(move || {
        ecosystems::read(feed_type, &path, owned_name.as_deref())
    })
    .await
    .map_err(|e| Error::Internal(anyhow::anyhow!("reading an upload failed: {e}")))?
    .map_err(|rule| Error::invalid(format!("The file {rule}.")))?;
    let (found, claimed) = match found {
        Some(found) => (found, declared.name.is_some() || declared.version.is_some()),
        None => (declared_identity(feed_type, declared.clone())?, false),
    };
    let package = package_id(feed_type, &found)?;
    if claimed {
        check_claim(&package, &declared)?;
    }
    let file_name = file_name
        .map(str::to_owned)
        .unwrap_or_else(|| default_file_name(feed_type, &package));
    let file = ContentFile {
        package: &package,
        qualifier: &found.qualifier,
        file_name: &file_name,
        sha256: &staged.sha256,
        size: staged.size,
        digests: &staged.digests,
        metadata: found.metadata.as_deref(),
        origin,
    };
    // A retry or a conflict is answered before any bytes are published.
    if let Some(existing) = store
        .existing_file(feed, &package, &found.qualifier)
        .await?
    {
        let recorded = Recorded::settle(feed, &file, existing)?;
        return Ok(Uploaded { recorded, package });
    }
    // Marked, then published outside any transaction (see `store::content`).
    let mark = store.note_blob(&staged.sha256, staged.size).await?;
    storage
        .publish(&staged)
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("could not store a package file: {e}")))?;
    let recorded = store
        .add_content(feed, &file, mark, || storage.exists(&staged.sha256))
        .await?;
    Ok(Uploaded { recorded, package })
}

/// Refuses a file that is another package than the request names: a
/// client's claim is checked against the file's own word, never trusted over
/// it (contract section 12). Only what the request names is compared.
fn check_claim(package: &PackageId, declared: &Declared) -> Result<()> {
    let feed_type = package.feed_type();
    let (group, name) = ecosystems::canonical(
        feed_type,
        declared.group.as_deref(),
        declared.name.as_deref(),
    )
    .unwrap_or((declared.group.clone(), declared.name.clone()));
    let differs = name.is_some_and(|name| {
        ecosystems::name_key(feed_type, &name) != package.name_key()
            || ecosystems::group_key(feed_type, group.as_deref().unwrap_or_default())
                != package.group_key()
    }) || declared.version.as_deref().is_some_and(|version| {
        ecosystems::version_key(feed_type, version.trim()) != package.version_key()
    });
    if differs {
        let claimed = [
            group.map(|g| format!("{g}/")).unwrap_or_default()
                + declared.name.as_deref().unwrap_or(package.name()),
            declared.version.clone().unwrap_or_default(),
        ]
        .join(" ");
        return Err(Error::invalid(format!(
            "The file is package {package}, not {} as the request says.",
            claimed.trim()
        )));
    }
    Ok(())
}

/// The identity given as `?name=&version=[&group=][&qualifier=]`.
fn declared_identity(feed_type: FeedType, declared: Declared) -> Result<Found> {
    let required = |value: Option<String>, field: &str| {
        value.ok_or_else(|| {
            Error::invalid(format!(
                "Parameter \"{field}\" is required: {} package file does not say which package it is.",
                crate::domain::with_article(feed_type.as_str())
            ))
        })
    };
    Ok(Found {
        name: required(declared.name, "name")?,
        version: required(declared.version, "version")?,
        group: declared.group,
        qualifier: declared.qualifier.unwrap_or_default(),
        metadata: None,
    })
}

fn package_id(feed_type: FeedType, found: &Found) -> Result<PackageId> {
    let part = |value: &str, what: &str| {
        Identifier::parse(value)
            .map_err(|rule| Error::invalid(format!("The package's {what} \"{value}\" {rule}.")))
    };
    let name = part(&found.name, "name")?;
    let version = part(&found.version, "version")?;
    if let Some(rule) = reserved_version(feed_type, version.as_str()) {
        return Err(Error::invalid(format!("The package's version {rule}.")));
    }
    if let Some(rule) = version_refusal(feed_type, version.as_str()) {
        return Err(Error::invalid(format!(
            "The package's version \"{version}\" {rule}.",
            version = version.as_str()
        )));
    }
    let group = found
        .group
        .as_deref()
        .map(|group| part(group, "group"))
        .transpose()?;
    PackageId::new(feed_type, group.as_ref(), &name, &version)
        .map_err(|rule| Error::invalid(format!("The package's group {rule}.")))
}

/// The name a file uploaded without one is downloaded under.
fn default_file_name(feed_type: FeedType, package: &PackageId) -> String {
    let (name, version) = (package.name(), package.version());
    match feed_type {
        FeedType::Nuget | FeedType::Chocolatey | FeedType::Powershell => {
            format!("{name}.{version}.nupkg")
        }
        FeedType::Npm => format!("{name}-{version}.tgz"),
        FeedType::Universal => format!("{name}-{version}.upack"),
        _ => format!("{name}-{version}"),
    }
}

/// Deletes a package version from `feed`, or only its file with `qualifier`,
/// for `user` (the log line says who); its content, unless another record
/// shares it, goes now rather than at the next minute's collection. Returns
/// how many files went; 0 means there was no such package.
pub async fn delete(
    store: &Store,
    settings: &Settings,
    feed: &Feed,
    package: &PackageId,
    qualifier: Option<&str>,
    user: &str,
) -> Result<u64> {
    let deleted = store.delete_package(feed, package, qualifier).await?;
    if deleted > 0 {
        tracing::info!(feed = %feed.name, package = %package, files = deleted, user, "package deleted");
        let (store, settings) = (store.clone(), settings.clone());
        tokio::spawn(async move {
            if let Err(error) = collect_garbage(&store, &settings).await {
                tracing::warn!(error = %crate::error::describe(&error), "collecting package files failed");
            }
        });
    }
    Ok(deleted)
}

/// How old a staging file must be before it counts as left by a crash: far
/// longer than any upload takes.
const STALE_STAGING: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a blob an upload is publishing is left alone by the collector:
/// far longer than publishing 2 GiB to an object store takes.
const PUBLISHING_GRACE: Duration = Duration::from_secs(60 * 60);

/// Removes blobs that no record refers to any more (deleted or overwritten
/// packages, failed uploads) and stale staging files. Returns how many blobs
/// went.
pub async fn collect_garbage(store: &Store, settings: &Settings) -> Result<u64> {
    let _one_at_a_time = settings.collecting.lock().await;
    let storage = &settings.storage;
    let marked_before =
        chrono::Utc::now() - chrono::Duration::from_std(PUBLISHING_GRACE).expect("an hour fits");
    let mut removed = 0;
    loop {
        let unreferenced = store.unreferenced_blobs(marked_before, 100).await?;
        let mut went = 0;
        for sha256 in &unreferenced {
            // One blob that cannot be removed now must not hold up the rest.
            match store
                .collect_blob(sha256, marked_before, || storage.remove(sha256))
                .await
            {
                Ok(true) => went += 1,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(blob = %sha256, error = %crate::error::describe(&error), "could not collect a package file");
                }
            }
        }
        removed += went;
        // A batch that removed nothing is all in use again (or failing): done
        // for now.
        if unreferenced.len() < 100 || went == 0 {
            break;
        }
    }
    let _ = storage::forget_stale_staging(&storage.staging(), STALE_STAGING).await;
    Ok(removed)
}
