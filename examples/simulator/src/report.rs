//! The run report (`--report FILE`): final SON states and every proposal ever created.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sonprop_core::{LedgerEvent, ProposalId, SonStatus, State};

/// How a proposal ended (or that it is still live).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Executed.
    Executed,
    /// Expired without enough approvals.
    Expired,
    /// Its last attempt, at expiration, failed.
    Failed,
    /// Vetoed.
    Deleted,
    /// Still live at the end of the run.
    Live,
}

/// One proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalEntry {
    /// Its id.
    pub id: String,
    /// Its operation kind(s), `+`-joined.
    pub kind: String,
    /// Its subject, for SON proposals.
    pub subject: Option<String>,
    /// The proposer's account.
    pub proposer: String,
    /// The proposer's node, by name (as the timeline names it).
    #[serde(default)]
    pub proposer_name: Option<String>,
    /// Chain time of creation.
    pub created_time: u64,
    /// Expiration.
    pub expiration_time: u64,
    /// Approvals held at the end (or when it ended).
    pub approvals: u32,
    /// The accounts whose approvals it held at the end, in the order they came.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Nodes whose validators abstained, with the first reason each gave.
    #[serde(default)]
    pub abstentions: Vec<Abstention>,
    /// How it ended.
    pub outcome: Outcome,
    /// When it ended.
    pub outcome_time: Option<u64>,
    /// For a SON proposal that expired unexecuted: what the SON consensus authority needed
    /// when it did (e.g. no number of approvals, with fewer live SONs than `min_son_count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_needing: Option<String>,
    /// `created_time`, `expiration_time` and `outcome_time` for people (RFC 3339 and the offset
    /// from genesis), filled in the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// See `created_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_at: Option<String>,
    /// See `created_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_at: Option<String>,
}

/// A node that did not approve a proposal, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Abstention {
    /// The node.
    pub node: String,
    /// Its validator's reason.
    pub reason: String,
}

/// One SON at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SonEntry {
    /// Its id.
    pub id: String,
    /// Its status.
    pub status: SonStatus,
    /// Its last heartbeat (or election).
    pub last_active_timestamp: u64,
    /// Its last down time, if it was ever down.
    pub last_down_timestamp: Option<u64>,
    /// When it was deregistered.
    pub deregistered_timestamp: Option<u64>,
    /// `last_active_timestamp` for people: RFC 3339 and the offset from genesis.
    pub last_active_at: String,
    /// `last_down_timestamp` for people.
    pub last_down_at: Option<String>,
    /// `deregistered_timestamp` for people.
    pub deregistered_at: Option<String>,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The report's format ([`REPORT_FORMAT`]): raised when a field changes meaning or goes.
    pub format_version: u32,
    /// Scenario name.
    pub scenario: String,
    /// Its seed.
    pub seed: u64,
    /// Genesis time.
    pub genesis_time: u64,
    /// Blocks produced.
    pub blocks: u64,
    /// Final head time.
    pub head_time: u64,
    /// Final state hash (hex).
    pub state_hash: String,
    /// Every SON.
    pub sons: Vec<SonEntry>,
    /// Every proposal ever created, in id order.
    pub proposals: Vec<ProposalEntry>,
    /// Every event operation crates reported, in order.
    pub events: Vec<PluginEvent>,
    /// The Bitcoin bridge: deposits, withdrawals, the conservation equation (bridge scenarios
    /// only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitcoin: Option<crate::bridge::BridgeReport>,
    /// The timeline this invocation printed (from the resume point, for a resumed run), as
    /// `sonprop simulate --report` writes it; empty, and left out, elsewhere.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineEntry>,
}

/// The report format this build writes: 2 added `format_version` and `timeline`.
pub const REPORT_FORMAT: u32 = 2;

/// One timeline line, as the report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// Block height.
    pub height: u64,
    /// Chain time, RFC 3339.
    pub time: String,
    /// Offset from genesis, `T+hh:mm:ss`.
    pub offset: String,
    /// What happened.
    pub text: String,
}

/// An operation crate's event, as the report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginEvent {
    /// When (unix seconds).
    pub time: u64,
    /// The kind (or crate) that reported it.
    pub kind: String,
    /// The event's name.
    pub name: String,
    /// One line for humans.
    pub text: String,
    /// The event itself, as its crate serialises it.
    pub data: serde_json::Value,
}

/// Follows ledger events to build the proposal list and the operation crates' events.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ProposalLog {
    entries: BTreeMap<ProposalId, ProposalEntry>,
    #[serde(default)]
    events: Vec<PluginEvent>,
}

impl ProposalLog {
    /// Records one event at `time`.
    pub fn record(&mut self, time: u64, event: &LedgerEvent) {
        let mut end = |id: &ProposalId, outcome| {
            if let Some(e) = self.entries.get_mut(id) {
                e.outcome = outcome;
                e.outcome_time = Some(time);
            }
        };
        match event {
            LedgerEvent::ProposalCreated {
                proposal,
                proposer,
                kinds,
                subject,
                expiration_time,
            } => {
                self.entries.insert(
                    *proposal,
                    ProposalEntry {
                        id: proposal.to_string(),
                        kind: kinds.join("+"),
                        subject: subject.as_ref().map(ToString::to_string),
                        proposer: proposer.to_string(),
                        proposer_name: None,
                        created_time: time,
                        expiration_time: expiration_time.secs(),
                        approvals: 0,
                        approvers: Vec::new(),
                        abstentions: Vec::new(),
                        outcome: Outcome::Live,
                        outcome_time: None,
                        expired_needing: None,
                        created_at: None,
                        expiration_at: None,
                        outcome_at: None,
                    },
                );
            }
            LedgerEvent::ProposalApproved { proposal, approver } => {
                if let Some(e) = self.entries.get_mut(proposal) {
                    e.approvals += 1;
                    e.approvers.push(approver.to_string());
                }
            }
            LedgerEvent::ApprovalRemoved { proposal, approver } => {
                if let Some(e) = self.entries.get_mut(proposal) {
                    e.approvals = e.approvals.saturating_sub(1);
                    let who = approver.to_string();
                    e.approvers.retain(|a| *a != who);
                }
            }
            LedgerEvent::ProposalExecuted { proposal } => end(proposal, Outcome::Executed),
            LedgerEvent::ProposalExpired { proposal } => end(proposal, Outcome::Expired),
            LedgerEvent::ProposalFailed { proposal, .. } => end(proposal, Outcome::Failed),
            LedgerEvent::ProposalDeleted { proposal, .. } => end(proposal, Outcome::Deleted),
            LedgerEvent::Plugin { kind, name, text, data } => self.events.push(PluginEvent {
                time,
                kind: kind.clone(),
                name: name.clone(),
                text: text.clone(),
                data: data.clone(),
            }),
            _ => {}
        }
    }

    /// Notes that `node`'s validator abstained on `proposal`, for `reason` (the first reason
    /// each node gives is kept).
    pub fn abstained(&mut self, proposal: ProposalId, node: &str, reason: &str) {
        if let Some(e) = self.entries.get_mut(&proposal) {
            if !e.abstentions.iter().any(|a| a.node == node) {
                e.abstentions.push(Abstention { node: node.to_owned(), reason: reason.to_owned() });
            }
        }
    }

    /// The operation crates' events, in order.
    pub fn events(&self) -> &[PluginEvent] {
        &self.events
    }

    /// A proposal's entry.
    pub fn get(&self, id: ProposalId) -> Option<&ProposalEntry> {
        self.entries.get(&id)
    }

    /// Notes what the SON consensus authority needed when SON proposal `id` expired.
    pub fn expired_needing(&mut self, id: ProposalId, quorum: &sonprop_core::SonQuorum) {
        if let Some(e) = self.entries.get_mut(&id).filter(|e| e.subject.is_some()) {
            e.expired_needing = Some(quorum.to_string());
        }
    }

    /// Every entry, in id order.
    pub fn entries(&self) -> impl Iterator<Item = &ProposalEntry> + '_ {
        self.entries.values()
    }
}

/// The SON part of the report, from the final state.
pub fn sons(state: &State) -> Vec<SonEntry> {
    state
        .sons()
        .iter()
        .map(|(id, s)| {
            let st = &s.statistics;
            let g = state.globals().genesis_time.secs();
            let last_down =
                (st.last_down_timestamp.secs() > 0).then(|| st.last_down_timestamp.secs());
            let deregistered = st.deregistered_timestamp.map(|t| t.secs());
            SonEntry {
                id: id.to_string(),
                status: s.status,
                last_active_timestamp: st.last_active_timestamp.secs(),
                last_down_timestamp: last_down,
                deregistered_timestamp: deregistered,
                last_active_at: when(g, st.last_active_timestamp.secs()),
                last_down_at: last_down.map(|t| when(g, t)),
                deregistered_at: deregistered.map(|t| when(g, t)),
            }
        })
        .collect()
}

/// A chain time for people: RFC 3339 and the offset from genesis, as in
/// `2026-01-01T01:05:57Z (T+01:05:57)`.
pub fn when(genesis_time: u64, t: u64) -> String {
    format!("{} ({})", rfc3339(t), crate::cli::format_elapsed(t.saturating_sub(genesis_time)))
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(t: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t))
        .to_string()
}
