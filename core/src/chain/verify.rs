//! Signature work done ahead of the sequential apply: a block's transactions are encoded and
//! their signatures verified across cores, then applied in order as before; and a transaction
//! whose signatures a node already verified (on entry to its mempool) is not verified again
//! when its block is applied.
//!
//! Neither changes what is accepted: a pre-check only says "these signatures verify over this
//! digest", a pure function of the transaction's bytes; every other rule (duplicate and
//! irrelevant signatures, authorities, expiry, operations) runs in the sequential apply, and a
//! transaction whose pre-check failed is checked there again, giving the same error as without
//! it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::chain::crypto::{Digest, Signature};
use crate::chain::time::Timestamp;
use crate::chain::tx::SignedTransaction;

/// Below this many transactions a block is pre-checked on the calling thread: starting threads
/// costs more than verifying a few signatures (about 35 µs each).
pub const PARALLEL_FROM: usize = 16;

/// One transaction's pre-check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prechecked {
    /// The transaction's digest (its id).
    pub digest: Digest,
    /// The encoded length of the transaction (without signatures).
    pub transaction_len: u64,
    /// Whether every signature verifies over `digest` (from this pre-check or the cache).
    pub signatures_valid: bool,
}

/// A transaction's signatures, bound to its digest: the cache's key.
fn sealed(digest: &Digest, tx: &SignedTransaction) -> Digest {
    let mut bytes = Vec::with_capacity(32 + tx.signatures.len() * 97);
    bytes.extend_from_slice(&digest.0);
    for s in &tx.signatures {
        bytes.extend_from_slice(&s.key.serialize());
        bytes.extend_from_slice(&s.sig.serialize_compact());
    }
    Digest::of(&bytes)
}

/// Signatures verified once for every ledger of a process that holds this cache: a pure
/// function of (key, digest, signature) needs computing once, as Bitcoin Core's signature
/// cache serves every check in one node. Keyed by all three, so a different signature over the
/// same digest, or the same signature over another digest, is verified afresh; only signatures
/// that verified are remembered. Node-local: it spares work, never decides validity. Hand one
/// to the replicas of a process ([`crate::Ledger::share_signatures`]).
#[derive(Debug, Default)]
pub struct SignatureCache {
    seen: std::sync::Mutex<std::collections::HashSet<SignatureKey>>,
}

/// Key, digest and signature, as bytes: compared whole (no digest of them to trust).
type SignatureKey = [u8; 33 + 32 + 64];

/// Past this many entries the cache starts again (262 144 signatures: about 40 MiB).
const SIGNATURE_CACHE_MAX: usize = 1 << 18;

impl SignatureCache {
    /// A cache to share.
    pub fn shared() -> std::sync::Arc<SignatureCache> {
        std::sync::Arc::new(SignatureCache::default())
    }

    fn key(sig: &Signature, digest: &Digest) -> SignatureKey {
        let mut bytes = [0u8; 33 + 32 + 64];
        bytes[..33].copy_from_slice(&sig.key.serialize());
        bytes[33..65].copy_from_slice(&digest.0);
        bytes[65..].copy_from_slice(&sig.sig.serialize_compact());
        bytes
    }

    /// Whether `sig` verifies over `digest`: from the cache if this process verified it before,
    /// else verified now (and remembered if it verifies).
    pub fn verify(&self, sig: &Signature, digest: &Digest) -> bool {
        let key = Self::key(sig, digest);
        // A poisoned lock only loses what was cached.
        if self.seen.lock().unwrap_or_else(|p| p.into_inner()).contains(&key) {
            return true;
        }
        let ok = sig.verify(digest);
        if ok {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.len() >= SIGNATURE_CACHE_MAX {
                seen.clear();
            }
            seen.insert(key);
        }
        ok
    }

    /// How many signatures it holds.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Verifies `sig` over `digest`, through `shared` when there is one.
pub(crate) fn verify_signature(
    shared: Option<&SignatureCache>,
    sig: &Signature,
    digest: &Digest,
) -> bool {
    match shared {
        Some(c) => c.verify(sig, digest),
        None => sig.verify(digest),
    }
}

/// Transactions whose signatures this node has verified, until they expire, and the process's
/// shared signature cache if the ledger was given one. Node-local: it only spares work, never
/// decides validity.
#[derive(Debug, Default, Clone)]
pub struct VerifiedCache {
    entries: BTreeMap<Digest, Timestamp>,
    pub(crate) shared: Option<std::sync::Arc<SignatureCache>>,
}

/// Past this many entries, expired ones are dropped on the next insert.
const CACHE_PRUNE_AT: usize = 4096;

impl VerifiedCache {
    /// Remembers that `tx` (with exactly these signatures) verified over `digest`.
    pub fn insert(&mut self, digest: &Digest, tx: &SignedTransaction, head: Timestamp) {
        if self.entries.len() >= CACHE_PRUNE_AT {
            self.entries.retain(|_, exp| *exp > head);
        }
        self.entries.insert(sealed(digest, tx), tx.transaction.expiration);
    }

    /// Remembers a proof made by [`verify_detached`].
    pub fn insert_verified(&mut self, v: Verified, head: Timestamp) {
        if self.entries.len() >= CACHE_PRUNE_AT {
            self.entries.retain(|_, exp| *exp > head);
        }
        self.entries.insert(v.sealed, v.expiration);
    }

    /// Whether `tx`, with exactly these signatures, verified over `digest` before.
    pub fn contains(&self, digest: &Digest, tx: &SignedTransaction) -> bool {
        !self.entries.is_empty() && self.entries.contains_key(&sealed(digest, tx))
    }

    /// How many transactions it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Proof that a transaction's signatures verified over its digest, made only by
/// [`verify_detached`]: a node can verify on another thread (as transactions reach its
/// mempool) and hand the proofs to its ledger ([`crate::Ledger::remember_verified`]), which then
/// does not verify them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    sealed: Digest,
    expiration: Timestamp,
}

/// Verifies `tx`'s signatures over its digest for the chain `chain_id`, anywhere (no ledger
/// needed): the proof if every signature verifies, `None` otherwise (or if encoding panicked).
/// Nothing else about the transaction is checked; the ledger still applies every other rule.
pub fn verify_detached(chain_id: &Digest, tx: &SignedTransaction) -> Option<Verified> {
    let p = precheck(chain_id, tx, &VerifiedCache::default())?;
    p.signatures_valid
        .then(|| Verified { sealed: sealed(&p.digest, tx), expiration: tx.transaction.expiration })
}

/// Encodes one transaction and verifies its signatures (unless the cache has them). `None` if
/// encoding panicked (an operation crate's `Serialize`): the sequential apply then meets the
/// same panic and refuses the transaction with its typed error.
pub fn precheck(
    chain_id: &Digest,
    tx: &SignedTransaction,
    cache: &VerifiedCache,
) -> Option<Prechecked> {
    let run = std::panic::AssertUnwindSafe(|| {
        let (digest, transaction_len) = tx.transaction.digest_and_len(chain_id);
        let shared = cache.shared.as_deref();
        let signatures_valid = cache.contains(&digest, tx)
            || tx.signatures.iter().all(|s| verify_signature(shared, s, &digest));
        Prechecked { digest, transaction_len, signatures_valid }
    });
    std::panic::catch_unwind(run).ok()
}

/// The machine's cores, asked once (the standard library reads the cgroup files each time).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// The pre-checks of a block's transactions, handed to the sequential apply in order as they
/// become ready (see [`with_prechecks`]).
pub struct Prechecks<'a> {
    chain_id: &'a Digest,
    txs: &'a [SignedTransaction],
    cache: &'a VerifiedCache,
    /// Shared with helper threads; `None` when everything is checked on the calling thread.
    shared: Option<&'a Shared>,
}

/// What the calling thread and its helpers share: the next transaction nobody has claimed, and
/// each transaction's result once it is known.
struct Shared {
    next: AtomicUsize,
    results: Vec<OnceLock<Option<Prechecked>>>,
}

impl Shared {
    /// Claims the next unchecked transaction and checks it; `false` once none is left.
    fn check_next(&self, p: &Prechecks<'_>) -> bool {
        let i = self.next.fetch_add(1, Ordering::AcqRel);
        let Some(slot) = self.results.get(i) else { return false };
        let _ = slot.set(precheck(p.chain_id, &p.txs[i], p.cache));
        true
    }
}

impl Prechecks<'_> {
    /// The pre-check of transaction `i` (`None` if encoding it panicked). While it is not ready,
    /// the calling thread checks the next unclaimed transactions itself, then waits for the
    /// helper that claimed `i`.
    pub fn get(&self, i: usize) -> Option<Prechecked> {
        let Some(shared) = self.shared else {
            return precheck(self.chain_id, self.txs.get(i)?, self.cache);
        };
        let slot = shared.results.get(i)?;
        loop {
            if let Some(done) = slot.get() {
                return *done;
            }
            if !shared.check_next(self) {
                // Every transaction is claimed: `i` is being checked by a helper, which cannot
                // panic (each pre-check catches its own).
                return *slot.wait();
            }
        }
    }
}

/// Runs `apply` with the pre-checks of `txs`. From [`PARALLEL_FROM`] transactions on a machine
/// with several cores, helper threads (one per other core) check the transactions in order
/// while `apply` consumes them, so the sequential apply of the first transactions overlaps the
/// verification of the later ones; results are those of checking each transaction alone.
pub fn with_prechecks<R>(
    chain_id: &Digest,
    txs: &[SignedTransaction],
    cache: &VerifiedCache,
    apply: impl FnOnce(&Prechecks<'_>) -> R,
) -> R {
    let cores = cores();
    if txs.len() < PARALLEL_FROM || cores < 2 {
        return apply(&Prechecks { chain_id, txs, cache, shared: None });
    }
    let shared = Shared {
        next: AtomicUsize::new(0),
        results: (0..txs.len()).map(|_| OnceLock::new()).collect(),
    };
    let p = Prechecks { chain_id, txs, cache, shared: Some(&shared) };
    std::thread::scope(|scope| {
        for _ in 1..cores.min(txs.len()) {
            scope.spawn(|| while shared.check_next(&p) {});
        }
        let out = apply(&p);
        // A block refused half way: the helpers stop claiming.
        shared.next.fetch_max(txs.len(), Ordering::AcqRel);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::crypto::KeyPair;
    use crate::chain::ids::{AccountId, SonId};
    use crate::chain::ops::SonHeartbeat;
    use crate::chain::tx::Transaction;

    fn tx(i: u64, key: &KeyPair, chain: &Digest) -> SignedTransaction {
        let hb = SonHeartbeat { son: SonId(i), owner: AccountId(i), timestamp: Timestamp(i) };
        Transaction::single(Timestamp(1_000 + i), hb).sign(chain, &[key])
    }

    /// Spread over threads or not, every transaction gets its own verdict, in order.
    #[test]
    fn checked_across_threads_as_in_order() {
        let (chain, key) = (Digest::of(b"chain"), KeyPair::from_seed("k"));
        let mut txs: Vec<_> = (0..50).map(|i| tx(i, &key, &chain)).collect();
        for i in [3, 17, 41] {
            txs[i].signatures[0] = KeyPair::from_seed("other").sign(&Digest::of(b"x"));
            txs[i].signatures[0].key = key.public();
        }
        let cache = VerifiedCache::default();
        let one_by_one: Vec<_> = txs.iter().map(|t| precheck(&chain, t, &cache)).collect();
        let in_order = with_prechecks(&chain, &txs, &cache, |p| {
            (0..txs.len()).map(|i| p.get(i)).collect::<Vec<_>>()
        });
        assert_eq!(in_order, one_by_one);
        // A slow apply lets the helpers run ahead; asking again gives the same answer.
        let slow = with_prechecks(&chain, &txs, &cache, |p| {
            (0..txs.len())
                .map(|i| {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                    assert_eq!(p.get(i), p.get(i));
                    p.get(i)
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(slow, one_by_one);
        assert_eq!(with_prechecks(&chain, &txs, &cache, |p| p.get(txs.len())), None);
        let invalid: Vec<_> = one_by_one
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some_and(|p| !p.signatures_valid))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(invalid, vec![3, 17, 41]);
    }

    /// A proof is made only for signatures that verify, and stands only for those bytes.
    #[test]
    fn detached_proofs_exist_only_for_valid_signatures() {
        let (chain, key) = (Digest::of(b"chain"), KeyPair::from_seed("k"));
        let good = tx(1, &key, &chain);
        let proof = verify_detached(&chain, &good).expect("valid signatures");
        assert!(verify_detached(&Digest::of(b"another chain"), &good).is_none());
        let mut forged = good.clone();
        forged.signatures[0] = KeyPair::from_seed("other").sign(&Digest::of(b"x"));
        forged.signatures[0].key = key.public();
        assert!(verify_detached(&chain, &forged).is_none());
        let mut cache = VerifiedCache::default();
        cache.insert_verified(proof, Timestamp(0));
        let digest = good.transaction.digest(&chain);
        assert!(cache.contains(&digest, &good));
        assert!(!cache.contains(&digest, &forged), "the proof does not cover other bytes");
    }

    /// The cache spares the verification itself: a transaction it holds (with exactly those
    /// signature bytes) is taken as verified; one it does not hold is verified.
    #[test]
    fn the_cache_spares_verification_for_what_it_holds_only() {
        let (chain, key) = (Digest::of(b"chain"), KeyPair::from_seed("k"));
        let mut bad = tx(1, &key, &chain);
        bad.signatures[0] = KeyPair::from_seed("other").sign(&Digest::of(b"x"));
        bad.signatures[0].key = key.public();
        let mut cache = VerifiedCache::default();
        let digest = bad.transaction.digest(&chain);
        assert!(!precheck(&chain, &bad, &cache).expect("encodes").signatures_valid);
        // Only a node's own check puts entries here; planting one shows it is not re-verified.
        cache.insert(&digest, &bad, Timestamp(0));
        assert!(precheck(&chain, &bad, &cache).expect("encodes").signatures_valid);
        let good = tx(1, &key, &chain);
        assert!(!cache.contains(&digest, &good), "other signature bytes are another entry");
    }
}
