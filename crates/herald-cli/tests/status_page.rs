//! The gateway's status page in a real browser (Chromium from Debian,
//! headless; `scripts/setup` installs it), against a gateway with one
//! instance up (Tansu) and one down (nothing listens at its broker
//! address): what a person sees is asserted on the DOM Chromium rendered:
//! both instances, the down one marked unreachable with its error naming
//! the broker, a backlog that matches the spool's, delivered counts, a
//! dead letter with its reason, and the last failed request. A screenshot
//! is written next to the test's output (docs/status-page.png is one).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use herald_gateway::token;
use herald_test_support::http::{request, wait_healthy};
use herald_test_support::{free_port, Tansu};
use serde_json::Value;

fn chromium() -> &'static str {
    for b in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(b).is_file() {
            return b;
        }
    }
    panic!("chromium not found (scripts/setup installs Debian's chromium)")
}

/// Run headless Chromium (bounded by 90 s) with `args` and `url`.
fn browse(args: &[&str], url: &str, profile: &std::path::Path) -> std::process::Output {
    let out = Command::new("timeout")
        .arg("90")
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The visible text of an HTML fragment: tags dropped, entities decoded,
/// whitespace collapsed.
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The rendered `<section … data-instance="NAME" …>…</section>`.
fn section<'a>(dom: &'a str, instance: &str) -> &'a str {
    let start = dom
        .find(&format!("data-instance=\"{instance}\""))
        .unwrap_or_else(|| panic!("no section for {instance} in:\n{dom}"));
    let start = dom[..start].rfind("<section").unwrap();
    let end = start + dom[start..].find("</section>").unwrap();
    &dom[start..end]
}

/// The gateway process, killed however the test ends.
struct Gateway(std::process::Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_gateway(config: &std::path::Path, addr: SocketAddr) -> Gateway {
    let child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["gateway", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let g = Gateway(child);
    assert!(wait_healthy(addr, Duration::from_secs(30)), "not started");
    g
}

fn instances(addr: SocketAddr) -> Value {
    request(addr, "GET", "/v1/instances", &[], b"")
        .unwrap()
        .json()
}

#[test]
fn a_person_sees_both_instances_the_down_one_marked_and_its_backlog() {
    let tansu = Tansu::start();
    tansu.create_topic("orders", 2);
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dead_broker = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        dir.path().join("gateway.toml"),
        format!(
            r#"listen = "{addr}"
[spool]
dir = "{spool}"
[instances.main]
"bootstrap.servers" = "{up}"
"max.request.size" = "4096"
[instances.main.topics.orders]
[instances.audit]
"bootstrap.servers" = "{dead_broker}"
[instances.audit.topics.orders]
"#,
            spool = dir.path().join("spool").display(),
            up = tansu.bootstrap(),
        ),
    )
    .unwrap();
    let gateway = start_gateway(&dir.path().join("gateway.toml"), addr);
    let json = [("Content-Type", "application/json")];
    let publish = |instance: &str, body: &str| {
        request(
            addr,
            "POST",
            &format!("/v1/instances/{instance}/topics/orders/events"),
            &json,
            body.as_bytes(),
        )
        .unwrap()
    };
    // Five delivered to the instance that is up, one too large for its
    // max.request.size (a dead letter), three waiting for the one down,
    // one refused request.
    let batch = r#"{"events":[{"value":1},{"value":2},{"value":3},{"value":4},{"value":5}]}"#;
    assert_eq!(publish("main", batch).status, 202);
    let big = format!(r#"{{"value":"{}"}}"#, "x".repeat(6000));
    assert_eq!(publish("main", &big).status, 202);
    assert_eq!(
        publish(
            "audit",
            r#"{"events":[{"value":"a"},{"value":"b"},{"value":"c"}]}"#
        )
        .status,
        202
    );
    assert_eq!(
        request(
            addr,
            "POST",
            "/v1/instances/main/topics/refunds/events",
            &json,
            b"{\"value\":1}"
        )
        .unwrap()
        .status,
        404
    );

    // Wait (bounded) until the gateway itself knows: main connected and
    // drained, audit unreachable with its three events waiting.
    let deadline = Instant::now() + Duration::from_secs(60);
    let state = loop {
        let v = instances(addr);
        let by = |n: &str| {
            v["instances"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["name"] == n)
                .unwrap()
                .clone()
        };
        let (main, audit) = (by("main"), by("audit"));
        if main["state"] == "connected"
            && main["spool"]["backlog_records"] == 0
            && main["spool"]["dead_letters"] == 1
            && audit["state"] == "unreachable"
        {
            break (main, audit);
        }
        assert!(Instant::now() < deadline, "gateway did not settle: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (_, audit) = state;
    let backlog = audit["spool"]["backlog_records"].as_u64().unwrap();
    assert_eq!(backlog, 3);

    // What the browser renders.
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/");
    let out = browse(&["--dump-dom"], &url, profile.path());
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(dom.contains("<title>herald gateway</title>"), "{dom}");

    let main = section(&dom, "main");
    assert!(main.contains("data-state=\"connected\""), "{main}");
    let main_text = text_of(main);
    assert!(main_text.starts_with("main connected"), "{main_text}");
    assert!(
        main_text.contains(&format!("brokers {}", tansu.bootstrap())),
        "{main_text}"
    );
    assert!(main_text.contains("spool backlog 0 events"), "{main_text}");
    // orders: accepted 6, delivered 5, dead letters 1.
    let row = &main[main.find("data-topic=\"orders\"").unwrap()..];
    assert!(row.contains("class=\"n accepted\">6<"), "{row}");
    assert!(row.contains("class=\"n delivered\">5<"), "{row}");
    assert!(row.contains("class=\"n dead\">1<"), "{row}");

    let audit_html = section(&dom, "audit");
    assert!(
        audit_html.contains("class=\"instance down\""),
        "{audit_html}"
    );
    let audit_text = text_of(audit_html);
    assert!(audit_text.starts_with("audit unreachable"), "{audit_text}");
    assert!(
        audit_text.contains(&dead_broker),
        "the error names the broker: {audit_text}"
    );
    assert!(
        audit_text.contains(&format!("spool backlog {backlog} events")),
        "{audit_text}"
    );
    assert!(audit_html.contains(&format!("data-backlog=\"{backlog}\"")));
    assert!(!audit_text.contains("oldest waiting none"), "{audit_text}");

    let dead = text_of(&dom[dom.find("id=\"dead-letters\"").unwrap()..]);
    assert!(dead.contains("main orders"), "{dead}");
    assert!(
        dead.to_lowercase().contains("max.request.size"),
        "the reason: {dead}"
    );
    let errors = text_of(&dom[dom.find("id=\"errors\"").unwrap()..]);
    assert!(
        errors.contains("404 POST /v1/instances/main/topics/refunds/events"),
        "{errors}"
    );

    // A screenshot, as a person sees it.
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,1100",
        ],
        &url,
        profile.path(),
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );

    drop(gateway);
}

/// Behind a proxy on the same host every client comes from loopback: a
/// forwarding header takes the loopback pass away, and the page then
/// needs a token with the status permission (basic auth, as a browser
/// sends it, or bearer).
#[test]
fn behind_a_proxy_the_page_needs_a_token_with_the_status_permission() {
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (ops, app) = (token::new_token(), token::new_token());
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "{addr}"
[spool]
dir = "{spool}"
[instances.main]
"bootstrap.servers" = "127.0.0.1:{port}"
[instances.main.topics.orders]
[[tokens]]
name = "ops"
sha256 = "{ops}"
allow = []
permissions = ["status"]
[[tokens]]
name = "app"
sha256 = "{app}"
allow = ["main/orders"]
"#,
            spool = dir.path().join("spool").display(),
            port = free_port(),
            ops = token::sha256_hex(&ops),
            app = token::sha256_hex(&app),
        ),
    )
    .unwrap();
    let _gateway = start_gateway(&config, addr);
    let get = |headers: &[(&str, &str)]| request(addr, "GET", "/", headers, b"").unwrap();
    let direct = get(&[]);
    assert_eq!(direct.status, 200);
    assert!(direct
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let proxied = ("X-Forwarded-For", "203.0.113.9");
    let refused = get(&[proxied]);
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Basic realm=\"herald gateway status\"")
    );
    assert!(
        refused.detail().contains("permissions = [\"status\"]"),
        "{}",
        refused.body
    );
    let app_bearer = format!("Bearer {app}");
    let forbidden = get(&[proxied, ("Authorization", &app_bearer)]);
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("ops:{ops}"))
    );
    let ok = get(&[("Via", "1.1 nginx"), ("Authorization", &basic)]);
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("data-instance=\"main\""), "{}", ok.body);
    // The page never shows a token.
    assert!(!ok.body.contains(&ops) && !ok.body.contains(&app));
}
