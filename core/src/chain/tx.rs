//! Transactions and blocks.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::chain::crypto::{Digest, KeyPair, Signature};
use crate::chain::error::LedgerError;
use crate::chain::ids::{AccountId, WitnessId};
use crate::chain::model::Operation;
use crate::chain::time::Timestamp;

/// Operations applied together, in order, all or nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    /// Not valid at or after this time; also bounds how long its id is remembered.
    pub expiration: Timestamp,
    /// The operations.
    pub operations: Vec<Box<dyn Operation>>,
}

impl Transaction {
    /// A transaction of one operation.
    pub fn single(expiration: Timestamp, op: impl Operation + 'static) -> Self {
        Transaction { expiration, operations: vec![Box::new(op)] }
    }

    /// The digest signatures commit to, which is also the transaction's id: SHA-256 over the
    /// chain id and the transaction's canonical binary encoding ([`crate::chain::canon`]).
    pub fn digest(&self, chain_id: &Digest) -> Digest {
        self.digest_and_len(chain_id).0
    }

    /// [`Transaction::digest`], and the length of the encoding it hashed.
    pub fn digest_and_len(&self, chain_id: &Digest) -> (Digest, u64) {
        Digest::of_canon_counted(&chain_id.0, self)
    }

    /// The accounts whose authority must sign, in id order.
    pub fn required_authorities(&self) -> BTreeSet<AccountId> {
        self.operations.iter().flat_map(|op| op.required_authorities()).collect()
    }

    /// Signs with each key.
    pub fn sign(self, chain_id: &Digest, keys: &[&KeyPair]) -> SignedTransaction {
        let d = self.digest(chain_id);
        let signatures = keys.iter().map(|k| k.sign(&d)).collect();
        SignedTransaction { transaction: self, signatures }
    }
}

/// A transaction with its signatures.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedTransaction {
    /// The transaction.
    pub transaction: Transaction,
    /// Its signatures.
    pub signatures: Vec<Signature>,
}

impl SignedTransaction {
    /// The length of this transaction's canonical binary encoding, what the size limits count,
    /// given the length of its inner transaction's (as [`Transaction::digest_and_len`] measures
    /// it): only the signatures are encoded again.
    pub fn encoded_len(&self, transaction_len: u64) -> u64 {
        let sigs = crate::chain::canon::to_vec(&self.signatures).map_or(0, |b| b.len() as u64);
        // Two fields, each named: `transaction` (11 bytes) and `signatures` (10).
        const ENVELOPE: u64 = 1 + (1 + 11) + (1 + 10);
        ENVELOPE + transaction_len + sigs
    }

    /// Decodes a transaction from JSON: malformed JSON and unknown operation kinds are typed
    /// errors.
    pub fn from_json(json: &str) -> Result<SignedTransaction, LedgerError> {
        serde_json::from_str(json)
            .map_err(|e| LedgerError::Decode { what: "transaction", reason: e.to_string() })
    }
}

/// A block: height, slot time, producer, transactions, and the producer's signature.
///
/// The ledger checks that the producer is the witness scheduled for the slot, that the block
/// links to the head, and that the signature is the producer's (its witness signing key) over
/// the block id. The id does not cover the signature: it commits to the header and the
/// transactions, and the signature commits to the id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    /// Height (the genesis is 0).
    pub height: u64,
    /// Slot time.
    pub timestamp: Timestamp,
    /// Id of the previous block.
    pub previous: Digest,
    /// The scheduled witness.
    pub producer: WitnessId,
    /// Transactions, applied in order.
    pub transactions: Vec<SignedTransaction>,
    /// The producer's signature of the block id.
    pub signature: Signature,
}

impl Block {
    /// The block id: SHA-256 over the header and the ids (digests) of its transactions, in
    /// order. Like a Graphene block id, it commits to what the transactions say, not to their
    /// encoding, so it costs one small hash however large the block.
    pub fn id(&self, chain_id: &Digest) -> Digest {
        let ids: Vec<Digest> =
            self.transactions.iter().map(|t| t.transaction.digest(chain_id)).collect();
        block_id(self.height, self.timestamp, &self.previous, self.producer, &ids)
    }
}

/// The block id from its parts (the ledger has the transaction ids at hand while applying).
pub(crate) fn block_id(
    height: u64,
    timestamp: Timestamp,
    previous: &Digest,
    producer: WitnessId,
    transaction_ids: &[Digest],
) -> Digest {
    let mut w = crate::chain::crypto::DigestWriter::new();
    w.update(b"sonprop-block-v1");
    w.update(&height.to_le_bytes());
    w.update(&timestamp.secs().to_le_bytes());
    w.update(&previous.0);
    w.update(&producer.0.to_le_bytes());
    for id in transaction_ids {
        w.update(&id.0);
    }
    w.finish()
}
