//! The Bitcoin sidechain (in progress): Peerplays' weighted P2WSH SON wallet.

pub mod script;
