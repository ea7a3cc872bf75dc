//! RFC 9457 `application/problem+json` answers: every error the gateway
//! gives has a `detail` that says what to do.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The detail of a problem answer, kept on the response for the log line.
#[derive(Debug, Clone)]
pub struct Failure(pub String);

/// A problem answer with `detail`.
pub fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let detail = detail.into();
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or(""),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut r = (status, body.to_string()).into_response();
    r.extensions_mut().insert(Failure(detail));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    r
}

/// `r` with `Retry-After: secs` (at least 1).
pub fn retry_after(mut r: Response, secs: u64) -> Response {
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

/// A JSON answer.
pub fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
