//! A ledger on a [`Store`]: every table row, the undo records of the last blocks, the globals and
//! node-local values, written per block in one atomic commit.
//!
//! Layout (format version [`STORE_FORMAT`]): one store table per core state table (key: the row
//! key as JSON, value: the row as canonical JSON), one per operation crate's table, named
//! `plugin:<table>` (key: the row's encoded key, value: the row as canonical JSON), `undo` (one
//! chunk per commit, keyed by the height of its first block, big-endian: for each block of the
//! commit, oldest first, the length of its sealed record (8 bytes, little-endian), then a
//! SHA-256 checksum over the height and the record, then the block's undo record as JSON: each
//! touched row's value before the block, and of the globals only the fields the block changed,
//! with their values before it), `meta` (format version, chain id, globals, and the state hash
//! as of the last durable commit), and `local` (node-local values, opaque to the ledger).
//!
//! Format 5 differs from format 4 only in keeping a commit's undo records as one chunk, where
//! format 4 kept one record per key: a node committing every 1 000 blocks made 1 000 inserts
//! and 1 000 deletes per commit, most of a durable run's extra cost. A chunk goes when all of
//! its blocks fall out of the undo window; popping a written block rewrites its chunk without
//! it. Format 4 differs from format 3 only in the state hash it records: the digest of the
//! state's canonical binary encoding ([`State::hash`]), where format 3 recorded the digest of
//! its JSON encoding. Format 3 differs from format 2 only in the undo records: format 2 kept
//! the whole globals as they were before each block; format 3 keeps the fields the block
//! changed. All four are read (each undo record says which globals it holds, and an older
//! store's recorded hash is checked the way it was computed); an older store opened by this
//! build is format 5 from its next commit or pop, which rewrites its undo records as one chunk
//! and is durable (so the new format number and the state hash it computes are written together).
//! Format 1 (before operation crates had typed tables) is refused as an unknown format: replay
//! the chain into a new store.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::chain::crypto::Digest;
use crate::chain::error::LedgerError;
use crate::chain::genesis::Genesis;
use crate::chain::ids::{
    AccountId, AssetId, ProposalId, SonId, SonProposalId, VestingId, WitnessId,
};
pub use crate::chain::ledger::StoreOptions;

use crate::chain::ledger::{Ledger, Persistence};
use crate::chain::model::Proposal;
use crate::chain::model::Session;
use crate::chain::model::{ChainRegistry, Globals, State};
use crate::chain::objects::SonProposalRecord;
use crate::chain::objects::{Account, Asset, Son, VestingBalance, Witness};
use crate::chain::store::{Batch, Contents, Store, StoreError};
use crate::chain::table::{Table, TableIndex};
use crate::chain::time::Timestamp;

/// The store format this build reads and writes.
pub const STORE_FORMAT: u32 = 5;

/// The formats this build reads.
const READABLE_FORMATS: [u32; 4] = [2, 3, 4, 5];

const META: &str = "meta";
const UNDO: &str = "undo";
const LOCAL: &str = "local";
const PLUGIN_PREFIX: &str = "plugin:";

#[derive(Serialize, Deserialize)]
struct StoredHash {
    height: u64,
    hash: Digest,
}

/// The globals before a block, as the fields the block changed, each with its value before it
/// (a block changes a few: the head, sometimes the schedule or a counter). Applied to the globals
/// after the block, it gives those before.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct GlobalsDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chain_id: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    genesis_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    params: Option<crate::chain::params::ChainParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plugin_params: Option<Arc<BTreeMap<String, serde_json::Value>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    head_height: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    head_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    head_id: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active_witnesses: Option<Arc<Vec<WitnessId>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    elected_sons: Option<Arc<BTreeSet<SonId>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schedule_round: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schedule: Option<Arc<Vec<WitnessId>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_proposal: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_son_proposal: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_vesting: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_maintenance_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_maintenance_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    maintenance_sons: Option<Arc<BTreeSet<SonId>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_son_pay_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_election: Option<Option<crate::chain::objects::Election>>,
}

/// Lists every field of the globals once: `between` and `apply` are written from it, so the two
/// cannot disagree about which fields exist.
macro_rules! globals_fields {
    ($m:ident) => {
        $m!(
            chain_id,
            genesis_time,
            params,
            plugin_params,
            head_height,
            head_time,
            head_id,
            active_witnesses,
            elected_sons,
            schedule_round,
            schedule,
            next_proposal,
            next_son_proposal,
            next_vesting,
            next_maintenance_time,
            last_maintenance_time,
            maintenance_sons,
            next_son_pay_time,
            last_election
        )
    };
}

/// Names every field of the globals, without `..`: a field added to `Globals` and not to
/// `globals_fields!` (hence not to the delta) fails to compile here.
#[allow(dead_code)]
fn every_globals_field_is_in_the_delta(g: &Globals) {
    macro_rules! all {
        ($($f:ident),*) => {
            let Globals { $($f: _),* } = g;
        };
    }
    globals_fields!(all);
}

impl GlobalsDelta {
    /// The fields `before` and `after` differ in, with `before`'s values.
    fn between(before: &Globals, after: &Globals) -> GlobalsDelta {
        let mut d = GlobalsDelta::default();
        macro_rules! diff {
            ($($f:ident),*) => {
                $(if before.$f != after.$f {
                    d.$f = Some(before.$f.clone());
                })*
            };
        }
        globals_fields!(diff);
        d
    }

    /// The globals before the block, from those after it.
    fn apply(&self, after: &Globals) -> Globals {
        let mut g = after.clone();
        macro_rules! set {
            ($($f:ident),*) => {
                $(if let Some(v) = &self.$f {
                    g.$f = v.clone();
                })*
            };
        }
        globals_fields!(set);
        g
    }
}

/// A block's undo record as stored: each touched row's value before the block, and the globals
/// before it, as the fields it changed (format 3) or whole (format 2). Written as
/// [`UndoRecordOut`].
#[derive(Deserialize)]
struct UndoRecord {
    #[serde(default)]
    globals: Option<Globals>,
    #[serde(default)]
    globals_changed: Option<GlobalsDelta>,
    #[serde(default)]
    accounts: Vec<(AccountId, Option<Account>)>,
    #[serde(default)]
    witnesses: Vec<(WitnessId, Option<Witness>)>,
    #[serde(default)]
    sons: Vec<(SonId, Option<Son>)>,
    #[serde(default)]
    proposals: Vec<(ProposalId, Option<Proposal>)>,
    #[serde(default)]
    son_proposals: Vec<(SonProposalId, Option<SonProposalRecord>)>,
    #[serde(default)]
    vesting: Vec<(VestingId, Option<VestingBalance>)>,
    #[serde(default)]
    transactions: Vec<(Digest, Option<Timestamp>)>,
    #[serde(default)]
    assets: Vec<(AssetId, Option<Asset>)>,
    #[serde(default)]
    balances: Vec<((AccountId, AssetId), Option<u64>)>,
    /// Operation crates' rows: `(table, key as hex, row as JSON text)`.
    #[serde(default)]
    plugin: Vec<(String, String, Option<String>)>,
}

/// A block's undo record as written: what [`UndoRecord`] reads, with no whole globals and no
/// empty tables, read from the session without copying its rows.
#[derive(Serialize)]
struct UndoRecordOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    globals_changed: Option<GlobalsDelta>,
    #[serde(serialize_with = "as_pairs", skip_serializing_if = "no_rows")]
    accounts: &'a BTreeMap<AccountId, Option<Account>>,
    #[serde(serialize_with = "as_pairs", skip_serializing_if = "no_rows")]
    witnesses: &'a BTreeMap<WitnessId, Option<Witness>>,
    #[serde(serialize_with = "as_pairs", skip_serializing_if = "no_rows")]
    sons: &'a BTreeMap<SonId, Option<Son>>,
    #[serde(serialize_with = "as_pairs", skip_serializing_if = "no_rows")]
    proposals: &'a BTreeMap<ProposalId, Option<Proposal>>,
    #[serde(serialize_with = "as_pairs", skip_serializing_if = "no_rows")]
    son_proposals: &'a BTreeMap<SonProposalId, Option<SonProposalRecord>>,
    #[serde(serialize_with = "as_pairs", skip_serializing_if = "no_rows")]
    vesting: &'a BTreeMap<VestingId, Option<VestingBalance>>,
    #[serde(serialize_with = "as_pairs", skip_serializing_if = "no_rows")]
    transactions: &'a BTreeMap<Digest, Option<Timestamp>>,
    #[serde(serialize_with = "as_pairs", skip_serializing_if = "no_rows")]
    assets: &'a BTreeMap<AssetId, Option<Asset>>,
    #[serde(serialize_with = "as_pairs", skip_serializing_if = "no_rows")]
    balances: &'a BTreeMap<(AccountId, AssetId), Option<u64>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    plugin: Vec<(&'static str, String, Option<String>)>,
}

/// Whether a block touched no row of a table (the record then leaves the table out).
fn no_rows<K, V>(m: &&BTreeMap<K, V>) -> bool {
    m.is_empty()
}

/// A map as the list of its `[key, value]` pairs (what [`UndoRecord`] reads back).
fn as_pairs<K: Serialize, V: Serialize, S: serde::Serializer>(
    m: &&BTreeMap<K, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(m.iter())
}

impl UndoRecord {
    /// The record of session `s`, whose block left the globals `after`.
    fn of<'a>(s: &'a Session, after: &Globals) -> UndoRecordOut<'a> {
        UndoRecordOut {
            globals_changed: s.globals.as_deref().map(|b| GlobalsDelta::between(b, after)),
            accounts: &s.accounts,
            witnesses: &s.witnesses,
            sons: &s.sons,
            proposals: &s.proposals,
            son_proposals: &s.son_proposals,
            vesting: &s.vesting,
            transactions: &s.transactions,
            assets: &s.assets,
            balances: &s.balances,
            plugin: s
                .plugin
                .iter()
                .map(|((t, k), row)| {
                    let text =
                        row.as_ref().map(|r| String::from_utf8_lossy(&r.to_json()).into_owned());
                    (*t, crate::chain::crypto::hex(k), text)
                })
                .collect(),
        }
    }

    /// The session, given the globals its block left (`after`).
    fn into_session(self, registry: &ChainRegistry, after: &Globals) -> Result<Session, String> {
        let mut plugin = BTreeMap::new();
        for (table, key, row) in self.plugin {
            let decl = registry.table(&table).ok_or_else(|| {
                format!("table `{table}` is not declared by any registered crate")
            })?;
            let key = crate::chain::crypto::from_hex(&key)
                .ok_or_else(|| format!("a key of `{table}` is not hex"))?;
            let row = row
                .map(|r| {
                    (decl.decode)(r.as_bytes()).map_err(|e| format!("a row of `{table}`: {e}"))
                })
                .transpose()?;
            plugin.insert((decl.name, key), row);
        }
        let globals = match (self.globals, self.globals_changed) {
            (Some(whole), _) => Some(whole),
            (None, Some(delta)) => Some(delta.apply(after)),
            (None, None) => None,
        };
        Ok(Session {
            globals: globals.map(Arc::new),
            accounts: self.accounts.into_iter().collect(),
            witnesses: self.witnesses.into_iter().collect(),
            sons: self.sons.into_iter().collect(),
            proposals: self.proposals.into_iter().collect(),
            son_proposals: self.son_proposals.into_iter().collect(),
            vesting: self.vesting.into_iter().collect(),
            transactions: self.transactions.into_iter().collect(),
            assets: self.assets.into_iter().collect(),
            balances: self.balances.into_iter().collect(),
            plugin,
            events_at_start: 0,
        })
    }
}

fn json<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("state values serialise")
}

fn put_rows<'a, K, V, I>(
    name: &'static str,
    table: &Table<K, V, I>,
    keys: impl Iterator<Item = &'a K>,
    batch: &mut Batch,
) where
    K: Ord + Clone + Serialize + 'a,
    V: Clone + Serialize,
    I: TableIndex<K, V>,
{
    for k in keys {
        match table.get(k) {
            Some(v) => batch.put(name, json(k), json(v)),
            None => batch.delete(name, json(k)),
        }
    }
}

/// Writes the current value of every row the sessions touched, once per row however many of
/// them touched it.
fn put_session_rows<'a>(
    state: &State,
    sessions: impl Iterator<Item = &'a Session> + Clone,
    batch: &mut Batch,
) {
    fn touched<'a, K: Ord + 'a, V: 'a>(
        maps: impl Iterator<Item = &'a BTreeMap<K, V>>,
    ) -> BTreeSet<&'a K> {
        maps.flat_map(|m| m.keys()).collect()
    }
    macro_rules! rows {
        ($($name:ident),*) => {$(
            let keys = touched(sessions.clone().map(|s| &s.$name));
            put_rows(stringify!($name), &state.$name, keys.into_iter(), batch);
        )*};
    }
    rows!(accounts, witnesses, sons, proposals, son_proposals, vesting, transactions, assets);
    rows!(balances);
    for (table, key) in touched(sessions.map(|s| &s.plugin)) {
        put_plugin_row(state, table, key, batch);
    }
}

fn plugin_store_table(table: &str) -> String {
    format!("{PLUGIN_PREFIX}{table}")
}

fn put_plugin_row(state: &State, table: &str, key: &[u8], batch: &mut Batch) {
    let name = plugin_store_table(table);
    match state.plugin_table(table).and_then(|t| t.get(&key.to_vec())) {
        Some(row) => batch.put_owned(name, key.to_vec(), row.to_json()),
        None => batch.delete_owned(name, key.to_vec()),
    }
}

fn put_all_rows(state: &State, batch: &mut Batch) {
    put_rows("accounts", &state.accounts, state.accounts.rows().keys(), batch);
    put_rows("witnesses", &state.witnesses, state.witnesses.rows().keys(), batch);
    put_rows("sons", &state.sons, state.sons.rows().keys(), batch);
    put_rows("proposals", &state.proposals, state.proposals.rows().keys(), batch);
    put_rows("son_proposals", &state.son_proposals, state.son_proposals.rows().keys(), batch);
    put_rows("vesting", &state.vesting, state.vesting.rows().keys(), batch);
    put_rows("transactions", &state.transactions, state.transactions.rows().keys(), batch);
    put_rows("assets", &state.assets, state.assets.rows().keys(), batch);
    put_rows("balances", &state.balances, state.balances.rows().keys(), batch);
    for (table, rows) in state.plugin_tables() {
        for key in rows.rows().keys() {
            put_plugin_row(state, table, key, batch);
        }
    }
}

struct Decoder<'a> {
    contents: &'a Contents,
    location: String,
}

impl Decoder<'_> {
    fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt { path: self.location.clone(), detail }
    }

    fn decode<T: DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| self.corrupt(format!("{what}: {e}")))
    }

    fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.contents
            .get(META)
            .and_then(|m| m.get(key.as_bytes()))
            .map(|v| self.decode(&format!("meta `{key}`"), v))
            .transpose()
    }

    fn load<K, V, I>(&self, name: &str, table: &mut Table<K, V, I>) -> Result<(), StoreError>
    where
        K: Ord + Clone + DeserializeOwned,
        V: Clone + DeserializeOwned,
        I: TableIndex<K, V>,
    {
        for (k, v) in self.contents.get(name).into_iter().flatten() {
            let key: K = self.decode(&format!("a key of `{name}`"), k)?;
            let row: V = self.decode(&format!("a row of `{name}`"), v)?;
            table.set(key, Some(row));
        }
        Ok(())
    }
}

impl Ledger {
    /// A ledger kept in `store`: a new store is initialised from `genesis`; an existing one is
    /// loaded and checked (format version, chain id, and the state hash of its last durable
    /// commit). A store of another chain, of an unknown format, or whose contents do not decode
    /// or do not hash to what was committed is refused with a [`StoreError`].
    pub fn open(
        genesis: &Genesis,
        registry: Arc<ChainRegistry>,
        store: Box<dyn Store>,
        options: StoreOptions,
    ) -> Result<Ledger, LedgerError> {
        genesis.validate().map_err(LedgerError::Genesis)?;
        let contents = store.read_all()?;
        let location = store.location();
        if contents.get(META).is_none_or(|m| m.is_empty()) {
            if contents.values().any(|t| !t.is_empty()) {
                return Err(StoreError::Corrupt {
                    path: location,
                    detail: "rows without a `meta` table: not a sonprop store, or damaged".into(),
                }
                .into());
            }
            // A new store: the genesis state, written whole and durably.
            let ledger = Ledger::new(genesis, registry)?;
            let mut batch = Batch { durable: true, ..Batch::default() };
            put_all_rows(&ledger.state, &mut batch);
            put_meta(&ledger.state, true, &mut batch);
            let mut store = store;
            store.commit(batch)?;
            let decoded = Decoded {
                state: ledger.state,
                history: VecDeque::new(),
                local: BTreeMap::new(),
                undo_chunks: BTreeMap::new(),
                legacy_undo: false,
            };
            return Ok(Ledger::on_store(decoded, store, options));
        }
        let stored = stored_chain_id(&contents, &location)?;
        let expected = genesis.chain_id();
        if stored != expected {
            return Err(StoreError::OtherChain { path: location, stored, expected }.into());
        }
        let decoded = decode(registry, &contents, &location)?;
        Ok(Ledger::on_store(decoded, store, options))
    }

    /// The ledger kept in an existing store, without its genesis (for inspection tools): the
    /// same checks as [`Ledger::open`] except the chain id, which is taken from the store.
    pub fn load(
        registry: Arc<ChainRegistry>,
        store: Box<dyn Store>,
        options: StoreOptions,
    ) -> Result<Ledger, LedgerError> {
        let contents = store.read_all()?;
        let location = store.location();
        if contents.get(META).is_none_or(|m| m.is_empty()) {
            return Err(StoreError::Corrupt {
                path: location,
                detail: "empty: no ledger has been stored here".into(),
            }
            .into());
        }
        stored_chain_id(&contents, &location)?;
        let decoded = decode(registry, &contents, &location)?;
        Ok(Ledger::on_store(decoded, store, options))
    }

    /// A ledger whose state and undo history are what `store` holds.
    fn on_store(decoded: Decoded, store: Box<dyn Store>, options: StoreOptions) -> Ledger {
        let Decoded { state, history, local, undo_chunks, legacy_undo } = decoded;
        let options = StoreOptions { fsync_every: options.fsync_every.max(1) };
        let persistence = Persistence {
            store,
            options,
            unwritten: 0,
            since_durable: 0,
            undo_chunks,
            legacy_undo,
            local,
        };
        Ledger {
            state,
            history,
            undo_depth: crate::chain::ledger::DEFAULT_UNDO_DEPTH,
            persistence: Some(persistence),
            verified: Default::default(),
            hash_cache: Default::default(),
        }
    }

    /// A node-local value committed with [`Ledger::commit`] (as of the last commit that survived).
    pub fn local(&self, key: &str) -> Option<&[u8]> {
        self.persistence.as_ref()?.local.get(key).map(Vec::as_slice)
    }

    /// Writes the blocks applied since the last commit, with node-local values (`None`
    /// deletes), in one atomic commit; durable per the store options. Without a store: nothing.
    pub fn commit(&mut self, local: Vec<(String, Option<Vec<u8>>)>) -> Result<(), LedgerError> {
        self.commit_with(local, false)
    }

    /// Like [`Ledger::commit`], and durable whatever the options (for a clean shutdown).
    pub fn sync(&mut self, local: Vec<(String, Option<Vec<u8>>)>) -> Result<(), LedgerError> {
        self.commit_with(local, true)
    }

    fn commit_with(
        &mut self,
        local: Vec<(String, Option<Vec<u8>>)>,
        force_durable: bool,
    ) -> Result<(), LedgerError> {
        let Some(p) = self.persistence.as_mut() else { return Ok(()) };
        let mut batch = Batch::default();
        let head = self.state.head_height();
        let n = p.unwritten.min(self.history.len());
        put_session_rows(&self.state, self.history.iter().rev().take(n), &mut batch);
        // The blocks' undo records, as one chunk; a store of an older format (one record per
        // key) is rewritten whole, once, durably: the commit that writes the new format number
        // must also write the state hash as the new format computes it.
        let upgrade = p.legacy_undo;
        let records = if upgrade {
            for first in std::mem::take(&mut p.undo_chunks).into_keys() {
                batch.delete(UNDO, first.to_be_bytes().to_vec());
            }
            p.legacy_undo = false;
            self.history.len()
        } else {
            n
        };
        if records > 0 {
            let from = head + 1 - records as u64;
            batch.put(
                UNDO,
                from.to_be_bytes().to_vec(),
                undo_chunk(&self.state, &self.history, from),
            );
            p.undo_chunks.insert(from, head);
        }
        // Chunks wholly below the undo window go.
        let keep_from = head + 1 - self.history.len() as u64;
        let old: Vec<u64> =
            p.undo_chunks.iter().filter(|(_, last)| **last < keep_from).map(|(f, _)| *f).collect();
        for first in old {
            p.undo_chunks.remove(&first);
            batch.delete(UNDO, first.to_be_bytes().to_vec());
        }
        for (k, v) in &local {
            match v {
                Some(v) => batch.put(LOCAL, k.as_bytes().to_vec(), v.clone()),
                None => batch.delete(LOCAL, k.as_bytes().to_vec()),
            }
        }
        p.since_durable += n as u64;
        let durable = force_durable || upgrade || p.since_durable >= p.options.fsync_every;
        batch.durable = durable;
        put_meta(&self.state, durable, &mut batch);
        p.store.commit(batch)?;
        if durable {
            p.since_durable = 0;
        }
        p.unwritten = 0;
        for (k, v) in local {
            match v {
                Some(v) => p.local.insert(k, v),
                None => p.local.remove(&k),
            };
        }
        Ok(())
    }

    /// Records that a block was applied (it is written at the next commit).
    pub(crate) fn note_applied(&mut self) {
        if let Some(p) = self.persistence.as_mut() {
            p.unwritten = (p.unwritten + 1).min(self.history.len());
        }
    }

    /// Writes a popped block's restored rows at once (a popped block that was never written just
    /// leaves the pending set).
    pub(crate) fn note_popped(&mut self, popped: &Session) -> Result<(), LedgerError> {
        let Some(p) = self.persistence.as_mut() else { return Ok(()) };
        if p.unwritten > 0 {
            p.unwritten -= 1;
            return Ok(());
        }
        let mut batch = Batch { durable: true, ..Batch::default() };
        put_session_rows(&self.state, std::iter::once(popped), &mut batch);
        // The chunk holding the popped block's record loses it: rewritten from the history
        // with the records below it, or deleted if it held no other.
        // A store of one record per key is rewritten whole, as one chunk (this commit makes it
        // the current format).
        let popped_height = self.state.head_height() + 1;
        let lowest = popped_height - self.history.len() as u64;
        let mut chunks = p.undo_chunks.clone();
        let rewrite: Vec<u64> = if p.legacy_undo {
            chunks.keys().copied().collect()
        } else {
            chunks.range(..=popped_height).next_back().map(|(f, _)| *f).into_iter().collect()
        };
        let from = rewrite.first().map_or(popped_height, |f| (*f).max(lowest));
        for first in rewrite {
            chunks.remove(&first);
            batch.delete(UNDO, first.to_be_bytes().to_vec());
        }
        if from < popped_height {
            let chunk = undo_chunk(&self.state, &self.history, from);
            batch.put(UNDO, from.to_be_bytes().to_vec(), chunk);
            chunks.insert(from, popped_height - 1);
        }
        put_meta(&self.state, true, &mut batch);
        p.store.commit(batch)?;
        p.since_durable = 0;
        p.undo_chunks = chunks;
        p.legacy_undo = false;
        Ok(())
    }
}

/// Checks the format version and returns the stored chain id.
fn stored_chain_id(contents: &Contents, location: &str) -> Result<Digest, StoreError> {
    let d = Decoder { contents, location: location.to_owned() };
    let format: u32 = d.meta("format")?.ok_or_else(|| d.corrupt("no format version".into()))?;
    if !READABLE_FORMATS.contains(&format) {
        return Err(StoreError::UnknownFormat {
            path: location.to_owned(),
            found: format,
            supported: STORE_FORMAT,
        });
    }
    d.meta("chain_id")?.ok_or_else(|| d.corrupt("no chain id".into()))
}

/// What a store holds, decoded and checked.
struct Decoded {
    state: State,
    history: VecDeque<Session>,
    local: BTreeMap<String, Vec<u8>>,
    /// The stored undo chunks: first height → last height.
    undo_chunks: BTreeMap<u64, u64>,
    /// The undo records are stored one per key (formats 2 to 4).
    legacy_undo: bool,
}

/// The state, undo history and node-local values in `contents`, checked: every row decodes, the
/// undo records run without gaps up to the head, and the state hashes to what the last durable
/// commit recorded.
fn decode(
    registry: Arc<ChainRegistry>,
    contents: &Contents,
    location: &str,
) -> Result<Decoded, StoreError> {
    let d = Decoder { contents, location: location.to_owned() };
    let globals: Globals = d.meta("globals")?.ok_or_else(|| d.corrupt("no globals".into()))?;
    let mut state = State::empty(Arc::clone(&registry), globals);
    d.load("accounts", &mut state.accounts)?;
    d.load("witnesses", &mut state.witnesses)?;
    d.load("sons", &mut state.sons)?;
    d.load("proposals", &mut state.proposals)?;
    d.load("son_proposals", &mut state.son_proposals)?;
    d.load("vesting", &mut state.vesting)?;
    d.load("transactions", &mut state.transactions)?;
    d.load("assets", &mut state.assets)?;
    d.load("balances", &mut state.balances)?;
    for (name, rows) in contents {
        let Some(table) = name.strip_prefix(PLUGIN_PREFIX) else { continue };
        let decl = registry.table(table).ok_or_else(|| {
            d.corrupt(format!("table `{table}` is not declared by any registered operation crate"))
        })?;
        let target = Arc::make_mut(&mut state.plugin)
            .get_mut(decl.name)
            .ok_or_else(|| d.corrupt(table.into()))?;
        for (k, v) in rows {
            let row =
                (decl.decode)(v).map_err(|e| d.corrupt(format!("a row of `{table}`: {e}")))?;
            target.set(k.clone(), Some(row));
        }
        state.plugin_generation = crate::chain::table::fresh_generation();
    }

    let head = state.head_height();
    let format: u32 = d.meta("format")?.unwrap_or(STORE_FORMAT);
    let legacy_undo = format < 5;
    let mut records = Vec::new();
    let mut undo_chunks = BTreeMap::new();
    let mut expect = None;
    for (k, v) in contents.get(UNDO).into_iter().flatten() {
        let first = u64::from_be_bytes(
            k.as_slice().try_into().map_err(|_| d.corrupt("an undo key is not a height".into()))?,
        );
        let sealed = if legacy_undo {
            vec![v.as_slice()]
        } else {
            split_chunk(v).ok_or_else(|| {
                d.corrupt(format!("the undo chunk from block {first} is cut short"))
            })?
        };
        undo_chunks.insert(first, first + sealed.len().saturating_sub(1) as u64);
        for (height, sealed) in (first..).zip(sealed) {
            if expect.is_some_and(|e| e != height) || height > head {
                return Err(d.corrupt(format!(
                    "undo record for height {height} out of sequence (head {head})"
                )));
            }
            expect = Some(height + 1);
            let what = format!("the undo record of block {height}");
            let body = open_undo(height, sealed).ok_or_else(|| {
                d.corrupt(format!("{what} fails its checksum: it was damaged or altered"))
            })?;
            let record: UndoRecord = d.decode(&what, body)?;
            records.push((what, record));
        }
    }
    if expect.is_some_and(|e| e != head + 1) {
        return Err(d.corrupt(format!("undo records end before the head block {head}")));
    }
    // Newest first, from the head's globals: each block's "before" globals are the previous
    // block's "after" ones.
    let mut history = VecDeque::new();
    let mut after = state.globals.as_ref().clone();
    for (what, record) in records.into_iter().rev() {
        let session = record
            .into_session(&registry, &after)
            .map_err(|e| d.corrupt(format!("{what}: {e}")))?;
        if let Some(before) = session.globals.as_deref() {
            after = before.clone();
        }
        history.push_front(session);
    }
    if let Some(h) = d.meta::<StoredHash>("state_hash")? {
        // Formats 2 and 3 recorded the digest of the state's JSON encoding.
        let hash = if format < 4 { state.legacy_json_hash() } else { state.hash() };
        if h.height == head && h.hash != hash {
            return Err(
                d.corrupt(format!("the state does not hash to what block {head} committed"))
            );
        }
    }
    let local = contents.get(LOCAL).cloned().unwrap_or_default().into_iter();
    let local = local.map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v)).collect();
    Ok(Decoded { state, history, local, undo_chunks, legacy_undo })
}

/// The sealed undo records of blocks `from` to the head (the newest of `history`), oldest
/// first, as one chunk: each record's length (8 bytes, little-endian), then the record.
fn undo_chunk(state: &State, history: &VecDeque<Session>, from: u64) -> Vec<u8> {
    let head = state.head_height();
    let n = (head + 1 - from) as usize;
    let mut records = Vec::with_capacity(n);
    // Newest first: each block's "after" globals are the next block's "before" ones.
    let mut after: &Globals = &state.globals;
    for (i, session) in history.iter().rev().take(n).enumerate() {
        let height = head - i as u64;
        records.push(sealed_undo(height, json(&UndoRecord::of(session, after))));
        if let Some(before) = session.globals.as_deref() {
            after = before;
        }
    }
    let mut out = Vec::with_capacity(records.iter().map(|r| r.len() + 8).sum());
    for r in records.iter().rev() {
        out.extend_from_slice(&(r.len() as u64).to_le_bytes());
        out.extend_from_slice(r);
    }
    out
}

/// The sealed records of a chunk, oldest first; `None` if a length runs past its end.
fn split_chunk(mut chunk: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !chunk.is_empty() {
        let (len, rest) = chunk.split_first_chunk::<8>()?;
        let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
        let (record, rest) = rest.split_at_checked(len)?;
        out.push(record);
        chunk = rest;
    }
    Some(out)
}

fn undo_checksum(height: u64, body: &[u8]) -> Digest {
    let mut w = crate::chain::crypto::DigestWriter::new();
    w.update(b"sonprop-undo");
    w.update(&height.to_be_bytes());
    w.update(body);
    w.finish()
}

/// An undo record as stored: its checksum (over the height and the record), then the record.
/// Opening verifies it, so a damaged or altered record is refused instead of restoring a wrong
/// state at the next `pop_block`.
fn sealed_undo(height: u64, body: Vec<u8>) -> Vec<u8> {
    let mut out = undo_checksum(height, &body).0.to_vec();
    out.extend_from_slice(&body);
    out
}

/// The record inside a stored undo value, if its checksum holds.
fn open_undo(height: u64, stored: &[u8]) -> Option<&[u8]> {
    let (sum, body) = stored.split_at_checked(32)?;
    (undo_checksum(height, body).0 == sum).then_some(body)
}

fn put_meta(state: &State, durable: bool, batch: &mut Batch) {
    batch.put(META, b"format".to_vec(), json(&STORE_FORMAT));
    batch.put(META, b"chain_id".to_vec(), json(&state.chain_id()));
    batch.put(META, b"globals".to_vec(), json(state.globals()));
    if durable {
        let h = StoredHash { height: state.head_height(), hash: state.hash() };
        batch.put(META, b"state_hash".to_vec(), json(&h));
    }
}

impl From<StoreError> for LedgerError {
    fn from(e: StoreError) -> Self {
        LedgerError::Store(e)
    }
}

#[cfg(test)]
#[path = "persist_tests.rs"]
mod tests;
