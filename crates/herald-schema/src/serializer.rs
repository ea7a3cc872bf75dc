//! The Avro and JSON Schema serializers with Confluent's settings, by their
//! own names and defaults, and the Java serializers' decision order for the
//! schema id:
//!
//! 1. a null value is a tombstone: no registry call (herald's
//!    `TypedProducer` never calls a serializer for `value: None`);
//! 2. `auto.register.schemas` (default true): register the producer's
//!    schema under the subject (a write; an event bus forbids it);
//! 3. else `use.schema.id` (a pinned id): the schema of that id (one read,
//!    then cached for ever);
//! 4. else `use.latest.version`: the subject's latest version, checked
//!    against the producer's schema when `latest.compatibility.strict`;
//! 5. else a lookup of the producer's exact schema under the subject.
//!
//! The subject comes from `key.subject.name.strategy` /
//! `value.subject.name.strategy`: TopicNameStrategy (`TOPIC-value`, the
//! default), RecordNameStrategy (the record's full name) or
//! TopicRecordNameStrategy (`TOPIC-FULLNAME`).
//!
//! Values are JSON (for Avro, the Avro JSON encoding: what the gateway and
//! the CLI receive), encoded by the schema the id stands for: Avro's binary
//! form, or for JSON Schema the JSON itself once it validates. Resolving an id may
//! call the registry, so it is async: [`AvroSerializer::prepare`] resolves
//! a topic's id ahead of producing; the producer's synchronous
//! [`herald::Serializer`] then only encodes. Seed 004's event-bus setup
//! (`auto.register.schemas=false`, a pinned id) never writes to the
//! registry and reads it once.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;

use crate::avro::{AvroEncoder, EncodeError};
use crate::json_schema::JsonSchemaEncoder;
use crate::registry::{RegistryClient, RegistryError, Version};
use crate::wire;

/// How a subject is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectNameStrategy {
    /// `TOPIC-key` / `TOPIC-value` (Confluent's default).
    TopicName,
    /// The record's full name.
    RecordName,
    /// `TOPIC-FULLNAME`.
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// Confluent's class names, or their short forms.
    pub fn parse(s: &str) -> Option<SubjectNameStrategy> {
        match s.rsplit('.').next().unwrap_or(s) {
            "TopicNameStrategy" | "TopicName" => Some(SubjectNameStrategy::TopicName),
            "RecordNameStrategy" | "RecordName" => Some(SubjectNameStrategy::RecordName),
            "TopicRecordNameStrategy" | "TopicRecordName" => {
                Some(SubjectNameStrategy::TopicRecordName)
            }
            _ => None,
        }
    }
}

/// The serializer's settings, with Confluent's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerializerConfig {
    /// For keys (`TOPIC-key`) rather than values.
    pub is_key: bool,
    /// `auto.register.schemas` (default true).
    pub auto_register_schemas: bool,
    /// `use.schema.id` (default -1: none).
    pub use_schema_id: Option<u32>,
    /// `use.latest.version` (default false).
    pub use_latest_version: bool,
    /// `latest.compatibility.strict` (default true).
    pub latest_compatibility_strict: bool,
    /// `normalize.schemas` (default false).
    pub normalize_schemas: bool,
    /// `key.subject.name.strategy` / `value.subject.name.strategy`.
    pub subject_name_strategy: SubjectNameStrategy,
}

impl SerializerConfig {
    /// Confluent's defaults, for values or keys.
    pub fn new(is_key: bool) -> SerializerConfig {
        SerializerConfig {
            is_key,
            auto_register_schemas: true,
            use_schema_id: None,
            use_latest_version: false,
            latest_compatibility_strict: true,
            normalize_schemas: false,
            subject_name_strategy: SubjectNameStrategy::TopicName,
        }
    }

    /// Apply properties by Confluent's names (others are left to the
    /// caller); an unknown value names the property.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let boolean = |v: &str| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("{key}: `{v}` is not true or false")),
        };
        let strategy_key = if self.is_key {
            "key.subject.name.strategy"
        } else {
            "value.subject.name.strategy"
        };
        match key {
            "auto.register.schemas" => self.auto_register_schemas = boolean(value)?,
            "use.latest.version" => self.use_latest_version = boolean(value)?,
            "latest.compatibility.strict" => self.latest_compatibility_strict = boolean(value)?,
            "normalize.schemas" => self.normalize_schemas = boolean(value)?,
            "use.schema.id" => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| format!("{key}: `{value}` is not a schema id"))?;
                self.use_schema_id = u32::try_from(n).ok();
            }
            k if k == strategy_key => {
                self.subject_name_strategy = SubjectNameStrategy::parse(value).ok_or_else(|| {
                    format!(
                        "{key}: `{value}`: use TopicNameStrategy, RecordNameStrategy or \
                         TopicRecordNameStrategy"
                    )
                })?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Why a value could not be serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaError {
    /// The registry refused or could not be reached.
    Registry(RegistryError),
    /// The value does not fit the schema (path and rule).
    Encode(EncodeError),
    /// The settings cannot work (say, a lookup with no schema given).
    Config(String),
    /// `prepare(topic)` was not called (or failed) for this topic.
    NotPrepared(String),
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaError::Registry(e) => e.fmt(f),
            SchemaError::Encode(e) => write!(f, "the value does not fit the schema: {e}"),
            SchemaError::Config(m) => f.write_str(m),
            SchemaError::NotPrepared(t) => write!(
                f,
                "no schema resolved for topic `{t}`: call AvroSerializer::prepare(\"{t}\") first"
            ),
        }
    }
}

impl std::error::Error for SchemaError {}

impl From<RegistryError> for SchemaError {
    fn from(e: RegistryError) -> Self {
        SchemaError::Registry(e)
    }
}

/// A schema format: how a schema text compiles and how a JSON value is
/// written by it.
pub trait Format: Send + Sync + 'static {
    /// The registry's `schemaType` (`AVRO` is left out on the wire).
    const SCHEMA_TYPE: &'static str;
    type Encoder: Send + Sync + fmt::Debug + 'static;
    fn compile(schema: &str) -> Result<Self::Encoder, String>;
    fn encode(e: &Self::Encoder, v: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError>;
    /// The name RecordNameStrategy uses (a record's full name; a JSON
    /// Schema's `title`).
    fn record_name(e: &Self::Encoder) -> Option<String>;
    /// Whether two schema texts are the same schema (Avro: the same
    /// Parsing Canonical Form; JSON Schema: the same JSON).
    fn same(a: &str, b: &str) -> bool;
}

/// Avro: the binary encoding.
#[derive(Debug)]
pub struct Avro;

impl Format for Avro {
    const SCHEMA_TYPE: &'static str = "AVRO";
    type Encoder = AvroEncoder;
    fn compile(schema: &str) -> Result<AvroEncoder, String> {
        AvroEncoder::new(schema)
    }
    fn encode(e: &AvroEncoder, v: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        e.encode(v, out)
    }
    fn record_name(e: &AvroEncoder) -> Option<String> {
        match e.schema() {
            apache_avro::Schema::Record(r) => Some(r.name.fullname(None)),
            _ => None,
        }
    }
    fn same(a: &str, b: &str) -> bool {
        match (AvroEncoder::new(a), AvroEncoder::new(b)) {
            (Ok(x), Ok(y)) => x.schema().canonical_form() == y.schema().canonical_form(),
            _ => false,
        }
    }
}

/// JSON Schema: the JSON itself, once it validates.
#[derive(Debug)]
pub struct JsonSchema;

impl Format for JsonSchema {
    const SCHEMA_TYPE: &'static str = "JSON";
    type Encoder = JsonSchemaEncoder;
    fn compile(schema: &str) -> Result<JsonSchemaEncoder, String> {
        JsonSchemaEncoder::new(schema)
    }
    fn encode(e: &JsonSchemaEncoder, v: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        e.encode(v, out)
    }
    fn record_name(e: &JsonSchemaEncoder) -> Option<String> {
        e.title().map(str::to_string)
    }
    fn same(a: &str, b: &str) -> bool {
        matches!(
            (serde_json::from_str::<Value>(a), serde_json::from_str::<Value>(b)),
            (Ok(x), Ok(y)) if x == y
        )
    }
}

/// A topic's resolved schema.
#[derive(Debug)]
pub struct Resolved<F: Format> {
    pub subject: String,
    pub id: u32,
    pub encoder: Arc<F::Encoder>,
    pub at: Instant,
}

impl<F: Format> Resolved<F> {
    /// `value` in the wire format under this id (no lock, no lookup: for a
    /// caller that holds the resolved schema, as the gateway does).
    pub fn encode(&self, value: &Value) -> Result<Vec<u8>, SchemaError> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&wire::header(self.id));
        F::encode(&self.encoder, value, &mut out).map_err(SchemaError::Encode)?;
        Ok(out)
    }
}

impl<F: Format> Clone for Resolved<F> {
    fn clone(&self) -> Self {
        Resolved {
            subject: self.subject.clone(),
            id: self.id,
            encoder: self.encoder.clone(),
            at: self.at,
        }
    }
}

/// JSON values in, the Confluent wire format out, for a producer.
#[derive(Debug)]
pub struct SchemaSerializer<F: Format> {
    client: RegistryClient,
    cfg: SerializerConfig,
    /// The producer's own schema (an `.avsc` or a JSON Schema), if it has
    /// one.
    schema: Option<(String, Arc<F::Encoder>)>,
    resolved: Mutex<HashMap<String, Resolved<F>>>,
}

/// Avro values.
pub type AvroSerializer = SchemaSerializer<Avro>;
/// JSON Schema values.
pub type JsonSchemaSerializer = SchemaSerializer<JsonSchema>;

impl<F: Format> SchemaSerializer<F> {
    /// A serializer with `cfg`; `schema` is the producer's own schema, when
    /// it has one (auto-registration and lookups need it; a pinned id or
    /// the latest version does not).
    pub fn new(
        client: RegistryClient,
        cfg: SerializerConfig,
        schema: Option<&str>,
    ) -> Result<SchemaSerializer<F>, SchemaError> {
        let schema = match schema {
            Some(s) => Some((
                s.to_string(),
                Arc::new(F::compile(s).map_err(SchemaError::Config)?),
            )),
            None => None,
        };
        Ok(SchemaSerializer {
            client,
            cfg,
            schema,
            resolved: Mutex::new(HashMap::new()),
        })
    }

    fn record_name(&self) -> Option<String> {
        F::record_name(&self.schema.as_ref()?.1)
    }

    /// The subject for `topic` under the strategy.
    pub fn subject(&self, topic: &str) -> Result<String, SchemaError> {
        let suffix = if self.cfg.is_key { "key" } else { "value" };
        let record = || {
            self.record_name().ok_or_else(|| {
                SchemaError::Config(
                    "RecordNameStrategy and TopicRecordNameStrategy need the producer's record \
                     schema"
                        .into(),
                )
            })
        };
        Ok(match self.cfg.subject_name_strategy {
            SubjectNameStrategy::TopicName => format!("{topic}-{suffix}"),
            SubjectNameStrategy::RecordName => record()?,
            SubjectNameStrategy::TopicRecordName => format!("{topic}-{}", record()?),
        })
    }

    fn own_schema(&self, why: &str) -> Result<&(String, Arc<F::Encoder>), SchemaError> {
        self.schema.as_ref().ok_or_else(|| {
            SchemaError::Config(format!(
                "{why} needs the producer's schema: give one (an .avsc), or pin an id with \
                 use.schema.id, or set use.latest.version=true"
            ))
        })
    }

    /// Resolve the schema id for `topic` in the Java serializer's order
    /// (see the module documentation); kept until `prepare` is called again.
    pub async fn prepare(&self, topic: &str) -> Result<Resolved<F>, SchemaError> {
        let subject = self.subject(topic)?;
        let normalize = self.cfg.normalize_schemas;
        let kind = F::SCHEMA_TYPE;
        let compile = |text: &str| F::compile(text).map(Arc::new).map_err(SchemaError::Config);
        let (id, encoder) = if self.cfg.auto_register_schemas {
            let (text, enc) = self.own_schema("auto.register.schemas=true")?;
            let id = self
                .client
                .register(&subject, text, kind, normalize)
                .await?;
            (id, enc.clone())
        } else if let Some(id) = self.cfg.use_schema_id {
            let registered = self.client.schema_by_id(id).await?;
            if registered.schema_type != kind {
                return Err(SchemaError::Config(format!(
                    "use.schema.id {id} is a {} schema, not {kind}",
                    registered.schema_type
                )));
            }
            // Bytes labelled with an id are written with that id's schema.
            // A producer's own schema must be that schema (the Java
            // serializer accepts one its registered schema can read, then
            // writes with the registered one; herald asks for the same
            // schema, which never labels bytes wrongly).
            if let Some((text, _)) = &self.schema {
                if !F::same(text, &registered.schema) {
                    return Err(SchemaError::Config(format!(
                        "the producer's schema is not the schema registered as id {id}: values \
                         labelled with id {id} must be written with it; leave the local schema \
                         out, or use the id of the local schema"
                    )));
                }
            }
            (id, compile(&registered.schema)?)
        } else if self.cfg.use_latest_version {
            let latest = self.client.version(&subject, Version::Latest).await?;
            if let (true, Some((text, _))) = (self.cfg.latest_compatibility_strict, &self.schema) {
                if !self
                    .client
                    .is_compatible(&subject, Version::Latest, text, kind)
                    .await?
                {
                    return Err(SchemaError::Config(format!(
                        "the producer's schema is not compatible with the latest version ({}) \
                         of {subject} (latest.compatibility.strict=true)",
                        latest.version
                    )));
                }
            }
            (latest.id, compile(&latest.schema.schema)?)
        } else {
            let (text, enc) = self.own_schema("a lookup of the schema's id")?;
            let found = self.client.lookup(&subject, text, kind, normalize).await?;
            (found.id, enc.clone())
        };
        let r = Resolved {
            subject,
            id,
            encoder,
            at: Instant::now(),
        };
        self.resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.to_string(), r.clone());
        Ok(r)
    }

    /// `value` for `topic`, in the wire format (`prepare(topic)` first).
    pub fn serialize_json(&self, topic: &str, value: &Value) -> Result<Vec<u8>, SchemaError> {
        let resolved = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        let r = resolved
            .get(topic)
            .ok_or_else(|| SchemaError::NotPrepared(topic.to_string()))?;
        r.encode(value)
    }
}

impl<F: Format> herald::Serializer<Value> for SchemaSerializer<F> {
    fn serialize(&self, topic: &str, data: &Value) -> Result<Bytes, herald::Error> {
        self.serialize_json(topic, data)
            .map(Bytes::from)
            .map_err(|e| {
                herald::Error::Serialization(format!("{} for topic `{topic}`: {e}", F::SCHEMA_TYPE))
            })
    }
}
