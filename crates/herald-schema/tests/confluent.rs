//! Confluent's own Python client (`confluent-kafka[avro]`, installed by
//! `scripts/setup`) against the registry stand-in in test-support: it
//! registers, fetches, looks up, lists and checks compatibility through it
//! (so the stand-in speaks the real API), its `AvroSerializer` (no
//! auto-registration, a pinned id) writes byte for byte what herald writes
//! for the same value in the Confluent wire format, and its
//! `AvroDeserializer` reads herald's bytes back field for field.

use std::process::Command;

use herald_schema::{wire, AvroEncoder};
use herald_test_support::registry::Registry;
use serde_json::{json, Value};

#[test]
fn confluents_client_speaks_to_the_stand_in_and_agrees_with_herald_byte_for_byte() {
    let registry = Registry::start();
    let schema = json!({
        "type": "record", "name": "Order", "namespace": "com.acme",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "customer", "type": "string"},
            {"name": "total", "type": "double"},
            {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID", "SHIPPED"]}},
            {"name": "note", "type": ["null", "string"], "default": null},
            {"name": "lines", "type": {"type": "array", "items": {"type": "record", "name": "Line", "fields": [
                {"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}]}}},
            {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
        ]
    });
    // Adds a field with a default: BACKWARD compatible. Changes a type: not.
    let mut compatible = schema.clone();
    compatible["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "channel", "type": "string", "default": "web"}));
    let mut incompatible = schema.clone();
    incompatible["fields"][1]["type"] = json!("long");
    let value = json!({
        "id": 42, "customer": "c-7", "total": 99.5, "status": "PAID",
        "note": {"string": "leave at the door"},
        "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-9", "qty": 1}],
        "placed_at": 1764500000123i64
    });
    // The id the registry will give (the stand-in's first is 1): herald's
    // encoding of the value in the wire format.
    let ours = wire::frame(
        1,
        &AvroEncoder::new(&schema.to_string())
            .unwrap()
            .to_vec(&value)
            .unwrap(),
    );
    let hex: String = ours.iter().map(|b| format!("{b:02x}")).collect();
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("case.json");
    std::fs::write(
        &case,
        json!({
            "schema": schema, "subject": "orders-value", "topic": "orders",
            "compatible": compatible, "incompatible": incompatible, "value": value,
        })
        .to_string(),
    )
    .unwrap();
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/confluent_ref.py"
        ))
        .arg(registry.url())
        .arg(&case)
        .arg(&hex)
        .output()
        .expect("python3 (scripts/setup installs confluent-kafka and fastavro)");
    assert!(
        out.status.success(),
        "confluent_ref.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["id"], 1);
    assert_eq!(got["id_again"], 1, "registering again gives the same id");
    assert_eq!(got["fetched"], schema);
    assert_eq!(got["latest"], json!({"version": 1, "id": 1}));
    assert_eq!(got["lookup_id"], 1);
    assert_eq!(got["subjects"], json!(["orders-value"]));
    assert_eq!(got["versions"], json!([1]));
    assert_eq!(got["compatible"], true);
    assert_eq!(got["incompatible"], false);
    assert_eq!(got["unknown_id"], 40403);
    // Confluent's serializer writes what herald writes.
    assert_eq!(got["serialized"].as_str().unwrap(), hex);
    // And reads herald's bytes back, field for field.
    let d = &got["decoded"];
    assert_eq!(d["id"], 42);
    assert_eq!(d["customer"], "c-7");
    assert_eq!(d["total"], 99.5);
    assert_eq!(d["status"], "PAID");
    assert_eq!(d["note"], "leave at the door");
    assert_eq!(
        d["lines"],
        json!([{"sku": "A-1", "qty": 2}, {"sku": "B-9", "qty": 1}])
    );
    assert_eq!(d["placed_at"], "2025-11-30 10:53:20.123000+00:00");
    // The serializer with a pinned id and no auto-registration wrote
    // nothing: the one write is the first registration (the client
    // answers the second from its cache).
    assert_eq!(registry.writes(), 1);
}

/// JSON Schema: herald's framed JSON is read (and validated) by Confluent's
/// `JSONDeserializer`, and what Confluent's `JSONSerializer` writes is the
/// same header and the same JSON value.
#[test]
fn confluents_json_schema_serde_reads_what_herald_writes() {
    let registry = Registry::start();
    let schema = json!({
        "title": "Order", "type": "object", "required": ["id", "status"],
        "properties": {
            "id": {"type": "integer"},
            "status": {"enum": ["NEW", "PAID"]},
            "lines": {"type": "array", "items": {"type": "string"}}
        },
        "additionalProperties": false
    });
    let value = json!({"id": 7, "status": "PAID", "lines": ["a", "b"]});
    let enc = herald_schema::JsonSchemaEncoder::new(&schema.to_string()).unwrap();
    let mut payload = Vec::new();
    enc.encode(&value, &mut payload).unwrap();
    let ours = wire::frame(1, &payload);
    let hex: String = ours.iter().map(|b| format!("{b:02x}")).collect();
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("case.json");
    std::fs::write(
        &case,
        json!({"schema": schema, "subject": "orders-value", "topic": "orders", "value": value})
            .to_string(),
    )
    .unwrap();
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/confluent_json_ref.py"
        ))
        .arg(registry.url())
        .arg(&case)
        .arg(&hex)
        .output()
        .expect("python3 (scripts/setup installs confluent-kafka)");
    assert!(
        out.status.success(),
        "confluent_json_ref.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["id"], 1);
    assert_eq!(got["decoded"], value, "Confluent reads herald's value");
    let theirs: Vec<u8> = (0..got["serialized"].as_str().unwrap().len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&got["serialized"].as_str().unwrap()[i..i + 2], 16).unwrap())
        .collect();
    let (id, body) = wire::unframe(&theirs).unwrap();
    assert_eq!(id, 1);
    let theirs_value: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        theirs_value, value,
        "the same JSON (Python spaces it differently)"
    );
}
