//! The SON lifecycle, as Peerplays has it: an account registers a SON with a deposit
//! (`son_create`), its owner changes its URL and keys (`son_update`) or asks for maintenance
//! (`son_maintenance`), accounts vote for SONs (`account_vote`), and owners withdraw vested
//! balances (`vesting_balance_withdraw`). Then what the chain does on its own: at each
//! maintenance interval it starts requested maintenance, puts new sidechain keys in force and
//! elects the SONs; every `son_pay_time` it pays the SONs that signed sidechain transactions.
//!
//! The vote tally is kept, not computed: each SON's `votes` is the sum of its voters' stakes
//! (their core-asset balances), moved by every vote and every balance change of a voter
//! (`ApplyContext::shift_votes`); the SON index orders SONs by it. An election reads the top
//! `maximum_son_count` entries of that order, so a maintenance costs O(seats), and a balance
//! change O(the SONs its owner votes for) — never a scan of every account.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::chain::crypto::PublicKey;
use crate::chain::error::OperationError;
use crate::chain::event::LedgerEvent;
use crate::chain::ids::{AccountId, SonId, Subject, VestingId};
use crate::chain::model::{ApplyContext, Operation, State};
use crate::chain::objects::{Election, Son, SonPay, SonStatistics, SonStatus, VestingBalance};
use crate::chain::ops::kinds;
use crate::chain::time::Timestamp;

pub use crate::chain::error::LifecycleError;
use crate::chain::objects::MAX_SON_URL_LEN;

fn check_url(url: &str) -> Result<(), LifecycleError> {
    if url.len() > MAX_SON_URL_LEN {
        return Err(LifecycleError::UrlTooLong { len: url.len(), max: MAX_SON_URL_LEN });
    }
    Ok(())
}

fn check_keys(
    state: &State,
    son: SonId,
    keys: &BTreeMap<String, String>,
) -> Result<(), LifecycleError> {
    match state.registry().son_objection(state, son, keys) {
        Some(reason) => Err(LifecycleError::BadKeys { son, reason }),
        None => Ok(()),
    }
}

/// The id the next registered SON gets: one past the highest.
pub fn next_son_id(state: &State) -> SonId {
    state.sons().iter().next_back().map_or(SonId(0), |(id, _)| SonId(id.0 + 1))
}

/// `owner` operates `son`, which is not deregistered.
fn owned_son(state: &State, son: SonId, owner: AccountId) -> Result<&Son, OperationError> {
    let s = state.son(son).ok_or(OperationError::UnknownSon(son))?;
    if s.owner != owner {
        return Err(OperationError::NotSonOwner { son, owner: s.owner, given: owner });
    }
    if s.status == SonStatus::Deregistered {
        return Err(OperationError::Deregistered(son));
    }
    Ok(s)
}

/// Registers a SON: `deposit` (at least `son_vesting_amount` of the core asset) leaves the
/// owner's balance and is held on the SON until it is deregistered, when it starts vesting. The
/// SON starts `inactive`, with no votes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SonCreate {
    /// The account registering it (who signs and pays the deposit).
    pub owner: AccountId,
    /// Where its operator publishes what the SON is.
    #[serde(default)]
    pub url: String,
    /// The key it signs chain transactions with.
    pub signing_key: PublicKey,
    /// Its public key on each sidechain, by sidechain name.
    pub sidechain_public_keys: BTreeMap<String, String>,
    /// The deposit, in the core asset's smallest unit.
    pub deposit: u64,
}

#[typetag::serde(name = "son_create")]
impl Operation for SonCreate {
    fn kind(&self) -> &'static str {
        kinds::SON_CREATE
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.owner]
    }
    fn validate(&self) -> Result<(), OperationError> {
        Ok(check_url(&self.url)?)
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        if state.account(self.owner).is_none() {
            return Err(OperationError::UnknownAccount(self.owner));
        }
        if let Some(son) = state.son_by_owner(self.owner) {
            return Err(LifecycleError::AlreadyOwnsSon { owner: self.owner, son: son.id }.into());
        }
        let min = state.params().son_vesting_amount;
        if self.deposit < min {
            return Err(LifecycleError::DepositTooSmall { deposit: self.deposit, min }.into());
        }
        crate::chain::ops::spendable(state, self.owner, state.params().core_asset, self.deposit)?;
        Ok(check_keys(state, next_son_id(state), &self.sidechain_public_keys)?)
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let id = next_son_id(ctx);
        ctx.hold(self.owner, self.deposit)?;
        let son = Son {
            id,
            owner: self.owner,
            signing_key: self.signing_key,
            sidechain_public_keys: self.sidechain_public_keys.clone(),
            deposit: self.deposit,
            url: self.url.clone(),
            next_sidechain_public_keys: None,
            pay_vesting: None,
            votes: 0,
            status: SonStatus::Inactive,
            statistics: SonStatistics::default(),
        };
        ctx.put_son(son)?;
        ctx.emit(LedgerEvent::SonCreated { son: id, owner: self.owner, deposit: self.deposit });
        Ok(())
    }
}

/// Changes a SON's URL or signing key (at once) or its sidechain keys (in force from the next
/// maintenance interval, when the sidechain wallets are remade for the SON set anyway). Guards
/// on `son_update` (the Bitcoin crate's `bitcoin-signer`) defer a change of sidechain keys
/// while the SON's signature is still needed under its current ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SonUpdate {
    /// The SON.
    pub son: SonId,
    /// Its owner (who signs).
    pub owner: AccountId,
    /// A new URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_url: Option<String>,
    /// A new signing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_signing_key: Option<PublicKey>,
    /// New sidechain keys: the whole map, replacing the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_sidechain_public_keys: Option<BTreeMap<String, String>>,
}

#[typetag::serde(name = "son_update")]
impl Operation for SonUpdate {
    fn kind(&self) -> &'static str {
        kinds::SON_UPDATE
    }
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Son(self.son))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.owner]
    }
    fn validate(&self) -> Result<(), OperationError> {
        if self.new_url.is_none()
            && self.new_signing_key.is_none()
            && self.new_sidechain_public_keys.is_none()
        {
            return Err(LifecycleError::NothingToUpdate.into());
        }
        Ok(check_url(self.new_url.as_deref().unwrap_or_default())?)
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        owned_son(state, self.son, self.owner)?;
        if let Some(keys) = &self.new_sidechain_public_keys {
            let subject = Subject::Son(self.son);
            if let Some((guard, reason)) = state.deferral(kinds::SON_UPDATE, &subject) {
                return Err(OperationError::Deferred {
                    kind: kinds::SON_UPDATE,
                    subject,
                    guard,
                    reason,
                });
            }
            check_keys(state, self.son, keys)?;
        }
        Ok(())
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let mut son = owned_son(ctx, self.son, self.owner)?.clone();
        let mut changed = Vec::new();
        if let Some(url) = &self.new_url {
            son.url.clone_from(url);
            changed.push("url".to_owned());
        }
        if let Some(key) = self.new_signing_key {
            son.signing_key = key;
            changed.push("signing_key".to_owned());
        }
        if let Some(keys) = &self.new_sidechain_public_keys {
            // Asking for the keys in force already withdraws a pending change.
            son.next_sidechain_public_keys =
                (*keys != son.sidechain_public_keys).then(|| keys.clone());
            changed.push("sidechain_keys".to_owned());
        }
        ctx.put_son(son)?;
        ctx.emit(LedgerEvent::SonUpdated { son: self.son, changed });
        Ok(())
    }
}

/// What a `son_maintenance` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceRequest {
    /// `active → request_maintenance`; `in_maintenance` from the next maintenance interval.
    Request,
    /// `request_maintenance → active`, before the maintenance interval acts on it.
    Cancel,
}

/// An active SON's owner asks to take it down for maintenance at the next maintenance interval
/// (or withdraws the request). In maintenance, a SON is not expected to heartbeat or sign; its
/// first heartbeat brings it back, and the time in between is its downtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SonMaintenance {
    /// The SON.
    pub son: SonId,
    /// Its owner (who signs).
    pub owner: AccountId,
    /// Request or cancel.
    pub request: MaintenanceRequest,
}

impl SonMaintenance {
    fn statuses(&self) -> (SonStatus, SonStatus, &'static str) {
        match self.request {
            MaintenanceRequest::Request => {
                (SonStatus::Active, SonStatus::RequestMaintenance, "active")
            }
            MaintenanceRequest::Cancel => {
                (SonStatus::RequestMaintenance, SonStatus::Active, "request_maintenance")
            }
        }
    }
}

#[typetag::serde(name = "son_maintenance")]
impl Operation for SonMaintenance {
    fn kind(&self) -> &'static str {
        kinds::SON_MAINTENANCE
    }
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Son(self.son))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.owner]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        let son = owned_son(state, self.son, self.owner)?;
        let (from, _, expected) = self.statuses();
        if son.status != from {
            return Err(OperationError::SonStatus {
                son: self.son,
                status: son.status,
                operation: kinds::SON_MAINTENANCE,
                expected,
            });
        }
        Ok(())
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let mut son = owned_son(ctx, self.son, self.owner)?.clone();
        son.status = self.statuses().1;
        ctx.put_son(son)
    }
}

/// Sets the SONs an account votes for (replacing its earlier votes; an empty set withdraws
/// them). Each gets the account's core-asset balance as votes, for as long as the vote stands,
/// following the balance as it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountVote {
    /// The account (who signs).
    pub account: AccountId,
    /// The SONs it votes for.
    pub sons: BTreeSet<SonId>,
}

#[typetag::serde(name = "account_vote")]
impl Operation for AccountVote {
    fn kind(&self) -> &'static str {
        kinds::ACCOUNT_VOTE
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.account]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        if state.account(self.account).is_none() {
            return Err(OperationError::UnknownAccount(self.account));
        }
        let max = state.params().maximum_son_count;
        if self.sons.len() > max as usize {
            return Err(LifecycleError::TooManyVotes { votes: self.sons.len(), max }.into());
        }
        for id in &self.sons {
            let son = state.son(*id).ok_or(OperationError::UnknownSon(*id))?;
            if son.status == SonStatus::Deregistered {
                return Err(LifecycleError::VoteForDeregistered(*id).into());
            }
        }
        Ok(())
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let mut account = ctx
            .account(self.account)
            .cloned()
            .ok_or(OperationError::UnknownAccount(self.account))?;
        let stake = ctx.balance(self.account, ctx.params().core_asset);
        let dropped: BTreeSet<SonId> = account.son_votes.difference(&self.sons).copied().collect();
        let added: BTreeSet<SonId> = self.sons.difference(&account.son_votes).copied().collect();
        ctx.shift_votes(&dropped, stake, false);
        ctx.shift_votes(&added, stake, true);
        account.son_votes.clone_from(&self.sons);
        ctx.put_account(account);
        ctx.emit(LedgerEvent::Voted {
            account: self.account,
            sons: self.sons.iter().copied().collect(),
            stake,
        });
        Ok(())
    }
}

/// Withdraws `amount` of a vesting balance to its owner once its cliff has passed: a
/// deregistered SON's deposit (`son_vesting_period` after deregistration) or a SON's pay.
/// What is left stays; a balance withdrawn in full is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VestingBalanceWithdraw {
    /// The balance.
    pub vesting: VestingId,
    /// Its owner (who signs).
    pub owner: AccountId,
    /// The amount.
    pub amount: u64,
}

fn withdrawable(
    state: &State,
    op: &VestingBalanceWithdraw,
) -> Result<VestingBalance, OperationError> {
    let v = state
        .vesting_balances()
        .get(&op.vesting)
        .ok_or(LifecycleError::UnknownVesting(op.vesting))?;
    if v.owner != op.owner {
        let e = LifecycleError::NotVestingOwner {
            vesting: op.vesting,
            owner: v.owner,
            given: op.owner,
        };
        return Err(e.into());
    }
    let now = state.head_time();
    if now < v.cliff {
        return Err(LifecycleError::BeforeCliff { vesting: op.vesting, cliff: v.cliff, now }.into());
    }
    if op.amount > v.amount {
        let e = LifecycleError::ExceedsVesting {
            vesting: op.vesting,
            amount: op.amount,
            available: v.amount,
        };
        return Err(e.into());
    }
    Ok(v.clone())
}

#[typetag::serde(name = "vesting_balance_withdraw")]
impl Operation for VestingBalanceWithdraw {
    fn kind(&self) -> &'static str {
        kinds::VESTING_BALANCE_WITHDRAW
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.owner]
    }
    fn validate(&self) -> Result<(), OperationError> {
        if self.amount == 0 {
            return Err(OperationError::ZeroAmount);
        }
        Ok(())
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        withdrawable(state, self).map(|_| ())
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let mut v = withdrawable(ctx, self)?;
        v.amount -= self.amount;
        let asset = v.asset;
        ctx.put_vesting(self.vesting, (v.amount > 0).then_some(v));
        ctx.release(self.owner, asset, self.amount)?;
        ctx.emit(LedgerEvent::VestingWithdrawn {
            vesting: self.vesting,
            owner: self.owner,
            amount: self.amount,
        });
        Ok(())
    }
}

/// What a maintenance interval does for SONs, in order: requested maintenance starts
/// (`request_maintenance → in_maintenance`, down from now); new sidechain keys take force;
/// the top `maximum_son_count` SONs by votes (ties to the lower id) that have at least one
/// vote, are not deregistered and whose keys every sidechain crate accepts are elected. A SON
/// nobody votes for is never elected, so registering a SON (which anyone with the deposit can
/// do) buys no seat. A newly elected SON becomes `active` (if `inactive`) and its silence
/// counts from now; one that lost its seat becomes `inactive` (if `active`).
pub(crate) fn maintain_sons(ctx: &mut ApplyContext<'_>) {
    let now = ctx.now();
    let requested: Vec<SonId> = ctx.sons().index().by_active[SonStatus::RequestMaintenance.index()]
        .iter()
        .map(|(_, id)| *id)
        .collect();
    for id in requested {
        let Some(mut son) = ctx.son(id).cloned() else { continue };
        son.status = SonStatus::InMaintenance;
        son.statistics.last_down_timestamp = now;
        let _ = ctx.put_son(son);
    }
    let pending: Vec<SonId> = ctx.sons().index().pending_keys.iter().copied().collect();
    for id in pending {
        let Some(mut son) = ctx.son(id).cloned() else { continue };
        if let Some(keys) = son.next_sidechain_public_keys.take() {
            son.sidechain_public_keys = keys;
            let _ = ctx.put_son(son);
            ctx.emit(LedgerEvent::SonKeysChanged { son: id });
        }
    }
    let election = elect(ctx, now);
    let chosen: BTreeSet<SonId> = election.elected.iter().map(|(id, _)| *id).collect();
    let before: Vec<SonId> = ctx.globals().elected_sons.iter().copied().collect();
    for id in before.iter().filter(|id| !chosen.contains(id)) {
        ctx.set_elected(*id, false);
        if let Some(mut son) = ctx.son(*id).cloned() {
            if son.status == SonStatus::Active {
                son.status = SonStatus::Inactive;
                let _ = ctx.put_son(son);
            }
        }
        ctx.emit(LedgerEvent::SonNotReelected { son: *id });
    }
    for id in &chosen {
        if ctx.is_elected(*id) {
            continue;
        }
        ctx.set_elected(*id, true);
        if let Some(mut son) = ctx.son(*id).cloned() {
            if son.status == SonStatus::Inactive {
                son.status = SonStatus::Active;
            }
            // Elected now: its silence counts from here, not from before it was elected.
            son.statistics.last_active_timestamp = son.statistics.last_active_timestamp.max(now);
            let _ = ctx.put_son(son);
        }
        ctx.emit(LedgerEvent::SonElected { son: *id });
    }
    ctx.emit(LedgerEvent::Election {
        elected: election.elected.len() as u32,
        seats: election.seats,
        cutoff: election.cutoff,
    });
    ctx.globals_mut().last_election = Some(election);
}

/// The election over the SON index: most votes first, then lowest id; O(seats + passed over).
pub fn elect(state: &State, at: Timestamp) -> Election {
    let seats = state.params().maximum_son_count;
    let mut elected = Vec::new();
    let mut skipped = Vec::new();
    for (votes, id) in state.sons().index().by_votes.iter() {
        if elected.len() == seats as usize || votes.0 == 0 {
            break;
        }
        let Some(son) = state.son(*id) else { continue };
        match state.registry().son_objection(state, *id, &son.sidechain_public_keys) {
            Some(reason) => skipped.push((*id, reason)),
            None => elected.push((*id, votes.0)),
        }
    }
    let cutoff =
        (elected.len() == seats as usize).then(|| elected.last().map(|(_, v)| *v)).flatten();
    Election { at, seats, cutoff, skipped, elected }
}

/// Pays the SONs for the period that ends now: the budget is the smaller of `son_pay_max` and
/// the budget account's core-asset balance; each SON that signed sidechain transactions in the
/// period gets its share of it by transactions signed (rounded down; the rest stays in the
/// budget), added to its pay vesting balance, withdrawable at once. Every SON with something
/// to settle has its period's `txs_signed` and `current_interval_downtime` reset. Visits the
/// SONs with something to settle only.
pub(crate) fn pay_sons(ctx: &mut ApplyContext<'_>) {
    let now = ctx.now();
    let due: Vec<SonId> = ctx.sons().index().unpaid.iter().copied().collect();
    let signed_by_all: u64 = due
        .iter()
        .filter_map(|id| ctx.son(*id))
        .map(|s| s.statistics.txs_signed)
        .fold(0u64, u64::saturating_add);
    let core = ctx.params().core_asset;
    let budget = match ctx.params().son_budget_account {
        Some(account) if ctx.asset(core).is_some() => {
            Some((account, ctx.params().son_pay_max.min(ctx.balance(account, core))))
        }
        _ => None,
    };
    for id in due {
        let Some(mut son) = ctx.son(id).cloned() else { continue };
        let signed = son.statistics.txs_signed;
        son.statistics.txs_signed = 0;
        son.statistics.current_interval_downtime = 0;
        if let (Some((account, total)), true) = (budget, signed > 0) {
            let amount =
                u64::try_from(u128::from(total) * u128::from(signed) / u128::from(signed_by_all))
                    .unwrap_or(0);
            if amount > 0 && ctx.hold(account, amount).is_ok() {
                son.pay_vesting = Some(add_pay(ctx, &son, amount, now));
                ctx.emit(LedgerEvent::SonPaid { son: id, amount, signed, signed_by_all });
            }
            son.statistics.last_pay =
                Some(SonPay { at: now, amount, signed, signed_by_all, budget: total });
        }
        let _ = ctx.put_son(son);
    }
}

/// Adds `amount` to the SON's pay vesting balance (made anew if it has none, or it was
/// withdrawn in full); returns its id.
fn add_pay(ctx: &mut ApplyContext<'_>, son: &Son, amount: u64, now: Timestamp) -> VestingId {
    let existing = son.pay_vesting.and_then(|id| ctx.vesting_balances().get(&id).cloned());
    match existing {
        Some(mut v) => {
            v.amount = v.amount.saturating_add(amount);
            let id = v.id;
            ctx.put_vesting(id, Some(v));
            id
        }
        None => ctx.create_vesting(son.owner, amount, format!("son_pay:{}", son.id), now),
    }
}

/// Why SON `son` was or was not elected at the last election, in words: its votes against the
/// cut-off, a tie lost to a lower id, keys a sidechain crate refused, no votes at all. `when`
/// writes a time.
pub fn election_story(state: &State, son: SonId, when: &dyn Fn(Timestamp) -> String) -> String {
    let Some(s) = state.son(son) else { return format!("son {son} does not exist") };
    if s.status == SonStatus::Deregistered {
        return "deregistered: never elected again, and its votes stopped counting".into();
    }
    let Some(e) = &state.globals().last_election else {
        return "no election has been held".into();
    };
    let at = when(e.at);
    // Votes are stake: written in the core asset when the chain has it.
    let core = state.asset(state.params().core_asset);
    let v = |n: u64| {
        let plain = || if n == 1 { "1 vote".to_owned() } else { format!("{n} votes") };
        core.map_or_else(plain, |a| format!("{} of votes", a.format(n)))
    };
    if let Some(rank) = e.elected.iter().position(|(id, _)| *id == son) {
        let votes = e.elected[rank].1;
        let cutoff = match e.cutoff {
            Some(c) => format!("the cut-off was {}", v(c)),
            None => "fewer SONs could be elected than there are seats".into(),
        };
        return format!(
            "elected at {at} with {}, {} of {} seats ({cutoff})",
            v(votes),
            rank + 1,
            e.seats
        );
    }
    if let Some((_, reason)) = e.skipped.iter().find(|(id, _)| *id == son) {
        return format!("passed over at {at} though its votes would have elected it: {reason}");
    }
    // Not recorded with its votes then: its votes now against the cut-off then.
    let votes = s.votes;
    match e.cutoff {
        _ if votes == 0 => format!(
            "not elected at {at}: nobody votes for it (a SON needs at least one vote to be elected)"
        ),
        Some(c) if votes > c => format!(
            "not elected at {at} (cut-off {}); it has {} now, enough at the next maintenance",
            v(c),
            v(votes)
        ),
        Some(c) if votes == c => format!(
            "not elected at {at}: its {} tie the cut-off, and ties go to the lower id",
            v(votes)
        ),
        Some(c) => format!("not elected at {at}: {}, below the cut-off of {}", v(votes), v(c)),
        None => format!(
            "not elected at {at}, when seats were free: it was registered or voted for since"
        ),
    }
}

/// Why SON `son` was paid what it was at its last pay, and where the current period stands, in
/// words. `when` writes a time.
pub fn pay_story(state: &State, son: SonId, when: &dyn Fn(Timestamp) -> String) -> String {
    let Some(s) = state.son(son) else { return format!("son {son} does not exist") };
    let core = state.params().core_asset;
    let amount = |units: u64| {
        state.asset(core).map_or_else(|| format!("{units} units"), |a| a.format(units))
    };
    let last = match &s.statistics.last_pay {
        Some(p) => format!(
            "paid {} at {}: it signed {} of the {} sidechain transactions signed in the period, \
             that share of the {} budget",
            amount(p.amount),
            when(p.at),
            p.signed,
            p.signed_by_all,
            amount(p.budget)
        ),
        None => "never paid: pay is split by sidechain transactions signed, and it signed none \
                 in a paid period"
            .into(),
    };
    let period = match state.params().son_budget_account {
        None => "no SON budget account: SONs are not paid".to_owned(),
        Some(_) => format!(
            "{} signed so far this period; next pay at {}",
            s.statistics.txs_signed,
            when(state.globals().next_son_pay_time)
        ),
    };
    format!("{last}; {period}")
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
