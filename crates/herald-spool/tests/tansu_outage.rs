//! End to end with a real broker (Tansu on sqlite) and a real reader
//! (librdkafka): 100,000 keyed records appended to a spool in another
//! process while Tansu is killed (kill -9) and comes back 30 s later. Every
//! acknowledged record is delivered, in order per key. The second test also
//! kills the spool's process with kill -9 during the outage and again during
//! the drain: nothing acknowledged is lost; repeats are counted, split into
//! the spool's resends (same `herald.spool.id`, which a consumer drops) and
//! the appender's own retries of appends that were never acknowledged.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald::{ProducerConfig, Record};
use herald_spool::{Spool, SpoolConfig, ID_HEADER};
use herald_test_support::Tansu;

const RECORDS: u64 = 100_000;
const KEYS: u64 = 100;
const BATCH: u64 = 100;
const OUTAGE: Duration = Duration::from_secs(30);

fn producer(bootstrap: &str) -> ProducerConfig {
    let mut p = ProducerConfig::new(bootstrap);
    p.set("request.timeout.ms", "2000").unwrap();
    p
}

/// The child: append records `FROM..TO` (value `i`, key `k{i % 100}`) in
/// atomic batches, printing `ACK n` (all below `n` acknowledged), then
/// `STATS delivered backlog` until the backlog is empty, then `DRAINED`.
#[test]
#[ignore = "run by the end-to-end tests as their child process"]
fn tansu_child() {
    let Ok(dir) = std::env::var("E2E_DIR") else {
        return;
    };
    let bootstrap = std::env::var("E2E_BOOTSTRAP").unwrap();
    let from: u64 = std::env::var("E2E_FROM").unwrap().parse().unwrap();
    let to: u64 = std::env::var("E2E_TO").unwrap().parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let cfg = SpoolConfig {
            checkpoint_interval: Duration::from_millis(200),
            ..SpoolConfig::default()
        };
        let (spool, _) = Spool::open(Path::new(&dir), cfg, producer(&bootstrap)).unwrap();
        let mut out = std::io::stdout();
        let mut i = from;
        while i < to {
            let end = (i + BATCH).min(to);
            let batch: Vec<Record> = (i..end)
                .map(|n| {
                    Record::new("orders", Bytes::from(n.to_string()))
                        .key(Bytes::from(format!("k{}", n % KEYS)))
                })
                .collect();
            spool.append_batch(&batch).await.unwrap();
            i = end;
            writeln!(out, "ACK {i}").unwrap();
            out.flush().unwrap();
        }
        loop {
            let s = spool.stats();
            writeln!(out, "STATS {} {}", s.delivered, s.backlog_records).unwrap();
            out.flush().unwrap();
            if s.backlog_records == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        spool.close(Duration::from_secs(10)).await.unwrap();
        writeln!(out, "DRAINED").unwrap();
    });
}

/// A running child and what it printed last.
struct Appender {
    child: Child,
    acked: Arc<Mutex<u64>>,
    delivered: Arc<Mutex<u64>>,
    drained: Arc<Mutex<bool>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Appender {
    fn start(dir: &Path, bootstrap: &str, from: u64, to: u64) -> Appender {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["tansu_child", "--exact", "--ignored", "--nocapture"])
            .env("E2E_DIR", dir)
            .env("E2E_BOOTSTRAP", bootstrap)
            .env("E2E_FROM", from.to_string())
            .env("E2E_TO", to.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acked = Arc::new(Mutex::new(from));
        let delivered = Arc::new(Mutex::new(0));
        let drained = Arc::new(Mutex::new(false));
        let stdout = child.stdout.take().unwrap();
        let (a, d, dr) = (acked.clone(), delivered.clone(), drained.clone());
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let f: Vec<&str> = line.split(' ').collect();
                match f[0] {
                    "ACK" => *a.lock().unwrap() = f[1].parse().unwrap(),
                    "STATS" => *d.lock().unwrap() = f[1].parse().unwrap(),
                    "DRAINED" => *dr.lock().unwrap() = true,
                    _ => {}
                }
            }
        });
        Appender {
            child,
            acked,
            delivered,
            drained,
            reader: Some(reader),
        }
    }

    fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&Appender) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(start.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn acked(&self) -> u64 {
        *self.acked.lock().unwrap()
    }

    /// kill -9; returns how many records were acknowledged.
    fn kill9(mut self) -> u64 {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.reader.take().unwrap().join().unwrap();
        self.acked()
    }

    fn finish(mut self) {
        self.wait_for("the drain", Duration::from_secs(240), |a| {
            *a.drained.lock().unwrap()
        });
        self.child.wait().unwrap();
        self.reader.take().unwrap().join().unwrap();
    }
}

fn run(kill_spool: bool) {
    let mut tansu = Tansu::start();
    tansu.create_topic("orders", 3);
    let spool_dir = tempfile::tempdir().unwrap();
    let dir = spool_dir.path();
    let boot = tansu.bootstrap();
    let a = Appender::start(dir, &boot, 0, RECORDS);
    a.wait_for("20,000 acknowledged", Duration::from_secs(120), |a| {
        a.acked() >= 20_000
    });
    tansu.kill9();
    let down_at = Instant::now();
    eprintln!("Tansu killed with {} records acknowledged", a.acked());
    let mut kills = 0;
    let a = if kill_spool {
        a.wait_for("60,000 acknowledged", Duration::from_secs(60), |a| {
            a.acked() >= 60_000
        });
        let acked = a.kill9();
        kills += 1;
        eprintln!("spool process killed during the outage at {acked} acknowledged");
        Appender::start(dir, &boot, acked, RECORDS)
    } else {
        a
    };
    a.wait_for("every record appended", Duration::from_secs(120), |a| {
        a.acked() >= RECORDS
    });
    std::thread::sleep(OUTAGE.saturating_sub(down_at.elapsed()));
    tansu.restart();
    eprintln!("Tansu back after {:?}", down_at.elapsed());
    let a = if kill_spool {
        a.wait_for("part of the drain", Duration::from_secs(120), |a| {
            *a.delivered.lock().unwrap() >= 20_000
        });
        a.kill9();
        kills += 1;
        eprintln!("spool process killed during the drain");
        Appender::start(dir, &boot, RECORDS, RECORDS)
    } else {
        a
    };
    a.finish();

    // Read back with librdkafka.
    let read = herald_test_support::read_log(&boot, "orders", 3, Duration::from_secs(180));
    let mut seen_values: HashSet<u64> = HashSet::new();
    let mut seen_ids: HashSet<String> = HashSet::new();
    let (mut resends, mut retries) = (0, 0);
    let mut last_per_key: HashMap<Vec<u8>, u64> = HashMap::new();
    for r in &read {
        let v: u64 = String::from_utf8(r.value.clone().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        let id = r
            .headers
            .iter()
            .find(|(k, _)| k == ID_HEADER)
            .and_then(|(_, v)| v.clone())
            .map(|v| String::from_utf8(v).unwrap())
            .expect("every record carries its spool id");
        if !seen_ids.insert(id) {
            resends += 1; // the spool sent it again after a kill: same id
            continue;
        }
        if !seen_values.insert(v) {
            retries += 1; // appended again after its append was cut by a kill
            continue;
        }
        let key = r.key.clone().unwrap();
        assert_eq!(key, format!("k{}", v % KEYS).into_bytes());
        if let Some(prev) = last_per_key.insert(key.clone(), v) {
            assert!(
                prev < v,
                "key {}: {v} after {prev}",
                String::from_utf8_lossy(&key)
            );
        }
    }
    let missing = (0..RECORDS).filter(|v| !seen_values.contains(v)).count();
    assert_eq!(missing, 0, "acknowledged records never delivered");
    eprintln!(
        "{} records read back by librdkafka: all {RECORDS} delivered, in order per key; \
         spool process killed {kills} times; {resends} resent by the spool after a kill \
         (same {ID_HEADER}), {retries} appended twice by the appender (an append cut by a \
         kill, retried)",
        read.len()
    );
    if !kill_spool {
        assert_eq!(
            (resends, retries),
            (0, 0),
            "no kill of the spool, no repeats"
        );
    }
    // The spool's own resends come only from the crash window: each kill
    // repeats at most what was sent and not yet checkpointed (the window of
    // 10,000 records in flight plus the checkpoint interval's worth).
    assert!(
        resends <= kills * 20_000,
        "{resends} resends for {kills} kills"
    );
}

#[test]
fn an_outage_of_30_s_loses_nothing_and_keeps_key_order() {
    run(false);
}

#[test]
fn kill_9_during_the_outage_and_the_drain_loses_nothing() {
    run(true);
}
