//! Registration: one descriptor, discoverable through `inventory` and exported as [`PLUGIN`].

use sonprop_core::{Eligibility, OperationDescriptor, Plugin, ProposalPolicy, SonId, Timestamp};

use crate::plugin::{default_trigger, default_validator};
use crate::{SonKeyExpiryNotice, KIND};

const DESCRIPTOR: OperationDescriptor = OperationDescriptor {
    name: KIND,
    description: "announce that a SON's sidechain key expires within 7 days",
    proposal: Some(ProposalPolicy {
        son_record: true,
        eligible: Eligibility::WitnessOrSon,
        lifetime: |state| state.witness_cycles_lifetime(3),
        trigger: Some(default_trigger),
        validator: Some(default_validator),
    }),
    example: || {
        Box::new(SonKeyExpiryNotice {
            son: SonId(3),
            sidechain: "bitcoin".into(),
            expires_at: Timestamp(1_767_830_400),
        })
    },
};

/// For explicit registration: `Registry::builder().with(&PLUGIN)`.
pub const PLUGIN: Plugin =
    Plugin { name: "sonprop-example-custom-operation", operations: &[DESCRIPTOR], guards: &[] };

sonprop_core::inventory::submit! { DESCRIPTOR }
