//! TLS (issue 5, done-when 2) to a real TLS server: stunnel in front of
//! Tansu, which advertises stunnel's address, with certificates made by
//! the test.

use herald::{Error, ProducerConfig};
use herald_test_support::{free_port, Certs, Stunnel, Tansu};

use crate::read_back;

/// Tansu behind stunnel serving `cert`/`key` (and asking for a client
/// certificate signed by `client_ca`, if given), with topic `t`.
fn tls_broker(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_ca: Option<&std::path::Path>,
) -> (Tansu, Stunnel) {
    let port = free_port();
    let tansu = Tansu::start_advertising_port(port);
    tansu.create_topic("t", 2);
    let stunnel = Stunnel::start(port, &tansu.bootstrap(), cert, key, client_ca);
    (tansu, stunnel)
}

fn ssl_config(bootstrap: &str, extra: &[(&str, &str)]) -> ProducerConfig {
    let mut props = vec![
        ("bootstrap.servers", bootstrap),
        ("security.protocol", "SSL"),
        ("delivery.timeout.ms", "20000"),
        ("request.timeout.ms", "5000"),
    ];
    props.extend_from_slice(extra);
    ProducerConfig::from_properties(&props).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produces_over_tls_with_verification_and_librdkafka_reads_it_back() {
    let certs = Certs::generate();
    let (mut tansu, stunnel) = tls_broker(&certs.server_cert, &certs.server_key, None);
    let ca = certs.ca.to_str().unwrap();
    // By host name (checked against the certificate's DNS name), then by
    // the IP address Tansu advertises (checked against its IP name).
    crate::send_all(
        ssl_config(&stunnel.localhost(), &[("ssl.ca.location", ca)]),
        500,
    )
    .await;
    crate::send_all(ssl_config(&stunnel.addr(), &[("ssl.ca.location", ca)]), 500).await;
    tansu.restart_advertising_itself();
    let read = read_back(&tansu.bootstrap(), "t", 2, 1_000).await;
    let mut values: Vec<String> = read
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    values.sort();
    values.dedup();
    assert_eq!(values.len(), 500, "each value twice, once per producer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_fails_with_what_to_fix() {
    let certs = Certs::generate();
    let (_tansu, stunnel) = tls_broker(&certs.untrusted_cert, &certs.untrusted_key, None);
    let e = crate::first_send_error(ssl_config(
        &stunnel.addr(),
        &[("ssl.ca.location", certs.ca.to_str().unwrap())],
    ))
    .await;
    assert!(matches!(e, Error::Security { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&stunnel.addr())
            && msg.contains("not signed by a trusted CA")
            && msg.contains("ssl.ca.location"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_fails_unless_the_check_is_off() {
    let certs = Certs::generate();
    let (_tansu, stunnel) = tls_broker(&certs.wrong_name_cert, &certs.wrong_name_key, None);
    let ca = certs.ca.to_str().unwrap();
    let e = crate::first_send_error(ssl_config(&stunnel.addr(), &[("ssl.ca.location", ca)])).await;
    assert!(matches!(e, Error::Security { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("is not for `127.0.0.1`")
            && msg.contains("ssl.endpoint.identification.algorithm"),
        "{msg}"
    );
    // Kafka's switch for the name check: off, the chain is still checked
    // and the records go through.
    crate::send_all(
        ssl_config(
            &stunnel.addr(),
            &[
                ("ssl.ca.location", ca),
                ("ssl.endpoint.identification.algorithm", ""),
            ],
        ),
        10,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_when_the_server_asks_for_a_client_certificate() {
    let certs = Certs::generate();
    let (_tansu, stunnel) = tls_broker(&certs.server_cert, &certs.server_key, Some(&certs.ca));
    let ca = certs.ca.to_str().unwrap();
    crate::send_all(
        ssl_config(
            &stunnel.addr(),
            &[
                ("ssl.ca.location", ca),
                (
                    "ssl.certificate.location",
                    certs.client_cert.to_str().unwrap(),
                ),
                ("ssl.key.location", certs.client_key.to_str().unwrap()),
            ],
        ),
        100,
    )
    .await;
    let e = crate::first_send_error(ssl_config(&stunnel.addr(), &[("ssl.ca.location", ca)])).await;
    assert!(matches!(e, Error::Security { .. }), "{e:?}");
    assert!(e.to_string().contains("ssl.certificate.location"), "{e}");
}
