//! Each configuration mistake a user can make gets the key, the line and
//! what is allowed.

use super::*;

const GOOD: &str = r#"
listen = "127.0.0.1:8080"

[spool]
dir = "/tmp/spool"

[instances.main]
"bootstrap.servers" = "127.0.0.1:9092"
"compression.type" = "lz4"
"linger.ms" = 5
send_timeout_ms = 5000

[instances.main.topics.orders]
key = "/customer/id"
headers = { source = "gateway" }

[instances.main.topics.status]

[instances.audit2]
"bootstrap.servers" = "127.0.0.1:9093"
fallback = "none"

[instances.audit2.topics.audit]

[[tokens]]
name = "billing"
sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
allow = ["main/orders", "audit2/*"]
"#;

fn err(text: &str) -> ConfigError {
    GatewayConfig::parse("gw.toml", text).expect_err("the mistake is refused")
}

/// `text` with `from` replaced by `to` (the replacement must happen).
fn with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

#[test]
fn a_good_file_is_read_whole_with_the_defaults() {
    let c = GatewayConfig::parse("gw.toml", GOOD).unwrap();
    assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.shutdown_grace, Duration::from_secs(10));
    assert_eq!(c.spool_max_bytes, 1 << 30);
    assert_eq!((c.max_body_bytes, c.max_events_per_batch), (1 << 20, 1000));
    let main = &c.instances["main"];
    assert_eq!(main.send_timeout, Duration::from_millis(5000));
    assert_eq!(main.fallback, Fallback::Spool);
    assert_eq!(main.producer.linger, Duration::from_millis(5));
    assert_eq!(main.topics["orders"].key.as_deref(), Some("/customer/id"));
    assert_eq!(
        main.topics["orders"].headers,
        [("source".to_string(), "gateway".to_string())]
    );
    assert_eq!(c.instances["audit2"].fallback, Fallback::None);
    assert_eq!(c.instances["audit2"].send_timeout, Duration::from_secs(30));
    let t = &c.tokens[0];
    assert!(t.allows("main", "orders") && t.allows("audit2", "audit"));
    assert!(!t.allows("main", "status"));
    assert_eq!(t.sha256, crate::token::digest("abc"));
}

#[test]
fn instance_names_are_lowercase_letters_and_digits() {
    for bad in ["Main", "main-1", "main_1", "ma in"] {
        let e = err(
            &with("[instances.main]", &format!("[instances.\"{bad}\"]")).replace(
                "[instances.main.topics",
                &format!("[instances.\"{bad}\".topics"),
            ),
        );
        assert_eq!(e.line, Some(7), "{e}");
        assert!(
            e.to_string().contains("lowercase letters and digits only"),
            "{e}"
        );
    }
}

#[test]
fn typos_name_the_key_its_line_and_the_closest_allowed() {
    let e = err(&with("listen =", "lisen ="));
    assert_eq!((e.line, e.key.as_str()), (Some(2), "lisen"));
    assert!(e.message.contains("did you mean `listen`"), "{e}");
    let e = err(&with("key = \"/customer/id\"", "kye = \"/customer/id\""));
    assert_eq!(e.key, "instances.main.topics.orders.kye");
    assert_eq!(e.line, Some(14));
    assert!(e.message.contains("did you mean `key`"), "{e}");
    // A producer property's typo is the producer's own error, with the line.
    let e = err(&with("\"linger.ms\" = 5", "\"linger.mss\" = 5"));
    assert_eq!(
        (e.line, e.key.as_str()),
        (Some(10), "instances.main.linger.mss")
    );
    assert!(e.message.contains("linger.mss"), "{e}");
    assert_eq!(e.to_string().split(':').next(), Some("gw.toml"));
}

#[test]
fn wrong_values_say_what_is_allowed() {
    let cases = [
        (
            with("fallback = \"none\"", "fallback = \"drop\""),
            21,
            "\"spool\"",
        ),
        (
            with("send_timeout_ms = 5000", "send_timeout_ms = \"5s\""),
            11,
            "expected an integer",
        ),
        (
            with("send_timeout_ms = 5000", "send_timeout_ms = 0"),
            11,
            "out of range",
        ),
        (
            with("key = \"/customer/id\"", "key = \"customer.id\""),
            14,
            "not a JSON pointer",
        ),
        (
            with("source = \"gateway\"", "source = 1"),
            15,
            "a header value is a string",
        ),
        (
            with("listen = \"127.0.0.1:8080\"", "listen = \"localhost\""),
            2,
            "not an address:port",
        ),
        (
            with(
                "[instances.main.topics.status]",
                "[instances.main.topics.\"a b\"]",
            ),
            17,
            "not a valid Kafka topic name",
        ),
        (
            with(
                "\"compression.type\" = \"lz4\"",
                "\"compression.type\" = \"brotli\"",
            ),
            9,
            "compression.type",
        ),
    ];
    for (text, line, says) in cases {
        let e = err(&text);
        assert_eq!(e.line, Some(line), "{e}");
        assert!(e.to_string().contains(says), "{e}");
    }
}

#[test]
fn tokens_are_checked_against_the_instances_and_topics() {
    let e = err(&with("\"main/orders\"", "\"mian/orders\""));
    assert!(
        e.message
            .contains("no instance `mian` (configured: audit2, main)"),
        "{e}"
    );
    assert_eq!(e.line, Some(28));
    let e = err(&with("\"main/orders\"", "\"main/ordres\""));
    assert!(
        e.message
            .contains("no topic `ordres` (configured: orders, status)"),
        "{e}"
    );
    let e = err(&with("\"main/orders\"", "\"main\""));
    assert!(e.message.contains("expected instance/topic"), "{e}");
    let e = err(&with("sha256 = \"ba78", "sha256 = \"zz78"));
    assert!(e.message.contains("64 hex digits"), "{e}");
    assert_eq!(e.line, Some(27));
}

#[test]
fn missing_pieces_are_named() {
    let e = err(&with("[spool]\ndir = \"/tmp/spool\"\n", ""));
    assert!(e.key == "spool" && e.message.contains("[spool]"), "{e}");
    let e = err(&with("\"bootstrap.servers\" = \"127.0.0.1:9093\"\n", ""));
    assert_eq!(e.key, "instances.audit2.bootstrap.servers");
    assert_eq!(e.line, Some(19));
    let e = err(&with("\n[instances.audit2.topics.audit]\n", "\n"));
    assert!(
        e.key == "instances.audit2.topics" && e.message.contains("missing"),
        "{e}"
    );
    let e = err("listen = [");
    assert_eq!((e.key.as_str(), e.line), ("(syntax)", Some(1)));
}

#[test]
fn without_tokens_only_loopback_unless_auth_is_none() {
    let no_tokens = GOOD[..GOOD.find("[[tokens]]").unwrap()].to_string();
    assert!(
        GatewayConfig::parse("gw.toml", &no_tokens).is_ok(),
        "loopback is fine"
    );
    let wide = no_tokens.replace("127.0.0.1:8080", "0.0.0.0:8080");
    let e = err(&wide);
    assert_eq!((e.key.as_str(), e.line), ("listen", Some(2)));
    assert!(e.message.contains("auth = \"none\""), "{e}");
    let open = format!("auth = \"none\"\n{wide}");
    assert!(GatewayConfig::parse("gw.toml", &open).unwrap().auth_none);
}

#[test]
fn token_names_must_differ() {
    let h = "0".repeat(64);
    let text = format!(
        "[spool]\ndir = \"/tmp/s\"\n[instances.main]\n\"bootstrap.servers\" = \"k:9092\"\n\
         [instances.main.topics.t]\n[[tokens]]\nname = \"app\"\nsha256 = \"{h}\"\nallow = [\"main/t\"]\n\
         [[tokens]]\nname = \"app\"\nsha256 = \"{}\"\nallow = [\"main/t\"]\n",
        "1".repeat(64)
    );
    let e = GatewayConfig::parse("gw.toml", &text).unwrap_err();
    assert_eq!(
        (e.line, e.key.as_str()),
        (Some(11), "tokens[1].name"),
        "{e}"
    );
    assert!(
        e.message.contains("`app` is the name of another token"),
        "{e}"
    );
}

#[test]
fn schemas_need_a_registry_and_a_pinned_id_or_subject() {
    let base = "[spool]\ndir = \"/tmp/s\"\n[instances.main]\n\"bootstrap.servers\" = \"k:9092\"\n";
    let with_registry = format!(
        "{base}[instances.main.schema_registry]\nurl = \"http://registry:8081\"\n\
         \"basic.auth.user.info\" = \"u:p\"\n[instances.main.topics.t]\n"
    );
    // Good: a pinned id, and a subject's version.
    let ok = GatewayConfig::parse(
        "gw.toml",
        &format!(
            "{with_registry}value_schema = {{ format = \"avro\", id = 12 }}\n\
             key_schema = {{ format = \"json-schema\", subject = \"t-key\", version = 3 }}\n"
        ),
    )
    .unwrap();
    let t = &ok.instances["main"].topics["t"];
    assert_eq!(
        t.value_schema,
        Some(SchemaRef {
            format: SchemaFormat::Avro,
            pin: Pin::Id(12)
        })
    );
    assert_eq!(
        t.key_schema.as_ref().unwrap().pin,
        Pin::Subject("t-key".into(), herald_schema::Version::Number(3))
    );
    assert_eq!(
        ok.instances["main"]
            .registry
            .as_ref()
            .unwrap()
            .basic_auth
            .as_deref(),
        Some("u:p")
    );
    for (text, key, says) in [
        (
            format!("{base}[instances.main.topics.t]\nvalue_schema = {{ format = \"avro\", id = 1 }}\n"),
            "instances.main.topics.t",
            "a schema needs the instance's registry",
        ),
        (
            format!("{with_registry}value_schema = {{ format = \"protobuf\", id = 1 }}\n"),
            "instances.main.topics.t.value_schema.format",
            "expected \"avro\" or \"json-schema\"",
        ),
        (
            format!("{with_registry}value_schema = {{ format = \"avro\" }}\n"),
            "instances.main.topics.t.value_schema",
            "missing: the schema's id or subject",
        ),
        (
            format!("{with_registry}value_schema = {{ format = \"avro\", id = 1, subjct = \"x\" }}\n"),
            "instances.main.topics.t.value_schema.subjct",
            "did you mean `subject`",
        ),
        (
            format!(
                "{base}[instances.main.schema_registry]\nurl = \"http://r:8081\"\n\"basic.auth.user\" = \"x\"\n[instances.main.topics.t]\n"
            ),
            "instances.main.schema_registry.basic.auth.user",
            "not a schema registry setting",
        ),
        (
            format!("{base}[instances.main.schema_registry]\nurl = \"ftp://r\"\n[instances.main.topics.t]\n"),
            "instances.main.schema_registry.url",
            "use http:// or https://",
        ),
    ] {
        let e = err(&text);
        assert_eq!(e.key, key, "{e}");
        assert!(e.message.contains(says), "{e}");
        assert!(e.line.is_some(), "{e}");
    }
}

#[test]
fn the_status_permission() {
    let c = GatewayConfig::parse("gw.toml", GOOD).unwrap();
    assert!(!c.tokens[0].status, "no permission unless given");
    let text = with(
        "allow = [\"main/orders\", \"audit2/*\"]",
        "allow = []\npermissions = [\"status\"]",
    );
    let c = GatewayConfig::parse("gw.toml", &text).unwrap();
    assert!(c.tokens[0].status);
    assert!(!c.tokens[0].allows("main", "orders"));
    let e = err(&with(
        "allow = [\"main/orders\", \"audit2/*\"]",
        "allow = []\npermissions = [\"admin\"]",
    ));
    assert_eq!(e.key, "tokens[0].permissions");
    assert!(
        e.message.contains("the one permission is \"status\""),
        "{e}"
    );
}
