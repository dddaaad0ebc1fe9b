//! Heartbeats signed and verified ahead, on the other cores.
//!
//! A simulated SON's heartbeat is a pure function of its keys, its SON id and the slot (signing
//! is deterministic, RFC 6979), so worker threads can sign the heartbeats of coming slots and
//! verify them while the simulation's thread produces blocks. Workers claim slots one at a time
//! from a shared counter, so no slot is prepared twice and the work spreads over every core.
//! When a node's heartbeat is due, the simulation takes the prepared transaction, byte for byte
//! what it would have signed itself, with its proof of verification for the ledger, which then
//! does not verify it again; if the slot is being prepared, it waits for it. Only when no worker
//! is left does the simulation sign itself: results never depend on the workers' timing, only
//! the speed does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use sonprop_core::chain::ops::SonHeartbeat;
use sonprop_core::chain::verify::{verify_detached, Verified};
use sonprop_core::{Digest, NodeIdentity, SignedTransaction, Timestamp, Transaction};

/// How many slots the workers may hold ready (about 64 heartbeats of the default network).
const READY: usize = 256;

/// The heartbeats of one slot, as one worker prepared them (possibly none).
struct Batch {
    slot: u64,
    beats: Vec<(usize, SignedTransaction, Option<Verified>)>,
}

/// What a worker needs to sign a heartbeat.
#[derive(Clone)]
pub struct Beater {
    /// Index of the node in the simulation.
    pub node: usize,
    /// Its stagger: it beats in slots where `(slot + stagger) % period == 0`.
    pub stagger: u64,
    /// The node.
    pub identity: NodeIdentity,
}

/// The workers' handle, held by the simulation.
pub struct Ahead {
    ready: Receiver<Batch>,
    /// Slots received and not yet taken.
    buffer: BTreeMap<u64, Vec<(usize, SignedTransaction, Option<Verified>)>>,
    /// The next slot a worker will claim.
    next: Arc<AtomicU64>,
    /// The latest slot asked for: earlier slots are never waited for.
    asked: u64,
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

/// Where heartbeats fall: the chain's clock and the beaters' schedule.
#[derive(Clone, Copy)]
pub struct Schedule {
    /// The chain's genesis time.
    pub genesis: Timestamp,
    /// Seconds per slot.
    pub interval: u64,
    /// Slots between one SON's heartbeats.
    pub period: u64,
    /// Seconds a heartbeat transaction stays valid.
    pub lifetime: u64,
}

impl Ahead {
    /// Starts `workers` threads from slot `from`; `None` if none can start (the simulation
    /// then signs everything itself).
    pub fn start(
        chain_id: Digest,
        schedule: Schedule,
        beaters: Vec<Beater>,
        from: u64,
        workers: usize,
    ) -> Option<Ahead> {
        let (tx, ready) = sync_channel::<Batch>(READY);
        let next = Arc::new(AtomicU64::new(from));
        let beaters = Arc::new(beaters);
        let mut started = 0;
        for i in 0..workers.max(1) {
            let (tx, next, beaters) = (tx.clone(), Arc::clone(&next), Arc::clone(&beaters));
            let spawned =
                std::thread::Builder::new().name(format!("heartbeats-{i}")).spawn(move || loop {
                    let slot = next.fetch_add(1, Ordering::AcqRel);
                    let at = schedule.genesis.plus(slot * schedule.interval);
                    let beats = beaters
                        .iter()
                        .filter(|b| (slot + b.stagger).is_multiple_of(schedule.period.max(1)))
                        .filter_map(|b| {
                            let signed =
                                heartbeat_tx(&chain_id, &b.identity, at, schedule.lifetime)?;
                            let proof = verify_detached(&chain_id, &signed);
                            Some((b.node, signed, proof))
                        })
                        .collect();
                    // Waits while READY slots are unclaimed; ends with the simulation.
                    if tx.send(Batch { slot, beats }).is_err() {
                        return;
                    }
                });
            started += usize::from(spawned.is_ok());
        }
        (started > 0).then(|| Ahead { ready, buffer: BTreeMap::new(), next, asked: from })
    }

    /// The prepared heartbeat of `node` at `slot`, with its proof. Waits while a worker is
    /// preparing that slot; `None` for a slot already passed, or when no worker is left.
    pub fn take(
        &mut self,
        slot: u64,
        node: usize,
    ) -> Option<(SignedTransaction, Option<Verified>)> {
        if slot < self.asked {
            return None;
        }
        if slot > self.asked {
            self.asked = slot;
            // Anything before this slot is stale; workers left behind skip to it.
            self.buffer = self.buffer.split_off(&slot);
            self.next.fetch_max(slot, Ordering::AcqRel);
        }
        while !self.buffer.contains_key(&slot) {
            // Every slot from here on is claimed by a worker that will send it.
            let batch = self.ready.recv().ok()?;
            if batch.slot >= slot {
                self.buffer.insert(batch.slot, batch.beats);
            }
        }
        let beats = self.buffer.get_mut(&slot)?;
        let i = beats.iter().position(|(n, _, _)| *n == node)?;
        let (_, tx, proof) = beats.swap_remove(i);
        Some((tx, proof))
    }
}

#[cfg(test)]
mod tests {
    use sonprop_core::chain::crypto::KeyPair;
    use sonprop_core::{AccountId, SonId};

    use super::*;

    fn beater(i: u64) -> Beater {
        let identity = NodeIdentity {
            name: format!("son-{i}"),
            account: AccountId(100 + i),
            keys: KeyPair::from_seed(&format!("son-{i}")),
            witness: None,
            son: Some(SonId(i)),
        };
        Beater { node: i as usize, stagger: i, identity }
    }

    /// Whatever the workers' timing, each heartbeat taken is byte for byte the one the
    /// simulation would sign itself, with a proof; a node that does not beat in a slot, and a
    /// slot already passed, get nothing; asking far ahead makes the workers skip there.
    #[test]
    fn prepared_heartbeats_are_the_ones_signed_inline() {
        let chain = Digest::of(b"chain");
        let schedule = Schedule { genesis: Timestamp(1_000), interval: 3, period: 4, lifetime: 60 };
        let beaters: Vec<Beater> = (0..3).map(beater).collect();
        for workers in [1, 2, 3] {
            let mut ahead =
                Ahead::start(chain, schedule, beaters.clone(), 0, workers).expect("workers");
            for slot in (0..40).chain(5_000..5_010) {
                for b in &beaters {
                    let due = (slot + b.stagger).is_multiple_of(schedule.period);
                    let got = ahead.take(slot, b.node);
                    if !due {
                        assert!(got.is_none(), "slot {slot}, node {}", b.node);
                        continue;
                    }
                    let (tx, proof) = got.expect("prepared");
                    let at = schedule.genesis.plus(slot * schedule.interval);
                    let inline =
                        heartbeat_tx(&chain, &b.identity, at, schedule.lifetime).expect("a SON");
                    assert_eq!(
                        serde_json::to_string(&tx).expect("json"),
                        serde_json::to_string(&inline).expect("json"),
                        "slot {slot}, node {}, {workers} workers",
                        b.node
                    );
                    assert!(proof.is_some(), "verified ahead");
                }
            }
            assert!(ahead.take(3, 1).is_none(), "a slot already passed");
        }
    }
}
