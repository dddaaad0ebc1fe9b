//! The node-local half: which SONs to propose for deregistration, and whether to approve.

use sonprop_core::{
    async_trait, Deferral, NodeIdentity, PluginError, Proposal, ProposalDraft, State, Subject,
    Trigger, TriggerOutput, Validator, Verdict,
};

use crate::rule::{check_deregister, check_guards, due};
use crate::{SonDeregister, KIND};

/// Drafts a deregistration for every due SON without a live one; reports guard deferrals.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeregisterTrigger;

#[async_trait]
impl Trigger for DeregisterTrigger {
    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let mut out = TriggerOutput::default();
        for son in due(state) {
            if state.live_proposal(KIND, &Subject::Son(son)).is_some() {
                continue;
            }
            match check_guards(state, son) {
                Ok(()) => out.drafts.push(ProposalDraft::new(SonDeregister { son })),
                Err(e) => out
                    .deferred
                    .push(Deferral { subject: Subject::Son(son), reason: e.to_string() }),
            }
        }
        Ok(out)
    }
}

/// Approves a deregistration when the same rule holds over this node's snapshot.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeregisterValidator;

#[async_trait]
impl Validator for DeregisterValidator {
    async fn review(
        &self,
        state: &State,
        proposal: &Proposal,
        _: &NodeIdentity,
    ) -> Result<Verdict, PluginError> {
        let op = proposal
            .only::<SonDeregister>()
            .ok_or_else(|| PluginError::msg("not a son_deregister proposal"))?;
        Ok(Verdict::from_rule(check_deregister(state, op.son)))
    }
}
