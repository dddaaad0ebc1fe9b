//! Registration: the descriptor, the parameter and the node parts, exported as [`PLUGIN`] and
//! submitted to `inventory`.

use sonprop_core::{
    Eligibility, Isolation, NodeParts, OperationDescriptor, ParamDecl, Parameter, Plugin,
    ProposalPolicy, SonId, State, Timestamp, Watch,
};

use crate::{ReportDownTrigger, ReportDownValidator, SonReportDown, KIND};

/// How many complete witness cycles a report-down proposal lives (default 3, as Peerplays'
/// SON proposals).
#[derive(Parameter)]
#[parameter(name = "son_report_down.witness_cycles", value = u32, default = 3, min = 1)]
pub struct LifetimeCycles;

/// A report's lifetime: [`LifetimeCycles`] complete witness cycles, capped by
/// `maximum_proposal_lifetime`.
pub fn lifetime(state: &State) -> u64 {
    state.witness_cycles_lifetime(state.param::<LifetimeCycles>())
}

const DESCRIPTOR: OperationDescriptor = OperationDescriptor {
    name: KIND,
    description: "report an elected SON down after son_down_time without a heartbeat",
    proposal: Some(ProposalPolicy {
        son_record: true,
        eligible: Eligibility::WitnessOrSon,
        lifetime,
        readiness: Some(crate::rule::readiness),
    }),
    example: || Box::new(SonReportDown { son: SonId(3), down_ts: Timestamp(1_767_229_200) }),
};

/// This crate's registrations, for `Registry::builder().with(&PLUGIN)`.
pub const PLUGIN: Plugin = Plugin {
    operations: &[DESCRIPTOR],
    params: &[ParamDecl::of::<LifetimeCycles>()],
    node: &[NodeParts {
        kind: KIND,
        watch: Watch::ScheduledWitness,
        trigger: Some(|_| Ok(Box::new(ReportDownTrigger))),
        validator: Some(|_| Ok(Box::new(ReportDownValidator))),
        isolation: Isolation::Inline,
    }],
    ..Plugin::new("sonprop-report-down")
};

sonprop_core::inventory::submit! { PLUGIN }
