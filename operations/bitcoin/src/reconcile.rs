//! Reconciliation and the circuit breaker: what the chain records of Bitcoin compared with
//! what Bitcoin holds, as SONs above two thirds see it.
//!
//! The chain acts on Bitcoin transactions once they have `bitcoin.min_confirmations`; a
//! reorganisation deeper than that (or a double spend of a deposit) can take away outputs the
//! chain already counts. Each SON compares the chain's records with its own view; the SON on
//! duty proposes `bitcoin_reconcile` with what is gone, and SONs approve only what their own
//! views show gone. Executed, it removes the vanished outputs (recording the loss), fails the
//! transactions that spent them (returning their other inputs), and marks vanished deposits.
//! A loss the reserve cannot absorb is a deficit: PBTC without Bitcoin behind it. While the
//! deficit exceeds what the SONs accepted (`bitcoin_resume`), deposit sweeps and withdrawal
//! payments pause — the guard `bitcoin-breaker` — so nobody is paid out of others' backing and
//! no new deposit fills the hole unknowingly; paying into the wallet makes it good.

use std::collections::BTreeMap;
use std::fmt;

use bitcoin::OutPoint;
use serde::{Deserialize, Serialize};
use sonprop_core::{
    AccountId, ApplyContext, ChainEvent, Operation, OperationError, State, Subject,
};

use crate::ops::{rule, BitcoinError};
use crate::state::{
    books, paused, utxo_key, BooksTable, DepositStatus, Deposits, Transactions, TxStatus, Utxos,
};
use crate::{RECONCILE, RESUME};
use sonprop_core::chain::event::counted;

/// The most outpoints one reconciliation carries.
pub const MAX_RECONCILED: usize = 500;

/// Outpoints the chain records that SONs above two thirds no longer see on Bitcoin: recorded
/// wallet outputs, inputs of unsettled sidechain transactions (none of whose versions Bitcoin
/// holds), and confirmed deposits not swept yet. A SON proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconcile {
    /// The vanished outpoints, `txid:vout`, in outpoint order, each once.
    pub gone: Vec<String>,
}

/// What one vanished outpoint is to the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// A recorded wallet output, with its amount.
    WalletOutput(OutPoint, u64),
    /// An input of unsettled sidechain transaction `tx`.
    TxInput(u64, OutPoint),
    /// A confirmed deposit, not swept yet.
    Deposit(OutPoint),
}

impl Gone {
    /// The outpoint.
    pub fn outpoint(&self) -> OutPoint {
        match self {
            Gone::WalletOutput(o, _) | Gone::TxInput(_, o) | Gone::Deposit(o) => *o,
        }
    }
}

/// What `o` is to the chain, if the chain records it as something Bitcoin should hold.
pub fn classify(state: &State, o: &OutPoint) -> Option<Gone> {
    let key = utxo_key(o);
    if let Some(u) = state.row::<Utxos>(&key) {
        return Some(Gone::WalletOutput(*o, u.amount_sat));
    }
    if let Some(t) =
        state.rows_by(&crate::state::TXS_BY_INPUT, &key).map(|(_, t)| t).find(|t| t.is_unsettled())
    {
        return Some(Gone::TxInput(t.id, *o));
    }
    state
        .row::<Deposits>(&key)
        .filter(|d| d.status == DepositStatus::Confirmed)
        .map(|_| Gone::Deposit(*o))
}

/// The reconciliation rule: a non-empty, ordered list without repeats, of at most
/// [`MAX_RECONCILED`] outpoints, each something the chain records as held by Bitcoin.
pub fn check_reconcile(state: &State, op: &Reconcile) -> Result<Vec<Gone>, BitcoinError> {
    if op.gone.is_empty() || op.gone.len() > MAX_RECONCILED {
        return Err(BitcoinError::Reconcile(format!(
            "{} outpoints: between 1 and {MAX_RECONCILED} are reconciled at a time",
            op.gone.len()
        )));
    }
    let mut out = Vec::with_capacity(op.gone.len());
    let mut last: Option<OutPoint> = None;
    for text in &op.gone {
        let o: OutPoint = text.parse().map_err(|_| BitcoinError::Hex(text.clone()))?;
        if last.is_some_and(|l| l >= o) {
            return Err(BitcoinError::Reconcile(format!("{o} is out of order or repeated")));
        }
        last = Some(o);
        let g = classify(state, &o).ok_or_else(|| {
            BitcoinError::Reconcile(format!("{o} is nothing the chain expects Bitcoin to hold"))
        })?;
        out.push(g);
    }
    Ok(out)
}

/// A reconciliation executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(kind = RECONCILE, name = "reconciled")]
pub struct Reconciled {
    /// Recorded wallet outputs removed.
    pub outputs: usize,
    /// Satoshis the chain lost with them and with the failed transactions' vanished inputs.
    pub lost_sat: u64,
    /// Sidechain transactions failed because an input vanished.
    pub failed_txs: Vec<u64>,
    /// Deposits marked vanished.
    pub deposits: usize,
    /// The deficit after it (PBTC no Bitcoin backs).
    pub deficit_sat: u64,
    /// Whether deposits and withdrawals are paused after it.
    pub paused: bool,
}
impl fmt::Display for Reconciled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reconciled with Bitcoin: {} recorded and {} sat gone, {} failed, {} vanished",
            counted(self.outputs as u64, "output"),
            self.lost_sat,
            counted(self.failed_txs.len() as u64, "transaction"),
            counted(self.deposits as u64, "deposit")
        )?;
        match (self.deficit_sat, self.paused) {
            (0, _) => write!(f, "; the reserve absorbs the loss"),
            (d, true) => write!(f, "; {d} sat of PBTC unbacked: deposits and withdrawals pause"),
            (d, false) => write!(f, "; {d} sat of PBTC unbacked (accepted by the SONs)"),
        }
    }
}

#[sonprop_core::operation(
    name = "bitcoin_reconcile",
    description = "record outputs the chain counts that vanished from Bitcoin; fail what spent them",
    proposal = crate::rules::son_proposal(reconcile_readiness),
    example = Reconcile {
        gone: vec![
            "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b:0".into()
        ],
    }
)]
impl Operation for Reconcile {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named("bitcoin:reconcile".into()))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_reconcile(state, self).map(|_| ()).map_err(rule(RECONCILE))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let fail = rule(RECONCILE);
        let gone = check_reconcile(ctx, self).map_err(&fail)?;
        let lost_before = books(ctx).lost_sat;
        let mut outputs = 0;
        let mut deposits = 0;
        let mut by_tx: BTreeMap<u64, Vec<OutPoint>> = BTreeMap::new();
        for g in &gone {
            match *g {
                Gone::WalletOutput(o, amount) => {
                    ctx.put_row::<Utxos>(&utxo_key(&o), None)?;
                    let mut b = books(ctx);
                    b.lost_sat = b.lost_sat.saturating_add(amount);
                    ctx.put_row::<BooksTable>(&0, Some(b))?;
                    outputs += 1;
                }
                Gone::TxInput(tx, o) => by_tx.entry(tx).or_default().push(o),
                Gone::Deposit(o) => {
                    if let Some(mut d) = ctx.row::<Deposits>(&utxo_key(&o)).cloned() {
                        d.status = DepositStatus::Vanished;
                        ctx.put_row::<Deposits>(&utxo_key(&o), Some(d))?;
                        deposits += 1;
                    }
                }
            }
        }
        let mut failed_txs = Vec::new();
        for (id, vanished) in by_tx {
            let mut t = ctx
                .row::<Transactions>(&id)
                .cloned()
                .ok_or_else(|| fail(BitcoinError::UnknownTx(id)))?;
            crate::flows::fail_effects(ctx, &t, &vanished)?;
            if matches!(t.purpose, crate::state::Purpose::Deposit { .. }) {
                deposits += 1;
            }
            let list: Vec<String> = vanished.iter().map(ToString::to_string).collect();
            t.status =
                TxStatus::Failed { reason: format!("vanished from Bitcoin: {}", list.join(", ")) };
            ctx.put_row::<Transactions>(&id, Some(t))?;
            failed_txs.push(id);
        }
        let b = books(ctx);
        ctx.emit_event(&Reconciled {
            outputs,
            lost_sat: b.lost_sat - lost_before,
            failed_txs,
            deposits,
            deficit_sat: b.deficit_sat(),
            paused: paused(ctx).is_some(),
        });
        Ok(())
    }
}

/// The SONs carry on despite a deficit: deposits and withdrawals resume while the deficit is
/// at most `deficit_sat` (the PBTC unbacked is then everyone's loss, shared as the users and
/// SONs agree off chain). A SON proposal no node approves by itself: each SON's operator
/// decides and approves it by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// The deficit accepted: exactly the deficit now.
    pub deficit_sat: u64,
}

/// The resume rule: the breaker is tripped and the proposal names the deficit as it stands.
pub fn check_resume(state: &State, op: &Resume) -> Result<(), BitcoinError> {
    let b = books(state);
    if paused(state).is_none() {
        return Err(BitcoinError::Reconcile("deposits and withdrawals are not paused".into()));
    }
    if op.deficit_sat != b.deficit_sat() {
        return Err(BitcoinError::Reconcile(format!(
            "the deficit is {} sat, not {}",
            b.deficit_sat(),
            op.deficit_sat
        )));
    }
    Ok(())
}

/// Deposits and withdrawals resumed despite a deficit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(
    kind = RESUME,
    name = "resumed",
    display = "the SONs accept a deficit of {deficit_sat} sat: deposits and withdrawals resume"
)]
pub struct Resumed {
    /// The deficit accepted.
    pub deficit_sat: u64,
}

#[sonprop_core::operation(
    name = "bitcoin_resume",
    description = "the SONs accept a deficit: deposits and withdrawals resume",
    proposal = crate::rules::son_proposal(resume_readiness),
    example = Resume { deficit_sat: 10_000 }
)]
impl Operation for Resume {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named("bitcoin:resume".into()))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_resume(state, self).map_err(rule(RESUME))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        check_resume(ctx, self).map_err(rule(RESUME))?;
        let mut b = books(ctx);
        b.lifted_sat = self.deficit_sat;
        ctx.put_row::<BooksTable>(&0, Some(b))?;
        ctx.emit_event(&Resumed { deficit_sat: self.deficit_sat });
        Ok(())
    }
}

/// The guard on deposit sweeps and withdrawal payments: deferred while the breaker is tripped.
pub fn breaker(state: &State, _: &Subject) -> Option<String> {
    paused(state)
}

/// What needs a person's attention on the bridge now, in words: the circuit breaker, and a
/// reserve too short to pay the sweep the wallet needs next (even at the lowest fee rate).
/// A function of the state, so every node, report and explanation says the same.
pub fn alarms(state: &State) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(why) = paused(state) {
        out.push(why);
    }
    let min = state.param::<crate::state::MinFeeRate>();
    if let Ok(Some(sweep)) = crate::ops::expected_sweep(state, min) {
        if let Err(BitcoinError::ReserveShort { fee, reserve }) =
            crate::ops::check_sweep(state, &sweep)
        {
            let what = if sweep.from == sweep.to {
                format!("consolidating wallet {}", sweep.from)
            } else {
                format!("sweeping wallet {} into wallet {}", sweep.from, sweep.to)
            };
            out.push(format!(
                "the SONs' reserve is short: {what} costs {fee} sat even at {min} sat/vB, and \
                 the reserve holds {reserve} sat; it waits until the SONs pay into the wallet"
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Readiness, for `explain` (see the `readiness` module)

use crate::rules::{due, is, not_due};
use crate::state::Wallets;
use sonprop_core::Readiness::{self, NotAbout};

/// `bitcoin_reconcile` about `bitcoin:reconcile`.
pub fn reconcile_readiness(state: &State, subject: &Subject) -> Readiness {
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
pub fn resume_readiness(state: &State, subject: &Subject) -> Readiness {
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
