//! One measured run of one client, in its own process: produce N records,
//! wait for every acknowledgement, and report what it cost.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use herald::{Producer, ProducerConfig, Record};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientConfig, ClientContext};
use serde::{Deserialize, Serialize};

/// What to produce, and with which settings (the same for both clients).
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
pub struct Workload {
    /// Records to send.
    #[arg(long, default_value_t = 200_000)]
    pub records: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Key size in bytes (0: no key, sticky partitioning).
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// acks: all, 1 or 0.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// linger.ms
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// batch.size in bytes.
    #[arg(long, default_value_t = 16_384)]
    pub batch_size: usize,
    /// compression.type: none, gzip, snappy, lz4 or zstd (both clients).
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// Values: `fill` (every byte `v`, the same for every record) or
    /// `json` (a window into 1 MiB of generated JSON-like order events,
    /// different per record: what compression figures should use).
    #[arg(long, default_value = "fill")]
    pub value_kind: String,
    /// enable.idempotence
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub idempotence: bool,
    /// The buffer bound for both: buffer.memory (herald) and
    /// queue.buffering.max.kbytes (librdkafka).
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    pub buffer_bytes: usize,
    /// Offered rate in records/s (0: as fast as possible). Latency figures
    /// mean most at a fixed rate the sink can take.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Concurrent sending tasks (herald) or threads (librdkafka).
    #[arg(long, default_value_t = 1)]
    pub tasks: usize,
    /// Records sent and acknowledged before measuring (connection, metadata
    /// and producer id are then set up), not counted in any figure but
    /// peak RSS.
    #[arg(long, default_value_t = 1_000)]
    pub warmup: usize,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    pub client: String,
    pub records: usize,
    pub bytes: u64,
    pub seconds: f64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    /// User + system CPU seconds of the client process for the run.
    pub cpu_s: f64,
    pub cpu_s_per_million: f64,
    pub peak_rss_mb: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// The sink's CPU over the client process's life, in % of one core
    /// (filled in by `compare`): near 100 means the sink caps the client.
    #[serde(default)]
    pub sink_cpu_pct: f64,
}

/// CPU seconds (user + system) and peak RSS (MiB) of this process so far.
fn usage() -> (f64, f64) {
    // SAFETY: getrusage writes into the zeroed struct we own; no other effect.
    #[allow(unsafe_code)]
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        secs(ru.ru_utime) + secs(ru.ru_stime),
        ru.ru_maxrss as f64 / 1024.0,
    )
}

/// The keys records cycle through, made before measuring so that neither
/// client's figures include the harness allocating a key per record: 4,096
/// distinct keys (spread evenly over any partition count here), each `size`
/// bytes, in one buffer that records borrow slices of.
#[derive(Clone)]
struct Keys {
    all: bytes::Bytes,
    size: usize,
}

const DISTINCT_KEYS: usize = 4096;

impl Keys {
    fn new(size: usize) -> Keys {
        let mut all = Vec::with_capacity(DISTINCT_KEYS * size);
        for i in 0..DISTINCT_KEYS {
            let b = (i as u64).to_be_bytes();
            all.extend((0..size).map(|j| b[7 - j % 8]));
        }
        Keys {
            all: all.into(),
            size,
        }
    }

    fn range(&self, i: usize) -> Option<std::ops::Range<usize>> {
        let at = (i % DISTINCT_KEYS) * self.size;
        (self.size > 0).then_some(at..at + self.size)
    }

    /// Record `i`'s key for herald: a slice of the shared buffer (a
    /// reference count, no copy).
    fn bytes(&self, i: usize) -> Option<bytes::Bytes> {
        self.range(i).map(|r| self.all.slice(r))
    }

    /// Record `i`'s key for librdkafka, which copies it into its message.
    fn slice(&self, i: usize) -> Option<&[u8]> {
        self.range(i).map(|r| &self.all[r])
    }
}

/// The records' values, prepared before the run.
#[derive(Clone)]
struct Values {
    all: bytes::Bytes,
    size: usize,
    varied: bool,
}

impl Values {
    fn new(size: usize, kind: &str) -> Result<Values, String> {
        match kind {
            "fill" => Ok(Values {
                all: vec![b'v'; size].into(),
                size,
                varied: false,
            }),
            "json" => {
                let len = (1 << 20).max(size * 16);
                let mut text = Vec::with_capacity(len + 256);
                // A fixed LCG: the same corpus every run, for both clients.
                let mut x: u64 = 0x2545_f491_4f6c_dd1d;
                let mut next = |m: u64| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (x >> 33) % m
                };
                let statuses = ["created", "paid", "packed", "shipped", "delivered"];
                while text.len() < len {
                    let line = format!(
                        "{{\"order_id\":{},\"customer\":\"c-{}\",\"sku\":\"SKU-{}\",\"qty\":{},\"price\":{}.{:02},\"status\":\"{}\"}}\n",
                        100_000 + next(900_000),
                        next(50_000),
                        next(5_000),
                        1 + next(9),
                        next(500),
                        next(100),
                        statuses[next(5) as usize]
                    );
                    text.extend_from_slice(line.as_bytes());
                }
                text.truncate(len);
                Ok(Values {
                    all: text.into(),
                    size,
                    varied: true,
                })
            }
            other => Err(format!(
                "--value-kind: expected fill or json, got `{other}`"
            )),
        }
    }

    fn range(&self, i: usize) -> std::ops::Range<usize> {
        if !self.varied {
            return 0..self.size;
        }
        let at = (i * 7919) % (self.all.len() - self.size);
        at..at + self.size
    }

    /// Record `i`'s value for herald (a reference count, no copy).
    fn bytes(&self, i: usize) -> bytes::Bytes {
        self.all.slice(self.range(i))
    }

    /// Record `i`'s value for librdkafka, which copies it.
    fn slice(&self, i: usize) -> &[u8] {
        &self.all[self.range(i)]
    }
}

type Hist = Arc<Mutex<Histogram<u64>>>;

fn histogram() -> Hist {
    Arc::new(Mutex::new(
        Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"),
    ))
}

fn record_latency(h: &Hist, sent: Instant) {
    let us = sent.elapsed().as_micros().max(1) as u64;
    let _ = h.lock().expect("not poisoned").record(us);
}

/// When record `i` is due at the offered rate, if any.
fn due(start: Instant, rate: u64, i: usize) -> Option<Instant> {
    (rate > 0).then(|| start + Duration::from_secs_f64(i as f64 / rate as f64))
}

fn figures(client: &str, w: &Workload, took: Duration, cpu: f64, h: &Hist) -> Figures {
    let (_, rss) = usage();
    let h = h.lock().expect("not poisoned");
    let bytes = (w.records * (w.size + w.key_size)) as u64;
    let s = took.as_secs_f64();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Figures {
        client: client.to_string(),
        records: w.records,
        bytes,
        seconds: s,
        records_per_s: w.records as f64 / s,
        mb_per_s: bytes as f64 / s / 1e6,
        cpu_s: cpu,
        cpu_s_per_million: cpu * 1e6 / w.records as f64,
        peak_rss_mb: rss,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        sink_cpu_pct: 0.0,
    }
}

/// One herald run.
pub fn run_herald(bootstrap: &str, topic: &str, w: &Workload) -> Result<Figures, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let cfg = ProducerConfig::from_properties(&[
        ("bootstrap.servers", bootstrap),
        ("acks", &w.acks),
        ("linger.ms", &w.linger_ms.to_string()),
        ("batch.size", &w.batch_size.to_string()),
        ("compression.type", &w.compression),
        ("enable.idempotence", &w.idempotence.to_string()),
        ("buffer.memory", &w.buffer_bytes.to_string()),
    ])
    .map_err(|e| e.to_string())?;
    let h = histogram();
    rt.block_on(async {
        let p = Producer::new(cfg).map_err(|e| e.to_string())?;
        let values = Values::new(w.size, &w.value_kind)?;
        let keys = Keys::new(w.key_size);
        for i in 0..w.warmup {
            let mut r = Record::new(topic, values.bytes(i));
            if let Some(k) = keys.bytes(i) {
                r = r.key(k);
            }
            drop(p.send(r).await.map_err(|e| e.to_string())?);
        }
        p.flush().await;
        let (cpu0, _) = usage();
        let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..w.tasks {
            let (p, h, failed, values, w, keys, topic) = (
                p.clone(),
                h.clone(),
                failed.clone(),
                values.clone(),
                w.clone(),
                keys.clone(),
                // Held once, cloned per record (a reference count), as the
                // docs of `Record::topic` suggest.
                std::sync::Arc::<str>::from(topic),
            );
            tasks.push(tokio::spawn(async move {
                for i in (t..w.records).step_by(w.tasks) {
                    if let Some(at) = due(start, w.rate, i) {
                        tokio::time::sleep_until(at.into()).await;
                    }
                    let mut r = Record::new(topic.clone(), values.bytes(i));
                    if let Some(k) = keys.bytes(i) {
                        r = r.key(k);
                    }
                    let (h, failed) = (h.clone(), failed.clone());
                    let sent = Instant::now();
                    p.send_with_callback(r, move |o| match o {
                        Ok(_) => record_latency(&h, sent),
                        Err(_) => {
                            failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
        p.flush().await;
        let took = start.elapsed();
        let n = failed.load(std::sync::atomic::Ordering::Relaxed);
        if n > 0 {
            return Err(format!("herald: {n} records failed"));
        }
        p.close(Duration::from_secs(30))
            .await
            .map_err(|e| e.to_string())?;
        let (cpu1, _) = usage();
        Ok(figures("herald", w, took, cpu1 - cpu0, &h))
    })
}

struct Ctx {
    h: Hist,
    failed: std::sync::atomic::AtomicUsize,
}

impl ClientContext for Ctx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        if (level as i32) <= (rdkafka::config::RDKafkaLogLevel::Warning as i32)
            || std::env::var_os("HERALD_BENCH_RDKAFKA_DEBUG").is_some()
        {
            eprintln!("librdkafka {level:?} {fac}: {log_message}");
        }
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<Instant>;
    fn delivery(&self, r: &DeliveryResult<'_>, sent: Box<Instant>) {
        match r {
            Ok(_) => record_latency(&self.h, *sent),
            Err(_) => {
                self.failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// Send with librdkafka, waiting while its queue is full (as herald's
/// `send` waits for buffer room); any other error ends the run.
fn send_waiting<'a>(
    p: &ThreadedProducer<Ctx>,
    mut rec: BaseRecord<'a, [u8], [u8], Box<Instant>>,
) -> Result<(), String> {
    loop {
        match p.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                rec = r;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((e, _)) => return Err(format!("librdkafka: {e}")),
        }
    }
}

/// One librdkafka run, with the same settings.
pub fn run_librdkafka(bootstrap: &str, topic: &str, w: &Workload) -> Result<Figures, String> {
    let h = histogram();
    let mut cfg = ClientConfig::new();
    if let Ok(d) = std::env::var("HERALD_BENCH_RDKAFKA_DEBUG") {
        cfg.set("debug", d).set("log.queue", "false");
    }
    let p: Arc<ThreadedProducer<Ctx>> = Arc::new(
        cfg.set("bootstrap.servers", bootstrap)
            .set("acks", &w.acks)
            .set("linger.ms", w.linger_ms.to_string())
            .set("batch.size", w.batch_size.to_string())
            .set("compression.type", &w.compression)
            .set("enable.idempotence", w.idempotence.to_string())
            .set(
                "queue.buffering.max.kbytes",
                (w.buffer_bytes / 1024).to_string(),
            )
            .set("queue.buffering.max.messages", "10000000")
            .set("partitioner", "murmur2_random")
            .create_with_context(Ctx {
                h: h.clone(),
                failed: Default::default(),
            })
            .map_err(|e| e.to_string())?,
    );
    let values = Values::new(w.size, &w.value_kind)?;
    let keys = Keys::new(w.key_size);
    for i in 0..w.warmup {
        let k = keys.slice(i);
        let mut rec =
            BaseRecord::<[u8], [u8], Box<Instant>>::with_opaque_to(topic, Box::new(Instant::now()))
                .payload(values.slice(i));
        if let Some(k) = k {
            rec = rec.key(k);
        }
        send_waiting(&p, rec)?;
    }
    p.flush(Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    // Warm-up latencies are not figures.
    h.lock().expect("not poisoned").reset();
    let (cpu0, _) = usage();
    let start = Instant::now();
    std::thread::scope(|s| {
        (0..w.tasks)
            .map(|t| {
                let (p, values, keys) = (p.clone(), &values, &keys);
                s.spawn(move || {
                    for i in (t..w.records).step_by(w.tasks) {
                        if let Some(at) = due(start, w.rate, i) {
                            std::thread::sleep(at.saturating_duration_since(Instant::now()));
                        }
                        let k = keys.slice(i);
                        let sent = Box::new(Instant::now());
                        let mut rec =
                            BaseRecord::<[u8], [u8], Box<Instant>>::with_opaque_to(topic, sent)
                                .payload(values.slice(i));
                        if let Some(k) = k {
                            rec = rec.key(k);
                        }
                        send_waiting(&p, rec)?;
                    }
                    Ok::<(), String>(())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .try_for_each(|t| t.join().expect("sending thread panicked"))
    })?;
    p.flush(Duration::from_secs(300))
        .map_err(|e| e.to_string())?;
    let took = start.elapsed();
    let n = p
        .context()
        .failed
        .load(std::sync::atomic::Ordering::Relaxed);
    if n > 0 {
        return Err(format!("librdkafka: {n} records failed"));
    }
    drop(p);
    let (cpu1, _) = usage();
    Ok(figures("librdkafka", w, took, cpu1 - cpu0, &h))
}
