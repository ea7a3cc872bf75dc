//! `GET /openapi.json`: an OpenAPI 3.1 description of the API, built from
//! [`ROUTES`], the same table the router is built from (`server.rs`),
//! with the statuses each endpoint answers. A test serves it and calls
//! every documented path, so a route added without its description, or a
//! description of a route that is gone, fails.

use serde_json::{json, Map, Value};

/// One endpoint: method, path, summary, and the statuses it answers with
/// what each means.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub answers: &'static [(u16, &'static str)],
}

pub const PUBLISH: &str = "/v1/instances/{instance}/topics/{topic}/events";

/// Every endpoint the gateway serves.
pub const ROUTES: &[Route] = &[
    Route {
        method: "post",
        path: PUBLISH,
        summary: "Publish one event ({\"value\": …, \"key\"?, \"headers\"?}) or a batch \
                  ({\"events\": [ … ]}, all or nothing) to a configured instance and topic",
        answers: &[
            (200, "wait=true: Kafka acknowledged every event (partition, offset, timestamp)"),
            (202, "every event is durable in the gateway's spool; ids returned"),
            (400, "the body is not JSON or not an event or batch (says where)"),
            (401, "no or unknown bearer token"),
            (403, "the token may not publish to this instance and topic"),
            (404, "unknown instance or topic (lists the ones the token may use)"),
            (408, "the body did not arrive within limits.body_timeout_ms"),
            (409, "a request with this Idempotency-Key is still in progress (Retry-After)"),
            (413, "the body is over limits.max_body_bytes"),
            (415, "the body is not sent as application/json"),
            (422, "an event does not fit its topic's schema (path and rule); Idempotency-Key reused with another body; or (wait=true) Kafka refused an event for good"),
            (429, "the token is over its rate limit (Retry-After)"),
            (503, "the spool is full, Kafka is unreachable with fallback = \"none\", the topic's schema cannot be read from the registry, or the gateway is shutting down (Retry-After)"),
            (504, "wait=true: send_timeout_ms passed; the events stay in the spool and will be delivered"),
        ],
    },
    Route {
        method: "get",
        path: "/v1/instances",
        summary: "The instances and topics this token may publish to, each instance's Kafka \
                  state and spool backlog",
        answers: &[(200, "the instances"), (401, "no or unknown bearer token")],
    },
    Route {
        method: "get",
        path: "/healthz",
        summary: "The process is alive",
        answers: &[(200, "ok")],
    },
    Route {
        method: "get",
        path: "/readyz",
        summary: "The gateway can accept events (spools not full, not shutting down)",
        answers: &[(200, "ready"), (503, "not ready, and why")],
    },
    Route {
        method: "get",
        path: "/metrics",
        summary: "Prometheus text format: events, spool backlog and age, answers, latencies",
        answers: &[(200, "the metrics")],
    },
    Route {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        answers: &[(200, "OpenAPI 3.1")],
    },
    Route {
        method: "get",
        path: "/",
        summary: "The operator's status page (HTML, refreshing itself): instances, topics' \
                  rates, spool backlog, dead letters, last errors. Loopback clients, or a \
                  token with permissions = [\"status\"] (bearer, or basic auth's password)",
        answers: &[
            (200, "the page"),
            (401, "not loopback and no (or an unknown) token; asks for basic auth"),
            (403, "the token lacks the status permission"),
        ],
    },
];

fn schemas() -> Value {
    json!({
        "Event": {
            "type": "object",
            "required": ["value"],
            "additionalProperties": false,
            "properties": {
                "value": {"description": "Any JSON: the record's value, as sent"},
                "key": {"type": ["string", "null"], "description": "The record's key (partition by murmur2); when absent, the topic's `key` pointer into the value"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "Batch": {
            "type": "object",
            "required": ["events"],
            "additionalProperties": false,
            "properties": {"events": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Event"}}},
        },
        "Accepted": {
            "type": "object",
            "properties": {"ids": {"type": "array", "items": {"type": "string", "description": "SPOOL_ID:SEQ, also the record's herald.spool.id header"}}},
        },
        "Delivered": {
            "type": "object",
            "properties": {"events": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "partition": {"type": "integer"},
                    "offset": {"type": "integer"},
                    "timestamp": {"type": "integer"},
                },
            }}},
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string", "description": "What went wrong and what to do"},
            },
        },
    })
}

fn operation(r: &Route) -> Value {
    let mut responses = Map::new();
    for (status, what) in r.answers {
        let schema = match (r.path, *status) {
            (PUBLISH, 202) => json!({"$ref": "#/components/schemas/Accepted"}),
            (PUBLISH, 200) => json!({"$ref": "#/components/schemas/Delivered"}),
            (_, s) if s >= 400 => json!({"$ref": "#/components/schemas/Problem"}),
            _ => json!({}),
        };
        let media = if *status >= 400 {
            "application/problem+json"
        } else if r.path == "/metrics" {
            "text/plain"
        } else {
            "application/json"
        };
        responses.insert(
            status.to_string(),
            json!({"description": what, "content": {media: {"schema": schema}}}),
        );
    }
    let mut op = json!({"summary": r.summary, "responses": responses});
    if r.path == PUBLISH {
        op["parameters"] = json!([
            {"name": "instance", "in": "path", "required": true, "schema": {"type": "string"}},
            {"name": "topic", "in": "path", "required": true, "schema": {"type": "string"}},
            {"name": "wait", "in": "query", "schema": {"type": "boolean"}, "description": "answer once Kafka acknowledged (200) instead of once stored (202)"},
            {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 255}, "description": "a retry with the same key and body within 24 h gets the first answer and stores nothing again"},
        ]);
        op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {
            "oneOf": [{"$ref": "#/components/schemas/Event"}, {"$ref": "#/components/schemas/Batch"}]
        }}}});
    }
    if !matches!(
        r.path,
        "/healthz" | "/readyz" | "/metrics" | "/openapi.json"
    ) {
        op["security"] = json!([{"bearer": []}]);
    }
    op
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let entry = paths.entry(r.path).or_insert_with(|| json!({}));
        entry[r.method] = operation(r);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "herald gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Publish JSON events over HTTP to the Kafka instances and topics an administrator configured. A 202 means the events are durable in the gateway's spool.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    })
}
