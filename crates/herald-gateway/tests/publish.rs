//! The gateway against Tansu, with requests written by hand as a new user's
//! curl would send them, and records read back with librdkafka.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use herald_gateway::{token, GatewayConfig};
use herald_test_support::http::HttpAnswer;
use herald_test_support::Tansu;
use serde_json::Value;

type Answer = HttpAnswer;

/// One HTTP/1.1 request on its own connection.
async fn http(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    request(addr, "POST", path, headers, body).await
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let (method, path, body) = (method.to_string(), path.to_string(), body.to_vec());
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let a = tokio::task::spawn_blocking(move || {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        herald_test_support::http::request(addr, &method, &path, &h, &body)
    })
    .await
    .unwrap()
    .expect("the gateway answers");
    a
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A record read back: key, JSON value, partition, headers.
type Got = (String, Value, i32, Vec<(String, String)>);
/// A request that must fail: path, headers, body, status, what `detail` says.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_accepted_delivered_and_every_mistake_gets_its_status() {
    let tansu = Tansu::start();
    tansu.create_topic("orders", 3);
    tansu.create_topic("status", 1);
    let dir = tempfile::tempdir().unwrap();
    let (orders_token, status_token) = (token::new_token(), token::new_token());
    let text = format!(
        r#"
[spool]
dir = "{}"

[instances.main]
"bootstrap.servers" = "{}"
"linger.ms" = 0

[instances.main.topics.orders]
key = "/customer/id"
headers = {{ source = "gateway" }}

[instances.main.topics.status]

[instances.down]
"bootstrap.servers" = "127.0.0.1:1"
send_timeout_ms = 700

[instances.down.topics.orders]

[[tokens]]
name = "billing"
sha256 = "{}"
allow = ["main/orders", "down/orders"]

[[tokens]]
name = "monitor"
sha256 = "{}"
allow = ["main/status"]
"#,
        dir.path().display(),
        tansu.bootstrap(),
        token::sha256_hex(&orders_token),
        token::sha256_hex(&status_token),
    );
    let mut cfg = GatewayConfig::parse("gw.toml", &text).unwrap();
    cfg.max_body_bytes = 4096;
    cfg.shutdown_grace = Duration::from_secs(2);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(herald_gateway::serve(cfg, listener, async {
        let _ = stopped.await;
    }));
    let bearer = format!("Bearer {orders_token}");
    let auth = ("Authorization", bearer.as_str());
    let path = "/v1/instances/main/topics/orders/events";

    // One event (its key from the topic's pointer), then a batch of three.
    let a = http(
        addr,
        path,
        &[auth, JSON],
        br#"{"value": {"customer": {"id": "c-42"}, "total": 12.5}, "headers": {"trace": "t1"}}"#,
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.json()["ids"].as_array().unwrap().len(), 1);
    let batch = br#"{"events": [
        {"value": {"customer": {"id": "c-1"}, "n": 1}},
        {"value": {"customer": {"id": "c-2"}, "n": 2}, "key": "explicit"},
        {"value": [1, 2, 3], "key": "k3"}
    ]}"#;
    let a = http(addr, path, &[auth, JSON], batch).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let ids: Vec<String> = a.json()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);

    // Read back with librdkafka: value as sent, key, headers, partition.
    let read = tokio::task::spawn_blocking({
        let b = tansu.bootstrap();
        move || herald_test_support::read_all(&b, "orders", 3, 4, Duration::from_secs(30))
    })
    .await
    .unwrap();
    let mut by_key: Vec<Got> = read
        .iter()
        .map(|r| {
            (
                String::from_utf8(r.key.clone().unwrap()).unwrap(),
                serde_json::from_slice(r.value.as_ref().unwrap()).unwrap(),
                r.partition,
                r.headers
                    .iter()
                    .map(|(k, v)| (k.clone(), String::from_utf8(v.clone().unwrap()).unwrap()))
                    .collect(),
            )
        })
        .collect();
    by_key.sort_by(|a, b| a.0.cmp(&b.0));
    let keys: Vec<&str> = by_key.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(keys, ["c-1", "c-42", "explicit", "k3"]);
    for (key, value, partition, headers) in &by_key {
        assert_eq!(
            *partition,
            herald::partitioner::partition_for_key(key.as_bytes(), 3),
            "{key}: the partition murmur2 gives"
        );
        assert_eq!(headers[0], ("source".to_string(), "gateway".to_string()));
        assert!(headers.iter().any(|(k, _)| k == "herald.spool.id"));
        if key == "c-42" {
            assert_eq!(
                value,
                &serde_json::json!({"customer": {"id": "c-42"}, "total": 12.5})
            );
            assert!(headers.contains(&("trace".to_string(), "t1".to_string())));
        }
    }
    let explicit = by_key.iter().find(|r| r.0 == "explicit").unwrap();
    let id = &explicit
        .3
        .iter()
        .find(|(k, _)| k == "herald.spool.id")
        .unwrap()
        .1;
    assert_eq!(id, &ids[1], "the id answered is the id the record carries");

    // Every mistake, with its status and what to do.
    let cases: Vec<Case> = vec![
        (path, vec![JSON], b"{}".to_vec(), 401, "no bearer token"),
        (
            path,
            vec![("Authorization", "Bearer nope"), JSON],
            b"{}".to_vec(),
            401,
            "unknown bearer token",
        ),
        (
            "/v1/instances/main/topics/status/events",
            vec![auth, JSON],
            b"{\"value\": 1}".to_vec(),
            403,
            "token `billing` may not publish to main/status; it may publish to: down/orders, main/orders",
        ),
        (
            "/v1/instances/other/topics/orders/events",
            vec![auth, JSON],
            b"{}".to_vec(),
            404,
            "no instance `other`; this token may publish to: down/orders, main/orders",
        ),
        (
            "/v1/instances/main/topics/nope/events",
            vec![auth, JSON],
            b"{}".to_vec(),
            404,
            "has no topic `nope`",
        ),
        (
            path,
            vec![auth, ("Content-Type", "text/plain")],
            b"{}".to_vec(),
            415,
            "Content-Type: application/json",
        ),
        (
            path,
            vec![auth, JSON],
            vec![b' '; 5000],
            413,
            "over 4096 bytes (limits.max_body_bytes)",
        ),
        (
            path,
            vec![auth, JSON],
            b"{\"value\": 1,\n \"key\": }".to_vec(),
            400,
            "line 2, column 9",
        ),
        (
            path,
            vec![auth, JSON],
            b"{\"value\": 1, \"headers\": {\"a\": 2}}".to_vec(),
            400,
            "headers.a: a header value is a string",
        ),
        (
            "/v2/nothing",
            vec![auth, JSON],
            b"{}".to_vec(),
            404,
            "POST /v1/instances/{instance}/topics/{topic}/events",
        ),
    ];
    for (p, headers, body, status, says) in cases {
        let a = http(addr, p, &headers, &body).await;
        assert_eq!(a.status, status, "{p}: {}", a.body);
        let detail = a.detail();
        assert!(detail.contains(says), "{p} {status}: {detail}");
        assert!(!a.body.contains(&orders_token), "a token never comes back");
    }
    // wait=true: 200 once Kafka acknowledged, with where librdkafka finds it.
    let before = now_ms();
    let a = http(
        addr,
        &format!("{path}?wait=true"),
        &[auth, JSON],
        br#"{"value": {"customer": {"id": "w-1"}}}"#,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let e = &a.json()["events"][0];
    let (partition, offset) = (
        e["partition"].as_i64().unwrap() as i32,
        e["offset"].as_i64().unwrap(),
    );
    let got = tokio::task::spawn_blocking({
        let b = tansu.bootstrap();
        move || {
            herald_test_support::read_partition(&b, "orders", partition, Duration::from_secs(30))
        }
    })
    .await
    .unwrap();
    let at = got
        .iter()
        .find(|r| r.offset == offset)
        .expect("the record at the offset answered");
    assert_eq!(at.key.as_deref(), Some(&b"w-1"[..]));
    // Its time is when the gateway accepted it (CreateTime), as answered.
    let ts = at.timestamp.expect("a timestamp");
    assert_eq!(ts, e["timestamp"].as_i64().unwrap());
    assert!((before..=now_ms()).contains(&ts), "{ts}");
    // Kafka unreachable: 504 after send_timeout_ms, the event kept.
    let started = Instant::now();
    let a = http(
        addr,
        "/v1/instances/down/topics/orders/events?wait=true",
        &[auth, JSON],
        b"{\"value\": 1}",
    )
    .await;
    assert_eq!(a.status, 504, "{}", a.body);
    assert!(started.elapsed() >= Duration::from_millis(700));
    let d = a.detail();
    assert!(
        d.contains("send_timeout_ms (700 ms)") && d.contains("will still be delivered"),
        "{d}"
    );
    let a = http(
        addr,
        &format!("{path}?wait=maybe"),
        &[auth, JSON],
        b"{\"value\": 1}",
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(a.detail().contains("wait=maybe"));

    // Idempotency-Key: the retry gets the first answer and writes nothing.
    let once = br#"{"value": {"customer": {"id": "idem"}}}"#;
    let key = ("Idempotency-Key", "7f1c2a9e-retry-1");
    let first = http(
        addr,
        "/v1/instances/main/topics/status/events",
        &[auth, JSON, key],
        once,
    )
    .await;
    assert_eq!(first.status, 403, "refusals are not remembered as answers");
    // wait=true: answered once in Kafka, so the read below sees it.
    let waited = format!("{path}?wait=true");
    let first = http(addr, &waited, &[auth, JSON, key], once).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = http(addr, &waited, &[auth, JSON, key], once).await;
    assert_eq!(
        (again.status, again.body.as_str()),
        (200, first.body.as_str())
    );
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = http(addr, &waited, &[auth, JSON, key], br#"{"value": 2}"#).await;
    assert_eq!(other.status, 422);
    assert!(other.detail().contains("different body"));
    // 4 + 1 (wait=true) + 1 (idem) in `orders` on main: idem is there once.
    let read = tokio::task::spawn_blocking({
        let b = tansu.bootstrap();
        move || herald_test_support::read_log(&b, "orders", 3, Duration::from_secs(30))
    })
    .await
    .unwrap();
    let idem = read
        .iter()
        .filter(|r| r.key.as_deref() == Some(&b"idem"[..]))
        .count();
    assert_eq!(
        (read.len(), idem),
        (6, 1),
        "the retried event is in Kafka once"
    );

    // What this token may use, with each instance's spool.
    let a = request(addr, "GET", "/v1/instances", &[auth], b"").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let j = a.json();
    let names: Vec<&str> = j["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["down", "main"]);
    assert_eq!(j["instances"][1]["topics"], serde_json::json!(["orders"]));
    assert_eq!(
        j["instances"][0]["spool"]["backlog_records"], 1,
        "the event kept for `down`"
    );
    assert_eq!(
        request(addr, "GET", "/v1/instances", &[], b"").await.status,
        401
    );
    assert_eq!(request(addr, "GET", "/healthz", &[], b"").await.status, 200);
    assert_eq!(request(addr, "GET", "/readyz", &[], b"").await.status, 200);
    let m = request(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(m.status, 200);
    for line in [
        // 1 + 3 + 1 (wait=true) + 1 (idempotent, once) on orders; 1 on down.
        "herald_gateway_events_accepted_total{instance=\"main\",topic=\"orders\"} 6",
        "herald_gateway_events_accepted_total{instance=\"down\",topic=\"orders\"} 1",
        "herald_gateway_http_requests_total{status=\"401\"} 3",
        "herald_gateway_http_requests_total{status=\"413\"} 1",
        "herald_gateway_spool_backlog_records{instance=\"down\"} 1",
        // All six on main/orders delivered: the last was answered 200 by
        // wait=true, and the forwarder settles in order, counting each
        // before it tells a waiter (no race with this read).
        "herald_gateway_events_delivered_total{instance=\"main\",topic=\"orders\"} 6",
        "herald_gateway_events_delivered_total{instance=\"down\",topic=\"orders\"} 0",
        "herald_gateway_delivery_seconds_count 6",
        "herald_gateway_requests_refused_total{instance=\"main\",topic=\"orders\",status=\"413\"} 1",
        "herald_gateway_requests_refused_total{instance=\"main\",topic=\"orders\",status=\"415\"} 1",
    ] {
        assert!(m.body.lines().any(|l| l == line), "{line} in\n{}", m.body);
    }

    // The other token publishes to its own topic.
    let bearer2 = format!("Bearer {status_token}");
    let a = http(
        addr,
        "/v1/instances/main/topics/status/events",
        &[("Authorization", bearer2.as_str()), JSON],
        b"{\"value\": {\"state\": \"up\"}}",
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.body);

    let _ = stop.send(());
    let start = Instant::now();
    server.await.unwrap().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "shutdown took {:?}",
        start.elapsed()
    );
}
