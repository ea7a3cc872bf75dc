//! # herald-schema: Avro by its schema, in Confluent's wire format
//!
//! Avro and JSON Schema through a Confluent-compatible schema registry,
//! for herald's library, CLI and gateway (the producer does not depend on
//! this crate). The data flow and the decisions: DESIGN.md, "Schemas".
//! - [`avro`]: a JSON event encoded in Avro's binary form by an Avro
//!   schema, reading the JSON as the Avro JSON encoding says (unions as
//!   `{"type": value}` or `null`, bytes and fixed as strings of code points
//!   0-255, records with their fields' defaults, logical types by their
//!   underlying type); every refusal names the JSON path and the rule
//!   (`/status/code: expected one of OK, FAILED`).
//! - [`json_schema`]: JSON validated by a JSON Schema (`jsonschema`, no
//!   default features; draft-07 unless `$schema` says otherwise).
//! - [`wire`]: Confluent's framing (byte 0, the schema id in 4 big-endian
//!   bytes, the payload).
//! - [`registry`]: a client for Confluent's Schema Registry REST API
//!   (basic or bearer auth, TLS through rustls, retries, a cache).
//! - [`serializer`]: the Avro and JSON Schema serializers with Confluent's
//!   settings and the Java serializer's decision order, for herald's
//!   `TypedProducer`.

pub mod avro;
pub mod json_schema;
pub mod registry;
pub mod serializer;
pub mod wire;

pub use avro::{AvroEncoder, EncodeError};
pub use json_schema::JsonSchemaEncoder;
pub use registry::{RegistryClient, RegistryConfig, RegistryError, Version};
pub use serializer::{
    AvroSerializer, JsonSchemaSerializer, SchemaError, SchemaSerializer, SerializerConfig,
    SubjectNameStrategy,
};
