//! Heartbeats signed and verified ahead, on the other cores.
//!
//! A simulated SON's heartbeat is a pure function of its keys, its SON id and the slot (signing
//! is deterministic, RFC 6979), so worker threads (one per other core) can sign the heartbeats
//! of coming slots and verify them while the simulation's thread produces blocks. Slots are
//! claimed one at a time from a shared counter, so none is prepared twice. When a node's
//! heartbeat is due, the simulation takes the prepared transaction, byte for byte what it would
//! have signed itself, with its proof of verification for the ledger, which then does not
//! verify it again. If a worker is still on that slot, the simulation prepares the next
//! unclaimed slots itself while it waits, and if no worker has claimed it, it claims and
//! prepares it: both threads stay busy, and results never depend on their timing, only the
//! speed does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
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
    /// What a slot's heartbeats are made of, for the slots the simulation prepares itself.
    work: Arc<Work>,
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

/// Everything needed to prepare a slot's heartbeats.
struct Work {
    chain_id: Digest,
    schedule: Schedule,
    beaters: Vec<Beater>,
}

impl Work {
    /// The heartbeats of `slot`, signed and verified.
    fn prepare(&self, slot: u64) -> Batch {
        let at = self.schedule.genesis.plus(slot * self.schedule.interval);
        let beats = self
            .beaters
            .iter()
            .filter(|b| (slot + b.stagger).is_multiple_of(self.schedule.period.max(1)))
            .filter_map(|b| {
                let signed = heartbeat_tx(&self.chain_id, &b.identity, at, self.schedule.lifetime)?;
                let proof = verify_detached(&self.chain_id, &signed);
                Some((b.node, signed, proof))
            })
            .collect();
        Batch { slot, beats }
    }
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
        let work = Arc::new(Work { chain_id, schedule, beaters });
        let mut started = 0;
        for i in 0..workers.max(1) {
            let (tx, next, work) = (tx.clone(), Arc::clone(&next), Arc::clone(&work));
            let spawned =
                std::thread::Builder::new().name(format!("heartbeats-{i}")).spawn(move || loop {
                    let slot = next.fetch_add(1, Ordering::AcqRel);
                    // Waits while READY slots are unclaimed; ends with the simulation.
                    if tx.send(work.prepare(slot)).is_err() {
                        return;
                    }
                });
            started += usize::from(spawned.is_ok());
        }
        (started > 0).then(|| Ahead { ready, work, buffer: BTreeMap::new(), next, asked: from })
    }

    /// The prepared heartbeat of `node` at `slot`, with its proof: taken from the workers,
    /// waited for while a worker is preparing it, or prepared here if no worker has claimed
    /// the slot yet. `None` for a slot already passed, or when no worker is left.
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
            // Anything before this slot is stale.
            self.buffer = self.buffer.split_off(&slot);
        }
        while !self.buffer.contains_key(&slot) {
            let workers_gone = loop {
                match self.ready.try_recv() {
                    Ok(batch) if batch.slot >= slot => {
                        self.buffer.insert(batch.slot, batch.beats);
                    }
                    Ok(_) => {}
                    Err(TryRecvError::Empty) => break false,
                    Err(TryRecvError::Disconnected) => break true,
                }
            };
            if self.buffer.contains_key(&slot) {
                break;
            }
            // Unclaimed (the workers are behind): claim it, skipping the passed slots before
            // it, and prepare it here. Claimed: a worker is on it and will send it; meanwhile
            // prepare the next unclaimed slot here rather than wait.
            let claimed = self.next.load(Ordering::Acquire);
            if workers_gone && claimed > slot {
                // Claimed by a worker that is gone: the caller signs it.
                return None;
            }
            let mine = if claimed <= slot {
                self.next
                    .compare_exchange(claimed, slot + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                    .then_some(slot)
            } else {
                Some(self.next.fetch_add(1, Ordering::AcqRel))
            };
            if let Some(mine) = mine {
                let batch = self.work.prepare(mine);
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

    /// With its workers gone, the simulation prepares the slots nobody claimed itself, and a
    /// slot a gone worker had claimed comes back as `None` (the caller signs it) instead of
    /// being waited for forever.
    #[test]
    fn without_workers_nothing_is_waited_for() {
        let chain = Digest::of(b"chain");
        let schedule = Schedule { genesis: Timestamp(1_000), interval: 3, period: 1, lifetime: 60 };
        let work = Arc::new(Work { chain_id: chain, schedule, beaters: vec![beater(0)] });
        let (tx, ready) = sync_channel::<Batch>(1);
        drop(tx);
        let next = Arc::new(AtomicU64::new(0));
        let mut ahead =
            Ahead { ready, work, buffer: BTreeMap::new(), next: Arc::clone(&next), asked: 0 };
        let (got, proof) = ahead.take(2, 0).expect("unclaimed: prepared here");
        let inline = heartbeat_tx(&chain, &beater(0).identity, Timestamp(1_006), 60);
        assert_eq!(
            serde_json::to_string(&got).expect("json"),
            serde_json::to_string(&inline).expect("json")
        );
        assert!(proof.is_some());
        // A worker claimed slots up to 9, then went. Asked on a thread of its own, so a
        // regression fails here instead of hanging the test run.
        next.store(10, Ordering::Release);
        let (done, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(ahead.take(5, 0).is_none()));
        let answer = answer.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(answer, Ok(true), "claimed by a worker that is gone: None, at once");
    }
}
