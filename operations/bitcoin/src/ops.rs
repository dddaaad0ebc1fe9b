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
    BooksTable, MaxFeeRate, MinFeeRate, NetworkParam, Purpose, SidechainTx, SignTimeout,
    Transactions, TxInput, TxStatus, Utxo, Utxos, Wallet, WalletSigner, Wallets,
};
use crate::tx::{self, Spend};
use crate::{SENT, SETTLE, SIGN, TX_FAIL, UTXO, WALLET_UPDATE};

/// Why a Bitcoin operation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BitcoinError {
    /// The proposed SON set is not the elected one.
    #[error("the proposed signers are not the elected SONs with their keys and weights")]
    WrongSigners,
    /// The elected SONs make no wallet.
    #[error(transparent)]
    Wallet(#[from] crate::state::WalletError),
    /// The new wallet would have the current one's script.
    #[error("the elected SONs give the current wallet's script: no update is needed")]
    NoChange,
    /// A wallet number out of sequence.
    #[error("the next wallet is number {expected}, not {given}")]
    WrongWalletId {
        /// The next number.
        expected: u64,
        /// The one proposed.
        given: u64,
    },
    /// A sweep is not settled yet.
    #[error("sidechain tx {0} is not settled yet")]
    SweepPending(u64),
    /// A sweep was needed and not proposed, or proposed with nothing to sweep.
    #[error("the old wallet holds {utxos} outputs: a sweep is {need}")]
    SweepMismatch {
        /// Outputs the old wallet holds.
        utxos: usize,
        /// "required" or "not expected".
        need: &'static str,
    },
    /// A fee rate outside the chain's bounds.
    #[error("fee rate {rate} sat/vB is outside the chain's bounds {min}..={max}")]
    FeeRate {
        /// Proposed.
        rate: u64,
        /// `bitcoin.min_fee_rate`.
        min: u64,
        /// `bitcoin.max_fee_rate`.
        max: u64,
    },
    /// The proposed transaction is not the one the chain builds.
    #[error("the proposed transaction differs from the one built from chain state")]
    TxMismatch,
    /// The transaction cannot be built.
    #[error(transparent)]
    Build(#[from] tx::BuildError),
    /// No such sidechain transaction.
    #[error("sidechain tx {0} does not exist")]
    UnknownTx(u64),
    /// The transaction is not collecting signatures.
    #[error("sidechain tx {id} is {status}, not collecting signatures")]
    NotValid {
        /// It.
        id: u64,
        /// Its status.
        status: String,
    },
    /// Its deadline passed.
    #[error("sidechain tx {0} passed its deadline")]
    PastDeadline(u64),
    /// Its deadline has not passed.
    #[error("sidechain tx {0} has not reached its deadline")]
    BeforeDeadline(u64),
    /// The SON does not sign for that transaction.
    #[error("son {son} is not a signer of sidechain tx {tx}")]
    NotASigner {
        /// The SON.
        son: SonId,
        /// The transaction.
        tx: u64,
    },
    /// The SON signed already.
    #[error("son {son} already signed sidechain tx {tx}")]
    AlreadySigned {
        /// The SON.
        son: SonId,
        /// The transaction.
        tx: u64,
    },
    /// The owner given is not the SON's.
    #[error("account {given} does not operate son {son}")]
    NotOwner {
        /// The SON.
        son: SonId,
        /// Who claimed.
        given: AccountId,
    },
    /// Not an elected SON.
    #[error("son {0} is not elected")]
    NotElected(SonId),
    /// One signature per input.
    #[error("{given} signatures for {inputs} inputs")]
    SignatureCount {
        /// Given.
        given: usize,
        /// Inputs.
        inputs: usize,
    },
    /// A signature that does not verify.
    #[error("signature for input {input}: {source}")]
    BadSignature {
        /// The input.
        input: usize,
        /// Why.
        source: tx::SignatureError,
    },
    /// Hex that does not decode.
    #[error("`{0}` is not valid hex")]
    Hex(String),
    /// A wallet output already known or spent by a pending transaction.
    #[error("output {0} is already known to the chain")]
    KnownOutput(String),
    /// An output of a wallet that is not current.
    #[error("wallet {0} is not the current wallet")]
    NotCurrent(u64),
    /// A zero amount.
    #[error("the amount must be positive")]
    ZeroAmount,
    /// A txid other than the transaction's.
    #[error("sidechain tx {tx} has txid {expected}, not {given}")]
    WrongTxid {
        /// The transaction.
        tx: u64,
        /// Its txid.
        expected: String,
        /// The one given.
        given: String,
    },
    /// No primary wallet yet.
    #[error("no primary wallet yet")]
    NoWallet,
    /// The elected SONs' wallet differs from the current one: deposits and withdrawals wait
    /// for the wallet update.
    #[error("a wallet update is due: deposits and withdrawals wait for it")]
    WalletUpdateDue,
    /// The account registered no deposit key.
    #[error("account {0} has no deposit key")]
    NoDepositKey(AccountId),
    /// Another account registered that deposit key (its deposit address would be both's).
    #[error("deposit key {key} is account {owner}'s")]
    KeyTaken {
        /// The key.
        key: String,
        /// Its account.
        owner: AccountId,
    },
    /// A key that cannot serve as a deposit key.
    #[error("bad deposit key: {0}")]
    BadKey(String),
    /// The deposit key's proof of possession does not verify.
    #[error("the deposit key's proof is refused: {0}")]
    BadProof(String),
    /// An address that is not one of the chain's network.
    #[error("`{address}` is not a usable address: {reason}")]
    BadAddress {
        /// It.
        address: String,
        /// Why.
        reason: String,
    },
    /// The SON reported that deposit already.
    #[error("son {son} already reported deposit {deposit}")]
    AlreadyReported {
        /// The SON.
        son: SonId,
        /// The deposit.
        deposit: String,
    },
    /// No such deposit.
    #[error("deposit {0} is unknown")]
    UnknownDeposit(String),
    /// The deposit is not in the status the operation needs.
    #[error("deposit {deposit} is {status}, not {needed}")]
    DepositStatus {
        /// The deposit.
        deposit: String,
        /// Its status.
        status: String,
        /// The status needed.
        needed: &'static str,
    },
    /// No such withdrawal.
    #[error("withdrawal {0} is unknown")]
    UnknownWithdrawal(u64),
    /// The withdrawal is not pending.
    #[error("withdrawal {id} is {status}, not pending")]
    WithdrawalNotPending {
        /// It.
        id: u64,
        /// Its status.
        status: String,
    },
    /// The chain's pBTC asset is missing or not issued by the SON account.
    #[error("asset {0} is not a pBTC the SONs issue")]
    NoAsset(sonprop_core::AssetId),
    /// The wallet cannot pay the withdrawal.
    #[error("the primary wallet cannot pay it: {0}")]
    CannotCover(tx::BuildError),
    /// The wallet can pay the withdrawal (or may soon): no refund.
    #[error("no refund: {0}")]
    RefundNotDue(String),
    /// The SONs' reserve cannot pay a sweep's fee without leaving pBTC unbacked.
    #[error("the sweep's fee of {fee} sat exceeds the SONs' reserve of {reserve} sat")]
    ReserveShort {
        /// The fee.
        fee: u64,
        /// The reserve.
        reserve: u64,
    },
    /// State the chain should hold is missing (a bug, reported rather than panicking).
    #[error("inconsistent bitcoin state: {0}")]
    Inconsistent(String),
}

/// Turns a rule's error into the operation error of `kind`.
pub(crate) fn rule<E: std::error::Error + Send + Sync + 'static>(
    kind: &'static str,
) -> impl Fn(E) -> OperationError {
    move |e| OperationError::rule(kind, e)
}

fn hex_bytes(h: &str) -> Result<Vec<u8>, BitcoinError> {
    sonprop_core::chain::crypto::from_hex(h).ok_or_else(|| BitcoinError::Hex(h.to_owned()))
}

/// What a wallet update's sweep carries: the fee rate and the unsigned transaction the
/// proposer built, which every node rebuilds from its own state and compares byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepProposal {
    /// The fee rate, sat/vB.
    pub fee_rate: u64,
    /// The unsigned transaction, hex.
    pub unsigned_tx: String,
}

/// Records a new primary wallet for the elected SONs and, if the current one holds outputs,
/// the sweep that moves them there (signed by the current wallet's SONs, with its weights).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletUpdate {
    /// The new wallet's number.
    pub wallet: u64,
    /// Its SONs, keys and weights.
    pub signers: Vec<WalletSigner>,
    /// The sweep of the current wallet, if it holds outputs.
    pub sweep: Option<SweepProposal>,
}

/// The wallet update the chain expects now, built from state alone with `fee_rate` for the
/// sweep: what a trigger proposes and what every check compares against. `Ok(None)` when the
/// elected SONs hold the current wallet already.
pub fn expected_update(state: &State, fee_rate: u64) -> Result<Option<WalletUpdate>, BitcoinError> {
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
    let sweep = match current {
        Some(old) => sweep_of(state, old, &script, fee_rate)?,
        None => None,
    };
    Ok(Some(WalletUpdate { wallet, signers, sweep }))
}

/// The sweep of `old`'s outputs to a wallet of script `to_script`, if it holds any.
fn sweep_of(
    state: &State,
    old: &Wallet,
    to_script: &ScriptBuf,
    fee_rate: u64,
) -> Result<Option<SweepProposal>, BitcoinError> {
    let utxos = wallet_utxos(state, old.id);
    if utxos.is_empty() {
        return Ok(None);
    }
    let spends: Vec<Spend> =
        utxos.iter().map(|(o, a)| Spend { outpoint: *o, amount_sat: *a }).collect();
    let to = ScriptBuf::new_p2wsh(&to_script.wscript_hash());
    let t = tx::build_sweep(&spends, &to, fee_rate, old.signers.len(), old.script().len())?;
    Ok(Some(SweepProposal { fee_rate, unsigned_tx: tx::to_hex(&t) }))
}

/// A fee rate within the chain's bounds.
pub(crate) fn fee_in_bounds(state: &State, rate: u64) -> Result<(), BitcoinError> {
    let (min, max) = (state.param::<MinFeeRate>(), state.param::<MaxFeeRate>());
    if !(min..=max).contains(&rate) {
        return Err(BitcoinError::FeeRate { rate, min, max });
    }
    Ok(())
}

/// The wallet-update rule, shared by the check, the trigger and the validator.
pub fn check_update(state: &State, op: &WalletUpdate) -> Result<(), BitcoinError> {
    if let Some(t) = unsettled(state).next() {
        return Err(BitcoinError::SweepPending(t.id));
    }
    let rate = op.sweep.as_ref().map_or(state.param::<MinFeeRate>(), |s| s.fee_rate);
    fee_in_bounds(state, rate)?;
    let expected = expected_update(state, rate)?.ok_or(BitcoinError::NoChange)?;
    if op.wallet != expected.wallet {
        return Err(BitcoinError::WrongWalletId { expected: expected.wallet, given: op.wallet });
    }
    if op.signers != expected.signers {
        return Err(BitcoinError::WrongSigners);
    }
    match (&op.sweep, &expected.sweep) {
        (None, None) => Ok(()),
        (Some(got), Some(want)) if got == want => sweep_fee_covered(state, got),
        (Some(_), Some(_)) => Err(BitcoinError::TxMismatch),
        (got, _) => {
            let utxos = current_wallet(state).map_or(0, |w| wallet_utxos(state, w.id).len());
            let need = if got.is_some() { "not expected" } else { "required" };
            Err(BitcoinError::SweepMismatch { utxos, need })
        }
    }
}

/// The sweep's fee comes out of the SONs' reserve, never out of what backs pBTC.
fn sweep_fee_covered(state: &State, sweep: &SweepProposal) -> Result<(), BitcoinError> {
    let t = tx::from_hex(&sweep.unsigned_tx)
        .ok_or_else(|| BitcoinError::Hex(sweep.unsigned_tx.clone()))?;
    let inputs: u64 = t
        .input
        .iter()
        .filter_map(|i| state.row::<Utxos>(&utxo_key(&i.previous_output)))
        .map(|u| u.amount_sat)
        .sum();
    let outputs: u64 = t.output.iter().map(|o| o.value.to_sat()).sum();
    let fee = inputs.saturating_sub(outputs);
    let reserve = books(state).reserve_sat();
    if fee > reserve {
        return Err(BitcoinError::ReserveShort { fee, reserve });
    }
    Ok(())
}

/// A new wallet was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletCreated {
    /// Its number.
    pub wallet: u64,
    /// Its address.
    pub address: String,
    /// How many SONs hold it.
    pub signers: usize,
    /// The sweep that empties the previous wallet, if any.
    pub sweep: Option<u64>,
}
impl ChainEvent for WalletCreated {
    const KIND: &'static str = WALLET_UPDATE;
    const NAME: &'static str = "wallet_created";
}
impl fmt::Display for WalletCreated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "primary wallet {} at {} ({} SONs)", self.wallet, self.address, self.signers)?;
        if let Some(t) = self.sweep {
            write!(f, "; sweep of the previous wallet is sidechain tx {t}")?;
        }
        Ok(())
    }
}

#[typetag::serde(name = "bitcoin_wallet_update")]
impl Operation for WalletUpdate {
    fn kind(&self) -> &'static str {
        WALLET_UPDATE
    }
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
        let old = current_wallet(ctx).cloned();
        let mut sweep_id = None;
        if let (Some(old), Some(sweep)) = (&old, &self.sweep) {
            let id = ctx.last_row::<Transactions>().map_or(0, |(k, _)| k + 1);
            let t = tx::from_hex(&sweep.unsigned_tx)
                .ok_or_else(|| fail(BitcoinError::Hex(sweep.unsigned_tx.clone())))?;
            let mut inputs = Vec::new();
            for i in &t.input {
                let key = utxo_key(&i.previous_output);
                let u = ctx.row::<Utxos>(&key).cloned().ok_or_else(|| {
                    fail(BitcoinError::Inconsistent(format!("input {} unknown", i.previous_output)))
                })?;
                inputs.push(TxInput {
                    outpoint: i.previous_output.to_string(),
                    amount_sat: u.amount_sat,
                });
                ctx.put_row::<Utxos>(&key, None)?;
            }
            let row = SidechainTx {
                id,
                bitcoin_txid: tx::txid(&t).to_string(),
                purpose: Purpose::Sweep { from: old.id, to: self.wallet },
                signing_wallet: old.id,
                unsigned_tx: sweep.unsigned_tx.clone(),
                inputs,
                signatures: BTreeMap::new(),
                signed_weight: 0,
                threshold: old.threshold(),
                status: TxStatus::Valid,
                created: now,
                deadline: now.plus(ctx.param::<SignTimeout>()),
            };
            ctx.put_row::<Transactions>(&id, Some(row))?;
            sweep_id = Some(id);
        }
        if let Some(mut old) = old {
            old.expires = Some(now);
            ctx.put_row::<Wallets>(&old.id.clone(), Some(old))?;
        }
        ctx.emit_event(&WalletCreated {
            wallet: self.wallet,
            address: address.clone(),
            signers: self.signers.len(),
            sweep: sweep_id,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxComplete {
    /// It.
    pub tx: u64,
    /// Its Bitcoin txid.
    pub txid: String,
    /// The weight that signed.
    pub signed_weight: u32,
}
impl ChainEvent for TxComplete {
    const KIND: &'static str = SIGN;
    const NAME: &'static str = "complete";
}
impl fmt::Display for TxComplete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sidechain tx {} complete (weight {}): {}",
            self.tx, self.signed_weight, self.txid
        )
    }
}

#[typetag::serde(name = "bitcoin_tx_sign")]
impl Operation for SignTx {
    fn kind(&self) -> &'static str {
        SIGN
    }
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
        if t.signed_weight >= t.threshold {
            t.status = TxStatus::Complete;
            let unsigned = tx::from_hex(&t.unsigned_tx)
                .ok_or_else(|| rule(SIGN)(BitcoinError::Hex(t.unsigned_tx.clone())))?;
            let txid = tx::txid(&unsigned).to_string();
            ctx.emit_event(&TxComplete { tx: t.id, txid, signed_weight: t.signed_weight });
        }
        ctx.put_row::<Transactions>(&t.id.clone(), Some(t))
    }
}

/// Fails a sidechain transaction that passed its deadline unsigned: its inputs go back to the
/// wallet they belong to. Submitted by any elected SON.
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

/// `owner` operates `son`, and `son` is elected.
pub(crate) fn elected_owner(
    state: &State,
    son: SonId,
    owner: AccountId,
) -> Result<(), BitcoinError> {
    let s =
        state.son(son).filter(|_| state.is_elected(son)).ok_or(BitcoinError::NotElected(son))?;
    if s.owner != owner {
        return Err(BitcoinError::NotOwner { son, given: owner });
    }
    Ok(())
}

fn check_fail(state: &State, op: &FailTx) -> Result<(), BitcoinError> {
    let t = tx_in_status(state, op.tx, &TxStatus::Valid)?;
    if state.head_time() < t.deadline {
        return Err(BitcoinError::BeforeDeadline(op.tx));
    }
    elected_owner(state, op.son, op.owner)
}

#[typetag::serde(name = "bitcoin_tx_fail")]
impl Operation for FailTx {
    fn kind(&self) -> &'static str {
        TX_FAIL
    }
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
        crate::flows::fail_effects(ctx, &t)?;
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

#[typetag::serde(name = "bitcoin_wallet_utxo")]
impl Operation for WalletUtxo {
    fn kind(&self) -> &'static str {
        UTXO
    }
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

#[typetag::serde(name = "bitcoin_tx_sent")]
impl Operation for SentTx {
    fn kind(&self) -> &'static str {
        SENT
    }
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxSent {
    /// It.
    pub tx: u64,
    /// Its Bitcoin txid.
    pub txid: String,
    /// The SON that broadcast it.
    pub son: SonId,
}
impl ChainEvent for TxSent {
    const KIND: &'static str = SENT;
    const NAME: &'static str = "sent";
}
impl fmt::Display for TxSent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sidechain tx {} broadcast by son {}: {}", self.tx, self.son, self.txid)
    }
}

/// The SONs saw a sent sidechain transaction confirmed: it settles, and its outputs become the
/// destination wallet's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettleTx {
    /// The sidechain transaction.
    pub tx: u64,
}

/// A sidechain transaction settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
impl ChainEvent for TxSettled {
    const KIND: &'static str = SETTLE;
    const NAME: &'static str = "settled";
}
impl fmt::Display for TxSettled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sidechain tx {} settled ({}): {} sat now held by wallet {}",
            self.tx, self.txid, self.amount_sat, self.wallet
        )
    }
}

/// The rule for settling: the transaction was sent.
pub fn check_settle(state: &State, op: &SettleTx) -> Result<(), BitcoinError> {
    tx_in_status(state, op.tx, &TxStatus::Sent { txid: String::new() }).map(|_| ())
}

#[typetag::serde(name = "bitcoin_tx_settle")]
impl Operation for SettleTx {
    fn kind(&self) -> &'static str {
        SETTLE
    }
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named(format!("bitcoin:settle:{}", self.tx)))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_settle(state, self).map_err(rule(SETTLE))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let fail = rule(SETTLE);
        let mut t = ctx
            .row::<Transactions>(&self.tx)
            .cloned()
            .ok_or_else(|| fail(BitcoinError::UnknownTx(self.tx)))?;
        let TxStatus::Sent { txid } = t.status.clone() else {
            return Err(fail(BitcoinError::NotValid { id: self.tx, status: t.status.to_string() }));
        };
        let unsigned = tx::from_hex(&t.unsigned_tx)
            .ok_or_else(|| fail(BitcoinError::Hex(t.unsigned_tx.clone())))?;
        let (wallet, joined) = match &t.purpose {
            Purpose::Sweep { to, .. } => (*to, unsigned.output.iter().collect::<Vec<_>>()),
            Purpose::Deposit { to, .. } => (*to, unsigned.output.iter().take(1).collect()),
            Purpose::Withdrawal { wallet, .. } => {
                (*wallet, unsigned.output.iter().skip(1).collect())
            }
        };
        let total = joined.iter().map(|o| o.value.to_sat()).sum();
        crate::flows::settle_effects(ctx, &t, &unsigned)?;
        ctx.emit_event(&TxSettled { tx: t.id, txid: txid.clone(), wallet, amount_sat: total });
        t.status = TxStatus::Settled { txid };
        ctx.put_row::<Transactions>(&self.tx, Some(t))
    }
}

/// The signed transaction Bitcoin receives: each input's witness from the signatures the chain
/// collected, in the signing wallet's order (empty slots for SONs that did not sign).
pub fn signed_transaction(
    t: &SidechainTx,
    wallet: &Wallet,
) -> Result<bitcoin::Transaction, BitcoinError> {
    let mut signed =
        tx::from_hex(&t.unsigned_tx).ok_or_else(|| BitcoinError::Hex(t.unsigned_tx.clone()))?;
    let script = spent_script(t, wallet)?;
    let user_slot = matches!(t.purpose, Purpose::Deposit { .. });
    for (i, input) in signed.input.iter_mut().enumerate() {
        let mut sigs = BTreeMap::new();
        for (slot, signer) in wallet.signers.iter().enumerate() {
            if let Some(hex) = t.signatures.get(&signer.son).and_then(|v| v.get(i)) {
                sigs.insert(slot, hex_bytes(hex)?);
            }
        }
        input.witness = tx::weighted_witness(wallet.signers.len(), &sigs, &script, user_slot);
    }
    Ok(signed)
}
