//! Test fixtures shared by herald's integration tests.
//!
//! - [`Tansu`]: a real Kafka-compatible broker (Tansu 0.6.0) on a free
//!   loopback port with `sqlite://` storage in a temporary folder, stopped
//!   when dropped. Its `memory://` engine is never used: it loses
//!   acknowledged records.
//! - [`read_all`]: librdkafka (the peer client) reads a topic back.

pub mod http;
pub mod lazyfs;
mod mock_broker;
mod mock_sasl;
mod proxy;
pub mod registry;
mod stunnel;

pub use mock_broker::{Fault, MockBroker};
pub use mock_sasl::{AwsUser, SaslCounts, SaslUser};
pub use proxy::FaultProxy;
pub use stunnel::{Certs, Stunnel};

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Log herald's tracing events to the test output when `HERALD_LOG` is set
/// (for example `HERALD_LOG=herald=debug`). Safe to call more than once.
pub fn init_tracing() {
    if let Ok(filter) = std::env::var("HERALD_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Where the `tansu` binary is: `$TANSU_BIN`, else `tansu` on `PATH`, else
/// `~/.cargo/bin/tansu` (where `scripts/setup` installs it).
pub fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return p.into();
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("tansu");
            if p.is_file() {
                return p;
            }
        }
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cargo/bin/tansu")
}

/// A running Tansu broker.
pub struct Tansu {
    child: Child,
    port: u16,
    advertised: u16,
    /// Started with `--authentication` (SASL required).
    authentication: bool,
    _dir: tempfile::TempDir,
}

impl Tansu {
    /// Start Tansu on a free loopback port and wait until it accepts
    /// connections (at most 30 s).
    pub fn start() -> Tansu {
        let port = free_port();
        Self::start_advertising(port, port)
    }

    /// Start Tansu behind a [`FaultProxy`]: the broker advertises the
    /// proxy's address, so every client connection goes through it.
    pub fn start_behind_proxy() -> (Tansu, FaultProxy) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let proxy_port = listener.local_addr().expect("bound").port();
        let tansu = Self::start_advertising(free_port(), proxy_port);
        let proxy = FaultProxy::start(listener, format!("127.0.0.1:{}", tansu.port));
        (tansu, proxy)
    }

    fn start_advertising(port: u16, advertised: u16) -> Tansu {
        let dir = tempfile::tempdir().expect("temporary folder");
        let child = Self::spawn(dir.path(), port, advertised, false);
        let t = Tansu {
            child,
            port,
            advertised,
            authentication: false,
            _dir: dir,
        };
        t.wait_listening();
        t.index_headers();
        t
    }

    fn spawn(dir: &std::path::Path, port: u16, advertised: u16, authentication: bool) -> Child {
        let bin = tansu_bin();
        assert!(
            bin.is_file(),
            "tansu not found at {} (run scripts/setup, or set TANSU_BIN)",
            bin.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("tansu.log"))
            .expect("log file");
        let mut cmd = Command::new(&bin);
        cmd.arg("broker");
        if authentication {
            cmd.arg("--authentication");
        }
        cmd.arg("--listener-url")
            .arg(format!("tcp://127.0.0.1:{port}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://127.0.0.1:{advertised}"))
            .arg("--storage-engine")
            // Relative to current_dir: Tansu joins an absolute path onto the cwd.
            .arg("sqlite://tansu.db")
            .current_dir(dir)
            // Its log level: `TANSU_LOG` (warnings and errors by default).
            .env(
                "RUST_LOG",
                std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start tansu")
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {} within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9` the broker: no shutdown, whatever it had not written to
    /// its sqlite file is gone.
    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }

    /// Start Tansu advertising `advertised` (a TLS front such as
    /// [`Stunnel`] listening there) instead of its own port.
    pub fn start_advertising_port(advertised: u16) -> Tansu {
        Self::start_advertising(free_port(), advertised)
    }

    /// Restart the broker (same port and storage) advertising its own port,
    /// so that plaintext clients such as librdkafka here can read back what
    /// was written through a front.
    pub fn restart_advertising_itself(&mut self) {
        self.kill9();
        self.advertised = self.port;
        self.restart();
    }

    /// Start the broker again on the same port and storage.
    pub fn restart(&mut self) {
        self.child = Self::spawn(
            self._dir.path(),
            self.port,
            self.advertised,
            self.authentication,
        );
        self.wait_listening();
    }

    /// Restart without `--authentication` (same port and storage),
    /// advertising its own port, so that librdkafka here (built without
    /// SCRAM) can read back what was written.
    pub fn restart_without_authentication(&mut self) {
        self.kill9();
        self.authentication = false;
        self.advertised = self.port;
        self.restart();
    }

    /// Tansu requiring SASL: `topics` are created and user `name` (SCRAM,
    /// the only mechanism Tansu 0.6.0 offers) is added with `tansu user
    /// create`, then the broker restarts with `--authentication`.
    pub fn start_authenticated(name: &str, password: &str, topics: &[(&str, u32)]) -> Tansu {
        let port = free_port();
        Self::start_authenticated_advertising(port, port, name, password, topics)
    }

    /// As `start_authenticated`, advertising `advertised` (a TLS front
    /// such as [`Stunnel`] listening there: SASL_SSL).
    pub fn start_authenticated_behind(
        advertised: u16,
        name: &str,
        password: &str,
        topics: &[(&str, u32)],
    ) -> Tansu {
        Self::start_authenticated_advertising(free_port(), advertised, name, password, topics)
    }

    fn start_authenticated_advertising(
        port: u16,
        advertised: u16,
        name: &str,
        password: &str,
        topics: &[(&str, u32)],
    ) -> Tansu {
        let mut t = Self::start_advertising(port, advertised);
        for (topic, partitions) in topics {
            t.create_topic(topic, *partitions);
        }
        t.cli(
            &["user", "create"],
            &["--mechanism", "scram512", name, password],
        );
        t.kill9();
        t.authentication = true;
        t.restart();
        t
    }

    /// Tansu 0.6.0's sqlite schema has no index on `header(topition,
    /// offset_id)`, and its Fetch looks up each record's headers with that
    /// key: reading N records back costs O(N x headers in the database).
    /// Adding the index changes no behaviour, only makes reading back
    /// 100,000 records take minutes instead of hours.
    fn index_headers(&self) {
        let db = self._dir.path().join("tansu.db");
        let c = rusqlite::Connection::open(&db).expect("open tansu.db");
        c.busy_timeout(Duration::from_secs(30))
            .expect("busy timeout");
        // Tansu may accept connections before it has created its schema:
        // wait (bounded) for the table, then index it.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match c.execute_batch(
                "create index if not exists herald_test_header_record on header (topition, offset_id);",
            ) {
                Ok(()) => return,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "could not index Tansu's header table within 30 s: {e}"
                ),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What Tansu wrote to standard error so far (its log), to show when a
    /// test fails.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("tansu.log")).unwrap_or_default()
    }

    /// `host:port` for `bootstrap.servers` (Tansu itself, not a proxy).
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Create a topic with `tansu topic create`.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        self.cli(
            &["topic", "create"],
            &["--partitions", &partitions.to_string(), name],
        );
    }

    /// Run `tansu COMMAND --broker <this broker> ARGS`; it must succeed.
    fn cli(&self, command: &[&str], args: &[&str]) {
        let out = Command::new(tansu_bin())
            .args(command)
            .arg("--broker")
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .args(args)
            .output()
            .expect("run tansu");
        assert!(
            out.status.success(),
            "tansu {} {} failed: {}",
            command.join(" "),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        // A failing test shows how Tansu exited, and the end of its log.
        if std::thread::panicking() {
            let status = self.child.try_wait();
            let log = self.log();
            let tail = &log[log.len().saturating_sub(4000)..];
            eprintln!("tansu (exit status {status:?}) log tail:\n{tail}");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A record as librdkafka read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: Option<i64>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

fn consumer_config() -> ClientConfig {
    let mut cfg = ClientConfig::new();
    if let Ok(d) = std::env::var("HERALD_TEST_RDKAFKA_DEBUG") {
        cfg.set("debug", d);
    }
    cfg.set("group.id", "herald-test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest");
    cfg
}

fn to_read(m: &rdkafka::message::BorrowedMessage<'_>) -> Read {
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                .collect()
        })
        .unwrap_or_default();
    Read {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(|k| k.to_vec()),
        value: m.payload().map(|v| v.to_vec()),
        timestamp: m.timestamp().to_millis(),
        headers,
    }
}

/// Read one partition from the beginning up to its high watermark.
pub fn read_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Vec<Read> {
    let consumer: BaseConsumer = consumer_config()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("librdkafka consumer");
    let (_, high) = consumer
        .fetch_watermarks(topic, partition, timeout)
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while out.last().map_or(high > 0, |r: &Read| r.offset + 1 < high) {
        assert!(
            Instant::now() < deadline,
            "librdkafka read {} records of {topic}-{partition} (high watermark {high}) within {timeout:?}",
            out.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => panic!("librdkafka consumer error: {e}"),
            Some(Ok(m)) => out.push(to_read(&m)),
        }
    }
    out
}

/// Read every record of `topic` (partitions `0..partitions`) with
/// librdkafka, one consumer per partition in parallel; panic unless there
/// are exactly `expected`, within `timeout`. Partition by partition, in
/// offset order.
pub fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
    timeout: Duration,
) -> Vec<Read> {
    let out = read_log(bootstrap, topic, partitions, timeout);
    assert_eq!(out.len(), expected, "records in {topic}");
    out
}

/// Read every record of `topic` (partitions `0..partitions`) up to each
/// partition's high watermark, however many there are.
pub fn read_log(bootstrap: &str, topic: &str, partitions: i32, timeout: Duration) -> Vec<Read> {
    let readers: Vec<_> = (0..partitions)
        .map(|p| {
            let (b, t) = (bootstrap.to_string(), topic.to_string());
            std::thread::spawn(move || read_partition(&b, &t, p, timeout))
        })
        .collect();
    readers
        .into_iter()
        .flat_map(|h| h.join().expect("reader thread"))
        .collect()
}

/// After reading `n` records, check that nothing more arrives within
/// `quiet` (no duplicates appended behind them).
pub fn assert_no_more(bootstrap: &str, topic: &str, partitions: i32, n: usize, quiet: Duration) {
    let consumer: BaseConsumer = consumer_config()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("librdkafka consumer");
    let mut total = 0i64;
    for p in 0..partitions {
        let (lo, hi) = consumer
            .fetch_watermarks(topic, p, quiet)
            .expect("watermarks");
        total += hi - lo;
    }
    assert_eq!(total as usize, n, "records in {topic} by watermarks");
}
