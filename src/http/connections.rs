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
//!   of file descriptors. One client address holds at most
//!   `max_connections_per_address` of them; past that its new connections are
//!   closed at once, so that it cannot hold every place.
//! - Shutdown stops accepting, lets what is in flight finish for at most
//!   `shutdown` and then drops whatever is left.
//!
//! HTTP/1.1 only: every client of a package repository speaks it, and hyper's
//! head deadline is an HTTP/1 feature (`axum::serve` also offered HTTP/2 over
//! clear text, which no package manager uses).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
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

use super::limits::counted_address;
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
    raise_open_file_limit(limits.max_connections);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = PerAddress::new(limits.max_connections_per_address);
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
        // One client may not hold every connection: past its share, a new
        // one is closed at once (before a byte is read).
        let Some(share) = per_address.take(peer) else {
            tracing::debug!(peer = %peer, "closed a connection past the per-address limit");
            continue;
        };
        // Answers go out whole (hyper writes head and body together), so
        // Nagle's algorithm only delays the last segment of a kept-alive
        // connection.
        let _ = tcp.set_nodelay(true);
        let service = router.clone();
        let stopping = stopping.clone();
        connections.spawn(async move {
            serve_connection(tcp, peer, service, limits, stopping).await;
            drop((permit, share));
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

/// File descriptors a server needs beside its connections: the database
/// pool, package files being read or written, the listener, logs.
const OTHER_FILES: u64 = 256;

/// Raises the process's soft open-file limit to its hard one, which services
/// often start far below (1024 under systemd), so that `max_connections`
/// connections and the files they read fit; says so when they still do not.
fn raise_open_file_limit(max_connections: usize) {
    #[cfg(unix)]
    {
        let needed = max_connections as u64 + OTHER_FILES;
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct
        // passed, which lives on this stack frame.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return;
        }
        if limit.rlim_cur < needed && limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max.min(needed.max(limit.rlim_cur)),
                rlim_max: limit.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit = raised;
            }
        }
        if limit.rlim_cur < needed {
            tracing::warn!(
                open_files = limit.rlim_cur,
                max_connections,
                "the open-file limit is too low for --max-connections: raise `ulimit -n` (LimitNOFILE= under systemd) or lower --max-connections"
            );
        }
    }
}

/// How many connections each client address (an IPv6 client's /64) holds.
struct PerAddress {
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in its address's count, given back when dropped.
struct Share {
    address: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerAddress {
    /// At most `limit` connections per address; 0 for no limit.
    fn new(limit: usize) -> Self {
        PerAddress {
            limit: if limit == 0 { usize::MAX } else { limit },
            open: Arc::default(),
        }
    }

    /// A place for a connection from `peer`, or `None` past the limit.
    fn take(&self, peer: SocketAddr) -> Option<Share> {
        let address = counted_address(peer.ip());
        // Each change is one insert or removal: a poisoned lock left nothing
        // half done.
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(address).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Share {
            address,
            open: self.open.clone(),
        })
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
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
