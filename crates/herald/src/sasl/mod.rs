//! SASL authentication (`security.protocol` SASL_PLAINTEXT or SASL_SSL),
//! one module per mechanism behind one trait.
//!
//! After a connection is up (and its API versions known), the client sends
//! SaslHandshake with its mechanism, then SaslAuthenticate requests carrying
//! the mechanism's messages until it is done. A refusal (wrong credentials,
//! a mechanism the broker does not enable) is an [`Error::Security`] that
//! says what to check; it is not retried.

mod aws_msk_iam;
mod oauthbearer;
mod plain;
mod scram;
mod settings;
mod sigv4;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use aws_msk_iam::{AwsCredentials, AwsCredentialsProvider, CredentialsFuture, EnvOrProfile};
pub use oauthbearer::{
    OAuthBearerToken, OAuthBearerTokenProvider, RefreshSettings, TokenCache, TokenFuture,
    UnsecuredJwt,
};
pub use scram::ScramHash;
pub use settings::{SaslSettings, PROPERTIES};

use crate::error::Error;

/// A SASL password or token: shown as `***` in `Debug` output, never
/// logged, never put in an error.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The mechanism named by `sasl.mechanism`, with its credentials.
#[derive(Clone)]
pub enum SaslConfig {
    /// `PLAIN` (RFC 4616): username and password in the clear; use it over
    /// TLS (`SASL_SSL`).
    Plain {
        /// `sasl.username`.
        username: String,
        /// `sasl.password`.
        password: Secret,
    },
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512` (RFC 5802, RFC 7677): the
    /// password never crosses the wire.
    Scram {
        /// Which hash.
        hash: ScramHash,
        /// `sasl.username`.
        username: String,
        /// `sasl.password`.
        password: Secret,
    },
    /// `OAUTHBEARER` (RFC 7628): a bearer token from the application's
    /// provider, refreshed before it expires.
    OAuthBearer {
        /// The token in use and its provider.
        tokens: Arc<TokenCache>,
    },
    /// `AWS_MSK_IAM`: a SigV4-signed request to connect, made with AWS
    /// credentials.
    AwsMskIam {
        /// `sasl.aws.region`; without it, `AWS_REGION`, then the region in
        /// the broker's host name.
        region: Option<String>,
        /// Where the credentials come from.
        credentials: Arc<dyn AwsCredentialsProvider>,
    },
}

impl fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaslConfig::Plain { username, password } => f
                .debug_struct("Plain")
                .field("username", username)
                .field("password", password)
                .finish(),
            SaslConfig::Scram {
                hash,
                username,
                password,
            } => f
                .debug_struct("Scram")
                .field("hash", hash)
                .field("username", username)
                .field("password", password)
                .finish(),
            SaslConfig::OAuthBearer { tokens } => f
                .debug_struct("OAuthBearer")
                .field("tokens", tokens)
                .finish(),
            SaslConfig::AwsMskIam { region, .. } => f
                .debug_struct("AwsMskIam")
                .field("region", region)
                .finish_non_exhaustive(),
        }
    }
}

impl SaslConfig {
    /// The mechanism's name as Kafka spells it.
    pub fn mechanism(&self) -> &'static str {
        match self {
            SaslConfig::Plain { .. } => "PLAIN",
            SaslConfig::Scram { hash, .. } => hash.mechanism(),
            SaslConfig::OAuthBearer { .. } => "OAUTHBEARER",
            SaslConfig::AwsMskIam { .. } => "AWS_MSK_IAM",
        }
    }

    /// What to check when the broker refuses.
    fn what_to_check(&self) -> &'static str {
        match self {
            SaslConfig::Plain { .. } | SaslConfig::Scram { .. } => {
                "check sasl.username and sasl.password"
            }
            SaslConfig::OAuthBearer { .. } => {
                "check the token provider (or sasl.oauthbearer.config) and what the broker \
                 accepts: issuer, audience, expiry, scope"
            }
            SaslConfig::AwsMskIam { .. } => {
                "check the AWS credentials, sasl.aws.region, and that the IAM policy allows \
                 kafka-cluster:Connect on this cluster"
            }
        }
    }

    /// A fresh exchange for one connection to `addr` (`host:port`): the
    /// credentials it needs are fetched now (a token, AWS credentials), and
    /// who is authenticating, for errors.
    pub(crate) async fn begin(&self, addr: &str) -> Result<(Box<dyn Mechanism>, String), String> {
        Ok(match self {
            SaslConfig::Plain { username, password } => (
                Box::new(plain::Plain::new(username, password.expose())),
                username.clone(),
            ),
            SaslConfig::Scram {
                hash,
                username,
                password,
            } => (
                Box::new(scram::Scram::new(*hash, username, password.expose())),
                username.clone(),
            ),
            SaslConfig::OAuthBearer { tokens } => {
                let token = tokens.token().await?;
                (
                    Box::new(oauthbearer::OAuthBearer::new(&token)),
                    token.principal,
                )
            }
            SaslConfig::AwsMskIam { credentials, .. } => {
                let host = crate::connection::host_of(addr);
                let region = self.aws_region(addr)?;
                let creds =
                    contained("the AWS credentials provider", credentials.credentials()).await?;
                let who = creds.access_key_id.clone();
                (
                    Box::new(aws_msk_iam::AwsMskIam::new(&creds, &region, host)),
                    who,
                )
            }
        })
    }
}

impl SaslConfig {
    /// AWS_MSK_IAM's signing region for `addr`: `sasl.aws.region`, else
    /// `AWS_REGION`, `AWS_DEFAULT_REGION`, then the region in an MSK host
    /// name.
    pub(crate) fn aws_region(&self, addr: &str) -> Result<String, String> {
        let SaslConfig::AwsMskIam { region, .. } = self else {
            return Err("not AWS_MSK_IAM".into());
        };
        let host = crate::connection::host_of(addr);
        let env = |k: &str| std::env::var(k).ok().filter(|r| !r.is_empty());
        region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| aws_msk_iam::region_from_host(host))
            .ok_or_else(|| {
                format!("no AWS region: set sasl.aws.region (or AWS_REGION); `{host}` does not name one")
            })
    }

    /// AWS_MSK_IAM's access key id (the public half), from its provider.
    pub(crate) async fn aws_access_key(&self) -> Result<String, String> {
        let SaslConfig::AwsMskIam { credentials, .. } = self else {
            return Err("not AWS_MSK_IAM".into());
        };
        contained("the AWS credentials provider", credentials.credentials())
            .await
            .map(|c| c.access_key_id)
    }
}

/// One side of a SASL exchange: each call takes the server's last message
/// (empty at the start) and gives the next one to send, until `Done`.
pub(crate) trait Mechanism: Send {
    fn step(&mut self, from_server: &[u8]) -> Result<Step, String>;
}

/// What a mechanism wants next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send these bytes in a SaslAuthenticate request.
    Send(Vec<u8>),
    /// Authenticated (the server's last message checked out).
    Done,
}

/// An authentication failure, naming the mechanism and who, never the
/// secret.
pub(crate) fn refused(broker: &str, sasl: &SaslConfig, who: &str, why: &str) -> Error {
    let who = if who.is_empty() {
        String::new()
    } else {
        format!(" as `{who}`")
    };
    Error::Security {
        broker: format!("broker {broker}"),
        message: format!(
            "SASL {} authentication{who} failed: {why}; {}",
            sasl.mechanism(),
            sasl.what_to_check()
        ),
    }
}

/// Credentials a mechanism could not get (a token provider's error, no
/// AWS credentials): a security error, not retried.
pub(crate) fn cannot_begin(broker: &str, sasl: &SaslConfig, why: &str) -> Error {
    Error::Security {
        broker: format!("broker {broker}"),
        message: format!("SASL {} cannot start: {why}", sasl.mechanism()),
    }
}

/// Authenticate a connection: fetch what the mechanism needs, then run
/// the exchange. Returns the session lifetime the broker set (KIP-368),
/// after which the connection must authenticate again.
pub(crate) async fn authenticate(
    conn: &crate::connection::Connection,
    sasl: &SaslConfig,
    provider_timeout: Duration,
) -> Result<Option<Duration>, Error> {
    let (mechanism, who) = begin_within(sasl, conn.addr(), provider_timeout)
        .await
        .map_err(|why| cannot_begin(conn.addr(), sasl, &why))?;
    exchange(conn, sasl, mechanism, &who).await
}

/// `begin`, bounded: a hung token or credentials provider must not hold
/// the connection (and everyone waiting for it) forever.
async fn begin_within(
    sasl: &SaslConfig,
    addr: &str,
    timeout: Duration,
) -> Result<(Box<dyn Mechanism>, String), String> {
    match tokio::time::timeout(timeout, sasl.begin(addr)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the credentials were not ready within request.timeout.ms={} ms (is the token or \
             credentials provider stuck?)",
            timeout.as_millis()
        )),
    }
}

/// SaslHandshake with the mechanism, then SaslAuthenticate until the
/// mechanism is done; the same on a first authentication and on a
/// re-authentication (KIP-368).
pub(crate) async fn exchange(
    conn: &crate::connection::Connection,
    sasl: &SaslConfig,
    mut mechanism: Box<dyn Mechanism>,
    who: &str,
) -> Result<Option<Duration>, Error> {
    use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
    use kafka_protocol::protocol::StrBytes;

    use crate::error::KafkaCode;

    let addr = conn.addr().to_string();
    let broker_error = |code: i16, what: &str, message: Option<String>| Error::Broker {
        code: KafkaCode(code),
        partition: None,
        broker: addr.clone(),
        message: Some(message.map_or_else(|| what.to_string(), |m| format!("{what}: {m}"))),
    };
    // v1: the mechanism's messages then travel in SaslAuthenticate.
    let v = conn.version::<SaslHandshakeRequest>((1, 1))?;
    let resp = conn
        .request(
            SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str(sasl.mechanism())),
            v,
        )
        .await
        .map_err(|e| match e {
            // Some brokers (Tansu 0.6.0) close the connection rather than
            // answer UNSUPPORTED_SASL_MECHANISM.
            Error::Connection { .. } => Error::Security {
                broker: format!("broker {addr}"),
                message: format!(
                    "the broker closed the connection when asked for SASL {}: it may not \
                     enable that mechanism, or not SASL on this listener; check sasl.mechanism \
                     and security.protocol",
                    sasl.mechanism()
                ),
            },
            other => other,
        })?;
    if resp.error_code == UNSUPPORTED_SASL_MECHANISM {
        let enabled: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(Error::Security {
            broker: format!("broker {addr}"),
            message: format!(
                "the broker does not enable SASL {} (it enables: {}); set sasl.mechanism to one of those",
                sasl.mechanism(),
                enabled.join(", ")
            ),
        });
    }
    if resp.error_code != 0 {
        return Err(broker_error(resp.error_code, "SaslHandshake", None));
    }
    // v1 and later carry the session lifetime (KIP-368).
    let v = conn.version::<SaslAuthenticateRequest>((0, 2))?;
    let mut from_server: Vec<u8> = Vec::new();
    let mut lifetime = None;
    loop {
        match mechanism
            .step(&from_server)
            .map_err(|why| refused(&addr, sasl, who, &why))?
        {
            Step::Done => return Ok(lifetime),
            Step::Send(bytes) => {
                let r = conn
                    .request(
                        SaslAuthenticateRequest::default().with_auth_bytes(bytes.into()),
                        v,
                    )
                    .await
                    .map_err(|e| match e {
                        // Some brokers (Tansu 0.6.0) refuse credentials by
                        // closing the connection instead of answering.
                        Error::Connection { .. } => refused(
                            &addr,
                            sasl,
                            who,
                            "the broker closed the connection instead of answering (how some \
                             brokers refuse credentials, unless the network failed)",
                        ),
                        other => other,
                    })?;
                if r.error_code == SASL_AUTHENTICATION_FAILED {
                    let why = r.error_message.as_ref().map_or_else(
                        || "the broker refused the credentials".to_string(),
                        |m| format!("the broker said `{}`", m.as_str()),
                    );
                    return Err(refused(&addr, sasl, who, &why));
                }
                if r.error_code != 0 {
                    return Err(broker_error(
                        r.error_code,
                        "SaslAuthenticate",
                        r.error_message.map(|m| m.to_string()),
                    ));
                }
                if r.session_lifetime_ms > 0 {
                    lifetime = Some(Duration::from_millis(r.session_lifetime_ms as u64));
                }
                from_server = r.auth_bytes.to_vec();
            }
        }
    }
}

/// Run each mechanism's client over server messages read off `data` (the
/// fuzz target `sasl_server`): whatever a server sends, a step returns an
/// error or the next message, never panics or stalls.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_steps(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let token = OAuthBearerToken {
        value: Secret::new("eyJ.e30."),
        expires_at: std::time::UNIX_EPOCH,
        principal: "p".into(),
        extensions: vec![],
    };
    let creds = AwsCredentials {
        access_key_id: "AKID".into(),
        secret_access_key: Secret::new("s"),
        session_token: None,
    };
    let mut m: Box<dyn Mechanism> = match which % 5 {
        0 => Box::new(scram::Scram::with_nonce(
            ScramHash::Sha256,
            "u",
            "p",
            "fuzz",
        )),
        1 => Box::new(scram::Scram::with_nonce(
            ScramHash::Sha512,
            "u",
            "p",
            "fuzz",
        )),
        2 => Box::new(oauthbearer::OAuthBearer::new(&token)),
        3 => Box::new(aws_msk_iam::AwsMskIam::new(&creds, "us-east-1", "h")),
        _ => Box::new(plain::Plain::new("u", "p")),
    };
    if m.step(b"").is_err() {
        return;
    }
    // Server messages separated by 0xFF (never valid UTF-8).
    for msg in rest.split(|b| *b == 0xff).take(4) {
        match m.step(msg) {
            Ok(Step::Send(_)) => {}
            Ok(Step::Done) | Err(_) => return,
        }
    }
}

/// When to re-authenticate a session of `lifetime`: a random point 85 % to
/// 95 % of the way through (`jitter01` in [0, 1)), as the Java client
/// picks, so that connections spread out and finish before the broker
/// would close them.
pub(crate) fn reauth_after(lifetime: Duration, jitter01: f64) -> Duration {
    let at = lifetime.mul_f64(0.85 + 0.10 * jitter01.clamp(0.0, 1.0));
    // Kafka refuses a re-authentication within 1 s of the last one; wait
    // that long if the session allows it.
    at.max(MIN_REAUTH_INTERVAL.min(lifetime.mul_f64(0.95)))
}

/// Kafka brokers' minimum time between re-authentications.
const MIN_REAUTH_INTERVAL: Duration = Duration::from_secs(1);

/// Re-authenticate (KIP-368) a connection before each session the broker
/// sets runs out, on the same connection: credentials are fetched first
/// (a token refresh, AWS credentials), then the connection stops taking
/// requests, waits for the responses of those in flight, runs the
/// exchange on its own lane, and goes on. A failure fails the connection
/// (its requests are retried on a new one, whose authentication reports
/// why); so does a session that ends without re-authentication.
pub(crate) async fn keep_authenticated(
    lane: crate::connection::Connection,
    sasl: SaslConfig,
    mut lifetime: Duration,
    provider_timeout: Duration,
) {
    loop {
        let due = tokio::time::Instant::now() + reauth_after(lifetime, rand::random::<f64>());
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = lane.closed() => return,
        }
        let failed = |why: String| Error::Connection {
            broker: lane.addr().to_string(),
            message: format!("SASL re-authentication failed: {why}"),
            kind: None,
        };
        let begun = tokio::select! {
            b = begin_within(&sasl, lane.addr(), provider_timeout) => b,
            _ = lane.closed() => return,
        };
        let (mechanism, who) = match begun {
            Ok(m) => m,
            Err(why) => return lane.fail(failed(why)),
        };
        if !lane.pause_and_drain().await {
            return;
        }
        let started = tokio::time::Instant::now();
        match exchange(&lane, &sasl, mechanism, &who).await {
            Ok(next) => {
                tracing::debug!(broker = lane.addr(), paused = ?started.elapsed(), "SASL re-authenticated");
                lane.resume();
                match next {
                    Some(l) => lifetime = l,
                    // The broker no longer limits the session.
                    None => return,
                }
            }
            Err(e) => return lane.fail(failed(e.to_string())),
        }
    }
}

/// UNSUPPORTED_SASL_MECHANISM.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
/// SASL_AUTHENTICATION_FAILED.
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// Await an application's provider (a token or credentials provider),
/// turning a panic inside it into an error: a provider runs on the
/// producer's own tasks, which must outlive any bug in it.
pub(crate) async fn contained<T>(
    what: &str,
    provider: std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, String>> + Send + '_>>,
) -> Result<T, String> {
    CatchUnwind(provider)
        .await
        .unwrap_or_else(|panic| Err(format!("{what} panicked: {panic}")))
}

/// Polls the inner future inside `catch_unwind`; a panic ends it with the
/// panic's message.
struct CatchUnwind<F>(F);

impl<F: std::future::Future + Unpin> std::future::Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::pin::Pin::new(inner).poll(cx)
        })) {
            Ok(p) => p.map(Ok),
            Err(payload) => std::task::Poll::Ready(Err(payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reauthentication_between_85_and_95_percent_of_the_session() {
        let l = Duration::from_secs(100);
        assert_eq!(reauth_after(l, 0.0), Duration::from_secs(85));
        assert_eq!(reauth_after(l, 0.5), Duration::from_secs(90));
        assert!(reauth_after(l, 0.999_999) < Duration::from_secs(95));
        // Not sooner than the broker's one second, while the session lasts.
        assert_eq!(
            reauth_after(Duration::from_millis(1100), 0.0),
            Duration::from_secs(1)
        );
        assert_eq!(
            reauth_after(Duration::from_millis(500), 1.0),
            Duration::from_millis(475)
        );
    }
}
