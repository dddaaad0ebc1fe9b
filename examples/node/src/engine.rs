//! What the engine asks of a node to start: its keys, its address, its configuration, and
//! where to keep its write-ahead log.

use std::path::PathBuf;
use std::time::Duration;

use malachitebft_app_channel::app::config::{
    ConsensusConfig, P2pConfig, TimeoutConfig, ValuePayload, ValueSyncConfig,
};
use malachitebft_app_channel::app::events::RxEvent;
use malachitebft_app_channel::app::node::{EngineHandle, Node, NodeConfig, NodeHandle};
use malachitebft_app_channel::app::types::Keypair;
use serde::{Deserialize, Serialize};
use sonprop_core::{Digest, NodeIdentity};

use crate::config::{ConfigError, NodeConfig as FileConfig};
use crate::ctx::{Address, Ctx, PrivateKey, PublicKey, Signer};

/// The engine's part of the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineConfig {
    moniker: String,
    consensus: ConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl NodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &ConsensusConfig {
        &self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
}

fn multiaddr<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, ConfigError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|e| {
        ConfigError::Parse {
            path: s.to_owned(),
            what: "peer-to-peer address",
            detail: e.to_string(),
        }
    })
}

impl EngineConfig {
    /// The engine's configuration from the node's file.
    pub fn of(c: &FileConfig) -> Result<EngineConfig, ConfigError> {
        let t = c.timeouts;
        let timeouts = TimeoutConfig {
            timeout_propose: Duration::from_millis(t.propose_ms),
            timeout_prevote: Duration::from_millis(t.prevote_ms),
            timeout_precommit: Duration::from_millis(t.precommit_ms),
            timeout_rebroadcast: Duration::from_millis(
                t.propose_ms + t.prevote_ms + t.precommit_ms,
            ),
            ..TimeoutConfig::default()
        };
        let p2p = P2pConfig {
            listen_addr: multiaddr(&c.p2p_listen)?,
            persistent_peers: c.peers.iter().map(|p| multiaddr(p)).collect::<Result<_, _>>()?,
            ..P2pConfig::default()
        };
        let value_sync = ValueSyncConfig {
            status_update_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            ..ValueSyncConfig::default()
        };
        Ok(EngineConfig {
            moniker: c.moniker.clone(),
            consensus: ConsensusConfig {
                timeouts,
                p2p,
                value_payload: ValuePayload::PartsOnly,
                queue_capacity: 0,
            },
            value_sync,
        })
    }
}

/// The node as the engine sees it.
pub struct EngineNode {
    /// The engine's configuration.
    pub config: EngineConfig,
    /// The node's identity.
    pub identity: NodeIdentity,
    /// Where the write-ahead log goes.
    pub home: PathBuf,
}

/// This node's address: its witness, or, for a node that only follows, an address no witness
/// has.
pub fn address_of(identity: &NodeIdentity) -> Address {
    match identity.witness {
        Some(w) => Address(w.0),
        None => Address(u64::MAX - identity.account.0),
    }
}

/// A running engine.
pub struct Handle {
    engine: EngineHandle,
    events: malachitebft_app_channel::app::events::TxEvent<Ctx>,
}

#[async_trait::async_trait]
impl NodeHandle<Ctx> for Handle {
    fn subscribe(&self) -> RxEvent<Ctx> {
        self.events.subscribe()
    }

    async fn kill(&self, _reason: Option<String>) -> eyre::Result<()> {
        self.engine.actor.kill_and_wait(None).await?;
        self.engine.handle.abort();
        Ok(())
    }
}

impl Handle {
    /// A handle on a started engine.
    pub fn new(
        engine: EngineHandle,
        events: malachitebft_app_channel::app::events::TxEvent<Ctx>,
    ) -> Handle {
        Handle { engine, events }
    }
}

#[async_trait::async_trait]
impl Node for EngineNode {
    type Context = Ctx;
    type Config = EngineConfig;
    type Genesis = sonprop_core::Genesis;
    type PrivateKeyFile = crate::config::KeyFile;
    type SigningProvider = Signer;
    type NodeHandle = Handle;

    async fn start(&self) -> eyre::Result<Handle> {
        eyre::bail!("a sonprop node is started by `sonprop_node::run`, which owns its ledger")
    }

    async fn run(self) -> eyre::Result<()> {
        eyre::bail!("a sonprop node is run by `sonprop_node::run`, which owns its ledger")
    }

    fn get_home_dir(&self) -> PathBuf {
        self.home.clone()
    }

    fn load_config(&self) -> eyre::Result<EngineConfig> {
        Ok(self.config.clone())
    }

    fn get_address(&self, _pk: &PublicKey) -> Address {
        address_of(&self.identity)
    }

    fn get_public_key(&self, pk: &PrivateKey) -> PublicKey {
        PublicKey(pk.0.public().serialize())
    }

    fn get_keypair(&self, pk: PrivateKey) -> Keypair {
        // The network identity is an ed25519 key derived from the node's secret; the engine's
        // messages are signed with the secp256k1 key itself.
        let mut seed = b"sonprop-node-p2p-v1".to_vec();
        seed.extend_from_slice(&pk.0.secret_key().secret_bytes());
        Keypair::ed25519_from_bytes(Digest::of(&seed).0)
            .expect("32 bytes are always an ed25519 secret")
    }

    fn load_private_key(&self, _file: crate::config::KeyFile) -> PrivateKey {
        PrivateKey(self.identity.keys.clone())
    }

    fn load_private_key_file(&self) -> eyre::Result<crate::config::KeyFile> {
        Ok(crate::config::KeyFile::of(&self.identity))
    }

    fn load_genesis(&self) -> eyre::Result<sonprop_core::Genesis> {
        eyre::bail!("the genesis is read by `sonprop_node::run`")
    }

    fn get_signing_provider(&self, pk: PrivateKey) -> Signer {
        Signer(pk.0)
    }
}
