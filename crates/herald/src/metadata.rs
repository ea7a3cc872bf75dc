//! The producer's view of the cluster: brokers, and each topic's partitions
//! and leaders. Updated from Metadata responses; read by `send` (partition
//! counts) and by the senders (leaders).

use std::collections::HashMap;
use std::time::Instant;

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

/// The metadata cache and its refresh bookkeeping.
#[derive(Debug)]
pub(crate) struct Metadata {
    pub cluster: ClusterMetadata,
    /// Partition counts of the usable topics in `cluster`, kept beside it
    /// because `send` asks for one per record: a fast hash, not SipHash
    /// (the keys are the application's own topic names).
    usable: HashMap<String, usize, rustc_hash::FxBuildHasher>,
    /// Topics that `send` is waiting for, until when.
    pub wanted: HashMap<String, Instant>,
    /// A refresh is due as soon as possible.
    pub refresh_requested: bool,
    /// The last TLS or authentication refusal, kept until a refresh
    /// succeeds: later attempts may fail otherwise (a broker that refused
    /// credentials may just close the next connections), and `send` must
    /// still say what to fix.
    pub security_error: Option<Error>,
    pub last_refresh: Option<Instant>,
    /// Why the last refresh failed, for error messages.
    pub last_error: Option<Error>,
    /// Bumped on every update, so waiters can tell something changed.
    pub generation: u64,
}

impl Metadata {
    pub(crate) fn new() -> Self {
        Self {
            cluster: ClusterMetadata::default(),
            usable: HashMap::default(),
            wanted: HashMap::new(),
            refresh_requested: true,
            security_error: None,
            last_refresh: None,
            last_error: None,
            generation: 0,
        }
    }

    /// Partition count of a usable topic (what `ClusterMetadata::partitions`
    /// says, looked up faster).
    pub(crate) fn partitions(&self, topic: &str) -> Option<usize> {
        self.usable.get(topic).copied()
    }

    /// Merge a Metadata response. Topics not in it keep their old entry.
    pub(crate) fn update(&mut self, resp: &MetadataResponse, now: Instant) {
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
            let name = name.0.as_str().to_string();
            let mut info = TopicInfo {
                leaders: Vec::new(),
                error: (t.error_code != code::NONE).then_some(KafkaCode(t.error_code)),
            };
            let n = t
                .partitions
                .iter()
                .map(|p| p.partition_index + 1)
                .max()
                .unwrap_or(0)
                .max(0) as usize;
            info.leaders = vec![-1; n];
            for p in &t.partitions {
                if p.partition_index >= 0 {
                    info.leaders[p.partition_index as usize] = p.leader_id.0;
                }
            }
            if info.error.is_none() {
                self.wanted.remove(&name);
            }
            match info.error.is_none() && !info.leaders.is_empty() {
                true => self.usable.insert(name.clone(), info.leaders.len()),
                false => self.usable.remove(&name),
            };
            self.cluster.topics.insert(name, info);
        }
        debug_assert!(self
            .cluster
            .topics
            .keys()
            .all(|t| self.cluster.partitions(t) == self.partitions(t)));
        self.last_refresh = Some(now);
        self.last_error = None;
        self.security_error = None;
        self.refresh_requested = false;
        self.generation += 1;
    }
}
