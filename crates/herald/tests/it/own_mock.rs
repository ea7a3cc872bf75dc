//! Against our own mock broker (test-support `MockBroker`), which checks
//! idempotent sequences like Kafka and answers duplicates with the original
//! offset, so faults that librdkafka's mock cannot model are tested here.

use std::time::Duration;

use herald::{Producer, ProducerConfig, Record, RecordMetadata};
use herald_test_support::{Fault, MockBroker};

use crate::BOUND;

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

async fn send_all(producer: &Producer, topic: &str, n: usize) -> Vec<RecordMetadata> {
    send_range(producer, topic, 0..n).await
}

/// Send records with the numbers in `range` as values; wait for each to be
/// delivered, in order.
async fn send_range(
    producer: &Producer,
    topic: &str,
    range: std::ops::Range<usize>,
) -> Vec<RecordMetadata> {
    let mut handles = Vec::with_capacity(range.len());
    for i in range {
        handles.push(
            producer
                .send(Record::new(topic, format!("{i}")))
                .await
                .unwrap(),
        );
    }
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(
            tokio::time::timeout(BOUND, h)
                .await
                .unwrap()
                .expect("delivered"),
        );
    }
    out
}

/// The log holds exactly the records 0..n in send order, each at the
/// offset herald reported.
fn assert_log_matches(mock: &MockBroker, topic: &str, reported: &[RecordMetadata]) {
    let log = mock.log(topic, 0);
    let values: Vec<usize> = log
        .iter()
        .map(|(_, v)| {
            std::str::from_utf8(v.as_deref().unwrap())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(
        values,
        (0..reported.len()).collect::<Vec<_>>(),
        "exactly once, in send order"
    );
    for (i, (offset, _)) in log.iter().enumerate() {
        assert_eq!(
            reported[i].offset, *offset,
            "record {i} reported at another offset"
        );
    }
}

fn producer(mock: &MockBroker) -> Producer {
    let cfg = ProducerConfig::new(&mock.bootstrap())
        .batch_size(1_000)
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(50));
    Producer::new(cfg).unwrap()
}

/// NOT_LEADER_OR_FOLLOWER on a request while later requests of the same
/// partition are in flight (5 allowed): the broker answers those
/// OUT_OF_ORDER_SEQUENCE_NUMBER, herald resends everything in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_retries_keep_order_on_a_sequence_checking_broker() {
    const N: usize = 3_000;
    let mock = MockBroker::start();
    mock.create_topic("order", 1);
    let p = producer(&mock);
    // The first Produce request fails; those sent behind it are refused.
    mock.push_faults(&[Fault::Error(NOT_LEADER_OR_FOLLOWER)]);
    let reported = send_all(&p, "order", N).await;
    assert_log_matches(&mock, "order", &reported);
    assert_eq!(mock.answered(NOT_LEADER_OR_FOLLOWER), 1);
    let oooseq = mock.answered(OUT_OF_ORDER_SEQUENCE_NUMBER);
    eprintln!(
        "pipelined: {oooseq} OUT_OF_ORDER_SEQUENCE_NUMBER answers, {:?}",
        p.stats()
    );
    assert_eq!(
        p.stats().producer_ids,
        1,
        "refusals behind a gap are not a reason for a new id"
    );
    p.close(BOUND).await.unwrap();
}

/// The broker forgets the producer's state (a restart or log truncation
/// losing it): the next batch is OUT_OF_ORDER_SEQUENCE_NUMBER at the head;
/// herald gets a new producer id, numbers from 0 again, and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_losing_producer_state_gets_a_new_producer_id() {
    const N: usize = 1_000;
    let mock = MockBroker::start();
    mock.create_topic("forget", 1);
    let p = producer(&mock);
    let mut reported = send_all(&p, "forget", N).await;
    mock.forget_producers();
    reported.extend(send_range(&p, "forget", N..2 * N).await);
    assert_log_matches(&mock, "forget", &reported);
    assert!(mock.answered(OUT_OF_ORDER_SEQUENCE_NUMBER) > 0);
    assert_eq!(p.stats().producer_ids, 2, "{:?}", p.stats());
    p.close(BOUND).await.unwrap();
}

/// `fault` on the first two Produce requests of 3,000 records: every
/// record is delivered, and the log holds each once, in send order, at the
/// offset herald reported.
async fn survives_two(fault: Fault, topic: &str) -> Producer {
    const N: usize = 3_000;
    let mock = MockBroker::start();
    mock.create_topic(topic, 1);
    let p = producer(&mock);
    mock.push_faults(&[fault, fault]);
    let reported = send_all(&p, topic, N).await;
    assert_eq!(mock.pending_faults(), 0, "both faults were applied");
    assert_log_matches(&mock, topic, &reported);
    assert!(p.stats().batch_retries > 0, "{:?}", p.stats());
    p
}

/// The broker appends, then the connection dies before the answer: herald
/// resends under the same sequences, the broker recognises the batches and
/// answers with their original offsets: nothing twice, offsets right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_then_dropped_is_deduplicated_with_original_offsets() {
    let p = survives_two(Fault::AppendThenDrop, "dedup").await;
    p.close(BOUND).await.unwrap();
}

/// The connection dies before the broker reads the request: resent, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_before_append_is_resent_once() {
    let p = survives_two(Fault::DropBeforeAppend, "lost").await;
    p.close(BOUND).await.unwrap();
}

/// A throttled answer (throttle_time_ms) is not an error, and nothing more
/// is sent to that broker until the throttle time has passed (KIP-219).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_honoured_and_is_not_an_error() {
    const N: usize = 500;
    let mock = MockBroker::start();
    mock.create_topic("throttled", 1);
    let p = producer(&mock);
    mock.push_faults(&[Fault::Throttle(400)]);
    // One request alone gets the throttled answer; then the rest is sent.
    let first = p.send(Record::new("throttled", "0")).await.unwrap();
    let mut reported = vec![tokio::time::timeout(BOUND, first).await.unwrap().unwrap()];
    reported.extend(send_range(&p, "throttled", 1..N).await);
    assert_log_matches(&mock, "throttled", &reported);
    let (arrivals, answers) = mock.produce_times();
    assert!(
        arrivals.len() >= 2,
        "more than one request: {}",
        arrivals.len()
    );
    let gap = arrivals[1].duration_since(answers[0]);
    assert!(
        gap >= Duration::from_millis(400),
        "the next request came {gap:?} after a 400 ms throttle"
    );
    let stats = p.stats();
    assert_eq!(
        (stats.throttled_ms, stats.records_failed),
        (400, 0),
        "{stats:?}"
    );
    p.close(BOUND).await.unwrap();
}

/// Leaders move between brokers while records flow (3 brokers, 3
/// partitions, every leader moved several times): requests that reach the
/// old leader are refused, herald refreshes metadata and sends to the new
/// one only after the old one's requests have drained; the logs hold every
/// record once, in send order, at the offsets reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_moves_keep_every_record_once_and_in_order() {
    const N: usize = 6_000;
    const PARTITIONS: usize = 3;
    let mock = MockBroker::start_cluster(3);
    mock.create_topic("moves", PARTITIONS);
    let p = producer(&mock);
    let mut handles = Vec::with_capacity(N);
    for i in 0..N {
        if i % 1_000 == 500 {
            let round = (i / 1_000) as i32;
            for part in 0..PARTITIONS {
                mock.move_leader("moves", part, (part as i32 + round + 1) % 3);
            }
        }
        let r = Record::new("moves", format!("{i}")).partition((i % PARTITIONS) as i32);
        handles.push(p.send(r).await.unwrap());
    }
    let mut reported = Vec::with_capacity(N);
    for h in handles {
        reported.push(
            tokio::time::timeout(BOUND, h)
                .await
                .unwrap()
                .expect("delivered"),
        );
    }
    for part in 0..PARTITIONS {
        let log = mock.log("moves", part);
        let values: Vec<usize> = log
            .iter()
            .map(|(_, v)| {
                std::str::from_utf8(v.as_deref().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        let want: Vec<usize> = (0..N).filter(|i| i % PARTITIONS == part).collect();
        assert_eq!(
            values, want,
            "partition {part}: exactly once, in send order"
        );
        for ((offset, _), i) in log.iter().zip(&want) {
            assert_eq!(reported[*i].offset, *offset, "record {i}");
        }
    }
    let refused = mock.answered(NOT_LEADER_OR_FOLLOWER);
    eprintln!(
        "leader moves: {refused} NOT_LEADER_OR_FOLLOWER answers, {:?}",
        p.stats()
    );
    assert!(refused > 0, "the moves were felt");
    p.close(BOUND).await.unwrap();
}
