//! Blobs stored before their SHA-1, SHA-512 and metadata were kept (contract
//! section 13): the first metadata document that needs them reads the blob
//! once from storage, the same way an upload does, and keeps what it found.

use super::storage::{self, StageError};
use super::Settings;
use crate::domain::FeedType;
use crate::ecosystems;
use crate::error::{Error, Result};
use crate::store::{Digests, NativeFile, Store};

/// The metadata of a file whose description could not be read.
pub const UNREADABLE: &str = "null";

/// Whether documents of `feed_type` show each file's own description: npm's
/// `package.json`, PyPI's core metadata, NuGet's `.nuspec`.
fn needs_metadata(feed_type: FeedType) -> bool {
    matches!(feed_type, FeedType::Npm | FeedType::Pypi) || ecosystems::is_nuget(feed_type)
}

/// Whether `file` lacks what a metadata document of `feed_type` shows.
pub fn is_undescribed(feed_type: FeedType, file: &NativeFile) -> bool {
    file.blob_sha256.is_some()
        && (file.sha512.is_none()
            // Only Maven answers MD5s: other documents never wait for one.
            || (feed_type == FeedType::Maven && file.md5.is_none())
            || (needs_metadata(feed_type) && file.metadata.is_none()))
}

/// Whether `file` can be shown: described, and its description readable.
pub fn is_described(feed_type: FeedType, file: &NativeFile) -> bool {
    !is_undescribed(feed_type, file)
        && file.sha512.is_some()
        && file.metadata.as_deref() != Some(UNREADABLE)
}

/// Fills in `file`'s digests and metadata from its stored bytes, and keeps
/// them. A file whose bytes are missing or unreadable is left as it is (the
/// document leaves it out, and the log says why).
pub async fn describe(
    store: &Store,
    settings: &Settings,
    feed_type: FeedType,
    file: &mut NativeFile,
) -> Result<()> {
    let Some(sha256) = file.blob_sha256.clone() else {
        return Ok(());
    };
    let size = file.size.unwrap_or(0).max(0) as u64;
    let storage = &settings.storage;
    let bytes = storage
        .open(&sha256, 0, size)
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("could not read a package file: {e}")))?
        .ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "the content of a recorded file is missing from storage: {sha256}"
            ))
        })?;
    let staged = storage::stage(&storage.staging(), bytes, u64::MAX)
        .await
        .map_err(|error| match error {
            StageError::Io(e) => Error::Internal(anyhow::anyhow!("could not stage a blob: {e}")),
            _ => Error::Internal(anyhow::anyhow!("could not read blob {sha256} back")),
        })?;
    if staged.sha256 != sha256 {
        return Err(Error::Internal(anyhow::anyhow!(
            "blob {sha256} holds other bytes (SHA-256 {})",
            staged.sha256
        )));
    }
    let path = staged.path.clone();
    let file_name = file.file_name.clone();
    let found = tokio::task::spawn_blocking(move || {
        ecosystems::read(feed_type, &path, file_name.as_deref())
    })
    .await
    .map_err(|e| Error::Internal(anyhow::anyhow!("reading a blob failed: {e}")))?
    .ok()
    .flatten();
    // A file whose description cannot be read is marked so (JSON `null`),
    // so that it is not read again on every request; documents leave it
    // out, as no client could install it correctly without it.
    let metadata = match found.and_then(|found| found.metadata) {
        Some(metadata) => Some(metadata),
        None if needs_metadata(feed_type) => {
            tracing::warn!(blob = %sha256, "a stored file's description could not be read; it is left out of metadata documents");
            Some(UNREADABLE.to_owned())
        }
        None => None,
    };
    let Digests { sha1, sha512, md5 } = staged.digests.clone();
    store
        .backfill(
            &sha256,
            &staged.digests,
            metadata.as_deref().map(|m| (file.file_id, m)),
        )
        .await?;
    file.sha1 = Some(sha1);
    file.sha512 = Some(sha512);
    file.md5 = Some(md5);
    if metadata.is_some() {
        file.metadata = metadata;
    }
    Ok(())
}
