//! Out of space on a real filesystem: a size-limited tmpfs (`mount -t
//! tmpfs -o size=…`, root). The spool fills the disk; the append that does
//! not fit fails with `SpoolError::DiskFull`; nothing acknowledged is lost
//! (after a reopen too); and appends work again once space is freed.

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use herald::{ProducerConfig, Record};
use herald_spool::{LogConfig, Spool, SpoolConfig, SpoolError};

struct Tmpfs(tempfile::TempDir);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

fn mount_tmpfs(size: &str) -> Result<Tmpfs, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir.path())
        .output()
        .map_err(|e| format!("running mount: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mount -t tmpfs failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Tmpfs(dir))
}

fn record(i: u64) -> Record {
    Record::new(
        "events",
        Bytes::from(format!("{i:08}:{}", "v".repeat(1000))),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_appends_clearly_loses_nothing_and_recovers() {
    let fs = match mount_tmpfs("1m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("\n!!!! SKIPPED a_full_disk_fails_appends_clearly: {why} !!!!\n");
            return;
        }
    };
    let dir = fs.0.path().join("spool");
    // Space to free later.
    let filler = fs.0.path().join("filler");
    std::fs::write(&filler, vec![0u8; 256 << 10]).unwrap();
    let cfg = SpoolConfig {
        log: LogConfig {
            segment_bytes: 100 << 10,
        },
        max_bytes: 1 << 30, // the disk, not max.bytes, is the limit here
        ..SpoolConfig::default()
    };
    // Nothing listens there: records stay in the spool.
    let producer = || ProducerConfig::new("127.0.0.1:1");
    let (spool, _) = Spool::open(&dir, cfg.clone(), producer()).unwrap();
    let mut acked = Vec::new();
    let err = loop {
        let i = acked.len() as u64;
        assert!(i < 10_000, "a 1 MiB filesystem took 10,000 records of 1 KB");
        // Some atomic batches, too.
        let r = if i.is_multiple_of(5) {
            spool
                .append_batch(&[record(i), record(i + 1)])
                .await
                .map(|r| r.start)
        } else {
            spool.append(&record(i)).await
        };
        match r {
            Ok(seq) => {
                assert_eq!(seq, i);
                acked.push(i);
                if i.is_multiple_of(5) {
                    acked.push(i + 1);
                }
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(err, SpoolError::DiskFull { .. }), "{err}");
    assert!(err.is_retriable());
    let text = err.to_string();
    assert!(
        text.contains("disk holding the spool is full") && text.contains("Free space"),
        "{text}"
    );
    eprintln!(
        "{} records acknowledged before the disk was full: {text}",
        acked.len()
    );
    // Near full: appends that fit (a smaller group may) are acknowledged,
    // the others refused clearly, until three refusals in a row.
    let mut refusals = 0;
    while refusals < 3 {
        let i = acked.len() as u64;
        assert!(i < 10_000);
        match spool.append(&record(i)).await {
            Ok(seq) => {
                assert_eq!(seq, i);
                acked.push(i);
                refusals = 0;
            }
            Err(SpoolError::DiskFull { .. }) => refusals += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(spool.stats().backlog_records, acked.len() as u64);
    spool.close(Duration::from_secs(5)).await.unwrap();
    drop(spool);

    // Reopened on the full disk: every acknowledged record, in order.
    let (log, _) = herald_spool::Log::open(&dir, cfg.log.clone()).unwrap();
    let got = log.read_from(0, usize::MAX).unwrap();
    assert_eq!(got.len(), acked.len());
    for (seq, payload) in got {
        let r = herald_spool::codec::decode(&payload).unwrap();
        assert_eq!(r.value, record(seq).value, "record {seq}");
    }
    drop(log);

    // Space freed: appends work again, after the acknowledged ones.
    std::fs::remove_file(&filler).unwrap();
    let (spool, _) = Spool::open(&dir, cfg, producer()).unwrap();
    let n = acked.len() as u64;
    for i in n..n + 50 {
        assert_eq!(spool.append(&record(i)).await.unwrap(), i);
    }
    assert_eq!(spool.stats().backlog_records, n + 50);
    spool.close(Duration::from_secs(5)).await.unwrap();
}
