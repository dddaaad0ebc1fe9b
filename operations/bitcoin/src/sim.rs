//! A simulated Bitcoin network for tests and simulations (node-local: nothing on chain reads
//! it). Blocks are mined when the caller says so; a mempool holds what was broadcast since;
//! every broadcast is validated (its inputs exist and are unspent, its outputs do not exceed
//! its inputs, and each input's script passes the [`ScriptCheck`] given, e.g. Bitcoin Core's
//! consensus library); the tip can be reorganised; and each node sees the network through a
//! [`SimView`] that may be faulty (lying about amounts, lagging, offline).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bitcoin::hashes::Hash;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};

use crate::node::{BitcoinSource, SeenOutput, SourceError};

/// Checks input `index` of `tx`, which spends `spent` (a script interpreter).
pub type ScriptCheck = dyn Fn(&Transaction, usize, &TxOut) -> Result<(), String> + Send + Sync;

/// One transaction the network holds.
#[derive(Debug, Clone)]
struct Held {
    tx: Transaction,
    /// A payment from outside (a user's wallet): its inputs are not tracked.
    external: bool,
    /// What it pays miners, in satoshis (0 for outside payments).
    fee: u64,
}

impl Held {
    fn new(tx: Transaction, external: bool) -> Held {
        Held { tx, external, fee: 0 }
    }

    /// Its fee rate, sat/vB (outside payments always qualify).
    fn fee_rate(&self) -> u64 {
        if self.external {
            return u64::MAX;
        }
        self.fee / self.tx.vsize().max(1) as u64
    }

    /// Whether it signals replace-by-fee (BIP125).
    fn replaceable(&self) -> bool {
        self.tx.input.iter().any(|i| i.sequence.is_rbf())
    }
}

/// Why Bitcoin Core's mempool policy refuses a transaction (it is valid, but not relayed).
pub fn standardness(tx: &Transaction) -> Result<(), String> {
    let weight = tx.weight().to_wu();
    if weight > crate::tx::MAX_STANDARD_WEIGHT {
        return Err(format!(
            "non-standard: weight {weight} > {} (tx-size)",
            crate::tx::MAX_STANDARD_WEIGHT
        ));
    }
    for (i, o) in tx.output.iter().enumerate() {
        let dust = o.script_pubkey.minimal_non_dust();
        if o.value < dust {
            return Err(format!(
                "non-standard: output {i} of {} sat is below its dust limit of {} sat",
                o.value.to_sat(),
                dust.to_sat()
            ));
        }
    }
    for (i, input) in tx.input.iter().enumerate() {
        // Bitcoin Core's IsWitnessStandard for P2WSH: the script at most 3 600 bytes, at most
        // 100 other stack items, each at most 80 bytes.
        let items: Vec<&[u8]> = input.witness.iter().collect();
        let Some((script, stack)) = items.split_last() else { continue };
        if script.len() > 3600 {
            return Err(format!(
                "non-standard: input {i}'s witness script is {} bytes",
                script.len()
            ));
        }
        if stack.len() > 100 {
            return Err(format!("non-standard: input {i} has {} witness stack items", stack.len()));
        }
        if let Some(big) = stack.iter().find(|e| e.len() > 80) {
            return Err(format!("non-standard: input {i} has a {}-byte stack item", big.len()));
        }
    }
    Ok(())
}

/// An unspent output: what it pays, and the height of the block holding it (`None`: mempool).
type Unspent = (TxOut, Option<usize>);

/// The network's state. The unspent set (and its index by script) is kept as transactions
/// arrive and blocks are mined, and rebuilt from the blocks after a reorg.
#[derive(Default)]
struct Chain {
    blocks: Vec<Vec<Held>>,
    mempool: Vec<Held>,
    fee_rate: u64,
    /// Miners take only transactions paying at least this (sat/vB); 0: everything.
    mining_floor: u64,
    /// Broadcasts are lost (answered as accepted, never relayed), like a node cut off from
    /// its peers.
    lost_broadcasts: bool,
    payments: u64,
    rejected: Vec<String>,
    utxos: BTreeMap<OutPoint, Unspent>,
    by_script: BTreeMap<ScriptBuf, BTreeSet<OutPoint>>,
    /// Where each transaction is: its block height (`None`: mempool).
    located: BTreeMap<Txid, Option<usize>>,
    /// Counts every change of the tip (a block mined, blocks taken away).
    tip_changes: u64,
}

impl Chain {
    fn admit(&mut self, mut held: Held, height: Option<usize>) {
        if !held.external {
            let spent: u64 = held
                .tx
                .input
                .iter()
                .filter_map(|i| self.utxos.get(&i.previous_output))
                .map(|(o, _)| o.value.to_sat())
                .sum();
            let paid: u64 = held.tx.output.iter().map(|o| o.value.to_sat()).sum();
            held.fee = spent.saturating_sub(paid);
            for i in &held.tx.input {
                if let Some((out, _)) = self.utxos.remove(&i.previous_output) {
                    if let Some(set) = self.by_script.get_mut(&out.script_pubkey) {
                        set.remove(&i.previous_output);
                    }
                }
            }
        }
        let txid = held.tx.compute_txid();
        for (vout, out) in held.tx.output.iter().enumerate() {
            let o = OutPoint { txid, vout: vout as u32 };
            self.by_script.entry(out.script_pubkey.clone()).or_default().insert(o);
            self.utxos.insert(o, (out.clone(), height));
        }
        self.located.insert(txid, height);
        match height {
            Some(h) => self.blocks[h].push(held),
            None => self.mempool.push(held),
        }
    }

    fn mine(&mut self) {
        self.tip_changes += 1;
        let h = self.blocks.len();
        self.blocks.push(Vec::new());
        // Miners take what pays at least their floor, and what spends only what is mined or
        // taken with it; the rest waits.
        let mut block = Vec::new();
        let mut waiting = Vec::new();
        let mut taken = BTreeSet::new();
        for held in std::mem::take(&mut self.mempool) {
            let parents_ok = held.external
                || held.tx.input.iter().all(|i| {
                    let parent = i.previous_output.txid;
                    taken.contains(&parent) || !matches!(self.located.get(&parent), Some(None))
                });
            if parents_ok && held.fee_rate() >= self.mining_floor {
                taken.insert(held.tx.compute_txid());
                block.push(held);
            } else {
                waiting.push(held);
            }
        }
        self.mempool = waiting;
        for held in &block {
            let txid = held.tx.compute_txid();
            self.located.insert(txid, Some(h));
            for vout in 0..held.tx.output.len() {
                if let Some(u) = self.utxos.get_mut(&OutPoint { txid, vout: vout as u32 }) {
                    u.1 = Some(h);
                }
            }
        }
        self.blocks[h] = block;
    }

    /// Keeps the first `keep` blocks and nothing else; returns what was dropped, in order.
    fn truncate(&mut self, keep: usize) -> Vec<Held> {
        self.tip_changes += 1;
        let mut dropped: Vec<Held> = self.blocks.drain(keep..).flatten().collect();
        dropped.append(&mut self.mempool);
        let blocks = std::mem::take(&mut self.blocks);
        self.utxos.clear();
        self.by_script.clear();
        self.located.clear();
        for (h, block) in blocks.into_iter().enumerate() {
            self.blocks.push(Vec::new());
            for held in block {
                self.admit(held, Some(h));
            }
        }
        dropped
    }

    /// The mempool transactions spending any of `tx`'s inputs.
    fn conflicts(&self, tx: &Transaction) -> Vec<usize> {
        let inputs: BTreeSet<OutPoint> = tx.input.iter().map(|i| i.previous_output).collect();
        (0..self.mempool.len())
            .filter(|&k| {
                let m = &self.mempool[k];
                !m.external && m.tx.input.iter().any(|i| inputs.contains(&i.previous_output))
            })
            .collect()
    }

    /// This network without the mempool transactions at `drop` (nor what spends them).
    fn without(&self, drop: &[usize]) -> Chain {
        let mut c = Chain {
            fee_rate: self.fee_rate,
            mining_floor: self.mining_floor,
            payments: self.payments,
            rejected: self.rejected.clone(),
            tip_changes: self.tip_changes,
            ..Chain::default()
        };
        for (h, block) in self.blocks.iter().enumerate() {
            c.blocks.push(Vec::new());
            for held in block {
                c.admit(held.clone(), Some(h));
            }
        }
        for (k, held) in self.mempool.iter().enumerate() {
            if !drop.contains(&k) && (held.external || c.validate(&held.tx, None).is_ok()) {
                c.admit(held.clone(), None);
            }
        }
        c
    }

    /// What `tx` pays miners, its inputs being unspent here.
    fn fee_of(&self, tx: &Transaction) -> u64 {
        let spent: u64 = tx
            .input
            .iter()
            .filter_map(|i| self.utxos.get(&i.previous_output))
            .map(|(o, _)| o.value.to_sat())
            .sum();
        spent.saturating_sub(tx.output.iter().map(|o| o.value.to_sat()).sum())
    }

    /// Replace-by-fee as Bitcoin Core does it (BIP125): `tx`, paying `fee`, may replace the
    /// mempool transactions at `conflicts` if each signals replaceability and it pays more than
    /// all of them together, by at least 1 sat per virtual byte of its own, and more per
    /// virtual byte than any of them.
    fn check_rbf(&self, conflicts: &[usize], tx: &Transaction, fee: u64) -> Result<(), String> {
        if let Some(k) = conflicts.iter().find(|k| !self.mempool[**k].replaceable()) {
            return Err(format!(
                "conflicts with {}, which does not signal replace-by-fee",
                self.mempool[*k].tx.compute_txid()
            ));
        }
        let old_fee: u64 = conflicts.iter().map(|k| self.mempool[*k].fee).sum();
        let old_rate = conflicts.iter().map(|k| self.mempool[*k].fee_rate()).max().unwrap_or(0);
        let vsize = (tx.vsize() as u64).max(1);
        if fee < old_fee.saturating_add(vsize) || fee / vsize <= old_rate {
            return Err(format!(
                "replacement pays {fee} sat ({} sat/vB), not enough over {old_fee} sat ({old_rate} sat/vB)",
                fee / vsize
            ));
        }
        Ok(())
    }

    fn validate(&self, tx: &Transaction, check: Option<&ScriptCheck>) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        let mut total_in = 0u64;
        for (i, input) in tx.input.iter().enumerate() {
            if !seen.insert(input.previous_output) {
                return Err(format!("input {i} spends {} twice", input.previous_output));
            }
            let (spent, _) = self.utxos.get(&input.previous_output).ok_or_else(|| {
                format!("input {i} spends {}, which is missing or spent", input.previous_output)
            })?;
            total_in = total_in.saturating_add(spent.value.to_sat());
            if let Some(check) = check {
                check(tx, i, spent)?;
            }
        }
        let total_out: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
        if total_out > total_in {
            return Err(format!("outputs of {total_out} sat exceed inputs of {total_in} sat"));
        }
        Ok(())
    }

    fn height(&self) -> usize {
        self.blocks.len()
    }

    /// `Some(0)` in the mempool, `None` unknown.
    fn confirmations(&self, txid: &Txid) -> Option<u32> {
        match *self.located.get(txid)? {
            Some(h) => Some((self.height() - h) as u32),
            None => Some(0),
        }
    }

    fn knows(&self, txid: &Txid) -> bool {
        self.located.contains_key(txid)
    }

    fn paying(&self, script_pubkey: &ScriptBuf) -> impl Iterator<Item = (OutPoint, &Unspent)> {
        self.by_script
            .get(script_pubkey)
            .into_iter()
            .flatten()
            .filter_map(|o| Some((*o, self.utxos.get(o)?)))
    }
}

/// A simulated Bitcoin network, shared by every node's [`SimView`].
#[derive(Clone)]
pub struct SimBitcoin {
    chain: Arc<Mutex<Chain>>,
    check: Option<Arc<ScriptCheck>>,
}

impl Default for SimBitcoin {
    fn default() -> Self {
        SimBitcoin::new(2)
    }
}

impl SimBitcoin {
    /// An empty network whose fee estimate is `fee_rate` sat/vB, checking no scripts.
    pub fn new(fee_rate: u64) -> Self {
        let chain = Chain { fee_rate, ..Chain::default() };
        SimBitcoin { chain: Arc::new(Mutex::new(chain)), check: None }
    }

    /// Checks every input of every broadcast with `check` (a script interpreter).
    pub fn with_script_check(mut self, check: Arc<ScriptCheck>) -> Self {
        self.check = Some(check);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A payment from outside (a user's own wallet) of `amount_sat` to `script_pubkey`, into the
    /// mempool. Its outpoint.
    pub fn pay(&self, script_pubkey: &ScriptBuf, amount_sat: u64) -> OutPoint {
        let mut c = self.lock();
        c.payments += 1;
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&c.payments.to_le_bytes());
        seed[8] = 0xee;
        let tx = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint { txid: Txid::from_byte_array(seed), vout: 0 },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(amount_sat),
                script_pubkey: script_pubkey.clone(),
            }],
        };
        let outpoint = OutPoint { txid: tx.compute_txid(), vout: 0 };
        c.admit(Held::new(tx, true), None);
        outpoint
    }

    /// Mines a block of everything in the mempool. The new height.
    pub fn mine(&self) -> usize {
        let mut c = self.lock();
        c.mine();
        c.height()
    }

    /// Mines `n` blocks.
    pub fn mine_n(&self, n: usize) -> usize {
        for _ in 0..n {
            self.mine();
        }
        self.height()
    }

    /// Blocks mined.
    pub fn height(&self) -> usize {
        self.lock().height()
    }

    /// Reorganises the last `depth` blocks away: outside payments in them vanish (the payer
    /// double-spent them on the winning branch) and the other transactions go back to the
    /// mempool if their inputs still exist. How many transactions vanished.
    pub fn reorg(&self, depth: usize) -> usize {
        let mut c = self.lock();
        let keep = c.blocks.len().saturating_sub(depth);
        let dropped = c.truncate(keep);
        let mut vanished = 0;
        for held in dropped {
            if !held.external && c.validate(&held.tx, None).is_ok() {
                c.admit(held, None);
            } else {
                vanished += 1;
            }
        }
        vanished
    }

    /// Sets the fee estimate every honest view gives.
    pub fn set_fee_rate(&self, rate: u64) {
        self.lock().fee_rate = rate;
    }

    /// Miners take only transactions paying at least `rate` sat/vB from now on (0: all): a fee
    /// spike, during which cheaper transactions wait in the mempool.
    pub fn set_mining_floor(&self, rate: u64) {
        self.lock().mining_floor = rate;
    }

    /// From now on broadcasts are lost (`true`): answered as accepted and never relayed, as by
    /// a node cut off from its peers; or relayed again (`false`).
    pub fn lose_broadcasts(&self, lost: bool) {
        self.lock().lost_broadcasts = lost;
    }

    /// Whether `txid` waits in the mempool.
    pub fn in_mempool(&self, txid: &Txid) -> bool {
        matches!(self.lock().located.get(txid), Some(None))
    }

    /// Every transaction broadcast by the nodes and accepted (in blocks or the mempool).
    pub fn accepted(&self) -> Vec<Transaction> {
        let c = self.lock();
        c.blocks
            .iter()
            .flatten()
            .chain(c.mempool.iter())
            .filter(|h| !h.external)
            .map(|h| h.tx.clone())
            .collect()
    }

    /// Whether the network holds transaction `txid` (in a block or the mempool).
    pub fn knows(&self, txid: &Txid) -> bool {
        self.lock().knows(txid)
    }

    /// Every broadcast refused, with the reason.
    pub fn rejected(&self) -> Vec<String> {
        self.lock().rejected.clone()
    }

    /// The unspent outputs paying `script_pubkey`, and their total.
    pub fn balance(&self, script_pubkey: &ScriptBuf) -> u64 {
        self.lock().paying(script_pubkey).map(|(_, (o, _))| o.value.to_sat()).sum()
    }

    /// Validates and accepts `tx` into the mempool (again is not an error), as a Bitcoin Core
    /// node would: standard ([`standardness`]), every input's script passing the script check,
    /// and replacing the mempool transactions it conflicts with only by BIP125's rules.
    pub fn broadcast(&self, tx: &Transaction) -> Result<(), String> {
        let mut c = self.lock();
        let txid = tx.compute_txid();
        if c.knows(&txid) || c.lost_broadcasts {
            return Ok(());
        }
        let verdict = standardness(tx).and_then(|()| {
            let conflicts = c.conflicts(tx);
            if conflicts.is_empty() {
                return c.validate(tx, self.check.as_deref());
            }
            let trial = c.without(&conflicts);
            trial.validate(tx, self.check.as_deref())?;
            c.check_rbf(&conflicts, tx, trial.fee_of(tx))?;
            *c = trial;
            Ok(())
        });
        if let Err(e) = verdict {
            c.rejected.push(format!("{txid}: {e}"));
            return Err(e);
        }
        c.admit(Held::new(tx.clone(), false), None);
        Ok(())
    }

    /// The whole network, to store and [`SimBitcoin::restore`] later (a resumed simulation).
    pub fn export(&self) -> SimExport {
        let c = self.lock();
        let enc = |h: &Held| (crate::tx::to_hex(&h.tx), h.external);
        SimExport {
            blocks: c.blocks.iter().map(|b| b.iter().map(enc).collect()).collect(),
            mempool: c.mempool.iter().map(enc).collect(),
            fee_rate: c.fee_rate,
            payments: c.payments,
            rejected: c.rejected.clone(),
            mining_floor: c.mining_floor,
        }
    }

    /// Replaces this network's contents with an export (its script check is kept).
    pub fn restore(&self, e: &SimExport) -> Result<(), String> {
        let dec = |(hex, external): &(String, bool)| {
            crate::tx::from_hex(hex)
                .map(|tx| Held::new(tx, *external))
                .ok_or_else(|| format!("an undecodable transaction: {hex}"))
        };
        let mut c = Chain {
            fee_rate: e.fee_rate,
            payments: e.payments,
            mining_floor: e.mining_floor,
            tip_changes: e.blocks.len() as u64,
            ..Chain::default()
        };
        c.rejected = e.rejected.clone();
        for (h, block) in e.blocks.iter().enumerate() {
            c.blocks.push(Vec::new());
            for held in block {
                c.admit(dec(held)?, Some(h));
            }
        }
        for held in &e.mempool {
            c.admit(dec(held)?, None);
        }
        *self.lock() = c;
        Ok(())
    }

    /// A node's view of this network with `fault`.
    pub fn view(&self, fault: Fault) -> Arc<SimView> {
        Arc::new(SimView { net: self.clone(), fault })
    }
}

/// A [`SimBitcoin`]'s contents: its blocks and mempool as (hex, outside payment) pairs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SimExport {
    /// The blocks, oldest first.
    pub blocks: Vec<Vec<(String, bool)>>,
    /// The mempool.
    pub mempool: Vec<(String, bool)>,
    /// The fee estimate.
    pub fee_rate: u64,
    /// Outside payments made (they seed the payments' txids).
    pub payments: u64,
    /// Broadcasts refused.
    pub rejected: Vec<String>,
    /// The miners' fee floor, sat/vB.
    #[serde(default)]
    pub mining_floor: u64,
}

/// How a node's view of Bitcoin departs from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// It sees the network as it is.
    #[default]
    Honest,
    /// It adds this many satoshis to every amount it reports.
    Lies(u64),
    /// It sees the chain this many blocks behind.
    Lags(u32),
    /// It sees nothing and cannot broadcast.
    Offline,
    /// It sees the network as it is, but its broadcasts never leave the node (answered as
    /// accepted): a SON that reports transactions sent without sending them.
    DropsBroadcasts,
}

/// One node's view of a [`SimBitcoin`].
pub struct SimView {
    net: SimBitcoin,
    fault: Fault,
}

impl SimView {
    /// The outputs paying `script_pubkey` that this view shows of `c`.
    fn seen(&self, c: &Chain, script_pubkey: &ScriptBuf) -> Vec<SeenOutput> {
        let height = c.height();
        let lie = match self.fault {
            Fault::Lies(d) => d,
            _ => 0,
        };
        c.paying(script_pubkey)
            .filter_map(|(outpoint, (o, h))| {
                let confirmations = h.map_or(0, |h| (height - h) as u32);
                // A lagging node has not seen the newest blocks (nor the mempool).
                let lagged = confirmations.checked_sub(self.lag())?;
                if self.lag() > 0 && h.is_none() {
                    return None;
                }
                Some(SeenOutput {
                    outpoint,
                    amount_sat: o.value.to_sat().saturating_add(lie),
                    confirmations: lagged,
                })
            })
            .collect()
    }

    fn online(&self) -> Result<(), SourceError> {
        if self.fault == Fault::Offline {
            return Err(SourceError::Unavailable("this node's Bitcoin view is offline".into()));
        }
        Ok(())
    }

    fn lag(&self) -> u32 {
        match self.fault {
            Fault::Lags(k) => k,
            _ => 0,
        }
    }
}

impl BitcoinSource for SimView {
    fn fee_rate(&self) -> Result<u64, SourceError> {
        self.online()?;
        Ok(self.net.lock().fee_rate)
    }

    fn outputs_to(&self, script_pubkey: &ScriptBuf) -> Result<Vec<SeenOutput>, SourceError> {
        self.online()?;
        Ok(self.seen(&self.net.lock(), script_pubkey))
    }

    fn outputs_to_many(&self, scripts: &[ScriptBuf]) -> Result<Vec<Vec<SeenOutput>>, SourceError> {
        self.online()?;
        let c = self.net.lock();
        Ok(scripts.iter().map(|s| self.seen(&c, s)).collect())
    }

    fn confirmations(&self, txid: &Txid) -> Result<Option<u32>, SourceError> {
        self.online()?;
        let c = self.net.lock().confirmations(txid);
        Ok(c.and_then(|c| c.checked_sub(self.lag())))
    }

    fn tip(&self) -> Result<Option<u64>, SourceError> {
        self.online()?;
        Ok(Some(self.net.lock().tip_changes))
    }

    fn broadcast(&self, tx: &Transaction) -> Result<(), SourceError> {
        self.online()?;
        if self.fault == Fault::DropsBroadcasts {
            return Ok(());
        }
        self.net.broadcast(tx).map_err(SourceError::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spk(tag: u8) -> ScriptBuf {
        ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([tag; 32]))
    }

    fn spend(from: OutPoint, to: &ScriptBuf, sat: u64) -> Transaction {
        Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![TxIn { previous_output: from, ..TxIn::default() }],
            output: vec![TxOut { value: Amount::from_sat(sat), script_pubkey: to.clone() }],
        }
    }

    #[test]
    fn confirmations_count_blocks_and_views_lag_lie_or_see_nothing() {
        let net = SimBitcoin::new(3);
        let o = net.pay(&spk(1), 1000);
        let honest = net.view(Fault::Honest);
        let seen = |v: &SimView| v.outputs_to(&spk(1)).expect("online");
        assert_eq!(seen(&honest)[0].confirmations, 0, "in the mempool");
        net.mine_n(3);
        assert_eq!(seen(&honest)[0].confirmations, 3);
        assert_eq!(honest.confirmations(&o.txid), Ok(Some(3)));
        let lagging = net.view(Fault::Lags(2));
        assert_eq!(seen(&lagging)[0].confirmations, 1);
        assert_eq!(net.view(Fault::Lags(3)).confirmations(&o.txid), Ok(Some(0)));
        assert_eq!(net.view(Fault::Lags(4)).confirmations(&o.txid), Ok(None));
        assert_eq!(seen(&net.view(Fault::Lies(5)))[0].amount_sat, 1005);
        let off = net.view(Fault::Offline);
        assert!(off.outputs_to(&spk(1)).is_err() && off.fee_rate().is_err());
        assert!(matches!(off.broadcast(&spend(o, &spk(2), 900)), Err(SourceError::Unavailable(_))));
    }

    #[test]
    fn broadcasts_must_spend_unspent_outputs_and_not_create_money() {
        let net = SimBitcoin::new(1);
        let o = net.pay(&spk(1), 1000);
        let err = net.broadcast(&spend(o, &spk(2), 1001)).expect_err("creates money");
        assert!(err.contains("exceed"), "{err}");
        let unknown = OutPoint { txid: Txid::from_byte_array([9; 32]), vout: 0 };
        assert!(net.broadcast(&spend(unknown, &spk(2), 1)).is_err(), "unknown input");
        net.broadcast(&spend(o, &spk(2), 900)).expect("valid");
        net.broadcast(&spend(o, &spk(2), 900)).expect("the same one again is fine");
        let err = net.broadcast(&spend(o, &spk(3), 800)).expect_err("double spend");
        assert!(err.contains("does not signal replace-by-fee"), "{err}");
        net.mine();
        let err = net.broadcast(&spend(o, &spk(3), 800)).expect_err("double spend");
        assert!(err.contains("missing or spent"), "{err}");
        assert_eq!(net.balance(&spk(2)), 900);
        assert_eq!(net.rejected().len(), 4);
    }

    #[test]
    fn a_reorg_drops_outside_payments_and_what_spends_them() {
        let net = SimBitcoin::new(1);
        let keep = net.pay(&spk(1), 500);
        net.mine_n(2);
        let gone = net.pay(&spk(1), 1000);
        net.mine();
        net.broadcast(&spend(gone, &spk(2), 900)).expect("valid");
        net.broadcast(&spend(keep, &spk(3), 400)).expect("valid");
        net.mine();
        assert_eq!(net.reorg(2), 2, "the payment and its spend vanish");
        assert_eq!(net.balance(&spk(2)), 0);
        assert_eq!(net.balance(&spk(3)), 400, "back in the mempool");
        let view = net.view(Fault::Honest);
        assert_eq!(view.outputs_to(&spk(3)).expect("online")[0].confirmations, 0);
        assert!(view.outputs_to(&spk(1)).expect("online").is_empty(), "500 spent, 1000 vanished");
        net.mine();
        // Exported and restored, it is the same network.
        let copy = SimBitcoin::new(7);
        copy.restore(&net.export()).expect("restores");
        assert_eq!(copy.export(), net.export());
        let o = copy.view(Fault::Honest).outputs_to(&spk(3)).expect("online");
        assert_eq!((o[0].amount_sat, o[0].confirmations), (400, 1));
        assert_eq!(copy.pay(&spk(9), 1), net.pay(&spk(9), 1), "the same next payment");
    }
}
