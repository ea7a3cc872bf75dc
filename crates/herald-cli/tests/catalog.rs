//! `herald catalog validate` on good files and on one bad file per rule
//! (tests/catalog/bad/*.yaml, each ending with the `# expect:` lines of
//! the problems it must produce, with line and column), and `herald
//! catalog init` for a topic whose Avro schema is registered (in the
//! registry stand-in), with -b and from a gateway configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use herald_test_support::registry::Registry;
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

fn herald(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/catalog")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn good_files_pass() {
    let files = fixtures("good");
    assert!(files.len() >= 2);
    for f in &files {
        let out = herald(&["catalog", "validate", f.to_str().unwrap()]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{}: {text}", f.display());
        assert!(text.contains(": OK (1 Event entity"), "{text}");
    }
}

/// Each bad file reports exactly its `# expect:` problems, in order, each
/// with line and column, and exits 1.
#[test]
fn each_bad_file_reports_its_rule_at_its_line_and_column() {
    let files = fixtures("bad");
    assert!(files.len() >= 52, "one bad file per rule: {}", files.len());
    for f in &files {
        let path = f.to_str().unwrap();
        let expected: Vec<String> = std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|l| format!("{path}:{l}"))
            .collect();
        assert!(!expected.is_empty(), "{path} has no # expect: line");
        let out = herald(&["catalog", "validate", path]);
        assert_eq!(out.status.code(), Some(1), "{path}");
        let text = stdout(&out);
        let reported: Vec<String> = text
            .lines()
            .filter(|l| !l.ends_with(" problem") && !l.ends_with(" problems"))
            .map(str::to_string)
            .collect();
        assert_eq!(reported, expected, "{path}");
        assert!(
            text.ends_with(&format!(
                "{path}: {} problem{}\n",
                expected.len(),
                if expected.len() == 1 { "" } else { "s" }
            )),
            "{text}"
        );
    }
}

/// All files at once: every problem of every file, not the first; the
/// good file among them still OK; exit 1.
#[test]
fn all_problems_of_all_files_at_once() {
    let mut files = fixtures("bad");
    files.extend(fixtures("good"));
    let args: Vec<&str> = ["catalog", "validate"]
        .into_iter()
        .chain(files.iter().map(|f| f.to_str().unwrap()))
        .collect();
    let out = herald(&args);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let expected: usize = fixtures("bad")
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("# expect: "))
                .count()
        })
        .sum();
    let problem_lines = text
        .lines()
        .filter(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|n| n.parse::<usize>().is_ok())
        })
        .count();
    assert_eq!(problem_lines, expected, "{text}");
    assert!(text.contains("seed-004.yaml: OK"), "{text}");
}

#[test]
fn json_output_for_ci_tools() {
    let bad = fixtures("bad")
        .into_iter()
        .find(|f| f.ends_with("topic-entry.yaml"))
        .unwrap();
    let good = &fixtures("good")[0];
    let out = herald(&[
        "catalog",
        "validate",
        "--format",
        "json",
        bad.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let f = &v["files"][0];
    assert_eq!(f["valid"], false);
    assert_eq!(f["documents"], 1);
    let problems = f["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 4);
    assert_eq!(problems[1]["line"], 17);
    assert_eq!(problems[1]["column"], 14);
    assert_eq!(problems[1]["path"], "spec.topics[1].topic");
    assert_eq!(problems[1]["severity"], "error");
    assert!(problems[1]["message"]
        .as_str()
        .unwrap()
        .contains("not a Kafka topic name"));
    assert_eq!(v["files"][1]["valid"], true);
    assert_eq!(v["files"][1]["events"], 1);
}

const APPOINTMENT: &str = r#"{"type":"record","name":"AppointmentBooked","namespace":"gov.va.eventbus",
 "fields":[
  {"name":"appointmentId","type":"string"},
  {"name":"icn","type":"string"},
  {"name":"bookedAt","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["BOOKED","CANCELLED"]}},
  {"name":"note","type":["null","string"],"default":null},
  {"name":"clinic","type":{"type":"record","name":"Clinic","fields":[
     {"name":"stationId","type":"int"},{"name":"name","type":"string"}]}}]}"#;

fn load(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

/// The fields `init` fills from what herald knows, asserted one by one;
/// the placeholders are marked TODO and reported as warnings; the file
/// validates.
fn assert_drafted(doc: &Yaml, topic: &str, broker: &str) {
    assert_eq!(doc["apiVersion"].as_str(), Some("backstage.io/v1alpha1"));
    assert_eq!(doc["kind"].as_str(), Some("Event"));
    assert_eq!(doc["metadata"]["name"].as_str(), Some(topic));
    assert_eq!(doc["metadata"]["title"].as_str(), Some("Dev Appointments"));
    assert!(doc["metadata"]["description"]
        .as_str()
        .unwrap()
        .starts_with("TODO"));
    let spec = &doc["spec"];
    assert_eq!(spec["type"].as_str(), Some("event"));
    assert_eq!(spec["lifecycle"].as_str(), Some("experimental"));
    for person_only in ["domain", "productowner", "team", "system"] {
        assert!(
            spec[person_only].as_str().unwrap().starts_with("TODO"),
            "{person_only}"
        );
    }
    let t = &spec["topics"][0];
    assert_eq!(t["topic"].as_str(), Some(topic));
    assert_eq!(t["environment"].as_str(), Some("development"));
    assert_eq!(t["brokerAddress"].as_str(), Some(broker));
    let p = &spec["payload"];
    assert_eq!(p["appointmentId"].as_str(), Some("string"));
    assert_eq!(p["icn"].as_str(), Some("string"));
    assert_eq!(p["bookedAt"].as_str(), Some("long (timestamp-millis)"));
    assert_eq!(p["status"].as_str(), Some("enum (BOOKED, CANCELLED)"));
    assert_eq!(p["note"].as_str(), Some("string, optional"));
    assert_eq!(p["clinic"]["stationId"].as_str(), Some("int"));
    assert_eq!(p["clinic"]["name"].as_str(), Some("string"));
    assert_eq!(p.as_hash().unwrap().len(), 6);
}

#[test]
fn init_writes_a_valid_draft_from_the_registered_schema() {
    let registry = Registry::start();
    let id = registry.register("dev_appointments-value", APPOINTMENT, "AVRO");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("catalog-info.yaml");
    let f = file.to_str().unwrap();
    let broker = "b-1.dev.example.com:9098,b-2.dev.example.com:9098";
    let out = herald(&[
        "catalog",
        "init",
        "--topic",
        "dev_appointments",
        "-b",
        broker,
        "--schema-registry",
        &registry.url(),
        "-o",
        f,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("valid; 5 TODO placeholder(s)"), "{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!(
            "# payload from subject dev_appointments-value, version 1 (id {id})"
        )),
        "{text}"
    );
    assert_drafted(&load(&file), "dev_appointments", broker);

    // It validates, with the placeholders as warnings (exit 0).
    let out = herald(&["catalog", "validate", f]);
    let v = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v.matches(": warning: ").count(), 5, "{v}");
    assert!(v.contains("spec.team: still a placeholder"), "{v}");
    assert!(
        v.contains("OK (1 Event entity; topics dev_appointments, 5 placeholder(s) to fill in)"),
        "{v}"
    );

    // An existing file is kept.
    let again = herald(&[
        "catalog",
        "init",
        "--topic",
        "dev_appointments",
        "-b",
        broker,
        "-o",
        f,
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    // A subject that is not registered: exit 1, saying what to do.
    let missing = herald(&[
        "catalog",
        "init",
        "--topic",
        "dev_claims",
        "-b",
        broker,
        "--schema-registry",
        &registry.url(),
        "-o",
        "-",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("subject `dev_claims-value`") && err.contains("herald schema register"),
        "{err}"
    );
}

/// From a gateway configuration: the instance's bootstrap.servers, its
/// schema registry, and the topic's value schema pinned by id.
#[test]
fn init_from_a_gateway_instance() {
    let registry = Registry::start();
    let id = registry.register("appointments-v1", APPOINTMENT, "AVRO");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
[spool]
dir = "{spool}"
[instances.health]
"bootstrap.servers" = "10.0.0.1:9098"
[instances.health.schema_registry]
url = "{url}"
[instances.health.topics.dev_appointments]
value_schema = {{ format = "avro", id = {id} }}
"#,
            spool = dir.path().join("spool").display(),
            url = registry.url()
        ),
    )
    .unwrap();
    let out = herald(&[
        "catalog",
        "init",
        "--topic",
        "dev_appointments",
        "--instance",
        "health",
        "--config",
        config.to_str().unwrap(),
        "-o",
        "-",
    ]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("# payload from the registered schema id {id}")),
        "{text}"
    );
    let doc = YamlLoader::load_from_str(&text).unwrap().remove(0);
    assert_drafted(&doc, "dev_appointments", "10.0.0.1:9098");

    // A topic the instance does not list names what it lists.
    let out = herald(&[
        "catalog",
        "init",
        "--topic",
        "dev_claims",
        "--instance",
        "health",
        "--config",
        config.to_str().unwrap(),
        "-o",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not list topic `dev_claims` (it lists: dev_appointments)"),
        "{err}"
    );
}
