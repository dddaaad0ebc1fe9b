//! The `son_report_down` operation.

use serde::{Deserialize, Serialize};
use sonprop_core::{
    AccountId, ApplyContext, Eligibility, Operation, OperationError, ProposalPolicy, SonId,
    SonStatus, State, Subject, Timestamp,
};

use crate::rule::check_report;
use crate::KIND;

/// Reports a SON down as of `down_ts`; approved by the SON consensus authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SonReportDown {
    /// The SON.
    pub son: SonId,
    /// When it went down: its last heartbeat.
    pub down_ts: Timestamp,
}

#[sonprop_core::operation(
    name = "son_report_down",
    description = "report an elected SON down after son_down_time without a heartbeat",
    proposal = ProposalPolicy {
        son_record: true,
        eligible: Eligibility::WitnessOrSon,
        lifetime: crate::registration::lifetime,
        readiness: Some(crate::rule::readiness),
    },
    example = SonReportDown { son: SonId(3), down_ts: Timestamp(1_767_229_200) }
)]
impl Operation for SonReportDown {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Son(self.son))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_report(state, self.son, self.down_ts).map_err(|e| OperationError::rule(KIND, e))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let mut son = ctx.son(self.son).cloned().ok_or(OperationError::UnknownSon(self.son))?;
        son.status = SonStatus::InMaintenance;
        son.statistics.last_down_timestamp = self.down_ts;
        ctx.put_son(son)
    }
}
