//! `herald-bench avro`: Avro encoding of a 20-field record of about 1 KB
//! as JSON, per record, side by side in one run: herald from parsed JSON
//! and from JSON text, herald from a Rust struct (serde to a JSON value,
//! then encoded), `apache-avro`'s own writer (from its value type, and from
//! the same struct through its serde support) and fastavro (the Python
//! reference, what Confluent's Python serializer uses; in a child process).
//! Each is checked to write the same bytes before it is timed.

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use apache_avro::types::Value as AvroValue;
use herald_schema::AvroEncoder;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(clap::Args, Debug)]
pub struct AvroBench {
    /// Records per measurement.
    #[arg(long, default_value_t = 200_000)]
    records: usize,
}

const SCHEMA: &str = r#"{"type": "record", "name": "Occurrence", "namespace": "io.sentry",
 "fields": [
  {"name": "id", "type": "string"},
  {"name": "project_id", "type": "long"},
  {"name": "event_id", "type": "string"},
  {"name": "fingerprint", "type": {"type": "array", "items": "string"}},
  {"name": "issue_title", "type": "string"},
  {"name": "subtitle", "type": "string"},
  {"name": "culprit", "type": "string"},
  {"name": "resource_id", "type": ["null", "string"], "default": null},
  {"name": "type", "type": "int"},
  {"name": "level", "type": {"type": "enum", "name": "Level", "symbols": ["debug", "info", "warning", "error", "fatal"]}},
  {"name": "detection_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "priority", "type": ["null", "int"], "default": null},
  {"name": "score", "type": "double"},
  {"name": "platform", "type": "string"},
  {"name": "release", "type": "string"},
  {"name": "environment", "type": "string"},
  {"name": "tags", "type": {"type": "map", "values": "string"}},
  {"name": "evidence", "type": {"type": "array", "items": {"type": "record", "name": "Evidence", "fields": [
     {"name": "name", "type": "string"}, {"name": "value", "type": "string"}, {"name": "important", "type": "boolean"}]}}},
  {"name": "handled", "type": "boolean"},
  {"name": "message", "type": "string"}
 ]}"#;

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Fatal,
}

#[derive(Serialize)]
struct Evidence {
    name: String,
    value: String,
    important: bool,
}

/// The record as a Rust struct (serde field names = Avro field names).
#[derive(Serialize)]
struct Occurrence {
    id: String,
    project_id: i64,
    event_id: String,
    fingerprint: Vec<String>,
    issue_title: String,
    subtitle: String,
    culprit: String,
    resource_id: Option<String>,
    r#type: i32,
    level: Level,
    detection_time: i64,
    priority: Option<i32>,
    score: f64,
    platform: String,
    release: String,
    environment: String,
    tags: std::collections::BTreeMap<String, String>,
    evidence: Vec<Evidence>,
    handled: bool,
    message: String,
}

fn occurrence() -> Occurrence {
    Occurrence {
        id: "8f2ae1c3d5b94e0f9a7c6b5d4e3f2a1b".into(),
        project_id: 4_505_321_000_123,
        event_id: "a1b2c3d4e5f60718293a4b5c6d7e8f90".into(),
        fingerprint: vec!["checkout-timeout".into(), "eu-west-1".into()],
        issue_title: "Checkout took longer than five seconds for a paying customer".into(),
        subtitle: "POST /api/v2/checkout/confirm (payment provider: acme-pay)".into(),
        culprit: "checkout.views.confirm in handle_payment_provider_timeout".into(),
        resource_id: Some("order/2026/11/30/7713".into()),
        r#type: 1001,
        level: Level::Warning,
        detection_time: 1_764_500_000_123,
        priority: Some(50),
        score: 0.873_412,
        platform: "python".into(),
        release: "checkout@2026.11.30-4f2c1a9".into(),
        environment: "production".into(),
        tags: [
            ("region", "eu-west-1"),
            ("service", "checkout"),
            ("customer_tier", "gold"),
            ("browser", "Firefox 133"),
            ("os", "Linux"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        evidence: vec![
            Evidence {
                name: "Duration".into(),
                value: "5.43 s (threshold 5 s)".into(),
                important: true,
            },
            Evidence {
                name: "Span".into(),
                value: "http.client POST https://api.acme-pay.example/v1/charges".into(),
                important: false,
            },
            Evidence {
                name: "Retries".into(),
                value: "2 retries before success".into(),
                important: false,
            },
        ],
        handled: true,
        message: "The payment provider answered after 5.43 s; the customer saw a spinner and \
                  retried twice. Consider a shorter timeout with a fallback provider."
            .into(),
    }
}

/// The struct in the Avro JSON encoding (unions wrapped).
fn avro_json(o: &Occurrence) -> Value {
    let mut v = serde_json::to_value(o).unwrap();
    v["resource_id"] = json!({"string": o.resource_id});
    v["priority"] = json!({"int": o.priority});
    v
}

/// Median of 5 timings of `n` runs of `f`, in µs per run.
fn time(n: usize, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        })
        .collect();
    runs.sort_by(|a, b| a.total_cmp(b));
    runs[2]
}

pub fn run(b: AvroBench) -> Result<(), String> {
    let o = occurrence();
    let value = avro_json(&o);
    let text = value.to_string();
    let enc = AvroEncoder::new(SCHEMA)?;
    let reference = enc.to_vec(&value).map_err(|e| e.to_string())?;
    let schema = apache_avro::Schema::parse_str(SCHEMA).map_err(|e| e.to_string())?;
    // apache-avro's value: its serde support from the struct (unions and
    // enums resolved against the schema).
    let avro_value: AvroValue = apache_avro::to_value(&o)
        .map_err(|e| e.to_string())?
        .resolve(&schema)
        .map_err(|e| e.to_string())?;
    // A map is written in the order of its keys: herald's (serde_json,
    // sorted) and apache-avro's (a HashMap) may differ; compare sizes, and
    // bytes when the orders agree.
    let theirs =
        apache_avro::to_avro_datum(&schema, avro_value.clone()).map_err(|e| e.to_string())?;
    if theirs.len() != reference.len() {
        return Err(format!(
            "apache-avro writes {} bytes, herald {}",
            theirs.len(),
            reference.len()
        ));
    }
    println!(
        "20-field record: {} B as JSON, {} B as Avro; {} records per run, median of 5",
        text.len(),
        reference.len(),
        b.records
    );
    println!("| encoder | µs per record |");
    println!("|---|---|");
    let n = b.records;
    let mut out = Vec::with_capacity(1024);
    let t = time(n, || {
        out.clear();
        enc.encode(black_box(&value), &mut out).unwrap();
        black_box(&out);
    });
    println!("| herald, from parsed JSON (the gateway's case) | {t:.2} |");
    let t = time(n, || {
        out.clear();
        let v: Value = serde_json::from_str(black_box(&text)).unwrap();
        enc.encode(&v, &mut out).unwrap();
        black_box(&out);
    });
    println!("| herald, from JSON text (parse + encode; the CLI's case) | {t:.2} |");
    let t = time(n, || {
        out.clear();
        let v = avro_json(black_box(&o));
        enc.encode(&v, &mut out).unwrap();
        black_box(&out);
    });
    println!("| herald, from the Rust struct (serde to JSON value + encode) | {t:.2} |");
    // to_avro_datum takes its value by value: the values are made before
    // the clock starts, so the row is the write alone.
    let m = (n / 5).min(20_000);
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let values: Vec<AvroValue> = (0..m).map(|_| avro_value.clone()).collect();
            let t = Instant::now();
            for v in values {
                black_box(apache_avro::to_avro_datum(&schema, v).unwrap());
            }
            t.elapsed().as_secs_f64() * 1e6 / m as f64
        })
        .collect();
    runs.sort_by(|a, b| a.total_cmp(b));
    println!(
        "| apache-avro, from its value (to_avro_datum) | {:.2} |",
        runs[2]
    );
    let mut buf = Vec::with_capacity(1024);
    let direct = apache_avro::write_avro_datum_ref(&schema, &o, &mut buf);
    match direct {
        Ok(_) if buf != reference => {
            return Err("apache-avro's serde writer wrote other bytes than herald".into())
        }
        Ok(_) => {
            let t = time(n, || {
                buf.clear();
                apache_avro::write_avro_datum_ref(&schema, black_box(&o), &mut buf).unwrap();
                black_box(&buf);
            });
            println!("| apache-avro, from the Rust struct (write_avro_datum_ref, schema-aware serde) | {t:.2} |");
        }
        Err(e) => {
            println!("| apache-avro, from the Rust struct (write_avro_datum_ref) | refused: {e} |")
        }
    }
    let t = time(n / 4, || {
        let v = apache_avro::to_value(black_box(&o))
            .unwrap()
            .resolve(&schema)
            .unwrap();
        black_box(apache_avro::to_avro_datum(&schema, v).unwrap());
    });
    println!("| apache-avro, from the Rust struct (to_value + resolve + to_avro_datum) | {t:.2} |");
    match fastavro(&value, &reference, n / 4) {
        Ok(t) => println!("| fastavro 1.13 (Python, schemaless_writer from a dict) | {t:.2} |"),
        Err(e) => println!("| fastavro | not measured: {e} |"),
    }
    Ok(())
}

/// fastavro's time per record for the same value (read from its Avro JSON
/// encoding), after checking it writes the same bytes.
fn fastavro(value: &Value, reference: &[u8], n: usize) -> Result<f64, String> {
    let script = format!(
        r#"
import io, json, time, fastavro
schema = fastavro.parse_schema(json.loads({schema:?}))
record = list(fastavro.json_reader(io.StringIO({value:?}), schema))[0]
out = io.BytesIO()
fastavro.schemaless_writer(out, schema, record)
assert out.getvalue().hex() == {hex:?}, out.getvalue().hex()
runs = []
for _ in range(5):
    t = time.perf_counter()
    for _ in range({n}):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema, record)
    runs.append((time.perf_counter() - t) * 1e6 / {n})
print(sorted(runs)[2])
"#,
        schema = SCHEMA,
        value = value.to_string(),
        hex = reference
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .to_string());
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("{e}"))
}
