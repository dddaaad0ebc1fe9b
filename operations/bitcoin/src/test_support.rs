//! What the crate's tests share: the registry their networks run, and Bitcoin Core's script
//! flags for the consensus library that judges every transaction they broadcast.

use std::sync::Arc;

use sonprop_core::Registry;

/// Bitcoin Core's script flags: P2SH | DERSIG | NULLDUMMY | CHECKLOCKTIMEVERIFY |
/// CHECKSEQUENCEVERIFY | WITNESS (every pre-taproot rule).
pub const FLAGS: u32 = (1 << 0) | (1 << 2) | (1 << 4) | (1 << 9) | (1 << 10) | (1 << 11);

/// The SON-management crates and this one.
pub fn registry() -> Arc<Registry> {
    Registry::builder()
        .with(&sonprop_report_down::PLUGIN)
        .with(&sonprop_deregister_son::PLUGIN)
        .with(&crate::PLUGIN)
        .build()
        .expect("unique")
        .into_arc()
}
