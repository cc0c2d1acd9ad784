//! The bad-input corpus: `tests/data/bad/<case>/repo` is committed to a fresh
//! repository and rendered; every line of `<case>/expected` must appear in
//! the diagnostics (each names a file and line). `<case>/generate` lists
//! `path bytes` files made at test time (too big to keep in Git).

use crate::pipeline::render_env;
use tidegate_tests::{GitFixture, workspace_root};

fn run_case(case: &std::path::Path) -> Result<(), String> {
    let mut fx = GitFixture::new();
    fx.copy_dir(&case.join("repo"), "");
    if let Ok(generate) = std::fs::read_to_string(case.join("generate")) {
        for line in generate
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (path, bytes) = line.split_once(' ').ok_or("bad generate line")?;
            let bytes: usize = bytes.trim().parse().map_err(|_| "bad size")?;
            let filler = "# filler\n".repeat(bytes / 9 + 1);
            fx.write(path, filler);
        }
    }
    fx.commit("bad input");
    let expected = std::fs::read_to_string(case.join("expected")).map_err(|e| e.to_string())?;
    let diagnostics = match render_env(fx.path(), "test") {
        Ok(_) => return Err("rendered without error".into()),
        Err(d) => d.to_string(),
    };
    for want in expected.lines().filter(|l| !l.is_empty()) {
        if !diagnostics.contains(want) {
            return Err(format!("missing {want:?} in:\n{diagnostics}"));
        }
    }
    // Every diagnostic names a file and a line.
    for line in diagnostics.lines().filter(|l| l.starts_with("error: ")) {
        let located = line
            .trim_start_matches("error: ")
            .split(": ")
            .next()
            .is_some_and(|loc| {
                loc.rsplit_once(':')
                    .is_some_and(|(_, n)| n.parse::<u64>().is_ok())
            });
        if !located {
            return Err(format!("diagnostic without file:line: {line}"));
        }
    }
    Ok(())
}

#[test]
fn every_bad_input_gets_a_clear_error_with_file_and_line() {
    let dir = workspace_root().join("tests/data/bad");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 14, "corpus has {} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            run_case(case).err().map(|e| {
                format!(
                    "{}: {e}",
                    case.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                )
            })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn all_problems_are_reported_not_just_the_first() {
    let mut fx = GitFixture::new();
    let root = workspace_root().join("tests/data/bad");
    fx.copy_dir(&root.join("yaml11-boolean/repo"), "");
    fx.copy_dir(&root.join("missing-fields/repo/manifests"), "manifests");
    fx.copy_dir(&root.join("malformed-yaml/repo/manifests"), "manifests");
    fx.commit("three broken files");
    let all = render_env(fx.path(), "test")
        .expect_err("invalid")
        .to_string();
    for want in [
        "flags.yaml:6",
        "flags.yaml:7",
        "partial.yaml:1",
        "partial.yaml:5",
        "broken.yaml:4",
    ] {
        assert!(all.contains(want), "{want} missing in:\n{all}");
    }
}
