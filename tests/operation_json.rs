//! The JSON of every registered operation kind is pinned: a changed encoding is a chain-breaking
//! change and must show up in review.

use std::path::Path;

use sonprop_core::Registry;

#[test]
fn the_operation_crates_are_registered_through_discovery() {
    let reg = Registry::discover().expect("no duplicate kinds");
    for kind in [
        sonprop_report_down::KIND,
        sonprop_deregister_son::KIND,
        "son_heartbeat",
        "proposal_create",
    ] {
        assert!(reg.operation(kind).is_some(), "{kind} is registered");
    }
}

#[test]
fn every_registered_kind_has_its_json_pinned() {
    let reg = Registry::discover().expect("no duplicate kinds");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots");
    let mut missing = Vec::new();
    for d in reg.operations() {
        let op = (d.example)();
        assert_eq!(op.kind(), d.name, "example of {} has kind {}", d.name, op.kind());
        let json = serde_json::to_string_pretty(&op).expect("serialises");
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(value["kind"], d.name, "the JSON tag of {} is its registered name", d.name);
        let file = dir.join(format!("sonprop__operation_json__{}.snap", d.name));
        if !file.exists() {
            missing.push(d.name);
        }
        insta::assert_snapshot!(d.name, json);
    }
    assert!(missing.is_empty(), "kinds without a JSON snapshot: {missing:?}");
}
