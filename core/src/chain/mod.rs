//! The on-chain half: deterministic. Same blocks in, same state out, on every node, bit for bit:
//! no wall clock, no randomness, no I/O but the store, no hash-map iteration order.
//!
//! Modules, from the bottom up (each imports only modules listed before it):
//! `ids`, `time`, `params`, `crypto`, `panic`, `table`, `store` → `objects`, `schema` → `error`,
//! `event`, `indexes`, `genesis` → `model` (the types that refer to each other: state,
//! operation, proposal, kind descriptions) → `state` (queries, hash), `invariant`, `apply`
//! (writes, undo) →
//! `ops`, `lifecycle`, `registration` (the core operations), `tx` → `ledger`, `persist`.

pub mod apply;
pub mod canon;
pub mod crypto;
pub mod error;
pub mod event;
pub mod genesis;
pub mod ids;
pub mod indexes;
pub mod invariant;
pub mod ledger;
pub mod lifecycle;
pub mod model;
pub mod objects;
pub mod ops;
pub mod panic;
pub mod params;
pub mod persist;
pub mod registration;
pub mod schema;
pub mod state;
pub mod store;
pub mod table;
pub mod time;
pub mod tx;
pub mod verify;
