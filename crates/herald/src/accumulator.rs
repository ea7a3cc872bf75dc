//! The record accumulator: a queue of batches per partition, and the
//! decisions of when a batch may be sent. No I/O and no clock of its own:
//! every decision takes `now`, so it is tested without sockets or sleeps.
//!
//! A batch leaves its queue (is "taken") when a sender drains it or it
//! expires; it is then either put back (`requeue`, for a retry) or finished
//! (`finish`, after its records' outcomes were delivered). A partition's
//! `busy` count is the number of its batches taken and not yet back or
//! finished. Because outcomes are delivered before `finish`, and nothing is
//! sent for a partition to a different broker while it is busy, outcomes
//! for one partition are delivered in send order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use rustc_hash::FxBuildHasher;

use crate::batch::{PendingRecord, ProducerBatch};
use crate::delivery::DeliveryFuture;
use crate::error::TopicPartition;
use crate::idempotence::{Numbering, PartitionSequence};
use crate::partitioner::StickyPartitions;
use crate::record_batch::ProducerIdentity;

/// Where a record goes: a partition, or the topic's sticky partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    Partition(i32),
    Sticky,
}

/// A borrowed topic-partition for looking queues up without allocating a
/// key per record. Hashes exactly as `TopicPartition` does (str, then i32).
#[derive(Hash)]
struct TpRef<'a> {
    topic: &'a str,
    partition: i32,
}

impl indexmap::Equivalent<TopicPartition> for TpRef<'_> {
    fn equivalent(&self, key: &TopicPartition) -> bool {
        self.partition == key.partition && self.topic == &*key.topic
    }
}

/// One partition's queue.
#[derive(Debug, Default)]
pub(crate) struct PartitionQueue {
    batches: VecDeque<ProducerBatch>,
    busy: usize,
    /// The broker the partition's taken batches went to.
    busy_node: Option<i32>,
    pub(crate) sequence: PartitionSequence,
    /// The partition's leader as of metadata generation `leader_seen`
    /// (looked up again only when the metadata changes: a drain visits
    /// every partition, and with a thousand of them the lookups were most
    /// of its cost).
    leader: Option<i32>,
    leader_seen: Option<u64>,
    /// Records in the partition's latest sent batch: a new batch's record
    /// list is sized for as many, so a busy partition's lists are never
    /// regrown record by record, and a quiet one's reserve little (room
    /// reserved but unused is not charged to `buffer.memory`).
    recent_batch_len: usize,
    /// When the partition's newest batch was started (for
    /// `metadata.max.idle.ms`: a topic with a batch queued or in flight is
    /// in use anyway, so this is when it was last used, to within the life
    /// of a batch, without a clock read per record).
    newest_batch_at: Option<Instant>,
}

/// Batching limits, from the config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub batch_size: usize,
    pub linger: Duration,
    pub max_request_size: usize,
    /// Most batches of one partition in flight at once.
    pub max_in_flight: usize,
}

/// When a record is appended: the time, and the metadata generation it
/// was placed under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppendAt<'a> {
    /// The time, if the caller has read it; otherwise it is read only when
    /// the record starts a new batch (the one place it is needed), so that
    /// a record appended to an open batch costs no clock read.
    pub now: Option<Instant>,
    pub meta_generation: u64,
    /// The topic's partitions with a known leader, for keyless records.
    pub available: &'a [i32],
}

/// Inputs of a drain decision besides `now`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DrainContext {
    pub now: Instant,
    /// Send whatever is queued without waiting for linger (flush, close,
    /// or `send` waiting for buffer memory).
    pub force: bool,
    /// The identity for new batches; `None` blocks first sends (no producer id yet).
    pub producer: Option<ProducerIdentity>,
    /// Whether batches get sequence numbers.
    pub idempotent: bool,
    /// The metadata generation `leader_of` answers for.
    pub meta_generation: u64,
}

/// A drain decision.
#[derive(Debug, Default)]
pub(crate) struct Drained {
    pub batches: Vec<ProducerBatch>,
    /// When to look again if nothing changes before then.
    pub wake_at: Option<Instant>,
    /// A partition started over under a new epoch: the producer's current
    /// identity is now this.
    pub bumped_to: Option<ProducerIdentity>,
    /// A partition must start over and the epoch space is used up: a new
    /// producer id is needed.
    pub needs_new_id: bool,
}

/// All partitions' queues and the sticky partitioner's state.
#[derive(Debug)]
pub(crate) struct Accumulator {
    limits: Limits,
    queues: IndexMap<TopicPartition, PartitionQueue, FxBuildHasher>,
    sticky: StickyPartitions,
    /// Per topic: the batch id the sticky partition is filling.
    sticky_batch: HashMap<String, u64, FxBuildHasher>,
    next_id: u64,
    /// Ids of batches not finished yet: what `flush` waits for.
    /// (A split batch's halves share their id, hence the count.)
    incomplete: BTreeMap<u64, usize>,
    /// Where the next drain starts, so no partition starves the others.
    drain_start: usize,
    /// When each broker's sender will next look at the queues (now, if it
    /// is sending), as it said after its last look; absent if it waits for
    /// a wake-up. A new batch needs no wake-up if its broker's sender will
    /// look before the batch's linger ends anyway (see `append`).
    sender_looks: HashMap<i32, Instant, FxBuildHasher>,
}

fn min_instant(a: Option<Instant>, b: Instant) -> Option<Instant> {
    Some(a.map_or(b, |a| a.min(b)))
}

impl Accumulator {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            queues: IndexMap::default(),
            sticky: StickyPartitions::default(),
            sticky_batch: HashMap::default(),
            next_id: 0,
            incomplete: BTreeMap::new(),
            drain_start: 0,
            sender_looks: HashMap::default(),
        }
    }

    /// Broker `node`'s sender will next look at the queues at `at` (`None`:
    /// only when woken).
    pub(crate) fn sender_looks_at(&mut self, node: i32, at: Option<Instant>) {
        match at {
            Some(at) => self.sender_looks.insert(node, at),
            None => self.sender_looks.remove(&node),
        };
    }

    fn has_room(q: &PartitionQueue, id: Option<u64>, size: usize, batch_size: usize) -> bool {
        match q.batches.back() {
            Some(b) if !b.sealed && id.is_none_or(|id| b.id == id) => {
                b.records.is_empty() || b.size + size <= batch_size
            }
            _ => false,
        }
    }

    /// Append a record. Returns its partition, whether a sender should
    /// look now (a batch was created or filled), and the record's handle if
    /// it is awaited (`Completion::future`).
    pub(crate) fn append(
        &mut self,
        topic: &str,
        placement: Placement,
        partitions: usize,
        record: PendingRecord,
        size: usize,
        at: AppendAt<'_>,
    ) -> (i32, bool, Option<DeliveryFuture>) {
        let AppendAt {
            now,
            meta_generation,
            available,
        } = at;
        let partition = match placement {
            Placement::Partition(p) => p,
            Placement::Sticky => {
                let p = self.sticky.current(topic, partitions, available);
                match self.sticky_batch.get(topic) {
                    // The sticky batch is still open with room: stay.
                    Some(&id)
                        if self
                            .queues
                            .get(&TpRef {
                                topic,
                                partition: p,
                            })
                            .is_some_and(|q| {
                                Self::has_room(q, Some(id), size, self.limits.batch_size)
                            }) =>
                    {
                        p
                    }
                    // It was filled or sent: a new batch means a new partition.
                    Some(_) => self.sticky.next(topic, p, partitions, available),
                    None => p,
                }
            }
        };
        let index = match self.queues.get_index_of(&TpRef { topic, partition }) {
            Some(i) => i,
            None => {
                let key = TopicPartition::new(topic, partition);
                self.queues.insert_full(key, PartitionQueue::default()).0
            }
        };
        let batch_size = self.limits.batch_size;
        let (tp, q) = self.queues.get_index_mut(index).expect("index just found");
        let mut wake = false;
        if !Self::has_room(q, None, size, batch_size) {
            let now = now.unwrap_or_else(Instant::now);
            q.newest_batch_at = Some(now);
            if let Some(b) = q.batches.back_mut() {
                // Full (the record does not fit): ready to go now.
                wake |= !b.sealed;
                b.sealed = true;
            }
            let id = self.next_id;
            self.next_id += 1;
            self.incomplete.insert(id, 1);
            // A sender must hear of a new batch unless it will look before
            // the batch's linger ends anyway: with many partitions, waking
            // it for every new batch made it scan them all every time.
            // (The leader must be known for the current metadata.)
            let looks_in_time = q
                .leader
                .filter(|_| q.leader_seen == Some(meta_generation))
                .and_then(|n| self.sender_looks.get(&n))
                .is_some_and(|at| *at <= now + self.limits.linger);
            wake |= !looks_in_time;
            let capacity = q.recent_batch_len.clamp(4, 1024);
            q.batches
                .push_back(ProducerBatch::new(id, tp.clone(), now, capacity));
        }
        let b = q.batches.back_mut().expect("a batch was just ensured");
        let handle = b.push(record, size);
        if b.size >= batch_size {
            b.sealed = true;
            wake = true;
        }
        if placement == Placement::Sticky {
            let id = b.id;
            match self.sticky_batch.get_mut(topic) {
                Some(current) => *current = id,
                None => {
                    self.sticky_batch.insert(topic.to_string(), id);
                }
            }
        }
        (partition, wake, handle)
    }

    /// Seal every open batch; returns the id mark that `flush` waits below.
    pub(crate) fn seal_all(&mut self) -> u64 {
        for q in self.queues.values_mut() {
            if let Some(b) = q.batches.back_mut() {
                b.sealed = true;
            }
        }
        self.next_id
    }

    /// Whether any batch with an id below `mark` is unfinished.
    pub(crate) fn has_incomplete_below(&self, mark: u64) -> bool {
        self.incomplete.range(..mark).next().is_some()
    }

    /// Whether nothing at all is unfinished.
    pub(crate) fn is_idle(&self) -> bool {
        self.incomplete.is_empty()
    }

    /// Unfinished batches, for `close` messages.
    pub(crate) fn incomplete_count(&self) -> usize {
        self.incomplete.len()
    }

    /// Whether a queued batch still waits for a definitive answer under
    /// the current producer id (see `ProducerBatch::unsure`).
    #[cfg(test)]
    pub(crate) fn has_unsure(&self) -> bool {
        self.queues
            .values()
            .any(|q| q.batches.iter().any(|b| b.unsure && b.sequence.is_some()))
    }

    /// The leaders of partitions with queued batches, and whether any of
    /// them has none. Leaders are looked up (`leader_of`) only for queues
    /// whose cached leader predates `meta_generation`.
    pub(crate) fn queued_leaders(
        &mut self,
        meta_generation: u64,
        leader_of: impl Fn(&TopicPartition) -> Option<i32>,
    ) -> (Vec<i32>, bool) {
        let mut leaders: Vec<i32> = Vec::new();
        let mut leaderless = false;
        for (tp, q) in self.queues.iter_mut() {
            if q.batches.is_empty() {
                continue;
            }
            if q.leader_seen != Some(meta_generation) {
                q.leader = leader_of(tp);
                q.leader_seen = Some(meta_generation);
            }
            match q.leader {
                Some(n) if !leaders.contains(&n) => leaders.push(n),
                Some(_) => {}
                None => leaderless = true,
            }
        }
        (leaders, leaderless)
    }

    /// Topics the accumulator has seen, for metadata refreshes.
    pub(crate) fn topics(&self) -> impl Iterator<Item = &str> {
        self.queues.keys().map(|tp| &*tp.topic)
    }

    /// Per topic with queues: whether any of its partitions holds a batch
    /// (queued or taken), and when its newest batch was started.
    pub(crate) fn topic_use(&self) -> HashMap<&str, (bool, Option<Instant>)> {
        let mut out: HashMap<&str, (bool, Option<Instant>)> = HashMap::new();
        for (tp, q) in &self.queues {
            let e = out.entry(&*tp.topic).or_default();
            e.0 |= !q.batches.is_empty() || q.busy > 0;
            e.1 = e.1.max(q.newest_batch_at);
        }
        out
    }

    /// Free the state of idle topics (`metadata.max.idle.ms`): their
    /// queues (all empty), sticky partitions and sequence numbers. Returns
    /// whether any of their partitions had numbered a batch: the broker
    /// may still hold those sequences under the producer's current epoch,
    /// and sequence 0 again under it could be taken for one of the last
    /// five batches there and acknowledged without being written (the
    /// soak found that loss, seed 7). So the caller moves the producer to
    /// a new epoch, which the forgotten partitions take when used again.
    pub(crate) fn forget_topics(&mut self, topics: &std::collections::HashSet<String>) -> bool {
        let mut numbered = false;
        self.queues.retain(|tp, q| {
            let forget = topics.contains(&*tp.topic);
            debug_assert!(!forget || (q.batches.is_empty() && q.busy == 0));
            numbered |= forget && q.sequence.numbered();
            !forget
        });
        for t in topics {
            self.sticky.forget(t);
            self.sticky_batch.remove(t.as_str());
        }
        self.queues.shrink_to_fit();
        self.sticky.shrink_to_fit();
        self.sticky_batch.shrink_to_fit();
        numbered
    }

    /// Take the batches that broker `node` should send now, at most one per
    /// partition and `max.request.size` bytes in all.
    pub(crate) fn drain(
        &mut self,
        node: i32,
        leader_of: impl Fn(&TopicPartition) -> Option<i32>,
        ctx: DrainContext,
    ) -> Drained {
        let mut out = Drained::default();
        let n = self.queues.len();
        if n == 0 {
            return out;
        }
        let mut bytes = 0usize;
        let start = self.drain_start % n;
        for i in 0..n {
            let idx = (start + i) % n;
            let (tp, q) = self.queues.get_index_mut(idx).expect("index in range");
            let Some(front) = q.batches.front() else {
                continue;
            };
            if q.leader_seen != Some(ctx.meta_generation) {
                q.leader = leader_of(tp);
                q.leader_seen = Some(ctx.meta_generation);
            }
            if q.leader != Some(node) {
                continue;
            }
            if let Some(at) = front.retry_at {
                if at > ctx.now {
                    out.wake_at = min_instant(out.wake_at, at);
                    continue;
                }
            }
            // Ordering: a retry goes out only once everything sent before
            // it has come back; nothing goes to a new leader while the old
            // one still has batches of this partition.
            let busy_elsewhere = q.busy > 0 && (front.attempts > 0 || q.busy_node != Some(node));
            // Until the broker acknowledged a batch of this partition under
            // its identity it may hold no state for us, and then (Kafka
            // 2.5+, KIP-360) it takes a batch at any sequence: a second
            // batch in flight could be written while the first is refused,
            // and land before it. So one at a time until the first ack.
            let in_flight_limit = if ctx.idempotent && !q.sequence.acknowledged() {
                1
            } else {
                self.limits.max_in_flight
            };
            if busy_elsewhere || q.busy >= in_flight_limit {
                continue;
            }
            // The identity new batches of this partition are numbered
            // under. A partition that must start over (a new epoch, or a
            // new producer id) does so once nothing of it is in flight or
            // waits to learn whether it was written: its queued batches,
            // all refused so far, are renumbered from 0.
            // (Looked for only off the common path: it walks the queue.)
            let has_unsure =
                |q: &PartitionQueue| q.batches.iter().any(|b| b.unsure && b.sequence.is_some());
            let numbering = match (ctx.idempotent, ctx.producer) {
                (false, Some(none)) => Numbering::Under(none),
                (false, None) => Numbering::Wait,
                (true, current) => match q.sequence.numbering(current) {
                    Numbering::StartOver(id) if q.busy == 0 && !has_unsure(q) => {
                        q.sequence.start_over(id);
                        for b in q.batches.iter_mut() {
                            b.clear_sequence();
                        }
                        if current.is_some_and(|c| c != id && c.id == id.id) {
                            out.bumped_to = Some(id);
                        }
                        Numbering::Under(id)
                    }
                    Numbering::Wait if current.is_some() => {
                        out.needs_new_id = true;
                        Numbering::Wait
                    }
                    n => n,
                },
            };
            let front = q.batches.front().expect("checked above");
            // Until then only batches numbered already go out, under their
            // old identity and sequence, and only while one of them waits
            // to learn whether it was written: the broker can say whether
            // it has it. Batches ahead of it go too (they are numbered
            // already), or it could never go.
            let producer = match (numbering, front.sequence) {
                (Numbering::Under(p), _) => p,
                (_, Some((p, _))) if has_unsure(q) => p,
                _ => continue,
            };
            let linger_end = front.created + self.limits.linger;
            let ready = front.sealed
                || q.batches.len() > 1
                || ctx.force
                || front.attempts > 0
                || linger_end <= ctx.now;
            if !ready {
                out.wake_at = min_instant(out.wake_at, linger_end);
                continue;
            }
            let size = front.size;
            if !out.batches.is_empty() && bytes + size > self.limits.max_request_size {
                // Full request: the rest waits for the next one.
                out.wake_at = Some(ctx.now);
                break;
            }
            let mut b = q.batches.pop_front().expect("front exists");
            b.sealed = true;
            q.recent_batch_len = b.records.len();
            if b.sequence.is_none() {
                let base = if ctx.idempotent {
                    q.sequence.assign(b.record_count())
                } else {
                    -1
                };
                b.sequence = Some((producer, base));
            }
            b.attempts += 1;
            q.busy += 1;
            q.busy_node = Some(node);
            bytes += size;
            out.batches.push(b);
            self.drain_start = idx + 1;
        }
        out
    }

    /// Put a batch back for a retry, ahead of every batch with a later
    /// sequence (and of all batches not sent yet).
    pub(crate) fn requeue(&mut self, mut b: ProducerBatch, retry_at: Instant) {
        b.retry_at = Some(retry_at);
        let q = self.queues.entry(b.tp.clone()).or_default();
        q.busy = q.busy.saturating_sub(1);
        let seq = b.sequence.map(|(_, s)| q.sequence.pos(s));
        let pos = q
            .batches
            .iter()
            .position(|o| match (o.sequence, seq) {
                (None, _) => true,
                (Some((_, os)), Some(s)) => q.sequence.pos(os) > s,
                (Some(_), None) => false,
            })
            .unwrap_or(q.batches.len());
        q.batches.insert(pos, b);
    }

    /// Put back the two halves of a batch the broker found too large; the
    /// first takes the original's place (and its busy slot), the second
    /// follows it.
    pub(crate) fn requeue_split(
        &mut self,
        first: ProducerBatch,
        second: ProducerBatch,
        retry_at: Instant,
    ) {
        if let Some(n) = self.incomplete.get_mut(&first.id) {
            *n += 1;
        }
        let tp = first.tp.clone();
        self.requeue(first, retry_at);
        let q = self.queues.get_mut(&tp).expect("just requeued");
        let pos = q
            .batches
            .iter()
            .position(|b| b.id == second.id)
            .map_or(0, |p| p + 1);
        let mut second = second;
        second.retry_at = Some(retry_at);
        q.batches.insert(pos, second);
    }

    /// The batch at `base` is not written, and the broker took only our
    /// next sequence during the attempts of the later queued batches: none of
    /// those can have been written either. Their fate is no longer unknown.
    pub(crate) fn not_written_from(&mut self, tp: &TopicPartition, base: i32, now: Instant) {
        if let Some(q) = self.queues.get_mut(tp) {
            let from = q.sequence.pos(base);
            for b in q.batches.iter_mut() {
                if b.sequence.is_some_and(|(_, s)| q.sequence.pos(s) > from)
                    && q.sequence.enforced_order_since(b.created, now)
                {
                    b.unsure = false;
                }
            }
        }
    }

    /// The batch at `(tp, base)` was given up (its records failed locally);
    /// `never_written` if no attempt of it can have been written.
    pub(crate) fn given_up(
        &mut self,
        tp: &TopicPartition,
        base: i32,
        never_written: bool,
        now: Instant,
    ) {
        let sequence = &mut self.queues.entry(tp.clone()).or_default().sequence;
        sequence.given_up(base, never_written);
        // The broker still expects this batch's sequence: start over.
        sequence.request_bump();
        if never_written {
            self.not_written_from(tp, base, now);
        }
    }

    /// Whether the batch at `(tp, base)`, created at `created`, cannot be in
    /// the log whatever happened to its requests: the broker took only our
    /// next sequence throughout, and an earlier-numbered batch of the same
    /// producer id has never been written, either given up or waiting here
    /// for a retry with every attempt so far refused (not in flight, so no
    /// attempt of it can land before this one's).
    pub(crate) fn cannot_be_written(
        &self,
        tp: &TopicPartition,
        base: i32,
        created: Instant,
        now: Instant,
    ) -> bool {
        self.queues.get(tp).is_some_and(|q| {
            let pos = q.sequence.pos(base);
            q.sequence.enforced_order_since(created, now)
                && (q.sequence.after_given_up(base)
                    || q.batches.iter().any(|b| {
                        !b.unsure && b.sequence.is_some_and(|(_, s)| q.sequence.pos(s) < pos)
                    }))
        })
    }

    /// Whether an OUT_OF_ORDER_SEQUENCE_NUMBER for the batch at `base` must
    /// be read as "the broker lost our state" (as at the head of the
    /// partition) rather than "an earlier batch failed and will be resent
    /// first, so this one was not written". The second reading holds only
    /// while that earlier batch is still ours to resend; once a batch of
    /// this producer id was given up here, the answer proves nothing about
    /// this one (found by the soak, seed 484: a batch written before was
    /// renumbered and written again). Nor does it for a batch behind the
    /// next sequence the broker expects (a later one was acknowledged): a
    /// batch written but out of the broker's window of five is answered
    /// so too.
    pub(crate) fn oosn_at_head(&self, tp: &TopicPartition, base: i32) -> bool {
        self.queues.get(tp).is_some_and(|q| {
            q.sequence.gave_up() || q.sequence.is_head(base) || q.sequence.is_behind(base)
        })
    }

    /// Take the queued batches of `tp` numbered after `base` whose fate is
    /// unknown: the batch at `base` cannot be written under this producer
    /// id, so they cannot be resent to find out, and they cannot be
    /// renumbered either (they may be in the log).
    pub(crate) fn take_unsure_after(
        &mut self,
        tp: &TopicPartition,
        base: i32,
    ) -> Vec<ProducerBatch> {
        let Some(q) = self.queues.get_mut(tp) else {
            return Vec::new();
        };
        let from = q.sequence.pos(base);
        let (taken, kept): (Vec<_>, Vec<_>) = q
            .batches
            .drain(..)
            .partition(|b| b.unsure && b.sequence.is_some_and(|(_, s)| q.sequence.pos(s) > from));
        q.batches = kept.into();
        q.busy += taken.len();
        taken
    }

    /// The broker acknowledged batch `(tp, base)` of `count` records.
    pub(crate) fn acked(&mut self, tp: &TopicPartition, base: i32, count: i32, now: Instant) {
        if let Some(q) = self.queues.get_mut(tp) {
            if base >= 0 {
                q.sequence.acked(base, count, now);
            }
        }
    }

    /// A taken batch's outcomes were delivered.
    pub(crate) fn finish(&mut self, tp: &TopicPartition, id: u64) {
        if let Some(q) = self.queues.get_mut(tp) {
            q.busy = q.busy.saturating_sub(1);
        }
        if let Some(n) = self.incomplete.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                self.incomplete.remove(&id);
            }
        }
    }

    /// Take the batches whose delivery timeout has passed. Only a
    /// partition's front batches, and only while none of its batches is in
    /// flight: a batch in flight may yet be written.
    pub(crate) fn expire(
        &mut self,
        now: Instant,
        timeout: Duration,
    ) -> (Vec<ProducerBatch>, Option<Instant>) {
        let mut out = Vec::new();
        let mut next = None;
        for q in self.queues.values_mut() {
            if q.busy > 0 {
                // In flight: the sender handles its deadline, and a response
                // wakes us; a past deadline here would only spin.
                continue;
            }
            while let Some(b) = q.batches.front() {
                let deadline = b.created + timeout;
                if deadline > now {
                    next = min_instant(next, deadline);
                    break;
                }
                let b = q.batches.pop_front().expect("front exists");
                q.busy += 1;
                q.busy_node = None;
                out.push(b);
            }
        }
        (out, next)
    }

    /// Take every queued batch (closing without delivering).
    pub(crate) fn take_all(&mut self) -> Vec<ProducerBatch> {
        let mut out = Vec::new();
        for q in self.queues.values_mut() {
            if !q.batches.is_empty() {
                q.busy += q.batches.len();
                q.busy_node = None;
                out.extend(q.batches.drain(..));
            }
        }
        out
    }

    /// The broker's state for `tp` can no longer be trusted: the partition
    /// starts over under a new epoch before numbering another batch.
    pub(crate) fn request_bump(&mut self, tp: &TopicPartition) {
        self.queues
            .entry(tp.clone())
            .or_default()
            .sequence
            .request_bump();
    }

    /// Whether `tp` already waits to start over.
    pub(crate) fn needs_bump(&self, tp: &TopicPartition) -> bool {
        self.queues.get(tp).is_some_and(|q| q.sequence.needs_bump())
    }

    /// Idempotence is off (the broker has no InitProducerId): batches
    /// numbered for it lose their numbers.
    pub(crate) fn clear_sequences(&mut self) {
        for q in self.queues.values_mut() {
            q.sequence = PartitionSequence::default();
            for b in q.batches.iter_mut() {
                b.clear_sequence();
            }
        }
    }
}

#[cfg(test)]
impl Accumulator {
    /// As if the broker had acknowledged a batch of `tp` (so more than one
    /// may be in flight).
    pub(crate) fn acknowledge_for_test(&mut self, tp: &TopicPartition) {
        let q = self.queues.get_mut(tp).expect("queue exists");
        // Under the identity the tests' `ctx` gives, so a drain keeps it.
        q.sequence.start_over(ProducerIdentity { id: 1, epoch: 0 });
        q.sequence.acked(0, 0, Instant::now());
    }

    /// (sequence, unsure) of the queued batches of `tp`, in queue order.
    pub(crate) fn queued_for_test(&self, tp: &TopicPartition) -> Vec<(i32, bool)> {
        self.queues.get(tp).map_or(Vec::new(), |q| {
            q.batches
                .iter()
                .map(|b| (b.sequence.map_or(-1, |s| s.1), b.unsure))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests;
