//! The end-to-end test binary: one binary across the crates (ledger invariants, scenarios,
//! determinism).

mod ledger_invariants;
