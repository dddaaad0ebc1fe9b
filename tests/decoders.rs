//! Everything that decodes input from outside — transactions, blocks, scenario files — is fed
//! random bytes and well-formed but wrong JSON or TOML: it must never panic, must answer with a
//! typed error (or, if the input happens to decode, the ledger's typed verdict), and must leave
//! the state as it was. Every persisted type round-trips to exactly itself.

use proptest::prelude::*;
use sonprop_core::testkit::TestNetwork;
use sonprop_core::{Block, LedgerError, Registry, SignedTransaction};
use sonprop_simulator::scenario::Scenario;

fn network() -> TestNetwork {
    let reg = Registry::builder()
        .with(&sonprop_report_down::PLUGIN)
        .with(&sonprop_deregister_son::PLUGIN)
        .build()
        .expect("unique")
        .into_arc();
    TestNetwork::builder().witnesses(3).sons(5).build(reg)
}

/// JSON values to put where others were.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        Just(serde_json::json!("1.33.999")),
        Just(serde_json::json!("son_heartbeat")),
    ]
}

/// Replaces the `n`-th leaf or object field of `v` (depth first) with `new`, or removes it.
fn mutate(v: &mut serde_json::Value, n: &mut usize, new: &serde_json::Value, remove: bool) -> bool {
    match v {
        serde_json::Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if *n == 0 {
                    if remove {
                        map.remove(&k);
                    } else {
                        map.insert(k, new.clone());
                    }
                    return true;
                }
                *n -= 1;
                if let Some(child) = map.get_mut(&k) {
                    if mutate(child, n, new, remove) {
                        return true;
                    }
                }
            }
            false
        }
        serde_json::Value::Array(items) => {
            for child in items.iter_mut() {
                if mutate(child, n, new, remove) {
                    return true;
                }
            }
            false
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(SignedTransaction::from_json(&text).is_err());
        prop_assert!(serde_json::from_str::<Block>(&text).is_err());
        let _ = Scenario::from_toml(&text, "fuzz.toml");
    }

    #[test]
    fn wrong_transactions_get_a_typed_error_and_change_nothing(
        field in 0usize..40,
        value in json_value(),
        remove in any::<bool>(),
    ) {
        let mut net = network();
        let hb = net.heartbeat(1);
        let mut v = serde_json::to_value(&hb).expect("json");
        let mut n = field;
        mutate(&mut v, &mut n, &value, remove);
        let before = net.ledger.state_hash();
        if let Ok(tx) = SignedTransaction::from_json(&v.to_string()) {
            match net.ledger.check_transaction(&tx) {
                // Only a mutation that changed nothing (the same heartbeat) may pass.
                Ok(()) => prop_assert_eq!(
                    serde_json::to_value(&tx).expect("json"),
                    serde_json::to_value(&hb).expect("json")
                ),
                Err(e) => prop_assert!(!matches!(e, LedgerError::Panicked { .. }), "{e}"),
            }
        }
        prop_assert_eq!(net.ledger.state_hash(), before, "checking changes nothing");
    }

    #[test]
    fn wrong_blocks_are_refused_with_a_typed_error_and_change_nothing(
        field in 0usize..30,
        value in json_value(),
        remove in any::<bool>(),
    ) {
        let mut net = network();
        // A valid block, produced by a copy of the chain.
        let mut producer = network();
        let t = producer.ledger.state().next_slot_time();
        let hb = producer.heartbeat(1);
        let key = producer.producer_keys(t).clone();
        let (block, _, _) = producer.ledger.produce_block(t, vec![hb], &key).expect("block");
        let mut v = serde_json::to_value(&block).expect("json");
        let mut n = field;
        let changed = mutate(&mut v, &mut n, &value, remove);
        let before = net.ledger.state_hash();
        match serde_json::from_str::<Block>(&v.to_string()) {
            Ok(b) => match net.ledger.apply_block(&b) {
                Ok(_) => prop_assert!(!changed || serde_json::to_value(&b).expect("json") == serde_json::to_value(&block).expect("json")),
                Err(e) => {
                    prop_assert!(!matches!(e, LedgerError::Panicked { .. }), "{e}");
                    prop_assert_eq!(net.ledger.state_hash(), before, "a refused block changes nothing");
                }
            },
            Err(_) => prop_assert_eq!(net.ledger.state_hash(), before),
        }
    }

    #[test]
    fn wrong_scenario_files_are_typed_errors(line in 0usize..12, token in "[a-z0-9\"\\[\\]=._ -]{0,10}") {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/simulator/scenarios/multi-outage.toml"))
            .expect("scenario");
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let i = line % lines.len();
        match lines[i].split_once('=') {
            Some((k, _)) => lines[i] = format!("{k}= {token}"),
            None => lines[i] = token.clone(),
        }
        if let Err(e) = Scenario::from_toml(&lines.join("\n"), "wrong.toml") {
            prop_assert!(e.to_string().starts_with("wrong.toml: "), "{e}");
        }
    }
}

mod persisted_types_round_trip {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;
    use sonprop_core::node::scheduler::SchedulerMemory;
    use sonprop_core::{
        AccountId, Asset, AssetId, LedgerEvent, ProposalId, SonId, SonProposalId,
        SonProposalRecord, Subject, Timestamp,
    };

    fn subject() -> impl Strategy<Value = Subject> {
        prop_oneof![
            any::<u64>().prop_map(|s| Subject::Son(SonId(s))),
            ".*".prop_map(Subject::Named),
            any::<u64>().prop_map(|s| Subject::Named(format!("1.33.{s}"))),
        ]
    }

    fn round_trip<
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    >(
        v: &T,
    ) -> Result<(), TestCaseError> {
        let json = serde_json::to_string(v).expect("ser");
        let back: T = serde_json::from_str(&json).expect("de");
        prop_assert_eq!(&back, v);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn records_events_assets_and_scheduler_memory_load_back_as_themselves(
            s in subject(),
            id in any::<u64>(),
            kind in "[a-z_]{1,20}",
            t in any::<u64>(),
            symbol in "[A-Z]{1,6}",
            precision in any::<u8>(),
            amounts in any::<(u64, u64)>(),
        ) {
            round_trip(&SonProposalRecord { id: SonProposalId(id), proposal: ProposalId(id), kind: kind.clone(), subject: s.clone() })?;
            round_trip(&LedgerEvent::ProposalCreated {
                proposal: ProposalId(id),
                proposer: AccountId(id),
                kinds: vec![kind.clone()],
                subject: Some(s.clone()),
                expiration_time: Timestamp(t),
            })?;
            round_trip(&Asset { id: AssetId(id), symbol, precision, issuer: AccountId(id), max_supply: amounts.0, supply: amounts.1 })?;
            round_trip(&SchedulerMemory {
                sent_proposals: vec![((kind, s), Timestamp(t))],
                sent_approvals: vec![(ProposalId(id), Timestamp(t))],
            })?;
            let set: BTreeSet<SonId> = [SonId(id)].into();
            let map: BTreeMap<String, u64> = [("k".to_owned(), amounts.0)].into();
            round_trip(&(set, map))?;
        }
    }
}
