//! `herald catalog validate|init`: the Backstage `catalog-info.yaml`
//! Event entity of seed 004, checked (every problem with file, line and
//! column) and started for a topic.

pub(crate) mod init;
pub(crate) mod rules;
pub(crate) mod yaml;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use herald_schema::registry::{RegistryClient, RegistryConfig, Version};

use crate::commands::{fail, split_pair, USAGE};

#[derive(Subcommand, Debug)]
pub(crate) enum CatalogCommand {
    /// Check catalog-info.yaml files: Backstage's rules for every entity
    /// and the Event kind's. Prints every problem as FILE:LINE:COLUMN;
    /// exits 1 if there is any.
    Validate {
        /// The files (each may hold several `---`-separated entities).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `text` (one line per problem) or `json` (for CI tools).
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
    /// Write a starting catalog-info.yaml for a topic: topic and broker
    /// address from the gateway config or -b, the payload from the topic's
    /// registered schema, TODO placeholders for what only a person knows.
    Init(InitArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub(crate) struct InitArgs {
    /// The topic the Event is published to.
    #[arg(long)]
    topic: String,
    /// A gateway instance (with --config): its bootstrap.servers, its
    /// schema registry and the topic's value schema.
    #[arg(long, requires = "config", conflicts_with = "brokers")]
    instance: Option<String>,
    /// The gateway configuration file holding --instance.
    #[arg(long, value_name = "FILE", requires = "instance")]
    config: Option<PathBuf>,
    /// The broker address to publish in the entity (bootstrap.servers).
    #[arg(short = 'b', long = "brokers", required_unless_present = "instance")]
    brokers: Option<String>,
    /// The schema registry to read the payload's schema from.
    #[arg(long = "schema-registry", value_name = "URL")]
    registry: Option<String>,
    /// Registry settings by Confluent's names (basic.auth.user.info=…).
    #[arg(short = 'S', value_name = "PROPERTY=VALUE")]
    schema_properties: Vec<String>,
    /// The subject of the payload's schema (default TOPIC-value, or the
    /// gateway topic's value_schema).
    #[arg(long)]
    subject: Option<String>,
    /// The environment of this topic entry.
    #[arg(long, default_value = "development")]
    environment: String,
    /// Where to write; `-` for standard output. An existing file is kept
    /// unless --force.
    #[arg(short = 'o', long, default_value = "catalog-info.yaml")]
    output: PathBuf,
    /// Overwrite the output file.
    #[arg(long)]
    force: bool,
}

pub(crate) async fn run(cmd: CatalogCommand) -> ExitCode {
    match cmd {
        CatalogCommand::Validate { files, format } => validate(&files, format),
        CatalogCommand::Init(args) => init(args).await,
    }
}

/// One problem or warning, where it is.
pub(crate) struct Finding {
    pub document: usize,
    pub line: usize,
    pub col: usize,
    pub path: String,
    pub message: String,
    pub error: bool,
}

/// A file checked: how many documents and Events, and what was found.
pub(crate) struct FileReport {
    pub documents: usize,
    /// The Event entities, each with its topics' names and broker
    /// addresses.
    pub events: Vec<Vec<(String, String)>>,
    /// Each Event's payload keys (the top level), in the same order.
    pub payload_keys: Vec<Vec<String>>,
    pub findings: Vec<Finding>,
}

impl FileReport {
    pub(crate) fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.error).count()
    }
}

/// Check the text of one catalog file.
pub(crate) fn check_text(text: &str) -> FileReport {
    let mut report = FileReport {
        documents: 0,
        events: Vec::new(),
        payload_keys: Vec::new(),
        findings: Vec::new(),
    };
    let docs = match yaml::parse(text) {
        Ok(d) => d,
        Err(e) => {
            report.findings.push(Finding {
                document: 0,
                line: e.pos.line,
                col: e.pos.col,
                path: String::new(),
                message: format!("not YAML: {}", e.message),
                error: true,
            });
            return report;
        }
    };
    report.documents = docs.len();
    for (i, doc) in docs.iter().enumerate() {
        let checked = rules::check(doc);
        for p in checked.problems {
            report.findings.push(Finding {
                document: i + 1,
                line: p.pos.line,
                col: p.pos.col,
                path: p.path,
                message: p.message,
                error: true,
            });
        }
        if checked.is_event {
            report.events.push(event_topics(doc));
            let keys = doc
                .get("spec")
                .and_then(|s| s.get("payload"))
                .and_then(|p| p.as_map())
                .map(|m| m.iter().map(|(k, _)| k.key_text()).collect())
                .unwrap_or_default();
            report.payload_keys.push(keys);
            placeholders(doc, "", i + 1, &mut report.findings);
        }
    }
    if report.events.is_empty() && report.errors() == 0 {
        report.findings.push(Finding {
            document: 0,
            line: 1,
            col: 1,
            path: String::new(),
            message: if docs.is_empty() {
                "the file holds no YAML document; an Event entity starts with apiVersion: backstage.io/v1alpha1 and kind: Event".into()
            } else {
                "no Event entity here (kind: Event); `herald catalog init --topic T` writes one".into()
            },
            error: true,
        });
    }
    report
}

/// The topics an Event lists: name and broker address.
fn event_topics(doc: &yaml::Node) -> Vec<(String, String)> {
    match doc
        .get("spec")
        .and_then(|s| s.get("topics"))
        .map(|t| &t.value)
    {
        Some(yaml::Value::Seq(items)) => items
            .iter()
            .filter_map(|t| {
                let name = t.get("topic")?.as_str()?.to_string();
                let broker = t
                    .get("brokerAddress")
                    .and_then(|b| b.as_str())
                    .unwrap_or_default()
                    .to_string();
                Some((name, broker))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Values still holding `herald catalog init`'s TODO placeholders:
/// warnings (the file is valid, but not finished).
fn placeholders(node: &yaml::Node, path: &str, doc: usize, out: &mut Vec<Finding>) {
    match &node.value {
        yaml::Value::Str(s) if s.starts_with(init::TODO) => out.push(Finding {
            document: doc,
            line: node.pos.line,
            col: node.pos.col,
            path: path.to_string(),
            message: format!("still a placeholder: {s}"),
            error: false,
        }),
        yaml::Value::Map(entries) => {
            for (k, v) in entries {
                let key = k.key_text();
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if key.starts_with(init::TODO) {
                    out.push(Finding {
                        document: doc,
                        line: k.pos.line,
                        col: k.pos.col,
                        path: p.clone(),
                        message: format!(
                            "still a placeholder: {key}: {}",
                            v.as_str().unwrap_or("")
                        ),
                        error: false,
                    });
                    continue;
                }
                placeholders(v, &p, doc, out);
            }
        }
        yaml::Value::Seq(items) => {
            for (i, v) in items.iter().enumerate() {
                placeholders(v, &format!("{path}[{i}]"), doc, out);
            }
        }
        _ => {}
    }
}

fn validate(files: &[PathBuf], format: OutputFormat) -> ExitCode {
    let mut any_error = false;
    let mut json_files = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let report = match std::fs::read_to_string(file) {
            Ok(text) => check_text(&text),
            Err(e) => FileReport {
                documents: 0,
                events: Vec::new(),
                payload_keys: Vec::new(),
                findings: vec![Finding {
                    document: 0,
                    line: 0,
                    col: 0,
                    path: String::new(),
                    message: format!("cannot read the file: {e}"),
                    error: true,
                }],
            },
        };
        any_error |= report.errors() > 0;
        match format {
            OutputFormat::Text => print_text(&name, &report),
            OutputFormat::Json => json_files.push(serde_json::json!({
                "file": name,
                "valid": report.errors() == 0,
                "documents": report.documents,
                "events": report.events.len(),
                "problems": report.findings.iter().map(|f| serde_json::json!({
                    "severity": if f.error { "error" } else { "warning" },
                    "document": f.document,
                    "line": f.line,
                    "column": f.col,
                    "path": f.path,
                    "message": f.message,
                })).collect::<Vec<_>>(),
            })),
        }
    }
    if format == OutputFormat::Json {
        let out = serde_json::json!({"valid": !any_error, "files": json_files});
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
    }
    if any_error {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_text(name: &str, report: &FileReport) {
    for f in &report.findings {
        let at = if f.line == 0 {
            name.to_string()
        } else {
            format!("{name}:{}:{}", f.line, f.col)
        };
        let what = if f.path.is_empty() {
            String::new()
        } else {
            format!("{}: ", f.path)
        };
        let level = if f.error { "" } else { "warning: " };
        println!("{at}: {level}{what}{}", f.message);
    }
    let errors = report.errors();
    let warnings = report.findings.len() - errors;
    if errors == 0 {
        let topics: Vec<String> = report
            .events
            .iter()
            .flatten()
            .map(|(t, _)| t.clone())
            .collect();
        let notes = if warnings > 0 {
            format!(", {warnings} placeholder(s) to fill in")
        } else {
            String::new()
        };
        println!(
            "{name}: OK ({} Event entit{}; topics {}{notes})",
            report.events.len(),
            if report.events.len() == 1 { "y" } else { "ies" },
            topics.join(", ")
        );
    } else {
        println!(
            "{name}: {errors} problem{}",
            if errors == 1 { "" } else { "s" }
        );
    }
}

async fn init(args: InitArgs) -> ExitCode {
    if let Err(why) = rules::kafka_topic_name(&args.topic) {
        return fail(
            format!("--topic `{}` is not a Kafka topic name: {why}", args.topic),
            USAGE,
        );
    }
    // Where the broker address, the registry and the subject come from.
    let (brokers, mut registry, mut pin) = match (&args.instance, &args.config) {
        (Some(instance), Some(config)) => match from_gateway(config, instance, &args.topic) {
            Ok(v) => v,
            Err(e) => return fail(e, USAGE),
        },
        _ => (args.brokers.clone().unwrap_or_default(), None, None),
    };
    if let Some(url) = &args.registry {
        registry = Some(RegistryConfig::new(url));
    }
    if let Some(s) = &args.subject {
        pin = Some(Pin::Subject(s.clone(), Version::Latest));
    }
    let mut payload = None;
    let mut source = None;
    if let Some(mut cfg) = registry {
        for p in &args.schema_properties {
            let set = split_pair(p, "-S property").and_then(|(k, v)| cfg.set(k, v));
            match set {
                Ok(true) => {}
                Ok(false) => return fail(format!("-S {p}: not a schema registry setting"), USAGE),
                Err(e) => return fail(e, USAGE),
            }
        }
        let pin =
            pin.unwrap_or_else(|| Pin::Subject(format!("{}-value", args.topic), Version::Latest));
        match registry_payload(cfg, &pin).await {
            Ok((fields, from)) => {
                payload = Some(fields);
                source = Some(from);
            }
            Err(e) => return fail(e, 1),
        }
    }
    let draft = init::Draft {
        topic: &args.topic,
        environment: &args.environment,
        broker_address: &brokers,
        payload,
        payload_source: source,
    };
    let text = init::render(&draft);
    // What was written must validate.
    let report = check_text(&text);
    if report.errors() > 0 {
        print_text("<draft>", &report);
        return fail("the draft does not validate (above); nothing written", 1);
    }
    if args.output == Path::new("-") {
        print!("{text}");
        return ExitCode::SUCCESS;
    }
    if args.output.exists() && !args.force {
        return fail(
            format!(
                "{} exists; --force to overwrite it, or -o another file",
                args.output.display()
            ),
            1,
        );
    }
    if let Err(e) = std::fs::write(&args.output, &text) {
        return fail(format!("cannot write {}: {e}", args.output.display()), 1);
    }
    let todo = report.findings.len();
    eprintln!(
        "wrote {}: valid; {todo} TODO placeholder(s) to fill in, then `herald catalog validate {}`",
        args.output.display(),
        args.output.display()
    );
    ExitCode::SUCCESS
}

/// Where the payload schema is.
enum Pin {
    Id(u32),
    Subject(String, Version),
}

/// The instance's bootstrap servers, registry and the topic's value
/// schema, from a gateway configuration.
fn from_gateway(
    config: &Path,
    instance: &str,
    topic: &str,
) -> Result<(String, Option<RegistryConfig>, Option<Pin>), String> {
    let cfg = herald_gateway::config::GatewayConfig::load(config).map_err(|e| e.to_string())?;
    let inst = cfg.instances.get(instance).ok_or_else(|| {
        format!(
            "{}: no instance `{instance}` (it has: {})",
            config.display(),
            cfg.instances.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let rule = inst.topics.get(topic).ok_or_else(|| {
        format!(
            "{}: instance `{instance}` does not list topic `{topic}` (it lists: {})",
            config.display(),
            inst.topics.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let brokers = inst
        .properties
        .iter()
        .find(|(k, _)| k == "bootstrap.servers")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    use herald_gateway::config::Pin as GwPin;
    let pin = rule.value_schema.as_ref().map(|s| match &s.pin {
        GwPin::Id(id) => Pin::Id(*id),
        GwPin::Subject(subject, version) => Pin::Subject(subject.clone(), *version),
    });
    Ok((brokers, inst.registry.clone(), pin))
}

/// The payload's fields from the registry, and where they came from.
async fn registry_payload(
    cfg: RegistryConfig,
    pin: &Pin,
) -> Result<(Vec<(String, init::Field)>, String), String> {
    let client = RegistryClient::new(cfg).map_err(|e| e.to_string())?;
    let (schema, from) = match pin {
        Pin::Id(id) => {
            let s = client
                .schema_by_id(*id)
                .await
                .map_err(|e| format!("schema id {id}: {e}"))?;
            (s, format!("the registered schema id {id}"))
        }
        Pin::Subject(subject, version) => {
            let v = client.version(subject, *version).await.map_err(|e| {
                format!("subject `{subject}`: {e}; register the schema first (herald schema register), or name it with --subject")
            })?;
            (
                v.schema,
                format!("subject {subject}, version {} (id {})", v.version, v.id),
            )
        }
    };
    let fields = match schema.schema_type.as_str() {
        "" | "AVRO" => init::avro_payload(&schema.schema)?,
        "JSON" => init::json_schema_payload(&schema.schema)?,
        other => {
            return Err(format!(
                "{from} is a {other} schema; the payload is read from Avro or JSON Schema"
            ))
        }
    };
    Ok((fields, from))
}
