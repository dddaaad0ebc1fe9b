//! The hosting binary runs the stock command line with the outside crate's kind: it lists it,
//! and a scenario announces the expiry once.

use std::process::Command;

fn runner(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_notice-runner"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .output()
        .expect("runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn the_hosted_kind_is_listed_beside_the_stock_ones_and_runs_in_a_scenario() {
    let (code, out, err) = runner(&["operations", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let kinds: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let names: Vec<&str> =
        kinds.as_array().expect("list").iter().filter_map(|k| k["name"].as_str()).collect();
    for kind in ["son_key_expiry_notice", "son_report_down", "son_deregister"] {
        assert!(names.contains(&kind), "{kind} in {names:?}");
    }
    let report = std::env::temp_dir().join(format!("notice-runner-{}.json", std::process::id()));
    let (code, out, err) =
        runner(&["simulate", "-q", "notice.toml", "--report", report.to_str().expect("utf-8")]);
    assert_eq!(code, Some(0), "{out}{err}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    let _ = std::fs::remove_file(&report);
    let notices: Vec<&serde_json::Value> = r["proposals"]
        .as_array()
        .expect("proposals")
        .iter()
        .filter(|p| p["kind"] == "son_key_expiry_notice")
        .collect();
    assert_eq!(notices.len(), 1, "announced once: {notices:?}");
    assert_eq!(notices[0]["subject"], "1.33.4/bitcoin");
    assert_eq!(notices[0]["outcome"], "executed");
    let events = r["events"].as_array().expect("events");
    assert!(events.iter().any(|e| e["kind"] == "son_key_expiry_notice"), "its event is reported");
}
