use std::sync::Arc;

use sonprop_core::node::scheduler::{PluginStatus, SchedulerConfig};
use sonprop_core::testkit::{Run, TestNetwork};
use sonprop_core::{
    AccountId, Asset, AssetId, Ledger, NodeIdentity, Operation, Registry, Services,
};

use crate::*;

const SIDE: AssetId = AssetId(2);

fn side(issuer: AccountId) -> Asset {
    let max_supply = u64::MAX;
    Asset { id: SIDE, symbol: "SIDE".into(), precision: 8, issuer, max_supply, supply: 0 }
}

/// Three witnesses, five SONs and alice; SIDE issued by the SONs; two confirmations needed.
fn network() -> TestNetwork {
    let registry = Registry::builder().with(&PLUGIN).build().expect("unique").into_arc();
    let b = TestNetwork::builder().witnesses(3).sons(5).account("alice");
    let b = b.asset(side(AccountId::SON_CONSENSUS));
    b.plugin_param(Confirmations::NAME, serde_json::json!(2)).build(registry)
}

/// A sidechain with one deposit of `amount` to alice, mined 30 s after genesis, a block a minute.
fn sidechain(net: &TestNetwork, amount: u64) -> View {
    let d = Deposit { tx: "0xa1".into(), to: "alice".into(), amount };
    Arc::new(SimulatedSidechain { block_secs: 60, made: vec![(net.now().plus(30), d)] })
}

/// Starts new schedulers (a restart: they remember nothing) with each node's view, and runs
/// `secs`.
async fn run(net: &mut TestNetwork, secs: u64, view: impl Fn(&NodeIdentity) -> View) -> Run {
    let config = SchedulerConfig::for_tests();
    net.start_schedulers_with(config, move |n| Services::new().with(view(n))).expect("views");
    net.run_for(secs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_deposit_is_credited_once_however_often_the_nodes_restart() {
    let mut net = network();
    let alice = net.users[1].account;
    let view = sidechain(&net, 500);
    let v = view.clone();
    run(&mut net, 75, move |_| v.clone()).await;
    assert_eq!(net.ledger.state().balance(alice, SIDE), 0, "one confirmation of two");
    for _ in 0..3 {
        let v = view.clone();
        run(&mut net, 150, move |_| v.clone()).await;
        let st = net.ledger.state();
        assert_eq!((st.balance(alice, SIDE), st.asset(SIDE).expect("SIDE").supply), (500, 500));
        assert_eq!(st.row::<Credited>(&"0xa1".to_owned()), Some(&(alice, 500)));
    }
    // A second credit of the same deposit, as a dishonest SON would propose it, is refused.
    let again = SidechainDeposit { tx: "0xa1".into(), to: alice, amount: 500 };
    let e = again.check(net.ledger.state()).expect_err("credited before").to_string();
    assert!(e.contains("deposit 0xa1 was already credited"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sons_whose_view_disagrees_abstain_and_no_side_credits_alone() {
    let mut net = network();
    let (five, four) = (sidechain(&net, 500), sidechain(&net, 400));
    // Two SONs see 500, three see 400: with five SONs each credit needs four approvals.
    let view =
        move |n: &NodeIdentity| if n.name.as_str() < "son-2" { &five } else { &four }.clone();
    let run = run(&mut net, 300, view).await;
    let statuses = run.statuses(SidechainDeposit::KIND);
    let alice = net.users[1].account;
    assert_eq!(net.ledger.state().balance(alice, SIDE), 0);
    for amount in [500, 400] {
        let why = format!("my view credits {amount} to {alice}");
        let abstained = PluginStatus::Abstained(why);
        assert!(statuses.iter().any(|(_, s)| **s == abstained), "{statuses:?}");
    }
}

#[test]
fn the_chain_refuses_an_unknown_account_nothing_and_too_few_confirmations() {
    let net = network();
    let st = net.ledger.state();
    let op = SidechainDeposit { tx: "0xb2".into(), to: AccountId(999), amount: 500 };
    assert_eq!(check_deposit(st, &op), Err(DepositError::UnknownAccount(AccountId(999))));
    let op = SidechainDeposit { to: net.users[1].account, amount: 0, ..op };
    assert_eq!(check_deposit(st, &op), Err(DepositError::Zero));
    let d = Deposit { tx: "0xb2".into(), to: "alice".into(), amount: 7 };
    assert_eq!(credit_for(st, &d, 1), None, "one confirmation of two");
    assert_eq!(credit_for(st, &d, 2).map(|c| (c.to, c.amount)), Some((net.users[1].account, 7)));
    assert_eq!(credit_for(st, &Deposit { to: "bob".into(), ..d }, 2), None, "no account bob");
    // The simulated sidechain: one confirmation in the block that mines a deposit, one a minute.
    let confs = |secs| sidechain(&net, 7).deposits(net.now().plus(secs)).first().map(|d| d.1);
    assert_eq!([29, 30, 89, 90].map(confs), [None, Some(1), Some(1), Some(2)]);
}

#[test]
fn the_wrapped_asset_must_exist_at_genesis_and_be_the_sons() {
    let chain = Registry::builder().with(&PLUGIN).build().expect("unique");
    let b = TestNetwork::builder().witnesses(3).sons(5);
    let e = Ledger::new(&b.genesis().0, chain.chain()).expect_err("no SIDE").to_string();
    assert!(e.contains("sidechain_deposit.asset") && e.contains("no asset 1.3.2"), "{e}");
    let (genesis, ..) = b.asset(side(AccountId(1))).genesis();
    let e = Ledger::new(&genesis, chain.chain()).expect_err("a witness's SIDE").to_string();
    assert!(e.contains("not issued by the SONs"), "{e}");
}
