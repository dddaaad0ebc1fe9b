//! The read-only queries over the [`State`] that triggers, validators and evaluators share,
//! typed reads of operation crates' tables and parameters, and the state hash.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use crate::chain::crypto::{Digest, DigestWriter, PublicKey};
use crate::chain::ids::{
    AccountId, AssetId, ProposalId, SonId, SonProposalId, Subject, VestingId, WitnessId,
};
use crate::chain::indexes::{RecordIndex, RowIndex, SonIndex};
use crate::chain::model::{
    ChainRegistry, Globals, KindExplanation, PluginTable, Proposal, ProposalIndex, State,
};
use crate::chain::objects::{
    Account, Asset, Authority, Son, SonProposalRecord, SonStatus, VestingBalance, Witness,
};
use crate::chain::params::{ChainParameters, SonQuorum, ThresholdPolicy};
use crate::chain::schema::{Index, Parameter, TableKey, TableSchema};
use crate::chain::table::Table;
use crate::chain::time::Timestamp;

/// How deep account authorities nest (an account authorised by an account authorised by keys).
pub const MAX_AUTHORITY_DEPTH: usize = 2;

impl crate::chain::schema::GenesisView for State {
    fn has_account(&self, id: AccountId) -> bool {
        self.account(id).is_some()
    }
    fn asset(&self, id: AssetId) -> Option<&crate::chain::objects::Asset> {
        State::asset(self, id)
    }
    fn has_son(&self, id: SonId) -> bool {
        self.son(id).is_some()
    }
}

impl State {
    /// A state with these globals, no rows, and an empty table for every plugin table the
    /// registry declares.
    pub(crate) fn empty(registry: Arc<ChainRegistry>, globals: Globals) -> State {
        let plugin = Arc::new(
            registry
                .tables()
                .map(|d| (d.name, PluginTable::with_index(RowIndex::new(d.index))))
                .collect(),
        );
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
            assets: Table::default(),
            balances: Table::default(),
            plugin,
            plugin_generation: 0,
        }
    }

    /// The on-chain registry the ledger runs with (not part of the state hash).
    pub fn registry(&self) -> &ChainRegistry {
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
    /// An asset.
    pub fn asset(&self, id: AssetId) -> Option<&Asset> {
        self.assets.get(&id)
    }
    /// All assets.
    pub fn assets(&self) -> &Table<AssetId, Asset> {
        &self.assets
    }
    /// The asset with this symbol, if there is one.
    pub fn asset_by_symbol(&self, symbol: &str) -> Option<&Asset> {
        self.assets.iter().map(|(_, a)| a).find(|a| a.symbol == symbol)
    }
    /// What `account` holds of `asset` (0 if nothing).
    pub fn balance(&self, account: AccountId, asset: AssetId) -> u64 {
        self.balances.get(&(account, asset)).copied().unwrap_or(0)
    }
    /// Every non-zero balance, by `(account, asset)`.
    pub fn balances(&self) -> &Table<(AccountId, AssetId), u64> {
        &self.balances
    }

    /// An operation crate's parameter: the genesis' value, or its default.
    pub fn param<P: Parameter>(&self) -> P::Value {
        self.globals
            .plugin_params
            .get(P::NAME)
            .and_then(|v| serde::Deserialize::deserialize(v).ok())
            .unwrap_or_else(P::default_value)
    }

    /// An operation crate's table, by name (for inspection tools; typed code uses
    /// [`State::row`] and friends).
    pub fn plugin_table(&self, name: &str) -> Option<&PluginTable> {
        self.plugin.get(name)
    }
    /// A number that changes with every write to any operation crate's table, to one no
    /// state of this process has had (0: every table empty as built). Equal numbers mean every
    /// operation crate's table is as it was: a node-local memo of a function of those tables
    /// alone (a trigger's `wake`, say) can key on it and skip even the tables' look-ups.
    /// Node-local, like [`Table::generation`](crate::chain::table::Table::generation): not part
    /// of the state or its hash.
    pub fn plugin_generation(&self) -> u64 {
        self.plugin_generation
    }
    /// Every operation crate's table, by name.
    pub fn plugin_tables(&self) -> impl Iterator<Item = (&'static str, &PluginTable)> + '_ {
        self.plugin.iter().map(|(n, t)| (*n, t))
    }

    /// The row of table `T` at `key`.
    pub fn row<T: TableSchema>(&self, key: &T::Key) -> Option<&T::Value> {
        self.plugin.get(T::NAME)?.get(&key.key_bytes()).and_then(|r| r.as_any().downcast_ref())
    }
    /// Every row of table `T`, in key order.
    pub fn rows<T: TableSchema>(&self) -> impl Iterator<Item = (T::Key, &T::Value)> + '_ {
        self.plugin.get(T::NAME).into_iter().flat_map(|t| t.iter()).filter_map(typed_row::<T>)
    }
    /// The row of table `T` with the greatest key (for counters: the next id is its key + 1).
    pub fn last_row<T: TableSchema>(&self) -> Option<(T::Key, &T::Value)> {
        self.plugin.get(T::NAME)?.iter().next_back().and_then(typed_row::<T>)
    }
    /// The rows of table `T` with keys in `[from, to)`, in key order.
    pub fn row_range<T: TableSchema>(
        &self,
        from: &T::Key,
        to: &T::Key,
    ) -> impl Iterator<Item = (T::Key, &T::Value)> + '_ {
        let range = (Bound::Included(from.key_bytes()), Bound::Excluded(to.key_bytes()));
        self.plugin
            .get(T::NAME)
            .into_iter()
            .flat_map(move |t| t.rows().range(range.clone()))
            .filter_map(typed_row::<T>)
    }
    /// The rows of table `T` whose index entry in `index` is exactly `key`, by primary key.
    pub fn rows_by<'a, T: TableSchema, K: TableKey>(
        &'a self,
        index: &Index<T, K>,
        key: &K,
    ) -> impl Iterator<Item = (T::Key, &'a T::Value)> + 'a {
        let ik = key.key_bytes();
        self.index_scan::<T>(index.name, ik.clone(), move |k| *k == ik)
    }
    /// The rows of table `T` whose index entry in `index` is in `[from, to)`, in index order.
    pub fn rows_by_range<'a, T: TableSchema, K: TableKey>(
        &'a self,
        index: &Index<T, K>,
        from: &K,
        to: &K,
    ) -> impl Iterator<Item = (T::Key, &'a T::Value)> + 'a {
        let end = to.key_bytes();
        self.index_scan::<T>(index.name, from.key_bytes(), move |k| *k < end)
    }
    fn index_scan<'a, T: TableSchema>(
        &'a self,
        name: &'static str,
        start: Vec<u8>,
        keep: impl Fn(&Vec<u8>) -> bool + 'a,
    ) -> impl Iterator<Item = (T::Key, &'a T::Value)> + 'a {
        let table = self.plugin.get(T::NAME);
        table
            .into_iter()
            .flat_map(move |t| t.index().entries.range((name, start.clone(), Vec::new())..))
            .take_while(move |(n, ik, _)| *n == name && keep(ik))
            .filter_map(move |(_, _, pk)| {
                let row = table?.get(pk)?;
                typed_row::<T>((pk, row))
            })
    }

    /// The first guard on `kind` that defers a proposal about `subject`, with its reason.
    pub fn deferral(&self, kind: &str, subject: &Subject) -> Option<(&'static str, String)> {
        self.registry.deferral(self, kind, subject)
    }

    /// What the chain says about proposals of `kind` for `subject` at the head block: the
    /// kind's readiness by its own rule (none when the kind does not say, or says the subject
    /// is not one it is about), the guard that defers it, and the live proposal. `None` for a
    /// kind that is not registered as proposable.
    pub fn explain(&self, kind: &str, subject: &Subject) -> Option<KindExplanation> {
        let d = self.registry.operation(kind)?;
        let policy = d.proposal?;
        Some(KindExplanation {
            kind: d.name,
            readiness: policy
                .readiness
                .map(|f| f(self, subject))
                .filter(|r| *r != crate::chain::model::Readiness::NotAbout),
            deferred: self.deferral(kind, subject),
            live: self.live_proposal(kind, subject),
        })
    }

    /// The elected SON whose node proposes for SON-watched kinds after the block at `height`:
    /// a rotation over the live elected SONs by height, so SONs take turns instead of racing.
    pub fn son_on_duty(&self, height: u64) -> Option<SonId> {
        let live: Vec<SonId> = self
            .globals
            .elected_sons
            .iter()
            .filter(|id| self.sons.get(id).is_some_and(|s| self.is_live(s)))
            .copied()
            .collect();
        (!live.is_empty()).then(|| live[(height % live.len() as u64) as usize])
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

    /// The live proposals that carry a single operation of `kind` (what its validator reviews),
    /// in id order, from the index.
    pub fn single_kind_proposals(&self, kind: &str) -> impl Iterator<Item = ProposalId> + '_ {
        self.proposals.index().single_by_kind.get(kind).into_iter().flatten().copied()
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
        self.son_consensus().0
    }

    /// How many approvals the SON consensus authority needs now, and of how many SONs: what
    /// [`State::son_consensus_authority`] decides, for people (why a SON proposal expired).
    pub fn son_quorum(&self) -> SonQuorum {
        self.son_consensus().1
    }

    fn son_consensus(&self) -> (Authority, SonQuorum) {
        let params = self.params();
        let mut q = SonQuorum {
            policy: params.threshold_policy,
            elected: 0,
            counted: 0,
            min_son_count: params.min_son_count,
        };
        let mut auth = Authority::default();
        for son in self.globals.elected_sons.iter().filter_map(|id| self.sons.get(id)) {
            let counts = match q.policy {
                ThresholdPolicy::Elected => true,
                ThresholdPolicy::Live => self.is_live(son),
            };
            q.elected += 1;
            q.counted += u32::from(counts);
            auth.account_auths.insert(son.owner, u16::from(counts));
        }
        auth.weight_threshold = q.needed().unwrap_or(u32::MAX);
        (auth, q)
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

    /// Whether `key` carries weight in `account`'s authority, directly or through member
    /// accounts (to [`MAX_AUTHORITY_DEPTH`]): a signature by it can count towards `account`.
    pub fn key_counts_for(&self, account: AccountId, key: &PublicKey) -> bool {
        fn walk(s: &State, acc: AccountId, key: &PublicKey, depth: usize) -> bool {
            let Some(auth) = s.authority(acc) else { return false };
            if auth.key_auths.get(key).is_some_and(|w| *w > 0) {
                return true;
            }
            depth < MAX_AUTHORITY_DEPTH
                && auth.account_auths.keys().any(|m| walk(s, *m, key, depth + 1))
        }
        walk(self, account, key, 0)
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
        (t > g && t.since(g).is_multiple_of(iv)).then(|| t.since(g) / iv)
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

    /// Every table's name: the core tables, then each operation crate's as `plugin:<name>`.
    /// The state hash and the store cover each of them (a test checks it, table by table).
    pub fn table_names(&self) -> Vec<String> {
        let plugin = self.plugin.keys().map(|n| format!("plugin:{n}"));
        TABLE_ORDER.iter().map(|s| (*s).to_owned()).chain(plugin).collect()
    }

    /// How many rows one table has, by name (see [`State::table_names`]).
    pub fn table_len(&self, name: &str) -> Option<usize> {
        Some(match name {
            "accounts" => self.accounts.len(),
            "witnesses" => self.witnesses.len(),
            "sons" => self.sons.len(),
            "proposals" => self.proposals.len(),
            "son_proposals" => self.son_proposals.len(),
            "vesting" => self.vesting.len(),
            "transactions" => self.transactions.len(),
            "assets" => self.assets.len(),
            "balances" => self.balances.len(),
            _ => self.plugin.get(name.strip_prefix("plugin:")?)?.len(),
        })
    }

    /// One table's rows as canonical JSON, by name (see [`State::table_names`]); `None` for an
    /// unknown name. For inspection tools and tests.
    pub fn table_dump(&self, name: &str) -> Option<String> {
        fn j<T: serde::Serialize>(v: &T) -> Option<String> {
            serde_json::to_string(v).ok()
        }
        match name {
            "accounts" => j(self.accounts.rows()),
            "witnesses" => j(self.witnesses.rows()),
            "sons" => j(self.sons.rows()),
            "proposals" => j(self.proposals.rows()),
            "son_proposals" => j(self.son_proposals.rows()),
            "vesting" => j(self.vesting.rows()),
            "transactions" => j(self.transactions.rows()),
            "assets" => j(self.assets.rows()),
            "balances" => j(&balance_rows(&self.balances)),
            _ => {
                let t = self.plugin.get(name.strip_prefix("plugin:")?)?;
                let rows: Vec<(String, String)> = t
                    .iter()
                    .map(|(k, r)| {
                        (crate::chain::crypto::hex(k), String::from_utf8_lossy(&r.to_json()).into())
                    })
                    .collect();
                j(&rows)
            }
        }
    }

    /// A deterministic digest of the whole state: globals, every core table and every operation
    /// crate's table, in the canonical binary encoding ([`crate::chain::canon`]). Each table is
    /// digested on its own (SHA-256 of its rows in key order), and the state digest is SHA-256
    /// over a version tag, the globals' encoding, and each table's name and digest. Indexes are
    /// derived and not hashed; neither is the registry.
    pub fn hash(&self) -> Digest {
        self.hash_with(&mut HashCache::default())
    }

    /// [`State::hash`], reusing from `cache` the digests of tables unchanged since it last saw
    /// them (by [`Table::generation`]): the same digest, with only the tables a block wrote
    /// encoded and hashed again.
    pub fn hash_with(&self, cache: &mut HashCache) -> Digest {
        use crate::chain::canon;
        let HashCache { core, plugin, scratch } = cache;
        // One table's digest, from the cache while its generation has not moved.
        let mut digest = |cached: Option<&(u64, Digest)>,
                          generation: u64,
                          encode: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), canon::CanonError>|
         -> (u64, Digest) {
            if let Some(hit) = cached.filter(|(g, _)| *g == generation) {
                return *hit;
            }
            scratch.clear();
            encode(scratch).expect("state encodes");
            (generation, Digest::of(scratch))
        };
        macro_rules! table {
            ($name:literal, $t:expr) => {{
                let d = digest(core.get($name), $t.generation(), &mut |out| {
                    canon::encode_into($t.rows(), out)
                });
                core.insert($name, d);
            }};
        }
        table!("accounts", self.accounts);
        table!("witnesses", self.witnesses);
        table!("sons", self.sons);
        table!("proposals", self.proposals);
        table!("son_proposals", self.son_proposals);
        table!("vesting", self.vesting);
        table!("transactions", self.transactions);
        table!("assets", self.assets);
        table!("balances", self.balances);
        for (name, t) in self.plugin.iter() {
            let d = digest(plugin.get(name), t.generation(), &mut |out| {
                canon::put_len(out, t.len() as u64);
                for (k, row) in t.iter() {
                    canon::put_len(out, k.len() as u64);
                    out.extend_from_slice(k);
                    row.canon(out)?;
                }
                Ok(())
            });
            plugin.insert(name, d);
        }
        // Tables no longer in the state leave the cache.
        plugin.retain(|name, _| self.plugin.contains_key(name));

        let mut w = DigestWriter::new();
        let mut head = Vec::with_capacity(64);
        let mut section = |name: &str, body: &[u8]| {
            head.clear();
            canon::put_len(&mut head, name.len() as u64);
            head.extend_from_slice(name.as_bytes());
            canon::put_len(&mut head, body.len() as u64);
            w.update(&head);
            w.update(body);
        };
        section("sonprop-state", b"v2");
        scratch.clear();
        canon::encode_into(&*self.globals, scratch).expect("state encodes");
        section("globals", scratch);
        for name in TABLE_ORDER {
            section(name, &core[name].1 .0);
        }
        for (name, (_, d)) in plugin.iter() {
            section(&format!("plugin.{name}"), &d.0);
        }
        w.finish()
    }
}

impl State {
    /// The state digest as store formats 2 and 3 recorded it: SHA-256 over the globals and
    /// every table in canonical JSON, one after the other. Only for checking such a store when
    /// it is opened; [`State::hash`] replaced it.
    pub(crate) fn legacy_json_hash(&self) -> Digest {
        use std::io::Write;
        fn j<T: serde::Serialize + ?Sized>(w: &mut DigestWriter, name: &str, v: &T) {
            let _ = write!(w, "\n{name}:");
            serde_json::to_writer(w, v).expect("state serialises");
        }
        let mut w = DigestWriter::new();
        j(&mut w, "globals", &*self.globals);
        j(&mut w, "accounts", self.accounts.rows());
        j(&mut w, "witnesses", self.witnesses.rows());
        j(&mut w, "sons", self.sons.rows());
        j(&mut w, "proposals", self.proposals.rows());
        j(&mut w, "son_proposals", self.son_proposals.rows());
        j(&mut w, "vesting", self.vesting.rows());
        j(&mut w, "transactions", self.transactions.rows());
        j(&mut w, "assets", self.assets.rows());
        j(&mut w, "balances", &balance_rows(&self.balances));
        for (name, table) in self.plugin.iter() {
            let _ = write!(w, "\nplugin.{name}:");
            for (k, row) in table.iter() {
                let _ = write!(w, "{}=", crate::chain::crypto::hex(k));
                let _ = w.write_all(&row.to_json());
                let _ = w.write_all(b";");
            }
        }
        w.finish()
    }
}

/// The core tables, in the order the hash covers them (after `globals`) and `table_names` lists
/// them.
const TABLE_ORDER: [&str; 9] = [
    "accounts",
    "witnesses",
    "sons",
    "proposals",
    "son_proposals",
    "vesting",
    "transactions",
    "assets",
    "balances",
];

/// Digests of state tables as of their generations, for [`State::hash_with`]. Node-local: it
/// only spares work; the digest is the same with or without it.
#[derive(Debug, Default, Clone)]
pub struct HashCache {
    core: BTreeMap<&'static str, (u64, Digest)>,
    plugin: BTreeMap<&'static str, (u64, Digest)>,
    /// Reused for each encoding.
    scratch: Vec<u8>,
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

fn typed_row<'a, T: TableSchema>(
    (k, row): (&Vec<u8>, &'a Arc<dyn crate::chain::schema::StoredRow>),
) -> Option<(T::Key, &'a T::Value)> {
    Some((T::Key::from_key_bytes(k)?, row.as_any().downcast_ref()?))
}

/// Balances as `[[account, asset], amount]` pairs: JSON maps need string keys.
pub(crate) fn balance_rows(
    t: &Table<(AccountId, AssetId), u64>,
) -> Vec<((AccountId, AssetId), u64)> {
    t.iter().map(|(k, v)| (*k, *v)).collect()
}
