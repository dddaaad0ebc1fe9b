//! The operations: a wallet update (with the sweep of the old wallet), a SON's signatures, a
//! transaction failing at its deadline, and a wallet output the SONs saw.

use std::collections::BTreeMap;
use std::fmt;

use bitcoin::{OutPoint, ScriptBuf, Txid};
use serde::{Deserialize, Serialize};
use sonprop_core::{
    AccountId, ApplyContext, ChainEvent, Operation, OperationError, SonId, State, Subject,
};

use crate::script::{self, p2wsh_address};
use crate::state::{
    books, current_wallet, expected_signers, script_signers, unsettled, utxo_key, wallet_utxos,
    BooksTable, ConfirmTimeout, ConsolidateAbove, NetworkParam, Purpose, SidechainTx, SignTimeout,
    Transactions, TxStatus, Utxo, Utxos, Wallet, WalletSigner, Wallets,
};
use crate::tx::{self, Spend};
use crate::{SENT, SETTLE, SIGN, TX_BUMP, TX_FAIL, UTXO, WALLET_SWEEP, WALLET_UPDATE};

pub use crate::rules::BitcoinError;
pub(crate) use crate::rules::{elected_owner, fee_in_bounds, new_tx, rule, spends_of, take_inputs};

fn hex_bytes(h: &str) -> Result<Vec<u8>, BitcoinError> {
    sonprop_core::chain::crypto::from_hex(h).ok_or_else(|| BitcoinError::Hex(h.to_owned()))
}

/// Records a new primary wallet for the SONs of the last maintenance interval. The old
/// wallets' outputs move to it afterwards, in bounded batches ([`WalletSweep`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletUpdate {
    /// The new wallet's number.
    pub wallet: u64,
    /// Its SONs, keys and weights.
    pub signers: Vec<WalletSigner>,
}

/// The wallet update the chain expects now, built from state alone: what a trigger proposes
/// and what every check compares against. `Ok(None)` when the SONs hold the current wallet
/// already.
pub fn expected_update(state: &State) -> Result<Option<WalletUpdate>, BitcoinError> {
    let current = current_wallet(state);
    // The usual case, without parsing a key: the current wallet has the expected signers.
    if current.is_some_and(|w| Ok(&w.signers) == crate::state::unchecked_signers(state).as_ref()) {
        return Ok(None);
    }
    let signers = expected_signers(state)?;
    let script = script::weighted_script(
        &script_signers(&signers).map_err(crate::state::WalletError::from)?,
    )
    .map_err(crate::state::WalletError::from)?;
    if current.is_some_and(|w| w.witness_script == script.to_hex_string()) {
        return Ok(None);
    }
    let wallet = current.map_or(0, |w| w.id + 1);
    Ok(Some(WalletUpdate { wallet, signers }))
}

/// The oldest wallet other than the current one that still holds outputs.
pub fn wallet_to_empty(state: &State) -> Option<&Wallet> {
    let current = current_wallet(state)?.id;
    state
        .rows::<Wallets>()
        .map(|(_, w)| w)
        .take_while(|w| w.id != current)
        .find(|w| state.rows_by(&crate::state::UTXOS_BY_WALLET, &w.id).next().is_some())
}

/// The wallet-update rule, shared by the check, the trigger and the validator. A wallet
/// changes only when nothing is in flight and every older wallet has been emptied, so funds
/// sit in at most two wallets, and each is signed by a SON set that is still mostly elected.
pub fn check_update(state: &State, op: &WalletUpdate) -> Result<(), BitcoinError> {
    if let Some(t) = unsettled(state).next() {
        return Err(BitcoinError::SweepPending(t.id));
    }
    if let Some(old) = wallet_to_empty(state) {
        return Err(BitcoinError::OldWalletNotEmpty(old.id));
    }
    let expected = expected_update(state)?.ok_or(BitcoinError::NoChange)?;
    if op.wallet != expected.wallet {
        return Err(BitcoinError::WrongWalletId { expected: expected.wallet, given: op.wallet });
    }
    if op.signers != expected.signers {
        return Err(BitcoinError::WrongSigners);
    }
    Ok(())
}

/// A new wallet was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(
    kind = WALLET_UPDATE,
    name = "created",
    display = "primary wallet {wallet} ({signers} SONs): {address}"
)]
pub struct WalletCreated {
    /// Its number.
    pub wallet: u64,
    /// Its address.
    pub address: String,
    /// Its SONs.
    pub signers: usize,
}

#[sonprop_core::operation(
    name = "bitcoin_wallet_update",
    description = "record the elected SONs' new primary wallet and the sweep of the old one",
    proposal = crate::rules::son_proposal(wallet_update_readiness),
    example = WalletUpdate { wallet: 1, signers: Vec::new() }
)]
impl Operation for WalletUpdate {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named("bitcoin:wallet".into()))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_update(state, self).map_err(rule(WALLET_UPDATE))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let fail = rule(WALLET_UPDATE);
        let now = ctx.now();
        let signers =
            script_signers(&self.signers).map_err(|e| fail(BitcoinError::Wallet(e.into())))?;
        let script =
            script::weighted_script(&signers).map_err(|e| fail(BitcoinError::Wallet(e.into())))?;
        let network = ctx.param::<NetworkParam>();
        let address = p2wsh_address(&script, network).to_string();
        if let Some(mut old) = current_wallet(ctx).cloned() {
            old.expires = Some(now);
            ctx.put_row::<Wallets>(&old.id.clone(), Some(old))?;
        }
        ctx.emit_event(&WalletCreated {
            wallet: self.wallet,
            address: address.clone(),
            signers: self.signers.len(),
        });
        let wallet = Wallet {
            id: self.wallet,
            signers: self.signers.clone(),
            witness_script: script.to_hex_string(),
            address,
            valid_from: now,
            expires: None,
        };
        ctx.put_row::<Wallets>(&self.wallet, Some(wallet))
    }
}

/// Moves a batch of a wallet's outputs to the current wallet, signed by the SONs of the wallet
/// it empties: the outputs of an older wallet after a wallet update (largest first), or, when
/// the current wallet holds more than `bitcoin.consolidate_above` outputs, its smallest ones
/// merged into one. A batch is at most what keeps the transaction standard
/// ([`tx::max_inputs`]); its fee comes out of the SONs' reserve. Every node rebuilds it from
/// its own state and the proposal's fee rate and compares bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletSweep {
    /// The wallet whose outputs it spends (whose SONs sign).
    pub from: u64,
    /// The wallet it pays: the current one.
    pub to: u64,
    /// The fee rate, sat/vB.
    pub fee_rate: u64,
    /// The unsigned transaction, hex.
    pub unsigned_tx: String,
}

/// Which outputs a sweep takes now: an older wallet's, largest first, or the current wallet's
/// smallest when it holds more than `bitcoin.consolidate_above`; at most a standard
/// transaction's worth. `None` when nothing needs moving.
pub fn sweep_batch(state: &State) -> Option<(&Wallet, &Wallet, Vec<Spend>)> {
    let current = current_wallet(state)?;
    let (from, mut utxos, largest_first) = match wallet_to_empty(state) {
        Some(old) => (old, wallet_utxos(state, old.id), true),
        None => {
            let held = state.rows_by(&crate::state::UTXOS_BY_WALLET, &current.id).count();
            if (held as u64) <= state.param::<ConsolidateAbove>() {
                return None;
            }
            (current, wallet_utxos(state, current.id), false)
        }
    };
    if largest_first {
        utxos.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    } else {
        utxos.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    }
    let max = tx::max_inputs(1, from.signers.len(), from.script().len());
    let batch = utxos
        .into_iter()
        .take(max)
        .map(|(outpoint, amount_sat)| Spend { outpoint, amount_sat })
        .collect();
    Some((from, current, batch))
}

/// The sweep the chain expects now at `fee_rate`, from state alone; `Ok(None)` when nothing
/// needs moving.
pub fn expected_sweep(state: &State, fee_rate: u64) -> Result<Option<WalletSweep>, BitcoinError> {
    fee_in_bounds(state, fee_rate)?;
    if let Some(t) = unsettled(state).find(|t| matches!(t.purpose, Purpose::Sweep { .. })) {
        return Err(BitcoinError::SweepPending(t.id));
    }
    let Some((from, to, batch)) = sweep_batch(state) else { return Ok(None) };
    let spk = ScriptBuf::new_p2wsh(&to.script().wscript_hash());
    let t = tx::build_sweep(&batch, &spk, fee_rate, from.signers.len(), from.script().len())?;
    Ok(Some(WalletSweep { from: from.id, to: to.id, fee_rate, unsigned_tx: tx::to_hex(&t) }))
}

/// What a transaction pays Bitcoin's miners: its inputs' amounts less its outputs.
fn fee_of(inputs: &[Spend], t: &bitcoin::Transaction) -> u64 {
    let inputs: u64 = inputs.iter().map(|s| s.amount_sat).sum();
    inputs.saturating_sub(t.output.iter().map(|o| o.value.to_sat()).sum())
}

/// The sweep rule: the proposal is the sweep the chain builds, and the reserve can pay its
/// fee (a sweep's fee comes out of the SONs' reserve, never out of what backs PBTC).
pub fn check_sweep(state: &State, op: &WalletSweep) -> Result<(), BitcoinError> {
    let want = expected_sweep(state, op.fee_rate)?.ok_or(BitcoinError::NothingToSweep)?;
    if want != *op {
        return Err(BitcoinError::TxMismatch);
    }
    let t =
        tx::from_hex(&op.unsigned_tx).ok_or_else(|| BitcoinError::Hex(op.unsigned_tx.clone()))?;
    let spends = spends_of(state, &t)?;
    reserve_covers(state, fee_of(&spends, &t))
}

/// The reserve can pay `fee` (a sweep's, or a sweep's fee bump).
pub(crate) fn reserve_covers(state: &State, fee: u64) -> Result<(), BitcoinError> {
    let reserve = books(state).reserve_sat();
    if fee > reserve {
        return Err(BitcoinError::ReserveShort { fee, reserve });
    }
    Ok(())
}

/// A wallet sweep was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(kind = WALLET_SWEEP, name = "created")]
pub struct SweepCreated {
    /// The sidechain transaction.
    pub tx: u64,
    /// The wallet it empties.
    pub from: u64,
    /// The wallet it pays.
    pub to: u64,
    /// Outputs it moves.
    pub inputs: usize,
    /// Satoshis they hold.
    pub amount_sat: u64,
}
impl fmt::Display for SweepCreated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.from == self.to { "consolidates" } else { "sweeps" };
        write!(
            f,
            "sidechain tx {} {what} {} of wallet {} ({} sat) into wallet {}",
            self.tx,
            sonprop_core::chain::event::counted(self.inputs as u64, "output"),
            self.from,
            self.amount_sat,
            self.to
        )
    }
}

#[sonprop_core::operation(
    name = "bitcoin_wallet_sweep",
    description = "move a batch of wallet outputs into the current wallet (after a wallet update, or to consolidate)",
    proposal = crate::rules::son_proposal(wallet_sweep_readiness),
    example = WalletSweep { from: 0, to: 1, fee_rate: 2, unsigned_tx: String::new() }
)]
impl Operation for WalletSweep {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named("bitcoin:sweep".into()))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_sweep(state, self).map_err(rule(WALLET_SWEEP))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        // The ledger ran `check` (which rebuilt the sweep) right before this.
        let fail = rule(WALLET_SWEEP);
        let t = tx::from_hex(&self.unsigned_tx)
            .ok_or_else(|| fail(BitcoinError::Hex(self.unsigned_tx.clone())))?;
        let from = ctx
            .row::<Wallets>(&self.from)
            .cloned()
            .ok_or_else(|| fail(BitcoinError::Inconsistent(format!("wallet {}", self.from))))?;
        let inputs = take_inputs(ctx, &t, WALLET_SWEEP)?;
        let amount_sat = inputs.iter().map(|i| i.amount_sat).sum();
        let purpose = Purpose::Sweep { from: self.from, to: self.to };
        let row = new_tx(ctx, purpose, &from, &self.unsigned_tx, self.fee_rate, inputs);
        ctx.emit_event(&SweepCreated {
            tx: row.id,
            from: self.from,
            to: self.to,
            inputs: row.inputs.len(),
            amount_sat,
        });
        ctx.put_row::<Transactions>(&row.id.clone(), Some(row))
    }
}

/// A SON's signatures of a sidechain transaction, one per input, submitted by the SON itself;
/// the ledger verifies each against the SON's key in the signing wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignTx {
    /// The sidechain transaction.
    pub tx: u64,
    /// The signing SON.
    pub son: SonId,
    /// Its owner (who signs the chain transaction).
    pub owner: AccountId,
    /// DER + sighash byte per input, hex.
    pub signatures: Vec<String>,
}

/// The signing rule: everything but the signatures' validity.
fn signer_weight(
    state: &State,
    tx_id: u64,
    son: SonId,
    owner: AccountId,
) -> Result<(&SidechainTx, &Wallet, u16), BitcoinError> {
    let t = state.row::<Transactions>(&tx_id).ok_or(BitcoinError::UnknownTx(tx_id))?;
    if t.status != TxStatus::Valid {
        return Err(BitcoinError::NotValid { id: tx_id, status: t.status.to_string() });
    }
    if state.head_time() >= t.deadline {
        return Err(BitcoinError::PastDeadline(tx_id));
    }
    let s = state.son(son).ok_or(BitcoinError::NotASigner { son, tx: tx_id })?;
    if s.owner != owner {
        return Err(BitcoinError::NotOwner { son, given: owner });
    }
    let wallet = state
        .row::<Wallets>(&t.signing_wallet)
        .ok_or_else(|| BitcoinError::Inconsistent(format!("wallet {}", t.signing_wallet)))?;
    let me = wallet
        .signers
        .iter()
        .find(|w| w.son == son)
        .ok_or(BitcoinError::NotASigner { son, tx: tx_id })?;
    if t.signatures.contains_key(&son) {
        return Err(BitcoinError::AlreadySigned { son, tx: tx_id });
    }
    Ok((t, wallet, me.weight))
}

/// The witness script `t`'s inputs spend (signed by `wallet`, its signing wallet): the wallet's
/// own script, or for a deposit sweep the user's one-or-weighted script over that wallet.
pub fn spent_script(t: &SidechainTx, wallet: &Wallet) -> Result<ScriptBuf, BitcoinError> {
    match &t.purpose {
        Purpose::Deposit { user_key, .. } => crate::state::deposit_script(user_key, wallet)
            .map_err(|e| BitcoinError::Inconsistent(e.to_string())),
        _ => Ok(wallet.script()),
    }
}

/// Checks `sigs` of `son` for every input of `t`.
pub fn verify_signatures(
    t: &SidechainTx,
    wallet: &Wallet,
    son: SonId,
    sigs: &[String],
) -> Result<(), BitcoinError> {
    if sigs.len() != t.inputs.len() {
        return Err(BitcoinError::SignatureCount { given: sigs.len(), inputs: t.inputs.len() });
    }
    let unsigned =
        tx::from_hex(&t.unsigned_tx).ok_or_else(|| BitcoinError::Hex(t.unsigned_tx.clone()))?;
    let signer = wallet
        .signers
        .iter()
        .find(|w| w.son == son)
        .ok_or(BitcoinError::NotASigner { son, tx: t.id })?;
    let key = script::parse_key(&signer.public_key)
        .map_err(|e| BitcoinError::Inconsistent(e.to_string()))?;
    let script = spent_script(t, wallet)?;
    for (i, (sig, input)) in sigs.iter().zip(&t.inputs).enumerate() {
        let bytes = hex_bytes(sig)?;
        tx::verify_input(&unsigned, i, &script, input.amount_sat, &key, &bytes)
            .map_err(|source| BitcoinError::BadSignature { input: i, source })?;
    }
    Ok(())
}

/// A sidechain transaction reached its threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(
    kind = SIGN,
    name = "complete",
    display = "sidechain tx {tx} complete (weight {signed_weight}): {txid}"
)]
pub struct TxComplete {
    /// It.
    pub tx: u64,
    /// Its Bitcoin txid.
    pub txid: String,
    /// The weight that signed.
    pub signed_weight: u32,
}

#[sonprop_core::operation(
    name = "bitcoin_tx_sign",
    description = "a SON's signatures of a sidechain transaction, verified on chain",
    example = SignTx { tx: 0, son: SonId(3), owner: AccountId(14), signatures: Vec::new() }
)]
impl Operation for SignTx {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named(format!("bitcoin:sign:{}:{}", self.tx, self.son)))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.owner]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        let (t, wallet, _) =
            signer_weight(state, self.tx, self.son, self.owner).map_err(rule(SIGN))?;
        verify_signatures(t, wallet, self.son, &self.signatures).map_err(rule(SIGN))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let (t, _, weight) =
            signer_weight(ctx, self.tx, self.son, self.owner).map_err(rule(SIGN))?;
        let mut t = t.clone();
        t.signatures.insert(self.son, self.signatures.clone());
        t.signed_weight += u32::from(weight);
        // Counted for the SON's pay: the budget is split by signatures in the period.
        let mut son = ctx.son(self.son).cloned().ok_or(OperationError::UnknownSon(self.son))?;
        son.statistics.txs_signed += 1;
        ctx.put_son(son)?;
        if t.signed_weight >= t.threshold {
            t.status = TxStatus::Complete;
            t.completed = Some(ctx.now());
            let unsigned = tx::from_hex(&t.unsigned_tx)
                .ok_or_else(|| rule(SIGN)(BitcoinError::Hex(t.unsigned_tx.clone())))?;
            let txid = tx::txid(&unsigned).to_string();
            ctx.emit_event(&TxComplete { tx: t.id, txid, signed_weight: t.signed_weight });
        }
        ctx.put_row::<Transactions>(&t.id.clone(), Some(t))
    }
}

/// Ends the signing of a sidechain transaction that passed its deadline short of its threshold:
/// a fee bump whose earlier version was fully signed goes back to that version (which Bitcoin
/// may still confirm, so its inputs stay committed); otherwise the transaction fails and its
/// inputs go back to the wallet they belong to. Submitted by any elected SON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailTx {
    /// The sidechain transaction.
    pub tx: u64,
    /// The SON reporting it.
    pub son: SonId,
    /// Its owner (who signs).
    pub owner: AccountId,
}

fn check_fail(state: &State, op: &FailTx) -> Result<(), BitcoinError> {
    let t = tx_in_status(state, op.tx, &TxStatus::Valid)?;
    if state.head_time() < t.deadline {
        return Err(BitcoinError::BeforeDeadline(op.tx));
    }
    elected_owner(state, op.son, op.owner)
}

#[sonprop_core::operation(
    name = "bitcoin_tx_fail",
    description = "fail a sidechain transaction past its deadline; its inputs return",
    example = FailTx { tx: 0, son: SonId(3), owner: AccountId(14) }
)]
impl Operation for FailTx {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named(format!("bitcoin:fail:{}", self.tx)))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.owner]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_fail(state, self).map_err(rule(TX_FAIL))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let mut t = ctx
            .row::<Transactions>(&self.tx)
            .cloned()
            .ok_or_else(|| rule(TX_FAIL)(BitcoinError::UnknownTx(self.tx)))?;
        if let Some(v) = t.replaced.pop() {
            // The bump was not signed in time: the last signed version stands.
            t.bitcoin_txid = v.txid;
            t.unsigned_tx = v.unsigned_tx;
            t.fee_rate = v.fee_rate;
            t.signatures = v.signatures;
            t.signed_weight = v.signed_weight;
            t.status = TxStatus::Complete;
            t.completed = Some(ctx.now());
            ctx.emit_event(&BumpAbandoned { tx: t.id, txid: t.bitcoin_txid.clone() });
            return ctx.put_row::<Transactions>(&self.tx, Some(t));
        }
        crate::flows::fail_effects(ctx, &t, &[])?;
        t.status =
            TxStatus::Failed { reason: "not signed by the threshold before its deadline".into() };
        ctx.put_row::<Transactions>(&self.tx, Some(t))
    }
}

/// An output paying the current wallet that the SONs saw confirmed on Bitcoin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletUtxo {
    /// The wallet it pays.
    pub wallet: u64,
    /// Its transaction.
    pub txid: String,
    /// Its index.
    pub vout: u32,
    /// Its amount, in satoshis.
    pub amount_sat: u64,
}

impl WalletUtxo {
    /// Its outpoint, if the txid parses.
    pub fn outpoint(&self) -> Option<OutPoint> {
        Some(OutPoint { txid: self.txid.parse::<Txid>().ok()?, vout: self.vout })
    }
}

/// Whether the chain knows output `o` already: a wallet output, a deposit, or an output a
/// sidechain transaction created or spends.
pub fn known_output(state: &State, o: &OutPoint) -> bool {
    state.row::<Utxos>(&utxo_key(o)).is_some()
        || state.row::<crate::state::Deposits>(&utxo_key(o)).is_some()
        || crate::state::touched_by_sidechain_tx(state, o)
}

/// The rule for recording a wallet output.
pub fn check_utxo(state: &State, op: &WalletUtxo) -> Result<(), BitcoinError> {
    if op.amount_sat == 0 {
        return Err(BitcoinError::ZeroAmount);
    }
    let o = op.outpoint().ok_or_else(|| BitcoinError::Hex(op.txid.clone()))?;
    let current = current_wallet(state).ok_or(BitcoinError::NotCurrent(op.wallet))?;
    if current.id != op.wallet {
        return Err(BitcoinError::NotCurrent(op.wallet));
    }
    let known = known_output(state, &o);
    if known {
        return Err(BitcoinError::KnownOutput(o.to_string()));
    }
    Ok(())
}

#[sonprop_core::operation(
    name = "bitcoin_wallet_utxo",
    description = "record a confirmed output paying the current primary wallet",
    proposal = crate::rules::son_proposal(utxo_readiness),
    example = WalletUtxo {
        wallet: 0,
        txid: "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b".into(),
        vout: 0,
        amount_sat: 50_000,
    }
)]
impl Operation for WalletUtxo {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named(format!("bitcoin:utxo:{}:{}", self.txid, self.vout)))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_utxo(state, self).map_err(rule(UTXO))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let o = self.outpoint().ok_or_else(|| rule(UTXO)(BitcoinError::Hex(self.txid.clone())))?;
        let row = Utxo { wallet: self.wallet, amount_sat: self.amount_sat };
        ctx.put_row::<Utxos>(&utxo_key(&o), Some(row))?;
        let mut b = books(ctx);
        b.funded_sat = b.funded_sat.saturating_add(self.amount_sat);
        ctx.put_row::<BooksTable>(&0, Some(b))
    }
}

/// A SON broadcast a complete sidechain transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentTx {
    /// The sidechain transaction.
    pub tx: u64,
    /// Its Bitcoin txid.
    pub txid: String,
    /// The SON that broadcast it.
    pub son: SonId,
    /// Its owner (who signs).
    pub owner: AccountId,
}

fn tx_in_status<'a>(
    state: &'a State,
    id: u64,
    status: &TxStatus,
) -> Result<&'a SidechainTx, BitcoinError> {
    let t = state.row::<Transactions>(&id).ok_or(BitcoinError::UnknownTx(id))?;
    if t.status.code() != status.code() {
        return Err(BitcoinError::NotValid { id, status: t.status.to_string() });
    }
    Ok(t)
}

fn check_txid(t: &SidechainTx, given: &str) -> Result<(), BitcoinError> {
    let unsigned =
        tx::from_hex(&t.unsigned_tx).ok_or_else(|| BitcoinError::Hex(t.unsigned_tx.clone()))?;
    let expected = tx::txid(&unsigned).to_string();
    if expected != given {
        return Err(BitcoinError::WrongTxid { tx: t.id, expected, given: given.to_owned() });
    }
    Ok(())
}

fn check_sent(state: &State, op: &SentTx) -> Result<(), BitcoinError> {
    let t = tx_in_status(state, op.tx, &TxStatus::Complete)?;
    check_txid(t, &op.txid)?;
    elected_owner(state, op.son, op.owner)
}

#[sonprop_core::operation(
    name = "bitcoin_tx_sent",
    description = "a SON broadcast a complete sidechain transaction",
    example = SentTx {
        tx: 0,
        txid: "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b".into(),
        son: SonId(3),
        owner: AccountId(14),
    }
)]
impl Operation for SentTx {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named(format!("bitcoin:sent:{}", self.tx)))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.owner]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_sent(state, self).map_err(rule(SENT))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let mut t = ctx
            .row::<Transactions>(&self.tx)
            .cloned()
            .ok_or_else(|| rule(SENT)(BitcoinError::UnknownTx(self.tx)))?;
        t.status = TxStatus::Sent { txid: self.txid.clone() };
        ctx.emit_event(&TxSent { tx: self.tx, txid: self.txid.clone(), son: self.son });
        ctx.put_row::<Transactions>(&self.tx, Some(t))
    }
}

/// A SON broadcast a sidechain transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(kind = SENT, name = "sent", display = "sidechain tx {tx} broadcast by son {son}: {txid}")]
pub struct TxSent {
    /// It.
    pub tx: u64,
    /// Its Bitcoin txid.
    pub txid: String,
    /// The SON that broadcast it.
    pub son: SonId,
}

/// The SONs saw a version of a sidechain transaction confirmed: it settles, and that
/// version's outputs become the destination wallet's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettleTx {
    /// The sidechain transaction.
    pub tx: u64,
    /// The txid of the version Bitcoin confirmed (a fee bump leaves several, each signed).
    pub txid: String,
}

/// A sidechain transaction settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(
    kind = SETTLE,
    name = "settled",
    display = "sidechain tx {tx} settled ({txid}): its outputs to wallet {wallet} hold {amount_sat} sat"
)]
pub struct TxSettled {
    /// It.
    pub tx: u64,
    /// Its Bitcoin txid.
    pub txid: String,
    /// The wallet its outputs joined.
    pub wallet: u64,
    /// What they hold, in satoshis.
    pub amount_sat: u64,
}

/// The rule for settling: the transaction is unsettled and `txid` is one of its fully signed
/// versions. Its unsigned bytes.
pub fn check_settle<'a>(state: &'a State, op: &SettleTx) -> Result<&'a SidechainTx, BitcoinError> {
    let t = state.row::<Transactions>(&op.tx).ok_or(BitcoinError::UnknownTx(op.tx))?;
    if !t.is_unsettled() {
        return Err(BitcoinError::NotValid { id: op.tx, status: t.status.to_string() });
    }
    if !t.signed_versions().any(|v| v.txid == op.txid) {
        return Err(BitcoinError::WrongTxid {
            tx: op.tx,
            expected: t.signed_versions().map(|v| v.txid).collect::<Vec<_>>().join(" or "),
            given: op.txid.clone(),
        });
    }
    Ok(t)
}

#[sonprop_core::operation(
    name = "bitcoin_tx_settle",
    description = "the SONs saw a sent sidechain transaction confirmed: its outputs join the wallet; PBTC is issued (deposit) or burnt (withdrawal)",
    proposal = crate::rules::son_proposal(settle_readiness),
    example = SettleTx {
        tx: 0,
        txid: "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b".into(),
    }
)]
impl Operation for SettleTx {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named(format!("bitcoin:settle:{}", self.tx)))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_settle(state, self).map(|_| ()).map_err(rule(SETTLE))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let fail = rule(SETTLE);
        let mut t = check_settle(ctx, self).map_err(&fail)?.clone();
        let hex = t
            .signed_versions()
            .find(|v| v.txid == self.txid)
            .map(|v| v.unsigned_tx.to_owned())
            .ok_or_else(|| fail(BitcoinError::Inconsistent("version".into())))?;
        let unsigned = tx::from_hex(&hex).ok_or_else(|| fail(BitcoinError::Hex(hex.clone())))?;
        let (wallet, joined) = match &t.purpose {
            Purpose::Sweep { to, .. } => (*to, unsigned.output.iter().collect::<Vec<_>>()),
            Purpose::Deposit { to, .. } => (*to, unsigned.output.iter().take(1).collect()),
            Purpose::Withdrawal { wallet, .. } => {
                (*wallet, unsigned.output.iter().skip(1).collect())
            }
        };
        let total = joined.iter().map(|o| o.value.to_sat()).sum();
        crate::flows::settle_effects(ctx, &t, &unsigned)?;
        ctx.emit_event(&TxSettled { tx: t.id, txid: self.txid.clone(), wallet, amount_sat: total });
        t.status = TxStatus::Settled { txid: self.txid.clone() };
        ctx.put_row::<Transactions>(&self.tx, Some(t))
    }
}

/// Replaces a complete sidechain transaction that did not settle within
/// `bitcoin.confirm_timeout` by the same transaction (same inputs, same destinations) at a
/// higher fee rate: its sequences signal replace-by-fee, so Bitcoin takes the new version in
/// place of the old. The SONs sign the new version on chain; until they have, the old one
/// stands (and may still confirm). A SON proposal; the fee comes from where the first
/// version's did (the deposit, the withdrawal, or for a sweep the SONs' reserve).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BumpTx {
    /// The sidechain transaction.
    pub tx: u64,
    /// The new fee rate, sat/vB: above the current version's.
    pub fee_rate: u64,
    /// The new version, unsigned, hex.
    pub unsigned_tx: String,
}

/// The transaction `t` rebuilt at `fee_rate`: the same inputs and destinations, only the fee
/// (and so the amount the first output carries) differs.
pub fn rebuilt(state: &State, t: &SidechainTx, fee_rate: u64) -> Result<String, BitcoinError> {
    let current =
        tx::from_hex(&t.unsigned_tx).ok_or_else(|| BitcoinError::Hex(t.unsigned_tx.clone()))?;
    let spends = t
        .inputs
        .iter()
        .map(|i| {
            let outpoint = i
                .outpoint
                .parse()
                .map_err(|_| BitcoinError::Inconsistent(format!("outpoint {}", i.outpoint)))?;
            Ok(Spend { outpoint, amount_sat: i.amount_sat })
        })
        .collect::<Result<Vec<_>, BitcoinError>>()?;
    let wallet = state
        .row::<Wallets>(&t.signing_wallet)
        .ok_or_else(|| BitcoinError::Inconsistent(format!("wallet {}", t.signing_wallet)))?;
    let script_len = spent_script(t, wallet)?.len();
    let signers = wallet.signers.len();
    let out = |i: usize| {
        current
            .output
            .get(i)
            .map(|o| o.script_pubkey.clone())
            .ok_or_else(|| BitcoinError::Inconsistent(format!("output {i}")))
    };
    let built = match &t.purpose {
        Purpose::Sweep { .. } => tx::build_sweep(&spends, &out(0)?, fee_rate, signers, script_len)?,
        Purpose::Deposit { .. } => {
            let deposit = spends.first().copied().ok_or(tx::BuildError::NoInputs)?;
            tx::build_deposit_sweep(deposit, &out(0)?, fee_rate, signers, script_len)?
        }
        Purpose::Withdrawal { withdrawal, .. } => {
            let w = state
                .row::<crate::state::Withdrawals>(withdrawal)
                .ok_or(BitcoinError::UnknownWithdrawal(*withdrawal))?;
            let change = match current.output.get(1) {
                Some(o) => o.script_pubkey.clone(),
                None => ScriptBuf::new_p2wsh(&wallet.script().wscript_hash()),
            };
            tx::build_withdrawal(
                &spends,
                &out(0)?,
                w.amount_sat,
                &change,
                fee_rate,
                signers,
                script_len,
            )?
        }
    };
    Ok(tx::to_hex(&built))
}

/// The fee-bump rule: the current version is complete, unsettled for `bitcoin.confirm_timeout`
/// since it completed, the new rate is higher and within the chain's bounds, the new version
/// is the one the chain rebuilds, and for a sweep the reserve pays the higher fee.
pub fn check_bump(state: &State, op: &BumpTx) -> Result<(), BitcoinError> {
    let t = state.row::<Transactions>(&op.tx).ok_or(BitcoinError::UnknownTx(op.tx))?;
    if !matches!(t.status, TxStatus::Complete | TxStatus::Sent { .. }) {
        return Err(BitcoinError::NotValid { id: op.tx, status: t.status.to_string() });
    }
    let since = t.completed.unwrap_or(t.created);
    let due = since.plus(state.param::<ConfirmTimeout>());
    if state.head_time() < due {
        return Err(BitcoinError::BumpNotDue { tx: op.tx, at: due });
    }
    if op.fee_rate <= t.fee_rate {
        return Err(BitcoinError::BumpTooLow { rate: op.fee_rate, current: t.fee_rate });
    }
    fee_in_bounds(state, op.fee_rate)?;
    if rebuilt(state, t, op.fee_rate)? != op.unsigned_tx {
        return Err(BitcoinError::TxMismatch);
    }
    if matches!(t.purpose, Purpose::Sweep { .. }) {
        let spends: Vec<Spend> = t
            .inputs
            .iter()
            .filter_map(|i| {
                Some(Spend { outpoint: i.outpoint.parse().ok()?, amount_sat: i.amount_sat })
            })
            .collect();
        let new = tx::from_hex(&op.unsigned_tx)
            .ok_or_else(|| BitcoinError::Hex(op.unsigned_tx.clone()))?;
        reserve_covers(state, fee_of(&spends, &new))?;
    }
    Ok(())
}

/// A sidechain transaction was replaced by a higher fee rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(
    kind = TX_BUMP,
    name = "bumped",
    display = "sidechain tx {tx} did not confirm in time: {old_txid} replaced at {fee_rate} sat/vB by {txid} (to be signed)"
)]
pub struct TxBumped {
    /// It.
    pub tx: u64,
    /// The version replaced.
    pub old_txid: String,
    /// The new version (to be signed).
    pub txid: String,
    /// The new fee rate, sat/vB.
    pub fee_rate: u64,
}

/// A fee bump was not signed in time: the earlier signed version stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(
    kind = TX_FAIL,
    name = "bump_abandoned",
    display = "sidechain tx {tx}: the fee bump was not signed in time; {txid} stands"
)]
pub struct BumpAbandoned {
    /// It.
    pub tx: u64,
    /// The version that stands.
    pub txid: String,
}

#[sonprop_core::operation(
    name = "bitcoin_tx_bump",
    description = "replace a complete sidechain transaction that did not settle in time by the same one at a higher fee rate",
    proposal = crate::rules::son_proposal(bump_readiness),
    example = BumpTx { tx: 0, fee_rate: 5, unsigned_tx: String::new() }
)]
impl Operation for BumpTx {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named(format!("bitcoin:bump:{}", self.tx)))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_bump(state, self).map_err(rule(TX_BUMP))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let fail = rule(TX_BUMP);
        let mut t = ctx
            .row::<Transactions>(&self.tx)
            .cloned()
            .ok_or_else(|| fail(BitcoinError::UnknownTx(self.tx)))?;
        let new = tx::from_hex(&self.unsigned_tx)
            .ok_or_else(|| fail(BitcoinError::Hex(self.unsigned_tx.clone())))?;
        let txid = tx::txid(&new).to_string();
        let old_txid = std::mem::replace(&mut t.bitcoin_txid, txid.clone());
        t.replaced.push(crate::state::SignedVersion {
            txid: old_txid.clone(),
            unsigned_tx: std::mem::replace(&mut t.unsigned_tx, self.unsigned_tx.clone()),
            fee_rate: std::mem::replace(&mut t.fee_rate, self.fee_rate),
            signatures: std::mem::take(&mut t.signatures),
            signed_weight: std::mem::take(&mut t.signed_weight),
        });
        t.status = TxStatus::Valid;
        t.completed = None;
        t.deadline = ctx.now().plus(ctx.param::<SignTimeout>());
        ctx.emit_event(&TxBumped { tx: t.id, old_txid, txid, fee_rate: self.fee_rate });
        ctx.put_row::<Transactions>(&self.tx, Some(t))
    }
}

/// The signed transaction Bitcoin receives for `version` of `t`: each input's witness from the
/// signatures the chain collected, in the signing wallet's order (empty slots for SONs that
/// did not sign).
pub fn signed_transaction(
    t: &SidechainTx,
    version: crate::state::Version<'_>,
    wallet: &Wallet,
) -> Result<bitcoin::Transaction, BitcoinError> {
    let mut signed = tx::from_hex(version.unsigned_tx)
        .ok_or_else(|| BitcoinError::Hex(version.unsigned_tx.to_owned()))?;
    let script = spent_script(t, wallet)?;
    let user_slot = matches!(t.purpose, Purpose::Deposit { .. });
    for (i, input) in signed.input.iter_mut().enumerate() {
        let mut sigs = BTreeMap::new();
        for (slot, signer) in wallet.signers.iter().enumerate() {
            if let Some(hex) = version.signatures.get(&signer.son).and_then(|v| v.get(i)) {
                sigs.insert(slot, hex_bytes(hex)?);
            }
        }
        input.witness = tx::weighted_witness(wallet.signers.len(), &sigs, &script, user_slot);
    }
    Ok(signed)
}

// ---------------------------------------------------------------------------------------------
// Readiness, for `explain` (see the `readiness` module)

use crate::rules::{due, is, named, not_due};
use crate::state::{MinConfirmations, MinFeeRate};
use sonprop_core::chain::event::counted;
use sonprop_core::Readiness::{self, DueAt, NotAbout};

/// `bitcoin_wallet_update` about `bitcoin:wallet`.
pub fn wallet_update_readiness(state: &State, subject: &Subject) -> Readiness {
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
pub fn wallet_sweep_readiness(state: &State, subject: &Subject) -> Readiness {
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

/// The sidechain transaction a subject names (`bitcoin:tx:N` or `OWN:N`), if it exists.
fn sidechain_tx<'a>(state: &'a State, subject: &Subject, own: &str) -> Option<&'a SidechainTx> {
    let n: u64 = named(subject, &["bitcoin:tx:", own])?.parse().ok()?;
    state.row::<Transactions>(&n)
}

/// `bitcoin_tx_settle` about `bitcoin:settle:N` (or `bitcoin:tx:N`).
pub fn settle_readiness(state: &State, subject: &Subject) -> Readiness {
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
pub fn bump_readiness(state: &State, subject: &Subject) -> Readiness {
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
pub fn utxo_readiness(state: &State, subject: &Subject) -> Readiness {
    let Some(text) = named(subject, &["bitcoin:utxo:"]) else { return NotAbout };
    let Ok(o) = text.parse::<OutPoint>() else { return NotAbout };
    if let Some(u) = state.row::<Utxos>(&utxo_key(&o)) {
        return not_due(format!("{o} is recorded already, in wallet {}", u.wallet));
    }
    if known_output(state, &o) {
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
