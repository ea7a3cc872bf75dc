//! flush, close and drop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::{Error, Producer, ProducerConfig, Record};
use rdkafka::mocking::MockCluster;

use crate::BOUND;

/// Done-when 7: `flush` returns only when every record sent before it has
/// an outcome, even with a long `linger.ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_waits_for_every_outcome_despite_linger() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("flush", 2, 1).unwrap();
    let cfg = ProducerConfig::new(&mock.bootstrap_servers()).linger(Duration::from_secs(60));
    let producer = Producer::new(cfg).unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    for i in 0..500 {
        let d = done.clone();
        producer
            .send_with_callback(Record::new("flush", format!("{i}")), move |r| {
                r.expect("delivered");
                d.fetch_add(1, Ordering::SeqCst);
            })
            .await
            .unwrap();
    }
    let started = Instant::now();
    tokio::time::timeout(BOUND, producer.flush())
        .await
        .expect("flush returns");
    assert_eq!(
        done.load(Ordering::SeqCst),
        500,
        "flush returned before every outcome"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "flush does not wait for linger.ms"
    );
    producer.close(BOUND).await.unwrap();
    assert_eq!(producer.running_tasks(), 0);
}

/// Done-when 7: `close(timeout)` delivers what it can, then fails what is
/// left with a clear error and stops every task; later sends fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_with_timeout_fails_what_is_left() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("close", 1, 1).unwrap();
    let producer = Producer::new(ProducerConfig::new(&mock.bootstrap_servers())).unwrap();
    producer
        .send(Record::new("close", "ok"))
        .await
        .unwrap()
        .await
        .unwrap();
    mock.broker_round_trip_time(1, Duration::from_secs(30))
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..50 {
        handles.push(
            producer
                .send(Record::new("close", format!("{i}")))
                .await
                .unwrap(),
        );
    }
    let started = Instant::now();
    let r = tokio::time::timeout(BOUND, producer.close(Duration::from_millis(500)))
        .await
        .expect("close returns");
    let took = started.elapsed();
    let e = r.expect_err("records were left");
    assert!(
        e.to_string()
            .contains("not delivered within the close timeout"),
        "{e}"
    );
    assert!(took < Duration::from_secs(10), "close took {took:?}");
    for h in handles {
        let e = tokio::time::timeout(BOUND, h)
            .await
            .unwrap()
            .expect_err("failed by close");
        // Sent and never answered, so possibly written: the error says so.
        assert!(matches!(e.reason(), Error::Closed(_)), "{e}");
    }
    assert_eq!(producer.running_tasks(), 0, "close stops every task");
    let e = producer
        .send(Record::new("close", "late"))
        .await
        .expect_err("send after close");
    assert!(matches!(e, Error::Closed(_)), "{e}");
}

/// Done-when 7: dropping the producer inside a tokio runtime does not hang
/// and leaks no task: buffered records are still delivered, then every
/// task of the producer (including its connections) ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_inside_runtime_delivers_and_leaks_no_task() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("drop", 3, 1).unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let producer = Producer::new(ProducerConfig::new(&mock.bootstrap_servers())).unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    for i in 0..300 {
        let d = done.clone();
        producer
            .send_with_callback(
                Record::new("drop", format!("{i}")).key(format!("{i}")),
                move |r| {
                    r.expect("delivered after drop");
                    d.fetch_add(1, Ordering::SeqCst);
                },
            )
            .await
            .unwrap();
    }
    assert!(
        metrics.num_alive_tasks() > baseline,
        "the producer runs tasks"
    );
    let started = Instant::now();
    drop(producer);
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "drop does not block"
    );
    // Bounded poll: the tasks wind down on their own after delivering.
    let deadline = Instant::now() + Duration::from_secs(30);
    while (done.load(Ordering::SeqCst) < 300 || metrics.num_alive_tasks() > baseline)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        done.load(Ordering::SeqCst),
        300,
        "records buffered before drop are delivered"
    );
    assert_eq!(
        metrics.num_alive_tasks(),
        baseline,
        "no producer task is left running"
    );
}

/// The blocking wrapper, from plain threads: synchronous sends (seed 002's
/// `send().get()`), and records buffered before a drop are delivered.
#[test]
fn blocking_producer_from_plain_threads() {
    use herald::BlockingProducer;
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("blocking", 1, 1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    let producer = BlockingProducer::new(ProducerConfig::new(&bootstrap)).unwrap();
    let md = producer.send_sync(Record::new("blocking", "one")).unwrap();
    assert_eq!((md.partition, md.offset), (0, 0));
    let handles: Vec<_> = (0..100)
        .map(|i| {
            producer
                .send(Record::new("blocking", format!("{i}")))
                .unwrap()
        })
        .collect();
    drop(producer);
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(
            h.wait().expect("delivered by the closing drop").offset,
            i as i64 + 1
        );
    }
}
