//! Reads taken together: while one round of reads runs, the requests that
//! arrive wait, and the next round answers all of them with one statement
//! each instead of one per request. No timer and no added wait when the
//! server is idle (a lone request starts its round at once), and no stale
//! answer ever: every round starts after the requests it answers arrived, so
//! it sees every commit they could have seen alone.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::{describe, Error, Result};

/// The most keys one round reads; more wait for the next.
const MAX_ROUND: usize = 256;

type Reply<V> = oneshot::Sender<Result<Arc<V>>>;

/// Callers waiting for a round, and whether one is running.
pub(super) struct Rounds<K, V> {
    state: Mutex<Waiting<K, V>>,
}

struct Waiting<K, V> {
    queue: Vec<(K, Reply<V>)>,
    running: bool,
}

impl<K, V> Default for Rounds<K, V> {
    fn default() -> Self {
        Rounds {
            state: Mutex::new(Waiting {
                queue: Vec::new(),
                running: false,
            }),
        }
    }
}

impl<K, V> Rounds<K, V>
where
    K: Clone + Eq + Hash + Send + 'static,
    V: Send + Sync + 'static,
{
    /// `key`'s answer from the next round; `read` answers one round's
    /// distinct keys, in their order. The rounds run on a task of their own,
    /// so a caller that goes away never strands the others.
    pub(super) async fn read<F, Fut>(self: &Arc<Self>, key: K, read: F) -> Result<Arc<V>>
    where
        F: Fn(Vec<K>) -> Fut + Send + 'static,
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
                "a round of reads ended without an answer"
            )))
        })
    }

    /// Runs rounds until nobody waits.
    async fn run<F, Fut>(&self, read: F)
    where
        F: Fn(Vec<K>) -> Fut,
        Fut: Future<Output = Result<Vec<V>>>,
    {
        loop {
            let waiting = {
                let mut state = self.state.lock().expect("rounds lock");
                if state.queue.is_empty() {
                    state.running = false;
                    return;
                }
                let take = state.queue.len().min(MAX_ROUND);
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
            match read(distinct).await {
                Ok(values) => {
                    let values: Vec<Arc<V>> = values.into_iter().map(Arc::new).collect();
                    for (key, reply) in waiting {
                        let value = values.get(index[&key]).cloned().ok_or_else(|| {
                            Error::Internal(anyhow::anyhow!("a round answered too few keys"))
                        });
                        let _ = reply.send(value);
                    }
                }
                Err(error) => {
                    // Every waiter hears the round's failure; only one can
                    // have the error itself.
                    let reason = match &error {
                        Error::Unavailable { reason, .. } => Some(*reason),
                        _ => None,
                    };
                    let text = describe(&error);
                    let mut first = Some(error);
                    for (_, reply) in waiting {
                        let error = first.take().unwrap_or_else(|| match reason {
                            Some(reason) => Error::Unavailable {
                                reason,
                                cause: None,
                            },
                            None => Error::Internal(anyhow::anyhow!("{text}")),
                        });
                        let _ = reply.send(Err(error));
                    }
                }
            }
        }
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
