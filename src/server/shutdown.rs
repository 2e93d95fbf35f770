//! Shutdown is a type: every task holds a [`Shutdown`] and selects on it; the server knows all
//! connections are done when every [`DoneGuard`] is dropped.
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// A receiver of the one "stop now" signal.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes once shutdown has been triggered (at once if it already was).
    pub async fn triggered(&mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// A handle that can start the shutdown from anywhere (a signal task, the PHP thread).
#[derive(Clone)]
pub struct Trigger {
    tx: Arc<watch::Sender<bool>>,
}

impl Trigger {
    pub fn fire(&self) {
        self.tx.send_replace(true);
    }

    pub async fn fired(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Held by each connection task; dropped when the task ends.
#[derive(Clone)]
pub struct DoneGuard {
    _tx: mpsc::Sender<()>,
}

/// The owner's side: triggers shutdown and waits for every guard to go.
pub struct Coordinator {
    trigger: Arc<watch::Sender<bool>>,
    done_tx: Option<mpsc::Sender<()>>,
    done_rx: mpsc::Receiver<()>,
}

impl Coordinator {
    pub fn new() -> Coordinator {
        let (trigger, _) = watch::channel(false);
        let (done_tx, done_rx) = mpsc::channel(1);
        Coordinator {
            trigger: Arc::new(trigger),
            done_tx: Some(done_tx),
            done_rx,
        }
    }

    pub fn shutdown(&self) -> Shutdown {
        Shutdown {
            rx: self.trigger.subscribe(),
        }
    }

    pub fn guard(&self) -> DoneGuard {
        DoneGuard {
            _tx: self
                .done_tx
                .clone()
                .expect("guards are handed out before draining"),
        }
    }

    pub fn trigger_handle(&self) -> Trigger {
        Trigger {
            tx: self.trigger.clone(),
        }
    }

    pub fn trigger(&self) {
        self.trigger.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.trigger.borrow()
    }

    /// Waits until every guard is dropped. Call after `trigger`.
    pub async fn drained(&mut self) {
        self.done_tx.take();
        let _ = self.done_rx.recv().await;
    }
}

impl Default for Coordinator {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn drained_waits_for_every_guard() {
        let mut coordinator = Coordinator::new();
        let mut shutdown = coordinator.shutdown();
        let guard = coordinator.guard();
        let task = tokio::spawn(async move {
            shutdown.triggered().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(guard);
        });
        coordinator.trigger();
        tokio::time::timeout(Duration::from_secs(2), coordinator.drained())
            .await
            .expect("drained after the guard was dropped");
        task.await.unwrap();
    }
}
