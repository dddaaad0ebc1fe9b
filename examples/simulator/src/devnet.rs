//! `sonprop devnet`: a local network of `sonprop-node` processes on loopback ports.
//!
//! `init` writes a genesis, and per node a configuration and a key file; `up` starts every node
//! as its own process and stops them all on Ctrl-C. Every address is on 127.0.0.1.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sonprop_core::testkit::{ppy_asset, NetworkBuilder};
use sonprop_core::{AssetId, ChainParameters, KeyPair, NodeIdentity, Timestamp};

/// PPY each devnet user starts with, in whole PPY.
pub const USER_PPY: u64 = 1_000_000;

/// What `init` builds.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Witness nodes (the validators).
    pub witnesses: usize,
    /// Elected SONs (each a node of its own).
    pub sons: usize,
    /// Standby SONs.
    pub standby: usize,
    /// Funded user accounts (keys only: users run no node).
    pub users: usize,
    /// Seconds between blocks.
    pub block_interval: u64,
    /// Seconds between a SON's heartbeats; `None` keeps the chain default.
    pub son_heartbeat_frequency: Option<u64>,
    /// A SON silent this long is reported down (seconds); `None` keeps the chain default.
    pub son_down_time: Option<u64>,
    /// A SON down this long is deregistered (seconds); `None` keeps the chain default.
    pub son_deregister_time: Option<u64>,
    /// Fewer live SONs than this and no SON proposal passes; `None` keeps the chain default.
    pub min_son_count: Option<u32>,
    /// The genesis time; `None` is now.
    pub genesis_time: Option<Timestamp>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            witnesses: 4,
            sons: 5,
            standby: 0,
            users: 2,
            block_interval: 1,
            son_heartbeat_frequency: None,
            son_down_time: None,
            son_deregister_time: None,
            min_son_count: None,
            genesis_time: None,
        }
    }
}

/// One node of a devnet, as `devnet.json` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevnetNode {
    /// Its name (`witness-0`, `son-1`, …).
    pub name: String,
    /// Its configuration, relative to the devnet's folder.
    pub config: PathBuf,
    /// Its JSON-RPC URL.
    pub rpc: String,
    /// Its metrics URL.
    pub metrics: String,
}

/// A devnet's index (`devnet.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Devnet {
    /// The nodes, witnesses first.
    pub nodes: Vec<DevnetNode>,
    /// The users' key files, relative to the devnet's folder.
    pub users: Vec<PathBuf>,
}

/// What went wrong with a devnet.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// The folder already holds a devnet or other files.
    #[error("{0} is not empty: `devnet init` writes into a new or empty folder")]
    NotEmpty(String),
    /// A file could not be read or written.
    #[error("{path}: {detail}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// The options make no network.
    #[error("{0}")]
    Invalid(String),
    /// No node binary was found.
    #[error(
        "no `sonprop-node` binary at {0}: build it with `cargo build -p sonprop-node`, or name it with --node-bin"
    )]
    NoNodeBinary(String),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> DevnetError + '_ {
    move |e| DevnetError::Io { path: path.display().to_string(), detail: e.to_string() }
}

fn write(path: &Path, text: &str) -> Result<(), DevnetError> {
    std::fs::write(path, text).map_err(io(path))
}

/// Free loopback ports, `n` of them (held together while chosen, so they differ).
fn free_ports(n: usize) -> Result<Vec<u16>, DevnetError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io(Path::new("127.0.0.1")))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(io(Path::new("127.0.0.1"))))
        .collect()
}

fn key_file(identity: &NodeIdentity) -> serde_json::Value {
    serde_json::json!({
        "name": identity.name,
        "account": identity.account,
        "witness": identity.witness,
        "son": identity.son,
        "secret": sonprop_core::chain::crypto::hex(&identity.keys.secret_key().secret_bytes()),
    })
}

/// Writes a devnet into `dir` (created if missing; it must be empty).
pub fn init(dir: &Path, o: &InitOptions) -> Result<Devnet, DevnetError> {
    if o.witnesses == 0 {
        return Err(DevnetError::Invalid("a devnet needs at least one witness".into()));
    }
    if o.block_interval == 0 {
        return Err(DevnetError::Invalid("the block interval must be at least 1 s".into()));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(DevnetError::NotEmpty(dir.display().to_string()));
    }
    let mut params = ChainParameters { block_interval: o.block_interval, ..Default::default() };
    if let Some(t) = o.son_heartbeat_frequency {
        params.son_heartbeat_frequency = t;
    }
    if let Some(t) = o.son_down_time {
        params.son_down_time = t;
    }
    if let Some(t) = o.son_deregister_time {
        params.son_deregister_time = t;
    }
    if let Some(n) = o.min_son_count {
        params.min_son_count = n;
    }
    params.validate().map_err(|e| DevnetError::Invalid(format!("parameters: {e}")))?;
    let genesis_time = o.genesis_time.unwrap_or_else(sonprop_core::node::clock::wall_clock);
    // Keys differ per devnet: seeded by the time and this process.
    let seed = genesis_time.secs() ^ (u64::from(std::process::id()) << 32);
    let builder = NetworkBuilder::default()
        .witnesses(o.witnesses)
        .sons(o.sons)
        .standby_sons(o.standby)
        .users(o.users)
        .params(params)
        .genesis_time(genesis_time)
        .seed(seed);
    let ppy = ppy_asset();
    let builder = builder.asset(ppy.clone());
    let (_, _, _, users) = builder.genesis();
    let unit = 10u64.pow(u32::from(ppy.precision));
    let builder =
        users.iter().fold(builder, |b, u| b.balance(u.account, AssetId(0), USER_PPY * unit));
    let (genesis, witnesses, sons, users) = builder.genesis();
    genesis.validate().map_err(|e| DevnetError::Invalid(format!("genesis: {e}")))?;
    let genesis_text = serde_json::to_string_pretty(&genesis)
        .map_err(|e| DevnetError::Invalid(format!("genesis: {e}")))?;
    write(&dir.join("genesis.json"), &genesis_text)?;

    let nodes: Vec<NodeIdentity> = witnesses.into_iter().chain(sons).collect();
    let ports = free_ports(nodes.len() * 3)?;
    let p2p = |i: usize| format!("/ip4/127.0.0.1/tcp/{}", ports[3 * i]);
    let rpc = |i: usize| format!("127.0.0.1:{}", ports[3 * i + 1]);
    let metrics = |i: usize| format!("127.0.0.1:{}", ports[3 * i + 2]);
    let mut listed = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let home = dir.join(&node.name);
        std::fs::create_dir_all(&home).map_err(io(&home))?;
        let key = serde_json::to_string_pretty(&key_file(node)).unwrap_or_default();
        write(&home.join("key.json"), &key)?;
        let others = |f: &dyn Fn(usize) -> String| -> Vec<String> {
            (0..nodes.len()).filter(|j| *j != i).map(f).collect()
        };
        let config = NodeToml {
            moniker: node.name.clone(),
            genesis: "../genesis.json".into(),
            key_file: "key.json".into(),
            home: ".".into(),
            p2p_listen: p2p(i),
            peers: others(&p2p),
            rpc_listen: rpc(i),
            metrics_listen: metrics(i),
            mempool_peers: others(&|j| format!("http://{}", rpc(j))),
        };
        let text = toml::to_string(&config).map_err(|e| DevnetError::Invalid(e.to_string()))?;
        write(&home.join("node.toml"), &text)?;
        listed.push(DevnetNode {
            name: node.name.clone(),
            config: PathBuf::from(&node.name).join("node.toml"),
            rpc: format!("http://{}", rpc(i)),
            metrics: format!("http://{}/metrics", metrics(i)),
        });
    }
    let users_dir = dir.join("users");
    std::fs::create_dir_all(&users_dir).map_err(io(&users_dir))?;
    let mut user_files = Vec::new();
    for u in &users {
        let path = PathBuf::from("users").join(format!("{}.json", u.name));
        let key = serde_json::to_string_pretty(&key_file(u)).unwrap_or_default();
        write(&dir.join(&path), &key)?;
        user_files.push(path);
    }
    let devnet = Devnet { nodes: listed, users: user_files };
    let index = serde_json::to_string_pretty(&devnet).unwrap_or_default();
    write(&dir.join("devnet.json"), &index)?;
    Ok(devnet)
}

/// The configuration file `init` writes (the node reads it as `sonprop_node::NodeConfig`).
#[derive(Serialize)]
struct NodeToml {
    moniker: String,
    genesis: String,
    key_file: String,
    home: String,
    p2p_listen: String,
    peers: Vec<String>,
    rpc_listen: String,
    metrics_listen: String,
    mempool_peers: Vec<String>,
}

/// Reads a devnet's index.
pub fn load(dir: &Path) -> Result<Devnet, DevnetError> {
    let path = dir.join("devnet.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text)
        .map_err(|e| DevnetError::Io { path: path.display().to_string(), detail: e.to_string() })
}

/// The `sonprop-node` binary: `given`, else beside this program, else on the `PATH`.
pub fn node_binary(given: Option<&Path>) -> Result<PathBuf, DevnetError> {
    if let Some(p) = given {
        return match p.is_file() {
            true => Ok(p.to_owned()),
            false => Err(DevnetError::NoNodeBinary(p.display().to_string())),
        };
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("sonprop-node")))
        .filter(|p| p.is_file());
    if let Some(p) = beside {
        return Ok(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|d| d.join("sonprop-node")).find(|p| p.is_file())
    });
    on_path.ok_or_else(|| DevnetError::NoNodeBinary("beside `sonprop` or on the PATH".into()))
}

/// A started node process; stopped (SIGTERM, then killed) when dropped.
pub struct NodeProcess {
    /// The node's name.
    pub name: String,
    /// Its JSON-RPC URL.
    pub rpc: String,
    child: Child,
}

impl NodeProcess {
    /// Starts the node of `config` with `binary`, its log in `log`.
    pub fn start(
        binary: &Path,
        name: &str,
        rpc: &str,
        config: &Path,
        log: &Path,
    ) -> Result<NodeProcess, DevnetError> {
        let out =
            std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(io(log))?;
        let err = out.try_clone().map_err(io(log))?;
        let child = Command::new(binary)
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io(binary))?;
        Ok(NodeProcess { name: name.to_owned(), rpc: rpc.to_owned(), child })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (and how).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks it to stop (SIGTERM) and waits up to `patience`, then kills it.
    pub fn stop(&mut self, patience: Duration) {
        if self.exited().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = std::time::Instant::now() + patience;
        while std::time::Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// Starts every node of the devnet in `dir`, each logging to `<node>/node.log`.
pub fn up(dir: &Path, binary: &Path) -> Result<Vec<NodeProcess>, DevnetError> {
    let devnet = load(dir)?;
    devnet
        .nodes
        .iter()
        .map(|n| {
            let log = dir.join(&n.name).join("node.log");
            NodeProcess::start(binary, &n.name, &n.rpc, &dir.join(&n.config), &log)
        })
        .collect()
}

/// A user's key pair from its key file.
pub fn user_keys(path: &Path) -> Result<(sonprop_core::AccountId, KeyPair), DevnetError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let bad = |detail: String| DevnetError::Io { path: path.display().to_string(), detail };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let account = v["account"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| bad("no `account` (1.2.N)".into()))?;
    let secret = v["secret"]
        .as_str()
        .and_then(sonprop_core::chain::crypto::from_hex)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| bad("no `secret` (32 bytes of hex)".into()))?;
    let keys = KeyPair::from_secret_bytes(&secret).map_err(|e| bad(e.to_string()))?;
    Ok((account, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("sonprop-devnet-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn init_writes_a_genesis_and_per_node_files_on_distinct_loopback_ports() {
        let d = dir("init");
        let o = InitOptions { witnesses: 3, sons: 2, users: 1, ..InitOptions::default() };
        let net = init(&d, &o).expect("written");
        assert_eq!(net.nodes.len(), 5);
        assert_eq!(net.users.len(), 1);
        let mut rpcs: Vec<&str> = net.nodes.iter().map(|n| n.rpc.as_str()).collect();
        assert!(rpcs.iter().all(|r| r.starts_with("http://127.0.0.1:")));
        rpcs.sort();
        rpcs.dedup();
        assert_eq!(rpcs.len(), 5, "every node its own port");
        let g: sonprop_core::Genesis =
            serde_json::from_str(&std::fs::read_to_string(d.join("genesis.json")).expect("g"))
                .expect("a genesis");
        assert_eq!(g.active_witnesses.len(), 3);
        assert_eq!(g.elected_sons.len(), 2);
        let config = std::fs::read_to_string(d.join("son-1/node.toml")).expect("config");
        assert!(!config.contains("secret"), "keys stay out of the configuration");
        let (account, _) = user_keys(&d.join(&net.users[0])).expect("a user key");
        assert!(g.balances.iter().any(|(a, _, n)| *a == account && *n > 0), "users are funded");
        assert_eq!(load(&d).expect("index").nodes.len(), 5);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn init_refuses_a_used_folder_no_witness_and_timings_the_chain_refuses() {
        let d = dir("refuse");
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::write(d.join("something"), "x").expect("w");
        assert!(matches!(init(&d, &InitOptions::default()), Err(DevnetError::NotEmpty(_))));
        let d2 = dir("refuse2");
        let none = InitOptions { witnesses: 0, ..InitOptions::default() };
        assert!(matches!(init(&d2, &none), Err(DevnetError::Invalid(_))));
        let bad = InitOptions { son_down_time: Some(1), ..InitOptions::default() };
        let e = init(&d2, &bad).expect_err("down time under the heartbeat frequency");
        assert!(e.to_string().contains("son_down_time"), "{e}");
        assert!(matches!(node_binary(Some(&d.join("nope"))), Err(DevnetError::NoNodeBinary(_))));
        let _ = std::fs::remove_dir_all(&d);
        let _ = std::fs::remove_dir_all(&d2);
    }
}
