//! `GET /`: the operator's status page, HTML and CSS from the binary (no
//! external asset), refreshing itself every 2 s: each instance with its
//! Kafka state, error and brokers; each topic with events accepted and
//! delivered per second (over the last 10 s) and in total; the spool's
//! backlog and the age of its oldest event; the last dead letters with
//! their reason; the last failed requests.
//!
//! Who may read it is a pure decision ([`may_view`]): loopback clients not
//! behind a proxy, or a token with the `status` permission, presented as a
//! bearer token or as the password of HTTP basic auth (what a browser can
//! send).

use std::collections::VecDeque;
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use base64::Engine;

use crate::config::TokenRule;

/// How many dead letters and errors the page keeps.
const KEEP: usize = 20;
/// The window the per-second rates are taken over.
const WINDOW: Duration = Duration::from_secs(10);

/// A dead letter, as the page shows it.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetter {
    pub at_ms: i64,
    pub instance: String,
    pub topic: String,
    pub reason: String,
}

/// A failed request, as the page shows it.
#[derive(Debug, Clone)]
pub(crate) struct ErrorLine {
    pub at_ms: i64,
    pub status: u16,
    pub method: String,
    pub path: String,
    pub detail: String,
}

/// The last dead letters and failed requests (rare events: a lock is fine).
#[derive(Debug, Default)]
pub(crate) struct Recent {
    dead: Mutex<VecDeque<DeadLetter>>,
    errors: Mutex<VecDeque<ErrorLine>>,
}

fn keep<T>(q: &Mutex<VecDeque<T>>, item: T) {
    let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
    if q.len() == KEEP {
        q.pop_front();
    }
    q.push_back(item);
}

impl Recent {
    pub fn dead_letter(&self, d: DeadLetter) {
        keep(&self.dead, d);
    }

    pub fn error(&self, e: ErrorLine) {
        keep(&self.errors, e);
    }

    fn snapshot(&self) -> (Vec<DeadLetter>, Vec<ErrorLine>) {
        let d = self.dead.lock().unwrap_or_else(|e| e.into_inner());
        let e = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        (
            d.iter().rev().cloned().collect(),
            e.iter().rev().cloned().collect(),
        )
    }
}

/// Samples of the topic counters (one a second), for rates.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    samples: Mutex<VecDeque<(Instant, Vec<[u64; 3]>)>>,
}

impl Rates {
    /// Add a sample of the counters (in `Metrics::topic_totals` order).
    pub fn sample(&self, at: Instant, totals: Vec<[u64; 3]>) {
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.push_back((at, totals));
        while s.len() > 2
            && s.front()
                .is_some_and(|(t, _)| at.duration_since(*t) > WINDOW)
        {
            s.pop_front();
        }
    }

    /// Per topic: accepted and delivered per second over the window.
    fn per_second(&self) -> Vec<(f64, f64)> {
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let (Some((t0, first)), Some((t1, last))) = (s.front(), s.back()) else {
            return Vec::new();
        };
        let dt = t1.duration_since(*t0).as_secs_f64();
        if dt <= 0.0 {
            return vec![(0.0, 0.0); last.len()];
        }
        first
            .iter()
            .zip(last)
            .map(|(a, b)| {
                (
                    b[0].saturating_sub(a[0]) as f64 / dt,
                    b[1].saturating_sub(a[1]) as f64 / dt,
                )
            })
            .collect()
    }
}

/// Why the page is refused: the status, what to do, and whether to ask
/// the browser for credentials.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub detail: &'static str,
    pub challenge: bool,
}

/// Whether a client at `peer` presenting `authorization` may read the
/// page: a loopback client that did not come through a proxy (`proxied`:
/// the request has `Forwarded`, `X-Forwarded-For`, `X-Real-IP` or `Via`,
/// so the real client is elsewhere: a reverse proxy or sidecar on the same
/// host connects from loopback); otherwise a token with the status
/// permission.
pub(crate) fn may_view(
    peer: Option<IpAddr>,
    proxied: bool,
    authorization: Option<&str>,
    tokens: &[TokenRule],
) -> Result<(), Refusal> {
    if !proxied && peer.is_some_and(|p| p.to_canonical().is_loopback()) {
        return Ok(());
    }
    // Authentication schemes are case-insensitive (RFC 9110).
    let scheme = |a: &'_ str, s: &str| -> Option<String> {
        a.get(..s.len())
            .filter(|p| p.eq_ignore_ascii_case(s))
            .map(|_| a[s.len()..].trim().to_string())
    };
    let token = authorization.and_then(|a| {
        if let Some(b) = scheme(a, "Bearer ") {
            return Some(b);
        }
        let encoded = scheme(a, "Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        text.split_once(':')
            .map(|(_, password)| password.to_string())
    });
    let Some(token) = token else {
        return Err(Refusal {
            status: StatusCode::UNAUTHORIZED,
            detail: "the status page is for loopback clients, or for a token with the status \
                     permission (permissions = [\"status\"]): give it as the password of basic \
                     auth, or as a bearer token",
            challenge: true,
        });
    };
    let digest = crate::token::digest(&token);
    match tokens.iter().find(|t| t.sha256 == digest) {
        Some(t) if t.status => Ok(()),
        Some(_) => Err(Refusal {
            status: StatusCode::FORBIDDEN,
            detail: "this token may not read the status page: add permissions = [\"status\"] \
                     to its [[tokens]] entry",
            challenge: false,
        }),
        None => Err(Refusal {
            status: StatusCode::UNAUTHORIZED,
            detail: "unknown token: the status page takes a token with the status permission",
            challenge: true,
        }),
    }
}

/// One instance as the page shows it.
pub(crate) struct InstanceView {
    pub name: String,
    pub brokers: Vec<String>,
    /// `connected`, `unreachable` or `unknown`.
    pub state: &'static str,
    pub error: Option<String>,
    pub fallback: &'static str,
    pub backlog: u64,
    pub disk_bytes: u64,
    pub oldest_age_ms: Option<i64>,
    pub halted: Option<String>,
    /// topic, accepted/s, delivered/s, accepted, delivered, dead letters.
    pub topics: Vec<(String, f64, f64, [u64; 3])>,
}

/// Everything the page shows.
pub(crate) struct View {
    pub now_ms: i64,
    pub up: Duration,
    pub listen: String,
    pub draining: bool,
    pub instances: Vec<InstanceView>,
    pub dead: Vec<DeadLetter>,
    pub errors: Vec<ErrorLine>,
}

/// The page's view from the gateway's state.
pub(crate) fn view(gw: &crate::server::Gateway, now_ms: i64) -> View {
    let rates = gw.rates.per_second();
    let totals = gw.metrics.topic_totals();
    let mut instances = Vec::new();
    for (name, inst) in &gw.cfg.instances {
        let lane = &gw.lanes[name];
        let s = lane.spool.stats();
        let (state, error) = match lane.probe.link() {
            crate::probe::Link::Unknown => ("unknown", None),
            crate::probe::Link::Up => ("connected", None),
            crate::probe::Link::Down(why) => ("unreachable", Some(why)),
        };
        let topics = totals
            .iter()
            .enumerate()
            .filter(|(_, (i, _, _))| *i == name.as_str())
            .map(|(k, (_, t, counts))| {
                let (a, d) = rates.get(k).copied().unwrap_or((0.0, 0.0));
                (t.to_string(), a, d, *counts)
            })
            .collect();
        instances.push(InstanceView {
            name: name.clone(),
            brokers: inst.producer.bootstrap_servers.clone(),
            state,
            error,
            fallback: match inst.fallback {
                crate::Fallback::Spool => "spool",
                crate::Fallback::None => "none",
            },
            backlog: s.backlog_records,
            disk_bytes: s.disk_bytes,
            oldest_age_ms: s.oldest_timestamp_ms.map(|t| (now_ms - t).max(0)),
            halted: lane.spool.forwarding_halted(),
            topics,
        });
    }
    let (dead, errors) = gw.recent.snapshot();
    View {
        now_ms,
        up: gw.started.elapsed(),
        listen: gw.cfg.listen.to_string(),
        draining: gw.draining.load(std::sync::atomic::Ordering::Relaxed),
        instances,
        dead,
        errors,
    }
}

/// HTML-escaped text.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// `1 h 3 min`, `12 s`, for ages.
fn age(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn clock(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

const STYLE: &str = "
:root{color-scheme:light dark;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--line:#d0d7de}
body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:72rem;padding:0 1rem}
h1{font-size:1.4rem;margin:0}h2{font-size:1.15rem;margin:.2rem 0}
header p,.muted{color:#57606a;margin:.2rem 0}
section{border:1px solid var(--line);border-radius:8px;padding:.8rem 1rem;margin:1rem 0}
section.down{border-color:var(--bad)}
.state{font-size:.8rem;font-weight:600;padding:.1rem .5rem;border-radius:1rem;color:#fff;vertical-align:middle}
.connected{background:var(--ok)}.unreachable{background:var(--bad)}.unknown{background:var(--warn)}
.error{color:var(--bad);font-family:ui-monospace,monospace;white-space:pre-wrap;margin:.3rem 0}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;padding:.25rem .6rem;border-bottom:1px solid var(--line)}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content auto;gap:.1rem 1rem;margin:.4rem 0}dt{color:#57606a}dd{margin:0}
code{font-family:ui-monospace,monospace}
";

/// The page.
pub(crate) fn render(v: &View) -> String {
    let mut o = String::with_capacity(8192);
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"2\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\">\
         <title>herald gateway</title><style>{STYLE}</style></head><body>\
         <header><h1>herald gateway</h1><p>listening on <code>{}</code> · up {} · \
         {} at {} UTC · this page refreshes every 2 s</p></header>",
        esc(&v.listen),
        age(v.up.as_millis() as i64),
        if v.draining {
            "<strong>shutting down</strong>"
        } else {
            "serving"
        },
        clock(v.now_ms),
    );
    for i in &v.instances {
        let down = i.state == "unreachable";
        let _ = write!(
            o,
            "<section class=\"instance{}\" id=\"instance-{name}\" data-instance=\"{name}\" \
             data-state=\"{state}\"><h2>{name} <span class=\"state {state}\">{state}</span></h2>\
             <p class=\"muted\">brokers <code class=\"brokers\">{}</code> · fallback {}</p>",
            if down { " down" } else { "" },
            esc(&i.brokers.join(", ")),
            i.fallback,
            name = esc(&i.name),
            state = i.state,
        );
        if let Some(e) = &i.error {
            let _ = write!(o, "<p class=\"error\">{}</p>", esc(e));
        }
        if let Some(h) = &i.halted {
            let _ = write!(o, "<p class=\"error\">forwarding stopped: {}</p>", esc(h));
        }
        let _ = write!(
            o,
            "<dl><dt>spool backlog</dt><dd class=\"backlog\" data-backlog=\"{b}\">{b} event{}</dd>\
             <dt>oldest waiting</dt><dd class=\"oldest\">{}</dd><dt>spool on disk</dt><dd>{} KiB</dd></dl>",
            if i.backlog == 1 { "" } else { "s" },
            i.oldest_age_ms.map_or("none".to_string(), age),
            i.disk_bytes.div_ceil(1024),
            b = i.backlog,
        );
        o.push_str(
            "<table class=\"topics\"><thead><tr><th>topic</th><th class=\"n\">accepted/s</th>\
             <th class=\"n\">delivered/s</th><th class=\"n\">accepted</th><th class=\"n\">delivered</th>\
             <th class=\"n\">dead letters</th></tr></thead><tbody>",
        );
        for (t, a, d, c) in &i.topics {
            let _ = write!(
                o,
                "<tr data-topic=\"{t}\"><td>{t}</td><td class=\"n\">{a:.1}</td><td class=\"n\">{d:.1}</td>\
                 <td class=\"n accepted\">{}</td><td class=\"n delivered\">{}</td><td class=\"n dead\">{}</td></tr>",
                c[0],
                c[1],
                c[2],
                t = esc(t),
            );
        }
        o.push_str("</tbody></table></section>");
    }
    o.push_str("<section id=\"dead-letters\"><h2>Dead letters</h2>");
    if v.dead.is_empty() {
        o.push_str("<p class=\"muted\">none since the gateway started</p>");
    } else {
        o.push_str("<table><thead><tr><th>at (UTC)</th><th>instance</th><th>topic</th><th>reason</th></tr></thead><tbody>");
        for d in &v.dead {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"error\">{}</td></tr>",
                clock(d.at_ms),
                esc(&d.instance),
                esc(&d.topic),
                esc(&d.reason)
            );
        }
        o.push_str("</tbody></table>");
    }
    o.push_str("</section><section id=\"errors\"><h2>Last errors</h2>");
    if v.errors.is_empty() {
        o.push_str("<p class=\"muted\">no failed request since the gateway started</p>");
    } else {
        o.push_str("<table><thead><tr><th>at (UTC)</th><th>status</th><th>request</th><th>detail</th></tr></thead><tbody>");
        for e in &v.errors {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td><code>{} {}</code></td><td>{}</td></tr>",
                clock(e.at_ms),
                e.status,
                esc(&e.method),
                esc(&e.path),
                esc(&e.detail)
            );
        }
        o.push_str("</tbody></table>");
    }
    o.push_str("</section></body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(token: &str, status: bool) -> TokenRule {
        TokenRule {
            name: "t".into(),
            sha256: crate::token::digest(token),
            allow: vec![],
            rate: None,
            status,
        }
    }

    #[test]
    fn loopback_or_a_token_with_the_status_permission() {
        let tokens = [rule("ops-token", true), rule("app-token", false)];
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let far: IpAddr = "10.1.2.3".parse().unwrap();
        let view = |peer, proxied, auth| may_view(peer, proxied, auth, &tokens);
        assert_eq!(view(Some(lo), false, None), Ok(()));
        assert_eq!(view(Some(lo6), false, None), Ok(()));
        assert_eq!(view(Some(mapped), false, None), Ok(()));
        let r = view(Some(far), false, None).unwrap_err();
        assert_eq!((r.status, r.challenge), (StatusCode::UNAUTHORIZED, true));
        // Through a proxy on this host: loopback is not the client.
        let r = view(Some(lo), true, None).unwrap_err();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(view(Some(lo), true, Some("Bearer ops-token")), Ok(()));
        assert_eq!(view(Some(far), false, Some("Bearer ops-token")), Ok(()));
        assert_eq!(view(Some(far), false, Some("bearer ops-token")), Ok(()));
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ops:ops-token")
        );
        assert_eq!(view(Some(far), false, Some(&basic)), Ok(()));
        let r = view(Some(far), false, Some("Bearer app-token")).unwrap_err();
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.detail.contains("permissions = [\"status\"]"));
        let r = view(Some(far), false, Some("Bearer nope")).unwrap_err();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        // No peer known: not loopback.
        assert!(view(None, false, None).is_err());
    }

    #[test]
    fn rates_over_the_window() {
        let r = Rates::default();
        let t0 = Instant::now();
        r.sample(t0, vec![[0, 0, 0]]);
        r.sample(t0 + Duration::from_secs(2), vec![[200, 100, 0]]);
        assert_eq!(r.per_second(), vec![(100.0, 50.0)]);
        // Samples older than the window are dropped.
        r.sample(t0 + Duration::from_secs(13), vec![[200, 100, 0]]);
        assert_eq!(r.per_second(), vec![(0.0, 0.0)]);
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let v = View {
            now_ms: 3_600_000,
            up: Duration::from_secs(65),
            listen: "127.0.0.1:8080".into(),
            draining: false,
            instances: vec![InstanceView {
                name: "main".into(),
                brokers: vec!["k:9092".into()],
                state: "unreachable",
                error: Some("<script>alert(1)</script>".into()),
                fallback: "spool",
                backlog: 3,
                disk_bytes: 2048,
                oldest_age_ms: Some(12_000),
                halted: None,
                topics: vec![("orders".into(), 1.5, 0.0, [3, 0, 0])],
            }],
            dead: vec![],
            errors: vec![],
        };
        let html = render(&v);
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("data-backlog=\"3\">3 events"));
        assert!(html.contains("12 s"));
        assert!(html.contains("up 1 min 5 s"));
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"2\">"));
    }
}
