//! Whether each proposable kind may be proposed about a subject now, in words, for `explain`
//! (each kind's readiness). Every answer comes from the rule its proposal's check applies, read
//! on the chain's state. The chain cannot see Bitcoin, so a kind the SONs raise on what their
//! Bitcoin views show (a settlement, a wallet output, a reconciliation) is never due by the
//! chain's state alone: its answer says what the chain holds and what the SONs wait to see.
//!
//! A subject of another shape, or naming a deposit, withdrawal or sidechain transaction the
//! chain does not hold, is not one these kinds are about ([`sonprop_core::Readiness::NotAbout`]).
//!
//! Subjects: `bitcoin:wallet`, `bitcoin:sweep`, `bitcoin:deposit:TXID:VOUT`,
//! `bitcoin:withdrawal:N` (its payment and its refund), `bitcoin:refund:N`,
//! `bitcoin:tx:N` (its settlement and fee bump), `bitcoin:settle:N`, `bitcoin:bump:N`,
//! `bitcoin:utxo:TXID:VOUT`, `bitcoin:reconcile` and `bitcoin:resume`.

pub use crate::flows::{
    deposit_readiness as deposit, withdrawal_payment_readiness as withdrawal_payment,
    withdrawal_refund_readiness as withdrawal_refund,
};
pub use crate::ops::{
    bump_readiness as bump, settle_readiness as settle, utxo_readiness as utxo,
    wallet_sweep_readiness as wallet_sweep, wallet_update_readiness as wallet_update,
};
pub use crate::reconcile::{reconcile_readiness as reconcile, resume_readiness as resume};
