//! Accepting and serving connections, each under deadlines, so that no client
//! holds a connection (a file descriptor) for longer than it is doing
//! something: `axum::serve` sets none, and a few thousand silent connections
//! were enough to make `accept` fail for everyone.
//!
//! - A request's head must arrive within `header_read` of the server starting
//!   to wait for it. hyper starts that clock both on a new connection and when
//!   a kept-alive connection goes back to waiting for its next request, so the
//!   same setting is the idle keep-alive timeout.
//! - An answer the client stops reading is dropped after `stall` without
//!   progress (`StallGuard`): downloads have no request timeout, and a stalled
//!   reader would otherwise hold its connection, and shutdown, forever.
//! - At most `max_connections` are served at once; past that the server stops
//!   accepting (new ones wait in the kernel's backlog) instead of running out
//!   of file descriptors.
//! - Shutdown stops accepting, lets what is in flight finish for at most
//!   `shutdown` and then drops whatever is left.
//!
//! HTTP/1.1 only: every client of a package repository speaks it, and hyper's
//! head deadline is an HTTP/1 feature (`axum::serve` also offered HTTP/2 over
//! clear text, which no package manager uses).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Sleep;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::ConnectionLimits;

/// Serves `router` on `listener` until `shutdown` completes, then for at most
/// `limits.shutdown` while connections finish. Returns that deadline, which
/// the rest of shutdown keeps to as well.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> Instant {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let (stop, stopping) = watch::channel(Phase::Serving);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors (or another passing failure):
                    // wait rather than spin, as axum::serve does.
                    tracing::warn!(error = %error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Answers go out whole (hyper writes head and body together), so
        // Nagle's algorithm only delays the last segment of a kept-alive
        // connection.
        let _ = tcp.set_nodelay(true);
        let service = router.clone();
        let stopping = stopping.clone();
        connections.spawn(async move {
            serve_connection(tcp, peer, service, limits, stopping).await;
            drop(permit);
        });
    }
    let deadline = Instant::now() + limits.shutdown;
    drop(listener);
    let _ = stop.send(Phase::Finishing);
    connections.close();
    let open = connections.len();
    if open > 0 {
        tracing::info!(
            connections = open,
            deadline_seconds = limits.shutdown.as_secs(),
            "waiting for open connections to finish"
        );
    }
    if tokio::time::timeout_at(deadline.into(), connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = connections.len(),
            "dropping the connections still open at the shutdown deadline"
        );
        let _ = stop.send(Phase::Dropping);
        connections.wait().await;
    }
    deadline
}

/// Where shutdown is, as every connection hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Finish the request in flight, take no more.
    Finishing,
    /// The deadline has passed: close at once.
    Dropping,
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<Phase>,
) {
    // The peer's address is what the per-address limits count by.
    let service = router.map_request(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let io = TokioIo::new(StallGuard::new(tcp, limits.stall));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    let connection = builder.serve_connection(io, TowerToHyperService::new(service));
    tokio::pin!(connection);
    let finished = tokio::select! {
        result = connection.as_mut() => Some(result),
        _ = stopping.wait_for(|phase| *phase != Phase::Serving) => None,
    };
    let result = match finished {
        Some(result) => result,
        None => {
            // Finish the request in flight, if any, then close; at the
            // deadline, drop it (a transaction in flight rolls back).
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                result = connection => result,
                _ = stopping.wait_for(|phase| *phase == Phase::Dropping) => return,
            }
        }
    };
    if let Err(error) = result {
        // A client that went away or was too slow is its own business.
        tracing::debug!(error = %error, peer = %peer, "connection ended");
    }
}

/// A connection whose writes must make progress: a write that stays pending
/// for `stall` (the client reads nothing) fails with `TimedOut`, which ends
/// the connection.
struct StallGuard {
    inner: TcpStream,
    stall: Duration,
    /// Armed while a write is pending.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl StallGuard {
    fn new(inner: TcpStream, stall: Duration) -> Self {
        StallGuard {
            inner,
            stall,
            deadline: None,
        }
    }

    /// After a write-side poll: pending arms (or checks) the deadline, ready
    /// disarms it.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.deadline = None;
            return poll;
        }
        let stall = self.stall;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        ready!(deadline.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {} s", stall.as_secs()),
        )))
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}
