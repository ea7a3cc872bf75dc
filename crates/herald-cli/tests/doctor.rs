//! `herald doctor` as a team runs it before filing a ticket: against Tansu
//! (plain, and SCRAM-SHA-512 with the right and a wrong password), stunnel
//! TLS with the right and a wrong CA, the mock broker's AWS_MSK_IAM with a
//! wrong secret, a missing topic, the registry stand-in with a missing
//! subject and an incompatible local schema, and catalog files. Each
//! step's line is asserted, and no secret is ever printed.

use std::process::{Command, Output};
use std::time::Duration;

use herald_test_support::registry::Registry;
use herald_test_support::{
    free_port, read_all, AwsUser, Certs, MockBroker, SaslUser, Stunnel, Tansu,
};

const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[
  {"name":"id","type":"long"},{"name":"note","type":["null","string"],"default":null}]}"#;
const ORDER_V2: &str = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[
  {"name":"id","type":"long"},{"name":"note","type":["null","string"],"default":null},
  {"name":"channel","type":"string","default":"web"}]}"#;
const ORDER_INCOMPATIBLE: &str = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[
  {"name":"id","type":"string"}]}"#;

fn doctor(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.arg("doctor").args(args);
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out: Output = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.trim().is_empty(), "nothing on stderr: {err}");
    // Shown with --nocapture: the reports as a user reads them.
    eprintln!("$ herald doctor {}\n{text}", args.join(" "));
    (out.status.code(), text)
}

/// The report's line for `step` (the first one).
fn step<'a>(report: &'a str, step: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.len() > 7 && l[7..].starts_with(&format!("{step:<8} ")))
        .unwrap_or_else(|| panic!("no {step} line in:\n{report}"))
}

fn assert_step(report: &str, name: &str, tag: &str, contains: &[&str]) {
    let l = step(report, name);
    assert!(
        l.starts_with(&format!("[{tag}]")),
        "{name} should be {tag}:\n{report}"
    );
    for c in contains {
        assert!(l.contains(c), "{name} line lacks `{c}`: {l}\n{report}");
    }
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn catalog(topic: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Event\nmetadata:\n  name: {topic}\n  title: Orders\n  description: An order was placed.\nspec:\n  type: event\n  lifecycle: development\n  domain: sales\n  productowner: Jane\n  team: team-orders\n  system: shop\n  topics:\n    - topic: {topic}\n      environment: development\n      brokerAddress: \"127.0.0.1:9092\"\n  payload:\n    id: long\n    note: string, optional\n"
    )
}

#[test]
fn every_step_passes_on_a_ready_plain_cluster_and_the_test_record_is_in_kafka() {
    let tansu = Tansu::start();
    let created = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "topic",
            "create",
            "-b",
            &tansu.bootstrap(),
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=604800000",
        ])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let registry = Registry::start();
    let id = registry.register("orders-value", ORDER, "AVRO");
    let dir = tempfile::tempdir().unwrap();
    let schema = write(&dir, "order.avsc", ORDER);
    let cat = write(&dir, "catalog-info.yaml", &catalog("orders"));
    let b = tansu.bootstrap();
    let (code, report) = doctor(
        &[
            "-b",
            &b,
            "-t",
            "orders",
            "--produce-test",
            "--schema-registry",
            &registry.url(),
            "--schema",
            &schema,
            "--catalog",
            &cat,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{report}");
    assert!(report.starts_with("herald doctor "), "{report}");
    assert!(
        report.contains(&format!("settings: bootstrap.servers={b}")),
        "{report}"
    );
    assert_step(&report, "config", "PASS", &["1 producer properties valid"]);
    assert_step(&report, "resolve", "PASS", &[&format!("{b} is {b}")]);
    assert_step(&report, "connect", "PASS", &["accepted a TCP connection"]);
    assert_step(
        &report,
        "tls",
        "SKIP",
        &["security.protocol=PLAINTEXT (no TLS)"],
    );
    assert_step(&report, "kafka", "PASS", &["answers ApiVersions"]);
    assert_step(&report, "sasl", "SKIP", &["(no SASL)"]);
    assert_step(
        &report,
        "topic",
        "PASS",
        &["`orders` exists: 3 partitions, replication 1, retention.ms=604800000 (7d)"],
    );
    assert_step(
        &report,
        "write",
        "PASS",
        &["wrote a test record to orders["],
    );
    assert_step(
        &report,
        "schema",
        "PASS",
        &[
            &format!("subject `orders-value` has version 1 (id {id}, AVRO)"),
            "is registered as version 1",
        ],
    );
    assert_step(
        &report,
        "catalog",
        "PASS",
        &["valid Event entity listing `orders`, its payload the registered schema's fields"],
    );
    assert!(report.trim_end().ends_with("skipped)"), "{report}");

    // The test record is in Kafka, where the report says, with its header.
    let line = step(&report, "write");
    let at = line.split("orders[").nth(1).unwrap();
    let partition: i32 = at.split(']').next().unwrap().parse().unwrap();
    let offset: i64 = at
        .split('@')
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let records = read_all(&b, "orders", 3, 1, Duration::from_secs(30));
    assert_eq!(
        (records[0].partition, records[0].offset),
        (partition, offset)
    );
    assert!(records[0]
        .headers
        .iter()
        .any(|(k, v)| k == "herald.doctor" && v.as_deref() == Some(&b"test"[..])));
    // No value: a consumer's Avro deserializer reads it as null.
    assert_eq!(records[0].value, None);
    assert_eq!(records[0].key, None);

    // A catalog whose payload is not the registered schema's fields.
    let drifted = write(
        &dir,
        "drifted.yaml",
        &catalog("orders").replace("    note: string, optional\n", "    channel: string\n"),
    );
    let (code, report) = doctor(
        &[
            "-b",
            &b,
            "-t",
            "orders",
            "--schema-registry",
            &registry.url(),
            "--catalog",
            &drifted,
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{report}");
    assert_step(&report, "catalog", "FAIL", &["payload does not match the registered schema (missing note; not in the schema: channel)"]);

    // A compatible local schema that is not registered still passes, and
    // says so; an incompatible one fails.
    let v2 = write(&dir, "order-v2.avsc", ORDER_V2);
    let (code, report) = doctor(
        &[
            "-b",
            &b,
            "-t",
            "orders",
            "--schema-registry",
            &registry.url(),
            "--schema",
            &v2,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_step(
        &report,
        "schema",
        "PASS",
        &["is not registered but is compatible with the latest version"],
    );
    assert_step(&report, "write", "SKIP", &["--produce-test"]);
    let bad = write(&dir, "order-bad.avsc", ORDER_INCOMPATIBLE);
    let (code, report) = doctor(
        &[
            "-b",
            &b,
            "-t",
            "orders",
            "--schema-registry",
            &registry.url(),
            "--schema",
            &bad,
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{report}");
    assert_step(
        &report,
        "schema",
        "FAIL",
        &[
            "order-bad.avsc is not compatible with it",
            "herald schema check",
        ],
    );
    assert_step(&report, "topic", "PASS", &[]);
    assert!(report.contains("result: 1 of "), "{report}");
    assert!(report.contains("steps failed (schema)"), "{report}");

    // A pinned id must be the local schema's own id.
    let id2 = registry.register("orders-value", ORDER_V2, "AVRO");
    let pinned = id2.to_string();
    let (code, report) = doctor(
        &[
            "-b",
            &b,
            "-t",
            "orders",
            "--schema-registry",
            &registry.url(),
            "--value-schema-id",
            &pinned,
            "--schema",
            &schema,
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{report}");
    assert_step(
        &report,
        "schema",
        "FAIL",
        &[
            &format!("schema id {id2} is registered (AVRO)"),
            &format!("order.avsc is registered as id {id}"),
        ],
    );
    let (code, report) = doctor(
        &[
            "-b",
            &b,
            "-t",
            "orders",
            "--schema-registry",
            &registry.url(),
            "--value-schema-id",
            &pinned,
            "--schema",
            &v2,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_step(
        &report,
        "schema",
        "PASS",
        &[&format!("order-v2.avsc is the schema of id {id2}")],
    );
    // A schema registered nowhere is not the pinned one, however
    // compatible: no fallback to the compatibility check.
    let (code, report) = doctor(
        &[
            "-b",
            &b,
            "-t",
            "orders",
            "--schema-registry",
            &registry.url(),
            "--value-schema-id",
            &pinned,
            "--schema",
            &bad,
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{report}");
    assert_step(
        &report,
        "schema",
        "FAIL",
        &[&format!("order-bad.avsc is not the schema of id {id2}")],
    );
}

#[test]
fn a_missing_topic_subject_and_catalog_entry_each_fail_with_what_to_do() {
    let tansu = Tansu::start();
    tansu.create_topic("orders", 1);
    let registry = Registry::start();
    registry.register("orders-value", ORDER, "AVRO");
    let dir = tempfile::tempdir().unwrap();
    let cat = write(&dir, "catalog-info.yaml", &catalog("orders"));
    let (code, report) = doctor(
        &[
            "-b",
            &tansu.bootstrap(),
            "-t",
            "refunds",
            "--produce-test",
            "--schema-registry",
            &registry.url(),
            "--catalog",
            &cat,
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{report}");
    assert_step(&report, "kafka", "PASS", &[]);
    assert_step(
        &report,
        "topic",
        "FAIL",
        &[
            "topic `refunds` does not exist on this cluster",
            "herald topic create",
        ],
    );
    assert_step(&report, "write", "SKIP", &["the topic step failed"]);
    assert_step(
        &report,
        "schema",
        "FAIL",
        &["subject `refunds-value`", "40401"],
    );
    assert_step(
        &report,
        "catalog",
        "FAIL",
        &["lists topics `orders` and not `refunds`", "spec.topics"],
    );
    assert!(
        report.contains("3 of 11 steps failed (topic, schema, catalog)"),
        "{report}"
    );
    // The topic was not created by asking about it.
    let (_, again) = doctor(&["-b", &tansu.bootstrap(), "-t", "refunds"], &[]);
    assert_step(&again, "topic", "FAIL", &["does not exist"]);

    // An invalid catalog file: its first problem, with line and column.
    let broken = write(
        &dir,
        "broken.yaml",
        &catalog("orders").replace("lifecycle: development", "lifecycle: dev"),
    );
    let (_, report) = doctor(
        &[
            "-b",
            &tansu.bootstrap(),
            "-t",
            "orders",
            "--catalog",
            &broken,
        ],
        &[],
    );
    assert_step(
        &report,
        "catalog",
        "FAIL",
        &["1 problem(s), the first at 9:14: spec.lifecycle: `dev` is not a lifecycle"],
    );
}

#[test]
fn nothing_listening_fails_at_connect_and_skips_the_rest() {
    let port = free_port();
    let b = format!("127.0.0.1:{port}");
    let (code, report) = doctor(&["-b", &b, "-t", "orders"], &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_step(&report, "resolve", "PASS", &[]);
    assert_step(&report, "connect", "FAIL", &[&b, "nothing listens there"]);
    for s in ["tls", "kafka", "sasl"] {
        assert_step(&report, s, "SKIP", &["no connection"]);
    }
    assert_step(&report, "topic", "SKIP", &["no working connection"]);
    assert_step(&report, "brokers", "SKIP", &["no working connection"]);
    // Schema options without a registry are a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["doctor", "-b", &b, "-t", "orders", "--schema", "x.avsc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--schema-registry"));
    // A typo in a property name fails the config step, naming the key.
    let (code, report) = doctor(
        &["-b", &b, "-t", "orders", "-X", "securty.protocol=SSL"],
        &[],
    );
    assert_eq!(code, Some(1));
    assert_step(&report, "config", "FAIL", &["securty.protocol"]);
}

/// The classic ticket: the bootstrap address works, but the cluster
/// advertises its brokers at an address not reachable from here (its
/// advertised.listeners): the producer would fail at its first send.
#[test]
fn an_advertised_address_that_does_not_answer_fails_the_brokers_step() {
    // Port 1: nothing listens there.
    let advertised = 1;
    let tansu = Tansu::start_advertising_port(advertised);
    tansu.create_topic("orders", 1);
    let (code, report) = doctor(
        &[
            "-b",
            &tansu.bootstrap(),
            "-t",
            "orders",
            "-X",
            "socket.connection.setup.timeout.ms=3000",
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{report}");
    assert_step(&report, "kafka", "PASS", &[]);
    assert_step(&report, "brokers", "FAIL", &[&format!("advertises broker 111 as `127.0.0.1:{advertised}`, and its connect step fails from here"), "advertised.listeners"]);
}

#[test]
fn scram_with_the_right_and_a_wrong_password() {
    let tansu = Tansu::start_authenticated("alice", "al1ce-secret", &[("orders", 2)]);
    let dir = tempfile::tempdir().unwrap();
    // The settings from a properties file, the password from -X.
    let props = write(
        &dir,
        "producer.properties",
        &format!(
            "# the team's Java producer settings\nbootstrap.servers = {}\nsecurity.protocol: SASL_PLAINTEXT\n\
             sasl.mechanism SCRAM-SHA-512\nsasl.username=alice\n\
             key.serializer=org.apache.kafka.common.serialization.StringSerializer\n\
             value.serializer=io.confluent.kafka.serializers.KafkaAvroSerializer\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n  \
             username=\"alice\" password=\"al1ce-secret\";\n",
            tansu.bootstrap()
        ),
    );
    let (code, report) = doctor(
        &[
            "-F",
            &props,
            "-X",
            "sasl.password=al1ce-secret",
            "-t",
            "orders",
            "--produce-test",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_step(
        &report,
        "sasl",
        "PASS",
        &["SCRAM-SHA-512 authenticated as user `alice`"],
    );
    assert_step(&report, "topic", "PASS", &["`orders` exists: 2 partitions"]);
    assert_step(&report, "write", "PASS", &["orders["]);
    assert!(
        report.contains("sasl.password=***") && report.contains("sasl.jaas.config=***"),
        "{report}"
    );
    assert!(!report.contains("al1ce-secret"), "{report}");

    let (code, report) = doctor(
        &[
            "-F",
            &props,
            "-X",
            "sasl.password=wr0ng-guess",
            "-t",
            "orders",
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{report}");
    assert_step(&report, "kafka", "PASS", &[]);
    assert_step(
        &report,
        "sasl",
        "FAIL",
        &[
            "SASL SCRAM-SHA-512 authentication as `alice` failed",
            "check sasl.username and sasl.password",
        ],
    );
    assert_step(&report, "topic", "SKIP", &[]);
    assert!(!report.contains("wr0ng-guess"), "{report}");
}

#[test]
fn tls_with_the_right_and_a_wrong_ca() {
    let certs = Certs::generate();
    let port = free_port();
    let tansu = Tansu::start_advertising_port(port);
    tansu.create_topic("orders", 1);
    let stunnel = Stunnel::start(
        port,
        &tansu.bootstrap(),
        &certs.server_cert,
        &certs.server_key,
        None,
    );
    let other = Certs::generate();
    let (code, report) = doctor(
        &[
            "-b",
            &stunnel.localhost(),
            "-t",
            "orders",
            "-X",
            "security.protocol=SSL",
            "-X",
            &format!("ssl.ca.location={}", other.ca.display()),
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{report}");
    assert_step(&report, "connect", "PASS", &[]);
    assert_step(
        &report,
        "tls",
        "FAIL",
        &["not signed by a trusted CA", "set ssl.ca.location"],
    );
    assert_step(&report, "kafka", "SKIP", &["TLS failed"]);
    assert_step(&report, "sasl", "SKIP", &["TLS failed"]);

    let (code, report) = doctor(
        &[
            "-b",
            &stunnel.localhost(),
            "-t",
            "orders",
            "-X",
            "security.protocol=SSL",
            "-X",
            &format!("ssl.ca.location={}", certs.ca.display()),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_step(
        &report,
        "tls",
        "PASS",
        &["the certificate is valid for `localhost`"],
    );
    assert_step(&report, "topic", "PASS", &["`orders` exists: 1 partitions"]);

    // A TLS port asked in plaintext: the Kafka step says what to set.
    let (code, report) = doctor(
        &[
            "-b",
            &stunnel.localhost(),
            "-t",
            "orders",
            "-X",
            "socket.connection.setup.timeout.ms=3000",
            "-X",
            "request.timeout.ms=3000",
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{report}");
    assert_step(&report, "kafka", "FAIL", &["security.protocol=SSL"]);
}

#[test]
fn aws_msk_iam_with_a_wrong_secret_names_the_key_and_region_never_the_secret() {
    const AKID: &str = "AKIAHERALDDOCTOR0001";
    const SECRET: &str = "right/Secret+Key0123456789abcdefghijklmn";
    const WRONG: &str = "wrong/Secret+Key0123456789abcdefghijklmn";
    let broker = MockBroker::start_with_sasl(SaslUser {
        mechanisms: vec!["AWS_MSK_IAM"],
        aws: Some(AwsUser {
            access_key_id: AKID.into(),
            secret_access_key: SECRET.into(),
            session_token: None,
            region: "us-gov-west-1".into(),
        }),
        ..SaslUser::default()
    });
    broker.create_topic("orders", 2);
    let args = [
        "-b",
        &broker.bootstrap(),
        "-t",
        "orders",
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        "sasl.mechanism=AWS_MSK_IAM",
        "-X",
        "sasl.aws.region=us-gov-west-1",
    ];
    let (code, report) = doctor(
        &args,
        &[
            ("AWS_ACCESS_KEY_ID", AKID),
            ("AWS_SECRET_ACCESS_KEY", WRONG),
        ],
    );
    assert_eq!(code, Some(1), "{report}");
    assert_step(&report, "kafka", "PASS", &[]);
    assert_step(
        &report,
        "sasl",
        "FAIL",
        &[
            "AWS_MSK_IAM",
            &format!("as access key `{AKID}`, region `us-gov-west-1`"),
        ],
    );
    assert_step(&report, "topic", "SKIP", &[]);
    assert!(
        !report.contains(WRONG) && !report.contains(SECRET),
        "{report}"
    );

    let (code, report) = doctor(
        &args,
        &[
            ("AWS_ACCESS_KEY_ID", AKID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_step(
        &report,
        "sasl",
        "PASS",
        &[&format!(
            "AWS_MSK_IAM authenticated as access key `{AKID}`, region `us-gov-west-1`"
        )],
    );
    assert_step(&report, "topic", "PASS", &["`orders` exists: 2 partitions"]);
    assert!(!report.contains(SECRET), "{report}");

    // No credentials at all: the step says where it looked.
    let (code, report) = doctor(&args, &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_step(&report, "sasl", "FAIL", &["AWS_ACCESS_KEY_ID"]);
}
