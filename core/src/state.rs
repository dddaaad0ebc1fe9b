//! The chain state: globals and tables, their indexes, and the read-only queries that triggers,
//! validators and evaluators share.
//!
//! A [`State`] is cheap to clone (every table is behind an `Arc`), so the ledger hands the
//! scheduler a snapshot after each block. Mutation happens only inside the ledger.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::crypto::{Digest, DigestWriter, PublicKey};
use crate::ids::{AccountId, ProposalId, SonId, SonProposalId, VestingId, WitnessId};
use crate::objects::{Account, Authority, Son, SonStatus, VestingBalance, Witness};
use crate::params::{ChainParameters, ThresholdPolicy};
use crate::proposal::{Proposal, SonProposalRecord, Subject};
use crate::registry::Registry;
use crate::table::{Table, TableIndex};
use crate::time::Timestamp;

/// How deep account authorities nest (an account authorised by an account authorised by keys).
pub const MAX_AUTHORITY_DEPTH: usize = 2;

/// Chain-wide values: head block, parameters, the active witness and elected SON sets, and id
/// counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Globals {
    /// Digest of the genesis: binds signatures to this chain.
    pub chain_id: Digest,
    /// Time of the genesis; block slots count from here.
    pub genesis_time: Timestamp,
    /// The chain parameters.
    pub params: ChainParameters,
    /// Height of the head block (0 = genesis).
    pub head_height: u64,
    /// Timestamp of the head block (during block application: the block being applied).
    pub head_time: Timestamp,
    /// Id of the head block (the chain id at genesis).
    pub head_id: Digest,
    /// The active witnesses, in id order; the per-round production order is a shuffle of these.
    pub active_witnesses: Vec<WitnessId>,
    /// The elected SONs.
    pub elected_sons: BTreeSet<SonId>,
    /// The round the cached production order is for.
    pub schedule_round: u64,
    /// The production order of `schedule_round` (a cache: recomputed once per round).
    pub schedule: Vec<WitnessId>,
    /// The next proposal instance number.
    pub next_proposal: u64,
    /// The next son proposal record instance number.
    pub next_son_proposal: u64,
    /// The next vesting balance instance number.
    pub next_vesting: u64,
}

/// SON indexes, partitioned by status: by `last_active_timestamp` and by
/// `last_down_timestamp`. "Which active SONs are silent" and "which SONs in maintenance are due"
/// are range queries over their own status's partition, so they cost the same however many
/// inactive or deregistered SONs the chain has accumulated.
#[derive(Debug, Clone, Default)]
pub struct SonIndex {
    by_active: [BTreeSet<(Timestamp, SonId)>; SonStatus::ALL.len()],
    by_down: [BTreeSet<(Timestamp, SonId)>; SonStatus::ALL.len()],
    by_owner: BTreeMap<AccountId, SonId>,
}

impl TableIndex<SonId, Son> for SonIndex {
    fn insert(&mut self, id: &SonId, s: &Son) {
        let p = s.status.index();
        self.by_active[p].insert((s.statistics.last_active_timestamp, *id));
        self.by_down[p].insert((s.statistics.last_down_timestamp, *id));
        self.by_owner.insert(s.owner, *id);
    }
    fn remove(&mut self, id: &SonId, s: &Son) {
        let p = s.status.index();
        self.by_active[p].remove(&(s.statistics.last_active_timestamp, *id));
        self.by_down[p].remove(&(s.statistics.last_down_timestamp, *id));
        if self.by_owner.get(&s.owner) == Some(id) {
            self.by_owner.remove(&s.owner);
        }
    }
}

/// Proposals by expiration time.
#[derive(Debug, Clone, Default)]
pub struct ProposalIndex {
    by_expiration: BTreeSet<(Timestamp, ProposalId)>,
}

impl TableIndex<ProposalId, Proposal> for ProposalIndex {
    fn insert(&mut self, id: &ProposalId, p: &Proposal) {
        self.by_expiration.insert((p.expiration_time, *id));
    }
    fn remove(&mut self, id: &ProposalId, p: &Proposal) {
        self.by_expiration.remove(&(p.expiration_time, *id));
    }
}

/// Son proposal records by proposal, by SON and by `(kind, subject)`.
#[derive(Debug, Clone, Default)]
pub struct RecordIndex {
    by_proposal: BTreeSet<(ProposalId, SonProposalId)>,
    by_son: BTreeSet<(SonId, SonProposalId)>,
    /// Kind, then subject: looked up by `&str` and `&Subject` without allocating.
    by_kind_subject: BTreeMap<String, BTreeMap<Subject, SonProposalId>>,
}

impl TableIndex<SonProposalId, SonProposalRecord> for RecordIndex {
    fn insert(&mut self, id: &SonProposalId, r: &SonProposalRecord) {
        self.by_proposal.insert((r.proposal, *id));
        if let Some(son) = r.subject.son() {
            self.by_son.insert((son, *id));
        }
        self.by_kind_subject.entry(r.kind.clone()).or_default().insert(r.subject.clone(), *id);
    }
    fn remove(&mut self, id: &SonProposalId, r: &SonProposalRecord) {
        self.by_proposal.remove(&(r.proposal, *id));
        if let Some(son) = r.subject.son() {
            self.by_son.remove(&(son, *id));
        }
        if let Some(by_subject) = self.by_kind_subject.get_mut(r.kind.as_str()) {
            if by_subject.get(&r.subject) == Some(id) {
                by_subject.remove(&r.subject);
            }
            if by_subject.is_empty() {
                self.by_kind_subject.remove(r.kind.as_str());
            }
        }
    }
}

/// Seen transaction ids by expiration, so expired ones are pruned by a range query.
#[derive(Debug, Clone, Default)]
pub struct TxIndex {
    by_expiration: BTreeSet<(Timestamp, Digest)>,
}

impl TableIndex<Digest, Timestamp> for TxIndex {
    fn insert(&mut self, id: &Digest, exp: &Timestamp) {
        self.by_expiration.insert((*exp, *id));
    }
    fn remove(&mut self, id: &Digest, exp: &Timestamp) {
        self.by_expiration.remove(&(*exp, *id));
    }
}

/// The whole chain state.
#[derive(Clone)]
pub struct State {
    pub(crate) registry: Arc<Registry>,
    pub(crate) globals: Arc<Globals>,
    pub(crate) accounts: Table<AccountId, Account>,
    pub(crate) witnesses: Table<WitnessId, Witness>,
    pub(crate) sons: Table<SonId, Son, SonIndex>,
    pub(crate) proposals: Table<ProposalId, Proposal, ProposalIndex>,
    pub(crate) son_proposals: Table<SonProposalId, SonProposalRecord, RecordIndex>,
    pub(crate) vesting: Table<VestingId, VestingBalance>,
    pub(crate) transactions: Table<Digest, Timestamp, TxIndex>,
    /// Operation crates' own records, by `(kind, key)`, as canonical JSON.
    pub(crate) extensions: Table<(String, String), String>,
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

impl State {
    /// A state with these globals and no rows.
    pub(crate) fn empty(registry: Arc<Registry>, globals: Globals) -> State {
        State {
            registry,
            globals: Arc::new(globals),
            accounts: Table::default(),
            witnesses: Table::default(),
            sons: Table::default(),
            proposals: Table::default(),
            son_proposals: Table::default(),
            vesting: Table::default(),
            transactions: Table::default(),
            extensions: Table::default(),
        }
    }

    /// The registry the ledger runs with (not part of the state hash).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
    /// Chain-wide values.
    pub fn globals(&self) -> &Globals {
        &self.globals
    }
    /// The chain parameters.
    pub fn params(&self) -> &ChainParameters {
        &self.globals.params
    }
    /// The chain id.
    pub fn chain_id(&self) -> Digest {
        self.globals.chain_id
    }
    /// Head block time; while a block is being applied, that block's time ("now" on chain).
    pub fn head_time(&self) -> Timestamp {
        self.globals.head_time
    }
    /// Head block height.
    pub fn head_height(&self) -> u64 {
        self.globals.head_height
    }

    /// An account.
    pub fn account(&self, id: AccountId) -> Option<&Account> {
        self.accounts.get(&id)
    }
    /// All accounts.
    pub fn accounts(&self) -> &Table<AccountId, Account> {
        &self.accounts
    }
    /// A witness.
    pub fn witness(&self, id: WitnessId) -> Option<&Witness> {
        self.witnesses.get(&id)
    }
    /// All witnesses.
    pub fn witnesses(&self) -> &Table<WitnessId, Witness> {
        &self.witnesses
    }
    /// A SON.
    pub fn son(&self, id: SonId) -> Option<&Son> {
        self.sons.get(&id)
    }
    /// All SONs, with their indexes.
    pub fn sons(&self) -> &Table<SonId, Son, SonIndex> {
        &self.sons
    }
    /// The SON operated by `owner`.
    pub fn son_by_owner(&self, owner: AccountId) -> Option<&Son> {
        self.sons.index().by_owner.get(&owner).and_then(|id| self.sons.get(id))
    }
    /// A live proposal.
    pub fn proposal(&self, id: ProposalId) -> Option<&Proposal> {
        self.proposals.get(&id)
    }
    /// All live proposals.
    pub fn proposals(&self) -> &Table<ProposalId, Proposal, ProposalIndex> {
        &self.proposals
    }
    /// All son proposal records.
    pub fn son_proposals(&self) -> &Table<SonProposalId, SonProposalRecord, RecordIndex> {
        &self.son_proposals
    }
    /// All vesting balances.
    pub fn vesting_balances(&self) -> &Table<VestingId, VestingBalance> {
        &self.vesting
    }
    /// An operation crate's record stored under `(kind, key)` by
    /// [`ApplyContext::put_extension`](crate::ApplyContext::put_extension), decoded as `T`.
    /// `None` if absent or not a `T`.
    pub fn extension<T: serde::de::DeserializeOwned>(&self, kind: &str, key: &str) -> Option<T> {
        let raw = self.extensions.get(&(kind.to_owned(), key.to_owned()))?;
        serde_json::from_str(raw).ok()
    }

    /// All operation crates' records, by `(kind, key)`, as JSON.
    pub fn extensions(&self) -> &Table<(String, String), String> {
        &self.extensions
    }

    /// Whether the SON is in the elected set.
    pub fn is_elected(&self, son: SonId) -> bool {
        self.globals.elected_sons.contains(&son)
    }

    /// SONs with `status` whose last heartbeat is strictly before `before`, oldest first.
    /// Cost: O(log m + what it returns), `m` the number of SONs with that status.
    pub fn sons_inactive_since(
        &self,
        status: SonStatus,
        before: Timestamp,
    ) -> impl Iterator<Item = &Son> + '_ {
        self.sons.index().by_active[status.index()]
            .range(..(before, SonId(0)))
            .filter_map(|(_, id)| self.sons.get(id))
    }

    /// SONs with `status` whose `last_down_timestamp` is at or before `at_or_before`, oldest
    /// first. Cost: O(log m + what it returns), `m` the number of SONs with that status.
    pub fn sons_down_since(
        &self,
        status: SonStatus,
        at_or_before: Timestamp,
    ) -> impl Iterator<Item = &Son> + '_ {
        self.sons.index().by_down[status.index()]
            .range(..=(at_or_before, SonId(u64::MAX)))
            .filter_map(|(_, id)| self.sons.get(id))
    }

    /// Like [`State::sons_inactive_since`], from the index alone: `(last_active_timestamp, id)`
    /// pairs, without reading the SON rows.
    pub fn son_ids_inactive_since(
        &self,
        status: SonStatus,
        before: Timestamp,
    ) -> impl Iterator<Item = (Timestamp, SonId)> + '_ {
        self.sons.index().by_active[status.index()].range(..(before, SonId(0))).copied()
    }

    /// Like [`State::sons_down_since`], from the index alone: `(last_down_timestamp, id)` pairs,
    /// without reading the SON rows.
    pub fn son_ids_down_since(
        &self,
        status: SonStatus,
        at_or_before: Timestamp,
    ) -> impl Iterator<Item = (Timestamp, SonId)> + '_ {
        self.sons.index().by_down[status.index()].range(..=(at_or_before, SonId(u64::MAX))).copied()
    }

    /// How many SONs have `status` (from the index: O(1)).
    pub fn son_count(&self, status: SonStatus) -> usize {
        self.sons.index().by_active[status.index()].len()
    }

    /// The live proposal of `kind` about `subject`, if there is one.
    pub fn live_proposal(&self, kind: &str, subject: &Subject) -> Option<ProposalId> {
        let rid = self.son_proposals.index().by_kind_subject.get(kind)?.get(subject)?;
        self.son_proposals.get(rid).map(|r| r.proposal)
    }

    /// The son proposal records of a proposal.
    pub fn records_of_proposal(
        &self,
        proposal: ProposalId,
    ) -> impl Iterator<Item = &SonProposalRecord> + '_ {
        self.son_proposals
            .index()
            .by_proposal
            .range((proposal, SonProposalId(0))..=(proposal, SonProposalId(u64::MAX)))
            .filter_map(|(_, rid)| self.son_proposals.get(rid))
    }

    /// The son proposal records about a SON.
    pub fn records_of_son(&self, son: SonId) -> impl Iterator<Item = &SonProposalRecord> + '_ {
        self.son_proposals
            .index()
            .by_son
            .range((son, SonProposalId(0))..=(son, SonProposalId(u64::MAX)))
            .filter_map(|(_, rid)| self.son_proposals.get(rid))
    }

    /// Proposals whose expiration time is at or before `t`, soonest first.
    pub fn proposals_expiring_by(&self, t: Timestamp) -> impl Iterator<Item = ProposalId> + '_ {
        self.proposals.index().by_expiration.range(..=(t, ProposalId(u64::MAX))).map(|(_, id)| *id)
    }

    pub(crate) fn transactions_expiring_by(&self, t: Timestamp) -> Vec<Digest> {
        let idx = &self.transactions.index().by_expiration;
        idx.range(..=(t, Digest([0xff; 32]))).map(|(_, id)| *id).collect()
    }

    /// Whether `account` operates an active witness.
    pub fn is_active_witness_account(&self, account: AccountId) -> bool {
        self.globals
            .active_witnesses
            .iter()
            .filter_map(|w| self.witnesses.get(w))
            .any(|w| w.account == account)
    }

    /// The SON operated by `account`, if it is elected.
    pub fn elected_son_of(&self, account: AccountId) -> Option<&Son> {
        self.son_by_owner(account).filter(|s| self.is_elected(s.id))
    }

    /// Whether a SON's last heartbeat is recent enough for it to count as live:
    /// `head_time - last_active_timestamp < son_down_time`.
    pub fn is_live(&self, son: &Son) -> bool {
        self.head_time().since(son.statistics.last_active_timestamp) < self.params().son_down_time
    }

    // ----- authorities -----

    /// The SON consensus authority: every elected SON's owner is a member; the threshold policy
    /// decides who carries weight. `floor(2N/3) + 1` of the `N` counted SONs must approve; under
    /// the `live` policy, with fewer than `min_son_count` live SONs the authority cannot be met.
    pub fn son_consensus_authority(&self) -> Authority {
        let policy = self.params().threshold_policy;
        let mut auth = Authority::default();
        let mut counted: u32 = 0;
        for son in self.globals.elected_sons.iter().filter_map(|id| self.sons.get(id)) {
            let counts = match policy {
                ThresholdPolicy::Elected => true,
                ThresholdPolicy::Live => self.is_live(son),
            };
            counted += u32::from(counts);
            auth.account_auths.insert(son.owner, u16::from(counts));
        }
        auth.weight_threshold = counted * 2 / 3 + 1;
        if policy == ThresholdPolicy::Live && counted < self.params().min_son_count {
            auth.weight_threshold = u32::MAX;
        }
        auth
    }

    /// The active authority of an account (computed for the SON consensus account).
    pub fn authority(&self, account: AccountId) -> Option<Cow<'_, Authority>> {
        if account == AccountId::SON_CONSENSUS {
            Some(Cow::Owned(self.son_consensus_authority()))
        } else {
            self.accounts.get(&account).map(|a| Cow::Borrowed(&a.active))
        }
    }

    fn satisfied(
        &self,
        account: AccountId,
        depth: usize,
        approved: &dyn Fn(AccountId) -> bool,
        signed: &dyn Fn(&PublicKey) -> bool,
    ) -> bool {
        if approved(account) {
            return true;
        }
        let Some(auth) = self.authority(account) else {
            return false;
        };
        let threshold = u64::from(auth.weight_threshold);
        if threshold == 0 {
            return false;
        }
        let mut weight: u64 = 0;
        for (key, w) in &auth.key_auths {
            if signed(key) {
                weight += u64::from(*w);
            }
        }
        if depth < MAX_AUTHORITY_DEPTH {
            for (acc, w) in &auth.account_auths {
                if weight >= threshold {
                    break;
                }
                if *w > 0 && self.satisfied(*acc, depth + 1, approved, signed) {
                    weight += u64::from(*w);
                }
            }
        }
        weight >= threshold
    }

    /// Whether signatures by `keys` satisfy `account`'s authority.
    pub fn keys_satisfy(&self, account: AccountId, keys: &BTreeSet<PublicKey>) -> bool {
        self.satisfied(account, 0, &|_| false, &|k| keys.contains(k))
    }

    /// Whether the approvals of `approvals` satisfy `account`'s authority.
    pub fn approvals_satisfy(&self, account: AccountId, approvals: &BTreeSet<AccountId>) -> bool {
        self.satisfied(account, 0, &|a| approvals.contains(&a), &|_| false)
    }

    /// Whether `approver` may approve on behalf of `required`: it is that account, or a member of
    /// its authority (recursively, to [`MAX_AUTHORITY_DEPTH`]).
    pub fn is_member(&self, required: AccountId, approver: AccountId) -> bool {
        fn walk(s: &State, acc: AccountId, who: AccountId, depth: usize) -> bool {
            if acc == who {
                return true;
            }
            if depth >= MAX_AUTHORITY_DEPTH {
                return false;
            }
            if acc == AccountId::SON_CONSENSUS {
                // Its members are the elected SONs' owners, whatever the threshold policy
                // counts: answer from the owner index instead of building the authority (the
                // scheduler asks this for every live proposal on every node after every block).
                let mut owners = s.globals.elected_sons.iter().filter_map(|id| s.sons.get(id));
                return owners.any(|son| walk(s, son.owner, who, depth + 1));
            }
            s.authority(acc)
                .is_some_and(|a| a.account_auths.keys().any(|m| walk(s, *m, who, depth + 1)))
        }
        walk(self, required, approver, 0)
    }

    /// Whether a proposal's approvals satisfy all its required authorities now.
    pub fn is_authorized(&self, proposal: &Proposal) -> bool {
        proposal.required_approvals.iter().all(|a| self.approvals_satisfy(*a, &proposal.approvals))
    }

    /// Whether `approver` may add its approval to `proposal`.
    pub fn may_approve(&self, proposal: &Proposal, approver: AccountId) -> bool {
        proposal.required_approvals.iter().any(|r| self.is_member(*r, approver))
    }

    // ----- the witness schedule -----

    /// The slot number of time `t` (slots count block intervals from genesis), if `t` is a slot.
    pub fn slot_at(&self, t: Timestamp) -> Option<u64> {
        let g = self.globals.genesis_time;
        let iv = self.params().block_interval;
        (t > g && t.since(g) % iv == 0).then(|| t.since(g) / iv)
    }

    /// The witness scheduled to produce the block at slot time `t`.
    ///
    /// Each round of `n` slots uses a deterministic shuffle of the active witnesses, seeded by the
    /// chain id and the round number, so no witness can choose its position.
    pub fn scheduled_producer(&self, t: Timestamp) -> Option<WitnessId> {
        let slot = self.slot_at(t)?;
        let ws = &self.globals.active_witnesses;
        let n = ws.len() as u64;
        if n == 0 {
            return None;
        }
        let round = (slot - 1) / n;
        let pos = ((slot - 1) % n) as usize;
        if round == self.globals.schedule_round && self.globals.schedule.len() == ws.len() {
            return Some(self.globals.schedule[pos]);
        }
        Some(round_order(ws, &self.globals.chain_id, round)[pos])
    }

    /// The round of slot time `t`.
    pub(crate) fn round_at(&self, t: Timestamp) -> Option<u64> {
        let n = self.globals.active_witnesses.len() as u64;
        let slot = self.slot_at(t)?;
        (n > 0).then(|| (slot - 1) / n)
    }

    /// Seconds in one complete witness cycle: `block_interval × active witness count`.
    pub fn witness_cycle_seconds(&self) -> u64 {
        self.params().block_interval * self.globals.active_witnesses.len() as u64
    }

    /// A lifetime of `cycles` complete witness cycles, capped by `maximum_proposal_lifetime`.
    pub fn witness_cycles_lifetime(&self, cycles: u32) -> u64 {
        (self.witness_cycle_seconds() * u64::from(cycles))
            .min(self.params().maximum_proposal_lifetime)
    }

    /// The slot time after the head block: when the next block is due.
    pub fn next_slot_time(&self) -> Timestamp {
        let iv = self.params().block_interval;
        let g = self.globals.genesis_time;
        let h = self.head_time().max(g);
        g.plus((h.since(g) / iv + 1) * iv)
    }

    // ----- the state hash -----

    /// A deterministic digest of the whole state: globals and every table, in key order, in a
    /// canonical JSON encoding. Indexes are derived and not hashed; neither is the registry.
    pub fn hash(&self) -> Digest {
        use std::io::Write;
        let mut w = DigestWriter::new();
        let mut part =
            |name: &str, f: &mut dyn FnMut(&mut DigestWriter) -> serde_json::Result<()>| {
                let _ = write!(w, "\n{name}:");
                f(&mut w).expect("state serialises");
            };
        part("globals", &mut |w| serde_json::to_writer(w, &*self.globals));
        part("accounts", &mut |w| serde_json::to_writer(w, self.accounts.rows()));
        part("witnesses", &mut |w| serde_json::to_writer(w, self.witnesses.rows()));
        part("sons", &mut |w| serde_json::to_writer(w, self.sons.rows()));
        part("proposals", &mut |w| serde_json::to_writer(w, self.proposals.rows()));
        part("son_proposals", &mut |w| serde_json::to_writer(w, self.son_proposals.rows()));
        part("vesting", &mut |w| serde_json::to_writer(w, self.vesting.rows()));
        part("transactions", &mut |w| serde_json::to_writer(w, self.transactions.rows()));
        w.finish()
    }
}

/// The production order of one round: a Fisher–Yates shuffle driven by SHA-256 of
/// `(chain id, round)`, expanded with splitmix64.
pub(crate) fn round_order(
    witnesses: &[WitnessId],
    chain_id: &Digest,
    round: u64,
) -> Vec<WitnessId> {
    let mut seed_bytes = Vec::with_capacity(40);
    seed_bytes.extend_from_slice(&chain_id.0);
    seed_bytes.extend_from_slice(&round.to_le_bytes());
    let d = Digest::of(&seed_bytes);
    let mut x = u64::from_le_bytes(d.0[..8].try_into().expect("8 bytes"));
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut order = witnesses.to_vec();
    for i in (1..order.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}
