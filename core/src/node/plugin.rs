//! The node-local extension points: [`Trigger`] (what to propose) and [`Validator`] (whether to
//! approve), and the [`NodeIdentity`] they act for.

use std::fmt;

use async_trait::async_trait;

use crate::chain::crypto::KeyPair;
use crate::chain::ids::{AccountId, SonId, WitnessId};
use crate::chain::model::Operation;
use crate::chain::model::Proposal;
use crate::chain::model::State;

/// Who this node is: the account it signs as, and the witness and/or SON it operates.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// A readable name for logs and reports.
    pub name: String,
    /// The account that proposes and approves.
    pub account: AccountId,
    /// The account's active key.
    pub keys: KeyPair,
    /// The witness this node operates, if any.
    pub witness: Option<WitnessId>,
    /// The SON this node operates, if any.
    pub son: Option<SonId>,
}

/// A proposal a trigger wants raised.
#[derive(Debug, Clone)]
pub struct ProposalDraft {
    /// The operation to propose.
    pub operation: Box<dyn Operation>,
    /// Its lifetime in seconds; `None` uses the kind's lifetime policy.
    pub lifetime: Option<u64>,
}

impl ProposalDraft {
    /// A draft with the kind's default lifetime.
    pub fn new(operation: impl Operation + 'static) -> Self {
        ProposalDraft { operation: Box::new(operation), lifetime: None }
    }
}

/// A subject a trigger found due but held back, and why (for example, a deregistration guard
/// deferring it). Reported by the scheduler; nothing is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferral {
    /// What was held back.
    pub subject: crate::chain::ids::Subject,
    /// Why.
    pub reason: String,
}

/// What a trigger returns: drafts to raise, operations to send as they are, and subjects it
/// deliberately held back.
#[derive(Debug, Clone, Default)]
pub struct TriggerOutput {
    /// Proposals to raise.
    pub drafts: Vec<ProposalDraft>,
    /// Operations this node signs and sends directly, not as proposals (a SON's own signature
    /// of a sidechain transaction, say). Each must name a subject: the scheduler sends one per
    /// `(kind, subject)` until its transaction lands or expires.
    pub operations: Vec<Box<dyn Operation>>,
    /// Subjects held back, with reasons.
    pub deferred: Vec<Deferral>,
}

impl From<Vec<ProposalDraft>> for TriggerOutput {
    fn from(drafts: Vec<ProposalDraft>) -> Self {
        TriggerOutput { drafts, ..TriggerOutput::default() }
    }
}

/// A validator's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Sign an approval.
    Approve,
    /// Do not approve, for this reason (kept in the scheduler's report).
    Abstain(String),
}

impl Verdict {
    /// Approve when a rule holds, abstain with its error otherwise: a validator that applies the
    /// operation's on-chain rule over its own snapshot.
    pub fn from_rule<E: fmt::Display>(rule: Result<(), E>) -> Verdict {
        match rule {
            Ok(()) => Verdict::Approve,
            Err(e) => Verdict::Abstain(e.to_string()),
        }
    }
}

/// A trigger's or validator's own failure. It is reported; it never stops block processing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PluginError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl PluginError {
    /// A failure described by a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        PluginError(message.to_string().into())
    }
}

/// Decides, after each block, which proposals of its kind this node should raise.
///
/// # Invariants
/// - **Should not block.** It runs under a timeout, by default on a thread of its own (see
///   [`Isolation`](crate::Isolation)): a call that blocks is cut off and the plugin quarantined
///   until it returns, so it misses blocks. A kind registered `Isolation::Inline` must never
///   block: it runs on the scheduler's own runtime.
/// - **A pure function of the snapshot** (plus declared external sources such as a Bitcoin
///   node): the same snapshot gives the same drafts on every node.
/// - **Cheap when nothing is due**: use the state's indexes (`sons_inactive_since`,
///   `sons_down_since`, `live_proposal`), never a scan over every SON or proposal.
/// - It need not filter drafts whose `(kind, subject)` already has a live proposal: the scheduler
///   drops those, and the ledger refuses them anyway.
#[async_trait]
pub trait Trigger: Send + Sync {
    /// The drafts to raise now (and subjects deliberately held back), given the state after the
    /// head block.
    async fn drafts(
        &self,
        state: &State,
        node: &NodeIdentity,
    ) -> Result<TriggerOutput, PluginError>;

    /// Whether the chain holds anything this trigger could act on now: when `false`, the
    /// scheduler does not call [`Trigger::drafts`] this block (no call, no thread hand-off, no
    /// outcome). It runs on the scheduler's own thread before every call, so it must read the
    /// snapshot only, cheaply (an index range, a row), and never a node-local source. The
    /// default, `true`, always calls.
    fn wake(&self, _state: &State, _node: &NodeIdentity) -> bool {
        true
    }
}

/// Decides whether this node approves a live proposal of its kind.
///
/// # Invariants
/// The same as for [`Trigger`]: non-blocking, deterministic over the snapshot (plus declared
/// external sources), cheap. A validator should apply the same predicate as the operation's
/// on-chain check, over this node's own snapshot.
#[async_trait]
pub trait Validator: Send + Sync {
    /// Approve `proposal`, or abstain with a reason.
    async fn review(
        &self,
        state: &State,
        proposal: &Proposal,
        node: &NodeIdentity,
    ) -> Result<Verdict, PluginError>;
}
