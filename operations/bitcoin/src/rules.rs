//! What the operation modules share: the error every Bitcoin rule refuses with, the fee
//! bounds, the elected owner of a SON, and a new sidechain transaction's row and inputs. Both
//! [`crate::ops`] (wallet transactions) and [`crate::flows`] (deposits and withdrawals) build on
//! it, so neither needs the other for these.

use std::collections::BTreeMap;

use sonprop_core::{AccountId, ApplyContext, OperationError, SonId, State};

use crate::state::{
    utxo_key, MaxFeeRate, MinFeeRate, Purpose, SidechainTx, SignTimeout, Transactions, TxInput,
    TxStatus, Utxos, Wallet,
};
use crate::tx::{self, Spend};

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
    /// A sidechain transaction is not settled yet.
    #[error("sidechain tx {0} is not settled yet")]
    SweepPending(u64),
    /// An older wallet still holds outputs: they are swept before the wallet changes again.
    #[error("wallet {0} still holds outputs to sweep")]
    OldWalletNotEmpty(u64),
    /// No wallet needs sweeping or consolidating.
    #[error("no wallet outputs need moving")]
    NothingToSweep,
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
    /// A fee bump before the transaction had its time to confirm.
    #[error("sidechain tx {tx} may be fee-bumped from {at}, not before")]
    BumpNotDue {
        /// The transaction.
        tx: u64,
        /// When it may.
        at: sonprop_core::Timestamp,
    },
    /// A fee bump that does not raise the rate.
    #[error("a fee bump to {rate} sat/vB does not raise the current rate of {current} sat/vB")]
    BumpTooLow {
        /// Proposed.
        rate: u64,
        /// The current version's.
        current: u64,
    },
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
    /// The chain's PBTC asset is missing or not issued by the SON account.
    #[error("asset {0} is not a PBTC the SONs issue")]
    NoAsset(sonprop_core::AssetId),
    /// The wallet cannot pay the withdrawal.
    #[error("the primary wallet cannot pay it: {0}")]
    CannotCover(tx::BuildError),
    /// The wallet can pay the withdrawal (or may soon): no refund.
    #[error("no refund: {0}")]
    RefundNotDue(String),
    /// The SONs' reserve cannot pay a sweep's fee without leaving PBTC unbacked.
    #[error("the sweep's fee of {fee} sat exceeds the SONs' reserve of {reserve} sat")]
    ReserveShort {
        /// The fee.
        fee: u64,
        /// The reserve.
        reserve: u64,
    },
    /// A reconciliation (or resume) that does not hold.
    #[error("reconciliation: {0}")]
    Reconcile(String),
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

/// A fee rate within the chain's bounds.
pub(crate) fn fee_in_bounds(state: &State, rate: u64) -> Result<(), BitcoinError> {
    let (min, max) = (state.param::<MinFeeRate>(), state.param::<MaxFeeRate>());
    if !(min..=max).contains(&rate) {
        return Err(BitcoinError::FeeRate { rate, min, max });
    }
    Ok(())
}

/// The recorded wallet outputs `t` spends, with their amounts.
pub(crate) fn spends_of(
    state: &State,
    t: &bitcoin::Transaction,
) -> Result<Vec<Spend>, BitcoinError> {
    t.input
        .iter()
        .map(|i| {
            let u = state.row::<Utxos>(&utxo_key(&i.previous_output)).ok_or_else(|| {
                BitcoinError::Inconsistent(format!("input {} unknown", i.previous_output))
            })?;
            Ok(Spend { outpoint: i.previous_output, amount_sat: u.amount_sat })
        })
        .collect()
}

/// Takes `t`'s inputs out of the wallets' outputs (they are in flight until it settles or
/// fails) and returns them as the transaction's recorded inputs.
pub(crate) fn take_inputs(
    ctx: &mut ApplyContext<'_>,
    t: &bitcoin::Transaction,
    kind: &'static str,
) -> Result<Vec<TxInput>, OperationError> {
    let spends = spends_of(ctx, t).map_err(rule(kind))?;
    let mut inputs = Vec::with_capacity(spends.len());
    for s in spends {
        ctx.put_row::<Utxos>(&utxo_key(&s.outpoint), None)?;
        inputs.push(TxInput { outpoint: s.outpoint.to_string(), amount_sat: s.amount_sat });
    }
    Ok(inputs)
}

/// A sidechain transaction row for `unsigned_hex` built at `fee_rate`, collecting signatures
/// from `signing`'s SONs.
pub(crate) fn new_tx(
    ctx: &ApplyContext<'_>,
    purpose: Purpose,
    signing: &Wallet,
    unsigned_hex: &str,
    fee_rate: u64,
    inputs: Vec<TxInput>,
) -> SidechainTx {
    let id = ctx.last_row::<Transactions>().map_or(0, |(k, _)| k + 1);
    let now = ctx.now();
    SidechainTx {
        id,
        bitcoin_txid: tx::from_hex(unsigned_hex)
            .map(|t| tx::txid(&t).to_string())
            .unwrap_or_default(),
        purpose,
        signing_wallet: signing.id,
        unsigned_tx: unsigned_hex.to_owned(),
        inputs,
        signatures: BTreeMap::new(),
        signed_weight: 0,
        threshold: signing.threshold(),
        status: TxStatus::Valid,
        created: now,
        deadline: now.plus(ctx.param::<SignTimeout>()),
        fee_rate,
        completed: None,
        replaced: Vec::new(),
    }
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

// ---------------------------------------------------------------------------------------------
// Proposal policy and readiness, shared by the kinds

/// A Bitcoin SON proposal lives three witness cycles.
fn lifetime(state: &State) -> u64 {
    state.witness_cycles_lifetime(3)
}

/// Every proposable Bitcoin kind's policy: a SON proposal the elected SONs raise, living three
/// witness cycles, with its readiness for `explain` (the kind's rule, in words).
pub(crate) const fn son_proposal(
    readiness: fn(&State, &sonprop_core::Subject) -> sonprop_core::Readiness,
) -> sonprop_core::ProposalPolicy {
    sonprop_core::ProposalPolicy {
        son_record: true,
        eligible: sonprop_core::Eligibility::ElectedSon,
        lifetime,
        readiness: Some(readiness),
    }
}

/// The part of a named subject after one of `prefixes`, if it is one of them.
pub(crate) fn named<'a>(subject: &'a sonprop_core::Subject, prefixes: &[&str]) -> Option<&'a str> {
    let sonprop_core::Subject::Named(name) = subject else { return None };
    prefixes.iter().find_map(|p| name.strip_prefix(p))
}

/// Whether `subject` is exactly `name`.
pub(crate) fn is(subject: &sonprop_core::Subject, name: &str) -> bool {
    matches!(subject, sonprop_core::Subject::Named(n) if n == name)
}

/// Due, since the rule cannot tell when.
pub(crate) fn due(why: impl Into<String>) -> sonprop_core::Readiness {
    sonprop_core::Readiness::Due { since: None, why: why.into() }
}

/// Not due, and why.
pub(crate) fn not_due(why: impl Into<String>) -> sonprop_core::Readiness {
    sonprop_core::Readiness::NotDue { why: why.into() }
}
