//! `sonprop-node`: a sonprop node as its own process.
//!
//! It composes the chain (core's ledger over a redb store, with every linked operation crate's
//! kinds), the Malachite BFT engine (Tendermint over libp2p: validators are the active
//! witnesses, a decided value is a sonprop block, and every decided block is final), a mempool
//! and a JSON-RPC server. [`run`] is the whole node; the modules are its parts:
//!
//! - [`ctx`]: the chain as the engine sees it (heights, validators, blocks, votes, signing);
//! - [`codec`]: the engine's messages on the wire;
//! - [`app`]: the dialog with the engine (propose, check, apply, serve catching-up peers);
//! - [`engine`]: what the engine needs to start (keys, addresses, configuration);
//! - [`config`]: the node's configuration file and key file;
//! - [`duties`]: the node's own work on decided blocks (heartbeats, triggers, validators);
//! - [`mempool`], [`rpc`], [`metrics`], [`client`].
//!
//! Nothing here is specific to one sidechain: the operation crates this crate links bring
//! their kinds, found by `Registry::discover`.

use malachitebft_app_channel::start_engine;
use sonprop_core::{Ledger, RedbStore, Registry, StoreOptions};

// Linking the operation crates registers their kinds.
use sonprop_deregister_son as _;
use sonprop_report_down as _;

pub mod app;
pub mod client;
pub mod codec;
pub mod config;
pub mod ctx;
pub mod duties;
pub mod engine;
pub mod mempool;
pub mod metrics;
pub mod rpc;

pub use config::{ConfigError, KeyFile, NodeConfig};

/// Runs the node the configuration describes until Ctrl-C or SIGTERM, or until the engine
/// stops.
pub async fn run(config: NodeConfig) -> eyre::Result<()> {
    let genesis = config.load_genesis()?;
    let identity = config.load_keys()?.identity()?;
    let registry = std::sync::Arc::new(Registry::discover()?);
    std::fs::create_dir_all(&config.home)?;
    let store = RedbStore::open(&config.home.join("chain.redb"))?;
    let ledger =
        Ledger::open(&genesis, registry.chain(), Box::new(store), StoreOptions::default())?;

    let ctx = ctx::Ctx::default();
    let me = identity.witness.map(|w| ctx::Address(w.0));
    let app = app::App::new(ledger, identity.keys.clone(), me, ctx.clone());
    let shared = app.shared();
    let (rpc_addr, rpc) =
        rpc::serve(config.rpc_listen, shared.clone(), config.mempool_peers.clone()).await?;
    tracing::info!(rpc = %rpc_addr, node = %identity.name, "JSON-RPC server listening");
    if let Some(addr) = config.metrics_listen {
        let at = metrics::serve(addr, shared.clone()).await?;
        tracing::info!(metrics = %at, "metrics served at /metrics");
    }

    // A witness or SON node runs its kinds' triggers and validators, and a SON its heartbeats.
    let duties = match identity.witness.is_some() || identity.son.is_some() {
        true => {
            let sink =
                duties::MempoolSink { shared: shared.clone(), peers: config.mempool_peers.clone() };
            let d = duties::Duties::new(identity.clone(), &registry, sink)?;
            Some(tokio::spawn(d.run(shared.heads.subscribe())))
        }
        false => None,
    };

    let node = engine::EngineNode {
        config: engine::EngineConfig::of(&config)?,
        identity,
        home: config.home.join("engine"),
    };
    let engine_config = node.config.clone();
    let (channels, handle) = start_engine(
        ctx,
        node,
        engine_config,
        codec::Borsh,
        codec::Borsh,
        Some(app.start_height()),
        app.validator_set(),
    )
    .await?;

    let result = tokio::select! {
        r = app.run(channels) => r,
        _ = shutdown() => Ok(()),
    };
    let _ = rpc.stop();
    if let Some(d) = duties {
        d.abort();
    }
    handle.actor.stop(None);
    result
}

async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
