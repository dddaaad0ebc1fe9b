//! The `son_deregister` operation.

use serde::{Deserialize, Serialize};
use sonprop_core::{
    AccountId, ApplyContext, Eligibility, Operation, OperationError, ProposalPolicy, SonId,
    SonStatus, State, Subject,
};

use crate::rule::check_due;
use crate::KIND;

/// Deregisters a SON; approved by the SON consensus authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SonDeregister {
    /// The SON.
    pub son: SonId,
}

#[sonprop_core::operation(
    name = "son_deregister",
    description = "deregister a SON in maintenance for son_deregister_time (12 h)",
    proposal = ProposalPolicy {
        son_record: true,
        eligible: Eligibility::ActiveWitness,
        lifetime: crate::registration::lifetime,
        readiness: Some(crate::rule::readiness),
    },
    example = SonDeregister { son: SonId(3) }
)]
impl Operation for SonDeregister {
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Son(self.son))
    }
    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }
    fn check(&self, state: &State) -> Result<(), OperationError> {
        // Guards on this kind are enforced by the ledger itself, for every kind alike.
        check_due(state, self.son).map_err(|e| OperationError::rule(KIND, e))
    }
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        let now = ctx.now();
        let cliff = now.plus(ctx.params().son_vesting_period);
        let mut son = ctx.son(self.son).cloned().ok_or(OperationError::UnknownSon(self.son))?;
        let deposit = std::mem::take(&mut son.deposit);
        son.status = SonStatus::Deregistered;
        son.statistics.deregistered_timestamp = Some(now);
        let owner = son.owner;
        ctx.put_son(son)?;
        // Out of the elected set, hence out of the consensus authority, in the same block.
        ctx.set_elected(self.son, false);
        if deposit > 0 {
            ctx.create_vesting(owner, deposit, format!("son_deposit:{}", self.son), cliff);
        }
        Ok(())
    }
}
