//! The bench's Peerplays-style scan and the indexed triggers find the same SONs on random
//! ledgers, so the comparison in `sonprop bench` is honest.

use proptest::prelude::*;
use sonprop_core::chain::ops::ProposalCreate;
use sonprop_core::testkit::NetworkBuilder;
use sonprop_core::{
    Guard, Ledger, NodeIdentity, Registry, SonId, SonStatus, State, Subject, Transaction,
};
use sonprop_deregister_son::SonDeregister;
use sonprop_report_down::SonReportDown;
use sonprop_simulator::bench::{indexed_due, scan_due};

#[derive(Debug, Clone)]
struct SonSpec {
    elected: bool,
    status: u8,
    last_active_ago: u64,
    down_ago: u64,
}

fn son_spec() -> impl Strategy<Value = SonSpec> {
    (any::<bool>(), 0..4u8, 0..2 * 86_400u64, 0..2 * 86_400u64).prop_map(
        |(elected, status, last_active_ago, down_ago)| SonSpec {
            elected,
            status,
            last_active_ago,
            down_ago,
        },
    )
}

fn defer_multiples_of_seven(_: &State, subject: &Subject) -> Option<String> {
    subject.son().filter(|s| s.0 % 7 == 0).map(|_| "pending sidechain work".to_owned())
}

/// A ledger whose SONs have the given statuses and times (imported at genesis), with live
/// proposals for the SONs listed in `proposed`.
fn ledger(specs: &[SonSpec], proposed: &[usize], guard: bool) -> (Ledger, Vec<NodeIdentity>) {
    let n = specs.len();
    let elected: Vec<usize> = (0..n).filter(|i| specs[*i].elected).take(15).collect();
    let builder = NetworkBuilder::default().witnesses(3).sons(0).standby_sons(n).users(0);
    let (mut genesis, witnesses, _, _) = builder.genesis();
    let now = genesis.genesis_time;
    genesis.elected_sons = elected.iter().map(|i| SonId(*i as u64)).collect();
    for (i, son) in genesis.sons.iter_mut().enumerate() {
        let spec = &specs[i];
        let is_elected = elected.contains(&i);
        son.status = match (is_elected, spec.status) {
            (true, 0 | 1) => SonStatus::Active,
            (true, 2) => SonStatus::RequestMaintenance,
            (true, _) => SonStatus::InMaintenance,
            (false, 0 | 1) => SonStatus::Inactive,
            (false, 2) => SonStatus::Deregistered,
            (false, _) => SonStatus::InMaintenance,
        };
        son.statistics.last_active_timestamp = now.minus(spec.last_active_ago);
        if son.status == SonStatus::InMaintenance {
            son.statistics.last_down_timestamp = now.minus(spec.down_ago);
            son.statistics.last_active_timestamp = son.statistics.last_down_timestamp;
        }
    }
    let mut b = Registry::builder().discovered();
    if guard {
        b = b.guard(Guard {
            name: "sevens",
            kind: sonprop_deregister_son::KIND,
            defer: defer_multiples_of_seven,
        });
    }
    let mut ledger =
        Ledger::new(&genesis, b.build().expect("unique").chain()).expect("valid genesis");
    // Live proposals, created by a witness where the rules allow one.
    let st = ledger.state();
    let t = st.next_slot_time();
    let w = &witnesses[0];
    let txs = proposed
        .iter()
        .filter(|i| **i < n)
        .flat_map(|i| {
            let son = SonId(*i as u64);
            let s = st.son(son).expect("son");
            let ops: [Box<dyn sonprop_core::Operation>; 2] = [
                Box::new(SonReportDown { son, down_ts: s.statistics.last_active_timestamp }),
                Box::new(SonDeregister { son }),
            ];
            ops.into_iter().map(|op| {
                let create = ProposalCreate {
                    proposer: w.account,
                    expiration_time: t.plus(sonprop_deregister_son::lifetime(st)),
                    review_period_seconds: None,
                    operations: vec![op],
                };
                Transaction::single(t.plus(30), create).sign(&st.chain_id(), &[&w.keys])
            })
        })
        .collect();
    // Candidates the rules refuse are left out by the producer, as on a real chain.
    let producer = ledger.state().scheduled_producer(t);
    let key = witnesses.iter().find(|n| n.witness == producer).expect("scheduled").keys.clone();
    ledger.produce_block(t, txs, &key).expect("slot");
    (ledger, witnesses)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_scan_baseline_and_the_indexed_triggers_find_the_same_sons(
        specs in prop::collection::vec(son_spec(), 1..60),
        proposed in prop::collection::vec(0..60usize, 0..10),
        own in 0..60u64,
        guard in any::<bool>(),
    ) {
        let (ledger, witnesses) = ledger(&specs, &proposed, guard);
        let node = NodeIdentity { son: Some(SonId(own)), ..witnesses[1].clone() };
        let st = ledger.state();
        let indexed = indexed_due(st, &node).normalized();
        let scanned = scan_due(st, &node).normalized();
        prop_assert_eq!(&indexed, &scanned);
    }
}

#[test]
fn the_comparison_sees_due_sons_live_proposals_and_guards() {
    // A fixed ledger through the same builder: some SONs due for each trigger, some of those
    // already proposed, some guarded; both strategies agree and the filters bite.
    let now_ago = |h: u64| h * 3600;
    let mut specs: Vec<SonSpec> = (0..20)
        .map(|i| SonSpec { elected: i < 10, status: 0, last_active_ago: 60, down_ago: 0 })
        .collect();
    specs[1].last_active_ago = now_ago(1); // elected, silent an hour: report due
    specs[2].last_active_ago = now_ago(2); // elected, silent: report due, but proposed below
    for i in [11, 12, 14] {
        specs[i].status = 3; // non-elected, in maintenance 13 h: deregistration due
        specs[i].down_ago = now_ago(13);
    }
    let (ledger, witnesses) = ledger(&specs, &[2, 12], true);
    let st = ledger.state();
    let node = witnesses[1].clone();
    let report = sonprop_report_down::KIND;
    let dereg = sonprop_deregister_son::KIND;
    assert!(
        st.live_proposal(report, &sonprop_core::Subject::Son(SonId(2))).is_some(),
        "SON 2 was reported"
    );
    assert!(
        st.live_proposal(dereg, &sonprop_core::Subject::Son(SonId(12))).is_some(),
        "SON 12 was proposed"
    );
    let indexed = indexed_due(st, &node).normalized();
    assert_eq!(indexed, scan_due(st, &node).normalized());
    let reported: Vec<SonId> = indexed.reports.iter().map(|r| r.0).collect();
    assert_eq!(reported, vec![SonId(1)], "SON 2 has a live report");
    assert_eq!(
        indexed.deregistrations,
        vec![SonId(11)],
        "12 has a live proposal, 14 is guarded (14 % 7 == 0)"
    );
}
