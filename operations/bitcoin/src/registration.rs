//! Registration: the kinds, tables, parameters, the deregistration guard and the node parts,
//! exported as [`PLUGIN`] and submitted to `inventory`.

use sonprop_core::{
    Guard, Isolation, NodeParts, OperationDescriptor, ParamDecl, Plugin, State, Subject, TableDecl,
    Watch,
};

use crate::flows::{
    ProcessDeposit, ProcessWithdrawal, RefundWithdrawal, RegisterDepositKey, ReportDeposit,
    Withdraw,
};
use crate::node;
use crate::ops::{BumpTx, FailTx, SentTx, SettleTx, SignTx, WalletSweep, WalletUpdate, WalletUtxo};
use crate::reconcile::{breaker, Reconcile, Resume};
use crate::state::{
    signature_needed, AssetParam, BooksTable, CarryFeeRate, ConfirmTimeout, ConsolidateAbove,
    DepositKeys, Deposits, MaxFeeRate, MinConfirmations, MinDepositSat, MinFeeRate, NetworkParam,
    SignTimeout, Transactions, Utxos, Wallets, Withdrawals,
};
use crate::{
    DEPOSIT_PROCESS, DEPOSIT_REPORT, RECONCILE, SENT, SETTLE, SIGN, TX_BUMP, UTXO, WALLET_SWEEP,
    WALLET_UPDATE, WITHDRAW_PROCESS, WITHDRAW_REFUND,
};

const OPERATIONS: [OperationDescriptor; 16] = [
    WalletUpdate::DESCRIPTOR,
    WalletSweep::DESCRIPTOR,
    BumpTx::DESCRIPTOR,
    Reconcile::DESCRIPTOR,
    Resume::DESCRIPTOR,
    SignTx::DESCRIPTOR,
    FailTx::DESCRIPTOR,
    SentTx::DESCRIPTOR,
    SettleTx::DESCRIPTOR,
    WalletUtxo::DESCRIPTOR,
    RegisterDepositKey::DESCRIPTOR,
    ReportDeposit::DESCRIPTOR,
    ProcessDeposit::DESCRIPTOR,
    Withdraw::DESCRIPTOR,
    ProcessWithdrawal::DESCRIPTOR,
    RefundWithdrawal::DESCRIPTOR,
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
            trigger: Some(|c| Ok(Box::new(node::WalletTrigger::new(c.service()?)))),
            validator: Some(|c| Ok(Box::new(node::WalletValidator(c.service()?)))),
            isolation: Isolation::Thread,
        },
        NodeParts {
            kind: WALLET_SWEEP,
            watch: Watch::ElectedSons,
            trigger: Some(|c| Ok(Box::new(node::SweepTrigger::new(c.service()?)))),
            validator: Some(|c| Ok(Box::new(node::SweepValidator(c.service()?)))),
            isolation: Isolation::Thread,
        },
        NodeParts {
            kind: TX_BUMP,
            watch: Watch::ElectedSons,
            trigger: Some(|c| Ok(Box::new(node::BumpTrigger::new(c.service()?)))),
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
    invariants: &[crate::state::CONSERVATION],
    son_check: Some(crate::state::check_son_keys),
    ..Plugin::new("sonprop-bitcoin")
};

sonprop_core::inventory::submit! { PLUGIN }
