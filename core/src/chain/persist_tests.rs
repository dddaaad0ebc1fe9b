//! A ledger on a store: restart, crash, fork switch, and refusal of bad stores.

use std::path::PathBuf;

use super::*;
use crate::chain::ops::ProposalCreate;
use crate::chain::store::{MemoryStore, RedbStore};
use crate::chain::tx::{Block, SignedTransaction, Transaction};
use crate::registry::Registry;
use crate::testkit::probe::{self, SonProbe};
use crate::testkit::{NetworkBuilder, TestNetwork};
use crate::NodeIdentity;

fn registry() -> Arc<Registry> {
    Registry::builder().with(&probe::PLUGIN).build().expect("unique").into_arc()
}

fn builder() -> NetworkBuilder {
    TestNetwork::builder().witnesses(3).sons(6)
}

/// A reference network (in memory) that produces the blocks every test replays.
fn reference(blocks: usize) -> (Genesis, Vec<Block>, Vec<crate::Digest>) {
    let mut net = builder().build(registry());
    let mut out = Vec::new();
    let mut hashes = Vec::new();
    for i in 0..blocks {
        let txs = block_txs(&net, i);
        let t = net.ledger.state().next_slot_time();
        let key = net.producer_keys(t).clone();
        let (block, _, rejected) = net.ledger.produce_block(t, txs, &key).expect("produce");
        assert!(
            rejected.is_empty(),
            "{:?}",
            rejected.iter().map(|r| r.error.to_string()).collect::<Vec<_>>()
        );
        out.push(block);
        hashes.push(net.ledger.state_hash());
    }
    (net.genesis, out, hashes)
}

/// Heartbeats, and a probe proposal every 10 blocks, so blocks touch several tables.
fn block_txs(net: &TestNetwork, i: usize) -> Vec<SignedTransaction> {
    let mut txs = vec![net.heartbeat(i % 6)];
    if i % 10 == 3 {
        let w: &NodeIdentity = &net.witnesses[0];
        let st = net.ledger.state();
        let create = ProposalCreate {
            proposer: w.account,
            expiration_time: st.next_slot_time().plus(60),
            review_period_seconds: None,
            operations: vec![Box::new(SonProbe {
                son: crate::SonId((i / 10 % 6) as u64),
                fail_after: None,
                set_status: None,
            })],
        };
        txs.push(Transaction::single(net.now().plus(30), create).sign(&st.chain_id(), &[&w.keys]));
    }
    txs
}

/// The keys of the witness scheduled at `t` (the test networks' witnesses).
fn producer_key(ledger: &Ledger, t: crate::Timestamp) -> crate::KeyPair {
    let w = ledger.state().scheduled_producer(t);
    let witnesses = builder().genesis().1;
    witnesses.into_iter().find(|n| n.witness == w).expect("scheduled").keys
}

fn open(
    genesis: &Genesis,
    store: impl Store + 'static,
    fsync_every: u64,
) -> Result<Ledger, LedgerError> {
    Ledger::open(genesis, registry().chain(), Box::new(store), StoreOptions { fsync_every })
}

#[test]
fn a_restarted_ledger_has_the_same_state_and_can_still_pop() {
    let (genesis, blocks, hashes) = reference(40);
    let store = MemoryStore::new();
    let mut ledger = open(&genesis, store.clone(), 1).expect("new store");
    for b in &blocks[..25] {
        ledger.apply_block(b).expect("apply");
        ledger.commit(vec![]).expect("commit");
    }
    drop(ledger);
    let mut ledger = open(&genesis, store.clone(), 1).expect("reopen");
    assert_eq!(ledger.state_hash(), hashes[24]);
    assert_eq!(ledger.undo_available(), 25, "undo records survive the restart");
    for b in &blocks[25..] {
        ledger.apply_block(b).expect("apply");
        ledger.commit(vec![]).expect("commit");
    }
    assert_eq!(ledger.state_hash(), hashes[39]);
    // Pop after a restart, then reopen again: the pop was written too.
    drop(ledger);
    let mut ledger = open(&genesis, store.clone(), 1).expect("reopen");
    for _ in 0..15 {
        ledger.pop_block().expect("pop");
    }
    assert_eq!(ledger.state_hash(), hashes[24]);
    drop(ledger);
    let ledger = open(&genesis, store, 1).expect("reopen");
    assert_eq!(ledger.state_hash(), hashes[24]);
    assert_eq!(ledger.state().head_height(), 25);
}

#[test]
fn after_a_crash_the_ledger_resumes_from_the_last_durable_block() {
    let (genesis, blocks, hashes) = reference(30);
    let store = MemoryStore::new();
    let mut ledger = open(&genesis, store.clone(), 7).expect("new store");
    for b in &blocks[..24] {
        ledger.apply_block(b).expect("apply");
        ledger.commit(vec![]).expect("commit");
    }
    store.crash();
    drop(ledger);
    let mut ledger = open(&genesis, store, 7).expect("reopen after the crash");
    let head = ledger.state().head_height() as usize;
    assert_eq!(head, 21, "the last durable commit was block 21 (every 7th)");
    assert_eq!(ledger.state_hash(), hashes[head - 1]);
    for b in &blocks[head..] {
        ledger.apply_block(b).expect("re-apply");
        ledger.commit(vec![]).expect("commit");
    }
    assert_eq!(ledger.state_hash(), hashes[29], "the same result as without the crash");
}

#[test]
fn node_local_values_commit_atomically_with_their_block() {
    let (genesis, blocks, _) = reference(6);
    let store = MemoryStore::new();
    let mut ledger = open(&genesis, store.clone(), 3).expect("new store");
    // Fsync every 3 blocks; crash after block 5, between durable points (3 and 6).
    for (i, b) in blocks[..5].iter().enumerate() {
        ledger.apply_block(b).expect("apply");
        ledger
            .commit(vec![("node".into(), Some(format!("after {}", i + 1).into_bytes()))])
            .expect("commit");
    }
    assert_eq!(ledger.local("node"), Some(b"after 5".as_slice()));
    store.crash();
    let ledger = open(&genesis, store, 3).expect("reopen");
    assert_eq!(ledger.state().head_height(), 3, "blocks 4 and 5 were not durable");
    assert_eq!(
        ledger.local("node"),
        Some(b"after 3".as_slice()),
        "the node-local value of the block the chain resumed at, not a later one"
    );
}

/// One write to `table` (a row that genesis does not have, or a changed one).
fn mutate(table: &str, ctx: &mut crate::ApplyContext<'_>) {
    use crate::chain::apply::write;
    use crate::chain::ids::{AccountId, AssetId, ProposalId, SonProposalId, Subject, VestingId};
    use crate::chain::objects::{Asset, SonProposalRecord, VestingBalance};
    let s = ctx.sessions.last_mut().expect("session");
    let st = &mut *ctx.state;
    match table {
        "accounts" => {
            let mut a = st.accounts.iter().next().expect("an account").1.clone();
            a.name = "renamed".into();
            write(&mut st.accounts, &mut s.accounts, a.id, Some(a));
        }
        "witnesses" => {
            let mut w = st.witnesses.iter().next().expect("a witness").1.clone();
            w.signing_key = crate::KeyPair::from_seed("rotated").public();
            write(&mut st.witnesses, &mut s.witnesses, w.id, Some(w));
        }
        "sons" => {
            let mut son = st.sons.iter().next().expect("a son").1.clone();
            son.statistics.txs_signed += 1;
            write(&mut st.sons, &mut s.sons, son.id, Some(son));
        }
        "proposals" => {
            let p = crate::Proposal {
                id: ProposalId(77),
                proposer: AccountId(1),
                operations: vec![Box::new(SonProbe {
                    son: crate::SonId(1),
                    fail_after: None,
                    set_status: None,
                })],
                created_time: st.head_time(),
                expiration_time: st.head_time().plus(600),
                review_period_time: None,
                required_approvals: Default::default(),
                approvals: Default::default(),
                fail_reason: None,
            };
            write(&mut st.proposals, &mut s.proposals, p.id, Some(p));
        }
        "son_proposals" => {
            let r = SonProposalRecord {
                id: SonProposalId(5),
                proposal: ProposalId(77),
                kind: probe::SON_PROBE.into(),
                subject: Subject::Named("x".into()),
            };
            write(&mut st.son_proposals, &mut s.son_proposals, r.id, Some(r));
        }
        "vesting" => {
            let v = VestingBalance {
                id: VestingId(3),
                owner: AccountId(1),
                asset: AssetId(0),
                amount: 5,
                reason: "test".into(),
                cliff: st.head_time(),
            };
            write(&mut st.vesting, &mut s.vesting, v.id, Some(v));
        }
        "transactions" => {
            let exp = st.head_time().plus(30);
            write(&mut st.transactions, &mut s.transactions, crate::Digest([7; 32]), Some(exp));
        }
        "assets" => {
            let a = Asset {
                id: AssetId(9),
                symbol: "TEST".into(),
                precision: 8,
                issuer: AccountId::SON_CONSENSUS,
                max_supply: 100,
                supply: 0,
            };
            write(&mut st.assets, &mut s.assets, a.id, Some(a));
        }
        "balances" => {
            write(&mut st.balances, &mut s.balances, (AccountId(1), AssetId(9)), Some(3));
        }
        "plugin:testkit.probe_amounts" => {
            ctx.put_row::<probe::ProbeAmounts>(&"row".to_owned(), Some(42)).expect("declared");
        }
        other => panic!("no mutation for table `{other}`: add one, so it is tested too"),
    }
}

#[test]
fn every_table_is_hashed_and_comes_back_after_a_restart_table_by_table() {
    let (genesis, blocks, _) = reference(2);
    let tables = {
        let ledger = open(&genesis, MemoryStore::new(), 1).expect("new store");
        ledger.state().table_names()
    };
    assert_eq!(tables.len(), 10, "9 core tables and the probe table: {tables:?}");
    for table in &tables {
        let store = MemoryStore::new();
        let mut ledger = open(&genesis, store.clone(), 1).expect("new store");
        for b in &blocks {
            ledger.apply_block(b).expect("apply");
        }
        let before = ledger.state_hash();
        let dump_before = ledger.state().table_dump(table);
        ledger.apply_with_for_tests(|ctx| mutate(table, ctx));
        assert_ne!(ledger.state_hash(), before, "a change to `{table}` must change the state hash");
        assert_ne!(ledger.state().table_dump(table), dump_before, "{table}: the write happened");
        ledger.commit(vec![]).expect("commit");
        let reopened = open(&genesis, store, 1).expect("reopen");
        assert_eq!(
            reopened.state().table_dump(table),
            ledger.state().table_dump(table),
            "`{table}` comes back after a restart"
        );
        assert_eq!(reopened.state_hash(), ledger.state_hash(), "{table}");
        if table.starts_with("plugin:") {
            // Rows read back are not the empty tables a fresh state starts with.
            assert_ne!(reopened.state().plugin_generation(), 0, "{table}");
        }
    }
}

/// One write to each field the SON lifecycle added (inside rows and the globals).
fn mutate_field(field: &str, ctx: &mut crate::ApplyContext<'_>) {
    use crate::chain::ids::{AssetId, SonId, VestingId};
    use crate::chain::objects::{Election, SonPay, VestingBalance};
    let now = ctx.now();
    let mut son = ctx.son(SonId(1)).cloned().expect("son");
    match field {
        "account.son_votes" => {
            let mut a = ctx.accounts().iter().next().expect("an account").1.clone();
            a.son_votes.insert(SonId(2));
            ctx.put_account(a);
            return;
        }
        "son.url" => son.url = "https://moved".into(),
        "son.next_sidechain_public_keys" => {
            son.next_sidechain_public_keys = Some([("bitcoin".to_owned(), "k".to_owned())].into());
        }
        "son.pay_vesting" => son.pay_vesting = Some(VestingId(4)),
        "son.votes" => son.votes += 1,
        "son.statistics.last_pay" => {
            son.statistics.last_pay =
                Some(SonPay { at: now, amount: 1, signed: 1, signed_by_all: 2, budget: 3 });
        }
        "vesting.asset" => {
            let v = VestingBalance {
                id: VestingId(3),
                owner: crate::AccountId(1),
                asset: AssetId(5),
                amount: 5,
                reason: "test".into(),
                cliff: now,
            };
            ctx.put_vesting(v.id, Some(v));
            return;
        }
        "globals.next_son_pay_time" => {
            ctx.globals_mut().next_son_pay_time = now.plus(7);
            return;
        }
        "globals.last_election" => {
            ctx.globals_mut().last_election = Some(Election {
                at: now,
                seats: 3,
                cutoff: Some(2),
                skipped: vec![(SonId(4), "why".into())],
                elected: vec![(SonId(1), 9)],
            });
            return;
        }
        other => panic!("no mutation for `{other}`"),
    }
    ctx.put_son(son).expect("put");
}

#[test]
fn every_son_lifecycle_field_is_hashed_comes_back_after_a_restart_and_is_undone() {
    let (genesis, blocks, _) = reference(2);
    for field in [
        "account.son_votes",
        "son.url",
        "son.next_sidechain_public_keys",
        "son.pay_vesting",
        "son.votes",
        "son.statistics.last_pay",
        "vesting.asset",
        "globals.next_son_pay_time",
        "globals.last_election",
    ] {
        let store = MemoryStore::new();
        let mut ledger = open(&genesis, store.clone(), 1).expect("new store");
        for b in &blocks {
            ledger.apply_block(b).expect("apply");
        }
        let before = ledger.state_hash();
        // A write undone with its block gives the state back.
        ledger.apply_with_for_tests(|ctx| mutate_field(field, ctx));
        let changed = ledger.state_hash();
        assert_ne!(changed, before, "a change to {field} must change the state hash");
        ledger.pop_block().expect("pop the write");
        assert_eq!(ledger.state_hash(), before, "{field} is undone");
        ledger.apply_with_for_tests(|ctx| mutate_field(field, ctx));
        assert_eq!(ledger.state_hash(), changed);
        ledger.commit(vec![]).expect("commit");
        let reopened = open(&genesis, store, 1).expect("reopen");
        assert_eq!(reopened.state_hash(), changed, "{field} comes back after a restart");
    }
}

#[test]
fn a_full_undo_window_requires_a_commit_with_the_node_local_values_never_one_without() {
    let (genesis, blocks, hashes) = reference(30);
    let store = MemoryStore::new();
    let mut ledger = open(&genesis, store.clone(), 1).expect("new store").with_undo_depth(8);
    let mut commits = 0;
    for (i, b) in blocks.iter().enumerate() {
        if ledger.commit_required() {
            // The ledger refuses the block rather than commit without the node's values.
            let before = ledger.state_hash();
            let e = ledger.apply_block(b).expect_err("window full");
            assert!(matches!(e, LedgerError::CommitRequired { unwritten: 8 }), "{e}");
            assert_eq!(ledger.state_hash(), before);
            ledger.commit(vec![("at".into(), Some(i.to_string().into_bytes()))]).expect("commit");
            commits += 1;
        }
        ledger.apply_block(b).expect("apply");
    }
    assert_eq!(commits, 3, "after blocks 8, 16 and 24");
    ledger.commit(vec![("at".into(), Some(b"30".to_vec()))]).expect("commit");
    drop(ledger);
    let ledger = open(&genesis, store, 1).expect("reopen");
    assert_eq!(ledger.state_hash(), hashes[29]);
    assert_eq!(ledger.local("at"), Some(b"30".as_slice()));
}

fn temp(name: &str) -> PathBuf {
    let p =
        std::env::temp_dir().join(format!("sonprop-persist-{}-{name}.redb", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn a_fork_switch_on_disk_equals_a_fresh_replay_of_the_new_branch() {
    let (genesis, blocks, _) = reference(60);
    let path = temp("fork");
    let mut ledger = open(&genesis, RedbStore::open(&path).expect("redb"), 1).expect("new store");
    for b in &blocks {
        ledger.apply_block(b).expect("apply");
        ledger.commit(vec![]).expect("commit");
    }
    for _ in 0..50 {
        ledger.pop_block().expect("pop");
    }
    // A different branch: the same slots, other transactions (heartbeats of other SONs).
    let mut branch = Vec::new();
    for i in 0..20 {
        let st = ledger.state();
        let t = st.next_slot_time();
        let n = builder().genesis().2[(i + 3) % 6].clone();
        let hb = crate::chain::ops::SonHeartbeat {
            son: n.son.expect("son"),
            owner: n.account,
            timestamp: t,
        };
        let tx = Transaction::single(t.plus(30), hb).sign(&st.chain_id(), &[&n.keys]);
        let key = producer_key(&ledger, t);
        let (block, _, rejected) = ledger.produce_block(t, vec![tx], &key).expect("produce");
        assert!(rejected.is_empty());
        ledger.commit(vec![]).expect("commit");
        branch.push(block);
    }
    let on_disk = ledger.state_hash();
    drop(ledger);
    let reopened = open(&genesis, RedbStore::open(&path).expect("redb"), 1).expect("reopen");
    assert_eq!(reopened.state_hash(), on_disk);
    let mut fresh = Ledger::new(&genesis, registry().chain()).expect("fresh");
    for b in blocks[..10].iter().chain(&branch) {
        fresh.apply_block(b).expect("replay");
    }
    assert_eq!(fresh.state_hash(), on_disk, "the disk holds exactly the new branch");
    std::fs::remove_file(&path).ok();
}

#[test]
fn a_store_of_another_chain_is_refused() {
    let (genesis, ..) = reference(1);
    let store = MemoryStore::new();
    open(&genesis, store.clone(), 1).expect("new store");
    let (mut other, ..) = builder().genesis();
    other.params.son_deregister_time += 3;
    match open(&other, store, 1) {
        Err(LedgerError::Store(StoreError::OtherChain { stored, expected, .. })) => {
            assert_eq!(stored, genesis.chain_id());
            assert_eq!(expected, other.chain_id());
        }
        other => panic!("expected OtherChain, got {other:?}"),
    }
}

fn delete(store: &MemoryStore, table: &'static str, key: &[u8]) {
    let mut s = store.clone();
    let mut b = Batch { durable: true, ..Batch::default() };
    b.delete(table, key.to_vec());
    s.commit(b).expect("delete");
}

fn tamper(store: &MemoryStore, table: &'static str, key: &[u8], value: &[u8]) {
    let mut s = store.clone();
    let mut b = Batch { durable: true, ..Batch::default() };
    b.put(table, key.to_vec(), value.to_vec());
    s.commit(b).expect("tamper");
}

#[test]
fn unknown_formats_and_undecodable_or_inconsistent_contents_are_refused() {
    let (genesis, blocks, _) = reference(5);
    let fresh = || {
        let store = MemoryStore::new();
        let mut ledger = open(&genesis, store.clone(), 1).expect("new store");
        for b in &blocks {
            ledger.apply_block(b).expect("apply");
            ledger.commit(vec![]).expect("commit");
        }
        store
    };
    let store = fresh();
    tamper(&store, "meta", b"format", b"1");
    assert!(matches!(
        open(&genesis, store, 1),
        Err(LedgerError::Store(StoreError::UnknownFormat { found: 1, supported: 5, .. }))
    ));

    let store = fresh();
    tamper(&store, "sons", b"\"1.33.2\"", b"{not json");
    let e = open(&genesis, store, 1).expect_err("undecodable row");
    assert!(
        matches!(&e, LedgerError::Store(StoreError::Corrupt { detail, .. }) if detail.contains("sons")),
        "{e}"
    );

    // A row that decodes but differs from what was committed: the state hash check catches it.
    let store = fresh();
    let contents = store.read_all().expect("read");
    let row = contents["sons"][b"\"1.33.2\"".as_slice()].clone();
    let changed = String::from_utf8(row)
        .expect("utf-8")
        .replace("\"deposit\":50000000", "\"deposit\":50000001");
    tamper(&store, "sons", b"\"1.33.2\"", changed.as_bytes());
    let e = open(&genesis, store, 1).expect_err("tampered row");
    assert!(e.to_string().contains("does not hash"), "{e}");

    let store = fresh();
    tamper(&store, "undo", &2u64.to_be_bytes(), b"[]");
    assert!(open(&genesis, store, 1).is_err(), "a damaged undo record is refused");

    let mut store = MemoryStore::new();
    let mut b = Batch { durable: true, ..Batch::default() };
    b.put("sons", b"x".to_vec(), b"y".to_vec());
    store.commit(b).expect("commit");
    let e = open(&genesis, store, 1).expect_err("not a sonprop store");
    assert!(e.to_string().contains("not a sonprop store"), "{e}");
}

#[test]
fn a_damaged_redb_file_is_refused_with_an_error() {
    let (genesis, blocks, _) = reference(20);
    let path = temp("damaged");
    {
        let mut ledger = open(&genesis, RedbStore::open(&path).expect("redb"), 1).expect("new");
        for b in &blocks {
            ledger.apply_block(b).expect("apply");
            ledger.commit(vec![]).expect("commit");
        }
    }
    let bytes = std::fs::read(&path).expect("read");
    // Truncated to half.
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
    let truncated =
        RedbStore::open(&path).map_err(LedgerError::from).and_then(|s| open(&genesis, s, 1));
    let e = truncated.expect_err("a truncated store must not open as a valid one");
    assert!(
        matches!(e, LedgerError::Store(StoreError::Corrupt { .. } | StoreError::Backend { .. })),
        "{e}"
    );
    assert!(e.to_string().contains(&path.display().to_string()), "the error names the store: {e}");
    // Bytes flipped all through the data (the header is left alone so the file is recognised).
    let mut flipped = bytes.clone();
    for i in (4096..flipped.len()).step_by(97) {
        flipped[i] ^= 0x5a;
    }
    std::fs::write(&path, &flipped).expect("flip");
    let damaged =
        RedbStore::open(&path).map_err(LedgerError::from).and_then(|s| open(&genesis, s, 1));
    let e = damaged.expect_err("a corrupted store must not open as a valid one");
    assert!(
        matches!(e, LedgerError::Store(StoreError::Corrupt { .. } | StoreError::Backend { .. })),
        "{e}"
    );
    assert!(e.to_string().contains(&path.display().to_string()), "the error names the store: {e}");
    std::fs::remove_file(&path).ok();
}

#[test]
fn a_named_subject_that_reads_like_a_son_id_is_the_same_subject_after_a_restart() {
    use crate::chain::ids::Subject;
    use crate::testkit::probe::AccountProbe;
    let net = builder().users(1).build(registry());
    let genesis = net.genesis.clone();
    let store = MemoryStore::new();
    let mut ledger = open(&genesis, store.clone(), 1).expect("new store");
    let w = net.witnesses[0].clone();
    let user = net.users[0].account;
    let create = |ledger: &Ledger, amount: u64| {
        let st = ledger.state();
        let op = AccountProbe { account: user, subject: "1.33.1".into(), amount, fail_after: None };
        let c = ProposalCreate {
            proposer: w.account,
            expiration_time: st.next_slot_time().plus(600),
            review_period_seconds: None,
            operations: vec![Box::new(op)],
        };
        Transaction::single(st.next_slot_time().plus(30), c).sign(&st.chain_id(), &[&w.keys])
    };
    let t = ledger.state().next_slot_time();
    let key = producer_key(&ledger, t);
    let (_, _, rejected) = ledger.produce_block(t, vec![create(&ledger, 1)], &key).expect("block");
    assert!(rejected.is_empty());
    ledger.commit(vec![]).expect("commit");
    let named = Subject::Named("1.33.1".into());
    assert!(ledger.state().live_proposal(probe::ACCOUNT_PROBE, &named).is_some());
    let before = ledger.check_transaction(&create(&ledger, 2)).expect_err("one live per subject");
    drop(ledger);
    let mut reopened = open(&genesis, store, 1).expect("reopen");
    let record = reopened.state().son_proposals().iter().next().expect("a record").1.clone();
    assert_eq!(record.subject, named, "still a name, not SON 1.33.1");
    let after = reopened.check_transaction(&create(&reopened, 2)).expect_err("still one live");
    assert_eq!(
        before.to_string(),
        after.to_string(),
        "the same verdict on both sides of a restart"
    );
}

#[test]
fn an_altered_undo_record_is_refused_on_open_not_restored_by_a_later_pop() {
    let (genesis, blocks, _) = reference(5);
    let store = MemoryStore::new();
    let mut ledger = open(&genesis, store.clone(), 1).expect("new store");
    for b in &blocks {
        ledger.apply_block(b).expect("apply");
        ledger.commit(vec![]).expect("commit");
    }
    drop(ledger);
    let key = 4u64.to_be_bytes();
    let stored = store.read_all().expect("read")["undo"][key.as_slice()].clone();
    // Committed block by block: a chunk of one record.
    let records = split_chunk(&stored).expect("a chunk");
    assert_eq!(records.len(), 1);
    let sealed = records[0];
    // Valid JSON, other content: the checksum no longer holds.
    let body = String::from_utf8(sealed[32..].to_vec()).expect("utf-8");
    let altered = body.replacen("\"head_height\":3", "\"head_height\":2", 1);
    assert_ne!(altered, body, "the record names the head height it restores");
    let mut forged = stored[..8 + 32].to_vec();
    forged.extend_from_slice(altered.as_bytes());
    tamper(&store, "undo", &key, &forged);
    let e = open(&genesis, store.clone(), 1).expect_err("altered undo record");
    assert!(e.to_string().contains("undo record of block 4 fails its checksum"), "{e}");
    // The original is accepted again.
    tamper(&store, "undo", &key, &stored);
    let mut reopened = open(&genesis, store, 1).expect("intact");
    reopened.pop_block().expect("pop");
    assert_eq!(reopened.state().head_height(), 4);
}

/// A block's undo record keeps, of the globals, only the fields the block changed, and gives the
/// whole globals back.
#[test]
fn the_globals_delta_keeps_only_what_changed_and_gives_the_globals_back() {
    let net = builder().build(registry());
    let before = net.ledger.state().globals().clone();
    let mut after = before.clone();
    let same = GlobalsDelta::between(&before, &after);
    assert_eq!(serde_json::to_string(&same).expect("json"), "{}", "nothing changed");
    after.head_height += 1;
    after.head_time = after.head_time.plus(3);
    after.next_proposal += 2;
    Arc::make_mut(&mut after.schedule).reverse();
    Arc::make_mut(&mut after.elected_sons).insert(crate::SonId(77));
    let d = GlobalsDelta::between(&before, &after);
    assert_eq!(d.apply(&after), before);
    let json = serde_json::to_value(&d).expect("json");
    let mut keys: Vec<_> = json.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["elected_sons", "head_height", "head_time", "next_proposal", "schedule"]);
    // The record of a block that changed the globals holds the delta, not the whole globals.
    let session = Session { globals: Some(Arc::new(before.clone())), ..Session::default() };
    let record = serde_json::to_value(UndoRecord::of(&session, &after)).expect("json");
    assert!(record.get("globals").is_none() && record.get("globals_changed").is_some());
}

/// Format 3 stores each block's globals delta against the globals the block left; a format-2
/// store (its undo records hold the whole globals before each block, its state hash is the
/// JSON one) opens, pops to the same states, and is format 4 from its next commit.
#[test]
fn a_format_2_store_is_read_and_its_blocks_still_pop() {
    let (genesis, blocks, hashes) = reference(12);
    let store = MemoryStore::new();
    let mut ledger = open(&genesis, store.clone(), 1).expect("new store");
    let mut befores = Vec::new();
    // Committed four blocks at a time, so each commit writes deltas against globals other than
    // the head's.
    for (i, b) in blocks.iter().enumerate() {
        befores.push(ledger.state().globals().clone());
        ledger.apply_block(b).expect("apply");
        if i % 4 == 3 {
            ledger.commit(vec![]).expect("commit");
        }
    }
    befores.push(ledger.state().globals().clone());
    let legacy = StoredHash { height: 12, hash: ledger.state().legacy_json_hash() };
    assert_ne!(legacy.hash, ledger.state_hash(), "two different encodings");
    drop(ledger);
    // Rewrite it as format 2 wrote it: one record per key, not chunks of four.
    let contents = store.read_all().expect("read");
    let mut one_per_key = Vec::new();
    for (k, v) in &contents[UNDO] {
        let first = u64::from_be_bytes(k.as_slice().try_into().expect("height"));
        let records = split_chunk(v).expect("a chunk");
        assert_eq!(records.len(), 4, "committed four blocks at a time");
        delete(&store, UNDO, k);
        for (height, sealed) in (first..).zip(records) {
            one_per_key.push((height.to_be_bytes().to_vec(), sealed.to_vec()));
        }
    }
    for (k, v) in &one_per_key {
        let height = u64::from_be_bytes(k.as_slice().try_into().expect("height"));
        let body = open_undo(height, v).expect("sealed");
        let mut record: serde_json::Value = serde_json::from_slice(body).expect("json");
        let obj = record.as_object_mut().expect("object");
        // Format 3 wrote what this block changed: its globals before, against those after it.
        let (before, after) = (&befores[height as usize - 1], &befores[height as usize]);
        let want = GlobalsDelta::between(before, after);
        let delta = obj.remove("globals_changed").expect("format 3 wrote a delta");
        assert_eq!(delta, serde_json::to_value(&want).expect("json"), "block {height}");
        let whole = serde_json::to_value(before).expect("json");
        obj.insert("globals".into(), whole);
        let resealed = sealed_undo(height, serde_json::to_vec(&record).expect("json"));
        tamper(&store, UNDO, k, &resealed);
    }
    tamper(&store, META, b"state_hash", &json(&legacy));
    // A format-4 store must record the binary encoding's hash: the JSON one is refused.
    tamper(&store, META, b"format", b"4");
    let e = open(&genesis, store.clone(), 1).expect_err("the JSON hash in a format-4 store");
    assert!(e.to_string().contains("does not hash to what block 12 committed"), "{e}");
    tamper(&store, META, b"format", b"2");
    // A copy committed at once: its records, one per key, become one chunk.
    let copy = copy_of(&store);
    let mut committed = open(&genesis, copy.clone(), 1).expect("format 2 opens");
    committed.commit(vec![]).expect("commit");
    drop(committed);
    let undo = &copy.read_all().expect("read")[UNDO];
    assert_eq!(undo.len(), 1, "one chunk, the per-block keys deleted");
    assert_eq!(split_chunk(&undo[1u64.to_be_bytes().as_slice()]).expect("chunk").len(), 12);
    let mut committed = open(&genesis, copy, 1).expect("format 5 reopens");
    assert_eq!(committed.state_hash(), hashes[11]);
    for i in (0..3).rev() {
        committed.pop_block().expect("pop");
        assert_eq!(committed.state_hash(), hashes[i + 8], "after popping to block {}", i + 9);
    }
    let mut ledger = open(&genesis, store.clone(), 1).expect("format 2 opens");
    assert_eq!(ledger.state_hash(), hashes[11]);
    for i in (0..6).rev() {
        ledger.pop_block().expect("pop");
        assert_eq!(ledger.state_hash(), hashes[i + 5], "after popping to block {}", i + 6);
    }
    ledger.commit(vec![]).expect("commit");
    let format = &store.read_all().expect("read")[META][b"format".as_slice()];
    assert_eq!(format.as_slice(), b"5");
    let undo = &store.read_all().expect("read")[UNDO];
    assert_eq!(undo.len(), 1, "the records left after the pops, as one chunk");
    assert_eq!(split_chunk(&undo[1u64.to_be_bytes().as_slice()]).expect("chunk").len(), 6);
    drop(ledger);
    let reopened = open(&genesis, store, 1).expect("format 5 reopens");
    assert_eq!(reopened.state_hash(), hashes[5]);
}

/// An independent store with the same contents.
fn copy_of(store: &MemoryStore) -> MemoryStore {
    let mut b = Batch { durable: true, ..Batch::default() };
    for (table, rows) in store.read_all().expect("read") {
        for (k, v) in rows {
            b.put_owned(table.clone(), k, v);
        }
    }
    let mut copy = MemoryStore::new();
    copy.commit(b).expect("copy");
    copy
}

/// The reference chain of 30 blocks, built once for the property below.
fn shared_reference() -> &'static (Genesis, Vec<Block>, Vec<crate::Digest>) {
    static REFERENCE: std::sync::OnceLock<(Genesis, Vec<Block>, Vec<crate::Digest>)> =
        std::sync::OnceLock::new();
    REFERENCE.get_or_init(|| reference(30))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// Same state, same hash, however it was reached: applied block by block on a replica,
    /// applied further and popped back, committed in any rhythm (so undo chunks of any size),
    /// read back from the store and popped again across chunks, with the ledger's table-digest
    /// cache warm or the hash computed from scratch, it equals the hash the producing node had
    /// at that height. No stored undo chunk lies wholly below the undo window.
    #[test]
    fn the_state_hash_depends_on_the_state_not_on_how_it_was_reached(
        n in 1usize..=30,
        pop in 0usize..8,
        every in 1usize..6,
        depth in proptest::prop_oneof![proptest::prelude::Just(4usize), proptest::prelude::Just(1_000)],
        more in 0usize..6,
    ) {
        let (genesis, blocks, hashes) = shared_reference();
        let want_at = |height: usize| if height == 0 { None } else { Some(hashes[height - 1]) };
        let store = MemoryStore::new();
        let mut ledger = open(genesis, store.clone(), 1).expect("new store").with_undo_depth(depth);
        let at_genesis = ledger.state_hash();
        let want = |height: usize| want_at(height).unwrap_or(at_genesis);
        for (i, b) in blocks[..n].iter().enumerate() {
            if ledger.commit_required() {
                ledger.commit(vec![]).expect("commit");
            }
            ledger.apply_block(b).expect("apply");
            // Hash along the way, so the cache holds digests of states later undone.
            let _ = ledger.state_hash();
            if (i + 1) % every == 0 {
                ledger.commit(vec![]).expect("commit");
            }
        }
        let pop = pop.min(ledger.undo_available());
        for _ in 0..pop {
            ledger.pop_block().expect("pop");
        }
        let height = n - pop;
        proptest::prop_assert_eq!(ledger.state_hash(), want(height), "cached");
        proptest::prop_assert_eq!(ledger.state().hash(), want(height), "from scratch");
        ledger.commit(vec![]).expect("commit");
        let window_from = height as u64 + 1 - ledger.undo_available() as u64;
        drop(ledger);
        for (k, v) in store.read_all().expect("read").get(UNDO).into_iter().flatten() {
            let first = u64::from_be_bytes(k.as_slice().try_into().expect("a height"));
            let records = split_chunk(v).expect("a chunk").len() as u64;
            proptest::prop_assert!(records > 0, "no empty chunk");
            proptest::prop_assert!(first + records > window_from, "chunk {first} is below the window");
        }
        let mut reopened = open(genesis, store.clone(), 1).expect("reopen");
        proptest::prop_assert_eq!(reopened.state_hash(), want(height), "read back from the store");
        let more = more.min(reopened.undo_available());
        for _ in 0..more {
            reopened.pop_block().expect("pop after a restart");
        }
        let height = height - more;
        proptest::prop_assert_eq!(reopened.state_hash(), want(height), "popped after a restart");
        drop(reopened);
        let again = open(genesis, store, 1).expect("reopen after the pops");
        proptest::prop_assert_eq!(again.state_hash(), want(height), "the pops were written");
    }
}
