//! The core operations' descriptors. Every registry includes them (see [`Registry::builder`]),
//! so they are not submitted to `inventory`.
//!
//! [`Registry::builder`]: crate::registry::Registry::builder

use std::collections::BTreeSet;

use crate::ids::{AccountId, ProposalId, SonId};
use crate::operation::Operation;
use crate::ops::{kinds, ProposalCreate, ProposalDelete, ProposalUpdate, SonHeartbeat};
use crate::registry::{OperationDescriptor, Plugin};
use crate::time::Timestamp;

/// The core operations.
pub const PLUGIN: Plugin = Plugin { name: "sonprop-core", operations: &OPERATIONS, guards: &[] };

const OPERATIONS: [OperationDescriptor; 4] = [
    OperationDescriptor {
        name: kinds::SON_HEARTBEAT,
        description: "a SON's periodic proof of life, signed by its owner",
        proposal: None,
        example: || {
            Box::new(SonHeartbeat {
                son: SonId(3),
                owner: AccountId(14),
                timestamp: Timestamp(1_767_225_780),
            })
        },
    },
    OperationDescriptor {
        name: kinds::PROPOSAL_CREATE,
        description: "propose operations for approval by their required authorities",
        proposal: None,
        // Pins the encoding only: core has no proposable kind of its own, so the inner operation
        // is one the ledger would refuse inside a proposal.
        example: || {
            let inner: Box<dyn Operation> =
                Box::new(ProposalDelete { proposal: ProposalId(0), account: AccountId(1) });
            Box::new(ProposalCreate {
                proposer: AccountId(1),
                expiration_time: Timestamp(1_767_225_699),
                review_period_seconds: None,
                operations: vec![inner],
            })
        },
    },
    OperationDescriptor {
        name: kinds::PROPOSAL_UPDATE,
        description: "add or withdraw approvals of a proposal",
        proposal: None,
        example: || {
            Box::new(ProposalUpdate {
                proposal: ProposalId(0),
                approvals_to_add: BTreeSet::from([AccountId(13)]),
                approvals_to_remove: BTreeSet::new(),
            })
        },
    },
    OperationDescriptor {
        name: kinds::PROPOSAL_DELETE,
        description: "veto a proposal, by one of its required approvers",
        proposal: None,
        example: || Box::new(ProposalDelete { proposal: ProposalId(0), account: AccountId(1) }),
    },
];
