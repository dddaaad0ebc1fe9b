//! The [`Operation`] trait and the [`ApplyContext`] evaluators write through.

use std::any::Any;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::crypto::Digest;
use crate::error::OperationError;
use crate::event::LedgerEvent;
use crate::ids::{AccountId, ProposalId, SonId, SonProposalId, VestingId};
use crate::objects::{Account, Son, SonStatus, VestingBalance, Witness};
use crate::proposal::{Proposal, SonProposalRecord, Subject};
use crate::state::{Globals, State};
use crate::table::{Table, TableIndex};
use crate::time::Timestamp;

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
    /// among live proposals).
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

/// The undo record of a session: the value every touched row had before the session began.
#[derive(Default, Clone)]
pub(crate) struct Session {
    pub globals: Option<Arc<Globals>>,
    pub accounts: BTreeMap<AccountId, Option<Account>>,
    pub witnesses: BTreeMap<crate::ids::WitnessId, Option<Witness>>,
    pub sons: BTreeMap<SonId, Option<Son>>,
    pub proposals: BTreeMap<ProposalId, Option<Proposal>>,
    pub son_proposals: BTreeMap<SonProposalId, Option<SonProposalRecord>>,
    pub vesting: BTreeMap<VestingId, Option<VestingBalance>>,
    pub transactions: BTreeMap<Digest, Option<Timestamp>>,
    pub extensions: BTreeMap<(String, String), Option<String>>,
    /// How many events existed when the session began (a rollback drops the later ones).
    pub events_at_start: usize,
}

fn write<K: Ord + Clone, V: Clone, I: TableIndex<K, V>>(
    table: &mut Table<K, V, I>,
    log: &mut BTreeMap<K, Option<V>>,
    key: K,
    row: Option<V>,
) {
    match log.entry(key) {
        Entry::Vacant(e) => {
            let old = table.set(e.key().clone(), row);
            e.insert(old);
        }
        Entry::Occupied(e) => {
            table.set(e.key().clone(), row);
        }
    }
}

fn restore<K: Ord + Clone, V: Clone, I: TableIndex<K, V>>(
    table: &mut Table<K, V, I>,
    log: BTreeMap<K, Option<V>>,
) {
    for (k, old) in log {
        table.set(k, old);
    }
}

fn merge<K: Ord, V>(into: &mut BTreeMap<K, Option<V>>, from: BTreeMap<K, Option<V>>) {
    for (k, old) in from {
        into.entry(k).or_insert(old);
    }
}

impl Session {
    /// Puts every touched row back as it was.
    pub(crate) fn undo(self, state: &mut State) {
        if let Some(g) = self.globals {
            state.globals = g;
        }
        restore(&mut state.accounts, self.accounts);
        restore(&mut state.witnesses, self.witnesses);
        restore(&mut state.sons, self.sons);
        restore(&mut state.proposals, self.proposals);
        restore(&mut state.son_proposals, self.son_proposals);
        restore(&mut state.vesting, self.vesting);
        restore(&mut state.transactions, self.transactions);
        restore(&mut state.extensions, self.extensions);
    }

    /// Folds a nested session into this one (the older value of each row wins).
    pub(crate) fn absorb(&mut self, inner: Session) {
        if self.globals.is_none() {
            self.globals = inner.globals;
        }
        merge(&mut self.accounts, inner.accounts);
        merge(&mut self.witnesses, inner.witnesses);
        merge(&mut self.sons, inner.sons);
        merge(&mut self.proposals, inner.proposals);
        merge(&mut self.son_proposals, inner.son_proposals);
        merge(&mut self.vesting, inner.vesting);
        merge(&mut self.transactions, inner.transactions);
        merge(&mut self.extensions, inner.extensions);
    }
}

/// Where evaluators read the state and write their effects. Every write is recorded so the
/// ledger can undo it (a failed operation, a popped block).
pub struct ApplyContext<'a> {
    pub(crate) state: &'a mut State,
    pub(crate) sessions: Vec<Session>,
    pub(crate) events: Vec<LedgerEvent>,
}

impl Deref for ApplyContext<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.state
    }
}

impl<'a> ApplyContext<'a> {
    pub(crate) fn new(state: &'a mut State) -> Self {
        ApplyContext { state, sessions: vec![Session::default()], events: Vec::new() }
    }

    fn top(&mut self) -> &mut Session {
        self.sessions.last_mut().expect("an apply context always has a session")
    }

    pub(crate) fn begin(&mut self) {
        let events_at_start = self.events.len();
        self.sessions.push(Session { events_at_start, ..Session::default() });
    }

    pub(crate) fn rollback(&mut self) {
        if let Some(s) = self.sessions.pop() {
            self.events.truncate(s.events_at_start);
            s.undo(self.state);
        }
        if self.sessions.is_empty() {
            self.sessions.push(Session::default());
        }
    }

    pub(crate) fn commit(&mut self) {
        if self.sessions.len() > 1 {
            let inner = self.sessions.pop().expect("checked");
            self.top().absorb(inner);
        }
    }

    /// Ends the context, returning the outermost undo session and the events.
    pub(crate) fn finish(mut self) -> (Session, Vec<LedgerEvent>) {
        while self.sessions.len() > 1 {
            self.commit();
        }
        let s = self.sessions.pop().unwrap_or_default();
        (s, self.events)
    }

    /// "Now" on chain: the timestamp of the block being applied.
    pub fn now(&self) -> Timestamp {
        self.state.head_time()
    }

    /// Reports something that happened.
    pub fn emit(&mut self, event: LedgerEvent) {
        self.events.push(event);
    }

    pub(crate) fn globals_mut(&mut self) -> &mut Globals {
        if self.top().globals.is_none() {
            let old = Arc::clone(&self.state.globals);
            self.top().globals = Some(old);
        }
        Arc::make_mut(&mut self.state.globals)
    }

    /// Writes a SON row. A deregistered SON's status never changes again; a status change is
    /// reported as [`LedgerEvent::SonStatusChanged`].
    pub fn put_son(&mut self, son: Son) -> Result<(), OperationError> {
        let old_status = self.state.son(son.id).map(|s| s.status);
        if old_status == Some(SonStatus::Deregistered) && son.status != SonStatus::Deregistered {
            return Err(OperationError::Deregistered(son.id));
        }
        if let Some(from) = old_status.filter(|s| *s != son.status) {
            self.emit(LedgerEvent::SonStatusChanged { son: son.id, from, to: son.status });
        }
        let id = son.id;
        let Self { state, sessions, .. } = self;
        let log = &mut sessions.last_mut().expect("session").sons;
        write(&mut state.sons, log, id, Some(son));
        Ok(())
    }

    /// Adds the SON to, or removes it from, the elected set.
    pub fn set_elected(&mut self, son: SonId, elected: bool) {
        if self.state.is_elected(son) != elected {
            let g = self.globals_mut();
            if elected {
                g.elected_sons.insert(son);
            } else {
                g.elected_sons.remove(&son);
            }
        }
    }

    /// Creates a vesting balance and reports it.
    pub fn create_vesting(
        &mut self,
        owner: AccountId,
        amount: u64,
        reason: String,
        cliff: Timestamp,
    ) -> VestingId {
        let g = self.globals_mut();
        let id = VestingId(g.next_vesting);
        g.next_vesting += 1;
        let row = VestingBalance { id, owner, amount, reason, cliff };
        let Self { state, sessions, .. } = self;
        write(
            &mut state.vesting,
            &mut sessions.last_mut().expect("session").vesting,
            id,
            Some(row),
        );
        self.emit(LedgerEvent::VestingCreated { vesting: id, owner, amount, cliff });
        id
    }

    /// Stores an operation crate's own record under `(kind, key)` (replacing any), or removes it
    /// with `None`. Encoded as canonical JSON: use ordered maps, never hash maps, in `value`.
    /// Read it back with [`State::extension`].
    pub fn put_extension<T: serde::Serialize>(
        &mut self,
        kind: &'static str,
        key: impl Into<String>,
        value: Option<&T>,
    ) -> Result<(), OperationError> {
        let row = value
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| OperationError::rule(kind, e))?;
        let Self { state, sessions, .. } = self;
        let log = &mut sessions.last_mut().expect("session").extensions;
        write(&mut state.extensions, log, (kind.to_owned(), key.into()), row);
        Ok(())
    }

    pub(crate) fn put_proposal(&mut self, p: Proposal) {
        let id = p.id;
        let Self { state, sessions, .. } = self;
        write(
            &mut state.proposals,
            &mut sessions.last_mut().expect("session").proposals,
            id,
            Some(p),
        );
    }

    pub(crate) fn put_record(&mut self, r: SonProposalRecord) {
        let id = r.id;
        let Self { state, sessions, .. } = self;
        let log = &mut sessions.last_mut().expect("session").son_proposals;
        write(&mut state.son_proposals, log, id, Some(r));
    }

    /// Removes a proposal and, with it, every son proposal record pointing at it. This is the
    /// one removal path: executed, expired, failed and deleted proposals all come through here.
    pub(crate) fn remove_proposal(&mut self, id: ProposalId) {
        let records: Vec<SonProposalId> =
            self.state.records_of_proposal(id).map(|r| r.id).collect();
        let Self { state, sessions, .. } = self;
        let session = sessions.last_mut().expect("session");
        for rid in records {
            write(&mut state.son_proposals, &mut session.son_proposals, rid, None);
        }
        write(&mut state.proposals, &mut session.proposals, id, None);
    }

    pub(crate) fn record_transaction(&mut self, id: Digest, expiration: Timestamp) {
        let Self { state, sessions, .. } = self;
        let log = &mut sessions.last_mut().expect("session").transactions;
        write(&mut state.transactions, log, id, Some(expiration));
    }

    pub(crate) fn forget_transaction(&mut self, id: Digest) {
        let Self { state, sessions, .. } = self;
        let log = &mut sessions.last_mut().expect("session").transactions;
        write(&mut state.transactions, log, id, None);
    }

    pub(crate) fn next_record_id(&mut self) -> SonProposalId {
        let g = self.globals_mut();
        let id = SonProposalId(g.next_son_proposal);
        g.next_son_proposal += 1;
        id
    }

    pub(crate) fn next_proposal_id(&mut self) -> ProposalId {
        let g = self.globals_mut();
        let id = ProposalId(g.next_proposal);
        g.next_proposal += 1;
        id
    }

    /// Runs a proposal's operations atomically. On success the proposal (and its records) is
    /// removed and `Ok` returned; on failure nothing of the operations remains, and the error's
    /// text is returned for the caller to record.
    pub(crate) fn execute_proposal(&mut self, id: ProposalId) -> Result<(), String> {
        let Some(p) = self.state.proposal(id).cloned() else {
            return Err(OperationError::UnknownProposal(id).to_string());
        };
        self.begin();
        self.emit(LedgerEvent::ProposalExecuted { proposal: id });
        self.remove_proposal(id);
        for op in &p.operations {
            let result = op.validate().and_then(|()| op.check(self)).and_then(|()| op.apply(self));
            if let Err(e) = result {
                self.rollback();
                return Err(format!("{}: {e}", op.kind()));
            }
        }
        self.commit();
        Ok(())
    }
}
