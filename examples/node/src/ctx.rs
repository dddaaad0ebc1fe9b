//! The chain seen by the engine: its heights, its validators (the active witnesses, one vote
//! each), its values (sonprop blocks), votes and proposals, and how they are signed (each
//! witness's block-signing key, secp256k1 ECDSA over a domain-separated SHA-256).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use borsh::{BorshDeserialize, BorshSerialize};
use malachitebft_core_types as mc;
use mc::{NilOrVal, Round, SignedMessage, VoteType};
use sonprop_core::{Digest, KeyPair, State, WitnessId};

/// A validator's address: the witness it is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub struct Address(pub u64);

impl Address {
    /// The witness at this address.
    pub fn witness(self) -> WitnessId {
        WitnessId(self.0)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.witness())
    }
}

impl mc::Address for Address {}

/// A block height (the genesis is 0, the first decided block 1).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl mc::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A block's id (`Block::id`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub struct BlockId(pub [u8; 32]);

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &Digest(self.0).to_hex()[..12])
    }
}

/// A decided or proposed value: a sonprop block, as its JSON bytes, with its id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct BlockValue {
    /// The block's id.
    pub id: BlockId,
    /// The block, as `serde_json` writes it.
    pub bytes: Vec<u8>,
}

impl mc::Value for BlockValue {
    type Id = BlockId;

    fn id(&self) -> BlockId {
        self.id
    }
}

/// A proposal: the proposer's block for a height and round.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The block.
    pub value: BlockValue,
    /// The round the proposer saw a polka for this value in, or nil.
    pub pol_round: Round,
    /// The proposer.
    pub proposer: Address,
}

impl mc::Proposal<Ctx> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &BlockValue {
        &self.value
    }
    fn take_value(self) -> BlockValue {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// A proposal on the wire: one part, the whole block. A block's origin is proved by its own
/// signature (the producer's witness key over its id), which the ledger checks.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProposalPart {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The round of the polka the proposer re-proposes from, or nil.
    pub pol_round: Round,
    /// The proposer.
    pub proposer: Address,
    /// The block.
    pub value: BlockValue,
}

impl mc::ProposalPart<Ctx> for ProposalPart {
    fn is_first(&self) -> bool {
        true
    }
    fn is_last(&self) -> bool {
        true
    }
}

/// A prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    /// Prevote or precommit.
    pub kind: VoteType,
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The block voted for, or nil.
    pub value: NilOrVal<BlockId>,
    /// The voter.
    pub validator: Address,
}

impl mc::Vote<Ctx> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<BlockId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<BlockId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.kind
    }
    fn validator_address(&self) -> &Address {
        &self.validator
    }
    // Vote extensions are not used: a vote carries none.
    fn extension(&self) -> Option<&mc::SignedExtension<Ctx>> {
        None
    }
    fn take_extension(&mut self) -> Option<mc::SignedExtension<Ctx>> {
        None
    }
    fn extend(self, _extension: mc::SignedExtension<Ctx>) -> Self {
        self
    }
}

/// A witness's block-signing key, compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct PublicKey(pub [u8; 33]);

/// A compact ECDSA signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

/// A witness's secret key.
#[derive(Clone)]
pub struct PrivateKey(pub KeyPair);

/// secp256k1 ECDSA, as sonprop signs blocks and transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ecdsa;

/// Bytes that are not a compact ECDSA signature.
#[derive(Debug, thiserror::Error)]
#[error("not a 64-byte compact signature")]
pub struct BadSignature;

impl mc::SigningScheme for Ecdsa {
    type DecodingError = BadSignature;
    type Signature = Signature;
    type PublicKey = PublicKey;
    type PrivateKey = PrivateKey;

    fn decode_signature(bytes: &[u8]) -> Result<Signature, BadSignature> {
        <[u8; 64]>::try_from(bytes).map(Signature).map_err(|_| BadSignature)
    }

    fn encode_signature(signature: &Signature) -> Vec<u8> {
        signature.0.to_vec()
    }
}

/// A validator: an active witness, with one vote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// The witness.
    pub address: Address,
    /// Its block-signing key.
    pub public_key: PublicKey,
}

impl mc::Validator<Ctx> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }
    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    fn voting_power(&self) -> mc::VotingPower {
        1
    }
}

/// The active witnesses, by address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    /// Sorted by address.
    pub validators: Vec<Validator>,
}

impl ValidatorSet {
    /// The active witnesses of `state`, with their signing keys.
    pub fn of(state: &State) -> ValidatorSet {
        let mut validators: Vec<Validator> = state
            .globals()
            .active_witnesses
            .iter()
            .filter_map(|w| state.witness(*w))
            .map(|w| Validator {
                address: Address(w.id.0),
                public_key: PublicKey(w.signing_key.serialize()),
            })
            .collect();
        validators.sort_by_key(|v| v.address);
        ValidatorSet { validators }
    }
}

impl mc::ValidatorSet<Ctx> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> mc::VotingPower {
        self.validators.len() as u64
    }
    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.validators.iter().find(|v| v.address == *address)
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// Rounds beyond this many past the first reuse the schedule from its start.
pub const SCHEDULED_ROUNDS: usize = 64;

/// The engine's context. Its proposer for (height, round) is the witness the ledger's own
/// schedule names for the slot `round` intervals after the next one, so a block proposed in
/// round `r` is stamped with that slot's time and the ledger's producer and slot checks keep
/// their meaning: round 0 is the scheduled slot, and each round the engine moves on skips one
/// slot, as a missed block does in Graphene.
#[derive(Clone, Default)]
pub struct Ctx {
    schedule: Arc<Mutex<BTreeMap<u64, Vec<Address>>>>,
}

impl Ctx {
    /// Records the proposers of the height after `state`'s head (called after each block, by
    /// the node that applied it; every node computes the same list from the same state).
    pub fn schedule_next(&self, state: &State) {
        let height = state.head_height() + 1;
        let producers = (0..SCHEDULED_ROUNDS as u64)
            .filter_map(|r| state.scheduled_producer(slot_time(state, r)))
            .map(|w| Address(w.0))
            .collect();
        if let Ok(mut s) = self.schedule.lock() {
            s.retain(|h, _| *h + 2 > height);
            s.insert(height, producers);
        }
    }

    /// The witness scheduled to propose at `height`, `round`, if that height is scheduled.
    pub fn proposer(&self, height: Height, round: Round) -> Option<Address> {
        let r = round.as_u32()? as usize % SCHEDULED_ROUNDS;
        self.schedule.lock().ok()?.get(&height.0)?.get(r).copied()
    }
}

/// The slot time of round `round` at the height after `state`'s head.
pub fn slot_time(state: &State, round: u64) -> sonprop_core::Timestamp {
    let r = round % SCHEDULED_ROUNDS as u64;
    state.next_slot_time().plus(r * state.params().block_interval)
}

impl mc::Context for Ctx {
    type Address = Address;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Value = BlockValue;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = Ecdsa;

    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        // A height whose schedule is not known here (never the case once its parent is
        // applied) falls back to turns by height and round: the same on every node, though the
        // ledger may then refuse the block as not the scheduled producer's and the round
        // passes.
        let scheduled = self.proposer(height, round).and_then(|a| {
            use mc::ValidatorSet as _;
            validator_set.get_by_address(&a)
        });
        let turn = (height.0 as usize).wrapping_add(round.as_i64().max(0) as usize);
        match scheduled {
            Some(v) => v,
            None => &validator_set.validators[turn % validator_set.validators.len().max(1)],
        }
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockValue,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal { height, round, value, pol_round, proposer: address }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockId>,
        address: Address,
    ) -> Vote {
        Vote { kind: VoteType::Prevote, height, round, value: value_id, validator: address }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockId>,
        address: Address,
    ) -> Vote {
        Vote { kind: VoteType::Precommit, height, round, value: value_id, validator: address }
    }
}

/// Signs and checks the engine's messages with a witness's key.
pub struct Signer(pub KeyPair);

fn digest_of<T: BorshSerialize>(domain: &[u8], msg: &T) -> Digest {
    let mut bytes = domain.to_vec();
    // Borsh writes into a Vec without failing.
    let _ = msg.serialize(&mut bytes);
    Digest::of(&bytes)
}

impl Signer {
    fn sign<T: BorshSerialize>(&self, domain: &[u8], msg: &T) -> Signature {
        Signature(self.0.sign(&digest_of(domain, msg)).sig.serialize_compact())
    }

    fn verify<T: BorshSerialize>(domain: &[u8], msg: &T, sig: &Signature, key: &PublicKey) -> bool {
        let (Ok(key), Ok(sig)) = (
            secp256k1::PublicKey::from_slice(&key.0),
            secp256k1::ecdsa::Signature::from_compact(&sig.0),
        ) else {
            return false;
        };
        sonprop_core::Signature { key, sig }.verify(&digest_of(domain, msg))
    }
}

const VOTE: &[u8] = b"sonprop-node-vote-v1";
const PROPOSAL: &[u8] = b"sonprop-node-proposal-v1";
const PART: &[u8] = b"sonprop-node-part-v1";
const EXTENSION: &[u8] = b"sonprop-node-extension-v1";

impl mc::SigningProvider<Ctx> for Signer {
    fn sign_vote(&self, vote: Vote) -> SignedMessage<Ctx, Vote> {
        let s = self.sign(VOTE, &vote);
        SignedMessage::new(vote, s)
    }
    fn verify_signed_vote(&self, vote: &Vote, signature: &Signature, key: &PublicKey) -> bool {
        Self::verify(VOTE, vote, signature, key)
    }
    fn sign_proposal(&self, proposal: Proposal) -> SignedMessage<Ctx, Proposal> {
        let s = self.sign(PROPOSAL, &proposal);
        SignedMessage::new(proposal, s)
    }
    fn verify_signed_proposal(&self, p: &Proposal, signature: &Signature, key: &PublicKey) -> bool {
        Self::verify(PROPOSAL, p, signature, key)
    }
    fn sign_proposal_part(&self, part: ProposalPart) -> SignedMessage<Ctx, ProposalPart> {
        let s = self.sign(PART, &part);
        SignedMessage::new(part, s)
    }
    fn verify_signed_proposal_part(
        &self,
        part: &ProposalPart,
        signature: &Signature,
        key: &PublicKey,
    ) -> bool {
        Self::verify(PART, part, signature, key)
    }
    fn sign_vote_extension(&self, extension: ()) -> SignedMessage<Ctx, ()> {
        let s = self.sign(EXTENSION, &extension);
        SignedMessage::new(extension, s)
    }
    fn verify_signed_vote_extension(
        &self,
        extension: &(),
        signature: &Signature,
        key: &PublicKey,
    ) -> bool {
        Self::verify(EXTENSION, extension, signature, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mc::SigningProvider as _;

    fn vote(round: u32) -> Vote {
        Vote {
            kind: VoteType::Prevote,
            height: Height(3),
            round: Round::new(round),
            value: NilOrVal::Val(BlockId([1; 32])),
            validator: Address(2),
        }
    }

    #[test]
    fn a_signature_verifies_only_for_its_message_its_key_and_its_kind() {
        let alice = Signer(KeyPair::from_seed("alice"));
        let bob = KeyPair::from_seed("bob");
        let key = PublicKey(alice.0.public().serialize());
        let signed = alice.sign_vote(vote(0));
        assert!(alice.verify_signed_vote(&vote(0), &signed.signature, &key));
        assert!(!alice.verify_signed_vote(&vote(1), &signed.signature, &key), "another vote");
        let bob_key = PublicKey(bob.public().serialize());
        assert!(!alice.verify_signed_vote(&vote(0), &signed.signature, &bob_key), "another key");
        // A vote's signature is not a proposal part's: the domains differ.
        let part = ProposalPart {
            height: Height(3),
            round: Round::new(0),
            pol_round: Round::Nil,
            proposer: Address(2),
            value: BlockValue { id: BlockId([1; 32]), bytes: vec![1, 2] },
        };
        let part_sig = alice.sign_proposal_part(part.clone()).signature;
        assert!(alice.verify_signed_proposal_part(&part, &part_sig, &key));
        assert!(!alice.verify_signed_vote(&vote(0), &part_sig, &key));
        // The signature is over the kind's domain and the message, not the message alone.
        let plain = Digest::of(&borsh::to_vec(&vote(0)).expect("borsh"));
        let sig = secp256k1::ecdsa::Signature::from_compact(&signed.signature.0).expect("sig");
        let key1 = alice.0.public();
        assert!(!sonprop_core::Signature { key: key1, sig }.verify(&plain));
        // Bytes that are no key or no signature verify nothing.
        assert!(!alice.verify_signed_vote(&vote(0), &Signature([0; 64]), &key));
        assert!(!alice.verify_signed_vote(&vote(0), &signed.signature, &PublicKey([9; 33])));
    }

    #[test]
    fn the_schedule_is_kept_for_the_next_height_and_the_one_before() {
        use sonprop_core::testkit::NetworkBuilder;
        let (genesis, ..) = NetworkBuilder::default().witnesses(4).sons(0).genesis();
        let registry = sonprop_core::Registry::discover().expect("registry");
        let mut ledger = sonprop_core::Ledger::new(&genesis, registry.chain()).expect("ledger");
        let ctx = Ctx::default();
        ctx.schedule_next(ledger.state());
        assert!(ctx.proposer(Height(1), Round::new(0)).is_some());
        assert!(ctx.proposer(Height(2), Round::new(0)).is_none(), "not yet known");
        for _ in 0..5 {
            let t = ledger.state().next_slot_time();
            ledger.produce_unshared_block(t, Vec::new()).expect("block");
            ctx.schedule_next(ledger.state());
        }
        assert!(ctx.proposer(Height(6), Round::new(0)).is_some());
        assert!(ctx.proposer(Height(5), Round::new(0)).is_some(), "late messages of the last");
        assert!(ctx.proposer(Height(4), Round::new(0)).is_none(), "older ones are dropped");
        assert!(ctx.proposer(Height(1), Round::new(0)).is_none());
    }

    #[test]
    fn a_height_with_no_schedule_here_takes_turns_by_height_and_round() {
        use mc::Context as _;
        let set = ValidatorSet {
            validators: (0..4)
                .map(|i| Validator { address: Address(i), public_key: PublicKey([2; 33]) })
                .collect(),
        };
        let ctx = Ctx::default();
        assert_eq!(ctx.select_proposer(&set, Height(5), Round::new(2)).address, Address(3));
        assert_eq!(ctx.select_proposer(&set, Height(8), Round::new(0)).address, Address(0));
        let far = ctx.select_proposer(&set, Height(u64::MAX), Round::new(7)).address;
        assert!(far.0 < 4, "never out of the set");
    }

    #[test]
    fn signatures_decode_only_from_64_bytes() {
        use mc::SigningScheme as _;
        assert!(Ecdsa::decode_signature(&[0; 63]).is_err());
        let s = Ecdsa::decode_signature(&[5; 64]).expect("64 bytes");
        assert_eq!(Ecdsa::encode_signature(&s), vec![5; 64]);
    }

    #[test]
    fn heights_count_from_one_and_never_below_zero() {
        use mc::Height as _;
        assert_eq!(Height::INITIAL, Height(1));
        assert_eq!(Height(0).decrement_by(1), None);
        assert_eq!(Height(5).decrement_by(2), Some(Height(3)));
        assert_eq!(Height(u64::MAX).increment_by(1), Height(u64::MAX));
    }

    #[test]
    fn the_wire_encoding_round_trips_and_refuses_garbage() {
        use malachitebft_app_channel::app::types::codec::Codec;
        let bytes = Codec::<Vote>::encode(&crate::codec::Borsh, &vote(4)).expect("encoded");
        let back: Vote =
            Codec::<Vote>::decode(&crate::codec::Borsh, bytes.clone()).expect("decoded");
        assert_eq!(back, vote(4));
        let cut = bytes.slice(..bytes.len() - 1);
        assert!(Codec::<Vote>::decode(&crate::codec::Borsh, cut).is_err());
    }
}
