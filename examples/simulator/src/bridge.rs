//! The Bitcoin bridge in a simulation: a simulated Bitcoin network every SON node sees through
//! its own (possibly faulty) view, the users who deposit and withdraw, the timeline lines for
//! the bridge's events, the conservation check after every block, and the report's section.

use serde::{Deserialize, Serialize};
use sonprop_bitcoin::flows::{
    btc, deposit_address, prove_deposit_key, DepositConfirmed, DepositCredited, DepositSeen,
    DepositSweeping, RegisterDepositKey, Withdraw, WithdrawalPaid, WithdrawalPaying,
    WithdrawalRefunded, WithdrawalRequested,
};
use sonprop_bitcoin::node::BitcoinNode;
use sonprop_bitcoin::sim::{Fault, ScriptCheck, SimBitcoin, SimExport};
use sonprop_bitcoin::state::{
    conservation, current_wallet, Conservation, DepositStatus, Deposits, WithdrawalStatus,
    Withdrawals,
};
use sonprop_core::chain::crypto::KeyPair;
use sonprop_core::testkit::NetworkBuilder;
use sonprop_core::{
    AccountId, Asset, AssetId, LedgerEvent, NodeIdentity, SignedTransaction, State, Transaction,
};

use crate::scenario::BitcoinScenario;
use crate::sim::Entry;

/// The wrapped asset's id in a bridge scenario's genesis.
pub const PBTC: AssetId = AssetId(1);
/// How far a SON's fee rate may be from its own estimate before it abstains, percent.
const FEE_BAND_PERCENT: u64 = 25;
/// Lifetime of the users' transactions, chain seconds.
const USER_TX_LIFETIME: u64 = 60;

/// The pBTC asset a bridge scenario's genesis holds (issued by the SON account, none yet).
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
}

/// The bridge of a running simulation.
pub struct Bridge {
    spec: BitcoinScenario,
    btc: SimBitcoin,
    users: Vec<NodeIdentity>,
    user_keys: Vec<bitcoin::PublicKey>,
    user_secrets: Vec<bitcoin::secp256k1::SecretKey>,
    local: BridgeLocal,
}

impl Bridge {
    /// The bridge of `spec` for a network of `users`, with keys from `builder`.
    pub fn new(
        spec: &BitcoinScenario,
        builder: &NetworkBuilder,
        users: Vec<NodeIdentity>,
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
            local: BridgeLocal { next_block_at: spec.block_interval, ..BridgeLocal::default() },
        }
    }

    /// The services of node `identity`: a SON gets its Bitcoin key and its view of the
    /// simulated network (faulty if the scenario says so).
    pub fn service(
        &self,
        identity: &NodeIdentity,
        builder: &NetworkBuilder,
    ) -> Option<BitcoinNode> {
        let son = identity.son?;
        let fault = u32::try_from(son.0)
            .ok()
            .and_then(|i| self.spec.faults.get(&i).copied())
            .unwrap_or(Fault::Honest);
        Some(BitcoinNode {
            source: self.btc.view(fault),
            key: builder.sidechain_key(&identity.name, "bitcoin").secret_key(),
            fee_band_percent: FEE_BAND_PERCENT,
        })
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
                    "Bitcoin reorganises its last {} block(s): {vanished} transaction(s) vanish, the rest return to the mempool",
                    r.depth
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
            });
            self.local.next_deposit += 1;
        }
        while let Some(w) =
            self.spec.withdrawals.get(self.local.next_withdrawal).filter(|w| w.at <= elapsed)
        {
            let i = w.user as usize;
            let user = &self.users[i];
            // A user withdraws what it holds: the withdrawal waits for its pBTC.
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

    /// After a block: the conservation equation must hold.
    pub fn after_block(&mut self, st: &State) -> Result<(), String> {
        conservation(st).map_err(|e| e.to_string())?;
        self.local.checks += 1;
        Ok(())
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
                "deposit {} settled, {amount} pBTC issued to {}",
                e.deposit,
                name(e.account)
            ));
        }
        if let Some(e) = event.decode::<WithdrawalRequested>() {
            return Some(format!(
                "withdrawal {} of {} by {}: pBTC held in escrow",
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
                "withdrawal {} settled: {} reached {}'s address, {burnt} pBTC burnt",
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

    /// The report's section, and what `expect_all_settled` finds unsettled.
    pub fn report(
        &self,
        st: &State,
        name: &dyn Fn(AccountId) -> String,
    ) -> (BridgeReport, Vec<String>, usize) {
        let mut failures = Vec::new();
        let mut checked = 0;
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
                        };
                    }
                    None => ("unreported".to_owned(), None),
                    Some(DepositStatus::Credited { credited, .. }) => {
                        ("credited".to_owned(), Some(*credited))
                    }
                    Some(s) => (s.to_string(), None),
                };
                let user = name(self.users[d.user as usize].account);
                checked += 1;
                if credited.is_none() {
                    failures.push(format!("deposit {} from {user} is {status}", d.outpoint));
                }
                DepositEntry { outpoint: d.outpoint.clone(), user, sat: d.sat, status, credited }
            })
            .collect();
        for d in &self.spec.deposits[self.local.next_deposit.min(self.spec.deposits.len())..] {
            checked += 1;
            let user = name(self.users[d.user as usize].account);
            failures.push(format!("the deposit of {} by {user} was never made", btc(d.sat)));
        }
        let withdrawals: Vec<WithdrawalEntry> = st
            .rows::<Withdrawals>()
            .map(|(_, w)| {
                let (status, sent_sat) = match &w.status {
                    WithdrawalStatus::Paid { sent_sat, .. } => ("paid".to_owned(), Some(*sent_sat)),
                    s => (s.to_string(), None),
                };
                let user = name(w.account);
                checked += 1;
                if sent_sat.is_none() {
                    failures.push(format!("withdrawal {} of {user} is {status}", w.id));
                }
                WithdrawalEntry {
                    id: w.id,
                    user,
                    sat: w.amount_sat,
                    address: w.address.clone(),
                    status,
                    sent_sat,
                }
            })
            .collect();
        for w in
            &self.spec.withdrawals[self.local.next_withdrawal.min(self.spec.withdrawals.len())..]
        {
            checked += 1;
            let user = name(self.users[w.user as usize].account);
            failures.push(format!("the withdrawal of {} by {user} was never asked", btc(w.sat)));
        }
        let report = BridgeReport {
            bitcoin_blocks: self.btc.height() as u64,
            deposits,
            withdrawals,
            conservation: conservation(st).map_err(|e| e.to_string()),
            conservation_checks: self.local.checks,
            rejected_broadcasts: self.btc.rejected(),
        };
        if !self.spec.expect_all_settled {
            failures.clear();
            checked = 0;
        }
        (report, failures, checked)
    }
}

/// A deposit in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepositEntry {
    /// `txid:vout`.
    pub outpoint: String,
    /// The user.
    pub user: String,
    /// Satoshis paid.
    pub sat: u64,
    /// Where it stands.
    pub status: String,
    /// pBTC issued (the amount less the sweep's fee), once credited.
    pub credited: Option<u64>,
}

/// A withdrawal in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WithdrawalEntry {
    /// Its number.
    pub id: u64,
    /// The user.
    pub user: String,
    /// pBTC withdrawn.
    pub sat: u64,
    /// The address paid.
    pub address: String,
    /// Where it stands.
    pub status: String,
    /// Satoshis the address received (the amount less the fee), once paid.
    pub sent_sat: Option<u64>,
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
    /// Both sides of the conservation equation at the end (or how it is broken).
    pub conservation: Result<Conservation, String>,
    /// Blocks after which the equation was checked (every block of the run).
    pub conservation_checks: u64,
    /// Broadcasts the simulated network refused.
    pub rejected_broadcasts: Vec<String>,
}
