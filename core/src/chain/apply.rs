//! The writes: how [`ApplyContext`] changes the state and records every change in an undo
//! session, for core tables, assets and balances, and operation crates' tables.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::chain::crypto::Digest;
use crate::chain::error::OperationError;
use crate::chain::event::LedgerEvent;
use crate::chain::ids::{AccountId, AssetId, ProposalId, SonId, SonProposalId, VestingId};
use crate::chain::model::{ApplyContext, Globals, Operation, Proposal, Session, State};
use crate::chain::objects::{Asset, Son, SonProposalRecord, SonStatus, VestingBalance};
use crate::chain::schema::{ChainEvent, StoredRow, TableKey, TableSchema};
use crate::chain::table::{Table, TableIndex};
use crate::chain::time::Timestamp;

/// Refuses an operation that a guard defers for its subject.
pub(crate) fn check_guards(state: &State, op: &dyn Operation) -> Result<(), OperationError> {
    let kind = op.kind();
    let Some(subject) = op.subject() else { return Ok(()) };
    match state.deferral(kind, &subject) {
        Some((guard, reason)) => Err(OperationError::Deferred { kind, subject, guard, reason }),
        None => Ok(()),
    }
}

pub(crate) fn write<K: Ord + Clone, V: Clone, I: TableIndex<K, V>>(
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
        restore(&mut state.assets, self.assets);
        restore(&mut state.balances, self.balances);
        for ((name, key), old) in self.plugin {
            if let Some(t) = Arc::make_mut(&mut state.plugin).get_mut(name) {
                t.set(key, old);
                state.plugin_generation = crate::chain::table::fresh_generation();
            }
        }
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
        merge(&mut self.assets, inner.assets);
        merge(&mut self.balances, inner.balances);
        merge(&mut self.plugin, inner.plugin);
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
    pub fn put_son(&mut self, mut son: Son) -> Result<(), OperationError> {
        let old_status = self.state.son(son.id).map(|s| s.status);
        if son.status == SonStatus::Deregistered {
            // Votes for a deregistered SON stop counting (its voters' stakes no longer move
            // them, and an account may not vote for it again).
            son.votes = 0;
        }
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
            let elected_sons = std::sync::Arc::make_mut(&mut g.elected_sons);
            if elected {
                elected_sons.insert(son);
            } else {
                elected_sons.remove(&son);
            }
        }
    }

    /// Creates a vesting balance of the core asset and reports it. The amount is held in it:
    /// it comes from wherever the caller took it (a SON's deposit, the SON budget), and goes to
    /// the owner's balance when withdrawn.
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
        let asset = self.params().core_asset;
        let row = VestingBalance { id, owner, asset, amount, reason: reason.clone(), cliff };
        self.put_vesting(id, Some(row));
        self.emit(LedgerEvent::VestingCreated { vesting: id, owner, amount, cliff, reason });
        id
    }

    pub(crate) fn put_vesting(&mut self, id: VestingId, row: Option<VestingBalance>) {
        let Self { state, sessions, .. } = self;
        write(&mut state.vesting, &mut sessions.last_mut().expect("session").vesting, id, row);
    }

    /// Takes `amount` of the core asset out of `account`'s balance into something the chain
    /// holds for it (a SON's deposit, a vesting balance): the supply is unchanged, and the
    /// account's votes lose that much stake.
    pub(crate) fn hold(&mut self, account: AccountId, amount: u64) -> Result<(), OperationError> {
        let asset = self.params().core_asset;
        self.known_asset(asset)?;
        self.debit(account, asset, amount)
    }

    /// Gives back to `account`'s balance `amount` of `asset` the chain held for it.
    pub(crate) fn release(
        &mut self,
        account: AccountId,
        asset: AssetId,
        amount: u64,
    ) -> Result<(), OperationError> {
        self.known_asset(asset)?;
        self.credit(account, asset, amount)
    }

    /// Moves `delta` votes onto (`up`) or off each SON `account` votes for: its stake changed,
    /// or it voted otherwise. The tally is kept as votes and balances change, so a maintenance
    /// reads it instead of summing every account's stake.
    pub(crate) fn shift_votes(
        &mut self,
        sons: &std::collections::BTreeSet<crate::chain::ids::SonId>,
        delta: u64,
        up: bool,
    ) {
        if delta == 0 {
            return;
        }
        for id in sons {
            // A deregistered SON's votes stopped counting when it left.
            let Some(mut son) =
                self.state.son(*id).filter(|s| s.status != SonStatus::Deregistered).cloned()
            else {
                continue;
            };
            son.votes =
                if up { son.votes.saturating_add(delta) } else { son.votes.saturating_sub(delta) };
            let Self { state, sessions, .. } = self;
            write(&mut state.sons, &mut sessions.last_mut().expect("session").sons, *id, Some(son));
        }
    }

    /// Writes row `value` of table `T` at `key` (replacing any), or removes it with `None`.
    /// Undone with the block, committed with it, covered by the state hash. Fails if no
    /// registered crate declares `T`.
    pub fn put_row<T: TableSchema>(
        &mut self,
        key: &T::Key,
        value: Option<T::Value>,
    ) -> Result<(), OperationError> {
        let Self { state, sessions, .. } = self;
        let table = Arc::make_mut(&mut state.plugin)
            .get_mut(T::NAME)
            .ok_or(OperationError::UndeclaredTable { table: T::NAME })?;
        state.plugin_generation = crate::chain::table::fresh_generation();
        let row = value.map(|v| Arc::new(v) as Arc<dyn StoredRow>);
        let log = &mut sessions.last_mut().expect("session").plugin;
        let k = key.key_bytes();
        match log.entry((T::NAME, k)) {
            Entry::Vacant(e) => {
                let old = table.set(e.key().1.clone(), row);
                e.insert(old);
            }
            Entry::Occupied(e) => {
                table.set(e.key().1.clone(), row);
            }
        }
        Ok(())
    }

    /// Reports an operation crate's typed event.
    pub fn emit_event<E: ChainEvent>(&mut self, event: &E) {
        let data = serde_json::to_value(event).unwrap_or(serde_json::Value::Null);
        self.emit(LedgerEvent::Plugin {
            kind: E::KIND.to_owned(),
            name: E::NAME.to_owned(),
            text: event.to_string(),
            data,
        });
    }

    fn put_balance(&mut self, account: AccountId, asset: AssetId, amount: u64) {
        let before = self.state.balance(account, asset);
        let Self { state, sessions, .. } = self;
        let log = &mut sessions.last_mut().expect("session").balances;
        write(&mut state.balances, log, (account, asset), (amount > 0).then_some(amount));
        // A voter's core-asset balance is its stake behind the SONs it votes for.
        if asset == self.params().core_asset && amount != before {
            let votes = self.state.account(account).map(|a| a.son_votes.clone());
            if let Some(votes) = votes.filter(|v| !v.is_empty()) {
                self.shift_votes(&votes, amount.abs_diff(before), amount > before);
            }
        }
    }

    /// Writes an account row.
    pub(crate) fn put_account(&mut self, account: crate::chain::objects::Account) {
        let id = account.id;
        let Self { state, sessions, .. } = self;
        write(
            &mut state.accounts,
            &mut sessions.last_mut().expect("session").accounts,
            id,
            Some(account),
        );
    }

    fn put_asset(&mut self, asset: Asset) {
        let Self { state, sessions, .. } = self;
        let log = &mut sessions.last_mut().expect("session").assets;
        write(&mut state.assets, log, asset.id, Some(asset));
    }

    fn debit(
        &mut self,
        account: AccountId,
        asset: AssetId,
        amount: u64,
    ) -> Result<(), OperationError> {
        let balance = self.balance(account, asset);
        let rest = balance.checked_sub(amount).ok_or(OperationError::InsufficientBalance {
            account,
            asset,
            balance,
            amount,
        })?;
        self.put_balance(account, asset, rest);
        Ok(())
    }

    fn credit(
        &mut self,
        account: AccountId,
        asset: AssetId,
        amount: u64,
    ) -> Result<(), OperationError> {
        let balance = self.balance(account, asset);
        let sum =
            balance.checked_add(amount).ok_or(OperationError::AmountOverflow { asset, amount })?;
        self.put_balance(account, asset, sum);
        Ok(())
    }

    fn known_asset(&self, asset: AssetId) -> Result<Asset, OperationError> {
        self.state.asset(asset).cloned().ok_or(OperationError::UnknownAsset(asset))
    }

    /// Moves `amount` of `asset` from one account to another; an overdraft is an error.
    pub fn transfer(
        &mut self,
        from: AccountId,
        to: AccountId,
        asset: AssetId,
        amount: u64,
    ) -> Result<(), OperationError> {
        self.known_asset(asset)?;
        self.known_recipient(to)?;
        self.debit(from, asset, amount)?;
        self.credit(to, asset, amount)?;
        self.emit(LedgerEvent::Transferred { from, to, asset, amount });
        Ok(())
    }

    /// An account that may receive an amount: one that exists, or the SON consensus account.
    fn known_recipient(&self, to: AccountId) -> Result<(), OperationError> {
        if self.state.account(to).is_none() && to != AccountId::SON_CONSENSUS {
            return Err(OperationError::UnknownAccount(to));
        }
        Ok(())
    }

    /// Creates `amount` of `asset` in `to`'s balance, which must exist (as for a transfer);
    /// the supply grows by as much and may not pass `max_supply`. Authority is the caller's business (the issuer's, for the core
    /// `asset_issue` operation).
    pub fn issue(
        &mut self,
        asset: AssetId,
        to: AccountId,
        amount: u64,
    ) -> Result<(), OperationError> {
        let mut a = self.known_asset(asset)?;
        self.known_recipient(to)?;
        let supply = a
            .supply
            .checked_add(amount)
            .filter(|s| *s <= a.max_supply)
            .ok_or(OperationError::AmountOverflow { asset, amount })?;
        self.credit(to, asset, amount)?;
        a.supply = supply;
        self.put_asset(a);
        self.emit(LedgerEvent::Issued { asset, to, amount });
        Ok(())
    }

    /// Destroys `amount` of `asset` from `from`'s balance (reserve, i.e. burn); the supply
    /// shrinks by as much. An overdraft is an error.
    pub fn reserve(
        &mut self,
        asset: AssetId,
        from: AccountId,
        amount: u64,
    ) -> Result<(), OperationError> {
        let mut a = self.known_asset(asset)?;
        self.debit(from, asset, amount)?;
        // Supply is the sum of balances and what the chain holds, so it covers any balance.
        a.supply = a.supply.saturating_sub(amount);
        self.put_asset(a);
        self.emit(LedgerEvent::Reserved { asset, from, amount });
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
            let run = std::panic::AssertUnwindSafe(|| {
                op.validate()
                    .and_then(|()| check_guards(self, op.as_ref()))
                    .and_then(|()| op.check(self))
                    .and_then(|()| op.apply(self))
                    .map_err(|e| e.to_string())
            });
            // A panic in an operation crate's code fails this execution like an error would.
            let result = std::panic::catch_unwind(run).unwrap_or_else(|payload| {
                Err(format!("panicked: {}", crate::chain::panic::panic_message(&*payload)))
            });
            if let Err(e) = result {
                self.rollback();
                return Err(format!("{}: {e}", op.kind()));
            }
        }
        self.commit();
        Ok(())
    }
}
