//! What `send`, the senders and the background task share.
//!
//! One mutex guards the accumulator, the metadata cache and the producer id,
//! because their decisions are made together (a drain needs leaders and the
//! producer id; a retry needs the queue and the metadata). It is never held
//! across an `.await`, and outcomes are delivered after it is released.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, Semaphore};

use crate::accumulator::{Accumulator, Limits};
use crate::batch::ProducerBatch;
use crate::config::ProducerConfig;
use crate::connection::Pool;
use crate::delivery::{deliver, Outcomes};
use crate::error::{Error, TopicPartition};
use crate::idempotence::PidState;
use crate::metadata::Metadata;
use crate::partitioner::Partitioner;

/// Guarded by `Shared::state`.
#[derive(Debug)]
pub(crate) struct State {
    pub acc: Accumulator,
    pub meta: Metadata,
    pub pid: PidState,
    /// No new records; deliver what is left, then the tasks end.
    pub closing: bool,
    /// Fail everything left now (close timeout passed).
    pub aborting: bool,
    /// `flush` calls in progress: batches go out without lingering.
    pub flushing: usize,
    /// Brokers with a running sender task.
    pub senders: HashSet<i32>,
    /// Live background tasks, for `close` and tests.
    pub tasks: usize,
    /// A background task ended without being asked to (its runtime shut
    /// down, or it panicked): nothing can be delivered any more. Set with
    /// `aborting`, so the other tasks fail what they hold and stop.
    pub dead: bool,
    /// InitProducerId was refused for good (CLUSTER_AUTHORIZATION_FAILED):
    /// every record fails with it, at once, as in the Java client.
    pub pid_error: Option<Error>,
}

/// Counters since the producer started, as returned by
/// [`crate::Producer::stats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerStats {
    /// Produce requests written to a broker.
    pub requests: u64,
    /// Batches that came back with a retriable error and were queued again.
    pub batch_retries: u64,
    /// Records acknowledged by a broker.
    pub records_delivered: u64,
    /// Records that failed (fatal error, timeout or close).
    pub records_failed: u64,
    /// Producer ids obtained (1 with idempotence and no resets).
    pub producer_ids: u64,
    /// Batches split in two after MESSAGE_TOO_LARGE.
    pub batch_splits: u64,
    /// Partitions that started over under a new epoch of the producer id
    /// (after a batch was given up or the broker lost its state), with no
    /// request (KIP-360).
    pub epoch_bumps: u64,
    /// Milliseconds of throttling the brokers asked for (KIP-219).
    pub throttled_ms: u64,
}

/// Lock-free counters behind [`ProducerStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub batch_retries: AtomicU64,
    pub records_delivered: AtomicU64,
    pub records_failed: AtomicU64,
    pub producer_ids: AtomicU64,
    pub batch_splits: AtomicU64,
    pub epoch_bumps: AtomicU64,
    pub throttled_ms: AtomicU64,
}

impl Counters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ProducerStats {
        ProducerStats {
            requests: self.requests.load(Ordering::Relaxed),
            batch_retries: self.batch_retries.load(Ordering::Relaxed),
            records_delivered: self.records_delivered.load(Ordering::Relaxed),
            records_failed: self.records_failed.load(Ordering::Relaxed),
            producer_ids: self.producer_ids.load(Ordering::Relaxed),
            batch_splits: self.batch_splits.load(Ordering::Relaxed),
            epoch_bumps: self.epoch_bumps.load(Ordering::Relaxed),
            throttled_ms: self.throttled_ms.load(Ordering::Relaxed),
        }
    }
}

impl State {
    /// The producer's current identity is now `id`, a later epoch of the
    /// same producer id (see `idempotence`).
    pub(crate) fn epoch_bumped(
        &mut self,
        id: crate::record_batch::ProducerIdentity,
        counters: &Counters,
    ) {
        tracing::debug!(producer_id = id.id, epoch = id.epoch, "epoch bumped");
        Counters::add(&counters.epoch_bumps, 1);
        self.pid = PidState::Ready(id);
    }

    /// Move the current identity to the next epoch now, or ask for a new
    /// producer id once the epochs are used up.
    pub(crate) fn bump_epoch(&mut self, counters: &Counters) {
        if let PidState::Ready(cur) = self.pid {
            match cur.epoch.checked_add(1) {
                Some(epoch) => self.epoch_bumped(
                    crate::record_batch::ProducerIdentity { id: cur.id, epoch },
                    counters,
                ),
                None => self.request_new_pid(),
            }
        }
    }

    /// Get a new producer id before numbering more batches (the broker
    /// fenced our epoch, or the epochs are used up); each partition moves
    /// to it once nothing of it is in flight or unsure. No-op without
    /// idempotence.
    pub(crate) fn request_new_pid(&mut self) {
        if self.pid != PidState::Disabled {
            self.pid = PidState::NeedsId;
        }
    }
}

/// The producer's shared core.
pub(crate) struct Shared {
    pub config: ProducerConfig,
    pub state: Mutex<State>,
    /// Wakes the senders and the background task.
    pub wake: Notify,
    /// Metadata was updated (or a refresh failed): `send` re-checks.
    pub metadata_changed: Notify,
    /// A batch finished or a task ended: `flush` and `close` re-check.
    pub progress: Notify,
    /// `buffer.memory`, in bytes.
    pub memory: Semaphore,
    /// Sends waiting for memory: all batches are then sent without lingering.
    pub memory_waiters: AtomicUsize,
    pub pool: Pool,
    /// The runtime that runs the producer's tasks (`send`'s slow paths run
    /// there when called outside a runtime).
    pub runtime: tokio::runtime::Handle,
    pub partitioner: Arc<dyn Partitioner>,
    pub counters: Counters,
}

impl Shared {
    #[cfg(test)]
    pub(crate) fn new(config: ProducerConfig, partitioner: Arc<dyn Partitioner>) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a test runtime");
        Self::with_security(config, partitioner, None, rt.handle().clone())
    }

    /// The shared state; `tls` is the connector for `security.protocol`
    /// SSL (built, and its files read, by `Producer::new`); the SASL
    /// settings come from `config`.
    pub(crate) fn with_security(
        config: ProducerConfig,
        partitioner: Arc<dyn Partitioner>,
        tls: Option<tokio_rustls::TlsConnector>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        let idempotent = config.idempotence();
        let limits = Limits {
            batch_size: config.batch_size,
            linger: config.linger,
            max_request_size: config.max_request_size,
            max_in_flight: config.max_in_flight,
        };
        let pool = Pool::new(
            &config.client_id,
            config.connection_setup_timeout,
            config.request_timeout,
            (config.reconnect_backoff, config.reconnect_backoff_max),
            tls,
            config.sasl().unwrap_or_default(),
        );
        Self {
            state: Mutex::new(State {
                acc: Accumulator::new(limits),
                meta: Metadata::new(),
                pid: if idempotent {
                    PidState::NeedsId
                } else {
                    PidState::Disabled
                },
                closing: false,
                aborting: false,
                flushing: 0,
                senders: HashSet::new(),
                tasks: 0,
                dead: false,
                pid_error: None,
            }),
            wake: Notify::new(),
            metadata_changed: Notify::new(),
            progress: Notify::new(),
            memory: Semaphore::new(config.buffer_memory),
            memory_waiters: AtomicUsize::new(0),
            pool,
            runtime,
            partitioner,
            counters: Counters::default(),
            config,
        }
    }

    /// The state. A task that panicked while holding the lock (a bug) must
    /// not make every later call panic too: the lock is taken anyway, and
    /// the dying task's `TaskGuard` marks the producer dead, so nothing
    /// relies on what the panic may have left half done.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The error for any call on a producer whose tasks are gone.
    pub(crate) fn dead_error() -> Error {
        Error::Closed(crate::batch::TASKS_GONE.into())
    }

    pub(crate) fn memory_pressure(&self) -> bool {
        self.memory_waiters.load(Ordering::Relaxed) > 0
    }

    /// Deliver outcomes (no lock held), then mark the batches finished and
    /// give their memory back. Finishing after delivering is what keeps a
    /// partition's outcomes in send order (see `accumulator`).
    pub(crate) fn complete(&self, outcomes: Outcomes, finished: Vec<Finished>) {
        let (failed, delivered) = outcomes
            .iter()
            .map(|d| d.counts())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        Counters::add(&self.counters.records_failed, failed);
        Counters::add(&self.counters.records_delivered, delivered);
        deliver(outcomes);
        if finished.is_empty() {
            return;
        }
        let mut memory = 0;
        {
            let mut st = self.lock();
            for f in &finished {
                st.acc.finish(&f.tp, f.id);
                memory += f.memory;
            }
        }
        self.memory.add_permits(memory);
        self.progress.notify_waiters();
        self.wake.notify_waiters();
    }
}

/// A batch whose outcomes are decided: what `Shared::complete` needs after
/// the records were handed their outcomes.
#[derive(Debug)]
pub(crate) struct Finished {
    pub tp: TopicPartition,
    pub id: u64,
    pub memory: usize,
}

impl Finished {
    /// Fail every record of the batch with `err` (marked
    /// [`Error::OutcomeUnknown`] if the batch may have been written).
    pub(crate) fn fail(b: ProducerBatch, err: Error, outcomes: &mut Outcomes) -> Finished {
        let err = Error::for_batch(err, &b.tp, b.unsure);
        let f = Finished {
            tp: b.tp.clone(),
            id: b.id,
            memory: b.memory,
        };
        b.fail(err, outcomes);
        f
    }

    /// Succeed every record of the batch.
    pub(crate) fn succeed(
        b: ProducerBatch,
        base_offset: i64,
        log_append_time: i64,
        outcomes: &mut Outcomes,
    ) -> Finished {
        let f = Finished {
            tp: b.tp.clone(),
            id: b.id,
            memory: b.memory,
        };
        b.succeed(base_offset, log_append_time, outcomes);
        f
    }
}

/// Held by each background task (the driver, every sender) for as long as
/// it runs. When the task ends without saying it is done (`finished`),
/// its future was dropped: the runtime that ran it shut down, or it
/// panicked. Then the producer is dead: everything still queued fails now
/// (what the task held fails as its batches are dropped), waiters
/// are woken, and every later call fails at once instead of hanging.
pub(crate) struct TaskGuard {
    shared: Arc<Shared>,
    finished: bool,
}

impl TaskGuard {
    /// Count a task that is about to be spawned (`st` is `shared`'s state,
    /// locked by the caller).
    pub(crate) fn new(shared: Arc<Shared>, st: &mut State) -> Self {
        st.tasks += 1;
        TaskGuard {
            shared,
            finished: false,
        }
    }

    /// For a task already counted in `State::tasks` (under the lock,
    /// before it was released to spawn the task).
    pub(crate) fn counted(shared: Arc<Shared>) -> Self {
        TaskGuard {
            shared,
            finished: false,
        }
    }

    /// The task ends as asked (closed, or its broker is no longer needed).
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        let shared = &self.shared;
        let mut outcomes = Vec::new();
        let mut finished = Vec::new();
        {
            let mut st = shared.lock();
            st.tasks -= 1;
            if !self.finished && !st.dead {
                tracing::error!(
                    panicking = std::thread::panicking(),
                    "a producer task ended unexpectedly; failing every record"
                );
                st.dead = true;
                st.aborting = true;
                st.closing = true;
            }
            if st.dead {
                for b in st.acc.take_all() {
                    finished.push(Finished::fail(b, Shared::dead_error(), &mut outcomes));
                }
            }
        }
        if !outcomes.is_empty() || !finished.is_empty() {
            shared.complete(outcomes, finished);
        }
        if shared.lock().dead {
            shared.memory.close();
        }
        shared.progress.notify_waiters();
        shared.metadata_changed.notify_waiters();
        shared.wake.notify_waiters();
    }
}
