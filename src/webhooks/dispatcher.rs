//! Delivering the outbox. Every `promoter serve` process runs one dispatcher; they
//! share the work through the database, so any of them may deliver any event.
//!
//! An attempt is claimed by moving the event's due time forward by a lease
//! (`LEASE`): no other process attempts it meanwhile, and if this process dies
//! mid-attempt the lease lapses and the event is attempted again, by whichever
//! process comes first. An attempt takes at most `ATTEMPT_TIMEOUT`, well inside
//! the lease, so one event is never attempted twice at the same time. Hence
//! delivery is at least once: a receiver deduplicates by `X-Promoter-Delivery`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::Rng;
use reqwest::header::CONTENT_TYPE;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::{event, targets, Settings};
use crate::error::{describe, root_cause, Result};
use crate::store::{
    self, AfterAttempt, AttemptRecord, ClaimedEvent, Db, DeliveryTarget, PromotionRecord, Store,
};

/// A receiver that has not answered by then has failed this attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claim keeps other processes off an event.
const LEASE: Duration = Duration::from_secs(30);
/// An attempt ends this long before its claim lapses, whatever delayed its start.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// Retries go on for at least this long after the promotion.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);
/// Attempts in flight to one webhook from this process: a slow receiver uses
/// its own share and never holds up another's deliveries.
pub const PER_WEBHOOK: usize = 8;
/// Notifications closer together than this are answered with one look.
const COALESCE: Duration = Duration::from_millis(20);
/// When an event is due but another process's claim holds it, look again after this.
const HELD_ELSEWHERE: Duration = Duration::from_millis(250);
/// The most of a response body read (and then dropped).
const RESPONSE_CAP: usize = 4096;
/// The most of an error's text kept with an attempt.
const ERROR_CHARS: usize = 500;
/// On shutdown, how long attempts in flight may finish.
const DRAIN: Duration = Duration::from_secs(12);

/// PostgreSQL's channel, notified by the outbox trigger.
const CHANNEL: &str = "promoter_webhook_events";

/// Starts this process's dispatcher; it stops when `shutdown` turns true (or
/// its sender is dropped), after the attempts in flight finish.
pub fn spawn(
    store: Store,
    settings: Settings,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let client = reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would connect on our behalf to addresses the resolver never saw.
        .no_proxy()
        .dns_resolver(Arc::new(targets::PublicOnly {
            allow_private: settings.allow_private,
            allowed_by: targets::AllowedBy::Server,
        }))
        .user_agent(concat!("Promoter-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the webhook client's settings are valid");
    let dispatcher = Dispatcher {
        wake: store
            .promotions_committed()
            .unwrap_or_else(|| Arc::new(Notify::new())),
        store,
        client,
        settings,
        in_flight: JoinSet::new(),
        tasks: HashMap::new(),
        busy: HashMap::new(),
    };
    tokio::spawn(dispatcher.run(shutdown))
}

struct Dispatcher {
    store: Store,
    client: reqwest::Client,
    settings: Settings,
    /// Rung when events may be waiting.
    wake: Arc<Notify>,
    /// Attempts in flight, and the webhook each is for (by task, so that a
    /// task that panicked still gives its webhook's share back).
    in_flight: JoinSet<()>,
    tasks: HashMap<tokio::task::Id, i64>,
    /// Attempts in flight per webhook.
    busy: HashMap<i64, usize>,
}

impl Dispatcher {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let listener = match self.store.db() {
            Db::Postgres(pool) => {
                let wake = self.wake.clone();
                // Whatever is heard, look: a loss may have hidden events.
                Some(tokio::spawn(store::listen(
                    pool.clone(),
                    CHANNEL,
                    move || wake.notify_one(),
                )))
            }
            Db::Sqlite(..) => None,
        };
        while !stopping(&shutdown) {
            let pause = match self.round(&shutdown).await {
                Ok(pause) => pause,
                Err(error) => {
                    tracing::warn!(error = %describe(&error), "webhook dispatcher could not read the outbox");
                    self.settings.poll
                }
            };
            tokio::select! {
                _ = shutdown.changed() => {}
                () = tokio::time::sleep(pause) => {}
                () = self.wake.notified() => tokio::time::sleep(COALESCE).await,
                Some(done) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => {
                    self.finished(done);
                }
            }
        }
        if let Some(listener) = listener {
            listener.abort();
        }
        // Attempts still unfinished then keep their claims and are retried
        // when those lapse.
        let _ = tokio::time::timeout(DRAIN, async {
            while self.in_flight.join_next().await.is_some() {}
        })
        .await;
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let task = match done {
            Ok((task, ())) => task,
            Err(error) => {
                tracing::error!(error = %error, "a webhook attempt failed unexpectedly; its claim lapses and it is retried");
                error.id()
            }
        };
        if let Some(webhook) = self.tasks.remove(&task) {
            if let Some(count) = self.busy.get_mut(&webhook) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.busy.remove(&webhook);
                }
            }
        }
    }

    /// Claims and starts what is due, and says how long to wait before looking
    /// again (unless woken sooner). Reads first: a write (a claim) is only made
    /// for a webhook with an event due.
    async fn round(&mut self, shutdown: &watch::Receiver<bool>) -> Result<Duration> {
        while let Some(done) = self.in_flight.try_join_next_with_id() {
            self.finished(done);
        }
        let mut wait = self.settings.poll;
        for target in self.store.delivery_targets().await? {
            if stopping(shutdown) {
                break;
            }
            let free = PER_WEBHOOK.saturating_sub(self.busy.get(&target.id).copied().unwrap_or(0));
            if free == 0 {
                // A finishing attempt wakes the loop.
                continue;
            }
            let Some(due_in) = self.store.next_due_in(target.id).await? else {
                continue;
            };
            if due_in > 0 {
                wait = wait.min(Duration::from_millis(due_in as u64));
                continue;
            }
            // Taken before the claim, so the deadline falls before the lease's end.
            let deadline = Instant::now() + LEASE - LEASE_MARGIN;
            let claimed = self
                .store
                .claim_events(target.id, LEASE.as_millis() as i64, free as i64)
                .await?;
            wait = wait.min(match claimed.len() {
                0 => HELD_ELSEWHERE,
                // More may be due: look again at once.
                _ => COALESCE,
            });
            if !claimed.is_empty() {
                self.start(Arc::new(target), claimed, deadline).await?;
            }
        }
        Ok(wait.max(COALESCE))
    }

    async fn start(
        &mut self,
        target: Arc<DeliveryTarget>,
        claimed: Vec<ClaimedEvent>,
        deadline: Instant,
    ) -> Result<()> {
        let ids: Vec<i64> = claimed.iter().map(|event| event.promotion_id).collect();
        let records: HashMap<i64, PromotionRecord> = self
            .store
            .promotions_by_id(&ids)
            .await?
            .into_iter()
            .map(|record| (record.id, record))
            .collect();
        for event in claimed {
            // The foreign key keeps the row; without it the lease simply lapses.
            let Some(record) = records.get(&event.promotion_id).cloned() else {
                continue;
            };
            *self.busy.entry(target.id).or_default() += 1;
            let attempt = Attempt {
                store: self.store.clone(),
                client: self.client.clone(),
                allow_private: self.settings.allow_private,
                target: target.clone(),
                event,
                record,
                deadline,
            };
            let task = self.in_flight.spawn(attempt.run());
            self.tasks.insert(task.id(), target.id);
        }
        Ok(())
    }
}

fn stopping(shutdown: &watch::Receiver<bool>) -> bool {
    // A dropped sender means the server stopped.
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// One claimed event's attempt.
struct Attempt {
    store: Store,
    client: reqwest::Client,
    allow_private: bool,
    target: Arc<DeliveryTarget>,
    event: ClaimedEvent,
    record: PromotionRecord,
    /// When the attempt must be over: before the claim lapses and another
    /// process may start the next one.
    deadline: Instant,
}

impl Attempt {
    /// Makes the attempt and records it with what follows from it.
    async fn run(self) {
        let (webhook, delivery) = (self.target.id, &self.event.delivery_id);
        let budget = self
            .deadline
            .saturating_duration_since(Instant::now())
            .min(ATTEMPT_TIMEOUT);
        if budget < Duration::from_secs(1) {
            // Too late to finish inside the claim; it lapses and the event is retried.
            tracing::warn!(webhook, delivery = %delivery, "webhook attempt started too late; it is retried when its claim lapses");
            return;
        }
        let attempted_at = Utc::now();
        let started = Instant::now();
        let answer = tokio::time::timeout(budget, self.post())
            .await
            .unwrap_or_else(|_| Err(no_answer(budget)));
        let duration_ms = started.elapsed().as_millis() as i64;
        let (status_code, error) = match answer {
            Ok(status) => (Some(status), None),
            Err(error) => (None, Some(tidy(&error))),
        };
        let given_up_at = self.record.promoted_at
            + chrono::Duration::from_std(GIVE_UP_AFTER).expect("a day fits");
        let after = if status_code.is_some_and(|s| (200..300).contains(&s)) {
            AfterAttempt::Delivered
        } else if Utc::now() >= given_up_at {
            AfterAttempt::GiveUp
        } else {
            AfterAttempt::RetryIn(backoff(self.event.attempts))
        };
        let failure = error
            .clone()
            .or_else(|| status_code.map(|s| format!("HTTP {s}")));
        let attempt = self.event.attempts;
        let outcome = match after {
            AfterAttempt::Delivered => "delivered",
            AfterAttempt::RetryIn(_) => "retry",
            AfterAttempt::GiveUp => "given_up",
        };
        metrics::counter!(crate::metrics::WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
        match after {
            AfterAttempt::Delivered => {
                tracing::debug!(webhook, delivery = %delivery, attempt, "webhook delivered")
            }
            AfterAttempt::RetryIn(_) => tracing::info!(
                webhook, delivery = %delivery, attempt, failure = failure.as_deref().unwrap_or_default(),
                "webhook delivery failed; it will be retried"
            ),
            AfterAttempt::GiveUp => tracing::warn!(
                webhook, delivery = %delivery, attempt, failure = failure.as_deref().unwrap_or_default(),
                "webhook delivery failed for 24 hours; given up"
            ),
        }
        let record = AttemptRecord {
            event: &self.event,
            attempted_at,
            status_code,
            error,
            duration_ms,
            after,
        };
        if let Err(error) = self.store.record_attempt(&record).await {
            // The claim lapses and the event is attempted again.
            tracing::warn!(webhook, delivery = %delivery, error = %describe(&error),
                "could not record a webhook attempt");
        }
    }

    /// POSTs the event; the receiver's status, or why there was none.
    async fn post(&self) -> Result<u16, String> {
        let (target, event) = (&self.target, &self.event);
        let url = url::Url::parse(&target.url).map_err(|e| format!("the URL is not valid: {e}"))?;
        if let Some(refusal) =
            targets::refuse_literal(&url, self.allow_private, targets::AllowedBy::Server)
        {
            return Err(refusal);
        }
        let body = event::body(&event.delivery_id, &self.record);
        let signature = target.secret.sign(&body);
        let mut response = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header("X-Promoter-Event", "Promoted")
            .header("X-Promoter-Delivery", &event.delivery_id)
            .header("X-Promoter-Signature-256", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| explain(&e))?;
        let status = response.status().as_u16();
        // Read a little of the answer, so the connection can be reused; never more.
        let mut read = 0;
        while read < RESPONSE_CAP {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        Ok(status)
    }
}

fn no_answer(waited: Duration) -> String {
    format!("no answer within {} s", waited.as_secs_f64().round())
}

/// An error's text as it is kept: one line, no control characters, bounded.
fn tidy(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(ERROR_CHARS)
        .collect()
}

/// Why a request failed, without its URL (whose path or query may be secret).
fn explain(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return no_answer(ATTEMPT_TIMEOUT);
    }
    let prefix = if error.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    // The innermost cause says what happened ("Connection refused (os error
    // 111)"); the layers above it each only restate that a connection failed.
    match std::error::Error::source(error) {
        Some(cause) => format!("{prefix}: {}", root_cause(cause)),
        None => prefix.to_owned(),
    }
}

/// How long to wait after failed attempt number `attempt` (from 1): 1 s, 2 s,
/// 4 s, … doubling up to an hour, each scaled by a random 50–100 % so that
/// events that failed together do not all return together.
pub fn backoff(attempt: i32) -> Duration {
    let exponent = attempt.clamp(1, 13) - 1;
    let base = Duration::from_secs(1 << exponent).min(MAX_BACKOFF);
    base.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_start_within_seconds_and_level_off_at_an_hour() {
        for _ in 0..100 {
            let first = backoff(1);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
            let third = backoff(3);
            assert!(third >= Duration::from_secs(2) && third <= Duration::from_secs(4));
            assert!(backoff(40) <= MAX_BACKOFF && backoff(40) >= MAX_BACKOFF / 2);
        }
    }

    #[test]
    fn kept_errors_are_one_bounded_line() {
        assert_eq!(tidy("refused\n\0by peer"), "refused  by peer");
        assert_eq!(tidy(&"x".repeat(2000)).len(), ERROR_CHARS);
    }
}
