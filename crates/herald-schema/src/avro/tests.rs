use super::*;
use serde_json::json;

fn enc(schema: &str, v: Value) -> Result<Vec<u8>, EncodeError> {
    AvroEncoder::new(schema).unwrap().to_vec(&v)
}

const STATUS: &str = r#"{
  "type": "record", "name": "StatusChange", "namespace": "com.acme",
  "fields": [
    {"name": "id", "type": "long"},
    {"name": "status", "type": {"type": "record", "name": "Status", "fields": [
        {"name": "code", "type": {"type": "enum", "name": "Code", "symbols": ["OK", "FAILED"]}},
        {"name": "note", "type": ["null", "string"], "default": null}
    ]}},
    {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []}
  ]
}"#;

#[test]
fn a_record_with_an_enum_a_union_and_defaults() {
    let b = enc(
        STATUS,
        json!({"id": 1, "status": {"code": "FAILED", "note": {"string": "x"}}}),
    )
    .unwrap();
    // id 1 -> zigzag 2; code FAILED -> 1 -> 2; union branch 1 -> 2, "x";
    // tags default [] -> 0.
    assert_eq!(b, [2, 2, 2, 2, b'x', 0]);
    let b = enc(
        STATUS,
        json!({"id": -1, "status": {"code": "OK"}, "tags": ["a", "b"]}),
    )
    .unwrap();
    assert_eq!(b, [1, 0, 0, 4, 2, b'a', 2, b'b', 0]);
}

#[test]
fn refusals_name_the_path_and_the_rule() {
    let cases = [
        (json!({"id": 1, "status": {"code": "MAYBE"}}), "/status/code: expected one of OK, FAILED"),
        (json!({"status": {"code": "OK"}}), "/id: missing: a field of record com.acme.StatusChange with no default"),
        (json!({"id": "1", "status": {"code": "OK"}}), "/id: expected a long (64 bits), found \"1\""),
        (json!({"id": 1, "status": {"code": "OK", "note": "x"}}), "/status/note: a union's value is null or {\"<type>\": value}, with a type among null, string; found a string"),
        (json!({"id": 1, "status": {"code": "OK", "note": {"int": 1}}}), "/status/note: `int` is not a type of this union: use one of null, string"),
        (json!({"id": 1, "status": {"code": "OK"}, "tags": ["a", 2]}), "/tags/1: expected a string, found a number"),
        (json!({"id": 1, "status": {"code": "OK"}, "extra": true}), "/extra: not a field of record com.acme.StatusChange (its fields: id, status, tags)"),
        (json!([1]), "/: expected an object (record com.acme.StatusChange), found an array"),
    ];
    for (v, want) in cases {
        let e = enc(STATUS, v).unwrap_err();
        assert_eq!(e.to_string(), want);
    }
}

#[test]
fn primitives_and_logical_types_by_their_underlying_type() {
    assert_eq!(enc(r#""int""#, json!(-64)).unwrap(), [127]);
    assert_eq!(enc(r#""long""#, json!(64)).unwrap(), [128, 1]);
    assert_eq!(
        enc(r#""double""#, json!(1.5)).unwrap(),
        1.5f64.to_le_bytes()
    );
    assert_eq!(enc(r#""float""#, json!(1.5)).unwrap(), 1.5f32.to_le_bytes());
    assert_eq!(
        enc(r#""bytes""#, json!("\u{00ff}\u{0000}")).unwrap(),
        [4, 0xff, 0]
    );
    assert_eq!(
        enc(r#"{"type": "fixed", "name": "F", "size": 2}"#, json!("ab")).unwrap(),
        b"ab"
    );
    assert_eq!(
        enc(r#"{"type": "int", "logicalType": "date"}"#, json!(1)).unwrap(),
        [2]
    );
    assert_eq!(
        enc(
            r#"{"type": "long", "logicalType": "timestamp-millis"}"#,
            json!(1)
        )
        .unwrap(),
        [2]
    );
    assert_eq!(
        enc(
            r#"{"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}"#,
            json!("\u{0001}")
        )
        .unwrap(),
        [2, 1]
    );
    let u = "123e4567-e89b-12d3-a456-426614174000";
    let mut want = vec![72];
    want.extend_from_slice(u.as_bytes());
    assert_eq!(
        enc(r#"{"type": "string", "logicalType": "uuid"}"#, json!(u)).unwrap(),
        want
    );
    assert!(enc(
        r#"{"type": "string", "logicalType": "uuid"}"#,
        json!("nope")
    )
    .is_err());
    // In a union, a logical type goes by its underlying type's name.
    assert_eq!(
        enc(
            r#"["null", {"type": "long", "logicalType": "timestamp-micros"}]"#,
            json!({"long": 3})
        )
        .unwrap(),
        [2, 6]
    );
    assert!(enc(r#""int""#, json!(1u64 << 40))
        .unwrap_err()
        .rule
        .contains("an int (32 bits)"));
    assert!(enc(r#""bytes""#, json!("\u{0100}"))
        .unwrap_err()
        .rule
        .contains("above \\u00ff"));
    assert!(enc(r#""float""#, json!(1e300))
        .unwrap_err()
        .rule
        .contains("out of the range"));
}

#[test]
fn recursive_types_and_named_references() {
    let list = r#"{"type": "record", "name": "Node", "fields": [
        {"name": "v", "type": "int"},
        {"name": "next", "type": ["null", "Node"], "default": null}]}"#;
    let b = enc(
        list,
        json!({"v": 1, "next": {"Node": {"v": 2, "next": {"Node": {"v": 3}}}}}),
    )
    .unwrap();
    assert_eq!(b, [2, 2, 4, 2, 6, 0]);
    let e = enc(
        list,
        json!({"v": 1, "next": {"Node": {"v": 2, "next": {"Node": {"v": "x"}}}}}),
    )
    .unwrap_err();
    assert_eq!(e.path, "/next/Node/next/Node/v");
}

#[test]
fn defaults_of_every_kind_are_written() {
    let s = r#"{"type": "record", "name": "D", "fields": [
        {"name": "u", "type": ["string", "null"], "default": "dflt"},
        {"name": "b", "type": "bytes", "default": "\u00ff"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}, "default": "B"},
        {"name": "m", "type": {"type": "map", "values": "long"}, "default": {"k": 1}},
        {"name": "r", "type": {"type": "record", "name": "In", "fields": [{"name": "x", "type": "int"}]}, "default": {"x": 7}}
    ]}"#;
    let b = enc(s, json!({})).unwrap();
    assert_eq!(
        b,
        [0, 8, b'd', b'f', b'l', b't', 2, 0xff, 2, 2, 2, b'k', 2, 0, 14]
    );
}

/// Inputs the fuzzer found (fuzz/regressions/avro_json/), replayed: an
/// error, never a panic.
#[test]
fn fuzz_regressions_give_errors() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/regressions/avro_json"
    );
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let Some(split) = data.iter().position(|b| *b == 0) else {
            continue;
        };
        let schema = String::from_utf8_lossy(&data[..split]);
        if let Ok(enc) = AvroEncoder::new(&schema) {
            if let Ok(v) = serde_json::from_slice::<Value>(&data[split + 1..]) {
                let _ = enc.to_vec(&v);
            }
        }
        seen += 1;
    }
    assert!(seen > 0, "no regression inputs in {dir}");
    // The first one, named: a record named "6".
    let e = AvroEncoder::new(r#"{"type":"record","name":"6","fields":[]}"#).unwrap_err();
    assert!(e.contains("invalid Avro schema"), "{e}");
}

/// A uuid or duration on a fixed is its raw bytes, named (a union branch by
/// the fixed's full name), not apache-avro's string uuid.
#[test]
fn uuid_and_duration_on_fixed_are_raw_bytes() {
    let s = r#"{"type": "record", "name": "R", "namespace": "n", "fields": [
        {"name": "u", "type": {"type": "fixed", "name": "U16", "size": 16, "logicalType": "uuid"}},
        {"name": "d", "type": ["null", {"type": "fixed", "name": "D12", "size": 12, "logicalType": "duration"}]}]}"#;
    let raw: String = (0u8..16).map(char::from).collect();
    let twelve: String = (0u8..12).map(char::from).collect();
    let b = enc(s, json!({"u": raw, "d": {"n.D12": twelve}})).unwrap();
    let mut want: Vec<u8> = (0u8..16).collect();
    want.push(2);
    want.extend(0u8..12);
    assert_eq!(b, want);
}
