//! Generic SON proposals for Graphene-family chains: the ledger rules, the operation registry and
//! the scheduler that Sidechain Operator Node operations plug into.
//!
//! A SON proposal is an ordinary on-chain proposal carrying a SON operation (report a SON down,
//! deregister it, update a sidechain wallet, …). The crate is in two halves you can see in its
//! tree, joined by the registry:
//!
//! - **[`chain`]: on-chain, deterministic** — [`Ledger`] applies blocks of signed transactions:
//!   [`Operation`]s are checked and applied, proposals are created, approved, executed and
//!   expired with Graphene semantics, and a son proposal record indexes each live SON proposal
//!   by `(kind, subject)`, of which at most one may be live. Operation crates keep typed state of
//!   their own ([`TableSchema`]), read typed parameters ([`Parameter`]), move assets
//!   ([`Asset`], balances) and report typed events ([`ChainEvent`]). Every block can be undone
//!   ([`Ledger::pop_block`]) and the state has a deterministic digest ([`Ledger::state_hash`])
//!   over every table. [`Ledger::open`] keeps it in a [`Store`] (redb on disk, or in memory),
//!   one atomic commit per block, undo records included.
//! - **[`node`]: node-local** — a [`Scheduler`] runs each kind's [`Trigger`] (what to propose,
//!   on the nodes the kind's [`Watch`] names) and [`Validator`] (whether to approve) over a
//!   snapshot after each block, isolated by timeouts and panic catching, and hands signed
//!   transactions to a [`TxSink`]. Triggers and validators are built per node from the node's
//!   [`Services`].
//! - **[`registry`]** — each operation crate exports a [`Plugin`]; [`Registry::builder`] adds it
//!   explicitly and [`Registry::discover`] collects linked ones. The registry checks them at
//!   start-up and splits them into a [`ChainRegistry`] (held by the state: nothing node-local)
//!   and a [`NodeRegistry`].
//!
//! ```
//! use sonprop_core::testkit::TestNetwork;
//! use sonprop_core::{Registry, SonId, SonStatus};
//!
//! let registry = Registry::builder().build().expect("no duplicate kinds").into_arc();
//! let mut net = TestNetwork::builder().witnesses(3).sons(5).build(registry);
//! net.submit(net.heartbeat(2));
//! let (outcome, rejected) = net.produce_block();
//! assert!(rejected.is_empty());
//! assert_eq!(outcome.transactions, 1);
//! let son = net.ledger.state().son(SonId(2)).expect("exists");
//! assert_eq!(son.status, SonStatus::Active);
//! assert_eq!(son.statistics.last_active_timestamp, outcome.timestamp);
//! ```
//!
//! # Invariants
//! - Operations, checks and evaluators never read a clock, randomness or hash-map order: "now"
//!   is the block's timestamp, and every map that reaches the state is ordered.
//! - At most one live proposal per `(kind, subject)` of a SON kind; every live SON proposal has
//!   exactly one record and every record points at a live proposal.
//! - A refused block or transaction leaves the state unchanged.
//! - Triggers and validators must not block, must be pure functions of their snapshot (plus
//!   their node's services), and must be cheap when nothing is due.
//! - The chain half never imports the node half; no module imports one that imports it back.

pub mod chain;
pub mod node;
pub mod registry;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use chain::crypto::{Digest, KeyPair, PublicKey, Signature};
pub use chain::error::{LedgerError, OperationError};
pub use chain::event::{BlockOutcome, LedgerEvent};
pub use chain::genesis::Genesis;
pub use chain::ids::{
    AccountId, AssetId, IdParseError, ProposalId, SonId, SonProposalId, Subject, VestingId,
    WitnessId,
};
pub use chain::invariant::{Invariant, InvariantBroken, InvariantWatch};
pub use chain::ledger::Ledger;
pub use chain::model::{
    ApplyContext, ChainRegistry, Eligibility, GenesisCheck, Guard, KindExplanation, Operation,
    OperationDescriptor, Proposal, ProposalPolicy, Readiness, SonCheck, State,
};
pub use chain::objects::{
    Account, Asset, Authority, Election, Son, SonPay, SonProposalRecord, SonStatistics, SonStatus,
    VestingBalance, Witness,
};
pub use chain::params::{ChainParameters, ParamError, SonQuorum, ThresholdPolicy};
pub use chain::persist::StoreOptions;
pub use chain::schema::{
    ChainEvent, GenesisView, Index, IndexEntries, ParamDecl, Parameter, TableDecl, TableKey,
    TableSchema,
};
pub use chain::store::{MemoryStore, RedbStore, Store, StoreError};
pub use chain::time::Timestamp;
pub use chain::tx::{Block, SignedTransaction, Transaction};
pub use node::parts::{Isolation, NodeParts, NodeRegistry, Watch};
pub use node::plugin::{
    Deferral, NodeIdentity, PluginError, ProposalDraft, Trigger, TriggerOutput, Validator, Verdict,
};
pub use node::scheduler::{Scheduler, SchedulerConfig, SchedulerError, TxSink};
pub use node::services::{NodeContext, ServiceError, Services};
pub use registry::{Plugin, Registry, RegistryError};
/// Derive macros beside the traits they implement: `use sonprop_core::Parameter` brings both.
pub use sonprop_macros::{operation, ChainEvent, Parameter, TableKey};

// Re-exported so operation crates use the same versions as core. (`typetag` is not: its macro
// expands to paths that need it as a direct dependency of the operation crate.)
pub use async_trait::async_trait;
pub use inventory;
