//! Registration: the kinds, tables, parameters, the deregistration guard and the node parts,
//! exported as [`PLUGIN`] and submitted to `inventory`.

use sonprop_core::{
    AccountId, Eligibility, Guard, Isolation, NodeParts, OperationDescriptor, ParamDecl, Plugin,
    ProposalPolicy, SonId, State, Subject, TableDecl, Watch,
};

use crate::flows::{
    ProcessDeposit, ProcessWithdrawal, RefundWithdrawal, RegisterDepositKey, ReportDeposit,
    Withdraw,
};
use crate::node;
use crate::ops::{BumpTx, FailTx, SentTx, SettleTx, SignTx, WalletSweep, WalletUpdate, WalletUtxo};
use crate::readiness;
use crate::reconcile::{breaker, Reconcile, Resume};
use crate::state::{
    signature_needed, AssetParam, BooksTable, CarryFeeRate, ConfirmTimeout, ConsolidateAbove,
    DepositKeys, Deposits, MaxFeeRate, MinConfirmations, MinDepositSat, MinFeeRate, NetworkParam,
    SignTimeout, Transactions, Utxos, Wallets, Withdrawals,
};
use crate::{
    DEPOSIT_KEY, DEPOSIT_PROCESS, DEPOSIT_REPORT, RECONCILE, RESUME, SENT, SETTLE, SIGN, TX_BUMP,
    TX_FAIL, UTXO, WALLET_SWEEP, WALLET_UPDATE, WITHDRAW, WITHDRAW_PROCESS, WITHDRAW_REFUND,
};

fn lifetime(state: &State) -> u64 {
    state.witness_cycles_lifetime(3)
}

const SON_PROPOSAL: ProposalPolicy = ProposalPolicy {
    son_record: true,
    eligible: Eligibility::ElectedSon,
    lifetime,
    readiness: None,
};

const OPERATIONS: [OperationDescriptor; 16] = [
    OperationDescriptor {
        name: WALLET_UPDATE,
        description: "record the elected SONs' new primary wallet and the sweep of the old one",
        proposal: Some(ProposalPolicy { readiness: Some(readiness::wallet_update), ..SON_PROPOSAL }),
        example: || Box::new(WalletUpdate { wallet: 1, signers: Vec::new() }),
    },
    OperationDescriptor {
        name: WALLET_SWEEP,
        description:
            "move a batch of wallet outputs into the current wallet (after a wallet update, or to consolidate)",
        proposal: Some(ProposalPolicy { readiness: Some(readiness::wallet_sweep), ..SON_PROPOSAL }),
        example: || {
            Box::new(WalletSweep { from: 0, to: 1, fee_rate: 2, unsigned_tx: String::new() })
        },
    },
    OperationDescriptor {
        name: TX_BUMP,
        description:
            "replace a complete sidechain transaction that did not settle in time by the same one at a higher fee rate",
        proposal: Some(ProposalPolicy { readiness: Some(readiness::bump), ..SON_PROPOSAL }),
        example: || Box::new(BumpTx { tx: 0, fee_rate: 5, unsigned_tx: String::new() }),
    },
    OperationDescriptor {
        name: RECONCILE,
        description:
            "record outputs the chain counts that vanished from Bitcoin; fail what spent them",
        proposal: Some(ProposalPolicy { readiness: Some(readiness::reconcile), ..SON_PROPOSAL }),
        example: || {
            Box::new(Reconcile {
                gone: vec![
                    "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b:0".into()
                ],
            })
        },
    },
    OperationDescriptor {
        name: RESUME,
        description: "the SONs accept a deficit: deposits and withdrawals resume",
        proposal: Some(ProposalPolicy { readiness: Some(readiness::resume), ..SON_PROPOSAL }),
        example: || Box::new(Resume { deficit_sat: 10_000 }),
    },
    OperationDescriptor {
        name: SIGN,
        description: "a SON's signatures of a sidechain transaction, verified on chain",
        proposal: None,
        example: || {
            Box::new(SignTx { tx: 0, son: SonId(3), owner: AccountId(14), signatures: Vec::new() })
        },
    },
    OperationDescriptor {
        name: TX_FAIL,
        description: "fail a sidechain transaction past its deadline; its inputs return",
        proposal: None,
        example: || Box::new(FailTx { tx: 0, son: SonId(3), owner: AccountId(14) }),
    },
    OperationDescriptor {
        name: SENT,
        description: "a SON broadcast a complete sidechain transaction",
        proposal: None,
        example: || {
            Box::new(SentTx {
                tx: 0,
                txid: "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b".into(),
                son: SonId(3),
                owner: AccountId(14),
            })
        },
    },
    OperationDescriptor {
        name: SETTLE,
        description:
            "the SONs saw a sent sidechain transaction confirmed: its outputs join the wallet; PBTC is issued (deposit) or burnt (withdrawal)",
        proposal: Some(ProposalPolicy { readiness: Some(readiness::settle), ..SON_PROPOSAL }),
        example: || {
            Box::new(SettleTx {
                tx: 0,
                txid: "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b".into(),
            })
        },
    },
    OperationDescriptor {
        name: UTXO,
        description: "record a confirmed output paying the current primary wallet",
        proposal: Some(ProposalPolicy { readiness: Some(readiness::utxo), ..SON_PROPOSAL }),
        example: || {
            Box::new(WalletUtxo {
                wallet: 0,
                txid: "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b".into(),
                vout: 0,
                amount_sat: 50_000,
            })
        },
    },
    OperationDescriptor {
        name: DEPOSIT_KEY,
        description: "a user's deposit key (its deposit address) and default withdrawal address",
        proposal: None,
        example: || {
            Box::new(RegisterDepositKey {
                account: AccountId(20),
                public_key: "0368dc31b2b547c74f52abfc67c7fc768c68115d8ab96430d9bb4996fa660121cd"
                    .into(),
                withdraw_address: None,
                proof: "5c".repeat(64),
            })
        },
    },
    OperationDescriptor {
        name: DEPOSIT_REPORT,
        description: "a SON's report of a payment to a user's deposit address",
        proposal: None,
        example: || {
            Box::new(ReportDeposit {
                son: SonId(3),
                owner: AccountId(14),
                account: AccountId(20),
                wallet: 0,
                txid: "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b".into(),
                vout: 0,
                amount_sat: 50_000_000,
            })
        },
    },
    OperationDescriptor {
        name: DEPOSIT_PROCESS,
        description: "sweep a confirmed deposit into the primary wallet",
        proposal: Some(ProposalPolicy {
            readiness: Some(readiness::deposit),
            ..SON_PROPOSAL
        }),
        example: || {
            Box::new(ProcessDeposit {
                deposit: "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b:0"
                    .into(),
                fee_rate: 2,
                unsigned_tx: String::new(),
            })
        },
    },
    OperationDescriptor {
        name: WITHDRAW,
        description: "withdraw PBTC to a Bitcoin address (the PBTC goes to escrow)",
        proposal: None,
        example: || {
            Box::new(Withdraw { account: AccountId(20), amount_sat: 25_000_000, address: None })
        },
    },
    OperationDescriptor {
        name: WITHDRAW_PROCESS,
        description: "pay a pending withdrawal from the primary wallet, change back to it",
        proposal: Some(ProposalPolicy { readiness: Some(readiness::withdrawal_payment), ..SON_PROPOSAL }),
        example: || {
            Box::new(ProcessWithdrawal { withdrawal: 0, fee_rate: 2, unsigned_tx: String::new() })
        },
    },
    OperationDescriptor {
        name: WITHDRAW_REFUND,
        description: "return a withdrawal's PBTC when the primary wallet cannot pay it",
        proposal: Some(ProposalPolicy { readiness: Some(readiness::withdrawal_refund), ..SON_PROPOSAL }),
        example: || Box::new(RefundWithdrawal { withdrawal: 0 }),
    },
];

fn defer_needed_signer(state: &State, subject: &Subject) -> Option<String> {
    signature_needed(state, subject.son()?)
}

/// This crate's registrations, for `Registry::builder().with(&PLUGIN)`. Its guard is on
/// `son_deregister`: register the deregister crate too.
pub const PLUGIN: Plugin = Plugin {
    operations: &OPERATIONS,
    tables: &[
        TableDecl::of::<Wallets>(),
        TableDecl::of::<Utxos>(),
        TableDecl::of::<Transactions>(),
        TableDecl::of::<DepositKeys>(),
        TableDecl::of::<Deposits>(),
        TableDecl::of::<Withdrawals>(),
        TableDecl::of::<BooksTable>(),
    ],
    params: &[
        ParamDecl::of::<NetworkParam>(),
        ParamDecl::of::<MinFeeRate>(),
        ParamDecl::of::<MaxFeeRate>(),
        ParamDecl::of::<SignTimeout>(),
        ParamDecl::of::<MinConfirmations>(),
        ParamDecl::of::<AssetParam>(),
        ParamDecl::of::<ConfirmTimeout>(),
        ParamDecl::of::<CarryFeeRate>(),
        ParamDecl::of::<MinDepositSat>(),
        ParamDecl::of::<ConsolidateAbove>(),
    ],
    guards: &[
        Guard { name: "bitcoin-signer", kind: "son_deregister", defer: defer_needed_signer },
        // A SON's key change waits too: its node may drop the key a pending transaction still
        // needs, and the wallet update the change brings would move funds it has not signed.
        Guard { name: "bitcoin-signer", kind: "son_update", defer: defer_needed_signer },
        Guard { name: "bitcoin-breaker", kind: DEPOSIT_PROCESS, defer: breaker },
        Guard { name: "bitcoin-breaker", kind: WITHDRAW_PROCESS, defer: breaker },
    ],
    // Every part is built on SON nodes only (every Bitcoin kind is watched by SONs), from the
    // node's `BitcoinNode` service.
    node: &[
        NodeParts {
            kind: WALLET_UPDATE,
            watch: Watch::ElectedSons,
            trigger: Some(|c| Ok(Box::new(node::WalletTrigger(c.service()?)))),
            validator: Some(|c| Ok(Box::new(node::WalletValidator(c.service()?)))),
            isolation: Isolation::Thread,
        },
        NodeParts {
            kind: WALLET_SWEEP,
            watch: Watch::ElectedSons,
            trigger: Some(|c| Ok(Box::new(node::SweepTrigger(c.service()?)))),
            validator: Some(|c| Ok(Box::new(node::SweepValidator(c.service()?)))),
            isolation: Isolation::Thread,
        },
        NodeParts {
            kind: TX_BUMP,
            watch: Watch::ElectedSons,
            trigger: Some(|c| Ok(Box::new(node::BumpTrigger(c.service()?)))),
            validator: Some(|c| Ok(Box::new(node::BumpValidator(c.service()?)))),
            isolation: Isolation::Thread,
        },
        NodeParts {
            kind: RECONCILE,
            watch: Watch::ElectedSons,
            trigger: Some(|c| Ok(Box::new(node::ReconcileTrigger(c.service()?)))),
            validator: Some(|c| Ok(Box::new(node::ReconcileValidator(c.service()?)))),
            isolation: Isolation::Thread,
        },
        NodeParts {
            kind: SIGN,
            // Every SON, not only the elected: a SON an election left out still owes its
            // signature on its wallet's transactions (the sweep to the new wallet above all).
            watch: Watch::EachSon,
            trigger: Some(|c| Ok(Box::new(node::SignTrigger::new(c.service()?)))),
            validator: None,
            isolation: Isolation::Thread,
        },
        NodeParts {
            kind: SENT,
            watch: Watch::EachElectedSon,
            trigger: Some(|c| Ok(Box::new(node::BroadcastTrigger::new(c.service()?)))),
            validator: None,
            isolation: Isolation::Thread,
        },
        NodeParts {
            kind: SETTLE,
            watch: Watch::ElectedSons,
            trigger: Some(|c| Ok(Box::new(node::SettleTrigger::new(c.service()?)))),
            validator: Some(|c| Ok(Box::new(node::SettleValidator(c.service()?)))),
            isolation: Isolation::Thread,
        },
        NodeParts {
            kind: DEPOSIT_REPORT,
            watch: Watch::EachElectedSon,
            trigger: Some(|c| Ok(Box::new(node::DepositReportTrigger::new(c.service()?)))),
            validator: None,
            isolation: Isolation::Thread,
        },
        NodeParts {
            kind: DEPOSIT_PROCESS,
            watch: Watch::ElectedSons,
            trigger: Some(|c| Ok(Box::new(node::DepositTrigger(c.service()?)))),
            validator: Some(|c| Ok(Box::new(node::DepositValidator(c.service()?)))),
            isolation: Isolation::Thread,
        },
        NodeParts {
            kind: WITHDRAW_PROCESS,
            watch: Watch::ElectedSons,
            trigger: Some(|c| Ok(Box::new(node::WithdrawTrigger(c.service()?)))),
            validator: Some(|c| Ok(Box::new(node::WithdrawValidator(c.service()?)))),
            isolation: Isolation::Thread,
        },
        NodeParts {
            kind: WITHDRAW_REFUND,
            watch: Watch::ElectedSons,
            trigger: Some(|c| Ok(Box::new(node::RefundTrigger(c.service()?)))),
            validator: Some(|c| Ok(Box::new(node::RefundValidator(c.service()?)))),
            isolation: Isolation::Thread,
        },
        NodeParts {
            kind: UTXO,
            watch: Watch::ElectedSons,
            trigger: Some(|c| Ok(Box::new(node::UtxoTrigger::new(c.service()?)))),
            validator: Some(|c| Ok(Box::new(node::UtxoValidator(c.service()?)))),
            isolation: Isolation::Thread,
        },
    ],
    genesis_check: Some(crate::state::check_genesis),
    son_check: Some(crate::state::check_son_keys),
    ..Plugin::new("sonprop-bitcoin")
};

sonprop_core::inventory::submit! { PLUGIN }
