//! A batch of records for one partition, and how each record's outcome is
//! delivered.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::compression::Compression;
use crate::delivery::{DeliveryFuture, Done, Ending, Outcomes, Slots};
use crate::error::{Error, TopicPartition};
use crate::record::{Header, RecordMetadata};
use crate::record_batch::{records_len, write_records, Compressed, ProducerIdentity, WireRecord};
use bytes::{Bytes, BytesMut};

/// A callback given to [`crate::Producer::send_with_callback`].
pub type Callback = Box<dyn FnOnce(Result<RecordMetadata, Error>) + Send + 'static>;

/// How a record's outcome reaches the application: exactly once. A
/// completion dropped without an outcome (the task holding its batch was
/// dropped: the producer's runtime shut down, or the task panicked) still
/// tells a callback, with [`TASKS_GONE`]; awaited records are told by their
/// batch (`ProducerBatch`'s and `Done`'s `Drop`).
pub(crate) struct Completion(Option<Sink>);

/// Where an outcome goes.
enum Sink {
    /// A [`crate::DeliveryFuture`] (or none: fire-and-forget) reads it from
    /// the batch's outcome cell, at this index.
    Future(u32),
    /// A callback, run by the producer's task in send order per partition.
    Callback(Callback),
}

/// The outcome of a record whose batch was dropped with the producer's
/// tasks, and the error of every call on a producer whose tasks are gone.
pub(crate) const TASKS_GONE: &str = "the producer's background tasks are gone (the tokio runtime \
     that ran Producer::new shut down, or a task panicked); create a new producer \
     inside a runtime that outlives it";

impl Completion {
    /// For a record whose handle `ProducerBatch::push` makes.
    pub(crate) fn future() -> Self {
        Completion(Some(Sink::Future(u32::MAX)))
    }

    pub(crate) fn callback(cb: Callback) -> Self {
        Completion(Some(Sink::Callback(cb)))
    }

    /// The record's index in its batch's outcome cell, if it is awaited.
    pub(crate) fn awaited(&self) -> Option<u32> {
        match self.0 {
            Some(Sink::Future(i)) => Some(i),
            _ => None,
        }
    }

    /// The callback, if the record has one (it then owes the outcome).
    pub(crate) fn into_callback(mut self) -> Option<Callback> {
        match self.0.take() {
            Some(Sink::Callback(cb)) => Some(cb),
            _ => None,
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(Sink::Callback(cb)) = self.0.take() {
            run_callback(cb, Err(Error::Closed(TASKS_GONE.into())));
        }
    }
}

/// Run a delivery callback. A panicking callback must not take the
/// producer down with it: the task running it also finishes batches and
/// frees memory for everyone else.
pub(crate) fn run_callback(cb: Callback, outcome: Result<RecordMetadata, Error>) {
    let run = std::panic::AssertUnwindSafe(move || cb(outcome));
    if std::panic::catch_unwind(run).is_err() {
        tracing::error!("a delivery callback panicked; the panic was contained");
    }
}

/// A record waiting in a batch.
///
/// The record's bytes stay where the application put them (`Bytes` are
/// reference-counted), and are written once, into the batch's wire buffer,
/// when the batch is first sent.
pub(crate) struct PendingRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    pub timestamp: i64,
    pub completion: Completion,
}

/// What `buffer.memory` is charged for a record besides its estimated wire
/// size: its place in the batch. Counting it keeps the bound true for tiny
/// records, where this bookkeeping outweighs the bytes.
pub(crate) const RECORD_OVERHEAD: usize = std::mem::size_of::<PendingRecord>();

/// Records for one partition that travel, and succeed or fail, together.
pub(crate) struct ProducerBatch {
    /// Increasing per producer; `flush` waits for ids below a mark.
    pub id: u64,
    pub tp: TopicPartition,
    pub records: Vec<PendingRecord>,
    /// Estimated encoded bytes, compared with `batch.size`.
    pub size: usize,
    /// Bytes of `buffer.memory` this batch holds until it completes.
    pub memory: usize,
    /// When the first record was appended; linger and delivery timeout start here.
    pub created: Instant,
    /// No more appends: full, sealed by flush, or already sent once.
    pub sealed: bool,
    /// Send attempts so far.
    pub attempts: u32,
    /// Not before this instant (retry backoff).
    pub retry_at: Option<Instant>,
    /// Producer id, epoch and base sequence, fixed at the first send so a
    /// retry is recognised by the broker as the same batch.
    pub sequence: Option<(ProducerIdentity, i32)>,
    /// The last retriable error, reported if the batch times out.
    pub last_error: Option<Error>,
    /// The last attempt ended without a definitive answer (connection lost
    /// or timed out after the request was written): the broker may have
    /// the batch. It must be resent under the same producer id and
    /// sequence, so the broker can recognise it, before the id may change.
    pub unsure: bool,
    /// The records section compressed (codec id, bytes), made once at the
    /// first send and kept for retries; `None` without compression.
    compressed: Option<(i16, Bytes)>,
    /// The outcome cell of the records sent with `send` (made with the
    /// first of them; shared by both halves of a split).
    slots: Option<Arc<Slots>>,
    /// Records ever pushed: the next record's index in `slots`.
    next_index: u32,
}

impl fmt::Debug for ProducerBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerBatch")
            .field("id", &self.id)
            .field("tp", &self.tp)
            .field("records", &self.records.len())
            .field("attempts", &self.attempts)
            .field("sequence", &self.sequence)
            .finish()
    }
}

impl ProducerBatch {
    /// A batch expected to hold about `capacity` records: its record list is
    /// sized once, not grown (and moved) record by record.
    pub(crate) fn new(id: u64, tp: TopicPartition, now: Instant, capacity: usize) -> Self {
        Self {
            id,
            tp,
            records: Vec::with_capacity(capacity),
            size: 61, // RecordBatch v2 header
            memory: 0,
            created: now,
            sealed: false,
            attempts: 0,
            retry_at: None,
            sequence: None,
            last_error: None,
            unsure: false,
            compressed: None,
            slots: None,
            next_index: 0,
        }
    }

    /// Add a record of estimated wire size `size`; the batch then holds
    /// `size + RECORD_OVERHEAD` bytes of `buffer.memory`. Returns the
    /// record's handle if it is awaited (`Completion::future`).
    pub(crate) fn push(&mut self, mut r: PendingRecord, size: usize) -> Option<DeliveryFuture> {
        let index = self.next_index;
        self.next_index += 1;
        let handle = match &mut r.completion.0 {
            Some(Sink::Future(at)) => {
                *at = index;
                let slots = self
                    .slots
                    .get_or_insert_with(|| Slots::new(self.tp.clone()));
                Some(DeliveryFuture::new(slots.clone(), index))
            }
            _ => None,
        };
        self.push_moved(r, size);
        handle
    }

    /// Add a record that already has its place in the outcome cell (the
    /// second half of a split).
    fn push_moved(&mut self, r: PendingRecord, size: usize) {
        self.records.push(r);
        self.size += size;
        self.memory += size + RECORD_OVERHEAD;
    }

    pub(crate) fn record_count(&self) -> i32 {
        self.records.len() as i32
    }

    /// The records as the batch writer takes them.
    pub(crate) fn wire_records(
        &self,
    ) -> impl ExactSizeIterator<Item = WireRecord<'_>> + Clone + '_ {
        self.records.iter().map(|r| WireRecord {
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            timestamp: r.timestamp,
            headers: &r.headers,
        })
    }

    /// Compress the records section with `codec` unless done already (a
    /// retry sends the same bytes). Not on `send`'s path: the sender calls
    /// it when the batch first goes out.
    pub(crate) fn compress(&mut self, codec: Compression) -> Result<(), String> {
        if codec == Compression::None || self.compressed.is_some() {
            return Ok(());
        }
        let mut plain = BytesMut::with_capacity(records_len(self.wire_records()));
        write_records(&mut plain, self.wire_records());
        let packed = codec.compress(&plain)?;
        self.compressed = Some((codec.attribute(), Bytes::from(packed)));
        Ok(())
    }

    /// The compressed records section, if the batch has one.
    pub(crate) fn compressed(&self) -> Option<Compressed<'_>> {
        self.compressed.as_ref().map(|(codec, bytes)| Compressed {
            codec: *codec,
            bytes,
        })
    }

    /// Producer id, epoch and base sequence to write (none without
    /// idempotence, or before the first send).
    pub(crate) fn identity(&self) -> (ProducerIdentity, i32) {
        self.sequence.unwrap_or((ProducerIdentity::NONE, -1))
    }

    /// Forget the sequence (after a producer-id reset) so the next send
    /// assigns a new one.
    pub(crate) fn clear_sequence(&mut self) {
        self.sequence = None;
        self.unsure = false;
    }

    /// Split in two halves by record count (for MESSAGE_TOO_LARGE). Both
    /// keep the id; sequences stay contiguous (the second half starts where
    /// the first ends), so batches already numbered behind stay valid.
    pub(crate) fn split(mut self) -> (ProducerBatch, ProducerBatch) {
        let tail = self.records.split_off(self.records.len() / 2);
        let mut second = ProducerBatch::new(self.id, self.tp.clone(), self.created, tail.len());
        second.slots = self.slots.clone();
        for r in tail {
            let size = crate::record::estimated_size(r.key.as_ref(), r.value.as_ref(), &r.headers);
            second.push_moved(r, size);
        }
        self.size -= second.size - 61;
        self.memory -= second.memory;
        self.compressed = None;
        self.unsure = false;
        self.sealed = true;
        second.sealed = true;
        second.attempts = self.attempts;
        second.last_error = self.last_error.clone();
        second.sequence = self.sequence.map(|(pid, base)| {
            (
                pid,
                if base >= 0 {
                    crate::idempotence::add(base, self.record_count())
                } else {
                    base
                },
            )
        });
        (self, second)
    }

    /// Success: record `i` is at `base_offset + i`. Moves the record list
    /// out (nothing per record here: this runs under the state lock).
    pub(crate) fn succeed(mut self, base_offset: i64, log_append_time: i64, out: &mut Outcomes) {
        out.push(self.done(Ending::Success {
            base_offset,
            log_append_time,
        }));
    }

    /// Failure: every record gets the error.
    pub(crate) fn fail(mut self, err: Error, out: &mut Outcomes) {
        out.push(self.done(Ending::Failure(Arc::new(err))));
    }

    fn done(&mut self, ending: Ending) -> Done {
        Done {
            tp: self.tp.clone(),
            records: std::mem::take(&mut self.records),
            slots: self.slots.take(),
            ending,
        }
    }
}

/// A batch dropped with records in it (its task was dropped: the runtime
/// shut down, or the task panicked) fails them, so that every record still
/// gets exactly one outcome.
impl Drop for ProducerBatch {
    fn drop(&mut self) {
        if !self.records.is_empty() {
            drop(self.done(Ending::Failure(Arc::new(Error::Closed(TASKS_GONE.into())))));
        }
    }
}

#[cfg(test)]
impl PendingRecord {
    /// A record without key, value or headers whose outcome nobody awaits.
    pub(crate) fn empty_for_test() -> PendingRecord {
        PendingRecord {
            key: None,
            value: None,
            headers: vec![],
            timestamp: 0,
            completion: Completion::future(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(n: usize, base: i32) -> ProducerBatch {
        let mut b = ProducerBatch::new(0, TopicPartition::new("t", 0), Instant::now(), n);
        for _ in 0..n {
            b.push(PendingRecord::empty_for_test(), 10);
        }
        b.sequence = Some((ProducerIdentity { id: 1, epoch: 0 }, base));
        b
    }

    /// A batch split near the top of the sequence space: the second half
    /// starts where the first ends, wrapped past i32::MAX to 0 as the
    /// broker wraps it (it overflowed before).
    #[test]
    fn a_split_wraps_the_second_halfs_sequence() {
        let (first, second) = batch_of(4, i32::MAX - 1).split();
        assert_eq!(first.sequence.unwrap().1, i32::MAX - 1);
        assert_eq!(second.sequence.unwrap().1, 0, "MAX-1, MAX, then 0");
        let (_, second) = batch_of(4, 10).split();
        assert_eq!(second.sequence.unwrap().1, 12);
    }
}
