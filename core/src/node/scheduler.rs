//! The scheduler: after each block, runs this node's triggers and validators over a snapshot and
//! turns their answers into signed transactions.
//!
//! Node-local and fallible by nature (a validator may ask a Bitcoin node), so every plugin call
//! runs under a timeout with panics caught, by default on a thread of its own
//! ([`Isolation::Thread`]): a plugin that errs, panics, blocks or hangs is reported and
//! every other plugin still runs. The scheduler never fails a block.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::chain::ids::ProposalId;
use crate::chain::ids::Subject;
use crate::chain::model::Operation;
use crate::chain::model::State;
use crate::chain::ops::{ProposalCreate, ProposalUpdate};
use crate::chain::time::Timestamp;
use crate::chain::tx::{SignedTransaction, Transaction};
use crate::node::parts::{Isolation, NodeRegistry, Watch};
use crate::node::plugin::{
    Deferral, NodeIdentity, PluginError, ProposalDraft, Trigger, Validator, Verdict,
};
use crate::node::services::{NodeContext, ServiceError, Services};

/// Where signed transactions go (a mempool, a network broadcaster, a test collector).
pub trait TxSink: Send + Sync {
    /// Accepts a transaction for broadcast.
    fn submit(&self, tx: SignedTransaction) -> Result<(), SinkError>;
}

/// A sink that refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transaction sink refused the transaction: {0}")]
pub struct SinkError(pub String);

/// A sink that keeps what it is given, in order.
#[derive(Debug, Default)]
pub struct CollectingSink(std::sync::Mutex<Vec<SignedTransaction>>);

impl CollectingSink {
    /// Takes everything collected so far.
    pub fn take(&self) -> Vec<SignedTransaction> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl TxSink for CollectingSink {
    fn submit(&self, tx: SignedTransaction) -> Result<(), SinkError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        Ok(())
    }
}

/// Scheduler settings (node-local: wall-clock time is allowed here).
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How long one trigger or validator may take per block.
    pub plugin_timeout: Duration,
    /// Lifetime of the transactions it builds, in chain seconds.
    pub tx_lifetime: u64,
    /// The most drafts (and direct operations) one kind's trigger may turn into transactions
    /// per block; the rest are skipped (`DraftSkip::OverCap`) and come back at later blocks.
    pub max_drafts_per_kind: usize,
    /// This node's choice of isolation for some kinds, over what their crates declare: a node
    /// whose service for a kind cannot block (an in-memory view of another chain, say) runs
    /// it inline and saves a hand-off between threads per call; one whose service waits on a
    /// socket keeps it on a thread. Kinds not named keep their declared isolation.
    pub isolation: BTreeMap<&'static str, Isolation>,
    /// Kinds this node does not run at all, an operator's choice (a node that approves but
    /// never signs, say): their trigger and validator are not built, so the services they
    /// would need are not asked for.
    pub disabled: BTreeSet<&'static str>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            plugin_timeout: Duration::from_secs(2),
            tx_lifetime: 30,
            max_drafts_per_kind: 100,
            isolation: BTreeMap::new(),
            disabled: BTreeSet::new(),
        }
    }
}

impl SchedulerConfig {
    /// For tests: a 60 s plugin timeout. The timeout is wall-clock time, and a spawned plugin
    /// task that the runtime has not even polled by the deadline counts as timed out; on a
    /// loaded machine (several test runtimes sharing two cores) the 2 s default expired for
    /// plugins that do not block at all, so approvals went missing and scenarios drifted. Only
    /// a plugin that really hangs reaches 60 s; tests of the timeout itself set their own.
    pub fn for_tests() -> Self {
        SchedulerConfig { plugin_timeout: Duration::from_secs(60), ..SchedulerConfig::default() }
    }
}

/// Which extension point a plugin outcome is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A trigger.
    Trigger,
    /// A validator.
    Validator,
}

/// How one plugin run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginStatus {
    /// A trigger returned drafts (this many).
    Drafts(usize),
    /// A validator approved.
    Approved,
    /// A validator abstained, with its reason.
    Abstained(String),
    /// The plugin returned an error.
    Failed(String),
    /// The plugin panicked (the message, if it had one).
    Panicked(String),
    /// The plugin overran its timeout and was abandoned (on its own thread, it is quarantined
    /// until that call returns).
    TimedOut,
    /// Not run: an earlier call of this plugin overran on its thread and has not returned yet.
    Quarantined,
}

/// One plugin run in one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginOutcome {
    /// The operation kind the plugin belongs to.
    pub kind: &'static str,
    /// Trigger or validator.
    pub role: Role,
    /// The proposal reviewed (validators).
    pub proposal: Option<ProposalId>,
    /// How it ended.
    pub status: PluginStatus,
}

/// Why a draft did not become a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DraftSkip {
    /// A proposal of that `(kind, subject)` is already live.
    AlreadyLive(ProposalId),
    /// This node already sent one that has not landed or expired yet.
    AlreadySent,
    /// The draft's operation kind is not registered as proposable.
    NotProposable,
    /// The draft's operation names no subject.
    NoSubject,
    /// Its kind's trigger drafted more than `max_drafts_per_kind` this block.
    OverCap,
}

/// What the scheduler did for one block.
#[derive(Debug, Default)]
pub struct BlockReport {
    /// Head height of the snapshot.
    pub height: u64,
    /// Every plugin run.
    pub outcomes: Vec<PluginOutcome>,
    /// Drafts dropped, with their kind and subject.
    pub skipped: Vec<(String, Option<Subject>, DraftSkip)>,
    /// Subjects triggers held back, by the trigger's kind.
    pub deferred: Vec<(&'static str, Deferral)>,
    /// The `(kind, subject)` of every draft the triggers returned, sent or skipped: what they
    /// found due after this block.
    pub due: Vec<(String, Subject)>,
    /// Transactions handed to the sink.
    pub submitted: usize,
    /// Transactions the sink refused.
    pub sink_errors: Vec<SinkError>,
}

impl BlockReport {
    /// The outcomes that are failures (error, panic, timeout).
    pub fn failures(&self) -> impl Iterator<Item = &PluginOutcome> + '_ {
        self.outcomes.iter().filter(|o| {
            matches!(
                o.status,
                PluginStatus::Failed(_)
                    | PluginStatus::Panicked(_)
                    | PluginStatus::TimedOut
                    | PluginStatus::Quarantined
            )
        })
    }
}

/// What a scheduler remembers between blocks: the transactions it sent that have neither landed
/// nor expired. Persist it with the block it was computed after (see `Ledger::commit`) and
/// [`Scheduler::restore`] it on start-up, so a restarted node neither re-sends them nor forgets
/// a duty; without it, a restarted node recomputes its duties from the chain and may re-send
/// what was in flight, which the chain refuses as a duplicate.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SchedulerMemory {
    /// `(kind, subject)` of proposals sent, with their transactions' expiration.
    pub sent_proposals: Vec<((String, Subject), Timestamp)>,
    /// Proposals approved, with their transactions' expiration.
    pub sent_approvals: Vec<(ProposalId, Timestamp)>,
}

/// A scheduler that could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// A kind's trigger or validator needs a service the node was not given.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// Who has work after a block, computed once per block for every node a host runs: the next
/// producer, the SON on duty, the elected SONs, and whether any proposal is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDuty {
    /// The witness scheduled to produce the next block.
    pub next_producer: Option<crate::chain::ids::WitnessId>,
    /// The SON on duty for the next block.
    pub son_on_duty: Option<crate::chain::ids::SonId>,
    /// Whether any proposal is live (something may await review).
    pub proposals_live: bool,
}

impl BlockDuty {
    /// The duties after the head block of `state`.
    pub fn of(state: &State) -> BlockDuty {
        BlockDuty {
            next_producer: state.scheduled_producer(state.next_slot_time()),
            son_on_duty: state.son_on_duty(state.head_height() + 1),
            proposals_live: !state.proposals().is_empty(),
        }
    }
}

/// Runs a node's triggers and validators after each block.
pub struct Scheduler {
    node: Arc<NodeIdentity>,
    config: SchedulerConfig,
    triggers: Vec<(&'static str, Watch, Arc<dyn Trigger>, Lane)>,
    validators: BTreeMap<&'static str, (Arc<dyn Validator>, Lane)>,
    /// Proposals this node sent, by `(kind, subject)`, until the transaction expires.
    sent_proposals: BTreeMap<(String, Subject), Timestamp>,
    /// Approvals this node sent, until the transaction expires.
    sent_approvals: BTreeMap<ProposalId, Timestamp>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("node", &self.node.name)
            .field("triggers", &self.triggers.iter().map(|t| t.0).collect::<Vec<_>>())
            .field("validators", &self.validators.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Where one plugin's calls run: see [`Isolation`].
struct Lane {
    /// The thread's name (`node:kind:role`).
    name: String,
    isolation: Isolation,
    worker: Option<Worker>,
}

type Job = Box<dyn FnOnce(&tokio::runtime::Runtime) + Send>;
type Answer<T> = tokio::sync::oneshot::Receiver<std::thread::Result<T>>;
type PluginFuture<T> = Pin<Box<dyn Future<Output = Result<T, PluginError>> + Send>>;

/// A plugin's own thread, with its own runtime for the plugin's futures: a call that blocks
/// (sleeps, spins, waits on I/O) holds this thread only, never block processing or another
/// plugin. While a call that overran still runs, the plugin is quarantined.
struct Worker {
    jobs: std::sync::mpsc::Sender<Job>,
    stuck: Arc<AtomicBool>,
}

impl Worker {
    fn spawn(name: &str) -> std::io::Result<Worker> {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        // The thread ends when the lane (and with it the sender) is dropped.
        std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            while let Ok(job) = rx.recv() {
                job(&runtime);
            }
        })?;
        Ok(Worker { jobs, stuck: Arc::default() })
    }

    /// Runs `f` on the plugin's thread; its answer (or its panic) comes back on the receiver.
    fn call<T: Send + 'static>(&self, f: PluginFuture<T>) -> Answer<Result<T, PluginError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |rt| {
            // A call queued behind one that overran is not worth running: nobody waits for it.
            if tx.is_closed() {
                return;
            }
            // A call that awaits forever ends when the scheduler stops waiting for it; only a
            // call that blocks the thread itself keeps it.
            let mut tx = tx;
            let answer = std::panic::catch_unwind(AssertUnwindSafe(|| {
                rt.block_on(async {
                    tokio::select! {
                        answer = f => Some(answer),
                        () = tx.closed() => None,
                    }
                })
            }));
            match answer {
                Ok(Some(answer)) => {
                    let _ = tx.send(Ok(answer));
                }
                Ok(None) => {}
                Err(payload) => {
                    let _ = tx.send(Err(payload));
                }
            }
        });
        // If the thread is gone the job is dropped with its sender: the receiver says so.
        let _ = self.jobs.send(job);
        rx
    }

    /// Quarantines the plugin until the call that overran returns: the job that lifts it is
    /// queued behind that call on the same thread.
    fn overran(&self) {
        self.stuck.store(true, Ordering::Release);
        let stuck = Arc::clone(&self.stuck);
        let _ = self.jobs.send(Box::new(move |_| stuck.store(false, Ordering::Release)));
    }
}

/// A plugin call under way.
enum Call<T> {
    /// An inline call that answered when first polled (most do: they only read the snapshot).
    Ready(Result<T, PluginError>),
    /// An inline call that answered when first polled, but only after blocking the scheduler's
    /// thread past the timeout.
    Late,
    /// An inline call that panicked when first polled.
    Panicked(String),
    /// An inline call that awaits: spawned on the scheduler's own runtime.
    Inline(tokio::task::JoinHandle<Result<T, PluginError>>),
    /// Sent to the plugin's thread.
    Thread(Answer<Result<T, PluginError>>),
    /// Not started: the plugin is quarantined, or its thread could not be started.
    NotRun(PluginStatus),
}

impl Lane {
    fn new(node: &str, kind: &str, role: &str, isolation: Isolation) -> Lane {
        Lane { name: format!("{node}:{kind}:{role}"), isolation, worker: None }
    }

    /// Starts a call, where the lane's isolation says. An inline call is polled once here,
    /// on the scheduler's thread: one that answers at once costs no task and no timer; one
    /// that awaits is spawned on the scheduler's runtime; one that blocked longer than
    /// `timeout` is late.
    fn start<T: Send + 'static>(&mut self, mut f: PluginFuture<T>, timeout: Duration) -> Call<T> {
        if self.isolation == Isolation::Inline {
            let began = std::time::Instant::now();
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let polled = std::panic::catch_unwind(AssertUnwindSafe(|| f.as_mut().poll(&mut cx)));
            return match polled {
                Ok(std::task::Poll::Ready(_)) if began.elapsed() > timeout => Call::Late,
                Ok(std::task::Poll::Ready(answer)) => Call::Ready(answer),
                // Spawned, it is polled again with a real waker, which it registers.
                Ok(std::task::Poll::Pending) => Call::Inline(tokio::spawn(f)),
                Err(payload) => Call::Panicked(crate::chain::panic::panic_message(&*payload)),
            };
        }
        if self.worker.is_none() {
            match Worker::spawn(&self.name) {
                Ok(w) => self.worker = Some(w),
                Err(e) => {
                    let why = format!("cannot start the plugin's thread: {e}");
                    return Call::NotRun(PluginStatus::Failed(why));
                }
            }
        }
        let worker = self.worker.as_ref().expect("started above");
        if worker.stuck.load(Ordering::Acquire) {
            return Call::NotRun(PluginStatus::Quarantined);
        }
        Call::Thread(worker.call(f))
    }

    /// Waits for a call until `deadline`: its value, or how it failed (logged with `block`,
    /// the block the call is about).
    async fn finish<T>(
        &mut self,
        call: Call<T>,
        deadline: tokio::time::Instant,
        block: u64,
    ) -> Result<T, PluginStatus> {
        let answer = match call {
            Call::NotRun(status) => return Err(status),
            Call::Ready(answer) => answer,
            Call::Panicked(message) => return Err(PluginStatus::Panicked(message)),
            // It answered, but only after blocking the scheduler's thread past the timeout:
            // its answer is dropped and its calls go to a thread of their own.
            Call::Late => {
                tracing::warn!(
                    plugin = %self.name,
                    block,
                    "plugin blocked the scheduler past its timeout; it runs on its own thread from now on"
                );
                self.isolation = Isolation::Thread;
                return Err(PluginStatus::TimedOut);
            }
            Call::Inline(mut task) => match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(Ok(answer)) if tokio::time::Instant::now() <= deadline => answer,
                // It answered, but only after blocking the scheduler's thread past the
                // deadline: its answer is dropped and its calls go to a thread of their own.
                Ok(Ok(_)) => {
                    tracing::warn!(
                        plugin = %self.name,
                        block,
                        "plugin blocked the scheduler past its timeout; it runs on its own thread from now on"
                    );
                    self.isolation = Isolation::Thread;
                    return Err(PluginStatus::TimedOut);
                }
                Ok(Err(join)) => return Err(join_failure(join)),
                Err(_) => {
                    task.abort();
                    return Err(PluginStatus::TimedOut);
                }
            },
            Call::Thread(rx) => match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(Ok(answer))) => answer,
                Ok(Ok(Err(payload))) => {
                    return Err(PluginStatus::Panicked(crate::chain::panic::panic_message(
                        &*payload,
                    )))
                }
                Ok(Err(_)) => {
                    return Err(PluginStatus::Failed("the plugin's thread is gone".into()))
                }
                Err(_) => {
                    if let Some(w) = &self.worker {
                        w.overran();
                    }
                    return Err(PluginStatus::TimedOut);
                }
            },
        };
        answer.map_err(|e| PluginStatus::Failed(e.to_string()))
    }
}

fn join_failure(e: tokio::task::JoinError) -> PluginStatus {
    match e.try_into_panic() {
        Ok(payload) => PluginStatus::Panicked(crate::chain::panic::panic_message(&*payload)),
        Err(e) => PluginStatus::Failed(e.to_string()),
    }
}

impl Scheduler {
    /// A scheduler for `node` with the triggers and validators of the kinds in `registry` that
    /// this node can run, each built from its `services`: a trigger where the kind's
    /// [`Watch`] can select the node, a validator on a SON's node. A part that needs a service
    /// the node lacks is an error naming the kind and the service: at start-up, never at the
    /// first block.
    pub fn new(
        registry: &NodeRegistry,
        node: NodeIdentity,
        services: &Services,
        config: SchedulerConfig,
    ) -> Result<Self, SchedulerError> {
        let mut triggers = Vec::new();
        let mut validators = BTreeMap::new();
        for p in registry.iter().filter(|p| !config.disabled.contains(p.kind)) {
            let ctx = NodeContext { kind: p.kind, node: &node, services };
            let isolation = config.isolation.get(p.kind).copied().unwrap_or(p.isolation);
            // Parts are built only where they can run, so a kind needs no stand-in elsewhere
            // and its services are asked only of these nodes: a trigger where its watch can
            // select the node (the scheduled witness's on witness nodes, the others on SON
            // nodes), a validator on SON nodes (the SON consensus authority approves).
            let watched = match p.watch {
                Watch::ScheduledWitness => node.witness.is_some(),
                _ => node.son.is_some(),
            };
            if let Some(make) = p.trigger.filter(|_| watched) {
                let lane = Lane::new(&node.name, p.kind, "trigger", isolation);
                triggers.push((p.kind, p.watch, Arc::from(make(&ctx)?), lane));
            }
            if let Some(make) = p.validator.filter(|_| node.son.is_some()) {
                let lane = Lane::new(&node.name, p.kind, "validator", isolation);
                validators.insert(p.kind, (Arc::from(make(&ctx)?), lane));
            }
        }
        Ok(Scheduler {
            node: Arc::new(node),
            config,
            triggers,
            validators,
            sent_proposals: BTreeMap::new(),
            sent_approvals: BTreeMap::new(),
        })
    }

    /// What this scheduler remembers (to persist with the block it follows).
    pub fn memory(&self) -> SchedulerMemory {
        SchedulerMemory {
            sent_proposals: self.sent_proposals.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            sent_approvals: self.sent_approvals.iter().map(|(k, v)| (*k, *v)).collect(),
        }
    }

    /// Restores what [`Scheduler::memory`] returned.
    pub fn restore(&mut self, memory: SchedulerMemory) {
        self.sent_proposals = memory.sent_proposals.into_iter().collect();
        self.sent_approvals = memory.sent_approvals.into_iter().collect();
    }

    /// The node this scheduler acts for.
    pub fn node(&self) -> &NodeIdentity {
        &self.node
    }

    /// Whether this node produces the next block (the condition for running the triggers of
    /// kinds watched by the scheduled witness).
    pub fn is_next_producer(&self, state: &State) -> bool {
        self.node.witness.is_some()
            && state.scheduled_producer(state.next_slot_time()) == self.node.witness
    }

    /// Whether this node operates an elected SON (the condition for running the triggers of
    /// kinds watched by every elected SON).
    pub fn is_elected_son(&self, state: &State) -> bool {
        self.node.son.is_some_and(|s| state.is_elected(s))
    }

    /// Whether this node operates a SON that is not deregistered (the condition for running
    /// the triggers of kinds watched by every SON).
    pub fn is_registered_son(&self, state: &State) -> bool {
        self.node
            .son
            .and_then(|s| state.son(s))
            .is_some_and(|s| s.status != crate::chain::objects::SonStatus::Deregistered)
    }

    /// Whether this node's SON is on duty for the next block (the condition for running the
    /// triggers of kinds watched by elected SONs).
    pub fn is_son_on_duty(&self, state: &State) -> bool {
        self.node.son.is_some() && state.son_on_duty(state.head_height() + 1) == self.node.son
    }

    /// The live proposals this node may approve, has not approved, and has not just approved,
    /// in id order: only single-operation proposals of kinds it has a validator for, found
    /// through the index (never a walk over every live proposal).
    fn to_review(&self, state: &State) -> Vec<(ProposalId, &'static str)> {
        let me = self.node.account;
        let mut out: Vec<(ProposalId, &'static str)> = self
            .validators
            .keys()
            .flat_map(|kind| state.single_kind_proposals(kind).map(move |id| (id, *kind)))
            .filter(|(id, _)| !self.sent_approvals.contains_key(id))
            .filter(|(id, _)| {
                state
                    .proposal(*id)
                    .is_some_and(|p| !p.approvals.contains(&me) && state.may_approve(p, me))
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Signs `op` as this node and hands it to the sink; whether the sink took it.
    fn send(
        &self,
        state: &State,
        expiration: Timestamp,
        op: impl crate::chain::model::Operation + 'static,
        sink: &dyn TxSink,
        report: &mut BlockReport,
    ) -> bool {
        let tx = Transaction::single(expiration, op).sign(&state.chain_id(), &[&self.node.keys]);
        match sink.submit(tx) {
            Ok(()) => {
                report.submitted += 1;
                true
            }
            Err(e) => {
                report.sink_errors.push(e);
                false
            }
        }
    }

    /// Whether this node has anything to do after the block `duty` describes: a trigger to
    /// run, possibly a proposal to review, or memory to prune. A host running many nodes (the
    /// simulator) computes the duty once per block and skips the nodes without work; skipping
    /// changes nothing, since [`Scheduler::on_block`] would return at once for them.
    pub fn has_work(&self, duty: &BlockDuty, state: &State) -> bool {
        if !self.sent_proposals.is_empty() || !self.sent_approvals.is_empty() {
            return true;
        }
        if duty.proposals_live && !self.validators.is_empty() {
            return true;
        }
        // A trigger its watch selects, awake: what `on_block` would run.
        self.triggers.iter().any(|(_, watch, t, _)| {
            let runs = match watch {
                Watch::ScheduledWitness => {
                    self.node.witness.is_some() && duty.next_producer == self.node.witness
                }
                Watch::ElectedSons => self.node.son.is_some() && duty.son_on_duty == self.node.son,
                Watch::EachElectedSon => self.is_elected_son(state),
                Watch::EachSon => self.is_registered_son(state),
            };
            runs && t.wake(state, &self.node)
        })
    }

    /// Runs after a block has been applied: `state` is the snapshot after it.
    pub async fn on_block(&mut self, state: Arc<State>, sink: &dyn TxSink) -> BlockReport {
        let head = state.head_time();
        self.sent_proposals.retain(|_, exp| *exp > head);
        self.sent_approvals.retain(|id, exp| *exp > head && state.proposal(*id).is_some());
        let mut report = BlockReport { height: state.head_height(), ..Default::default() };

        let (mut producer, mut on_duty) = (None, None);
        let mut due = Vec::new();
        for (i, (kind, watch, t, _)) in self.triggers.iter().enumerate() {
            let runs = match watch {
                Watch::ScheduledWitness => {
                    *producer.get_or_insert_with(|| self.is_next_producer(&state))
                }
                Watch::ElectedSons => *on_duty.get_or_insert_with(|| self.is_son_on_duty(&state)),
                Watch::EachElectedSon => self.is_elected_son(&state),
                Watch::EachSon => self.is_registered_son(&state),
            };
            if runs && t.wake(&state, &self.node) {
                due.push((i, *kind, Arc::clone(t)));
            }
        }
        let reviews = if self.validators.is_empty() { Vec::new() } else { self.to_review(&state) };
        if due.is_empty() && reviews.is_empty() {
            return report;
        }

        // Every call starts before any is awaited, so they run side by side under one deadline.
        let mut trigger_calls = Vec::new();
        for (i, kind, t) in due {
            let (s, n) = (Arc::clone(&state), Arc::clone(&self.node));
            let call = self.triggers[i]
                .3
                .start(Box::pin(async move { t.drafts(&s, &n).await }), self.config.plugin_timeout);
            trigger_calls.push((i, kind, call));
        }
        let mut review_calls = Vec::new();
        for (id, kind) in reviews {
            let (v, lane) = self.validators.get_mut(kind).expect("listed from the validators");
            let (v, s, n) = (Arc::clone(v), Arc::clone(&state), Arc::clone(&self.node));
            let call = lane.start(
                Box::pin(async move {
                    let p = s.proposal(id).cloned().expect("listed from this snapshot");
                    v.review(&s, &p, &n).await
                }),
                self.config.plugin_timeout,
            );
            review_calls.push((id, kind, call));
        }

        let deadline = tokio::time::Instant::now() + self.config.plugin_timeout;
        let mut drafts: Vec<(&'static str, ProposalDraft)> = Vec::new();
        let mut direct: Vec<Box<dyn Operation>> = Vec::new();
        let cap = self.config.max_drafts_per_kind;
        for (i, kind, call) in trigger_calls {
            let status = match self.triggers[i].3.finish(call, deadline, report.height).await {
                Ok(out) => {
                    let n = out.drafts.len() + out.operations.len();
                    // A trigger that floods is cut to the cap, per block.
                    let mut taken = 0;
                    for d in out.drafts {
                        if taken < cap {
                            drafts.push((kind, d));
                            taken += 1;
                        } else {
                            let s = d.operation.subject();
                            report.skipped.push((kind.to_owned(), s, DraftSkip::OverCap));
                        }
                    }
                    for op in out.operations {
                        if taken < cap {
                            direct.push(op);
                            taken += 1;
                        } else {
                            report.skipped.push((
                                kind.to_owned(),
                                op.subject(),
                                DraftSkip::OverCap,
                            ));
                        }
                    }
                    for d in &out.deferred {
                        tracing::info!(
                            node = %self.node.name,
                            block = report.height,
                            kind,
                            subject = %d.subject,
                            reason = %d.reason,
                            "held back"
                        );
                    }
                    report.deferred.extend(out.deferred.into_iter().map(|d| (kind, d)));
                    PluginStatus::Drafts(n)
                }
                Err(status) => status,
            };
            log_outcome(&self.node.name, report.height, kind, Role::Trigger, None, &status);
            report.outcomes.push(PluginOutcome {
                kind,
                role: Role::Trigger,
                proposal: None,
                status,
            });
        }
        let mut approve = Vec::new();
        for (id, kind, call) in review_calls {
            let lane = &mut self.validators.get_mut(kind).expect("listed from the validators").1;
            let status = match lane.finish(call, deadline, report.height).await {
                Ok(Verdict::Approve) => {
                    approve.push(id);
                    PluginStatus::Approved
                }
                Ok(Verdict::Abstain(why)) => PluginStatus::Abstained(why),
                Err(status) => status,
            };
            log_outcome(&self.node.name, report.height, kind, Role::Validator, Some(id), &status);
            report.outcomes.push(PluginOutcome {
                kind,
                role: Role::Validator,
                proposal: Some(id),
                status,
            });
        }

        let tx_exp = head.plus(self.config.tx_lifetime);
        let mut batch = BTreeSet::new();
        for (_, draft) in drafts {
            let kind = draft.operation.kind();
            let subject = draft.operation.subject();
            if let Some(subj) = &subject {
                report.due.push((kind.to_owned(), subj.clone()));
            }
            let skip = |why| (kind.to_owned(), subject.clone(), why);
            let Some(policy) = state.registry().operation(kind).and_then(|d| d.proposal) else {
                report.skipped.push(skip(DraftSkip::NotProposable));
                continue;
            };
            let Some(subj) = subject.clone() else {
                report.skipped.push(skip(DraftSkip::NoSubject));
                continue;
            };
            if let Some(live) = state.live_proposal(kind, &subj) {
                report.skipped.push(skip(DraftSkip::AlreadyLive(live)));
                continue;
            }
            let key = (kind.to_owned(), subj);
            if self.sent_proposals.contains_key(&key) || !batch.insert(key.clone()) {
                report.skipped.push(skip(DraftSkip::AlreadySent));
                continue;
            }
            let lifetime = draft.lifetime.unwrap_or_else(|| (policy.lifetime)(&state));
            let create = ProposalCreate {
                proposer: self.node.account,
                expiration_time: head.plus(lifetime),
                review_period_seconds: None,
                operations: vec![draft.operation],
            };
            if self.send(&state, tx_exp, create, sink, &mut report) {
                self.sent_proposals.insert(key, tx_exp);
            }
        }
        for op in direct {
            let kind = op.kind();
            let Some(subject) = op.subject() else {
                report.skipped.push((kind.to_owned(), None, DraftSkip::NoSubject));
                continue;
            };
            let key = (kind.to_owned(), subject.clone());
            if self.sent_proposals.contains_key(&key) || !batch.insert(key.clone()) {
                report.skipped.push((kind.to_owned(), Some(subject), DraftSkip::AlreadySent));
                continue;
            }
            let tx = Transaction { expiration: tx_exp, operations: vec![op] }
                .sign(&state.chain_id(), &[&self.node.keys]);
            match sink.submit(tx) {
                Ok(()) => {
                    report.submitted += 1;
                    self.sent_proposals.insert(key, tx_exp);
                }
                Err(e) => report.sink_errors.push(e),
            }
        }
        for id in approve {
            let update = ProposalUpdate::approve(id, self.node.account);
            if self.send(&state, tx_exp, update, sink, &mut report) {
                self.sent_approvals.insert(id, tx_exp);
            }
        }
        report
    }
}

/// Logs one plugin call's outcome, naming the node and the block it ran after.
fn log_outcome(
    node: &str,
    block: u64,
    kind: &str,
    role: Role,
    proposal: Option<ProposalId>,
    status: &PluginStatus,
) {
    match status {
        PluginStatus::Failed(_)
        | PluginStatus::Panicked(_)
        | PluginStatus::TimedOut
        | PluginStatus::Quarantined => tracing::warn!(
            node,
            block,
            kind,
            ?role,
            ?proposal,
            ?status,
            "plugin failed; other plugins ran on"
        ),
        _ => tracing::debug!(node, block, kind, ?role, ?proposal, ?status, "plugin ran"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::event::LedgerEvent;
    use crate::chain::ids::SonId;
    use crate::chain::model::{OperationDescriptor, Proposal};
    use crate::node::parts::{Isolation, NodeParts, TriggerCtor};
    use crate::node::plugin::{PluginError, TriggerOutput};
    use crate::registry::Registry;
    use crate::testkit::probe::{self, SonProbe};
    use crate::testkit::TestNetwork;
    use async_trait::async_trait;

    struct Good;
    #[async_trait]
    impl Trigger for Good {
        async fn drafts(&self, _: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
            Ok(vec![ProposalDraft::new(SonProbe {
                son: SonId(1),
                fail_after: None,
                set_status: None,
            })]
            .into())
        }
    }
    struct Panics;
    #[async_trait]
    impl Trigger for Panics {
        async fn drafts(&self, _: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
            panic!("trigger bug")
        }
    }
    struct Hangs;
    #[async_trait]
    impl Trigger for Hangs {
        async fn drafts(&self, _: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
            std::future::pending().await
        }
    }
    struct Errs;
    #[async_trait]
    impl Trigger for Errs {
        async fn drafts(&self, _: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
            Err(PluginError::msg("bitcoin node unreachable"))
        }
    }
    /// Approves probes about odd SONs, abstains otherwise.
    struct OddSons;
    #[async_trait]
    impl Validator for OddSons {
        async fn review(
            &self,
            _: &State,
            p: &Proposal,
            _: &NodeIdentity,
        ) -> Result<Verdict, PluginError> {
            let probe = p.operations[0]
                .downcast_ref::<SonProbe>()
                .ok_or_else(|| PluginError::msg("not a probe"))?;
            Ok(if probe.son.0 % 2 == 1 {
                Verdict::Approve
            } else {
                Verdict::Abstain("even".into())
            })
        }
    }

    type Part = (OperationDescriptor, NodeParts);

    fn with_trigger(name: &'static str, make: TriggerCtor) -> Part {
        let d = OperationDescriptor { name, ..probe::OPERATIONS[0] };
        let parts = NodeParts {
            kind: name,
            watch: Watch::ScheduledWitness,
            trigger: Some(make),
            validator: None,
            isolation: Isolation::Thread,
        };
        (d, parts)
    }

    fn son_probe_with_validator() -> Part {
        let parts = NodeParts {
            kind: probe::SON_PROBE,
            watch: Watch::ScheduledWitness,
            trigger: None,
            validator: Some(|_| Ok(Box::new(OddSons))),
            isolation: Isolation::Thread,
        };
        (probe::OPERATIONS[0], parts)
    }

    fn registry(extra: Vec<Part>) -> Registry {
        let b = std::iter::once(son_probe_with_validator())
            .chain(extra)
            .fold(Registry::builder(), |b, (d, p)| b.operation(d).node_parts(p));
        b.build().expect("unique")
    }

    fn network(extra: Vec<Part>) -> TestNetwork {
        TestNetwork::builder().witnesses(3).sons(6).build(registry(extra).into_arc())
    }

    fn extra_again() -> Vec<Part> {
        vec![
            with_trigger("t_good", |_| Ok(Box::new(Good))),
            with_trigger("t_panics", |_| Ok(Box::new(Panics))),
            with_trigger("t_hangs", |_| Ok(Box::new(Hangs))),
            with_trigger("t_errs", |_| Ok(Box::new(Errs))),
        ]
    }

    /// Only the hanging trigger may reach this; the others answer at once, so 2 s leaves a
    /// loaded machine room to poll them (see `SchedulerConfig::for_tests`).
    fn config() -> SchedulerConfig {
        SchedulerConfig { plugin_timeout: Duration::from_secs(2), ..SchedulerConfig::default() }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_hanging_or_failing_trigger_does_not_stop_the_others() {
        let mut net = network(extra_again());
        net.start_schedulers(config());
        let step = net.step().await;
        // Exactly one node (the next producer) ran triggers.
        let ran: Vec<_> = step
            .reports
            .iter()
            .filter(|(_, r)| r.outcomes.iter().any(|o| o.role == Role::Trigger))
            .collect();
        assert_eq!(ran.len(), 1, "only the next producer runs triggers");
        let report = &ran[0].1;
        let status =
            |k: &str| report.outcomes.iter().find(|o| o.kind == k).map(|o| o.status.clone());
        assert_eq!(status("t_good"), Some(PluginStatus::Drafts(1)));
        assert_eq!(status("t_panics"), Some(PluginStatus::Panicked("trigger bug".into())));
        assert_eq!(status("t_hangs"), Some(PluginStatus::TimedOut));
        assert_eq!(status("t_errs"), Some(PluginStatus::Failed("bitcoin node unreachable".into())));
        assert_eq!(report.failures().count(), 3);
        assert_eq!(report.submitted, 1, "the good trigger's draft was signed and sent");
        // It lands in the next block as a live proposal with its record.
        let step = net.step().await;
        assert!(
            step.rejected.is_empty(),
            "{:?}",
            step.rejected.iter().map(|r| r.error.to_string()).collect::<Vec<_>>()
        );
        let created =
            step.outcome.events.iter().any(|e| matches!(e, LedgerEvent::ProposalCreated { .. }));
        assert!(created, "{:?}", step.outcome.events);
        assert!(net
            .ledger
            .state()
            .live_proposal(probe::SON_PROBE, &Subject::Son(SonId(1)))
            .is_some());
    }

    /// A kind a node disables is not built there: the service it would ask for is not needed,
    /// and it never runs; the others still do.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_disabled_kind_is_not_built_nor_run() {
        let needs_service: TriggerCtor = |ctx| {
            let _: u32 = ctx.service::<u32>()?;
            Ok(Box::new(Good))
        };
        let mut net = network(vec![
            with_trigger("t_good", |_| Ok(Box::new(Good))),
            with_trigger("t_needs", needs_service),
        ]);
        let node = net.witnesses[0].clone();
        let registry = net.registry.clone();
        let e = Scheduler::new(registry.node(), node.clone(), &Services::new(), config());
        assert!(matches!(e, Err(SchedulerError::Service(ServiceError::Missing { .. }))), "{e:?}");
        let disabled = SchedulerConfig { disabled: BTreeSet::from(["t_needs"]), ..config() };
        Scheduler::new(registry.node(), node, &Services::new(), disabled.clone())
            .expect("the kind that needs the service is not built");
        net.start_schedulers(disabled);
        let step = net.step().await;
        let kinds: Vec<_> =
            step.reports.iter().flat_map(|(_, r)| &r.outcomes).map(|o| o.kind).collect();
        assert!(kinds.contains(&"t_good") && !kinds.contains(&"t_needs"), "{kinds:?}");
    }

    /// A kind's parts are built only on the nodes that can run them, so its service is asked of
    /// those alone: a SON-watched trigger and every validator on SON nodes, a witness-watched
    /// trigger on witness nodes. A node that runs a part and lacks its service still fails.
    #[test]
    fn parts_are_built_only_where_they_can_run() {
        let needs_service: TriggerCtor = |ctx| {
            let _: u32 = ctx.service::<u32>()?;
            Ok(Box::new(Good))
        };
        let son_kind = {
            let (d, mut p) = with_trigger("t_son", needs_service);
            p.watch = Watch::ElectedSons;
            p.validator = Some(|ctx| {
                let _: u32 = ctx.service::<u32>()?;
                Ok(Box::new(OddSons))
            });
            (d, p)
        };
        let witness_kind = {
            let (d, mut p) = with_trigger("t_witness", |ctx| {
                let _: u64 = ctx.service::<u64>()?;
                Ok(Box::new(Good))
            });
            p.watch = Watch::ScheduledWitness;
            (d, p)
        };
        let net = network(vec![son_kind, witness_kind]);
        let registry = net.registry.clone();
        let build = |node: &NodeIdentity, services: &Services| {
            Scheduler::new(registry.node(), node.clone(), services, config())
        };
        let (witness, son) = (net.witnesses[0].clone(), net.sons[0].clone());
        // The witness node needs only the witness kind's service, the SON node only the SON
        // kind's: neither builds the other's parts.
        let w = build(&witness, &Services::new().with(7u64)).expect("no SON parts on a witness");
        assert!(w.triggers.iter().all(|(k, ..)| *k != "t_son"), "{w:?}");
        assert!(
            !w.validators.contains_key("t_son") && !w.validators.contains_key(probe::SON_PROBE)
        );
        assert!(w.triggers.iter().any(|(k, ..)| *k == "t_witness"));
        let s = build(&son, &Services::new().with(7u32)).expect("no witness parts on a SON");
        assert!(s.triggers.iter().any(|(k, ..)| *k == "t_son"));
        assert!(s.validators.contains_key("t_son") && s.validators.contains_key(probe::SON_PROBE));
        assert!(s.triggers.iter().all(|(k, ..)| *k != "t_witness"), "{s:?}");
        // Each still fails without the service of a part it runs.
        for (node, services) in
            [(&witness, Services::new().with(7u32)), (&son, Services::new().with(7u64))]
        {
            let e = build(node, &services).expect_err("a part it runs lacks its service");
            assert!(matches!(e, SchedulerError::Service(ServiceError::Missing { .. })), "{e:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drafts_for_a_live_kind_and_subject_are_dropped_not_resent() {
        let mut net = network(vec![with_trigger("t_good", |_| Ok(Box::new(Good)))]);
        net.start_schedulers(config());
        net.step().await; // the good trigger drafts; the create is queued
        let step = net.step().await; // the proposal is live now, and the trigger drafts it again
        assert_eq!(
            step.outcome
                .events
                .iter()
                .filter(|e| matches!(e, LedgerEvent::ProposalCreated { .. }))
                .count(),
            1
        );
        let skipped: Vec<_> = step.reports.iter().flat_map(|(_, r)| r.skipped.iter()).collect();
        assert!(
            skipped.iter().any(|(k, s, why)| k == probe::SON_PROBE
                && *s == Some(Subject::Son(SonId(1)))
                && matches!(why, DraftSkip::AlreadyLive(_))),
            "{skipped:?}"
        );
        assert_eq!(net.ledger.state().proposals().len(), 1, "never two live proposals");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn validators_approve_what_they_accept_and_the_proposal_executes() {
        let mut net = network(vec![with_trigger("t_good", |_| Ok(Box::new(Good)))]);
        net.start_schedulers(config());
        let mut executed = false;
        for _ in 0..4 {
            let step = net.step().await;
            executed |= step
                .outcome
                .events
                .iter()
                .any(|e| matches!(e, LedgerEvent::ProposalExecuted { .. }));
        }
        assert!(executed, "five SON validators approved the probe about odd SON 1");
        assert_eq!(net.ledger.state().son(SonId(1)).expect("son").statistics.txs_signed, 1);
    }

    /// Sends, as its node, an operation with a subject and one without, every block.
    struct Direct;
    #[async_trait]
    impl Trigger for Direct {
        async fn drafts(&self, _: &State, n: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
            let with_subject = crate::testkit::probe::AccountProbe {
                account: n.account,
                subject: format!("mine:{}", n.name),
                amount: 1,
                fail_after: None,
            };
            let without = crate::testkit::probe::PlainProbe {
                account: n.account,
                amount: 1,
                fail_after: None,
            };
            Ok(TriggerOutput {
                operations: vec![Box::new(with_subject), Box::new(without)],
                ..TriggerOutput::default()
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operations_a_trigger_sends_itself_go_once_per_subject_until_they_expire() {
        let (d, _) = with_trigger("t_direct", |_| Ok(Box::new(Direct)));
        let parts = NodeParts {
            kind: "t_direct",
            watch: Watch::EachElectedSon,
            trigger: Some(|_| Ok(Box::new(Direct))),
            validator: None,
            isolation: Isolation::Thread,
        };
        let reg = Registry::builder().operation(d).node_parts(parts).build().expect("unique");
        let net = TestNetwork::builder().witnesses(3).sons(6).build(Arc::new(reg));
        let son = net.sons[1].clone();
        let services = Services::default();
        let mut s = Scheduler::new(net.registry.node(), son, &services, config()).expect("built");
        let sink = CollectingSink::default();
        let first = s.on_block(net.ledger.snapshot(), &sink).await;
        assert_eq!(first.submitted, 1, "the one with a subject");
        assert!(first.skipped.iter().any(|(_, _, why)| *why == DraftSkip::NoSubject));
        let second = s.on_block(net.ledger.snapshot(), &sink).await;
        assert_eq!(second.submitted, 0, "in flight: not sent again");
        assert!(second.skipped.iter().any(|(_, _, why)| *why == DraftSkip::AlreadySent));
        assert_eq!(sink.take().len(), 1);
    }

    /// Drafts a probe about each of 20 000 SONs.
    struct Flood;
    #[async_trait]
    impl Trigger for Flood {
        async fn drafts(&self, _: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
            let d = (0..20_000)
                .map(|i| {
                    ProposalDraft::new(SonProbe {
                        son: SonId(i),
                        fail_after: None,
                        set_status: None,
                    })
                })
                .collect::<Vec<_>>();
            Ok(d.into())
        }
    }

    /// Blocks its thread until `release` is set (at most 60 s): by sleeping, by spinning, or by
    /// reading a loopback socket that never sends.
    struct Blocks {
        how: &'static str,
        release: &'static AtomicBool,
    }
    #[async_trait]
    impl Trigger for Blocks {
        async fn drafts(&self, _: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
            let start = std::time::Instant::now();
            let held = || {
                !self.release.load(Ordering::Acquire) && start.elapsed() < Duration::from_secs(60)
            };
            match self.how {
                "sleep" => {
                    while held() {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                "spin" => {
                    while held() {
                        std::hint::spin_loop();
                    }
                }
                _ => {
                    use std::io::Read;
                    let listener =
                        std::net::TcpListener::bind("127.0.0.1:0").map_err(PluginError::msg)?;
                    let mut conn = std::net::TcpStream::connect(
                        listener.local_addr().map_err(PluginError::msg)?,
                    )
                    .map_err(PluginError::msg)?;
                    conn.set_read_timeout(Some(Duration::from_millis(20)))
                        .map_err(PluginError::msg)?;
                    while held() {
                        // Nothing is ever sent: each read waits out its 20 ms.
                        let _ = conn.read(&mut [0u8; 1]);
                    }
                }
            }
            Ok(TriggerOutput::default())
        }
    }

    fn status_of(step: &crate::testkit::Step, kind: &str) -> Option<PluginStatus> {
        step.reports
            .iter()
            .flat_map(|(_, r)| r.outcomes.iter())
            .find(|o| o.kind == kind)
            .map(|o| o.status.clone())
    }

    /// Triggers that sleep, spin or wait on a socket (until released, or 60 s) are cut off at
    /// the 300 ms timeout, quarantined while they still run, and hold up neither the good
    /// trigger nor the next blocks. A network of one witness, so one node runs them all.
    async fn blocking_plugins_do_not_hold_block_processing<const R: usize>() {
        let release = &RELEASE[R];
        let registry = registry(vec![
            with_trigger("t_good", |_| Ok(Box::new(Good))),
            with_trigger("t_sleep", |_| {
                Ok(Box::new(Blocks { how: "sleep", release: &RELEASE[R] }))
            }),
            with_trigger("t_spin", |_| Ok(Box::new(Blocks { how: "spin", release: &RELEASE[R] }))),
            with_trigger("t_io", |_| Ok(Box::new(Blocks { how: "io", release: &RELEASE[R] }))),
        ]);
        let mut net = TestNetwork::builder().witnesses(1).sons(6).build(registry.into_arc());
        net.start_schedulers(SchedulerConfig {
            plugin_timeout: Duration::from_millis(300),
            ..config()
        });
        let started = std::time::Instant::now();
        let first = net.step().await;
        let blockers = ["t_sleep", "t_spin", "t_io"];
        for k in blockers {
            assert_eq!(status_of(&first, k), Some(PluginStatus::TimedOut), "{k}");
        }
        assert_eq!(status_of(&first, "t_good"), Some(PluginStatus::Drafts(1)));
        // Still blocked, they are not called again, and the blocks go on.
        for _ in 0..3 {
            let step = net.step().await;
            for k in blockers {
                assert_eq!(status_of(&step, k), Some(PluginStatus::Quarantined), "{k}");
            }
            assert!(matches!(status_of(&step, "t_good"), Some(PluginStatus::Drafts(_))));
        }
        // Had any plugin held block processing, these four blocks would have waited for the
        // 60 s the plugins block for.
        assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
        // Released, their calls return, the quarantine lifts and they run again.
        release.store(true, Ordering::Release);
        let mut back = false;
        for _ in 0..200 {
            let step = net.step().await;
            if blockers.iter().all(|k| status_of(&step, k) == Some(PluginStatus::Drafts(0))) {
                back = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(back, "the released plugins never ran again");
    }

    /// One release switch per test below (they run side by side).
    static RELEASE: [AtomicBool; 2] = [const { AtomicBool::new(false) }; 2];

    /// On a single-thread runtime: the simulator's.
    #[test]
    fn blocking_plugins_do_not_hold_a_single_thread_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("rt");
        rt.block_on(blocking_plugins_do_not_hold_block_processing::<0>());
    }

    /// On a two-worker runtime, where a stuck worker used to hang the next block.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_plugins_do_not_hold_a_two_worker_runtime() {
        blocking_plugins_do_not_hold_block_processing::<1>().await;
    }

    /// A call that awaits forever frees its thread once the scheduler gives up on it: the
    /// plugin is called again at a later block instead of staying quarantined.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_plugin_that_awaits_forever_is_not_quarantined_for_good() {
        let registry = registry(vec![with_trigger("t_hangs", |_| Ok(Box::new(Hangs)))]);
        let mut net = TestNetwork::builder().witnesses(1).sons(6).build(registry.into_arc());
        net.start_schedulers(SchedulerConfig {
            plugin_timeout: Duration::from_millis(100),
            ..config()
        });
        let first = net.step().await;
        assert_eq!(status_of(&first, "t_hangs"), Some(PluginStatus::TimedOut));
        let mut called_again = false;
        for _ in 0..100 {
            let step = net.step().await;
            if status_of(&step, "t_hangs") == Some(PluginStatus::TimedOut) {
                called_again = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(called_again, "still quarantined");
    }

    /// Where each call ran, by thread name.
    static RAN_ON: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

    /// Sleeps 400 ms on every call, after noting its thread.
    struct Slow;
    #[async_trait]
    impl Trigger for Slow {
        async fn drafts(&self, _: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
            let name = std::thread::current().name().unwrap_or("unnamed").to_owned();
            RAN_ON.lock().unwrap_or_else(|p| p.into_inner()).push(name);
            std::thread::sleep(Duration::from_millis(400));
            Ok(TriggerOutput::default())
        }
    }

    /// An inline plugin that blocked past its timeout has its answer dropped and is moved to a
    /// thread of its own, where its next calls run.
    #[test]
    fn an_inline_plugin_that_blocks_is_moved_to_its_own_thread() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("rt");
        rt.block_on(async {
            let (d, mut parts) = with_trigger("t_slow", |_| Ok(Box::new(Slow)));
            parts.isolation = Isolation::Inline;
            let registry = registry(vec![(d, parts)]);
            let mut net = TestNetwork::builder().witnesses(1).sons(6).build(registry.into_arc());
            net.start_schedulers(SchedulerConfig {
                plugin_timeout: Duration::from_millis(100),
                ..config()
            });
            let first = net.step().await;
            assert_eq!(status_of(&first, "t_slow"), Some(PluginStatus::TimedOut));
            let second = net.step().await;
            assert_eq!(status_of(&second, "t_slow"), Some(PluginStatus::TimedOut));
            let ran_on = RAN_ON.lock().unwrap_or_else(|p| p.into_inner()).clone();
            assert_eq!(ran_on.len(), 2, "{ran_on:?}");
            assert!(!ran_on[0].ends_with(":t_slow:trigger"), "first call inline: {ran_on:?}");
            assert!(ran_on[1].ends_with(":t_slow:trigger"), "then its own thread: {ran_on:?}");
        });
    }

    /// Where each call of [`Noter`] ran, by thread name.
    static NOTED_ON: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

    /// Notes its thread and returns at once.
    struct Noter;
    #[async_trait]
    impl Trigger for Noter {
        async fn drafts(&self, _: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
            let name = std::thread::current().name().unwrap_or("unnamed").to_owned();
            NOTED_ON.lock().unwrap_or_else(|p| p.into_inner()).push(name);
            Ok(TriggerOutput::default())
        }
    }

    /// Whether each call of [`TaskNoter`] ran inside a spawned task, per kind.
    static IN_TASK: std::sync::Mutex<Vec<(bool, bool)>> = std::sync::Mutex::new(Vec::new());

    /// Notes whether it runs in a task; with `awaits`, first yields to the runtime.
    struct TaskNoter {
        awaits: bool,
    }
    #[async_trait]
    impl Trigger for TaskNoter {
        async fn drafts(&self, _: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
            if self.awaits {
                tokio::task::yield_now().await;
            }
            let in_task = tokio::task::try_id().is_some();
            IN_TASK.lock().unwrap_or_else(|p| p.into_inner()).push((self.awaits, in_task));
            Ok(TriggerOutput::default())
        }
    }

    /// An inline call that answers at once is polled where it is started, without a task; one
    /// that awaits is spawned as a task and still answers.
    #[test]
    fn an_inline_call_that_answers_at_once_runs_without_a_task() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("rt");
        rt.block_on(async {
            let (d1, mut p1) =
                with_trigger("t_sync", |_| Ok(Box::new(TaskNoter { awaits: false })));
            let (d2, mut p2) =
                with_trigger("t_async", |_| Ok(Box::new(TaskNoter { awaits: true })));
            p1.isolation = Isolation::Inline;
            p2.isolation = Isolation::Inline;
            let d2 = OperationDescriptor { name: "t_async", ..d2 };
            let mut net = TestNetwork::builder()
                .witnesses(1)
                .sons(6)
                .build(registry(vec![(d1, p1), (d2, p2)]).into_arc());
            net.start_schedulers(config());
            let step = net.step().await;
            assert_eq!(status_of(&step, "t_sync"), Some(PluginStatus::Drafts(0)));
            assert_eq!(status_of(&step, "t_async"), Some(PluginStatus::Drafts(0)));
            let seen = IN_TASK.lock().unwrap_or_else(|p| p.into_inner()).clone();
            assert!(
                seen.contains(&(false, false)),
                "the synchronous one ran without a task: {seen:?}"
            );
            assert!(seen.contains(&(true, true)), "the awaiting one was spawned: {seen:?}");
        });
    }

    /// Counts its calls; wakes only when told.
    struct Sleepy {
        awake: Arc<AtomicBool>,
        calls: Arc<std::sync::atomic::AtomicUsize>,
    }
    #[async_trait]
    impl Trigger for Sleepy {
        async fn drafts(&self, _: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(TriggerOutput::default())
        }
        fn wake(&self, _: &State, _: &NodeIdentity) -> bool {
            self.awake.load(Ordering::SeqCst)
        }
    }

    static SLEEPY: std::sync::OnceLock<(Arc<AtomicBool>, Arc<std::sync::atomic::AtomicUsize>)> =
        std::sync::OnceLock::new();

    /// A trigger that says it has nothing to act on is not called, and has no outcome; once it
    /// wakes, it is.
    #[test]
    fn a_trigger_that_does_not_wake_is_not_called() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("rt");
        rt.block_on(async {
            let (awake, calls) = SLEEPY.get_or_init(Default::default).clone();
            let (d, parts) = with_trigger("t_sleepy", |_| {
                let (awake, calls) = SLEEPY.get().cloned().expect("set");
                Ok(Box::new(Sleepy { awake, calls }))
            });
            let mut net = TestNetwork::builder()
                .witnesses(1)
                .sons(6)
                .build(registry(vec![(d, parts)]).into_arc());
            net.start_schedulers(config());
            let step = net.step().await;
            assert_eq!(status_of(&step, "t_sleepy"), None, "not called, so no outcome");
            assert_eq!(calls.load(Ordering::SeqCst), 0);
            awake.store(true, Ordering::SeqCst);
            let step = net.step().await;
            assert_eq!(status_of(&step, "t_sleepy"), Some(PluginStatus::Drafts(0)));
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        });
    }

    /// A node may run a kind its crate declares `Thread` inline, and only that node.
    #[test]
    fn a_node_can_choose_to_run_a_thread_kind_inline() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("rt");
        rt.block_on(async {
            for inline in [false, true] {
                NOTED_ON.lock().unwrap_or_else(|p| p.into_inner()).clear();
                let (d, parts) = with_trigger("t_noter", |_| Ok(Box::new(Noter)));
                assert_eq!(parts.isolation, Isolation::Thread);
                let mut net = TestNetwork::builder()
                    .witnesses(1)
                    .sons(6)
                    .build(registry(vec![(d, parts)]).into_arc());
                let mut config = config();
                if inline {
                    config.isolation.insert("t_noter", Isolation::Inline);
                }
                net.start_schedulers(config);
                net.step().await;
                let noted = NOTED_ON.lock().unwrap_or_else(|p| p.into_inner()).clone();
                assert!(!noted.is_empty());
                let own_thread = noted.iter().all(|n| n.ends_with(":t_noter:trigger"));
                assert_eq!(own_thread, !inline, "inline {inline}: {noted:?}");
            }
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_trigger_that_floods_is_cut_to_the_per_kind_cap() {
        let mut net = network(vec![with_trigger("t_flood", |_| Ok(Box::new(Flood)))]);
        net.start_schedulers(SchedulerConfig { max_drafts_per_kind: 7, ..config() });
        let step = net.step().await;
        let (_, report) = step
            .reports
            .iter()
            .find(|(_, r)| r.outcomes.iter().any(|o| o.kind == "t_flood"))
            .expect("the producer ran it");
        assert!(report.submitted <= 7, "{} submitted", report.submitted);
        let over = report.skipped.iter().filter(|(_, _, why)| *why == DraftSkip::OverCap).count();
        assert_eq!(over, 20_000 - 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn validators_that_abstain_send_nothing() {
        let mut net =
            TestNetwork::builder().witnesses(3).sons(6).build(registry(Vec::new()).into_arc());
        let w = net.witnesses[0].clone();
        let exp = net.ledger.state().next_slot_time().plus(600);
        let create = crate::chain::ops::ProposalCreate {
            proposer: w.account,
            expiration_time: exp,
            review_period_seconds: None,
            operations: vec![Box::new(SonProbe {
                son: SonId(2),
                fail_after: None,
                set_status: None,
            })],
        };
        net.submit(net.sign(&w, create));
        net.produce_block();
        net.start_schedulers(config());
        let step = net.step().await;
        let abstained = step
            .reports
            .iter()
            .flat_map(|(_, r)| r.outcomes.iter())
            .filter(|o| o.status == PluginStatus::Abstained("even".into()))
            .count();
        assert_eq!(abstained, 6, "every SON reviewed it");
        assert!(step.reports.iter().all(|(_, r)| r.submitted == 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restored_memory_keeps_a_restarted_node_from_resending_what_is_in_flight() {
        let reg = registry(vec![with_trigger("t_good", |_| Ok(Box::new(Good)))]);
        let net = TestNetwork::builder()
            .witnesses(3)
            .sons(6)
            .build(Arc::new(registry(vec![with_trigger("t_good", |_| Ok(Box::new(Good)))])));
        let snap = net.ledger.snapshot();
        let services = Services::default();
        let build = |who: &NodeIdentity| {
            Scheduler::new(reg.node(), who.clone(), &services, config())
                .expect("no services needed")
        };
        let producer = net
            .witnesses
            .iter()
            .find(|w| build(w).is_next_producer(&snap))
            .expect("someone produces next")
            .clone();
        let sink = CollectingSink::default();
        let mut first = build(&producer);
        assert_eq!(first.on_block(Arc::clone(&snap), &sink).await.submitted, 1);
        let memory = first.memory();
        assert_eq!(memory.sent_proposals.len(), 1);

        let mut restarted = build(&producer);
        restarted.restore(memory);
        let report = restarted.on_block(Arc::clone(&snap), &sink).await;
        assert_eq!(report.submitted, 0, "the proposal in flight is not sent again");
        assert!(report.skipped.iter().any(|(_, _, why)| *why == DraftSkip::AlreadySent));

        let mut forgetful = build(&producer);
        assert_eq!(
            forgetful.on_block(snap, &sink).await.submitted,
            1,
            "without its memory it re-sends"
        );
    }
}
