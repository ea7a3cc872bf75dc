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

/// How long after its last acknowledgement on a partition the broker is
/// trusted to still hold our producer state there. Kafka keeps it for
/// `producer.id.expiration.ms` (a day by default) after the producer's last
/// write; retention or DeleteRecords can drop it sooner, which no client can
/// see. Past this, nothing is inferred from other batches.
const STATE_TRUST: std::time::Duration = std::time::Duration::from_secs(300);

/// Sequence bookkeeping of one partition.
#[derive(Debug, Default, Clone)]
pub(crate) struct PartitionSequence {
    /// Base sequence for the next batch sent for the first time.
    next: i32,
    /// The sequence the broker expects next, by what it acknowledged.
    acked_next: i32,
    /// When the broker first and last acknowledged a batch of this producer
    /// id here. Before the first, it has no state for us and (Kafka 2.5+,
    /// KIP-360) takes a batch at any sequence; after it, only the next one.
    first_ack: Option<std::time::Instant>,
    last_ack: Option<std::time::Instant>,
    /// A batch of this producer id was given up here (its records failed
    /// locally): the broker still expects a sequence herald will not send.
    gave_up: bool,
    /// The lowest sequence of a batch given up without ever being written.
    given_up_from: Option<i32>,
}

/// Sequences wrap at i32::MAX, as in the Java client.
pub(crate) fn add(seq: i32, n: i32) -> i32 {
    ((seq as i64 + n as i64) % (i32::MAX as i64 + 1)) as i32
}

impl PartitionSequence {
    /// Take `count` sequence numbers for a new batch.
    pub(crate) fn assign(&mut self, count: i32) -> i32 {
        let base = self.next;
        self.next = add(self.next, count);
        base
    }

    /// Where `seq` stands after the next sequence the broker expects:
    /// orders sequences across the wrap at i32::MAX.
    pub(crate) fn pos(&self, seq: i32) -> i64 {
        (seq as i64 - self.acked_next as i64).rem_euclid(i32::MAX as i64 + 1)
    }

    /// The broker acknowledged the batch starting at `base`.
    pub(crate) fn acked(&mut self, base: i32, count: i32, now: std::time::Instant) {
        self.acked_next = add(base, count);
        self.first_ack.get_or_insert(now);
        self.last_ack = Some(now);
    }

    /// Whether a batch with this base sequence is the first one the broker
    /// has not acknowledged. An OUT_OF_ORDER_SEQUENCE_NUMBER on any other
    /// batch only means an earlier one failed and will be resent first.
    pub(crate) fn is_head(&self, base: i32) -> bool {
        base == self.acked_next
    }

    /// A batch at `base` was given up; `never_written` if no attempt of it
    /// can have been written.
    pub(crate) fn given_up(&mut self, base: i32, never_written: bool) {
        self.gave_up = true;
        if never_written
            && self
                .given_up_from
                .is_none_or(|g| self.pos(base) < self.pos(g))
        {
            self.given_up_from = Some(base);
        }
    }

    /// Whether a batch of this producer id was given up here.
    pub(crate) fn gave_up(&self) -> bool {
        self.gave_up
    }

    /// Whether the broker took only the next sequence of ours here during
    /// every attempt of a batch created at `created`: it had acknowledged
    /// one of our batches before, and recently enough to still hold that
    /// state. Only then does a batch never written prove the later ones
    /// unwritten.
    pub(crate) fn enforced_order_since(
        &self,
        created: std::time::Instant,
        now: std::time::Instant,
    ) -> bool {
        self.first_ack.is_some_and(|t| t < created)
            && self
                .last_ack
                .is_some_and(|t| now.saturating_duration_since(t) < STATE_TRUST)
    }

    /// Whether a batch at `base` comes after one given up unwritten.
    pub(crate) fn after_given_up(&self, base: i32) -> bool {
        self.given_up_from
            .is_some_and(|g| self.pos(base) > self.pos(g))
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
        s.acked(0, 10, std::time::Instant::now());
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
