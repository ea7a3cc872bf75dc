//! One TCP connection to one broker: framing, correlation ids, pipelining,
//! request timeouts and API version negotiation.
//!
//! A connection is a task running two halves at once: the writer takes
//! requests from a channel and writes them; the reader matches responses to
//! requests in order (Kafka answers in request order on a connection). The
//! halves run concurrently so a large request being written never stops
//! responses from being read. Any I/O error or request timeout poisons the
//! connection: every request waiting on it fails with that error, and the
//! next user opens a new one.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    InitProducerIdRequest, InitProducerIdResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_rustls::TlsConnector;

use crate::sasl::SaslConfig;

use crate::error::{code, Error, KafkaCode};

/// A request herald sends, and its response type. (`kafka_protocol`'s own
/// `Request` trait needs both encoding directions, which its `client`
/// feature alone does not build.)
pub(crate) trait Request: Encodable + HeaderVersion {
    const KEY: i16;
    type Response: Decodable + HeaderVersion;
}

macro_rules! request {
    ($req:ty, $resp:ty, $key:expr) => {
        impl Request for $req {
            const KEY: i16 = $key as i16;
            type Response = $resp;
        }
    };
}

request!(ApiVersionsRequest, ApiVersionsResponse, ApiKey::ApiVersions);
request!(MetadataRequest, MetadataResponse, ApiKey::Metadata);
request!(ProduceRequest, ProduceResponse, ApiKey::Produce);
request!(
    InitProducerIdRequest,
    InitProducerIdResponse,
    ApiKey::InitProducerId
);
request!(
    CreateTopicsRequest,
    CreateTopicsResponse,
    ApiKey::CreateTopics
);
request!(
    DeleteTopicsRequest,
    DeleteTopicsResponse,
    ApiKey::DeleteTopics
);
request!(
    DescribeConfigsRequest,
    DescribeConfigsResponse,
    ApiKey::DescribeConfigs
);
request!(
    SaslHandshakeRequest,
    SaslHandshakeResponse,
    ApiKey::SaslHandshake
);
request!(
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    ApiKey::SaslAuthenticate
);

/// The host name of `host:port` (brackets of an IPv6 literal removed):
/// what TLS verifies and AWS_MSK_IAM signs.
pub(crate) fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// A frame larger than this is a protocol error, not an allocation.
const MAX_RESPONSE_SIZE: usize = 100 * 1024 * 1024;

type Reply = oneshot::Sender<Result<Bytes, Error>>;

struct Outbound {
    frame: Bytes,
    correlation_id: i32,
    /// `None` for requests the broker does not answer (acks=0 Produce).
    reply: Option<Reply>,
    sent: Option<oneshot::Sender<Result<Bytes, Error>>>,
}

struct Waiting {
    correlation_id: i32,
    deadline: Instant,
    reply: Reply,
}

struct Shared {
    waiting: Mutex<VecDeque<Waiting>>,
    pushed: Notify,
    dead: AtomicBool,
    /// Re-authentication (KIP-368): asks the writer to stop taking
    /// requests, the writer says it has, the reader says the last response
    /// is in, and the writer may go on; or the connection is to be failed
    /// with the reason given.
    pause: Notify,
    paused: Notify,
    drained: Notify,
    resume: Notify,
    kill: Notify,
    killed_by: Mutex<Option<Error>>,
}

/// A handle to a broker connection; cheap to clone.
#[derive(Clone)]
pub(crate) struct Connection {
    addr: Arc<str>,
    tx: mpsc::Sender<Outbound>,
    shared: Arc<Shared>,
    next_correlation: Arc<AtomicI32>,
    client_id: Arc<str>,
    versions: Arc<HashMap<i16, (i16, i16)>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .finish()
    }
}

/// A request handed to the connection, whose response comes later.
pub(crate) struct InFlight {
    rx: oneshot::Receiver<Result<Bytes, Error>>,
    addr: Arc<str>,
}

impl InFlight {
    /// Wait for the raw response frame (correlation id first).
    pub(crate) async fn wait(mut self) -> Result<Bytes, Error> {
        self.recv().await
    }

    /// Like `wait`, without consuming the handle (usable in `select!`).
    pub(crate) async fn recv(&mut self) -> Result<Bytes, Error> {
        match (&mut self.rx).await {
            Ok(r) => r,
            Err(_) => Err(Error::Connection {
                broker: self.addr.to_string(),
                message: "connection closed before the response arrived".into(),
                kind: None,
            }),
        }
    }
}

impl Connection {
    /// Connect, start the connection task, and negotiate API versions.
    pub(crate) async fn connect(
        addr: &str,
        client_id: &str,
        setup_timeout: Duration,
        request_timeout: Duration,
        tls: Option<&TlsConnector>,
        sasl: Option<&SaslConfig>,
    ) -> Result<Connection, Error> {
        let tcp = match tokio::time::timeout(setup_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(Error::io(addr, &e)),
            Err(_) => {
                return Err(Error::Connection {
                    broker: addr.to_string(),
                    message: format!(
                    "connection not established within socket.connection.setup.timeout.ms={} ms",
                    setup_timeout.as_millis()
                ),
                    kind: Some(std::io::ErrorKind::TimedOut),
                })
            }
        };
        let _ = tcp.set_nodelay(true);
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(connector) => {
                // The handshake counts against the same setup timeout.
                match tokio::time::timeout(
                    setup_timeout,
                    crate::tls::handshake(connector, tcp, addr),
                )
                .await
                {
                    Ok(Ok(s)) => Stream::Tls(Box::new(s)),
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        return Err(Error::Connection {
                            broker: addr.to_string(),
                            message: format!(
                                "TLS handshake not done within socket.connection.setup.timeout.ms={} ms (is this a TLS port?)",
                                setup_timeout.as_millis()
                            ),
                            kind: Some(std::io::ErrorKind::TimedOut),
                        })
                    }
                }
            }
        };
        let (tx, rx) = mpsc::channel(64);
        // The lane re-authentication's requests take while the connection
        // is paused for it.
        let (auth_tx, auth_rx) = mpsc::channel(4);
        let shared = Arc::new(Shared {
            waiting: Mutex::new(VecDeque::new()),
            pushed: Notify::new(),
            dead: AtomicBool::new(false),
            pause: Notify::new(),
            paused: Notify::new(),
            drained: Notify::new(),
            resume: Notify::new(),
            kill: Notify::new(),
            killed_by: Mutex::new(None),
        });
        let addr: Arc<str> = addr.into();
        tokio::spawn(run(
            stream,
            Lanes { rx, auth_rx },
            shared.clone(),
            addr.clone(),
            request_timeout,
        ));
        let mut conn = Connection {
            addr,
            tx,
            shared,
            next_correlation: Arc::new(AtomicI32::new(0)),
            client_id: client_id.into(),
            versions: Arc::new(HashMap::new()),
        };
        conn.versions = Arc::new(conn.negotiate().await?);
        if let Some(sasl) = sasl {
            // A token or credentials provider gets the request timeout.
            if let Some(lifetime) = crate::sasl::authenticate(&conn, sasl, request_timeout).await? {
                let lane = Connection {
                    tx: auth_tx,
                    ..conn.clone()
                };
                tokio::spawn(crate::sasl::keep_authenticated(
                    lane,
                    sasl.clone(),
                    lifetime,
                    request_timeout,
                ));
            }
        }
        Ok(conn)
    }

    /// Stop sending requests and wait until every response is in, for a
    /// re-authentication; false if the connection ended meanwhile.
    pub(crate) async fn pause_and_drain(&self) -> bool {
        self.shared.pause.notify_one();
        tokio::select! {
            _ = self.shared.paused.notified() => {}
            _ = self.tx.closed() => return false,
        }
        loop {
            let drained = self.shared.drained.notified();
            if self.shared.waiting.lock().expect("not poisoned").is_empty() {
                return true;
            }
            tokio::select! {
                _ = drained => {}
                _ = self.tx.closed() => return false,
            }
        }
    }

    /// Take requests again after `pause_and_drain`.
    pub(crate) fn resume(&self) {
        self.shared.resume.notify_one();
    }

    /// Fail the connection: queued and waiting requests get `err`.
    pub(crate) fn fail(&self, err: Error) {
        *self.shared.killed_by.lock().expect("not poisoned") = Some(err);
        self.shared.kill.notify_one();
    }

    /// Resolves once the connection has ended (on a handle whose lane is
    /// the re-authentication lane, or any other).
    pub(crate) async fn closed(&self) {
        self.tx.closed().await
    }

    async fn negotiate(&self) -> Result<HashMap<i16, (i16, i16)>, Error> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("herald"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut resp: ApiVersionsResponse = self.request(req.clone(), 3).await?;
        if resp.error_code == code::UNSUPPORTED_VERSION {
            // The broker answered in v0 with what it supports; ask in v0.
            resp = self.request(req, 0).await?;
        }
        if resp.error_code != code::NONE {
            return Err(Error::Broker {
                code: KafkaCode(resp.error_code),
                partition: None,
                broker: self.addr.to_string(),
                message: Some("ApiVersions failed".into()),
            });
        }
        Ok(resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect())
    }

    /// Whether the connection has failed and must be replaced.
    pub(crate) fn is_dead(&self) -> bool {
        self.shared.dead.load(Ordering::Acquire) || self.tx.is_closed()
    }

    /// The highest version of `R` both sides support, within `ours`.
    pub(crate) fn version<R: Request>(&self, ours: (i16, i16)) -> Result<i16, Error> {
        let (min, max) = self.versions.get(&R::KEY).copied().ok_or_else(|| {
            Error::protocol(
                &self.addr,
                format!("broker does not support API key {}", R::KEY),
            )
        })?;
        let v = max.min(ours.1);
        if v < min.max(ours.0) {
            return Err(Error::protocol(
                &self.addr,
                format!(
                    "no common version for API key {}: broker {min}..={max}, herald {}..={}",
                    R::KEY,
                    ours.0,
                    ours.1
                ),
            ));
        }
        Ok(v)
    }

    /// `host:port` of the broker.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// How many APIs the broker announced (for `herald doctor`).
    pub(crate) fn api_count(&self) -> usize {
        self.versions.len()
    }

    /// The broker's highest version of API `key`.
    pub(crate) fn max_version(&self, key: i16) -> Option<i16> {
        self.versions.get(&key).map(|(_, max)| *max)
    }

    /// Whether the broker supports API `R` at all.
    pub(crate) fn supports<R: Request>(&self) -> bool {
        self.versions.contains_key(&R::KEY)
    }

    /// Send a request and return a handle to its response. With
    /// `expect_response == false` the handle resolves once it is written.
    pub(crate) async fn send<R: Request>(
        &self,
        req: &R,
        version: i16,
        expect_response: bool,
    ) -> Result<InFlight, Error> {
        let correlation_id = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.to_string())));
        let hv = R::header_version(version);
        let encode_err = |e: String| Error::protocol(&self.addr, format!("encoding request: {e}"));
        let size = header
            .compute_size(hv)
            .map_err(|e| encode_err(e.to_string()))?
            + req
                .compute_size(version)
                .map_err(|e| encode_err(e.to_string()))?;
        let mut buf = BytesMut::with_capacity(size + 4);
        buf.put_i32(size as i32);
        header
            .encode(&mut buf, hv)
            .map_err(|e| encode_err(e.to_string()))?;
        req.encode(&mut buf, version)
            .map_err(|e| encode_err(e.to_string()))?;
        self.send_encoded(buf.freeze(), correlation_id, expect_response)
            .await
    }

    /// A correlation id and the client id, for a request framed by its
    /// caller (the Produce path, which writes batches straight into the
    /// frame) and then given to `send_encoded`.
    pub(crate) fn frame_ids(&self) -> (i32, &str) {
        (
            self.next_correlation.fetch_add(1, Ordering::Relaxed),
            &self.client_id,
        )
    }

    /// Send a framed request (size prefix included) whose header carries
    /// `correlation_id`.
    pub(crate) async fn send_encoded(
        &self,
        frame: Bytes,
        correlation_id: i32,
        expect_response: bool,
    ) -> Result<InFlight, Error> {
        let (tx, rx) = oneshot::channel();
        let (reply, sent) = if expect_response {
            (Some(tx), None)
        } else {
            (None, Some(tx))
        };
        let out = Outbound {
            frame,
            correlation_id,
            reply,
            sent,
        };
        if self.is_dead() || self.tx.send(out).await.is_err() {
            return Err(Error::Connection {
                broker: self.addr.to_string(),
                message: "connection lost".into(),
                kind: None,
            });
        }
        Ok(InFlight {
            rx,
            addr: self.addr.clone(),
        })
    }

    /// Send a request and wait for its decoded response.
    pub(crate) async fn request<R: Request>(
        &self,
        req: R,
        version: i16,
    ) -> Result<R::Response, Error> {
        let frame = self.send(&req, version, true).await?.wait().await?;
        decode_response::<R>(&self.addr, frame, version)
    }
}

/// Decode a response frame (after the size prefix) for request type `R`.
pub(crate) fn decode_response<R: Request>(
    addr: &str,
    mut frame: Bytes,
    version: i16,
) -> Result<R::Response, Error> {
    let hv = <R::Response as HeaderVersion>::header_version(version);
    crate::response_check::check(R::KEY, version, hv, &frame).map_err(|e| {
        Error::protocol(
            addr,
            format!("malformed response to API key {} v{version}: {e}", R::KEY),
        )
    })?;
    ResponseHeader::decode(&mut frame, hv)
        .map_err(|e| Error::protocol(addr, format!("bad response header: {e}")))?;
    R::Response::decode(&mut frame, version)
        .map_err(|e| Error::protocol(addr, format!("bad response to API key {}: {e}", R::KEY)))
}

/// A connected socket, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Requests to write: everyone's, and re-authentication's, which goes
/// first and is the only one taken while the connection is paused.
struct Lanes {
    rx: mpsc::Receiver<Outbound>,
    auth_rx: mpsc::Receiver<Outbound>,
}

async fn run(
    stream: Stream,
    lanes: Lanes,
    shared: Arc<Shared>,
    addr: Arc<str>,
    request_timeout: Duration,
) {
    match stream {
        Stream::Plain(s) => {
            let (rd, wr) = s.into_split();
            run_io(rd, wr, lanes, shared, addr, request_timeout).await
        }
        Stream::Tls(s) => {
            let (rd, wr) = tokio::io::split(*s);
            run_io(rd, wr, lanes, shared, addr, request_timeout).await
        }
    }
}

async fn run_io<R, W>(
    mut rd: R,
    mut wr: W,
    lanes: Lanes,
    shared: Arc<Shared>,
    addr: Arc<str>,
    request_timeout: Duration,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Lanes {
        mut rx,
        mut auth_rx,
    } = lanes;
    let writer = async {
        let mut paused = false;
        let mut auth_open = true;
        loop {
            let out = tokio::select! {
                biased;
                out = auth_rx.recv(), if auth_open => match out {
                    Some(out) => out,
                    None => {
                        auth_open = false;
                        // Re-authentication ended without resuming us: the
                        // session cannot be renewed, so fail rather than
                        // hold the queue forever.
                        if paused {
                            return Err(Error::Connection {
                                broker: addr.to_string(),
                                message: "SASL re-authentication stopped with the connection paused".into(),
                                kind: None,
                            });
                        }
                        continue;
                    }
                },
                _ = shared.kill.notified() => {
                    let why = shared.killed_by.lock().expect("not poisoned").take();
                    return Err(why.unwrap_or_else(|| Error::Connection {
                        broker: addr.to_string(),
                        message: "connection closed".into(),
                        kind: None,
                    }));
                }
                _ = shared.pause.notified(), if !paused => {
                    paused = true;
                    shared.paused.notify_one();
                    continue;
                }
                _ = shared.resume.notified(), if paused => {
                    paused = false;
                    continue;
                }
                out = rx.recv(), if !paused => match out {
                    Some(out) => out,
                    // Every handle is gone: close quietly.
                    None => return Ok(()),
                },
            };
            if let Some(reply) = out.reply {
                shared
                    .waiting
                    .lock()
                    .expect("not poisoned")
                    .push_back(Waiting {
                        correlation_id: out.correlation_id,
                        deadline: Instant::now() + request_timeout,
                        reply,
                    });
                shared.pushed.notify_one();
            }
            // A broker that stops reading must not wedge the connection
            // (acks=0 requests have no response deadline of their own).
            match tokio::time::timeout(request_timeout, wr.write_all(&out.frame)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Error::io(&addr, &e)),
                Err(_) => {
                    return Err(Error::RequestTimeout {
                        broker: addr.to_string(),
                        timeout: request_timeout,
                    })
                }
            }
            if let Some(sent) = out.sent {
                let _ = sent.send(Ok(Bytes::new()));
            }
        }
    };
    let reader = async {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            while buf.len() >= 4 {
                let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                if len < 4 || len as usize > MAX_RESPONSE_SIZE {
                    return Err(Error::protocol(&addr, format!("bad response size {len}")));
                }
                if buf.len() < 4 + len as usize {
                    buf.reserve(4 + len as usize - buf.len());
                    break;
                }
                buf.advance(4);
                let frame = buf.split_to(len as usize).freeze();
                let corr = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
                let (w, now_empty) = {
                    let mut waiting = shared.waiting.lock().expect("not poisoned");
                    (waiting.pop_front(), waiting.is_empty())
                };
                if now_empty {
                    shared.drained.notify_one();
                }
                match w {
                    Some(w) if w.correlation_id == corr => {
                        let _ = w.reply.send(Ok(frame));
                    }
                    other => {
                        return Err(Error::protocol(
                            &addr,
                            format!(
                                "response correlation id {corr} does not match the oldest request ({:?})",
                                other.map(|w| w.correlation_id)
                            ),
                        ))
                    }
                }
            }
            let deadline = shared
                .waiting
                .lock()
                .expect("not poisoned")
                .front()
                .map(|w| w.deadline);
            let pushed = shared.pushed.notified();
            tokio::select! {
                r = rd.read_buf(&mut buf) => match r {
                    Ok(0) => return Err(Error::io(&addr, &std::io::Error::from(std::io::ErrorKind::UnexpectedEof))),
                    Ok(_) => {}
                    Err(e) => return Err(crate::tls::refusal(&addr, &e).unwrap_or_else(|| Error::io(&addr, &e))),
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)).into()) , if deadline.is_some() => {
                    return Err(Error::RequestTimeout { broker: addr.to_string(), timeout: request_timeout });
                }
                _ = pushed, if deadline.is_none() => {}
            }
        }
    };
    let result: Result<(), Error> = tokio::select! {
        r = writer => r,
        r = reader => r,
    };
    shared.dead.store(true, Ordering::Release);
    let err = match result {
        Ok(()) => Error::Connection {
            broker: addr.to_string(),
            message: "connection closed".into(),
            kind: None,
        },
        Err(e) => {
            tracing::debug!(broker = %addr, error = %e, "connection failed");
            e
        }
    };
    rx.close();
    auth_rx.close();
    let waiting: Vec<Waiting> = shared
        .waiting
        .lock()
        .expect("not poisoned")
        .drain(..)
        .collect();
    for w in waiting {
        let _ = w.reply.send(Err(err.clone()));
    }
    while let Ok(out) = rx.try_recv().or_else(|_| auth_rx.try_recv()) {
        if let Some(r) = out.reply.or(out.sent) {
            let _ = r.send(Err(err.clone()));
        }
    }
}

/// One slot per broker address: the live connection, or why the last
/// attempt failed (so callers back off instead of hammering a dead broker).
#[derive(Default)]
struct Slot {
    conn: Option<Connection>,
    failures: u32,
    last_failure: Option<(Instant, Error)>,
}

/// Connections by `host:port`, shared by the senders and the metadata task:
/// one connection per broker, as in the Java client.
#[derive(Default)]
pub(crate) struct Pool {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    client_id: String,
    setup_timeout: Duration,
    request_timeout: Duration,
    backoff: (Duration, Duration),
    tls: Option<TlsConnector>,
    sasl: Option<SaslConfig>,
}

impl Pool {
    pub(crate) fn new(
        client_id: &str,
        setup_timeout: Duration,
        request_timeout: Duration,
        backoff: (Duration, Duration),
        tls: Option<TlsConnector>,
        sasl: Option<SaslConfig>,
    ) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            client_id: client_id.to_string(),
            setup_timeout,
            request_timeout,
            backoff,
            tls,
            sasl,
        }
    }

    /// A live connection to `addr`, connecting if needed. Within
    /// `reconnect.backoff.ms` (doubling to `reconnect.backoff.max.ms`) of a
    /// failed attempt, the failure is returned again without connecting.
    pub(crate) async fn get(&self, addr: &str) -> Result<Connection, Error> {
        let slot = self
            .slots
            .lock()
            .expect("not poisoned")
            .entry(addr.to_string())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(c) = &slot.conn {
            if !c.is_dead() {
                return Ok(c.clone());
            }
        }
        slot.conn = None;
        if let Some((at, err)) = &slot.last_failure {
            let shift = slot.failures.saturating_sub(1).min(16);
            let wait = (self.backoff.0 * (1u32 << shift)).min(self.backoff.1);
            if at.elapsed() < wait {
                return Err(err.clone());
            }
        }
        match Connection::connect(
            addr,
            &self.client_id,
            self.setup_timeout,
            self.request_timeout,
            self.tls.as_ref(),
            self.sasl.as_ref(),
        )
        .await
        {
            Ok(c) => {
                slot.conn = Some(c.clone());
                slot.failures = 0;
                slot.last_failure = None;
                Ok(c)
            }
            Err(e) => {
                slot.failures += 1;
                slot.last_failure = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_without_ports() {
        assert_eq!(
            host_of("b-1.kafka.us-east-1.amazonaws.com:9098"),
            "b-1.kafka.us-east-1.amazonaws.com"
        );
        assert_eq!(host_of("[::1]:9092"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }
}
