//! Single-flight: clients asking for the same spec share one build task. Each client holds a
//! [`Ticket`]; when the last ticket of a flight is dropped (every client gone) the task is
//! aborted, which drops the HTTP call to Velox.
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// Flights in progress, by key. `T` is the build's result, shared by every waiter.
pub struct Flights<T> {
    map: Arc<Mutex<HashMap<String, Flight<T>>>>,
}

struct Flight<T> {
    /// Tells a finished flight from a newer one under the same key.
    id: u64,
    waiters: usize,
    result: watch::Receiver<Option<T>>,
    abort: AbortHandle,
}

/// One client's place in a flight.
pub struct Ticket<T> {
    key: String,
    id: u64,
    result: watch::Receiver<Option<T>>,
    map: Arc<Mutex<HashMap<String, Flight<T>>>>,
    /// This ticket started the flight (the others joined it).
    pub leader: bool,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Flights {
            map: Arc::default(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    /// Joins the flight for `key`, or starts one running `work` in a spawned task.
    /// Must be called inside a tokio runtime.
    pub fn join<F>(&self, key: &str, work: impl FnOnce() -> F) -> Ticket<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let mut map = lock(&self.map);
        if let Some(flight) = map.get_mut(key) {
            flight.waiters += 1;
            return Ticket {
                key: key.to_string(),
                id: flight.id,
                result: flight.result.clone(),
                map: self.map.clone(),
                leader: false,
            };
        }
        let id = next_id();
        let (tx, rx) = watch::channel(None);
        let done = Done {
            map: self.map.clone(),
            key: key.to_string(),
            id,
        };
        let future = work();
        let task = tokio::spawn(async move {
            let value = future.await;
            // Out of the map first: a client arriving from now on starts afresh (and may hit
            // the cache) instead of reading a finished flight.
            drop(done);
            let _ = tx.send(Some(value));
        });
        map.insert(
            key.to_string(),
            Flight {
                id,
                waiters: 1,
                result: rx.clone(),
                abort: task.abort_handle(),
            },
        );
        Ticket {
            key: key.to_string(),
            id,
            result: rx,
            map: self.map.clone(),
            leader: true,
        }
    }

    /// Flights in progress.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone> Ticket<T> {
    /// The flight's result; `None` if its task died without one (a panic).
    pub async fn wait(&mut self) -> Option<T> {
        match self.result.wait_for(Option::is_some).await {
            Ok(value) => value.clone(),
            Err(_) => None,
        }
    }
}

impl<T> Drop for Ticket<T> {
    fn drop(&mut self) {
        let mut map = lock(&self.map);
        let Some(flight) = map.get_mut(&self.key) else {
            return;
        };
        if flight.id != self.id {
            return;
        }
        flight.waiters -= 1;
        if flight.waiters == 0 {
            let gone = map.remove(&self.key);
            // Unlocked first: the aborted task's own clean-up takes this lock.
            drop(map);
            if let Some(flight) = gone {
                flight.abort.abort();
            }
        }
    }
}

/// Removes a flight from the map when its task ends, whether it finished or was aborted.
struct Done<T> {
    map: Arc<Mutex<HashMap<String, Flight<T>>>>,
    key: String,
    id: u64,
}

impl<T> Drop for Done<T> {
    fn drop(&mut self) {
        let mut map = lock(&self.map);
        if map.get(&self.key).is_some_and(|f| f.id == self.id) {
            map.remove(&self.key);
        }
    }
}

fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn lock<K>(map: &Mutex<K>) -> MutexGuard<'_, K> {
    // Every change under this lock is a single map operation: a poisoned map is still sound.
    map.lock().unwrap_or_else(|poison| poison.into_inner())
}
