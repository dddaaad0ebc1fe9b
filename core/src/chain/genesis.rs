//! The genesis: the chain's first state, checked for consistency.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::chain::crypto::Digest;
use crate::chain::ids::{AccountId, AssetId, SonId, WitnessId};
use crate::chain::objects::{Account, Asset, Son, SonStatus, Witness};
use crate::chain::params::ChainParameters;
use crate::chain::time::Timestamp;

/// The initial chain state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Time of the genesis; the first block slot is one interval later.
    pub genesis_time: Timestamp,
    /// The chain parameters.
    pub params: ChainParameters,
    /// Accounts (ids from 1.2.1; 1.2.0 is the SON consensus account).
    pub accounts: Vec<Account>,
    /// Witnesses.
    pub witnesses: Vec<Witness>,
    /// SONs.
    pub sons: Vec<Son>,
    /// The witnesses that produce blocks.
    pub active_witnesses: Vec<WitnessId>,
    /// The elected SONs. An elected SON starts `active`, `request_maintenance` or
    /// `in_maintenance`; any other SON `inactive`, `in_maintenance` or `deregistered` (a genesis
    /// may import an existing chain).
    pub elected_sons: Vec<SonId>,
    /// Assets (their `supply` is computed from `balances`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assets: Vec<Asset>,
    /// Initial balances: `(account, asset, amount)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub balances: Vec<(AccountId, AssetId, u64)>,
    /// Operation crates' parameters, by name; a registered parameter left out takes its default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plugin_params: BTreeMap<String, serde_json::Value>,
}

impl Genesis {
    /// The chain id: the digest of the genesis.
    pub fn chain_id(&self) -> Digest {
        Digest::of_json(b"sonprop-genesis", self)
    }

    /// Checks the genesis for consistency; the message names what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        self.params.validate().map_err(|e| e.to_string())?;
        let mut ids = BTreeSet::new();
        let mut names = BTreeSet::new();
        for a in &self.accounts {
            if a.id == AccountId::SON_CONSENSUS {
                return Err(format!(
                    "account {} is reserved for the SON consensus authority",
                    a.id
                ));
            }
            if !ids.insert(a.id) {
                return Err(format!("account {} appears twice", a.id));
            }
            if !names.insert(a.name.as_str()) {
                return Err(format!("account name `{}` appears twice", a.name));
            }
            if !a.active.is_satisfiable() {
                return Err(format!(
                    "account {} has an authority that can never be satisfied",
                    a.id
                ));
            }
        }
        for a in &self.accounts {
            if let Some(m) = a.active.account_auths.keys().find(|m| !ids.contains(m)) {
                return Err(format!("account {} names unknown account {m} in its authority", a.id));
            }
        }
        let mut wids = BTreeSet::new();
        for w in &self.witnesses {
            if !wids.insert(w.id) {
                return Err(format!("witness {} appears twice", w.id));
            }
            if !ids.contains(&w.account) {
                return Err(format!("witness {} names unknown account {}", w.id, w.account));
            }
        }
        if self.active_witnesses.is_empty() {
            return Err("there must be at least one active witness".into());
        }
        let mut active = BTreeSet::new();
        for w in &self.active_witnesses {
            if !wids.contains(w) || !active.insert(*w) {
                return Err(format!("active witness {w} is unknown or listed twice"));
            }
        }
        let mut sids = BTreeSet::new();
        let mut owners = BTreeSet::new();
        for s in &self.sons {
            if !sids.insert(s.id) {
                return Err(format!("son {} appears twice", s.id));
            }
            if !ids.contains(&s.owner) {
                return Err(format!("son {} names unknown owner {}", s.id, s.owner));
            }
            if !owners.insert(s.owner) {
                return Err(format!("account {} owns more than one son", s.owner));
            }
        }
        let elected: BTreeSet<SonId> = self.elected_sons.iter().copied().collect();
        if elected.len() != self.elected_sons.len() {
            return Err("an elected son is listed twice".into());
        }
        if elected.len() > self.params.maximum_son_count as usize {
            return Err(format!(
                "{} elected sons exceed maximum_son_count ({})",
                elected.len(),
                self.params.maximum_son_count
            ));
        }
        // A genesis may import an existing chain, so SONs may already be in maintenance or
        // deregistered; but an elected SON is never inactive or deregistered, and a SON that is
        // not elected is never active.
        for s in &self.sons {
            let ok = if elected.contains(&s.id) {
                !matches!(s.status, SonStatus::Inactive | SonStatus::Deregistered)
            } else {
                !matches!(s.status, SonStatus::Active | SonStatus::RequestMaintenance)
            };
            if !ok {
                let role = if elected.contains(&s.id) { "an elected" } else { "a non-elected" };
                return Err(format!("son {} is {role} son and cannot start {}", s.id, s.status));
            }
        }
        if let Some(s) = elected.iter().find(|s| !sids.contains(s)) {
            return Err(format!("elected son {s} does not exist"));
        }
        for a in &self.accounts {
            if a.son_votes.len() > self.params.maximum_son_count as usize {
                return Err(format!(
                    "account {} votes for {} sons, more than maximum_son_count ({})",
                    a.id,
                    a.son_votes.len(),
                    self.params.maximum_son_count
                ));
            }
            for v in &a.son_votes {
                match self.sons.iter().find(|s| s.id == *v) {
                    None => return Err(format!("account {} votes for unknown son {v}", a.id)),
                    Some(s) if s.status == SonStatus::Deregistered => {
                        return Err(format!("account {} votes for deregistered son {v}", a.id))
                    }
                    Some(_) => {}
                }
            }
        }
        self.supplies(&ids).map(|_| ())
    }

    /// Each asset's supply: the sum of its genesis balances (and, for the core asset, of the
    /// SONs' deposits), checked.
    pub(crate) fn supplies(
        &self,
        accounts: &BTreeSet<AccountId>,
    ) -> Result<BTreeMap<AssetId, u64>, String> {
        let mut supply = BTreeMap::new();
        let mut symbols = BTreeSet::new();
        for a in &self.assets {
            if supply.insert(a.id, 0u64).is_some() {
                return Err(format!("asset {} appears twice", a.id));
            }
            if a.symbol.is_empty() || !symbols.insert(a.symbol.as_str()) {
                return Err(format!(
                    "asset {} has an empty or repeated symbol `{}`",
                    a.id, a.symbol
                ));
            }
            if a.issuer != AccountId::SON_CONSENSUS && !accounts.contains(&a.issuer) {
                return Err(format!("asset {} names unknown issuer {}", a.id, a.issuer));
            }
        }
        let mut seen = BTreeSet::new();
        for (account, asset, amount) in &self.balances {
            if !accounts.contains(account) {
                return Err(format!("a balance names unknown account {account}"));
            }
            if !seen.insert((*account, *asset)) {
                return Err(format!("the balance of {account} in {asset} appears twice"));
            }
            let Some(total) = supply.get_mut(asset) else {
                return Err(format!("a balance names unknown asset {asset}"));
            };
            *total = total
                .checked_add(*amount)
                .ok_or_else(|| format!("balances of asset {asset} overflow"))?;
        }
        // The SONs' deposits are core asset the chain holds: part of its supply.
        if let Some(total) = supply.get_mut(&self.params.core_asset) {
            for s in &self.sons {
                *total = total
                    .checked_add(s.deposit)
                    .ok_or("son deposits overflow the core asset's supply")?;
            }
        }
        for a in &self.assets {
            if supply[&a.id] > a.max_supply {
                return Err(format!("balances of asset {} exceed its max_supply", a.id));
            }
        }
        Ok(supply)
    }
}
