//! HTTP/1.1 requests written by hand, as a new user's curl sends them: one
//! request per connection (`Connection: close`), the answer read to the end.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// An answer: status, headers, body.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics, showing it, if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// A problem+json answer's `detail` (panics if it is not one).
    pub fn detail(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.body
        );
        let j = self.json();
        assert_eq!(j["status"], self.status);
        j["detail"].as_str().unwrap().to_string()
    }

    /// An answer read off a socket as bytes (`None` if it is not one).
    pub fn parse(raw: &[u8]) -> Option<HttpAnswer> {
        let text = String::from_utf8_lossy(raw).to_string();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let mut lines = head.lines();
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Some(HttpAnswer {
            status,
            headers,
            body: body.to_string(),
        })
    }
}

/// Send one request; `None` when nothing answers (connection refused or
/// closed without an answer).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<HttpAnswer> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    HttpAnswer::parse(&raw)
}

/// Poll `GET /healthz` at `addr` until it answers 200 (`true`) or
/// `timeout` passes (`false`): a gateway just started, ready.
pub fn wait_healthy(addr: SocketAddr, timeout: Duration) -> bool {
    let start = std::time::Instant::now();
    while request(addr, "GET", "/healthz", &[], b"").is_none_or(|a| a.status != 200) {
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
