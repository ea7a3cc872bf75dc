//! Unit tests of `sender`: decisions and how they are applied, without I/O.

use super::*;
use crate::batch::PendingRecord;
use crate::record_batch::ProducerIdentity;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

fn batch(p: i32, seq: i32) -> ProducerBatch {
    let mut b = ProducerBatch::new(p as u64, TopicPartition::new("t", p), Instant::now(), 1);
    b.push(PendingRecord::empty_for_test(), 21);
    b.sequence = Some((ProducerIdentity { id: 1, epoch: 0 }, seq));
    b
}

fn test_shared() -> Shared {
    Shared::new(
        crate::ProducerConfig::new("b:1"),
        Arc::new(crate::DefaultPartitioner::default()),
    )
}

fn response(codes: &[(i32, i16)]) -> ProduceResponse {
    ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
        .with_name(TopicName(StrBytes::from_static_str("t")))
        .with_partition_responses(
            codes
                .iter()
                .map(|(p, c)| {
                    PartitionProduceResponse::default()
                        .with_index(*p)
                        .with_error_code(*c)
                        .with_base_offset(100)
                        .with_log_append_time_ms(-1)
                })
                .collect(),
        )])
}

#[test]
fn decisions_follow_the_classification() {
    let bs = vec![
        batch(0, 0),
        batch(1, 5),
        batch(2, 0),
        batch(3, 0),
        batch(4, 0),
    ];
    let resp = response(&[(0, 0), (1, 45), (2, 6), (3, 10), (4, 46)]);
    let d = decide(&resp, &bs, "b:1", |_, base| base == 0);
    assert!(matches!(
        d[0],
        Decision::Success {
            base_offset: 100,
            ..
        }
    ));
    assert!(
        matches!(
            d[1],
            Decision::Retry {
                refresh_metadata: false,
                ..
            }
        ),
        "OOOSN behind a failed batch is retried: {:?}",
        d[1]
    );
    assert!(
        matches!(
            d[2],
            Decision::Retry {
                refresh_metadata: true,
                fate: Fate::Unknown,
                ..
            }
        ),
        "NOT_LEADER_OR_FOLLOWER can come after the append: {:?}",
        d[2]
    );
    assert!(
        matches!(d[3], Decision::Fail { .. }),
        "MESSAGE_TOO_LARGE is fatal"
    );
    assert!(
        matches!(d[4], Decision::Success { .. }),
        "duplicate is success"
    );
    let timed_out = decide(&response(&[(0, 7)]), &bs[..1], "b:1", |_, _| true);
    assert!(
        matches!(
            timed_out[0],
            Decision::Retry {
                fate: Fate::Unknown,
                ..
            }
        ),
        "REQUEST_TIMED_OUT leaves the batch's fate unknown"
    );
    let Decision::Fail { error } = &d[3] else {
        unreachable!()
    };
    let s = error.to_string();
    assert!(
        s.contains("MESSAGE_TOO_LARGE") && s.contains("t-3") && s.contains("b:1"),
        "{s}"
    );
}

/// The broker lost our producer state (UNKNOWN_PRODUCER_ID at the head
/// of the partition): a batch it refused outright is kept for the new
/// epoch, but one an earlier attempt may have written fails, saying
/// so, rather than be resent under an identity that cannot be
/// recognised as the same.
#[test]
fn lost_producer_state_fails_only_batches_that_may_be_written() {
    let shared = test_shared();
    let sure = batch(0, 0);
    let mut unsure = batch(1, 0);
    unsure.unsure = true;
    let reset = |e| Decision::ResetProducerId { error: e };
    let e = Error::Broker {
        code: KafkaCode(code::UNKNOWN_PRODUCER_ID),
        partition: None,
        broker: "b:1".into(),
        message: None,
    };
    let mut st = shared.lock();
    st.pid = PidState::Ready(ProducerIdentity { id: 1, epoch: 0 });
    let (outcomes, finished) = apply(
        &shared,
        &mut st,
        vec![sure, unsure],
        vec![reset(e.clone()), reset(e)],
        Instant::now(),
    );
    assert!(
        st.acc.needs_bump(&TopicPartition::new("t", 0))
            && st.acc.needs_bump(&TopicPartition::new("t", 1)),
        "both partitions start over under a new epoch"
    );
    assert_eq!(
        st.pid,
        PidState::Ready(ProducerIdentity { id: 1, epoch: 0 }),
        "no new producer id"
    );
    assert_eq!(finished.len(), 1, "only the unsure batch is finished");
    assert_eq!(finished[0].tp.partition, 1);
    let err = outcomes[0].error().expect("the batch failed");
    assert!(err.outcome_unknown(), "{err}");
    assert_eq!(err.kafka_code(), Some(code::UNKNOWN_PRODUCER_ID));
}

/// Seed 484's race, as decisions: B0 was given up under producer id P
/// (and a reset is pending), B1 is unsure and gets OUT_OF_ORDER_SEQUENCE_
/// NUMBER. B0 will never be resent, so that answer does not prove B1
/// unwritten: B1 fails as outcome-unknown instead of being renumbered
/// under the next id and written twice.
#[test]
fn out_of_order_behind_a_given_up_batch_proves_nothing() {
    let shared = test_shared();
    let mut st = shared.lock();
    st.pid = PidState::Ready(ProducerIdentity { id: 1, epoch: 0 });
    let tp = TopicPartition::new("t", 0);
    let mut b1 = batch(0, 5);
    b1.unsure = true;
    let resp = response(&[(0, code::OUT_OF_ORDER_SEQUENCE_NUMBER)]);
    // B0 (sequence 0) still to be resent: B1's answer means not written.
    let d = decide(&resp, std::slice::from_ref(&b1), "b:1", |tp, base| {
        st.acc.oosn_at_head(tp, base)
    });
    assert!(
        matches!(
            d[0],
            Decision::Retry {
                fate: Fate::NotWritten,
                ..
            }
        ),
        "{:?}",
        d[0]
    );
    // B0 given up: the answer is read as at the head.
    st.acc.given_up(&tp, 0, false, Instant::now());
    assert!(
        st.acc.needs_bump(&tp),
        "giving up starts the partition over"
    );
    assert!(st.acc.oosn_at_head(&tp, 5));
    let d = decide(&resp, std::slice::from_ref(&b1), "b:1", |tp, base| {
        st.acc.oosn_at_head(tp, base)
    });
    let (outcomes, finished) = apply(&shared, &mut st, vec![b1], d, Instant::now());
    assert_eq!(finished.len(), 1);
    let err = outcomes[0].error().expect("the batch failed");
    assert!(err.outcome_unknown(), "{err}");
}

/// An unknown answer for B1 while B0, numbered before it, waits for a
/// retry with every attempt refused: B1 cannot have been written only if
/// the broker already held our state (it acknowledged a batch of ours
/// here before B1 was made). A broker without it (a new producer id,
/// Kafka 2.5+) takes a batch at any sequence, so then B1 stays unsure.
#[test]
fn a_refused_earlier_batch_proves_later_ones_unwritten_only_once_acked() {
    let shared = test_shared();
    let mut st = shared.lock();
    st.pid = PidState::Ready(ProducerIdentity { id: 1, epoch: 0 });
    let timed_out = |b: &ProducerBatch| {
        decide(
            &response(&[(0, code::REQUEST_TIMED_OUT)]),
            std::slice::from_ref(b),
            "b:1",
            |_, _| false,
        )
    };
    let t0 = Instant::now();
    // B0 refused before any append (NOT_ENOUGH_REPLICAS): back in the
    // queue, sure.
    let b0 = batch(0, 0);
    let d = decide(
        &response(&[(0, code::NOT_ENOUGH_REPLICAS)]),
        std::slice::from_ref(&b0),
        "b:1",
        |_, _| true,
    );
    let _ = apply(&shared, &mut st, vec![b0], d, t0);
    // No acknowledgement yet: B1's unknown answer leaves it unsure.
    let b1 = batch(0, 5);
    let d = timed_out(&b1);
    let _ = apply(&shared, &mut st, vec![b1], d, t0);
    let unsure = |st: &State, seq| {
        st.acc
            .queued_for_test(&TopicPartition::new("t", 0))
            .into_iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, u)| u)
    };
    assert_eq!(
        unsure(&st, 5),
        Some(true),
        "no state at the broker: may be written"
    );
    // The broker acknowledges a batch of ours there; a batch made after
    // that, behind the refused B0, cannot have been written.
    let tp = TopicPartition::new("t", 0);
    st.acc.acked(&tp, -2, 0, t0); // negative base: ignored
    st.acc.acked(&tp, 100, 1, t0);
    let b2 = batch(0, 9); // created after the acknowledgement
    let d = timed_out(&b2);
    let _ = apply(
        &shared,
        &mut st,
        vec![b2],
        d,
        t0 + std::time::Duration::from_millis(1),
    );
    assert_eq!(unsure(&st, 9), Some(false));
}

/// A reset is pending, and a refused batch S that sits ahead of an
/// unsure one U is refused again (the broker expects a sequence herald
/// gave up): U can neither be resent to learn its fate nor renumbered,
/// so it fails as outcome-unknown, not after the delivery timeout.
#[test]
fn an_unsure_batch_behind_an_unwritable_one_fails_as_outcome_unknown() {
    let shared = test_shared();
    let mut st = shared.lock();
    let tp = TopicPartition::new("t", 0);
    let now = Instant::now();
    let mut u = batch(0, 20);
    u.unsure = true;
    st.acc.requeue(u, now);
    st.acc.given_up(&tp, 0, false, now);
    let s = batch(0, 10);
    let resp = response(&[(0, code::OUT_OF_ORDER_SEQUENCE_NUMBER)]);
    let d = decide(&resp, std::slice::from_ref(&s), "b:1", |tp, base| {
        st.acc.oosn_at_head(tp, base)
    });
    assert!(
        matches!(d[0], Decision::ResetProducerId { .. }),
        "{:?}",
        d[0]
    );
    let (outcomes, finished) = apply(&shared, &mut st, vec![s], d, now);
    assert_eq!(finished.len(), 1, "U is finished, S waits for the new id");
    let err = outcomes[0].error().expect("the batch failed");
    assert!(err.outcome_unknown(), "{err}");
    assert_eq!(st.acc.queued_for_test(&tp), vec![(10, false)]);
}

/// Finding 5 of the hardening review: a MESSAGE_TOO_LARGE answer that
/// arrives after `close` gave up (the driver has already failed
/// everything queued and stopped) must not requeue the halves into
/// queues nobody drains: every record gets its outcome now.
#[test]
fn a_split_while_aborting_fails_the_records_instead_of_requeueing() {
    let shared = test_shared();
    let mut st = shared.lock();
    st.pid = PidState::Ready(ProducerIdentity { id: 1, epoch: 0 });
    st.aborting = true;
    let mut b = batch(0, 0);
    b.push(PendingRecord::empty_for_test(), 21);
    let d = decide(
        &response(&[(0, code::MESSAGE_TOO_LARGE)]),
        std::slice::from_ref(&b),
        "b:1",
        |_, _| true,
    );
    let (outcomes, finished) = apply(&shared, &mut st, vec![b], d, Instant::now());
    assert_eq!(outcomes.len(), 1, "one batch finished");
    assert_eq!(outcomes[0].counts(), (2, 0), "both records failed");
    assert_eq!(finished.len(), 1);
    let tp = TopicPartition::new("t", 0);
    assert!(st.acc.queued_for_test(&tp).is_empty(), "nothing requeued");
}
