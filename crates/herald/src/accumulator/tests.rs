//! Unit tests of `accumulator`, driven with fabricated instants.

use super::*;
use crate::batch::Completion;

fn rec() -> PendingRecord {
    PendingRecord {
        key: None,
        value: Some(bytes::Bytes::from_static(b"0123456789")),
        headers: vec![],
        timestamp: 0,
        completion: Completion::future(),
    }
}

fn acc(batch_size: usize) -> Accumulator {
    Accumulator::new(Limits {
        batch_size,
        linger: Duration::from_millis(5),
        max_request_size: 1 << 20,
        max_in_flight: 5,
    })
}

fn ctx(now: Instant) -> DrainContext {
    DrainContext {
        now,
        force: false,
        producer: Some(ProducerIdentity { id: 1, epoch: 0 }),
        idempotent: true,
        meta_generation: 0,
    }
}

fn at(now: Instant) -> AppendAt<'static> {
    AppendAt {
        now: Some(now),
        meta_generation: 0,
        available: &[],
    }
}

fn leader0(_: &TopicPartition) -> Option<i32> {
    Some(0)
}

#[test]
fn a_sender_is_woken_only_when_it_would_not_look_in_time() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let append = |a: &mut Accumulator, size: usize, now: Instant| {
        a.append("t", Placement::Partition(0), 1, rec(), size, at(now))
            .1
    };

    let mut a = acc(1000);
    assert!(append(&mut a, 31, t0), "leader unknown: a new batch wakes");
    a.acknowledge_for_test(&TopicPartition::new("t", 0));
    // A drain learns the leader; the sender looks again at the linger end.
    let d = a.drain(0, leader0, ctx(t0));
    assert_eq!((d.batches.len(), d.wake_at), (0, Some(t0 + ms(5))));
    a.sender_looks_at(0, d.wake_at);
    assert!(!append(&mut a, 31, t0 + ms(1)), "room in the open batch");
    // The next record does not fit (61 + 31 + 31 + 920 > 1000): the
    // batch is full, ready now, and wakes the sender though it looks
    // within the new batch's linger (61 + 920 < 1000 stays open).
    assert!(append(&mut a, 920, t0 + ms(1)), "a full batch wakes");

    let mut a = acc(1000);
    assert!(append(&mut a, 31, t0));
    a.acknowledge_for_test(&TopicPartition::new("t", 0));
    assert_eq!(a.drain(0, leader0, ctx(t0 + ms(6))).batches.len(), 1);
    // A new batch whose linger ends after the sender's next look.
    a.sender_looks_at(0, Some(t0 + ms(8)));
    assert!(!append(&mut a, 31, t0 + ms(6)), "looks in time: no wake");
    // A sender that waits to be woken (no time to look) is woken.
    assert_eq!(a.drain(0, leader0, ctx(t0 + ms(12))).batches.len(), 1);
    a.sender_looks_at(0, None);
    assert!(append(&mut a, 31, t0 + ms(12)), "waits for a wake");
    // Newer metadata: the cached leader is not trusted until a drain.
    assert_eq!(a.drain(0, leader0, ctx(t0 + ms(18))).batches.len(), 1);
    a.sender_looks_at(0, Some(t0 + ms(18)));
    let fresh = AppendAt {
        now: Some(t0 + ms(18)),
        meta_generation: 1,
        available: &[],
    };
    assert!(
        a.append("t", Placement::Partition(0), 1, rec(), 31, fresh)
            .1,
        "newer metadata wakes"
    );
}

#[test]
fn linger_then_send() {
    let t0 = Instant::now();
    let mut a = acc(1000);
    let (p, wake, _) = a.append("t", Placement::Partition(0), 1, rec(), 31, at(t0));
    let tp = TopicPartition::new("t", p);
    assert!(wake, "a new batch wakes the sender");
    let d = a.drain(0, leader0, ctx(t0));
    assert!(d.batches.is_empty(), "lingering");
    assert_eq!(d.wake_at, Some(t0 + Duration::from_millis(5)));
    let d = a.drain(0, leader0, ctx(t0 + Duration::from_millis(5)));
    assert_eq!(d.batches.len(), 1);
    assert_eq!(d.batches[0].sequence.map(|s| s.1), Some(0));
    assert!(a.has_incomplete_below(1));
    a.finish(&tp, d.batches[0].id);
    assert!(a.is_idle());
}

#[test]
fn full_batch_goes_at_once_and_sequences_follow() {
    let t0 = Instant::now();
    let mut a = acc(61 + 3 * 31);
    for _ in 0..7 {
        a.append("t", Placement::Partition(0), 1, rec(), 31, at(t0));
    }
    a.acknowledge_for_test(&TopicPartition::new("t", 0));
    // 3 + 3 + 1 records; the first two batches are full.
    let d = a.drain(0, leader0, ctx(t0));
    assert_eq!(d.batches.len(), 1, "one batch per partition per request");
    assert_eq!(d.batches[0].records.len(), 3);
    let d2 = a.drain(0, leader0, ctx(t0));
    assert_eq!(d2.batches[0].sequence.map(|s| s.1), Some(3));
    // The third is not full and still lingers.
    assert!(a.drain(0, leader0, ctx(t0)).batches.is_empty());
}

#[test]
fn retry_waits_for_in_flight_and_keeps_order() {
    let t0 = Instant::now();
    let mut a = acc(61 + 31);
    for _ in 0..3 {
        a.append("t", Placement::Partition(0), 1, rec(), 31, at(t0));
    }
    a.acknowledge_for_test(&TopicPartition::new("t", 0));
    let b1 = a.drain(0, leader0, ctx(t0)).batches.pop().unwrap();
    let b2 = a.drain(0, leader0, ctx(t0)).batches.pop().unwrap();
    assert_eq!((b1.sequence.unwrap().1, b2.sequence.unwrap().1), (0, 1));
    // b1 fails retriably; b2 is still in flight.
    a.requeue(b1, t0);
    assert!(
        a.drain(0, leader0, ctx(t0)).batches.is_empty(),
        "the retry waits until b2 is back"
    );
    a.requeue(b2, t0);
    let again: Vec<i32> = (0..3)
        .flat_map(|_| a.drain(0, leader0, ctx(t0)).batches)
        .map(|b| b.sequence.unwrap().1)
        .collect();
    assert_eq!(
        again,
        vec![0],
        "only the head goes while others are back in the queue"
    );
}

#[test]
fn no_send_to_new_leader_while_old_busy() {
    let t0 = Instant::now();
    let mut a = acc(61 + 31);
    a.append("t", Placement::Partition(0), 1, rec(), 31, at(t0));
    a.append("t", Placement::Partition(0), 1, rec(), 31, at(t0));
    let _b1 = a.drain(0, leader0, ctx(t0)).batches.pop().unwrap();
    let d = a.drain(1, |_| Some(1), ctx(t0));
    assert!(d.batches.is_empty());
}

#[test]
fn sticky_fills_one_partition_then_moves() {
    let t0 = Instant::now();
    let mut a = acc(61 + 4 * 31);
    let mut parts = Vec::new();
    for _ in 0..40 {
        let (p, _, _) = a.append("t", Placement::Sticky, 3, rec(), 31, at(t0));
        parts.push(p);
    }
    // Runs of exactly one batch (4 records), each on a new partition.
    for run in parts.chunks(4) {
        assert!(run.iter().all(|p| *p == run[0]), "{parts:?}");
    }
    for w in parts.chunks(4).collect::<Vec<_>>().windows(2) {
        assert_ne!(w[0][0], w[1][0], "{parts:?}");
    }
}

#[test]
fn without_a_producer_id_only_unsure_batches_go_out() {
    let t0 = Instant::now();
    let mut a = acc(61 + 31);
    a.append("t", Placement::Partition(0), 2, rec(), 31, at(t0));
    a.append("t", Placement::Partition(1), 2, rec(), 31, at(t0));
    let mut sent = a.drain(0, leader0, ctx(t0)).batches;
    assert_eq!(sent.len(), 2);
    // Partition 0's request timed out (unsure); partition 1 was refused.
    let mut b0 = sent.remove(0);
    let b1 = sent.remove(0);
    b0.unsure = true;
    let (p0, seq0) = (b0.tp.partition, b0.sequence);
    a.requeue(b0, t0);
    a.requeue(b1, t0);
    assert!(a.has_unsure());
    let mut c = ctx(t0);
    c.producer = None; // a producer-id reset is pending
    let d = a.drain(0, leader0, c);
    assert_eq!(d.batches.len(), 1, "only the unsure batch");
    assert_eq!(d.batches[0].tp.partition, p0);
    assert_eq!(
        d.batches[0].sequence, seq0,
        "same id and sequence as before"
    );
}

#[test]
fn batches_ahead_of_an_unsure_one_go_under_their_old_numbers() {
    let t0 = Instant::now();
    let mut a = acc(61 + 31);
    a.append("t", Placement::Partition(0), 1, rec(), 31, at(t0));
    a.append("t", Placement::Partition(0), 1, rec(), 31, at(t0));
    a.acknowledge_for_test(&TopicPartition::new("t", 0));
    let first = a.drain(0, leader0, ctx(t0)).batches.pop().unwrap();
    let mut second = a.drain(0, leader0, ctx(t0)).batches.pop().unwrap();
    // The first was refused (NOT_LEADER), the second's answer was lost.
    second.unsure = true;
    a.requeue(first, t0);
    a.requeue(second, t0);
    let mut c = ctx(t0);
    c.producer = None;
    let sent: Vec<i32> = a
        .drain(0, leader0, c)
        .batches
        .iter()
        .map(|b| b.sequence.unwrap().1)
        .collect();
    assert_eq!(sent, vec![0], "the head goes first, under its old number");
}

#[test]
fn not_written_settles_later_batches() {
    let t0 = Instant::now();
    let mut a = acc(61 + 31);
    let tp = TopicPartition::new("t", 0);
    // An earlier batch of ours was acknowledged there: the broker holds
    // our state and takes only the next sequence.
    a.append("t", Placement::Partition(0), 1, rec(), 31, at(t0));
    let first = a.drain(0, leader0, ctx(t0)).batches;
    a.acked(&tp, 0, 1, t0);
    for b in first {
        a.finish(&tp, b.id);
    }
    let t1 = t0 + Duration::from_millis(1);
    for _ in 0..3 {
        a.append("t", Placement::Partition(0), 1, rec(), 31, at(t1));
    }
    // Three requests in flight, none answered: all unsure, back in the queue.
    let taken: Vec<ProducerBatch> = (0..3)
        .flat_map(|_| a.drain(0, leader0, ctx(t1)).batches)
        .collect();
    assert_eq!(taken.len(), 3);
    for mut b in taken {
        b.unsure = true;
        a.requeue(b, t1);
    }
    assert!(a.has_unsure());
    // The broker says it lacks sequence 1: it has nothing after it either.
    a.not_written_from(&tp, 1, t1);
    let unsure: Vec<bool> = a.queues[0].batches.iter().map(|b| b.unsure).collect();
    assert_eq!(
        unsure,
        vec![true, false, false],
        "only later batches are settled"
    );
}

/// Soak seed 437: B24 was appended but answered with an error Kafka
/// gives after the append (unsure), and a later batch was acknowledged,
/// so B24 is behind the next sequence the broker expects. A later
/// refusal settles only what comes after it: B24 stays unsure (it was
/// read as "after", cleared, renumbered and written twice), and an
/// OUT_OF_ORDER_SEQUENCE_NUMBER for it proves nothing.
#[test]
fn a_batch_behind_the_acknowledged_ones_stays_unsure() {
    let t0 = Instant::now();
    let mut a = acc(61 + 31);
    let tp = TopicPartition::new("t", 0);
    a.append("t", Placement::Partition(0), 1, rec(), 31, at(t0));
    let mut b = a.drain(0, leader0, ctx(t0)).batches.pop().unwrap();
    b.unsure = true;
    let seq = b.sequence.unwrap().1;
    a.acked(&tp, 0, 1, t0); // warm state: the broker enforces order
    a.acked(&tp, seq + 1, 7, t0); // a later batch acknowledged
    a.requeue(b, t0);
    a.given_up(&tp, seq + 8, true, t0);
    assert_eq!(a.queued_for_test(&tp), vec![(seq, true)]);
    assert!(a.oosn_at_head(&tp, seq), "behind: OOSN proves nothing");
}

/// Until the broker acknowledged a batch of a partition (it may hold
/// no state for us, and Kafka 2.5+ then takes any sequence), one batch
/// of it is in flight; then up to max.in.flight.
#[test]
fn one_batch_in_flight_until_the_first_acknowledgement() {
    let t0 = Instant::now();
    let mut a = acc(61 + 31);
    let tp = TopicPartition::new("t", 0);
    for _ in 0..4 {
        a.append("t", Placement::Partition(0), 1, rec(), 31, at(t0));
    }
    let first = a.drain(0, leader0, ctx(t0)).batches;
    assert_eq!(first.len(), 1);
    assert!(a.drain(0, leader0, ctx(t0)).batches.is_empty(), "waits");
    a.acked(&tp, 0, 1, t0);
    for b in first {
        a.finish(&tp, b.id);
    }
    let more: usize = (0..3)
        .map(|_| a.drain(0, leader0, ctx(t0)).batches.len())
        .sum();
    assert_eq!(more, 3, "pipelined once acknowledged");
}

#[test]
fn expiry_does_not_spin_on_busy_partitions() {
    let t0 = Instant::now();
    let mut a = acc(61 + 31);
    a.append("t", Placement::Partition(0), 1, rec(), 31, at(t0));
    a.append("t", Placement::Partition(0), 1, rec(), 31, at(t0));
    let _inflight = a.drain(0, leader0, ctx(t0));
    let (exp, next) = a.expire(t0 + Duration::from_secs(5), Duration::from_secs(1));
    assert!(exp.is_empty(), "the partition has a batch in flight");
    assert_eq!(next, None, "no past deadline to wake up for");
}

#[test]
fn expiry_takes_front_batches_not_in_flight() {
    let t0 = Instant::now();
    let mut a = acc(61 + 31);
    a.append("t", Placement::Partition(0), 1, rec(), 31, at(t0));
    a.append("t", Placement::Partition(1), 2, rec(), 31, at(t0));
    let _inflight = a.drain(0, |tp| (tp.partition == 0).then_some(0), ctx(t0));
    let (exp, _) = a.expire(t0 + Duration::from_secs(2), Duration::from_secs(1));
    assert_eq!(exp.len(), 1);
    assert_eq!(exp[0].tp.partition, 1);
}
