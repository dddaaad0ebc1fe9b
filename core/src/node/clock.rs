//! What a node checks of a block against its own clock before handing it to the ledger. The
//! ledger cannot: its rules must give the same verdict on every node at any time, and a clock
//! differs between nodes and moments. Graphene refuses blocks too far ahead of the node's clock
//! in the same place.

use crate::chain::time::Timestamp;
use crate::chain::tx::Block;

/// How far ahead of a node's clock a block may be stamped by default, in seconds.
pub const DEFAULT_MAX_AHEAD: u64 = 15;

/// A block stamped too far in this node's future.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block {height} is stamped {timestamp}, more than {max_ahead} s after this node's clock ({now})")]
pub struct AheadOfClock {
    /// The block's height.
    pub height: u64,
    /// Its timestamp.
    pub timestamp: Timestamp,
    /// The node's clock.
    pub now: Timestamp,
    /// The bound.
    pub max_ahead: u64,
}

/// This node's wall clock, in whole seconds since the Unix epoch (node-local: the chain half
/// never reads it). A clock before the epoch reads as 0.
pub fn wall_clock() -> Timestamp {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    Timestamp(since.map_or(0, |d| d.as_secs()))
}

/// Refuses a block stamped more than `max_ahead` seconds after `now`, the node's clock. A
/// node calls this before `Ledger::apply_block` on a block from the network; a producer stamps
/// its own blocks with its slot time and never needs it.
pub fn check_not_ahead(block: &Block, now: Timestamp, max_ahead: u64) -> Result<(), AheadOfClock> {
    if block.timestamp > now.plus(max_ahead) {
        return Err(AheadOfClock {
            height: block.height,
            timestamp: block.timestamp,
            now,
            max_ahead,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wall_clock_reads_the_present_in_seconds() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let now = wall_clock();
        assert!(now.secs() >= before && now.secs() <= before + 5, "{now:?} against {before}");
    }
}
