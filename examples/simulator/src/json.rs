//! The one convention every JSON document `sonprop` prints follows (the report, `explain
//! --json`, `inspect --json`, `bitcoin address --json`), and the pieces they share.
//!
//! - Each document is one object that opens with `document` (its name) and `format_version`
//!   ([`FORMAT_VERSION`], raised when a field changes meaning or goes).
//! - Every key is always present: what is not there is `null`, an empty list is `[]`.
//! - A point in chain time is a [`Time`]: unix seconds, RFC 3339 and the offset from genesis.
//! - An account is an [`Account`]: its id and the node name the timeline gives it.
//! - A SON is a [`Son`], a proposal a [`Proposal`], the same in every document.
//! - No Rust shapes: an outcome that can fail says so in fields (`holds`, `broken`), never as
//!   `{"Ok": …}`.
//!
//! `docs/json.md` describes each document, and a JSON Schema per document sits beside it in
//! `docs/json/`; a test validates real output against them.

use serde::Serialize;
use sonprop_core::{SonStatus, State, Timestamp};

use crate::report::Outcome;

/// The version of the convention every document carries (3: one convention across the
/// documents; the report was at 2).
pub const FORMAT_VERSION: u32 = 3;

/// A point in chain time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Time {
    /// Unix seconds.
    pub unix: u64,
    /// RFC 3339, UTC.
    pub time: String,
    /// The offset from genesis, `T+hh:mm:ss` (or `T+Nd…` past a day).
    pub offset: String,
}

impl Time {
    /// `t` (unix seconds) on a chain whose genesis is at `genesis` (unix seconds).
    pub fn at(genesis: u64, t: u64) -> Time {
        Time {
            unix: t,
            time: crate::report::rfc3339(t),
            offset: crate::cli::format_elapsed(t.saturating_sub(genesis)),
        }
    }
}

/// An account: its id and, when a node of the run holds it, that node's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// `1.2.N`.
    pub id: String,
    /// The node's name (`son-2`), as the timeline gives it; `null` for other accounts.
    pub name: Option<String>,
}

impl std::fmt::Display for Account {
    /// As the timeline names it: `son-2 (1.2.14)`, or the id alone.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} ({})", self.id),
            None => f.write_str(&self.id),
        }
    }
}

/// A SON as every document gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Son {
    /// `1.33.N`.
    pub id: String,
    /// `active`, `in_maintenance`, `deregistered`, …
    pub status: SonStatus,
    /// Its last heartbeat (or election).
    pub last_heartbeat: Time,
    /// When it last went down, if it ever did.
    pub down_since: Option<Time>,
    /// When it was deregistered.
    pub deregistered: Option<Time>,
}

/// Every SON of `state`, in id order.
pub fn sons(state: &State) -> Vec<Son> {
    state.sons().iter().map(|(_, s)| son(state, s)).collect()
}

/// One SON of `state`.
pub fn son(state: &State, s: &sonprop_core::Son) -> Son {
    let g = state.globals().genesis_time.secs();
    let at = |t: Timestamp| Time::at(g, t.secs());
    let st = &s.statistics;
    Son {
        id: s.id.to_string(),
        status: s.status,
        last_heartbeat: at(st.last_active_timestamp),
        down_since: (st.last_down_timestamp.secs() > 0).then(|| at(st.last_down_timestamp)),
        deregistered: st.deregistered_timestamp.map(at),
    }
}

/// A node whose validator did not approve a proposal, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Abstention {
    /// The node's name.
    pub node: String,
    /// Its validator's reason (the first it gave).
    pub why: String,
}

/// A proposal as every document gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proposal {
    /// `1.10.N`.
    pub id: String,
    /// Its operation kind(s), `+`-joined.
    pub kind: String,
    /// Its subject (SON proposals).
    pub subject: Option<String>,
    /// Who raised it.
    pub proposer: Account,
    /// When it was raised.
    pub created: Time,
    /// When it expires (or expired).
    pub expires: Time,
    /// How it ended, or `live`.
    pub outcome: Outcome,
    /// When it ended; `null` while live.
    pub ended: Option<Time>,
    /// Approvals it held at the end (or when it ended).
    pub approvals: u32,
    /// Who approved, in the order they came.
    pub approvers: Vec<Account>,
    /// Nodes whose validators abstained.
    pub abstentions: Vec<Abstention>,
    /// For a SON proposal that expired unexecuted: what the SON authority needed then.
    pub expired_needing: Option<String>,
}

impl Proposal {
    /// The document's form of a logged proposal; `account` names an account id.
    pub fn of(
        p: &crate::report::ProposalEntry,
        genesis: u64,
        account: &dyn Fn(&str) -> Account,
    ) -> Proposal {
        Proposal {
            id: p.id.clone(),
            kind: p.kind.clone(),
            subject: p.subject.clone(),
            proposer: account(&p.proposer),
            created: Time::at(genesis, p.created_time),
            expires: Time::at(genesis, p.expiration_time),
            outcome: p.outcome,
            ended: p.outcome_time.map(|t| Time::at(genesis, t)),
            approvals: p.approvals,
            approvers: p.approvers.iter().map(|a| account(a)).collect(),
            abstentions: p
                .abstentions
                .iter()
                .map(|a| Abstention { node: a.node.clone(), why: a.reason.clone() })
                .collect(),
            expired_needing: p.expired_needing.clone(),
        }
    }
}

/// One expectation of a run and whether it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectationResult {
    /// What was expected, in words.
    pub expectation: String,
    /// Whether it held.
    pub holds: bool,
    /// Why not, when it did not.
    pub failure: Option<String>,
}

impl ExpectationResult {
    /// `expectation`, failed with `failure` if there is one.
    pub fn new(expectation: String, failure: Option<String>) -> ExpectationResult {
        ExpectationResult { expectation, holds: failure.is_none(), failure }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_gives_unix_seconds_rfc3339_and_the_offset_from_genesis() {
        let t = Time::at(1_767_225_600, 1_767_225_600 + 3_906);
        assert_eq!(t.unix, 1_767_229_506);
        assert_eq!(t.time, "2026-01-01T01:05:06Z");
        assert_eq!(t.offset, "T+01:05:06");
    }

    #[test]
    fn an_expectation_holds_exactly_when_it_has_no_failure() {
        assert!(ExpectationResult::new("x".into(), None).holds);
        let failed = ExpectationResult::new("x".into(), Some("no".into()));
        assert!(!failed.holds);
        assert_eq!(failed.failure.as_deref(), Some("no"));
    }
}
