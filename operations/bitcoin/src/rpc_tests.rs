//! The Bitcoin Core source against a loopback HTTP server answering as Bitcoin Core documents
//! (results, RPC errors in both the HTTP 500 and the HTTP 200 styles, a 401 with an empty
//! body, a full work queue) and misbehaving (malformed JSON, a hang, a dropped connection).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoin::{ScriptBuf, Txid};
use serde_json::{json, Value};
use sonprop_core::node::scheduler::{PluginStatus, SchedulerConfig};
use sonprop_core::testkit::TestNetwork;
use sonprop_core::{ChainParameters, Services};

use crate::node::{BitcoinNode, BitcoinSource, SourceError};
use crate::rpc::{RpcAuth, RpcConfig, RpcSource};

/// What the server does with one request.
enum Reply {
    /// `{"result": …, "error": null, "id": …}`, HTTP 200.
    Result(Value),
    /// A JSON-RPC error with this HTTP status (500 before Bitcoin Core 28, 200 with JSON-RPC
    /// 2.0 requests since).
    Error(i64, &'static str, u16),
    /// This status and raw body.
    Raw(u16, &'static str),
    /// Waits this long, then closes without answering.
    Hang(Duration),
    /// Closes the connection at once.
    Drop,
}

type Handler = dyn Fn(&str, &Value, Option<&str>) -> Reply + Send + Sync;

struct Server {
    addr: SocketAddr,
    /// Each request's method.
    methods: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn methods(&self) -> Vec<String> {
        self.methods.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many requests for `method` arrived.
    fn calls(&self, method: &str) -> usize {
        self.methods().iter().filter(|m| *m == method).count()
    }
}

/// A server on 127.0.0.1 (loopback only), one thread per connection, that names its chain
/// `regtest` and answers every other method with `handler`.
fn serve(handler: impl Fn(&str, &Value, Option<&str>) -> Reply + Send + Sync + 'static) -> Server {
    serve_raw(move |method, params, auth| match method {
        "getblockchaininfo" => Reply::Result(json!({"chain": "regtest", "blocks": 200})),
        _ => handler(method, params, auth),
    })
}

/// A server on 127.0.0.1 (loopback only), one thread per connection, answering every method
/// (`getblockchaininfo` included) with `handler`.
fn serve_raw(
    handler: impl Fn(&str, &Value, Option<&str>) -> Reply + Send + Sync + 'static,
) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let handler: Arc<Handler> = Arc::new(handler);
    let methods = Arc::new(Mutex::new(Vec::new()));
    let m = methods.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (handler, m) = (handler.clone(), m.clone());
            std::thread::spawn(move || answer(stream, &*handler, &m));
        }
    });
    Server { addr, methods }
}

fn answer(stream: TcpStream, handler: &Handler, methods: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let (mut length, mut auth) = (0usize, None);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "authorization" => auth = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let method = req["method"].as_str().unwrap_or_default().to_owned();
    methods.lock().unwrap_or_else(|p| p.into_inner()).push(method.clone());
    let id = req["id"].clone();
    let (status, body) = match handler(&method, &req["params"], auth.as_deref()) {
        Reply::Result(v) => (200, json!({"result": v, "error": null, "id": id}).to_string()),
        Reply::Error(code, message, status) => (
            status,
            json!({"result": null, "error": {"code": code, "message": message}, "id": id})
                .to_string(),
        ),
        Reply::Raw(status, body) => (status, body.to_owned()),
        Reply::Hang(d) => {
            std::thread::sleep(d);
            return;
        }
        Reply::Drop => return,
    };
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    let mut out = stream;
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn config(server: &Server) -> RpcConfig {
    RpcConfig {
        url: server.url(),
        auth: RpcAuth::UserPass { user: "son".into(), password: "secret".into() },
        timeout: Duration::from_millis(500),
        retries: 2,
        retry_pause: Duration::from_millis(10),
        tip_refresh: Duration::ZERO,
        ..RpcConfig::default()
    }
}

/// `Basic base64("son:secret")`.
const SON_SECRET: &str = "Basic c29uOnNlY3JldA==";

fn spk(tag: u8) -> ScriptBuf {
    ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([tag; 32]))
}

fn txid(tag: u8) -> Txid {
    Txid::from_byte_array([tag; 32])
}

/// A bitcoind at block 200 holding two outputs to `spk(1)` (one confirmed 3 times, one in the
/// block at the tip) and one to `spk(2)`.
fn core_like(method: &str, params: &Value, auth: Option<&str>) -> Reply {
    if auth != Some(SON_SECRET) {
        return Reply::Raw(401, "");
    }
    match method {
        "getblockchaininfo" => Reply::Result(json!({"chain": "regtest", "blocks": 200})),
        "estimatesmartfee" => Reply::Result(json!({"feerate": 0.00012345, "blocks": params[0]})),
        "getblockcount" => Reply::Result(json!(200)),
        "scantxoutset" => {
            let unspent = |t: u8, vout: u32, s: u8, amount: f64, height: u64| {
                json!({
                    "txid": txid(t).to_string(), "vout": vout,
                    "scriptPubKey": spk(s).to_hex_string(),
                    "desc": "raw(…)#checksum", "amount": amount, "coinbase": false,
                    "height": height, "blockhash": "00".repeat(32), "confirmations": 201 - height
                })
            };
            Reply::Result(json!({
                "success": true, "txouts": 3, "height": 200, "bestblock": "00".repeat(32),
                "unspents": [unspent(7, 0, 1, 0.5, 198), unspent(8, 1, 1, 0.00000330, 200),
                             unspent(9, 0, 2, 21.0, 10)],
                "total_amount": 21.5000033
            }))
        }
        "getrawtransaction" => match params[0].as_str() {
            Some(t) if t == txid(7).to_string() => Reply::Result(json!({"confirmations": 4})),
            Some(t) if t == txid(8).to_string() => Reply::Result(json!({"txid": t})),
            _ => Reply::Error(-5, "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.", 500),
        },
        "sendrawtransaction" => Reply::Result(json!(txid(5).to_string())),
        _ => Reply::Error(-32601, "Method not found", 500),
    }
}

fn any_tx() -> bitcoin::Transaction {
    bitcoin::Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![bitcoin::TxIn::default()],
        output: vec![],
    }
}

#[test]
fn answers_are_read_as_bitcoin_core_documents_them() {
    let server = serve(core_like);
    let source = RpcSource::new(config(&server)).expect("source");
    // 0.00012345 BTC/kvB = 12 345 sat per 1000 vB: 12.345 sat/vB, rounded up.
    assert_eq!(source.fee_rate(), Ok(13));
    let seen = source.outputs_to(&spk(1)).expect("outputs");
    let got: Vec<_> =
        seen.iter().map(|o| (o.outpoint.txid, o.amount_sat, o.confirmations)).collect();
    assert_eq!(got, vec![(txid(7), 50_000_000, 3), (txid(8), 330, 1)]);
    let seen = source.outputs_to(&spk(2)).expect("outputs");
    assert_eq!((seen[0].amount_sat, seen[0].confirmations), (2_100_000_000, 191));
    assert!(source.outputs_to(&spk(3)).expect("outputs").is_empty());
    let scans = server.methods().iter().filter(|m| *m == "scantxoutset").count();
    assert_eq!(scans, 3, "one scan per newly watched script, none for the same tip");
    source.outputs_to(&spk(1)).expect("outputs");
    assert_eq!(server.methods().iter().filter(|m| *m == "scantxoutset").count(), 3);
    let checks = server.methods().iter().filter(|m| *m == "getblockchaininfo").count();
    assert_eq!(checks, 1, "the chain is checked once, before the first request");

    assert_eq!(source.confirmations(&txid(7)), Ok(Some(4)));
    assert_eq!(source.confirmations(&txid(8)), Ok(Some(0)), "in the mempool: no field");
    assert_eq!(source.confirmations(&txid(1)), Ok(None), "RPC error -5: unknown");
    assert_eq!(source.broadcast(&any_tx()), Ok(()));
}

#[test]
fn broadcast_verdicts_are_typed() {
    let server = serve(|method, _, _| match method {
        "sendrawtransaction" => Reply::Error(-26, "mandatory-script-verify-flag-failed", 200),
        _ => Reply::Error(-27, "Transaction already in block chain", 500),
    });
    let source = RpcSource::new(config(&server)).expect("source");
    let e = source.broadcast(&any_tx()).expect_err("rejected");
    assert!(matches!(&e, SourceError::Rejected(m) if m.contains("-26")), "{e}");
    let already = serve(|_, _, _| Reply::Error(-27, "Transaction already in block chain", 500));
    let source = RpcSource::new(config(&already)).expect("source");
    assert_eq!(source.broadcast(&any_tx()), Ok(()), "already in the chain is not an error");
}

#[test]
fn failures_are_typed_and_only_transient_ones_retried() {
    // Wrong credentials: HTTP 401 with an empty body, as bitcoind answers; not retried.
    let server = serve(core_like);
    let wrong = RpcConfig {
        auth: RpcAuth::UserPass { user: "son".into(), password: "guess".into() },
        ..config(&server)
    };
    let source = RpcSource::new(wrong).expect("source");
    assert_eq!(source.fee_rate(), Err(SourceError::Unauthorized));
    assert_eq!(server.calls("estimatesmartfee"), 1, "not retried");

    // An RPC error code, in the HTTP 200 style of JSON-RPC 2.0 answers.
    let server = serve(|_, _, _| Reply::Error(-8, "Invalid conf_target", 200));
    let source = RpcSource::new(config(&server)).expect("source");
    let e = source.fee_rate().expect_err("rpc error");
    assert_eq!(e, SourceError::Rpc { code: -8, message: "Invalid conf_target".into() });

    // No estimate yet (a fresh regtest chain).
    let server = serve(|_, _, _| {
        Reply::Result(json!({"errors": ["Insufficient data or no feerate found"], "blocks": 0}))
    });
    let source = RpcSource::new(config(&server)).expect("source");
    let e = source.fee_rate().expect_err("no estimate");
    assert!(matches!(&e, SourceError::Unavailable(m) if m.contains("Insufficient data")), "{e}");

    // Malformed JSON; and well-formed JSON of the wrong shape.
    let server = serve(|_, _, _| Reply::Raw(200, "{\"result\": {\"feerate\": 0.0001,"));
    let source = RpcSource::new(config(&server)).expect("source");
    assert!(matches!(source.fee_rate(), Err(SourceError::Malformed(_))));
    assert_eq!(server.calls("estimatesmartfee"), 1, "not retried");
    let server = serve(|_, _, _| Reply::Result(json!({"feerate": "lots"})));
    let source = RpcSource::new(config(&server)).expect("source");
    assert!(matches!(source.fee_rate(), Err(SourceError::Malformed(_))));

    // A full work queue (HTTP 503, no JSON): retried twice, then typed.
    let server = serve(|_, _, _| Reply::Raw(503, "Work queue depth exceeded"));
    let source = RpcSource::new(config(&server)).expect("source");
    let e = source.fee_rate().expect_err("busy");
    assert!(matches!(&e, SourceError::Http { status: 503, .. }), "{e}");
    assert_eq!(server.calls("estimatesmartfee"), 3, "1 try + 2 retries");

    // A connection closed without an answer: retried, then unreachable.
    let server = serve(|_, _, _| Reply::Drop);
    let source = RpcSource::new(config(&server)).expect("source");
    let e = source.fee_rate().expect_err("dropped");
    assert!(matches!(e, SourceError::Unreachable(_)), "{e}");
    assert_eq!(server.calls("estimatesmartfee"), 3);

    // A hang: the request times out, once (a hung node would hang again).
    let server = serve(|_, _, _| Reply::Hang(Duration::from_secs(3)));
    let source = RpcSource::new(config(&server)).expect("source");
    let started = Instant::now();
    let e = source.fee_rate().expect_err("hangs");
    assert_eq!(e, SourceError::Timeout(Duration::from_millis(500)));
    assert!(started.elapsed() < Duration::from_millis(2500), "{:?}", started.elapsed());
    assert_eq!(server.calls("estimatesmartfee"), 1);

    // Nothing listens.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let source = RpcSource::new(RpcConfig { url: format!("http://{closed}"), ..config(&server) })
        .expect("source");
    assert!(matches!(source.fee_rate(), Err(SourceError::Unreachable(_))));
}

#[test]
fn cookie_authentication_reads_the_cookie_again_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("sonprop-cookie-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cookie = dir.join(".cookie");
    std::fs::write(&cookie, "__cookie__:first").expect("write");
    let expected = Arc::new(Mutex::new("__cookie__:first".to_owned()));
    let e2 = expected.clone();
    let server = serve(move |_, _, auth| {
        let want = e2.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // The base64 of each cookie, worked out beforehand.
        let want = match want.as_str() {
            "__cookie__:first" => "Basic X19jb29raWVfXzpmaXJzdA==",
            "__cookie__:second" => "Basic X19jb29raWVfXzpzZWNvbmQ=",
            _ => "Basic X19jb29raWVfXzp0aGlyZA==",
        };
        if auth == Some(want) {
            Reply::Result(json!(200))
        } else {
            Reply::Raw(401, "")
        }
    });
    let source =
        RpcSource::new(RpcConfig { auth: RpcAuth::CookieFile(cookie.clone()), ..config(&server) })
            .expect("source");
    assert_eq!(source.call::<u64>("getblockcount", &[]), Ok(200));
    // bitcoind restarts with a new cookie.
    *expected.lock().unwrap_or_else(|p| p.into_inner()) = "__cookie__:second".into();
    std::fs::write(&cookie, "__cookie__:second").expect("write");
    assert_eq!(source.call::<u64>("getblockcount", &[]), Ok(200), "read again after the 401");
    // A cookie that is wrong for good is a 401.
    std::fs::write(&cookie, "__cookie__:stale").expect("write");
    *expected.lock().unwrap_or_else(|p| p.into_inner()) = "__cookie__:third".into();
    assert_eq!(source.call::<u64>("getblockcount", &[]), Err(SourceError::Unauthorized));
    // No cookie file at all: refused when the source is made.
    let missing = RpcConfig { auth: RpcAuth::CookieFile(dir.join("none")), ..config(&server) };
    assert!(matches!(RpcSource::new(missing), Err(SourceError::Config(_))));
    let _ = std::fs::remove_dir_all(&dir);
}

/// SON nodes whose bitcoind hangs: their Bitcoin triggers fail with the timeout, and blocks go
/// on being produced (and the SON-management kinds keep running).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_bitcoind_fails_the_bitcoin_parts_and_blocks_go_on() {
    let server = serve(|_, _, _| Reply::Hang(Duration::from_secs(10)));
    let rpc = RpcConfig { timeout: Duration::from_millis(300), retries: 0, ..config(&server) };
    let registry = crate::test_support::registry();
    let params = ChainParameters { maximum_son_count: 6, ..ChainParameters::default() };
    let b = TestNetwork::builder().witnesses(3).sons(6).params(params);
    let mut net = b.clone().build(registry);
    net.start_schedulers_with(SchedulerConfig::for_tests(), move |node| match node.son {
        Some(_) => Services::new().with(BitcoinNode {
            source: Arc::new(RpcSource::new(rpc.clone()).expect("source")),
            key: b.sidechain_key(&node.name, "bitcoin").secret_key(),
            fee_band_percent: 25,
            retired_keys: Vec::new(),
        }),
        None => Services::new(),
    })
    .expect("services");
    let start = net.ledger.state().head_height();
    let mut failures = Vec::new();
    for _ in 0..4 {
        let step = net.step().await;
        for (_, r) in &step.reports {
            for o in &r.outcomes {
                if let PluginStatus::Failed(m) = &o.status {
                    failures.push((o.kind, m.clone()));
                }
            }
        }
    }
    assert_eq!(net.ledger.state().head_height(), start + 4, "every block was produced");
    assert!(
        failures.iter().any(|(k, m)| *k == crate::UTXO
            && m.contains("no answer from the Bitcoin node within 300ms")),
        "{failures:?}"
    );
    // What needs only the chain goes on: the first wallet is made from chain state alone.
    assert!(crate::state::current_wallet(net.ledger.state()).is_some());
}

/// A node on another chain is refused before any other request, and checked again after it
/// could not be reached (it may come back as another node).
#[test]
fn a_node_on_another_chain_is_refused_and_checked_again_after_a_reconnect() {
    let chain = Arc::new(Mutex::new("main"));
    let down = Arc::new(Mutex::new(false));
    let (c, d) = (chain.clone(), down.clone());
    let server = serve_raw(move |method, params, auth| {
        if *d.lock().unwrap_or_else(|p| p.into_inner()) {
            return Reply::Drop;
        }
        match method {
            "getblockchaininfo" => {
                let name = *c.lock().unwrap_or_else(|p| p.into_inner());
                Reply::Result(json!({"chain": name, "blocks": 200}))
            }
            _ => core_like(method, params, auth),
        }
    });
    let source = RpcSource::new(config(&server)).expect("source");
    let e = source.fee_rate().expect_err("mainnet");
    assert_eq!(e, SourceError::WrongNetwork { expected: "regtest".into(), got: "main".into() });
    assert_eq!(server.calls("estimatesmartfee"), 0, "nothing asked of the wrong chain");
    *chain.lock().expect("lock") = "regtest";
    assert_eq!(source.fee_rate(), Ok(13));
    assert_eq!(source.fee_rate(), Ok(13));
    assert_eq!(server.calls("getblockchaininfo"), 2, "checked until it matched, then not");
    // The node goes away and comes back on another chain.
    *down.lock().expect("lock") = true;
    assert!(matches!(source.fee_rate(), Err(SourceError::Unreachable(_))));
    *down.lock().expect("lock") = false;
    *chain.lock().expect("lock") = "test";
    let e = source.fee_rate().expect_err("testnet now");
    assert!(matches!(e, SourceError::WrongNetwork { ref got, .. } if got == "test"), "{e}");
    // Each network by Bitcoin Core's name for it.
    let mainnet = RpcConfig { network: crate::script::BitcoinNetwork::Bitcoin, ..config(&server) };
    *chain.lock().expect("lock") = "main";
    assert_eq!(RpcSource::new(mainnet).expect("source").fee_rate(), Ok(13));
}

/// An answer past the size cap is refused with a typed error, not read whole into memory.
#[test]
fn an_answer_larger_than_the_cap_is_refused() {
    let big: &'static str = Box::leak(
        format!("{{\"result\": \"{}\", \"error\": null, \"id\": 1}}", "a".repeat(300_000))
            .into_boxed_str(),
    );
    let server = serve(move |_, _, _| Reply::Raw(200, big));
    let capped = RpcConfig { max_answer_bytes: 100_000, ..config(&server) };
    let e = RpcSource::new(capped).expect("source").fee_rate().expect_err("too large");
    assert_eq!(e, SourceError::TooLarge);
    // Under the cap the same answer is read (and is then the wrong shape for a fee estimate).
    let roomy = RpcConfig { max_answer_bytes: 1_000_000, ..config(&server) };
    let e = RpcSource::new(roomy).expect("source").fee_rate().expect_err("wrong shape");
    assert!(matches!(e, SourceError::Malformed(_)), "{e}");
}

/// Fifty new deposit scripts asked at once cost one scan of the UTXO set, not fifty; asked
/// again at the same tip, none.
#[test]
fn many_scripts_asked_at_once_are_scanned_in_one_call() {
    let server = serve(core_like);
    let source = RpcSource::new(config(&server)).expect("source");
    let scripts: Vec<ScriptBuf> = (10..60).map(spk).chain([spk(1)]).collect();
    let seen = source.outputs_to_many(&scripts).expect("outputs");
    assert_eq!(seen.len(), 51, "one list per script, in order");
    assert_eq!(seen[50].len(), 2, "spk(1) is last");
    assert!(seen[0].is_empty());
    assert_eq!(server.calls("scantxoutset"), 1);
    source.outputs_to_many(&scripts).expect("outputs");
    source.outputs_to(&spk(33)).expect("outputs");
    assert_eq!(server.calls("scantxoutset"), 1, "the same tip, nothing new");
}

/// The source names its tip by the node's block count, read as the scans read it: asked again
/// only once `tip_refresh` has passed.
#[test]
fn the_tip_is_the_block_count_asked_again_only_after_the_refresh() {
    let server = serve(core_like);
    let fresh = RpcSource::new(config(&server)).expect("source");
    assert_eq!(fresh.tip(), Ok(Some(200)));
    assert_eq!(fresh.tip(), Ok(Some(200)));
    assert_eq!(server.calls("getblockcount"), 2, "a zero refresh asks every time");
    let cached = RpcSource::new(crate::rpc::RpcConfig {
        tip_refresh: Duration::from_secs(3600),
        ..config(&server)
    })
    .expect("source");
    for _ in 0..3 {
        assert_eq!(cached.tip(), Ok(Some(200)));
    }
    cached.outputs_to(&spk(1)).expect("outputs");
    assert_eq!(server.calls("getblockcount"), 3, "one more call, for three tips and a scan");
}
