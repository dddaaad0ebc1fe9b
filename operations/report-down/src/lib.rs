//! Report-down proposals: a SON whose heartbeats stopped for `son_down_time` is reported down by
//! a proposal the SON consensus authority approves; on execution it goes `in_maintenance` and its
//! `last_down_timestamp` is set to its last heartbeat.
//!
//! The operation's on-chain check, the trigger and the validator all call one predicate,
//! [`rule::check_report`], so they cannot drift apart. Everything is in chain time.
//!
//! ```
//! use sonprop_core::Registry;
//!
//! let registry = Registry::builder().with(&sonprop_report_down::PLUGIN).build().expect("unique");
//! let d = registry.operation(sonprop_report_down::KIND).expect("registered");
//! assert!(d.proposal.is_some_and(|p| p.son_record));
//! ```
//!
//! # Invariants
//! - Only elected SONs in `active` or `request_maintenance` are reported, and only when
//!   `last_active_timestamp <= down_ts <= head_time` and `head_time - down_ts >= son_down_time`.
//! - The trigger finds candidates through the `(status, last_active_timestamp)` index: its cost
//!   is proportional to the SONs that are due, not to the SONs that exist.
//! - A node never reports its own SON.

mod op;
mod registration;
pub mod rule;
mod trigger;

pub use op::SonReportDown;
pub use registration::{lifetime, LifetimeCycles, PLUGIN};
pub use rule::ReportDownError;
pub use trigger::{ReportDownTrigger, ReportDownValidator};

/// The operation kind.
pub const KIND: &str = SonReportDown::KIND;

#[cfg(test)]
mod tests;
