//! A node's own work on decided blocks, beside consensus: its SON's heartbeats, and the
//! triggers and validators of every linked kind that selects it (the scheduler), whose
//! transactions go into this node's mempool and on to its peers.
//!
//! It runs on its own task and reads the latest decided state: a slow trigger delays the next
//! run here, never a vote or a block.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sonprop_core::chain::ops::SonHeartbeat;
use sonprop_core::node::scheduler::SinkError;
use sonprop_core::{
    NodeIdentity, Registry, Scheduler, SchedulerConfig, Services, SignedTransaction, State,
    Timestamp, Transaction, TxSink,
};
use tokio::sync::watch;

use crate::app::Shared;

/// A heartbeat stays valid this many block intervals after the head it follows.
pub const HEARTBEAT_LIFETIME_BLOCKS: u64 = 30;

/// Counters of the node's own work, for the metrics endpoint.
#[derive(Default)]
pub struct DutyCounters {
    /// Transactions the scheduler handed to the mempool.
    pub drafted: AtomicU64,
    /// Trigger and validator runs that failed (error, panic, timeout).
    pub failures: AtomicU64,
    /// Heartbeats sent.
    pub heartbeats: AtomicU64,
}

/// Puts a node's own transactions into its mempool and passes them on to its peers.
pub struct MempoolSink {
    /// The node's shared state.
    pub shared: Arc<Shared>,
    /// The peers' JSON-RPC URLs.
    pub peers: Vec<String>,
}

impl TxSink for MempoolSink {
    fn submit(&self, tx: SignedTransaction) -> Result<(), SinkError> {
        let head = self.shared.head();
        let digest = tx.transaction.digest(&head.state.chain_id());
        let raw = serde_json::to_value(&tx).map_err(|e| SinkError(e.to_string()))?;
        let new =
            self.shared.mempool.add(digest, tx, head.time).map_err(|e| SinkError(e.to_string()))?;
        if new {
            crate::client::pass_on(&self.peers, raw);
        }
        Ok(())
    }
}

/// The heartbeat of `identity`'s SON after `state`, if one is due (none sent yet, or the last
/// one `son_heartbeat_frequency` ago).
pub fn heartbeat(
    identity: &NodeIdentity,
    state: &State,
    last: Option<Timestamp>,
) -> Option<SignedTransaction> {
    let son = identity.son?;
    let p = state.params();
    // Stamped with the next slot: within the chain's window around the head, after the last.
    let at = state.next_slot_time();
    if last.is_some_and(|l| at.since(l) < p.son_heartbeat_frequency) {
        return None;
    }
    if state.son(son)?.status == sonprop_core::SonStatus::Deregistered {
        return None;
    }
    let op = SonHeartbeat { son, owner: identity.account, timestamp: at };
    let expiration = at.plus(HEARTBEAT_LIFETIME_BLOCKS * p.block_interval);
    Some(Transaction::single(expiration, op).sign(&state.chain_id(), &[&identity.keys]))
}

/// A node's duties: its scheduler, its identity, where its transactions go.
pub struct Duties {
    identity: NodeIdentity,
    scheduler: Scheduler,
    sink: MempoolSink,
}

impl Duties {
    /// The duties of `identity` for the kinds of `registry`. A kind whose parts need a service
    /// this node lacks is an error here, at start-up.
    pub fn new(
        identity: NodeIdentity,
        registry: &Registry,
        sink: MempoolSink,
    ) -> Result<Duties, sonprop_core::SchedulerError> {
        let scheduler = Scheduler::new(
            registry.node(),
            identity.clone(),
            &Services::default(),
            SchedulerConfig::default(),
        )?;
        Ok(Duties { identity, scheduler, sink })
    }

    /// Runs on every decided state `heads` announces, until it closes.
    pub async fn run(mut self, mut heads: watch::Receiver<Arc<State>>) {
        let mut last_beat: Option<Timestamp> = None;
        while heads.changed().await.is_ok() {
            let state = heads.borrow_and_update().clone();
            let counters = &self.sink.shared.duties;
            if let Some(tx) = heartbeat(&self.identity, &state, last_beat) {
                last_beat = Some(state.next_slot_time());
                match self.sink.submit(tx) {
                    Ok(()) => {
                        counters.heartbeats.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat not sent"),
                }
            }
            let report = self.scheduler.on_block(state, &self.sink).await;
            let counters = &self.sink.shared.duties;
            counters.drafted.fetch_add(report.submitted as u64, Ordering::Relaxed);
            for f in report.failures() {
                counters.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(kind = f.kind, status = ?f.status, "a trigger or validator failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonprop_core::testkit::NetworkBuilder;

    #[test]
    fn a_son_beats_when_due_and_a_witness_never() {
        let b = NetworkBuilder::default().witnesses(1).sons(1);
        let (genesis, witnesses, sons, _) = b.genesis();
        let registry = Registry::discover().expect("registry");
        let ledger = sonprop_core::Ledger::new(&genesis, registry.chain()).expect("ledger");
        let st = ledger.state();
        assert!(heartbeat(&witnesses[0], st, None).is_none(), "a witness has no SON");
        let first = heartbeat(&sons[0], st, None).expect("the first is due");
        let at = st.next_slot_time();
        let freq = st.params().son_heartbeat_frequency;
        assert!(heartbeat(&sons[0], st, Some(at.minus(freq - 1))).is_none(), "too soon");
        assert!(heartbeat(&sons[0], st, Some(at.minus(freq))).is_some(), "due again");
        // Signed by the SON's owner for this chain, stamped with the next slot.
        let d = first.transaction.digest(&st.chain_id());
        assert!(first.signatures.iter().all(|s| s.verify(&d)));
        assert!(first.transaction.expiration > at);
    }
}
