//! The canonical binary encoding the state hash covers.
//!
//! Any `Serialize` value encodes to one byte string, the same on every machine and in every
//! process, and two values of one type encode alike only if they serialise alike. It is made
//! for hashing, so it is encode-only (nothing decodes it) and reports itself as not human
//! readable, which lets digests, keys and ids write their bytes and numbers instead of hex and
//! dotted strings.
//!
//! - integers: fixed width, little-endian; `bool` one byte; `char` as `u32`;
//! - lengths and enum variant indexes: LEB128 (the shortest form, so one spelling per number);
//! - strings and byte strings: length, then the bytes;
//! - `Option`: `0`, or `1` and the value;
//! - sequences and maps: the number of elements, then each element (a map's key before its
//!   value), in the order serde gives them; ordered maps only reach this encoder;
//! - structs: the number of fields written, then each field as its name and its value, so a
//!   field skipped when empty cannot be taken for another; tuples: their elements.
//!
//! ```
//! use sonprop_core::chain::canon;
//!
//! #[derive(serde::Serialize)]
//! struct Pair { a: u8, b: Option<u16> }
//!
//! let bytes = canon::to_vec(&Pair { a: 7, b: Some(2) }).expect("encodes");
//! // 2 fields; "a" = 7; "b" = Some(2)
//! assert_eq!(bytes, [2, 1, b'a', 7, 1, b'b', 1, 2, 0]);
//! ```

use serde::ser::{self, Serialize};

/// A value whose `Serialize` implementation failed (a custom implementation's own error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode canonically: {0}")]
pub struct CanonError(String);

impl ser::Error for CanonError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        CanonError(msg.to_string())
    }
}

/// Appends the canonical encoding of `value` to `out`. On error, `out` may hold part of it.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CanonError> {
    value.serialize(&mut Encoder { out })
}

/// The canonical encoding of `value`.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonError> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// For a field of JSON values (`#[serde(serialize_with = "canon::json_values")]`): as they are
/// in JSON, and as their JSON text in the binary encoding. A `serde_json::Value` is not
/// self-describing there (`null` writes nothing, and every number eight bytes), so two
/// different values could encode alike; their canonical JSON text cannot.
pub fn json_values<M, S>(values: &M, s: S) -> Result<S::Ok, S::Error>
where
    M: std::ops::Deref<Target = std::collections::BTreeMap<String, serde_json::Value>>,
    S: ser::Serializer,
{
    let values: &std::collections::BTreeMap<String, serde_json::Value> = values;
    if s.is_human_readable() {
        return values.serialize(s);
    }
    use ser::SerializeMap;
    let mut map = s.serialize_map(Some(values.len()))?;
    for (k, v) in values {
        map.serialize_entry(k, &v.to_string())?;
    }
    map.end()
}

/// Appends `n` as LEB128.
pub fn put_len(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

/// A sequence, map or struct being written. When its length was not known at the start, the
/// elements are counted and the count is put in front of them at the end.
pub struct Compound<'e, 'a> {
    enc: &'e mut Encoder<'a>,
    /// Where the elements began and how many there are, when the count comes last.
    counting: Option<(usize, u64)>,
}

impl<'e, 'a> Compound<'e, 'a> {
    fn start(enc: &'e mut Encoder<'a>, len: Option<usize>) -> Self {
        match len {
            Some(n) => {
                put_len(enc.out, n as u64);
                Compound { enc, counting: None }
            }
            None => {
                let at = enc.out.len();
                Compound { enc, counting: Some((at, 0)) }
            }
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        if let Some((_, n)) = &mut self.counting {
            *n += 1;
        }
        value.serialize(&mut *self.enc)
    }

    fn finish(self) -> Result<(), CanonError> {
        if let Some((at, n)) = self.counting {
            let mut prefix = Vec::with_capacity(10);
            put_len(&mut prefix, n);
            self.enc.out.splice(at..at, prefix);
        }
        Ok(())
    }
}

/// Integers: fixed width, little-endian.
macro_rules! fixed_width {
    ($($method:ident : $t:ty),*) => {$(
        fn $method(self, v: $t) -> Result<(), CanonError> {
            self.out.extend_from_slice(&v.to_le_bytes());
            Ok(())
        }
    )*};
}

impl<'e, 'a> ser::Serializer for &'e mut Encoder<'a> {
    type Ok = ();
    type Error = CanonError;
    type SerializeSeq = Compound<'e, 'a>;
    type SerializeTuple = Compound<'e, 'a>;
    type SerializeTupleStruct = Compound<'e, 'a>;
    type SerializeTupleVariant = Compound<'e, 'a>;
    type SerializeMap = Compound<'e, 'a>;
    type SerializeStruct = Compound<'e, 'a>;
    type SerializeStructVariant = Compound<'e, 'a>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<(), CanonError> {
        self.out.push(u8::from(v));
        Ok(())
    }
    fixed_width!(
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_i128: i128,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_u128: u128
    );
    fn serialize_f32(self, v: f32) -> Result<(), CanonError> {
        self.out.extend_from_slice(&v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), CanonError> {
        self.out.extend_from_slice(&v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), CanonError> {
        self.serialize_u32(u32::from(v))
    }
    fn serialize_str(self, v: &str) -> Result<(), CanonError> {
        self.serialize_bytes(v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), CanonError> {
        put_len(self.out, v.len() as u64);
        self.out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), CanonError> {
        self.out.push(0);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), CanonError> {
        self.out.push(1);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), CanonError> {
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), CanonError> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
    ) -> Result<(), CanonError> {
        put_len(self.out, u64::from(index));
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        put_len(self.out, u64::from(index));
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'e, 'a>, CanonError> {
        Ok(Compound::start(self, len))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Compound<'e, 'a>, CanonError> {
        Ok(Compound { enc: self, counting: None })
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'e, 'a>, CanonError> {
        Ok(Compound { enc: self, counting: None })
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'e, 'a>, CanonError> {
        put_len(self.out, u64::from(index));
        Ok(Compound { enc: self, counting: None })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'e, 'a>, CanonError> {
        Ok(Compound::start(self, len))
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'e, 'a>, CanonError> {
        Ok(Compound::start(self, Some(len)))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        len: usize,
    ) -> Result<Compound<'e, 'a>, CanonError> {
        put_len(self.out, u64::from(index));
        Ok(Compound::start(self, Some(len)))
    }
}

/// The compound serializers whose elements are plain values.
macro_rules! elements {
    ($($tr:ident :: $method:ident),*) => {$(
        impl ser::$tr for Compound<'_, '_> {
            type Ok = ();
            type Error = CanonError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
                self.element(value)
            }
            fn end(self) -> Result<(), CanonError> {
                self.finish()
            }
        }
    )*};
}
elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// The compound serializers whose elements are named fields: the name, then the value.
macro_rules! fields {
    ($($tr:ident),*) => {$(
        impl ser::$tr for Compound<'_, '_> {
            type Ok = ();
            type Error = CanonError;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), CanonError> {
                self.element(key)?;
                value.serialize(&mut *self.enc)
            }
            fn end(self) -> Result<(), CanonError> {
                self.finish()
            }
        }
    )*};
}
fields!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), CanonError> {
        // A map's element is the pair: count it once, at its key.
        self.element(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        value.serialize(&mut *self.enc)
    }
    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;
    use crate::chain::crypto::{Digest, KeyPair};
    use crate::chain::ids::AccountId;

    #[test]
    fn lengths_take_their_shortest_form() {
        for (n, want) in [
            (0u64, vec![0u8]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (300, vec![0xac, 0x02]),
            (u64::MAX, vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        ] {
            let mut out = Vec::new();
            put_len(&mut out, n);
            assert_eq!(out, want, "{n}");
        }
    }

    #[derive(Serialize)]
    struct Skipping {
        #[serde(skip_serializing_if = "Option::is_none")]
        a: Option<u8>,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<u8>,
    }

    /// A field skipped when empty cannot be taken for its neighbour.
    #[test]
    fn skipped_fields_do_not_shift_their_neighbours() {
        let a = to_vec(&Skipping { a: Some(1), b: None }).expect("encodes");
        let b = to_vec(&Skipping { a: None, b: Some(1) }).expect("encodes");
        assert_ne!(a, b);
        assert_eq!(a, [1, 1, b'a', 1, 1]);
    }

    #[derive(Serialize)]
    struct Inner {
        x: u8,
    }

    #[derive(Serialize)]
    struct Flat {
        id: u8,
        #[serde(flatten)]
        inner: Inner,
    }

    /// Flattened structs are written as maps of unknown length: counted, and the count put
    /// first, so an encoding with one more entry is not a prefix of another's.
    #[test]
    fn maps_of_unknown_length_are_counted() {
        let bytes = to_vec(&Flat { id: 3, inner: Inner { x: 4 } }).expect("encodes");
        assert_eq!(bytes, [2, 2, b'i', b'd', 3, 1, b'x', 4]);
    }

    #[test]
    fn nested_sequences_keep_their_boundaries() {
        let a: Vec<Vec<u8>> = vec![vec![1, 2], vec![]];
        let b: Vec<Vec<u8>> = vec![vec![1], vec![2]];
        assert_ne!(to_vec(&a).expect("encodes"), to_vec(&b).expect("encodes"));
        let m: BTreeMap<u8, Vec<u8>> = [(1, vec![9]), (2, vec![])].into();
        assert_eq!(to_vec(&m).expect("encodes"), [2, 1, 1, 9, 2, 0]);
    }

    /// Digests, keys and ids are written as bytes and numbers, not as their text forms.
    #[test]
    fn digests_keys_and_ids_are_not_written_as_text() {
        let d = Digest::of(b"x");
        let mut want = vec![32];
        want.extend_from_slice(&d.0);
        assert_eq!(to_vec(&d).expect("encodes"), want);
        assert_eq!(to_vec(&AccountId(300)).expect("encodes"), 300u64.to_le_bytes());
        let key = KeyPair::from_seed("k").public();
        assert_eq!(to_vec(&key).expect("encodes"), key.serialize());
    }

    #[derive(Serialize)]
    struct Params {
        #[serde(serialize_with = "json_values")]
        values: std::sync::Arc<BTreeMap<String, serde_json::Value>>,
    }

    /// JSON values are written as their text: `[null, true]` and `[true, null]` would
    /// otherwise both be two elements and the byte 1.
    #[test]
    fn json_values_are_written_as_their_text() {
        let p = |v: serde_json::Value| Params {
            values: std::sync::Arc::new([("p".to_owned(), v)].into()),
        };
        let a = to_vec(&p(serde_json::json!([null, true]))).expect("encodes");
        let b = to_vec(&p(serde_json::json!([true, null]))).expect("encodes");
        assert_ne!(a, b);
        let json = serde_json::to_string(&p(serde_json::json!({"b": 1, "a": 2}))).expect("json");
        assert_eq!(json, r#"{"values":{"p":{"a":2,"b":1}}}"#, "JSON itself is unchanged");
    }

    #[derive(Serialize)]
    enum Kind {
        Unit,
        Pair(u8, u8),
    }

    #[test]
    fn variants_are_told_apart_by_index() {
        assert_eq!(to_vec(&Kind::Unit).expect("encodes"), [0]);
        assert_eq!(to_vec(&Kind::Pair(5, 6)).expect("encodes"), [1, 5, 6]);
    }
}
