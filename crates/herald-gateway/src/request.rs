//! A publish request's body, read into records: one event
//! `{"value": …, "key": "…"?, "headers": {"name": "value"}?}` or a batch
//! `{"events": [ … ]}`. Pure functions; every refusal says where (line and
//! column of a JSON syntax error, or the field) and what is allowed.

use bytes::Bytes;
use herald::record::Header;
use herald::Record;
use serde_json::Value;

use crate::config::TopicRule;

/// Why a body is refused (a 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest(pub String);

/// How a topic with schemas writes an event's value and key (through the
/// schema registry); an error says where and what the schema wants.
pub trait Codec {
    fn value(&self, v: &Value) -> Result<Vec<u8>, String>;
    fn key(&self, k: &str) -> Result<Vec<u8>, String>;
}

/// Why events were refused: the body is wrong (400), or an event does not
/// fit its topic's schema (422).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Bad(BadRequest),
    Unfit(String),
}

/// The events of a body, as records for `topic` with its rule applied.
pub fn records(
    body: &[u8],
    topic: &str,
    rule: &TopicRule,
    max_events: usize,
) -> Result<Vec<Record>, BadRequest> {
    records_with(body, topic, rule, max_events, None).map_err(|r| match r {
        Refused::Bad(b) => b,
        Refused::Unfit(u) => BadRequest(u),
    })
}

/// As [`records`], each value and key written by `codec` when the topic
/// has schemas.
pub fn records_with(
    body: &[u8],
    topic: &str,
    rule: &TopicRule,
    max_events: usize,
    codec: Option<&dyn Codec>,
) -> Result<Vec<Record>, Refused> {
    let parsed = parse(body, rule, max_events).map_err(Refused::Bad)?;
    let mut out = Vec::with_capacity(parsed.len());
    for (at, e) in parsed {
        let (value, key) = match codec {
            None => (
                serde_json::to_vec(&e.value).expect("a JSON value serializes"),
                e.key.map(String::into_bytes),
            ),
            Some(c) => {
                let v = c
                    .value(&e.value)
                    .map_err(|why| Refused::Unfit(format!("{}{why}", field(&at, "value"))))?;
                let k = match e.key {
                    Some(k) => Some(
                        c.key(&k)
                            .map_err(|why| Refused::Unfit(format!("{}{why}", field(&at, "key"))))?,
                    ),
                    None => None,
                };
                (v, k)
            }
        };
        let mut r = Record::new(topic, Bytes::from(value));
        if let Some(k) = key {
            r = r.key(Bytes::from(k));
        }
        r.headers = e.headers;
        out.push(r);
    }
    Ok(out)
}

/// An event read from a body: its value, key (given or by the pointer)
/// and headers.
struct Event {
    value: Value,
    key: Option<String>,
    headers: Vec<Header>,
}

/// The events of a body with where each is (`events[i]`, or empty).
fn parse(
    body: &[u8],
    rule: &TopicRule,
    max_events: usize,
) -> Result<Vec<(String, Event)>, BadRequest> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        BadRequest(format!(
            "the body is not JSON: {} (line {}, column {})",
            strip_position(&e.to_string()),
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(mut top) = doc else {
        return Err(BadRequest(
            "the body must be a JSON object: {\"value\": …} for one event, or {\"events\": [ … ]}"
                .into(),
        ));
    };
    let events: Vec<(String, Value)> = match top.remove("events") {
        Some(Value::Array(list)) => {
            if let Some(k) = top.keys().next() {
                return Err(BadRequest(format!(
                    "unexpected field `{k}` beside `events` (a batch is {{\"events\": [ … ]}})"
                )));
            }
            if list.is_empty() {
                return Err(BadRequest(
                    "`events` is empty: send at least one event".into(),
                ));
            }
            if list.len() > max_events {
                return Err(BadRequest(format!(
                    "{} events in one batch; at most {max_events} (limits.max_events_per_batch)",
                    list.len()
                )));
            }
            list.into_iter()
                .enumerate()
                .map(|(i, e)| (format!("events[{i}]"), e))
                .collect()
        }
        Some(_) => return Err(BadRequest("`events` must be an array of events".into())),
        None => vec![(String::new(), Value::Object(top))],
    };
    events
        .into_iter()
        .map(|(at, e)| event(&at, e, rule).map(|ev| (at, ev)))
        .collect()
}

/// serde_json's message without its own " at line L column C" (we say it).
fn strip_position(m: &str) -> &str {
    m.find(" at line ").map_or(m, |i| &m[..i])
}

fn field(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_string()
    } else {
        format!("{at}.{name}")
    }
}

fn event(at: &str, e: Value, rule: &TopicRule) -> Result<Event, BadRequest> {
    let Value::Object(mut o) = e else {
        return Err(BadRequest(format!(
            "{}: an event is an object {{\"value\": …, \"key\": \"…\"?, \"headers\": {{…}}?}}",
            if at.is_empty() { "body" } else { at }
        )));
    };
    let value = o.remove("value").ok_or_else(|| {
        BadRequest(format!(
            "{}: missing (the event's JSON value)",
            field(at, "value")
        ))
    })?;
    let key = match o.remove("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k),
        Some(_) => {
            return Err(BadRequest(format!(
                "{}: a key is a string",
                field(at, "key")
            )))
        }
    };
    let mut headers: Vec<Header> = rule
        .headers
        .iter()
        .map(|(k, v)| Header {
            key: k.clone(),
            value: Some(Bytes::from(v.clone())),
        })
        .collect();
    match o.remove("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (name, v) in h {
                match v {
                    Value::String(s) => headers.push(Header {
                        key: name,
                        value: Some(Bytes::from(s)),
                    }),
                    other => {
                        return Err(BadRequest(format!(
                            "{}: a header value is a string, found {}",
                            field(at, &format!("headers.{name}")),
                            kind(&other)
                        )))
                    }
                }
            }
        }
        Some(_) => {
            return Err(BadRequest(format!(
                "{}: headers are an object of strings, e.g. {{\"source\": \"billing\"}}",
                field(at, "headers")
            )))
        }
    }
    if let Some(k) = o.keys().next() {
        return Err(BadRequest(format!(
            "{}: unknown field (an event has value, key and headers)",
            field(at, k)
        )));
    }
    // The topic's key pointer, when the request gives no key.
    let key = key.or_else(|| {
        let p = rule.key.as_deref()?;
        match value.pointer(p)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    });
    Ok(Event {
        value,
        key,
        headers,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> TopicRule {
        TopicRule {
            key: Some("/customer/id".into()),
            headers: vec![("source".into(), "gateway".into())],
            value_schema: None,
            key_schema: None,
        }
    }

    #[test]
    fn one_event_with_its_key_from_the_pointer_and_headers() {
        let r = records(
            br#"{"value": {"customer": {"id": 42}, "n": 1}, "headers": {"h": "v"}}"#,
            "orders",
            &rule(),
            10,
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].key.as_deref(), Some(&b"42"[..]));
        assert_eq!(
            r[0].value.as_deref(),
            Some(&br#"{"customer":{"id":42},"n":1}"#[..])
        );
        let h: Vec<(&str, &[u8])> = r[0]
            .headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_deref().unwrap()))
            .collect();
        assert_eq!(h, [("source", &b"gateway"[..]), ("h", &b"v"[..])]);
        // A key given wins over the pointer.
        let r = records(
            br#"{"value": {"customer": {"id": "c7"}}, "key": "k"}"#,
            "orders",
            &rule(),
            10,
        )
        .unwrap();
        assert_eq!(r[0].key.as_deref(), Some(&b"k"[..]));
    }

    #[test]
    fn refusals_say_where() {
        let cases: [(&[u8], &str); 9] = [
            (
                b"{\"value\": 1,\n  \"key\": }",
                "not JSON: expected value (line 2, column 10)",
            ),
            (b"[1]", "must be a JSON object"),
            (b"{\"key\": \"k\"}", "value: missing"),
            (b"{\"value\": 1, \"key\": 5}", "key: a key is a string"),
            (
                b"{\"value\": 1, \"headers\": {\"a\": 1}}",
                "headers.a: a header value is a string, found a number",
            ),
            (b"{\"value\": 1, \"hedaers\": {}}", "hedaers: unknown field"),
            (b"{\"events\": []}", "`events` is empty"),
            (
                b"{\"events\": [{\"value\": 1}, {\"vale\": 2}]}",
                "events[1].value: missing",
            ),
            (
                b"{\"events\": [{\"value\": 1}, {\"value\": 2}, {\"value\": 3}]}",
                "3 events in one batch; at most 2",
            ),
        ];
        for (body, says) in cases {
            let e = records(body, "orders", &rule(), 2).unwrap_err();
            assert!(
                e.0.contains(says),
                "{}: {}",
                String::from_utf8_lossy(body),
                e.0
            );
        }
        let e = records(b"\xff\xfe", "orders", &rule(), 2).unwrap_err();
        assert!(e.0.contains("not JSON"), "{}", e.0);
    }
}
