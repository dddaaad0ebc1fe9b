//! Two rules every registered kind must keep, checked for all of them at once (each crate's own
//! tests check its kinds' particular rules): an operation needs the authority of the accounts it
//! names — sent by anyone else it is refused for the missing authority, before its own rules are
//! asked — and a SON proposal's stateful check runs when it is proposed, so a proposal that could
//! never execute is refused at creation.

use sonprop_core::chain::ops::ProposalCreate;
use sonprop_core::testkit::TestNetwork;
use sonprop_core::{
    AssetId, LedgerError, NodeIdentity, OperationError, Registry, SignedTransaction, Transaction,
};

fn network() -> TestNetwork {
    let registry = Registry::builder()
        .with(&sonprop_report_down::PLUGIN)
        .with(&sonprop_deregister_son::PLUGIN)
        .with(&sonprop_bitcoin::PLUGIN)
        .with(&sonprop_example_custom_operation::PLUGIN)
        .build()
        .expect("unique")
        .into_arc();
    TestNetwork::builder()
        .witnesses(3)
        .sons(6)
        .users(1)
        .asset(sonprop_bitcoin::state::pbtc_genesis_asset(AssetId(1)))
        .build(registry)
}

/// `tx` in the next block: the producer's verdict.
fn verdict(net: &mut TestNetwork, tx: SignedTransaction) -> Result<(), LedgerError> {
    net.submit(tx);
    let (_, rejected) = net.produce_block();
    rejected.into_iter().next().map_or(Ok(()), |r| Err(r.error))
}

#[test]
fn every_kind_sent_without_the_authority_it_names_is_refused_for_that() {
    let mut net = network();
    let stranger = net.users[0].clone();
    let kinds: Vec<_> =
        net.ledger.state().registry().operations().map(|d| (d.name, d.example)).collect();
    assert!(kinds.len() >= 30, "every crate's kinds: {}", kinds.len());
    for (kind, example) in kinds {
        let op = example();
        let required = op.required_authorities();
        assert!(!required.is_empty(), "{kind}: every operation needs someone's authority");
        if required.contains(&stranger.account) {
            continue;
        }
        let st = net.ledger.state();
        let tx = Transaction { expiration: st.head_time().plus(30), operations: vec![op] }
            .sign(&st.chain_id(), &[&stranger.keys]);
        match verdict(&mut net, tx) {
            Err(LedgerError::MissingAuthority { account }) => {
                assert!(required.contains(&account), "{kind}: {account} is not one it names")
            }
            other => panic!("{kind}: sent by a stranger, got {other:?}"),
        }
    }
}

#[test]
fn every_son_proposal_whose_check_fails_is_refused_when_proposed() {
    let mut net = network();
    // The examples describe no state this genesis has: each one's check fails.
    let kinds: Vec<_> = net
        .ledger
        .state()
        .registry()
        .operations()
        .filter(|d| d.proposal.is_some())
        .map(|d| (d.name, d.example))
        .collect();
    assert!(kinds.len() >= 12, "{}", kinds.len());
    let proposers: Vec<NodeIdentity> = vec![net.sons[0].clone(), net.witnesses[0].clone()];
    for (kind, example) in kinds {
        let mut refused = None;
        for who in &proposers {
            let st = net.ledger.state();
            let create = ProposalCreate {
                proposer: who.account,
                expiration_time: st.next_slot_time().plus(9),
                review_period_seconds: None,
                operations: vec![example()],
            };
            let tx = net.sign(who, create);
            match verdict(&mut net, tx) {
                // The custom-operation example's notice is one this genesis could execute (SON
                // 3 has a bitcoin key); its crate's tests refuse the ones it could not.
                Ok(()) if kind == "son_key_expiry_notice" => {
                    refused = Some(None);
                    break;
                }
                Ok(()) => panic!("{kind}: a proposal that cannot execute was created"),
                // The other proposer may be the eligible one.
                Err(e)
                    if matches!(
                        e.operation_error(),
                        Some(OperationError::IneligibleProposer { .. })
                    ) => {}
                Err(e) => {
                    refused = Some(Some(e));
                    break;
                }
            }
        }
        let e = refused.unwrap_or_else(|| panic!("{kind}: no proposer was eligible"));
        if let Some(e) = e {
            assert!(e.operation_error().is_some(), "{kind}: refused by the operation's rules: {e}");
        }
    }
}
