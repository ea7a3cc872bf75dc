//! Issue 11, finding 4: the memory the producer holds for topics it sent
//! to once falls back once they have been idle for `metadata.max.idle.ms`.
//! Its own test binary, because it counts every allocation of the process
//! (a counting global allocator), and the mock broker runs in a child
//! process (this binary started again, running only `mock_broker_child`)
//! so that the broker's own memory for 10,000 topics is not counted.
// A global allocator is an unsafe trait; this one only counts and defers to
// the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use herald::{Producer, ProducerConfig, Record};
use herald_test_support::MockBroker;

/// Bytes allocated and not yet freed, by anyone in this process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
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
    mock.auto_create_topics(Some(1));
    println!("BOOTSTRAP {}", mock.bootstrap());
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn memory_for_topics_used_once_falls_back_once_they_are_idle() {
    const TOPICS: usize = 10_000;
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cfg = ProducerConfig::new(&bootstrap);
        cfg.set("metadata.max.idle.ms", "5000").unwrap();
        let producer = Producer::new(cfg).unwrap();
        producer.send(Record::new("warm-up", "x")).await.unwrap().await.unwrap();
        let base = live();
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..TOPICS {
            let p = producer.clone();
            sends.spawn(async move {
                p.send(Record::new(format!("topic-{i}"), "x")).await?.await
            });
        }
        while let Some(r) = sends.join_next().await {
            r.unwrap().unwrap();
        }
        drop(sends);
        let used = live() - base;
        let started = Instant::now();
        let left = loop {
            // Keep one topic busy, as a real application would.
            producer.send(Record::new("warm-up", "y")).await.unwrap().await.unwrap();
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
        assert!(used > 1 << 20, "10,000 topics' state is at least 1 MiB: {used}");
        assert!(
            left < used / 10,
            "memory did not fall back: {used} bytes after sending, {left} after 30 s"
        );
        producer.close(Duration::from_secs(10)).await.unwrap();
    });
    drop(child.stdin.take());
    let _ = child.wait();
}
