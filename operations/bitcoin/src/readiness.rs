//! Whether each proposable kind may be proposed about a subject now, in words, for `explain`
//! (each kind's readiness). Every answer comes from the rule its proposal's check applies, read
//! on the chain's state. The chain cannot see Bitcoin, so a kind the SONs raise on what their
//! Bitcoin views show (a settlement, a wallet output, a reconciliation) is never due by the
//! chain's state alone: its answer says what the chain holds and what the SONs wait to see.
//!
//! A subject of another shape, or naming a deposit, withdrawal or sidechain transaction the
//! chain does not hold, is not one these kinds are about ([`Readiness::NotAbout`]).
//!
//! Subjects: `bitcoin:wallet`, `bitcoin:sweep`, `bitcoin:deposit:TXID:VOUT`,
//! `bitcoin:withdrawal:N` (its payment and its refund), `bitcoin:refund:N`,
//! `bitcoin:tx:N` (its settlement and fee bump), `bitcoin:settle:N`, `bitcoin:bump:N`,
//! `bitcoin:utxo:TXID:VOUT`, `bitcoin:reconcile` and `bitcoin:resume`.

use bitcoin::OutPoint;
use sonprop_core::chain::event::counted;
use sonprop_core::{Readiness, State, Subject};

use crate::flows::expected_withdrawal;
use crate::ops::{check_sweep, check_update, expected_sweep, expected_update};
use crate::state::{
    books, current_wallet, paused, utxo_key, ConfirmTimeout, DepositStatus, Deposits,
    MinConfirmations, MinFeeRate, SidechainTx, Transactions, TxStatus, Utxos, Wallets, Withdrawals,
};

use Readiness::{Due, DueAt, NotAbout, NotDue};

/// The part of a named subject after one of `prefixes`, if it is one of them.
fn named<'a>(subject: &'a Subject, prefixes: &[&str]) -> Option<&'a str> {
    let Subject::Named(name) = subject else { return None };
    prefixes.iter().find_map(|p| name.strip_prefix(p))
}

/// Whether `subject` is exactly `name`.
fn is(subject: &Subject, name: &str) -> bool {
    matches!(subject, Subject::Named(n) if n == name)
}

fn due(why: impl Into<String>) -> Readiness {
    Due { since: None, why: why.into() }
}

fn not_due(why: impl Into<String>) -> Readiness {
    NotDue { why: why.into() }
}

/// `bitcoin_wallet_update` about `bitcoin:wallet`.
pub fn wallet_update(state: &State, subject: &Subject) -> Readiness {
    if !is(subject, "bitcoin:wallet") {
        return NotAbout;
    }
    match expected_update(state) {
        Ok(None) => match current_wallet(state) {
            Some(w) => not_due(format!("the elected SONs hold the current wallet {}", w.id)),
            None => not_due("no SON is elected"),
        },
        Ok(Some(update)) => match check_update(state, &update) {
            Ok(()) => due(format!(
                "the elected SONs differ from the current wallet's signers: wallet {} may be \
                 proposed",
                update.wallet
            )),
            Err(e) => not_due(format!("wallet {} waits: {e}", update.wallet)),
        },
        Err(e) => not_due(e.to_string()),
    }
}

/// `bitcoin_wallet_sweep` about `bitcoin:sweep`, at the lowest fee rate.
pub fn wallet_sweep(state: &State, subject: &Subject) -> Readiness {
    if !is(subject, "bitcoin:sweep") {
        return NotAbout;
    }
    match expected_sweep(state, state.param::<MinFeeRate>()) {
        Ok(Some(sweep)) => match check_sweep(state, &sweep) {
            Ok(()) if sweep.from == sweep.to => due(format!(
                "wallet {} holds more outputs than bitcoin.consolidate_above: they may be \
                 consolidated",
                sweep.from
            )),
            Ok(()) => due(format!(
                "wallet {} still holds outputs: they may be swept into wallet {}",
                sweep.from, sweep.to
            )),
            Err(e) => not_due(e.to_string()),
        },
        Ok(None) => not_due("no wallet holds outputs to move"),
        Err(e) => not_due(e.to_string()),
    }
}

/// `bitcoin_deposit_process` about `bitcoin:deposit:TXID:VOUT`.
pub fn deposit(state: &State, subject: &Subject) -> Readiness {
    let Some(text) = named(subject, &["bitcoin:deposit:"]) else { return NotAbout };
    let Ok(o) = text.parse::<OutPoint>() else { return NotAbout };
    // Before a SON reports it, the chain knows nothing of it.
    let Some(d) = state.row::<Deposits>(&utxo_key(&o)) else { return NotAbout };
    match &d.status {
        DepositStatus::Confirmed => match paused(state) {
            Some(why) => not_due(why),
            None => {
                due("reported by SONs above two thirds of the wallet's weight: its sweep may be \
                 proposed")
            }
        },
        DepositStatus::Reported => {
            let best = d.claims.iter().max_by_key(|c| c.weight);
            let (weight, total) = best.map_or((0, 0), |c| (c.weight, c.total_weight));
            not_due(format!(
                "reported by SONs holding {weight} of the wallet's weight {total}; more than \
                 two thirds must report the same amount and user"
            ))
        }
        other => not_due(format!("the deposit is {other}")),
    }
}

/// The withdrawal a subject names (`bitcoin:withdrawal:N` or `bitcoin:refund:N`), if it
/// exists.
fn withdrawal(state: &State, subject: &Subject) -> Option<u64> {
    let n = named(subject, &["bitcoin:withdrawal:", "bitcoin:refund:"])?.parse().ok()?;
    state.row::<Withdrawals>(&n).map(|_| n)
}

/// `bitcoin_withdrawal_process` about `bitcoin:withdrawal:N`, at the lowest fee rate.
pub fn withdrawal_payment(state: &State, subject: &Subject) -> Readiness {
    let Some(id) =
        withdrawal(state, subject).filter(|_| named(subject, &["bitcoin:withdrawal:"]).is_some())
    else {
        return NotAbout;
    };
    if let Some(why) = paused(state) {
        return not_due(why);
    }
    match expected_withdrawal(state, id, state.param::<MinFeeRate>()) {
        Ok(_) => due("pending, and the primary wallet can pay it: its payment may be proposed"),
        Err(e) => not_due(e.to_string()),
    }
}

/// `bitcoin_withdrawal_refund` about `bitcoin:refund:N`, and about `bitcoin:withdrawal:N` too
/// (whether the withdrawal would be refunded).
pub fn withdrawal_refund(state: &State, subject: &Subject) -> Readiness {
    let Some(id) = withdrawal(state, subject) else { return NotAbout };
    let op = crate::flows::RefundWithdrawal { withdrawal: id };
    match crate::flows::check_refund(state, &op) {
        Ok(reason) => due(format!("its refund may be proposed: {reason}")),
        Err(e) => not_due(e.to_string()),
    }
}

/// The sidechain transaction a subject names (`bitcoin:tx:N` or `OWN:N`), if it exists.
fn sidechain_tx<'a>(state: &'a State, subject: &Subject, own: &str) -> Option<&'a SidechainTx> {
    let n: u64 = named(subject, &["bitcoin:tx:", own])?.parse().ok()?;
    state.row::<Transactions>(&n)
}

/// `bitcoin_tx_settle` about `bitcoin:settle:N` (or `bitcoin:tx:N`).
pub fn settle(state: &State, subject: &Subject) -> Readiness {
    let Some(t) = sidechain_tx(state, subject, "bitcoin:settle:") else { return NotAbout };
    let id = t.id;
    if !t.is_unsettled() {
        return not_due(format!("sidechain tx {id} is {}", t.status));
    }
    let Some(version) = t.signed_versions().last() else {
        return not_due(format!(
            "sidechain tx {id} is collecting signatures ({} of the {} weight it needs)",
            t.signed_weight, t.threshold
        ));
    };
    not_due(format!(
        "sidechain tx {id} is signed (as {}): its settlement waits for the SONs to see it with \
         {} on Bitcoin",
        version.txid,
        counted(state.param::<MinConfirmations>(), "confirmation")
    ))
}

/// `bitcoin_tx_bump` about `bitcoin:bump:N` (or `bitcoin:tx:N`).
pub fn bump(state: &State, subject: &Subject) -> Readiness {
    let Some(t) = sidechain_tx(state, subject, "bitcoin:bump:") else { return NotAbout };
    let id = t.id;
    if !matches!(t.status, TxStatus::Complete | TxStatus::Sent { .. }) {
        return not_due(format!("sidechain tx {id} is {}; only a signed one is bumped", t.status));
    }
    let timeout = state.param::<ConfirmTimeout>();
    let at = t.completed.unwrap_or(t.created).plus(timeout);
    let why = format!(
        "re-signed at a higher fee rate when unsettled bitcoin.confirm_timeout ({timeout} s) \
         after it was signed"
    );
    if state.head_time() < at {
        DueAt { at, why }
    } else {
        due(why)
    }
}

/// `bitcoin_wallet_utxo` about `bitcoin:utxo:TXID:VOUT`.
pub fn utxo(state: &State, subject: &Subject) -> Readiness {
    let Some(text) = named(subject, &["bitcoin:utxo:"]) else { return NotAbout };
    let Ok(o) = text.parse::<OutPoint>() else { return NotAbout };
    if let Some(u) = state.row::<Utxos>(&utxo_key(&o)) {
        return not_due(format!("{o} is recorded already, in wallet {}", u.wallet));
    }
    if crate::ops::known_output(state, &o) {
        return not_due(format!("{o} is a deposit or a sidechain transaction's output"));
    }
    match current_wallet(state) {
        Some(w) => not_due(format!(
            "not recorded: it waits for the SONs to see it pay wallet {} with {} on Bitcoin",
            w.id,
            counted(state.param::<MinConfirmations>(), "confirmation")
        )),
        None => not_due("there is no wallet yet"),
    }
}

/// `bitcoin_reconcile` about `bitcoin:reconcile`.
pub fn reconcile(state: &State, subject: &Subject) -> Readiness {
    if !is(subject, "bitcoin:reconcile") {
        return NotAbout;
    }
    let outputs = counted(state.rows::<Utxos>().count() as u64, "output");
    let wallets = counted(state.rows::<Wallets>().count() as u64, "wallet");
    not_due(format!(
        "raised only when the SONs see outputs the chain counts ({outputs} in {wallets}) vanish \
         from Bitcoin"
    ))
}

/// `bitcoin_resume` about `bitcoin:resume`.
pub fn resume(state: &State, subject: &Subject) -> Readiness {
    if !is(subject, "bitcoin:resume") {
        return NotAbout;
    }
    match paused(state) {
        Some(_) => due(format!(
            "deposits and withdrawals are paused with {} sat unbacked: the SONs may accept it",
            books(state).deficit_sat()
        )),
        None => not_due("deposits and withdrawals are not paused"),
    }
}
