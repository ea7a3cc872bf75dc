//! herald's registry client against the registry stand-in (itself checked
//! against Confluent's Python client in `confluent.rs`): every call, the
//! caches (counted on the stand-in), retries, and each failure as a user
//! meets it, with what it means.

use std::time::Duration;

use herald_schema::registry::{RegistryClient, RegistryConfig, RegistryError, Version};
use herald_test_support::registry::Registry;

const V1: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}"#;
const V2: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"note","type":"string","default":""}]}"#;
const BAD: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#;

fn quick(url: &str) -> RegistryConfig {
    let mut c = RegistryConfig::new(url);
    c.retries_wait = Duration::from_millis(10);
    c.retries_max_wait = Duration::from_millis(40);
    c
}

#[tokio::test]
async fn every_call_and_the_caches() {
    let r = Registry::start();
    let c = RegistryClient::new(quick(&r.url())).unwrap();
    let id = c.register("orders-value", V1, "AVRO", false).await.unwrap();
    assert_eq!(id, 1);
    let v = c.lookup("orders-value", V1, "AVRO", false).await.unwrap();
    assert_eq!((v.version, v.id), (1, 1));
    // The lookup is cached: again, no call.
    let reads = r.reads();
    c.lookup("orders-value", V1, "AVRO", false).await.unwrap();
    assert_eq!(r.reads(), reads);
    // A schema by id, cached for ever.
    let s = c.schema_by_id(1).await.unwrap();
    assert_eq!((s.schema.as_str(), s.schema_type.as_str()), (V1, "AVRO"));
    let reads = r.reads();
    c.schema_by_id(1).await.unwrap();
    assert_eq!(r.reads(), reads);
    // Compatibility, then a second version; the latest is cached (no TTL
    // by default) until a client with a TTL of 0 asks again.
    assert!(c
        .is_compatible("orders-value", Version::Latest, V2, "AVRO")
        .await
        .unwrap());
    assert!(!c
        .is_compatible("orders-value", Version::Latest, BAD, "AVRO")
        .await
        .unwrap());
    let latest = c.version("orders-value", Version::Latest).await.unwrap();
    assert_eq!(latest.version, 1);
    assert_eq!(
        c.register("orders-value", V2, "AVRO", false).await.unwrap(),
        2
    );
    assert_eq!(
        c.version("orders-value", Version::Latest)
            .await
            .unwrap()
            .version,
        1,
        "cached: latest.cache.ttl.sec is -1 (for ever) by default"
    );
    let mut fresh = quick(&r.url());
    fresh.latest_cache_ttl = Some(Duration::ZERO);
    let c2 = RegistryClient::new(fresh).unwrap();
    assert_eq!(
        c2.version("orders-value", Version::Latest)
            .await
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        c.version("orders-value", Version::Number(2))
            .await
            .unwrap()
            .id,
        2
    );
    assert_eq!(c.versions("orders-value").await.unwrap(), [1, 2]);
    assert_eq!(c.subjects().await.unwrap(), ["orders-value"]);
    assert_eq!(
        c.compatibility_level(Some("orders-value")).await.unwrap(),
        "BACKWARD"
    );
}

#[tokio::test]
async fn failures_say_what_they_mean() {
    let r = Registry::start();
    let c = RegistryClient::new(quick(&r.url())).unwrap();
    r.register("orders-value", V1, "AVRO");

    let e = c.version("nope-value", Version::Latest).await.unwrap_err();
    assert_eq!(e.code(), Some(40401));
    assert!(e.to_string().contains("the subject does not exist"), "{e}");
    let e = c.schema_by_id(77).await.unwrap_err();
    assert_eq!(e.code(), Some(40403));
    assert!(e.to_string().contains("no such schema"), "{e}");
    let e = c
        .lookup("orders-value", V2, "AVRO", false)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(40403));
    let e = c
        .register("orders-value", "{not json", "AVRO", false)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(42201));
    assert!(e.to_string().contains("invalid"), "{e}");

    // 5xx is retried: two failures, then the answer.
    r.fail_next(2);
    assert_eq!(c.schema_by_id(1).await.unwrap().schema, V1);
    // Always failing: the last error after max.retries.
    r.fail(true);
    let e = c.versions("orders-value").await.unwrap_err();
    assert!(
        matches!(e, RegistryError::Refused { status: 500, .. }),
        "{e}"
    );
    r.fail(false);

    // Credentials: wrong ones are refused with what to check, and never
    // shown; right ones pass.
    r.require_basic("svc", "s3cret");
    let e = c.versions("orders-value").await.unwrap_err();
    assert!(
        e.to_string().contains("401") && e.to_string().contains("basic.auth.user.info"),
        "{e}"
    );
    let mut wrong = quick(&r.url());
    wrong.basic_auth = Some("svc:guess".into());
    let w = RegistryClient::new(wrong).unwrap();
    let e = w.versions("orders-value").await.unwrap_err();
    assert!(!e.to_string().contains("guess") && !format!("{w:?}").contains("guess"));
    let mut right = quick(&r.url());
    right.basic_auth = Some("svc:s3cret".into());
    assert_eq!(
        RegistryClient::new(right)
            .unwrap()
            .versions("orders-value")
            .await
            .unwrap(),
        [1]
    );

    // Nothing listening: unreachable, naming the URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let down = RegistryClient::new(quick(&url)).unwrap();
    let e = down.schema_by_id(1).await.unwrap_err();
    assert!(
        matches!(&e, RegistryError::Unreachable { url: u, .. } if *u == url),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{e}"
    );
    // Bad settings.
    assert!(RegistryClient::new(RegistryConfig::new("")).is_err());
    let e = RegistryClient::new(RegistryConfig::new("ftp://x")).unwrap_err();
    assert!(e.to_string().contains("use http:// or https://"), "{e}");
}
