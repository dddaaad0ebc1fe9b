//! Durable storage for a ledger: a transactional store of named tables of bytes.
//!
//! The ledger does its own encoding (canonical JSON for values, JSON for keys) and keeps a format
//! version, so what a row means on disk never depends on the backend's encoding. Two backends:
//! [`RedbStore`] (embedded, ACID; the default for a node) and [`MemoryStore`] (tests; it can
//! simulate a crash by reverting to its last durable commit).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::chain::crypto::Digest;

/// Every table's rows: table name → key → value.
pub type Contents = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// One row write: `(table, key, value)`, `None` deleting the row.
pub type Write = (std::borrow::Cow<'static, str>, Vec<u8>, Option<Vec<u8>>);

/// One atomic commit: rows to put (`Some`) or delete (`None`), by table.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// `(table, key, value)`.
    pub writes: Vec<Write>,
    /// Fsync before returning; otherwise the commit may be lost in a crash, together with every
    /// later one, back to the last durable commit (never partially).
    pub durable: bool,
}

impl Batch {
    /// Adds a put.
    pub fn put(&mut self, table: &'static str, key: Vec<u8>, value: Vec<u8>) {
        self.writes.push((table.into(), key, Some(value)));
    }
    /// Adds a put to a table whose name is built at run time.
    pub fn put_owned(&mut self, table: String, key: Vec<u8>, value: Vec<u8>) {
        self.writes.push((table.into(), key, Some(value)));
    }
    /// Adds a delete from a table whose name is built at run time.
    pub fn delete_owned(&mut self, table: String, key: Vec<u8>) {
        self.writes.push((table.into(), key, None));
    }
    /// Adds a delete.
    pub fn delete(&mut self, table: &'static str, key: Vec<u8>) {
        self.writes.push((table.into(), key, None));
    }
}

/// Why a store could not be opened, read or written. Opening never yields a silently wrong state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed (I/O, or corruption detected by its checksums).
    #[error("store {path}: {detail}")]
    Backend {
        /// The store's location.
        path: String,
        /// The backend's message.
        detail: String,
    },
    /// The contents are not what this format says they must be.
    #[error("store {path} is corrupted: {detail}")]
    Corrupt {
        /// The store's location.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A store written by a format this build does not know.
    #[error("store {path} has format version {found}; this build reads version {supported}")]
    UnknownFormat {
        /// The store's location.
        path: String,
        /// The stored version.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// A store file in an older file format of the storage backend (redb's v2, written before
    /// sonprop moved to redb 4): see `docs/architecture.md` for the upgrade path.
    #[error(
        "store {path} is in the storage backend's file format v{file_format}, which this build no longer \
         reads: upgrade it with redb 2.6's `Database::upgrade()` (see docs/architecture.md), or remove it \
         to start a new chain"
    )]
    UpgradeRequired {
        /// The store's location.
        path: String,
        /// The file's format version.
        file_format: u8,
    },
    /// The store is open in another process (redb holds a lock on the file while it is open).
    #[error("store {path} is open in another process")]
    InUse {
        /// The store's location.
        path: String,
    },
    /// A store of another chain (another genesis or other parameters).
    #[error("store {path} belongs to chain {stored}, not to this genesis's chain {expected}")]
    OtherChain {
        /// The store's location.
        path: String,
        /// The chain id in the store.
        stored: Digest,
        /// The chain id of the genesis given.
        expected: Digest,
    },
}

/// A transactional store of named tables.
pub trait Store: Send {
    /// Where it is, for messages.
    fn location(&self) -> String;
    /// Every table's rows, as of the last commit that survived; empty for a new store.
    fn read_all(&self) -> Result<Contents, StoreError>;
    /// Applies the batch atomically.
    fn commit(&mut self, batch: Batch) -> Result<(), StoreError>;
}

#[derive(Debug, Default)]
struct MemoryInner {
    current: Contents,
    durable: Contents,
}

/// An in-memory store. Clones share the same data, so a test can reopen a ledger on it after
/// dropping the first, and [`MemoryStore::crash`] drops everything since the last durable commit.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore(Arc<Mutex<MemoryInner>>);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loses every commit since the last durable one, as a power cut would.
    pub fn crash(&self) {
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        inner.current = inner.durable.clone();
    }

    fn with<R>(&self, f: impl FnOnce(&mut MemoryInner) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Store for MemoryStore {
    fn location(&self) -> String {
        "<memory>".into()
    }
    fn read_all(&self) -> Result<Contents, StoreError> {
        Ok(self.with(|i| i.current.clone()))
    }
    fn commit(&mut self, batch: Batch) -> Result<(), StoreError> {
        self.with(|i| {
            for (table, key, value) in batch.writes {
                let t = i.current.entry(table.into_owned()).or_default();
                match value {
                    Some(v) => t.insert(key, v),
                    None => t.remove(&key),
                };
            }
            if batch.durable {
                i.durable = i.current.clone();
            }
        });
        Ok(())
    }
}

/// A store in one redb file.
pub struct RedbStore {
    db: redb::Database,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").field("path", &self.path).finish_non_exhaustive()
    }
}

fn table_def(name: &str) -> redb::TableDefinition<'_, &'static [u8], &'static [u8]> {
    redb::TableDefinition::new(name)
}

impl RedbStore {
    /// Opens the store at `path`, creating an empty one if there is no file. A file that is there
    /// but empty is refused as damaged, never taken for a new store.
    ///
    /// redb asserts (panics) on some damaged files, a truncated one among them; that panic is
    /// contained here and reported as [`StoreError::Corrupt`].
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let shown = path.display().to_string();
        // A file that is there but empty is a damaged store, not a new one: starting again from
        // genesis would silently drop the chain it held.
        if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
            return Err(StoreError::Corrupt {
                path: shown,
                detail: "the file is empty: a damaged store (remove it to start a new chain)"
                    .into(),
            });
        }
        if !path.exists() {
            // A new store is made beside and renamed into place, so a crash while it is made
            // leaves no file (or a stale `.new` one), never an empty one at `path`.
            let fresh = path.with_extension("new");
            let backend = |e: String| StoreError::Backend { path: shown.clone(), detail: e };
            let _ = std::fs::remove_file(&fresh);
            contain(&shown, || redb::Database::create(&fresh))?
                .map_err(|e| backend(e.to_string()))?;
            std::fs::rename(&fresh, path).map_err(|e| backend(e.to_string()))?;
        }
        let opened = contain(&shown, || redb::Database::create(path))?;
        let db = opened.map_err(|e| match e {
            redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
                StoreError::Corrupt { path: shown.clone(), detail }
            }
            redb::DatabaseError::UpgradeRequired(file_format) => {
                StoreError::UpgradeRequired { path: shown.clone(), file_format }
            }
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { path: shown.clone() },
            other => StoreError::Backend { path: shown.clone(), detail: other.to_string() },
        })?;
        Ok(RedbStore { db, path: path.to_owned() })
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        let e: redb::Error = e.into();
        let path = self.path.display().to_string();
        match e {
            redb::Error::Corrupted(detail) => StoreError::Corrupt { path, detail },
            other => StoreError::Backend { path, detail: other.to_string() },
        }
    }
}

impl Store for RedbStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn read_all(&self) -> Result<Contents, StoreError> {
        contain(&self.location(), || self.read_all_inner())?
    }

    fn commit(&mut self, batch: Batch) -> Result<(), StoreError> {
        let location = self.location();
        contain(&location, || self.commit_inner(batch))?
    }
}

thread_local! {
    /// Set while this thread runs a contained backend call: its panics are reported as a
    /// `StoreError`, so the panic hook stays quiet for them.
    static CONTAINED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs (once) a panic hook that stays quiet for contained backend calls and defers to the
/// previous hook for every other panic.
fn quiet_contained_panics() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(|c| c.get()) {
                previous(info);
            }
        }));
    });
}

/// Runs a backend call, turning a panic inside it into [`StoreError::Corrupt`] (redb panics on
/// some damaged files): one clean error, and no panic message or backtrace on stderr.
fn contain<R>(path: &str, f: impl FnOnce() -> R) -> Result<R, StoreError> {
    quiet_contained_panics();
    let was = CONTAINED.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(was));
    result.map_err(|payload| StoreError::Corrupt {
        path: path.to_owned(),
        detail: format!(
            "the storage backend failed on it: {}",
            crate::chain::panic::panic_message(&*payload)
        ),
    })
}

impl RedbStore {
    fn read_all_inner(&self) -> Result<Contents, StoreError> {
        use redb::{ReadableDatabase, ReadableTable, TableHandle};
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let names: Vec<String> =
            tx.list_tables().map_err(|e| self.err(e))?.map(|h| h.name().to_owned()).collect();
        let mut out = Contents::new();
        for name in names {
            let table = tx.open_table(table_def(&name)).map_err(|e| self.err(e))?;
            let rows = out.entry(name.clone()).or_default();
            for entry in table.iter().map_err(|e| self.err(e))? {
                let (k, v) = entry.map_err(|e| self.err(e))?;
                rows.insert(k.value().to_vec(), v.value().to_vec());
            }
        }
        Ok(out)
    }

    fn commit_inner(&mut self, batch: Batch) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(|e| self.err(e))?;
        tx.set_durability(if batch.durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        })
        .map_err(|e| StoreError::Backend {
            path: self.path.display().to_string(),
            detail: e.to_string(),
        })?;
        let mut by_table: BTreeMap<std::borrow::Cow<'static, str>, Vec<Write>> = BTreeMap::new();
        for w in batch.writes {
            by_table.entry(w.0.clone()).or_default().push(w);
        }
        for (name, rows) in by_table {
            let mut table = tx.open_table(table_def(&name)).map_err(|e| self.err(e))?;
            for (_, key, value) in rows {
                match value {
                    Some(v) => table.insert(key.as_slice(), v.as_slice()).map(|_| ()),
                    None => table.remove(key.as_slice()).map(|_| ()),
                }
                .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(durable: bool, key: &[u8], value: &[u8]) -> Batch {
        let mut b = Batch { durable, ..Batch::default() };
        b.put("t", key.to_vec(), value.to_vec());
        b
    }

    #[test]
    fn a_memory_crash_loses_exactly_the_commits_since_the_last_durable_one() {
        let mut s = MemoryStore::new();
        s.commit(batch(true, b"a", b"1")).expect("commit");
        s.commit(batch(false, b"b", b"2")).expect("commit");
        assert_eq!(s.read_all().expect("read")["t"].len(), 2);
        s.crash();
        let rows = &s.read_all().expect("read")["t"];
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[b"a".as_slice()], b"1");
    }

    /// The first 320 bytes of a store file written by redb 2.6.3 (file format v2), which is
    /// all redb reads to tell the format: such a file is refused with the upgrade path, not
    /// opened and not taken for damage.
    #[test]
    fn a_redb_2_file_is_refused_with_its_upgrade_path() {
        let header = [
            "726564621a0aa90d0a04000000100000820000000000100000000000010300000001000000000000",
            "00000000000000000000000000000000000000000000000002010101000000000000000000000000",
            "9665ed71f21b066d34838eb040ba687d01000000000000000300000000000000f181705f4378083f",
            "37b862e7d8df8545040000000000000002010000000000007f8174d42d5471ade6453a98d4536897",
            "01000000000000000400000000000000faa6f04cea8ca08a6cf33e548d877b0e0201010000000000",
            "00000000000000009665ed71f21b066d34838eb040ba687d01000000000000000200000000000000",
            "310e2425301953b59e6abb113bc5cd28030000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000300000000000000727ce10dd9631d9e2ea637831dbc6d2b",
        ]
        .concat();
        let dir = std::env::temp_dir().join(format!("sonprop-redb2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("old.redb");
        std::fs::write(&path, crate::chain::crypto::from_hex(&header).expect("hex"))
            .expect("write");
        let err = RedbStore::open(&path).expect_err("an old file format");
        assert!(matches!(err, StoreError::UpgradeRequired { file_format: 2, .. }), "{err:?}");
        assert!(err.to_string().contains("Database::upgrade()"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn redb_round_trips_puts_and_deletes() {
        let dir = std::env::temp_dir().join(format!("sonprop-store-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        {
            let mut s = RedbStore::open(&dir).expect("open");
            s.commit(batch(true, b"a", b"1")).expect("commit");
            let mut b = batch(false, b"b", b"2");
            b.delete("t", b"a".to_vec());
            s.commit(b).expect("commit");
        }
        let s = RedbStore::open(&dir).expect("reopen");
        let rows = &s.read_all().expect("read")["t"];
        assert_eq!(rows.keys().cloned().collect::<Vec<_>>(), vec![b"b".to_vec()]);
        std::fs::remove_file(&dir).ok();
    }
}
