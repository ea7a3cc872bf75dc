//! Schemas on the command line: `herald produce --value-format
//! avro|json-schema` (JSON lines encoded through a Confluent-compatible
//! schema registry, in Confluent's wire format) and `herald schema
//! get|versions|check|register`. Registry and serializer settings go by
//! Confluent's names with `-S PROPERTY=VALUE`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use herald_schema::registry::{RegistryClient, RegistryConfig, Version};
use herald_schema::{AvroSerializer, JsonSchemaSerializer, SerializerConfig};

use crate::commands::{fail, split_pair, USAGE};

/// How a key or value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// The text as given.
    String,
    /// JSON (the Avro JSON encoding) written as Avro by a registered schema.
    Avro,
    /// JSON validated by a registered JSON Schema.
    JsonSchema,
}

/// The schema options of `herald produce`.
#[derive(Args, Debug)]
pub(crate) struct FormatArgs {
    /// How each value is written: as given, or JSON encoded through the
    /// schema registry (Confluent's wire format).
    #[arg(long, value_enum, default_value = "string")]
    value_format: Format,
    /// How each key is written (as --value-format).
    #[arg(long, value_enum, default_value = "string")]
    key_format: Format,
    /// The schema registry's URL (`schema.registry.url`).
    #[arg(long = "schema-registry", value_name = "URL")]
    registry: Option<String>,
    /// Registry and serializer settings by Confluent's names, repeatable:
    /// basic.auth.user.info=USER:PASSWORD, bearer.auth.token=T,
    /// schema.registry.ssl.ca.location=FILE, auto.register.schemas=false,
    /// use.latest.version=true, value.subject.name.strategy=…
    #[arg(short = 'S', value_name = "PROPERTY=VALUE")]
    schema_properties: Vec<String>,
    /// The registered schema id to write values with (no registration).
    #[arg(long, value_name = "ID")]
    value_schema_id: Option<u32>,
    /// The subject whose schema values are written with (no registration).
    #[arg(long, value_name = "SUBJECT", conflicts_with = "value_schema_id")]
    value_subject: Option<String>,
    /// The subject's version for --value-subject (default: latest).
    #[arg(long, value_name = "N|latest", requires = "value_subject")]
    value_schema_version: Option<String>,
    /// The producer's own schema (.avsc or JSON Schema): registered, or
    /// looked up with -S auto.register.schemas=false.
    #[arg(long, value_name = "FILE")]
    value_schema: Option<PathBuf>,
    /// As --value-schema-id, for keys.
    #[arg(long, value_name = "ID")]
    key_schema_id: Option<u32>,
    /// As --value-subject, for keys.
    #[arg(long, value_name = "SUBJECT", conflicts_with = "key_schema_id")]
    key_subject: Option<String>,
    /// As --value-schema-version, for keys.
    #[arg(long, value_name = "N|latest", requires = "key_subject")]
    key_schema_version: Option<String>,
    /// As --value-schema, for keys.
    #[arg(long, value_name = "FILE")]
    key_schema: Option<PathBuf>,
}

/// One side's schema options.
struct Side<'a> {
    is_key: bool,
    format: Format,
    id: Option<u32>,
    subject: Option<&'a str>,
    version: Option<&'a str>,
    schema_file: Option<&'a PathBuf>,
}

/// The registry client for `url` and `-S` settings; the settings it did
/// not take (the serializer's).
fn client(
    url: &str,
    properties: &[String],
) -> Result<(RegistryClient, Vec<(String, String)>), String> {
    let mut cfg = RegistryConfig::new(url);
    let mut rest = Vec::new();
    for p in properties {
        let (k, v) = split_pair(p, "-S property")?;
        if !cfg.set(k, v)? {
            rest.push((k.to_string(), v.to_string()));
        }
    }
    Ok((RegistryClient::new(cfg).map_err(|e| e.to_string())?, rest))
}

fn version(v: Option<&str>) -> Result<Version, String> {
    match v {
        None | Some("latest") => Ok(Version::Latest),
        Some(n) => n
            .parse()
            .map(Version::Number)
            .map_err(|_| format!("version `{n}`: a number or latest")),
    }
}

/// A key or value writer through the registry.
pub(crate) enum Encoder {
    Avro(AvroSerializer),
    Json(JsonSchemaSerializer),
}

impl Encoder {
    /// `text` (one JSON document) for `topic`, in the wire format.
    pub(crate) fn encode(&self, topic: &str, text: &str) -> Result<Vec<u8>, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        match self {
            Encoder::Avro(s) => s.serialize_json(topic, &v),
            Encoder::Json(s) => s.serialize_json(topic, &v),
        }
        .map_err(|e| e.to_string())
    }
}

impl FormatArgs {
    /// The value's and the key's encoders (`None`: as given), with their
    /// schema ids resolved for `topic`.
    pub(crate) async fn encoders(
        &self,
        topic: &str,
    ) -> Result<(Option<Encoder>, Option<Encoder>), (u8, String)> {
        Ok((
            self.encoder(topic, self.side(false)).await?,
            self.encoder(topic, self.side(true)).await?,
        ))
    }

    /// The options of one side (key or value).
    fn side(&self, is_key: bool) -> Side<'_> {
        if is_key {
            Side {
                is_key,
                format: self.key_format,
                id: self.key_schema_id,
                subject: self.key_subject.as_deref(),
                version: self.key_schema_version.as_deref(),
                schema_file: self.key_schema.as_ref(),
            }
        } else {
            Side {
                is_key,
                format: self.value_format,
                id: self.value_schema_id,
                subject: self.value_subject.as_deref(),
                version: self.value_schema_version.as_deref(),
                schema_file: self.value_schema.as_ref(),
            }
        }
    }

    /// One side's encoder. Errors carry the exit status: 2 for options that
    /// cannot work, 1 for what the registry said (or could not).
    async fn encoder(&self, topic: &str, side: Side<'_>) -> Result<Option<Encoder>, (u8, String)> {
        let usage = |e: String| (USAGE, e);
        let runtime = |e: String| (1u8, e);
        let Side {
            is_key,
            format,
            id,
            subject,
            version: subject_version,
            schema_file,
        } = side;
        let which = if is_key { "key" } else { "value" };
        if format == Format::String {
            return Ok(None);
        }
        let url = self
            .registry
            .as_deref()
            .ok_or_else(|| usage(format!("--{which}-format needs --schema-registry URL")))?;
        let (client, rest) = client(url, &self.schema_properties).map_err(usage)?;
        let mut cfg = SerializerConfig::new(is_key);
        for (k, v) in &rest {
            if !cfg.set(k, v).map_err(usage)? {
                return Err(usage(format!(
                    "-S {k}: not a schema registry or serializer setting (see herald produce --help)"
                )));
            }
        }
        // A pinned id, or a subject's version resolved to one: writes with
        // what is registered and never registers.
        let pinned = match (id, subject) {
            (Some(id), _) => Some(id),
            (None, Some(s)) => Some(
                client
                    .version(s, version(subject_version).map_err(usage)?)
                    .await
                    .map_err(|e| runtime(e.to_string()))?
                    .id,
            ),
            (None, None) => None,
        };
        if let Some(id) = pinned {
            cfg.auto_register_schemas = false;
            cfg.use_schema_id = Some(id);
        }
        let schema = match schema_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| usage(format!("--{which}-schema {}: {e}", f.display())))?,
            ),
            None => None,
        };
        // -S use.schema.id=N (Confluent's own way to pin) counts too.
        if cfg.use_schema_id.is_none() && schema.is_none() && !cfg.use_latest_version {
            return Err(usage(format!(
                "--{which}-format {} needs --{which}-schema-id ID, --{which}-subject SUBJECT, \
                 or --{which}-schema FILE",
                if format == Format::Avro {
                    "avro"
                } else {
                    "json-schema"
                }
            )));
        }
        let enc = match format {
            Format::Avro => {
                let s = AvroSerializer::new(client, cfg, schema.as_deref())
                    .map_err(|e| runtime(e.to_string()))?;
                s.prepare(topic).await.map_err(|e| runtime(e.to_string()))?;
                Encoder::Avro(s)
            }
            _ => {
                let s = JsonSchemaSerializer::new(client, cfg, schema.as_deref())
                    .map_err(|e| runtime(e.to_string()))?;
                s.prepare(topic).await.map_err(|e| runtime(e.to_string()))?;
                Encoder::Json(s)
            }
        };
        Ok(Some(enc))
    }
}

/// `herald schema …`: the registry from the command line.
#[derive(Subcommand, Debug)]
pub(crate) enum SchemaCommand {
    /// Print a schema: by id, or a subject's version (default latest).
    Get {
        #[command(flatten)]
        registry: RegistryArgs,
        #[arg(long, conflicts_with = "subject")]
        id: Option<u32>,
        #[arg(long)]
        subject: Option<String>,
        #[arg(long, value_name = "N|latest", requires = "subject")]
        version: Option<String>,
    },
    /// List a subject's versions (or, without --subject, the subjects).
    Versions {
        #[command(flatten)]
        registry: RegistryArgs,
        #[arg(long)]
        subject: Option<String>,
    },
    /// Whether a local schema is compatible with a subject's version
    /// (default latest) under the subject's compatibility level; exit 1 if
    /// not. What a producer checks before submitting a schema change.
    Check {
        #[command(flatten)]
        registry: RegistryArgs,
        #[arg(long)]
        subject: String,
        /// The local schema (.avsc, or a JSON Schema with --type json).
        #[arg(long, value_name = "FILE")]
        schema: PathBuf,
        #[arg(long, value_name = "N|latest")]
        version: Option<String>,
        #[arg(long, value_enum, default_value = "avro")]
        r#type: SchemaType,
    },
    /// Register a schema under a subject; print its id.
    Register {
        #[command(flatten)]
        registry: RegistryArgs,
        #[arg(long)]
        subject: String,
        #[arg(long, value_name = "FILE")]
        schema: PathBuf,
        #[arg(long, value_enum, default_value = "avro")]
        r#type: SchemaType,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SchemaType {
    Avro,
    Json,
}

impl SchemaType {
    fn registry_name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
        }
    }
}

#[derive(Args, Debug)]
pub(crate) struct RegistryArgs {
    /// The schema registry's URL (`schema.registry.url`).
    #[arg(long = "schema-registry", value_name = "URL")]
    url: String,
    /// Registry settings by Confluent's names, repeatable
    /// (basic.auth.user.info=USER:PASSWORD, bearer.auth.token=T, …).
    #[arg(short = 'S', value_name = "PROPERTY=VALUE")]
    properties: Vec<String>,
}

impl RegistryArgs {
    fn client(&self) -> Result<RegistryClient, String> {
        let (c, rest) = client(&self.url, &self.properties)?;
        match rest.first() {
            Some((k, _)) => Err(format!("-S {k}: not a schema registry setting")),
            None => Ok(c),
        }
    }
}

fn read(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) async fn run(cmd: SchemaCommand) -> ExitCode {
    match run_inner(cmd).await {
        Ok(code) => code,
        Err(e) => fail(e, 1),
    }
}

async fn run_inner(cmd: SchemaCommand) -> Result<ExitCode, String> {
    match cmd {
        SchemaCommand::Get {
            registry,
            id,
            subject,
            version: v,
        } => {
            let c = registry.client()?;
            let (schema, what) = match (id, subject) {
                (Some(id), _) => {
                    let s = c.schema_by_id(id).await.map_err(|e| e.to_string())?;
                    (s, format!("id {id}"))
                }
                (None, Some(s)) => {
                    let sv = c
                        .version(&s, version(v.as_deref())?)
                        .await
                        .map_err(|e| e.to_string())?;
                    (
                        sv.schema,
                        format!("{} version {} id {}", sv.subject, sv.version, sv.id),
                    )
                }
                (None, None) => return Err("give --id ID or --subject SUBJECT".into()),
            };
            eprintln!("{what} ({})", schema.schema_type);
            let pretty = serde_json::from_str::<serde_json::Value>(&schema.schema)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or(schema.schema);
            println!("{pretty}");
        }
        SchemaCommand::Versions { registry, subject } => {
            let c = registry.client()?;
            match subject {
                Some(s) => {
                    for v in c.versions(&s).await.map_err(|e| e.to_string())? {
                        println!("{v}");
                    }
                }
                None => {
                    for s in c.subjects().await.map_err(|e| e.to_string())? {
                        println!("{s}");
                    }
                }
            }
        }
        SchemaCommand::Check {
            registry,
            subject,
            schema,
            version: v,
            r#type,
        } => {
            let c = registry.client()?;
            let text = read(&schema)?;
            let v = version(v.as_deref())?;
            let level = c
                .compatibility_level(Some(&subject))
                .await
                .unwrap_or_else(|_| "unknown".into());
            let ok = c
                .is_compatible(&subject, v, &text, r#type.registry_name())
                .await
                .map_err(|e| e.to_string())?;
            if ok {
                println!(
                    "{}: compatible with {subject} version {v} (compatibility level {level})",
                    schema.display()
                );
            } else {
                println!(
                    "{}: NOT compatible with {subject} version {v} (compatibility level {level}): \
                     a consumer could not read one with the other; add defaults to new fields, \
                     keep types, or agree a new subject with the bus team",
                    schema.display()
                );
                return Ok(ExitCode::from(1));
            }
        }
        SchemaCommand::Register {
            registry,
            subject,
            schema,
            r#type,
        } => {
            let c = registry.client()?;
            let text = read(&schema)?;
            let id = c
                .register(&subject, &text, r#type.registry_name(), false)
                .await
                .map_err(|e| e.to_string())?;
            println!("{id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
