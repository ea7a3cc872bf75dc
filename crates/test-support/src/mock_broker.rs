//! An in-process Kafka broker of our own, for fault injection (in the
//! spirit of franz-go's kfake). One broker, node id 0. It speaks
//! ApiVersions, Metadata, InitProducerId and Produce; keeps a real log per
//! partition; and checks idempotent sequences as Kafka does: a batch it
//! already has (same producer id and base sequence among the last five) is
//! answered with its original offset and not appended again, and a gap is
//! answered OUT_OF_ORDER_SEQUENCE_NUMBER. Tests queue faults that apply to
//! the next Produce requests, one per request.

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener as StdListener;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, InitProducerIdRequest,
    InitProducerIdResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::mock_sasl::{Access, SaslCounts, SaslUser, Session};

const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// What the broker does with the next Produce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer every partition of the request with this error code, append nothing.
    Error(i16),
    /// Append the batches, then close the connection without answering:
    /// the client cannot know they landed.
    AppendThenDrop,
    /// Close the connection without reading the request's batches.
    DropBeforeAppend,
    /// Append and answer, asking the client to hold off for this many
    /// milliseconds (throttle_time_ms, KIP-219).
    Throttle(i32),
    /// Append, then answer only after this many milliseconds; requests
    /// behind it on the connection wait too, as on a real broker.
    Delay(u64),
    /// Append, but hold the answer back and send it after the answer to
    /// the next request on the connection: responses out of order.
    Reorder,
    /// As `Error`, answered only after this many milliseconds (so that the
    /// client has sent the requests behind it by then).
    ErrorAfter(i16, u64),
    /// Append the batches, then answer every partition with this error
    /// code: what Kafka's delayed produce (acks=all) answers when
    /// leadership moves, the partition goes offline or its log directory
    /// fails after the leader appended (NOT_LEADER_OR_FOLLOWER,
    /// UNKNOWN_TOPIC_OR_PARTITION, KAFKA_STORAGE_ERROR, REQUEST_TIMED_OUT).
    AppendThenError(i16),
}

#[derive(Default)]
struct ProducerState {
    /// The producer's epoch here: a batch with an older one is refused
    /// INVALID_PRODUCER_EPOCH, a newer one must start at sequence 0 and
    /// replaces the state (Kafka's `ProducerAppendInfo`).
    epoch: i16,
    /// Sequence of the next batch expected.
    next_seq: i32,
    /// (base sequence, record count, base offset) of the last five
    /// batches: a duplicate matches first and last sequence, as in Kafka.
    recent: VecDeque<(i32, i32, i64)>,
}

#[derive(Default)]
struct PartitionLog {
    next_offset: i64,
    batches: Vec<Bytes>,
    producers: HashMap<i64, ProducerState>,
}

#[derive(Default)]
struct State {
    topics: HashMap<String, Vec<PartitionLog>>,
    next_pid: i64,
    faults: VecDeque<Fault>,
    /// Answers by error code, for tests to see what was exercised.
    answered: HashMap<i16, usize>,
    /// When each Produce request arrived, and when each answer left.
    produce_arrivals: Vec<Instant>,
    produce_answers: Vec<Instant>,
    /// Broker ports, by node id.
    ports: Vec<u16>,
    /// Answer a batch already in the log DUPLICATE_SEQUENCE_NUMBER without
    /// its offset (as Tansu does), instead of success at its offset.
    duplicates_as_error: bool,
    /// A sink for benchmarks: check each batch's CRC, assign offsets, keep
    /// nothing (`MockBroker::start_sink`).
    discard: bool,
    /// Batches whose CRC did not match (sink mode).
    bad_crc: usize,
    /// Partition leaders that were moved; the default is partition % brokers.
    leaders: HashMap<(String, usize), i32>,
    /// SASL required, with these mechanisms and this user.
    sasl: Option<SaslUser>,
    sasl_counts: SaslCounts,
    /// Topic-level error codes Metadata answers instead of the topic.
    topic_errors: HashMap<String, i16>,
    /// Partition indices Metadata reports for a topic instead of its real
    /// ones (a hostile or buggy broker).
    hostile_partitions: HashMap<String, Vec<i32>>,
    /// InitProducerId answers this error code instead of an id.
    init_pid_error: Option<i16>,
    /// Brokers listed first in Metadata: (node id, port) of listeners that
    /// accept connections and never answer.
    silent: Vec<(i32, u16)>,
    /// InitProducerId requests answered.
    init_pid_requests: usize,
    /// Create an unknown topic with this many partitions when a Metadata
    /// request asks for it with auto-creation allowed (Kafka's
    /// `auto.create.topics.enable=true`, `num.partitions`).
    auto_create: Option<usize>,
    /// Every Metadata request: the topics asked for (`None`: all), and
    /// whether it allowed auto-creation.
    metadata_requests: Vec<(Option<Vec<String>>, bool)>,
    /// Produce to these topics is refused with this code (an ACL, say).
    produce_errors: HashMap<String, i16>,
    /// A producer without state here may start at any sequence (Kafka
    /// 2.5+, KIP-360), instead of 0 (older brokers, Tansu).
    any_sequence_without_state: bool,
}

impl State {
    fn leader(&self, topic: &str, partition: usize) -> i32 {
        self.leaders
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or((partition % self.ports.len()) as i32)
    }
}

/// The broker; stops when dropped.
pub struct MockBroker {
    port: u16,
    state: Arc<Mutex<State>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl MockBroker {
    /// Listen on a free loopback port.
    pub fn start() -> MockBroker {
        Self::start_cluster(1)
    }

    /// A cluster of `brokers` brokers (node ids 0..brokers) sharing the
    /// logs; partition p is led by broker p % brokers until moved.
    pub fn start_cluster(brokers: usize) -> MockBroker {
        let listeners: Vec<StdListener> = (0..brokers)
            .map(|_| {
                let l = StdListener::bind("127.0.0.1:0").expect("bind");
                l.set_nonblocking(true).expect("nonblocking");
                l
            })
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().expect("bound").port())
            .collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("mock broker runtime");
        let state: Arc<Mutex<State>> = Arc::new(Mutex::new(State {
            ports: ports.clone(),
            ..State::default()
        }));
        for (node, listener) in listeners.into_iter().enumerate() {
            let st = state.clone();
            runtime.spawn(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                while let Ok((sock, _)) = listener.accept().await {
                    tokio::spawn(serve(sock, st.clone(), node as i32));
                }
            });
        }
        MockBroker {
            port: ports[0],
            state,
            runtime: Some(runtime),
        }
    }

    /// A one-broker sink for benchmarks: it parses every Produce request,
    /// checks each record batch's CRC-32C, answers with offsets, and keeps
    /// nothing (no sequence checks either), so it costs little per record.
    pub fn start_sink() -> MockBroker {
        let b = Self::start_cluster(1);
        b.state.lock().unwrap().discard = true;
        b
    }

    /// One broker requiring SASL: until a connection has authenticated,
    /// anything but ApiVersions, SaslHandshake and SaslAuthenticate closes
    /// it, as Kafka does.
    pub fn start_with_sasl(user: SaslUser) -> MockBroker {
        let b = Self::start_cluster(1);
        b.state.lock().unwrap().sasl = Some(user);
        b
    }

    /// What SASL saw so far.
    pub fn sasl_counts(&self) -> SaslCounts {
        self.state.lock().unwrap().sasl_counts.clone()
    }

    /// Batches a sink found with a wrong CRC.
    pub fn bad_crc(&self) -> usize {
        self.state.lock().unwrap().bad_crc
    }

    /// Make `node` the leader of the partition. Produce requests for it
    /// that reach another broker are answered NOT_LEADER_OR_FOLLOWER.
    pub fn move_leader(&self, topic: &str, partition: usize, node: i32) {
        self.state
            .lock()
            .unwrap()
            .leaders
            .insert((topic.to_string(), partition), node);
    }

    /// Answer Metadata for `topic` with this topic-level error code
    /// (TOPIC_AUTHORIZATION_FAILED, INVALID_TOPIC_EXCEPTION, ...).
    pub fn set_topic_error(&self, topic: &str, code: i16) {
        self.state
            .lock()
            .unwrap()
            .topic_errors
            .insert(topic.to_string(), code);
    }

    /// Report these partition indices for `topic` in Metadata (each led by
    /// broker 0), whatever the topic really has: a hostile or buggy broker.
    /// `None` goes back to the truth.
    pub fn set_hostile_partitions(&self, topic: &str, indices: Option<Vec<i32>>) {
        let mut st = self.state.lock().unwrap();
        match indices {
            Some(i) => st.hostile_partitions.insert(topic.to_string(), i),
            None => st.hostile_partitions.remove(topic),
        };
    }

    /// Refuse every Produce to `topic` with `code` (`None`: accept again),
    /// as a broker does for a topic the client is not authorized to write.
    pub fn set_produce_error(&self, topic: &str, code: Option<i16>) {
        let mut st = self.state.lock().unwrap();
        match code {
            Some(c) => st.produce_errors.insert(topic.to_string(), c),
            None => st.produce_errors.remove(topic),
        };
    }

    /// Take a batch at any sequence from a producer it holds no state for,
    /// as Kafka 2.5+ does (KIP-360), instead of only at sequence 0.
    pub fn accept_any_sequence_without_state(&self, on: bool) {
        self.state.lock().unwrap().any_sequence_without_state = on;
    }

    /// Answer InitProducerId with this error code (`None`: give ids).
    pub fn refuse_init_producer_id(&self, code: Option<i16>) {
        self.state.lock().unwrap().init_pid_error = code;
    }

    /// InitProducerId requests answered so far.
    pub fn init_producer_id_requests(&self) -> usize {
        self.state.lock().unwrap().init_pid_requests
    }

    /// Add a broker (node id `id`) that accepts connections and never
    /// answers, listed first in Metadata: a stalled broker every client
    /// tries first. Lives as long as the mock.
    pub fn add_silent_broker(&self, id: i32) {
        let l = StdListener::bind("127.0.0.1:0").expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        let port = l.local_addr().expect("bound").port();
        self.runtime.as_ref().expect("running").spawn(async move {
            let listener = TcpListener::from_std(l).expect("tokio listener");
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock); // accepted, never read, never answered
            }
        });
        self.state.lock().unwrap().silent.push((id, port));
    }

    /// Create unknown topics (with `partitions` partitions) that a Metadata
    /// request asks for with auto-creation allowed, as a broker with
    /// `auto.create.topics.enable=true` (Kafka's default) does.
    pub fn auto_create_topics(&self, partitions: Option<usize>) {
        self.state.lock().unwrap().auto_create = partitions;
    }

    /// Delete a topic, as an administrator would.
    pub fn delete_topic(&self, name: &str) {
        self.state.lock().unwrap().topics.remove(name);
    }

    /// Whether the topic exists.
    pub fn has_topic(&self, name: &str) -> bool {
        self.state.lock().unwrap().topics.contains_key(name)
    }

    /// Every Metadata request so far: the topics asked for (`None`: all
    /// topics), and whether it allowed auto-creation.
    pub fn metadata_requests(&self) -> Vec<(Option<Vec<String>>, bool)> {
        self.state.lock().unwrap().metadata_requests.clone()
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Create a topic.
    pub fn create_topic(&self, name: &str, partitions: usize) {
        let logs = (0..partitions).map(|_| PartitionLog::default()).collect();
        self.state
            .lock()
            .unwrap()
            .topics
            .insert(name.to_string(), logs);
    }

    /// Queue faults for the next Produce requests, one per request.
    pub fn push_faults(&self, faults: &[Fault]) {
        self.state.lock().unwrap().faults.extend(faults);
    }

    /// Forget every producer's sequence state, as a broker that lost it
    /// (restart, log truncation) would.
    pub fn forget_producers(&self) {
        for parts in self.state.lock().unwrap().topics.values_mut() {
            for p in parts {
                p.producers.clear();
            }
        }
    }

    /// Answer resent batches it already has with DUPLICATE_SEQUENCE_NUMBER
    /// and no offset, as Tansu 0.6.0 does, instead of their original offset.
    pub fn answer_duplicates_with_error(&self, on: bool) {
        self.state.lock().unwrap().duplicates_as_error = on;
    }

    /// When Produce requests arrived and when their answers left, in order.
    pub fn produce_times(&self) -> (Vec<Instant>, Vec<Instant>) {
        let st = self.state.lock().unwrap();
        (st.produce_arrivals.clone(), st.produce_answers.clone())
    }

    /// Faults queued and not yet applied.
    pub fn pending_faults(&self) -> usize {
        self.state.lock().unwrap().faults.len()
    }

    /// How many partition answers carried `code` (0 for success).
    pub fn answered(&self, code: i16) -> usize {
        self.state
            .lock()
            .unwrap()
            .answered
            .get(&code)
            .copied()
            .unwrap_or(0)
    }

    /// The partition's log: (offset, value) of every record, in order.
    pub fn log(&self, topic: &str, partition: usize) -> Vec<(i64, Option<Bytes>)> {
        let st = self.state.lock().unwrap();
        let mut out = Vec::new();
        for b in &st.topics[topic][partition].batches {
            let mut buf = b.clone();
            let set = RecordBatchDecoder::decode(&mut buf).expect("stored batch decodes");
            out.extend(set.records.into_iter().map(|r| (r.offset, r.value)));
        }
        out
    }
}

impl Drop for MockBroker {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn serve(mut sock: TcpStream, state: Arc<Mutex<State>>, node: i32) {
    // Answers held back by `Fault::Reorder`, sent after the next one.
    let mut held: Vec<Bytes> = Vec::new();
    let mut session = Session::default();
    loop {
        let mut len = [0u8; 4];
        if sock.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut frame = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
        if sock.read_exact(&mut frame).await.is_err() {
            return;
        }
        let mut buf = Bytes::from(frame);
        let key = i16::from_be_bytes([buf[0], buf[1]]);
        let version = i16::from_be_bytes([buf[2], buf[3]]);
        let sasl = state.lock().unwrap().sasl.clone();
        if sasl.is_some() && session.access(Instant::now()) == Access::Expired {
            state.lock().unwrap().sasl_counts.expired_closes += 1;
            return;
        }
        let reply = if let Some(user) = sasl.as_ref().filter(|_| {
            key == ApiKey::SaslHandshake as i16 || key == ApiKey::SaslAuthenticate as i16
        }) {
            sasl_step(key, version, &mut buf, user, &mut session, &state)
        } else if sasl.is_some() && key != ApiKey::ApiVersions as i16 {
            match session.access(Instant::now()) {
                Access::Allowed => handle(key, version, &mut buf, &state, node),
                Access::Unauthenticated | Access::Expired => {
                    state.lock().unwrap().sasl_counts.unauthenticated_closes += 1;
                    return;
                }
            }
        } else {
            handle(key, version, &mut buf, &state, node)
        };
        let reply = match reply {
            Reply::Frame(b) => b,
            Reply::Close => return,
            Reply::Delayed(b, ms) => {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                b
            }
            Reply::Hold(b) => {
                held.push(b);
                continue;
            }
        };
        if sock.write_all(&reply).await.is_err() {
            return;
        }
        for b in held.drain(..) {
            if sock.write_all(&b).await.is_err() {
                return;
            }
        }
    }
}

enum Reply {
    Frame(Bytes),
    Close,
    Delayed(Bytes, u64),
    Hold(Bytes),
}

fn respond<R: Encodable + HeaderVersion>(corr: i32, version: i16, body: &R) -> Reply {
    let hv = R::header_version(version);
    let header = ResponseHeader::default().with_correlation_id(corr);
    let mut out = BytesMut::new();
    out.put_i32(0);
    header.encode(&mut out, hv).expect("encode header");
    body.encode(&mut out, version).expect("encode body");
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Reply::Frame(out.freeze())
}

/// SaslHandshake and SaslAuthenticate, on this connection's session.
fn sasl_step(
    key: i16,
    version: i16,
    buf: &mut Bytes,
    user: &SaslUser,
    session: &mut Session,
    state: &Mutex<State>,
) -> Reply {
    if key == ApiKey::SaslHandshake as i16 {
        let h = header::<SaslHandshakeRequest>(buf, version);
        let req = SaslHandshakeRequest::decode(buf, version).expect("SaslHandshake");
        let code = session.handshake(user, req.mechanism.as_str());
        let resp = SaslHandshakeResponse::default()
            .with_error_code(code)
            .with_mechanisms(
                user.mechanisms
                    .iter()
                    .map(|m| StrBytes::from_static_str(m))
                    .collect(),
            );
        return respond(h.correlation_id, version, &resp);
    }
    let h = header::<SaslAuthenticateRequest>(buf, version);
    let req = SaslAuthenticateRequest::decode(buf, version).expect("SaslAuthenticate");
    let resp = match session.authenticate(user, &req.auth_bytes) {
        Ok(answer) => {
            if let Some(again) = answer.completed {
                let mut st = state.lock().unwrap();
                st.sasl_counts.authentications += 1;
                st.sasl_counts.reauthentications += usize::from(again);
            }
            SaslAuthenticateResponse::default()
                .with_auth_bytes(answer.bytes.into())
                .with_session_lifetime_ms(answer.lifetime_ms)
        }
        Err((code, message)) => {
            state.lock().unwrap().sasl_counts.refused += 1;
            SaslAuthenticateResponse::default()
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message)))
        }
    };
    respond(h.correlation_id, version, &resp)
}

fn header<R: HeaderVersion>(buf: &mut Bytes, version: i16) -> RequestHeader {
    RequestHeader::decode(buf, R::header_version(version)).expect("request header")
}

fn handle(key: i16, version: i16, buf: &mut Bytes, state: &Mutex<State>, node: i32) -> Reply {
    match key {
        k if k == ApiKey::ApiVersions as i16 => {
            // A v3 request from a client we do not know: answer in v0 terms.
            let h = header::<ApiVersionsRequest>(buf, version);
            let v = |key: ApiKey, min, max| {
                ApiVersion::default()
                    .with_api_key(key as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            };
            let resp = ApiVersionsResponse::default().with_api_keys(vec![
                v(ApiKey::Produce, 3, 9),
                v(ApiKey::Metadata, 1, 9),
                v(ApiKey::ApiVersions, 0, 3),
                v(ApiKey::InitProducerId, 0, 4),
                v(ApiKey::SaslHandshake, 0, 1),
                v(ApiKey::SaslAuthenticate, 0, 2),
                // Not served (a Fetch closes the connection), but librdkafka
                // writes record batches v2 only to a broker that has Fetch
                // v4+, and a legacy v0 message set otherwise.
                v(ApiKey::Fetch, 4, 12),
            ]);
            respond(h.correlation_id, version.min(3), &resp)
        }
        k if k == ApiKey::Metadata as i16 => {
            let h = header::<MetadataRequest>(buf, version);
            let req = MetadataRequest::decode(buf, version).expect("metadata request");
            let mut st = state.lock().unwrap();
            let asked: Option<Vec<String>> = req.topics.as_ref().map(|ts| {
                ts.iter()
                    .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                    .collect()
            });
            st.metadata_requests
                .push((asked.clone(), req.allow_auto_topic_creation));
            if let (Some(n), Some(asked), true) =
                (st.auto_create, &asked, req.allow_auto_topic_creation)
            {
                for name in asked {
                    if !st.topics.contains_key(name) && !st.topic_errors.contains_key(name) {
                        let logs = (0..n).map(|_| PartitionLog::default()).collect();
                        st.topics.insert(name.clone(), logs);
                    }
                }
            }
            let names: Vec<String> = match &req.topics {
                Some(ts) => ts
                    .iter()
                    .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                    .collect(),
                None => st.topics.keys().cloned().collect(),
            };
            let topics = names
                .into_iter()
                .map(|name| {
                    let t = MetadataResponseTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(name.clone()))));
                    if let Some(code) = st.topic_errors.get(&name) {
                        return t.with_error_code(*code);
                    }
                    if let Some(indices) = st.hostile_partitions.get(&name) {
                        return t.with_partitions(
                            indices
                                .iter()
                                .map(|p| {
                                    MetadataResponsePartition::default()
                                        .with_partition_index(*p)
                                        .with_leader_id(BrokerId(0))
                                })
                                .collect(),
                        );
                    }
                    match st.topics.get(&name) {
                        None => t.with_error_code(3),
                        Some(parts) => t.with_partitions(
                            (0..parts.len())
                                .map(|p| {
                                    MetadataResponsePartition::default()
                                        .with_partition_index(p as i32)
                                        .with_leader_id(BrokerId(st.leader(&name, p)))
                                        .with_replica_nodes(vec![BrokerId(st.leader(&name, p))])
                                        .with_isr_nodes(vec![BrokerId(st.leader(&name, p))])
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            let broker = |id: i32, port: u16| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(id))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(port as i32)
            };
            let resp = MetadataResponse::default()
                .with_brokers(
                    st.silent
                        .iter()
                        .map(|(id, port)| broker(*id, *port))
                        .chain(
                            st.ports
                                .iter()
                                .enumerate()
                                .map(|(id, port)| broker(id as i32, *port)),
                        )
                        .collect(),
                )
                .with_controller_id(BrokerId(0))
                .with_topics(topics);
            respond(h.correlation_id, version, &resp)
        }
        k if k == ApiKey::InitProducerId as i16 => {
            let h = header::<InitProducerIdRequest>(buf, version);
            let mut st = state.lock().unwrap();
            st.init_pid_requests += 1;
            if let Some(code) = st.init_pid_error {
                let resp = InitProducerIdResponse::default()
                    .with_error_code(code)
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1);
                return respond(h.correlation_id, version, &resp);
            }
            st.next_pid += 1;
            let resp = InitProducerIdResponse::default()
                .with_producer_id(st.next_pid.into())
                .with_producer_epoch(0);
            respond(h.correlation_id, version, &resp)
        }
        k if k == ApiKey::Produce as i16 => {
            let h = header::<ProduceRequest>(buf, version);
            let req = ProduceRequest::decode(buf, version).expect("produce request");
            let mut st = state.lock().unwrap();
            st.produce_arrivals.push(Instant::now());
            let fault = st.faults.pop_front();
            if fault == Some(Fault::DropBeforeAppend) {
                return Reply::Close;
            }
            let mut topics = Vec::new();
            for t in &req.topic_data {
                let name = t.name.0.to_string();
                let mut parts = Vec::new();
                for p in &t.partition_data {
                    let leader = st.leader(&name, p.index.max(0) as usize);
                    let refused = st.produce_errors.get(&name).copied();
                    let (code, base) = match fault {
                        _ if leader != node => (NOT_LEADER_OR_FOLLOWER, -1),
                        _ if refused.is_some() => (refused.unwrap_or_default(), -1),
                        Some(Fault::Error(code)) | Some(Fault::ErrorAfter(code, _)) => (code, -1),
                        Some(Fault::AppendThenError(code)) => {
                            append(&mut st, &name, p.index, p.records.clone());
                            (code, -1)
                        }
                        _ => append(&mut st, &name, p.index, p.records.clone()),
                    };
                    *st.answered.entry(code).or_default() += 1;
                    parts.push(
                        PartitionProduceResponse::default()
                            .with_index(p.index)
                            .with_error_code(code)
                            .with_base_offset(base)
                            .with_log_append_time_ms(-1),
                    );
                }
                topics.push(
                    TopicProduceResponse::default()
                        .with_name(t.name.clone())
                        .with_partition_responses(parts),
                );
            }
            if fault == Some(Fault::AppendThenDrop) {
                return Reply::Close;
            }
            let throttle = match fault {
                Some(Fault::Throttle(ms)) => ms,
                _ => 0,
            };
            st.produce_answers.push(Instant::now());
            let resp = ProduceResponse::default()
                .with_responses(topics)
                .with_throttle_time_ms(throttle);
            match (respond(h.correlation_id, version, &resp), fault) {
                (Reply::Frame(b), Some(Fault::Delay(ms) | Fault::ErrorAfter(_, ms))) => {
                    Reply::Delayed(b, ms)
                }
                (Reply::Frame(b), Some(Fault::Reorder)) => Reply::Hold(b),
                (reply, _) => reply,
            }
        }
        _ => Reply::Close,
    }
}

/// Append one batch; (error code, base offset). Checks sequences as Kafka
/// does for idempotent producers.
fn append(st: &mut State, topic: &str, partition: i32, records: Option<Bytes>) -> (i16, i64) {
    let any_sequence_without_state = st.any_sequence_without_state;
    let Some(log) = st
        .topics
        .get_mut(topic)
        .and_then(|ps| ps.get_mut(partition as usize))
    else {
        return (3, -1); // UNKNOWN_TOPIC_OR_PARTITION
    };
    let Some(batch) = records else {
        return (87, -1); // INVALID_RECORD
    };
    if st.discard {
        return sink_append(st, topic, partition, &batch);
    }
    // RecordBatch v2 header fields.
    let mut hdr = batch.clone();
    hdr.advance(43);
    let pid = hdr.get_i64();
    let epoch = hdr.get_i16();
    let base_seq = hdr.get_i32();
    let count = hdr.get_i32();
    if pid >= 0 {
        let known = log.producers.contains_key(&pid);
        let p = log.producers.entry(pid).or_default();
        if known && epoch < p.epoch {
            return (47, -1); // INVALID_PRODUCER_EPOCH
        }
        if known && epoch > p.epoch {
            if base_seq != 0 {
                return (45, -1); // a new epoch starts at sequence 0
            }
            *p = ProducerState {
                epoch,
                ..ProducerState::default()
            };
        }
        if !known {
            // No state (new, or forgotten): expects sequence 0, as brokers
            // before KIP-360 and Tansu do (stricter than Kafka 2.5+).
            p.epoch = epoch;
        }
        if !known && any_sequence_without_state {
            p.next_seq = base_seq;
        }
        if let Some((_, _, offset)) = p
            .recent
            .iter()
            .find(|(s, n, _)| *s == base_seq && *n == count)
        {
            // A duplicate, not appended again.
            return match st.duplicates_as_error {
                true => (46, -1), // DUPLICATE_SEQUENCE_NUMBER
                false => (0, *offset),
            };
        }
        if base_seq != p.next_seq {
            return (45, -1); // OUT_OF_ORDER_SEQUENCE_NUMBER
        }
        p.next_seq = base_seq + count;
        p.recent.push_back((base_seq, count, log.next_offset));
        if p.recent.len() > 5 {
            p.recent.pop_front();
        }
    }
    let base = log.next_offset;
    let mut stored = BytesMut::from(&batch[..]);
    stored[..8].copy_from_slice(&base.to_be_bytes());
    log.batches.push(stored.freeze());
    log.next_offset += count as i64;
    (0, base)
}

/// Sink mode: walk the batches of one partition's records, check each CRC,
/// count records, assign offsets; store nothing.
fn sink_append(st: &mut State, topic: &str, partition: i32, records: &Bytes) -> (i16, i64) {
    let mut rest = &records[..];
    let mut count = 0i64;
    while rest.len() >= 61 {
        let len = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes")) as usize;
        if len < 49 || rest.len() < 12 + len {
            st.bad_crc += 1;
            return (2, -1); // CORRUPT_MESSAGE
        }
        let batch = &rest[..12 + len];
        if batch[16] != 2 {
            st.bad_crc += 1;
            return (2, -1); // only RecordBatch v2 (magic 2)
        }
        let crc = u32::from_be_bytes(batch[17..21].try_into().expect("4 bytes"));
        if crc32c::crc32c(&batch[21..]) != crc {
            st.bad_crc += 1;
            return (2, -1);
        }
        count += i32::from_be_bytes(batch[57..61].try_into().expect("4 bytes")) as i64;
        rest = &rest[12 + len..];
    }
    let log = &mut st.topics.get_mut(topic).expect("topic")[partition as usize];
    let base = log.next_offset;
    log.next_offset += count;
    (0, base)
}
