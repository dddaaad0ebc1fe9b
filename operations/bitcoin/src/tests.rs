//! The wallet through the ledger and every node's scheduler, with each completed transaction
//! judged by Bitcoin Core's consensus library.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bitcoin::consensus::encode::serialize;
use bitcoin::hashes::Hash;
use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, Txid};
use sonprop_core::node::scheduler::SchedulerConfig;
use sonprop_core::testkit::{NetworkBuilder, TestNetwork};
use sonprop_core::{
    ChainParameters, LedgerEvent, OperationError, Services, SonId, SonStatus, State,
};

use crate::node::{BitcoinNode, BitcoinSource, SeenOutput, SourceError};
use crate::ops::{BitcoinError, SignTx, TxComplete, WalletCreated, WalletUpdate};
use crate::state::{
    current_wallet, wallet_utxos, SidechainTx, Transactions, TxStatus, Wallet, Wallets,
};
use crate::test_support::{registry, FLAGS};
use crate::tx;

/// A Bitcoin every node sees alike: outputs by script, one fee rate, and a broadcast that
/// accepts only what Bitcoin Core's script interpreter accepts (each broadcast transaction is
/// confirmed at once).
#[derive(Default)]
struct FakeBitcoin {
    outputs: Mutex<Vec<(ScriptBuf, SeenOutput)>>,
    fee_rate: Mutex<u64>,
    broadcast: Mutex<Vec<Transaction>>,
}

impl BitcoinSource for FakeBitcoin {
    fn fee_rate(&self) -> Result<u64, SourceError> {
        Ok(*self.fee_rate.lock().unwrap_or_else(|p| p.into_inner()))
    }
    fn outputs_to(&self, spk: &ScriptBuf) -> Result<Vec<SeenOutput>, SourceError> {
        let all = self.outputs.lock().unwrap_or_else(|p| p.into_inner());
        Ok(all.iter().filter(|(s, _)| s == spk).map(|(_, o)| *o).collect())
    }
    fn confirmations(&self, txid: &Txid) -> Result<Option<u32>, SourceError> {
        let sent = self.broadcast.lock().unwrap_or_else(|p| p.into_inner());
        Ok(sent.iter().any(|t| t.compute_txid() == *txid).then_some(1))
    }
    fn broadcast(&self, tx: &Transaction) -> Result<(), SourceError> {
        self.accept(tx).map_err(SourceError::Rejected)
    }
}

impl FakeBitcoin {
    fn accept(&self, tx: &Transaction) -> Result<(), String> {
        let mut sent = self.broadcast.lock().unwrap_or_else(|p| p.into_inner());
        if sent.iter().any(|t| t.compute_txid() == tx.compute_txid()) {
            return Ok(());
        }
        let mut outputs = self.outputs.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = serialize(tx);
        for (i, input) in tx.input.iter().enumerate() {
            let (spk, o) = outputs
                .iter()
                .find(|(_, o)| o.outpoint == input.previous_output)
                .ok_or_else(|| format!("input {i} spends an unknown output"))?;
            bitcoin::consensus::verify_script_with_flags(
                spk,
                i,
                Amount::from_sat(o.amount_sat),
                &bytes,
                FLAGS,
            )
            .map_err(|e| format!("input {i} rejected by the script interpreter: {e}"))?;
        }
        let txid = tx.compute_txid();
        for (vout, out) in tx.output.iter().enumerate() {
            let outpoint = OutPoint { txid, vout: vout as u32 };
            let seen = SeenOutput { outpoint, amount_sat: out.value.to_sat(), confirmations: 1 };
            outputs.push((out.script_pubkey.clone(), seen));
        }
        sent.push(tx.clone());
        Ok(())
    }
}

impl FakeBitcoin {
    fn pay(&self, wallet: &Wallet, tag: u8, amount_sat: u64) -> OutPoint {
        let outpoint = OutPoint { txid: Txid::from_byte_array([tag; 32]), vout: u32::from(tag) };
        let spk = ScriptBuf::new_p2wsh(&wallet.script().wscript_hash());
        let seen = SeenOutput { outpoint, amount_sat, confirmations: 3 };
        self.outputs.lock().unwrap_or_else(|p| p.into_inner()).push((spk, seen));
        outpoint
    }
}

const DEREGISTER_TIME: u64 = 1200;

fn builder() -> NetworkBuilder {
    let params = ChainParameters {
        son_deregister_time: DEREGISTER_TIME,
        maintenance_interval: 600,
        maximum_son_count: 6,
        ..ChainParameters::default()
    };
    TestNetwork::builder()
        .witnesses(3)
        .sons(6)
        .standby_sons(1)
        .params(params)
        .plugin_param("bitcoin.min_confirmations", serde_json::json!(1))
}

/// A network whose SON nodes each hold their own Bitcoin key and share one fake Bitcoin.
fn network(b: NetworkBuilder, bitcoin: &Arc<FakeBitcoin>) -> TestNetwork {
    network_with_keys(b, bitcoin, |_| None)
}

/// Like [`network`], with `wrong_key(name)` giving some nodes a key other than their SON's.
fn network_with_keys(
    b: NetworkBuilder,
    bitcoin: &Arc<FakeBitcoin>,
    wrong_key: impl Fn(&str) -> Option<&'static str>,
) -> TestNetwork {
    let mut net = b.clone().build(registry());
    let source: Arc<dyn BitcoinSource> = bitcoin.clone();
    net.start_schedulers_with(SchedulerConfig::for_tests(), move |node| match node.son {
        Some(_) => {
            let name = wrong_key(&node.name).unwrap_or(&node.name);
            Services::new().with(BitcoinNode {
                source: source.clone(),
                key: b.sidechain_key(name, "bitcoin").secret_key(),
                fee_band_percent: 25,
                retired_keys: Vec::new(),
            })
        }
        None => Services::new(),
    })
    .expect("every SON node has its bitcoin service");
    net
}

fn wallet(st: &State, id: u64) -> Wallet {
    st.row::<Wallets>(&id).cloned().expect("wallet")
}

fn sweep(st: &State) -> SidechainTx {
    st.rows::<Transactions>().map(|(_, t)| t.clone()).last().expect("a sweep")
}

/// The signed transaction as Bitcoin would receive it, with the given signature slots filled.
fn assembled(t: &SidechainTx, w: &Wallet, slots: &BTreeMap<usize, SonId>) -> Transaction {
    let mut signed = tx::from_hex(&t.unsigned_tx).expect("decodes");
    for (i, input) in signed.input.iter_mut().enumerate() {
        let sigs: BTreeMap<usize, Vec<u8>> = slots
            .iter()
            .filter_map(|(slot, son)| {
                let hex = t.signatures.get(son)?.get(i)?;
                Some((*slot, sonprop_core::chain::crypto::from_hex(hex)?))
            })
            .collect();
        input.witness = tx::weighted_witness(w.signers.len(), &sigs, &w.script(), false);
    }
    signed
}

/// Bitcoin Core's verdict on every input of `t`.
fn consensus_valid(signed: &Transaction, t: &SidechainTx, w: &Wallet) -> Result<(), String> {
    let spk = ScriptBuf::new_p2wsh(&w.script().wscript_hash());
    let bytes = serialize(signed);
    for (i, input) in t.inputs.iter().enumerate() {
        bitcoin::consensus::verify_script_with_flags(
            &spk,
            i,
            Amount::from_sat(input.amount_sat),
            &bytes,
            FLAGS,
        )
        .map_err(|e| format!("input {i}: {e}"))?;
    }
    Ok(())
}

/// Runs until `pred` holds of the state, or fails after `limit` seconds.
async fn run_until(
    net: &mut TestNetwork,
    limit: u64,
    pred: impl Fn(&State) -> bool,
) -> Vec<LedgerEvent> {
    let end = net.now().plus(limit);
    let mut events = Vec::new();
    while !pred(net.ledger.state()) {
        assert!(net.now() < end, "not reached within {limit} s");
        let step = net.step().await;
        events.extend(step.outcome.events);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_son_moves_the_wallet_and_the_old_set_signs_a_sweep_bitcoin_accepts() {
    let bitcoin = Arc::new(FakeBitcoin::default());
    *bitcoin.fee_rate.lock().expect("lock") = 5;
    let mut net = network(builder(), &bitcoin);

    // The first wallet is proposed by the SON on duty and approved.
    let events = run_until(&mut net, 60, |st| current_wallet(st).is_some()).await;
    assert!(events.iter().any(|e| e.decode::<WalletCreated>().is_some_and(|w| w.wallet == 0)));
    let w0 = wallet(net.ledger.state(), 0);
    assert_eq!(
        w0.signers.iter().map(|s| s.son).collect::<Vec<_>>(),
        (0..6).map(SonId).collect::<Vec<_>>()
    );
    assert!(w0.address.starts_with("bcrt1q"), "{}", w0.address);
    // The same SONs with the same weights give the same script: no update is due or accepted.
    let st = net.ledger.state();
    assert_eq!(crate::ops::expected_update(st), Ok(None));
    let again = WalletUpdate { wallet: 1, signers: w0.signers.clone() };
    assert_eq!(crate::ops::check_update(st, &again), Err(BitcoinError::NoChange));

    // Bitcoin pays it twice; the SONs record both outputs.
    let paid = bitcoin.pay(&w0, 1, 70_000);
    bitcoin.pay(&w0, 2, 30_000);
    run_until(&mut net, 60, |st| wallet_utxos(st, 0).len() == 2).await;
    // An output recorded already cannot be recorded again (only a crafted proposal reaches the
    // rule: the trigger skips known outputs), nor one another wallet's.
    let st = net.ledger.state();
    let again = crate::ops::WalletUtxo {
        wallet: 0,
        txid: paid.txid.to_string(),
        vout: paid.vout,
        amount_sat: 70_000,
    };
    assert!(matches!(crate::ops::check_utxo(st, &again), Err(BitcoinError::KnownOutput(_))));
    let other_wallet = crate::ops::WalletUtxo { wallet: 1, vout: 9, ..again.clone() };
    assert_eq!(crate::ops::check_utxo(st, &other_wallet), Err(BitcoinError::NotCurrent(1)));
    let zero = crate::ops::WalletUtxo { vout: 9, amount_sat: 0, ..again };
    assert_eq!(crate::ops::check_utxo(st, &zero), Err(BitcoinError::ZeroAmount));

    // SON 5 goes silent: reported down, deregistered; at the next maintenance the standby SON
    // takes its seat, and the SON on duty proposes the new wallet, then the sweep of the old.
    net.set_son_up(5, false);
    let mut events =
        run_until(&mut net, 3 * 3600, |st| current_wallet(st).is_some_and(|w| w.id == 1)).await;
    events.extend(run_until(&mut net, 60, |st| st.rows::<Transactions>().next().is_some()).await);
    let st = net.ledger.state();
    assert_eq!(st.son(SonId(5)).expect("son").status, SonStatus::Deregistered);
    assert!(st.is_elected(SonId(6)), "the standby took the seat");
    assert!(events
        .iter()
        .any(|e| matches!(e, LedgerEvent::SonElected { son } if *son == SonId(6))));
    let w1 = wallet(st, 1);
    assert_ne!(w1.address, w0.address);
    assert_eq!(
        wallet(st, 0).expires,
        Some(w1.valid_from),
        "the old wallet expired as the new one began"
    );
    let t = sweep(st);
    assert_eq!(t.signing_wallet, 0, "signed by the old set");
    assert_eq!(t.threshold, 5, "the old script's threshold: 6 * 2 / 3 + 1");
    assert!(wallet_utxos(st, 0).is_empty(), "the old outputs are committed to the sweep");

    // The old set's live SONs sign; the ledger completes it; the SON on duty broadcasts it (the
    // fake Bitcoin runs it through Bitcoin Core's interpreter); the SONs see it confirmed and
    // settle it, and the outputs move to the new wallet.
    let mut events = run_until(&mut net, 60, |st| sweep(st).status == TxStatus::Complete).await;
    // Complete, not sent yet: a report naming another txid, or a settlement, is refused.
    let st = net.ledger.state();
    let id = sweep(st).id;
    let (son0, owner0) = (SonId(0), net.sons[0].account);
    let wrong = crate::ops::SentTx { tx: id, txid: "00".repeat(32), son: son0, owner: owner0 };
    let e = net
        .ledger
        .check_transaction(&net.sign(&net.sons[0].clone(), wrong))
        .expect_err("wrong txid");
    let r = e.operation_error().and_then(OperationError::rule_source::<BitcoinError>);
    assert!(matches!(r, Some(BitcoinError::WrongTxid { .. })), "{e}");
    events.extend(
        run_until(&mut net, 120, |st| matches!(sweep(st).status, TxStatus::Settled { .. })).await,
    );
    // Settled: it cannot be sent or settled again.
    let st = net.ledger.state();
    let again = crate::ops::SettleTx { tx: id, txid: sweep(st).bitcoin_txid.clone() };
    let r = crate::ops::check_settle(st, &again);
    assert!(matches!(r, Err(BitcoinError::NotValid { .. })), "{r:?}");
    let st = net.ledger.state();
    let t = sweep(st);
    let complete =
        events.iter().find_map(|e| e.decode::<TxComplete>()).expect("a completion event");
    let settled = events.iter().find_map(|e| e.decode::<crate::ops::TxSettled>()).expect("settled");
    assert_eq!((settled.wallet, settled.txid.clone()), (1, complete.txid.clone()));
    let broadcast = bitcoin.broadcast.lock().expect("lock").clone();
    assert_eq!(broadcast.len(), 1, "broadcast once");
    assert_eq!(broadcast[0].compute_txid().to_string(), complete.txid);
    assert!(!t.signatures.contains_key(&SonId(5)), "the deregistered SON did not sign");
    assert!(!t.signatures.contains_key(&SonId(6)), "the new SON is not in the old set");
    assert_eq!(t.signatures.len(), 5);
    let unsigned = tx::from_hex(&t.unsigned_tx).expect("tx");
    assert_eq!(complete.txid, tx::txid(&unsigned).to_string());
    let moved = wallet_utxos(st, 1);
    assert_eq!(moved.len(), 1, "the sweep's output is the new wallet's");
    assert_eq!(moved[0].0.txid, tx::txid(&unsigned));
    let fee = 100_000 - moved[0].1;
    let vsize = tx::estimate_vsize(2, 1, 6, w0.script().len(), false);
    assert_eq!(fee, vsize * 5, "vsize × the proposal's fee rate");
    assert_eq!(unsigned.output[0].script_pubkey, ScriptBuf::new_p2wsh(&w1.script().wscript_hash()));

    // Bitcoin Core's interpreter: valid with the signatures in their own slots...
    let slots: BTreeMap<usize, SonId> =
        w0.signers.iter().enumerate().map(|(i, s)| (i, s.son)).collect();
    let signed = assembled(&t, &w0, &slots);
    consensus_valid(&signed, &t, &w0).expect("valid under consensus rules");
    let fully_signed_vsize = signed.vsize() as u64;
    assert!(
        fully_signed_vsize <= vsize,
        "the estimate bounds the real size ({fully_signed_vsize} ≤ {vsize})"
    );
    // ...invalid with one signature fewer than the threshold...
    let mut fewer = slots.clone();
    fewer.remove(&0);
    assert!(consensus_valid(&assembled(&t, &w0, &fewer), &t, &w0).is_err(), "4 of 6 is below 5");
    // ...and invalid with a signature moved to another SON's slot.
    let mut moved_slot = slots.clone();
    let s0 = moved_slot.remove(&0).expect("slot 0");
    moved_slot.insert(5, s0);
    assert!(consensus_valid(&assembled(&t, &w0, &moved_slot), &t, &w0).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_son_whose_signature_is_needed_is_deregistered_only_once_the_sweep_fails() {
    let bitcoin = Arc::new(FakeBitcoin::default());
    *bitcoin.fee_rate.lock().expect("lock") = 5;
    // Seven SONs, SON 2 with three times the votes: weights 1,1,3,1,1,1,1 (total 9, threshold
    // 7). SON 2's node holds the wrong Bitcoin key, so it cannot sign; with SON 5 gone too the
    // others carry 5 of the 7 needed: SON 2's signature is needed.
    let params = ChainParameters {
        son_deregister_time: DEREGISTER_TIME,
        maintenance_interval: 600,
        maximum_son_count: 7,
        ..ChainParameters::default()
    };
    let b = TestNetwork::builder()
        .witnesses(3)
        .sons(7)
        .standby_sons(1)
        .son_votes(vec![1, 1, 3, 1, 1, 1, 1, 1])
        .params(params)
        .plugin_param("bitcoin.min_confirmations", serde_json::json!(1))
        .plugin_param("bitcoin.sign_timeout", serde_json::json!(1800));
    let mut net = network_with_keys(b, &bitcoin, |n| (n == "son-2").then_some("son-6"));
    run_until(&mut net, 60, |st| current_wallet(st).is_some()).await;
    let w0 = wallet(net.ledger.state(), 0);
    bitcoin.pay(&w0, 1, 70_000);
    run_until(&mut net, 60, |st| wallet_utxos(st, 0).len() == 1).await;

    net.set_son_up(5, false);
    run_until(&mut net, 3 * 3600, |st| st.rows::<Transactions>().next().is_some()).await;
    // The sweep exists; SON 2 now falls silent too.
    net.set_son_up(2, false);
    run_until(&mut net, 60, |st| sweep(st).signatures.len() == 5).await;
    let t = sweep(net.ledger.state());
    assert_eq!((t.signed_weight, t.threshold), (5, 7));
    assert!(!t.signatures.contains_key(&SonId(2)));
    // A SON that signed already cannot add its weight twice, with the same signatures or new.
    let unsigned = tx::from_hex(&t.unsigned_tx).expect("tx");
    let key = b_keys("son-0");
    let sig =
        tx::sign_input(&unsigned, 0, &w0.script(), t.inputs[0].amount_sat, &key).expect("sig");
    let again = SignTx {
        tx: t.id,
        son: SonId(0),
        owner: net.sons[0].account,
        signatures: vec![sonprop_core::chain::crypto::hex(&sig)],
    };
    let e =
        net.ledger.check_transaction(&net.sign(&net.sons[0].clone(), again)).expect_err("twice");
    let r = e.operation_error().and_then(OperationError::rule_source::<BitcoinError>);
    assert!(matches!(r, Some(BitcoinError::AlreadySigned { son: SonId(0), .. })), "{e}");
    let due = |st: &State| {
        let s = st.son(SonId(2)).expect("son");
        s.status == SonStatus::InMaintenance
            && st.head_time().since(s.statistics.last_down_timestamp) >= DEREGISTER_TIME
    };
    run_until(&mut net, 3600, due).await;
    assert!(sweep(net.ledger.state()).status == TxStatus::Valid, "due before the deadline");
    let mut deferred = Vec::new();
    let mut events = Vec::new();
    let end = net.now().plus(3600);
    while sweep(net.ledger.state()).status == TxStatus::Valid {
        assert!(net.now() < end, "the sweep never failed");
        let st = net.ledger.state();
        assert_eq!(st.son(SonId(2)).expect("son").status, SonStatus::InMaintenance, "deferred");
        let step = net.step().await;
        deferred.extend(step.reports.into_iter().flat_map(|(_, r)| r.deferred));
        events.extend(step.outcome.events);
    }
    let st = net.ledger.state();
    assert!(matches!(sweep(st).status, TxStatus::Failed { .. }));
    let t = sweep(st);
    let back = wallet_utxos(st, 0);
    assert_eq!(back.len(), 1, "the failed sweep's input is back in the old wallet");
    assert_eq!(
        (back[0].0.to_string(), back[0].1),
        (t.inputs[0].outpoint.clone(), 70_000),
        "the same output, to the satoshi"
    );
    crate::state::conservation(st).expect("the equation holds after the failure");
    assert!(
        deferred.iter().any(|d| d.1.reason.contains("bitcoin-signer")
            && d.1.reason.contains("signature needed for sidechain tx")),
        "the deferral names the guard and why: {deferred:?}"
    );
    // Once the sweep failed, nothing defers SON 2 any more.
    run_until(&mut net, 600, |st| {
        st.son(SonId(2)).is_some_and(|s| s.status == SonStatus::Deregistered)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_misplaced_or_outsider_signatures_and_altered_transactions_are_refused() {
    let bitcoin = Arc::new(FakeBitcoin::default());
    *bitcoin.fee_rate.lock().expect("lock") = 5;
    let b = builder();
    let mut net = network(b.clone(), &bitcoin);
    run_until(&mut net, 60, |st| current_wallet(st).is_some()).await;
    let w0 = wallet(net.ledger.state(), 0);
    bitcoin.pay(&w0, 1, 70_000);
    bitcoin.pay(&w0, 2, 30_000);
    run_until(&mut net, 60, |st| wallet_utxos(st, 0).len() == 2).await;
    net.set_son_up(5, false);
    // Stop as soon as the sweep exists, before anyone signs.
    run_until(&mut net, 3 * 3600, |st| st.rows::<Transactions>().next().is_some()).await;
    let st = net.ledger.state();
    let t = sweep(st);
    assert_eq!(t.status, TxStatus::Valid);
    let unsigned = tx::from_hex(&t.unsigned_tx).expect("tx");
    let script = w0.script();
    let sign_as = |who: &str, input: usize| {
        let key = b.sidechain_key(who, "bitcoin").secret_key();
        let sig = tx::sign_input(&unsigned, input, &script, t.inputs[input].amount_sat, &key)
            .expect("sig");
        sonprop_core::chain::crypto::hex(&sig)
    };
    let refused = |net: &mut TestNetwork, who: usize, op: SignTx| {
        let before = net.ledger.state_hash();
        let signer = net.sons[who].clone();
        let e = net.ledger.check_transaction(&net.sign(&signer, op)).expect_err("refused");
        assert_eq!(net.ledger.state_hash(), before, "state unchanged");
        e.operation_error()
            .and_then(OperationError::rule_source::<BitcoinError>)
            .cloned()
            .unwrap_or_else(|| panic!("not a bitcoin rule error: {e}"))
    };
    let owners: Vec<_> = net.sons.iter().map(|n| n.account).collect();
    let owner = |i: usize| owners[i];
    // Son 1 signs with son 3's key: forged for son 1.
    let forged = SignTx {
        tx: t.id,
        son: SonId(1),
        owner: owner(1),
        signatures: vec![sign_as("son-3", 0), sign_as("son-3", 1)],
    };
    let e = refused(&mut net, 1, forged);
    assert!(matches!(e, BitcoinError::BadSignature { input: 0, .. }), "{e}");
    // Its own signatures in the wrong input order.
    let swapped = SignTx {
        tx: t.id,
        son: SonId(1),
        owner: owner(1),
        signatures: vec![sign_as("son-1", 1), sign_as("son-1", 0)],
    };
    assert!(matches!(refused(&mut net, 1, swapped), BitcoinError::BadSignature { .. }));
    // Too few signatures.
    let short =
        SignTx { tx: t.id, son: SonId(1), owner: owner(1), signatures: vec![sign_as("son-1", 0)] };
    assert!(matches!(
        refused(&mut net, 1, short),
        BitcoinError::SignatureCount { given: 1, inputs: 2 }
    ));
    // The new SON is outside the old set.
    let outsider = SignTx {
        tx: t.id,
        son: SonId(6),
        owner: owner(6),
        signatures: vec![sign_as("son-6", 0), sign_as("son-6", 1)],
    };
    assert!(matches!(refused(&mut net, 6, outsider), BitcoinError::NotASigner { .. }));
    // Garbage.
    let garbage = SignTx {
        tx: t.id,
        son: SonId(1),
        owner: owner(1),
        signatures: vec!["zz".into(), "00".into()],
    };
    assert!(matches!(refused(&mut net, 1, garbage), BitcoinError::Hex(_)));
    // A correct one is accepted.
    let good = SignTx {
        tx: t.id,
        son: SonId(1),
        owner: owner(1),
        signatures: vec![sign_as("son-1", 0), sign_as("son-1", 1)],
    };
    // Under another account than the SON's owner: refused.
    let impostor = SignTx {
        tx: t.id,
        son: SonId(1),
        owner: owner(2),
        signatures: vec![sign_as("son-1", 0), sign_as("son-1", 1)],
    };
    assert!(matches!(refused(&mut net, 2, impostor), BitcoinError::NotOwner { .. }));
    net.ledger.check_transaction(&net.sign(&net.sons[1].clone(), good)).expect("valid");
}

#[test]
fn wallet_updates_with_a_wrong_number_or_signers_are_refused() {
    let bitcoin = Arc::new(FakeBitcoin::default());
    let b = builder();
    let net = network(b, &bitcoin);
    let st = net.ledger.state();
    let good =
        crate::ops::expected_update(st).expect("elected SONs make a wallet").expect("one is due");
    crate::ops::check_update(st, &good).expect("the expected update passes");
    let mut wrong_id = good.clone();
    wrong_id.wallet = 7;
    assert!(matches!(
        crate::ops::check_update(st, &wrong_id),
        Err(BitcoinError::WrongWalletId { expected: 0, given: 7 })
    ));
    let mut weights = good.clone();
    weights.signers[0].weight = 2;
    assert_eq!(crate::ops::check_update(st, &weights), Err(BitcoinError::WrongSigners));
    let mut dropped = good;
    dropped.signers.pop();
    assert_eq!(crate::ops::check_update(st, &dropped), Err(BitcoinError::WrongSigners));
    assert!(crate::node::within_band(110, 100, 10));
    assert!(!crate::node::within_band(111, 100, 10));
    assert!(!crate::node::within_band(89, 100, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_differing_by_one_byte_or_built_at_another_rate_is_refused() {
    let bitcoin = Arc::new(FakeBitcoin::default());
    *bitcoin.fee_rate.lock().expect("lock") = 5;
    let mut net = network(builder(), &bitcoin);
    run_until(&mut net, 60, |st| current_wallet(st).is_some()).await;
    let w0 = wallet(net.ledger.state(), 0);
    let st = net.ledger.state();
    assert_eq!(crate::ops::expected_sweep(st, 5), Ok(None), "nothing to move yet");
    let none = crate::ops::WalletSweep { from: 0, to: 0, fee_rate: 5, unsigned_tx: String::new() };
    assert_eq!(crate::ops::check_sweep(st, &none), Err(BitcoinError::NothingToSweep));
    bitcoin.pay(&w0, 1, 70_000);
    run_until(&mut net, 60, |st| wallet_utxos(st, 0).len() == 1).await;
    // SON 5 leaves; stop in the block that records the new wallet, before the SON on duty
    // proposes the sweep, and check variants of that proposal.
    net.set_son_up(5, false);
    run_until(&mut net, 3 * 3600, |st| current_wallet(st).is_some_and(|w| w.id == 1)).await;
    let st = net.ledger.state();
    let good =
        crate::ops::expected_sweep(st, 5).expect("builds").expect("wallet 0 holds an output");
    assert_eq!((good.from, good.to), (0, 1));
    crate::ops::check_sweep(st, &good).expect("the expected sweep passes");
    let mut bytes = good.unsigned_tx.clone();
    // Flip the last hex digit of the locktime.
    let last = bytes.pop().expect("hex");
    bytes.push(if last == '0' { '1' } else { '0' });
    let altered = crate::ops::WalletSweep { unsigned_tx: bytes, ..good.clone() };
    assert_eq!(crate::ops::check_sweep(st, &altered), Err(BitcoinError::TxMismatch));
    // Another fee rate rebuilds another transaction: the rate the proposal names is the one used.
    let other_rate = crate::ops::WalletSweep { fee_rate: 6, ..good.clone() };
    assert_eq!(crate::ops::check_sweep(st, &other_rate), Err(BitcoinError::TxMismatch));
    let wrong_to = crate::ops::WalletSweep { to: 0, ..good.clone() };
    assert_eq!(crate::ops::check_sweep(st, &wrong_to), Err(BitcoinError::TxMismatch));
    let too_high = crate::ops::WalletSweep { fee_rate: 100_000, ..good };
    assert!(matches!(
        crate::ops::check_sweep(st, &too_high),
        Err(BitcoinError::FeeRate { rate: 100_000, .. })
    ));
}

/// SON `name`'s Bitcoin key, as the test networks derive it.
fn b_keys(name: &str) -> bitcoin::secp256k1::SecretKey {
    TestNetwork::builder().sidechain_key(name, "bitcoin").secret_key()
}

/// A weighted spend of a wallet of `n` keys (weight 1 each), signed by the threshold, judged
/// by Bitcoin Core's interpreter; the script is built by `build` (the crate's builder, or a
/// raw one that skips its limits).
fn spend_verdict(
    n: u8,
    deposit: bool,
    build: impl Fn(&[crate::script::Signer], &bitcoin::PublicKey) -> ScriptBuf,
) -> Result<(), String> {
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    let secp = Secp256k1::new();
    let keys: Vec<SecretKey> =
        (1..=n).map(|i| SecretKey::from_slice(&[i; 32]).expect("key")).collect();
    let signers: Vec<crate::script::Signer> = keys
        .iter()
        .map(|k| crate::script::Signer {
            key: bitcoin::PublicKey::new(k.public_key(&secp)),
            weight: 1,
        })
        .collect();
    let user =
        bitcoin::PublicKey::new(SecretKey::from_slice(&[250; 32]).expect("key").public_key(&secp));
    let script = build(&signers, &user);
    let spk = ScriptBuf::new_p2wsh(&script.wscript_hash());
    let outpoint = OutPoint { txid: Txid::from_byte_array([7; 32]), vout: 0 };
    let spend = tx::Spend { outpoint, amount_sat: 1_000_000 };
    let to = ScriptBuf::new_p2wsh(&script.wscript_hash());
    let mut t = tx::build_sweep(&[spend], &to, 1, signers.len(), script.len()).expect("tx");
    let threshold = crate::script::threshold(u32::from(n)) as usize;
    let sigs: BTreeMap<usize, Vec<u8>> = (0..threshold)
        .map(|i| (i, tx::sign_input(&t, 0, &script, 1_000_000, &keys[i]).expect("sig")))
        .collect();
    t.input[0].witness = tx::weighted_witness(signers.len(), &sigs, &script, deposit);
    bitcoin::consensus::verify_script_with_flags(
        &spk,
        0,
        Amount::from_sat(1_000_000),
        &serialize(&t),
        FLAGS,
    )
    .map_err(|e| format!("{e:?}"))
}

/// Bitcoin executes at most 201 counted opcodes per script: a wallet of 40 SONs and a deposit
/// address over 39 can be spent (Bitcoin Core's interpreter agrees), one more cannot — so the
/// crate refuses to build them, and refuses a genesis that could elect that many.
#[test]
fn scripts_past_bitcoins_opcode_limit_are_refused_at_the_boundary() {
    use crate::script::{
        counted_ops, max_signers, one_or_weighted_script, threshold, total_weight, weighted_script,
        ScriptError, MAX_WALLET_SIGNERS,
    };
    assert_eq!((max_signers(false, false), max_signers(true, false)), (40, 39));
    assert_eq!(max_signers(true, true), 38);
    assert_eq!(MAX_WALLET_SIGNERS, max_signers(true, false));
    let wallet = |s: &[crate::script::Signer], _: &bitcoin::PublicKey| {
        weighted_script(s).expect("within the limit")
    };
    let deposit = |s: &[crate::script::Signer], u: &bitcoin::PublicKey| {
        one_or_weighted_script(u, s, None).expect("within the limit")
    };
    spend_verdict(40, false, wallet).expect("a 40-signer wallet is spendable");
    spend_verdict(39, true, deposit).expect("a deposit address over 39 signers is spendable");
    // One more, built past the crate's limit by hand: Bitcoin refuses to run it.
    let raw_wallet = |s: &[crate::script::Signer], _: &bitcoin::PublicKey| {
        crate::script::tests_support::raw_weighted(s, threshold(total_weight(s)))
    };
    let e = spend_verdict(41, false, raw_wallet).expect_err("41 signers");
    assert!(e.contains("ERR_SCRIPT"), "{e}");
    let raw_deposit = |s: &[crate::script::Signer], u: &bitcoin::PublicKey| {
        crate::script::tests_support::raw_one_or_weighted(u, s, threshold(total_weight(s)))
    };
    assert!(spend_verdict(40, true, raw_deposit).is_err(), "a deposit script over 40 signers");
    // The crate's builders refuse them, naming the limit.
    let sk = |i: u8| bitcoin::secp256k1::SecretKey::from_slice(&[i; 32]).expect("key");
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let signers: Vec<crate::script::Signer> = (1..=41)
        .map(|i| crate::script::Signer {
            key: bitcoin::PublicKey::new(sk(i).public_key(&secp)),
            weight: 1,
        })
        .collect();
    assert_eq!(
        weighted_script(&signers),
        Err(ScriptError::TooManySigners {
            signers: 41,
            ops: counted_ops(41, false, false),
            max: 40
        })
    );
    let user = bitcoin::PublicKey::new(sk(250).public_key(&secp));
    assert!(matches!(
        one_or_weighted_script(&user, &signers[..40], None),
        Err(ScriptError::TooManySigners { signers: 40, max: 39, .. })
    ));
    // A chain that could elect 40 SONs is refused at genesis; 39 is accepted.
    for (max, ok) in [(39u32, true), (40, false)] {
        let params = ChainParameters { maximum_son_count: max, ..ChainParameters::default() };
        let (genesis, ..) = TestNetwork::builder().witnesses(3).sons(6).params(params).genesis();
        let r = sonprop_core::Ledger::new(&genesis, registry().chain());
        assert_eq!(r.is_ok(), ok, "maximum_son_count {max}: {:?}", r.err());
        if let Err(e) = r {
            assert!(e.to_string().contains("sonprop-bitcoin: maximum_son_count 40"), "{e}");
        }
    }
}

/// The time-locked deposit script, byte for byte over Peerplays' vector keys (`<144>
/// OP_CHECKSEQUENCEVERIFY OP_DROP` on the user's branch), and judged by Bitcoin Core's
/// interpreter: the user's own spend fails before 144 blocks (an input sequence of 143) and
/// passes at 144; the SONs' branch is not time-locked.
#[test]
fn the_time_locked_deposit_script_holds_its_user_branch_for_n_blocks() {
    use crate::script::{one_or_weighted_script, parse_key, vectors, Signer};
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    let signers: Vec<Signer> = vectors::PEERPLAYS_SON_KEYS
        .iter()
        .map(|k| Signer { key: parse_key(k).expect("key"), weight: 1 })
        .collect();
    let user = parse_key(vectors::PEERPLAYS_USER_KEY).expect("key");
    let csv = one_or_weighted_script(&user, &signers, Some(144)).expect("script");
    let plain = one_or_weighted_script(&user, &signers, None).expect("script");
    let hex = csv.to_hex_string();
    let head = format!("21{}ac63", vectors::PEERPLAYS_USER_KEY);
    assert!(hex.starts_with(&format!("{head}029000b275516700")), "{hex}");
    assert_eq!(hex.len(), plain.to_hex_string().len() + 2 * 5, "<144> CSV DROP: 5 bytes more");
    // Pinned from this crate (Peerplays publishes no time-locked vector); the layout above is
    // Peerplays' `btc_timelocked_one_or_weighted_multisig_address`, and the interpreter below
    // judges its meaning.
    assert_eq!(
        crate::script::p2wsh_address(&csv, crate::script::BitcoinNetwork::Regtest).to_string(),
        "bcrt1qycs2zjvt9yr2e06agu477cl242nvgl529m6gprzh675q9q5hywsspqhswz"
    );

    // Bitcoin Core's verdict on the user's branch, with a user key whose secret we hold.
    let secp = Secp256k1::new();
    let user_sk = SecretKey::from_slice(&[77; 32]).expect("key");
    let user = bitcoin::PublicKey::new(user_sk.public_key(&secp));
    let sons: Vec<Signer> = (1..=3u8)
        .map(|i| Signer {
            key: bitcoin::PublicKey::new(
                SecretKey::from_slice(&[i; 32]).expect("key").public_key(&secp),
            ),
            weight: 1,
        })
        .collect();
    let script = one_or_weighted_script(&user, &sons, Some(144)).expect("script");
    let spk = ScriptBuf::new_p2wsh(&script.wscript_hash());
    let verdict = |sequence: u32| {
        let spend = tx::Spend {
            outpoint: OutPoint { txid: Txid::from_byte_array([3; 32]), vout: 0 },
            amount_sat: 100_000,
        };
        let mut t = tx::build_sweep(&[spend], &spk, 1, 3, script.len()).expect("tx");
        t.input[0].sequence = bitcoin::Sequence(sequence);
        let sig = tx::sign_input(&t, 0, &script, 100_000, &user_sk).expect("sig");
        let mut w = bitcoin::Witness::new();
        w.push(sig);
        w.push(script.as_bytes());
        t.input[0].witness = w;
        bitcoin::consensus::verify_script_with_flags(
            &spk,
            0,
            Amount::from_sat(100_000),
            &serialize(&t),
            FLAGS,
        )
    };
    assert!(verdict(143).is_err(), "143 blocks: the user must wait");
    assert!(verdict(144).is_ok(), "144 blocks: the user takes it back");
    // Without the time lock the user's branch needs no wait.
    let plain = one_or_weighted_script(&user, &sons, None).expect("script");
    assert_ne!(plain, script);
}

/// The crate's modules use one another without a circle (a test module aside): each module
/// can be read, and changed, knowing only the ones below it. A `crate::name` in code (not in
/// a comment) counts as a use.
#[test]
fn the_modules_use_one_another_without_a_circle() {
    let sources: [(&str, &str); 12] = [
        ("flows", include_str!("flows.rs")),
        ("node", include_str!("node.rs")),
        ("ops", include_str!("ops.rs")),
        ("reconcile", include_str!("reconcile.rs")),
        ("registration", include_str!("registration.rs")),
        ("rpc", include_str!("rpc.rs")),
        ("rules", include_str!("rules.rs")),
        ("script", include_str!("script.rs")),
        ("sim", include_str!("sim.rs")),
        ("state", include_str!("state.rs")),
        ("tx", include_str!("tx.rs")),
        ("lib", include_str!("lib.rs")),
    ];
    let names: Vec<&str> = sources.iter().map(|(n, _)| *n).collect();
    // What each module uses, read from its code before its tests.
    let uses = |text: &str| -> Vec<usize> {
        let code = text.split("#[cfg(test)]").next().unwrap_or(text);
        let mut out: Vec<usize> = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .flat_map(|l| l.match_indices("crate::").map(move |(i, _)| &l[i + 7..]))
            .filter_map(|rest| {
                let name: String =
                    rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                names.iter().position(|n| *n == name)
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    };
    let graph: Vec<Vec<usize>> = sources.iter().map(|(_, text)| uses(text)).collect();
    assert!(graph[0].contains(&6), "flows uses rules: the reading works");
    // Depth-first, with the path on a stack: a module met again on its own path is a circle.
    fn visit(at: usize, graph: &[Vec<usize>], state: &mut [u8], path: &mut Vec<usize>) -> bool {
        match state[at] {
            1 => {
                return {
                    path.push(at);
                    true
                }
            }
            2 => return false,
            _ => {}
        }
        state[at] = 1;
        path.push(at);
        for &next in &graph[at] {
            if visit(next, graph, state, path) {
                return true;
            }
        }
        path.pop();
        state[at] = 2;
        false
    }
    let mut state = vec![0u8; graph.len()];
    for start in 0..graph.len() {
        let mut path = Vec::new();
        if visit(start, &graph, &mut state, &mut path) {
            let circle: Vec<&str> = path.iter().map(|i| names[*i]).collect();
            panic!("an import circle: {}", circle.join(" -> "));
        }
    }
}
