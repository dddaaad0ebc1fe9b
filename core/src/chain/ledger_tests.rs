//! Ledger rules: blocks, transactions, heartbeats, the proposal lifecycle and son proposal
//! records, undo. Each test names the behaviour it proves.

use std::collections::BTreeSet;

use super::*;
use crate::chain::error::OperationError;
use crate::chain::ids::Subject;
use crate::chain::ids::{AccountId, SonId};
use crate::chain::model::Operation;
use crate::chain::objects::SonStatus;
use crate::chain::ops::{ProposalCreate, ProposalDelete, ProposalUpdate, SonHeartbeat};
use crate::chain::params::{ChainParameters, ThresholdPolicy};
use crate::chain::tx::Transaction;
use crate::node::plugin::NodeIdentity;
use crate::registry::Registry;
use crate::testkit::probe::{self, AccountProbe, PlainProbe, SonProbe};
use crate::testkit::TestNetwork;

fn registry() -> Arc<Registry> {
    Registry::builder().with(&probe::PLUGIN).build().expect("unique names").into_arc()
}

/// 3 witnesses, 6 elected SONs (threshold 5 of 6), 2 users.
fn small() -> TestNetwork {
    small_with(ChainParameters::default())
}

fn small_with(params: ChainParameters) -> TestNetwork {
    TestNetwork::builder().witnesses(3).sons(6).users(2).params(params).build(registry())
}

/// Puts `tx` in the next block on its own; the producer's verdict on it.
fn apply_one(net: &mut TestNetwork, tx: SignedTransaction) -> Result<BlockOutcome, LedgerError> {
    net.submit(tx);
    let (outcome, mut rejected) = net.produce_block();
    match rejected.pop() {
        Some(r) => Err(r.error),
        None => Ok(outcome),
    }
}

/// A block carrying `txs` from the scheduled producer, applied as a replica would; asserts the
/// state hash is unchanged when it is refused.
/// Applies a block of `txs` on the next slot; a refused block must leave the state unchanged.
pub(crate) fn apply_block_with(
    net: &mut TestNetwork,
    txs: Vec<SignedTransaction>,
) -> Result<BlockOutcome, LedgerError> {
    let st = net.ledger.state();
    let t = st.next_slot_time();
    let block = net.block(
        st.head_height() + 1,
        t,
        st.globals().head_id,
        st.scheduled_producer(t).expect("scheduled"),
        txs,
    );
    let before = net.ledger.state_hash();
    let result = net.ledger.apply_block(&block);
    if result.is_err() {
        assert_eq!(
            net.ledger.state_hash(),
            before,
            "a refused block must leave the state unchanged"
        );
    }
    result
}

fn refused(net: &mut TestNetwork, tx: SignedTransaction) -> LedgerError {
    match apply_block_with(net, vec![tx]) {
        Ok(_) => panic!("transaction was accepted"),
        Err(LedgerError::InBlock { source, .. }) => *source,
        Err(e) => panic!("block refused for another reason: {e}"),
    }
}

fn op_error(e: &LedgerError) -> &OperationError {
    e.operation_error().unwrap_or_else(|| panic!("not an operation error: {e}"))
}

fn create_tx(
    net: &TestNetwork,
    who: &NodeIdentity,
    ops: Vec<Box<dyn Operation>>,
    lifetime: u64,
) -> SignedTransaction {
    let exp = net.ledger.state().next_slot_time().plus(lifetime);
    net.sign(
        who,
        ProposalCreate {
            proposer: who.account,
            expiration_time: exp,
            review_period_seconds: None,
            operations: ops,
        },
    )
}

fn created_id(outcome: &BlockOutcome) -> ProposalId {
    outcome
        .events
        .iter()
        .find_map(|e| match e {
            LedgerEvent::ProposalCreated { proposal, .. } => Some(*proposal),
            _ => None,
        })
        .expect("a proposal was created")
}

fn propose(
    net: &mut TestNetwork,
    who: &NodeIdentity,
    op: impl Operation + 'static,
    lifetime: u64,
) -> ProposalId {
    let tx = create_tx(net, who, vec![Box::new(op)], lifetime);
    let outcome = apply_one(net, tx).expect("proposal accepted");
    created_id(&outcome)
}

fn son_probe(son: u64) -> SonProbe {
    SonProbe { son: SonId(son), fail_after: None, set_status: None }
}

/// Approvals from SON nodes `range`, all in one block.
fn approve_by_sons(
    net: &mut TestNetwork,
    id: ProposalId,
    sons: std::ops::Range<usize>,
) -> BlockOutcome {
    let txs: Vec<_> = sons
        .map(|i| net.sign(&net.sons[i], ProposalUpdate::approve(id, net.sons[i].account)))
        .collect();
    for tx in txs {
        net.submit(tx);
    }
    let (outcome, rejected) = net.produce_block();
    assert!(
        rejected.is_empty(),
        "{:?}",
        rejected.iter().map(|r| r.error.to_string()).collect::<Vec<_>>()
    );
    outcome
}

fn has_event(o: &BlockOutcome, want: &LedgerEvent) -> bool {
    o.events.contains(want)
}

fn records(net: &TestNetwork) -> usize {
    net.ledger.state().son_proposals().len()
}

fn produce_until(net: &mut TestNetwork, t: Timestamp) -> Vec<LedgerEvent> {
    let mut events = Vec::new();
    while net.now() < t {
        events.extend(net.produce_block().0.events);
    }
    events
}

// ----- blocks -----

#[test]
fn blocks_from_the_wrong_producer_height_link_or_slot_are_refused_unchanged() {
    let mut net = small();
    let st = net.ledger.state().clone();
    let t = st.next_slot_time();
    let good =
        net.block(1, t, st.globals().head_id, st.scheduled_producer(t).expect("scheduled"), vec![]);
    let before = net.ledger.state_hash();
    let wrong_producer = WitnessId((good.producer.0 + 1) % 3);
    let cases = [
        Block { producer: wrong_producer, ..good.clone() },
        Block { height: 2, ..good.clone() },
        Block { previous: Digest::of(b"elsewhere"), ..good.clone() },
        Block { timestamp: t.plus(1), ..good.clone() },
        Block { timestamp: st.head_time(), ..good.clone() },
    ];
    let errors: Vec<String> =
        cases.iter().map(|b| net.ledger.apply_block(b).expect_err("refused").to_string()).collect();
    assert!(errors[0].contains("slot belongs to"), "{}", errors[0]);
    assert!(errors[1].contains("does not follow"), "{}", errors[1]);
    assert!(errors[2].contains("does not link"), "{}", errors[2]);
    assert!(errors[3].contains("not a block slot"), "{}", errors[3]);
    assert!(errors[4].contains("not a block slot"), "{}", errors[4]);
    // The right header, signed by another witness (or re-signed over another block): refused.
    let other = net.block(1, t, st.globals().head_id, wrong_producer, vec![]);
    let forged = Block { signature: other.signature, ..good.clone() };
    let e = net.ledger.apply_block(&forged).expect_err("not the producer's signature");
    assert!(matches!(e, LedgerError::BadBlockSignature { height: 1, .. }), "{e}");
    let later = net.block(1, t, Digest::of(b"elsewhere"), good.producer, vec![]);
    let replayed = Block { signature: later.signature, ..good.clone() };
    assert!(matches!(
        net.ledger.apply_block(&replayed),
        Err(LedgerError::BadBlockSignature { .. })
    ));
    // A producer cannot sign with another witness's key.
    let wrong_key =
        net.witnesses.iter().find(|w| w.witness == Some(wrong_producer)).expect("w").keys.clone();
    let e = net.ledger.produce_block(t, vec![], &wrong_key).expect_err("not the scheduled witness");
    assert!(matches!(e, LedgerError::NotTheProducer { .. }), "{e}");
    assert_eq!(net.ledger.state_hash(), before);
    net.ledger.apply_block(&good).expect("the good block applies");
}

#[test]
fn every_witness_produces_once_per_round() {
    let net = small();
    let st = net.ledger.state();
    let g = st.globals().genesis_time;
    for round in 0..4u64 {
        let producers: BTreeSet<WitnessId> = (1..=3)
            .map(|k| st.scheduled_producer(g.plus((round * 3 + k) * 3)).expect("scheduled"))
            .collect();
        assert_eq!(producers.len(), 3, "round {round}");
    }
}

#[test]
fn a_replica_applying_produced_blocks_reaches_the_same_state_hash() {
    let mut producer = small();
    let mut replica = small();
    let mut with_txs = 0;
    for i in 0..40 {
        let txs = if i % 7 == 0 { vec![producer.heartbeat(i % 6)] } else { vec![] };
        let t = producer.ledger.state().next_slot_time();
        let key = producer.producer_keys(t).clone();
        let (block, _, rejected) = producer.ledger.produce_block(t, txs, &key).expect("produce");
        assert!(rejected.is_empty());
        with_txs += usize::from(!block.transactions.is_empty());
        let _ = replica.ledger.apply_block(&block).expect("replica applies");
        assert_eq!(
            producer.ledger.state_hash(),
            replica.ledger.state_hash(),
            "block {}",
            block.height
        );
    }
    assert_eq!(with_txs, 6, "the heartbeats were carried");
    let head = replica.ledger.state().globals().head_id;
    assert_eq!(head, producer.ledger.state().globals().head_id);
}

/// Replicas sharing one signature cache: a signature one verified is not verified again by
/// the other, but a different signature over the same digest is — and refused when it does not
/// verify, for a transaction and for a block alike.
#[test]
fn a_replica_sharing_a_warm_signature_cache_still_refuses_another_signature_over_the_same_digest() {
    use crate::chain::verify::SignatureCache;
    let cache = SignatureCache::shared();
    let mut producer = small();
    let mut first = small();
    first.ledger = std::mem::replace(
        &mut first.ledger,
        Ledger::new(&first.genesis, registry().chain()).expect("genesis"),
    )
    .share_signatures(cache.clone());
    let mut second = small();
    second.ledger = std::mem::replace(
        &mut second.ledger,
        Ledger::new(&second.genesis, registry().chain()).expect("genesis"),
    )
    .share_signatures(cache.clone());
    let t = producer.ledger.state().next_slot_time();
    let key = producer.producer_keys(t).clone();
    let beat = producer.heartbeat(0);
    let (block, _, _) =
        producer.ledger.produce_block(t, vec![beat.clone()], &key).expect("produce");
    first.ledger.apply_block(&block).expect("the first replica verifies and caches");
    assert_eq!(cache.len(), 2, "the transaction's signature and the block's");

    // The same transaction (same digest), its signature made by another key but claimed as the
    // SON owner's: the second replica verifies it, though the cache holds the real one.
    let mut forged = beat.clone();
    let digest = forged.transaction.digest(&second.ledger.state().chain_id());
    forged.signatures[0].sig = KeyPair::from_seed("not the owner").sign(&digest).sig;
    let bad = second.block(block.height, t, block.previous, block.producer, vec![forged]);
    let before = second.ledger.state_hash();
    let e = second.ledger.apply_block(&bad).expect_err("refused");
    match e {
        LedgerError::InBlock { source, .. } => {
            assert!(matches!(*source, LedgerError::InvalidSignature { .. }), "{source}")
        }
        other => panic!("{other}"),
    }
    assert_eq!(second.ledger.state_hash(), before);
    // The block's own signature likewise: the right block, signed over its id by a key that is
    // not the producer's but claimed as it.
    let mut forged_block = block.clone();
    forged_block.signature.sig = KeyPair::from_seed("not the producer")
        .sign(&block.id(&second.ledger.state().chain_id()))
        .sig;
    assert!(matches!(
        second.ledger.apply_block(&forged_block),
        Err(LedgerError::BadBlockSignature { .. })
    ));
    // The genuine block applies, from the cache.
    second.ledger.apply_block(&block).expect("the genuine block");
    assert_eq!(second.ledger.state_hash(), first.ledger.state_hash());
    assert_eq!(cache.len(), 2, "nothing that failed was remembered");
}

// ----- transactions and signatures -----

#[test]
fn forged_missing_and_duplicate_signatures_are_refused_unchanged() {
    let mut net = small();
    let hb = SonHeartbeat {
        son: SonId(1),
        owner: net.sons[1].account,
        timestamp: net.ledger.state().next_slot_time(),
    };
    let chain = net.ledger.state().chain_id();
    let tx = Transaction::single(net.now().plus(30), hb.clone());

    // Signed by the wrong key: the signature is valid, the authority is not satisfied.
    let wrong = tx.clone().sign(&chain, &[&net.sons[2].keys]);
    assert!(
        matches!(refused(&mut net, wrong), LedgerError::MissingAuthority { account } if account == net.sons[1].account)
    );

    // No signature at all.
    let unsigned = SignedTransaction { transaction: tx.clone(), signatures: vec![] };
    assert!(matches!(refused(&mut net, unsigned), LedgerError::MissingAuthority { .. }));

    // A signature over other bytes, claimed by the right key.
    let mut forged = tx.clone().sign(&chain, &[&net.sons[1].keys]);
    forged.transaction.expiration = forged.transaction.expiration.plus(3);
    assert!(matches!(refused(&mut net, forged), LedgerError::InvalidSignature { .. }));

    // The same key twice.
    let mut twice = tx.clone().sign(&chain, &[&net.sons[1].keys]);
    twice.signatures.push(twice.signatures[0]);
    assert!(matches!(refused(&mut net, twice), LedgerError::DuplicateSignature { .. }));

    // Signed for another chain.
    let other_chain = tx.clone().sign(&Digest::of(b"another chain"), &[&net.sons[1].keys]);
    assert!(matches!(refused(&mut net, other_chain), LedgerError::InvalidSignature { .. }));

    let good = tx.sign(&chain, &[&net.sons[1].keys]);
    apply_block_with(&mut net, vec![good]).expect("properly signed heartbeat applies");
}

#[test]
fn a_transaction_is_applied_at_most_once() {
    let mut net = small();
    let tx = net.heartbeat(0);
    apply_one(&mut net, tx.clone()).expect("first time");
    assert!(matches!(refused(&mut net, tx), LedgerError::DuplicateTransaction(_)));
}

#[test]
fn expired_and_far_future_transactions_are_refused() {
    let mut net = small();
    let chain = net.ledger.state().chain_id();
    let hb = |net: &TestNetwork| SonHeartbeat {
        son: SonId(0),
        owner: net.sons[0].account,
        timestamp: net.ledger.state().next_slot_time(),
    };
    let old = Transaction::single(net.now(), hb(&net)).sign(&chain, &[&net.sons[0].keys]);
    assert!(matches!(refused(&mut net, old), LedgerError::TransactionExpired { .. }));
    let far = Transaction::single(net.now().plus(2 * 86_400), hb(&net))
        .sign(&chain, &[&net.sons[0].keys]);
    assert!(matches!(refused(&mut net, far), LedgerError::ExpirationTooFar { .. }));
}

#[test]
fn remembered_transaction_ids_are_forgotten_after_expiry() {
    let mut net = small();
    let arg = net.heartbeat(0);
    apply_one(&mut net, arg).expect("applies");
    assert_eq!(net.ledger.state().transactions.len(), 1);
    let arg = net.now().plus(31);
    produce_until(&mut net, arg);
    assert_eq!(net.ledger.state().transactions.len(), 0);
}

#[test]
fn malformed_and_unknown_kind_json_are_decode_errors() {
    let net = small();
    let good = serde_json::to_string(&net.heartbeat(0)).expect("serialises");
    SignedTransaction::from_json(&good).expect("round trips");

    let unknown = good.replace("son_heartbeat", "son_teleport");
    let e = SignedTransaction::from_json(&unknown).expect_err("unknown kind");
    assert!(matches!(&e, LedgerError::Decode { .. }), "{e}");
    assert!(e.to_string().contains("son_teleport"), "{e}");

    let e = SignedTransaction::from_json("{\"transaction\": ").expect_err("truncated");
    assert!(matches!(e, LedgerError::Decode { .. }));

    let extra = good.replace("\"timestamp\"", "\"colour\":1,\"timestamp\"");
    assert!(SignedTransaction::from_json(&extra).is_err(), "unknown operation fields are refused");
}

#[test]
fn operations_of_kinds_missing_from_the_registry_are_refused() {
    // A ledger without the probe kinds: the probe type is linked but not registered.
    let reg = Registry::builder().build().expect("core only").into_arc();
    let mut net = TestNetwork::builder().witnesses(3).sons(6).build(reg);
    let tx = create_tx(&net, &net.witnesses[0].clone(), vec![Box::new(son_probe(1))], 60);
    let e = refused(&mut net, tx);
    assert!(
        matches!(op_error(&e), OperationError::UnregisteredKind { kind } if *kind == probe::SON_PROBE),
        "{e}"
    );
}

// ----- heartbeats -----

#[test]
fn heartbeats_outside_five_block_intervals_of_head_time_are_refused() {
    let mut net = small();
    // SON 0 beats 15 s ahead, SON 1 beats 12 s behind (each after a slot or two: the genesis
    // time is its last heartbeat, so keep ahead of it).
    let t = net.now().plus(30);
    produce_until(&mut net, t);
    for (son, offset, ok) in
        [(0usize, 16i64, false), (0, -16, false), (0, 15, true), (1, -12, true)]
    {
        let next = net.ledger.state().next_slot_time();
        let ts =
            if offset >= 0 { next.plus(offset as u64) } else { next.minus(offset.unsigned_abs()) };
        let hb =
            SonHeartbeat { son: SonId(son as u64), owner: net.sons[son].account, timestamp: ts };
        let tx = net.sign(&net.sons[son], hb);
        let result = apply_block_with(&mut net, vec![tx]);
        if ok {
            result.unwrap_or_else(|e| panic!("offset {offset} is within the window: {e}"));
        } else {
            let e = result.expect_err("outside the window");
            assert!(matches!(op_error(&e), OperationError::HeartbeatOutsideWindow { .. }), "{e}");
        }
    }
}

#[test]
fn heartbeats_must_move_forward_and_come_from_the_owner() {
    let mut net = small();
    let arg = net.heartbeat(0);
    apply_one(&mut net, arg).expect("first");
    let last = net.ledger.state().son(SonId(0)).expect("son").statistics.last_active_timestamp;
    let stale = SonHeartbeat { son: SonId(0), owner: net.sons[0].account, timestamp: last };
    let arg = net.sign(&net.sons[0], stale);
    let e = refused(&mut net, arg);
    assert!(matches!(op_error(&e), OperationError::StaleHeartbeat { .. }), "{e}");

    let hb = SonHeartbeat {
        son: SonId(0),
        owner: net.sons[1].account,
        timestamp: net.ledger.state().next_slot_time(),
    };
    let arg = net.sign(&net.sons[1], hb);
    let e = refused(&mut net, arg);
    assert!(matches!(op_error(&e), OperationError::NotSonOwner { .. }), "{e}");
}

/// Executes a SON probe that moves `son` to `status`, approved by SONs 0..5 (skipping `son`).
fn move_son(net: &mut TestNetwork, son: usize, status: SonStatus) -> BlockOutcome {
    let w = net.witnesses[0].clone();
    let id = propose(
        net,
        &w,
        SonProbe { son: SonId(son as u64), fail_after: None, set_status: Some(status) },
        600,
    );
    let approvers: Vec<usize> = (0..6).filter(|i| *i != son).take(5).collect();
    let txs: Vec<_> = approvers
        .iter()
        .map(|i| net.sign(&net.sons[*i], ProposalUpdate::approve(id, net.sons[*i].account)))
        .collect();
    for tx in txs {
        net.submit(tx);
    }
    let (o, rejected) = net.produce_block();
    assert!(rejected.is_empty());
    assert!(has_event(&o, &LedgerEvent::ProposalExecuted { proposal: id }), "{:?}", o.events);
    o
}

#[test]
fn a_heartbeat_brings_an_in_maintenance_son_back_and_accounts_its_downtime() {
    let mut net = small();
    let o = move_son(&mut net, 2, SonStatus::InMaintenance);
    assert!(has_event(
        &o,
        &LedgerEvent::SonStatusChanged {
            son: SonId(2),
            from: SonStatus::Active,
            to: SonStatus::InMaintenance
        }
    ));
    let down = net.ledger.state().son(SonId(2)).expect("son").statistics.last_down_timestamp;
    let arg = net.now().plus(60);
    produce_until(&mut net, arg);
    let beat_at = net.ledger.state().next_slot_time();
    let arg = net.heartbeat(2);
    let o = apply_one(&mut net, arg).expect("heartbeat");
    assert!(has_event(
        &o,
        &LedgerEvent::SonStatusChanged {
            son: SonId(2),
            from: SonStatus::InMaintenance,
            to: SonStatus::Active
        }
    ));
    let s = net.ledger.state().son(SonId(2)).expect("son");
    assert_eq!(s.status, SonStatus::Active);
    assert_eq!(s.statistics.total_downtime, beat_at.since(down));
    assert_eq!(s.statistics.current_interval_downtime, beat_at.since(down));
}

#[test]
fn a_son_back_from_maintenance_is_inactive_if_not_elected() {
    let mut net = TestNetwork::builder().witnesses(3).sons(6).standby_sons(1).build(registry());
    // The standby SON (index 6) is not elected; send it to maintenance through a probe.
    let w = net.witnesses[0].clone();
    let id = propose(
        &mut net,
        &w,
        SonProbe { son: SonId(6), fail_after: None, set_status: Some(SonStatus::InMaintenance) },
        600,
    );
    approve_by_sons(&mut net, id, 0..5);
    assert_eq!(net.ledger.state().son(SonId(6)).expect("son").status, SonStatus::InMaintenance);
    let arg = net.heartbeat(6);
    apply_one(&mut net, arg).expect("heartbeat");
    assert_eq!(net.ledger.state().son(SonId(6)).expect("son").status, SonStatus::Inactive);
}

#[test]
fn a_deregistered_son_can_neither_heartbeat_nor_change_status() {
    let mut net = small();
    move_son(&mut net, 4, SonStatus::Deregistered);
    let arg = net.heartbeat(4);
    let e = refused(&mut net, arg);
    assert!(matches!(op_error(&e), OperationError::Deregistered(s) if *s == SonId(4)), "{e}");
    // Even a proposal that would move it is refused at creation (its check fails).
    let w = net.witnesses[0].clone();
    let tx = create_tx(
        &net,
        &w,
        vec![Box::new(SonProbe {
            son: SonId(4),
            fail_after: None,
            set_status: Some(SonStatus::Active),
        })],
        60,
    );
    let e = refused(&mut net, tx);
    assert!(matches!(op_error(&e), OperationError::Deregistered(_)), "{e}");
}

// ----- the SON consensus authority -----

#[test]
fn consensus_threshold_is_two_thirds_plus_one_of_counted_sons() {
    let mut net = small();
    let auth = net.ledger.state().son_consensus_authority();
    assert_eq!(auth.account_auths.len(), 6);
    assert_eq!(auth.weight_threshold, 5, "floor(2*6/3)+1");
    let q = net.ledger.state().son_quorum();
    assert_eq!((q.elected, q.counted, q.needed()), (6, 6, Some(5)));
    assert_eq!(q.to_string(), "approvals needed: 5 of 6 live SONs");
    // Keep SONs 0..4 heartbeating, let 4 and 5 go silent past son_down_time.
    let until = net.now().plus(400);
    while net.now() < until {
        if net.ledger.state().next_slot_time().since(net.genesis.genesis_time).is_multiple_of(180) {
            for i in 0..4 {
                net.submit(net.heartbeat(i));
            }
        }
        net.produce_block();
    }
    let auth = net.ledger.state().son_consensus_authority();
    assert_eq!(auth.weight_threshold, u32::MAX, "4 live SONs are below min_son_count (5)");
    assert_eq!(auth.account_auths.values().filter(|w| **w == 1).count(), 4);
    // Said in words, as a proposal that expired for it says it.
    let q = net.ledger.state().son_quorum();
    assert_eq!((q.elected, q.counted, q.min_son_count, q.needed()), (6, 4, 5, None));
    assert_eq!(
        q.to_string(),
        "approvals needed: none suffice while live SONs 4 < min_son_count 5 (6 elected)"
    );
    // At exactly min_son_count live SONs the threshold is met by floor(2*5/3)+1.
    let at_min = crate::SonQuorum { counted: 5, ..q };
    assert_eq!(at_min.needed(), Some(4));
    let elected = crate::SonQuorum { policy: ThresholdPolicy::Elected, counted: 2, ..q };
    assert_eq!(elected.needed(), Some(2), "the elected policy has no minimum");
    assert_eq!(elected.to_string(), "approvals needed: 2 of 2 elected SONs");
}

#[test]
fn elected_policy_counts_down_sons_and_live_policy_does_not() {
    for (policy, expect_executed) in
        [(ThresholdPolicy::Elected, false), (ThresholdPolicy::Live, true)]
    {
        let params = ChainParameters {
            threshold_policy: policy,
            min_son_count: 3,
            ..ChainParameters::default()
        };
        let mut net = TestNetwork::builder().witnesses(3).sons(9).params(params).build(registry());
        // SONs 6, 7, 8 go silent; the other six heartbeat.
        let until = net.now().plus(400);
        while net.now() < until {
            if net
                .ledger
                .state()
                .next_slot_time()
                .since(net.genesis.genesis_time)
                .is_multiple_of(180)
            {
                for i in 0..6 {
                    net.submit(net.heartbeat(i));
                }
            }
            net.produce_block();
        }
        let w = net.witnesses[0].clone();
        let id = propose(&mut net, &w, son_probe(8), 600);
        // elected: N = 9, threshold floor(18/3)+1 = 7, and only 6 SONs are up to approve.
        // live: N = 6, threshold 5, so the fifth approval executes it.
        let up = if policy == ThresholdPolicy::Elected { 0..6 } else { 0..5 };
        let o = approve_by_sons(&mut net, id, up);
        assert_eq!(
            has_event(&o, &LedgerEvent::ProposalExecuted { proposal: id }),
            expect_executed,
            "{policy}"
        );
    }
}

// ----- proposals: creation rules -----

#[test]
fn nested_proposals_and_unproposable_kinds_are_refused() {
    let mut net = small();
    let w = net.witnesses[0].clone();
    let inner = ProposalDelete { proposal: ProposalId(0), account: w.account };
    let arg = create_tx(&net, &w, vec![Box::new(inner)], 60);
    let e = refused(&mut net, arg);
    assert!(matches!(op_error(&e), OperationError::NestedProposal { .. }), "{e}");
    let hb = SonHeartbeat { son: SonId(0), owner: net.sons[0].account, timestamp: net.now() };
    let arg = create_tx(&net, &w, vec![Box::new(hb)], 60);
    let e = refused(&mut net, arg);
    assert!(matches!(op_error(&e), OperationError::NotProposable { .. }), "{e}");
    let arg = create_tx(&net, &w, vec![], 60);
    let e = refused(&mut net, arg);
    assert!(matches!(op_error(&e), OperationError::EmptyProposal), "{e}");
}

#[test]
fn only_eligible_proposers_may_create_son_proposals() {
    let mut net = small();
    let user = net.users[0].clone();
    let arg = create_tx(&net, &user, vec![Box::new(son_probe(1))], 60);
    let e = refused(&mut net, arg);
    assert!(matches!(op_error(&e), OperationError::IneligibleProposer { .. }), "{e}");
    assert_eq!(records(&net), 0);
    let son = net.sons[0].clone();
    propose(&mut net, &son, son_probe(1), 60);
    assert_eq!(records(&net), 1);
}

#[test]
fn lifetimes_beyond_the_chain_or_kind_cap_are_refused() {
    let mut net = small();
    let w = net.witnesses[0].clone();
    let arg = create_tx(&net, &w, vec![Box::new(son_probe(1))], probe::PROBE_LIFETIME + 3);
    let e = refused(&mut net, arg);
    assert!(
        matches!(op_error(&e), OperationError::LifetimeTooLong { cap_of, .. } if *cap_of == probe::SON_PROBE),
        "{e}"
    );
    let tx = net.sign(
        &w,
        ProposalCreate {
            proposer: w.account,
            expiration_time: net.now(),
            review_period_seconds: None,
            operations: vec![Box::new(son_probe(1))],
        },
    );
    let e = refused(&mut net, tx);
    assert!(matches!(op_error(&e), OperationError::ExpirationNotInFuture { .. }), "{e}");
}

#[test]
fn a_second_live_proposal_for_the_same_kind_and_subject_is_refused_naming_the_first() {
    let mut net = small();
    let w0 = net.witnesses[0].clone();
    let w1 = net.witnesses[1].clone();
    let first = propose(&mut net, &w0, son_probe(1), 60);
    let arg = create_tx(&net, &w1, vec![Box::new(son_probe(1))], 60);
    let e = refused(&mut net, arg);
    match op_error(&e) {
        OperationError::DuplicateProposal { live, subject, .. } => {
            assert_eq!(*live, first);
            assert_eq!(*subject, Subject::Son(SonId(1)));
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains(&first.to_string()), "{e}");
    // Another subject is fine.
    propose(&mut net, &w1, son_probe(2), 60);
    assert_eq!(records(&net), 2);
}

#[test]
fn a_son_proposal_kind_must_be_alone_in_its_proposal() {
    let mut net = small();
    let w = net.witnesses[0].clone();
    let plain = PlainProbe { account: net.users[0].account, amount: 1, fail_after: None };
    let arg = create_tx(&net, &w, vec![Box::new(son_probe(1)), Box::new(plain)], 60);
    let e = refused(&mut net, arg);
    assert!(matches!(op_error(&e), OperationError::SonProposalNotAlone { .. }), "{e}");
    assert_eq!(records(&net), 0, "no record leaks from a refused proposal");
}

// ----- proposals: approvals -----

#[test]
fn approvals_from_accounts_outside_the_authority_are_refused() {
    let mut net = small();
    let w = net.witnesses[0].clone();
    let id = propose(&mut net, &w, son_probe(1), 600);
    let user = net.users[0].clone();
    let arg = net.sign(&user, ProposalUpdate::approve(id, user.account));
    let e = refused(&mut net, arg);
    assert!(matches!(op_error(&e), OperationError::NotAnApprover { .. }), "{e}");
    // Approving for someone else needs their signature.
    let arg = net.sign(&user, ProposalUpdate::approve(id, net.sons[0].account));
    let e = refused(&mut net, arg);
    assert!(matches!(e, LedgerError::MissingAuthority { .. }), "{e}");
}

#[test]
fn approvals_can_be_withdrawn_but_not_doubled() {
    let mut net = small();
    let w = net.witnesses[0].clone();
    let id = propose(&mut net, &w, son_probe(1), 600);
    let s0 = net.sons[0].clone();
    let arg = net.sign(&s0, ProposalUpdate::approve(id, s0.account));
    apply_one(&mut net, arg).expect("approve");
    let again = ProposalUpdate {
        approvals_to_add: BTreeSet::from([s0.account]),
        ..ProposalUpdate::approve(id, s0.account)
    };
    let arg = net.sign(&s0, again);
    let e = refused(&mut net, arg);
    assert!(matches!(op_error(&e), OperationError::AlreadyApproved { .. }), "{e}");
    let withdraw = ProposalUpdate {
        proposal: id,
        approvals_to_add: BTreeSet::new(),
        approvals_to_remove: BTreeSet::from([s0.account]),
    };
    let arg = net.sign(&s0, withdraw.clone());
    apply_one(&mut net, arg).expect("withdraw");
    assert!(net.ledger.state().proposal(id).expect("live").approvals.is_empty());
    let arg = net.sign(&s0, withdraw);
    let e = refused(&mut net, arg);
    assert!(matches!(op_error(&e), OperationError::NotApproved { .. }), "{e}");
}

#[test]
fn a_proposal_executes_as_soon_as_the_threshold_is_met_and_not_before() {
    let mut net = small();
    let w = net.witnesses[0].clone();
    let id = propose(&mut net, &w, son_probe(1), 600);
    let o = approve_by_sons(&mut net, id, 0..4);
    assert!(!has_event(&o, &LedgerEvent::ProposalExecuted { proposal: id }), "4 of 6 is below 5");
    assert_eq!(net.ledger.state().son(SonId(1)).expect("son").statistics.txs_signed, 0);
    let o = approve_by_sons(&mut net, id, 4..5);
    assert!(has_event(&o, &LedgerEvent::ProposalExecuted { proposal: id }));
    assert_eq!(net.ledger.state().son(SonId(1)).expect("son").statistics.txs_signed, 1);
}

// ----- proposals: every removal path removes the record -----

#[test]
fn record_is_removed_when_the_proposal_executes() {
    let mut net = small();
    let w = net.witnesses[0].clone();
    let id = propose(&mut net, &w, son_probe(1), 600);
    assert_eq!(
        net.ledger.state().live_proposal(probe::SON_PROBE, &Subject::Son(SonId(1))),
        Some(id)
    );
    approve_by_sons(&mut net, id, 0..5);
    assert!(net.ledger.state().proposal(id).is_none());
    assert_eq!(records(&net), 0);
    assert_eq!(net.ledger.state().records_of_son(SonId(1)).count(), 0);
}

#[test]
fn record_is_removed_when_the_proposal_expires_unapproved() {
    let mut net = small();
    let w = net.witnesses[0].clone();
    let id = propose(&mut net, &w, son_probe(1), 30);
    let exp = net.ledger.state().proposal(id).expect("live").expiration_time;
    let events = produce_until(&mut net, exp.minus(3));
    assert!(events.is_empty(), "still live one slot before expiry");
    assert_eq!(records(&net), 1);
    let (o, _) = net.produce_block();
    assert_eq!(o.timestamp, exp);
    assert!(has_event(&o, &LedgerEvent::ProposalExpired { proposal: id }));
    assert_eq!(records(&net), 0);
    // The slot is free again.
    propose(&mut net, &w, son_probe(1), 30);
}

#[test]
fn a_failed_execution_keeps_the_proposal_and_retries_once_at_expiry_then_removes_it() {
    let mut net = small();
    let w = net.witnesses[0].clone();
    // Fails from the block after creation on.
    let fail_after = net.ledger.state().next_slot_time().plus(3);
    let id = propose(
        &mut net,
        &w,
        SonProbe { son: SonId(1), fail_after: Some(fail_after), set_status: None },
        60,
    );
    let o = approve_by_sons(&mut net, id, 0..5);
    let failed = o.events.iter().any(
        |e| matches!(e, LedgerEvent::ProposalExecutionFailed { proposal, .. } if *proposal == id),
    );
    assert!(failed, "{:?}", o.events);
    let p = net.ledger.state().proposal(id).expect("kept after a failed execution");
    assert!(
        p.fail_reason.as_deref().is_some_and(|r| r.contains("probe set to fail")),
        "{:?}",
        p.fail_reason
    );
    assert_eq!(records(&net), 1);
    assert_eq!(
        net.ledger.state().son(SonId(1)).expect("son").statistics.txs_signed,
        0,
        "nothing applied"
    );
    let exp = p.expiration_time;
    let events = produce_until(&mut net, exp);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, LedgerEvent::ProposalFailed { proposal, .. } if *proposal == id)),
        "{events:?}"
    );
    assert!(net.ledger.state().proposal(id).is_none());
    assert_eq!(records(&net), 0);
}

#[test]
fn a_review_period_defers_execution_to_expiry_and_blocks_new_approvals() {
    let mut net = small();
    let acct = net.users[0].clone();
    let w = net.witnesses[0].clone();
    let exp = net.ledger.state().next_slot_time().plus(60);
    let op = AccountProbe {
        account: acct.account,
        subject: "review".into(),
        amount: 7,
        fail_after: None,
    };
    let tx = net.sign(
        &w,
        ProposalCreate {
            proposer: w.account,
            expiration_time: exp,
            review_period_seconds: Some(30),
            operations: vec![Box::new(op)],
        },
    );
    let id = created_id(&apply_one(&mut net, tx).expect("created"));
    let arg = net.sign(&acct, ProposalUpdate::approve(id, acct.account));
    let o = apply_one(&mut net, arg).expect("approve");
    assert!(
        !has_event(&o, &LedgerEvent::ProposalExecuted { proposal: id }),
        "review period defers execution"
    );
    // During the review period no new approvals may be added.
    produce_until(&mut net, exp.minus(30));
    let other = ProposalUpdate {
        proposal: id,
        approvals_to_add: BTreeSet::from([acct.account]),
        approvals_to_remove: BTreeSet::new(),
    };
    let arg = net.sign(&acct, other);
    let e = refused(&mut net, arg);
    assert!(matches!(op_error(&e), OperationError::InReviewPeriod(p) if *p == id), "{e}");
    let events = produce_until(&mut net, exp);
    assert!(events.contains(&LedgerEvent::ProposalExecuted { proposal: id }), "{events:?}");
    assert_eq!(net.ledger.state().vesting_balances().len(), 1);
    assert_eq!(records(&net), 0);
}

#[test]
fn record_is_removed_when_a_required_approver_deletes_the_proposal() {
    let mut net = small();
    let w = net.witnesses[0].clone();
    let acct = net.users[0].clone();
    let op = AccountProbe {
        account: acct.account,
        subject: "veto-me".into(),
        amount: 1,
        fail_after: None,
    };
    let id = propose(&mut net, &w, op, 600);
    assert_eq!(records(&net), 1);
    // Someone who is not a required approver cannot delete it.
    let other = net.users[1].clone();
    let arg = net.sign(&other, ProposalDelete { proposal: id, account: other.account });
    let e = refused(&mut net, arg);
    assert!(matches!(op_error(&e), OperationError::NotRequiredApprover { .. }), "{e}");
    let arg = net.sign(&acct, ProposalDelete { proposal: id, account: acct.account });
    let o = apply_one(&mut net, arg).expect("veto");
    assert!(has_event(&o, &LedgerEvent::ProposalDeleted { proposal: id, by: acct.account }));
    assert!(net.ledger.state().proposal(id).is_none());
    assert_eq!(records(&net), 0);
}

#[test]
fn a_multi_operation_proposal_applies_all_or_nothing() {
    let mut net = small();
    let w = net.witnesses[0].clone();
    let acct = net.users[0].clone();
    let fail_after = net.ledger.state().next_slot_time().plus(3);
    let ok = PlainProbe { account: acct.account, amount: 5, fail_after: None };
    let bad = PlainProbe { account: acct.account, amount: 6, fail_after: Some(fail_after) };
    let tx = create_tx(&net, &w, vec![Box::new(ok.clone()), Box::new(bad)], 60);
    let id = created_id(&apply_one(&mut net, tx).expect("created"));
    assert_eq!(records(&net), 0, "plain kinds keep no record");
    let arg = net.sign(&acct, ProposalUpdate::approve(id, acct.account));
    let o = apply_one(&mut net, arg).expect("approve");
    assert!(
        o.events.iter().any(|e| matches!(e, LedgerEvent::ProposalExecutionFailed { .. })),
        "{:?}",
        o.events
    );
    assert_eq!(
        net.ledger.state().vesting_balances().len(),
        0,
        "the first operation was rolled back too"
    );
    assert!(
        !o.events.iter().any(|e| matches!(e, LedgerEvent::VestingCreated { .. })),
        "its event too"
    );

    let tx = create_tx(&net, &w, vec![Box::new(ok.clone()), Box::new(ok)], 60);
    let id = created_id(&apply_one(&mut net, tx).expect("created"));
    let arg = net.sign(&acct, ProposalUpdate::approve(id, acct.account));
    apply_one(&mut net, arg).expect("approve");
    assert_eq!(net.ledger.state().vesting_balances().len(), 2);
}

// ----- undo -----

#[test]
fn pop_block_restores_the_exact_previous_state() {
    let mut net = small();
    let mut hashes = vec![net.ledger.state_hash()];
    let w = net.witnesses[0].clone();
    let id = propose(&mut net, &w, son_probe(1), 600);
    hashes.push(net.ledger.state_hash());
    let arg = net.heartbeat(3);
    apply_one(&mut net, arg).expect("heartbeat");
    hashes.push(net.ledger.state_hash());
    approve_by_sons(&mut net, id, 0..5);
    hashes.push(net.ledger.state_hash());
    let arg = net.now().plus(90);
    produce_until(&mut net, arg);
    for _ in 0..30 {
        net.ledger.pop_block().expect("pop");
    }
    for expected in hashes.iter().rev().skip(1) {
        net.ledger.pop_block().expect("pop");
        assert_eq!(&net.ledger.state_hash(), expected);
    }
    assert_eq!(net.ledger.state().head_height(), 0);
    assert!(matches!(net.ledger.pop_block(), Err(LedgerError::NothingToPop { head: 0 })));
    // Indexes were restored too: the record query answers as at genesis.
    assert_eq!(net.ledger.state().live_proposal(probe::SON_PROBE, &Subject::Son(SonId(1))), None);
}

#[test]
fn undo_history_is_bounded_by_its_depth() {
    let mut net = small();
    net.ledger = std::mem::replace(&mut net.ledger, small().ledger).with_undo_depth(5);
    let arg = net.now().plus(3 * 20);
    produce_until(&mut net, arg);
    assert_eq!(net.ledger.undo_available(), 5);
    for _ in 0..5 {
        net.ledger.pop_block().expect("pop");
    }
    assert!(matches!(net.ledger.pop_block(), Err(LedgerError::NothingToPop { head: 15 })));
}

#[test]
fn the_default_undo_depth_covers_a_thousand_blocks() {
    let mut net = small();
    let start = net.ledger.state_hash();
    let arg = net.now().plus(3 * 1000);
    produce_until(&mut net, arg);
    assert_eq!(net.ledger.undo_available(), DEFAULT_UNDO_DEPTH);
    for _ in 0..1000 {
        net.ledger.pop_block().expect("pop");
    }
    assert_eq!(net.ledger.state_hash(), start);
}

#[test]
fn a_snapshot_is_unaffected_by_later_blocks() {
    let mut net = small();
    let snap = net.ledger.snapshot();
    let h = snap.hash();
    let arg = net.heartbeat(0);
    apply_one(&mut net, arg).expect("applies");
    assert_eq!(snap.hash(), h);
    assert_ne!(net.ledger.state_hash(), h);
}

#[test]
fn genesis_inconsistencies_are_named() {
    let (mut g, ..) = TestNetwork::builder().witnesses(3).sons(6).genesis();
    g.active_witnesses.clear();
    let e = Ledger::new(&g, registry().chain()).expect_err("no witnesses");
    assert!(e.to_string().contains("active witness"), "{e}");
    let (mut g, ..) = TestNetwork::builder().witnesses(3).sons(6).genesis();
    g.params.son_down_time = 10;
    let e = Ledger::new(&g, registry().chain()).expect_err("bad params");
    assert!(e.to_string().contains("son_down_time"), "{e}");
    let (mut g, ..) = TestNetwork::builder().witnesses(3).sons(6).genesis();
    g.elected_sons.push(SonId(0));
    assert!(Ledger::new(&g, registry().chain()).is_err());
    let (mut g, ..) = TestNetwork::builder().witnesses(3).sons(6).standby_sons(1).genesis();
    g.sons[6].status = SonStatus::Active;
    let e = Ledger::new(&g, registry().chain()).expect_err("active but not elected");
    assert!(e.to_string().contains("1.33.6 is a non-elected son and cannot start active"), "{e}");
    // An imported chain may start with SONs in maintenance or deregistered.
    g.sons[6].status = SonStatus::Deregistered;
    g.sons[5].status = SonStatus::InMaintenance;
    Ledger::new(&g, registry().chain()).expect("valid import");
}

#[test]
fn the_cached_round_order_matches_a_fresh_shuffle_every_slot() {
    let mut net = small();
    for _ in 0..20 {
        let st = net.ledger.state();
        let t = st.next_slot_time();
        let slot = st.slot_at(t).expect("slot");
        let ws = &st.globals().active_witnesses;
        let round = (slot - 1) / ws.len() as u64;
        let fresh =
            crate::chain::state::round_order(ws, &st.chain_id(), round)[((slot - 1) % 3) as usize];
        assert_eq!(st.scheduled_producer(t), Some(fresh), "slot {slot}");
        net.produce_block();
    }
}

#[test]
fn plugin_table_rows_are_stored_hashed_and_undone() {
    use crate::testkit::probe::ProbeAmounts;
    let mut net = small();
    let w = net.witnesses[0].clone();
    let acct = net.users[0].clone();
    let op =
        AccountProbe { account: acct.account, subject: "ext".into(), amount: 42, fail_after: None };
    let id = propose(&mut net, &w, op, 600);
    let before = net.ledger.state_hash();
    // Blocks that write no plugin table leave the plugin generation as it was.
    let untouched = net.ledger.state().plugin_generation();
    net.produce_block();
    assert_eq!(net.ledger.state().plugin_generation(), untouched);
    let tx = net.sign(&acct, ProposalUpdate::approve(id, acct.account));
    apply_one(&mut net, tx).expect("approve and execute");
    let st = net.ledger.state();
    let written = st.plugin_generation();
    assert_ne!(written, untouched, "a row written moves the plugin generation");
    assert_eq!(st.row::<ProbeAmounts>(&"ext".to_owned()), Some(&42));
    assert_eq!(st.row::<ProbeAmounts>(&"other".to_owned()), None);
    assert_eq!(st.rows::<ProbeAmounts>().collect::<Vec<_>>(), vec![("ext".to_owned(), &42)]);
    let snapshot = net.ledger.snapshot();
    net.ledger.pop_block().expect("pop");
    assert_eq!(net.ledger.state().row::<ProbeAmounts>(&"ext".to_owned()), None);
    let undone = net.ledger.state().plugin_generation();
    assert!(undone != written && undone != untouched, "an undone row moves it to a new number");
    assert_eq!(snapshot.plugin_generation(), written, "a snapshot keeps its own");
    net.ledger.pop_block().expect("pop the empty block");
    assert_eq!(net.ledger.state_hash(), before);
}

#[test]
fn the_block_id_commits_to_the_header_and_the_transactions() {
    let mut net = small();
    let chain = net.ledger.state().chain_id();
    let t = net.ledger.state().next_slot_time();
    let (hb, key) = (net.heartbeat(0), net.producer_keys(t).clone());
    let (block, _, _) = net.ledger.produce_block(t, vec![hb], &key).expect("produce");
    assert_eq!(
        net.ledger.state().globals().head_id,
        block.id(&chain),
        "the head id is the block id"
    );
    let mut other = block.clone();
    other.transactions.clear();
    assert_ne!(other.id(&chain), block.id(&chain));
    let mut later = block.clone();
    later.timestamp = later.timestamp.plus(3);
    assert_ne!(later.id(&chain), block.id(&chain));
}

#[test]
fn consensus_members_are_the_elected_owners_live_or_not() {
    let mut net =
        TestNetwork::builder().witnesses(3).sons(6).standby_sons(1).users(1).build(registry());
    // Past son_down_time without heartbeats: no SON is live, yet all elected owners are members.
    let t = net.now().plus(400);
    produce_until(&mut net, t);
    let st = net.ledger.state();
    assert!(st.son_consensus_authority().account_auths.values().all(|w| *w == 0), "nobody live");
    for i in 0..6 {
        assert!(st.is_member(AccountId::SON_CONSENSUS, net.sons[i].account), "elected son {i}");
    }
    assert!(!st.is_member(AccountId::SON_CONSENSUS, net.sons[6].account), "standby son");
    assert!(!st.is_member(AccountId::SON_CONSENSUS, net.users[0].account), "user");
    assert!(st.is_member(AccountId::SON_CONSENSUS, AccountId::SON_CONSENSUS));
}

// ----- assets and balances -----

const PBTC: crate::AssetId = crate::AssetId(1);

/// Three witnesses, six SONs, two users; `PBTC` issued by the SON consensus authority, with
/// 1 000 held by user 0 at genesis.
fn with_pbtc() -> TestNetwork {
    let b = TestNetwork::builder().witnesses(3).sons(6).users(2);
    let (_, _, _, users) = b.genesis();
    b.asset(crate::Asset {
        id: PBTC,
        symbol: "PBTC".into(),
        precision: 8,
        issuer: AccountId::SON_CONSENSUS,
        max_supply: 21_000_000 * 100_000_000,
        supply: 0,
    })
    .balance(users[0].account, PBTC, 1_000)
    .build(registry())
}

/// The supply invariant: every asset's supply is the sum of its balances.
fn assert_supply_matches(st: &State) {
    for (id, asset) in st.assets().iter() {
        let held: u64 = st.balances().iter().filter(|((_, a), _)| a == id).map(|(_, v)| *v).sum();
        assert_eq!(asset.supply, held, "supply of {id}");
    }
}

#[test]
fn transfers_move_balances_and_an_overdraft_is_a_typed_error_leaving_state_unchanged() {
    use crate::chain::ops::AssetTransfer;
    let mut net = with_pbtc();
    let (a, b) = (net.users[0].clone(), net.users[1].clone());
    assert_eq!(net.ledger.state().asset(PBTC).expect("asset").supply, 1_000, "from genesis");
    let t = AssetTransfer { from: a.account, to: b.account, asset: PBTC, amount: 400 };
    {
        let tx = net.sign(&a, t);
        apply_one(&mut net, tx)
    }
    .expect("transfer");
    let st = net.ledger.state();
    assert_eq!((st.balance(a.account, PBTC), st.balance(b.account, PBTC)), (600, 400));
    assert_supply_matches(st);

    let before = net.ledger.state_hash();
    let over = AssetTransfer { from: b.account, to: a.account, asset: PBTC, amount: 401 };
    let e = {
        let tx = net.sign(&b, over);
        refused(&mut net, tx)
    };
    assert!(
        matches!(
            op_error(&e),
            OperationError::InsufficientBalance { balance: 400, amount: 401, .. }
        ),
        "{e}"
    );
    assert_eq!(net.ledger.state_hash(), before, "state unchanged");
    // Someone else's funds need their signature.
    let theft = AssetTransfer { from: a.account, to: b.account, asset: PBTC, amount: 1 };
    let e = {
        let tx = net.sign(&b, theft);
        refused(&mut net, tx)
    };
    assert!(matches!(e, LedgerError::MissingAuthority { .. }), "{e}");
    let zero = AssetTransfer { from: a.account, to: b.account, asset: PBTC, amount: 0 };
    assert!(matches!(
        op_error(&{
            let tx = net.sign(&a, zero);
            refused(&mut net, tx)
        }),
        OperationError::ZeroAmount
    ));
    let unknown =
        AssetTransfer { from: a.account, to: b.account, asset: crate::AssetId(9), amount: 1 };
    let e = {
        let tx = net.sign(&a, unknown);
        refused(&mut net, tx)
    };
    assert!(matches!(op_error(&e), OperationError::UnknownAsset(_)), "{e}");
    assert_eq!(net.ledger.state_hash(), before);
}

#[test]
fn the_son_consensus_issues_through_a_proposal_and_the_holder_reserves() {
    use crate::chain::ops::{AssetIssue, AssetReserve};
    let mut net = with_pbtc();
    let user = net.users[1].clone();
    let issue =
        AssetIssue { issuer: AccountId::SON_CONSENSUS, asset: PBTC, to: user.account, amount: 50 };
    // Signed directly by a user, the consensus authority is missing.
    let e = {
        let tx = net.sign(&user, issue.clone());
        refused(&mut net, tx)
    };
    assert!(matches!(e, LedgerError::MissingAuthority { .. }), "{e}");
    // Naming another issuer is refused by the operation.
    let w = net.witnesses[0].clone();
    let forged = AssetIssue { issuer: w.account, ..issue.clone() };
    let e = {
        let tx = net.sign(&w, forged);
        refused(&mut net, tx)
    };
    assert!(matches!(op_error(&e), OperationError::NotIssuer { .. }), "{e}");
    // Proposed by a witness, approved by the SONs.
    let id = propose(&mut net, &w, issue, 600);
    for son in net.sons.clone().iter().take(5) {
        let _ = {
            let tx = net.sign(son, ProposalUpdate::approve(id, son.account));
            apply_one(&mut net, tx)
        };
    }
    let st = net.ledger.state();
    assert_eq!(st.balance(user.account, PBTC), 50);
    assert_eq!(st.asset(PBTC).expect("asset").supply, 1_050);
    assert_supply_matches(st);

    let burn = AssetReserve { payer: user.account, asset: PBTC, amount: 20 };
    {
        let tx = net.sign(&user, burn);
        apply_one(&mut net, tx)
    }
    .expect("reserve");
    let st = net.ledger.state();
    assert_eq!((st.balance(user.account, PBTC), st.asset(PBTC).expect("a").supply), (30, 1_030));
    assert_supply_matches(st);
    let before = net.ledger.state_hash();
    let too_much = AssetReserve { payer: user.account, asset: PBTC, amount: 31 };
    let e = {
        let tx = net.sign(&user, too_much);
        refused(&mut net, tx)
    };
    assert!(matches!(op_error(&e), OperationError::InsufficientBalance { .. }), "{e}");
    assert_eq!(net.ledger.state_hash(), before);
    // Popping the blocks undoes balances and supply exactly.
    net.ledger.pop_block().expect("pop the reserve");
    assert_eq!(net.ledger.state().asset(PBTC).expect("a").supply, 1_050);
    assert_supply_matches(net.ledger.state());
}

#[test]
fn issuing_past_the_maximum_supply_is_refused() {
    let mut net = with_pbtc();
    let user = net.users[0].account;
    let max = net.ledger.state().asset(PBTC).expect("a").max_supply;
    net.ledger.apply_with_for_tests(|ctx| {
        let e = ctx.issue(PBTC, user, max).expect_err("1 000 exist already");
        assert!(matches!(e, OperationError::AmountOverflow { .. }), "{e}");
        ctx.issue(PBTC, user, max - 1_000).expect("exactly the maximum");
        let e = ctx.issue(PBTC, user, 1).expect_err("past the maximum");
        assert!(matches!(e, OperationError::AmountOverflow { .. }), "{e}");
        // The context itself refuses overdrafts, whatever an operation's check did.
        let other = AccountId(1);
        let e = ctx.transfer(other, user, PBTC, 1).expect_err("holds nothing");
        assert!(matches!(e, OperationError::InsufficientBalance { balance: 0, .. }), "{e}");
        let e = ctx.reserve(PBTC, other, 1).expect_err("holds nothing");
        assert!(matches!(e, OperationError::InsufficientBalance { .. }), "{e}");
    });
    assert_eq!(net.ledger.state().asset(PBTC).expect("a").supply, max);
    assert_supply_matches(net.ledger.state());
}

/// Issuing to an account that does not exist is refused, as a transfer to it is: nothing is
/// credited and the supply does not grow (money issued to nobody could never be spent, and
/// the supply would count it for ever).
#[test]
fn issuing_to_an_account_that_does_not_exist_is_refused() {
    let mut net = with_pbtc();
    let user = net.users[0].account;
    let nobody = AccountId(9_999);
    assert!(net.ledger.state().account(nobody).is_none());
    let supply = net.ledger.state().asset(PBTC).expect("a").supply;
    net.ledger.apply_with_for_tests(|ctx| {
        let e = ctx.issue(PBTC, nobody, 5).expect_err("no such account");
        assert!(matches!(e, OperationError::UnknownAccount(a) if a == nobody), "{e}");
        let e = ctx.transfer(user, nobody, PBTC, 5).expect_err("no such account");
        assert!(matches!(e, OperationError::UnknownAccount(a) if a == nobody), "{e}");
    });
    let st = net.ledger.state();
    assert_eq!((st.balance(nobody, PBTC), st.asset(PBTC).expect("a").supply), (0, supply));
    assert!(st.balance(user, PBTC) > 0, "the transfer was refused for its recipient alone");
    assert_supply_matches(net.ledger.state());
}

#[test]
fn a_genesis_with_inconsistent_assets_is_refused_naming_the_problem() {
    let (mut g, ..) = TestNetwork::builder().witnesses(3).sons(6).users(1).genesis();
    let asset = crate::Asset {
        id: PBTC,
        symbol: "PBTC".into(),
        precision: 8,
        issuer: AccountId::SON_CONSENSUS,
        max_supply: 10,
        supply: 0,
    };
    g.assets = vec![asset.clone()];
    let user = g.accounts.last().expect("an account").id;
    g.balances = vec![(user, PBTC, 11)];
    let e = Ledger::new(&g, registry().chain()).expect_err("over max");
    assert!(e.to_string().contains("max_supply"), "{e}");
    g.balances = vec![(user, crate::AssetId(5), 1)];
    let e = Ledger::new(&g, registry().chain()).expect_err("unknown asset");
    assert!(e.to_string().contains("unknown asset"), "{e}");
    g.balances = vec![];
    g.assets = vec![asset.clone(), asset];
    let e = Ledger::new(&g, registry().chain()).expect_err("twice");
    assert!(e.to_string().contains("appears twice"), "{e}");
}

#[test]
fn an_unknown_or_invalid_plugin_parameter_at_genesis_is_refused_by_name() {
    let (mut g, ..) = TestNetwork::builder().witnesses(3).sons(6).genesis();
    g.plugin_params.insert("nobody.declares_this".into(), serde_json::json!(1));
    let e = Ledger::new(&g, registry().chain()).expect_err("unknown");
    assert!(e.to_string().contains("nobody.declares_this"), "{e}");
}

/// A parameter naming an account is judged on the genesis state: a genesis naming an account
/// that does not exist is refused, naming the parameter and the account; its default too.
#[test]
fn a_parameter_naming_an_account_is_checked_against_the_genesis() {
    use crate::chain::schema::{ParamDecl, Parameter};
    struct Treasury;
    impl Parameter for Treasury {
        const NAME: &'static str = "test.treasury";
        const DESCRIPTION: &'static str = "the account fees go to";
        type Value = AccountId;
        fn default_value() -> AccountId {
            AccountId(9_999)
        }
        fn validate_at_genesis(
            v: &AccountId,
            genesis: &dyn crate::GenesisView,
        ) -> Result<(), String> {
            match genesis.has_account(*v) {
                true => Ok(()),
                false => Err(format!("account {v} does not exist at genesis")),
            }
        }
    }
    const PLUGIN: crate::registry::Plugin = crate::registry::Plugin {
        params: &[ParamDecl::of::<Treasury>()],
        ..crate::registry::Plugin::new("test")
    };
    let reg = Registry::builder().with(&PLUGIN).build().expect("registry").into_arc();
    let (mut g, ..) = TestNetwork::builder().witnesses(3).sons(6).users(1).genesis();
    let user = g.accounts.last().expect("a user").id;
    let e = Ledger::new(&g, reg.chain()).expect_err("the default names nobody");
    assert_eq!(
        e.to_string(),
        "invalid genesis: invalid parameter `test.treasury`: account 1.2.9999 does not exist at genesis"
    );
    g.plugin_params.insert("test.treasury".into(), serde_json::json!(AccountId(7_777)));
    let e = Ledger::new(&g, reg.chain()).expect_err("nobody");
    assert!(e.to_string().contains("account 1.2.7777 does not exist"), "{e}");
    g.plugin_params.insert("test.treasury".into(), serde_json::to_value(user).expect("json"));
    let ledger = Ledger::new(&g, reg.chain()).expect("an account that exists");
    assert_eq!(ledger.state().param::<Treasury>(), user);
}

#[test]
fn the_son_on_duty_rotates_over_the_live_elected_sons_by_height() {
    let mut net = small();
    let st = net.ledger.state();
    let duty: Vec<_> = (10..16).map(|h| st.son_on_duty(h).expect("someone")).collect();
    let distinct: std::collections::BTreeSet<_> = duty.iter().collect();
    assert_eq!(distinct.len(), 6, "six consecutive heights, six different SONs: {duty:?}");
    // SON 2 falls silent: once it is no longer live it is never on duty.
    net.set_son_up(2, false);
    let down_time = net.ledger.state().params().son_down_time;
    while net.now() < net.genesis.genesis_time.plus(down_time + 200) {
        for i in [0, 1, 3, 4, 5] {
            net.submit(net.heartbeat(i));
        }
        for _ in 0..30 {
            net.produce_block();
        }
    }
    let st = net.ledger.state();
    assert!(!st.is_live(st.son(SonId(2)).expect("son")));
    let duty: Vec<_> = (0..20).filter_map(|h| st.son_on_duty(h)).collect();
    assert_eq!(duty.len(), 20);
    assert!(!duty.contains(&SonId(2)), "{duty:?}");
}

#[test]
fn at_maintenance_the_standby_son_with_most_votes_takes_a_freed_seat() {
    let params = ChainParameters {
        maintenance_interval: 60,
        maximum_son_count: 6,
        ..ChainParameters::default()
    };
    let mut net = TestNetwork::builder()
        .witnesses(3)
        .sons(6)
        .standby_sons(2)
        .son_votes(vec![10, 10, 10, 10, 10, 10, 5, 9])
        .params(params)
        .build(registry());
    let first = net.ledger.state().globals().next_maintenance_time;
    assert_eq!(first, net.genesis.genesis_time.plus(60));
    // The elected have more votes than the standbys: the first maintenance re-elects them.
    while net.now() < first {
        net.produce_block();
    }
    assert_eq!(net.ledger.state().globals().elected_sons.len(), 6);
    assert_eq!(net.ledger.state().globals().next_maintenance_time, first.plus(60));
    // SON 2 leaves the set (as a deregistration does).
    net.ledger.apply_with_for_tests(|ctx| {
        let mut s = ctx.son(SonId(2)).cloned().expect("son");
        s.status = SonStatus::Deregistered;
        ctx.put_son(s).expect("put");
        ctx.set_elected(SonId(2), false);
    });
    let mut elected_events = Vec::new();
    while net.now() < first.plus(60) {
        let (o, _) = net.produce_block();
        elected_events.extend(o.events.into_iter().filter_map(|e| match e {
            LedgerEvent::SonElected { son } => Some(son),
            _ => None,
        }));
    }
    let st = net.ledger.state();
    assert_eq!(elected_events, vec![SonId(7)], "most votes first");
    assert!(st.is_elected(SonId(7)) && !st.is_elected(SonId(6)) && !st.is_elected(SonId(2)));
    assert_eq!(st.son(SonId(7)).expect("son").status, SonStatus::Active);
    assert_eq!(st.son(SonId(6)).expect("son").status, SonStatus::Inactive, "no second seat");
    assert_eq!(st.globals().elected_sons.len(), 6);
}

// ----- operation crates' code that panics -----

/// An operation whose code panics at a chosen place: 0 in `check`, 1 in `apply`, 2 in
/// `required_authorities`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Bomb {
    at: u8,
    account: AccountId,
}

#[typetag::serde(name = "test_bomb")]
impl Operation for Bomb {
    fn kind(&self) -> &'static str {
        "test_bomb"
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        assert!(self.at != 2, "bomb in required_authorities");
        vec![self.account]
    }
    fn check(&self, _: &State) -> Result<(), OperationError> {
        assert!(self.at != 0, "bomb in check");
        Ok(())
    }
    fn apply(&self, ctx: &mut crate::ApplyContext<'_>) -> Result<(), OperationError> {
        // A write first, so a rollback has something to undo.
        let now = ctx.now();
        ctx.create_vesting(self.account, 1, "bomb".into(), now);
        assert!(self.at != 1, "bomb in apply");
        Ok(())
    }
}

fn with_bomb() -> TestNetwork {
    let bomb = crate::OperationDescriptor {
        name: "test_bomb",
        description: "test: panics",
        proposal: Some(crate::ProposalPolicy {
            son_record: false,
            eligible: crate::Eligibility::WitnessOrSon,
            lifetime: |_| 3600,
            readiness: None,
        }),
        example: || Box::new(Bomb { at: 9, account: AccountId(1) }),
    };
    let reg = Registry::builder().with(&probe::PLUGIN).operation(bomb).build().expect("unique");
    TestNetwork::builder().witnesses(3).sons(6).users(1).build(reg.into_arc())
}

#[test]
fn a_panicking_operation_is_refused_with_a_typed_error_and_the_state_is_unchanged() {
    let mut net = with_bomb();
    let user = net.users[0].clone();
    for at in [0, 1, 2] {
        let tx = net.sign(&user, Bomb { at, account: user.account });
        let before = net.ledger.state_hash();
        let e = refused(&mut net, tx.clone());
        assert!(
            matches!(&e, LedgerError::Panicked { message } if message.starts_with("bomb in")),
            "{e}"
        );
        assert_eq!(net.ledger.state_hash(), before, "a refused block changes nothing");
        // A producer leaves it out and goes on.
        let e = apply_one(&mut net, tx).expect_err("left out");
        assert!(matches!(e, LedgerError::Panicked { .. }), "{e}");
        assert!(
            net.ledger.state().vesting_balances().is_empty(),
            "the write before the panic is undone"
        );
    }
    let hb = net.heartbeat(0);
    apply_one(&mut net, hb).expect("the chain goes on");
}

#[test]
fn a_proposal_whose_operation_panics_at_execution_fails_and_the_chain_goes_on() {
    let mut net = with_bomb();
    let (w, user) = (net.witnesses[0].clone(), net.users[0].clone());
    let id = propose(&mut net, &w, Bomb { at: 1, account: user.account }, 60);
    let tx = net.sign(&user, ProposalUpdate::approve(id, user.account));
    let outcome = apply_one(&mut net, tx).expect("the approval itself stands");
    let failed = outcome.events.iter().find_map(|e| match e {
        LedgerEvent::ProposalExecutionFailed { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(failed.as_deref().is_some_and(|r| r.contains("panicked: bomb in apply")), "{failed:?}");
    assert!(net.ledger.state().proposal(id).is_some(), "kept, tried again at expiry");
    assert!(net.ledger.state().vesting_balances().is_empty());
    // At expiry it is tried once more, fails again, and is removed.
    let mut removed = false;
    for _ in 0..30 {
        let (o, _) = net.produce_block();
        removed |= o.events.iter().any(|e| matches!(e, LedgerEvent::ProposalFailed { .. }));
    }
    assert!(removed && net.ledger.state().proposal(id).is_none());
}

// ----- far-future blocks -----

/// An empty block at the slot at or before `at`, by its scheduled producer.
fn block_at(net: &TestNetwork, at: u64) -> Block {
    let st = net.ledger.state();
    let g = st.globals().genesis_time.secs();
    let iv = st.params().block_interval;
    let t = crate::Timestamp(g + (at - g) / iv * iv);
    net.block(
        st.head_height() + 1,
        t,
        st.globals().head_id,
        st.scheduled_producer(t).expect("a slot"),
        Vec::new(),
    )
}

#[test]
fn a_block_past_the_last_block_time_is_refused_so_the_chain_cannot_halt() {
    let mut net = small();
    let before = net.ledger.state_hash();
    let last = crate::Timestamp::LAST_BLOCK_TIME.secs();
    let too_late = block_at(&net, last + 10);
    assert!(too_late.timestamp > crate::Timestamp::LAST_BLOCK_TIME);
    let e = net.ledger.apply_block(&too_late).expect_err("past the last block time");
    assert!(matches!(e, LedgerError::BadTimestamp { .. }), "{e}");
    assert_eq!(net.ledger.state_hash(), before);
    // The last slot itself is a block like any other, and what the chain adds to its time
    // (expirations, lifetimes) stays far from the end of `u64`.
    let at_end = block_at(&net, last);
    net.ledger.apply_block(&at_end).expect("the last slot is a slot");
    let horizon =
        net.ledger.state().head_time().plus(net.ledger.state().params().maximum_proposal_lifetime);
    assert!(horizon.secs() < u64::MAX / 2);
}

#[test]
fn the_node_layer_refuses_a_block_far_ahead_of_its_clock_that_the_ledger_would_accept() {
    use crate::node::clock::{check_not_ahead, DEFAULT_MAX_AHEAD};
    let net = small();
    let now = net.ledger.state().next_slot_time();
    let year_3000 = block_at(&net, 32_503_680_000);
    let e = check_not_ahead(&year_3000, now, DEFAULT_MAX_AHEAD).expect_err("far ahead");
    assert_eq!(e.timestamp, year_3000.timestamp);
    assert!(e.to_string().contains("after this node's clock"), "{e}");
    let next = block_at(&net, now.secs());
    check_not_ahead(&next, now, DEFAULT_MAX_AHEAD).expect("the next slot is fine");
    // The ledger alone accepts it: its rules cannot read a clock.
    let mut ledger_only = small();
    ledger_only.ledger.apply_block(&year_3000).expect("a valid slot on chain");
}

// ----- bounds -----

#[test]
fn the_size_counted_while_hashing_is_the_length_of_the_encoding() {
    let net = small();
    let w = net.witnesses[0].clone();
    let chain = net.ledger.state().chain_id();
    let many: Vec<Box<dyn Operation>> = (0..7)
        .map(|i| Box::new(PlainProbe { account: w.account, amount: i, fail_after: None }) as _)
        .collect();
    let mut two_sigs = net.heartbeat(2);
    two_sigs.signatures.push(net.sons[3].keys.sign(&two_sigs.transaction.digest(&chain)));
    for tx in [net.heartbeat(1), create_tx(&net, &w, many, 60), two_sigs] {
        let (digest, len) = tx.transaction.digest_and_len(&chain);
        assert_eq!(digest, tx.transaction.digest(&chain));
        let encoded = crate::chain::canon::to_vec(&tx).expect("encodes").len() as u64;
        assert_eq!(tx.encoded_len(len), encoded);
    }
}

#[test]
fn transactions_and_blocks_over_their_size_limits_are_refused_and_left_out() {
    let params = ChainParameters {
        maximum_transaction_size: 512,
        maximum_block_size: 512,
        ..ChainParameters::default()
    };
    let mut net = small_with(params);
    let beats: Vec<_> = (0..6).map(|i| net.heartbeat(i)).collect();
    let one = crate::chain::canon::to_vec(&beats[0]).expect("encodes").len() as u64;
    assert!(one < 512 && 3 * one > 512, "a heartbeat is {one} bytes");
    // All six in one block: too large for a replica to accept.
    let before = net.ledger.state_hash();
    let e = apply_block_with(&mut net, beats.clone()).expect_err("too large");
    assert!(matches!(e, LedgerError::BlockTooLarge { max: 512, .. }), "{e}");
    assert_eq!(net.ledger.state_hash(), before);
    // A producer includes what fits and leaves out the rest, for later blocks.
    for tx in beats {
        net.submit(tx);
    }
    let (outcome, rejected) = net.produce_block();
    assert_eq!(outcome.transactions as u64, 512 / one);
    assert!(rejected.iter().all(|r| matches!(r.error, LedgerError::BlockTooLarge { .. })));
    assert_eq!(outcome.transactions + rejected.len(), 6);
    // A transaction over the per-transaction limit never fits.
    let w = net.witnesses[0].clone();
    let ops: Vec<Box<dyn Operation>> = (0..30)
        .map(|i| {
            Box::new(PlainProbe { account: w.account, amount: i, fail_after: None })
                as Box<dyn Operation>
        })
        .collect();
    let big = create_tx(&net, &w, ops, 60);
    assert!(crate::chain::canon::to_vec(&big).expect("encodes").len() > 512);
    let e = net.ledger.check_transaction(&big).expect_err("too large");
    assert!(matches!(e, LedgerError::TransactionTooLarge { max: 512, .. }), "{e}");
}

// ----- as strict as Graphene -----

#[test]
fn unknown_fields_in_the_envelope_and_irrelevant_signatures_are_refused() {
    let mut net = small();
    let hb = net.heartbeat(1);
    let json = serde_json::to_string(&hb).expect("json");
    let extra = json.replacen("{\"transaction\":", "{\"memo\":\"hi\",\"transaction\":", 1);
    assert_ne!(extra, json);
    assert!(SignedTransaction::from_json(&extra).is_err(), "unknown envelope field");
    let inner = json.replacen("\"expiration\":", "\"colour\":1,\"expiration\":", 1);
    assert!(SignedTransaction::from_json(&inner).is_err(), "unknown transaction field");
    let block =
        net.block(1, net.now(), net.ledger.state().globals().head_id, crate::WitnessId(0), vec![]);
    let bj = serde_json::to_string(&block).expect("json").replacen('{', "{\"extra\":0,", 1);
    assert!(serde_json::from_str::<Block>(&bj).is_err(), "unknown block field");

    // The owner's signature plus one by a key no required authority counts.
    let stranger = crate::KeyPair::from_seed("stranger");
    let mut tx = hb.transaction.clone().sign(&net.ledger.state().chain_id(), &[&net.sons[1].keys]);
    tx.signatures.push(stranger.sign(&tx.transaction.digest(&net.ledger.state().chain_id())));
    let before = net.ledger.state_hash();
    let e = refused(&mut net, tx);
    assert!(
        matches!(e, LedgerError::IrrelevantSignature { key } if key == stranger.public()),
        "{e}"
    );
    assert_eq!(net.ledger.state_hash(), before);
    // Another SON's key does not count for this SON's heartbeat either.
    let mut tx = hb.transaction.clone().sign(&net.ledger.state().chain_id(), &[&net.sons[1].keys]);
    tx.signatures
        .push(net.sons[2].keys.sign(&tx.transaction.digest(&net.ledger.state().chain_id())));
    assert!(matches!(refused(&mut net, tx), LedgerError::IrrelevantSignature { .. }));
    apply_one(&mut net, hb).expect("the heartbeat alone is fine");
}

// ----- guards -----

/// Defers account probes about `held` from 60 s after genesis on.
fn hold_after_a_minute(state: &State, subject: &Subject) -> Option<String> {
    let from = state.globals().genesis_time.plus(60);
    (*subject == Subject::Named("held".into()) && state.head_time() >= from)
        .then(|| "held for review".to_owned())
}

#[test]
fn a_guard_that_starts_deferring_after_creation_stops_the_execution() {
    let guard =
        crate::Guard { name: "reviewer", kind: probe::ACCOUNT_PROBE, defer: hold_after_a_minute };
    let reg = Registry::builder().with(&probe::PLUGIN).guard(guard).build().expect("unique");
    let mut net = TestNetwork::builder().witnesses(3).sons(6).users(1).build(reg.into_arc());
    let (w, user) = (net.witnesses[0].clone(), net.users[0].clone());
    let probe_about = |subject: &str| AccountProbe {
        account: user.account,
        subject: subject.into(),
        amount: 5,
        fail_after: None,
    };
    // Created while the guard lets it through.
    let id = propose(&mut net, &w, probe_about("held"), 600);
    while net.now() < net.genesis.genesis_time.plus(60) {
        net.produce_block();
    }
    // The live one does not execute when approved: the guard is asked again.
    let tx = net.sign(&user, ProposalUpdate::approve(id, user.account));
    let outcome = apply_one(&mut net, tx).expect("the approval stands");
    let reason = outcome.events.iter().find_map(|e| match e {
        LedgerEvent::ProposalExecutionFailed { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(reason.as_deref().is_some_and(|r| r.contains("reviewer")), "{reason:?}");
    assert!(net.ledger.state().vesting_balances().is_empty(), "nothing executed");
    // Other subjects are not guarded.
    propose(&mut net, &w, probe_about("free"), 600);
}

// ----- signatures checked ahead, across cores -----

fn with_standby(n: usize) -> TestNetwork {
    TestNetwork::builder().witnesses(3).sons(6).standby_sons(n).build(registry())
}

/// A block large enough to be pre-checked across cores is applied exactly as one checked in
/// order: a forged signature is refused at its own index (with the state unchanged), and a good
/// block gives the producer's state on a replica.
#[test]
fn a_block_checked_across_cores_applies_as_one_checked_in_order() {
    let n = crate::chain::verify::PARALLEL_FROM * 2 + 8;
    let mut producer = with_standby(n);
    let mut replica = with_standby(n);
    let txs: Vec<_> = (6..6 + n).map(|i| producer.heartbeat(i)).collect();
    let mut forged = txs.clone();
    let key = forged[23].signatures[0].key;
    forged[23].signatures[0] = producer.sons[7].keys.sign(&Digest::of(b"other bytes"));
    forged[23].signatures[0].key = key;
    let e = apply_block_with(&mut replica, forged).expect_err("a forged signature");
    assert!(
        matches!(&e, LedgerError::InBlock { index: 23, source, .. }
            if matches!(**source, LedgerError::InvalidSignature { key: k } if k == key)),
        "{e:?}"
    );
    let t = producer.ledger.state().next_slot_time();
    let keys = producer.producer_keys(t).clone();
    let (block, _, rejected) = producer.ledger.produce_block(t, txs, &keys).expect("produce");
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(block.transactions.len(), n);
    replica.ledger.apply_block(&block).expect("the replica applies it");
    assert_eq!(producer.ledger.state_hash(), replica.ledger.state_hash());
}

/// A transaction checked on entry to the mempool is remembered with its exact signatures: the
/// same transaction with other signature bytes is verified afresh, and refused when they are
/// forged.
#[test]
fn a_remembered_transaction_does_not_vouch_for_other_signatures() {
    let mut net = small();
    let good = net.heartbeat(1);
    net.ledger.check_transaction(&good).expect("a good heartbeat");
    assert_eq!(net.ledger.verified_transactions(), 1);
    let mut forged = good.clone();
    let key = forged.signatures[0].key;
    forged.signatures[0] = net.sons[1].keys.sign(&Digest::of(b"other bytes"));
    forged.signatures[0].key = key;
    let e = apply_block_with(&mut net, vec![forged]).expect_err("forged");
    assert!(
        matches!(&e, LedgerError::InBlock { index: 0, source, .. }
            if matches!(**source, LedgerError::InvalidSignature { .. })),
        "{e:?}"
    );
    apply_block_with(&mut net, vec![good]).expect("the remembered one applies");
}

/// The index validators review from lists exactly the live single-operation proposals of each
/// kind: a proposal appears when created, goes when it executes, and is restored by pop_block.
#[test]
fn single_operation_proposals_are_indexed_by_kind_while_live() {
    let mut net = small();
    let w = net.witnesses[0].clone();
    let listed = |net: &TestNetwork| -> Vec<ProposalId> {
        net.ledger.state().single_kind_proposals(probe::SON_PROBE).collect()
    };
    let id = propose(&mut net, &w, son_probe(1), 600);
    let plain = || probe::PlainProbe { account: net.users[0].account, amount: 1, fail_after: None };
    let pair = create_tx(&net, &w, vec![Box::new(plain()), Box::new(plain())], 600);
    apply_one(&mut net, pair).expect("a two-operation proposal");
    assert_eq!(listed(&net), vec![id], "only the single-operation one");
    let plain_listed: Vec<_> =
        net.ledger.state().single_kind_proposals(probe::PLAIN_PROBE).collect();
    assert!(plain_listed.is_empty(), "a two-operation proposal is nobody's to review alone");
    let executed = approve_by_sons(&mut net, id, 0..5);
    assert!(has_event(&executed, &LedgerEvent::ProposalExecuted { proposal: id }));
    assert!(listed(&net).is_empty(), "gone once executed");
    net.ledger.pop_block().expect("pop");
    assert_eq!(listed(&net), vec![id], "back with the block undone");
}

/// The ledger's state hash reuses the encodings of unchanged tables; it must equal the hash
/// computed from scratch after every block, after a proposal's life, and after pop_block.
#[test]
fn the_cached_state_hash_equals_the_hash_from_scratch() {
    let mut net = small();
    let w = net.witnesses[0].clone();
    let check = |net: &TestNetwork, when: &str| {
        assert_eq!(net.ledger.state_hash(), net.ledger.state().hash(), "{when}");
    };
    for i in 0..30 {
        if i % 4 == 0 {
            net.submit(net.heartbeat(i % 6));
        }
        net.produce_block();
        check(&net, &format!("block {i}"));
    }
    let id = propose(&mut net, &w, son_probe(2), 600);
    check(&net, "proposed");
    approve_by_sons(&mut net, id, 0..5);
    check(&net, "executed");
    for i in 0..5 {
        net.ledger.pop_block().expect("pop");
        check(&net, &format!("popped {i}"));
    }
}

// ----- boundaries that whole blocks would hide -----

/// Past genesis (where another check refuses first), a block stamped at the head's own time —
/// a second block in the head's slot — is refused, and so is one before it; the next slot is
/// accepted.
#[test]
fn a_second_block_in_the_heads_own_slot_is_refused_past_genesis() {
    let mut net = small();
    for _ in 0..5 {
        net.produce_block();
    }
    let head = net.ledger.state().head_time();
    let at = |net: &TestNetwork, t: crate::Timestamp| {
        let st = net.ledger.state();
        let producer = st.scheduled_producer(t).expect("a slot");
        net.block(st.head_height() + 1, t, st.globals().head_id, producer, Vec::new())
    };
    let before = net.ledger.state_hash();
    for t in [head, head.minus(3)] {
        let block = at(&net, t);
        let e = net.ledger.apply_block(&block).expect_err("not after the head");
        assert!(matches!(e, LedgerError::BadTimestamp { .. }), "{e}");
    }
    assert_eq!(net.ledger.state_hash(), before);
    let next = at(&net, head.plus(3));
    net.ledger.apply_block(&next).expect("the next slot");
}

/// The size limit counts the canonical encoding: a transaction of exactly
/// `maximum_transaction_size` bytes is accepted, one byte over is refused.
#[test]
fn a_transaction_of_exactly_the_size_limit_passes_and_one_byte_over_does_not() {
    // The limit is a chain parameter, so the chain id (and with it the signature, whose DER
    // length varies by a byte) depends on it: find a limit equal to the size it yields.
    let build = |max: u64| {
        let params =
            ChainParameters { maximum_transaction_size: max, ..ChainParameters::default() };
        let net = small_with(params);
        let w = net.witnesses[0].clone();
        let ops: Vec<Box<dyn Operation>> = (0..4)
            .map(|i| Box::new(PlainProbe { account: w.account, amount: i, fail_after: None }) as _)
            .collect();
        let tx = create_tx(&net, &w, ops, 60);
        let size = crate::chain::canon::to_vec(&tx).expect("encodes").len() as u64;
        (net, tx, size)
    };
    let (_, _, size) = build(65_536);
    // A limit equal to the transaction it yields.
    let limit = |net: &TestNetwork| net.ledger.state().params().maximum_transaction_size;
    let exact = (size - 20..size + 20).map(build).find(|(net, _, s)| *s == limit(net));
    let (mut net, tx, size) = exact.expect("a limit equal to its transaction");
    net.ledger.check_transaction(&tx).expect("exactly the limit");
    // On that chain, the same transaction expiring a little later is signed over another
    // digest; some such signature is a byte longer in DER.
    let w = net.witnesses[0].clone();
    let longer = (61..200).find_map(|lifetime| {
        let ops: Vec<Box<dyn Operation>> = (0..4)
            .map(|i| Box::new(PlainProbe { account: w.account, amount: i, fail_after: None }) as _)
            .collect();
        let tx = create_tx(&net, &w, ops, lifetime);
        let s = crate::chain::canon::to_vec(&tx).expect("encodes").len() as u64;
        (s == size + 1).then_some(tx)
    });
    let e = net.ledger.check_transaction(&longer.expect("a byte longer")).expect_err("over");
    assert!(matches!(e, LedgerError::TransactionTooLarge { size: s, max: m } if s == m + 1), "{e}");
}

/// A SON silent for exactly `son_down_time` no longer counts as live; one second less, it does
/// (a heartbeat stamped off the 3-second block grid gives that second).
#[test]
fn a_son_silent_for_exactly_son_down_time_is_no_longer_live() {
    let mut net = small();
    net.produce_block();
    let st = net.ledger.state();
    let slot = st.next_slot_time();
    // SON 1 beats at the slot, SON 2 one second after it (within the heartbeat window).
    for (i, t) in [(1, slot), (2, slot.plus(1))] {
        let n = net.sons[i].clone();
        let op = SonHeartbeat { son: n.son.expect("son"), owner: n.account, timestamp: t };
        net.submit(net.sign(&n, op));
    }
    let (_, rejected) = net.produce_block();
    assert!(rejected.is_empty(), "{rejected:?}");
    let down_time = net.ledger.state().params().son_down_time;
    while net.now() < slot.plus(down_time) {
        net.produce_block();
    }
    let st = net.ledger.state();
    assert_eq!(st.head_time(), slot.plus(down_time));
    let son = |i: u64| st.son(SonId(i)).expect("son");
    assert!(!st.is_live(son(1)), "silent exactly son_down_time");
    assert!(st.is_live(son(2)), "silent son_down_time - 1 s");
}

/// The node's clock bound: a block stamped 15 s after the node's clock is taken, 16 s is not.
#[test]
fn the_clock_bound_admits_fifteen_seconds_ahead_and_not_sixteen() {
    use crate::node::clock::{check_not_ahead, DEFAULT_MAX_AHEAD};
    let net = small();
    let block = block_at(&net, net.ledger.state().next_slot_time().secs());
    let t = block.timestamp;
    assert_eq!(DEFAULT_MAX_AHEAD, 15);
    check_not_ahead(&block, t.minus(15), DEFAULT_MAX_AHEAD).expect("15 s ahead");
    let e = check_not_ahead(&block, t.minus(16), DEFAULT_MAX_AHEAD).expect_err("16 s ahead");
    assert_eq!((e.timestamp, e.now, e.max_ahead), (t, t.minus(16), 15));
}
