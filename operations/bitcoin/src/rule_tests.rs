//! Rules of the bridge tested at the rule, each against the state that reaches it, and at its
//! boundary: a deposit swept or credited cannot be swept again, a SON cannot report a deposit
//! twice, the confirmations each SON requires (exactly `min_confirmations`, not one fewer), the
//! signing deadline, the fee bounds, and the wallets a report may name.

use std::sync::Arc;

use bitcoin::{ScriptBuf, Transaction, Txid};
use sonprop_core::testkit::TestNetwork;
use sonprop_core::{
    NodeIdentity, OperationError, Proposal, ProposalId, SonId, State, Subject, Trigger, Validator,
    Verdict,
};

use crate::flows::{check_process_deposit, ProcessDeposit, ReportDeposit};
use crate::node::{
    BitcoinNode, BitcoinSource, DepositReportTrigger, DepositValidator, SeenOutput,
    SettleValidator, SourceError,
};
use crate::ops::{BitcoinError, SettleTx};
use crate::sim::{Fault, SimView};
use crate::state::{
    current_wallet, utxo_key, wallet_utxos, DepositStatus, Deposits, Transactions, TxStatus,
};
use crate::test_support::*;

/// An honest view whose every confirmation count reads `shown` (what a node that sees the
/// chain `shown` blocks deep would say).
struct Shows {
    inner: Arc<SimView>,
    shown: u32,
}

impl BitcoinSource for Shows {
    fn fee_rate(&self) -> Result<u64, SourceError> {
        self.inner.fee_rate()
    }
    fn outputs_to(&self, spk: &ScriptBuf) -> Result<Vec<SeenOutput>, SourceError> {
        let mut seen = self.inner.outputs_to(spk)?;
        for o in &mut seen {
            o.confirmations = self.shown;
        }
        Ok(seen)
    }
    fn confirmations(&self, txid: &Txid) -> Result<Option<u32>, SourceError> {
        Ok(self.inner.confirmations(txid)?.map(|_| self.shown))
    }
    fn broadcast(&self, tx: &Transaction) -> Result<(), SourceError> {
        self.inner.broadcast(tx)
    }
}

fn node_showing(run: &Run, son: usize, shown: u32) -> BitcoinNode {
    BitcoinNode {
        source: Arc::new(Shows { inner: run.btc.view(Fault::Honest), shown }),
        key: TestNetwork::builder().sidechain_key(&run.net.sons[son].name, "bitcoin").secret_key(),
        fee_band_percent: 25,
        retired_keys: Vec::new(),
    }
}

fn proposal(st: &State, kind: &str, subject: &str) -> Option<Proposal> {
    let id: ProposalId = st.live_proposal(kind, &Subject::Named(subject.into()))?;
    st.proposal(id).cloned()
}

/// A deposit being swept, and one credited, cannot be processed again: the proposal the chain
/// would accept for a confirmed deposit (the same bytes at the same rate) is refused for them,
/// or the deposit would be credited twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_swept_or_credited_cannot_be_processed_again() {
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    let o = run.deposit(0, 10_000_000);
    run.until(1800, |st| deposit_sweep(st, &o).is_some()).await;
    let t = deposit_sweep(run.state(), &o).expect("sweep");
    let again =
        ProcessDeposit { deposit: o.to_string(), fee_rate: t.fee_rate, unsigned_tx: t.unsigned_tx };
    for needed in ["sweeping", "credited"] {
        if needed == "credited" {
            run.until(1800, |st| {
                matches!(deposit_status(st, &o), Some(DepositStatus::Credited { .. }))
            })
            .await;
        }
        let e = check_process_deposit(run.state(), &again).expect_err(needed);
        assert!(
            matches!(&e, BitcoinError::DepositStatus { status, needed: "confirmed", .. } if status.starts_with(needed)),
            "{e}"
        );
        // Proposed by an elected SON, the ledger refuses it too.
        let son = run.net.sons[0].clone();
        let st = run.state();
        let create = sonprop_core::chain::ops::ProposalCreate {
            proposer: son.account,
            expiration_time: st.head_time().plus(st.witness_cycles_lifetime(3)),
            review_period_seconds: None,
            operations: vec![Box::new(again.clone())],
        };
        let tx = run.net.sign(&son, create);
        let e = run.net.ledger.check_transaction(&tx).expect_err("refused");
        assert!(e.to_string().contains("not confirmed"), "{e}");
    }
    assert_eq!(run.state().rows::<Transactions>().count(), 1, "one sweep");
}

/// A SON reports a deposit once: the same report again, or another version of it, is refused,
/// and its weight counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_son_reports_a_deposit_once() {
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    let o = run.deposit(0, 10_000_000);
    run.until(1800, |st| {
        st.row::<Deposits>(&utxo_key(&o)).is_some_and(|d| d.reported_by(SonId(0)))
    })
    .await;
    let st = run.state();
    let weight = st.row::<Deposits>(&utxo_key(&o)).map(|d| d.claims[0].weight).expect("row");
    let son = run.net.sons[0].clone();
    let report = |amount_sat| ReportDeposit {
        son: SonId(0),
        owner: son.account,
        account: run.net.users[0].account,
        wallet: 0,
        txid: o.txid.to_string(),
        vout: o.vout,
        amount_sat,
    };
    for amount in [10_000_000, 10_000_001] {
        let tx = run.net.sign(&son, report(amount));
        let e = run.net.ledger.check_transaction(&tx).expect_err("twice");
        let r = e.operation_error().and_then(OperationError::rule_source::<BitcoinError>);
        assert!(matches!(r, Some(BitcoinError::AlreadyReported { son: SonId(0), .. })), "{e}");
    }
    let d = run.state().row::<Deposits>(&utxo_key(&o)).expect("row").clone();
    assert_eq!(d.claims.iter().map(|c| c.weight).max(), Some(weight.max(d.claims[0].weight)));
    assert!(d.claims.iter().all(|c| c.reporters.iter().filter(|s| **s == SonId(0)).count() <= 1));
}

/// Each SON acts on exactly `bitcoin.min_confirmations` (3 here), never one fewer: it reports a
/// deposit, approves its sweep and approves a settlement only when its own view shows that many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_son_requires_exactly_the_minimum_confirmations() {
    let mut run = ready(judged(), 3, |_| Fault::Honest).await;
    let o = run.deposit(0, 10_000_000);
    run.btc.mine();
    run.hold(3).await;
    // The report trigger of a SON whose view shows 2, then 3 confirmations.
    let son = run.net.sons[1].clone();
    for (shown, reports) in [(2, 0), (3, 1)] {
        let trigger = DepositReportTrigger::new(node_showing(&run, 1, shown));
        let out = trigger.drafts(run.state(), &son).await.expect("drafts");
        assert_eq!(out.operations.len(), reports, "{shown} confirmations");
    }
    // The sweep proposal: a validator seeing 2 abstains, seeing 3 approves.
    let subject = format!("bitcoin:deposit:{o}");
    run.btc.mine_n(2);
    run.until(1800, |st| proposal(st, crate::DEPOSIT_PROCESS, &subject).is_some()).await;
    let p = proposal(run.state(), crate::DEPOSIT_PROCESS, &subject).expect("live");
    let review = |shown| {
        let v = DepositValidator(node_showing(&run, 2, shown));
        let (st, p, me) = (run.state().clone(), p.clone(), run.net.sons[2].clone());
        async move { v.review(&st, &p, &me).await.expect("review") }
    };
    assert!(matches!(review(2).await, Verdict::Abstain(ref w) if w.contains("confirmations")));
    assert_eq!(review(3).await, Verdict::Approve);
    // The settlement: the same.
    run.until(1800, |st| {
        deposit_sweep(st, &o).is_some_and(|t| matches!(t.status, TxStatus::Sent { .. }))
    })
    .await;
    let t = deposit_sweep(run.state(), &o).expect("sweep");
    let settle = SettleTx { tx: t.id, txid: t.bitcoin_txid.clone() };
    let p = Proposal {
        operations: vec![Box::new(settle)],
        ..run.state().proposals().iter().next().map(|(_, p)| p.clone()).unwrap_or_else(|| p.clone())
    };
    run.btc.mine();
    for (shown, approves) in [(2, false), (3, true)] {
        let v = SettleValidator(node_showing(&run, 2, shown));
        let verdict = v.review(run.state(), &p, &run.net.sons[2].clone()).await.expect("review");
        assert_eq!(verdict == Verdict::Approve, approves, "{shown}: {verdict:?}");
    }
    let _: &NodeIdentity = &son;
}

/// A SON signs only before the transaction's deadline: one block before it, accepted; at it,
/// refused. (All SON nodes here hold other keys, so the test signs by hand.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_is_refused_from_the_deadline_on() {
    use sonprop_core::node::scheduler::SchedulerConfig;
    use sonprop_core::Services;
    let btc = judged();
    let b = builder(1).plugin_param("bitcoin.sign_timeout", serde_json::json!(300));
    let mut net = b.clone().build(registry());
    let view = btc.clone();
    net.start_schedulers_with(SchedulerConfig::for_tests(), move |node| match node.son {
        Some(_) => Services::new().with(BitcoinNode {
            source: view.view(Fault::Honest),
            key: b.sidechain_key("not-a-son", "bitcoin").secret_key(),
            fee_band_percent: 25,
            retired_keys: Vec::new(),
        }),
        None => Services::new(),
    })
    .expect("services");
    let mut run = Run { net, btc, steps: 0, events: Vec::new() };
    run.until(60, |st| current_wallet(st).is_some()).await;
    run.register(0);
    let w = current_wallet(run.state()).expect("wallet").clone();
    run.btc.pay(&ScriptBuf::new_p2wsh(&w.script().wscript_hash()), 100_000);
    run.until(600, |st| wallet_utxos(st, 0).len() == 1).await;
    let o = run.deposit(0, 10_000_000);
    run.until(1800, |st| deposit_sweep(st, &o).is_some()).await;
    let t = deposit_sweep(run.state(), &o).expect("sweep");
    let son = run.net.sons[1].clone();
    let key = TestNetwork::builder().sidechain_key("son-1", "bitcoin").secret_key();
    let unsigned = crate::tx::from_hex(&t.unsigned_tx).expect("tx");
    let script = crate::ops::spent_script(&t, &w).expect("script");
    let sig =
        crate::tx::sign_input(&unsigned, 0, &script, t.inputs[0].amount_sat, &key).expect("sig");
    let sign = crate::ops::SignTx {
        tx: t.id,
        son: SonId(1),
        owner: son.account,
        signatures: vec![sonprop_core::chain::crypto::hex(&sig)],
    };
    run.hold(t.deadline.since(run.net.now()) - 6).await;
    let now = run.net.now();
    assert_eq!(now.plus(6), t.deadline, "the next block is the last before the deadline");
    // Checked as the next block: one before the deadline.
    run.net.ledger.check_transaction(&run.net.sign(&son, sign.clone())).expect("in time");
    run.step_without_mining().await;
    // Now the next block is at the deadline.
    let e = run.net.ledger.check_transaction(&run.net.sign(&son, sign)).expect_err("too late");
    let r = e.operation_error().and_then(OperationError::rule_source::<BitcoinError>);
    assert!(matches!(r, Some(BitcoinError::PastDeadline(_))), "{e}");
}

/// Fee rates are bounded on chain, both ends included: `bitcoin.min_fee_rate` and
/// `bitcoin.max_fee_rate` are proposable, one below and one above are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fee_rates_are_bounded_at_both_ends() {
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    let o = run.deposit(0, 90_000_000);
    run.until(1800, |st| matches!(deposit_status(st, &o), Some(DepositStatus::Confirmed))).await;
    let st = run.state();
    let built = |rate| crate::flows::expected_deposit_sweep(st, &o.to_string(), rate);
    for rate in [1, 500] {
        assert!(built(rate).is_ok(), "{rate} sat/vB is within the bounds");
    }
    for rate in [0, 501] {
        assert!(matches!(built(rate), Err(BitcoinError::FeeRate { .. })), "{rate} sat/vB");
    }
}

/// A report may name the current wallet or the previous one; an older, expired wallet or one
/// that does not exist yet is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_naming_an_expired_wallet_is_refused() {
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    // Two SONs leave in turn: the standby takes the first seat (wallet 1), then the set shrinks
    // (wallet 2).
    run.net.set_son_up(5, false);
    run.until(3 * 3600, |st| {
        wallet_utxos(st, 0).is_empty() && current_wallet(st).is_some_and(|w| w.id == 1)
    })
    .await;
    run.net.set_son_up(4, false);
    run.until(3 * 3600, |st| current_wallet(st).is_some_and(|w| w.id == 2)).await;
    let o = run.deposit(0, 10_000_000);
    let son = run.net.sons[0].clone();
    let user = run.net.users[0].account;
    let report = |wallet| ReportDeposit {
        son: SonId(0),
        owner: son.account,
        account: user,
        wallet,
        txid: o.txid.to_string(),
        vout: o.vout,
        amount_sat: 10_000_000,
    };
    let verdict = |run: &mut Run, wallet| {
        let tx = run.net.sign(&son, report(wallet));
        run.net.ledger.check_transaction(&tx).map_err(|e| {
            e.operation_error()
                .and_then(OperationError::rule_source::<BitcoinError>)
                .cloned()
                .unwrap_or_else(|| panic!("{e}"))
        })
    };
    assert_eq!(verdict(&mut run, 0), Err(BitcoinError::NotCurrent(0)), "expired twice over");
    assert_eq!(verdict(&mut run, 3), Err(BitcoinError::NotCurrent(3)), "not made yet");
    assert_eq!(verdict(&mut run, 1), Ok(()), "the previous wallet's address is honoured");
    assert_eq!(verdict(&mut run, 2), Ok(()), "the current one");
}

/// An honest view that counts the scans of deposit addresses asked of it.
struct Counting {
    inner: Arc<SimView>,
    scans: std::sync::atomic::AtomicUsize,
}

impl BitcoinSource for Counting {
    fn fee_rate(&self) -> Result<u64, SourceError> {
        self.inner.fee_rate()
    }
    fn outputs_to(&self, spk: &ScriptBuf) -> Result<Vec<SeenOutput>, SourceError> {
        self.inner.outputs_to(spk)
    }
    fn outputs_to_many(&self, scripts: &[ScriptBuf]) -> Result<Vec<Vec<SeenOutput>>, SourceError> {
        self.scans.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.outputs_to_many(scripts)
    }
    fn confirmations(&self, txid: &Txid) -> Result<Option<u32>, SourceError> {
        self.inner.confirmations(txid)
    }
    fn broadcast(&self, tx: &Transaction) -> Result<(), SourceError> {
        self.inner.broadcast(tx)
    }
    fn tip(&self) -> Result<Option<u64>, SourceError> {
        self.inner.tip()
    }
}

/// The report trigger scans Bitcoin again only when something a scan reads has moved: its
/// view's tip or the deposits on chain. While what it found has not landed it stays awake, so a
/// report lost on the way is sent again on the next block, not a Bitcoin block later; and a
/// view that cannot name its tip is scanned on every block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_trigger_scans_again_only_when_what_it_reads_moves() {
    use std::sync::atomic::Ordering::SeqCst;
    let mut run = unfunded_with(builder(3).users(3), judged(), |_| Fault::Honest).await;
    let source = Arc::new(Counting { inner: run.btc.view(Fault::Honest), scans: 0.into() });
    let node = BitcoinNode { source: source.clone(), ..node_showing(&run, 1, 0) };
    let trigger = DepositReportTrigger::new(node);
    let son = run.net.sons[1].clone();
    let scans = || source.scans.load(SeqCst);

    // Nothing to report: one scan, then asleep while nothing moves, chain blocks or not.
    assert!(trigger.wake(run.state(), &son), "never scanned");
    assert!(trigger.drafts(run.state(), &son).await.expect("drafts").operations.is_empty());
    assert_eq!(scans(), 1);
    assert!(!trigger.wake(run.state(), &son), "nothing moved");
    run.hold(3).await;
    assert!(!trigger.wake(run.state(), &son), "chain blocks alone move nothing it reads");

    // A new deposit key is a new address to watch, Bitcoin block or not.
    run.register(2);
    run.step_without_mining().await;
    assert!(run.state().row::<crate::state::DepositKeys>(&run.net.users[2].account).is_some());
    assert!(trigger.wake(run.state(), &son), "the deposit keys moved");
    assert!(trigger.drafts(run.state(), &son).await.expect("drafts").operations.is_empty());
    assert!(!trigger.wake(run.state(), &son), "scanned the new address");

    // A Bitcoin block wakes it; with a deposit three deep it reports, and stays awake.
    let o = run.deposit(0, 10_000_000);
    run.btc.mine_n(3);
    assert!(trigger.wake(run.state(), &son), "the tip moved");
    for _ in 0..2 {
        let out = trigger.drafts(run.state(), &son).await.expect("drafts");
        assert_eq!(out.operations.len(), 1, "reported (again, while it has not landed)");
        assert!(trigger.wake(run.state(), &son), "what it sent has not landed");
    }
    assert_eq!(scans(), 4);

    // Once the SON's report landed (the network's own SON 1 sent it), nothing new: asleep.
    let end = run.net.now().plus(60);
    while !run.state().row::<Deposits>(&utxo_key(&o)).is_some_and(|d| d.reported_by(SonId(1))) {
        assert!(run.net.now() < end, "SON 1's report did not land");
        run.step_without_mining().await;
    }
    assert!(trigger.wake(run.state(), &son), "the deposits moved");
    assert!(trigger.drafts(run.state(), &son).await.expect("drafts").operations.is_empty());
    assert!(!trigger.wake(run.state(), &son), "reported, nothing moved since");

    // A view that cannot name its tip: asked every time.
    let blind = DepositReportTrigger::new(node_showing(&run, 1, 3));
    assert!(blind.drafts(run.state(), &son).await.expect("drafts").operations.is_empty());
    assert!(blind.wake(run.state(), &son), "no tip, no memory");
}

/// A remembered wake condition is worked out once per generation of the table it reads, and
/// again as soon as that table changes (a transaction to sign must wake the signers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_wake_condition_is_worked_out_again_when_its_table_changes() {
    use std::cell::Cell;
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    let memo = crate::node::WakeMemo::default();
    let asked = Cell::new(0);
    let pending_now = |st: &State| {
        asked.set(asked.get() + 1);
        crate::state::pending(st).next().is_some()
    };
    assert!(!memo.of::<Transactions>(run.state(), pending_now));
    assert!(!memo.of::<Transactions>(run.state(), pending_now));
    assert_eq!(asked.get(), 1, "the same table: remembered");
    // A deposit's sweep is created, to be signed: the table changed, the answer with it.
    let o = run.deposit(0, 10_000_000);
    run.until(1800, |st| deposit_sweep(st, &o).is_some()).await;
    assert!(crate::state::pending(run.state()).next().is_some(), "a sweep to sign");
    assert!(memo.of::<Transactions>(run.state(), pending_now));
    assert_eq!(asked.get(), 2);
}

/// The wallet-output trigger likewise: once a scan found nothing new it sleeps until its view's
/// tip moves, and what it found keeps it awake until it lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallet_output_trigger_scans_again_only_when_what_it_reads_moves() {
    let run = ready(judged(), 1, |_| Fault::Honest).await;
    let node = BitcoinNode { source: run.btc.view(Fault::Honest), ..node_showing(&run, 1, 0) };
    let trigger = crate::node::UtxoTrigger::new(node);
    let son = run.net.sons[1].clone();
    assert!(trigger.wake(run.state(), &son), "never scanned");
    let out = trigger.drafts(run.state(), &son).await.expect("drafts");
    assert!(out.drafts.is_empty(), "the reserve's output is recorded already");
    assert!(!trigger.wake(run.state(), &son), "nothing moved");
    // The SONs pay into the wallet; a Bitcoin block confirms it.
    let w = current_wallet(run.state()).expect("wallet").clone();
    run.btc.pay(&ScriptBuf::new_p2wsh(&w.script().wscript_hash()), 50_000);
    run.btc.mine();
    assert!(trigger.wake(run.state(), &son), "the tip moved");
    for _ in 0..2 {
        let out = trigger.drafts(run.state(), &son).await.expect("drafts");
        assert_eq!(out.drafts.len(), 1, "the new output, proposed (again, until it lands)");
        assert!(trigger.wake(run.state(), &son), "what it found has not landed");
    }
}

/// `explain` says when a deposit's sweep may be proposed: not for what is not a deposit or
/// was never reported, not while SONs below two thirds reported it, due once above, and not
/// again once it is being swept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposits_readiness_says_when_its_sweep_may_be_proposed() {
    use sonprop_core::{Readiness, Subject};
    let why = |st: &State, subject: &str| match st
        .explain(crate::DEPOSIT_PROCESS, &Subject::Named(subject.into()))
        .and_then(|k| k.readiness)
    {
        Some(Readiness::Due { why, .. }) => format!("due: {why}"),
        Some(Readiness::NotDue { why }) => format!("not due: {why}"),
        other => format!("{other:?}"),
    };
    // Three of six SONs see nothing: the others' reports stay below two thirds.
    let mut run =
        unfunded(judged(), 1, |i| if i >= 3 { Fault::Offline } else { Fault::Honest }).await;
    let o = run.deposit(0, 10_000_000);
    let subject = format!("bitcoin:deposit:{o}");
    assert_eq!(why(run.state(), "foo"), "None", "not a subject the kind is about");
    assert_eq!(why(run.state(), &subject), "None", "the chain knows nothing of it yet");
    run.btc.mine();
    run.hold(30).await;
    let said = why(run.state(), &subject);
    assert!(
        said.starts_with("not due: reported by SONs holding 3 of the wallet's weight 6"),
        "{said}"
    );
    // All see it: due, then being swept, not due again.
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    let o = run.deposit(0, 10_000_000);
    let subject = format!("bitcoin:deposit:{o}");
    run.until(1800, |st| deposit_status(st, &o) == Some(DepositStatus::Confirmed)).await;
    let said = why(run.state(), &subject);
    assert!(said.starts_with("due: reported by SONs above two thirds"), "{said}");
    run.until(1800, |st| deposit_sweep(st, &o).is_some()).await;
    assert!(why(run.state(), &subject).starts_with("not due: the deposit is sweeping"));
}

/// Every proposable bridge kind answers `explain` about its own subjects only, from the rule
/// its proposal's check applies: the wallet, the sweep, the breaker, and a withdrawal and its
/// payment as they go from pending to paying to signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bridge_kind_says_whether_it_is_due_about_its_own_subjects_only() {
    use crate::state::{TxStatus, WithdrawalStatus, Withdrawals};
    use crate::{RECONCILE, RESUME, SETTLE, TX_BUMP, WALLET_SWEEP, WALLET_UPDATE};
    use crate::{WITHDRAW_PROCESS, WITHDRAW_REFUND};
    use sonprop_core::{SonId, Subject};
    let named = |s: &str| Subject::Named(s.to_owned());
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    let o = run.deposit(0, 50_000_000);
    run.until(1800, |st| matches!(deposit_status(st, &o), Some(DepositStatus::Credited { .. })))
        .await;
    let st = run.state();
    let kinds: Vec<&str> = registry()
        .operations()
        .filter(|d| d.proposal.is_some() && d.name.starts_with("bitcoin_"))
        .map(|d| d.name)
        .collect();
    assert_eq!(kinds.len(), 10, "{kinds:?}");
    for kind in &kinds {
        assert_eq!(readiness_of(st, kind, Subject::Son(SonId(1))), "None", "{kind}");
        for foreign in ["foo", "bitcoin:withdrawal:7", "bitcoin:tx:7", "bitcoin:deposit:zz"] {
            assert_eq!(readiness_of(st, kind, named(foreign)), "None", "{kind} on {foreign}");
        }
    }
    let said = |st: &State, kind: &str, subject: &str| readiness_of(st, kind, named(subject));
    assert_eq!(
        said(st, WALLET_UPDATE, "bitcoin:wallet"),
        "not due: the elected SONs hold the current wallet 0"
    );
    assert_eq!(said(st, WALLET_SWEEP, "bitcoin:sweep"), "not due: no wallet holds outputs to move");
    assert_eq!(
        said(st, RESUME, "bitcoin:resume"),
        "not due: deposits and withdrawals are not paused"
    );
    let reconcile = said(st, RECONCILE, "bitcoin:reconcile");
    assert!(
        reconcile.starts_with("not due: raised only when the SONs see outputs the chain counts (2 outputs in 1 wallet)"),
        "{reconcile}"
    );

    run.withdraw(0, 20_000_000, None);
    let pending = |st: &State| {
        st.row::<Withdrawals>(&0).is_some_and(|w| w.status == WithdrawalStatus::Pending)
    };
    run.until(60, pending).await;
    let st = run.state();
    assert_eq!(
        said(st, WITHDRAW_PROCESS, "bitcoin:withdrawal:0"),
        "due: pending, and the primary wallet can pay it: its payment may be proposed"
    );
    assert_eq!(said(st, WITHDRAW_PROCESS, "bitcoin:refund:0"), "None", "the refund's subject");
    for subject in ["bitcoin:withdrawal:0", "bitcoin:refund:0"] {
        let refund = said(st, WITHDRAW_REFUND, subject);
        assert!(refund.starts_with("not due: no refund: 20000000 sat can pay its fee"), "{refund}");
    }

    let paying = |st: &State| matches!(withdrawal(st, 0).status, WithdrawalStatus::Paying { .. });
    run.until(600, paying).await;
    let st = run.state();
    let WithdrawalStatus::Paying { tx } = withdrawal(st, 0).status else { unreachable!() };
    let not_pending = format!("not due: withdrawal 0 is paying (sidechain tx {tx}), not pending");
    assert_eq!(said(st, WITHDRAW_PROCESS, "bitcoin:withdrawal:0"), not_pending);
    assert_eq!(said(st, WITHDRAW_REFUND, "bitcoin:withdrawal:0"), not_pending);
    let t = st.row::<Transactions>(&tx).expect("payment");
    assert_eq!(t.status, TxStatus::Valid, "signatures come after it is created");
    let of_tx = format!("bitcoin:tx:{tx}");
    assert_eq!(
        said(st, SETTLE, &of_tx),
        format!(
            "not due: sidechain tx {tx} is collecting signatures (0 of the {} weight it needs)",
            t.threshold
        )
    );
    assert_eq!(
        said(st, TX_BUMP, &of_tx),
        format!("not due: sidechain tx {tx} is valid; only a signed one is bumped")
    );

    let signed = |st: &State| {
        st.row::<Transactions>(&tx)
            .is_some_and(|t| matches!(t.status, TxStatus::Complete | TxStatus::Sent { .. }))
    };
    run.until(600, signed).await;
    let st = run.state();
    let t = st.row::<Transactions>(&tx).expect("payment");
    for subject in [of_tx.clone(), format!("bitcoin:settle:{tx}")] {
        assert_eq!(
            said(st, SETTLE, &subject),
            format!(
                "not due: sidechain tx {tx} is signed (as {}): its settlement waits for the SONs \
                 to see it with 1 confirmation on Bitcoin",
                t.bitcoin_txid
            )
        );
    }
    let timeout = st.param::<crate::state::ConfirmTimeout>();
    let at = t.completed.expect("completed").plus(timeout).secs();
    assert_eq!(
        said(st, TX_BUMP, &format!("bitcoin:bump:{tx}")),
        format!(
            "due at {at}: re-signed at a higher fee rate when unsettled \
             bitcoin.confirm_timeout ({timeout} s) after it was signed"
        )
    );
}

/// The wallet, sweep and fee-bump triggers sleep on an idle bridge, however many chain blocks
/// pass (their wake conditions are remembered, not worked out on every node every block).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallet_sweep_and_bump_triggers_sleep_while_the_bridge_is_idle() {
    use crate::node::{BumpTrigger, SweepTrigger, WalletTrigger};
    let mut run = unfunded_with(builder(3).users(3), judged(), |_| Fault::Honest).await;
    assert!(current_wallet(run.state()).is_some(), "the SONs' wallet exists");
    let node = node_showing(&run, 1, 0);
    let son = run.net.sons[1].clone();
    let wallet = WalletTrigger::new(node.clone());
    let (sweep, bump) = (SweepTrigger::new(node.clone()), BumpTrigger::new(node));
    for _ in 0..3 {
        assert!(!wallet.wake(run.state(), &son), "the wallet is the one expected");
        assert!(!sweep.wake(run.state(), &son), "nothing to sweep");
        assert!(!bump.wake(run.state(), &son), "nothing to bump");
        run.hold(3).await;
    }
}

/// A keyed memo gives back what it remembered for an equal key, and works it out again for
/// another.
#[test]
fn a_keyed_memo_works_a_value_out_again_only_for_another_key() {
    let memo = crate::node::KeyedMemo::default();
    let calls = std::cell::Cell::new(0);
    let value = |v: bool| {
        calls.set(calls.get() + 1);
        v
    };
    assert!(memo.get(1, || value(true)));
    assert!(memo.get(1, || value(false)), "the same key: remembered");
    assert!(!memo.get(2, || value(false)), "another key: worked out again");
    assert!(!memo.get(2, || value(true)), "remembered again");
    assert_eq!(calls.get(), 2);
}

/// The fee-bump trigger wakes exactly when a sent transaction's `bitcoin.confirm_timeout` has
/// passed: asleep one block before, awake at it (its first deadline is remembered, the clock
/// is not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bump_trigger_wakes_exactly_at_the_confirm_timeout() {
    use crate::node::BumpTrigger;
    let b = builder(1).plugin_param("bitcoin.confirm_timeout", serde_json::json!(600));
    let (mut run, _, first) = a_sweep_stuck_below_the_miners_floor(b).await;
    let deadline = first.completed.unwrap_or(first.created).plus(600);
    let trigger = BumpTrigger::new(node_showing(&run, 1, 0));
    let son = run.net.sons[1].clone();
    while run.state().head_time() < deadline.minus(3) {
        run.step_without_mining().await;
        assert!(!trigger.wake(run.state(), &son), "before the timeout");
    }
    assert_eq!(run.state().head_time(), deadline.minus(3), "on the block grid");
    run.step_without_mining().await;
    assert!(trigger.wake(run.state(), &son), "at the timeout");
}

/// The conservation equation's fingerprint moves with a block that writes only a Bitcoin
/// table (a deposit key registered: no asset or balance written), so the equation is checked
/// again after it, not only after blocks that move PBTC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conservation_fingerprint_moves_with_a_write_to_the_bridges_tables_alone() {
    use crate::state::{conservation_inputs, DepositKeys};
    let mut run = unfunded_with(builder(3).users(3), judged(), |_| Fault::Honest).await;
    let untouched = |st: &State| (st.assets().generation(), st.balances().generation());
    let (before, core) = (conservation_inputs(run.state()), untouched(run.state()));
    run.register(2);
    run.step_without_mining().await;
    assert!(run.state().row::<DepositKeys>(&run.net.users[2].account).is_some());
    assert_eq!(untouched(run.state()), core, "no asset or balance was written");
    assert_ne!(conservation_inputs(run.state()), before);
}
