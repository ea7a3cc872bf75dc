//! A real TLS server in front of a broker: stunnel (Debian's `stunnel4`,
//! installed by `scripts/setup`), with certificates made here by rcgen.
//! Tansu 0.6.0's own TLS listener did not answer when tried, so stunnel
//! terminates TLS and forwards plaintext to Tansu, which advertises
//! stunnel's address.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A CA, a server certificate it signed (for `localhost` and 127.0.0.1),
/// a client certificate it signed, and a second CA nobody trusts with a
/// server certificate of its own, all as PEM files.
pub struct Certs {
    _dir: tempfile::TempDir,
    /// The trusted CA's certificate.
    pub ca: PathBuf,
    /// The server's certificate (for `localhost`, 127.0.0.1) and key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A server certificate for another name only (`elsewhere.example`).
    pub wrong_name_cert: PathBuf,
    pub wrong_name_key: PathBuf,
    /// A server certificate signed by a CA that is not `ca`.
    pub untrusted_cert: PathBuf,
    pub untrusted_key: PathBuf,
    /// A client certificate (signed by `ca`) and its key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    (p.self_signed(&key).expect("self-signed CA"), key)
}

fn leaf(
    names: &[&str],
    issuer: &rcgen::Certificate,
    issuer_key: &KeyPair,
) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("params");
    p.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("client"),
    );
    (p.signed_by(&key, issuer, issuer_key).expect("signed"), key)
}

impl Certs {
    pub fn generate() -> Certs {
        let dir = tempfile::tempdir().expect("temporary folder");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("write pem");
            path
        };
        let (ca_cert, ca_key) = ca("herald test CA");
        let (server, server_key) = leaf(&["localhost", "127.0.0.1"], &ca_cert, &ca_key);
        let (wrong, wrong_key) = leaf(&["elsewhere.example"], &ca_cert, &ca_key);
        let (other_ca, other_key) = ca("untrusted CA");
        let (untrusted, untrusted_key) = leaf(&["localhost", "127.0.0.1"], &other_ca, &other_key);
        let (client, client_key) = leaf(&["herald client"], &ca_cert, &ca_key);
        Certs {
            ca: write("ca.pem", ca_cert.pem()),
            server_cert: write("server.pem", server.pem()),
            server_key: write("server.key", server_key.serialize_pem()),
            wrong_name_cert: write("wrong.pem", wrong.pem()),
            wrong_name_key: write("wrong.key", wrong_key.serialize_pem()),
            untrusted_cert: write("untrusted.pem", untrusted.pem()),
            untrusted_key: write("untrusted.key", untrusted_key.serialize_pem()),
            client_cert: write("client.pem", client.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
            _dir: dir,
        }
    }
}

/// stunnel terminating TLS on a loopback port and forwarding to `backend`.
pub struct Stunnel {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// Where stunnel is (`stunnel4` as Debian names it, else `stunnel`).
fn stunnel_bin() -> &'static str {
    for b in ["/usr/bin/stunnel4", "/usr/bin/stunnel"] {
        if Path::new(b).is_file() {
            return b;
        }
    }
    panic!("stunnel not found (run scripts/setup: it installs Debian's stunnel4)")
}

impl Stunnel {
    /// Serve TLS on `port` with this certificate and key, forwarding to
    /// `backend`; with `client_ca`, require a client certificate it signed.
    pub fn start(
        port: u16,
        backend: &str,
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Stunnel {
        let dir = tempfile::tempdir().expect("temporary folder");
        let mut conf = format!(
            "foreground = yes\npid =\ndebug = 4\noutput = {}\n[kafka]\naccept = 127.0.0.1:{port}\nconnect = {backend}\ncert = {}\nkey = {}\n",
            dir.path().join("stunnel.log").display(),
            cert.display(),
            key.display()
        );
        if let Some(ca) = client_ca {
            conf.push_str(&format!(
                "verifyChain = yes\nrequireCert = yes\nCAfile = {}\n",
                ca.display()
            ));
        }
        let conf_path = dir.path().join("stunnel.conf");
        std::fs::write(&conf_path, conf).expect("write stunnel.conf");
        let child = Command::new(stunnel_bin())
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start stunnel");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "stunnel did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Stunnel {
            child,
            port,
            _dir: dir,
        }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `localhost:port`, for checks by host name.
    pub fn localhost(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// stunnel's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("stunnel.log")).unwrap_or_default()
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            eprintln!(
                "stunnel log tail:\n{}",
                &log[log.len().saturating_sub(3000)..]
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
