//! `sonprop bitcoin address`: the witness script and P2WSH address of a SON wallet, or of a
//! user's deposit address over it, from keys and weights given on the command line.

use std::io::Write;

use sonprop_bitcoin::script::{self, BitcoinNetwork, Signer};

/// The usage of `sonprop bitcoin`.
pub const USAGE: &str = "\
usage:
  sonprop bitcoin address --son <hex-key>:<weight> [--son ...] [--user <hex-key>] [--csv N]
                          [--network bitcoin|testnet|signet|regtest] [--json]
      Print the witness script (hex) and P2WSH address of the SONs' weighted wallet, in SON
      order as given; with --user, of that user's deposit address (the user alone, after N
      blocks with --csv, or the SONs with more than 2/3 of the weight). Default network:
      regtest.";

#[derive(Debug, serde::Serialize)]
struct Output {
    network: String,
    witness_script: String,
    address: String,
    threshold: u32,
    total_weight: u32,
}

/// What `bitcoin address` was asked.
struct Request {
    sons: Vec<Signer>,
    user: Option<String>,
    csv: Option<u16>,
    network: BitcoinNetwork,
    json: bool,
}

fn parse(args: &[String]) -> Result<Request, String> {
    let mut sons = Vec::new();
    let (mut user, mut csv, mut network, mut json) = (None, None, BitcoinNetwork::Regtest, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().cloned().ok_or(format!("{flag} needs a value"));
        match a.as_str() {
            "--son" => sons
                .push(script::parse_signer(&value("--son")?).map_err(|e| format!("--son: {e}"))?),
            "--user" => user = Some(value("--user")?),
            "--csv" => {
                let v = value("--csv")?;
                let n: u16 = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("--csv: `{v}` is not a number of blocks from 1 to 65535"))?;
                csv = Some(n);
            }
            "--network" => {
                network = value("--network")?.parse().map_err(|e| format!("--network: {e}"))?
            }
            "--json" => json = true,
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    if sons.is_empty() {
        return Err("give the SONs with --son <hex-key>:<weight>, one per SON".into());
    }
    if csv.is_some() && user.is_none() {
        return Err("--csv applies to a deposit address: give --user too".into());
    }
    Ok(Request { sons, user, csv, network, json })
}

/// Runs `sonprop bitcoin ARGS`; bad input is exit 2 with the reason.
pub fn bitcoin(args: &[String], out: &mut dyn Write) -> Result<i32, (i32, String)> {
    let usage = |m: String| (crate::cli::EXIT_USAGE, format!("{m}\n\n{USAGE}"));
    let rest = match args.first().map(String::as_str) {
        Some("address") => &args[1..],
        Some("help" | "--help" | "-h") => {
            let _ = writeln!(out, "{USAGE}");
            return Ok(crate::cli::EXIT_OK);
        }
        Some(other) => return Err(usage(format!("unknown bitcoin command `{other}`"))),
        None => return Err(usage("no bitcoin command given".into())),
    };
    let Request { sons, user, csv, network, json } = parse(rest).map_err(usage)?;
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
