//! The node-local half of a kind's registration: which nodes watch for it, and how its trigger
//! and validator are built from a [`NodeContext`].

use std::collections::BTreeMap;
use std::fmt;

use crate::node::plugin::{Trigger, Validator};
use crate::node::services::{NodeContext, ServiceError};

/// Which nodes run a kind's trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// The node of the witness scheduled to produce the next block (SON management: one
    /// proposer per block, chosen by the witness schedule).
    ScheduledWitness,
    /// The node of the elected SON on duty for the next block (`State::son_on_duty`: a rotation
    /// over the live elected SONs), for kinds about another chain, which SONs watch.
    ElectedSons,
    /// Every elected SON's node, every block: for work each SON does for itself, such as
    /// signing a sidechain transaction (its trigger returns operations, not drafts).
    EachElectedSon,
    /// Every registered SON's node (elected or not; not deregistered), every block: for work a
    /// SON owes beyond its seat, such as a signature under a wallet it was one of the signers
    /// of, which it still owes after an election left it out. Like [`Watch::EachElectedSon`],
    /// its trigger returns operations.
    EachSon,
}

impl Watch {
    /// Whether triggers of this watch send operations of their own rather than draft
    /// proposals.
    pub fn sends_operations(self) -> bool {
        matches!(self, Watch::EachElectedSon | Watch::EachSon)
    }
}

impl fmt::Display for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Watch::ScheduledWitness => "the scheduled witness",
            Watch::ElectedSons => "the elected SON on duty",
            Watch::EachElectedSon => "every elected SON",
            Watch::EachSon => "every registered SON",
        })
    }
}

/// Where a kind's trigger and validator calls run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// On a thread of the plugin's own, with its own async runtime (the default). A call that
    /// blocks its thread (sleeps, spins, waits on a socket) holds that thread only: at the
    /// timeout the scheduler reports it `TimedOut` and goes on with the block, and the plugin
    /// is `Quarantined` (not called) until the call returns. Each call costs a hand-off between
    /// threads, some tens of microseconds.
    #[default]
    Thread,
    /// Spawned on the scheduler's own runtime, for plugins that only read the snapshot and
    /// never block (the SON-management kinds, which run on every block). An inline call that
    /// awaits past the timeout is abandoned; one that *blocks* holds block processing until it
    /// returns, after which its answer is dropped (`TimedOut`) and the plugin's calls run on a
    /// thread of their own from then on. Choose it only for code that cannot block.
    Inline,
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isolation::Thread => "on its own thread",
            Isolation::Inline => "inline",
        })
    }
}

/// Builds a kind's trigger for one node.
pub type TriggerCtor = fn(&NodeContext<'_>) -> Result<Box<dyn Trigger>, ServiceError>;
/// Builds a kind's validator for one node.
pub type ValidatorCtor = fn(&NodeContext<'_>) -> Result<Box<dyn Validator>, ServiceError>;

/// A kind's node-local parts.
#[derive(Debug, Clone, Copy)]
pub struct NodeParts {
    /// The operation kind.
    pub kind: &'static str,
    /// Who runs the trigger.
    pub watch: Watch,
    /// The trigger, if the kind has one.
    pub trigger: Option<TriggerCtor>,
    /// The validator, if the kind has one.
    pub validator: Option<ValidatorCtor>,
    /// Where its trigger and validator calls run.
    pub isolation: Isolation,
}

/// Every kind's node parts, sorted by kind (built by the registry, which checks them against
/// the kinds' on-chain descriptions).
#[derive(Debug, Clone, Default)]
pub struct NodeRegistry {
    pub(crate) parts: BTreeMap<&'static str, NodeParts>,
}

impl NodeRegistry {
    /// The parts of a kind.
    pub fn get(&self, kind: &str) -> Option<&NodeParts> {
        self.parts.get(kind)
    }
    /// All parts, sorted by kind.
    pub fn iter(&self) -> impl Iterator<Item = &NodeParts> + '_ {
        self.parts.values()
    }
}
