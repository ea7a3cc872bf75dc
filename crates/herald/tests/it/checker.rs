//! The invariant checker every fault test uses.
//!
//! It sends the records itself (values are the record's number in send
//! order, so the log can be matched back), records each outcome and when
//! it came, then compares them with the log as the broker holds it:
//! 1. every `send` gets exactly one outcome, and none later than
//!    `delivery.timeout.ms` plus a margin;
//! 2. every record reported delivered is in the log exactly once, in the
//!    partition and at the offset reported (a broker that answers a
//!    duplicate without its offset gives -1, allowed only where a test says
//!    so);
//! 3. per partition, records are in the log in send order;
//! 4. a record reported failed says why, and is in the log only if its
//!    error says the outcome is unknown;
//! 5. nothing is in the log that was not sent.
//!
//! A violation panics with the record's number and what was seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald::{Error, Producer, Record, RecordMetadata};
use herald_test_support::{MockBroker, Read};
use tokio::sync::Notify;

/// A partition's log as the checker takes it: its number, and the
/// (offset, value) of every record in offset order.
pub type PartitionLog = (i32, Vec<(i64, Option<Bytes>)>);

/// When a record was handed to `send`, and every outcome it got.
struct Entry {
    sent_at: Instant,
    outcomes: Vec<(Result<RecordMetadata, Error>, Instant)>,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
}

/// Sends numbered records and checks the invariants against a log.
#[derive(Clone)]
pub struct Checker {
    inner: Arc<Mutex<Inner>>,
    done: Arc<Notify>,
    delivery_timeout: Duration,
    unknown_offsets_allowed: bool,
    at_least_once: bool,
}

/// What a checked run came to; printed by `check`, kept for figures.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub sent: usize,
    pub delivered: usize,
    /// Delivered, reported without an offset (DUPLICATE_SEQUENCE_NUMBER
    /// from a broker that does not give the original one).
    pub delivered_without_offset: usize,
    pub failed: usize,
    /// Failed records whose error says they may be in the log.
    pub unknown: usize,
    /// Of those, how many are.
    pub unknown_in_log: usize,
    /// The longest a record waited for its outcome.
    pub longest_wait: Duration,
    /// Extra copies in the log (only allowed `at_least_once`).
    pub duplicates: usize,
    /// Records in the log after a record sent later to the same partition
    /// (only allowed `at_least_once`).
    pub reordered: usize,
}

/// Slack on `delivery.timeout.ms` for timers and a loaded CI machine.
const MARGIN: Duration = Duration::from_secs(2);

impl Checker {
    /// A checker for a producer with this `delivery.timeout.ms`.
    pub fn new(producer: &Producer) -> Checker {
        Checker {
            inner: Arc::default(),
            done: Arc::default(),
            delivery_timeout: producer.config().delivery_timeout,
            unknown_offsets_allowed: false,
            at_least_once: false,
        }
    }

    /// Accept delivered records reported with offset -1 (Tansu answers a
    /// resent duplicate DUPLICATE_SEQUENCE_NUMBER without its offset).
    pub fn allow_unknown_offsets(mut self) -> Checker {
        self.unknown_offsets_allowed = true;
        self
    }

    /// What a producer without idempotence promises: at least once. Copies
    /// of a record and records out of send order are counted in the report
    /// instead of failing the check; a delivered record must still be in
    /// the log, and a reported offset must hold one of its copies.
    pub fn at_least_once(mut self) -> Checker {
        self.at_least_once = true;
        self
    }

    /// Send the next record; `make` gets its value (its number, as text).
    /// A `send` that fails counts as that record's outcome.
    pub async fn send(&self, producer: &Producer, make: impl FnOnce(String) -> Record) {
        let id = {
            let mut inner = self.inner.lock().unwrap();
            inner.entries.push(Entry {
                sent_at: Instant::now(),
                outcomes: Vec::new(),
            });
            inner.entries.len() - 1
        };
        let (inner, done) = (self.inner.clone(), self.done.clone());
        let record = move |result| {
            inner.lock().unwrap().entries[id]
                .outcomes
                .push((result, Instant::now()));
            done.notify_waiters();
        };
        let record2 = record.clone();
        if let Err(e) = producer
            .send_with_callback(make(id.to_string()), record)
            .await
        {
            record2(Err(e));
        }
    }

    /// Send records numbered from the next one up to `n` in all, all to
    /// `topic` (partition chosen by `part` of the number, if given).
    pub async fn send_to(&self, producer: &Producer, topic: &str, n: usize) {
        while self.sent() < n {
            self.send(producer, |v| Record::new(topic, v)).await;
        }
    }

    /// How many records were sent.
    pub fn sent(&self) -> usize {
        self.inner.lock().unwrap().entries.len()
    }

    /// Wait until every record sent has an outcome; panics after `within`,
    /// naming the records still waiting.
    pub async fn wait(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let waiting: Vec<usize> = {
                let inner = self.inner.lock().unwrap();
                inner
                    .entries
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.outcomes.is_empty())
                    .map(|(i, _)| i)
                    .take(10)
                    .collect()
            };
            if waiting.is_empty() {
                return;
            }
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
            {
                panic!("no outcome within {within:?} for records {waiting:?} (first 10)");
            }
        }
    }

    /// Check the invariants against the log of `topic`, given as
    /// (partition, [(offset, value)]) for every partition.
    pub fn check(&self, label: &str, logs: &[PartitionLog]) -> Report {
        let r = self
            .try_check(logs)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        eprintln!(
            "checker [{label}]: {} sent, {} delivered ({} without offset), {} failed ({} outcome unknown, {} of those in the log); 0 lost, {} duplicated, {} reordered; longest wait {:?}",
            r.sent, r.delivered, r.delivered_without_offset, r.failed, r.unknown, r.unknown_in_log, r.duplicates, r.reordered, r.longest_wait
        );
        r
    }

    /// As `check`, returning the first violation instead of panicking.
    pub fn try_check(&self, logs: &[PartitionLog]) -> Result<Report, String> {
        let inner = self.inner.lock().unwrap();
        let entries = &inner.entries;
        let mut report = Report {
            sent: entries.len(),
            ..Report::default()
        };
        // Invariant 1: exactly one outcome each, in time.
        for (i, e) in entries.iter().enumerate() {
            match e.outcomes.len() {
                1 => {}
                0 => return Err(format!("record {i} has no outcome")),
                n => return Err(format!("record {i} has {n} outcomes")),
            }
            let waited = e.outcomes[0].1.duration_since(e.sent_at);
            report.longest_wait = report.longest_wait.max(waited);
            if waited > self.delivery_timeout + MARGIN {
                return Err(format!(
                    "record {i} waited {waited:?} for its outcome; delivery.timeout.ms is {:?}",
                    self.delivery_timeout
                ));
            }
        }
        // Invariants 3 and 5: where each record is; order per partition.
        let mut in_log: HashMap<usize, Vec<(i32, i64)>> = HashMap::new();
        for (partition, log) in logs {
            let mut last: Option<usize> = None;
            for (offset, value) in log {
                let i: usize = value
                    .as_deref()
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse().ok())
                    .filter(|i| *i < entries.len())
                    .ok_or_else(|| {
                        format!("partition {partition} offset {offset}: a record never sent ({value:?})")
                    })?;
                let copies = in_log.entry(i).or_default();
                copies.push((*partition, *offset));
                if copies.len() > 1 {
                    report.duplicates += 1;
                    if !self.at_least_once {
                        let (p, o) = copies[0];
                        return Err(format!(
                            "record {i} is in the log twice: {p}@{o} and {partition}@{offset}"
                        ));
                    }
                    continue;
                }
                if let Some(prev) = last.filter(|prev| i < *prev) {
                    report.reordered += 1;
                    if !self.at_least_once {
                        return Err(format!(
                            "partition {partition}: record {i} at offset {offset} comes after record {prev}, sent later"
                        ));
                    }
                }
                last = last.max(Some(i));
            }
        }
        // Invariants 2 and 4: outcomes against the log.
        for (i, e) in entries.iter().enumerate() {
            match &e.outcomes[0].0 {
                Ok(md) => {
                    report.delivered += 1;
                    let Some(copies) = in_log.get(&i) else {
                        return Err(format!(
                            "record {i} reported delivered at {}@{} is not in the log: lost",
                            md.partition, md.offset
                        ));
                    };
                    let (p, offset) = copies[0];
                    if md.offset < 0 && self.unknown_offsets_allowed && md.partition == p {
                        report.delivered_without_offset += 1;
                    } else if !copies.contains(&(md.partition, md.offset)) {
                        return Err(format!(
                            "record {i} reported at {}@{} is at {p}@{offset}",
                            md.partition, md.offset
                        ));
                    }
                }
                Err(err) => {
                    report.failed += 1;
                    if err.to_string().trim().is_empty() {
                        return Err(format!("record {i} failed without a reason"));
                    }
                    if err.outcome_unknown() {
                        report.unknown += 1;
                        report.unknown_in_log += in_log.contains_key(&i) as usize;
                    } else if let Some((p, o)) = in_log.get(&i).map(|c| c[0]) {
                        return Err(format!(
                            "record {i} failed ({err}) but is in the log at {p}@{o}"
                        ));
                    }
                }
            }
        }
        Ok(report)
    }

    /// Every failed record's error, for tests that expect some.
    pub fn errors(&self) -> Vec<(usize, Error)> {
        let inner = self.inner.lock().unwrap();
        inner
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.outcomes[0].0.clone().err().map(|err| (i, err)))
            .collect()
    }
}

/// Our mock broker's log of `topic`, as the checker takes it.
pub fn mock_logs(mock: &MockBroker, topic: &str, partitions: usize) -> Vec<PartitionLog> {
    (0..partitions)
        .map(|p| (p as i32, mock.log(topic, p)))
        .collect()
}

/// Records read back with librdkafka, as the checker takes them.
pub fn read_logs(read: &[Read], partitions: i32) -> Vec<PartitionLog> {
    (0..partitions)
        .map(|p| {
            let mut log: Vec<(i64, Option<Bytes>)> = read
                .iter()
                .filter(|r| r.partition == p)
                .map(|r| (r.offset, r.value.clone().map(Bytes::from)))
                .collect();
            log.sort_by_key(|(o, _)| *o);
            (p, log)
        })
        .collect()
}
