//! Topics with schemas: JSON events written through the schema registry
//! (the stand-in) before they are accepted, stored in Tansu in Confluent's
//! wire format and decoded there by Confluent's Python deserializer; an
//! event that does not fit gets 422 with its path and rule, and nothing is
//! accepted; a registry that cannot be read makes the topic answer 503.

use std::net::SocketAddr;
use std::time::Duration;

use herald_gateway::GatewayConfig;
use herald_schema::{wire, AvroEncoder};
use herald_test_support::http::{request, HttpAnswer};
use herald_test_support::registry::{confluent_decode, Registry};
use herald_test_support::{read_all, Tansu};
use serde_json::json;

const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[
  {"name":"id","type":"long"},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}},
  {"name":"note","type":["null","string"],"default":null}]}"#;

const JSON: (&str, &str) = ("Content-Type", "application/json");

async fn post(addr: SocketAddr, path: &str, body: &str) -> HttpAnswer {
    let (path, body) = (path.to_string(), body.to_string());
    tokio::task::spawn_blocking(move || {
        request(addr, "POST", &path, &[JSON], body.as_bytes()).expect("an answer")
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_encoded_by_their_schema_before_they_are_accepted() {
    let registry = Registry::start();
    let value_id = registry.register("orders-value", ORDER, "AVRO");
    let key_id = registry.register("orders-key", r#""string""#, "AVRO");
    let tansu = Tansu::start();
    tansu.create_topic("orders", 1);
    tansu.create_topic("audit", 1);
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[spool]
dir = "{}"
[instances.main]
"bootstrap.servers" = "{}"
"linger.ms" = 0
[instances.main.schema_registry]
url = "{}"
"max.retries" = 0
[instances.main.topics.orders]
key = "/customer"
value_schema = {{ format = "avro", id = {value_id} }}
key_schema = {{ format = "avro", subject = "orders-key", version = "latest" }}
[instances.main.topics.audit]
value_schema = {{ format = "avro", subject = "audit-value" }}
"#,
        dir.path().display(),
        tansu.bootstrap(),
        registry.url()
    );
    let cfg = GatewayConfig::parse("gw.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(herald_gateway::serve(cfg, listener, async {
        let _ = stopped.await;
    }));
    let path = "/v1/instances/main/topics/orders/events";

    // Accepted once encoded; the key (from the pointer) too.
    let a = post(
        addr,
        path,
        r#"{"events": [
            {"value": {"id": 1, "status": "NEW", "customer": "c-1"}},
            {"value": {"id": 2, "status": "PAID", "note": {"string": "gift"}}, "key": "c-2"}
        ]}"#,
    )
    .await;
    // `customer` is not in the schema: refused, with where and why, and
    // nothing of the batch accepted.
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(
        a.detail()
            .contains("events[0].value/customer: not a field of record com.acme.Order"),
        "{}",
        a.body
    );
    let a = post(
        addr,
        &format!("{path}?wait=true"),
        r#"{"events": [
            {"value": {"id": 1, "status": "NEW"}, "key": "c-1"},
            {"value": {"id": 2, "status": "PAID", "note": {"string": "gift"}}, "key": "c-2"}
        ]}"#,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = post(
        addr,
        path,
        r#"{"value": {"id": 3, "status": "LOST"}, "key": "c-3"}"#,
    )
    .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(
        a.detail()
            .contains("value/status: expected one of NEW, PAID"),
        "{}",
        a.body
    );
    let reads = registry.reads();

    // In Kafka: the wire format, read by Confluent's own deserializer.
    let got = read_all(&tansu.bootstrap(), "orders", 1, 2, Duration::from_secs(30));
    let values: Vec<Vec<u8>> = got.iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(
        confluent_decode(&registry.url(), "avro", "orders", &values),
        [
            json!({"id": 1, "status": "NEW", "note": null}),
            json!({"id": 2, "status": "PAID", "note": "gift"}),
        ]
    );
    let key_enc = AvroEncoder::new(r#""string""#).unwrap();
    assert_eq!(
        got[0].key.as_deref(),
        Some(&wire::frame(key_id, &key_enc.to_vec(&json!("c-1")).unwrap())[..])
    );

    // A subject the registry does not have yet: 503 naming it, nothing
    // accepted; once registered, the next event goes through.
    let audit = "/v1/instances/main/topics/audit/events";
    let a = post(addr, audit, r#"{"value": {"id": 1, "status": "NEW"}}"#).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.header("retry-after"), Some("5"));
    assert!(
        a.detail()
            .contains("topic `audit`: its schema cannot be read")
            && a.detail().contains("40401"),
        "{}",
        a.body
    );
    // The registry down: the same.
    registry.fail(true);
    let a = post(addr, audit, r#"{"value": {"id": 1, "status": "NEW"}}"#).await;
    assert_eq!(a.status, 503, "{}", a.body);
    registry.fail(false);
    registry.register("audit-value", ORDER, "AVRO");
    // The failure is remembered for 5 s (requests get the 503 at once, the
    // registry is not asked again meanwhile); then the subject is read.
    let reads_before = registry.reads();
    let a = post(addr, audit, r#"{"value": {"id": 1, "status": "NEW"}}"#).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(
        registry.reads(),
        reads_before,
        "a remembered failure asks nothing"
    );
    let start = std::time::Instant::now();
    let a = loop {
        let a = post(addr, audit, r#"{"value": {"id": 1, "status": "NEW"}}"#).await;
        if a.status != 503 || start.elapsed() > Duration::from_secs(15) {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(a.status, 202, "{}", a.body);
    assert!(
        start.elapsed() >= Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // The orders topic's schemas were read once: more events, no reads.
    let before = registry.reads();
    for id in 10..20 {
        let body = format!(r#"{{"value": {{"id": {id}, "status": "NEW"}}, "key": "k"}}"#);
        let a = post(addr, path, &body).await;
        assert_eq!(a.status, 202, "{}", a.body);
    }
    assert_eq!(registry.reads(), before);
    assert!(reads > 0);
    let got = read_all(&tansu.bootstrap(), "orders", 1, 12, Duration::from_secs(30));
    assert_eq!(got.len(), 12);

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
