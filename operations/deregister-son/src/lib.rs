//! Deregister proposals: when chain time passes a SON's `last_down_timestamp` by
//! `son_deregister_time` (12 h by default, inclusive), the witness scheduled to produce the next
//! block proposes its deregistration; when the SON consensus authority approves, the SON becomes
//! `deregistered` (terminal), leaves the elected set and the consensus authority at once, and its
//! deposit starts vesting with a `son_vesting_period` cliff.
//!
//! Other crates can defer a deregistration with a [`Guard`](sonprop_core::Guard) on this kind
//! ("this SON is still a required signer of pending sidechain work"): the trigger holds the SON
//! back and reports the guard's reason, and the ledger refuses to create or execute the
//! proposal while any guard defers it.
//!
//! ```
//! use sonprop_core::Registry;
//!
//! let registry = Registry::builder().with(&sonprop_deregister_son::PLUGIN).build().expect("unique");
//! assert!(registry.operation(sonprop_deregister_son::KIND).is_some());
//! ```
//!
//! # Invariants
//! - The trigger, the validator and the on-chain check share [`rule::check_deregister`].
//! - The trigger finds due SONs through the `(status, last_down_timestamp)` index.
//! - A proposal lives `block_interval × active witnesses × son_deregister.witness_cycles`
//!   seconds (3 complete witness cycles by default), capped by `maximum_proposal_lifetime`; if it expires
//!   unapproved, the next scheduled witness raises a fresh one. The ledger never lets two be live.

mod op;
mod registration;
pub mod rule;
mod trigger;

pub use op::SonDeregister;
pub use registration::{lifetime, LifetimeCycles, PLUGIN};
pub use rule::DeregisterError;
pub use trigger::{DeregisterTrigger, DeregisterValidator};

/// The operation kind.
pub const KIND: &str = SonDeregister::KIND;

#[cfg(test)]
mod tests;
