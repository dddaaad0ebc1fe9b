//! The simulated network: witness and SON nodes composed from the framework as a real node
//! would be (ledger, registry, scheduler, transaction sink), on simulated time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sonprop_core::chain::event::counted;
use sonprop_core::node::scheduler::{
    BlockDuty, CollectingSink, PluginStatus, Role, SchedulerConfig, SchedulerMemory,
};
use sonprop_core::testkit::NetworkBuilder;
use sonprop_core::{
    AccountId, AssetId, Digest, Ledger, LedgerError, LedgerEvent, NodeIdentity, ProposalId,
    RedbStore, Registry, Scheduler, Services, SignedTransaction, SonId, SonStatus, StoreError,
    StoreOptions, Timestamp, WitnessId,
};

use crate::fold::{Fold, Phase, Tag};
use crate::report::{self, Outcome, ProposalLog, Report};
use crate::scenario::{Action, Expectation, Scenario};

/// Lifetime of the heartbeat transactions SON nodes send, in chain seconds.
const HEARTBEAT_TX_LIFETIME: u64 = 30;

/// Why a simulation could not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// Replicas disagree after a block.
    #[error("replicas diverged after block {height}: {} disagree with the producer {producer} ({})", nodes.len(), nodes.join(", "))]
    Diverged {
        /// The block.
        height: u64,
        /// The producer.
        producer: String,
        /// The nodes whose state hash differs from the producer's.
        nodes: Vec<String>,
    },
    /// A replica refused a block the producer made.
    #[error("node {node} refused block {height}: {source}")]
    Refused {
        /// The node.
        node: String,
        /// The block.
        height: u64,
        /// Why.
        #[source]
        source: Box<LedgerError>,
    },
    /// The network could not be set up.
    #[error("cannot build the network: {0}")]
    Setup(String),
    /// The nodes refused a block stamped too far ahead of their clocks.
    #[error(transparent)]
    AheadOfClock(#[from] sonprop_core::node::clock::AheadOfClock),
    /// The data directory cannot be used: another scenario's, or a damaged store.
    #[error("data directory {dir}: {detail}")]
    DataDir {
        /// The directory.
        dir: String,
        /// What is wrong.
        detail: String,
    },
    /// An invariant a crate declares broke (the bridge's conservation equation, say: a bug in
    /// that crate).
    #[error("after block {height}: {message}")]
    Invariant {
        /// The block.
        height: u64,
        /// What broke.
        message: String,
    },
    /// The data directory holds more of the run than the scenario lasts.
    #[error(
        "data directory {dir} holds the run up to block {height} ({held} simulated), longer than \
         this scenario's {duration}: give --force to report on it as it is, or a longer duration \
         to extend it"
    )]
    LongerThanScenario {
        /// The directory.
        dir: String,
        /// Its head block.
        height: u64,
        /// Simulated time it holds, as text.
        held: String,
        /// The scenario's duration, as text.
        duration: String,
    },
}

pub use crate::owner::OWNER_FILE;

/// Gives each simulated node its own services (its own view of another chain, say).
pub type NodeServices = Arc<dyn Fn(&NodeIdentity) -> Services + Send + Sync>;

/// Run options.
#[derive(Clone, Default)]
pub struct Options {
    /// Every node keeps its own replica; state hashes are compared after every block.
    pub verify_replicas: bool,
    /// Keep the chain and every node's local state in this directory, and resume from it.
    pub data_dir: Option<std::path::PathBuf>,
    /// With `data_dir`: commit (and fsync) every this many blocks; 0 is taken as 1.
    pub fsync_every: u64,
    /// Each node's services; none when unset.
    pub services: Option<NodeServices>,
    /// With `data_dir`: accept a directory that already holds more of the run than this
    /// scenario lasts (nothing is simulated; the report covers what the directory holds).
    pub force: bool,
    /// A bridge scenario's simulated Bitcoin network checks every input of every broadcast
    /// with this (a script interpreter: tests give Bitcoin Core's consensus library).
    pub bitcoin_script_check: Option<Arc<sonprop_bitcoin::sim::ScriptCheck>>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("verify_replicas", &self.verify_replicas)
            .field("data_dir", &self.data_dir)
            .field("fsync_every", &self.fsync_every)
            .field("services", &self.services.is_some())
            .field("force", &self.force)
            .field("bitcoin_script_check", &self.bitcoin_script_check.is_some())
            .finish()
    }
}

/// The store file inside a data directory.
pub const CHAIN_FILE: &str = "chain.redb";
const LOCAL_SIMULATION: &str = "simulation";
const LOCAL_SCENARIO: &str = "scenario";

/// What a resumed run needs besides the chain: everything the loop keeps between blocks.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SimLocal {
    mempool: Vec<SignedTransaction>,
    online: Vec<bool>,
    next_event: usize,
    log: ProposalLog,
    rejected: u64,
    included: u64,
    schedulers: Vec<SchedulerMemory>,
    #[serde(default)]
    due: BTreeMap<String, u64>,
    #[serde(default)]
    bridge: Option<crate::bridge::BridgeLocal>,
}

/// What identifies a scenario's network and history (not its duration or expectations, so a
/// run can be extended).
fn fingerprint(s: &Scenario) -> String {
    let events: Vec<String> = s
        .events
        .iter()
        .map(|e| {
            let son = e.son.map_or_else(|| "-".to_owned(), |s| s.to_string());
            format!("{}:{son}:{:?}", e.at, e.action)
        })
        .collect();
    let mut f = format!(
        "{}|seed {}|genesis {}|{}w {}s {}sb|{}|{}",
        s.name,
        s.seed,
        s.genesis_time,
        s.witnesses,
        s.sons,
        s.standby_sons,
        serde_json::to_string(&s.params).unwrap_or_default(),
        events.join(",")
    );
    // A bridge's traffic is part of its history too (only its expectation is not).
    if let Some(b) = &s.bitcoin {
        let b = crate::scenario::BitcoinScenario { expect_all_settled: false, ..b.clone() };
        f.push_str(&format!("|bitcoin {b:?}"));
    }
    if let Some(l) = &s.lifecycle {
        f.push_str(&format!("|lifecycle {l:?}"));
    }
    f
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Block height.
    pub height: u64,
    /// Seconds since genesis.
    pub elapsed: u64,
    /// What happened.
    pub text: String,
}

/// Receives the timeline and progress of a run.
pub trait Observer {
    /// Something happened.
    fn entry(&mut self, entry: Entry);
    /// `done` of `total` blocks are produced.
    fn progress(&mut self, _done: u64, _total: u64) {}
}

/// Collects the timeline (tests, reports).
impl Observer for Vec<Entry> {
    fn entry(&mut self, entry: Entry) {
        self.push(entry);
    }
}

/// What a finished run produced.
#[derive(Debug)]
pub struct Finished {
    /// The report.
    pub report: Report,
    /// Expectations that failed, one message each.
    pub failures: Vec<String>,
    /// Expectations checked: the scenario's, plus each deposit and withdrawal of a bridge
    /// scenario that expects them all settled.
    pub expectations: usize,
    /// Transactions producers left out (stale approvals and the like).
    pub rejected_transactions: u64,
    /// Transactions included in blocks.
    pub included_transactions: u64,
}

struct Node {
    identity: NodeIdentity,
    scheduler: Scheduler,
    /// This node's own replica (only with `verify_replicas`).
    replica: Option<Ledger>,
}

/// A network in progress.
pub struct Simulation {
    scenario: Scenario,
    /// The chain (the shared replica, or a reference replica when every node keeps its own).
    chain: Ledger,
    nodes: Vec<Node>,
    /// Witness index -> node index.
    witness_nodes: BTreeMap<WitnessId, usize>,
    /// SON index -> node index.
    son_nodes: Vec<usize>,
    online: Vec<bool>,
    names: BTreeMap<AccountId, String>,
    mempool: Vec<SignedTransaction>,
    next_event: usize,
    log: ProposalLog,
    /// Folds runs of proposals that keep expiring into one timeline line.
    fold: Fold,
    rejected: u64,
    included: u64,
    /// `(kind, subject)` pairs triggers found due, with the last block they did: a pair not
    /// due at the block before is marked on the timeline as newly due.
    due: BTreeMap<String, u64>,
    heartbeat_period: u64,
    /// Heartbeats signed and verified ahead on the other cores (none with replicas, whose nodes
    /// each verify for themselves).
    ahead: Option<crate::ahead::Ahead>,
    /// With a data directory: commit every this many blocks.
    persist_every: Option<u64>,
    since_commit: u64,
    /// The height a persisted run resumed at (0 for a new run).
    pub resumed_at: u64,
    /// The Bitcoin bridge, when the scenario has one.
    bridge: Option<crate::bridge::Bridge>,
    /// The SON lifecycle's accounts, when the scenario has a `[lifecycle]` table.
    members: Option<crate::members::Members>,
    /// The network's builder (it derives every node's sidechain keys).
    builder: NetworkBuilder,
    /// Transactions the scenario's events sent, by id, with what they were: a refusal is put
    /// on the timeline with its reason.
    sent: BTreeMap<Digest, String>,
    /// Every registered crate's invariants, checked after every block.
    invariants: Vec<(&'static str, sonprop_core::Invariant)>,
    /// What they last held at.
    watch: sonprop_core::InvariantWatch,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation").field("scenario", &self.scenario.name).finish_non_exhaustive()
    }
}

fn elapsed(scenario: &Scenario, t: Timestamp) -> u64 {
    t.since(scenario.genesis_time)
}

impl Simulation {
    /// Builds the network at genesis.
    pub fn new(
        scenario: &Scenario,
        registry: Arc<Registry>,
        options: &Options,
    ) -> Result<Simulation, SimError> {
        let bitcoin_users = scenario.bitcoin.as_ref().map_or(0, |b| b.users as usize);
        let lifecycle_users = scenario.lifecycle.as_ref().map_or(0, |l| l.members as usize + 1);
        let builder = NetworkBuilder::default()
            .witnesses(scenario.witnesses as usize)
            .sons(scenario.sons as usize)
            .standby_sons(scenario.standby_sons as usize)
            .users(bitcoin_users + lifecycle_users)
            .params(scenario.params.clone())
            .genesis_time(scenario.genesis_time)
            .seed(scenario.seed);
        let builder = match &scenario.bitcoin {
            Some(_) => builder.asset(crate::bridge::pbtc_asset()),
            None => builder,
        };
        let builder = scenario
            .plugin_params
            .iter()
            .fold(builder, |b, (name, value)| b.plugin_param(name, value.clone()));
        // The lifecycle's accounts are users after the bridge's; the genesis funds them.
        let members = scenario.lifecycle.as_ref().map(|l| {
            let users = builder.genesis().3;
            crate::members::Members::from_users(&users, bitcoin_users, l)
        });
        let builder = match (&members, &scenario.lifecycle) {
            (Some(m), Some(l)) => m.genesis(builder, &scenario.params, l),
            _ => builder,
        };
        // The scenario's own accounts come after every generated one; its assets after PPY and
        // PBTC.
        let existing = crate::holdings::builtin_assets(
            scenario.lifecycle.is_some(),
            scenario.bitcoin.is_some(),
        );
        let builder =
            crate::holdings::genesis(builder, &scenario.assets, &scenario.accounts, &existing)
                .map_err(SimError::Setup)?;
        let (genesis, witnesses, sons, users) = builder.genesis();
        let users: Vec<NodeIdentity> = users.into_iter().take(bitcoin_users).collect();
        // A SON an event registers runs a node from the start, offline until it exists.
        let created: Vec<NodeIdentity> = match &members {
            Some(m) => scenario
                .events
                .iter()
                .filter_map(|e| match (&e.action, e.son) {
                    (Action::Create { member, .. }, Some(son)) => Some(m.son_node(*member, son)),
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        };
        let sons: Vec<NodeIdentity> = sons.into_iter().chain(created).collect();
        let bridge = scenario.bitcoin.as_ref().map(|b| {
            crate::bridge::Bridge::new(
                b,
                &builder,
                users.clone(),
                sons.clone(),
                options.bitcoin_script_check.clone(),
            )
        });
        let ledger =
            || Ledger::new(&genesis, registry.chain()).map_err(|e| SimError::Setup(e.to_string()));
        let data_dir_err = |dir: &std::path::Path, detail: String| SimError::DataDir {
            dir: dir.display().to_string(),
            detail,
        };
        let chain = match &options.data_dir {
            None => ledger()?,
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| data_dir_err(dir, format!("cannot create it: {e}")))?;
                let store = crate::owner::open_taking_over(
                    || RedbStore::open(&dir.join(CHAIN_FILE)),
                    || crate::owner::Owner::of(dir),
                    crate::owner::running,
                    crate::owner::PATIENCE,
                    std::thread::sleep,
                )
                .map_err(|e| data_dir_err(dir, e.to_string()))?;
                // Ours now (redb holds the file's lock until we exit): say so, for the next one.
                let me = format!("process {} since {}", std::process::id(), wall_clock_now());
                let _ = std::fs::write(dir.join(OWNER_FILE), me + "\n");
                let opened = Ledger::open(
                    &genesis,
                    registry.chain(),
                    Box::new(store),
                    StoreOptions::default(),
                );
                opened.map_err(|e| match e {
                    LedgerError::Store(StoreError::OtherChain { .. }) => data_dir_err(
                        dir,
                        "it holds another scenario's chain (different network, seed or parameters)"
                            .into(),
                    ),
                    other => data_dir_err(dir, other.to_string()),
                })?
            }
        };
        let mut config = SchedulerConfig::default();
        if bridge.is_some() {
            // The nodes' Bitcoin views are in memory and never block: no thread hand-offs.
            for parts in sonprop_bitcoin::PLUGIN.node {
                config.isolation.insert(parts.kind, sonprop_core::Isolation::Inline);
            }
        }
        let signatures = sonprop_core::chain::verify::SignatureCache::shared();
        let mut nodes = Vec::new();
        let mut witness_nodes = BTreeMap::new();
        let mut son_nodes = Vec::new();
        let mut names = BTreeMap::new();
        for u in &users {
            names.insert(u.account, u.name.clone());
        }
        if let Some(m) = &members {
            for u in m.members.iter().chain([&m.budget]) {
                names.insert(u.account, u.name.clone());
            }
        }
        if bridge.is_some() {
            names.insert(AccountId::SON_CONSENSUS, "son-account".to_owned());
        }
        for identity in witnesses.into_iter().chain(sons) {
            if let Some(w) = identity.witness {
                witness_nodes.insert(w, nodes.len());
            }
            if identity.son.is_some() {
                son_nodes.push(nodes.len());
            }
            names.insert(identity.account, identity.name.clone());
            // The replicas share one signature cache (a signature is verified once per process,
            // as a node's signature cache serves all its checks); the reference chain verifies
            // every signature itself.
            let replica = match options.verify_replicas {
                true => Some(ledger()?.share_signatures(signatures.clone())),
                false => None,
            };
            // A kind needing a service this node was not given fails here, by name.
            let mut services = options.services.as_ref().map(|f| f(&identity)).unwrap_or_default();
            let changes = identity
                .son
                .and_then(|s| u32::try_from(s.0).ok())
                .map_or(0, |s| scenario.key_changes(s));
            if let Some(node) =
                bridge.as_ref().and_then(|b| b.service(&identity, &builder, changes))
            {
                services.insert(node);
            }
            let mut node_config = config.clone();
            if let Some(b) = &bridge {
                node_config.disabled.extend(b.disabled_kinds(&identity));
            }
            let scheduler =
                Scheduler::new(registry.node(), identity.clone(), &services, node_config)
                    .map_err(|e| SimError::Setup(e.to_string()))?;
            nodes.push(Node { identity, scheduler, replica });
        }
        let p = &scenario.params;
        let heartbeat_period = (p.son_heartbeat_frequency / p.block_interval).max(1);
        let persist_every = options.data_dir.as_ref().map(|_| options.fsync_every.max(1));
        let beaters: Vec<crate::ahead::Beater> = son_nodes
            .iter()
            .enumerate()
            .map(|(i, &node)| crate::ahead::Beater {
                node,
                stagger: i as u64,
                identity: nodes[node].identity.clone(),
            })
            .collect();
        // The SONs events register are offline until they exist.
        let genesis_nodes =
            nodes.len() - (scenario.all_sons() - scenario.sons - scenario.standby_sons) as usize;
        let online = (0..nodes.len()).map(|i| i < genesis_nodes).collect();
        let mut sim = Simulation {
            scenario: scenario.clone(),
            chain,
            online,
            nodes,
            witness_nodes,
            son_nodes,
            names,
            mempool: Vec::new(),
            next_event: 0,
            log: ProposalLog::default(),
            fold: Fold::default(),
            rejected: 0,
            included: 0,
            due: BTreeMap::new(),
            heartbeat_period,
            ahead: None,
            persist_every,
            since_commit: 0,
            resumed_at: 0,
            bridge,
            members,
            builder,
            sent: BTreeMap::new(),
            invariants: registry.invariants().to_vec(),
            watch: sonprop_core::InvariantWatch::default(),
        };
        if !options.verify_replicas {
            let st = sim.chain.state();
            let from = st.slot_at(st.next_slot_time()).unwrap_or(0);
            let schedule = crate::ahead::Schedule {
                genesis: scenario.genesis_time,
                interval: p.block_interval,
                period: heartbeat_period,
                lifetime: HEARTBEAT_TX_LIFETIME,
            };
            // One worker per other core; the simulation's thread prepares the slots they have
            // not reached when it needs them.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
            let workers = cores.saturating_sub(1).max(1);
            sim.ahead = crate::ahead::Ahead::start(st.chain_id(), schedule, beaters, from, workers);
        }
        if let Some(dir) = &options.data_dir {
            sim.resume(dir)?;
            let head = sim.chain.state().head_time();
            if elapsed(&sim.scenario, head) > sim.scenario.duration && !options.force {
                return Err(SimError::LongerThanScenario {
                    dir: dir.display().to_string(),
                    height: sim.chain.state().head_height(),
                    held: crate::duration::Duration(elapsed(&sim.scenario, head)).to_string(),
                    duration: crate::duration::Duration(sim.scenario.duration).to_string(),
                });
            }
        }
        Ok(sim)
    }

    /// Restores the loop's state from the data directory, or records this scenario in a new one.
    fn resume(&mut self, dir: &std::path::Path) -> Result<(), SimError> {
        let err = |detail: String| SimError::DataDir { dir: dir.display().to_string(), detail };
        let mine = fingerprint(&self.scenario);
        match self.chain.local(LOCAL_SCENARIO) {
            Some(stored) if stored != mine.as_bytes() => {
                let stored = String::from_utf8_lossy(stored);
                let name = stored.split('|').next().unwrap_or("?");
                return Err(err(format!(
                    "it holds a run of scenario `{name}` with other events or parameters than `{}`",
                    self.scenario.name
                )));
            }
            Some(_) => {}
            None if self.chain.state().head_height() > 0 => {
                return Err(err("it holds a chain but no simulation state".into()));
            }
            None => {
                let local = vec![(LOCAL_SCENARIO.to_owned(), Some(mine.into_bytes()))];
                self.chain.sync(local).map_err(|e| err(e.to_string()))?;
                return Ok(());
            }
        }
        let Some(raw) = self.chain.local(LOCAL_SIMULATION) else { return Ok(()) };
        let local: SimLocal = serde_json::from_slice(raw)
            .map_err(|e| err(format!("unreadable simulation state: {e}")))?;
        if local.online.len() != self.nodes.len() || local.schedulers.len() != self.nodes.len() {
            return Err(err("its simulation state is for another network".into()));
        }
        for (node, memory) in self.nodes.iter_mut().zip(local.schedulers) {
            node.scheduler.restore(memory);
        }
        self.mempool = local.mempool;
        self.online = local.online;
        self.next_event = local.next_event;
        self.log = local.log;
        self.rejected = local.rejected;
        self.included = local.included;
        self.due = local.due;
        if let (Some(bridge), Some(saved)) = (self.bridge.as_mut(), local.bridge) {
            bridge.restore(saved).map_err(|e| err(format!("unreadable Bitcoin state: {e}")))?;
        }
        self.resumed_at = self.chain.state().head_height();
        Ok(())
    }

    /// With a data directory: commits now (a clean stop). Without one: nothing.
    pub fn checkpoint(&mut self) -> Result<(), SimError> {
        if self.persist_every.is_some() {
            self.persist()?;
        }
        Ok(())
    }

    /// Commits the chain and the loop's state, durably, in one write.
    fn persist(&mut self) -> Result<(), SimError> {
        let local = SimLocal {
            mempool: self.mempool.clone(),
            online: self.online.clone(),
            next_event: self.next_event,
            log: self.log.clone(),
            rejected: self.rejected,
            included: self.included,
            due: self.due.clone(),
            schedulers: self.nodes.iter().map(|n| n.scheduler.memory()).collect(),
            bridge: self.bridge.as_ref().map(|b| b.save()),
        };
        let bytes = serde_json::to_vec(&local).map_err(|e| SimError::DataDir {
            dir: "(data directory)".into(),
            detail: format!("cannot encode the simulation state: {e}"),
        })?;
        self.chain.sync(vec![(LOCAL_SIMULATION.to_owned(), Some(bytes))]).map_err(|e| {
            SimError::DataDir { dir: "(data directory)".into(), detail: e.to_string() }
        })?;
        self.since_commit = 0;
        tracing::debug!(
            block = self.chain.state().head_height(),
            "committed the chain and the simulation state"
        );
        Ok(())
    }

    /// The simulated Bitcoin network, when the scenario has a bridge.
    pub fn bitcoin(&self) -> Option<&sonprop_bitcoin::sim::SimBitcoin> {
        self.bridge.as_ref().map(|b| b.network())
    }

    /// The chain's ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.chain
    }

    /// Every proposal of the run so far, with its approvers and abstentions.
    pub fn proposal_log(&self) -> &ProposalLog {
        &self.log
    }

    /// Whether the run has nothing left to simulate (a data directory that holds it whole).
    pub fn is_complete(&self) -> bool {
        elapsed(&self.scenario, self.chain.state().next_slot_time()) > self.scenario.duration
    }

    /// Blocks the run will produce in all.
    pub fn total_blocks(&self) -> u64 {
        self.scenario.duration / self.scenario.params.block_interval
    }

    /// An account as the timeline names it: the node's name with the account id, as in
    /// `witness-4 (1.2.5)` (the report gives both too).
    fn name(&self, account: AccountId) -> String {
        match self.names.get(&account) {
            Some(name) => format!("{name} ({account})"),
            None => account.to_string(),
        }
    }

    /// An amount with its asset's precision and symbol.
    fn amount(&self, asset: AssetId, amount: u64) -> String {
        match self.chain.state().asset(asset) {
            Some(a) => a.format(amount),
            None => format!("{amount} of asset {asset}"),
        }
    }

    /// Produces one block and runs every online node after it. Returns `false` when the run is
    /// over.
    pub async fn step(&mut self, timeline: &mut dyn Observer) -> Result<bool, SimError> {
        let t = self.chain.state().next_slot_time();
        if elapsed(&self.scenario, t) > self.scenario.duration {
            return Ok(false);
        }
        // The undo window is full of unwritten blocks: commit them now, with this loop's state,
        // whatever `--fsync-every` says (the ledger never commits without it).
        if self.chain.commit_required() {
            self.persist()?;
        }
        let height = self.chain.state().head_height() + 1;
        self.apply_scenario_events(t, height, timeline);
        if let Some(bridge) = self.bridge.as_mut() {
            let now = elapsed(&self.scenario, t);
            let mut say = |e: Entry| timeline.entry(e);
            bridge.before_block(self.chain.state(), now, height, &mut self.mempool, &mut say);
        }

        let producer_w = self.chain.state().scheduled_producer(t).expect("a slot after the head");
        let producer = self.witness_nodes[&producer_w];
        let txs = std::mem::take(&mut self.mempool);
        let producer_name = self.nodes[producer].identity.name.clone();
        let refused = |source| SimError::Refused {
            node: producer_name.clone(),
            height,
            source: Box::new(source),
        };
        // With replicas the producer signs its block and every other node verifies it; with one
        // shared ledger nobody receives the block, so it is applied unsigned.
        let key = self.nodes[producer].identity.keys.clone();
        let (block, outcome, rejected) = match &mut self.nodes[producer].replica {
            Some(own) => {
                let (b, o, r) = own.produce_block(t, txs, &key).map_err(refused)?;
                (Some(b), o, r)
            }
            None => {
                let (o, r) = self.chain.produce_unshared_block(t, txs).map_err(refused)?;
                (None, o, r)
            }
        };
        self.rejected += rejected.len() as u64;
        tracing::debug!(
            node = %producer_name,
            block = height,
            transactions = outcome.transactions,
            left_out = rejected.len(),
            "block produced"
        );
        if !self.sent.is_empty() {
            let chain_id = self.chain.state().chain_id();
            for r in &rejected {
                if let Some(what) = self.sent.remove(&r.transaction.transaction.digest(&chain_id)) {
                    let text = format!("refused: {what}: {}", r.error);
                    timeline.entry(Entry { height, elapsed: elapsed(&self.scenario, t), text });
                }
            }
            // What was not refused was included (or expired): forgotten after a block.
            self.sent.clear();
        }
        self.included += outcome.transactions as u64;
        if let Some(block) = block {
            self.chain.apply_block(&block).map_err(|source| SimError::Refused {
                node: "reference".into(),
                height,
                source: Box::new(source),
            })?;
            // Each node applies the block to its own replica and hashes it, independently of
            // the others: spread over the cores; errors and hashes are read back in node order.
            let reference = self.chain.state_hash();
            let mut work: Vec<(usize, &str, &mut Ledger)> = self
                .nodes
                .iter_mut()
                .enumerate()
                .map(|(i, n)| {
                    (i, n.identity.name.as_str(), n.replica.as_mut().expect("verify mode"))
                })
                .collect();
            // Each node checks a block from the network against its own clock first (the
            // simulated nodes' clocks read the slot's time: an honest producer is never ahead).
            use sonprop_core::node::clock::{check_not_ahead, DEFAULT_MAX_AHEAD};
            check_not_ahead(&block, t, DEFAULT_MAX_AHEAD)?;
            let apply = |part: &mut [(usize, &str, &mut Ledger)]| -> Vec<Result<Digest, SimError>> {
                part.iter_mut()
                    .map(|(i, name, own)| {
                        if *i != producer {
                            own.apply_block(&block).map_err(|source| SimError::Refused {
                                node: (*name).to_owned(),
                                height,
                                source: Box::new(source),
                            })?;
                        }
                        Ok(own.state_hash())
                    })
                    .collect()
            };
            let half = work.len().div_ceil(2);
            let (first, second) = work.split_at_mut(half);
            let results = std::thread::scope(|scope| {
                let other = scope.spawn(|| apply(second));
                let mut results = apply(first);
                results.extend(other.join().unwrap_or_else(|_| {
                    vec![Err(SimError::Setup("a replica thread panicked".into()))]
                }));
                results
            });
            let mut hashes = Vec::with_capacity(results.len() + 1);
            for (node, result) in self.nodes.iter().zip(results) {
                hashes.push((node.identity.name.clone(), result?));
            }
            hashes.push(("reference".to_owned(), reference));
            check_agreement(height, &hashes[producer].0.clone(), &hashes)?;
        }

        // Every crate's invariants (the bridge's conservation equation, for one).
        self.watch
            .check(&self.invariants, self.chain.state())
            .map_err(|e| SimError::Invariant { height, message: e.to_string() })?;
        if let Some(bridge) = self.bridge.as_mut() {
            let now = elapsed(&self.scenario, t);
            let mut say = |e: Entry| timeline.entry(e);
            bridge.after_block(self.chain.state(), now, height, &mut say);
        }

        // Approvals are summarised per proposal per block, at the place of the first one.
        let mut lines: Vec<(Tag, Result<String, ProposalId>)> = Vec::new();
        let mut approvals: BTreeMap<ProposalId, u32> = BTreeMap::new();
        // An election is worth a line when it changed the set.
        let set_changed = outcome.events.iter().any(|e| {
            matches!(e, LedgerEvent::SonElected { .. } | LedgerEvent::SonNotReelected { .. })
        });
        for event in &outcome.events {
            if matches!(event, LedgerEvent::Election { .. }) && !set_changed {
                continue;
            }
            self.log.record(t.secs(), event);
            if let LedgerEvent::ProposalExpired { proposal } = event {
                self.log.expired_needing(*proposal, &self.chain.state().son_quorum());
            }
            if let LedgerEvent::ProposalApproved { proposal, .. } = event {
                let n = approvals.entry(*proposal).or_insert(0);
                if *n == 0 {
                    lines.push((Some((*proposal, Phase::Approved)), Err(*proposal)));
                }
                *n += 1;
            } else if let Some(text) = self.describe(event) {
                lines.push((self.phase(event), Ok(text)));
            }
        }
        for (tag, line) in lines {
            let text = line.unwrap_or_else(|p| {
                let total = self.log.get(p).map_or(0, |e| e.approvals);
                let n = approvals[&p];
                let nodes = if n == 1 { "node" } else { "nodes" };
                format!(
                    "proposal {p} approved by {n} {nodes} in this block ({total} approvals in all)"
                )
            });
            let entry = Entry { height, elapsed: elapsed(&self.scenario, t), text };
            self.fold.entry(tag, entry, timeline);
        }

        self.send_heartbeats(t);
        self.run_schedulers(height, t, timeline).await;
        if let Some(every) = self.persist_every {
            self.since_commit += 1;
            if self.since_commit >= every {
                self.persist()?;
            }
        }
        Ok(true)
    }

    fn apply_scenario_events(&mut self, t: Timestamp, height: u64, timeline: &mut dyn Observer) {
        while let Some(e) = self.scenario.events.get(self.next_event).cloned() {
            if e.at > elapsed(&self.scenario, t) {
                break;
            }
            let node = e.son.map(|s| self.son_nodes[s as usize]);
            let text = match (&e.action, node) {
                (Action::Stop | Action::Start, Some(node)) => {
                    let up = e.action == Action::Start;
                    let was = std::mem::replace(&mut self.online[node], up);
                    let son = SonId(u64::from(e.son.unwrap_or(0)));
                    if up && !was {
                        // A node coming back announces itself at once.
                        if let Some(tx) = self.heartbeat(node, self.chain.state().head_time()) {
                            self.mempool.push(tx);
                        }
                    }
                    match (up, was) {
                        (false, true) => format!("son {son} goes offline (scenario)"),
                        (true, false) => format!("son {son} comes back online (scenario)"),
                        (false, false) => format!("son {son} is already offline (scenario)"),
                        (true, true) => format!("son {son} is already online (scenario)"),
                    }
                }
                _ => self.lifecycle_event(&e, node, t),
            };
            timeline.entry(Entry { height, elapsed: e.at, text });
            self.next_event += 1;
        }
    }

    /// Sends the transaction of a lifecycle event, signed by whoever acts; the line for the
    /// timeline.
    fn lifecycle_event(
        &mut self,
        e: &crate::scenario::Event,
        node: Option<usize>,
        t: Timestamp,
    ) -> String {
        let Some(members) = &self.members else {
            return "a lifecycle event without a [lifecycle] table (refused at load)".into();
        };
        let by = match (&e.action, node) {
            (Action::Vote { member, .. }, _) => members.members[*member as usize].clone(),
            (_, Some(node)) => self.nodes[node].identity.clone(),
            _ => return "an event about no SON".into(),
        };
        // Key changes before this one: the next key is the one after them.
        let changes = self.scenario.events[..self.next_event]
            .iter()
            .filter(|x| x.son == e.son && x.action == Action::UpdateKeys)
            .count() as u32;
        let st = self.chain.state();
        let Some((ops, text)) =
            crate::members::operations(st, &self.builder, &e.action, e.son, &by, changes, t)
        else {
            return "nothing to send".into();
        };
        if let (Action::Create { .. }, Some(node)) = (&e.action, node) {
            self.online[node] = true;
        }
        if ops.is_empty() {
            return format!("{text} (scenario)");
        }
        let tx = sonprop_core::Transaction { expiration: t.plus(60), operations: ops };
        let chain_id = st.chain_id();
        self.sent.insert(tx.digest(&chain_id), text.clone());
        self.mempool.push(tx.sign(&chain_id, &[&by.keys]));
        format!("{text} (scenario)")
    }

    fn heartbeat(&mut self, node: usize, at: Timestamp) -> Option<SignedTransaction> {
        let st = self.chain.state();
        let id = &self.nodes[node].identity;
        let son = id.son?;
        if st.son(son)?.status == SonStatus::Deregistered {
            return None;
        }
        let slot = st.slot_at(at).unwrap_or(0);
        if let Some((tx, proof)) = self.ahead.as_mut().and_then(|a| a.take(slot, node)) {
            if let Some(proof) = proof {
                self.chain.remember_verified(proof);
            }
            return Some(tx);
        }
        crate::ahead::heartbeat_tx(&st.chain_id(), id, at, HEARTBEAT_TX_LIFETIME)
    }

    /// SON `i` beats every `heartbeat_period` slots, staggered by its index.
    fn send_heartbeats(&mut self, t: Timestamp) {
        let slot = self.chain.state().slot_at(t).unwrap_or(0);
        let due: Vec<usize> = self
            .son_nodes
            .iter()
            .enumerate()
            .filter(|(i, &node)| {
                self.online[node] && (slot + *i as u64).is_multiple_of(self.heartbeat_period)
            })
            .map(|(_, &node)| node)
            .collect();
        for node in due {
            if let Some(tx) = self.heartbeat(node, t) {
                self.mempool.push(tx);
            }
        }
    }

    async fn run_schedulers(&mut self, height: u64, t: Timestamp, timeline: &mut dyn Observer) {
        let sink = CollectingSink::default();
        let shared = self.nodes[0].replica.is_none().then(|| self.chain.snapshot());
        // Who has work is computed once per block; nodes without any are not run.
        let duty = BlockDuty::of(self.chain.state());
        // The nodes take turns at sending first (a block's transactions keep the order they
        // were sent in): with a fixed order the same SONs' signatures would always complete a
        // sidechain transaction, and the later ones' would always arrive too late to count.
        let n = self.nodes.len();
        for k in 0..n {
            let i = (k + height as usize) % n;
            let node = &mut self.nodes[i];
            if !self.online[i] || !node.scheduler.has_work(&duty, self.chain.state()) {
                continue;
            }
            let snapshot = match (&shared, &node.replica) {
                (Some(s), _) => Arc::clone(s),
                (None, Some(own)) => own.snapshot(),
                (None, None) => unreachable!("a replica per node or a shared one"),
            };
            let report = node.scheduler.on_block(snapshot, &sink).await;
            for o in report.failures() {
                let role = if o.role == Role::Trigger { "trigger" } else { "validator" };
                let why = match &o.status {
                    PluginStatus::Failed(m) => format!("failed: {m}"),
                    PluginStatus::Panicked(m) => format!("panicked: {m}"),
                    _ => "timed out".into(),
                };
                let text = format!("{} {role} on {} {why}", o.kind, node.identity.name);
                timeline.entry(Entry { height, elapsed: elapsed(&self.scenario, t), text });
            }
            for (kind, d) in &report.deferred {
                let text = format!("{kind} for {} held back: {}", d.subject, d.reason);
                timeline.entry(Entry { height, elapsed: elapsed(&self.scenario, t), text });
            }
            for o in &report.outcomes {
                if let (Some(id), PluginStatus::Abstained(why)) = (o.proposal, &o.status) {
                    self.log.abstained(id, &node.identity.name, why);
                }
            }
            for (kind, subject) in &report.due {
                let key = format!("{kind} {subject}");
                let before = self.due.insert(key, height);
                if before.is_none_or(|h| h + 1 < height) {
                    let text = format!(
                        "{kind} for {subject} is due (first seen by {})",
                        node.identity.name
                    );
                    timeline.entry(Entry { height, elapsed: elapsed(&self.scenario, t), text });
                }
            }
        }
        // Pairs no longer due are forgotten, so the map stays as small as what is due.
        self.due.retain(|_, last| *last + 1 >= height);
        drop(shared);
        self.mempool.extend(sink.take());
    }

    /// What a proposal event's line is to the timeline's folding.
    fn phase(&self, event: &LedgerEvent) -> Tag {
        Some(match event {
            LedgerEvent::ProposalCreated { proposal, kinds, subject: Some(subject), .. } => {
                (*proposal, Phase::Raised(format!("{} for {subject}", kinds.join("+"))))
            }
            LedgerEvent::ProposalExpired { proposal } => {
                let entry = self.log.get(*proposal);
                let needing = entry.and_then(|e| e.expired_needing.clone());
                (*proposal, Phase::Expired(entry.map_or(0, |e| e.approvals), needing))
            }
            LedgerEvent::ProposalExecuted { proposal }
            | LedgerEvent::ProposalFailed { proposal, .. }
            | LedgerEvent::ProposalDeleted { proposal, .. } => (*proposal, Phase::Ended),
            _ => return None,
        })
    }

    fn describe(&self, event: &LedgerEvent) -> Option<String> {
        Some(match event {
            LedgerEvent::SonStatusChanged { son, from, to } => format!("son {son}: {from} -> {to}"),
            LedgerEvent::ProposalCreated {
                proposal,
                proposer,
                kinds,
                subject,
                expiration_time,
            } => {
                let about = subject.as_ref().map(|s| format!(" for {s}")).unwrap_or_default();
                let lifetime = expiration_time.since(self.chain.state().head_time());
                format!(
                    "proposal {proposal} raised: {}{about} by {} (lives {lifetime} s)",
                    kinds.join("+"),
                    self.name(*proposer)
                )
            }
            LedgerEvent::ProposalExecuted { proposal } => format!("proposal {proposal} executed"),
            LedgerEvent::ProposalExecutionFailed { proposal, reason } => {
                format!("proposal {proposal} failed to execute (kept until expiry): {reason}")
            }
            LedgerEvent::ProposalExpired { proposal } => {
                let entry = self.log.get(*proposal);
                let n = entry.map_or(0, |e| e.approvals);
                let approvals = if n == 1 { "approval" } else { "approvals" };
                match entry.and_then(|e| e.expired_needing.as_deref()) {
                    Some(why) => format!(
                        "proposal {proposal} expired unexecuted with {n} {approvals}; {why}"
                    ),
                    None => format!("proposal {proposal} expired unexecuted with {n} {approvals}"),
                }
            }
            LedgerEvent::ProposalFailed { proposal, reason } => {
                format!("proposal {proposal} failed at expiry: {reason}")
            }
            LedgerEvent::ProposalDeleted { proposal, by } => {
                format!("proposal {proposal} deleted by {}", self.name(*by))
            }
            LedgerEvent::VestingCreated { owner, amount, cliff, reason, .. } => {
                let days = cliff.since(self.chain.state().head_time()) as f64 / 86_400.0;
                let what = match reason.split_once(':') {
                    Some(("son_pay", son)) => format!("pay of son {son}"),
                    Some(("son_deposit", son)) => format!("deposit of son {son}"),
                    _ => "balance".to_owned(),
                };
                // Without the core asset in the genesis, amounts are PPY's smallest unit
                // (precision 5).
                let amount = match self.chain.state().asset(crate::members::PPY) {
                    Some(a) => a.format(*amount),
                    None => format!("{}.{:05} PPY", amount / 100_000, amount % 100_000),
                };
                format!(
                    "{amount} vesting for {} ({what}; cliff in {days:.1} days)",
                    self.name(*owner)
                )
            }
            LedgerEvent::VestingWithdrawn { owner, amount, .. } => format!(
                "{} withdrawn by {} from its vesting balance",
                self.amount(crate::members::PPY, *amount),
                self.name(*owner)
            ),
            LedgerEvent::SonCreated { son, owner, deposit } => format!(
                "son {son} registered by {}, {} held as its deposit; inactive until elected",
                self.name(*owner),
                self.amount(crate::members::PPY, *deposit)
            ),
            LedgerEvent::SonUpdated { son, changed } => {
                format!("son {son} updated: {}", changed.join(", "))
            }
            LedgerEvent::SonKeysChanged { son } => {
                format!("son {son}'s new sidechain keys take force")
            }
            LedgerEvent::Voted { account, sons, stake } => {
                let list: Vec<String> = sons.iter().map(ToString::to_string).collect();
                format!(
                    "{} now votes for [{}] with {}",
                    self.name(*account),
                    list.join(", "),
                    self.amount(crate::members::PPY, *stake)
                )
            }
            LedgerEvent::Election { elected, seats, cutoff } => match cutoff {
                Some(c) => format!("maintenance: {elected} SONs elected to {seats} seats, cut-off {}", counted(*c, "vote")),
                None => format!("maintenance: {elected} SONs elected to {seats} seats (fewer candidates with votes than seats)"),
            },
            LedgerEvent::SonElected { son } => format!("son {son} elected"),
            LedgerEvent::SonNotReelected { son } => format!("son {son} not re-elected"),
            LedgerEvent::SonPaid { son, amount, signed, signed_by_all } => format!(
                "son {son} paid {}: it signed {signed} of {signed_by_all} sidechain transactions this period",
                self.amount(crate::members::PPY, *amount)
            ),
            LedgerEvent::Plugin { kind, text, .. } => {
                let name = |a: AccountId| self.name(a);
                crate::bridge::Bridge::describe(event, &name)
                    .unwrap_or_else(|| format!("{kind}: {text}"))
            }
            LedgerEvent::Issued { asset, to, amount } => {
                format!("{} issued to {}", self.amount(*asset, *amount), self.name(*to))
            }
            LedgerEvent::Reserved { asset, from, amount } => {
                format!(
                    "{} reserved (burnt) from {}",
                    self.amount(*asset, *amount),
                    self.name(*from)
                )
            }
            LedgerEvent::Transferred { from, to, asset, amount } => format!(
                "{} moved from {} to {}",
                self.amount(*asset, *amount),
                self.name(*from),
                self.name(*to)
            ),
            // Approvals are summarised on the outcome line.
            _ => return None,
        })
    }

    /// Runs to the end of the scenario.
    pub async fn run(&mut self, observer: &mut dyn Observer) -> Result<Finished, SimError> {
        let never = AtomicBool::new(false);
        let finished = self.run_until(observer, &never).await?;
        Ok(finished.unwrap_or_else(|| self.finish()))
    }

    /// Runs to the end of the scenario, or until `stop` is set (read between blocks: a block
    /// under way is finished first). Stopped, it commits what it did when it has a data
    /// directory, so the same command resumes there, and returns `None`.
    pub async fn run_until(
        &mut self,
        observer: &mut dyn Observer,
        stop: &AtomicBool,
    ) -> Result<Option<Finished>, SimError> {
        let total = self.total_blocks();
        let mut stopped = false;
        loop {
            if stop.load(Ordering::SeqCst) {
                stopped = true;
                break;
            }
            if !self.step(observer).await? {
                break;
            }
            observer.progress(self.chain.state().head_height(), total);
        }
        let st = self.chain.state();
        let at = elapsed(&self.scenario, st.head_time());
        self.fold.finish(st.head_height(), at, observer);
        if self.persist_every.is_some() && self.since_commit > 0 {
            self.persist()?;
        }
        Ok((!stopped).then(|| self.finish()))
    }

    /// With a data directory, the height of the last durable commit (a restart resumes there);
    /// `None` without one.
    pub fn committed_height(&self) -> Option<u64> {
        self.persist_every.map(|_| self.chain.state().head_height() - self.since_commit)
    }

    /// An account as the documents give it: its id and its node's name.
    pub fn account(&self, id: &str) -> crate::json::Account {
        let name = id.parse::<AccountId>().ok().and_then(|a| self.names.get(&a)).cloned();
        crate::json::Account { id: id.to_owned(), name }
    }

    /// The report and the expectations' verdicts, as of now.
    pub fn finish(&self) -> Finished {
        let st = self.chain.state();
        let mut entries: Vec<_> = self.log.entries().collect();
        entries
            .sort_by_key(|p| p.id.trim_start_matches("1.10.").parse::<u64>().unwrap_or(u64::MAX));
        let g = self.scenario.genesis_time.secs();
        let account = |id: &str| self.account(id);
        let proposals: Vec<crate::json::Proposal> =
            entries.into_iter().map(|p| crate::json::Proposal::of(p, g, &account)).collect();
        let sons = crate::json::sons(st);
        let mut report = Report {
            document: "report",
            format_version: crate::json::FORMAT_VERSION,
            scenario: self.scenario.name.clone(),
            seed: self.scenario.seed,
            genesis: crate::json::Time::at(g, g),
            head: crate::json::Time::at(g, st.head_time().secs()),
            height: st.head_height(),
            state_hash: self.chain.state_hash().to_hex(),
            summary: report::Summary::of(&sons, &proposals, self.included, self.rejected),
            expectations: Vec::new(),
            sons,
            status_changes: self
                .log
                .status_changes()
                .iter()
                .map(|c| report::SonStatusChange {
                    son: c.son.clone(),
                    at: crate::json::Time::at(g, c.time),
                    from: c.from,
                    to: c.to,
                })
                .collect(),
            proposals,
            events: self.log.events().iter().map(|e| report::Event::of(e, g)).collect(),
            timeline: Vec::new(),
            bitcoin: None,
        };
        let mut results: Vec<crate::json::ExpectationResult> = self
            .scenario
            .expect
            .iter()
            .map(|x| {
                crate::json::ExpectationResult::new(
                    x.to_string(),
                    check_expectation(&report, st, x),
                )
            })
            .collect();
        if let Some(bridge) = &self.bridge {
            let name = |a: AccountId| self.account(&a.to_string());
            let (mut section, settled) = bridge.report(st, &name);
            crate::bridge::fill_stages(&mut section, &report.events);
            report.bitcoin = Some(section);
            results.extend(settled);
        }
        report.expectations = results;
        let failures = report.expectations.iter().filter_map(|r| r.failure.clone()).collect();
        Finished {
            expectations: report.expectations.len(),
            report,
            failures,
            rejected_transactions: self.rejected,
            included_transactions: self.included,
        }
    }
}

fn check_expectation(report: &Report, st: &sonprop_core::State, x: &Expectation) -> Option<String> {
    match x {
        Expectation::Elected { son, elected } => {
            let id = SonId(u64::from(*son));
            let got = st.is_elected(id);
            (got != *elected).then(|| {
                let why =
                    sonprop_core::chain::lifecycle::election_story(st, id, &|t| t.to_string());
                format!(
                    "son {id}: expected {}elected, it is {}: {why}",
                    if *elected { "" } else { "not " },
                    if got { "elected" } else { "not" }
                )
            })
        }
        Expectation::Paid { son, paid } => {
            let id = SonId(u64::from(*son));
            let got = st
                .son(id)
                .and_then(|s| s.statistics.last_pay.as_ref())
                .is_some_and(|p| p.amount > 0);
            (got != *paid).then(|| {
                let why = sonprop_core::chain::lifecycle::pay_story(st, id, &|t| t.to_string());
                format!("son {id}: expected {}paid: {why}", if *paid { "" } else { "not " })
            })
        }
        Expectation::DepositWithdrawn { son, withdrawn } => {
            let id = SonId(u64::from(*son));
            let s = st.son(id)?;
            let reason = format!("son_deposit:{id}");
            let vesting = st
                .vesting_balances()
                .iter()
                .find(|(_, v)| v.reason == reason)
                .map(|(_, v)| v.amount);
            let got = s.status == SonStatus::Deregistered && s.deposit == 0 && vesting.is_none();
            (got != *withdrawn).then(|| {
                format!(
                    "son {id}: expected its deposit {}withdrawn; it is {}, {} on the SON, {} vesting",
                    if *withdrawn { "" } else { "not " },
                    s.status,
                    s.deposit,
                    vesting.unwrap_or(0)
                )
            })
        }
        Expectation::Balance { account, asset, amount, .. } => {
            let holder = st.accounts().iter().find(|(_, a)| a.name == *account);
            let Some((id, _)) = holder else {
                return Some(format!("no account `{account}`"));
            };
            let Some(a) = st.asset_by_symbol(asset) else {
                return Some(format!("no asset `{asset}`"));
            };
            let got = st.balance(*id, a.id);
            (got != *amount).then(|| {
                format!("{account}: expected {}, holds {}", a.format(*amount), a.format(got))
            })
        }
        Expectation::Status { son, status } => {
            let id = SonId(u64::from(*son));
            let got = st.son(id).map(|s| s.status)?;
            (got != *status).then(|| format!("son {id}: expected {status}, got {got}"))
        }
        Expectation::Executed { son, kind, count } => {
            let id = SonId(u64::from(*son)).to_string();
            let got = report
                .proposals
                .iter()
                .filter(|p| {
                    p.kind == *kind
                        && p.subject.as_deref() == Some(&id)
                        && p.outcome == Outcome::Executed
                })
                .count();
            (got != *count as usize)
                .then(|| format!("son {id}: expected {count} executed {kind}, got {got}"))
        }
    }
}

/// Checks every replica's hash against the producer's; names those that differ.
pub fn check_agreement(
    height: u64,
    producer: &str,
    hashes: &[(String, Digest)],
) -> Result<(), SimError> {
    let Some((_, want)) = hashes.iter().find(|(n, _)| n == producer) else {
        return Err(SimError::Setup(format!("unknown producer {producer}")));
    };
    let nodes: Vec<String> =
        hashes.iter().filter(|(_, h)| h != want).map(|(n, _)| n.clone()).collect();
    if nodes.is_empty() {
        Ok(())
    } else {
        Err(SimError::Diverged { height, producer: producer.to_owned(), nodes })
    }
}

/// The wall clock as RFC 3339, for the owner file (node-local; never on the chain).
fn wall_clock_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disagreeing_replicas_are_named_with_the_block() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let hashes = vec![("witness-0".into(), a), ("son-2".into(), b), ("son-5".into(), a)];
        check_agreement(7, "witness-0", &hashes).expect_err("diverged");
        let e = check_agreement(7, "son-5", &hashes).expect_err("diverged").to_string();
        assert!(e.contains("block 7") && e.contains("son-2") && !e.contains("witness-0,"), "{e}");
        check_agreement(7, "witness-0", &hashes[..1]).expect("agree");
    }
}
