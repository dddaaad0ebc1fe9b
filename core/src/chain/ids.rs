//! Object ids in Graphene notation (`space.type.instance`), parsed from and printed as strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string that is not a valid id of the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a valid {expected} id (expected `{prefix}N`)")]
pub struct IdParseError {
    /// What was given.
    pub input: String,
    /// The kind of object that was expected, e.g. `son`.
    pub expected: &'static str,
    /// The required prefix, e.g. `1.33.`.
    pub prefix: &'static str,
}

macro_rules! object_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub u64);

        impl $name {
            /// The `space.type.` prefix of this id type.
            pub const PREFIX: &'static str = $prefix;

            /// The instance number (the `N` of `space.type.N`).
            pub const fn instance(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.strip_prefix($prefix)
                    // Reject "+1", leading zeros and the like: one spelling per id.
                    .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    .filter(|n| n.len() == 1 || !n.starts_with('0'))
                    .and_then(|n| n.parse().ok())
                    .map($name)
                    .ok_or_else(|| IdParseError {
                        input: s.to_owned(),
                        expected: $what,
                        prefix: $prefix,
                    })
            }
        }

        impl Serialize for $name {
            /// The dotted form in JSON; the instance number in the binary encoding the state
            /// hash covers (the type already says which space).
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.collect_str(self)
                } else {
                    s.serialize_u64(self.0)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

object_id!(
    /// An account, `1.2.N`.
    AccountId, "1.2.", "account"
);
object_id!(
    /// A witness (block producer), `1.6.N`.
    WitnessId, "1.6.", "witness"
);
object_id!(
    /// A proposal, `1.10.N`.
    ProposalId, "1.10.", "proposal"
);
object_id!(
    /// A vesting balance, `1.13.N`.
    VestingId, "1.13.", "vesting balance"
);
object_id!(
    /// A Sidechain Operator Node, `1.33.N`.
    SonId, "1.33.", "son"
);
object_id!(
    /// A son proposal record, `1.34.N`.
    SonProposalId, "1.34.", "son proposal record"
);
object_id!(
    /// An asset (a wrapped sidechain coin such as PBTC), `1.3.N`.
    AssetId, "1.3.", "asset"
);

/// What a SON proposal is about: a SON, or some other named object (a sidechain deposit, a
/// wallet, …). Printed as the SON id (`1.33.3`) or as the name itself; stored tagged
/// (`{"son":"1.33.3"}`, `{"named":"…"}`), so every stored subject loads back as exactly itself,
/// even a name that reads like a SON id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Subject {
    /// A SON.
    Son(SonId),
    /// Anything else, by name (e.g. `bitcoin:deposit:<txid>:0`).
    Named(String),
}

impl Subject {
    /// The SON this subject is, if it is one.
    pub fn son(&self) -> Option<SonId> {
        match self {
            Subject::Son(s) => Some(*s),
            Subject::Named(_) => None,
        }
    }
}

impl From<SonId> for Subject {
    fn from(s: SonId) -> Self {
        Subject::Son(s)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Son(s) => s.fmt(f),
            Subject::Named(n) => f.write_str(n),
        }
    }
}

/// Reads what a person typed: a SON id if it is one, a name otherwise. Never used for stored
/// data, whose encoding is tagged.
impl FromStr for Subject {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.parse::<SonId>() {
            Ok(son) => Subject::Son(son),
            Err(_) => Subject::Named(s.to_owned()),
        })
    }
}

impl AccountId {
    /// The SON consensus account. Its authority is not stored: the ledger computes it from the
    /// elected SON set and the chain's threshold policy whenever it is needed.
    pub const SON_CONSENSUS: AccountId = AccountId(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn subjects_are_stored_tagged_and_typed_input_reads_son_ids() {
        let s: Subject = "1.33.3".parse().unwrap_or_else(|n| match n {});
        assert_eq!(s, Subject::Son(SonId(3)));
        assert_eq!(serde_json::to_string(&s).expect("ser"), r#"{"son":"1.33.3"}"#);
        let n: Subject = serde_json::from_str(r#"{"named":"1.33.3"}"#).expect("de");
        assert_eq!(
            n,
            Subject::Named("1.33.3".into()),
            "a name that reads like a SON id stays a name"
        );
        assert_eq!(n.son(), None);
        assert!(serde_json::from_str::<Subject>(r#""1.33.3""#).is_err(), "untagged is refused");
    }

    proptest! {
        #[test]
        fn every_subject_round_trips_to_exactly_itself(name in ".*", son in any::<u64>()) {
            for s in [Subject::Named(name.clone()), Subject::Named(format!("1.33.{son}")), Subject::Son(SonId(son))] {
                let json = serde_json::to_string(&s).expect("ser");
                prop_assert_eq!(serde_json::from_str::<Subject>(&json).expect("de"), s);
            }
        }
    }

    #[test]
    fn ids_round_trip_through_strings_and_json() {
        let son: SonId = "1.33.14".parse().expect("valid");
        assert_eq!(son, SonId(14));
        assert_eq!(son.to_string(), "1.33.14");
        let json = serde_json::to_string(&son).expect("serialises");
        assert_eq!(json, "\"1.33.14\"");
        assert_eq!(serde_json::from_str::<SonId>(&json).expect("parses"), son);
    }

    #[test]
    fn malformed_ids_are_rejected_with_the_expected_prefix() {
        for bad in ["1.2.5", "1.33.", "1.33.-1", "1.33.+1", "1.33.01", "1.33.1x", "son", ""] {
            let err = bad.parse::<SonId>().expect_err(bad);
            assert_eq!(err.input, bad);
            assert_eq!(err.prefix, "1.33.");
        }
        assert!(serde_json::from_str::<ProposalId>("\"1.34.0\"").is_err());
        assert!(serde_json::from_str::<ProposalId>("7").is_err());
    }
}
