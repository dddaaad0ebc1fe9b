//! The ledger: applies blocks deterministically, keeps undo history, hashes the state.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::chain::crypto::{Digest, KeyPair};
use crate::chain::error::LedgerError;
use crate::chain::event::{BlockOutcome, LedgerEvent};
use crate::chain::genesis::Genesis;
use crate::chain::ids::{ProposalId, SonId, WitnessId};
use crate::chain::lifecycle;
use crate::chain::model::{ApplyContext, Session};
use crate::chain::model::{ChainRegistry, Globals, State};
use crate::chain::objects::{Election, SonStatus};
use crate::chain::store::Store;
use crate::chain::time::Timestamp;
use crate::chain::tx::{block_id, Block, SignedTransaction};
use crate::chain::verify::{precheck, with_prechecks, Prechecked};

/// How many blocks `pop_block` can undo by default.
pub const DEFAULT_UNDO_DEPTH: usize = 1000;

/// A transaction the producer left out of its block, and why.
#[derive(Debug)]
pub struct Rejected {
    /// The transaction.
    pub transaction: SignedTransaction,
    /// Why it was left out.
    pub error: LedgerError,
}

/// How often commits are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Fsync every this many committed blocks (1: every block, the default for a node). Between
    /// fsyncs a crash loses the latest commits, never part of one; the node resumes from the
    /// last durable block and re-applies the blocks after it.
    pub fsync_every: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { fsync_every: 1 }
    }
}

/// The ledger's link to its store.
pub(crate) struct Persistence {
    pub store: Box<dyn Store>,
    pub options: StoreOptions,
    /// Blocks at the end of the undo history not written yet.
    pub unwritten: usize,
    /// Blocks committed since the last durable commit.
    pub since_durable: u64,
    /// The undo chunks in the store: first height → last height.
    pub undo_chunks: BTreeMap<u64, u64>,
    /// The store keeps one undo record per key (formats 2 to 4): the next commit rewrites
    /// them as one chunk.
    pub legacy_undo: bool,
    /// Node-local values as loaded or last committed.
    pub local: BTreeMap<String, Vec<u8>>,
}

/// The on-chain half: the state, the rules that change it, and the undo history.
pub struct Ledger {
    pub(crate) state: State,
    pub(crate) history: VecDeque<Session>,
    pub(crate) undo_depth: usize,
    pub(crate) persistence: Option<Persistence>,
    /// Transactions whose signatures this node verified (node-local; spares work only).
    pub(crate) verified: crate::chain::verify::VerifiedCache,
    /// Encodings of unchanged tables for the state hash (node-local; spares work only).
    pub(crate) hash_cache: std::sync::Mutex<crate::chain::state::HashCache>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("state", &self.state)
            .field("undo_history", &self.history.len())
            .finish()
    }
}

impl Ledger {
    /// A ledger at the genesis, running the operations of `registry` (the chain half of a
    /// [`Registry`](crate::Registry): `registry.chain()`). The genesis' plugin parameters are
    /// checked against the registry's declarations: an unknown or invalid one is an error that
    /// names it; a declared one the genesis leaves out takes its default.
    pub fn new(genesis: &Genesis, registry: Arc<ChainRegistry>) -> Result<Ledger, LedgerError> {
        genesis.validate().map_err(LedgerError::Genesis)?;
        let plugin_params = plugin_params(genesis, &registry)?;
        let accounts = genesis.accounts.iter().map(|a| a.id).collect();
        let supplies = genesis.supplies(&accounts).map_err(LedgerError::Genesis)?;
        let chain_id = genesis.chain_id();
        let mut active = genesis.active_witnesses.clone();
        active.sort();
        let globals = Globals {
            chain_id,
            genesis_time: genesis.genesis_time,
            params: genesis.params.clone(),
            plugin_params: Arc::new(plugin_params),
            head_height: 0,
            head_time: genesis.genesis_time,
            head_id: chain_id,
            schedule: Arc::new(crate::chain::state::round_order(&active, &chain_id, 0)),
            active_witnesses: Arc::new(active),
            elected_sons: Arc::new(genesis.elected_sons.iter().copied().collect()),
            schedule_round: 0,
            next_proposal: 0,
            next_son_proposal: 0,
            next_vesting: 0,
            next_maintenance_time: genesis.genesis_time.plus(genesis.params.maintenance_interval),
            last_maintenance_time: genesis.genesis_time,
            maintenance_sons: Arc::new(genesis.elected_sons.iter().copied().collect()),
            next_son_pay_time: genesis.genesis_time.plus(genesis.params.son_pay_time),
            last_election: None,
        };
        let mut state = State::empty(registry, globals);
        for a in &genesis.accounts {
            state.accounts.set(a.id, Some(a.clone()));
        }
        for w in &genesis.witnesses {
            state.witnesses.set(w.id, Some(w.clone()));
        }
        // Each SON's votes: the genesis' count (stake the genesis does not model as accounts)
        // plus the core-asset balance of every account voting for it.
        let core = genesis.params.core_asset;
        let mut stakes: BTreeMap<SonId, u64> = BTreeMap::new();
        for a in genesis.accounts.iter().filter(|a| !a.son_votes.is_empty()) {
            let stake = genesis
                .balances
                .iter()
                .find(|(acc, asset, _)| *acc == a.id && *asset == core)
                .map_or(0, |(_, _, amount)| *amount);
            for son in &a.son_votes {
                let v = stakes.entry(*son).or_default();
                *v = v.saturating_add(stake);
            }
        }
        for s in &genesis.sons {
            let mut s = s.clone();
            s.votes = match s.status {
                SonStatus::Deregistered => 0,
                _ => s.votes.saturating_add(stakes.get(&s.id).copied().unwrap_or(0)),
            };
            state.sons.set(s.id, Some(s));
        }
        // The genesis' SON set stands as the first election: wallets weigh its SONs by the
        // votes they start with.
        let mut elected: Vec<(SonId, u64)> = genesis
            .elected_sons
            .iter()
            .map(|id| (*id, state.sons.get(id).map_or(0, |s| s.votes)))
            .collect();
        elected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let seats = genesis.params.maximum_son_count;
        let full = elected.len() == seats as usize;
        Arc::make_mut(&mut state.globals).last_election = Some(Election {
            at: genesis.genesis_time,
            seats,
            cutoff: elected.last().map(|(_, v)| *v).filter(|_| full),
            skipped: Vec::new(),
            elected,
        });
        for a in &genesis.assets {
            let supply = supplies.get(&a.id).copied().unwrap_or(0);
            state.assets.set(a.id, Some(crate::chain::objects::Asset { supply, ..a.clone() }));
        }
        for (account, asset, amount) in &genesis.balances {
            if *amount > 0 {
                state.balances.set((*account, *asset), Some(*amount));
            }
        }
        // Each parameter judged on the genesis state (an asset it names exists, say).
        for decl in state.registry.params() {
            let value = state
                .globals
                .plugin_params
                .get(decl.name)
                .cloned()
                .unwrap_or_else(decl.default_json);
            (decl.check_at_genesis)(&value, &state).map_err(|reason| {
                LedgerError::Genesis(format!("invalid parameter `{}`: {reason}", decl.name))
            })?;
        }
        for (name, check) in &state.registry.genesis_checks {
            check(&state).map_err(|reason| LedgerError::Genesis(format!("{name}: {reason}")))?;
        }
        Ok(Ledger {
            state,
            history: VecDeque::new(),
            undo_depth: DEFAULT_UNDO_DEPTH,
            persistence: None,
            verified: Default::default(),
            hash_cache: Default::default(),
        })
    }

    /// Keeps undo history for the last `depth` blocks (at least 1).
    pub fn with_undo_depth(mut self, depth: usize) -> Self {
        self.undo_depth = depth.max(1);
        while self.history.len() > self.undo_depth {
            self.history.pop_front();
        }
        self
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// A snapshot for the scheduler: O(1). Drop it before applying the next block, or that block
    /// copies the tables it writes.
    pub fn snapshot(&self) -> Arc<State> {
        Arc::new(self.state.clone())
    }

    /// The deterministic state digest.
    pub fn state_hash(&self) -> Digest {
        // The cache only spares re-encoding unchanged tables; a poisoned lock just starts over.
        let mut cache = self.hash_cache.lock().unwrap_or_else(|p| p.into_inner());
        self.state.hash_with(&mut cache)
    }

    /// How many blocks can be popped.
    pub fn undo_available(&self) -> usize {
        self.history.len()
    }

    /// Applies a block received from the network: all of it, or nothing.
    pub fn apply_block(&mut self, block: &Block) -> Result<BlockOutcome, LedgerError> {
        self.check_header(block)?;
        self.refuse_if_window_full()?;
        // Signatures are verified across cores while the apply, sequential, takes them in order.
        let chain_id = self.state.chain_id();
        let mut ctx = ApplyContext::new(&mut self.state);
        begin_block(&mut ctx, block.height, block.timestamp);
        let mut ids = Vec::with_capacity(block.transactions.len());
        let (mut size, max) = (0u64, ctx.params().maximum_block_size);
        let applied = with_prechecks(&chain_id, &block.transactions, &self.verified, |pre| {
            for (index, tx) in block.transactions.iter().enumerate() {
                match apply_transaction(&mut ctx, tx, pre.get(index)) {
                    Ok((id, bytes)) => {
                        ids.push(id);
                        size = size.saturating_add(bytes);
                        if size > max {
                            return Err(LedgerError::BlockTooLarge { size, max });
                        }
                    }
                    Err(e) => {
                        let source = Box::new(e);
                        return Err(LedgerError::InBlock { height: block.height, index, source });
                    }
                }
            }
            Ok(())
        });
        if let Err(e) = applied {
            ctx.rollback();
            return Err(e);
        }
        let id = block_id(block.height, block.timestamp, &block.previous, block.producer, &ids);
        let key = ctx.witness(block.producer).map(|w| w.signing_key);
        let shared = self.verified.shared.as_deref();
        if key != Some(block.signature.key)
            || !crate::chain::verify::verify_signature(shared, &block.signature, &id)
        {
            ctx.rollback();
            return Err(LedgerError::BadBlockSignature {
                height: block.height,
                producer: block.producer,
            });
        }
        end_block(&mut ctx, id);
        let (session, events) = ctx.finish();
        self.push_history(session);
        Ok(BlockOutcome {
            height: block.height,
            timestamp: block.timestamp,
            producer: block.producer,
            transactions: block.transactions.len(),
            events,
        })
    }

    /// Produces the next block at slot `timestamp` as its scheduled witness, whose signing key
    /// is `key`: includes the candidates that apply (in order), leaves out the rest with their
    /// errors, signs the block and applies it. Replicas reach the same state by
    /// [`Ledger::apply_block`] on the returned block.
    pub fn produce_block(
        &mut self,
        timestamp: Timestamp,
        candidates: Vec<SignedTransaction>,
        key: &KeyPair,
    ) -> Result<(Block, BlockOutcome, Vec<Rejected>), LedgerError> {
        let (block, outcome, rejected) = self.produce(timestamp, candidates, Some(key))?;
        let block = block.ok_or(LedgerError::NotTheProducer { producer: outcome.producer })?;
        Ok((block, outcome, rejected))
    }

    /// Produces the next block as [`Ledger::produce_block`] does, for a ledger that is the only
    /// replica (a single shared ledger in a simulation, a benchmark): the block is applied but
    /// not signed, and not returned, since no other node will receive it. Signing costs one
    /// secp256k1 signature per block, the largest cost of a long simulation after the
    /// heartbeats'.
    pub fn produce_unshared_block(
        &mut self,
        timestamp: Timestamp,
        candidates: Vec<SignedTransaction>,
    ) -> Result<(BlockOutcome, Vec<Rejected>), LedgerError> {
        let (_, outcome, rejected) = self.produce(timestamp, candidates, None)?;
        Ok((outcome, rejected))
    }

    fn produce(
        &mut self,
        timestamp: Timestamp,
        candidates: Vec<SignedTransaction>,
        key: Option<&KeyPair>,
    ) -> Result<(Option<Block>, BlockOutcome, Vec<Rejected>), LedgerError> {
        let height = self.state.head_height() + 1;
        let producer = self.check_slot(height, timestamp)?;
        if let Some(key) = key {
            if self.state.witness(producer).map(|w| w.signing_key) != Some(key.public()) {
                return Err(LedgerError::NotTheProducer { producer });
            }
        }
        self.refuse_if_window_full()?;
        let previous = self.state.globals.head_id;
        let chain_id = self.state.chain_id();
        let mut ctx = ApplyContext::new(&mut self.state);
        begin_block(&mut ctx, height, timestamp);
        let mut ids = Vec::with_capacity(candidates.len());
        let (mut size, max) = (0u64, ctx.params().maximum_block_size);
        // Each candidate's fate, in order: included, or left out with its error.
        let fates: Vec<Option<LedgerError>> =
            with_prechecks(&chain_id, &candidates, &self.verified, |pre| {
                let mut fates = Vec::with_capacity(candidates.len());
                for (index, tx) in candidates.iter().enumerate() {
                    ctx.begin();
                    fates.push(match apply_transaction(&mut ctx, tx, pre.get(index)) {
                        Ok((_, bytes)) if size.saturating_add(bytes) > max => {
                            // Full: left out, for a later block.
                            ctx.rollback();
                            let size = size.saturating_add(bytes);
                            Some(LedgerError::BlockTooLarge { size, max })
                        }
                        Ok((id, bytes)) => {
                            ctx.commit();
                            size += bytes;
                            ids.push(id);
                            None
                        }
                        Err(error) => {
                            ctx.rollback();
                            Some(error)
                        }
                    });
                }
                fates
            });
        let mut included = Vec::with_capacity(candidates.len());
        let mut rejected = Vec::new();
        for (tx, fate) in candidates.into_iter().zip(fates) {
            match fate {
                None => included.push(tx),
                Some(error) => rejected.push(Rejected { transaction: tx, error }),
            }
        }
        let id = block_id(height, timestamp, &previous, producer, &ids);
        let transactions = included.len();
        let block = key.map(|key| Block {
            height,
            timestamp,
            previous,
            producer,
            transactions: included,
            signature: key.sign(&id),
        });
        end_block(&mut ctx, id);
        let (session, events) = ctx.finish();
        self.push_history(session);
        let outcome = BlockOutcome { height, timestamp, producer, transactions, events };
        Ok((block, outcome, rejected))
    }

    /// Undoes the head block, restoring the exact previous state.
    pub fn pop_block(&mut self) -> Result<(), LedgerError> {
        let session = self
            .history
            .pop_back()
            .ok_or(LedgerError::NothingToPop { head: self.state.head_height() })?;
        let written = self.persistence.is_some().then(|| session.clone());
        session.undo(&mut self.state);
        match written {
            Some(popped) => self.note_popped(&popped),
            None => Ok(()),
        }
    }

    /// Checks a transaction against the current state without keeping any effect (for a node's
    /// mempool): applied as if in a block at the next slot.
    ///
    /// A transaction that passes is remembered with its signatures, so they are not verified
    /// again when a block carrying it is applied or produced here.
    pub fn check_transaction(&mut self, tx: &SignedTransaction) -> Result<(), LedgerError> {
        let next = self.state.next_slot_time();
        let height = self.state.head_height() + 1;
        let head = self.state.head_time();
        let pre = precheck(&self.state.chain_id(), tx, &self.verified);
        let mut ctx = ApplyContext::new(&mut self.state);
        begin_block(&mut ctx, height, next);
        let result = apply_transaction(&mut ctx, tx, pre);
        ctx.rollback();
        let (digest, _) = result?;
        self.verified.insert(&digest, tx, head);
        Ok(())
    }

    /// Verifies signatures through `cache`, which other ledgers of this process may share: a
    /// signature (key, digest, signature) one of them verified is not verified again. The
    /// simulator's replicas share one; its reference ledger verifies everything itself.
    pub fn share_signatures(mut self, cache: Arc<crate::chain::verify::SignatureCache>) -> Self {
        self.verified.shared = Some(cache);
        self
    }

    /// Remembers that a transaction's signatures verified (a proof made by
    /// [`verify_detached`](crate::chain::verify::verify_detached), on any thread): when a block
    /// carrying it is applied or produced here, they are not verified again.
    pub fn remember_verified(&mut self, proof: crate::chain::verify::Verified) {
        let head = self.state.head_time();
        self.verified.insert_verified(proof, head);
    }

    /// How many transactions this ledger remembers as verified (see
    /// [`Ledger::check_transaction`]).
    pub fn verified_transactions(&self) -> usize {
        self.verified.len()
    }

    /// Applies `f` as a block's effects would be (undo recorded, written at the next commit):
    /// for tests that need a write no operation makes.
    #[cfg(test)]
    pub(crate) fn apply_with_for_tests(&mut self, f: impl FnOnce(&mut ApplyContext<'_>)) {
        let mut ctx = ApplyContext::new(&mut self.state);
        f(&mut ctx);
        let (session, _) = ctx.finish();
        self.push_history(session);
    }

    fn push_history(&mut self, session: Session) {
        self.history.push_back(session);
        while self.history.len() > self.undo_depth {
            self.history.pop_front();
        }
        self.note_applied();
    }

    /// Whether the next block needs a [`Ledger::commit`] first: with a store, the blocks applied
    /// since the last commit fill the undo window, and one more would push an unwritten block's
    /// changes out of it. A node commits then, with its node-local values, so they stay atomic
    /// with the blocks they follow whatever its commit policy.
    pub fn commit_required(&self) -> bool {
        self.persistence.as_ref().is_some_and(|p| p.unwritten >= self.undo_depth)
    }

    /// Refuses a block while [`Ledger::commit_required`]: the ledger never commits on its own,
    /// since it cannot know the node-local values that must commit with the blocks.
    fn refuse_if_window_full(&mut self) -> Result<(), LedgerError> {
        match self.persistence.as_ref() {
            Some(p) if p.unwritten >= self.undo_depth => {
                Err(LedgerError::CommitRequired { unwritten: p.unwritten })
            }
            _ => Ok(()),
        }
    }

    fn check_slot(&self, height: u64, timestamp: Timestamp) -> Result<WitnessId, LedgerError> {
        let head = self.state.head_time();
        let bad = || LedgerError::BadTimestamp { height, timestamp, head };
        if timestamp <= head || timestamp > Timestamp::LAST_BLOCK_TIME {
            return Err(bad());
        }
        self.state.slot_at(timestamp).ok_or_else(bad)?;
        self.state.scheduled_producer(timestamp).ok_or_else(bad)
    }

    fn check_header(&self, block: &Block) -> Result<(), LedgerError> {
        let head = self.state.head_height();
        if block.height != head + 1 {
            return Err(LedgerError::BadHeight { head, got: block.height });
        }
        if block.previous != self.state.globals.head_id {
            return Err(LedgerError::BadPrevious {
                height: block.height,
                head: self.state.globals.head_id,
            });
        }
        let expected = self.check_slot(block.height, block.timestamp)?;
        if block.producer != expected {
            return Err(LedgerError::WrongProducer {
                height: block.height,
                timestamp: block.timestamp,
                expected,
                got: block.producer,
            });
        }
        Ok(())
    }
}

/// Every declared plugin parameter's value: the genesis' (validated) or the default.
fn plugin_params(
    genesis: &Genesis,
    registry: &ChainRegistry,
) -> Result<std::collections::BTreeMap<String, serde_json::Value>, LedgerError> {
    if let Some(unknown) =
        genesis.plugin_params.keys().find(|k| !registry.params.contains_key(k.as_str()))
    {
        return Err(LedgerError::Genesis(format!(
            "unknown parameter `{unknown}`: no registered operation crate declares it"
        )));
    }
    let mut out = std::collections::BTreeMap::new();
    for decl in registry.params() {
        let value = genesis.plugin_params.get(decl.name).cloned().unwrap_or_else(decl.default_json);
        (decl.check_json)(&value).map_err(|reason| {
            LedgerError::Genesis(format!("invalid parameter `{}`: {reason}", decl.name))
        })?;
        out.insert(decl.name.to_owned(), value);
    }
    Ok(out)
}

fn begin_block(ctx: &mut ApplyContext<'_>, height: u64, timestamp: Timestamp) {
    let new_round = ctx.round_at(timestamp).filter(|r| *r != ctx.globals().schedule_round);
    let g = ctx.globals_mut();
    g.head_height = height;
    g.head_time = timestamp;
    if let Some(round) = new_round {
        g.schedule =
            Arc::new(crate::chain::state::round_order(&g.active_witnesses, &g.chain_id, round));
        g.schedule_round = round;
    }
}

/// End of block: proposals that expire now get their last chance, then are removed; remembered
/// transaction ids that expired are forgotten. Both are range queries on expiration indexes.
fn end_block(ctx: &mut ApplyContext<'_>, block_id: Digest) {
    let now = ctx.now();
    let due: Vec<ProposalId> = ctx.proposals_expiring_by(now).collect();
    for id in due {
        let Some(p) = ctx.proposal(id) else { continue };
        if ctx.is_authorized(p) {
            if let Err(reason) = ctx.execute_proposal(id) {
                ctx.remove_proposal(id);
                ctx.emit(LedgerEvent::ProposalFailed { proposal: id, reason });
            }
        } else {
            ctx.remove_proposal(id);
            ctx.emit(LedgerEvent::ProposalExpired { proposal: id });
        }
    }
    for txid in ctx.transactions_expiring_by(now) {
        ctx.forget_transaction(txid);
    }
    // The SONs are paid for the period before a maintenance that falls at the same time
    // re-elects them.
    if now >= ctx.globals().next_son_pay_time {
        payout(ctx);
    }
    if now >= ctx.globals().next_maintenance_time {
        maintenance(ctx);
    }
    ctx.globals_mut().head_id = block_id;
}

/// The maintenance interval: the SONs' part ([`lifecycle::maintain_sons`]: requested
/// maintenance, new keys, the election), then the next maintenance time.
fn maintenance(ctx: &mut ApplyContext<'_>) {
    lifecycle::maintain_sons(ctx);
    let iv = ctx.params().maintenance_interval.max(1);
    let g = ctx.globals_mut();
    g.last_maintenance_time = g.head_time;
    g.maintenance_sons = g.elected_sons.clone();
    while g.next_maintenance_time <= g.head_time {
        g.next_maintenance_time = g.next_maintenance_time.plus(iv);
    }
}

/// The SONs' payout ([`lifecycle::pay_sons`]), then the next payout time.
fn payout(ctx: &mut ApplyContext<'_>) {
    lifecycle::pay_sons(ctx);
    let every = ctx.params().son_pay_time.max(1);
    let g = ctx.globals_mut();
    while g.next_son_pay_time <= g.head_time {
        g.next_son_pay_time = g.next_son_pay_time.plus(every);
    }
}

/// Applies one transaction; returns its id and its size. Operation crates' code runs here (their checks,
/// evaluators, serialisation, guards): a panic in it refuses the transaction with a typed error
/// instead of aborting the node; the caller rolls the session back.
fn apply_transaction(
    ctx: &mut ApplyContext<'_>,
    tx: &SignedTransaction,
    pre: Option<Prechecked>,
) -> Result<(Digest, u64), LedgerError> {
    let run = std::panic::AssertUnwindSafe(|| apply_transaction_unguarded(ctx, tx, pre));
    let applied = std::panic::catch_unwind(run).unwrap_or_else(|payload| {
        Err(LedgerError::Panicked { message: crate::chain::panic::panic_message(&*payload) })
    });
    match &applied {
        Ok((id, _)) => tracing::trace!(
            block = ctx.globals().head_height,
            transaction = %id,
            operations = tx.transaction.operations.len(),
            "transaction applied"
        ),
        Err(e) => tracing::trace!(
            block = ctx.globals().head_height,
            error = %e,
            "transaction refused"
        ),
    }
    applied
}

fn apply_transaction_unguarded(
    ctx: &mut ApplyContext<'_>,
    tx: &SignedTransaction,
    pre: Option<Prechecked>,
) -> Result<(Digest, u64), LedgerError> {
    let t = &tx.transaction;
    if t.operations.is_empty() {
        return Err(LedgerError::EmptyTransaction);
    }
    let head = ctx.now();
    if t.expiration <= head {
        return Err(LedgerError::TransactionExpired { expiration: t.expiration, head });
    }
    let max = ctx.params().maximum_time_until_expiration;
    if t.expiration.since(head) > max {
        return Err(LedgerError::ExpirationTooFar { expiration: t.expiration, head, max });
    }
    // One encoding serves the digest and the size check (done ahead, in the pre-check, when
    // there was one).
    let (digest, transaction_len) = match pre {
        Some(p) => (p.digest, p.transaction_len),
        None => t.digest_and_len(&ctx.chain_id()),
    };
    let verified = pre.is_some_and(|p| p.signatures_valid);
    let size = tx.encoded_len(transaction_len);
    let max = ctx.params().maximum_transaction_size;
    if size > max {
        return Err(LedgerError::TransactionTooLarge { size, max });
    }
    if ctx.transactions.get(&digest).is_some() {
        return Err(LedgerError::DuplicateTransaction(digest));
    }
    let mut keys = BTreeSet::new();
    for sig in &tx.signatures {
        if !keys.insert(sig.key) {
            return Err(LedgerError::DuplicateSignature { key: sig.key });
        }
        if !verified && !sig.verify(&digest) {
            return Err(LedgerError::InvalidSignature { key: sig.key });
        }
    }
    let required = t.required_authorities();
    for account in &required {
        if !ctx.keys_satisfy(*account, &keys) {
            return Err(LedgerError::MissingAuthority { account: *account });
        }
    }
    // As Graphene: a signature no required authority counts is refused, so a transaction carries
    // no weight it does not need (and its id no malleable extra).
    if let Some(key) = keys.iter().find(|k| !required.iter().any(|a| ctx.key_counts_for(*a, k))) {
        return Err(LedgerError::IrrelevantSignature { key: *key });
    }
    for (index, op) in t.operations.iter().enumerate() {
        let kind = op.kind();
        let fail = |source| LedgerError::Operation { index, kind, source };
        if ctx.registry().operation(kind).is_none() {
            return Err(fail(crate::chain::error::OperationError::UnregisteredKind { kind }));
        }
        op.validate().map_err(fail)?;
        op.check(ctx).map_err(fail)?;
        op.apply(ctx).map_err(fail)?;
    }
    ctx.record_transaction(digest, t.expiration);
    Ok((digest, size))
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
pub(crate) mod tests;
