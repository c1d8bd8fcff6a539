//! The delivery stage from outside: one [`Worker`](crate::outbox::Worker) per configured
//! sink, started, stopped and replaced as the config changes, and the wake-ups the ingest
//! stage pokes when it stored rows for a sink. What a worker does inside a round (claim,
//! deliver, retry decision, ack) is `outbox`'s.
//!
//! A worker is stopped by cancelling its token and waiting for its task to end: the round
//! it is in finishes and is recorded first. So no claim is given up while its delivery may
//! still be on the wire; claims are only voided at start-up, when no worker runs yet.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, SinkKind};
use crate::outbox::{RetryPolicy, Worker};
use crate::sinks::Sink;
use crate::sinks::log::LogSink;
use crate::store::Store;
use crate::telemetry::Metrics;

/// The wake-up of each running sink, shared with the stages that store rows.
#[derive(Clone, Default)]
pub struct Wakes(Arc<RwLock<HashMap<String, Arc<Notify>>>>);

impl Wakes {
    /// Wakes the workers of `sinks` (names without a running worker are skipped).
    pub fn wake(&self, sinks: &[String]) {
        if sinks.is_empty() {
            return;
        }
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        for s in sinks {
            if let Some(w) = map.get(s) {
                w.notify_one();
            }
        }
    }

    fn set(&self, name: &str, wake: Option<Arc<Notify>>) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        match wake {
            Some(w) => map.insert(name.to_string(), w),
            None => map.remove(name),
        };
    }
}

/// One sink's running worker.
struct Running {
    /// The settings it was started with; a reload that changes them replaces the worker.
    settings: config::Sink,
    user_agent: String,
    stop: CancellationToken,
    task: JoinHandle<()>,
    /// A log sink's file, reopened on reload.
    log: Option<Arc<LogSink>>,
}

/// The delivery workers, one per sink.
pub struct Deliveries {
    store: Store,
    metrics: Arc<Metrics>,
    wakes: Wakes,
    running: HashMap<String, Running>,
}

impl Deliveries {
    /// Starts a worker for every sink of `config`.
    pub fn start(
        config: &Config,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Deliveries> {
        let mut d = Deliveries {
            store,
            metrics,
            wakes: Wakes::default(),
            running: HashMap::new(),
        };
        for sink in config.sinks.values() {
            d.spawn(sink, &config.daemon.user_agent)?;
        }
        Ok(d)
    }

    pub fn wakes(&self) -> Wakes {
        self.wakes.clone()
    }

    /// Names of the sinks with a worker.
    pub fn sinks(&self) -> Vec<String> {
        let mut names: Vec<String> = self.running.keys().cloned().collect();
        names.sort();
        names
    }

    fn spawn(&mut self, sink: &config::Sink, user_agent: &str) -> anyhow::Result<()> {
        let name = &sink.name;
        let (sink_impl, policy, log): (Arc<dyn Sink>, RetryPolicy, Option<Arc<LogSink>>) =
            match &sink.kind {
                SinkKind::Log { path } => {
                    let log = Arc::new(
                        LogSink::new(path.clone())
                            .with_context(|| format!("sink {name}: cannot open its log file"))?,
                    );
                    (log.clone(), RetryPolicy::forever(), Some(log))
                }
                SinkKind::Webhook(_)
                | SinkKind::Preset(_)
                | SinkKind::Nats(_)
                | SinkKind::Amqp(_) => {
                    let (sink, policy) = crate::sinks::build(sink, user_agent)
                        .with_context(|| format!("sink {name}"))?;
                    (sink, policy, None)
                }
            };
        let wake = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let worker = Worker {
            name: name.clone(),
            sink: sink_impl,
            store: self.store.clone(),
            policy,
            probe_interval: sink.probe_interval,
            wake: wake.clone(),
            metrics: self.metrics.clone(),
        };
        let task = tokio::spawn(worker.run(stop.clone()));
        self.wakes.set(name, Some(wake.clone()));
        // Rows may already wait (stored before a restart or a reload).
        wake.notify_one();
        self.running.insert(
            name.clone(),
            Running {
                settings: sink.clone(),
                user_agent: user_agent.to_string(),
                stop,
                task,
                log,
            },
        );
        Ok(())
    }

    /// Stops one worker and waits until its round is recorded.
    async fn stop_one(&mut self, name: &str) {
        if let Some(r) = self.running.remove(name) {
            self.wakes.set(name, None);
            r.stop.cancel();
            if let Err(e) = r.task.await {
                tracing::error!(sink = %name, error = %e, "a delivery worker stopped unexpectedly");
            }
            // After the worker's last round, which may still have set it.
            self.metrics.forget_sink(name);
        }
    }

    /// Makes the workers match `config`: removed sinks stopped, new ones started, changed
    /// ones replaced (the old worker finishes its round first), unchanged ones kept (a log
    /// sink reopens its file). A sink that reads a secret, header or template file is
    /// replaced on every reload, so that a rotated secret or an edited template takes effect. A sink that cannot start is reported and left out; the others
    /// go on.
    pub async fn reconfigure(&mut self, config: &Config) -> Vec<String> {
        let mut problems = Vec::new();
        let user_agent = &config.daemon.user_agent;
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            let keep = config.sinks.get(&name).is_some_and(|s| {
                self.running
                    .get(&name)
                    .is_some_and(|r| r.settings == *s && r.user_agent == *user_agent)
                    && !s.reads_files()
            });
            if keep {
                if let Some(log) = self.running.get(&name).and_then(|r| r.log.as_ref())
                    && let Err(e) = log.reopen()
                {
                    problems.push(format!("sink {name}: cannot reopen its log file: {e}"));
                }
                continue;
            }
            self.stop_one(&name).await;
        }
        for sink in config.sinks.values() {
            if !self.running.contains_key(&sink.name)
                && let Err(e) = self.spawn(sink, user_agent)
            {
                problems.push(format!("{e:#}"));
            }
        }
        problems
    }

    /// Stops every worker, each after its current round; gives up waiting after `grace`
    /// (rows still claimed are delivered again after the next start).
    pub async fn stop(mut self, grace: std::time::Duration) -> bool {
        for r in self.running.values() {
            r.stop.cancel();
        }
        let names: Vec<String> = self.running.keys().cloned().collect();
        tokio::time::timeout(grace, async {
            for name in names {
                self.stop_one(&name).await;
            }
        })
        .await
        .is_ok()
    }
}

impl Deliveries {
    /// Ends delivery: for `once` (`wait` set), first waits up to that long until the
    /// configured sinks have nothing pending; then stops every worker within `grace`.
    /// Returns the rows still pending for `once` (0 otherwise).
    pub async fn finish(
        self,
        wait: Option<std::time::Duration>,
        grace: std::time::Duration,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<i64> {
        let (reader, sinks) = (self.store.reader(), self.sinks());
        let mut pending = match wait {
            Some(timeout) => wait_for_deliveries(&reader, &sinks, timeout, shutdown).await?,
            None => 0,
        };
        if !self.stop(grace).await {
            tracing::warn!("deliveries still in flight at shutdown stay queued for the next start");
        }
        if pending > 0 {
            // What the workers delivered while they stopped.
            pending = reader.pending(&sinks).await?;
        }
        Ok(pending)
    }
}

/// How often `once` looks whether its deliveries are done.
const DELIVERY_CHECK: std::time::Duration = std::time::Duration::from_millis(50);

/// Waits up to `timeout` until no row of `sinks` is pending; returns how many still are.
async fn wait_for_deliveries(
    reader: &crate::store::Reader,
    sinks: &[String],
    timeout: std::time::Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<i64> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let pending = reader.pending(sinks).await?;
        if pending == 0 || shutdown.is_cancelled() || tokio::time::Instant::now() >= deadline {
            return Ok(pending);
        }
        tokio::select! {
            _ = tokio::time::sleep(DELIVERY_CHECK) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}
