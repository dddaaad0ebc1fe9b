//! Peerplays' strategy for the report-down and deregister checks, kept here, in the bench code
//! only, as the baseline the indexed triggers are measured against. It follows the loops of
//! Peerplays' sidechain plugin (`peerplays_sidechain_plugin.cpp`) as they are, run by the node of
//! the scheduled SON once per block:
//!
//! - the approval step copies the live proposals once (Peerplays walks a copy of them to find
//!   those to approve);
//! - report-down walks the *active* SONs only (`gpo.active_sons`), skipping itself and the SONs
//!   already being reported down, a set built by one walk over the son proposal records;
//! - deregistration walks *every* SON ever registered (there is no status index; deregistered
//!   SONs are never deleted), skipping those with a deregistration record.

use std::collections::BTreeSet;

use sonprop_core::{NodeIdentity, Proposal, SonId, SonStatus, State, Subject, Timestamp};

/// The SONs with a live proposal of `kind`: one walk over every son proposal record.
fn being_proposed(state: &State, kind: &str) -> BTreeSet<SonId> {
    state
        .son_proposals()
        .iter()
        .filter(|(_, r)| r.kind == kind)
        .filter_map(|(_, r)| r.subject.son())
        .collect()
}

/// The approval step's copy of the live proposals.
pub fn copy_proposals(state: &State) -> Vec<Proposal> {
    state.proposals().iter().map(|(_, p)| p.clone()).collect()
}

/// The SONs to report down, with their `down_ts`: the active SONs, walked.
pub fn report_down(state: &State, node: &NodeIdentity) -> Vec<(SonId, Timestamp)> {
    let reported = being_proposed(state, sonprop_report_down::KIND);
    let head = state.head_time();
    let down_time = state.params().son_down_time;
    let mut out = Vec::new();
    for id in state.globals().elected_sons.iter() {
        if node.son == Some(*id) || reported.contains(id) {
            continue;
        }
        let Some(son) = state.son(*id) else { continue };
        if !matches!(son.status, SonStatus::Active | SonStatus::RequestMaintenance) {
            continue;
        }
        let last = son.statistics.last_active_timestamp;
        if last <= head && head.since(last) >= down_time {
            out.push((*id, last));
        }
    }
    out
}

/// The SONs to propose for deregistration: every SON ever registered, walked.
pub fn deregister(state: &State) -> Vec<SonId> {
    let proposed = being_proposed(state, sonprop_deregister_son::KIND);
    let head = state.head_time();
    let needed = state.params().son_deregister_time;
    let mut out = Vec::new();
    for (id, son) in state.sons().iter() {
        if son.status != SonStatus::InMaintenance
            || head.since(son.statistics.last_down_timestamp) < needed
            || proposed.contains(id)
        {
            continue;
        }
        if state.deferral(sonprop_deregister_son::KIND, &Subject::Son(*id)).is_some() {
            continue;
        }
        out.push(*id);
    }
    out
}
