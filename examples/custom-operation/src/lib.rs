//! An operation crate written as a sidechain developer outside this repository would write it:
//! `son_key_expiry_notice`, a SON proposal announcing on chain that a SON's key on a sidechain
//! is about to expire, so operators rotate it before the SON stops signing.
//!
//! It shows every piece an operation crate has — the operation with its on-chain rule, a
//! trigger and a validator fed by a declared external source ([`KeyExpirySource`]), and
//! registration through both `inventory` and an explicit [`PLUGIN`] — and it depends on
//! `sonprop-core` alone. `docs/writing-an-operation.md` walks through it step by step.
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
//! - The trigger and validator read the key expiry from their [`KeyExpirySource`]; the
//!   validator approves only what its own source confirms.

mod op;
mod plugin;
mod registration;
pub mod rule;

pub use op::SonKeyExpiryNotice;
pub use plugin::{FixedExpiries, KeyExpirySource, NoticeTrigger, NoticeValidator};
pub use registration::PLUGIN;
pub use rule::NoticeError;

/// The operation kind.
pub const KIND: &str = "son_key_expiry_notice";

/// How far ahead of expiry a notice may be raised: 7 days.
pub const NOTICE_WINDOW: u64 = 7 * 24 * 3600;

#[cfg(test)]
mod tests;
