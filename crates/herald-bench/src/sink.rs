//! The brokers the clients produce to, each served by its own process so
//! that the client process is what is measured.

use std::io::{BufRead, Write};

use herald_test_support::{MockBroker, Tansu};
use rdkafka::mocking::MockCluster;

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum SinkKind {
    /// librdkafka's mock cluster: a broker no one here wrote; stores what
    /// it gets.
    Mock,
    /// Our minimal broker: parses produce requests, checks each batch's
    /// CRC-32C, answers with offsets, stores nothing.
    Null,
    /// Tansu 0.6.0 on sqlite: the real end-to-end figure.
    Tansu,
}

/// Serve until standard input closes: print `BOOTSTRAP host:port` once the
/// topic exists.
pub fn serve(kind: SinkKind, topic: &str, partitions: i32) -> Result<(), String> {
    // Kept alive until stdin closes.
    let mut _mock: Option<MockCluster<'static, rdkafka::producer::DefaultProducerContext>> = None;
    let mut _null: Option<MockBroker> = None;
    let mut _tansu: Option<Tansu> = None;
    let bootstrap = match kind {
        SinkKind::Mock => {
            let m = MockCluster::new(1).map_err(|e| e.to_string())?;
            m.create_topic(topic, partitions, 1)
                .map_err(|e| e.to_string())?;
            let b = m.bootstrap_servers();
            _mock = Some(m);
            b
        }
        SinkKind::Null => {
            let m = MockBroker::start_sink();
            m.create_topic(topic, partitions as usize);
            let b = m.bootstrap();
            _null = Some(m);
            b
        }
        SinkKind::Tansu => {
            let t = Tansu::start();
            t.create_topic(topic, partitions as u32);
            let b = t.bootstrap();
            _tansu = Some(t);
            b
        }
    };
    println!("BOOTSTRAP {bootstrap}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    // Serve until the parent closes our standard input; answer `usage`
    // with the CPU seconds this process and its children (Tansu) used.
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "usage" {
            println!("USAGE {}", cpu_seconds_with_children());
            std::io::stdout().flush().map_err(|e| e.to_string())?;
        }
    }
    if let Some(n) = &_null {
        if n.bad_crc() > 0 {
            return Err(format!("{} batches with a wrong CRC", n.bad_crc()));
        }
    }
    Ok(())
}

/// User + system CPU seconds of this process and its direct children so
/// far, from `/proc` (a child still running is not in `RUSAGE_CHILDREN`).
fn cpu_seconds_with_children() -> f64 {
    let me = std::process::id();
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut total = 0.0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses.
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // f[1] = ppid, f[11] = utime, f[12] = stime (man 5 proc, from field 3).
        let pid: u32 = e.file_name().to_string_lossy().parse().unwrap_or(0);
        let ppid: u32 = f.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        if pid == me || ppid == me {
            let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            total += (t(11) + t(12)) / ticks;
        }
    }
    total
}
