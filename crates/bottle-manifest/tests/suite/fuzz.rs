//! The parser never panics: random bytes, random edits of a valid manifest, and adversarial
//! shapes (deep nesting, alias bombs, huge input) all end in `Ok` or a located error.

use std::path::Path;

use bottle_manifest::{parse_str, MAX_MANIFEST_BYTES};
use proptest::prelude::*;

const VALID: &str = include_str!("../valid/spec_example.yaml");
const EVERYTHING: &str = include_str!("../valid/codex_everything.yaml");

fn check(source: &str) {
    if let Err(e) = parse_str(source, Path::new("fuzz.yaml")) {
        let text = e.to_string();
        assert!(text.starts_with("fuzz.yaml:"), "unlocated error: {text}");
    }
}

/// A random edit: delete a range, insert text, or duplicate/swap lines.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    DupLine(usize),
    SwapLines(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0usize..20).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), "[ -~\t\n:{}\\[\\]&*!|>'\"#-]{0,8}").prop_map(|(a, s)| Edit::Insert(a, s)),
        any::<usize>().prop_map(Edit::DupLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

fn apply(base: &str, edits: &[Edit]) -> String {
    let mut s: Vec<char> = base.chars().collect();
    for e in edits {
        match e {
            Edit::Delete(at, n) => {
                if !s.is_empty() {
                    let at = at % s.len();
                    let end = (at + n).min(s.len());
                    s.drain(at..end);
                }
            }
            Edit::Insert(at, text) => {
                let at = if s.is_empty() { 0 } else { at % (s.len() + 1) };
                s.splice(at..at, text.chars());
            }
            Edit::DupLine(i) | Edit::SwapLines(i, _) => {
                let text: String = s.iter().collect();
                let mut lines: Vec<&str> = text.lines().collect();
                if !lines.is_empty() {
                    let a = i % lines.len();
                    match e {
                        Edit::SwapLines(_, j) => {
                            let b = j % lines.len();
                            lines.swap(a, b);
                        }
                        _ => lines.insert(a, lines[a]),
                    }
                }
                s = lines.join("\n").chars().collect();
            }
        }
    }
    s.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn yamlish_text_never_panics(s in "[a-z_:{}\\[\\], \n\t&*!|>'\"#?-]{0,300}") {
        check(&s);
    }

    #[test]
    fn edits_of_valid_manifests_never_panic(edits in proptest::collection::vec(edit(), 1..6), which in any::<bool>()) {
        check(&apply(if which { VALID } else { EVERYTHING }, &edits));
    }
}

#[test]
fn adversarial_shapes_are_refused_cleanly() {
    let deep_flow = "[".repeat(200_000);
    let deep_map = "{a: ".repeat(50_000);
    let mut deep_block = String::new();
    for i in 0..3000 {
        deep_block.push_str(&" ".repeat(i % 900));
        deep_block.push_str("- \n");
    }
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        bomb.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    let long_line = format!(
        "version: 1\nname: {}\nagent: {{provider: claude}}\n",
        "x".repeat(500_000)
    );
    for doc in [&deep_flow, &deep_map, &deep_block, &bomb, &long_line] {
        let e = parse_str(doc, Path::new("fuzz.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("fuzz.yaml:"), "{e}");
    }
    let huge = "#".repeat(MAX_MANIFEST_BYTES + 1);
    let e = parse_str(&huge, Path::new("fuzz.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("fuzz.yaml:1:1: the manifest is 1048577 bytes; the limit is 1048576"),
        "{e}"
    );
}
