//! `sonprop-node --config FILE`: one node of a sonprop chain.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Runs one sonprop node: the chain, the Malachite BFT engine and a JSON-RPC server, until
/// Ctrl-C or SIGTERM. `sonprop devnet init` writes configurations for a local network.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The node's configuration (TOML).
    #[arg(long)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,informalsystems_malachitebft=warn,libp2p=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match sonprop_node::NodeConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sonprop_node::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
