//! Devnets of real `sonprop-node` processes on loopback ports: blocks decided by the engine,
//! the same state everywhere, transactions over RPC, crashes and restarts. Each test stops its
//! nodes by itself (they are killed when dropped) within bounded time.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sonprop_simulator::devnet::{self, Devnet, InitOptions, NodeProcess};
use sonprop_simulator::node_cli::call;

/// One devnet at a time: their processes share two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const NODE: &str = env!("CARGO_BIN_EXE_sonprop-node");

struct Net {
    dir: PathBuf,
    devnet: Devnet,
    nodes: Vec<Option<NodeProcess>>,
}

impl Net {
    fn start(name: &str, o: InitOptions) -> Net {
        let dir =
            std::env::temp_dir().join(format!("sonprop-devnet-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let devnet = devnet::init(&dir, &o).expect("devnet written");
        let nodes = devnet::up(&dir, Path::new(NODE)).expect("nodes started");
        Net { dir, devnet, nodes: nodes.into_iter().map(Some).collect() }
    }

    fn rpc(&self, i: usize) -> &str {
        &self.devnet.nodes[i].rpc
    }

    fn status(&self, i: usize) -> Option<Value> {
        call(self.rpc(i), "status", json!([])).ok()
    }

    fn height(&self, i: usize) -> u64 {
        self.status(i).and_then(|s| s["height"].as_u64()).unwrap_or(0)
    }

    fn hash_at(&self, i: usize, height: u64) -> Option<String> {
        call(self.rpc(i), "get_state_hash", json!([height])).ok()?.as_str().map(str::to_owned)
    }

    /// Waits until `f` holds, or fails the test after `secs` seconds, naming `what`.
    fn wait(&self, secs: u64, what: &str, mut f: impl FnMut(&Net) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let heights: Vec<u64> = (0..self.nodes.len()).map(|i| self.height(i)).collect();
        panic!("{what}: not within {secs} s (heights {heights:?}); logs in {}", self.dir.display());
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut n) = self.nodes[i].take() {
            n.kill();
        }
    }

    fn restart(&mut self, i: usize) {
        let n = &self.devnet.nodes[i];
        let log = self.dir.join(&n.name).join("node.log");
        let p =
            NodeProcess::start(Path::new(NODE), &n.name, &n.rpc, &self.dir.join(&n.config), &log)
                .expect("node restarted");
        self.nodes[i] = Some(p);
    }

    /// Every live node's state hash at `height` (which each has reached), by node.
    fn hashes_at(&self, height: u64, live: &[usize]) -> Vec<Option<String>> {
        live.iter().map(|i| self.hash_at(*i, height)).collect()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in self.nodes.iter_mut().filter_map(Option::take) {
            drop(n);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn witnesses(n: usize) -> InitOptions {
    InitOptions { witnesses: n, sons: 0, users: 2, ..InitOptions::default() }
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn four_witness_processes_decide_blocks_and_agree_on_the_state_hash() {
    let _one = lock();
    let net = Net::start("agree", witnesses(4));
    net.wait(60, "every node at height 5", |n| (0..4).all(|i| n.height(i) >= 5));
    let hashes = net.hashes_at(5, &[0, 1, 2, 3]);
    assert!(hashes[0].is_some(), "{hashes:?}");
    assert!(hashes.iter().all(|h| *h == hashes[0]), "state hashes differ at height 5: {hashes:?}");
    let s = net.status(2).expect("status");
    assert_eq!(s["finalized_height"], s["height"], "every decided block is final: {s}");
}

#[test]
fn a_transfer_sent_to_one_node_is_applied_everywhere_and_bad_input_changes_nothing() {
    let _one = lock();
    let net = Net::start("transfer", witnesses(4));
    net.wait(60, "blocks decided", |n| n.height(3) >= 2);
    let (from, keys) = devnet::user_keys(&net.dir.join(&net.devnet.users[0])).expect("user key");
    let (to, _) = devnet::user_keys(&net.dir.join(&net.devnet.users[1])).expect("user key");
    let balance = |n: &Net, i: usize| -> u64 {
        let a = call(n.rpc(i), "get_account", json!([to.to_string()])).expect("account");
        a["balances"][0]["amount"].as_u64().unwrap_or(0)
    };
    let before = balance(&net, 0);

    // Malformed input: a JSON-RPC error, and nothing enters the mempool.
    let bad = call(net.rpc(3), "submit_transaction", json!([{ "transaction": 7 }]));
    assert!(bad.as_ref().is_err_and(|e| e.contains("-32602")), "{bad:?}");
    let no_params = call(net.rpc(3), "get_account", json!([]));
    assert!(no_params.is_err(), "{no_params:?}");
    let unknown = call(net.rpc(3), "no_such_method", json!([]));
    assert!(unknown.as_ref().is_err_and(|e| e.contains("-32601")), "{unknown:?}");
    assert_eq!(net.status(3).expect("status")["mempool"], 0);

    // A transfer through one node reaches the proposers over the network and is applied by
    // every node.
    let s = net.status(3).expect("status");
    let chain_id = sonprop_core::Digest(
        sonprop_core::chain::crypto::from_hex(s["chain_id"].as_str().unwrap_or(""))
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .expect("chain id"),
    );
    let head = sonprop_core::Timestamp(s["head_time"].as_u64().unwrap_or(0));
    let op = sonprop_core::chain::ops::AssetTransfer {
        from,
        to,
        asset: sonprop_core::AssetId(0),
        amount: 777,
    };
    let tx = sonprop_core::Transaction::single(head.plus(600), op).sign(&chain_id, &[&keys]);
    let r = call(net.rpc(3), "submit_transaction", json!([tx])).expect("submitted");
    assert_eq!(r["new"], true);
    // The same transaction again is taken once.
    let again = call(net.rpc(3), "submit_transaction", json!([tx])).expect("submitted");
    assert_eq!(again["new"], false);
    net.wait(60, "the transfer applied on every node", |n| {
        (0..4).all(|i| balance(n, i) == before + 777)
    });
    // Applied once, not once per node that received it.
    std::thread::sleep(Duration::from_secs(3));
    assert!((0..4).all(|i| balance(&net, i) == before + 777));
}

#[test]
fn a_killed_witness_catches_up_one_down_goes_on_two_down_halts_and_nothing_is_undone() {
    let _one = lock();
    let mut net = Net::start("crash", witnesses(4));
    net.wait(60, "blocks decided", |n| (0..4).all(|i| n.height(i) >= 3));
    let h0 = 3;
    let before = net.hash_at(0, h0).expect("hash at 3");

    // One of four down (killed, as a crash): the chain goes on.
    net.kill(3);
    let at_kill = net.height(0);
    net.wait(60, "the chain going on with one witness down", |n| n.height(0) >= at_kill + 3);

    // Two of four down: less than two thirds vote, nothing is decided.
    net.kill(2);
    std::thread::sleep(Duration::from_secs(3));
    let halted = net.height(0);
    std::thread::sleep(Duration::from_secs(5));
    assert!(net.height(0) <= halted + 1, "decided with two of four witnesses down");

    // Both return: the chain resumes and the restarted nodes catch up to the same state.
    net.restart(2);
    net.restart(3);
    net.wait(90, "resumed and caught up", |n| (0..4).all(|i| n.height(i) >= halted + 3));
    let common = (0..4).map(|i| net.height(i)).min().unwrap_or(0);
    let hashes = net.hashes_at(common, &[0, 1, 2, 3]);
    assert!(hashes.iter().all(|h| h.is_some() && *h == hashes[0]), "{hashes:?} at {common}");
    // Nothing decided was undone: every node holds the same hash for height 3 as before.
    for i in 0..4 {
        assert_eq!(net.hash_at(i, h0).as_deref(), Some(before.as_str()), "node {i} at height {h0}");
    }
}

fn son_status(net: &Net, node: usize, son: &str) -> String {
    call(net.rpc(node), "get_son", json!([son]))
        .ok()
        .and_then(|s| s["status"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[test]
fn a_stopped_son_process_is_reported_down_then_deregistered_through_the_network() {
    let _one = lock();
    let o = InitOptions {
        witnesses: 4,
        sons: 4,
        users: 0,
        son_heartbeat_frequency: Some(2),
        son_down_time: Some(6),
        son_deregister_time: Some(16),
        min_son_count: Some(3),
        ..InitOptions::default()
    };
    let mut net = Net::start("sons", o);
    // Nodes 4..8 are the SONs' (witnesses first); SON 1.33.2 runs on node 6.
    net.wait(60, "heartbeats applied", |n| {
        call(n.rpc(0), "get_son", json!(["1.33.2"])).is_ok_and(|s| {
            s["statistics"]["last_active_timestamp"].as_u64()
                > s["statistics"]["last_down_timestamp"].as_u64()
                && n.height(0) >= 3
        })
    });
    assert_eq!(son_status(&net, 0, "1.33.2"), "active");
    net.kill(6);
    net.wait(60, "SON 1.33.2 reported down", |n| son_status(n, 0, "1.33.2") == "in_maintenance");
    // The others beat on and stay active.
    assert_eq!(son_status(&net, 0, "1.33.1"), "active");
    net.wait(60, "SON 1.33.2 deregistered", |n| son_status(n, 0, "1.33.2") == "deregistered");
    // The metrics say so, by kind.
    let text = bitreq::get(&net.devnet.nodes[0].metrics)
        .with_timeout(Duration::from_secs(10))
        .send()
        .ok()
        .and_then(|r| r.as_str().ok().map(str::to_owned))
        .unwrap_or_default();
    for kind in ["son_report_down", "son_deregister"] {
        let line = format!("sonprop_son_proposals_executed_total{{kind=\"{kind}\"}} 1");
        assert!(text.contains(&line), "no `{line}` in:\n{text}");
    }
    assert!(text.contains("# TYPE sonprop_height gauge"), "{text}");
    // Every node agrees (a SON node as much as a witness).
    let common = [0, 3, 4, 7].iter().map(|i| net.height(*i)).min().unwrap_or(0);
    let hashes = net.hashes_at(common, &[0, 3, 4, 7]);
    assert!(hashes.iter().all(|h| h.is_some() && *h == hashes[0]), "{hashes:?} at {common}");
}

#[test]
fn a_node_of_another_genesis_learns_nothing_and_changes_nothing() {
    let _one = lock();
    let net = Net::start("honest", witnesses(4));
    net.wait(60, "blocks decided", |n| n.height(0) >= 3);
    // A stranger: one witness of another four-witness chain, dialling the honest nodes.
    let other =
        std::env::temp_dir().join(format!("sonprop-devnet-{}-stranger", std::process::id()));
    let _ = std::fs::remove_dir_all(&other);
    let stranger_net = devnet::init(&other, &witnesses(4)).expect("other devnet");
    let cfg_path = other.join(&stranger_net.nodes[0].config);
    let cfg = std::fs::read_to_string(&cfg_path).expect("config");
    let ours: Vec<String> = (0..4)
        .map(|i| {
            let text =
                std::fs::read_to_string(net.dir.join(&net.devnet.nodes[i].config)).expect("ours");
            let line = text.lines().find(|l| l.starts_with("p2p_listen")).expect("p2p").to_owned();
            line.split('"').nth(1).expect("address").to_owned()
        })
        .collect();
    let rpc_ours: Vec<String> = (0..4).map(|i| format!("\"{}\"", net.rpc(i))).collect();
    let mut lines: Vec<String> = cfg
        .lines()
        .filter(|l| !l.starts_with("peers") && !l.starts_with("mempool_peers"))
        .map(str::to_owned)
        .collect();
    lines.push(format!(
        "peers = [{}]",
        ours.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ")
    ));
    lines.push(format!("mempool_peers = [{}]", rpc_ours.join(", ")));
    std::fs::write(&cfg_path, lines.join("\n") + "\n").expect("config written");
    let log = other.join("stranger.log");
    let stranger = NodeProcess::start(
        Path::new(NODE),
        "stranger",
        &stranger_net.nodes[0].rpc,
        &cfg_path,
        &log,
    )
    .expect("stranger started");

    // Its transactions are refused at our door: signed for its chain, not ours.
    let (from, keys) = devnet::user_keys(&other.join(&stranger_net.users[0])).expect("key");
    let theirs = call(&stranger_net.nodes[0].rpc, "status", json!([])).ok();
    std::thread::sleep(Duration::from_secs(1));
    let theirs = theirs.or_else(|| call(&stranger_net.nodes[0].rpc, "status", json!([])).ok());
    let their_chain = theirs
        .as_ref()
        .and_then(|s| s["chain_id"].as_str().map(str::to_owned))
        .expect("stranger status");
    let chain_id = sonprop_core::Digest(
        sonprop_core::chain::crypto::from_hex(&their_chain)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .expect("hex"),
    );
    let op = sonprop_core::chain::ops::AssetTransfer {
        from,
        to: from,
        asset: sonprop_core::AssetId(0),
        amount: 1,
    };
    let head =
        sonprop_core::Timestamp(net.status(0).expect("status")["head_time"].as_u64().unwrap_or(0));
    let tx = sonprop_core::Transaction::single(head.plus(600), op).sign(&chain_id, &[&keys]);
    let refused = call(net.rpc(0), "submit_transaction", json!([tx]));
    assert!(refused.as_ref().is_err_and(|e| e.contains("does not verify")), "{refused:?}");

    // Ours go on and agree; it decides nothing (it has one vote of four in its chain, and our
    // blocks' certificates are not signed by its validators).
    let start = net.height(0);
    net.wait(60, "the honest chain going on", |n| n.height(0) >= start + 5);
    let stranger_height = call(&stranger_net.nodes[0].rpc, "status", json!([]))
        .ok()
        .and_then(|s| s["height"].as_u64());
    assert_eq!(stranger_height, Some(0), "the stranger decided something");
    let common = (0..4).map(|i| net.height(i)).min().unwrap_or(0);
    let hashes = net.hashes_at(common, &[0, 1, 2, 3]);
    assert!(hashes.iter().all(|h| h.is_some() && *h == hashes[0]), "{hashes:?}");
    drop(stranger);
    let _ = std::fs::remove_dir_all(&other);
}

#[test]
fn a_node_without_a_readable_configuration_says_why_and_exits_with_status_2() {
    let out = std::process::Command::new(NODE)
        .args(["--config", "/nonexistent/node.toml"])
        .output()
        .expect("ran");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read /nonexistent/node.toml"), "{err}");
}
