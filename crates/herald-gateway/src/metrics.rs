//! `GET /metrics` in Prometheus's text format: events accepted per
//! instance and topic, HTTP answers by status, how long requests take, and
//! each instance's spool (backlog, bytes, delivered, dead letters).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Bucket bounds of the request-time histogram, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram in Prometheus's cumulative form.
#[derive(Debug, Default)]
struct Histogram {
    /// Per bucket (and +Inf last), the count of observations at most that long.
    buckets: [u64; BUCKETS.len() + 1],
    sum_seconds: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, took: Duration) {
        let s = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.buckets[i] += 1;
            }
        }
        self.buckets[BUCKETS.len()] += 1;
        self.sum_seconds += s;
        self.count += 1;
    }

    fn render(&self, o: &mut String, name: &str, help: &str) {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(o, "{name}_bucket{{le=\"{b}\"}} {}", self.buckets[i]);
        }
        let _ = writeln!(
            o,
            "{name}_bucket{{le=\"+Inf\"}} {}",
            self.buckets[BUCKETS.len()]
        );
        let _ = writeln!(o, "{name}_sum {}", self.sum_seconds);
        let _ = writeln!(o, "{name}_count {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    accepted: BTreeMap<(String, String), u64>,
    answers: BTreeMap<u16, u64>,
    requests: Histogram,
    deliveries: Histogram,
}

/// A per-instance spool figure: name, type, help, and how to read it.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&SpoolFigures) -> u64,
);

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// An instance's spool figures, read when rendering.
pub struct SpoolFigures {
    pub backlog_records: u64,
    pub disk_bytes: u64,
    pub delivered: u64,
    pub dead_letters: u64,
    /// Milliseconds since the oldest event still waiting for Kafka was
    /// accepted (0 when none waits).
    pub oldest_age_ms: u64,
    /// Whether the last probe of the instance's Kafka succeeded.
    pub connected: bool,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `n` events of `instance`/`topic` stored in the spool.
    pub fn accepted(&self, instance: &str, topic: &str, n: u64) {
        *self
            .lock()
            .accepted
            .entry((instance.to_string(), topic.to_string()))
            .or_default() += n;
    }

    /// A request answered with `status` after `took`.
    pub fn answered(&self, status: u16, took: Duration) {
        let mut m = self.lock();
        *m.answers.entry(status).or_default() += 1;
        m.requests.observe(took);
    }

    /// A `wait=true` request's events all acknowledged by Kafka, `took`
    /// after they were accepted.
    pub fn delivery(&self, took: Duration) {
        self.lock().deliveries.observe(took);
    }

    /// The text exposition, with the spools' figures by instance.
    pub fn render(&self, spools: &[(String, SpoolFigures)]) -> String {
        let m = self.lock();
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# HELP herald_gateway_events_accepted_total Events stored in an instance's spool."
        );
        let _ = writeln!(o, "# TYPE herald_gateway_events_accepted_total counter");
        for ((i, t), n) in &m.accepted {
            let _ = writeln!(
                o,
                "herald_gateway_events_accepted_total{{instance=\"{i}\",topic=\"{t}\"}} {n}"
            );
        }
        let _ = writeln!(
            o,
            "# HELP herald_gateway_http_requests_total HTTP requests answered, by status."
        );
        let _ = writeln!(o, "# TYPE herald_gateway_http_requests_total counter");
        for (s, n) in &m.answers {
            let _ = writeln!(
                o,
                "herald_gateway_http_requests_total{{status=\"{s}\"}} {n}"
            );
        }
        m.requests.render(
            &mut o,
            "herald_gateway_request_seconds",
            "Time from request to answer.",
        );
        m.deliveries.render(
            &mut o,
            "herald_gateway_delivery_seconds",
            "wait=true requests: time from storing the events to Kafka acknowledging all.",
        );
        let gauges: [Family; 6] = [
            (
                "herald_gateway_kafka_connected",
                "gauge",
                "1 when the last probe of the instance's Kafka succeeded.",
                |f| f.connected as u64,
            ),
            (
                "herald_gateway_spool_oldest_age_seconds",
                "gauge",
                "Age of the oldest event still waiting for Kafka (0: none waits).",
                |f| f.oldest_age_ms / 1000,
            ),
            (
                "herald_gateway_spool_backlog_records",
                "gauge",
                "Events in the spool not yet delivered.",
                |f| f.backlog_records,
            ),
            (
                "herald_gateway_spool_disk_bytes",
                "gauge",
                "Bytes of the spool's segments on disk.",
                |f| f.disk_bytes,
            ),
            (
                "herald_gateway_spool_delivered_total",
                "counter",
                "Events Kafka acknowledged since the start.",
                |f| f.delivered,
            ),
            (
                "herald_gateway_spool_dead_letters_total",
                "counter",
                "Events set aside as dead letters since the start.",
                |f| f.dead_letters,
            ),
        ];
        for (name, kind, help, get) in gauges {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} {kind}");
            for (i, f) in spools {
                let _ = writeln!(o, "{name}{{instance=\"{i}\"}} {}", get(f));
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_the_histogram_render_in_the_text_format() {
        let m = Metrics::default();
        m.accepted("main", "orders", 3);
        m.accepted("main", "orders", 2);
        m.answered(202, Duration::from_micros(700));
        m.answered(401, Duration::from_secs(20));
        m.delivery(Duration::from_millis(3));
        let text = m.render(&[(
            "main".into(),
            SpoolFigures {
                backlog_records: 4,
                disk_bytes: 100,
                delivered: 1,
                dead_letters: 0,
                oldest_age_ms: 7_500,
                connected: false,
            },
        )]);
        for line in [
            "herald_gateway_events_accepted_total{instance=\"main\",topic=\"orders\"} 5",
            "herald_gateway_http_requests_total{status=\"202\"} 1",
            "herald_gateway_request_seconds_bucket{le=\"0.0005\"} 0",
            "herald_gateway_request_seconds_bucket{le=\"0.001\"} 1",
            "herald_gateway_request_seconds_bucket{le=\"10\"} 1",
            "herald_gateway_request_seconds_bucket{le=\"+Inf\"} 2",
            "herald_gateway_request_seconds_count 2",
            "herald_gateway_spool_backlog_records{instance=\"main\"} 4",
            "herald_gateway_delivery_seconds_bucket{le=\"0.0025\"} 0",
            "herald_gateway_delivery_seconds_bucket{le=\"0.005\"} 1",
            "herald_gateway_delivery_seconds_count 1",
            "herald_gateway_spool_oldest_age_seconds{instance=\"main\"} 7",
            "herald_gateway_kafka_connected{instance=\"main\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
