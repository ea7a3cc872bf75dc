//! JSON encoded in Avro's binary form by an Avro schema.
//!
//! Why our own: the gateway and the CLI receive JSON, and `apache-avro`'s
//! JSON conversion ignores the schema (its union resolution picks a branch
//! by the value's content, so `{"string": "x"}` and a record that happens
//! to fit the first branch both go wrong). This module reads the JSON as
//! the Avro specification's JSON encoding defines it and writes the binary
//! encoding straight from it (no intermediate value tree):
//! - a union value is `null`, or `{"<branch>": value}` where `<branch>` is a
//!   primitive's name (`"string"`, `"long"`, …) or a named type's full
//!   name (`"com.acme.Status"`); a logical type's branch is named by its
//!   underlying type (`"long"` for `timestamp-millis`);
//! - bytes and fixed are strings whose code points 0-255 are the bytes;
//! - a record's missing field takes its default (a union's default is a
//!   value of its first branch, unwrapped), and a field the schema does not
//!   have is refused;
//! - logical types are given as their underlying type (date: days as an
//!   int; timestamp-millis: a long; decimal: its two's-complement bytes;
//!   uuid: the string).
//!
//! `apache-avro` parses the schema and resolves its names. Map entries are
//! written in the JSON object's key order (`serde_json` keeps keys sorted).
//! Every refusal names the JSON pointer of the value and the rule it breaks.

use std::collections::HashMap;
use std::fmt;

use apache_avro::schema::{Name, ResolvedSchema, Schema};
use serde_json::Value;

/// Why a JSON value does not fit the schema: where (a JSON pointer, `/` for
/// the whole value) and what the schema wants there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    pub path: String,
    pub rule: String,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.rule)
    }
}

impl std::error::Error for EncodeError {}

/// Nesting deeper than this is refused (a recursive schema and hostile
/// JSON must not exhaust the stack; serde_json already stops at 128).
const MAX_DEPTH: usize = 256;

/// An Avro schema, parsed and with its names resolved, ready to encode.
#[derive(Debug, Clone)]
pub struct AvroEncoder {
    schema: Schema,
    names: HashMap<Name, Schema>,
}

/// A step into a JSON value.
#[derive(Debug, Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Where the encoder is in the JSON value (for errors), and how deep.
struct At<'a> {
    segments: Vec<Seg<'a>>,
}

impl<'a> At<'a> {
    fn new() -> At<'a> {
        At {
            segments: Vec::new(),
        }
    }

    /// The JSON pointer (RFC 6901) of the place; `/` for the whole value.
    fn pointer(&self) -> String {
        if self.segments.is_empty() {
            return "/".to_string();
        }
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Seg::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
                Seg::Index(i) => out.push_str(&i.to_string()),
            }
        }
        out
    }

    fn err(&self, rule: impl Into<String>) -> EncodeError {
        EncodeError {
            path: self.pointer(),
            rule: rule.into(),
        }
    }
}

/// What a JSON value is, for errors.
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

/// Avro's zigzag varint of `n`.
fn long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    long(out, b.len() as i64);
    out.extend_from_slice(b);
}

/// The bytes a JSON string stands for in Avro's JSON encoding (each code
/// point 0-255 one byte).
fn code_points(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

/// The name a union branch goes by in Avro's JSON encoding.
fn branch_name(s: &Schema) -> String {
    match s {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int | Schema::Date | Schema::TimeMillis => "int".into(),
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes | Schema::BigDecimal => "bytes".into(),
        Schema::String | Schema::Uuid => "string".into(),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Record(r) => r.name.fullname(None),
        Schema::Enum(e) => e.name.fullname(None),
        Schema::Fixed(f) => f.name.fullname(None),
        Schema::Decimal(d) => branch_name(&d.inner),
        Schema::Duration => "fixed".into(),
        // Not allowed by the specification (a union in a union).
        Schema::Union(_) => "union".into(),
        Schema::Ref { name } => name.fullname(None),
    }
}

impl AvroEncoder {
    /// Parse an Avro schema (JSON text, as a registry holds it).
    pub fn new(schema_json: &str) -> Result<AvroEncoder, String> {
        // apache-avro 0.21 panics on some invalid schemas (it unwraps the
        // check of a record's name; found by fuzzing, kept in
        // fuzz/regressions/avro_json/): a schema from a registry or a file
        // must give an error, never take the process down.
        // A fixed with logicalType uuid or duration is written as the
        // fixed it is (16 or 12 raw bytes, named); apache-avro 0.21 would
        // turn it into its uuid (a string) or duration type and lose the
        // size and the name, so the logical type is left out here.
        let text = match serde_json::from_str::<Value>(schema_json) {
            Ok(mut v) => {
                plain_fixed(&mut v);
                v.to_string()
            }
            Err(_) => schema_json.to_string(),
        };
        let parsed = std::panic::catch_unwind(|| Schema::parse_str(&text));
        let schema = match parsed {
            Ok(r) => r.map_err(|e| format!("invalid Avro schema: {e}"))?,
            Err(_) => {
                return Err(
                    "invalid Avro schema: the parser failed on it (check the names: \
                            letters, digits and _, not starting with a digit)"
                        .into(),
                )
            }
        };
        Self::from_schema(schema)
    }

    /// An encoder for a parsed schema.
    pub fn from_schema(schema: Schema) -> Result<AvroEncoder, String> {
        let names = {
            let resolved = ResolvedSchema::try_from(&schema)
                .map_err(|e| format!("invalid Avro schema: {e}"))?;
            resolved
                .get_names()
                .iter()
                .map(|(n, s)| (n.clone(), (*s).clone()))
                .collect()
        };
        Ok(AvroEncoder { schema, names })
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Append the Avro binary encoding of `json` to `out`. On an error
    /// `out` may hold part of the value: discard it.
    pub fn encode(&self, json: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.value(&self.schema, json, false, &mut At::new(), out)
    }

    /// The encoding of `json` as a new buffer.
    pub fn to_vec(&self, json: &Value) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(64);
        self.encode(json, &mut out)?;
        Ok(out)
    }

    /// `default`: `v` is a field's default, where a union's value belongs to
    /// its first branch and is not wrapped.
    fn value<'a>(
        &'a self,
        s: &'a Schema,
        v: &'a Value,
        default: bool,
        at: &mut At<'a>,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        if at.segments.len() > MAX_DEPTH {
            return Err(at.err(format!("nested more than {MAX_DEPTH} levels deep")));
        }
        match s {
            Schema::Null => match v {
                Value::Null => Ok(()),
                _ => Err(at.err(format!("expected null, found {}", kind(v)))),
            },
            Schema::Boolean => match v {
                Value::Bool(b) => {
                    out.push(*b as u8);
                    Ok(())
                }
                _ => Err(at.err(format!("expected a boolean, found {}", kind(v)))),
            },
            Schema::Int | Schema::Date | Schema::TimeMillis => {
                let what = match s {
                    Schema::Date => "an int (days since 1970-01-01, the date logical type)",
                    Schema::TimeMillis => "an int (milliseconds after midnight, time-millis)",
                    _ => "an int (32 bits)",
                };
                match v.as_i64().and_then(|n| i32::try_from(n).ok()) {
                    Some(n) => {
                        long(out, n.into());
                        Ok(())
                    }
                    None => Err(at.err(format!("expected {what}, found {}", describe(v)))),
                }
            }
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => {
                let what = match s {
                    Schema::TimeMicros => "a long (microseconds after midnight, time-micros)",
                    Schema::TimestampMillis => {
                        "a long (milliseconds since the Unix epoch, timestamp-millis)"
                    }
                    Schema::TimestampMicros => {
                        "a long (microseconds since the Unix epoch, timestamp-micros)"
                    }
                    Schema::TimestampNanos => {
                        "a long (nanoseconds since the Unix epoch, timestamp-nanos)"
                    }
                    Schema::LocalTimestampMillis
                    | Schema::LocalTimestampMicros
                    | Schema::LocalTimestampNanos => "a long (a local timestamp)",
                    _ => "a long (64 bits)",
                };
                match v.as_i64() {
                    Some(n) => {
                        long(out, n);
                        Ok(())
                    }
                    None => Err(at.err(format!("expected {what}, found {}", describe(v)))),
                }
            }
            Schema::Float => match v.as_f64() {
                Some(f) if f.is_finite() && (f as f32).is_finite() => {
                    out.extend_from_slice(&(f as f32).to_le_bytes());
                    Ok(())
                }
                Some(f) => Err(at.err(format!("{f} is out of the range of a float (32 bits)"))),
                None => Err(at.err(format!("expected a number (float), found {}", kind(v)))),
            },
            Schema::Double => match v.as_f64() {
                Some(f) => {
                    out.extend_from_slice(&f.to_le_bytes());
                    Ok(())
                }
                None => Err(at.err(format!("expected a number (double), found {}", kind(v)))),
            },
            Schema::String => match v {
                Value::String(t) => {
                    bytes(out, t.as_bytes());
                    Ok(())
                }
                _ => Err(at.err(format!("expected a string, found {}", kind(v)))),
            },
            Schema::Uuid => match v {
                Value::String(t) if is_uuid(t) => {
                    bytes(out, t.as_bytes());
                    Ok(())
                }
                _ => Err(at.err(format!(
                    "expected a UUID string like \"123e4567-e89b-12d3-a456-426614174000\", found {}",
                    describe(v)
                ))),
            },
            Schema::Bytes | Schema::BigDecimal => {
                let b = self.byte_string(v, at, "bytes")?;
                bytes(out, &b);
                Ok(())
            }
            Schema::Decimal(d) => match &*d.inner {
                Schema::Fixed(f) => self.fixed(v, f.size, at, out),
                _ => {
                    let b = self.byte_string(v, at, "bytes (a decimal's two's-complement unscaled value)")?;
                    bytes(out, &b);
                    Ok(())
                }
            },
            Schema::Fixed(f) => self.fixed(v, f.size, at, out),
            Schema::Duration => self.fixed(v, 12, at, out),
            Schema::Enum(e) => match v {
                Value::String(t) => match e.symbols.iter().position(|s| s == t) {
                    Some(i) => {
                        long(out, i as i64);
                        Ok(())
                    }
                    None => Err(at.err(format!("expected one of {}", e.symbols.join(", ")))),
                },
                _ => Err(at.err(format!(
                    "expected one of {} (a string), found {}",
                    e.symbols.join(", "),
                    kind(v)
                ))),
            },
            Schema::Array(a) => match v {
                Value::Array(items) => {
                    if !items.is_empty() {
                        long(out, items.len() as i64);
                        for (i, item) in items.iter().enumerate() {
                            self.nested(Seg::Index(i), &a.items, item, default, at, out)?;
                        }
                    }
                    out.push(0);
                    Ok(())
                }
                _ => Err(at.err(format!("expected an array, found {}", kind(v)))),
            },
            Schema::Map(m) => match v {
                Value::Object(entries) => {
                    if !entries.is_empty() {
                        long(out, entries.len() as i64);
                        for (k, item) in entries {
                            bytes(out, k.as_bytes());
                            self.nested(Seg::Key(k), &m.types, item, default, at, out)?;
                        }
                    }
                    out.push(0);
                    Ok(())
                }
                _ => Err(at.err(format!("expected an object (a map), found {}", kind(v)))),
            },
            Schema::Union(u) => {
                let variants = u.variants();
                if default {
                    // A default is a value of the first branch.
                    long(out, 0);
                    return self.value(&variants[0], v, true, at, out);
                }
                let names: Vec<String> = variants.iter().map(branch_name).collect();
                if v.is_null() {
                    return match variants.iter().position(|s| matches!(s, Schema::Null)) {
                        Some(i) => {
                            long(out, i as i64);
                            Ok(())
                        }
                        None => Err(at.err(format!(
                            "null is not allowed here: give {{\"<type>\": value}} with a type \
                             among {}",
                            names.join(", ")
                        ))),
                    };
                }
                let wrapped = match v {
                    Value::Object(o) if o.len() == 1 => o.iter().next(),
                    _ => None,
                };
                let Some((name, inner)) = wrapped else {
                    return Err(at.err(format!(
                        "a union's value is null or {{\"<type>\": value}}, with a type among {}; \
                         found {}",
                        names.join(", "),
                        kind(v)
                    )));
                };
                let Some(i) = names.iter().position(|n| n == name) else {
                    return Err(at.err(format!(
                        "`{name}` is not a type of this union: use one of {}",
                        names.join(", ")
                    )));
                };
                long(out, i as i64);
                self.nested(Seg::Key(name), &variants[i], inner, false, at, out)
            }
            Schema::Record(r) => {
                let Value::Object(o) = v else {
                    return Err(at.err(format!(
                        "expected an object (record {}), found {}",
                        r.name.fullname(None),
                        kind(v)
                    )));
                };
                for f in &r.fields {
                    at.segments.push(Seg::Key(&f.name));
                    let res = match (o.get(&f.name), &f.default) {
                        (Some(fv), _) => self.value(&f.schema, fv, default, at, out),
                        // The default lives in the schema, not the event:
                        // its errors (a bad default) are the schema's.
                        (None, Some(d)) => self.default(&f.schema, d, at, out),
                        (None, None) => Err(at.err(format!(
                            "missing: a field of record {} with no default",
                            r.name.fullname(None)
                        ))),
                    };
                    at.segments.pop();
                    res?;
                }
                if o.len() > r.fields.len() || o.keys().any(|k| !r.fields.iter().any(|f| &f.name == k)) {
                    if let Some(k) = o.keys().find(|k| !r.fields.iter().any(|f| &f.name == *k)) {
                        at.segments.push(Seg::Key(k));
                        let e = at.err(format!(
                            "not a field of record {} (its fields: {})",
                            r.name.fullname(None),
                            r.fields
                                .iter()
                                .map(|f| f.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                        at.segments.pop();
                        return Err(e);
                    }
                }
                Ok(())
            }
            Schema::Ref { name } => match self.names.get(name) {
                Some(s) => self.value(s, v, default, at, out),
                None => Err(at.err(format!(
                    "the schema names a type {} it does not define",
                    name.fullname(None)
                ))),
            },
        }
    }

    /// `v`, one step (`seg`) inside the value being encoded.
    fn nested<'a>(
        &'a self,
        seg: Seg<'a>,
        s: &'a Schema,
        v: &'a Value,
        default: bool,
        at: &mut At<'a>,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        at.segments.push(seg);
        let r = self.value(s, v, default, at, out);
        at.segments.pop();
        r
    }

    /// The default of a field: a value of the field's type as the schema
    /// gives it (a union's: of its first branch).
    fn default<'a>(
        &'a self,
        s: &'a Schema,
        d: &'a Value,
        at: &mut At<'a>,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        self.value(s, d, true, &mut At::new(), out)
            .map_err(|e| at.err(format!("the schema's default does not fit its type: {e}")))
    }

    fn byte_string(&self, v: &Value, at: &At<'_>, what: &str) -> Result<Vec<u8>, EncodeError> {
        match v {
            Value::String(t) => code_points(t).ok_or_else(|| {
                at.err(format!(
                    "expected {what} as a string of code points \\u0000-\\u00ff (one per byte); \
                     it has a character above \\u00ff"
                ))
            }),
            _ => Err(at.err(format!(
                "expected {what} as a string of code points \\u0000-\\u00ff, found {}",
                kind(v)
            ))),
        }
    }

    fn fixed(
        &self,
        v: &Value,
        size: usize,
        at: &At<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let b = self.byte_string(v, at, &format!("fixed({size})"))?;
        if b.len() != size {
            return Err(at.err(format!(
                "expected exactly {size} bytes (fixed), found {}",
                b.len()
            )));
        }
        out.extend_from_slice(&b);
        Ok(())
    }
}

/// Remove `logicalType` from every `fixed` whose logical type is `uuid` or
/// `duration` (see [`AvroEncoder::new`]).
fn plain_fixed(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let fixed = o.get("type").and_then(Value::as_str) == Some("fixed");
            let logical = o.get("logicalType").and_then(Value::as_str);
            if fixed && matches!(logical, Some("uuid") | Some("duration")) {
                o.remove("logicalType");
            }
            for x in o.values_mut() {
                plain_fixed(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(plain_fixed),
        _ => {}
    }
}

/// A value, described for an error.
fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.len() <= 40 => format!("\"{s}\""),
        _ => kind(v).to_string(),
    }
}

/// RFC 4122's textual form: 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests;
