//! `sonprop bitcoin address`: the witness script and P2WSH address of a SON wallet, or of a
//! user's deposit address over it, from keys and weights given on the command line.

use std::io::Write;

use sonprop_bitcoin::script::{self, BitcoinNetwork, Signer};

/// The `bitcoin_address` document of the JSON convention (`crate::json`).
#[derive(Debug, serde::Serialize)]
struct Output {
    document: &'static str,
    format_version: u32,
    /// `wallet` (the SONs' multisig) or `deposit` (a user's address over it).
    address_kind: &'static str,
    network: String,
    address: String,
    witness_script: String,
    threshold: u32,
    total_weight: u32,
    signers: Vec<SignerOut>,
    /// The user's key (a deposit address), else `null`.
    user_key: Option<String>,
    /// After how many blocks the user alone may spend (a deposit address with `--csv`);
    /// `null` otherwise.
    csv: Option<u16>,
}

#[derive(Debug, serde::Serialize)]
struct SignerOut {
    key: String,
    weight: u16,
}

/// What `bitcoin address` was asked (parsed by the command line).
#[derive(Debug, Clone, clap::Args)]
pub struct AddressArgs {
    /// A SON's public key (33-byte compressed, hex) and weight, as `<hex-key>:<weight>`; one
    /// per SON, in SON order.
    #[arg(long = "son", value_name = "HEX-KEY:WEIGHT", required = true)]
    pub sons: Vec<String>,
    /// A user's public key (hex): print that user's deposit address over the SONs' wallet.
    #[arg(long)]
    pub user: Option<String>,
    /// With --user: the user alone may spend after this many blocks (1 to 65535).
    #[arg(long, value_name = "BLOCKS", requires = "user", value_parser = clap::value_parser!(u16).range(1..))]
    pub csv: Option<u16>,
    /// The Bitcoin network the address is for.
    #[arg(long, default_value = "regtest", value_parser = ["bitcoin", "testnet", "signet", "regtest"])]
    pub network: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `sonprop bitcoin address`; bad keys or weights are exit 2 with the reason.
pub fn address(a: &AddressArgs, out: &mut dyn Write) -> Result<i32, (i32, String)> {
    let usage = |m: String| (crate::cli::EXIT_USAGE, m);
    let sons = a
        .sons
        .iter()
        .map(|s| script::parse_signer(s).map_err(|e| usage(format!("--son {s}: {e}"))))
        .collect::<Result<Vec<Signer>, _>>()?;
    let network: BitcoinNetwork =
        a.network.parse().map_err(|e| usage(format!("--network: {e}")))?;
    let (user, csv, json) = (a.user.clone(), a.csv, a.json);
    let total = script::total_weight(&sons);
    let witness_script = match &user {
        Some(u) => {
            let key = script::parse_key(u).map_err(|e| usage(format!("--user: {e}")))?;
            script::one_or_weighted_script(&key, &sons, csv)
        }
        None => script::weighted_script(&sons),
    }
    .map_err(|e| usage(e.to_string()))?;
    let o = Output {
        document: "bitcoin_address",
        format_version: crate::json::FORMAT_VERSION,
        address_kind: if user.is_some() { "deposit" } else { "wallet" },
        signers: sons
            .iter()
            .map(|s| SignerOut { key: s.key.to_string(), weight: s.weight })
            .collect(),
        user_key: user.clone(),
        csv,
        network: network.to_string(),
        witness_script: witness_script.to_hex_string(),
        address: script::p2wsh_address(&witness_script, network).to_string(),
        threshold: script::threshold(total),
        total_weight: total,
    };
    if json {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&o).unwrap_or_default());
    } else {
        let _ = writeln!(out, "network         {}", o.network);
        let _ = writeln!(
            out,
            "signers         {} (total weight {}, threshold {})",
            sons.len(),
            o.total_weight,
            o.threshold
        );
        let _ = writeln!(out, "witness script  {}", o.witness_script);
        let _ = writeln!(out, "address         {}", o.address);
    }
    Ok(crate::cli::EXIT_OK)
}
