//! OAUTHBEARER and AWS_MSK_IAM (issue 5, done-when 3), and KIP-368
//! re-authentication, against our mock broker's SASL server: it checks
//! unsecured JWTs for subject and expiry as Kafka's unsecured validator
//! does, checks AWS_MSK_IAM signatures with AWS's own SigV4 signer (the
//! `aws-sigv4` crate), ends sessions after their lifetime and closes a
//! connection used after its session ended.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::sasl::{
    AwsCredentials, AwsCredentialsProvider, CredentialsFuture, OAuthBearerTokenProvider, Secret,
    TokenFuture, UnsecuredJwt,
};
use herald::{Error, Producer, ProducerConfig, Record};
use herald_test_support::{AwsUser, MockBroker, SaslUser};

/// Produce without pause (linger.ms=0, up to `window` records awaiting
/// their outcome, so requests are on the wire whenever a re-authentication
/// starts) until the broker has seen `reauths` re-authentications (bounded
/// by `BOUND`); every record must be delivered. Returns how many were sent.
async fn produce_through_reauthentications(
    broker: &MockBroker,
    mut cfg: ProducerConfig,
    reauths: usize,
    window: usize,
) -> usize {
    cfg.set("linger.ms", "0").unwrap();
    let producer = Producer::new(cfg).unwrap();
    let started = Instant::now();
    let mut outstanding = std::collections::VecDeque::with_capacity(window + 1);
    let mut sent = 0;
    while sent % 100 != 0 || broker.sasl_counts().reauthentications < reauths {
        assert!(
            started.elapsed() < crate::BOUND,
            "no {reauths} re-authentications within {:?}: {:?}",
            crate::BOUND,
            broker.sasl_counts()
        );
        let r = Record::new("t", format!("record {sent}")).key(format!("k{sent}"));
        outstanding.push_back(producer.send(r).await.expect("buffered"));
        sent += 1;
        if outstanding.len() > window {
            let oldest = outstanding.pop_front().expect("one");
            crate::all_delivered(vec![oldest]).await;
        }
    }
    crate::all_delivered(outstanding.into()).await;
    producer.close(crate::BOUND).await.expect("closed");
    sent
}

/// The broker's counts, after checking that its one connection was renewed
/// without a close (for an ended session, or for a request in the middle
/// of a re-authentication) and without a refusal.
fn renewed_cleanly(broker: &MockBroker) -> herald_test_support::SaslCounts {
    let counts = broker.sasl_counts();
    assert_eq!(counts.expired_closes, 0, "{counts:?}");
    assert_eq!(counts.unauthenticated_closes, 0, "{counts:?}");
    assert_eq!(counts.refused, 0, "{counts:?}");
    assert_eq!(
        counts.connections(),
        1,
        "one connection, renewed: {counts:?}"
    );
    counts
}

fn stored(broker: &MockBroker, partitions: usize) -> usize {
    (0..partitions).map(|p| broker.log("t", p).len()).sum()
}

/// Unsecured JWTs for `principal`, living `life_secs`, counted.
struct CountingTokens {
    jwt: UnsecuredJwt,
    calls: AtomicUsize,
}

impl CountingTokens {
    fn new(principal: &str, life_secs: u64) -> Arc<CountingTokens> {
        Arc::new(CountingTokens {
            jwt: UnsecuredJwt::parse(&format!("principal={principal} lifeSeconds={life_secs}"))
                .unwrap(),
            calls: AtomicUsize::new(0),
        })
    }
}

impl OAuthBearerTokenProvider for CountingTokens {
    fn token(&self) -> TokenFuture<'_> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.jwt.token()
    }
}

fn oauth_config(bootstrap: &str, provider: Arc<dyn OAuthBearerTokenProvider>) -> ProducerConfig {
    let mut cfg = ProducerConfig::from_properties(&[
        ("bootstrap.servers", bootstrap),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "OAUTHBEARER"),
        ("enable.sasl.oauthbearer.unsecure.jwt", "true"),
        ("sasl.oauthbearer.config", "principal=unused"),
    ])
    .unwrap();
    cfg.sasl.oauthbearer_token_provider(provider);
    cfg
}

fn oauth_broker() -> MockBroker {
    let broker = MockBroker::start_with_sasl(SaslUser {
        mechanisms: vec!["OAUTHBEARER"],
        username: "alice".into(),
        ..SaslUser::default()
    });
    broker.create_topic("t", 2);
    broker
}

/// The broker ends each session when the token expires (3 s tokens): the
/// producer re-authenticates on the same connection with a token refreshed
/// before expiry, so no connection is closed for an ended session, no
/// expired token is refused, and every record is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_tokens_are_refreshed_and_sessions_renewed_before_they_end() {
    let broker = oauth_broker();
    let tokens = CountingTokens::new("alice", 3);
    let sent = produce_through_reauthentications(
        &broker,
        oauth_config(&broker.bootstrap(), tokens.clone()),
        3,
        500,
    )
    .await;
    let counts = renewed_cleanly(&broker);
    assert!(counts.reauthentications >= 3, "{counts:?}");
    // One token per session at least: each re-authentication found its
    // token past the refresh point (80-85 % of 3 s) and asked for a new one.
    assert!(
        tokens.calls.load(Ordering::SeqCst) >= 4,
        "{} calls",
        tokens.calls.load(Ordering::SeqCst)
    );
    assert_eq!(stored(&broker, 2), sent);
}

/// Development brokers accept unsecured JWTs made from properties alone;
/// a token for the wrong subject is refused with the broker's status, and
/// a provider's failure is reported as itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_from_properties_and_its_refusals() {
    let broker = oauth_broker();
    crate::send_all(
        ProducerConfig::from_properties(&[
            ("bootstrap.servers", broker.bootstrap().as_str()),
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("enable.sasl.oauthbearer.unsecure.jwt", "true"),
            (
                "sasl.oauthbearer.config",
                "principal=alice lifeSeconds=600 scope=produce",
            ),
        ])
        .unwrap(),
        50,
    )
    .await;
    assert_eq!(stored(&broker, 2), 50);

    let e = crate::first_send_error(oauth_config(
        &broker.bootstrap(),
        CountingTokens::new("mallory", 600),
    ))
    .await;
    let msg = e.to_string();
    assert!(matches!(e, Error::Security { .. }), "{e:?}");
    assert!(
        msg.contains("SASL OAUTHBEARER authentication as `mallory` failed")
            && msg.contains("invalid_token")
            && msg.contains("token provider"),
        "{msg}"
    );

    struct Down;
    impl OAuthBearerTokenProvider for Down {
        fn token(&self) -> TokenFuture<'_> {
            Box::pin(async { Err("identity provider unreachable".to_string()) })
        }
    }
    let e = crate::first_send_error(oauth_config(&broker.bootstrap(), Arc::new(Down))).await;
    assert!(matches!(e, Error::Security { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("SASL OAUTHBEARER cannot start: the token provider failed: identity provider unreachable"),
        "{e}"
    );
}

const AKID: &str = "AKIDEXAMPLEHERALD";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "FwoGZXIvYXdzEXAMPLETOKEN";

struct Static(AwsCredentials);

impl AwsCredentialsProvider for Static {
    fn credentials(&self) -> CredentialsFuture<'_> {
        let c = self.0.clone();
        Box::pin(async move { Ok(c) })
    }
}

fn iam_config(bootstrap: &str, region: &str, secret: &str) -> ProducerConfig {
    let mut cfg = ProducerConfig::from_properties(&[
        ("bootstrap.servers", bootstrap),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "AWS_MSK_IAM"),
        ("sasl.aws.region", region),
    ])
    .unwrap();
    cfg.sasl
        .aws_credentials_provider(Arc::new(Static(AwsCredentials {
            access_key_id: AKID.into(),
            secret_access_key: Secret::new(secret),
            session_token: Some(Secret::new(TOKEN)),
        })));
    cfg
}

/// Signed with the right key and region, the producer is let in and
/// re-authenticates (with a new signature) before each 1.5 s session ends,
/// records in flight when it does; a wrong secret or region is refused with
/// what to check, and no secret appears in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_msk_iam_signatures_are_accepted_renewed_and_refused_when_wrong() {
    let broker = MockBroker::start_with_sasl(SaslUser {
        mechanisms: vec!["AWS_MSK_IAM"],
        aws: Some(AwsUser {
            access_key_id: AKID.into(),
            secret_access_key: SECRET.into(),
            session_token: Some(TOKEN.into()),
            region: "eu-west-1".into(),
        }),
        session_lifetime: Some(Duration::from_millis(1500)),
        ..SaslUser::default()
    });
    broker.create_topic("t", 2);
    let sent = produce_through_reauthentications(
        &broker,
        iam_config(&broker.bootstrap(), "eu-west-1", SECRET),
        3,
        500,
    )
    .await;
    renewed_cleanly(&broker);
    assert_eq!(stored(&broker, 2), sent);

    for (region, secret) in [("eu-west-1", "not-the-secret"), ("us-east-1", SECRET)] {
        let e = crate::first_send_error(iam_config(&broker.bootstrap(), region, secret)).await;
        assert!(matches!(e, Error::Security { .. }), "{e:?}");
        let msg = format!("{e} {e:?}");
        assert!(
            msg.contains(&format!(
                "SASL AWS_MSK_IAM authentication as `{AKID}` failed"
            )) && msg.contains("Access denied")
                && msg.contains("kafka-cluster:Connect"),
            "{msg}"
        );
        assert!(!msg.contains(secret) && !msg.contains(TOKEN), "{msg}");
    }
}

/// Without credentials anywhere, the error says where herald looked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_msk_iam_without_credentials_says_where_it_looked() {
    let broker = MockBroker::start_with_sasl(SaslUser {
        mechanisms: vec!["AWS_MSK_IAM"],
        ..SaslUser::default()
    });
    let e = crate::first_send_error(
        ProducerConfig::from_properties(&[
            ("bootstrap.servers", broker.bootstrap().as_str()),
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "AWS_MSK_IAM"),
            ("sasl.aws.region", "eu-west-1"),
            ("sasl.aws.profile", "herald-test-no-such-profile"),
        ])
        .unwrap(),
    )
    .await;
    assert!(matches!(e, Error::Security { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("SASL AWS_MSK_IAM cannot start")
            && msg.contains("herald-test-no-such-profile")
            && msg.contains("credentials"),
        "{msg}"
    );
}
