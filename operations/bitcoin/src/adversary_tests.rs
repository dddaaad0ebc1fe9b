//! The bridge against adversaries and accidents, each a test that fails without its rule: a
//! broadcast lost after `Sent`, a SON that bundles its completing signature with a false
//! `Sent`, fees that spike (replace-by-fee, and a bump nobody signs), a reorganisation deeper
//! than the confirmations (reconciliation and the circuit breaker), a recorded output that
//! vanished under a payment, a dust deposit, and a wallet fragmented by many small deposits.

use std::sync::Arc;

use bitcoin::ScriptBuf;
use sonprop_core::chain::ops::ProposalUpdate;
use sonprop_core::node::scheduler::SchedulerConfig;
use sonprop_core::testkit::{NetworkBuilder, TestNetwork};
use sonprop_core::{Operation, Services, SonId, Subject, Transaction};

use crate::node::{BitcoinNode, BitcoinSource};
use crate::ops::{BumpAbandoned, FailTx, SentTx, SignTx, TxBumped};
use crate::reconcile::{alarms, Reconciled, Resume};
use crate::sim::{Fault, SimBitcoin};
use crate::state::{
    books, conservation, current_wallet, paused, utxo_key, wallet_utxos, DepositStatus, Purpose,
    SidechainTx, Transactions, TxStatus, WithdrawalStatus, Withdrawals,
};
use crate::test_support::*;
use crate::tx;

fn txs(run: &Run) -> Vec<SidechainTx> {
    run.state().rows::<Transactions>().map(|(_, t)| t.clone()).collect()
}

/// An honest view's confirmations of `txid`.
fn confirmations(run: &Run, txid: &bitcoin::Txid) -> u32 {
    run.btc.view(Fault::Honest).confirmations(txid).ok().flatten().unwrap_or(0)
}

/// A broadcast that got lost after the SON on duty reported the transaction sent (its node was
/// cut off from its peers): every SON re-broadcasts a signed transaction its own view does not
/// hold, so it still reaches Bitcoin and settles. (`Sent` used to be a dead end: only complete
/// transactions were broadcast.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_lost_after_sent_is_sent_again_until_it_settles() {
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    let o = run.deposit(0, 10_000_000);
    run.until(1800, |st| {
        st.rows::<Transactions>().any(|(_, t)| matches!(t.purpose, Purpose::Deposit { .. }))
    })
    .await;
    run.btc.lose_broadcasts(true);
    run.until(600, |st| {
        st.rows::<Transactions>().any(|(_, t)| matches!(t.status, TxStatus::Sent { .. }))
    })
    .await;
    let t = deposit_sweep(run.state(), &o).expect("the sweep");
    let txid: bitcoin::Txid = t.bitcoin_txid.parse().expect("txid");
    run.run_for(120).await;
    assert!(!run.btc.knows(&txid), "reported sent, yet Bitcoin never received it");
    run.btc.lose_broadcasts(false);
    run.until(1800, |st| matches!(deposit_status(st, &o), Some(DepositStatus::Credited { .. })))
        .await;
    assert!(run.btc.knows(&txid));
    assert!(run.btc.rejected().is_empty(), "{:?}", run.btc.rejected());
}

/// A network whose SON nodes 4 and 5 hold keys other than their SONs' (they sign nothing), so
/// the four others (weight 4) are one short of the wallet's threshold of 5.
fn short_of_signers(b: NetworkBuilder, btc: &SimBitcoin) -> TestNetwork {
    let mut net = b.clone().build(registry());
    let btc = btc.clone();
    net.start_schedulers_with(SchedulerConfig::for_tests(), move |node| match node.son {
        Some(son) => {
            let name = if son.0 >= 4 { "not-a-son" } else { node.name.as_str() };
            Services::new().with(BitcoinNode {
                source: btc.view(Fault::Honest) as Arc<dyn BitcoinSource>,
                key: b.sidechain_key(name, "bitcoin").secret_key(),
                fee_band_percent: 25,
                retired_keys: Vec::new(),
            })
        }
        None => Services::new(),
    })
    .expect("services");
    net
}

/// One SON whose signature completes a transaction bundles it with a false `Sent` and never
/// broadcasts: the others re-broadcast it, and it settles. Nothing one SON does after signing
/// can freeze a transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_son_bundling_its_completing_signature_with_a_false_sent_cannot_freeze_it() {
    let btc = judged();
    let net = short_of_signers(builder(1), &btc);
    let mut run = Run { net, btc, steps: 0, events: Vec::new() };
    run.until(60, |st| current_wallet(st).is_some()).await;
    run.register(0);
    run.register(1);
    let w = current_wallet(run.state()).expect("wallet").clone();
    run.btc.pay(&ScriptBuf::new_p2wsh(&w.script().wscript_hash()), 100_000);
    run.until(600, |st| wallet_utxos(st, 0).len() == 1).await;
    let o = run.deposit(0, 10_000_000);
    run.until(1800, |st| {
        st.rows::<Transactions>()
            .any(|(_, t)| matches!(t.purpose, Purpose::Deposit { .. }) && t.signed_weight == 4)
    })
    .await;
    // SON 4 signs last, in one transaction with a report that it broadcast the result.
    let t = deposit_sweep(run.state(), &o).expect("the sweep");
    let liar = run.net.sons[4].clone();
    let key = TestNetwork::builder().sidechain_key("son-4", "bitcoin").secret_key();
    let unsigned = tx::from_hex(&t.unsigned_tx).expect("tx");
    let script = crate::ops::spent_script(&t, &w).expect("script");
    let sig = tx::sign_input(&unsigned, 0, &script, t.inputs[0].amount_sat, &key).expect("sig");
    let sign = SignTx {
        tx: t.id,
        son: SonId(4),
        owner: liar.account,
        signatures: vec![sonprop_core::chain::crypto::hex(&sig)],
    };
    let sent =
        SentTx { tx: t.id, txid: t.bitcoin_txid.clone(), son: SonId(4), owner: liar.account };
    let st = run.state();
    let bundle = Transaction {
        expiration: st.head_time().plus(30),
        operations: vec![Box::new(sign) as Box<dyn Operation>, Box::new(sent)],
    }
    .sign(&st.chain_id(), &[&liar.keys]);
    run.net.submit(bundle);
    run.step_without_mining().await;
    let now = deposit_sweep(run.state(), &o).expect("the sweep");
    assert!(matches!(now.status, TxStatus::Sent { .. }), "{:?}", now.status);
    run.until(1800, |st| matches!(deposit_status(st, &o), Some(DepositStatus::Credited { .. })))
        .await;
    assert!(run.btc.rejected().is_empty(), "{:?}", run.btc.rejected());
}

/// Fees spike after a sweep is broadcast at 4 sat/vB: miners take nothing below 30. Once
/// `bitcoin.confirm_timeout` passed, the SONs replace it by the same transaction at their new
/// estimate (replace-by-fee: its sequences signal it), sign that on chain, broadcast it, and
/// it settles — the user credited what the new version brought in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_transaction_is_fee_bumped_by_replace_by_fee_and_settles() {
    let b = builder(1).plugin_param("bitcoin.confirm_timeout", serde_json::json!(600));
    let (mut run, o, first) = a_sweep_stuck_below_the_miners_floor(b).await;
    assert_eq!(first.fee_rate, 4);
    let old: bitcoin::Txid = first.bitcoin_txid.parse().expect("txid");
    assert!(run.btc.in_mempool(&old), "waiting below the miners' floor");
    run.btc.set_fee_rate(40);
    run.until(1800, |st| matches!(deposit_status(st, &o), Some(DepositStatus::Credited { .. })))
        .await;
    let t = deposit_sweep(run.state(), &o).expect("the sweep");
    assert_eq!(t.replaced.len(), 1, "replaced once");
    assert_eq!(t.replaced[0].txid, first.bitcoin_txid);
    assert_eq!(t.fee_rate, 40);
    assert_eq!(t.status, TxStatus::Settled { txid: t.bitcoin_txid.clone() });
    assert!(!run.btc.knows(&old), "the first version was replaced on Bitcoin");
    let bumped = run.events.iter().find_map(|e| e.decode::<TxBumped>()).expect("event");
    assert_eq!((bumped.tx, bumped.fee_rate), (t.id, 40));
    // The user bears the higher fee: credited the new version's output less the carry.
    let Purpose::Deposit { carry_sat, .. } = t.purpose else { unreachable!() };
    let out = tx::from_hex(&t.unsigned_tx).expect("tx").output[0].value.to_sat();
    let out_first = tx::from_hex(&first.unsigned_tx).expect("tx").output[0].value.to_sat();
    assert!(out < out_first);
    assert_eq!(run.balance(0), out - carry_sat);
    // Every input of every version signals replace-by-fee.
    assert!(tx::from_hex(&t.unsigned_tx).expect("tx").input.iter().all(|i| i.sequence.is_rbf()));
    assert!(run.btc.rejected().is_empty(), "{:?}", run.btc.rejected());
}

/// A fee bump the SONs do not sign before its deadline gives way to the version they did sign,
/// which Bitcoin may still confirm; it is not failed (that would hand back inputs a signed
/// transaction still spends). When Bitcoin mines it, it settles under that txid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fee_bump_not_signed_in_time_gives_way_to_the_signed_version() {
    let b = builder(1)
        .plugin_param("bitcoin.confirm_timeout", serde_json::json!(600))
        .plugin_param("bitcoin.sign_timeout", serde_json::json!(300));
    let (mut run, o, first) = a_sweep_stuck_below_the_miners_floor(b).await;
    run.btc.set_fee_rate(40);
    // Stop every SON once the bump is proposed and approved, before anyone signs it.
    let subject = Subject::Named(format!("bitcoin:bump:{}", first.id));
    run.until(1800, |st| st.live_proposal(crate::TX_BUMP, &subject).is_some()).await;
    for i in 0..7 {
        run.net.set_son_up(i, false);
    }
    run.until(60, |st| st.row::<Transactions>(&first.id).is_some_and(|t| t.replaced.len() == 1))
        .await;
    run.hold(320).await;
    let t = deposit_sweep(run.state(), &o).expect("the sweep");
    assert_eq!(t.status, TxStatus::Valid, "the bump was not signed");
    // Past its deadline, the bump gives way to the signed version.
    let son = run.net.sons[0].clone();
    let fail = FailTx { tx: t.id, son: SonId(0), owner: son.account };
    let signed = run.net.sign(&son, fail);
    run.net.submit(signed);
    run.step_without_mining().await;
    let t = deposit_sweep(run.state(), &o).expect("the sweep");
    assert_eq!(t.status, TxStatus::Complete);
    assert_eq!(t.bitcoin_txid, first.bitcoin_txid);
    assert!(t.replaced.is_empty());
    assert!(run.events.iter().any(|e| e.decode::<BumpAbandoned>().is_some()));
    assert!(matches!(deposit_status(run.state(), &o), Some(DepositStatus::Sweeping { .. })));
    for i in 0..7 {
        run.net.set_son_up(i, true);
    }
    run.btc.set_fee_rate(4);
    run.btc.set_mining_floor(0);
    run.until(1800, |st| matches!(deposit_status(st, &o), Some(DepositStatus::Credited { .. })))
        .await;
    let t = deposit_sweep(run.state(), &o).expect("the sweep");
    assert_eq!(t.status, TxStatus::Settled { txid: first.bitcoin_txid.clone() });
}

/// A deposit credited, then a reorganisation deeper than `bitcoin.min_confirmations` takes the
/// payment away (the payer double-spent it), and the sweep with it: the wallet output the chain
/// counts no longer exists. SONs above two thirds see it gone and reconcile: the loss is
/// recorded, the deficit is chain state, the conservation equation counts it, and deposits and
/// withdrawals pause, saying why, until the SONs make the deficit good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorganisation_deeper_than_the_confirmations_is_reconciled_and_pauses_the_bridge() {
    let (mut run, lost) = deficit_after_a_deep_reorg().await;
    let st = run.state();
    let c = conservation(st).expect("the equation holds, counting the loss");
    let b = books(st);
    assert_eq!(b.lost_sat, lost);
    assert!(c.deficit_sat > 9_000_000, "{c:?}");
    assert_eq!(c.deficit_sat, b.deficit_sat());
    let why = paused(st).expect("paused");
    assert!(why.contains("unbacked"), "{why}");
    assert!(alarms(st).iter().any(|a| a.contains("paused")), "{:?}", alarms(st));
    let r = run.events.iter().find_map(|e| e.decode::<Reconciled>()).expect("event");
    let expected = Reconciled {
        outputs: 1,
        lost_sat: lost,
        failed_txs: Vec::new(),
        deposits: 0,
        deficit_sat: c.deficit_sat,
        paused: true,
    };
    assert_eq!(r, expected, "the sweep's output, recorded in the wallet, is what vanished");
    // What the chain counts in the wallet is what Bitcoin holds there.
    let w = current_wallet(st).expect("wallet");
    let on_chain: u64 = wallet_utxos(st, w.id).iter().map(|(_, a)| a).sum();
    assert_eq!(on_chain, run.btc.balance(&ScriptBuf::new_p2wsh(&w.script().wscript_hash())));

    // Paused: user 0's withdrawal waits, user 1's new deposit is confirmed but not swept, and
    // the triggers say why.
    run.withdraw(0, 1_000_000, None);
    let o = run.deposit(1, 5_000_000);
    run.run_for(900).await;
    let st = run.state();
    assert_eq!(withdrawal(st, 0).status, WithdrawalStatus::Pending);
    assert_eq!(deposit_status(st, &o), Some(DepositStatus::Confirmed));
    let proposal = crate::flows::expected_deposit_sweep(st, &o.to_string(), 4).expect("builds");
    let deferred = st.deferral(crate::DEPOSIT_PROCESS, &proposal.subject().expect("subject"));
    assert!(deferred.is_some_and(|(g, _)| g == "bitcoin-breaker"));
    // A withdrawal too small to pay its fee is refunded all the same: a refund depends on its
    // own withdrawal only, not on the deposit waiting for its sweep.
    run.withdraw(0, 600, None);
    run.until(600, |st| {
        st.row::<Withdrawals>(&1)
            .is_some_and(|w| matches!(w.status, WithdrawalStatus::Refunded { .. }))
    })
    .await;
    assert_eq!(deposit_status(run.state(), &o), Some(DepositStatus::Confirmed), "still waiting");

    // The SONs make it good: they pay the deficit into the wallet, it is recorded as reserve,
    // and the bridge resumes by itself.
    let deficit = books(run.state()).deficit_sat();
    let w = current_wallet(run.state()).expect("wallet").clone();
    run.btc.pay(&ScriptBuf::new_p2wsh(&w.script().wscript_hash()), deficit);
    run.until(1800, |st| paused(st).is_none()).await;
    run.until(1800, |st| {
        matches!(deposit_status(st, &o), Some(DepositStatus::Credited { .. }))
            && matches!(withdrawal(st, 0).status, WithdrawalStatus::Paid { .. })
    })
    .await;
    assert!(alarms(run.state()).is_empty());
}

/// The same deficit, accepted by the SONs' operators: a `bitcoin_resume` proposal that no node
/// approves by itself, approved by hand above the threshold, lifts the pause for that deficit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sons_can_accept_a_deficit_and_resume_by_hand() {
    let (mut run, _) = deficit_after_a_deep_reorg().await;
    let deficit = books(run.state()).deficit_sat();
    // A resume naming another deficit is refused.
    let wrong = Resume { deficit_sat: deficit + 1 };
    assert!(crate::reconcile::check_resume(run.state(), &wrong).is_err());
    let son0 = run.net.sons[0].clone();
    let st = run.state();
    let create = sonprop_core::chain::ops::ProposalCreate {
        proposer: son0.account,
        expiration_time: st.head_time().plus(st.witness_cycles_lifetime(3)),
        review_period_seconds: None,
        operations: vec![Box::new(Resume { deficit_sat: deficit })],
    };
    let tx = run.net.sign(&son0, create);
    run.net.submit(tx);
    run.step_without_mining().await;
    let subject = Subject::Named("bitcoin:resume".into());
    let id = run.state().live_proposal(crate::RESUME, &subject).expect("raised");
    run.run_for(9).await;
    assert!(run.state().proposal(id).is_some(), "no node approves a resume by itself");
    assert!(paused(run.state()).is_some());
    for i in 0..5 {
        let son = run.net.sons[i].clone();
        let tx = run.net.sign(&son, ProposalUpdate::approve(id, son.account));
        run.net.submit(tx);
    }
    run.step_without_mining().await;
    assert!(paused(run.state()).is_none(), "resumed");
    assert_eq!(books(run.state()).lifted_sat, deficit);
    // What the wallet still holds (the SONs' 100 000 sat reserve output) pays withdrawals again.
    run.withdraw(0, 50_000, None);
    run.until(1800, |st| {
        st.row::<Withdrawals>(&0).is_some_and(|w| matches!(w.status, WithdrawalStatus::Paid { .. }))
    })
    .await;
}

/// A run in which a credited deposit was reorganised away and reconciled: the run, and the
/// satoshis lost.
async fn deficit_after_a_deep_reorg() -> (Run, u64) {
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    let o = run.deposit(0, 10_000_000);
    run.until(1800, |st| matches!(deposit_status(st, &o), Some(DepositStatus::Credited { .. })))
        .await;
    let sweep = deposit_sweep(run.state(), &o).expect("the sweep");
    let lost = tx::from_hex(&sweep.unsigned_tx).expect("tx").output[0].value.to_sat();
    let depth = confirmations(&run, &o.txid) as usize;
    assert!(depth >= 2, "deeper than bitcoin.min_confirmations (1)");
    assert!(run.btc.reorg(depth) >= 1, "the payment vanishes, and its sweep with it");
    run.until(600, |st| paused(st).is_some()).await;
    (run, lost)
}

/// The SONs' reserve output, recorded at one confirmation, vanishes in a reorganisation after a
/// withdrawal payment took it as an input: Bitcoin refuses the payment for ever. The SONs
/// reconcile: the payment fails, its vanished input is recorded lost (out of the reserve, so
/// no PBTC goes unbacked), and the withdrawal is paid from what remains. (It used to stay
/// complete for ever, every broadcast refused.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_spending_a_vanished_output_fails_and_the_withdrawal_is_paid_from_the_rest() {
    let mut run = unfunded(judged(), 1, |_| Fault::Honest).await;
    let o = run.deposit(0, 20_000_000);
    run.until(1800, |st| matches!(deposit_status(st, &o), Some(DepositStatus::Credited { .. })))
        .await;
    let w = current_wallet(run.state()).expect("wallet").clone();
    let reserve = run.btc.pay(&ScriptBuf::new_p2wsh(&w.script().wscript_hash()), 50_000_000);
    run.until(600, |st| st.row::<crate::state::Utxos>(&utxo_key(&reserve)).is_some()).await;
    run.withdraw(0, 15_000_000, None);
    run.until(600, |st| {
        st.rows::<Transactions>().any(|(_, t)| matches!(t.purpose, Purpose::Withdrawal { .. }))
    })
    .await;
    let payment = txs(&run)
        .into_iter()
        .find(|t| matches!(t.purpose, Purpose::Withdrawal { .. }))
        .expect("payment");
    assert!(payment.inputs.iter().any(|i| i.outpoint == reserve.to_string()), "largest first");
    run.btc.reorg(confirmations(&run, &reserve.txid).max(1) as usize);
    run.until(1800, |st| {
        st.row::<Withdrawals>(&0).is_some_and(|w| matches!(w.status, WithdrawalStatus::Paid { .. }))
    })
    .await;
    let st = run.state();
    let failed = st.row::<Transactions>(&payment.id).expect("tx");
    assert!(
        matches!(&failed.status, TxStatus::Failed { reason } if reason.contains("vanished")),
        "{:?}",
        failed.status
    );
    let b = books(st);
    assert_eq!(b.lost_sat, 50_000_000);
    assert_eq!(b.deficit_sat(), 0, "the reserve took the loss");
    assert!(paused(st).is_none());
    let refused = run.btc.rejected();
    assert!(refused.len() < 20, "refused until reconciled, then no more: {}", refused.len());
}

/// A 1 000-sat deposit is recorded too small, with the reason, and never swept; it blocks no
/// one: another user's withdrawal too small to pay its own fee is still refunded. (Any confirmed
/// deposit used to hold every refund back, and a dust one stayed confirmed for ever.) With the
/// minimum lowered, a deposit that cannot pay its sweep and carry is refused for that reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dust_deposit_is_recorded_too_small_and_holds_no_refund_back() {
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    let good = run.deposit(0, 10_000_000);
    run.until(1800, |st| matches!(deposit_status(st, &good), Some(DepositStatus::Credited { .. })))
        .await;
    let dust = run.deposit(1, 1_000);
    run.until(600, |st| matches!(deposit_status(st, &dust), Some(DepositStatus::TooSmall { .. })))
        .await;
    let Some(DepositStatus::TooSmall { reason }) = deposit_status(run.state(), &dust) else {
        unreachable!()
    };
    assert!(reason.contains("bitcoin.min_deposit_sat"), "{reason}");
    run.withdraw(0, 600, None);
    run.until(1800, |st| {
        st.row::<Withdrawals>(&0).is_some_and(|w| w.status != WithdrawalStatus::Pending)
    })
    .await;
    assert!(matches!(withdrawal(run.state(), 0).status, WithdrawalStatus::Refunded { .. }));
    assert!(deposit_sweep(run.state(), &dust).is_none(), "never swept");

    let b = builder(1).plugin_param("bitcoin.min_deposit_sat", serde_json::json!(0));
    let mut run = unfunded_with(b, judged(), |_| Fault::Honest).await;
    let small = run.deposit(0, 3_000);
    run.until(600, |st| matches!(deposit_status(st, &small), Some(DepositStatus::TooSmall { .. })))
        .await;
    let Some(DepositStatus::TooSmall { reason }) = deposit_status(run.state(), &small) else {
        unreachable!()
    };
    assert!(reason.contains("carry"), "{reason}");
}

/// Sixty small deposits fragment the wallet: past `bitcoin.consolidate_above` (20 here) the
/// SONs merge the smallest outputs, paid by what the deposits carried; a SON replaced mid-way
/// moves the wallet and its outputs follow in a sweep; a withdrawal of most of the funds is
/// paid. Every broadcast is standard (the simulated Bitcoin refuses what a Bitcoin Core node's
/// mempool would) and valid (Bitcoin Core's interpreter), and the reserve is never short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_deposits_are_consolidated_and_moved_in_standard_batches() {
    let b = builder(1).plugin_param("bitcoin.consolidate_above", serde_json::json!(20));
    let mut run = unfunded_with(b, judged(), |_| Fault::Honest).await;
    let mut made = Vec::new();
    // What `explain bitcoin:sweep` says along the way.
    let sweep = sonprop_core::Subject::Named("bitcoin:sweep".into());
    let mut said = std::collections::BTreeSet::new();
    for round in 0..60 {
        made.push(run.deposit(round % 2, 30_000 + round as u64));
        if round == 30 {
            run.net.set_son_up(5, false);
        }
        for _ in 0..10 {
            run.step().await;
            assert!(alarms(run.state()).is_empty(), "{:?}", alarms(run.state()));
            said.insert(readiness_of(run.state(), crate::WALLET_SWEEP, sweep.clone()));
        }
    }
    run.until(4 * 3600, |st| {
        said.insert(readiness_of(st, crate::WALLET_SWEEP, sweep.clone()));
        made.iter().all(|o| matches!(deposit_status(st, o), Some(DepositStatus::Credited { .. })))
            && current_wallet(st).is_some_and(|w| w.id == 1)
            && wallet_utxos(st, 0).is_empty()
            && crate::state::unsettled(st).next().is_none()
    })
    .await;
    let st = run.state();
    let consolidations = txs(&run)
        .into_iter()
        .filter(|t| matches!(t.purpose, Purpose::Sweep { from, to } if from == to))
        .count();
    assert!(consolidations >= 1, "consolidated");
    let consolidation = "due: wallet 0 holds more outputs than bitcoin.consolidate_above: they \
                         may be consolidated";
    assert!(said.contains(consolidation), "{said:#?}");
    let moved = "due: wallet 0 still holds outputs: they may be swept into wallet 1";
    assert!(said.contains(moved), "{said:#?}");
    let held = wallet_utxos(st, 1);
    assert!(held.len() <= 21, "{} outputs", held.len());
    // A withdrawal of nearly everything user 0 holds is paid.
    let amount = run.balance(0) - 1_000;
    run.withdraw(0, amount, None);
    run.until(3600, |st| {
        st.row::<Withdrawals>(&0).is_some_and(|w| matches!(w.status, WithdrawalStatus::Paid { .. }))
    })
    .await;
    assert!(run.btc.rejected().is_empty(), "{:?}", run.btc.rejected());
    for t in run.btc.accepted() {
        assert!(t.weight().to_wu() <= tx::MAX_STANDARD_WEIGHT, "{}", t.weight());
        assert!(t.input.len() <= tx::MAX_TX_INPUTS);
    }
}

/// A deposit whose payment vanishes (the payer double-spent it in a reorganisation deeper than
/// `bitcoin.min_confirmations`) while its sweep waits in the mempool: the SONs reconcile, the
/// sweep fails, the deposit is marked vanished and credits nobody; the wallet lost nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_vanishing_under_its_sweep_fails_the_sweep_and_credits_nobody() {
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    run.btc.set_mining_floor(30);
    let o = run.deposit(0, 10_000_000);
    run.until(1800, |st| {
        deposit_sweep(st, &o).is_some_and(|t| matches!(t.status, TxStatus::Sent { .. }))
    })
    .await;
    let sweep = deposit_sweep(run.state(), &o).expect("the sweep");
    let depth = confirmations(&run, &o.txid) as usize;
    assert!(run.btc.reorg(depth) >= 1, "the payment vanishes");
    run.btc.set_mining_floor(0);
    run.until(1800, |st| matches!(deposit_status(st, &o), Some(DepositStatus::Vanished))).await;
    let st = run.state();
    let failed = st.row::<Transactions>(&sweep.id).expect("tx");
    assert!(matches!(&failed.status, TxStatus::Failed { reason } if reason.contains("vanished")));
    let r = run.events.iter().find_map(|e| e.decode::<Reconciled>()).expect("event");
    let expected = Reconciled {
        outputs: 0,
        lost_sat: 0,
        failed_txs: vec![sweep.id],
        deposits: 1,
        deficit_sat: 0,
        paused: false,
    };
    assert_eq!(r, expected);
    assert_eq!(run.balance(0), 0, "credited nothing");
    assert!(paused(st).is_none());
}

/// A confirmed deposit nobody has swept yet (no SON runs the deposit-sweep kind here) vanishes
/// in a reorganisation: the SONs reconcile it as a vanished deposit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_deposit_vanishing_before_its_sweep_is_recorded_vanished() {
    let btc = judged();
    let b = builder(1);
    let mut net = b.clone().build(crate::test_support::registry());
    let views: Vec<_> = (0..7).map(|_| btc.view(Fault::Honest)).collect();
    let config = sonprop_core::node::scheduler::SchedulerConfig {
        disabled: [crate::DEPOSIT_PROCESS].into(),
        ..sonprop_core::node::scheduler::SchedulerConfig::for_tests()
    };
    net.start_schedulers_with(config, move |node| match node.son {
        Some(son) => sonprop_core::Services::new().with(crate::node::BitcoinNode {
            source: views[son.0 as usize].clone(),
            key: b.sidechain_key(&node.name, "bitcoin").secret_key(),
            fee_band_percent: 25,
            retired_keys: Vec::new(),
        }),
        None => sonprop_core::Services::new(),
    })
    .expect("services");
    let mut run = crate::test_support::started(net, btc).await;
    let o = run.deposit(0, 10_000_000);
    run.until(1800, |st| matches!(deposit_status(st, &o), Some(DepositStatus::Confirmed))).await;
    let depth = confirmations(&run, &o.txid) as usize;
    assert!(run.btc.reorg(depth) >= 1, "the payment vanishes");
    run.until(1800, |st| matches!(deposit_status(st, &o), Some(DepositStatus::Vanished))).await;
    let r = run.events.iter().find_map(|e| e.decode::<Reconciled>()).expect("event");
    let expected = Reconciled {
        outputs: 0,
        lost_sat: 0,
        failed_txs: Vec::new(),
        deposits: 1,
        deficit_sat: 0,
        paused: false,
    };
    assert_eq!(r, expected);
}
