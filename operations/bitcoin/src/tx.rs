//! Deterministic Bitcoin transactions: built from chain state and a proposal's fee rate alone,
//! so every SON rebuilds the same bytes; BIP143 signatures; the witness that spends the weighted
//! script.

use std::collections::BTreeMap;

use bitcoin::absolute::LockTime;
use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::ecdsa::Signature as EcdsaSig;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, OutPoint, PublicKey, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
};

/// An output the wallet spends: where, and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Spend {
    /// The output.
    pub outpoint: OutPoint,
    /// Its amount, in satoshis.
    pub amount_sat: u64,
}

/// A transaction that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Nothing to spend.
    #[error("no outputs to spend")]
    NoInputs,
    /// The inputs do not cover the fee and a non-dust output.
    #[error("inputs of {total} sat cannot pay a fee of {fee} sat and leave at least {dust} sat")]
    TooSmall {
        /// The inputs' total.
        total: u64,
        /// The fee.
        fee: u64,
        /// The smallest output relayed (P2WSH dust limit).
        dust: u64,
    },
    /// Amounts beyond `u64`.
    #[error("amounts overflow")]
    Overflow,
    /// The inputs do not cover the amount (with change of at least the dust limit).
    #[error("the wallet's outputs hold {have} sat; {need} sat are needed")]
    Insufficient {
        /// What the outputs hold.
        have: u64,
        /// What is needed.
        need: u64,
    },
    /// The same output twice.
    #[error("output {0} is spent twice")]
    DuplicateInput(OutPoint),
}

/// The smallest P2WSH output Bitcoin Core relays (its dust limit at the default dust fee rate).
pub const P2WSH_DUST_SAT: u64 = 330;

/// The heaviest transaction Bitcoin Core relays (`MAX_STANDARD_TX_WEIGHT`).
pub const MAX_STANDARD_WEIGHT: u64 = 400_000;

/// The heaviest transaction the bridge builds: a tenth below [`MAX_STANDARD_WEIGHT`], since
/// the weight is an estimate (an upper bound, but a margin costs nothing).
pub const TARGET_WEIGHT: u64 = 360_000;

/// The most inputs a transaction the bridge builds spends, whatever their weight: it bounds
/// the signatures each SON submits for it on chain (one per input) and the work of every node
/// that checks them.
pub const MAX_TX_INPUTS: usize = 100;

/// The sequence of every input the bridge builds: non-final and below `0xfffffffe`, so the
/// transaction signals replace-by-fee (BIP125) and a stuck one can be replaced by the same
/// transaction at a higher fee rate.
pub const RBF_SEQUENCE: Sequence = Sequence::ENABLE_RBF_NO_LOCKTIME;

/// The virtual size of a transaction spending `inputs` weighted-script outputs (with `signers`
/// signature slots and a witness script of `script_len` bytes each, plus one empty user slot
/// when `user_slot`) to `outputs` P2WSH outputs. An upper bound: every signature is counted at
/// its largest DER size. A pure function, so every SON computes the same fee.
pub fn estimate_vsize(
    inputs: usize,
    outputs: usize,
    signers: usize,
    script_len: usize,
    user_slot: bool,
) -> u64 {
    estimate_weight(inputs, outputs, signers, script_len, user_slot).div_ceil(4)
}

fn varint(n: usize) -> u64 {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        _ => 5,
    }
}

/// The witness bytes of one weighted-script input, counting every signature at its largest.
fn input_witness(signers: usize, script_len: usize, user_slot: bool) -> u64 {
    let items = signers + usize::from(user_slot) + 1;
    varint(items)
        + signers as u64 * (1 + 73)
        + u64::from(user_slot)
        + varint(script_len)
        + script_len as u64
}

/// The weight (BIP141) of the transaction [`estimate_vsize`] describes: an upper bound.
pub fn estimate_weight(
    inputs: usize,
    outputs: usize,
    signers: usize,
    script_len: usize,
    user_slot: bool,
) -> u64 {
    let (i, o) = (inputs as u64, outputs as u64);
    // version, locktime, counts; each input: outpoint 36, empty scriptSig 1, sequence 4; each
    // output at most 43 bytes (value 8, script length 1, a P2WSH or P2TR script 34).
    let base = 8 + varint(inputs) + varint(outputs) + i * 41 + o * 43;
    // Segwit marker and flag, then each input's witness.
    let witness = 2 + i * input_witness(signers, script_len, user_slot);
    base * 4 + witness
}

/// What one more weighted-script input adds to a transaction, in virtual bytes (rounded up):
/// what a wallet output will cost to spend in a later sweep.
pub fn input_vsize(signers: usize, script_len: usize) -> u64 {
    (41 * 4 + input_witness(signers, script_len, false)).div_ceil(4)
}

/// The most weighted-script inputs a transaction with `outputs` outputs may spend and stay
/// within [`TARGET_WEIGHT`] and [`MAX_TX_INPUTS`] (at least 1).
pub fn max_inputs(outputs: usize, signers: usize, script_len: usize) -> usize {
    let fits = |n: usize| estimate_weight(n, outputs, signers, script_len, false) <= TARGET_WEIGHT;
    let (mut lo, mut hi) = (1, MAX_TX_INPUTS);
    if fits(hi) {
        return hi;
    }
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// A transaction moving every `input` to one output paying `to`, minus the fee at
/// `fee_rate_sat_vb` for [`estimate_vsize`]. Inputs in outpoint order, version 2, locktime 0,
/// sequences signalling replace-by-fee ([`RBF_SEQUENCE`]): the same inputs, destination and
/// rate give the same bytes on every node.
pub fn build_sweep(
    inputs: &[Spend],
    to: &ScriptBuf,
    fee_rate_sat_vb: u64,
    signers: usize,
    script_len: usize,
) -> Result<Transaction, BuildError> {
    sweep_all(inputs, to, fee_rate_sat_vb, signers, script_len, false)
}

/// The sweep of one user deposit (an output of the one-or-weighted script) into the wallet
/// paying `to`, the fee counted with the empty user slot its witness carries.
pub fn build_deposit_sweep(
    deposit: Spend,
    to: &ScriptBuf,
    fee_rate_sat_vb: u64,
    signers: usize,
    script_len: usize,
) -> Result<Transaction, BuildError> {
    sweep_all(&[deposit], to, fee_rate_sat_vb, signers, script_len, true)
}

fn sorted_unique(inputs: &[Spend]) -> Result<(Vec<Spend>, u64), BuildError> {
    if inputs.is_empty() {
        return Err(BuildError::NoInputs);
    }
    let mut sorted = inputs.to_vec();
    sorted.sort();
    if let Some(w) = sorted.windows(2).find(|w| w[0].outpoint == w[1].outpoint) {
        return Err(BuildError::DuplicateInput(w[0].outpoint));
    }
    let total = sorted
        .iter()
        .try_fold(0u64, |t, s| t.checked_add(s.amount_sat))
        .ok_or(BuildError::Overflow)?;
    Ok((sorted, total))
}

fn sweep_all(
    inputs: &[Spend],
    to: &ScriptBuf,
    fee_rate_sat_vb: u64,
    signers: usize,
    script_len: usize,
    user_slot: bool,
) -> Result<Transaction, BuildError> {
    let (sorted, total) = sorted_unique(inputs)?;
    let vsize = estimate_vsize(sorted.len(), 1, signers, script_len, user_slot);
    let fee = vsize.checked_mul(fee_rate_sat_vb).ok_or(BuildError::Overflow)?;
    let out = total
        .checked_sub(fee)
        .filter(|v| *v >= P2WSH_DUST_SAT)
        .ok_or(BuildError::TooSmall { total, fee, dust: P2WSH_DUST_SAT })?;
    Ok(assemble(&sorted, vec![TxOut { value: Amount::from_sat(out), script_pubkey: to.clone() }]))
}

fn assemble(sorted: &[Spend], output: Vec<TxOut>) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: sorted
            .iter()
            .map(|s| TxIn {
                previous_output: s.outpoint,
                script_sig: ScriptBuf::new(),
                sequence: RBF_SEQUENCE,
                witness: Witness::new(),
            })
            .collect(),
        output,
    }
}

/// The smallest payment to a user's address: Bitcoin Core's dust limit for the costliest
/// standard output to spend (P2PKH, 546 sat), so any address type relays.
pub const USER_DUST_SAT: u64 = 546;

/// Deterministic coin selection for a withdrawal of `amount_sat`: the largest outputs first
/// (ties in outpoint order) until they cover it exactly or leave change of at least the
/// P2WSH dust limit, taking at most `max_inputs`. `None` if the outputs cannot.
pub fn select_coins(utxos: &[Spend], amount_sat: u64, max_inputs: usize) -> Option<Vec<Spend>> {
    let mut by_size = utxos.to_vec();
    by_size.sort_by(|a, b| b.amount_sat.cmp(&a.amount_sat).then(a.outpoint.cmp(&b.outpoint)));
    let mut chosen = Vec::new();
    let mut total = 0u64;
    for s in by_size.into_iter().take(max_inputs) {
        total = total.checked_add(s.amount_sat)?;
        chosen.push(s);
        if total == amount_sat || total >= amount_sat.checked_add(P2WSH_DUST_SAT)? {
            return Some(chosen);
        }
    }
    None
}

/// A withdrawal payment: `inputs` (the selected wallet outputs) pay `amount_sat` less the fee
/// to `pay_to`, and the rest back to the wallet at `change_to` (no change output when there
/// is none). Outputs in that order; the user bears the fee, so the wallet gives up exactly
/// `amount_sat`.
pub fn build_withdrawal(
    inputs: &[Spend],
    pay_to: &ScriptBuf,
    amount_sat: u64,
    change_to: &ScriptBuf,
    fee_rate_sat_vb: u64,
    signers: usize,
    script_len: usize,
) -> Result<Transaction, BuildError> {
    let (sorted, total) = sorted_unique(inputs)?;
    let change = total
        .checked_sub(amount_sat)
        .ok_or(BuildError::Insufficient { have: total, need: amount_sat })?;
    if change != 0 && change < P2WSH_DUST_SAT {
        return Err(BuildError::Insufficient {
            have: total,
            need: amount_sat.saturating_add(P2WSH_DUST_SAT),
        });
    }
    let outputs = if change == 0 { 1 } else { 2 };
    let vsize = estimate_vsize(sorted.len(), outputs, signers, script_len, false);
    let fee = vsize.checked_mul(fee_rate_sat_vb).ok_or(BuildError::Overflow)?;
    let paid = amount_sat
        .checked_sub(fee)
        .filter(|v| *v >= USER_DUST_SAT)
        .ok_or(BuildError::TooSmall { total: amount_sat, fee, dust: USER_DUST_SAT })?;
    let mut out = vec![TxOut { value: Amount::from_sat(paid), script_pubkey: pay_to.clone() }];
    if change != 0 {
        out.push(TxOut { value: Amount::from_sat(change), script_pubkey: change_to.clone() });
    }
    Ok(assemble(&sorted, out))
}

/// The transaction as hex (consensus encoding).
pub fn to_hex(tx: &Transaction) -> String {
    serialize_hex(tx)
}

/// A transaction from hex; `None` if it does not decode.
pub fn from_hex(hex: &str) -> Option<Transaction> {
    deserialize_hex(hex).ok()
}

/// The BIP143 (segwit v0) digest input `index` commits to, for a P2WSH output of
/// `witness_script` holding `amount_sat`, with `SIGHASH_ALL`.
pub fn sighash(
    tx: &Transaction,
    index: usize,
    witness_script: &ScriptBuf,
    amount_sat: u64,
) -> Option<Message> {
    let mut cache = SighashCache::new(tx);
    let h = cache
        .p2wsh_signature_hash(
            index,
            witness_script,
            Amount::from_sat(amount_sat),
            EcdsaSighashType::All,
        )
        .ok()?;
    Some(Message::from_digest(h.to_byte_array()))
}

/// Signs input `index`: DER followed by the `SIGHASH_ALL` byte, as a witness carries it.
pub fn sign_input(
    tx: &Transaction,
    index: usize,
    witness_script: &ScriptBuf,
    amount_sat: u64,
    key: &SecretKey,
) -> Option<Vec<u8>> {
    let msg = sighash(tx, index, witness_script, amount_sat)?;
    let sig = Secp256k1::signing_only().sign_ecdsa(&msg, key);
    Some(EcdsaSig { signature: sig, sighash_type: EcdsaSighashType::All }.to_vec())
}

/// Why a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// Not DER plus a sighash byte.
    #[error("not a DER signature with a sighash byte: {0}")]
    Malformed(String),
    /// Another sighash type than `SIGHASH_ALL`.
    #[error("sighash type {0} is not SIGHASH_ALL")]
    SighashType(String),
    /// A signature with a high S (not standard; malleable).
    #[error("the signature is not in low-S form")]
    HighS,
    /// It does not verify.
    #[error("the signature does not verify against the key for this input")]
    Invalid,
}

/// Checks `sig` (DER + sighash byte) by `key` for input `index`.
pub fn verify_input(
    tx: &Transaction,
    index: usize,
    witness_script: &ScriptBuf,
    amount_sat: u64,
    key: &PublicKey,
    sig: &[u8],
) -> Result<(), SignatureError> {
    let parsed = EcdsaSig::from_slice(sig).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    if parsed.sighash_type != EcdsaSighashType::All {
        return Err(SignatureError::SighashType(parsed.sighash_type.to_string()));
    }
    let mut normal = parsed.signature;
    normal.normalize_s();
    if normal != parsed.signature {
        return Err(SignatureError::HighS);
    }
    let msg = sighash(tx, index, witness_script, amount_sat).ok_or(SignatureError::Invalid)?;
    Secp256k1::verification_only()
        .verify_ecdsa(&msg, &parsed.signature, &key.inner)
        .map_err(|_| SignatureError::Invalid)
}

/// The witness that spends a weighted-script output: signatures in reverse wallet order so that
/// the first SON's is on top of the stack, an empty element for each SON that did not sign, an
/// empty user slot for a deposit-address input, then the script.
pub fn weighted_witness(
    signers: usize,
    signatures: &BTreeMap<usize, Vec<u8>>,
    witness_script: &ScriptBuf,
    user_slot: bool,
) -> Witness {
    let mut w = Witness::new();
    for i in (0..signers).rev() {
        match signatures.get(&i) {
            Some(sig) => w.push(sig),
            None => w.push([]),
        }
    }
    if user_slot {
        w.push([]);
    }
    w.push(witness_script.as_bytes());
    w
}

/// The transaction id (it does not cover witnesses, so it is known before any signature).
pub fn txid(tx: &Transaction) -> Txid {
    tx.compute_txid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::secp256k1::Secp256k1;
    use proptest::prelude::*;

    use crate::script::{weighted_script, Signer};

    fn key(i: u8) -> SecretKey {
        SecretKey::from_slice(&[i; 32]).expect("key")
    }

    fn wallet(n: u8) -> (Vec<SecretKey>, ScriptBuf) {
        let secp = Secp256k1::new();
        let keys: Vec<SecretKey> = (1..=n).map(key).collect();
        let signers: Vec<Signer> = keys
            .iter()
            .map(|k| Signer { key: PublicKey::new(k.public_key(&secp)), weight: 1 })
            .collect();
        (keys, weighted_script(&signers).expect("script"))
    }

    fn spend(tag: u8, vout: u32, amount_sat: u64) -> Spend {
        Spend { outpoint: OutPoint { txid: Txid::from_byte_array([tag; 32]), vout }, amount_sat }
    }

    proptest! {
        #[test]
        fn a_sweep_is_a_function_of_its_inputs_set_and_rate(
            spends in proptest::collection::btree_map((0u8..20, 0u32..3), 1_000u64..10_000_000, 1..8),
            rate in 1u64..50,
            rotate in 0usize..8,
        ) {
            let inputs: Vec<Spend> = spends.iter().map(|((t, v), a)| spend(*t, *v, *a)).collect();
            let mut other = inputs.clone();
            other.rotate_left(rotate % inputs.len());
            other.reverse();
            let (_, script) = wallet(5);
            let to = ScriptBuf::new_p2wsh(&script.wscript_hash());
            let a = build_sweep(&inputs, &to, rate, 5, script.len());
            let b = build_sweep(&other, &to, rate, 5, script.len());
            prop_assert_eq!(a.clone().map(|t| to_hex(&t)), b.map(|t| to_hex(&t)), "input order does not matter");
            let total: u64 = inputs.iter().map(|s| s.amount_sat).sum();
            if let Ok(t) = a {
                let vsize = estimate_vsize(inputs.len(), 1, 5, script.len(), false);
                prop_assert_eq!(t.output[0].value.to_sat() + vsize * rate, total, "output + fee = inputs");
                prop_assert!(t.input.windows(2).all(|w| w[0].previous_output < w[1].previous_output));
                prop_assert_eq!((t.version, t.lock_time), (Version::TWO, LockTime::ZERO));
                prop_assert_eq!(from_hex(&to_hex(&t)).map(|d| to_hex(&d)), Some(to_hex(&t)));
            }
        }
    }

    #[test]
    fn a_batch_of_max_inputs_stays_under_the_target_weight_and_one_more_would_not() {
        for signers in 1..=39u8 {
            let (_, script) = wallet(signers);
            let n = usize::from(signers);
            for outputs in [1, 2] {
                let max = max_inputs(outputs, n, script.len());
                let weight = |i| estimate_weight(i, outputs, n, script.len(), false);
                assert!(weight(max) <= TARGET_WEIGHT, "{signers} signers: {max} inputs");
                assert!(max <= MAX_TX_INPUTS);
                assert!(max == MAX_TX_INPUTS || weight(max + 1) > TARGET_WEIGHT, "{signers}");
            }
        }
        // A 39-signer wallet: fewer than the cap fit the weight.
        let (_, script) = wallet(39);
        assert!(max_inputs(1, 39, script.len()) < MAX_TX_INPUTS);
        // The estimate bounds a real transaction's weight: a 39-signer sweep of that many
        // inputs, every signature slot filled at its largest, is standard.
        let n = max_inputs(1, 39, script.len());
        let inputs: Vec<Spend> = (0..n).map(|i| spend(i as u8, 0, 100_000)).collect();
        let to = ScriptBuf::new_p2wsh(&script.wscript_hash());
        let mut t = build_sweep(&inputs, &to, 1, 39, script.len()).expect("tx");
        let sigs: BTreeMap<usize, Vec<u8>> = (0..39).map(|i| (i, vec![0x30; 73])).collect();
        for input in &mut t.input {
            input.witness = weighted_witness(39, &sigs, &script, false);
        }
        assert!(t.weight().to_wu() <= estimate_weight(n, 1, 39, script.len(), false));
        assert!(t.weight().to_wu() <= MAX_STANDARD_WEIGHT);
    }

    /// The fee estimate is exact for a fully signed input: every signature slot filled at its
    /// largest (73 bytes), with and without the user's slot, for wallets whose witness counts
    /// and scripts need one-byte and three-byte length prefixes. Over-estimating overpays every
    /// sweep; under-estimating makes the transaction pay less than the rate it claims.
    #[test]
    fn the_weight_estimate_is_exact_for_a_fully_signed_input() {
        for signers in [1u8, 5, 15, 39] {
            let (_, script) = wallet(signers);
            let n = usize::from(signers);
            for user_slot in [false, true] {
                let inputs: Vec<Spend> = (0..3).map(|i| spend(i, 0, 1_000_000)).collect();
                let to = ScriptBuf::new_p2wsh(&script.wscript_hash());
                let mut t = build_sweep(&inputs, &to, 1, n, script.len()).expect("tx");
                let sigs: BTreeMap<usize, Vec<u8>> = (0..n).map(|i| (i, vec![0x30; 73])).collect();
                for input in &mut t.input {
                    input.witness = weighted_witness(n, &sigs, &script, user_slot);
                }
                assert_eq!(
                    t.weight().to_wu(),
                    estimate_weight(3, 1, n, script.len(), user_slot),
                    "{signers} signers, user slot {user_slot}, script {} bytes",
                    script.len()
                );
            }
        }
        assert!(wallet(39).1.len() > 0xfc, "a three-byte script length is covered");
    }

    /// `n - s` for secp256k1's order `n`: the other, high, S of the same signature.
    fn negate_s(s: &[u8; 32]) -> [u8; 32] {
        const N: [u8; 32] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c,
            0xd0, 0x36, 0x41, 0x41,
        ];
        let mut out = [0u8; 32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let d = i16::from(N[i]) - i16::from(s[i]) - borrow;
            borrow = i16::from(d < 0);
            out[i] = (d + 256 * borrow) as u8;
        }
        out
    }

    /// The same signature with its S flipped to the high half verifies mathematically but is
    /// malleable and not standard: refused as high-S (before any curve arithmetic).
    #[test]
    fn a_high_s_signature_is_refused_as_such() {
        let (keys, script) = wallet(3);
        let to = ScriptBuf::new_p2wsh(&script.wscript_hash());
        let t = build_sweep(&[spend(1, 0, 50_000)], &to, 2, 3, script.len()).expect("tx");
        let pk = PublicKey::new(keys[0].public_key(&Secp256k1::new()));
        let low = sign_input(&t, 0, &script, 50_000, &keys[0]).expect("sig");
        verify_input(&t, 0, &script, 50_000, &pk, &low).expect("low S verifies");
        let parsed = EcdsaSig::from_slice(&low).expect("parses");
        let mut compact = parsed.signature.serialize_compact();
        let high_s = negate_s(compact[32..].try_into().expect("32 bytes"));
        compact[32..].copy_from_slice(&high_s);
        let flipped = bitcoin::secp256k1::ecdsa::Signature::from_compact(&compact).expect("sig");
        let mut normal = flipped;
        normal.normalize_s();
        assert_eq!(normal, parsed.signature, "the same signature, S negated");
        let high = EcdsaSig { signature: flipped, sighash_type: EcdsaSighashType::All }.to_vec();
        assert_eq!(verify_input(&t, 0, &script, 50_000, &pk, &high), Err(SignatureError::HighS));
    }

    /// Change is either none or at least the P2WSH dust limit: 1 to 329 satoshis of change
    /// would be an output no node relays, so the payment is not built.
    #[test]
    fn change_below_the_dust_limit_is_refused_and_zero_or_330_are_not() {
        let (_, script) = wallet(3);
        let pay = ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([9; 32]));
        let to = ScriptBuf::new_p2wsh(&script.wscript_hash());
        let build = |change: u64| {
            build_withdrawal(
                &[spend(1, 0, 100_000 + change)],
                &pay,
                100_000,
                &to,
                1,
                3,
                script.len(),
            )
        };
        assert_eq!(build(0).expect("exact").output.len(), 1, "no change output");
        for change in [1, 2, 200, 329] {
            assert!(
                matches!(build(change), Err(BuildError::Insufficient { need: 100_330, .. })),
                "{change} sat of change"
            );
        }
        let t = build(330).expect("change at the dust limit");
        assert_eq!(t.output[1].value.to_sat(), 330);
        // Coin selection never picks a set that leaves dust change.
        let utxos = [spend(1, 0, 100_100), spend(2, 0, 50_000)];
        let chosen = select_coins(&utxos, 100_000, 100).expect("covers");
        let total: u64 = chosen.iter().map(|s| s.amount_sat).sum();
        assert!(total == 100_000 || total >= 100_330, "{total}");
        assert_eq!(select_coins(&utxos, 100_000, 1), None, "one input cannot cover it cleanly");
    }

    #[test]
    fn every_input_signals_replace_by_fee() {
        let (_, script) = wallet(3);
        let to = ScriptBuf::new_p2wsh(&script.wscript_hash());
        let t = build_sweep(&[spend(1, 0, 50_000), spend(2, 0, 60_000)], &to, 2, 3, script.len())
            .expect("tx");
        assert!(t.input.iter().all(|i| i.sequence.is_rbf() && i.sequence == RBF_SEQUENCE));
        let w = build_withdrawal(&[spend(1, 0, 50_000)], &to, 20_000, &to, 2, 3, script.len())
            .expect("tx");
        assert!(w.input.iter().all(|i| i.sequence.is_rbf()));
    }

    #[test]
    fn too_small_or_empty_sweeps_are_typed_errors() {
        let (_, script) = wallet(3);
        let to = ScriptBuf::new_p2wsh(&script.wscript_hash());
        assert_eq!(build_sweep(&[], &to, 1, 3, script.len()), Err(BuildError::NoInputs));
        let e = build_sweep(&[spend(1, 0, 500)], &to, 1, 3, script.len()).expect_err("dust");
        assert!(matches!(e, BuildError::TooSmall { total: 500, .. }), "{e}");
        let e = build_sweep(&[spend(1, 0, u64::MAX), spend(2, 0, 1)], &to, 1, 3, script.len());
        assert_eq!(e, Err(BuildError::Overflow));
        let e = build_sweep(&[spend(1, 0, 5_000), spend(1, 0, 6_000)], &to, 1, 3, script.len());
        assert!(matches!(e, Err(BuildError::DuplicateInput(_))), "{e:?}");
    }

    #[test]
    fn signatures_verify_only_for_their_key_input_and_sighash_type() {
        let (keys, script) = wallet(3);
        let to = ScriptBuf::new_p2wsh(&script.wscript_hash());
        let t = build_sweep(&[spend(1, 0, 50_000), spend(2, 1, 60_000)], &to, 2, 3, script.len())
            .expect("tx");
        let secp = Secp256k1::new();
        let pk = |i: usize| PublicKey::new(keys[i].public_key(&secp));
        let sig = sign_input(&t, 0, &script, 50_000, &keys[0]).expect("sig");
        verify_input(&t, 0, &script, 50_000, &pk(0), &sig).expect("valid");
        assert_eq!(
            verify_input(&t, 0, &script, 50_000, &pk(1), &sig),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify_input(&t, 1, &script, 60_000, &pk(0), &sig),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify_input(&t, 0, &script, 50_001, &pk(0), &sig),
            Err(SignatureError::Invalid)
        );
        let mut none = sig.clone();
        *none.last_mut().expect("byte") = 0x02;
        assert!(matches!(
            verify_input(&t, 0, &script, 50_000, &pk(0), &none),
            Err(SignatureError::SighashType(_))
        ));
        assert!(matches!(
            verify_input(&t, 0, &script, 50_000, &pk(0), &[1, 2, 3]),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn the_witness_puts_the_first_sons_signature_on_top_and_empties_for_the_others() {
        let (_, script) = wallet(3);
        let sigs = std::collections::BTreeMap::from([(0, vec![0xaa]), (2, vec![0xcc])]);
        let w = weighted_witness(3, &sigs, &script, false);
        let items: Vec<&[u8]> = w.iter().collect();
        assert_eq!(items, vec![&[0xcc][..], &[][..], &[0xaa][..], script.as_bytes()]);
        let with_user = weighted_witness(3, &sigs, &script, true);
        assert_eq!(with_user.len(), 5, "an empty user slot before the script");
        assert!(with_user.iter().nth(3).is_some_and(|i| i.is_empty()));
    }
}
