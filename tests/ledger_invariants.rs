//! Ledger invariants under random operation sequences: one live proposal per (kind, subject),
//! records and live SON proposals in one-to-one correspondence, refused transactions leave the
//! state hash unchanged, and popping a block restores the previous hash exactly.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sonprop_core::chain::ops::{ProposalCreate, ProposalDelete, ProposalUpdate};
use sonprop_core::testkit::probe::{self, AccountProbe, PlainProbe, SonProbe};
use sonprop_core::testkit::TestNetwork;
use sonprop_core::{
    Block, Digest, LedgerEvent, NodeIdentity, Operation, ProposalId, Registry, SignedTransaction,
    SonId, State, Subject,
};

#[derive(Debug, Clone)]
enum Who {
    Witness(usize),
    Son(usize),
    User(usize),
}

#[derive(Debug, Clone)]
enum Action {
    CreateSonProbe { who: Who, son: u64, lifetime: u64, fails: bool },
    CreateAccountProbe { who: Who, subject: u8, lifetime: u64 },
    CreatePlainPair { who: Who, fails: bool },
    Approve { proposal: u64, who: Who },
    Withdraw { proposal: u64, who: Who },
    Delete { proposal: u64, who: Who },
    Heartbeat { son: usize },
    Advance { blocks: u8 },
    PopAndReapply,
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        (0..3usize).prop_map(Who::Witness),
        (0..6usize).prop_map(Who::Son),
        (0..2usize).prop_map(Who::User),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let lifetime =
        prop_oneof![Just(0u64), Just(9), Just(60), Just(600), Just(probe::PROBE_LIFETIME + 60)];
    prop_oneof![
        3 => (who(), 0..7u64, lifetime.clone(), any::<bool>())
            .prop_map(|(who, son, lifetime, fails)| Action::CreateSonProbe { who, son, lifetime, fails }),
        2 => (who(), 0..3u8, lifetime).prop_map(|(who, subject, lifetime)| Action::CreateAccountProbe { who, subject, lifetime }),
        1 => (who(), any::<bool>()).prop_map(|(who, fails)| Action::CreatePlainPair { who, fails }),
        4 => (0..12u64, who()).prop_map(|(proposal, who)| Action::Approve { proposal, who }),
        1 => (0..12u64, who()).prop_map(|(proposal, who)| Action::Withdraw { proposal, who }),
        1 => (0..12u64, who()).prop_map(|(proposal, who)| Action::Delete { proposal, who }),
        2 => (0..6usize).prop_map(|son| Action::Heartbeat { son }),
        2 => (1..40u8).prop_map(|blocks| Action::Advance { blocks }),
        1 => Just(Action::PopAndReapply),
    ]
}

fn node(net: &TestNetwork, who: &Who) -> NodeIdentity {
    match who {
        Who::Witness(i) => net.witnesses[*i].clone(),
        Who::Son(i) => net.sons[*i].clone(),
        Who::User(i) => net.users[*i].clone(),
    }
}

fn tx_for(net: &TestNetwork, action: &Action) -> Option<SignedTransaction> {
    let st = net.ledger.state();
    let next = st.next_slot_time();
    let create = |who: &Who, lifetime: u64, ops: Vec<Box<dyn Operation>>| {
        let n = node(net, who);
        net.sign(
            &n,
            ProposalCreate {
                proposer: n.account,
                expiration_time: next.plus(lifetime),
                review_period_seconds: None,
                operations: ops,
            },
        )
    };
    Some(match action {
        Action::CreateSonProbe { who, son, lifetime, fails } => {
            let fail_after = fails.then(|| next.plus(6));
            create(
                who,
                *lifetime,
                vec![Box::new(SonProbe { son: SonId(*son), fail_after, set_status: None })],
            )
        }
        Action::CreateAccountProbe { who, subject, lifetime } => {
            let op = AccountProbe {
                account: net.users[0].account,
                subject: format!("s{subject}"),
                amount: 1,
                fail_after: None,
            };
            create(who, *lifetime, vec![Box::new(op)])
        }
        Action::CreatePlainPair { who, fails } => {
            let a = PlainProbe { account: net.users[1].account, amount: 1, fail_after: None };
            let b = PlainProbe {
                account: net.users[1].account,
                amount: 2,
                fail_after: fails.then(|| next.plus(6)),
            };
            create(who, 600, vec![Box::new(a), Box::new(b)])
        }
        Action::Approve { proposal, who } => {
            let n = node(net, who);
            net.sign(&n, ProposalUpdate::approve(ProposalId(*proposal), n.account))
        }
        Action::Withdraw { proposal, who } => {
            let n = node(net, who);
            let op = ProposalUpdate {
                proposal: ProposalId(*proposal),
                approvals_to_add: BTreeSet::new(),
                approvals_to_remove: BTreeSet::from([n.account]),
            };
            net.sign(&n, op)
        }
        Action::Delete { proposal, who } => {
            let n = node(net, who);
            net.sign(&n, ProposalDelete { proposal: ProposalId(*proposal), account: n.account })
        }
        Action::Heartbeat { son } => net.heartbeat(*son),
        Action::Advance { .. } | Action::PopAndReapply => return None,
    })
}

fn next_block(net: &TestNetwork, txs: Vec<SignedTransaction>) -> Block {
    let st = net.ledger.state();
    let t = st.next_slot_time();
    let producer = st.scheduled_producer(t).expect("scheduled");
    net.block(st.head_height() + 1, t, st.globals().head_id, producer, txs)
}

/// The record invariants, checked against a full scan (the ledger itself never scans).
fn check_records(st: &State) -> Result<(), TestCaseError> {
    let mut live_keys: BTreeMap<(String, Subject), ProposalId> = BTreeMap::new();
    for (id, p) in st.proposals().iter() {
        for op in &p.operations {
            let son_record = st
                .registry()
                .operation(op.kind())
                .and_then(|d| d.proposal)
                .is_some_and(|p| p.son_record);
            if son_record {
                let key = (op.kind().to_owned(), op.subject().expect("son kinds name a subject"));
                prop_assert!(
                    live_keys.insert(key.clone(), *id).is_none(),
                    "two live proposals for {key:?}"
                );
                let recs: Vec<_> = st.records_of_proposal(*id).collect();
                prop_assert_eq!(recs.len(), 1, "proposal {} has {} records", id, recs.len());
                prop_assert_eq!(st.live_proposal(&key.0, &key.1), Some(*id));
            }
        }
    }
    for (rid, r) in st.son_proposals().iter() {
        let p = st.proposal(r.proposal);
        prop_assert!(p.is_some(), "record {} points at removed proposal {}", rid, r.proposal);
        prop_assert_eq!(live_keys.get(&(r.kind.clone(), r.subject.clone())), Some(&r.proposal));
    }
    prop_assert_eq!(st.son_proposals().len(), live_keys.len());
    Ok(())
}

fn run(actions: Vec<Action>) -> Result<Vec<LedgerEvent>, TestCaseError> {
    let mut events = Vec::new();
    let registry = Registry::builder().with(&probe::PLUGIN).build().expect("unique").into_arc();
    let mut net = TestNetwork::builder().witnesses(3).sons(6).users(2).build(registry);
    let mut last_block: Option<(Digest, Block, Digest)> = None;
    for action in actions {
        match &action {
            Action::Advance { blocks } => {
                for _ in 0..*blocks {
                    let before = net.ledger.state_hash();
                    let b = next_block(&net, vec![]);
                    let o = net
                        .ledger
                        .apply_block(&b)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    events.extend(o.events);
                    last_block = Some((before, b, net.ledger.state_hash()));
                    check_records(net.ledger.state())?;
                }
            }
            Action::PopAndReapply => {
                if let Some((before, block, after)) = last_block.take() {
                    net.ledger.pop_block().map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(net.ledger.state_hash(), before, "pop restores the hash");
                    check_records(net.ledger.state())?;
                    net.ledger
                        .apply_block(&block)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(
                        net.ledger.state_hash(),
                        after,
                        "re-applying gives the same hash"
                    );
                }
            }
            _ => {
                let tx = tx_for(&net, &action).expect("a transaction action");
                let before = net.ledger.state_hash();
                let b = next_block(&net, vec![tx]);
                match net.ledger.apply_block(&b) {
                    Ok(o) => {
                        events.extend(o.events);
                        last_block = Some((before, b, net.ledger.state_hash()));
                    }
                    Err(_) => prop_assert_eq!(
                        net.ledger.state_hash(),
                        before,
                        "refused block changed the state"
                    ),
                }
                check_records(net.ledger.state())?;
            }
        }
    }
    Ok(events)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn ledger_invariants_hold_under_random_operation_sequences(actions in prop::collection::vec(action(), 1..60)) {
        run(actions)?;
    }
}

#[test]
fn the_random_sequences_reach_every_removal_path() {
    // Guards the property test against testing nothing: a fixed sequence through the same driver
    // must create, execute, fail, expire and delete proposals.
    let w = Who::Witness(0);
    let mut actions = vec![
        Action::CreateSonProbe { who: w.clone(), son: 1, lifetime: 600, fails: false },
        Action::CreateAccountProbe { who: w.clone(), subject: 0, lifetime: 600 },
        Action::CreateSonProbe { who: w.clone(), son: 2, lifetime: 60, fails: true },
        Action::CreateAccountProbe { who: w.clone(), subject: 1, lifetime: 9 },
    ];
    actions.extend((0..5).map(|i| Action::Approve { proposal: 0, who: Who::Son(i) }));
    actions.extend((0..5).map(|i| Action::Approve { proposal: 2, who: Who::Son(i) }));
    actions.push(Action::Delete { proposal: 1, who: Who::User(0) });
    actions.push(Action::Advance { blocks: 30 });
    actions.push(Action::PopAndReapply);
    let events = run(actions).expect("invariants hold");
    let seen = |f: fn(&LedgerEvent) -> bool| events.iter().any(f);
    assert!(
        seen(|e| matches!(e, LedgerEvent::ProposalExecuted { proposal } if proposal.0 == 0)),
        "executed"
    );
    assert!(
        seen(
            |e| matches!(e, LedgerEvent::ProposalExecutionFailed { proposal, .. } if proposal.0 == 2)
        ),
        "failed on approval"
    );
    assert!(
        seen(|e| matches!(e, LedgerEvent::ProposalFailed { proposal, .. } if proposal.0 == 2)),
        "failed at expiry"
    );
    assert!(
        seen(|e| matches!(e, LedgerEvent::ProposalExpired { proposal } if proposal.0 == 3)),
        "expired"
    );
    assert!(
        seen(|e| matches!(e, LedgerEvent::ProposalDeleted { proposal, .. } if proposal.0 == 1)),
        "deleted"
    );
}
