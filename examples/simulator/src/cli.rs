//! The `sonprop` command line.
//!
//! Exit codes: 0 success; 1 an expectation of the scenario failed; 2 bad usage or a bad
//! scenario file; 3 the simulation itself failed (replicas diverged, a block was refused) or
//! the report could not be written.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use sonprop_core::Registry;

use crate::scenario::Scenario;
use crate::sim::{Entry, Observer, Options, SimError, Simulation};

/// With `--data-dir`, commit and fsync every this many blocks unless `--fsync-every` says
/// otherwise (a crash loses at most this many blocks, which the simulation then re-runs).
pub const DEFAULT_FSYNC_EVERY: u64 = 1000;

/// Success.
pub const EXIT_OK: i32 = 0;
/// An expectation failed.
pub const EXIT_EXPECTATION: i32 = 1;
/// Bad usage or scenario.
pub const EXIT_USAGE: i32 = 2;
/// The simulation failed.
pub const EXIT_FAILURE: i32 = 3;

/// The usage text.
pub const USAGE: &str = "\
usage:
  sonprop simulate [SCENARIO.toml] [--report FILE] [--verify-replicas] [--quiet]
                   [--data-dir DIR [--fsync-every N]]
      Simulate a network of witness and SON nodes. Without a file, the built-in scenario:
      11 witnesses, 15 SONs, SON 1.33.3 goes offline after 1 h, 14 h simulated.
      --report FILE       write a JSON report (every SON, every proposal) to FILE
      --verify-replicas   every node keeps its own ledger; state hashes must agree after
                          every block
      --quiet             print only the summary
      --data-dir DIR      keep the chain and the nodes' state in DIR and resume from it;
                          a DIR of another scenario is refused
      --fsync-every N     with --data-dir, commit durably every N blocks (default 1000)
  sonprop inspect DIR [--json]
      Print the head block, state hash, SONs and live proposals kept in a data directory.
  sonprop operations
      List the registered proposal kinds.
  sonprop bench [--json] [--quick]
      Measure trigger cost (indexed against a Peerplays-style scan), apply_block against raw
      signature verification, proposal lifecycles, and simulation speed and memory.
      --json    print one JSON object instead of the table
      --quick   a reduced set that runs in seconds (no 100 000-SON ledger, no 30-day run)
  sonprop bitcoin address --son <hex-key>:<weight> ... [--user <hex-key>] [--csv N]
                          [--network bitcoin|testnet|signet|regtest] [--json]
      Print the witness script and P2WSH address of a SON wallet (or of a user's deposit
      address over it), in SON order as given.
  sonprop help
      Show this text.

exit codes: 0 ok, 1 an [[expect]] failed, 2 bad usage or scenario, 3 simulation failed";

#[derive(Debug, Default)]
struct SimulateArgs {
    scenario: Option<PathBuf>,
    report: Option<PathBuf>,
    verify_replicas: bool,
    quiet: bool,
    data_dir: Option<PathBuf>,
    fsync_every: Option<u64>,
}

fn parse_simulate(args: &[String]) -> Result<SimulateArgs, String> {
    let mut out = SimulateArgs::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--report" => {
                let f = it.next().ok_or("--report needs a file name")?;
                out.report = Some(PathBuf::from(f));
            }
            "--verify-replicas" => out.verify_replicas = true,
            "--data-dir" => {
                out.data_dir = Some(PathBuf::from(it.next().ok_or("--data-dir needs a directory")?))
            }
            "--fsync-every" => {
                let n = it.next().ok_or("--fsync-every needs a number of blocks")?;
                match n.parse::<u64>() {
                    Ok(n) if n > 0 => out.fsync_every = Some(n),
                    _ => {
                        return Err(format!(
                            "--fsync-every: `{n}` is not a positive number of blocks"
                        ))
                    }
                }
            }
            "--quiet" | "-q" => out.quiet = true,
            s if s.starts_with('-') => return Err(format!("unknown option `{s}`")),
            s if out.scenario.is_none() => out.scenario = Some(PathBuf::from(s)),
            s => return Err(format!("unexpected argument `{s}` (one scenario file at most)")),
        }
    }
    Ok(out)
}

/// `T+01:06:09`, or `T+2d03:04:05` past a day.
pub fn format_elapsed(secs: u64) -> String {
    let (d, rest) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    if d > 0 {
        format!("T+{d}d{h:02}:{m:02}:{s:02}")
    } else {
        format!("T+{h:02}:{m:02}:{s:02}")
    }
}

/// Runs the command line with `args` (without the program name). `progress_bar` enables the
/// progress bar on `err` (the caller checks that stderr is a terminal).
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write, progress_bar: bool) -> i32 {
    let result = match args.first().map(String::as_str) {
        Some("simulate") => simulate(&args[1..], out, err, progress_bar),
        Some("operations") if args.len() == 1 => operations(out),
        Some("inspect") => inspect(&args[1..], out),
        Some("bench") => Ok(crate::bench::cli::bench(&args[1..], out, err)),
        Some("bench-sim") => Ok(crate::bench::cli::bench_sim(&args[1..], out)),
        Some("bitcoin") => crate::bitcoin_cli::bitcoin(&args[1..], out),
        Some("help" | "--help" | "-h") => {
            let _ = writeln!(out, "{USAGE}");
            Ok(EXIT_OK)
        }
        Some(other) => Err((EXIT_USAGE, format!("unknown command `{other}`\n\n{USAGE}"))),
        None => Err((EXIT_USAGE, format!("no command given\n\n{USAGE}"))),
    };
    match result {
        Ok(code) => code,
        Err((code, message)) => {
            let _ = writeln!(err, "sonprop: {message}");
            code
        }
    }
}

/// The registry the simulator runs: the core operations and the SON-management crates, named
/// explicitly (a node composes what it can serve: a kind whose parts need node services this
/// simulator does not provide is not run here just because it is linked).
pub fn registry() -> Result<Registry, String> {
    Registry::builder()
        .with(&sonprop_report_down::PLUGIN)
        .with(&sonprop_deregister_son::PLUGIN)
        .build()
        .map_err(|e| e.to_string())
}

/// What `inspect` prints.
#[derive(Debug, serde::Serialize)]
pub struct Inspection {
    /// The data directory.
    pub data_dir: String,
    /// The scenario that wrote it.
    pub scenario: Option<String>,
    /// Head block height.
    pub head_height: u64,
    /// Head block time, unix seconds.
    pub head_time: u64,
    /// Head block id (hex).
    pub head_id: String,
    /// State hash (hex).
    pub state_hash: String,
    /// Every SON.
    pub sons: Vec<crate::report::SonEntry>,
    /// Live proposals.
    pub live_proposals: Vec<LiveProposal>,
    /// Every table, core's and operation crates' (`plugin:<name>`), with its row count.
    pub tables: Vec<TableEntry>,
}

/// A table, as `inspect` lists it.
#[derive(Debug, serde::Serialize)]
pub struct TableEntry {
    /// Its name.
    pub name: String,
    /// How many rows it holds.
    pub rows: usize,
}

/// A live proposal, as `inspect` shows it.
#[derive(Debug, serde::Serialize)]
pub struct LiveProposal {
    /// Its id.
    pub id: String,
    /// Its operation kinds, `+`-joined.
    pub kind: String,
    /// The subject of its son proposal record, if any.
    pub subject: Option<String>,
    /// Approvals so far.
    pub approvals: usize,
    /// Expiration, unix seconds.
    pub expiration_time: u64,
}

/// Reads a data directory.
pub fn inspection(dir: &std::path::Path) -> Result<Inspection, String> {
    let path = dir.join(crate::sim::CHAIN_FILE);
    if !path.is_file() {
        return Err(format!(
            "{}: no sonprop data here (no {})",
            dir.display(),
            crate::sim::CHAIN_FILE
        ));
    }
    let store = sonprop_core::RedbStore::open(&path).map_err(|e| e.to_string())?;
    let registry = registry()?.into_arc();
    let ledger = sonprop_core::Ledger::load(
        registry.chain(),
        Box::new(store),
        sonprop_core::StoreOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    let st = ledger.state();
    let scenario = ledger.local("scenario").map(|s| {
        let s = String::from_utf8_lossy(s);
        s.split('|').next().unwrap_or_default().to_owned()
    });
    let live_proposals = st
        .proposals()
        .iter()
        .map(|(id, p)| LiveProposal {
            id: id.to_string(),
            kind: p.operations.iter().map(|o| o.kind()).collect::<Vec<_>>().join("+"),
            subject: st.records_of_proposal(*id).next().map(|r| r.subject.to_string()),
            approvals: p.approvals.len(),
            expiration_time: p.expiration_time.secs(),
        })
        .collect();
    Ok(Inspection {
        data_dir: dir.display().to_string(),
        scenario,
        head_height: st.head_height(),
        head_time: st.head_time().secs(),
        head_id: st.globals().head_id.to_hex(),
        state_hash: ledger.state_hash().to_hex(),
        sons: crate::report::sons(st),
        live_proposals,
        tables: st
            .table_names()
            .into_iter()
            .map(|name| TableEntry { rows: st.table_len(&name).unwrap_or(0), name })
            .collect(),
    })
}

fn inspect(args: &[String], out: &mut dyn Write) -> Result<i32, (i32, String)> {
    let (dir, json) = match args {
        [dir] => (dir, false),
        [dir, flag] | [flag, dir] if flag == "--json" => (dir, true),
        _ => {
            return Err((
                EXIT_USAGE,
                format!("inspect takes a directory and optionally --json\n\n{USAGE}"),
            ))
        }
    };
    let i = inspection(std::path::Path::new(dir)).map_err(|e| (EXIT_USAGE, e))?;
    if json {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&i).unwrap_or_default());
        return Ok(EXIT_OK);
    }
    let _ = writeln!(
        out,
        "data directory {} (scenario {})",
        i.data_dir,
        i.scenario.as_deref().unwrap_or("?")
    );
    let _ = writeln!(out, "head block {} at {} ({})", i.head_height, i.head_time, i.head_id);
    let _ = writeln!(out, "state hash {}", i.state_hash);
    let _ = writeln!(out, "sons:");
    for s in &i.sons {
        let down = s.last_down_timestamp.map(|t| format!(", down since {t}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} {} (last heartbeat {}{down})",
            s.id, s.status, s.last_active_timestamp
        );
    }
    let _ = writeln!(out, "live proposals: {}", i.live_proposals.len());
    for p in &i.live_proposals {
        let about = p.subject.as_deref().map(|s| format!(" for {s}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} {}{about}: {} approvals, expires {}",
            p.id, p.kind, p.approvals, p.expiration_time
        );
    }
    let _ = writeln!(out, "tables:");
    for t in &i.tables {
        let _ = writeln!(out, "  {:32} {} rows", t.name, t.rows);
    }
    Ok(EXIT_OK)
}

fn operations(out: &mut dyn Write) -> Result<i32, (i32, String)> {
    let reg = registry().map_err(|e| (EXIT_FAILURE, e))?;
    let width = reg.operations().map(|d| d.name.len()).max().unwrap_or(0);
    for d in reg.operations() {
        let tag =
            if d.proposal.is_some_and(|p| p.son_record) { "son proposal" } else { "operation" };
        let _ = writeln!(out, "{:width$}  {tag:12}  {}", d.name, d.description);
    }
    Ok(EXIT_OK)
}

/// Prints the timeline to `out` and a progress bar to `err`.
struct Console<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    quiet: bool,
    bar: bool,
    last_pct: Option<u64>,
}

impl Console<'_> {
    fn clear_bar(&mut self) {
        if self.bar && self.last_pct.take().is_some() {
            let _ = write!(self.err, "\r\x1b[K");
        }
    }
}

impl Observer for Console<'_> {
    fn entry(&mut self, e: Entry) {
        if !self.quiet {
            self.clear_bar();
            let _ = writeln!(
                self.out,
                "{:>8}  {:<12}  {}",
                e.height,
                format_elapsed(e.elapsed),
                e.text
            );
        }
    }

    fn progress(&mut self, done: u64, total: u64) {
        if !self.bar || total == 0 {
            return;
        }
        let pct = (done * 100 / total).min(100);
        if self.last_pct != Some(pct) {
            self.last_pct = Some(pct);
            let filled = (pct / 4) as usize;
            let bar = format!("{}{}", "#".repeat(filled), ".".repeat(25 - filled));
            let _ = write!(self.err, "\r[{bar}] {pct:3}% block {done}/{total}");
            let _ = self.err.flush();
        }
    }
}

fn simulate(
    args: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
    progress_bar: bool,
) -> Result<i32, (i32, String)> {
    let a = parse_simulate(args).map_err(|e| (EXIT_USAGE, format!("{e}\n\n{USAGE}")))?;
    let scenario = match &a.scenario {
        Some(path) => Scenario::load(path).map_err(|e| (EXIT_USAGE, e.to_string()))?,
        None => Scenario::built_in(),
    };
    let registry = registry().map_err(|e| (EXIT_FAILURE, e))?.into_arc();
    scenario.check_plugin_params(&registry.chain()).map_err(|e| (EXIT_USAGE, e.to_string()))?;
    if a.data_dir.is_some() && a.verify_replicas {
        return Err((
            EXIT_USAGE,
            "--data-dir keeps one shared replica; it cannot be combined with --verify-replicas"
                .into(),
        ));
    }
    if a.fsync_every.is_some() && a.data_dir.is_none() {
        return Err((EXIT_USAGE, "--fsync-every needs --data-dir".into()));
    }
    let options = Options {
        verify_replicas: a.verify_replicas,
        data_dir: a.data_dir.clone(),
        fsync_every: a.fsync_every.unwrap_or(DEFAULT_FSYNC_EVERY),
        services: None,
    };
    let mut sim = Simulation::new(&scenario, registry, &options).map_err(|e| match e {
        SimError::DataDir { .. } => (EXIT_USAGE, e.to_string()),
        other => (EXIT_FAILURE, other.to_string()),
    })?;

    if !a.quiet {
        let _ = writeln!(
            out,
            "scenario {} (seed {}): {} witnesses, {} elected + {} standby SONs, {} simulated, threshold policy {}{}",
            scenario.name,
            scenario.seed,
            scenario.witnesses,
            scenario.sons,
            scenario.standby_sons,
            crate::duration::Duration(scenario.duration),
            scenario.params.threshold_policy,
            if a.verify_replicas { ", verifying every replica" } else { "" },
        );
        if sim.resumed_at > 0 {
            let dir = a.data_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default();
            let _ = writeln!(out, "resuming at block {} from {dir}", sim.resumed_at);
        }
        let _ = writeln!(out, "{:>8}  {:<12}  event", "block", "chain time");
    }
    let started = Instant::now();
    let mut console =
        Console { out, err, quiet: a.quiet, bar: progress_bar && !a.quiet, last_pct: None };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| (EXIT_FAILURE, format!("cannot start the runtime: {e}")))?;
    let result = runtime.block_on(sim.run(&mut console));
    console.clear_bar();
    let out = console.out;
    let finished = result.map_err(|e| (EXIT_FAILURE, e.to_string()))?;
    let wall = started.elapsed().as_secs_f64();

    let r = &finished.report;
    let _ = writeln!(
        out,
        "\nsummary: {} blocks, {} simulated in {wall:.2} s wall",
        r.blocks,
        format_elapsed(r.head_time - r.genesis_time)
    );
    let mut by_status = std::collections::BTreeMap::new();
    for s in &r.sons {
        by_status.entry(s.status.to_string()).or_insert_with(Vec::new).push(s.id.clone());
    }
    for (status, ids) in &by_status {
        let list = if ids.len() <= 5 { format!(" ({})", ids.join(", ")) } else { String::new() };
        let _ = writeln!(out, "  sons {status}: {}{list}", ids.len());
    }
    let mut by_kind = std::collections::BTreeMap::new();
    for p in &r.proposals {
        *by_kind
            .entry((p.kind.clone(), format!("{:?}", p.outcome).to_lowercase()))
            .or_insert(0u32) += 1;
    }
    for ((kind, outcome), n) in &by_kind {
        let _ = writeln!(out, "  proposals {kind} {outcome}: {n}");
    }
    let _ = writeln!(
        out,
        "  transactions: {} included, {} left out by producers (mostly approvals that arrived after their proposal executed)",
        finished.included_transactions, finished.rejected_transactions
    );
    let _ = writeln!(out, "  state hash: {}", r.state_hash);

    if let Some(path) = &a.report {
        let json = serde_json::to_string_pretty(r).map_err(|e| (EXIT_FAILURE, e.to_string()))?;
        std::fs::write(path, json + "\n").map_err(|e| {
            (EXIT_FAILURE, format!("cannot write the report to {}: {e}", path.display()))
        })?;
        let _ = writeln!(out, "  report written to {}", path.display());
    }
    let total = scenario.expect.len();
    if finished.failures.is_empty() {
        if total > 0 {
            let _ = writeln!(out, "  expectations: {total} of {total} hold");
        }
        Ok(EXIT_OK)
    } else {
        let _ = writeln!(out, "  expectations: {} of {total} failed", finished.failures.len());
        for f in &finished.failures {
            let _ = writeln!(out, "    FAILED {f}");
        }
        Ok(EXIT_EXPECTATION)
    }
}
