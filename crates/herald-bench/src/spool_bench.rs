//! `herald-bench spool …`: the spool's figures (BENCHMARKS.md, "The spool").
//!
//! - `appends`: appends/s and append latency for each record size and
//!   number of concurrent appenders, with Kafka away (nothing forwarded),
//!   beside the raw ceiling measured in the same run and directory: one
//!   `write` plus one `fdatasync` at a time, of the group sizes the spool
//!   made (so "raw" is what group commit could give at best).
//! - `forward`: a backlog of N records forwarded into the null sink, beside
//!   the producer sending the same records directly (same settings:
//!   the forwarding producer's), alternating runs, medians.
//! - `rss`: one process fills a spool with a backlog of G gigabytes (Kafka
//!   away), then forwards it all into the null sink; prints its peak RSS.
//!
//! The directory (`--dir`) must be on the disk to measure (not tmpfs).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Subcommand;
use hdrhistogram::Histogram;
use herald::{Producer, ProducerConfig, Record};
use herald_spool::{forwarding_config, Spool, SpoolConfig};

use crate::client::usage;
use crate::sink::SinkKind;
use crate::SinkProcess;

#[derive(Subcommand, Debug)]
pub enum SpoolBench {
    /// Appends/s and latency against the raw write+fdatasync ceiling.
    Appends {
        /// Where the spools are made (a directory on the disk to measure).
        #[arg(long, default_value = "/var/tmp")]
        dir: PathBuf,
        /// Value sizes in bytes (an 8-byte key is added).
        #[arg(long, value_delimiter = ',', default_value = "200,1000")]
        sizes: Vec<usize>,
        /// Concurrent appenders.
        #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
        appenders: Vec<usize>,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Forward a backlog into the null sink, beside the producer direct.
    Forward {
        #[arg(long, default_value = "/var/tmp")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        #[arg(long, default_value_t = 200)]
        size: usize,
        /// Runs of each (alternating); figures are medians.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Peak RSS of one process that fills and drains a large backlog.
    Rss {
        #[arg(long, default_value = "/var/tmp")]
        dir: PathBuf,
        #[arg(long, default_value_t = 2.0)]
        gigabytes: f64,
        #[arg(long, default_value_t = 1000)]
        size: usize,
    },
}

pub fn run(cmd: SpoolBench) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        match cmd {
            SpoolBench::Appends {
                dir,
                sizes,
                appenders,
                seconds,
            } => appends(&dir, &sizes, &appenders, Duration::from_secs_f64(seconds)).await,
            SpoolBench::Forward {
                dir,
                records,
                size,
                runs,
            } => forward(&dir, records, size, runs.max(1)).await,
            SpoolBench::Rss {
                dir,
                gigabytes,
                size,
            } => rss(&dir, gigabytes, size).await,
        }
    })
}

fn record(i: u64, value: &Bytes) -> Record {
    Record::new("bench", value.clone()).key(Bytes::from(format!("{:08}", i % 100_000_000)))
}

/// Kafka away: the spool keeps everything (nothing listens on port 1).
fn away() -> ProducerConfig {
    ProducerConfig::new("127.0.0.1:1")
}

fn cfg() -> SpoolConfig {
    SpoolConfig {
        max_bytes: u64::MAX,
        window: std::env::var("SPOOL_WINDOW")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000),
        ..SpoolConfig::default()
    }
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn appends(
    dir: &Path,
    sizes: &[usize],
    appenders: &[usize],
    each: Duration,
) -> Result<(), String> {
    println!(
        "| value B | appenders | appends/s | p50 ms | p99 ms | records/sync | raw ceiling rec/s | fdatasync p50 ms | p99 ms | append p99 / fdatasync p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &size in sizes {
        let value = Bytes::from(vec![b'v'; size]);
        for &n in appenders {
            let tmp = tempfile::tempdir_in(dir).map_err(|e| e.to_string())?;
            let (spool, _) = Spool::open(tmp.path(), cfg(), away()).map_err(|e| e.to_string())?;
            let spool = Arc::new(spool);
            let merged = Arc::new(Mutex::new(hist()));
            let start = Instant::now();
            let deadline = start + each;
            let syncs0 = spool.stats().syncs;
            let mut tasks = Vec::new();
            for t in 0..n {
                let (spool, value, merged) = (spool.clone(), value.clone(), merged.clone());
                tasks.push(tokio::spawn(async move {
                    let mut h = hist();
                    let mut i = t as u64;
                    while Instant::now() < deadline {
                        let r = record(i, &value);
                        let t0 = Instant::now();
                        spool.append(&r).await.map_err(|e| e.to_string())?;
                        let _ = h.record(t0.elapsed().as_micros().max(1) as u64);
                        i += n as u64;
                    }
                    merged
                        .lock()
                        .expect("not poisoned")
                        .add(&h)
                        .expect("same bounds");
                    Ok::<(), String>(())
                }));
            }
            for t in tasks {
                t.await.map_err(|e| e.to_string())??;
            }
            let took = start.elapsed().as_secs_f64();
            let h = merged.lock().expect("not poisoned").clone();
            let appended = h.len();
            let syncs = spool.stats().syncs - syncs0;
            spool
                .close(Duration::from_secs(5))
                .await
                .map_err(|e| e.to_string())?;
            drop(spool);
            // The spooled size of one record, for the raw loop.
            let mut enc = Vec::new();
            herald_spool::codec::encode(&record(0, &value), &mut enc).map_err(|e| e.to_string())?;
            let frame = enc.len() + herald_spool::segment::FRAME_LEN;
            let group = (appended as f64 / syncs.max(1) as f64).max(1.0);
            let (raw_rate, fsync) = raw(tmp.path(), frame, group, each)?;
            println!(
                "| {size} | {n} | {:.0} | {:.2} | {:.2} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} |",
                appended as f64 / took,
                ms(&h, 0.5),
                ms(&h, 0.99),
                group,
                raw_rate,
                ms(&fsync, 0.5),
                ms(&fsync, 0.99),
                ms(&h, 0.99) / ms(&fsync, 0.99).max(0.001),
            );
        }
    }
    Ok(())
}

/// The ceiling: sequential `write` of `group` records' frames and
/// `fdatasync`, for `each`; records/s and the fdatasync latencies.
fn raw(
    dir: &Path,
    frame: usize,
    group: f64,
    each: Duration,
) -> Result<(f64, Histogram<u64>), String> {
    use std::io::Write;
    let path = dir.join("raw");
    let mut f = std::fs::File::create(&path).map_err(|e| e.to_string())?;
    let buf = vec![0x5a; (frame as f64 * group).round() as usize];
    let mut h = hist();
    let start = Instant::now();
    let mut groups = 0u64;
    while start.elapsed() < each {
        f.write_all(&buf).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        f.sync_data().map_err(|e| e.to_string())?;
        let _ = h.record(t0.elapsed().as_micros().max(1) as u64);
        groups += 1;
    }
    let took = start.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok((groups as f64 * group / took, h))
}

async fn fill(dir: &Path, records: u64, value: &Bytes) -> Result<(), String> {
    let (spool, _) = Spool::open(dir, cfg(), away()).map_err(|e| e.to_string())?;
    let mut i = 0;
    while i < records {
        let end = (i + 1000).min(records);
        let batch: Vec<Record> = (i..end).map(|j| record(j, value)).collect();
        spool
            .append_batch(&batch)
            .await
            .map_err(|e| e.to_string())?;
        i = end;
    }
    spool
        .close(Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())
}

/// Open the spool in `dir` on `bootstrap` and wait until its backlog is
/// delivered: seconds and CPU seconds, from the open (recovery, which
/// checks every segment, included).
async fn drain(dir: &Path, bootstrap: &str, records: u64) -> Result<(f64, f64), String> {
    drain_timed(dir, bootstrap, records)
        .await
        .map(|(_, all, cpu)| (all, cpu))
}

/// As [`drain`]: (seconds to open, seconds in all, CPU seconds).
async fn drain_timed(dir: &Path, bootstrap: &str, records: u64) -> Result<(f64, f64, f64), String> {
    let (cpu0, _) = usage();
    let start = Instant::now();
    let (spool, _) =
        Spool::open(dir, cfg(), ProducerConfig::new(bootstrap)).map_err(|e| e.to_string())?;
    let opened = start.elapsed().as_secs_f64();
    while spool.stats().delivered < records {
        if start.elapsed() > Duration::from_secs(600) {
            return Err(format!("the drain stalled: {:?}", spool.stats()));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = start.elapsed().as_secs_f64();
    let (cpu1, _) = usage();
    let s = spool.stats();
    if s.dead_letters > 0 {
        return Err(format!("{} dead letters", s.dead_letters));
    }
    spool
        .close(Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    Ok((opened, took, cpu1 - cpu0))
}

/// The producer alone (the spool's forwarding settings) sending
/// `make(i)` for each `i`: seconds taken and CPU seconds.
pub(crate) async fn direct(
    bootstrap: &str,
    records: u64,
    make: impl Fn(u64) -> Record,
) -> Result<(f64, f64), String> {
    let (cpu0, _) = usage();
    let start = Instant::now();
    let p = Producer::new(forwarding_config(ProducerConfig::new(bootstrap)))
        .map_err(|e| e.to_string())?;
    for i in 0..records {
        drop(p.send(make(i)).await.map_err(|e| e.to_string())?);
    }
    p.flush().await;
    let took = start.elapsed().as_secs_f64();
    let (cpu1, _) = usage();
    if p.stats().records_failed > 0 {
        return Err(format!("{} records failed", p.stats().records_failed));
    }
    p.close(Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    Ok((took, cpu1 - cpu0))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn forward(dir: &Path, records: u64, size: usize, runs: usize) -> Result<(), String> {
    let value = Bytes::from(vec![b'v'; size]);
    let (mut d_rate, mut d_cpu, mut s_rate, mut s_cpu) = (vec![], vec![], vec![], vec![]);
    let (mut after_rate, mut open_s) = (vec![], vec![]);
    for run in 0..runs {
        // A fresh sink per pair of runs.
        let sink = SinkProcess::start(SinkKind::Null, 3)?;
        let (t, c) = direct(&sink.bootstrap, records, |i| record(i, &value)).await?;
        d_rate.push(records as f64 / t);
        d_cpu.push(c / records as f64 * 1e6);
        let tmp = tempfile::tempdir_in(dir).map_err(|e| e.to_string())?;
        fill(tmp.path(), records, &value).await?;
        let (o, t, c) = drain_timed(tmp.path(), &sink.bootstrap, records).await?;
        s_rate.push(records as f64 / t);
        s_cpu.push(c / records as f64 * 1e6);
        after_rate.push(records as f64 / (t - o));
        open_s.push(o);
        eprintln!(
            "run {run}: direct {:.0} rec/s, spool {:.0} rec/s ({:.0} after a {:.2} s open)",
            d_rate[run], s_rate[run], after_rate[run], open_s[run]
        );
    }
    let (dr, sr, ar) = (median(d_rate), median(s_rate), median(after_rate));
    println!("| {records} records of {size} B into the null sink | records/s | CPU µs/record |");
    println!("|---|---|---|");
    println!("| producer direct | {dr:.0} | {:.2} |", median(d_cpu));
    println!(
        "| spool reopened, forwarding its backlog (recovery, {:.2} s, included) | {sr:.0} | {:.2} |",
        median(open_s),
        median(s_cpu)
    );
    println!("| spool forwarding once open (recovery excluded) | {ar:.0} | |");
    println!(
        "| spool / direct | {:.2} (recovery excluded: {:.2}) | |",
        sr / dr,
        ar / dr
    );
    Ok(())
}

async fn rss(dir: &Path, gigabytes: f64, size: usize) -> Result<(), String> {
    let value = Bytes::from(vec![b'v'; size]);
    let mut enc = Vec::new();
    herald_spool::codec::encode(&record(0, &value), &mut enc).map_err(|e| e.to_string())?;
    let per = (enc.len() + herald_spool::segment::FRAME_LEN) as f64;
    let records = (gigabytes * (1u64 << 30) as f64 / per) as u64;
    let tmp = tempfile::tempdir_in(dir).map_err(|e| e.to_string())?;
    let start = Instant::now();
    fill(tmp.path(), records, &value).await?;
    let filled = start.elapsed().as_secs_f64();
    let (_, rss_fill) = usage();
    let sink = SinkProcess::start(SinkKind::Null, 3)?;
    let (took, _) = drain(tmp.path(), &sink.bootstrap, records).await?;
    let (_, rss) = usage();
    println!(
        "backlog of {records} records of {size} B ({gigabytes} GiB on disk): filled in {filled:.1} s \
         (peak RSS {rss_fill:.1} MB), forwarded in {took:.1} s ({:.0} rec/s); peak RSS of the \
         process {rss:.1} MB",
        records as f64 / took
    );
    Ok(())
}
