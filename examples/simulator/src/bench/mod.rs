//! `sonprop bench`: the figures behind docs/performance.md, measured in one run.
//!
//! - Trigger evaluation per block, indexed (this framework) against the Peerplays-style scan
//!   ([`baseline`]), for 100 to 100 000 registered SONs.
//! - `apply_block` per heartbeat transaction against raw secp256k1 verification.
//! - Complete proposal lifecycles per second through the ledger.
//! - Simulated days per wall second and peak memory of the default network, each in a child
//!   process so that the large ledgers built here do not count.

pub mod baseline;
pub mod cli;
pub mod conditions;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use serde::Serialize;
use sonprop_core::chain::ops::{ProposalCreate, ProposalUpdate, SonHeartbeat};
use sonprop_core::node::scheduler::{CollectingSink, Scheduler, SchedulerConfig};
use sonprop_core::node::services::Services;
use sonprop_core::testkit::probe::{self, AccountProbe, SonProbe};
use sonprop_core::{
    Account, AccountId, Authority, Block, ChainParameters, Digest, Genesis, KeyPair, Ledger,
    NodeIdentity, Registry, SignedTransaction, Son, SonId, SonStatistics, SonStatus, State,
    Subject, ThresholdPolicy, Timestamp, Transaction, Trigger, Witness, WitnessId,
};
use sonprop_deregister_son::DeregisterTrigger;
use sonprop_report_down::ReportDownTrigger;

/// Genesis time of bench ledgers.
pub const GENESIS: Timestamp = Timestamp(1_767_225_600);
/// Elected SONs in bench ledgers.
pub const ELECTED: usize = 15;
/// Witnesses in bench ledgers.
pub const WITNESSES: usize = 11;
/// Live proposals in bench ledgers (of a kind neither trigger proposes).
pub const LIVE_PROPOSALS: usize = 300;

/// Polls a future that is ready at once (the triggers do no I/O), without a runtime, so the
/// measurement is the trigger's work alone.
pub fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("bench triggers complete without waiting"),
    }
}

/// A ledger with `sons` registered SONs, built as Peerplays' history leaves them: 15 elected,
/// 10% of the others deregistered (never deleted), 1% in maintenance (recently down, three of
/// them down for over 12 h), the rest inactive; plus [`LIVE_PROPOSALS`] live proposals.
pub struct BenchChain {
    /// The ledger.
    pub ledger: Ledger,
    /// The witness nodes.
    pub witnesses: Vec<NodeIdentity>,
    /// The elected SON nodes.
    pub elected: Vec<NodeIdentity>,
    /// The key every standby SON owner signs with (shared, to keep setup fast; verification
    /// costs the same).
    pub standby_key: KeyPair,
    /// The genesis.
    pub genesis: Genesis,
    /// Block 1, which created the live proposals.
    pub first_block: Block,
}

impl std::fmt::Debug for BenchChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchChain").field("ledger", &self.ledger).finish_non_exhaustive()
    }
}

/// The bench registry: the operation crates plus the test kit's probe kinds.
pub fn registry() -> Arc<Registry> {
    Registry::builder().discovered().with(&probe::PLUGIN).build().expect("unique kinds").into_arc()
}

fn identity(
    name: String,
    account: u64,
    witness: Option<WitnessId>,
    son: Option<SonId>,
) -> NodeIdentity {
    let keys = KeyPair::from_seed(&format!("bench/{name}"));
    NodeIdentity { name, account: AccountId(account), keys, witness, son }
}

impl BenchChain {
    /// Builds the chain at genesis and creates the live proposals.
    pub fn new(sons: usize, params: ChainParameters) -> BenchChain {
        let sons = sons.max(ELECTED);
        let standby_key = KeyPair::from_seed("bench/standby");
        let sidechain_key = KeyPair::from_seed("bench/standby-bitcoin").public().to_string();
        let mut accounts = Vec::with_capacity(WITNESSES + sons);
        let mut next = 1u64;
        let mut witnesses = Vec::new();
        for i in 0..WITNESSES {
            let n = identity(format!("witness-{i}"), next, Some(WitnessId(i as u64)), None);
            next += 1;
            witnesses.push(n);
        }
        let mut elected = Vec::new();
        for i in 0..ELECTED {
            elected.push(identity(format!("son-{i}"), next, None, Some(SonId(i as u64))));
            next += 1;
        }
        for n in witnesses.iter().chain(&elected) {
            accounts.push(Account {
                id: n.account,
                name: n.name.clone(),
                active: Authority::single_key(n.keys.public()),
                son_votes: Default::default(),
            });
        }
        let mut son_rows = Vec::with_capacity(sons);
        for (i, n) in elected.iter().enumerate() {
            son_rows.push(Son {
                id: SonId(i as u64),
                owner: n.account,
                signing_key: n.keys.public(),
                sidechain_public_keys: BTreeMap::from([(
                    "bitcoin".to_owned(),
                    KeyPair::from_seed(&format!("bench/son-{i}-bitcoin")).public().to_string(),
                )]),
                deposit: 50_000_000,
                url: String::new(),
                next_sidechain_public_keys: None,
                pay_vesting: None,
                // One vote each keeps them elected; the standbys have none, so a maintenance
                // in a bench run re-elects the same set.
                votes: 1,
                status: SonStatus::Active,
                statistics: SonStatistics {
                    last_active_timestamp: GENESIS,
                    ..SonStatistics::default()
                },
            });
        }
        let mut in_maintenance = 0;
        for i in ELECTED..sons {
            let owner = AccountId(next);
            next += 1;
            accounts.push(Account {
                id: owner,
                name: format!("son-{i}"),
                active: Authority::single_key(standby_key.public()),
                son_votes: Default::default(),
            });
            let mut stats = SonStatistics {
                last_active_timestamp: GENESIS.minus(3600),
                ..SonStatistics::default()
            };
            let status = if i % 100 == 1 {
                // Three long-down SONs are due for deregistration; the rest went down recently.
                let down =
                    if in_maintenance < 3 { GENESIS.minus(13 * 3600) } else { GENESIS.minus(600) };
                in_maintenance += 1;
                stats.last_active_timestamp = down;
                stats.last_down_timestamp = down;
                SonStatus::InMaintenance
            } else if i % 10 == 0 {
                stats.deregistered_timestamp = Some(GENESIS.minus(86_400));
                SonStatus::Deregistered
            } else {
                SonStatus::Inactive
            };
            son_rows.push(Son {
                id: SonId(i as u64),
                owner,
                signing_key: standby_key.public(),
                sidechain_public_keys: BTreeMap::from([(
                    "bitcoin".to_owned(),
                    sidechain_key.clone(),
                )]),
                deposit: 50_000_000,
                url: String::new(),
                next_sidechain_public_keys: None,
                pay_vesting: None,
                votes: 0,
                status,
                statistics: stats,
            });
        }
        let genesis = Genesis {
            genesis_time: GENESIS,
            params,
            accounts,
            witnesses: witnesses
                .iter()
                .map(|n| Witness {
                    id: n.witness.expect("witness"),
                    account: n.account,
                    signing_key: n.keys.public(),
                })
                .collect(),
            sons: son_rows,
            active_witnesses: witnesses.iter().filter_map(|n| n.witness).collect(),
            elected_sons: (0..ELECTED as u64).map(SonId).collect(),
            assets: Vec::new(),
            balances: Vec::new(),
            plugin_params: Default::default(),
        };
        let ledger = Ledger::new(&genesis, registry().chain()).expect("bench genesis is valid");
        let placeholder = Block {
            height: 0,
            timestamp: GENESIS,
            previous: Digest::default(),
            producer: WitnessId(0),
            transactions: vec![],
            signature: witnesses[0].keys.sign(&Digest::default()),
        };
        let mut chain = BenchChain {
            ledger,
            witnesses,
            elected,
            standby_key,
            genesis,
            first_block: placeholder,
        };
        chain.first_block = chain.create_live_proposals();
        chain
    }

    fn create_live_proposals(&mut self) -> Block {
        let w = self.witnesses[0].clone();
        let st = self.ledger.state();
        let t = st.next_slot_time();
        let txs: Vec<SignedTransaction> = (0..LIVE_PROPOSALS)
            .map(|i| {
                let op = AccountProbe {
                    account: w.account,
                    subject: format!("bench-{i}"),
                    amount: 1,
                    fail_after: None,
                };
                let create = ProposalCreate {
                    proposer: w.account,
                    expiration_time: t.plus(probe::PROBE_LIFETIME),
                    review_period_seconds: None,
                    operations: vec![Box::new(op)],
                };
                Transaction::single(t.plus(30), create).sign(&st.chain_id(), &[&w.keys])
            })
            .collect();
        let key = self.producer_keys(t);
        let (block, _, rejected) = self.ledger.produce_block(t, txs, &key).expect("slot");
        assert!(rejected.is_empty(), "bench proposals apply");
        block
    }

    /// Heartbeats of the elected SONs due in the next block (every 60 slots, staggered), except
    /// SON `silent`, which has stopped.
    pub fn due_heartbeats(&self, silent: usize) -> Vec<SignedTransaction> {
        let st = self.ledger.state();
        let t = st.next_slot_time();
        let period = (st.params().son_heartbeat_frequency / st.params().block_interval).max(1);
        let slot = st.slot_at(t).unwrap_or(0);
        self.elected
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != silent && (slot + *i as u64).is_multiple_of(period))
            .map(|(_, n)| {
                let op = SonHeartbeat { son: n.son.expect("son"), owner: n.account, timestamp: t };
                Transaction::single(t.plus(30), op).sign(&st.chain_id(), &[&n.keys])
            })
            .collect()
    }

    /// The signing keys of the witness scheduled at `t`.
    pub fn producer_keys(&self, t: Timestamp) -> sonprop_core::KeyPair {
        let w = self.ledger.state().scheduled_producer(t);
        let node = self.witnesses.iter().find(|n| n.witness.is_some() && n.witness == w);
        node.expect("a bench witness is scheduled").keys.clone()
    }

    /// Produces the next block with `txs`.
    pub fn produce(&mut self, txs: Vec<SignedTransaction>) -> Block {
        let t = self.ledger.state().next_slot_time();
        let key = self.producer_keys(t);
        let (block, _, rejected) = self.ledger.produce_block(t, txs, &key).expect("slot");
        debug_assert!(rejected.is_empty());
        block
    }
}

/// What both trigger strategies propose: report-down `(son, down_ts)` and deregister sons,
/// after dropping subjects with a live proposal (as the scheduler does for indexed drafts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Reports.
    pub reports: Vec<(SonId, Timestamp)>,
    /// Deregistrations.
    pub deregistrations: Vec<SonId>,
}

impl Due {
    /// Sorted by SON id: drafts are a set; the index yields them oldest first, the scan in id
    /// order.
    pub fn normalized(mut self) -> Due {
        self.reports.sort();
        self.deregistrations.sort();
        self
    }
}

/// The indexed triggers (the ones nodes run), with the scheduler's live-proposal filter.
pub fn indexed_due(state: &State, node: &NodeIdentity) -> Due {
    let live = |kind: &str, son: SonId| state.live_proposal(kind, &Subject::Son(son)).is_some();
    let report = ready(ReportDownTrigger.drafts(state, node)).expect("infallible");
    let dereg = ready(DeregisterTrigger.drafts(state, node)).expect("infallible");
    let reports = report
        .drafts
        .iter()
        .filter_map(|d| d.operation.downcast_ref::<sonprop_report_down::SonReportDown>())
        .filter(|op| !live(sonprop_report_down::KIND, op.son))
        .map(|op| (op.son, op.down_ts))
        .collect();
    let deregistrations = dereg
        .drafts
        .iter()
        .filter_map(|d| d.operation.downcast_ref::<sonprop_deregister_son::SonDeregister>())
        .filter(|op| !live(sonprop_deregister_son::KIND, op.son))
        .map(|op| op.son)
        .collect();
    Due { reports, deregistrations }
}

/// Peerplays' loops ([`baseline`]), with the approval step's copy of the live proposals.
pub fn scan_due(state: &State, node: &NodeIdentity) -> Due {
    std::hint::black_box(baseline::copy_proposals(state));
    Due {
        reports: baseline::report_down(state, node),
        deregistrations: baseline::deregister(state),
    }
}

/// The node half the bench's schedulers run: report-down and deregister-son.
fn scheduler_registry() -> Arc<Registry> {
    Registry::builder()
        .with(&sonprop_report_down::PLUGIN)
        .with(&sonprop_deregister_son::PLUGIN)
        .build()
        .expect("unique kinds")
        .into_arc()
}

/// One scheduler per witness node of `chain`, keyed by witness.
fn witness_schedulers(chain: &BenchChain) -> BTreeMap<WitnessId, Scheduler> {
    let reg = scheduler_registry();
    chain
        .witnesses
        .iter()
        .map(|w| {
            let s = Scheduler::new(
                reg.node(),
                w.clone(),
                &Services::default(),
                SchedulerConfig::default(),
            )
            .expect("no services needed");
            (w.witness.expect("a witness"), s)
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime")
}

/// One row of the trigger table.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerRow {
    /// Registered SONs.
    pub sons: usize,
    /// Median nanoseconds per block, indexed.
    pub indexed_ns_per_block: u64,
    /// Median nanoseconds per block, full scan.
    pub scan_ns_per_block: u64,
    /// scan / indexed.
    pub ratio: f64,
    /// Reports and deregistrations due in the measured blocks (the same for both strategies).
    pub due: usize,
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Trigger evaluation per block at `sons` registered SONs, over `blocks` blocks.
///
/// Each strategy runs in its own pass over an identical chain (the same blocks), so neither pays
/// for the cache damage the other does: a node runs one of them, not both. The second pass checks
/// block by block that both found the same SONs.
pub fn measure_triggers(sons: usize, blocks: usize) -> TriggerRow {
    // Indexed: the triggers as the producer's node runs them, plus the scheduler's round around
    // them (who runs what, the review step over every live proposal), timed on a node of the
    // same chain with nothing due. Signing what is found is left out on both sides.
    let setup = |chain: &BenchChain| (witness_schedulers(chain), runtime());
    let (indexed, a) = trigger_pass(sons, blocks, setup, |(schedulers, rt), chain, node| {
        let (_, idle) = schedulers
            .iter_mut()
            .find(|(w, _)| Some(**w) != node.witness)
            .expect("another witness");
        let sink = CollectingSink::default();
        let t0 = Instant::now();
        let round = rt.block_on(idle.on_block(chain.ledger.snapshot(), &sink));
        let t1 = Instant::now();
        let due = std::hint::black_box(indexed_due(chain.ledger.state(), node));
        let ns = (t1 - t0 + t1.elapsed()).as_nanos() as u64;
        std::hint::black_box(round);
        (ns, due)
    });
    let (scanned, b) = trigger_pass(
        sons,
        blocks,
        |_| (),
        |(), chain, node| {
            let t0 = Instant::now();
            let due = std::hint::black_box(scan_due(chain.ledger.state(), node));
            (t0.elapsed().as_nanos() as u64, due)
        },
    );
    let (a, b): (Vec<Due>, Vec<Due>) = (
        a.into_iter().map(Due::normalized).collect(),
        b.into_iter().map(Due::normalized).collect(),
    );
    assert_eq!(a, b, "both strategies find the same SONs in every block");
    let due = a.iter().map(|d| d.reports.len() + d.deregistrations.len()).max().unwrap_or(0);
    let i = indexed.max(1);
    TriggerRow {
        sons,
        indexed_ns_per_block: i,
        scan_ns_per_block: scanned,
        ratio: scanned as f64 / i as f64,
        due,
    }
}

/// One strategy's pass over its own chain: per block, SON 0 silent, the strategy decides for the
/// node of the next block's producer and times itself. Each strategy gets its own identical
/// chain, so neither pays for the cache damage the other does (a node runs one of them). Returns
/// the median and what it found in each block.
fn trigger_pass<S>(
    sons: usize,
    blocks: usize,
    setup: impl FnOnce(&BenchChain) -> S,
    mut measure: impl FnMut(&mut S, &BenchChain, &NodeIdentity) -> (u64, Due),
) -> (u64, Vec<Due>) {
    let mut chain = BenchChain::new(sons, ChainParameters::default());
    let mut with = setup(&chain);
    let mut times = Vec::with_capacity(blocks);
    let mut found = Vec::with_capacity(blocks);
    for _ in 0..blocks {
        // SON 0 has stopped: it falls due for a report after son_down_time.
        let beats = chain.due_heartbeats(0);
        chain.produce(beats);
        let st = chain.ledger.state();
        let w = st.scheduled_producer(st.next_slot_time()).expect("a producer");
        let node = chain.witnesses.iter().find(|n| n.witness == Some(w)).expect("a witness node");
        let (ns, due) = measure(&mut with, &chain, node);
        times.push(ns);
        found.push(due);
    }
    (median(times), found)
}

/// A scheduler's round on a block where it has nothing to do (a witness that does not produce
/// next, on the default network with no live proposal): median ns over `blocks` blocks.
pub fn measure_scheduler_empty(blocks: usize) -> u64 {
    let mut chain = BenchChain::new(ELECTED, ChainParameters::default());
    let mut schedulers = witness_schedulers(&chain);
    let rt = runtime();
    let mut times = Vec::with_capacity(blocks);
    for _ in 0..blocks {
        let beats = chain.due_heartbeats(usize::MAX);
        chain.produce(beats);
        let st = chain.ledger.state();
        let next = st.scheduled_producer(st.next_slot_time());
        let (_, scheduler) =
            schedulers.iter_mut().find(|(w, _)| Some(**w) != next).expect("an idle witness");
        let sink = CollectingSink::default();
        let t0 = Instant::now();
        let snapshot = chain.ledger.snapshot();
        let report = rt.block_on(scheduler.on_block(snapshot, &sink));
        times.push(t0.elapsed().as_nanos() as u64);
        assert!(report.outcomes.is_empty(), "an idle witness runs nothing");
    }
    median(times)
}

/// `apply_block` per heartbeat transaction, and raw verification of the same signatures.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyFigures {
    /// Nanoseconds per transaction of `apply_block` (median block).
    pub apply_block_ns_per_tx: u64,
    /// Nanoseconds per raw secp256k1 verification (median block).
    pub sig_verify_ns: u64,
    /// apply / verify.
    pub ratio: f64,
    /// Nanoseconds per transaction of `apply_block` on a replica whose mempool had already
    /// checked every transaction (`Ledger::check_transaction`), so no signature is verified
    /// again (median block).
    pub apply_block_mempool_checked_ns_per_tx: u64,
    /// Transactions per block measured.
    pub txs_per_block: usize,
}

/// Blocks of `per_block` heartbeats from standby SONs, produced on one ledger and applied (timed)
/// on a second, identical one; the same signatures verified raw.
pub fn measure_apply(sons: usize, per_block: usize, blocks: usize) -> ApplyFigures {
    let mut producer = BenchChain::new(sons, ChainParameters::default());
    let mut replica = BenchChain::new(sons, ChainParameters::default());
    let mut checked = BenchChain::new(sons, ChainParameters::default());
    let chain_id = producer.ledger.state().chain_id();
    let inactive: Vec<(SonId, AccountId)> = producer
        .ledger
        .state()
        .sons()
        .iter()
        .filter(|(_, s)| s.status == SonStatus::Inactive)
        .map(|(id, s)| (*id, s.owner))
        .collect();
    assert!(inactive.len() >= per_block * blocks, "enough distinct SONs for the heartbeats");
    let (mut apply, mut verify, mut cached) = (Vec::new(), Vec::new(), Vec::new());
    for b in 0..blocks {
        let t = producer.ledger.state().next_slot_time();
        let txs: Vec<SignedTransaction> = inactive[b * per_block..(b + 1) * per_block]
            .iter()
            .map(|(son, owner)| {
                let op = SonHeartbeat { son: *son, owner: *owner, timestamp: t };
                Transaction::single(t.plus(30), op).sign(&chain_id, &[&producer.standby_key])
            })
            .collect();
        let block = producer.produce(txs);
        assert_eq!(block.transactions.len(), per_block);
        let digests: Vec<Digest> =
            block.transactions.iter().map(|tx| tx.transaction.digest(&chain_id)).collect();

        let t0 = Instant::now();
        replica.ledger.apply_block(&block).expect("the replica applies the block");
        let t1 = Instant::now();
        for (tx, d) in block.transactions.iter().zip(&digests) {
            assert!(std::hint::black_box(tx.signatures[0].verify(d)));
        }
        let t2 = Instant::now();
        // A node that saw the transactions in its mempool first: checked there, untimed.
        for tx in &block.transactions {
            checked.ledger.check_transaction(tx).expect("a good heartbeat");
        }
        let t3 = Instant::now();
        checked.ledger.apply_block(&block).expect("the mempool-checked replica applies it");
        let t4 = Instant::now();
        apply.push((t1 - t0).as_nanos() as u64 / per_block as u64);
        verify.push((t2 - t1).as_nanos() as u64 / per_block as u64);
        cached.push((t4 - t3).as_nanos() as u64 / per_block as u64);
    }
    let (a, v) = (median(apply), median(verify).max(1));
    ApplyFigures {
        apply_block_ns_per_tx: a,
        sig_verify_ns: v,
        ratio: a as f64 / v as f64,
        apply_block_mempool_checked_ns_per_tx: median(cached),
        txs_per_block: per_block,
    }
}

/// Complete proposal lifecycles (create; 11 approvals, the last of which executes it) per second
/// through the ledger, on the default network. Transactions are signed beforehand.
pub fn measure_lifecycles(count: usize) -> f64 {
    let params = ChainParameters {
        threshold_policy: ThresholdPolicy::Elected,
        ..ChainParameters::default()
    };
    let mut chain = BenchChain::new(ELECTED, params);
    let st = chain.ledger.state();
    let chain_id = st.chain_id();
    let w = chain.witnesses[0].clone();
    let first = st.globals().next_proposal;
    let start = st.next_slot_time();
    let interval = st.params().block_interval;
    let mut blocks: Vec<Vec<SignedTransaction>> = Vec::with_capacity(2 * count);
    for k in 0..count {
        let t_create = start.plus(2 * k as u64 * interval);
        let t_approve = t_create.plus(interval);
        let op = SonProbe { son: SonId((k % ELECTED) as u64), fail_after: None, set_status: None };
        let create = ProposalCreate {
            proposer: w.account,
            expiration_time: t_create.plus(600),
            review_period_seconds: None,
            operations: vec![Box::new(op)],
        };
        blocks
            .push(vec![Transaction::single(t_create.plus(30), create).sign(&chain_id, &[&w.keys])]);
        let id = sonprop_core::ProposalId(first + k as u64);
        blocks.push(
            chain.elected[..11]
                .iter()
                .map(|n| {
                    Transaction::single(t_approve.plus(30), ProposalUpdate::approve(id, n.account))
                        .sign(&chain_id, &[&n.keys])
                })
                .collect(),
        );
    }
    let started = Instant::now();
    for txs in blocks {
        let n = txs.len();
        let t = chain.ledger.state().next_slot_time();
        let key = chain.producer_keys(t);
        let (block, _, rejected) = chain.ledger.produce_block(t, txs, &key).expect("slot");
        assert!(
            rejected.is_empty() && block.transactions.len() == n,
            "every lifecycle transaction applies"
        );
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(
        chain.ledger.state().proposals().len(),
        LIVE_PROPOSALS,
        "every lifecycle proposal executed"
    );
    count as f64 / secs
}

/// Peak resident memory of this process, in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Mean nanoseconds per block to commit a ledger on redb (in a temporary directory), applying
/// the default network's blocks with heartbeats and committing after every block, durable every
/// `fsync_every` blocks. Mean, not median: the fsyncs are the point.
pub fn measure_commit(fsync_every: u64, blocks: usize) -> Result<u64, String> {
    let dir = std::env::temp_dir()
        .join(format!("sonprop-bench-commit-{}-{fsync_every}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = (|| {
        let mut chain = BenchChain::new(ELECTED, ChainParameters::default());
        let store =
            sonprop_core::RedbStore::open(&dir.join("chain.redb")).map_err(|e| e.to_string())?;
        let genesis = chain.genesis.clone();
        let mut stored = Ledger::open(
            &genesis,
            registry().chain(),
            Box::new(store),
            sonprop_core::StoreOptions { fsync_every },
        )
        .map_err(|e| e.to_string())?;
        // Catch up with the proposals the bench chain created at block 1.
        let mut total = 0u128;
        for i in 0..blocks + 1 {
            let beats = if i == 0 { Vec::new() } else { chain.due_heartbeats(usize::MAX) };
            let block = if i == 0 { chain.first_block.clone() } else { chain.produce(beats) };
            stored.apply_block(&block).map_err(|e| e.to_string())?;
            let t0 = Instant::now();
            stored.commit(Vec::new()).map_err(|e| e.to_string())?;
            if i > 0 {
                total += t0.elapsed().as_nanos();
            }
        }
        Ok((total / blocks.max(1) as u128) as u64)
    })();
    std::fs::remove_dir_all(&dir).ok();
    result
}
