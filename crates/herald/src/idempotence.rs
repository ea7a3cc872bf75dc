//! Idempotent producing: the producer id and per-partition sequence numbers.
//!
//! The broker accepts a batch only if its base sequence is the next one it
//! expects for (producer id, partition); a batch it already has comes back
//! as `DUPLICATE_SEQUENCE_NUMBER` (treated as success). So a batch keeps its
//! sequence across retries, sequences are assigned in send order, and a
//! retried batch goes out again before anything behind it.
//!
//! When the broker loses our state on a partition (`UNKNOWN_PRODUCER_ID`,
//! or `OUT_OF_ORDER_SEQUENCE_NUMBER` on the head batch), or a sequenced
//! batch is failed locally and leaves a gap there, that partition alone
//! starts over: once nothing of it is in flight and no batch of it waits to
//! learn whether it was written, it moves to a higher epoch of the same
//! producer id and numbers its batches from 0 (KIP-360: a broker takes a
//! new epoch at sequence 0, and keeps a producer's epoch per partition).
//! The epoch is bumped locally, with no request; other partitions go on
//! undisturbed under the epoch they have. Only when the epoch is exhausted,
//! or the broker says ours is fenced (`INVALID_PRODUCER_EPOCH`), does the
//! producer ask for a new producer id, and then every partition moves to
//! it the same way, each when it is ready.

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
    /// The producer id and epoch the sequences above are under; `None`
    /// before the partition's first batch.
    identity: Option<ProducerIdentity>,
    /// The broker's state here can no longer be trusted (a batch was given
    /// up, or the broker lost or refused our sequence): move to a new epoch
    /// before numbering another batch.
    needs_bump: bool,
}

/// What a partition must do before numbering a new batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Numbering {
    /// Number under this identity.
    Under(ProducerIdentity),
    /// Start over under this identity (a new epoch or a new producer id),
    /// once nothing of the partition is in flight or unsure.
    StartOver(ProducerIdentity),
    /// Wait: no producer id, or the epoch space is used up (a new id is
    /// asked for).
    Wait,
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

    /// Where `seq` stands relative to the next sequence the broker
    /// expects, across the wrap at i32::MAX: negative for a batch behind
    /// it. A batch can be behind it and still queued: answered with an
    /// error Kafka gives after the append (so unsure), while a later batch
    /// was acknowledged. (Read as far ahead instead, such a batch was
    /// taken for unwritten and written twice: soak, seed 437.) Sequences
    /// in use are never 2^30 apart.
    pub(crate) fn pos(&self, seq: i32) -> i64 {
        const SPACE: i64 = i32::MAX as i64 + 1;
        let d = (seq as i64 - self.acked_next as i64).rem_euclid(SPACE);
        if d >= SPACE / 2 {
            d - SPACE
        } else {
            d
        }
    }

    /// Whether a batch at `base` is behind the next sequence the broker
    /// expects: the broker acknowledged a later one.
    pub(crate) fn is_behind(&self, base: i32) -> bool {
        self.pos(base) < 0
    }

    /// The broker acknowledged the batch starting at `base`.
    pub(crate) fn acked(&mut self, base: i32, count: i32, now: std::time::Instant) {
        // A batch behind a later acknowledged one (resent to learn its
        // fate) does not move the broker's next sequence back.
        let next = add(base, count);
        if self.pos(next) > 0 || self.first_ack.is_none() {
            self.acked_next = next;
        }
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

    /// Start again from 0 under a new producer id or epoch.
    pub(crate) fn start_over(&mut self, identity: ProducerIdentity) {
        *self = Self {
            identity: Some(identity),
            ..Self::default()
        };
    }

    /// This partition must move to a new epoch before numbering more.
    pub(crate) fn request_bump(&mut self) {
        self.needs_bump = true;
    }

    /// Whether the broker acknowledged a batch here under this identity.
    pub(crate) fn acknowledged(&self) -> bool {
        self.first_ack.is_some()
    }

    /// Whether a batch was ever numbered here (under any identity).
    pub(crate) fn numbered(&self) -> bool {
        self.identity.is_some()
    }

    /// Whether this partition waits to move to a new epoch.
    pub(crate) fn needs_bump(&self) -> bool {
        self.needs_bump
    }

    /// How a new batch of this partition is numbered, given the producer's
    /// current identity (`None`: waiting for an id). A partition keeps the
    /// identity it has (even an older epoch: the broker tracks epochs per
    /// partition) until it must start over; then it takes the current
    /// identity if that is newer than its own, else the next epoch
    /// (`bump`), which becomes the producer's current identity.
    pub(crate) fn numbering(&self, current: Option<ProducerIdentity>) -> Numbering {
        let Some(cur) = current else {
            return Numbering::Wait;
        };
        match self.identity {
            None => Numbering::StartOver(cur),
            Some(own) if own.id != cur.id => Numbering::StartOver(cur),
            Some(own) if !self.needs_bump => Numbering::Under(own),
            Some(own) if cur.epoch > own.epoch => Numbering::StartOver(cur),
            Some(_) => match cur.epoch.checked_add(1) {
                Some(epoch) => Numbering::StartOver(ProducerIdentity { id: cur.id, epoch }),
                None => Numbering::Wait,
            },
        }
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
        s.start_over(ProducerIdentity { id: 1, epoch: 1 });
        assert_eq!(s.assign(1), 0);
        assert!(s.is_head(0));
    }

    /// A partition keeps its identity until it must start over; then it
    /// takes a newer current identity, or the next epoch; at the last
    /// epoch it waits for a new producer id.
    #[test]
    fn a_partition_starts_over_under_a_newer_epoch() {
        let id = |epoch| ProducerIdentity { id: 7, epoch };
        let mut s = PartitionSequence::default();
        assert_eq!(s.numbering(None), Numbering::Wait);
        assert_eq!(s.numbering(Some(id(0))), Numbering::StartOver(id(0)));
        s.start_over(id(0));
        assert_eq!(s.numbering(Some(id(0))), Numbering::Under(id(0)));
        // Another partition bumped to 3: this one keeps epoch 0 until it
        // must start over, and then takes 3.
        assert_eq!(s.numbering(Some(id(3))), Numbering::Under(id(0)));
        s.request_bump();
        assert_eq!(s.numbering(Some(id(3))), Numbering::StartOver(id(3)));
        s.start_over(id(3));
        s.request_bump();
        assert_eq!(s.numbering(Some(id(3))), Numbering::StartOver(id(4)));
        s.start_over(id(i16::MAX));
        s.request_bump();
        assert_eq!(s.numbering(Some(id(i16::MAX))), Numbering::Wait);
        // A new producer id: start over under it.
        let other = ProducerIdentity { id: 8, epoch: 0 };
        assert_eq!(s.numbering(Some(other)), Numbering::StartOver(other));
    }

    #[test]
    fn pid_state_gates_sending() {
        assert_eq!(PidState::Disabled.sendable(), Some(ProducerIdentity::NONE));
        assert_eq!(PidState::NeedsId.sendable(), None);
        let id = ProducerIdentity { id: 7, epoch: 0 };
        assert_eq!(PidState::Ready(id).sendable(), Some(id));
    }
}
