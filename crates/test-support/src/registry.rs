//! A stand-in for Confluent's Schema Registry on loopback, speaking its
//! REST API (the calls serializers and onboarding tools make), checked
//! against Confluent's own Python client in herald-schema's tests:
//!
//! - `POST /subjects/{s}/versions` register (the same schema again: the
//!   same id and version), `POST /subjects/{s}` look a schema up,
//! - `GET /schemas/ids/{id}`, `GET /subjects`, `GET /subjects/{s}/versions`,
//!   `GET /subjects/{s}/versions/{v|latest}`,
//! - `POST /compatibility/subjects/{s}/versions/{v|latest}` (BACKWARD for
//!   Avro records: every field of the new schema is in the old one with the
//!   same type, or has a default),
//! - `GET|PUT /config` and `/config/{s}`,
//!
//! with Confluent's error bodies (`{"error_code": 40401, "message": …}`),
//! optional basic auth (401 otherwise), a switch to answer 500, and counts
//! of reads and writes (to prove a producer configured not to register
//! never writes).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
struct Registered {
    id: u32,
    schema: String,
    schema_type: String,
}

#[derive(Debug, Default)]
struct Store {
    /// By id: the schema and its type.
    by_id: BTreeMap<u32, (String, String)>,
    /// By subject: versions in order (version = index + 1).
    subjects: BTreeMap<String, Vec<Registered>>,
    global_level: Option<String>,
    levels: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Shared {
    store: Mutex<Store>,
    reads: AtomicUsize,
    writes: AtomicUsize,
    failing: AtomicBool,
    /// Calls still to answer with 500 before answering normally.
    fail_next: AtomicUsize,
    /// `user:password` required, if set.
    basic: Mutex<Option<String>>,
}

/// The running stand-in; stops when dropped.
pub struct Registry {
    url: String,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

const CT: &str = "application/vnd.schemaregistry.v1+json";

fn answer(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, CT)], body.to_string()).into_response()
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    answer(status, json!({"error_code": code, "message": message}))
}

impl Registry {
    pub fn start() -> Registry {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let s = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(l.local_addr().unwrap()).unwrap();
                let app = Router::new()
                    .route("/subjects", get(subjects))
                    .route("/subjects/{subject}", post(lookup))
                    .route("/subjects/{subject}/versions", get(versions).post(register))
                    .route("/subjects/{subject}/versions/{version}", get(version))
                    .route("/schemas/ids/{id}", get(by_id))
                    .route(
                        "/compatibility/subjects/{subject}/versions/{version}",
                        post(compatibility),
                    )
                    .route("/config", get(config_global).put(config_global))
                    .route("/config/{subject}", get(config_subject).put(config_subject))
                    .layer(axum::middleware::from_fn_with_state(s.clone(), gate))
                    .with_state(s);
                let _ = axum::serve(l, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx.recv().unwrap();
        Registry {
            url: format!("http://{addr}"),
            shared,
            _stop: tx,
        }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Calls that read (GET) and that write (POST/PUT, lookups and
    /// compatibility checks excluded: they change nothing).
    pub fn reads(&self) -> usize {
        self.shared.reads.load(Ordering::Relaxed)
    }

    pub fn writes(&self) -> usize {
        self.shared.writes.load(Ordering::Relaxed)
    }

    /// Answer every call with 500 while `on`.
    pub fn fail(&self, on: bool) {
        self.shared.failing.store(on, Ordering::Relaxed);
    }

    /// Answer the next `n` calls with 500.
    pub fn fail_next(&self, n: usize) {
        self.shared.fail_next.store(n, Ordering::Relaxed);
    }

    /// Require HTTP basic auth with these credentials.
    pub fn require_basic(&self, user: &str, password: &str) {
        *self.shared.basic.lock().unwrap() = Some(format!("{user}:{password}"));
    }

    /// Register `schema` under `subject` directly; its id.
    pub fn register(&self, subject: &str, schema: &str, schema_type: &str) -> u32 {
        register_in(
            &mut self.shared.store.lock().unwrap(),
            subject,
            schema,
            schema_type,
        )
        .0
    }
}

/// The same schema text, whitespace aside (as the registry compares
/// schemas after parsing them).
fn canonical(schema: &str) -> String {
    serde_json::from_str::<Value>(schema).map_or_else(|_| schema.to_string(), |v| v.to_string())
}

fn register_in(store: &mut Store, subject: &str, schema: &str, schema_type: &str) -> (u32, u32) {
    let canon = canonical(schema);
    if let Some(vs) = store.subjects.get(subject) {
        if let Some((i, r)) = vs
            .iter()
            .enumerate()
            .find(|(_, r)| canonical(&r.schema) == canon)
        {
            return (r.id, i as u32 + 1);
        }
    }
    let id = match store
        .by_id
        .iter()
        .find(|(_, (s, t))| canonical(s) == canon && t == schema_type)
    {
        Some((id, _)) => *id,
        None => {
            let id = store.by_id.keys().next_back().map_or(1, |k| k + 1);
            store
                .by_id
                .insert(id, (schema.to_string(), schema_type.to_string()));
            id
        }
    };
    let vs = store.subjects.entry(subject.to_string()).or_default();
    vs.push(Registered {
        id,
        schema: schema.to_string(),
        schema_type: schema_type.to_string(),
    });
    (id, vs.len() as u32)
}

async fn gate(
    State(s): State<Arc<Shared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let once = s
        .fail_next
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok();
    if once || s.failing.load(Ordering::Relaxed) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            50001,
            "Error in the backend data store",
        );
    }
    let required = s.basic.lock().unwrap().clone();
    if let Some(creds) = required {
        let want = format!("Basic {}", base64_encode(creds.as_bytes()));
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(want.as_str()) {
            return error(StatusCode::UNAUTHORIZED, 40101, "Unauthorized");
        }
    }
    let writes = matches!(*req.method(), Method::PUT)
        || (req.method() == Method::POST && req.uri().path().ends_with("/versions"));
    if writes {
        s.writes.fetch_add(1, Ordering::Relaxed);
    } else {
        s.reads.fetch_add(1, Ordering::Relaxed);
    }
    next.run(req).await
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The `schema` and `schemaType` of a request body.
// The error is the answer itself; a test stand-in, not a hot path.
#[allow(clippy::result_large_err)]
fn schema_of(body: &Bytes) -> Result<(String, String), Response> {
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            "Invalid schema: the body is not JSON",
        )
    })?;
    let schema = v["schema"].as_str().ok_or_else(|| {
        error(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            "Invalid schema: no schema",
        )
    })?;
    let t = v["schemaType"].as_str().unwrap_or("AVRO").to_string();
    if t == "AVRO" && apache_avro_like_check(schema).is_err() {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            "Invalid schema",
        ));
    }
    Ok((schema.to_string(), t))
}

/// The stand-in's check that an Avro schema is at least JSON naming a type.
fn apache_avro_like_check(schema: &str) -> Result<(), ()> {
    match serde_json::from_str::<Value>(schema) {
        Ok(Value::String(_)) | Ok(Value::Array(_)) => Ok(()),
        Ok(Value::Object(o)) if o.contains_key("type") => Ok(()),
        _ => Err(()),
    }
}

fn with_type(mut v: Value, t: &str) -> Value {
    // Confluent leaves schemaType out for Avro.
    if t != "AVRO" {
        v["schemaType"] = json!(t);
    }
    v
}

async fn register(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Response {
    let (schema, t) = match schema_of(&body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (id, _) = register_in(&mut s.store.lock().unwrap(), &subject, &schema, &t);
    answer(StatusCode::OK, json!({"id": id}))
}

async fn lookup(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Response {
    let (schema, _) = match schema_of(&body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let store = s.store.lock().unwrap();
    let Some(vs) = store.subjects.get(&subject) else {
        return error(
            StatusCode::NOT_FOUND,
            40401,
            &format!("Subject '{subject}' not found."),
        );
    };
    let canon = canonical(&schema);
    match vs
        .iter()
        .enumerate()
        .find(|(_, r)| canonical(&r.schema) == canon)
    {
        Some((i, r)) => answer(
            StatusCode::OK,
            with_type(
                json!({"subject": subject, "id": r.id, "version": i + 1, "schema": r.schema}),
                &r.schema_type,
            ),
        ),
        None => error(StatusCode::NOT_FOUND, 40403, "Schema not found"),
    }
}

async fn subjects(State(s): State<Arc<Shared>>) -> Response {
    let names: Vec<String> = s.store.lock().unwrap().subjects.keys().cloned().collect();
    answer(StatusCode::OK, json!(names))
}

async fn versions(State(s): State<Arc<Shared>>, Path(subject): Path<String>) -> Response {
    match s.store.lock().unwrap().subjects.get(&subject) {
        Some(vs) => answer(StatusCode::OK, json!((1..=vs.len()).collect::<Vec<_>>())),
        None => error(
            StatusCode::NOT_FOUND,
            40401,
            &format!("Subject '{subject}' not found."),
        ),
    }
}

/// The registered version `v` ("latest" or a number) of `subject`.
#[allow(clippy::result_large_err)]
fn find(store: &Store, subject: &str, v: &str) -> Result<(usize, Registered), Response> {
    let Some(vs) = store.subjects.get(subject) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            40401,
            &format!("Subject '{subject}' not found."),
        ));
    };
    let i = match v {
        "latest" | "-1" => vs.len(),
        n => n
            .parse::<usize>()
            .map_err(|_| error(StatusCode::UNPROCESSABLE_ENTITY, 42202, "Invalid version"))?,
    };
    match vs.get(i.wrapping_sub(1)) {
        Some(r) => Ok((i, r.clone())),
        None => Err(error(StatusCode::NOT_FOUND, 40402, "Version not found.")),
    }
}

async fn version(
    State(s): State<Arc<Shared>>,
    Path((subject, v)): Path<(String, String)>,
) -> Response {
    match find(&s.store.lock().unwrap(), &subject, &v) {
        Ok((i, r)) => answer(
            StatusCode::OK,
            with_type(
                json!({"subject": subject, "version": i, "id": r.id, "schema": r.schema}),
                &r.schema_type,
            ),
        ),
        Err(e) => e,
    }
}

async fn by_id(State(s): State<Arc<Shared>>, Path(id): Path<u32>) -> Response {
    match s.store.lock().unwrap().by_id.get(&id) {
        Some((schema, t)) => answer(StatusCode::OK, with_type(json!({"schema": schema}), t)),
        None => error(StatusCode::NOT_FOUND, 40403, "Schema not found"),
    }
}

/// BACKWARD for Avro records: a consumer on the new schema reads data
/// written with the old one when each new field is in the old schema with
/// the same type, or has a default.
fn backward(new: &Value, old: &Value) -> bool {
    let fields = |v: &Value| -> BTreeMap<String, Value> {
        v["fields"]
            .as_array()
            .map(|fs| {
                fs.iter()
                    .filter_map(|f| Some((f["name"].as_str()?.to_string(), f.clone())))
                    .collect()
            })
            .unwrap_or_default()
    };
    if new["type"] != "record" || old["type"] != "record" {
        return new == old;
    }
    let (nf, of) = (fields(new), fields(old));
    nf.iter().all(|(name, f)| match of.get(name) {
        Some(o) => o["type"] == f["type"],
        None => f.get("default").is_some(),
    })
}

async fn compatibility(
    State(s): State<Arc<Shared>>,
    Path((subject, v)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (schema, _) = match schema_of(&body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let old = match find(&s.store.lock().unwrap(), &subject, &v) {
        Ok((_, r)) => r.schema,
        Err(e) => return e,
    };
    let (n, o): (Value, Value) = (
        serde_json::from_str(&schema).unwrap_or(Value::Null),
        serde_json::from_str(&old).unwrap_or(Value::Null),
    );
    answer(StatusCode::OK, json!({"is_compatible": backward(&n, &o)}))
}

async fn config_global(State(s): State<Arc<Shared>>, method: Method, body: Bytes) -> Response {
    let mut store = s.store.lock().unwrap();
    if method == Method::PUT {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        store.global_level = v["compatibility"].as_str().map(str::to_string);
        return answer(StatusCode::OK, json!({"compatibility": store.global_level}));
    }
    let level = store
        .global_level
        .clone()
        .unwrap_or_else(|| "BACKWARD".into());
    answer(StatusCode::OK, json!({"compatibilityLevel": level}))
}

async fn config_subject(
    State(s): State<Arc<Shared>>,
    Path(subject): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _ = headers;
    let mut store = s.store.lock().unwrap();
    if method == Method::PUT {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if let Some(l) = v["compatibility"].as_str() {
            store.levels.insert(subject.clone(), l.to_string());
        }
        return answer(StatusCode::OK, json!({"compatibility": v["compatibility"]}));
    }
    match store.levels.get(&subject) {
        Some(l) => answer(StatusCode::OK, json!({"compatibilityLevel": l})),
        None => error(
            StatusCode::NOT_FOUND,
            40408,
            &format!("Subject '{subject}' does not have subject-level compatibility configured"),
        ),
    }
}

/// Each Confluent-wire-format message decoded by Confluent's own Python
/// deserializer (`AvroDeserializer` for `format` "avro", `JSONDeserializer`
/// for "json") against the registry at `url`, as JSON values
/// (`python/confluent_decode.py`; scripts/setup installs confluent-kafka).
pub fn confluent_decode(url: &str, format: &str, topic: &str, messages: &[Vec<u8>]) -> Vec<Value> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut py = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/python/confluent_decode.py"
        ))
        .args([url, format, topic])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/setup installs confluent-kafka)");
    {
        let mut i = py.stdin.take().unwrap();
        for m in messages {
            let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(i, "{hex}").unwrap();
        }
    }
    let out = py.wait_with_output().unwrap();
    assert!(out.status.success(), "confluent_decode.py failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
