use sonprop_core::node::scheduler::SchedulerConfig;
use sonprop_core::testkit::TestNetwork;
use sonprop_core::{NodeIdentity, Registry, SonId, SonStatus, Trigger};

use crate::rule::{check_report, ReportDownError};
use crate::{ReportDownTrigger, PLUGIN};

fn network() -> TestNetwork {
    let reg = Registry::builder().with(&PLUGIN).build().expect("unique").into_arc();
    TestNetwork::builder().witnesses(3).sons(6).standby_sons(1).build(reg)
}

#[test]
fn a_report_is_allowed_exactly_at_son_down_time_and_not_a_block_before() {
    let mut net = network();
    let g = net.genesis.genesis_time;
    net.produce_until(g.plus(357));
    let e = check_report(net.ledger.state(), SonId(2), g).expect_err("one block early");
    assert!(
        matches!(e, ReportDownError::NotDownLongEnough { silent: 357, needed: 360, .. }),
        "{e}"
    );
    net.produce_until(g.plus(360));
    check_report(net.ledger.state(), SonId(2), g).expect("exactly son_down_time");
}

#[test]
fn down_ts_must_lie_between_the_last_heartbeat_and_head_time() {
    let mut net = network();
    let g = net.genesis.genesis_time;
    net.produce_until(g.plus(720));
    let st = net.ledger.state();
    let e = check_report(st, SonId(2), g.minus(3)).expect_err("before last heartbeat");
    assert!(matches!(e, ReportDownError::BeforeLastHeartbeat { .. }), "{e}");
    let e = check_report(st, SonId(2), st.head_time().plus(3)).expect_err("future");
    assert!(matches!(e, ReportDownError::InFuture { .. }), "{e}");
}

#[test]
fn only_existing_elected_sons_are_reported() {
    let mut net = network();
    let g = net.genesis.genesis_time;
    net.produce_until(g.plus(720));
    let e = check_report(net.ledger.state(), SonId(6), g).expect_err("standby SON");
    assert_eq!(e, ReportDownError::NotElected(SonId(6)));
    let e = check_report(net.ledger.state(), SonId(60), g).expect_err("unknown");
    assert_eq!(e, ReportDownError::UnknownSon(SonId(60)));
}

fn witness_running(net: &TestNetwork, son: Option<SonId>) -> NodeIdentity {
    NodeIdentity { son, ..net.witnesses[0].clone() }
}

#[tokio::test]
async fn the_trigger_drafts_only_due_sons_and_never_its_own() {
    let mut net = network();
    let g = net.genesis.genesis_time;
    net.produce_until(g.plus(180));
    for i in 0..4 {
        net.submit(net.heartbeat(i));
    }
    net.produce_until(g.plus(360));
    // SONs 4 and 5 last beat at genesis: due. SONs 0..4 beat at 183: not due.
    let st = net.ledger.snapshot();
    let drafted = |out: sonprop_core::TriggerOutput| -> Vec<SonId> {
        out.drafts
            .iter()
            .map(|d| d.operation.subject().and_then(|s| s.son()).expect("son subject"))
            .collect()
    };
    let out = ReportDownTrigger.drafts(&st, &witness_running(&net, None)).await.expect("ok");
    assert_eq!(drafted(out), vec![SonId(4), SonId(5)]);
    let out =
        ReportDownTrigger.drafts(&st, &witness_running(&net, Some(SonId(5)))).await.expect("ok");
    assert_eq!(drafted(out), vec![SonId(4)], "a node never reports its own SON");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executed_report_puts_the_son_in_maintenance_as_of_its_last_heartbeat() {
    let mut net = network();
    let g = net.genesis.genesis_time;
    net.set_son_up(2, false);
    net.start_schedulers(SchedulerConfig::for_tests());
    let events = net.run_until(g.plus(400)).await;
    let s = net.ledger.state().son(SonId(2)).expect("son");
    assert_eq!(s.status, SonStatus::InMaintenance);
    assert_eq!(
        s.statistics.last_down_timestamp, g,
        "its last heartbeat was its election at genesis"
    );
    let executed = events
        .iter()
        .filter(|(_, _, e)| matches!(e, sonprop_core::LedgerEvent::ProposalExecuted { .. }))
        .count();
    assert_eq!(executed, 1, "exactly one report for the one silent SON");
    let e = check_report(net.ledger.state(), SonId(2), g).expect_err("already in maintenance");
    assert_eq!(e, ReportDownError::WrongStatus { son: SonId(2), status: SonStatus::InMaintenance });
    for i in [0, 1, 3, 4, 5] {
        assert_eq!(net.ledger.state().son(SonId(i)).expect("son").status, SonStatus::Active);
    }
}

/// The explanation agrees with the rule: a silent SON is not due yet one block before
/// son_down_time after its last heartbeat (and says when it will be), due at it; a standby SON
/// is never due.
#[test]
fn readiness_gives_the_time_a_silent_son_becomes_due() {
    use sonprop_core::{Readiness, Subject};
    let mut net = network();
    let g = net.genesis.genesis_time;
    net.produce_until(g.plus(357));
    let e = net.ledger.state().explain(crate::KIND, &Subject::Son(SonId(2))).expect("kind");
    assert!(matches!(e.readiness, Some(Readiness::DueAt { at, .. }) if at == g.plus(360)), "{e:?}");
    net.produce_until(g.plus(360));
    let e = net.ledger.state().explain(crate::KIND, &Subject::Son(SonId(2))).expect("kind");
    assert!(
        matches!(e.readiness, Some(Readiness::Due { since: Some(at), .. }) if at == g.plus(360)),
        "{e:?}"
    );
    let standby = Subject::Son(SonId(6));
    let e = net.ledger.state().explain(crate::KIND, &standby).expect("kind");
    assert!(matches!(e.readiness, Some(Readiness::NotDue { .. })), "{e:?}");
    // Not a SON, or no such SON: the kind is not about it, and says nothing.
    for other in [Subject::Son(SonId(60)), Subject::Named("bitcoin:wallet".into())] {
        let e = net.ledger.state().explain(crate::KIND, &other).expect("kind");
        assert_eq!(e.readiness, None, "{other}");
    }
}

/// The boundary to the second, where whole 3-second blocks would hide a slip: at a head on the
/// block grid, a down time one second after genesis (silent `son_down_time - 1`) is refused and
/// genesis itself is not; and `due` lists a SON whose last heartbeat was at a slot, not one whose
/// heartbeat was one second after it.
#[test]
fn the_boundary_holds_to_the_second_off_the_block_grid() {
    use sonprop_core::chain::ops::SonHeartbeat;
    let mut net = network();
    let g = net.genesis.genesis_time;
    net.produce_until(g.plus(360));
    let e = check_report(net.ledger.state(), SonId(2), g.plus(1)).expect_err("359 s silent");
    assert!(matches!(e, ReportDownError::NotDownLongEnough { silent: 359, .. }), "{e}");
    check_report(net.ledger.state(), SonId(2), g).expect("360 s silent");

    let slot = net.ledger.state().next_slot_time();
    for (i, t) in [(0, slot), (1, slot.plus(1))] {
        let n = net.sons[i].clone();
        let op = SonHeartbeat { son: SonId(i as u64), owner: n.account, timestamp: t };
        net.submit(net.sign(&n, op));
    }
    let (_, rejected) = net.produce_block();
    assert!(rejected.is_empty(), "{rejected:?}");
    for i in 2..6 {
        net.submit(net.heartbeat(i));
    }
    net.produce_block();
    net.produce_until(slot.plus(360));
    let due: Vec<SonId> = crate::rule::due(net.ledger.state()).map(|(s, _)| s).collect();
    assert_eq!(due, vec![SonId(0)], "SON 1 is a second short");
}
