//! Chain time: whole seconds since the Unix epoch, as carried by block timestamps.
//!
//! Nothing on the on-chain side reads a clock; "now" is always the timestamp of the block being
//! applied.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A point in chain time, whole seconds since 1970-01-01T00:00:00Z.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The epoch, used by statistics for "never".
    pub const ZERO: Timestamp = Timestamp(0);

    /// The last time a block may carry: 9999-12-31T23:59:59Z. Far below `u64::MAX`, so every
    /// sum the chain makes from a block's time (expirations, lifetimes, deadlines) stays
    /// representable and a chain never reaches a time after which no block can follow.
    pub const LAST_BLOCK_TIME: Timestamp = Timestamp(253_402_300_799);

    /// Seconds since the epoch.
    pub const fn secs(self) -> u64 {
        self.0
    }

    /// This time plus `secs` seconds, saturating at the end of time.
    pub const fn plus(self, secs: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(secs))
    }

    /// This time minus `secs` seconds, saturating at the epoch.
    pub const fn minus(self, secs: u64) -> Timestamp {
        Timestamp(self.0.saturating_sub(secs))
    }

    /// Seconds from `earlier` to `self`, or 0 when `earlier` is later.
    pub const fn since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
