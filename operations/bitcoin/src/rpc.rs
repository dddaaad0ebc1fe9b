//! A [`BitcoinSource`] over Bitcoin Core's JSON-RPC (node-local): `estimatesmartfee` for the fee
//! rate, `scantxoutset` for the outputs paying the watched scripts (one scan of every watched
//! script per new Bitcoin block, however many scripts are asked at once), `getrawtransaction`
//! for confirmations (`-txindex` needed for transactions that are neither in the mempool nor
//! the node's wallet) and `sendrawtransaction` to broadcast. Before the first request, and
//! after the node could not be reached, `getblockchaininfo` must name the configured network;
//! answers are read up to a size cap.
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
use crate::script::BitcoinNetwork;

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
    /// The network the node must be on: `getblockchaininfo` is asked before the first request
    /// and after the node could not be reached, and a node on another chain is refused
    /// ([`SourceError::WrongNetwork`]).
    pub network: BitcoinNetwork,
    /// The largest answer read, in bytes; a larger one is refused ([`SourceError::TooLarge`])
    /// without being read whole.
    pub max_answer_bytes: usize,
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
            network: BitcoinNetwork::Regtest,
            max_answer_bytes: 16 * 1024 * 1024,
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
    /// Whether the node's chain was checked since it was last unreachable.
    network_checked: Mutex<bool>,
}

/// What `getblockchaininfo`'s `chain` names each network (`main`, `test`, `signet`, `regtest`;
/// `testnet4` is Bitcoin Core 28's fourth testnet, which this crate's testnet does not mean).
pub fn chain_name(network: BitcoinNetwork) -> &'static str {
    match network {
        BitcoinNetwork::Bitcoin => "main",
        BitcoinNetwork::Testnet => "test",
        BitcoinNetwork::Signet => "signet",
        BitcoinNetwork::Regtest => "regtest",
    }
}

/// jsonrpc's HTTP transport over `bitreq`, with a cap on the answer's size: an answer past
/// `max_body` bytes is refused as it arrives, not read whole into memory.
struct Transport {
    url: String,
    timeout: Duration,
    authorization: Option<String>,
    max_body: usize,
}

impl Transport {
    fn post<R: DeserializeOwned>(&self, body: &impl serde::Serialize) -> Result<R, jsonrpc::Error> {
        use jsonrpc::http::bitreq_http::{Error as HttpError, HttpError as Status};
        let mut req = bitreq::Request::new(bitreq::Method::Post, self.url.as_str())
            .with_timeout(self.timeout)
            .with_max_headers_size(64 * 1024)
            .with_max_body_size(self.max_body);
        if let Some(auth) = &self.authorization {
            req = req.with_header("Authorization", auth.as_str());
        }
        let req = req.with_json(body).map_err(HttpError::Bitreq)?;
        let resp = req.send().map_err(HttpError::Bitreq)?;
        match resp.json() {
            Ok(json) => Ok(json),
            Err(_) if resp.status_code != 200 => Err(HttpError::Http(Status {
                status_code: resp.status_code,
                body: resp.as_str().unwrap_or("").to_owned(),
            })
            .into()),
            Err(e) => Err(HttpError::Bitreq(e).into()),
        }
    }
}

impl jsonrpc::Transport for Transport {
    fn send_request(&self, req: jsonrpc::Request) -> Result<jsonrpc::Response, jsonrpc::Error> {
        self.post(&req)
    }
    fn send_batch(
        &self,
        reqs: &[jsonrpc::Request],
    ) -> Result<Vec<jsonrpc::Response>, jsonrpc::Error> {
        self.post(&reqs)
    }
    fn fmt_target(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.url)
    }
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
    use jsonrpc::base64::Engine;
    let basic = |credentials: &str| {
        format!("Basic {}", jsonrpc::base64::engine::general_purpose::STANDARD.encode(credentials))
    };
    let authorization = match &config.auth {
        RpcAuth::UserPass { user, password } => basic(&format!("{user}:{password}")),
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
            basic(cookie)
        }
    };
    if !config.url.starts_with("http://") {
        return Err(SourceError::Config(format!(
            "url {}: only http:// is spoken (Bitcoin Core's RPC has no TLS)",
            config.url
        )));
    }
    Ok(jsonrpc::Client::with_transport(Transport {
        url: config.url.clone(),
        timeout: config.timeout,
        authorization: Some(authorization),
        max_body: config.max_answer_bytes,
    }))
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
                Http::Bitreq(bitreq::Error::BodyOverflow) => (SourceError::TooLarge, false),
                Http::Bitreq(bitreq::Error::HeadersOverflow) => (SourceError::TooLarge, false),
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

#[derive(Deserialize)]
struct ChainInfo {
    chain: String,
}

impl RpcSource {
    /// A source for `config`; reads the cookie file now (a typed error if it cannot).
    pub fn new(config: RpcConfig) -> Result<Self, SourceError> {
        let c = client(&config)?;
        Ok(RpcSource {
            client: Mutex::new(c),
            config,
            watched: Mutex::new(Watched::default()),
            network_checked: Mutex::new(false),
        })
    }

    /// Calls `method` on a node whose chain is the configured network (checked with
    /// `getblockchaininfo` before the first call and after the node was unreachable),
    /// retrying what may pass on a second try; after a 401 with cookie authentication, reads
    /// the cookie file again once (bitcoind restarted).
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        args: &[Value],
    ) -> Result<T, SourceError> {
        let checked = *lock(&self.network_checked);
        if !checked {
            let info: ChainInfo = self.call_unchecked("getblockchaininfo", &[])?;
            let want = chain_name(self.config.network);
            if info.chain != want {
                return Err(SourceError::WrongNetwork {
                    expected: want.to_owned(),
                    got: info.chain,
                });
            }
            *lock(&self.network_checked) = true;
        }
        self.call_unchecked(method, args)
    }

    fn call_unchecked<T: DeserializeOwned>(
        &self,
        method: &str,
        args: &[Value],
    ) -> Result<T, SourceError> {
        let result = self.call_retrying(method, args);
        if matches!(result, Err(SourceError::Unreachable(_) | SourceError::Timeout(_))) {
            // The node may come back as another: check its chain again first.
            *lock(&self.network_checked) = false;
        }
        result
    }

    fn call_retrying<T: DeserializeOwned>(
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

    /// The node's block count, asked again once `tip_refresh` has passed since the last answer.
    fn block_count(&self, w: &mut Watched) -> Result<u64, SourceError> {
        match w.tip {
            Some((count, at)) if at.elapsed() < self.config.tip_refresh => Ok(count),
            _ => {
                let count: u64 = self.call("getblockcount", &[])?;
                w.tip = Some((count, std::time::Instant::now()));
                Ok(count)
            }
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
        let all = self.outputs_to_many(std::slice::from_ref(script_pubkey))?;
        Ok(all.into_iter().next().unwrap_or_default())
    }

    /// Every script asked is watched from now on; the watched scripts are scanned in one
    /// `scantxoutset` when one is new or the tip moved, and not again until then.
    fn outputs_to_many(&self, scripts: &[ScriptBuf]) -> Result<Vec<Vec<SeenOutput>>, SourceError> {
        let mut w = lock(&self.watched);
        for s in scripts {
            if w.scripts.insert(s.clone()) {
                w.scanned_at = None;
            }
        }
        let count = self.block_count(&mut w)?;
        if w.scanned_at != Some(count) {
            self.rescan(&mut w, count)?;
        }
        Ok(scripts.iter().map(|s| w.found.get(s).cloned().unwrap_or_default()).collect())
    }

    /// The block count, refreshed as `outputs_to_many` refreshes it: the tip as the scans see
    /// it. A reorganisation that replaces the tip with another block at the same height keeps
    /// the count: what the new block pays is seen with the next block.
    fn tip(&self) -> Result<Option<u64>, SourceError> {
        let mut w = lock(&self.watched);
        let count = self.block_count(&mut w)?;
        Ok(Some(count))
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
