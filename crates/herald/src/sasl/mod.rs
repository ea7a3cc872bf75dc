//! SASL authentication (`security.protocol` SASL_PLAINTEXT or SASL_SSL),
//! one module per mechanism behind one trait.
//!
//! After a connection is up (and its API versions known), the client sends
//! SaslHandshake with its mechanism, then SaslAuthenticate requests carrying
//! the mechanism's messages until it is done. A refusal (wrong credentials,
//! a mechanism the broker does not enable) is an [`Error::Security`] that
//! says what to check; it is not retried.

mod aws_msk_iam;
mod plain;
mod scram;
mod sigv4;

use std::fmt;

pub use scram::ScramHash;

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl SaslConfig {
    /// The mechanism's name as Kafka spells it.
    pub fn mechanism(&self) -> &'static str {
        match self {
            SaslConfig::Plain { .. } => "PLAIN",
            SaslConfig::Scram { hash, .. } => hash.mechanism(),
        }
    }

    pub(crate) fn username(&self) -> &str {
        match self {
            SaslConfig::Plain { username, .. } | SaslConfig::Scram { username, .. } => username,
        }
    }

    /// A fresh exchange for one connection.
    pub(crate) fn start(&self) -> Box<dyn Mechanism> {
        match self {
            SaslConfig::Plain { username, password } => {
                Box::new(plain::Plain::new(username, password.expose()))
            }
            SaslConfig::Scram {
                hash,
                username,
                password,
            } => Box::new(scram::Scram::new(*hash, username, password.expose())),
        }
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

/// An authentication failure, naming the user and mechanism, never the
/// password.
pub(crate) fn refused(broker: &str, sasl: &SaslConfig, why: &str) -> Error {
    Error::Security {
        broker: format!("broker {broker}"),
        message: format!(
            "SASL {} authentication as `{}` failed: {why}; check sasl.username and sasl.password",
            sasl.mechanism(),
            sasl.username()
        ),
    }
}

/// Authenticate a new connection: SaslHandshake with the mechanism, then
/// SaslAuthenticate until the mechanism is done.
pub(crate) async fn authenticate(
    conn: &crate::connection::Connection,
    sasl: &SaslConfig,
) -> Result<(), Error> {
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
    let v = conn.version::<SaslAuthenticateRequest>((0, 2))?;
    let mut mechanism = sasl.start();
    let mut from_server: Vec<u8> = Vec::new();
    loop {
        match mechanism
            .step(&from_server)
            .map_err(|why| refused(&addr, sasl, &why))?
        {
            Step::Done => return Ok(()),
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
                            "the broker closed the connection instead of answering (how some \
                             brokers refuse credentials)",
                        ),
                        other => other,
                    })?;
                if r.error_code == SASL_AUTHENTICATION_FAILED {
                    let why = r.error_message.as_ref().map_or_else(
                        || "the broker refused the credentials".to_string(),
                        |m| format!("the broker said `{}`", m.as_str()),
                    );
                    return Err(refused(&addr, sasl, &why));
                }
                if r.error_code != 0 {
                    return Err(broker_error(
                        r.error_code,
                        "SaslAuthenticate",
                        r.error_message.map(|m| m.to_string()),
                    ));
                }
                from_server = r.auth_bytes.to_vec();
            }
        }
    }
}

/// UNSUPPORTED_SASL_MECHANISM.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
/// SASL_AUTHENTICATION_FAILED.
const SASL_AUTHENTICATION_FAILED: i16 = 58;
