//! Group commit: one thread owns the log; appenders hand it their batches
//! and wait. The thread takes every batch waiting, writes them with one
//! `write` and one `fdatasync`, then answers them all; the batches that
//! arrive meanwhile make the next group. Grouping is where appends/s come
//! from: one `fdatasync` per group (0.1-0.4 ms on this VM's disk, about
//! 4 ms on others; BENCHMARKS.md, "The spool").

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::error::SpoolError;
use crate::log::Log;

type Reply<T> = oneshot::Sender<Result<T, SpoolError>>;

/// Called with a batch's sequences on the log thread once they are
/// durable and before readers can see them (so a watcher registered there
/// cannot miss the record's delivery).
pub type OnAssigned = Box<dyn FnOnce(Range<u64>) + Send>;

/// A batch waiting for the next group, and whom to tell.
type Waiting = (Vec<Vec<u8>>, (Reply<Range<u64>>, Option<OnAssigned>));

/// What the log thread is asked to do.
enum Request {
    Append {
        batch: Vec<Vec<u8>>,
        reply: Reply<Range<u64>>,
        on_assigned: Option<OnAssigned>,
    },
    Checkpoint {
        cursor: u64,
        reply: Reply<usize>,
    },
}

/// Counters the thread keeps (read without asking it).
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Groups written (one `fdatasync` each).
    pub groups: AtomicU64,
    /// Records made durable.
    pub records: AtomicU64,
    /// Bytes in segments on disk.
    pub disk_bytes: AtomicU64,
    /// The first sequence not yet delivered, and the next to be assigned.
    pub cursor: AtomicU64,
    pub next_seq: AtomicU64,
}

/// The handle to the log thread.
#[derive(Debug)]
pub struct Writer {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    pub stats: Arc<WriterStats>,
}

impl Writer {
    /// Start the thread that owns `log`.
    pub fn start(log: Log) -> Writer {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(WriterStats::default());
        publish(&log, &stats);
        let s = stats.clone();
        let thread = std::thread::Builder::new()
            .name("herald-spool-log".into())
            .spawn(move || run(log, rx, s))
            .expect("spawning the spool's log thread");
        Writer {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            stats,
        }
    }

    fn send(&self, r: Request) -> Result<(), SpoolError> {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match tx.as_ref() {
            Some(tx) => tx.send(r).map_err(|_| SpoolError::Closed),
            None => Err(SpoolError::Closed),
        }
    }

    /// Append an atomic batch; resolves once it is durable.
    pub async fn append(&self, batch: Vec<Vec<u8>>) -> Result<Range<u64>, SpoolError> {
        self.append_then(batch, None).await
    }

    /// As [`Writer::append`], calling `on_assigned` with the sequences on
    /// the log thread before any reader can see them.
    pub async fn append_then(
        &self,
        batch: Vec<Vec<u8>>,
        on_assigned: Option<OnAssigned>,
    ) -> Result<Range<u64>, SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Append {
            batch,
            reply,
            on_assigned,
        })?;
        rx.await.unwrap_or(Err(SpoolError::Closed))
    }

    /// Checkpoint: every record below `cursor` was delivered.
    pub async fn checkpoint(&self, cursor: u64) -> Result<usize, SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Checkpoint { cursor, reply })?;
        rx.await.unwrap_or(Err(SpoolError::Closed))
    }

    /// Stop taking requests, let the thread answer what it has, and wait
    /// for it (it releases the directory's lock as it ends).
    pub fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.close();
    }
}

fn publish(log: &Log, stats: &WriterStats) {
    let b = log.bounds();
    stats.cursor.store(b.start, Ordering::Relaxed);
    // Release: a reader that sees this limit sees the synced bytes below it.
    stats.next_seq.store(b.end, Ordering::Release);
    stats.disk_bytes.store(log.disk_bytes(), Ordering::Relaxed);
}

fn run(mut log: Log, rx: mpsc::Receiver<Request>, stats: Arc<WriterStats>) {
    // Block for the first request, then take every one already waiting:
    // their appends make one group.
    while let Ok(first) = rx.recv() {
        let mut appends: Vec<Waiting> = Vec::new();
        let mut others = Vec::new();
        for r in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match r {
                Request::Append {
                    batch,
                    reply,
                    on_assigned,
                } => appends.push((batch, (reply, on_assigned))),
                other => others.push(other),
            }
        }
        if !appends.is_empty() {
            let (batches, replies): (Vec<_>, Vec<_>) = appends.into_iter().unzip();
            match log.append(&batches) {
                Ok(ranges) => {
                    stats.groups.fetch_add(1, Ordering::Relaxed);
                    let n: u64 = ranges.iter().map(|r| r.end - r.start).sum();
                    stats.records.fetch_add(n, Ordering::Relaxed);
                    let mut answers = Vec::with_capacity(replies.len());
                    for ((reply, on_assigned), range) in replies.into_iter().zip(ranges) {
                        if let Some(f) = on_assigned {
                            f(range.clone());
                        }
                        answers.push((reply, range));
                    }
                    publish(&log, &stats);
                    for (reply, range) in answers {
                        let _ = reply.send(Ok(range));
                    }
                }
                Err(e) => {
                    for (reply, _) in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
        for r in others {
            match r {
                Request::Checkpoint { cursor, reply } => {
                    let _ = reply.send(log.checkpoint(cursor));
                    publish(&log, &stats);
                }
                Request::Append { .. } => unreachable!("appends were taken above"),
            }
        }
    }
}
