//! The node-local half: who to report, and whether to approve a report.

use sonprop_core::{
    async_trait, NodeIdentity, PluginError, Proposal, ProposalDraft, State, Trigger, TriggerOutput,
    Validator, Verdict,
};

use crate::rule::{check_report, due};
use crate::SonReportDown;

/// Drafts a report for every SON silent for `son_down_time`, except this node's own.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReportDownTrigger;

#[async_trait]
impl Trigger for ReportDownTrigger {
    async fn drafts(
        &self,
        state: &State,
        node: &NodeIdentity,
    ) -> Result<TriggerOutput, PluginError> {
        Ok(due(state)
            .filter(|(son, _)| node.son != Some(*son))
            .map(|(son, down_ts)| ProposalDraft::new(SonReportDown { son, down_ts }))
            .collect::<Vec<_>>()
            .into())
    }
}

/// Approves a report when the same predicate holds over this node's snapshot.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReportDownValidator;

#[async_trait]
impl Validator for ReportDownValidator {
    async fn review(
        &self,
        state: &State,
        proposal: &Proposal,
        _: &NodeIdentity,
    ) -> Result<Verdict, PluginError> {
        let op = proposal
            .only::<SonReportDown>()
            .ok_or_else(|| PluginError::msg("not a son_report_down proposal"))?;
        Ok(Verdict::from_rule(check_report(state, op.son, op.down_ts)))
    }
}
