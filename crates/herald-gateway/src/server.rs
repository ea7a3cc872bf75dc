//! The HTTP server: the request path is socket → hyper (`listener.rs`) →
//! axum's router → the publish handler (`publish.rs`: auth, instance and
//! topic, body within its limits, records, rate, link) → the instance's
//! spool (durable on return) → 202 with the events' ids; the spool
//! forwards to Kafka. This file holds the shared state, the read-only
//! endpoints and the start and stop. Errors are RFC 9457
//! `application/problem+json` whose `detail` says what to do.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use herald_spool::{Spool, SpoolConfig};

use crate::config::GatewayConfig;
use crate::metrics::{Metrics, SpoolFigures};
use crate::probe::{Link, Probe};
use crate::problem::{json, problem, retry_after, Failure};
use crate::ratelimit::Limiter;
use crate::replay::Replays;

/// An instance's spool, the id its records carry, and its probe.
pub(crate) struct Lane {
    pub spool: Spool,
    pub spool_id: String,
    pub probe: Probe,
}

pub(crate) struct Gateway {
    pub cfg: GatewayConfig,
    pub lanes: BTreeMap<String, Lane>,
    pub replays: Replays,
    pub metrics: Arc<Metrics>,
    pub limiter: Limiter,
    /// Set on SIGTERM: new publishes get 503 while the rest finishes.
    pub draining: AtomicBool,
    /// The topics with schemas, by instance and topic (looked up by `&str`:
    /// no allocation per request).
    pub codecs: BTreeMap<String, BTreeMap<String, crate::codec::TopicCodec>>,
    /// The status page's last dead letters and failed requests.
    pub recent: Arc<crate::status::Recent>,
    /// The status page's rates (sampled every second).
    pub rates: crate::status::Rates,
    pub started: Instant,
}

impl Gateway {
    /// The token's rule, or why it is refused (a 401). `Ok(None)`: no
    /// tokens are configured.
    pub fn authorize(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<&crate::TokenRule>, &'static str> {
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
    pub fn allowed(&self, rule: Option<&crate::TokenRule>) -> Vec<String> {
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

/// `GET /v1/instances`: the instances and topics the caller may use, and
/// each instance's state: whether Kafka answers (and if not, why), and its
/// spool (backlog, oldest waiting event, whether forwarding has stopped).
async fn instances(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let rule = match gw.authorize(&headers) {
        Ok(r) => r,
        Err(why) => return problem(StatusCode::UNAUTHORIZED, why),
    };
    let now = now_ms();
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
        let (state, error) = match lane.probe.link() {
            Link::Unknown => ("unknown", None),
            Link::Up => ("connected", None),
            Link::Down(why) => ("unreachable", Some(why)),
        };
        out.push(serde_json::json!({
            "name": name,
            "topics": topics,
            "bootstrap_servers": inst.producer.bootstrap_servers,
            "state": state,
            "error": error,
            "fallback": match inst.fallback { crate::Fallback::Spool => "spool", crate::Fallback::None => "none" },
            "send_timeout_ms": inst.send_timeout.as_millis() as u64,
            "spool": {
                "backlog_records": s.backlog_records,
                "disk_bytes": s.disk_bytes,
                "oldest_age_ms": s.oldest_timestamp_ms.map(|t| (now - t).max(0)),
                "delivered": s.delivered,
                "dead_letters": s.dead_letters,
                "forwarding_halted": lane.spool.forwarding_halted(),
            },
        }));
    }
    json(StatusCode::OK, serde_json::json!({ "instances": out }))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `GET /readyz`: 200 when every instance's spool can take events (not
/// full) and the gateway is not shutting down; 503 saying which is not.
async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    if gw.draining.load(Ordering::Relaxed) {
        return retry_after(
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway is shutting down",
            ),
            1,
        );
    }
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
    let now = now_ms();
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
                    oldest_age_ms: s.oldest_timestamp_ms.map_or(0, |t| (now - t).max(0) as u64),
                    connected: l.probe.link() == Link::Up,
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

/// Count every answer and how long it took; one log line per failed
/// request (method, path, status, and the detail the client was given:
/// never a header, so never a token).
async fn measured(
    State(gw): State<Arc<Gateway>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    // The URI is reference-counted bytes: kept for the log line without a
    // copy of the path per request.
    let uri = req.uri().clone();
    let resp = next.run(req).await;
    let status = resp.status();
    gw.metrics.answered(status.as_u16(), start.elapsed());
    if status.is_client_error() || status.is_server_error() {
        let path = uri.path();
        let detail = resp
            .extensions()
            .get::<Failure>()
            .map_or("", |f| f.0.as_str());
        gw.recent.error(crate::status::ErrorLine {
            at_ms: now_ms(),
            status: status.as_u16(),
            method: method.to_string(),
            path: path.to_string(),
            detail: detail.to_string(),
        });
        if status.is_server_error() {
            tracing::warn!(%method, ?path, status = status.as_u16(), ?detail, "request failed");
        } else {
            tracing::info!(%method, ?path, status = status.as_u16(), ?detail, "request refused");
        }
    }
    resp
}

async fn fallback() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "no such endpoint: publish with POST /v1/instances/{instance}/topics/{topic}/events \
         (GET /openapi.json describes the API)",
    )
}

/// `GET /`: the status page, for loopback clients or a token with the
/// status permission.
async fn status_page(State(gw): State<Arc<Gateway>>, req: axum::extract::Request) -> Response {
    let peer = req
        .extensions()
        .get::<crate::listener::ClientAddr>()
        .map(|c| c.0.ip());
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let proxied = ["forwarded", "x-forwarded-for", "x-real-ip", "via"]
        .iter()
        .any(|h| req.headers().contains_key(*h));
    if let Err(r) = crate::status::may_view(peer, proxied, authorization, &gw.cfg.tokens) {
        let mut resp = problem(r.status, r.detail);
        if r.challenge {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"herald gateway status\""),
            );
        }
        return resp;
    }
    let page = crate::status::render(&crate::status::view(&gw, now_ms()));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}

/// The handler of each documented route: the router is built from
/// `openapi::ROUTES`, so every route served is documented.
fn handler(route: &crate::openapi::Route) -> axum::routing::MethodRouter<Arc<Gateway>> {
    match (route.method, route.path) {
        ("post", crate::openapi::PUBLISH) => post(crate::publish::publish),
        ("get", "/v1/instances") => get(instances),
        ("get", "/healthz") => get(|| async { "ok\n" }),
        ("get", "/readyz") => get(readyz),
        ("get", "/metrics") => get(metrics),
        ("get", "/") => get(status_page),
        ("get", "/openapi.json") => {
            get(|| async { json(StatusCode::OK, crate::openapi::document()) })
        }
        (m, p) => unreachable!("documented route {m} {p} has no handler"),
    }
}

fn router(gw: Arc<Gateway>) -> Router {
    let mut r = Router::new();
    for route in crate::openapi::ROUTES {
        r = r.route(route.path, handler(route));
    }
    r.fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(gw.clone(), measured))
        .with_state(gw)
}

/// Open every instance's spool (in `spool.dir/NAME`) and start its probe,
/// serve on `listener` until `shutdown` resolves; then answer new publishes
/// with 503, let requests in progress finish, give Kafka up to
/// `shutdown_grace` to take the backlog, and close the spools (what Kafka
/// has not acknowledged stays on disk for the next start).
pub async fn serve(
    cfg: GatewayConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let metrics = Arc::new(Metrics::new(cfg.instances.iter().map(|(name, inst)| {
        (
            name.as_str(),
            inst.topics.keys().map(String::as_str).collect(),
        )
    })));
    let recent = Arc::new(crate::status::Recent::default());
    let mut lanes = BTreeMap::new();
    for (name, inst) in &cfg.instances {
        let dir = cfg.spool_dir.join(name);
        // Every settled event counted by topic; a delivered one's age
        // (accept time = its timestamp) into the delivery histogram.
        // A dead letter also goes to the status page, with its reason.
        let observer = {
            let (metrics, name, recent) = (metrics.clone(), name.clone(), recent.clone());
            herald_spool::SettleObserver(Arc::new(move |s: herald_spool::Settled<'_>| {
                let age = s
                    .timestamp_ms
                    .map(|t| Duration::from_millis(now_ms().saturating_sub(t).max(0) as u64));
                metrics.settled(&name, s.topic.unwrap_or(""), s.delivered, age);
                if !s.delivered {
                    recent.dead_letter(crate::status::DeadLetter {
                        at_ms: now_ms(),
                        instance: name.clone(),
                        topic: s.topic.unwrap_or("?").to_string(),
                        reason: s.reason.unwrap_or("unknown").to_string(),
                    });
                }
            }))
        };
        let spool_cfg = SpoolConfig {
            max_bytes: cfg.spool_max_bytes,
            on_settled: Some(observer),
            ..SpoolConfig::default()
        };
        let (spool, _) = Spool::open(&dir, spool_cfg, inst.producer.clone())
            .map_err(|e| format!("instance `{name}`: {e}"))?;
        let spool_id = herald_spool::spool_id(&dir).map_err(|e| e.to_string())?;
        let probe = Probe::start(
            &inst.producer,
            inst.send_timeout.min(Duration::from_secs(10)),
        )
        .map_err(|e| format!("instance `{name}`: {e}"))?;
        lanes.insert(
            name.clone(),
            Lane {
                spool,
                spool_id,
                probe,
            },
        );
    }
    let mut codecs = BTreeMap::new();
    for (name, inst) in &cfg.instances {
        let Some(registry) = &inst.registry else {
            continue;
        };
        let client = herald_schema::RegistryClient::new(registry.clone())
            .map_err(|e| format!("instance `{name}`: {e}"))?;
        for (topic, rule) in &inst.topics {
            if rule.value_schema.is_some() || rule.key_schema.is_some() {
                codecs
                    .entry(name.clone())
                    .or_insert_with(BTreeMap::new)
                    .insert(
                        topic.clone(),
                        crate::codec::TopicCodec::new(
                            client.clone(),
                            rule.value_schema.clone(),
                            rule.key_schema.clone(),
                        ),
                    );
            }
        }
    }
    let grace = cfg.shutdown_grace;
    let limits = crate::listener::Limits {
        header_timeout: cfg.header_timeout,
        max_connections: cfg.max_connections,
    };
    // Idempotency keys: 24 hours, at most 100,000 answers and 64 MiB.
    let gw = Arc::new(Gateway {
        cfg,
        lanes,
        replays: Replays::new(Duration::from_secs(24 * 3600), 100_000, 64 << 20),
        metrics,
        limiter: Limiter::default(),
        draining: AtomicBool::new(false),
        codecs,
        recent,
        rates: crate::status::Rates::default(),
        started: Instant::now(),
    });
    // The status page's rates: the counters sampled every second.
    let sampler = {
        let gw = Arc::downgrade(&gw);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(gw) = gw.upgrade() else { break };
                let totals = gw
                    .metrics
                    .topic_totals()
                    .into_iter()
                    .map(|(_, _, c)| c)
                    .collect();
                gw.rates.sample(Instant::now(), totals);
            }
        })
    };
    let deadline = {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let flag = gw.clone();
        let signal = async move {
            shutdown.await;
            flag.draining.store(true, Ordering::Relaxed);
            let _ = tx.send(tokio::time::Instant::now() + grace);
        };
        // Up to 1 s (and a tenth of the grace period at most) answering
        // 503 before the listener closes.
        let lame_duck = (grace / 10).min(Duration::from_secs(1));
        crate::listener::serve(
            listener,
            router(gw.clone()),
            limits,
            signal,
            (lame_duck, grace),
        )
        .await;
        rx.await.unwrap_or_else(|_| tokio::time::Instant::now())
    };
    sampler.abort();
    // What is left of the grace period: Kafka may take the backlog.
    for lane in gw.lanes.values() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        lane.spool.drain(left).await;
    }
    // Every spool closed, whatever another's close said. The forwarder's
    // producer takes up to 1.25 s to give up on what is in flight.
    let mut errors = Vec::new();
    for (name, lane) in &gw.lanes {
        if let Err(e) = lane.spool.close(Duration::from_secs(5)).await {
            errors.push(format!("instance `{name}`: {e}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}
