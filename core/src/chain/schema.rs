//! What an operation crate declares about its own on-chain data: typed tables with secondary
//! indexes ([`TableSchema`], [`Index`]), typed chain parameters ([`Parameter`]) and typed events
//! ([`ChainEvent`]).
//!
//! A crate declares each with a marker type and registers its erased declaration ([`TableDecl`],
//! [`ParamDecl`]) in its plugin; it reads and writes through the state and the apply context
//! (`State::row`, `ApplyContext::put_row`, `State::param`, `ApplyContext::emit_event`), never
//! through strings it must parse. The ledger keeps the rows in the state: undone with their block,
//! written in the block's atomic commit, covered by the state hash.
//!
//! Keys have a canonical, order-preserving byte encoding ([`TableKey`]): rows are ordered by
//! their encoded key, which orders exactly as the typed key does, so iteration order is the same
//! on every node and after every restart.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::chain::crypto::Digest;
use crate::chain::ids::{AccountId, AssetId, ProposalId, SonId, VestingId, WitnessId};
use crate::chain::time::Timestamp;

/// A key with a canonical byte encoding whose byte order is the key's order.
///
/// Implemented for unsigned integers, `bool`, `String`, byte vectors and arrays, the chain's ids,
/// [`Timestamp`], [`Digest`], and tuples of up to four keys.
pub trait TableKey: Ord + Clone + fmt::Debug + Send + Sync + 'static {
    /// Appends the encoding. For every `a`, `b`: `a.cmp(b) == enc(a).cmp(enc(b))`, and no
    /// encoding is a proper prefix of another of the same type.
    fn encode_key(&self, out: &mut Vec<u8>);
    /// Reads one key from the front of `input`, advancing it; `None` if it is not an encoding.
    fn decode_key(input: &mut &[u8]) -> Option<Self>;

    /// The encoding alone.
    fn key_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_key(&mut v);
        v
    }
    /// Decodes a whole byte string; `None` if it is not exactly one encoding.
    fn from_key_bytes(mut bytes: &[u8]) -> Option<Self> {
        let k = Self::decode_key(&mut bytes)?;
        bytes.is_empty().then_some(k)
    }
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if input.len() < n {
        return None;
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Some(head)
}

macro_rules! uint_key {
    ($($t:ty),*) => {$(
        impl TableKey for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            fn decode_key(input: &mut &[u8]) -> Option<Self> {
                let b = take(input, std::mem::size_of::<$t>())?;
                Some(<$t>::from_be_bytes(b.try_into().ok()?))
            }
        }
    )*};
}
uint_key!(u8, u16, u32, u64, u128);

macro_rules! id_key {
    ($($t:ident),*) => {$(
        impl TableKey for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                self.0.encode_key(out)
            }
            fn decode_key(input: &mut &[u8]) -> Option<Self> {
                u64::decode_key(input).map($t)
            }
        }
    )*};
}
id_key!(AccountId, AssetId, ProposalId, SonId, VestingId, WitnessId, Timestamp);

impl TableKey for bool {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn decode_key(input: &mut &[u8]) -> Option<Self> {
        match take(input, 1)? {
            [0] => Some(false),
            [1] => Some(true),
            _ => None,
        }
    }
}

impl TableKey for Digest {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    fn decode_key(input: &mut &[u8]) -> Option<Self> {
        Some(Digest(take(input, 32)?.try_into().ok()?))
    }
}

impl<const N: usize> TableKey for [u8; N] {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode_key(input: &mut &[u8]) -> Option<Self> {
        take(input, N)?.try_into().ok()
    }
}

/// Variable-length bytes: `0x00` is escaped as `0x00 0xFF` and the end is `0x00 0x00`, so the
/// encoding is prefix-free and orders as the bytes do.
impl TableKey for Vec<u8> {
    fn encode_key(&self, out: &mut Vec<u8>) {
        for &b in self {
            out.push(b);
            if b == 0 {
                out.push(0xff);
            }
        }
        out.extend_from_slice(&[0, 0]);
    }
    fn decode_key(input: &mut &[u8]) -> Option<Self> {
        let mut v = Vec::new();
        loop {
            match take(input, 1)? {
                [0] => match take(input, 1)? {
                    [0] => return Some(v),
                    [0xff] => v.push(0),
                    _ => return None,
                },
                [b] => v.push(*b),
                _ => return None,
            }
        }
    }
}

impl TableKey for String {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.as_bytes().to_vec().encode_key(out)
    }
    fn decode_key(input: &mut &[u8]) -> Option<Self> {
        String::from_utf8(Vec::<u8>::decode_key(input)?).ok()
    }
}

macro_rules! tuple_key {
    ($($name:ident),+) => {
        impl<$($name: TableKey),+> TableKey for ($($name,)+) {
            #[expect(non_snake_case, reason = "the tuple's parts are named after their types")]
            fn encode_key(&self, out: &mut Vec<u8>) {
                let ($($name,)+) = self;
                $($name.encode_key(out);)+
            }
            fn decode_key(input: &mut &[u8]) -> Option<Self> {
                Some(($($name::decode_key(input)?,)+))
            }
        }
    };
}
tuple_key!(A, B);
tuple_key!(A, B, C);
tuple_key!(A, B, C, D);

/// A row value an operation crate keeps on chain.
///
/// Its JSON encoding is part of the state hash: use ordered maps (`BTreeMap`), never hash maps.
pub trait Row: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static> Row for T {}

/// A row as the ledger holds it, whatever its type: typed reads downcast it.
pub trait StoredRow: Any + Send + Sync + fmt::Debug {
    /// For downcasting.
    fn as_any(&self) -> &dyn Any;
    /// The JSON encoding (what the store keeps).
    fn to_json(&self) -> Vec<u8>;
    /// Appends the canonical binary encoding (what the state hash covers).
    fn canon(&self, out: &mut Vec<u8>) -> Result<(), crate::chain::canon::CanonError>;
}

impl<T: Row> StoredRow for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn to_json(&self) -> Vec<u8> {
        // A `Row` is plain data (derived `Serialize`, ordered maps): encoding cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
    fn canon(&self, out: &mut Vec<u8>) -> Result<(), crate::chain::canon::CanonError> {
        crate::chain::canon::encode_into(self, out)
    }
}

/// Secondary-index entries of one row: `(index name, encoded index key)`.
pub type IndexEntries = Vec<(&'static str, Vec<u8>)>;

/// A typed table an operation crate keeps on chain.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use sonprop_core::chain::schema::{Index, IndexEntries, TableSchema};
/// use sonprop_core::AccountId;
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// pub struct Claim { pub owner: AccountId, pub amount: u64 }
///
/// /// Claims by number, indexed by owner.
/// pub struct Claims;
/// pub const BY_OWNER: Index<Claims, AccountId> = Index::new("by_owner");
///
/// impl TableSchema for Claims {
///     const NAME: &'static str = "example.claims";
///     type Key = u64;
///     type Value = Claim;
///     fn index(row: &Claim, out: &mut IndexEntries) {
///         BY_OWNER.add(&row.owner, out);
///     }
/// }
/// ```
pub trait TableSchema: 'static {
    /// The stable, namespaced table name (`<crate>.<table>`, lowercase): part of the store
    /// layout and the state hash.
    const NAME: &'static str;
    /// The primary key.
    type Key: TableKey;
    /// The row.
    type Value: Row;
    /// The row's secondary-index entries (add them with [`Index::add`]). Deterministic: a
    /// function of the row alone.
    fn index(_row: &Self::Value, _out: &mut IndexEntries) {}
}

/// A secondary index of table `T`, keyed by `K`: looked up with `State::rows_by` and
/// `State::rows_by_range`.
pub struct Index<T, K> {
    /// The index name, unique within its table.
    pub name: &'static str,
    _types: PhantomData<fn() -> (T, K)>,
}

impl<T, K> Index<T, K> {
    /// An index called `name`.
    pub const fn new(name: &'static str) -> Self {
        Index { name, _types: PhantomData }
    }
}

impl<T: TableSchema, K: TableKey> Index<T, K> {
    /// Adds the entry `key` for a row to `out` (called from [`TableSchema::index`]).
    pub fn add(&self, key: &K, out: &mut IndexEntries) {
        out.push((self.name, key.key_bytes()));
    }
}

/// Decodes a stored row of a declared table.
pub type RowDecoder = fn(&[u8]) -> Result<std::sync::Arc<dyn StoredRow>, String>;
/// The index entries of a stored row of a declared table.
pub type RowIndexer = fn(&dyn StoredRow, &mut IndexEntries);

/// A table's declaration, as a plugin registers it (see [`TableDecl::of`]).
#[derive(Clone, Copy)]
pub struct TableDecl {
    /// [`TableSchema::NAME`].
    pub name: &'static str,
    /// Decodes a row from its JSON (loading a store, reading an undo record).
    pub decode: RowDecoder,
    /// The row's index entries.
    pub index: RowIndexer,
}

impl fmt::Debug for TableDecl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableDecl").field("name", &self.name).finish_non_exhaustive()
    }
}

fn decode_row<T: TableSchema>(bytes: &[u8]) -> Result<std::sync::Arc<dyn StoredRow>, String> {
    serde_json::from_slice::<T::Value>(bytes)
        .map(|v| std::sync::Arc::new(v) as std::sync::Arc<dyn StoredRow>)
        .map_err(|e| e.to_string())
}

fn index_row<T: TableSchema>(row: &dyn StoredRow, out: &mut IndexEntries) {
    if let Some(v) = row.as_any().downcast_ref::<T::Value>() {
        T::index(v, out);
    }
}

impl TableDecl {
    /// The declaration of table `T`.
    pub const fn of<T: TableSchema>() -> TableDecl {
        TableDecl { name: T::NAME, decode: decode_row::<T>, index: index_row::<T> }
    }
}

/// A chain parameter an operation crate declares: stored in the chain's globals (hashed), set
/// at genesis (default, or the genesis' value), validated with errors that name it.
///
/// ```
/// use sonprop_core::chain::schema::Parameter;
///
/// pub struct Confirmations;
/// impl Parameter for Confirmations {
///     const NAME: &'static str = "example.confirmations";
///     const DESCRIPTION: &'static str = "confirmations a deposit needs";
///     type Value = u32;
///     fn default_value() -> u32 { 6 }
///     fn validate(v: &u32) -> Result<(), String> {
///         if *v == 0 { Err("must be at least 1".into()) } else { Ok(()) }
///     }
/// }
/// ```
pub trait Parameter: 'static {
    /// The stable, namespaced name (`<crate>.<parameter>`).
    const NAME: &'static str;
    /// One line for humans.
    const DESCRIPTION: &'static str;
    /// Its type.
    type Value: Row;
    /// The value when the genesis sets none.
    fn default_value() -> Self::Value;
    /// Whether a value can work; the message says why not.
    fn validate(_value: &Self::Value) -> Result<(), String> {
        Ok(())
    }
    /// Whether a value works on this chain, judged on its genesis state (after
    /// [`Parameter::validate`]): a parameter that names an asset, an account or a SON can
    /// require that it exists there and is what the crate needs. Checked once, when a ledger is
    /// built from the genesis; the message says why not.
    fn validate_at_genesis(_value: &Self::Value, _genesis: &dyn GenesisView) -> Result<(), String> {
        Ok(())
    }
}

/// What a parameter may ask of the genesis state ([`Parameter::validate_at_genesis`]); the
/// ledger's state answers.
pub trait GenesisView {
    /// Whether the account exists.
    fn has_account(&self, id: AccountId) -> bool;
    /// The asset, if it exists (its supply is what the genesis balances hold).
    fn asset(&self, id: AssetId) -> Option<&crate::chain::objects::Asset>;
    /// Whether the SON exists.
    fn has_son(&self, id: SonId) -> bool;
}

/// A parameter's declaration, as a plugin registers it (see [`ParamDecl::of`]).
#[derive(Clone, Copy)]
pub struct ParamDecl {
    /// [`Parameter::NAME`].
    pub name: &'static str,
    /// [`Parameter::DESCRIPTION`].
    pub description: &'static str,
    /// The default, as JSON.
    pub default_json: fn() -> serde_json::Value,
    /// Decodes and validates a JSON value.
    pub check_json: fn(&serde_json::Value) -> Result<(), String>,
    /// Decodes a JSON value and judges it on the genesis state
    /// ([`Parameter::validate_at_genesis`]).
    pub check_at_genesis: fn(&serde_json::Value, &dyn GenesisView) -> Result<(), String>,
}

impl fmt::Debug for ParamDecl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParamDecl").field("name", &self.name).finish_non_exhaustive()
    }
}

fn default_json<P: Parameter>() -> serde_json::Value {
    serde_json::to_value(P::default_value()).unwrap_or(serde_json::Value::Null)
}

fn check_json<P: Parameter>(v: &serde_json::Value) -> Result<(), String> {
    let typed = P::Value::deserialize(v).map_err(|e| format!("not a valid value: {e}"))?;
    P::validate(&typed)
}

fn check_at_genesis<P: Parameter>(
    v: &serde_json::Value,
    genesis: &dyn GenesisView,
) -> Result<(), String> {
    let typed = P::Value::deserialize(v).map_err(|e| format!("not a valid value: {e}"))?;
    P::validate_at_genesis(&typed, genesis)
}

use serde::Deserialize as _;

impl ParamDecl {
    /// The declaration of parameter `P`.
    pub const fn of<P: Parameter>() -> ParamDecl {
        ParamDecl {
            name: P::NAME,
            description: P::DESCRIPTION,
            default_json: default_json::<P>,
            check_json: check_json::<P>,
            check_at_genesis: check_at_genesis::<P>,
        }
    }
}

/// An event an operation crate's evaluator reports: serialised with its kind and name into
/// `LedgerEvent::Plugin`, shown by timelines and reports, and decoded back with
/// `LedgerEvent::decode`.
pub trait ChainEvent: Serialize + DeserializeOwned + fmt::Display {
    /// The operation kind (or crate) that emits it.
    const KIND: &'static str;
    /// The event's name, unique within its kind.
    const NAME: &'static str;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip<K: TableKey + PartialEq>(k: &K) -> bool {
        K::from_key_bytes(&k.key_bytes()).as_ref() == Some(k)
    }

    proptest! {
        #[test]
        fn key_encodings_round_trip_and_keep_order(
            a in any::<(u64, Vec<u8>, String)>(),
            b in any::<(u64, Vec<u8>, String)>(),
            c in any::<(u32, bool, [u8; 3])>(),
            d in any::<(u32, bool, [u8; 3])>(),
        ) {
            prop_assert!(roundtrip(&a) && roundtrip(&b) && roundtrip(&c) && roundtrip(&d));
            prop_assert_eq!(a.cmp(&b), a.key_bytes().cmp(&b.key_bytes()));
            prop_assert_eq!(c.cmp(&d), c.key_bytes().cmp(&d.key_bytes()));
        }

        #[test]
        fn byte_strings_with_zeros_order_like_the_bytes(
            a in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(255u8)], 0..6),
            b in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(255u8)], 0..6),
        ) {
            prop_assert_eq!(a.cmp(&b), a.key_bytes().cmp(&b.key_bytes()));
            prop_assert!(roundtrip(&a));
        }
    }

    #[test]
    fn bytes_that_are_no_encoding_decode_to_none() {
        assert_eq!(u64::from_key_bytes(&[1, 2, 3]), None, "too short");
        assert_eq!(u32::from_key_bytes(&[0, 0, 0, 1, 9]), None, "trailing bytes");
        assert_eq!(String::from_key_bytes(&[b'a', 0, 7]), None, "bad escape");
        assert_eq!(bool::from_key_bytes(&[2]), None);
    }
}
