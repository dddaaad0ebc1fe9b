//! The node-local half: what one node decides from its own view — which proposals to raise
//! ([`plugin::Trigger`]), which to approve ([`plugin::Validator`]) — built per node from the
//! kinds' [`parts::NodeParts`] and the node's [`services::Services`], and run after every block by
//! the [`scheduler::Scheduler`]. May do I/O, may be slow or fail; never stalls or crashes block
//! processing. Depends on the chain half; the chain half never depends on it.

pub mod clock;
pub mod parts;
pub mod plugin;
pub mod scheduler;
pub mod services;
