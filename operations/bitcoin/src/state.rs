//! The Bitcoin crate's on-chain state: its tables and parameters, and the pure functions over
//! them that the operations, triggers, validators and the deregistration guard share.

use std::collections::BTreeMap;
use std::fmt;

use bitcoin::hashes::Hash;
use bitcoin::{OutPoint, ScriptBuf, Txid};
use serde::{Deserialize, Serialize};
use sonprop_core::{Index, IndexEntries, Parameter, SonId, State, TableSchema, Timestamp};

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
    /// Not signed by the threshold before its deadline; its inputs went back to their wallet.
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
    /// It fails if not complete by then.
    pub deadline: Timestamp,
}

/// The sidechain transactions, by number; indexed by status.
pub struct Transactions;
/// [`Transactions`] by `(status code, id)`.
pub const TXS_BY_STATUS: Index<Transactions, (u8, u64)> = Index::new("by_status");
impl TableSchema for Transactions {
    const NAME: &'static str = "bitcoin.transactions";
    type Key = u64;
    type Value = SidechainTx;
    fn index(row: &SidechainTx, out: &mut IndexEntries) {
        TXS_BY_STATUS.add(&(row.status.code(), row.id), out);
    }
}

macro_rules! param {
    ($(#[$doc:meta])* $name:ident, $key:literal, $desc:literal, $t:ty, $default:expr, $check:expr) => {
        $(#[$doc])*
        pub struct $name;
        impl Parameter for $name {
            const NAME: &'static str = $key;
            const DESCRIPTION: &'static str = $desc;
            type Value = $t;
            fn default_value() -> $t {
                $default
            }
            fn validate(v: &$t) -> Result<(), String> {
                let check: fn(&$t) -> Result<(), String> = $check;
                check(v)
            }
        }
    };
}

fn at_least_one(v: &u64) -> Result<(), String> {
    if *v == 0 {
        return Err("must be at least 1".into());
    }
    Ok(())
}

param!(
    /// The Bitcoin network the wallets live on.
    NetworkParam, "bitcoin.network", "the Bitcoin network of the wallets", BitcoinNetwork,
    BitcoinNetwork::Regtest, |_| Ok(())
);
param!(
    /// The lowest fee rate a proposal may carry, sat/vB.
    MinFeeRate, "bitcoin.min_fee_rate", "lowest fee rate a proposal may carry (sat/vB)", u64, 1,
    at_least_one
);
param!(
    /// The highest fee rate a proposal may carry, sat/vB.
    MaxFeeRate, "bitcoin.max_fee_rate", "highest fee rate a proposal may carry (sat/vB)", u64,
    500, at_least_one
);
param!(
    /// How long a sidechain transaction may collect signatures, seconds.
    SignTimeout, "bitcoin.sign_timeout", "seconds a transaction may collect signatures", u64,
    24 * 3600, at_least_one
);
param!(
    /// Confirmations a wallet output needs before the chain records it.
    MinConfirmations, "bitcoin.min_confirmations",
    "confirmations an output needs before the chain records it", u32, 1,
    |v| if *v == 0 { Err("must be at least 1".into()) } else { Ok(()) }
);

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
}

/// The wallet the SONs should hold now: each SON of the last maintenance interval's set (in
/// id order, as Peerplays' active SON set) with its registered Bitcoin key and its
/// vote-derived weight. The set changes only at maintenance, so one replaced SON costs one
/// wallet update, not one when it leaves and another when its successor arrives.
pub fn expected_signers(state: &State) -> Result<Vec<WalletSigner>, WalletError> {
    let set = &state.globals().maintenance_sons;
    let sons: Vec<_> = set.iter().filter_map(|id| state.son(*id)).collect();
    if sons.is_empty() {
        return Err(WalletError::NoSons);
    }
    let w = weights(&sons.iter().map(|s| s.votes).collect::<Vec<_>>());
    sons.iter()
        .zip(w)
        .map(|(s, weight)| {
            let hex = s.sidechain_public_keys.get("bitcoin").ok_or_else(|| {
                WalletError::BadKey { son: s.id, reason: "none registered".into() }
            })?;
            script::parse_key(hex)
                .map_err(|e| WalletError::BadKey { son: s.id, reason: e.to_string() })?;
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

/// The transactions not settled or failed yet (collecting signatures, complete, or sent):
/// while one is, the wallet does not change again.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_scale_to_weights_between_1_and_65535() {
        assert_eq!(weights(&[0, 0, 3]), vec![1, 1, 3]);
        assert_eq!(weights(&[u64::MAX, u64::MAX / 2, 0]), vec![65535, 32767, 1]);
        assert_eq!(weights(&[70_000, 35_000]), vec![65535, 32767]);
        assert!(weights(&[]).is_empty());
    }
}
