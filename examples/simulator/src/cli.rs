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
use crate::sim::{Entry, Observer, Options, Simulation};

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
      Simulate a network of witness and SON nodes. Without a file, the built-in scenario:
      11 witnesses, 15 SONs, SON 1.33.3 goes offline after 1 h, 14 h simulated.
      --report FILE       write a JSON report (every SON, every proposal) to FILE
      --verify-replicas   every node keeps its own ledger; state hashes must agree after
                          every block
      --quiet             print only the summary
  sonprop operations
      List the registered proposal kinds.
  sonprop bench [--json] [--quick]
      Measure trigger cost (indexed against a Peerplays-style scan), apply_block against raw
      signature verification, proposal lifecycles, and simulation speed and memory.
      --json    print one JSON object instead of the table
      --quick   a reduced set that runs in seconds (no 100 000-SON ledger, no 30-day run)
  sonprop help
      Show this text.

exit codes: 0 ok, 1 an [[expect]] failed, 2 bad usage or scenario, 3 simulation failed";

#[derive(Debug, Default)]
struct SimulateArgs {
    scenario: Option<PathBuf>,
    report: Option<PathBuf>,
    verify_replicas: bool,
    quiet: bool,
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
        Some("bench") => Ok(crate::bench::cli::bench(&args[1..], out, err)),
        Some("bench-sim") => Ok(crate::bench::cli::bench_sim(&args[1..], out)),
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

/// The registry the simulator runs: the core operations and the linked operation crates.
pub fn registry() -> Result<Registry, String> {
    Registry::discover().map_err(|e| e.to_string())
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
    let options = Options { verify_replicas: a.verify_replicas };
    let mut sim = Simulation::new(&scenario, registry, &options)
        .map_err(|e| (EXIT_FAILURE, e.to_string()))?;

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
