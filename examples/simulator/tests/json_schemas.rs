//! Every JSON document `sonprop` prints follows one convention (`sonprop_simulator::json`):
//! real output of each command is validated against the JSON Schema `docs/json/` gives for
//! it, and documents that break the convention are refused by the same schemas.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BASE: &str = "https://sonprop.invalid/json/";

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/json")
}

/// The schemas, compiled: `(schemas, index of each document's schema)`.
struct Judge {
    schemas: boon::Schemas,
    index: std::collections::BTreeMap<&'static str, boon::SchemaIndex>,
}

impl Judge {
    fn new() -> Judge {
        let mut compiler = boon::Compiler::new();
        for name in ["common", "report", "explain", "inspect", "bitcoin_address"] {
            let file = docs().join(format!("{name}.schema.json"));
            let text = std::fs::read_to_string(&file).expect("schema file");
            let value: Value = serde_json::from_str(&text).expect("schema JSON");
            compiler.add_resource(&format!("{BASE}{name}.schema.json"), value).expect("resource");
        }
        let mut schemas = boon::Schemas::new();
        let mut index = std::collections::BTreeMap::new();
        for name in ["report", "explain", "inspect", "bitcoin_address"] {
            let url = format!("{BASE}{name}.schema.json");
            let i = compiler.compile(&url, &mut schemas).unwrap_or_else(|e| panic!("{name}: {e}"));
            index.insert(name, i);
        }
        Judge { schemas, index }
    }

    /// Why `doc` breaks its document's schema, if it does.
    fn check(&self, doc: &Value) -> Result<(), String> {
        let name = doc["document"].as_str().ok_or("no `document`")?;
        let i = self.index.get(name).ok_or_else(|| format!("no schema for {name}"))?;
        self.schemas.validate(doc, *i).map_err(|e| format!("{e:#}"))
    }
}

/// Runs `sonprop` (exit 0, or 1 for an expectation), returning what it printed.
fn sonprop(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sonprop"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Runs a `--json` command: its document.
fn document(args: &[&str]) -> Value {
    let text = sonprop(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
}

fn temp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("sonprop-json-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("temp dir");
    p
}

#[test]
fn every_document_follows_its_schema_and_broken_ones_are_refused() {
    let judge = Judge::new();
    let d = temp("docs");
    let mut documents = Vec::new();

    // The report of a bridge scenario (its `bitcoin` section) and of one without (null).
    let report = d.join("bridge.json");
    let scenario = "scenarios/bitcoin-bridge.toml";
    sonprop(&["simulate", "-q", scenario, "--report", report.to_str().expect("utf-8")]);
    let bridge: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    assert!(bridge["bitcoin"]["deposits"].as_array().is_some_and(|d| !d.is_empty()));
    documents.push(bridge.clone());
    let plain = d.join("plain.json");
    let data = d.join("data");
    let short = d.join("short.toml");
    std::fs::write(
        &short,
        "name = \"short\"\nduration = \"2h\"\n[network]\nwitnesses = 3\nsons = 5\n\
         [[events]]\nat = \"10m\"\nson = 2\ndo = \"stop\"\n",
    )
    .expect("scenario");
    let (short, data_dir) = (short.to_str().expect("utf-8"), data.to_str().expect("utf-8"));
    sonprop(&[
        "simulate",
        "-q",
        short,
        "--report",
        plain.to_str().expect("utf-8"),
        "--data-dir",
        data_dir,
    ]);
    let plain: Value =
        serde_json::from_str(&std::fs::read_to_string(&plain).expect("report")).expect("JSON");
    assert_eq!(plain["bitcoin"], Value::Null);
    documents.push(plain);

    // Explanations: a SON (its facts), a bridge subject (none), a proposal.
    documents.push(document(&["explain", "1.33.2", short, "--json"]));
    documents.push(document(&[
        "explain",
        "bitcoin:withdrawal:0",
        scenario,
        "--at",
        "T+04:00:00",
        "--json",
    ]));
    documents.push(document(&["explain", "1.10.0", short, "--json"]));
    documents.push(document(&["inspect", data_dir, "--json"]));
    let keys = &sonprop_bitcoin::script::vectors::PEERPLAYS_SON_KEYS[..3];
    let sons: Vec<String> = keys.iter().map(|k| format!("--son={k}:1")).collect();
    let sons: Vec<&str> = sons.iter().map(String::as_str).collect();
    let wallet = document(&[&["bitcoin", "address", "--json"][..], &sons].concat());
    assert_eq!((&wallet["address_kind"], &wallet["user_key"]), (&"wallet".into(), &Value::Null));
    documents.push(wallet);
    let user = sonprop_bitcoin::script::vectors::PEERPLAYS_USER_KEY;
    let deposit = document(
        &[&["bitcoin", "address", "--json", "--user", user, "--csv", "144"][..], &sons].concat(),
    );
    assert_eq!((&deposit["address_kind"], &deposit["csv"]), (&"deposit".into(), &144.into()));
    documents.push(deposit);

    let kinds: std::collections::BTreeSet<&str> =
        documents.iter().filter_map(|d| d["document"].as_str()).collect();
    assert_eq!(kinds.len(), 4, "every document is tried: {kinds:?}");
    for doc in &documents {
        judge.check(doc).unwrap_or_else(|e| panic!("{}: {e}", doc["document"]));
    }

    // Breaking the convention is caught: a key left out, a Rust shape, a bare time.
    let mut missing = bridge.clone();
    missing.as_object_mut().expect("object").remove("timeline");
    let mut rust_shape = bridge.clone();
    rust_shape["bitcoin"]["conservation"] = serde_json::json!({ "Ok": {} });
    let mut bare_time = bridge.clone();
    bare_time["proposals"][0]["created"] = 1_767_225_606.into();
    let mut old_version = bridge;
    old_version["format_version"] = 2.into();
    for (what, doc) in [
        ("missing key", missing),
        ("Rust shape", rust_shape),
        ("bare time", bare_time),
        ("old version", old_version),
    ] {
        assert!(judge.check(&doc).is_err(), "{what} passed the schema");
    }
    let _ = std::fs::remove_dir_all(&d);
}
