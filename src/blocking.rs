//! CPU-heavy work (parsing feeds, cleaning pages) off the async reactor, with a bounded
//! queue: tokio's blocking pool queues without limit, so a burst of pages would otherwise
//! pile up in memory. A caller waits for a slot before its work is queued.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Blocking jobs queued or running at once, per blocking thread.
pub const QUEUED_PER_THREAD: usize = 2;

/// The work panicked; the panic's message is kept.
#[derive(Debug, thiserror::Error)]
#[error("the work stopped unexpectedly: {0}")]
pub struct Crashed(String);

impl Crashed {
    /// What a failed task's join says: its panic message, or that it was cancelled.
    pub fn from_join(e: &tokio::task::JoinError) -> Crashed {
        Crashed(e.to_string())
    }
}

/// A handle to the bounded blocking queue; cheap to clone.
#[derive(Clone)]
pub struct Blocking {
    slots: Arc<Semaphore>,
}

impl Blocking {
    /// At most `threads * QUEUED_PER_THREAD` jobs queued or running.
    pub fn new(threads: usize) -> Blocking {
        Blocking {
            slots: Arc::new(Semaphore::new(threads.max(1) * QUEUED_PER_THREAD)),
        }
    }

    /// Runs `f` on the blocking pool once a slot is free.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Crashed>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let _permit = self
            .slots
            .acquire()
            .await
            .expect("the blocking semaphore is never closed");
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Crashed::from_join(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_an_error_not_a_lost_result() {
        let b = Blocking::new(1);
        let err = b
            .run(|| -> u8 { panic!("boom") })
            .await
            .expect_err("a panic is reported");
        assert!(err.to_string().contains("boom"), "{err}");
        assert_eq!(b.run(|| 7).await.expect("runs"), 7);
    }

    #[tokio::test]
    async fn no_more_jobs_are_queued_than_there_are_slots() {
        let b = Blocking::new(1);
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = std::sync::Arc::new(std::sync::Mutex::new(held));
        let mut running = Vec::new();
        for _ in 0..QUEUED_PER_THREAD {
            let (b, held) = (b.clone(), held.clone());
            running.push(tokio::spawn(async move {
                b.run(move || {
                    let _ = held.lock().map(|h| h.recv());
                })
                .await
            }));
        }
        // Wait until the slots are taken, then one more job waits for a slot.
        while b.slots.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let extra = tokio::time::timeout(std::time::Duration::from_millis(50), b.run(|| ())).await;
        assert!(extra.is_err(), "a full queue makes the caller wait");
        for _ in 0..QUEUED_PER_THREAD {
            release.send(()).expect("send");
        }
        for r in running {
            r.await.expect("join").expect("ran");
        }
    }
}
