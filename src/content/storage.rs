//! Where package files live: one blob per SHA-256, whatever feeds hold it.
//!
//! An upload is first written to a staging file while it is hashed (see
//! [`stage`]); [`BlobStore::publish`] then puts it in place under its hash. How
//! uploads and the collector keep out of each other's way is told in
//! `store::content`.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::store::Digests;

/// A blob's bytes, or a range of them, as they are read.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// How much is read or written at a time: each read or write of a tokio file
/// is a trip to the blocking pool, so fewer, larger ones.
const IO_CHUNK: usize = 1024 * 1024;

/// An upload written to local disk and hashed, not yet published.
#[derive(Debug)]
pub struct Staged {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// The other digests clients check (npm's `shasum` and `integrity`).
    pub digests: Digests,
}

impl Drop for Staged {
    /// A staged file that was not published (a refused or failed upload) is
    /// removed with it; a published one was moved away already.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Why a body could not be staged.
#[derive(Debug)]
pub enum StageError {
    /// More than the limit arrived.
    TooLarge,
    /// The client's body broke off or could not be read.
    Body,
    /// The client's body stopped arriving (an error of kind `TimedOut`).
    Stalled,
    Io(io::Error),
}

/// Streams `body` into a new file in `folder`, hashing it on the way, and stops
/// at `limit` bytes. Memory use does not depend on the body's size.
pub async fn stage(
    folder: &Path,
    mut body: impl Stream<Item = io::Result<Bytes>> + Unpin,
    limit: u64,
) -> Result<Staged, StageError> {
    tokio::fs::create_dir_all(folder)
        .await
        .map_err(StageError::Io)?;
    let path = folder.join(format!("{}.part", uuid::Uuid::new_v4().simple()));
    let file = tokio::fs::File::create(&path)
        .await
        .map_err(StageError::Io)?;
    // Each write to a tokio file is a trip to the blocking pool: body chunks
    // (16 KiB or so) are gathered into writes of a mebibyte.
    let mut file = tokio::io::BufWriter::with_capacity(IO_CHUNK, file);
    // From here on the file is removed with `staged` whatever happens.
    let mut staged = Staged {
        path,
        sha256: String::new(),
        size: 0,
        digests: Digests::default(),
    };
    let mut hasher = Sha256::new();
    let (mut sha1, mut sha512, mut md5) = (sha1::Sha1::new(), sha2::Sha512::new(), md5::Md5::new());
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| match error.kind() {
            io::ErrorKind::TimedOut => StageError::Stalled,
            // A bound of the body around the file (a form's), met inside it.
            io::ErrorKind::FileTooLarge => StageError::TooLarge,
            _ => StageError::Body,
        })?;
        staged.size += chunk.len() as u64;
        if staged.size > limit {
            return Err(StageError::TooLarge);
        }
        hasher.update(&chunk);
        sha1.update(&chunk);
        sha512.update(&chunk);
        md5.update(&chunk);
        file.write_all(&chunk).await.map_err(StageError::Io)?;
    }
    file.flush().await.map_err(StageError::Io)?;
    // Durable before it can be published: a blob is never half a file.
    file.get_ref().sync_all().await.map_err(StageError::Io)?;
    staged.sha256 = hex::encode(hasher.finalize());
    staged.digests = Digests {
        sha1: hex::encode(sha1.finalize()),
        sha512: hex::encode(sha512.finalize()),
        md5: hex::encode(md5.finalize()),
    };
    Ok(staged)
}

/// Removes staging files older than `age`: uploads cut off by a crash.
pub async fn forget_stale_staging(folder: &Path, age: std::time::Duration) -> io::Result<u64> {
    let mut removed = 0;
    let mut entries = match tokio::fs::read_dir(folder).await {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    while let Some(entry) = entries.next_entry().await? {
        let modified = entry.metadata().await?.modified()?;
        if modified.elapsed().unwrap_or_default() > age
            && tokio::fs::remove_file(entry.path()).await.is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Where blobs are kept. Every method is safe to call more than once.
pub trait BlobStore: Send + Sync {
    /// Makes the staged bytes available under their hash, unless they already
    /// are (then the staged file is left for its owner to drop).
    fn publish(&self, staged: &Staged) -> impl Future<Output = io::Result<()>> + Send;
    /// Whether a blob's bytes are in place.
    fn exists(&self, sha256: &str) -> impl Future<Output = io::Result<bool>> + Send;
    /// A blob's bytes from `start`, `length` of them; `None` when it is missing.
    fn open(
        &self,
        sha256: &str,
        start: u64,
        length: u64,
    ) -> impl Future<Output = io::Result<Option<ByteStream>>> + Send;
    /// Removes a blob; one that is already gone is no error.
    fn remove(&self, sha256: &str) -> impl Future<Output = io::Result<()>> + Send;
}

/// Blobs in a directory: `ROOT/blobs/ab/cd/abcd…` (two levels of fan-out, so
/// that no directory holds more than a few thousand entries), staged in
/// `ROOT/staging` on the same file system, so that publishing is a rename.
#[derive(Debug, Clone)]
pub struct Directory {
    root: PathBuf,
}

impl Directory {
    pub fn new(root: PathBuf) -> Directory {
        Directory { root }
    }

    pub fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }

    /// Where a blob lives. The hash was computed here, so it is 64 hex digits.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.root
            .join("blobs")
            .join(&sha256[..2])
            .join(&sha256[2..4])
            .join(sha256)
    }
}

impl BlobStore for Directory {
    async fn publish(&self, staged: &Staged) -> io::Result<()> {
        let target = self.path_of(&staged.sha256);
        if tokio::fs::try_exists(&target).await? {
            return Ok(());
        }
        let folder = target.parent().expect("a blob path has a folder");
        tokio::fs::create_dir_all(folder).await?;
        tokio::fs::rename(&staged.path, &target).await?;
        // The rename itself must survive a crash once the record commits.
        tokio::fs::File::open(folder).await?.sync_all().await
    }

    async fn exists(&self, sha256: &str) -> io::Result<bool> {
        tokio::fs::try_exists(self.path_of(sha256)).await
    }

    async fn open(&self, sha256: &str, start: u64, length: u64) -> io::Result<Option<ByteStream>> {
        let mut file = match tokio::fs::File::open(self.path_of(sha256)).await {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        file.seek(io::SeekFrom::Start(start)).await?;
        let reader = file.take(length);
        Ok(Some(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            reader, IO_CHUNK,
        ))))
    }

    async fn remove(&self, sha256: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.path_of(sha256)).await {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }
}
