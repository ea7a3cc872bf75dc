//! # herald: a pure-Rust Kafka producer
//!
//! The pipeline of a Kafka producer (as seed 002 describes the Java one),
//! with no C dependency: records are serialized, partitioned, appended to a
//! batch per partition, and sent by one task per broker; each record's
//! handle resolves to its [`RecordMetadata`] or an [`Error`].
//!
//! ```text
//!  send(Record) ──► serializer ──► partitioner ──► accumulator ──► sender (1 task/broker) ──► broker
//!   │  (TypedProducer)   (murmur2 / sticky)   (batch per partition,     │ Produce requests,
//!   │                                          buffer.memory)           │ ≤ max.in.flight, in order
//!   └─ DeliveryFuture / callback ◄──────────── delivery ◄───────────────┘ responses: ok / retry / fail
//!                    driver task: metadata, producer id (idempotence), delivery.timeout.ms
//! ```
//!
//! Module map, in the order data flows: [`record`], [`serializer`],
//! [`partitioner`], `accumulator`, `sender`, `metadata`, `idempotence`,
//! `batch` (delivery, with [`compression`]), with `connection` (one TCP or
//! TLS connection per broker, authenticated and re-authenticated by
//! [`sasl`]) and `driver` (the background task) around them; [`admin`]
//! manages topics over the same connections. See DESIGN.md.
//!
//! ```no_run
//! # async fn demo() -> Result<(), herald::Error> {
//! use herald::{Producer, ProducerConfig, Record};
//!
//! let producer = Producer::new(ProducerConfig::new("localhost:9092"))?;
//! // Synchronous style: await the handle.
//! let md = producer.send(Record::new("topic1", "Hello Kafka")).await?.await?;
//! println!("{}[{}]@{}", md.topic, md.partition, md.offset);
//! // Callback style: runs in send order per partition.
//! producer
//!     .send_with_callback(Record::new("topic1", "again").key("k"), |r| {
//!         if let Err(e) = r { eprintln!("{e}") }
//!     })
//!     .await?;
//! // Fire-and-forget: drop the handle; the record is still delivered.
//! let _ = producer.send(Record::new("topic1", "and again")).await?;
//! producer.flush().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![warn(missing_debug_implementations, rust_2018_idioms)]

mod accumulator;
pub mod admin;
mod backoff;
mod batch;
mod blocking;
pub mod compression;
pub mod config;
mod connection;
mod delivery;
pub mod diagnose;
mod driver;
pub mod error;
mod idempotence;
pub mod metadata;
pub mod partitioner;
mod produce_request;
mod producer;
pub mod record;
mod record_batch;
mod response_check;
pub mod sasl;
mod sender;
pub mod serializer;
mod state;
mod tls;

pub use batch::Callback;
pub use blocking::BlockingProducer;
pub use config::{Acks, ProducerConfig, SecurityProtocol};
pub use delivery::DeliveryFuture;
pub use error::{Error, TopicPartition};
pub use metadata::ClusterMetadata;
pub use partitioner::{DefaultPartitioner, Partitioner};
pub use producer::Producer;
pub use record::{Header, Record, RecordMetadata};
pub use serializer::{
    BytesSerializer, JsonSerializer, Serializer, StringSerializer, TypedProducer,
};
pub use state::ProducerStats;

/// Entry points for `cargo fuzz` (the `fuzzing` feature); not a stable API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use kafka_protocol::messages::*;

    /// Decode `frame` as herald decodes a response: the first byte picks
    /// the API and version (every response type herald reads, at every
    /// version it speaks), the rest is the frame after its size prefix.
    pub fn decode_selected(data: &[u8]) -> Result<(), crate::Error> {
        use crate::connection::decode_response as d;
        let Some((&selector, frame)) = data.split_first() else {
            return Ok(());
        };
        let (key, version) = crate::response_check::fuzz_selector(selector);
        let f = bytes::Bytes::copy_from_slice(frame);
        match ApiKey::try_from(key) {
            Ok(ApiKey::Produce) => d::<ProduceRequest>("fuzz", f, version).map(drop),
            Ok(ApiKey::Metadata) => {
                // Decoded, then applied as the driver applies it, and read
                // as `send` and the senders read it: any values a broker
                // sends are refused or used, never a panic or a huge
                // allocation.
                let resp = d::<MetadataRequest>("fuzz", f, version)?;
                let mut m = crate::metadata::Metadata::new();
                m.update(&resp, "fuzz", std::time::Instant::now())?;
                let mut sticky = crate::partitioner::StickyPartitions::default();
                let topics: Vec<(String, usize)> = m
                    .cluster
                    .topics
                    .iter()
                    .map(|(n, t)| (n.clone(), t.leaders.len()))
                    .collect();
                for (name, n) in topics {
                    for p in 0..n {
                        let _ = m
                            .cluster
                            .leader(&crate::TopicPartition::new(name.as_str(), p as i32));
                    }
                    if let Some(count) = m.partitions(&name) {
                        let p = sticky.current(&name, count, m.available(&name));
                        assert!((p as usize) < count, "sticky partition {p} of {count}");
                    }
                }
                Ok(())
            }
            Ok(ApiKey::SaslHandshake) => d::<SaslHandshakeRequest>("fuzz", f, version).map(drop),
            Ok(ApiKey::ApiVersions) => d::<ApiVersionsRequest>("fuzz", f, version).map(drop),
            Ok(ApiKey::CreateTopics) => d::<CreateTopicsRequest>("fuzz", f, version).map(drop),
            Ok(ApiKey::DeleteTopics) => d::<DeleteTopicsRequest>("fuzz", f, version).map(drop),
            Ok(ApiKey::DescribeConfigs) => {
                d::<DescribeConfigsRequest>("fuzz", f, version).map(drop)
            }
            Ok(ApiKey::SaslAuthenticate) => {
                d::<SaslAuthenticateRequest>("fuzz", f, version).map(drop)
            }
            _ => d::<InitProducerIdRequest>("fuzz", f, version).map(drop),
        }
    }

    /// Run each SASL mechanism's client over server messages read off
    /// `data`; must never panic or stall.
    pub fn sasl_steps(data: &[u8]) {
        crate::sasl::fuzz_steps(data)
    }

    /// A record as owned parts: key, value, timestamp, headers.
    pub use crate::record_batch::RawRecord;

    /// Write a record batch from raw parts; returns its bytes.
    pub fn write_batch(records: &[RawRecord]) -> bytes::Bytes {
        crate::record_batch::fuzz_write(records)
    }
}
