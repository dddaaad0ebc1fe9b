//! A blocking JSON-RPC client for another node (passing transactions on).

use std::time::Duration;

use serde_json::{json, Value};

/// Calls `method` on the node at `url`; the result, or the error's message.
pub fn call(url: &str, method: &str, params: Value) -> Result<Value, String> {
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let resp = bitreq::Request::new(bitreq::Method::Post, url)
        .with_timeout(Duration::from_secs(5))
        .with_max_body_size(16 << 20)
        .with_json(&body)
        .map_err(|e| e.to_string())?
        .send()
        .map_err(|e| e.to_string())?;
    let answer: Value = resp.json().map_err(|e| format!("{url}: not a JSON-RPC answer: {e}"))?;
    match (answer.get("result"), answer.get("error")) {
        (_, Some(e)) => Err(e["message"].as_str().unwrap_or("unknown error").to_owned()),
        (Some(r), None) => Ok(r.clone()),
        (None, None) => Err(format!("{url}: an answer with neither result nor error")),
    }
}

/// Passes a transaction on to `peers` (`mempool_add`), in the background and best effort: a
/// peer that is down gets it from another, or from a later block's proposer.
pub fn pass_on(peers: &[String], raw: Value) {
    for peer in peers {
        let peer = peer.clone();
        let raw = raw.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = call(&peer, "mempool_add", json!([raw])) {
                tracing::debug!(%peer, error = %e, "transaction not passed on");
            }
        });
    }
}
