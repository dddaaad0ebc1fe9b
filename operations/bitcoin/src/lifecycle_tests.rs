//! How the bridge follows the SON lifecycle: which Bitcoin keys a SON may register, a key
//! change reaching the wallet at the next maintenance (the old wallet swept with the retired
//! key), the `bitcoin-signer` guard holding a key change back, and a SON an election leaves
//! out still signing what its old wallet owes.

use std::collections::BTreeMap;

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{PublicKey, ScriptBuf};
use sonprop_core::chain::lifecycle::{LifecycleError, SonCreate, SonUpdate};
use sonprop_core::testkit::TestNetwork;
use sonprop_core::{AssetId, Operation, OperationError, SonId, SonStatus, State, Subject};

use crate::sim::Fault;
use crate::state::{check_son_keys, current_wallet, pending, wallet_utxos, Purpose, Transactions};
use crate::test_support::{builder, judged, network, network_keyed, registry, started, Run};

fn keys(hex: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("bitcoin".to_owned(), hex.to_owned())])
}

fn public(secret: &SecretKey) -> String {
    PublicKey::new(secret.public_key(&Secp256k1::signing_only())).to_string()
}

fn fresh_secret() -> SecretKey {
    TestNetwork::builder().sidechain_key("son-2", "bitcoin-next").secret_key()
}

#[test]
fn a_son_registers_one_valid_lower_case_bitcoin_key_that_no_other_son_holds_or_awaits() {
    let net = TestNetwork::builder().witnesses(3).sons(6).standby_sons(1).build(registry());
    let key_of = |st: &State, i: u64| {
        st.son(SonId(i)).expect("son").sidechain_public_keys["bitcoin"].clone()
    };
    let st = net.ledger.state();
    let new = public(&fresh_secret());
    check_son_keys(st, SonId(2), &keys(&new)).expect("a fresh key");
    check_son_keys(st, SonId(2), &keys(&key_of(st, 2))).expect("its own key");
    assert_eq!(check_son_keys(st, SonId(2), &BTreeMap::new()), Err("no bitcoin key".into()));
    let bad = check_son_keys(st, SonId(2), &keys("02zz")).expect_err("not a key");
    assert!(bad.contains("public key"), "{bad}");
    let upper = check_son_keys(st, SonId(2), &keys(&new.to_uppercase())).expect_err("upper case");
    assert!(upper.contains("lower-case"), "{upper}");
    let uncompressed = PublicKey {
        compressed: false,
        inner: fresh_secret().public_key(&Secp256k1::signing_only()),
    };
    let e = check_son_keys(st, SonId(2), &keys(&uncompressed.to_string())).expect_err("long");
    assert!(e.contains("uncompressed"), "{e}");
    let taken = check_son_keys(st, SonId(2), &keys(&key_of(st, 4))).expect_err("taken");
    assert_eq!(taken, "son 1.33.4 registered the same bitcoin key");

    // A key another SON asked for (in force at the next maintenance) is taken too; a
    // deregistered SON's key is free again.
    let (mut g, ..) = TestNetwork::builder().witnesses(3).sons(6).standby_sons(1).genesis();
    g.sons[4].next_sidechain_public_keys = Some(keys(&new));
    g.sons[6].status = SonStatus::Deregistered;
    let ledger = sonprop_core::Ledger::new(&g, registry().chain()).expect("genesis");
    let st = ledger.state();
    let awaited = check_son_keys(st, SonId(2), &keys(&new)).expect_err("awaited by SON 4");
    assert_eq!(awaited, "son 1.33.4 registered the same bitcoin key");
    check_son_keys(st, SonId(2), &keys(&key_of(st, 6))).expect("a deregistered SON's key");
}

#[test]
fn registering_a_son_with_another_sons_bitcoin_key_is_refused_by_the_bitcoin_crate() {
    const PPY: AssetId = AssetId(0);
    let b = TestNetwork::builder().witnesses(3).sons(6).users(1);
    let (_, _, _, users) = b.genesis();
    let mut net = b
        .asset(sonprop_core::testkit::ppy_asset())
        .balance(users[0].account, PPY, 10_000_000)
        .build(registry());
    let st = net.ledger.state();
    let user = net.users[0].clone();
    let taken = st.son(SonId(1)).expect("son").sidechain_public_keys.clone();
    let op = SonCreate {
        owner: user.account,
        url: String::new(),
        signing_key: user.keys.public(),
        sidechain_public_keys: taken,
        deposit: st.params().son_vesting_amount,
    };
    match op.check(st) {
        Err(OperationError::Lifecycle(LifecycleError::BadKeys { son, reason })) => {
            assert_eq!(son, SonId(6));
            assert_eq!(reason, "sonprop-bitcoin: son 1.33.1 registered the same bitcoin key");
        }
        other => panic!("not refused for its key: {other:?}"),
    }
    let fresh = SonCreate { sidechain_public_keys: keys(&public(&fresh_secret())), ..op };
    let tx = net.sign(&user, fresh);
    net.submit(tx);
    let (_, rejected) = net.produce_block();
    assert!(rejected.is_empty(), "a fresh key registers");
}

/// The SON-2 key change the next tests make.
fn key_change(run: &Run, url: Option<&str>) -> SonUpdate {
    SonUpdate {
        son: SonId(2),
        owner: run.net.sons[2].account,
        new_url: url.map(str::to_owned),
        new_signing_key: None,
        new_sidechain_public_keys: Some(keys(&public(&fresh_secret()))),
    }
}

/// A run whose wallet 0 holds the 100 000 sat reserve, over `net`.
async fn funded(net: TestNetwork, btc: crate::sim::SimBitcoin) -> Run {
    let mut run = started(net, btc).await;
    let w0 = current_wallet(run.state()).expect("wallet").clone();
    run.btc.pay(&ScriptBuf::new_p2wsh(&w0.script().wscript_hash()), 100_000);
    run.until(600, |st| wallet_utxos(st, 0).len() == 1).await;
    run
}

fn sweep_of(st: &State, wallet: u64) -> Option<&crate::state::SidechainTx> {
    st.rows::<Transactions>()
        .map(|(_, t)| t)
        .find(|t| matches!(t.purpose, Purpose::Sweep { .. }) && t.signing_wallet == wallet)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_change_reaches_the_wallet_at_the_next_maintenance_and_the_old_wallet_is_swept_with_the_retired_key(
) {
    // SON 2's operator gives its node the new key, keeping the old one as retired, then asks
    // for the change.
    let btc = judged();
    let next = fresh_secret();
    let net = network_keyed(
        builder(2),
        &btc,
        |_| Fault::Honest,
        |i, genesis| {
            if i == 2 {
                (next, vec![genesis])
            } else {
                (genesis, Vec::new())
            }
        },
    );
    let mut run = funded(net, btc).await;
    // SON 0 goes quiet: every other signer of wallet 0 must sign its sweep (5 of 6 weight).
    run.net.set_son_up(0, false);
    let change = key_change(&run, None);
    let tx = run.net.sign(&run.net.sons[2].clone(), change);
    run.net.submit(tx);
    run.step().await;
    let st = run.state();
    let son2 = st.son(SonId(2)).expect("son");
    assert_eq!(son2.next_sidechain_public_keys.as_ref(), Some(&keys(&public(&next))));
    assert_eq!(current_wallet(st).expect("wallet").id, 0, "no wallet change before maintenance");
    let at = st.globals().next_maintenance_time;
    run.until(900, |st| current_wallet(st).is_some_and(|w| w.id == 1)).await;
    let st = run.state();
    assert!(st.globals().last_maintenance_time >= at);
    let w1 = current_wallet(st).expect("wallet");
    let me = w1.signers.iter().find(|s| s.son == SonId(2)).expect("SON 2 signs wallet 1");
    assert_eq!(me.public_key, public(&next), "the new wallet holds the new key");
    // The old wallet's reserve moves to the new one; SON 2 signs the sweep with its old key.
    run.until(900, |st| sweep_of(st, 0).is_some_and(|t| t.signatures.contains_key(&SonId(2))))
        .await;
    run.until(1800, |st| wallet_utxos(st, 1).len() == 1 && wallet_utxos(st, 0).is_empty()).await;
    // Each signature counts once towards its pay.
    let st = run.state();
    let signed = st.rows::<Transactions>().filter(|(_, t)| t.signatures.contains_key(&SonId(2)));
    assert_eq!(st.son(SonId(2)).expect("son").statistics.txs_signed, signed.count() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_son_an_election_leaves_out_still_signs_its_old_wallets_sweep() {
    // Six seats; the standby SON 6 has more votes than all: the first maintenance elects it and
    // leaves SON 5 (the last of the tied) out. SON 5 still holds a share of wallet 0.
    let btc = judged();
    let b = builder(2).son_votes(vec![1, 1, 1, 1, 1, 1, 5]);
    let mut run = funded(network(b, &btc, |_| Fault::Honest), btc).await;
    // SON 0 goes quiet: every other signer of wallet 0 must sign its sweep (5 of 6 weight).
    run.net.set_son_up(0, false);
    run.until(900, |st| current_wallet(st).is_some_and(|w| w.id == 1)).await;
    let st = run.state();
    assert!(!st.is_elected(SonId(5)) && st.is_elected(SonId(6)));
    assert_eq!(st.son(SonId(5)).expect("son").status, SonStatus::Inactive);
    run.until(900, |st| sweep_of(st, 0).is_some_and(|t| t.signatures.contains_key(&SonId(5))))
        .await;
    let sweep = sweep_of(run.state(), 0).expect("sweep");
    assert!(!sweep.signatures.contains_key(&SonId(0)), "completed without the quiet SON");
    run.until(1800, |st| wallet_utxos(st, 1).len() == 1 && wallet_utxos(st, 0).is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_son_whose_signature_is_needed_cannot_change_its_key_but_can_change_its_url() {
    let btc = judged();
    let mut run = funded(network(builder(2), &btc, |_| Fault::Honest), btc).await;
    // SON 2 goes quiet: it signs nothing, so a withdrawal's transaction waits on it.
    run.net.set_son_up(2, false);
    let o = run.deposit(0, 300_000);
    run.until(1800, |st| {
        matches!(
            crate::test_support::deposit_status(st, &o),
            Some(crate::state::DepositStatus::Credited { .. })
        )
    })
    .await;
    run.withdraw(0, 100_000, None);
    run.until(600, |st| pending(st).any(|t| !t.signatures.contains_key(&SonId(2)))).await;
    let st = run.state();
    match key_change(&run, None).check(st) {
        Err(OperationError::Deferred { kind, guard, subject, reason }) => {
            assert_eq!(
                (kind, guard, subject),
                ("son_update", "bitcoin-signer", Subject::Son(SonId(2)))
            );
            assert!(reason.contains("signature needed"), "{reason}");
        }
        other => panic!("not deferred: {other:?}"),
    }
    let url_only =
        SonUpdate { new_sidechain_public_keys: None, ..key_change(&run, Some("https://x")) };
    url_only.check(st).expect("a URL change is not held back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_between_maintenances_moves_no_wallet_and_the_next_election_reweighs_it() {
    const PPY: AssetId = AssetId(0);
    let btc = judged();
    let b = builder(2);
    let (_, _, _, users) = b.genesis();
    let b = b.asset(sonprop_core::testkit::ppy_asset()).balance(users[0].account, PPY, 1_000_000);
    let mut run = funded(network(b, &btc, |_| Fault::Honest), btc).await;
    let user = run.net.users[0].clone();
    let vote = sonprop_core::chain::lifecycle::AccountVote {
        account: user.account,
        sons: [SonId(1)].into(),
    };
    let tx = run.net.sign(&user, vote);
    run.net.submit(tx);
    run.step().await;
    let st = run.state();
    assert_eq!(st.son(SonId(1)).expect("son").votes, 1_000_001, "the live tally moved");
    assert!(crate::ops::expected_update(st).expect("computable").is_none(), "the wallet did not");
    run.until(900, |st| current_wallet(st).is_some_and(|w| w.id == 1)).await;
    let w1 = current_wallet(run.state()).expect("wallet");
    let weight = |son| w1.signers.iter().find(|s| s.son == SonId(son)).map(|s| s.weight);
    assert_eq!((weight(1), weight(2)), (Some(65_535), Some(1)), "reweighed by the election");
}
