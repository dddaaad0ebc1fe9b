//! Deposits and withdrawals: a user's deposit key, the SONs' deposit reports, the deposit
//! sweep, the withdrawal request, its payment or refund. Settlement (PBTC issued or burnt) is
//! in [`crate::ops::SettleTx`].

use std::fmt;
use std::str::FromStr;

use bitcoin::{Address, OutPoint, ScriptBuf};
use serde::{Deserialize, Serialize};
use sonprop_core::{
    AccountId, ApplyContext, ChainEvent, Operation, OperationError, SonId, State, Subject,
};

use crate::rules::{elected_owner, fee_in_bounds, new_tx, rule, take_inputs, BitcoinError};
use crate::script::{self};
use crate::state::{
    books, current_wallet, deposit_script, utxo_key, wallet_utxos, AssetParam, Books, BooksTable,
    Claim, Deposit, DepositKey, DepositKeys, DepositStatus, Deposits, NetworkParam, Purpose,
    SidechainTx, Transactions, TxInput, Utxos, Wallet, Wallets, Withdrawal, WithdrawalStatus,
    Withdrawals, DEPOSITS_BY_STATUS,
};
use crate::tx::{self, Spend};
use crate::{
    DEPOSIT_KEY, DEPOSIT_PROCESS, DEPOSIT_REPORT, WITHDRAW, WITHDRAW_PROCESS, WITHDRAW_REFUND,
};

/// Satoshis as BTC with eight decimals, e.g. `0.50000000 BTC`.
pub fn btc(sat: u64) -> String {
    format!("{}.{:08} BTC", sat / 100_000_000, sat % 100_000_000)
}

/// The script an address pays, if it is an address of the chain's network.
pub fn address_script(state: &State, address: &str) -> Result<ScriptBuf, BitcoinError> {
    let network = state.param::<NetworkParam>().network();
    let bad = |reason: String| BitcoinError::BadAddress { address: address.to_owned(), reason };
    let a = Address::from_str(address).map_err(|e| bad(e.to_string()))?;
    let a = a.require_network(network).map_err(|e| bad(e.to_string()))?;
    Ok(a.script_pubkey())
}

/// The current wallet, provided it is the one the elected SONs should hold (deposits and
/// withdrawals wait while a wallet update is due).
pub fn settled_wallet(state: &State) -> Result<&Wallet, BitcoinError> {
    let current = current_wallet(state).ok_or(BitcoinError::NoWallet)?;
    // The current wallet's keys were checked when it was made: comparing is enough.
    if crate::state::unchecked_signers(state)? != current.signers {
        return Err(BitcoinError::WalletUpdateDue);
    }
    Ok(current)
}

fn pbtc(state: &State) -> Result<sonprop_core::AssetId, BitcoinError> {
    let id = state.param::<AssetParam>();
    match state.asset(id) {
        Some(a) if a.issuer == AccountId::SON_CONSENSUS => Ok(id),
        _ => Err(BitcoinError::NoAsset(id)),
    }
}

fn put_books(ctx: &mut ApplyContext<'_>, f: impl FnOnce(&mut Books)) -> Result<(), OperationError> {
    let mut b = books(ctx);
    f(&mut b);
    ctx.put_row::<BooksTable>(&0, Some(b))
}

// ---------------------------------------------------------------------------------------------
// The deposit key

/// Registers (or replaces) a user's deposit key and default withdrawal address. The user's
/// deposit address is the one-or-weighted script of the key over the current wallet.
///
/// The key must be proven: `proof` is a signature by the deposit key itself over
/// [`deposit_key_digest`] (this chain, this account, this key), so nobody can claim a key
/// another person holds and have that person's deposits credited to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterDepositKey {
    /// The user (who signs).
    pub account: AccountId,
    /// A compressed public key, lower-case hex (its one spelling).
    pub public_key: String,
    /// Where withdrawals go unless a withdrawal names another address.
    pub withdraw_address: Option<String>,
    /// The deposit key's signature over [`deposit_key_digest`]: a compact ECDSA signature
    /// (64 bytes, low S), lower-case hex.
    pub proof: String,
}

/// The digest a deposit key signs to prove its holder registers it: SHA-256 of a domain tag,
/// the chain id, the account (8 bytes, big-endian) and the 33-byte key. Bound to the chain
/// and the account, so a proof can be replayed neither on another chain nor for another
/// account.
pub fn deposit_key_digest(
    chain_id: &sonprop_core::Digest,
    account: AccountId,
    key: &bitcoin::PublicKey,
) -> sonprop_core::Digest {
    let mut w = sonprop_core::chain::crypto::DigestWriter::new();
    w.update(b"sonprop/bitcoin_deposit_key/v1");
    w.update(&chain_id.0);
    w.update(&account.0.to_be_bytes());
    w.update(&key.inner.serialize());
    w.finish()
}

/// The proof for [`RegisterDepositKey::proof`]: `secret` (the deposit key's secret half) signs
/// [`deposit_key_digest`] for `chain_id` and `account`.
pub fn prove_deposit_key(
    chain_id: &sonprop_core::Digest,
    account: AccountId,
    secret: &bitcoin::secp256k1::SecretKey,
) -> String {
    let secp = bitcoin::secp256k1::Secp256k1::signing_only();
    let key = bitcoin::PublicKey::new(secret.public_key(&secp));
    let digest = deposit_key_digest(chain_id, account, &key);
    let msg = bitcoin::secp256k1::Message::from_digest(digest.0);
    sonprop_core::chain::crypto::hex(&secp.sign_ecdsa(&msg, secret).serialize_compact())
}

/// The deposit-key rule's first half: the key is written in its one spelling and `proof` is
/// its holder's signature for `account` on this chain.
fn proven_key(
    state: &State,
    account: AccountId,
    public_key: &str,
    proof: &str,
) -> Result<bitcoin::PublicKey, BitcoinError> {
    let key = script::parse_key(public_key).map_err(|e| BitcoinError::BadKey(e.to_string()))?;
    // Parsing accepts upper case; scripts, indexes and the one-account-per-key rule compare
    // the text, so one key has one spelling.
    if key.to_string() != public_key {
        return Err(BitcoinError::BadKey(format!(
            "`{public_key}` is not written as lower-case hex (write `{key}`)"
        )));
    }
    let bad = |why: &str| BitcoinError::BadProof(why.to_owned());
    let bytes =
        sonprop_core::chain::crypto::from_hex(proof).ok_or_else(|| bad("not lower-case hex"))?;
    let sig = bitcoin::secp256k1::ecdsa::Signature::from_compact(&bytes)
        .map_err(|_| bad("not a 64-byte compact signature"))?;
    let digest = deposit_key_digest(&state.chain_id(), account, &key);
    let msg = bitcoin::secp256k1::Message::from_digest(digest.0);
    bitcoin::secp256k1::Secp256k1::verification_only()
        .verify_ecdsa(&msg, &sig, &key.inner)
        .map_err(|_| bad("it is not this key's signature for this account on this chain"))?;
    Ok(key)
}

fn check_key(state: &State, op: &RegisterDepositKey) -> Result<(), BitcoinError> {
    pbtc(state)?;
    let key = proven_key(state, op.account, &op.public_key, &op.proof)?;
    // One account per key: a key shared would make one deposit address credit either.
    let by_key = state.rows_by(&crate::state::DEPOSIT_KEYS_BY_KEY, &op.public_key);
    if let Some((owner, _)) = by_key.into_iter().find(|(a, _)| *a != op.account) {
        return Err(BitcoinError::KeyTaken { key: op.public_key.clone(), owner });
    }
    if state.account(op.account).is_none() {
        return Err(BitcoinError::BadKey(format!("account {} does not exist", op.account)));
    }
    if let Some(w) = current_wallet(state) {
        if w.signers.iter().any(|s| script::parse_key(&s.public_key).ok() == Some(key)) {
            return Err(BitcoinError::BadKey("it is a SON's wallet key".into()));
        }
    }
    if let Some(a) = &op.withdraw_address {
        address_script(state, a)?;
    }
    Ok(())
}

#[sonprop_core::operation(
    name = "bitcoin_deposit_key",
    description = "a user's deposit key (its deposit address) and default withdrawal address",
    example = RegisterDepositKey {
        account: AccountId(20),
        public_key: "0368dc31b2b547c74f52abfc67c7fc768c68115d8ab96430d9bb4996fa660121cd"
            .into(),
        withdraw_address: None,
        proof: "5c".repeat(64),
    }
)]
impl Operation for RegisterDepositKey {
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.account]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_key(state, self).map_err(rule(DEPOSIT_KEY))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let row = DepositKey {
            public_key: self.public_key.clone(),
            withdraw_address: self.withdraw_address.clone(),
        };
        ctx.put_row::<DepositKeys>(&self.account, Some(row))
    }
}

/// The address a user deposits to now, if the user registered a key and a wallet exists.
pub fn deposit_address(state: &State, account: AccountId) -> Option<Address> {
    let key = state.row::<DepositKeys>(&account)?;
    let wallet = current_wallet(state)?;
    let script = deposit_script(&key.public_key, wallet).ok()?;
    Some(script::p2wsh_address(&script, state.param::<NetworkParam>()))
}

// ---------------------------------------------------------------------------------------------
// Deposit reports

/// One SON's report of a payment to a user's deposit address, from its own Bitcoin view.
/// Signed by the SON's owner; every elected SON of the wallet reports for itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportDeposit {
    /// The reporting SON.
    pub son: SonId,
    /// Its owner (who signs).
    pub owner: AccountId,
    /// The user whose deposit address it pays.
    pub account: AccountId,
    /// The wallet whose SONs that deposit address names: the current one, or the one before
    /// it (a payment to an address of the previous wallet is still the user's).
    pub wallet: u64,
    /// The payment's transaction.
    pub txid: String,
    /// Its output index.
    pub vout: u32,
    /// Its amount, in satoshis.
    pub amount_sat: u64,
}

impl ReportDeposit {
    fn outpoint(&self) -> Result<OutPoint, BitcoinError> {
        let txid = self.txid.parse().map_err(|_| BitcoinError::Hex(self.txid.clone()))?;
        Ok(OutPoint { txid, vout: self.vout })
    }
}

/// What a report does: the wallet it counts in, the SON's weight and that wallet's total, and
/// the user's key.
struct Report {
    weight: u16,
    total: u32,
    user_key: String,
}

fn check_report(state: &State, op: &ReportDeposit) -> Result<Report, BitcoinError> {
    elected_owner(state, op.son, op.owner)?;
    if op.amount_sat == 0 {
        return Err(BitcoinError::ZeroAmount);
    }
    let o = op.outpoint()?;
    let key =
        state.row::<DepositKeys>(&op.account).ok_or(BitcoinError::NoDepositKey(op.account))?;
    if let Some(d) = state.row::<Deposits>(&utxo_key(&o)) {
        if d.reported_by(op.son) {
            return Err(BitcoinError::AlreadyReported { son: op.son, deposit: o.to_string() });
        }
        if !matches!(d.status, DepositStatus::Reported) {
            return Err(BitcoinError::DepositStatus {
                deposit: o.to_string(),
                status: d.status.to_string(),
                needed: "reported",
            });
        }
    } else if state.row::<Utxos>(&utxo_key(&o)).is_some() {
        return Err(BitcoinError::KnownOutput(o.to_string()));
    }
    // The current wallet's deposit addresses, or the previous one's (a payment made just
    // before a wallet update is still the user's). The wallet is part of the version the
    // report backs: a report naming another wallet backs another version.
    let current = current_wallet(state).ok_or(BitcoinError::NoWallet)?;
    if op.wallet != current.id && op.wallet + 1 != current.id {
        return Err(BitcoinError::NotCurrent(op.wallet));
    }
    let wallet = state
        .row::<Wallets>(&op.wallet)
        .ok_or_else(|| BitcoinError::Inconsistent(format!("wallet {}", op.wallet)))?;
    let me =
        wallet.signers.iter().find(|s| s.son == op.son).ok_or(BitcoinError::NotElected(op.son))?;
    let total = wallet.signers.iter().map(|s| u32::from(s.weight)).sum();
    Ok(Report { weight: me.weight, total, user_key: key.public_key.clone() })
}

/// A deposit was reported for the first time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(kind = DEPOSIT_REPORT, name = "seen")]
pub struct DepositSeen {
    /// `txid:vout`.
    pub deposit: String,
    /// The user.
    pub account: AccountId,
    /// Satoshis.
    pub amount_sat: u64,
    /// The first reporter.
    pub son: SonId,
}
impl fmt::Display for DepositSeen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deposit {} to {} seen by son {} ({})",
            btc(self.amount_sat),
            self.account,
            self.son,
            self.deposit
        )
    }
}

/// Reports from more than two thirds of the wallet's weight agree on a deposit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(kind = DEPOSIT_REPORT, name = "confirmed")]
pub struct DepositConfirmed {
    /// `txid:vout`.
    pub deposit: String,
    /// The user.
    pub account: AccountId,
    /// Satoshis.
    pub amount_sat: u64,
    /// SONs whose reports agree.
    pub reporters: usize,
    /// The wallet's SONs.
    pub of: usize,
    /// SONs that reported another version (another amount or user).
    #[serde(default)]
    pub dissenting: usize,
}
impl fmt::Display for DepositConfirmed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deposit {} to {} seen by {}/{} SONs; confirmed on chain ({})",
            btc(self.amount_sat),
            self.account,
            self.reporters,
            self.of,
            self.deposit
        )?;
        if self.dissenting > 0 {
            let sons = sonprop_core::chain::event::counted(self.dissenting as u64, "SON");
            write!(f, "; {sons} reported another version")?;
        }
        Ok(())
    }
}

#[sonprop_core::operation(
    name = "bitcoin_deposit_report",
    description = "a SON's report of a payment to a user's deposit address",
    example = ReportDeposit {
        son: SonId(3),
        owner: AccountId(14),
        account: AccountId(20),
        wallet: 0,
        txid: "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b".into(),
        vout: 0,
        amount_sat: 50_000_000,
    }
)]
impl Operation for ReportDeposit {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named(format!("bitcoin:deposit:{}:{}:{}", self.txid, self.vout, self.son)))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.owner]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_report(state, self).map(|_| ()).map_err(rule(DEPOSIT_REPORT))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let fail = rule(DEPOSIT_REPORT);
        let r = check_report(ctx, self).map_err(&fail)?;
        let o = self.outpoint().map_err(&fail)?;
        let key = utxo_key(&o);
        let mut d = match ctx.row::<Deposits>(&key) {
            Some(d) => d.clone(),
            None => {
                ctx.emit_event(&DepositSeen {
                    deposit: o.to_string(),
                    account: self.account,
                    amount_sat: self.amount_sat,
                    son: self.son,
                });
                Deposit {
                    outpoint: o.to_string(),
                    claims: Vec::new(),
                    status: DepositStatus::Reported,
                    first_reported: ctx.now(),
                }
            }
        };
        let same = |c: &Claim| {
            c.account == self.account
                && c.amount_sat == self.amount_sat
                && c.user_key == r.user_key
                && c.wallet == self.wallet
        };
        let i = match d.claims.iter().position(same) {
            Some(i) => i,
            None => {
                d.claims.push(Claim {
                    account: self.account,
                    amount_sat: self.amount_sat,
                    user_key: r.user_key.clone(),
                    wallet: self.wallet,
                    total_weight: r.total,
                    reporters: Vec::new(),
                    weight: 0,
                });
                d.claims.len() - 1
            }
        };
        let claim = &mut d.claims[i];
        claim.reporters.push(self.son);
        claim.weight += u32::from(r.weight);
        if claim.passes() {
            let claim = claim.clone();
            let (reporters, account, amount_sat) =
                (claim.reporters.len(), claim.account, claim.amount_sat);
            let dissenting = d.claims.iter().map(|c| c.reporters.len()).sum::<usize>() - reporters;
            d.status = DepositStatus::Confirmed;
            let of = ctx.row::<Wallets>(&self.wallet).map_or(0, |w| w.signers.len());
            ctx.emit_event(&DepositConfirmed {
                deposit: d.outpoint.clone(),
                account,
                amount_sat,
                reporters,
                of,
                dissenting,
            });
            if let Some(reason) = too_small(ctx, &claim) {
                ctx.emit_event(&DepositTooSmall {
                    deposit: d.outpoint.clone(),
                    account,
                    amount_sat,
                    reason: reason.clone(),
                });
                d.status = DepositStatus::TooSmall { reason };
            }
        }
        ctx.put_row::<Deposits>(&key, Some(d))
    }
}

/// What a deposit sweep into `to` pre-pays into the SONs' reserve: the cost of spending its
/// output in a later wallet sweep at `bitcoin.carry_fee_rate`.
pub fn carry_sat(state: &State, to: &Wallet) -> u64 {
    let vsize = tx::input_vsize(to.signers.len(), to.script().len());
    vsize.saturating_mul(state.param::<crate::state::CarryFeeRate>())
}

/// Why a confirmed deposit cannot be credited, if it cannot: below `bitcoin.min_deposit_sat`,
/// or its sweep at the lowest fee rate and its carry would leave less than the dust limit.
/// Such a deposit is recorded as too small and never blocks anything else.
pub fn too_small(state: &State, claim: &Claim) -> Option<String> {
    let min = state.param::<crate::state::MinDepositSat>();
    if claim.amount_sat < min {
        return Some(format!(
            "{} sat is below bitcoin.min_deposit_sat ({min} sat)",
            claim.amount_sat
        ));
    }
    let signing = state.row::<Wallets>(&claim.wallet)?;
    let to = current_wallet(state)?;
    let script_len = deposit_script(&claim.user_key, signing).ok()?.len();
    let rate = state.param::<crate::state::MinFeeRate>();
    let fee =
        tx::estimate_vsize(1, 1, signing.signers.len(), script_len, true).saturating_mul(rate);
    let carry = carry_sat(state, to);
    let keep = fee.saturating_add(carry).saturating_add(tx::P2WSH_DUST_SAT);
    (claim.amount_sat < keep).then(|| {
        format!(
            "{} sat cannot pay its sweep ({fee} sat at {rate} sat/vB) and its later sweep's \
             carry ({carry} sat) and leave {} sat",
            claim.amount_sat,
            tx::P2WSH_DUST_SAT
        )
    })
}

/// A confirmed deposit too small to credit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(kind = DEPOSIT_REPORT, name = "too_small")]
pub struct DepositTooSmall {
    /// `txid:vout`.
    pub deposit: String,
    /// The user.
    pub account: AccountId,
    /// Satoshis.
    pub amount_sat: u64,
    /// Why.
    pub reason: String,
}
impl fmt::Display for DepositTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deposit {} of {} to {} is not credited: {}",
            self.deposit,
            btc(self.amount_sat),
            self.account,
            self.reason
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The deposit sweep

/// Sweeps a confirmed deposit into the current wallet: a SON proposal carrying the fee rate
/// and the unsigned transaction, which every node rebuilds and compares byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessDeposit {
    /// The deposit, `txid:vout`.
    pub deposit: String,
    /// The fee rate, sat/vB.
    pub fee_rate: u64,
    /// The unsigned sweep, hex.
    pub unsigned_tx: String,
}

/// The confirmed deposits, in outpoint order.
pub fn confirmed_deposits(state: &State) -> impl Iterator<Item = &Deposit> + '_ {
    state.rows_by(&DEPOSITS_BY_STATUS, &DepositStatus::Confirmed.code()).map(|(_, d)| d)
}

fn parse_outpoint(s: &str) -> Result<OutPoint, BitcoinError> {
    s.parse().map_err(|_| BitcoinError::UnknownDeposit(s.to_owned()))
}

/// The sweep the chain expects for `deposit` at `fee_rate`, built from state alone.
pub fn expected_deposit_sweep(
    state: &State,
    deposit: &str,
    fee_rate: u64,
) -> Result<ProcessDeposit, BitcoinError> {
    fee_in_bounds(state, fee_rate)?;
    pbtc(state)?;
    let o = parse_outpoint(deposit)?;
    let d = state
        .row::<Deposits>(&utxo_key(&o))
        .ok_or_else(|| BitcoinError::UnknownDeposit(deposit.to_owned()))?;
    if d.status != DepositStatus::Confirmed {
        return Err(BitcoinError::DepositStatus {
            deposit: deposit.to_owned(),
            status: d.status.to_string(),
            needed: "confirmed",
        });
    }
    let claim = d.accepted().ok_or_else(|| BitcoinError::Inconsistent("no claim".into()))?;
    let to = settled_wallet(state)?;
    let signing = state
        .row::<Wallets>(&claim.wallet)
        .ok_or_else(|| BitcoinError::Inconsistent(format!("wallet {}", claim.wallet)))?;
    let script = deposit_script(&claim.user_key, signing)
        .map_err(|e| BitcoinError::BadKey(e.to_string()))?;
    let spk = ScriptBuf::new_p2wsh(&to.script().wscript_hash());
    let t = tx::build_deposit_sweep(
        Spend { outpoint: o, amount_sat: claim.amount_sat },
        &spk,
        fee_rate,
        signing.signers.len(),
        script.len(),
    )?;
    let out = t.output.first().map_or(0, |o| o.value.to_sat());
    let carry = carry_sat(state, to);
    if out < carry.saturating_add(tx::P2WSH_DUST_SAT) {
        return Err(BitcoinError::Build(tx::BuildError::TooSmall {
            total: claim.amount_sat,
            fee: claim.amount_sat - out + carry,
            dust: tx::P2WSH_DUST_SAT,
        }));
    }
    Ok(ProcessDeposit { deposit: deposit.to_owned(), fee_rate, unsigned_tx: tx::to_hex(&t) })
}

/// The deposit-sweep rule: the proposal is the one the chain builds.
pub fn check_process_deposit(state: &State, op: &ProcessDeposit) -> Result<(), BitcoinError> {
    let want = expected_deposit_sweep(state, &op.deposit, op.fee_rate)?;
    if want.unsigned_tx != op.unsigned_tx {
        return Err(BitcoinError::TxMismatch);
    }
    Ok(())
}

/// A deposit's sweep was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(
    kind = DEPOSIT_PROCESS,
    name = "sweeping",
    display = "deposit {deposit} swept in {txid} (sidechain tx {tx})"
)]
pub struct DepositSweeping {
    /// `txid:vout`.
    pub deposit: String,
    /// The sidechain transaction.
    pub tx: u64,
    /// Its Bitcoin txid.
    pub txid: String,
}

#[sonprop_core::operation(
    name = "bitcoin_deposit_process",
    description = "sweep a confirmed deposit into the primary wallet",
    proposal = crate::rules::son_proposal(deposit_readiness),
    example = ProcessDeposit {
        deposit: "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b:0"
            .into(),
        fee_rate: 2,
        unsigned_tx: String::new(),
    }
)]
impl Operation for ProcessDeposit {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named(format!("bitcoin:deposit:{}", self.deposit)))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_process_deposit(state, self).map_err(rule(DEPOSIT_PROCESS))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        // The ledger ran `check` (which rebuilt the sweep) right before this.
        let fail = rule(DEPOSIT_PROCESS);
        let o = parse_outpoint(&self.deposit).map_err(&fail)?;
        let mut d = ctx
            .row::<Deposits>(&utxo_key(&o))
            .cloned()
            .ok_or_else(|| fail(BitcoinError::UnknownDeposit(self.deposit.clone())))?;
        let claim = d
            .accepted()
            .cloned()
            .ok_or_else(|| fail(BitcoinError::Inconsistent("claim".into())))?;
        let signing = ctx
            .row::<Wallets>(&claim.wallet)
            .cloned()
            .ok_or_else(|| fail(BitcoinError::Inconsistent(format!("wallet {}", claim.wallet))))?;
        let to = settled_wallet(ctx).map_err(&fail)?;
        let purpose = Purpose::Deposit {
            deposit: self.deposit.clone(),
            user_key: claim.user_key.clone(),
            to: to.id,
            carry_sat: carry_sat(ctx, to),
        };
        let inputs = vec![TxInput { outpoint: self.deposit.clone(), amount_sat: claim.amount_sat }];
        let row = new_tx(ctx, purpose, &signing, &self.unsigned_tx, self.fee_rate, inputs);
        let unsigned = tx::from_hex(&self.unsigned_tx)
            .ok_or_else(|| fail(BitcoinError::Hex(self.unsigned_tx.clone())))?;
        ctx.emit_event(&DepositSweeping {
            deposit: self.deposit.clone(),
            tx: row.id,
            txid: tx::txid(&unsigned).to_string(),
        });
        d.status = DepositStatus::Sweeping { tx: row.id };
        ctx.put_row::<Deposits>(&utxo_key(&o), Some(d))?;
        ctx.put_row::<Transactions>(&row.id.clone(), Some(row))
    }
}

// ---------------------------------------------------------------------------------------------
// Withdrawals

/// A user withdraws PBTC to a Bitcoin address: the PBTC moves to the SON account (escrow)
/// until the payment settles, when it is burnt. Signed by the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withdraw {
    /// The user (who signs).
    pub account: AccountId,
    /// PBTC to withdraw, in satoshis; the user receives it less the Bitcoin fee.
    pub amount_sat: u64,
    /// The address paid; the user's registered withdrawal address when absent.
    pub address: Option<String>,
}

fn withdraw_address(state: &State, op: &Withdraw) -> Result<String, BitcoinError> {
    let address = match &op.address {
        Some(a) => a.clone(),
        None => state
            .row::<DepositKeys>(&op.account)
            .and_then(|k| k.withdraw_address.clone())
            .ok_or_else(|| BitcoinError::BadAddress {
                address: String::new(),
                reason: "none given and none registered".into(),
            })?,
    };
    address_script(state, &address)?;
    Ok(address)
}

fn check_withdraw(state: &State, op: &Withdraw) -> Result<String, BitcoinError> {
    pbtc(state)?;
    if op.amount_sat < tx::USER_DUST_SAT {
        return Err(BitcoinError::CannotCover(tx::BuildError::TooSmall {
            total: op.amount_sat,
            fee: 0,
            dust: tx::USER_DUST_SAT,
        }));
    }
    withdraw_address(state, op)
}

/// A withdrawal was requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(kind = WITHDRAW, name = "requested")]
pub struct WithdrawalRequested {
    /// Its number.
    pub withdrawal: u64,
    /// The user.
    pub account: AccountId,
    /// Satoshis.
    pub amount_sat: u64,
    /// To.
    pub address: String,
}
impl fmt::Display for WithdrawalRequested {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "withdrawal {} of {} by {} to {}: PBTC in escrow",
            self.withdrawal,
            btc(self.amount_sat),
            self.account,
            self.address
        )
    }
}

#[sonprop_core::operation(
    name = "bitcoin_withdraw",
    description = "withdraw PBTC to a Bitcoin address (the PBTC goes to escrow)",
    example = Withdraw { account: AccountId(20), amount_sat: 25_000_000, address: None }
)]
impl Operation for Withdraw {
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![self.account]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_withdraw(state, self).map_err(rule(WITHDRAW))?;
        let asset = state.param::<AssetParam>();
        sonprop_core::chain::ops::spendable(state, self.account, asset, self.amount_sat)
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let address = check_withdraw(ctx, self).map_err(rule(WITHDRAW))?;
        let asset = ctx.param::<AssetParam>();
        ctx.transfer(self.account, AccountId::SON_CONSENSUS, asset, self.amount_sat)?;
        let id = ctx.last_row::<Withdrawals>().map_or(0, |(k, _)| k + 1);
        ctx.emit_event(&WithdrawalRequested {
            withdrawal: id,
            account: self.account,
            amount_sat: self.amount_sat,
            address: address.clone(),
        });
        let row = Withdrawal {
            id,
            account: self.account,
            address,
            amount_sat: self.amount_sat,
            status: WithdrawalStatus::Pending,
            created: ctx.now(),
        };
        ctx.put_row::<Withdrawals>(&id, Some(row))
    }
}

/// Pays a pending withdrawal from the current wallet's outputs: a SON proposal carrying the
/// fee rate and the unsigned transaction, which every node rebuilds and compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessWithdrawal {
    /// The withdrawal.
    pub withdrawal: u64,
    /// The fee rate, sat/vB.
    pub fee_rate: u64,
    /// The unsigned payment, hex.
    pub unsigned_tx: String,
}

fn pending_withdrawal(state: &State, id: u64) -> Result<&Withdrawal, BitcoinError> {
    let w = state.row::<Withdrawals>(&id).ok_or(BitcoinError::UnknownWithdrawal(id))?;
    if w.status != WithdrawalStatus::Pending {
        return Err(BitcoinError::WithdrawalNotPending { id, status: w.status.to_string() });
    }
    Ok(w)
}

/// The payment the chain expects for withdrawal `id` at `fee_rate`, from state alone.
pub fn expected_withdrawal(
    state: &State,
    id: u64,
    fee_rate: u64,
) -> Result<ProcessWithdrawal, BitcoinError> {
    fee_in_bounds(state, fee_rate)?;
    let w = pending_withdrawal(state, id)?;
    let wallet = settled_wallet(state)?;
    let pay_to = address_script(state, &w.address)?;
    let utxos: Vec<Spend> = wallet_utxos(state, wallet.id)
        .into_iter()
        .map(|(outpoint, amount_sat)| Spend { outpoint, amount_sat })
        .collect();
    let have: u64 = utxos.iter().map(|s| s.amount_sat).sum();
    let max = tx::max_inputs(2, wallet.signers.len(), wallet.script().len());
    let coins = tx::select_coins(&utxos, w.amount_sat, max).ok_or(BitcoinError::CannotCover(
        tx::BuildError::Insufficient { have, need: w.amount_sat },
    ))?;
    let spk = ScriptBuf::new_p2wsh(&wallet.script().wscript_hash());
    let t = tx::build_withdrawal(
        &coins,
        &pay_to,
        w.amount_sat,
        &spk,
        fee_rate,
        wallet.signers.len(),
        wallet.script().len(),
    )
    .map_err(BitcoinError::CannotCover)?;
    Ok(ProcessWithdrawal { withdrawal: id, fee_rate, unsigned_tx: tx::to_hex(&t) })
}

/// The payment rule: the proposal is the one the chain builds.
pub fn check_process_withdrawal(state: &State, op: &ProcessWithdrawal) -> Result<(), BitcoinError> {
    let want = expected_withdrawal(state, op.withdrawal, op.fee_rate)?;
    if want.unsigned_tx != op.unsigned_tx {
        return Err(BitcoinError::TxMismatch);
    }
    Ok(())
}

/// A withdrawal's payment was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(
    kind = WITHDRAW_PROCESS,
    name = "paying",
    display = "withdrawal {withdrawal} to be paid by {txid} (sidechain tx {tx})"
)]
pub struct WithdrawalPaying {
    /// It.
    pub withdrawal: u64,
    /// The sidechain transaction.
    pub tx: u64,
    /// Its Bitcoin txid.
    pub txid: String,
}

#[sonprop_core::operation(
    name = "bitcoin_withdraw_process",
    description = "pay a pending withdrawal from the primary wallet, change back to it",
    proposal = crate::rules::son_proposal(withdrawal_payment_readiness),
    example = ProcessWithdrawal { withdrawal: 0, fee_rate: 2, unsigned_tx: String::new() }
)]
impl Operation for ProcessWithdrawal {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named(format!("bitcoin:withdrawal:{}", self.withdrawal)))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_process_withdrawal(state, self).map_err(rule(WITHDRAW_PROCESS))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        // The ledger ran `check` (which rebuilt the payment) right before this.
        let fail = rule(WITHDRAW_PROCESS);
        let wallet = settled_wallet(ctx).map_err(&fail)?.clone();
        let unsigned = tx::from_hex(&self.unsigned_tx)
            .ok_or_else(|| fail(BitcoinError::Hex(self.unsigned_tx.clone())))?;
        let inputs = take_inputs(ctx, &unsigned, WITHDRAW_PROCESS)?;
        let purpose = Purpose::Withdrawal { withdrawal: self.withdrawal, wallet: wallet.id };
        let row = new_tx(ctx, purpose, &wallet, &self.unsigned_tx, self.fee_rate, inputs);
        ctx.emit_event(&WithdrawalPaying {
            withdrawal: self.withdrawal,
            tx: row.id,
            txid: tx::txid(&unsigned).to_string(),
        });
        let mut w = ctx
            .row::<Withdrawals>(&self.withdrawal)
            .cloned()
            .ok_or_else(|| fail(BitcoinError::UnknownWithdrawal(self.withdrawal)))?;
        w.status = WithdrawalStatus::Paying { tx: row.id };
        ctx.put_row::<Withdrawals>(&self.withdrawal, Some(w))?;
        ctx.put_row::<Transactions>(&row.id.clone(), Some(row))
    }
}

/// Returns a withdrawal's PBTC when it can never be paid: its amount cannot pay the fee of the
/// cheapest payment (one input of the current wallet, the user's output and change) at the
/// lowest fee rate and leave the dust limit. A SON proposal. The rule reads the withdrawal
/// alone (and the chain's parameters and current wallet): no other flow, in flight or stuck,
/// can hold a refund back. A withdrawal the wallet cannot pay *yet* waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundWithdrawal {
    /// The withdrawal.
    pub withdrawal: u64,
}

/// Why the withdrawal must be refunded (the refund rule); an error when it must not.
pub fn check_refund(state: &State, op: &RefundWithdrawal) -> Result<String, BitcoinError> {
    let w = pending_withdrawal(state, op.withdrawal)?;
    let wallet = current_wallet(state).ok_or(BitcoinError::NoWallet)?;
    let rate = state.param::<crate::state::MinFeeRate>();
    let vsize = tx::estimate_vsize(1, 2, wallet.signers.len(), wallet.script().len(), false);
    let fee = vsize.saturating_mul(rate);
    match w.amount_sat.checked_sub(fee).filter(|paid| *paid >= tx::USER_DUST_SAT) {
        Some(_) => Err(BitcoinError::RefundNotDue(format!(
            "{} sat can pay its fee ({fee} sat at {rate} sat/vB) and leave {} sat: it waits for the wallet",
            w.amount_sat,
            tx::USER_DUST_SAT
        ))),
        None => Ok(tx::BuildError::TooSmall {
            total: w.amount_sat,
            fee,
            dust: tx::USER_DUST_SAT,
        }
        .to_string()),
    }
}

/// A withdrawal was refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(kind = WITHDRAW_REFUND, name = "refunded")]
pub struct WithdrawalRefunded {
    /// It.
    pub withdrawal: u64,
    /// The user.
    pub account: AccountId,
    /// PBTC returned.
    pub amount_sat: u64,
    /// Why.
    pub reason: String,
}
impl fmt::Display for WithdrawalRefunded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "withdrawal {} refunded, {} PBTC back to {}: {}",
            self.withdrawal,
            btc(self.amount_sat).trim_end_matches(" BTC"),
            self.account,
            self.reason
        )
    }
}

#[sonprop_core::operation(
    name = "bitcoin_withdraw_refund",
    description = "return a withdrawal's PBTC when the primary wallet cannot pay it",
    proposal = crate::rules::son_proposal(withdrawal_refund_readiness),
    example = RefundWithdrawal { withdrawal: 0 }
)]
impl Operation for RefundWithdrawal {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named(format!("bitcoin:refund:{}", self.withdrawal)))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_refund(state, self).map(|_| ()).map_err(rule(WITHDRAW_REFUND))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let fail = rule(WITHDRAW_REFUND);
        let reason = check_refund(ctx, self).map_err(&fail)?;
        let mut w = ctx
            .row::<Withdrawals>(&self.withdrawal)
            .cloned()
            .ok_or_else(|| fail(BitcoinError::UnknownWithdrawal(self.withdrawal)))?;
        let asset = ctx.param::<AssetParam>();
        ctx.transfer(AccountId::SON_CONSENSUS, w.account, asset, w.amount_sat)?;
        ctx.emit_event(&WithdrawalRefunded {
            withdrawal: w.id,
            account: w.account,
            amount_sat: w.amount_sat,
            reason: reason.clone(),
        });
        w.status = WithdrawalStatus::Refunded { reason };
        ctx.put_row::<Withdrawals>(&self.withdrawal, Some(w))
    }
}

// ---------------------------------------------------------------------------------------------
// Settlement and failure of deposit sweeps and withdrawal payments (called by SettleTx/FailTx)

/// A deposit was credited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(kind = crate::SETTLE, name = "deposit_credited")]
pub struct DepositCredited {
    /// `txid:vout`.
    pub deposit: String,
    /// The user.
    pub account: AccountId,
    /// PBTC issued (satoshis that reached the wallet).
    pub credited: u64,
}
impl fmt::Display for DepositCredited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let amount = btc(self.credited);
        let amount = amount.trim_end_matches(" BTC");
        write!(f, "deposit {} settled, {amount} PBTC issued to {}", self.deposit, self.account)
    }
}

/// A withdrawal was paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(kind = crate::SETTLE, name = "withdrawal_paid")]
pub struct WithdrawalPaid {
    /// It.
    pub withdrawal: u64,
    /// The user.
    pub account: AccountId,
    /// PBTC burnt.
    pub burnt: u64,
    /// Satoshis the user's address received.
    pub sent_sat: u64,
}
impl fmt::Display for WithdrawalPaid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let burnt = btc(self.burnt);
        write!(
            f,
            "withdrawal {} settled: {} paid to {}'s address, {} PBTC burnt",
            self.withdrawal,
            btc(self.sent_sat),
            self.account,
            burnt.trim_end_matches(" BTC")
        )
    }
}

/// What settling `t` (with its decoded transaction) does to the deposit, withdrawal, wallet
/// outputs, PBTC and books.
pub(crate) fn settle_effects(
    ctx: &mut ApplyContext<'_>,
    t: &SidechainTx,
    unsigned: &bitcoin::Transaction,
) -> Result<(), OperationError> {
    let fail = rule(crate::SETTLE);
    let id = tx::txid(unsigned);
    let inputs: u64 = t.inputs.iter().map(|i| i.amount_sat).sum();
    let outputs: u64 = unsigned.output.iter().map(|o| o.value.to_sat()).sum();
    let add_output = |ctx: &mut ApplyContext<'_>, vout: usize, wallet: u64| {
        let amount_sat = unsigned.output.get(vout).map_or(0, |o| o.value.to_sat());
        let key = utxo_key(&OutPoint { txid: id, vout: vout as u32 });
        ctx.put_row::<Utxos>(&key, Some(crate::state::Utxo { wallet, amount_sat }))
            .map(|()| amount_sat)
    };
    match &t.purpose {
        Purpose::Sweep { to, .. } => {
            for vout in 0..unsigned.output.len() {
                add_output(ctx, vout, *to)?;
            }
            let fee = inputs.saturating_sub(outputs);
            put_books(ctx, |b| b.sweep_fees_sat += fee)
        }
        Purpose::Deposit { deposit, to, carry_sat, .. } => {
            let reached = add_output(ctx, 0, *to)?;
            let credited = reached.saturating_sub(*carry_sat);
            let carried = reached - credited;
            put_books(ctx, |b| b.carried_sat += carried)?;
            let o = parse_outpoint(deposit).map_err(&fail)?;
            let mut d = ctx
                .row::<Deposits>(&utxo_key(&o))
                .cloned()
                .ok_or_else(|| fail(BitcoinError::UnknownDeposit(deposit.clone())))?;
            let account = d
                .accepted()
                .map(|c| c.account)
                .ok_or_else(|| fail(BitcoinError::Inconsistent("claim".into())))?;
            let asset = pbtc(ctx).map_err(&fail)?;
            ctx.issue(asset, account, credited)?;
            put_books(ctx, |b| b.issued += credited)?;
            ctx.emit_event(&DepositCredited { deposit: deposit.clone(), account, credited });
            d.status = DepositStatus::Credited { tx: t.id, credited };
            ctx.put_row::<Deposits>(&utxo_key(&o), Some(d))
        }
        Purpose::Withdrawal { withdrawal, wallet } => {
            if unsigned.output.len() > 1 {
                add_output(ctx, 1, *wallet)?;
            }
            let mut w = ctx
                .row::<Withdrawals>(withdrawal)
                .cloned()
                .ok_or_else(|| fail(BitcoinError::UnknownWithdrawal(*withdrawal)))?;
            let asset = pbtc(ctx).map_err(&fail)?;
            ctx.reserve(asset, AccountId::SON_CONSENSUS, w.amount_sat)?;
            put_books(ctx, |b| b.burnt += w.amount_sat)?;
            let sent_sat = unsigned.output.first().map_or(0, |o| o.value.to_sat());
            ctx.emit_event(&WithdrawalPaid {
                withdrawal: w.id,
                account: w.account,
                burnt: w.amount_sat,
                sent_sat,
            });
            w.status = WithdrawalStatus::Paid { tx: t.id, sent_sat };
            ctx.put_row::<Withdrawals>(withdrawal, Some(w))
        }
    }
}

/// What failing `t` does: its wallet inputs go back to their wallet — except those in
/// `vanished`, gone from Bitcoin, which are recorded as lost — and the deposit or withdrawal
/// waits to be processed again (a deposit whose own output vanished is marked so).
pub(crate) fn fail_effects(
    ctx: &mut ApplyContext<'_>,
    t: &SidechainTx,
    vanished: &[OutPoint],
) -> Result<(), OperationError> {
    let fail = rule(crate::TX_FAIL);
    if t.purpose.spends_wallet() {
        let mut lost = 0u64;
        for i in &t.inputs {
            let o = parse_outpoint(&i.outpoint).map_err(&fail)?;
            if vanished.contains(&o) {
                lost = lost.saturating_add(i.amount_sat);
                continue;
            }
            let row = crate::state::Utxo { wallet: t.signing_wallet, amount_sat: i.amount_sat };
            ctx.put_row::<Utxos>(&utxo_key(&o), Some(row))?;
        }
        if lost > 0 {
            put_books(ctx, |b| b.lost_sat += lost)?;
        }
    }
    match &t.purpose {
        Purpose::Sweep { .. } => Ok(()),
        Purpose::Deposit { deposit, .. } => {
            let o = parse_outpoint(deposit).map_err(&fail)?;
            if let Some(mut d) = ctx.row::<Deposits>(&utxo_key(&o)).cloned() {
                d.status = if vanished.contains(&o) {
                    DepositStatus::Vanished
                } else {
                    DepositStatus::Confirmed
                };
                ctx.put_row::<Deposits>(&utxo_key(&o), Some(d))?;
            }
            Ok(())
        }
        Purpose::Withdrawal { withdrawal, .. } => {
            if let Some(mut w) = ctx.row::<Withdrawals>(withdrawal).cloned() {
                w.status = WithdrawalStatus::Pending;
                ctx.put_row::<Withdrawals>(withdrawal, Some(w))?;
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Readiness, for `explain` (see the `readiness` module)

use crate::rules::{due, named, not_due};
use crate::state::{paused, MinFeeRate};
use sonprop_core::Readiness::{self, NotAbout};

/// `bitcoin_deposit_process` about `bitcoin:deposit:TXID:VOUT`.
pub fn deposit_readiness(state: &State, subject: &Subject) -> Readiness {
    let Some(text) = named(subject, &["bitcoin:deposit:"]) else { return NotAbout };
    let Ok(o) = text.parse::<OutPoint>() else { return NotAbout };
    // Before a SON reports it, the chain knows nothing of it.
    let Some(d) = state.row::<Deposits>(&utxo_key(&o)) else { return NotAbout };
    match &d.status {
        DepositStatus::Confirmed => match paused(state) {
            Some(why) => not_due(why),
            None => {
                due("reported by SONs above two thirds of the wallet's weight: its sweep may be \
                 proposed")
            }
        },
        DepositStatus::Reported => {
            let best = d.claims.iter().max_by_key(|c| c.weight);
            let (weight, total) = best.map_or((0, 0), |c| (c.weight, c.total_weight));
            not_due(format!(
                "reported by SONs holding {weight} of the wallet's weight {total}; more than \
                 two thirds must report the same amount and user"
            ))
        }
        other => not_due(format!("the deposit is {other}")),
    }
}

/// The withdrawal a subject names (`bitcoin:withdrawal:N` or `bitcoin:refund:N`), if it
/// exists.
fn withdrawal(state: &State, subject: &Subject) -> Option<u64> {
    let n = named(subject, &["bitcoin:withdrawal:", "bitcoin:refund:"])?.parse().ok()?;
    state.row::<Withdrawals>(&n).map(|_| n)
}

/// `bitcoin_withdrawal_process` about `bitcoin:withdrawal:N`, at the lowest fee rate.
pub fn withdrawal_payment_readiness(state: &State, subject: &Subject) -> Readiness {
    let Some(id) =
        withdrawal(state, subject).filter(|_| named(subject, &["bitcoin:withdrawal:"]).is_some())
    else {
        return NotAbout;
    };
    if let Some(why) = paused(state) {
        return not_due(why);
    }
    match expected_withdrawal(state, id, state.param::<MinFeeRate>()) {
        Ok(_) => due("pending, and the primary wallet can pay it: its payment may be proposed"),
        Err(e) => not_due(e.to_string()),
    }
}

/// `bitcoin_withdrawal_refund` about `bitcoin:refund:N`, and about `bitcoin:withdrawal:N` too
/// (whether the withdrawal would be refunded).
pub fn withdrawal_refund_readiness(state: &State, subject: &Subject) -> Readiness {
    let Some(id) = withdrawal(state, subject) else { return NotAbout };
    let op = RefundWithdrawal { withdrawal: id };
    match check_refund(state, &op) {
        Ok(reason) => due(format!("its refund may be proposed: {reason}")),
        Err(e) => not_due(e.to_string()),
    }
}
