//! `GET /metrics` in Prometheus's text format: per instance and topic the
//! events accepted, delivered and dead-lettered and the requests refused
//! (by status); HTTP answers by status; histograms of request time and of
//! delivery time (accepted → acknowledged by Kafka); per instance, Kafka's
//! reachability and the spool (backlog, bytes, oldest waiting event).
//!
//! The counters a request or a delivered record touches are atomics in maps
//! built once from the configuration: no lock and no allocation on those
//! paths (the forwarder reports every record it settles).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Bucket bounds of the histograms, in seconds.
const BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
    600.0, 3600.0,
];

/// A latency histogram in Prometheus's cumulative form.
#[derive(Debug, Default)]
struct Histogram {
    /// Per bucket (and +Inf last), observations at most that long.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, took: Duration) {
        let s = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.buckets[BUCKETS.len()].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(took.as_micros() as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn render(&self, o: &mut String, name: &str, help: &str) {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.buckets[i].load(Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "{name}_bucket{{le=\"+Inf\"}} {}",
            self.buckets[BUCKETS.len()].load(Relaxed)
        );
        let _ = writeln!(
            o,
            "{name}_sum {}",
            self.sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(o, "{name}_count {}", self.count.load(Relaxed));
    }
}

/// One topic's counters.
#[derive(Debug)]
struct TopicCounters {
    accepted: AtomicU64,
    delivered: AtomicU64,
    dead_letters: AtomicU64,
    /// Publish requests refused, by status 100..=599.
    refused: Vec<AtomicU64>,
}

impl Default for TopicCounters {
    fn default() -> Self {
        TopicCounters {
            accepted: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            refused: statuses(),
        }
    }
}

/// A counter per HTTP status, 100..=599.
fn statuses() -> Vec<AtomicU64> {
    (100..600).map(|_| AtomicU64::new(0)).collect()
}

/// A per-topic counter: name, help, and how to read it.
type TopicFamily = (&'static str, &'static str, fn(&TopicCounters) -> u64);

/// A per-instance spool figure: name, type, help, and how to read it.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&SpoolFigures) -> u64,
);

/// The counters.
#[derive(Debug)]
pub struct Metrics {
    /// instance → topic → counters, for the configured ones.
    topics: BTreeMap<String, BTreeMap<String, TopicCounters>>,
    /// Answers by status, 100..=599.
    answers: Vec<AtomicU64>,
    requests: Histogram,
    deliveries: Histogram,
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
    /// Counters for these `(instance, topics)`.
    pub fn new<'a>(instances: impl IntoIterator<Item = (&'a str, Vec<&'a str>)>) -> Metrics {
        Metrics {
            topics: instances
                .into_iter()
                .map(|(i, ts)| {
                    (
                        i.to_string(),
                        ts.into_iter()
                            .map(|t| (t.to_string(), TopicCounters::default()))
                            .collect(),
                    )
                })
                .collect(),
            answers: statuses(),
            requests: Histogram::default(),
            deliveries: Histogram::default(),
        }
    }

    fn topic(&self, instance: &str, topic: &str) -> Option<&TopicCounters> {
        self.topics.get(instance)?.get(topic)
    }

    /// Per configured instance and topic: events accepted, delivered and
    /// dead-lettered so far (for the status page's rates).
    pub fn topic_totals(&self) -> Vec<(&str, &str, [u64; 3])> {
        let mut out = Vec::new();
        for (i, topics) in &self.topics {
            for (t, c) in topics {
                out.push((
                    i.as_str(),
                    t.as_str(),
                    [
                        c.accepted.load(Relaxed),
                        c.delivered.load(Relaxed),
                        c.dead_letters.load(Relaxed),
                    ],
                ));
            }
        }
        out
    }

    /// `n` events of `instance`/`topic` stored in the spool.
    pub fn accepted(&self, instance: &str, topic: &str, n: u64) {
        if let Some(c) = self.topic(instance, topic) {
            c.accepted.fetch_add(n, Relaxed);
        }
    }

    /// The forwarder settled an event of `instance`/`topic`: delivered
    /// `age` after it was accepted, or set aside as a dead letter.
    /// Events of topics no longer configured (left in a spool from an
    /// earlier configuration) are not counted.
    pub fn settled(&self, instance: &str, topic: &str, delivered: bool, age: Option<Duration>) {
        let Some(c) = self.topic(instance, topic) else {
            return;
        };
        if delivered {
            c.delivered.fetch_add(1, Relaxed);
            if let Some(age) = age {
                self.deliveries.observe(age);
            }
        } else {
            c.dead_letters.fetch_add(1, Relaxed);
        }
    }

    /// A request to `instance`/`topic` (both configured) was refused.
    pub fn refused(&self, instance: &str, topic: &str, status: u16) {
        if let Some(c) = self
            .topic(instance, topic)
            .and_then(|c| c.refused.get((status as usize).wrapping_sub(100)))
        {
            c.fetch_add(1, Relaxed);
        }
    }

    /// A request answered with `status` after `took`.
    pub fn answered(&self, status: u16, took: Duration) {
        if let Some(c) = self.answers.get((status as usize).wrapping_sub(100)) {
            c.fetch_add(1, Relaxed);
        }
        self.requests.observe(took);
    }

    /// The text exposition, with the spools' figures by instance.
    pub fn render(&self, spools: &[(String, SpoolFigures)]) -> String {
        let mut o = String::new();
        let per_topic: [TopicFamily; 3] = [
            (
                "herald_gateway_events_accepted_total",
                "Events stored in an instance's spool (answered 202 or 200).",
                |c| c.accepted.load(Relaxed),
            ),
            (
                "herald_gateway_events_delivered_total",
                "Events Kafka acknowledged (since this process started).",
                |c| c.delivered.load(Relaxed),
            ),
            (
                "herald_gateway_events_dead_lettered_total",
                "Events Kafka refused for good, set aside as dead letters.",
                |c| c.dead_letters.load(Relaxed),
            ),
        ];
        for (name, help, get) in per_topic {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} counter");
            for (i, ts) in &self.topics {
                for (t, c) in ts {
                    let _ = writeln!(o, "{name}{{instance=\"{i}\",topic=\"{t}\"}} {}", get(c));
                }
            }
        }
        let _ = writeln!(
            o,
            "# HELP herald_gateway_requests_refused_total Publish requests to a configured topic \
             answered with an error, by status (their events were not stored)."
        );
        let _ = writeln!(o, "# TYPE herald_gateway_requests_refused_total counter");
        for (i, ts) in &self.topics {
            for (t, c) in ts {
                for (s, n) in c.refused.iter().enumerate() {
                    let n = n.load(Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            o,
                            "herald_gateway_requests_refused_total{{instance=\"{i}\",topic=\"{t}\",status=\"{}\"}} {n}",
                            s + 100
                        );
                    }
                }
            }
        }
        let _ = writeln!(
            o,
            "# HELP herald_gateway_http_requests_total HTTP requests answered, by status."
        );
        let _ = writeln!(o, "# TYPE herald_gateway_http_requests_total counter");
        for (i, c) in self.answers.iter().enumerate() {
            let n = c.load(Relaxed);
            if n > 0 {
                let _ = writeln!(
                    o,
                    "herald_gateway_http_requests_total{{status=\"{}\"}} {n}",
                    i + 100
                );
            }
        }
        self.requests.render(
            &mut o,
            "herald_gateway_request_seconds",
            "Time from request to answer.",
        );
        self.deliveries.render(
            &mut o,
            "herald_gateway_delivery_seconds",
            "Time from an event's acceptance to Kafka's acknowledgement.",
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
    fn counters_and_the_histograms_render_in_the_text_format() {
        let m = Metrics::new([("main", vec!["orders", "status"])]);
        m.accepted("main", "orders", 3);
        m.accepted("main", "orders", 2);
        m.accepted("main", "unknown", 7);
        m.answered(202, Duration::from_micros(700));
        m.answered(401, Duration::from_secs(20));
        m.settled("main", "orders", true, Some(Duration::from_millis(3)));
        m.settled("main", "orders", false, None);
        m.refused("main", "status", 429);
        m.refused("main", "status", 429);
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
            "herald_gateway_events_accepted_total{instance=\"main\",topic=\"status\"} 0",
            "herald_gateway_events_delivered_total{instance=\"main\",topic=\"orders\"} 1",
            "herald_gateway_events_dead_lettered_total{instance=\"main\",topic=\"orders\"} 1",
            "herald_gateway_requests_refused_total{instance=\"main\",topic=\"status\",status=\"429\"} 2",
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
        assert!(!text.contains("unknown"), "only configured topics");
    }
}
