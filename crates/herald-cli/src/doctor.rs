//! `herald doctor`: seed 004's onboarding steps, checked in order with the
//! settings a producer will use, one line per step: passed, failed with
//! what to do, or skipped with why. The report starts with the herald
//! version, the time and the settings (secrets shown as `***`), so it can
//! be pasted into a ticket as it is. Exit status 0 only if no step failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use herald::admin::Admin;
use herald::diagnose::{self, Outcome};
use herald::{Producer, ProducerConfig, Record};
use herald_schema::registry::{RegistryClient, RegistryConfig, Version};

use crate::commands::{fail, split_pair, USAGE};

mod settings;

#[derive(Args, Debug)]
pub(crate) struct DoctorArgs {
    /// Bootstrap brokers, HOST:PORT[,HOST:PORT…] (or bootstrap.servers in
    /// the properties file).
    #[arg(short = 'b', long = "brokers")]
    brokers: Option<String>,
    /// Producer property PROPERTY=VALUE by Kafka's names, repeatable
    /// (security.protocol, sasl.mechanism, ssl.ca.location…).
    #[arg(short = 'X', value_name = "PROPERTY=VALUE")]
    properties: Vec<String>,
    /// The producer's properties file, as Java reads it (KEY=VALUE, KEY:
    /// VALUE or KEY VALUE; # comments; \ continues a line). Java-only keys
    /// (serializers, JAAS, truststores) are listed, not failed;
    /// schema.registry.url and basic.auth.* go to the registry. -b and -X
    /// win over it.
    #[arg(short = 'F', long = "properties", value_name = "FILE")]
    properties_file: Option<PathBuf>,
    /// The topic the producer will write to.
    #[arg(short = 't', long)]
    topic: String,
    /// Write one test record to the topic to prove the producer may write
    /// (no key, no value, header herald.doctor=test; with the
    /// producer's own idempotence and acks).
    #[arg(long)]
    produce_test: bool,
    /// The schema registry the producer will use.
    #[arg(long = "schema-registry", value_name = "URL")]
    registry: Option<String>,
    /// Registry settings by Confluent's names (basic.auth.user.info=…).
    #[arg(short = 'S', value_name = "PROPERTY=VALUE")]
    schema_properties: Vec<String>,
    /// The value subject (default TOPIC-value).
    #[arg(long, value_name = "SUBJECT")]
    value_subject: Option<String>,
    /// The schema id the producer is given (instead of a subject).
    #[arg(long, value_name = "ID", conflicts_with = "value_subject")]
    value_schema_id: Option<u32>,
    /// The producer's local schema (.avsc, or a JSON Schema when the
    /// registered one is JSON): it must be the registered one or
    /// compatible with it.
    #[arg(long, value_name = "FILE")]
    schema: Option<PathBuf>,
    /// The catalog-info.yaml that registers this Event.
    #[arg(long, value_name = "FILE")]
    catalog: Option<PathBuf>,
}

/// One line of the report.
struct Step {
    name: String,
    outcome: Outcome,
}

struct Report {
    steps: Vec<Step>,
    /// The registered value schema (text, type), once the schema step
    /// read it: the catalog step compares the payload with it.
    registered_schema: Option<(String, String)>,
}

impl Report {
    fn add(&mut self, name: impl Into<String>, outcome: Outcome) {
        let step = Step {
            name: name.into(),
            outcome,
        };
        println!("{}", line(&step));
        self.steps.push(step);
    }

    fn failed(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Failed(_)))
            .map(|s| s.name.as_str())
            .collect()
    }
}

fn line(s: &Step) -> String {
    let (tag, text) = match &s.outcome {
        Outcome::Passed(t) => ("PASS", t),
        Outcome::Failed(t) => ("FAIL", t),
        Outcome::Skipped(t) => ("SKIP", t),
    };
    format!("[{tag}] {:<8} {text}", s.name)
}

/// The settings: the properties file (Java's syntax), then -b, then -X.
fn settings(args: &DoctorArgs) -> Result<Vec<(String, String)>, String> {
    let mut props = Vec::new();
    if let Some(file) = &args.properties_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        props = settings::parse_properties(&text);
    }
    if let Some(b) = &args.brokers {
        props.push(("bootstrap.servers".into(), b.clone()));
    }
    for p in &args.properties {
        let (k, v) = split_pair(p, "-X property")?;
        props.push((k.to_string(), v.to_string()));
    }
    if !props.iter().any(|(k, _)| k == "bootstrap.servers") {
        return Err("no brokers: give -b HOST:PORT or bootstrap.servers in -F FILE".into());
    }
    Ok(props)
}

pub(crate) async fn run(args: DoctorArgs) -> ExitCode {
    let props = match settings(&args) {
        Ok(p) => p,
        Err(e) => return fail(e, USAGE),
    };
    let sorted = settings::sort(props.clone());
    let registry_url = args.registry.clone().or(sorted.registry_url.clone());
    if registry_url.is_none()
        && (args.schema.is_some()
            || args.value_subject.is_some()
            || args.value_schema_id.is_some()
            || !args.schema_properties.is_empty())
    {
        return fail(
            "--schema, --value-subject, --value-schema-id and -S need the registry: \
             --schema-registry URL (or schema.registry.url in -F FILE)",
            USAGE,
        );
    }
    // The registry's settings: -S must be right (a usage error); the
    // file's unknown ones are noted by the schema step.
    let mut registry = None;
    let mut registry_notes = Vec::new();
    if let Some(url) = &registry_url {
        let mut rc = RegistryConfig::new(url);
        for (k, v) in &sorted.registry {
            match rc.set(k, v) {
                Ok(true) => {}
                Ok(false) => {
                    registry_notes.push(format!("{k} (not used by herald's registry client)"))
                }
                Err(e) => registry_notes.push(format!("{k}: {e}")),
            }
        }
        for p in &args.schema_properties {
            let set = split_pair(p, "-S property").and_then(|(k, v)| rc.set(k, v));
            match set {
                Ok(true) => {}
                Ok(false) => return fail(format!("-S {p}: not a schema registry setting"), USAGE),
                Err(e) => return fail(format!("-S {p}: {e}"), USAGE),
            }
        }
        registry = Some(RegistrySettings {
            config: rc,
            notes: registry_notes,
            strategy: sorted.value_subject_strategy.clone(),
        });
    }
    println!(
        "herald doctor {} at {} for topic `{}`",
        env!("CARGO_PKG_VERSION"),
        now_utc(),
        args.topic
    );
    let mut last: Vec<(String, String)> = Vec::new();
    for (k, v) in &props {
        last.retain(|(lk, _)| lk != k);
        last.push((k.clone(), v.clone()));
    }
    println!(
        "settings: {}",
        last.iter()
            .map(|(k, v)| settings::shown(k, v))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut report = Report {
        steps: Vec::new(),
        registered_schema: None,
    };

    // 1. The settings themselves (the Java client's own left out, said).
    let producer_props = &sorted.producer;
    let checked =
        ProducerConfig::from_properties(producer_props).and_then(|c| c.validate().map(|_| c));
    let ignored = if sorted.ignored.is_empty() {
        String::new()
    } else {
        format!("; not used by herald: {}", sorted.ignored.join("; "))
    };
    let cfg = match checked {
        Ok(c) => {
            report.add(
                "config",
                Outcome::Passed(format!(
                    "{} producer properties valid{ignored}",
                    producer_props.len()
                )),
            );
            Some(c)
        }
        Err(e) => {
            report.add("config", Outcome::Failed(format!("{e}{ignored}")));
            None
        }
    };
    if let Some(why) = herald_topic_name(&args.topic) {
        report.add("config", Outcome::Failed(why));
    }

    // 2. Each bootstrap broker: resolve, connect, TLS, Kafka, SASL.
    let mut connected = false;
    if let Some(cfg) = &cfg {
        for addr in &cfg.bootstrap_servers {
            let stages = diagnose::check_broker(cfg, addr).await;
            let ok = !stages.iter().any(|(_, o)| matches!(o, Outcome::Failed(_)));
            connected |= ok;
            for (stage, outcome) in stages {
                report.add(stage.name(), outcome);
            }
        }
    }

    // 3. The brokers the cluster advertises, 4. the topic, 5. writing.
    match (&cfg, connected) {
        (Some(cfg), true) => cluster_steps(&mut report, cfg, &args).await,
        _ => {
            let why = "not checked: no working connection to a broker (above)";
            report.add("brokers", Outcome::Skipped(why.into()));
            report.add("topic", Outcome::Skipped(why.into()));
            report.add("write", Outcome::Skipped(why.into()));
        }
    }

    // 6. The schema.
    schema_step(&mut report, &args, registry).await;

    // 7. The catalog entity.
    let bootstrap = cfg
        .as_ref()
        .map(|c| c.bootstrap_servers.clone())
        .unwrap_or_default();
    catalog_step(&mut report, &args, &bootstrap);

    let failed = report.failed();
    let total = report.steps.len();
    if failed.is_empty() {
        let skipped = report
            .steps
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Skipped(_)))
            .count();
        println!(
            "result: all {} checked steps passed ({skipped} skipped)",
            total - skipped
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "result: {} of {total} steps failed ({}); fix the first one and run herald doctor again, or paste this report into a ticket for the event bus team",
            failed.len(),
            failed.join(", ")
        );
        ExitCode::from(1)
    }
}

fn herald_topic_name(t: &str) -> Option<String> {
    crate::catalog::rules::kafka_topic_name(t)
        .err()
        .map(|why| format!("topic `{t}` is not a Kafka topic name: {why}"))
}

/// The brokers the cluster advertises (the producer sends to the
/// partitions' leaders at those addresses, not at the bootstrap ones); the
/// topic's partitions, leaders and retention; with --produce-test, one
/// record.
async fn cluster_steps(report: &mut Report, cfg: &ProducerConfig, args: &DoctorArgs) {
    let topic = &args.topic;
    let deadline = cfg.request_timeout.min(Duration::from_secs(15)) + cfg.connection_setup_timeout;
    // A bounded producer: for metadata and the test record.
    let mut pcfg = cfg.clone();
    pcfg.max_block = pcfg.max_block.min(Duration::from_secs(15));
    pcfg.request_timeout = pcfg.request_timeout.min(Duration::from_secs(15));
    // delivery.timeout.ms must stay at least linger.ms + request.timeout.ms.
    pcfg.delivery_timeout = pcfg
        .delivery_timeout
        .min(Duration::from_secs(30))
        .max(pcfg.linger + pcfg.request_timeout);
    let producer = match Producer::new(pcfg) {
        Ok(p) => p,
        Err(e) => {
            report.add("brokers", Outcome::Failed(e.to_string()));
            return;
        }
    };
    brokers_step(report, cfg, &producer, deadline).await;
    match topic_step(report, cfg, topic, deadline).await {
        None => report.add("write", Outcome::Skipped("not checked: the topic step failed".into())),
        Some(_) if !args.produce_test => report.add(
            "write",
            Outcome::Skipped(
                "not checked; --produce-test writes one test record (no key, no value) to prove the producer may write"
                    .into(),
            ),
        ),
        // A compacted topic refuses a record without a key, and one with a
        // key would be a record consumers' key deserializers may not read.
        Some(true) => report.add(
            "write",
            Outcome::Skipped(
                "not written: the topic is compacted (cleanup.policy=compact), where a test record would need a key consumers may not be able to read"
                    .into(),
            ),
        ),
        Some(false) => write_step(report, cfg, &producer, topic).await,
    }
    let _ = producer.close(Duration::from_secs(5)).await;
}

async fn brokers_step(
    report: &mut Report,
    cfg: &ProducerConfig,
    producer: &Producer,
    deadline: Duration,
) {
    let md = match tokio::time::timeout(deadline, producer.fetch_metadata(None)).await {
        Ok(Ok(md)) => md,
        Ok(Err(e)) => {
            report.add(
                "brokers",
                Outcome::Failed(format!("no cluster metadata: {e}")),
            );
            return;
        }
        Err(_) => {
            report.add(
                "brokers",
                Outcome::Failed(format!(
                    "no cluster metadata within {} ms",
                    deadline.as_millis()
                )),
            );
            return;
        }
    };
    let mut addrs: Vec<(i32, String)> = md.brokers.iter().map(|b| (b.id, b.addr.clone())).collect();
    addrs.sort();
    let listed = addrs
        .iter()
        .map(|(id, a)| format!("{id}={a}"))
        .collect::<Vec<_>>()
        .join(", ");
    for (id, addr) in &addrs {
        // The bootstrap addresses were checked above.
        if cfg.bootstrap_servers.contains(addr) {
            continue;
        }
        let stages = diagnose::check_broker(cfg, addr).await;
        if let Some((stage, Outcome::Failed(why))) =
            stages.iter().find(|(_, o)| matches!(o, Outcome::Failed(_)))
        {
            report.add(
                "brokers",
                Outcome::Failed(format!(
                    "the cluster advertises broker {id} as `{addr}`, and its {} step fails from here: {why}; \
                     the producer sends to the leaders at the advertised addresses: ask the bus team which \
                     listener serves clients where you are (advertised.listeners; MSK public access uses port 9198)",
                    stage.name()
                )),
            );
            return;
        }
    }
    report.add(
        "brokers",
        Outcome::Passed(format!(
            "the cluster advertises {} broker(s), each reachable from here: {listed}",
            addrs.len()
        )),
    );
}

/// The topic's partitions, leaders and retention; `None` if it failed,
/// else whether it is compacted.
async fn topic_step(
    report: &mut Report,
    cfg: &ProducerConfig,
    topic: &str,
    deadline: Duration,
) -> Option<bool> {
    let admin = match Admin::new(cfg) {
        Ok(a) => a,
        Err(e) => {
            report.add("topic", Outcome::Failed(e.to_string()));
            return None;
        }
    };
    let described = tokio::time::timeout(deadline, admin.topic_partitions(topic)).await;
    let partitions = match described {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            let what = match &e {
                herald::Error::Broker { code, .. } if code.0 == 3 => format!(
                    "topic `{topic}` does not exist on this cluster; ask the event bus team to create it (partitions, retention), or create it with herald topic create"
                ),
                herald::Error::Broker { code, .. } if code.0 == 29 => format!(
                    "not authorized to describe topic `{topic}` ({e}); ask for Describe and Write on it"
                ),
                _ => e.to_string(),
            };
            report.add("topic", Outcome::Failed(what));
            return None;
        }
        Err(_) => {
            report.add(
                "topic",
                Outcome::Failed(format!(
                    "no answer about `{topic}` within {} ms",
                    deadline.as_millis()
                )),
            );
            return None;
        }
    };
    let leaderless: Vec<String> = partitions
        .iter()
        .filter(|p| p.leader.is_none())
        .map(|p| p.partition.to_string())
        .collect();
    if !leaderless.is_empty() {
        report.add(
            "topic",
            Outcome::Failed(format!(
                "`{topic}` has {} partitions, but partition(s) {} have no leader: records for them cannot be written; tell the bus team",
                partitions.len(),
                leaderless.join(", ")
            )),
        );
        return None;
    }
    // Retention from DescribeConfigs, which some brokers lack.
    let configs = tokio::time::timeout(deadline, admin.topic_configs(topic)).await;
    let compacted = matches!(&configs, Ok(Ok(c)) if c.iter().any(|c| c.name == "cleanup.policy"
        && c.value.as_deref().is_some_and(|v| v.contains("compact"))));
    let retention = match &configs {
        Ok(Ok(configs)) => {
            let found = configs.iter().find(|c| c.name == "retention.ms");
            match found.and_then(|c| c.value.as_deref()) {
                Some("-1") => "retention forever (retention.ms=-1)".to_string(),
                Some(ms) => match ms.parse::<u64>() {
                    Ok(v) => format!("retention.ms={ms} ({})", human(Duration::from_millis(v))),
                    Err(_) => format!("retention.ms={ms}"),
                },
                None => "retention.ms not reported (the broker's default applies)".to_string(),
            }
        }
        Ok(Err(e)) => format!("retention not known ({e})"),
        Err(_) => "retention not known (no DescribeConfigs answer)".to_string(),
    };
    let replicas = partitions.first().map_or(0, |p| p.replicas.len());
    report.add(
        "topic",
        Outcome::Passed(format!(
            "`{topic}` exists: {} partitions, replication {replicas}, {retention}",
            partitions.len()
        )),
    );
    Some(compacted)
}

/// One record with no key and no value (a header says what it is): a
/// consumer's deserializers (Avro, JSON Schema, for keys and values) read
/// nulls instead of failing on bytes that are not their format.
async fn write_step(report: &mut Report, cfg: &ProducerConfig, producer: &Producer, topic: &str) {
    let mut record =
        Record::new(topic.to_string(), bytes::Bytes::new()).header("herald.doctor", "test");
    record.value = None;
    let outcome = match producer.send(record).await {
        Ok(f) => f.await,
        Err(e) => Err(e),
    };
    let acks = match cfg.acks {
        herald::Acks::None => "0",
        herald::Acks::Leader => "1",
        herald::Acks::All => "all",
    };
    match outcome {
        Ok(md) => report.add(
            "write",
            Outcome::Passed(format!(
                "wrote a test record to {}[{}]@{} (no key, no value, header herald.doctor=test; enable.idempotence={}, acks={acks})",
                md.topic, md.partition, md.offset, cfg.enable_idempotence
            )),
        ),
        Err(e) => report.add(
            "write",
            Outcome::Failed(format!("the test record was not written: {e}")),
        ),
    }
}

/// The registry client's settings, what of the file's it did not take,
/// and the producer's value subject strategy.
struct RegistrySettings {
    config: RegistryConfig,
    notes: Vec<String>,
    strategy: Option<String>,
}

async fn schema_step(report: &mut Report, args: &DoctorArgs, registry: Option<RegistrySettings>) {
    let Some(RegistrySettings {
        config: cfg,
        notes,
        strategy,
    }) = registry
    else {
        report.add("schema", Outcome::Skipped("no --schema-registry".into()));
        return;
    };
    // A producer on another subject strategy writes under a subject the
    // doctor cannot derive from the topic.
    if let Some(strategy) = &strategy {
        if !strategy.ends_with("TopicNameStrategy")
            && args.value_subject.is_none()
            && args.value_schema_id.is_none()
        {
            report.add(
                "schema",
                Outcome::Skipped(format!(
                    "value.subject.name.strategy={strategy}: give the subject with --value-subject (or --value-schema-id)"
                )),
            );
            return;
        }
    }
    let noted = if notes.is_empty() {
        String::new()
    } else {
        format!(" (settings not used: {})", notes.join("; "))
    };
    let client = match RegistryClient::new(cfg) {
        Ok(c) => c,
        Err(e) => {
            report.add("schema", Outcome::Failed(e.to_string()));
            return;
        }
    };
    let subject = args
        .value_subject
        .clone()
        .unwrap_or_else(|| format!("{}-value", args.topic));
    let local = match &args.schema {
        None => None,
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) => Some((f.display().to_string(), t)),
            Err(e) => {
                report.add(
                    "schema",
                    Outcome::Failed(format!("cannot read {}: {e}", f.display())),
                );
                return;
            }
        },
    };
    // The registered schema the producer will use.
    let (registered, schema_type) = if let Some(id) = args.value_schema_id {
        match client.schema_by_id(id).await {
            Ok(s) => {
                let t = kind_of(&s.schema_type).to_string();
                report.registered_schema = Some((s.schema.clone(), t.clone()));
                (format!("schema id {id} is registered ({t})"), t)
            }
            Err(e) => {
                report.add("schema", Outcome::Failed(format!("schema id {id}: {e}")));
                return;
            }
        }
    } else {
        match client.version(&subject, Version::Latest).await {
            Ok(v) => {
                let t = kind_of(&v.schema.schema_type).to_string();
                report.registered_schema = Some((v.schema.schema.clone(), t.clone()));
                (
                    format!(
                        "subject `{subject}` has version {} (id {}, {t})",
                        v.version, v.id
                    ),
                    t,
                )
            }
            Err(e) => {
                report.add(
                    "schema",
                    Outcome::Failed(format!(
                        "subject `{subject}`: {e}; the event bus team registers the topic's schema at onboarding"
                    )),
                );
                return;
            }
        }
    };
    let registered = format!("{registered}{noted}");
    let Some((file, text)) = local else {
        report.add("schema", Outcome::Passed(registered));
        return;
    };
    if let Some(pinned) = args.value_schema_id {
        // The records are labelled with the pinned id: the local schema
        // must be that schema, not merely a compatible one.
        let same_text = client.schema_by_id(pinned).await.ok().is_some_and(|s| {
            serde_json::from_str::<serde_json::Value>(&s.schema).ok()
                == serde_json::from_str::<serde_json::Value>(&text).ok()
        });
        if same_text {
            report.add(
                "schema",
                Outcome::Passed(format!("{registered}; {file} is the schema of id {pinned}")),
            );
            return;
        }
        let found = client.lookup(&subject, &text, &schema_type, false).await;
        let outcome = match found {
            Ok(v) if v.id == pinned => Outcome::Passed(format!(
                "{registered}; {file} is registered as version {} (id {pinned})",
                v.version
            )),
            Ok(v) => Outcome::Failed(format!(
                "{registered}; but {file} is registered as id {} (version {}): the producer would \
                 label its records with one schema and write them with another; use id {} or the \
                 schema of id {pinned}",
                v.id, v.version, v.id
            )),
            Err(e) if e.code() == Some(40403) => Outcome::Failed(format!(
                "{registered}; but {file} is not the schema of id {pinned} (nor registered under \
                 `{subject}`): use the schema of id {pinned}, or have {file} registered"
            )),
            Err(e) => Outcome::Failed(format!("{file}: {e}")),
        };
        report.add("schema", outcome);
        return;
    }
    // The local file is read as the registered schema's type.
    match client.lookup(&subject, &text, &schema_type, false).await {
        Ok(v) => report.add(
            "schema",
            Outcome::Passed(format!(
                "{registered}; {file} is registered as version {} (id {})",
                v.version, v.id
            )),
        ),
        Err(e) if e.code() == Some(40403) => match client
            .is_compatible(&subject, Version::Latest, &text, &schema_type)
            .await
        {
            Ok(true) => report.add(
                "schema",
                Outcome::Passed(format!(
                    "{registered}; {file} is not registered but is compatible with the latest version (with auto.register.schemas=false, have it registered first)"
                )),
            ),
            Ok(false) => report.add(
                "schema",
                Outcome::Failed(format!(
                    "{registered}; {file} is not compatible with it: change the local schema (herald schema check shows why), or agree a new version with the event bus team"
                )),
            ),
            Err(e) => report.add("schema", Outcome::Failed(format!("{file}: {e}"))),
        },
        Err(e) => report.add("schema", Outcome::Failed(format!("{file}: {e}"))),
    }
}

fn kind_of(schema_type: &str) -> &str {
    if schema_type.is_empty() {
        "AVRO"
    } else {
        schema_type
    }
}

fn catalog_step(report: &mut Report, args: &DoctorArgs, bootstrap: &[String]) {
    let Some(file) = &args.catalog else {
        report.add(
            "catalog",
            Outcome::Skipped("no --catalog catalog-info.yaml".into()),
        );
        return;
    };
    let name = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            report.add(
                "catalog",
                Outcome::Failed(format!("cannot read {name}: {e}")),
            );
            return;
        }
    };
    let r = crate::catalog::check_text(&text);
    let errors: Vec<&crate::catalog::Finding> = r.findings.iter().filter(|f| f.error).collect();
    if let Some(first) = errors.first() {
        report.add(
            "catalog",
            Outcome::Failed(format!(
                "{name} has {} problem(s), the first at {}:{}: {}{}; herald catalog validate {name} lists them all",
                errors.len(),
                first.line,
                first.col,
                if first.path.is_empty() { String::new() } else { format!("{}: ", first.path) },
                first.message
            )),
        );
        return;
    }
    let entries: Vec<&(String, String)> = r.events.iter().flatten().collect();
    let topics: Vec<&String> = entries.iter().map(|(t, _)| t).collect();
    let ours: Vec<&String> = entries
        .iter()
        .filter(|(t, _)| *t == args.topic)
        .map(|(_, b)| b)
        .collect();
    if !topics.iter().any(|t| **t == args.topic) {
        report.add(
            "catalog",
            Outcome::Failed(format!(
                "{name} is valid but its Event lists topics {} and not `{}`: add it to spec.topics",
                topics
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                args.topic
            )),
        );
        return;
    }
    // The payload the catalog promises consumers, against the registered
    // schema (seed 004: producers are responsible for an accurate one).
    if let Some((schema, schema_type)) = report.registered_schema.clone() {
        let fields = match schema_type.as_str() {
            "JSON" => crate::catalog::init::json_schema_payload(&schema),
            _ => crate::catalog::init::avro_payload(&schema),
        };
        let event = r
            .events
            .iter()
            .position(|e| e.iter().any(|(t, _)| *t == args.topic));
        if let (Ok(fields), Some(i)) = (fields, event) {
            let keys = &r.payload_keys[i];
            let placeholder = keys
                .iter()
                .all(|k| k.starts_with(crate::catalog::init::TODO));
            let missing: Vec<&str> = fields
                .iter()
                .map(|(f, _)| f.as_str())
                .filter(|f| !keys.iter().any(|k| k == f))
                .collect();
            let extra: Vec<&str> = keys
                .iter()
                .map(String::as_str)
                .filter(|k| !fields.iter().any(|(f, _)| f == k))
                .collect();
            if !placeholder && (!missing.is_empty() || !extra.is_empty()) {
                let mut what = Vec::new();
                if !missing.is_empty() {
                    what.push(format!("missing {}", missing.join(", ")));
                }
                if !extra.is_empty() {
                    what.push(format!("not in the schema: {}", extra.join(", ")));
                }
                report.add(
                    "catalog",
                    Outcome::Failed(format!(
                        "{name}'s payload does not match the registered schema ({}): consumers read the catalog; herald catalog init --topic {} writes the fields from the schema",
                        what.join("; "),
                        args.topic
                    )),
                );
                return;
            }
        }
    }
    let todo = r.findings.len() - errors.len();
    let mut note = if todo > 0 {
        format!("; {todo} TODO placeholder(s) still to fill in")
    } else {
        String::new()
    };
    // The address consumers will read in the catalog: is it the one this
    // producer uses?
    let same = ours.iter().any(|b| {
        b.split(',')
            .any(|a| bootstrap.iter().any(|s| s == a.trim()))
    });
    if !bootstrap.is_empty() && !same {
        note.push_str(&format!(
            "; note: its brokerAddress for `{}` ({}) is not among the bootstrap servers in use",
            args.topic,
            ours.iter()
                .map(|b| b.as_str())
                .collect::<Vec<_>>()
                .join(" / ")
        ));
    }
    report.add(
        "catalog",
        Outcome::Passed(format!(
            "{name} is a valid Event entity listing `{}`{}{note}",
            args.topic,
            if report.registered_schema.is_some() {
                ", its payload the registered schema's fields"
            } else {
                ""
            }
        )),
    );
}

/// `3d 4h` for a retention.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}min", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The current time as RFC 3339 UTC, to the second.
fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_reads_well() {
        assert_eq!(human(Duration::from_millis(604_800_000)), "7d");
        assert_eq!(human(Duration::from_secs(90)), "90s");
    }
}
