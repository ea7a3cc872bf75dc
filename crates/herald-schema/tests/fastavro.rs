//! herald's JSON-to-Avro encoding against fastavro's, byte for byte, on a
//! corpus of schemas covering every type and logical type the issue lists,
//! nested and recursive records, unions of records, and defaults. fastavro
//! reads each value with its Avro-JSON reader (`json_reader`) and writes it
//! with `schemaless_writer`, as Confluent's Python `AvroSerializer` does
//! (fastavro and confluent-kafka are installed by `scripts/setup`).
//!
//! Map values use keys in sorted order (herald writes a JSON object's keys
//! sorted; Python keeps their order), and decimals their shortest
//! two's-complement form (fastavro writes a decimal back that way).

use std::io::Write;
use std::process::{Command, Stdio};

use herald_schema::AvroEncoder;
use serde_json::{json, Value};

fn corpus() -> Vec<(Value, Value)> {
    let status = json!({
        "type": "record", "name": "StatusChange", "namespace": "com.acme.events",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "project", "type": "int"},
            {"name": "ok", "type": "boolean"},
            {"name": "ratio", "type": "float"},
            {"name": "score", "type": "double"},
            {"name": "name", "type": "string"},
            {"name": "raw", "type": "bytes"},
            {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
            {"name": "code", "type": {"type": "enum", "name": "Code", "symbols": ["OK", "FAILED", "UNKNOWN"]}},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "counts", "type": {"type": "map", "values": "long"}},
            {"name": "note", "type": ["null", "string"], "default": null},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "at_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "t_ms", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "t_us", "type": {"type": "long", "logicalType": "time-micros"}},
            {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
            {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "level", "type": "string", "default": "info"}
        ]
    });
    let full = json!({
        "id": 1234567890123i64, "project": -42, "ok": true, "ratio": 0.25, "score": -1.0e-3,
        "name": "héllo wörld", "raw": "\u{0000}\u{00ff}\u{0010}", "digest": "abcd",
        "code": "FAILED", "tags": ["a", "bb", ""], "counts": {"a": 1, "b": -2},
        "note": {"string": "resolved by hand"}, "day": 19000, "at_ms": 1700000000123i64,
        "at_us": 1700000000123456i64, "t_ms": 3600000, "t_us": 3600000001i64,
        "amount": "\u{0004}\u{00d2}", "uid": "123e4567-e89b-12d3-a456-426614174000"
    });
    let mut minimal = full.clone();
    let m = minimal.as_object_mut().unwrap();
    m.remove("note");
    m.remove("level");
    m.insert("tags".into(), json!([]));
    m.insert("counts".into(), json!({}));
    m.insert("amount".into(), json!("\u{00ff}"));

    // Recursive through a union (fastavro's JSON reader recurses without
    // end on a record whose array holds itself, and names a reference in a
    // union as written rather than by its full name, and fails on a third
    // level: so no namespace and two levels here; herald's own unit tests
    // cover the rest).
    let list = json!({
        "type": "record", "name": "Node", "fields": [
            {"name": "v", "type": "int"},
            {"name": "next", "type": ["null", "Node"], "default": null}
        ]
    });
    let shapes = json!({
        "type": "record", "name": "Drawing", "namespace": "geo",
        "fields": [{"name": "shapes", "type": {"type": "array", "items": [
            "null",
            {"type": "record", "name": "Circle", "fields": [{"name": "r", "type": "double"}]},
            {"type": "record", "name": "Square", "fields": [
                {"name": "side", "type": "double"},
                {"name": "label", "type": ["null", "string", "long"], "default": null}
            ]}
        ]}}]
    });
    let defaults = json!({
        "type": "record", "name": "Defaults", "fields": [
            {"name": "a", "type": "int", "default": 7},
            {"name": "b", "type": ["string", "null"], "default": "x"},
            {"name": "c", "type": {"type": "enum", "name": "E", "symbols": ["P", "Q"]}, "default": "Q"},
            {"name": "d", "type": {"type": "map", "values": "int"}, "default": {"k": 1}},
            {"name": "e", "type": {"type": "record", "name": "Inner", "fields": [
                {"name": "x", "type": "long", "default": 5}]}, "default": {}},
            {"name": "f", "type": "bytes", "default": "\u{00ab}"}
        ]
    });
    vec![
        (status.clone(), full),
        (status, minimal),
        (list.clone(), json!({"v": 1, "next": null})),
        (
            list,
            json!({"v": 1, "next": {"Node": {"v": 2, "next": null}}}),
        ),
        (
            shapes.clone(),
            json!({"shapes": [
            {"geo.Circle": {"r": 1.5}}, null, {"geo.Square": {"side": 2.0, "label": {"long": 3}}},
            {"geo.Square": {"side": 0.5}}]}),
        ),
        (shapes, json!({"shapes": []})),
        (defaults, json!({})),
        (json!("string"), json!("plain")),
        (json!(["null", "long", "string"]), json!({"string": "s"})),
        (
            json!({"type": "fixed", "name": "Money", "size": 4, "logicalType": "decimal", "precision": 9, "scale": 2}),
            json!("\u{0000}\u{0001}\u{00e2}\u{0040}"),
        ),
        (
            json!({"type": "long", "logicalType": "local-timestamp-millis"}),
            json!(1764500000123i64),
        ),
        (
            json!({"type": "long", "logicalType": "local-timestamp-micros"}),
            json!(1764500000123456i64),
        ),
        (json!(["null", "long", "string"]), json!(null)),
        (
            json!({"type": "map", "values": ["null", "double"]}),
            json!({"x": {"double": 1.5}, "y": null}),
        ),
    ]
}

#[test]
fn herald_writes_what_fastavro_writes() {
    let cases = corpus();
    let mut py = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fastavro_ref.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/setup installs fastavro and confluent-kafka)");
    {
        let mut stdin = py.stdin.take().unwrap();
        for (schema, value) in &cases {
            writeln!(stdin, "{}", json!({"schema": schema, "value": value})).unwrap();
        }
    }
    let out = py.wait_with_output().unwrap();
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), cases.len(), "{lines:?}");
    for ((schema, value), reference) in cases.iter().zip(&lines) {
        assert!(
            !reference.starts_with("ERR"),
            "fastavro refused {value} for {schema}: {reference} (is fastavro installed? scripts/setup)"
        );
        let ours = AvroEncoder::new(&schema.to_string())
            .unwrap()
            .to_vec(value)
            .unwrap_or_else(|e| panic!("herald refused {value}: {e}"));
        let hex: String = ours.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(&hex, reference, "{value} for {schema}");
    }
}
