//! The state's derived indexes: kept in step with every write and undo, never hashed or
//! persisted (a loaded state rebuilds them).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::chain::crypto::Digest;
use crate::chain::ids::ProposalId;
use crate::chain::ids::{AccountId, SonId, SonProposalId, Subject};
use crate::chain::objects::{Son, SonProposalRecord, SonStatus};
use crate::chain::schema::{IndexEntries, RowIndexer, StoredRow};
use crate::chain::table::TableIndex;
use crate::chain::time::Timestamp;

/// SON indexes, partitioned by status: by `last_active_timestamp` and by
/// `last_down_timestamp`. "Which active SONs are silent" and "which SONs in maintenance are due"
/// are range queries over their own status's partition, so they cost the same however many
/// inactive or deregistered SONs the chain has accumulated.
#[derive(Debug, Clone, Default)]
pub struct SonIndex {
    pub(crate) by_active: [BTreeSet<(Timestamp, SonId)>; SonStatus::ALL.len()],
    pub(crate) by_down: [BTreeSet<(Timestamp, SonId)>; SonStatus::ALL.len()],
    pub(crate) by_owner: BTreeMap<AccountId, SonId>,
    /// SONs that can be elected (not deregistered), most votes first, then lowest id: a
    /// maintenance reads the top of it instead of sorting every SON.
    pub(crate) by_votes: BTreeSet<(std::cmp::Reverse<u64>, SonId)>,
    /// SONs with something to settle at the next payout: transactions signed or downtime in
    /// the period. A payout visits these, not every SON.
    pub(crate) unpaid: BTreeSet<SonId>,
    /// SONs whose new sidechain keys take force at the next maintenance.
    pub(crate) pending_keys: BTreeSet<SonId>,
}

fn unpaid(s: &Son) -> bool {
    s.statistics.txs_signed > 0 || s.statistics.current_interval_downtime > 0
}

impl TableIndex<SonId, Son> for SonIndex {
    fn insert(&mut self, id: &SonId, s: &Son) {
        let p = s.status.index();
        self.by_active[p].insert((s.statistics.last_active_timestamp, *id));
        self.by_down[p].insert((s.statistics.last_down_timestamp, *id));
        self.by_owner.insert(s.owner, *id);
        if s.status != SonStatus::Deregistered {
            self.by_votes.insert((std::cmp::Reverse(s.votes), *id));
        }
        if unpaid(s) {
            self.unpaid.insert(*id);
        }
        if s.next_sidechain_public_keys.is_some() {
            self.pending_keys.insert(*id);
        }
    }
    fn remove(&mut self, id: &SonId, s: &Son) {
        let p = s.status.index();
        self.by_active[p].remove(&(s.statistics.last_active_timestamp, *id));
        self.by_down[p].remove(&(s.statistics.last_down_timestamp, *id));
        if self.by_owner.get(&s.owner) == Some(id) {
            self.by_owner.remove(&s.owner);
        }
        self.by_votes.remove(&(std::cmp::Reverse(s.votes), *id));
        self.unpaid.remove(id);
        self.pending_keys.remove(id);
    }
}

/// Son proposal records by proposal, by SON and by `(kind, subject)`.
#[derive(Debug, Clone, Default)]
pub struct RecordIndex {
    pub(crate) by_proposal: BTreeSet<(ProposalId, SonProposalId)>,
    pub(crate) by_son: BTreeSet<(SonId, SonProposalId)>,
    /// Kind, then subject: looked up by `&str` and `&Subject` without allocating.
    pub(crate) by_kind_subject: BTreeMap<String, BTreeMap<Subject, SonProposalId>>,
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
    pub(crate) by_expiration: BTreeSet<(Timestamp, Digest)>,
}

impl TableIndex<Digest, Timestamp> for TxIndex {
    fn insert(&mut self, id: &Digest, exp: &Timestamp) {
        self.by_expiration.insert((*exp, *id));
    }
    fn remove(&mut self, id: &Digest, exp: &Timestamp) {
        self.by_expiration.remove(&(*exp, *id));
    }
}

/// The secondary indexes of an operation crate's table: `(index, index key, primary key)`,
/// computed by the table's declared indexer.
#[derive(Clone)]
pub struct RowIndex {
    indexer: RowIndexer,
    pub(crate) entries: BTreeSet<(&'static str, Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for RowIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowIndex").field("entries", &self.entries.len()).finish()
    }
}

impl RowIndex {
    /// An empty index computed by `indexer`.
    pub(crate) fn new(indexer: RowIndexer) -> Self {
        RowIndex { indexer, entries: BTreeSet::new() }
    }
    fn entries_of(&self, row: &Arc<dyn StoredRow>) -> IndexEntries {
        let mut out = Vec::new();
        (self.indexer)(row.as_ref(), &mut out);
        out
    }
}

impl Default for RowIndex {
    fn default() -> Self {
        RowIndex::new(|_, _| {})
    }
}

impl TableIndex<Vec<u8>, Arc<dyn StoredRow>> for RowIndex {
    fn insert(&mut self, key: &Vec<u8>, row: &Arc<dyn StoredRow>) {
        for (name, ik) in self.entries_of(row) {
            self.entries.insert((name, ik, key.clone()));
        }
    }
    fn remove(&mut self, key: &Vec<u8>, row: &Arc<dyn StoredRow>) {
        for (name, ik) in self.entries_of(row) {
            self.entries.remove(&(name, ik, key.clone()));
        }
    }
}
