//! Chain parameters, with Peerplays' defaults, and their validation.

use serde::{Deserialize, Serialize};

use crate::chain::ids::{AccountId, AssetId};

/// How the SON consensus authority counts its members.
///
/// The authority always lists every elected SON (so any of them may add an approval); the
/// policy decides which of them carry weight and so what `N` in the `floor(2N/3) + 1` threshold is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdPolicy {
    /// Peerplays' rule: every elected SON counts, up or down. If more than a third of them are
    /// down, nothing passes — not even their own removal.
    Elected,
    /// Only elected SONs whose last heartbeat is within `son_down_time` of head time count. With
    /// fewer than `min_son_count` live SONs nothing executes.
    #[default]
    Live,
}

/// The SON consensus authority's need at a block ([`crate::State::son_quorum`]): of the elected
/// SONs, those the threshold policy counts, and how many of their approvals a SON proposal
/// needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SonQuorum {
    /// The policy deciding who counts.
    pub policy: ThresholdPolicy,
    /// Elected SONs.
    pub elected: u32,
    /// The elected SONs that count (all of them under `elected`, the live ones under `live`).
    pub counted: u32,
    /// `min_son_count`: under `live`, fewer counted SONs than this and nothing passes.
    pub min_son_count: u32,
}

impl SonQuorum {
    /// The approvals a SON proposal needs, `floor(2N/3) + 1` of the `N` counted; `None` when
    /// no number of approvals suffices (fewer live SONs than `min_son_count`).
    pub fn needed(&self) -> Option<u32> {
        if self.policy == ThresholdPolicy::Live && self.counted < self.min_son_count {
            return None;
        }
        Some(self.counted * 2 / 3 + 1)
    }
}

impl std::fmt::Display for SonQuorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = match self.policy {
            ThresholdPolicy::Elected => "elected",
            ThresholdPolicy::Live => "live",
        };
        match self.needed() {
            Some(n) => write!(f, "approvals needed: {n} of {} {who} SONs", self.counted),
            None => write!(
                f,
                "approvals needed: none suffice while live SONs {} < min_son_count {} ({} elected)",
                self.counted, self.min_son_count, self.elected
            ),
        }
    }
}

impl std::fmt::Display for ThresholdPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ThresholdPolicy::Elected => "elected",
            ThresholdPolicy::Live => "live",
        })
    }
}

/// The chain parameters the SON machinery reads. Durations are whole seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainParameters {
    /// Seconds between block slots (Peerplays: 3).
    pub block_interval: u64,
    /// How often a SON sends a heartbeat (180).
    pub son_heartbeat_frequency: u64,
    /// Without a heartbeat for this long a SON may be reported down (360).
    pub son_down_time: u64,
    /// A SON in maintenance this long past its last heartbeat may be deregistered (43 200 = 12 h).
    pub son_deregister_time: u64,
    /// The largest elected SON set (15).
    pub maximum_son_count: u32,
    /// The smallest SON set that may act (5).
    pub min_son_count: u32,
    /// The longest a proposal may live (4 weeks = 2 419 200).
    pub maximum_proposal_lifetime: u64,
    /// The cliff of a deregistered SON's vesting deposit (2 days = 172 800).
    pub son_vesting_period: u64,
    /// The furthest in the future a transaction's expiration may be (1 day = 86 400).
    pub maximum_time_until_expiration: u64,
    /// Which elected SONs count towards the SON consensus threshold.
    pub threshold_policy: ThresholdPolicy,
    /// Seconds between maintenance intervals, when standby SONs fill freed seats (1 day).
    pub maintenance_interval: u64,
    /// The largest transaction, in bytes of its canonical binary encoding
    /// ([`crate::chain::canon`]; 64 KiB).
    pub maximum_transaction_size: u64,
    /// The most a block's transactions may take together, in bytes of their canonical binary
    /// encoding (2 MiB).
    pub maximum_block_size: u64,
    /// The core asset (Peerplays' PPY, `1.3.0`): SON deposits, SON pay and vote stakes are in it.
    pub core_asset: AssetId,
    /// The smallest deposit a new SON registers with, in the core asset's smallest unit
    /// (Peerplays: 50 PPY, 5 000 000 at 5 decimals).
    pub son_vesting_amount: u64,
    /// How often the elected SONs are paid, seconds (Peerplays: 1 day).
    pub son_pay_time: u64,
    /// The most paid to all SONs together per pay period, in the core asset's smallest unit
    /// (Peerplays: 200 PPY).
    pub son_pay_max: u64,
    /// The account SON pay comes out of; none: SONs are not paid.
    pub son_budget_account: Option<AccountId>,
}

impl Default for ChainParameters {
    fn default() -> Self {
        ChainParameters {
            block_interval: 3,
            son_heartbeat_frequency: 180,
            son_down_time: 360,
            son_deregister_time: 12 * 3600,
            maximum_son_count: 15,
            min_son_count: 5,
            maximum_proposal_lifetime: 28 * 24 * 3600,
            son_vesting_period: 2 * 24 * 3600,
            maximum_time_until_expiration: 24 * 3600,
            threshold_policy: ThresholdPolicy::Live,
            maintenance_interval: 24 * 3600,
            maximum_transaction_size: 64 * 1024,
            maximum_block_size: 2 * 1024 * 1024,
            core_asset: AssetId(0),
            son_vesting_amount: 5_000_000,
            son_pay_time: 24 * 3600,
            son_pay_max: 20_000_000,
            son_budget_account: None,
        }
    }
}

/// A parameter set that cannot work; names the parameter at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid chain parameter `{name}`: {reason}")]
pub struct ParamError {
    /// The parameter at fault.
    pub name: &'static str,
    /// Why it is rejected.
    pub reason: String,
}

impl ChainParameters {
    /// Checks that the parameters make sense together.
    pub fn validate(&self) -> Result<(), ParamError> {
        let fail = |name, reason: String| Err(ParamError { name, reason });
        if self.block_interval == 0 {
            return fail("block_interval", "must be at least 1 second".into());
        }
        if self.son_heartbeat_frequency < self.block_interval {
            return fail(
                "son_heartbeat_frequency",
                format!(
                    "{} s is shorter than block_interval ({} s)",
                    self.son_heartbeat_frequency, self.block_interval
                ),
            );
        }
        if self.son_down_time <= self.son_heartbeat_frequency {
            return fail(
                "son_down_time",
                format!(
                    "{} s must exceed son_heartbeat_frequency ({} s), or healthy SONs are reported down",
                    self.son_down_time, self.son_heartbeat_frequency
                ),
            );
        }
        if self.son_deregister_time <= self.son_down_time {
            return fail(
                "son_deregister_time",
                format!(
                    "{} s must exceed son_down_time ({} s)",
                    self.son_deregister_time, self.son_down_time
                ),
            );
        }
        if self.maximum_son_count == 0 {
            return fail("maximum_son_count", "must be at least 1".into());
        }
        if self.min_son_count == 0 || self.min_son_count > self.maximum_son_count {
            return fail(
                "min_son_count",
                format!(
                    "{} must be between 1 and maximum_son_count ({})",
                    self.min_son_count, self.maximum_son_count
                ),
            );
        }
        if self.maximum_proposal_lifetime < self.block_interval {
            return fail("maximum_proposal_lifetime", "must be at least one block interval".into());
        }
        if self.maximum_time_until_expiration < self.block_interval {
            return fail(
                "maximum_time_until_expiration",
                "must be at least one block interval".into(),
            );
        }
        if self.maximum_transaction_size < 256 {
            return fail("maximum_transaction_size", "must be at least 256 bytes".into());
        }
        if self.maximum_block_size < self.maximum_transaction_size {
            return fail(
                "maximum_block_size",
                "must hold at least one transaction of maximum_transaction_size".into(),
            );
        }
        if self.maintenance_interval < self.block_interval {
            return fail("maintenance_interval", "must be at least one block interval".into());
        }
        if self.son_pay_time < self.block_interval {
            return fail("son_pay_time", "must be at least one block interval".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_peerplays_values_and_valid() {
        let p = ChainParameters::default();
        assert_eq!((p.block_interval, p.son_heartbeat_frequency, p.son_down_time), (3, 180, 360));
        assert_eq!(p.son_deregister_time, 43_200);
        assert_eq!((p.maximum_son_count, p.min_son_count), (15, 5));
        assert_eq!(p.maximum_proposal_lifetime, 2_419_200);
        assert_eq!(p.son_vesting_period, 172_800);
        assert_eq!(p.threshold_policy, ThresholdPolicy::Live);
        p.validate().expect("defaults are valid");
    }

    #[test]
    fn invalid_combinations_name_the_parameter() {
        type Breaker = fn(&mut ChainParameters);
        let cases: [(&str, Breaker); 5] = [
            ("maximum_son_count", |p| p.maximum_son_count = 0),
            ("block_interval", |p| p.block_interval = 0),
            ("son_down_time", |p| p.son_down_time = 180),
            ("son_deregister_time", |p| p.son_deregister_time = 300),
            ("min_son_count", |p| p.min_son_count = 16),
        ];
        for (name, break_it) in cases {
            let mut p = ChainParameters::default();
            break_it(&mut p);
            let err = p.validate().expect_err(name);
            assert_eq!(err.name, name);
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn unknown_parameter_fields_are_rejected() {
        let err = serde_json::from_str::<ChainParameters>(r#"{"son_down_tiem": 5}"#)
            .expect_err("typo must not be ignored");
        assert!(err.to_string().contains("son_down_tiem"), "{err}");
    }
}
