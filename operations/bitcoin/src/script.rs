//! Peerplays' SON wallet scripts, byte for byte, as pure functions: the primary wallet's
//! weighted multisig and the user deposit address's "one or weighted" script, both native
//! P2WSH.
//!
//! The weighted script checks each SON's signature in turn and sums the weights of those that
//! verify (`OP_CHECKMULTISIG` cannot weigh keys differently):
//!
//! ```text
//! OP_0
//! per SON, in wallet order:  OP_SWAP <33-byte key> OP_CHECKSIG OP_IF <weight> OP_ADD OP_ENDIF
//! <threshold> OP_GREATERTHANOREQUAL          threshold = total * 2 / 3 + 1
//! ```
//!
//! Numbers are minimal script numbers (`OP_0`, `OP_1`..`OP_16`, else little-endian bytes), as
//! Peerplays encodes them. Keys are compressed.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use bitcoin::opcodes::all::{
    OP_ADD, OP_CHECKSIG, OP_CSV, OP_DROP, OP_ELSE, OP_ENDIF, OP_GREATERTHANOREQUAL, OP_IF, OP_SWAP,
};
use bitcoin::opcodes::OP_0;
use bitcoin::script::Builder;
use bitcoin::{Address, Network, PublicKey, ScriptBuf};
use serde::{Deserialize, Serialize};

/// One SON in a wallet script: its Bitcoin key and its weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signer {
    /// The compressed public key.
    pub key: PublicKey,
    /// The weight its signature adds (at least 1).
    pub weight: u16,
}

/// A key set that cannot make a wallet script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScriptError {
    /// No signers.
    #[error("a wallet needs at least one signer")]
    NoSigners,
    /// A weight of zero.
    #[error("signer {index} has weight 0; weights are 1 to 65 535")]
    ZeroWeight {
        /// Its position in the wallet.
        index: usize,
    },
    /// The user's key is one of the signers' keys.
    #[error("the user key is signer {index}'s key ({key}): a deposit address needs a key of the user's own")]
    UserIsSigner {
        /// The signer's position in the wallet.
        index: usize,
        /// The key.
        key: String,
    },
    /// The same key twice.
    #[error("signer {index} repeats the key of an earlier signer ({key})")]
    DuplicateKey {
        /// Its position in the wallet.
        index: usize,
        /// The key.
        key: String,
    },
    /// An uncompressed key (Peerplays' scripts, and segwit policy, use compressed keys).
    #[error("signer {index} has an uncompressed key")]
    Uncompressed {
        /// Its position in the wallet.
        index: usize,
    },
    /// More signers than Bitcoin lets the script execute (its opcode limit).
    #[error(
        "{signers} signers make a script of {ops} counted opcodes, above Bitcoin's limit of 201: \
         it could never be spent (at most {max} signers)"
    )]
    TooManySigners {
        /// Signers given.
        signers: usize,
        /// Counted opcodes they make.
        ops: usize,
        /// The most allowed.
        max: usize,
    },
    /// A key or weight given as text that does not parse.
    #[error("`{input}` is not a valid {what}: {reason}")]
    Parse {
        /// What was given.
        input: String,
        /// What was expected.
        what: &'static str,
        /// Why it does not parse.
        reason: String,
    },
}

/// Bitcoin's limit on the non-push opcodes a script executes (`MAX_OPS_PER_SCRIPT`): opcodes
/// above `OP_16` count, in branches taken or not.
pub const MAX_OPS_PER_SCRIPT: usize = 201;

/// The non-push opcodes the weighted script of `signers` holds: `OP_SWAP OP_CHECKSIG OP_IF
/// OP_ADD OP_ENDIF` per signer and the final `OP_GREATERTHANOREQUAL` (the weights and `OP_0`
/// are pushes); the deposit script adds the user's `OP_CHECKSIG OP_IF OP_ELSE OP_ENDIF`, and the
/// time lock `OP_CHECKSEQUENCEVERIFY OP_DROP`.
pub fn counted_ops(signers: usize, deposit: bool, csv: bool) -> usize {
    5 * signers + 1 + if deposit { 4 } else { 0 } + if csv { 2 } else { 0 }
}

/// The most signers a script can hold and still be spent: 40 for a wallet, 39 for a deposit
/// address, 38 for a time-locked one ([`counted_ops`] at most [`MAX_OPS_PER_SCRIPT`]).
pub fn max_signers(deposit: bool, csv: bool) -> usize {
    (0..).take_while(|n| counted_ops(*n, deposit, csv) <= MAX_OPS_PER_SCRIPT).last().unwrap_or(0)
}

/// The most SONs a wallet of this crate may have: every wallet also makes deposit addresses,
/// whose script costs four opcodes more ([`max_signers`]).
pub const MAX_WALLET_SIGNERS: usize = 39;

/// The sum of the weights.
pub fn total_weight(signers: &[Signer]) -> u32 {
    signers.iter().map(|s| u32::from(s.weight)).sum()
}

/// The threshold of the current Peerplays code: `total * 2 / 3 + 1`, so the signers must carry
/// more than two thirds of the weight.
pub fn threshold(total: u32) -> u32 {
    total * 2 / 3 + 1
}

/// The threshold of the older Peerplays code, `2 * total / 3` (kept for the golden vector).
pub fn legacy_threshold(total: u32) -> u32 {
    2 * total / 3
}

fn check(signers: &[Signer], deposit: bool, csv: bool) -> Result<(), ScriptError> {
    if signers.is_empty() {
        return Err(ScriptError::NoSigners);
    }
    let ops = counted_ops(signers.len(), deposit, csv);
    if ops > MAX_OPS_PER_SCRIPT {
        let max = max_signers(deposit, csv);
        return Err(ScriptError::TooManySigners { signers: signers.len(), ops, max });
    }
    let mut seen = BTreeSet::new();
    for (index, s) in signers.iter().enumerate() {
        if s.weight == 0 {
            return Err(ScriptError::ZeroWeight { index });
        }
        if !s.key.compressed {
            return Err(ScriptError::Uncompressed { index });
        }
        if !seen.insert(s.key.inner.serialize()) {
            return Err(ScriptError::DuplicateKey { index, key: s.key.to_string() });
        }
    }
    Ok(())
}

fn push_weighted(mut b: Builder, signers: &[Signer], threshold: u32) -> Builder {
    b = b.push_opcode(OP_0);
    for s in signers {
        b = b
            .push_opcode(OP_SWAP)
            .push_key(&s.key)
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_IF)
            .push_int(i64::from(s.weight))
            .push_opcode(OP_ADD)
            .push_opcode(OP_ENDIF);
    }
    b.push_int(i64::from(threshold)).push_opcode(OP_GREATERTHANOREQUAL)
}

/// The primary wallet's witness script, with the current threshold.
pub fn weighted_script(signers: &[Signer]) -> Result<ScriptBuf, ScriptError> {
    weighted_script_with_threshold(signers, threshold(total_weight(signers)))
}

/// The weighted script with an explicit threshold (the older form, tests).
pub fn weighted_script_with_threshold(
    signers: &[Signer],
    threshold: u32,
) -> Result<ScriptBuf, ScriptError> {
    check(signers, false, false)?;
    Ok(push_weighted(Builder::new(), signers, threshold).into_script())
}

/// The user deposit script: the user's key alone spends it (the refund path, after `csv`
/// blocks when given), or the SONs with the weighted threshold:
/// `<user> OP_CHECKSIG OP_IF [<csv> OP_CSV OP_DROP] OP_1 OP_ELSE <weighted> OP_ENDIF`.
pub fn one_or_weighted_script(
    user: &PublicKey,
    signers: &[Signer],
    csv: Option<u16>,
) -> Result<ScriptBuf, ScriptError> {
    one_or_weighted_script_with_threshold(user, signers, csv, threshold(total_weight(signers)))
}

/// [`one_or_weighted_script`] with an explicit threshold (the older form, tests).
pub fn one_or_weighted_script_with_threshold(
    user: &PublicKey,
    signers: &[Signer],
    csv: Option<u16>,
    threshold: u32,
) -> Result<ScriptBuf, ScriptError> {
    check(signers, true, csv.is_some())?;
    if !user.compressed {
        return Err(ScriptError::Uncompressed { index: usize::MAX });
    }
    if let Some(index) = signers.iter().position(|s| s.key == *user) {
        return Err(ScriptError::UserIsSigner { index, key: user.to_string() });
    }
    let mut b = Builder::new().push_key(user).push_opcode(OP_CHECKSIG).push_opcode(OP_IF);
    if let Some(blocks) = csv {
        b = b.push_int(i64::from(blocks)).push_opcode(OP_CSV).push_opcode(OP_DROP);
    }
    b = b.push_int(1).push_opcode(OP_ELSE);
    Ok(push_weighted(b, signers, threshold).push_opcode(OP_ENDIF).into_script())
}

/// The Bitcoin networks a wallet can live on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BitcoinNetwork {
    /// Mainnet (`bc1…`).
    Bitcoin,
    /// Testnet (`tb1…`).
    Testnet,
    /// Signet (`tb1…`).
    Signet,
    /// Regtest (`bcrt1…`).
    Regtest,
}

impl BitcoinNetwork {
    /// The `bitcoin` crate's network.
    pub fn network(self) -> Network {
        match self {
            BitcoinNetwork::Bitcoin => Network::Bitcoin,
            BitcoinNetwork::Testnet => Network::Testnet,
            BitcoinNetwork::Signet => Network::Signet,
            BitcoinNetwork::Regtest => Network::Regtest,
        }
    }
}

impl fmt::Display for BitcoinNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BitcoinNetwork::Bitcoin => "bitcoin",
            BitcoinNetwork::Testnet => "testnet",
            BitcoinNetwork::Signet => "signet",
            BitcoinNetwork::Regtest => "regtest",
        })
    }
}

impl FromStr for BitcoinNetwork {
    type Err = ScriptError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bitcoin" | "mainnet" => Ok(BitcoinNetwork::Bitcoin),
            "testnet" => Ok(BitcoinNetwork::Testnet),
            "signet" => Ok(BitcoinNetwork::Signet),
            "regtest" => Ok(BitcoinNetwork::Regtest),
            _ => Err(ScriptError::Parse {
                input: s.to_owned(),
                what: "network",
                reason: "expected bitcoin, testnet, signet or regtest".into(),
            }),
        }
    }
}

/// The native P2WSH address of a witness script.
pub fn p2wsh_address(witness_script: &ScriptBuf, network: BitcoinNetwork) -> Address {
    Address::p2wsh(witness_script, network.network())
}

/// Parses a compressed public key from hex.
pub fn parse_key(hex: &str) -> Result<PublicKey, ScriptError> {
    let err =
        |reason: String| ScriptError::Parse { input: hex.to_owned(), what: "public key", reason };
    // Said in the user's words, not the parser's: what is wrong with what they wrote.
    if hex.len() != 66 && hex.len() != 130 {
        return Err(err(format!(
            "{} hex digits; a compressed public key is 66 (33 bytes, starting 02 or 03)",
            hex.len()
        )));
    }
    if let Some(c) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(err(format!("`{c}` is not a hex digit")));
    }
    let key = PublicKey::from_str(hex).map_err(|_| {
        err("not a point on the curve (a compressed key starts 02 or 03 and names a point of \
             secp256k1)"
            .into())
    })?;
    if !key.compressed {
        return Err(err("uncompressed keys are not used in SON wallets".into()));
    }
    Ok(key)
}

/// Parses `<hex-key>:<weight>`.
pub fn parse_signer(spec: &str) -> Result<Signer, ScriptError> {
    let (key, weight) = spec.rsplit_once(':').ok_or_else(|| ScriptError::Parse {
        input: spec.to_owned(),
        what: "signer",
        reason: "expected <hex-key>:<weight>".into(),
    })?;
    let bad =
        |reason: String| ScriptError::Parse { input: weight.to_owned(), what: "weight", reason };
    let whole: u64 = match weight.parse::<u64>() {
        Ok(n) => n,
        Err(_) if !weight.is_empty() && weight.chars().all(|c| c.is_ascii_digit()) => u64::MAX,
        Err(_) => return Err(bad("expected a whole number (weights are 1 to 65 535)".into())),
    };
    let weight =
        u16::try_from(whole).map_err(|_| bad("above 65 535 (weights are 1 to 65 535)".into()))?;
    Ok(Signer { key: parse_key(key)?, weight })
}

/// Peerplays' published test vector for the deposit address
/// (`create_1_or_multiweighted_seggwit_address_test`): 15 SON keys of weight 1 and a user key on
/// regtest give `bcrt1qz2cykw980zns8uxpt7dsn4ku7ce24cq3z8mna0tttzhw2qcr4y0qxmgej2`.
pub mod vectors {
    /// The SON keys, in wallet order.
    pub const PEERPLAYS_SON_KEYS: [&str; 15] = [
        "03456772301e221026269d3095ab5cb623fc239835b583ae4632f99a15107ef275",
        "02d67c26cf20153fe7625ca1454222d3b3aeb53b122d8a0f7d32a3dd4b2c2016f4",
        "025f7cfda933516fd590c5a34ad4a68e3143b6f4155a64b3aab2c55fb851150f61",
        "0228155bb1ddcd11c7f14a2752565178023aa963f84ea6b6a052bddebad6fe9866",
        "037500441cfb4484da377073459511823b344f1ef0d46bac1efd4c7c466746f666",
        "02ef0d79bfdb99ab0be674b1d5d06c24debd74bffdc28d466633d6668cc281cccf",
        "0317941e4219548682fb8d8e172f0a8ce4d83ce21272435c85d598558c8e060b7f",
        "0266065b27f7e3d3ad45b471b1cd4e02de73fc4737dc2679915a45e293c5adcf84",
        "023821cc3da7be9e8cdceb8f146e9ddd78a9519875ecc5b42fe645af690544bccf",
        "0229ff2b2106b76c27c393e82d71c20eec32bcf1f0cf1a9aca8a237269a67ff3e5",
        "024d113381cc09deb8a6da62e0470644d1a06de82be2725b5052668c8845a4a8da",
        "03df2462a5a2f681a3896f61964a65566ff77448be9a55a6da18506fd9c6c051c1",
        "02bafba3096f546cc5831ce1e49ba7142478a659f2d689bbc70ed37235255172a8",
        "0287bcbd4f5d357f89a86979b386402445d7e9a5dccfd16146d1d2ab0dc2c32ae8",
        "02053859d76aa375d6f343a60e3678e906c008015e32fe4712b1fd2b26473bdd73",
    ];
    /// The user key.
    pub const PEERPLAYS_USER_KEY: &str =
        "0368dc31b2b547c74f52abfc67c7fc768c68115d8ab96430d9bb4996fa660121cd";
}

/// Scripts built past the crate's limits, for tests that show Bitcoin refuses them.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// The weighted script without the crate's checks.
    pub fn raw_weighted(signers: &[Signer], threshold: u32) -> ScriptBuf {
        push_weighted(Builder::new(), signers, threshold).into_script()
    }

    /// The one-or-weighted script without the crate's checks.
    pub fn raw_one_or_weighted(user: &PublicKey, signers: &[Signer], threshold: u32) -> ScriptBuf {
        let b = Builder::new()
            .push_key(user)
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_IF)
            .push_int(1)
            .push_opcode(OP_ELSE);
        push_weighted(b, signers, threshold).push_opcode(OP_ENDIF).into_script()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::script::Instruction;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    use proptest::prelude::*;

    use super::vectors::{PEERPLAYS_SON_KEYS as SON_KEYS, PEERPLAYS_USER_KEY as USER_KEY};

    fn vector_signers() -> Vec<Signer> {
        SON_KEYS
            .iter()
            .map(|k| Signer { key: parse_key(k).expect("vector key"), weight: 1 })
            .collect()
    }

    #[test]
    fn the_peerplays_golden_vector_gives_its_address_byte_for_byte() {
        let user = parse_key(USER_KEY).expect("user key");
        let script = one_or_weighted_script(&user, &vector_signers(), None).expect("script");
        let expected_hex = concat!(
            "210368dc31b2b547c74f52abfc67c7fc768c68115d8ab96430d9bb4996fa660121cdac635167007c",
            "2103456772301e221026269d3095ab5cb623fc239835b583ae4632f99a15107ef275ac635193687c"
        );
        assert!(script.to_hex_string().starts_with(expected_hex));
        assert!(script.to_hex_string().ends_with("ac635193685ba268"), "threshold 11 = OP_11");
        assert_eq!(
            p2wsh_address(&script, BitcoinNetwork::Regtest).to_string(),
            "bcrt1qz2cykw980zns8uxpt7dsn4ku7ce24cq3z8mna0tttzhw2qcr4y0qxmgej2"
        );
    }

    #[test]
    fn the_older_threshold_form_gives_the_older_golden_address() {
        let user = parse_key(USER_KEY).expect("user key");
        let signers = vector_signers();
        let t = legacy_threshold(total_weight(&signers));
        assert_eq!(t, 10);
        let script =
            one_or_weighted_script_with_threshold(&user, &signers, None, t).expect("script");
        assert!(script.to_hex_string().ends_with("ac635193685aa268"), "threshold 10 = OP_10");
        assert_eq!(
            p2wsh_address(&script, BitcoinNetwork::Regtest).to_string(),
            "bcrt1qawr44trakzl4qev8ed88samt3g3g5mgcjppc6ffs5h4wyakqzavq6fkcc6"
        );
    }

    #[test]
    fn weights_use_minimal_number_encoding() {
        let k = |i: u8| {
            let sk = SecretKey::from_slice(&[i; 32]).expect("key");
            PublicKey::new(sk.public_key(&Secp256k1::new()))
        };
        let s = weighted_script(&[
            Signer { key: k(1), weight: 100 },
            Signer { key: k(2), weight: 100 },
            Signer { key: k(3), weight: 100 },
        ])
        .expect("script");
        let hex = s.to_hex_string();
        // OP_0 SWAP <pk> CHECKSIG IF 100 ADD ENDIF ... 201 GREATERTHANOREQUAL
        assert!(hex.starts_with("007c21"), "{hex}");
        assert!(hex.contains("ac63016493687c"), "100 is one pushed byte: {hex}");
        assert!(hex.ends_with("02c900a2"), "201 is c9 00 (sign byte): {hex}");
    }

    #[test]
    fn bad_key_sets_are_typed_errors() {
        let s = vector_signers();
        assert_eq!(weighted_script(&[]), Err(ScriptError::NoSigners));
        let mut zero = s.clone();
        zero[3].weight = 0;
        assert_eq!(weighted_script(&zero), Err(ScriptError::ZeroWeight { index: 3 }));
        let mut dup = s.clone();
        dup[5] = dup[2];
        assert!(matches!(weighted_script(&dup), Err(ScriptError::DuplicateKey { index: 5, .. })));
        let mut unc = s[0];
        unc.key.compressed = false;
        assert_eq!(weighted_script(&[unc]), Err(ScriptError::Uncompressed { index: 0 }));
        for bad in
            ["02zz", "04", "", "0368dc31b2b547c74f52abfc67c7fc768c68115d8ab96430d9bb4996fa660121"]
        {
            assert!(matches!(parse_key(bad), Err(ScriptError::Parse { .. })), "{bad}");
        }
        assert!(matches!(parse_signer(&format!("{USER_KEY}:0x1")), Err(ScriptError::Parse { .. })));
        assert!(matches!(
            parse_signer(&format!("{USER_KEY}:70000")),
            Err(ScriptError::Parse { .. })
        ));
        assert!(matches!(parse_signer(USER_KEY), Err(ScriptError::Parse { .. })));
        assert_eq!(parse_signer(&format!("{USER_KEY}:7")).expect("ok").weight, 7);
    }

    /// Reads a weighted script back: the keys and weights in order, and the threshold.
    fn parse_weighted(script: &ScriptBuf) -> (Vec<(PublicKey, i64)>, i64) {
        let ins: Vec<Instruction<'_>> =
            script.instructions_minimal().collect::<Result<_, _>>().expect("parses");
        let num = |i: &Instruction<'_>| match i {
            Instruction::PushBytes(b) if b.is_empty() => 0,
            Instruction::PushBytes(b) => {
                bitcoin::script::read_scriptint(b.as_bytes()).expect("a number")
            }
            Instruction::Op(op) => {
                let c = op.to_u8();
                assert!((0x51..=0x60).contains(&c), "{op:?}");
                i64::from(c - 0x50)
            }
        };
        let mut out = Vec::new();
        let mut i = 1;
        while i + 7 <= ins.len() - 2 {
            let Instruction::PushBytes(k) = &ins[i + 1] else { panic!("key") };
            out.push((PublicKey::from_slice(k.as_bytes()).expect("key"), num(&ins[i + 4])));
            i += 7;
        }
        (out, num(&ins[ins.len() - 2]))
    }

    proptest! {
        #[test]
        fn random_wallets_parse_back_with_their_keys_weights_and_threshold(
            seeds in proptest::collection::btree_set(1u8..=250, 1..=15),
            weights in proptest::collection::vec(1u16..=u16::MAX, 15),
        ) {
            let secp = Secp256k1::new();
            let signers: Vec<Signer> = seeds
                .iter()
                .zip(&weights)
                .map(|(s, w)| {
                    let sk = SecretKey::from_slice(&[*s; 32]).expect("key");
                    Signer { key: PublicKey::new(sk.public_key(&secp)), weight: *w }
                })
                .collect();
            let script = weighted_script(&signers).expect("valid set");
            let (parsed, t) = parse_weighted(&script);
            prop_assert_eq!(parsed.len(), signers.len());
            for (p, s) in parsed.iter().zip(&signers) {
                prop_assert_eq!(p.0, s.key);
                prop_assert_eq!(p.1, i64::from(s.weight));
            }
            let total = total_weight(&signers);
            prop_assert_eq!(t, i64::from(threshold(total)));
            // More than two thirds, and no more than needed.
            prop_assert!(3 * (t as u64) > 2 * u64::from(total));
            prop_assert!(3 * (t as u64 - 1) <= 2 * u64::from(total));
            prop_assert!(script.len() <= 10_000, "within the standard script size");
        }
    }
}
