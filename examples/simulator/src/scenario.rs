//! Scenario files (TOML): the network, chain parameters, what happens when, and what must hold
//! at the end. Unknown fields are errors; every error names the file, the field and the problem.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use sonprop_core::{ChainParameters, ChainRegistry, SonStatus, ThresholdPolicy, Timestamp};

use crate::duration::Duration;

/// The built-in scenario (`scenarios/single-outage.toml`).
pub const BUILT_IN: &str = include_str!("../scenarios/single-outage.toml");

/// The Bitcoin bridge scenario (`scenarios/bitcoin-bridge.toml`).
pub const BRIDGE: &str = include_str!("../scenarios/bitcoin-bridge.toml");

/// The default genesis time: 2026-01-01T00:00:00Z.
pub const DEFAULT_GENESIS_TIME: u64 = 1_767_225_600;

/// A scenario that cannot run: which file, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct ScenarioError {
    /// The file (or `<built-in>`).
    pub file: String,
    /// The field, e.g. `events[2].son`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// Where in the file, as a byte range, when it can be told (the parser's own span, or the
    /// named field's line).
    pub span: Option<std::ops::Range<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    #[serde(default)]
    seed: u64,
    duration: Duration,
    genesis_time: Option<u64>,
    network: NetworkSpec,
    #[serde(default)]
    params: ParamsSpec,
    #[serde(default)]
    plugin_params: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    events: Vec<EventSpec>,
    #[serde(default)]
    expect: Vec<ExpectSpec>,
    bitcoin: Option<BitcoinSpec>,
    lifecycle: Option<LifecycleSpec>,
    #[serde(default)]
    assets: Vec<crate::holdings::AssetSpec>,
    #[serde(default)]
    accounts: Vec<crate::holdings::AccountSpec>,
}

/// The `[lifecycle]` table: the core asset (PPY), member accounts that can register SONs and
/// vote, and the SON budget account.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LifecycleSpec {
    members: u32,
    member_ppy: Option<u64>,
    budget_ppy: Option<u64>,
}

/// PPY's smallest units per PPY (precision 5, as Peerplays).
pub const PPY_UNIT: u64 = 100_000;

/// A scenario's `[lifecycle]`: the core asset PPY, `members` accounts (`member-0` …) holding
/// `member_ppy` each, and the SON budget account (`son-budget`) holding `budget_ppy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleScenario {
    /// Member accounts.
    pub members: u32,
    /// Each member's PPY, in whole PPY.
    pub member_ppy: u64,
    /// The budget account's PPY, in whole PPY.
    pub budget_ppy: u64,
}

/// The `[bitcoin]` table: a simulated Bitcoin network and the bridge's traffic.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BitcoinSpec {
    block_interval: Option<Duration>,
    fee_rate: Option<u64>,
    reserve_sat: Option<u64>,
    users: Option<u32>,
    #[serde(default)]
    expect_all_settled: bool,
    #[serde(default)]
    deposits: Vec<FlowSpec>,
    #[serde(default)]
    withdrawals: Vec<FlowSpec>,
    #[serde(default)]
    reorgs: Vec<ReorgSpec>,
    #[serde(default)]
    faults: Vec<FaultSpec>,
    #[serde(default)]
    byzantine: Vec<ByzantineSpec>,
    #[serde(default)]
    hostile: Vec<HostileSpec>,
}

/// A SON as a scenario names it: its index (`3`) or its id (`"1.33.3"`), the same SON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SonRef(u32);

fn son_index<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    SonRef::deserialize(d).map(|s| s.0)
}

fn opt_son_index<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Option::<SonRef>::deserialize(d).map(|s| s.map(|s| s.0))
}

fn opt_son_indexes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<u32>>, D::Error> {
    Option::<Vec<SonRef>>::deserialize(d).map(|v| v.map(|v| v.into_iter().map(|s| s.0).collect()))
}

impl<'de> Deserialize<'de> for SonRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Index(u32),
            Id(String),
        }
        let bad = || {
            serde::de::Error::custom(
                "expected a SON's index (a whole number, e.g. 3) or its id (e.g. \"1.33.3\")",
            )
        };
        match Raw::deserialize(d).map_err(|_| bad())? {
            Raw::Index(i) => Ok(SonRef(i)),
            Raw::Id(id) => id
                .strip_prefix("1.33.")
                .and_then(|n| n.parse::<u32>().ok())
                .map(SonRef)
                .ok_or_else(bad),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ByzantineSpec {
    #[serde(deserialize_with = "son_index")]
    son: u32,
    #[serde(rename = "do")]
    act: Byzantine,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostileSpec {
    user: u32,
    #[serde(rename = "do")]
    act: HostileKind,
    at: Duration,
    victim: Option<u32>,
    count: Option<u32>,
    sat: Option<u64>,
    every: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum HostileKind {
    StealKey,
    Dust,
    Fragment,
}

/// What a Byzantine SON of a bridge scenario does (`[[bitcoin.byzantine]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Byzantine {
    /// Reports the transactions it should broadcast as sent, and never broadcasts anything.
    SentWithoutBroadcast,
    /// Reports every deposit at once, before anyone sees it confirmed, naming the previous
    /// wallet (whose deposit address was not paid).
    ReportPreviousWallet,
    /// Never signs a sidechain transaction (its node does not run the signing kind).
    WithholdSignatures,
    /// Reports, every hour, a deposit that never happened.
    InventDeposits,
}

/// What a hostile user of a bridge scenario does (`[[bitcoin.hostile]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hostile {
    /// Registers another user's deposit key as its own (it cannot sign the proof).
    StealKey {
        /// The victim's user index.
        victim: u32,
    },
    /// Pays `count` deposits of `sat` satoshis, one every `every` seconds: dust below the
    /// minimum, or many small deposits that fragment the wallet.
    Deposits {
        /// How many.
        count: u32,
        /// Satoshis each.
        sat: u64,
        /// Seconds between them.
        every: u64,
    },
}

/// A hostile user's action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostileAct {
    /// Seconds after genesis.
    pub at: u64,
    /// The user index.
    pub user: u32,
    /// What it does.
    pub act: Hostile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowSpec {
    at: Duration,
    user: u32,
    sat: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReorgSpec {
    at: Duration,
    depth: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSpec {
    #[serde(deserialize_with = "son_index")]
    son: u32,
    view: FaultKind,
    sat: Option<u64>,
    blocks: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FaultKind {
    Lies,
    Lags,
    Offline,
}

/// A deposit or withdrawal the scenario makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Seconds after genesis.
    pub at: u64,
    /// The user index (`user-N`).
    pub user: u32,
    /// Satoshis (PBTC has the same unit).
    pub sat: u64,
}

/// A reorganisation of the simulated Bitcoin chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reorg {
    /// Seconds after genesis.
    pub at: u64,
    /// Blocks taken off the tip.
    pub depth: u32,
}

/// The `[bitcoin]` table: a simulated Bitcoin network, the bridge's users and traffic, and how
/// some SONs' views of Bitcoin are wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitcoinScenario {
    /// Seconds between Bitcoin blocks (default 10 minutes).
    pub block_interval: u64,
    /// The fee rate every honest view estimates, sat/vB (default 2).
    pub fee_rate: u64,
    /// Satoshis the SONs pay into the first wallet as their reserve (it pays wallet sweeps'
    /// fees; default 100 000).
    pub reserve_sat: u64,
    /// Users (`user-0` …) with deposit keys (default 3).
    pub users: u32,
    /// Fail the run unless every deposit is credited and every withdrawal paid by the end.
    pub expect_all_settled: bool,
    /// Deposits, in time order.
    pub deposits: Vec<Flow>,
    /// Withdrawals, in time order.
    pub withdrawals: Vec<Flow>,
    /// Reorganisations, in time order.
    pub reorgs: Vec<Reorg>,
    /// SON index -> its faulty view.
    pub faults: BTreeMap<u32, sonprop_bitcoin::sim::Fault>,
    /// SON index -> what it does against the others.
    pub byzantine: BTreeMap<u32, Byzantine>,
    /// Hostile users' actions, in time order.
    pub hostile: Vec<HostileAct>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkSpec {
    witnesses: u32,
    sons: u32,
    #[serde(default)]
    standby_sons: u32,
}

/// Chain parameters, each optional; durations may be written `"12h"` or in seconds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamsSpec {
    block_interval: Option<Duration>,
    son_heartbeat_frequency: Option<Duration>,
    son_down_time: Option<Duration>,
    son_deregister_time: Option<Duration>,
    maximum_son_count: Option<u32>,
    min_son_count: Option<u32>,
    maximum_proposal_lifetime: Option<Duration>,
    son_vesting_period: Option<Duration>,
    maximum_time_until_expiration: Option<Duration>,
    threshold_policy: Option<ThresholdPolicy>,
    maintenance_interval: Option<Duration>,
    maximum_transaction_size: Option<u64>,
    maximum_block_size: Option<u64>,
    son_vesting_amount: Option<u64>,
    son_pay_time: Option<Duration>,
    son_pay_max: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ActionKind {
    Stop,
    Start,
    Create,
    Vote,
    UpdateKeys,
    RequestMaintenance,
    CancelMaintenance,
    Withdraw,
}

/// What happens at an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The SON's node goes offline: no heartbeats, no proposals, no approvals.
    Stop,
    /// The SON's node comes back online.
    Start,
    /// A member registers a SON (the next SON index), with a deposit in PPY's smallest units;
    /// its node starts with it.
    Create {
        /// The member index (`member-N`).
        member: u32,
        /// The deposit.
        deposit: u64,
    },
    /// A member votes for these SONs (replacing its earlier votes; none withdraws them).
    Vote {
        /// The member index.
        member: u32,
        /// The SON indexes.
        sons: Vec<u32>,
    },
    /// The SON's owner gives it a new Bitcoin key (in force at the next maintenance; its node
    /// keeps the old one for what the old wallet still needs signed).
    UpdateKeys,
    /// The SON's owner asks for maintenance.
    RequestMaintenance,
    /// The SON's owner withdraws its request.
    CancelMaintenance,
    /// The SON's owner withdraws whatever of its vesting balances has vested (its deposit
    /// after deregistration, its pay).
    Withdraw,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventSpec {
    at: Duration,
    #[serde(default, deserialize_with = "opt_son_index")]
    son: Option<u32>,
    member: Option<u32>,
    #[serde(rename = "for", default, deserialize_with = "opt_son_indexes")]
    votes: Option<Vec<u32>>,
    deposit: Option<u64>,
    #[serde(rename = "do")]
    action: ActionKind,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectSpec {
    #[serde(default, deserialize_with = "opt_son_index")]
    son: Option<u32>,
    account: Option<String>,
    asset: Option<String>,
    balance: Option<crate::holdings::AmountSpec>,
    status: Option<SonStatus>,
    kind: Option<String>,
    executed: Option<u32>,
    elected: Option<bool>,
    paid: Option<bool>,
    deposit_withdrawn: Option<bool>,
}

/// A scheduled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Seconds after genesis.
    pub at: u64,
    /// The SON it is about (`1.33.N`): the one a `create` registers; none for a vote.
    pub son: Option<u32>,
    /// What happens.
    pub action: Action,
}

/// What must hold at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// The SON ends in this status.
    Status {
        /// The SON index.
        son: u32,
        /// The status.
        status: SonStatus,
    },
    /// Exactly this many proposals of `kind` about the SON executed.
    Executed {
        /// The SON index.
        son: u32,
        /// The operation kind.
        kind: String,
        /// How many.
        count: u32,
    },
    /// The SON is (or is not) in the elected set.
    Elected {
        /// The SON index.
        son: u32,
        /// Elected or not.
        elected: bool,
    },
    /// The SON was (or was not) paid at a payout.
    Paid {
        /// The SON index.
        son: u32,
        /// Paid or not.
        paid: bool,
    },
    /// The SON is deregistered and its owner withdrew its whole deposit (or not).
    DepositWithdrawn {
        /// The SON index.
        son: u32,
        /// Withdrawn or not.
        withdrawn: bool,
    },
    /// The account (by name) ends holding exactly this much of the asset (by symbol).
    Balance {
        /// The account's name.
        account: String,
        /// The asset's symbol.
        asset: String,
        /// The amount, in the asset's smallest units.
        amount: u64,
        /// The asset's precision, to say the amount as written.
        precision: u8,
    },
}

impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let son = |i: &u32| sonprop_core::SonId(u64::from(*i));
        let not = |yes: &bool| if *yes { "" } else { "not " };
        match self {
            Expectation::Status { son: i, status } => write!(f, "son {} ends {status}", son(i)),
            Expectation::Executed { son: i, kind, count } => {
                write!(f, "{count} {kind} executed about son {}", son(i))
            }
            Expectation::Elected { son: i, elected } => {
                write!(f, "son {} ends {}elected", son(i), not(elected))
            }
            Expectation::Paid { son: i, paid } => write!(f, "son {} is {}paid", son(i), not(paid)),
            Expectation::DepositWithdrawn { son: i, withdrawn } => {
                write!(f, "son {}'s deposit is {}withdrawn", son(i), not(withdrawn))
            }
            Expectation::Balance { account, asset, amount, precision } => {
                let held = sonprop_core::Asset::format_units(*amount, *precision, asset);
                write!(f, "{account} holds {held}")
            }
        }
    }
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Where it came from (a path, or `<built-in>`).
    pub source: String,
    /// Its name.
    pub name: String,
    /// The seed: it namespaces every key, so it decides the chain id and the witness shuffles.
    pub seed: u64,
    /// Simulated time to run, in seconds.
    pub duration: u64,
    /// Genesis time.
    pub genesis_time: Timestamp,
    /// Active witnesses.
    pub witnesses: u32,
    /// Elected SONs.
    pub sons: u32,
    /// Standby SONs (registered, not elected).
    pub standby_sons: u32,
    /// Chain parameters.
    pub params: ChainParameters,
    /// Operation crates' parameters, by name (checked against the registry when the ledger is
    /// created).
    pub plugin_params: BTreeMap<String, serde_json::Value>,
    /// Events, in time order.
    pub events: Vec<Event>,
    /// Expectations.
    pub expect: Vec<Expectation>,
    /// The Bitcoin bridge, when the scenario has a `[bitcoin]` table.
    pub bitcoin: Option<BitcoinScenario>,
    /// The SON lifecycle's accounts, when the scenario has a `[lifecycle]` table.
    pub lifecycle: Option<LifecycleScenario>,
    /// The scenario's own assets (`[[assets]]`).
    pub assets: Vec<crate::holdings::ScenarioAsset>,
    /// The scenario's own accounts (`[[accounts]]`).
    pub accounts: Vec<crate::holdings::ScenarioAccount>,
}

impl Scenario {
    /// How many SONs the run knows in all: the genesis' and those its events register.
    pub fn all_sons(&self) -> u32 {
        let created = self.events.iter().filter(|e| matches!(e.action, Action::Create { .. }));
        self.sons + self.standby_sons + created.count() as u32
    }

    /// How many times the events give SON `son` a new Bitcoin key.
    pub fn key_changes(&self, son: u32) -> u32 {
        let changes = self.events.iter().filter(|e| e.son == Some(son));
        changes.filter(|e| e.action == Action::UpdateKeys).count() as u32
    }
}

impl Scenario {
    /// Checks the `[plugin_params]` against the parameters the registry's crates declare: an
    /// unknown name or an invalid value is an error naming the file and the parameter.
    pub fn check_plugin_params(&self, chain: &ChainRegistry) -> Result<(), ScenarioError> {
        for (name, value) in &self.plugin_params {
            let err = |message: String| ScenarioError {
                file: self.source.clone(),
                field: format!("plugin_params.\"{name}\""),
                message,
                span: None,
            };
            let decl = chain.params().find(|d| d.name == name).ok_or_else(|| {
                let known: Vec<_> = chain.params().map(|d| d.name).collect();
                err(format!("no operation crate declares it (declared: {})", known.join(", ")))
            })?;
            (decl.check_json)(value).map_err(err)?;
        }
        Ok(())
    }

    /// Checks that every `[[expect]]` counting executed proposals names a kind proposals can
    /// carry: an unknown kind (a typo would otherwise count 0 and hold) is an error naming the
    /// expectation, with the nearest kind as a suggestion.
    pub fn check_expectation_kinds(&self, chain: &ChainRegistry) -> Result<(), ScenarioError> {
        for (i, e) in self.expect.iter().enumerate() {
            let Expectation::Executed { kind, .. } = e else { continue };
            let proposable: Vec<&str> =
                chain.operations().filter(|d| d.proposal.is_some()).map(|d| d.name).collect();
            if proposable.contains(&kind.as_str()) {
                continue;
            }
            let hint = match nearest(kind, &proposable) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("kinds proposals carry here: {}", proposable.join(", ")),
            };
            return Err(ScenarioError {
                file: self.source.clone(),
                field: format!("expect[{i}].kind"),
                message: format!("no proposal kind `{kind}`; {hint}"),
                span: None,
            });
        }
        Ok(())
    }

    /// What the scenario lets happen that its author may not expect, said before the run: a SON
    /// count that leaves the SON consensus authority unable to pass anything (every SON
    /// proposal then expires, however many SONs approve it).
    pub fn warnings(&self) -> Vec<String> {
        let p = &self.params;
        let (sons, min) = (self.sons.min(p.maximum_son_count), p.min_son_count);
        if p.threshold_policy != ThresholdPolicy::Live || sons > min {
            return Vec::new();
        }
        vec![if sons < min {
            format!(
                "{sons} elected SONs < min_son_count {min}: no SON proposal can ever pass \
                 (set params.min_son_count, or add SONs)"
            )
        } else {
            format!(
                "{sons} elected SONs = min_son_count {min}: while any SON is down, fewer are \
                 live than min_son_count and no SON proposal passes, its own report-down \
                 included (set params.min_son_count below {min}, or add SONs)"
            )
        }]
    }

    /// The built-in scenario.
    pub fn built_in() -> Scenario {
        Scenario::from_toml(BUILT_IN, "<built-in>").expect("the built-in scenario is valid")
    }

    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: file.clone(),
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
            span: None,
        })?;
        Scenario::from_toml(&text, &file)
    }

    /// Parses and validates scenario text; `source` names it in errors.
    pub fn from_toml(text: &str, source: &str) -> Result<Scenario, ScenarioError> {
        let err = |field: &str, message: String| ScenarioError {
            file: source.to_owned(),
            field: field.to_owned(),
            message,
            span: locate(text, field),
        };
        let f: File = toml::from_str(text).map_err(|e| {
            // toml's message carries the line, column and offending key; Rust's type names in
            // it become what they mean.
            let message = in_user_words(e.message());
            let at = e.span().map(|s| line_col(text, s.start));
            let field =
                at.map_or_else(|| "(parse)".to_owned(), |(l, c)| format!("line {l}, column {c}"));
            ScenarioError { span: e.span(), ..err(&field, message) }
        })?;

        if f.name.trim().is_empty() {
            return Err(err("name", "must not be empty".into()));
        }
        if f.duration.0 == 0 {
            return Err(err("duration", "must be longer than 0s".into()));
        }
        if f.network.witnesses == 0 {
            return Err(err("network.witnesses", "there must be at least 1 witness".into()));
        }
        let mut params = ChainParameters::default();
        let p = &f.params;
        let secs = |d: Option<Duration>, default: u64| d.map_or(default, |d| d.0);
        params.block_interval = secs(p.block_interval, params.block_interval);
        params.son_heartbeat_frequency =
            secs(p.son_heartbeat_frequency, params.son_heartbeat_frequency);
        params.son_down_time = secs(p.son_down_time, params.son_down_time);
        params.son_deregister_time = secs(p.son_deregister_time, params.son_deregister_time);
        params.maximum_son_count = p.maximum_son_count.unwrap_or(params.maximum_son_count);
        params.min_son_count = p.min_son_count.unwrap_or(params.min_son_count);
        params.maximum_proposal_lifetime =
            secs(p.maximum_proposal_lifetime, params.maximum_proposal_lifetime);
        params.son_vesting_period = secs(p.son_vesting_period, params.son_vesting_period);
        params.maximum_time_until_expiration =
            secs(p.maximum_time_until_expiration, params.maximum_time_until_expiration);
        params.threshold_policy = p.threshold_policy.unwrap_or(params.threshold_policy);
        params.maintenance_interval = secs(p.maintenance_interval, params.maintenance_interval);
        params.maximum_transaction_size =
            p.maximum_transaction_size.unwrap_or(params.maximum_transaction_size);
        params.maximum_block_size = p.maximum_block_size.unwrap_or(params.maximum_block_size);
        params.son_vesting_amount = p.son_vesting_amount.unwrap_or(params.son_vesting_amount);
        params.son_pay_time = secs(p.son_pay_time, params.son_pay_time);
        params.son_pay_max = p.son_pay_max.unwrap_or(params.son_pay_max);
        params.validate().map_err(|e| err(&format!("params.{}", e.name), e.reason))?;
        if f.network.sons > params.maximum_son_count {
            return Err(err(
                "network.sons",
                format!(
                    "{} elected SONs exceed maximum_son_count ({})",
                    f.network.sons, params.maximum_son_count
                ),
            ));
        }

        let total = f.network.sons + f.network.standby_sons;
        let check_son = |field: String, son: u32| {
            if son >= total {
                Err(err(
                    &field,
                    format!(
                        "SON {son} does not exist: the network has {} elected and {} standby SONs (indexes 0..{})",
                        f.network.sons,
                        f.network.standby_sons,
                        total.saturating_sub(1)
                    ),
                ))
            } else {
                Ok(())
            }
        };
        let lifecycle = match &f.lifecycle {
            None => None,
            Some(l) => {
                if l.members == 0 {
                    return Err(err("lifecycle.members", "there must be at least 1 member".into()));
                }
                Some(LifecycleScenario {
                    members: l.members,
                    member_ppy: l.member_ppy.unwrap_or(1_000),
                    budget_ppy: l.budget_ppy.unwrap_or(1_000),
                })
            }
        };
        // Events in time order (stable: events at one time keep the file's order); a `create`
        // registers the next SON index, which later events may name.
        let mut specs: Vec<(usize, &EventSpec)> = f.events.iter().enumerate().collect();
        specs.sort_by_key(|(_, e)| e.at.0);
        let mut known = total;
        let mut creators = BTreeMap::new();
        let mut events = Vec::new();
        for (i, e) in specs {
            let field = |k: &str| format!("events[{i}].{k}");
            if e.at.0 > f.duration.0 {
                return Err(err(
                    &field("at"),
                    format!("{} is after the end of the run ({})", e.at, f.duration),
                ));
            }
            let son_ok = |son: u32, k: &str| {
                if son < known {
                    Ok(())
                } else if known > total {
                    Err(err(
                        &field(k),
                        format!(
                            "SON {son} does not exist at {}: the genesis has SONs 0..{} and the events before it register up to {}",
                            e.at,
                            total.saturating_sub(1),
                            known - 1
                        ),
                    ))
                } else {
                    check_son(field(k), son)
                }
            };
            let kind = e.action;
            let is_lifecycle = !matches!(kind, ActionKind::Stop | ActionKind::Start);
            if is_lifecycle && lifecycle.is_none() {
                return Err(err(
                    &field("do"),
                    "SON lifecycle events need a [lifecycle] table (its members and PPY)".into(),
                ));
            }
            let member_ok = |m: Option<u32>| -> Result<u32, ScenarioError> {
                let m =
                    m.ok_or_else(|| err(&field("member"), "give the member who acts".into()))?;
                let members = lifecycle.as_ref().map_or(0, |l| l.members);
                if m >= members {
                    return Err(err(
                        &field("member"),
                        format!(
                            "member {m} does not exist: there are {members} (0..{})",
                            members.saturating_sub(1)
                        ),
                    ));
                }
                Ok(m)
            };
            let extra = |what: &str, present: bool| {
                if present {
                    Err(err(&field(what), format!("`{what}` does not go with do = {kind:?}")))
                } else {
                    Ok(())
                }
            };
            let (son, action) = match kind {
                ActionKind::Create => {
                    extra("son", e.son.is_some())?;
                    extra("for", e.votes.is_some())?;
                    let member = member_ok(e.member)?;
                    if let Some(first) = creators.insert(member, i) {
                        return Err(err(
                            &field("member"),
                            format!("member {member} registers a SON at events[{first}] already: one SON per account"),
                        ));
                    }
                    let deposit = e
                        .deposit
                        .map_or(params.son_vesting_amount, |ppy| ppy.saturating_mul(PPY_UNIT));
                    known += 1;
                    (Some(known - 1), Action::Create { member, deposit })
                }
                ActionKind::Vote => {
                    extra("son", e.son.is_some())?;
                    extra("deposit", e.deposit.is_some())?;
                    let member = member_ok(e.member)?;
                    let sons = e.votes.clone().ok_or_else(|| {
                        err(
                            &field("for"),
                            "give the SONs voted for (`for = []` withdraws the votes)".into(),
                        )
                    })?;
                    for s in &sons {
                        son_ok(*s, "for")?;
                    }
                    (None, Action::Vote { member, sons })
                }
                _ => {
                    extra("member", e.member.is_some())?;
                    extra("for", e.votes.is_some())?;
                    extra("deposit", e.deposit.is_some())?;
                    let son = e.son.ok_or_else(|| err(&field("son"), "give the SON".into()))?;
                    son_ok(son, "son")?;
                    let action = match kind {
                        ActionKind::Stop => Action::Stop,
                        ActionKind::Start => Action::Start,
                        ActionKind::UpdateKeys => Action::UpdateKeys,
                        ActionKind::RequestMaintenance => Action::RequestMaintenance,
                        ActionKind::CancelMaintenance => Action::CancelMaintenance,
                        _ => Action::Withdraw,
                    };
                    (Some(son), action)
                }
            };
            events.push(Event { at: e.at.0, son, action });
        }

        // PPY with a [lifecycle] table, PBTC with a [bitcoin] one; then the file's own.
        let builtin = crate::holdings::builtin_assets(f.lifecycle.is_some(), f.bitcoin.is_some());
        let holdings = crate::holdings::check(&f.assets, &f.accounts, &builtin)
            .map_err(|(field, message)| err(&field, message))?;
        let mut expect = Vec::new();
        for (i, x) in f.expect.iter().enumerate() {
            if let (Some(account), Some(asset), Some(balance), None) =
                (&x.account, &x.asset, &x.balance, x.son)
            {
                let field = format!("expect[{i}].asset");
                let precision = *holdings
                    .precision
                    .get(asset)
                    .ok_or_else(|| err(&field, format!("no asset `{asset}` in this scenario")))?;
                let amount = crate::holdings::parse_amount(balance, precision)
                    .map_err(|m| err(&format!("expect[{i}].balance"), m))?;
                let (account, asset) = (account.clone(), asset.clone());
                expect.push(Expectation::Balance { account, asset, amount, precision });
                continue;
            }
            let (Some(son), None, None, None) = (x.son, &x.account, &x.asset, &x.balance) else {
                return Err(err(
                    &format!("expect[{i}]"),
                    "give `son` with what it expects of a SON, or `account`, `asset` and `balance`"
                        .into(),
                ));
            };
            if son >= known {
                check_son(format!("expect[{i}].son"), son)?;
            }
            let one = |e: Expectation| Ok::<_, ScenarioError>(e);
            let e = match (x.status, &x.kind, x.executed, x.elected, x.paid, x.deposit_withdrawn) {
                (Some(status), None, None, None, None, None) => {
                    one(Expectation::Status { son, status })?
                }
                (None, Some(kind), Some(count), None, None, None) => {
                    one(Expectation::Executed { son, kind: kind.clone(), count })?
                }
                (None, None, None, Some(elected), None, None) => {
                    one(Expectation::Elected { son, elected })?
                }
                (None, None, None, None, Some(paid), None) => {
                    one(Expectation::Paid { son, paid })?
                }
                (None, None, None, None, None, Some(withdrawn)) => {
                    one(Expectation::DepositWithdrawn { son, withdrawn })?
                }
                _ => {
                    return Err(err(
                        &format!("expect[{i}]"),
                        "give one of `status`, `kind` with `executed`, `elected`, `paid` or `deposit_withdrawn`".into(),
                    ))
                }
            };
            expect.push(e);
        }

        let bitcoin = match &f.bitcoin {
            None => None,
            Some(b) => {
                let check = |field: String, ok: bool, message: String| {
                    if ok {
                        Ok(())
                    } else {
                        Err(err(&field, message))
                    }
                };
                let block_interval = b.block_interval.map_or(600, |d| d.0);
                check(
                    "bitcoin.block_interval".into(),
                    block_interval >= params.block_interval,
                    format!(
                        "Bitcoin blocks must be at least one chain block apart ({} s)",
                        params.block_interval
                    ),
                )?;
                let fee_rate = b.fee_rate.unwrap_or(2);
                check("bitcoin.fee_rate".into(), fee_rate > 0, "must be at least 1 sat/vB".into())?;
                let users = b.users.unwrap_or(3);
                check("bitcoin.users".into(), users > 0, "there must be at least 1 user".into())?;
                let flows = |name: &str, specs: &[FlowSpec]| -> Result<Vec<Flow>, ScenarioError> {
                    let mut v = Vec::new();
                    for (i, x) in specs.iter().enumerate() {
                        let field = |k: &str| format!("bitcoin.{name}[{i}].{k}");
                        if x.user >= users {
                            return Err(err(
                                &field("user"),
                                format!(
                                    "user {} does not exist: there are {users} (0..{})",
                                    x.user,
                                    users - 1
                                ),
                            ));
                        }
                        if x.sat == 0 {
                            return Err(err(&field("sat"), "must be more than 0".into()));
                        }
                        if x.at.0 > f.duration.0 {
                            return Err(err(
                                &field("at"),
                                format!("{} is after the end of the run ({})", x.at, f.duration),
                            ));
                        }
                        v.push(Flow { at: x.at.0, user: x.user, sat: x.sat });
                    }
                    v.sort_by_key(|x| x.at);
                    Ok(v)
                };
                let deposits = flows("deposits", &b.deposits)?;
                let withdrawals = flows("withdrawals", &b.withdrawals)?;
                let mut reorgs = Vec::new();
                for (i, r) in b.reorgs.iter().enumerate() {
                    check(
                        format!("bitcoin.reorgs[{i}].depth"),
                        r.depth > 0,
                        "must be at least 1 block".into(),
                    )?;
                    check(
                        format!("bitcoin.reorgs[{i}].at"),
                        r.at.0 <= f.duration.0,
                        format!("{} is after the end of the run ({})", r.at, f.duration),
                    )?;
                    reorgs.push(Reorg { at: r.at.0, depth: r.depth });
                }
                reorgs.sort_by_key(|r| r.at);
                let mut faults = BTreeMap::new();
                for (i, x) in b.faults.iter().enumerate() {
                    check_son(format!("bitcoin.faults[{i}].son"), x.son)?;
                    use sonprop_bitcoin::sim::Fault;
                    let fault = match (x.view, x.sat, x.blocks) {
                        (FaultKind::Lies, Some(sat), None) if sat > 0 => Fault::Lies(sat),
                        (FaultKind::Lags, None, Some(k)) if k > 0 => Fault::Lags(k),
                        (FaultKind::Offline, None, None) => Fault::Offline,
                        _ => {
                            return Err(err(
                                &format!("bitcoin.faults[{i}]"),
                                "give view = \"lies\" with sat > 0, view = \"lags\" with blocks > 0, or view = \"offline\" alone".into(),
                            ))
                        }
                    };
                    if faults.insert(x.son, fault).is_some() {
                        return Err(err(
                            &format!("bitcoin.faults[{i}].son"),
                            format!("SON {} has a fault already", x.son),
                        ));
                    }
                }
                let mut byzantine = BTreeMap::new();
                for (i, x) in b.byzantine.iter().enumerate() {
                    let field = format!("bitcoin.byzantine[{i}].son");
                    check_son(field.clone(), x.son)?;
                    if faults.contains_key(&x.son) || byzantine.insert(x.son, x.act).is_some() {
                        return Err(err(&field, format!("SON {} misbehaves already", x.son)));
                    }
                }
                let mut hostile = Vec::new();
                for (i, h) in b.hostile.iter().enumerate() {
                    let field = |k: &str| format!("bitcoin.hostile[{i}].{k}");
                    let user_ok = |field: String, u: u32| {
                        check(
                            field,
                            u < users,
                            format!(
                                "user {u} does not exist: there are {users} (0..{})",
                                users - 1
                            ),
                        )
                    };
                    user_ok(field("user"), h.user)?;
                    check(
                        field("at"),
                        h.at.0 <= f.duration.0,
                        format!("{} is after the end of the run ({})", h.at, f.duration),
                    )?;
                    let act = match (h.act, h.victim, h.count, h.sat, h.every) {
                        (HostileKind::StealKey, Some(victim), None, None, None) => {
                            user_ok(field("victim"), victim)?;
                            check(
                                field("victim"),
                                victim != h.user,
                                "a user cannot steal its own key".into(),
                            )?;
                            Hostile::StealKey { victim }
                        }
                        (HostileKind::Dust | HostileKind::Fragment, None, Some(count), Some(sat), every)
                            if count > 0 && sat > 0 =>
                        {
                            Hostile::Deposits { count, sat, every: every.map_or(60, |d| d.0.max(1)) }
                        }
                        _ => {
                            return Err(err(
                                &format!("bitcoin.hostile[{i}]"),
                                "give do = \"steal_key\" with victim, or do = \"dust\" / \"fragment\" with count > 0 and sat > 0 (and optionally every)".into(),
                            ))
                        }
                    };
                    hostile.push(HostileAct { at: h.at.0, user: h.user, act });
                }
                hostile.sort_by_key(|h| h.at);
                Some(BitcoinScenario {
                    block_interval,
                    fee_rate,
                    reserve_sat: b.reserve_sat.unwrap_or(100_000),
                    users,
                    expect_all_settled: b.expect_all_settled,
                    deposits,
                    withdrawals,
                    reorgs,
                    faults,
                    byzantine,
                    hostile,
                })
            }
        };

        Ok(Scenario {
            source: source.to_owned(),
            name: f.name,
            seed: f.seed,
            duration: f.duration.0,
            genesis_time: Timestamp(f.genesis_time.unwrap_or(DEFAULT_GENESIS_TIME)),
            witnesses: f.network.witnesses,
            sons: f.network.sons,
            standby_sons: f.network.standby_sons,
            params,
            plugin_params: f.plugin_params.clone(),
            events,
            expect,
            bitcoin,
            lifecycle,
            assets: holdings.assets,
            accounts: holdings.accounts,
        })
    }
}

/// A parser's message with Rust's integer type names said as the numbers they hold
/// (`expected u32` becomes `expected a whole number from 0 to 4 294 967 295`).
fn in_user_words(message: &str) -> String {
    let spaced = |n: u128| {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(' ');
            }
            out.push(c);
        }
        out
    };
    let ranges = [
        ("u8", u128::from(u8::MAX)),
        ("u16", u128::from(u16::MAX)),
        ("u32", u128::from(u32::MAX)),
        ("u64", u128::from(u64::MAX)),
        ("usize", u128::from(u64::MAX)),
    ];
    let mut out = message.to_owned();
    for (name, max) in ranges {
        let typed = format!("expected {name}");
        if let Some(at) = out.find(&typed) {
            let ends_word = !out[at + typed.len()..].starts_with(|c: char| c.is_alphanumeric());
            if ends_word {
                let words = format!("expected a whole number from 0 to {}", spaced(max));
                out.replace_range(at..at + typed.len(), &words);
            }
        }
    }
    out
}

/// The name in `names` closest to `given` by edit distance, if it is close enough to be a
/// typo of it (at most a third of its length, and at least 1, apart).
fn nearest<'a>(given: &str, names: &[&'a str]) -> Option<&'a str> {
    let distance = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut diagonal = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let above = row[j + 1];
                row[j + 1] = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(above + 1);
                diagonal = above;
            }
        }
        row[b.len()]
    };
    names
        .iter()
        .map(|n| (distance(given, n), *n))
        .filter(|(d, n)| *d <= (n.chars().count() / 3).max(1))
        .min()
        .map(|(_, n)| n)
}

/// Where a field such as `duration`, `network.witnesses`, `events[2].son` or
/// `plugin_params."a.b"` is written in scenario text: the byte range of its line's value, if
/// the text spells it the usual way (`[table]` / `[[array]]` headers, `key = value` lines).
pub fn locate(text: &str, field: &str) -> Option<std::ops::Range<usize>> {
    // Split on dots outside quotes.
    let mut parts = Vec::new();
    let (mut cur, mut quoted) = (String::new(), false);
    for c in field.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    let (key, tables) = parts.split_last()?;
    let key = key.split('[').next().unwrap_or(key);
    // Lines with their byte offsets.
    let mut lines = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        lines.push((at, line.trim_end_matches(['\n', '\r'])));
        at += line.len();
    }
    // The table the key is in is under one header, its whole dotted path (`[bitcoin]`,
    // `[[events]]`, `[[bitcoin.byzantine]]`); an array's index says which of its headers.
    let mut from = 0;
    if let Some(last) = tables.last() {
        let names: Vec<&str> =
            tables.iter().map(|t| t.split_once('[').map_or(t.as_str(), |(n, _)| n)).collect();
        let path = names.join(".");
        let index = last.split_once('[').and_then(|(_, i)| i.trim_end_matches(']').parse().ok());
        let header = match index {
            Some(_) => format!("[[{path}]]"),
            None => format!("[{path}]"),
        };
        let skip: usize = index.unwrap_or(0);
        let mut seen = 0;
        from = lines.iter().position(|(_, l)| {
            if l.trim() == header {
                seen += 1;
                seen > skip
            } else {
                false
            }
        })? + 1;
    }
    for (offset, line) in lines.iter().skip(from) {
        let t = line.trim_start();
        if t.starts_with('[') {
            break;
        }
        let Some((k, v)) = t.split_once('=') else { continue };
        if k.trim().trim_matches('"') == key {
            let value_start = offset + (line.len() - t.len()) + k.len() + 1;
            let lead = v.len() - v.trim_start().len();
            return Some(value_start + lead..offset + line.len());
        }
    }
    None
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SON may be named by its id wherever a scenario takes its index: the same scenario.
    #[test]
    fn a_son_is_named_by_its_index_or_by_its_id() {
        let by = |son: &str| {
            let text = format!(
                "{BASE}[[events]]\nat = \"10m\"\nson = {son}\ndo = \"stop\"\n\
                 [[expect]]\nson = {son}\nstatus = \"active\"\n"
            );
            Scenario::from_toml(&text, "s.toml").expect("valid")
        };
        let (index, id) = (by("3"), by("\"1.33.3\""));
        assert_eq!(format!("{:?}", index.events), format!("{:?}", id.events));
        assert_eq!(format!("{:?}", index.expect), format!("{:?}", id.expect));
        assert_eq!(index.events[0].son, Some(3));
        for bad in ["\"1.34.3\"", "\"1.33.x\"", "\"three\"", "-1"] {
            let e = error_of(&format!("{BASE}[[expect]]\nson = {bad}\nstatus = \"active\"\n"));
            assert!(e.message.contains("expected a SON's index"), "{bad}: {}", e.message);
        }
    }

    /// Errors are underlined where the field is written, in nested arrays of tables too
    /// (`[[bitcoin.byzantine]]`, the second of them), and only there.
    #[test]
    fn a_field_is_found_under_its_whole_header_and_its_index() {
        let text = "name = \"x\"\n[bitcoin]\nfee_rate = 0\n[[bitcoin.byzantine]]\nson = 1\n\
                    [[bitcoin.byzantine]]\nson = 9\n[[events]]\nson = 4\n";
        let at = |field: &str| locate(text, field).map(|r| &text[r]);
        assert_eq!(at("bitcoin.fee_rate"), Some("0"));
        assert_eq!(at("bitcoin.byzantine[0].son"), Some("1"));
        assert_eq!(at("bitcoin.byzantine[1].son"), Some("9"));
        assert_eq!(at("events[0].son"), Some("4"));
        assert_eq!(at("bitcoin.byzantine[2].son"), None, "no third");
        assert_eq!(at("name"), Some("\"x\""));
        let e = error_of(&format!(
            "{BASE}[bitcoin]\n[[bitcoin.byzantine]]\nson = 9\ndo = \"withhold_signatures\"\n"
        ));
        assert_eq!(e.field, "bitcoin.byzantine[0].son");
        assert!(e.span.is_some(), "underlined");
    }

    #[test]
    fn numbers_out_of_range_are_said_in_numbers_not_rust_types() {
        for (text, want) in [
            (
                "sons = 99999999999",
                "integer `99999999999`, expected a whole number from 0 to 4 294 967 295",
            ),
            ("sons = -1", "integer `-1`, expected a whole number from 0 to 4 294 967 295"),
            ("sons = \"five\"", "string \"five\", expected a whole number from 0 to 4 294 967 295"),
        ] {
            let e = error_of(&BASE.replace("sons = 5", text));
            assert!(e.message.contains(want), "{text}: {}", e.message);
            assert!(!e.message.contains("u32"), "{}", e.message);
        }
        assert_eq!(in_user_words("expected u8"), "expected a whole number from 0 to 255");
        assert_eq!(in_user_words("expected u16s"), "expected u16s", "a word, not the type");
    }

    #[test]
    fn the_built_in_scenario_is_the_issue_default() {
        let s = Scenario::built_in();
        assert_eq!((s.witnesses, s.sons, s.duration), (11, 15, 14 * 3600));
        assert_eq!(s.events, vec![Event { at: 3600, son: Some(3), action: Action::Stop }]);
        assert_eq!(s.params.son_deregister_time, 43_200);
    }

    fn error_of(text: &str) -> ScenarioError {
        Scenario::from_toml(text, "bad.toml").expect_err("invalid")
    }

    const BASE: &str = "name = \"x\"\nduration = \"1h\"\n[network]\nwitnesses = 3\nsons = 5\n";

    #[test]
    fn an_unknown_field_is_named() {
        let e = error_of(&format!("{BASE}colour = 1\n"));
        assert_eq!(e.file, "bad.toml");
        assert!(e.message.contains("colour"), "{e}");
        assert!(e.field.starts_with("line "), "{e}");
    }

    #[test]
    fn an_out_of_range_son_is_named() {
        let e = error_of(&format!("{BASE}[[events]]\nat = \"5m\"\nson = 9\ndo = \"stop\"\n"));
        assert_eq!(e.field, "events[0].son");
        assert!(e.message.contains("SON 9 does not exist"), "{e}");
    }

    #[test]
    fn negative_or_unparsable_durations_are_named() {
        let e = error_of("name = \"x\"\nduration = \"-5h\"\n[network]\nwitnesses = 3\nsons = 5\n");
        assert!(e.message.contains("negative"), "{e}");
        let e = error_of("name = \"x\"\nduration = \"soon\"\n[network]\nwitnesses = 3\nsons = 5\n");
        assert!(e.message.contains("`soon`"), "{e}");
        let e = error_of(&format!("{BASE}[params]\nson_down_time = -1\n"));
        assert!(e.message.contains("negative"), "{e}");
    }

    #[test]
    fn zero_witnesses_are_refused() {
        let e = error_of("name = \"x\"\nduration = \"1h\"\n[network]\nwitnesses = 0\nsons = 5\n");
        assert_eq!(e.field, "network.witnesses");
    }

    #[test]
    fn invalid_parameters_are_named() {
        let e = error_of(&format!("{BASE}[params]\nson_down_time = \"2m\"\n"));
        assert_eq!(e.field, "params.son_down_time");
        let e = error_of(&format!("{BASE}[params]\nthreshold_policy = \"most\"\n"));
        assert!(e.message.contains("most"), "{e}");
    }

    #[test]
    fn events_after_the_run_and_half_expectations_are_refused() {
        let e = error_of(&format!("{BASE}[[events]]\nat = \"2h\"\nson = 1\ndo = \"stop\"\n"));
        assert_eq!(e.field, "events[0].at");
        let e = error_of(&format!("{BASE}[[expect]]\nson = 1\nkind = \"son_deregister\"\n"));
        assert_eq!(e.field, "expect[0]");
    }
}
