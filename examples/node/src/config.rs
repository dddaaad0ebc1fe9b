//! A node's configuration file (TOML) and its key file (JSON, never inside the TOML).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sonprop_core::{AccountId, KeyPair, NodeIdentity, SonId, WitnessId};

/// One node's configuration. Relative paths are read from the configuration file's folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name in logs.
    pub moniker: String,
    /// The genesis (JSON, as `sonprop devnet init` writes it).
    pub genesis: PathBuf,
    /// The key file: who this node is, and its secret key.
    pub key_file: PathBuf,
    /// Where the node keeps its chain and the engine its write-ahead log.
    pub home: PathBuf,
    /// The engine's peer-to-peer address, e.g. `/ip4/127.0.0.1/tcp/27000`.
    pub p2p_listen: String,
    /// The other nodes' peer-to-peer addresses.
    #[serde(default)]
    pub peers: Vec<String>,
    /// The JSON-RPC server's address, e.g. `127.0.0.1:28000`.
    pub rpc_listen: SocketAddr,
    /// Where to serve the metrics (Prometheus text format at `/metrics`); none if left out.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// The other nodes' JSON-RPC URLs: a transaction this node receives is passed on to them.
    #[serde(default)]
    pub mempool_peers: Vec<String>,
    /// Consensus timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
}

/// The engine's step timeouts, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Waiting for the round's proposal.
    pub propose_ms: u64,
    /// Waiting for prevotes after seeing a polka for anything.
    pub prevote_ms: u64,
    /// Waiting for precommits after seeing two thirds for anything.
    pub precommit_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { propose_ms: 3_000, prevote_ms: 1_000, precommit_ms: 1_000 }
    }
}

/// A key file: the identity a node runs as.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// A readable name.
    pub name: String,
    /// The account it signs transactions as.
    pub account: AccountId,
    /// The witness it operates, if any (its block-signing key is the same secret).
    #[serde(default)]
    pub witness: Option<WitnessId>,
    /// The SON it operates, if any.
    #[serde(default)]
    pub son: Option<SonId>,
    /// The 32-byte secret key, in hex.
    pub secret: String,
}

impl KeyFile {
    /// The key file of `identity`.
    pub fn of(identity: &NodeIdentity) -> KeyFile {
        KeyFile {
            name: identity.name.clone(),
            account: identity.account,
            witness: identity.witness,
            son: identity.son,
            secret: sonprop_core::chain::crypto::hex(&identity.keys.secret_key().secret_bytes()),
        }
    }

    /// The identity it names.
    pub fn identity(&self) -> Result<NodeIdentity, ConfigError> {
        let bad = || ConfigError::Key("`secret` is not 32 bytes of hex".into());
        let bytes = sonprop_core::chain::crypto::from_hex(&self.secret).ok_or_else(bad)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        let keys =
            KeyPair::from_secret_bytes(&bytes).map_err(|e| ConfigError::Key(e.to_string()))?;
        Ok(NodeIdentity {
            name: self.name.clone(),
            account: self.account,
            keys,
            witness: self.witness,
            son: self.son,
        })
    }
}

/// What is wrong with a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {path}: {detail}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// A file does not parse.
    #[error("{path} is not a valid {what}: {detail}")]
    Parse {
        /// The file.
        path: String,
        /// What it should be.
        what: &'static str,
        /// The parser's message.
        detail: String,
    },
    /// The key file's key is unusable.
    #[error("the key file's key is unusable: {0}")]
    Key(String),
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Read { path: path.display().to_string(), detail: e.to_string() })
}

impl NodeConfig {
    /// Reads a configuration file, resolving its relative paths against its folder.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = read(path)?;
        let mut c: NodeConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            what: "node configuration",
            detail: e.to_string(),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for p in [&mut c.genesis, &mut c.key_file, &mut c.home] {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        Ok(c)
    }

    /// The genesis it names.
    pub fn load_genesis(&self) -> Result<sonprop_core::Genesis, ConfigError> {
        let text = read(&self.genesis)?;
        serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
            path: self.genesis.display().to_string(),
            what: "genesis",
            detail: e.to_string(),
        })
    }

    /// The key file it names.
    pub fn load_keys(&self) -> Result<KeyFile, ConfigError> {
        let text = read(&self.key_file)?;
        serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
            path: self.key_file.display().to_string(),
            what: "key file",
            detail: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("sonprop-node-config-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    const GOOD: &str = r#"
moniker = "w0"
genesis = "../genesis.json"
key_file = "key.json"
home = "."
p2p_listen = "/ip4/127.0.0.1/tcp/1"
rpc_listen = "127.0.0.1:2"
"#;

    #[test]
    fn relative_paths_are_read_from_the_configuration_folder() {
        let d = dir("paths");
        std::fs::write(d.join("node.toml"), GOOD).expect("write");
        let c = NodeConfig::load(&d.join("node.toml")).expect("loads");
        assert_eq!(c.key_file, d.join("key.json"));
        assert_eq!(c.genesis, d.join("../genesis.json"));
        assert!(c.peers.is_empty());
        assert_eq!(c.timeouts.propose_ms, Timeouts::default().propose_ms);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_configuration_shown_in_the_node_guide_loads() {
        let guide = include_str!("../../../docs/node.md");
        let block = guide
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a toml block in docs/node.md");
        let c: NodeConfig = toml::from_str(block).expect("the guide's configuration parses");
        assert_eq!(c.timeouts.propose_ms, 3000);
        assert!(c.metrics_listen.is_some());
        assert_eq!(c.peers.len(), 2);
    }

    #[test]
    fn a_missing_file_an_unknown_key_and_a_bad_secret_are_named() {
        let d = dir("bad");
        let e = NodeConfig::load(&d.join("none.toml")).expect_err("missing");
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
        std::fs::write(d.join("node.toml"), format!("{GOOD}secret = \"in the toml\"\n"))
            .expect("w");
        let e = NodeConfig::load(&d.join("node.toml")).expect_err("unknown key");
        assert!(e.to_string().contains("secret") && e.to_string().contains("node.toml"), "{e}");
        let key = KeyFile {
            name: "w".into(),
            account: AccountId(1),
            witness: None,
            son: None,
            secret: "abcd".into(),
        };
        assert!(matches!(key.identity(), Err(ConfigError::Key(_))));
        let zero = KeyFile { secret: "00".repeat(32), ..key };
        assert!(matches!(zero.identity(), Err(ConfigError::Key(_))), "zero is no secp256k1 key");
        let _ = std::fs::remove_dir_all(&d);
    }
}
