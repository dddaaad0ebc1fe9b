//! The chain objects SON proposals act on: accounts and their authorities, witnesses, SONs and
//! their statistics, vesting balances.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::chain::crypto::PublicKey;
use crate::chain::ids::{
    AccountId, AssetId, ProposalId, SonId, SonProposalId, Subject, VestingId, WitnessId,
};
use crate::chain::time::Timestamp;

/// A weighted-threshold authority: satisfied when the weights of the keys that signed (or the
/// accounts that approved, recursively) reach `weight_threshold`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Authority {
    /// The weight that must be reached.
    pub weight_threshold: u32,
    /// Accounts whose own authority counts with the given weight.
    pub account_auths: BTreeMap<AccountId, u16>,
    /// Keys whose signature counts with the given weight.
    pub key_auths: BTreeMap<PublicKey, u16>,
}

impl Authority {
    /// A single-key authority: threshold 1, that key with weight 1.
    pub fn single_key(key: PublicKey) -> Authority {
        Authority {
            weight_threshold: 1,
            key_auths: BTreeMap::from([(key, 1)]),
            ..Default::default()
        }
    }

    /// Whether a threshold can be reached at all.
    pub fn is_satisfiable(&self) -> bool {
        let total: u64 =
            self.account_auths.values().chain(self.key_auths.values()).map(|&w| u64::from(w)).sum();
        self.weight_threshold > 0 && total >= u64::from(self.weight_threshold)
    }
}

/// An account: a name and the active authority that must sign for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// A readable name, unique on the chain.
    pub name: String,
    /// The authority that signs its transactions and approvals.
    pub active: Authority,
    /// The SONs it votes for: each gets the account's core-asset balance as votes
    /// (`account_vote`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub son_votes: BTreeSet<SonId>,
}

/// A block producer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witness {
    /// Its id.
    pub id: WitnessId,
    /// The account that operates it.
    pub account: AccountId,
    /// The key it signs blocks with.
    pub signing_key: PublicKey,
}

/// The state of a SON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SonStatus {
    /// Registered but not elected.
    Inactive,
    /// Elected and heartbeating.
    Active,
    /// Its operator asked for maintenance.
    RequestMaintenance,
    /// Reported down; a heartbeat brings it back.
    InMaintenance,
    /// Removed from the network. Terminal: nothing moves it again.
    Deregistered,
}

impl SonStatus {
    /// Every status, in index order.
    pub const ALL: [SonStatus; 5] = [
        SonStatus::Inactive,
        SonStatus::Active,
        SonStatus::RequestMaintenance,
        SonStatus::InMaintenance,
        SonStatus::Deregistered,
    ];

    /// Position in [`SonStatus::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for SonStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SonStatus::Inactive => "inactive",
            SonStatus::Active => "active",
            SonStatus::RequestMaintenance => "request_maintenance",
            SonStatus::InMaintenance => "in_maintenance",
            SonStatus::Deregistered => "deregistered",
        })
    }
}

/// A SON's statistics (Peerplays' `son_statistics_object`, kept inside the SON here so the
/// ledger's SON indexes see both in one row).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SonStatistics {
    /// Timestamp of the last accepted heartbeat (or of election, before the first one).
    pub last_active_timestamp: Timestamp,
    /// When it was last considered down: the time of its last heartbeat before the outage.
    pub last_down_timestamp: Timestamp,
    /// Seconds spent down, over its whole life.
    pub total_downtime: u64,
    /// Seconds spent down in the current maintenance interval.
    pub current_interval_downtime: u64,
    /// When it was deregistered.
    pub deregistered_timestamp: Option<Timestamp>,
    /// Sidechain transactions it signed since it was last paid.
    pub txs_signed: u64,
    /// Its last pay, when it was elected at a payout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pay: Option<SonPay>,
}

/// What a SON was paid at a payout, and why that much.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SonPay {
    /// When.
    pub at: Timestamp,
    /// What it got, in the core asset's smallest unit.
    pub amount: u64,
    /// The sidechain transactions it signed in the period.
    pub signed: u64,
    /// The sidechain transactions all elected SONs signed in the period.
    pub signed_by_all: u64,
    /// What was paid out to all of them.
    pub budget: u64,
}

/// The longest SON URL, in bytes.
pub const MAX_SON_URL_LEN: usize = 256;

/// A Sidechain Operator Node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Son {
    /// Its id.
    pub id: SonId,
    /// The account that operates it and signs its heartbeats and approvals.
    pub owner: AccountId,
    /// The key it signs Peerplays transactions with.
    pub signing_key: PublicKey,
    /// Its public key on each sidechain, by sidechain name (`bitcoin`, `hive`, …).
    pub sidechain_public_keys: BTreeMap<String, String>,
    /// Its deposit, in the core asset's smallest unit; vests when it is deregistered.
    pub deposit: u64,
    /// Where its operator publishes what the SON is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Sidechain keys set by `son_update`, in force from the next maintenance interval (the
    /// sidechain wallets follow the SON set of the last one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sidechain_public_keys: Option<BTreeMap<String, String>>,
    /// The vesting balance its pay accumulates in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pay_vesting: Option<VestingId>,
    /// The votes for it: standby SONs with more votes take freed seats first, and sidechain
    /// wallets weigh a SON's signature by them.
    #[serde(default)]
    pub votes: u64,
    /// Where it stands.
    pub status: SonStatus,
    /// Its statistics.
    pub statistics: SonStatistics,
}

/// How a maintenance interval elected the SONs: the top `seats` by votes among those that can
/// be elected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Election {
    /// When.
    pub at: Timestamp,
    /// The seats (`maximum_son_count`).
    pub seats: u32,
    /// The votes of the last SON elected: a SON with fewer (or as many and a higher id) was
    /// not; `None` when fewer SONs could be elected than there are seats.
    pub cutoff: Option<u64>,
    /// SONs passed over though their votes would have elected them: their configuration is
    /// not valid (a sidechain key missing or unusable), with why.
    pub skipped: Vec<(SonId, String)>,
    /// The SONs elected, with their votes then, most votes first. Sidechain wallets weigh the
    /// SONs by these votes: the live tally moves with every balance, a wallet only at
    /// maintenance.
    pub elected: Vec<(SonId, u64)>,
}

impl Election {
    /// The votes `son` was elected with, if it was.
    pub fn votes_of(&self, son: SonId) -> Option<u64> {
        self.elected.iter().find(|(id, _)| *id == son).map(|(_, v)| *v)
    }
}

/// A balance that becomes withdrawable at `cliff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VestingBalance {
    /// Its id.
    pub id: VestingId,
    /// Who may withdraw it.
    pub owner: AccountId,
    /// The asset it holds (the core asset for SON deposits and pay).
    #[serde(default, skip_serializing_if = "is_core_asset_default")]
    pub asset: AssetId,
    /// The amount.
    pub amount: u64,
    /// Why it exists, e.g. `son_deposit:1.33.3`.
    pub reason: String,
    /// Not withdrawable before this time.
    pub cliff: Timestamp,
}

fn is_core_asset_default(a: &AssetId) -> bool {
    *a == AssetId(0)
}

/// The son proposal record: one per live proposal of a registered SON kind, so a node can ask
/// "is this SON already being deregistered?" without scanning every proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SonProposalRecord {
    /// Its id.
    pub id: SonProposalId,
    /// The live proposal it indexes.
    pub proposal: ProposalId,
    /// The operation kind, e.g. `son_deregister`.
    pub kind: String,
    /// What the proposal is about.
    pub subject: Subject,
}

/// An asset: a token with a symbol and a precision, issued and reserved (burnt) by its issuer
/// (for a wrapped sidechain coin, the SON consensus authority).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    /// Its id.
    pub id: AssetId,
    /// Its ticker, e.g. `PBTC`.
    pub symbol: String,
    /// Decimal places: an amount of `n` units is `n / 10^precision` of the asset.
    pub precision: u8,
    /// The account whose authority issues and reserves it.
    pub issuer: AccountId,
    /// The largest supply there may ever be.
    pub max_supply: u64,
    /// What exists now: the sum of every balance in it (kept by the ledger, checked by tests).
    #[serde(default)]
    pub supply: u64,
}

impl Asset {
    /// `amount` units written with the asset's precision and symbol, e.g. `0.49990000 PBTC`.
    pub fn format(&self, amount: u64) -> String {
        Asset::format_units(amount, self.precision, &self.symbol)
    }

    /// `amount` units of an asset with `precision` decimals and `symbol`, written as
    /// [`Asset::format`] writes them, for where only the symbol and precision are at hand.
    pub fn format_units(amount: u64, precision: u8, symbol: &str) -> String {
        let p = u32::from(precision);
        if p == 0 {
            return format!("{amount} {symbol}");
        }
        match 10u64.checked_pow(p) {
            Some(s) => format!("{}.{:0w$} {symbol}", amount / s, amount % s, w = p as usize),
            None => format!("{amount}e-{p} {symbol}"),
        }
    }
}
