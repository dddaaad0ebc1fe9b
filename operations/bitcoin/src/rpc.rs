//! A [`BitcoinSource`] over Bitcoin Core's JSON-RPC (node-local): `estimatesmartfee` for the fee
//! rate, `scantxoutset` for the outputs paying the watched scripts (one scan of every watched
//! script per new Bitcoin block), `getrawtransaction` for confirmations (`-txindex` needed for
//! transactions that are neither in the mempool nor the node's wallet) and
//! `sendrawtransaction` to broadcast.
//!
//! Authentication is a user and password (`rpcuser`/`rpcpassword`, or an `rpcauth` line) or
//! the cookie file bitcoind writes (read again after a 401, since bitcoind writes a new one
//! when it restarts). Each request has a timeout; requests that fail to connect, or meet an
//! HTTP error without a JSON-RPC answer (bitcoind's full work queue), are retried with a
//! growing pause. Every failure is a typed [`SourceError`].
//!
//! ```no_run
//! use std::time::Duration;
//! use sonprop_bitcoin::rpc::{RpcAuth, RpcConfig, RpcSource};
//!
//! let source = RpcSource::new(RpcConfig {
//!     url: "http://127.0.0.1:18443".into(),
//!     auth: RpcAuth::CookieFile("/home/son/.bitcoin/regtest/.cookie".into()),
//!     ..RpcConfig::default()
//! })
//! .expect("a readable cookie file");
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bitcoin::{OutPoint, ScriptBuf, Transaction, Txid};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::node::{BitcoinSource, SeenOutput, SourceError};

/// How the source authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcAuth {
    /// A user and password.
    UserPass {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// bitcoind's cookie file (`<datadir>/[regtest/].cookie`, `__cookie__:<secret>`).
    CookieFile(PathBuf),
}

/// Where and how to reach Bitcoin Core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcConfig {
    /// The RPC URL, e.g. `http://127.0.0.1:18443` (regtest's port).
    pub url: String,
    /// Credentials.
    pub auth: RpcAuth,
    /// How long one request may take.
    pub timeout: Duration,
    /// Further attempts after a request that could not connect (or met an HTTP error with no
    /// JSON-RPC answer).
    pub retries: u32,
    /// The pause before the first retry; doubled before each next one.
    pub retry_pause: Duration,
    /// The confirmation target `estimatesmartfee` is asked for, in blocks.
    pub fee_target_blocks: u16,
    /// How long a block count read from bitcoind is trusted before asking again (the outputs
    /// of watched scripts are scanned again when it changes).
    pub tip_refresh: Duration,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            url: "http://127.0.0.1:18443".into(),
            auth: RpcAuth::UserPass { user: String::new(), password: String::new() },
            timeout: Duration::from_secs(5),
            retries: 2,
            retry_pause: Duration::from_millis(200),
            fee_target_blocks: 6,
            tip_refresh: Duration::from_secs(1),
        }
    }
}

/// Bitcoin Core's `RPC_INVALID_ADDRESS_OR_KEY`: no such transaction.
pub const RPC_NOT_FOUND: i64 = -5;
/// Bitcoin Core's `RPC_VERIFY_ALREADY_IN_CHAIN`.
pub const RPC_ALREADY_IN_CHAIN: i64 = -27;
/// Bitcoin Core's `RPC_VERIFY_REJECTED`.
pub const RPC_REJECTED: i64 = -26;
/// Bitcoin Core's `RPC_VERIFY_ERROR` (missing or spent inputs, among others).
pub const RPC_VERIFY_ERROR: i64 = -25;

/// The watched scripts and what the last scan found.
#[derive(Default)]
struct Watched {
    scripts: BTreeSet<ScriptBuf>,
    /// The block count of the last scan; `None`: scan at the next call.
    scanned_at: Option<u64>,
    /// The last block count read, and when (node-local wall time).
    tip: Option<(u64, std::time::Instant)>,
    found: BTreeMap<ScriptBuf, Vec<SeenOutput>>,
}

/// A node's view of Bitcoin through Bitcoin Core's JSON-RPC.
pub struct RpcSource {
    config: RpcConfig,
    client: Mutex<jsonrpc::Client>,
    watched: Mutex<Watched>,
}

impl std::fmt::Debug for RpcSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcSource").field("url", &self.config.url).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn client(config: &RpcConfig) -> Result<jsonrpc::Client, SourceError> {
    let b = jsonrpc::http::bitreq_http::Builder::new()
        .url(&config.url)
        .map_err(|e| SourceError::Config(format!("url {}: {e}", config.url)))?
        .timeout(config.timeout);
    let b = match &config.auth {
        RpcAuth::UserPass { user, password } => b.basic_auth(user.clone(), Some(password.clone())),
        RpcAuth::CookieFile(path) => {
            let cookie = std::fs::read_to_string(path)
                .map_err(|e| SourceError::Config(format!("cookie file {}: {e}", path.display())))?;
            let cookie = cookie.trim();
            if !cookie.contains(':') {
                return Err(SourceError::Config(format!(
                    "cookie file {}: not `user:secret`",
                    path.display()
                )));
            }
            b.cookie_auth(cookie)
        }
    };
    Ok(jsonrpc::Client::with_transport(b.build()))
}

/// What went wrong, typed; and whether trying again may help.
fn classify(e: jsonrpc::Error, timeout: Duration) -> (SourceError, bool) {
    use jsonrpc::http::bitreq_http::Error as Http;
    match e {
        jsonrpc::Error::Rpc(r) => {
            (SourceError::Rpc { code: i64::from(r.code), message: r.message }, false)
        }
        jsonrpc::Error::Json(e) => (SourceError::Malformed(e.to_string()), false),
        jsonrpc::Error::Transport(t) => match t.downcast::<Http>() {
            Ok(h) => match *h {
                Http::Http(h) if h.status_code == 401 => (SourceError::Unauthorized, false),
                // The HTTP client reports a connection closed before any status line as a
                // 503 with no body (bitcoind's own 503 says why: a full work queue).
                Http::Http(h) if h.status_code == 503 && h.body.is_empty() => (
                    SourceError::Unreachable("the connection closed without an answer".into()),
                    true,
                ),
                Http::Http(h) => {
                    let retry = h.status_code >= 500;
                    (SourceError::Http { status: h.status_code, body: h.body }, retry)
                }
                Http::Json(e) => (SourceError::Malformed(e.to_string()), false),
                Http::Bitreq(bitreq::Error::IoError(io)) => match io.kind() {
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                        (SourceError::Timeout(timeout), false)
                    }
                    _ => (SourceError::Unreachable(io.to_string()), true),
                },
                Http::Bitreq(bitreq::Error::SerdeJsonError(e)) => {
                    (SourceError::Malformed(e.to_string()), false)
                }
                Http::Bitreq(other) => (SourceError::Malformed(other.to_string()), false),
                other => (SourceError::Unreachable(other.to_string()), true),
            },
            Err(t) => (SourceError::Unreachable(t.to_string()), true),
        },
        other => (SourceError::Malformed(other.to_string()), false),
    }
}

/// Satoshis of a BTC amount as Bitcoin Core prints it (eight decimals).
fn sats(btc: f64) -> Result<u64, SourceError> {
    let sat = (btc * 100_000_000.0).round();
    if !sat.is_finite() || !(0.0..=21e14).contains(&sat) {
        return Err(SourceError::Malformed(format!("amount {btc} BTC")));
    }
    Ok(sat as u64)
}

#[derive(Deserialize)]
struct SmartFee {
    feerate: Option<f64>,
    #[serde(default)]
    errors: Vec<String>,
}

#[derive(Deserialize)]
struct Scan {
    success: bool,
    height: u64,
    unspents: Vec<Unspent>,
}

#[derive(Deserialize)]
struct Unspent {
    txid: String,
    vout: u32,
    #[serde(rename = "scriptPubKey")]
    script_pub_key: String,
    amount: f64,
    height: u64,
}

#[derive(Deserialize)]
struct RawTx {
    confirmations: Option<u32>,
}

impl RpcSource {
    /// A source for `config`; reads the cookie file now (a typed error if it cannot).
    pub fn new(config: RpcConfig) -> Result<Self, SourceError> {
        let c = client(&config)?;
        Ok(RpcSource { client: Mutex::new(c), config, watched: Mutex::new(Watched::default()) })
    }

    /// Calls `method`, retrying what may pass on a second try; after a 401 with cookie
    /// authentication, reads the cookie file again once (bitcoind restarted).
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        args: &[Value],
    ) -> Result<T, SourceError> {
        let raw = serde_json::value::to_raw_value(args)
            .map_err(|e| SourceError::Malformed(e.to_string()))?;
        let mut pause = self.config.retry_pause;
        let mut reread_cookie = matches!(self.config.auth, RpcAuth::CookieFile(_));
        let mut attempt = 0;
        loop {
            let result = lock(&self.client).call::<T>(method, Some(&raw));
            let (error, retry) = match result {
                Ok(v) => return Ok(v),
                Err(e) => classify(e, self.config.timeout),
            };
            if error == SourceError::Unauthorized && reread_cookie {
                reread_cookie = false;
                *lock(&self.client) = client(&self.config)?;
                continue;
            }
            if !retry || attempt >= self.config.retries {
                return Err(error);
            }
            attempt += 1;
            std::thread::sleep(pause);
            pause = pause.saturating_mul(2);
        }
    }

    fn rescan(&self, w: &mut Watched, count: u64) -> Result<(), SourceError> {
        let objects: Vec<Value> =
            w.scripts.iter().map(|s| json!(format!("raw({})", s.to_hex_string()))).collect();
        let scan: Scan = self.call("scantxoutset", &[json!("start"), Value::Array(objects)])?;
        if !scan.success {
            return Err(SourceError::Unavailable("scantxoutset did not finish".into()));
        }
        let mut found: BTreeMap<ScriptBuf, Vec<SeenOutput>> = BTreeMap::new();
        for u in scan.unspents {
            let spk = ScriptBuf::from_hex(&u.script_pub_key)
                .map_err(|e| SourceError::Malformed(format!("scriptPubKey: {e}")))?;
            let confirmations = scan.height.saturating_sub(u.height) + 1;
            let txid: Txid =
                u.txid.parse().map_err(|e| SourceError::Malformed(format!("txid: {e}")))?;
            found.entry(spk).or_default().push(SeenOutput {
                outpoint: OutPoint { txid, vout: u.vout },
                amount_sat: sats(u.amount)?,
                confirmations: u32::try_from(confirmations).unwrap_or(u32::MAX),
            });
        }
        w.found = found;
        w.scanned_at = Some(count);
        Ok(())
    }
}

impl BitcoinSource for RpcSource {
    fn fee_rate(&self) -> Result<u64, SourceError> {
        let fee: SmartFee =
            self.call("estimatesmartfee", &[json!(self.config.fee_target_blocks)])?;
        match fee.feerate {
            // BTC per 1000 vB -> sat per vB, rounded up, at least 1.
            Some(btc_per_kvb) => Ok(sats(btc_per_kvb)?.div_ceil(1000).max(1)),
            None => Err(SourceError::Unavailable(format!(
                "no fee estimate: {}",
                if fee.errors.is_empty() { "none given".into() } else { fee.errors.join("; ") }
            ))),
        }
    }

    fn outputs_to(&self, script_pubkey: &ScriptBuf) -> Result<Vec<SeenOutput>, SourceError> {
        let mut w = lock(&self.watched);
        if w.scripts.insert(script_pubkey.clone()) {
            w.scanned_at = None;
        }
        let count = match w.tip {
            Some((count, at)) if at.elapsed() < self.config.tip_refresh => count,
            _ => {
                let count: u64 = self.call("getblockcount", &[])?;
                w.tip = Some((count, std::time::Instant::now()));
                count
            }
        };
        if w.scanned_at != Some(count) {
            self.rescan(&mut w, count)?;
        }
        Ok(w.found.get(script_pubkey).cloned().unwrap_or_default())
    }

    fn confirmations(&self, txid: &Txid) -> Result<Option<u32>, SourceError> {
        match self.call::<RawTx>("getrawtransaction", &[json!(txid.to_string()), json!(true)]) {
            Ok(t) => Ok(Some(t.confirmations.unwrap_or(0))),
            Err(SourceError::Rpc { code: RPC_NOT_FOUND, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn broadcast(&self, tx: &Transaction) -> Result<(), SourceError> {
        let hex = bitcoin::consensus::encode::serialize_hex(tx);
        match self.call::<String>("sendrawtransaction", &[json!(hex)]) {
            Ok(_) | Err(SourceError::Rpc { code: RPC_ALREADY_IN_CHAIN, .. }) => Ok(()),
            Err(SourceError::Rpc { code, message })
                if code == RPC_REJECTED || code == RPC_VERIFY_ERROR =>
            {
                Err(SourceError::Rejected(format!("{message} (RPC error {code})")))
            }
            Err(e) => Err(e),
        }
    }
}
