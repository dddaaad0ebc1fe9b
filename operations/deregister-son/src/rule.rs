//! The one predicate behind the on-chain check, the trigger and the validator.

use sonprop_core::{SonId, SonStatus, State, Subject, Timestamp};

/// Why a SON cannot be deregistered now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeregisterError {
    /// No such SON.
    #[error("son {0} does not exist")]
    UnknownSon(SonId),
    /// Only SONs in maintenance are deregistered.
    #[error("son {son} is {status}; only in_maintenance SONs are deregistered")]
    NotInMaintenance {
        /// The SON.
        son: SonId,
        /// Its status.
        status: SonStatus,
    },
    /// Down for less than `son_deregister_time`.
    #[error(
        "son {son} has been down since {last_down} ({down} s); son_deregister_time is {needed} s"
    )]
    TooEarly {
        /// The SON.
        son: SonId,
        /// Its `last_down_timestamp`.
        last_down: Timestamp,
        /// Seconds since then.
        down: u64,
        /// `son_deregister_time`.
        needed: u64,
    },
    /// A guard defers it.
    #[error("deregistration of son {son} is deferred by {guard}: {reason}")]
    Deferred {
        /// The SON.
        son: SonId,
        /// The guard's name.
        guard: &'static str,
        /// The guard's reason.
        reason: String,
    },
}

/// The time rule alone: `in_maintenance` and `head_time - last_down_timestamp >=
/// son_deregister_time`.
pub fn check_due(state: &State, son: SonId) -> Result<(), DeregisterError> {
    let s = state.son(son).ok_or(DeregisterError::UnknownSon(son))?;
    time_rule(state, son, s.status, s.statistics.last_down_timestamp)
}

/// The time rule over the values it reads, so [`check_due`] (from the SON row) and [`due`]
/// (from the index keys) apply the very same predicate.
fn time_rule(
    state: &State,
    son: SonId,
    status: SonStatus,
    last_down: Timestamp,
) -> Result<(), DeregisterError> {
    if status != SonStatus::InMaintenance {
        return Err(DeregisterError::NotInMaintenance { son, status });
    }
    let down = state.head_time().since(last_down);
    let needed = state.params().son_deregister_time;
    if down < needed {
        return Err(DeregisterError::TooEarly { son, last_down, down, needed });
    }
    Ok(())
}

/// Whether a guard on `son_deregister` defers deregistering `son`.
pub fn check_guards(state: &State, son: SonId) -> Result<(), DeregisterError> {
    match state.deferral(crate::KIND, &Subject::Son(son)) {
        Some((guard, reason)) => Err(DeregisterError::Deferred { son, guard, reason }),
        None => Ok(()),
    }
}

/// The full rule: due, and no deregistration guard defers it.
pub fn check_deregister(state: &State, son: SonId) -> Result<(), DeregisterError> {
    check_due(state, son)?;
    check_guards(state, son)
}

/// The SONs whose time rule holds, oldest outage first: one range query over the index of SONs
/// in maintenance, deciding from the index keys without reading the SON rows.
pub fn due(state: &State) -> impl Iterator<Item = SonId> + '_ {
    let cutoff = state.head_time().minus(state.params().son_deregister_time);
    state
        .son_ids_down_since(SonStatus::InMaintenance, cutoff)
        .filter(move |(down, id)| time_rule(state, *id, SonStatus::InMaintenance, *down).is_ok())
        .map(|(_, id)| id)
}

/// Whether deregistering `subject` is due by the time rule, for explanations (guards are
/// reported beside it by `State::explain`), and when it becomes due if it is not yet.
pub fn readiness(state: &State, subject: &Subject) -> sonprop_core::Readiness {
    use sonprop_core::Readiness;
    let Some(son) = subject.son() else {
        return Readiness::NotAbout;
    };
    let Some(s) = state.son(son) else { return Readiness::NotAbout };
    let last_down = s.statistics.last_down_timestamp;
    let needed = state.params().son_deregister_time;
    let due_at = last_down.plus(needed);
    let why = format!("deregistered son_deregister_time ({needed} s) after it went down");
    match time_rule(state, son, s.status, last_down) {
        Ok(()) => Readiness::Due { since: Some(due_at), why },
        Err(DeregisterError::TooEarly { .. }) => Readiness::DueAt { at: due_at, why },
        Err(e) => Readiness::NotDue { why: e.to_string() },
    }
}
