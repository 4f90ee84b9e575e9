//! A small YAML document tree that remembers where every node came from.
//!
//! Built from `saphyr-parser` events so every key and value keeps its line and column; the
//! deserializer (`de`) and the semantic checks (`validate`) use those positions in their errors.
//! This layer also refuses what a manifest never needs and what could be abused: more than one
//! document, duplicate keys, custom tags, nesting deeper than [`MAX_DEPTH`], and alias expansion
//! beyond [`MAX_NODES`] (a "billion laughs" document stops here instead of eating memory).

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use crate::error::Problem;

/// Deepest nesting accepted. A manifest needs about 5 levels.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most nodes a document may have, counting every alias expansion.
pub(crate) const MAX_NODES: usize = 100_000;

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Mark {
    pub line: usize,
    pub col: usize,
}

impl Mark {
    fn from_span(span: &Span) -> Self {
        Mark {
            line: span.start.line().max(1),
            col: span.start.col() + 1,
        }
    }

    pub(crate) fn problem(self, message: impl Into<String>, hint: Option<String>) -> Problem {
        Problem {
            line: self.line,
            col: self.col,
            message: message.into(),
            hint,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub mark: Mark,
    pub kind: Kind,
    /// Levels below and including this node (a scalar is 1). Kept so an alias cannot smuggle
    /// nesting deeper than [`MAX_DEPTH`] past the check on the parser's own stack.
    pub height: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// `plain` is false for quoted/block scalars and `!!str`: those are always text.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// What a plain scalar means under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Plain {
    Null,
    Bool(bool),
    Int(i128),
    /// An integer too large for i128.
    BigInt,
    Float(f64),
    Str,
}

pub(crate) fn resolve_plain(text: &str) -> Plain {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Plain::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        _ => {}
    }
    let (neg, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let int = if let Some(hex) = text.strip_prefix("0x") {
        radix(hex, 16)
    } else if let Some(oct) = text.strip_prefix("0o") {
        radix(oct, 8)
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        Some(
            digits
                .parse::<i128>()
                .map(|v| Plain::Int(if neg { -v } else { v }))
                .unwrap_or(Plain::BigInt),
        )
    } else {
        None
    };
    if let Some(int) = int {
        return int;
    }
    if looks_like_float(digits) {
        if let Ok(f) = text.parse::<f64>() {
            return Plain::Float(f);
        }
    }
    Plain::Str
}

fn radix(digits: &str, radix: u32) -> Option<Plain> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    Some(
        i128::from_str_radix(digits, radix)
            .map(Plain::Int)
            .unwrap_or(Plain::BigInt),
    )
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` without a sign.
fn looks_like_float(s: &str) -> bool {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            (!a.is_empty() || !b.is_empty())
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|c| c.is_ascii_digit()),
    };
    let exp_ok = match exp {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
        }
    };
    mantissa_ok && exp_ok
}

impl Node {
    /// Short description of what this node is, for "expected X, found Y". Never the value.
    pub(crate) fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
            Kind::Scalar { plain: false, .. } => "text",
            Kind::Scalar { text, plain: true } => match resolve_plain(text) {
                Plain::Null => "nothing",
                Plain::Bool(_) => "a boolean",
                Plain::Int(_) | Plain::BigInt => "a number",
                Plain::Float(_) => "a decimal number",
                Plain::Str => "text",
            },
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true } if resolve_plain(text) == Plain::Null)
    }

    /// The child at `seg`, if present.
    pub(crate) fn child(&self, seg: &Seg) -> Option<&Node> {
        match (&self.kind, seg) {
            (Kind::Map(entries), Seg::Key(k)) => entries
                .iter()
                .find(|(key, _)| matches!(&key.kind, Kind::Scalar { text, .. } if text == k))
                .map(|(_, v)| v),
            (Kind::Seq(items), Seg::Index(i)) => items.get(*i),
            _ => None,
        }
    }

    /// The key node naming the child `key` of this mapping.
    pub(crate) fn key_node(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.kind, Kind::Scalar { text, .. } if text == key))
                .map(|(k, _)| k),
            _ => None,
        }
    }

    /// Where the value at `path` is; the nearest existing ancestor when it is absent.
    pub(crate) fn locate(&self, path: &[Seg]) -> Mark {
        let mut node = self;
        for seg in path {
            match node.child(seg) {
                Some(next) => node = next,
                None => return node.mark,
            }
        }
        node.mark
    }

    /// Where the key naming the last segment of `path` is (for "remove this key" errors);
    /// falls back to [`Node::locate`].
    pub(crate) fn locate_key(&self, path: &[Seg]) -> Mark {
        if let Some((Seg::Key(last), parent)) = path.split_last() {
            let mut node = self;
            for seg in parent {
                match node.child(seg) {
                    Some(next) => node = next,
                    None => return node.mark,
                }
            }
            if let Some(key) = node.key_node(last) {
                return key.mark;
            }
            return node.mark;
        }
        self.locate(path)
    }

    fn count(&self) -> usize {
        match &self.kind {
            Kind::Scalar { .. } => 1,
            Kind::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Kind::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.count() + v.count())
                    .sum::<usize>()
            }
        }
    }
}

/// One step of a path into the document: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Shows a path the way a user would write it: `git[1].identity`.
pub(crate) struct PathDisplay<'a>(pub &'a [Seg]);

impl fmt::Display for PathDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

enum Frame {
    Seq {
        mark: Mark,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        mark: Mark,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        seen: HashMap<String, Mark>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    root: Option<Node>,
}

/// Parses `source` into one document tree. `Ok(None)` for a file with no document (empty or
/// only comments).
pub(crate) fn parse(source: &str) -> Result<Option<Node>, Problem> {
    let mut parser = Parser::new_from_str(source);
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        root: None,
    };
    let mut documents = 0usize;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| {
            let m = e.marker();
            Problem {
                line: m.line().max(1),
                col: m.col() + 1,
                message: format!("invalid YAML: {}", e.info()),
                hint: Some(syntax_hint(e.info())),
            }
        })?;
        let mark = Mark::from_span(&span);
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(mark.problem(
                        "more than one YAML document in the manifest",
                        Some("keep a single document: remove the extra `---` line".into()),
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let plain = matches!(style, ScalarStyle::Plain);
                let plain = match tag.as_deref() {
                    None => plain,
                    Some(t) if is_core(t, "str") => false,
                    Some(t) if is_core(t, "null") || is_core(t, "bool") || is_core(t, "int") => {
                        plain
                    }
                    Some(t) => return Err(tag_problem(mark, t)),
                };
                let node = Node {
                    mark,
                    kind: Kind::Scalar {
                        text: text.into_owned(),
                        plain,
                    },
                    height: 1,
                };
                b.finish(node, anchor)?;
            }
            Event::SequenceStart(anchor, tag) => {
                if let Some(t) = tag.as_deref().filter(|t| !is_core(t, "seq")) {
                    return Err(tag_problem(mark, t));
                }
                b.push(
                    Frame::Seq {
                        mark,
                        anchor,
                        items: Vec::new(),
                    },
                    mark,
                )?;
            }
            Event::MappingStart(anchor, tag) => {
                if let Some(t) = tag.as_deref().filter(|t| !is_core(t, "map")) {
                    return Err(tag_problem(mark, t));
                }
                b.push(
                    Frame::Map {
                        mark,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                        seen: HashMap::new(),
                    },
                    mark,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match b.stack.pop() {
                    Some(Frame::Seq {
                        mark,
                        anchor,
                        items,
                    }) => (
                        Node {
                            mark,
                            height: 1 + items.iter().map(|n| n.height).max().unwrap_or(0),
                            kind: Kind::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        mark,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            mark,
                            height: 1 + entries
                                .iter()
                                .map(|(k, v)| k.height.max(v.height))
                                .max()
                                .unwrap_or(0),
                            kind: Kind::Map(entries),
                        },
                        anchor,
                    ),
                    None => continue,
                };
                b.finish(node, anchor)?;
            }
            Event::Alias(id) => {
                let Some(target) = b.anchors.get(&id) else {
                    return Err(mark.problem("alias refers to an unknown anchor", None));
                };
                let mut node = target.clone();
                b.nodes += node.count();
                if b.nodes > MAX_NODES {
                    return Err(too_many(mark));
                }
                node.mark = mark;
                b.finish(node, 0)?;
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
    Ok(b.root.filter(|n| !n.is_null()))
}

fn is_core(tag: &Tag, suffix: &str) -> bool {
    tag.is_yaml_core_schema() && tag.suffix == suffix
}

fn tag_problem(mark: Mark, tag: &Tag) -> Problem {
    let shown: String = format!("{}{}", tag.handle, tag.suffix)
        .chars()
        .take(40)
        .collect();
    mark.problem(
        format!("YAML tag `{shown}` is not supported in a manifest"),
        Some("remove the tag; quote the value if it should be text".into()),
    )
}

fn too_deep(mark: Mark) -> Problem {
    mark.problem(
        format!("nesting is deeper than {MAX_DEPTH} levels"),
        Some("a manifest needs only a few levels; flatten this structure".into()),
    )
}

fn too_many(mark: Mark) -> Problem {
    mark.problem(
        format!("the manifest expands to more than {MAX_NODES} YAML nodes"),
        Some("a manifest is small; remove repeated aliases (`*name`)".into()),
    )
}

fn syntax_hint(info: &str) -> String {
    if info.contains("tab") {
        "indent with spaces; YAML does not allow tabs for indentation".into()
    } else if info.contains("mapping values are not allowed") {
        "quote values that contain `: `, or fix the indentation of this line".into()
    } else {
        "check the indentation and quoting around this position".into()
    }
}

impl Builder {
    fn push(&mut self, frame: Frame, mark: Mark) -> Result<(), Problem> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(too_deep(mark));
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(too_many(mark));
        }
        self.stack.push(frame);
        Ok(())
    }

    /// Attaches a completed node to its parent (or makes it the root).
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), Problem> {
        if self.stack.len() + node.height > MAX_DEPTH + 1 {
            return Err(too_deep(node.mark));
        }
        if matches!(node.kind, Kind::Scalar { .. }) {
            self.nodes += 1;
            if self.nodes > MAX_NODES {
                return Err(too_many(node.mark));
            }
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries, key, seen, ..
            }) => match key.take() {
                None => {
                    let Kind::Scalar { text, .. } = &node.kind else {
                        return Err(node.mark.problem(
                            "a mapping key must be a plain word, not a list or mapping",
                            Some("write keys as `name: value`".into()),
                        ));
                    };
                    if let Some(first) = seen.get(text) {
                        return Err(node.mark.problem(
                            format!("duplicate key `{}`", shorten(text)),
                            Some(format!(
                                "remove one of the two; the first is at line {}, column {}",
                                first.line, first.col
                            )),
                        ));
                    }
                    seen.insert(text.clone(), node.mark);
                    *key = Some(node);
                }
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }
}

/// A key or word quoted in a message, cut short so a pasted blob never floods the terminal.
/// Anything that looks like a credential is not quoted at all.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    if crate::validate::looks_like_secret(s) {
        return "<value not shown: it looks like a secret>".to_string();
    }
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if clean.chars().count() > MAX {
        let mut out: String = clean.chars().take(MAX).collect();
        out.push('…');
        out
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        assert_eq!(resolve_plain("~"), Plain::Null);
        assert_eq!(resolve_plain("True"), Plain::Bool(true));
        assert_eq!(resolve_plain("yes"), Plain::Str);
        assert_eq!(resolve_plain("-12"), Plain::Int(-12));
        assert_eq!(resolve_plain("0x1F"), Plain::Int(31));
        assert_eq!(resolve_plain("0o17"), Plain::Int(15));
        assert_eq!(resolve_plain("1.5e3"), Plain::Float(1500.0));
        assert_eq!(resolve_plain("10m"), Plain::Str);
        assert_eq!(resolve_plain("1.2.3"), Plain::Str);
        assert_eq!(
            resolve_plain("99999999999999999999999999999999999999999"),
            Plain::BigInt
        );
    }

    #[test]
    fn marks_are_one_based() {
        let root = parse("a: 1\nb:\n  c: x\n").unwrap().unwrap();
        let m = root.locate(&[Seg::Key("b".into()), Seg::Key("c".into())]);
        assert_eq!((m.line, m.col), (3, 6));
        let k = root.locate_key(&[Seg::Key("b".into()), Seg::Key("c".into())]);
        assert_eq!((k.line, k.col), (3, 3));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let p = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!((p.line, p.col), (3, 1));
        assert!(p.message.contains("duplicate key `a`"));
    }

    #[test]
    fn alias_bombs_stop() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let p = parse(&doc).unwrap_err();
        assert!(p.message.contains("more than"), "{}", p.message);
    }

    #[test]
    fn deep_nesting_stops() {
        let doc = "[".repeat(10_000);
        assert!(parse(&doc).is_err());
        let mut block = String::new();
        for i in 0..200 {
            block.push_str(&" ".repeat(i));
            block.push_str("k:\n");
        }
        let p = parse(&block).unwrap_err();
        assert!(p.message.contains("deeper"), "{}", p.message);
        // Aliases nest anchored trees inside each other: the depth limit still holds.
        let mut chain = format!("a0: &a0 {}x{}\n", "[".repeat(30), "]".repeat(30));
        for i in 1..10 {
            chain.push_str(&format!(
                "a{i}: &a{i} {}*a{}{}\n",
                "[".repeat(30),
                i - 1,
                "]".repeat(30)
            ));
        }
        let p = parse(&chain).unwrap_err();
        assert!(p.message.contains("deeper"), "{}", p.message);
        assert!(parse(&format!("a: {}x{}", "[".repeat(62), "]".repeat(62))).is_ok());
    }

    #[test]
    fn secrets_are_never_quoted() {
        assert_eq!(shorten("egres"), "egres");
        assert!(!shorten("sk-ant-api03-abcdef").contains("abcdef"));
        let long = shorten(&"key_".repeat(15));
        assert!(long.starts_with("key_key_") && long.ends_with('…') && long.chars().count() == 41);
        assert!(shorten(&"k".repeat(50)).contains("not shown"));
        let p = parse("a: 1\nsk-live-123: 2\nsk-live-123: 3\n").unwrap_err();
        assert!(!p.message.contains("sk-live-123"), "{}", p.message);
    }

    #[test]
    fn tags_other_than_core_are_refused() {
        assert!(parse("a: !custom x\n").is_err());
        let root = parse("a: !!str 12\n").unwrap().unwrap();
        let a = root.child(&Seg::Key("a".into())).unwrap();
        assert_eq!(a.describe(), "text");
    }
}
