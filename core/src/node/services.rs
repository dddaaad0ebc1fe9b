//! Node services: what whoever composes a node (the simulator, a test, a real node) hands the
//! node-local parts of each kind — a Bitcoin client, a key store, a clock — typed, per node.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::node::plugin::NodeIdentity;

/// The services one node offers its triggers and validators, one value per type.
///
/// A service is usually a shared handle, such as `Arc<dyn BitcoinSource>`: constructors take a
/// clone. Each node gets its own `Services`, so simulated nodes can see different worlds.
#[derive(Clone, Default)]
pub struct Services {
    map: BTreeMap<TypeId, (&'static str, Arc<dyn Any + Send + Sync>)>,
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.map.values().map(|(name, _)| name)).finish()
    }
}

impl Services {
    /// No services.
    pub fn new() -> Self {
        Services::default()
    }
    /// These services and `value` (replacing a value of the same type).
    pub fn with<T: Any + Send + Sync>(mut self, value: T) -> Self {
        self.insert(value);
        self
    }
    /// Adds `value` (replacing a value of the same type).
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        self.map.insert(TypeId::of::<T>(), (std::any::type_name::<T>(), Arc::new(value)));
    }
    /// The service of type `T`, if this node has one.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.map.get(&TypeId::of::<T>()).and_then(|(_, v)| v.downcast_ref())
    }
}

/// A node-local part asked for a service its node was not given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The service is missing.
    #[error("operation kind `{kind}` needs the node service `{service}`, which node `{node}` was not given")]
    Missing {
        /// The kind whose part asked.
        kind: &'static str,
        /// The service's type.
        service: &'static str,
        /// The node.
        node: String,
    },
}

/// What a kind's trigger or validator constructor receives: the kind, the node it acts for, and
/// that node's services.
#[derive(Debug, Clone, Copy)]
pub struct NodeContext<'a> {
    /// The kind being built.
    pub kind: &'static str,
    /// The node.
    pub node: &'a NodeIdentity,
    /// The node's services.
    pub services: &'a Services,
}

impl NodeContext<'_> {
    /// A clone of the service of type `T`, or an error naming the kind and the service.
    pub fn service<T: Any + Send + Sync + Clone>(&self) -> Result<T, ServiceError> {
        self.services.get::<T>().cloned().ok_or_else(|| ServiceError::Missing {
            kind: self.kind,
            service: std::any::type_name::<T>(),
            node: self.node.name.clone(),
        })
    }
}
