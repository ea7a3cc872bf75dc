//! Topic administration (seed 004: "create the topic with partitions and
//! retention"): create, delete, list and describe topics, and read their
//! configs, as Kafka's `AdminClient` does for these calls.
//!
//! Creating and deleting go to the controller (from metadata); reading
//! goes to any broker that answers. Every request and response is
//! `kafka-protocol`'s, every response shape-checked first
//! (`response_check`). Topic-level errors come back as [`Error::Broker`]
//! with Kafka's code name and the broker's message, for example
//! `TOPIC_ALREADY_EXISTS` or `INVALID_REPLICATION_FACTOR`.

use std::time::Duration;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::config::ProducerConfig;
use crate::connection::{Connection, Pool};
use crate::driver::fetch_metadata;
use crate::error::{Error, KafkaCode};

/// CreateTopics versions herald speaks.
const CREATE_TOPICS_VERSIONS: (i16, i16) = (2, 7);
/// DeleteTopics versions herald speaks (v6 names topics by id or name; we
/// use names).
const DELETE_TOPICS_VERSIONS: (i16, i16) = (1, 6);
/// DescribeConfigs versions herald speaks.
const DESCRIBE_CONFIGS_VERSIONS: (i16, i16) = (1, 4);
/// DescribeConfigs' resource type for topics.
const TOPIC_RESOURCE: i8 = 2;
/// DescribeConfigs' config source for a default value.
const DEFAULT_CONFIG: i8 = 5;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Its name.
    pub name: String,
    /// Partitions (-1: the broker's `num.partitions`).
    pub partitions: i32,
    /// Replicas of each partition (-1: the broker's
    /// `default.replication.factor`).
    pub replication_factor: i16,
    /// Topic configs, e.g. `("retention.ms", "604800000")`.
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with this many partitions and replicas, no configs.
    pub fn new(name: impl Into<String>, partitions: i32, replication_factor: i16) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication_factor,
            configs: Vec::new(),
        }
    }

    /// Add a topic config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// One partition of a described topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    /// The partition index.
    pub partition: i32,
    /// The leader's broker id, if it has one.
    pub leader: Option<i32>,
    /// Broker ids of its replicas.
    pub replicas: Vec<i32>,
    /// Broker ids of its in-sync replicas.
    pub in_sync: Vec<i32>,
}

/// One topic config, as the broker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The config's name, e.g. `retention.ms`.
    pub name: String,
    /// Its value (`None` for a sensitive or unset one).
    pub value: Option<String>,
    /// The broker's default, not set on the topic.
    pub is_default: bool,
    /// Cannot be changed.
    pub read_only: bool,
    /// A secret; the broker does not send its value.
    pub sensitive: bool,
}

/// A topic's partitions and configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// The topic's name.
    pub name: String,
    /// Its partitions, by index.
    pub partitions: Vec<PartitionDescription>,
    /// Its configs, by name.
    pub configs: Vec<ConfigEntry>,
}

/// A client for topic administration. Cheap to create; connections are
/// made on first use and closed when it is dropped.
pub struct Admin {
    pool: Pool,
    bootstrap: Vec<String>,
    timeout: Duration,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// An admin client for the cluster of `config.bootstrap_servers`, with
    /// its `client.id` and timeouts (`request.timeout.ms` is also the
    /// broker's deadline for creating or deleting).
    pub fn new(config: &ProducerConfig) -> Result<Admin, Error> {
        config.validate()?;
        Ok(Admin {
            pool: Pool::new(
                &config.client_id,
                config.connection_setup_timeout,
                config.request_timeout,
                (config.reconnect_backoff, config.reconnect_backoff_max),
                crate::tls::connector(config)?,
                config.sasl()?,
            ),
            bootstrap: config.bootstrap_servers.clone(),
            timeout: config.request_timeout,
        })
    }

    async fn metadata(&self, topics: Option<&[String]>) -> Result<MetadataResponse, Error> {
        fetch_metadata(&self.pool, &self.bootstrap, topics, false)
            .await
            .map(|(resp, _)| resp)
    }

    /// A connection to the controller (topic creation and deletion go
    /// there), else to any broker.
    async fn controller(&self) -> Result<Connection, Error> {
        let md = self.metadata(Some(&[])).await?;
        let addr = md
            .brokers
            .iter()
            .find(|b| b.node_id == md.controller_id)
            .or_else(|| md.brokers.first())
            .map(|b| format!("{}:{}", b.host.as_str(), b.port))
            .ok_or_else(|| Error::Protocol {
                broker: self.bootstrap.join(","),
                message: "the cluster reported no brokers".into(),
            })?;
        self.pool.get(&addr).await
    }

    fn timeout_ms(&self) -> i32 {
        self.timeout.as_millis().min(i32::MAX as u128) as i32
    }

    /// Create a topic. Fails with the broker's error, e.g.
    /// `TOPIC_ALREADY_EXISTS`, `INVALID_PARTITIONS`,
    /// `INVALID_REPLICATION_FACTOR` or `INVALID_CONFIG`.
    pub async fn create_topic(&self, topic: &NewTopic) -> Result<(), Error> {
        let conn = self.controller().await?;
        let version = conn.version::<CreateTopicsRequest>(CREATE_TOPICS_VERSIONS)?;
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
                .with_num_partitions(topic.partitions)
                .with_replication_factor(topic.replication_factor)
                .with_configs(
                    topic
                        .configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.clone()))
                                .with_value(Some(StrBytes::from_string(v.clone())))
                        })
                        .collect(),
                )]);
        let resp = conn.request(req, version).await?;
        let t = resp.topics.first().ok_or_else(|| Error::Protocol {
            broker: conn.addr().to_string(),
            message: format!("CreateTopics answered nothing for `{}`", topic.name),
        })?;
        check(
            t.error_code,
            conn.addr(),
            &topic.name,
            t.error_message.as_ref(),
        )
    }

    /// Delete a topic. Fails with the broker's error, e.g.
    /// `UNKNOWN_TOPIC_OR_PARTITION`.
    pub async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        let conn = self.controller().await?;
        let version = conn.version::<DeleteTopicsRequest>(DELETE_TOPICS_VERSIONS)?;
        let topic = TopicName(StrBytes::from_string(name.to_string()));
        let mut req = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
        if version >= 6 {
            req = req.with_topics(vec![DeleteTopicState::default().with_name(Some(topic))]);
        } else {
            req = req.with_topic_names(vec![topic]);
        }
        let resp = conn.request(req, version).await?;
        let t = resp.responses.first().ok_or_else(|| Error::Protocol {
            broker: conn.addr().to_string(),
            message: format!("DeleteTopics answered nothing for `{name}`"),
        })?;
        check(t.error_code, conn.addr(), name, t.error_message.as_ref())
    }

    /// The names of the cluster's topics (internal ones left out), sorted.
    pub async fn list_topics(&self) -> Result<Vec<String>, Error> {
        let md = self.metadata(None).await?;
        let mut names: Vec<String> = md
            .topics
            .iter()
            .filter(|t| !t.is_internal && t.error_code == 0)
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        names.sort();
        Ok(names)
    }

    /// A topic's partitions (leader, replicas, in-sync replicas) and
    /// configs.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, Error> {
        Ok(TopicDescription {
            name: name.to_string(),
            partitions: self.topic_partitions(name).await?,
            configs: self.topic_configs(name).await?,
        })
    }

    /// A topic's partitions (leader, replicas, in-sync replicas), from
    /// metadata alone: for brokers that do not answer DescribeConfigs.
    pub async fn topic_partitions(&self, name: &str) -> Result<Vec<PartitionDescription>, Error> {
        let md = self.metadata(Some(&[name.to_string()])).await?;
        let t = md
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
            .ok_or_else(|| Error::Broker {
                code: KafkaCode(3), // UNKNOWN_TOPIC_OR_PARTITION
                partition: None,
                broker: self.bootstrap.join(","),
                message: Some(format!("no topic `{name}`")),
            })?;
        check(t.error_code, &self.bootstrap.join(","), name, None)?;
        let mut partitions: Vec<PartitionDescription> = t
            .partitions
            .iter()
            .map(|p| PartitionDescription {
                partition: p.partition_index,
                leader: Some(p.leader_id.0).filter(|l| *l >= 0),
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                in_sync: p.isr_nodes.iter().map(|b| b.0).collect(),
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        Ok(partitions)
    }

    /// A topic's configs, as the broker reports them, sorted by name.
    pub async fn topic_configs(&self, name: &str) -> Result<Vec<ConfigEntry>, Error> {
        let mut last = None;
        for addr in &self.bootstrap {
            let conn = match self.pool.get(addr).await {
                Ok(c) => c,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let version = conn.version::<DescribeConfigsRequest>(DESCRIBE_CONFIGS_VERSIONS)?;
            let req = DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(TOPIC_RESOURCE)
                    .with_resource_name(StrBytes::from_string(name.to_string()))
                    .with_configuration_keys(None),
            ]);
            let resp = conn.request(req, version).await?;
            let r = resp.results.first().ok_or_else(|| Error::Protocol {
                broker: conn.addr().to_string(),
                message: format!("DescribeConfigs answered nothing for `{name}`"),
            })?;
            check(r.error_code, conn.addr(), name, r.error_message.as_ref())?;
            let mut configs: Vec<ConfigEntry> = r
                .configs
                .iter()
                .map(|c| ConfigEntry {
                    name: c.name.to_string(),
                    value: c.value.as_ref().map(|v| v.to_string()),
                    is_default: c.config_source == DEFAULT_CONFIG,
                    read_only: c.read_only,
                    sensitive: c.is_sensitive,
                })
                .collect();
            configs.sort_by(|a, b| a.name.cmp(&b.name));
            return Ok(configs);
        }
        Err(last.unwrap_or_else(|| Error::config("bootstrap.servers", "no broker address to try")))
    }
}

/// A topic-level error code as an error naming the topic.
fn check(code: i16, broker: &str, topic: &str, message: Option<&StrBytes>) -> Result<(), Error> {
    if code == 0 {
        return Ok(());
    }
    Err(Error::Broker {
        code: KafkaCode(code),
        partition: None,
        broker: broker.to_string(),
        message: Some(match message {
            Some(m) => format!("topic `{topic}`: {}", m.as_str()),
            None => format!("topic `{topic}`"),
        }),
    })
}
