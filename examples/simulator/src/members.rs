//! The SON lifecycle in a simulation: the core asset (PPY), the member accounts that register
//! SONs and vote, the SON budget account, and the transactions a scenario's lifecycle events
//! send.

use std::collections::BTreeSet;

use sonprop_core::chain::lifecycle::{
    AccountVote, MaintenanceRequest, SonCreate, SonMaintenance, SonUpdate, VestingBalanceWithdraw,
};
use sonprop_core::testkit::NetworkBuilder;
use sonprop_core::{
    AccountId, Asset, AssetId, ChainParameters, NodeIdentity, Operation, SonId, State, Timestamp,
};

use crate::scenario::{Action, LifecycleScenario, PPY_UNIT};

/// The core asset's id.
pub const PPY: AssetId = AssetId(0);

/// PPY, as Peerplays has it (precision 5), issued by no one the scenario runs.
pub fn ppy_asset() -> Asset {
    Asset {
        id: PPY,
        symbol: "PPY".into(),
        precision: 5,
        issuer: AccountId::SON_CONSENSUS,
        max_supply: 1_000_000_000 * PPY_UNIT,
        supply: 0,
    }
}

/// The members and the budget account of a scenario with a `[lifecycle]` table.
#[derive(Debug, Clone)]
pub struct Members {
    /// `member-0` …
    pub members: Vec<NodeIdentity>,
    /// `son-budget`.
    pub budget: NodeIdentity,
}

impl Members {
    /// The members are the users from `first` on, the budget account the one after them;
    /// they are renamed for the timeline.
    pub fn from_users(users: &[NodeIdentity], first: usize, spec: &LifecycleScenario) -> Members {
        let n = spec.members as usize;
        let members = users[first..first + n]
            .iter()
            .enumerate()
            .map(|(i, u)| NodeIdentity { name: format!("member-{i}"), ..u.clone() })
            .collect();
        let budget = NodeIdentity { name: "son-budget".into(), ..users[first + n].clone() };
        Members { members, budget }
    }

    /// `builder` with PPY, the members' and the budget's balances, and the budget account as
    /// the chain's SON budget.
    pub fn genesis(
        &self,
        builder: NetworkBuilder,
        params: &ChainParameters,
        spec: &LifecycleScenario,
    ) -> NetworkBuilder {
        let params =
            ChainParameters { son_budget_account: Some(self.budget.account), ..params.clone() };
        let b = builder.params(params).asset(ppy_asset());
        let b = self
            .members
            .iter()
            .fold(b, |b, m| b.balance(m.account, PPY, spec.member_ppy.saturating_mul(PPY_UNIT)));
        b.balance(self.budget.account, PPY, spec.budget_ppy.saturating_mul(PPY_UNIT))
    }

    /// The node of the SON `member` registers as SON `son`: the member's account and keys.
    pub fn son_node(&self, member: u32, son: u32) -> NodeIdentity {
        NodeIdentity { son: Some(SonId(u64::from(son))), ..self.members[member as usize].clone() }
    }
}

/// The Bitcoin key a SON node named `name` registers after `changes` key changes (0: its first).
pub fn bitcoin_key(
    builder: &NetworkBuilder,
    name: &str,
    changes: u32,
) -> bitcoin::secp256k1::SecretKey {
    let chain = if changes == 0 { "bitcoin".to_owned() } else { format!("bitcoin-{changes}") };
    builder.sidechain_key(name, &chain).secret_key()
}

/// Its public half as the chain records it.
pub fn bitcoin_public(builder: &NetworkBuilder, name: &str, changes: u32) -> String {
    let sk = bitcoin_key(builder, name, changes);
    bitcoin::PublicKey::new(sk.public_key(&bitcoin::secp256k1::Secp256k1::signing_only()))
        .to_string()
}

/// The operations a lifecycle event sends, signed by `by`, with a line for the timeline;
/// `changes` is how many key changes the SON had before this event. `None` for events that
/// send nothing (stop, start).
pub fn operations(
    state: &State,
    builder: &NetworkBuilder,
    action: &Action,
    son: Option<u32>,
    by: &NodeIdentity,
    changes: u32,
    at: Timestamp,
) -> Option<(Vec<Box<dyn Operation>>, String)> {
    let son_id = son.map(|s| SonId(u64::from(s)));
    let ppy = |units: u64| {
        state.asset(PPY).map_or_else(|| format!("{units} units of PPY"), |a| a.format(units))
    };
    Some(match action {
        Action::Stop | Action::Start => return None,
        Action::Create { deposit, .. } => {
            let op = SonCreate {
                owner: by.account,
                url: format!("https://{}.example", by.name),
                signing_key: by.keys.public(),
                sidechain_public_keys: [(
                    "bitcoin".to_owned(),
                    bitcoin_public(builder, &by.name, 0),
                )]
                .into(),
                deposit: *deposit,
            };
            let text = format!(
                "{} registers son {} with a deposit of {}",
                by.name,
                son_id.map_or_else(String::new, |s| s.to_string()),
                ppy(*deposit)
            );
            (vec![Box::new(op)], text)
        }
        Action::Vote { sons, .. } => {
            let sons: BTreeSet<SonId> = sons.iter().map(|s| SonId(u64::from(*s))).collect();
            let stake = state.balance(by.account, PPY);
            let list: Vec<String> = sons.iter().map(ToString::to_string).collect();
            let text = if list.is_empty() {
                format!("{} withdraws its votes", by.name)
            } else {
                format!("{} votes for {} with its {}", by.name, list.join(", "), ppy(stake))
            };
            (vec![Box::new(AccountVote { account: by.account, sons })], text)
        }
        Action::UpdateKeys => {
            let son_id = son_id?;
            let key = bitcoin_public(builder, &by.name, changes + 1);
            let op = SonUpdate {
                son: son_id,
                owner: by.account,
                new_url: None,
                new_signing_key: None,
                new_sidechain_public_keys: Some([("bitcoin".to_owned(), key)].into()),
            };
            let text = format!(
                "son {son_id} asks for a new bitcoin key (in force at the next maintenance)"
            );
            (vec![Box::new(op)], text)
        }
        Action::RequestMaintenance | Action::CancelMaintenance => {
            let son_id = son_id?;
            let (request, text) = if *action == Action::RequestMaintenance {
                (MaintenanceRequest::Request, format!("son {son_id} asks for maintenance"))
            } else {
                (
                    MaintenanceRequest::Cancel,
                    format!("son {son_id} withdraws its maintenance request"),
                )
            };
            (vec![Box::new(SonMaintenance { son: son_id, owner: by.account, request })], text)
        }
        Action::Withdraw => {
            let son_id = son_id?;
            let vested: Vec<_> = state
                .vesting_balances()
                .iter()
                .filter(|(_, v)| v.owner == by.account && v.cliff <= at)
                .map(|(id, v)| (*id, v.amount))
                .collect();
            let total: u64 = vested.iter().map(|(_, a)| a).sum();
            // What is still locked, and when the first of it vests.
            let locked = state
                .vesting_balances()
                .iter()
                .filter(|(_, v)| v.owner == by.account && v.cliff > at)
                .map(|(_, v)| (v.amount, v.cliff));
            let (locked_total, next) = locked
                .fold((0u64, None::<Timestamp>), |(sum, first), (a, c)| {
                    (sum + a, Some(first.map_or(c, |f| f.min(c))))
                });
            let still = next.map(|cliff| {
                format!(
                    "{} still vesting, the first of it in {}",
                    ppy(locked_total),
                    crate::duration::Duration(cliff.since(at))
                )
            });
            let text = match (vested.is_empty(), still) {
                (true, Some(still)) => {
                    format!("son {son_id}'s owner has nothing vested to withdraw yet: {still}")
                }
                (true, None) => format!("son {son_id}'s owner has no vesting balance to withdraw"),
                (false, Some(still)) => {
                    format!("son {son_id}'s owner withdraws {} vested; {still}", ppy(total))
                }
                (false, None) => format!("son {son_id}'s owner withdraws {} vested", ppy(total)),
            };
            let ops = vested
                .into_iter()
                .map(|(vesting, amount)| {
                    Box::new(VestingBalanceWithdraw { vesting, owner: by.account, amount })
                        as Box<dyn Operation>
                })
                .collect();
            (ops, text)
        }
    })
}
