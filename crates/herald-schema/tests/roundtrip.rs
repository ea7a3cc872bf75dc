//! Property test: a random Avro schema and a random value that fits it (in
//! the Avro JSON encoding); herald encodes it, and an independent
//! implementation (`apache-avro`'s binary reader and writer) must read it
//! back whole and write exactly the same bytes again. Maps hold at most one
//! entry here, since `apache-avro` writes a map in its hash order.
//! `PROPTEST_CASES` sets the number of cases (256 by default).

use apache_avro::{from_avro_datum, to_avro_datum, Schema};
use herald_schema::AvroEncoder;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// A schema and a value for it, both as JSON.
type Pair = (Value, Value);

fn leaf() -> impl Strategy<Value = Pair> {
    prop_oneof![
        Just((json!("null"), Value::Null)),
        any::<bool>().prop_map(|b| (json!("boolean"), json!(b))),
        any::<i32>().prop_map(|n| (json!("int"), json!(n))),
        any::<i64>().prop_map(|n| (json!("long"), json!(n))),
        any::<i16>().prop_map(|n| (json!("float"), json!(f64::from(n) / 8.0))),
        (-1e12f64..1e12).prop_map(|f| (json!("double"), json!(f))),
        "[a-zé ]{0,12}".prop_map(|s| (json!("string"), json!(s))),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(|b| {
            let s: String = b.iter().map(|&c| char::from(c)).collect();
            (json!("bytes"), json!(s))
        }),
        (any::<u32>(), proptest::collection::vec(any::<u8>(), 1..6)).prop_map(|(id, b)| {
            let s: String = b.iter().map(|&c| char::from(c)).collect();
            (
                json!({"type": "fixed", "name": format!("F{id}"), "size": b.len()}),
                json!(s),
            )
        }),
        (any::<u32>(), 1usize..5, any::<prop::sample::Index>()).prop_map(|(id, n, pick)| {
            let symbols: Vec<String> = (0..n).map(|i| format!("S{i}")).collect();
            let chosen = symbols[pick.index(n)].clone();
            (
                json!({"type": "enum", "name": format!("E{id}"), "symbols": symbols}),
                json!(chosen),
            )
        }),
        any::<i32>().prop_map(|n| (json!({"type": "int", "logicalType": "date"}), json!(n))),
        any::<i64>().prop_map(|n| (
            json!({"type": "long", "logicalType": "timestamp-millis"}),
            json!(n)
        )),
    ]
}

fn pair() -> impl Strategy<Value = Pair> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            // Arrays of one item type: several values of the same schema.
            (inner.clone(), 0usize..4).prop_map(|((s, v), n)| (
                json!({"type": "array", "items": s}),
                Value::Array(vec![v; n])
            )),
            (inner.clone(), any::<bool>()).prop_map(|((s, v), empty)| {
                let mut m = Map::new();
                if !empty {
                    m.insert("k".into(), v);
                }
                (json!({"type": "map", "values": s}), Value::Object(m))
            }),
            // A nullable union (skipped for a null schema: no duplicates).
            (inner.clone(), any::<bool>()).prop_map(|((s, v), null)| {
                if s == json!("null") {
                    return (json!(["null", "long"]), Value::Null);
                }
                // A union may not hold a union: keep the inner one.
                if s.is_array() {
                    return (s, v);
                }
                let name = branch(&s);
                let value = if null {
                    Value::Null
                } else {
                    json!({ name: v })
                };
                (json!(["null", s]), value)
            }),
            (any::<u32>(), proptest::collection::vec(inner, 1..4)).prop_map(|(id, fields)| {
                let mut fs = Vec::new();
                let mut value = Map::new();
                for (i, (s, v)) in fields.into_iter().enumerate() {
                    fs.push(json!({"name": format!("f{i}"), "type": s}));
                    value.insert(format!("f{i}"), v);
                }
                (
                    json!({"type": "record", "name": format!("R{id}"), "fields": fs}),
                    Value::Object(value),
                )
            }),
        ]
    })
}

/// The name a schema goes by as a union branch.
fn branch(s: &Value) -> String {
    match s {
        Value::String(t) => t.clone(),
        Value::Object(o) => match (o.get("name"), o.get("type")) {
            (Some(Value::String(n)), _) => n.clone(),
            (_, Some(Value::String(t))) => t.clone(),
            _ => unreachable!("{s}"),
        },
        _ => unreachable!("{s}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]
    #[test]
    fn apache_avro_reads_back_what_herald_writes((schema, value) in pair()) {
        // Random names may collide (a schema defining a name twice): skip.
        let parsed = Schema::parse_str(&schema.to_string());
        prop_assume!(parsed.is_ok());
        let parsed = parsed.unwrap();
        let ours = AvroEncoder::from_schema(parsed.clone())
            .unwrap()
            .to_vec(&value)
            .unwrap_or_else(|e| panic!("herald refused {value} for {schema}: {e}"));
        let mut rest = &ours[..];
        let read = from_avro_datum(&parsed, &mut rest, None)
            .unwrap_or_else(|e| panic!("apache-avro cannot read {ours:?} for {schema}: {e}"));
        prop_assert!(rest.is_empty(), "{} bytes left over", rest.len());
        let theirs = to_avro_datum(&parsed, read).unwrap();
        prop_assert_eq!(ours, theirs);
    }
}
