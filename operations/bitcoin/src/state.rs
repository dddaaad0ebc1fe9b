//! The Bitcoin crate's on-chain state: its tables and parameters, and the pure functions over
//! them that the operations, triggers, validators and the deregistration guard share.

use std::collections::BTreeMap;
use std::fmt;

use bitcoin::hashes::Hash;
use bitcoin::{OutPoint, ScriptBuf, Txid};
use serde::{Deserialize, Serialize};
use sonprop_core::{
    AccountId, AssetId, Index, IndexEntries, Parameter, SonId, State, TableSchema, Timestamp,
};

use crate::script::{self, BitcoinNetwork, Signer};

/// One SON of a wallet, as the chain recorded it when the wallet was made.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WalletSigner {
    /// The SON.
    pub son: SonId,
    /// Its compressed Bitcoin public key, hex.
    pub public_key: String,
    /// Its weight in the script.
    pub weight: u16,
}

/// A primary wallet: its SON set, script and address, and when it was current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallet {
    /// Its number (0 for the first).
    pub id: u64,
    /// Its SONs, in script order (SON id order).
    pub signers: Vec<WalletSigner>,
    /// The witness script, hex.
    pub witness_script: String,
    /// Its P2WSH address.
    pub address: String,
    /// From when it is current.
    pub valid_from: Timestamp,
    /// When the next wallet replaced it.
    pub expires: Option<Timestamp>,
}

impl Wallet {
    /// The witness script.
    pub fn script(&self) -> ScriptBuf {
        ScriptBuf::from_hex(&self.witness_script).unwrap_or_default()
    }
    /// The script's threshold.
    pub fn threshold(&self) -> u32 {
        script::threshold(self.signers.iter().map(|s| u32::from(s.weight)).sum())
    }
}

/// Every primary wallet, by number: the history, newest last.
pub struct Wallets;
impl TableSchema for Wallets {
    const NAME: &'static str = "bitcoin.wallets";
    type Key = u64;
    type Value = Wallet;
}

/// An output a primary wallet holds, as the chain knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utxo {
    /// The wallet whose script it pays.
    pub wallet: u64,
    /// Its amount, in satoshis.
    pub amount_sat: u64,
}

/// The primary wallets' unspent outputs, by `(txid, vout)`; indexed by wallet.
pub struct Utxos;

/// [`Utxos`] by wallet.
pub const UTXOS_BY_WALLET: Index<Utxos, u64> = Index::new("by_wallet");
impl TableSchema for Utxos {
    const NAME: &'static str = "bitcoin.utxos";
    type Key = ([u8; 32], u32);
    type Value = Utxo;
    fn index(row: &Utxo, out: &mut IndexEntries) {
        UTXOS_BY_WALLET.add(&row.wallet, out);
    }
}

/// The table key of an outpoint.
pub fn utxo_key(o: &OutPoint) -> ([u8; 32], u32) {
    (o.txid.to_byte_array(), o.vout)
}

/// The outpoint of a table key.
pub fn outpoint(key: &([u8; 32], u32)) -> OutPoint {
    OutPoint { txid: Txid::from_byte_array(key.0), vout: key.1 }
}

/// What a sidechain transaction is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "purpose")]
pub enum Purpose {
    /// Moves every output of an old primary wallet to the new one.
    Sweep {
        /// The wallet it empties (and whose SONs sign).
        from: u64,
        /// The wallet it pays.
        to: u64,
    },
    /// Moves a user's deposit (an output paying the user's deposit address) into the current
    /// primary wallet; PBTC is issued to the user when it settles.
    Deposit {
        /// The deposit, `txid:vout`.
        deposit: String,
        /// The user's deposit key (the script's refund branch), hex.
        user_key: String,
        /// The wallet it pays.
        to: u64,
        /// What the deposit pre-pays into the SONs' reserve for its output's later sweep,
        /// satoshis: the user is credited the output less this.
        #[serde(default)]
        carry_sat: u64,
    },
    /// Pays a withdrawal from the primary wallet's outputs, change back to the wallet; the
    /// escrowed PBTC is burnt when it settles.
    Withdrawal {
        /// The withdrawal.
        withdrawal: u64,
        /// The wallet it spends, and whose change it receives.
        wallet: u64,
    },
}

impl Purpose {
    /// Whether its inputs are primary-wallet outputs (a deposit sweep spends a user's output).
    pub fn spends_wallet(&self) -> bool {
        !matches!(self, Purpose::Deposit { .. })
    }
}

/// Where a sidechain transaction stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum TxStatus {
    /// Collecting signatures.
    Valid,
    /// Signed by the threshold: any SON can assemble and broadcast it.
    Complete,
    /// Broadcast by a SON.
    Sent {
        /// Its Bitcoin txid.
        txid: String,
    },
    /// Confirmed as the SONs' own Bitcoin views show it: its outputs are the destination
    /// wallet's.
    Settled {
        /// Its Bitcoin txid.
        txid: String,
    },
    /// Given up: not signed by the threshold before its deadline, or an input vanished from
    /// Bitcoin (reconciliation); the inputs that remain went back to their wallet.
    Failed {
        /// Why.
        reason: String,
    },
}

impl TxStatus {
    /// A small code for the status index.
    pub fn code(&self) -> u8 {
        match self {
            TxStatus::Valid => 0,
            TxStatus::Complete => 1,
            TxStatus::Sent { .. } => 2,
            TxStatus::Settled { .. } => 3,
            TxStatus::Failed { .. } => 4,
        }
    }
}

impl fmt::Display for TxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxStatus::Valid => f.write_str("valid"),
            TxStatus::Complete => f.write_str("complete"),
            TxStatus::Sent { txid } => write!(f, "sent ({txid})"),
            TxStatus::Settled { txid } => write!(f, "settled ({txid})"),
            TxStatus::Failed { reason } => write!(f, "failed ({reason})"),
        }
    }
}

/// One input of a sidechain transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxInput {
    /// The output spent, `txid:vout`.
    pub outpoint: String,
    /// Its amount, in satoshis.
    pub amount_sat: u64,
}

/// A Bitcoin transaction the SONs sign on chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidechainTx {
    /// Its number.
    pub id: u64,
    /// Its Bitcoin txid (witnesses are not part of it, so it is final before any signature).
    /// Not `txid`: the flattened status has a field of that name.
    #[serde(default)]
    pub bitcoin_txid: String,
    /// What it is for.
    #[serde(flatten)]
    pub purpose: Purpose,
    /// The wallet whose script its inputs pay, hence whose SONs sign.
    pub signing_wallet: u64,
    /// The unsigned transaction, hex (its txid is final: witnesses are not part of it).
    pub unsigned_tx: String,
    /// Its inputs, in transaction order.
    pub inputs: Vec<TxInput>,
    /// Each signing SON's signatures, one per input, hex (DER + sighash byte).
    pub signatures: BTreeMap<SonId, Vec<String>>,
    /// The weight of the SONs that signed.
    pub signed_weight: u32,
    /// The weight it needs: the signing wallet's script threshold.
    pub threshold: u32,
    /// Where it stands.
    #[serde(flatten)]
    pub status: TxStatus,
    /// When it was created.
    pub created: Timestamp,
    /// The current version fails (or, if an earlier version was signed, gives way to it) if
    /// not complete by then.
    pub deadline: Timestamp,
    /// The fee rate the current version was built at, sat/vB.
    #[serde(default)]
    pub fee_rate: u64,
    /// When the current version reached its threshold. Not settled `bitcoin.confirm_timeout`
    /// later, it may be replaced by the same transaction at a higher fee rate.
    #[serde(default)]
    pub completed: Option<Timestamp>,
    /// Earlier versions, each fully signed, replaced by a higher fee rate (oldest first). Any
    /// of them may be the one Bitcoin confirms: they spend the same inputs.
    #[serde(default)]
    pub replaced: Vec<SignedVersion>,
}

/// A fully signed version of a sidechain transaction that a higher fee rate replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedVersion {
    /// Its Bitcoin txid.
    pub txid: String,
    /// The unsigned transaction, hex.
    pub unsigned_tx: String,
    /// Its fee rate, sat/vB.
    pub fee_rate: u64,
    /// Each signing SON's signatures, one per input, hex.
    pub signatures: BTreeMap<SonId, Vec<String>>,
    /// The weight that signed it.
    pub signed_weight: u32,
}

/// One version of a sidechain transaction: its txid, its unsigned bytes and the signatures
/// collected for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    /// Its Bitcoin txid.
    pub txid: &'a str,
    /// The unsigned transaction, hex.
    pub unsigned_tx: &'a str,
    /// The signatures collected for it.
    pub signatures: &'a BTreeMap<SonId, Vec<String>>,
}

impl SidechainTx {
    /// Whether it is still in play: collecting signatures, complete, or sent.
    pub fn is_unsettled(&self) -> bool {
        matches!(self.status, TxStatus::Valid | TxStatus::Complete | TxStatus::Sent { .. })
    }

    /// The current version, signed or not.
    pub fn current(&self) -> Version<'_> {
        Version {
            txid: &self.bitcoin_txid,
            unsigned_tx: &self.unsigned_tx,
            signatures: &self.signatures,
        }
    }

    /// Every version Bitcoin may hold, fully signed: the replaced ones, and the current one
    /// once it is complete.
    pub fn signed_versions(&self) -> impl Iterator<Item = Version<'_>> + '_ {
        let current = matches!(self.status, TxStatus::Complete | TxStatus::Sent { .. })
            .then(|| self.current());
        self.replaced
            .iter()
            .map(|v| Version {
                txid: &v.txid,
                unsigned_tx: &v.unsigned_tx,
                signatures: &v.signatures,
            })
            .chain(current)
    }

    /// The version to broadcast while it is unsettled: the newest fully signed one.
    pub fn broadcastable(&self) -> Option<Version<'_>> {
        if !self.is_unsettled() {
            return None;
        }
        self.signed_versions().last()
    }

    /// Every txid it has had (the current version's last).
    pub fn txids(&self) -> impl Iterator<Item = &str> + '_ {
        self.replaced.iter().map(|v| v.txid.as_str()).chain(std::iter::once(&*self.bitcoin_txid))
    }
}

/// The sidechain transactions, by number; indexed by status, by txid and by the outputs they
/// spend.
pub struct Transactions;

/// [`Transactions`] by `(status code, id)`.
pub const TXS_BY_STATUS: Index<Transactions, (u8, u64)> = Index::new("by_status");
/// [`Transactions`] by Bitcoin txid.
pub const TXS_BY_TXID: Index<Transactions, [u8; 32]> = Index::new("by_txid");
/// [`Transactions`] by each output they spend.
pub const TXS_BY_INPUT: Index<Transactions, ([u8; 32], u32)> = Index::new("by_input");
impl TableSchema for Transactions {
    const NAME: &'static str = "bitcoin.transactions";
    type Key = u64;
    type Value = SidechainTx;
    fn index(row: &SidechainTx, out: &mut IndexEntries) {
        TXS_BY_STATUS.add(&(row.status.code(), row.id), out);
        for txid in row.txids() {
            if let Ok(txid) = txid.parse::<Txid>() {
                TXS_BY_TXID.add(&txid.to_byte_array(), out);
            }
        }
        for i in &row.inputs {
            if let Ok(o) = i.outpoint.parse::<OutPoint>() {
                TXS_BY_INPUT.add(&utxo_key(&o), out);
            }
        }
    }
}

/// Whether a sidechain transaction the chain holds created or spends `o`.
pub fn touched_by_sidechain_tx(state: &State, o: &OutPoint) -> bool {
    state.rows_by(&TXS_BY_TXID, &o.txid.to_byte_array()).next().is_some()
        || state.rows_by(&TXS_BY_INPUT, &utxo_key(o)).next().is_some()
}

/// The Bitcoin network the wallets live on.
#[derive(Parameter)]
#[parameter(
    name = "bitcoin.network",
    description = "the Bitcoin network of the wallets",
    value = BitcoinNetwork,
    default = BitcoinNetwork::Regtest
)]
pub struct NetworkParam;

/// The lowest fee rate a proposal may carry, sat/vB.
#[derive(Parameter)]
#[parameter(
    name = "bitcoin.min_fee_rate",
    description = "lowest fee rate a proposal may carry (sat/vB)",
    value = u64,
    default = 1,
    min = 1
)]
pub struct MinFeeRate;

/// The highest fee rate a proposal may carry, sat/vB.
#[derive(Parameter)]
#[parameter(
    name = "bitcoin.max_fee_rate",
    description = "highest fee rate a proposal may carry (sat/vB)",
    value = u64,
    default = 500,
    min = 1
)]
pub struct MaxFeeRate;

/// How long a sidechain transaction may collect signatures, seconds.
#[derive(Parameter)]
#[parameter(
    name = "bitcoin.sign_timeout",
    description = "seconds a transaction may collect signatures",
    value = u64,
    default = 24 * 3600,
    min = 1
)]
pub struct SignTimeout;

/// Confirmations a Bitcoin transaction needs before the chain acts on it (records an output,
/// credits a deposit, settles a transaction): 6 by default, the Peerplays design's N; lower
/// only by parameter. A reorganisation deeper than this is what reconciliation is for.
#[derive(Parameter)]
#[parameter(
    name = "bitcoin.min_confirmations",
    description = "confirmations an output needs before the chain records it",
    value = u32,
    default = 6,
    min = 1
)]
pub struct MinConfirmations;

/// How long a complete transaction may wait to settle before it may be replaced by the
/// same transaction at a higher fee rate (replace-by-fee), seconds.
#[derive(Parameter)]
#[parameter(
    name = "bitcoin.confirm_timeout",
    description = "seconds a complete transaction may wait to settle before it may be fee-bumped",
    value = u64,
    default = 3 * 3600,
    min = 1
)]
pub struct ConfirmTimeout;

/// The fee rate at which each deposit pre-pays, into the SONs' reserve, the cost of spending
/// its output in a later wallet sweep, sat/vB: so the reserve can pay every sweep and
/// consolidation at rates up to this one however many deposits arrive.
#[derive(Parameter)]
#[parameter(
    name = "bitcoin.carry_fee_rate",
    description = "sat/vB at which each deposit pre-pays its output's later sweep into the reserve",
    value = u64,
    default = 20
)]
pub struct CarryFeeRate;

/// The smallest deposit credited, satoshis. A deposit below it (or one whose sweep cannot
/// leave anything to credit at the lowest fee rate) is recorded as too small, with the
/// reason, and never swept by the SONs; the user can take it back through the deposit
/// script's own branch.
#[derive(Parameter)]
#[parameter(
    name = "bitcoin.min_deposit_sat",
    description = "the smallest deposit credited, satoshis",
    value = u64,
    default = 20_000
)]
pub struct MinDepositSat;

/// When the current wallet holds more outputs than this, the SONs consolidate the
/// smallest of them into one (a sweep of the wallet to itself), so payments never need
/// more inputs than a standard transaction holds.
#[derive(Parameter)]
#[parameter(
    name = "bitcoin.consolidate_above",
    description = "outputs the current wallet may hold before the smallest are consolidated",
    value = u64,
    default = 50,
    min = 1
)]
pub struct ConsolidateAbove;

/// Scales votes to script weights: at most 65 535, at least 1, proportional when the largest
/// vote count exceeds what a weight can hold.
pub fn weights(votes: &[u64]) -> Vec<u16> {
    let max = votes.iter().copied().max().unwrap_or(0);
    votes
        .iter()
        .map(|v| {
            let w = if max > u64::from(u16::MAX) {
                u128::from(*v) * u128::from(u16::MAX) / u128::from(max)
            } else {
                u128::from(*v)
            };
            u16::try_from(w.max(1)).unwrap_or(u16::MAX)
        })
        .collect()
}

/// Why the chain cannot describe the wallet the elected SONs should hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// No elected SON.
    #[error("no elected SON: no wallet can be made")]
    NoSons,
    /// An elected SON registered no Bitcoin key, or an unusable one.
    #[error("son {son} has no usable bitcoin key: {reason}")]
    BadKey {
        /// The SON.
        son: SonId,
        /// Why.
        reason: String,
    },
    /// The key set makes no script.
    #[error(transparent)]
    Script(#[from] script::ScriptError),
    /// More SONs than a wallet's deposit scripts can hold.
    #[error(
        "{sons} SONs: a wallet holds at most {} (Bitcoin's opcode limit on the deposit script)",
        script::MAX_WALLET_SIGNERS
    )]
    TooManySons {
        /// How many.
        sons: usize,
    },
}

/// The crate's genesis check: the chain must not elect more SONs than a wallet can hold
/// (`maximum_son_count` at most [`script::MAX_WALLET_SIGNERS`]), or a wallet would be made
/// whose scripts Bitcoin never lets anyone spend.
pub fn check_genesis(state: &State) -> Result<(), String> {
    let max = state.params().maximum_son_count;
    if max as usize > script::MAX_WALLET_SIGNERS {
        return Err(format!(
            "maximum_son_count {max} is above {}: a wallet of that many SONs makes deposit \
             scripts of more than Bitcoin's 201 counted opcodes, which can never be spent",
            script::MAX_WALLET_SIGNERS
        ));
    }
    Ok(())
}

/// The crate's check of a SON's keys: a `bitcoin` key, a compressed public key written as
/// lower-case hex (its one spelling, so two SONs cannot register one key spelt two ways), that
/// no other SON that is not deregistered registered or asked for. Two SONs with one key would
/// give the holder of its secret both SONs' weight in every wallet.
pub fn check_son_keys(
    state: &State,
    son: SonId,
    keys: &std::collections::BTreeMap<String, String>,
) -> Result<(), String> {
    let key = keys.get("bitcoin").ok_or("no bitcoin key")?;
    let parsed = script::parse_key(key).map_err(|e| e.to_string())?;
    if *key != parsed.to_string() {
        return Err(format!("`{key}` is not written as lower-case hex (write `{parsed}`)"));
    }
    let clash = state.sons().iter().find(|(id, s)| {
        **id != son
            && s.status != sonprop_core::SonStatus::Deregistered
            && (s.sidechain_public_keys.get("bitcoin") == Some(key)
                || s.next_sidechain_public_keys.as_ref().and_then(|k| k.get("bitcoin"))
                    == Some(key))
    });
    match clash {
        Some((id, _)) => Err(format!("son {id} registered the same bitcoin key")),
        None => Ok(()),
    }
}

/// The wallet the SONs should hold now: each SON of the last maintenance interval's set (in
/// id order, as Peerplays' active SON set) with its registered Bitcoin key and its
/// vote-derived weight. The set changes only at maintenance, so one replaced SON costs one
/// wallet update, not one when it leaves and another when its successor arrives.
pub fn expected_signers(state: &State) -> Result<Vec<WalletSigner>, WalletError> {
    let signers = unchecked_signers(state)?;
    for s in &signers {
        script::parse_key(&s.public_key)
            .map_err(|e| WalletError::BadKey { son: s.son, reason: e.to_string() })?;
    }
    Ok(signers)
}

/// [`expected_signers`] without parsing the keys (parsing a compressed key costs a square
/// root): enough to see that the current wallet, whose keys were checked when it was made,
/// still has them.
pub fn unchecked_signers(state: &State) -> Result<Vec<WalletSigner>, WalletError> {
    let set = &state.globals().maintenance_sons;
    let sons: Vec<_> = set.iter().filter_map(|id| state.son(*id)).collect();
    if sons.is_empty() {
        return Err(WalletError::NoSons);
    }
    if sons.len() > script::MAX_WALLET_SIGNERS {
        return Err(WalletError::TooManySons { sons: sons.len() });
    }
    // The votes they were elected with: the live tally moves with every balance, a wallet only
    // at maintenance.
    let election = state.globals().last_election.as_ref();
    let votes: Vec<u64> =
        sons.iter().map(|s| election.and_then(|e| e.votes_of(s.id)).unwrap_or(s.votes)).collect();
    let w = weights(&votes);
    sons.iter()
        .zip(w)
        .map(|(s, weight)| {
            let hex = s.sidechain_public_keys.get("bitcoin").ok_or_else(|| {
                WalletError::BadKey { son: s.id, reason: "none registered".into() }
            })?;
            Ok(WalletSigner { son: s.id, public_key: hex.clone(), weight })
        })
        .collect()
}

/// The script signers of a wallet's SON set.
pub fn script_signers(signers: &[WalletSigner]) -> Result<Vec<Signer>, script::ScriptError> {
    signers
        .iter()
        .map(|s| Ok(Signer { key: script::parse_key(&s.public_key)?, weight: s.weight }))
        .collect()
}

/// The current (latest) wallet.
pub fn current_wallet(state: &State) -> Option<&Wallet> {
    state.last_row::<Wallets>().map(|(_, w)| w)
}

/// The transactions still collecting signatures.
pub fn pending(state: &State) -> impl Iterator<Item = &SidechainTx> + '_ {
    let valid = TxStatus::Valid.code();
    state.rows_by_range(&TXS_BY_STATUS, &(valid, 0), &(valid + 1, 0)).map(|(_, t)| t)
}

/// The transactions with a given status.
pub fn with_status<'a>(
    state: &'a State,
    status: &TxStatus,
) -> impl Iterator<Item = &'a SidechainTx> + 'a {
    let c = status.code();
    state.rows_by_range(&TXS_BY_STATUS, &(c, 0), &(c + 1, 0)).map(|(_, t)| t)
}

/// The transactions not settled or failed yet (collecting signatures, complete, or sent).
pub fn unsettled(state: &State) -> impl Iterator<Item = &SidechainTx> + '_ {
    state.rows_by_range(&TXS_BY_STATUS, &(0, 0), &(3, 0)).map(|(_, t)| t)
}

/// The outputs a wallet holds, in outpoint order.
pub fn wallet_utxos(state: &State, wallet: u64) -> Vec<(OutPoint, u64)> {
    let mut v: Vec<_> = state
        .rows_by(&UTXOS_BY_WALLET, &wallet)
        .map(|(k, u)| (outpoint(&k), u.amount_sat))
        .collect();
    v.sort();
    v
}

/// Whether `son`'s signature is still needed: a transaction collecting signatures (before its
/// deadline) is short of its threshold, and `son` signs for it and has not signed.
/// `Some(reason)` names the transaction. The deregistration guard's rule: such a SON is
/// deregistered once the transaction completes or fails.
pub fn signature_needed(state: &State, son: SonId) -> Option<String> {
    let now = state.head_time();
    pending(state).filter(|t| t.deadline > now && t.signed_weight < t.threshold).find_map(|t| {
        let wallet = state.row::<Wallets>(&t.signing_wallet)?;
        let me = wallet.signers.iter().find(|s| s.son == son)?;
        (!t.signatures.contains_key(&son)).then(|| {
            format!(
                "signature needed for sidechain tx {} (signed {} of {}; its weight {})",
                t.id, t.signed_weight, t.threshold, me.weight
            )
        })
    })
}

/// The wrapped asset (PBTC) deposits issue and withdrawals burn. A genesis that holds it must
/// hold it right: issued by the SON consensus authority, with 8 decimals (one unit is one
/// satoshi) and none in existence (PBTC nobody deposited would be backed by nothing). A genesis
/// without it runs the wallet alone: deposit keys are refused (`NoAsset`).
#[derive(Parameter)]
#[parameter(
    name = "bitcoin.asset",
    description = "the wrapped BTC asset (PBTC) deposits issue and withdrawals burn",
    value = AssetId,
    default = AssetId(1),
    at_genesis = asset_at_genesis
)]
pub struct AssetParam;

/// [`AssetParam`] on the genesis state: an existing asset must be the SONs', in satoshis, and
/// none of it may exist yet.
fn asset_at_genesis(id: &AssetId, genesis: &dyn sonprop_core::GenesisView) -> Result<(), String> {
    let Some(a) = genesis.asset(*id) else { return Ok(()) };
    if a.issuer != AccountId::SON_CONSENSUS {
        return Err(format!(
            "asset {id} ({}) is issued by {}, not by the SON consensus account {}",
            a.symbol,
            a.issuer,
            AccountId::SON_CONSENSUS
        ));
    }
    if a.precision != 8 {
        return Err(format!(
            "asset {id} ({}) has {} decimals; PBTC has 8 (one unit is one satoshi)",
            a.symbol, a.precision
        ));
    }
    if a.supply != 0 {
        return Err(format!(
            "{} of asset {id} ({}) exist at genesis; PBTC starts at none, or it is backed by \
             nothing",
            a.supply, a.symbol
        ));
    }
    Ok(())
}

/// The PBTC asset a bridge's genesis needs, with id `id` (the `bitcoin.asset` parameter):
/// issued by the SON account, 8 decimals (one unit is one satoshi), at most 21 million BTC, none
/// in existence yet.
pub fn pbtc_genesis_asset(id: AssetId) -> sonprop_core::Asset {
    sonprop_core::Asset {
        id,
        symbol: "PBTC".into(),
        precision: 8,
        issuer: AccountId::SON_CONSENSUS,
        max_supply: 21_000_000 * 100_000_000,
        supply: 0,
    }
}

/// A user's deposit key: the user's deposit address is the one-or-weighted script of this key
/// over the current wallet's SONs, so it changes when the wallet does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositKey {
    /// The compressed public key, hex.
    pub public_key: String,
    /// Where the user's withdrawals go unless the withdrawal names another address.
    pub withdraw_address: Option<String>,
}

/// Each user's deposit key, by account; indexed by key (a key serves one account only).
pub struct DepositKeys;

/// [`DepositKeys`] by public key.
pub const DEPOSIT_KEYS_BY_KEY: Index<DepositKeys, String> = Index::new("by_key");
impl TableSchema for DepositKeys {
    const NAME: &'static str = "bitcoin.deposit_keys";
    type Key = AccountId;
    type Value = DepositKey;
    fn index(row: &DepositKey, out: &mut IndexEntries) {
        DEPOSIT_KEYS_BY_KEY.add(&row.public_key, out);
    }
}

/// Where a deposit stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum DepositStatus {
    /// Reported by SONs holding less than two thirds of the wallet's weight.
    Reported,
    /// Reported by more than two thirds of the weight: a SON may propose its sweep.
    Confirmed,
    /// Its sweep is sidechain transaction `tx`.
    Sweeping {
        /// The sweep.
        tx: u64,
    },
    /// Swept and settled: `credited` PBTC went to the user.
    Credited {
        /// The sweep.
        tx: u64,
        /// PBTC issued (the amount that reached the wallet, less what it pre-paid into the
        /// reserve for its later sweep).
        credited: u64,
    },
    /// Confirmed, but too small to credit: below `bitcoin.min_deposit_sat`, or its sweep
    /// could not leave anything at the lowest fee rate. The SONs never sweep it; the user can
    /// take it back through the deposit script's own branch.
    TooSmall {
        /// Why.
        reason: String,
    },
    /// Gone from Bitcoin (a reorganisation or a double spend), as SONs above two thirds saw
    /// it: never credited.
    Vanished,
}

impl fmt::Display for DepositStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DepositStatus::Reported => f.write_str("reported"),
            DepositStatus::Confirmed => f.write_str("confirmed"),
            DepositStatus::Sweeping { tx } => write!(f, "sweeping (sidechain tx {tx})"),
            DepositStatus::Credited { tx, credited } => {
                write!(f, "credited {credited} PBTC (sidechain tx {tx})")
            }
            DepositStatus::TooSmall { reason } => write!(f, "too small to credit: {reason}"),
            DepositStatus::Vanished => f.write_str("vanished from Bitcoin"),
        }
    }
}

impl DepositStatus {
    /// A small code for the status index.
    pub fn code(&self) -> u8 {
        match self {
            DepositStatus::Reported => 0,
            DepositStatus::Confirmed => 1,
            DepositStatus::Sweeping { .. } => 2,
            DepositStatus::Credited { .. } => 3,
            DepositStatus::TooSmall { .. } => 4,
            DepositStatus::Vanished => 5,
        }
    }
}

/// One version of a deposit the SONs reported: who it credits, how much, and the wallet whose
/// deposit address it paid. SONs whose views differ back different claims; a claim backed by
/// more than two thirds of its wallet's weight confirms the deposit. The wallet is part of the
/// version, not taken from whoever reported first: SONs below a third can neither confirm a
/// version of their own nor stall the honest one by describing the deposit first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The user it credits.
    pub account: AccountId,
    /// Its amount, in satoshis.
    pub amount_sat: u64,
    /// The user's deposit key when it was reported (the script's refund branch), hex.
    pub user_key: String,
    /// The wallet whose SONs the deposit address names (who report, and sign its sweep).
    pub wallet: u64,
    /// That wallet's total weight.
    pub total_weight: u32,
    /// The SONs that reported it.
    pub reporters: Vec<SonId>,
    /// Their weight in the wallet.
    pub weight: u32,
}

impl Claim {
    /// Whether it is backed by more than two thirds of its wallet's weight.
    pub fn passes(&self) -> bool {
        u64::from(self.weight) * 3 > u64::from(self.total_weight) * 2
    }
}

/// A payment to a user's deposit address, as the SONs reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deposit {
    /// The output, `txid:vout`.
    pub outpoint: String,
    /// The versions reported.
    pub claims: Vec<Claim>,
    /// Where it stands.
    #[serde(flatten)]
    pub status: DepositStatus,
    /// When the first report came.
    pub first_reported: Timestamp,
}

impl Deposit {
    /// The claim backed by more than two thirds of its wallet's weight, if any.
    pub fn accepted(&self) -> Option<&Claim> {
        self.claims.iter().find(|c| c.passes())
    }

    /// Whether `son` reported it (any version).
    pub fn reported_by(&self, son: SonId) -> bool {
        self.claims.iter().any(|c| c.reporters.contains(&son))
    }
}

/// Deposits by outpoint; indexed by status.
pub struct Deposits;

/// [`Deposits`] by status code.
pub const DEPOSITS_BY_STATUS: Index<Deposits, u8> = Index::new("by_status");
impl TableSchema for Deposits {
    const NAME: &'static str = "bitcoin.deposits";
    type Key = ([u8; 32], u32);
    type Value = Deposit;
    fn index(row: &Deposit, out: &mut IndexEntries) {
        DEPOSITS_BY_STATUS.add(&row.status.code(), out);
    }
}

/// Where a withdrawal stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum WithdrawalStatus {
    /// Its PBTC is in escrow; waiting for a SON to propose its payment.
    Pending,
    /// Its payment is sidechain transaction `tx`.
    Paying {
        /// The payment.
        tx: u64,
    },
    /// Paid and settled: its PBTC was burnt.
    Paid {
        /// The payment.
        tx: u64,
        /// What reached the user's address, in satoshis (the amount less the fee).
        sent_sat: u64,
    },
    /// The wallet could not cover it: its PBTC went back to the user.
    Refunded {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for WithdrawalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WithdrawalStatus::Pending => f.write_str("pending"),
            WithdrawalStatus::Paying { tx } => write!(f, "paying (sidechain tx {tx})"),
            WithdrawalStatus::Paid { tx, sent_sat } => {
                write!(f, "paid {sent_sat} sat (sidechain tx {tx})")
            }
            WithdrawalStatus::Refunded { reason } => write!(f, "refunded: {reason}"),
        }
    }
}

impl WithdrawalStatus {
    /// A small code for the status index.
    pub fn code(&self) -> u8 {
        match self {
            WithdrawalStatus::Pending => 0,
            WithdrawalStatus::Paying { .. } => 1,
            WithdrawalStatus::Paid { .. } => 2,
            WithdrawalStatus::Refunded { .. } => 3,
        }
    }
}

/// A withdrawal: PBTC held in escrow by the SON account until Bitcoin pays it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    /// Its number.
    pub id: u64,
    /// Who withdraws.
    pub account: AccountId,
    /// The Bitcoin address paid.
    pub address: String,
    /// PBTC escrowed, which is also the satoshis the transaction takes from the wallet
    /// (the user receives it less the fee).
    pub amount_sat: u64,
    /// Where it stands.
    #[serde(flatten)]
    pub status: WithdrawalStatus,
    /// When it was requested.
    pub created: Timestamp,
}

/// Withdrawals by number; indexed by status.
pub struct Withdrawals;

/// [`Withdrawals`] by `(status code, id)`.
pub const WITHDRAWALS_BY_STATUS: Index<Withdrawals, (u8, u64)> = Index::new("by_status");
impl TableSchema for Withdrawals {
    const NAME: &'static str = "bitcoin.withdrawals";
    type Key = u64;
    type Value = Withdrawal;
    fn index(row: &Withdrawal, out: &mut IndexEntries) {
        WITHDRAWALS_BY_STATUS.add(&(row.status.code(), row.id), out);
    }
}

/// The bridge's running totals, kept by the operations that move value: the terms of the
/// conservation equation that are not visible in other rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Books {
    /// Satoshis recorded as paid to a wallet directly (`bitcoin_wallet_utxo`): the SONs'
    /// reserve, which backs no PBTC and pays the wallet sweeps' fees.
    pub funded_sat: u64,
    /// Fees paid by settled wallet sweeps (taken from the reserve).
    pub sweep_fees_sat: u64,
    /// PBTC issued for settled deposits.
    pub issued: u64,
    /// PBTC burnt for settled withdrawals.
    pub burnt: u64,
    /// What settled deposits pre-paid into the reserve for their outputs' later sweeps.
    #[serde(default)]
    pub carried_sat: u64,
    /// Satoshis of recorded outputs that vanished from Bitcoin (reconciliation).
    #[serde(default)]
    pub lost_sat: u64,
    /// The deficit the SONs decided to carry on with (`bitcoin_resume`): deposits and
    /// withdrawals pause only while the deficit exceeds it.
    #[serde(default)]
    pub lifted_sat: u64,
}

impl Books {
    /// The reserve: funding and carries, less sweep fees and losses; negative when losses ate
    /// more than the reserve held (that much PBTC is unbacked).
    pub fn reserve(&self) -> i128 {
        i128::from(self.funded_sat) + i128::from(self.carried_sat)
            - i128::from(self.sweep_fees_sat)
            - i128::from(self.lost_sat)
    }

    /// The reserve left, or 0 when there is a deficit.
    pub fn reserve_sat(&self) -> u64 {
        u64::try_from(self.reserve().max(0)).unwrap_or(u64::MAX)
    }

    /// The PBTC no Bitcoin backs: what losses took beyond the reserve.
    pub fn deficit_sat(&self) -> u64 {
        u64::try_from((-self.reserve()).max(0)).unwrap_or(u64::MAX)
    }
}

/// The bridge's books: one row, key 0.
pub struct BooksTable;
impl TableSchema for BooksTable {
    const NAME: &'static str = "bitcoin.books";
    type Key = u64;
    type Value = Books;
}

/// The books as they stand.
pub fn books(state: &State) -> Books {
    state.row::<BooksTable>(&0).cloned().unwrap_or_default()
}

/// The user's deposit script over `wallet`'s SONs: the one-or-weighted script, whose ELSE
/// branch is the wallet's own witness script, so it is built around it without parsing the
/// SONs' keys again (the wallet's were checked when it was made, the user's when registered).
/// The same bytes as [`script::one_or_weighted_script`] (a test holds them equal).
pub fn deposit_script(user_key: &str, wallet: &Wallet) -> Result<ScriptBuf, script::ScriptError> {
    use bitcoin::opcodes::all::{OP_CHECKSIG, OP_ELSE, OP_ENDIF, OP_IF};
    let bad = |reason: &str| script::ScriptError::Parse {
        input: user_key.to_owned(),
        what: "public key",
        reason: reason.to_owned(),
    };
    let bytes = sonprop_core::chain::crypto::from_hex(user_key).ok_or_else(|| bad("not hex"))?;
    let key: [u8; 33] = bytes.try_into().map_err(|_| bad("not a 33-byte compressed key"))?;
    if key[0] != 2 && key[0] != 3 {
        return Err(bad("not a compressed key"));
    }
    if let Some(index) = wallet.signers.iter().position(|s| s.public_key == user_key) {
        return Err(script::ScriptError::UserIsSigner { index, key: user_key.to_owned() });
    }
    let mut out = bitcoin::script::Builder::new()
        .push_slice(key)
        .push_opcode(OP_CHECKSIG)
        .push_opcode(OP_IF)
        .push_int(1)
        .push_opcode(OP_ELSE)
        .into_script()
        .into_bytes();
    out.extend_from_slice(wallet.script().as_bytes());
    out.push(OP_ENDIF.to_u8());
    Ok(ScriptBuf::from_bytes(out))
}

/// The witness script the inputs of `t` spend.
pub fn input_script(state: &State, t: &SidechainTx) -> Option<ScriptBuf> {
    let wallet = state.row::<Wallets>(&t.signing_wallet)?;
    match &t.purpose {
        Purpose::Deposit { user_key, .. } => deposit_script(user_key, wallet).ok(),
        _ => Some(wallet.script()),
    }
}

/// Both sides of the conservation equation, and the counters it is checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conservation {
    /// Satoshis in the wallets' outputs the chain knows.
    pub utxos_sat: u64,
    /// Satoshis of wallet outputs spent by sweeps and withdrawal payments not settled yet.
    pub in_flight_sat: u64,
    /// The PBTC in existence.
    pub pbtc_supply: u64,
    /// PBTC in escrow for withdrawals not paid yet.
    pub escrow: u64,
    /// PBTC issued by credited deposits (the sum over their rows).
    pub credited: u64,
    /// PBTC of paid withdrawals (the sum over their rows).
    pub paid: u64,
    /// PBTC the SON account holds.
    pub held: u64,
    /// The PBTC no Bitcoin backs, as reconciliation recorded it (0 when all is backed).
    pub deficit_sat: u64,
    /// The books.
    pub books: Books,
}

/// A broken conservation rule — a bug, never a user error — naming the term that disagrees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConservationError {
    /// The BTC the chain holds does not match what it owes plus the reserve.
    #[error(
        "conservation broken: wallet outputs {utxos} + in flight {in_flight} + sweep fees \
         {sweep_fees} + lost {lost} != PBTC supply {supply} + funded {funded} + carried {carried}"
    )]
    Backing {
        /// `utxos_sat`.
        utxos: u64,
        /// `in_flight_sat`.
        in_flight: u64,
        /// `sweep_fees_sat`.
        sweep_fees: u64,
        /// `lost_sat`.
        lost: u64,
        /// The PBTC supply.
        supply: u64,
        /// `funded_sat`.
        funded: u64,
        /// `carried_sat`.
        carried: u64,
    },
    /// Sweep fees were paid beyond what the SONs funded and deposits carried.
    #[error(
        "conservation broken: sweep fees {sweep_fees} exceed the reserve funded {funded} + carried {carried}"
    )]
    Reserve {
        /// `sweep_fees_sat`.
        sweep_fees: u64,
        /// `funded_sat`.
        funded: u64,
        /// `carried_sat`.
        carried: u64,
    },
    /// The supply is not what was issued less what was burnt.
    #[error("conservation broken: PBTC supply {supply} != issued {issued} - burnt {burnt}")]
    Supply {
        /// The PBTC supply.
        supply: u64,
        /// `issued`.
        issued: u64,
        /// `burnt`.
        burnt: u64,
    },
    /// The books' issued total is not the credited deposits' sum.
    #[error("conservation broken: issued {issued} but deposits credited {credited}")]
    Issued {
        /// `issued`.
        issued: u64,
        /// The credited deposits' sum.
        credited: u64,
    },
    /// The books' burnt total is not the paid withdrawals' sum.
    #[error("conservation broken: burnt {burnt} but withdrawals paid {paid}")]
    Burnt {
        /// `burnt`.
        burnt: u64,
        /// The paid withdrawals' sum.
        paid: u64,
    },
    /// The SON account holds less PBTC than the withdrawals escrow.
    #[error("conservation broken: the SON account holds {held} PBTC, withdrawals escrow {escrow}")]
    Escrow {
        /// What the SON account holds.
        held: u64,
        /// What pending and paying withdrawals escrow.
        escrow: u64,
    },
}

/// The conservation equation as the crate's invariant, checked after every block by the
/// simulator and the test kit ([`conservation`] says what it states).
pub const CONSERVATION: sonprop_core::Invariant = sonprop_core::Invariant {
    name: "conservation",
    check: |state| conservation(state).map(|_| ()).map_err(|e| e.to_string()),
    reads: Some(conservation_inputs),
};

/// What the conservation equation (and the bridge's alarms) read, as a fingerprint: the
/// operation crates' tables (the Bitcoin crate's among them, by the plugin generation), the
/// assets and the balances. A block that writes none of them leaves it as it was.
pub fn conservation_inputs(st: &State) -> Vec<u64> {
    vec![st.plugin_generation(), st.assets().generation(), st.balances().generation()]
}

/// Checks the bridge's conservation equation on `state`:
///
/// ```text
/// utxos + in_flight + sweep_fees + lost = pbtc_supply + funded + carried
///                                          (reserve = funded + carried - sweep_fees - lost)
/// sweep_fees  <= funded + carried          (only a loss takes the reserve below zero)
/// pbtc_supply  = issued - burnt
/// issued       = sum of credited deposits;  burnt = sum of paid withdrawals
/// escrow       = sum of pending and paying withdrawals <= the SON account's PBTC
/// ```
///
/// So the PBTC supply never exceeds the BTC the wallets hold (counting wallet outputs that
/// unsettled transactions spend) by more than the losses reconciliation recorded: a negative
/// reserve is the deficit, reported in [`Conservation::deficit_sat`], and it pauses the bridge
/// ([`paused`]).
pub fn conservation(state: &State) -> Result<Conservation, ConservationError> {
    let b = books(state);
    let asset = state.param::<AssetParam>();
    let supply = state.asset(asset).map_or(0, |a| a.supply);
    let utxos: u64 = state.rows::<Utxos>().map(|(_, u)| u.amount_sat).sum();
    let in_flight: u64 = unsettled(state)
        .filter(|t| t.purpose.spends_wallet())
        .flat_map(|t| t.inputs.iter().map(|i| i.amount_sat))
        .sum();
    let escrow: u64 = state
        .rows::<Withdrawals>()
        .filter(|(_, w)| {
            matches!(w.status, WithdrawalStatus::Pending | WithdrawalStatus::Paying { .. })
        })
        .map(|(_, w)| w.amount_sat)
        .sum();
    let credited: u64 = state
        .rows::<Deposits>()
        .filter_map(|(_, d)| match d.status {
            DepositStatus::Credited { credited, .. } => Some(credited),
            _ => None,
        })
        .sum();
    let paid: u64 = state
        .rows::<Withdrawals>()
        .filter(|(_, w)| matches!(w.status, WithdrawalStatus::Paid { .. }))
        .map(|(_, w)| w.amount_sat)
        .sum();
    // PBTC sent to the SON account by plain transfer is held there too (and stays backed).
    let held = state.balance(AccountId::SON_CONSENSUS, asset);
    let c = Conservation {
        utxos_sat: utxos,
        in_flight_sat: in_flight,
        pbtc_supply: supply,
        escrow,
        credited,
        paid,
        held,
        deficit_sat: b.deficit_sat(),
        books: b,
    };
    c.check()?;
    Ok(c)
}

impl Conservation {
    /// The equation's rules over these terms ([`conservation`] gathers them from a state): the
    /// first that fails, as the error naming it.
    pub fn check(&self) -> Result<(), ConservationError> {
        let b = &self.books;
        let (utxos, in_flight, supply) = (self.utxos_sat, self.in_flight_sat, self.pbtc_supply);
        let (escrow, credited, paid, held) = (self.escrow, self.credited, self.paid, self.held);
        let w = u128::from;
        if w(b.sweep_fees_sat) > w(b.funded_sat) + w(b.carried_sat) {
            return Err(ConservationError::Reserve {
                sweep_fees: b.sweep_fees_sat,
                funded: b.funded_sat,
                carried: b.carried_sat,
            });
        }
        if w(utxos) + w(in_flight) + w(b.sweep_fees_sat) + w(b.lost_sat)
            != w(supply) + w(b.funded_sat) + w(b.carried_sat)
        {
            return Err(ConservationError::Backing {
                utxos,
                in_flight,
                sweep_fees: b.sweep_fees_sat,
                lost: b.lost_sat,
                supply,
                funded: b.funded_sat,
                carried: b.carried_sat,
            });
        }
        if w(supply) + w(b.burnt) != w(b.issued) {
            return Err(ConservationError::Supply { supply, issued: b.issued, burnt: b.burnt });
        }
        if b.issued != credited {
            return Err(ConservationError::Issued { issued: b.issued, credited });
        }
        if b.burnt != paid {
            return Err(ConservationError::Burnt { burnt: b.burnt, paid });
        }
        if held < escrow {
            return Err(ConservationError::Escrow { held, escrow });
        }
        Ok(())
    }
}

/// Why deposits and withdrawals are paused, if they are: the circuit breaker. Outputs the
/// chain recorded vanished from Bitcoin (reconciliation) and left more PBTC unbacked than the
/// SONs decided to carry on with (`bitcoin_resume`). It lifts by itself when the SONs make the
/// deficit good by paying into the wallet (recorded as reserve funding).
pub fn paused(state: &State) -> Option<String> {
    let b = books(state);
    let deficit = b.deficit_sat();
    (deficit > b.lifted_sat).then(|| {
        format!(
            "deposits and withdrawals are paused: {deficit} sat of PBTC are unbacked after \
             {} sat of recorded outputs vanished from Bitcoin; paid into the wallet by the \
             SONs, or accepted by them (bitcoin_resume), they resume",
            b.lost_sat
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deposit_script_built_around_the_wallet_script_is_the_one_or_weighted_script() {
        use bitcoin::secp256k1::{Secp256k1, SecretKey};
        let secp = Secp256k1::new();
        let key = |i: u8| {
            let sk = SecretKey::from_slice(&[i; 32]).expect("key");
            bitcoin::PublicKey::new(sk.public_key(&secp))
        };
        for (n, weight) in [(1u8, 1u16), (3, 100), (15, 1), (7, 65_535)] {
            let signers: Vec<WalletSigner> = (1..=n)
                .map(|i| WalletSigner {
                    son: SonId(u64::from(i)),
                    public_key: key(i).to_string(),
                    weight: weight.saturating_sub(u16::from(i) % 2).max(1),
                })
                .collect();
            let ws =
                script::weighted_script(&script_signers(&signers).expect("keys")).expect("script");
            let wallet = Wallet {
                id: 0,
                signers: signers.clone(),
                witness_script: ws.to_hex_string(),
                address: String::new(),
                valid_from: Timestamp(0),
                expires: None,
            };
            let user = key(200);
            let expected = script::one_or_weighted_script(
                &user,
                &script_signers(&signers).expect("keys"),
                None,
            )
            .expect("script");
            assert_eq!(deposit_script(&user.to_string(), &wallet), Ok(expected), "{n} signers");
        }
        let wallet = Wallet {
            id: 0,
            signers: Vec::new(),
            witness_script: String::new(),
            address: String::new(),
            valid_from: Timestamp(0),
            expires: None,
        };
        assert!(deposit_script("04ab", &wallet).is_err());
        assert!(deposit_script(&format!("04{}", "11".repeat(32)), &wallet).is_err());
    }

    /// The reserve is funding and carries less fees and losses, each term counted once with its
    /// sign; losses beyond it are the deficit, and the reserve left is then 0.
    #[test]
    fn the_reserve_adds_funding_and_carries_and_takes_fees_and_losses() {
        let b = Books {
            funded_sat: 100_000,
            carried_sat: 5_000,
            sweep_fees_sat: 2_000,
            lost_sat: 1_000,
            ..Books::default()
        };
        assert_eq!((b.reserve(), b.reserve_sat(), b.deficit_sat()), (102_000, 102_000, 0));
        let b = Books { lost_sat: 110_000, ..b };
        assert_eq!((b.reserve(), b.reserve_sat(), b.deficit_sat()), (-7_000, 0, 7_000));
    }

    /// Balanced terms: a reserve of 100 000 funded and 5 000 carried, less 2 000 of sweep
    /// fees and 1 000 lost; 10 M PBTC issued, 3 M burnt; 500 000 in escrow.
    fn balanced() -> Conservation {
        let books = Books {
            funded_sat: 100_000,
            sweep_fees_sat: 2_000,
            issued: 10_000_000,
            burnt: 3_000_000,
            carried_sat: 5_000,
            lost_sat: 1_000,
            lifted_sat: 0,
        };
        Conservation {
            utxos_sat: 6_902_000,
            in_flight_sat: 200_000,
            pbtc_supply: 7_000_000,
            escrow: 500_000,
            credited: 10_000_000,
            paid: 3_000_000,
            held: 500_000,
            deficit_sat: 0,
            books,
        }
    }

    /// The equation holds for balanced terms, and each term off by one (either way) breaks it
    /// with the error that names it.
    #[test]
    fn each_term_of_the_conservation_equation_off_by_one_is_named() {
        use ConservationError as E;
        assert_eq!(balanced().check(), Ok(()));
        type Change = fn(&mut Conservation, bool);
        type Named = fn(&ConservationError) -> bool;
        let cases: [(&str, Change, Named); 12] = [
            (
                "utxos",
                |c, up| c.utxos_sat = bump(c.utxos_sat, up),
                |e| matches!(e, E::Backing { .. }),
            ),
            (
                "in flight",
                |c, up| c.in_flight_sat = bump(c.in_flight_sat, up),
                |e| matches!(e, E::Backing { .. }),
            ),
            (
                "supply",
                |c, up| c.pbtc_supply = bump(c.pbtc_supply, up),
                |e| matches!(e, E::Backing { .. }),
            ),
            (
                "funded",
                |c, up| c.books.funded_sat = bump(c.books.funded_sat, up),
                |e| matches!(e, E::Backing { .. }),
            ),
            (
                "carried",
                |c, up| c.books.carried_sat = bump(c.books.carried_sat, up),
                |e| matches!(e, E::Backing { .. }),
            ),
            (
                "sweep fees",
                |c, up| c.books.sweep_fees_sat = bump(c.books.sweep_fees_sat, up),
                |e| matches!(e, E::Backing { .. }),
            ),
            (
                "lost",
                |c, up| c.books.lost_sat = bump(c.books.lost_sat, up),
                |e| matches!(e, E::Backing { .. }),
            ),
            (
                "issued",
                |c, up| c.books.issued = bump(c.books.issued, up),
                |e| matches!(e, E::Supply { .. }),
            ),
            (
                "burnt",
                |c, up| c.books.burnt = bump(c.books.burnt, up),
                |e| matches!(e, E::Supply { .. }),
            ),
            (
                "credited",
                |c, up| c.credited = bump(c.credited, up),
                |e| matches!(e, E::Issued { .. }),
            ),
            ("paid", |c, up| c.paid = bump(c.paid, up), |e| matches!(e, E::Burnt { .. })),
            (
                "escrow",
                |c, _| c.escrow += 1,
                |e| matches!(e, E::Escrow { held: 500_000, escrow: 500_001 }),
            ),
        ];
        for (term, change, named) in cases {
            for up in [true, false] {
                let mut c = balanced();
                change(&mut c, up);
                let e = c.check().expect_err(term);
                assert!(named(&e), "{term} {}: {e}", if up { "+1" } else { "-1" });
            }
        }
        // Sweep fees beyond what was funded and carried are named as such.
        let mut c = balanced();
        c.books.sweep_fees_sat = 105_001;
        c.books.lost_sat = 0;
        c.utxos_sat -= 102_001;
        assert!(
            matches!(c.check(), Err(E::Reserve { sweep_fees: 105_001, .. })),
            "{:?}",
            c.check()
        );
        // The SON account may hold more than the escrow (a plain transfer to it), not less.
        let mut c = balanced();
        c.held += 1;
        assert_eq!(c.check(), Ok(()));
        c.held -= 2;
        assert!(matches!(c.check(), Err(E::Escrow { .. })));
    }

    fn bump(v: u64, up: bool) -> u64 {
        if up {
            v + 1
        } else {
            v - 1
        }
    }

    #[test]
    fn votes_scale_to_weights_between_1_and_65535() {
        assert_eq!(weights(&[0, 0, 3]), vec![1, 1, 3]);
        assert_eq!(weights(&[u64::MAX, u64::MAX / 2, 0]), vec![65535, 32767, 1]);
        assert_eq!(weights(&[70_000, 35_000]), vec![65535, 32767]);
        assert!(weights(&[]).is_empty());
    }
}
