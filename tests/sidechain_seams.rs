//! A small sidechain crate written against core's public API alone, as an outside developer
//! would: `seams_deposit_confirmed` (a SON proposes that a deposit on another chain reached the
//! confirmations a chain parameter asks for; on approval the user is credited a wrapped asset)
//! and `seams_withdraw` (a user burns the wrapped asset). It keeps typed state with an index,
//! credits and burns an asset, reads its own parameter, gets a per-node service, and has its
//! trigger run on SON nodes — the five seams a sidechain needs.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sonprop_core::node::scheduler::{PluginStatus, SchedulerConfig};
use sonprop_core::testkit::TestNetwork;
use sonprop_core::{
    async_trait, AccountId, ApplyContext, Asset, AssetId, ChainEvent, Eligibility, Index,
    IndexEntries, Isolation, NodeContext, NodeIdentity, NodeParts, Operation, OperationDescriptor,
    OperationError, ParamDecl, Parameter, Plugin, PluginError, Proposal, ProposalDraft,
    ProposalPolicy, Registry, ServiceError, Services, State, Subject, TableDecl, TableSchema,
    Trigger, TriggerOutput, Validator, Verdict, Watch,
};

const KIND: &str = "seams_deposit_confirmed";
const WITHDRAW: &str = "seams_withdraw";
const WBTC: AssetId = AssetId(1);

/// A deposit as a SON's own view of the other chain shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    id: String,
    user: AccountId,
    amount: u64,
    confirmations: u32,
}

/// The node service: what this node sees of the other chain.
trait DepositFeed: Send + Sync {
    fn deposits(&self) -> Vec<Seen>;
}
type Feed = Arc<dyn DepositFeed>;

struct Fixed(Vec<Seen>);
impl DepositFeed for Fixed {
    fn deposits(&self) -> Vec<Seen> {
        self.0.clone()
    }
}

/// Credited deposits, by id, indexed by user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Credited {
    user: AccountId,
    amount: u64,
}
struct Deposits;
const BY_USER: Index<Deposits, AccountId> = Index::new("by_user");
impl TableSchema for Deposits {
    const NAME: &'static str = "seams.deposits";
    type Key = String;
    type Value = Credited;
    fn index(row: &Credited, out: &mut IndexEntries) {
        BY_USER.add(&row.user, out);
    }
}

struct Confirmations;
impl Parameter for Confirmations {
    const NAME: &'static str = "seams.confirmations";
    const DESCRIPTION: &'static str = "confirmations a deposit needs";
    type Value = u32;
    fn default_value() -> u32 {
        6
    }
    fn validate(v: &u32) -> Result<(), String> {
        (*v > 0).then_some(()).ok_or_else(|| "must be at least 1".into())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DepositCredited {
    id: String,
    user: AccountId,
    amount: u64,
}
impl ChainEvent for DepositCredited {
    const KIND: &'static str = KIND;
    const NAME: &'static str = "credited";
}
impl fmt::Display for DepositCredited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deposit {} credited to {}: {}", self.id, self.user, self.amount)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DepositConfirmed {
    id: String,
    user: AccountId,
    amount: u64,
    confirmations: u32,
}

#[derive(Debug, thiserror::Error)]
enum DepositError {
    #[error("deposit {0} was credited already")]
    Credited(String),
    #[error("{have} confirmations, {need} needed")]
    TooFew { have: u32, need: u32 },
}

fn rule(state: &State, op: &DepositConfirmed) -> Result<(), DepositError> {
    if state.row::<Deposits>(&op.id).is_some() {
        return Err(DepositError::Credited(op.id.clone()));
    }
    let need = state.param::<Confirmations>();
    if op.confirmations < need {
        return Err(DepositError::TooFew { have: op.confirmations, need });
    }
    Ok(())
}

#[typetag::serde(name = "seams_deposit_confirmed")]
impl Operation for DepositConfirmed {
    fn kind(&self) -> &'static str {
        KIND
    }
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named(format!("deposit:{}", self.id)))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        rule(state, self).map_err(|e| OperationError::rule(KIND, e))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        ctx.issue(WBTC, self.user, self.amount)?;
        let row = Credited { user: self.user, amount: self.amount };
        ctx.put_row::<Deposits>(&self.id, Some(row))?;
        ctx.emit_event(&DepositCredited {
            id: self.id.clone(),
            user: self.user,
            amount: self.amount,
        });
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Withdraw {
    user: AccountId,
    amount: u64,
}

#[typetag::serde(name = "seams_withdraw")]
impl Operation for Withdraw {
    fn kind(&self) -> &'static str {
        WITHDRAW
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.user]
    }
    fn check(&self, _: &State) -> Result<(), OperationError> {
        Ok(())
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        ctx.reserve(WBTC, self.user, self.amount)
    }
}

struct DepositTrigger(Feed);
#[async_trait]
impl Trigger for DepositTrigger {
    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let drafts = self
            .0
            .deposits()
            .into_iter()
            .map(|s| DepositConfirmed {
                id: s.id,
                user: s.user,
                amount: s.amount,
                confirmations: s.confirmations,
            })
            .filter(|op| rule(state, op).is_ok())
            .map(ProposalDraft::new)
            .collect::<Vec<_>>();
        Ok(drafts.into())
    }
}

struct DepositValidator(Feed);
#[async_trait]
impl Validator for DepositValidator {
    async fn review(
        &self,
        state: &State,
        proposal: &Proposal,
        _: &NodeIdentity,
    ) -> Result<Verdict, PluginError> {
        let op = proposal.only::<DepositConfirmed>().ok_or_else(|| PluginError::msg("not mine"))?;
        if let Err(e) = rule(state, op) {
            return Ok(Verdict::Abstain(e.to_string()));
        }
        let mine = self.0.deposits().into_iter().find(|s| s.id == op.id);
        Ok(match mine {
            Some(s) if s.user == op.user && s.amount == op.amount => Verdict::Approve,
            Some(s) => Verdict::Abstain(format!("I see {} for {}", s.amount, s.user)),
            None => Verdict::Abstain("I do not see this deposit".into()),
        })
    }
}

fn trigger(ctx: &NodeContext<'_>) -> Result<Box<dyn Trigger>, ServiceError> {
    Ok(Box::new(DepositTrigger(ctx.service::<Feed>()?)))
}
fn validator(ctx: &NodeContext<'_>) -> Result<Box<dyn Validator>, ServiceError> {
    Ok(Box::new(DepositValidator(ctx.service::<Feed>()?)))
}

const PLUGIN: Plugin = Plugin {
    operations: &[
        OperationDescriptor {
            name: KIND,
            description: "a deposit on another chain reached its confirmations",
            proposal: Some(ProposalPolicy {
                son_record: true,
                eligible: Eligibility::ElectedSon,
                lifetime: |s| s.witness_cycles_lifetime(3),
                readiness: None,
            }),
            example: || {
                Box::new(DepositConfirmed {
                    id: "tx:0".into(),
                    user: AccountId(1),
                    amount: 1,
                    confirmations: 6,
                })
            },
        },
        OperationDescriptor {
            name: WITHDRAW,
            description: "burn the wrapped asset to withdraw it",
            proposal: None,
            example: || Box::new(Withdraw { user: AccountId(1), amount: 1 }),
        },
    ],
    tables: &[TableDecl::of::<Deposits>()],
    params: &[ParamDecl::of::<Confirmations>()],
    node: &[NodeParts {
        kind: KIND,
        watch: Watch::ElectedSons,
        trigger: Some(trigger),
        validator: Some(validator),
        isolation: Isolation::Thread,
    }],
    ..Plugin::new("sonprop-tests-seams")
};

fn network(confirmations: Option<u32>) -> TestNetwork {
    let reg = Registry::builder().with(&PLUGIN).build().expect("unique").into_arc();
    let b = TestNetwork::builder().witnesses(3).sons(6).users(2).asset(Asset {
        id: WBTC,
        symbol: "WBTC".into(),
        precision: 8,
        issuer: AccountId::SON_CONSENSUS,
        max_supply: u64::MAX,
        supply: 0,
    });
    let b = match confirmations {
        Some(c) => b.plugin_param(Confirmations::NAME, serde_json::json!(c)),
        None => b,
    };
    b.build(reg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_crate_uses_all_five_seams_to_credit_and_burn_a_wrapped_asset() {
    let mut net = network(Some(3));
    let user = net.users[0].account;
    let seen = Seen { id: "abc:0".into(), user, amount: 5_000, confirmations: 4 };
    // Each node gets its own feed instance (here they agree).
    net.start_schedulers_with(SchedulerConfig::for_tests(), |_| {
        Services::new().with(Arc::new(Fixed(vec![seen.clone()])) as Feed)
    })
    .expect("every node has a feed");
    let mut drafted_by = Vec::new();
    let mut credited = Vec::new();
    while net.now() < net.genesis.genesis_time.plus(60) {
        let step = net.step().await;
        credited.extend(step.outcome.events.iter().filter_map(|e| e.decode::<DepositCredited>()));
        for (node, r) in &step.reports {
            if r.outcomes.iter().any(|o| o.kind == KIND && o.status == PluginStatus::Drafts(1)) {
                drafted_by.push(node.clone());
            }
        }
    }
    let st = net.ledger.state();
    // Parameter: 4 confirmations pass because the genesis asked for 3 (the default is 6).
    assert_eq!(st.param::<Confirmations>(), 3);
    // Asset: credited once.
    assert_eq!(st.balance(user, WBTC), 5_000);
    assert_eq!(credited, vec![DepositCredited { id: "abc:0".into(), user, amount: 5_000 }]);
    // Typed state with an index.
    assert_eq!(st.row::<Deposits>(&"abc:0".to_owned()), Some(&Credited { user, amount: 5_000 }));
    let by_user: Vec<_> = st.rows_by(&BY_USER, &user).map(|(k, _)| k).collect();
    assert_eq!(by_user, vec!["abc:0".to_owned()]);
    assert_eq!(st.rows_by(&BY_USER, &net.users[1].account).count(), 0);
    // SON-run trigger: only SON nodes drafted.
    assert!(!drafted_by.is_empty());
    assert!(drafted_by.iter().all(|n| n.starts_with("son-")), "{drafted_by:?}");

    // Burn.
    let tx = net.sign(&net.users[0].clone(), Withdraw { user, amount: 2_000 });
    net.submit(tx);
    let (_, rejected) = net.produce_block();
    assert!(rejected.is_empty());
    let st = net.ledger.state();
    assert_eq!(st.balance(user, WBTC), 3_000);
    assert_eq!(st.asset(WBTC).expect("asset").supply, 3_000);
    let tx = net.sign(&net.users[0].clone(), Withdraw { user, amount: 3_001 });
    net.submit(tx);
    let (_, rejected) = net.produce_block();
    assert!(
        matches!(
            rejected[0].error.operation_error(),
            Some(OperationError::InsufficientBalance { .. })
        ),
        "{}",
        rejected[0].error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_parameter_nothing_is_credited() {
    let mut net = network(None);
    let user = net.users[0].account;
    let seen = Seen { id: "abc:0".into(), user, amount: 5_000, confirmations: 4 };
    net.start_schedulers_with(SchedulerConfig::for_tests(), |_| {
        Services::new().with(Arc::new(Fixed(vec![seen.clone()])) as Feed)
    })
    .expect("feeds");
    net.run_until(net.now().plus(60)).await;
    assert_eq!(net.ledger.state().balance(user, WBTC), 0, "4 < the default 6");
}

/// A view of the other chain that changes while the network runs.
struct Switchable {
    seen: Seen,
    confirmed: Arc<std::sync::atomic::AtomicBool>,
}
impl DepositFeed for Switchable {
    fn deposits(&self) -> Vec<Seen> {
        let confirmations =
            if self.confirmed.load(std::sync::atomic::Ordering::SeqCst) { 4 } else { 0 };
        vec![Seen { confirmations, ..self.seen.clone() }]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sons_that_see_another_amount_do_not_let_it_through() {
    let mut net = network(Some(3));
    let user = net.users[0].account;
    // One SON of six claims 9 999 with enough confirmations; the five honest SONs see 5 000,
    // not yet confirmed, so at first only the liar proposes. The threshold is 5 of 6.
    let confirmed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let liar = net.sons[1].name.clone();
    let flag = Arc::clone(&confirmed);
    net.start_schedulers_with(SchedulerConfig::for_tests(), move |node| {
        let seen = Seen { id: "abc:0".into(), user, amount: 5_000, confirmations: 0 };
        let feed: Feed = if node.name == liar {
            Arc::new(Fixed(vec![Seen { amount: 9_999, confirmations: 4, ..seen }]))
        } else {
            Arc::new(Switchable { seen, confirmed: Arc::clone(&flag) })
        };
        Services::new().with(feed)
    })
    .expect("feeds");
    let mut abstained = 0;
    let end = net.now().plus(120);
    while net.now() < end {
        let step = net.step().await;
        abstained += step
            .reports
            .iter()
            .flat_map(|(_, r)| r.outcomes.iter())
            .filter(
                |o| matches!(&o.status, PluginStatus::Abstained(w) if w.starts_with("I see 5000")),
            )
            .count();
    }
    assert!(abstained >= 5, "the honest SONs reviewed the liar's proposal and abstained");
    assert_eq!(net.ledger.state().balance(user, WBTC), 0, "nothing minted from the lie");
    // The honest SONs see the deposit confirmed: the true amount is credited, once.
    confirmed.store(true, std::sync::atomic::Ordering::SeqCst);
    let events = net.run_until(net.now().plus(300)).await;
    assert_eq!(net.ledger.state().balance(user, WBTC), 5_000);
    let credited: Vec<_> =
        events.iter().filter_map(|(_, _, e)| e.decode::<DepositCredited>()).collect();
    assert_eq!(credited.len(), 1);
}
