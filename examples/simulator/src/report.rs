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
    /// Chain time of creation.
    pub created_time: u64,
    /// Expiration.
    pub expiration_time: u64,
    /// Approvals held at the end (or when it ended).
    pub approvals: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// When it ended.
    pub outcome_time: Option<u64>,
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
}

/// The report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
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
                        created_time: time,
                        expiration_time: expiration_time.secs(),
                        approvals: 0,
                        outcome: Outcome::Live,
                        outcome_time: None,
                    },
                );
            }
            LedgerEvent::ProposalApproved { proposal, .. } => {
                if let Some(e) = self.entries.get_mut(proposal) {
                    e.approvals += 1;
                }
            }
            LedgerEvent::ApprovalRemoved { proposal, .. } => {
                if let Some(e) = self.entries.get_mut(proposal) {
                    e.approvals = e.approvals.saturating_sub(1);
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

    /// The operation crates' events, in order.
    pub fn events(&self) -> &[PluginEvent] {
        &self.events
    }

    /// A proposal's entry.
    pub fn get(&self, id: ProposalId) -> Option<&ProposalEntry> {
        self.entries.get(&id)
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
            SonEntry {
                id: id.to_string(),
                status: s.status,
                last_active_timestamp: st.last_active_timestamp.secs(),
                last_down_timestamp: (st.last_down_timestamp.secs() > 0)
                    .then(|| st.last_down_timestamp.secs()),
                deregistered_timestamp: st.deregistered_timestamp.map(|t| t.secs()),
            }
        })
        .collect()
}
