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
//! `batch` (delivery), with `connection` (one TCP connection per broker)
//! and `driver` (the background task) around them. See DESIGN.md.
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
mod backoff;
mod batch;
mod blocking;
pub mod config;
mod connection;
mod driver;
pub mod error;
mod idempotence;
pub mod metadata;
pub mod partitioner;
mod producer;
pub mod record;
mod record_batch;
mod sender;
pub mod serializer;
mod state;

pub use batch::Callback;
pub use blocking::BlockingProducer;
pub use config::{Acks, ProducerConfig};
pub use error::{Error, TopicPartition};
pub use metadata::ClusterMetadata;
pub use partitioner::{DefaultPartitioner, Partitioner};
pub use producer::{DeliveryFuture, Producer};
pub use record::{Header, Record, RecordMetadata};
pub use serializer::{
    BytesSerializer, JsonSerializer, Serializer, StringSerializer, TypedProducer,
};
pub use state::ProducerStats;
