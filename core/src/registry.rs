//! The registry joins the two halves: each operation crate exports one [`Plugin`] (its kinds'
//! on-chain descriptions, tables, parameters and guards, and its kinds' node parts); the
//! [`Registry`] checks them together and splits them into the [`ChainRegistry`] the ledger runs
//! with and the [`NodeRegistry`] schedulers are built from.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::chain::invariant::Invariant;
use crate::chain::model::{
    ChainRegistry, Eligibility, GenesisCheck, Guard, OperationDescriptor, SonCheck,
};
use crate::chain::schema::{ParamDecl, TableDecl};
use crate::node::parts::{NodeParts, NodeRegistry, Watch};

/// What an operation crate exports: everything it registers, in both halves.
/// Const-constructible: `Plugin { operations: &[..], ..Plugin::new("my-crate") }`.
#[derive(Debug, Clone, Copy)]
pub struct Plugin {
    /// The crate's name.
    pub name: &'static str,
    /// Its operation kinds' on-chain descriptions.
    pub operations: &'static [OperationDescriptor],
    /// Its tables.
    pub tables: &'static [TableDecl],
    /// Its chain parameters.
    pub params: &'static [ParamDecl],
    /// Its guards (on any kind, its own or another crate's).
    pub guards: &'static [Guard],
    /// Its kinds' node-local parts.
    pub node: &'static [NodeParts],
    /// A check of the genesis state beyond its parameters' own validation: what the crate
    /// cannot run with (say, more SONs than its scripts can hold). [`Ledger::new`] refuses a
    /// genesis it fails, naming the crate and the reason.
    ///
    /// [`Ledger::new`]: crate::Ledger::new
    pub genesis_check: Option<GenesisCheck>,
    /// A check of a SON's sidechain keys: whether the crate's sidechain can use them (say, a
    /// valid Bitcoin key no other SON registered). Run when a SON is created or changes its
    /// keys (refused if it fails) and when SONs are elected (a SON that fails it is passed
    /// over).
    pub son_check: Option<SonCheck>,
    /// Properties of the chain state the crate promises after every block (a conservation
    /// equation, say): the simulator and the test kit check them after every block.
    pub invariants: &'static [Invariant],
}

impl Plugin {
    /// A plugin that registers nothing yet.
    pub const fn new(name: &'static str) -> Plugin {
        Plugin {
            name,
            operations: &[],
            tables: &[],
            params: &[],
            guards: &[],
            node: &[],
            genesis_check: None,
            son_check: None,
            invariants: &[],
        }
    }
}

inventory::collect!(Plugin);

/// The core operations (heartbeat, proposals, assets). Every registry includes them, so they
/// are not submitted to `inventory`.
pub const CORE: Plugin =
    Plugin { operations: &crate::chain::registration::OPERATIONS, ..Plugin::new("sonprop-core") };

/// A registry that could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Two operation descriptors with one name.
    #[error(
        "operation kind `{0}` is registered twice (a crate both discovered and added explicitly?)"
    )]
    DuplicateOperation(&'static str),
    /// Two tables with one name.
    #[error("table `{0}` is declared twice")]
    DuplicateTable(&'static str),
    /// Two parameters with one name.
    #[error("parameter `{0}` is declared twice, or clashes with a core chain parameter")]
    DuplicateParam(&'static str),
    /// A table or parameter name outside `[a-z0-9_.]`, or without a crate prefix.
    #[error("`{0}` is not a valid table or parameter name (lowercase `<crate>.<name>`)")]
    BadName(&'static str),
    /// Two guards with one name on one kind.
    #[error("guard `{guard}` on `{kind}` is registered twice")]
    DuplicateGuard {
        /// The guarded kind.
        kind: &'static str,
        /// The guard.
        guard: &'static str,
    },
    /// A guard or node part for a kind no crate registers.
    #[error("{what} names operation kind `{kind}`, which is not registered")]
    UnknownKind {
        /// What names it.
        what: String,
        /// The kind.
        kind: &'static str,
    },
    /// Two node parts for one kind.
    #[error("node parts of `{0}` are registered twice")]
    DuplicateNodeParts(&'static str),
    /// A trigger for a kind that cannot be proposed.
    #[error("`{0}` has a trigger but is not proposable: its drafts could never be raised")]
    TriggerForUnproposable(&'static str),
    /// A trigger run by nodes that the kind's eligibility never lets propose.
    #[error(
        "the trigger of `{kind}` runs on {watch}, but {rule} propose it: it would never be raised"
    )]
    WatcherCannotPropose {
        /// The kind.
        kind: &'static str,
        /// Who runs the trigger.
        watch: Watch,
        /// The eligibility rule.
        rule: &'static str,
    },
}

/// The checked registry: the chain half (shared with the ledger's state) and the node half.
#[derive(Debug, Default)]
pub struct Registry {
    chain: Arc<ChainRegistry>,
    node: NodeRegistry,
    invariants: Vec<(&'static str, Invariant)>,
}

impl Registry {
    /// A builder holding the core operations.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default().with(&CORE)
    }

    /// The core operations plus every plugin linked into the binary that registered through
    /// `inventory`. Fails on duplicate names.
    pub fn discover() -> Result<Registry, RegistryError> {
        Registry::builder().discovered().build()
    }

    /// The on-chain half, for [`Ledger::new`](crate::Ledger::new).
    pub fn chain(&self) -> Arc<ChainRegistry> {
        Arc::clone(&self.chain)
    }

    /// Every crate's invariants, with the crate's name, in crate order: for an
    /// [`InvariantWatch`](crate::InvariantWatch) to check after every block.
    pub fn invariants(&self) -> &[(&'static str, Invariant)] {
        &self.invariants
    }

    /// The node half, for [`Scheduler::new`](crate::Scheduler::new).
    pub fn node(&self) -> &NodeRegistry {
        &self.node
    }

    /// The on-chain description of a kind.
    pub fn operation(&self, name: &str) -> Option<&OperationDescriptor> {
        self.chain.operation(name)
    }

    /// All on-chain descriptions, sorted by name.
    pub fn operations(&self) -> impl Iterator<Item = &OperationDescriptor> + '_ {
        self.chain.operations()
    }

    /// Shared handle.
    pub fn into_arc(self) -> Arc<Registry> {
        Arc::new(self)
    }
}

/// Collects plugins; [`RegistryBuilder::build`] checks them together.
#[derive(Debug, Default)]
pub struct RegistryBuilder {
    operations: Vec<OperationDescriptor>,
    tables: Vec<TableDecl>,
    params: Vec<ParamDecl>,
    guards: Vec<Guard>,
    node: Vec<NodeParts>,
    genesis_checks: Vec<(&'static str, GenesisCheck)>,
    son_checks: Vec<(&'static str, SonCheck)>,
    invariants: Vec<(&'static str, Invariant)>,
}

fn valid_name(name: &str) -> bool {
    let ok_chars =
        name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.".contains(&b));
    ok_chars && name.split('.').count() >= 2 && name.split('.').all(|p| !p.is_empty())
}

impl RegistryBuilder {
    /// Adds everything a crate registers.
    pub fn with(mut self, plugin: &Plugin) -> Self {
        self.operations.extend_from_slice(plugin.operations);
        self.tables.extend_from_slice(plugin.tables);
        self.params.extend_from_slice(plugin.params);
        self.guards.extend_from_slice(plugin.guards);
        self.node.extend_from_slice(plugin.node);
        if let Some(check) = plugin.genesis_check {
            self.genesis_checks.push((plugin.name, check));
        }
        if let Some(check) = plugin.son_check {
            self.son_checks.push((plugin.name, check));
        }
        self.invariants.extend(plugin.invariants.iter().map(|i| (plugin.name, *i)));
        self
    }

    /// Adds one operation kind's on-chain description.
    pub fn operation(mut self, d: OperationDescriptor) -> Self {
        self.operations.push(d);
        self
    }

    /// Adds one guard.
    pub fn guard(mut self, g: Guard) -> Self {
        self.guards.push(g);
        self
    }

    /// Adds one kind's node parts.
    pub fn node_parts(mut self, p: NodeParts) -> Self {
        self.node.push(p);
        self
    }

    /// Adds every plugin registered through `inventory` in the linked crates.
    pub fn discovered(mut self) -> Self {
        let mut plugins: Vec<&Plugin> = inventory::iter::<Plugin>.into_iter().collect();
        plugins.sort_by_key(|p| p.name);
        for p in plugins {
            self = self.with(p);
        }
        self
    }

    /// The registry, or the first problem found (in name order, so the error is stable).
    pub fn build(mut self) -> Result<Registry, RegistryError> {
        self.operations.sort_by_key(|d| d.name);
        self.tables.sort_by_key(|d| d.name);
        self.params.sort_by_key(|d| d.name);
        self.guards.sort_by_key(|g| (g.kind, g.name));
        self.node.sort_by_key(|p| p.kind);
        let mut chain = ChainRegistry::default();
        self.genesis_checks.sort_by_key(|(name, _)| *name);
        chain.genesis_checks = self.genesis_checks;
        self.son_checks.sort_by_key(|(name, _)| *name);
        chain.son_checks = self.son_checks;
        for d in self.operations {
            if chain.operations.insert(d.name, d).is_some() {
                return Err(RegistryError::DuplicateOperation(d.name));
            }
        }
        for t in self.tables {
            if !valid_name(t.name) {
                return Err(RegistryError::BadName(t.name));
            }
            if chain.tables.insert(t.name, t).is_some() {
                return Err(RegistryError::DuplicateTable(t.name));
            }
        }
        for p in self.params {
            if !valid_name(p.name) {
                return Err(RegistryError::BadName(p.name));
            }
            if chain.params.insert(p.name, p).is_some() {
                return Err(RegistryError::DuplicateParam(p.name));
            }
        }
        for g in self.guards {
            if !chain.operations.contains_key(g.kind) {
                let what = format!("guard `{}`", g.name);
                return Err(RegistryError::UnknownKind { what, kind: g.kind });
            }
            let on_kind = chain.guards.entry(g.kind).or_default();
            if on_kind.insert(g.name, g).is_some() {
                return Err(RegistryError::DuplicateGuard { kind: g.kind, guard: g.name });
            }
        }
        let mut parts = BTreeMap::new();
        for p in self.node {
            let Some(d) = chain.operations.get(p.kind) else {
                return Err(RegistryError::UnknownKind { what: "node parts".into(), kind: p.kind });
            };
            // A trigger watched by every SON sends operations of its own; the others draft
            // proposals, which need a proposable kind its watchers may propose.
            if p.trigger.is_some() && !p.watch.sends_operations() {
                let policy = d.proposal.ok_or(RegistryError::TriggerForUnproposable(p.kind))?;
                let can = match (p.watch, policy.eligible) {
                    (Watch::ScheduledWitness, Eligibility::ElectedSon) => false,
                    (Watch::ElectedSons, Eligibility::ActiveWitness) => false,
                    // A custom rule cannot be judged here; the ledger still checks it.
                    _ => true,
                };
                if !can {
                    return Err(RegistryError::WatcherCannotPropose {
                        kind: p.kind,
                        watch: p.watch,
                        rule: policy.eligible.describe(),
                    });
                }
            }
            if parts.insert(p.kind, p).is_some() {
                return Err(RegistryError::DuplicateNodeParts(p.kind));
            }
        }
        self.invariants.sort_by_key(|(plugin, i)| (*plugin, i.name));
        Ok(Registry {
            chain: Arc::new(chain),
            node: NodeRegistry { parts },
            invariants: self.invariants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ids::Subject;

    fn named(name: &'static str) -> OperationDescriptor {
        OperationDescriptor { name, ..crate::chain::registration::OPERATIONS[0] }
    }

    fn proposable(name: &'static str, eligible: Eligibility) -> OperationDescriptor {
        crate::testkit::probe::descriptor(name, eligible)
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
    fn duplicate_guard_names_on_one_kind_are_a_build_error() {
        let g = Guard { name: "g", kind: "son_heartbeat", defer: |_, _: &Subject| None };
        let err = Registry::builder().guard(g).guard(g).build();
        assert_eq!(
            err.expect_err("duplicate"),
            RegistryError::DuplicateGuard { kind: "son_heartbeat", guard: "g" }
        );
        let unknown = Guard { kind: "no_such_kind", ..g };
        let err = Registry::builder().guard(unknown).build().expect_err("unknown kind");
        assert!(matches!(err, RegistryError::UnknownKind { kind: "no_such_kind", .. }), "{err}");
    }

    #[test]
    fn a_trigger_its_watchers_could_never_propose_is_a_build_error() {
        use crate::node::plugin::{NodeIdentity, PluginError, Trigger, TriggerOutput};
        struct Nothing;
        #[async_trait::async_trait]
        impl Trigger for Nothing {
            async fn drafts(
                &self,
                _: &crate::State,
                _: &NodeIdentity,
            ) -> Result<TriggerOutput, PluginError> {
                Ok(TriggerOutput::default())
            }
        }
        let parts = |kind, watch| NodeParts {
            kind,
            watch,
            trigger: Some(|_| Ok(Box::new(Nothing))),
            validator: None,
            isolation: crate::node::parts::Isolation::Thread,
        };
        let cases = [
            ("sons_only", Eligibility::ElectedSon, Watch::ScheduledWitness, false),
            ("witnesses_only", Eligibility::ActiveWitness, Watch::ElectedSons, false),
            ("sons_ok", Eligibility::ElectedSon, Watch::ElectedSons, true),
            ("witnesses_ok", Eligibility::ActiveWitness, Watch::ScheduledWitness, true),
            ("either", Eligibility::WitnessOrSon, Watch::ElectedSons, true),
        ];
        for (kind, eligible, watch, ok) in cases {
            let built = Registry::builder()
                .operation(proposable(kind, eligible))
                .node_parts(parts(kind, watch))
                .build();
            match (ok, built) {
                (true, Ok(_)) => {}
                (false, Err(RegistryError::WatcherCannotPropose { kind: k, .. })) => {
                    assert_eq!(k, kind)
                }
                (_, other) => panic!("{kind}: {other:?}"),
            }
        }
        let err = Registry::builder()
            .node_parts(parts("son_heartbeat", Watch::ScheduledWitness))
            .build()
            .expect_err("heartbeats are not proposable");
        assert_eq!(err, RegistryError::TriggerForUnproposable("son_heartbeat"));
    }

    #[test]
    fn table_and_parameter_names_are_namespaced_and_unique() {
        use crate::chain::schema::{Parameter, TableSchema};
        struct T;
        impl TableSchema for T {
            const NAME: &'static str = "test.rows";
            type Key = u64;
            type Value = u64;
        }
        struct Bad;
        impl TableSchema for Bad {
            const NAME: &'static str = "Rows";
            type Key = u64;
            type Value = u64;
        }
        struct P;
        impl Parameter for P {
            const NAME: &'static str = "test.p";
            const DESCRIPTION: &'static str = "p";
            type Value = u32;
            fn default_value() -> u32 {
                1
            }
        }
        const TWICE: Plugin = Plugin {
            tables: &[TableDecl::of::<T>(), TableDecl::of::<T>()],
            ..Plugin::new("twice")
        };
        const BAD: Plugin = Plugin { tables: &[TableDecl::of::<Bad>()], ..Plugin::new("bad") };
        const PARAMS: Plugin =
            Plugin { params: &[ParamDecl::of::<P>(), ParamDecl::of::<P>()], ..Plugin::new("p") };
        let err = |p: &Plugin| Registry::builder().with(p).build().expect_err("refused");
        assert_eq!(err(&TWICE), RegistryError::DuplicateTable("test.rows"));
        assert_eq!(err(&BAD), RegistryError::BadName("Rows"));
        assert_eq!(err(&PARAMS), RegistryError::DuplicateParam("test.p"));
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
        for kind in [
            "asset_issue",
            "asset_reserve",
            "asset_transfer",
            "proposal_create",
            "proposal_delete",
            "proposal_update",
            "son_heartbeat",
        ] {
            assert!(reg.operation(kind).is_some(), "{kind}");
        }
    }

    #[test]
    fn core_examples_carry_their_descriptor_name_as_kind_and_json_tag() {
        for d in CORE.operations {
            let op = (d.example)();
            assert_eq!(op.kind(), d.name);
            let json = serde_json::to_value(&op).expect("serialises");
            assert_eq!(json["kind"], d.name, "typetag name of {}", d.name);
        }
    }
}
