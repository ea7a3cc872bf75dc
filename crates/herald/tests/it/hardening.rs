//! Issue 11, producer hardening: each way the producer could break its
//! promises, injected (our `MockBroker`, librdkafka's mock cluster), with
//! the invariant checker where records flow. Finding 1 (an error after the
//! append) is in `own_mock.rs`, beside the other Produce faults.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::sasl::{OAuthBearerTokenProvider, TokenFuture};
use herald::{Error, Producer, ProducerConfig, Record};
use herald_test_support::{Fault, MockBroker, SaslUser};
use rdkafka::mocking::MockCluster;

use crate::checker::{mock_logs, read_logs, Checker};
use crate::BOUND;

/// How long anything here may take where the fixed behaviour is "at once"
/// or "by its timeout": far below the 60 s `max.block.ms` and 120 s
/// `delivery.timeout.ms` a hang would otherwise run into.
const PROMPT: Duration = Duration::from_secs(10);

/// Wait (bounded) until the mock has seen `n` Produce requests.
fn wait_for_produce_requests(mock: &MockBroker, n: usize) {
    let deadline = Instant::now() + PROMPT;
    while mock.produce_times().0.len() < n {
        assert!(Instant::now() < deadline, "no {n} Produce requests");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Finding 2: the runtime that ran `Producer::new` shuts down (one
/// producer in a `static`, used from several `#[tokio::test]`s, is the
/// common way). A record in flight, one with a callback and one queued all
/// get an outcome saying the producer's tasks are gone; later sends fail
/// at once; `flush` returns; `close(1 s)` returns by its timeout.
#[test]
fn a_producer_whose_runtime_shut_down_answers_instead_of_hanging() {
    let mock = MockBroker::start();
    mock.create_topic("rt", 1);
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (cb_tx, cb_rx) = mpsc::channel();
    let (producer, in_flight) = first.block_on(async {
        let p = Producer::new(ProducerConfig::new(&mock.bootstrap()).max_in_flight(1)).unwrap();
        p.send(Record::new("rt", "warm-up"))
            .await
            .unwrap()
            .await
            .unwrap();
        // The next request's answer is held for a minute: it stays in flight.
        mock.push_faults(&[Fault::Delay(60_000)]);
        let in_flight = p.send(Record::new("rt", "in flight")).await.unwrap();
        (p, in_flight)
    });
    wait_for_produce_requests(&mock, 2);
    // One request in flight at most: these two stay queued.
    let queued = first.block_on(async {
        producer
            .send_with_callback(Record::new("rt", "callback"), move |o| {
                cb_tx.send(o).unwrap();
            })
            .await
            .unwrap();
        let handle = producer.send(Record::new("rt", "queued")).await.unwrap();
        Some(handle)
    });
    let queued = queued.expect("buffered");
    drop(first);

    let second = tokio::runtime::Runtime::new().unwrap();
    second.block_on(async {
        for (what, h) in [("in flight", in_flight), ("queued", queued)] {
            let e = tokio::time::timeout(PROMPT, h)
                .await
                .unwrap_or_else(|_| panic!("{what}: no outcome within {PROMPT:?}"))
                .expect_err("not delivered");
            assert!(e.to_string().contains("tasks"), "{what}: {e}");
            // Written and never answered: it may be in the log.
            assert_eq!(e.outcome_unknown(), what == "in flight", "{what}: {e}");
        }
        let started = Instant::now();
        let e = tokio::time::timeout(PROMPT, producer.send(Record::new("rt", "late")))
            .await
            .expect("send answers")
            .expect_err("nobody can deliver it");
        assert!(e.to_string().contains("tasks"), "{e}");
        tokio::time::timeout(PROMPT, producer.flush())
            .await
            .expect("flush returns");
        let closed = tokio::time::timeout(PROMPT, producer.close(Duration::from_secs(1)))
            .await
            .expect("close returns");
        assert!(closed.is_err(), "close says the tasks were gone");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    });
    let outcome = cb_rx.recv_timeout(PROMPT).expect("the callback ran");
    assert!(outcome.unwrap_err().to_string().contains("tasks"));
}

/// Finding 2: an application's token provider that panics. The panic is
/// contained and reported as a failed authentication, not a dead task:
/// `send` fails at once with what to fix, and `close` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_token_provider_is_an_error_not_a_hang() {
    #[derive(Debug)]
    struct Panics;
    impl OAuthBearerTokenProvider for Panics {
        fn token(&self) -> TokenFuture<'_> {
            Box::pin(async { panic!("token service client bug") })
        }
    }
    let broker = MockBroker::start_with_sasl(SaslUser {
        mechanisms: vec!["OAUTHBEARER"],
        username: "alice".into(),
        ..SaslUser::default()
    });
    broker.create_topic("t", 1);
    let mut cfg = ProducerConfig::new(&broker.bootstrap());
    cfg.set("security.protocol", "SASL_PLAINTEXT")
        .unwrap()
        .set("sasl.mechanism", "OAUTHBEARER")
        .unwrap();
    cfg.sasl.oauthbearer_token_provider(Arc::new(Panics));
    let producer = Producer::new(cfg).unwrap();
    let started = Instant::now();
    let e = tokio::time::timeout(PROMPT, producer.send(Record::new("t", "x")))
        .await
        .expect("send answers promptly")
        .expect_err("cannot authenticate");
    assert!(matches!(e, Error::Security { .. }), "{e:?}");
    assert!(
        e.to_string().contains("panicked") && e.to_string().contains("token service client bug"),
        "{e}"
    );
    tokio::time::timeout(PROMPT, producer.close(Duration::from_secs(1)))
        .await
        .expect("close returns")
        .unwrap();
    assert!(started.elapsed() < PROMPT);
}

/// Finding 3: Metadata responses whose values are impossible (a partition
/// index of i32::MAX, of 2^28, negative, missing or repeated) are refused
/// with a clear error; the producer keeps its old metadata and goes on
/// delivering, and a producer that only ever saw such metadata fails its
/// sends with the reason instead of panicking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_metadata_values_are_refused_and_the_old_metadata_kept() {
    let hostile: [(&str, Vec<i32>); 5] = [
        ("i32::MAX", vec![i32::MAX]),
        ("2^28", vec![0, 1 << 28]),
        ("negative", vec![-1, 0, 1]),
        ("sparse", vec![0, 2]),
        ("repeated", vec![0, 0, 1]),
    ];
    for (name, indices) in hostile {
        let mock = MockBroker::start();
        mock.create_topic("h", 2);
        let p = Producer::new(
            ProducerConfig::new(&mock.bootstrap())
                .retry_backoff(Duration::from_millis(5), Duration::from_millis(50)),
        )
        .unwrap();
        let checker = Checker::new(&p);
        checker.send_to(&p, "h", 50).await;
        checker.wait(BOUND).await;
        mock.set_hostile_partitions("h", Some(indices.clone()));
        // NOT_LEADER_OR_FOLLOWER makes the producer refresh metadata (and
        // get the hostile answer) before it retries.
        mock.push_faults(&[Fault::Error(6)]);
        checker.send_to(&p, "h", 100).await;
        checker.wait(BOUND).await;
        let r = checker.check(name, &mock_logs(&mock, "h", 2));
        assert_eq!(r.delivered, 100, "{name}");
        // Sends, flush and close still work (no poisoned state).
        p.flush().await;
        p.close(BOUND).await.unwrap();

        // Only hostile metadata ever: the send says why it has none.
        let fresh =
            Producer::new(ProducerConfig::new(&mock.bootstrap()).max_block(Duration::from_secs(5)))
                .unwrap();
        let e = fresh.send(Record::new("h", "x")).await.expect_err(name);
        let msg = e.to_string();
        assert!(
            msg.contains("partition") && msg.contains("metadata"),
            "{name}: {msg}"
        );
        fresh.close(BOUND).await.unwrap();
    }
}

/// Finding 6: keyless records go to partitions with a leader. librdkafka's
/// mock with 2 brokers, a 6-partition topic, broker 2 down: before the
/// fix herald delivered 148 of 3,000 keyless records (the rest waited on
/// partitions led by the dead broker and timed out); librdkafka delivered
/// 2,959 in the same setup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_records_go_to_partitions_with_a_leader() {
    const N: usize = 3_000;
    let mock = MockCluster::new(2).unwrap();
    mock.create_topic("avail", 6, 1).unwrap();
    for p in 0..6 {
        mock.partition_leader("avail", p, Some(1 + p % 2)).unwrap();
    }
    mock.broker_down(2).unwrap();
    let bootstrap = mock.bootstrap_servers();
    let producer = Producer::new(
        ProducerConfig::new(&bootstrap)
            .delivery_timeout(Duration::from_secs(10))
            .request_timeout(Duration::from_secs(5)),
    )
    .unwrap();
    let checker = Checker::new(&producer);
    checker.send_to(&producer, "avail", N).await;
    checker.wait(BOUND).await;
    mock.broker_up(2).unwrap(); // to read every partition back
    let read = herald_test_support::read_log(&bootstrap, "avail", 6, Duration::from_secs(10));
    let r = checker.check("keyless, a broker down", &read_logs(&read, 6));
    assert_eq!(r.delivered, N, "{:?}", checker.errors().first());
    assert!(
        read.iter().all(|x| x.partition % 2 == 0),
        "only partitions led by broker 1"
    );
    producer.close(BOUND).await.unwrap();
}

/// Finding 8: an InitProducerId refused for good (CLUSTER_AUTHORIZATION_
/// FAILED: no IdempotentWrite ACL) is not retried until the delivery
/// timeout: the record fails at once with the Kafka error name and what
/// to do, and so does every later send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_init_producer_id_error_fails_at_once() {
    let mock = MockBroker::start();
    mock.create_topic("acl", 1);
    mock.refuse_init_producer_id(Some(31)); // CLUSTER_AUTHORIZATION_FAILED
    let producer = Producer::new(ProducerConfig::new(&mock.bootstrap())).unwrap();
    let started = Instant::now();
    let outcome = match tokio::time::timeout(PROMPT, producer.send(Record::new("acl", "x"))).await {
        Ok(Ok(h)) => tokio::time::timeout(PROMPT, h)
            .await
            .expect("an outcome well before delivery.timeout.ms"),
        Ok(Err(e)) => Err(e),
        Err(_) => panic!("send hung"),
    };
    let e = outcome.expect_err("no producer id, no delivery");
    let msg = e.to_string();
    assert_eq!(e.kafka_code(), Some(31), "{msg}");
    assert!(
        msg.contains("CLUSTER_AUTHORIZATION_FAILED")
            && msg.contains("IdempotentWrite")
            && msg.contains("enable.idempotence"),
        "{msg}"
    );
    let again = producer
        .send(Record::new("acl", "y"))
        .await
        .expect_err("fails at once");
    assert_eq!(again.kafka_code(), Some(31), "{again}");
    assert!(started.elapsed() < PROMPT);
    assert_eq!(mock.init_producer_id_requests(), 1, "not retried");
    producer.close(BOUND).await.unwrap();

    // A retriable refusal (COORDINATOR_NOT_AVAILABLE) is retried.
    let mock = MockBroker::start();
    mock.create_topic("acl", 1);
    mock.refuse_init_producer_id(Some(15));
    let producer = Producer::new(ProducerConfig::new(&mock.bootstrap())).unwrap();
    let h = producer.send(Record::new("acl", "x")).await.unwrap();
    let deadline = Instant::now() + PROMPT;
    while mock.init_producer_id_requests() < 2 {
        assert!(Instant::now() < deadline, "InitProducerId retried");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    mock.refuse_init_producer_id(None);
    tokio::time::timeout(BOUND, h).await.unwrap().unwrap();
    producer.close(BOUND).await.unwrap();
}

/// Finding 8: topic-level metadata errors that no wait can fix
/// (TOPIC_AUTHORIZATION_FAILED, INVALID_TOPIC_EXCEPTION, a name Kafka
/// never accepts) fail `send` at once with the error name and the topic,
/// instead of after `max.block.ms`; an unknown topic (it may be being
/// created) is still waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_errors_that_waiting_cannot_fix_fail_send_at_once() {
    let mock = MockBroker::start();
    mock.set_topic_error("denied", 29);
    mock.set_topic_error("bad", 17);
    let producer =
        Producer::new(ProducerConfig::new(&mock.bootstrap()).max_block(Duration::from_secs(30)))
            .unwrap();
    for (topic, expect) in [
        ("denied", "TOPIC_AUTHORIZATION_FAILED"),
        ("bad", "INVALID_TOPIC_EXCEPTION"),
        ("my topic", "legal characters"),
        ("", "empty"),
    ] {
        let started = Instant::now();
        let e = tokio::time::timeout(PROMPT, producer.send(Record::new(topic, "x")))
            .await
            .unwrap_or_else(|_| panic!("{topic:?}: send waited"))
            .expect_err(topic);
        let msg = e.to_string();
        assert!(
            msg.contains(expect) && msg.contains(&format!("`{topic}`")),
            "{topic:?}: {msg}"
        );
        assert!(started.elapsed() < PROMPT);
    }
    let unknown =
        Producer::new(ProducerConfig::new(&mock.bootstrap()).max_block(Duration::from_millis(800)))
            .unwrap();
    let started = Instant::now();
    let e = unknown.send(Record::new("later", "x")).await.unwrap_err();
    assert!(matches!(e, Error::MetadataTimeout { .. }), "{e:?}");
    assert!(started.elapsed() >= Duration::from_millis(800));
    producer.close(BOUND).await.unwrap();
    unknown.close(BOUND).await.unwrap();
}

/// A tiny executor without tokio: what a caller outside any runtime has.
fn block_on_without_runtime<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

/// Smaller findings: `send` outside a tokio runtime works the same with or
/// without waiting (it used to succeed on the fast path and panic on a
/// slow one, so the failure showed only under load; now its slow paths
/// run on the producer's own runtime); a negative timestamp is refused as
/// the Java client refuses it; blocking on an outcome inside a delivery
/// callback returns an error instead of panicking inside the producer's
/// task.
#[test]
fn misuse_gets_a_clear_error() {
    let mock = MockBroker::start();
    mock.create_topic("m", 1);
    mock.create_topic("other", 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let producer = rt.block_on(async {
        let p = Producer::new(ProducerConfig::new(&mock.bootstrap())).unwrap();
        p.send(Record::new("m", "warm-up"))
            .await
            .unwrap()
            .await
            .unwrap();
        p
    });
    // From a plain thread: the fast path (metadata known) and a slow path
    // (a topic whose metadata must be waited for) both deliver.
    let p2 = producer.clone();
    std::thread::spawn(move || {
        for topic in ["m", "other"] {
            let h = block_on_without_runtime(p2.send(Record::new(topic, "x")))
                .unwrap_or_else(|e| panic!("{topic}: {e}"));
            let md = block_on_without_runtime(h).unwrap_or_else(|e| panic!("{topic}: {e}"));
            assert_eq!(&*md.topic, topic);
        }
    })
    .join()
    .unwrap();

    rt.block_on(async {
        let e = producer
            .send(Record::new("m", "x").timestamp(i64::MIN))
            .await
            .expect_err("negative timestamp");
        assert!(e.to_string().contains("timestamp"), "{e}");
        // Blocking inside a callback: an error, not a contained panic.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let inner = producer.send(Record::new("m", "inner")).await.unwrap();
        producer
            .send_with_callback(Record::new("m", "outer"), move |_| {
                let _ = tx.send(inner.wait());
            })
            .await
            .unwrap();
        let waited = tokio::time::timeout(PROMPT, rx)
            .await
            .expect("the callback returned")
            .expect("the callback ran to the end");
        let e = waited.expect_err("cannot block there");
        assert!(e.to_string().contains("await"), "{e}");
        producer.close(BOUND).await.unwrap();
    });
}

/// Finding 7: a broker that accepts connections and never answers, listed
/// first in the metadata, so every metadata refresh waits on it for
/// `request.timeout.ms` before asking the next broker. Records for a
/// partition without a leader wait in the queue meanwhile; each must still
/// get its outcome within `delivery.timeout.ms` (plus a small margin), and
/// `close(1 s)` must return within a second and a bit, waking a `send`
/// that waits for metadata on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_and_close_are_on_time_with_a_stalled_broker_listed_first() {
    const SMALL_MARGIN: Duration = Duration::from_millis(600);
    let mock = MockBroker::start();
    mock.create_topic("late", 1);
    mock.move_leader("late", 0, -1); // no leader: records stay queued
    mock.add_silent_broker(100);
    let delivery_timeout = Duration::from_secs(6);
    let producer = Producer::new(
        ProducerConfig::new(&mock.bootstrap())
            .linger(Duration::ZERO)
            .request_timeout(Duration::from_secs(5))
            .delivery_timeout(delivery_timeout)
            .retry_backoff(Duration::from_millis(50), Duration::from_millis(200)),
    )
    .unwrap();
    // Learn the topic first: a send that must wait for metadata can be
    // sent to the stalled broker's refresh first (up to request.timeout.ms,
    // bounded by max.block.ms), and the checker counts from before the
    // send. Whether it does was a race with the driver's first refresh;
    // what is checked here is the delivery timeout, counted from the append.
    drop(producer.send(Record::new("late", "warm-up")).await.unwrap());
    let checker = Checker::new(&producer);
    for _ in 0..6 {
        // Spread over a second, so expiries fall at different points of
        // the refresh cycle.
        checker.send_to(&producer, "late", checker.sent() + 5).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    checker.wait(BOUND).await;
    let r = checker.check("stalled broker first", &mock_logs(&mock, "late", 1));
    assert_eq!(r.failed, 30);
    assert!(
        r.longest_wait <= delivery_timeout + SMALL_MARGIN,
        "an outcome came {:?} after its send; delivery.timeout.ms is {delivery_timeout:?}",
        r.longest_wait
    );

    // close(1 s) with records queued and a send waiting for a topic.
    checker.send_to(&producer, "late", checker.sent() + 5).await;
    let waiting = tokio::spawn({
        let p = producer.clone();
        async move { p.send(Record::new("not-there-yet", "x")).await }
    });
    let started = Instant::now();
    let closed = producer.close(Duration::from_secs(1)).await;
    let took = started.elapsed();
    assert!(closed.is_err(), "records were failed by the close timeout");
    assert!(
        took <= Duration::from_secs(1) + SMALL_MARGIN,
        "close(1 s) took {took:?}"
    );
    let e = tokio::time::timeout(SMALL_MARGIN, waiting)
        .await
        .expect("the waiting send was woken by close")
        .unwrap()
        .expect_err("closed");
    assert!(matches!(e, Error::Closed(_)), "{e:?}");
    checker.wait(SMALL_MARGIN).await;
}

/// Finding 4: a topic nobody sends to for `metadata.max.idle.ms` is no
/// longer asked about, so a topic an administrator deleted is not
/// recreated by the producer's refreshes (on a broker that auto-creates,
/// as Kafka does by default); `allow.auto.create.topics=false` never asks
/// for creation; `fetch_metadata` never creates a topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_topics_are_forgotten_and_deleted_topics_stay_deleted() {
    let mock = MockBroker::start();
    mock.auto_create_topics(Some(1));
    let mut cfg = ProducerConfig::new(&mock.bootstrap());
    cfg.set("metadata.max.idle.ms", "5000")
        .unwrap()
        .set("metadata.max.age.ms", "500")
        .unwrap();
    let producer = Producer::new(cfg).unwrap();
    producer
        .send(Record::new("gone", "x"))
        .await
        .unwrap()
        .await
        .unwrap();
    producer
        .send(Record::new("kept", "x"))
        .await
        .unwrap()
        .await
        .unwrap();
    let last_sent = Instant::now();
    // "kept" stays in use; "gone" goes idle.
    let deadline = last_sent + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "a refresh without `gone` within 30 s"
        );
        producer
            .send(Record::new("kept", "y"))
            .await
            .unwrap()
            .await
            .unwrap();
        let asked_last = mock.metadata_requests().last().cloned().unwrap();
        let topics = asked_last.0.unwrap_or_default();
        if topics.contains(&"kept".to_string()) && !topics.contains(&"gone".to_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        last_sent.elapsed() >= Duration::from_millis(4_500),
        "forgotten only once idle for metadata.max.idle.ms"
    );
    // An administrator deletes it now; the producer's refreshes (every
    // 500 ms) must not bring it back.
    mock.delete_topic("gone");
    let seen = mock.metadata_requests().len();
    while mock.metadata_requests().len() < seen + 3 {
        assert!(Instant::now() < deadline, "refreshes go on");
        let h = producer.send(Record::new("kept", "z")).await.unwrap();
        h.await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!mock.has_topic("gone"), "the deleted topic was recreated");
    producer.close(BOUND).await.unwrap();

    // allow.auto.create.topics=false: refreshes never ask for creation.
    let mut cfg = ProducerConfig::new(&mock.bootstrap()).max_block(Duration::from_millis(700));
    cfg.set("allow.auto.create.topics", "false").unwrap();
    let producer = Producer::new(cfg).unwrap();
    let before = mock.metadata_requests().len();
    let e = producer.send(Record::new("never", "x")).await.unwrap_err();
    assert!(matches!(e, Error::MetadataTimeout { .. }), "{e:?}");
    assert!(!mock.has_topic("never"));
    assert!(mock.metadata_requests()[before..]
        .iter()
        .all(|(_, auto)| !auto));
    producer.close(BOUND).await.unwrap();
    // fetch_metadata, as `herald metadata -t` uses it, never creates, even
    // with auto-creation allowed for sends.
    let producer = Producer::new(ProducerConfig::new(&mock.bootstrap())).unwrap();
    let md = producer
        .fetch_metadata(Some(&["described".to_string()]))
        .await
        .unwrap();
    assert!(md.topics["described"].error.is_some());
    assert!(!mock.has_topic("described"));
    producer.close(BOUND).await.unwrap();
}

/// Finding 9: a topic the producer may not write (TOPIC_AUTHORIZATION_
/// FAILED on every batch) next to healthy partitions. Each refused batch
/// had a sequence, so its partition must start over; that costs a local
/// epoch bump of that partition alone (KIP-360), not an InitProducerId
/// per refused batch with every partition stalled while requests drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_topic_costs_no_new_producer_id() {
    let mock = MockBroker::start();
    mock.create_topic("ok", 2);
    mock.create_topic("denied", 1);
    mock.set_produce_error("denied", Some(29));
    let producer = Producer::new(
        ProducerConfig::new(&mock.bootstrap())
            .batch_size(1_000)
            .retry_backoff(Duration::from_millis(5), Duration::from_millis(50)),
    )
    .unwrap();
    let ok = Checker::new(&producer);
    let denied = Checker::new(&producer);
    for i in 0..2_000 {
        ok.send(&producer, |v| Record::new("ok", v).partition(i % 2))
            .await;
        if i % 20 == 0 {
            denied.send(&producer, |v| Record::new("denied", v)).await;
        }
    }
    ok.wait(BOUND).await;
    denied.wait(BOUND).await;
    let r = ok.check("next to a refused topic", &mock_logs(&mock, "ok", 2));
    assert_eq!(r.delivered, 2_000);
    let refused = denied.check("the refused topic", &mock_logs(&mock, "denied", 1));
    assert_eq!(refused.failed, 100);
    for (i, e) in denied.errors() {
        assert_eq!(e.kafka_code(), Some(29), "record {i}: {e}");
    }
    let stats = producer.stats();
    eprintln!("next to a refused topic: {stats:?}");
    assert_eq!(stats.producer_ids, 1, "{stats:?}");
    assert_eq!(mock.init_producer_id_requests(), 1);
    producer.close(BOUND).await.unwrap();
}

/// A `send_with_callback` that fails returns the error and never calls
/// the callback: the record has exactly one outcome. (Found by the soak
/// with the panicking token provider: an outcome that answers when
/// dropped must be made only once the record is buffered.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_send_never_calls_its_callback() {
    let mock = MockBroker::start();
    mock.create_topic("cb", 1);
    let producer = Producer::new(ProducerConfig::new(&mock.bootstrap())).unwrap();
    let called = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = |called: &Arc<std::sync::atomic::AtomicUsize>| {
        let c = called.clone();
        move |_| {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let bad_topic = producer
        .send_with_callback(Record::new("bad topic", "x"), count(&called))
        .await;
    assert!(bad_topic.is_err());
    producer.close(BOUND).await.unwrap();
    let closed = producer
        .send_with_callback(Record::new("cb", "x"), count(&called))
        .await;
    assert!(closed.is_err());
    assert_eq!(called.load(std::sync::atomic::Ordering::SeqCst), 0);
}
