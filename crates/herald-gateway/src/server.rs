//! The HTTP server: the request path is socket → axum → auth → the
//! instance and topic → the body read within its limit → records
//! (`request.rs`) → the instance's spool (durable on return) → 202 with the
//! events' ids; the spool forwards to Kafka. Errors are RFC 9457
//! `application/problem+json` whose `detail` says what to do.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use herald_spool::{Spool, SpoolConfig, SpoolError};

use crate::config::GatewayConfig;
use crate::metrics::{Metrics, SpoolFigures};
use crate::replay::{Claim, Replays, Stored};
use crate::request;

/// An instance's spool and the id its records carry.
struct Lane {
    spool: Spool,
    spool_id: String,
}

struct Gateway {
    cfg: GatewayConfig,
    lanes: BTreeMap<String, Lane>,
    replays: Replays,
    metrics: Metrics,
}

/// An RFC 9457 problem.
fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or(""),
        "status": status.as_u16(),
        "detail": detail.into(),
    });
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    r
}

fn retry_after(mut r: Response, secs: u32) -> Response {
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

impl Gateway {
    /// The token's rule, or why it is refused (a 401). `Ok(None)`: no
    /// tokens are configured.
    fn authorize(&self, headers: &HeaderMap) -> Result<Option<&crate::TokenRule>, &'static str> {
        if self.cfg.tokens.is_empty() {
            return Ok(None);
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = presented else {
            return Err(
                "no bearer token: send `Authorization: Bearer TOKEN` (tokens are made \
                        with `herald gateway token`)",
            );
        };
        let digest = crate::token::digest(token);
        self.cfg
            .tokens
            .iter()
            .find(|t| t.sha256 == digest)
            .map(Some)
            .ok_or(
                "unknown bearer token: check the token, or ask the gateway's administrator \
                    for one",
            )
    }

    /// The `instance/topic` pairs `rule` may publish to.
    fn allowed(&self, rule: Option<&crate::TokenRule>) -> Vec<String> {
        let mut out = Vec::new();
        for (i, inst) in &self.cfg.instances {
            for t in inst.topics.keys() {
                if rule.is_none_or(|r| r.allows(i, t)) {
                    out.push(format!("{i}/{t}"));
                }
            }
        }
        out
    }
}

async fn publish(
    State(gw): State<Arc<Gateway>>,
    Path((instance, topic)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
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
    let Some(inst) = gw.cfg.instances.get(&instance) else {
        return problem(
            StatusCode::NOT_FOUND,
            format!(
                "no instance `{instance}`; this token may publish to: {}",
                gw.allowed(rule).join(", ")
            ),
        );
    };
    if !inst.topics.contains_key(&topic) {
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
        if !r.allows(&instance, &topic) {
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
    let json = headers
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
    if !json {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the events as JSON with `Content-Type: application/json`",
        );
    }
    let limit = gw.cfg.max_body_bytes;
    let bytes: Bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is over {limit} bytes (limits.max_body_bytes): send fewer events per \
                     request"
                ),
            )
        }
    };
    let Some(key) = headers.get("idempotency-key") else {
        return accept(&gw, &instance, &topic, wait, &bytes).await;
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
            // Bounded waits: a finish between the claim and the wait is
            // seen by the next claim.
            Claim::Wait(done) => {
                let _ = tokio::time::timeout(Duration::from_millis(100), done.notified()).await;
            }
        }
    }
    let resp = accept(&gw, &instance, &topic, wait, &bytes).await;
    let (parts, body) = resp.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    // Kept only when events were stored (a retry must not store them again).
    let keep = matches!(parts.status.as_u16(), 200 | 202 | 422 | 504);
    gw.replays.finish(
        &scoped,
        keep.then(|| Stored {
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
    Response::from_parts(parts, Body::from(body))
}

/// An answer given before, again.
fn replayed(s: Stored) -> Response {
    let mut r = Response::new(Body::from(s.body));
    *r.status_mut() = StatusCode::from_u16(s.status).unwrap_or(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(&s.content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    r
}

/// Parse the body into records and store them (then, with `wait`, wait for
/// Kafka): the part of a request that writes.
async fn accept(gw: &Gateway, instance: &str, topic: &str, wait: bool, bytes: &[u8]) -> Response {
    let inst = &gw.cfg.instances[instance];
    let lane = &gw.lanes[instance];
    let topic_rule = &inst.topics[topic];
    let records = match request::records(bytes, topic, topic_rule, gw.cfg.max_events_per_batch) {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e.0),
    };
    let n = records.len() as u64;
    if wait {
        return match lane.spool.append_batch_watched(&records).await {
            Ok((seqs, watches)) => {
                gw.metrics.accepted(instance, topic, n);
                let ids: Vec<String> = seqs.map(|s| format!("{}:{s}", lane.spool_id)).collect();
                delivered(instance, inst.send_timeout, ids, watches).await
            }
            Err(e) => refused(instance, e),
        };
    }
    match lane.spool.append_batch(&records).await {
        Ok(seqs) => {
            gw.metrics.accepted(instance, topic, n);
            let ids: Vec<String> = seqs.map(|s| format!("{}:{s}", lane.spool_id)).collect();
            (
                StatusCode::ACCEPTED,
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::json!({ "ids": ids }).to_string(),
            )
                .into_response()
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
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "events": events }).to_string(),
    )
        .into_response()
}

/// `GET /v1/instances`: the instances and topics the caller may use, and
/// each instance's spool (backlog, whether forwarding has stopped).
async fn instances(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let rule = match gw.authorize(&headers) {
        Ok(r) => r,
        Err(why) => return problem(StatusCode::UNAUTHORIZED, why),
    };
    let mut out = Vec::new();
    for (name, inst) in &gw.cfg.instances {
        let topics: Vec<&String> = inst
            .topics
            .keys()
            .filter(|t| rule.is_none_or(|r| r.allows(name, t)))
            .collect();
        if topics.is_empty() {
            continue;
        }
        let lane = &gw.lanes[name];
        let s = lane.spool.stats();
        out.push(serde_json::json!({
            "name": name,
            "topics": topics,
            "fallback": match inst.fallback { crate::Fallback::Spool => "spool", crate::Fallback::None => "none" },
            "send_timeout_ms": inst.send_timeout.as_millis() as u64,
            "spool": {
                "backlog_records": s.backlog_records,
                "disk_bytes": s.disk_bytes,
                "delivered": s.delivered,
                "dead_letters": s.dead_letters,
                "forwarding_halted": lane.spool.forwarding_halted(),
            },
        }));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "instances": out }).to_string(),
    )
        .into_response()
}

/// `GET /readyz`: 200 when every instance's spool can take events (not
/// full); 503 naming the ones that cannot.
async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let full: Vec<String> = gw
        .lanes
        .iter()
        .filter(|(_, l)| l.spool.stats().disk_bytes >= gw.cfg.spool_max_bytes)
        .map(|(n, _)| n.clone())
        .collect();
    if full.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        retry_after(
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the spool of instance(s) {} is full (spool.max_bytes)",
                    full.join(", ")
                ),
            ),
            5,
        )
    }
}

/// `GET /metrics`: Prometheus's text format.
async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    let spools: Vec<(String, SpoolFigures)> = gw
        .lanes
        .iter()
        .map(|(name, l)| {
            let s = l.spool.stats();
            (
                name.clone(),
                SpoolFigures {
                    backlog_records: s.backlog_records,
                    disk_bytes: s.disk_bytes,
                    delivered: s.delivered,
                    dead_letters: s.dead_letters,
                },
            )
        })
        .collect();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        gw.metrics.render(&spools),
    )
        .into_response()
}

/// Count every answer and how long it took.
async fn measured(
    State(gw): State<Arc<Gateway>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let start = Instant::now();
    let resp = next.run(req).await;
    gw.metrics.answered(resp.status().as_u16(), start.elapsed());
    resp
}

async fn fallback() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "no such endpoint: publish with POST /v1/instances/{instance}/topics/{topic}/events",
    )
}

/// Open every instance's spool (in `spool.dir/NAME`), serve on `listener`
/// until `shutdown` resolves, then close the spools (what Kafka has not
/// acknowledged stays on disk for the next start).
pub async fn serve(
    cfg: GatewayConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let mut lanes = BTreeMap::new();
    for (name, inst) in &cfg.instances {
        let dir = cfg.spool_dir.join(name);
        let spool_cfg = SpoolConfig {
            max_bytes: cfg.spool_max_bytes,
            ..SpoolConfig::default()
        };
        let (spool, _) = Spool::open(&dir, spool_cfg, inst.producer.clone())
            .map_err(|e| format!("instance `{name}`: {e}"))?;
        let spool_id = herald_spool::spool_id(&dir).map_err(|e| e.to_string())?;
        lanes.insert(name.clone(), Lane { spool, spool_id });
    }
    let grace = cfg.shutdown_grace;
    // Idempotency keys: 24 hours, at most 100,000 remembered.
    let gw = Arc::new(Gateway {
        cfg,
        lanes,
        replays: Replays::new(Duration::from_secs(24 * 3600), 100_000),
        metrics: Metrics::default(),
    });
    let app = Router::new()
        .route(
            "/v1/instances/{instance}/topics/{topic}/events",
            post(publish),
        )
        .route("/v1/instances", get(instances))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(gw.clone(), measured))
        .with_state(gw.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("serving: {e}"))?;
    for (name, lane) in &gw.lanes {
        if let Err(e) = lane.spool.close(grace.max(Duration::from_secs(1))).await {
            return Err(format!("instance `{name}`: {e}"));
        }
    }
    Ok(())
}
