//! The `herald` binary, as a user runs it.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use herald_test_support::{read_all, Tansu};

fn herald(args: &[&str], stdin: Option<&str>) -> Output {
    herald_with_env(args, stdin, &[])
}

/// `herald` with these environment variables (and no AWS ones inherited).
fn herald_with_env(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_SHARED_CREDENTIALS_FILE",
    ] {
        cmd.env_remove(k);
    }
    let mut child = cmd
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run herald");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Done-when 8: "Hello Kafka" to topic1 prints `topic1[P]@O` and exits 0;
/// librdkafka finds it there.
#[test]
fn hello_kafka_is_confirmed() {
    let tansu = Tansu::start();
    tansu.create_topic("topic1", 3);
    let out = herald(
        &[
            "produce",
            "-b",
            &tansu.bootstrap(),
            "-t",
            "topic1",
            "Hello Kafka",
        ],
        None,
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let line = stdout.trim();
    let (p, o) = line
        .strip_prefix("topic1[")
        .and_then(|r| r.split_once("]@"))
        .unwrap_or_else(|| panic!("expected topic1[P]@O, got {line:?}"));
    let (p, o): (i32, i64) = (p.parse().unwrap(), o.parse().unwrap());
    let read = read_all(&tansu.bootstrap(), "topic1", 3, 1, Duration::from_secs(60));
    assert_eq!((read[0].partition, read[0].offset), (p, o));
    assert_eq!(read[0].value.as_deref(), Some(&b"Hello Kafka"[..]));
}

/// Done-when 8: with no broker, fails within delivery.timeout.ms naming
/// the address and the refused connection.
#[test]
fn no_broker_fails_in_time_with_a_clear_error() {
    let started = Instant::now();
    let out = herald(
        &[
            "produce",
            "-b",
            "127.0.0.1:1",
            "-t",
            "topic1",
            "-X",
            "delivery.timeout.ms=3000",
            "-X",
            "request.timeout.ms=2000",
            "x",
        ],
        None,
    );
    let took = started.elapsed();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(took < Duration::from_millis(3000 + 1500), "took {took:?}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(stderr.contains("connection refused"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// Done-when 8: a config typo names the key, with exit status 2.
#[test]
fn config_typo_names_the_key() {
    let out = herald(
        &[
            "produce",
            "-b",
            "127.0.0.1:1",
            "-t",
            "t",
            "-X",
            "linger.mss=5",
            "x",
        ],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`linger.mss`") && stderr.contains("linger.ms"),
        "{stderr}"
    );
    let out = herald(
        &[
            "produce",
            "-b",
            "127.0.0.1:1",
            "-t",
            "t",
            "-X",
            "acks=2",
            "x",
        ],
        None,
    );
    assert!(
        text(&out.stderr).contains("`acks`"),
        "{}",
        text(&out.stderr)
    );
}

/// Lines of standard input, `-K` key splitting, headers and an explicit
/// partition; one output line per record, in send order.
#[test]
fn stdin_lines_with_keys_and_headers() {
    let tansu = Tansu::start();
    tansu.create_topic("lines", 2);
    let input: String = (0..500).map(|i| format!("k{i}:v{i}\n")).collect();
    let out = herald(
        &[
            "produce",
            "-b",
            &tansu.bootstrap(),
            "-t",
            "lines",
            "-K",
            ":",
            "-H",
            "src=cli",
            "-p",
            "1",
        ],
        Some(&input),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    let want: Vec<String> = (0..500).map(|i| format!("lines[1]@{i}")).collect();
    assert_eq!(lines, want);
    let read = read_all(&tansu.bootstrap(), "lines", 2, 500, Duration::from_secs(60));
    for (i, r) in read.iter().enumerate() {
        assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
        assert_eq!(r.value.as_deref(), Some(format!("v{i}").as_bytes()));
        assert_eq!(r.headers, vec![("src".to_string(), Some(b"cli".to_vec()))]);
    }
}

/// `herald metadata` lists brokers, topics, partitions and leaders.
#[test]
fn metadata_lists_topics_and_leaders() {
    let tansu = Tansu::start();
    tansu.create_topic("meta", 2);
    let out = herald(&["metadata", "-b", &tansu.bootstrap()], None);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains(&format!("at {}", tansu.bootstrap())), "{s}");
    assert!(s.contains("topic \"meta\" with 2 partitions"), "{s}");
    assert!(s.contains("partition 1, leader"), "{s}");
}

/// Issue 5, done-when 4: `herald topic create` makes a topic with the
/// requested partitions and retention, `describe` shows them, producing to
/// it works (librdkafka reads the record back), `list` names it, a second
/// create says it exists, and `delete` removes it.
#[test]
fn topic_create_describe_produce_list_delete() {
    let tansu = Tansu::start();
    let b = tansu.bootstrap();
    let ok = |out: &Output| {
        assert!(
            out.status.success(),
            "stdout: {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    let out = herald(
        &[
            "topic",
            "create",
            "-b",
            &b,
            "orders",
            "--partitions",
            "4",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=86400000",
        ],
        None,
    );
    assert_eq!(ok(&out).trim(), "created topic \"orders\"");

    let out = herald(&["topic", "describe", "-b", &b, "orders"], None);
    let described = ok(&out);
    assert!(
        described.starts_with("topic \"orders\" with 4 partitions:"),
        "{described}"
    );
    for p in 0..4 {
        assert!(
            described.contains(&format!("  partition {p}, leader ")),
            "{described}"
        );
    }
    // (Tansu 0.6.0 reports the topic's own configs with the "default"
    // source, so the line may carry that tag.)
    assert!(
        described
            .lines()
            .any(|l| l.starts_with("  retention.ms=86400000")),
        "retention set on the topic: {described}"
    );

    let out = herald(
        &["produce", "-b", &b, "-t", "orders", "-p", "3", "first"],
        None,
    );
    assert_eq!(ok(&out).trim(), "orders[3]@0");
    let read = read_all(&b, "orders", 4, 1, Duration::from_secs(60));
    assert_eq!(read[0].value.as_deref(), Some(&b"first"[..]));

    let out = herald(&["topic", "list", "-b", &b], None);
    assert!(
        ok(&out).lines().any(|l| l == "orders"),
        "{}",
        text(&out.stdout)
    );

    let out = herald(
        &["topic", "create", "-b", &b, "orders", "--partitions", "1"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("TOPIC_ALREADY_EXISTS") && err.contains("orders"),
        "{err}"
    );

    let out = herald(&["topic", "delete", "-b", &b, "orders"], None);
    ok(&out);
    let out = herald(&["topic", "list", "-b", &b], None);
    assert!(
        !ok(&out).lines().any(|l| l == "orders"),
        "{}",
        text(&out.stdout)
    );
    let out = herald(&["topic", "describe", "-b", &b, "orders"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{}",
        text(&out.stderr)
    );
}

/// `produce -b BOOTSTRAP -t topic1 -X P… "Hello Kafka"`.
fn hello_with(bootstrap: &str, props: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["produce", "-b", bootstrap, "-t", "topic1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for p in props {
        args.push("-X".into());
        args.push(p.to_string());
    }
    args.push("Hello Kafka".into());
    args
}

/// The README's SASL examples, as a user runs them, against our mock
/// broker's SASL server: OAUTHBEARER with unsecured JWTs from properties,
/// and AWS_MSK_IAM with credentials from a profile of the shared
/// credentials file (`AWS_PROFILE`), the region set by property.
#[test]
fn readme_oauthbearer_and_aws_msk_iam_examples() {
    use herald_test_support::{AwsUser, MockBroker, SaslUser};
    let broker = MockBroker::start_with_sasl(SaslUser {
        mechanisms: vec!["OAUTHBEARER"],
        username: "alice".into(),
        ..SaslUser::default()
    });
    broker.create_topic("topic1", 1);
    let args = hello_with(
        &broker.bootstrap(),
        &[
            "security.protocol=SASL_PLAINTEXT",
            "sasl.mechanism=OAUTHBEARER",
            "enable.sasl.oauthbearer.unsecure.jwt=true",
            "sasl.oauthbearer.config=principal=alice lifeSeconds=600",
        ],
    );
    let out = herald(&args.iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "topic1[0]@0");

    let broker = MockBroker::start_with_sasl(SaslUser {
        mechanisms: vec!["AWS_MSK_IAM"],
        aws: Some(AwsUser {
            access_key_id: "AKIDPROFILE".into(),
            secret_access_key: "profile-secret".into(),
            session_token: None,
            region: "us-east-1".into(),
        }),
        ..SaslUser::default()
    });
    broker.create_topic("topic1", 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        "[default]\naws_access_key_id=AKIDOTHER\naws_secret_access_key=other\n\
         [msk-producer]\naws_access_key_id=AKIDPROFILE\naws_secret_access_key=profile-secret\n",
    )
    .unwrap();
    let args = hello_with(
        &broker.bootstrap(),
        &[
            "security.protocol=SASL_PLAINTEXT",
            "sasl.mechanism=AWS_MSK_IAM",
            "sasl.aws.region=us-east-1",
        ],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let file = file.to_str().unwrap();
    let out = herald_with_env(
        &args,
        None,
        &[
            ("AWS_SHARED_CREDENTIALS_FILE", file),
            ("AWS_PROFILE", "msk-producer"),
        ],
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "topic1[0]@0");
    // The default profile's key is refused, and the error says so.
    let out = herald_with_env(&args, None, &[("AWS_SHARED_CREDENTIALS_FILE", file)]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("SASL AWS_MSK_IAM authentication as `AKIDOTHER` failed")
            && !err.contains("other\n"),
        "{err}"
    );
}

/// `herald spool inspect DIR` shows the backlog and exits 0 on a sound
/// spool; on a damaged one it says where and exits 1; `herald spool repair`
/// sets the damage aside.
#[test]
fn spool_inspect_shows_the_backlog_and_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cfg = herald_spool::LogConfig {
            segment_bytes: 1 << 20,
        };
        let (mut log, _) = herald_spool::Log::open(dir.path(), cfg).unwrap();
        log.append(&[
            vec![b"one".to_vec(), b"two".to_vec()],
            vec![b"three".to_vec()],
        ])
        .unwrap();
        log.checkpoint(1).unwrap();
    }
    let path = dir.path().to_str().unwrap();
    let out = herald(&["spool", "inspect", path], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("backlog: 2 records") && text.contains("cursor: 1"),
        "{text}"
    );
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut b = std::fs::read(&seg).unwrap();
    b[37] ^= 1; // inside the first payload ("one"), good records after it
    std::fs::write(&seg, &b).unwrap();
    let out = herald(&["spool", "inspect", path], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("damaged at byte 20") && text.contains("DAMAGED"),
        "{text}"
    );
    // `repair` sets the damaged record aside; inspect is clean again.
    let out = herald(&["spool", "repair", path], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("1 record(s) lost") && text.contains("damaged"),
        "{text}"
    );
    let out = herald(&["spool", "inspect", path], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = herald(&["spool", "inspect", "/nonexistent/spool"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
}

/// `herald gateway token` prints a token and lines holding only its hash;
/// `herald gateway check` accepts a file using them and names the line and
/// key of a mistake.
#[test]
fn gateway_token_and_check() {
    let out = herald(&["gateway", "token", "--name", "billing"], None);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let token = text
        .lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .to_string();
    assert_eq!(token.len(), 64, "{text}");
    let lines: String = text.lines().skip(2).collect::<Vec<_>>().join("\n");
    assert!(
        !lines.contains(&token),
        "the token itself is not in the config lines"
    );
    let lines = lines.replace("INSTANCE/TOPIC", "main/orders");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gw.toml");
    let good = format!(
        "listen = \"0.0.0.0:8080\"\n[spool]\ndir = \"/tmp/s\"\n[instances.main]\n\"bootstrap.servers\" = \"127.0.0.1:9092\"\n[instances.main.topics.orders]\n{lines}\n"
    );
    std::fs::write(&cfg, &good).unwrap();
    let path = cfg.to_str().unwrap();
    let out = herald(&["gateway", "check", "--config", path], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("instance main: 1 topic(s) [orders]") && stdout.contains("1 token(s)"),
        "{stdout}"
    );
    std::fs::write(
        &cfg,
        good.replace("[instances.main]", "[instances.Main]")
            .replace("instances.main.topics", "instances.Main.topics"),
    )
    .unwrap();
    let out = herald(&["gateway", "check", "--config", path], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("gw.toml:4: instances.Main: `Main`: an instance name is lowercase letters and digits only"),
        "{stderr}"
    );
}
