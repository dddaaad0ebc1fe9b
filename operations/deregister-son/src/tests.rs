use sonprop_core::chain::ops::ProposalCreate;
use sonprop_core::node::scheduler::SchedulerConfig;
use sonprop_core::testkit::TestNetwork;
use sonprop_core::{
    AccountId, ChainParameters, Guard, LedgerEvent, OperationError, Registry, SonId, SonStatus,
    State, Subject, Timestamp,
};

use crate::rule::{check_deregister, DeregisterError};
use crate::{lifetime, SonDeregister, KIND, PLUGIN};

/// A short son_deregister_time keeps these tests fast; the 12 h default is exercised end to end
/// in the workspace tests.
const DEREGISTER_TIME: u64 = 1200;

fn params() -> ChainParameters {
    ChainParameters { son_deregister_time: DEREGISTER_TIME, ..ChainParameters::default() }
}

fn network_with(guards: &[Guard]) -> TestNetwork {
    let b = Registry::builder().with(&PLUGIN).with(&sonprop_report_down::PLUGIN);
    let reg = guards.iter().fold(b, |b, g| b.guard(*g)).build().expect("unique").into_arc();
    TestNetwork::builder().witnesses(3).sons(6).params(params()).build(reg)
}

/// Runs the network until SON 2 is in maintenance; returns its last_down_timestamp.
async fn son_2_in_maintenance(net: &mut TestNetwork) -> Timestamp {
    net.set_son_up(2, false);
    net.start_schedulers(SchedulerConfig::for_tests());
    let g = net.genesis.genesis_time;
    net.run_until(g.plus(400)).await;
    let s = net.ledger.state().son(SonId(2)).expect("son");
    assert_eq!(s.status, SonStatus::InMaintenance);
    s.statistics.last_down_timestamp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistration_is_due_exactly_at_son_deregister_time_not_a_block_before() {
    let mut net = network_with(&[]);
    let down = son_2_in_maintenance(&mut net).await;
    net.produce_until(down.plus(DEREGISTER_TIME - 3));
    let e = check_deregister(net.ledger.state(), SonId(2)).expect_err("one block early");
    assert!(
        matches!(e, DeregisterError::TooEarly { down, needed: DEREGISTER_TIME, .. } if down == DEREGISTER_TIME - 3),
        "{e}"
    );
    net.produce_block();
    check_deregister(net.ledger.state(), SonId(2)).expect("the boundary is inclusive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_deregisters_leaves_the_elected_set_and_vests_the_deposit() {
    let mut net = network_with(&[]);
    let down = son_2_in_maintenance(&mut net).await;
    let owner = net.sons[2].account;
    let deposit = net.ledger.state().son(SonId(2)).expect("son").deposit;
    let events = net.run_until(down.plus(DEREGISTER_TIME + 30)).await;
    let st = net.ledger.state();
    let s = st.son(SonId(2)).expect("son");
    assert_eq!(s.status, SonStatus::Deregistered);
    let at = s.statistics.deregistered_timestamp.expect("set");
    assert!(at >= down.plus(DEREGISTER_TIME), "never before the rule allows");
    assert!(!st.is_elected(SonId(2)));
    assert!(
        !st.son_consensus_authority().account_auths.contains_key(&owner),
        "out of the authority at once"
    );
    assert_eq!(s.deposit, 0);
    let v: Vec<_> = st.vesting_balances().iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].owner, v[0].amount, v[0].cliff),
        (owner, deposit, at.plus(params().son_vesting_period))
    );
    let executed =
        events.iter().filter(|(_, _, e)| matches!(e, LedgerEvent::ProposalExecuted { .. })).count();
    assert_eq!(executed, 1, "one deregistration");
    // Terminal: nothing reports it down or deregisters it again.
    assert!(sonprop_report_down::rule::check_report(
        st,
        SonId(2),
        s.statistics.last_active_timestamp
    )
    .is_err());
    assert!(matches!(
        check_deregister(st, SonId(2)),
        Err(DeregisterError::NotInMaintenance { .. })
    ));
}

fn defer_son_2_for_an_hour(state: &State, subject: &Subject) -> Option<String> {
    let until = state.globals().genesis_time.plus(3600);
    (subject.son() == Some(SonId(2)) && state.head_time() < until)
        .then(|| format!("required signer of a pending withdrawal until {until}"))
}

const GUARD: Guard =
    Guard { name: "pending-withdrawals", kind: KIND, defer: defer_son_2_for_an_hour };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_defers_deregistration_and_the_trigger_reports_its_reason() {
    let mut net = network_with(&[GUARD]);
    let down = son_2_in_maintenance(&mut net).await;
    let mut deferred = Vec::new();
    while net.now() < down.plus(DEREGISTER_TIME + 30) {
        let step = net.step().await;
        deferred.extend(step.reports.into_iter().flat_map(|(_, r)| r.deferred));
    }
    assert_eq!(net.ledger.state().son(SonId(2)).expect("son").status, SonStatus::InMaintenance);
    let (kind, d) = deferred.first().expect("a deferral was reported");
    assert_eq!(*kind, KIND);
    assert!(
        d.reason.contains("pending-withdrawals") && d.reason.contains("pending withdrawal"),
        "{}",
        d.reason
    );

    // The on-chain check refuses a proposal made anyway, naming the guard.
    let w = net.witnesses[0].clone();
    let exp = net.ledger.state().next_slot_time().plus(27);
    let tx = net.sign(
        &w,
        ProposalCreate {
            proposer: w.account,
            expiration_time: exp,
            review_period_seconds: None,
            operations: vec![Box::new(SonDeregister { son: SonId(2) })],
        },
    );
    let e = net.ledger.check_transaction(&tx).expect_err("deferred");
    assert!(
        matches!(
            e.operation_error(),
            Some(OperationError::Deferred { guard: "pending-withdrawals", kind: KIND, .. })
        ),
        "{e}"
    );

    // Once the guard lets go, it is deregistered.
    let g = net.genesis.genesis_time;
    net.run_until(g.plus(3600 + 30)).await;
    assert_eq!(net.ledger.state().son(SonId(2)).expect("son").status, SonStatus::Deregistered);
}

#[test]
fn lifetime_is_three_complete_witness_cycles_capped_by_the_maximum() {
    let net = network_with(&[]);
    assert_eq!(
        lifetime(net.ledger.state()),
        3 * 3 * 3,
        "block_interval 3 s × 3 witnesses × 3 cycles"
    );
    let reg = Registry::builder().with(&PLUGIN).build().expect("unique").into_arc();
    let p = ChainParameters { maximum_proposal_lifetime: 20, ..params() };
    let net = TestNetwork::builder().witnesses(3).sons(6).params(p).build(reg);
    assert_eq!(lifetime(net.ledger.state()), 20);
}

#[test]
fn only_active_witnesses_may_propose_a_deregistration() {
    let net = network_with(&[]);
    let d = net.ledger.state().registry().operation(KIND).expect("registered");
    let p = d.proposal.expect("proposable");
    let st = net.ledger.state();
    assert!(p.eligible.allows(st, net.witnesses[1].account));
    assert!(!p.eligible.allows(st, net.sons[1].account));
    assert!(!p.eligible.allows(st, AccountId(999)));
}

fn create_deregister(
    net: &TestNetwork,
    who: usize,
    as_son: bool,
    son: u64,
) -> sonprop_core::SignedTransaction {
    let node = if as_son { net.sons[who].clone() } else { net.witnesses[who].clone() };
    let exp = net.ledger.state().next_slot_time().plus(27);
    net.sign(
        &node,
        ProposalCreate {
            proposer: node.account,
            expiration_time: exp,
            review_period_seconds: None,
            operations: vec![Box::new(SonDeregister { son: SonId(son) })],
        },
    )
}

#[test]
fn son_deregister_is_refused_on_chain_for_an_active_son() {
    let mut net = network_with(&[]);
    // Long past son_deregister_time since genesis: only the status can refuse it.
    while net.now() < net.genesis.genesis_time.plus(DEREGISTER_TIME + 60) {
        for i in 0..6 {
            net.submit(net.heartbeat(i));
        }
        for _ in 0..20 {
            net.produce_block();
        }
    }
    assert_eq!(net.ledger.state().son(SonId(1)).expect("son").status, SonStatus::Active);
    let tx = create_deregister(&net, 0, false, 1);
    let e = net.ledger.check_transaction(&tx).expect_err("active SONs are not deregistered");
    let rule = e.operation_error().and_then(OperationError::rule_source::<DeregisterError>);
    assert!(
        matches!(rule, Some(DeregisterError::NotInMaintenance { status: SonStatus::Active, .. })),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_son_proposed_deregistration_is_refused_by_the_ledger() {
    let mut net = network_with(&[]);
    let down = son_2_in_maintenance(&mut net).await;
    // Past the boundary, without the schedulers, so nobody has proposed it yet.
    net.produce_until(down.plus(DEREGISTER_TIME));
    let by_son = create_deregister(&net, 1, true, 2);
    let e = net.ledger.check_transaction(&by_son).expect_err("SONs may not propose it");
    assert!(
        matches!(e.operation_error(), Some(OperationError::IneligibleProposer { kind: KIND, .. })),
        "{e}"
    );
    let by_witness = create_deregister(&net, 0, false, 2);
    net.ledger.check_transaction(&by_witness).expect("the same proposal from a witness is due");
}

/// The explanation agrees with the rule: not due yet (with the exact time it becomes due) one
/// block before, due at it, and a guard's deferral is reported beside the rule's verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_gives_the_time_it_becomes_due_and_the_guard_that_defers_it() {
    use sonprop_core::Readiness;
    let mut net = network_with(&[GUARD]);
    let down = son_2_in_maintenance(&mut net).await;
    let subject = Subject::Son(SonId(2));
    net.produce_until(down.plus(DEREGISTER_TIME - 3));
    let e = net.ledger.state().explain(KIND, &subject).expect("a proposable kind");
    assert!(
        matches!(e.readiness, Some(Readiness::DueAt { at, .. }) if at == down.plus(DEREGISTER_TIME)),
        "{e:?}"
    );
    net.produce_block();
    let e = net.ledger.state().explain(KIND, &subject).expect("a proposable kind");
    assert!(matches!(e.readiness, Some(Readiness::Due { .. })), "{e:?}");
    // SON 2 is deferred until an hour after genesis, which is later than this.
    assert_eq!(e.deferred.as_ref().map(|d| d.0), Some("pending-withdrawals"), "{e:?}");
    // An active SON is not due at all, whenever.
    let e = net.ledger.state().explain(KIND, &Subject::Son(SonId(1))).expect("kind");
    assert!(matches!(e.readiness, Some(Readiness::NotDue { .. })), "{e:?}");
    // Not a SON, or no such SON: the kind is not about it, and says nothing.
    for other in [Subject::Son(SonId(60)), Subject::Named("bitcoin:wallet".into())] {
        let e = net.ledger.state().explain(KIND, &other).expect("kind");
        assert_eq!(e.readiness, None, "{other}");
    }
}

/// The boundary to the second: a SON whose last heartbeat, hence its down time, was one second
/// after a slot is not due at a block `son_deregister_time - 1` seconds after it (whole blocks
/// would hide that second), and is at the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistration_is_not_due_a_second_early_off_the_block_grid() {
    use sonprop_core::chain::ops::SonHeartbeat;
    let mut net = network_with(&[]);
    net.produce_block();
    let beat = net.ledger.state().next_slot_time().plus(1);
    let n = net.sons[2].clone();
    net.submit(net.sign(&n, SonHeartbeat { son: SonId(2), owner: n.account, timestamp: beat }));
    let (_, rejected) = net.produce_block();
    assert!(rejected.is_empty(), "{rejected:?}");
    let down = son_2_in_maintenance(&mut net).await;
    assert_eq!(down, beat, "down as of its last heartbeat, off the grid");
    net.produce_until(down.plus(DEREGISTER_TIME - 1));
    assert_eq!(net.now(), down.plus(DEREGISTER_TIME - 1));
    let e = check_deregister(net.ledger.state(), SonId(2)).expect_err("a second early");
    assert!(matches!(e, DeregisterError::TooEarly { down: 1199, .. }), "{e}");
    assert_eq!(crate::rule::due(net.ledger.state()).count(), 0);
    net.produce_block();
    check_deregister(net.ledger.state(), SonId(2)).expect("due");
    assert_eq!(crate::rule::due(net.ledger.state()).collect::<Vec<_>>(), vec![SonId(2)]);
}
