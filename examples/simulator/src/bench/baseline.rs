//! The Peerplays strategy for the report-down and deregister triggers, kept here, in the bench
//! code only, as the baseline the indexed triggers are measured against.
//!
//! Every block it copies every live proposal (as Peerplays' plugin does before approving), walks
//! every SON ever registered (deregistered ones are never deleted and there is no status index),
//! and checks for an existing proposal by scanning every son proposal record.

use sonprop_core::{NodeIdentity, Proposal, SonId, SonStatus, State, Subject, Timestamp};

fn has_record(state: &State, kind: &str, son: SonId) -> bool {
    let subject = Subject::Son(son);
    state.son_proposals().iter().any(|(_, r)| r.kind == kind && r.subject == subject)
}

fn copy_proposals(state: &State) -> Vec<Proposal> {
    state.proposals().iter().map(|(_, p)| p.clone()).collect()
}

/// The SONs to report down, with their `down_ts`, by full scan.
pub fn report_down(state: &State, node: &NodeIdentity) -> Vec<(SonId, Timestamp)> {
    let copied = copy_proposals(state);
    std::hint::black_box(&copied);
    let head = state.head_time();
    let down_time = state.params().son_down_time;
    let mut out = Vec::new();
    for (id, son) in state.sons().iter() {
        if !matches!(son.status, SonStatus::Active | SonStatus::RequestMaintenance)
            || !state.is_elected(*id)
        {
            continue;
        }
        let last = son.statistics.last_active_timestamp;
        if last > head || head.since(last) < down_time || node.son == Some(*id) {
            continue;
        }
        if !has_record(state, sonprop_report_down::KIND, *id) {
            out.push((*id, last));
        }
    }
    out
}

/// The SONs to propose for deregistration, by full scan.
pub fn deregister(state: &State) -> Vec<SonId> {
    let copied = copy_proposals(state);
    std::hint::black_box(&copied);
    let head = state.head_time();
    let needed = state.params().son_deregister_time;
    let mut out = Vec::new();
    for (id, son) in state.sons().iter() {
        if son.status != SonStatus::InMaintenance
            || head.since(son.statistics.last_down_timestamp) < needed
        {
            continue;
        }
        if state.deferral(sonprop_deregister_son::KIND, &Subject::Son(*id)).is_some() {
            continue;
        }
        if !has_record(state, sonprop_deregister_son::KIND, *id) {
            out.push(*id);
        }
    }
    out
}
