//! The gateway as users run it (`herald gateway --config FILE`, a process
//! of its own) while Kafka (Tansu) is down: it keeps answering 202; it is
//! killed with kill -9 during the outage and started again; when Tansu is
//! back every event that got a 202 reaches Kafka, in order per key, read
//! back by librdkafka; repeats carry the id of their first copy.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald_test_support::http::{request, wait_healthy};
use herald_test_support::{free_port, read_log, Tansu};

fn start(config: &std::path::Path, addr: SocketAddr) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["gateway", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_healthy(addr, Duration::from_secs(30)),
        "the gateway did not start"
    );
    child
}

/// Publish events `from..to` in batches of 10 (key `key{i % 10}` taken by
/// the topic's pointer); each batch must get a 202.
fn publish(addr: SocketAddr, from: u64, to: u64) {
    let mut i = from;
    while i < to {
        let end = (i + 10).min(to);
        let events: Vec<String> = (i..end)
            .map(|n| format!(r#"{{"value": {{"k": "key{}", "i": {n}}}}}"#, n % 10))
            .collect();
        let body = format!(r#"{{"events": [{}]}}"#, events.join(","));
        let a = request(
            addr,
            "POST",
            "/v1/instances/main/topics/orders/events",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .expect("the gateway answers");
        assert_eq!(a.status, 202, "events {i}..{end}: {}", a.body);
        i = end;
    }
}

#[test]
fn events_accepted_while_kafka_is_down_survive_kill_9_and_are_delivered() {
    let mut tansu = Tansu::start();
    tansu.create_topic("orders", 3);
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"
listen = "{addr}"
[spool]
dir = "{}"
[instances.main]
"bootstrap.servers" = "{}"
"linger.ms" = 0
"request.timeout.ms" = 2000
[instances.main.topics.orders]
key = "/k"
"#,
            dir.path().join("spool").display(),
            tansu.bootstrap()
        ),
    )
    .unwrap();
    let mut gw = start(&config, addr);
    publish(addr, 0, 200);
    tansu.kill9();
    publish(addr, 200, 500);
    // kill -9 during the outage, and start again on the same spool.
    gw.kill().unwrap();
    gw.wait().unwrap();
    let mut gw = start(&config, addr);
    publish(addr, 500, 700);
    tansu.restart();

    // Every accepted event reaches Kafka.
    let start = Instant::now();
    let read = loop {
        let read = read_log(&tansu.bootstrap(), "orders", 3, Duration::from_secs(60));
        let values: HashSet<u64> = read.iter().map(|r| value_i(&r.value)).collect();
        if values.len() == 700 {
            break read;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{} of 700 accepted events in Kafka after 120 s",
            values.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // In order per key; a repeat carries its first copy's id.
    let mut first_id: HashMap<u64, String> = HashMap::new();
    let mut last: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut repeats = 0;
    for r in &read {
        let i = value_i(&r.value);
        let id = r
            .headers
            .iter()
            .find(|(k, _)| k == "herald.spool.id")
            .and_then(|(_, v)| v.clone())
            .map(|v| String::from_utf8(v).unwrap())
            .expect("each record carries its id");
        if let Some(first) = first_id.get(&i) {
            assert_eq!(first, &id, "event {i} repeated under another id");
            repeats += 1;
            continue;
        }
        first_id.insert(i, id);
        let key = r.key.clone().unwrap();
        assert_eq!(key, format!("key{}", i % 10).into_bytes());
        if let Some(prev) = last.insert(key, i) {
            assert!(prev < i, "event {i} after {prev} for its key");
        }
    }
    eprintln!("700 accepted events delivered, {repeats} repeats (same id)");

    // SIGTERM: a clean stop.
    Command::new("kill")
        .args(["-TERM", &gw.id().to_string()])
        .status()
        .unwrap();
    let status = gw.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

fn value_i(v: &Option<Vec<u8>>) -> u64 {
    let j: serde_json::Value = serde_json::from_slice(v.as_ref().unwrap()).unwrap();
    j["i"].as_u64().unwrap()
}
