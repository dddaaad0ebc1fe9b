//! Registration: the descriptor, submitted to `inventory` and exported as [`PLUGIN`].

use sonprop_core::{
    Eligibility, OperationDescriptor, Plugin, ProposalPolicy, SonId, State, Timestamp,
};

use crate::{ReportDownTrigger, ReportDownValidator, SonReportDown, KIND};

/// Reports live for the same complete witness cycles as deregistrations.
fn lifetime(state: &State) -> u64 {
    state.witness_cycles_lifetime(state.params().deregister_witness_cycles)
}

const DESCRIPTOR: OperationDescriptor = OperationDescriptor {
    name: KIND,
    description: "report an elected SON down after son_down_time without a heartbeat",
    proposal: Some(ProposalPolicy {
        son_record: true,
        eligible: Eligibility::WitnessOrSon,
        lifetime,
        trigger: Some(|| Box::new(ReportDownTrigger)),
        validator: Some(|| Box::new(ReportDownValidator)),
    }),
    example: || Box::new(SonReportDown { son: SonId(3), down_ts: Timestamp(1_767_229_200) }),
};

/// This crate's operations, for `Registry::builder().with(&PLUGIN)`.
pub const PLUGIN: Plugin =
    Plugin { name: "sonprop-report-down", operations: &[DESCRIPTOR], guards: &[] };

sonprop_core::inventory::submit! { DESCRIPTOR }
