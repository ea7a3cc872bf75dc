//! `herald-bench`: herald and librdkafka side by side, in one run.
//!
//! `herald-bench compare --sink mock|null|tansu [workload…]` starts the sink
//! in its own process, then runs the two clients alternately (A B A B …),
//! each run in a fresh process of its own (so CPU and peak RSS are the
//! client's alone), and prints each figure for both with the ratio
//! herald/librdkafka of the medians. `--json` prints the same as one object.
//! `herald-bench spool appends|forward|rss` measures the spool. See
//! BENCHMARKS.md.

mod avro_bench;
mod client;
mod gateway_bench;
mod herald_run;
mod rdkafka_run;
mod sink;
mod spool_bench;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use clap::{Parser, Subcommand, ValueEnum};
use client::{Figures, Workload};
use sink::SinkKind;

#[derive(Parser)]
#[command(name = "herald-bench", about = "herald and librdkafka side by side")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// A setting `sweep` varies.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Over {
    /// Value size in bytes (`--size`).
    Size,
    /// Partitions of the topic (`--partitions`).
    Partitions,
    /// Concurrent sending tasks (`--tasks`).
    Tasks,
    /// The buffer bound (`--buffer-bytes`).
    BufferBytes,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run both clients against one sink, alternating, and compare.
    Compare {
        /// The broker to produce to.
        #[arg(long, value_enum, default_value = "mock")]
        sink: SinkKind,
        /// Runs per client (alternating A B A B); figures are medians.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        workload: Workload,
    },
    /// Run `compare` once per value of one setting (a fresh sink each
    /// time) and print a markdown table of the medians.
    Sweep {
        #[arg(long, value_enum, default_value = "mock")]
        sink: SinkKind,
        #[arg(long, default_value_t = 1)]
        runs: usize,
        /// The setting to vary.
        #[arg(long, value_enum)]
        over: Over,
        /// Its values, comma-separated (e.g. 10,100,1000).
        #[arg(long, value_delimiter = ',', required = true)]
        values: Vec<u64>,
        /// With `--over size`: records per run = this many bytes divided by
        /// value plus key size, at least 1,000, so each size moves the same
        /// data (otherwise `--records`).
        #[arg(long)]
        bytes_per_run: Option<u64>,
        #[command(flatten)]
        workload: Workload,
    },
    /// Run `compare` for every sending style and batch setting (a fresh
    /// sink each time): each client at its defaults, then both at equal
    /// settings; prints a markdown table of the medians.
    Matrix {
        #[arg(long, value_enum, default_value = "mock")]
        sink: SinkKind,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The sending styles, comma-separated.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "fire-and-forget,callback,futures"
        )]
        styles: Vec<client::Style>,
        /// The batch settings, comma-separated: `default` (each client's
        /// own) or a batch.size in bytes for both.
        #[arg(long, value_delimiter = ',', default_value = "default,16384,1000000")]
        batch_sizes: Vec<String>,
        #[command(flatten)]
        workload: Workload,
    },
    /// The spool's figures: appends against the raw write+fdatasync
    /// ceiling, forwarding a backlog against the producer direct, peak RSS
    /// with a large backlog (BENCHMARKS.md, "The spool").
    #[command(subcommand)]
    Spool(spool_bench::SpoolBench),
    /// The event gateway under HTTP load (wrk): a bare axum handler, the
    /// gateway single and batched, and the producer directly
    /// (BENCHMARKS.md, "The gateway").
    Gateway(gateway_bench::GatewayBench),
    /// Avro encoding of a 20-field record: herald from JSON and from a
    /// struct, apache-avro, fastavro (BENCHMARKS.md, "Schemas").
    Avro(avro_bench::AvroBench),
    /// A bare axum handler answering 202 (the gateway benchmark's HTTP
    /// ceiling; run by `gateway`).
    BareHttp {
        #[arg(long)]
        port: u16,
    },
    /// Serve a sink until standard input closes (used by `compare`).
    Sink {
        #[arg(long, value_enum)]
        kind: SinkKind,
        #[arg(long, default_value = "bench")]
        topic: String,
        #[arg(long, default_value_t = 3)]
        partitions: i32,
    },
    /// One measured run of one client; prints its figures as JSON (used by
    /// `compare`).
    Client {
        #[arg(long)]
        client: String,
        #[arg(long)]
        bootstrap: String,
        #[arg(long, default_value = "bench")]
        topic: String,
        #[command(flatten)]
        workload: Workload,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Spool(cmd) => spool_bench::run(cmd),
        Cmd::Gateway(cmd) => gateway_bench::run(cmd),
        Cmd::Avro(cmd) => avro_bench::run(cmd),
        Cmd::BareHttp { port } => gateway_bench::bare(port),
        Cmd::Sink {
            kind,
            topic,
            partitions,
        } => sink::serve(kind, &topic, partitions),
        Cmd::Client {
            client,
            bootstrap,
            topic,
            workload,
        } => {
            let r = workload.check().and_then(|()| match client.as_str() {
                "herald" => herald_run::run(&bootstrap, &topic, &workload),
                "librdkafka" => rdkafka_run::run(&bootstrap, &topic, &workload),
                other => Err(format!("unknown client `{other}` (herald or librdkafka)")),
            });
            r.map(|f| println!("{}", serde_json::to_string(&f).expect("figures serialize")))
        }
        Cmd::Compare {
            sink,
            runs,
            json,
            workload,
        } => compare(sink, runs.max(1), json, &workload),
        Cmd::Matrix {
            sink,
            runs,
            styles,
            batch_sizes,
            workload,
        } => matrix(sink, runs.max(1), &styles, &batch_sizes, &workload),
        Cmd::Sweep {
            sink,
            runs,
            over,
            values,
            bytes_per_run,
            workload,
        } => sweep(sink, runs.max(1), over, &values, bytes_per_run, &workload),
    };
    if let Err(e) = result {
        eprintln!("herald-bench: {e}");
        std::process::exit(1);
    }
}

/// The sink process; stopped (stdin closed, then waited for) on drop.
struct SinkProcess {
    child: Child,
    bootstrap: String,
    out: BufReader<std::process::ChildStdout>,
}

impl SinkProcess {
    fn start(kind: SinkKind, partitions: i32) -> Result<SinkProcess, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let kind_arg = match kind {
            SinkKind::Mock => "mock",
            SinkKind::Null => "null",
            SinkKind::Tansu => "tansu",
        };
        let mut child = Command::new(exe)
            .args([
                "sink",
                "--kind",
                kind_arg,
                "--partitions",
                &partitions.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting the sink: {e}"))?;
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        out.read_line(&mut line).map_err(|e| e.to_string())?;
        let bootstrap = line
            .strip_prefix("BOOTSTRAP ")
            .map(|b| b.trim().to_string())
            .ok_or_else(|| format!("the {kind_arg} sink did not start (said {line:?})"))?;
        Ok(SinkProcess {
            child,
            bootstrap,
            out,
        })
    }

    /// CPU seconds the sink (with its children) has used so far.
    fn cpu_seconds(&mut self) -> Result<f64, String> {
        let stdin = self.child.stdin.as_mut().expect("piped");
        writeln!(stdin, "usage").map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.out.read_line(&mut line).map_err(|e| e.to_string())?;
        line.strip_prefix("USAGE ")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("the sink answered {line:?} to `usage`"))
    }
}

impl Drop for SinkProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn run_client(client: &str, bootstrap: &str, w: &Workload) -> Result<Figures, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(["client", "--client", client, "--bootstrap", bootstrap])
        .args(workload_args(w))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("the {client} run failed ({})", out.status));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{client} figures: {e}"))
}

fn workload_args(w: &Workload) -> Vec<String> {
    let mut a = Vec::new();
    let mut push = |k: &str, v: String| {
        a.push(format!("--{k}"));
        a.push(v);
    };
    push("records", w.records.to_string());
    push("size", w.size.to_string());
    push("key-size", w.key_size.to_string());
    push("partitions", w.partitions.to_string());
    push("acks", w.acks.clone());
    push("linger-ms", w.linger_ms.to_string());
    if let Some(b) = w.batch_size {
        push("batch-size", b.to_string());
    }
    push("compression", w.compression.clone());
    push("value-kind", w.value_kind.clone());
    push("idempotence", w.idempotence.to_string());
    push("buffer-bytes", w.buffer_bytes.to_string());
    push("rate", w.rate.to_string());
    push("tasks", w.tasks.to_string());
    push("warmup", w.warmup.to_string());
    push("style", w.style.name().to_string());
    push("window", w.window.to_string());
    push(
        "rdk-api",
        match w.rdk_api {
            client::RdkApi::Auto => "auto",
            client::RdkApi::Base => "base",
            client::RdkApi::Threaded => "threaded",
        }
        .to_string(),
    );
    push("rdk-poll-every", w.rdk_poll_every.to_string());
    if w.latency {
        a.push("--latency".to_string());
    }
    a
}

/// The batch settings in words.
fn settings(w: &Workload) -> String {
    match w.batch_size {
        None => "each client's default batch.size (herald 16384, librdkafka 1000000)".into(),
        Some(b) => format!("batch.size={b} for both (equal settings)"),
    }
}

/// The workload in one line.
fn describe(w: &Workload) -> String {
    format!(
        "style {}, {} records of {} B ({} values), key {} B, {} partitions, acks={}, linger.ms={}, {}, compression={}, idempotence={}, buffer {} B, rate {}, {} task(s){}",
        w.style.name(),
        w.records,
        w.size,
        w.value_kind,
        w.key_size,
        w.partitions,
        w.acks,
        w.linger_ms,
        settings(w),
        w.compression,
        w.idempotence,
        w.buffer_bytes,
        if w.rate == 0 { "max".to_string() } else { format!("{}/s", w.rate) },
        w.tasks,
        if w.timed() { ", per-record latency" } else { "" },
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The figures compared, by name, as (name, getter, unit).
type Getter = fn(&Figures) -> f64;
const FIGURES: &[(&str, Getter)] = &[
    ("records_per_s", |f| f.records_per_s),
    ("mb_per_s", |f| f.mb_per_s),
    ("cpu_s_per_million", |f| f.cpu_s_per_million),
    ("peak_rss_mb", |f| f.peak_rss_mb),
    ("p50_ms", |f| f.p50_ms),
    ("p99_ms", |f| f.p99_ms),
    ("p999_ms", |f| f.p999_ms),
    ("sink_cpu_pct", |f| f.sink_cpu_pct),
];

/// Runs of both clients against one fresh sink, alternating A B A B
/// (starting with each in turn, so drift hits both); progress on stderr
/// unless `quiet`.
fn run_both(
    kind: SinkKind,
    runs: usize,
    quiet: bool,
    w: &Workload,
) -> Result<(Vec<Figures>, Vec<Figures>), String> {
    let mut sink = SinkProcess::start(kind, w.partitions)?;
    let mut herald = Vec::new();
    let mut rdk = Vec::new();
    for i in 0..runs {
        let order = if i % 2 == 0 {
            ["herald", "librdkafka"]
        } else {
            ["librdkafka", "herald"]
        };
        for c in order {
            let (cpu0, t0) = (sink.cpu_seconds()?, std::time::Instant::now());
            let mut f = run_client(c, &sink.bootstrap, w)?;
            let wall = t0.elapsed().as_secs_f64();
            f.sink_cpu_pct = 100.0 * (sink.cpu_seconds()? - cpu0) / wall;
            if !quiet {
                eprintln!(
                    "run {}: {c:<10} {:>10.0} records/s  {:>7.2} CPU s/M  {:>7.1} MB RSS  p99 {:.2} ms  sink {:.0} % CPU",
                    i + 1,
                    f.records_per_s,
                    f.cpu_s_per_million,
                    f.peak_rss_mb,
                    f.p99_ms,
                    f.sink_cpu_pct
                );
            }
            if c == "herald" {
                herald.push(f);
            } else {
                rdk.push(f);
            }
        }
    }
    drop(sink);
    Ok((herald, rdk))
}

/// The swept setting's name and how to set it in a workload.
fn set(w: &mut Workload, over: Over, v: u64) {
    match over {
        Over::Size => w.size = v as usize,
        Over::Partitions => w.partitions = v as i32,
        Over::Tasks => w.tasks = v as usize,
        Over::BufferBytes => w.buffer_bytes = v as usize,
    }
}

/// One compare per value of one setting; a markdown table of the medians.
fn sweep(
    kind: SinkKind,
    runs: usize,
    over: Over,
    values: &[u64],
    bytes_per_run: Option<u64>,
    base: &Workload,
) -> Result<(), String> {
    let name = over.to_possible_value().expect("no skipped variants");
    let name = name.get_name();
    base.check()?;
    println!(
        "sink {kind:?}, sweep over {name}; otherwise {}; medians of {runs} runs",
        describe(base)
    );
    println!();
    println!("| {name} | records | herald records/s | librdkafka records/s | ratio | herald MB/s | librdkafka MB/s | herald CPU s/M | librdkafka CPU s/M | ratio | herald peak RSS MB | librdkafka peak RSS MB | herald p99 ms | sink CPU % (herald runs) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &v in values {
        let mut w = base.clone();
        set(&mut w, over, v);
        if let (Over::Size, Some(b)) = (over, bytes_per_run) {
            w.records = ((b / (v + w.key_size as u64).max(1)) as usize).max(1_000);
        }
        let (h, r) = run_both(kind, runs, true, &w)?;
        let m = |fs: &[Figures], get: Getter| median(fs.iter().map(get).collect());
        let (hr, rr) = (m(&h, |f| f.records_per_s), m(&r, |f| f.records_per_s));
        let (hc, rc) = (
            m(&h, |f| f.cpu_s_per_million),
            m(&r, |f| f.cpu_s_per_million),
        );
        println!(
            "| {v} | {} | {hr:.0} | {rr:.0} | {:.2} | {:.1} | {:.1} | {hc:.2} | {rc:.2} | {:.2} | {:.1} | {:.1} | {:.2} | {:.0} |",
            w.records,
            hr / rr,
            m(&h, |f| f.mb_per_s),
            m(&r, |f| f.mb_per_s),
            hc / rc,
            m(&h, |f| f.peak_rss_mb),
            m(&r, |f| f.peak_rss_mb),
            m(&h, |f| f.p99_ms),
            m(&h, |f| f.sink_cpu_pct),
        );
    }
    Ok(())
}

fn compare(kind: SinkKind, runs: usize, json: bool, w: &Workload) -> Result<(), String> {
    w.check()?;
    let (herald, rdk) = run_both(kind, runs, json, w)?;
    let rows: Vec<(&str, f64, f64)> = FIGURES
        .iter()
        .map(|(name, get)| {
            (
                *name,
                median(herald.iter().map(get).collect()),
                median(rdk.iter().map(get).collect()),
            )
        })
        .collect();
    if json {
        let obj = |i: usize| -> serde_json::Map<String, serde_json::Value> {
            rows.iter()
                .map(|r| {
                    (
                        r.0.to_string(),
                        serde_json::json!(if i == 0 { r.1 } else { r.2 }),
                    )
                })
                .collect()
        };
        let ratios: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|r| (r.0.to_string(), serde_json::json!(r.1 / r.2)))
            .collect();
        let out = serde_json::json!({
            "sink": kind,
            "runs": runs,
            "workload": w,
            "herald": obj(0),
            "librdkafka": obj(1),
            "ratio_herald_over_librdkafka": ratios,
        });
        println!("{out}");
    } else {
        println!("sink {kind:?}, {}; medians of {runs} runs", describe(w));
        println!(
            "{:<20} {:>14} {:>14} {:>18}",
            "figure", "herald", "librdkafka", "herald/librdkafka"
        );
        for (name, h, r) in rows {
            if name.starts_with('p') && name.ends_with("_ms") && !w.timed() {
                continue; // no per-record timing in this run
            }
            println!("{name:<20} {h:>14.2} {r:>14.2} {:>18.2}", h / r);
        }
    }
    Ok(())
}

/// `compare` for every style and batch setting; one markdown row each.
fn matrix(
    kind: SinkKind,
    runs: usize,
    styles: &[client::Style],
    batch_sizes: &[String],
    base: &Workload,
) -> Result<(), String> {
    let sizes = batch_sizes
        .iter()
        .map(|s| match s.as_str() {
            "default" => Ok(None),
            n => n
                .parse()
                .map(Some)
                .map_err(|_| format!("--batch-sizes: expected `default` or bytes, got `{n}`")),
        })
        .collect::<Result<Vec<Option<usize>>, String>>()?;
    let mut w = base.clone();
    w.batch_size = None;
    println!(
        "sink {kind:?}; every style and batch setting; otherwise {}; medians of {runs} alternating runs",
        describe(&w)
    );
    println!();
    println!("| style | batch.size | herald records/s | librdkafka records/s | ratio | herald CPU s/M | librdkafka CPU s/M | ratio | herald peak RSS MB | librdkafka peak RSS MB | ratio | sink CPU % (herald / librdkafka runs) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &style in styles {
        for &size in &sizes {
            let mut w = base.clone();
            w.style = style;
            w.batch_size = size;
            w.check()?;
            let (h, r) = run_both(kind, runs, true, &w)?;
            let m = |fs: &[Figures], get: Getter| median(fs.iter().map(get).collect());
            let pair = |get: Getter| (m(&h, get), m(&r, get));
            let (hr, rr) = pair(|f| f.records_per_s);
            let (hc, rc) = pair(|f| f.cpu_s_per_million);
            let (hm, rm) = pair(|f| f.peak_rss_mb);
            let (hs, rs) = pair(|f| f.sink_cpu_pct);
            println!(
                "| {} | {} | {hr:.0} | {rr:.0} | {:.2} | {hc:.2} | {rc:.2} | {:.2} | {hm:.1} | {rm:.1} | {:.2} | {hs:.0} / {rs:.0} |",
                style.name(),
                size.map_or("each default".to_string(), |b| format!("{b} both")),
                hr / rr,
                hc / rc,
                hm / rm,
            );
        }
    }
    Ok(())
}
