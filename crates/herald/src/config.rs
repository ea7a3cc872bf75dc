//! Producer configuration: one struct, the Java client's defaults, Kafka's
//! property names.
//!
//! Build it three ways: [`ProducerConfig::new`] plus the typed setters,
//! [`ProducerConfig::from_properties`] with Kafka property names
//! (`bootstrap.servers`, `linger.ms`, …), or [`ProducerConfig::set`] one
//! property at a time. [`ProducerConfig::validate`] runs when the producer is
//! built; every error names the key and what it expects.

use std::time::Duration;

use crate::compression::{Compression, GZIP_DEFAULT_LEVEL, ZSTD_DEFAULT_LEVEL};
use crate::error::Error;
use crate::sasl::{SaslConfig, SaslSettings};

/// How many replicas must acknowledge a write (`acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: the broker does not answer; offsets are unknown (-1).
    None,
    /// `acks=1`: the leader has written the record.
    Leader,
    /// `acks=all` (or `-1`): every in-sync replica has it. The default.
    All,
}

impl Acks {
    pub(crate) fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// How to talk to brokers (`security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    /// `PLAINTEXT` (the default): TCP, no authentication.
    #[default]
    Plaintext,
    /// `SSL`: TLS (rustls), optionally with a client certificate.
    Ssl,
    /// `SASL_PLAINTEXT`: SASL authentication over TCP.
    SaslPlaintext,
    /// `SASL_SSL`: SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether connections use TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Kafka's name for it.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

/// Producer settings. Field docs name the Kafka property and its default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// `bootstrap.servers`: `host:port` pairs used to discover the cluster.
    /// Required.
    pub bootstrap_servers: Vec<String>,
    /// `client.id` (default `herald`): sent with every request, for broker logs and quotas.
    pub client_id: String,
    /// `acks` (default `all`).
    pub acks: Acks,
    /// `linger.ms` (default 5): how long a batch waits for more records
    /// before it is sent, trading latency for fewer, larger requests.
    pub linger: Duration,
    /// `batch.size` (default 16384): bytes per partition batch; a full
    /// batch is sent at once.
    pub batch_size: usize,
    /// `buffer.memory` (default 33554432): bytes of records waiting to be
    /// sent, across all partitions (each record counts its encoded size
    /// plus its bookkeeping, about 110 bytes). When full, `send` waits.
    pub buffer_memory: usize,
    /// `max.block.ms` (default 60000): how long `send` may wait for buffer
    /// space or for topic metadata before it fails.
    pub max_block: Duration,
    /// `delivery.timeout.ms` (default 120000): upper bound on the time from
    /// `send` to an outcome, retries included.
    pub delivery_timeout: Duration,
    /// `request.timeout.ms` (default 30000): how long to wait for a broker's
    /// answer before the connection is considered lost.
    pub request_timeout: Duration,
    /// `enable.idempotence` (default true): exactly-once, in-order writes per
    /// partition, using a producer id and sequence numbers.
    pub enable_idempotence: bool,
    /// `max.in.flight.requests.per.connection` (default 5; at most 5 with
    /// idempotence).
    pub max_in_flight: usize,
    /// `retries` (default 2147483647): attempts after the first; retrying
    /// is bounded by `delivery.timeout.ms` in any case.
    pub retries: u32,
    /// `retry.backoff.ms` (default 100): first backoff after a retriable error.
    pub retry_backoff: Duration,
    /// `retry.backoff.max.ms` (default 1000): the exponential backoff's cap.
    pub retry_backoff_max: Duration,
    /// `max.request.size` (default 1048576): the largest Produce request,
    /// and so the largest record.
    pub max_request_size: usize,
    /// `metadata.max.age.ms` (default 300000): metadata is refreshed at least
    /// this often, to notice new partitions and leaders.
    pub metadata_max_age: Duration,
    /// `metadata.max.idle.ms` (default 300000; the property takes at least
    /// 5000, as in Java): a topic no record was sent to for this long is
    /// no longer asked about, and its state is freed (its next record
    /// waits for metadata again).
    pub metadata_max_idle: Duration,
    /// `allow.auto.create.topics` (default true): the producer's metadata
    /// requests let a broker with `auto.create.topics.enable` create the
    /// topics they ask about. `fetch_metadata` and admin requests never do.
    pub allow_auto_create_topics: bool,
    /// `reconnect.backoff.ms` (default 50).
    pub reconnect_backoff: Duration,
    /// `reconnect.backoff.max.ms` (default 1000).
    pub reconnect_backoff_max: Duration,
    /// `socket.connection.setup.timeout.ms` (default 10000).
    pub connection_setup_timeout: Duration,
    /// `partitioner.ignore.keys` (default false): spread keyed records with
    /// the sticky partitioner too.
    pub partitioner_ignore_keys: bool,
    /// `compression.type` (default `none`): `gzip`, `snappy`, `lz4` or
    /// `zstd`, with the level from `compression.gzip.level`,
    /// `compression.lz4.level`, `compression.zstd.level` (Kafka's names,
    /// KIP-390) or `compression.level` (librdkafka's name).
    pub compression: Compression,
    levels: Levels,
    /// `security.protocol` (default `PLAINTEXT`): `PLAINTEXT`, `SSL`,
    /// `SASL_PLAINTEXT` or `SASL_SSL`.
    pub security_protocol: SecurityProtocol,
    /// `ssl.ca.location`: a PEM file of the CA certificates to trust; the
    /// system's roots if unset.
    pub ssl_ca_location: Option<std::path::PathBuf>,
    /// `ssl.certificate.location`: this client's certificate chain (PEM),
    /// for brokers that ask for one (mutual TLS).
    pub ssl_certificate_location: Option<std::path::PathBuf>,
    /// `ssl.key.location`: the private key (PEM, unencrypted) of
    /// `ssl.certificate.location`.
    pub ssl_key_location: Option<std::path::PathBuf>,
    /// `ssl.endpoint.identification.algorithm` (default `https`): check
    /// that the broker's certificate names the host connected to; empty
    /// (`""` or `none`) turns the check off.
    pub ssl_verify_hostname: bool,
    /// `sasl.*`: the mechanism and its credentials, for
    /// `security.protocol` SASL_PLAINTEXT or SASL_SSL.
    pub sasl: SaslSettings,
    idempotence_explicit: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: Vec::new(),
            client_id: "herald".into(),
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 16_384,
            buffer_memory: 32 * 1024 * 1024,
            max_block: Duration::from_millis(60_000),
            delivery_timeout: Duration::from_millis(120_000),
            request_timeout: Duration::from_millis(30_000),
            enable_idempotence: true,
            max_in_flight: 5,
            retries: i32::MAX as u32,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_millis(1000),
            max_request_size: 1_048_576,
            metadata_max_age: Duration::from_millis(300_000),
            metadata_max_idle: Duration::from_millis(300_000),
            allow_auto_create_topics: true,
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_millis(1000),
            connection_setup_timeout: Duration::from_millis(10_000),
            partitioner_ignore_keys: false,
            compression: Compression::None,
            levels: Levels::default(),
            security_protocol: SecurityProtocol::Plaintext,
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
            ssl_verify_hostname: true,
            sasl: SaslSettings::default(),
            idempotence_explicit: false,
        }
    }
}

/// The property names `from_properties` accepts, besides the `sasl.*`
/// ones of [`crate::sasl::PROPERTIES`].
pub const PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "acks",
    "linger.ms",
    "batch.size",
    "buffer.memory",
    "max.block.ms",
    "delivery.timeout.ms",
    "request.timeout.ms",
    "enable.idempotence",
    "max.in.flight.requests.per.connection",
    "retries",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "max.request.size",
    "metadata.max.age.ms",
    "metadata.max.idle.ms",
    "allow.auto.create.topics",
    "reconnect.backoff.ms",
    "reconnect.backoff.max.ms",
    "socket.connection.setup.timeout.ms",
    "partitioner.ignore.keys",
    "compression.type",
    "compression.level",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "security.protocol",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.endpoint.identification.algorithm",
];

/// Compression levels as set, applied to whichever codec
/// `compression.type` names (the two may come in either order).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Levels {
    generic: Option<i32>,
    gzip: Option<i32>,
    zstd: Option<i32>,
}

fn parse_level(key: &str, v: &str, range: std::ops::RangeInclusive<i32>) -> Result<i32, Error> {
    parse_in_range(key, v, range, "an integer")
}

/// A value of `key` within `range`; the error says `what` was expected.
pub(crate) fn parse_in_range<T>(
    key: &str,
    v: &str,
    range: std::ops::RangeInclusive<T>,
    what: &str,
) -> Result<T, Error>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    v.trim()
        .parse::<T>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            Error::config(
                key,
                format!(
                    "expected {what} from {} to {}, got `{v}`",
                    range.start(),
                    range.end()
                ),
            )
        })
}

fn parse_u64(key: &str, v: &str) -> Result<u64, Error> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| Error::config(key, format!("expected a non-negative integer, got `{v}`")))
}

fn parse_ms(key: &str, v: &str) -> Result<Duration, Error> {
    parse_u64(key, v).map(Duration::from_millis)
}

pub(crate) fn parse_bool(key: &str, v: &str) -> Result<bool, Error> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::config(
            key,
            format!("expected true or false, got `{v}`"),
        )),
    }
}

impl ProducerConfig {
    /// Defaults, with these bootstrap servers (`host:port,host:port`).
    pub fn new(bootstrap_servers: &str) -> Self {
        Self {
            bootstrap_servers: split_servers(bootstrap_servers),
            ..Self::default()
        }
    }

    /// Build from Kafka property names and string values, as in a Java
    /// `Properties` file. Unknown keys and bad values are errors naming the key.
    pub fn from_properties<'a, I, K, V>(props: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = &'a (K, V)>,
        K: AsRef<str> + 'a,
        V: AsRef<str> + 'a,
    {
        let mut cfg = Self::default();
        for (k, v) in props {
            cfg.set(k.as_ref(), v.as_ref())?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Set one property by its Kafka name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self, Error> {
        match key {
            "bootstrap.servers" => self.bootstrap_servers = split_servers(value),
            "client.id" => self.client_id = value.to_string(),
            "acks" => {
                self.acks = match value.trim() {
                    "0" => Acks::None,
                    "1" => Acks::Leader,
                    "all" | "-1" => Acks::All,
                    _ => {
                        return Err(Error::config(
                            key,
                            format!("expected 0, 1, all or -1, got `{value}`"),
                        ))
                    }
                }
            }
            "linger.ms" => self.linger = parse_ms(key, value)?,
            "batch.size" => self.batch_size = parse_u64(key, value)? as usize,
            "buffer.memory" => self.buffer_memory = parse_u64(key, value)? as usize,
            "max.block.ms" => self.max_block = parse_ms(key, value)?,
            "delivery.timeout.ms" => self.delivery_timeout = parse_ms(key, value)?,
            "request.timeout.ms" => self.request_timeout = parse_ms(key, value)?,
            "enable.idempotence" => {
                self.enable_idempotence = parse_bool(key, value)?;
                self.idempotence_explicit = true;
            }
            "max.in.flight.requests.per.connection" => {
                self.max_in_flight = parse_u64(key, value)? as usize
            }
            "retries" => {
                let n = parse_u64(key, value)?;
                self.retries = n.min(i32::MAX as u64) as u32;
            }
            "retry.backoff.ms" => self.retry_backoff = parse_ms(key, value)?,
            "retry.backoff.max.ms" => self.retry_backoff_max = parse_ms(key, value)?,
            "max.request.size" => self.max_request_size = parse_u64(key, value)? as usize,
            "metadata.max.age.ms" => self.metadata_max_age = parse_ms(key, value)?,
            "metadata.max.idle.ms" => {
                // The Java client's lower bound. (The field itself may be
                // set lower, for tests that cannot wait five seconds.)
                let idle = parse_ms(key, value)?;
                if idle < Duration::from_millis(5_000) {
                    return Err(Error::config(key, "must be at least 5000"));
                }
                self.metadata_max_idle = idle;
            }
            "allow.auto.create.topics" => self.allow_auto_create_topics = parse_bool(key, value)?,
            "reconnect.backoff.ms" => self.reconnect_backoff = parse_ms(key, value)?,
            "reconnect.backoff.max.ms" => self.reconnect_backoff_max = parse_ms(key, value)?,
            "socket.connection.setup.timeout.ms" => {
                self.connection_setup_timeout = parse_ms(key, value)?
            }
            "partitioner.ignore.keys" => self.partitioner_ignore_keys = parse_bool(key, value)?,
            "compression.type" => {
                self.compression = Compression::from_name(key, value)?;
                self.apply_levels()?;
            }
            // -1 is "the codec's default", as in librdkafka.
            "compression.level" => {
                self.levels.generic = Some(parse_level(key, value, -1..=22)?);
                self.apply_levels()?;
            }
            "compression.gzip.level" => {
                self.levels.gzip = Some(parse_level(key, value, -1..=9)?);
                self.apply_levels()?;
            }
            // lz4_flex has one mode: the level is checked, and kept by no one.
            "compression.lz4.level" => {
                parse_level(key, value, 1..=17)?;
            }
            "security.protocol" => {
                self.security_protocol = match value.trim().to_ascii_uppercase().as_str() {
                    "PLAINTEXT" => SecurityProtocol::Plaintext,
                    "SSL" => SecurityProtocol::Ssl,
                    "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
                    "SASL_SSL" => SecurityProtocol::SaslSsl,
                    _ => {
                        return Err(Error::config(
                            key,
                            format!(
                                "expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, got `{value}`"
                            ),
                        ))
                    }
                }
            }
            "ssl.ca.location" => self.ssl_ca_location = Some(value.trim().into()),
            "ssl.certificate.location" => self.ssl_certificate_location = Some(value.trim().into()),
            "ssl.key.location" => self.ssl_key_location = Some(value.trim().into()),
            "ssl.endpoint.identification.algorithm" => {
                self.ssl_verify_hostname = match value.trim().to_ascii_lowercase().as_str() {
                    "https" => true,
                    "" | "none" => false,
                    _ => {
                        return Err(Error::config(
                            key,
                            format!(
                                "expected https, or empty to turn the check off, got `{value}`"
                            ),
                        ))
                    }
                }
            }
            "compression.zstd.level" => {
                self.levels.zstd = Some(parse_level(key, value, -131_072..=22)?);
                self.apply_levels()?;
            }
            _ => match self.sasl.set(key, value) {
                Some(r) => r?,
                None => {
                    let all = || PROPERTIES.iter().chain(crate::sasl::PROPERTIES);
                    let hint = all()
                        .find(|p| edit_distance(p, key) <= 2)
                        .map(|p| format!(" (did you mean `{p}`?)"))
                        .unwrap_or_default();
                    let known: Vec<&str> = all().copied().collect();
                    return Err(Error::config(
                        key,
                        format!(
                            "unknown producer property{hint}; known properties: {}",
                            known.join(", ")
                        ),
                    ));
                }
            },
        }
        Ok(self)
    }

    /// The SASL mechanism and credentials, if `security.protocol` asks for
    /// SASL; an error names the missing or wrong key.
    pub fn sasl(&self) -> Result<Option<SaslConfig>, Error> {
        if !matches!(
            self.security_protocol,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        ) {
            return Ok(None);
        }
        self.sasl.resolve().map(Some)
    }

    /// Put the levels set so far on the codec of `compression.type`.
    fn apply_levels(&mut self) -> Result<(), Error> {
        let l = self.levels;
        match &mut self.compression {
            Compression::Gzip { level } => {
                let (key, v) = match (l.gzip, l.generic) {
                    (Some(v), _) => ("compression.gzip.level", v),
                    (None, Some(v)) => ("compression.level", v),
                    (None, None) => return Ok(()),
                };
                *level = match v {
                    -1 => GZIP_DEFAULT_LEVEL,
                    1..=9 => v as u32,
                    _ => return Err(Error::config(key, "gzip levels are 1 to 9 (or -1)")),
                };
            }
            Compression::Zstd { level } => {
                if let Some(v) = l.zstd.or(l.generic) {
                    *level = if v == -1 && l.zstd.is_none() {
                        ZSTD_DEFAULT_LEVEL
                    } else {
                        v
                    };
                }
            }
            Compression::None | Compression::Snappy | Compression::Lz4 => {}
        }
        Ok(())
    }

    /// Check the settings against each other, as the Java client does.
    pub fn validate(&self) -> Result<(), Error> {
        self.sasl()?;
        if self.ssl_certificate_location.is_some() != self.ssl_key_location.is_some() {
            return Err(Error::config(
                if self.ssl_key_location.is_none() {
                    "ssl.key.location"
                } else {
                    "ssl.certificate.location"
                },
                "a client certificate needs both ssl.certificate.location and ssl.key.location",
            ));
        }
        if self.bootstrap_servers.is_empty() {
            return Err(Error::config(
                "bootstrap.servers",
                "at least one host:port is required",
            ));
        }
        for s in &self.bootstrap_servers {
            let ok = s
                .rsplit_once(':')
                .map(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                .unwrap_or(false);
            if !ok {
                return Err(Error::config(
                    "bootstrap.servers",
                    format!("expected host:port, got `{s}`"),
                ));
            }
        }
        if self.batch_size == 0 {
            return Err(Error::config("batch.size", "must be at least 1"));
        }
        if self.buffer_memory == 0 || self.buffer_memory > u32::MAX as usize {
            return Err(Error::config(
                "buffer.memory",
                "must be between 1 and 4294967295 bytes",
            ));
        }
        if self.max_in_flight == 0 {
            return Err(Error::config(
                "max.in.flight.requests.per.connection",
                "must be at least 1",
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(Error::config("request.timeout.ms", "must be positive"));
        }
        if self.delivery_timeout < self.linger + self.request_timeout {
            return Err(Error::config(
                "delivery.timeout.ms",
                format!(
                    "must be at least linger.ms + request.timeout.ms ({} ms)",
                    (self.linger + self.request_timeout).as_millis()
                ),
            ));
        }
        if self.metadata_max_idle.is_zero() {
            return Err(Error::config("metadata.max.idle.ms", "must be positive"));
        }
        if self.retry_backoff_max < self.retry_backoff {
            return Err(Error::config(
                "retry.backoff.max.ms",
                "must be at least retry.backoff.ms",
            ));
        }
        if self.enable_idempotence && self.idempotence_explicit {
            if self.acks != Acks::All {
                return Err(Error::config(
                    "acks",
                    "must be all when enable.idempotence=true",
                ));
            }
            if self.max_in_flight > 5 {
                return Err(Error::config(
                    "max.in.flight.requests.per.connection",
                    "must be at most 5 when enable.idempotence=true",
                ));
            }
            if self.retries == 0 {
                return Err(Error::config(
                    "retries",
                    "must be greater than 0 when enable.idempotence=true",
                ));
            }
        }
        Ok(())
    }

    /// Whether idempotence is in effect. As in the Java client, the default
    /// (not explicitly set) is switched off by settings that conflict with it.
    pub fn idempotence(&self) -> bool {
        self.enable_idempotence
            && (self.idempotence_explicit
                || (self.acks == Acks::All && self.max_in_flight <= 5 && self.retries > 0))
    }

    /// Typed setter for `client.id`.
    pub fn client_id(mut self, v: impl Into<String>) -> Self {
        self.client_id = v.into();
        self
    }
    /// Typed setter for `acks`.
    pub fn acks(mut self, v: Acks) -> Self {
        self.acks = v;
        self
    }
    /// Typed setter for `linger.ms`.
    pub fn linger(mut self, v: Duration) -> Self {
        self.linger = v;
        self
    }
    /// Typed setter for `batch.size`.
    pub fn batch_size(mut self, v: usize) -> Self {
        self.batch_size = v;
        self
    }
    /// Typed setter for `buffer.memory`.
    pub fn buffer_memory(mut self, v: usize) -> Self {
        self.buffer_memory = v;
        self
    }
    /// Typed setter for `max.block.ms`.
    pub fn max_block(mut self, v: Duration) -> Self {
        self.max_block = v;
        self
    }
    /// Typed setter for `delivery.timeout.ms`.
    pub fn delivery_timeout(mut self, v: Duration) -> Self {
        self.delivery_timeout = v;
        self
    }
    /// Typed setter for `request.timeout.ms`.
    pub fn request_timeout(mut self, v: Duration) -> Self {
        self.request_timeout = v;
        self
    }
    /// Typed setter for `enable.idempotence`.
    pub fn enable_idempotence(mut self, v: bool) -> Self {
        self.enable_idempotence = v;
        self.idempotence_explicit = true;
        self
    }
    /// Typed setter for `max.in.flight.requests.per.connection`.
    pub fn max_in_flight(mut self, v: usize) -> Self {
        self.max_in_flight = v;
        self
    }
    /// Typed setter for `retry.backoff.ms` and `retry.backoff.max.ms`.
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_backoff = initial;
        self.retry_backoff_max = max;
        self
    }
    /// Typed setter for `compression.type` with its level.
    pub fn compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }
}

fn split_servers(s: &str) -> Vec<String> {
    s.split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_defaults() {
        let c = ProducerConfig::new("localhost:9092");
        assert_eq!(c.acks, Acks::All);
        assert_eq!(c.linger, Duration::from_millis(5));
        assert_eq!(c.batch_size, 16384);
        assert_eq!(c.buffer_memory, 33_554_432);
        assert_eq!(c.max_block, Duration::from_secs(60));
        assert_eq!(c.delivery_timeout, Duration::from_secs(120));
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert!(c.idempotence());
        c.validate().unwrap();
    }

    #[test]
    fn properties_by_kafka_name() {
        let c = ProducerConfig::from_properties(&[
            ("bootstrap.servers", "a:1,b:2"),
            ("acks", "1"),
            ("linger.ms", "20"),
        ])
        .unwrap();
        assert_eq!(c.bootstrap_servers, vec!["a:1", "b:2"]);
        assert_eq!(c.acks, Acks::Leader);
        assert_eq!(c.linger, Duration::from_millis(20));
        // acks=1 switches the default idempotence off, as in Java.
        assert!(!c.idempotence());
    }

    #[test]
    fn errors_name_the_key() {
        let e =
            ProducerConfig::from_properties(&[("bootstrap.servers", "a:1"), ("linger.msx", "1")])
                .unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("`linger.msx`") && s.contains("did you mean `linger.ms`"),
            "{s}"
        );
        let e = ProducerConfig::from_properties(&[("bootstrap.servers", "a:1"), ("acks", "2")])
            .unwrap_err();
        assert!(e.to_string().contains("`acks`"), "{e}");
        let e = ProducerConfig::from_properties(&[("bootstrap.servers", "nohost")]).unwrap_err();
        assert!(e.to_string().contains("`bootstrap.servers`"), "{e}");
        let e = ProducerConfig::from_properties(&[
            ("bootstrap.servers", "a:1"),
            ("enable.idempotence", "true"),
            ("acks", "1"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("`acks`"), "{e}");
        let e = ProducerConfig::from_properties(&[
            ("bootstrap.servers", "a:1"),
            ("delivery.timeout.ms", "100"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("`delivery.timeout.ms`"), "{e}");
    }

    #[test]
    fn compression_codecs_and_levels_in_either_order() {
        let props = |p: &[(&str, &str)]| {
            let mut all = vec![("bootstrap.servers", "a:1")];
            all.extend_from_slice(p);
            ProducerConfig::from_properties(&all)
        };
        assert_eq!(props(&[]).unwrap().compression, Compression::None);
        assert_eq!(
            props(&[("compression.type", "gzip")]).unwrap().compression,
            Compression::Gzip { level: 6 }
        );
        assert_eq!(
            props(&[
                ("compression.gzip.level", "9"),
                ("compression.type", "GZIP")
            ])
            .unwrap()
            .compression,
            Compression::Gzip { level: 9 }
        );
        assert_eq!(
            props(&[("compression.type", "zstd"), ("compression.level", "7")])
                .unwrap()
                .compression,
            Compression::Zstd { level: 7 }
        );
        // Kafka's per-codec name wins over librdkafka's generic one.
        assert_eq!(
            props(&[
                ("compression.zstd.level", "1"),
                ("compression.level", "7"),
                ("compression.type", "zstd"),
            ])
            .unwrap()
            .compression,
            Compression::Zstd { level: 1 }
        );
        for (k, v) in [
            ("compression.type", "brotli"),
            ("compression.gzip.level", "10"),
            ("compression.lz4.level", "0"),
            ("compression.zstd.level", "23"),
            ("compression.level", "x"),
        ] {
            let e = props(&[(k, v)]).unwrap_err().to_string();
            assert!(e.contains(&format!("`{k}`")), "{e}");
        }
        // A generic level out of the chosen codec's range names the key.
        let e = props(&[("compression.type", "gzip"), ("compression.level", "12")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`compression.level`") && e.contains("1 to 9"),
            "{e}"
        );
    }
}
