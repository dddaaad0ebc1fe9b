//! A copy-on-write ordered table with an index maintained on every write.
//!
//! Rows live in a `BTreeMap` behind an `Arc`: cloning a table (a snapshot for the scheduler) is
//! O(1), and the ledger's next write copies the table only if a snapshot is still alive. Indexes
//! are derived data: updated on every insert, removal and undo, never hashed or persisted.

use std::collections::BTreeMap;
use std::sync::Arc;

/// An index over a table's rows, kept in step with every write.
pub trait TableIndex<K, V>: Default + Clone {
    /// A row was added.
    fn insert(&mut self, key: &K, row: &V);
    /// A row was removed (`row` is the value it had).
    fn remove(&mut self, key: &K, row: &V);
}

/// No index.
impl<K, V> TableIndex<K, V> for () {
    fn insert(&mut self, _: &K, _: &V) {}
    fn remove(&mut self, _: &K, _: &V) {}
}

#[derive(Clone)]
struct Inner<K, V, I> {
    rows: BTreeMap<K, V>,
    index: I,
}

/// Rows keyed by id, with an index `I`.
#[derive(Clone)]
pub struct Table<K, V, I = ()> {
    inner: Arc<Inner<K, V, I>>,
    /// Changes with every write, to a number no table has had in this process (0: empty as
    /// built): equal generations mean equal rows, so an encoding can be reused.
    generation: u64,
}

/// A number no table has had yet in this process.
pub(crate) fn fresh_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl<K: Ord + Clone, V: Clone, I: TableIndex<K, V>> Default for Table<K, V, I> {
    fn default() -> Self {
        Table {
            inner: Arc::new(Inner { rows: BTreeMap::new(), index: I::default() }),
            generation: 0,
        }
    }
}

impl<K: Ord + Clone, V: Clone, I: TableIndex<K, V>> Table<K, V, I> {
    /// An empty table whose index starts as `index` (for an index that carries configuration).
    pub fn with_index(index: I) -> Self {
        Table { inner: Arc::new(Inner { rows: BTreeMap::new(), index }), generation: 0 }
    }

    /// The table's generation: equal for a table and its unchanged clones, new after any write.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The row with this key.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.inner.rows.get(key)
    }

    /// All rows, in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + '_ {
        self.inner.rows.iter()
    }

    /// The rows as an ordered map.
    pub fn rows(&self) -> &BTreeMap<K, V> {
        &self.inner.rows
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.inner.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.inner.rows.is_empty()
    }

    /// The index.
    pub fn index(&self) -> &I {
        &self.inner.index
    }

    /// Puts `row` at `key` (or removes the row when `row` is `None`); returns what was there.
    pub(crate) fn set(&mut self, key: K, row: Option<V>) -> Option<V> {
        self.generation = fresh_generation();
        let inner = Arc::make_mut(&mut self.inner);
        let old = match row {
            Some(row) => {
                inner.index.insert(&key, &row);
                let old = inner.rows.insert(key.clone(), row);
                if let Some(old) = &old {
                    // The new row is indexed already; drop only the old row's entries, then
                    // re-add the new ones in case both produced the same entry.
                    inner.index.remove(&key, old);
                    if let Some(new) = inner.rows.get(&key) {
                        inner.index.insert(&key, new);
                    }
                }
                old
            }
            None => {
                let old = inner.rows.remove(&key);
                if let Some(old) = &old {
                    inner.index.remove(&key, old);
                }
                old
            }
        };
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[derive(Default, Clone)]
    struct ByValue(BTreeSet<(u32, u32)>);
    impl TableIndex<u32, u32> for ByValue {
        fn insert(&mut self, k: &u32, v: &u32) {
            self.0.insert((*v, *k));
        }
        fn remove(&mut self, k: &u32, v: &u32) {
            self.0.remove(&(*v, *k));
        }
    }

    #[test]
    fn index_follows_inserts_replacements_and_removals() {
        let mut t: Table<u32, u32, ByValue> = Table::default();
        t.set(1, Some(10));
        t.set(2, Some(10));
        t.set(1, Some(10)); // same value again must stay indexed
        t.set(2, Some(20));
        assert_eq!(t.index().0, BTreeSet::from([(10, 1), (20, 2)]));
        assert_eq!(t.set(1, None), Some(10));
        assert_eq!(t.index().0, BTreeSet::from([(20, 2)]));
    }

    #[test]
    fn clones_are_snapshots() {
        let mut t: Table<u32, u32> = Table::default();
        t.set(1, Some(1));
        let snap = t.clone();
        t.set(1, Some(2));
        assert_eq!(snap.get(&1), Some(&1));
        assert_eq!(t.get(&1), Some(&2));
    }
}
