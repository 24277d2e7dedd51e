//! `promoter serve` and `promoter health`.

use std::num::NonZeroU32;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::config::{
    ConnectionArgs, ConnectorArgs, DatabaseArgs, GroupCommitArgs, LimitArgs, WebhookServeArgs,
    DEFAULT_LISTEN,
};
use crate::http::limits::RateLimits;
use crate::http::native::PublicUrl;
use crate::startup::{shutdown_signal, Application};
use crate::store;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Address and port to listen on.
    #[arg(long, env = "PROMOTER_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Most PostgreSQL connections the server holds (1-1000; default: four
    /// per CPU core, at least 8). More only adds contention once the
    /// database's cores are busy. SQLite always uses 8.
    #[arg(long, env = "PROMOTER_DB_POOL_SIZE", value_parser = clap::value_parser!(u32).range(1..=1000))]
    db_pool_size: Option<u32>,
    /// A token that `GET /metrics` then asks for as `Authorization: Bearer
    /// TOKEN`; without it the metrics are open to anyone who can reach the port.
    #[arg(long, env = "PROMOTER_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Requests per second allowed from one client address (the connection's
    /// peer: behind a proxy, limit there instead); 0 for no limit.
    #[arg(long, env = "PROMOTER_RATE_LIMIT_PER_ADDRESS", default_value_t = 0)]
    rate_limit_per_address: u32,
    /// Requests per second allowed with one API key; 0 for no limit.
    #[arg(long, env = "PROMOTER_RATE_LIMIT_PER_KEY", default_value_t = 0)]
    rate_limit_per_key: u32,
    /// Failed authentications per minute allowed from one client address;
    /// past it the address is refused (429) until it may try again. 0 for no
    /// limit.
    #[arg(long, env = "PROMOTER_AUTH_FAILURES_PER_MINUTE", default_value_t = 60)]
    auth_failures_per_minute: u32,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    group_commit: GroupCommitArgs,
    #[command(flatten)]
    connections: ConnectionArgs,
    /// The folder package files are stored in (created when needed): one file
    /// per distinct content, whatever feeds hold it.
    #[arg(long, env = "PROMOTER_STORAGE_PATH", default_value = crate::content::DEFAULT_STORAGE_PATH)]
    storage_path: PathBuf,
    /// s3://bucket[/prefix]: keep package files in an S3-compatible object
    /// store instead (credentials, region and endpoint from the AWS_…
    /// environment variables); uploads are still staged under --storage-path.
    #[arg(long, env = "PROMOTER_STORAGE_URL")]
    storage_url: Option<String>,
    /// The largest package file an upload may send, in MiB (1-1048576); larger
    /// is 413.
    #[arg(
        long,
        env = "PROMOTER_MAX_UPLOAD_MIB",
        default_value_t = 2048,
        value_parser = clap::value_parser!(u64).range(1..=1_048_576)
    )]
    max_upload_mib: u64,
    /// The URL clients reach this server at, such as
    /// https://packages.example.com: the base of absolute URLs in native
    /// metadata (npm tarball URLs). Without it, each request's own address
    /// (Host, or X-Forwarded-Host and X-Forwarded-Proto from a proxy).
    #[arg(long, env = "PROMOTER_PUBLIC_URL", value_parser = PublicUrl::parse)]
    public_url: Option<PublicUrl>,
    #[command(flatten)]
    webhooks: WebhookServeArgs,
    #[command(flatten)]
    connectors: ConnectorArgs,
}

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// The address the server listens on (its --listen); 0.0.0.0 and [::] are
    /// checked on the loopback address.
    #[arg(long, env = "PROMOTER_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,
}

/// `promoter serve`: every setting is checked before anything is opened, so
/// that a bad one is one line and leaves nothing behind.
pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        database,
        listen,
        db_pool_size,
        metrics_token,
        rate_limit_per_address,
        rate_limit_per_key,
        auth_failures_per_minute,
        limits,
        group_commit,
        connections,
        storage_path,
        storage_url,
        max_upload_mib,
        public_url,
        webhooks,
        connectors,
    } = args;
    let settings = limits.limits()?;
    let content = match storage_url {
        Some(url) => crate::content::Settings::s3(&url, &storage_path, &[])?,
        None => crate::content::Settings::directory(&storage_path),
    };
    let rate_limits = RateLimits {
        per_address: NonZeroU32::new(rate_limit_per_address),
        per_key: NonZeroU32::new(rate_limit_per_key),
        auth_failures_per_address: NonZeroU32::new(auth_failures_per_minute),
    };
    // From here on a SIGTERM or Ctrl-C is a shutdown, even while starting.
    let shutdown = shutdown_signal();
    // The address, then the package folder, then the database: whatever is
    // wrong is said before anything is created.
    let _resolved = tokio::net::lookup_host(&listen)
        .await
        .with_context(|| format!("could not listen on {listen}"))?;
    content.storage.check_staging().await.with_context(|| {
        format!(
            "could not write package files under {}",
            content.storage.staging().display()
        )
    })?;
    let pool_size = db_pool_size.unwrap_or_else(store::default_pool_size);
    let app = Application::build_with(&listen, database.database_url.expose(), pool_size, settings)
        .await?
        .webhooks(crate::webhooks::Settings::from(&webhooks))
        .connectors(crate::connectors::Settings::from(&connectors))
        .group_commit(group_commit.max_round())
        .metrics_token(metrics_token)
        .public_url(public_url)
        .rate_limits(rate_limits)
        .connections(connections.limits())
        .content(crate::content::Settings {
            max_upload: max_upload_mib * 1024 * 1024,
            ..content
        });
    app.run(shutdown).await?;
    Ok(())
}
