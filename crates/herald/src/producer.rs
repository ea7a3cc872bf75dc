//! The public producer: `send`, `flush`, `close`, and the handle a send
//! returns.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::accumulator::{AppendAt, Placement};
use crate::batch::{Callback, Completion, PendingRecord, RECORD_OVERHEAD};
use crate::config::ProducerConfig;
use crate::delivery::DeliveryFuture;
use crate::driver;
use crate::error::Error;
use crate::metadata::ClusterMetadata;
use crate::partitioner::{DefaultPartitioner, Partitioner};
use crate::record::{estimated_size, Record, RecordMetadata};
use crate::state::{Shared, TaskGuard};

/// Holds a count up while alive (a `send` waiting for memory).
struct CountGuard<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> CountGuard<'a> {
    fn new(c: &'a std::sync::atomic::AtomicUsize) -> Self {
        c.fetch_add(1, Ordering::Relaxed);
        CountGuard(c)
    }
}

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Holds `flushing` up while a `flush` runs.
struct FlushGuard<'a>(&'a Shared);

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        self.0.lock().flushing -= 1;
    }
}

/// Ends the producer's tasks once the last clone is dropped: what is
/// buffered is still delivered (within `delivery.timeout.ms`), then the
/// tasks exit. Nothing blocks in `drop`.
struct Handle {
    shared: Arc<Shared>,
    /// The partitioner is the built-in one (`Producer::new`): `send` can
    /// then place a record under the one lock it takes anyway.
    builtin_partitioner: bool,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_waiters();
    }
}

/// An asynchronous Kafka producer. Cheap to clone; share it between tasks
/// and threads. Must be created inside a tokio runtime (which runs its
/// tasks and must outlive it); `send` may then be called from anywhere.
///
/// ```no_run
/// # async fn demo() -> Result<(), herald::Error> {
/// use herald::{Producer, ProducerConfig, Record};
/// let producer = Producer::new(ProducerConfig::new("localhost:9092"))?;
/// let md = producer.send(Record::new("topic1", "Hello Kafka")).await?.await?;
/// println!("{}[{}]@{}", md.topic, md.partition, md.offset);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field(
                "bootstrap_servers",
                &self.handle.shared.config.bootstrap_servers,
            )
            .finish()
    }
}

/// How long `close` waits, past its timeout, for the producer's tasks to
/// fail what they hold and stop.
const ABORT_GRACE: Duration = Duration::from_millis(250);

/// Why a call on a closed producer fails.
fn closed_error(st: &crate::state::State) -> Error {
    if st.dead {
        Shared::dead_error()
    } else {
        Error::Closed("send after close".into())
    }
}

/// Where a record goes: the partition chosen (checked against the
/// topic's count) or, for `None`, the sticky partition.
fn placement(topic: &str, chosen: Option<i32>, partitions: usize) -> Result<Placement, Error> {
    match chosen {
        Some(p) if p < 0 || p as usize >= partitions => Err(Error::InvalidPartition {
            topic: topic.to_string(),
            partition: p,
            partitions,
        }),
        Some(p) => Ok(Placement::Partition(p)),
        None => Ok(Placement::Sticky),
    }
}

/// What `Producer::append` needs besides the record.
struct Appending {
    placement: Placement,
    partitions: usize,
    size: usize,
    timestamp: i64,
    /// The time if already read (after a wait); otherwise read only if the
    /// record starts a batch.
    now: Option<Instant>,
}

/// The wall clock in milliseconds since the Unix epoch, the one clock read
/// of a `send` (a record's default timestamp). Whole seconds and their
/// milliseconds: `as_millis` goes through 128-bit arithmetic.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64 * 1000 + i64::from(d.subsec_millis()))
        .unwrap_or(0)
}

impl Producer {
    /// Validate the config and start the background task.
    pub fn new(config: ProducerConfig) -> Result<Producer, Error> {
        let ignore_keys = config.partitioner_ignore_keys;
        Self::start(config, Arc::new(DefaultPartitioner { ignore_keys }), true)
    }

    /// Like [`Producer::new`], with a custom partitioner.
    pub fn with_partitioner(
        config: ProducerConfig,
        partitioner: Arc<dyn Partitioner>,
    ) -> Result<Producer, Error> {
        Self::start(config, partitioner, false)
    }

    fn start(
        config: ProducerConfig,
        partitioner: Arc<dyn Partitioner>,
        builtin_partitioner: bool,
    ) -> Result<Producer, Error> {
        config.validate()?;
        let rt = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::config(
                "runtime",
                "Producer::new must be called inside a tokio runtime; use BlockingProducer otherwise",
            )
        })?;
        let tls = crate::tls::connector(&config)?;
        let shared = Arc::new(Shared::with_security(config, partitioner, tls, rt.clone()));
        let guard = TaskGuard::new(shared.clone(), &mut shared.lock());
        rt.spawn(driver::run(shared.clone(), guard));
        Ok(Producer {
            handle: Arc::new(Handle {
                shared,
                builtin_partitioner,
            }),
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// The configuration in use.
    pub fn config(&self) -> &ProducerConfig {
        &self.shared().config
    }

    /// Buffer a record. Returns once it is in a batch, with a handle that
    /// resolves to its metadata or error. Fails at once (and the record is
    /// not sent) if the record is too large, the topic's metadata is not
    /// available within `max.block.ms`, the buffer stays full for
    /// `max.block.ms`, the partition does not exist, or the producer is closed.
    pub async fn send(&self, record: Record) -> Result<DeliveryFuture, Error> {
        let handle = self.enqueue(record, Completion::future).await?;
        Ok(handle.expect("an awaited record gets a handle"))
    }

    /// Buffer a record; `callback` gets its outcome. Callbacks of one
    /// partition run in send order, on the sender task of its broker: keep
    /// them short, since a slow one delays that broker's next requests
    /// (hand longer work to a channel). Blocking there on another record's
    /// outcome (`DeliveryFuture::wait`, `BlockingProducer`) returns
    /// `Error::Usage`. If this returns an error, the callback is not called.
    pub async fn send_with_callback<F>(&self, record: Record, callback: F) -> Result<(), Error>
    where
        F: FnOnce(Result<RecordMetadata, Error>) + Send + 'static,
    {
        let cb: Callback = Box::new(callback);
        self.enqueue(record, move || Completion::callback(cb))
            .await
            .map(drop)
    }

    /// Buffer `record`; `completion` makes its outcome's destination, and
    /// is called only once the record is sure to be buffered: a
    /// `Completion` answers even when dropped (the producer's tasks gone),
    /// and a `send` that fails must not also call the callback. Returns the
    /// record's handle if `completion` is `Completion::future`.
    async fn enqueue(
        &self,
        record: Record,
        completion: impl FnOnce() -> Completion,
    ) -> Result<Option<DeliveryFuture>, Error> {
        let shared = self.shared();
        let cfg = &shared.config;
        if let Some(ts) = record.timestamp.filter(|ts| *ts < 0) {
            // As the Java client's ProducerRecord refuses it.
            return Err(Error::InvalidRecord(format!(
                "timestamp {ts} is negative; a record's timestamp is milliseconds since the Unix \
                 epoch (or none, for the send time)"
            )));
        }
        let size = estimated_size(record.key.as_ref(), record.value.as_ref(), &record.headers);
        // What the record holds of `buffer.memory` while buffered.
        let memory = size + RECORD_OVERHEAD;
        if size + 61 > cfg.max_request_size {
            return Err(Error::RecordTooLarge {
                size,
                limit: cfg.max_request_size,
                key: "max.request.size",
            });
        }
        if memory > cfg.buffer_memory {
            return Err(Error::RecordTooLarge {
                size: memory,
                limit: cfg.buffer_memory,
                key: "buffer.memory",
            });
        }
        // The common case takes the state lock once and reads no clock but
        // the timestamp's: buffer memory is free, the topic's metadata is
        // known, and the partition is given or the built-in partitioner's
        // (its key hash is taken before the lock, its modulo under it).
        let builtin = self.handle.builtin_partitioner;
        let key_hash = match record.partition {
            None if builtin && !cfg.partitioner_ignore_keys => {
                record.key.as_deref().map(crate::partitioner::murmur2)
            }
            _ => None,
        };
        if (builtin || record.partition.is_some()) && self.try_take_memory(memory) {
            let timestamp = record.timestamp.unwrap_or_else(now_ms);
            let st = shared.lock();
            let refused = if st.closing {
                Some(closed_error(&st))
            } else {
                st.pid_error.clone()
            };
            if let Some(e) = refused {
                return Err(self.refuse(st, memory, e));
            }
            if let Some(partitions) = st.meta.partitions(&record.topic) {
                let chosen = match (record.partition, key_hash) {
                    (Some(p), _) => Some(p),
                    (None, Some(h)) => Some(crate::partitioner::partition_for_hash(h, partitions)),
                    (None, None) => None,
                };
                let at = match placement(&record.topic, chosen, partitions) {
                    Ok(placement) => Appending {
                        placement,
                        partitions,
                        size,
                        timestamp,
                        now: None,
                    },
                    Err(e) => return Err(self.refuse(st, memory, e)),
                };
                return Ok(self.append(st, record, at, completion()));
            }
            // Not known yet: wait for it below, without holding memory.
            drop(st);
            shared.memory.add_permits(memory);
        }
        let start = Instant::now();
        // The slow paths (waiting for metadata or for buffer memory) are
        // boxed futures, made only when needed: the common case then moves
        // no large future state around per record.
        let (partitions, waited_for_metadata) = match self.known_partitions(&record.topic)? {
            Some(n) => (n, false),
            None => {
                let (p, topic) = (self.clone(), record.topic.clone());
                self.slow_path(
                    async move { p.wait_for_partitions(&topic, start).await },
                    |_| {},
                )
                .await?
            }
        };
        let chosen = match record.partition {
            Some(p) => Some(p),
            None => shared.partitioner.partition(
                &record.topic,
                record.key.as_deref(),
                record.value.as_deref(),
                partitions,
            ),
        };
        let placement = placement(&record.topic, chosen, partitions)?;
        let waited = if self.try_take_memory(memory) {
            waited_for_metadata
        } else {
            let (p, back) = (self.clone(), self.clone());
            self.slow_path(
                async move { p.reserve_memory(memory, start).await },
                move |()| back.shared().memory.add_permits(memory),
            )
            .await?;
            true
        };
        // Taken after the waits, as the Java client takes it after its
        // metadata wait: the time the record was buffered.
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let st = shared.lock();
        if st.closing {
            let e = closed_error(&st);
            return Err(self.refuse(st, memory, e));
        }
        let at = Appending {
            placement,
            partitions,
            size,
            timestamp,
            now: waited.then(Instant::now),
        };
        Ok(self.append(st, record, at, completion()))
    }

    /// Append a record, holding the state lock and its memory: it is
    /// buffered from here on and its outcome is owed. Wakes a sender if
    /// one must hear of it; returns the record's handle for
    /// `Completion::future`.
    fn append(
        &self,
        mut st: std::sync::MutexGuard<'_, crate::state::State>,
        record: Record,
        a: Appending,
        completion: Completion,
    ) -> Option<DeliveryFuture> {
        let pending = PendingRecord {
            key: record.key,
            value: record.value,
            headers: record.headers,
            timestamp: a.timestamp,
            completion,
        };
        let crate::state::State { acc, meta, .. } = &mut *st;
        let (_, wake, handle) = acc.append(
            &record.topic,
            a.placement,
            a.partitions,
            pending,
            a.size,
            AppendAt {
                now: a.now,
                meta_generation: meta.generation,
                available: match a.placement {
                    Placement::Sticky => meta.available(&record.topic),
                    Placement::Partition(_) => &[],
                },
            },
        );
        drop(st);
        if wake {
            self.shared().wake.notify_waiters();
        }
        handle
    }

    /// A record is refused after its memory was taken: give it back (the
    /// lock released first) and return the error.
    fn refuse(
        &self,
        st: std::sync::MutexGuard<'_, crate::state::State>,
        memory: usize,
        e: Error,
    ) -> Error {
        drop(st);
        self.shared().memory.add_permits(memory);
        e
    }

    /// Take `memory` bytes of `buffer.memory` if they are free now.
    fn try_take_memory(&self, memory: usize) -> bool {
        match self.shared().memory.try_acquire_many(memory as u32) {
            Ok(p) => {
                p.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// Run a slow path of `send` (waiting for metadata or memory, with
    /// tokio's timers). Inside a tokio runtime it runs right here; outside
    /// one (a plain thread, another executor) it runs on the producer's
    /// own runtime and is awaited from here, so `send` works anywhere and
    /// the same way under load as without. (Checking for a runtime on
    /// every send instead cost an atomic on the runtime's shared handle
    /// per record: full-speed p50 latency went from 0.4 to 10 ms.)
    ///
    /// `undo` gives back what `wait` took if the caller stopped waiting
    /// (its `send` future was dropped) before receiving it.
    async fn slow_path<T: Send + 'static>(
        &self,
        wait: impl Future<Output = Result<T, Error>> + Send + 'static,
        undo: impl FnOnce(T) + Send + 'static,
    ) -> Result<T, Error> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Box::pin(wait).await;
        }
        let rt = &self.shared().runtime;
        if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread {
            // Nothing may be driving it from here: the wait could hang
            // past max.block.ms.
            return Err(Error::Usage(
                "Producer::send must be called from inside its current-thread tokio runtime \
                 (or create the producer on a multi-thread runtime)"
                    .into(),
            ));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        rt.spawn(async move {
            if let Err(Ok(taken)) = tx.send(wait.await) {
                undo(taken);
            }
        });
        rx.await.unwrap_or_else(|_| Err(Shared::dead_error()))
    }

    /// The topic's partition count if its metadata is known (no waiting).
    fn known_partitions(&self, topic: &str) -> Result<Option<usize>, Error> {
        let st = self.shared().lock();
        if st.closing {
            return Err(closed_error(&st));
        }
        if let Some(e) = &st.pid_error {
            return Err(e.clone());
        }
        Ok(st.meta.partitions(topic))
    }

    /// Take `size` bytes of `buffer.memory`, waiting up to what is left of
    /// `max.block.ms`.
    async fn reserve_memory(&self, size: usize, start: Instant) -> Result<(), Error> {
        let shared = self.shared();
        if let Ok(p) = shared.memory.try_acquire_many(size as u32) {
            p.forget();
            return Ok(());
        }
        // Full: say so to the senders, which then stop lingering. The guard
        // takes it back even if this future is dropped while waiting.
        let waiting = CountGuard::new(&shared.memory_waiters);
        shared.wake.notify_waiters();
        let left = shared.config.max_block.saturating_sub(start.elapsed());
        let r = tokio::time::timeout(left, shared.memory.acquire_many(size as u32)).await;
        drop(waiting);
        match r {
            Ok(Ok(p)) => {
                p.forget();
                Ok(())
            }
            Ok(Err(_)) => Err(closed_error(&shared.lock())),
            Err(_) => Err(Error::BufferExhausted {
                needed: size,
                buffer_memory: shared.config.buffer_memory,
                waited: start.elapsed(),
            }),
        }
    }

    /// The topic's partition count, waiting up to `max.block.ms` for
    /// metadata, and whether it had to wait.
    async fn wait_for_partitions(
        &self,
        topic: &str,
        start: Instant,
    ) -> Result<(usize, bool), Error> {
        let shared = self.shared();
        let deadline = start + shared.config.max_block;
        let mut waited = false;
        // A name Kafka can never accept fails now (the Java client waits
        // for the broker's INVALID_TOPIC_EXCEPTION).
        crate::metadata::check_topic_name(topic).map_err(Error::InvalidRecord)?;
        loop {
            let changed = shared.metadata_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut st = shared.lock();
                if st.closing {
                    return Err(closed_error(&st));
                }
                if let Some(n) = st.meta.partitions(topic) {
                    return Ok((n, waited));
                }
                // An untrusted certificate or a bad credential fails the
                // same way every time: say so now, not after max.block.ms.
                if let Some(e) = &st.meta.security_error {
                    return Err(e.clone());
                }
                // Errors no wait can fix (not authorized, an invalid name)
                // fail now, as in the Java client.
                if let Some(e) = st.meta.fatal_topic_error(topic) {
                    return Err(e);
                }
                if Instant::now() >= deadline {
                    return Err(Error::MetadataTimeout {
                        topic: topic.to_string(),
                        waited: start.elapsed(),
                        topic_error: st.meta.cluster.topics.get(topic).and_then(|t| t.error),
                        last_error: st.meta.last_error.clone().map(Box::new),
                    });
                }
                if let Some(e) = &st.pid_error {
                    return Err(e.clone());
                }
                // Ask for it until the last waiter gives up.
                st.meta.touched.insert(topic.to_string(), Instant::now());
                let until = st.meta.wanted.entry(topic.to_string()).or_insert(deadline);
                if *until < deadline {
                    *until = deadline;
                }
                st.meta.refresh_requested = true;
            }
            shared.wake.notify_waiters();
            let _ = tokio::time::timeout_at(deadline.into(), changed).await;
            waited = true;
        }
    }

    /// Wait until every record sent before this call has an outcome.
    /// Batches go out without waiting for `linger.ms` meanwhile.
    pub async fn flush(&self) {
        let shared = self.shared();
        let mark = {
            let mut st = shared.lock();
            st.flushing += 1;
            st.acc.seal_all()
        };
        // Undo `flushing` even if this future is dropped mid-way.
        let _flushing = FlushGuard(shared);
        shared.wake.notify_waiters();
        loop {
            let progress = shared.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            let done = {
                let st = shared.lock();
                // Dead: what the tasks held was failed as they went.
                st.dead || !st.acc.has_incomplete_below(mark)
            };
            if done {
                break;
            }
            progress.await;
        }
    }

    /// Stop accepting records, deliver what is buffered for up to
    /// `timeout`, then fail what is left with [`Error::Closed`] and stop the
    /// producer's tasks. Returns an error saying how many batches were
    /// failed, if any. Other clones of this producer are closed too.
    pub async fn close(&self, timeout: Duration) -> Result<(), Error> {
        let shared = self.shared();
        let deadline = Instant::now() + timeout;
        {
            let mut st = shared.lock();
            st.closing = true;
            st.flushing += 1;
            st.acc.seal_all();
        }
        shared.wake.notify_waiters();
        // Sends waiting for a topic's metadata fail now, not at their
        // max.block.ms.
        shared.metadata_changed.notify_waiters();
        let mut left = 0;
        let mut stuck = 0;
        loop {
            let progress = shared.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            let wait_until = {
                let mut st = shared.lock();
                let now = Instant::now();
                if st.tasks == 0 {
                    break;
                }
                if !st.aborting && now >= deadline {
                    left = st.acc.incomplete_count();
                    st.aborting = true;
                    drop(st);
                    shared.wake.notify_waiters();
                    continue;
                }
                if st.aborting && now >= deadline + ABORT_GRACE {
                    // A task that cannot stop (a callback that blocks, a
                    // runtime that is not polled) must not hold close past
                    // its timeout; it fails what it holds when it gets to.
                    stuck = st.tasks;
                    break;
                }
                if st.aborting {
                    deadline.max(now) + ABORT_GRACE
                } else {
                    deadline
                }
            };
            let _ = tokio::time::timeout_at(wait_until.into(), progress).await;
        }
        shared.memory.close();
        if shared.lock().dead {
            return Err(Shared::dead_error());
        }
        if left > 0 || stuck > 0 {
            return Err(Error::Closed(format!(
                "{left} batches were not delivered within the close timeout of {} ms and were failed{}",
                timeout.as_millis(),
                if stuck > 0 {
                    format!("; {stuck} producer tasks had not stopped yet")
                } else {
                    String::new()
                }
            )));
        }
        Ok(())
    }

    /// Fetch cluster metadata now (all topics, or just `topics`), from the
    /// first bootstrap or known broker that answers.
    pub async fn fetch_metadata(
        &self,
        topics: Option<&[String]>,
    ) -> Result<ClusterMetadata, Error> {
        let shared = self.shared();
        let addrs = shared.config.bootstrap_servers.clone();
        // Never asks the broker to create a topic: looking must not make it.
        let (resp, addr) = driver::fetch_metadata(&shared.pool, &addrs, topics, false).await?;
        let mut m = crate::metadata::Metadata::new();
        m.update(&resp, &addr, Instant::now())?;
        Ok(m.cluster)
    }

    /// Counters since the producer started (requests, retries, outcomes).
    pub fn stats(&self) -> crate::ProducerStats {
        self.shared().counters.snapshot()
    }

    /// Background tasks still running (the driver and one per broker).
    /// Zero after `close`.
    pub fn running_tasks(&self) -> usize {
        self.shared().lock().tasks
    }
}
