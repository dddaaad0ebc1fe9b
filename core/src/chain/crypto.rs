//! Keys, signatures and digests: secp256k1 ECDSA over SHA-256, the same library the Bitcoin
//! sidechain uses, so a node links one copy of libsecp256k1.

use std::fmt;
use std::io;
use std::sync::OnceLock;

use bitcoin_hashes::{sha256, Hash, HashEngine};
use secp256k1::{ecdsa, All, Message, Secp256k1};
use serde::{Deserialize, Serialize};

pub use secp256k1::{PublicKey, SecretKey};

fn context() -> &'static Secp256k1<All> {
    static CTX: OnceLock<Secp256k1<All>> = OnceLock::new();
    CTX.get_or_init(Secp256k1::new)
}

/// A 32-byte SHA-256 digest, printed as hex.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(sha256::Hash::hash(bytes).to_byte_array())
    }

    /// SHA-256 of the canonical JSON encoding of `value`, preceded by `domain`.
    ///
    /// Canonical because every type hashed here serialises its fields in declaration order and
    /// its maps as ordered maps; no hash map reaches this encoder.
    pub fn of_json<T: Serialize + ?Sized>(domain: &[u8], value: &T) -> Digest {
        let mut w = DigestWriter::new();
        w.update(domain);
        serde_json::to_writer(&mut w, value).expect("serialising to a hash writer cannot fail");
        w.finish()
    }

    /// SHA-256 of `domain` followed by the canonical binary encoding of `value`
    /// ([`crate::chain::canon`]), and the length of that encoding (not counting `domain`).
    ///
    /// Panics if `value`'s `Serialize` fails, which plain data never does; callers that hash
    /// operation crates' values catch it and refuse the value with a typed error.
    pub fn of_canon_counted<T: Serialize + ?Sized>(domain: &[u8], value: &T) -> (Digest, u64) {
        let mut bytes = Vec::with_capacity(256);
        crate::chain::canon::encode_into(value, &mut bytes).expect("a canonical encoding");
        let mut w = DigestWriter::new();
        w.update(domain);
        w.update(&bytes);
        (w.finish(), bytes.len() as u64)
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

/// Lower-case hex back to bytes; `None` for anything else (upper case, odd length, signs).
/// Lower case only, because the canonical encodings (digests, keys) are written in it: one
/// value, one spelling.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.bytes().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    ::hex::decode(s).ok()
}

/// Bytes as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Digest {
    /// Lower-case hex in JSON; the 32 bytes in the binary encoding the state hash covers.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        from_hex(&s)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Digest)
            .ok_or_else(|| serde::de::Error::custom("a digest is 64 lower-case hex characters"))
    }
}

/// Streams bytes into SHA-256; an `io::Write` so serde can encode straight into the hash.
pub struct DigestWriter(sha256::HashEngine);

impl DigestWriter {
    /// An empty hash.
    pub fn new() -> Self {
        DigestWriter(sha256::Hash::engine())
    }
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.input(bytes);
    }
    /// The digest of everything written.
    pub fn finish(self) -> Digest {
        Digest(sha256::Hash::from_engine(self.0).to_byte_array())
    }
}

impl Default for DigestWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl io::Write for DigestWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.input(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A key pair held by a node (never on chain).
#[derive(Clone)]
pub struct KeyPair {
    secret: SecretKey,
    public: PublicKey,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair").field("public", &self.public).finish_non_exhaustive()
    }
}

/// Bytes that are not a valid secret key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid secret key: {0}")]
pub struct KeyError(String);

impl KeyPair {
    /// A key pair from a 32-byte secret.
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Result<KeyPair, KeyError> {
        let secret = SecretKey::from_slice(bytes).map_err(|e| KeyError(e.to_string()))?;
        Ok(KeyPair { secret, public: secret.public_key(context()) })
    }

    /// A deterministic key pair derived from a seed phrase (SHA-256 of the seed, rehashed until
    /// it is a valid scalar). For tests and simulations, never for real funds.
    pub fn from_seed(seed: &str) -> KeyPair {
        let mut bytes = sha256::Hash::hash(seed.as_bytes()).to_byte_array();
        loop {
            if let Ok(pair) = KeyPair::from_secret_bytes(&bytes) {
                return pair;
            }
            bytes = sha256::Hash::hash(&bytes).to_byte_array();
        }
    }

    /// The secret half, for a node that signs with it on another chain (its own keys only).
    pub fn secret_key(&self) -> SecretKey {
        self.secret
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// Signs a digest.
    pub fn sign(&self, digest: &Digest) -> Signature {
        let msg = Message::from_digest(digest.0);
        Signature { key: self.public, sig: context().sign_ecdsa(&msg, &self.secret) }
    }
}

/// An ECDSA signature together with the key that made it. Carrying the key avoids public-key
/// recovery, which costs more than a plain verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The signer's public key.
    pub key: PublicKey,
    /// The compact ECDSA signature.
    pub sig: ecdsa::Signature,
}

impl Signature {
    /// Whether this is a valid signature by `key` over `digest`.
    pub fn verify(&self, digest: &Digest) -> bool {
        let msg = Message::from_digest(digest.0);
        context().verify_ecdsa(&msg, &self.sig, &self.key).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_digest() {
        let k = KeyPair::from_seed("alice");
        let d = Digest::of(b"hello");
        let s = k.sign(&d);
        assert!(s.verify(&d));
        assert!(!s.verify(&Digest::of(b"hellO")));
        let forged = Signature { key: KeyPair::from_seed("mallory").public(), ..s };
        assert!(!forged.verify(&d));
    }

    #[test]
    fn seeded_keys_are_deterministic() {
        assert_eq!(KeyPair::from_seed("w1").public(), KeyPair::from_seed("w1").public());
        assert_ne!(KeyPair::from_seed("w1").public(), KeyPair::from_seed("w2").public());
    }

    #[test]
    fn digest_hex_round_trips() {
        let d = Digest::of(b"x");
        let json = serde_json::to_string(&d).expect("serialises");
        assert_eq!(serde_json::from_str::<Digest>(&json).expect("parses"), d);
        assert!(serde_json::from_str::<Digest>("\"zz\"").is_err());
        // One spelling per digest: no signs, no upper case.
        let signed = format!("\"+f{}\"", &d.to_hex()[2..]);
        assert!(serde_json::from_str::<Digest>(&signed).is_err(), "{signed}");
        let upper = format!("\"{}\"", d.to_hex().to_uppercase());
        assert!(serde_json::from_str::<Digest>(&upper).is_err(), "{upper}");
        assert_eq!(from_hex("+f"), None);
        assert_eq!(from_hex("0f"), Some(vec![15]));
    }
}
