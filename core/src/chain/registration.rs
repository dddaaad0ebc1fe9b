//! The core operations' on-chain descriptions. Every registry includes them (as
//! `registry::CORE`), so they are not submitted to `inventory`.

use std::collections::BTreeSet;

use crate::chain::crypto::KeyPair;
use crate::chain::ids::{AccountId, AssetId, ProposalId, SonId};
use crate::chain::lifecycle::{
    AccountVote, MaintenanceRequest, SonCreate, SonMaintenance, SonUpdate, VestingBalanceWithdraw,
};
use crate::chain::model::Operation;
use crate::chain::model::{Eligibility, OperationDescriptor, ProposalPolicy, State};
use crate::chain::ops::{
    kinds, AssetIssue, AssetReserve, AssetTransfer, ProposalCreate, ProposalDelete, ProposalUpdate,
    SonHeartbeat,
};
use crate::chain::time::Timestamp;
use std::collections::BTreeMap;

fn max_lifetime(state: &State) -> u64 {
    state.params().maximum_proposal_lifetime
}

/// The core operations.
pub const OPERATIONS: [OperationDescriptor; 12] = [
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
    OperationDescriptor {
        name: kinds::ASSET_TRANSFER,
        description: "move an amount of an asset between accounts, signed by the sender",
        proposal: None,
        example: || {
            Box::new(AssetTransfer {
                from: AccountId(14),
                to: AccountId(15),
                asset: AssetId(1),
                amount: 50_000,
            })
        },
    },
    OperationDescriptor {
        name: kinds::ASSET_ISSUE,
        description: "create an amount of an asset in an account, by the asset's issuer",
        // An issuer that is the SON consensus authority can only act through a proposal.
        proposal: Some(ProposalPolicy {
            son_record: false,
            eligible: Eligibility::WitnessOrSon,
            lifetime: max_lifetime,
            readiness: None,
        }),
        example: || {
            Box::new(AssetIssue {
                issuer: AccountId::SON_CONSENSUS,
                asset: AssetId(1),
                to: AccountId(15),
                amount: 50_000,
            })
        },
    },
    OperationDescriptor {
        name: kinds::ASSET_RESERVE,
        description: "destroy (burn) an amount of an asset from the payer's balance",
        proposal: Some(ProposalPolicy {
            son_record: false,
            eligible: Eligibility::WitnessOrSon,
            lifetime: max_lifetime,
            readiness: None,
        }),
        example: || {
            Box::new(AssetReserve { payer: AccountId(15), asset: AssetId(1), amount: 50_000 })
        },
    },
    OperationDescriptor {
        name: kinds::SON_CREATE,
        description:
            "register a SON, with a deposit of at least son_vesting_amount held from the owner",
        proposal: None,
        example: || {
            Box::new(SonCreate {
                owner: AccountId(20),
                url: "https://son.example/1.33.7".into(),
                signing_key: KeyPair::from_seed("son-7").public(),
                sidechain_public_keys: BTreeMap::from([(
                    "bitcoin".to_owned(),
                    "02a1633cafcc01ebfb6d78e39f687a1f0995c62fc95f51ead10a02ee0be551b5dc".to_owned(),
                )]),
                deposit: 5_000_000,
            })
        },
    },
    OperationDescriptor {
        name: kinds::SON_UPDATE,
        description:
            "change a SON's URL, signing key, or sidechain keys (from the next maintenance)",
        proposal: None,
        example: || {
            Box::new(SonUpdate {
                son: SonId(7),
                owner: AccountId(20),
                new_url: Some("https://son.example/new".into()),
                new_signing_key: None,
                new_sidechain_public_keys: None,
            })
        },
    },
    OperationDescriptor {
        name: kinds::SON_MAINTENANCE,
        description:
            "ask to take an active SON down for maintenance at the next maintenance, or cancel",
        proposal: None,
        example: || {
            Box::new(SonMaintenance {
                son: SonId(7),
                owner: AccountId(20),
                request: MaintenanceRequest::Request,
            })
        },
    },
    OperationDescriptor {
        name: kinds::ACCOUNT_VOTE,
        description: "set the SONs an account votes for with its core-asset balance",
        proposal: None,
        example: || {
            Box::new(AccountVote {
                account: AccountId(15),
                sons: std::collections::BTreeSet::from([SonId(3), SonId(7)]),
            })
        },
    },
    OperationDescriptor {
        name: kinds::VESTING_BALANCE_WITHDRAW,
        description: "withdraw a vested balance (a SON's deposit or pay) once its cliff has passed",
        proposal: None,
        example: || {
            Box::new(VestingBalanceWithdraw {
                vesting: crate::VestingId(0),
                owner: AccountId(20),
                amount: 5_000_000,
            })
        },
    },
];
