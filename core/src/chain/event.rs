//! What happened in a block, as the ledger reports it: the raw material of timelines and reports.

use serde::{Deserialize, Serialize};

use crate::chain::ids::{AccountId, AssetId, ProposalId, SonId, Subject, VestingId, WitnessId};
use crate::chain::objects::SonStatus;
use crate::chain::schema::ChainEvent;
use crate::chain::time::Timestamp;

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
    /// A SON not in the elected set was elected at a maintenance interval.
    SonElected {
        /// The SON.
        son: SonId,
    },
    /// An elected SON was not elected again at a maintenance interval.
    SonNotReelected {
        /// The SON.
        son: SonId,
    },
    /// An account registered a SON.
    SonCreated {
        /// The new SON.
        son: SonId,
        /// Its owner.
        owner: AccountId,
        /// The deposit held from the owner's balance.
        deposit: u64,
    },
    /// A SON's owner changed its URL, signing key or sidechain keys.
    SonUpdated {
        /// The SON.
        son: SonId,
        /// What changed: `url`, `signing_key`, `sidechain_keys` (in force from the next
        /// maintenance).
        changed: Vec<String>,
    },
    /// A SON's new sidechain keys took force at a maintenance interval.
    SonKeysChanged {
        /// The SON.
        son: SonId,
    },
    /// An account changed the SONs it votes for.
    Voted {
        /// The account.
        account: AccountId,
        /// The SONs it now votes for.
        sons: Vec<SonId>,
        /// Its stake: its core-asset balance, now behind each of them.
        stake: u64,
    },
    /// A maintenance interval elected the SONs.
    Election {
        /// How many were elected.
        elected: u32,
        /// The seats.
        seats: u32,
        /// The votes of the last SON elected, when every seat was filled.
        cutoff: Option<u64>,
    },
    /// A SON was paid for the sidechain transactions it signed in the pay period.
    SonPaid {
        /// The SON.
        son: SonId,
        /// What it got.
        amount: u64,
        /// The transactions it signed.
        signed: u64,
        /// The transactions all paid SONs signed.
        signed_by_all: u64,
    },
    /// A vested amount was withdrawn to its owner's balance.
    VestingWithdrawn {
        /// The balance.
        vesting: VestingId,
        /// Its owner.
        owner: AccountId,
        /// The amount.
        amount: u64,
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
        /// Why it exists: `son_deposit:1.33.3`, `son_pay:1.33.3`.
        #[serde(default)]
        reason: String,
    },
    /// An amount moved between accounts.
    Transferred {
        /// From.
        from: AccountId,
        /// To.
        to: AccountId,
        /// The asset.
        asset: AssetId,
        /// The amount.
        amount: u64,
    },
    /// An amount was issued (created).
    Issued {
        /// The asset.
        asset: AssetId,
        /// Who received it.
        to: AccountId,
        /// The amount.
        amount: u64,
    },
    /// An amount was reserved (burnt).
    Reserved {
        /// The asset.
        asset: AssetId,
        /// Whose balance it left.
        from: AccountId,
        /// The amount.
        amount: u64,
    },
    /// An operation crate's own event (see [`ChainEvent`]).
    Plugin {
        /// The kind (or crate) that emitted it.
        kind: String,
        /// The event's name.
        name: String,
        /// Its one-line description, for timelines.
        text: String,
        /// The event itself.
        data: serde_json::Value,
    },
}

impl LedgerEvent {
    /// This event as the operation crate's typed event `E`, if it is one.
    pub fn decode<E: ChainEvent>(&self) -> Option<E> {
        match self {
            LedgerEvent::Plugin { kind, name, data, .. } if kind == E::KIND && name == E::NAME => {
                serde::Deserialize::deserialize(data).ok()
            }
            _ => None,
        }
    }
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

/// `n` and a noun that agrees with it, for event texts: `counted(1, "output")` is `1 output`,
/// `counted(3, "output")` is `3 outputs` (nouns whose plural adds an `s`).
pub fn counted(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod counted_tests {
    #[test]
    fn a_noun_agrees_with_its_count() {
        assert_eq!(super::counted(0u32, "output"), "0 outputs");
        assert_eq!(super::counted(1u32, "vote"), "1 vote");
        assert_eq!(super::counted(2u64, "SON"), "2 SONs");
    }
}
