//! One sender task per broker: drains ready batches of the partitions that
//! broker leads into Produce requests (several partitions per request), keeps
//! up to `max.in.flight.requests.per.connection` in flight, and handles the
//! responses in the order the requests were sent.
//!
//! Building the request and reading the response are pure functions
//! (`build_request`, `decide`); `apply` turns decisions into state changes
//! under the lock; the task does the I/O.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use crate::backoff::backoff;
use crate::batch::ProducerBatch;
use crate::compression::Compression;
use crate::config::Acks;
use crate::connection::{decode_response, Connection, InFlight};
use crate::delivery::Outcomes;
use crate::error::{
    classify_produce_code, code, fatal_before_append, refused_before_append, Disposition, Error,
    KafkaCode, TopicPartition,
};
use crate::idempotence::PidState;
use crate::state::{Finished, Shared, State, TaskGuard};

/// Produce versions herald speaks: v3 (RecordBatch v2, transactional id) to
/// v9 (flexible encoding). Newer versions add nothing a producer needs here.
pub(crate) const PRODUCE_VERSIONS: (i16, i16) = (3, 9);

/// What happens to one batch after a response (or a failed request).
#[derive(Debug, Clone)]
pub(crate) enum Decision {
    Success {
        base_offset: i64,
        log_append_time: i64,
    },
    Retry {
        error: Error,
        refresh_metadata: bool,
        fate: Fate,
    },
    ResetProducerId {
        error: Error,
    },
    Fail {
        error: Error,
    },
}

/// What a failed attempt tells about whether the broker has the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Nothing new: the request was not written, or the broker refused it
    /// while validating it, before any append (NOT_ENOUGH_REPLICAS, …;
    /// `refused_before_append`). Whatever an earlier attempt left unknown
    /// stays unknown.
    Unchanged,
    /// The request may have been appended without our hearing of it:
    /// connection lost after writing, no answer in time, or an error Kafka
    /// can answer after the append (NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT,
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND, …).
    Unknown,
    /// The broker says it does not have the batch (an
    /// OUT_OF_ORDER_SEQUENCE_NUMBER behind a gap).
    NotWritten,
}

/// Read a Produce response: one decision per batch, in batch order.
/// `is_head` tells whether a base sequence is the partition's first
/// unacknowledged one (see `idempotence`).
pub(crate) fn decide(
    resp: &ProduceResponse,
    batches: &[ProducerBatch],
    broker: &str,
    is_head: impl Fn(&TopicPartition, i32) -> bool,
) -> Vec<Decision> {
    batches
        .iter()
        .map(|b| {
            let p = resp
                .responses
                .iter()
                .filter(|t| t.name.0.as_str() == &*b.tp.topic)
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == b.tp.partition);
            let Some(p) = p else {
                return Decision::Retry {
                    error: Error::protocol(broker, format!("no response for {}", b.tp)),
                    refresh_metadata: true,
                    fate: Fate::Unknown,
                };
            };
            let mut message = p.error_message.as_ref().map(|m| m.as_str().to_string());
            if let Some(re) = p.record_errors.first() {
                let detail = format!(
                    "record {} of the batch: {}",
                    re.batch_index,
                    re.batch_index_error_message
                        .as_ref()
                        .map_or("", |m| m.as_str())
                );
                message = Some(message.map_or(detail.clone(), |m| format!("{m}; {detail}")));
            }
            let error = Error::Broker {
                code: KafkaCode(p.error_code),
                partition: Some(b.tp.clone()),
                broker: broker.to_string(),
                message,
            };
            match p.error_code {
                code::NONE | code::DUPLICATE_SEQUENCE_NUMBER => Decision::Success {
                    base_offset: p.base_offset,
                    log_append_time: p.log_append_time_ms,
                },
                code::OUT_OF_ORDER_SEQUENCE_NUMBER
                    if !is_head(&b.tp, b.sequence.map_or(-1, |s| s.1)) =>
                {
                    // An earlier batch failed and will be resent first.
                    Decision::Retry {
                        error,
                        refresh_metadata: false,
                        fate: Fate::NotWritten,
                    }
                }
                c => match classify_produce_code(c) {
                    Disposition::Retry { refresh_metadata } => Decision::Retry {
                        error,
                        refresh_metadata,
                        // Most retriable codes can come after the append
                        // (see `refused_before_append`).
                        fate: if refused_before_append(c) {
                            Fate::Unchanged
                        } else {
                            Fate::Unknown
                        },
                    },
                    Disposition::ResetProducerId => Decision::ResetProducerId { error },
                    Disposition::Fatal => Decision::Fail { error },
                },
            }
        })
        .collect()
}

/// Apply decisions under the lock. Returns outcomes to deliver and batches
/// to finish once delivered.
pub(crate) fn apply(
    shared: &Shared,
    st: &mut State,
    batches: Vec<ProducerBatch>,
    decisions: Vec<Decision>,
    now: Instant,
) -> (Outcomes, Vec<Finished>) {
    let cfg = &shared.config;
    // One entry per batch (its record list moved, nothing per record: this
    // runs under the state lock).
    let mut outcomes = Vec::with_capacity(batches.len());
    let mut finished = Vec::with_capacity(batches.len());
    for (mut b, d) in batches.into_iter().zip(decisions) {
        tracing::trace!(tp = %b.tp, seq = ?b.sequence.map(|s| (s.0.id, s.0.epoch, s.1)), unsure = b.unsure, decision = ?d, "applying");
        let seq = b.sequence.map_or(-1, |s| s.1);
        let sequenced = seq >= 0;
        let (error, refresh, reset) = match d {
            Decision::Success {
                base_offset,
                log_append_time,
            } => {
                if sequenced {
                    st.acc.acked(&b.tp, seq, b.record_count(), now);
                }
                finished.push(Finished::succeed(
                    b,
                    base_offset,
                    log_append_time,
                    &mut outcomes,
                ));
                continue;
            }
            Decision::Fail { error }
                if error.kafka_code() == Some(code::MESSAGE_TOO_LARGE)
                    && b.records.len() > 1
                    // An earlier attempt may have been written whole; halves
                    // would not match it and could be written again.
                    && !b.unsure =>
            {
                if st.aborting {
                    // close() gave up and the queues are no longer drained:
                    // halves put back there would never get an outcome.
                    (error, false, false)
                } else {
                    // Too large as a whole: send it in halves, so that only a
                    // record too large by itself fails. Not written, so the
                    // halves keep the batch's sequences.
                    tracing::debug!(tp = %b.tp, records = b.records.len(), "splitting a batch the broker found too large");
                    b.last_error = Some(error);
                    crate::state::Counters::add(&shared.counters.batch_splits, 1);
                    let (first, second) = b.split();
                    st.acc.requeue_split(first, second, now);
                    continue;
                }
            }
            Decision::Fail { error } => {
                // Only codes raised before the append prove anything (a
                // local compression failure was never sent at all).
                if !error.kafka_code().is_none_or(fatal_before_append) {
                    b.unsure = true;
                }
                if sequenced {
                    // The broker still expects this batch's sequence: the
                    // partition starts over under a new epoch.
                    st.acc.given_up(&b.tp, seq, !b.unsure, now);
                }
                finished.push(Finished::fail(b, error, &mut outcomes));
                continue;
            }
            Decision::Retry {
                error,
                refresh_metadata,
                fate,
            } => {
                match fate {
                    Fate::Unchanged => {}
                    // Unless an earlier batch was never written, in which
                    // case the broker cannot have taken this one.
                    Fate::Unknown => {
                        b.unsure =
                            !(sequenced && st.acc.cannot_be_written(&b.tp, seq, b.created, now))
                    }
                    Fate::NotWritten => b.unsure = false,
                }
                if sequenced && !b.unsure {
                    // Never written so far: nothing numbered after it was
                    // either (a later batch's unknown answer proves nothing
                    // more; without this, such a batch stuck behind this one
                    // held a producer-id reset until the delivery timeout:
                    // soak, seeds 3 and 87).
                    st.acc.not_written_from(&b.tp, seq, now);
                }
                (error, refresh_metadata, false)
            }
            Decision::ResetProducerId { error } if b.unsure => {
                // The broker no longer knows this producer's sequences, and
                // an earlier attempt of this batch may be in its log (written,
                // then the answer lost). Resent under a new epoch or id it
                // could not be recognised, and could land twice: fail it,
                // saying it may have been written, rather than risk that.
                st.acc.given_up(&b.tp, seq, false, now);
                if fenced_current(&error, &b, st.pid) {
                    st.request_new_pid();
                }
                finished.push(Finished::fail(b, error, &mut outcomes));
                continue;
            }
            Decision::ResetProducerId { error } => {
                // Refused, never written: renumbered when the partition
                // starts over. If it had to start over already, this batch
                // can never be written under the old identity, so the
                // unsure batches behind it, sent under the old identity
                // only to learn their fate, never will: they fail as
                // outcome-unknown instead of waiting for the delivery
                // timeout (soak, seeds 3 and 87).
                if st.acc.needs_bump(&b.tp) || st.pid == PidState::NeedsId {
                    for u in st.acc.take_unsure_after(&b.tp, seq) {
                        let e = Error::Protocol {
                            broker: match &error {
                                Error::Broker { broker, .. } => broker.clone(),
                                _ => String::new(),
                            },
                            message: format!(
                                "the broker refused an earlier batch of {} ({error}), so this one cannot be resent to learn whether it was written",
                                u.tp
                            ),
                        };
                        finished.push(Finished::fail(u, e, &mut outcomes));
                    }
                }
                (error, false, true)
            }
        };
        if st.aborting {
            // close() gave up: nothing goes back to a queue nobody drains.
            let err = Error::Closed(format!(
                "close timeout passed while the record was being retried (last error: {error})"
            ));
            finished.push(Finished::fail(b, err, &mut outcomes));
            continue;
        }
        if refresh {
            st.meta.refresh_requested = true;
        }
        if reset {
            // Kafka fenced our epoch (INVALID_PRODUCER_EPOCH): a new id.
            // Otherwise (UNKNOWN_PRODUCER_ID, OUT_OF_ORDER_SEQUENCE_NUMBER
            // at the head) the partition starts over under a new epoch.
            if fenced_current(&error, &b, st.pid) {
                st.request_new_pid();
            } else {
                st.acc.request_bump(&b.tp);
            }
        }
        let timed_out = now >= b.created + cfg.delivery_timeout;
        if timed_out || b.attempts > cfg.retries {
            if sequenced {
                st.acc.given_up(&b.tp, seq, !b.unsure, now);
            }
            let err = if timed_out {
                Error::DeliveryTimeout {
                    partition: b.tp.clone(),
                    timeout: cfg.delivery_timeout,
                    attempts: b.attempts,
                    last_error: Some(Box::new(error)),
                }
            } else {
                error
            };
            finished.push(Finished::fail(b, err, &mut outcomes));
        } else {
            tracing::debug!(tp = %b.tp, seq = ?b.sequence.map(|s| (s.0.id, s.0.epoch, s.1)), unsure = b.unsure, attempts = b.attempts, error = %error, "retrying batch");
            crate::state::Counters::add(&shared.counters.batch_retries, 1);
            b.last_error = Some(error);
            let wait = backoff(cfg.retry_backoff, cfg.retry_backoff_max, b.attempts);
            let at = (now + wait).min(b.created + cfg.delivery_timeout);
            st.acc.requeue(b, at);
        }
    }
    (outcomes, finished)
}

/// Whether `error` says the broker fenced the producer id in use now
/// (INVALID_PRODUCER_EPOCH for a batch under it), so a new id is needed.
/// The same answer for a batch resent under an older id, only to learn its
/// fate, says nothing about the current one.
fn fenced_current(error: &Error, b: &ProducerBatch, pid: PidState) -> bool {
    error.kafka_code() == Some(code::INVALID_PRODUCER_EPOCH)
        && matches!((pid, b.sequence), (PidState::Ready(cur), Some((id, _))) if id.id == cur.id)
}

/// A request on the wire and the batches it carries.
struct Sent {
    batches: Vec<ProducerBatch>,
    response: InFlight,
    version: i16,
    addr: String,
    /// The earliest delivery deadline among the batches.
    deadline: Instant,
}

/// The sender task of broker `node`.
/// The requests a sender has on the wire. If the sender's future is
/// dropped (its runtime shut down, or it panicked), their batches were
/// written and never answered: they fail as outcome-unknown, not as
/// "not written" (a batch dropped with its records alone would say the
/// latter).
struct OnTheWire {
    shared: Arc<Shared>,
    sent: VecDeque<Sent>,
}

impl std::ops::Deref for OnTheWire {
    type Target = VecDeque<Sent>;
    fn deref(&self) -> &Self::Target {
        &self.sent
    }
}

impl std::ops::DerefMut for OnTheWire {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.sent
    }
}

impl Drop for OnTheWire {
    fn drop(&mut self) {
        if self.sent.is_empty() {
            return;
        }
        let mut outcomes = Vec::new();
        let finished: Vec<Finished> = self
            .sent
            .drain(..)
            .flat_map(|s| s.batches)
            .map(|mut b| {
                b.unsure = true;
                Finished::fail(b, Shared::dead_error(), &mut outcomes)
            })
            .collect();
        self.shared.complete(outcomes, finished);
    }
}

pub(crate) async fn run(shared: Arc<Shared>, node: i32, guard: TaskGuard) {
    let mut sent = OnTheWire {
        shared: shared.clone(),
        sent: VecDeque::new(),
    };
    // KIP-219: a broker over a quota answers at once with throttle_time_ms
    // and expects nothing more from us until that time has passed. Not an
    // error; the records are fine.
    let mut throttled_until: Option<Instant> = None;
    let max_in_flight = shared.config.max_in_flight;
    let acks = shared.config.acks;
    let mut needs_driver = false;
    loop {
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = Instant::now();
        let (mut batches, wake_at, addr) = {
            let mut st = shared.lock();
            if st.aborting || (st.closing && st.acc.is_idle() && sent.is_empty()) {
                st.senders.remove(&node);
                st.acc.sender_looks_at(node, None);
                drop(st);
                let err =
                    Error::Closed("close timeout passed while the request was in flight".into());
                let mut outcomes = Vec::new();
                let fin: Vec<Finished> = sent
                    .drain(..)
                    .flat_map(|s| s.batches)
                    .map(|mut b| {
                        // Written, never answered: it may be in the log.
                        b.unsure = true;
                        Finished::fail(b, err.clone(), &mut outcomes)
                    })
                    .collect();
                shared.complete(outcomes, fin);
                break;
            }
            let addr = st.meta.cluster.broker_addr(node).map(str::to_string);
            let throttled = throttled_until.filter(|t| *t > now);
            let drained = if throttled.is_some() {
                (Vec::new(), throttled, addr)
            } else if sent.len() < max_in_flight && addr.is_some() {
                let force = st.flushing > 0 || st.closing || shared.memory_pressure();
                let producer = st.pid.sendable();
                let idempotent = st.pid != PidState::Disabled;
                let State { acc, meta, .. } = &mut *st;
                let d = acc.drain(
                    node,
                    |tp| meta.cluster.leader(tp),
                    crate::accumulator::DrainContext {
                        now,
                        force,
                        producer,
                        idempotent,
                        meta_generation: meta.generation,
                    },
                );
                if let Some(id) = d.bumped_to {
                    st.epoch_bumped(id, &shared.counters);
                }
                if d.needs_new_id {
                    st.request_new_pid();
                    needs_driver = true;
                }
                (d.batches, d.wake_at, addr)
            } else {
                (Vec::new(), None, addr)
            };
            // Sending now means looking again right after.
            let looks = if drained.0.is_empty() {
                drained.1
            } else {
                Some(now)
            };
            st.acc.sender_looks_at(node, looks);
            drained
        };
        if std::mem::take(&mut needs_driver) {
            // The driver asks for the new producer id.
            shared.wake.notify_waiters();
        }

        // Compress new batches here, on the sender's task, not on `send`'s
        // path; a retry reuses the bytes. (A codec writing into memory
        // cannot fail short of a batch over 4 GiB; if one does, its batch
        // fails with the reason, like any batch the broker cannot take.)
        if shared.config.compression != Compression::None {
            let mut failed = Vec::new();
            let mut i = 0;
            while i < batches.len() {
                match batches[i].compress(shared.config.compression) {
                    Ok(()) => i += 1,
                    Err(e) => {
                        let b = batches.remove(i);
                        let error = Error::Serialization(format!(
                            "compressing a batch of {} with {}: {e}",
                            b.tp, shared.config.compression
                        ));
                        failed.push((b, Decision::Fail { error }));
                    }
                }
            }
            if !failed.is_empty() {
                let (bs, ds) = failed.into_iter().unzip();
                finish(&shared, bs, ds);
            }
        }
        if !batches.is_empty() {
            let addr = addr.expect("drained only with a known address");
            match send_unless_stopped(&shared, &addr, &mut batches, acks).await {
                Ok((response, version)) => {
                    let deadline = first_deadline_of(&batches, shared.config.delivery_timeout)
                        .expect("non-empty");
                    sent.push_back(Sent {
                        batches,
                        response,
                        version,
                        addr,
                        deadline,
                    });
                }
                Err(e) => {
                    // Not written: the broker cannot have these batches.
                    let decisions = vec![
                        Decision::Retry {
                            error: e,
                            refresh_metadata: true,
                            fate: Fate::Unchanged,
                        };
                        batches.len()
                    ];
                    finish(&shared, batches, decisions);
                }
            }
            continue;
        }

        // Any request's batches may pass their delivery timeout first (a
        // retried batch can be older than those of the requests before it).
        let first_deadline = sent.iter().map(|s| s.deadline).min();
        let event = tokio::select! {
            // A response that has arrived wins over its deadline.
            biased;
            r = recv_front(&mut sent), if !sent.is_empty() => Event::Response(r),
            _ = tokio::time::sleep_until(first_deadline.unwrap_or(now).into()), if first_deadline.is_some() => Event::Expired,
            _ = &mut notified => Event::Wake,
            _ = tokio::time::sleep_until(wake_at.unwrap_or(now).into()), if wake_at.is_some() => Event::Wake,
        };
        match event {
            Event::Wake => {}
            Event::Response(r) => {
                let s = sent.pop_front().expect("front exists");
                let n = s.batches.len();
                let decisions = match r {
                    Ok(_) if acks == Acks::None => vec![
                        Decision::Success {
                            base_offset: -1,
                            log_append_time: -1
                        };
                        n
                    ],
                    Ok(frame) => match decode_response::<ProduceRequest>(&s.addr, frame, s.version)
                    {
                        Ok(resp) => {
                            if resp.throttle_time_ms > 0 {
                                let ms = resp.throttle_time_ms as u64;
                                throttled_until = Some(Instant::now() + Duration::from_millis(ms));
                                crate::state::Counters::add(&shared.counters.throttled_ms, ms);
                                tracing::debug!(broker = %s.addr, ms, "throttled by the broker");
                            }
                            let st = shared.lock();
                            decide(&resp, &s.batches, &s.addr, |tp, base| {
                                st.acc.oosn_at_head(tp, base)
                            })
                        }
                        Err(e) => vec![
                            Decision::Retry {
                                error: e,
                                refresh_metadata: false,
                                fate: Fate::Unknown,
                            };
                            n
                        ],
                    },
                    // Written, but the answer was lost with the connection.
                    Err(e) => vec![
                        Decision::Retry {
                            error: e,
                            refresh_metadata: true,
                            fate: Fate::Unknown,
                        };
                        n
                    ],
                };
                finish(&shared, s.batches, decisions);
            }
            Event::Expired => {
                // delivery.timeout.ms passed for batches of requests still
                // unanswered. Those batches fail now (they may still be
                // written: the error says no answer came), front to back so
                // a partition's outcomes stay in send order; the rest of
                // each request waits for its answer.
                let now = Instant::now();
                let timeout = shared.config.delivery_timeout;
                let mut expired = Vec::new();
                let mut errors = Vec::new();
                for s in sent.iter_mut().filter(|s| s.deadline <= now) {
                    let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut s.batches)
                        .into_iter()
                        .partition(|b| b.created + timeout <= now);
                    s.batches = kept;
                    s.deadline = first_deadline_of(&s.batches, timeout)
                        // Emptied: keep the slot until the answer (or the
                        // connection's request timeout) comes, so in-flight
                        // stays bounded.
                        .unwrap_or(now + shared.config.request_timeout * 4);
                    let e = Error::RequestTimeout {
                        broker: s.addr.clone(),
                        timeout: shared.config.request_timeout,
                    };
                    errors.extend(std::iter::repeat_n(e, gone.len()));
                    expired.extend(gone);
                }
                let decisions = errors
                    .into_iter()
                    .map(|error| Decision::Retry {
                        error,
                        refresh_metadata: false,
                        fate: Fate::Unknown,
                    })
                    .collect();
                finish(&shared, expired, decisions);
            }
        }
    }
    guard.finish();
}

enum Event {
    Response(Result<bytes::Bytes, Error>),
    Expired,
    Wake,
}

async fn recv_front(sent: &mut VecDeque<Sent>) -> Result<bytes::Bytes, Error> {
    sent.front_mut()
        .expect("guarded by !is_empty")
        .response
        .recv()
        .await
}

/// `apply` under the lock, then deliver and finish.
fn finish(shared: &Shared, batches: Vec<ProducerBatch>, decisions: Vec<Decision>) {
    let (outcomes, finished) = {
        let mut st = shared.lock();
        apply(shared, &mut st, batches, decisions, Instant::now())
    };
    shared.complete(outcomes, finished);
    shared.wake.notify_waiters();
}

/// The earliest `delivery.timeout.ms` deadline among `batches`.
fn first_deadline_of(batches: &[ProducerBatch], timeout: Duration) -> Option<Instant> {
    batches.iter().map(|b| b.created + timeout).min()
}

/// `send`, unless the producer aborts or the batches' delivery timeout
/// passes first: connecting to a broker that does not answer may take
/// `socket.connection.setup.timeout.ms`, and must hold neither an outcome
/// nor `close`. Stopped before the request was handed to the connection's
/// writer, the batches were not written (tokio's channel send is
/// cancel-safe).
async fn send_unless_stopped(
    shared: &Shared,
    addr: &str,
    batches: &mut [ProducerBatch],
    acks: Acks,
) -> Result<(InFlight, i16), Error> {
    let deadline =
        first_deadline_of(batches, shared.config.delivery_timeout).unwrap_or_else(Instant::now);
    let sending = send(shared, addr, batches, acks);
    tokio::pin!(sending);
    loop {
        let woken = shared.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if shared.lock().aborting {
            return Err(Error::Closed(
                "close timeout passed while connecting to the broker".into(),
            ));
        }
        tokio::select! {
            biased;
            r = &mut sending => return r,
            _ = tokio::time::sleep_until(deadline.into()) => {
                return Err(Error::Connection {
                    broker: addr.to_string(),
                    message: "still connecting when delivery.timeout.ms passed".into(),
                    kind: Some(std::io::ErrorKind::TimedOut),
                })
            }
            _ = &mut woken => {}
        }
    }
}

async fn send(
    shared: &Shared,
    addr: &str,
    batches: &mut [ProducerBatch],
    acks: Acks,
) -> Result<(InFlight, i16), Error> {
    let conn: Connection = shared.pool.get(addr).await?;
    let version = conn.version::<ProduceRequest>(PRODUCE_VERSIONS)?;
    let timeout_ms = shared
        .config
        .request_timeout
        .as_millis()
        .min(i32::MAX as u128) as i32;
    let (corr, client_id) = conn.frame_ids();
    let frame =
        crate::produce_request::encode(version, corr, client_id, acks.wire(), timeout_ms, batches);
    let inflight = conn.send_encoded(frame, corr, acks != Acks::None).await?;
    crate::state::Counters::add(&shared.counters.requests, 1);
    Ok((inflight, version))
}

#[cfg(test)]
mod tests;
