//! Rate limits (OWASP API4), each off unless set: requests per second per
//! client address, requests per second per API key, and failed authentications
//! per minute per client address, which is the one on by default (60) because
//! it only ever slows down someone guessing keys: an address over it gets 429
//! for unknown keys, while known keys from it keep working. Over a limit:
//! `429` with `Retry-After` and a one-sentence body. IPv6 clients are counted
//! by their /64.
//!
//! The client address is the connection's peer: behind a reverse proxy that is
//! the proxy, so per-address limits then belong in the proxy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::Error;

/// The limits, as set (`None`: off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    pub per_address: Option<NonZeroU32>,
    pub per_key: Option<NonZeroU32>,
    pub auth_failures_per_address: Option<NonZeroU32>,
}

/// How many client addresses are remembered as blocked at most: past it the
/// oldest blocks are forgotten rather than memory growing with an attack.
const MAX_BLOCKED: usize = 100_000;

/// The limiters of one server.
#[derive(Clone, Default)]
pub struct Limiters {
    per_address: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    per_key: Option<Arc<DefaultKeyedRateLimiter<i64>>>,
    auth_failures: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    /// Addresses that failed to authenticate too often, and until when.
    blocked: Arc<Mutex<HashMap<IpAddr, Instant>>>,
}

tokio::task_local! {
    /// The address of the client whose request this task is serving.
    static CLIENT: IpAddr;
}

impl Limiters {
    pub fn new(limits: RateLimits) -> Self {
        fn keyed<K: Clone + std::hash::Hash + Eq>(
            quota: Option<Quota>,
        ) -> Option<Arc<DefaultKeyedRateLimiter<K>>> {
            quota.map(|quota| Arc::new(DefaultKeyedRateLimiter::keyed(quota)))
        }
        Limiters {
            per_address: keyed(limits.per_address.map(Quota::per_second)),
            per_key: keyed(limits.per_key.map(Quota::per_second)),
            auth_failures: keyed(limits.auth_failures_per_address.map(Quota::per_minute)),
            blocked: Arc::default(),
        }
    }

    /// Drops the state of clients not seen lately; run every minute or so.
    pub fn forget_idle(&self) {
        tidy(&self.per_address);
        tidy(&self.per_key);
        tidy(&self.auth_failures);
        let now = Instant::now();
        self.blocked().retain(|_, until| *until > now);
    }

    /// The blocked addresses. A panic while they were held left nothing half
    /// done (each change is one insert or removal), so a poisoned lock is used.
    fn blocked(&self) -> MutexGuard<'_, HashMap<IpAddr, Instant>> {
        self.blocked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses a key that has used up its requests per second.
    pub fn check_key(&self, key_id: i64) -> Result<(), Error> {
        match &self.per_key {
            Some(limiter) => check(limiter, &key_id, "with this API key"),
            None => Ok(()),
        }
    }

    /// Refuses a client whose address failed to authenticate too often lately.
    fn check_not_blocked(&self) -> Result<(), Error> {
        let Some(client) = client() else {
            return Ok(());
        };
        let blocked = self.blocked();
        match blocked.get(&client) {
            Some(until) if *until > Instant::now() => Err(too_many(
                "failed authentications from this address",
                *until - Instant::now(),
            )),
            _ => Ok(()),
        }
    }

    /// Authenticates `key` under the limits: a blocked address is refused
    /// before the key is looked at; an unknown key counts against its address;
    /// a known key against its own limit.
    pub async fn authenticate(
        &self,
        store: &crate::store::Store,
        key: Option<&crate::auth::ApiKey>,
    ) -> Result<crate::auth::Principal, Error> {
        match crate::auth::authenticate(store, key).await {
            Ok(principal) => {
                self.check_key(principal.key_id)?;
                Ok(principal)
            }
            Err(Error::Forbidden) if key.is_some() => Err(self.refused()),
            Err(error) => Err(error),
        }
    }

    /// The answer to a failed authentication: 403, or 429 while (or once) its
    /// address has failed too often. Known keys are never held up by this:
    /// clients sharing an address with a guesser (behind a proxy or a NAT)
    /// keep working.
    pub fn refused(&self) -> Error {
        if let Err(blocked) = self.check_not_blocked() {
            return blocked;
        }
        self.authentication_failed().unwrap_or(Error::Forbidden)
    }

    /// Counts a failed authentication from this request's address; past the
    /// limit the address is blocked until the limit allows it again, and this
    /// answer is already a 429.
    fn authentication_failed(&self) -> Option<Error> {
        let (Some(limiter), Some(client)) = (&self.auth_failures, client()) else {
            return None;
        };
        let not_until = limiter.check_key(&client).err()?;
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let mut blocked = self.blocked();
        if blocked.len() >= MAX_BLOCKED {
            blocked.clear();
        }
        blocked.insert(client, Instant::now() + wait);
        Some(too_many("failed authentications from this address", wait))
    }
}

/// The middleware: notes the client's address for the limits checked later,
/// and applies the per-address limit.
pub async fn limit_by_address(
    State(limiters): State<Limiters>,
    request: Request,
    next: Next,
) -> Response {
    // Served without the peer's address (not by `promoter serve`): no
    // per-address limits.
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .copied()
    else {
        return next.run(request).await;
    };
    let client = counted_address(peer.ip());
    if let Some(limiter) = &limiters.per_address {
        if let Err(error) = check(limiter, &client, "from this address") {
            return error.into_response();
        }
    }
    CLIENT.scope(client, next.run(request)).await
}

/// Forgets the clients a limiter has not seen lately, and the memory they took.
fn tidy<K: Clone + std::hash::Hash + Eq>(limiter: &Option<Arc<DefaultKeyedRateLimiter<K>>>) {
    if let Some(limiter) = limiter {
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

fn client() -> Option<IpAddr> {
    CLIENT.try_with(|client| *client).ok()
}

/// What the per-address limits count by: an IPv4 address, or an IPv6
/// address's /64 (one subscriber's whole prefix, which a single client can
/// roam at will).
pub(crate) fn counted_address(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

fn check<K: Clone + std::hash::Hash + Eq>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    what: &'static str,
) -> Result<(), Error> {
    limiter.check_key(key).map_err(|not_until| {
        too_many(
            what,
            not_until.wait_time_from(DefaultClock::default().now()),
        )
    })
}

fn too_many(what: &'static str, wait: Duration) -> Error {
    Error::TooManyRequests {
        what,
        // Whole seconds, rounded up: a client that waits that long gets in.
        retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(counted_address(a), counted_address(b));
        assert_eq!(
            counted_address(a),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(counted_address(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(counted_address(mapped), v4);
    }
}
