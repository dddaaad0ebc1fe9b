//! Registration: the descriptor, the parameter and the node parts, exported as [`PLUGIN`] and
//! submitted to `inventory`.

use sonprop_core::{Isolation, NodeParts, ParamDecl, Parameter, Plugin, State, Watch};

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

/// This crate's registrations, for `Registry::builder().with(&PLUGIN)`.
pub const PLUGIN: Plugin = Plugin {
    operations: &[SonReportDown::DESCRIPTOR],
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
