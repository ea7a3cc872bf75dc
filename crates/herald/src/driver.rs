//! The producer's background task: keeps metadata fresh, gets the producer
//! id, fails batches whose `delivery.timeout.ms` passed while queued,
//! forgets topics idle for `metadata.max.idle.ms`, and starts a sender task
//! for every broker that leads a partition with records.
//!
//! Its loop never waits on the network: a metadata refresh and an
//! InitProducerId run as futures beside it (one of each at a time), so a
//! broker that stalls them (each address may take
//! `socket.connection.setup.timeout.ms` or `request.timeout.ms`) delays no
//! record's outcome and no `close`.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    metadata_request::MetadataRequestTopic, InitProducerIdRequest, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::backoff::backoff;
use crate::connection::Pool;
use crate::error::{code, Error, KafkaCode};
use crate::idempotence::PidState;
use crate::metadata::ClusterMetadata;
use crate::record_batch::ProducerIdentity;
use crate::state::{Finished, Shared, State, TaskGuard};

/// Metadata versions herald speaks: v1 (controller, racks) to v9 (flexible).
pub(crate) const METADATA_VERSIONS: (i16, i16) = (1, 9);
/// InitProducerId versions: v0 to v4.
const INIT_PID_VERSIONS: (i16, i16) = (0, 4);

type Pending<T> = Option<Pin<Box<dyn Future<Output = T> + Send>>>;

fn candidate_addrs(shared: &Shared, cluster: &ClusterMetadata) -> Vec<String> {
    let mut addrs: Vec<String> = cluster.brokers.iter().map(|b| b.addr.clone()).collect();
    for b in &shared.config.bootstrap_servers {
        if !addrs.contains(b) {
            addrs.push(b.clone());
        }
    }
    addrs
}

/// Fetch metadata from the first broker of `addrs` that answers; returns
/// the response and that broker's address. The broker may create missing
/// topics only if `auto_create` (the producer's refreshes, as
/// `allow.auto.create.topics` says; never `fetch_metadata` or the admin
/// client: describing a topic must not make it).
pub(crate) async fn fetch_metadata(
    pool: &Pool,
    addrs: &[String],
    topics: Option<&[String]>,
    auto_create: bool,
) -> Result<(MetadataResponse, String), Error> {
    let mut last = None;
    for addr in addrs {
        let conn = match pool.get(addr).await {
            Ok(c) => c,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let version = conn.version::<MetadataRequest>(METADATA_VERSIONS)?;
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(auto_create);
        match conn.request(req, version).await {
            Ok(r) => return Ok((r, addr.clone())),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::config("bootstrap.servers", "no broker address to try")))
}

/// What an InitProducerId attempt came to.
enum PidResult {
    Assigned(ProducerIdentity),
    /// The broker has no InitProducerId API (before Kafka 0.11).
    Unsupported,
    /// Retry after a backoff.
    Retriable(Error),
    /// No retry can succeed (an authorization error): the producer fails.
    Fatal(Error),
}

/// What to do about an InitProducerId error code, and what it means.
fn init_pid_error(c: i16, addr: &str) -> PidResult {
    let retriable = ResponseError::try_from_code(c).is_some_and(|e| e.is_retriable());
    let advice = match c {
        code::CLUSTER_AUTHORIZATION_FAILED => {
            "an idempotent producer needs the IdempotentWrite permission on the cluster \
             (ACL operation IdempotentWrite, or Write on the topics with Kafka 3.0+); grant it, \
             or set enable.idempotence=false"
        }
        _ if retriable => "InitProducerId failed; retrying",
        _ => "InitProducerId failed; the producer cannot get an id",
    };
    let error = Error::Broker {
        code: KafkaCode(c),
        partition: None,
        broker: addr.to_string(),
        message: Some(advice.to_string()),
    };
    if retriable {
        PidResult::Retriable(error)
    } else {
        PidResult::Fatal(error)
    }
}

async fn init_producer_id(shared: Arc<Shared>, addrs: Vec<String>) -> PidResult {
    let mut last = None;
    for addr in &addrs {
        let conn = match shared.pool.get(addr).await {
            Ok(c) => c,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        if !conn.supports::<InitProducerIdRequest>() {
            return PidResult::Unsupported;
        }
        let version = match conn.version::<InitProducerIdRequest>(INIT_PID_VERSIONS) {
            Ok(v) => v,
            Err(e) => return PidResult::Retriable(e),
        };
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(i32::MAX)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
        match conn.request(req, version).await {
            Ok(r) if r.error_code == code::NONE => {
                if r.producer_id.0 < 0 || r.producer_epoch < 0 {
                    last = Some(Error::Protocol {
                        broker: addr.clone(),
                        message: format!(
                            "InitProducerId gave producer id {} epoch {}",
                            r.producer_id.0, r.producer_epoch
                        ),
                    });
                    continue;
                }
                return PidResult::Assigned(ProducerIdentity {
                    id: r.producer_id.0,
                    epoch: r.producer_epoch,
                });
            }
            Ok(r) => match init_pid_error(r.error_code, addr) {
                PidResult::Retriable(e) => last = Some(e),
                other => return other,
            },
            Err(e) => last = Some(e),
        }
    }
    PidResult::Retriable(
        last.unwrap_or_else(|| Error::config("bootstrap.servers", "no broker address to try")),
    )
}

/// The background task.
pub(crate) async fn run(shared: Arc<Shared>, guard: TaskGuard) {
    let cfg = shared.config.clone();
    let mut refresh_failures = 0u32;
    let mut refresh_not_before = Instant::now();
    let mut pid_failures = 0u32;
    let mut pid_not_before = Instant::now();
    let mut next_idle_sweep = Instant::now() + cfg.metadata_max_idle.min(Duration::from_secs(1));
    let mut refresh: Pending<Result<(MetadataResponse, String), Error>> = None;
    let mut init: Pending<PidResult> = None;
    loop {
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = Instant::now();
        let mut outcomes = Vec::new();
        let mut finished = Vec::new();
        let mut new_senders = Vec::new();
        let wake_at = {
            let mut st = shared.lock();
            if st.aborting || (st.closing && st.acc.is_idle()) {
                break;
            }
            // Queued batches past delivery.timeout.ms.
            let (expired, next_expiry) = st.acc.expire(now, cfg.delivery_timeout);
            let mut wake_at = next_expiry;
            for b in expired {
                if let Some((_, seq)) = b.sequence.filter(|s| s.1 >= 0) {
                    st.acc.given_up(&b.tp, seq, !b.unsure, now);
                }
                let err = Error::DeliveryTimeout {
                    partition: b.tp.clone(),
                    timeout: cfg.delivery_timeout,
                    attempts: b.attempts,
                    last_error: b
                        .last_error
                        .clone()
                        .or_else(|| st.meta.last_error.clone())
                        .map(Box::new),
                };
                finished.push(Finished::fail(b, err, &mut outcomes));
            }
            // No producer id can be had: nothing queued can be sent.
            if let Some(e) = st.pid_error.clone() {
                for b in st.acc.take_all() {
                    finished.push(Finished::fail(b, e.clone(), &mut outcomes));
                }
            }
            if now >= next_idle_sweep {
                if forget_idle_topics(&mut st, now, cfg.metadata_max_idle) {
                    // Forgotten sequences must not be reused under the
                    // same epoch (see `Accumulator::forget_topics`).
                    st.bump_epoch(&shared.counters);
                }
                next_idle_sweep = now + cfg.metadata_max_idle.min(Duration::from_secs(1));
            }
            wake_at = Some(wake_at.map_or(next_idle_sweep, |w| w.min(next_idle_sweep)));
            // Partitions without a known leader need fresh metadata; the
            // leaders of the others need a sender each.
            let State { acc, meta, .. } = &mut *st;
            let (leaders, leaderless) =
                acc.queued_leaders(meta.generation, |tp| meta.cluster.leader(tp));
            let stale = st
                .meta
                .last_refresh
                .is_none_or(|t| now.duration_since(t) >= cfg.metadata_max_age);
            // Topics nobody waits for any more are not asked about.
            st.meta.wanted.retain(|_, until| *until > now);
            let want =
                st.meta.refresh_requested || !st.meta.wanted.is_empty() || leaderless || stale;
            // Spawned below, once the lock is released: a runtime that is
            // shutting down drops a spawned future at once, on this
            // thread, and its guard takes the lock.
            for node in leaders {
                if st.senders.insert(node) {
                    st.tasks += 1;
                    new_senders.push(node);
                }
            }
            // Producer id first (nothing new is sent without it), then
            // metadata; each has its own backoff, and each runs beside this
            // loop. Nothing waits for in-flight requests: each partition
            // moves to the new id only once nothing of it is in flight and
            // its unsure batches got their answers under the old one.
            let pid_due = st.pid == PidState::NeedsId && st.pid_error.is_none();
            if pid_due && init.is_none() {
                if now >= pid_not_before {
                    let addrs = candidate_addrs(&shared, &st.meta.cluster);
                    init = Some(Box::pin(init_producer_id(shared.clone(), addrs)));
                } else {
                    wake_at = Some(wake_at.map_or(pid_not_before, |w| w.min(pid_not_before)));
                }
            }
            let next_refresh = if want {
                refresh_not_before
            } else {
                st.meta.last_refresh.unwrap_or(now) + cfg.metadata_max_age
            };
            if refresh.is_none() {
                if want && now >= refresh_not_before {
                    let mut topics: Vec<String> = st.acc.topics().map(str::to_string).collect();
                    topics.extend(st.meta.wanted.keys().cloned());
                    topics.sort();
                    topics.dedup();
                    let addrs = candidate_addrs(&shared, &st.meta.cluster);
                    let shared = shared.clone();
                    let auto_create = cfg.allow_auto_create_topics;
                    refresh = Some(Box::pin(async move {
                        fetch_metadata(&shared.pool, &addrs, Some(&topics), auto_create).await
                    }));
                } else {
                    wake_at = Some(wake_at.map_or(next_refresh, |w| w.min(next_refresh)));
                }
            }
            wake_at
        };
        for node in new_senders {
            let guard = TaskGuard::counted(shared.clone());
            tokio::spawn(crate::sender::run(shared.clone(), node, guard));
        }
        shared.complete(outcomes, finished);

        let sleep = wake_at.unwrap_or_else(|| now + Duration::from_secs(3600));
        tokio::select! {
            result = async { refresh.as_mut().expect("guarded").await }, if refresh.is_some() => {
                refresh = None;
                let now = Instant::now();
                let mut st = shared.lock();
                let result = result.and_then(|(resp, addr)| st.meta.update(&resp, &addr, now));
                match result {
                    Ok(()) => {
                        refresh_failures = 0;
                        // Never two refreshes back to back: topics still
                        // missing or partitions without a leader (an
                        // election) are asked about again after
                        // retry.backoff.ms.
                        refresh_not_before = now + cfg.retry_backoff;
                    }
                    Err(e) => {
                        refresh_failures += 1;
                        tracing::debug!(error = %e, "metadata refresh failed");
                        if matches!(e, Error::Security { .. }) {
                            st.meta.security_error = Some(e.clone());
                        }
                        st.meta.last_error = Some(e);
                        st.meta.generation += 1;
                        refresh_not_before = now
                            + backoff(cfg.retry_backoff, cfg.retry_backoff_max, refresh_failures);
                    }
                }
                drop(st);
                shared.metadata_changed.notify_waiters();
                shared.wake.notify_waiters();
            }
            result = async { init.as_mut().expect("guarded").await }, if init.is_some() => {
                init = None;
                let mut st = shared.lock();
                match result {
                    PidResult::Assigned(id) => {
                        pid_failures = 0;
                        crate::state::Counters::add(&shared.counters.producer_ids, 1);
                        st.pid = PidState::Ready(id);
                        tracing::debug!(producer_id = id.id, epoch = id.epoch, "producer id assigned");
                    }
                    PidResult::Unsupported => {
                        tracing::warn!("broker does not support InitProducerId: idempotence is off");
                        st.acc.clear_sequences();
                        st.pid = PidState::Disabled;
                    }
                    PidResult::Retriable(e) => {
                        pid_failures += 1;
                        tracing::debug!(error = %e, "InitProducerId failed");
                        st.meta.last_error = Some(e);
                        pid_not_before = Instant::now()
                            + backoff(cfg.retry_backoff, cfg.retry_backoff_max, pid_failures);
                    }
                    PidResult::Fatal(e) => {
                        tracing::error!(error = %e, "InitProducerId refused; every record fails");
                        st.pid_error = Some(e);
                    }
                }
                drop(st);
                shared.metadata_changed.notify_waiters();
                shared.wake.notify_waiters();
            }
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(sleep.into()) => {}
        }
    }
    // Closing or aborting: whatever is still queued fails now (aborting), or
    // nothing is left (closing).
    let leftover = shared.lock().acc.take_all();
    let mut outcomes = Vec::new();
    let finished: Vec<Finished> = leftover
        .into_iter()
        .map(|b| {
            Finished::fail(
                b,
                Error::Closed("close timeout passed before the record was sent".into()),
                &mut outcomes,
            )
        })
        .collect();
    shared.complete(outcomes, finished);
    guard.finish();
}

/// Forget the topics nobody sent to for `max_idle` (Java's
/// `metadata.max.idle.ms`): nothing of theirs is queued or in flight, no
/// `send` waits for them, and neither a record nor a wait touched them
/// for that long. They are no longer asked about (so a topic an
/// administrator deleted is not recreated by a broker that auto-creates),
/// and their per-topic state is freed. Returns whether a forgotten
/// partition had numbered batches.
fn forget_idle_topics(st: &mut State, now: Instant, max_idle: Duration) -> bool {
    let uses = st.acc.topic_use();
    let idle = |topic: &str, last: Option<Instant>| {
        !st.meta.wanted.contains_key(topic)
            && last
                .max(st.meta.touched.get(topic).copied())
                .is_none_or(|t| now.saturating_duration_since(t) >= max_idle)
    };
    let mut forget: HashSet<String> = uses
        .iter()
        .filter(|(t, (active, last))| !active && idle(t, *last))
        .map(|(t, _)| t.to_string())
        .collect();
    // Topics with metadata but no records ever (a send that failed).
    forget.extend(
        st.meta
            .cluster
            .topics
            .keys()
            .filter(|t| !uses.contains_key(t.as_str()) && idle(t, None))
            .cloned(),
    );
    drop(uses);
    if forget.is_empty() {
        return false;
    }
    tracing::debug!(topics = forget.len(), "forgetting idle topics");
    let numbered = st.acc.forget_topics(&forget);
    let list: Vec<String> = forget.into_iter().collect();
    st.meta.forget(&list);
    numbered
}
