//! `sonprop`, the example runner: a simulated Peerplays-style network of witness and SON nodes,
//! each composed from the framework as a real node would be (ledger, registry, scheduler,
//! transaction sink), driven by a scenario file on simulated chain time.
//!
//! The binary is a thin wrapper over [`cli::run`]; tests drive the same entry points.
//!
//! ```
//! use sonprop_simulator::scenario::Scenario;
//!
//! let s = Scenario::from_toml(
//!     "name = \"tiny\"\nduration = \"10m\"\n[network]\nwitnesses = 3\nsons = 5\n",
//!     "tiny.toml",
//! )
//! .expect("valid");
//! assert_eq!(s.duration, 600);
//! ```

// The linker drops operation crates nothing references, and their registrations with them.
use sonprop_deregister_son as _;
use sonprop_report_down as _;

pub mod ahead;
pub mod bench;
pub mod bitcoin_cli;
pub mod bridge;
pub mod cli;
pub mod devnet;
pub mod duration;
pub mod explain;
pub mod fold;
pub mod holdings;
pub mod host;
pub mod html;
pub mod json;
pub mod members;
pub mod node_cli;
pub mod owner;
pub mod report;
pub mod scenario;
pub mod sim;
