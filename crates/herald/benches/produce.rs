//! Throughput: herald against librdkafka, same broker, same settings.
//!
//! `cargo bench -p herald --bench produce` (optionally `-- RECORDS`).
//! For each broker (Tansu on sqlite, and librdkafka's in-process mock
//! cluster) and each client, send RECORDS keyed 100-byte records to a
//! 3-partition topic with acks=all, idempotence on, linger.ms=5,
//! batch.size=16384, then flush; report records/s from the first send to
//! the last acknowledgement. Each figure is the best of 3 runs. librdkafka
//! runs twice: with herald's batch.size, and with its own default.

use std::time::{Duration, Instant};

use herald::{Producer, ProducerConfig, Record};
use herald_test_support::Tansu;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseRecord, Producer as _, ThreadedProducer};
use rdkafka::ClientConfig;

fn herald_run(rt: &tokio::runtime::Runtime, bootstrap: &str, topic: &str, n: usize) -> Duration {
    rt.block_on(async {
        let p = Producer::new(ProducerConfig::new(bootstrap)).unwrap();
        let value = vec![b'x'; 100];
        let start = Instant::now();
        for i in 0..n {
            let r = Record::new(topic, value.clone()).key(format!("key-{}", i % 1000));
            drop(p.send(r).await.unwrap());
        }
        p.flush().await;
        let took = start.elapsed();
        let s = p.stats();
        assert_eq!(s.records_delivered as usize, n, "{s:?}");
        p.close(Duration::from_secs(10)).await.unwrap();
        took
    })
}

/// `same_batch_size`: herald's batch.size (16384) instead of librdkafka's
/// default (1,000,000).
fn rdkafka_run(bootstrap: &str, topic: &str, n: usize, same_batch_size: bool) -> Duration {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random");
    if same_batch_size {
        cfg.set("batch.size", "16384");
    }
    let p: ThreadedProducer<DefaultProducerContext> = cfg.create().unwrap();
    let value = vec![b'x'; 100];
    let start = Instant::now();
    for i in 0..n {
        let key = format!("key-{}", i % 1000);
        let mut rec = BaseRecord::<String, Vec<u8>>::to(topic)
            .key(&key)
            .payload(&value);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    p.flush(Duration::from_secs(120)).unwrap();
    start.elapsed()
}

fn report(what: &str, n: usize, runs: impl Fn(usize) -> Duration) {
    let best = (0..3).map(runs).min().unwrap();
    println!(
        "{what:<34} {n:>8} records  {:>8.3} s  {:>9.0} records/s",
        best.as_secs_f64(),
        n as f64 / best.as_secs_f64()
    );
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Runtime::new().unwrap();

    let mock = MockCluster::new(1).unwrap();
    for i in 0..9 {
        mock.create_topic(&format!("bench-{i}"), 3, 1).unwrap();
    }
    let mb = mock.bootstrap_servers();
    report("mock cluster / herald", n, |i| {
        herald_run(&rt, &mb, &format!("bench-{i}"), n)
    });
    report("mock cluster / librdkafka", n, |i| {
        rdkafka_run(&mb, &format!("bench-{}", i + 3), n, true)
    });
    report("mock cluster / librdkafka defaults", n, |i| {
        rdkafka_run(&mb, &format!("bench-{}", i + 6), n, false)
    });

    let tansu = Tansu::start();
    for i in 0..9 {
        tansu.create_topic(&format!("bench-{i}"), 3);
    }
    let tb = tansu.bootstrap();
    report("tansu (sqlite) / herald", n, |i| {
        herald_run(&rt, &tb, &format!("bench-{i}"), n)
    });
    report("tansu (sqlite) / librdkafka", n, |i| {
        rdkafka_run(&tb, &format!("bench-{}", i + 3), n, true)
    });
    report("tansu (sqlite) / librdkafka defaults", n, |i| {
        rdkafka_run(&tb, &format!("bench-{}", i + 6), n, false)
    });
}
