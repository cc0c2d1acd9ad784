//! YAML documents with the line of every node.
//!
//! Manifests are parsed with serde-saphyr into a [`Node`] tree that keeps
//! each node's line, so later checks can point at the exact line of a bad
//! value. Parsing is bounded: alias expansion and nesting are limited so an
//! alias bomb fails fast instead of eating memory.
//!
//! Plain scalars are resolved from their source text by [`resolve`], the way
//! Kubernetes' YAML parser (go-yaml v2, YAML 1.1) reads them, so `0400` is
//! 256 here as it is for `kubectl apply`.

mod resolve;

use resolve::Plain;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};
use std::{cell::RefCell, collections::HashSet, fmt, rc::Rc};
use tidegate_core::Diagnostic;

thread_local! {
    /// The text being parsed by [`parse_documents`] on this thread, so a
    /// node can read its scalar's source text through its span.
    static SOURCE: RefCell<Option<Rc<str>>> = const { RefCell::new(None) };
}

/// Clears [`SOURCE`] when parsing ends, even on error.
struct SourceGuard;

impl SourceGuard {
    fn set(text: &str) -> SourceGuard {
        SOURCE.with(|s| *s.borrow_mut() = Some(Rc::from(text)));
        SourceGuard
    }
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        SOURCE.with(|s| *s.borrow_mut() = None);
    }
}

/// The source text of a plain (unquoted, untagged, single-line) scalar at
/// `location`; `None` for quoted, block, tagged or unknown scalars, whose
/// value the parser already got right.
fn plain_text(location: &Location) -> Option<String> {
    let span = location.span();
    let (start, len) = (span.byte_offset()?, span.byte_len()?);
    SOURCE.with(|s| {
        let source = s.borrow();
        let source = source.as_deref()?;
        let start = usize::try_from(start).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        let text = source.get(start..end)?;
        // A tag (`!!str 0400`) sits before the span: the value is typed by it.
        let tagged = source
            .get(..start)?
            .trim_end()
            .rsplit(|c: char| c.is_whitespace() || matches!(c, '[' | '{' | ','))
            .next()
            .is_some_and(|token| token.starts_with('!'));
        let plain = !tagged
            && !text.starts_with(['\'', '"', '|', '>', '!', '&', '*'])
            && !text.contains(['\n', '\r']);
        plain.then(|| text.trim_end().to_string())
    })
}

/// A YAML node and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Line of the node (0 when unknown).
    pub line: u64,
    /// The value.
    pub value: NodeValue,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// `null`, `~` or nothing.
    Null,
    /// A boolean (YAML 1.1 spellings such as `yes`/`on` included, as Kubernetes reads them).
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<(String, Node)>),
}

/// One document of a file.
#[derive(Debug, Clone)]
pub struct Document {
    /// 0-based index among the file's non-empty documents.
    pub index: usize,
    /// The root node.
    pub root: Node,
}

impl Node {
    /// The child at `key`, for mappings.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node at a path of mapping keys.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The string value, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// Converts to JSON (the form every later stage works with).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Number(n) => Value::Number(n.clone()),
            NodeValue::String(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A short description of the value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Number(_) => "a number",
            NodeValue::String(_) => "a string",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }
}

/// Parses every document of a manifest file. Empty documents are skipped.
/// On a syntax error the whole file is reported (one diagnostic with the line).
pub fn parse_documents(bytes: &[u8], file: &str) -> Result<Vec<Document>, Diagnostic> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64
            + 1;
        Diagnostic::new(format!(
            "file is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
        .at(file, Some(line))
        .help("save the file as UTF-8")
    })?;
    let options = serde_saphyr::options! {
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: 16,
        },
    };
    let _source = SourceGuard::set(text);
    let docs: Vec<Option<Node>> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
            let line = e.location().map(|l| l.line()).filter(|l| *l > 0);
            let message = e.without_snippet().to_string();
            let message = message.lines().next().unwrap_or("invalid YAML");
            // The line is in the diagnostic already.
            let message = match message.rfind(" at line ") {
                Some(i) => &message[..i],
                None => message,
            };
            let help = if message.contains("alias") || message.contains("budget") {
                "this file expands YAML aliases too much (an alias bomb?); write the objects out"
            } else {
                "fix the YAML syntax at this line"
            };
            Diagnostic::new(format!("invalid YAML: {message}"))
                .at(file, line)
                .help(help)
        })?;
    Ok(docs
        .into_iter()
        .flatten()
        .filter(|n| n.value != NodeValue::Null)
        .enumerate()
        .map(|(index, root)| Document { index, root })
        .collect())
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeValue>::deserialize(d)?;
        let value = match spanned.value {
            NodeValue::Seq(_) | NodeValue::Map(_) => spanned.value,
            scalar => match plain_text(&spanned.defined) {
                Some(text) => plain_value(&text, scalar)?,
                None => scalar,
            },
        };
        Ok(Node {
            line: spanned.referenced.line(),
            value,
        })
    }
}

/// A plain scalar's value by Kubernetes' rules ([`resolve`]).
fn plain_value<E: de::Error>(text: &str, parsed: NodeValue) -> Result<NodeValue, E> {
    Ok(match resolve::resolve(text) {
        Plain::Null => NodeValue::Null,
        Plain::Bool(b) => NodeValue::Bool(b),
        Plain::Int(i) => NodeValue::Number(i.to_json()),
        Plain::Float(f) => NodeValue::Number(resolve::json_float(f).ok_or_else(not_finite)?),
        Plain::NotFinite => return Err(not_finite()),
        Plain::Str => match parsed {
            NodeValue::String(s) => NodeValue::String(s),
            _ => NodeValue::String(text.to_string()),
        },
    })
}

fn not_finite<E: de::Error>() -> E {
    E::custom("NaN and infinity are not valid in Kubernetes objects")
}

impl<'de> Deserialize<'de> for NodeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }
    fn visit_none<E>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeValue, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<NodeValue, E> {
        Ok(NodeValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<NodeValue, E> {
        Ok(NodeValue::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<NodeValue, E> {
        Ok(NodeValue::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NodeValue, E> {
        resolve::json_float(v)
            .map(NodeValue::Number)
            .ok_or_else(not_finite)
    }
    fn visit_str<E>(self, v: &str) -> Result<NodeValue, E> {
        Ok(NodeValue::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<NodeValue, E> {
        Ok(NodeValue::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(NodeValue::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeValue, A::Error> {
        let mut entries: Vec<(String, Node)> = Vec::new();
        // Keys seen so far: one hash lookup per key, so a mapping of many
        // keys costs linear time, not quadratic.
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<KeyString>()? {
            let value = map.next_value::<Node>()?;
            if !seen.insert(key.0.clone()) {
                return Err(de::Error::custom(format!("duplicate key {:?}", key.0)));
            }
            entries.push((key.0, value));
        }
        Ok(NodeValue::Map(entries))
    }
}

/// A mapping key: any scalar, as its text (Kubernetes keys are strings).
struct KeyString(String);

impl<'de> Deserialize<'de> for KeyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<ParsedKey>::deserialize(d)?;
        match plain_text(&spanned.defined) {
            Some(text) if text != "<<" => resolve::key_text(&text).map(KeyString).ok_or_else(|| {
                de::Error::custom(format!(
                    "the key {text:?} is null or not a finite number, which a JSON object cannot have"
                ))
            }),
            _ => Ok(KeyString(spanned.value.0)),
        }
    }
}

/// A mapping key as the parser read it.
struct ParsedKey(String);

impl<'de> Deserialize<'de> for ParsedKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = ParsedKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<ParsedKey, E> {
                Ok(ParsedKey(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<ParsedKey, E> {
                Ok(ParsedKey(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<ParsedKey, E> {
                Ok(ParsedKey(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<ParsedKey, E> {
                Ok(ParsedKey(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<ParsedKey, E> {
                Ok(ParsedKey(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<ParsedKey, E> {
                Ok(ParsedKey("null".into()))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<Document> {
        parse_documents(text.as_bytes(), "f.yaml").expect("valid YAML")
    }

    #[test]
    fn keeps_lines_and_skips_empty_documents() {
        let docs = parse(
            "# comment\n---\n---\na: 1\nb:\n  c: [x, y]\n---\n# only a comment\n---\nd: true\n",
        );
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].root.get("a").map(|n| n.line), Some(4));
        assert_eq!(docs[0].root.at(&["b", "c"]).map(|n| n.line), Some(6));
        assert_eq!(docs[1].index, 1);
        assert_eq!(docs[1].root.to_json(), serde_json::json!({"d": true}));
    }

    #[test]
    fn yaml11_booleans_read_like_kubernetes() {
        let docs = parse("a: yes\nb: \"yes\"\nc: on\nd: off\n");
        assert_eq!(
            docs[0].root.to_json(),
            serde_json::json!({"a": true, "b": "yes", "c": true, "d": false})
        );
    }

    #[test]
    fn numbers_read_like_kubernetes_in_every_position() {
        let docs = parse(
            "a: 0400\nb: \"0400\"\nc: &m 0644 # mode\nd: *m\ne: [010, '010', 0x1F, 1_000, 08]\nf: {g: 0400}\n0400: key\nyes: key\nh: 1.0\ni: !!str 0400\nj: |\n  0400\nk:   0400   \nl: 1:30\n",
        );
        assert_eq!(
            docs[0].root.to_json(),
            serde_json::json!({
                "a": 256, "b": "0400", "c": 420, "d": 420,
                "e": [8, "010", 31, 1000, 8], "f": {"g": 256},
                "256": "key", "true": "key", "h": 1, "i": "0400", "j": "0400\n",
                "k": 256, "l": "1:30"
            })
        );
    }

    #[test]
    fn numbers_read_the_same_with_a_bom_crlf_and_flow_collections() {
        for text in [
            "\u{feff}a: 0400\nb: [0400, {c: 0400}]\n",
            "a: 0400\r\nb: [0400, {c: 0400}]\r\n",
            "a:   0400 # octal\nb:\n  - 0400\n  - c: 0400\n",
            "# ä 😀 ü\na: 0400\nb: [0400, {c: 0400}]\n",
        ] {
            assert_eq!(
                parse(text)[0].root.to_json(),
                serde_json::json!({"a": 256, "b": [256, {"c": 256}]}),
                "{text:?}"
            );
        }
    }

    #[test]
    fn nan_infinity_and_null_keys_are_refused() {
        for text in ["a: .nan\n", "a: -.Inf\n", "~: x\n"] {
            let err = parse_documents(text.as_bytes(), "f.yaml").expect_err(text);
            assert_eq!(err.line, Some(1), "{err}");
        }
    }

    #[test]
    fn a_mapping_of_many_keys_is_read_in_linear_time() {
        // 124k keys took a minute with the quadratic duplicate check; the
        // duplicate is still found, at its line.
        let mut text = String::from("data:\n");
        for i in 0..20_000 {
            text.push_str(&format!("  k{i}: v\n"));
        }
        assert_eq!(parse(&text)[0].root.get("data").map(|d| d.line), Some(2));
        text.push_str("  k7: again\n");
        let err = parse_documents(text.as_bytes(), "f.yaml").expect_err("duplicate");
        assert!(
            err.message.contains("duplicate") && err.message.contains("k7"),
            "{err}"
        );
        assert_eq!(err.line, Some(20_002), "{err}");
    }

    #[test]
    fn syntax_errors_carry_a_line() {
        let err = parse_documents(b"a: 1\nb: [1, 2\nc: 3\n", "f.yaml").expect_err("bad");
        assert!(err.line.is_some(), "{err}");
        assert!(err.message.starts_with("invalid YAML"), "{err}");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                [prev.as_str(); 10].join(", ")
            ));
        }
        let err = parse_documents(text.as_bytes(), "bomb.yaml").expect_err("bomb");
        assert!(
            err.help.as_deref().is_some_and(|h| h.contains("alias")),
            "{err}"
        );
    }

    #[test]
    fn non_utf8_names_the_line() {
        let err = parse_documents(b"a: 1\nb: \xff\n", "f.yaml").expect_err("bad");
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("UTF-8"));
    }
}
