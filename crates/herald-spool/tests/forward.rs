//! Forwarding against the mock broker: everything appended reaches Kafka
//! in append order per partition, leaves the disk once acknowledged, and a
//! record no resend can deliver goes to the dead letters without blocking
//! the rest.

use std::time::{Duration, Instant};

use bytes::Bytes;
use herald::{ProducerConfig, Record};
use herald_spool::{LogConfig, Spool, SpoolConfig, SpoolError};
use herald_test_support::MockBroker;

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cfg() -> SpoolConfig {
    SpoolConfig {
        log: LogConfig {
            segment_bytes: 4096,
        },
        checkpoint_interval: Duration::from_millis(50),
        ..SpoolConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_records_reach_kafka_in_order_and_leave_the_disk() {
    let mock = MockBroker::start();
    mock.create_topic("events", 3);
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) =
        Spool::open(dir.path(), cfg(), ProducerConfig::new(&mock.bootstrap())).unwrap();
    const N: u64 = 600;
    for i in 0..N {
        let r = Record::new("events", Bytes::from(format!("{i}")))
            .key(Bytes::from(format!("key-{}", i % 7)))
            .partition((i % 3) as i32);
        if i % 50 == 0 {
            // Some atomic batches among single appends.
            let batch = [r.clone(), r.clone().partition(((i + 1) % 3) as i32)];
            let got = spool.append_batch(&batch).await.unwrap();
            assert_eq!(got.end - got.start, 2);
        } else {
            spool.append(&r).await.unwrap();
        }
    }
    let total = N + N / 50;
    wait_until("every record delivered", || {
        spool.stats().delivered == total
    })
    .await;
    // Per partition, the values are in append order.
    let mut seen = 0;
    for p in 0..3 {
        let log = mock.log("events", p);
        let values: Vec<u64> = log
            .iter()
            .map(|(_, v)| {
                std::str::from_utf8(v.as_ref().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(
            values.windows(2).all(|w| w[0] <= w[1]),
            "partition {p}: {values:?}"
        );
        seen += values.len() as u64;
    }
    assert_eq!(seen, total, "each record once");
    wait_until("the backlog checkpointed away", || {
        let s = spool.stats();
        s.backlog_records == 0 && s.disk_bytes < 4096 + 2048
    })
    .await;
    spool.close(Duration::from_secs(10)).await.unwrap();
    let (spool, _) =
        Spool::open(dir.path(), cfg(), ProducerConfig::new(&mock.bootstrap())).unwrap();
    assert_eq!(spool.stats().backlog_records, 0, "nothing to send again");
    spool.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_no_resend_can_deliver_is_a_dead_letter_and_the_rest_go_on() {
    let mock = MockBroker::start();
    mock.create_topic("events", 1);
    let dir = tempfile::tempdir().unwrap();
    let mut producer = ProducerConfig::new(&mock.bootstrap());
    producer.set("max.request.size", "1000").unwrap();
    let (spool, _) = Spool::open(dir.path(), cfg(), producer).unwrap();
    spool
        .append(&Record::new("events", Bytes::from_static(b"before")))
        .await
        .unwrap();
    spool
        .append(&Record::new("events", Bytes::from(vec![b'x'; 5000])))
        .await
        .unwrap();
    spool
        .append(&Record::new("events", Bytes::from_static(b"after")))
        .await
        .unwrap();
    wait_until("two delivered, one dead letter", || {
        let s = spool.stats();
        s.delivered == 2 && s.dead_letters == 1
    })
    .await;
    let values: Vec<_> = mock
        .log("events", 0)
        .into_iter()
        .map(|(_, v)| v.unwrap())
        .collect();
    assert_eq!(
        values,
        [Bytes::from_static(b"before"), Bytes::from_static(b"after")]
    );
    let dead = std::fs::read(dir.path().join("dead-letters")).unwrap();
    assert!(
        String::from_utf8_lossy(&dead).contains("max.request.size"),
        "the reason is kept with the record"
    );
    spool.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_refuses_the_append_and_keeps_what_it_has() {
    // No broker: nothing leaves the spool.
    let dir = tempfile::tempdir().unwrap();
    let mut producer = ProducerConfig::new("127.0.0.1:1");
    producer.set("max.block.ms", "100").unwrap();
    // A bound below two segments could refuse every append once all is
    // delivered (the active segment stays): refused at open, both named.
    let err = Spool::open(
        dir.path(),
        SpoolConfig {
            max_bytes: 2000,
            ..cfg()
        },
        producer.clone(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("max.bytes (2000)") && err.to_string().contains("(4096)"),
        "{err}"
    );
    let small = SpoolConfig {
        max_bytes: 2000,
        log: LogConfig {
            segment_bytes: 1000,
        },
        ..cfg()
    };
    let (spool, _) = Spool::open(dir.path(), small.clone(), producer.clone()).unwrap();
    let rec = Record::new("events", Bytes::from(vec![b'v'; 200]));
    let mut kept = 0;
    let err = loop {
        match spool.append(&rec).await {
            Ok(_) => kept += 1,
            Err(e) => break e,
        }
        assert!(kept < 100, "the bound was never reached");
    };
    assert!(
        matches!(
            err,
            SpoolError::Full {
                max_bytes: 2000,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("full") && err.to_string().contains("nothing in it was dropped")
    );
    assert_eq!(spool.stats().backlog_records, kept);
    spool.close(Duration::from_secs(10)).await.unwrap();
    let (spool, _) = Spool::open(dir.path(), small, producer).unwrap();
    assert_eq!(spool.stats().backlog_records, kept, "kept across a reopen");
    spool.close(Duration::from_secs(10)).await.unwrap();
}

/// Kafka (Tansu) away for longer than the caller's `delivery.timeout.ms`:
/// the spool keeps every record on disk and holds back, and delivers them
/// all, in order, once Kafka answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_wait_out_an_outage_and_are_delivered_after_it() {
    let (tansu, proxy) = herald_test_support::Tansu::start_behind_proxy();
    tansu.create_topic("held", 1);
    let dir = tempfile::tempdir().unwrap();
    let mut producer = ProducerConfig::new(&proxy.addr());
    // What a caller might set: the spool overrides it, so that a record
    // is never given up while Kafka is away.
    producer.set("delivery.timeout.ms", "1500").unwrap();
    producer.set("request.timeout.ms", "500").unwrap();
    producer.set("linger.ms", "0").unwrap();
    let (spool, _) = Spool::open(dir.path(), cfg(), producer).unwrap();
    spool
        .append(&Record::new("held", Bytes::from_static(b"0")))
        .await
        .unwrap();
    wait_until("the first record delivered", || {
        spool.stats().delivered == 1
    })
    .await;
    proxy.set_down(true);
    for i in 1..=100u32 {
        spool
            .append(&Record::new("held", Bytes::from(i.to_string())))
            .await
            .unwrap();
    }
    // Twice the caller's delivery timeout with Kafka away.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let s = spool.stats();
    assert_eq!(
        (s.delivered, s.dead_letters),
        (1, 0),
        "nothing given up: {s:?}"
    );
    assert_eq!(s.backlog_records, 100);
    proxy.set_down(false);
    wait_until("the held records delivered", || {
        spool.stats().delivered == 101
    })
    .await;
    assert_eq!(spool.stats().dead_letters, 0);
    spool.close(Duration::from_secs(10)).await.unwrap();
}

/// Every forwarded record carries `herald.spool.id` = the spool's id and
/// its sequence; the id is made once and kept across reopens.
#[test]
fn records_carry_the_spool_id_and_their_sequence_and_the_id_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let id = herald_spool::spool_id(dir.path()).unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(
        herald_spool::spool_id(dir.path()).unwrap(),
        id,
        "the same on reopen"
    );
    let other = tempfile::tempdir().unwrap();
    assert_ne!(herald_spool::spool_id(other.path()).unwrap(), id);
    let r = herald_spool::with_id(Record::new("t", Bytes::from_static(b"v")), &id, 42);
    let h = r.headers.last().unwrap();
    assert_eq!(h.key, herald_spool::ID_HEADER);
    assert_eq!(h.value.as_deref(), Some(format!("{id}:42").as_bytes()));
}

/// A hole that `herald spool repair` left for a lost record becomes a dead
/// letter with its reason; the records around it are delivered in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repaired_hole_becomes_a_dead_letter_and_the_rest_is_delivered() {
    let mock = MockBroker::start();
    mock.create_topic("events", 1);
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = herald_spool::Log::open(dir.path(), cfg().log).unwrap();
        let mut batch = Vec::new();
        for i in 0..10 {
            if i == 4 {
                batch.push(herald_spool::segment::hole("damaged on disk (test)"));
                continue;
            }
            let mut b = Vec::new();
            let r = Record::new("events", Bytes::from(format!("{i}"))).partition(0);
            herald_spool::codec::encode(&r, &mut b).unwrap();
            batch.push(b);
        }
        log.append(&[batch]).unwrap();
    }
    let (spool, _) =
        Spool::open(dir.path(), cfg(), ProducerConfig::new(&mock.bootstrap())).unwrap();
    wait_until("9 delivered and 1 dead letter", || {
        let s = spool.stats();
        s.delivered == 9 && s.dead_letters == 1
    })
    .await;
    let values: Vec<String> = mock
        .log("events", 0)
        .iter()
        .map(|(_, v)| String::from_utf8(v.as_ref().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values, ["0", "1", "2", "3", "5", "6", "7", "8", "9"]);
    spool.close(Duration::from_secs(5)).await.unwrap();
    let report = herald_spool::inspect(dir.path()).unwrap().to_string();
    assert!(report.contains("dead letters: 1"), "{report}");
}

/// The forwarding producer is idempotent for certain: settings that would
/// turn idempotence off without a word (acks=1, more than 5 requests in
/// flight) are refused at open, naming the key, instead of letting a
/// retried batch land after a later one.
#[tokio::test]
async fn settings_that_would_turn_idempotence_off_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("acks", "1"),
        ("max.in.flight.requests.per.connection", "10"),
    ] {
        let mut producer = ProducerConfig::new("127.0.0.1:1");
        producer.set(key, value).unwrap();
        let err = Spool::open(dir.path(), cfg(), producer).unwrap_err();
        assert!(
            matches!(err, SpoolError::Invalid(_)) && err.to_string().contains(key),
            "{key}={value}: {err}"
        );
    }
    let cfg = herald_spool::forwarding_config(ProducerConfig::new("x"));
    assert!(cfg.idempotence());
}

/// A watched append learns what each record's delivery came to: Kafka's
/// metadata, or why it became a dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_appends_learn_each_records_outcome() {
    let mock = MockBroker::start();
    mock.create_topic("events", 1);
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) =
        Spool::open(dir.path(), cfg(), ProducerConfig::new(&mock.bootstrap())).unwrap();
    // Warm up so the second record's partition is known to be invalid.
    spool
        .append(&Record::new("events", Bytes::from_static(b"w")))
        .await
        .unwrap();
    let records = [
        Record::new("events", Bytes::from_static(b"ok")).partition(0),
        Record::new("events", Bytes::from_static(b"bad")).partition(7),
    ];
    let (range, watches) = spool.append_batch_watched(&records).await.unwrap();
    assert_eq!(range.end - range.start, 2);
    let mut it = watches.into_iter();
    let ok = tokio::time::timeout(Duration::from_secs(30), it.next().unwrap())
        .await
        .unwrap()
        .unwrap()
        .expect("delivered");
    assert_eq!((ok.partition, ok.offset), (0, 1));
    let bad = tokio::time::timeout(Duration::from_secs(30), it.next().unwrap())
        .await
        .unwrap()
        .unwrap()
        .expect_err("a dead letter");
    assert!(bad.contains("dead letter") && bad.contains('7'), "{bad}");
    spool.close(Duration::from_secs(5)).await.unwrap();
}

/// While a record waits for Kafka (here: its topic refused with a
/// retriable error), the records delivered before it are still
/// checkpointed on time, so a crash in a long outage repeats at most one
/// checkpoint interval of deliveries (not the whole outage's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_checkpointed_while_a_later_record_waits() {
    let mock = MockBroker::start();
    mock.create_topic("a", 1);
    mock.create_topic("b", 1);
    const NOT_ENOUGH_REPLICAS: i16 = 19;
    mock.set_produce_error("b", Some(NOT_ENOUGH_REPLICAS));
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig {
        checkpoint_interval: Duration::from_millis(100),
        ..cfg()
    };
    let (spool, _) = Spool::open(dir.path(), cfg, ProducerConfig::new(&mock.bootstrap())).unwrap();
    let mut batch: Vec<Record> = (0..5)
        .map(|i| Record::new("a", Bytes::from(format!("{i}"))))
        .collect();
    batch.push(Record::new("b", Bytes::from_static(b"stuck")));
    spool.append_batch(&batch).await.unwrap();
    wait_until("the five records of `a` delivered", || {
        spool.stats().delivered == 5
    })
    .await;
    let dir_path = dir.path().to_path_buf();
    wait_until("a checkpoint at 5 while `b` waits", move || {
        herald_spool::inspect(&dir_path)
            .ok()
            .and_then(|r| r.checkpoint)
            .is_some_and(|(_, cursor)| cursor == 5)
    })
    .await;
    mock.set_produce_error("b", None);
    wait_until("`b` delivered", || spool.stats().delivered == 6).await;
    spool.close(Duration::from_secs(5)).await.unwrap();
}

/// A graceful shutdown's flush: `drain` returns false while Kafka refuses
/// (and the stats show how old the oldest waiting record is), true once
/// Kafka took everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_kafka_and_the_oldest_waiting_record_is_reported() {
    let mock = MockBroker::start();
    mock.create_topic("events", 1);
    // NOT_LEADER_OR_FOLLOWER: retriable, so the records wait.
    mock.set_produce_error("events", Some(6));
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) =
        Spool::open(dir.path(), cfg(), ProducerConfig::new(&mock.bootstrap())).unwrap();
    assert_eq!(spool.stats().oldest_timestamp_ms, None);
    for i in 0..5 {
        let r = Record::new("events", Bytes::from(format!("{i}"))).timestamp(1_000 + i);
        spool.append(&r).await.unwrap();
    }
    wait_until("the first record in flight", || {
        spool.stats().oldest_timestamp_ms.is_some()
    })
    .await;
    assert_eq!(spool.stats().oldest_timestamp_ms, Some(1_000));
    assert!(!spool.drain(Duration::from_millis(300)).await);
    assert_eq!(spool.stats().backlog_records, 5);
    mock.set_produce_error("events", None);
    assert!(spool.drain(Duration::from_secs(30)).await);
    let s = spool.stats();
    assert_eq!((s.backlog_records, s.delivered), (0, 5));
    assert_eq!(s.oldest_timestamp_ms, None);
    spool.close(Duration::from_secs(5)).await.unwrap();
}
