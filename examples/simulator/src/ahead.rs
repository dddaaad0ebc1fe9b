//! Heartbeats signed and verified ahead, on a second core.
//!
//! A simulated SON's heartbeat is a pure function of its keys, its SON id and the slot (signing
//! is deterministic, RFC 6979), so a worker thread can sign the heartbeats of coming slots and
//! verify them while the simulation's thread produces blocks. When a node's heartbeat is due,
//! the simulation takes the prepared transaction, byte for byte what it would have signed itself,
//! with its proof of verification for the ledger, which then does not verify it again. If the
//! worker has fallen behind, the simulation signs inline and the worker skips ahead: results
//! never depend on the worker's timing, only the speed does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use sonprop_core::chain::ops::SonHeartbeat;
use sonprop_core::chain::verify::{verify_detached, Verified};
use sonprop_core::{Digest, NodeIdentity, SignedTransaction, Timestamp, Transaction};

/// How many heartbeats the worker may hold ready (a few hundred blocks of the default network).
const READY: usize = 64;

/// One prepared heartbeat.
struct Prepared {
    slot: u64,
    node: usize,
    tx: SignedTransaction,
    proof: Option<Verified>,
}

/// What the worker needs to sign a heartbeat.
#[derive(Clone)]
pub struct Beater {
    /// Index of the node in the simulation.
    pub node: usize,
    /// Its stagger: it beats in slots where `(slot + stagger) % period == 0`.
    pub stagger: u64,
    /// The node.
    pub identity: NodeIdentity,
}

/// The worker's handle, held by the simulation.
pub struct Ahead {
    ready: Receiver<Prepared>,
    buffer: BTreeMap<(u64, usize), (SignedTransaction, Option<Verified>)>,
    /// The slot the simulation is at: the worker never prepares slots before it.
    now: Arc<AtomicU64>,
}

impl std::fmt::Debug for Ahead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ahead").field("buffered", &self.buffer.len()).finish_non_exhaustive()
    }
}

/// The heartbeat transaction of `id` at slot time `at`, as the simulation signs it.
pub fn heartbeat_tx(
    chain_id: &Digest,
    id: &NodeIdentity,
    at: Timestamp,
    lifetime: u64,
) -> Option<SignedTransaction> {
    let op = SonHeartbeat { son: id.son?, owner: id.account, timestamp: at };
    Some(Transaction::single(at.plus(lifetime), op).sign(chain_id, &[&id.keys]))
}

impl Ahead {
    /// Starts the worker from slot `from`; `None` if the thread cannot start (the simulation
    /// then signs everything itself).
    pub fn start(
        chain_id: Digest,
        genesis: Timestamp,
        interval: u64,
        period: u64,
        lifetime: u64,
        beaters: Vec<Beater>,
        from: u64,
    ) -> Option<Ahead> {
        let (tx, ready) = sync_channel::<Prepared>(READY);
        let now = Arc::new(AtomicU64::new(from));
        let seen = Arc::clone(&now);
        std::thread::Builder::new()
            .name("heartbeats-ahead".into())
            .spawn(move || {
                let mut slot = from;
                loop {
                    // Behind the simulation: skip to where it is.
                    slot = slot.max(seen.load(Ordering::Acquire) + 1);
                    for b in &beaters {
                        if !(slot + b.stagger).is_multiple_of(period.max(1)) {
                            continue;
                        }
                        let at = genesis.plus(slot * interval);
                        let Some(signed) = heartbeat_tx(&chain_id, &b.identity, at, lifetime)
                        else {
                            continue;
                        };
                        let proof = verify_detached(&chain_id, &signed);
                        let item = Prepared { slot, node: b.node, tx: signed, proof };
                        // Waits while READY heartbeats are unclaimed; ends with the simulation.
                        if tx.send(item).is_err() {
                            return;
                        }
                    }
                    slot += 1;
                }
            })
            .ok()?;
        Some(Ahead { ready, buffer: BTreeMap::new(), now })
    }

    /// The prepared heartbeat of `node` at `slot`, with its proof, if the worker has it.
    pub fn take(
        &mut self,
        slot: u64,
        node: usize,
    ) -> Option<(SignedTransaction, Option<Verified>)> {
        self.now.store(slot, Ordering::Release);
        while let Ok(p) = self.ready.try_recv() {
            if p.slot >= slot {
                self.buffer.insert((p.slot, p.node), (p.tx, p.proof));
            }
        }
        // Anything before this slot is stale.
        self.buffer = self.buffer.split_off(&(slot, 0));
        self.buffer.remove(&(slot, node))
    }
}
