//! The node-local half: the node's view of Bitcoin (a service), and the triggers and validators
//! built from it.

use std::sync::Arc;

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{OutPoint, PublicKey, ScriptBuf, Transaction, Txid};
use sonprop_core::{
    async_trait, NodeContext, NodeIdentity, PluginError, Proposal, ProposalDraft, ServiceError,
    State, Trigger, TriggerOutput, Validator, Verdict,
};

use crate::flows::{
    check_process_deposit, check_process_withdrawal, check_refund, confirmed_deposits,
    expected_deposit_sweep, expected_withdrawal, ProcessDeposit, ProcessWithdrawal,
    RefundWithdrawal, ReportDeposit,
};
use crate::ops::{
    check_settle, check_update, check_utxo, expected_update, signed_transaction, spent_script,
    FailTx, SentTx, SettleTx, SignTx, WalletUpdate, WalletUtxo,
};
use crate::state::{current_wallet, pending, with_status, MinConfirmations, TxStatus, Wallets};
use crate::state::{deposit_script, utxo_key, DepositKeys, Deposits, WithdrawalStatus};
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
    /// The outputs paying `script_pubkey` that this node sees.
    fn outputs_to(&self, script_pubkey: &ScriptBuf) -> Result<Vec<SeenOutput>, SourceError>;
    /// A transaction's confirmations as this node sees them (`Some(0)`: in its mempool;
    /// `None`: unknown to it).
    fn confirmations(&self, txid: &Txid) -> Result<Option<u32>, SourceError>;
    /// Broadcasts a signed transaction. Sending one the node already has is not an error.
    fn broadcast(&self, tx: &Transaction) -> Result<(), SourceError>;
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
}

impl BitcoinNode {
    fn public_key(&self) -> PublicKey {
        PublicKey::new(self.key.public_key(&Secp256k1::signing_only()))
    }
}

/// Parts on nodes that are not SONs: they never propose or approve Bitcoin work.
struct Inert;

#[async_trait]
impl Trigger for Inert {
    async fn drafts(&self, _: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        Ok(TriggerOutput::default())
    }
    fn wake(&self, _: &State, _: &NodeIdentity) -> bool {
        false
    }
}

#[async_trait]
impl Validator for Inert {
    async fn review(
        &self,
        _: &State,
        _: &Proposal,
        _: &NodeIdentity,
    ) -> Result<Verdict, PluginError> {
        Ok(Verdict::Abstain("not a SON node".into()))
    }
}

fn service(ctx: &NodeContext<'_>) -> Result<Option<BitcoinNode>, ServiceError> {
    if ctx.node.son.is_none() {
        return Ok(None);
    }
    ctx.service::<BitcoinNode>().map(Some)
}

macro_rules! ctor {
    ($name:ident, $ret:ident, $make:expr) => {
        pub(crate) fn $name(ctx: &NodeContext<'_>) -> Result<Box<dyn $ret>, ServiceError> {
            Ok(match service(ctx)? {
                Some(node) => Box::new($make(node)),
                None => Box::new(Inert),
            })
        }
    };
}

ctor!(wallet_trigger, Trigger, WalletTrigger);
ctor!(wallet_validator, Validator, WalletValidator);
ctor!(sign_trigger, Trigger, SignTrigger);
ctor!(utxo_trigger, Trigger, UtxoTrigger);
ctor!(utxo_validator, Validator, UtxoValidator);
ctor!(broadcast_trigger, Trigger, BroadcastTrigger);
ctor!(settle_trigger, Trigger, SettleTrigger);
ctor!(settle_validator, Validator, SettleValidator);
ctor!(deposit_report_trigger, Trigger, DepositReportTrigger::new);
ctor!(deposit_trigger, Trigger, DepositTrigger);
ctor!(deposit_validator, Validator, DepositValidator);
ctor!(withdraw_trigger, Trigger, WithdrawTrigger);
ctor!(withdraw_validator, Validator, WithdrawValidator);
ctor!(refund_trigger, Trigger, RefundTrigger);
ctor!(refund_validator, Validator, RefundValidator);

fn estimate(node: &BitcoinNode) -> Result<u64, PluginError> {
    node.source.fee_rate().map_err(|e| PluginError::msg(format!("fee estimate: {e}")))
}

/// Proposes the wallet the elected SONs should hold, when it differs from the current one.
pub struct WalletTrigger(pub BitcoinNode);

#[async_trait]
impl Trigger for WalletTrigger {
    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let rate = estimate(&self.0)?;
        let mut out = TriggerOutput::default();
        if let Ok(Some(op)) = expected_update(state, rate) {
            if check_update(state, &op).is_ok() {
                out.drafts.push(ProposalDraft::new(op));
            }
        }
        Ok(out)
    }
}

/// Approves a wallet update that the chain's rule accepts (the same signers, the same
/// transaction rebuilt from this node's state) with a fee rate within this node's band.
pub struct WalletValidator(pub BitcoinNode);

/// Whether `rate` is within `band_percent` of `own`.
pub fn within_band(rate: u64, own: u64, band_percent: u64) -> bool {
    let diff = u128::from(rate.abs_diff(own)) * 100;
    diff <= u128::from(own) * u128::from(band_percent)
}

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
        if let Err(e) = check_update(state, op) {
            return Ok(Verdict::Abstain(e.to_string()));
        }
        if let Some(sweep) = &op.sweep {
            let own = estimate(&self.0)?;
            if !within_band(sweep.fee_rate, own, self.0.fee_band_percent) {
                return Ok(Verdict::Abstain(format!(
                    "fee rate {} sat/vB is more than {}% from my estimate of {own}",
                    sweep.fee_rate, self.0.fee_band_percent
                )));
            }
        }
        Ok(Verdict::Approve)
    }
}

/// Signs every transaction this SON signs for and has not signed; fails, when on duty, the
/// ones past their deadline.
pub struct SignTrigger(pub BitcoinNode);

#[async_trait]
impl Trigger for SignTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        pending(state).next().is_some()
    }

    async fn drafts(
        &self,
        state: &State,
        node: &NodeIdentity,
    ) -> Result<TriggerOutput, PluginError> {
        let mut out = TriggerOutput::default();
        let Some(son) = node.son else { return Ok(out) };
        let now = state.head_time();
        let on_duty = state.son_on_duty(state.head_height() + 1) == Some(son);
        for t in pending(state) {
            if t.deadline <= now {
                if on_duty {
                    out.operations.push(Box::new(FailTx { tx: t.id, son, owner: node.account }));
                }
                continue;
            }
            let Some(wallet) = state.row::<Wallets>(&t.signing_wallet) else { continue };
            let Some(me) = wallet.signers.iter().find(|s| s.son == son) else { continue };
            if t.signatures.contains_key(&son) {
                continue;
            }
            if me.public_key != self.0.public_key().to_string() {
                return Err(PluginError::msg(format!(
                    "this node's bitcoin key is not the one wallet {} holds for son {son}",
                    wallet.id
                )));
            }
            let unsigned = tx::from_hex(&t.unsigned_tx)
                .ok_or_else(|| PluginError::msg("undecodable transaction on chain"))?;
            let script = spent_script(t, wallet).map_err(PluginError::msg)?;
            let signatures = t
                .inputs
                .iter()
                .enumerate()
                .map(|(i, input)| {
                    tx::sign_input(&unsigned, i, &script, input.amount_sat, &self.0.key)
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
pub struct UtxoTrigger(pub BitcoinNode);

#[async_trait]
impl Trigger for UtxoTrigger {
    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let mut out = TriggerOutput::default();
        let Some(w) = current_wallet(state) else { return Ok(out) };
        let spk = ScriptBuf::new_p2wsh(&w.script().wscript_hash());
        for o in seen_confirmed(&self.0, state, &spk)? {
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

/// On the SON on duty: assembles each complete transaction from the signatures on chain,
/// broadcasts it through this node's source, and reports it sent.
pub struct BroadcastTrigger(pub BitcoinNode);

#[async_trait]
impl Trigger for BroadcastTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        with_status(state, &TxStatus::Complete).next().is_some()
    }

    async fn drafts(
        &self,
        state: &State,
        node: &NodeIdentity,
    ) -> Result<TriggerOutput, PluginError> {
        let mut out = TriggerOutput::default();
        let Some(son) = node.son else { return Ok(out) };
        if state.son_on_duty(state.head_height() + 1) != Some(son) {
            return Ok(out);
        }
        for t in with_status(state, &TxStatus::Complete) {
            let Some(wallet) = state.row::<Wallets>(&t.signing_wallet) else { continue };
            let signed = signed_transaction(t, wallet).map_err(PluginError::msg)?;
            self.0.source.broadcast(&signed).map_err(|e| {
                PluginError::msg(format!("broadcasting sidechain tx {}: {e}", t.id))
            })?;
            let txid = signed.compute_txid().to_string();
            out.operations.push(Box::new(SentTx { tx: t.id, txid, son, owner: node.account }));
        }
        Ok(out)
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

/// Proposes settling each sent transaction this node sees confirmed.
pub struct SettleTrigger(pub BitcoinNode);

#[async_trait]
impl Trigger for SettleTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        with_status(state, &TxStatus::Sent { txid: String::new() }).next().is_some()
    }

    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let mut out = TriggerOutput::default();
        for t in with_status(state, &TxStatus::Sent { txid: String::new() }) {
            let TxStatus::Sent { txid } = &t.status else { continue };
            if confirmed(&self.0, state, txid)?.is_ok() {
                out.drafts.push(ProposalDraft::new(SettleTx { tx: t.id }));
            }
        }
        Ok(out)
    }
}

/// Approves a settlement when this node's own view shows the confirmations.
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
        let Some(TxStatus::Sent { txid }) =
            state.row::<crate::state::Transactions>(&op.tx).map(|t| t.status.clone())
        else {
            return Ok(Verdict::Abstain("not sent".into()));
        };
        Ok(Verdict::from_rule(confirmed(&self.0, state, &txid)?.map(|_| ())))
    }
}

/// Reports, for this SON, each confirmed payment to a user's deposit address (over the current
/// or the previous wallet) that its own view shows and it has not reported.
pub struct DepositReportTrigger {
    node: BitcoinNode,
    scripts: ScriptCache,
}

impl DepositReportTrigger {
    /// The trigger of a SON node with this service.
    pub fn new(node: BitcoinNode) -> Self {
        DepositReportTrigger { node, scripts: ScriptCache::default() }
    }
}

#[async_trait]
impl Trigger for DepositReportTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        state.rows::<DepositKeys>().next().is_some() && current_wallet(state).is_some()
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
        for wallet in std::iter::once(current).chain(previous) {
            if !wallet.signers.iter().any(|s| s.son == son) {
                continue;
            }
            for (account, key) in state.rows::<DepositKeys>() {
                let Ok(spk) = self.scripts.script_pubkey(wallet, &key.public_key) else {
                    continue;
                };
                for o in seen_confirmed(&self.node, state, &spk)? {
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
                        wallet: wallet.id,
                        txid: o.outpoint.txid.to_string(),
                        vout: o.outpoint.vout,
                        amount_sat: o.amount_sat,
                    };
                    if sonprop_core::Operation::check(&op, state).is_ok() {
                        out.operations.push(Box::new(op));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Deposit addresses' output scripts by wallet and user key: built once, not on every block.
#[derive(Default)]
pub struct ScriptCache(
    std::sync::Mutex<
        std::collections::BTreeMap<u64, std::collections::BTreeMap<String, ScriptBuf>>,
    >,
);

impl ScriptCache {
    /// The P2WSH output script of `user_key`'s deposit address over `wallet`.
    fn script_pubkey(
        &self,
        wallet: &crate::state::Wallet,
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

/// Proposes the sweep of each confirmed deposit, at this node's fee estimate.
pub struct DepositTrigger(pub BitcoinNode);

#[async_trait]
impl Trigger for DepositTrigger {
    fn wake(&self, state: &State, _: &NodeIdentity) -> bool {
        confirmed_deposits(state).next().is_some()
    }

    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let mut out = TriggerOutput::default();
        let deposits: Vec<String> = confirmed_deposits(state).map(|d| d.outpoint.clone()).collect();
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

fn fee_verdict(node: &BitcoinNode, rate: u64) -> Result<Option<Verdict>, PluginError> {
    let own = estimate(node)?;
    Ok((!within_band(rate, own, node.fee_band_percent)).then(|| {
        Verdict::Abstain(format!(
            "fee rate {rate} sat/vB is more than {}% from my estimate of {own}",
            node.fee_band_percent
        ))
    }))
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

/// Proposes refunding each pending withdrawal the wallet cannot pay.
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
