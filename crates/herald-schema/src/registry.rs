//! A client for Confluent's Schema Registry REST API: the calls the
//! serializers and onboarding need (a schema by id, a schema's lookup under
//! a subject, a subject's versions and latest, register, compatibility,
//! the compatibility level), with basic auth or a bearer token, TLS through
//! rustls (ring), retries with backoff for 5xx and unreachable servers,
//! and a cache (ids forever; a subject's latest version for
//! `latest.cache.ttl.sec`). Errors carry the registry's code and say what it
//! means (40401 subject not found, 40403 schema not found, 409
//! incompatible, 42201 invalid schema, 401/403).
//!
//! HTTP/1.1 through hyper, one connection per call: the serializers call
//! the registry once per schema (then the cache answers), so a pool would
//! save nothing worth its code.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::net::TcpStream;

/// The client's settings, by Confluent's names. Its `Debug` never shows the
/// credentials.
#[derive(Clone)]
pub struct RegistryConfig {
    /// `schema.registry.url`: one or more base URLs (tried in order).
    pub urls: Vec<String>,
    /// `basic.auth.user.info` (`user:password`).
    pub basic_auth: Option<String>,
    /// `bearer.auth.token`.
    pub bearer_token: Option<String>,
    /// `schema.registry.ssl.ca.location`: the CA to trust (PEM) instead of
    /// the system's.
    pub ca_location: Option<PathBuf>,
    /// `request.timeout.ms` (default 30 s) for each call.
    pub request_timeout: Duration,
    /// `max.retries` (default 3) for 5xx answers and unreachable servers.
    pub max_retries: u32,
    /// `retries.wait.ms` (default 1000), doubled per retry up to
    /// `retries.max.wait.ms` (default 20000).
    pub retries_wait: Duration,
    pub retries_max_wait: Duration,
    /// `latest.cache.ttl.sec`: how long a subject's latest version is
    /// cached (`None`, Confluent's -1: for ever).
    pub latest_cache_ttl: Option<Duration>,
}

impl fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("urls", &self.urls)
            .field("basic_auth", &self.basic_auth.as_ref().map(|_| "(set)"))
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "(set)"))
            .field("ca_location", &self.ca_location)
            .finish_non_exhaustive()
    }
}

/// `url` without `user:password@`, and that user info (Confluent's
/// `basic.auth.credentials.source=URL`, its default).
fn without_userinfo(url: &str) -> (String, Option<String>) {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            return (
                format!("{scheme}://{host}{path}"),
                Some(userinfo.to_string()),
            );
        }
    }
    (url.to_string(), None)
}

impl RegistryConfig {
    /// Confluent's defaults for these URLs (comma-separated, as
    /// `schema.registry.url` is written). Credentials in a URL
    /// (`https://user:password@host`) become its basic auth and leave the
    /// URL (so no error or log shows them).
    pub fn new(urls: &str) -> RegistryConfig {
        let mut basic_auth = None;
        let urls = urls
            .split(',')
            .map(|u| u.trim().trim_end_matches('/'))
            .filter(|u| !u.is_empty())
            .map(|u| {
                let (u, info) = without_userinfo(u);
                basic_auth = basic_auth.take().or(info);
                u
            })
            .collect();
        RegistryConfig {
            urls,
            basic_auth,
            bearer_token: None,
            ca_location: None,
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
            retries_wait: Duration::from_secs(1),
            retries_max_wait: Duration::from_secs(20),
            latest_cache_ttl: None,
        }
    }

    /// Apply a setting by Confluent's name; `Ok(false)` if `key` is not a
    /// registry setting (it may be the serializer's).
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let millis = |v: &str| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("{key}: `{v}` is not a number of milliseconds"))
        };
        match key {
            "schema.registry.url" | "url" => {
                *self = RegistryConfig {
                    urls: RegistryConfig::new(value).urls,
                    ..self.clone()
                }
            }
            "basic.auth.user.info" => self.basic_auth = Some(value.to_string()),
            "bearer.auth.token" => self.bearer_token = Some(value.to_string()),
            "schema.registry.ssl.ca.location" => self.ca_location = Some(PathBuf::from(value)),
            "request.timeout.ms" => self.request_timeout = millis(value)?,
            "retries.wait.ms" => self.retries_wait = millis(value)?,
            "retries.max.wait.ms" => self.retries_max_wait = millis(value)?,
            "max.retries" => {
                self.max_retries = value
                    .parse()
                    .map_err(|_| format!("{key}: `{value}` is not a number"))?
            }
            "latest.cache.ttl.sec" => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| format!("{key}: `{value}` is not a number of seconds"))?;
                self.latest_cache_ttl = u64::try_from(n).ok().map(Duration::from_secs);
            }
            // Confluent's way to say the credentials are given inline.
            "basic.auth.credentials.source" | "bearer.auth.credentials.source" => {}
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Why a registry call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// The registry answered with an error: its HTTP status, its
    /// `error_code` and `message`, and what that means.
    Refused {
        status: u16,
        code: u32,
        message: String,
    },
    /// No registry URL could be reached (after the retries).
    Unreachable { url: String, error: String },
    /// The settings are wrong (a URL, the CA file).
    Config(String),
    /// The registry's answer was not what the API says.
    BadAnswer(String),
}

impl RegistryError {
    /// What a registry error code means, and what to do.
    fn meaning(status: u16, code: u32) -> &'static str {
        match (status, code) {
            (_, 40401) => "the subject does not exist: check the subject name (TopicNameStrategy gives TOPIC-value and TOPIC-key) or register the schema",
            (_, 40402) => "that version of the subject does not exist",
            (_, 40403) => "no such schema: check the schema id, or that this schema is registered under the subject",
            (_, 42201) => "the registry says the schema is invalid",
            (_, 42202) => "invalid version",
            (409, _) => "the schema is incompatible with the subject's earlier versions under its compatibility level",
            (401, _) => "unauthorized: check basic.auth.user.info or bearer.auth.token",
            (403, _) => "forbidden: these credentials may not do this (producers on an event bus usually may not register)",
            (s, _) if s >= 500 => "the registry failed; it was retried",
            _ => "",
        }
    }

    /// The registry's error code, if it answered with one.
    pub fn code(&self) -> Option<u32> {
        match self {
            RegistryError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Refused {
                status,
                code,
                message,
            } => {
                write!(f, "schema registry: {status} (error {code}) {message}")?;
                let m = Self::meaning(*status, *code);
                if !m.is_empty() {
                    write!(f, ": {m}")?;
                }
                Ok(())
            }
            RegistryError::Unreachable { url, error } => {
                write!(f, "schema registry {url} unreachable: {error}")
            }
            RegistryError::Config(m) => write!(f, "schema registry settings: {m}"),
            RegistryError::BadAnswer(m) => write!(f, "schema registry: unexpected answer: {m}"),
        }
    }
}

impl std::error::Error for RegistryError {}

/// A schema as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    pub schema: String,
    /// `AVRO` (the registry leaves it out), `JSON` or `PROTOBUF`.
    pub schema_type: String,
}

/// A subject's version of a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: RegisteredSchema,
}

/// A version of a subject: a number, or the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Latest,
    Number(u32),
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::Number(n) => write!(f, "{n}"),
        }
    }
}

#[derive(Debug, Default)]
struct Cache {
    by_id: HashMap<u32, RegisteredSchema>,
    /// (subject, schema text, schema type, normalize) → its version and
    /// id, from lookups; → its id, from registrations.
    ids: HashMap<(String, String, String, bool), SubjectVersion>,
    registered: HashMap<(String, String, String, bool), u32>,
    latest: HashMap<String, (Instant, SubjectVersion)>,
}

/// The client. Cheap to clone (the cache is shared).
#[derive(Clone)]
pub struct RegistryClient {
    cfg: Arc<RegistryConfig>,
    tls: Option<tokio_rustls::TlsConnector>,
    cache: Arc<Mutex<Cache>>,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the credentials.
        f.debug_struct("RegistryClient")
            .field("urls", &self.cfg.urls)
            .finish()
    }
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Percent-encode a path segment (subjects may hold `/` or spaces).
fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl RegistryClient {
    pub fn new(cfg: RegistryConfig) -> Result<RegistryClient, RegistryError> {
        if cfg.urls.is_empty() {
            return Err(RegistryError::Config(
                "schema.registry.url is empty: give the registry's URL, e.g. http://registry:8081"
                    .into(),
            ));
        }
        let mut tls_needed = false;
        for u in &cfg.urls {
            let uri: Uri = u.parse().map_err(|e| {
                RegistryError::Config(format!("schema.registry.url `{u}` is not a URL: {e}"))
            })?;
            match uri.scheme_str() {
                Some("http") => {}
                Some("https") => tls_needed = true,
                _ => {
                    return Err(RegistryError::Config(format!(
                        "schema.registry.url `{u}`: use http:// or https://"
                    )))
                }
            }
        }
        let tls = if tls_needed {
            Some(connector(cfg.ca_location.as_ref())?)
        } else {
            None
        };
        Ok(RegistryClient {
            cfg: Arc::new(cfg),
            tls,
            cache: Arc::new(Mutex::new(Cache::default())),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `GET /schemas/ids/{id}` (cached for ever: an id never changes).
    pub async fn schema_by_id(&self, id: u32) -> Result<RegisteredSchema, RegistryError> {
        if let Some(s) = self.cache().by_id.get(&id) {
            return Ok(s.clone());
        }
        let v = self
            .call(Method::GET, &format!("/schemas/ids/{id}"), None)
            .await?;
        let s = registered(&v)?;
        self.cache().by_id.insert(id, s.clone());
        Ok(s)
    }

    /// `POST /subjects/{subject}`: the version and id of `schema` under
    /// `subject` (cached).
    pub async fn lookup(
        &self,
        subject: &str,
        schema: &str,
        schema_type: &str,
        normalize: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let key = (
            subject.to_string(),
            schema.to_string(),
            schema_type.to_string(),
            normalize,
        );
        if let Some(v) = self.cache().ids.get(&key) {
            return Ok(v.clone());
        }
        let path = format!("/subjects/{}?normalize={normalize}", segment(subject));
        let v = self
            .call(Method::POST, &path, Some(body(schema, schema_type)))
            .await?;
        let sv = subject_version(&v, subject)?;
        self.cache().ids.insert(key, sv.clone());
        Ok(sv)
    }

    /// `POST /subjects/{subject}/versions`: register `schema` (the same
    /// schema again gets the same id); its id.
    pub async fn register(
        &self,
        subject: &str,
        schema: &str,
        schema_type: &str,
        normalize: bool,
    ) -> Result<u32, RegistryError> {
        let key = (
            subject.to_string(),
            schema.to_string(),
            schema_type.to_string(),
            normalize,
        );
        if let Some(id) = self.cache().registered.get(&key) {
            return Ok(*id);
        }
        let path = format!(
            "/subjects/{}/versions?normalize={normalize}",
            segment(subject)
        );
        let v = self
            .call(Method::POST, &path, Some(body(schema, schema_type)))
            .await?;
        let id = v["id"]
            .as_u64()
            .ok_or_else(|| RegistryError::BadAnswer(format!("no id in {v}")))?
            as u32;
        Ok(id)
    }

    /// `GET /subjects`.
    pub async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        let v = self.call(Method::GET, "/subjects", None).await?;
        serde_json::from_value(v.clone()).map_err(|_| RegistryError::BadAnswer(v.to_string()))
    }

    /// `GET /subjects/{subject}/versions`.
    pub async fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        let v = self
            .call(
                Method::GET,
                &format!("/subjects/{}/versions", segment(subject)),
                None,
            )
            .await?;
        serde_json::from_value(v.clone()).map_err(|_| RegistryError::BadAnswer(v.to_string()))
    }

    /// `GET /subjects/{subject}/versions/{version}`; the latest is cached
    /// for `latest.cache.ttl.sec`.
    pub async fn version(
        &self,
        subject: &str,
        version: Version,
    ) -> Result<SubjectVersion, RegistryError> {
        if version == Version::Latest {
            if let Some((at, v)) = self.cache().latest.get(subject) {
                if self
                    .cfg
                    .latest_cache_ttl
                    .is_none_or(|ttl| at.elapsed() < ttl)
                {
                    return Ok(v.clone());
                }
            }
        }
        let path = format!("/subjects/{}/versions/{version}", segment(subject));
        let v = self.call(Method::GET, &path, None).await?;
        let sv = subject_version(&v, subject)?;
        let mut c = self.cache();
        c.by_id.insert(sv.id, sv.schema.clone());
        if version == Version::Latest {
            c.latest
                .insert(subject.to_string(), (Instant::now(), sv.clone()));
        }
        Ok(sv)
    }

    /// `POST /compatibility/subjects/{subject}/versions/{version}`: whether
    /// `schema` is compatible under the subject's level.
    pub async fn is_compatible(
        &self,
        subject: &str,
        version: Version,
        schema: &str,
        schema_type: &str,
    ) -> Result<bool, RegistryError> {
        let path = format!(
            "/compatibility/subjects/{}/versions/{version}",
            segment(subject)
        );
        let v = self
            .call(Method::POST, &path, Some(body(schema, schema_type)))
            .await?;
        v["is_compatible"]
            .as_bool()
            .ok_or_else(|| RegistryError::BadAnswer(v.to_string()))
    }

    /// `GET /config/{subject}` (or `/config` with `None`): the
    /// compatibility level. A subject without its own level answers with
    /// the global one.
    pub async fn compatibility_level(
        &self,
        subject: Option<&str>,
    ) -> Result<String, RegistryError> {
        let path = match subject {
            Some(s) => format!("/config/{}?defaultToGlobal=true", segment(s)),
            None => "/config".to_string(),
        };
        let v = match self.call(Method::GET, &path, None).await {
            Err(e) if e.code() == Some(40408) => self.call(Method::GET, "/config", None).await?,
            r => r?,
        };
        v["compatibilityLevel"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| RegistryError::BadAnswer(v.to_string()))
    }

    /// One API call, on each URL in turn, retried with backoff on 5xx and
    /// unreachable servers.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, RegistryError> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        let mut wait = self.cfg.retries_wait;
        let mut last = None;
        for attempt in 0..=self.cfg.max_retries {
            if attempt > 0 {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(self.cfg.retries_max_wait);
            }
            for base in &self.cfg.urls {
                let once = tokio::time::timeout(
                    self.cfg.request_timeout,
                    self.once(base, &method, path, body.clone()),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "no answer within {} ms (request.timeout.ms)",
                        self.cfg.request_timeout.as_millis()
                    ))
                });
                match once {
                    Ok((status, bytes)) if status.is_success() => {
                        return serde_json::from_slice(&bytes)
                            .map_err(|e| RegistryError::BadAnswer(format!("not JSON ({e})")))
                    }
                    Ok((status, bytes)) => {
                        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let e = RegistryError::Refused {
                            status: status.as_u16(),
                            code: v["error_code"].as_u64().unwrap_or(status.as_u16() as u64) as u32,
                            message: v["message"]
                                .as_str()
                                .unwrap_or_else(|| status.canonical_reason().unwrap_or(""))
                                .to_string(),
                        };
                        // 5xx, 408 and 429 are retried (as Confluent's
                        // client does); other refusals are answers.
                        let again = status.is_server_error()
                            || status == StatusCode::REQUEST_TIMEOUT
                            || status == StatusCode::TOO_MANY_REQUESTS;
                        if !again {
                            return Err(e);
                        }
                        last = Some(e);
                    }
                    Err(error) => {
                        last = Some(RegistryError::Unreachable {
                            url: base.clone(),
                            error,
                        })
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::Config("no URL".into())))
    }

    /// One request on a new connection: the status and the body.
    async fn once(
        &self,
        base: &str,
        method: &Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), String> {
        let uri: Uri = format!("{base}{path}")
            .parse()
            .map_err(|e| format!("{e}"))?;
        // An IPv6 host comes with its brackets: not for connect(2) or TLS.
        let host = uri
            .host()
            .ok_or("no host in the URL")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let mut req = Request::builder()
            .method(method.clone())
            .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .header(hyper::header::ACCEPT, CONTENT_TYPE)
            .header(hyper::header::USER_AGENT, "herald-schema")
            .header(hyper::header::CONNECTION, "close");
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, CONTENT_TYPE);
        }
        if let Some(userinfo) = &self.cfg.basic_auth {
            req = req.header(
                hyper::header::AUTHORIZATION,
                format!("Basic {}", base64(userinfo.as_bytes())),
            );
        } else if let Some(token) = &self.cfg.bearer_token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| e.to_string())?;
        let resp = if tls {
            let connector = self.tls.as_ref().ok_or("TLS is not set up")?;
            let name = ServerName::try_from(host.clone())
                .map_err(|_| format!("`{host}` is not a valid TLS server name"))?;
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {host}:{port} failed: {e}"))?;
            send(TokioIo::new(stream), req).await?
        } else {
            send(TokioIo::new(tcp), req).await?
        };
        Ok(resp)
    }
}

async fn send<I>(io: I, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}

fn body(schema: &str, schema_type: &str) -> Value {
    if schema_type == "AVRO" {
        json!({ "schema": schema })
    } else {
        json!({ "schema": schema, "schemaType": schema_type })
    }
}

fn registered(v: &Value) -> Result<RegisteredSchema, RegistryError> {
    Ok(RegisteredSchema {
        schema: v["schema"]
            .as_str()
            .ok_or_else(|| RegistryError::BadAnswer(format!("no schema in {v}")))?
            .to_string(),
        schema_type: v["schemaType"].as_str().unwrap_or("AVRO").to_string(),
    })
}

fn subject_version(v: &Value, subject: &str) -> Result<SubjectVersion, RegistryError> {
    Ok(SubjectVersion {
        subject: v["subject"].as_str().unwrap_or(subject).to_string(),
        version: v["version"]
            .as_u64()
            .ok_or_else(|| RegistryError::BadAnswer(format!("no version in {v}")))?
            as u32,
        id: v["id"]
            .as_u64()
            .ok_or_else(|| RegistryError::BadAnswer(format!("no id in {v}")))? as u32,
        schema: registered(v)?,
    })
}

fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// rustls (ring) trusting the system's CAs, or `ca` instead.
fn connector(ca: Option<&PathBuf>) -> Result<tokio_rustls::TlsConnector, RegistryError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect())
                .map_err(|e| {
                    RegistryError::Config(format!(
                        "schema.registry.ssl.ca.location {}: {e}",
                        path.display()
                    ))
                })?;
            for c in certs {
                roots.add(c).map_err(|e| {
                    RegistryError::Config(format!(
                        "schema.registry.ssl.ca.location {}: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_and_never_show() {
        let c = RegistryConfig::new("https://svc:s3cret@registry.example:8081/");
        assert_eq!(c.urls, ["https://registry.example:8081"]);
        assert_eq!(c.basic_auth.as_deref(), Some("svc:s3cret"));
        let mut c = c;
        c.bearer_token = Some("tok-123".into());
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("tok-123"),
            "{shown}"
        );
        assert_eq!(without_userinfo("http://h:1/x").0, "http://h:1/x");
    }

    #[test]
    fn base64_and_segments() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(segment("orders-value"), "orders-value");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
