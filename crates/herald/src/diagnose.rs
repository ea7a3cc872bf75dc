//! One broker's connection, checked stage by stage, for `herald doctor`:
//! the address resolves, a TCP connection is accepted, TLS verifies, the
//! broker speaks Kafka (ApiVersions), SASL authenticates. The producer does
//! all of this in one `connect`; a person onboarding needs to know which
//! stage failed, so each runs on its own (a fresh connection per stage)
//! and the first failure stops the rest.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::config::{ProducerConfig, SecurityProtocol};
use crate::connection::Connection;
use crate::sasl::SaslConfig;

/// A stage of connecting, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The host name resolves.
    Resolve,
    /// A TCP connection is accepted.
    Connect,
    /// The TLS handshake verifies the broker (SSL, SASL_SSL).
    Tls,
    /// The broker answers ApiVersions.
    Kafka,
    /// SASL authenticates (SASL_PLAINTEXT, SASL_SSL).
    Sasl,
}

impl Stage {
    /// The stage's name in a report.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Resolve => "resolve",
            Stage::Connect => "connect",
            Stage::Tls => "tls",
            Stage::Kafka => "kafka",
            Stage::Sasl => "sasl",
        }
    }
}

/// How a stage went; each says what it saw, a failure what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It worked; what was seen.
    Passed(String),
    /// It did not; why, and what to do.
    Failed(String),
    /// Not needed with these settings, or not run after a failure.
    Skipped(String),
}

/// The stages in order.
const STAGES: [Stage; 5] = [
    Stage::Resolve,
    Stage::Connect,
    Stage::Tls,
    Stage::Kafka,
    Stage::Sasl,
];

/// A failed stage: record it, skip every later one saying `skip_why`, and
/// give back the finished report.
fn stop(
    mut out: Vec<(Stage, Outcome)>,
    stage: Stage,
    why: String,
    skip_why: &str,
) -> Vec<(Stage, Outcome)> {
    out.push((stage, Outcome::Failed(why)));
    let next = STAGES
        .iter()
        .position(|s| *s == stage)
        .map_or(STAGES.len(), |i| i + 1);
    for s in &STAGES[next..] {
        out.push((*s, Outcome::Skipped(skip_why.to_string())));
    }
    out
}

/// Check the connection to `addr` (`host:port`) as `cfg` would make it.
/// Returns every stage's outcome in order; stages after a failure are
/// skipped, saying why.
pub async fn check_broker(cfg: &ProducerConfig, addr: &str) -> Vec<(Stage, Outcome)> {
    let mut out = Vec::new();
    let setup = cfg.connection_setup_timeout;
    let tls_on = matches!(
        cfg.security_protocol,
        SecurityProtocol::Ssl | SecurityProtocol::SaslSsl
    );
    let sasl = match cfg.sasl() {
        Ok(s) => s,
        Err(e) => {
            out.push((Stage::Sasl, Outcome::Failed(e.to_string())));
            return out;
        }
    };

    let resolved = match resolve(addr, setup).await {
        Ok(r) => r,
        Err(why) => return stop(out, Stage::Resolve, why, "the address does not resolve"),
    };
    out.push((Stage::Resolve, Outcome::Passed(resolved)));

    let started = Instant::now();
    let tcp = match connect(addr, setup).await {
        Ok(s) => s,
        Err(why) => return stop(out, Stage::Connect, why, "no connection"),
    };
    out.push((
        Stage::Connect,
        Outcome::Passed(format!(
            "{addr} ({}) accepted a TCP connection in {} ms",
            tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default(),
            started.elapsed().as_millis()
        )),
    ));

    let connector = match crate::tls::connector(cfg) {
        Ok(c) => c,
        Err(e) => return stop(out, Stage::Tls, e.to_string(), "TLS is not set up"),
    };
    match (&connector, tls_on) {
        (Some(connector), true) => match tls(cfg, connector, tcp, addr).await {
            Ok(seen) => out.push((Stage::Tls, Outcome::Passed(seen))),
            Err(why) => return stop(out, Stage::Tls, why, "TLS failed"),
        },
        _ => {
            drop(tcp);
            out.push((
                Stage::Tls,
                Outcome::Skipped(format!(
                    "security.protocol={} (no TLS)",
                    cfg.security_protocol.name()
                )),
            ));
        }
    }

    // Kafka: ApiVersions, before any authentication (Kafka allows it).
    let request_timeout = cfg.request_timeout.min(Duration::from_secs(30));
    let connect_with = |with_sasl: bool| {
        Connection::connect(
            addr,
            &cfg.client_id,
            setup,
            request_timeout,
            connector.as_ref(),
            sasl.as_ref().filter(|_| with_sasl),
        )
    };
    match connect_with(false).await {
        Ok(conn) => out.push((
            Stage::Kafka,
            Outcome::Passed(format!(
                "the broker answers ApiVersions ({} APIs; Produce v{})",
                conn.api_count(),
                conn.max_version(0)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "?".into())
            )),
        )),
        Err(e) => {
            let hint = if tls_on {
                ""
            } else {
                " (if the port expects TLS, set security.protocol=SSL or SASL_SSL)"
            };
            return stop(
                out,
                Stage::Kafka,
                format!("{e}{hint}"),
                "the broker does not speak Kafka here",
            );
        }
    }

    let Some(s) = &sasl else {
        out.push((
            Stage::Sasl,
            Outcome::Skipped(format!(
                "security.protocol={} (no SASL)",
                cfg.security_protocol.name()
            )),
        ));
        return out;
    };
    // A token or credentials provider gets the request timeout.
    let who = match tokio::time::timeout(request_timeout, s.identity(addr)).await {
        Ok(w) => w,
        Err(_) => format!(
            "(who: the {} provider did not answer within {} ms)",
            s.mechanism(),
            request_timeout.as_millis()
        ),
    };
    match connect_with(true).await {
        Ok(_) => out.push((
            Stage::Sasl,
            Outcome::Passed(format!("{} authenticated {who}", s.mechanism())),
        )),
        // The error names a user already; AWS's region and a token's
        // principal are added.
        Err(e) => {
            let more = match s {
                SaslConfig::AwsMskIam { .. } | SaslConfig::OAuthBearer { .. } => {
                    format!(" [{who}]")
                }
                _ => String::new(),
            };
            out.push((Stage::Sasl, Outcome::Failed(format!("{e}{more}"))))
        }
    }
    out
}

/// The addresses `addr` resolves to, as the report says them.
async fn resolve(addr: &str, setup: Duration) -> Result<String, String> {
    match tokio::time::timeout(setup, tokio::net::lookup_host(addr)).await {
        Ok(Ok(addrs)) => {
            let shown: Vec<String> = addrs.map(|a: SocketAddr| a.to_string()).collect();
            Ok(format!("{addr} is {}", shown.join(", ")))
        }
        Ok(Err(e)) => Err(format!(
            "`{addr}` does not resolve ({e}); check the host name in bootstrap.servers \
             and this machine's DNS"
        )),
        Err(_) => Err(format!(
            "`{addr}` did not resolve within {} ms",
            setup.as_millis()
        )),
    }
}

/// A TCP connection to `addr`, or why not and what to check.
async fn connect(addr: &str, setup: Duration) -> Result<TcpStream, String> {
    match tokio::time::timeout(setup, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => {
            let hint = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    "nothing listens there: check the port, and that the broker is up"
                }
                _ => "check the address, the port, and firewalls or security groups between here and the broker",
            };
            Err(format!(
                "{addr} refused or failed the connection ({e}); {hint}"
            ))
        }
        Err(_) => Err(format!(
            "{addr}: no connection within socket.connection.setup.timeout.ms={} ms; a \
             firewall or security group drops the packets, or the host is down",
            setup.as_millis()
        )),
    }
}

/// The TLS handshake on `tcp`: the version and what was verified.
async fn tls(
    cfg: &ProducerConfig,
    connector: &tokio_rustls::TlsConnector,
    tcp: TcpStream,
    addr: &str,
) -> Result<String, String> {
    let setup = cfg.connection_setup_timeout;
    match tokio::time::timeout(setup, crate::tls::handshake(connector, tcp, addr)).await {
        Ok(Ok(stream)) => {
            let (_, session) = stream.get_ref();
            let version = session
                .protocol_version()
                .map(|v| format!("{v:?}").replace('_', "."))
                .unwrap_or_default();
            let what = if cfg.ssl_verify_hostname {
                format!(
                    "the certificate is valid for `{}`",
                    crate::connection::host_of(addr)
                )
            } else {
                "the certificate chain is trusted (host name not checked: \
                 ssl.endpoint.identification.algorithm is empty)"
                    .to_string()
            };
            Ok(format!("{version}: {what}"))
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no TLS handshake within {} ms: is {addr} a TLS port?",
            setup.as_millis()
        )),
    }
}

impl SaslConfig {
    /// Who authenticates, for a report: the user name, the token's
    /// principal, or AWS's access key id and region. Never a secret.
    pub async fn identity(&self, addr: &str) -> String {
        match self {
            SaslConfig::Plain { username, .. } | SaslConfig::Scram { username, .. } => {
                format!("as user `{username}`")
            }
            SaslConfig::OAuthBearer { tokens } => match tokens.token().await {
                Ok(t) => format!("as principal `{}`", t.principal),
                Err(e) => format!("(no token: {e})"),
            },
            SaslConfig::AwsMskIam { .. } => {
                let region = match self.aws_region(addr) {
                    Ok(r) => format!("region `{r}`"),
                    Err(e) => e,
                };
                match self.aws_access_key().await {
                    Ok(id) => format!("as access key `{id}`, {region}"),
                    Err(e) => format!("(no AWS credentials: {e}), {region}"),
                }
            }
        }
    }
}
