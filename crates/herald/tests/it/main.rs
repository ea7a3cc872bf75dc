//! herald's integration tests: one binary, one module per concern.
//!
//! - `tansu`: against a real Kafka-compatible broker (Tansu, sqlite
//!   storage), read back by librdkafka.
//! - `mock`: against librdkafka's mock cluster, an independent broker
//!   implementation that injects errors, delays and outages.
//! - `lifecycle`: flush, close and drop.
//! - `compression`: each codec, through Tansu, read back by librdkafka.
//! - `tls`: to stunnel in front of Tansu, certificates made by the test.
//! - `sasl`: SCRAM-SHA-512 against Tansu with `--authentication`.
//! - `hardening`: issue 11, the ways the producer could break its promises.

mod checker;
mod compression;
mod hardening;
mod lifecycle;
mod mock;
mod own_mock;
mod sasl;
mod sasl_tokens;
mod soak;
mod tansu;
mod tls;

use std::time::{Duration, Instant};

use herald::Producer;
use herald_test_support::{read_all, Read};

/// A bound on any single wait in these tests, so a bug fails a test
/// instead of hanging CI.
pub const BOUND: Duration = Duration::from_secs(120);

/// Read `n` records of `topic` back with librdkafka (off the async runtime).
pub async fn read_back(bootstrap: &str, topic: &str, partitions: i32, n: usize) -> Vec<Read> {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || read_all(&b, &t, partitions, n, BOUND))
        .await
        .expect("reader")
}

/// Values written as decimal numbers, parsed back.
pub fn numbers(read: &[Read]) -> Vec<usize> {
    read.iter()
        .map(|r| {
            std::str::from_utf8(r.value.as_deref().unwrap())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

/// Wait (at most `within`) until the producer has retried a batch: the
/// fault a test injected has been felt. A condition, not a sleep.
pub async fn wait_for_retries(producer: &Producer, within: Duration) {
    let deadline = Instant::now() + within;
    while producer.stats().batch_retries == 0 {
        assert!(
            Instant::now() < deadline,
            "no batch was retried within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The first send's error, the producer otherwise at Kafka's defaults
/// (max.block.ms 60 s): a certificate or credential refusal must come back
/// as itself, not as a metadata timeout after retrying.
pub async fn first_send_error(cfg: herald::ProducerConfig) -> herald::Error {
    let producer = Producer::new(cfg).unwrap();
    let e = match producer.send(herald::Record::new("t", "x")).await {
        Err(e) => e,
        Ok(h) => h.await.expect_err("must not be delivered"),
    };
    let _ = producer.close(Duration::from_secs(1)).await;
    e
}

/// Wait for every handle; each record must be delivered (within BOUND).
pub async fn all_delivered(handles: Vec<herald::DeliveryFuture>) {
    for (i, h) in handles.into_iter().enumerate() {
        tokio::time::timeout(BOUND, h)
            .await
            .expect("outcome in time")
            .unwrap_or_else(|e| panic!("record {i}: {e}"));
    }
}

/// Send `n` keyed records ("record I") to topic `t` with a producer of
/// `cfg`, close it; each record must be delivered.
pub async fn send_all(cfg: herald::ProducerConfig, n: usize) {
    let producer = Producer::new(cfg).unwrap();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let r = herald::Record::new("t", format!("record {i}")).key(format!("k{i}"));
        handles.push(producer.send(r).await.expect("buffered"));
    }
    all_delivered(handles).await;
    producer.close(BOUND).await.expect("closed");
}
