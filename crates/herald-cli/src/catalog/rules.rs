//! The rules a `catalog-info.yaml` Event entity must follow: Backstage's
//! own for every entity (the envelope, `metadata.name` and the other
//! metadata fields, as `@backstage/catalog-model` validates them) and the
//! Event kind as seed 004 documents it. Pure functions over the YAML tree:
//! every problem found, not the first, each with where it is, what is
//! wrong and what is allowed.

use super::yaml::{Node, Pos, Value};

/// One thing wrong with a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub pos: Pos,
    /// Where in the entity, as `spec.topics[1].brokerAddress`.
    pub path: String,
    pub message: String,
}

/// The Event kind's apiVersion (seed 004: a constant for now).
pub(crate) const API_VERSION: &str = "backstage.io/v1alpha1";
pub(crate) const KIND: &str = "Event";
pub(crate) const LIFECYCLES: [&str; 4] =
    ["experimental", "development", "production", "deprecated"];
/// The keys Backstage's Entity schema allows at the top
/// (`additionalProperties: false`).
const ENVELOPE_KEYS: [&str; 6] = [
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "relations",
    "status",
];
const SPEC_KEYS: [&str; 9] = [
    "type",
    "lifecycle",
    "domain",
    "productowner",
    "team",
    "system",
    "topics",
    "forwarders",
    "payload",
];
const TOPIC_KEYS: [&str; 3] = ["topic", "environment", "brokerAddress"];

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn report(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            pos: node.pos,
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// A mapping's repeated keys, each reported where it is repeated
    /// (Backstage's YAML loader refuses them too).
    fn duplicates(&mut self, map: &Node, path: &str) {
        let Some(entries) = map.as_map() else { return };
        for (i, (k, _)) in entries.iter().enumerate() {
            let name = k.key_text();
            if entries[..i].iter().any(|(p, _)| p.key_text() == name) {
                self.report(
                    k,
                    &join(path, &name),
                    format!("`{name}` is given twice; keep one"),
                );
            }
        }
        for (k, v) in entries {
            self.walk_duplicates(v, &join(path, &k.key_text()));
        }
    }

    fn walk_duplicates(&mut self, node: &Node, path: &str) {
        match &node.value {
            Value::Map(_) => self.duplicates(node, path),
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.walk_duplicates(item, &format!("{path}[{i}]"));
                }
            }
            _ => {}
        }
    }

    /// Keys not in `allowed`, with the closest allowed one.
    fn unknown_keys(&mut self, map: &Node, path: &str, allowed: &[&str], what: &str) {
        let Some(entries) = map.as_map() else { return };
        for (k, _) in entries {
            let name = k.key_text();
            if allowed.contains(&name.as_str()) {
                continue;
            }
            let hint = match closest(&name, allowed) {
                Some(c) => format!("did you mean `{c}`? "),
                None => String::new(),
            };
            self.report(
                k,
                &join(path, &name),
                format!(
                    "unknown key `{name}`: {hint}{what} has {}",
                    allowed.join(", ")
                ),
            );
        }
    }

    /// The value under a required key, reported at the mapping if missing.
    fn required<'n>(
        &mut self,
        map: &'n Node,
        path: &str,
        key: &str,
        what: &str,
    ) -> Option<&'n Node> {
        let v = map.get(key);
        if v.is_none() {
            self.report(
                map,
                &join(path, key),
                format!("`{key}` is missing; it is required: {what}"),
            );
        }
        v
    }

    /// A required string that is not empty.
    fn text<'n>(&mut self, map: &'n Node, path: &str, key: &str, what: &str) -> Option<&'n str> {
        let v = self.required(map, path, key, what)?;
        self.non_empty(v, &join(path, key), what)
    }

    fn non_empty<'n>(&mut self, v: &'n Node, path: &str, what: &str) -> Option<&'n str> {
        match v.as_str() {
            Some(s) if !s.trim().is_empty() => Some(s),
            Some(_) => {
                self.report(v, path, format!("is empty; it must be {what}"));
                None
            }
            None => {
                self.report(
                    v,
                    path,
                    format!("is {}; it must be a string: {what}", v.kind()),
                );
                None
            }
        }
    }
}

/// What one document is, and what is wrong with it.
pub(crate) struct Checked {
    /// It says `kind: Event` (the Event rules were applied).
    pub is_event: bool,
    pub problems: Vec<Problem>,
}

/// Everything wrong with one document: Backstage's rules for any entity,
/// and the Event kind's when it is one.
pub(crate) fn check(doc: &Node) -> Checked {
    let mut c = Checker {
        problems: Vec::new(),
    };
    if doc.as_map().is_none() {
        c.report(
            doc,
            "",
            format!(
                "the document is {}; an entity is a mapping with apiVersion, kind, metadata and spec",
                doc.kind()
            ),
        );
        return Checked {
            is_event: false,
            problems: c.problems,
        };
    }
    c.duplicates(doc, "");
    c.unknown_keys(doc, "", &ENVELOPE_KEYS, "an entity");
    let is_event = envelope(&mut c, doc);
    if let Some(meta) = c.required(
        doc,
        "",
        "metadata",
        "a mapping with name, title and description",
    ) {
        metadata(&mut c, meta, is_event);
    }
    if is_event {
        if let Some(spec) = c.required(
            doc,
            "",
            "spec",
            "the Event's type, lifecycle, owners, topics and payload",
        ) {
            event_spec(&mut c, spec);
        }
    } else if let Some(spec) = doc.get("spec") {
        if spec.as_map().is_none() {
            c.report(
                spec,
                "spec",
                format!("is {}; an entity's spec is a mapping", spec.kind()),
            );
        }
    }
    c.problems.sort_by_key(|p| (p.pos.line, p.pos.col));
    Checked {
        is_event,
        problems: c.problems,
    }
}

/// apiVersion and kind; whether this is an Event (a kind that differs
/// from `Event` only in case is reported and checked as one).
fn envelope(c: &mut Checker, doc: &Node) -> bool {
    let mut is_event = false;
    if let Some(k) = c.text(doc, "", "kind", "`Event` for an event (Backstage's kind)") {
        let at = doc.get("kind").expect("checked");
        if !valid_kind(k) {
            c.report(at, "kind", format!("`{k}` is not a kind: 1-63 letters and digits, starting with a letter (Backstage's rule); an event uses `{KIND}`"));
        } else if k == KIND {
            is_event = true;
        } else if k.eq_ignore_ascii_case(KIND) {
            is_event = true;
            c.report(
                at,
                "kind",
                format!("`{k}`: kinds are case-sensitive; write `{KIND}`"),
            );
        }
    }
    let api = format!("`{API_VERSION}` for an Event");
    if let Some(v) = c.text(doc, "", "apiVersion", &api) {
        let at = doc.get("apiVersion").expect("checked");
        if !valid_api_version(v) {
            c.report(at, "apiVersion", format!("`{v}` is not an apiVersion: a DNS subdomain, `/`, and a version of letters and digits (Backstage's rule); an Event uses `{API_VERSION}`"));
        } else if is_event && v != API_VERSION {
            c.report(
                at,
                "apiVersion",
                format!("`{v}`: the Event kind is `{API_VERSION}`"),
            );
        }
    }
    is_event
}

fn metadata(c: &mut Checker, meta: &Node, is_event: bool) {
    if meta.as_map().is_none() {
        c.report(
            meta,
            "metadata",
            format!(
                "is {}; it must be a mapping with name, title and description",
                meta.kind()
            ),
        );
        return;
    }
    const NAME: &str =
        "1-63 characters of A-Z a-z 0-9 - _ . starting and ending with a letter or digit";
    if let Some(name) = c.text(meta, "metadata", "name", NAME) {
        if !valid_object_name(name) {
            c.report(
                meta.get("name").expect("checked"),
                "metadata.name",
                format!("`{name}` is not an entity name: {NAME} (for an Event, the topic name often is one)"),
            );
        }
    }
    if let Some(ns) = meta.get("namespace") {
        if let Some(s) = c.non_empty(ns, "metadata.namespace", "a namespace") {
            if !valid_dns_label(s) {
                c.report(ns, "metadata.namespace", format!("`{s}` is not a namespace: 1-63 characters of a-z 0-9 and -, starting and ending with a letter or digit"));
            }
        }
    }
    // Required of an Event (seed 004); optional strings for any entity.
    for (key, what) in [
        ("title", "a human-readable name for the Event"),
        ("description", "a short description of the Event"),
    ] {
        if is_event {
            c.text(meta, "metadata", key, what);
        } else if let Some(v) = meta.get(key) {
            c.non_empty(v, &join("metadata", key), what);
        }
    }
    if let Some(labels) = meta.get("labels") {
        map_of(c, labels, "metadata.labels", |c, k, v, path| {
            let key = k.key_text();
            if !valid_prefixed_name(&key) {
                c.report(k, path, format!("`{key}` is not a label key: an optional DNS-subdomain prefix and `/`, then {NAME}"));
            }
            match v.as_str() {
                Some(s) if s.is_empty() || valid_object_name(s) => {}
                _ => c.report(v, path, format!("is not a label value: empty, or {NAME}")),
            }
        });
    }
    if let Some(ann) = meta.get("annotations") {
        map_of(c, ann, "metadata.annotations", |c, k, v, path| {
            let key = k.key_text();
            if !valid_prefixed_name(&key) {
                c.report(k, path, format!("`{key}` is not an annotation key: an optional DNS-subdomain prefix and `/`, then {NAME}"));
            }
            if v.as_str().is_none() {
                c.report(
                    v,
                    path,
                    format!("is {}; annotation values are strings (quote it)", v.kind()),
                );
            }
        });
    }
    if let Some(tags) = meta.get("tags") {
        match &tags.value {
            Value::Seq(items) => {
                for (i, t) in items.iter().enumerate() {
                    let path = format!("metadata.tags[{i}]");
                    match t.as_str() {
                        Some(s) if valid_tag(s) => {}
                        _ => c.report(
                            t,
                            &path,
                            "is not a tag: 1-63 characters of a-z 0-9 : + #, in words joined by -",
                        ),
                    }
                }
            }
            _ => c.report(
                tags,
                "metadata.tags",
                format!("is {}; tags are a list of strings", tags.kind()),
            ),
        }
    }
    if let Some(links) = meta.get("links") {
        match &links.value {
            Value::Seq(items) => {
                for (i, l) in items.iter().enumerate() {
                    let path = format!("metadata.links[{i}]");
                    if l.as_map().is_none() {
                        c.report(
                            l,
                            &path,
                            "is not a link: a mapping with url and optional title, icon, type",
                        );
                        continue;
                    }
                    if let Some(url) = c.text(l, &path, "url", "the link's address") {
                        if !is_url(url) {
                            c.report(
                                l.get("url").expect("checked"),
                                &join(&path, "url"),
                                format!("`{url}` is not a URL: a scheme and an address, as https://example.com/runbook"),
                            );
                        }
                    }
                }
            }
            _ => c.report(
                links,
                "metadata.links",
                format!(
                    "is {}; links are a list of mappings with a url",
                    links.kind()
                ),
            ),
        }
    }
}

/// A mapping whose every entry `each` checks.
fn map_of(
    c: &mut Checker,
    node: &Node,
    path: &str,
    mut each: impl FnMut(&mut Checker, &Node, &Node, &str),
) {
    match node.as_map() {
        Some(entries) => {
            for (k, v) in entries {
                each(c, k, v, &join(path, &k.key_text()));
            }
        }
        None => c.report(
            node,
            path,
            format!("is {}; it must be a mapping", node.kind()),
        ),
    }
}

fn event_spec(c: &mut Checker, spec: &Node) {
    if spec.as_map().is_none() {
        c.report(
            spec,
            "spec",
            format!(
                "is {}; it must be a mapping with {}",
                spec.kind(),
                SPEC_KEYS.join(", ")
            ),
        );
        return;
    }
    c.unknown_keys(spec, "spec", &SPEC_KEYS, "an Event's spec");
    if let Some(t) = c.text(spec, "spec", "type", "`event`") {
        if t != "event" {
            c.report(
                spec.get("type").expect("checked"),
                "spec.type",
                format!("`{t}`: an Event's type is `event`"),
            );
        }
    }
    let lifecycles = LIFECYCLES.join(", ");
    if let Some(l) = c.text(spec, "spec", "lifecycle", &format!("one of {lifecycles}")) {
        if !LIFECYCLES.contains(&l) {
            c.report(
                spec.get("lifecycle").expect("checked"),
                "spec.lifecycle",
                format!("`{l}` is not a lifecycle: one of {lifecycles}"),
            );
        }
    }
    c.text(
        spec,
        "spec",
        "domain",
        "the domain the event belongs to (claims status, health, appointments, benefits…)",
    );
    c.text(
        spec,
        "spec",
        "productowner",
        "the product owner of the producing work",
    );
    c.text(
        spec,
        "spec",
        "team",
        "the team that maintains the producing code",
    );
    c.text(spec, "spec", "system", "the system that produces the event");
    if let Some(topics) = c.required(
        spec,
        "spec",
        "topics",
        "a list of {topic, environment, brokerAddress}",
    ) {
        match &topics.value {
            Value::Seq(items) if !items.is_empty() => {
                for (i, t) in items.iter().enumerate() {
                    topic(c, t, &format!("spec.topics[{i}]"));
                }
            }
            Value::Seq(_) => c.report(
                topics,
                "spec.topics",
                "is empty; list at least one {topic, environment, brokerAddress}",
            ),
            _ => c.report(
                topics,
                "spec.topics",
                format!(
                    "is {}; it must be a list of {{topic, environment, brokerAddress}}",
                    topics.kind()
                ),
            ),
        }
    }
    if let Some(fwd) = spec.get("forwarders") {
        map_of(c, fwd, "spec.forwarders", |c, _, v, path| {
            c.non_empty(
                v,
                path,
                "the team of the forwarding system (systemname: teamname)",
            );
        });
    }
    if let Some(payload) = c.required(
        spec,
        "spec",
        "payload",
        "each key of the event and its data type",
    ) {
        match payload.as_map() {
            Some([]) => c.report(
                payload,
                "spec.payload",
                "is empty; list each key of the event with its data type",
            ),
            Some(_) => payload_fields(c, payload, "spec.payload"),
            None => c.report(
                payload,
                "spec.payload",
                format!(
                    "is {}; it must map each key of the event to its data type",
                    payload.kind()
                ),
            ),
        }
    }
}

fn topic(c: &mut Checker, t: &Node, path: &str) {
    if t.as_map().is_none() {
        c.report(
            t,
            path,
            format!(
                "is {}; each topic is a mapping with topic, environment, brokerAddress",
                t.kind()
            ),
        );
        return;
    }
    c.unknown_keys(t, path, &TOPIC_KEYS, "a topic entry");
    if let Some(name) = c.text(t, path, "topic", "the Kafka topic's name") {
        if let Err(why) = kafka_topic_name(name) {
            c.report(
                t.get("topic").expect("checked"),
                &join(path, "topic"),
                format!("`{name}` is not a Kafka topic name: {why}"),
            );
        }
    }
    c.text(
        t,
        path,
        "environment",
        "where the topic is (development, staging, production…)",
    );
    c.text(
        t,
        path,
        "brokerAddress",
        "the bootstrap address the Event Bus team gave (HOST:PORT)",
    );
}

/// Payload fields: a type name, a nested mapping of fields, or a list
/// (a union or the items' type).
fn payload_fields(c: &mut Checker, node: &Node, path: &str) {
    match &node.value {
        Value::Str(s) if !s.trim().is_empty() => {}
        Value::Map(entries) if !entries.is_empty() => {
            for (k, v) in entries {
                payload_fields(c, v, &join(path, &k.key_text()));
            }
        }
        Value::Seq(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                payload_fields(c, item, &format!("{path}[{i}]"));
            }
        }
        _ => c.report(node, path, format!("is {}; give the field's data type (string, int, long, boolean, a record's fields…)", if node.as_str().is_some() { "empty" } else { node.kind() })),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn closest<'a>(k: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| {
            (
                strsim::levenshtein(&k.to_lowercase(), &a.to_lowercase()),
                *a,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, a)| a)
}

/// An absolute URL, as Backstage's link check (`new URL(…)`) takes it:
/// a scheme of letters, digits, `+`, `-`, `.` starting with a letter, then
/// `:` and something.
fn is_url(s: &str) -> bool {
    match s.split_once(':') {
        Some((scheme, rest)) => {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && !rest.trim().is_empty()
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Kafka's rule for topic names (`Topic.validate`).
pub(crate) fn kafka_topic_name(name: &str) -> Result<(), &'static str> {
    if name == "." || name == ".." {
        return Err("`.` and `..` are not allowed");
    }
    if name.len() > 249 {
        return Err("at most 249 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err("only ASCII letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

/// Backstage's entity names (and label values): 1-63 characters of
/// `[A-Za-z0-9]` separated by `[-_.]`.
pub(crate) fn valid_object_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn valid_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn valid_dns_subdomain(s: &str) -> bool {
    (1..=253).contains(&s.len()) && s.split('.').all(valid_dns_label)
}

/// `prefix/name` or `name`: the prefix a DNS subdomain.
fn valid_prefixed_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => valid_dns_subdomain(prefix) && valid_object_name(name),
        None => valid_object_name(s),
    }
}

fn valid_api_version(s: &str) -> bool {
    let version_ok =
        |v: &str| (1..=63).contains(&v.len()) && v.bytes().all(|c| c.is_ascii_alphanumeric());
    match s.split_once('/') {
        Some((group, v)) => valid_dns_subdomain(group) && version_ok(v),
        None => version_ok(s),
    }
}

fn valid_kind(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.as_bytes()[0].is_ascii_alphabetic()
        && s.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// Backstage's tags: 1-63 characters, words of `[a-z0-9:+#]` joined by `-`.
fn valid_tag(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.split('-').all(|w| {
            !w.is_empty()
                && w.bytes().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b':' | b'+' | b'#')
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backstage_names() {
        for ok in [
            "a",
            "appointments",
            "dev_appointments.v1",
            "A-b_c.d9",
            &"x".repeat(63),
        ] {
            assert!(valid_object_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a b", "é", &"x".repeat(64), "a/b"] {
            assert!(!valid_object_name(bad), "{bad}");
        }
        assert!(valid_api_version("backstage.io/v1alpha1"));
        assert!(valid_api_version("my-company.net/v1"));
        assert!(!valid_api_version("backstage.io/v1-alpha1"));
        assert!(!valid_api_version("Backstage.io/v1"));
        assert!(valid_kind("Event") && !valid_kind("1Event") && !valid_kind("Ev-ent"));
        assert!(
            valid_tag("java")
                && valid_tag("c++")
                && valid_tag("a-b")
                && !valid_tag("A")
                && !valid_tag("a--b")
        );
        assert!(valid_prefixed_name("example.com/custom") && !valid_prefixed_name("Example.com/x"));
        assert!(is_url("https://example.com/x") && is_url("mailto:team@example.com"));
        assert!(!is_url("example.com/runbook") && !is_url("https://a b") && !is_url("1http://x"));
        assert!(kafka_topic_name("dev_appointments").is_ok());
        assert!(kafka_topic_name("a b").is_err() && kafka_topic_name("..").is_err());
    }
}
