//! Every file in `tests/malformed/` must be refused with one snapshot-tested error that names
//! `file:line:col` and gives a hint. A first line `# must-not-echo: VALUE` asserts the error
//! never repeats VALUE (a secret pasted in the wrong place).

use bottle_manifest::parse_str;

#[test]
fn malformed_manifests_are_refused_with_located_hints() {
    let mut seen = 0;
    insta::glob!("../malformed", "*.yaml", |path| {
        seen += 1;
        let source = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let shown = format!("malformed/{name}");
        let err = match parse_str(&source, std::path::Path::new(&shown)) {
            Ok(_) => panic!("{name} parsed but must be refused"),
            Err(e) => e.to_string(),
        };
        for (i, line) in err
            .lines()
            .filter(|l| !l.starts_with("  hint: "))
            .enumerate()
        {
            let rest = line
                .strip_prefix(&format!("{shown}:"))
                .unwrap_or_else(|| panic!("{name}: line {i} does not start with the file: {line}"));
            let mut parts = rest.splitn(3, ':');
            let line_no: usize = parts.next().unwrap().parse().unwrap();
            let col_no: usize = parts.next().unwrap().parse().unwrap();
            assert!(line_no >= 1 && col_no >= 1, "{name}: {line}");
        }
        assert!(err.contains("\n  hint: "), "{name} has no hint: {err}");
        if let Some(secret) = source
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# must-not-echo: "))
        {
            assert!(
                !err.contains(secret.trim()),
                "{name} echoes a secret: {err}"
            );
        }
        insta::assert_snapshot!(err);
    });
    assert!(seen >= 34, "only {seen} malformed manifests");
}
