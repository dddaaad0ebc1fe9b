//! What happened in a block, as the ledger reports it: the raw material of timelines and reports.

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, ProposalId, SonId, VestingId, WitnessId};
use crate::objects::SonStatus;
use crate::proposal::Subject;
use crate::time::Timestamp;

/// One thing a block did. Deterministic: every replica reports the same events for a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LedgerEvent {
    /// A SON changed status.
    SonStatusChanged {
        /// The SON.
        son: SonId,
        /// The old status.
        from: SonStatus,
        /// The new status.
        to: SonStatus,
    },
    /// A proposal was created.
    ProposalCreated {
        /// The proposal.
        proposal: ProposalId,
        /// Its proposer.
        proposer: AccountId,
        /// The kinds of its operations.
        kinds: Vec<String>,
        /// Its subject, for a SON proposal.
        subject: Option<Subject>,
        /// When it expires.
        expiration_time: Timestamp,
    },
    /// An approval was added.
    ProposalApproved {
        /// The proposal.
        proposal: ProposalId,
        /// The approver.
        approver: AccountId,
    },
    /// An approval was withdrawn.
    ApprovalRemoved {
        /// The proposal.
        proposal: ProposalId,
        /// The approver.
        approver: AccountId,
    },
    /// A proposal executed and was removed.
    ProposalExecuted {
        /// The proposal.
        proposal: ProposalId,
    },
    /// An execution attempt failed; the proposal stays and is tried once more at expiration.
    ProposalExecutionFailed {
        /// The proposal.
        proposal: ProposalId,
        /// Why.
        reason: String,
    },
    /// A proposal expired without enough approvals and was removed.
    ProposalExpired {
        /// The proposal.
        proposal: ProposalId,
    },
    /// A proposal's final attempt, at expiration, failed; it was removed.
    ProposalFailed {
        /// The proposal.
        proposal: ProposalId,
        /// Why.
        reason: String,
    },
    /// A required approver vetoed a proposal; it was removed.
    ProposalDeleted {
        /// The proposal.
        proposal: ProposalId,
        /// Who deleted it.
        by: AccountId,
    },
    /// A balance started vesting.
    VestingCreated {
        /// The balance.
        vesting: VestingId,
        /// Its owner.
        owner: AccountId,
        /// The amount.
        amount: u64,
        /// When it can be withdrawn.
        cliff: Timestamp,
    },
    /// A message from an operation crate's evaluator.
    Notice {
        /// The operation kind.
        kind: String,
        /// What it is about.
        subject: Option<Subject>,
        /// The message.
        message: String,
    },
}

/// What applying a block did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockOutcome {
    /// The block's height.
    pub height: u64,
    /// Its timestamp.
    pub timestamp: Timestamp,
    /// Its producer.
    pub producer: WitnessId,
    /// How many transactions it carried.
    pub transactions: usize,
    /// What happened, in order.
    pub events: Vec<LedgerEvent>,
}
