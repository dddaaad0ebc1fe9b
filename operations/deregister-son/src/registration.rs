//! Registration: the descriptor, the parameter and the node parts, exported as [`PLUGIN`] and
//! submitted to `inventory`.

use sonprop_core::{Isolation, NodeParts, ParamDecl, Parameter, Plugin, State, Watch};

use crate::{DeregisterTrigger, DeregisterValidator, SonDeregister, KIND};

/// How many complete witness cycles a deregister proposal lives (default 3: the design's
/// "3 complete witness cycles").
#[derive(Parameter)]
#[parameter(name = "son_deregister.witness_cycles", value = u32, default = 3, min = 1)]
pub struct LifetimeCycles;

/// A deregister proposal's lifetime: [`LifetimeCycles`] complete witness cycles
/// (`block_interval × active witnesses` each), capped by `maximum_proposal_lifetime`.
pub fn lifetime(state: &State) -> u64 {
    state.witness_cycles_lifetime(state.param::<LifetimeCycles>())
}

/// This crate's registrations, for `Registry::builder().with(&PLUGIN)`.
pub const PLUGIN: Plugin = Plugin {
    operations: &[SonDeregister::DESCRIPTOR],
    params: &[ParamDecl::of::<LifetimeCycles>()],
    node: &[NodeParts {
        kind: KIND,
        watch: Watch::ScheduledWitness,
        trigger: Some(|_| Ok(Box::new(DeregisterTrigger))),
        validator: Some(|_| Ok(Box::new(DeregisterValidator))),
        isolation: Isolation::Inline,
    }],
    ..Plugin::new("sonprop-deregister-son")
};

sonprop_core::inventory::submit! { PLUGIN }
