//! `sidechain_deposit`: the SONs confirm a deposit they see on a sidechain and the chain issues
//! its wrapped asset to the account the deposit names — once, however often nodes restart.
//!
//! Written against `sonprop-core`'s public API alone, as an outside sidechain developer would:
//! a SON proposal kind, a table of credited deposits, two parameters (the wrapped asset, checked
//! on the genesis, and the confirmations a deposit needs), an event, and a trigger and validator
//! on the elected SONs built from each node's [`View`] of the sidechain.
//!
//! ```
//! let registry = sonprop_core::Registry::builder().with(&sonprop_example_sidechain_deposit::PLUGIN);
//! assert!(registry.build().expect("unique").operation("sidechain_deposit").is_some());
//! ```

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sonprop_core::{
    async_trait, AccountId, ApplyContext, AssetId, ChainEvent, Eligibility, GenesisView, Isolation,
    NodeIdentity, NodeParts, Operation, OperationError, ParamDecl, Parameter, Plugin, PluginError,
    Proposal, ProposalDraft, ProposalPolicy, State, Subject, TableDecl, TableSchema, Timestamp,
    Trigger, TriggerOutput, Validator, Verdict, Watch,
};

/// A deposit made on the sidechain to the bridge, naming the account to credit (its memo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deposit {
    /// The sidechain transaction.
    pub tx: String,
    /// The name of the account to credit.
    pub to: String,
    /// How much, in the wrapped asset's smallest units.
    pub amount: u64,
}

/// What a node sees of the sidechain: node-local, never read on chain.
pub trait SidechainView: Send + Sync {
    /// The deposits made by `now`, each with its confirmations then.
    fn deposits(&self, now: Timestamp) -> Vec<(Deposit, u32)>;
}

/// The node service the trigger and validator are built from.
pub type View = Arc<dyn SidechainView>;

/// A simulated sidechain: deposits made at given times, a block every `block_secs`.
#[derive(Debug, Clone)]
pub struct SimulatedSidechain {
    /// Seconds between the sidechain's blocks.
    pub block_secs: u64,
    /// The deposits and when each was mined.
    pub made: Vec<(Timestamp, Deposit)>,
}

impl SidechainView for SimulatedSidechain {
    fn deposits(&self, now: Timestamp) -> Vec<(Deposit, u32)> {
        let mined = self.made.iter().filter(|(at, _)| *at <= now);
        let confirmations = |at: Timestamp| (now.since(at) / self.block_secs.max(1) + 1) as u32;
        mined.map(|(at, d)| (d.clone(), confirmations(*at))).collect()
    }
}

/// The wrapped asset deposits issue: it must exist at genesis, issued by the SONs.
#[derive(Parameter)]
#[parameter(name = "sidechain_deposit.asset", value = AssetId, default = AssetId(2), at_genesis = sons_asset)]
pub struct WrappedAsset;

fn sons_asset(id: &AssetId, genesis: &dyn GenesisView) -> Result<(), String> {
    match genesis.asset(*id) {
        None => Err(format!("no asset {id} at genesis")),
        Some(a) if a.issuer != AccountId::SON_CONSENSUS => {
            Err(format!("asset {id} ({}) is not issued by the SONs", a.symbol))
        }
        Some(_) => Ok(()),
    }
}

/// How many sidechain confirmations a deposit needs before the SONs credit it.
#[derive(Parameter)]
#[parameter(name = "sidechain_deposit.confirmations", value = u32, default = 6, min = 1)]
pub struct Confirmations;

/// The deposits credited, by sidechain transaction: each is credited once.
pub struct Credited;

impl TableSchema for Credited {
    const NAME: &'static str = "sidechain_deposit.credited";
    type Key = String;
    type Value = (AccountId, u64);
}

/// Credits `amount` of the wrapped asset to `to` for sidechain transaction `tx`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidechainDeposit {
    /// The sidechain transaction.
    pub tx: String,
    /// The account credited.
    pub to: AccountId,
    /// The amount.
    pub amount: u64,
}

/// Reported when a deposit is credited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(kind = "sidechain_deposit", name = "credited", display = "{tx}: {amount} to {to}")]
pub struct DepositCredited {
    /// The sidechain transaction.
    pub tx: String,
    /// The account credited.
    pub to: AccountId,
    /// The amount.
    pub amount: u64,
}

/// Why a deposit cannot be credited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepositError {
    /// Credited before.
    #[error("deposit {0} was already credited")]
    AlreadyCredited(String),
    /// No such account.
    #[error("no account {0}")]
    UnknownAccount(AccountId),
    /// Nothing to credit.
    #[error("a deposit of 0")]
    Zero,
}

/// Whether `op` may be credited now: the on-chain rule, which the trigger and validator apply
/// too.
pub fn check_deposit(state: &State, op: &SidechainDeposit) -> Result<(), DepositError> {
    if state.row::<Credited>(&op.tx).is_some() {
        return Err(DepositError::AlreadyCredited(op.tx.clone()));
    }
    if state.account(op.to).is_none() {
        return Err(DepositError::UnknownAccount(op.to));
    }
    if op.amount == 0 {
        return Err(DepositError::Zero);
    }
    Ok(())
}

#[sonprop_core::operation(
    name = "sidechain_deposit",
    description = "issue the wrapped asset for a deposit the SONs confirmed on the sidechain",
    proposal = ProposalPolicy {
        son_record: true,
        eligible: Eligibility::ElectedSon,
        lifetime: |state| state.witness_cycles_lifetime(3),
        readiness: None,
    },
    example = SidechainDeposit { tx: "0xfeed".into(), to: AccountId(30), amount: 1_000 }
)]
impl Operation for SidechainDeposit {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named(format!("sidechain:{}", self.tx)))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_deposit(state, self).map_err(|e| OperationError::rule(Self::KIND, e))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let asset = ctx.param::<WrappedAsset>();
        ctx.issue(asset, self.to, self.amount)?;
        let (tx, to, amount) = (self.tx.clone(), self.to, self.amount);
        ctx.emit_event(&DepositCredited { tx: tx.clone(), to, amount });
        ctx.put_row::<Credited>(&tx, Some((to, amount)))
    }
}

/// The operation crediting `d` if it has the confirmations the chain asks, names an account,
/// and the chain's rule allows it now.
pub fn credit_for(state: &State, d: &Deposit, confirmations: u32) -> Option<SidechainDeposit> {
    // The view keeps listing credited deposits: those are passed over before the account scan.
    if confirmations < state.param::<Confirmations>() || state.row::<Credited>(&d.tx).is_some() {
        return None;
    }
    let (to, _) = state.accounts().iter().find(|(_, a)| a.name == d.to)?;
    let op = SidechainDeposit { tx: d.tx.clone(), to: *to, amount: d.amount };
    check_deposit(state, &op).is_ok().then_some(op)
}

/// Drafts a credit for every confirmed deposit not yet credited.
pub struct DepositTrigger(pub View);

#[async_trait]
impl Trigger for DepositTrigger {
    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let seen = self.0.deposits(state.head_time());
        let ops = seen.iter().filter_map(|(d, n)| credit_for(state, d, *n));
        Ok(ops.map(ProposalDraft::new).collect::<Vec<_>>().into())
    }
}

/// Approves a credit only when this node's own view has the same deposit, confirmed.
pub struct DepositValidator(pub View);

#[async_trait]
impl Validator for DepositValidator {
    async fn review(
        &self,
        st: &State,
        p: &Proposal,
        _: &NodeIdentity,
    ) -> Result<Verdict, PluginError> {
        let op = p.only::<SidechainDeposit>().ok_or(PluginError::msg("not a sidechain_deposit"))?;
        let seen = self.0.deposits(st.head_time());
        Ok(match seen.iter().find_map(|(d, n)| credit_for(st, d, *n).filter(|c| c.tx == op.tx)) {
            Some(mine) if mine == *op => Verdict::Approve,
            Some(mine) => {
                Verdict::Abstain(format!("my view credits {} to {}", mine.amount, mine.to))
            }
            None => Verdict::Abstain(format!("my view has no confirmed deposit {}", op.tx)),
        })
    }
}

/// For explicit registration: `Registry::builder().with(&PLUGIN)`.
pub const PLUGIN: Plugin = Plugin {
    operations: &[SidechainDeposit::DESCRIPTOR],
    tables: &[TableDecl::of::<Credited>()],
    params: &[ParamDecl::of::<WrappedAsset>(), ParamDecl::of::<Confirmations>()],
    node: &[NodeParts {
        kind: SidechainDeposit::KIND,
        watch: Watch::ElectedSons,
        trigger: Some(|ctx| Ok(Box::new(DepositTrigger(ctx.service::<View>()?)))),
        validator: Some(|ctx| Ok(Box::new(DepositValidator(ctx.service::<View>()?)))),
        isolation: Isolation::Thread,
    }],
    ..Plugin::new("sonprop-example-sidechain-deposit")
};

sonprop_core::inventory::submit! { PLUGIN }

#[cfg(test)]
mod tests;
