//! A background task that deletes expired records periodically.
//!
//! Unlike the cleanup task of some peers, it never dies on an error: each
//! failure is logged with `tracing` and the next tick tries again. It stops
//! when [`Pruner::shutdown`] is awaited or the handle is dropped.

use crate::Store;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Handle of a running prune task. Dropping it stops the task.
#[derive(Debug)]
pub struct Pruner {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// Starts a task that calls [`Store::delete_expired`] every `interval`
/// (the first call after one interval). Must be called inside a tokio runtime.
pub fn spawn(store: Arc<dyn Store>, interval: Duration) -> Pruner {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let interval = interval.max(Duration::from_millis(1));
        loop {
            // Waits one interval after the previous prune ended, or stops
            // (a stop signal, or the `Pruner` dropped) at once.
            let next = tokio::time::Instant::now() + interval;
            if tokio::time::timeout_at(next, stopped.changed())
                .await
                .is_ok()
            {
                break;
            }
            match store.delete_expired().await {
                Ok(n) => tracing::debug!(deleted = n, "pruned expired sessions"),
                Err(err) => tracing::warn!(error = %err, source = ?std::error::Error::source(&err),
                    "pruning expired sessions failed; will retry"),
            }
        }
    });
    Pruner {
        stop,
        task: Some(task),
    }
}

impl Pruner {
    /// Stops the task and waits until it has finished (an in-flight prune
    /// completes first).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Pruner {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The prune task of a store, shared by the store's clones: any clone can
/// stop it, and it stops when the last clone is dropped.
#[derive(Debug, Clone, Default)]
pub struct SharedPruner(Arc<Mutex<Option<Pruner>>>);

impl SharedPruner {
    /// A task calling `store.delete_expired()` every `interval` ([`spawn`]);
    /// `None`: no task. Must be called inside a tokio runtime.
    pub fn start(store: Arc<dyn Store>, interval: Option<Duration>) -> Self {
        SharedPruner(Arc::new(Mutex::new(
            interval.map(|every| spawn(store, every)),
        )))
    }

    /// Stops the task, waiting for a prune in progress to finish. Does
    /// nothing when no task runs.
    pub async fn stop(&self) {
        let task = self.slot().take();
        if let Some(task) = task {
            task.shutdown().await;
            tracing::debug!("prune task stopped");
        }
    }

    /// Whether the task is running.
    pub fn is_running(&self) -> bool {
        self.slot().is_some()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Pruner>> {
        // A panic while holding the lock cannot leave the Option half-written.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;
    use crate::{Capabilities, Error, Record, Result, SessionId, WriteOutcome};
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Notify;

    /// Fails the first two prunes, then succeeds.
    #[derive(Default)]
    struct Flaky {
        calls: AtomicUsize,
        third: Notify,
    }

    #[async_trait]
    impl Store for Flaky {
        async fn load(&self, _: &SessionId) -> Result<Option<Record>> {
            Ok(None)
        }
        async fn create(&self, _: &Record) -> Result<()> {
            Ok(())
        }
        async fn save(&self, _: &Record) -> Result<WriteOutcome> {
            Ok(WriteOutcome::Gone)
        }
        async fn touch(&self, _: &SessionId, _: Option<Timestamp>) -> Result<WriteOutcome> {
            Ok(WriteOutcome::Gone)
        }
        async fn destroy(&self, _: &SessionId) -> Result<()> {
            Ok(())
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::ALL
        }
        async fn delete_expired(&self) -> Result<u64> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                return Err(Error::unavailable("prune", "connection refused"));
            }
            self.third.notify_one();
            Ok(0)
        }
    }

    #[tokio::test]
    async fn keeps_running_after_errors_and_stops_cleanly() {
        let store = Arc::new(Flaky::default());
        let pruner = spawn(store.clone(), Duration::from_millis(5));
        store.third.notified().await;
        pruner.shutdown().await;
        let after = store.calls.load(Ordering::SeqCst);
        assert!(after >= 3);
        tokio::task::yield_now().await;
        assert_eq!(store.calls.load(Ordering::SeqCst), after, "still running");
    }
}
