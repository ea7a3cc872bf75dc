//! The producer's background task: keeps metadata fresh, gets the producer
//! id, fails batches whose `delivery.timeout.ms` passed while queued, and
//! starts a sender task for every broker that leads a partition with records.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
use crate::state::{Finished, Shared, State};

/// Metadata versions herald speaks: v1 (controller, racks) to v9 (flexible).
pub(crate) const METADATA_VERSIONS: (i16, i16) = (1, 9);
/// InitProducerId versions: v0 to v4.
const INIT_PID_VERSIONS: (i16, i16) = (0, 4);

enum Action {
    None,
    Refresh {
        topics: Vec<String>,
        addrs: Vec<String>,
    },
    InitProducerId {
        addrs: Vec<String>,
    },
}

fn candidate_addrs(shared: &Shared, cluster: &ClusterMetadata) -> Vec<String> {
    let mut addrs: Vec<String> = cluster.brokers.iter().map(|b| b.addr.clone()).collect();
    for b in &shared.config.bootstrap_servers {
        if !addrs.contains(b) {
            addrs.push(b.clone());
        }
    }
    addrs
}

/// Fetch metadata from the first broker of `addrs` that answers.
pub(crate) async fn fetch_metadata(
    pool: &Pool,
    addrs: &[String],
    topics: Option<&[String]>,
) -> Result<MetadataResponse, Error> {
    fetch_metadata_with(pool, addrs, topics, true).await
}

/// Fetch metadata, asking the broker to create missing topics only if
/// `auto_create` (the producer does, as the Java client; the admin client
/// must not: describing a topic must not make it).
pub(crate) async fn fetch_metadata_with(
    pool: &Pool,
    addrs: &[String],
    topics: Option<&[String]>,
    auto_create: bool,
) -> Result<MetadataResponse, Error> {
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
            Ok(r) => return Ok(r),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::config("bootstrap.servers", "no broker address to try")))
}

async fn init_producer_id(
    shared: &Shared,
    addrs: &[String],
) -> Result<Option<ProducerIdentity>, Error> {
    let mut last = None;
    for addr in addrs {
        let conn = match shared.pool.get(addr).await {
            Ok(c) => c,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        if !conn.supports::<InitProducerIdRequest>() {
            return Ok(None);
        }
        let version = conn.version::<InitProducerIdRequest>(INIT_PID_VERSIONS)?;
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(i32::MAX)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
        match conn.request(req, version).await {
            Ok(r) if r.error_code == code::NONE => {
                return Ok(Some(ProducerIdentity {
                    id: r.producer_id.0,
                    epoch: r.producer_epoch,
                }))
            }
            Ok(r) => {
                last = Some(Error::Broker {
                    code: KafkaCode(r.error_code),
                    partition: None,
                    broker: addr.clone(),
                    message: Some("InitProducerId failed".into()),
                })
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::config("bootstrap.servers", "no broker address to try")))
}

/// The background task.
pub(crate) async fn run(shared: Arc<Shared>) {
    let cfg = shared.config.clone();
    let mut refresh_failures = 0u32;
    let mut refresh_not_before = Instant::now();
    let mut pid_failures = 0u32;
    let mut pid_not_before = Instant::now();
    loop {
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = Instant::now();
        let mut outcomes = Vec::new();
        let mut finished = Vec::new();
        let (action, wake_at) = {
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
                    st.request_pid_reset();
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
            // Start senders for leaders of queued partitions.
            for node in leaders {
                if st.senders.insert(node) {
                    st.tasks += 1;
                    tokio::spawn(crate::sender::run(shared.clone(), node));
                }
            }
            let addrs = candidate_addrs(&shared, &st.meta.cluster);
            // Producer id first (nothing is sent without it), then metadata;
            // each has its own backoff, and one waiting never starves the other.
            // A new id only once nothing is in flight and every batch whose
            // fate is unknown got its answer under the old one.
            let pid_due =
                st.pid == PidState::NeedsId && st.acc.busy_total() == 0 && !st.acc.has_unsure();
            let next_refresh = if want {
                refresh_not_before
            } else {
                st.meta.last_refresh.unwrap_or(now) + cfg.metadata_max_age
            };
            let action = if pid_due && now >= pid_not_before {
                Action::InitProducerId { addrs }
            } else if want && now >= refresh_not_before {
                let mut topics: Vec<String> = st.acc.topics().map(str::to_string).collect();
                topics.extend(st.meta.wanted.keys().cloned());
                topics.sort();
                topics.dedup();
                Action::Refresh { topics, addrs }
            } else {
                let mut next = next_refresh;
                if pid_due {
                    next = next.min(pid_not_before);
                }
                wake_at = Some(wake_at.map_or(next, |w| w.min(next)));
                Action::None
            };
            (action, wake_at)
        };
        shared.complete(outcomes, finished);

        match action {
            Action::None => {}
            Action::Refresh { topics, addrs } => {
                let result = fetch_metadata(&shared.pool, &addrs, Some(&topics)).await;
                let now = Instant::now();
                let mut st = shared.lock();
                match result {
                    Ok(resp) => {
                        refresh_failures = 0;
                        st.meta.update(&resp, now);
                        // Never two refreshes back to back: topics still
                        // missing or partitions without a leader (an election)
                        // are asked about again after retry.backoff.ms.
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
                continue;
            }
            Action::InitProducerId { addrs } => {
                let result = init_producer_id(&shared, &addrs).await;
                let mut st = shared.lock();
                match result {
                    Ok(Some(id)) => {
                        pid_failures = 0;
                        crate::state::Counters::add(&shared.counters.producer_ids, 1);
                        st.acc.reset_sequences();
                        st.pid = PidState::Ready(id);
                        tracing::debug!(
                            producer_id = id.id,
                            epoch = id.epoch,
                            "producer id assigned"
                        );
                    }
                    Ok(None) => {
                        tracing::warn!(
                            "broker does not support InitProducerId: idempotence is off"
                        );
                        st.acc.reset_sequences();
                        st.pid = PidState::Disabled;
                    }
                    Err(e) => {
                        pid_failures += 1;
                        tracing::debug!(error = %e, "InitProducerId failed");
                        st.meta.last_error = Some(e);
                        pid_not_before = Instant::now()
                            + backoff(cfg.retry_backoff, cfg.retry_backoff_max, pid_failures);
                    }
                }
                drop(st);
                shared.wake.notify_waiters();
                continue;
            }
        }
        let sleep = wake_at.unwrap_or_else(|| now + Duration::from_secs(3600));
        tokio::select! {
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
    let mut st = shared.lock();
    st.tasks -= 1;
    drop(st);
    shared.progress.notify_waiters();
    shared.wake.notify_waiters();
}
