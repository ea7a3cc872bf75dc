//! `POST /v1/instances/{instance}/topics/{topic}/events`: the checks in
//! the order a client fixes them (shutting down, token, instance and topic,
//! permission, content type, body within its size and time, the body read
//! into records (`request.rs`), Kafka reachable when `fallback = "none"`,
//! rate), then the records stored in the instance's spool (durable on
//! return), and answered: 202 with the ids, or with `wait=true` 200 once Kafka
//! acknowledged every event.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use herald_spool::SpoolError;

use crate::probe::Link;
use crate::problem::{json, problem, retry_after};
use crate::replay::{Claim, Stored};
use crate::request;
use crate::server::Gateway;
use crate::Fallback;

pub(crate) async fn publish(
    State(gw): State<Arc<Gateway>>,
    Path((instance, topic)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = checked(&gw, &instance, &topic, query, headers, body).await;
    // Counted by topic when it is a configured one (nothing is counted
    // under names a client made up).
    if r.status().as_u16() >= 400 && r.extensions().get::<EventsStored>().is_none() {
        gw.metrics.refused(&instance, &topic, r.status().as_u16());
    }
    r
}

async fn checked(
    gw: &Arc<Gateway>,
    instance: &str,
    topic: &str,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if gw.draining.load(Ordering::Relaxed) {
        let mut r = retry_after(
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway is shutting down: retry shortly (another replica, or this one once \
                 restarted)",
            ),
            1,
        );
        // And this connection ends with the answer.
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    let wait = match query
        .as_deref()
        .map(|q| q.split('&').find_map(|kv| kv.strip_prefix("wait=")))
    {
        None | Some(None) | Some(Some("false")) => false,
        Some(Some("true")) => true,
        Some(Some(other)) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!(
                    "wait={other}: use wait=true (answer once Kafka acknowledged) or leave it out"
                ),
            )
        }
    };
    let rule = match gw.authorize(&headers) {
        Ok(r) => r,
        Err(why) => return problem(StatusCode::UNAUTHORIZED, why),
    };
    let Some(inst) = gw.cfg.instances.get(instance) else {
        return problem(
            StatusCode::NOT_FOUND,
            format!(
                "no instance `{instance}`; this token may publish to: {}",
                gw.allowed(rule).join(", ")
            ),
        );
    };
    if !inst.topics.contains_key(topic) {
        return problem(
            StatusCode::NOT_FOUND,
            format!(
                "instance `{instance}` has no topic `{topic}` open to the gateway; this token may \
                 publish to: {}",
                gw.allowed(rule).join(", ")
            ),
        );
    }
    if let Some(r) = rule {
        if !r.allows(instance, topic) {
            return problem(
                StatusCode::FORBIDDEN,
                format!(
                    "token `{}` may not publish to {instance}/{topic}; it may publish to: {}",
                    r.name,
                    gw.allowed(rule).join(", ")
                ),
            );
        }
    }
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
    if !json_body {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the events as JSON with `Content-Type: application/json`",
        );
    }
    let limit = gw.cfg.max_body_bytes;
    let too_large = || {
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is over {limit} bytes (limits.max_body_bytes): send fewer events per \
                 request"
            ),
        )
    };
    // A declared length over the limit is refused before the body is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let bytes: Bytes =
        match tokio::time::timeout(gw.cfg.body_timeout, axum::body::to_bytes(body, limit)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                let e = e.into_inner();
                if e.is::<http_body_util::LengthLimitError>() {
                    return too_large();
                }
                return problem(
                    StatusCode::BAD_REQUEST,
                    format!("the body could not be read ({e}): send it again"),
                );
            }
            Err(_) => {
                return problem(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the body did not arrive within {} ms (limits.body_timeout_ms): send it \
                         whole, at once",
                        gw.cfg.body_timeout.as_millis()
                    ),
                )
            }
        };
    let Some(key) = headers.get("idempotency-key") else {
        return accept(gw, rule, instance, topic, wait, &bytes).await;
    };
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 => k,
        _ => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID, say)",
            )
        }
    };
    // Scoped to the token, the path and the mode: another client's key, or
    // the same key to another topic, is another request.
    let scoped = format!(
        "{}\u{0}{instance}/{topic}\u{0}{wait}\u{0}{key}",
        rule.map_or("", |r| r.name.as_str())
    );
    let hash = crate::token::digest_bytes(&bytes);
    // A retry while the first is in progress waits for its answer, but not
    // without end.
    let deadline = Instant::now() + inst.send_timeout + Duration::from_secs(5);
    loop {
        match gw.replays.claim(&scoped, hash, Instant::now()) {
            Claim::Proceed => break,
            Claim::Replay(stored) => return replayed(stored),
            Claim::Mismatch => {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "Idempotency-Key `{key}` was used with a different body; use a new key \
                         for a new request"
                    ),
                )
            }
            Claim::Wait(_) if Instant::now() >= deadline => {
                return retry_after(
                    problem(
                        StatusCode::CONFLICT,
                        format!(
                            "a request with Idempotency-Key `{key}` is still in progress: retry \
                             once it is answered"
                        ),
                    ),
                    1,
                )
            }
            // Bounded waits: a finish between the claim and the wait is
            // seen by the next claim.
            Claim::Wait(done) => {
                let _ = tokio::time::timeout(Duration::from_millis(100), done.notified()).await;
            }
        }
    }
    // Run to the end whatever the client does (it may hang up while
    // waiting for Kafka): the key's answer must be recorded, or the key
    // released, or retries with it would wait for an answer never given.
    let task = {
        let gw = gw.clone();
        let rule = rule.cloned();
        let (instance, topic) = (instance.to_string(), topic.to_string());
        tokio::spawn(async move {
            // Should this task end without finishing (a panic), the key is
            // released rather than left in progress.
            let mut guard = Unfinished {
                gw: gw.clone(),
                key: Some(scoped.clone()),
            };
            let resp = accept(&gw, rule.as_ref(), &instance, &topic, wait, &bytes).await;
            // Kept when events were stored (a retry must not store them
            // again), whatever the answer; forgotten otherwise.
            let stored = resp.extensions().get::<EventsStored>().is_some();
            let (parts, body) = resp.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            gw.replays.finish(
                &scoped,
                stored.then(|| Stored {
                    status: parts.status.as_u16(),
                    content_type: parts
                        .headers
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("application/json")
                        .to_string(),
                    body: body.to_vec(),
                }),
                Instant::now(),
            );
            guard.key = None;
            Response::from_parts(parts, Body::from(body))
        })
    };
    task.await.unwrap_or_else(|_| {
        problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request failed inside the gateway; retry with the same Idempotency-Key",
        )
    })
}

/// Releases an idempotency key whose request ended without an answer.
struct Unfinished {
    gw: Arc<Gateway>,
    key: Option<String>,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.gw.replays.finish(&k, None, Instant::now());
        }
    }
}

/// On an answer: the events were stored (so a retry must get this answer
/// and store nothing).
#[derive(Debug, Clone, Copy)]
struct EventsStored;

/// An answer given before, again.
fn replayed(s: Stored) -> Response {
    let mut r = Response::new(Body::from(s.body));
    *r.status_mut() = StatusCode::from_u16(s.status).unwrap_or(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(&s.content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    // Kept because its events were stored: not a refusal.
    r.extensions_mut().insert(EventsStored);
    r
}

/// Parse the body into records, check the rate and the link, store them
/// (then, with `wait`, wait for Kafka): the part of a request that writes.
async fn accept(
    gw: &Gateway,
    rule: Option<&crate::TokenRule>,
    instance: &str,
    topic: &str,
    wait: bool,
    bytes: &[u8],
) -> Response {
    let inst = &gw.cfg.instances[instance];
    let lane = &gw.lanes[instance];
    let topic_rule = &inst.topics[topic];
    // A topic with schemas: resolved (once) before any event is taken.
    let codec = gw.codecs.get(instance).and_then(|t| t.get(topic));
    let prepared = match codec {
        Some(c) => match c.prepared(topic).await {
            Ok(p) => Some(p),
            Err(why) => {
                return retry_after(
                    problem(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "instance `{instance}`, topic `{topic}`: its schema cannot be read \
                             ({why}); events are not accepted until it can: retry later"
                        ),
                    ),
                    5,
                )
            }
        },
        None => None,
    };
    let mut records = match request::records_with(
        bytes,
        topic,
        topic_rule,
        gw.cfg.max_events_per_batch,
        prepared.as_ref().map(|p| p as &dyn request::Codec),
    ) {
        Ok(r) => r,
        Err(request::Refused::Bad(e)) => return problem(StatusCode::BAD_REQUEST, e.0),
        Err(request::Refused::Unfit(why)) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{why} (topic `{topic}`'s schema); nothing was accepted: fix the event"),
            )
        }
    };
    if inst.fallback == Fallback::None {
        if let Link::Down(why) = lane.probe.settled(inst.send_timeout).await {
            return retry_after(
                problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "instance `{instance}`: Kafka is unreachable ({why}); this instance \
                         takes no events while it is (fallback = \"none\"): retry later"
                    ),
                ),
                (crate::probe::PROBE_INTERVAL.as_secs()).max(1),
            );
        }
    }
    if let Some((r, rate)) = rule.and_then(|r| r.rate.map(|rate| (r, rate))) {
        if let Err(wait) = gw
            .limiter
            .take(&r.name, records.len(), rate, Instant::now())
        {
            return retry_after(
                problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "token `{}` is over its rate limit ({} events per second, burst {}): \
                         retry after {} ms, or ask for a higher limit",
                        r.name,
                        rate.0,
                        rate.1,
                        wait.as_millis()
                    ),
                ),
                wait.as_secs_f64().ceil() as u64,
            );
        }
    }
    // The event's time is when the gateway accepted it, not when it
    // reached Kafka (which may be after an outage).
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for r in &mut records {
        r.timestamp = Some(now_ms);
    }
    let n = records.len() as u64;
    if wait {
        return match lane.spool.append_batch_watched(&records).await {
            Ok((seqs, watches)) => {
                gw.metrics.accepted(instance, topic, n);
                let ids: Vec<String> = seqs.map(|s| format!("{}:{s}", lane.spool_id)).collect();
                let mut r = delivered(instance, inst.send_timeout, ids, watches).await;
                r.extensions_mut().insert(EventsStored);
                r
            }
            Err(e) => refused(instance, e),
        };
    }
    match lane.spool.append_batch(&records).await {
        Ok(seqs) => {
            gw.metrics.accepted(instance, topic, n);
            let ids: Vec<String> = seqs.map(|s| format!("{}:{s}", lane.spool_id)).collect();
            let mut r = json(StatusCode::ACCEPTED, serde_json::json!({ "ids": ids }));
            r.extensions_mut().insert(EventsStored);
            r
        }
        Err(e) => refused(instance, e),
    }
}

/// The answer to an append the spool refused.
fn refused(instance: &str, e: SpoolError) -> Response {
    match e {
        e @ (SpoolError::Full { .. } | SpoolError::DiskFull { .. }) => retry_after(
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("instance `{instance}`: {e}"),
            ),
            5,
        ),
        SpoolError::Invalid(why) => problem(StatusCode::BAD_REQUEST, why),
        e => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("instance `{instance}`: the events were not stored: {e}"),
        ),
    }
}

/// `wait=true`: 200 with where Kafka put each event, once all are
/// acknowledged; 504 if `send_timeout_ms` passes first (the events stay in
/// the spool and are still delivered); 422 if Kafka refused one for good
/// (it is a dead letter).
async fn delivered(
    instance: &str,
    timeout: Duration,
    ids: Vec<String>,
    watches: Vec<tokio::sync::oneshot::Receiver<herald_spool::Delivery>>,
) -> Response {
    let all = async {
        let mut out = Vec::with_capacity(watches.len());
        for w in watches {
            out.push(w.await);
        }
        out
    };
    let Ok(outcomes) = tokio::time::timeout(timeout, all).await else {
        return problem(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "Kafka (instance `{instance}`) did not acknowledge within send_timeout_ms ({} ms); \
                 the events are stored in the gateway's spool and will still be delivered \
                 (ids: {}). Do not resend them",
                timeout.as_millis(),
                ids.join(", ")
            ),
        );
    };
    let mut events = Vec::with_capacity(ids.len());
    for (id, o) in ids.iter().zip(outcomes) {
        match o {
            Ok(Ok(md)) => events.push(serde_json::json!({
                "id": id, "partition": md.partition, "offset": md.offset, "timestamp": md.timestamp,
            })),
            Ok(Err(why)) => {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("event {id} was refused by Kafka and will not be delivered: {why}"),
                )
            }
            Err(_) => {
                return problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "instance `{instance}`: forwarding stopped before event {id} was \
                         acknowledged; it is stored and will be delivered after a restart"
                    ),
                )
            }
        }
    }
    json(StatusCode::OK, serde_json::json!({ "events": events }))
}
