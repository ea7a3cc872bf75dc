//! The producer's error type and the one place where retry is decided.
//!
//! Every record gets exactly one outcome; a failed outcome is an [`Error`].
//! Errors are `Clone` because one broker error fails (or retries) every
//! record of a batch, and each record's handle gets its own copy.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;

/// A topic and partition, as it appears in error messages (`topic-3`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic name.
    pub topic: Arc<str>,
    /// The partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic-partition pair.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A Kafka protocol error code with its Kafka name (`NOT_LEADER_OR_FOLLOWER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaCode(pub i16);

impl KafkaCode {
    /// The Kafka name of the code, as in the protocol guide.
    pub fn name(&self) -> String {
        match ResponseError::try_from_code(self.0) {
            None => "NONE".to_string(),
            Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_CODE_{c}"),
            Some(e) => screaming_snake(&e.to_string()),
        }
    }
}

impl fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Why a record (or the producer) failed. Match on it, or use the predicates
/// on [`Error`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// A configuration key is unknown or its value is invalid.
    Config {
        /// The Kafka property name (`linger.ms`).
        key: String,
        /// What was wrong and what the key expects.
        message: String,
    },
    /// The key or value serializer failed; the record was not sent.
    Serialization(String),
    /// The record is larger than `max.request.size` or `buffer.memory`.
    RecordTooLarge {
        /// Estimated size of the record in bytes.
        size: usize,
        /// The limit it exceeds.
        limit: usize,
        /// The property that sets the limit.
        key: &'static str,
    },
    /// `buffer.memory` stayed full for `max.block.ms`.
    BufferExhausted {
        /// Bytes the record needed.
        needed: usize,
        /// The configured `buffer.memory`.
        buffer_memory: usize,
        /// How long `send` waited.
        waited: Duration,
    },
    /// The topic's metadata could not be fetched within `max.block.ms`.
    MetadataTimeout {
        /// The topic that was asked for.
        topic: String,
        /// How long `send` waited.
        waited: Duration,
        /// The error the cluster reported for the topic, if any.
        topic_error: Option<KafkaCode>,
        /// The last error seen while fetching metadata, if any.
        last_error: Option<Box<Error>>,
    },
    /// The record named a partition that the topic does not have.
    InvalidPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many partitions the topic has.
        partitions: usize,
    },
    /// A TCP connection to a broker failed or was lost.
    Connection {
        /// `host:port` of the broker.
        broker: String,
        /// What happened.
        message: String,
        /// The I/O error kind, when there was one.
        kind: Option<std::io::ErrorKind>,
    },
    /// TLS or authentication failed in a way retrying will not fix: an
    /// untrusted or mismatched certificate, a missing or unreadable
    /// credential file. The message says what to fix.
    Security {
        /// `host:port` of the broker, or the config key at fault.
        broker: String,
        /// What failed and what to check.
        message: String,
    },
    /// A broker did not answer within `request.timeout.ms`.
    RequestTimeout {
        /// `host:port` of the broker.
        broker: String,
        /// The configured `request.timeout.ms`.
        timeout: Duration,
    },
    /// A broker answered with a Kafka error code.
    Broker {
        /// The Kafka error code.
        code: KafkaCode,
        /// The partition concerned, if the error was partition-level.
        partition: Option<TopicPartition>,
        /// `host:port` of the broker that answered.
        broker: String,
        /// The broker's own error message, when it sent one.
        message: Option<String>,
    },
    /// The response could not be decoded, or the broker lacks an API we need.
    Protocol {
        /// `host:port` of the broker.
        broker: String,
        /// What was wrong.
        message: String,
    },
    /// `delivery.timeout.ms` passed before the record was acknowledged.
    DeliveryTimeout {
        /// The partition the record was for.
        partition: TopicPartition,
        /// The configured `delivery.timeout.ms`.
        timeout: Duration,
        /// Attempts made to send the record's batch.
        attempts: u32,
        /// The last retriable error, if there was one.
        last_error: Option<Box<Error>>,
    },
    /// The producer was closed before the record was delivered.
    Closed(String),
    /// The record cannot be sent as it is (an invalid topic name, a
    /// negative timestamp); nothing was sent.
    InvalidRecord(String),
    /// The API was used where it cannot work (outside a tokio runtime, or
    /// blocking inside one); the message says what to do instead.
    Usage(String),
    /// The record failed after an attempt whose outcome never came back
    /// (connection lost or no answer after the request was written): the
    /// broker may have written it even so. `error` is why herald gave up.
    OutcomeUnknown {
        /// The partition the record was for.
        partition: TopicPartition,
        /// Why herald stopped trying.
        error: Box<Error>,
    },
}

/// What the sender does with a failed batch: the retry classification,
/// decided here and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Try again after backoff; refresh metadata first if `refresh_metadata`.
    Retry { refresh_metadata: bool },
    /// The idempotent producer's sequence state was lost by the broker:
    /// get a new producer id, then retry.
    ResetProducerId,
    /// Fail the batch's records now.
    Fatal,
}

/// Codes used below, by their Kafka names.
pub(crate) mod code {
    pub const NONE: i16 = 0;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const BROKER_NOT_AVAILABLE: i16 = 8;
    pub const REPLICA_NOT_AVAILABLE: i16 = 9;
    pub const NETWORK_EXCEPTION: i16 = 13;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
    pub const UNKNOWN_PRODUCER_ID: i16 = 59;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const OFFLINE_REPLICA: i16 = 26;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const RECORD_LIST_TOO_LARGE: i16 = 18;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const INVALID_TIMESTAMP: i16 = 32;
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
    pub const INVALID_RECORD: i16 = 87;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
}

/// Classify a partition-level error code from a Produce response.
///
/// Leader-moved errors ask for a metadata refresh (the Java client's
/// `InvalidMetadataException` family). Sequence errors are handled by the
/// idempotence layer before this is called; what reaches here for them
/// means the broker lost our producer state.
pub(crate) fn classify_produce_code(c: i16) -> Disposition {
    use code::*;
    match c {
        NOT_LEADER_OR_FOLLOWER
        | LEADER_NOT_AVAILABLE
        | UNKNOWN_TOPIC_OR_PARTITION
        | BROKER_NOT_AVAILABLE
        | REPLICA_NOT_AVAILABLE
        | OFFLINE_REPLICA
        | KAFKA_STORAGE_ERROR
        | FENCED_LEADER_EPOCH
        | UNKNOWN_LEADER_EPOCH => Disposition::Retry {
            refresh_metadata: true,
        },
        REQUEST_TIMED_OUT
        | NETWORK_EXCEPTION
        | NOT_ENOUGH_REPLICAS
        | NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | COORDINATOR_LOAD_IN_PROGRESS
        | THROTTLING_QUOTA_EXCEEDED => Disposition::Retry {
            refresh_metadata: false,
        },
        // Refused before the append: safe to resend under a new producer
        // id, unless an earlier attempt may have been written (the sender
        // checks that).
        UNKNOWN_PRODUCER_ID | OUT_OF_ORDER_SEQUENCE_NUMBER | INVALID_PRODUCER_EPOCH => {
            Disposition::ResetProducerId
        }
        other => match ResponseError::try_from_code(other) {
            // Anything else Kafka itself calls retriable (CORRUPT_MESSAGE, …).
            Some(e) if e.is_retriable() => Disposition::Retry {
                refresh_metadata: false,
            },
            _ => Disposition::Fatal,
        },
    }
}

/// Whether a retriable Produce error proves the partition leader did not
/// append the batch. Kafka answers some codes after the append too: with
/// acks=all, the delayed produce answers NOT_LEADER_OR_FOLLOWER when
/// leadership moved after the leader appended (a controlled shutdown),
/// UNKNOWN_TOPIC_OR_PARTITION or KAFKA_STORAGE_ERROR when the partition
/// went away or offline meanwhile (`ReplicaManager.getPartitionOrError`),
/// REQUEST_TIMED_OUT when replication took too long and
/// NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank. Only codes that
/// Kafka raises while validating, before the append, prove anything; every
/// other code, known or not, leaves the batch's fate unknown (the safe
/// side: a batch wrongly thought unwritten can be renumbered and written
/// twice).
pub(crate) fn refused_before_append(c: i16) -> bool {
    use code::*;
    matches!(
        c,
        // Partition.appendRecordsToLeader checks the ISR size first.
        NOT_ENOUGH_REPLICAS
        // LogValidator, before the log is touched.
        | CORRUPT_MESSAGE
        // Quotas and throttling are checked before the request is handled.
        | THROTTLING_QUOTA_EXCEEDED
    )
}

/// Whether a fatal Produce error proves the batch was not appended: Kafka
/// raises these while authorizing or validating the request, before the
/// log is touched. Any other fatal code (UNKNOWN_SERVER_ERROR, which
/// `appendToLocalLog` answers for anything it catches, or a code herald
/// does not know) leaves the batch's fate unknown.
pub(crate) fn fatal_before_append(c: i16) -> bool {
    use code::*;
    matches!(
        c,
        MESSAGE_TOO_LARGE
            | CORRUPT_MESSAGE
            | INVALID_TOPIC_EXCEPTION
            | RECORD_LIST_TOO_LARGE
            | INVALID_REQUIRED_ACKS
            | TOPIC_AUTHORIZATION_FAILED
            | CLUSTER_AUTHORIZATION_FAILED
            | INVALID_TIMESTAMP
            | UNSUPPORTED_VERSION
            | UNSUPPORTED_FOR_MESSAGE_FORMAT
            | TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            | UNSUPPORTED_COMPRESSION_TYPE
            | INVALID_RECORD
    )
}

impl Error {
    /// Whether retrying the same operation later may succeed. Records that
    /// fail with a retriable error have already been retried until
    /// `delivery.timeout.ms`.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Connection { .. } | Error::RequestTimeout { .. } => true,
            Error::Broker { code, .. } => {
                matches!(classify_produce_code(code.0), Disposition::Retry { .. })
            }
            Error::BufferExhausted { .. } | Error::MetadataTimeout { .. } => true,
            Error::DeliveryTimeout { .. } => true,
            Error::OutcomeUnknown { error, .. } => error.is_retriable(),
            _ => false,
        }
    }

    /// Whether this is a timeout (`max.block.ms`, `delivery.timeout.ms` or
    /// `request.timeout.ms`).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Error::BufferExhausted { .. }
                | Error::MetadataTimeout { .. }
                | Error::DeliveryTimeout { .. }
                | Error::RequestTimeout { .. }
        ) || matches!(self, Error::OutcomeUnknown { error, .. } if error.is_timeout())
    }

    /// The Kafka error code, if a broker sent one.
    pub fn kafka_code(&self) -> Option<i16> {
        match self {
            Error::Broker { code, .. } => Some(code.0),
            Error::DeliveryTimeout {
                last_error: Some(e),
                ..
            } => e.kafka_code(),
            Error::OutcomeUnknown { error, .. } => error.kafka_code(),
            _ => None,
        }
    }

    /// The error itself, or for [`Error::OutcomeUnknown`] the reason
    /// herald gave up.
    pub fn reason(&self) -> &Error {
        match self {
            Error::OutcomeUnknown { error, .. } => error.reason(),
            e => e,
        }
    }

    /// Whether the record may be in the log despite this error (see
    /// [`Error::OutcomeUnknown`]). For any other error it is not.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Error::OutcomeUnknown { .. })
    }

    /// Wrap `error` for a batch whose last attempts left its fate unknown.
    pub(crate) fn for_batch(error: Error, partition: &TopicPartition, unsure: bool) -> Error {
        if unsure {
            Error::OutcomeUnknown {
                partition: partition.clone(),
                error: Box::new(error),
            }
        } else {
            error
        }
    }

    pub(crate) fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(broker: &str, e: &std::io::Error) -> Self {
        let what = match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
            std::io::ErrorKind::UnexpectedEof => "connection closed by the broker".to_string(),
            _ => e.to_string(),
        };
        Error::Connection {
            broker: broker.to_string(),
            message: format!("{what} ({e})"),
            kind: Some(e.kind()),
        }
    }

    pub(crate) fn protocol(broker: &str, message: impl Into<String>) -> Self {
        Error::Protocol {
            broker: broker.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { key, message } => write!(f, "invalid config `{key}`: {message}"),
            Error::Serialization(m) => write!(f, "serialization failed: {m}"),
            Error::RecordTooLarge { size, limit, key } => write!(
                f,
                "record of {size} bytes is larger than {key}={limit}; raise {key} or send a smaller record"
            ),
            Error::BufferExhausted {
                needed,
                buffer_memory,
                waited,
            } => write!(
                f,
                "buffer full: no room for a {needed}-byte record in buffer.memory={buffer_memory} after waiting max.block.ms={} ms; the brokers are not keeping up or not reachable",
                waited.as_millis()
            ),
            Error::MetadataTimeout {
                topic,
                waited,
                topic_error,
                last_error,
            } => {
                write!(
                    f,
                    "topic `{topic}` not present in metadata after {} ms (max.block.ms)",
                    waited.as_millis()
                )?;
                if let Some(c) = topic_error {
                    write!(f, "; the cluster answered {} for it", c.name())?;
                    if c.0 == code::UNKNOWN_TOPIC_OR_PARTITION {
                        write!(f, " (create the topic, or enable auto-creation on the broker)")?;
                    }
                }
                if let Some(e) = last_error {
                    write!(f, "; last error: {e}")?;
                }
                Ok(())
            }
            Error::InvalidPartition {
                topic,
                partition,
                partitions,
            } => write!(
                f,
                "partition {partition} does not exist: topic `{topic}` has {partitions} partitions (0..{})",
                partitions.saturating_sub(1)
            ),
            Error::Connection { broker, message, .. } => {
                write!(f, "broker {broker}: {message}")
            }
            Error::RequestTimeout { broker, timeout } => write!(
                f,
                "broker {broker}: no response within request.timeout.ms={} ms",
                timeout.as_millis()
            ),
            Error::Broker {
                code,
                partition,
                broker,
                message,
            } => {
                write!(f, "broker {broker} answered {}", code.name())?;
                if let Some(tp) = partition {
                    write!(f, " for {tp}")?;
                }
                if let Some(m) = message {
                    write!(f, ": {m}")?;
                }
                Ok(())
            }
            Error::Protocol { broker, message } => write!(f, "broker {broker}: {message}"),
            Error::Security { broker, message } => write!(f, "{broker}: {message}"),
            Error::DeliveryTimeout {
                partition,
                timeout,
                attempts,
                last_error,
            } => {
                write!(
                    f,
                    "record for {partition} not delivered within delivery.timeout.ms={} ms ({attempts} attempts)",
                    timeout.as_millis()
                )?;
                if let Some(e) = last_error {
                    write!(f, "; last error: {e}")?;
                }
                Ok(())
            }
            Error::Closed(m) => write!(f, "producer closed: {m}"),
            Error::InvalidRecord(m) => write!(f, "invalid record: {m}"),
            Error::Usage(m) => write!(f, "{m}"),
            Error::OutcomeUnknown { partition, error } => write!(
                f,
                "record for {partition} may or may not have been written (an earlier attempt got no answer): {error}"
            ),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_are_screaming_snake() {
        assert_eq!(KafkaCode(6).name(), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(KafkaCode(10).name(), "MESSAGE_TOO_LARGE");
        assert_eq!(KafkaCode(0).name(), "NONE");
    }

    #[test]
    fn classification() {
        assert_eq!(
            classify_produce_code(code::NOT_LEADER_OR_FOLLOWER),
            Disposition::Retry {
                refresh_metadata: true
            }
        );
        assert_eq!(
            classify_produce_code(code::NOT_ENOUGH_REPLICAS),
            Disposition::Retry {
                refresh_metadata: false
            }
        );
        // MESSAGE_TOO_LARGE, INVALID_RECORD, TOPIC_AUTHORIZATION_FAILED
        for fatal in [10, 87, 29] {
            assert_eq!(classify_produce_code(fatal), Disposition::Fatal, "{fatal}");
        }
        assert_eq!(
            classify_produce_code(code::UNKNOWN_PRODUCER_ID),
            Disposition::ResetProducerId
        );
    }
}
