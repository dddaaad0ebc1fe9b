//! The end-to-end test binary: one binary across the crates (ledger invariants, SON lifecycle
//! scenarios, operation JSON).

// The linker drops crates nothing references, and their registrations with them.
use sonprop_bitcoin as _;
use sonprop_deregister_son as _;
use sonprop_example_custom_operation as _;
use sonprop_report_down as _;

mod authorities;
mod bench_baseline;
mod core_layout;
mod decoders;
mod derives;
mod guide;
mod ledger_invariants;
mod operation_json;
mod scenarios;
mod sidechain_seams;
mod simulator;
