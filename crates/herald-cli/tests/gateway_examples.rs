//! The gateway example (`examples/gateway/`) as a user runs it: its
//! configuration (two instances, seed 000's occurrence and status change on
//! two topics, keys taken from the events) in front of Tansu, its curl
//! script and its JavaScript `publishAsync` on fetch (Node); the events are
//! read back with librdkafka: value as sent, key from the event, headers,
//! the partition murmur2 gives.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use herald_gateway::token;
use herald_test_support::http::wait_healthy;
use herald_test_support::{free_port, read_all, Tansu};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/gateway")
}

#[test]
fn the_example_publishes_with_curl_and_javascript_and_kafka_has_the_events() {
    let tansu = Tansu::start();
    tansu.create_topic("occurrences", 3);
    tansu.create_topic("status-changes", 3);
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let secret = token::new_token();
    // The example's file, pointed at this Tansu, port and directory, with a
    // real token's hash.
    let example = std::fs::read_to_string(examples().join("gateway.toml")).unwrap();
    let placeholder = example
        .lines()
        .find_map(|l| l.strip_prefix("sha256 = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap()
        .to_string();
    let text = example
        .replace("127.0.0.1:9092", &tansu.bootstrap())
        .replace("127.0.0.1:8080", &addr.to_string())
        .replace(
            "/var/lib/herald/spool",
            &dir.path().join("spool").display().to_string(),
        )
        .replace(&placeholder, &token::sha256_hex(&secret));
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["gateway", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_healthy(addr, Duration::from_secs(30)), "not started");
    let url = format!("http://{addr}");

    let curl = Command::new("bash")
        .arg(examples().join("publish.sh"))
        .env("GATEWAY", &url)
        .env("TOKEN", &secret)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&curl.stdout);
    assert!(
        curl.status.success(),
        "publish.sh: {out}{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("{\"ids\":["), "{out}");
    assert!(
        lines[1].contains("\"partition\":") && lines[1].contains("\"offset\":"),
        "{out}"
    );

    let node = Command::new("node")
        .arg(examples().join("publish.mjs"))
        .env("GATEWAY", &url)
        .env("TOKEN", &secret)
        .output()
        .expect("node (Node.js 18 or later; scripts/setup installs it)");
    let out = String::from_utf8_lossy(&node.stdout);
    assert!(
        node.status.success(),
        "publish.mjs: {out}{}",
        String::from_utf8_lossy(&node.stderr)
    );
    assert!(
        out.contains(
            "refused as expected: publishAsync(main, no-such-topic): 404 instance `main` has no \
             topic `no-such-topic`"
        ),
        "{out}"
    );
    // Without the token, publishAsync throws with what to do.
    let node = Command::new("node")
        .arg(examples().join("publish.mjs"))
        .env("GATEWAY", &url)
        .output()
        .unwrap();
    assert!(!node.status.success());
    assert!(
        String::from_utf8_lossy(&node.stderr).contains("401 no bearer token"),
        "{}",
        String::from_utf8_lossy(&node.stderr)
    );

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());

    // In Kafka: two occurrences and two status changes, keyed by the first
    // fingerprint, with the topic's fixed header.
    for (topic, kind) in [
        ("occurrences", "occurrence"),
        ("status-changes", "status_change"),
    ] {
        let got = read_all(&tansu.bootstrap(), topic, 3, 2, Duration::from_secs(30));
        let mut keys: Vec<String> = Vec::new();
        for r in &got {
            let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
            let value: serde_json::Value =
                serde_json::from_slice(r.value.as_ref().unwrap()).unwrap();
            assert_eq!(value["payload_type"], kind);
            let fingerprint = if kind == "occurrence" {
                &value["occurrence"]["fingerprint"][0]
            } else {
                &value["fingerprint"][0]
            };
            assert_eq!(
                fingerprint.as_str(),
                Some(key.as_str()),
                "key from the event"
            );
            assert_eq!(
                r.partition,
                herald::partitioner::partition_for_key(key.as_bytes(), 3)
            );
            assert!(r
                .headers
                .iter()
                .any(|(k, v)| k == "payload_type" && v.as_deref() == Some(kind.as_bytes())));
            keys.push(key);
        }
        keys.sort();
        assert_eq!(keys, ["checkout-timeout", "js-error"], "{topic}");
    }
}
