//! The generic proposal object and the son proposal record that indexes SON proposals.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, ProposalId, SonId, SonProposalId};
use crate::operation::Operation;
use crate::time::Timestamp;

/// A proposed set of operations awaiting approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposal {
    /// Its id.
    pub id: ProposalId,
    /// The account that created it.
    pub proposer: AccountId,
    /// The operations it carries; they apply together or not at all.
    pub operations: Vec<Box<dyn Operation>>,
    /// When it was created.
    pub created_time: Timestamp,
    /// When it expires.
    pub expiration_time: Timestamp,
    /// With a review period, execution waits for expiration.
    pub review_period_time: Option<Timestamp>,
    /// The accounts whose authority must be satisfied, computed at creation.
    pub required_approvals: BTreeSet<AccountId>,
    /// The accounts that approved.
    pub approvals: BTreeSet<AccountId>,
    /// Why the last execution attempt failed, if it did.
    pub fail_reason: Option<String>,
}

impl Proposal {
    /// The proposal's operation as a `T`, if it carries exactly one operation and that is a `T`.
    /// What a validator of a SON proposal kind usually needs first.
    pub fn only<T: Operation + 'static>(&self) -> Option<&T> {
        match self.operations.as_slice() {
            [op] => op.downcast_ref(),
            _ => None,
        }
    }
}

/// What a SON proposal is about: a SON, or some other named object (a sidechain deposit, a
/// wallet, …). Printed as the SON id (`1.33.3`) or as the name itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// A SON.
    Son(SonId),
    /// Anything else, by a name that does not parse as a SON id (e.g. `bitcoin:deposit:<txid>:0`).
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

impl FromStr for Subject {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.parse::<SonId>() {
            Ok(son) => Subject::Son(son),
            Err(_) => Subject::Named(s.to_owned()),
        })
    }
}

impl Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(s.parse().unwrap_or_else(|never| match never {}))
    }
}

/// The son proposal record: one per live proposal of a registered SON kind, so a node can ask
/// "is this SON already being deregistered?" without scanning every proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SonProposalRecord {
    /// Its id.
    pub id: SonProposalId,
    /// The live proposal it indexes.
    pub proposal: ProposalId,
    /// The operation kind, e.g. `son_deregister`.
    pub kind: String,
    /// What the proposal is about.
    pub subject: Subject,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_returns_the_single_operation_of_the_asked_type() {
        use crate::testkit::probe::{PlainProbe, SonProbe};
        let probe = SonProbe { son: SonId(1), fail_after: None, set_status: None };
        let plain = PlainProbe { account: AccountId(1), amount: 1, fail_after: None };
        let mut p = Proposal {
            id: ProposalId(0),
            proposer: AccountId(1),
            operations: vec![Box::new(probe.clone())],
            created_time: crate::Timestamp(0),
            expiration_time: crate::Timestamp(1),
            review_period_time: None,
            required_approvals: BTreeSet::new(),
            approvals: BTreeSet::new(),
            fail_reason: None,
        };
        assert_eq!(p.only::<SonProbe>(), Some(&probe));
        assert_eq!(p.only::<PlainProbe>(), None, "another type");
        p.operations.push(Box::new(plain));
        assert_eq!(p.only::<SonProbe>(), None, "not alone");
    }

    #[test]
    fn subjects_print_and_parse_as_son_ids_or_names() {
        let s: Subject = "1.33.3".parse().unwrap_or_else(|n| match n {});
        assert_eq!(s, Subject::Son(SonId(3)));
        assert_eq!(serde_json::to_string(&s).expect("ser"), "\"1.33.3\"");
        let n: Subject = serde_json::from_str("\"bitcoin:deposit:ab:0\"").expect("de");
        assert_eq!(n, Subject::Named("bitcoin:deposit:ab:0".into()));
        assert_eq!(n.son(), None);
    }
}
