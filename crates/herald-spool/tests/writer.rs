//! Group commit: concurrent appenders, every acknowledged batch durable
//! and whole after a reopen, each at the sequences it was told.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use herald_spool::{Log, LogConfig, SpoolError, Writer};

fn payload(task: usize, i: usize, j: usize) -> Vec<u8> {
    format!("task {task} batch {i} record {j}").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_durable_whole_and_in_the_order_told() {
    const TASKS: usize = 32;
    const BATCHES: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 4096,
    };
    let (log, _) = Log::open(dir.path(), cfg.clone()).unwrap();
    let w = Arc::new(Writer::start(log));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let mut told = Vec::new();
            for i in 0..BATCHES {
                let batch: Vec<Vec<u8>> = (0..=(i % 3)).map(|j| payload(t, i, j)).collect();
                let r = w.append(batch).await.unwrap();
                assert_eq!(r.end - r.start, (i % 3 + 1) as u64);
                told.push((r, t, i));
            }
            told
        }));
    }
    let mut told = Vec::new();
    for t in tasks {
        told.extend(t.await.unwrap());
    }
    let groups = w.stats.groups.load(Ordering::Relaxed);
    let records = w.stats.records.load(Ordering::Relaxed);
    eprintln!(
        "{} batches, {records} records in {groups} groups (fdatasyncs)",
        told.len()
    );
    w.close();
    assert!(matches!(
        w.append(vec![b"late".to_vec()]).await,
        Err(SpoolError::Closed)
    ));
    drop(w);

    // Reopen: every batch at the sequences it was told, whole.
    let (log, rec) = Log::open(dir.path(), cfg).unwrap();
    assert_eq!(rec.truncated, None);
    assert_eq!(log.bounds().end, records);
    for (range, t, i) in told {
        let got = log
            .read_from(range.start, (range.end - range.start) as usize)
            .unwrap();
        let want: Vec<(u64, Vec<u8>)> = (0..=(i % 3))
            .map(|j| (range.start + j as u64, payload(t, i, j)))
            .collect();
        assert_eq!(got, want, "task {t} batch {i}");
    }
}
