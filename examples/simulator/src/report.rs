//! The run report (`--report FILE`): final SON states, every proposal ever created, the
//! expectations' verdicts and the timeline; and the proposal log it is built from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sonprop_core::{LedgerEvent, ProposalId, SonStatus};

use crate::json::{ExpectationResult, Time};

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

/// One proposal, as the proposal log keeps it (kept with a durable run: the report gives
/// [`crate::json::Proposal`]).
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
}

/// A node that did not approve a proposal, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Abstention {
    /// The node.
    pub node: String,
    /// Its validator's reason.
    pub reason: String,
}

/// The report (`--report FILE`), one of the documents of [`crate::json`]'s convention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `report`.
    pub document: &'static str,
    /// [`crate::json::FORMAT_VERSION`].
    pub format_version: u32,
    /// Scenario name.
    pub scenario: String,
    /// Its seed.
    pub seed: u64,
    /// Genesis.
    pub genesis: Time,
    /// The head block's time.
    pub head: Time,
    /// The head block's height (blocks produced).
    pub height: u64,
    /// Final state hash (hex).
    pub state_hash: String,
    /// The counts the summary prints.
    pub summary: Summary,
    /// Every expectation of the run (the scenario's, and a bridge scenario's deposits and
    /// withdrawals), and whether it held.
    pub expectations: Vec<ExpectationResult>,
    /// Every SON.
    pub sons: Vec<crate::json::Son>,
    /// Every SON status change, in order (each SON's history, from genesis).
    pub status_changes: Vec<SonStatusChange>,
    /// Every proposal ever created, in id order.
    pub proposals: Vec<crate::json::Proposal>,
    /// Every event operation crates reported, in order.
    pub events: Vec<Event>,
    /// The timeline this invocation printed (from the resume point, for a resumed run), as
    /// `sonprop simulate --report` writes it.
    pub timeline: Vec<TimelineEntry>,
    /// The Bitcoin bridge: deposits, withdrawals, the conservation equation; `null` without
    /// a bridge.
    pub bitcoin: Option<crate::bridge::BridgeReport>,
}

/// The counts the summary prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// SONs by status.
    pub sons_by_status: BTreeMap<String, u64>,
    /// Proposals by kind and outcome.
    pub proposals: Vec<ProposalCount>,
    /// Transactions included in blocks.
    pub included_transactions: u64,
    /// Transactions producers left out.
    pub rejected_transactions: u64,
}

/// How many proposals of a kind ended one way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProposalCount {
    /// The kind.
    pub kind: String,
    /// The outcome.
    pub outcome: Outcome,
    /// How many.
    pub count: u64,
}

impl Summary {
    /// The counts of `sons` and `proposals`.
    pub fn of(
        sons: &[crate::json::Son],
        proposals: &[crate::json::Proposal],
        included_transactions: u64,
        rejected_transactions: u64,
    ) -> Summary {
        let mut sons_by_status = BTreeMap::new();
        for s in sons {
            *sons_by_status.entry(s.status.to_string()).or_insert(0) += 1;
        }
        let mut counts: BTreeMap<(String, String), (Outcome, u64)> = BTreeMap::new();
        for p in proposals {
            let key = (p.kind.clone(), format!("{:?}", p.outcome));
            counts.entry(key).or_insert((p.outcome, 0)).1 += 1;
        }
        let proposals = counts
            .into_iter()
            .map(|((kind, _), (outcome, count))| ProposalCount { kind, outcome, count })
            .collect();
        Summary { sons_by_status, proposals, included_transactions, rejected_transactions }
    }
}

/// One timeline line, as the report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// Block height.
    pub height: u64,
    /// Chain time.
    pub at: Time,
    /// What happened.
    pub text: String,
}

/// An operation crate's event, as the report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// When.
    pub at: Time,
    /// The kind (or crate) that reported it.
    pub kind: String,
    /// The event's name.
    pub name: String,
    /// One line for humans.
    pub text: String,
    /// The event itself, as its crate serialises it.
    pub data: serde_json::Value,
}

impl Event {
    /// The report's form of a logged event.
    pub fn of(e: &PluginEvent, genesis: u64) -> Event {
        Event {
            at: Time::at(genesis, e.time),
            kind: e.kind.clone(),
            name: e.name.clone(),
            text: e.text.clone(),
            data: e.data.clone(),
        }
    }
}

/// An operation crate's event, as the proposal log keeps it.
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
    /// Every SON status change, in order: the report's history of each SON.
    #[serde(default)]
    status_changes: Vec<StatusChange>,
}

/// A SON's status change, as the proposal log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// When (unix seconds).
    pub time: u64,
    /// The SON.
    pub son: String,
    /// Its status before.
    pub from: SonStatus,
    /// Its status after.
    pub to: SonStatus,
}

/// A SON's status change, as the report gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SonStatusChange {
    /// The SON.
    pub son: String,
    /// When.
    pub at: Time,
    /// Its status before.
    pub from: SonStatus,
    /// Its status after.
    pub to: SonStatus,
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
                        created_time: time,
                        expiration_time: expiration_time.secs(),
                        approvals: 0,
                        approvers: Vec::new(),
                        abstentions: Vec::new(),
                        outcome: Outcome::Live,
                        outcome_time: None,
                        expired_needing: None,
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
            LedgerEvent::SonStatusChanged { son, from, to } => {
                self.status_changes.push(StatusChange {
                    time,
                    son: son.to_string(),
                    from: *from,
                    to: *to,
                });
            }
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

    /// Every SON status change, in order.
    pub fn status_changes(&self) -> &[StatusChange] {
        &self.status_changes
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

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(t: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t))
        .to_string()
}
