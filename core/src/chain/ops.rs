//! The core operations: the SON heartbeat, the proposal lifecycle (create, update, delete) and
//! assets; the SON lifecycle's are in the `lifecycle` module (their kind names are here, with
//! the others).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::chain::error::OperationError;
use crate::chain::event::LedgerEvent;
use crate::chain::ids::{AccountId, AssetId, ProposalId, SonId};
use crate::chain::model::Proposal;
use crate::chain::model::State;
use crate::chain::model::{ApplyContext, Operation};
use crate::chain::objects::SonProposalRecord;
use crate::chain::objects::SonStatus;
use crate::chain::time::Timestamp;

/// Kind names of the core operations.
pub mod kinds {
    /// [`super::SonHeartbeat`].
    pub const SON_HEARTBEAT: &str = "son_heartbeat";
    /// [`super::ProposalCreate`].
    pub const PROPOSAL_CREATE: &str = "proposal_create";
    /// [`super::ProposalUpdate`].
    pub const PROPOSAL_UPDATE: &str = "proposal_update";
    /// [`super::ProposalDelete`].
    pub const PROPOSAL_DELETE: &str = "proposal_delete";
    /// [`super::AssetTransfer`].
    pub const ASSET_TRANSFER: &str = "asset_transfer";
    /// [`super::AssetIssue`].
    pub const ASSET_ISSUE: &str = "asset_issue";
    /// [`super::AssetReserve`].
    pub const ASSET_RESERVE: &str = "asset_reserve";
    /// The SON lifecycle's `SonCreate`.
    pub const SON_CREATE: &str = "son_create";
    /// The SON lifecycle's `SonUpdate`.
    pub const SON_UPDATE: &str = "son_update";
    /// The SON lifecycle's `SonMaintenance`.
    pub const SON_MAINTENANCE: &str = "son_maintenance";
    /// The SON lifecycle's `AccountVote`.
    pub const ACCOUNT_VOTE: &str = "account_vote";
    /// The SON lifecycle's `VestingBalanceWithdraw`.
    pub const VESTING_BALANCE_WITHDRAW: &str = "vesting_balance_withdraw";
}

/// How far (in block intervals) a heartbeat's timestamp may be from head time.
pub const HEARTBEAT_WINDOW_BLOCKS: u64 = 5;

/// A SON's heartbeat, signed by its owner. Not a proposal: it applies directly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SonHeartbeat {
    /// The SON.
    pub son: SonId,
    /// Its owner (who signs).
    pub owner: AccountId,
    /// When the SON sent it.
    pub timestamp: Timestamp,
}

#[typetag::serde(name = "son_heartbeat")]
impl Operation for SonHeartbeat {
    fn kind(&self) -> &'static str {
        kinds::SON_HEARTBEAT
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.owner]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        let son = state.son(self.son).ok_or(OperationError::UnknownSon(self.son))?;
        if son.owner != self.owner {
            return Err(OperationError::NotSonOwner {
                son: self.son,
                owner: son.owner,
                given: self.owner,
            });
        }
        if son.status == SonStatus::Deregistered {
            return Err(OperationError::Deregistered(self.son));
        }
        let head = state.head_time();
        let window = HEARTBEAT_WINDOW_BLOCKS * state.params().block_interval;
        if self.timestamp.0.abs_diff(head.0) > window {
            return Err(OperationError::HeartbeatOutsideWindow {
                son: self.son,
                timestamp: self.timestamp,
                head,
                window,
            });
        }
        let stats = &son.statistics;
        let previous = stats.last_active_timestamp.max(stats.last_down_timestamp);
        if self.timestamp <= previous {
            return Err(OperationError::StaleHeartbeat {
                son: self.son,
                timestamp: self.timestamp,
                previous,
            });
        }
        Ok(())
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let mut son = ctx.son(self.son).cloned().ok_or(OperationError::UnknownSon(self.son))?;
        son.statistics.last_active_timestamp = self.timestamp;
        if son.status == SonStatus::InMaintenance {
            let down = self.timestamp.since(son.statistics.last_down_timestamp);
            son.statistics.total_downtime += down;
            son.statistics.current_interval_downtime += down;
            son.status =
                if ctx.is_elected(son.id) { SonStatus::Active } else { SonStatus::Inactive };
        }
        ctx.put_son(son)
    }
}

/// Creates a proposal.
///
/// Rules beyond Graphene's: the operations must be registered and proposable; a SON proposal
/// kind must be its proposal's only operation, may be proposed only by its eligible proposers,
/// and only while no other proposal of the same `(kind, subject)` is live; every operation's
/// stateful check must hold at creation; the lifetime is capped by the chain and by each kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalCreate {
    /// The proposer (who signs and pays).
    pub proposer: AccountId,
    /// When the proposal expires.
    pub expiration_time: Timestamp,
    /// With a review period (seconds before expiration), execution waits for expiration.
    #[serde(default)]
    pub review_period_seconds: Option<u64>,
    /// The proposed operations.
    pub operations: Vec<Box<dyn Operation>>,
}

fn is_proposal_kind(kind: &str) -> Option<&'static str> {
    [kinds::PROPOSAL_CREATE, kinds::PROPOSAL_UPDATE, kinds::PROPOSAL_DELETE]
        .into_iter()
        .find(|k| *k == kind)
}

#[typetag::serde(name = "proposal_create")]
impl Operation for ProposalCreate {
    fn kind(&self) -> &'static str {
        kinds::PROPOSAL_CREATE
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.proposer]
    }
    fn validate(&self) -> Result<(), OperationError> {
        if self.operations.is_empty() {
            return Err(OperationError::EmptyProposal);
        }
        for op in &self.operations {
            if let Some(kind) = is_proposal_kind(op.kind()) {
                return Err(OperationError::NestedProposal { kind });
            }
            op.validate()?;
        }
        Ok(())
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        if state.account(self.proposer).is_none() {
            return Err(OperationError::UnknownAccount(self.proposer));
        }
        let head = state.head_time();
        if self.expiration_time <= head {
            return Err(OperationError::ExpirationNotInFuture {
                expiration: self.expiration_time,
                head,
            });
        }
        let lifetime = self.expiration_time.since(head);
        let max = state.params().maximum_proposal_lifetime;
        if lifetime > max {
            return Err(OperationError::LifetimeTooLong {
                requested: lifetime,
                max,
                cap_of: "maximum_proposal_lifetime",
            });
        }
        if let Some(review) = self.review_period_seconds {
            if review >= lifetime {
                return Err(OperationError::ReviewPeriodTooLong { review, lifetime });
            }
        }
        for op in &self.operations {
            let kind = op.kind();
            let desc = state
                .registry()
                .operation(kind)
                .ok_or(OperationError::UnregisteredKind { kind })?;
            let policy = desc.proposal.ok_or(OperationError::NotProposable { kind })?;
            if !policy.eligible.allows(state, self.proposer) {
                return Err(OperationError::IneligibleProposer {
                    kind,
                    proposer: self.proposer,
                    rule: policy.eligible.describe(),
                });
            }
            let cap = (policy.lifetime)(state).min(max);
            if lifetime > cap {
                return Err(OperationError::LifetimeTooLong {
                    requested: lifetime,
                    max: cap,
                    cap_of: kind,
                });
            }
            if policy.son_record {
                if self.operations.len() != 1 {
                    return Err(OperationError::SonProposalNotAlone { kind });
                }
                let subject = op.subject().ok_or(OperationError::MissingSubject { kind })?;
                if let Some(live) = state.live_proposal(kind, &subject) {
                    return Err(OperationError::DuplicateProposal { kind, subject, live });
                }
            }
            crate::chain::apply::check_guards(state, op.as_ref())?;
            op.check(state)?;
        }
        Ok(())
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let id = ctx.next_proposal_id();
        let now = ctx.now();
        let required: BTreeSet<AccountId> =
            self.operations.iter().flat_map(|op| op.required_authorities()).collect();
        let mut record_subject = None;
        for op in &self.operations {
            let son_record = ctx
                .registry()
                .operation(op.kind())
                .and_then(|d| d.proposal)
                .is_some_and(|p| p.son_record);
            if let (true, Some(subject)) = (son_record, op.subject()) {
                let rid = ctx.next_record_id();
                ctx.put_record(SonProposalRecord {
                    id: rid,
                    proposal: id,
                    kind: op.kind().to_owned(),
                    subject: subject.clone(),
                });
                record_subject = Some(subject);
            }
        }
        ctx.put_proposal(Proposal {
            id,
            proposer: self.proposer,
            operations: self.operations.clone(),
            created_time: now,
            expiration_time: self.expiration_time,
            review_period_time: self.review_period_seconds.map(|r| self.expiration_time.minus(r)),
            required_approvals: required,
            approvals: BTreeSet::new(),
            fail_reason: None,
        });
        ctx.emit(LedgerEvent::ProposalCreated {
            proposal: id,
            proposer: self.proposer,
            kinds: self.operations.iter().map(|o| o.kind().to_owned()).collect(),
            subject: record_subject,
            expiration_time: self.expiration_time,
        });
        Ok(())
    }
}

/// Adds or removes approvals. Each account added or removed must sign the transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalUpdate {
    /// The proposal.
    pub proposal: ProposalId,
    /// Accounts approving.
    #[serde(default)]
    pub approvals_to_add: BTreeSet<AccountId>,
    /// Accounts withdrawing their approval.
    #[serde(default)]
    pub approvals_to_remove: BTreeSet<AccountId>,
}

impl ProposalUpdate {
    /// One account approving.
    pub fn approve(proposal: ProposalId, account: AccountId) -> Self {
        ProposalUpdate {
            proposal,
            approvals_to_add: BTreeSet::from([account]),
            approvals_to_remove: BTreeSet::new(),
        }
    }
}

#[typetag::serde(name = "proposal_update")]
impl Operation for ProposalUpdate {
    fn kind(&self) -> &'static str {
        kinds::PROPOSAL_UPDATE
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        self.approvals_to_add.union(&self.approvals_to_remove).copied().collect()
    }
    fn validate(&self) -> Result<(), OperationError> {
        if self.approvals_to_add.is_empty() && self.approvals_to_remove.is_empty() {
            return Err(OperationError::EmptyUpdate);
        }
        Ok(())
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        let id = self.proposal;
        let p = state.proposal(id).ok_or(OperationError::UnknownProposal(id))?;
        if !self.approvals_to_add.is_empty()
            && p.review_period_time.is_some_and(|r| state.head_time() >= r)
        {
            return Err(OperationError::InReviewPeriod(id));
        }
        for &account in &self.approvals_to_add {
            if p.approvals.contains(&account) {
                return Err(OperationError::AlreadyApproved { proposal: id, account });
            }
            if !state.may_approve(p, account) {
                return Err(OperationError::NotAnApprover { proposal: id, account });
            }
        }
        for &account in &self.approvals_to_remove {
            if !p.approvals.contains(&account) {
                return Err(OperationError::NotApproved { proposal: id, account });
            }
        }
        Ok(())
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let id = self.proposal;
        let mut p = ctx.proposal(id).cloned().ok_or(OperationError::UnknownProposal(id))?;
        for &a in &self.approvals_to_add {
            p.approvals.insert(a);
            ctx.emit(LedgerEvent::ProposalApproved { proposal: id, approver: a });
        }
        for &a in &self.approvals_to_remove {
            p.approvals.remove(&a);
            ctx.emit(LedgerEvent::ApprovalRemoved { proposal: id, approver: a });
        }
        let ready = p.review_period_time.is_none() && ctx.is_authorized(&p);
        ctx.put_proposal(p);
        if ready {
            if let Err(reason) = ctx.execute_proposal(id) {
                // The update itself stands; the proposal stays, and is tried again on the next
                // update and once more at expiration.
                if let Some(mut p) = ctx.proposal(id).cloned() {
                    p.fail_reason = Some(reason.clone());
                    ctx.put_proposal(p);
                }
                ctx.emit(LedgerEvent::ProposalExecutionFailed { proposal: id, reason });
            }
        }
        Ok(())
    }
}

/// Deletes (vetoes) a proposal; only a required approver may, with its own authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalDelete {
    /// The proposal.
    pub proposal: ProposalId,
    /// The required approver deleting it (who signs).
    pub account: AccountId,
}

#[typetag::serde(name = "proposal_delete")]
impl Operation for ProposalDelete {
    fn kind(&self) -> &'static str {
        kinds::PROPOSAL_DELETE
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.account]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        let p =
            state.proposal(self.proposal).ok_or(OperationError::UnknownProposal(self.proposal))?;
        if !p.required_approvals.contains(&self.account) {
            return Err(OperationError::NotRequiredApprover {
                proposal: self.proposal,
                account: self.account,
            });
        }
        Ok(())
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        ctx.remove_proposal(self.proposal);
        ctx.emit(LedgerEvent::ProposalDeleted { proposal: self.proposal, by: self.account });
        Ok(())
    }
}

fn positive(amount: u64) -> Result<(), OperationError> {
    if amount == 0 {
        return Err(OperationError::ZeroAmount);
    }
    Ok(())
}

/// `account` holds at least `amount` of a known `asset` (the check of every operation that spends
/// a balance: transfers, reserves, an operation crate's own).
pub fn spendable(
    state: &State,
    account: AccountId,
    asset: AssetId,
    amount: u64,
) -> Result<(), OperationError> {
    state.asset(asset).ok_or(OperationError::UnknownAsset(asset))?;
    let balance = state.balance(account, asset);
    if balance < amount {
        return Err(OperationError::InsufficientBalance { account, asset, balance, amount });
    }
    Ok(())
}

/// Moves an amount of an asset; signed by the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetTransfer {
    /// The sender (who signs).
    pub from: AccountId,
    /// The receiver.
    pub to: AccountId,
    /// The asset.
    pub asset: AssetId,
    /// The amount, in the asset's smallest unit.
    pub amount: u64,
}

#[typetag::serde(name = "asset_transfer")]
impl Operation for AssetTransfer {
    fn kind(&self) -> &'static str {
        kinds::ASSET_TRANSFER
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.from]
    }
    fn validate(&self) -> Result<(), OperationError> {
        positive(self.amount)
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        spendable(state, self.from, self.asset, self.amount)
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        ctx.transfer(self.from, self.to, self.asset, self.amount)
    }
}

/// Issues (creates) an amount of an asset; approved by the asset's issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetIssue {
    /// The asset's issuer (whose authority approves).
    pub issuer: AccountId,
    /// The asset.
    pub asset: AssetId,
    /// Who receives it.
    pub to: AccountId,
    /// The amount.
    pub amount: u64,
}

fn check_issuer(state: &State, asset: AssetId, given: AccountId) -> Result<(), OperationError> {
    let a = state.asset(asset).ok_or(OperationError::UnknownAsset(asset))?;
    if a.issuer != given {
        return Err(OperationError::NotIssuer { asset, issuer: a.issuer, given });
    }
    Ok(())
}

#[typetag::serde(name = "asset_issue")]
impl Operation for AssetIssue {
    fn kind(&self) -> &'static str {
        kinds::ASSET_ISSUE
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.issuer]
    }
    fn validate(&self) -> Result<(), OperationError> {
        positive(self.amount)
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_issuer(state, self.asset, self.issuer)?;
        if state.account(self.to).is_none() {
            return Err(OperationError::UnknownAccount(self.to));
        }
        Ok(())
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        ctx.issue(self.asset, self.to, self.amount)
    }
}

/// Reserves (burns) an amount of an asset from the payer's balance; signed by the payer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetReserve {
    /// Whose balance it leaves (who signs).
    pub payer: AccountId,
    /// The asset.
    pub asset: AssetId,
    /// The amount.
    pub amount: u64,
}

#[typetag::serde(name = "asset_reserve")]
impl Operation for AssetReserve {
    fn kind(&self) -> &'static str {
        kinds::ASSET_RESERVE
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.payer]
    }
    fn validate(&self) -> Result<(), OperationError> {
        positive(self.amount)
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        spendable(state, self.payer, self.asset, self.amount)
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        ctx.reserve(self.asset, self.payer, self.amount)
    }
}
