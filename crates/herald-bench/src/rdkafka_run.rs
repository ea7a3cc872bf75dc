//! One measured librdkafka run (through the `rdkafka` crate), written as a
//! competent librdkafka user would: `BaseProducer` polled from the sending
//! loop (or `ThreadedProducer`, `--rdk-api`), `FutureProducer` for
//! futures; no per-record allocation in the harness; a full queue waited on
//! by polling (which serves the delivery reports that make room), never by
//! sleeping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer as _,
    ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientConfig, ClientContext};

use crate::client::{self, count, due, Figures, Latency, RdkApi, Style, Workload};

/// How long a sender with a full queue polls (serving delivery reports,
/// which free room) before trying again. `rdkafka`'s `poll(t)` serves
/// events until `t` has passed; librdkafka's queue holds tens of
/// milliseconds of records here, so its broker threads never run dry.
const FULL_QUEUE_POLL: Duration = Duration::from_millis(1);

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

    fn poll(&self, t: Duration) {
        match self {
            Rdk::Base(p) => p.poll(t),
            Rdk::Threaded(p) => p.poll(t),
        }
    }

    fn flush(&self) -> Result<(), String> {
        let t = Duration::from_secs(300);
        match self {
            Rdk::Base(p) => p.flush(t),
            Rdk::Threaded(p) => p.flush(t),
        }
        .map_err(|e| format!("librdkafka flush: {e}"))
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
    let p = match w.rdk_api {
        RdkApi::Base => Rdk::Base(cfg.create_with_context(ctx).map_err(|e| e.to_string())?),
        RdkApi::Threaded => Rdk::Threaded(cfg.create_with_context(ctx).map_err(|e| e.to_string())?),
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
                        p.poll(FULL_QUEUE_POLL);
                    }
                    Err((e, _)) => return Err(format!("librdkafka: {e}")),
                }
            }
            since_poll += 1;
            if matches!(p, Rdk::Base(_)) && since_poll >= w.rdk_poll_every {
                since_poll = 0;
                p.poll(Duration::ZERO);
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
                                // Another thread's records fill the queue.
                                p.poll(FULL_QUEUE_POLL);
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
    p.flush(Duration::from_secs(300))
        .map_err(|e| format!("librdkafka flush: {e}"))?;
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
