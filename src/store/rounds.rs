//! Requests taken together: while one round runs, the requests that arrive
//! wait, and the next round answers all of them with one statement each
//! instead of one per request. No timer and no added wait when the server is
//! idle (a lone request starts its round at once), and no stale answer ever:
//! every round starts after the requests it answers arrived, so it sees every
//! commit they could have seen alone. Metadata reads (`native`) and single
//! promotions (`promotions::group`, group commit) run in rounds.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use tokio::sync::oneshot;

use crate::error::{describe, Error, Result};

/// The most keys one round takes unless set; more wait for the next.
const MAX_ROUND: usize = 256;

type Reply<V> = oneshot::Sender<Result<Arc<V>>>;

/// Callers waiting for a round, and whether one is running.
pub(super) struct Rounds<K, V> {
    state: Mutex<Waiting<K, V>>,
    /// The most keys one round takes.
    max: usize,
}

struct Waiting<K, V> {
    queue: Vec<(K, Reply<V>)>,
    running: bool,
}

impl<K, V> Default for Rounds<K, V> {
    fn default() -> Self {
        Rounds::with_max(MAX_ROUND)
    }
}

impl<K, V> Rounds<K, V> {
    /// Rounds of at most `max` keys (at least one).
    pub(super) fn with_max(max: usize) -> Self {
        Rounds {
            state: Mutex::new(Waiting {
                queue: Vec::new(),
                running: false,
            }),
            max: max.max(1),
        }
    }
}

impl<K, V> Rounds<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// `key`'s answer from the next round; `read` answers one round's
    /// distinct keys, in their order. The rounds run on a task of their own,
    /// so a caller that goes away never strands the others.
    pub(super) async fn read<F, Fut>(self: &Arc<Self>, key: K, read: F) -> Result<Arc<V>>
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<V>>> + Send,
    {
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut state = self.state.lock().expect("rounds lock");
            state.queue.push((key, reply));
            !std::mem::replace(&mut state.running, true)
        };
        if lead {
            let rounds = self.clone();
            tokio::spawn(async move { rounds.run(read).await });
        }
        answer.await.unwrap_or_else(|_| {
            Err(Error::Internal(anyhow::anyhow!(
                "a round ended without an answer"
            )))
        })
    }

    /// Runs rounds until nobody waits.
    async fn run<F, Fut>(&self, read: F)
    where
        F: Fn(Vec<K>) -> Fut,
        Fut: Future<Output = Result<Vec<V>>>,
    {
        // However else this task ends (a panic, the runtime shutting down),
        // the next caller starts rounds again and nobody queued waits forever.
        let mut reset = Reset {
            rounds: self,
            armed: true,
        };
        loop {
            let waiting = {
                let mut state = self.state.lock().expect("rounds lock");
                if state.queue.is_empty() {
                    state.running = false;
                    // From here on a new caller may lead rounds of its own:
                    // nothing of theirs is this task's to touch.
                    reset.armed = false;
                    return;
                }
                let take = state.queue.len().min(self.max);
                state.queue.drain(..take).collect::<Vec<_>>()
            };
            let mut distinct: Vec<K> = Vec::new();
            let mut index: HashMap<K, usize> = HashMap::new();
            for (key, _) in &waiting {
                index.entry(key.clone()).or_insert_with(|| {
                    distinct.push(key.clone());
                    distinct.len() - 1
                });
            }
            let answers: Vec<Result<Arc<V>>> =
                match caught(&read, distinct.clone()).await {
                    Ok(values) if values.len() == distinct.len() => {
                        values.into_iter().map(|v| Ok(Arc::new(v))).collect()
                    }
                    Ok(_) => distinct.iter().map(|_| Err(too_few())).collect(),
                    // One key that cannot be read (a name the database refuses)
                    // must fail only its own requests: each key again on its own.
                    Err(_) if distinct.len() > 1 => {
                        let mut answers = Vec::with_capacity(distinct.len());
                        for key in &distinct {
                            let one = caught(&read, vec![key.clone()]).await;
                            answers.push(one.and_then(|mut values| {
                                values.pop().map(Arc::new).ok_or_else(too_few)
                            }));
                        }
                        answers
                    }
                    Err(error) => vec![Err(error)],
                };
            let mut answers: Vec<Answer<V>> = answers.into_iter().map(Answer::from).collect();
            for (key, reply) in waiting {
                let _ = reply.send(answers[index[&key]].next());
            }
        }
    }
}

/// One key's answer, for each of its waiters in turn.
enum Answer<V> {
    Value(Arc<V>),
    /// Only one waiter can have the error itself; the others a copy.
    Failed(Option<Error>, Copy),
}

impl<V> From<Result<Arc<V>>> for Answer<V> {
    fn from(answer: Result<Arc<V>>) -> Self {
        match answer {
            Ok(value) => Answer::Value(value),
            Err(error) => {
                let copy = Copy::of(&error);
                Answer::Failed(Some(error), copy)
            }
        }
    }
}

impl<V> Answer<V> {
    fn next(&mut self) -> Result<Arc<V>> {
        match self {
            Answer::Value(value) => Ok(value.clone()),
            Answer::Failed(first, copy) => Err(first.take().unwrap_or_else(|| copy.error())),
        }
    }
}

/// A round's read, with a panic turned into an error.
async fn caught<K, V, F, Fut>(read: &F, keys: Vec<K>) -> Result<Vec<V>>
where
    F: Fn(Vec<K>) -> Fut,
    Fut: Future<Output = Result<Vec<V>>>,
{
    std::panic::AssertUnwindSafe(read(keys))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(Error::Internal(anyhow::anyhow!("a round panicked"))))
}

fn too_few() -> Error {
    Error::Internal(anyhow::anyhow!("a round answered too few keys"))
}

/// What a waiter hears of an error another waiter of the same key has.
struct Copy {
    unavailable: Option<&'static str>,
    text: String,
}

impl Copy {
    fn of(error: &Error) -> Copy {
        Copy {
            unavailable: match error {
                Error::Unavailable { reason, .. } => Some(*reason),
                _ => None,
            },
            text: describe(error),
        }
    }

    fn error(&self) -> Error {
        match self.unavailable {
            Some(reason) => Error::Unavailable {
                reason,
                cause: None,
            },
            None => Error::Internal(anyhow::anyhow!("{}", self.text)),
        }
    }
}

/// Marks the rounds idle and fails whoever still waits, when the task
/// running them ends in any way but its own return (which disarms it).
struct Reset<'a, K, V> {
    rounds: &'a Rounds<K, V>,
    armed: bool,
}

impl<K, V> Drop for Reset<'_, K, V> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut state = match self.rounds.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        state.running = false;
        // Dropping their senders answers them (an error, never a hang).
        state.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reads_share_rounds_and_each_gets_its_own_answer() {
        let rounds: Arc<Rounds<u32, u32>> = Arc::default();
        let rounds_run = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let rounds = rounds.clone();
            let counter = rounds_run.clone();
            tasks.push(tokio::spawn(async move {
                rounds
                    .read(i % 50, move |keys: Vec<u32>| {
                        let counter = counter.clone();
                        async move {
                            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                            Ok(keys.iter().map(|k| k * 10).collect())
                        }
                    })
                    .await
                    .map(|v| (i, *v))
            }));
        }
        for task in tasks {
            let (i, value) = task.await.unwrap().unwrap();
            assert_eq!(value, (i % 50) * 10);
        }
        // Far fewer rounds than reads.
        assert!(rounds_run.load(std::sync::atomic::Ordering::SeqCst) < 100);
        // Idle again: a lone read starts a round at once.
        let lone = rounds
            .read(7, |keys: Vec<u32>| async move { Ok(keys) })
            .await;
        assert_eq!(*lone.unwrap(), 7);
    }

    /// Reads that fail for key 13 and panic for key 66.
    async fn picky(keys: Vec<u32>) -> Result<Vec<u32>> {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        if keys.contains(&66) {
            panic!("a bug");
        }
        if keys.contains(&13) {
            return Err(Error::invalid("13 cannot be read"));
        }
        Ok(keys)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_key_fails_only_its_own_requests_and_a_panic_strands_nobody() {
        let rounds: Arc<Rounds<u32, u32>> = Arc::default();
        let mut tasks = Vec::new();
        for i in 0..60u32 {
            let rounds = rounds.clone();
            let key = if i % 10 == 0 { 13 } else { i };
            tasks.push(tokio::spawn(
                async move { (key, rounds.read(key, picky).await) },
            ));
        }
        for task in tasks {
            let (key, answer) = task.await.unwrap();
            match answer {
                Ok(value) => assert_eq!(*value, key),
                Err(error) => assert_eq!(key, 13, "{error}"),
            }
        }
        let panicked = rounds.read(66, picky).await;
        assert!(panicked.is_err());
        // The rounds go on.
        assert_eq!(*rounds.read(5, picky).await.unwrap(), 5);
    }

    /// Callers arriving just as a task ends its last round are answered by
    /// the next task, never dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn callers_arriving_as_rounds_end_are_answered() {
        let rounds: Arc<Rounds<u32, u32>> = Arc::default();
        let mut tasks = Vec::new();
        for i in 0..8u32 {
            let rounds = rounds.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..3_000u32 {
                    let key = i * 10_000 + n;
                    let answer = rounds
                        .read(key, |keys: Vec<u32>| async move { Ok(keys) })
                        .await;
                    assert_eq!(*answer.unwrap(), key);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_failed_round_fails_each_waiter() {
        let rounds: Arc<Rounds<u32, u32>> = Arc::default();
        let failed = rounds
            .read(1, |_keys: Vec<u32>| async move {
                Err(Error::Unavailable {
                    reason: "it is not accepting connections",
                    cause: None,
                })
            })
            .await;
        assert!(matches!(failed, Err(Error::Unavailable { .. })));
    }
}
