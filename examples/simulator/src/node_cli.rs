//! The commands that talk to real nodes: `devnet init|up`, `status` and `tx`, over each node's
//! JSON-RPC server. This crate never links the node or its engine: `devnet up` starts
//! `sonprop-node` processes.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{json, Value};
use sonprop_core::chain::ops::AssetTransfer;
use sonprop_core::{AccountId, AssetId, Digest, Timestamp, Transaction};

use crate::cli::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::devnet::{self, DevnetError, InitOptions};

/// How long a transaction stays valid after the head it was built on.
pub const TX_LIFETIME: u64 = 600;

/// `sonprop devnet …`.
#[derive(Debug, clap::Subcommand)]
pub enum DevnetCommand {
    /// Write a genesis, and per node a configuration and a key file, into a new folder.
    Init {
        /// The folder (created; must be empty).
        dir: PathBuf,
        /// Witness nodes (the validators).
        #[arg(long, default_value_t = 4)]
        witnesses: usize,
        /// Elected SONs, each a node of its own.
        #[arg(long, default_value_t = 5)]
        sons: usize,
        /// Standby SONs.
        #[arg(long, default_value_t = 0)]
        standby: usize,
        /// Funded user accounts (key files in `users/`).
        #[arg(long, default_value_t = 2)]
        users: usize,
        /// Seconds between blocks.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        block_interval: u64,
        /// Seconds between a SON's heartbeats (default: the chain's).
        #[arg(long)]
        son_heartbeat_frequency: Option<u64>,
        /// Seconds of silence before a SON is reported down (default: the chain's).
        #[arg(long)]
        son_down_time: Option<u64>,
        /// Seconds a SON may stay down before it is deregistered (default: the chain's).
        #[arg(long)]
        son_deregister_time: Option<u64>,
        /// Fewer live SONs than this and no SON proposal passes (default: the chain's).
        #[arg(long)]
        min_son_count: Option<u32>,
    },
    /// Start every node of a devnet as its own process; stop them all on Ctrl-C.
    Up {
        /// A folder written by `devnet init`.
        dir: PathBuf,
        /// The `sonprop-node` binary (default: beside `sonprop`, else on the PATH).
        #[arg(long)]
        node_bin: Option<PathBuf>,
    },
}

/// `sonprop tx …`: build, sign and submit a user's transaction.
#[derive(Debug, clap::Subcommand)]
pub enum TxCommand {
    /// Transfer an asset to another account.
    Transfer {
        /// A node's JSON-RPC URL.
        #[arg(long)]
        rpc: String,
        /// The sender's key file (as `devnet init` writes in `users/`).
        #[arg(long)]
        key: PathBuf,
        /// The receiving account (1.2.N).
        #[arg(long)]
        to: AccountId,
        /// The amount, in the asset's smallest unit.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        amount: u64,
        /// The asset (default PPY, 1.3.0).
        #[arg(long, default_value = "1.3.0")]
        asset: AssetId,
    },
}

/// Calls `method` on the node at `url`: its result, or the error's message.
pub fn call(url: &str, method: &str, params: Value) -> Result<Value, String> {
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let resp = bitreq::Request::new(bitreq::Method::Post, url)
        .with_timeout(Duration::from_secs(10))
        .with_max_body_size(16 << 20)
        .with_json(&body)
        .map_err(|e| format!("{url}: {e}"))?
        .send()
        .map_err(|e| format!("{url}: {e}"))?;
    let answer: Value = resp.json().map_err(|e| format!("{url}: not a JSON-RPC answer ({e})"))?;
    match (answer.get("result"), answer.get("error")) {
        (_, Some(e)) => Err(format!(
            "{url}: {} (code {})",
            e["message"].as_str().unwrap_or("unknown error"),
            e["code"]
        )),
        (Some(r), None) => Ok(r.clone()),
        (None, None) => Err(format!("{url}: an answer with neither result nor error")),
    }
}

fn failed(code: i32) -> impl Fn(String) -> (i32, String) {
    move |m| (code, m)
}

fn devnet_error(e: DevnetError) -> (i32, String) {
    let code = match e {
        DevnetError::NotEmpty(_) | DevnetError::Invalid(_) | DevnetError::NoNodeBinary(_) => {
            EXIT_USAGE
        }
        DevnetError::Io { .. } => EXIT_FAILURE,
    };
    (code, e.to_string())
}

/// `sonprop devnet …`.
pub fn devnet(
    command: DevnetCommand,
    interrupted: &std::sync::atomic::AtomicBool,
    out: &mut dyn Write,
) -> Result<i32, (i32, String)> {
    match command {
        DevnetCommand::Init {
            dir,
            witnesses,
            sons,
            standby,
            users,
            block_interval,
            son_heartbeat_frequency,
            son_down_time,
            son_deregister_time,
            min_son_count,
        } => {
            let o = InitOptions {
                witnesses,
                sons,
                standby,
                users,
                block_interval,
                son_heartbeat_frequency,
                son_down_time,
                son_deregister_time,
                min_son_count,
                genesis_time: None,
            };
            let net = devnet::init(&dir, &o).map_err(devnet_error)?;
            let _ = writeln!(out, "devnet written to {}:", dir.display());
            for n in &net.nodes {
                let _ = writeln!(out, "  {:<12} {}", n.name, n.rpc);
            }
            let _ = writeln!(out, "start it with: sonprop devnet up {}", dir.display());
            Ok(EXIT_OK)
        }
        DevnetCommand::Up { dir, node_bin } => {
            let binary = devnet::node_binary(node_bin.as_deref()).map_err(devnet_error)?;
            let mut nodes = devnet::up(&dir, &binary).map_err(devnet_error)?;
            for n in &nodes {
                let _ = writeln!(out, "{:<12} pid {:<7} {}", n.name, n.id(), n.rpc);
            }
            let _ =
                writeln!(out, "logs in {}/<node>/node.log; Ctrl-C stops every node", dir.display());
            let _ = out.flush();
            // A node that exits is reported once; the others go on (a devnet outlives a crash).
            let mut reported = std::collections::BTreeSet::new();
            while !interrupted.load(Ordering::Relaxed) {
                for n in nodes.iter_mut() {
                    if let Some(status) = n.exited() {
                        if reported.insert(n.name.clone()) {
                            let _ = writeln!(out, "{} exited ({status})", n.name);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            for n in &mut nodes {
                n.stop(Duration::from_secs(5));
            }
            let _ = writeln!(out, "every node stopped");
            Ok(EXIT_OK)
        }
    }
}

/// `sonprop status --rpc URL`.
pub fn status(rpc: &str, as_json: bool, out: &mut dyn Write) -> Result<i32, (i32, String)> {
    let s = call(rpc, "status", json!([])).map_err(failed(EXIT_FAILURE))?;
    if as_json {
        let _ = writeln!(out, "{s}");
        return Ok(EXIT_OK);
    }
    let _ = writeln!(out, "height            {}", s["height"]);
    let _ = writeln!(out, "finalized height  {}", s["finalized_height"]);
    let _ = writeln!(out, "state hash        {}", s["state_hash"].as_str().unwrap_or("?"));
    let _ = writeln!(out, "head time         {}", s["head_time"]);
    let _ = writeln!(out, "mempool           {}", s["mempool"]);
    Ok(EXIT_OK)
}

/// `sonprop tx …`.
pub fn tx(command: TxCommand, out: &mut dyn Write) -> Result<i32, (i32, String)> {
    match command {
        TxCommand::Transfer { rpc, key, to, amount, asset } => {
            let (from, keys) = devnet::user_keys(&key).map_err(devnet_error)?;
            let s = call(&rpc, "status", json!([])).map_err(failed(EXIT_FAILURE))?;
            let chain_id = s["chain_id"]
                .as_str()
                .and_then(sonprop_core::chain::crypto::from_hex)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map(Digest)
                .ok_or((EXIT_FAILURE, format!("{rpc}: the status has no chain id")))?;
            let head = Timestamp(s["head_time"].as_u64().unwrap_or(0));
            let op = AssetTransfer { from, to, asset, amount };
            let signed = Transaction::single(head.plus(TX_LIFETIME), op).sign(&chain_id, &[&keys]);
            let tx = serde_json::to_value(&signed).map_err(|e| (EXIT_FAILURE, e.to_string()))?;
            let r = call(&rpc, "submit_transaction", json!([tx])).map_err(failed(EXIT_FAILURE))?;
            let _ = writeln!(out, "submitted {}", r["id"].as_str().unwrap_or("?"));
            Ok(EXIT_OK)
        }
    }
}
