//! Registration: the descriptor, submitted to `inventory` and exported as [`PLUGIN`].

use sonprop_core::{Eligibility, OperationDescriptor, Plugin, ProposalPolicy, SonId, State};

use crate::{DeregisterTrigger, DeregisterValidator, SonDeregister, KIND};

/// A deregister proposal's lifetime: `deregister_witness_cycles` complete witness cycles
/// (`block_interval × active witnesses` each), capped by `maximum_proposal_lifetime`.
pub fn lifetime(state: &State) -> u64 {
    state.witness_cycles_lifetime(state.params().deregister_witness_cycles)
}

const DESCRIPTOR: OperationDescriptor = OperationDescriptor {
    name: KIND,
    description: "deregister a SON in maintenance for son_deregister_time (12 h)",
    proposal: Some(ProposalPolicy {
        son_record: true,
        eligible: Eligibility::ActiveWitness,
        lifetime,
        trigger: Some(|| Box::new(DeregisterTrigger)),
        validator: Some(|| Box::new(DeregisterValidator)),
    }),
    example: || Box::new(SonDeregister { son: SonId(3) }),
};

/// This crate's operations, for `Registry::builder().with(&PLUGIN)`.
pub const PLUGIN: Plugin =
    Plugin { name: "sonprop-deregister-son", operations: &[DESCRIPTOR], guards: &[] };

sonprop_core::inventory::submit! { DESCRIPTOR }
