//! The producer's view of the cluster: brokers, and each topic's partitions
//! and leaders. Updated from Metadata responses; read by `send` (partition
//! counts) and by the senders (leaders).

use std::collections::HashMap;
use std::time::Instant;

use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::MetadataResponse;

use crate::error::{code, Error, KafkaCode, TopicPartition};

/// One broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Broker (node) id.
    pub id: i32,
    /// `host:port`.
    pub addr: String,
}

/// One topic as the cluster describes it.
#[derive(Debug, Clone, Default)]
pub struct TopicInfo {
    /// The leader of each partition, by index; -1 when there is none.
    pub leaders: Vec<i32>,
    /// A topic-level error (for example UNKNOWN_TOPIC_OR_PARTITION).
    pub error: Option<KafkaCode>,
}

/// A snapshot of cluster metadata, as returned by [`crate::Producer::fetch_metadata`].
#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    /// Known brokers.
    pub brokers: Vec<BrokerInfo>,
    /// Topics by name.
    pub topics: HashMap<String, TopicInfo>,
    /// The controller's broker id, if reported.
    pub controller_id: Option<i32>,
}

impl ClusterMetadata {
    /// Address of a broker by id.
    pub fn broker_addr(&self, id: i32) -> Option<&str> {
        self.brokers
            .iter()
            .find(|b| b.id == id)
            .map(|b| b.addr.as_str())
    }

    /// Leader of a partition, if known and reachable: a leader missing
    /// from the broker list (a broker that is down, as some clusters report
    /// it) counts as no leader, so that metadata is refreshed until it is
    /// back rather than records waiting on an address nobody knows.
    pub fn leader(&self, tp: &TopicPartition) -> Option<i32> {
        self.topics
            .get(&*tp.topic)
            .and_then(|t| t.leaders.get(tp.partition as usize))
            .copied()
            .filter(|l| *l >= 0 && self.broker_addr(*l).is_some())
    }

    /// Partition count of a usable topic.
    pub fn partitions(&self, topic: &str) -> Option<usize> {
        self.topics
            .get(topic)
            .filter(|t| t.error.is_none() && !t.leaders.is_empty())
            .map(|t| t.leaders.len())
    }
}

/// What `send` reads per record about a usable topic, kept beside
/// `ClusterMetadata` and looked up with a fast hash (the keys are the
/// application's own topic names).
#[derive(Debug)]
struct Usable {
    partitions: usize,
    /// Partitions whose leader is known and listed: where the sticky
    /// partitioner may put keyless records (empty: all of them).
    available: Vec<i32>,
}

/// The metadata cache and its refresh bookkeeping.
#[derive(Debug)]
pub(crate) struct Metadata {
    pub cluster: ClusterMetadata,
    usable: HashMap<String, Usable, rustc_hash::FxBuildHasher>,
    /// Topics that `send` is waiting for, until when.
    pub wanted: HashMap<String, Instant>,
    /// When each topic was last asked about by a `send` that had to wait
    /// for it (the start of its idle time if no record ever follows).
    pub touched: HashMap<String, Instant>,
    /// A refresh is due as soon as possible.
    pub refresh_requested: bool,
    /// The last TLS or authentication refusal, kept until a refresh
    /// succeeds: later attempts may fail otherwise (a broker that refused
    /// credentials may just close the next connections), and `send` must
    /// still say what to fix.
    pub security_error: Option<Error>,
    pub last_refresh: Option<Instant>,
    /// The broker that gave the current metadata, for error messages.
    pub answered_by: String,
    /// Why the last refresh failed, for error messages.
    pub last_error: Option<Error>,
    /// Bumped on every update, so waiters can tell something changed.
    pub generation: u64,
}

/// Kafka's rules for a topic name (`org.apache.kafka.common.internals.Topic`):
/// 1 to 249 characters of ASCII letters, digits, `.`, `_` and `-`, and not
/// `.` or `..`. A name that breaks them can never be created or written.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    let problem = if name.is_empty() {
        Some("is empty".to_string())
    } else if name == "." || name == ".." {
        Some("cannot be `.` or `..`".to_string())
    } else if name.len() > 249 {
        Some(format!(
            "is {} characters long; at most 249 are allowed",
            name.len()
        ))
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .map(|c| {
                format!(
                    "contains {c:?}; the legal characters are ASCII letters, digits, `.`, `_` and `-`"
                )
            })
    };
    match problem {
        Some(p) => Err(format!(
            "topic `{name}` is not a valid Kafka topic name: it {p}"
        )),
        None => Ok(()),
    }
}

/// The largest partition count herald accepts from a broker for one topic.
/// Kafka's own guidance is a few thousand per broker and a cluster-wide
/// limit in the hundreds of thousands; a larger number is a broken or
/// hostile answer, and `send` would size per-topic state by it.
const MAX_PARTITIONS: usize = 1 << 20;

/// Check a Metadata response's brokers (its shape was checked when it was
/// decoded): each with an id, host and port, no id twice. A problem here
/// refuses the whole response, so the old metadata is kept.
pub(crate) fn check_brokers(resp: &MetadataResponse) -> Result<(), String> {
    let mut ids = std::collections::HashSet::new();
    for b in &resp.brokers {
        if b.node_id.0 < 0 || !ids.insert(b.node_id.0) {
            return Err(format!(
                "broker id {} is negative or listed twice",
                b.node_id.0
            ));
        }
        if b.host.is_empty() || !(1..=65535).contains(&b.port) {
            return Err(format!(
                "broker {} has host `{}` and port {}",
                b.node_id.0,
                b.host.as_str(),
                b.port
            ));
        }
    }
    Ok(())
}

/// Check one topic's values: partition indices exactly `0..n` once each,
/// `n` at most `MAX_PARTITIONS`, leader ids -1 or a broker id. A topic
/// that fails keeps its old entry; the others are applied.
pub(crate) fn check_topic(t: &MetadataResponseTopic) -> Result<(), String> {
    let name = t.name.as_ref().map_or("", |n| n.0.as_str());
    let n = t.partitions.len();
    if n > MAX_PARTITIONS {
        return Err(format!(
            "topic `{name}` has {n} partitions, more than {MAX_PARTITIONS}"
        ));
    }
    let mut seen = vec![false; n];
    for p in &t.partitions {
        let i = p.partition_index;
        if i < 0 || i as usize >= n || std::mem::replace(&mut seen[i as usize], true) {
            return Err(format!(
                "topic `{name}` lists partition {i} among {n} partitions: indices must be 0..{n}, each once"
            ));
        }
        if p.leader_id.0 < -1 {
            return Err(format!(
                "topic `{name}` partition {i} has leader {}",
                p.leader_id.0
            ));
        }
    }
    Ok(())
}

impl Metadata {
    pub(crate) fn new() -> Self {
        Self {
            cluster: ClusterMetadata::default(),
            usable: HashMap::default(),
            wanted: HashMap::new(),
            touched: HashMap::new(),
            refresh_requested: true,
            security_error: None,
            last_refresh: None,
            answered_by: String::new(),
            last_error: None,
            generation: 0,
        }
    }

    /// Partition count of a usable topic (what `ClusterMetadata::partitions`
    /// says, looked up faster).
    pub(crate) fn partitions(&self, topic: &str) -> Option<usize> {
        self.usable.get(topic).map(|u| u.partitions)
    }

    /// The partitions of `topic` with a known leader, for keyless records
    /// (empty: none known, any partition will do).
    pub(crate) fn available(&self, topic: &str) -> &[i32] {
        self.usable.get(topic).map_or(&[], |u| &u.available)
    }

    /// An error for `topic` that waiting for metadata cannot fix: the
    /// cluster said the client may not use it, or that it is not a valid
    /// topic (the Java client fails `send` on these at once too).
    pub(crate) fn fatal_topic_error(&self, topic: &str) -> Option<Error> {
        let c = self.cluster.topics.get(topic)?.error?;
        let what = match c.0 {
            code::TOPIC_AUTHORIZATION_FAILED => {
                "this client may not write to it; check the topic's ACLs (Write and Describe) \
                 for the principal herald authenticates as"
            }
            code::INVALID_TOPIC_EXCEPTION => "the cluster says it is not a valid topic name",
            _ => return None,
        };
        Some(Error::Broker {
            code: c,
            partition: None,
            broker: self.answered_by.clone(),
            message: Some(format!("topic `{topic}`: {what}")),
        })
    }

    /// Merge a Metadata response from `broker`, after checking its values.
    /// Impossible brokers refuse the whole response (nothing changes);
    /// an impossible topic keeps its old entry while the others are
    /// applied. Either way the error says why. Topics not in the response
    /// keep their old entry.
    pub(crate) fn update(
        &mut self,
        resp: &MetadataResponse,
        broker: &str,
        now: Instant,
    ) -> Result<(), Error> {
        let refused = |problem: String| Error::Protocol {
            broker: broker.to_string(),
            message: format!("refused its metadata: {problem}"),
        };
        check_brokers(resp).map_err(refused)?;
        let mut bad_topic = None;
        self.cluster.brokers = resp
            .brokers
            .iter()
            .map(|b| BrokerInfo {
                id: b.node_id.0,
                addr: format!("{}:{}", b.host.as_str(), b.port),
            })
            .collect();
        self.cluster.controller_id = Some(resp.controller_id.0).filter(|c| *c >= 0);
        for t in &resp.topics {
            let Some(name) = &t.name else { continue };
            if let Err(problem) = check_topic(t) {
                bad_topic.get_or_insert(problem);
                continue;
            }
            let name = name.0.as_str().to_string();
            let mut info = TopicInfo {
                leaders: vec![-1; t.partitions.len()],
                error: (t.error_code != code::NONE).then_some(KafkaCode(t.error_code)),
            };
            for p in &t.partitions {
                info.leaders[p.partition_index as usize] = p.leader_id.0;
            }
            if info.error.is_none() {
                self.wanted.remove(&name);
            }
            match info.error.is_none() && !info.leaders.is_empty() {
                true => {
                    let available = (0..info.leaders.len() as i32)
                        .filter(|p| {
                            self.cluster
                                .broker_addr(info.leaders[*p as usize])
                                .is_some()
                        })
                        .collect();
                    self.usable.insert(
                        name.clone(),
                        Usable {
                            partitions: info.leaders.len(),
                            available,
                        },
                    )
                }
                false => self.usable.remove(&name),
            };
            self.cluster.topics.insert(name, info);
        }
        debug_assert!(self
            .cluster
            .topics
            .keys()
            .all(|t| self.cluster.partitions(t) == self.partitions(t)));
        self.answered_by = broker.to_string();
        self.security_error = None;
        self.generation += 1;
        if let Some(problem) = bad_topic {
            // Asked again after a backoff, as a failed refresh is.
            return Err(refused(problem));
        }
        self.last_refresh = Some(now);
        self.last_error = None;
        self.refresh_requested = false;
        Ok(())
    }

    /// Forget topics (idle for `metadata.max.idle.ms`): they are no longer
    /// asked about, and their entries are freed.
    pub(crate) fn forget(&mut self, topics: &[String]) {
        for t in topics {
            self.cluster.topics.remove(t);
            self.usable.remove(t);
            self.touched.remove(t);
        }
        self.cluster.topics.shrink_to_fit();
        self.usable.shrink_to_fit();
        self.touched.shrink_to_fit();
        self.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn response(indices: &[i32], leader: i32) -> MetadataResponse {
        MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(0))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(9092)])
            .with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                .with_partitions(
                    indices
                        .iter()
                        .map(|i| {
                            MetadataResponsePartition::default()
                                .with_partition_index(*i)
                                .with_leader_id(BrokerId(leader))
                        })
                        .collect(),
                )])
    }

    /// Finding 3: impossible values are refused before anything is sized
    /// by them, with the reason, and the metadata in use is kept.
    #[test]
    fn impossible_values_are_refused_and_the_old_metadata_kept() {
        let mut m = Metadata::new();
        let now = Instant::now();
        m.update(&response(&[1, 0], 0), "b:1", now).unwrap();
        assert_eq!(m.partitions("t"), Some(2), "indices in any order");
        assert_eq!(m.available("t"), &[0, 1]);
        for (indices, leader) in [
            (&[i32::MAX][..], 0),
            (&[0, 1 << 28], 0),
            (&[-1, 0, 1], 0),
            (&[0, 2], 0),
            (&[0, 0, 1], 0),
            (&[0], -7),
        ] {
            let e = m
                .update(&response(indices, leader), "b:1", now)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("b:1") && e.contains("refused its metadata"),
                "{e}"
            );
            assert_eq!(m.partitions("t"), Some(2), "{indices:?}: kept");
        }
        // One impossible topic beside a good one: the good one is applied.
        let mut two = response(&[0, 7], 0);
        two.topics.push(
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("u"))))
                .with_partitions(vec![MetadataResponsePartition::default()
                    .with_partition_index(0)
                    .with_leader_id(BrokerId(0))]),
        );
        assert!(m.update(&two, "b:1", now).is_err());
        assert_eq!((m.partitions("t"), m.partitions("u")), (Some(2), Some(1)));
        let bad_broker = response(&[0], 0).with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(0))
            .with_host(StrBytes::from_static_str("h"))
            .with_port(70_000)]);
        assert!(m.update(&bad_broker, "b:1", now).is_err());
        // A leader that is not a listed broker: usable, not available.
        m.update(&response(&[0, 1], 5), "b:1", now).unwrap();
        assert_eq!(m.partitions("t"), Some(2));
        assert!(m.available("t").is_empty());
    }

    #[test]
    fn topic_names_follow_kafkas_rules() {
        assert!(check_topic_name("orders.v1_eu-west").is_ok());
        for bad in ["", ".", "..", "my topic", "é", &"x".repeat(250)] {
            let e = check_topic_name(bad).unwrap_err();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }
}
