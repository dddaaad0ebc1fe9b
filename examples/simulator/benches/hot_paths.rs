//! Criterion benches for the hot paths: per-block trigger evaluation at 100 000 SONs, one
//! heartbeat transaction through the ledger, raw signature verification, and the state hash.
//! `sonprop bench` reports the same quantities side by side in one run; these give
//! criterion's statistics on each alone.

use criterion::{criterion_group, criterion_main, Criterion};
use sonprop_core::chain::ops::SonHeartbeat;
use sonprop_core::{ChainParameters, SonStatus, Transaction};
use sonprop_simulator::bench::{indexed_due, scan_due, BenchChain};

fn triggers(c: &mut Criterion) {
    let chain = BenchChain::new(100_000, ChainParameters::default());
    let node = chain.witnesses[1].clone();
    let st = chain.ledger.state();
    c.bench_function("triggers/indexed/100000_sons", |b| b.iter(|| indexed_due(st, &node)));
    let mut g = c.benchmark_group("triggers/scan");
    g.sample_size(20);
    g.bench_function("100000_sons", |b| b.iter(|| scan_due(st, &node)));
    g.finish();
}

fn heartbeat(c: &mut Criterion) {
    let mut chain = BenchChain::new(1_000, ChainParameters::default());
    let st = chain.ledger.state();
    let t = st.next_slot_time();
    let (son, owner) = st
        .sons()
        .iter()
        .find(|(_, s)| s.status == SonStatus::Inactive)
        .map(|(id, s)| (*id, s.owner))
        .expect("a standby SON");
    let tx = Transaction::single(t.plus(30), SonHeartbeat { son, owner, timestamp: t })
        .sign(&st.chain_id(), &[&chain.standby_key]);
    let digest = tx.transaction.digest(&st.chain_id());
    // check_transaction applies the transaction at the next slot and rolls it back.
    c.bench_function("ledger/heartbeat_transaction", |b| {
        b.iter(|| chain.ledger.check_transaction(&tx).expect("valid"))
    });
    c.bench_function("crypto/secp256k1_verify", |b| {
        b.iter(|| assert!(tx.signatures[0].verify(&digest)))
    });
}

fn state_hash(c: &mut Criterion) {
    let chain = BenchChain::new(1_000, ChainParameters::default());
    c.bench_function("state/hash/1000_sons", |b| b.iter(|| chain.ledger.state_hash()));
}

criterion_group!(benches, triggers, heartbeat, state_hash);
criterion_main!(benches);
