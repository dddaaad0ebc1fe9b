//! `sonprop`'s whole command line (`simulate`, `explain`, `inspect`, `operations`) with an
//! outside crate's kind hosted beside the stock ones: the guide's `son_key_expiry_notice`.
//! Every node's key-expiry source says SON 1.33.4's Bitcoin key expires three days after the
//! scenarios' genesis (2026-01-01T00:00:00Z).
//!
//! `cargo run -p sonprop-example-notice-runner -- simulate examples/notice-runner/notice.toml`

use std::collections::BTreeMap;
use std::sync::Arc;

use sonprop_core::{Services, SonId, Timestamp};
use sonprop_example_custom_operation::{ExpirySource, FixedExpiries};
use sonprop_simulator::host::Host;

fn main() {
    let expires = Timestamp(1_767_225_600 + 3 * 24 * 3600);
    // Every crate linked in that registers itself, with the services its kinds ask for.
    let host = Host::discovered().with_services(move |_node| {
        let known = BTreeMap::from([((SonId(4), "bitcoin".to_owned()), expires)]);
        Services::new().with(Arc::new(FixedExpiries(known)) as ExpirySource)
    });
    std::process::exit(host.main());
}
