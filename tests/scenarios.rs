//! End-to-end SON lifecycles through the ledger and every node's scheduler (11 witnesses, 15
//! SONs, default parameters unless a test says otherwise).

use std::collections::BTreeMap;

use sonprop_core::chain::ops::{ProposalCreate, SonHeartbeat};
use sonprop_core::node::scheduler::SchedulerConfig;
use sonprop_core::testkit::TestNetwork;
use sonprop_core::{
    ChainParameters, LedgerError, LedgerEvent, OperationError, ProposalId, Registry, SonId,
    SonStatus, Subject, ThresholdPolicy, Timestamp,
};
use sonprop_deregister_son::SonDeregister;
use sonprop_report_down::SonReportDown;

const HOUR: u64 = 3600;
const REPORT: &str = sonprop_report_down::KIND;
const DEREGISTER: &str = sonprop_deregister_son::KIND;

/// A default network with both operation crates, schedulers running, recording every event and
/// checking after every block that no `(kind, subject)` ever has two live proposals.
struct Sim {
    net: TestNetwork,
    events: Vec<(u64, Timestamp, LedgerEvent)>,
    /// proposal -> (kind, subject), from creation events.
    proposals: BTreeMap<ProposalId, (String, Option<Subject>)>,
}

impl Sim {
    fn new(params: ChainParameters) -> Sim {
        let reg = Registry::builder()
            .with(&sonprop_report_down::PLUGIN)
            .with(&sonprop_deregister_son::PLUGIN)
            .build()
            .expect("unique kinds")
            .into_arc();
        let mut net = TestNetwork::builder().params(params).build(reg);
        net.start_schedulers(SchedulerConfig::for_tests());
        Sim { net, events: Vec::new(), proposals: BTreeMap::new() }
    }

    fn genesis(&self) -> Timestamp {
        self.net.genesis.genesis_time
    }

    async fn run_until(&mut self, t: Timestamp) {
        while self.net.now() < t {
            let step = self.net.step().await;
            let o = step.outcome;
            for e in &o.events {
                if let LedgerEvent::ProposalCreated { proposal, kinds, subject, .. } = e {
                    self.proposals.insert(*proposal, (kinds.join("+"), subject.clone()));
                }
            }
            self.events.extend(o.events.into_iter().map(|e| (o.height, o.timestamp, e)));
            let st = self.net.ledger.state();
            let mut live = BTreeMap::new();
            for (id, _) in st.proposals().iter() {
                if let Some(key) = self.proposals.get(id) {
                    assert!(
                        live.insert(key.clone(), *id).is_none(),
                        "two live proposals for {key:?}"
                    );
                }
            }
        }
    }

    fn status(&self, son: u64) -> SonStatus {
        self.net.ledger.state().son(SonId(son)).expect("son").status
    }

    /// Times at which proposals of `kind` about `son` ended with `outcome`.
    fn ended(
        &self,
        kind: &str,
        son: u64,
        outcome: fn(&LedgerEvent) -> Option<ProposalId>,
    ) -> Vec<Timestamp> {
        let subject = Some(Subject::Son(SonId(son)));
        self.events
            .iter()
            .filter_map(|(_, t, e)| outcome(e).map(|p| (t, p)))
            .filter(|(_, p)| self.proposals.get(p) == Some(&(kind.to_owned(), subject.clone())))
            .map(|(t, _)| *t)
            .collect()
    }

    fn executed(&self, kind: &str, son: u64) -> Vec<Timestamp> {
        self.ended(kind, son, |e| match e {
            LedgerEvent::ProposalExecuted { proposal } => Some(*proposal),
            _ => None,
        })
    }

    fn expired(&self, kind: &str, son: u64) -> Vec<Timestamp> {
        self.ended(kind, son, |e| match e {
            LedgerEvent::ProposalExpired { proposal } => Some(*proposal),
            _ => None,
        })
    }

    /// Times at which proposals of `kind` about `son` were created.
    fn created_at(&self, kind: &str, son: u64) -> Vec<Timestamp> {
        let key = (kind.to_owned(), Some(Subject::Son(SonId(son))));
        self.events
            .iter()
            .filter_map(|(_, t, e)| match e {
                LedgerEvent::ProposalCreated { proposal, .. } => Some((t, proposal)),
                _ => None,
            })
            .filter(|(_, p)| self.proposals.get(p) == Some(&key))
            .map(|(t, _)| *t)
            .collect()
    }

    fn created(&self, kind: &str, son: u64) -> usize {
        let key = (kind.to_owned(), Some(Subject::Son(SonId(son))));
        self.proposals.values().filter(|k| **k == key).count()
    }

    fn status_changes(&self, son: u64) -> Vec<(Timestamp, SonStatus)> {
        self.events
            .iter()
            .filter_map(|(_, t, e)| match e {
                LedgerEvent::SonStatusChanged { son: s, to, .. } if *s == SonId(son) => {
                    Some((*t, *to))
                }
                _ => None,
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_son_is_reported_after_down_time_and_deregistered_at_twelve_hours_not_a_block_earlier(
) {
    let mut sim = Sim::new(ChainParameters::default());
    let g = sim.genesis();
    sim.run_until(g.plus(HOUR)).await;
    sim.net.set_son_up(3, false);
    sim.run_until(g.plus(14 * HOUR)).await;

    let s = sim.net.ledger.state().son(SonId(3)).expect("son").clone();
    let last_beat = s.statistics.last_active_timestamp;
    assert!(
        last_beat <= g.plus(HOUR) && last_beat > g.plus(HOUR - 180),
        "last heartbeat just before 1 h"
    );
    assert_eq!(s.statistics.last_down_timestamp, last_beat);

    let reports = sim.executed(REPORT, 3);
    assert_eq!(reports.len(), 1, "exactly one executed report-down");
    assert!(reports[0] >= last_beat.plus(360));
    assert!(reports[0] <= last_beat.plus(360 + 12), "reported within a few blocks of being due");

    let deregs = sim.executed(DEREGISTER, 3);
    assert_eq!(deregs.len(), 1, "exactly one executed deregistration");
    let due = last_beat.plus(12 * HOUR);
    // Exact, not a range: the trigger first sees the SON due after the block at `due`, the
    // proposal lands in the next block and the approvals in the one after. A rule that fired a
    // block early (or late) moves both by a block.
    let raised = sim.created_at(DEREGISTER, 3);
    assert_eq!(raised, vec![due.plus(3)], "raised in the block after the boundary");
    assert_eq!(deregs, vec![due.plus(6)], "executed with the approvals one block later");
    assert!(deregs[0] >= due, "not one block before 12 h since the last heartbeat");
    assert!(deregs[0] <= due.plus(12), "promptly after");
    assert_eq!(s.status, SonStatus::Deregistered);
    assert_eq!(s.statistics.deregistered_timestamp, Some(deregs[0]));
    assert_eq!(
        sim.status_changes(3).iter().map(|c| c.1).collect::<Vec<_>>(),
        vec![SonStatus::InMaintenance, SonStatus::Deregistered]
    );
    for other in (0..15).filter(|i| *i != 3) {
        assert_eq!(sim.status(other), SonStatus::Active, "son {other}");
    }
    // The deregistered SON's heartbeat is refused.
    let hb = SonHeartbeat {
        son: SonId(3),
        owner: sim.net.sons[3].account,
        timestamp: sim.net.ledger.state().next_slot_time(),
    };
    let tx = sim.net.sign(&sim.net.sons[3], hb);
    let e = sim.net.ledger.check_transaction(&tx).expect_err("deregistered");
    assert!(
        matches!(e.operation_error(), Some(OperationError::Deregistered(s)) if *s == SonId(3)),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_son_back_after_11h59m_is_not_deregistered_and_its_clock_restarts_from_its_next_outage() {
    let mut sim = Sim::new(ChainParameters::default());
    let g = sim.genesis();
    sim.run_until(g.plus(HOUR)).await;
    sim.net.set_son_up(3, false);
    sim.run_until(g.plus(HOUR + 600)).await;
    let first_down =
        sim.net.ledger.state().son(SonId(3)).expect("son").statistics.last_down_timestamp;
    assert_eq!(sim.status(3), SonStatus::InMaintenance);

    // Back 11 h 59 m after its last heartbeat: one heartbeat, accepted at that slot.
    let back = first_down.plus(12 * HOUR - 60);
    sim.run_until(back.minus(3)).await;
    sim.net.submit(sim.net.heartbeat(3));
    sim.run_until(back).await;
    assert_eq!(sim.status(3), SonStatus::Active, "the heartbeat brought it back");
    // Silent again from here: its new outage starts at that heartbeat.
    sim.run_until(first_down.plus(12 * HOUR + 600)).await;
    assert!(
        sim.executed(DEREGISTER, 3).is_empty(),
        "12 h after the first outage is not 12 h after the second"
    );
    let second_down =
        sim.net.ledger.state().son(SonId(3)).expect("son").statistics.last_down_timestamp;
    assert_eq!(second_down, back);
    assert!(
        sim.net.ledger.state().son(SonId(3)).expect("son").statistics.total_downtime
            >= 12 * HOUR - 60
    );

    sim.run_until(second_down.plus(12 * HOUR + 30)).await;
    let deregs = sim.executed(DEREGISTER, 3);
    assert_eq!(deregs.len(), 1);
    assert!(deregs[0] >= second_down.plus(12 * HOUR));
    assert_eq!(sim.executed(REPORT, 3).len(), 2, "reported down once per outage");
}

async fn five_of_fifteen_down(policy: ThresholdPolicy) -> Sim {
    let mut sim =
        Sim::new(ChainParameters { threshold_policy: policy, ..ChainParameters::default() });
    let g = sim.genesis();
    sim.run_until(g.plus(HOUR)).await;
    for son in [1, 4, 7, 10, 13] {
        sim.net.set_son_up(son, false);
    }
    sim.run_until(g.plus(13 * HOUR + 600)).await;
    sim
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_of_fifteen_down_are_all_deregistered_under_the_live_policy() {
    let sim = five_of_fifteen_down(ThresholdPolicy::Live).await;
    for son in [1, 4, 7, 10, 13] {
        assert_eq!(sim.executed(REPORT, son).len(), 1, "son {son} reported once");
        assert_eq!(sim.executed(DEREGISTER, son).len(), 1, "son {son} deregistered once");
        assert_eq!(sim.status(son), SonStatus::Deregistered);
    }
    assert_eq!(sim.net.ledger.state().globals().elected_sons.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_of_fifteen_down_deadlock_under_the_elected_policy_as_in_peerplays() {
    // Peerplays counts every elected SON: 15 elected need 11 approvals, 10 are up. Nothing
    // passes — not even the reports that would start the removal of the five.
    let sim = five_of_fifteen_down(ThresholdPolicy::Elected).await;
    for son in [1, 4, 7, 10, 13] {
        assert!(sim.executed(REPORT, son).is_empty(), "son {son}: nothing can pass");
        assert_eq!(sim.status(son), SonStatus::Active, "son {son} is stuck as active");
        // The reports expire unapproved and are replaced, never duplicated (checked every block).
        assert!(sim.expired(REPORT, son).len() >= 2, "son {son}: expired reports");
        // Every report ever raised either expired or is the one live now: each expiry was
        // followed by exactly one replacement, and no two overlapped.
        let live =
            sim.net.ledger.state().live_proposal(REPORT, &Subject::Son(SonId(son))).is_some();
        assert_eq!(
            sim.created(REPORT, son),
            sim.expired(REPORT, son).len() + usize::from(live),
            "son {son}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deregister_inside_a_foreign_or_multi_operation_proposal_neither_leaks_a_record_nor_shields_the_son(
) {
    let mut sim = Sim::new(ChainParameters::default());
    let g = sim.genesis();
    sim.run_until(g.plus(HOUR)).await;
    sim.net.set_son_up(3, false);
    sim.run_until(g.plus(2 * HOUR)).await;
    let down = sim.net.ledger.state().son(SonId(3)).expect("son").statistics.last_down_timestamp;
    sim.run_until(down.plus(12 * HOUR - 30)).await;

    let create = |sim: &Sim, who: usize, ops: Vec<Box<dyn sonprop_core::Operation>>| {
        let n = sim.net.users.get(who).cloned().unwrap_or_else(|| sim.net.witnesses[0].clone());
        let exp = sim.net.ledger.state().next_slot_time().plus(60);
        sim.net.sign(
            &n,
            ProposalCreate {
                proposer: n.account,
                expiration_time: exp,
                review_period_seconds: None,
                operations: ops,
            },
        )
    };
    // Foreign: a plain account proposes it.
    let foreign = create(&sim, 0, vec![Box::new(SonDeregister { son: SonId(3) })]);
    let e = sim.net.ledger.check_transaction(&foreign).expect_err("foreign");
    assert!(matches!(e.operation_error(), Some(OperationError::IneligibleProposer { .. })), "{e}");
    // Multi-operation: an eligible witness bundles it with another operation.
    let bundle = create(
        &sim,
        99,
        vec![
            Box::new(SonDeregister { son: SonId(3) }),
            Box::new(SonReportDown { son: SonId(5), down_ts: g }),
        ],
    );
    let e = sim.net.ledger.check_transaction(&bundle).expect_err("bundled");
    assert!(matches!(e.operation_error(), Some(OperationError::SonProposalNotAlone { .. })), "{e}");
    // Submitted anyway, the producer leaves them out; nothing is recorded.
    sim.net.submit(foreign);
    sim.net.submit(bundle);
    let step = sim.net.step().await;
    assert_eq!(step.rejected.len(), 2);
    assert!(matches!(step.rejected[0].error, LedgerError::Operation { .. }));
    assert_eq!(sim.net.ledger.state().records_of_son(SonId(3)).count(), 0, "no record leaked");

    sim.run_until(down.plus(12 * HOUR + 30)).await;
    assert_eq!(sim.executed(DEREGISTER, 3).len(), 1, "the SON was not shielded");
    assert_eq!(sim.status(3), SonStatus::Deregistered);
    assert_eq!(sim.net.ledger.state().son_proposals().len(), 0);
}
