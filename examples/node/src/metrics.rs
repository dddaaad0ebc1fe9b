//! The node's figures in Prometheus's text format, served at `GET /metrics`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::app::Shared;

/// The figures, as Prometheus reads them.
pub fn render(shared: &Shared) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    let c = &shared.counters;
    let d = &shared.duties;
    metric("sonprop_height", "gauge", "Height of the last decided block.", shared.head().height);
    metric(
        "sonprop_rounds_total",
        "counter",
        "Consensus rounds started.",
        c.rounds.load(Ordering::Relaxed),
    );
    metric(
        "sonprop_blocks_proposed_total",
        "counter",
        "Blocks this node proposed.",
        c.proposed.load(Ordering::Relaxed),
    );
    metric(
        "sonprop_proposed_blocks_refused_total",
        "counter",
        "Proposed blocks this node voted against.",
        c.invalid_proposals.load(Ordering::Relaxed),
    );
    metric(
        "sonprop_transactions_included_total",
        "counter",
        "Transactions in decided blocks.",
        c.included.load(Ordering::Relaxed),
    );
    metric(
        "sonprop_mempool_transactions",
        "gauge",
        "Transactions waiting.",
        shared.mempool.len() as u64,
    );
    metric(
        "sonprop_heartbeats_total",
        "counter",
        "Heartbeats this SON sent.",
        d.heartbeats.load(Ordering::Relaxed),
    );
    metric(
        "sonprop_drafts_total",
        "counter",
        "Proposals and approvals this node's triggers and validators sent.",
        d.drafted.load(Ordering::Relaxed),
    );
    metric(
        "sonprop_plugin_failures_total",
        "counter",
        "Trigger and validator runs that failed, panicked or timed out.",
        d.failures.load(Ordering::Relaxed),
    );
    let kinds = shared.kinds.lock().unwrap_or_else(|e| e.into_inner());
    for (i, (name, help)) in [
        ("sonprop_son_proposals_created_total", "SON proposals created, by kind."),
        ("sonprop_son_proposals_executed_total", "SON proposals executed, by kind."),
    ]
    .into_iter()
    .enumerate()
    {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (kind, (created, executed)) in &kinds.by_kind {
            let v = if i == 0 { created } else { executed };
            let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {v}");
        }
    }
    out
}

/// Serves [`render`] on `addr` until the runtime stops; the address it listens on.
pub async fn serve(addr: SocketAddr, shared: Arc<Shared>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let shared = shared.clone();
            tokio::spawn(async move {
                // The request line is all that matters; a request is read up to 8 KiB.
                let mut buf = vec![0u8; 8192];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = match request.starts_with("GET /metrics ") {
                    true => ("200 OK", render(&shared)),
                    false => ("404 Not Found", "only GET /metrics is served here\n".to_owned()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(body.as_bytes()).await;
            });
        }
    });
    Ok(local)
}
