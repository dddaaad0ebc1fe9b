//! The one predicate behind the on-chain check, the trigger and the validator.

use sonprop_core::{SonId, SonStatus, State, Timestamp};

/// Why a SON cannot be reported down (now, with that `down_ts`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportDownError {
    /// No such SON.
    #[error("son {0} does not exist")]
    UnknownSon(SonId),
    /// Only elected SONs are reported.
    #[error("son {0} is not elected")]
    NotElected(SonId),
    /// Only `active` or `request_maintenance` SONs are reported.
    #[error("son {son} is {status}; only active or request_maintenance SONs are reported down")]
    WrongStatus {
        /// The SON.
        son: SonId,
        /// Its status.
        status: SonStatus,
    },
    /// `down_ts` before the last heartbeat: the SON was alive then.
    #[error("son {son}: down time {down_ts} is before its last heartbeat at {last_active}")]
    BeforeLastHeartbeat {
        /// The SON.
        son: SonId,
        /// The claimed down time.
        down_ts: Timestamp,
        /// Its last heartbeat.
        last_active: Timestamp,
    },
    /// `down_ts` after head time.
    #[error("son {son}: down time {down_ts} is after head time {head}")]
    InFuture {
        /// The SON.
        son: SonId,
        /// The claimed down time.
        down_ts: Timestamp,
        /// Head time.
        head: Timestamp,
    },
    /// Not silent long enough.
    #[error("son {son} has been silent {silent} s since {down_ts}; son_down_time is {needed} s")]
    NotDownLongEnough {
        /// The SON.
        son: SonId,
        /// The claimed down time.
        down_ts: Timestamp,
        /// Seconds since then.
        silent: u64,
        /// `son_down_time`.
        needed: u64,
    },
}

/// Whether `son` may be reported down as of `down_ts`, at the state's head time.
pub fn check_report(state: &State, son: SonId, down_ts: Timestamp) -> Result<(), ReportDownError> {
    let s = state.son(son).ok_or(ReportDownError::UnknownSon(son))?;
    report_rule(state, son, s.status, s.statistics.last_active_timestamp, down_ts)
}

/// The rule over the values it reads, so [`check_report`] (from the SON row) and [`due`] (from
/// the index keys) apply the very same predicate.
fn report_rule(
    state: &State,
    son: SonId,
    status: SonStatus,
    last_active: Timestamp,
    down_ts: Timestamp,
) -> Result<(), ReportDownError> {
    if !state.is_elected(son) {
        return Err(ReportDownError::NotElected(son));
    }
    if !matches!(status, SonStatus::Active | SonStatus::RequestMaintenance) {
        return Err(ReportDownError::WrongStatus { son, status });
    }
    if down_ts < last_active {
        return Err(ReportDownError::BeforeLastHeartbeat { son, down_ts, last_active });
    }
    let head = state.head_time();
    if down_ts > head {
        return Err(ReportDownError::InFuture { son, down_ts, head });
    }
    let needed = state.params().son_down_time;
    let silent = head.since(down_ts);
    if silent < needed {
        return Err(ReportDownError::NotDownLongEnough { son, down_ts, silent, needed });
    }
    Ok(())
}

/// The SONs due to be reported, with the `down_ts` to report (their last heartbeat, which is
/// their election time if they never sent one): range queries over the index partitions of
/// active and request_maintenance SONs, deciding from the index keys without reading the rows.
pub fn due(state: &State) -> impl Iterator<Item = (SonId, Timestamp)> + '_ {
    // last_active <= head - son_down_time  <=>  last_active < head - son_down_time + 1
    let before = state.head_time().minus(state.params().son_down_time).plus(1);
    [SonStatus::Active, SonStatus::RequestMaintenance]
        .into_iter()
        .flat_map(move |status| {
            state.son_ids_inactive_since(status, before).map(move |(ts, id)| (status, ts, id))
        })
        .filter(move |(status, ts, id)| report_rule(state, *id, *status, *ts, *ts).is_ok())
        .map(|(_, ts, id)| (id, ts))
}

/// Whether reporting `subject` down is due, for explanations: the same rule as [`check_report`]
/// with its last heartbeat as the down time, and when it becomes due if it is not yet.
pub fn readiness(state: &State, subject: &sonprop_core::Subject) -> sonprop_core::Readiness {
    use sonprop_core::Readiness;
    let Some(son) = subject.son() else {
        return Readiness::NotAbout;
    };
    let Some(s) = state.son(son) else { return Readiness::NotAbout };
    let last = s.statistics.last_active_timestamp;
    let needed = state.params().son_down_time;
    let due_at = last.plus(needed);
    let why = format!("reported down son_down_time ({needed} s) after its last heartbeat");
    match report_rule(state, son, s.status, last, last) {
        Ok(()) => Readiness::Due { since: Some(due_at), why },
        Err(ReportDownError::NotDownLongEnough { .. }) => Readiness::DueAt { at: due_at, why },
        Err(e) => Readiness::NotDue { why: e.to_string() },
    }
}
