//! The `sonprop` command line, parsed by `clap`; errors are reported through `miette` (one
//! reporting crate: it shows a scenario error's line with the bad span underlined), logs go to
//! stderr through `tracing-subscriber`, and long runs show an `indicatif` progress bar when
//! stderr is a terminal.
//!
//! Exit codes: 0 success; 1 an expectation of the scenario failed; 2 bad usage or a bad
//! scenario file; 3 the simulation itself failed (replicas diverged, a block was refused) or
//! an output could not be written; 130 interrupted by Ctrl-C or SIGTERM (with `--data-dir`,
//! after committing what was done).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::{CommandFactory, Parser, Subcommand};
use sonprop_core::Registry;

use crate::scenario::{Scenario, ScenarioError};
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
/// Interrupted (Ctrl-C or SIGTERM), as a shell reports a command SIGINT ended.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Ctrl-C and SIGTERM while a run is under way: the first sets `flag`, which the run reads
/// between blocks (it stops after the block under way and commits what it has); a second one
/// ends the process at once. The handlers are removed when this is dropped.
struct Interrupt {
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl Interrupt {
    fn install() -> Interrupt {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut ids = Vec::new();
        for signal in [SIGINT, SIGTERM] {
            // In this order: the default action runs only once the flag is already set.
            ids.extend(flag::register_conditional_default(signal, flag.clone()).ok());
            ids.extend(flag::register(signal, flag.clone()).ok());
        }
        Interrupt { flag, ids }
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// The version `--version` prints: the crate's, and the commit it was built from.
pub const VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("SONPROP_COMMIT"), ")");

/// Simulate Peerplays-style SON proposals: a network of witness and SON nodes built from the
/// sonprop framework, driven by a scenario file on simulated chain time.
#[derive(Debug, Parser)]
#[command(
    name = "sonprop",
    version = VERSION,
    propagate_version = true,
    arg_required_else_help = true,
    disable_help_subcommand = true,
    after_help = "exit codes: 0 ok, 1 an [[expect]] failed, 2 bad usage or scenario, 3 simulation failed, 130 interrupted\n\
                  logs: RUST_LOG=<filter> (e.g. RUST_LOG=sonprop_core=debug) overrides -v/-q"
)]
pub struct Cli {
    /// Log more to stderr: -v info (held-back drafts, data directory take-overs), -vv debug
    /// (every plugin call, block produced and commit), -vvv trace (every transaction applied or
    /// refused).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Print only the result (simulate: the summary, no timeline; bench: the figures, no
    /// progress; other commands print only their result anyway), and log only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate a network of witness and SON nodes (without a file: the built-in scenario,
    /// 11 witnesses, 15 SONs, SON 1.33.3 offline after 1 h, 14 h simulated).
    Simulate(SimulateArgs),
    /// Print the head block, state hash, SONs, live proposals and tables of a data directory.
    Inspect {
        /// A directory written by `simulate --data-dir`.
        dir: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the operation kinds a scenario can run, with what each is.
    Operations {
        /// Print one JSON array (each kind's `name`, `kind` and `description`).
        #[arg(long)]
        json: bool,
    },
    /// Measure trigger cost (indexed against a Peerplays-style scan), apply_block against raw
    /// signature verification, proposal lifecycles, and simulation speed and memory.
    Bench {
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// A reduced set that runs in seconds (no 100 000-SON ledger, no 30-day run).
        #[arg(long)]
        quick: bool,
    },
    /// One default-network simulation, printed as JSON figures (run by `bench` as a child).
    #[command(hide = true)]
    BenchSim {
        /// Simulated days.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        days: u64,
        /// Keep the chain in this directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A replica per node.
        #[arg(long, conflicts_with = "data_dir")]
        verify_replicas: bool,
        /// Run the bridge with this many users.
        #[arg(long, requires = "bridge_every")]
        bridge_users: Option<u32>,
        /// Seconds between one bridge user's deposits.
        #[arg(long, requires = "bridge_users")]
        bridge_every: Option<u64>,
        /// With the bridge: simulate this many hours instead of `--days`.
        #[arg(long, requires = "bridge_users", value_parser = clap::value_parser!(u64).range(1..))]
        hours: Option<u64>,
    },
    /// Say why a proposal about a subject (a SON, a proposal, any named subject) was or was
    /// not raised at a point of a run, and why each node approved or abstained.
    Explain(crate::explain::ExplainArgs),
    /// Bitcoin sidechain helpers.
    #[command(subcommand)]
    Bitcoin(BitcoinCommand),
    /// A local network of `sonprop-node` processes on loopback ports.
    #[command(subcommand)]
    Devnet(crate::node_cli::DevnetCommand),
    /// Print a node's decided height, finalized height and state hash (over its JSON-RPC).
    Status {
        /// The node's JSON-RPC URL, e.g. http://127.0.0.1:28000.
        #[arg(long)]
        rpc: String,
        /// Print the node's answer as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Build, sign and submit a user's transaction to a node.
    #[command(subcommand)]
    Tx(crate::node_cli::TxCommand),
    /// Print the version (as `--version` does).
    Version,
    /// Print a shell completion script (e.g. `sonprop completions bash > /etc/bash_completion.d/sonprop`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print this message or the help of the given subcommand(s).
    Help {
        /// The subcommand whose help to print, with its own subcommands (`help bitcoin address`).
        command: Vec<String>,
    },
}

/// `sonprop bitcoin …`.
#[derive(Debug, Subcommand)]
pub enum BitcoinCommand {
    /// Print the witness script and P2WSH address of a SON wallet (or of a user's deposit
    /// address over it), in SON order as given.
    Address(crate::bitcoin_cli::AddressArgs),
}

/// `sonprop simulate`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// The scenario file (TOML); the built-in scenario if none.
    pub scenario: Option<PathBuf>,
    /// Write a JSON report (every SON, every proposal, the timeline) to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write an HTML report to FILE: one self-contained page (no network) with the SONs'
    /// status over time, every proposal, and the bridge's deposits and withdrawals.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Every node keeps its own replica; state hashes must agree after every block.
    #[arg(long, conflicts_with = "data_dir")]
    pub verify_replicas: bool,
    /// Keep the chain and the nodes' state in DIR and resume from it (a DIR of another
    /// scenario is refused).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// With --data-dir: commit durably every N blocks.
    #[arg(long, value_name = "N", requires = "data_dir", default_value_t = DEFAULT_FSYNC_EVERY,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub fsync_every: u64,
    /// With --data-dir: accept a directory that holds more of the run than the scenario lasts
    /// (nothing is simulated; the summary is of what it holds).
    #[arg(long, requires = "data_dir")]
    pub force: bool,
}

/// A command that failed: its exit code and what to tell the user.
struct Failure {
    code: i32,
    report: miette::Report,
}

/// `sonprop help [COMMAND…]`: the long help of the named (sub)command, or of `sonprop`.
fn help(names: &[String], out: &mut dyn Write) -> Result<i32, Failure> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut at = &mut cmd;
    for name in names {
        at = at.find_subcommand_mut(name).ok_or_else(|| {
            fail(EXIT_USAGE, format!("no such command `{name}` (see `sonprop --help`)"))
        })?;
    }
    let _ = write!(out, "{}", at.render_help());
    Ok(EXIT_OK)
}

fn fail(code: i32, message: impl std::fmt::Display) -> Failure {
    Failure { code, report: miette::miette!("{message}") }
}

/// A scenario error with the file's text, so the report can show the line.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{file}: {field}: {message}")]
struct ScenarioDiagnostic {
    file: String,
    field: String,
    message: String,
    #[source_code]
    src: miette::NamedSource<String>,
    #[label("{message}")]
    span: Option<miette::SourceSpan>,
}

fn scenario_failure(e: ScenarioError, text: Option<&str>) -> Failure {
    let Some(text) = text else { return fail(EXIT_USAGE, e) };
    let span = e.span.clone().or_else(|| crate::scenario::locate(text, &e.field));
    let diagnostic = ScenarioDiagnostic {
        src: miette::NamedSource::new(&e.file, text.to_owned()),
        span: span.map(|r| (r.start, r.end.saturating_sub(r.start)).into()),
        file: e.file,
        field: e.field,
        message: e.message,
    };
    Failure { code: EXIT_USAGE, report: miette::Report::new(diagnostic) }
}

/// The terminal's width from `COLUMNS`, else 100.
fn terminal_width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(100)
}

/// Installs the log subscriber (stderr; `RUST_LOG` if set, else from -v/-q). A second call
/// (tests run several commands in one process) keeps the first. A `RUST_LOG` that does not
/// parse is an error naming it, not a silent fall-back.
pub fn init_logging(verbose: u8, quiet: bool) -> Result<(), String> {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => tracing_subscriber::EnvFilter::try_new(&spec)
            .map_err(|e| format!("RUST_LOG=`{spec}` does not parse: {e}"))?,
        _ => tracing_subscriber::EnvFilter::new(level),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
    Ok(())
}

/// Runs the command line with `args` (without the program name), printing to `out` and `err`.
/// `terminal` says stderr is a terminal: colours in errors, a progress bar on long runs.
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write, terminal: bool) -> i32 {
    run_hosted(&crate::host::Host::stock(), args, out, err, terminal)
}

/// [`run`] with the crates of `host` beside the stock ones, and their services.
pub fn run_hosted(
    host: &crate::host::Host,
    args: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
    terminal: bool,
) -> i32 {
    let argv = std::iter::once("sonprop".to_owned()).chain(args.iter().cloned());
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let text =
                if terminal { e.render().ansi().to_string() } else { e.render().to_string() };
            let target: &mut dyn Write = if e.use_stderr() { err } else { out };
            let _ = write!(target, "{text}");
            return e.exit_code();
        }
    };
    let logging = match cli.command {
        Command::BenchSim { .. } => Ok(()),
        _ => init_logging(cli.verbose, cli.quiet),
    };
    let result = match cli.command {
        _ if logging.is_err() => Err(fail(EXIT_USAGE, logging.err().unwrap_or_default())),
        Command::Simulate(a) => simulate(host, &a, cli.quiet, out, terminal),
        Command::Operations { json } => operations(host, json, out),
        Command::Inspect { dir, json } => inspect(host, &dir, json, out),
        Command::Bench { json, quick } => {
            Ok(crate::bench::cli::bench(json, quick, cli.quiet, out, err))
        }
        Command::BenchSim {
            days,
            data_dir,
            verify_replicas,
            bridge_users,
            bridge_every,
            hours,
        } => {
            let bridge = bridge_users
                .zip(bridge_every)
                .map(|(users, every)| (crate::bench::cli::BridgeLoad { users, every }, hours));
            Ok(crate::bench::cli::bench_sim(days, data_dir, verify_replicas, bridge, out))
        }
        Command::Explain(a) => crate::explain::explain(host, &a, out)
            .map(|()| EXIT_OK)
            .map_err(|(code, m)| fail(code, m)),
        Command::Bitcoin(BitcoinCommand::Address(a)) => {
            crate::bitcoin_cli::address(&a, out).map_err(|(code, m)| fail(code, m))
        }
        Command::Devnet(c) => {
            let interrupt = Interrupt::install();
            crate::node_cli::devnet(c, &interrupt.flag, out).map_err(|(code, m)| fail(code, m))
        }
        Command::Status { rpc, json } => {
            crate::node_cli::status(&rpc, json, out).map_err(|(code, m)| fail(code, m))
        }
        Command::Tx(c) => crate::node_cli::tx(c, out).map_err(|(code, m)| fail(code, m)),
        Command::Version => {
            let _ = writeln!(out, "sonprop {VERSION}");
            Ok(EXIT_OK)
        }
        Command::Help { command } => help(&command, out),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "sonprop", out);
            Ok(EXIT_OK)
        }
    };
    match result {
        Ok(code) => code,
        Err(Failure { code, report }) => {
            let theme = if terminal {
                miette::GraphicalTheme::unicode()
            } else {
                miette::GraphicalTheme::unicode_nocolor()
            };
            let mut text = String::new();
            // Wrapped to the terminal's width; one line per message when piped or logged.
            let width = if terminal { terminal_width() } else { usize::MAX / 2 };
            let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(width);
            if handler.render_report(&mut text, report.as_ref()).is_err() {
                text = format!("{report}\n");
            }
            let _ = write!(err, "{text}");
            code
        }
    }
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

/// The registry the simulator runs: the core operations and the SON-management crates, named
/// explicitly (a node composes what it can serve: a kind whose parts need node services this
/// simulator does not provide is not run here just because it is linked).
pub fn registry() -> Result<Registry, String> {
    crate::host::Host::stock().registry(false)
}

/// The registry a scenario runs: [`registry`], plus the Bitcoin crate when the scenario has a
/// `[bitcoin]` table (its SON nodes then get their views of the simulated Bitcoin network).
pub fn registry_for(scenario: &Scenario) -> Result<Registry, String> {
    crate::host::Host::stock().registry(scenario.bitcoin.is_some())
}

/// What `inspect` prints.
#[derive(Debug, serde::Serialize)]
pub struct Inspection {
    /// `inspect`.
    pub document: &'static str,
    /// [`crate::json::FORMAT_VERSION`].
    pub format_version: u32,
    /// The data directory.
    pub data_dir: String,
    /// The scenario that wrote it.
    pub scenario: Option<String>,
    /// Genesis.
    pub genesis: crate::json::Time,
    /// Head block height.
    pub height: u64,
    /// Head block time.
    pub head: crate::json::Time,
    /// Head block id (hex).
    pub head_id: String,
    /// State hash (hex).
    pub state_hash: String,
    /// Every SON.
    pub sons: Vec<crate::json::Son>,
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
    /// Who approved, by account (the data directory keeps no node names).
    pub approvers: Vec<crate::json::Account>,
    /// When it expires.
    pub expires: crate::json::Time,
}

/// Reads a data directory.
pub fn inspection(dir: &std::path::Path) -> Result<Inspection, String> {
    inspection_hosted(&crate::host::Host::stock(), dir)
}

/// [`inspection`] of a directory a run with `host`'s crates wrote.
pub fn inspection_hosted(
    host: &crate::host::Host,
    dir: &std::path::Path,
) -> Result<Inspection, String> {
    let path = dir.join(crate::sim::CHAIN_FILE);
    if !path.is_file() {
        return Err(format!(
            "{}: no sonprop data here (no {})",
            dir.display(),
            crate::sim::CHAIN_FILE
        ));
    }
    // A bridge scenario's store holds the Bitcoin crate's tables too: try without, then with.
    let load = |with_bitcoin: bool| -> Result<sonprop_core::Ledger, String> {
        let store = sonprop_core::RedbStore::open(&path).map_err(|e| e.to_string())?;
        let registry = host.registry(with_bitcoin)?.into_arc();
        sonprop_core::Ledger::load(
            registry.chain(),
            Box::new(store),
            sonprop_core::StoreOptions::default(),
        )
        .map_err(|e| e.to_string())
    };
    let ledger = load(false).or_else(|plain| load(true).map_err(|_| plain))?;
    let st = ledger.state();
    let scenario = ledger.local("scenario").map(|s| {
        let s = String::from_utf8_lossy(s);
        s.split('|').next().unwrap_or_default().to_owned()
    });
    let g = st.globals().genesis_time.secs();
    let live_proposals = st
        .proposals()
        .iter()
        .map(|(id, p)| LiveProposal {
            id: id.to_string(),
            kind: p.operations.iter().map(|o| o.kind()).collect::<Vec<_>>().join("+"),
            subject: st.records_of_proposal(*id).next().map(|r| r.subject.to_string()),
            approvals: p.approvals.len(),
            approvers: p
                .approvals
                .iter()
                .map(|a| crate::json::Account { id: a.to_string(), name: None })
                .collect(),
            expires: crate::json::Time::at(g, p.expiration_time.secs()),
        })
        .collect();
    Ok(Inspection {
        document: "inspect",
        format_version: crate::json::FORMAT_VERSION,
        data_dir: dir.display().to_string(),
        scenario,
        genesis: crate::json::Time::at(g, g),
        height: st.head_height(),
        head: crate::json::Time::at(g, st.head_time().secs()),
        head_id: st.globals().head_id.to_hex(),
        state_hash: ledger.state_hash().to_hex(),
        sons: crate::json::sons(st),
        live_proposals,
        tables: st
            .table_names()
            .into_iter()
            .map(|name| TableEntry { rows: st.table_len(&name).unwrap_or(0), name })
            .collect(),
    })
}

fn inspect(
    host: &crate::host::Host,
    dir: &std::path::Path,
    json: bool,
    out: &mut dyn Write,
) -> Result<i32, Failure> {
    let i = inspection_hosted(host, dir).map_err(|e| fail(EXIT_USAGE, e))?;
    if json {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&i).unwrap_or_default());
        return Ok(EXIT_OK);
    }
    let at = |t: &crate::json::Time| format!("{} ({})", t.time, t.offset);
    let _ = writeln!(
        out,
        "data directory {} (scenario {})",
        i.data_dir,
        i.scenario.as_deref().unwrap_or("?")
    );
    let _ = writeln!(out, "head block {} at {} ({})", i.height, at(&i.head), i.head_id);
    let _ = writeln!(out, "state hash {}", i.state_hash);
    let _ = writeln!(out, "sons:");
    for s in &i.sons {
        let down = s.down_since.as_ref().map(|t| format!(", down since {}", at(t)));
        let _ = writeln!(
            out,
            "  son {} {} (last heartbeat {}{})",
            s.id,
            s.status,
            at(&s.last_heartbeat),
            down.unwrap_or_default()
        );
    }
    let _ = writeln!(out, "live proposals: {}", i.live_proposals.len());
    for p in &i.live_proposals {
        let about = p.subject.as_deref().map(|s| format!(" for {s}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "  proposal {} {}{about}: {} approvals, expires {}",
            p.id,
            p.kind,
            p.approvals,
            at(&p.expires)
        );
    }
    let _ = writeln!(out, "tables:");
    for t in &i.tables {
        let _ = writeln!(out, "  {:32} {} rows", t.name, t.rows);
    }
    Ok(EXIT_OK)
}

fn operations(host: &crate::host::Host, json: bool, out: &mut dyn Write) -> Result<i32, Failure> {
    // Every kind a scenario can run, the Bitcoin crate's and the hosted crates' included.
    let reg = host.registry(true).map_err(|e| fail(EXIT_FAILURE, e))?;
    let tag = |d: &sonprop_core::OperationDescriptor| {
        if d.proposal.is_some_and(|p| p.son_record) {
            "son proposal"
        } else {
            "operation"
        }
    };
    if json {
        let all: Vec<serde_json::Value> = reg
            .operations()
            .map(|d| {
                serde_json::json!({ "name": d.name, "kind": tag(d), "description": d.description })
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&all).unwrap_or_default());
        return Ok(EXIT_OK);
    }
    let width = reg.operations().map(|d| d.name.len()).max().unwrap_or(0);
    for d in reg.operations() {
        let _ = writeln!(out, "{:width$}  {:12}  {}", d.name, tag(d), d.description);
    }
    Ok(EXIT_OK)
}

/// Prints the timeline to `out`, with a progress bar on stderr when it is a terminal.
struct Console<'a> {
    out: &'a mut dyn Write,
    quiet: bool,
    bar: Option<indicatif::ProgressBar>,
    block_interval: u64,
    /// Kept for the report, when one is written.
    timeline: Option<Vec<crate::report::TimelineEntry>>,
    genesis_time: u64,
}

impl Observer for Console<'_> {
    fn entry(&mut self, e: Entry) {
        if let Some(timeline) = &mut self.timeline {
            timeline.push(crate::report::TimelineEntry {
                height: e.height,
                at: crate::json::Time::at(self.genesis_time, self.genesis_time + e.elapsed),
                text: e.text.clone(),
            });
        }
        if self.quiet {
            return;
        }
        let line = format!("{:>8}  {:<12}  {}", e.height, format_elapsed(e.elapsed), e.text);
        match &self.bar {
            Some(bar) => bar.suspend(|| writeln!(self.out, "{line}")),
            None => writeln!(self.out, "{line}"),
        }
        .unwrap_or(());
    }

    fn progress(&mut self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
            // Sampled: the message is a string, formatted once per 100 blocks.
            if done.is_multiple_of(100) || done == total {
                bar.set_message(format_elapsed(done.saturating_mul(self.block_interval)));
            }
        }
    }
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr_with_hz(10),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:30} {pos}/{len} blocks, {msg} simulated, {per_sec}, {eta} left",
    ) {
        bar.set_style(style);
    }
    bar
}

fn simulate(
    host: &crate::host::Host,
    a: &SimulateArgs,
    quiet: bool,
    out: &mut dyn Write,
    terminal: bool,
) -> Result<i32, Failure> {
    let (scenario, text) = match &a.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                fail(EXIT_USAGE, format!("{}: cannot read the scenario: {e}", path.display()))
            })?;
            let file = path.display().to_string();
            let s =
                Scenario::from_toml(&text, &file).map_err(|e| scenario_failure(e, Some(&text)))?;
            (s, Some(text))
        }
        None => (Scenario::built_in(), None),
    };
    let registry = host.registry(scenario.bitcoin.is_some()).map_err(|e| fail(EXIT_FAILURE, e))?;
    let registry = registry.into_arc();
    scenario
        .check_plugin_params(&registry.chain())
        .and_then(|()| scenario.check_expectation_kinds(&registry.chain()))
        .map_err(|e| scenario_failure(e, text.as_deref()))?;
    // Every output is checked before the run: a report that cannot be written fails now,
    // not after the simulation.
    let create = |path: &Option<PathBuf>| match path {
        Some(path) => std::fs::File::create(path).map(Some).map_err(|e| {
            fail(EXIT_FAILURE, format!("cannot write the report to {}: {e}", path.display()))
        }),
        None => Ok(None),
    };
    let mut report_file = create(&a.report)?;
    let mut html_file = create(&a.html)?;
    let options = Options {
        verify_replicas: a.verify_replicas,
        data_dir: a.data_dir.clone(),
        fsync_every: a.fsync_every,
        services: host.services(),
        force: a.force,
        bitcoin_script_check: Some(crate::bridge::consensus_check()),
    };
    let mut sim = Simulation::new(&scenario, registry, &options).map_err(|e| match e {
        SimError::DataDir { .. } | SimError::LongerThanScenario { .. } => fail(EXIT_USAGE, e),
        other => fail(EXIT_FAILURE, other),
    })?;

    let dir = a.data_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default();
    if !quiet {
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
        for w in scenario.warnings() {
            let _ = writeln!(out, "warning: {w}");
        }
    }
    let head = sim.ledger().state().head_height();
    let held = format_elapsed(sim.ledger().state().head_time().since(scenario.genesis_time));
    if sim.is_complete() {
        let _ = writeln!(
            out,
            "the run in {dir} is already complete (block {head}, {held}): nothing to simulate; \
             the summary is of what it holds"
        );
    } else if sim.resumed_at > 0 && !quiet {
        let _ = writeln!(out, "resuming at block {head} ({held}) from {dir}");
    }
    if !quiet {
        let _ = writeln!(out, "{:>8}  {:<12}  event", "block", "chain time");
    }
    let started = Instant::now();
    let bar = (terminal && !quiet && !sim.is_complete()).then(|| progress_bar(sim.total_blocks()));
    let mut console = Console {
        out,
        quiet,
        bar,
        block_interval: scenario.params.block_interval,
        timeline: (a.report.is_some() || a.html.is_some()).then(Vec::new),
        genesis_time: scenario.genesis_time.secs(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| fail(EXIT_FAILURE, format!("cannot start the runtime: {e}")))?;
    let interrupt = Interrupt::install();
    let result = runtime.block_on(sim.run_until(&mut console, &interrupt.flag));
    drop(interrupt);
    if let Some(bar) = console.bar.take() {
        bar.finish_and_clear();
    }
    let (out, timeline) = (console.out, console.timeline.unwrap_or_default());
    let Some(mut finished) = result.map_err(|e| fail(EXIT_FAILURE, e))? else {
        let head = sim.ledger().state().head_height();
        let at = format_elapsed(sim.ledger().state().head_time().since(scenario.genesis_time));
        let kept = match sim.committed_height() {
            Some(m) => format!("last commit at block {m}; run the same command to resume"),
            None => "nothing was kept (a run resumes only with --data-dir)".to_owned(),
        };
        let _ = writeln!(out, "interrupted at block {head} ({at}); {kept}");
        return Ok(EXIT_INTERRUPTED);
    };
    finished.report.timeline = timeline;
    let wall = started.elapsed().as_secs_f64();

    let r = &finished.report;
    if !quiet {
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "summary: {} blocks, {} simulated in {wall:.2} s wall",
        r.height, r.head.offset
    );
    let mut ids_by_status = std::collections::BTreeMap::new();
    for s in &r.sons {
        ids_by_status.entry(s.status.to_string()).or_insert_with(Vec::new).push(s.id.clone());
    }
    for (status, n) in &r.summary.sons_by_status {
        let ids = ids_by_status.get(status).cloned().unwrap_or_default();
        let list = if ids.len() <= 5 { format!(" ({})", ids.join(", ")) } else { String::new() };
        let _ = writeln!(out, "  sons {status}: {n}{list}");
    }
    for c in &r.summary.proposals {
        let outcome = format!("{:?}", c.outcome).to_lowercase();
        let _ = writeln!(out, "  proposals {} {outcome}: {}", c.kind, c.count);
    }
    let _ = writeln!(
        out,
        "  transactions: {} included, {} left out by producers (mostly approvals that arrived after their proposal executed)",
        finished.included_transactions, finished.rejected_transactions
    );
    if let Some(b) = &r.bitcoin {
        let credited: Vec<u64> = b.deposits.iter().filter_map(|d| d.credited).collect();
        let paid: Vec<u64> = b.withdrawals.iter().filter_map(|w| w.sent_sat).collect();
        let _ = writeln!(
            out,
            "  bitcoin: {} deposits credited ({} PBTC issued), {} withdrawals paid ({} reached users), {} Bitcoin blocks, {} broadcasts refused",
            credited.len(),
            sonprop_bitcoin::flows::btc(credited.iter().sum()).replace(" BTC", ""),
            paid.len(),
            sonprop_bitcoin::flows::btc(paid.iter().sum()),
            b.bitcoin_blocks,
            b.rejected_broadcasts.len()
        );
        match (&b.conservation.figures, &b.conservation.broken) {
            (Some(c), _) if c.deficit_sat == 0 => {
                let _ = writeln!(
                    out,
                    "  conservation held after all {} blocks: wallets {} + in flight {} = PBTC {} + SON reserve {}",
                    b.conservation_checks,
                    c.utxos_sat,
                    c.in_flight_sat,
                    c.pbtc_supply,
                    c.books.reserve_sat()
                );
            }
            (Some(c), _) => {
                let _ = writeln!(
                    out,
                    "  conservation held after all {} blocks, with a DEFICIT: wallets {} + in flight {} = PBTC {} - {} sat lost beyond the SONs' reserve",
                    b.conservation_checks,
                    c.utxos_sat,
                    c.in_flight_sat,
                    c.pbtc_supply,
                    c.deficit_sat
                );
            }
            (None, e) => {
                let _ = writeln!(out, "  conservation BROKEN: {}", e.as_deref().unwrap_or("?"));
            }
        }
        let kinds = |k: &str| b.transactions.iter().filter(|t| t.kind == k).count();
        let _ = writeln!(
            out,
            "  sidechain transactions: {} deposit sweeps, {} payments, {} wallet sweeps, {} consolidations; heaviest {} WU",
            kinds("deposit_sweep"),
            kinds("payment"),
            kinds("wallet_sweep"),
            kinds("consolidation"),
            b.transactions.iter().map(|t| t.weight).max().unwrap_or(0)
        );
        let hostile = b.deposits.iter().filter(|d| d.hostile).count();
        if hostile > 0 {
            let refused = b.deposits.iter().filter(|d| d.hostile && d.credited.is_none()).count();
            let _ = writeln!(
                out,
                "  hostile deposits: {hostile} ({} credited, {refused} refused as too small)",
                hostile - refused
            );
        }
        for a in &b.alarms_raised {
            let _ = writeln!(out, "  alarm raised: {a}");
        }
    }
    let _ = writeln!(out, "  state hash: {}", r.state_hash);

    if let (Some(path), Some(file)) = (&a.report, report_file.as_mut()) {
        let json = serde_json::to_string_pretty(r).map_err(|e| fail(EXIT_FAILURE, e))?;
        file.write_all((json + "\n").as_bytes()).map_err(|e| {
            fail(EXIT_FAILURE, format!("cannot write the report to {}: {e}", path.display()))
        })?;
        let _ = writeln!(out, "  report written to {}", path.display());
    }
    if let (Some(path), Some(file)) = (&a.html, html_file.as_mut()) {
        file.write_all(crate::html::render(r).as_bytes()).map_err(|e| {
            fail(EXIT_FAILURE, format!("cannot write the report to {}: {e}", path.display()))
        })?;
        let _ = writeln!(out, "  HTML report written to {}", path.display());
    }
    let total = finished.expectations;
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
