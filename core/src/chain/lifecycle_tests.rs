//! The SON lifecycle's rules, each with its boundary: registering (the deposit at the minimum
//! and one unit below), updating, maintenance, votes and their tally, the election (ties, zero
//! votes, refused keys), pay, and withdrawing vested balances (at the cliff and one second
//! before). Every refusal is typed and leaves the state as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::*;
use crate::chain::error::{LedgerError, OperationError};
use crate::chain::event::LedgerEvent;
use crate::chain::ids::{AssetId, SonId, Subject, VestingId};
use crate::chain::model::{Guard, Operation, State};
use crate::chain::objects::{Asset, SonStatus};
use crate::chain::ops::{AssetTransfer, SonHeartbeat};
use crate::chain::params::ChainParameters;
use crate::chain::time::Timestamp;
use crate::chain::tx::SignedTransaction;
use crate::node::plugin::NodeIdentity;
use crate::registry::{Plugin, Registry};
use crate::testkit::probe;
use crate::testkit::TestNetwork;
use crate::KeyPair;

const PPY: AssetId = AssetId(0);
const MIN: u64 = 5_000_000;
/// The genesis SONs' deposits (the test kit's).
const GENESIS_DEPOSIT: u64 = 50_000_000;

/// A sidechain crate's key check, for these tests: a key whose value starts with `bad` is
/// unusable.
fn refuse_bad(_: &State, _: SonId, keys: &BTreeMap<String, String>) -> Result<(), String> {
    match keys.iter().find(|(_, v)| v.starts_with("bad")) {
        Some((chain, _)) => Err(format!("the {chain} key is unusable")),
        None => Ok(()),
    }
}

/// A guard on `son_update`: a SON whose URL is `busy` still owes a signature under its keys.
fn defer_busy(state: &State, subject: &Subject) -> Option<String> {
    let Subject::Son(id) = subject else { return None };
    state.son(*id).filter(|s| s.url == "busy").map(|_| "its signature is still needed".into())
}

const KEYCHECK: Plugin = Plugin {
    son_check: Some(refuse_bad),
    guards: &[Guard { name: "test-signer", kind: kinds::SON_UPDATE, defer: defer_busy }],
    ..Plugin::new("keycheck")
};

fn registry() -> Arc<Registry> {
    Registry::builder().with(&probe::PLUGIN).with(&KEYCHECK).build().expect("unique").into_arc()
}

fn ppy() -> Asset {
    crate::testkit::ppy_asset()
}

fn params() -> ChainParameters {
    ChainParameters {
        maintenance_interval: 60,
        son_pay_time: 60,
        maximum_son_count: 7,
        son_vesting_period: 300,
        ..ChainParameters::default()
    }
}

/// 3 witnesses, 6 elected SONs (one vote each), 4 users: alice (10 PPY... in units: 10 M),
/// bob (7 M), carol (3 M) and the SON budget (30 M).
fn net_with(p: ChainParameters, with_ppy: bool) -> TestNetwork {
    let b = TestNetwork::builder().witnesses(3).sons(6).users(4);
    let (_, _, _, users) = b.genesis();
    let p = ChainParameters { son_budget_account: Some(users[3].account), ..p };
    let mut b = b.params(p);
    if with_ppy {
        b = b
            .asset(ppy())
            .balance(users[0].account, PPY, 10_000_000)
            .balance(users[1].account, PPY, 7_000_000)
            .balance(users[2].account, PPY, 3_000_000)
            .balance(users[3].account, PPY, 30_000_000);
    }
    b.build(registry())
}

fn net() -> TestNetwork {
    net_with(params(), true)
}

fn user(net: &TestNetwork, i: usize) -> NodeIdentity {
    net.users[i].clone()
}

/// Applies `op`, signed by `who`, in a block of its own; panics if refused.
fn ok(net: &mut TestNetwork, who: &NodeIdentity, op: impl Operation + 'static) -> Vec<LedgerEvent> {
    let tx = net.sign(who, op);
    net.submit(tx);
    let (outcome, rejected) = net.produce_block();
    assert!(rejected.is_empty(), "refused: {}", rejected[0].error);
    outcome.events
}

/// Offers `op`, signed by `who`, in a block a replica applies: the block is refused, the state
/// hash unchanged; returns the operation's error.
fn refused(
    net: &mut TestNetwork,
    who: &NodeIdentity,
    op: impl Operation + 'static,
) -> OperationError {
    let tx: SignedTransaction = net.sign(who, op);
    let Err(e) = crate::chain::ledger::tests::apply_block_with(net, vec![tx]) else {
        panic!("the operation must be refused")
    };
    match e {
        LedgerError::InBlock { source, .. } => match *source {
            LedgerError::Operation { source, .. } => source,
            other => panic!("not an operation error: {other}"),
        },
        other => panic!("block refused for another reason: {other}"),
    }
}

fn lifecycle_error(e: &OperationError) -> &LifecycleError {
    match e {
        OperationError::Lifecycle(l) => l,
        other => panic!("not a lifecycle error: {other}"),
    }
}

fn run_until(net: &mut TestNetwork, t: Timestamp) -> Vec<LedgerEvent> {
    let mut events = Vec::new();
    while net.now() < t {
        events.extend(net.produce_block().0.events);
    }
    events
}

fn to_next_maintenance(net: &mut TestNetwork) -> Vec<LedgerEvent> {
    let t = net.ledger.state().globals().next_maintenance_time;
    run_until(net, t)
}

fn create(owner: &NodeIdentity, deposit: u64) -> SonCreate {
    SonCreate {
        owner: owner.account,
        url: "https://son.example".into(),
        signing_key: owner.keys.public(),
        sidechain_public_keys: BTreeMap::from([(
            "bitcoin".into(),
            format!("key-of-{}", owner.name),
        )]),
        deposit,
    }
}

fn vote(account: &NodeIdentity, sons: &[u64]) -> AccountVote {
    AccountVote { account: account.account, sons: sons.iter().map(|i| SonId(*i)).collect() }
}

fn son(st: &State, id: u64) -> &crate::Son {
    st.son(SonId(id)).expect("son")
}

/// The core-asset supply is what the accounts hold plus what the chain holds for them: SON
/// deposits and vesting balances.
fn assert_ppy_conserved(st: &State) {
    let Some(asset) = st.asset(PPY) else { return };
    let balances: u64 = st.balances().iter().filter(|((_, a), _)| *a == PPY).map(|(_, v)| *v).sum();
    let deposits: u64 = st.sons().iter().map(|(_, s)| s.deposit).sum();
    let vesting: u64 =
        st.vesting_balances().iter().filter(|(_, v)| v.asset == PPY).map(|(_, v)| v.amount).sum();
    assert_eq!(asset.supply, balances + deposits + vesting, "PPY supply");
}

/// Every SON's votes are its genesis votes plus its voters' core-asset balances (a
/// deregistered SON's are zero): the tally kept as balances and votes change equals one
/// recomputed from scratch.
fn assert_tally(st: &State, genesis_votes: &BTreeMap<SonId, u64>) {
    for (id, s) in st.sons().iter() {
        let stakes: u64 = st
            .accounts()
            .iter()
            .filter(|(_, a)| a.son_votes.contains(id))
            .map(|(a, _)| st.balance(*a, PPY))
            .sum();
        let expected = match s.status {
            SonStatus::Deregistered => 0,
            _ => genesis_votes.get(id).copied().unwrap_or(0) + stakes,
        };
        assert_eq!(s.votes, expected, "tally of {id}");
    }
}

fn deregister(net: &mut TestNetwork, id: SonId) {
    net.ledger.apply_with_for_tests(|ctx| {
        let mut s = ctx.son(id).cloned().expect("son");
        let deposit = std::mem::take(&mut s.deposit);
        s.status = SonStatus::Deregistered;
        let owner = s.owner;
        ctx.put_son(s).expect("put");
        ctx.set_elected(id, false);
        let cliff = ctx.now().plus(ctx.params().son_vesting_period);
        ctx.create_vesting(owner, deposit, format!("son_deposit:{id}"), cliff);
    });
}

// ----- son_create -----

#[test]
fn a_son_registers_with_exactly_the_minimum_deposit_held_from_its_owner_and_starts_inactive_without_votes(
) {
    let mut net = net();
    let alice = user(&net, 0);
    let supply = net.ledger.state().asset(PPY).expect("ppy").supply;
    assert_eq!(
        supply,
        50_000_000 + 6 * GENESIS_DEPOSIT,
        "the genesis deposits count in the supply"
    );
    let events = ok(&mut net, &alice, create(&alice, MIN));
    let st = net.ledger.state();
    let s = son(st, 6);
    assert_eq!(
        (s.owner, s.deposit, s.votes, s.status),
        (alice.account, MIN, 0, SonStatus::Inactive)
    );
    assert_eq!(s.url, "https://son.example");
    assert_eq!(st.balance(alice.account, PPY), 10_000_000 - MIN, "the deposit left her balance");
    assert_eq!(st.asset(PPY).expect("ppy").supply, supply, "held, not burnt");
    assert!(!st.is_elected(SonId(6)));
    assert!(events.contains(&LedgerEvent::SonCreated {
        son: SonId(6),
        owner: alice.account,
        deposit: MIN
    }));
    assert_ppy_conserved(st);
}

#[test]
fn a_deposit_one_unit_below_the_minimum_is_refused_and_changes_nothing() {
    let mut net = net();
    let alice = user(&net, 0);
    let e = refused(&mut net, &alice, create(&alice, MIN - 1));
    assert_eq!(
        lifecycle_error(&e),
        &LifecycleError::DepositTooSmall { deposit: MIN - 1, min: MIN }
    );
}

#[test]
fn an_account_registers_one_son_ever_even_after_its_son_is_deregistered() {
    let mut net = net();
    let alice = user(&net, 0);
    ok(&mut net, &alice, create(&alice, MIN));
    let e = refused(&mut net, &alice, create(&alice, MIN));
    assert_eq!(
        lifecycle_error(&e),
        &LifecycleError::AlreadyOwnsSon { owner: alice.account, son: SonId(6) }
    );
    deregister(&mut net, SonId(6));
    let e = refused(&mut net, &alice, create(&alice, MIN));
    assert!(matches!(lifecycle_error(&e), LifecycleError::AlreadyOwnsSon { .. }), "{e}");
    // A genesis SON's owner is refused the same way.
    let son0 = net.sons[0].clone();
    let e = refused(&mut net, &son0, create(&son0, MIN));
    assert_eq!(
        lifecycle_error(&e),
        &LifecycleError::AlreadyOwnsSon { owner: son0.account, son: SonId(0) }
    );
}

#[test]
fn a_deposit_beyond_the_owners_balance_or_on_a_chain_without_its_core_asset_is_refused() {
    let mut net = net();
    let carol = user(&net, 2);
    let e = refused(&mut net, &carol, create(&carol, MIN));
    assert!(
        matches!(e, OperationError::InsufficientBalance { balance: 3_000_000, amount: MIN, .. }),
        "{e}"
    );
    let mut bare = net_with(params(), false);
    let alice = user(&bare, 0);
    let e = refused(&mut bare, &alice, create(&alice, MIN));
    assert!(matches!(e, OperationError::UnknownAsset(PPY)), "{e}");
}

#[test]
fn a_url_of_256_bytes_passes_and_one_of_257_is_refused() {
    let mut net = net();
    let (alice, bob) = (user(&net, 0), user(&net, 1));
    let long = SonCreate { url: "u".repeat(257), ..create(&alice, MIN) };
    let e = refused(&mut net, &alice, long);
    assert_eq!(lifecycle_error(&e), &LifecycleError::UrlTooLong { len: 257, max: 256 });
    ok(&mut net, &alice, SonCreate { url: "u".repeat(256), ..create(&alice, MIN) });
    let update = SonUpdate {
        son: SonId(6),
        owner: alice.account,
        new_url: Some("u".repeat(257)),
        new_signing_key: None,
        new_sidechain_public_keys: None,
    };
    let e = refused(&mut net, &alice, update);
    assert!(matches!(lifecycle_error(&e), LifecycleError::UrlTooLong { .. }), "{e}");
    let _ = bob;
}

#[test]
fn keys_a_sidechain_crate_refuses_are_refused_at_registration_and_at_update() {
    let mut net = net();
    let alice = user(&net, 0);
    let bad = SonCreate {
        sidechain_public_keys: BTreeMap::from([("bitcoin".into(), "bad-key".into())]),
        ..create(&alice, MIN)
    };
    let e = refused(&mut net, &alice, bad);
    assert_eq!(
        lifecycle_error(&e),
        &LifecycleError::BadKeys {
            son: SonId(6),
            reason: "keycheck: the bitcoin key is unusable".into()
        }
    );
    ok(&mut net, &alice, create(&alice, MIN));
    let update = SonUpdate {
        son: SonId(6),
        owner: alice.account,
        new_url: None,
        new_signing_key: None,
        new_sidechain_public_keys: Some(BTreeMap::from([("bitcoin".into(), "bad-2".into())])),
    };
    let e = refused(&mut net, &alice, update);
    assert!(matches!(lifecycle_error(&e), LifecycleError::BadKeys { .. }), "{e}");
}

// ----- son_update -----

fn update(son: u64, owner: &NodeIdentity) -> SonUpdate {
    SonUpdate {
        son: SonId(son),
        owner: owner.account,
        new_url: None,
        new_signing_key: None,
        new_sidechain_public_keys: None,
    }
}

#[test]
fn only_the_owner_updates_a_son_not_a_deregistered_one_and_an_empty_update_is_refused() {
    let mut net = net();
    let (son0, son1) = (net.sons[0].clone(), net.sons[1].clone());
    let e = refused(&mut net, &son0, update(0, &son0));
    assert_eq!(lifecycle_error(&e), &LifecycleError::NothingToUpdate);
    let by_other = SonUpdate { new_url: Some("x".into()), ..update(0, &son1) };
    let e = refused(&mut net, &son1, by_other);
    assert!(matches!(e, OperationError::NotSonOwner { son: SonId(0), .. }), "{e}");
    deregister(&mut net, SonId(0));
    let e = refused(&mut net, &son0, SonUpdate { new_url: Some("x".into()), ..update(0, &son0) });
    assert!(matches!(e, OperationError::Deregistered(SonId(0))), "{e}");
}

#[test]
fn a_url_or_signing_key_changes_at_once() {
    let mut net = net();
    let son0 = net.sons[0].clone();
    let key = KeyPair::from_seed("new signing key").public();
    let events = ok(
        &mut net,
        &son0,
        SonUpdate {
            new_url: Some("https://new".into()),
            new_signing_key: Some(key),
            ..update(0, &son0)
        },
    );
    let s = son(net.ledger.state(), 0);
    assert_eq!((s.url.as_str(), s.signing_key), ("https://new", key));
    assert!(events.contains(&LedgerEvent::SonUpdated {
        son: SonId(0),
        changed: vec!["url".into(), "signing_key".into()]
    }));
}

#[test]
fn new_sidechain_keys_take_force_at_the_next_maintenance_and_asking_for_the_current_ones_withdraws_a_change(
) {
    let mut net = net();
    let son0 = net.sons[0].clone();
    let old = son(net.ledger.state(), 0).sidechain_public_keys.clone();
    let new = BTreeMap::from([("bitcoin".to_owned(), "rotated".to_owned())]);
    ok(
        &mut net,
        &son0,
        SonUpdate { new_sidechain_public_keys: Some(new.clone()), ..update(0, &son0) },
    );
    let s = son(net.ledger.state(), 0);
    assert_eq!(s.sidechain_public_keys, old, "not before the maintenance");
    assert_eq!(s.next_sidechain_public_keys.as_ref(), Some(&new));
    let events = to_next_maintenance(&mut net);
    let s = son(net.ledger.state(), 0);
    assert_eq!(s.sidechain_public_keys, new);
    assert_eq!(s.next_sidechain_public_keys, None);
    assert!(events.contains(&LedgerEvent::SonKeysChanged { son: SonId(0) }));

    // A change asked for, then the keys in force asked for again: nothing changes.
    ok(
        &mut net,
        &son0,
        SonUpdate {
            new_sidechain_public_keys: Some(BTreeMap::from([("bitcoin".into(), "third".into())])),
            ..update(0, &son0)
        },
    );
    ok(
        &mut net,
        &son0,
        SonUpdate { new_sidechain_public_keys: Some(new.clone()), ..update(0, &son0) },
    );
    assert_eq!(son(net.ledger.state(), 0).next_sidechain_public_keys, None);
    let events = to_next_maintenance(&mut net);
    assert_eq!(son(net.ledger.state(), 0).sidechain_public_keys, new);
    assert!(!events.iter().any(|e| matches!(e, LedgerEvent::SonKeysChanged { .. })));
}

#[test]
fn a_guard_on_son_update_defers_a_key_change_but_not_a_url_change() {
    let mut net = net();
    let son0 = net.sons[0].clone();
    ok(&mut net, &son0, SonUpdate { new_url: Some("busy".into()), ..update(0, &son0) });
    let keys = BTreeMap::from([("bitcoin".to_owned(), "rotated".to_owned())]);
    let e = refused(
        &mut net,
        &son0,
        SonUpdate { new_sidechain_public_keys: Some(keys.clone()), ..update(0, &son0) },
    );
    match e {
        OperationError::Deferred { kind, guard, subject, .. } => {
            assert_eq!(
                (kind, guard, subject),
                (kinds::SON_UPDATE, "test-signer", Subject::Son(SonId(0)))
            );
        }
        other => panic!("not deferred: {other}"),
    }
    ok(&mut net, &son0, SonUpdate { new_url: Some("free".into()), ..update(0, &son0) });
    ok(&mut net, &son0, SonUpdate { new_sidechain_public_keys: Some(keys), ..update(0, &son0) });
}

// ----- son_maintenance -----

fn maintenance(son: u64, owner: &NodeIdentity, request: MaintenanceRequest) -> SonMaintenance {
    SonMaintenance { son: SonId(son), owner: owner.account, request }
}

#[test]
fn maintenance_is_asked_of_an_active_son_only_and_cancelled_only_while_asked() {
    let mut net = net();
    let (son0, alice) = (net.sons[0].clone(), user(&net, 0));
    let e = refused(&mut net, &son0, maintenance(0, &son0, MaintenanceRequest::Cancel));
    assert!(
        matches!(
            e,
            OperationError::SonStatus {
                status: SonStatus::Active,
                expected: "request_maintenance",
                ..
            }
        ),
        "{e}"
    );
    ok(&mut net, &son0, maintenance(0, &son0, MaintenanceRequest::Request));
    assert_eq!(son(net.ledger.state(), 0).status, SonStatus::RequestMaintenance);
    let e = refused(&mut net, &son0, maintenance(0, &son0, MaintenanceRequest::Request));
    assert!(matches!(e, OperationError::SonStatus { status: SonStatus::RequestMaintenance, .. }));
    ok(&mut net, &son0, maintenance(0, &son0, MaintenanceRequest::Cancel));
    assert_eq!(son(net.ledger.state(), 0).status, SonStatus::Active);
    // An inactive (registered, not elected) SON has nothing to take down.
    ok(&mut net, &alice, create(&alice, MIN));
    let e = refused(&mut net, &alice, maintenance(6, &alice, MaintenanceRequest::Request));
    assert!(matches!(
        e,
        OperationError::SonStatus { status: SonStatus::Inactive, expected: "active", .. }
    ));
    let son1 = net.sons[1].clone();
    let e = refused(&mut net, &son1, maintenance(0, &son1, MaintenanceRequest::Request));
    assert!(matches!(e, OperationError::NotSonOwner { .. }), "{e}");
}

#[test]
fn asked_maintenance_starts_at_the_maintenance_and_the_first_heartbeat_after_ends_it_with_its_downtime(
) {
    let mut net = net();
    let son0 = net.sons[0].clone();
    ok(&mut net, &son0, maintenance(0, &son0, MaintenanceRequest::Request));
    let at = net.ledger.state().globals().next_maintenance_time;
    run_until(&mut net, at.minus(3));
    assert_eq!(son(net.ledger.state(), 0).status, SonStatus::RequestMaintenance, "not before");
    run_until(&mut net, at);
    let s = son(net.ledger.state(), 0);
    assert_eq!(s.status, SonStatus::InMaintenance);
    assert_eq!(s.statistics.last_down_timestamp, at, "down from the maintenance");
    assert!(net.ledger.state().is_elected(SonId(0)), "still elected: its votes keep its seat");
    run_until(&mut net, at.plus(30));
    let beat = SonHeartbeat {
        son: SonId(0),
        owner: son0.account,
        timestamp: net.ledger.state().next_slot_time(),
    };
    let back = beat.timestamp;
    ok(&mut net, &son0, beat);
    let s = son(net.ledger.state(), 0);
    assert_eq!(s.status, SonStatus::Active);
    assert_eq!(s.statistics.total_downtime, back.since(at));
    assert_eq!(s.statistics.current_interval_downtime, back.since(at));
}

// ----- votes -----

#[test]
fn votes_carry_the_voters_core_balance_and_follow_it_through_transfers_payments_and_new_votes() {
    let mut net = net();
    let genesis_votes: BTreeMap<SonId, u64> = (0..6).map(|i| (SonId(i), 1)).collect();
    let (alice, bob, carol) = (user(&net, 0), user(&net, 1), user(&net, 2));
    ok(&mut net, &bob, vote(&bob, &[0, 1]));
    assert_eq!(son(net.ledger.state(), 0).votes, 1 + 7_000_000);
    ok(&mut net, &carol, vote(&carol, &[1, 2]));
    assert_eq!(son(net.ledger.state(), 1).votes, 1 + 7_000_000 + 3_000_000);
    assert_tally(net.ledger.state(), &genesis_votes);
    // A transfer between two voters moves votes both ways.
    ok(
        &mut net,
        &bob,
        AssetTransfer { from: bob.account, to: carol.account, asset: PPY, amount: 2_000_000 },
    );
    let st = net.ledger.state();
    assert_eq!(
        (son(st, 0).votes, son(st, 1).votes, son(st, 2).votes),
        (1 + 5_000_000, 1 + 10_000_000, 1 + 5_000_000)
    );
    assert_tally(st, &genesis_votes);
    // A new vote replaces the old: SON 0 loses bob's stake, SON 3 gains it, SON 1 keeps it.
    ok(&mut net, &bob, vote(&bob, &[1, 3]));
    assert_tally(net.ledger.state(), &genesis_votes);
    assert_eq!(son(net.ledger.state(), 0).votes, 1);
    // A voter registering a SON: its deposit leaves its stake.
    ok(&mut net, &alice, vote(&alice, &[4]));
    ok(&mut net, &alice, create(&alice, MIN));
    assert_eq!(son(net.ledger.state(), 4).votes, 1 + 10_000_000 - MIN);
    assert_tally(net.ledger.state(), &genesis_votes);
    // An empty vote withdraws the stake.
    ok(&mut net, &carol, vote(&carol, &[]));
    assert_tally(net.ledger.state(), &genesis_votes);
    assert_eq!(son(net.ledger.state(), 2).votes, 1);
    assert_ppy_conserved(net.ledger.state());
}

#[test]
fn an_account_votes_for_at_most_maximum_son_count_sons_none_unknown_none_deregistered() {
    let mut net = net();
    let (alice, bob) = (user(&net, 0), user(&net, 1));
    ok(&mut net, &alice, create(&alice, MIN));
    ok(&mut net, &bob, vote(&bob, &[0, 1, 2, 3, 4, 5, 6]));
    let e = refused(&mut net, &bob, vote(&bob, &[0, 1, 2, 3, 4, 5, 6, 7]));
    // SON 7 does not exist; the count is checked first.
    assert_eq!(lifecycle_error(&e), &LifecycleError::TooManyVotes { votes: 8, max: 7 });
    let e = refused(&mut net, &bob, vote(&bob, &[9]));
    assert!(matches!(e, OperationError::UnknownSon(SonId(9))), "{e}");
    deregister(&mut net, SonId(5));
    let e = refused(&mut net, &bob, vote(&bob, &[5]));
    assert_eq!(lifecycle_error(&e), &LifecycleError::VoteForDeregistered(SonId(5)));
}

#[test]
fn a_deregistered_sons_votes_stop_counting() {
    let mut net = net();
    let bob = user(&net, 1);
    ok(&mut net, &bob, vote(&bob, &[5]));
    assert_eq!(son(net.ledger.state(), 5).votes, 1 + 7_000_000);
    deregister(&mut net, SonId(5));
    assert_eq!(son(net.ledger.state(), 5).votes, 0);
    let carol = user(&net, 2);
    ok(
        &mut net,
        &carol,
        AssetTransfer { from: carol.account, to: bob.account, asset: PPY, amount: 5 },
    );
    ok(
        &mut net,
        &bob,
        AssetTransfer { from: bob.account, to: carol.account, asset: PPY, amount: 1 },
    );
    assert_eq!(son(net.ledger.state(), 5).votes, 0, "its voters' balances no longer move it");
    ok(&mut net, &bob, vote(&bob, &[]));
    assert_eq!(son(net.ledger.state(), 5).votes, 0, "nor does withdrawing the vote");
    let mut genesis_votes: BTreeMap<SonId, u64> = (0..6).map(|i| (SonId(i), 1)).collect();
    genesis_votes.remove(&SonId(5));
    assert_tally(net.ledger.state(), &genesis_votes);
}

// ----- the election -----

#[test]
fn the_election_takes_the_most_voted_and_breaks_a_tie_at_the_cutoff_by_the_lower_id() {
    // Seven seats; SONs 0..5 (one vote each) and two new SONs with one vote each: eight
    // candidates for seven seats, all tied, so SON 7 (the highest id) is left out.
    let mut net = net();
    let (alice, bob, carol) = (user(&net, 0), user(&net, 1), user(&net, 2));
    ok(&mut net, &alice, create(&alice, MIN));
    ok(&mut net, &bob, create(&bob, MIN));
    ok(&mut net, &carol, vote(&carol, &[]));
    net.ledger.apply_with_for_tests(|ctx| {
        for id in [6, 7] {
            let mut s = ctx.son(SonId(id)).cloned().expect("son");
            s.votes = 1;
            ctx.put_son(s).expect("put");
        }
    });
    let events = to_next_maintenance(&mut net);
    let st = net.ledger.state();
    let elected: Vec<SonId> = st.globals().elected_sons.iter().copied().collect();
    assert_eq!(elected, (0..7).map(SonId).collect::<Vec<_>>(), "the tie goes to the lower id");
    let e = st.globals().last_election.clone().expect("an election");
    assert_eq!((e.seats, e.cutoff), (7, Some(1)));
    assert!(events.contains(&LedgerEvent::SonElected { son: SonId(6) }));
    assert_eq!(son(st, 6).status, SonStatus::Active);
    assert_eq!(son(st, 7).status, SonStatus::Inactive);
    // One more vote for SON 7 (carol's 3 M) puts it ahead of all: SON 5, now the last of the
    // tied, loses its seat.
    ok(&mut net, &carol, vote(&carol, &[7]));
    let events = to_next_maintenance(&mut net);
    let st = net.ledger.state();
    assert!(st.is_elected(SonId(7)) && !st.is_elected(SonId(6)) && st.is_elected(SonId(5)));
    assert!(events.contains(&LedgerEvent::SonNotReelected { son: SonId(6) }));
    assert_eq!(son(st, 6).status, SonStatus::Inactive, "voted out: inactive");
    let e = st.globals().last_election.clone().expect("an election");
    assert_eq!(e.elected[0], (SonId(7), 3_000_001));
}

#[test]
fn a_son_nobody_votes_for_is_not_elected_even_with_seats_free() {
    // The attack: anyone with the deposit registers SONs; with free seats and zero-vote SONs
    // electable, one user could fill the sidechain wallets with keys it holds.
    let mut net = net();
    let (alice, bob) = (user(&net, 0), user(&net, 1));
    ok(&mut net, &alice, create(&alice, MIN));
    to_next_maintenance(&mut net);
    let st = net.ledger.state();
    assert!(!st.is_elected(SonId(6)), "one seat free, but no vote");
    let e = st.globals().last_election.clone().expect("an election");
    assert_eq!((e.elected.len(), e.cutoff), (6, None), "fewer elected than seats: no cutoff");
    ok(&mut net, &bob, vote(&bob, &[6]));
    to_next_maintenance(&mut net);
    assert!(net.ledger.state().is_elected(SonId(6)), "one vote makes it electable");
}

#[test]
fn a_son_whose_keys_a_crate_refuses_is_passed_over_with_the_reason_and_the_next_takes_the_seat() {
    let mut net = net_with(ChainParameters { maximum_son_count: 6, ..params() }, true);
    let (alice, bob) = (user(&net, 0), user(&net, 1));
    ok(&mut net, &alice, create(&alice, MIN));
    ok(&mut net, &bob, vote(&bob, &[6]));
    // SON 2's keys became unusable (a genesis importing a chain can carry such keys).
    net.ledger.apply_with_for_tests(|ctx| {
        let mut s = ctx.son(SonId(2)).cloned().expect("son");
        s.sidechain_public_keys.insert("bitcoin".into(), "bad".into());
        ctx.put_son(s).expect("put");
    });
    to_next_maintenance(&mut net);
    let st = net.ledger.state();
    assert!(!st.is_elected(SonId(2)) && st.is_elected(SonId(6)));
    let e = st.globals().last_election.clone().expect("an election");
    assert_eq!(e.skipped, vec![(SonId(2), "keycheck: the bitcoin key is unusable".to_owned())]);
    assert_eq!(e.cutoff, Some(1));
}

#[test]
fn a_son_voted_in_becomes_active_with_its_silence_counted_from_the_election() {
    let mut net = net();
    let (alice, bob) = (user(&net, 0), user(&net, 1));
    ok(&mut net, &alice, create(&alice, MIN));
    ok(&mut net, &bob, vote(&bob, &[6]));
    let at = net.ledger.state().globals().next_maintenance_time;
    to_next_maintenance(&mut net);
    let s = son(net.ledger.state(), 6);
    assert_eq!((s.status, s.statistics.last_active_timestamp), (SonStatus::Active, at));
}

#[test]
fn wallets_weigh_sons_by_the_votes_of_the_election_not_the_live_tally() {
    let mut net = net();
    let bob = user(&net, 1);
    let before = net.ledger.state().globals().last_election.clone().expect("genesis election");
    assert_eq!(before.elected.len(), 6, "the genesis set stands as the first election");
    assert_eq!(before.votes_of(SonId(0)), Some(1));
    ok(&mut net, &bob, vote(&bob, &[0]));
    let st = net.ledger.state();
    assert_eq!(st.globals().last_election.as_ref(), Some(&before), "a vote moves the tally only");
    assert_eq!(son(st, 0).votes, 7_000_001);
    to_next_maintenance(&mut net);
    let e = net.ledger.state().globals().last_election.clone().expect("election");
    assert_eq!(e.votes_of(SonId(0)), Some(7_000_001));
}

// ----- pay -----

fn set_signed(net: &mut TestNetwork, signed: &[(u64, u64)]) {
    net.ledger.apply_with_for_tests(|ctx| {
        for (id, n) in signed {
            let mut s = ctx.son(SonId(*id)).cloned().expect("son");
            s.statistics.txs_signed = *n;
            ctx.put_son(s).expect("put");
        }
    });
}

fn to_next_payout(net: &mut TestNetwork) -> Vec<LedgerEvent> {
    let t = net.ledger.state().globals().next_son_pay_time;
    run_until(net, t)
}

fn pay_of(st: &State, id: u64) -> u64 {
    son(st, id).pay_vesting.and_then(|v| st.vesting_balances().get(&v)).map_or(0, |v| v.amount)
}

#[test]
fn the_budget_is_split_by_transactions_signed_rounding_down_and_a_son_that_signed_nothing_gets_nothing(
) {
    let p = ChainParameters { son_pay_max: 10_000_001, ..params() };
    let mut net = net_with(p, true);
    let budget = user(&net, 3).account;
    set_signed(&mut net, &[(0, 1), (1, 2)]);
    let events = to_next_payout(&mut net);
    let st = net.ledger.state();
    // 10 000 001 × 1/3 and × 2/3, rounded down; the 1 left over stays in the budget.
    assert_eq!((pay_of(st, 0), pay_of(st, 1), pay_of(st, 2)), (3_333_333, 6_666_667, 0));
    assert_eq!(st.balance(budget, PPY), 30_000_000 - 10_000_000);
    assert!(events.contains(&LedgerEvent::SonPaid {
        son: SonId(1),
        amount: 6_666_667,
        signed: 2,
        signed_by_all: 3
    }));
    let paid = son(st, 1).statistics.last_pay.clone().expect("paid");
    assert_eq!(
        (paid.amount, paid.signed, paid.signed_by_all, paid.budget),
        (6_666_667, 2, 3, 10_000_001)
    );
    assert_eq!(son(st, 2).statistics.last_pay, None, "signed nothing: no pay");
    assert_eq!((son(st, 0).statistics.txs_signed, son(st, 1).statistics.txs_signed), (0, 0));
    assert_ppy_conserved(st);
}

#[test]
fn the_budget_is_the_smaller_of_son_pay_max_and_the_budget_accounts_balance() {
    let p = ChainParameters { son_pay_max: 40_000_000, ..params() };
    let mut net = net_with(p, true);
    set_signed(&mut net, &[(0, 5)]);
    to_next_payout(&mut net);
    let st = net.ledger.state();
    assert_eq!(pay_of(st, 0), 30_000_000, "all the budget account holds, not son_pay_max");
    assert_eq!(st.balance(user(&net, 3).account, PPY), 0);
    // An empty budget pays nothing, and the period still resets.
    set_signed(&mut net, &[(0, 5)]);
    let events = to_next_payout(&mut net);
    assert!(!events.iter().any(|e| matches!(e, LedgerEvent::SonPaid { .. })));
    assert_eq!(son(net.ledger.state(), 0).statistics.txs_signed, 0);
    // Default son_pay_max (20 M) below a 30 M budget: 20 M.
    let mut net = self::net();
    set_signed(&mut net, &[(3, 1)]);
    to_next_payout(&mut net);
    assert_eq!(pay_of(net.ledger.state(), 3), 20_000_000);
}

#[test]
fn sons_are_paid_at_next_son_pay_time_not_a_block_before_and_the_period_resets() {
    let p = ChainParameters { son_pay_time: 90, ..params() };
    let mut net = net_with(p, true);
    let t = net.ledger.state().globals().next_son_pay_time;
    assert_eq!(t, net.genesis.genesis_time.plus(90));
    set_signed(&mut net, &[(0, 1)]);
    net.ledger.apply_with_for_tests(|ctx| {
        let mut s = ctx.son(SonId(4)).cloned().expect("son");
        s.statistics.current_interval_downtime = 40;
        s.statistics.total_downtime = 40;
        ctx.put_son(s).expect("put");
    });
    run_until(&mut net, t.minus(3));
    assert_eq!(pay_of(net.ledger.state(), 0), 0, "not a block before");
    run_until(&mut net, t);
    let st = net.ledger.state();
    assert_eq!(pay_of(st, 0), 20_000_000);
    assert_eq!(st.globals().next_son_pay_time, t.plus(90));
    let s4 = son(st, 4);
    assert_eq!((s4.statistics.current_interval_downtime, s4.statistics.total_downtime), (0, 40));
    assert!(st.sons().index().unpaid.is_empty(), "nothing left to settle");
}

#[test]
fn pay_accumulates_in_one_vesting_balance_withdrawable_at_once_and_a_new_one_after_a_full_withdrawal(
) {
    let mut net = net();
    let son0 = net.sons[0].clone();
    set_signed(&mut net, &[(0, 1)]);
    to_next_payout(&mut net);
    let v = son(net.ledger.state(), 0).pay_vesting.expect("pay vesting");
    set_signed(&mut net, &[(0, 1)]);
    to_next_payout(&mut net);
    let st = net.ledger.state();
    assert_eq!(son(st, 0).pay_vesting, Some(v), "the same balance");
    assert_eq!(
        pay_of(st, 0),
        20_000_000 + 10_000_000,
        "the second pay is what the budget had left"
    );
    let before = st.balance(son0.account, PPY);
    ok(
        &mut net,
        &son0,
        VestingBalanceWithdraw { vesting: v, owner: son0.account, amount: 30_000_000 },
    );
    let st = net.ledger.state();
    assert_eq!(st.balance(son0.account, PPY), before + 30_000_000);
    assert!(st.vesting_balances().get(&v).is_none(), "withdrawn in full: gone");
    assert_ppy_conserved(st);
}

// ----- vesting_balance_withdraw -----

#[test]
fn a_deregistered_sons_deposit_is_withdrawn_at_the_cliff_not_a_second_earlier_and_not_twice() {
    let mut net = net();
    let son5 = net.sons[5].clone();
    deregister(&mut net, SonId(5));
    let (v, cliff) = {
        let st = net.ledger.state();
        let (id, v) = st.vesting_balances().iter().next().expect("the deposit vests");
        assert_eq!((v.owner, v.amount, v.asset), (son5.account, GENESIS_DEPOSIT, PPY));
        (*id, v.cliff)
    };
    let all = VestingBalanceWithdraw { vesting: v, owner: son5.account, amount: GENESIS_DEPOSIT };
    // In the block three seconds before the cliff (blocks are three seconds apart).
    run_until(&mut net, cliff.minus(6));
    let e = refused(&mut net, &son5, all.clone());
    assert_eq!(
        lifecycle_error(&e),
        &LifecycleError::BeforeCliff { vesting: v, cliff, now: cliff.minus(3) }
    );
    // One second before: a cliff moved one second past the next block's time.
    let at = net.ledger.state().next_slot_time();
    net.ledger.apply_with_for_tests(|ctx| {
        let mut row = ctx.vesting_balances().get(&v).cloned().expect("row");
        row.cliff = at.plus(1);
        ctx.put_vesting(v, Some(row));
    });
    let e = refused(&mut net, &son5, all.clone());
    assert!(matches!(lifecycle_error(&e), LifecycleError::BeforeCliff { .. }), "{e}");
    net.ledger.apply_with_for_tests(|ctx| {
        let mut row = ctx.vesting_balances().get(&v).cloned().expect("row");
        row.cliff = cliff;
        ctx.put_vesting(v, Some(row));
    });
    // In the block at the cliff itself.
    run_until(&mut net, cliff.minus(3));
    assert_eq!(net.ledger.state().next_slot_time(), cliff);
    let before = net.ledger.state().balance(son5.account, PPY);
    let events = ok(&mut net, &son5, all.clone());
    assert!(events.contains(&LedgerEvent::VestingWithdrawn {
        vesting: v,
        owner: son5.account,
        amount: GENESIS_DEPOSIT
    }));
    assert_eq!(net.ledger.state().balance(son5.account, PPY), before + GENESIS_DEPOSIT);
    let e = refused(&mut net, &son5, all);
    assert_eq!(lifecycle_error(&e), &LifecycleError::UnknownVesting(v));
    assert_ppy_conserved(net.ledger.state());
}

#[test]
fn a_withdrawal_by_another_account_beyond_the_balance_or_of_zero_is_refused_and_a_partial_one_leaves_the_rest(
) {
    let mut net = net();
    let (son5, son4) = (net.sons[5].clone(), net.sons[4].clone());
    deregister(&mut net, SonId(5));
    let v = VestingId(0);
    let t = net.now().plus(300);
    run_until(&mut net, t);
    let w = |amount, owner: &NodeIdentity| VestingBalanceWithdraw {
        vesting: v,
        owner: owner.account,
        amount,
    };
    let e = refused(&mut net, &son4, w(1, &son4));
    assert_eq!(
        lifecycle_error(&e),
        &LifecycleError::NotVestingOwner { vesting: v, owner: son5.account, given: son4.account }
    );
    let e = refused(&mut net, &son5, w(GENESIS_DEPOSIT + 1, &son5));
    assert_eq!(
        lifecycle_error(&e),
        &LifecycleError::ExceedsVesting {
            vesting: v,
            amount: GENESIS_DEPOSIT + 1,
            available: GENESIS_DEPOSIT
        }
    );
    let e = refused(&mut net, &son5, w(0, &son5));
    assert!(matches!(e, OperationError::ZeroAmount), "{e}");
    ok(&mut net, &son5, w(GENESIS_DEPOSIT - 10, &son5));
    assert_eq!(net.ledger.state().vesting_balances().get(&v).map(|r| r.amount), Some(10));
    ok(&mut net, &son5, w(10, &son5));
    assert_ppy_conserved(net.ledger.state());
}

// ----- genesis -----

#[test]
fn a_genesis_vote_for_an_unknown_or_deregistered_son_or_for_too_many_is_refused() {
    let (g, ..) = TestNetwork::builder().witnesses(3).sons(6).users(1).params(params()).genesis();
    let voter = g.accounts.len() - 1;
    let with = |sons: &[u64], dereg: bool| {
        let mut g = g.clone();
        g.accounts[voter].son_votes = sons.iter().map(|i| SonId(*i)).collect();
        if dereg {
            g.sons[5].status = SonStatus::Deregistered;
            g.elected_sons.retain(|s| *s != SonId(5));
        }
        g.validate()
    };
    assert!(with(&[0, 1], false).is_ok());
    assert!(with(&[9], false).expect_err("unknown").contains("unknown son 1.33.9"));
    assert!(with(&[5], true).expect_err("deregistered").contains("deregistered son 1.33.5"));
    let all: Vec<u64> = (0..6).collect();
    assert!(with(&all, false).is_ok());
    let (mut g7, ..) = TestNetwork::builder()
        .witnesses(3)
        .sons(6)
        .standby_sons(1)
        .users(1)
        .params(ChainParameters { maximum_son_count: 6, ..params() })
        .genesis();
    let voter = g7.accounts.len() - 1;
    g7.accounts[voter].son_votes = (0..6).map(SonId).collect();
    assert!(g7.validate().is_ok(), "as many as the seats");
    g7.accounts[voter].son_votes = (0..7).map(SonId).collect();
    assert!(g7
        .validate()
        .expect_err("too many")
        .contains("votes for 7 sons, more than maximum_son_count (6)"));
}

#[test]
fn genesis_votes_add_the_voters_stakes_and_the_sons_deposits_count_in_the_core_supply() {
    let b = TestNetwork::builder().witnesses(3).sons(6).users(1).params(params());
    let (_, _, _, users) = b.genesis();
    let (mut g, ..) = b.asset(ppy()).balance(users[0].account, PPY, 1_000).genesis();
    let voter = g.accounts.iter().position(|a| a.id == users[0].account).expect("voter");
    g.accounts[voter].son_votes = BTreeSet::from([SonId(2)]);
    let ledger = crate::Ledger::new(&g, registry().chain()).expect("valid genesis");
    let st = ledger.state();
    assert_eq!(st.son(SonId(2)).expect("son").votes, 1 + 1_000);
    assert_eq!(st.son(SonId(3)).expect("son").votes, 1);
    assert_eq!(st.asset(PPY).expect("ppy").supply, 1_000 + 6 * GENESIS_DEPOSIT);
    let e = st.globals().last_election.clone().expect("the genesis election");
    assert_eq!(e.elected[0], (SonId(2), 1_001), "most votes first");
}

// ----- replicas, undo -----

#[test]
fn the_lifecycle_replays_identically_on_a_replica_and_pops_back_block_by_block() {
    let mut net = net();
    let genesis = net.genesis.clone();
    let (alice, bob) = (user(&net, 0), user(&net, 1));
    let mut blocks = Vec::new();
    let produce =
        |net: &mut TestNetwork, txs: Vec<SignedTransaction>, blocks: &mut Vec<crate::Block>| {
            let t = net.ledger.state().next_slot_time();
            let key = net.producer_keys(t).clone();
            let (block, _, rejected) = net.ledger.produce_block(t, txs, &key).expect("slot");
            assert!(rejected.is_empty(), "refused: {}", rejected[0].error);
            blocks.push(block);
        };
    let create_tx = net.sign(&alice, create(&alice, MIN));
    produce(&mut net, vec![create_tx], &mut blocks);
    let vote_tx = net.sign(&bob, vote(&bob, &[6, 0]));
    produce(&mut net, vec![vote_tx], &mut blocks);
    set_signed(&mut net, &[]);
    let keys = BTreeMap::from([("bitcoin".to_owned(), "next".to_owned())]);
    let update_tx =
        net.sign(&alice, SonUpdate { new_sidechain_public_keys: Some(keys), ..update(6, &alice) });
    produce(&mut net, vec![update_tx], &mut blocks);
    let end = net.ledger.state().globals().next_maintenance_time;
    while net.now() < end {
        produce(&mut net, Vec::new(), &mut blocks);
    }
    let mut replica = crate::Ledger::new(&genesis, net.registry.chain()).expect("genesis");
    let mut hashes = vec![replica.state_hash()];
    for b in &blocks {
        replica.apply_block(b).expect("the replica applies every block");
        hashes.push(replica.state_hash());
    }
    assert_eq!(replica.state_hash(), net.ledger.state_hash());
    let st = replica.state();
    assert!(st.is_elected(SonId(6)));
    assert_eq!(st.son(SonId(6)).expect("son").sidechain_public_keys["bitcoin"], "next");
    // Undo, block by block, gives back each earlier state, to genesis.
    for i in (0..blocks.len()).rev() {
        replica.pop_block().expect("pop");
        assert_eq!(replica.state_hash(), hashes[i], "back to after block {i}");
    }
}

// ----- the stories `explain` tells -----

#[test]
fn the_election_story_says_why_a_son_was_or_was_not_elected() {
    let mut net = net_with(ChainParameters { maximum_son_count: 6, ..params() }, true);
    let (alice, bob, carol) = (user(&net, 0), user(&net, 1), user(&net, 2));
    let t = |t: Timestamp| format!("@{}", t.since(crate::testkit::GENESIS_TIME));
    let story = |net: &TestNetwork, id: u64| election_story(net.ledger.state(), SonId(id), &t);
    assert_eq!(
        story(&net, 0),
        "elected at @0 with 0.00001 PPY of votes, 1 of 6 seats (the cut-off was 0.00001 PPY of votes)"
    );
    ok(&mut net, &alice, create(&alice, MIN));
    assert_eq!(
        story(&net, 6),
        "not elected at @0: nobody votes for it (a SON needs at least one vote to be elected)"
    );
    ok(&mut net, &bob, create(&bob, MIN));
    // SON 6 ties the cut-off (one unit), SON 7 passes it.
    net.ledger.apply_with_for_tests(|ctx| {
        let mut s = ctx.son(SonId(6)).cloned().expect("son");
        s.votes = 1;
        ctx.put_son(s).expect("put");
    });
    assert_eq!(
        story(&net, 6),
        "not elected at @0: its 0.00001 PPY of votes tie the cut-off, and ties go to the lower id"
    );
    ok(&mut net, &carol, vote(&carol, &[7]));
    assert!(
        story(&net, 7).contains("it has 30.00000 PPY of votes now, enough at the next maintenance"),
        "{}",
        story(&net, 7)
    );
    to_next_maintenance(&mut net);
    assert!(story(&net, 7).starts_with("elected at @60 with 30.00000 PPY of votes, 1 of 6 seats (the cut-off was 0.00001 PPY of votes)"), "{}", story(&net, 7));
    assert_eq!(
        story(&net, 5),
        "not elected at @60: its 0.00001 PPY of votes tie the cut-off, and ties go to the lower id"
    );

    net.ledger.apply_with_for_tests(|ctx| {
        let mut s = ctx.son(SonId(1)).cloned().expect("son");
        s.sidechain_public_keys.insert("bitcoin".into(), "bad".into());
        ctx.put_son(s).expect("put");
    });
    to_next_maintenance(&mut net);
    assert_eq!(
        story(&net, 1),
        "passed over at @120 though its votes would have elected it: keycheck: the bitcoin key is unusable"
    );
    deregister(&mut net, SonId(3));
    assert_eq!(story(&net, 3), "deregistered: never elected again, and its votes stopped counting");
    assert_eq!(story(&net, 99), "son 1.33.99 does not exist");

    // Below the cut-off: bob's 70 PPY behind the six elected, carol's 30 behind a newcomer.
    let mut net = net_with(ChainParameters { maximum_son_count: 6, ..params() }, true);
    ok(&mut net, &bob, vote(&bob, &[0, 1, 2, 3, 4, 5]));
    ok(&mut net, &alice, create(&alice, MIN));
    ok(&mut net, &carol, vote(&carol, &[6]));
    to_next_maintenance(&mut net);
    assert_eq!(
        story(&net, 6),
        "not elected at @60: 30.00000 PPY of votes, below the cut-off of 70.00001 PPY of votes"
    );
}

#[test]
fn the_pay_story_says_what_a_son_was_paid_and_why() {
    let mut net = net();
    let t = |t: Timestamp| format!("@{}", t.since(crate::testkit::GENESIS_TIME));
    let story = |net: &TestNetwork, id: u64| pay_story(net.ledger.state(), SonId(id), &t);
    assert_eq!(
        story(&net, 0),
        "never paid: pay is split by sidechain transactions signed, and it signed none in a paid \
         period; 0 signed so far this period; next pay at @60"
    );
    set_signed(&mut net, &[(0, 1), (1, 3)]);
    to_next_payout(&mut net);
    set_signed(&mut net, &[(0, 2)]);
    assert_eq!(
        story(&net, 0),
        "paid 50.00000 PPY at @60: it signed 1 of the 4 sidechain transactions signed in the \
         period, that share of the 200.00000 PPY budget; 2 signed so far this period; next pay at @120"
    );
    let bare = TestNetwork::builder().witnesses(3).sons(6).params(params()).build(registry());
    let s = pay_story(bare.ledger.state(), SonId(0), &t);
    assert!(s.ends_with("; no SON budget account: SONs are not paid"), "{s}");
}
