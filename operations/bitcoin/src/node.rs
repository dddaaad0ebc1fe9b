//! The node-local half: the node's view of Bitcoin (a service), and the triggers and validators
//! built from it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{OutPoint, PublicKey, ScriptBuf, Transaction, Txid};
use sonprop_core::{
    async_trait, Deferral, NodeIdentity, PluginError, Proposal, ProposalDraft, SonId, State,
    Subject, Timestamp, Trigger, TriggerOutput, Validator, Verdict,
};

use crate::flows::{
    check_process_deposit, check_process_withdrawal, check_refund, confirmed_deposits,
    expected_deposit_sweep, expected_withdrawal, ProcessDeposit, ProcessWithdrawal,
    RefundWithdrawal, ReportDeposit,
};
use crate::ops::{
    check_bump, check_settle, check_sweep, check_update, check_utxo, expected_sweep,
    expected_update, rebuilt, signed_transaction, spent_script, BumpTx, FailTx, SentTx, SettleTx,
    SignTx, WalletSweep, WalletUpdate, WalletUtxo,
};
use crate::reconcile::{check_reconcile, Gone, Reconcile};
use crate::state::{
    current_wallet, deposit_script, paused, pending, unsettled, utxo_key, with_status,
    ConfirmTimeout, DepositKeys, Deposits, MinConfirmations, SidechainTx, TxStatus, Wallet,
    Wallets, WithdrawalStatus, UTXOS_BY_WALLET,
};
use crate::tx;

/// An output paying a watched script, as one node's Bitcoin view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenOutput {
    /// The output.
    pub outpoint: OutPoint,
    /// Its amount, in satoshis.
    pub amount_sat: u64,
    /// Its confirmations (0: in the mempool).
    pub confirmations: u32,
}

/// What one node sees of Bitcoin: a fee estimate and the outputs paying a script. Node-local:
/// each node has its own, and nodes may disagree; what one proposes from its view the others
/// check against theirs. Every call may fail (the Bitcoin node is down, refuses the
/// credentials, answers nonsense, hangs): the trigger or validator calling it then fails with
/// the error, the scheduler reports it, and blocks go on.
pub trait BitcoinSource: Send + Sync {
    /// The fee rate this node would pay now, sat/vB.
    fn fee_rate(&self) -> Result<u64, SourceError>;
    /// The outputs paying `script_pubkey` that this node sees (confirmed or in its mempool).
    fn outputs_to(&self, script_pubkey: &ScriptBuf) -> Result<Vec<SeenOutput>, SourceError>;
    /// The outputs paying each of `scripts`, asked at once (one list per script, in order): a
    /// source that scans the whole UTXO set (Bitcoin Core's `scantxoutset`) scans once for all
    /// of them. By default, one [`BitcoinSource::outputs_to`] per script.
    fn outputs_to_many(&self, scripts: &[ScriptBuf]) -> Result<Vec<Vec<SeenOutput>>, SourceError> {
        scripts.iter().map(|s| self.outputs_to(s)).collect()
    }
    /// A transaction's confirmations as this node sees them (`Some(0)`: in its mempool;
    /// `None`: unknown to it).
    fn confirmations(&self, txid: &Txid) -> Result<Option<u32>, SourceError>;
    /// Broadcasts a signed transaction. Sending one the node already has is not an error.
    fn broadcast(&self, tx: &Transaction) -> Result<(), SourceError>;
    /// A number naming this node's view of the chain tip: it changes whenever a block is added
    /// or taken away, so confirmations cannot have changed while it stays the same. `None`
    /// (the default): the source cannot say, and callers ask again every time.
    fn tip(&self) -> Result<Option<u64>, SourceError> {
        Ok(None)
    }
}

/// Why a node's Bitcoin source could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The Bitcoin node refused the credentials (HTTP 401).
    #[error("the Bitcoin node refused the credentials (HTTP 401)")]
    Unauthorized,
    /// The Bitcoin node answered with an RPC error.
    #[error("Bitcoin RPC error {code}: {message}")]
    Rpc {
        /// Bitcoin Core's error code (`-5`: not found, `-26`: rejected, …).
        code: i64,
        /// Its message.
        message: String,
    },
    /// The answer was not what the method returns.
    #[error("malformed answer from the Bitcoin node: {0}")]
    Malformed(String),
    /// No answer in time.
    #[error("no answer from the Bitcoin node within {0:?}")]
    Timeout(std::time::Duration),
    /// The Bitcoin node cannot be reached.
    #[error("cannot reach the Bitcoin node: {0}")]
    Unreachable(String),
    /// An HTTP error without a JSON-RPC answer (a full work queue, say).
    #[error("HTTP {status} from the Bitcoin node: {body}")]
    Http {
        /// The status code.
        status: i32,
        /// The body.
        body: String,
    },
    /// Bitcoin refused the transaction.
    #[error("the transaction was rejected: {0}")]
    Rejected(String),
    /// The source has no answer (no fee estimate yet, offline, …).
    #[error("{0}")]
    Unavailable(String),
    /// The source is misconfigured (an unreadable cookie file, a bad URL, …).
    #[error("Bitcoin source configuration: {0}")]
    Config(String),
    /// The Bitcoin node is on another chain than the one configured.
    #[error("the Bitcoin node is on chain `{got}`, not `{expected}`: refusing to use it")]
    WrongNetwork {
        /// The chain configured (as `getblockchaininfo` names it).
        expected: String,
        /// The chain the node named.
        got: String,
    },
    /// An answer larger than the source reads.
    #[error("the Bitcoin node's answer is larger than the configured limit; refused unread")]
    TooLarge,
}

/// The node service the Bitcoin crate's parts are built from.
#[derive(Clone)]
pub struct BitcoinNode {
    /// This node's view of Bitcoin.
    pub source: Arc<dyn BitcoinSource>,
    /// This SON's Bitcoin signing key (its public half is the SON's registered `bitcoin` key).
    pub key: SecretKey,
    /// How far (percent) a proposed fee rate may be from this node's own estimate.
    pub fee_band_percent: u64,
    /// Bitcoin keys this SON registered before its current one: kept while a wallet that
    /// holds one may still ask for a signature (after a `son_update` of the SON's keys, the
    /// old wallet's transactions — the sweep to the new wallet first — are signed with the
    /// old key).
    pub retired_keys: Vec<SecretKey>,
}

impl BitcoinNode {
    /// The key of this node whose public half is `public` (the current one or a retired one).
    fn key_for(&self, public: &str) -> Option<&SecretKey> {
        let secp = Secp256k1::signing_only();
        std::iter::once(&self.key)
            .chain(&self.retired_keys)
            .find(|k| PublicKey::new(k.public_key(&secp)).to_string() == public)
    }
}

fn estimate(node: &BitcoinNode) -> Result<u64, PluginError> {
    node.source.fee_rate().map_err(|e| PluginError::msg(format!("fee estimate: {e}")))
}

/// Whether `rate` is within `band_percent` of `own`.
pub fn within_band(rate: u64, own: u64, band_percent: u64) -> bool {
    let diff = u128::from(rate.abs_diff(own)) * 100;
    diff <= u128::from(own) * u128::from(band_percent)
}

fn fee_verdict(node: &BitcoinNode, rate: u64) -> Result<Option<Verdict>, PluginError> {
    let own = estimate(node)?;
    Ok((!within_band(rate, own, node.fee_band_percent)).then(|| {
        Verdict::Abstain(format!(
            "fee rate {rate} sat/vB is more than {}% from my estimate of {own}",
            node.fee_band_percent
        ))
    }))
}

fn on_duty(state: &State, node: &NodeIdentity) -> bool {
    node.son.is_some() && state.son_on_duty(state.head_height() + 1) == node.son
}

/// Proposes the wallet the SONs of the last maintenance should hold, when it differs from the
/// current one.
pub struct WalletTrigger(pub BitcoinNode, KeyedMemo<WalletInputs, bool>);

/// What the expected wallet is a function of: the operation crates' tables, the SONs' rows, and
/// the SON set and votes of the last maintenance (the rest of the globals move every block).
type WalletInputs = (u64, u64, Timestamp, Arc<BTreeSet<SonId>>);

impl WalletTrigger {
    /// The trigger of a node with this service.
    pub fn new(node: BitcoinNode) -> Self {
        WalletTrigger(node, KeyedMemo::default())
    }
}

#[async_trait]
impl Trigger for WalletTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        let g = state.globals();
        let inputs = (
            state.plugin_generation(),
            state.sons().generation(),
            g.last_maintenance_time,
            Arc::clone(&g.maintenance_sons),
        );
        self.1.get(inputs, || matches!(expected_update(state), Ok(Some(_))))
    }

    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let mut out = TriggerOutput::default();
        if let Ok(Some(op)) = expected_update(state) {
            if check_update(state, &op).is_ok() {
                out.drafts.push(ProposalDraft::new(op));
            }
        }
        Ok(out)
    }
}

/// Approves a wallet update that the chain's rule accepts (the same signers, from this node's
/// own state).
pub struct WalletValidator(pub BitcoinNode);

#[async_trait]
impl Validator for WalletValidator {
    async fn review(
        &self,
        state: &State,
        proposal: &Proposal,
        _: &NodeIdentity,
    ) -> Result<Verdict, PluginError> {
        let op = proposal
            .only::<WalletUpdate>()
            .ok_or_else(|| PluginError::msg("not a wallet update"))?;
        Ok(Verdict::from_rule(check_update(state, op)))
    }
}

/// Proposes the next batch of an old wallet's outputs to sweep, or a consolidation, at this
/// node's fee estimate.
pub struct SweepTrigger(pub BitcoinNode, KeyedMemo<u64, bool>);

impl SweepTrigger {
    /// The trigger of a node with this service.
    pub fn new(node: BitcoinNode) -> Self {
        SweepTrigger(node, KeyedMemo::default())
    }
}

#[async_trait]
impl Trigger for SweepTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        // A sweep is due by the wallets' and outputs' tables alone (and parameters fixed at
        // genesis): worked out again only after an operation crate's table changed.
        self.1.get(state.plugin_generation(), || crate::ops::sweep_batch(state).is_some())
    }

    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let mut out = TriggerOutput::default();
        let rate = estimate(&self.0)?;
        if let Ok(Some(op)) = expected_sweep(state, rate) {
            if check_sweep(state, &op).is_ok() {
                out.drafts.push(ProposalDraft::new(op));
            }
        }
        Ok(out)
    }
}

/// Approves a sweep the chain's rule accepts at a fee rate within this node's band.
pub struct SweepValidator(pub BitcoinNode);

#[async_trait]
impl Validator for SweepValidator {
    async fn review(
        &self,
        state: &State,
        proposal: &Proposal,
        _: &NodeIdentity,
    ) -> Result<Verdict, PluginError> {
        let op =
            proposal.only::<WalletSweep>().ok_or_else(|| PluginError::msg("not a wallet sweep"))?;
        if let Err(e) = check_sweep(state, op) {
            return Ok(Verdict::Abstain(e.to_string()));
        }
        Ok(fee_verdict(&self.0, op.fee_rate)?.unwrap_or(Verdict::Approve))
    }
}

/// Signs every transaction this SON signs for and has not signed; ends, when on duty, the
/// signing of the ones past their deadline.
pub struct SignTrigger(pub BitcoinNode, WakeMemo);

impl SignTrigger {
    /// The trigger of a SON node with this service.
    pub fn new(node: BitcoinNode) -> Self {
        SignTrigger(node, WakeMemo::default())
    }
}

#[async_trait]
impl Trigger for SignTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        self.1.of::<crate::state::Transactions>(state, |state| pending(state).next().is_some())
    }

    async fn drafts(
        &self,
        state: &State,
        node: &NodeIdentity,
    ) -> Result<TriggerOutput, PluginError> {
        let mut out = TriggerOutput::default();
        let Some(son) = node.son else { return Ok(out) };
        let now = state.head_time();
        let duty = on_duty(state, node);
        for t in pending(state) {
            if t.deadline <= now {
                if duty {
                    out.operations.push(Box::new(FailTx { tx: t.id, son, owner: node.account }));
                }
                continue;
            }
            let Some(wallet) = state.row::<Wallets>(&t.signing_wallet) else { continue };
            let Some(me) = wallet.signers.iter().find(|s| s.son == son) else { continue };
            if t.signatures.contains_key(&son) {
                continue;
            }
            let Some(key) = self.0.key_for(&me.public_key) else {
                return Err(PluginError::msg(format!(
                    "this node holds no bitcoin key (current or retired) that wallet {} holds \
                     for son {son}",
                    wallet.id
                )));
            };
            let unsigned = tx::from_hex(&t.unsigned_tx)
                .ok_or_else(|| PluginError::msg("undecodable transaction on chain"))?;
            let script = spent_script(t, wallet).map_err(PluginError::msg)?;
            let signatures = t
                .inputs
                .iter()
                .enumerate()
                .map(|(i, input)| {
                    tx::sign_input(&unsigned, i, &script, input.amount_sat, key)
                        .map(|s| sonprop_core::chain::crypto::hex(&s))
                        .ok_or_else(|| PluginError::msg(format!("cannot sign input {i}")))
                })
                .collect::<Result<_, _>>()?;
            out.operations.push(Box::new(SignTx {
                tx: t.id,
                son,
                owner: node.account,
                signatures,
            }));
        }
        Ok(out)
    }
}

fn seen_confirmed(
    node: &BitcoinNode,
    state: &State,
    script: &ScriptBuf,
) -> Result<Vec<SeenOutput>, PluginError> {
    let need = state.param::<MinConfirmations>();
    let seen = node.source.outputs_to(script).map_err(PluginError::msg)?;
    Ok(seen.into_iter().filter(|o| o.confirmations >= need).collect())
}

/// Proposes recording confirmed outputs paying the current wallet that the chain does not know.
/// It scans again only when its view's tip, the wallets, the recorded outputs or the sidechain
/// transactions moved.
pub struct UtxoTrigger {
    node: BitcoinNode,
    scanned: ScanMemo,
}

impl UtxoTrigger {
    /// The trigger of a SON node with this service.
    pub fn new(node: BitcoinNode) -> Self {
        UtxoTrigger { node, scanned: ScanMemo::default() }
    }

    fn scan_key(&self, state: &State) -> Option<ScanKey> {
        ScanMemo::key(self.node.source.as_ref(), state, Self::READS)
    }

    /// The chain tables a scan reads.
    const READS: [&str; 3] = {
        use sonprop_core::TableSchema;
        [Wallets::NAME, crate::state::Utxos::NAME, crate::state::Transactions::NAME]
    };
}

#[async_trait]
impl Trigger for UtxoTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        current_wallet(state).is_some()
            && !self.scanned.unchanged(self.node.source.as_ref(), state, Self::READS)
    }

    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let mut out = TriggerOutput::default();
        let Some(w) = current_wallet(state) else { return Ok(out) };
        let spk = ScriptBuf::new_p2wsh(&w.script().wscript_hash());
        let key = self.scan_key(state);
        let seen = seen_confirmed(&self.node, state, &spk)?;
        for o in seen {
            // Most outputs the wallet holds are known: skip them before building anything.
            if crate::ops::known_output(state, &o.outpoint) {
                continue;
            }
            let op = WalletUtxo {
                wallet: w.id,
                txid: o.outpoint.txid.to_string(),
                vout: o.outpoint.vout,
                amount_sat: o.amount_sat,
            };
            if check_utxo(state, &op).is_ok() {
                out.drafts.push(ProposalDraft::new(op));
            }
        }
        self.scanned.after_scan(key, out.drafts.is_empty());
        Ok(out)
    }
}

/// Approves a wallet output this node sees too: same amount, paying the wallet, confirmed.
pub struct UtxoValidator(pub BitcoinNode);

#[async_trait]
impl Validator for UtxoValidator {
    async fn review(
        &self,
        state: &State,
        proposal: &Proposal,
        _: &NodeIdentity,
    ) -> Result<Verdict, PluginError> {
        let op =
            proposal.only::<WalletUtxo>().ok_or_else(|| PluginError::msg("not a wallet output"))?;
        if let Err(e) = check_utxo(state, op) {
            return Ok(Verdict::Abstain(e.to_string()));
        }
        let Some(w) = state.row::<Wallets>(&op.wallet) else {
            return Ok(Verdict::Abstain(format!("wallet {} unknown", op.wallet)));
        };
        let spk = ScriptBuf::new_p2wsh(&w.script().wscript_hash());
        let mine = seen_confirmed(&self.0, state, &spk)?
            .into_iter()
            .find(|o| Some(o.outpoint) == op.outpoint());
        Ok(match mine {
            Some(o) if o.amount_sat == op.amount_sat => Verdict::Approve,
            Some(o) => {
                Verdict::Abstain(format!("I see {} sat, not {}", o.amount_sat, op.amount_sat))
            }
            None => Verdict::Abstain("I do not see this output confirmed".into()),
        })
    }
}

/// The unsettled transactions with a fully signed version to broadcast, in id order: complete
/// or sent, or collecting signatures for a fee bump while an earlier version stands.
fn broadcastable(state: &State) -> impl Iterator<Item = &SidechainTx> + '_ {
    unsettled(state).filter(|t| t.broadcastable().is_some())
}

/// Every block before a SON's rebroadcast of a transaction its view does not hold, unless it
/// is on duty (the SON on duty tries every block; the others take turns, by SON id).
pub const REBROADCAST_EVERY: u64 = 10;

/// Broadcasting is every SON's duty, and idempotent: each SON whose own view holds no version
/// of a signed, unsettled transaction broadcasts its newest signed version — the SON on duty
/// at once, the others every [`REBROADCAST_EVERY`] blocks in turn — until it settles. So one
/// SON that reports a transaction sent and never broadcasts it, or whose source drops it,
/// delays it by a block, not for ever. The SON on duty reports a complete one sent.
pub struct BroadcastTrigger(pub BitcoinNode, WakeMemo);

impl BroadcastTrigger {
    /// The trigger of a SON node with this service.
    pub fn new(node: BitcoinNode) -> Self {
        BroadcastTrigger(node, WakeMemo::default())
    }
}

#[async_trait]
impl Trigger for BroadcastTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        self.1
            .of::<crate::state::Transactions>(state, |state| broadcastable(state).next().is_some())
    }

    async fn drafts(
        &self,
        state: &State,
        node: &NodeIdentity,
    ) -> Result<TriggerOutput, PluginError> {
        let mut out = TriggerOutput::default();
        let Some(son) = node.son else { return Ok(out) };
        let duty = on_duty(state, node);
        let turn = (state.head_height() + son.0).is_multiple_of(REBROADCAST_EVERY);
        let mut failures = Vec::new();
        for t in broadcastable(state) {
            let Some(v) = t.broadcastable() else { continue };
            let Some(wallet) = state.row::<Wallets>(&t.signing_wallet) else { continue };
            let mut known = false;
            for txid in t.txids().filter_map(|id| id.parse::<Txid>().ok()) {
                if let Some(c) = self.0.source.confirmations(&txid).map_err(PluginError::msg)? {
                    // A version Bitcoin has mined settles; one in the mempool is being relayed.
                    known |= c > 0 || txid.to_string() == v.txid;
                }
            }
            if !known && (duty || turn) {
                let signed = signed_transaction(t, v, wallet).map_err(PluginError::msg)?;
                match self.0.source.broadcast(&signed) {
                    Ok(()) => known = true,
                    Err(e) => failures.push(format!("broadcasting sidechain tx {}: {e}", t.id)),
                }
            }
            if known && duty && t.status == TxStatus::Complete {
                let txid = v.txid.to_owned();
                out.operations.push(Box::new(SentTx { tx: t.id, txid, son, owner: node.account }));
            }
        }
        match failures.first() {
            Some(first) if out.operations.is_empty() => Err(PluginError::msg(first)),
            _ => Ok(out),
        }
    }
}

/// How a node's view stands on a transaction's versions: the most confirmations any has, and
/// which.
fn best_version(node: &BitcoinNode, t: &SidechainTx) -> Result<Option<(String, u32)>, PluginError> {
    let mut best: Option<(String, u32)> = None;
    for txid in t.txids() {
        let Ok(id) = txid.parse::<Txid>() else { continue };
        if let Some(c) = node.source.confirmations(&id).map_err(PluginError::msg)? {
            if best.as_ref().is_none_or(|(_, b)| c > *b) {
                best = Some((txid.to_owned(), c));
            }
        }
    }
    Ok(best)
}

/// The rate a fee bump of a transaction at `current` sat/vB should carry given this node's
/// estimate: the estimate, or a quarter above the current rate if that is more (a
/// transaction that did not confirm needs more than it has), within the chain's bound.
pub fn bump_rate(state: &State, current: u64, estimate: u64) -> u64 {
    let step = current.saturating_add((current / 4).max(1));
    estimate.max(step).min(state.param::<crate::state::MaxFeeRate>())
}

/// The complete transactions past `bitcoin.confirm_timeout` since they completed.
fn overdue(state: &State) -> impl Iterator<Item = &SidechainTx> + '_ {
    let now = state.head_time();
    bump_deadlines(state).filter(move |(_, deadline)| *deadline <= now).map(|(t, _)| t)
}

/// The complete transactions, each with the time it is bumped after: `bitcoin.confirm_timeout`
/// since it completed.
fn bump_deadlines(state: &State) -> impl Iterator<Item = (&SidechainTx, Timestamp)> + '_ {
    let timeout = state.param::<ConfirmTimeout>();
    with_status(state, &TxStatus::Complete)
        .chain(with_status(state, &TxStatus::Sent { txid: String::new() }))
        .map(move |t| (t, t.completed.unwrap_or(t.created).plus(timeout)))
}

/// Proposes a fee bump of each complete transaction that did not settle within
/// `bitcoin.confirm_timeout` and that this node's view does not show mined.
pub struct BumpTrigger(pub BitcoinNode, WakeMemo<Option<Timestamp>>);

impl BumpTrigger {
    /// The trigger of a node with this service.
    pub fn new(node: BitcoinNode) -> Self {
        BumpTrigger(node, WakeMemo::default())
    }
}

#[async_trait]
impl Trigger for BumpTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        // The first deadline, worked out again only after the transactions table changed.
        let first = |state: &State| bump_deadlines(state).map(|(_, d)| d).min();
        self.1
            .of::<crate::state::Transactions>(state, first)
            .is_some_and(|d| d <= state.head_time())
    }

    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let mut out = TriggerOutput::default();
        let own = estimate(&self.0)?;
        for t in overdue(state) {
            if best_version(&self.0, t)?.is_some_and(|(_, c)| c > 0) {
                continue;
            }
            let rate = bump_rate(state, t.fee_rate, own);
            let Ok(unsigned_tx) = rebuilt(state, t, rate) else { continue };
            let op = BumpTx { tx: t.id, fee_rate: rate, unsigned_tx };
            if check_bump(state, &op).is_ok() {
                out.drafts.push(ProposalDraft::new(op));
            }
        }
        Ok(out)
    }
}

/// Approves a fee bump the chain's rule accepts, of a transaction this node's view does not
/// show mined, at a rate within this node's band of the bump it would propose itself.
pub struct BumpValidator(pub BitcoinNode);

#[async_trait]
impl Validator for BumpValidator {
    async fn review(
        &self,
        state: &State,
        proposal: &Proposal,
        _: &NodeIdentity,
    ) -> Result<Verdict, PluginError> {
        let op = proposal.only::<BumpTx>().ok_or_else(|| PluginError::msg("not a fee bump"))?;
        if let Err(e) = check_bump(state, op) {
            return Ok(Verdict::Abstain(e.to_string()));
        }
        let Some(t) = state.row::<crate::state::Transactions>(&op.tx) else {
            return Ok(Verdict::Abstain("unknown transaction".into()));
        };
        if let Some((txid, c)) = best_version(&self.0, t)?.filter(|(_, c)| *c > 0) {
            return Ok(Verdict::Abstain(format!("I see {txid} mined ({c} confirmations)")));
        }
        let mine = bump_rate(state, t.fee_rate, estimate(&self.0)?);
        if !within_band(op.fee_rate, mine, self.0.fee_band_percent) {
            return Ok(Verdict::Abstain(format!(
                "fee rate {} sat/vB is more than {}% from the bump I would propose ({mine})",
                op.fee_rate, self.0.fee_band_percent
            )));
        }
        Ok(Verdict::Approve)
    }
}

/// Whether this node sees `txid` with the confirmations settlement needs: `Ok(Err(why))` when
/// it does not, `Err` when its source cannot say.
fn confirmed(
    node: &BitcoinNode,
    state: &State,
    txid: &str,
) -> Result<Result<u32, String>, PluginError> {
    let Ok(id) = txid.parse::<Txid>() else { return Ok(Err(format!("`{txid}` is not a txid"))) };
    let Some(have) = node.source.confirmations(&id).map_err(PluginError::msg)? else {
        return Ok(Err(format!("I do not see {txid}")));
    };
    let need = state.param::<MinConfirmations>();
    if have < need {
        return Ok(Err(format!("{txid} has {have} confirmations here, {need} needed")));
    }
    Ok(Ok(have))
}

/// Proposes settling each unsettled transaction one of whose signed versions this node sees
/// confirmed.
pub struct SettleTrigger(pub BitcoinNode, WakeMemo);

impl SettleTrigger {
    /// The trigger of a SON node with this service.
    pub fn new(node: BitcoinNode) -> Self {
        SettleTrigger(node, WakeMemo::default())
    }
}

#[async_trait]
impl Trigger for SettleTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        self.1
            .of::<crate::state::Transactions>(state, |state| broadcastable(state).next().is_some())
    }

    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let mut out = TriggerOutput::default();
        for t in broadcastable(state) {
            let signed: Vec<String> = t.signed_versions().map(|v| v.txid.to_owned()).collect();
            for txid in signed {
                if confirmed(&self.0, state, &txid)?.is_ok() {
                    out.drafts.push(ProposalDraft::new(SettleTx { tx: t.id, txid }));
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// Approves a settlement when this node's own view shows that version's confirmations.
pub struct SettleValidator(pub BitcoinNode);

#[async_trait]
impl Validator for SettleValidator {
    async fn review(
        &self,
        state: &State,
        proposal: &Proposal,
        _: &NodeIdentity,
    ) -> Result<Verdict, PluginError> {
        let op = proposal.only::<SettleTx>().ok_or_else(|| PluginError::msg("not a settlement"))?;
        if let Err(e) = check_settle(state, op) {
            return Ok(Verdict::Abstain(e.to_string()));
        }
        Ok(Verdict::from_rule(confirmed(&self.0, state, &op.txid)?.map(|_| ())))
    }
}

/// Every how many blocks the SON on duty compares the chain's records with its view of
/// Bitcoin (a whole pass over what the chain expects Bitcoin to hold).
pub const RECONCILE_EVERY: u64 = 20;

/// The output scripts an outpoint the chain records may pay (a deposit's versions may name
/// different deposit addresses), and the sidechain transaction spending it, if any: a version
/// of it that Bitcoin holds is what took the output, which is then not gone.
#[derive(Clone)]
struct Expected {
    spks: Vec<ScriptBuf>,
    spender: Option<u64>,
}

/// What the chain expects Bitcoin to hold, by outpoint, with the script each pays.
fn expected_on_bitcoin(state: &State) -> BTreeMap<OutPoint, Expected> {
    let mut out = BTreeMap::new();
    let spk = |w: &Wallet| ScriptBuf::new_p2wsh(&w.script().wscript_hash());
    for (id, w) in state.rows::<Wallets>() {
        let wallet_spk = spk(w);
        for (k, _) in state.rows_by(&UTXOS_BY_WALLET, &id) {
            let o = crate::state::outpoint(&k);
            out.insert(o, Expected { spks: vec![wallet_spk.clone()], spender: None });
        }
    }
    for t in unsettled(state) {
        let Some(wallet) = state.row::<Wallets>(&t.signing_wallet) else { continue };
        let Ok(script) = spent_script(t, wallet) else { continue };
        let script_spk = ScriptBuf::new_p2wsh(&script.wscript_hash());
        for i in &t.inputs {
            let Ok(o) = i.outpoint.parse::<OutPoint>() else { continue };
            out.insert(o, Expected { spks: vec![script_spk.clone()], spender: Some(t.id) });
        }
    }
    // A confirmed deposit pays the deposit address of its accepted version. (A deposit only
    // reported is not reconciled: its versions may name addresses nobody paid, and one liar's
    // version must not make the honest one look gone.)
    for d in confirmed_deposits(state) {
        let (Ok(o), Some(c)) = (d.outpoint.parse::<OutPoint>(), d.accepted()) else { continue };
        let Some(w) = state.row::<Wallets>(&c.wallet) else { continue };
        let Ok(script) = deposit_script(&c.user_key, w) else { continue };
        let spks = vec![ScriptBuf::new_p2wsh(&script.wscript_hash())];
        out.insert(o, Expected { spks, spender: None });
    }
    out
}

/// Of `wanted` (outpoints the chain expects Bitcoin to hold), those this node's view does not
/// hold: not unspent (confirmed or in its mempool), and not spent by any version of the
/// sidechain transaction that spends it.
fn gone_in_view(
    node: &BitcoinNode,
    state: &State,
    wanted: &BTreeMap<OutPoint, Expected>,
) -> Result<Vec<OutPoint>, PluginError> {
    let scripts: Vec<ScriptBuf> = wanted
        .values()
        .flat_map(|e| e.spks.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let seen = node.source.outputs_to_many(&scripts).map_err(PluginError::msg)?;
    let unspent: BTreeSet<OutPoint> = seen.iter().flatten().map(|o| o.outpoint).collect();
    let mut held_by_bitcoin = BTreeMap::new();
    let mut gone = Vec::new();
    for (o, e) in wanted {
        if unspent.contains(o) {
            continue;
        }
        if let Some(tx) = e.spender {
            let known = match held_by_bitcoin.get(&tx) {
                Some(k) => *k,
                None => {
                    let t = state.row::<crate::state::Transactions>(&tx);
                    let k = match t {
                        Some(t) => best_version(node, t)?.is_some(),
                        None => false,
                    };
                    held_by_bitcoin.insert(tx, k);
                    k
                }
            };
            if known {
                continue;
            }
        }
        gone.push(*o);
    }
    Ok(gone)
}

/// On the SON on duty, every [`RECONCILE_EVERY`] blocks: proposes reconciling what the chain
/// records and this node's view of Bitcoin no longer holds.
pub struct ReconcileTrigger(pub BitcoinNode);

#[async_trait]
impl Trigger for ReconcileTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        state.head_height().is_multiple_of(RECONCILE_EVERY)
            && (state.rows::<crate::state::Utxos>().next().is_some()
                || unsettled(state).next().is_some()
                || confirmed_deposits(state).next().is_some())
    }

    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let mut out = TriggerOutput::default();
        let wanted = expected_on_bitcoin(state);
        let mut gone = gone_in_view(&self.0, state, &wanted)?;
        gone.truncate(crate::reconcile::MAX_RECONCILED);
        if !gone.is_empty() {
            let op = Reconcile { gone: gone.iter().map(ToString::to_string).collect() };
            if check_reconcile(state, &op).is_ok() {
                out.drafts.push(ProposalDraft::new(op));
            }
        }
        Ok(out)
    }
}

/// Approves a reconciliation only if this node's own view shows every outpoint it names gone.
pub struct ReconcileValidator(pub BitcoinNode);

#[async_trait]
impl Validator for ReconcileValidator {
    async fn review(
        &self,
        state: &State,
        proposal: &Proposal,
        _: &NodeIdentity,
    ) -> Result<Verdict, PluginError> {
        let op =
            proposal.only::<Reconcile>().ok_or_else(|| PluginError::msg("not a reconciliation"))?;
        let named = match check_reconcile(state, op) {
            Ok(g) => g,
            Err(e) => return Ok(Verdict::Abstain(e.to_string())),
        };
        let all = expected_on_bitcoin(state);
        let wanted: BTreeMap<OutPoint, Expected> = named
            .iter()
            .map(Gone::outpoint)
            .filter_map(|o| all.get(&o).map(|e| (o, e.clone())))
            .collect();
        let gone: BTreeSet<OutPoint> = gone_in_view(&self.0, state, &wanted)?.into_iter().collect();
        match named.iter().map(Gone::outpoint).find(|o| !gone.contains(o)) {
            Some(o) => Ok(Verdict::Abstain(format!("I still see {o} on Bitcoin"))),
            None => Ok(Verdict::Approve),
        }
    }
}

/// Reports, for this SON, each confirmed payment to a user's deposit address (over the current
/// or the previous wallet) that its own view shows and it has not reported. All the deposit
/// addresses are asked of the source at once.
///
/// It asks again only when something it depends on moved: its view's chain tip (confirmations
/// change with blocks only, and a report needs at least one), the deposit keys, the wallets or
/// the deposits on chain (a report that landed, or one that did not). On an idle bridge that
/// is once per Bitcoin block, not once per chain block on every SON.
pub struct DepositReportTrigger {
    node: BitcoinNode,
    scripts: ScriptCache,
    scanned: ScanMemo,
}

/// A scan's inputs: the view's tip, the plugin generation, and the generations of the tables
/// it reads.
type ScanKey = (u64, u64, [u64; 3]);

/// A wake condition over the operation crates' tables, remembered with their generations
/// (equal generations mean equal rows): worked out again only after what it reads changed, not
/// by every SON node on every block (node-local memory). While no plugin table changed at all
/// (`State::plugin_generation`), the answer is given without even looking a table up.
pub struct WakeMemo<V = bool>(std::sync::Mutex<Option<WakeSeen<V>>>);

impl<V> Default for WakeMemo<V> {
    fn default() -> Self {
        WakeMemo(std::sync::Mutex::new(None))
    }
}

/// A value remembered with the inputs it was worked out from (node-local memory).
pub struct KeyedMemo<K, V>(std::sync::Mutex<Option<(K, V)>>);

impl<K, V> Default for KeyedMemo<K, V> {
    fn default() -> Self {
        KeyedMemo(std::sync::Mutex::new(None))
    }
}

impl<K: PartialEq, V: Copy> KeyedMemo<K, V> {
    /// `value()`, or what it was last time if `key` is equal to that time's.
    pub(crate) fn get(&self, key: K, value: impl FnOnce() -> V) -> V {
        let mut memo = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, v)) = memo.as_ref() {
            if *k == key {
                return *v;
            }
        }
        let v = value();
        *memo = Some((key, v));
        v
    }
}

/// What a [`WakeMemo`] remembers: the plugin generation and the read table's generation of its
/// last answer, and the answer.
#[derive(Clone, Copy)]
struct WakeSeen<V> {
    all: u64,
    table: u64,
    awake: V,
}

impl<V: Copy> WakeMemo<V> {
    /// `awake(state)`, a function of table `T` alone, or what it was when `T` last had this
    /// generation.
    pub(crate) fn of<T: sonprop_core::TableSchema>(
        &self,
        state: &State,
        awake: impl FnOnce(&State) -> V,
    ) -> V {
        let all = state.plugin_generation();
        let mut memo = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(seen) = memo.filter(|s| s.all == all) {
            return seen.awake;
        }
        let table = state.plugin_table(T::NAME).map_or(0, |t| t.generation());
        let awake = match *memo {
            Some(seen) if seen.table == table => seen.awake,
            _ => awake(state),
        };
        *memo = Some(WakeSeen { all, table, awake });
        awake
    }
}

/// What a trigger's last scan of Bitcoin read: while its view's tip and the chain tables it
/// reads stay the same, a new scan would find nothing new (node-local memory).
#[derive(Default)]
struct ScanMemo(std::sync::Mutex<Option<ScanKey>>);

impl ScanMemo {
    /// The key of a scan now, over `tables`; `None` when the source cannot name its tip.
    fn key(source: &dyn BitcoinSource, state: &State, tables: [&str; 3]) -> Option<ScanKey> {
        let tip = source.tip().ok()??;
        Some((tip, state.plugin_generation(), generations(state, tables)))
    }

    /// Whether the last scan read what a scan now would: the same tip, and `tables` as they
    /// were (never for an unknown tip). While no plugin table changed at all, no table is
    /// looked up.
    fn unchanged(&self, source: &dyn BitcoinSource, state: &State, tables: [&str; 3]) -> bool {
        let Ok(Some(tip)) = source.tip() else { return false };
        let mut memo = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some((seen_tip, seen_all, seen_tables)) = memo.as_mut() else { return false };
        if *seen_tip != tip {
            return false;
        }
        let all = state.plugin_generation();
        if *seen_all == all {
            return true;
        }
        let same = generations(state, tables) == *seen_tables;
        if same {
            *seen_all = all;
        }
        same
    }

    /// Records a scan that read `key`. Only a scan that found nothing to send is remembered:
    /// one that sent something scans again on the next block, so a report or a proposal that
    /// never landed is sent again without waiting for the next Bitcoin block.
    fn after_scan(&self, key: Option<ScanKey>, found_nothing: bool) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = key.filter(|_| found_nothing);
    }
}

/// The generations of `tables` (0 for one not declared).
fn generations(state: &State, tables: [&str; 3]) -> [u64; 3] {
    tables.map(|name| state.plugin_table(name).map_or(0, |t| t.generation()))
}

impl DepositReportTrigger {
    /// The trigger of a SON node with this service.
    pub fn new(node: BitcoinNode) -> Self {
        DepositReportTrigger { node, scripts: ScriptCache::default(), scanned: ScanMemo::default() }
    }

    /// What a scan now would read.
    fn scan_key(&self, state: &State) -> Option<ScanKey> {
        ScanMemo::key(self.node.source.as_ref(), state, Self::READS)
    }

    /// The chain tables a scan reads.
    const READS: [&str; 3] = {
        use sonprop_core::TableSchema;
        [DepositKeys::NAME, Wallets::NAME, Deposits::NAME]
    };
}

#[async_trait]
impl Trigger for DepositReportTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        // Nothing it reads has moved since its last scan: nothing new to report.
        !self.scanned.unchanged(self.node.source.as_ref(), state, Self::READS)
            && state.rows::<DepositKeys>().next().is_some()
            && current_wallet(state).is_some()
    }

    async fn drafts(
        &self,
        state: &State,
        node: &NodeIdentity,
    ) -> Result<TriggerOutput, PluginError> {
        let mut out = TriggerOutput::default();
        let Some(son) = node.son else { return Ok(out) };
        let Some(current) = current_wallet(state) else { return Ok(out) };
        // The current wallet's deposit addresses, and the previous wallet's (a payment made
        // just before a wallet update is still the user's).
        let previous = current.id.checked_sub(1).and_then(|id| state.row::<Wallets>(&id));
        let (mut watched, mut scripts) = (Vec::new(), Vec::new());
        for wallet in std::iter::once(current).chain(previous) {
            if !wallet.signers.iter().any(|s| s.son == son) {
                continue;
            }
            for (account, key) in state.rows::<DepositKeys>() {
                if let Ok(spk) = self.scripts.script_pubkey(wallet, &key.public_key) {
                    watched.push((wallet.id, account));
                    scripts.push(spk);
                }
            }
        }
        let key = self.scan_key(state);
        let seen = self.node.source.outputs_to_many(&scripts).map_err(PluginError::msg)?;
        let need = state.param::<MinConfirmations>();
        for ((wallet, account), outputs) in watched.into_iter().zip(seen) {
            for o in outputs.into_iter().filter(|o| o.confirmations >= need) {
                let reported = state
                    .row::<Deposits>(&utxo_key(&o.outpoint))
                    .is_some_and(|d| d.reported_by(son));
                if reported {
                    continue;
                }
                let op = ReportDeposit {
                    son,
                    owner: node.account,
                    account,
                    wallet,
                    txid: o.outpoint.txid.to_string(),
                    vout: o.outpoint.vout,
                    amount_sat: o.amount_sat,
                };
                if sonprop_core::Operation::check(&op, state).is_ok() {
                    out.operations.push(Box::new(op));
                }
            }
        }
        self.scanned.after_scan(key, out.operations.is_empty());
        Ok(out)
    }
}

/// Deposit addresses' output scripts by wallet and user key: built once, not on every block.
#[derive(Default)]
pub struct ScriptCache(std::sync::Mutex<BTreeMap<u64, BTreeMap<String, ScriptBuf>>>);

impl ScriptCache {
    /// The P2WSH output script of `user_key`'s deposit address over `wallet`.
    fn script_pubkey(
        &self,
        wallet: &Wallet,
        user_key: &str,
    ) -> Result<ScriptBuf, crate::script::ScriptError> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let of_wallet = map.entry(wallet.id).or_default();
        if let Some(s) = of_wallet.get(user_key) {
            return Ok(s.clone());
        }
        let script = deposit_script(user_key, wallet)?;
        let spk = ScriptBuf::new_p2wsh(&script.wscript_hash());
        of_wallet.insert(user_key.to_owned(), spk.clone());
        Ok(spk)
    }
}

/// The subjects the circuit breaker holds back, reported instead of drafted.
fn held_back(state: &State, subjects: impl Iterator<Item = String>) -> Option<TriggerOutput> {
    let reason = paused(state)?;
    let deferred =
        subjects.map(|s| Deferral { subject: Subject::Named(s), reason: reason.clone() }).collect();
    Some(TriggerOutput { deferred, ..TriggerOutput::default() })
}

/// Proposes the sweep of each confirmed deposit, at this node's fee estimate.
pub struct DepositTrigger(pub BitcoinNode);

#[async_trait]
impl Trigger for DepositTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        confirmed_deposits(state).next().is_some()
    }

    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let deposits: Vec<String> = confirmed_deposits(state).map(|d| d.outpoint.clone()).collect();
        let subjects = deposits.iter().map(|d| format!("bitcoin:deposit:{d}"));
        if let Some(out) = held_back(state, subjects) {
            return Ok(out);
        }
        let mut out = TriggerOutput::default();
        if deposits.is_empty() {
            return Ok(out);
        }
        let rate = estimate(&self.0)?;
        for d in deposits {
            if let Ok(op) = expected_deposit_sweep(state, &d, rate) {
                out.drafts.push(ProposalDraft::new(op));
            }
        }
        Ok(out)
    }
}

/// Approves a deposit sweep the chain's rule accepts, at a fee rate within this node's band,
/// of a deposit this node's own view shows: same output, amount and enough confirmations.
pub struct DepositValidator(pub BitcoinNode);

#[async_trait]
impl Validator for DepositValidator {
    async fn review(
        &self,
        state: &State,
        proposal: &Proposal,
        _: &NodeIdentity,
    ) -> Result<Verdict, PluginError> {
        let op = proposal
            .only::<ProcessDeposit>()
            .ok_or_else(|| PluginError::msg("not a deposit sweep"))?;
        if let Err(e) = check_process_deposit(state, op) {
            return Ok(Verdict::Abstain(e.to_string()));
        }
        if let Some(v) = fee_verdict(&self.0, op.fee_rate)? {
            return Ok(v);
        }
        let Ok(outpoint) = op.deposit.parse::<OutPoint>() else {
            return Ok(Verdict::Abstain(format!("`{}` is not an outpoint", op.deposit)));
        };
        let Some(d) = state.row::<Deposits>(&utxo_key(&outpoint)) else {
            return Ok(Verdict::Abstain("unknown deposit".into()));
        };
        let Some(claim) = d.accepted() else {
            return Ok(Verdict::Abstain("no accepted claim".into()));
        };
        let Some(wallet) = state.row::<Wallets>(&claim.wallet) else {
            return Ok(Verdict::Abstain("no accepted claim".into()));
        };
        let Ok(script) = deposit_script(&claim.user_key, wallet) else {
            return Ok(Verdict::Abstain("the deposit key makes no script".into()));
        };
        let spk = ScriptBuf::new_p2wsh(&script.wscript_hash());
        let need = state.param::<MinConfirmations>();
        let seen = self.0.source.outputs_to(&spk).map_err(PluginError::msg)?;
        let mine = seen.into_iter().find(|o| o.outpoint == outpoint);
        Ok(match mine {
            None => Verdict::Abstain(format!(
                "I do not see {} paying {}'s deposit address",
                op.deposit, claim.account
            )),
            Some(o) if o.amount_sat != claim.amount_sat => Verdict::Abstain(format!(
                "I see {} sat at {}, not {}",
                o.amount_sat, op.deposit, claim.amount_sat
            )),
            Some(o) if o.confirmations < need => Verdict::Abstain(format!(
                "{} has {} confirmations here, {need} needed",
                op.deposit, o.confirmations
            )),
            Some(_) => Verdict::Approve,
        })
    }
}

/// Proposes the payment of each pending withdrawal the wallet can pay, at this node's rate.
pub struct WithdrawTrigger(pub BitcoinNode);

/// The pending withdrawals' numbers, in order.
fn pending_withdrawals(state: &State) -> impl Iterator<Item = u64> + '_ {
    let p = WithdrawalStatus::Pending.code();
    state
        .rows_by_range(&crate::state::WITHDRAWALS_BY_STATUS, &(p, 0), &(p + 1, 0))
        .map(|(id, _)| id)
}

#[async_trait]
impl Trigger for WithdrawTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        pending_withdrawals(state).next().is_some()
    }

    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let subjects = pending_withdrawals(state).map(|id| format!("bitcoin:withdrawal:{id}"));
        if let Some(out) = held_back(state, subjects) {
            return Ok(out);
        }
        let mut out = TriggerOutput::default();
        let mut pending = pending_withdrawals(state).peekable();
        if pending.peek().is_none() {
            return Ok(out);
        }
        let rate = estimate(&self.0)?;
        // One at a time: each payment takes outputs the next one's selection must not see.
        if let Some(op) = pending.find_map(|id| expected_withdrawal(state, id, rate).ok()) {
            out.drafts.push(ProposalDraft::new(op));
        }
        Ok(out)
    }
}

/// Approves a withdrawal payment the chain's rule accepts, at a rate within this node's band.
pub struct WithdrawValidator(pub BitcoinNode);

#[async_trait]
impl Validator for WithdrawValidator {
    async fn review(
        &self,
        state: &State,
        proposal: &Proposal,
        _: &NodeIdentity,
    ) -> Result<Verdict, PluginError> {
        let op = proposal
            .only::<ProcessWithdrawal>()
            .ok_or_else(|| PluginError::msg("not a withdrawal payment"))?;
        if let Err(e) = check_process_withdrawal(state, op) {
            return Ok(Verdict::Abstain(e.to_string()));
        }
        Ok(fee_verdict(&self.0, op.fee_rate)?.unwrap_or(Verdict::Approve))
    }
}

/// Proposes refunding each pending withdrawal that can never be paid.
pub struct RefundTrigger(pub BitcoinNode);

#[async_trait]
impl Trigger for RefundTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        pending_withdrawals(state).next().is_some()
    }

    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let mut out = TriggerOutput::default();
        for id in pending_withdrawals(state) {
            let op = RefundWithdrawal { withdrawal: id };
            if check_refund(state, &op).is_ok() {
                out.drafts.push(ProposalDraft::new(op));
            }
        }
        Ok(out)
    }
}

/// Approves a refund the chain's rule accepts (a deterministic rule: nothing node-local).
pub struct RefundValidator(pub BitcoinNode);

#[async_trait]
impl Validator for RefundValidator {
    async fn review(
        &self,
        state: &State,
        proposal: &Proposal,
        _: &NodeIdentity,
    ) -> Result<Verdict, PluginError> {
        let op =
            proposal.only::<RefundWithdrawal>().ok_or_else(|| PluginError::msg("not a refund"))?;
        Ok(Verdict::from_rule(check_refund(state, op).map(|_| ())))
    }
}
