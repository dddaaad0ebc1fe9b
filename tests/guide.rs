//! The operation guide (`docs/writing-an-operation.md`) shows the example crate's files whole,
//! and pasted into a fresh crate they pass their own tests.

/// The repository's root.
fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The guide's code blocks: `(label, language, body)`, where the label is the `path`: line
/// before the block, if any.
fn guide_blocks() -> Vec<(Option<String>, String, String)> {
    let guide =
        std::fs::read_to_string(repo().join("docs/writing-an-operation.md")).expect("guide exists");
    let mut out = Vec::new();
    let mut label = None;
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let mut body = String::new();
            for l in lines.by_ref() {
                if l.starts_with("```") {
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            out.push((label.take(), lang.to_owned(), body));
        } else if !line.trim().is_empty() {
            label = line.strip_prefix('`').and_then(|l| l.strip_suffix("`:")).map(str::to_owned);
        }
    }
    out
}

#[test]
fn the_guide_shows_whole_files_of_the_example_crate() {
    let root = repo().join("examples/custom-operation");
    let blocks = guide_blocks();
    let mut shown = Vec::new();
    for (label, lang, body) in &blocks {
        match (label, lang.as_str()) {
            (Some(path), "rust") => {
                let file = std::fs::read_to_string(root.join(path)).expect("a file of the crate");
                assert!(*body == file, "the guide's `{path}` differs from the crate's file");
                shown.push(path.clone());
            }
            (None, "toml") => assert!(body.contains("[dependencies]"), "the crate's manifest"),
            other => {
                panic!("a guide block that is neither a whole file nor the manifest: {other:?}")
            }
        }
    }
    for f in [
        "src/lib.rs",
        "src/rule.rs",
        "src/op.rs",
        "src/plugin.rs",
        "src/registration.rs",
        "src/tests.rs",
    ] {
        assert!(shown.iter().any(|s| s == f), "the guide shows {f}");
    }
}

/// The guide pasted into a fresh crate outside the workspace (its manifest, pointing at this
/// checkout's core, and its files) passes `cargo test --offline`: its unit tests, its
/// doctests, nothing that reads this repository. Slow (a new dependency resolution and
/// build), so run on demand and by CI: `cargo test -p sonprop-tests -- --ignored guide`.
#[test]
#[ignore = "builds and tests a separate crate: minutes"]
fn the_guide_pasted_into_a_fresh_crate_passes_its_tests() {
    let root = repo();
    let dir = std::env::temp_dir().join(format!("sonprop-guide-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).expect("temp dir");
    let core = root.join("core").canonicalize().expect("core");
    for (label, _, body) in guide_blocks() {
        match label {
            Some(path) => std::fs::write(dir.join(path), body).expect("write"),
            None => {
                let manifest = body.replace("../sonprop/core", &core.display().to_string());
                std::fs::write(dir.join("Cargo.toml"), format!("{manifest}\n[workspace]\n"))
                    .expect("write")
            }
        }
    }
    let target = root.join("target/guide-check");
    let out = std::process::Command::new(env!("CARGO"))
        .args(["test", "--offline", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("cargo runs");
    let _ = std::fs::remove_dir_all(&dir);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    // Its tests ran: the unit tests and the doctest of its lib.rs, every one passing.
    let ran: usize = said
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(ran >= 6, "the pasted crate's tests ran: {said}");
}
