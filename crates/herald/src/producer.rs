//! The public producer: `send`, `flush`, `close`, and the handle a send
//! returns.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

use crate::accumulator::{AppendAt, Placement};
use crate::batch::{Callback, Completion, PendingRecord, RECORD_OVERHEAD};
use crate::config::ProducerConfig;
use crate::driver;
use crate::error::Error;
use crate::metadata::ClusterMetadata;
use crate::partitioner::{DefaultPartitioner, Partitioner};
use crate::record::{estimated_size, Record, RecordMetadata};
use crate::state::{Shared, TaskGuard};

/// Resolves to a record's metadata or its error. Dropping it does not
/// cancel the send (fire-and-forget).
#[derive(Debug)]
#[must_use = "await the handle for the outcome, or drop it explicitly for fire-and-forget"]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Result<RecordMetadata, Error>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(Shared::dead_error())))
    }
}

impl DeliveryFuture {
    /// Block the current thread until the outcome is known. For non-async
    /// code; do not call it on a tokio worker thread.
    pub fn wait(self) -> Result<RecordMetadata, Error> {
        let rx = self.rx;
        // tokio refuses (panics) to block a thread that runs async code,
        // such as the producer's own task running a delivery callback,
        // where waiting would never end anyway: say so instead.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || rx.blocking_recv())) {
            Ok(r) => r.unwrap_or_else(|_| Err(Shared::dead_error())),
            Err(_) => Err(Error::Usage(
                "DeliveryFuture::wait blocks its thread and cannot run on an async runtime's \
                 thread (delivery callbacks run on one): .await the DeliveryFuture instead"
                    .into(),
            )),
        }
    }
}

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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Producer {
    /// Validate the config and start the background task.
    pub fn new(config: ProducerConfig) -> Result<Producer, Error> {
        let ignore_keys = config.partitioner_ignore_keys;
        Self::with_partitioner(config, Arc::new(DefaultPartitioner { ignore_keys }))
    }

    /// Like [`Producer::new`], with a custom partitioner.
    pub fn with_partitioner(
        config: ProducerConfig,
        partitioner: Arc<dyn Partitioner>,
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
            handle: Arc::new(Handle { shared }),
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
        let (tx, rx) = oneshot::channel();
        self.enqueue(record, move || Completion::future(tx)).await?;
        Ok(DeliveryFuture { rx })
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
        self.enqueue(record, move || Completion::callback(cb)).await
    }

    /// Buffer `record`; `completion` makes its outcome's destination, and
    /// is called only once the record is sure to be buffered: a
    /// `Completion` answers even when dropped (the producer's tasks gone),
    /// and a `send` that fails must not also call the callback.
    async fn enqueue(
        &self,
        record: Record,
        completion: impl FnOnce() -> Completion,
    ) -> Result<(), Error> {
        let shared = self.shared();
        let cfg = &shared.config;
        if let Some(ts) = record.timestamp.filter(|ts| *ts < 0) {
            // As the Java client's ProducerRecord refuses it.
            return Err(Error::InvalidRecord(format!(
                "timestamp {ts} is negative; a record's timestamp is milliseconds since the Unix \
                 epoch (or none, for the send time)"
            )));
        }
        let start = Instant::now();
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
        let placement = match chosen {
            Some(p) if p < 0 || p as usize >= partitions => {
                return Err(Error::InvalidPartition {
                    topic: record.topic.to_string(),
                    partition: p,
                    partitions,
                })
            }
            Some(p) => Placement::Partition(p),
            None => Placement::Sticky,
        };
        let waited = match shared.memory.try_acquire_many(memory as u32) {
            Ok(p) => {
                p.forget();
                waited_for_metadata
            }
            Err(_) => {
                let (p, back) = (self.clone(), self.clone());
                self.slow_path(
                    async move { p.reserve_memory(memory, start).await },
                    move |()| back.shared().memory.add_permits(memory),
                )
                .await?;
                true
            }
        };
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let wake = {
            let mut st = shared.lock();
            if st.closing {
                let e = closed_error(&st);
                drop(st);
                shared.memory.add_permits(memory);
                return Err(e);
            }
            // Buffered from here on: the record's outcome is owed.
            let pending = PendingRecord {
                key: record.key,
                value: record.value,
                headers: record.headers,
                timestamp,
                completion: completion(),
            };
            let crate::state::State { acc, meta, .. } = &mut *st;
            acc.append(
                &record.topic,
                placement,
                partitions,
                pending,
                size,
                AppendAt {
                    // One clock read per record when nothing was waited for.
                    now: if waited { Instant::now() } else { start },
                    meta_generation: meta.generation,
                    available: match placement {
                        Placement::Sticky => meta.available(&record.topic),
                        Placement::Partition(_) => &[],
                    },
                },
            )
            .1
        };
        if wake {
            shared.wake.notify_waiters();
        }
        Ok(())
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
