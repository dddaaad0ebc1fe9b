//! The wire and write-ahead-log encoding of every engine message: Borsh, which the engine's
//! crates implement for their own messages given these of the chain's types.

use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use malachitebft_app_channel::app::types::codec::Codec;

/// Borsh for every message the engine sends, gossips, syncs or logs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Borsh;

impl<T: BorshSerialize + BorshDeserialize> Codec<T> for Borsh {
    type Error = std::io::Error;

    fn decode(&self, bytes: Bytes) -> Result<T, Self::Error> {
        T::try_from_slice(&bytes)
    }

    fn encode(&self, msg: &T) -> Result<Bytes, Self::Error> {
        borsh::to_vec(msg).map(Bytes::from)
    }
}
