//! The `produce` and `metadata` commands.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use herald::{Producer, ProducerConfig, Record};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// Exit status for bad arguments or configuration.
pub(crate) const USAGE: u8 = 2;

#[derive(Args, Debug)]
pub(crate) struct ProduceArgs {
    /// Bootstrap brokers, HOST:PORT[,HOST:PORT…] (`bootstrap.servers`).
    #[arg(short = 'b', long = "brokers")]
    brokers: String,
    /// Topic to produce to.
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// Key for every record.
    #[arg(short = 'k', long = "key")]
    key: Option<String>,
    /// Partition for every record (default: the partitioner chooses).
    #[arg(short = 'p', long = "partition")]
    partition: Option<i32>,
    /// Header NAME=VALUE, repeatable.
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// Producer property PROPERTY=VALUE with Kafka's names, repeatable
    /// (for example -X linger.ms=10 -X acks=1).
    #[arg(short = 'X', value_name = "PROPERTY=VALUE")]
    properties: Vec<String>,
    /// Split each input line at the first DELIM into key and value.
    #[arg(short = 'K', value_name = "DELIM")]
    key_delimiter: Option<String>,
    /// Values to send; with none, each line of standard input is one record.
    values: Vec<String>,
    #[command(flatten)]
    formats: crate::schema::FormatArgs,
}

#[derive(Args, Debug)]
pub(crate) struct MetadataArgs {
    /// Bootstrap brokers, HOST:PORT[,HOST:PORT…].
    #[arg(short = 'b', long = "brokers")]
    brokers: String,
    /// Only this topic.
    #[arg(short = 't', long = "topic")]
    topic: Option<String>,
    /// Producer property PROPERTY=VALUE, repeatable.
    #[arg(short = 'X', value_name = "PROPERTY=VALUE")]
    properties: Vec<String>,
}

pub(crate) fn split_pair<'a>(s: &'a str, what: &str) -> Result<(&'a str, &'a str), String> {
    s.split_once('=')
        .ok_or_else(|| format!("{what} `{s}` is not NAME=VALUE"))
}

/// Build the config from -b and -X. `max.block.ms`, unless given, is capped
/// at `delivery.timeout.ms` so that a CLI run never waits longer than the
/// delivery timeout for a broker that is not there.
pub(crate) fn config(brokers: &str, properties: &[String]) -> Result<ProducerConfig, String> {
    let mut props = vec![("bootstrap.servers".to_string(), brokers.to_string())];
    for p in properties {
        let (k, v) = split_pair(p, "-X property")?;
        props.push((k.to_string(), v.to_string()));
    }
    let mut cfg = ProducerConfig::from_properties(&props).map_err(|e| e.to_string())?;
    if !props.iter().any(|(k, _)| k == "max.block.ms") {
        cfg.max_block = cfg.max_block.min(cfg.delivery_timeout);
    }
    Ok(cfg)
}

pub(crate) fn fail(msg: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("herald: {msg}");
    ExitCode::from(code)
}

pub(crate) async fn produce(args: ProduceArgs) -> ExitCode {
    let cfg = match config(&args.brokers, &args.properties) {
        Ok(c) => c,
        Err(e) => return fail(e, USAGE),
    };
    let mut headers = Vec::new();
    for h in &args.headers {
        match split_pair(h, "-H header") {
            Ok((k, v)) => headers.push((k.to_string(), v.to_string())),
            Err(e) => return fail(e, USAGE),
        }
    }
    // Schema ids resolved before anything is sent: a registry that is
    // down or a subject that does not exist stops the run with nothing sent.
    let (value_enc, key_enc) = match args.formats.encoders(&args.topic).await {
        Ok(e) => e,
        Err((code, e)) => return fail(e, code),
    };
    let close_timeout = cfg.delivery_timeout;
    let producer = match Producer::new(cfg) {
        Ok(p) => p,
        Err(e) => return fail(e, USAGE),
    };

    // Progress on standard error while reading standard input, when a
    // person watches it (a terminal); nothing extra for scripts.
    let counts = Arc::new(crate::progress::Counts::default());
    let progress = (args.values.is_empty()
        && std::io::stderr().is_terminal()
        && !std::io::stdin().is_terminal())
    .then(|| crate::progress::Progress::start(counts.clone()));
    let clear = if progress.is_some() {
        crate::progress::CLEAR
    } else {
        ""
    };
    // Record lines to the same terminal erase the progress line first
    // (redrawn at the next tick); to a file or pipe they are unchanged.
    let clear_out = if progress.is_some() && std::io::stdout().is_terminal() {
        crate::progress::CLEAR
    } else {
        ""
    };

    // Outcomes are printed by one task, in send order.
    let (tx, mut rx) = mpsc::channel::<(usize, herald::DeliveryFuture)>(10_000);
    let printed = counts.clone();
    let printer = tokio::spawn(async move {
        let mut failed = 0usize;
        while let Some((n, fut)) = rx.recv().await {
            match fut.await {
                Ok(md) => {
                    printed.acked.fetch_add(1, Relaxed);
                    println!("{clear_out}{}[{}]@{}", md.topic, md.partition, md.offset);
                }
                Err(e) => {
                    failed += 1;
                    printed.failed.fetch_add(1, Relaxed);
                    eprintln!("{clear}herald: record {n} not delivered: {e}");
                }
            }
        }
        failed
    });

    // A record, its key and value written as --key-format and
    // --value-format say; an error names what did not fit.
    let make = |key: Option<String>, value: String| -> Result<Record, String> {
        let value = match &value_enc {
            Some(e) => bytes::Bytes::from(e.encode(&args.topic, &value)?),
            None => bytes::Bytes::from(value),
        };
        let mut r = Record::new(args.topic.clone(), value);
        if let Some(k) = key.or_else(|| args.key.clone()) {
            let k = match &key_enc {
                Some(e) => {
                    bytes::Bytes::from(e.encode(&args.topic, &k).map_err(|e| format!("key: {e}"))?)
                }
                None => bytes::Bytes::from(k),
            };
            r = r.key(k);
        }
        if let Some(p) = args.partition {
            r = r.partition(p);
        }
        for (k, v) in &headers {
            r = r.header(k.clone(), v.clone());
        }
        Ok(r)
    };

    let mut sent = 0usize;
    let mut send_error = None;
    if args.values.is_empty() {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        loop {
            let line = match lines.next_line().await {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(e) => {
                    send_error = Some(format!("reading standard input: {e}"));
                    break;
                }
            };
            let (key, value) = match &args.key_delimiter {
                Some(d) => match line.split_once(d.as_str()) {
                    Some((k, v)) => (Some(k.to_string()), v.to_string()),
                    None => (None, line),
                },
                None => (None, line),
            };
            sent += 1;
            counts.sent.store(sent as u64, Relaxed);
            let record = match make(key, value) {
                Ok(r) => r,
                Err(e) => {
                    send_error = Some(format!("line {sent} not sent: {e}"));
                    break;
                }
            };
            match producer.send(record).await {
                Ok(f) => {
                    let _ = tx.send((sent, f)).await;
                }
                Err(e) => {
                    send_error = Some(format!("record {sent} not sent: {e}"));
                    break;
                }
            }
        }
    } else {
        for v in &args.values {
            sent += 1;
            let record = match make(None, v.clone()) {
                Ok(r) => r,
                Err(e) => {
                    send_error = Some(format!("value {sent} not sent: {e}"));
                    break;
                }
            };
            match producer.send(record).await {
                Ok(f) => {
                    let _ = tx.send((sent, f)).await;
                }
                Err(e) => {
                    send_error = Some(format!("record {sent} not sent: {e}"));
                    break;
                }
            }
        }
    }
    drop(tx);
    let failed = printer.await.unwrap_or(usize::MAX);
    if let Some(p) = progress {
        p.finish().await;
    }
    let closed = producer.close(close_timeout).await;
    if let Some(e) = send_error {
        return fail(e, 1);
    }
    if let Err(e) = closed {
        return fail(e, 1);
    }
    if failed > 0 {
        return fail(format!("{failed} of {sent} records not delivered"), 1);
    }
    ExitCode::SUCCESS
}

pub(crate) async fn metadata(args: MetadataArgs) -> ExitCode {
    let cfg = match config(&args.brokers, &args.properties) {
        Ok(c) => c,
        Err(e) => return fail(e, USAGE),
    };
    let timeout = cfg.request_timeout + cfg.connection_setup_timeout;
    let producer = match Producer::new(cfg) {
        Ok(p) => p,
        Err(e) => return fail(e, USAGE),
    };
    let topics = args.topic.clone().map(|t| vec![t]);
    let md = match tokio::time::timeout(timeout, producer.fetch_metadata(topics.as_deref())).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return fail(e, 1),
        Err(_) => {
            return fail(
                format!(
                    "no metadata from {} within {} ms",
                    args.brokers,
                    timeout.as_millis()
                ),
                1,
            )
        }
    };
    let _ = producer.close(Duration::from_secs(1)).await;
    println!("Metadata from {}:", args.brokers);
    println!(" {} brokers:", md.brokers.len());
    for b in &md.brokers {
        let ctl = if md.controller_id == Some(b.id) {
            " (controller)"
        } else {
            ""
        };
        println!("  broker {} at {}{}", b.id, b.addr, ctl);
    }
    let mut names: Vec<&String> = md.topics.keys().collect();
    names.sort();
    println!(" {} topics:", names.len());
    for name in names {
        let t = &md.topics[name];
        match t.error {
            Some(code) => println!("  topic \"{name}\" error: {}", code.name()),
            None => {
                println!("  topic \"{name}\" with {} partitions:", t.leaders.len());
                for (p, leader) in t.leaders.iter().enumerate() {
                    println!("    partition {p}, leader {leader}");
                }
            }
        }
    }
    ExitCode::SUCCESS
}
