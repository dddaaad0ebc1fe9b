//! The chain's data model, declared in one place: the [`State`] and its globals, the
//! [`Operation`] trait and the [`ApplyContext`] operations write through, the [`Proposal`]
//! object, and the on-chain description of operation kinds ([`ChainRegistry`]).
//!
//! These types refer to each other (a state holds proposals, a proposal holds operations, an
//! operation reads the state), so they are declared together here and nowhere else; their
//! behaviour lives in the modules above this one: `state` (queries and the hash), `apply` (the
//! writes and undo), `ops` (the core operations), `ledger` (blocks). This module imports none of
//! them, so core's modules form no import circle.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::chain::crypto::Digest;
use crate::chain::error::OperationError;
use crate::chain::event::LedgerEvent;
use crate::chain::ids::{
    AccountId, AssetId, ProposalId, SonId, SonProposalId, Subject, VestingId, WitnessId,
};
use crate::chain::indexes::{RecordIndex, RowIndex, SonIndex, TxIndex};
use crate::chain::objects::{Account, Asset, Son, SonProposalRecord, VestingBalance, Witness};
use crate::chain::params::ChainParameters;
use crate::chain::schema::{ParamDecl, StoredRow, TableDecl};
use crate::chain::table::{Table, TableIndex};
use crate::chain::time::Timestamp;

/// Chain-wide values: head block, parameters, the active witness and elected SON sets, and id
/// counters.
///
/// The collections are shared (`Arc`): every block's undo session keeps the globals as they
/// were, so the ledger copies the globals once per block, and a copy should not duplicate
/// sets and maps that change once a round or once a maintenance interval. Change one with
/// `Arc::make_mut`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Globals {
    /// Digest of the genesis: binds signatures to this chain.
    pub chain_id: Digest,
    /// Time of the genesis; block slots count from here.
    pub genesis_time: Timestamp,
    /// The chain parameters.
    pub params: ChainParameters,
    /// Operation crates' parameters, by name, as JSON (validated against their declarations
    /// when the ledger is created).
    #[serde(default, serialize_with = "crate::chain::canon::json_values")]
    pub plugin_params: Arc<BTreeMap<String, serde_json::Value>>,
    /// Height of the head block (0 = genesis).
    pub head_height: u64,
    /// Timestamp of the head block (during block application: the block being applied).
    pub head_time: Timestamp,
    /// Id of the head block (the chain id at genesis).
    pub head_id: Digest,
    /// The active witnesses, in id order; the per-round production order is a shuffle of these.
    pub active_witnesses: Arc<Vec<WitnessId>>,
    /// The elected SONs.
    pub elected_sons: Arc<BTreeSet<SonId>>,
    /// The round the cached production order is for.
    pub schedule_round: u64,
    /// The production order of `schedule_round` (a cache: recomputed once per round).
    pub schedule: Arc<Vec<WitnessId>>,
    /// The next proposal instance number.
    pub next_proposal: u64,
    /// The next son proposal record instance number.
    pub next_son_proposal: u64,
    /// The next vesting balance instance number.
    pub next_vesting: u64,
    /// When the next maintenance interval starts (standby SONs fill freed seats).
    pub next_maintenance_time: Timestamp,
    /// When the last maintenance interval ran (the genesis time before the first).
    pub last_maintenance_time: Timestamp,
    /// The elected SONs as the last maintenance interval left them (the genesis' before the
    /// first): the set sidechain wallets serve until the next one, as Peerplays' active SON
    /// set. A SON deregistered in between leaves the consensus authority at once, but stays in
    /// this set until the next maintenance replaces it.
    pub maintenance_sons: Arc<BTreeSet<SonId>>,
    /// When the elected SONs are next paid.
    #[serde(default)]
    pub next_son_pay_time: Timestamp,
    /// How the last maintenance interval elected its SONs (none before the first).
    #[serde(default)]
    pub last_election: Option<crate::chain::objects::Election>,
}

/// A row of an operation crate's table, as the state holds it.
pub type PluginRow = Arc<dyn StoredRow>;

/// An operation crate's table as the state holds it: rows by encoded key.
pub type PluginTable = Table<Vec<u8>, PluginRow, RowIndex>;

/// The whole chain state. Cheap to clone (every table is behind an `Arc`): the ledger hands the
/// scheduler a snapshot after each block. Mutation happens only inside the ledger.
#[derive(Clone)]
pub struct State {
    pub(crate) registry: Arc<ChainRegistry>,
    pub(crate) globals: Arc<Globals>,
    pub(crate) accounts: Table<AccountId, Account>,
    pub(crate) witnesses: Table<WitnessId, Witness>,
    pub(crate) sons: Table<SonId, Son, SonIndex>,
    pub(crate) proposals: Table<ProposalId, Proposal, ProposalIndex>,
    pub(crate) son_proposals: Table<SonProposalId, SonProposalRecord, RecordIndex>,
    pub(crate) vesting: Table<VestingId, VestingBalance>,
    pub(crate) transactions: Table<Digest, Timestamp, TxIndex>,
    pub(crate) assets: Table<AssetId, Asset>,
    pub(crate) balances: Table<(AccountId, AssetId), u64>,
    /// Operation crates' tables, by name: one for every table the registry declares. Shared,
    /// so a snapshot does not copy the map (a write copies it if a snapshot still holds it).
    pub(crate) plugin: Arc<BTreeMap<&'static str, PluginTable>>,
    /// Changes with every write to any of `plugin`'s tables (see [`State::plugin_generation`]).
    pub(crate) plugin_generation: u64,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("head_height", &self.globals.head_height)
            .field("head_time", &self.globals.head_time)
            .field("sons", &self.sons.len())
            .field("proposals", &self.proposals.len())
            .finish_non_exhaustive()
    }
}

/// Cloning and downcasting for boxed operations; implemented for every `Operation + Clone`.
pub trait OperationClone {
    /// A boxed copy.
    fn clone_box(&self) -> Box<dyn Operation>;
    /// For downcasting to the concrete type.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Operation + Clone + 'static> OperationClone for T {
    fn clone_box(&self) -> Box<dyn Operation> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Clone for Box<dyn Operation> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

impl dyn Operation {
    /// The concrete operation, if it is a `T`.
    pub fn downcast_ref<T: Operation + 'static>(&self) -> Option<&T> {
        self.as_any().downcast_ref()
    }
}

/// An on-chain operation: serialised with a stable `"kind"` tag, checked and applied by the
/// ledger.
///
/// # Invariants
/// - `kind()` returns exactly the name given to `#[typetag::serde(name = "...")]` and to the
///   operation's registry descriptor. Names are stable: they are part of the chain's data.
/// - `check` and `apply` are deterministic functions of the operation and the state: no clock
///   (use [`State::head_time`]), no randomness, no I/O, no hash-map iteration order.
/// - `apply` may assume `check` just passed on the same state; an error from either leaves no
///   change behind (the ledger rolls the session back).
#[typetag::serde(tag = "kind")]
pub trait Operation: OperationClone + fmt::Debug + Send + Sync {
    /// The stable kind name, e.g. `son_deregister`.
    fn kind(&self) -> &'static str;

    /// What the operation is about, for SON proposal kinds (the `(kind, subject)` pair is unique
    /// among live proposals) and for guards.
    fn subject(&self) -> Option<Subject> {
        None
    }

    /// The accounts whose active authority must approve this operation (sign the transaction, or
    /// approve the proposal that carries it). [`AccountId::SON_CONSENSUS`] is the SON consensus
    /// authority.
    fn required_authorities(&self) -> Vec<AccountId>;

    /// Checks that need no state (field ranges).
    fn validate(&self) -> Result<(), OperationError> {
        Ok(())
    }

    /// The stateful check: does the operation hold against `state` now? Also run when a proposal
    /// carrying it is created, so a proposal that could not execute is refused up front.
    fn check(&self, state: &State) -> Result<(), OperationError>;

    /// The effect, written through `ctx`.
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError>;
}

/// A proposed set of operations awaiting approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposal {
    /// Its id.
    pub id: ProposalId,
    /// The account that created it.
    pub proposer: AccountId,
    /// The operations it carries; they apply together or not at all.
    pub operations: Vec<Box<dyn Operation>>,
    /// When it was created.
    pub created_time: Timestamp,
    /// When it expires.
    pub expiration_time: Timestamp,
    /// With a review period, execution waits for expiration.
    pub review_period_time: Option<Timestamp>,
    /// The accounts whose authority must be satisfied, computed at creation.
    pub required_approvals: BTreeSet<AccountId>,
    /// The accounts that approved.
    pub approvals: BTreeSet<AccountId>,
    /// Why the last execution attempt failed, if it did.
    pub fail_reason: Option<String>,
}

impl Proposal {
    /// The proposal's operation as a `T`, if it carries exactly one operation and that is a `T`.
    /// What a validator of a SON proposal kind usually needs first.
    pub fn only<T: Operation + 'static>(&self) -> Option<&T> {
        match self.operations.as_slice() {
            [op] => op.downcast_ref(),
            _ => None,
        }
    }
}

/// Proposals by expiration time, and single-operation proposals by their operation's kind (what
/// a kind's validator reviews).
#[derive(Debug, Clone, Default)]
pub struct ProposalIndex {
    pub(crate) by_expiration: BTreeSet<(Timestamp, ProposalId)>,
    pub(crate) single_by_kind: BTreeMap<&'static str, BTreeSet<ProposalId>>,
}

impl TableIndex<ProposalId, Proposal> for ProposalIndex {
    fn insert(&mut self, id: &ProposalId, p: &Proposal) {
        self.by_expiration.insert((p.expiration_time, *id));
        if let [op] = p.operations.as_slice() {
            self.single_by_kind.entry(op.kind()).or_default().insert(*id);
        }
    }
    fn remove(&mut self, id: &ProposalId, p: &Proposal) {
        self.by_expiration.remove(&(p.expiration_time, *id));
        if let [op] = p.operations.as_slice() {
            if let Some(ids) = self.single_by_kind.get_mut(op.kind()) {
                ids.remove(id);
                if ids.is_empty() {
                    self.single_by_kind.remove(op.kind());
                }
            }
        }
    }
}

/// The undo record of a session: the value every touched row had before the session began.
#[derive(Default, Clone)]
pub(crate) struct Session {
    pub globals: Option<Arc<Globals>>,
    pub accounts: BTreeMap<AccountId, Option<Account>>,
    pub witnesses: BTreeMap<WitnessId, Option<Witness>>,
    pub sons: BTreeMap<SonId, Option<Son>>,
    pub proposals: BTreeMap<ProposalId, Option<Proposal>>,
    pub son_proposals: BTreeMap<SonProposalId, Option<SonProposalRecord>>,
    pub vesting: BTreeMap<VestingId, Option<VestingBalance>>,
    pub transactions: BTreeMap<Digest, Option<Timestamp>>,
    pub assets: BTreeMap<AssetId, Option<Asset>>,
    pub balances: BTreeMap<(AccountId, AssetId), Option<u64>>,
    /// Operation crates' rows, by `(table, encoded key)`.
    pub plugin: BTreeMap<(&'static str, Vec<u8>), Option<PluginRow>>,
    /// How many events existed when the session began (a rollback drops the later ones).
    pub events_at_start: usize,
}

/// Where evaluators read the state and write their effects. Every write is recorded so the
/// ledger can undo it (a failed operation, a popped block).
pub struct ApplyContext<'a> {
    pub(crate) state: &'a mut State,
    pub(crate) sessions: Vec<Session>,
    pub(crate) events: Vec<LedgerEvent>,
}

impl std::ops::Deref for ApplyContext<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.state
    }
}

/// Who may create a proposal of a kind.
#[derive(Debug, Clone, Copy)]
pub enum Eligibility {
    /// The owner of an active witness.
    ActiveWitness,
    /// The owner of an elected SON.
    ElectedSon,
    /// Either.
    WitnessOrSon,
    /// A custom rule, with a description for error messages.
    Custom {
        /// Who may, in words (`"the SON's own owner"`).
        rule: &'static str,
        /// The predicate.
        allowed: fn(&State, AccountId) -> bool,
    },
}

impl Eligibility {
    /// Whether `account` may propose.
    pub fn allows(&self, state: &State, account: AccountId) -> bool {
        match self {
            Eligibility::ActiveWitness => state.is_active_witness_account(account),
            Eligibility::ElectedSon => state.elected_son_of(account).is_some(),
            Eligibility::WitnessOrSon => {
                state.is_active_witness_account(account) || state.elected_son_of(account).is_some()
            }
            Eligibility::Custom { allowed, .. } => allowed(state, account),
        }
    }

    /// The rule in words.
    pub fn describe(&self) -> &'static str {
        match self {
            Eligibility::ActiveWitness => "only active witnesses may",
            Eligibility::ElectedSon => "only elected SONs may",
            Eligibility::WitnessOrSon => "only active witnesses and elected SONs may",
            Eligibility::Custom { rule, .. } => rule,
        }
    }
}

/// How an operation kind may be proposed.
#[derive(Debug, Clone, Copy)]
pub struct ProposalPolicy {
    /// A SON proposal kind: the ledger keeps a son proposal record for it, allows one live
    /// proposal per `(kind, subject)`, and the operation must be its proposal's only one.
    pub son_record: bool,
    /// Who may propose it.
    pub eligible: Eligibility,
    /// Its lifetime in seconds, given the state: the default for drafts and the on-chain cap.
    pub lifetime: fn(&State) -> u64,
    /// Whether a proposal about a subject is due, by the kind's own rule, and when it will be
    /// (for explanations: `State::explain`). `None` for kinds that cannot tell.
    pub readiness: Option<fn(&State, &Subject) -> Readiness>,
}

/// What [`State::explain`] says about one kind and one subject.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KindExplanation {
    /// The kind.
    pub kind: &'static str,
    /// Its rule's verdict (`None` if the kind cannot tell).
    pub readiness: Option<Readiness>,
    /// The guard deferring it, with the guard's reason.
    pub deferred: Option<(&'static str, String)>,
    /// The live proposal of this kind about the subject, if any.
    pub live: Option<ProposalId>,
}

/// Whether a kind's rule holds for a subject at the head block, as its crate explains it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Readiness {
    /// The rule holds: a proposal is due (since `since`, when the rule can tell).
    Due {
        /// When it became due.
        since: Option<Timestamp>,
        /// The rule, in words.
        why: String,
    },
    /// The rule will hold at `at` if nothing else changes.
    DueAt {
        /// When.
        at: Timestamp,
        /// The rule, in words.
        why: String,
    },
    /// The rule does not hold, and time alone will not make it.
    NotDue {
        /// Why.
        why: String,
    },
    /// The subject is not one this kind is about (a deposit's kind asked about a SON):
    /// explanations leave the kind out.
    NotAbout,
}

/// The on-chain description of one operation kind. Its node-local parts (trigger, validator)
/// are described separately, in the node half.
#[derive(Debug, Clone, Copy)]
pub struct OperationDescriptor {
    /// The stable kind name, equal to the operation's typetag name and `Operation::kind`.
    pub name: &'static str,
    /// One line for humans.
    pub description: &'static str,
    /// `Some` if it may be carried by proposals.
    pub proposal: Option<ProposalPolicy>,
    /// A representative instance (JSON snapshots, documentation).
    pub example: fn() -> Box<dyn Operation>,
}

/// A check any crate can place in front of proposals of a kind, for a subject: "not now, this
/// subject is still needed" (the Bitcoin crate guards `son_deregister` for a SON whose signature
/// a pending transaction still needs). Consulted by the ledger when a proposal of that kind is
/// created and when it executes, and by triggers through `State::deferral`. Must be
/// deterministic over the state.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    /// A stable name, shown with the reason.
    pub name: &'static str,
    /// The operation kind it guards.
    pub kind: &'static str,
    /// `Some(reason)` to defer proposals of `kind` about the subject.
    pub defer: fn(&State, &Subject) -> Option<String>,
}

/// A crate's check of a genesis state: `Err(reason)` if the crate cannot run on it.
pub type GenesisCheck = fn(&State) -> Result<(), String>;

/// A crate's check of SON `son`'s sidechain keys `keys` (those it registers, or would have
/// from the next maintenance): `Err(reason)` if the crate's sidechain cannot use them.
pub type SonCheck = fn(&State, SonId, &BTreeMap<String, String>) -> Result<(), String>;

/// The on-chain half of the registry: every kind's description, the plugin tables and
/// parameters, the guards and the genesis checks, sorted by name. The state holds it; it holds
/// nothing node-local.
#[derive(Debug, Default)]
pub struct ChainRegistry {
    pub(crate) operations: BTreeMap<&'static str, OperationDescriptor>,
    pub(crate) tables: BTreeMap<&'static str, TableDecl>,
    pub(crate) params: BTreeMap<&'static str, ParamDecl>,
    /// By guarded kind, then guard name.
    pub(crate) guards: BTreeMap<&'static str, BTreeMap<&'static str, Guard>>,
    /// Each crate's genesis check, by crate name.
    pub(crate) genesis_checks: Vec<(&'static str, GenesisCheck)>,
    /// Each crate's SON key check, by crate name.
    pub(crate) son_checks: Vec<(&'static str, SonCheck)>,
}

impl ChainRegistry {
    /// The descriptor of a kind.
    pub fn operation(&self, name: &str) -> Option<&OperationDescriptor> {
        self.operations.get(name)
    }
    /// All descriptors, sorted by name.
    pub fn operations(&self) -> impl Iterator<Item = &OperationDescriptor> + '_ {
        self.operations.values()
    }
    /// All declared plugin tables, sorted by name.
    pub fn tables(&self) -> impl Iterator<Item = &TableDecl> + '_ {
        self.tables.values()
    }
    /// A declared plugin table.
    pub fn table(&self, name: &str) -> Option<&TableDecl> {
        self.tables.get(name)
    }
    /// All declared plugin parameters, sorted by name.
    pub fn params(&self) -> impl Iterator<Item = &ParamDecl> + '_ {
        self.params.values()
    }
    /// All guards, sorted by guarded kind, then name.
    pub fn guards(&self) -> impl Iterator<Item = &Guard> + '_ {
        self.guards.values().flat_map(|g| g.values())
    }
    /// The first crate's (by name) objection to SON `son` having `keys`, as `crate: reason`.
    pub fn son_objection(
        &self,
        state: &State,
        son: SonId,
        keys: &BTreeMap<String, String>,
    ) -> Option<String> {
        self.son_checks
            .iter()
            .find_map(|(name, check)| check(state, son, keys).err().map(|r| format!("{name}: {r}")))
    }
    /// The first guard (by name) on `kind` that defers `subject`, with its reason.
    pub fn deferral(
        &self,
        state: &State,
        kind: &str,
        subject: &Subject,
    ) -> Option<(&'static str, String)> {
        let guards = self.guards.get(kind)?;
        guards.values().find_map(|g| (g.defer)(state, subject).map(|why| (g.name, why)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::probe::{PlainProbe, SonProbe};

    #[test]
    fn only_returns_the_single_operation_of_the_asked_type() {
        let probe = SonProbe { son: SonId(1), fail_after: None, set_status: None };
        let plain = PlainProbe { account: AccountId(1), amount: 1, fail_after: None };
        let mut p = Proposal {
            id: ProposalId(0),
            proposer: AccountId(1),
            operations: vec![Box::new(probe.clone())],
            created_time: Timestamp(0),
            expiration_time: Timestamp(1),
            review_period_time: None,
            required_approvals: BTreeSet::new(),
            approvals: BTreeSet::new(),
            fail_reason: None,
        };
        assert_eq!(p.only::<SonProbe>(), Some(&probe));
        assert_eq!(p.only::<PlainProbe>(), None, "another type");
        p.operations.push(Box::new(plain));
        assert_eq!(p.only::<SonProbe>(), None, "not alone");
    }
}
