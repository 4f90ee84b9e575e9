//! A serde `Deserializer` over the located YAML tree, so shape errors (unknown key, wrong type,
//! missing key, unknown variant) carry the line and column of the node that caused them, the
//! path to it (`git[1].identity`), and a hint. The first shape error stops deserialisation.
//!
//! Messages describe what was found by kind ("text", "a list"), never by value, so a secret
//! pasted into the wrong place is not echoed back.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::error::Problem;
use crate::yaml::{resolve_plain, shorten, Kind, Mark, Node, PathDisplay, Plain, Seg};

#[derive(Debug)]
pub(crate) struct DeError {
    /// Filled by the innermost node that saw the error.
    at: Option<(Mark, Vec<Seg>)>,
    kind: DeKind,
}

#[derive(Debug)]
enum DeKind {
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    MissingField(&'static str),
    UnknownVariant {
        variant: String,
        expected: &'static [&'static str],
    },
    Type {
        expected: String,
        found: String,
    },
    OutOfRange {
        min: i128,
        max: u64,
    },
    Custom(String),
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.kind)
    }
}

impl std::error::Error for DeError {}

impl DeError {
    fn new(kind: DeKind) -> Self {
        DeError { at: None, kind }
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(DeKind::Custom(msg.to_string()))
    }
    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::new(DeKind::Type {
            expected: exp.to_string(),
            found: unexpected_kind(&unexp).to_string(),
        })
    }
    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::new(DeKind::Custom(format!(
            "invalid {}, expected {exp}",
            unexpected_kind(&unexp)
        )))
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::new(DeKind::UnknownVariant {
            variant: variant.to_string(),
            expected,
        })
    }
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::new(DeKind::UnknownField {
            field: field.to_string(),
            expected,
        })
    }
    fn missing_field(field: &'static str) -> Self {
        DeError::new(DeKind::MissingField(field))
    }
}

/// The kind of an unexpected value, never the value itself.
fn unexpected_kind(u: &de::Unexpected<'_>) -> &'static str {
    use de::Unexpected as U;
    match u {
        U::Bool(_) => "a boolean",
        U::Unsigned(_) | U::Signed(_) | U::Float(_) => "a number",
        U::Char(_) | U::Str(_) => "text",
        U::Bytes(_) => "bytes",
        U::Unit | U::Option => "nothing",
        U::Seq => "a list",
        U::Map | U::StructVariant => "a mapping",
        _ => "a value",
    }
}

/// Deserializes `root` as `T`; on failure, the located problem.
pub(crate) fn from_node<T: de::DeserializeOwned>(root: &Node) -> Result<T, Problem> {
    let de = NodeDe {
        node: root,
        path: Vec::new(),
    };
    T::deserialize(de).map_err(|e| into_problem(e, root))
}

struct NodeDe<'a> {
    node: &'a Node,
    path: Vec<Seg>,
}

impl NodeDe<'_> {
    fn wrap<T>(&self, r: Result<T, DeError>) -> Result<T, DeError> {
        r.map_err(|mut e| {
            if e.at.is_none() {
                e.at = Some((self.node.mark, self.path.clone()));
            }
            e
        })
    }

    fn type_error(&self, expected: &str) -> DeError {
        DeError {
            at: Some((self.node.mark, self.path.clone())),
            kind: DeKind::Type {
                expected: expected.to_string(),
                found: self.node.describe().to_string(),
            },
        }
    }

    /// Text of a scalar that is not null.
    fn text(&self, expected: &str) -> Result<&str, DeError> {
        match &self.node.kind {
            Kind::Scalar { text, plain } if !(*plain && resolve_plain(text) == Plain::Null) => {
                Ok(text)
            }
            _ => Err(self.type_error(expected)),
        }
    }

    fn integer(&self, min: i128, max: u64) -> Result<i128, DeError> {
        const EXPECTED: &str = "a whole number";
        let Kind::Scalar { text, plain: true } = &self.node.kind else {
            return Err(self.type_error(EXPECTED));
        };
        match resolve_plain(text) {
            Plain::Int(v) if v >= min && v <= i128::from(max) => Ok(v),
            Plain::Int(_) | Plain::BigInt => Err(DeError {
                at: Some((self.node.mark, self.path.clone())),
                kind: DeKind::OutOfRange { min, max },
            }),
            _ => Err(self.type_error(EXPECTED)),
        }
    }
}

macro_rules! int_method {
    ($method:ident, $visit:ident, $ty:ty) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let v = self.integer(i128::from(<$ty>::MIN), <$ty>::MAX as u64)?;
            // In range by the check above.
            let v = <$ty>::try_from(v).map_err(|_| self.type_error("a whole number"))?;
            let r = visitor.$visit(v);
            self.wrap(r)
        }
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.kind {
            Kind::Scalar { text, plain: false } => visitor.visit_str(text),
            Kind::Scalar { text, plain: true } => match resolve_plain(text) {
                Plain::Null => visitor.visit_unit(),
                Plain::Bool(b) => visitor.visit_bool(b),
                Plain::Int(i) => match i64::try_from(i) {
                    Ok(i) => visitor.visit_i64(i),
                    Err(_) => visitor.visit_str(text),
                },
                Plain::Float(f) => visitor.visit_f64(f),
                Plain::BigInt | Plain::Str => visitor.visit_str(text),
            },
            Kind::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter(),
                index: 0,
                path: &self.path,
            }),
            Kind::Map(entries) => visitor.visit_map(MapDe {
                entries: entries.iter(),
                value: None,
                path: &self.path,
            }),
        };
        self.wrap(r)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Scalar { text, plain: true } => match resolve_plain(text) {
                Plain::Bool(b) => {
                    let r = visitor.visit_bool(b);
                    self.wrap(r)
                }
                _ => Err(self.type_error("`true` or `false`")),
            },
            _ => Err(self.type_error("`true` or `false`")),
        }
    }

    int_method!(deserialize_i8, visit_i8, i8);
    int_method!(deserialize_i16, visit_i16, i16);
    int_method!(deserialize_i32, visit_i32, i32);
    int_method!(deserialize_i64, visit_i64, i64);
    int_method!(deserialize_u8, visit_u8, u8);
    int_method!(deserialize_u16, visit_u16, u16);
    int_method!(deserialize_u32, visit_u32, u32);
    int_method!(deserialize_u64, visit_u64, u64);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Scalar { text, plain: true } => match resolve_plain(text) {
                Plain::Float(f) => {
                    let r = visitor.visit_f64(f);
                    self.wrap(r)
                }
                #[allow(clippy::cast_precision_loss)]
                Plain::Int(i) => {
                    let r = visitor.visit_f64(i as f64);
                    self.wrap(r)
                }
                _ => Err(self.type_error("a number")),
            },
            _ => Err(self.type_error("a number")),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Plain numbers and booleans are accepted as their text: `PORT: 8080` means "8080".
        let text = self.text("text")?;
        let r = visitor.visit_str(text);
        self.wrap(r)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            let r = visitor.visit_none();
            self.wrap(r)
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            let r = visitor.visit_unit();
            self.wrap(r)
        } else {
            Err(self.type_error("nothing"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            // `skills:` with nothing under it (e.g. every item commented out) is an empty list.
            _ if self.node.is_null() => {
                let r = visitor.visit_seq(SeqDe {
                    items: [].iter(),
                    index: 0,
                    path: &self.path,
                });
                self.wrap(r)
            }
            Kind::Seq(items) => {
                let r = visitor.visit_seq(SeqDe {
                    items: items.iter(),
                    index: 0,
                    path: &self.path,
                });
                self.wrap(r)
            }
            _ => Err(self.type_error("a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            // `env:` with nothing under it is an empty mapping.
            _ if self.node.is_null() => {
                let r = visitor.visit_map(MapDe {
                    entries: [].iter(),
                    value: None,
                    path: &self.path,
                });
                self.wrap(r)
            }
            Kind::Map(entries) => {
                let r = visitor.visit_map(MapDe {
                    entries: entries.iter(),
                    value: None,
                    path: &self.path,
                });
                self.wrap(r)
            }
            _ => Err(self.type_error("a mapping")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let expected = format!("one of `{}`", variants.join("`, `"));
        let text = self.text(&expected)?;
        let r = visitor.visit_enum(IntoDeserializer::<DeError>::into_deserializer(text));
        self.wrap(r)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = self.text("a key")?;
        let r = visitor.visit_str(text);
        self.wrap(r)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqDe<'a, 'p> {
    items: std::slice::Iter<'a, Node>,
    index: usize,
    path: &'p [Seg],
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let mut path = self.path.to_vec();
        path.push(Seg::Index(self.index));
        self.index += 1;
        seed.deserialize(NodeDe { node, path }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'a, 'p> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<(&'a Node, Vec<Seg>)>,
    path: &'p [Seg],
}

impl<'de> de::MapAccess<'de> for MapDe<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let mut value_path = self.path.to_vec();
        let key_text = match &key.kind {
            Kind::Scalar { text, .. } => text.clone(),
            _ => String::new(),
        };
        value_path.push(Seg::Key(key_text));
        self.value = Some((value, value_path));
        seed.deserialize(NodeDe {
            node: key,
            path: self.path.to_vec(),
        })
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.value.take() {
            Some((node, path)) => seed.deserialize(NodeDe { node, path }),
            None => Err(de::Error::custom("value requested before its key")),
        }
    }
}

/// "at the top level" / "in `git[1]`".
fn context(path: &[Seg]) -> String {
    if path.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in `{}`", PathDisplay(path))
    }
}

fn subject(path: &[Seg]) -> String {
    if path.is_empty() {
        "the manifest".to_string()
    } else {
        format!("`{}`", PathDisplay(path))
    }
}

/// The closest candidate within a small edit distance.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase()),
                *c,
            )
        })
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn missing_hint(field: &str, path: &[Seg]) -> String {
    let in_git = matches!(path.first(), Some(Seg::Key(k)) if k == "git");
    let in_egress = matches!(path.first(), Some(Seg::Key(k)) if k == "egress");
    match field {
        "version" => "add `version: 1` at the top of the manifest".into(),
        "name" if in_git => "add `name: app` (the repository's name on the git gate)".into(),
        "name" => "add `name: my-agent` (lowercase letters, digits and `-`)".into(),
        "agent" => "add an `agent:` block, e.g. `agent: {provider: claude}`".into(),
        "provider" => "add `provider: claude` (or `codex`, or a user provider's name)".into(),
        "upstream" => "add `upstream: git@github.com:org/repo.git` (or an https:// URL)".into(),
        "host" => "add `host: api.example.com`".into(),
        "scheme" => "add `scheme: bearer` (or `basic`, or `header` with `name`)".into(),
        "token" if in_egress => {
            "add `token: HOST_VAR`, the NAME of the host environment variable holding the credential".into()
        }
        "token" => "add `token: HOST_VAR`, the NAME of the host environment variable holding the API token".into(),
        "forge" => "add `forge: github` (or `gitea`, `gitlab`)".into(),
        "api" => "add `api: https://api.github.com` (the forge's API base URL)".into(),
        other => format!("add `{other}: ...`"),
    }
}

fn type_hint(expected: &str, path: &[Seg]) -> String {
    let last = match path.last() {
        Some(Seg::Key(k)) => format!("`{k}:`"),
        _ => "it".to_string(),
    };
    match expected {
        "a mapping" => format!("write indented `key: value` lines under {last}"),
        "a list" => "write a list: `[a, b]`, or one `- item` per line".into(),
        "`true` or `false`" => {
            "write `true` or `false` without quotes (`yes`/`no` are text in YAML 1.2)".into()
        }
        "a whole number" => "write a whole number without quotes".into(),
        "a key" => "write keys as plain words: `name: value`".into(),
        e if e.starts_with("one of ") => format!("write a single word: {e}"),
        _ => format!("give {last} a single value; quote it if it contains `: ` or `#`"),
    }
}

fn into_problem(e: DeError, root: &Node) -> Problem {
    let (mark, path) = e.at.unwrap_or((root.mark, Vec::new()));
    match e.kind {
        DeKind::UnknownField { field, expected } => {
            let valid = expected.join(", ");
            let message = match suggest(&field, expected) {
                Some(s) => format!("unknown key `{}` — did you mean `{s}`?", shorten(&field)),
                None => format!("unknown key `{}` {}", shorten(&field), context(&path)),
            };
            let hint = format!("valid keys {}: {valid}", context(&path));
            mark.problem(message, Some(hint))
        }
        DeKind::MissingField(field) => mark.problem(
            format!("{} is missing the required key `{field}`", subject(&path)),
            Some(missing_hint(field, &path)),
        ),
        DeKind::UnknownVariant { variant, expected } => {
            let message = match suggest(&variant, expected) {
                Some(s) => format!(
                    "unknown value `{}` for {} — did you mean `{s}`?",
                    shorten(&variant),
                    subject(&path)
                ),
                None => format!(
                    "unknown value `{}` for {}",
                    shorten(&variant),
                    subject(&path)
                ),
            };
            mark.problem(
                message,
                Some(format!("use one of: {}", expected.join(", "))),
            )
        }
        DeKind::Type { expected, found } => mark.problem(
            format!("{} must be {expected}, found {found}", subject(&path)),
            Some(type_hint(&expected, &path)),
        ),
        DeKind::OutOfRange { min, max } => {
            let is_port = path.iter().rev().find_map(|s| match s {
                Seg::Key(k) => Some(k.as_str()),
                Seg::Index(_) => None,
            }) == Some("ports");
            let hint = if path == [Seg::Key("version".into())] {
                "this bot-bottle understands `version: 1` only".to_string()
            } else if is_port {
                "a port is a number from 1 to 65535".to_string()
            } else {
                format!("use a number from {min} to {max}")
            };
            mark.problem(format!("{} is out of range", subject(&path)), Some(hint))
        }
        DeKind::Custom(msg) => mark.problem(format!("{}: {msg}", subject(&path)), None),
    }
}
