//! YAML documents as trees that remember where each node was written, so
//! that every catalog problem can name its line and column. yaml-rust2's
//! own `Yaml` type drops positions; its event parser keeps them, and this
//! module builds the tree from those events.
//!
//! Scalars are typed as Backstage's loader (the `yaml` package, YAML 1.2
//! core schema) types them: `name: 123` is a number, not a string, and a
//! catalog that expects a string says so.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where a node starts: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

/// One YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Number(String),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in the order written (a repeated key is kept, to be reported).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The entries, if this is a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under `key` of a mapping (the first, if repeated).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.key_text() == key)
            .map(|(_, v)| v)
    }

    /// A mapping key as text (YAML allows any scalar as a key).
    pub fn key_text(&self) -> String {
        match &self.value {
            Value::Str(s) | Value::Number(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Null => "null".into(),
            Value::Seq(_) | Value::Map(_) => "<complex key>".into(),
        }
    }

    /// What kind of value this is, as a person would call it.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "empty (null)",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A document the parser could not read: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Every document of a YAML stream (`---`-separated), in order.
pub(crate) fn parse(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let m = e.marker();
        return Err(SyntaxError {
            pos: pos(m),
            message: e.info().to_string(),
        });
    }
    if let Some(message) = builder.error {
        return Err(message);
    }
    // An empty document (a `---` at the end of a file) is no entity;
    // Backstage skips it too.
    Ok(builder
        .docs
        .into_iter()
        .filter(|d| d.value != Value::Null)
        .collect())
}

fn pos(m: &Marker) -> Pos {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

/// A collection being built, and the key waiting for its value.
enum Open {
    Seq(Pos, usize, Vec<Node>),
    Map(Pos, usize, Vec<(Node, Node)>, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    docs: Vec<Node>,
    anchors: HashMap<usize, Node>,
    aliases: usize,
    copied: usize,
    error: Option<SyntaxError>,
}

const MAX_ALIASES: usize = 100;
const MAX_COPIED: usize = 10_000;

/// Nodes in a tree.
fn size(n: &Node) -> usize {
    1 + match &n.value {
        Value::Seq(items) => items.iter().map(size).sum(),
        Value::Map(entries) => entries.iter().map(|(k, v)| size(k) + size(v)).sum(),
        _ => 0,
    }
}

impl Builder {
    /// A finished node goes into the collection being built, or is a
    /// whole document.
    fn push(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Open::Seq(_, _, items)) => items.push(node),
            Some(Open::Map(_, _, entries, key)) => match key.take() {
                None => *key = Some(node),
                // An empty value (`key:` and nothing) is marked at the
                // next token, lines later: place it at its key.
                Some(k) => {
                    let mut node = node;
                    if node.value == Value::Null {
                        node.pos = k.pos;
                    }
                    entries.push((k, node))
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = pos(&mark);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let plain = style == TScalarStyle::Plain && tag.is_none();
                let value = if plain { typed(text) } else { Value::Str(text) };
                self.push(Node { pos: at, value }, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Open::Seq(at, anchor, Vec::new())),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Open::Map(at, anchor, Vec::new(), None))
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Open::Seq(p, a, items)) => (
                        Node {
                            pos: p,
                            value: Value::Seq(items),
                        },
                        a,
                    ),
                    // A block mapping's start event is marked after its
                    // first key; the first key is where a reader looks.
                    Some(Open::Map(p, a, entries, _)) => (
                        Node {
                            pos: entries.first().map_or(p, |(k, _)| k.pos.min(p)),
                            value: Value::Map(entries),
                        },
                        a,
                    ),
                    None => return,
                };
                self.push(node, anchor);
            }
            // Each alias is a copy: at most 100 aliases and 10,000 copied
            // nodes in all, so nested aliases cannot exhaust memory.
            Event::Alias(_) if self.aliases >= MAX_ALIASES => {
                self.error.get_or_insert(SyntaxError {
                    pos: at,
                    message: format!("more than {MAX_ALIASES} aliases"),
                });
            }
            Event::Alias(id)
                if self
                    .anchors
                    .get(&id)
                    .is_some_and(|n| self.copied + size(n) > MAX_COPIED) =>
            {
                self.error.get_or_insert(SyntaxError {
                    pos: at,
                    message: format!("aliases expanding to more than {MAX_COPIED} nodes"),
                });
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    self.aliases += 1;
                    self.copied += size(&node);
                    node.pos = at;
                    self.push(node, 0);
                }
                None => {
                    self.error.get_or_insert(SyntaxError {
                        pos: at,
                        message: "an alias to an anchor not defined before it".into(),
                    });
                }
            },
            Event::DocumentStart
            | Event::DocumentEnd
            | Event::StreamStart
            | Event::StreamEnd
            | Event::Nothing => {}
        }
    }
}

/// A plain scalar's type under the YAML 1.2 core schema.
fn typed(text: String) -> Value {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ if is_number(&text) => Value::Number(text),
        _ => Value::Str(text),
    }
}

fn is_number(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if matches!(body, ".inf" | ".Inf" | ".INF") || matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    if let Some(oct) = s.strip_prefix("0o") {
        return !oct.is_empty() && oct.chars().all(|c| ('0'..='7').contains(&c));
    }
    !body.is_empty()
        && body.chars().any(|c| c.is_ascii_digit())
        && body.parse::<f64>().is_ok()
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let docs = parse("a: 1\nb:\n  c: x\n  d: [1, 'two']\n").unwrap();
        assert_eq!(docs.len(), 1);
        let b = docs[0].get("b").unwrap();
        let c = b.get("c").unwrap();
        assert_eq!(c.pos, Pos { line: 3, col: 6 });
        assert_eq!(c.as_str(), Some("x"));
        let d = b.get("d").unwrap();
        match &d.value {
            Value::Seq(items) => {
                assert_eq!(items[0].value, Value::Number("1".into()));
                assert_eq!(items[1].value, Value::Str("two".into()));
                assert_eq!(items[1].pos, Pos { line: 4, col: 10 });
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(docs[0].get("a").unwrap().pos, Pos { line: 1, col: 4 });
        // A mapping is where its first key is (block or flow).
        assert_eq!(docs[0].pos, Pos { line: 1, col: 1 });
        assert_eq!(b.pos, Pos { line: 3, col: 3 });
        let flow = &parse(
            "x:
  - {k: v}
",
        )
        .unwrap()[0];
        match &flow.get("x").unwrap().value {
            Value::Seq(items) => assert_eq!(items[0].pos, Pos { line: 2, col: 5 }),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scalars_typed_as_yaml_1_2_and_quotes_keep_strings() {
        let docs =
            parse("a: 123\nb: '123'\nc: true\nd: ~\ne: 1.5e3\nf: v1alpha1\ng: 12-34\n").unwrap();
        let v = |k: &str| docs[0].get(k).unwrap().value.clone();
        assert_eq!(v("a"), Value::Number("123".into()));
        assert_eq!(v("b"), Value::Str("123".into()));
        assert_eq!(v("c"), Value::Bool(true));
        assert_eq!(v("d"), Value::Null);
        assert_eq!(v("e"), Value::Number("1.5e3".into()));
        assert_eq!(v("f"), Value::Str("v1alpha1".into()));
        assert_eq!(v("g"), Value::Str("12-34".into()));
    }

    #[test]
    fn several_documents_and_aliases() {
        let docs = parse("a: &x {k: v}\nb: *x\n---\nc: 1\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[0].get("b").unwrap().get("k").unwrap().as_str(),
            Some("v")
        );
        assert_eq!(docs[1].get("c").unwrap().pos.line, 4);
    }

    #[test]
    fn empty_values_are_at_their_key_and_empty_documents_are_skipped() {
        let docs = parse("a:\n  b:\n  c: 1\n---\n").unwrap();
        assert_eq!(docs.len(), 1);
        let b = docs[0].get("a").unwrap().get("b").unwrap();
        assert_eq!(
            (b.value.clone(), b.pos),
            (Value::Null, Pos { line: 2, col: 3 })
        );
    }

    #[test]
    fn aliases_are_bounded() {
        let mut text = String::from("a: &a [x, x]\n");
        for i in 0..120 {
            text.push_str(&format!("k{i}: *a\n"));
        }
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("more than 100 aliases"), "{e:?}");
        assert_eq!(e.pos.line, 102);
    }

    #[test]
    fn nested_aliases_are_bounded_by_what_they_copy() {
        // Ten levels of ten aliases would copy 10^10 nodes.
        let mut text = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*l{}", i - 1); 10].join(", ");
            text.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
        }
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("more than 10000 nodes"), "{e:?}");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(e.pos.line >= 2, "{e:?}");
        assert!(!e.message.is_empty());
    }
}
