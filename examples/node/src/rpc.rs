//! The node's JSON-RPC server (over HTTP): submit a transaction, read the decided head and the
//! chain's objects, ask why a kind did or did not act on a subject.
//!
//! Every method reads the last decided state; only `submit_transaction` and `mempool_add`
//! change anything (the mempool), and a request they refuse changes nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use jsonrpsee::server::{RpcModule, Server, ServerHandle};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use serde_json::{json, Value};
use sonprop_core::{AccountId, ProposalId, SignedTransaction, SonId, Subject};

use crate::app::Shared;

/// The error code of a parameter the method cannot use.
pub const INVALID_PARAMS: i32 = -32602;
/// The error code of a transaction the mempool refuses.
pub const REFUSED: i32 = -32001;
/// The error code of an object that does not exist.
pub const NOT_FOUND: i32 = -32004;

fn error(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}

/// The one positional parameter of a method, parsed.
fn one<T: std::str::FromStr>(params: &Params<'_>, what: &str) -> Result<T, ErrorObjectOwned>
where
    T::Err: std::fmt::Display,
{
    let mut seq = params.sequence();
    let v: Value =
        seq.next().map_err(|_| error(INVALID_PARAMS, format!("expected one parameter: {what}")))?;
    let s = match v {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        other => return Err(error(INVALID_PARAMS, format!("{what}: not {other}"))),
    };
    s.parse().map_err(|e: T::Err| error(INVALID_PARAMS, format!("{what}: {e}")))
}

/// The server's state.
pub struct Rpc {
    shared: Arc<Shared>,
    peers: Vec<String>,
}

impl Rpc {
    /// Takes a transaction into the mempool; passes it on to the peers when `forward`.
    fn accept(&self, params: &Params<'_>, forward: bool) -> Result<Value, ErrorObjectOwned> {
        let mut seq = params.sequence();
        let raw: Value = seq.next().map_err(|_| {
            error(INVALID_PARAMS, "expected one parameter: a signed transaction (JSON)")
        })?;
        let tx: SignedTransaction = serde_json::from_value(raw.clone())
            .map_err(|e| error(INVALID_PARAMS, format!("not a signed transaction: {e}")))?;
        let head = self.shared.head();
        let digest = tx.transaction.digest(&head.state.chain_id());
        // Signed for this chain, or not taken: a transaction of another chain (or tampered
        // with) is refused at the door, not left for a block to drop.
        if tx.signatures.is_empty() || !tx.signatures.iter().all(|s| s.verify(&digest)) {
            return Err(error(REFUSED, "a signature does not verify for this chain"));
        }
        let new = self
            .shared
            .mempool
            .add(digest, tx, head.time)
            .map_err(|e| error(REFUSED, e.to_string()))?;
        if new && forward {
            crate::client::pass_on(&self.peers, raw);
        }
        Ok(json!({ "id": digest.to_hex(), "new": new }))
    }
}

fn status(rpc: &Rpc) -> Value {
    let head = rpc.shared.head();
    json!({
        "height": head.height,
        // Every block the engine decides is final: nothing decided is ever undone.
        "finalized_height": head.height,
        "head_time": head.time.secs(),
        "state_hash": head.state_hash.to_hex(),
        "chain_id": head.state.chain_id().to_hex(),
        "mempool": rpc.shared.mempool.len(),
        "included": rpc.shared.counters.included.load(std::sync::atomic::Ordering::Relaxed),
    })
}

fn found<T: serde::Serialize>(what: &str, v: Option<T>) -> Result<Value, ErrorObjectOwned> {
    let v = v.ok_or_else(|| error(NOT_FOUND, format!("no such {what}")))?;
    serde_json::to_value(v).map_err(|e| error(-32603, e.to_string()))
}

/// Builds the method table.
pub fn module(shared: Arc<Shared>, peers: Vec<String>) -> RpcModule<Rpc> {
    let mut m = RpcModule::new(Rpc { shared, peers });
    let registered = [
        m.register_method("status", |_, rpc, _| status(rpc)).map(|_| ()),
        m.register_method("submit_transaction", |p, rpc, _| rpc.accept(&p, true)).map(|_| ()),
        m.register_method("mempool_add", |p, rpc, _| rpc.accept(&p, false)).map(|_| ()),
        m.register_method("get_state_hash", |p, rpc, _| {
            let height: u64 = one(&p, "a block height")?;
            let hashes = rpc.shared.hashes.read().unwrap_or_else(|e| e.into_inner());
            let hash = hashes.get(&height).ok_or_else(|| {
                error(NOT_FOUND, format!("no state hash kept for height {height}"))
            })?;
            Ok::<_, ErrorObjectOwned>(json!(hash.to_hex()))
        })
        .map(|_| ()),
        m.register_method("get_account", |p, rpc, _| {
            let id: AccountId = one(&p, "an account id (1.2.N)")?;
            let st = rpc.shared.head().state;
            let balances: Vec<Value> = st
                .balances()
                .iter()
                .filter(|((a, _), _)| *a == id)
                .map(|((_, asset), amount)| json!({ "asset": asset, "amount": amount }))
                .collect();
            let mut v = found("account", st.account(id))?;
            v["balances"] = Value::Array(balances);
            v["id"] = json!(id);
            Ok::<_, ErrorObjectOwned>(v)
        })
        .map(|_| ()),
        m.register_method("get_son", |p, rpc, _| {
            let id: SonId = one(&p, "a SON id (1.33.N)")?;
            found("SON", rpc.shared.head().state.son(id))
        })
        .map(|_| ()),
        m.register_method("get_proposal", |p, rpc, _| {
            let id: ProposalId = one(&p, "a proposal id (1.10.N)")?;
            found("proposal", rpc.shared.head().state.proposal(id))
        })
        .map(|_| ()),
        m.register_method("explain", |p, rpc, _| {
            let mut seq = p.sequence();
            let kind: String = seq.next().map_err(|_| {
                error(INVALID_PARAMS, "expected two parameters: a kind and a subject")
            })?;
            let subject: String = seq.next().map_err(|_| {
                error(INVALID_PARAMS, "expected two parameters: a kind and a subject")
            })?;
            let subject: Subject =
                subject.parse().map_err(|e| error(INVALID_PARAMS, format!("subject: {e}")))?;
            let st = rpc.shared.head().state;
            found(&format!("kind `{kind}`"), st.explain(&kind, &subject))
        })
        .map(|_| ()),
    ];
    for r in registered {
        // The names above are distinct literals: registering them cannot clash.
        debug_assert!(r.is_ok());
    }
    m
}

/// Starts the server on `addr`; it runs until the handle is stopped or dropped with the
/// runtime.
pub async fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
    peers: Vec<String>,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let server = Server::builder().build(addr).await?;
    let local = server.local_addr()?;
    Ok((local, server.start(module(shared, peers))))
}
