//! What goes in (a [`Record`]) and what comes back ([`RecordMetadata`]).

use std::sync::Arc;

use bytes::Bytes;

/// One record header. Kafka allows repeated header names; order is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value; `None` is a null value.
    pub value: Option<Bytes>,
}

/// A record to send: the topic and value, and optionally a key, a
/// partition, a timestamp (milliseconds since the Unix epoch) and headers.
///
/// `K` and `V` are the application's types; the producer sends
/// `Record<Bytes, Bytes>` (the default), and [`crate::TypedProducer`]
/// serializes the others.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K = Bytes, V = Bytes> {
    /// Topic to write to. An `Arc<str>`: an application that sends many
    /// records to one topic can hold the name once and clone it (a
    /// reference count, not an allocation per record); `&str` and `String`
    /// convert too.
    pub topic: Arc<str>,
    /// Partition key; records with the same key go to the same partition.
    pub key: Option<K>,
    /// The payload; `None` is a null value (a tombstone on compacted topics).
    pub value: Option<V>,
    /// Explicit partition; overrides the partitioner.
    pub partition: Option<i32>,
    /// Create time in ms since the epoch; the send time if `None`.
    pub timestamp: Option<i64>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

impl<K, V> Record<K, V> {
    /// A record with a topic and a value.
    pub fn new(topic: impl Into<Arc<str>>, value: impl Into<V>) -> Self {
        Self {
            topic: topic.into(),
            key: None,
            value: Some(value.into()),
            partition: None,
            timestamp: None,
            headers: Vec::new(),
        }
    }

    /// A record with a null value (a tombstone).
    pub fn tombstone(topic: impl Into<Arc<str>>, key: impl Into<K>) -> Self {
        Self {
            topic: topic.into(),
            key: Some(key.into()),
            value: None,
            partition: None,
            timestamp: None,
            headers: Vec::new(),
        }
    }

    /// Set the key.
    pub fn key(mut self, key: impl Into<K>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Send to this partition, bypassing the partitioner.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Set the create timestamp (ms since the Unix epoch).
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }

    /// Append a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }
}

/// Where a record landed: the answer to a successful send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic (shared with the producer's own copy of the name: handing
    /// it out costs no allocation per record).
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record's offset in the partition; -1 when unknown: with `acks=0`,
    /// or when a resent batch was recognised by the broker as one it already
    /// had (DUPLICATE_SEQUENCE_NUMBER) and it did not say where it put it.
    pub offset: i64,
    /// The record's timestamp: its create time, or the broker's append time
    /// if the topic uses `LogAppendTime`.
    pub timestamp: i64,
}

/// Bytes a record takes in the buffer and, roughly, on the wire.
pub(crate) fn estimated_size(
    key: Option<&Bytes>,
    value: Option<&Bytes>,
    headers: &[Header],
) -> usize {
    // Record overhead in batch v2: length, attributes, deltas and lengths
    // as varints. 21 bytes bounds it for small records.
    let mut n = 21 + key.map_or(0, |k| k.len()) + value.map_or(0, |v| v.len());
    for h in headers {
        n += 10 + h.key.len() + h.value.as_ref().map_or(0, |v| v.len());
    }
    n
}
