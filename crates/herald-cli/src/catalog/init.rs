//! A starting `catalog-info.yaml` for a topic: what herald can know
//! (the topic, its broker address, the payload's fields and types from
//! the registered Avro schema) filled in, and what only a person knows
//! (owner, team, domain, system, description) left as placeholders that
//! start with `TODO`, which `herald catalog validate` points out.

use serde_json::Value as Json;

/// What goes into the file.
pub(crate) struct Draft<'a> {
    pub topic: &'a str,
    pub environment: &'a str,
    pub broker_address: &'a str,
    /// The payload's fields as (name, type) lines, or `None` without a
    /// schema.
    pub payload: Option<Vec<(String, Field)>>,
    /// Where the payload came from, for a comment.
    pub payload_source: Option<String>,
}

/// A payload field's type: a type name, or a record's fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field {
    Type(String),
    Record(Vec<(String, Field)>),
}

/// The placeholder prefix `validate` warns about.
pub(crate) const TODO: &str = "TODO";

/// The YAML text of the draft.
pub(crate) fn render(d: &Draft<'_>) -> String {
    let name = entity_name(d.topic);
    let mut out = String::new();
    out.push_str(
        "# catalog-info.yaml: the Event entity for the Lighthouse Developer Hub (Backstage).\n\
         # Written by `herald catalog init`; replace every TODO, then run\n\
         # `herald catalog validate catalog-info.yaml`.\n",
    );
    out.push_str(&format!("apiVersion: {}\n", super::rules::API_VERSION));
    out.push_str("kind: Event\nmetadata:\n");
    out.push_str(&format!("  name: {}\n", scalar(&name)));
    out.push_str(&format!(
        "  description: {}\n",
        scalar(&format!(
            "{TODO}: what happened when this event is published"
        ))
    ));
    out.push_str(&format!("  title: {}\n", scalar(&title(d.topic))));
    out.push_str("spec:\n  type: event\n");
    out.push_str("  # one of experimental, development, production, deprecated\n");
    out.push_str("  lifecycle: experimental\n");
    for (key, what) in [
        ("domain", "the domain, e.g. health, benefits, appointments"),
        ("productowner", "the product owner of this work"),
        ("team", "the team that maintains the producing code"),
        ("system", "the system that produces the event"),
    ] {
        out.push_str(&format!(
            "  {key}: {}\n",
            scalar(&format!("{TODO}: {what}"))
        ));
    }
    out.push_str("  topics:\n");
    out.push_str(&format!("    - topic: {}\n", scalar(d.topic)));
    out.push_str(&format!("      environment: {}\n", scalar(d.environment)));
    out.push_str(&format!(
        "      brokerAddress: {}\n",
        scalar(d.broker_address)
    ));
    match &d.payload {
        Some(fields) if !fields.is_empty() => {
            if let Some(src) = &d.payload_source {
                out.push_str(&format!("  # payload from {src}\n"));
            }
            out.push_str("  payload:\n");
            write_fields(&mut out, fields, 4);
        }
        _ => {
            out.push_str("  # each key of the event and its data type (string, int, …)\n");
            out.push_str("  payload:\n");
            out.push_str(&format!(
                "    {TODO}: {}\n",
                scalar("list each field of the event with its type")
            ));
        }
    }
    out
}

fn write_fields(out: &mut String, fields: &[(String, Field)], indent: usize) {
    for (name, f) in fields {
        let pad = " ".repeat(indent);
        match f {
            Field::Type(t) => out.push_str(&format!("{pad}{}: {}\n", scalar(name), scalar(t))),
            Field::Record(inner) if inner.is_empty() => {
                out.push_str(&format!("{pad}{}: record\n", scalar(name)))
            }
            Field::Record(inner) => {
                out.push_str(&format!("{pad}{}:\n", scalar(name)));
                write_fields(out, inner, indent + 2);
            }
        }
    }
}

/// A YAML scalar: plain when that reads back as the same string,
/// otherwise double-quoted (a JSON string is a valid YAML one).
fn scalar(s: &str) -> String {
    let plain_safe = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '/' | '(' | ')' | ',')
        })
        && !s.starts_with([' ', '-', '.'])
        && !s.ends_with(' ')
        && matches!(
            super::yaml::parse(&format!("k: {s}")).ok().as_deref(),
            Some([doc]) if doc.get("k").and_then(|v| v.as_str()) == Some(s)
        );
    if plain_safe {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("a string serializes")
    }
}

/// The topic as a Backstage entity name: characters Backstage does not
/// allow become `-`, trimmed to 63 and to letters or digits at both ends.
pub(crate) fn entity_name(topic: &str) -> String {
    let mapped: String = topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed: String = mapped.chars().take(63).collect();
    let t = trimmed.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if t.is_empty() {
        "event".to_string()
    } else {
        t.to_string()
    }
}

/// `dev_appointments.v1` as "Dev Appointments V1".
fn title(topic: &str) -> String {
    topic
        .split(['_', '-', '.'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The payload fields of an Avro schema (its JSON text): a record's fields
/// with their types as a reader would say them (`long (timestamp-millis)`,
/// `string, optional`, `array of string`), nested records as nested fields.
pub(crate) fn avro_payload(schema: &str) -> Result<Vec<(String, Field)>, String> {
    let v: Json =
        serde_json::from_str(schema).map_err(|e| format!("the schema is not JSON: {e}"))?;
    match avro_type(&v, 0) {
        Field::Record(fields) => Ok(fields),
        Field::Type(t) => Ok(vec![("value".to_string(), Field::Type(t))]),
    }
}

fn avro_type(v: &Json, depth: usize) -> Field {
    if depth > 32 {
        return Field::Type("record".into());
    }
    match v {
        Json::String(s) => Field::Type(s.clone()),
        Json::Array(branches) => {
            let non_null: Vec<&Json> = branches.iter().filter(|b| *b != "null").collect();
            let optional = non_null.len() < branches.len();
            match (non_null.as_slice(), optional) {
                ([one], true) => match avro_type(one, depth + 1) {
                    Field::Type(t) => Field::Type(format!("{t}, optional")),
                    record => record,
                },
                _ => {
                    let names: Vec<String> = branches
                        .iter()
                        .map(|b| match avro_type(b, depth + 1) {
                            Field::Type(t) => t,
                            Field::Record(_) => b["name"].as_str().unwrap_or("record").to_string(),
                        })
                        .collect();
                    Field::Type(format!("one of {}", names.join(" | ")))
                }
            }
        }
        Json::Object(o) => {
            let ty = o.get("type").cloned().unwrap_or(Json::Null);
            if let Some(logical) = o.get("logicalType").and_then(Json::as_str) {
                if let Field::Type(t) = avro_type(&ty, depth + 1) {
                    return Field::Type(format!("{t} ({logical})"));
                }
            }
            match ty.as_str() {
                Some("record") | Some("error") => Field::Record(
                    o.get("fields")
                        .and_then(Json::as_array)
                        .map(|fs| {
                            fs.iter()
                                .filter_map(|f| {
                                    let name = f["name"].as_str()?.to_string();
                                    Some((name, avro_type(&f["type"], depth + 1)))
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
                Some("enum") => {
                    let symbols: Vec<&str> = o
                        .get("symbols")
                        .and_then(Json::as_array)
                        .map(|s| s.iter().filter_map(Json::as_str).collect())
                        .unwrap_or_default();
                    Field::Type(format!("enum ({})", symbols.join(", ")))
                }
                Some("array") => Field::Type(format!("array of {}", named(&o["items"], depth))),
                Some("map") => Field::Type(format!("map of {}", named(&o["values"], depth))),
                Some("fixed") => Field::Type(format!(
                    "fixed ({} bytes)",
                    o.get("size").and_then(Json::as_u64).unwrap_or(0)
                )),
                Some(_) => avro_type(&ty, depth + 1),
                None => avro_type(&ty, depth + 1),
            }
        }
        _ => Field::Type("unknown".into()),
    }
}

/// The payload fields of a JSON Schema: its `properties` and their
/// `type` (nested objects as nested fields).
pub(crate) fn json_schema_payload(schema: &str) -> Result<Vec<(String, Field)>, String> {
    let v: Json =
        serde_json::from_str(schema).map_err(|e| format!("the schema is not JSON: {e}"))?;
    match json_type(&v, 0) {
        Field::Record(fields) => Ok(fields),
        Field::Type(t) => Ok(vec![("value".to_string(), Field::Type(t))]),
    }
}

fn json_type(v: &Json, depth: usize) -> Field {
    if let (Some(props), true) = (v.get("properties").and_then(Json::as_object), depth < 32) {
        return Field::Record(
            props
                .iter()
                .map(|(k, p)| (k.clone(), json_type(p, depth + 1)))
                .collect(),
        );
    }
    let ty = match v.get("type") {
        Some(Json::String(t)) => t.clone(),
        Some(Json::Array(ts)) => ts
            .iter()
            .filter_map(Json::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".to_string(),
    };
    match v.get("format").and_then(Json::as_str) {
        Some(f) => Field::Type(format!("{ty} ({f})")),
        None => Field::Type(ty),
    }
}

/// An item type's name, for `array of …`.
fn named(v: &Json, depth: usize) -> String {
    match avro_type(v, depth + 1) {
        Field::Type(t) => t,
        Field::Record(_) => v["name"].as_str().unwrap_or("record").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avro_fields_as_a_reader_says_them() {
        let schema = r#"{"type":"record","name":"Appointment","fields":[
            {"name":"id","type":"string"},
            {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"note","type":["null","string"],"default":null},
            {"name":"status","type":{"type":"enum","name":"S","symbols":["BOOKED","CANCELLED"]}},
            {"name":"tags","type":{"type":"array","items":"string"}},
            {"name":"clinic","type":{"type":"record","name":"Clinic","fields":[{"name":"code","type":"int"}]}}
        ]}"#;
        let fields = avro_payload(schema).unwrap();
        let ty = |n: &str| fields.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(ty("id"), Field::Type("string".into()));
        assert_eq!(ty("at"), Field::Type("long (timestamp-millis)".into()));
        assert_eq!(ty("note"), Field::Type("string, optional".into()));
        assert_eq!(ty("status"), Field::Type("enum (BOOKED, CANCELLED)".into()));
        assert_eq!(ty("tags"), Field::Type("array of string".into()));
        assert_eq!(
            ty("clinic"),
            Field::Record(vec![("code".into(), Field::Type("int".into()))])
        );
    }

    #[test]
    fn names_and_scalars() {
        assert_eq!(entity_name("dev_appointments"), "dev_appointments");
        assert_eq!(entity_name("_x@y_"), "x-y");
        assert_eq!(title("dev_appointments.v1"), "Dev Appointments V1");
        assert_eq!(scalar("abc"), "abc");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("123"), "\"123\"");
        assert_eq!(scalar("a: b"), "\"a: b\"");
        assert_eq!(scalar("127.0.0.1:9092"), "\"127.0.0.1:9092\"");
    }
}
