//! The spool: appends made durable on disk (the log thread, `writer`),
//! then forwarded to Kafka in append order through an idempotent producer
//! that never gives up on a record while Kafka is down; a record leaves the
//! spool only once Kafka acknowledged it (or it was set aside as a dead
//! letter because no resend can deliver it).

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald::{Error as KafkaError, Producer, ProducerConfig, Record};
use tokio::sync::Notify;

use crate::codec;
use crate::error::SpoolError;
use crate::log::{Log, LogConfig, Recovery};
use crate::reader::Reader;
use crate::segment;
use crate::writer::Writer;

/// The spool's settings.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub log: LogConfig,
    /// `max.bytes`: the bytes the segments may hold; an append that does not
    /// fit fails with `SpoolError::Full` (nothing in the spool is dropped).
    pub max_bytes: u64,
    /// Records sent to Kafka and not yet acknowledged, at most (read back
    /// from disk as they go: memory does not grow with the backlog).
    pub window: usize,
    /// How often the delivered cursor is checkpointed: after a crash, the
    /// records Kafka acknowledged in the last interval are sent again.
    pub checkpoint_interval: Duration,
    /// Told of every record the forwarder settles (delivered or dead
    /// letter), on the forwarding task: keep it cheap (count, observe a
    /// histogram). For metrics by topic and delivery latency.
    pub on_settled: Option<SettleObserver>,
}

/// A record the forwarder settled.
#[derive(Debug, Clone, Copy)]
pub struct Settled<'a> {
    /// Its topic (`None` if the record could not be decoded).
    pub topic: Option<&'a str>,
    /// Delivered (Kafka acknowledged it), or set aside as a dead letter.
    pub delivered: bool,
    /// Its timestamp (ms since the epoch), if it has one.
    pub timestamp_ms: Option<i64>,
    /// Why it became a dead letter (Kafka's refusal), if it did.
    pub reason: Option<&'a str>,
}

/// A callback for [`SpoolConfig::on_settled`].
#[derive(Clone)]
pub struct SettleObserver(pub Arc<dyn Fn(Settled<'_>) + Send + Sync>);

impl std::fmt::Debug for SettleObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SettleObserver")
    }
}

impl SettleObserver {
    fn tell(&self, payload: &[u8], delivered: bool, reason: Option<&str>) {
        (self.0)(Settled {
            topic: codec::topic(payload),
            delivered,
            timestamp_ms: codec::timestamp(payload),
            reason,
        });
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            log: LogConfig::default(),
            max_bytes: 1 << 30,
            window: 10_000,
            checkpoint_interval: Duration::from_secs(1),
            on_settled: None,
        }
    }
}

/// What the spool holds and has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Records appended and not yet delivered (nor dead-lettered).
    pub backlog_records: u64,
    /// Bytes of segments on disk.
    pub disk_bytes: u64,
    /// Records Kafka acknowledged since the spool was opened.
    pub delivered: u64,
    /// Records set aside as dead letters since the spool was opened.
    pub dead_letters: u64,
    /// Groups written since the spool was opened: one `write` and one
    /// `fdatasync` each (appends per sync = the group-commit factor).
    pub syncs: u64,
    /// The timestamp (ms since the epoch) of the oldest record the
    /// forwarder holds and Kafka has not acknowledged: how far behind
    /// forwarding is. `None` when it holds none (or it has no timestamp).
    pub oldest_timestamp_ms: Option<i64>,
}

#[derive(Debug, Default)]
struct Shared {
    delivered: AtomicU64,
    dead_letters: AtomicU64,
    /// The first record not yet delivered or dead-lettered.
    cursor: AtomicU64,
    appended: Notify,
    stop: AtomicBool,
    stopped: Notify,
    /// Why forwarding stopped before `close`, if it did.
    halted: Mutex<Option<String>>,
    /// Appends waiting for their records' outcomes, by sequence.
    watchers: Mutex<HashMap<u64, Watcher>>,
    watching: AtomicBool,
    /// Told when the forwarder has settled everything it read (for
    /// [`Spool::drain`]).
    caught_up: Notify,
    /// See [`SpoolStats::oldest_timestamp_ms`]; -1 for none.
    oldest_ms: std::sync::atomic::AtomicI64,
}

/// What a watched record's delivery came to.
pub type Delivery = Result<herald::RecordMetadata, String>;

type Watcher = tokio::sync::oneshot::Sender<Delivery>;

impl Shared {
    /// Tell a watcher of `seq`, if any (cheap when nobody watches).
    fn settled(&self, seq: u64, outcome: impl FnOnce() -> Delivery) {
        if !self.watching.load(Ordering::Relaxed) {
            return;
        }
        let w = {
            let mut m = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
            let w = m.remove(&seq);
            if m.is_empty() {
                self.watching.store(false, Ordering::Relaxed);
            }
            w
        };
        if let Some(w) = w {
            let _ = w.send(outcome());
        }
    }

    fn halt(&self, why: String) {
        *self.halted.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }
}

/// A durable queue in front of a Kafka producer. Create it inside a tokio
/// runtime (its forwarding task runs there).
#[derive(Debug)]
pub struct Spool {
    writer: Arc<Writer>,
    shared: Arc<Shared>,
    cfg: SpoolConfig,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The header each forwarded record carries: the spool's id and the
/// record's sequence in it (`ID:SEQ`), unique per record and the same on a
/// resend, so a consumer drops repeats (records sent again after a crash,
/// for the last checkpoint interval) by remembering the highest sequence
/// seen per spool id.
pub const ID_HEADER: &str = "herald.spool.id";

/// `record` as forwarded: with its [`ID_HEADER`].
pub fn with_id(record: Record, spool_id: &str, seq: u64) -> Record {
    with_id_value(record, bytes::Bytes::from(format!("{spool_id}:{seq}")))
}

fn with_id_value(mut record: Record, value: bytes::Bytes) -> Record {
    record.headers.push(herald::record::Header {
        key: ID_HEADER.into(),
        value: Some(value),
    });
    record
}

/// The spool's id, made at its first open and kept in `DIR/id` (written
/// to a temporary file, synced, renamed, and the directory synced, so it
/// never changes once a record may carry it).
pub fn spool_id(dir: &Path) -> Result<String, SpoolError> {
    let path = dir.join("id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(SpoolError::io(format!("reading {}", path.display()), e)),
    }
    let id = format!("{:032x}", rand::random::<u128>());
    let tmp = dir.join("id.tmp");
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        use std::io::Write;
        f.write_all(id.as_bytes())?;
        f.sync_all()
    });
    written
        .and_then(|()| std::fs::rename(&tmp, &path))
        .and_then(|()| std::fs::File::open(dir)?.sync_all())
        .map_err(|e| SpoolError::io(format!("writing {}", path.display()), e))?;
    Ok(id)
}

/// The forwarding producer's settings: the caller's, made to hold records
/// as long as Kafka is away (the spool, not a timeout, decides when a
/// record is given up) and idempotent (no repeats while the process lives).
pub fn forwarding_config(mut cfg: ProducerConfig) -> ProducerConfig {
    cfg.delivery_timeout = Duration::from_millis(i32::MAX as u64);
    cfg.retries = i32::MAX as u32;
    // Set as a property, so it is explicit: settings that would turn it off
    // quietly (acks other than all, more than 5 requests in flight) are
    // refused when the producer is made, naming the key.
    cfg.set("enable.idempotence", "true")
        .expect("enable.idempotence=true is a valid property");
    cfg
}

impl Spool {
    /// Open (recovering) the spool in `dir` and start forwarding what it
    /// holds through a producer made with `producer` (see
    /// [`forwarding_config`]).
    pub fn open(
        dir: &Path,
        cfg: SpoolConfig,
        producer: ProducerConfig,
    ) -> Result<(Spool, Recovery), SpoolError> {
        if cfg.max_bytes < 2 * cfg.log.segment_bytes {
            return Err(SpoolError::Invalid(format!(
                "max.bytes ({}) must be at least twice the segment size ({}): the active \
                 segment stays on disk once delivered, so a smaller limit could refuse every \
                 append",
                cfg.max_bytes, cfg.log.segment_bytes
            )));
        }
        let producer = Producer::new(forwarding_config(producer))
            .map_err(|e| SpoolError::Invalid(format!("the forwarding producer's settings: {e}")))?;
        let (log, recovery) = Log::open(dir, cfg.log.clone())?;
        let id = spool_id(dir)?;
        let reader = log.reader(log.bounds().start);
        let writer = Arc::new(Writer::start(log));
        let shared = Arc::new(Shared::default());
        shared.oldest_ms.store(-1, Ordering::Relaxed);
        shared.cursor.store(
            writer.stats.cursor.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        let task = tokio::spawn(forward(
            writer.clone(),
            shared.clone(),
            producer,
            cfg.clone(),
            (id, dir.join("dead-letters")),
            reader,
        ));
        Ok((
            Spool {
                writer,
                shared,
                cfg,
                task: Mutex::new(Some(task)),
            },
            recovery,
        ))
    }

    /// Append one record; returns its sequence once it is durable.
    pub async fn append(&self, record: &Record) -> Result<u64, SpoolError> {
        self.append_batch(std::slice::from_ref(record))
            .await
            .map(|r| r.start)
    }

    /// Append records atomically: all durable, or none (after a crash too).
    pub async fn append_batch(&self, records: &[Record]) -> Result<Range<u64>, SpoolError> {
        self.append_batch_then(records, None).await
    }

    /// As [`Spool::append_batch`], and a receiver per record for what its
    /// delivery came to (Kafka's metadata, or why it became a dead letter),
    /// registered before the forwarder can see the records. A receiver
    /// dropped early costs nothing; one kept while Kafka is away waits.
    pub async fn append_batch_watched(
        &self,
        records: &[Record],
    ) -> Result<(Range<u64>, Vec<tokio::sync::oneshot::Receiver<Delivery>>), SpoolError> {
        let n = records.len();
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| tokio::sync::oneshot::channel()).unzip();
        let shared = self.shared.clone();
        let on_assigned: crate::writer::OnAssigned = Box::new(move |range: Range<u64>| {
            let mut m = shared.watchers.lock().unwrap_or_else(|e| e.into_inner());
            for (seq, tx) in range.zip(txs) {
                m.insert(seq, tx);
            }
            shared.watching.store(true, Ordering::Relaxed);
        });
        let range = self.append_batch_then(records, Some(on_assigned)).await?;
        Ok((range, rxs))
    }

    async fn append_batch_then(
        &self,
        records: &[Record],
        on_assigned: Option<crate::writer::OnAssigned>,
    ) -> Result<Range<u64>, SpoolError> {
        let mut batch = Vec::with_capacity(records.len());
        for r in records {
            let mut b = Vec::new();
            codec::encode(r, &mut b).map_err(SpoolError::Invalid)?;
            // Checked here, not in the group: one record too large must not
            // fail the other appenders' batches written with it.
            if b.len() > segment::MAX_PAYLOAD {
                return Err(SpoolError::Invalid(format!(
                    "a record of {} bytes spooled (at most {})",
                    b.len(),
                    segment::MAX_PAYLOAD
                )));
            }
            batch.push(b);
        }
        let needed: u64 = batch
            .iter()
            .map(|b| (b.len() + segment::FRAME_LEN) as u64)
            .sum();
        let used = self.writer.stats.disk_bytes.load(Ordering::Relaxed);
        if used + needed > self.cfg.max_bytes {
            return Err(SpoolError::Full {
                needed,
                backlog: used,
                max_bytes: self.cfg.max_bytes,
            });
        }
        let r = self.writer.append_then(batch, on_assigned).await?;
        self.shared.appended.notify_one();
        Ok(r)
    }

    /// Why forwarding stopped, if it stopped before `close` (a read of the
    /// spool failed, a dead letter could not be written, or the producer
    /// gave a record up): appends still land on disk, and the records are
    /// forwarded again by the next `open`. Monitor it beside `stats()`.
    pub fn forwarding_halted(&self) -> Option<String> {
        self.shared
            .halted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn stats(&self) -> SpoolStats {
        let next = self.writer.stats.next_seq.load(Ordering::Relaxed);
        SpoolStats {
            backlog_records: next.saturating_sub(self.shared.cursor.load(Ordering::Relaxed)),
            disk_bytes: self.writer.stats.disk_bytes.load(Ordering::Relaxed),
            delivered: self.shared.delivered.load(Ordering::Relaxed),
            dead_letters: self.shared.dead_letters.load(Ordering::Relaxed),
            syncs: self.writer.stats.groups.load(Ordering::Relaxed),
            oldest_timestamp_ms: Some(self.shared.oldest_ms.load(Ordering::Relaxed))
                .filter(|t| *t >= 0),
        }
    }

    /// Wait up to `timeout` for Kafka to have every record appended so far
    /// (a graceful shutdown's flush): `true` when the backlog is empty,
    /// `false` when time ran out or forwarding stopped first.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.caught_up.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.stats().backlog_records == 0 {
                return true;
            }
            if self.forwarding_halted().is_some() {
                return false;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.stats().backlog_records == 0;
            }
        }
    }

    /// Stop forwarding (what Kafka has not acknowledged stays on disk for
    /// the next open), checkpoint what was delivered, and release the
    /// directory. Waits up to `timeout` for the forwarding task.
    pub async fn close(&self, timeout: Duration) -> Result<(), SpoolError> {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.appended.notify_one();
        self.shared.stopped.notify_one();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            if tokio::time::timeout(timeout, t).await.is_err() {
                return Err(SpoolError::Io {
                    what: "closing the spool".into(),
                    error: format!("forwarding did not stop within {timeout:?}"),
                });
            }
        }
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || writer.close())
            .await
            .map_err(|e| SpoolError::io("closing the spool", std::io::Error::other(e)))
    }
}

/// Whether no resend can deliver a record that failed with `e` (it goes
/// to the dead letters); otherwise the spool holds back and tries again.
fn never_deliverable(e: &KafkaError) -> bool {
    // Refusals of the producer itself, not of the record (the cluster does
    // not let it write idempotently): every record would fail the same way,
    // so hold back instead of dead-lettering the whole backlog.
    const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    if e.kafka_code() == Some(CLUSTER_AUTHORIZATION_FAILED) {
        return false;
    }
    matches!(
        e.reason(),
        KafkaError::RecordTooLarge { .. }
            | KafkaError::InvalidRecord(_)
            | KafkaError::InvalidPartition { .. }
            | KafkaError::Serialization(_)
    ) || (matches!(e.reason(), KafkaError::Broker { .. }) && !e.is_retriable())
}

/// Append a dead letter (the reason, then the record's spooled bytes) as a
/// frame of `DIR/dead-letters`, synced before the cursor may pass it.
fn dead_letter(path: &PathBuf, seq: u64, payload: &[u8], why: &str) -> Result<(), SpoolError> {
    use std::io::Write;
    let mut body = (why.len() as u32).to_be_bytes().to_vec();
    body.extend_from_slice(why.as_bytes());
    body.extend_from_slice(payload);
    let mut frame = Vec::new();
    segment::put_frame(&mut frame, seq, &body, false);
    let created = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| SpoolError::io(format!("opening {}", path.display()), e))?;
    f.write_all(&frame)
        .and(f.sync_data())
        .map_err(|e| SpoolError::io(format!("writing {}", path.display()), e))?;
    // A new file's name must survive too before the cursor passes it.
    if created {
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| SpoolError::io(format!("syncing {}", dir.display()), e))?;
        }
    }
    Ok(())
}

/// A spooled record back, or why it cannot be (a hole left by repair, or
/// bytes that do not decode): then it becomes a dead letter.
fn decode(payload: &bytes::Bytes, topic: &mut Option<Arc<str>>) -> Result<Record, String> {
    match segment::hole_reason(payload) {
        Some(why) => Err(why),
        None => codec::decode_shared(payload, topic),
    }
}

/// A record sent and not yet answered.
enum InFlight {
    Sent(herald::DeliveryFuture, bytes::Bytes),
    /// Set aside as a dead letter, and why.
    Dead(String, bytes::Bytes),
}

impl InFlight {
    /// The record's timestamp, read from its encoding (-1: none).
    fn timestamp(&self) -> i64 {
        match self {
            InFlight::Sent(_, p) => codec::timestamp(p).unwrap_or(-1),
            InFlight::Dead(..) => -1,
        }
    }
}

async fn forward(
    writer: Arc<Writer>,
    shared: Arc<Shared>,
    producer: Producer,
    cfg: SpoolConfig,
    (id, dead_path): (String, PathBuf),
    mut reader: Reader,
) {
    let mut cursor = shared.cursor.load(Ordering::Relaxed);
    let mut next_read = cursor;
    let mut window: VecDeque<(u64, InFlight)> = VecDeque::new();
    let mut checkpointed = cursor;
    let mut last_checkpoint = Instant::now();
    let mut backoff = Duration::from_millis(50);
    let mut topic = None;
    'run: loop {
        // Fill the window from disk, in order, once half of it is settled
        // (reads of thousands of records, not one per record settled).
        let refill = window.len() <= cfg.window / 2;
        while refill && window.len() < cfg.window && !shared.stop.load(Ordering::Relaxed) {
            if next_read >= writer.stats.next_seq.load(Ordering::Relaxed) {
                break;
            }
            let want = (cfg.window - window.len()).min(4096);
            let limit = writer.stats.next_seq.load(Ordering::Acquire);
            // Disk reads off the runtime's threads.
            // Read and decoded (with the id header) on a blocking thread,
            // beside this task's sending: the forwarder only sends.
            let (mut r, mut t, sid) = (reader, topic, id.clone());
            let Ok((back, back_topic, records)) = tokio::task::spawn_blocking(move || {
                let got = r.read(limit, want, 4 << 20).map(|records| {
                    // The id header values of the whole read in one buffer,
                    // each record's a slice of it: one allocation per read
                    // instead of one per record.
                    let mut ids = Vec::with_capacity(records.len() * (sid.len() + 21));
                    let mut at = Vec::with_capacity(records.len());
                    for (seq, _) in &records {
                        let start = ids.len();
                        ids.extend_from_slice(sid.as_bytes());
                        ids.push(b':');
                        std::io::Write::write_fmt(&mut ids, format_args!("{seq}"))
                            .expect("writing to a Vec");
                        at.push(start..ids.len());
                    }
                    let ids = bytes::Bytes::from(ids);
                    records
                        .into_iter()
                        .zip(at)
                        .map(|((seq, payload), range)| {
                            let rec = decode(&payload, &mut t)
                                .map(|rec| with_id_value(rec, ids.slice(range)));
                            (seq, payload, rec)
                        })
                        .collect::<Vec<_>>()
                });
                (r, t, got)
            })
            .await
            else {
                shared.halt("the spool's read-back task panicked".into());
                break 'run;
            };
            (reader, topic) = (back, back_topic);
            let records = match records {
                Ok(r) => r,
                Err(e) => {
                    shared.halt(format!("reading the spool back failed: {e}"));
                    break 'run;
                }
            };
            if records.is_empty() {
                break;
            }
            for (seq, payload, first) in records {
                // A resend decodes again (the key and value are slices of
                // the chunk read: nothing is copied).
                let mut prepared = Some(first);
                let entry = loop {
                    let decoded = match prepared.take() {
                        Some(r) => r,
                        None => decode(&payload, &mut topic).map(|rec| with_id(rec, &id, seq)),
                    };
                    let rec = match decoded {
                        Ok(rec) => {
                            if window.is_empty() {
                                shared
                                    .oldest_ms
                                    .store(rec.timestamp.unwrap_or(-1), Ordering::Relaxed);
                            }
                            rec
                        }
                        Err(why) => {
                            if let Err(e) = dead_letter(&dead_path, seq, &payload, &why) {
                                shared.halt(format!("writing a dead letter failed: {e}"));
                                break 'run;
                            }
                            break InFlight::Dead(why, payload);
                        }
                    };
                    // A send may wait for metadata (up to max.block.ms)
                    // while Kafka is away: close must not wait for it.
                    // Biased: the common send is ready at once, and then the
                    // close signal is not even registered.
                    let sent = tokio::select! {
                        biased;
                        r = producer.send(rec) => r,
                        _ = shared.stopped.notified() => break 'run,
                    };
                    match sent {
                        Ok(h) => {
                            backoff = Duration::from_millis(50);
                            break InFlight::Sent(h, payload);
                        }
                        Err(e) if never_deliverable(&e) => {
                            if let Err(d) = dead_letter(&dead_path, seq, &payload, &e.to_string()) {
                                shared.halt(format!("writing a dead letter failed: {d}"));
                                break 'run;
                            }
                            break InFlight::Dead(e.to_string(), payload);
                        }
                        // Kafka away, buffer full, no metadata yet: hold back
                        // and try the same record again.
                        Err(_) => {
                            if shared.stop.load(Ordering::Relaxed) {
                                break 'run;
                            }
                            tokio::select! {
                                _ = tokio::time::sleep(backoff) => {}
                                _ = shared.stopped.notified() => break 'run,
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                };
                window.push_back((seq, entry));
                next_read = seq + 1;
            }
        }
        // Answers, oldest first: the cursor moves over a record only once
        // it and every record before it are settled.
        let Some((seq, entry)) = window.pop_front() else {
            if shared.stop.load(Ordering::Relaxed) {
                break;
            }
            let _ = tokio::time::timeout(cfg.checkpoint_interval, shared.appended.notified()).await;
            if cursor > checkpointed && writer.checkpoint(cursor).await.is_ok() {
                checkpointed = cursor;
                last_checkpoint = Instant::now();
            }
            continue;
        };
        match entry {
            InFlight::Dead(why, payload) => {
                shared.dead_letters.fetch_add(1, Ordering::Relaxed);
                if let Some(o) = &cfg.on_settled {
                    o.tell(&payload, false, Some(&why));
                }
                shared.settled(seq, || Err(format!("set aside as a dead letter: {why}")));
            }
            InFlight::Sent(h, payload) => {
                // While an outcome is awaited (Kafka away, say), what was
                // delivered before is still checkpointed on time: the
                // repeat window after a crash stays one interval.
                tokio::pin!(h);
                let outcome = 'wait: loop {
                    let due =
                        tokio::time::Instant::from_std(last_checkpoint + cfg.checkpoint_interval);
                    tokio::select! {
                        biased;
                        r = &mut h => break 'wait r,
                        _ = shared.stopped.notified() => break 'run,
                        _ = tokio::time::sleep_until(due), if cursor > checkpointed => {
                            if writer.checkpoint(cursor).await.is_ok() {
                                checkpointed = cursor;
                            }
                            last_checkpoint = Instant::now();
                        }
                    }
                };
                match outcome {
                    Ok(md) => {
                        shared.delivered.fetch_add(1, Ordering::Relaxed);
                        if let Some(o) = &cfg.on_settled {
                            o.tell(&payload, true, None);
                        }
                        shared.settled(seq, || Ok(md));
                    }
                    Err(e) if never_deliverable(&e) => {
                        if let Err(d) = dead_letter(&dead_path, seq, &payload, &e.to_string()) {
                            shared.halt(format!("writing a dead letter failed: {d}"));
                            break;
                        }
                        shared.dead_letters.fetch_add(1, Ordering::Relaxed);
                        if let Some(o) = &cfg.on_settled {
                            o.tell(&payload, false, Some(&e.to_string()));
                        }
                        shared.settled(seq, || Err(format!("set aside as a dead letter: {e}")));
                    }
                    // The producer gave up (closed, its tasks died, or a
                    // limit it was given ran out): the record stays on disk
                    // for the next open.
                    Err(e) => {
                        if !shared.stop.load(Ordering::Relaxed) {
                            shared.halt(format!("the producer gave record {seq} up: {e}"));
                        }
                        break;
                    }
                }
            }
        }
        cursor = seq + 1;
        shared.cursor.store(cursor, Ordering::Relaxed);
        shared.oldest_ms.store(
            window.front().map_or(-1, |(_, e)| e.timestamp()),
            Ordering::Relaxed,
        );
        if window.is_empty() {
            shared.caught_up.notify_waiters();
        }
        // The clock is read every 256 records (it was 3 % of a drain's
        // samples when read per record); the window running dry checks too.
        if (cursor.is_multiple_of(256) || window.is_empty())
            && last_checkpoint.elapsed() >= cfg.checkpoint_interval
            && writer.checkpoint(cursor).await.is_ok()
        {
            checkpointed = cursor;
            last_checkpoint = Instant::now();
        }
    }
    if cursor > checkpointed {
        let _ = writer.checkpoint(cursor).await;
    }
    let _ = producer.close(Duration::from_secs(1)).await;
}
