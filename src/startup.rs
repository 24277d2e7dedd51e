//! Building and running the server; the binary and the tests start it the same way.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::store::Store;
use crate::webhooks::dispatcher;

pub struct Application {
    listener: TcpListener,
    store: Store,
    allow_private_webhooks: bool,
}

impl Application {
    /// Opens the database (applying migrations) and binds the listener. Port 0
    /// picks a free port, which tests use.
    pub async fn build(listen: &str, database_url: &str) -> anyhow::Result<Self> {
        let store = Store::open(database_url).await?;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("could not listen on {listen}"))?;
        Ok(Application {
            listener,
            store,
            allow_private_webhooks: false,
        })
    }

    /// Lets webhooks call loopback and private addresses (`--webhook-allow-private`).
    pub fn allow_private_webhooks(mut self, allow: bool) -> Self {
        self.allow_private_webhooks = allow;
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
        let allow_private = self.allow_private_webhooks;
        let router = crate::http::router(self.store.clone(), allow_private);
        // Dropping `stop` (when serving ends, however it ends) stops the dispatcher.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let dispatcher = dispatcher::spawn(self.store.clone(), allow_private, stopped);
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
        drop(stop);
        let _ = dispatcher.await;
        self.store.close().await;
        served
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
