//! Against Tansu, read back by librdkafka.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald::{Producer, ProducerConfig, Record, RecordMetadata};
use herald_test_support::{assert_no_more, Tansu};

use crate::checker::{read_logs, Checker, Report};
use crate::{read_back, wait_for_retries, BOUND};

/// Done-when 2: 100,000 keyed records with headers and explicit timestamps
/// to a 3-partition topic; librdkafka reads every one back with the same
/// key, value, headers and timestamp, at the partition and offset herald
/// reported, in send order per key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_keyed_records_read_back_by_librdkafka() {
    const N: usize = 100_000;
    let tansu = Tansu::start();
    tansu.create_topic("roundtrip", 3);
    let producer = Producer::new(ProducerConfig::new(&tansu.bootstrap())).unwrap();
    // Explicit timestamps, recent enough that no retention policy applies
    // (Tansu hides records far older than its retention from fetches).
    let base_ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000;
    let key = |i: usize| format!("key-{}", i % 997);
    let start = Instant::now();
    let mut handles = Vec::with_capacity(N);
    for i in 0..N {
        let r = Record::new("roundtrip", format!("value-{i}"))
            .key(key(i))
            .timestamp(base_ts + i as i64)
            .header("seq", i.to_string())
            .header("dup", "first")
            .header("dup", "second");
        handles.push(producer.send(r).await.expect("buffered"));
    }
    let mut reported: Vec<RecordMetadata> = Vec::with_capacity(N);
    for h in handles {
        reported.push(
            tokio::time::timeout(BOUND, h)
                .await
                .expect("outcome in time")
                .expect("delivered"),
        );
    }
    let elapsed = start.elapsed();
    eprintln!(
        "herald: {N} records acknowledged by Tansu in {:.2} s ({:.0} records/s)",
        elapsed.as_secs_f64(),
        N as f64 / elapsed.as_secs_f64()
    );

    // Per key: one partition, offsets increasing in send order.
    let mut last: HashMap<String, (i32, i64)> = HashMap::new();
    for (i, md) in reported.iter().enumerate() {
        assert_eq!(&*md.topic, "roundtrip");
        assert_eq!(
            md.timestamp,
            base_ts + i as i64,
            "CreateTime is the record's own"
        );
        if let Some((p, o)) = last.insert(key(i), (md.partition, md.offset)) {
            assert_eq!(p, md.partition, "key {} moved partition", key(i));
            assert!(
                md.offset > o,
                "key {}: offset {} after {}",
                key(i),
                md.offset,
                o
            );
        }
    }
    let by_position: HashMap<(i32, i64), usize> = reported
        .iter()
        .enumerate()
        .map(|(i, md)| ((md.partition, md.offset), i))
        .collect();
    assert_eq!(
        by_position.len(),
        N,
        "every record has its own partition and offset"
    );

    let bootstrap = tansu.bootstrap();
    let read = read_back(&bootstrap, "roundtrip", 3, N).await;
    for r in &read {
        let i = *by_position
            .get(&(r.partition, r.offset))
            .unwrap_or_else(|| {
                panic!(
                    "librdkafka read {}@{} which herald never reported",
                    r.partition, r.offset
                )
            });
        assert_eq!(r.key.as_deref(), Some(key(i).as_bytes()));
        assert_eq!(r.value.as_deref(), Some(format!("value-{i}").as_bytes()));
        assert_eq!(r.timestamp, Some(base_ts + i as i64));
        assert_eq!(
            r.headers,
            vec![
                ("seq".to_string(), Some(i.to_string().into_bytes())),
                ("dup".to_string(), Some(b"first".to_vec())),
                ("dup".to_string(), Some(b"second".to_vec())),
            ]
        );
    }
    let bootstrap = tansu.bootstrap();
    tokio::task::spawn_blocking(move || {
        assert_no_more(&bootstrap, "roundtrip", 3, N, Duration::from_secs(10))
    })
    .await
    .unwrap();
    producer.close(BOUND).await.unwrap();
}

/// Done-when 3 (keyless part): keyless records reach every partition, in
/// sticky batches (runs of one partition), not one record per partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_records_are_sticky_and_reach_every_partition() {
    const N: usize = 3_000;
    let tansu = Tansu::start();
    tansu.create_topic("keyless", 3);
    // ~120-byte records, 1200-byte batches: about 9 records a batch.
    let cfg = ProducerConfig::new(&tansu.bootstrap()).batch_size(1200);
    let producer = Producer::new(cfg).unwrap();
    let mut handles = Vec::new();
    for i in 0..N {
        handles.push(
            producer
                .send(Record::new("keyless", format!("{i:0>100}")))
                .await
                .unwrap(),
        );
    }
    let mut parts = Vec::new();
    for h in handles {
        parts.push(h.await.unwrap().partition);
    }
    let mut counts = [0usize; 3];
    for p in &parts {
        counts[*p as usize] += 1;
    }
    assert!(
        counts.iter().all(|c| *c > 0),
        "every partition gets keyless records: {counts:?}"
    );
    let runs = 1 + parts.windows(2).filter(|w| w[0] != w[1]).count();
    let mean = N as f64 / runs as f64;
    eprintln!("keyless: {N} records in {runs} runs (mean {mean:.1} records per run), per partition {counts:?}");
    assert!(
        mean >= 5.0,
        "records come in sticky batches, not spread one by one: mean run {mean:.1}"
    );
}

/// (partition, offset, sender, seq) in the order callbacks ran.
type CallbackLog = Arc<Mutex<Vec<(i32, i64, usize, usize)>>>;

/// Done-when 4: one producer shared by 16 tasks and 4 threads delivers
/// everything, and callbacks for each partition run in send order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_by_tasks_and_threads_with_ordered_callbacks() {
    const PER_SENDER: usize = 1_000;
    let tansu = Tansu::start();
    tansu.create_topic("shared", 3);
    let producer = Producer::new(ProducerConfig::new(&tansu.bootstrap())).unwrap();
    let log: CallbackLog = Arc::default();

    let send_all = |p: Producer, sender: usize, log: CallbackLog| async move {
        for seq in 0..PER_SENDER {
            let log = log.clone();
            let r = Record::new("shared", format!("{sender}-{seq}")).key(format!("k{}", seq % 7));
            p.send_with_callback(r, move |res| {
                let md = res.expect("delivered");
                log.lock()
                    .unwrap()
                    .push((md.partition, md.offset, sender, seq));
            })
            .await
            .expect("buffered");
        }
    };
    let mut tasks = Vec::new();
    for s in 0..16 {
        tasks.push(tokio::spawn(send_all(producer.clone(), s, log.clone())));
    }
    let rt = tokio::runtime::Handle::current();
    let mut threads = Vec::new();
    for s in 16..20 {
        let (p, l, rt) = (producer.clone(), log.clone(), rt.clone());
        threads.push(std::thread::spawn(move || rt.block_on(send_all(p, s, l))));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
    tokio::time::timeout(BOUND, producer.flush())
        .await
        .expect("flush in time");
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log.len(),
        20 * PER_SENDER,
        "every record delivered, one callback each"
    );
    // Per partition, callbacks ran in offset order, which is send order.
    let mut last_offset: HashMap<i32, i64> = HashMap::new();
    let mut last_seq: HashMap<(usize, i32), usize> = HashMap::new();
    for (p, o, s, seq) in &log {
        if let Some(prev) = last_offset.insert(*p, *o) {
            assert!(
                *o > prev,
                "partition {p}: callback for offset {o} ran after offset {prev}"
            );
        }
        if let Some(prev) = last_seq.insert((*s, *p), *seq) {
            assert!(
                *seq > prev,
                "sender {s} partition {p}: seq {seq} after {prev}"
            );
        }
    }
    producer.close(BOUND).await.unwrap();
}

/// Send records "0".."n-1" to `topic` through the invariant checker: the
/// fault starts (`fault(true)`) at n/3 and ends (`fault(false)`) at 2n/3, once it made the
/// producer retry. With `settle`, everything sent before the fault is
/// acknowledged first. Then the checker reads the log back with librdkafka;
/// every record must be delivered.
async fn send_through_fault(
    checker: Checker,
    producer: &Producer,
    read_from: &str,
    topic: &str,
    n: usize,
    settle: bool,
    fault: impl Fn(bool),
) -> (Report, herald::ProducerStats) {
    for i in 0..n {
        if i == n / 3 {
            if settle {
                checker.wait(BOUND).await;
            }
            fault(true);
        }
        if i == 2 * n / 3 {
            wait_for_retries(producer, Duration::from_secs(30)).await;
            fault(false);
        }
        checker.send(producer, |v| Record::new(topic, v)).await;
    }
    checker.wait(BOUND).await;
    let read = read_log_async(read_from, topic, 1).await;
    let r = checker.check(topic, &read_logs(&read, 1));
    assert_eq!(r.delivered, n, "{:?}", checker.errors().first());
    let stats = producer.stats();
    assert!(stats.batch_retries > 0, "the fault was felt: {stats:?}");
    (r, stats)
}

/// 3,000 records to a fresh topic on Tansu behind a proxy that swallows
/// its answers (after everything sent before is acknowledged) until a
/// written request has timed out and been retried; idempotence as asked.
async fn through_lost_answers(
    topic: &str,
    idempotence: bool,
    checker: impl FnOnce(&Producer) -> Checker,
) -> (Report, herald::ProducerStats) {
    let (tansu, proxy) = Tansu::start_behind_proxy();
    tansu.create_topic(topic, 1);
    let cfg = ProducerConfig::from_properties(&[
        ("bootstrap.servers", proxy.addr().as_str()),
        (
            "enable.idempotence",
            if idempotence { "true" } else { "false" },
        ),
        ("request.timeout.ms", "1000"),
        ("delivery.timeout.ms", "60000"),
        ("retry.backoff.ms", "50"),
        ("retry.backoff.max.ms", "500"),
        ("batch.size", "4000"),
    ])
    .unwrap();
    let producer = Producer::new(cfg).unwrap();
    let out = send_through_fault(
        checker(&producer),
        &producer,
        &proxy.addr(),
        topic,
        3_000,
        true,
        |on| proxy.swallow_responses(on),
    )
    .await;
    producer.close(BOUND).await.unwrap();
    out
}

/// Exactly once through lost answers: Tansu writes batches, but a proxy
/// swallows its responses, so herald cannot know they landed. Herald resends
/// them under the same producer id and sequences; the broker recognises
/// them; the log holds every record once, in send order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_responses_are_resent_without_duplicates() {
    let (_, stats) =
        through_lost_answers("unsure", true, |p| Checker::new(p).allow_unknown_offsets()).await;
    eprintln!("lost responses: {stats:?}");
    assert_eq!(
        stats.producer_ids, 1,
        "resent under the same producer id: {stats:?}"
    );
}

/// The same lost answers with `enable.idempotence=false`: what herald then
/// promises is at least once. Nothing acknowledged is lost, but the resent
/// batches the broker already had are written again: the reason
/// idempotence is on by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_responses_without_idempotence_are_delivered_at_least_once() {
    let (r, stats) =
        through_lost_answers("twice", false, |p| Checker::new(p).at_least_once()).await;
    eprintln!("lost responses, idempotence off: {stats:?}");
    assert!(r.duplicates > 0, "resent batches were written twice: {r:?}");
}

/// The broker goes down mid-stream (every connection cut, new ones
/// refused) and comes back: records sent meanwhile wait and are retried;
/// requests cut in flight are resent under the same sequences; the log
/// holds every record once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_and_up_loses_and_duplicates_nothing() {
    const N: usize = 3_000;
    let (tansu, proxy) = Tansu::start_behind_proxy();
    tansu.create_topic("outage", 1);
    let cfg = ProducerConfig::new(&proxy.addr())
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .batch_size(2_000);
    let producer = Producer::new(cfg).unwrap();
    let (_, stats) = send_through_fault(
        Checker::new(&producer).allow_unknown_offsets(),
        &producer,
        &proxy.addr(),
        "outage",
        N,
        false,
        |on| proxy.set_down(on),
    )
    .await;
    eprintln!("outage: {stats:?}");
    producer.close(BOUND).await.unwrap();
}

/// The chaos run (issue 3, done-when 2): 200,000 keyed records over 3
/// partitions through the chaos proxy, which cuts (FIN), resets (RST) and
/// stalls every connection and swallows answers on a seeded random
/// schedule while records flow; and in the middle Tansu is killed with
/// `kill -9` and restarted on the same sqlite storage. The invariant
/// checker then reads the log back with librdkafka: every acknowledged
/// record once, at its offset, in send order per partition; every record
/// an outcome, within delivery.timeout.ms; none failed, as the broker is
/// back well within it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_proxy_and_kill9_keep_every_acknowledged_record_once() {
    const N: usize = 200_000;
    herald_test_support::init_tracing();
    let (mut tansu, proxy) = Tansu::start_behind_proxy();
    tansu.create_topic("chaos", 3);
    let cfg = ProducerConfig::from_properties(&[
        ("bootstrap.servers", proxy.addr().as_str()),
        ("request.timeout.ms", "3000"),
        ("retry.backoff.ms", "50"),
        ("retry.backoff.max.ms", "500"),
    ])
    .unwrap();
    let producer = Producer::new(cfg).unwrap();
    let checker = Checker::new(&producer).allow_unknown_offsets();
    let proxy = std::sync::Arc::new(proxy);
    // The chaos schedule: one fault every 50-250 ms, each lasting up to
    // 1 s, until every record has its outcome. The sender keeps pace: one
    // fault at least per 2,000 records, so faults land all along the run.
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let chaos = {
        let (proxy, running) = (proxy.clone(), running.clone());
        tokio::spawn(async move {
            let mut rng = 0x2545_f491_4f6c_dd1du64;
            let mut next = move |n: u64| {
                rng ^= rng >> 12;
                rng ^= rng << 25;
                rng ^= rng >> 27;
                rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
            };
            let mut faults = [0usize; 4];
            while running.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(50 + next(200))).await;
                let hold = Duration::from_millis(100 + next(900));
                let kind = next(4) as usize;
                faults[kind] += 1;
                match kind {
                    0 => proxy.cut_connections(),
                    1 => proxy.reset_connections(),
                    2 => {
                        proxy.stall(true);
                        tokio::time::sleep(hold).await;
                        proxy.stall(false);
                    }
                    _ => {
                        proxy.swallow_responses(true);
                        tokio::time::sleep(hold).await;
                        proxy.swallow_responses(false);
                    }
                }
                count_tx.send_replace(faults.iter().sum());
            }
            faults
        })
    };
    let started = Instant::now();
    let key = |i: usize| format!("k{}", i % 101);
    for i in 0..N {
        if i == N / 2 {
            tansu.kill9();
        }
        if i == N / 2 + 10_000 {
            // Bounded wait until the outage was felt, then restart.
            wait_for_retries(&producer, Duration::from_secs(60)).await;
            tansu.restart();
        }
        if i % 2_000 == 0 {
            // Keep pace with the chaos (a condition, bounded).
            tokio::time::timeout(BOUND, count_rx.wait_for(|c| *c >= i / 2_000))
                .await
                .expect("the chaos schedule goes on")
                .unwrap();
        }
        let k = key(i);
        checker
            .send(&producer, |v| Record::new("chaos", v).key(k))
            .await;
    }
    checker.wait(BOUND * 2).await;
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    let [cuts, resets, stalls, swallows] = chaos.await.unwrap();
    let stats = producer.stats();
    let read = read_log_async(&proxy.addr(), "chaos", 3).await;
    for r in &read {
        let i: usize = std::str::from_utf8(r.value.as_deref().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            r.key.as_deref(),
            Some(key(i).as_bytes()),
            "record {i}'s key"
        );
    }
    let report = checker.check("chaos proxy + kill -9 on Tansu", &read_logs(&read, 3));
    eprintln!(
        "chaos: {N} records in {:.1} s; faults: {cuts} cuts, {resets} resets, {stalls} stalls, {swallows} swallowed-answer windows, 1 kill -9; {stats:?}",
        started.elapsed().as_secs_f64(),
    );
    assert_eq!(report.failed, 0, "{:?}", checker.errors().first());
    assert_eq!(read.len(), N, "every record is in the log, once");
    assert!(
        cuts + resets + stalls + swallows >= 10,
        "the chaos was real"
    );
    assert!(stats.batch_retries > 0, "{stats:?}");
    producer.close(BOUND).await.unwrap();
}

/// The whole log of `topic` read with librdkafka, off the runtime.
async fn read_log_async(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> Vec<herald_test_support::Read> {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || herald_test_support::read_log(&b, &t, partitions, BOUND))
        .await
        .unwrap()
}
