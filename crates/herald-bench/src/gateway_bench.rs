//! `herald-bench gateway`: the gateway under HTTP load from `wrk` (Debian's,
//! installed by `scripts/bench`), keep-alive connections over loopback,
//! side by side in one run: (a) a bare axum handler answering 202 at once
//! (this machine's HTTP ceiling), (b) `herald gateway` (release binary,
//! spool fsync on) with single-event requests and batches of 100 into the
//! null sink or Tansu, and at a paced ~10,000 events/s for latency, (c) the
//! herald producer sending the same events directly (the producer ceiling).
//! Servers run as child processes so each one's CPU and peak RSS are read
//! from /proc alone.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald::Record;
use herald_test_support::http::request;
use herald_test_support::{free_port, MockBroker, Tansu};

use crate::client::usage;
use crate::sink::SinkKind;

#[derive(clap::Args, Debug)]
pub struct GatewayBench {
    /// The `herald` binary (a release build).
    #[arg(long, default_value = "target/release/herald")]
    herald: PathBuf,
    #[arg(long, value_enum, default_value = "null")]
    sink: SinkKind,
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// wrk's keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Where the gateway's spool goes (a real disk: fsync is measured).
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Records for the direct producer run.
    #[arg(long, default_value_t = 1_000_000)]
    direct_records: u64,
    /// Instead: the gateway with plain JSON beside the same gateway with
    /// the topic's values written as Avro through a schema registry (the
    /// stand-in, in this process), single events and batches of 100.
    #[arg(long)]
    avro: bool,
}

/// An Avro schema the benchmark's VALUE fits (in the Avro JSON encoding).
const VALUE_SCHEMA: &str = r#"{"type":"record","name":"StatusChange","fields":[
 {"name":"payload_type","type":"string"},{"name":"project_id","type":"long"},
 {"name":"fingerprint","type":{"type":"array","items":"string"}},
 {"name":"new_status","type":"string"},
 {"name":"new_substatus","type":["null","string"],"default":null},
 {"name":"actor","type":"string"},{"name":"detected_at","type":"string"},
 {"name":"note","type":"string"}]}"#;

/// `herald gateway` for the sink at `bootstrap`, its topic `bench` with
/// `extra` configuration lines: the child, its address, its spool and its
/// configuration file (both removed by the caller).
fn spawn_gateway(
    b: &GatewayBench,
    bootstrap: &str,
    label: &str,
    extra: &str,
) -> Result<(Child, SocketAddr, PathBuf, PathBuf), String> {
    let spool = b.dir.join(format!(
        "herald-gateway-bench-{}-{}",
        std::process::id(),
        label.replace(' ', "-")
    ));
    let _ = std::fs::remove_dir_all(&spool);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = spool.with_extension("toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{addr}\"\n[spool]\ndir = \"{}\"\nmax_bytes = 8589934592\n[instances.main]\n\
             \"bootstrap.servers\" = \"{bootstrap}\"\n[instances.main.topics.bench]\n{extra}",
            spool.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let child = Command::new(&b.herald)
        .args(["gateway", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "{}: {e} (build it: cargo build --release -p herald-cli)",
                b.herald.display()
            )
        })?;
    Ok((child, addr, spool, config))
}

/// SIGTERM, wait, and remove its spool and configuration.
fn stop_gateway(mut child: Child, spool: &PathBuf, config: &PathBuf) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(spool);
    let _ = std::fs::remove_file(config);
}

/// Plain JSON against Avro through the registry, the same gateway.
fn avro_compare(
    b: &GatewayBench,
    bootstrap: &str,
    single: &str,
    batch: &str,
) -> Result<(), String> {
    let registry = herald_test_support::registry::Registry::start();
    let id = registry.register("bench-value", VALUE_SCHEMA, "AVRO");
    for (label, extra) in [
        ("plain JSON", String::new()),
        (
            "Avro",
            format!(
                "value_schema = {{ format = \"avro\", id = {id} }}\n\
                 [instances.main.schema_registry]\nurl = \"{}\"\n",
                registry.url()
            ),
        ),
    ] {
        let (mut child, addr, spool, config) = spawn_gateway(b, bootstrap, label, &extra)?;
        let result = (|| -> Result<(), String> {
            wait_healthy(addr, &mut child)?;
            let url = format!("http://{addr}/v1/instances/main/topics/bench/events");
            let pid = child.id();
            let cpu0 = cpu_of(pid);
            let w = wrk(&url, single, b.connections, b.seconds, None)?;
            row(
                &format!("gateway, {label}, 1 event/request"),
                w.requests,
                &w,
                cpu_of(pid) - cpu0,
                peak_rss_mb(pid),
            );
            let cpu0 = cpu_of(pid);
            let w = wrk(&url, batch, b.connections.min(16), b.seconds, None)?;
            row(
                &format!("gateway, {label}, 100 events/request"),
                w.requests * 100,
                &w,
                cpu_of(pid) - cpu0,
                peak_rss_mb(pid),
            );
            Ok(())
        })();
        stop_gateway(child, &spool, &config);
        result?;
    }
    println!(
        "(registry reads {}, writes {})",
        registry.reads(),
        registry.writes()
    );
    Ok(())
}

/// One event's value: about 200 bytes of JSON.
const VALUE: &str = r#"{"payload_type":"status_change","project_id":42,"fingerprint":["checkout-timeout"],"new_status":"resolved","new_substatus":null,"actor":"user:1234","detected_at":"2026-11-30T12:00:00Z","note":"bench"}"#;

struct Wrk {
    requests: u64,
    seconds: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    failed: u64,
}

/// Run wrk against `url` posting `body`; `delay_ms` paces each connection
/// (a request, then that pause) to offer a fixed rate.
fn wrk(
    url: &str,
    body: &str,
    connections: u32,
    seconds: u64,
    delay_ms: Option<u32>,
) -> Result<Wrk, String> {
    let script = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let mut lua = format!(
        "wrk.method = \"POST\"\nwrk.body = [==[{body}]==]\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
         done = function(s, l, r)\n  io.write(string.format(\"RESULT %d %d %.3f %.3f %.3f %d\\n\", s.requests, s.duration, \
         l:percentile(50)/1000, l:percentile(99)/1000, l:percentile(99.9)/1000, s.errors.status + s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout))\nend\n"
    );
    if let Some(d) = delay_ms {
        lua.push_str(&format!("delay = function() return {d} end\n"));
    }
    std::fs::write(script.path(), lua).map_err(|e| e.to_string())?;
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--timeout",
            "10s",
            "-s",
        ])
        .arg(script.path())
        .arg(url)
        .output()
        .map_err(|e| format!("running wrk (scripts/bench installs it): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| {
            format!(
                "wrk printed no result: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let f: Vec<f64> = line.split(' ').map(|v| v.parse().unwrap_or(0.0)).collect();
    Ok(Wrk {
        requests: f[0] as u64,
        seconds: f[1] / 1e6,
        p50: f[2],
        p99: f[3],
        p999: f[4],
        failed: f[5] as u64,
    })
}

/// CPU seconds (user + system) of a process, from /proc.
fn cpu_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat; after ") " the first is field 3.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak RSS (VmHWM) of a process in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix(" kB"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn wait_healthy(addr: SocketAddr, child: &mut Child) -> Result<(), String> {
    let start = Instant::now();
    while request(addr, "GET", "/healthz", &[], b"").is_none_or(|a| a.status != 200) {
        if let Ok(Some(s)) = child.try_wait() {
            return Err(format!("the server exited: {s}"));
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err("the server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A row: what, events/s, latency, CPU per million events, peak RSS.
fn row(what: &str, events: u64, w: &Wrk, cpu: f64, rss: f64) {
    let rate = events as f64 / w.seconds;
    println!(
        "| {what} | {:.0} | {:.0} | {:.2} / {:.2} / {:.2} | {:.2} | {:.0} | {} |",
        w.requests as f64 / w.seconds,
        rate,
        w.p50,
        w.p99,
        w.p999,
        cpu / (events.max(1) as f64 / 1e6),
        rss,
        w.failed
    );
}

/// The bare handler, as a child process: `herald-bench bare-http --port P`.
pub fn bare(port: u16) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let app = axum::Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok\n" }))
            .fallback(|| async {
                (
                    axum::http::StatusCode::ACCEPTED,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    "{\"ids\":[\"0:0\"]}",
                )
            });
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        axum::serve(l, app).await.map_err(|e| e.to_string())
    })
}

pub fn run(b: GatewayBench) -> Result<(), String> {
    // The sink, in this process.
    let (_null, _tansu, bootstrap) = match b.sink {
        SinkKind::Tansu => {
            let t = Tansu::start();
            t.create_topic("bench", 3);
            let bs = t.bootstrap();
            (None, Some(t), bs)
        }
        _ => {
            let m = MockBroker::start_sink();
            m.create_topic("bench", 3);
            let bs = m.bootstrap();
            (Some(m), None, bs)
        }
    };
    let single = format!("{{\"value\": {VALUE}}}");
    let batch = format!(
        "{{\"events\": [{}]}}",
        vec![format!("{{\"value\": {VALUE}}}"); 100].join(",")
    );
    println!(
        "| run | requests/s | events/s | latency p50 / p99 / p99.9 ms | CPU s per M events | peak RSS MB | errors |"
    );
    println!("|---|---|---|---|---|---|---|");
    if b.avro {
        return avro_compare(&b, &bootstrap, &single, &batch);
    }

    // (a) The bare handler.
    let port = free_port();
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(me)
        .args(["bare-http", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_healthy(addr, &mut child)?;
    let url = format!("http://{addr}/v1/instances/main/topics/bench/events");
    let cpu0 = cpu_of(child.id());
    let w = wrk(&url, &single, b.connections, b.seconds, None)?;
    row(
        "bare axum handler, 1 event/request",
        w.requests,
        &w,
        cpu_of(child.id()) - cpu0,
        peak_rss_mb(child.id()),
    );
    let _ = child.kill();
    let _ = child.wait();

    // (b) The gateway.
    let (mut child, addr, spool, config) = spawn_gateway(&b, &bootstrap, "plain", "")?;
    let result = (|| -> Result<(), String> {
        wait_healthy(addr, &mut child)?;
        let url = format!("http://{addr}/v1/instances/main/topics/bench/events");
        let pid = child.id();
        let cpu0 = cpu_of(pid);
        let w = wrk(&url, &single, b.connections, b.seconds, None)?;
        row(
            &format!("gateway → {:?}, 1 event/request", b.sink),
            w.requests,
            &w,
            cpu_of(pid) - cpu0,
            peak_rss_mb(pid),
        );
        let cpu0 = cpu_of(pid);
        let w = wrk(&url, &batch, b.connections.min(16), b.seconds, None)?;
        row(
            &format!("gateway → {:?}, 100 events/request", b.sink),
            w.requests * 100,
            &w,
            cpu_of(pid) - cpu0,
            peak_rss_mb(pid),
        );
        // Paced: 30 connections, each a request then a 2 ms pause: about
        // 10,000 requests/s offered (wrk is closed-loop: a slow answer
        // delays that connection's next request, so this understates
        // queueing a truly open-loop load would see).
        let cpu0 = cpu_of(pid);
        let w = wrk(&url, &single, 30, b.seconds, Some(2))?;
        row(
            &format!("gateway → {:?}, paced ≤10,000 events/s", b.sink),
            w.requests,
            &w,
            cpu_of(pid) - cpu0,
            peak_rss_mb(pid),
        );
        // Forwarding catches up: the backlog must reach 0.
        let start = Instant::now();
        loop {
            let a = request(addr, "GET", "/v1/instances", &[], b"").ok_or("no answer")?;
            let backlog = a.json()["instances"][0]["spool"]["backlog_records"]
                .as_u64()
                .unwrap_or(1);
            if backlog == 0 {
                break;
            }
            if start.elapsed() > Duration::from_secs(300) {
                return Err(format!("{backlog} events still in the spool after 300 s"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        println!(
            "(gateway: backlog delivered {:.1} s after the last run)",
            start.elapsed().as_secs_f64()
        );
        Ok(())
    })();
    stop_gateway(child, &spool, &config);
    result?;

    // (c) The producer directly, the same events.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let value = Bytes::from_static(VALUE.as_bytes());
    let (took, cpu) = rt.block_on(crate::spool_bench::direct(
        &bootstrap,
        b.direct_records,
        |_| Record::new("bench", value.clone()),
    ))?;
    let (_, rss) = usage();
    println!(
        "| herald producer directly (idempotent, acks=all) | - | {:.0} | - | {:.2} | {:.0} (bench process) | 0 |",
        b.direct_records as f64 / took,
        cpu / (b.direct_records as f64 / 1e6),
        rss
    );
    let _ = std::io::stdout().flush();
    Ok(())
}
