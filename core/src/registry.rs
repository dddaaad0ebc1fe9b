//! The operation registry: one descriptor per operation kind, collected with `inventory` or
//! added explicitly, sorted by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ids::{AccountId, SonId};
use crate::operation::Operation;
use crate::plugin::{Trigger, Validator};
use crate::state::State;

/// Who may create a proposal of a kind.
#[derive(Debug, Clone, Copy)]
pub enum Eligibility {
    /// The owner of an active witness.
    ActiveWitness,
    /// The owner of an elected SON.
    ElectedSon,
    /// Either.
    WitnessOrSon,
    /// A custom rule, with a description for error messages.
    Custom {
        /// Who may, in words (`"the SON's own owner"`).
        rule: &'static str,
        /// The predicate.
        allowed: fn(&State, AccountId) -> bool,
    },
}

impl Eligibility {
    /// Whether `account` may propose.
    pub fn allows(&self, state: &State, account: AccountId) -> bool {
        match self {
            Eligibility::ActiveWitness => state.is_active_witness_account(account),
            Eligibility::ElectedSon => state.elected_son_of(account).is_some(),
            Eligibility::WitnessOrSon => {
                state.is_active_witness_account(account) || state.elected_son_of(account).is_some()
            }
            Eligibility::Custom { allowed, .. } => allowed(state, account),
        }
    }

    /// The rule in words.
    pub fn describe(&self) -> &'static str {
        match self {
            Eligibility::ActiveWitness => "only active witnesses may",
            Eligibility::ElectedSon => "only elected SONs may",
            Eligibility::WitnessOrSon => "only active witnesses and elected SONs may",
            Eligibility::Custom { rule, .. } => rule,
        }
    }
}

/// How an operation kind may be proposed.
#[derive(Debug, Clone, Copy)]
pub struct ProposalPolicy {
    /// A SON proposal kind: the ledger keeps a son proposal record for it, allows one live
    /// proposal per `(kind, subject)`, and the operation must be its proposal's only one.
    pub son_record: bool,
    /// Who may propose it.
    pub eligible: Eligibility,
    /// Its lifetime in seconds, given the state: the default for drafts and the on-chain cap.
    pub lifetime: fn(&State) -> u64,
    /// Builds the node-local trigger, if the kind has one.
    pub trigger: Option<fn() -> Box<dyn Trigger>>,
    /// Builds the node-local validator, if the kind has one.
    pub validator: Option<fn() -> Box<dyn Validator>>,
}

/// Everything the framework needs to know about one operation kind.
#[derive(Debug, Clone, Copy)]
pub struct OperationDescriptor {
    /// The stable kind name, equal to the operation's typetag name and `Operation::kind`.
    pub name: &'static str,
    /// One line for humans.
    pub description: &'static str,
    /// `Some` if it may be carried by proposals.
    pub proposal: Option<ProposalPolicy>,
    /// A representative instance (JSON snapshots, documentation).
    pub example: fn() -> Box<dyn Operation>,
}

/// A check another crate can place in front of every deregistration: "this SON is still needed"
/// (for example, a required signer of pending sidechain work). Consulted by the deregister
/// trigger and by its on-chain check; must be deterministic over the state.
#[derive(Debug, Clone, Copy)]
pub struct DeregistrationGuard {
    /// A stable name.
    pub name: &'static str,
    /// `Some(reason)` to defer the SON's deregistration.
    pub defer: fn(&State, SonId) -> Option<String>,
}

/// What an operation crate exports for explicit registration.
#[derive(Debug, Clone, Copy)]
pub struct Plugin {
    /// The crate's name.
    pub name: &'static str,
    /// Its operations.
    pub operations: &'static [OperationDescriptor],
    /// Its deregistration guards.
    pub guards: &'static [DeregistrationGuard],
}

inventory::collect!(OperationDescriptor);
inventory::collect!(DeregistrationGuard);

/// A registry that could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Two operation descriptors with one name.
    #[error(
        "operation kind `{0}` is registered twice (a crate both discovered and added explicitly?)"
    )]
    DuplicateOperation(&'static str),
    /// Two guards with one name.
    #[error("deregistration guard `{0}` is registered twice")]
    DuplicateGuard(&'static str),
}

/// The operation kinds and guards a ledger and scheduler run with, sorted by name.
#[derive(Debug, Default)]
pub struct Registry {
    operations: BTreeMap<&'static str, OperationDescriptor>,
    guards: BTreeMap<&'static str, DeregistrationGuard>,
}

impl Registry {
    /// A builder holding the core operations.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default().with(&crate::registration::PLUGIN)
    }

    /// The core operations plus everything linked into the binary that registered through
    /// `inventory`. Fails on duplicate names.
    pub fn discover() -> Result<Registry, RegistryError> {
        Registry::builder().discovered().build()
    }

    /// The descriptor of a kind.
    pub fn operation(&self, name: &str) -> Option<&OperationDescriptor> {
        self.operations.get(name)
    }

    /// All descriptors, sorted by name.
    pub fn operations(&self) -> impl Iterator<Item = &OperationDescriptor> + '_ {
        self.operations.values()
    }

    /// All deregistration guards, sorted by name.
    pub fn guards(&self) -> impl Iterator<Item = &DeregistrationGuard> + '_ {
        self.guards.values()
    }

    /// The first guard (by name) that defers deregistering `son`, with its reason.
    pub fn deregistration_deferral(
        &self,
        state: &State,
        son: SonId,
    ) -> Option<(&'static str, String)> {
        self.guards.values().find_map(|g| (g.defer)(state, son).map(|why| (g.name, why)))
    }

    /// Shared handle.
    pub fn into_arc(self) -> Arc<Registry> {
        Arc::new(self)
    }
}

/// Collects descriptors; `build` checks names are unique.
#[derive(Debug, Default)]
pub struct RegistryBuilder {
    operations: Vec<OperationDescriptor>,
    guards: Vec<DeregistrationGuard>,
}

impl RegistryBuilder {
    /// Adds a crate's operations and guards.
    pub fn with(mut self, plugin: &Plugin) -> Self {
        self.operations.extend_from_slice(plugin.operations);
        self.guards.extend_from_slice(plugin.guards);
        self
    }

    /// Adds one operation.
    pub fn operation(mut self, d: OperationDescriptor) -> Self {
        self.operations.push(d);
        self
    }

    /// Adds one guard.
    pub fn guard(mut self, g: DeregistrationGuard) -> Self {
        self.guards.push(g);
        self
    }

    /// Adds everything registered through `inventory` in the linked crates.
    pub fn discovered(mut self) -> Self {
        self.operations.extend(inventory::iter::<OperationDescriptor>.into_iter().copied());
        self.guards.extend(inventory::iter::<DeregistrationGuard>.into_iter().copied());
        self
    }

    /// The registry, or the first duplicate name (in name order, so the error is stable).
    pub fn build(mut self) -> Result<Registry, RegistryError> {
        self.operations.sort_by_key(|d| d.name);
        self.guards.sort_by_key(|g| g.name);
        let mut reg = Registry::default();
        for d in self.operations {
            if reg.operations.insert(d.name, d).is_some() {
                return Err(RegistryError::DuplicateOperation(d.name));
            }
        }
        for g in self.guards {
            if reg.guards.insert(g.name, g).is_some() {
                return Err(RegistryError::DuplicateGuard(g.name));
            }
        }
        Ok(reg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &'static str) -> OperationDescriptor {
        OperationDescriptor { name, ..crate::registration::PLUGIN.operations[0] }
    }

    #[test]
    fn duplicate_operation_names_are_a_build_error() {
        let err = Registry::builder().operation(named("x")).operation(named("x")).build();
        assert_eq!(err.expect_err("duplicate"), RegistryError::DuplicateOperation("x"));
        // A core name cannot be taken either.
        let err = Registry::builder().operation(named("son_heartbeat")).build();
        assert_eq!(err.expect_err("duplicate"), RegistryError::DuplicateOperation("son_heartbeat"));
    }

    #[test]
    fn duplicate_guard_names_are_a_build_error() {
        let g = DeregistrationGuard { name: "g", defer: |_, _| None };
        let err = Registry::builder().guard(g).guard(g).build();
        assert_eq!(err.expect_err("duplicate"), RegistryError::DuplicateGuard("g"));
    }

    #[test]
    fn iteration_is_sorted_by_name_whatever_the_registration_order() {
        let reg = Registry::builder()
            .operation(named("zeta"))
            .operation(named("alpha"))
            .build()
            .expect("ok");
        let names: Vec<_> = reg.operations().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert!(names.contains(&"alpha") && names.contains(&"zeta"));
    }

    #[test]
    fn every_registry_holds_the_core_operations() {
        let reg = Registry::discover().expect("no duplicates among linked crates");
        for kind in ["proposal_create", "proposal_delete", "proposal_update", "son_heartbeat"] {
            assert!(reg.operation(kind).is_some(), "{kind}");
        }
    }

    #[test]
    fn core_examples_carry_their_descriptor_name_as_kind_and_json_tag() {
        for d in crate::registration::PLUGIN.operations {
            let op = (d.example)();
            assert_eq!(op.kind(), d.name);
            let json = serde_json::to_value(&op).expect("serialises");
            assert_eq!(json["kind"], d.name, "typetag name of {}", d.name);
        }
    }
}
