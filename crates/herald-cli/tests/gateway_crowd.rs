//! The gateway as users run it, under a crowd: 10,000 idle connections
//! held open while clients keep publishing (they are served, the idle ones
//! are closed at the header deadline, memory stays bounded), then stopped
//! with SIGTERM. Its whole log, at debug level, never holds a token, and
//! has one line per failed request.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use herald_gateway::token;
use herald_test_support::http::{request, wait_healthy};
use herald_test_support::{free_port, MockBroker};

/// The resident set of process `pid`, in kB, as `field` (VmRSS, VmHWM).
fn memory_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').trim().strip_suffix(" kB"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn ten_thousand_idle_connections_do_not_stop_clients_and_no_token_is_logged() {
    let mock = MockBroker::start();
    mock.create_topic("t", 3);
    mock.create_topic("other", 1);
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (good, stranger) = (token::new_token(), token::new_token());
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"
listen = "{addr}"
[spool]
dir = "{}"
[limits]
header_timeout_ms = 3000
max_connections = 12000
[instances.main]
"bootstrap.servers" = "{}"
[instances.main.topics.t]
[instances.main.topics.other]
[[tokens]]
name = "app"
sha256 = "{}"
allow = ["main/t"]
"#,
            dir.path().join("spool").display(),
            mock.bootstrap(),
            token::sha256_hex(&good),
        ),
    )
    .unwrap();
    let log = dir.path().join("gateway.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["gateway", "--config"])
        .arg(&config)
        .env("HERALD_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    assert!(wait_healthy(addr, Duration::from_secs(30)), "not started");
    let bearer = format!("Bearer {good}");
    let auth = ("Authorization", bearer.as_str());
    let json = ("Content-Type", "application/json");
    let path = "/v1/instances/main/topics/t/events";
    let rss_before = memory_kb(child.id(), "VmRSS");

    // 10,000 connections that send nothing.
    let opened = Instant::now();
    let mut idle = Vec::with_capacity(10_000);
    while idle.len() < 10_000 {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connection {} refused: {e}", idle.len()),
        }
        // Clients are served while the crowd gathers.
        if idle.len() % 1000 == 0 {
            let a = request(addr, "POST", path, &[auth, json], b"{\"value\": 1}").unwrap();
            assert_eq!(a.status, 202, "with {} idle: {}", idle.len(), a.body);
        }
    }
    let gathered = opened.elapsed();
    // All of them open at once (the deadline is 3 s after each connected).
    assert!(
        gathered < Duration::from_secs(3),
        "took {gathered:?} to open"
    );
    for i in 0..100 {
        let a = request(
            addr,
            "POST",
            path,
            &[auth, json],
            format!("{{\"value\": {i}}}").as_bytes(),
        )
        .unwrap();
        assert_eq!(a.status, 202, "{}", a.body);
    }
    let rss_crowd = memory_kb(child.id(), "VmRSS");
    eprintln!(
        "gateway RSS: {} kB before, {rss_crowd} kB with 10,000 idle connections",
        rss_before
    );
    // About 10 kB per connection (hyper's 8 kB read buffer and the task).
    assert!(
        rss_crowd < rss_before + 160 * 1024,
        "RSS {rss_crowd} kB with 10,000 idle connections"
    );
    // The idle ones are closed at the header deadline.
    for s in idle.iter_mut().step_by(100) {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 64];
        assert!(
            matches!(s.read(&mut buf), Ok(0)),
            "an idle connection is closed by the gateway"
        );
    }
    drop(idle);

    // Failed requests of every kind, with tokens on them.
    let wrong = format!("Bearer {stranger}");
    for (p, h, want) in [
        (path, vec![("Authorization", wrong.as_str()), json], 401),
        (
            "/v1/instances/main/topics/other/events",
            vec![auth, json],
            403,
        ),
        (path, vec![auth, ("Content-Type", "text/plain")], 415),
    ] {
        let a = request(addr, "POST", p, &h, b"{\"value\": 1}").unwrap();
        assert_eq!(a.status, want, "{}", a.body);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM: {status:?}");
    assert_eq!(
        mock.log("t", 0).len() + mock.log("t", 1).len() + mock.log("t", 2).len(),
        110
    );

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(&good), "the token is in the log");
    assert!(!text.contains(&stranger), "an unknown token is in the log");
    for status in ["status=401", "status=403", "status=415"] {
        assert_eq!(
            text.lines().filter(|l| l.contains(status)).count(),
            1,
            "one line for the {status} request in:\n{text}"
        );
    }
}

/// Under a low file-descriptor limit the gateway lowers max_connections to
/// fit, says so, and answers connections beyond it with a 503 instead of
/// failing to accept them.
#[test]
fn max_connections_is_kept_under_the_file_descriptor_limit() {
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{addr}\"\n[spool]\ndir = \"{}\"\n[instances.main]\n\
             \"bootstrap.servers\" = \"127.0.0.1:1\"\n[instances.main.topics.t]\n",
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("gateway.log");
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 800 && ulimit -Hn 800 && exec {} gateway --config {}",
            env!("CARGO_BIN_EXE_herald"),
            config.display()
        ))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    assert!(wait_healthy(addr, Duration::from_secs(30)), "not started");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("limits.max_connections 10000 lowered to 288"),
        "{text}"
    );
    let held: Vec<TcpStream> = (0..288)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let a = request(addr, "GET", "/healthz", &[], b"").expect("an answer, not a hang");
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.detail().contains("288 connections open"), "{}", a.body);
    drop(held);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
}
