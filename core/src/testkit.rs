//! A test kit for operation authors: a deterministic network (witnesses, SONs, keys), block
//! production, heartbeats, and scheduler steps that carry transactions into the next block.
//!
//! Enabled by the `testkit` feature. Everything is deterministic: keys come from names, time is
//! chain time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::chain::crypto::KeyPair;
use crate::chain::event::{BlockOutcome, LedgerEvent};
use crate::chain::genesis::Genesis;
use crate::chain::ids::{AccountId, AssetId, SonId, WitnessId};
use crate::chain::ledger::{Ledger, Rejected};
use crate::chain::model::Operation;
use crate::chain::objects::{Account, Asset, Authority, Son, SonStatistics, SonStatus, Witness};
use crate::chain::ops::SonHeartbeat;
use crate::chain::params::ChainParameters;
use crate::chain::time::Timestamp;
use crate::chain::tx::{SignedTransaction, Transaction};
use crate::node::plugin::NodeIdentity;
use crate::node::scheduler::{
    BlockReport, CollectingSink, PluginOutcome, PluginStatus, Scheduler, SchedulerConfig,
};
use crate::node::services::Services;
use crate::registry::Registry;

/// A core asset for tests of the SON lifecycle: PPY as Peerplays has it (id `1.3.0`, precision
/// 5), issued by the SON consensus account, none in existence until a genesis balance holds it.
pub fn ppy_asset() -> Asset {
    Asset {
        id: AssetId(0),
        symbol: "PPY".into(),
        precision: 5,
        issuer: AccountId::SON_CONSENSUS,
        max_supply: 1_000_000_000_000_000,
        supply: 0,
    }
}

/// The default genesis time of test networks: 2026-01-01T00:00:00Z.
pub const GENESIS_TIME: Timestamp = Timestamp(1_767_225_600);

/// Builds a [`TestNetwork`].
#[derive(Debug, Clone)]
pub struct NetworkBuilder {
    witnesses: usize,
    sons: usize,
    standby_sons: usize,
    users: usize,
    params: ChainParameters,
    genesis_time: Timestamp,
    seed: Option<u64>,
    assets: Vec<Asset>,
    balances: Vec<(AccountId, AssetId, u64)>,
    plugin_params: BTreeMap<String, serde_json::Value>,
    son_votes: Vec<u64>,
    named: Vec<String>,
}

impl Default for NetworkBuilder {
    fn default() -> Self {
        NetworkBuilder {
            witnesses: 11,
            sons: 15,
            standby_sons: 0,
            users: 1,
            params: ChainParameters::default(),
            genesis_time: GENESIS_TIME,
            seed: None,
            assets: Vec::new(),
            balances: Vec::new(),
            plugin_params: BTreeMap::new(),
            son_votes: Vec::new(),
            named: Vec::new(),
        }
    }
}

impl NetworkBuilder {
    /// Active witnesses (default 11).
    pub fn witnesses(mut self, n: usize) -> Self {
        self.witnesses = n;
        self
    }
    /// Elected SONs (default 15).
    pub fn sons(mut self, n: usize) -> Self {
        self.sons = n;
        self
    }
    /// Registered but not elected SONs, numbered after the elected ones (default 0).
    pub fn standby_sons(mut self, n: usize) -> Self {
        self.standby_sons = n;
        self
    }
    /// Plain accounts `user-N` (default 1).
    pub fn users(mut self, n: usize) -> Self {
        self.users = n;
        self
    }
    /// A plain account named `name`, after the `user-N` accounts (its keys are seeded by its
    /// name, as every node's).
    pub fn account(mut self, name: &str) -> Self {
        self.named.push(name.to_owned());
        self
    }
    /// Chain parameters.
    pub fn params(mut self, p: ChainParameters) -> Self {
        self.params = p;
        self
    }
    /// Genesis time.
    pub fn genesis_time(mut self, t: Timestamp) -> Self {
        self.genesis_time = t;
        self
    }
    /// An asset at genesis.
    pub fn asset(mut self, asset: Asset) -> Self {
        self.assets.push(asset);
        self
    }
    /// A genesis balance.
    pub fn balance(mut self, account: AccountId, asset: AssetId, amount: u64) -> Self {
        self.balances.push((account, asset, amount));
        self
    }
    /// An operation crate's parameter at genesis.
    pub fn plugin_param(mut self, name: &str, value: serde_json::Value) -> Self {
        self.plugin_params.insert(name.to_owned(), value);
        self
    }
    /// The votes of SONs `0..votes.len()`; the rest have one each (a SON needs a vote to be
    /// elected at a maintenance interval).
    pub fn son_votes(mut self, votes: Vec<u64>) -> Self {
        self.son_votes = votes;
        self
    }
    /// The key pair of node `name` (`son-3`, say) on `sidechain`; a SON's public half is in its
    /// `sidechain_public_keys` at genesis, so a test can hand the node its private half.
    pub fn sidechain_key(&self, name: &str, sidechain: &str) -> KeyPair {
        let seed = format!("{name}-{sidechain}");
        KeyPair::from_seed(&match self.seed {
            Some(s) => format!("{s}/{seed}"),
            None => seed,
        })
    }
    /// Namespaces every key with `seed`: a different seed gives different keys, hence a
    /// different chain id and different witness shuffles.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The genesis and every node's identity: witnesses (accounts `witness-N`), SONs (accounts
    /// `son-N`, SON `1.33.N`), then users (`user-N`, then the [`account`](Self::account)s).
    pub fn genesis(&self) -> (Genesis, Vec<NodeIdentity>, Vec<NodeIdentity>, Vec<NodeIdentity>) {
        let mut accounts = Vec::new();
        let mut next = 1u64;
        let key_seed = |name: &str| match self.seed {
            Some(seed) => format!("{seed}/{name}"),
            None => name.to_owned(),
        };
        let mut ident = |name: String, witness: Option<WitnessId>, son: Option<SonId>| {
            let keys = KeyPair::from_seed(&key_seed(&name));
            let id = AccountId(next);
            next += 1;
            accounts.push(Account {
                id,
                name: name.clone(),
                active: Authority::single_key(keys.public()),
                son_votes: Default::default(),
            });
            NodeIdentity { name, account: id, keys, witness, son }
        };
        let witnesses: Vec<NodeIdentity> = (0..self.witnesses)
            .map(|i| ident(format!("witness-{i}"), Some(WitnessId(i as u64)), None))
            .collect();
        let sons: Vec<NodeIdentity> = (0..self.sons + self.standby_sons)
            .map(|i| ident(format!("son-{i}"), None, Some(SonId(i as u64))))
            .collect();
        let users: Vec<NodeIdentity> = (0..self.users)
            .map(|i| format!("user-{i}"))
            .chain(self.named.iter().cloned())
            .map(|name| ident(name, None, None))
            .collect();
        let genesis = Genesis {
            genesis_time: self.genesis_time,
            params: self.params.clone(),
            accounts,
            witnesses: witnesses
                .iter()
                .map(|n| Witness {
                    id: n.witness.expect("witness"),
                    account: n.account,
                    signing_key: n.keys.public(),
                })
                .collect(),
            sons: sons
                .iter()
                .enumerate()
                .map(|(i, n)| Son {
                    id: n.son.expect("son"),
                    owner: n.account,
                    signing_key: n.keys.public(),
                    sidechain_public_keys: BTreeMap::from([(
                        "bitcoin".to_owned(),
                        self.sidechain_key(&n.name, "bitcoin").public().to_string(),
                    )]),
                    deposit: 50_000_000,
                    url: String::new(),
                    next_sidechain_public_keys: None,
                    pay_vesting: None,
                    votes: self.son_votes.get(i).copied().unwrap_or(1),
                    status: if i < self.sons { SonStatus::Active } else { SonStatus::Inactive },
                    statistics: SonStatistics {
                        last_active_timestamp: self.genesis_time,
                        ..SonStatistics::default()
                    },
                })
                .collect(),
            active_witnesses: witnesses.iter().filter_map(|n| n.witness).collect(),
            elected_sons: (0..self.sons as u64).map(SonId).collect(),
            assets: self.assets.clone(),
            balances: self.balances.clone(),
            plugin_params: self.plugin_params.clone(),
        };
        (genesis, witnesses, sons, users)
    }

    /// The network, with a ledger running `registry`.
    pub fn build(self, registry: Arc<Registry>) -> TestNetwork {
        let (genesis, witnesses, sons, users) = self.genesis();
        let ledger = Ledger::new(&genesis, registry.chain()).expect("test genesis is valid");
        let up = (0..sons.len()).collect();
        TestNetwork {
            registry,
            genesis,
            ledger,
            witnesses,
            sons,
            users,
            pending: Vec::new(),
            up,
            schedulers: None,
            invariants: crate::InvariantWatch::default(),
        }
    }
}

/// A single shared ledger with every node's identity; blocks are produced by the scheduled
/// witness, with the transactions queued since the last block.
pub struct TestNetwork {
    /// The registry the ledger and the schedulers run with.
    pub registry: Arc<Registry>,
    /// The genesis.
    pub genesis: Genesis,
    /// The ledger.
    pub ledger: Ledger,
    /// Witness nodes, by witness index.
    pub witnesses: Vec<NodeIdentity>,
    /// SON nodes, by SON index (`1.33.N` is `sons[N]`).
    pub sons: Vec<NodeIdentity>,
    /// Plain accounts.
    pub users: Vec<NodeIdentity>,
    pending: Vec<SignedTransaction>,
    up: BTreeSet<usize>,
    schedulers: Option<Vec<Scheduler>>,
    invariants: crate::InvariantWatch,
}

impl std::fmt::Debug for TestNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNetwork").field("ledger", &self.ledger).finish_non_exhaustive()
    }
}

/// What one [`TestNetwork::step`] did.
#[derive(Debug)]
pub struct Step {
    /// The block.
    pub outcome: BlockOutcome,
    /// Transactions the producer left out.
    pub rejected: Vec<Rejected>,
    /// Each node's scheduler report (empty when schedulers are not running).
    pub reports: Vec<(String, BlockReport)>,
}

impl TestNetwork {
    /// A builder with the default network: 11 witnesses, 15 elected SONs.
    pub fn builder() -> NetworkBuilder {
        NetworkBuilder::default()
    }

    /// Head time.
    pub fn now(&self) -> Timestamp {
        self.ledger.state().head_time()
    }

    /// Signs `op` as `who`, expiring 30 s after the head.
    pub fn sign(&self, who: &NodeIdentity, op: impl Operation + 'static) -> SignedTransaction {
        let st = self.ledger.state();
        Transaction::single(self.now().plus(30), op).sign(&st.chain_id(), &[&who.keys])
    }

    /// Queues a transaction for the next block.
    pub fn submit(&mut self, tx: SignedTransaction) {
        self.pending.push(tx);
    }

    /// A heartbeat of SON `index`, timestamped at the next slot.
    pub fn heartbeat(&self, index: usize) -> SignedTransaction {
        let n = &self.sons[index];
        let op = SonHeartbeat {
            son: n.son.expect("son node"),
            owner: n.account,
            timestamp: self.ledger.state().next_slot_time(),
        };
        self.sign(n, op)
    }

    /// Takes SON node `index` offline (`false`) or back online (`true`). An offline node sends no
    /// heartbeats and its scheduler does not run (it neither proposes nor approves);
    /// [`TestNetwork::step`] sends the heartbeats of online SONs every `son_heartbeat_frequency`.
    pub fn set_son_up(&mut self, index: usize, up: bool) {
        if up {
            self.up.insert(index);
        } else {
            self.up.remove(&index);
        }
    }

    /// The signing keys of the witness scheduled for slot time `t`.
    pub fn producer_keys(&self, t: Timestamp) -> &KeyPair {
        let w = self.ledger.state().scheduled_producer(t);
        let node = self.witnesses.iter().find(|n| n.witness.is_some() && n.witness == w);
        &node.expect("the scheduled producer is one of the network's witnesses").keys
    }

    /// A block with these fields, signed over its id by `producer`'s witness key (so a test can
    /// build blocks that are wrong in every other way).
    pub fn block(
        &self,
        height: u64,
        timestamp: Timestamp,
        previous: crate::Digest,
        producer: WitnessId,
        transactions: Vec<SignedTransaction>,
    ) -> crate::Block {
        let keys = self
            .witnesses
            .iter()
            .find(|n| n.witness == Some(producer))
            .map_or_else(|| KeyPair::from_seed("not a witness"), |n| n.keys.clone());
        let mut b = crate::Block {
            height,
            timestamp,
            previous,
            producer,
            transactions,
            signature: keys.sign(&crate::Digest::default()),
        };
        b.signature = keys.sign(&b.id(&self.ledger.state().chain_id()));
        b
    }

    /// Produces the next block with the queued transactions, signed by its scheduled witness.
    ///
    /// # Panics
    /// If an invariant a registered crate declares is broken after the block (every one is
    /// checked after every block), naming the crate, the invariant and the block.
    pub fn produce_block(&mut self) -> (BlockOutcome, Vec<Rejected>) {
        let t = self.ledger.state().next_slot_time();
        let txs = std::mem::take(&mut self.pending);
        let key = self.producer_keys(t).clone();
        let (_, outcome, rejected) =
            self.ledger.produce_block(t, txs, &key).expect("slot is valid");
        if let Err(broken) = self.invariants.check(self.registry.invariants(), self.ledger.state())
        {
            panic!("after block {}: {broken}", outcome.height);
        }
        (outcome, rejected)
    }

    /// Runs a scheduler for every witness and SON node from now on (built from the network's
    /// registry with `config`, and no node services).
    ///
    /// # Panics
    /// If a registered kind needs a node service: use
    /// [`TestNetwork::start_schedulers_with`] to supply it.
    pub fn start_schedulers(&mut self, config: SchedulerConfig) {
        if let Err(e) = self.start_schedulers_with(config, |_| Services::default()) {
            panic!("start_schedulers: {e} (supply it with start_schedulers_with)");
        }
    }

    /// Like [`TestNetwork::start_schedulers`], giving each node the services `services`
    /// returns for it (each node may see a different world). Fails if a kind needs a service a
    /// node was not given.
    pub fn start_schedulers_with(
        &mut self,
        config: SchedulerConfig,
        services: impl Fn(&NodeIdentity) -> Services,
    ) -> Result<(), crate::node::scheduler::SchedulerError> {
        let all = self.witnesses.iter().chain(self.sons.iter());
        let schedulers = all
            .map(|n| Scheduler::new(self.registry.node(), n.clone(), &services(n), config.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        self.schedulers = Some(schedulers);
        Ok(())
    }

    /// One block of a live network: queue the heartbeats due, produce the block, then run every
    /// node's scheduler on the new state; their transactions go into the next block.
    pub async fn step(&mut self) -> Step {
        let st = self.ledger.state();
        let next = st.next_slot_time();
        let freq = st.params().son_heartbeat_frequency;
        if next.since(st.globals().genesis_time).is_multiple_of(freq) {
            let beats: Vec<_> = self
                .up
                .iter()
                .filter(|i| {
                    st.son(SonId(**i as u64)).is_some_and(|s| s.status != SonStatus::Deregistered)
                })
                .map(|i| self.heartbeat(*i))
                .collect();
            self.pending.extend(beats);
        }
        let (outcome, rejected) = self.produce_block();
        let mut reports = Vec::new();
        if let Some(schedulers) = &mut self.schedulers {
            let sink = CollectingSink::default();
            let snap = self.ledger.snapshot();
            let duty = crate::node::scheduler::BlockDuty::of(&snap);
            for s in schedulers.iter_mut() {
                let offline = s.node().son.is_some_and(|id| !self.up.contains(&(id.0 as usize)));
                if offline {
                    continue;
                }
                // Every node runs here; one that said it had no work must indeed do nothing,
                // since hosts skip such nodes (this checks it in every test that steps).
                let had_work = s.has_work(&duty, &snap);
                let r = s.on_block(Arc::clone(&snap), &sink).await;
                assert!(
                    had_work
                        || (r.outcomes.is_empty()
                            && r.submitted == 0
                            && r.skipped.is_empty()
                            && r.deferred.is_empty()
                            && r.due.is_empty()),
                    "{} said it had no work, then did: {r:?}",
                    s.node().name
                );
                reports.push((s.node().name.clone(), r));
            }
            self.pending.extend(sink.take());
        }
        Step { outcome, rejected, reports }
    }

    /// Steps until head time reaches `t`; returns every event with its block height and time.
    pub async fn run_until(&mut self, t: Timestamp) -> Vec<(u64, Timestamp, LedgerEvent)> {
        self.record_until(t).await.events
    }

    /// Steps for `secs` seconds of chain time; returns what the network did (events and every
    /// node's plugin outcomes).
    pub async fn run_for(&mut self, secs: u64) -> Run {
        self.record_until(self.now().plus(secs)).await
    }

    /// Steps until head time reaches `t`, recording what the network did.
    pub async fn record_until(&mut self, t: Timestamp) -> Run {
        let mut run = Run::default();
        while self.now() < t {
            let step = self.step().await;
            let o = step.outcome;
            run.events.extend(o.events.into_iter().map(|e| (o.height, o.timestamp, e)));
            for (node, report) in step.reports {
                run.outcomes.extend(report.outcomes.into_iter().map(|o| (node.clone(), o)));
            }
        }
        run
    }

    /// Produces blocks (no schedulers run) until head time reaches `t`.
    pub fn produce_until(&mut self, t: Timestamp) {
        while self.now() < t {
            self.produce_block();
        }
    }
}

/// What a [`TestNetwork`] did while it ran ([`TestNetwork::run_for`]).
#[derive(Debug, Default)]
pub struct Run {
    /// Every event, with its block's height and time.
    pub events: Vec<(u64, Timestamp, LedgerEvent)>,
    /// Every plugin call's outcome, with the node's name.
    pub outcomes: Vec<(String, PluginOutcome)>,
}

impl Run {
    /// The events of type `E`, in order.
    pub fn decoded<E: crate::ChainEvent>(&self) -> Vec<E> {
        self.events.iter().filter_map(|(_, _, e)| e.decode::<E>()).collect()
    }

    /// The statuses of `kind`'s plugin calls, with the node, in order.
    pub fn statuses(&self, kind: &str) -> Vec<(&str, &PluginStatus)> {
        let of_kind = self.outcomes.iter().filter(|(_, o)| o.kind == kind);
        of_kind.map(|(node, o)| (node.as_str(), &o.status)).collect()
    }
}

/// Probe operations for testing ledger and scheduler mechanics without a real operation crate.
/// Register them explicitly with [`probe::PLUGIN`]; they are never discovered.
pub mod probe {
    use serde::{Deserialize, Serialize};

    use crate::chain::error::OperationError;
    use crate::chain::ids::Subject;
    use crate::chain::ids::{AccountId, SonId};
    use crate::chain::model::{
        ApplyContext, Eligibility, Operation, OperationDescriptor, ProposalPolicy, State,
    };
    use crate::chain::objects::SonStatus;
    use crate::chain::schema::{TableDecl, TableSchema};
    use crate::chain::time::Timestamp;
    use crate::registry::Plugin;

    /// Kind of [`SonProbe`].
    pub const SON_PROBE: &str = "testkit_son_probe";
    /// Kind of [`AccountProbe`].
    pub const ACCOUNT_PROBE: &str = "testkit_account_probe";
    /// Kind of [`PlainProbe`].
    pub const PLAIN_PROBE: &str = "testkit_plain_probe";
    /// Lifetime cap of every probe kind: one hour.
    pub const PROBE_LIFETIME: u64 = 3600;

    /// Why a probe refused.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("probe set to fail from {fail_after} (now {now})")]
    pub struct ProbeFailure {
        /// The configured time.
        pub fail_after: Timestamp,
        /// Head time.
        pub now: Timestamp,
    }

    fn check_fail(
        kind: &'static str,
        fail_after: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), OperationError> {
        match fail_after {
            Some(t) if now >= t => {
                Err(OperationError::rule(kind, ProbeFailure { fail_after: t, now }))
            }
            _ => Ok(()),
        }
    }

    /// A SON proposal kind about a SON, approved by the SON consensus authority; executing it
    /// increments the SON's `txs_signed` and, with `set_status`, moves it to that status (to
    /// `in_maintenance` with `last_down_timestamp` set to its last heartbeat). Its check fails
    /// from `fail_after` on.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SonProbe {
        /// The SON.
        pub son: SonId,
        /// Fail checks at or after this time.
        pub fail_after: Option<Timestamp>,
        /// The status to move the SON to.
        #[serde(default)]
        pub set_status: Option<SonStatus>,
    }

    #[typetag::serde(name = "testkit_son_probe")]
    impl Operation for SonProbe {
        fn kind(&self) -> &'static str {
            SON_PROBE
        }
        fn subject(&self) -> Option<Subject> {
            Some(Subject::Son(self.son))
        }
        fn required_authorities(&self) -> Vec<AccountId> {
            vec![AccountId::SON_CONSENSUS]
        }
        fn check(&self, state: &State) -> Result<(), OperationError> {
            let son = state.son(self.son).ok_or(OperationError::UnknownSon(self.son))?;
            if son.status == SonStatus::Deregistered {
                return Err(OperationError::Deregistered(self.son));
            }
            check_fail(SON_PROBE, self.fail_after, state.head_time())
        }
        fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
            let mut son = ctx.son(self.son).cloned().ok_or(OperationError::UnknownSon(self.son))?;
            son.statistics.txs_signed += 1;
            if let Some(status) = self.set_status {
                son.status = status;
                if status == SonStatus::InMaintenance {
                    son.statistics.last_down_timestamp = son.statistics.last_active_timestamp;
                }
            }
            ctx.put_son(son)
        }
    }

    /// The amounts executed [`AccountProbe`]s recorded, by subject.
    pub struct ProbeAmounts;
    impl TableSchema for ProbeAmounts {
        const NAME: &'static str = "testkit.probe_amounts";
        type Key = String;
        type Value = u64;
    }

    /// A SON proposal kind about a named subject, approved by one plain account (so that
    /// account can also veto it); executing it creates a vesting balance of `amount` and stores
    /// `amount` in the [`ProbeAmounts`] table under the subject.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AccountProbe {
        /// The approving account.
        pub account: AccountId,
        /// The subject's name.
        pub subject: String,
        /// The amount vested on execution.
        pub amount: u64,
        /// Fail checks at or after this time.
        pub fail_after: Option<Timestamp>,
    }

    #[typetag::serde(name = "testkit_account_probe")]
    impl Operation for AccountProbe {
        fn kind(&self) -> &'static str {
            ACCOUNT_PROBE
        }
        fn subject(&self) -> Option<Subject> {
            Some(Subject::Named(self.subject.clone()))
        }
        fn required_authorities(&self) -> Vec<AccountId> {
            vec![self.account]
        }
        fn check(&self, state: &State) -> Result<(), OperationError> {
            check_fail(ACCOUNT_PROBE, self.fail_after, state.head_time())
        }
        fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
            let now = ctx.now();
            ctx.create_vesting(self.account, self.amount, format!("probe:{}", self.subject), now);
            ctx.put_row::<ProbeAmounts>(&self.subject, Some(self.amount))
        }
    }

    /// A proposable kind that is not a SON kind (no record; may share a proposal); executing it
    /// creates a vesting balance of `amount`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct PlainProbe {
        /// The approving account.
        pub account: AccountId,
        /// The amount vested on execution.
        pub amount: u64,
        /// Fail checks at or after this time.
        pub fail_after: Option<Timestamp>,
    }

    #[typetag::serde(name = "testkit_plain_probe")]
    impl Operation for PlainProbe {
        fn kind(&self) -> &'static str {
            PLAIN_PROBE
        }
        fn required_authorities(&self) -> Vec<AccountId> {
            vec![self.account]
        }
        fn check(&self, state: &State) -> Result<(), OperationError> {
            check_fail(PLAIN_PROBE, self.fail_after, state.head_time())
        }
        fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
            let now = ctx.now();
            ctx.create_vesting(self.account, self.amount, "probe".into(), now);
            Ok(())
        }
    }

    fn anyone(_: &State, _: AccountId) -> bool {
        true
    }

    const fn policy(son_record: bool, eligible: Eligibility) -> ProposalPolicy {
        ProposalPolicy { son_record, eligible, lifetime: |_| PROBE_LIFETIME, readiness: None }
    }

    const ANYONE: Eligibility = Eligibility::Custom { rule: "anyone may", allowed: anyone };

    /// The probe kinds.
    pub const OPERATIONS: [OperationDescriptor; 3] = [
        OperationDescriptor {
            name: SON_PROBE,
            description: "test kit: a SON proposal kind about a SON",
            proposal: Some(policy(true, Eligibility::WitnessOrSon)),
            example: || Box::new(SonProbe { son: SonId(3), fail_after: None, set_status: None }),
        },
        OperationDescriptor {
            name: ACCOUNT_PROBE,
            description: "test kit: a SON proposal kind approved by one account",
            proposal: Some(policy(true, ANYONE)),
            example: || {
                Box::new(AccountProbe {
                    account: AccountId(1),
                    subject: "probe".into(),
                    amount: 1,
                    fail_after: None,
                })
            },
        },
        OperationDescriptor {
            name: PLAIN_PROBE,
            description: "test kit: a proposable kind without a son proposal record",
            proposal: Some(policy(false, ANYONE)),
            example: || Box::new(PlainProbe { account: AccountId(1), amount: 1, fail_after: None }),
        },
    ];

    /// A proposable kind called `name` (a son-probe description under another name), for
    /// registry tests.
    pub const fn descriptor(name: &'static str, eligible: Eligibility) -> OperationDescriptor {
        OperationDescriptor { name, proposal: Some(policy(true, eligible)), ..OPERATIONS[0] }
    }

    /// The probe kinds and their table, for `Registry::builder().with(&probe::PLUGIN)`.
    pub const PLUGIN: Plugin = Plugin {
        operations: &OPERATIONS,
        tables: &[TableDecl::of::<ProbeAmounts>()],
        ..Plugin::new("sonprop-testkit-probe")
    };
}
