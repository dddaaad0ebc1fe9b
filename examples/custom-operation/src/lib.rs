//! An operation crate written as a sidechain developer outside this repository would write it:
//! `son_key_expiry_notice`, a SON proposal announcing on chain that a SON's key on a sidechain
//! is about to expire, so operators rotate it before the SON stops signing.
//!
//! It shows every piece an operation crate has — the operation with its on-chain rule, its own
//! typed table ([`Announced`]), parameter ([`NoticeWindow`]) and event ([`KeyExpiryAnnounced`]),
//! a trigger run by the elected SONs and a validator, both built from a node service
//! ([`KeyExpirySource`]), and registration through both `inventory` and an explicit [`PLUGIN`] —
//! and it depends on `sonprop-core` alone. `docs/writing-an-operation.md` walks through it.
//!
//! ```
//! use sonprop_core::Registry;
//!
//! let registry = Registry::builder()
//!     .with(&sonprop_example_custom_operation::PLUGIN)
//!     .build()
//!     .expect("unique names");
//! assert!(registry.operation("son_key_expiry_notice").is_some());
//! ```
//!
//! # Invariants
//! - The on-chain rule ([`rule::check_notice`]) reads chain state and chain time only.
//! - The trigger and validator read the key expiry from their node's [`KeyExpirySource`]
//!   service; the validator approves only what its own source confirms. A node without the
//!   service fails at start-up, naming the kind and the service.

mod op;
mod plugin;
mod registration;
pub mod rule;

pub use op::{Announced, KeyExpiryAnnounced, SonKeyExpiryNotice};
pub use plugin::{ExpirySource, FixedExpiries, KeyExpirySource, NoticeTrigger, NoticeValidator};
pub use registration::{NoticeWindow, PLUGIN};
pub use rule::NoticeError;

/// The operation kind.
pub const KIND: &str = SonKeyExpiryNotice::KIND;

#[cfg(test)]
mod tests;
