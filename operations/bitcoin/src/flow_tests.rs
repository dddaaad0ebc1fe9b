//! Deposits and withdrawals end to end: the ledger and every node's scheduler over a simulated
//! Bitcoin network that runs every broadcast through Bitcoin Core's script interpreter, with
//! the conservation equation checked after every block.

use bitcoin::secp256k1::Secp256k1;
use bitcoin::{PublicKey, ScriptBuf};
use sonprop_core::testkit::TestNetwork;
use sonprop_core::{AccountId, OperationError, SonId};

use crate::flows::{
    prove_deposit_key, DepositConfirmed, DepositCredited, RegisterDepositKey, ReportDeposit,
    Withdraw, WithdrawalPaid, WithdrawalRefunded,
};
use crate::ops::BitcoinError;
use crate::sim::Fault;
use crate::state::{
    current_wallet, utxo_key, wallet_utxos, DepositStatus, Deposits, Transactions, TxStatus,
    WithdrawalStatus, Withdrawals,
};
use crate::test_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_is_credited_and_a_withdrawal_paid_with_every_broadcast_valid() {
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    let o = run.deposit(0, 50_000_000);
    run.until(1800, |st| matches!(deposit_status(st, &o), Some(DepositStatus::Credited { .. })))
        .await;
    let st = run.state();
    let Some(DepositStatus::Credited { credited, tx }) = deposit_status(st, &o) else {
        unreachable!()
    };
    assert!(credited < 50_000_000 && credited > 49_990_000, "less the sweep's fee: {credited}");
    assert_eq!(run.balance(0), credited, "PBTC issued to the depositor");
    assert_eq!(st.asset(PBTC).expect("asset").supply, credited);
    let sweep = st.row::<Transactions>(&tx).expect("sweep");
    assert_eq!(sweep.signing_wallet, 0);
    assert!(run.events.iter().any(|e| e.decode::<DepositConfirmed>().is_some()));
    let event = run.events.iter().find_map(|e| e.decode::<DepositCredited>()).expect("event");
    assert_eq!((event.account, event.credited), (run.net.users[0].account, credited));
    assert!(event.to_string().contains(" PBTC issued to "), "{event}");

    // Withdraw 0.2 BTC to the user's own address.
    run.withdraw(0, 20_000_000, None);
    run.until(1800, |st| {
        st.row::<Withdrawals>(&0).is_some_and(|w| matches!(w.status, WithdrawalStatus::Paid { .. }))
    })
    .await;
    let st = run.state();
    let WithdrawalStatus::Paid { sent_sat, .. } = withdrawal(st, 0).status else { unreachable!() };
    assert_eq!(run.balance(0), credited - 20_000_000);
    assert_eq!(st.asset(PBTC).expect("asset").supply, credited - 20_000_000, "burnt");
    assert_eq!(st.balance(AccountId::SON_CONSENSUS, PBTC), 0, "nothing left in escrow");
    let received = run.btc.balance(&run.user_address(0).script_pubkey());
    assert_eq!(received, sent_sat);
    assert!(sent_sat < 20_000_000 && sent_sat > 19_990_000, "less the fee: {sent_sat}");
    let paid = run.events.iter().find_map(|e| e.decode::<WithdrawalPaid>()).expect("event");
    assert_eq!(paid.burnt, 20_000_000);
    // The wallet's outputs on chain are exactly what Bitcoin shows the wallet holding.
    let w = current_wallet(st).expect("wallet");
    let on_chain: u64 = wallet_utxos(st, w.id).iter().map(|(_, a)| a).sum();
    assert_eq!(on_chain, run.btc.balance(&ScriptBuf::new_p2wsh(&w.script().wscript_hash())));
    assert!(run.btc.rejected().is_empty(), "{:?}", run.btc.rejected());
    assert_eq!(run.btc.accepted().len(), 2, "the deposit sweep and the payment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_son_below_a_third_cannot_credit_what_did_not_happen_nor_stall_what_did() {
    // SON 0 adds 1 000 sat to every amount it sees (weight 1 of 6).
    let mut run =
        ready(judged(), 1, |i| if i == 0 { Fault::Lies(1_000) } else { Fault::Honest }).await;
    // It also reports a deposit that never happened.
    let son0 = run.net.sons[0].clone();
    let fake = ReportDeposit {
        son: SonId(0),
        owner: son0.account,
        account: run.net.users[1].account,
        wallet: 0,
        txid: "11".repeat(32),
        vout: 0,
        amount_sat: 90_000_000,
    };
    let tx = run.net.sign(&son0, fake);
    run.net.submit(tx);
    let o = run.deposit(0, 30_000_000);
    run.until(1800, |st| matches!(deposit_status(st, &o), Some(DepositStatus::Credited { .. })))
        .await;
    run.run_for(300).await;
    let st = run.state();
    let d = st.row::<Deposits>(&utxo_key(&o)).expect("deposit");
    let accepted = d.accepted().expect("accepted");
    assert_eq!(accepted.amount_sat, 30_000_000, "the honest claim won");
    assert!(d.claims.iter().any(|c| c.amount_sat == 30_001_000 && c.reporters == vec![SonId(0)]));
    let fake_outpoint = bitcoin::OutPoint { txid: "11".repeat(32).parse().expect("txid"), vout: 0 };
    assert_eq!(deposit_status(st, &fake_outpoint), Some(DepositStatus::Reported), "never more");
    assert_eq!(run.balance(1), 0, "nothing minted for the invented deposit");
    assert!(run.balance(0) > 29_990_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_sons_above_a_third_stall_a_deposit_but_never_mint() {
    // SONs 0 and 1 lie (weight 2 of 6): the honest 4 are not more than two thirds.
    let lies = |i| if i < 2 { Fault::Lies(5_000) } else { Fault::Honest };
    let mut run = unfunded(judged(), 1, lies).await;
    let o = run.deposit(0, 30_000_000);
    run.run_for(1200).await;
    let st = run.state();
    assert_eq!(deposit_status(st, &o), Some(DepositStatus::Reported), "stalled");
    let d = st.row::<Deposits>(&utxo_key(&o)).expect("deposit");
    assert_eq!(d.claims.len(), 2, "two versions: {:?}", d.claims);
    assert!(d.accepted().is_none());
    assert_eq!(st.asset(PBTC).expect("asset").supply, 0, "nothing minted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorganised_deposit_is_never_credited_and_a_sweep_settles_only_with_its_confirmations() {
    let mut run = ready(judged(), 3, |_| Fault::Honest).await;
    // A deposit reaches 2 of the 3 confirmations, then a reorg takes it away.
    let gone = run.deposit(0, 40_000_000);
    run.btc.mine_n(2);
    run.hold(30).await;
    assert_eq!(run.btc.reorg(2), 1);
    run.run_for(900).await;
    assert_eq!(deposit_status(run.state(), &gone), None, "never reported");
    assert_eq!(run.state().asset(PBTC).expect("asset").supply, 0);

    // Another deposit is confirmed and swept; the sweep gets 2 confirmations, loses them in a
    // reorg (back to the mempool), and settles only once it has 3 again.
    let o = run.deposit(1, 40_000_000);
    run.btc.mine_n(3);
    run.until(900, |st| {
        st.rows::<Transactions>().any(|(_, t)| matches!(t.status, TxStatus::Sent { .. }))
    })
    .await;
    let sent = run
        .state()
        .rows::<Transactions>()
        .find(|(_, t)| matches!(t.status, TxStatus::Sent { .. }))
        .map(|(_, t)| t.clone())
        .expect("sent");
    run.btc.mine_n(2);
    run.hold(6).await;
    assert_eq!(run.btc.reorg(2), 0, "nothing vanishes: the sweep is back in the mempool");
    run.hold(600).await;
    let st = run.state();
    assert!(
        matches!(st.row::<Transactions>(&sent.id).expect("tx").status, TxStatus::Sent { .. }),
        "{:?}",
        st.row::<Transactions>(&sent.id)
    );
    assert!(matches!(deposit_status(st, &o), Some(DepositStatus::Sweeping { .. })));
    assert_eq!(run.balance(1), 0, "not credited without its confirmations");
    run.btc.mine_n(3);
    run.until(600, |st| matches!(deposit_status(st, &o), Some(DepositStatus::Credited { .. })))
        .await;
    assert!(run.balance(1) > 39_990_000);
    assert!(run.btc.rejected().is_empty(), "{:?}", run.btc.rejected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_the_wallet_cannot_pay_is_refunded_and_bad_requests_are_refused() {
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    let o = run.deposit(0, 10_000_000);
    run.until(1800, |st| matches!(deposit_status(st, &o), Some(DepositStatus::Credited { .. })))
        .await;
    let credited = run.balance(0);
    let user = run.net.users[0].clone();

    // Refused with a typed error, state unchanged: another network's address, an address that
    // does not parse, more than the balance, a dust amount.
    let before = run.net.ledger.state_hash();
    let refused = |run: &mut Run, op: Withdraw| {
        let tx = run.net.sign(&user, op);
        run.net.ledger.check_transaction(&tx).expect_err("refused")
    };
    let mainnet = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";
    for address in [mainnet, "not-an-address"] {
        let op = Withdraw {
            account: user.account,
            amount_sat: 1_000_000,
            address: Some(address.into()),
        };
        let e = refused(&mut run, op);
        let r = e.operation_error().and_then(OperationError::rule_source::<BitcoinError>);
        assert!(matches!(r, Some(BitcoinError::BadAddress { .. })), "{e}");
    }
    let too_much = Withdraw { account: user.account, amount_sat: credited + 1, address: None };
    let e = refused(&mut run, too_much);
    assert!(matches!(e.operation_error(), Some(OperationError::InsufficientBalance { .. })), "{e}");
    let dust = Withdraw { account: user.account, amount_sat: 100, address: None };
    let e = refused(&mut run, dust);
    let r = e.operation_error().and_then(OperationError::rule_source::<BitcoinError>);
    assert!(matches!(r, Some(BitcoinError::CannotCover(_))), "{e}");
    assert_eq!(run.net.ledger.state_hash(), before);

    // 600 sat is above the dust limit but cannot pay its own fee (about 230 vB at 4 sat/vB):
    // the SONs refund it, and the user has the PBTC back.
    run.withdraw(0, 600, None);
    run.until(60, |st| st.row::<Withdrawals>(&0).is_some()).await;
    let subject = sonprop_core::Subject::Named("bitcoin:withdrawal:0".into());
    let refund = readiness_of(run.state(), crate::WITHDRAW_REFUND, subject.clone());
    assert!(refund.starts_with("due: its refund may be proposed: "), "{refund}");
    let payment = readiness_of(run.state(), crate::WITHDRAW_PROCESS, subject);
    assert!(payment.starts_with("not due: "), "{payment}");
    run.until(1800, |st| {
        st.row::<Withdrawals>(&0).is_some_and(|w| w.status != WithdrawalStatus::Pending)
    })
    .await;
    let st = run.state();
    let WithdrawalStatus::Refunded { reason } = withdrawal(st, 0).status else {
        panic!("{:?}", withdrawal(st, 0).status)
    };
    assert!(reason.contains("cannot pay a fee"), "{reason}");
    assert_eq!(run.balance(0), credited, "returned");
    assert_eq!(st.balance(AccountId::SON_CONSENSUS, PBTC), 0);
    let e = run.events.iter().find_map(|e| e.decode::<WithdrawalRefunded>()).expect("event");
    assert_eq!(e.amount_sat, 600);
    assert_eq!(run.btc.accepted().len(), 1, "only the deposit sweep reached Bitcoin");
}

/// A chain without the PBTC asset takes no deposit keys, so no deposit can start that could
/// not be credited.
#[test]
fn without_a_pbtc_asset_no_deposit_key_is_taken() {
    let mut net = TestNetwork::builder().witnesses(3).sons(6).users(1).build(registry());
    let user = net.users[0].clone();
    let key = TestNetwork::builder().sidechain_key(&user.name, "bitcoin-user");
    let public = PublicKey::new(key.secret_key().public_key(&Secp256k1::signing_only()));
    let op = RegisterDepositKey {
        account: user.account,
        public_key: public.to_string(),
        withdraw_address: None,
        proof: prove_deposit_key(&net.ledger.state().chain_id(), user.account, &key.secret_key()),
    };
    let e = net.ledger.check_transaction(&net.sign(&user, op)).expect_err("no PBTC");
    let r = e.operation_error().and_then(OperationError::rule_source::<BitcoinError>);
    assert!(matches!(r, Some(BitcoinError::NoAsset(a)) if *a == PBTC), "{e}");
}

/// The PBTC asset a genesis holds is judged at genesis: issued by anyone but the SON consensus
/// account, with other than 8 decimals, or with any in existence, the ledger is not built, and
/// the error names the parameter and what is wrong.
#[test]
fn a_genesis_pbtc_asset_issued_by_another_with_other_decimals_or_a_supply_is_refused() {
    let pbtc = crate::state::pbtc_genesis_asset(PBTC);
    let user_issued = sonprop_core::Asset { issuer: AccountId(5), ..pbtc.clone() };
    let two_decimals = sonprop_core::Asset { precision: 2, ..pbtc.clone() };
    let cases = [
        (user_issued, None, "is issued by 1.2.5, not by the SON consensus account"),
        (two_decimals, None, "has 2 decimals; PBTC has 8"),
        (pbtc.clone(), Some(1u64), "1 of asset"),
    ];
    for (asset, held, why) in cases {
        let mut b = TestNetwork::builder().witnesses(3).sons(6).users(1).asset(asset);
        if let Some(amount) = held {
            b = b.balance(AccountId(5), PBTC, amount);
        }
        let (g, ..) = b.genesis();
        let Err(e) = sonprop_core::Ledger::new(&g, registry().chain()) else {
            panic!("{why}: built")
        };
        let text = e.to_string();
        assert!(text.contains("invalid parameter `bitcoin.asset`") && text.contains(why), "{text}");
    }
    // The right asset, or none (the wallet alone), builds.
    let (g, ..) = TestNetwork::builder().witnesses(3).sons(6).users(1).asset(pbtc).genesis();
    assert!(sonprop_core::Ledger::new(&g, registry().chain()).is_ok());
}

/// A wallet holding only deposits moves, its sweep paid by what the deposits pre-paid into the
/// reserve (their carry). Without carries (`bitcoin.carry_fee_rate` 0) and without a SON
/// reserve, the sweep's fee would leave PBTC unbacked: it waits, with an alarm saying why,
/// until the SONs pay into the wallet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_sweep_is_paid_by_the_deposits_carry_or_waits_loudly_for_a_reserve() {
    for carry in [20u64, 0] {
        let b = builder(1).plugin_param("bitcoin.carry_fee_rate", serde_json::json!(carry));
        let mut run = unfunded_with(b, judged(), |_| Fault::Honest).await;
        let o = run.deposit(0, 20_000_000);
        run.until(1800, |st| {
            matches!(deposit_status(st, &o), Some(DepositStatus::Credited { .. }))
        })
        .await;
        let carried = crate::state::books(run.state()).carried_sat;
        assert_eq!(carried > 0, carry > 0, "carry {carry}: {carried} sat carried");
        assert_eq!(
            run.balance(0) + carried,
            run.state()
                .row::<crate::state::Utxos>(&utxo_key(&wallet_utxos(run.state(), 0)[0].0))
                .expect("output")
                .amount_sat
        );
        // SON 5 goes silent: deregistered, and the standby takes its seat at maintenance.
        run.net.set_son_up(5, false);
        run.until(3 * 3600, |st| current_wallet(st).is_some_and(|w| w.id == 1)).await;
        run.run_for(600).await;
        let st = run.state();
        if carry > 0 {
            assert!(wallet_utxos(st, 0).is_empty(), "the carry paid the sweep");
            assert!(crate::reconcile::alarms(st).is_empty(), "{:?}", crate::reconcile::alarms(st));
            continue;
        }
        assert_eq!(wallet_utxos(st, 0).len(), 1, "the old wallet's output did not move");
        let sweep = crate::ops::expected_sweep(st, 4).expect("builds").expect("a sweep is due");
        let e = crate::ops::check_sweep(st, &sweep).expect_err("no reserve");
        assert!(matches!(e, BitcoinError::ReserveShort { reserve: 0, .. }), "{e}");
        let alarms = crate::reconcile::alarms(st);
        let says = "the SONs' reserve is short: sweeping wallet 0 into wallet 1 costs";
        assert!(alarms.iter().any(|a| a.starts_with(says)), "{alarms:?}");
        // The SONs fund their reserve: the wallet moves, and PBTC stays backed.
        let w = current_wallet(st).expect("wallet").clone();
        run.btc.pay(&ScriptBuf::new_p2wsh(&w.script().wscript_hash()), 50_000);
        run.until(1800, |st| wallet_utxos(st, 0).is_empty() && wallet_utxos(st, 1).len() == 2)
            .await;
        assert!(crate::reconcile::alarms(run.state()).is_empty());
        assert!(run.btc.rejected().is_empty(), "{:?}", run.btc.rejected());
    }
}

/// The rule a registration is refused by, if any.
fn key_refusal(net: &mut TestNetwork, who: usize, op: RegisterDepositKey) -> Option<BitcoinError> {
    let tx = net.sign(&net.users[who], op);
    let e = net.ledger.check_transaction(&tx).err()?;
    let r = e.operation_error().and_then(OperationError::rule_source::<BitcoinError>);
    Some(r.cloned().unwrap_or_else(|| panic!("not a bitcoin rule: {e}")))
}

/// A deposit key is claimed only by whoever holds it: a thief who registers the victim's
/// public key (with no proof, a proof of its own key, or the victim's proof for the victim's
/// account or another chain) is refused, and the victim's own registration then succeeds. A
/// holder cannot register one key for two accounts, and a key has one spelling.
#[test]
fn a_deposit_key_is_registered_only_by_its_holder() {
    let mut net = TestNetwork::builder()
        .witnesses(3)
        .sons(6)
        .users(3)
        .asset(crate::state::pbtc_genesis_asset(PBTC))
        .build(registry());
    let chain = net.ledger.state().chain_id();
    let (victim, thief) = (net.users[0].clone(), net.users[1].clone());
    let secrets: Vec<_> = (0..3)
        .map(|i| TestNetwork::builder().sidechain_key(&net.users[i].name, "bitcoin-user"))
        .map(|k| k.secret_key())
        .collect();
    let secret = |i: usize| secrets[i];
    let public = |i: usize| PublicKey::new(secret(i).public_key(&Secp256k1::signing_only()));
    let claim = |account: AccountId, key: PublicKey, proof: String| RegisterDepositKey {
        account,
        public_key: key.to_string(),
        withdraw_address: None,
        proof,
    };
    let before = net.ledger.state_hash();
    let attempts = [
        ("no proof", String::new()),
        ("garbage", "ab".repeat(64)),
        ("the thief's own key signing", prove_deposit_key(&chain, thief.account, &secret(1))),
        (
            "the victim's proof for the victim",
            prove_deposit_key(&chain, victim.account, &secret(0)),
        ),
        ("a proof for another chain", {
            let other = sonprop_core::Digest::of(b"another chain");
            prove_deposit_key(&other, thief.account, &secret(0))
        }),
    ];
    for (what, proof) in attempts {
        let r = key_refusal(&mut net, 1, claim(thief.account, public(0), proof));
        assert!(matches!(r, Some(BitcoinError::BadProof(_))), "{what}: {r:?}");
    }
    // Upper-case hex parses as the same key, but a key has one spelling.
    let mut upper =
        claim(victim.account, public(0), prove_deposit_key(&chain, victim.account, &secret(0)));
    upper.public_key = upper.public_key.to_uppercase();
    assert!(matches!(key_refusal(&mut net, 0, upper), Some(BitcoinError::BadKey(_))));
    assert_eq!(net.ledger.state_hash(), before, "nothing changed");

    // The victim registers its own key.
    let own =
        claim(victim.account, public(0), prove_deposit_key(&chain, victim.account, &secret(0)));
    assert_eq!(key_refusal(&mut net, 0, own.clone()), None);
    net.submit(net.sign(&victim, own));
    let (_, rejected) = net.produce_block();
    assert!(rejected.is_empty(), "{rejected:?}");
    let row = net.ledger.state().row::<crate::state::DepositKeys>(&victim.account).expect("row");
    assert_eq!(row.public_key, public(0).to_string());
    // Its holder proving it for a second account is refused too: one key, one account.
    let second = net.users[2].clone();
    let again =
        claim(second.account, public(0), prove_deposit_key(&chain, second.account, &secret(0)));
    let r = key_refusal(&mut net, 2, again);
    assert!(
        matches!(r, Some(BitcoinError::KeyTaken { owner, .. }) if owner == victim.account),
        "{r:?}"
    );
}

/// One SON that reports a deposit first, naming the previous wallet (whose deposit address
/// was not paid), backs a version of its own: the honest SONs' reports naming the current
/// wallet still confirm it, and the user is credited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_son_naming_the_previous_wallet_first_cannot_stall_a_deposit() {
    let mut run = ready(judged(), 1, |_| Fault::Honest).await;
    // SON 5 goes silent: the standby takes its seat and the wallet moves to wallet 1.
    run.net.set_son_up(5, false);
    run.until(3 * 3600, |st| current_wallet(st).is_some_and(|w| w.id == 1)).await;
    run.until(1800, |st| wallet_utxos(st, 0).is_empty() && !wallet_utxos(st, 1).is_empty()).await;
    let o = run.deposit(0, 30_000_000);
    // SON 0 (in both wallets) reports it at once, before anyone sees a confirmation, naming
    // wallet 0.
    let son0 = run.net.sons[0].clone();
    let first = ReportDeposit {
        son: SonId(0),
        owner: son0.account,
        account: run.net.users[0].account,
        wallet: 0,
        txid: o.txid.to_string(),
        vout: o.vout,
        amount_sat: 30_000_000,
    };
    let tx = run.net.sign(&son0, first);
    run.net.submit(tx);
    run.step_without_mining().await;
    let d = run.state().row::<Deposits>(&utxo_key(&o)).expect("reported first").clone();
    assert_eq!(d.claims.len(), 1);
    assert_eq!(d.claims[0].wallet, 0);
    run.until(1800, |st| matches!(deposit_status(st, &o), Some(DepositStatus::Credited { .. })))
        .await;
    let d = run.state().row::<Deposits>(&utxo_key(&o)).expect("deposit").clone();
    let accepted = d.accepted().expect("accepted");
    assert_eq!((accepted.wallet, accepted.amount_sat), (1, 30_000_000));
    assert!(d.claims.iter().any(|c| c.wallet == 0 && c.reporters == vec![SonId(0)]));
    assert!(run.balance(0) > 29_990_000, "credited");
    assert!(run.btc.rejected().is_empty(), "{:?}", run.btc.rejected());
}
