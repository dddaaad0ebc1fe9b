//! Transactions waiting for a block, in arrival order, each once.

use std::collections::BTreeMap;
use std::sync::Mutex;

use sonprop_core::{Digest, SignedTransaction, Timestamp};

/// How many transactions a mempool holds at most.
pub const MEMPOOL_LIMIT: usize = 20_000;

/// Why a transaction was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// The pool is full.
    #[error("the mempool is full ({MEMPOOL_LIMIT} transactions)")]
    Full,
    /// Already expired at the chain's head.
    #[error("the transaction expired at {expiration}, before the head block ({head})")]
    Expired {
        /// Its expiration.
        expiration: Timestamp,
        /// The head block's time.
        head: Timestamp,
    },
}

#[derive(Default)]
struct Pool {
    next: u64,
    by_digest: BTreeMap<Digest, u64>,
    by_arrival: BTreeMap<u64, (Digest, SignedTransaction)>,
}

/// The node's mempool (shared by the consensus dialog and the RPC server).
#[derive(Default)]
pub struct Mempool(Mutex<Pool>);

impl Mempool {
    /// Adds `tx` (whose digest is `digest`) unless it is there already: `Ok(true)` if it is
    /// new, `Ok(false)` if it was already held.
    pub fn add(
        &self,
        digest: Digest,
        tx: SignedTransaction,
        head: Timestamp,
    ) -> Result<bool, MempoolError> {
        let expiration = tx.transaction.expiration;
        if expiration <= head {
            return Err(MempoolError::Expired { expiration, head });
        }
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if p.by_digest.contains_key(&digest) {
            return Ok(false);
        }
        if p.by_arrival.len() >= MEMPOOL_LIMIT {
            return Err(MempoolError::Full);
        }
        let n = p.next;
        p.next += 1;
        p.by_digest.insert(digest, n);
        p.by_arrival.insert(n, (digest, tx));
        Ok(true)
    }

    /// Up to `max` transactions, oldest first, left in the pool.
    pub fn candidates(&self, max: usize) -> Vec<SignedTransaction> {
        let p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        p.by_arrival.values().take(max).map(|(_, tx)| tx.clone()).collect()
    }

    /// Forgets these transactions (included in a block, or refused by it).
    pub fn remove(&self, digests: impl IntoIterator<Item = Digest>) {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for d in digests {
            if let Some(n) = p.by_digest.remove(&d) {
                p.by_arrival.remove(&n);
            }
        }
    }

    /// Forgets the transactions expired at `head`.
    pub fn expire(&self, head: Timestamp) {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<(u64, Digest)> = p
            .by_arrival
            .iter()
            .filter(|(_, (_, tx))| tx.transaction.expiration <= head)
            .map(|(n, (d, _))| (*n, *d))
            .collect();
        for (n, d) in gone {
            p.by_arrival.remove(&n);
            p.by_digest.remove(&d);
        }
    }

    /// How many transactions wait.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).by_arrival.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonprop_core::chain::ops::SonHeartbeat;
    use sonprop_core::{AccountId, KeyPair, SonId, Transaction};

    fn tx(n: u64, expiration: u64) -> (Digest, SignedTransaction) {
        let op = SonHeartbeat { son: SonId(n), owner: AccountId(n), timestamp: Timestamp(n) };
        let t = Transaction::single(Timestamp(expiration), op);
        let d = t.digest(&Digest::default());
        (d, t.sign(&Digest::default(), &[&KeyPair::from_seed("k")]))
    }

    #[test]
    fn each_transaction_is_held_once_in_arrival_order_until_removed_or_expired() {
        let m = Mempool::default();
        let (d1, t1) = tx(1, 100);
        let (d2, t2) = tx(2, 50);
        assert_eq!(m.add(d1, t1.clone(), Timestamp(10)), Ok(true));
        assert_eq!(m.add(d2, t2, Timestamp(10)), Ok(true));
        assert_eq!(m.add(d1, t1, Timestamp(10)), Ok(false), "the same twice is held once");
        assert_eq!(m.len(), 2);
        assert!(!m.is_empty());
        let first = m.candidates(1);
        assert_eq!(first[0].transaction.digest(&Digest::default()), d1, "oldest first");
        m.expire(Timestamp(50));
        assert_eq!(m.len(), 1, "expired at the head: gone");
        m.remove([d1]);
        assert!(m.is_empty());
    }

    #[test]
    fn an_expired_transaction_is_refused_and_a_full_pool_takes_no_more() {
        let m = Mempool::default();
        let (d, t) = tx(1, 10);
        assert_eq!(
            m.add(d, t, Timestamp(10)),
            Err(MempoolError::Expired { expiration: Timestamp(10), head: Timestamp(10) })
        );
        assert!(m.is_empty());
        for n in 0..MEMPOOL_LIMIT as u64 {
            let (d, t) = tx(n + 100, 1_000);
            assert_eq!(m.add(d, t, Timestamp(0)), Ok(true));
        }
        let (d, t) = tx(1, 1_000);
        assert_eq!(m.add(d, t, Timestamp(0)), Err(MempoolError::Full));
        assert_eq!(m.len(), MEMPOOL_LIMIT);
    }
}
