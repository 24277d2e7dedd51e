//! Blobs in any S3-compatible object store (`--storage-url s3://bucket/prefix`),
//! through the `object_store` crate: `PREFIX/blobs/ab/abcd…`. Credentials,
//! region and endpoint come from the usual `AWS_…` environment variables.
//!
//! Uploads are staged on local disk first (hashing needs the whole file before
//! its name is known), then copied up in parts of [`PART_SIZE`], a few at a
//! time, so memory stays bounded. Several replicas may share one bucket: which
//! of them publishes or removes a blob is decided by the blob's row in the
//! shared database (`store::content`), and writing the same bytes under the same
//! name twice is harmless.

use std::io;
use std::path::PathBuf;

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, WriteMultipart};
use tokio::io::AsyncReadExt;

use super::storage::{BlobStore, ByteStream, Staged};

/// The size of each part of a multipart upload (S3's minimum is 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight at once.
const PARTS_AT_ONCE: usize = 4;

#[derive(Debug, Clone)]
pub struct S3 {
    store: std::sync::Arc<AmazonS3>,
    prefix: String,
    staging: PathBuf,
}

impl S3 {
    /// The store named by `url` (`s3://bucket[/prefix]`), staging uploads in
    /// `staging`, configured from the `AWS_…` environment variables and then
    /// `options` (`object_store`'s names, such as `aws_endpoint`).
    pub fn new(url: &str, staging: PathBuf, options: &[(&str, &str)]) -> anyhow::Result<S3> {
        let parsed = url::Url::parse(url)
            .map_err(|e| anyhow::anyhow!("--storage-url is not a URL ({e})"))?;
        if parsed.scheme() != "s3" || parsed.host_str().is_none_or(str::is_empty) {
            anyhow::bail!("--storage-url must look like s3://bucket or s3://bucket/prefix");
        }
        let bucket = parsed.host_str().expect("checked above");
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (key, value) in options {
            let key = key
                .parse()
                .map_err(|e| anyhow::anyhow!("unknown object store option {key}: {e}"))?;
            builder = builder.with_config(key, *value);
        }
        let store = builder
            .build()
            .map_err(|e| anyhow::anyhow!("the object store cannot be used: {e}"))?;
        Ok(S3 {
            store: std::sync::Arc::new(store),
            prefix: parsed.path().trim_matches('/').to_owned(),
            staging,
        })
    }

    pub fn staging(&self) -> PathBuf {
        self.staging.clone()
    }

    fn path_of(&self, sha256: &str) -> ObjectPath {
        let key = format!("blobs/{}/{}/{sha256}", &sha256[..2], &sha256[2..4]);
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }
}

fn to_io(error: object_store::Error) -> io::Error {
    io::Error::other(error)
}

impl BlobStore for S3 {
    async fn publish(&self, staged: &Staged) -> io::Result<()> {
        if self.exists(&staged.sha256).await? {
            return Ok(());
        }
        let path = self.path_of(&staged.sha256);
        let upload = self.store.put_multipart(&path).await.map_err(to_io)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let copied = async {
            let mut file = tokio::fs::File::open(&staged.path).await?;
            let mut buffer = vec![0; 1024 * 1024];
            loop {
                let read = file.read(&mut buffer).await?;
                if read == 0 {
                    return Ok(());
                }
                writer
                    .wait_for_capacity(PARTS_AT_ONCE)
                    .await
                    .map_err(to_io)?;
                writer.write(&buffer[..read]);
            }
        }
        .await;
        match copied {
            Ok(()) => writer.finish().await.map(|_| ()).map_err(to_io),
            // Parts already sent are dropped rather than left to be billed.
            Err(error) => {
                let _ = writer.abort().await;
                Err(error)
            }
        }
    }

    async fn exists(&self, sha256: &str) -> io::Result<bool> {
        match self.store.head(&self.path_of(sha256)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(to_io(error)),
        }
    }

    async fn open(&self, sha256: &str, start: u64, length: u64) -> io::Result<Option<ByteStream>> {
        let options = GetOptions {
            range: Some(GetRange::Bounded(start..start + length)),
            ..GetOptions::default()
        };
        match self.store.get_opts(&self.path_of(sha256), options).await {
            Ok(result) => Ok(Some(result.into_stream().map_err(to_io).boxed())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(to_io(error)),
        }
    }

    async fn remove(&self, sha256: &str) -> io::Result<()> {
        match self.store.delete(&self.path_of(sha256)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(to_io(error)),
        }
    }
}
