//! `herald schema …` and `herald produce --value-format avro|json-schema`
//! against the registry stand-in and Tansu, read back with librdkafka and
//! decoded by Confluent's own Python deserializers; each failure as a user
//! meets it, with nothing sent.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use herald_test_support::registry::{confluent_decode, Registry};
use herald_test_support::{read_all, read_log, Tansu};
use serde_json::{json, Value};

const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[
  {"name":"id","type":"long"},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}},
  {"name":"note","type":["null","string"],"default":null}]}"#;
const ORDER_V2: &str = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[
  {"name":"id","type":"long"},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}},
  {"name":"note","type":["null","string"],"default":null},
  {"name":"channel","type":"string","default":"web"}]}"#;
const ORDER_BAD: &str = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[
  {"name":"id","type":"string"}]}"#;

fn herald(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut i = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            i.write_all(s.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

#[test]
fn schema_commands_and_avro_produce_read_by_confluents_deserializer() {
    let registry = Registry::start();
    let url = registry.url();
    let tansu = Tansu::start();
    tansu.create_topic("orders", 1);
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (v1, v2, bad) = (
        file("v1.avsc", ORDER),
        file("v2.avsc", ORDER_V2),
        file("bad.avsc", ORDER_BAD),
    );

    // register, get, versions, check.
    let o = herald(
        &[
            "schema",
            "register",
            "--schema-registry",
            &url,
            "--subject",
            "orders-value",
            "--schema",
            &v1,
        ],
        None,
    );
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(text(&o).0.trim(), "1");
    let o = herald(
        &["schema", "get", "--schema-registry", &url, "--id", "1"],
        None,
    );
    let got: Value = serde_json::from_str(&text(&o).0).unwrap();
    assert_eq!(got, serde_json::from_str::<Value>(ORDER).unwrap());
    let o = herald(
        &[
            "schema",
            "get",
            "--schema-registry",
            &url,
            "--subject",
            "orders-value",
        ],
        None,
    );
    assert!(
        text(&o).1.contains("orders-value version 1 id 1 (AVRO)"),
        "{:?}",
        text(&o)
    );
    let o = herald(
        &[
            "schema",
            "versions",
            "--schema-registry",
            &url,
            "--subject",
            "orders-value",
        ],
        None,
    );
    assert_eq!(text(&o).0, "1\n");
    let o = herald(
        &[
            "schema",
            "check",
            "--schema-registry",
            &url,
            "--subject",
            "orders-value",
            "--schema",
            &v2,
        ],
        None,
    );
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o)
        .0
        .contains("compatible with orders-value version latest (compatibility level BACKWARD)"));
    let o = herald(
        &[
            "schema",
            "check",
            "--schema-registry",
            &url,
            "--subject",
            "orders-value",
            "--schema",
            &bad,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).0.contains("NOT compatible"), "{:?}", text(&o));
    let o = herald(
        &[
            "schema",
            "get",
            "--schema-registry",
            &url,
            "--subject",
            "nope",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("40401") && text(&o).1.contains("the subject does not exist"));
    let writes = registry.writes();

    // Produce Avro with a pinned id (seed 004's setting): JSON lines in.
    let lines = "k1:{\"id\": 1, \"status\": \"NEW\"}\nk2:{\"id\": 2, \"status\": \"PAID\", \"note\": {\"string\": \"gift\"}}\n";
    let b = tansu.bootstrap();
    let o = herald(
        &[
            "produce",
            "-b",
            &b,
            "-t",
            "orders",
            "-K",
            ":",
            "--value-format",
            "avro",
            "--schema-registry",
            &url,
            "--value-schema-id",
            "1",
        ],
        Some(lines),
    );
    assert!(o.status.success(), "{:?}", text(&o));
    // And by subject (its latest version).
    let o = herald(
        &[
            "produce",
            "-b",
            &b,
            "-t",
            "orders",
            "--value-format",
            "avro",
            "--schema-registry",
            &url,
            "--value-subject",
            "orders-value",
        ],
        Some("{\"id\": 3, \"status\": \"PAID\"}\n"),
    );
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(registry.writes(), writes, "producing never registers");
    let read = read_all(&b, "orders", 1, 3, Duration::from_secs(30));
    let values: Vec<Vec<u8>> = read.iter().map(|r| r.value.clone().unwrap()).collect();
    assert!(
        values.iter().all(|v| v[..5] == [0, 0, 0, 0, 1]),
        "wire format, id 1"
    );
    assert_eq!(read[0].key.as_deref(), Some(&b"k1"[..]));
    let decoded = confluent_decode(&url, "avro", "orders", &values);
    assert_eq!(
        decoded,
        [
            json!({"id": 1, "status": "NEW", "note": null}),
            json!({"id": 2, "status": "PAID", "note": "gift"}),
            json!({"id": 3, "status": "PAID", "note": null}),
        ]
    );

    // A line that does not fit: stops there, says where; the line before
    // was sent, the bad one not.
    let o = herald(
        &["produce", "-b", &b, "-t", "orders", "--value-format", "avro", "--schema-registry", &url, "--value-schema-id", "1"],
        Some("{\"id\": 4, \"status\": \"NEW\"}\n{\"id\": \"five\", \"status\": \"NEW\"}\n{\"id\": 6, \"status\": \"NEW\"}\n"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).1.contains("line 2 not sent: the value does not fit the schema: /id: expected a long (64 bits), found \"five\""),
        "{:?}",
        text(&o)
    );
    assert_eq!(read_log(&b, "orders", 1, Duration::from_secs(10)).len(), 4);

    // Nothing sent when the schema cannot be resolved: what the registry
    // said exits 1, options that cannot work exit 2.
    let unreachable = vec![
        "--schema-registry",
        "http://127.0.0.1:1",
        "--value-schema-id",
        "1",
        "-S",
        "max.retries=0",
    ];
    let typo = vec![
        "--schema-registry",
        &url,
        "--value-schema-id",
        "1",
        "-S",
        "auto.register.schema=false",
    ];
    for (args, code, says) in [
        (unreachable, 1, "unreachable"),
        (
            vec!["--schema-registry", &url, "--value-schema-id", "77"],
            1,
            "40403",
        ),
        (
            vec!["--schema-registry", &url],
            2,
            "needs --value-schema-id ID, --value-subject SUBJECT, or --value-schema FILE",
        ),
        (
            vec!["--value-schema-id", "1"],
            2,
            "--value-format needs --schema-registry URL",
        ),
        (
            typo,
            2,
            "-S auto.register.schema: not a schema registry or serializer setting",
        ),
    ] {
        let mut a = vec![
            "produce",
            "-b",
            &b,
            "-t",
            "orders",
            "--value-format",
            "avro",
        ];
        a.extend(args);
        let o = herald(&a, Some("{\"id\": 9, \"status\": \"NEW\"}\n"));
        assert_eq!(o.status.code(), Some(code), "{:?}", text(&o));
        assert!(text(&o).1.contains(says), "{says}: {:?}", text(&o));
    }
    // Confluent's own way to pin an id, by -S, works as --value-schema-id.
    let pin = vec![
        "produce",
        "-b",
        &b,
        "-t",
        "orders",
        "--value-format",
        "avro",
        "--schema-registry",
        &url,
        "-S",
        "auto.register.schemas=false",
        "-S",
        "use.schema.id=1",
    ];
    let o = herald(&pin, Some("{\"id\": 7, \"status\": \"PAID\"}\n"));
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(
        read_log(&b, "orders", 1, Duration::from_secs(10)).len(),
        5,
        "nothing sent by the failed runs; one by the -S run"
    );
}

#[test]
fn json_schema_produce_read_by_confluents_deserializer() {
    let registry = Registry::start();
    let url = registry.url();
    let schema = r#"{"title":"Order","type":"object","required":["id"],"properties":{"id":{"type":"integer"},"status":{"enum":["NEW","PAID"]}},"additionalProperties":false}"#;
    let id = registry.register("events-value", schema, "JSON");
    let tansu = Tansu::start();
    tansu.create_topic("events", 1);
    let b = tansu.bootstrap();
    let o = herald(
        &[
            "produce",
            "-b",
            &b,
            "-t",
            "events",
            "--value-format",
            "json-schema",
            "--schema-registry",
            &url,
            "--value-schema-id",
            &id.to_string(),
        ],
        Some("{\"id\": 1, \"status\": \"NEW\"}\n{\"id\": 2}\n{\"id\": 3, \"status\": \"LOST\"}\n"),
    );
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(
        text(&o).1.contains("line 3 not sent") && text(&o).1.contains("/status"),
        "{:?}",
        text(&o)
    );
    let read = read_all(&b, "events", 1, 2, Duration::from_secs(30));
    let values: Vec<Vec<u8>> = read.iter().map(|r| r.value.clone().unwrap()).collect();
    let decoded = confluent_decode(&url, "json", "events", &values);
    assert_eq!(
        decoded,
        [json!({"id": 1, "status": "NEW"}), json!({"id": 2})]
    );
}
