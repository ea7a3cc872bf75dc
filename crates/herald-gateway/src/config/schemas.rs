//! The schema parts of the configuration: an instance's
//! `[instances.NAME.schema_registry]` (its `url` and any registry setting
//! by Confluent's name) and a topic's `value_schema` / `key_schema`
//! (`{ format = "avro" | "json-schema", id = N }` or `{ format = …,
//! subject = "S", version = N | "latest" }`).

use herald_schema::registry::{RegistryConfig, Version};
use toml_edit::TableLike;

use super::{join, ConfigError, Ctx};

/// How events of a topic are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaFormat {
    Avro,
    JsonSchema,
}

/// Which registered schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// A schema id, handed out by the bus team (seed 004).
    Id(u32),
    /// A subject's version (resolved to its id at the first event).
    Subject(String, Version),
}

/// A topic's key or value schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRef {
    pub format: SchemaFormat,
    pub pin: Pin,
}

const SCHEMA: &[&str] = &["format", "id", "subject", "version"];

/// `[instances.NAME.schema_registry]`.
pub(super) fn registry(
    cx: &Ctx<'_>,
    path: &str,
    t: &dyn TableLike,
) -> Result<RegistryConfig, ConfigError> {
    let url = cx.string(t, path, "url")?.ok_or_else(|| {
        cx.err(
            None,
            &join(path, "url"),
            "missing: the registry's URL, e.g. url = \"http://registry:8081\"",
        )
    })?;
    let mut cfg = RegistryConfig::new(&url);
    for (k, item) in t.iter() {
        if k == "url" {
            continue;
        }
        let value = super::property_value(item).ok_or_else(|| {
            cx.err(
                Ctx::at(t, k),
                &join(path, k),
                format!(
                    "expected a string, integer or boolean, found {}",
                    item.type_name()
                ),
            )
        })?;
        match cfg.set(k, &value) {
            Ok(true) => {}
            Ok(false) => {
                return Err(cx.err(
                    Ctx::at(t, k),
                    &join(path, k),
                    "not a schema registry setting (url, basic.auth.user.info, bearer.auth.token, \
                     schema.registry.ssl.ca.location, request.timeout.ms, max.retries, \
                     retries.wait.ms, retries.max.wait.ms, latest.cache.ttl.sec)",
                ))
            }
            Err(why) => return Err(cx.err(Ctx::at(t, k), &join(path, k), why)),
        }
    }
    herald_schema::RegistryClient::new(cfg.clone())
        .map_err(|e| cx.err(Ctx::at(t, "url"), &join(path, "url"), e.to_string()))?;
    Ok(cfg)
}

/// A topic's `value_schema` or `key_schema`.
pub(super) fn schema_ref(
    cx: &Ctx<'_>,
    path: &str,
    parent: &dyn TableLike,
    key: &str,
) -> Result<Option<SchemaRef>, ConfigError> {
    let Some(item) = parent.get(key) else {
        return Ok(None);
    };
    let p = join(path, key);
    let example = "e.g. { format = \"avro\", id = 12 } or { format = \"avro\", subject = \
                   \"orders-value\", version = \"latest\" }";
    let Some(t) = item.as_table_like() else {
        return Err(cx.err(
            Ctx::at(parent, key),
            &p,
            format!("expected a table, {example}"),
        ));
    };
    cx.only(t, &p, SCHEMA)?;
    let format = match cx.string(t, &p, "format")?.as_deref() {
        Some("avro") => SchemaFormat::Avro,
        Some("json-schema") => SchemaFormat::JsonSchema,
        Some(other) => {
            return Err(cx.err(
                Ctx::at(t, "format"),
                &join(&p, "format"),
                format!("`{other}`: expected \"avro\" or \"json-schema\""),
            ))
        }
        None => {
            return Err(cx.err(
                Ctx::at(parent, key),
                &join(&p, "format"),
                "missing: \"avro\" or \"json-schema\"",
            ))
        }
    };
    let id = cx.integer(t, &p, "id", 0..i32::MAX as i64)?;
    let subject = cx.string(t, &p, "subject")?;
    let version = match t.get("version") {
        None => Version::Latest,
        Some(v) if v.as_str() == Some("latest") => Version::Latest,
        Some(v) => match v.as_integer().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n > 0 => Version::Number(n),
            _ => {
                return Err(cx.err(
                    Ctx::at(t, "version"),
                    &join(&p, "version"),
                    "expected a version number or \"latest\"",
                ))
            }
        },
    };
    let pin = match (id, subject) {
        (Some(id), None) => Pin::Id(id as u32),
        (None, Some(s)) => Pin::Subject(s, version),
        (Some(_), Some(_)) => {
            return Err(cx.err(Ctx::at(t, "subject"), &p, "give id or subject, not both"))
        }
        (None, None) => {
            return Err(cx.err(
                Ctx::at(parent, key),
                &p,
                format!("missing: the schema's id or subject, {example}"),
            ))
        }
    };
    Ok(Some(SchemaRef { format, pin }))
}
