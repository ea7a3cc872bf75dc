//! What a measured run does and reports, shared by both clients: the
//! workload, the records' keys and values (made before measuring), and the
//! figures. Each client's loop is in its own module (`herald_run`,
//! `rdkafka_run`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// How the application learns each record's outcome: seed 002's three ways
/// of sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// Send and drop the handle; failures are read from the client's
    /// counters at the end (herald: `stats()`; librdkafka: its delivery
    /// callback, which `rdkafka` always installs, counts failures only).
    FireAndForget,
    /// A callback per record that counts successes and failures (herald:
    /// `send_with_callback`; librdkafka: the context's delivery callback,
    /// with a `usize` opaque, which allocates nothing).
    Callback,
    /// Await each record's future, with up to `--window` in flight, oldest
    /// first (herald: the `DeliveryFuture` of `send`; librdkafka:
    /// `FutureProducer::send_result`, awaiting the oldest when the queue is
    /// full).
    Futures,
}

impl Style {
    pub fn name(self) -> &'static str {
        match self {
            Style::FireAndForget => "fire-and-forget",
            Style::Callback => "callback",
            Style::Futures => "futures",
        }
    }
}

/// Which of librdkafka's producer types runs the fire-and-forget and
/// callback styles (the futures style always uses `FutureProducer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RdkApi {
    /// `base` for throughput runs; `threaded` for latency runs, where
    /// delivery reports polled every N sends would wait for the next poll
    /// (up to N / rate) and count that wait as librdkafka's latency.
    Auto,
    /// `BaseProducer`, polled (`poll(0)`) from the sending loop every
    /// `--rdk-poll-every` sends; a full queue is waited on by polling.
    Base,
    /// `ThreadedProducer` (its own thread polls); a full queue is waited on
    /// by polling from the sending thread too.
    Threaded,
}

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
    /// batch.size in bytes for both clients ("equal settings": librdkafka's
    /// message-count bound `queue.buffering.max.messages` is then lifted so
    /// that the byte bound is the one bound for both, and its partitioner is
    /// `murmur2_random`, the same hash as herald's). Absent: each client at
    /// its own defaults (herald 16,384 B; librdkafka 1,000,000 B and
    /// `batch.num.messages` 10,000, 100,000 queued messages at most,
    /// `consistent_random`).
    #[arg(long)]
    pub batch_size: Option<usize>,
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
    /// How outcomes are taken.
    #[arg(long, value_enum, default_value = "callback")]
    pub style: Style,
    /// Time every record from send to outcome (an HDR histogram, for both
    /// clients alike). On with `--rate`; needs the callback or futures
    /// style. Off, no per-record clock read or histogram update is made.
    #[arg(long)]
    pub latency: bool,
    /// With `--style futures`: records awaited at most in flight.
    #[arg(long, default_value_t = 100_000)]
    pub window: usize,
    /// librdkafka's producer type for the fire-and-forget and callback styles.
    #[arg(long, value_enum, default_value = "auto")]
    pub rdk_api: RdkApi,
    /// With `--rdk-api base`: `poll(0)` after every this many sends (100
    /// was librdkafka's best here: 1 polls too often, 10,000 lets delivery
    /// reports pile up).
    #[arg(long, default_value_t = 100)]
    pub rdk_poll_every: usize,
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
    pub style: Style,
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
pub fn usage() -> (f64, f64) {
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

/// Bytes that live as long as the process (one run per process), so that
/// the slices records take of them are not reference counted: slices of one
/// shared, counted buffer made every record's clone and drop contend for
/// one counter between the sending thread and the producer's (4 to 6 % of
/// herald's samples), a cost of this harness, not of any application's
/// data. librdkafka copies each key and value; herald takes a `Bytes` and
/// copies once, into the request.
fn static_bytes(v: Vec<u8>) -> bytes::Bytes {
    bytes::Bytes::from_static(Vec::leak(v))
}

/// The keys records cycle through, made before measuring so that neither
/// client's figures include the harness allocating a key per record: 4,096
/// distinct keys (spread evenly over any partition count here), each `size`
/// bytes, in one buffer that records borrow slices of.
#[derive(Clone)]
pub struct Keys {
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
            all: static_bytes(all),
            size,
        }
    }

    fn range(&self, i: usize) -> Option<std::ops::Range<usize>> {
        let at = (i % DISTINCT_KEYS) * self.size;
        (self.size > 0).then_some(at..at + self.size)
    }

    /// Record `i`'s key for herald: a slice of the shared buffer (a
    /// reference count, no copy).
    pub fn bytes(&self, i: usize) -> Option<bytes::Bytes> {
        self.range(i).map(|r| self.all.slice(r))
    }

    /// Record `i`'s key for librdkafka, which copies it into its message.
    pub fn slice(&self, i: usize) -> Option<&[u8]> {
        self.range(i).map(|r| &self.all[r])
    }
}

/// The records' values, prepared before the run.
#[derive(Clone)]
pub struct Values {
    all: bytes::Bytes,
    size: usize,
    varied: bool,
}

impl Values {
    fn new(size: usize, kind: &str) -> Result<Values, String> {
        match kind {
            "fill" => Ok(Values {
                all: static_bytes(vec![b'v'; size]),
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
                    all: static_bytes(text),
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
    pub fn bytes(&self, i: usize) -> bytes::Bytes {
        self.all.slice(self.range(i))
    }

    /// Record `i`'s value for librdkafka, which copies it.
    pub fn slice(&self, i: usize) -> &[u8] {
        &self.all[self.range(i)]
    }
}

/// Per-record latency, for latency runs only: each record carries its send
/// time as nanoseconds since `origin` (a plain integer, so librdkafka's
/// opaque and herald's closure carry it without allocating), and its outcome
/// adds one value to the histogram, behind an uncontended mutex in both
/// clients.
pub struct Latency {
    origin: Instant,
    h: Mutex<Histogram<u64>>,
}

impl Latency {
    pub fn new() -> Latency {
        Latency {
            origin: Instant::now(),
            h: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")),
        }
    }

    /// Now, as carried by a record.
    pub fn stamp(&self) -> usize {
        self.origin.elapsed().as_nanos() as usize
    }

    /// A record stamped `sent` has its outcome now.
    pub fn record(&self, sent: usize) {
        let us = (self.stamp().saturating_sub(sent) / 1000).max(1) as u64;
        let _ = self.h.lock().expect("not poisoned").record(us);
    }

    pub fn reset(&self) {
        self.h.lock().expect("not poisoned").reset();
    }
}

/// The run's latency histogram, if it is a latency run. Leaked: one run per
/// process, and a per-record callback then captures a plain reference
/// rather than cloning an `Arc` per record.
pub fn latency(w: &Workload) -> Option<&'static Latency> {
    w.timed().then(|| &*Box::leak(Box::new(Latency::new())))
}

/// When record `i` is due at the offered rate, if any.
pub fn due(start: Instant, rate: u64, i: usize) -> Option<Instant> {
    (rate > 0).then(|| start + Duration::from_secs_f64(i as f64 / rate as f64))
}

impl Workload {
    /// Whether records are timed one by one.
    pub fn timed(&self) -> bool {
        self.latency || self.rate > 0
    }

    /// librdkafka's producer type for this run.
    pub fn rdk_api(&self) -> RdkApi {
        match (self.rdk_api, self.timed()) {
            (RdkApi::Auto, true) => RdkApi::Threaded,
            (RdkApi::Auto, false) => RdkApi::Base,
            (api, _) => api,
        }
    }

    /// Refuse what cannot be measured.
    pub fn check(&self) -> Result<(), String> {
        if self.timed() && self.style != Style::Callback {
            // Fire-and-forget has no outcome to time; awaited oldest first,
            // a future's outcome is seen only when its turn comes.
            return Err(
                "per-record latency (--latency or --rate) is measured with --style callback".into(),
            );
        }
        if self.window == 0 {
            return Err("--window must be at least 1".into());
        }
        Ok(())
    }

    /// What the run needs, made before measuring.
    pub fn data(&self) -> Result<(Keys, Values), String> {
        Ok((
            Keys::new(self.key_size),
            Values::new(self.size, &self.value_kind)?,
        ))
    }
}

/// The figures of a run that took `took` and `cpu` CPU seconds.
pub fn figures(
    client: &str,
    w: &Workload,
    took: Duration,
    cpu: f64,
    latency: Option<&Latency>,
) -> Figures {
    let (_, rss) = usage();
    let bytes = (w.records * (w.size + w.key_size)) as u64;
    let s = took.as_secs_f64();
    let ms = |q: f64| {
        latency.map_or(0.0, |l| {
            l.h.lock().expect("not poisoned").value_at_quantile(q) as f64 / 1000.0
        })
    };
    Figures {
        client: client.to_string(),
        style: w.style,
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

/// Outcomes counted by the callback and futures styles (one process per
/// run, so process-wide counters; `'static` so that a per-record closure
/// captures nothing that needs a reference count).
pub static DELIVERED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static FAILED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Count one outcome.
pub fn count(ok: bool) {
    let c = if ok { &DELIVERED } else { &FAILED };
    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// After the run: every record must have been delivered. `failed` is the
/// client's own count (fire-and-forget) or the callbacks' (otherwise).
pub fn check_outcomes(client: &str, w: &Workload, failed: u64) -> Result<(), String> {
    if failed > 0 {
        return Err(format!("{client}: {failed} records failed"));
    }
    if w.style != Style::FireAndForget {
        let ok = DELIVERED.load(std::sync::atomic::Ordering::Relaxed);
        if ok != w.records as u64 {
            return Err(format!(
                "{client}: {ok} outcomes counted for {} records",
                w.records
            ));
        }
    }
    Ok(())
}
