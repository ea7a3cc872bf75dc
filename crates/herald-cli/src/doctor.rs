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
    /// A Java-style properties file (KEY=VALUE lines, # comments) with the
    /// producer's settings; -X wins over it.
    #[arg(short = 'F', long = "properties", value_name = "FILE")]
    properties_file: Option<PathBuf>,
    /// The topic the producer will write to.
    #[arg(short = 't', long)]
    topic: String,
    /// Write one test record to the topic (idempotent; header
    /// herald.doctor=test) to prove the producer may write.
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
    /// The producer's local schema (.avsc): it must be the registered one
    /// or compatible with it.
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

/// The settings: the properties file, then -b, then -X.
fn settings(args: &DoctorArgs) -> Result<Vec<(String, String)>, String> {
    let mut props = Vec::new();
    if let Some(file) = &args.properties_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        for (n, l) in text.lines().enumerate() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with('!') {
                continue;
            }
            let (k, v) = l
                .split_once('=')
                .or_else(|| l.split_once(':'))
                .ok_or_else(|| format!("{}:{}: not KEY=VALUE", file.display(), n + 1))?;
            props.push((k.trim().to_string(), v.trim().to_string()));
        }
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

/// A setting as it may be shown: secrets as `***`.
fn shown(k: &str, v: &str) -> String {
    let secret = ["password", "secret", "token", "jaas", "key.password"]
        .iter()
        .any(|s| k.contains(s));
    if secret {
        format!("{k}=***")
    } else {
        format!("{k}={v}")
    }
}

pub(crate) async fn run(args: DoctorArgs) -> ExitCode {
    let props = match settings(&args) {
        Ok(p) => p,
        Err(e) => return fail(e, USAGE),
    };
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
            .map(|(k, v)| shown(k, v))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut report = Report { steps: Vec::new() };

    // 1. The settings themselves.
    let cfg = match ProducerConfig::from_properties(&props).and_then(|c| c.validate().map(|_| c)) {
        Ok(c) => {
            report.add(
                "config",
                Outcome::Passed(format!("{} properties valid", props.len())),
            );
            Some(c)
        }
        Err(e) => {
            report.add("config", Outcome::Failed(e.to_string()));
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

    // 3. The topic, 4. writing to it.
    match (&cfg, connected) {
        (Some(cfg), true) => {
            let written = topic_steps(&mut report, cfg, &args).await;
            let _ = written;
        }
        _ => {
            let why = "not checked: no working connection to a broker (above)";
            report.add("topic", Outcome::Skipped(why.into()));
            report.add("write", Outcome::Skipped(why.into()));
        }
    }

    // 5. The schema.
    schema_step(&mut report, &args).await;

    // 6. The catalog entity.
    catalog_step(&mut report, &args);

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

/// The topic's partitions and retention; with --produce-test one record.
async fn topic_steps(report: &mut Report, cfg: &ProducerConfig, args: &DoctorArgs) -> bool {
    let topic = &args.topic;
    let admin = match Admin::new(cfg) {
        Ok(a) => a,
        Err(e) => {
            report.add("topic", Outcome::Failed(e.to_string()));
            return false;
        }
    };
    let deadline = cfg.request_timeout + cfg.connection_setup_timeout;
    let described = tokio::time::timeout(deadline, admin.topic_partitions(topic)).await;
    match described {
        Ok(Ok(partitions)) => {
            // Retention from DescribeConfigs, which some brokers lack.
            let configs = tokio::time::timeout(deadline, admin.topic_configs(topic)).await;
            let retention = match &configs {
                Ok(Ok(configs)) => {
                    let found = configs.iter().find(|c| c.name == "retention.ms");
                    match found.and_then(|c| c.value.as_deref()) {
                        Some("-1") => "retention forever (retention.ms=-1)".to_string(),
                        Some(ms) => match ms.parse::<u64>() {
                            Ok(v) => {
                                format!("retention.ms={ms} ({})", human(Duration::from_millis(v)))
                            }
                            Err(_) => format!("retention.ms={ms}"),
                        },
                        None => {
                            "retention.ms not reported (the broker's default applies)".to_string()
                        }
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
        }
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
            report.add(
                "write",
                Outcome::Skipped("not checked: the topic step failed".into()),
            );
            return false;
        }
        Err(_) => {
            report.add(
                "topic",
                Outcome::Failed(format!(
                    "no answer about `{topic}` within {} ms",
                    deadline.as_millis()
                )),
            );
            report.add(
                "write",
                Outcome::Skipped("not checked: the topic step failed".into()),
            );
            return false;
        }
    }
    if !args.produce_test {
        report.add(
            "write",
            Outcome::Skipped("not checked; --produce-test writes one test record to prove the producer may write".into()),
        );
        return true;
    }
    let mut pcfg = cfg.clone();
    // A bounded wait: delivery.timeout.ms must stay at least linger.ms +
    // request.timeout.ms, as the producer checks.
    pcfg.max_block = pcfg.max_block.min(Duration::from_secs(15));
    pcfg.request_timeout = pcfg.request_timeout.min(Duration::from_secs(15));
    pcfg.delivery_timeout = pcfg
        .delivery_timeout
        .min(Duration::from_secs(30))
        .max(pcfg.linger + pcfg.request_timeout);
    let producer = match Producer::new(pcfg) {
        Ok(p) => p,
        Err(e) => {
            report.add("write", Outcome::Failed(e.to_string()));
            return false;
        }
    };
    let record = Record::new(
        topic.clone(),
        format!("herald doctor test record at {}", now_utc()),
    )
    .header("herald.doctor", "test");
    let outcome = match producer.send(record).await {
        Ok(f) => f.await,
        Err(e) => Err(e),
    };
    let _ = producer.close(Duration::from_secs(5)).await;
    match outcome {
        Ok(md) => {
            report.add(
                "write",
                Outcome::Passed(format!(
                    "wrote a test record to {}[{}]@{} (idempotent, acks=all; header herald.doctor=test)",
                    md.topic, md.partition, md.offset
                )),
            );
            true
        }
        Err(e) => {
            report.add(
                "write",
                Outcome::Failed(format!("the test record was not written: {e}")),
            );
            false
        }
    }
}

async fn schema_step(report: &mut Report, args: &DoctorArgs) {
    let Some(url) = &args.registry else {
        report.add("schema", Outcome::Skipped("no --schema-registry".into()));
        return;
    };
    let mut cfg = RegistryConfig::new(url);
    for p in &args.schema_properties {
        match split_pair(p, "-S property").and_then(|(k, v)| cfg.set(k, v)) {
            Ok(true) => {}
            Ok(false) => {
                report.add(
                    "schema",
                    Outcome::Failed(format!("-S {p}: not a schema registry setting")),
                );
                return;
            }
            Err(e) => {
                report.add("schema", Outcome::Failed(e));
                return;
            }
        }
    }
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
    let registered = if let Some(id) = args.value_schema_id {
        match client.schema_by_id(id).await {
            Ok(s) => format!("schema id {id} is registered ({})", kind_of(&s.schema_type)),
            Err(e) => {
                report.add("schema", Outcome::Failed(format!("schema id {id}: {e}")));
                return;
            }
        }
    } else {
        match client.version(&subject, Version::Latest).await {
            Ok(v) => format!(
                "subject `{subject}` has version {} (id {}, {})",
                v.version,
                v.id,
                kind_of(&v.schema.schema_type)
            ),
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
    let Some((file, text)) = local else {
        report.add("schema", Outcome::Passed(registered));
        return;
    };
    let lookup_subject = subject.clone();
    match client.lookup(&lookup_subject, &text, "AVRO", false).await {
        Ok(v) => {
            report.add(
                "schema",
                Outcome::Passed(format!(
                    "{registered}; {file} is registered as version {} (id {})",
                    v.version, v.id
                )),
            );
        }
        Err(e) if e.code() == Some(40403) => match client.is_compatible(&subject, Version::Latest, &text, "AVRO").await {
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

fn catalog_step(report: &mut Report, args: &DoctorArgs) {
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
    let topics: Vec<&String> = r.events.iter().flatten().collect();
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
    let todo = r.findings.len() - errors.len();
    let note = if todo > 0 {
        format!("; {todo} TODO placeholder(s) still to fill in")
    } else {
        String::new()
    };
    report.add(
        "catalog",
        Outcome::Passed(format!(
            "{name} is a valid Event entity listing `{}`{note}",
            args.topic
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
    fn secrets_are_not_shown() {
        assert_eq!(shown("sasl.password", "s3cret"), "sasl.password=***");
        assert_eq!(
            shown("sasl.jaas.config", "x password=y"),
            "sasl.jaas.config=***"
        );
        assert_eq!(shown("sasl.username", "alice"), "sasl.username=alice");
        assert_eq!(human(Duration::from_millis(604_800_000)), "7d");
    }
}
