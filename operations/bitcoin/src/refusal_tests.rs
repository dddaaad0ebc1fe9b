//! Refusals and boundaries mutation testing found unguarded: a fee bump before it is due, at a
//! rate no higher, or rebuilt otherwise; a sweep the reserve cannot pay by one satoshi; SON
//! proposals whose stateful check fails refused at creation, and one submitted without the
//! SON consensus authority; deposits at the minimum and at what their sweep and carry cost; the
//! events' lines.

use sonprop_core::chain::ops::ProposalCreate;
use sonprop_core::{AccountId, LedgerError, Operation, OperationError, State, Transaction};

use crate::flows::{carry_sat, too_small, DepositTooSmall};
use crate::ops::{
    check_bump, rebuilt, reserve_covers, BitcoinError, BumpAbandoned, BumpTx, SettleTx,
    SweepCreated, TxBumped, TxSettled, WalletCreated, WalletSweep,
};
use crate::sim::Fault;
use crate::state::{books, current_wallet, Claim};
use crate::test_support::{builder, judged, ready, unfunded_with, Run};
use crate::tx;

fn bitcoin_error(e: &OperationError) -> &BitcoinError {
    e.rule_source::<BitcoinError>().unwrap_or_else(|| panic!("not a bitcoin rule: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fee_bump_is_refused_before_it_is_due_at_a_rate_no_higher_or_rebuilt_otherwise() {
    let b = builder(1).plugin_param("bitcoin.confirm_timeout", serde_json::json!(600));
    let (mut run, _, t) = crate::test_support::a_sweep_stuck_below_the_miners_floor(b).await;
    let due = t.completed.expect("complete").plus(600);
    let bump = |st: &State, rate: u64| BumpTx {
        tx: t.id,
        fee_rate: rate,
        unsigned_tx: rebuilt(st, &t, rate).expect("rebuilds"),
    };
    run.hold(due.since(run.net.now()) - 3).await;
    let st = run.state();
    assert_eq!(st.head_time(), due.minus(3));
    assert_eq!(check_bump(st, &bump(st, 40)), Err(BitcoinError::BumpNotDue { tx: t.id, at: due }));
    run.step_without_mining().await;
    let st = run.state();
    assert_eq!(st.head_time(), due);
    assert_eq!(check_bump(st, &bump(st, 40)), Ok(()), "due at the timeout itself");
    let same = bump(st, t.fee_rate);
    assert_eq!(check_bump(st, &same), Err(BitcoinError::BumpTooLow { rate: 4, current: 4 }));
    check_bump(st, &bump(st, 5)).expect("one sat/vB higher");
    let max = st.param::<crate::state::MaxFeeRate>();
    let too_high = BumpTx { fee_rate: max + 1, ..bump(st, 40) };
    assert_eq!(
        check_bump(st, &too_high),
        Err(BitcoinError::FeeRate { rate: max + 1, min: 1, max })
    );
    let other = BumpTx { unsigned_tx: rebuilt(st, &t, 41).expect("rebuilds"), ..bump(st, 40) };
    assert_eq!(check_bump(st, &other), Err(BitcoinError::TxMismatch));
    let unknown = BumpTx { tx: 999, ..bump(st, 40) };
    assert_eq!(check_bump(st, &unknown), Err(BitcoinError::UnknownTx(999)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reserve_pays_a_fee_up_to_its_last_satoshi_and_not_one_more() {
    let run = ready(judged(), 1, |_| Fault::Honest).await;
    let st = run.state();
    let reserve = books(st).reserve_sat();
    assert_eq!(reserve, 100_000);
    assert_eq!(reserve_covers(st, reserve), Ok(()));
    assert_eq!(
        reserve_covers(st, reserve + 1),
        Err(BitcoinError::ReserveShort { fee: reserve + 1, reserve })
    );
}

/// `op` proposed by SON 0: the ledger's verdict on the proposal.
async fn propose(run: &mut Run, op: impl Operation + 'static) -> Result<(), LedgerError> {
    let son = run.net.sons[0].clone();
    let st = run.state();
    let create = ProposalCreate {
        proposer: son.account,
        expiration_time: st.head_time().plus(24),
        review_period_seconds: None,
        operations: vec![Box::new(op)],
    };
    let signed = run.net.sign(&son, create);
    run.net.submit(signed);
    let step = run.net.step().await;
    match step.rejected.into_iter().next() {
        Some(r) => Err(r.error),
        None => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_or_settlement_whose_check_fails_is_refused_when_proposed() {
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    let sweep = WalletSweep { from: 0, to: 0, fee_rate: 4, unsigned_tx: "00".into() };
    let e = propose(&mut run, sweep).await.expect_err("nothing to sweep");
    let op = e.operation_error().expect("an operation error");
    assert_eq!(bitcoin_error(op), &BitcoinError::NothingToSweep, "{e}");
    let settle = SettleTx { tx: 77, txid: "ab".repeat(32) };
    let e = propose(&mut run, settle).await.expect_err("no such transaction");
    let op = e.operation_error().expect("an operation error");
    assert_eq!(bitcoin_error(op), &BitcoinError::UnknownTx(77), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_sent_as_a_plain_transaction_needs_the_son_consensus_authority() {
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    let user = run.net.users[0].clone();
    let sweep = WalletSweep { from: 0, to: 0, fee_rate: 4, unsigned_tx: "00".into() };
    let st = run.state();
    let tx =
        Transaction::single(st.head_time().plus(30), sweep).sign(&st.chain_id(), &[&user.keys]);
    run.net.submit(tx);
    let step = run.net.step().await;
    let e = &step.rejected.first().expect("refused").error;
    assert!(
        matches!(e, LedgerError::MissingAuthority { account } if *account == AccountId::SON_CONSENSUS),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_at_the_minimum_is_credited_and_one_below_it_or_below_its_costs_is_not() {
    let run = ready(judged(), 1, |_| Fault::Honest).await;
    let st = run.state();
    let user_key = run.user_key(0).to_string();
    let claim = |amount_sat: u64| Claim {
        account: run.net.users[0].account,
        user_key: user_key.clone(),
        amount_sat,
        wallet: current_wallet(st).expect("wallet").id,
        total_weight: 0,
        reporters: Vec::new(),
        weight: 0,
    };
    let min = st.param::<crate::state::MinDepositSat>();
    assert_eq!(too_small(st, &claim(min)), None, "exactly the minimum");
    let below = too_small(st, &claim(min - 1)).expect("below the minimum");
    assert_eq!(below, format!("{} sat is below bitcoin.min_deposit_sat ({min} sat)", min - 1));

    // Below the minimum's floor: a chain whose minimum is 1 sat still refuses a deposit that
    // cannot pay its sweep at the lowest rate, its carry, and leave the dust limit.
    let b = builder(1).plugin_param("bitcoin.min_deposit_sat", serde_json::json!(1));
    let low = unfunded_with(b, judged(), |_| Fault::Honest).await;
    let st = low.state();
    let w = current_wallet(st).expect("wallet");
    let script = crate::state::deposit_script(&user_key, w).expect("script");
    let rate = st.param::<crate::state::MinFeeRate>();
    let fee = tx::estimate_vsize(1, 1, w.signers.len(), script.len(), true) * rate;
    let keep = fee + carry_sat(st, w) + tx::P2WSH_DUST_SAT;
    let claim = |amount_sat: u64| Claim { wallet: w.id, ..claim(amount_sat) };
    assert_eq!(too_small(st, &claim(keep)), None, "exactly its costs and the dust limit");
    let short = too_small(st, &claim(keep - 1)).expect("one satoshi short");
    assert!(
        short.starts_with(&format!("{} sat cannot pay its sweep ({fee} sat", keep - 1)),
        "{short}"
    );
}

#[test]
fn the_events_say_what_happened() {
    let created = WalletCreated { wallet: 2, address: "bcrt1qx".into(), signers: 7 };
    assert_eq!(created.to_string(), "primary wallet 2 (7 SONs): bcrt1qx");
    let sweep = SweepCreated { tx: 5, from: 1, to: 2, inputs: 3, amount_sat: 900 };
    assert_eq!(
        sweep.to_string(),
        "sidechain tx 5 sweeps 3 outputs of wallet 1 (900 sat) into wallet 2"
    );
    let consolidation = SweepCreated { from: 2, ..sweep };
    assert_eq!(
        consolidation.to_string(),
        "sidechain tx 5 consolidates 3 outputs of wallet 2 (900 sat) into wallet 2"
    );
    let settled = TxSettled { tx: 4, txid: "aa".into(), wallet: 2, amount_sat: 77 };
    assert_eq!(
        settled.to_string(),
        "sidechain tx 4 settled (aa): its outputs to wallet 2 hold 77 sat"
    );
    let bumped = TxBumped { tx: 4, old_txid: "aa".into(), txid: "bb".into(), fee_rate: 40 };
    assert_eq!(
        bumped.to_string(),
        "sidechain tx 4 did not confirm in time: aa replaced at 40 sat/vB by bb (to be signed)"
    );
    let abandoned = BumpAbandoned { tx: 4, txid: "aa".into() };
    assert_eq!(
        abandoned.to_string(),
        "sidechain tx 4: the fee bump was not signed in time; aa stands"
    );
    let small = DepositTooSmall {
        deposit: "cc:0".into(),
        account: AccountId(9),
        amount_sat: 1_000,
        reason: "too little".into(),
    };
    assert_eq!(
        small.to_string(),
        "deposit cc:0 of 0.00001000 BTC to 1.2.9 is not credited: too little"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_whose_fee_the_reserve_cannot_pay_is_refused() {
    // The standby SON has more votes: the first maintenance elects it, and wallet 0 must be
    // swept into wallet 1. At the highest fee rate its fee is more than the 100 000 sat reserve.
    let b = builder(1).son_votes(vec![1, 1, 1, 1, 1, 1, 5]);
    let btc = judged();
    let net = crate::test_support::network(b, &btc, |_| Fault::Honest);
    let mut run = crate::test_support::started(net, btc).await;
    let w0 = current_wallet(run.state()).expect("wallet").clone();
    run.btc.pay(&bitcoin::ScriptBuf::new_p2wsh(&w0.script().wscript_hash()), 100_000);
    run.until(600, |st| crate::state::wallet_utxos(st, 0).len() == 1).await;
    // A deposit gives wallet 0 more than the reserve, so a sweep can cost more than it.
    let o = run.deposit(0, 10_000_000);
    run.until(600, |st| {
        matches!(
            crate::test_support::deposit_status(st, &o),
            Some(crate::state::DepositStatus::Credited { .. })
        )
    })
    .await;
    assert_eq!(current_wallet(run.state()).expect("wallet").id, 0, "before the maintenance");
    run.until(900, |st| current_wallet(st).is_some_and(|w| w.id == 1)).await;
    let st = run.state();
    let held: u64 = crate::state::wallet_utxos(st, 0).iter().map(|(_, a)| a).sum();
    let max = st.param::<crate::state::MaxFeeRate>();
    let dear = crate::ops::expected_sweep(st, max).expect("builds").expect("a sweep is due");
    let t = tx::from_hex(&dear.unsigned_tx).expect("tx");
    let fee = held - t.output[0].value.to_sat();
    let reserve = books(st).reserve_sat();
    assert!(
        fee > reserve,
        "more than the reserve ({reserve} sat, with the deposit's carry): {fee}"
    );
    assert_eq!(
        crate::ops::check_sweep(st, &dear),
        Err(BitcoinError::ReserveShort { fee, reserve })
    );
    let cheap = crate::ops::expected_sweep(st, 4).expect("builds").expect("a sweep is due");
    crate::ops::check_sweep(st, &cheap).expect("the reserve pays 4 sat/vB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_sweep_must_leave_the_carry_and_the_dust_limit_to_the_satoshi() {
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    // A deposit that, swept at 100 sat/vB, leaves exactly its carry and the dust limit.
    let (amount, carry, vsize) = {
        let st = run.state();
        let w = current_wallet(st).expect("wallet");
        let script = crate::state::deposit_script(&run.user_key(0).to_string(), w).expect("script");
        let vsize = tx::estimate_vsize(1, 1, w.signers.len(), script.len(), true);
        let carry = carry_sat(st, w);
        (carry + tx::P2WSH_DUST_SAT + vsize * 100, carry, vsize)
    };
    assert!(amount >= 20_000, "at least bitcoin.min_deposit_sat: {amount}");
    let o = run.deposit(0, amount);
    run.until(1200, |st| {
        matches!(
            crate::test_support::deposit_status(st, &o),
            Some(crate::state::DepositStatus::Confirmed)
        )
    })
    .await;
    let st = run.state();
    let at_100 =
        crate::flows::expected_deposit_sweep(st, &o.to_string(), 100).expect("exactly enough");
    let out = tx::from_hex(&at_100.unsigned_tx).expect("tx").output[0].value.to_sat();
    assert_eq!(out, carry + tx::P2WSH_DUST_SAT);
    assert_eq!(
        crate::flows::expected_deposit_sweep(st, &o.to_string(), 101),
        Err(BitcoinError::Build(tx::BuildError::TooSmall {
            total: amount,
            fee: vsize * 101 + carry,
            dust: tx::P2WSH_DUST_SAT
        }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciliation_names_between_one_and_500_outpoints_in_order_each_one_the_chain_holds() {
    use crate::reconcile::{check_reconcile, classify, Gone, Reconcile, MAX_RECONCILED};
    use bitcoin::hashes::Hash;
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    let st = run.state();
    let (held, amount) = crate::state::wallet_utxos(st, 0)[0];
    let nothing = |vout: u32| bitcoin::OutPoint { txid: held.txid, vout: held.vout + 1 + vout };
    let rec = |gone: Vec<bitcoin::OutPoint>| Reconcile {
        gone: gone.iter().map(ToString::to_string).collect(),
    };
    let reason = |r: Result<Vec<Gone>, BitcoinError>| match r {
        Err(BitcoinError::Reconcile(why)) => why,
        other => panic!("not refused: {other:?}"),
    };
    assert_eq!(check_reconcile(st, &rec(vec![held])), Ok(vec![Gone::WalletOutput(held, amount)]));
    assert!(reason(check_reconcile(st, &rec(Vec::new()))).starts_with("0 outpoints"));
    // 500 pass the count (and are refused for what they are); 501 do not.
    let many: Vec<_> = (0..MAX_RECONCILED as u32).map(nothing).collect();
    assert!(reason(check_reconcile(st, &rec(many.clone())))
        .ends_with("nothing the chain expects Bitcoin to hold"));
    let too_many: Vec<_> = (0..=MAX_RECONCILED as u32).map(nothing).collect();
    assert!(reason(check_reconcile(st, &rec(too_many))).starts_with("501 outpoints"));
    assert!(
        reason(check_reconcile(st, &rec(vec![held, held]))).ends_with("out of order or repeated")
    );
    let lower = bitcoin::OutPoint { txid: bitcoin::Txid::from_byte_array([0; 32]), vout: 0 };
    assert!(
        reason(check_reconcile(st, &rec(vec![held, lower]))).ends_with("out of order or repeated")
    );
    assert!(reason(check_reconcile(st, &rec(vec![held, nothing(0)])))
        .ends_with("nothing the chain expects Bitcoin to hold"));
    // A confirmed deposit not swept yet is the chain's to lose; a credited one is not.
    let o = run.deposit(0, 1_000_000);
    let confirmed = |st: &State| {
        matches!(
            crate::test_support::deposit_status(st, &o),
            Some(crate::state::DepositStatus::Confirmed)
        )
    };
    run.until(1200, confirmed).await;
    assert_eq!(classify(run.state(), &o), Some(Gone::Deposit(o)));
    run.until(1800, |st| {
        matches!(
            crate::test_support::deposit_status(st, &o),
            Some(crate::state::DepositStatus::Credited { .. })
        )
    })
    .await;
    assert_eq!(classify(run.state(), &o), None);
}

#[test]
fn a_reconciliation_says_what_it_lost_and_whether_the_bridge_pauses() {
    use crate::reconcile::Reconciled;
    let r = Reconciled {
        outputs: 2,
        lost_sat: 700,
        failed_txs: vec![4],
        deposits: 1,
        deficit_sat: 0,
        paused: false,
    };
    let head = "reconciled with Bitcoin: 2 outputs recorded and 700 sat gone, 1 transaction failed, 1 deposit vanished";
    assert_eq!(r.to_string(), format!("{head}; the reserve absorbs the loss"));
    let paused = Reconciled { deficit_sat: 300, paused: true, ..r.clone() };
    assert_eq!(
        paused.to_string(),
        format!("{head}; 300 sat of PBTC unbacked: deposits and withdrawals pause")
    );
    let accepted = Reconciled { deficit_sat: 300, paused: false, ..r };
    assert_eq!(
        accepted.to_string(),
        format!("{head}; 300 sat of PBTC unbacked (accepted by the SONs)")
    );
}

/// A wallet of exactly the most signers a script may hold is made: the set's size is refused
/// only beyond it.
#[test]
fn a_set_of_the_most_signers_a_wallet_holds_gets_its_wallet() {
    use crate::script::MAX_WALLET_SIGNERS;
    use crate::state::{expected_signers, unchecked_signers};
    let n = MAX_WALLET_SIGNERS;
    let params = sonprop_core::ChainParameters {
        maximum_son_count: n as u32,
        ..sonprop_core::ChainParameters::default()
    };
    let net = sonprop_core::testkit::TestNetwork::builder()
        .sons(n)
        .params(params)
        .build(crate::test_support::registry());
    let st = net.ledger.state();
    assert_eq!(st.globals().maintenance_sons.len(), n);
    assert_eq!(unchecked_signers(st).map(|s| s.len()), Ok(n));
    assert_eq!(expected_signers(st).map(|s| s.len()), Ok(n));
}
