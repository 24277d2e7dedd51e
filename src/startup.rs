//! Building and running the server; the binary and the tests start it the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::{ConnectionLimits, Limits};
use crate::http::limits::{Limiters, RateLimits};
use crate::store::Store;
use crate::webhooks;

pub struct Application {
    listener: TcpListener,
    store: Store,
    webhooks: webhooks::Settings,
    metrics_token: Option<String>,
    rate_limits: RateLimits,
    limits: Limits,
    connections: ConnectionLimits,
    content: crate::content::Settings,
    public_url: Option<crate::http::native::PublicUrl>,
    connectors: crate::connectors::Settings,
}

impl Application {
    /// Opens the database (applying migrations) and binds the listener. Port 0
    /// picks a free port, which tests use.
    pub async fn build(listen: &str, database_url: &str) -> anyhow::Result<Self> {
        let pool_size = crate::store::default_pool_size();
        Self::build_with(listen, database_url, pool_size, Limits::default()).await
    }

    /// Like `build`, holding at most `pool_size` PostgreSQL connections, with
    /// the given timeouts and body limits.
    pub async fn build_with(
        listen: &str,
        database_url: &str,
        pool_size: u32,
        limits: Limits,
    ) -> anyhow::Result<Self> {
        // The address first: a bad --listen, or a port in use, must not
        // leave a new database behind.
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("could not listen on {listen}"))?;
        let store = Store::open_with(database_url, pool_size, limits.statement_timeout)
            .await?
            .group_commit(Some(crate::config::DEFAULT_GROUP_COMMIT_MAX));
        // Installed before the first request, so that nothing goes uncounted.
        crate::metrics::handle();
        Ok(Application {
            listener,
            store,
            webhooks: webhooks::Settings::default(),
            metrics_token: None,
            rate_limits: RateLimits::default(),
            limits,
            connections: ConnectionLimits::default(),
            content: crate::content::Settings::default(),
            public_url: None,
            connectors: crate::connectors::Settings::default(),
        })
    }

    /// How webhooks are delivered (`--webhook-…` settings).
    pub fn webhooks(mut self, settings: webhooks::Settings) -> Self {
        self.webhooks = settings;
        self
    }

    /// The bearer token `/metrics` asks for (`--metrics-token`); open without.
    pub fn metrics_token(mut self, token: Option<String>) -> Self {
        self.metrics_token = token;
        self
    }

    /// Where package files are stored (`--storage-path`, `--max-upload-mib`).
    pub fn content(mut self, settings: crate::content::Settings) -> Self {
        self.content = settings;
        self
    }

    /// The base of absolute URLs in native metadata (`--public-url`); each
    /// request's own address without it.
    pub fn public_url(mut self, url: Option<crate::http::native::PublicUrl>) -> Self {
        self.public_url = url;
        self
    }

    /// How connectors reach upstreams (`--connector-…`).
    pub fn connectors(mut self, settings: crate::connectors::Settings) -> Self {
        self.connectors = settings;
        self
    }

    /// Group commit of single promotions (`--group-commit`, on unless set):
    /// rounds of at most this many, or none.
    pub fn group_commit(mut self, max_round: Option<usize>) -> Self {
        self.store = self.store.group_commit(max_round);
        self
    }

    /// Rate limits (`--rate-limit-…`); none unless set.
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = limits;
        self
    }

    /// Connection deadlines and limits (`--header-read-timeout-seconds` …).
    pub fn connections(mut self, limits: ConnectionLimits) -> Self {
        self.connections = limits;
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves, and delivers webhook events, until `shutdown` completes; then
    /// finishes the requests and deliveries in flight.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(
            address = %self.local_addr(),
            database = self.store.backend(),
            "promoter listening"
        );
        let limiters = Limiters::new(self.rate_limits);
        let router = crate::http::router(
            self.store.clone(),
            self.webhooks.allow_private,
            self.metrics_token.as_deref(),
            limiters.clone(),
            self.limits,
            crate::content::Settings {
                stall: self.connections.stall,
                ..self.content.clone()
            },
            crate::http::native::Settings {
                public_url: self.public_url.clone(),
                connectors: self.connectors.clone(),
            },
        );
        // The limiters remember clients only while they are active, and the
        // metrics' histograms are folded in whether or not anyone scrapes.
        // Package files no record refers to any more are collected once a
        // minute (and after each deletion through the API).
        let (store, content) = (self.store.clone(), self.content.clone());
        let tidy = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            let mut rounds = 0u64;
            loop {
                every.tick().await;
                crate::metrics::handle().run_upkeep();
                rounds += 1;
                if rounds.is_multiple_of(12) {
                    limiters.forget_idle();
                    if let Err(error) = crate::content::collect_garbage(&store, &content).await {
                        tracing::warn!(error = %crate::error::describe(&error), "collecting package files failed");
                    }
                }
            }
        });
        // The dispatcher stops claiming as soon as shutdown begins, and in any
        // case when serving ends (which drops `stop`).
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let dispatcher = webhooks::dispatcher::spawn(self.store.clone(), self.webhooks, stopped);
        // Until it hears of changes, requests read feeds and keys from the
        // database (see `store::cache`).
        let watcher = tokio::spawn(self.store.clone().watch_catalog());
        let connections = self.connections;
        let stopping = async move {
            shutdown.await;
            tracing::info!(
                deadline_seconds = connections.shutdown.as_secs(),
                "shutting down: no new connections; finishing what is in flight"
            );
            let _ = stop.send(true);
        };
        let deadline =
            crate::http::connections::serve(self.listener, router, connections, stopping).await;
        // Deliveries in flight get what is left of the same deadline.
        let mut dispatcher = dispatcher;
        // An idle dispatcher stops at once; only one that is still delivering
        // after a moment is worth a line.
        let idle = tokio::time::timeout(Duration::from_millis(200), &mut dispatcher).await;
        if idle.is_err() {
            tracing::info!("waiting for webhook deliveries in flight");
        }
        if idle.is_err()
            && tokio::time::timeout_at(deadline.into(), &mut dispatcher)
                .await
                .is_err()
        {
            tracing::warn!("stopping webhook deliveries still in flight at the shutdown deadline");
            dispatcher.abort();
        }
        watcher.abort();
        tidy.abort();
        // What still holds a database connection past the deadline (an
        // identity read, a collection) is not waited for either.
        let closing = tokio::time::Instant::from_std(deadline) + Duration::from_secs(1);
        if tokio::time::timeout_at(closing, self.store.close())
            .await
            .is_err()
        {
            tracing::warn!("closed with database work still in flight at the shutdown deadline");
        }
        tracing::info!("promoter stopped");
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM, saying which arrived. The handlers are
/// installed when this is called, not when the future is first polled: a
/// SIGTERM that arrives while the server starts (after it is listening, before
/// it serves) then asks for a shutdown instead of killing the process.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        let signal = {
            async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = next(&mut interrupt) => "SIGINT",
                () = next(&mut terminate) => "SIGTERM",
            }
        };
        #[cfg(not(unix))]
        let signal = {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        };
        tracing::info!(signal, "shutdown requested");
    }
}
