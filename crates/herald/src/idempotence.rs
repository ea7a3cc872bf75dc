//! Idempotent producing: the producer id and per-partition sequence numbers.
//!
//! The broker accepts a batch only if its base sequence is the next one it
//! expects for (producer id, partition); a batch it already has comes back
//! as `DUPLICATE_SEQUENCE_NUMBER` (treated as success). So a batch keeps its
//! sequence across retries, sequences are assigned in send order, and a
//! retried batch goes out again before anything behind it.
//!
//! When the broker loses our state (`UNKNOWN_PRODUCER_ID`), or a sequenced
//! batch is failed locally and leaves a gap (`OUT_OF_ORDER_SEQUENCE_NUMBER`
//! on the head batch), the producer waits until nothing is in flight, gets a
//! new producer id, and numbers the remaining batches from 0 again.

use crate::record_batch::ProducerIdentity;

/// Where the producer id stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PidState {
    /// Idempotence is off: batches carry no producer id.
    Disabled,
    /// An InitProducerId request is needed before anything is sent.
    NeedsId,
    /// Ready to send with this identity.
    Ready(ProducerIdentity),
}

impl PidState {
    /// The identity to stamp on new batches; `None` means "don't send yet".
    pub(crate) fn sendable(&self) -> Option<ProducerIdentity> {
        match self {
            PidState::Disabled => Some(ProducerIdentity::NONE),
            PidState::NeedsId => None,
            PidState::Ready(id) => Some(*id),
        }
    }
}

/// Sequence bookkeeping of one partition.
#[derive(Debug, Default, Clone)]
pub(crate) struct PartitionSequence {
    /// Base sequence for the next batch sent for the first time.
    next: i32,
    /// The sequence the broker expects next, by what it acknowledged.
    acked_next: i32,
    /// The lowest sequence of a batch given up without ever being written
    /// (refused outright, or expired before a definite answer was
    /// needed). Under this producer id no batch numbered after it can be in
    /// the log: a broker appends a producer's batches in sequence order, and
    /// one that lost the producer's state takes none but sequence 0.
    given_up_from: Option<i32>,
}

/// Sequences wrap at i32::MAX, as in the Java client.
fn add(seq: i32, n: i32) -> i32 {
    ((seq as i64 + n as i64) % (i32::MAX as i64 + 1)) as i32
}

impl PartitionSequence {
    /// Take `count` sequence numbers for a new batch.
    pub(crate) fn assign(&mut self, count: i32) -> i32 {
        let base = self.next;
        self.next = add(self.next, count);
        base
    }

    /// The broker acknowledged the batch starting at `base`.
    pub(crate) fn acked(&mut self, base: i32, count: i32) {
        self.acked_next = add(base, count);
    }

    /// Whether a batch with this base sequence is the first one the broker
    /// has not acknowledged. An OUT_OF_ORDER_SEQUENCE_NUMBER on any other
    /// batch only means an earlier one failed and will be resent first.
    pub(crate) fn is_head(&self, base: i32) -> bool {
        base == self.acked_next
    }

    /// A batch at `base`, never written, was given up.
    pub(crate) fn given_up(&mut self, base: i32) {
        self.given_up_from = Some(self.given_up_from.map_or(base, |g| g.min(base)));
    }

    /// Whether the batch at `base` cannot be in the log (see `given_up_from`).
    /// Sequences wrap only after 2^31 records of one partition; a wrapped
    /// sequence compares as lower here, which only errs towards "may be
    /// written".
    pub(crate) fn cannot_be_written(&self, base: i32) -> bool {
        self.given_up_from.is_some_and(|g| base > g)
    }

    /// Start again from 0 under a new producer id.
    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_are_contiguous_and_wrap() {
        let mut s = PartitionSequence::default();
        assert_eq!(s.assign(10), 0);
        assert_eq!(s.assign(5), 10);
        assert!(s.is_head(0));
        assert!(!s.is_head(10));
        s.acked(0, 10);
        assert!(s.is_head(10));
        s.next = i32::MAX - 1;
        assert_eq!(s.assign(3), i32::MAX - 1);
        assert_eq!(s.assign(1), 1, "wraps past i32::MAX to 0");
        s.reset();
        assert_eq!(s.assign(1), 0);
        assert!(s.is_head(0));
    }

    #[test]
    fn pid_state_gates_sending() {
        assert_eq!(PidState::Disabled.sendable(), Some(ProducerIdentity::NONE));
        assert_eq!(PidState::NeedsId.sendable(), None);
        let id = ProducerIdentity { id: 7, epoch: 0 };
        assert_eq!(PidState::Ready(id).sendable(), Some(id));
    }
}
