//! JSON Schema: a JSON value validated against its schema (the `jsonschema`
//! crate, no default features: no network or file retrieval of `$ref`s)
//! and written as compact JSON. A refusal names the value's JSON pointer
//! and what the schema says (`/status: "LOST" is not one of "NEW" or
//! "PAID"`).

use std::fmt;

use serde_json::Value;

use crate::avro::EncodeError;

/// A compiled JSON Schema.
pub struct JsonSchemaEncoder {
    validator: jsonschema::Validator,
    title: Option<String>,
}

impl fmt::Debug for JsonSchemaEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonSchemaEncoder")
            .field("title", &self.title)
            .finish()
    }
}

impl JsonSchemaEncoder {
    pub fn new(schema: &str) -> Result<JsonSchemaEncoder, String> {
        let v: Value = serde_json::from_str(schema)
            .map_err(|e| format!("invalid JSON Schema: not JSON: {e}"))?;
        // Without `$schema`, draft-07 (Confluent's default), not the crate's
        // 2020-12: `items` as a tuple and `dependencies` mean what they
        // meant to the schema's author.
        let validator = if v.get("$schema").is_some() {
            jsonschema::validator_for(&v)
        } else {
            jsonschema::draft7::new(&v)
        }
        .map_err(|e| format!("invalid JSON Schema: {e}"))?;
        Ok(JsonSchemaEncoder {
            validator,
            title: v["title"].as_str().map(str::to_string),
        })
    }

    /// The schema's `title` (RecordNameStrategy's name for it).
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// Validate `v` and append it as compact JSON.
    pub fn encode(&self, v: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if let Err(e) = self.validator.validate(v) {
            let path = e.instance_path().to_string();
            return Err(EncodeError {
                path: if path.is_empty() { "/".into() } else { path },
                rule: e.to_string(),
            });
        }
        serde_json::to_writer(out, v).map_err(|e| EncodeError {
            path: "/".into(),
            rule: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn valid_values_are_written_and_others_refused_with_the_path() {
        let e = JsonSchemaEncoder::new(
            r#"{"title": "Order", "type": "object", "required": ["id"],
                "properties": {"id": {"type": "integer"},
                               "status": {"enum": ["NEW", "PAID"]}},
                "additionalProperties": false}"#,
        )
        .unwrap();
        assert_eq!(e.title(), Some("Order"));
        let mut out = Vec::new();
        e.encode(&json!({"id": 1, "status": "PAID"}), &mut out)
            .unwrap();
        assert_eq!(out, br#"{"id":1,"status":"PAID"}"#);
        let err = e
            .encode(&json!({"id": 1, "status": "LOST"}), &mut Vec::new())
            .unwrap_err();
        assert_eq!(err.path, "/status");
        assert!(err.rule.contains("LOST"), "{err}");
        let err = e
            .encode(&json!({"status": "NEW"}), &mut Vec::new())
            .unwrap_err();
        assert_eq!(err.path, "/");
        assert!(err.rule.contains("\"id\" is a required property"), "{err}");
        assert!(JsonSchemaEncoder::new(r#"{"type": 12}"#)
            .unwrap_err()
            .contains("invalid JSON Schema"));
    }
}
