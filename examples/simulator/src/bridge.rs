//! The Bitcoin bridge in a simulation: a simulated Bitcoin network every SON node sees through
//! its own (possibly faulty) view, the users who deposit and withdraw, the timeline lines for
//! the bridge's events, the conservation check after every block, and the report's section.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sonprop_bitcoin::flows::{
    btc, deposit_address, prove_deposit_key, DepositConfirmed, DepositCredited, DepositSeen,
    DepositSweeping, RegisterDepositKey, ReportDeposit, Withdraw, WithdrawalPaid, WithdrawalPaying,
    WithdrawalRefunded, WithdrawalRequested,
};
use sonprop_bitcoin::node::BitcoinNode;
use sonprop_bitcoin::sim::{Fault, ScriptCheck, SimBitcoin, SimExport};
use sonprop_bitcoin::state::{
    conservation, current_wallet, Conservation, DepositStatus, Deposits, WithdrawalStatus,
    Withdrawals,
};
use sonprop_bitcoin::{
    DEPOSIT_PROCESS, DEPOSIT_REPORT, SETTLE, WITHDRAW, WITHDRAW_PROCESS, WITHDRAW_REFUND,
};
use sonprop_core::chain::crypto::KeyPair;
use sonprop_core::chain::event::counted;
use sonprop_core::testkit::NetworkBuilder;
use sonprop_core::{
    AccountId, Asset, AssetId, LedgerEvent, NodeIdentity, SignedTransaction, State, Transaction,
};

use sonprop_bitcoin::reconcile::alarms;

use crate::scenario::{BitcoinScenario, Byzantine, Hostile};
use crate::sim::Entry;

/// The wrapped asset's id in a bridge scenario's genesis.
pub const PBTC: AssetId = AssetId(1);
/// How far a SON's fee rate may be from its own estimate before it abstains, percent.
const FEE_BAND_PERCENT: u64 = 25;
/// Lifetime of the users' transactions, chain seconds.
const USER_TX_LIFETIME: u64 = 60;

/// Bitcoin Core's script flags for what the bridge spends: P2SH | DERSIG | NULLDUMMY |
/// CHECKLOCKTIMEVERIFY | CHECKSEQUENCEVERIFY | WITNESS.
pub const SCRIPT_FLAGS: u32 = (1 << 0) | (1 << 2) | (1 << 4) | (1 << 9) | (1 << 10) | (1 << 11);

/// Bitcoin Core's own script interpreter (its consensus library) as the simulated network's
/// judge of every input of every broadcast: what `sonprop simulate` runs with, so a run's "0
/// broadcasts refused" means Bitcoin Core would have accepted each one.
pub fn consensus_check() -> std::sync::Arc<ScriptCheck> {
    std::sync::Arc::new(|tx, i, spent| {
        bitcoin::consensus::verify_script_with_flags(
            &spent.script_pubkey,
            i,
            spent.value,
            &bitcoin::consensus::encode::serialize(tx),
            SCRIPT_FLAGS,
        )
        .map_err(|e| format!("input {i} refused by Bitcoin Core's script interpreter: {e:?}"))
    })
}

/// The PBTC asset a bridge scenario's genesis holds (issued by the SON account, none yet).
pub fn pbtc_asset() -> Asset {
    sonprop_bitcoin::state::pbtc_genesis_asset(PBTC)
}

/// A user's Bitcoin key (its deposit key; its P2WPKH address receives its withdrawals).
fn user_key(builder: &NetworkBuilder, name: &str) -> KeyPair {
    builder.sidechain_key(name, "bitcoin-user")
}

fn user_public(builder: &NetworkBuilder, name: &str) -> bitcoin::PublicKey {
    let sk = user_key(builder, name).secret_key();
    bitcoin::PublicKey::new(sk.public_key(&bitcoin::secp256k1::Secp256k1::signing_only()))
}

/// What the bridge keeps between blocks (stored with a resumable run).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BridgeLocal {
    btc: Option<SimExport>,
    registered: bool,
    reserve_paid: bool,
    next_deposit: usize,
    next_withdrawal: usize,
    next_reorg: usize,
    next_block_at: u64,
    deposits: Vec<MadeDeposit>,
    checks: u64,
    /// Per hostile action, how many of its deposits were paid (or 1 once a key theft was
    /// tried).
    #[serde(default)]
    hostile_done: Vec<u32>,
    /// Deposits the Byzantine SONs reported naming the wrong wallet.
    #[serde(default)]
    misreported: usize,
    /// Deposits each Byzantine SON invented.
    #[serde(default)]
    invented: BTreeMap<u32, u64>,
    /// The alarms as the last block left them.
    #[serde(default)]
    alarms: Vec<String>,
    /// Every alarm raised during the run, once each, in order.
    #[serde(default)]
    alarms_raised: Vec<String>,
    /// Key thefts tried, with why the chain refused each.
    #[serde(default)]
    thefts: Vec<String>,
}

/// A deposit the simulation made on Bitcoin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeDeposit {
    /// `txid:vout`.
    pub outpoint: String,
    /// The user index.
    pub user: u32,
    /// Satoshis.
    pub sat: u64,
    /// Made by a hostile user (dust, fragmentation): it must be recorded, credited or refused
    /// with a reason, but it is not one of the honest flows that must settle.
    #[serde(default)]
    pub hostile: bool,
    /// When it was paid (chain time, unix seconds; 0 in a run kept before this was).
    #[serde(default)]
    pub at: u64,
}

/// The bridge of a running simulation.
pub struct Bridge {
    spec: BitcoinScenario,
    btc: SimBitcoin,
    users: Vec<NodeIdentity>,
    user_keys: Vec<bitcoin::PublicKey>,
    user_secrets: Vec<bitcoin::secp256k1::SecretKey>,
    sons: Vec<NodeIdentity>,
    local: BridgeLocal,
    /// The generations of what the conservation equation and the alarms read, when they were
    /// last computed.
    checked_at: Option<Vec<u64>>,
}

impl Bridge {
    /// The bridge of `spec` for a network of `users` and `sons`, with keys from `builder`.
    pub fn new(
        spec: &BitcoinScenario,
        builder: &NetworkBuilder,
        users: Vec<NodeIdentity>,
        sons: Vec<NodeIdentity>,
        check: Option<std::sync::Arc<ScriptCheck>>,
    ) -> Self {
        let user_keys = users.iter().map(|u| user_public(builder, &u.name)).collect();
        let user_secrets = users.iter().map(|u| user_key(builder, &u.name).secret_key()).collect();
        let btc = SimBitcoin::new(spec.fee_rate);
        Bridge {
            btc: match check {
                Some(c) => btc.with_script_check(c),
                None => btc,
            },
            spec: spec.clone(),
            users,
            user_keys,
            user_secrets,
            sons,
            checked_at: None,
            local: BridgeLocal {
                next_block_at: spec.block_interval,
                hostile_done: vec![0; spec.hostile.len()],
                ..BridgeLocal::default()
            },
        }
    }

    /// The services of node `identity`: a SON gets its Bitcoin key and its view of the
    /// simulated network (faulty if the scenario says so).
    /// `key_changes`: how many new Bitcoin keys the scenario gives the SON; its node holds them
    /// all, the last as its current key.
    pub fn service(
        &self,
        identity: &NodeIdentity,
        builder: &NetworkBuilder,
        key_changes: u32,
    ) -> Option<BitcoinNode> {
        let son = identity.son?;
        let index = u32::try_from(son.0).ok()?;
        let mut fault = self.spec.faults.get(&index).copied().unwrap_or(Fault::Honest);
        if self.spec.byzantine.get(&index) == Some(&Byzantine::SentWithoutBroadcast) {
            fault = Fault::DropsBroadcasts;
        }
        Some(BitcoinNode {
            source: self.btc.view(fault),
            key: crate::members::bitcoin_key(builder, &identity.name, key_changes),
            fee_band_percent: FEE_BAND_PERCENT,
            retired_keys: (0..key_changes)
                .map(|n| crate::members::bitcoin_key(builder, &identity.name, n))
                .collect(),
        })
    }

    /// The Bitcoin kinds node `identity` does not run: a SON withholding its signatures does
    /// not run the signing kind.
    pub fn disabled_kinds(&self, identity: &NodeIdentity) -> Vec<&'static str> {
        let byzantine = identity
            .son
            .and_then(|s| u32::try_from(s.0).ok())
            .and_then(|i| self.spec.byzantine.get(&i));
        match byzantine {
            Some(Byzantine::WithholdSignatures) => vec![sonprop_bitcoin::SIGN],
            _ => Vec::new(),
        }
    }

    /// The simulated Bitcoin network.
    pub fn network(&self) -> &SimBitcoin {
        &self.btc
    }

    /// Its state to store with a resumable run.
    pub fn save(&self) -> BridgeLocal {
        BridgeLocal { btc: Some(self.btc.export()), ..self.local.clone() }
    }

    /// Restores what [`Bridge::save`] stored.
    pub fn restore(&mut self, local: BridgeLocal) -> Result<(), String> {
        if let Some(e) = &local.btc {
            self.btc.restore(e)?;
        }
        self.local = BridgeLocal { btc: None, ..local };
        Ok(())
    }

    fn sign(
        &self,
        st: &State,
        user: usize,
        op: impl sonprop_core::Operation + 'static,
    ) -> SignedTransaction {
        let expires = st.head_time().plus(USER_TX_LIFETIME);
        Transaction::single(expires, op).sign(&st.chain_id(), &[&self.users[user].keys])
    }

    /// The user's own address (where its withdrawals go).
    fn user_address(&self, user: usize) -> String {
        let key = bitcoin::CompressedPublicKey::try_from(self.user_keys[user])
            .map(|k| bitcoin::Address::p2wpkh(&k, bitcoin::Network::Regtest).to_string());
        key.unwrap_or_default()
    }

    /// Before block production at `elapsed` seconds: Bitcoin mines and reorganises as due, and
    /// the users act (registering keys, paying deposits, asking for withdrawals).
    pub fn before_block(
        &mut self,
        st: &State,
        elapsed: u64,
        height: u64,
        mempool: &mut Vec<SignedTransaction>,
        timeline: &mut dyn FnMut(Entry),
    ) {
        let mut say = |at: u64, text: String| timeline(Entry { height, elapsed: at, text });
        while self.local.next_block_at <= elapsed {
            self.btc.mine();
            self.local.next_block_at += self.spec.block_interval;
        }
        while let Some(r) = self.spec.reorgs.get(self.local.next_reorg).filter(|r| r.at <= elapsed)
        {
            let vanished = self.btc.reorg(r.depth as usize);
            say(
                r.at,
                format!(
                    "Bitcoin reorganises its last {}: {} vanish, the rest return to the mempool",
                    counted(u64::from(r.depth), "block"),
                    counted(vanished as u64, "transaction")
                ),
            );
            self.local.next_reorg += 1;
        }
        if !self.local.registered {
            for (i, u) in self.users.iter().enumerate() {
                let op = RegisterDepositKey {
                    account: u.account,
                    public_key: self.user_keys[i].to_string(),
                    withdraw_address: Some(self.user_address(i)),
                    proof: prove_deposit_key(&st.chain_id(), u.account, &self.user_secrets[i]),
                };
                mempool.push(self.sign(st, i, op));
            }
            self.local.registered = true;
        }
        if !self.local.reserve_paid {
            if let Some(w) = current_wallet(st) {
                let spk = bitcoin::ScriptBuf::new_p2wsh(&w.script().wscript_hash());
                self.btc.pay(&spk, self.spec.reserve_sat);
                say(
                    elapsed,
                    format!(
                        "the SONs pay {} into primary wallet {} ({}): their reserve for sweep fees",
                        btc(self.spec.reserve_sat),
                        w.id,
                        w.address
                    ),
                );
                self.local.reserve_paid = true;
            }
        }
        while let Some(d) =
            self.spec.deposits.get(self.local.next_deposit).filter(|d| d.at <= elapsed)
        {
            let user = &self.users[d.user as usize];
            // Until the user's key is on chain and a wallet exists, the user has no address.
            let Some(address) = deposit_address(st, user.account) else { break };
            let o = self.btc.pay(&address.script_pubkey(), d.sat);
            say(
                elapsed,
                format!("{} pays {} to its deposit address {address} ({o})", user.name, btc(d.sat)),
            );
            self.local.deposits.push(MadeDeposit {
                outpoint: o.to_string(),
                user: d.user,
                sat: d.sat,
                hostile: false,
                at: st.globals().genesis_time.secs() + elapsed,
            });
            self.local.next_deposit += 1;
        }
        self.hostile_users(st, elapsed, mempool, &mut say);
        self.byzantine_sons(st, elapsed, mempool, &mut say);
        while let Some(w) =
            self.spec.withdrawals.get(self.local.next_withdrawal).filter(|w| w.at <= elapsed)
        {
            let i = w.user as usize;
            let user = &self.users[i];
            // A user withdraws what it holds: the withdrawal waits for its PBTC.
            if st.balance(user.account, PBTC) < w.sat {
                break;
            }
            let op = Withdraw { account: user.account, amount_sat: w.sat, address: None };
            mempool.push(self.sign(st, i, op));
            say(
                elapsed,
                format!(
                    "{} asks to withdraw {} to {}",
                    user.name,
                    btc(w.sat),
                    self.user_address(i)
                ),
            );
            self.local.next_withdrawal += 1;
        }
    }

    /// What the hostile users do before this block.
    fn hostile_users(
        &mut self,
        st: &State,
        elapsed: u64,
        mempool: &mut Vec<SignedTransaction>,
        say: &mut dyn FnMut(u64, String),
    ) {
        for (k, h) in self.spec.hostile.clone().iter().enumerate() {
            let i = h.user as usize;
            match h.act {
                Hostile::StealKey { victim } => {
                    if h.at > elapsed || self.local.hostile_done[k] > 0 {
                        continue;
                    }
                    self.local.hostile_done[k] = 1;
                    // It has the victim's public key, not its secret: it proves with its own.
                    let op = RegisterDepositKey {
                        account: self.users[i].account,
                        public_key: self.user_keys[victim as usize].to_string(),
                        withdraw_address: None,
                        proof: prove_deposit_key(
                            &st.chain_id(),
                            self.users[i].account,
                            &self.user_secrets[i],
                        ),
                    };
                    let verdict = match sonprop_core::Operation::check(&op, st) {
                        Ok(()) => "ACCEPTED".to_owned(),
                        Err(e) => format!("refused: {e}"),
                    };
                    say(
                        elapsed,
                        format!(
                            "{} (hostile) registers {}'s deposit key as its own: {verdict}",
                            self.users[i].name, self.users[victim as usize].name
                        ),
                    );
                    self.local.thefts.push(verdict);
                    mempool.push(self.sign(st, i, op));
                }
                Hostile::Deposits { count, sat, every } => {
                    let done = self.local.hostile_done[k];
                    if done >= count || h.at + u64::from(done) * every > elapsed {
                        continue;
                    }
                    let Some(address) = deposit_address(st, self.users[i].account) else {
                        continue;
                    };
                    let o = self.btc.pay(&address.script_pubkey(), sat);
                    if done == 0 {
                        say(
                            elapsed,
                            format!(
                                "{} (hostile) starts paying {count} deposits of {} to {address}, one every {every} s",
                                self.users[i].name,
                                btc(sat)
                            ),
                        );
                    }
                    self.local.hostile_done[k] = done + 1;
                    self.local.deposits.push(MadeDeposit {
                        outpoint: o.to_string(),
                        user: h.user,
                        sat,
                        hostile: true,
                        at: st.globals().genesis_time.secs() + elapsed,
                    });
                }
            }
        }
    }

    /// What the Byzantine SONs send before this block, beyond what their nodes do.
    fn byzantine_sons(
        &mut self,
        st: &State,
        elapsed: u64,
        mempool: &mut Vec<SignedTransaction>,
        say: &mut dyn FnMut(u64, String),
    ) {
        let lie = |son: &NodeIdentity, op: ReportDeposit| {
            Transaction::single(st.head_time().plus(USER_TX_LIFETIME), op)
                .sign(&st.chain_id(), &[&son.keys])
        };
        for (&index, act) in &self.spec.byzantine {
            let Some(son) = self.sons.get(index as usize) else { continue };
            let Some(id) = son.son else { continue };
            match act {
                Byzantine::ReportPreviousWallet => {
                    let Some(previous) = current_wallet(st).and_then(|w| w.id.checked_sub(1))
                    else {
                        continue;
                    };
                    for d in &self.local.deposits
                        [self.local.misreported.min(self.local.deposits.len())..]
                    {
                        let Ok(o) = d.outpoint.parse::<bitcoin::OutPoint>() else { continue };
                        let op = ReportDeposit {
                            son: id,
                            owner: son.account,
                            account: self.users[d.user as usize].account,
                            wallet: previous,
                            txid: o.txid.to_string(),
                            vout: o.vout,
                            amount_sat: d.sat,
                        };
                        mempool.push(lie(son, op));
                    }
                    self.local.misreported = self.local.deposits.len();
                }
                Byzantine::InventDeposits => {
                    let n = self.local.invented.get(&index).copied().unwrap_or(0);
                    if elapsed < 3600 * (n + 1) {
                        continue;
                    }
                    self.local.invented.insert(index, n + 1);
                    let Some(w) = current_wallet(st) else { continue };
                    let seed = format!("invented by son {index}, {n}");
                    let txid = sonprop_core::Digest::of(seed.as_bytes()).to_hex();
                    let user = (n % self.users.len() as u64) as usize;
                    let op = ReportDeposit {
                        son: id,
                        owner: son.account,
                        account: self.users[user].account,
                        wallet: w.id,
                        txid: txid.clone(),
                        vout: 0,
                        amount_sat: 1_000_000_000,
                    };
                    say(
                        elapsed,
                        format!(
                            "son {id} (Byzantine) reports a deposit of 10 BTC to {} that never happened ({txid}:0)",
                            self.users[user].name
                        ),
                    );
                    mempool.push(lie(son, op));
                }
                Byzantine::SentWithoutBroadcast | Byzantine::WithholdSignatures => {}
            }
        }
    }

    /// After a block: a change in the bridge's alarms (the circuit breaker, a reserve too short
    /// for the next sweep) goes on the timeline. They are a function of the Bitcoin crate's
    /// tables, assets and balances: a block that wrote none of them (most blocks, on an idle
    /// bridge) leaves them as they were, and they are not computed again. (The conservation
    /// equation is the Bitcoin crate's invariant, which the simulation checks after every
    /// block.)
    pub fn after_block(
        &mut self,
        st: &State,
        elapsed: u64,
        height: u64,
        timeline: &mut dyn FnMut(Entry),
    ) {
        self.local.checks += 1;
        let inputs = sonprop_bitcoin::state::conservation_inputs(st);
        if self.checked_at.as_ref() == Some(&inputs) {
            return;
        }
        self.checked_at = Some(inputs);
        let now = alarms(st);
        if now != self.local.alarms {
            for a in now.iter().filter(|a| !self.local.alarms.contains(a)) {
                timeline(Entry { height, elapsed, text: format!("ALARM: {a}") });
                if !self.local.alarms_raised.contains(a) {
                    self.local.alarms_raised.push(a.clone());
                }
            }
            if now.is_empty() {
                timeline(Entry { height, elapsed, text: "the bridge's alarms are clear".into() });
            }
            self.local.alarms = now;
        }
    }

    /// The timeline line for a bridge event, naming accounts with `name`.
    pub fn describe(event: &LedgerEvent, name: &dyn Fn(AccountId) -> String) -> Option<String> {
        if let Some(e) = event.decode::<DepositSeen>() {
            return Some(format!(
                "deposit {} from {} first reported by son {}",
                btc(e.amount_sat),
                name(e.account),
                e.son
            ));
        }
        if let Some(e) = event.decode::<DepositConfirmed>() {
            let dissent = match e.dissenting {
                0 => String::new(),
                1 => " (1 SON reported another amount or user)".to_owned(),
                n => format!(" ({n} SONs reported another amount or user)"),
            };
            return Some(format!(
                "deposit {} from {} seen by {}/{} SONs; confirmed on chain{dissent}",
                btc(e.amount_sat),
                name(e.account),
                e.reporters,
                e.of
            ));
        }
        if let Some(e) = event.decode::<DepositSweeping>() {
            return Some(format!("deposit {} swept in {}", e.deposit, e.txid));
        }
        if let Some(e) = event.decode::<DepositCredited>() {
            let amount = btc(e.credited).replace(" BTC", "");
            return Some(format!(
                "deposit {} settled, {amount} PBTC issued to {}",
                e.deposit,
                name(e.account)
            ));
        }
        if let Some(e) = event.decode::<WithdrawalRequested>() {
            return Some(format!(
                "withdrawal {} of {} by {}: PBTC held in escrow",
                e.withdrawal,
                btc(e.amount_sat),
                name(e.account)
            ));
        }
        if let Some(e) = event.decode::<WithdrawalPaying>() {
            return Some(format!(
                "withdrawal {} to be paid by {} (sidechain tx {}; the SONs sign it)",
                e.withdrawal, e.txid, e.tx
            ));
        }
        if let Some(e) = event.decode::<WithdrawalPaid>() {
            let burnt = btc(e.burnt).replace(" BTC", "");
            return Some(format!(
                "withdrawal {} settled: {} reached {}'s address, {burnt} PBTC burnt",
                e.withdrawal,
                btc(e.sent_sat),
                name(e.account)
            ));
        }
        if let Some(e) = event.decode::<WithdrawalRefunded>() {
            return Some(format!(
                "withdrawal {} refunded to {}: {}",
                e.withdrawal,
                name(e.account),
                e.reason
            ));
        }
        None
    }

    /// The report's section, and with `expect_all_settled`, one expectation per deposit and
    /// withdrawal that it settles.
    pub fn report(
        &self,
        st: &State,
        name: &dyn Fn(AccountId) -> crate::json::Account,
    ) -> (BridgeReport, Vec<crate::json::ExpectationResult>) {
        let mut settled = Vec::new();
        let said = |a: &crate::json::Account| a.to_string();
        let genesis = st.globals().genesis_time.secs();
        let paid = |d: &MadeDeposit| (d.at > 0).then(|| crate::json::Time::at(genesis, d.at));
        let deposits: Vec<DepositEntry> = self
            .local
            .deposits
            .iter()
            .map(|d| {
                let outpoint = d.outpoint.parse::<bitcoin::OutPoint>().ok();
                let row = outpoint
                    .and_then(|o| st.row::<Deposits>(&sonprop_bitcoin::state::utxo_key(&o)));
                let exists = outpoint.is_some_and(|o| self.btc.knows(&o.txid));
                let (status, credited) = match row.map(|r| &r.status) {
                    // Reorganised away before the SONs saw it confirmed: never credited, and
                    // not owed.
                    None if !exists => {
                        let user = name(self.users[d.user as usize].account);
                        let status = "vanished in a Bitcoin reorganisation".to_owned();
                        return DepositEntry {
                            outpoint: d.outpoint.clone(),
                            user,
                            sat: d.sat,
                            status,
                            credited: None,
                            hostile: d.hostile,
                            stages: DepositStages { paid: paid(d), ..DepositStages::default() },
                            tx: None,
                            fee_sat: None,
                        };
                    }
                    None => ("unreported".to_owned(), None),
                    Some(DepositStatus::Credited { credited, .. }) => {
                        ("credited".to_owned(), Some(*credited))
                    }
                    Some(s) => (s.to_string(), None),
                };
                let user = name(self.users[d.user as usize].account);
                // An honest deposit must be credited; a hostile one must at least be decided
                // (credited, or refused with its reason), never left hanging.
                let decided = credited.is_some()
                    || matches!(row.map(|r| &r.status), Some(DepositStatus::TooSmall { .. }));
                let (who, what) = (said(&user), &d.outpoint);
                settled.push(crate::json::ExpectationResult::new(
                    match d.hostile {
                        false => format!("deposit {what} from {who} is credited"),
                        true => format!("hostile deposit {what} from {who} is decided"),
                    },
                    ((!d.hostile && credited.is_none()) || (d.hostile && !decided))
                        .then(|| format!("deposit {what} from {who} is {status}")),
                ));
                DepositEntry {
                    outpoint: d.outpoint.clone(),
                    user,
                    sat: d.sat,
                    status,
                    credited,
                    hostile: d.hostile,
                    stages: DepositStages { paid: paid(d), ..DepositStages::default() },
                    tx: None,
                    fee_sat: None,
                }
            })
            .collect();
        for d in &self.spec.deposits[self.local.next_deposit.min(self.spec.deposits.len())..] {
            let user = said(&name(self.users[d.user as usize].account));
            settled.push(crate::json::ExpectationResult::new(
                format!("the deposit of {} by {user} is credited", btc(d.sat)),
                Some(format!("the deposit of {} by {user} was never made", btc(d.sat))),
            ));
        }
        let withdrawals: Vec<WithdrawalEntry> = st
            .rows::<Withdrawals>()
            .map(|(_, w)| {
                let (status, sent_sat) = match &w.status {
                    WithdrawalStatus::Paid { sent_sat, .. } => ("paid".to_owned(), Some(*sent_sat)),
                    s => (s.to_string(), None),
                };
                let user = name(w.account);
                let who = said(&user);
                settled.push(crate::json::ExpectationResult::new(
                    format!("withdrawal {} of {who} is paid", w.id),
                    sent_sat.is_none().then(|| format!("withdrawal {} of {who} is {status}", w.id)),
                ));
                WithdrawalEntry {
                    id: w.id,
                    user,
                    sat: w.amount_sat,
                    address: w.address.clone(),
                    status,
                    sent_sat,
                    stages: WithdrawalStages::default(),
                    tx: None,
                    fee_sat: None,
                }
            })
            .collect();
        for w in
            &self.spec.withdrawals[self.local.next_withdrawal.min(self.spec.withdrawals.len())..]
        {
            let user = said(&name(self.users[w.user as usize].account));
            settled.push(crate::json::ExpectationResult::new(
                format!("the withdrawal of {} by {user} is paid", btc(w.sat)),
                Some(format!("the withdrawal of {} by {user} was never asked", btc(w.sat))),
            ));
        }
        let transactions = st
            .rows::<sonprop_bitcoin::state::Transactions>()
            .map(|(_, t)| TxEntry::of(st, t))
            .collect();
        let report = BridgeReport {
            bitcoin_blocks: self.btc.height() as u64,
            deposits,
            withdrawals,
            transactions,
            conservation: ConservationReport::of(conservation(st)),
            conservation_checks: self.local.checks,
            rejected_broadcasts: self.btc.rejected(),
            alarms: self.local.alarms.clone(),
            alarms_raised: self.local.alarms_raised.clone(),
            key_thefts: self.local.thefts.clone(),
        };
        if !self.spec.expect_all_settled {
            settled.clear();
        }
        (report, settled)
    }
}

/// A deposit in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepositEntry {
    /// `txid:vout`.
    pub outpoint: String,
    /// The user.
    pub user: crate::json::Account,
    /// Satoshis paid.
    pub sat: u64,
    /// Where it stands.
    pub status: String,
    /// PBTC issued (the amount less the sweep's fee and its carry), once credited.
    pub credited: Option<u64>,
    /// Paid by a hostile user (dust, fragmentation).
    pub hostile: bool,
    /// Its stages, each `null` until reached.
    pub stages: DepositStages,
    /// Its sweep (sidechain transaction), once proposed.
    pub tx: Option<u64>,
    /// What its sweep paid Bitcoin's miners, once proposed.
    pub fee_sat: Option<u64>,
}

/// When a deposit reached each stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DepositStages {
    /// The user paid the deposit address (on Bitcoin).
    pub paid: Option<crate::json::Time>,
    /// The first SON reported it.
    pub reported: Option<crate::json::Time>,
    /// SONs above two thirds of the wallet's weight reported it.
    pub confirmed: Option<crate::json::Time>,
    /// Its sweep was proposed and recorded.
    pub swept: Option<crate::json::Time>,
    /// Its sweep settled and the PBTC was issued.
    pub settled: Option<crate::json::Time>,
}

/// When a withdrawal reached each stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WithdrawalStages {
    /// The user asked (its PBTC went to escrow).
    pub requested: Option<crate::json::Time>,
    /// Its payment was proposed and recorded.
    pub paying: Option<crate::json::Time>,
    /// The payment settled and the PBTC was burnt.
    pub paid: Option<crate::json::Time>,
    /// The PBTC went back to the user instead.
    pub refunded: Option<crate::json::Time>,
}

/// Fills each deposit's and withdrawal's stages, sidechain transaction and fee from the
/// report's events (the Bitcoin crate's events name them) and the transactions.
pub fn fill_stages(b: &mut BridgeReport, events: &[crate::report::Event]) {
    use crate::report::Event;
    // The first event of each (kind, name) about each deposit or withdrawal, in one pass:
    // keyed by the field naming the flow and its value as JSON text.
    let mut first: BTreeMap<(&str, String, &str, &str), &Event> = BTreeMap::new();
    for e in events {
        for field in ["deposit", "withdrawal"] {
            if let Some(v) = e.data.get(field) {
                first.entry((field, v.to_string(), &e.kind, &e.name)).or_insert(e);
            }
        }
    }
    let event = |field: &'static str, flow: &str, kind: &'static str, name: &'static str| {
        first.get(&(field, flow.to_owned(), kind, name)).copied()
    };
    let at = |e: Option<&Event>| e.map(|e| e.at.clone());
    let tx_of = |e: Option<&Event>| e.and_then(|e| e.data.get("tx")).and_then(|v| v.as_u64());
    let fee = |tx: Option<u64>, txs: &[TxEntry]| {
        tx.and_then(|id| txs.iter().find(|t| t.id == id)).map(|t| t.fee_sat)
    };
    for d in &mut b.deposits {
        let flow = serde_json::Value::from(d.outpoint.as_str()).to_string();
        let of = |kind, name| event("deposit", &flow, kind, name);
        d.stages.reported = at(of(DEPOSIT_REPORT, "seen"));
        d.stages.confirmed = at(of(DEPOSIT_REPORT, "confirmed"));
        d.stages.swept = at(of(DEPOSIT_PROCESS, "sweeping"));
        d.stages.settled = at(of(SETTLE, "deposit_credited"));
        d.tx = tx_of(of(DEPOSIT_PROCESS, "sweeping"));
        d.fee_sat = fee(d.tx, &b.transactions);
    }
    for w in &mut b.withdrawals {
        let flow = w.id.to_string();
        let of = |kind, name| event("withdrawal", &flow, kind, name);
        w.stages.requested = at(of(WITHDRAW, "requested"));
        w.stages.paying = at(of(WITHDRAW_PROCESS, "paying"));
        w.stages.paid = at(of(SETTLE, "withdrawal_paid"));
        w.stages.refunded = at(of(WITHDRAW_REFUND, "refunded"));
        w.tx = tx_of(of(WITHDRAW_PROCESS, "paying"));
        w.fee_sat = fee(w.tx, &b.transactions);
    }
}

/// A sidechain transaction in the report: what the chain built and the SONs signed, for an
/// operator (or an independent tool) to audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxEntry {
    /// Its number on chain.
    pub id: u64,
    /// Its Bitcoin txid (the current version's).
    pub txid: String,
    /// `wallet_sweep`, `consolidation`, `deposit_sweep` or `payment`.
    pub kind: &'static str,
    /// Where it stands.
    pub status: String,
    /// Its weight as broadcast once signed (BIP141 weight units), or the estimate it was
    /// built to while signatures are missing.
    pub weight: u64,
    /// What it pays Bitcoin's miners, satoshis.
    pub fee_sat: u64,
    /// Its fee rate, sat/vB.
    pub fee_rate: u64,
    /// Earlier versions replaced by a higher fee rate.
    pub replaced: Vec<String>,
    /// The signed transaction, hex, once complete.
    pub hex: Option<String>,
}

impl TxEntry {
    fn of(st: &State, t: &sonprop_bitcoin::state::SidechainTx) -> TxEntry {
        use sonprop_bitcoin::state::Purpose;
        let kind = match t.purpose {
            Purpose::Sweep { from, to } if from == to => "consolidation",
            Purpose::Sweep { .. } => "wallet_sweep",
            Purpose::Deposit { .. } => "deposit_sweep",
            Purpose::Withdrawal { .. } => "payment",
        };
        let unsigned = sonprop_bitcoin::tx::from_hex(&t.unsigned_tx);
        let spent: u64 = t.inputs.iter().map(|i| i.amount_sat).sum();
        let paid: u64 =
            unsigned.iter().flat_map(|u| u.output.iter()).map(|o| o.value.to_sat()).sum();
        let wallet = st.row::<sonprop_bitcoin::state::Wallets>(&t.signing_wallet);
        let signed = match (&t.status, wallet) {
            (
                sonprop_bitcoin::state::TxStatus::Valid
                | sonprop_bitcoin::state::TxStatus::Failed { .. },
                _,
            )
            | (_, None) => None,
            (_, Some(w)) => sonprop_bitcoin::ops::signed_transaction(t, t.current(), w).ok(),
        };
        let weight = match (&signed, &unsigned, wallet) {
            (Some(s), _, _) => s.weight().to_wu(),
            (None, Some(u), Some(w)) => sonprop_bitcoin::tx::estimate_weight(
                u.input.len(),
                u.output.len(),
                w.signers.len(),
                sonprop_bitcoin::ops::spent_script(t, w).map_or(0, |s| s.len()),
                matches!(t.purpose, Purpose::Deposit { .. }),
            ),
            _ => 0,
        };
        TxEntry {
            id: t.id,
            txid: t.bitcoin_txid.clone(),
            kind,
            status: t.status.to_string(),
            weight,
            fee_sat: spent.saturating_sub(paid),
            fee_rate: t.fee_rate,
            replaced: t.replaced.iter().map(|v| v.txid.clone()).collect(),
            hex: signed.map(|s| sonprop_bitcoin::tx::to_hex(&s)),
        }
    }
}

/// A withdrawal in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WithdrawalEntry {
    /// Its number.
    pub id: u64,
    /// The user.
    pub user: crate::json::Account,
    /// PBTC withdrawn.
    pub sat: u64,
    /// The address paid.
    pub address: String,
    /// Where it stands.
    pub status: String,
    /// Satoshis the address received (the amount less the fee), once paid.
    pub sent_sat: Option<u64>,
    /// Its stages, each `null` until reached.
    pub stages: WithdrawalStages,
    /// Its payment (sidechain transaction), once proposed.
    pub tx: Option<u64>,
    /// What its payment paid Bitcoin's miners, once proposed.
    pub fee_sat: Option<u64>,
}

/// The conservation equation at the end of a run: whether it holds, its figures, or how it
/// is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConservationReport {
    /// Whether it holds.
    pub holds: bool,
    /// How it is broken; `null` when it holds.
    pub broken: Option<String>,
    /// Both sides, when it holds; `null` when broken.
    pub figures: Option<Conservation>,
}

impl ConservationReport {
    /// The report's form of the equation's check.
    pub fn of<E: std::fmt::Display>(checked: Result<Conservation, E>) -> ConservationReport {
        match checked {
            Ok(c) => ConservationReport { holds: true, broken: None, figures: Some(c) },
            Err(e) => {
                ConservationReport { holds: false, broken: Some(e.to_string()), figures: None }
            }
        }
    }
}

/// The report's `bitcoin` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BridgeReport {
    /// Bitcoin blocks mined.
    pub bitcoin_blocks: u64,
    /// Every deposit made.
    pub deposits: Vec<DepositEntry>,
    /// Every withdrawal on chain.
    pub withdrawals: Vec<WithdrawalEntry>,
    /// Both sides of the conservation equation at the end, or how it is broken.
    pub conservation: ConservationReport,
    /// Blocks after which the equation was checked (every block of the run).
    pub conservation_checks: u64,
    /// Broadcasts the simulated network refused.
    pub rejected_broadcasts: Vec<String>,
    /// Every sidechain transaction the chain built, in order.
    pub transactions: Vec<TxEntry>,
    /// The bridge's alarms at the end (the circuit breaker, a reserve too short).
    pub alarms: Vec<String>,
    /// Every alarm raised during the run, once each.
    pub alarms_raised: Vec<String>,
    /// Hostile users' attempts to register another user's deposit key, with the chain's
    /// verdict on each.
    pub key_thefts: Vec<String>,
}
