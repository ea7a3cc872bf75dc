//! The Avro serializer in herald's `TypedProducer`, against the registry
//! stand-in and the mock broker: seed 004's event-bus setup (no
//! auto-registration, a pinned id) over 10,000 records makes no write and
//! one read; the Java serializer's decision order, subject strategies, and
//! each failure with nothing sent.

use std::time::Duration;

use herald::{Producer, ProducerConfig, Record, StringSerializer, TypedProducer};
use herald_schema::registry::{RegistryClient, RegistryConfig};
use herald_schema::{wire, AvroEncoder, AvroSerializer, SchemaError, SerializerConfig};
use herald_test_support::registry::Registry;
use herald_test_support::MockBroker;
use serde_json::{json, Value};

const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[
  {"name":"id","type":"long"},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}}]}"#;
const ORDER_V2: &str = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[
  {"name":"id","type":"long"},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}},
  {"name":"note","type":"string","default":""}]}"#;

fn client(r: &Registry) -> RegistryClient {
    let mut c = RegistryConfig::new(&r.url());
    c.retries_wait = Duration::from_millis(10);
    RegistryClient::new(c).unwrap()
}

fn event_bus(id: u32) -> SerializerConfig {
    let mut c = SerializerConfig::new(false);
    c.set("auto.register.schemas", "false").unwrap();
    c.set("use.schema.id", &id.to_string()).unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_id_without_registration_reads_once_and_never_writes() {
    let r = Registry::start();
    let id = r.register("orders-value", ORDER, "AVRO");
    let mock = MockBroker::start();
    mock.create_topic("orders", 1);
    let ser = AvroSerializer::new(client(&r), event_bus(id), None).unwrap();
    ser.prepare("orders").await.unwrap();
    let producer = TypedProducer::<String, Value, _, _>::new(
        Producer::new(ProducerConfig::new(&mock.bootstrap())).unwrap(),
        StringSerializer,
        ser,
    );
    let mut last = None;
    for i in 0..10_000 {
        let status = if i % 2 == 0 { "NEW" } else { "PAID" };
        let rec = Record::new("orders", json!({"id": i, "status": status})).key(format!("k{i}"));
        last = Some(producer.send(rec).await.unwrap());
    }
    last.unwrap().await.unwrap();
    producer.producer().flush().await;
    assert_eq!(r.writes(), 0, "an event bus producer never writes");
    assert_eq!(r.reads(), 1, "one read: the schema of the pinned id");
    let log = mock.log("orders", 0);
    assert_eq!(log.len(), 10_000);
    let enc = AvroEncoder::new(ORDER).unwrap();
    for (i, (_, v)) in log.iter().enumerate().step_by(997) {
        let status = if i % 2 == 0 { "NEW" } else { "PAID" };
        let want = wire::frame(
            id,
            &enc.to_vec(&json!({"id": i, "status": status})).unwrap(),
        );
        assert_eq!(v.as_deref(), Some(&want[..]));
    }
    // A tombstone: no serializer, no registry call.
    producer
        .send(Record::<String, Value>::tombstone("orders", "k0"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!((r.reads(), r.writes()), (1, 0));
    producer
        .producer()
        .close(Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_decision_order_and_the_subject_strategies() {
    let r = Registry::start();
    // Default settings: auto.register.schemas=true registers (a write).
    let s = AvroSerializer::new(client(&r), SerializerConfig::new(false), Some(ORDER)).unwrap();
    let got = s.prepare("orders").await.unwrap();
    assert_eq!((got.subject.as_str(), got.id), ("orders-value", 1));
    assert_eq!(r.writes(), 1);
    // Registration comes first even with an id pinned (as in Java).
    let mut cfg = SerializerConfig::new(false);
    cfg.set("use.schema.id", "99").unwrap();
    let s = AvroSerializer::new(client(&r), cfg, Some(ORDER)).unwrap();
    assert_eq!(s.prepare("orders").await.unwrap().id, 1);
    // No registration, no pin: a lookup of the exact schema.
    let mut cfg = SerializerConfig::new(false);
    cfg.set("auto.register.schemas", "false").unwrap();
    let s = AvroSerializer::new(client(&r), cfg.clone(), Some(ORDER)).unwrap();
    assert_eq!(s.prepare("orders").await.unwrap().id, 1);
    let writes = r.writes();
    let s = AvroSerializer::new(client(&r), cfg.clone(), Some(ORDER_V2)).unwrap();
    let e = s.prepare("orders").await.unwrap_err();
    assert!(
        e.to_string().contains("40403") && e.to_string().contains("no such schema"),
        "{e}"
    );
    assert_eq!(r.writes(), writes, "a lookup writes nothing");
    // use.latest.version: the latest version's id and schema.
    r.register("orders-value", ORDER_V2, "AVRO");
    cfg.set("use.latest.version", "true").unwrap();
    let s = AvroSerializer::new(client(&r), cfg.clone(), None).unwrap();
    let latest = s.prepare("orders").await.unwrap();
    assert_eq!(latest.id, 2);
    // The latest's schema writes: the new field's default fills in.
    let b = s
        .serialize_json("orders", &json!({"id": 1, "status": "PAID"}))
        .unwrap();
    assert_eq!(b, wire::frame(2, &[2, 2, 0]));
    // Strict: a producer schema the latest cannot read is refused.
    let bad = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"id","type":"string"}]}"#;
    let s = AvroSerializer::new(client(&r), cfg.clone(), Some(bad)).unwrap();
    let e = s.prepare("orders").await.unwrap_err();
    assert!(e.to_string().contains("latest.compatibility.strict"), "{e}");
    // Subject strategies.
    for (strategy, subject) in [
        (
            "io.confluent.kafka.serializers.subject.RecordNameStrategy",
            "com.acme.Order",
        ),
        ("TopicRecordNameStrategy", "orders-com.acme.Order"),
    ] {
        let mut c = SerializerConfig::new(false);
        c.set("value.subject.name.strategy", strategy).unwrap();
        let s = AvroSerializer::new(client(&r), c, Some(ORDER)).unwrap();
        assert_eq!(s.subject("orders").unwrap(), subject);
    }
    let s = AvroSerializer::new(client(&r), SerializerConfig::new(true), Some(ORDER)).unwrap();
    assert_eq!(s.subject("orders").unwrap(), "orders-key");
    // Settings by Confluent's names; a bad value names the property.
    let mut c = SerializerConfig::new(false);
    assert!(
        !c.set("schema.registry.url", "x").unwrap(),
        "not the serializer's"
    );
    assert!(c
        .set("auto.register.schemas", "yes")
        .unwrap_err()
        .contains("auto.register.schemas"));
    assert!(c
        .set("value.subject.name.strategy", "Nope")
        .unwrap_err()
        .contains("TopicNameStrategy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_clear_and_nothing_is_sent() {
    let r = Registry::start();
    let id = r.register("orders-value", ORDER, "AVRO");
    let mock = MockBroker::start();
    mock.create_topic("orders", 1);
    let ser = AvroSerializer::new(client(&r), event_bus(id), None).unwrap();
    // A local schema that is not the pinned id's: refused (bytes labelled
    // with an id are written with its schema); the same schema passes.
    let e = AvroSerializer::new(client(&r), event_bus(id), Some(ORDER_V2))
        .unwrap()
        .prepare("orders")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("not the schema registered as id"),
        "{e}"
    );
    let spaced = ORDER.replace(',', ", ");
    AvroSerializer::new(client(&r), event_bus(id), Some(&spaced))
        .unwrap()
        .prepare("orders")
        .await
        .unwrap();
    // An unknown id.
    let unknown = AvroSerializer::new(client(&r), event_bus(77), None).unwrap();
    let e = unknown.prepare("orders").await.unwrap_err();
    assert!(
        matches!(&e, SchemaError::Registry(r) if r.code() == Some(40403)),
        "{e}"
    );
    // No registration, no pin, no schema: says what to give.
    let mut cfg = SerializerConfig::new(false);
    cfg.set("auto.register.schemas", "false").unwrap();
    let e = AvroSerializer::new(client(&r), cfg, None)
        .unwrap()
        .prepare("orders")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("needs the producer's schema"), "{e}");
    // The registry down: the error names it.
    r.fail(true);
    let e = AvroSerializer::new(client(&r), event_bus(id), None)
        .unwrap()
        .prepare("orders")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("500"), "{e}");
    r.fail(false);

    let producer = TypedProducer::<String, Value, _, _>::new(
        Producer::new(ProducerConfig::new(&mock.bootstrap())).unwrap(),
        StringSerializer,
        ser,
    );
    // Not prepared for this topic: says so.
    let e = producer
        .send(Record::new("orders", json!({"id": 1, "status": "NEW"})))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("prepare(\"orders\")"), "{e}");
    // Prepared, then a value that does not fit: the path and the rule.
    // (A fresh serializer is prepared through the producer's own.)
    let ser = AvroSerializer::new(client(&r), event_bus(id), None).unwrap();
    ser.prepare("orders").await.unwrap();
    let producer = TypedProducer::<String, Value, _, _>::new(
        producer.producer().clone(),
        StringSerializer,
        ser,
    );
    let e = producer
        .send(Record::new("orders", json!({"id": 1, "status": "LOST"})))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("/status: expected one of NEW, PAID"),
        "{e}"
    );
    producer.producer().flush().await;
    assert!(mock.log("orders", 0).is_empty(), "nothing was sent");
}

/// The library path end to end: herald's `TypedProducer` with the Avro
/// serializer into Tansu, read back with librdkafka and decoded by
/// Confluent's Python `AvroDeserializer` field for field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_writes_what_confluents_deserializer_reads_from_kafka() {
    let r = Registry::start();
    let id = r.register("orders-value", ORDER, "AVRO");
    let tansu = herald_test_support::Tansu::start();
    tansu.create_topic("orders", 1);
    let ser = AvroSerializer::new(client(&r), event_bus(id), None).unwrap();
    ser.prepare("orders").await.unwrap();
    let producer = TypedProducer::<String, Value, _, _>::new(
        Producer::new(ProducerConfig::new(&tansu.bootstrap())).unwrap(),
        StringSerializer,
        ser,
    );
    for (i, status) in [(1, "NEW"), (2, "PAID")] {
        producer
            .send(Record::new("orders", json!({"id": i, "status": status})).key(format!("k{i}")))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    producer
        .producer()
        .close(Duration::from_secs(5))
        .await
        .unwrap();
    let b = tansu.bootstrap();
    let got = tokio::task::spawn_blocking(move || {
        herald_test_support::read_all(&b, "orders", 1, 2, Duration::from_secs(30))
    })
    .await
    .unwrap();
    let values: Vec<Vec<u8>> = got.iter().map(|g| g.value.clone().unwrap()).collect();
    let url = r.url();
    let decoded = tokio::task::spawn_blocking(move || {
        herald_test_support::registry::confluent_decode(&url, "avro", "orders", &values)
    })
    .await
    .unwrap();
    assert_eq!(
        decoded,
        [
            json!({"id": 1, "status": "NEW"}),
            json!({"id": 2, "status": "PAID"})
        ]
    );
}
