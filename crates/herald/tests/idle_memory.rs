//! The producer's own memory, counted by a global allocator: what topics
//! sent to once hold after `metadata.max.idle.ms` (issue 11, finding 4),
//! and what each way of sending allocates per record (issue 12).
//! Its own test binary, because it counts every allocation of the process,
//! and the mock broker runs in a child process (this binary started again,
//! running only `mock_broker_child`) so that the broker's own allocations
//! are not counted. The tests take turns (`ONE_AT_A_TIME`).
// A global allocator is an unsafe trait; this one only counts and defers to
// the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use herald::{Producer, ProducerConfig, Record};
use herald_test_support::MockBroker;

/// Bytes allocated and not yet freed, by anyone in this process.
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Allocations made (not reallocations), by anyone in this process.
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
/// The counters are the process's: one test at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Not a test: the mock broker (auto-creating topics) for the test below,
/// run in a child process. It prints its address and serves until its
/// standard input closes.
#[test]
#[ignore = "helper run by memory_for_topics_used_once_falls_back_once_they_are_idle"]
fn mock_broker_child() {
    if std::env::var_os("HERALD_MOCK_CHILD").is_none() {
        return;
    }
    let mock = MockBroker::start();
    mock.auto_create_topics(Some(3));
    println!("BOOTSTRAP {}", mock.bootstrap());
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// The mock broker in a child process, and its address.
fn broker_child() -> (std::process::Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["mock_broker_child", "--exact", "--ignored", "--nocapture"])
        .env("HERALD_MOCK_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the child's address, then keep draining its output (a closed
    // pipe would fail the child's next write).
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(b) = line.strip_prefix("BOOTSTRAP ") {
                let _ = tx.send(b.to_string());
            }
        }
    });
    let bootstrap = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the child mock broker's address");
    (child, bootstrap)
}

/// Run `test` with the child broker's address, on a runtime of its own,
/// while no other test of this binary runs.
fn with_broker_child<F: std::future::Future<Output = ()>>(test: impl FnOnce(String) -> F) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (mut child, bootstrap) = broker_child();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test(bootstrap));
    drop(child.stdin.take());
    let _ = child.wait();
}

#[test]
fn memory_for_topics_used_once_falls_back_once_they_are_idle() {
    const TOPICS: usize = 10_000;
    with_broker_child(|bootstrap| async move {
        let mut cfg = ProducerConfig::new(&bootstrap);
        cfg.set("metadata.max.idle.ms", "5000").unwrap();
        let producer = Producer::new(cfg).unwrap();
        producer
            .send(Record::new("warm-up", "x"))
            .await
            .unwrap()
            .await
            .unwrap();
        let base = live();
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..TOPICS {
            let p = producer.clone();
            sends.spawn(async move { p.send(Record::new(format!("topic-{i}"), "x")).await?.await });
        }
        while let Some(r) = sends.join_next().await {
            r.unwrap().unwrap();
        }
        drop(sends);
        let used = live() - base;
        let started = Instant::now();
        let left = loop {
            // Keep one topic busy, as a real application would.
            producer
                .send(Record::new("warm-up", "y"))
                .await
                .unwrap()
                .await
                .unwrap();
            let left = live() - base;
            if left < used / 10 || started.elapsed() > Duration::from_secs(30) {
                break left;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        eprintln!(
            "idle topics: {TOPICS} topics used once held {:.1} MiB; {:.2} MiB left {:.1} s later (metadata.max.idle.ms=5000)",
            used as f64 / 1048576.0,
            left as f64 / 1048576.0,
            started.elapsed().as_secs_f64()
        );
        assert!(
            used > 1 << 20,
            "10,000 topics' state is at least 1 MiB: {used}"
        );
        assert!(
            left < used / 10,
            "memory did not fall back: {used} bytes after sending, {left} after 30 s"
        );
        producer.close(Duration::from_secs(10)).await.unwrap();
    });
}

/// Issue 12: fire-and-forget (send, drop the handle) was the most
/// expensive way to send, because each record carried a channel (an
/// allocation on the sending thread, freed on the producer's). Records of
/// a batch now share one outcome cell: dropping a handle allocates nothing
/// per record, and costs less than a callback (which boxes the closure).
#[test]
fn fire_and_forget_allocates_nothing_per_record() {
    const RECORDS: usize = 20_000;
    with_broker_child(|bootstrap| async move {
        let producer = Producer::new(ProducerConfig::new(&bootstrap)).unwrap();
        let topic: std::sync::Arc<str> = "per-record".into();
        let value = bytes::Bytes::from_static(&[b'v'; 100]);
        producer
            .send(Record::new(topic.clone(), value.clone()))
            .await
            .unwrap()
            .await
            .unwrap();
        // Allocations per record while sending RECORDS records (everything
        // the process does: the producer's tasks, requests and responses
        // included), then waiting for every outcome.
        let per_record = |allocs: usize| allocs as f64 / RECORDS as f64;
        let key = |i: usize| bytes::Bytes::copy_from_slice(&(i as u64).to_be_bytes());
        // The keys are made first: they are the application's allocations.
        let keys: Vec<_> = (0..RECORDS).map(key).collect();
        let before = ALLOCS.load(Ordering::Relaxed);
        for k in keys {
            drop(
                producer
                    .send(Record::new(topic.clone(), value.clone()).key(k))
                    .await
                    .unwrap(),
            );
        }
        producer.flush().await;
        let dropped = per_record(ALLOCS.load(Ordering::Relaxed) - before);
        let keys: Vec<_> = (0..RECORDS).map(key).collect();
        let delivered = std::sync::Arc::new(AtomicUsize::new(0));
        let before = ALLOCS.load(Ordering::Relaxed);
        for k in keys {
            let d = delivered.clone();
            producer
                .send_with_callback(Record::new(topic.clone(), value.clone()).key(k), move |r| {
                    if r.is_ok() {
                        d.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .await
                .unwrap();
        }
        producer.flush().await;
        let callbacks = per_record(ALLOCS.load(Ordering::Relaxed) - before);
        eprintln!(
            "allocations per record: {dropped:.3} dropping the handle, {callbacks:.3} with a callback"
        );
        assert_eq!(delivered.load(Ordering::Relaxed), RECORDS);
        let stats = producer.stats();
        assert_eq!(stats.records_failed, 0);
        assert_eq!(stats.records_delivered, 2 * RECORDS as u64 + 1);
        assert!(
            dropped < 0.25,
            "fire-and-forget allocated {dropped:.3} times per record"
        );
        assert!(
            dropped < callbacks,
            "fire-and-forget ({dropped:.3}) allocated more than callbacks ({callbacks:.3})"
        );
        producer.close(Duration::from_secs(10)).await.unwrap();
    });
}
