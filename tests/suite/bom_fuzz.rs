//! `load` never panics on malformed input, and every error it gives names the
//! bom file first.

use std::fs;

use copy_bom::bom::load;
use proptest::prelude::*;
use tempfile::TempDir;

const VALID: &str = r#"includes: [base.yaml]
excludes: ['*.pyc']
targets:
  - target: /bin
    mkdirs: [a, $X]
    createlinks:
      - src: ../x
        linkname: y
    copy:
      - from: ${X:-/usr}
        dirs: [lib/]
        files:
          - ls
          - name: cat
            hash: AB
            autodep: false
            rename: c
"#;

fn vars(name: &str) -> Option<String> {
    (name == "X").then(|| "/x".to_string())
}

/// Loads `bytes` as a top bom and checks the outcome's shape.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = TempDir::new().unwrap();
    let top = dir.path().join("top.yaml");
    fs::write(&top, bytes).unwrap();
    if let Err(e) = load(&top, &[], &vars) {
        let included = e.message.starts_with("<embedded>/");
        prop_assert!(
            e.message.starts_with(&top.display().to_string()) || included,
            "message does not start with the file: {}",
            e.message
        );
    }
    Ok(())
}

/// A valid bom with one byte range replaced.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let len = VALID.len();
    (
        0..len,
        0..8usize,
        proptest::collection::vec(any::<u8>(), 0..6),
    )
        .prop_map(move |(at, cut, insert)| {
            let mut bytes = VALID.as_bytes().to_vec();
            let end = (at + cut).min(len);
            bytes.splice(at..end, insert);
            bytes
        })
}

/// Valid bom with characters that matter to YAML spliced in.
fn yaml_noise() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        ":", "- ", "[", "]", "{", "}", "\n", "  ", "&a ", "*a", "~", "'", "\"", "!!str ", "#", "$",
        "${", "---\n", "<<: ", "true", "0x1",
    ]);
    (0..VALID.len(), pieces).prop_map(|(at, piece)| {
        let mut text = VALID.as_bytes().to_vec();
        text.splice(at..at, piece.bytes());
        text
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        check(&bytes)?;
    }

    #[test]
    fn random_text_never_panics(text in "[a-z:\\-\\[\\]{}$ \n'\"~&*!#]{0,120}") {
        check(text.as_bytes())?;
    }

    #[test]
    fn mutated_boms_never_panic(bytes in mutated()) {
        check(&bytes)?;
    }

    #[test]
    fn boms_with_yaml_noise_never_panic(bytes in yaml_noise()) {
        check(&bytes)?;
    }
}

#[test]
fn the_valid_seed_loads() {
    let dir = TempDir::new().unwrap();
    let top = dir.path().join("top.yaml");
    fs::write(&top, VALID).unwrap();
    let loaded = load(&top, &[], &vars).unwrap();
    assert_eq!(loaded.boms.len(), 2);
    assert_eq!(loaded.boms[0].targets[0].mkdirs[1].value, "/x");
}

/// Alias bombs and deep nesting hit the parser's budget instead of eating
/// memory or the stack.
#[test]
fn hostile_yaml_is_rejected_quickly() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    bomb.push_str("targets: []\n");
    let deep = format!("unknown: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    for text in [bomb, deep] {
        let dir = TempDir::new().unwrap();
        let top = dir.path().join("top.yaml");
        fs::write(&top, &text).unwrap();
        let err = load(&top, &[], &vars).unwrap_err();
        assert!(
            err.message.starts_with(&top.display().to_string()),
            "{}",
            err.message
        );
    }
}
