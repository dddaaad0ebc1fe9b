//! `cargo bench -p sonprop-node --bench devnet`: a four-witness devnet of release-built node
//! processes on loopback, every node verifying every block.
//!
//! - `devnet_tps`: signed transfers per second decided while clients submit as fast as the
//!   nodes take them (each through one node, passed on to the others over JSON-RPC);
//! - `devnet_finality_ms`: the median time from submitting one transfer to a node reporting it
//!   applied in a decided block.
//!
//! It prints one JSON object, with the machine's one-minute load average before and after, and
//! `"disturbed": true` when the load before the run already exceeded the cores (another
//! program's work, not the devnet's).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sonprop_core::chain::ops::AssetTransfer;
use sonprop_core::{AssetId, Digest, Timestamp, Transaction};
use sonprop_simulator::devnet::{self, InitOptions};
use sonprop_simulator::node_cli::call;

const NODE: &str = env!("CARGO_BIN_EXE_sonprop-node");
const LOAD_SECONDS: u64 = 20;
const FINALITY_SAMPLES: usize = 20;

/// The one-minute load average.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|l| l.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn status(rpc: &str) -> Value {
    call(rpc, "status", json!([])).unwrap_or(Value::Null)
}

fn main() {
    let load_before = load_average();
    let dir = std::env::temp_dir().join(format!("sonprop-devnet-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = InitOptions { witnesses: 4, sons: 0, users: 4, ..InitOptions::default() };
    let net = devnet::init(&dir, &o).expect("devnet written");
    let nodes = devnet::up(&dir, Path::new(NODE)).expect("nodes started");
    let rpcs: Vec<String> = net.nodes.iter().map(|n| n.rpc.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&rpcs[0])["height"].as_u64().unwrap_or(0) < 3 {
        assert!(Instant::now() < deadline, "the devnet decided nothing in 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let s = status(&rpcs[0]);
    let chain_id = Digest(
        sonprop_core::chain::crypto::from_hex(s["chain_id"].as_str().unwrap_or(""))
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .expect("chain id"),
    );
    let head = Timestamp(s["head_time"].as_u64().unwrap_or(0));
    let users: Vec<_> =
        net.users.iter().map(|u| devnet::user_keys(&dir.join(u)).expect("user key")).collect();

    // Throughput: one client per user, each through its own node, for LOAD_SECONDS.
    let h0 = status(&rpcs[0])["height"].as_u64().unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, (from, keys))| {
            let (from, keys) = (*from, keys.clone());
            let to = users[(i + 1) % users.len()].0;
            let rpc = rpcs[i % rpcs.len()].clone();
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut amount = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    let op = AssetTransfer { from, to, asset: AssetId(0), amount };
                    amount += 1;
                    let tx = Transaction::single(head.plus(3_600), op).sign(&chain_id, &[&keys]);
                    if call(&rpc, "submit_transaction", json!([tx])).is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let included_before = included(&rpcs[0]);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(LOAD_SECONDS));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let included_during = included(&rpcs[0]).saturating_sub(included_before);
    let h1 = status(&rpcs[0])["height"].as_u64().unwrap_or(0);
    // Let the mempools drain before measuring finality.
    let drain = Instant::now() + Duration::from_secs(60);
    while rpcs.iter().any(|r| status(r)["mempool"].as_u64().unwrap_or(1) > 0)
        && Instant::now() < drain
    {
        std::thread::sleep(Duration::from_millis(200));
    }

    // Finality: one transfer at a time, submitted to node 1, watched on node 0. Submissions are
    // spread over the block interval (a sample right after the previous one's block would
    // always wait a whole interval for the next slot).
    let (from, keys) = (users[0].0, users[0].1.clone());
    let to = users[1].0;
    let mut samples = Vec::new();
    for k in 0..FINALITY_SAMPLES {
        std::thread::sleep(Duration::from_millis(
            (k as u64 * 1_000 / FINALITY_SAMPLES as u64) % 1_000,
        ));
        let before = balance(&rpcs[0], to);
        let op = AssetTransfer { from, to, asset: AssetId(0), amount: 1_000_000 + k as u64 };
        let tx = Transaction::single(head.plus(3_600), op).sign(&chain_id, &[&keys]);
        let t = Instant::now();
        if call(&rpcs[1], "submit_transaction", json!([tx])).is_err() {
            continue;
        }
        while balance(&rpcs[0], to) == before && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(5));
        }
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    let median = samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN);
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Another program's load before the run disturbs the figures; the devnet's own does not.
    let disturbed = load_before > cores as f64;
    let figures = json!({
        "devnet_tps": (included_during as f64 / elapsed).round(),
        "devnet_submitted_per_s": (sent.load(Ordering::Relaxed) as f64 / elapsed).round(),
        "devnet_blocks_per_s": ((h1 - h0) as f64 / elapsed * 100.0).round() / 100.0,
        "devnet_finality_ms": median.round(),
        "block_interval_ms": 1000,
        "validators": 4,
        "load_seconds": LOAD_SECONDS,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "cores": cores,
        "disturbed": disturbed,
    });
    println!("{}", serde_json::to_string_pretty(&figures).unwrap_or_default());
}

/// The node's count of transactions in the blocks it applied since it started.
fn included(rpc: &str) -> u64 {
    status(rpc)["included"].as_u64().unwrap_or(0)
}

fn balance(rpc: &str, account: sonprop_core::AccountId) -> u64 {
    call(rpc, "get_account", json!([account.to_string()]))
        .ok()
        .and_then(|a| a["balances"][0]["amount"].as_u64())
        .unwrap_or(0)
}
