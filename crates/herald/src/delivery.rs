//! How outcomes reach the application: the [`DeliveryFuture`] a `send`
//! returns, callbacks, and `deliver`, which hands a finished batch's
//! outcomes out after the state lock is released.
//!
//! A `DeliveryFuture` is not a channel per record. The records of a batch
//! succeed or fail together, so they share one outcome cell per batch
//! ([`Slots`], made when the batch takes its first such record): a handle
//! is that cell's reference count and the record's index in it. Sending
//! and dropping the handle (fire-and-forget) then costs a reference count
//! taken and given back, nothing allocated or freed per record; awaiting
//! it costs one lock of the cell. A channel per record (tokio's oneshot,
//! 144 bytes, allocated on the sending thread and freed on the sender's)
//! made fire-and-forget the most expensive way to send (BENCHMARKS.md,
//! issue 12).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use crate::batch::PendingRecord;
use crate::error::{Error, TopicPartition};
use crate::record::RecordMetadata;

/// A record's outcome, as its batch's cell keeps it.
#[derive(Debug, Clone)]
enum Outcome {
    Ok { offset: i64, timestamp: i64 },
    Err(Arc<Error>),
}

/// The outcome cell of one batch's awaited records (and of both halves of
/// a batch split after MESSAGE_TOO_LARGE): per record index, its outcome
/// and the waker of a handle polled before the outcome was known.
#[derive(Debug)]
pub(crate) struct Slots {
    tp: TopicPartition,
    state: Mutex<Vec<Entry>>,
}

#[derive(Debug, Default)]
struct Entry {
    outcome: Settled,
    waker: Option<Waker>,
}

#[derive(Debug, Default)]
enum Settled {
    #[default]
    Waiting,
    Ready(Outcome),
    /// Handed to the handle.
    Taken,
}

impl Slots {
    pub(crate) fn new(tp: TopicPartition) -> Arc<Slots> {
        Arc::new(Slots {
            tp,
            state: Mutex::default(),
        })
    }

    /// The cell's entries, at least `len` of them.
    fn lock(&self, len: usize) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        // Nothing panics while holding it (no user code runs under it).
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.len() < len {
            st.resize_with(len, Entry::default);
        }
        st
    }

    /// Record the outcomes of the batch's awaited records, then wake the
    /// handles waiting for them.
    fn settle(&self, records: impl Iterator<Item = (u32, Outcome)>, last: u32) {
        let mut woken = Vec::new();
        {
            let mut st = self.lock(last as usize + 1);
            for (i, o) in records {
                let e = &mut st[i as usize];
                e.outcome = Settled::Ready(o);
                woken.extend(e.waker.take());
            }
        }
        for w in woken {
            w.wake();
        }
    }
}

/// Resolves to a record's metadata or its error. Dropping it does not
/// cancel the send (fire-and-forget), and costs nothing more than sending:
/// no channel is made per record.
#[derive(Debug)]
#[must_use = "await the handle for the outcome, or drop it explicitly for fire-and-forget"]
pub struct DeliveryFuture {
    slots: Arc<Slots>,
    index: u32,
}

impl DeliveryFuture {
    pub(crate) fn new(slots: Arc<Slots>, index: u32) -> DeliveryFuture {
        DeliveryFuture { slots, index }
    }

    /// Block the current thread until the outcome is known. For non-async
    /// code; do not call it on a tokio worker thread.
    pub fn wait(self) -> Result<RecordMetadata, Error> {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            // tokio refuses (panics) to block a thread that runs async
            // code, such as the producer's own task running a delivery
            // callback, where waiting would never end anyway: say so
            // instead. (Inside `spawn_blocking` it is allowed.)
            let run = std::panic::AssertUnwindSafe(move || rt.block_on(self));
            return std::panic::catch_unwind(run).unwrap_or_else(|_| {
                Err(Error::Usage(
                    "DeliveryFuture::wait blocks its thread and cannot run on an async runtime's \
                     thread (delivery callbacks run on one): .await the DeliveryFuture instead"
                        .into(),
                ))
            });
        }
        let unpark = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&unpark);
        let mut me = self;
        loop {
            if let Poll::Ready(r) = Pin::new(&mut me).poll(&mut cx) {
                return r;
            }
            std::thread::park();
        }
    }
}

/// Wakes a thread blocked in [`DeliveryFuture::wait`].
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.get_mut();
        let i = me.index as usize;
        let mut st = me.slots.lock(i + 1);
        let e = &mut st[i];
        match std::mem::replace(&mut e.outcome, Settled::Taken) {
            Settled::Ready(o) => {
                drop(st);
                let tp = &me.slots.tp;
                Poll::Ready(match o {
                    Outcome::Ok { offset, timestamp } => Ok(RecordMetadata {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        offset,
                        timestamp,
                    }),
                    Outcome::Err(e) => Err((*e).clone()),
                })
            }
            Settled::Waiting => {
                e.outcome = Settled::Waiting;
                match &mut e.waker {
                    Some(w) => w.clone_from(cx.waker()),
                    None => e.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Settled::Taken => panic!("DeliveryFuture polled after it completed"),
        }
    }
}

/// How a finished batch ended.
#[derive(Debug)]
pub(crate) enum Ending {
    /// Record `i` is at `base_offset + i` (-1: unknown); its timestamp is
    /// `log_append_time` if that is not -1, else its own.
    Success {
        base_offset: i64,
        log_append_time: i64,
    },
    /// Every record fails with this error (shared: cloned only for the
    /// records whose outcome someone reads).
    Failure(Arc<Error>),
}

/// A finished batch's records and how it ended: made under the state lock
/// (moving the record list, nothing per record), delivered after it. One
/// dropped undelivered (a panic unwinding past it) fails its records with
/// [`crate::batch::TASKS_GONE`], so that no handle waits forever.
pub(crate) struct Done {
    pub tp: TopicPartition,
    pub records: Vec<PendingRecord>,
    pub slots: Option<Arc<Slots>>,
    pub ending: Ending,
}

impl std::fmt::Debug for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Done")
            .field("tp", &self.tp)
            .field("records", &self.records.len())
            .field("ending", &self.ending)
            .finish()
    }
}

/// Finished batches, in the order their outcomes are handed out.
pub(crate) type Outcomes = Vec<Done>;

impl Done {
    /// How many records failed and succeeded.
    pub(crate) fn counts(&self) -> (u64, u64) {
        let n = self.records.len() as u64;
        match self.ending {
            Ending::Success { .. } => (0, n),
            Ending::Failure(_) => (n, 0),
        }
    }

    /// The error every record fails with, if the batch failed.
    #[cfg(test)]
    pub(crate) fn error(&self) -> Option<&Error> {
        match &self.ending {
            Ending::Failure(e) => Some(e),
            Ending::Success { .. } => None,
        }
    }

    /// The outcome of the record at position `i`, created at `timestamp`.
    fn outcome(&self, i: usize, timestamp: i64) -> Outcome {
        match &self.ending {
            Ending::Failure(e) => Outcome::Err(e.clone()),
            Ending::Success {
                base_offset,
                log_append_time,
            } => Outcome::Ok {
                offset: if *base_offset >= 0 {
                    base_offset + i as i64
                } else {
                    -1
                },
                timestamp: if *log_append_time >= 0 {
                    *log_append_time
                } else {
                    timestamp
                },
            },
        }
    }

    /// Hand every record its outcome: first the awaited ones (one lock of
    /// their cell for the whole batch, and none at all when every handle
    /// was dropped), then the callbacks, in send order. A batch's handles
    /// thus resolve together, before its callbacks run.
    fn deliver_now(&mut self) {
        let records = std::mem::take(&mut self.records);
        if let Some(slots) = self.slots.take() {
            // When only this batch holds the cell, every handle was dropped
            // (and none can be made any more): no one will read these. (The
            // halves of a split batch each hold it: they write theirs.)
            if Arc::strong_count(&slots) > 1 {
                let last = records.iter().filter_map(|r| r.completion.awaited()).max();
                if let Some(last) = last {
                    slots.settle(
                        records.iter().enumerate().filter_map(|(i, r)| {
                            r.completion
                                .awaited()
                                .map(|at| (at, self.outcome(i, r.timestamp)))
                        }),
                        last,
                    );
                }
            }
        }
        for (i, r) in records.into_iter().enumerate() {
            if let Some(cb) = r.completion.into_callback() {
                let o = match self.outcome(i, r.timestamp) {
                    Outcome::Ok { offset, timestamp } => Ok(RecordMetadata {
                        topic: self.tp.topic.clone(),
                        partition: self.tp.partition,
                        offset,
                        timestamp,
                    }),
                    Outcome::Err(e) => Err((*e).clone()),
                };
                crate::batch::run_callback(cb, o);
            }
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if !self.records.is_empty() {
            self.ending = Ending::Failure(Arc::new(crate::state::Shared::dead_error()));
            self.deliver_now();
        }
    }
}

/// Hand outcomes to the application, batch by batch in order.
pub(crate) fn deliver(outcomes: Outcomes) {
    for mut d in outcomes {
        d.deliver_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its wake-ups.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn ok(offset: i64) -> Outcome {
        Outcome::Ok {
            offset,
            timestamp: 7,
        }
    }

    /// A handle polled before its outcome is woken once it is settled, and
    /// resolves to its own record's outcome; one never polled is not
    /// needed for the others; polling a finished handle is a bug, said so.
    #[test]
    fn handles_resolve_to_their_own_outcome_and_are_woken() {
        let slots = Slots::new(TopicPartition::new("t", 2));
        let mut early = DeliveryFuture::new(slots.clone(), 3);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut early).poll(&mut cx).is_pending());
        assert!(
            Pin::new(&mut early).poll(&mut cx).is_pending(),
            "polled twice: one waker"
        );
        let mut late = DeliveryFuture::new(slots.clone(), 0);
        slots.settle([(0, ok(100)), (3, ok(103))].into_iter(), 3);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once");
        let md = match Pin::new(&mut early).poll(&mut cx) {
            Poll::Ready(r) => r.unwrap(),
            Poll::Pending => panic!("settled"),
        };
        assert_eq!(
            (&*md.topic, md.partition, md.offset, md.timestamp),
            ("t", 2, 103, 7)
        );
        match Pin::new(&mut late).poll(&mut cx) {
            Poll::Ready(r) => assert_eq!(r.unwrap().offset, 100),
            Poll::Pending => panic!("settled"),
        }
        let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = Pin::new(&mut early).poll(&mut cx);
        }));
        assert!(again.is_err(), "a finished handle polled again panics");
    }
}
