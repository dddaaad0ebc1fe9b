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
        sonprop_bitcoin::WALLET_UPDATE,
        sonprop_bitcoin::SIGN,
        sonprop_bitcoin::TX_FAIL,
        sonprop_bitcoin::UTXO,
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

mod round_trips {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use sonprop_core::chain::ops::{ProposalCreate, ProposalDelete, ProposalUpdate, SonHeartbeat};
    use sonprop_core::{
        AccountId, Operation, ProposalId, SignedTransaction, SonId, Timestamp, Transaction,
    };
    use sonprop_deregister_son::SonDeregister;
    use sonprop_example_custom_operation::SonKeyExpiryNotice;
    use sonprop_report_down::SonReportDown;

    fn op() -> impl Strategy<Value = Box<dyn Operation>> {
        let id = 0..u64::MAX;
        let t = (0..u64::MAX).prop_map(Timestamp);
        prop_oneof![
            (id.clone(), id.clone(), t.clone()).prop_map(|(s, o, t)| -> Box<dyn Operation> {
                Box::new(SonHeartbeat { son: SonId(s), owner: AccountId(o), timestamp: t })
            }),
            (id.clone(), t.clone()).prop_map(|(s, t)| -> Box<dyn Operation> {
                Box::new(SonReportDown { son: SonId(s), down_ts: t })
            }),
            id.clone()
                .prop_map(|s| -> Box<dyn Operation> { Box::new(SonDeregister { son: SonId(s) }) }),
            (id.clone(), "[a-z]{0,12}", t.clone()).prop_map(|(s, c, t)| -> Box<dyn Operation> {
                Box::new(SonKeyExpiryNotice { son: SonId(s), sidechain: c, expires_at: t })
            }),
            (
                id.clone(),
                prop::collection::btree_set(0..50u64, 0..4),
                prop::collection::btree_set(0..50u64, 0..4)
            )
                .prop_map(|(p, a, r)| -> Box<dyn Operation> {
                    let ids = |s: BTreeSet<u64>| s.into_iter().map(AccountId).collect();
                    Box::new(ProposalUpdate {
                        proposal: ProposalId(p),
                        approvals_to_add: ids(a),
                        approvals_to_remove: ids(r),
                    })
                }),
            (id.clone(), id).prop_map(|(p, a)| -> Box<dyn Operation> {
                Box::new(ProposalDelete { proposal: ProposalId(p), account: AccountId(a) })
            }),
        ]
    }

    fn encode(op: &dyn Operation) -> String {
        serde_json::to_string(op).expect("serialises")
    }

    proptest! {
        #[test]
        fn every_kind_round_trips_through_json(ops in prop::collection::vec(op(), 1..5), exp in 0..u64::MAX, review in prop::option::of(0..u64::MAX)) {
            for op in &ops {
                let json = encode(op.as_ref());
                let back: Box<dyn Operation> = serde_json::from_str(&json).expect("decodes");
                prop_assert_eq!(encode(back.as_ref()), json);
            }
            let create = ProposalCreate { proposer: AccountId(1), expiration_time: Timestamp(exp), review_period_seconds: review, operations: ops };
            let tx = SignedTransaction { transaction: Transaction { expiration: Timestamp(exp), operations: vec![Box::new(create)] }, signatures: vec![] };
            let json = serde_json::to_string(&tx).expect("serialises");
            let back = SignedTransaction::from_json(&json).expect("decodes");
            prop_assert_eq!(serde_json::to_string(&back).expect("serialises"), json);
        }
    }
}
