//! One measured librdkafka run (through the `rdkafka` crate), written as a
//! competent librdkafka user would: `BaseProducer` polled from the sending
//! loop (or `ThreadedProducer`, `--rdk-api`), `FutureProducer` for
//! futures; no per-record allocation in the harness; a full queue waited on
//! by polling (which serves the delivery reports that make room).
//!
//! `rdkafka`'s `poll(t)` serves events until `t` has passed (not until the
//! first one, as C's `rd_kafka_poll` does), and hands librdkafka the time
//! left in whole milliseconds, truncated: `poll(1 ms)` spins for most of
//! its millisecond, and its `flush(t)` polls in slices of 100 ms, so a
//! flush returns up to 100 ms after the last acknowledgement. So this
//! harness waits with `poll(0)` (one event each) and a 50 µs pause between
//! rounds, and flushes with `flush(0)` in the same loop.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer as _,
    ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientConfig, ClientContext};

use crate::client::{self, count, due, Figures, Latency, RdkApi, Style, Workload};

/// The pause between rounds of polling while waiting (a full queue, a
/// flush): short against the tens of milliseconds of records librdkafka's
/// queue holds here, so its broker threads never run dry, and no spinning.
const WAIT_PAUSE: Duration = Duration::from_micros(50);

/// `poll(0)` calls per round: each serves at most one event (one
/// partition's delivery reports, or one error).
const POLLS_PER_ROUND: usize = 4;

/// The settings: the workload's, and with `--batch-size` the equal
/// settings (see `Workload::batch_size`).
fn config(bootstrap: &str, w: &Workload) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    if let Ok(d) = std::env::var("HERALD_BENCH_RDKAFKA_DEBUG") {
        cfg.set("debug", d).set("log.queue", "false");
    }
    cfg.set("bootstrap.servers", bootstrap)
        .set("acks", &w.acks)
        .set("linger.ms", w.linger_ms.to_string())
        .set("compression.type", &w.compression)
        .set("enable.idempotence", w.idempotence.to_string())
        .set(
            "queue.buffering.max.kbytes",
            (w.buffer_bytes / 1024).to_string(),
        );
    if let Some(b) = w.batch_size {
        cfg.set("batch.size", b.to_string())
            .set("batch.num.messages", "1000000")
            .set("queue.buffering.max.messages", "10000000")
            .set("partitioner", "murmur2_random");
    }
    cfg
}

/// Logs librdkafka's warnings and errors; counts outcomes for the
/// fire-and-forget and callback styles. The delivery opaque is the send
/// time (`Latency::stamp`) or 0: an integer, no allocation.
struct Ctx {
    style: Style,
    latency: Option<&'static Latency>,
}

impl ClientContext for Ctx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        log(level, fac, log_message)
    }
}

fn log(level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
    if (level as i32) <= (rdkafka::config::RDKafkaLogLevel::Warning as i32)
        || std::env::var_os("HERALD_BENCH_RDKAFKA_DEBUG").is_some()
    {
        eprintln!("librdkafka {level:?} {fac}: {log_message}");
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = usize;
    fn delivery(&self, r: &DeliveryResult<'_>, sent: usize) {
        let ok = r.is_ok();
        if self.style == Style::FireAndForget {
            // The application ignores outcomes; failures are still counted
            // so that the run can be checked (herald's are in its stats).
            if !ok {
                client::FAILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            return;
        }
        if let (true, Some(l)) = (ok, self.latency) {
            l.record(sent);
        }
        count(ok);
    }
}

/// Only logs (the `FutureProducer` has its own delivery context).
struct LogCtx;

impl ClientContext for LogCtx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        log(level, fac, log_message)
    }
}

/// A record as `BaseProducer::send` takes it.
type Rec<'a> = BaseRecord<'a, [u8], [u8], usize>;

/// The producer types, behind one send-and-poll interface.
enum Rdk {
    Base(BaseProducer<Ctx>),
    Threaded(ThreadedProducer<Ctx>),
}

impl Rdk {
    // The same signature as `rdkafka`'s own `send`, which hands the record
    // back on failure.
    #[allow(clippy::result_large_err)]
    fn send<'a>(&self, rec: Rec<'a>) -> Result<(), (KafkaError, Rec<'a>)> {
        match self {
            Rdk::Base(p) => p.send(rec),
            Rdk::Threaded(p) => p.send(rec),
        }
    }

    /// Serve what delivery reports are queued (a few events).
    fn poll_round(&self) {
        for _ in 0..POLLS_PER_ROUND {
            match self {
                Rdk::Base(p) => p.poll(Duration::ZERO),
                Rdk::Threaded(p) => p.poll(Duration::ZERO),
            }
        }
    }

    /// Wait until every record has its outcome.
    fn flush(&self) -> Result<(), String> {
        let flushed = || match self {
            Rdk::Base(p) => p.flush(Duration::ZERO),
            Rdk::Threaded(p) => p.flush(Duration::ZERO),
        };
        flush_by_polling(flushed, || self.poll_round())
    }

    fn context(&self) -> &Ctx {
        match self {
            Rdk::Base(p) => p.context(),
            Rdk::Threaded(p) => p.context(),
        }
    }
}

pub fn run(bootstrap: &str, topic: &str, w: &Workload) -> Result<Figures, String> {
    if w.style == Style::Futures {
        return run_futures(bootstrap, topic, w);
    }
    let cfg = config(bootstrap, w);
    let ctx = Ctx {
        style: w.style,
        latency: client::latency(w),
    };
    let p = match w.rdk_api() {
        RdkApi::Base => Rdk::Base(cfg.create_with_context(ctx).map_err(|e| e.to_string())?),
        _ => Rdk::Threaded(cfg.create_with_context(ctx).map_err(|e| e.to_string())?),
    };
    let (keys, values) = w.data()?;
    let send_range = |range: std::ops::Range<usize>, step: usize, start: Instant| {
        let mut since_poll = 0;
        for i in range.step_by(step) {
            if let Some(at) = due(start, w.rate, i) {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
            }
            let sent = p.context().latency.map_or(0, |l| l.stamp());
            let mut rec = BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, sent)
                .payload(values.slice(i));
            if let Some(k) = keys.slice(i) {
                rec = rec.key(k);
            }
            loop {
                match p.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        rec = r;
                        p.poll_round();
                        std::thread::sleep(WAIT_PAUSE);
                    }
                    Err((e, _)) => return Err(format!("librdkafka: {e}")),
                }
            }
            since_poll += 1;
            if matches!(p, Rdk::Base(_)) && since_poll >= w.rdk_poll_every {
                since_poll = 0;
                p.poll_round();
            }
        }
        Ok::<(), String>(())
    };
    send_range(0..w.warmup, 1, Instant::now())?;
    p.flush()?;
    settled_warmup(p.context().latency);
    let (cpu0, _) = client::usage();
    let start = Instant::now();
    std::thread::scope(|s| {
        (0..w.tasks)
            .map(|t| s.spawn(move || send_range(t..w.records, w.tasks, start)))
            .collect::<Vec<_>>()
            .into_iter()
            .try_for_each(|t| t.join().expect("sending thread panicked"))
    })?;
    p.flush()?;
    let took = start.elapsed();
    client::check_outcomes(
        "librdkafka",
        w,
        client::FAILED.load(std::sync::atomic::Ordering::Relaxed),
    )?;
    let latency = p.context().latency;
    drop(p);
    let (cpu1, _) = client::usage();
    Ok(client::figures("librdkafka", w, took, cpu1 - cpu0, latency))
}

/// Warm-up outcomes are not figures.
fn settled_warmup(latency: Option<&Latency>) {
    client::DELIVERED.store(0, std::sync::atomic::Ordering::Relaxed);
    if let Some(l) = latency {
        l.reset();
    }
}

/// The futures style: `FutureProducer::send_result`, up to `--window`
/// futures in flight, awaited oldest first; a full queue awaits the oldest.
fn run_futures(bootstrap: &str, topic: &str, w: &Workload) -> Result<Figures, String> {
    let p: FutureProducer<LogCtx> = config(bootstrap, w)
        .create_with_context(LogCtx)
        .map_err(|e| e.to_string())?;
    let latency = client::latency(w);
    let (keys, values) = w.data()?;
    let send_range = |range: std::ops::Range<usize>, step: usize, start: Instant| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let mut waiting = VecDeque::new();
            for i in range.step_by(step) {
                if let Some(at) = due(start, w.rate, i) {
                    tokio::time::sleep_until(at.into()).await;
                }
                if waiting.len() == w.window {
                    settle(waiting.pop_front(), latency).await;
                }
                let sent = latency.map_or(0, |l| l.stamp());
                let mut rec = FutureRecord::<[u8], [u8]>::to(topic).payload(values.slice(i));
                if let Some(k) = keys.slice(i) {
                    rec = rec.key(k);
                }
                loop {
                    match p.send_result(rec) {
                        Ok(f) => {
                            waiting.push_back((sent, f));
                            break;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            rec = r;
                            if waiting.is_empty() {
                                // Another thread's records fill the queue:
                                // its futures make room.
                                tokio::time::sleep(WAIT_PAUSE).await;
                            } else {
                                settle(waiting.pop_front(), latency).await;
                            }
                        }
                        Err((e, _)) => return Err(format!("librdkafka: {e}")),
                    }
                }
            }
            while !waiting.is_empty() {
                settle(waiting.pop_front(), latency).await;
            }
            Ok::<(), String>(())
        })
    };
    send_range(0..w.warmup, 1, Instant::now())?;
    settled_warmup(latency);
    let (cpu0, _) = client::usage();
    let start = Instant::now();
    std::thread::scope(|s| {
        (0..w.tasks)
            .map(|t| {
                let send_range = &send_range;
                s.spawn(move || send_range(t..w.records, w.tasks, start))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .try_for_each(|t| t.join().expect("sending thread panicked"))
    })?;
    // Every future was awaited: nothing is left but the polling thread's.
    flush_by_polling(|| p.flush(Duration::ZERO), || ())?;
    let took = start.elapsed();
    client::check_outcomes(
        "librdkafka",
        w,
        client::FAILED.load(std::sync::atomic::Ordering::Relaxed),
    )?;
    drop(p);
    let (cpu1, _) = client::usage();
    Ok(client::figures("librdkafka", w, took, cpu1 - cpu0, latency))
}

/// Await the oldest record's outcome and count it.
async fn settle(
    oldest: Option<(usize, rdkafka::producer::DeliveryFuture)>,
    latency: Option<&Latency>,
) {
    if let Some((sent, f)) = oldest {
        let ok = matches!(f.await, Ok(Ok(_)));
        if let (true, Some(l)) = (ok, latency) {
            l.record(sent);
        }
        count(ok);
    }
}

/// `flush(0)` (which also tells librdkafka to send lingering batches now)
/// until it succeeds, serving delivery reports between rounds; at most
/// 300 s.
fn flush_by_polling(
    flushed: impl Fn() -> rdkafka::error::KafkaResult<()>,
    poll: impl Fn(),
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while flushed().is_err() {
        if Instant::now() > deadline {
            return Err("librdkafka: records still without an outcome after 300 s".into());
        }
        poll();
        std::thread::sleep(WAIT_PAUSE);
    }
    Ok(())
}
