//! The gateway's configuration: one TOML file, read into [`GatewayConfig`]
//! and checked whole before anything starts. Every error names the file,
//! the line and the key, and says what is allowed (`herald gateway check
//! --config FILE` prints them). The file is walked by hand over
//! `toml_edit`'s parse tree, which keeps the position of every key.
//!
//! ```toml
//! listen = "127.0.0.1:8080"        # default
//! shutdown_grace_ms = 10000        # default
//! # auth = "none"                  # only to listen beyond loopback without [[tokens]]
//!
//! [spool]
//! dir = "/var/lib/herald/spool"    # required; one spool per instance under it
//! max_bytes = 1073741824           # per instance; default 1 GiB
//!
//! [limits]
//! max_body_bytes = 1048576         # default 1 MiB
//! max_events_per_batch = 1000      # default
//! header_timeout_ms = 10000        # default; request headers (and an idle keep-alive) within it
//! body_timeout_ms = 30000          # default; the whole body within it, else 408
//! max_connections = 10000          # default; beyond it new connections get a 503 and are closed
//!
//! [instances.main]                 # lowercase letters and digits
//! "bootstrap.servers" = "127.0.0.1:9092"   # any producer property by Kafka's name
//! send_timeout_ms = 30000          # default; the wait=true limit
//! fallback = "spool"               # default; or "none": 503 while Kafka is unreachable
//!
//! [instances.main.topics.orders]   # only listed topics can be published to
//! key = "/customer/id"             # JSON pointer into the event (when the request has no key)
//! headers = { source = "gateway" } # fixed headers
//!
//! [[tokens]]
//! name = "billing"
//! sha256 = "…64 hex digits…"       # of the token; `herald gateway token` makes both
//! allow = ["main/orders", "main/*"]
//! events_per_second = 1000         # optional rate limit (429 with Retry-After beyond it)
//! burst = 2000                     # optional; default: one second's worth
//! permissions = ["status"]         # optional: may read the status page (GET /) from anywhere
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald::ProducerConfig;
use toml_edit::{Item, Key, Table, TableLike};

/// What the gateway does when an instance's Kafka is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Accept into the spool (202) and deliver when Kafka is back.
    Spool,
    /// Refuse with 503, naming the broker (seed 001's `publishAsync` throws).
    None,
}

/// A topic that may be published to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRule {
    /// A JSON pointer (RFC 6901) into the event: the key when the request
    /// gives none.
    pub key: Option<String>,
    /// Headers added to every event of this topic.
    pub headers: Vec<(String, String)>,
    /// The registered schema values are written with, if any.
    pub value_schema: Option<SchemaRef>,
    /// The registered schema keys are written with, if any.
    pub key_schema: Option<SchemaRef>,
}

/// A Kafka instance.
#[derive(Debug, Clone)]
pub struct Instance {
    pub name: String,
    /// Its producer properties as written (Kafka's names).
    pub properties: Vec<(String, String)>,
    /// The producer made of them (checked).
    pub producer: ProducerConfig,
    pub send_timeout: Duration,
    pub fallback: Fallback,
    pub topics: BTreeMap<String, TopicRule>,
    /// `[instances.NAME.schema_registry]`, if its topics have schemas.
    pub registry: Option<herald_schema::RegistryConfig>,
}

/// Who may publish where.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRule {
    pub name: String,
    /// The SHA-256 of the token.
    pub sha256: [u8; 32],
    /// `(instance, topic)` patterns; `*` matches any.
    pub allow: Vec<(String, String)>,
    /// `events_per_second` and `burst`: the token's rate limit, if any.
    pub rate: Option<(f64, f64)>,
    /// `permissions = ["status"]`: may read the status page (`GET /`)
    /// from anywhere; without it only loopback clients may.
    pub status: bool,
}

impl TokenRule {
    /// Whether this token may publish to `instance`/`topic`.
    pub fn allows(&self, instance: &str, topic: &str) -> bool {
        self.allow
            .iter()
            .any(|(i, t)| (i == "*" || i == instance) && (t == "*" || t == topic))
    }
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// `auth = "none"`: no tokens required (allowed beyond loopback only
    /// when said explicitly).
    pub auth_none: bool,
    pub shutdown_grace: Duration,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    pub max_body_bytes: usize,
    pub max_events_per_batch: usize,
    /// `limits.header_timeout_ms`: a request's headers (and the next
    /// request on an idle keep-alive connection) must arrive within it.
    pub header_timeout: Duration,
    /// `limits.body_timeout_ms`: a request's whole body must arrive within it.
    pub body_timeout: Duration,
    /// `limits.max_connections`: open connections at most.
    pub max_connections: usize,
    pub instances: BTreeMap<String, Instance>,
    pub tokens: Vec<TokenRule>,
}

/// A configuration error: where, which key, what is wrong and what is
/// allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; `None` when the error is about something missing.
    pub line: Option<usize>,
    /// The dotted key (`instances.main.send_timeout_ms`).
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}: {}", self.file, self.key, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.key, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The top-level keys, and each section's.
const TOP: &[&str] = &[
    "listen",
    "auth",
    "shutdown_grace_ms",
    "spool",
    "limits",
    "instances",
    "tokens",
];
const SPOOL: &[&str] = &["dir", "max_bytes"];
const LIMITS: &[&str] = &[
    "max_body_bytes",
    "max_events_per_batch",
    "header_timeout_ms",
    "body_timeout_ms",
    "max_connections",
];
const INSTANCE: &[&str] = &["send_timeout_ms", "fallback", "topics", "schema_registry"];
const TOPIC: &[&str] = &["key", "headers", "value_schema", "key_schema"];
const TOKEN: &[&str] = &[
    "name",
    "sha256",
    "allow",
    "events_per_second",
    "burst",
    "permissions",
];

struct Ctx<'a> {
    file: String,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        span.map(|s| {
            self.text[..s.start.min(self.text.len())]
                .matches('\n')
                .count()
                + 1
        })
    }

    fn err(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.line(span),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// The span of `key` in `table` (its name), else of its value.
    fn at(table: &dyn TableLike, key: &str) -> Option<Range<usize>> {
        table
            .key(key)
            .and_then(Key::span)
            .or_else(|| table.get(key).and_then(Item::span))
    }

    /// Refuse keys not in `allowed`, naming the closest allowed one.
    fn only(&self, table: &dyn TableLike, path: &str, allowed: &[&str]) -> Result<(), ConfigError> {
        for (k, _) in table.iter() {
            if !allowed.contains(&k) {
                let hint = closest(k, allowed)
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                return Err(self.err(
                    Ctx::at(table, k),
                    &join(path, k),
                    format!("unknown key{hint}; allowed here: {}", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    }

    fn string(
        &self,
        table: &dyn TableLike,
        path: &str,
        key: &str,
    ) -> Result<Option<String>, ConfigError> {
        match table.get(key) {
            None => Ok(None),
            Some(item) => item.as_str().map(|s| Some(s.to_string())).ok_or_else(|| {
                self.err(
                    Ctx::at(table, key),
                    &join(path, key),
                    format!("expected a string, found {}", item.type_name()),
                )
            }),
        }
    }

    fn integer(
        &self,
        table: &dyn TableLike,
        path: &str,
        key: &str,
        range: Range<i64>,
    ) -> Result<Option<i64>, ConfigError> {
        match table.get(key) {
            None => Ok(None),
            Some(item) => match item.as_integer() {
                Some(v) if range.contains(&v) => Ok(Some(v)),
                Some(v) => Err(self.err(
                    Ctx::at(table, key),
                    &join(path, key),
                    format!("{v} is out of range ({}..{})", range.start, range.end),
                )),
                None => Err(self.err(
                    Ctx::at(table, key),
                    &join(path, key),
                    format!("expected an integer, found {}", item.type_name()),
                )),
            },
        }
    }

    fn table<'t>(
        &self,
        parent: &'t dyn TableLike,
        path: &str,
        key: &str,
    ) -> Result<Option<&'t dyn TableLike>, ConfigError> {
        match parent.get(key) {
            None => Ok(None),
            Some(item) => item.as_table_like().map(Some).ok_or_else(|| {
                self.err(
                    Ctx::at(parent, key),
                    &join(path, key),
                    format!("expected a table, found {}", item.type_name()),
                )
            }),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The allowed key closest to `k` (a typo of one or two letters).
fn closest<'a>(k: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (strsim::levenshtein(k, a), *a))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, a)| a)
}

/// An instance name: lowercase letters and digits (seed 001).
fn valid_instance(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl GatewayConfig {
    /// Read and check the configuration in `path`.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: None,
            key: "(file)".into(),
            message: format!("cannot read it: {e}"),
        })?;
        GatewayConfig::parse(&path.display().to_string(), &text)
    }

    /// Check the configuration `text` (read from `file`, for the messages).
    pub fn parse(file: &str, text: &str) -> Result<GatewayConfig, ConfigError> {
        let cx = Ctx {
            file: file.to_string(),
            text,
        };
        let doc = toml_edit::Document::parse(text).map_err(|e| {
            let line = cx.line(e.span());
            ConfigError {
                file: file.to_string(),
                line,
                key: "(syntax)".into(),
                message: e.message().trim().to_string(),
            }
        })?;
        let top: &Table = doc.as_table();
        cx.only(top, "", TOP)?;

        let listen_s = cx
            .string(top, "", "listen")?
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_s.parse().map_err(|_| {
            cx.err(
                Ctx::at(top, "listen"),
                "listen",
                format!("`{listen_s}` is not an address:port such as 127.0.0.1:8080 or [::1]:8080"),
            )
        })?;
        let auth_none = match cx.string(top, "", "auth")?.as_deref() {
            None | Some("tokens") => false,
            Some("none") => true,
            Some(other) => {
                return Err(cx.err(
                    Ctx::at(top, "auth"),
                    "auth",
                    format!("`{other}`: expected \"tokens\" (the default) or \"none\""),
                ))
            }
        };
        let shutdown_grace = Duration::from_millis(
            cx.integer(top, "", "shutdown_grace_ms", 0..3_600_001)?
                .unwrap_or(10_000) as u64,
        );

        let spool = cx.table(top, "", "spool")?.ok_or_else(|| {
            cx.err(
                None,
                "spool",
                "missing: a [spool] table with `dir` (where accepted events are kept until Kafka has them)",
            )
        })?;
        cx.only(spool, "spool", SPOOL)?;
        let spool_dir = cx.string(spool, "spool", "dir")?.ok_or_else(|| {
            cx.err(
                None,
                "spool.dir",
                "missing: the directory for the spools (one per instance under it)",
            )
        })?;
        let spool_max_bytes = cx
            .integer(spool, "spool", "max_bytes", 1 << 20..i64::MAX)?
            .unwrap_or(1 << 30) as u64;

        let (mut max_body_bytes, mut max_events_per_batch) = (1 << 20, 1000);
        let (mut header_timeout, mut body_timeout) =
            (Duration::from_secs(10), Duration::from_secs(30));
        let mut max_connections = 10_000;
        if let Some(limits) = cx.table(top, "", "limits")? {
            cx.only(limits, "limits", LIMITS)?;
            if let Some(v) = cx.integer(limits, "limits", "max_body_bytes", 1..1 << 31)? {
                max_body_bytes = v as usize;
            }
            if let Some(v) = cx.integer(limits, "limits", "max_events_per_batch", 1..1_000_001)? {
                max_events_per_batch = v as usize;
            }
            if let Some(v) = cx.integer(limits, "limits", "header_timeout_ms", 100..3_600_001)? {
                header_timeout = Duration::from_millis(v as u64);
            }
            if let Some(v) = cx.integer(limits, "limits", "body_timeout_ms", 100..3_600_001)? {
                body_timeout = Duration::from_millis(v as u64);
            }
            if let Some(v) = cx.integer(limits, "limits", "max_connections", 1..1_000_001)? {
                max_connections = v as usize;
            }
        }

        let instances_t = cx.table(top, "", "instances")?.ok_or_else(|| {
            cx.err(
                None,
                "instances",
                "missing: at least one [instances.NAME] with \"bootstrap.servers\"",
            )
        })?;
        let mut instances = BTreeMap::new();
        for (name, item) in instances_t.iter() {
            let path = join("instances", name);
            let at = Ctx::at(instances_t, name);
            if !valid_instance(name) {
                return Err(cx.err(
                    at,
                    &path,
                    format!("`{name}`: an instance name is lowercase letters and digits only"),
                ));
            }
            let t = item.as_table_like().ok_or_else(|| {
                cx.err(
                    at.clone(),
                    &path,
                    format!("expected a table, found {}", item.type_name()),
                )
            })?;
            instances.insert(name.to_string(), instance(&cx, name, &path, t, at)?);
        }
        if instances.is_empty() {
            return Err(cx.err(
                Ctx::at(top, "instances"),
                "instances",
                "empty: add at least one [instances.NAME] with \"bootstrap.servers\"",
            ));
        }

        let mut tokens = Vec::new();
        if let Some(item) = top.get("tokens") {
            let arr = item.as_array_of_tables().ok_or_else(|| {
                cx.err(
                    Ctx::at(top, "tokens"),
                    "tokens",
                    "expected [[tokens]] tables (name, sha256, allow)",
                )
            })?;
            for (i, t) in arr.iter().enumerate() {
                let path = format!("tokens[{i}]");
                let rule = token(&cx, &path, t, &instances)?;
                // The name keys the rate limit and the idempotency keys.
                if tokens.iter().any(|r: &TokenRule| r.name == rule.name) {
                    return Err(cx.err(
                        Ctx::at(t, "name"),
                        &join(&path, "name"),
                        format!(
                            "`{}` is the name of another token: names must differ",
                            rule.name
                        ),
                    ));
                }
                tokens.push(rule);
            }
        }
        if tokens.is_empty() && !auth_none && !listen.ip().is_loopback() {
            return Err(cx.err(
                Ctx::at(top, "listen"),
                "listen",
                format!(
                    "{listen} is not a loopback address and no [[tokens]] are configured: anyone \
                     who can reach it could publish. Add tokens (`herald gateway token --name \
                     NAME`), listen on 127.0.0.1, or set auth = \"none\" explicitly"
                ),
            ));
        }
        Ok(GatewayConfig {
            listen,
            auth_none,
            shutdown_grace,
            spool_dir: PathBuf::from(spool_dir),
            spool_max_bytes,
            max_body_bytes,
            max_events_per_batch,
            header_timeout,
            body_timeout,
            max_connections,
            instances,
            tokens,
        })
    }
}

/// A producer property's value as text (TOML strings, integers, booleans).
fn property_value(item: &Item) -> Option<String> {
    if let Some(s) = item.as_str() {
        return Some(s.to_string());
    }
    if let Some(i) = item.as_integer() {
        return Some(i.to_string());
    }
    item.as_bool().map(|b| b.to_string())
}

fn instance(
    cx: &Ctx<'_>,
    name: &str,
    path: &str,
    t: &dyn TableLike,
    here: Option<Range<usize>>,
) -> Result<Instance, ConfigError> {
    let mut properties = Vec::new();
    for (k, item) in t.iter() {
        if INSTANCE.contains(&k) {
            continue;
        }
        let value = property_value(item).ok_or_else(|| {
            cx.err(
                Ctx::at(t, k),
                &join(path, k),
                format!(
                    "a producer property needs a string, integer or boolean value, found {}",
                    item.type_name()
                ),
            )
        })?;
        properties.push((k.to_string(), value));
    }
    if !properties.iter().any(|(k, _)| k == "bootstrap.servers") {
        return Err(cx.err(
            here.clone(),
            &join(path, "bootstrap.servers"),
            "missing: the instance's brokers, e.g. \"bootstrap.servers\" = \"kafka1:9092,kafka2:9092\"",
        ));
    }
    let refs: Vec<(&str, &str)> = properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let producer = ProducerConfig::from_properties(&refs).map_err(|e| {
        // The producer's error names the property; point at its line.
        let key = match &e {
            herald::Error::Config { key, .. } => properties
                .iter()
                .map(|(k, _)| k.as_str())
                .find(|k| k == key)
                .unwrap_or(""),
            _ => "",
        };
        cx.err(
            if key.is_empty() {
                None
            } else {
                Ctx::at(t, key)
            },
            &if key.is_empty() {
                path.to_string()
            } else {
                join(path, key)
            },
            e.to_string(),
        )
    })?;
    let send_timeout = Duration::from_millis(
        cx.integer(t, path, "send_timeout_ms", 1..i32::MAX as i64)?
            .unwrap_or(30_000) as u64,
    );
    let fallback = match cx.string(t, path, "fallback")?.as_deref() {
        None | Some("spool") => Fallback::Spool,
        Some("none") => Fallback::None,
        Some(other) => {
            return Err(cx.err(
                Ctx::at(t, "fallback"),
                &join(path, "fallback"),
                format!(
                    "`{other}`: expected \"spool\" (accept while Kafka is down, the default) or \
                     \"none\" (answer 503)"
                ),
            ))
        }
    };
    let registry = match cx.table(t, path, "schema_registry")? {
        Some(r) => Some(schemas::registry(cx, &join(path, "schema_registry"), r)?),
        None => None,
    };
    let mut topics = BTreeMap::new();
    let tpath = join(path, "topics");
    let topics_t = cx.table(t, path, "topics")?.ok_or_else(|| {
        cx.err(
            here.clone(),
            &tpath,
            format!("missing: list the topics events may be published to, e.g. [instances.{name}.topics.orders]"),
        )
    })?;
    for (topic, item) in topics_t.iter() {
        let p = join(&tpath, topic);
        let at = Ctx::at(topics_t, topic);
        if let Err(why) = herald::metadata::check_topic_name(topic) {
            return Err(cx.err(at, &p, why));
        }
        let tt = item.as_table_like().ok_or_else(|| {
            cx.err(
                at.clone(),
                &p,
                format!("expected a table, found {}", item.type_name()),
            )
        })?;
        cx.only(tt, &p, TOPIC)?;
        let key = cx.string(tt, &p, "key")?;
        if let Some(k) = &key {
            if !(k.is_empty() || k.starts_with('/')) {
                return Err(cx.err(
                    Ctx::at(tt, "key"),
                    &join(&p, "key"),
                    format!(
                        "`{k}` is not a JSON pointer: it starts with / (e.g. \"/customer/id\")"
                    ),
                ));
            }
        }
        let mut headers = Vec::new();
        if let Some(h) = cx.table(tt, &p, "headers")? {
            let hp = join(&p, "headers");
            for (name, v) in h.iter() {
                let value = v.as_str().ok_or_else(|| {
                    cx.err(
                        Ctx::at(h, name),
                        &join(&hp, name),
                        format!("a header value is a string, found {}", v.type_name()),
                    )
                })?;
                headers.push((name.to_string(), value.to_string()));
            }
        }
        let value_schema = schemas::schema_ref(cx, &p, tt, "value_schema")?;
        let key_schema = schemas::schema_ref(cx, &p, tt, "key_schema")?;
        if (value_schema.is_some() || key_schema.is_some()) && registry.is_none() {
            return Err(cx.err(
                Ctx::at(tt, if value_schema.is_some() { "value_schema" } else { "key_schema" }),
                &p,
                format!(
                    "a schema needs the instance's registry: add [instances.{name}.schema_registry] \
                     with url = \"http://registry:8081\""
                ),
            ));
        }
        topics.insert(
            topic.to_string(),
            TopicRule {
                key,
                headers,
                value_schema,
                key_schema,
            },
        );
    }
    if topics.is_empty() {
        return Err(cx.err(
            Ctx::at(t, "topics"),
            &tpath,
            "empty: list at least one topic",
        ));
    }
    Ok(Instance {
        name: name.to_string(),
        properties,
        producer,
        send_timeout,
        fallback,
        topics,
        registry,
    })
}

fn token(
    cx: &Ctx<'_>,
    path: &str,
    t: &Table,
    instances: &BTreeMap<String, Instance>,
) -> Result<TokenRule, ConfigError> {
    cx.only(t, path, TOKEN)?;
    let here = t.span();
    let name = cx.string(t, path, "name")?.ok_or_else(|| {
        cx.err(
            here.clone(),
            &join(path, "name"),
            "missing: a name for this token (shown in logs)",
        )
    })?;
    let hash = cx.string(t, path, "sha256")?.ok_or_else(|| {
        cx.err(
            here.clone(),
            &join(path, "sha256"),
            "missing: the token's SHA-256 in hex (`herald gateway token --name NAME` prints it)",
        )
    })?;
    let sha256 = crate::token::unhex32(&hash.to_ascii_lowercase()).ok_or_else(|| {
        cx.err(
            Ctx::at(t, "sha256"),
            &join(path, "sha256"),
            "expected 64 hex digits (the SHA-256 of the token, never the token itself)",
        )
    })?;
    let apath = join(path, "allow");
    let arr = t.get("allow").and_then(Item::as_array).ok_or_else(|| {
        cx.err(
            Ctx::at(t, "allow").or(here.clone()),
            &apath,
            "expected a list of \"instance/topic\" patterns, e.g. allow = [\"main/orders\", \"main/*\"]",
        )
    })?;
    let mut allow = Vec::new();
    for v in arr.iter() {
        let at = v.span();
        let s = v
            .as_str()
            .ok_or_else(|| cx.err(at.clone(), &apath, "a pattern is a string"))?;
        let Some((i, tp)) = s.split_once('/') else {
            return Err(cx.err(
                at,
                &apath,
                format!("`{s}`: expected instance/topic (either may be *)"),
            ));
        };
        if i != "*" {
            let Some(inst) = instances.get(i) else {
                return Err(cx.err(
                    at,
                    &apath,
                    format!(
                        "`{s}`: no instance `{i}` (configured: {})",
                        instances.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            };
            if tp != "*" && !inst.topics.contains_key(tp) {
                return Err(cx.err(
                    at,
                    &apath,
                    format!(
                        "`{s}`: instance `{i}` has no topic `{tp}` (configured: {})",
                        inst.topics.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        allow.push((i.to_string(), tp.to_string()));
    }
    let rate = cx.integer(t, path, "events_per_second", 1..100_000_001)?;
    let burst = cx.integer(t, path, "burst", 1..1_000_000_001)?;
    let rate = match (rate, burst) {
        (Some(r), b) => Some((r as f64, b.unwrap_or(r) as f64)),
        (None, Some(_)) => {
            return Err(cx.err(
                Ctx::at(t, "burst"),
                &join(path, "burst"),
                "burst without events_per_second: set the rate too (burst defaults to one \
                 second's worth)",
            ))
        }
        (None, None) => None,
    };
    let mut status = false;
    if let Some(item) = t.get("permissions") {
        let ppath = join(path, "permissions");
        let arr = item.as_array().ok_or_else(|| {
            cx.err(
                Ctx::at(t, "permissions"),
                &ppath,
                "expected a list, e.g. permissions = [\"status\"]",
            )
        })?;
        for v in arr.iter() {
            match v.as_str() {
                Some("status") => status = true,
                other => {
                    return Err(cx.err(
                        v.span(),
                        &ppath,
                        format!(
                            "`{}`: the one permission is \"status\" (read the status page from \
                             anywhere, not only loopback)",
                            other.unwrap_or("a non-string")
                        ),
                    ))
                }
            }
        }
    }
    Ok(TokenRule {
        name,
        sha256,
        allow,
        rate,
        status,
    })
}

mod schemas;
pub use schemas::{Pin, SchemaFormat, SchemaRef};

#[cfg(test)]
mod tests;
