//! What the crate's tests share: the registry their networks run, Bitcoin Core's script flags
//! for the consensus library that judges every transaction they broadcast, and the bridge's
//! harness: a network of SON nodes over a simulated Bitcoin ([`Run`]), with the conservation
//! equation checked and every row read back after every block.

use std::sync::Arc;

use bitcoin::consensus::encode::serialize;
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, CompressedPublicKey, Network, PublicKey, ScriptBuf};
use sonprop_core::node::scheduler::SchedulerConfig;
use sonprop_core::testkit::{NetworkBuilder, TestNetwork};
use sonprop_core::{AssetId, ChainParameters, LedgerEvent, Registry, Services, State};

use crate::flows::{deposit_address, prove_deposit_key, RegisterDepositKey, Withdraw};
use crate::node::{BitcoinNode, BitcoinSource};
use crate::sim::{Fault, SimBitcoin};
use crate::state::{
    conservation, current_wallet, utxo_key, wallet_utxos, DepositStatus, Deposits, Transactions,
    Withdrawal, Withdrawals,
};

/// Bitcoin Core's script flags: P2SH | DERSIG | NULLDUMMY | CHECKLOCKTIMEVERIFY |
/// CHECKSEQUENCEVERIFY | WITNESS (every pre-taproot rule).
pub const FLAGS: u32 = (1 << 0) | (1 << 2) | (1 << 4) | (1 << 9) | (1 << 10) | (1 << 11);

/// The SON-management crates and this one.
pub fn registry() -> Arc<Registry> {
    Registry::builder()
        .with(&sonprop_report_down::PLUGIN)
        .with(&sonprop_deregister_son::PLUGIN)
        .with(&crate::PLUGIN)
        .build()
        .expect("unique")
        .into_arc()
}

pub(crate) const PBTC: AssetId = AssetId(1);
/// A Bitcoin block every this many chain blocks.
pub(crate) const BTC_EVERY: u64 = 10;

pub(crate) fn builder(min_confirmations: u32) -> NetworkBuilder {
    let params = ChainParameters {
        son_deregister_time: 1200,
        maintenance_interval: 600,
        maximum_son_count: 6,
        ..ChainParameters::default()
    };
    TestNetwork::builder()
        .witnesses(3)
        .sons(6)
        .standby_sons(1)
        .users(2)
        .params(params)
        .asset(crate::state::pbtc_genesis_asset(PBTC))
        .plugin_param("bitcoin.min_confirmations", serde_json::json!(min_confirmations))
}

/// Bitcoin Core's interpreter as the simulated network's judge of every broadcast.
pub(crate) fn judged() -> SimBitcoin {
    SimBitcoin::new(4).with_script_check(Arc::new(|tx, i, spent| {
        bitcoin::consensus::verify_script_with_flags(
            &spent.script_pubkey,
            i,
            spent.value,
            &serialize(tx),
            FLAGS,
        )
        .map_err(|e| format!("input {i} rejected by the script interpreter: {e}"))
    }))
}

/// A network whose SON `i` sees Bitcoin through `faults(i)`.
pub(crate) fn network(
    b: NetworkBuilder,
    btc: &SimBitcoin,
    faults: impl Fn(usize) -> Fault,
) -> TestNetwork {
    network_keyed(b, btc, faults, |_, genesis_key| (genesis_key, Vec::new()))
}

/// [`network`], SON `i`'s node holding the keys `keys(i, its genesis key)` gives: its current
/// Bitcoin key and its retired ones.
pub(crate) fn network_keyed(
    b: NetworkBuilder,
    btc: &SimBitcoin,
    faults: impl Fn(usize) -> Fault,
    keys: impl Fn(usize, SecretKey) -> (SecretKey, Vec<SecretKey>),
) -> TestNetwork {
    let mut net = b.clone().build(registry());
    let views: Vec<Arc<dyn BitcoinSource>> =
        (0..7).map(|i| btc.view(faults(i)) as Arc<dyn BitcoinSource>).collect();
    let keys: Vec<(SecretKey, Vec<SecretKey>)> = net
        .sons
        .iter()
        .enumerate()
        .map(|(i, n)| keys(i, b.sidechain_key(&n.name, "bitcoin").secret_key()))
        .collect();
    net.start_schedulers_with(SchedulerConfig::for_tests(), move |node| match node.son {
        Some(son) => {
            let (key, retired_keys) = keys[son.0 as usize].clone();
            Services::new().with(BitcoinNode {
                source: views[son.0 as usize].clone(),
                key,
                fee_band_percent: 25,
                retired_keys,
            })
        }
        None => Services::new(),
    })
    .expect("every SON node has its bitcoin service");
    net
}

pub(crate) struct Run {
    pub(crate) net: TestNetwork,
    pub(crate) btc: SimBitcoin,
    pub(crate) steps: u64,
    pub(crate) events: Vec<LedgerEvent>,
}

impl Run {
    /// Steps (mining a Bitcoin block every [`BTC_EVERY`] blocks) until `pred`, checking the
    /// conservation equation after every block; fails after `limit` seconds.
    pub(crate) async fn until(&mut self, limit: u64, mut pred: impl FnMut(&State) -> bool) {
        let end = self.net.now().plus(limit);
        while !pred(self.net.ledger.state()) {
            if self.net.now() >= end {
                let st = self.state();
                let deposits: Vec<_> = st.rows::<Deposits>().map(|(_, d)| d.clone()).collect();
                let txs: Vec<_> = st
                    .rows::<Transactions>()
                    .map(|(_, t)| (t.id, t.purpose.clone(), t.status.clone()))
                    .collect();
                panic!(
                    "not reached within {limit} s; deposits {deposits:?}; txs {txs:?}; alarms {:?}",
                    crate::reconcile::alarms(st)
                );
            }
            self.step().await;
        }
    }

    pub(crate) async fn step(&mut self) {
        self.steps += 1;
        if self.steps.is_multiple_of(BTC_EVERY) {
            self.btc.mine();
        }
        self.step_without_mining().await;
    }

    /// Steps the chain only: Bitcoin mines nothing.
    pub(crate) async fn step_without_mining(&mut self) {
        let step = self.net.step().await;
        self.events.extend(step.outcome.events);
        if let Err(e) = conservation(self.net.ledger.state()) {
            panic!("after block {}: {e}", self.net.ledger.state().head_height());
        }
        rows_round_trip(self.net.ledger.state());
    }

    /// Runs the chain for `seconds` while Bitcoin mines nothing.
    pub(crate) async fn hold(&mut self, seconds: u64) {
        let end = self.net.now().plus(seconds);
        while self.net.now() < end {
            self.step_without_mining().await;
        }
    }

    pub(crate) async fn run_for(&mut self, seconds: u64) {
        let end = self.net.now().plus(seconds);
        while self.net.now() < end {
            self.step().await;
        }
    }

    pub(crate) fn state(&self) -> &State {
        self.net.ledger.state()
    }

    pub(crate) fn user_key(&self, i: usize) -> PublicKey {
        let kp = TestNetwork::builder().sidechain_key(&self.net.users[i].name, "bitcoin-user");
        PublicKey::new(kp.secret_key().public_key(&Secp256k1::signing_only()))
    }

    /// User `i`'s own (P2WPKH) address, where withdrawals go.
    pub(crate) fn user_address(&self, i: usize) -> Address {
        let key = CompressedPublicKey::try_from(self.user_key(i)).expect("compressed");
        Address::p2wpkh(&key, Network::Regtest)
    }

    pub(crate) fn user_secret(&self, i: usize) -> bitcoin::secp256k1::SecretKey {
        TestNetwork::builder().sidechain_key(&self.net.users[i].name, "bitcoin-user").secret_key()
    }

    pub(crate) fn register(&mut self, i: usize) {
        let user = self.net.users[i].clone();
        let op = RegisterDepositKey {
            account: user.account,
            public_key: self.user_key(i).to_string(),
            withdraw_address: Some(self.user_address(i).to_string()),
            proof: prove_deposit_key(&self.state().chain_id(), user.account, &self.user_secret(i)),
        };
        let tx = self.net.sign(&user, op);
        self.net.submit(tx);
    }

    pub(crate) fn deposit(&self, i: usize, sat: u64) -> bitcoin::OutPoint {
        let a = deposit_address(self.state(), self.net.users[i].account).expect("registered");
        self.btc.pay(&a.script_pubkey(), sat)
    }

    pub(crate) fn withdraw(&mut self, i: usize, sat: u64, address: Option<String>) {
        let user = self.net.users[i].clone();
        let op = Withdraw { account: user.account, amount_sat: sat, address };
        let tx = self.net.sign(&user, op);
        self.net.submit(tx);
    }

    pub(crate) fn balance(&self, i: usize) -> u64 {
        self.state().balance(self.net.users[i].account, PBTC)
    }
}

/// A network with its first wallet, a 100 000 sat reserve in it, and both users registered.
pub(crate) async fn ready(btc: SimBitcoin, min_conf: u32, faults: impl Fn(usize) -> Fault) -> Run {
    let mut run = unfunded(btc, min_conf, faults).await;
    let w = current_wallet(run.state()).expect("wallet").clone();
    run.btc.pay(&ScriptBuf::new_p2wsh(&w.script().wscript_hash()), 100_000);
    run.until(600, |st| wallet_utxos(st, 0).len() == 1).await;
    run
}

/// A network with its first wallet and both users registered.
pub(crate) async fn unfunded(
    btc: SimBitcoin,
    min_conf: u32,
    faults: impl Fn(usize) -> Fault,
) -> Run {
    unfunded_with(builder(min_conf), btc, faults).await
}

/// [`unfunded`] over the network `b` describes.
pub(crate) async fn unfunded_with(
    b: NetworkBuilder,
    btc: SimBitcoin,
    faults: impl Fn(usize) -> Fault,
) -> Run {
    let net = network(b, &btc, faults);
    started(net, btc).await
}

/// A run over `net`, once its first wallet is made and both users are registered.
pub(crate) async fn started(net: TestNetwork, btc: SimBitcoin) -> Run {
    let mut run = Run { net, btc, steps: 0, events: Vec::new() };
    run.until(60, |st| current_wallet(st).is_some()).await;
    run.register(0);
    run.register(1);
    run.step().await;
    run
}

/// Every row of the crate's tables reads back as written (what a store does with it).
pub(crate) fn rows_round_trip(st: &State) {
    fn table<T: sonprop_core::TableSchema>(st: &State)
    where
        T::Value: PartialEq,
    {
        for (_, row) in st.rows::<T>() {
            let json = serde_json::to_string(row).expect("encodes");
            let back: T::Value = serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("a row of {} does not read back: {e}: {json}", T::NAME));
            assert!(back == *row, "{} changes on the way back: {json}", T::NAME);
        }
    }
    table::<crate::state::Wallets>(st);
    table::<crate::state::Utxos>(st);
    table::<Transactions>(st);
    table::<crate::state::DepositKeys>(st);
    table::<Deposits>(st);
    table::<Withdrawals>(st);
    table::<crate::state::BooksTable>(st);
}

pub(crate) fn deposit_status(st: &State, o: &bitcoin::OutPoint) -> Option<DepositStatus> {
    st.row::<Deposits>(&utxo_key(o)).map(|d| d.status.clone())
}

pub(crate) fn withdrawal(st: &State, id: u64) -> Withdrawal {
    st.row::<Withdrawals>(&id).cloned().expect("withdrawal")
}

/// The sidechain transaction sweeping deposit `o`, if the chain built one.
pub(crate) fn deposit_sweep(
    st: &State,
    o: &bitcoin::OutPoint,
) -> Option<crate::state::SidechainTx> {
    let outpoint = o.to_string();
    st.rows::<Transactions>().map(|(_, t)| t.clone()).find(|t| {
        matches!(&t.purpose, crate::state::Purpose::Deposit { deposit, .. } if *deposit == outpoint)
    })
}

/// A deposit's sweep sent at 4 sat/vB while miners take nothing below 30: the run, the
/// deposit and the sweep as first sent.
pub(crate) async fn a_sweep_stuck_below_the_miners_floor(
    b: NetworkBuilder,
) -> (Run, bitcoin::OutPoint, crate::state::SidechainTx) {
    let mut run = unfunded_with(b, judged(), |_| Fault::Honest).await;
    run.btc.set_mining_floor(30);
    let o = run.deposit(0, 10_000_000);
    run.until(1800, |st| {
        st.rows::<Transactions>()
            .any(|(_, t)| matches!(t.status, crate::state::TxStatus::Sent { .. }))
    })
    .await;
    let first = deposit_sweep(run.state(), &o).expect("the sweep");
    (run, o, first)
}

/// What a bridge kind says to `explain` about a subject: `None` for one it is not about.
pub(crate) fn readiness_of(st: &State, kind: &str, subject: sonprop_core::Subject) -> String {
    use sonprop_core::Readiness;
    match st.explain(kind, &subject).and_then(|k| k.readiness) {
        Some(Readiness::Due { why, .. }) => format!("due: {why}"),
        Some(Readiness::DueAt { at, why }) => format!("due at {}: {why}", at.secs()),
        Some(Readiness::NotDue { why }) => format!("not due: {why}"),
        other => format!("{other:?}"),
    }
}
