//! The dialog with the engine: build a block when this witness proposes, check a proposed
//! block on a scratch state before voting for it, apply a block once it is decided (with its
//! commit certificate, in one commit), and serve decided blocks to peers catching up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use malachitebft_app_channel::app::engine::host::Next;
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::core::{CommitCertificate, Round, Validity};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{LocallyProposedValue, ProposedValue};
use malachitebft_app_channel::{AppMsg, Channels, NetworkMsg};
use sonprop_core::node::clock::{check_not_ahead, wall_clock, DEFAULT_MAX_AHEAD};
use sonprop_core::{Block, Digest, KeyPair, Ledger, State, Timestamp};

use crate::ctx::{
    slot_time, Address, BlockId, BlockValue, Ctx, Height, ProposalPart, ValidatorSet,
};
use crate::mempool::Mempool;

/// How many decided blocks (with their certificates) a node keeps to serve peers catching up.
pub const KEPT_BLOCKS: u64 = 10_000;

/// Proposal parts held for the height after the next, at most.
pub const EARLY_LIMIT: usize = 64;

/// Transactions in one block at most.
pub const BLOCK_TRANSACTIONS: usize = 5_000;

/// What the node has decided, as the RPC server reads it.
#[derive(Clone)]
pub struct Head {
    /// The last decided block's height (every decided block is final).
    pub height: u64,
    /// Its time.
    pub time: Timestamp,
    /// The state hash after it.
    pub state_hash: Digest,
    /// The state after it.
    pub state: Arc<State>,
}

/// Counters for the metrics endpoint.
#[derive(Default)]
pub struct Counters {
    /// Rounds started.
    pub rounds: AtomicU64,
    /// Blocks this node proposed.
    pub proposed: AtomicU64,
    /// Proposed blocks this node found invalid.
    pub invalid_proposals: AtomicU64,
    /// Transactions included in decided blocks.
    pub included: AtomicU64,
}

/// What the consensus dialog shares with the RPC server.
pub struct Shared {
    /// The decided head.
    pub head: RwLock<Head>,
    /// Transactions waiting.
    pub mempool: Mempool,
    /// Counters.
    pub counters: Counters,
    /// The state hash after each of the last [`KEPT_HASHES`] decided blocks, by height.
    pub hashes: RwLock<BTreeMap<u64, Digest>>,
    /// Announces each decided state (to the node's own duties).
    pub heads: tokio::sync::watch::Sender<Arc<State>>,
    /// The node's own work, counted.
    pub duties: crate::duties::DutyCounters,
    /// SON proposals created and executed, by kind (as this node saw them decided).
    pub kinds: std::sync::Mutex<KindCounts>,
}

/// SON proposals by kind: `(created, executed)`, and the kind of each live one.
#[derive(Default)]
pub struct KindCounts {
    /// Created and executed, by kind.
    pub by_kind: BTreeMap<String, (u64, u64)>,
    live: BTreeMap<sonprop_core::ProposalId, String>,
}

impl KindCounts {
    fn record(&mut self, events: &[sonprop_core::LedgerEvent]) {
        use sonprop_core::LedgerEvent as E;
        for e in events {
            match e {
                E::ProposalCreated { proposal, kinds, .. } => {
                    let kind = kinds.join("+");
                    self.by_kind.entry(kind.clone()).or_default().0 += 1;
                    self.live.insert(*proposal, kind);
                }
                E::ProposalExecuted { proposal } => {
                    let kind = self.live.remove(proposal).unwrap_or_else(|| "unknown".into());
                    self.by_kind.entry(kind).or_default().1 += 1;
                }
                E::ProposalExpired { proposal }
                | E::ProposalFailed { proposal, .. }
                | E::ProposalDeleted { proposal, .. } => {
                    self.live.remove(proposal);
                }
                _ => {}
            }
        }
    }
}

/// How many recent state hashes a node answers for.
pub const KEPT_HASHES: u64 = 1_000;

impl Shared {
    /// The decided head, as of now.
    pub fn head(&self) -> Head {
        self.head.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A decided block with its certificate, as kept in the store beside the state.
#[derive(borsh::BorshSerialize, borsh::BorshDeserialize)]
struct Decided {
    block: Vec<u8>,
    certificate: CommitCertificate<Ctx>,
    /// The state hash after the block.
    state_hash: [u8; 32],
}

/// The height whose record leaves a window of the last `kept` heights when `height` joins it.
fn leaving(height: u64, kept: u64) -> Option<u64> {
    height.checked_sub(kept).filter(|h| *h > 0)
}

fn decided_key(height: u64) -> String {
    format!("decided/{height:020}")
}

/// A node's side of the dialog.
pub struct App {
    ledger: Ledger,
    keys: KeyPair,
    me: Option<Address>,
    ctx: Ctx,
    shared: Arc<Shared>,
    /// Values built or received, by height and id, until their height is decided.
    values: BTreeMap<(u64, BlockId), BlockValue>,
    /// This node's own proposal per height and round (the same value if asked again).
    built: BTreeMap<(u64, Round), BlockValue>,
    /// Proposals received ahead of their height, handed to the engine when it starts it.
    early: BTreeMap<(u64, Round), Vec<ProposalPart>>,
    /// Verdicts on values already checked.
    verdicts: BTreeMap<BlockId, Validity>,
}

fn stream_id(height: u64, round: Round, proposer: Address) -> StreamId {
    let mut b = height.to_be_bytes().to_vec();
    b.extend_from_slice(&round.as_i64().to_be_bytes());
    b.extend_from_slice(&proposer.0.to_be_bytes());
    StreamId::new(Bytes::from(b))
}

impl App {
    /// The dialog for a node whose ledger is `ledger`, signing as `keys` (a witness's block key;
    /// `me` is that witness, or `None` for a node that only follows).
    pub fn new(ledger: Ledger, keys: KeyPair, me: Option<Address>, ctx: Ctx) -> App {
        let state = ledger.snapshot();
        ctx.schedule_next(&state);
        let state_now = state.clone();
        let head = Head {
            height: state.head_height(),
            time: state.head_time(),
            state_hash: ledger.state_hash(),
            state,
        };
        // The hashes of the blocks decided before a restart, from the store.
        let mut hashes = BTreeMap::from([(head.height, head.state_hash)]);
        for h in head.height.saturating_sub(KEPT_HASHES - 1).max(1)..head.height {
            let stored = ledger.local(&decided_key(h));
            if let Some(d) = stored.and_then(|b| borsh::from_slice::<Decided>(b).ok()) {
                hashes.insert(h, Digest(d.state_hash));
            }
        }
        let shared = Arc::new(Shared {
            head: RwLock::new(head),
            mempool: Mempool::default(),
            counters: Counters::default(),
            hashes: RwLock::new(hashes),
            heads: tokio::sync::watch::Sender::new(state_now),
            duties: crate::duties::DutyCounters::default(),
            kinds: std::sync::Mutex::new(KindCounts::default()),
        });
        App {
            ledger,
            keys,
            me,
            ctx,
            shared,
            values: BTreeMap::new(),
            built: BTreeMap::new(),
            early: BTreeMap::new(),
            verdicts: BTreeMap::new(),
        }
    }

    /// What the RPC server reads.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// The validator set of the next height.
    pub fn validator_set(&self) -> ValidatorSet {
        ValidatorSet::of(self.ledger.state())
    }

    /// The height the engine starts at.
    pub fn start_height(&self) -> Height {
        Height(self.ledger.state().head_height() + 1)
    }

    fn next_height(&self) -> u64 {
        self.ledger.state().head_height() + 1
    }

    /// Builds this witness's block for `round` of the next height: stamped with that round's
    /// slot, with the mempool's transactions that apply, signed, and then undone (it is applied
    /// for good only once decided).
    fn build(&mut self, round: Round) -> Result<BlockValue, String> {
        let t = slot_time(self.ledger.state(), round.as_i64().max(0) as u64);
        let candidates = self.shared.mempool.candidates(BLOCK_TRANSACTIONS);
        let (block, _, rejected) =
            self.ledger.produce_block(t, candidates, &self.keys).map_err(|e| e.to_string())?;
        self.ledger.pop_block().map_err(|e| e.to_string())?;
        let chain_id = self.ledger.state().chain_id();
        self.shared
            .mempool
            .remove(rejected.iter().map(|r| r.transaction.transaction.digest(&chain_id)));
        let bytes = serde_json::to_vec(&block).map_err(|e| e.to_string())?;
        Ok(BlockValue { id: BlockId(block.id(&chain_id).0), bytes })
    }

    /// Decodes a value's block, checking that it is the block its id names.
    fn decode(&self, value: &BlockValue) -> Option<Block> {
        let block: Block = serde_json::from_slice(&value.bytes).ok()?;
        (block.id(&self.ledger.state().chain_id()).0 == value.id.0).then_some(block)
    }

    /// Whether a block proposed for the next height may be voted for: its bytes are the block
    /// its id names, it is not stamped ahead of this node's clock, and the ledger applies it
    /// (height, producer, slot, signature and every transaction) on a state it then undoes.
    fn check(&mut self, value: &BlockValue) -> Validity {
        if let Some(v) = self.verdicts.get(&value.id) {
            return *v;
        }
        // The ledger checks the height, the producer's slot and signature, and every
        // transaction; the clock is this node's alone.
        let valid = self.decode(value).is_some_and(|block| {
            check_not_ahead(&block, wall_clock(), DEFAULT_MAX_AHEAD).is_ok()
                && self.ledger.apply_block(&block).is_ok()
                && self.ledger.pop_block().is_ok()
        });
        let verdict = Validity::from_bool(valid);
        if !valid {
            self.shared.counters.invalid_proposals.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(block = %value.id, "proposed block refused");
        }
        self.verdicts.insert(value.id, verdict);
        verdict
    }

    fn proposed(&mut self, part: ProposalPart) -> ProposedValue<Ctx> {
        let validity = self.check(&part.value);
        self.values.insert((part.height.0, part.value.id), part.value.clone());
        ProposedValue {
            height: part.height,
            round: part.round,
            valid_round: part.pol_round,
            proposer: part.proposer,
            value: part.value,
            validity,
        }
    }

    /// A proposal part from the network. Parts are not signed, and any peer can send one, so
    /// only these are looked at: one for the next height from the witness scheduled for its
    /// round (checked, and answered with a verdict), and up to [`EARLY_LIMIT`] for the height
    /// after it (kept until the engine starts that height). Anything else is dropped unread.
    fn received(&mut self, content: StreamContent<ProposalPart>) -> Option<ProposedValue<Ctx>> {
        let StreamContent::Data(p) = content else { return None };
        let next = self.next_height();
        if p.height.0 == next && self.ctx.proposer(p.height, p.round) == Some(p.proposer) {
            return Some(self.proposed(p));
        }
        let held: usize = self.early.values().map(Vec::len).sum();
        if p.height.0 == next + 1 && held < EARLY_LIMIT {
            self.early.entry((p.height.0, p.round)).or_default().push(p);
        }
        None
    }

    /// Applies the decided block and stores it with its certificate, in one commit.
    fn commit(&mut self, certificate: CommitCertificate<Ctx>) -> Result<(), String> {
        let height = certificate.height.0;
        let value = self.values.get(&(height, certificate.value_id)).cloned().ok_or_else(|| {
            format!("decided block {} at height {height} is unknown here", certificate.value_id)
        })?;
        let block = self.decode(&value).ok_or("the decided value is not a block")?;
        let outcome = self.ledger.apply_block(&block).map_err(|e| e.to_string())?;
        let state_hash = self.ledger.state_hash();
        let decided =
            borsh::to_vec(&Decided { block: value.bytes, certificate, state_hash: state_hash.0 })
                .map_err(|e| e.to_string())?;
        let mut local = vec![(decided_key(height), Some(decided))];
        if let Some(old) = leaving(height, KEPT_BLOCKS) {
            local.push((decided_key(old), None));
        }
        self.ledger.sync(local).map_err(|e| e.to_string())?;
        let chain_id = self.ledger.state().chain_id();
        self.shared
            .mempool
            .remove(block.transactions.iter().map(|t| t.transaction.digest(&chain_id)));
        self.shared.mempool.expire(block.timestamp);
        self.shared.counters.included.fetch_add(outcome.transactions as u64, Ordering::Relaxed);
        self.shared.kinds.lock().unwrap_or_else(|e| e.into_inner()).record(&outcome.events);
        let state = self.ledger.snapshot();
        self.ctx.schedule_next(&state);
        {
            let mut hashes = self.shared.hashes.write().unwrap_or_else(|e| e.into_inner());
            hashes.insert(height, state_hash);
            if let Some(old) = leaving(height, KEPT_HASHES) {
                hashes.remove(&old);
            }
        }
        *self.shared.head.write().unwrap_or_else(|e| e.into_inner()) =
            Head { height, time: state.head_time(), state_hash, state: state.clone() };
        self.shared.heads.send_replace(state);
        self.values.retain(|(h, _), _| *h > height);
        self.built.retain(|(h, _), _| *h > height);
        self.early.retain(|(h, _), _| *h > height);
        self.verdicts.clear();
        tracing::info!(height, transactions = outcome.transactions, "block decided");
        Ok(())
    }

    fn raw_decided(&self, height: u64) -> Option<RawDecidedValue<Ctx>> {
        let bytes = self.ledger.local(&decided_key(height))?;
        let d: Decided = borsh::from_slice(bytes).ok()?;
        Some(RawDecidedValue { value_bytes: Bytes::from(d.block), certificate: d.certificate })
    }

    fn parts(&self, part: ProposalPart) -> [StreamMessage<ProposalPart>; 2] {
        let id = stream_id(part.height.0, part.round, part.proposer);
        [
            StreamMessage::new(id.clone(), 0, StreamContent::Data(part)),
            StreamMessage::new(id, 1, StreamContent::Fin),
        ]
    }

    async fn publish(&self, channels: &Channels<Ctx>, part: ProposalPart) -> eyre::Result<()> {
        for msg in self.parts(part) {
            channels.network.send(NetworkMsg::PublishProposalPart(msg)).await?;
        }
        Ok(())
    }

    /// Answers the engine until it stops.
    pub async fn run(mut self, mut channels: Channels<Ctx>) -> eyre::Result<()> {
        while let Some(msg) = channels.consensus.recv().await {
            self.handle(msg, &channels).await?;
        }
        Ok(())
    }

    async fn handle(&mut self, msg: AppMsg<Ctx>, channels: &Channels<Ctx>) -> eyre::Result<()> {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let _ = reply.send((self.start_height(), self.validator_set()));
            }
            AppMsg::StartedRound { height, round, proposer, reply_value, .. } => {
                self.shared.counters.rounds.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%height, %round, %proposer, "round started");
                let early = self.early.remove(&(height.0, round)).unwrap_or_default();
                let values = early.into_iter().map(|p| self.proposed(p)).collect();
                let _ = reply_value.send(values);
            }
            AppMsg::GetValue { height, round, timeout, reply } => {
                let value = match self.built.get(&(height.0, round)) {
                    Some(v) => v.clone(),
                    None => {
                        // Not before the slot: wait for it, within half the engine's patience.
                        let t = slot_time(self.ledger.state(), round.as_i64().max(0) as u64);
                        let wait = t.secs().saturating_sub(wall_clock().secs());
                        let wait = Duration::from_secs(wait).min(timeout / 2);
                        tokio::time::sleep(wait).await;
                        match self.build(round) {
                            Ok(v) => v,
                            Err(e) => {
                                // Nothing is sent: the round times out and the next proposer's
                                // slot comes.
                                tracing::error!(%height, %round, error = %e, "no block built");
                                return Ok(());
                            }
                        }
                    }
                };
                self.shared.counters.proposed.fetch_add(1, Ordering::Relaxed);
                self.built.insert((height.0, round), value.clone());
                self.values.insert((height.0, value.id), value.clone());
                self.verdicts.insert(value.id, Validity::Valid);
                let _ = reply.send(LocallyProposedValue::new(height, round, value.clone()));
                let proposer = self.me.unwrap_or(Address(0));
                let part = ProposalPart { height, round, pol_round: Round::Nil, proposer, value };
                self.publish(channels, part).await?;
            }
            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }
            AppMsg::VerifyVoteExtension { reply, .. } => {
                let _ = reply.send(Ok(()));
            }
            AppMsg::RestreamProposal { height, round, valid_round, address, value_id } => {
                if let Some(value) = self.values.get(&(height.0, value_id)).cloned() {
                    let part = ProposalPart {
                        height,
                        round,
                        pol_round: valid_round,
                        proposer: address,
                        value,
                    };
                    self.publish(channels, part).await?;
                }
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                let head = self.ledger.state().head_height();
                let _ = reply.send(Height(head.saturating_sub(KEPT_BLOCKS - 1).max(1)));
            }
            AppMsg::ReceivedProposalPart { part, reply, .. } => {
                let _ = reply.send(self.received(part.content));
            }
            AppMsg::GetValidatorSet { reply, .. } => {
                let _ = reply.send(Some(self.validator_set()));
            }
            AppMsg::Decided { certificate, reply, .. } => {
                let height = certificate.height;
                let next = match self.commit(certificate) {
                    Ok(()) => Next::Start(Height(height.0 + 1), self.validator_set()),
                    Err(e) => {
                        tracing::error!(%height, error = %e, "decided block not applied; height restarted");
                        Next::Restart(self.start_height(), self.validator_set())
                    }
                };
                let _ = reply.send(next);
            }
            AppMsg::GetDecidedValue { height, reply } => {
                let _ = reply.send(self.raw_decided(height.0));
            }
            AppMsg::ProcessSyncedValue { height, round, proposer, value_bytes, reply } => {
                let block: Option<Block> = serde_json::from_slice(&value_bytes).ok();
                let value = block.map(|b| {
                    let id = BlockId(b.id(&self.ledger.state().chain_id()).0);
                    let part = ProposalPart {
                        height,
                        round,
                        pol_round: Round::Nil,
                        proposer,
                        value: BlockValue { id, bytes: value_bytes.to_vec() },
                    };
                    self.proposed(part)
                });
                let _ = reply.send(value);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonprop_core::testkit::NetworkBuilder;
    use sonprop_core::{NodeIdentity, Registry};

    struct Net {
        witnesses: Vec<NodeIdentity>,
        user: NodeIdentity,
        apps: Vec<App>,
    }

    /// Four witnesses' apps over in-memory ledgers of one genesis (in the past: no block is
    /// ahead of the clock).
    fn net(genesis_time: Option<Timestamp>) -> Net {
        let mut b = NetworkBuilder::default().witnesses(4).sons(0).users(1);
        if let Some(t) = genesis_time {
            b = b.genesis_time(t);
        }
        let user = b.genesis().3.remove(0);
        let b = b.asset(sonprop_core::testkit::ppy_asset()).balance(
            user.account,
            sonprop_core::AssetId(0),
            1_000,
        );
        let (genesis, witnesses, _, _) = b.genesis();
        let registry = Registry::discover().expect("registry");
        let apps = witnesses
            .iter()
            .map(|w| {
                let store = Box::new(sonprop_core::MemoryStore::new());
                let options = sonprop_core::StoreOptions::default();
                let ledger =
                    Ledger::open(&genesis, registry.chain(), store, options).expect("ledger");
                App::new(
                    ledger,
                    w.keys.clone(),
                    Some(Address(w.witness.expect("w").0)),
                    Ctx::default(),
                )
            })
            .collect();
        Net { witnesses, user, apps }
    }

    /// The index of the witness scheduled for `round` of the next height.
    fn proposer(net: &Net, round: u32) -> usize {
        let a = net.apps[0]
            .ctx
            .proposer(net.apps[0].start_height(), Round::new(round))
            .expect("scheduled");
        net.witnesses.iter().position(|w| w.witness.map(|x| x.0) == Some(a.0)).expect("a witness")
    }

    fn certificate(height: u64, id: BlockId) -> CommitCertificate<Ctx> {
        CommitCertificate {
            height: Height(height),
            round: Round::new(0),
            value_id: id,
            commit_signatures: Vec::new(),
        }
    }

    #[test]
    fn the_engine_proposer_of_each_round_is_the_ledger_scheduled_witness_of_that_slot() {
        let n = net(None);
        let st = n.apps[0].ledger.state();
        let interval = st.params().block_interval;
        for r in 0..8u32 {
            let slot = st.next_slot_time().plus(u64::from(r) * interval);
            let expected = st.scheduled_producer(slot).expect("slot");
            let a = n.apps[0].ctx.proposer(Height(1), Round::new(r)).expect("scheduled");
            assert_eq!(a.witness(), expected, "round {r}");
            let set = n.apps[0].validator_set();
            let chosen = mc_select(&n.apps[0].ctx, &set, r);
            assert_eq!(chosen, a, "the engine's choice, round {r}");
        }
    }

    fn mc_select(ctx: &Ctx, set: &ValidatorSet, round: u32) -> Address {
        use malachitebft_app_channel::app::types::core::Context as _;
        ctx.select_proposer(set, Height(1), Round::new(round)).address
    }

    #[test]
    fn a_block_built_by_the_scheduled_witness_is_valid_elsewhere_and_checking_changes_nothing() {
        let mut n = net(None);
        let p = proposer(&n, 0);
        let value = n.apps[p].build(Round::new(0)).expect("built");
        // Building undid the block: the proposer's head is unchanged.
        assert_eq!(n.apps[p].ledger.state().head_height(), 0);
        let other = (p + 1) % 4;
        let before = n.apps[other].ledger.state_hash();
        assert_eq!(n.apps[other].check(&value), Validity::Valid);
        assert_eq!(n.apps[other].ledger.state_hash(), before, "a check leaves the state as it was");
        assert_eq!(n.apps[other].ledger.state().head_height(), 0);
        // Round 1's block is stamped a slot later, by that slot's witness.
        let q = proposer(&n, 1);
        let later = n.apps[q].build(Round::new(1)).expect("built");
        let block = n.apps[q].decode(&later).expect("block");
        let st = n.apps[q].ledger.state();
        assert_eq!(block.timestamp, st.next_slot_time().plus(st.params().block_interval));
        assert_eq!(n.apps[other].shared.counters.invalid_proposals.load(Ordering::Relaxed), 0);
        // Another block's bytes under this block's id: voted against, or nodes would differ on
        // what the id they decided means.
        let swapped = BlockValue { id: value.id, bytes: later.bytes.clone() };
        let mut fresh = net(None);
        assert_eq!(fresh.apps[other].check(&later), Validity::Valid);
        let mut fresh2 = net(None);
        assert_eq!(fresh2.apps[other].check(&swapped), Validity::Invalid);
        let refused = &fresh2.apps[other].shared.counters.invalid_proposals;
        assert_eq!(refused.load(Ordering::Relaxed), 1, "a refusal is counted");
    }

    #[test]
    fn a_witness_not_scheduled_for_the_round_builds_nothing() {
        let mut n = net(None);
        let p = proposer(&n, 0);
        let not = (p + 1) % 4;
        assert!(n.apps[not].build(Round::new(0)).is_err());
    }

    #[test]
    fn tampered_foreign_wrong_height_and_future_blocks_are_voted_against() {
        let mut n = net(None);
        let p = proposer(&n, 0);
        let value = n.apps[p].build(Round::new(0)).expect("built");
        let other = (p + 1) % 4;
        let chain_id = n.apps[other].ledger.state().chain_id();

        // Bytes that are not the block the id names.
        let mut tampered = value.clone();
        tampered.bytes[10] ^= 1;
        assert_eq!(n.apps[other].check(&tampered), Validity::Invalid);

        // The same block signed by another witness than the scheduled one.
        let mut block = n.apps[p].decode(&value).expect("block");
        block.signature = n.witnesses[other].keys.sign(&block.id(&chain_id));
        let forged = BlockValue { id: value.id, bytes: serde_json::to_vec(&block).expect("json") };
        let mut fresh = net(None);
        assert_eq!(fresh.apps[other].check(&forged), Validity::Invalid);

        // A block for a height that is not the next one.
        let mut high = n.apps[p].decode(&value).expect("block");
        high.height = 2;
        high.signature = n.witnesses[p].keys.sign(&high.id(&chain_id));
        let id = BlockId(high.id(&chain_id).0);
        let wrong = BlockValue { id, bytes: serde_json::to_vec(&high).expect("json") };
        assert_eq!(fresh.apps[other].check(&wrong), Validity::Invalid);

        // A genesis an hour ahead: its first slot is past this node's clock bound.
        let ahead = wall_clock().plus(3_600);
        let mut future = net(Some(ahead));
        let fp = proposer(&future, 0);
        let v = future.apps[fp].build(Round::new(0)).expect("built");
        assert_eq!(future.apps[(fp + 1) % 4].check(&v), Validity::Invalid);
        // Its producer's own verdict is not asked: it votes for what it built.
    }

    #[test]
    fn only_the_scheduled_proposer_part_is_checked_and_early_parts_are_bounded() {
        let mut n = net(None);
        let p = proposer(&n, 0);
        let value = n.apps[p].build(Round::new(0)).expect("built");
        let other = (p + 1) % 4;
        let part = |height: u64, proposer: Address| ProposalPart {
            height: Height(height),
            round: Round::new(0),
            pol_round: Round::Nil,
            proposer,
            value: value.clone(),
        };
        let scheduled = Address(n.witnesses[p].witness.expect("w").0);
        let impostor = Address(n.witnesses[other].witness.expect("w").0);
        let me = &mut n.apps[other];
        // Claimed by a witness not scheduled for the round: not even looked at.
        assert!(me.received(StreamContent::Data(part(1, impostor))).is_none());
        assert!(me.values.is_empty() && me.verdicts.is_empty());
        let got = me.received(StreamContent::Data(part(1, scheduled))).expect("answered");
        assert_eq!(got.validity, Validity::Valid);
        assert!(me.received(StreamContent::Fin).is_none());
        // One height ahead: kept, up to the limit; further ahead: dropped.
        for _ in 0..EARLY_LIMIT + 5 {
            assert!(me.received(StreamContent::Data(part(2, scheduled))).is_none());
        }
        assert!(me.received(StreamContent::Data(part(3, scheduled))).is_none());
        let held: usize = me.early.values().map(Vec::len).sum();
        assert_eq!(held, EARLY_LIMIT);
        assert!(me.early.keys().all(|(h, _)| *h == 2));
    }

    #[test]
    fn a_window_of_the_last_heights_drops_one_height_as_each_joins() {
        assert_eq!(leaving(10_000, 10_000), None, "heights 1..=10 000 all kept");
        assert_eq!(leaving(10_001, 10_000), Some(1));
        assert_eq!(leaving(10_500, 10_000), Some(500));
        assert_eq!(leaving(3, 10_000), None);
    }

    #[test]
    fn a_decided_block_is_applied_once_stored_with_its_certificate_and_leaves_the_mempool() {
        let mut n = net(None);
        let p = proposer(&n, 0);
        let other = (p + 1) % 4;
        // A transfer waits in both nodes' mempools.
        let st = n.apps[p].ledger.snapshot();
        let op = sonprop_core::chain::ops::AssetTransfer {
            from: n.user.account,
            to: n.witnesses[0].account,
            asset: sonprop_core::AssetId(0),
            amount: 5,
        };
        let tx = sonprop_core::Transaction::single(st.head_time().plus(3_600), op)
            .sign(&st.chain_id(), &[&n.user.keys]);
        let digest = tx.transaction.digest(&st.chain_id());
        for i in [p, other] {
            n.apps[i].shared.mempool.add(digest, tx.clone(), st.head_time()).expect("taken");
        }
        let value = n.apps[p].build(Round::new(0)).expect("built");
        let block = n.apps[p].decode(&value).expect("block");
        assert_eq!(block.transactions.len(), 1, "the transfer is in the block");
        assert_eq!(n.apps[p].shared.mempool.len(), 1, "kept until decided");
        n.apps[other].values.insert((1, value.id), value.clone());
        // Something already seen for the next height stays; this height's is forgotten.
        let next = BlockValue { id: BlockId([2; 32]), bytes: Vec::new() };
        let part = |h: u64| ProposalPart {
            height: Height(h),
            round: Round::new(0),
            pol_round: Round::Nil,
            proposer: Address(0),
            value: next.clone(),
        };
        let me = &mut n.apps[other];
        me.values.insert((2, next.id), next.clone());
        me.built.insert((1, Round::new(0)), next.clone());
        me.built.insert((2, Round::new(0)), next.clone());
        me.early.insert((1, Round::new(0)), vec![part(1)]);
        me.early.insert((2, Round::new(0)), vec![part(2)]);
        n.apps[other].commit(certificate(1, value.id)).expect("committed");
        let me = &n.apps[other];
        assert!(me.values.contains_key(&(2, next.id)) && !me.values.contains_key(&(1, value.id)));
        assert!(me.built.contains_key(&(2, Round::new(0))));
        assert!(!me.built.contains_key(&(1, Round::new(0))));
        assert!(me.early.contains_key(&(2, Round::new(0))));
        assert!(!me.early.contains_key(&(1, Round::new(0))));
        assert_eq!(n.apps[other].ledger.state().head_height(), 1);
        assert!(n.apps[other].shared.mempool.is_empty(), "an included transaction leaves");
        assert_eq!(
            n.apps[other].ledger.state().balance(n.user.account, sonprop_core::AssetId(0)),
            995
        );
        let head = n.apps[other].shared.head();
        assert_eq!(head.height, 1);
        assert_eq!(head.state_hash, n.apps[other].ledger.state_hash());
        let raw = n.apps[other].raw_decided(1).expect("stored");
        assert_eq!(raw.certificate.value_id, value.id);
        assert_eq!(raw.value_bytes.as_ref(), value.bytes.as_slice());
        assert!(n.apps[other].raw_decided(2).is_none());
        // The same decision again is refused by the ledger (the block is no longer next).
        n.apps[other].values.insert((1, value.id), value.clone());
        assert!(n.apps[other].commit(certificate(1, value.id)).is_err());
        assert_eq!(n.apps[other].ledger.state().head_height(), 1);
        // A decision for an unknown value is refused, and nothing changes.
        let before = n.apps[other].ledger.state_hash();
        assert!(n.apps[other].commit(certificate(2, BlockId([7; 32]))).is_err());
        assert_eq!(n.apps[other].ledger.state_hash(), before);
    }
}
