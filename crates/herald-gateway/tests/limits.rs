//! What a gateway in front of many clients must hold to: per-token rate
//! limits, `fallback = "none"` refusing while Kafka is unreachable, hostile
//! connections and bodies answered within their limits while other clients
//! are served, the OpenAPI document matching the routes, and a graceful
//! stop. Requests are written by hand on sockets, as curl would send them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::time::{Duration, Instant};

use herald_gateway::{token, GatewayConfig};
use herald_test_support::http::{request, HttpAnswer};
use herald_test_support::MockBroker;

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// A gateway on its own runtime thread; dropping the sender stops it.
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Running {
    fn start(cfg: GatewayConfig) -> Running {
        let std = StdListener::bind("127.0.0.1:0").unwrap();
        std.set_nonblocking(true).unwrap();
        let addr = std.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std).unwrap();
                herald_gateway::serve(cfg, listener, async {
                    let _ = stopped.await;
                })
                .await
            })
        });
        Running {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpAnswer {
        request(self.addr, "POST", path, headers, body).expect("the gateway answers")
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpAnswer {
        request(self.addr, "GET", path, headers, b"").expect("the gateway answers")
    }

    /// Send the stop signal without waiting.
    fn signal(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Stop it and wait; how long that took.
    fn stop(mut self) -> Duration {
        let start = Instant::now();
        self.signal();
        self.thread.take().unwrap().join().unwrap().unwrap();
        start.elapsed()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn config(dir: &std::path::Path, extra: &str) -> GatewayConfig {
    let text = format!("[spool]\ndir = \"{}\"\n{extra}", dir.display());
    GatewayConfig::parse("gw.toml", &text).unwrap_or_else(|e| panic!("{e}"))
}

/// Poll `GET /v1/instances` until `instance` has left the "unknown" state
/// (its first probe finished), within 10 s; its entry.
fn probed(gw: &Running, auth: &[(&str, &str)], instance: &str) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let j = gw.get("/v1/instances", auth).json();
        let e = j["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == instance)
            .unwrap()
            .clone();
        if e["state"] != "unknown" {
            return e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{instance} never probed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn fallback_none_refuses_while_kafka_is_unreachable_and_spool_accepts() {
    let mock = MockBroker::start();
    mock.create_topic("t", 1);
    let port = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        dir.path(),
        &format!(
            r#"
[instances.strict]
"bootstrap.servers" = "127.0.0.1:{port}"
fallback = "none"
send_timeout_ms = 3000
[instances.strict.topics.t]

[instances.lenient]
"bootstrap.servers" = "127.0.0.1:{port}"
[instances.lenient.topics.t]

[instances.up]
"bootstrap.servers" = "{}"
fallback = "none"
[instances.up.topics.t]
"#,
            mock.bootstrap()
        ),
    );
    cfg.shutdown_grace = Duration::from_secs(2);
    let gw = Running::start(cfg);
    // Refused at once the first probe has failed, and within the send
    // timeout even for the first request.
    let started = Instant::now();
    let a = gw.post(
        "/v1/instances/strict/topics/t/events",
        &[JSON],
        b"{\"value\": 1}",
    );
    assert!(
        started.elapsed() < Duration::from_millis(3000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.header("retry-after"), Some("2"));
    let d = a.detail();
    assert!(
        d.contains("instance `strict`")
            && d.contains(&format!("127.0.0.1:{port}"))
            && d.contains("fallback = \"none\""),
        "{d}"
    );
    // The same broker with the spool: accepted, kept.
    let a = gw.post(
        "/v1/instances/lenient/topics/t/events",
        &[JSON],
        b"{\"value\": 1}",
    );
    assert_eq!(a.status, 202, "{}", a.body);
    // A reachable Kafka with fallback = "none": accepted and delivered.
    let a = gw.post(
        "/v1/instances/up/topics/t/events?wait=true",
        &[JSON],
        b"{\"value\": 2}",
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(mock.log("t", 0).len(), 1);
    // The state each instance shows.
    let strict = probed(&gw, &[], "strict");
    assert_eq!(strict["state"], "unreachable");
    assert!(strict["error"]
        .as_str()
        .unwrap()
        .contains(&format!("127.0.0.1:{port}")));
    assert_eq!(probed(&gw, &[], "up")["state"], "connected");
    let lenient = probed(&gw, &[], "lenient");
    assert_eq!(lenient["spool"]["backlog_records"], 1);
    assert!(lenient["spool"]["oldest_age_ms"].as_i64().is_some());
    let m = gw.get("/metrics", &[]);
    for line in [
        "herald_gateway_kafka_connected{instance=\"strict\"} 0",
        "herald_gateway_kafka_connected{instance=\"up\"} 1",
        "herald_gateway_http_requests_total{status=\"503\"} 1",
        "herald_gateway_delivery_seconds_count 1",
    ] {
        assert!(m.body.lines().any(|l| l == line), "{line} in\n{}", m.body);
    }
    // Shutting down with a backlog that cannot drain waits out the grace
    // period (2 s here) and no more.
    let took = gw.stop();
    assert!(took < Duration::from_secs(6), "{took:?}");
}

#[test]
fn a_token_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let mock = MockBroker::start();
    mock.create_topic("t", 1);
    let dir = tempfile::tempdir().unwrap();
    let (slow, other) = (token::new_token(), token::new_token());
    let gw = Running::start(config(
        dir.path(),
        &format!(
            r#"
[instances.main]
"bootstrap.servers" = "{}"
[instances.main.topics.t]

[[tokens]]
name = "slow"
sha256 = "{}"
allow = ["main/t"]
events_per_second = 1
burst = 3

[[tokens]]
name = "other"
sha256 = "{}"
allow = ["main/t"]
"#,
            mock.bootstrap(),
            token::sha256_hex(&slow),
            token::sha256_hex(&other),
        ),
    ));
    let (b1, b2) = (format!("Bearer {slow}"), format!("Bearer {other}"));
    let path = "/v1/instances/main/topics/t/events";
    let batch = br#"{"events": [{"value": 1}, {"value": 2}, {"value": 3}]}"#;
    let a = gw.post(path, &[("Authorization", &b1), JSON], batch);
    assert_eq!(a.status, 202, "{}", a.body);
    let a = gw.post(path, &[("Authorization", &b1), JSON], b"{\"value\": 4}");
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(a.header("retry-after"), Some("1"));
    let d = a.detail();
    assert!(
        d.contains("token `slow` is over its rate limit (1 events per second, burst 3)"),
        "{d}"
    );
    for i in 0..10 {
        let a = gw.post(
            path,
            &[("Authorization", &b2), JSON],
            format!("{{\"value\": {i}}}").as_bytes(),
        );
        assert_eq!(a.status, 202, "another token is not limited: {}", a.body);
    }
    let m = gw.get("/metrics", &[]);
    assert!(m
        .body
        .lines()
        .any(|l| l == "herald_gateway_http_requests_total{status=\"429\"} 1"));
    gw.stop();
}

/// Read what the server sends until it closes the connection (or 20 s).
fn read_to_close(s: &mut TcpStream) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut raw = Vec::new();
    let closed = s.read_to_end(&mut raw).is_ok();
    (raw, closed)
}

#[test]
fn hostile_requests_are_answered_within_their_limits_and_others_are_served() {
    let mock = MockBroker::start();
    mock.create_topic("t", 1);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        dir.path(),
        &format!(
            r#"
[limits]
max_body_bytes = 4096
header_timeout_ms = 1000
body_timeout_ms = 1000
max_connections = 50

[instances.main]
"bootstrap.servers" = "{}"
[instances.main.topics.t]
"#,
            mock.bootstrap()
        ),
    );
    cfg.shutdown_grace = Duration::from_secs(2);
    let gw = Running::start(cfg);
    let path = "/v1/instances/main/topics/t/events";
    let ok = |gw: &Running| {
        let a = gw.post(path, &[JSON], b"{\"value\": \"still served\"}");
        assert_eq!(a.status, 202, "{}", a.body);
    };
    let head = |len: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{len}\r\n\r\n"
        )
    };

    // A connection sending its headers one byte at a time, slower than the
    // header deadline: closed, and nothing is answered for it.
    let mut slowloris = TcpStream::connect(gw.addr).unwrap();
    let started = Instant::now();
    let mut closed_by_server = false;
    for b in head("Content-Length: 12").bytes() {
        if slowloris.write_all(&[b]).is_err() {
            closed_by_server = true;
            break;
        }
        ok(&gw);
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let (raw, closed) = read_to_close(&mut slowloris);
    assert!(closed || closed_by_server, "the slow connection was closed");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after the 1 s header deadline, took {:?}",
        started.elapsed()
    );
    let answered = HttpAnswer::parse(&raw);
    assert!(
        answered.as_ref().is_none_or(|a| a.status == 408),
        "{answered:?}"
    );

    // A body that stops arriving: 408 after body_timeout_ms.
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.write_all(head("Content-Length: 100").as_bytes()).unwrap();
    s.write_all(b"{\"value\": ").unwrap();
    let started = Instant::now();
    let (raw, _) = read_to_close(&mut s);
    let a = HttpAnswer::parse(&raw).expect("an answer");
    assert_eq!(a.status, 408, "{}", a.body);
    assert!(a.detail().contains("1000 ms (limits.body_timeout_ms)"));
    assert!(started.elapsed() < Duration::from_secs(5));
    ok(&gw);

    // Over the limit, declared: 413 before the body is sent.
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.write_all(head("Content-Length: 1000000").as_bytes())
        .unwrap();
    let (raw, _) = read_to_close(&mut s);
    let a = HttpAnswer::parse(&raw).expect("an answer");
    assert_eq!(a.status, 413, "{}", a.body);
    // Over the limit, chunked and slow: 413 once the limit is passed.
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.write_all(head("Transfer-Encoding: chunked").as_bytes())
        .unwrap();
    let chunk = format!("400\r\n{}\r\n", " ".repeat(0x400));
    let mut refused = false;
    for _ in 0..8 {
        if s.write_all(chunk.as_bytes()).is_err() {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (raw, _) = read_to_close(&mut s);
    let a = HttpAnswer::parse(&raw);
    assert!(
        a.as_ref().is_some_and(|a| a.status == 413) || refused,
        "{a:?}"
    );
    ok(&gw);

    // Deeply nested JSON and invalid UTF-8: 400 saying what is wrong.
    let deep = format!("{{\"value\": {}1{}}}", "[".repeat(1500), "]".repeat(1500));
    let a = gw.post(path, &[JSON], deep.as_bytes());
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.detail().contains("recursion limit"), "{}", a.body);
    let a = gw.post(path, &[JSON], b"{\"value\": \"\xff\xfe\"}");
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.detail().contains("line 1"), "{}", a.body);

    // Connections over max_connections: a 503 at once, and closed; the
    // idle ones are closed at the header deadline, and then there is room.
    let idle: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(gw.addr).unwrap())
        .collect();
    let mut extra = TcpStream::connect(gw.addr).unwrap();
    let (raw, _) = read_to_close(&mut extra);
    let a = HttpAnswer::parse(&raw).expect("an answer");
    assert_eq!(a.status, 503);
    assert!(a.detail().contains("limits.max_connections"));
    for mut s in idle {
        let (_, closed) = read_to_close(&mut s);
        assert!(
            closed,
            "an idle connection is closed at the header deadline"
        );
    }
    ok(&gw);
    assert!(gw.stop() < Duration::from_secs(5));
}

#[test]
fn the_openapi_document_describes_every_route_and_only_those() {
    let mock = MockBroker::start();
    mock.create_topic("t", 1);
    let dir = tempfile::tempdir().unwrap();
    let gw = Running::start(config(
        dir.path(),
        &format!(
            "[instances.main]\n\"bootstrap.servers\" = \"{}\"\n[instances.main.topics.t]\n",
            mock.bootstrap()
        ),
    ));
    let doc = gw.get("/openapi.json", &[]).json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut seen = 0;
    for (path, ops) in paths {
        let concrete = path.replace("{instance}", "main").replace("{topic}", "t");
        for (method, op) in ops.as_object().unwrap() {
            let a = request(
                gw.addr,
                &method.to_uppercase(),
                &concrete,
                &[JSON],
                b"{\"value\": 1}",
            )
            .unwrap();
            assert!(
                !a.body.contains("no such endpoint"),
                "{method} {path} is documented but not served"
            );
            assert!(
                op["responses"].get(a.status.to_string()).is_some(),
                "{method} {path} answered {}, which is not documented",
                a.status
            );
            seen += 1;
        }
    }
    assert_eq!(seen, herald_gateway::openapi::ROUTES.len());
    // And something not documented is not served.
    let a = gw.get("/v1/topics", &[]);
    assert_eq!(a.status, 404);
    assert!(a.detail().contains("GET /openapi.json"));
    gw.stop();
}

#[test]
fn a_stop_lets_requests_in_progress_finish_and_keeps_what_kafka_did_not_take() {
    let port = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        dir.path(),
        &format!(
            "[instances.main]\n\"bootstrap.servers\" = \"127.0.0.1:{port}\"\nsend_timeout_ms = \
             1500\n[instances.main.topics.t]\n"
        ),
    );
    // Requests in progress get up to the grace period.
    cfg.shutdown_grace = Duration::from_secs(4);
    let gw = Running::start(cfg.clone());
    let addr = gw.addr;
    // A request in progress: wait=true against a Kafka that is not there.
    let waiting = std::thread::spawn(move || {
        request(
            addr,
            "POST",
            "/v1/instances/main/topics/t/events?wait=true",
            &[JSON],
            b"{\"value\": 1}",
        )
    });
    // Stop once the event is in the spool (the request is then in progress).
    let start = Instant::now();
    while gw.get("/v1/instances", &[]).json()["instances"][0]["spool"]["backlog_records"] != 1 {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = gw.stop();
    let a = waiting
        .join()
        .unwrap()
        .expect("the request in progress was answered");
    assert_eq!(a.status, 504, "{}", a.body);
    assert!(took < Duration::from_secs(8), "{took:?}");
    // New connections are refused once stopped.
    assert!(request(addr, "GET", "/healthz", &[], b"").is_none());
    // The event stays in the spool for the next start.
    let report = herald_spool::inspect(&dir.path().join("main")).unwrap();
    assert_eq!(report.backlog, 1);
}

/// Records in flight to a Kafka that does not acknowledge them: a stop
/// still closes every spool cleanly (the process would exit 0) and the
/// records stay in the spool.
#[test]
fn a_stop_with_records_in_flight_closes_cleanly_and_keeps_them() {
    let mock = MockBroker::start();
    mock.create_topic("t", 1);
    // NOT_LEADER_OR_FOLLOWER: retriable, so the records stay in flight.
    mock.set_produce_error("t", Some(6));
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        dir.path(),
        &format!(
            "[instances.main]\n\"bootstrap.servers\" = \"{}\"\n[instances.main.topics.t]\n",
            mock.bootstrap()
        ),
    );
    cfg.shutdown_grace = Duration::from_millis(500);
    let gw = Running::start(cfg);
    for i in 0..5 {
        let a = gw.post(
            "/v1/instances/main/topics/t/events",
            &[JSON],
            format!("{{\"value\": {i}}}").as_bytes(),
        );
        assert_eq!(a.status, 202, "{}", a.body);
    }
    let start = Instant::now();
    while mock.answered(6) == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "never sent");
        std::thread::sleep(Duration::from_millis(10));
    }
    // `stop` unwraps serve's result: an error here is an exit status 1.
    let took = gw.stop();
    assert!(took < Duration::from_secs(8), "{took:?}");
    let report = herald_spool::inspect(&dir.path().join("main")).unwrap();
    assert_eq!(report.backlog, 5);
}

/// A client that hangs up while its `wait=true` request with an
/// Idempotency-Key waits for Kafka: the request still runs to its end, and
/// the retry gets its answer, with the event stored once.
#[test]
fn an_idempotent_retry_after_the_client_hung_up_gets_the_first_answer() {
    let mock = MockBroker::start();
    mock.create_topic("t", 1);
    mock.set_produce_error("t", Some(6));
    let dir = tempfile::tempdir().unwrap();
    let gw = Running::start(config(
        dir.path(),
        &format!(
            "[instances.main]\n\"bootstrap.servers\" = \"{}\"\nsend_timeout_ms = 20000\n\
             [instances.main.topics.t]\n",
            mock.bootstrap()
        ),
    ));
    let path = "/v1/instances/main/topics/t/events?wait=true";
    let body = b"{\"value\": \"once\"}";
    let key = ("Idempotency-Key", "hung-up-1");
    // The first client gives up after 300 ms and closes its connection.
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Idempotency-Key: hung-up-1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(body).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 256];
    assert!(s.read(&mut buf).is_err(), "no answer yet: Kafka refuses");
    drop(s);
    // Kafka takes it now; the retry gets the first request's answer.
    mock.set_produce_error("t", None);
    let a = gw.post(path, &[JSON, key], body);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("idempotent-replayed"), Some("true"));
    assert_eq!(mock.log("t", 0).len(), 1, "stored and delivered once");
    gw.stop();
}

/// After the stop signal, for a moment (a tenth of the grace period, 1 s at
/// most) the gateway still answers: a request still arriving on an open
/// connection, and `/readyz`, get 503 saying why (so a load balancer moves
/// away); then it stops accepting.
#[test]
fn a_request_arriving_during_the_stop_gets_503() {
    let mock = MockBroker::start();
    mock.create_topic("t", 1);
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Running::start(config(
        dir.path(),
        &format!(
            "[instances.main]\n\"bootstrap.servers\" = \"{}\"\n[instances.main.topics.t]\n",
            mock.bootstrap()
        ),
    ));
    let body = b"{\"value\": 1}";
    let mut s = TcpStream::connect(gw.addr).unwrap();
    // Half a request: its headers are still arriving when the stop comes.
    s.write_all(b"POST /v1/instances/main/topics/t/events HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let signalled = Instant::now();
    gw.signal();
    // Seen stopping: /readyz answers 503.
    loop {
        let a = request(gw.addr, "GET", "/readyz", &[], b"").expect("still answering");
        if a.status == 503 {
            assert!(a.detail().contains("shutting down"), "{}", a.body);
            break;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "never stopping"
        );
    }
    s.write_all(
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(body).unwrap();
    let (raw, closed) = read_to_close(&mut s);
    let a = HttpAnswer::parse(&raw).expect("an answer");
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.detail().contains("shutting down"), "{}", a.body);
    assert_eq!(a.header("retry-after"), Some("1"));
    assert!(closed, "the connection ends with the answer");
    gw.thread.take().unwrap().join().unwrap().unwrap();
    // Then nothing is accepted.
    assert!(TcpStream::connect(gw.addr).is_err());
    assert!(mock.log("t", 0).is_empty(), "nothing stored or sent");
    let report = herald_spool::inspect(&dir.path().join("main")).unwrap();
    assert_eq!(report.backlog, 0);
}
