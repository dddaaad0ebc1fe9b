//! `sonprop`'s whole command line with the `sidechain_deposit` kind hosted beside the stock
//! ones. Every SON node sees the same simulated sidechain: deposits to alice and bob.
//!
//! `cargo run -p sonprop-example-sidechain-deposit -- simulate examples/sidechain-deposit/its-scenario.toml`

use std::sync::Arc;

use sonprop_core::{Services, Timestamp};
use sonprop_example_sidechain_deposit::{Deposit, SimulatedSidechain, View};
use sonprop_simulator::host::Host;

fn main() {
    let genesis = Timestamp(1_767_225_600); // the scenarios' default genesis time
    let deposit = |secs, tx: &str, to: &str, amount| {
        (genesis.plus(secs), Deposit { tx: tx.into(), to: to.into(), amount })
    };
    let made = vec![
        deposit(60, "0xa1", "alice", 150_000_000),
        deposit(300, "0xb2", "bob", 25_000_000),
        deposit(330, "0xc3", "alice", 100_000_000),
    ];
    let view: View = Arc::new(SimulatedSidechain { block_secs: 15, made });
    let host = Host::discovered().with_services(move |_node| Services::new().with(view.clone()));
    std::process::exit(host.main());
}
