//! Topics with schemas: each event's value (and key) written through the
//! schema registry before it is accepted, in Confluent's wire format. The
//! schema is resolved at a topic's first event (a pinned id: one read; a
//! subject's version: its id, then that), and again at the next event if
//! the registry could not be read: the gateway never accepts an event it
//! cannot encode (it answers 503 for that topic until it can).

use herald_schema::registry::RegistryClient;
use herald_schema::serializer::{Avro, JsonSchema, Resolved};
use herald_schema::{AvroSerializer, JsonSchemaSerializer, SchemaError, SerializerConfig};
use serde_json::Value;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::config::{Pin, SchemaFormat, SchemaRef};
use crate::request::Codec;

/// A resolved schema, ready to encode (held directly: no lock or lookup
/// per event).
enum Ready {
    Avro(Resolved<Avro>),
    Json(Resolved<JsonSchema>),
}

impl Ready {
    fn encode(&self, v: &Value) -> Result<Vec<u8>, String> {
        let r = match self {
            Ready::Avro(r) => r.encode(v),
            Ready::Json(r) => r.encode(v),
        };
        r.map_err(|e| match e {
            // `value/status: expected …` (the path under the value), or
            // `value: expected …` for the whole value.
            SchemaError::Encode(e) if e.path == "/" => format!(": {}", e.rule),
            SchemaError::Encode(e) => format!("{}: {}", e.path, e.rule),
            other => format!(": {other}"),
        })
    }
}

/// One side (key or value) of a topic.
struct Side {
    schema: SchemaRef,
    is_key: bool,
    ready: OnceCell<Ready>,
}

impl Side {
    async fn resolve(&self, client: &RegistryClient, topic: &str) -> Result<&Ready, SchemaError> {
        self.ready
            .get_or_try_init(|| async {
                let id = match &self.schema.pin {
                    Pin::Id(id) => *id,
                    Pin::Subject(s, v) => client.version(s, *v).await?.id,
                };
                let mut cfg = SerializerConfig::new(self.is_key);
                cfg.auto_register_schemas = false;
                cfg.use_schema_id = Some(id);
                Ok(match self.schema.format {
                    SchemaFormat::Avro => Ready::Avro(
                        AvroSerializer::new(client.clone(), cfg, None)?
                            .prepare(topic)
                            .await?,
                    ),
                    SchemaFormat::JsonSchema => Ready::Json(
                        JsonSchemaSerializer::new(client.clone(), cfg, None)?
                            .prepare(topic)
                            .await?,
                    ),
                })
            })
            .await
    }
}

/// How long a topic's schema may take to resolve before the request is
/// answered 503, and how long a failure is remembered (requests meanwhile
/// get the same 503 at once instead of each waiting on the registry).
const RESOLVE_DEADLINE: Duration = Duration::from_secs(5);
const FAILURE_MEMORY: Duration = Duration::from_secs(5);

/// A topic's schemas.
pub(crate) struct TopicCodec {
    client: RegistryClient,
    value: Option<Side>,
    key: Option<Side>,
    /// The last failure to resolve, and when.
    failed: Mutex<Option<(Instant, String)>>,
}

/// A side's resolved schema (`None` for a side without one).
fn ready(s: &Option<Side>) -> Result<Option<&Ready>, String> {
    match s {
        Some(s) => s
            .ready
            .get()
            .map(Some)
            .ok_or_else(|| "not resolved".to_string()),
        None => Ok(None),
    }
}

/// A topic's schemas, resolved: the [`Codec`] its events are written with.
pub(crate) struct Prepared<'a> {
    value: Option<&'a Ready>,
    key: Option<&'a Ready>,
}

impl TopicCodec {
    pub(crate) fn new(
        client: RegistryClient,
        value: Option<SchemaRef>,
        key: Option<SchemaRef>,
    ) -> TopicCodec {
        let side = |schema, is_key| Side {
            schema,
            is_key,
            ready: OnceCell::new(),
        };
        TopicCodec {
            client,
            value: value.map(|s| side(s, false)),
            key: key.map(|s| side(s, true)),
            failed: Mutex::new(None),
        }
    }

    /// Both sides resolved, or why the registry could not give them
    /// (within [`RESOLVE_DEADLINE`]; a failure is remembered for
    /// [`FAILURE_MEMORY`]).
    pub(crate) async fn prepared<'a>(&'a self, topic: &'a str) -> Result<Prepared<'a>, String> {
        let resolved = self.value.as_ref().is_none_or(|s| s.ready.initialized())
            && self.key.as_ref().is_none_or(|s| s.ready.initialized());
        if !resolved {
            if let Some((at, why)) = &*self.failed.lock().unwrap_or_else(|e| e.into_inner()) {
                if at.elapsed() < FAILURE_MEMORY {
                    return Err(why.clone());
                }
            }
            let r = tokio::time::timeout(RESOLVE_DEADLINE, self.resolve(topic)).await;
            let why = match r {
                Ok(Ok(())) => None,
                Ok(Err(why)) => Some(why),
                Err(_) => Some(format!(
                    "the schema registry did not answer within {} s",
                    RESOLVE_DEADLINE.as_secs()
                )),
            };
            if let Some(why) = why {
                *self.failed.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), why.clone()));
                return Err(why);
            }
        }
        self.resolve_now()
    }

    async fn resolve(&self, topic: &str) -> Result<(), String> {
        if let Some(s) = &self.value {
            s.resolve(&self.client, topic)
                .await
                .map_err(|e| e.to_string())?;
        }
        if let Some(s) = &self.key {
            s.resolve(&self.client, topic)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Both sides, already resolved.
    fn resolve_now(&self) -> Result<Prepared<'_>, String> {
        Ok(Prepared {
            value: ready(&self.value)?,
            key: ready(&self.key)?,
        })
    }
}

impl Codec for Prepared<'_> {
    fn value(&self, v: &Value) -> Result<Vec<u8>, String> {
        match self.value {
            Some(r) => r.encode(v),
            None => Ok(serde_json::to_vec(v).expect("a JSON value serializes")),
        }
    }

    fn key(&self, k: &str) -> Result<Vec<u8>, String> {
        match self.key {
            Some(r) => r.encode(&Value::String(k.to_string())),
            None => Ok(k.as_bytes().to_vec()),
        }
    }
}
