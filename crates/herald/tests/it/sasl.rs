//! SASL (issue 5, done-when 3) against Tansu with `--authentication`, which
//! offers SCRAM-SHA-512 for users made with `tansu user create` (also
//! inside TLS: SASL_SSL), and PLAIN/SCRAM against our mock broker.

use herald::{Error, ProducerConfig};
use herald_test_support::Tansu;

use crate::read_back;

const USER: &str = "herald-user";
const PASSWORD: &str = "correct horse battery staple";

fn sasl_config(bootstrap: &str, mechanism: &str, password: &str) -> ProducerConfig {
    ProducerConfig::from_properties(&[
        ("bootstrap.servers", bootstrap),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", mechanism),
        ("sasl.username", USER),
        ("sasl.password", password),
    ])
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha_512_with_the_right_password_produces() {
    let mut tansu = Tansu::start_authenticated(USER, PASSWORD, &[("t", 2)]);
    crate::send_all(
        sasl_config(&tansu.bootstrap(), "SCRAM-SHA-512", PASSWORD),
        200,
    )
    .await;
    tansu.restart_without_authentication();
    assert_eq!(read_back(&tansu.bootstrap(), "t", 2, 200).await.len(), 200);
}

/// SASL_SSL: SCRAM-SHA-512 inside TLS (stunnel in front of Tansu
/// `--authentication`, advertising stunnel), with verification on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha_512_over_tls_produces() {
    use herald_test_support::{free_port, Certs, Stunnel};
    let certs = Certs::generate();
    let port = free_port();
    let mut tansu = Tansu::start_authenticated_behind(port, USER, PASSWORD, &[("t", 2)]);
    let stunnel = Stunnel::start(
        port,
        &tansu.bootstrap(),
        &certs.server_cert,
        &certs.server_key,
        None,
    );
    let mut cfg = sasl_config(&stunnel.localhost(), "SCRAM-SHA-512", PASSWORD);
    cfg.set("security.protocol", "SASL_SSL")
        .unwrap()
        .set("ssl.ca.location", certs.ca.to_str().unwrap())
        .unwrap();
    crate::send_all(cfg, 200).await;
    tansu.restart_without_authentication();
    assert_eq!(read_back(&tansu.bootstrap(), "t", 2, 200).await.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_mechanism_fails_with_what_to_check() {
    let tansu = Tansu::start_authenticated(USER, PASSWORD, &[("t", 1)]);
    let e = crate::first_send_error(sasl_config(
        &tansu.bootstrap(),
        "SCRAM-SHA-512",
        "wrong password",
    ))
    .await;
    assert!(matches!(e, Error::Security { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("SCRAM-SHA-512")
            && msg.contains(USER)
            && msg.contains("check sasl.username and sasl.password"),
        "{msg}"
    );
    assert!(
        !msg.contains("wrong password"),
        "the password must not appear: {msg}"
    );
    assert!(!format!("{e:?}").contains("wrong password"));

    let e = crate::first_send_error(sasl_config(&tansu.bootstrap(), "PLAIN", PASSWORD)).await;
    assert!(matches!(e, Error::Security { .. }), "{e:?}");
    // (Tansu closes the connection instead of answering
    // UNSUPPORTED_SASL_MECHANISM with the mechanisms it enables.)
    let msg = e.to_string();
    assert!(
        msg.contains("SASL PLAIN") && msg.contains("sasl.mechanism"),
        "{msg}"
    );
}

#[test]
fn secrets_stay_out_of_debug_output_and_config_errors() {
    let cfg = sasl_config("b:1", "SCRAM-SHA-256", "s3cr3t-value");
    assert!(!format!("{cfg:?}").contains("s3cr3t-value"));
    let e = ProducerConfig::from_properties(&[
        ("bootstrap.servers", "b:1"),
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "GSSAPI"),
        ("sasl.username", "u"),
        ("sasl.password", "s3cr3t-value"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`sasl.mechanism`") && !e.contains("s3cr3t-value"),
        "{e}"
    );
    let e = ProducerConfig::from_properties(&[
        ("bootstrap.servers", "b:1"),
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.username", "u"),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("`sasl.password`"), "{e}");
}

/// PLAIN and SCRAM-SHA-256 (which Tansu does not offer), and SCRAM-SHA-512
/// again, against our mock broker's SASL server: the right password
/// produces, a wrong one is refused with what to check, and a mechanism the
/// broker does not enable is named with the ones it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_scram_against_our_mock_broker() {
    use herald_test_support::{MockBroker, SaslUser};
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let broker = MockBroker::start_with_sasl(SaslUser {
            mechanisms: vec![mechanism],
            username: USER.into(),
            password: PASSWORD.into(),
            ..SaslUser::default()
        });
        broker.create_topic("t", 2);
        crate::send_all(sasl_config(&broker.bootstrap(), mechanism, PASSWORD), 50).await;

        let e = crate::first_send_error(sasl_config(&broker.bootstrap(), mechanism, "nope")).await;
        assert!(matches!(e, Error::Security { .. }), "{mechanism}: {e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "SASL {mechanism} authentication as `{USER}` failed"
            )) && msg.contains("Authentication failed")
                && !msg.contains("nope"),
            "{msg}"
        );
    }
    let broker = MockBroker::start_with_sasl(SaslUser {
        mechanisms: vec!["SCRAM-SHA-256", "SCRAM-SHA-512"],
        username: USER.into(),
        password: PASSWORD.into(),
        ..SaslUser::default()
    });
    let e = crate::first_send_error(sasl_config(&broker.bootstrap(), "PLAIN", PASSWORD)).await;
    let msg = e.to_string();
    assert!(
        msg.contains("does not enable SASL PLAIN (it enables: SCRAM-SHA-256, SCRAM-SHA-512)"),
        "{msg}"
    );
}
