//! The `bench` command, and `bench-sim`, the child process it measures simulations in.

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::conditions::{measured, Conditions};
use super::{
    measure_apply, measure_lifecycles, measure_triggers, peak_rss_mib, ApplyFigures, TriggerRow,
};
use crate::cli::{EXIT_FAILURE, EXIT_OK};
use crate::scenario::Scenario;
use crate::sim::{Entry, Observer, Options, Simulation};

/// One simulation run in a child process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimFigures {
    /// Simulated days.
    pub days: u64,
    /// Blocks produced.
    pub blocks: u64,
    /// Wall seconds.
    pub wall_s: f64,
    /// Peak resident memory of the child, MiB.
    pub peak_rss_mib: Option<f64>,
    /// With the bridge: deposits credited plus withdrawals paid.
    #[serde(default)]
    pub flows: Option<u64>,
}

/// Everything `bench` measures. With `--json` this is printed as one object.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Reduced set?
    pub quick: bool,
    /// Logical cores of this machine.
    pub cores: usize,
    /// Trigger cost per block by SON count.
    pub triggers: Vec<TriggerRow>,
    /// `apply_block` per heartbeat transaction, ns.
    pub apply_block_ns_per_tx: u64,
    /// Raw secp256k1 verification, ns.
    pub sig_verify_ns: u64,
    /// apply / verify.
    pub apply_vs_verify: f64,
    /// A scheduler's round on a block where it has nothing to do, ns (median).
    pub scheduler_ns_per_empty_block: u64,
    /// `apply_block` per transaction when this node's mempool already checked them, ns.
    pub apply_block_mempool_checked_ns_per_tx: u64,
    /// Heartbeats per measured block.
    pub apply_txs_per_block: usize,
    /// Complete proposal lifecycles per second.
    pub lifecycle_per_s: f64,
    /// Simulated days per wall second (default network, 1 day).
    pub sim_days_per_s: f64,
    /// Wall seconds for 1 simulated day of the default network, one shared replica.
    pub sim_1d_wall_s: f64,
    /// The same day with `--data-dir` (commits every 1 000 blocks).
    pub sim_1d_durable_wall_s: f64,
    /// The same day with `--verify-replicas` (a replica per node, hashes compared every block;
    /// `null` with `--quick`).
    pub sim_1d_replicas_wall_s: Option<f64>,
    /// Wall seconds for 30 simulated days (`null` with `--quick`).
    pub sim_30d_wall_s: Option<f64>,
    /// Peak RSS of the 30-day run, MiB (`null` with `--quick`).
    pub sim_30d_peak_rss_mib: Option<f64>,
    /// Peak RSS of a 10-day run, MiB, to show memory does not grow with days.
    pub sim_10d_peak_rss_mib: Option<f64>,
    /// Peak RSS of the 1-day run, MiB.
    pub sim_1d_peak_rss_mib: Option<f64>,
    /// Mean commit cost per block on redb, fsync every block, ns.
    pub commit_fsync_every_block_ns: u64,
    /// Mean commit cost per block on redb, fsync every 1 000 blocks, ns.
    pub commit_fsync_every_1000_ns: u64,
    /// Wall seconds for 30 simulated days with `--data-dir` (fsync every 1 000 blocks; `null`
    /// with `--quick`).
    pub sim_30d_data_dir_wall_s: Option<f64>,
    /// `sim_30d_data_dir_wall_s / sim_30d_wall_s`.
    pub data_dir_vs_memory: Option<f64>,
    /// Bitcoin deposits and withdrawals carried through the whole flow (reported, swept or
    /// paid, signed, broadcast, settled) per wall second: the default network with 10 users
    /// each depositing every 30 simulated minutes and withdrawing half of it 15 minutes later
    /// (1 simulated day; 2 hours with `--quick`).
    pub btc_flows_per_s: f64,
    /// Flows the measured run completed.
    pub btc_flows: u64,
    /// Wall seconds for 30 simulated days of the default network with the bridge active (3
    /// users, a deposit and a withdrawal each per day; `null` with `--quick`).
    pub sim_30d_bridge_wall_s: Option<f64>,
    /// What the machine was doing during each figure: wall and CPU time, the load average
    /// before and after, and whether the load exceeded the cores.
    pub conditions: Vec<Conditions>,
    /// Some figure was measured while the load exceeded the machine's cores: the figures say as
    /// much about the other processes as about this program.
    pub disturbed: bool,
}

/// The bridge's traffic in a bench scenario: `users` users, each depositing 0.1 BTC every
/// `every` seconds (from 10 minutes on) and withdrawing 0.05 BTC half a period later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeLoad {
    /// Users.
    pub users: u32,
    /// Seconds between one user's deposits.
    pub every: u64,
}

/// The default network for `hours` hours, with the bridge carrying `load`.
pub fn bridge_network(hours: u64, load: BridgeLoad) -> Scenario {
    use std::fmt::Write as _;
    let duration = hours * 3_600;
    let mut text = format!(
        "name = \"bench-bridge\"\nseed = 1\nduration = \"{hours}h\"\n[network]\nwitnesses = 11\nsons = 15\n\
         [plugin_params]\n\"bitcoin.min_confirmations\" = 1\n\
         [bitcoin]\nblock_interval = \"5m\"\nusers = {}\nreserve_sat = 1000000\n",
        load.users
    );
    let mut t = 600;
    while t + load.every / 2 < duration {
        for u in 0..load.users {
            let at = t + u64::from(u);
            let _ = write!(
                text,
                "[[bitcoin.deposits]]\nat = {at}\nuser = {u}\nsat = 10000000\n\
                 [[bitcoin.withdrawals]]\nat = {}\nuser = {u}\nsat = 5000000\n",
                at + load.every / 2
            );
        }
        t += load.every;
    }
    Scenario::from_toml(&text, "<bench>").expect("valid")
}

/// The default network with no events, for `days` days.
pub fn default_network(days: u64) -> Scenario {
    let text = format!("name = \"bench-default\"\nseed = 1\nduration = \"{days}d\"\n[network]\nwitnesses = 11\nsons = 15\n");
    Scenario::from_toml(&text, "<bench>").expect("valid")
}

struct Silent;
impl Observer for Silent {
    fn entry(&mut self, _: Entry) {}
}

/// `sonprop bench-sim --days N [--data-dir DIR | --verify-replicas]` (run by `bench` as a child process, so its
/// peak memory is the simulation's alone): runs the default network and prints [`SimFigures`]
/// as JSON.
pub fn bench_sim(
    days: u64,
    data_dir: Option<std::path::PathBuf>,
    verify_replicas: bool,
    bridge: Option<(BridgeLoad, Option<u64>)>,
    out: &mut dyn Write,
) -> i32 {
    let scenario = match bridge {
        Some((load, hours)) => bridge_network(hours.unwrap_or(days * 24), load),
        None => default_network(days),
    };
    let Ok(registry) = crate::cli::registry_for(&scenario) else { return EXIT_FAILURE };
    let options = Options {
        data_dir: data_dir.clone(),
        fsync_every: crate::cli::DEFAULT_FSYNC_EVERY,
        verify_replicas,
        ..Options::default()
    };
    let Ok(mut sim) = Simulation::new(&scenario, registry.into_arc(), &options) else {
        return EXIT_FAILURE;
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_time().build() else {
        return EXIT_FAILURE;
    };
    let started = Instant::now();
    let Ok(finished) = rt.block_on(sim.run(&mut Silent)) else { return EXIT_FAILURE };
    let flows = finished.report.bitcoin.as_ref().map(|b| {
        let credited = b.deposits.iter().filter(|d| d.credited.is_some()).count();
        let paid = b.withdrawals.iter().filter(|w| w.sent_sat.is_some()).count();
        (credited + paid) as u64
    });
    let figures = SimFigures {
        days,
        blocks: finished.report.height,
        wall_s: started.elapsed().as_secs_f64(),
        peak_rss_mib: peak_rss_mib(),
        flows,
    };
    let _ = writeln!(out, "{}", serde_json::to_string(&figures).unwrap_or_default());
    EXIT_OK
}

fn run_child(
    days: u64,
    data_dir: Option<&std::path::Path>,
    replicas: bool,
) -> Result<SimFigures, String> {
    run_child_with(days, data_dir, replicas, None)
}

fn run_child_with(
    days: u64,
    data_dir: Option<&std::path::Path>,
    replicas: bool,
    bridge: Option<(BridgeLoad, Option<u64>)>,
) -> Result<SimFigures, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let mut args = vec!["bench-sim".to_owned(), "--days".to_owned(), days.to_string()];
    if let Some((load, hours)) = bridge {
        args.extend([
            "--bridge-users".to_owned(),
            load.users.to_string(),
            "--bridge-every".to_owned(),
            load.every.to_string(),
        ]);
        if let Some(h) = hours {
            args.extend(["--hours".to_owned(), h.to_string()]);
        }
    }
    if let Some(d) = data_dir {
        args.extend(["--data-dir".to_owned(), d.display().to_string()]);
    }
    if replicas {
        args.push("--verify-replicas".to_owned());
    }
    let output = Command::new(exe)
        .args(&args)
        .output()
        .map_err(|e| format!("cannot run the simulation child: {e}"))?;
    if !output.status.success() {
        return Err(format!("the {days}-day simulation child failed: {}", output.status));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("unreadable child output: {e}"))
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "ok  "
    } else {
        "MISS"
    }
}

/// `sonprop bench [--json] [--quick]`; `quiet` leaves out the progress lines on `err`.
pub fn bench(
    json: bool,
    quick: bool,
    quiet: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let step = |err: &mut dyn Write, what: &str| {
        if !quiet {
            let _ = writeln!(err, "bench: {what}…");
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut conditions = Vec::new();
    // Runs `f` as figure `name`, keeping its conditions.
    macro_rules! figure {
        ($name:expr, $children:expr, $f:expr) => {{
            let (value, c) = measured(&$name, cores, $children, $f);
            conditions.push(c);
            value
        }};
    }
    let (sizes, blocks): (&[usize], usize) =
        if quick { (&[100, 1_000], 60) } else { (&[100, 1_000, 10_000, 100_000], 200) };
    let mut triggers = Vec::new();
    for &n in sizes {
        step(err, &format!("triggers at {n} SONs"));
        triggers
            .push(figure!(format!("triggers at {n} SONs"), false, || measure_triggers(n, blocks)));
    }
    step(err, "a scheduler's round with nothing to do");
    let scheduler_ns_per_empty_block = figure!("scheduler round", false, || {
        super::measure_scheduler_empty(if quick { 200 } else { 2_000 })
    });
    step(err, "apply_block against signature verification");
    let apply: ApplyFigures = figure!("apply_block", false, || {
        if quick {
            measure_apply(1_000, 100, 5)
        } else {
            measure_apply(10_000, 1_000, 7)
        }
    });
    step(err, "proposal lifecycles");
    let lifecycle_per_s =
        figure!("proposal lifecycles", false, || measure_lifecycles(if quick { 50 } else { 400 }));
    step(err, "1 simulated day");
    let day = match figure!("1 day", true, || run_child(1, None, false)) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "sonprop: {e}");
            return EXIT_FAILURE;
        }
    };
    step(err, "1 simulated day with --data-dir");
    let dir = std::env::temp_dir().join(format!("sonprop-bench-day-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let day_durable = figure!("1 day --data-dir", true, || run_child(1, Some(&dir), false));
    let _ = std::fs::remove_dir_all(&dir);
    let day_durable = match day_durable {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "sonprop: {e}");
            return EXIT_FAILURE;
        }
    };
    step(err, "commits on redb, fsync every block and every 1 000 blocks");
    let commits = figure!("redb commits", false, || {
        super::measure_commit(1, if quick { 50 } else { 300 }).and_then(|a| {
            super::measure_commit(1_000, if quick { 1_000 } else { 5_000 }).map(|b| (a, b))
        })
    });
    let (commit_1, commit_1000) = match commits {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "sonprop: commit bench failed: {e}");
            return EXIT_FAILURE;
        }
    };
    step(err, "Bitcoin deposits and withdrawals through the whole flow");
    // The same network and load either way; --quick runs 2 simulated hours instead of a day.
    let dense = BridgeLoad { users: 10, every: 1_800 };
    let hours = quick.then_some(2);
    let flows = match figure!("bridge flows", true, || {
        run_child_with(1, None, false, Some((dense, hours)))
    }) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "sonprop: {e}");
            return EXIT_FAILURE;
        }
    };
    let btc_flows = flows.flows.unwrap_or(0);
    let (mut d10, mut d30, mut d30_disk, mut day_replicas) = (None, None, None, None);
    let mut d30_bridge = None;
    if !quick {
        step(err, "1 simulated day with a replica per node (--verify-replicas)");
        day_replicas = figure!("1 day, a replica per node", true, || run_child(1, None, true)).ok();
        step(err, "10 simulated days");
        d10 = figure!("10 days", true, || run_child(10, None, false)).ok();
        step(err, "30 simulated days");
        d30 = figure!("30 days", true, || run_child(30, None, false)).ok();
        step(err, "30 simulated days with --data-dir");
        let dir = std::env::temp_dir().join(format!("sonprop-bench-sim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        d30_disk = figure!("30 days --data-dir", true, || run_child(30, Some(&dir), false)).ok();
        let _ = std::fs::remove_dir_all(&dir);
        step(err, "30 simulated days with the bridge active");
        d30_bridge = figure!("30 days, bridge active", true, || {
            run_child_with(30, None, false, Some((BridgeLoad { users: 3, every: 86_400 }, None)))
        })
        .ok();
        if d10.is_none()
            || d30.is_none()
            || d30_disk.is_none()
            || day_replicas.is_none()
            || d30_bridge.is_none()
        {
            let _ = writeln!(err, "sonprop: a long simulation child failed");
            return EXIT_FAILURE;
        }
    }
    let disturbed = conditions.iter().any(|c| c.disturbed);
    let report = BenchReport {
        quick,
        cores,
        triggers,
        apply_block_ns_per_tx: apply.apply_block_ns_per_tx,
        sig_verify_ns: apply.sig_verify_ns,
        apply_vs_verify: apply.ratio,
        apply_block_mempool_checked_ns_per_tx: apply.apply_block_mempool_checked_ns_per_tx,
        scheduler_ns_per_empty_block,
        apply_txs_per_block: apply.txs_per_block,
        lifecycle_per_s,
        sim_days_per_s: day.days as f64 / day.wall_s,
        sim_1d_wall_s: day.wall_s,
        sim_1d_durable_wall_s: day_durable.wall_s,
        sim_1d_replicas_wall_s: day_replicas.as_ref().map(|f| f.wall_s),
        sim_30d_wall_s: d30.as_ref().map(|f| f.wall_s),
        sim_30d_peak_rss_mib: d30.as_ref().and_then(|f| f.peak_rss_mib),
        sim_10d_peak_rss_mib: d10.as_ref().and_then(|f| f.peak_rss_mib),
        sim_1d_peak_rss_mib: day.peak_rss_mib,
        commit_fsync_every_block_ns: commit_1,
        commit_fsync_every_1000_ns: commit_1000,
        sim_30d_data_dir_wall_s: d30_disk.as_ref().map(|f| f.wall_s),
        data_dir_vs_memory: d30_disk.as_ref().zip(d30.as_ref()).map(|(a, b)| a.wall_s / b.wall_s),
        btc_flows_per_s: btc_flows as f64 / flows.wall_s,
        btc_flows,
        sim_30d_bridge_wall_s: d30_bridge.as_ref().map(|f| f.wall_s),
        conditions,
        disturbed,
    };
    if json {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print_table(&report, out);
    }
    EXIT_OK
}

fn print_table(r: &BenchReport, out: &mut dyn Write) {
    let _ = writeln!(
        out,
        "sonprop bench{} on {} cores",
        if r.quick { " --quick" } else { "" },
        r.cores
    );
    let _ = writeln!(out, "\nreport-down + deregister per block on the next producer's node (median; 1% of SONs in maintenance, {} live proposals)", super::LIVE_PROPOSALS);
    let _ = writeln!(out, "  indexed: the triggers, plus the scheduler's round around them (snapshot, who runs, review step)");
    let _ = writeln!(out, "  scan: Peerplays' loops (active SONs and records; every SON; the approval step's proposal copy)");
    let _ = writeln!(
        out,
        "{:>9}  {:>12}  {:>12}  {:>12}  {:>4}",
        "sons", "indexed ns", "scan ns", "scan/indexed", "due"
    );
    for t in &r.triggers {
        let _ = writeln!(
            out,
            "{:>9}  {:>12}  {:>12}  {:>11.1}x  {:>4}",
            t.sons, t.indexed_ns_per_block, t.scan_ns_per_block, t.ratio, t.due
        );
    }
    let _ = writeln!(
        out,
        "scheduler round with nothing due or to review: {} ns per block per node",
        r.scheduler_ns_per_empty_block
    );
    let _ = writeln!(
        out,
        "\napply_block: {} ns per heartbeat transaction ({} per block, signatures checked across {} cores); raw secp256k1 verify: {} ns; ratio {:.2}x",
        r.apply_block_ns_per_tx, r.apply_txs_per_block, r.cores, r.sig_verify_ns, r.apply_vs_verify
    );
    let _ = writeln!(
        out,
        "apply_block after the mempool checked the same transactions: {} ns per transaction",
        r.apply_block_mempool_checked_ns_per_tx
    );
    let _ = writeln!(
        out,
        "proposal lifecycles (create, 11 approvals, execute): {:.0} per s",
        r.lifecycle_per_s
    );
    let _ = writeln!(
        out,
        "simulation, default network: {:.2} simulated days per wall second",
        r.sim_days_per_s
    );
    let replicas = r
        .sim_1d_replicas_wall_s
        .map(|w| format!(", {w:.1} s with a replica per node ({:.0}x)", w / r.sim_1d_wall_s))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "1 simulated day: {:.2} s wall, {:.2} s with --data-dir ({:.2}x){replicas}",
        r.sim_1d_wall_s,
        r.sim_1d_durable_wall_s,
        r.sim_1d_durable_wall_s / r.sim_1d_wall_s
    );
    if let (Some(w), Some(m)) = (r.sim_30d_wall_s, r.sim_30d_peak_rss_mib) {
        let m10 = r.sim_10d_peak_rss_mib.unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "30 simulated days: {w:.1} s wall, peak RSS {m:.1} MiB (10 days: {m10:.1} MiB)"
        );
    }
    let _ = writeln!(
        out,
        "redb commit per block: {:.1} µs with fsync every block, {:.1} µs with fsync every 1 000 blocks",
        r.commit_fsync_every_block_ns as f64 / 1e3,
        r.commit_fsync_every_1000_ns as f64 / 1e3
    );
    if let (Some(w), Some(x)) = (r.sim_30d_data_dir_wall_s, r.data_dir_vs_memory) {
        let _ = writeln!(out, "30 simulated days with --data-dir (fsync every 1 000 blocks): {w:.1} s wall, {x:.2}x in memory");
    }
    let _ = writeln!(
        out,
        "bitcoin bridge: {:.0} deposits and withdrawals per wall second through the whole flow ({} in {}, 10 users)",
        r.btc_flows_per_s,
        r.btc_flows,
        if r.quick { "2 simulated hours" } else { "1 simulated day" }
    );
    if let (Some(b), Some(w)) = (r.sim_30d_bridge_wall_s, r.sim_30d_wall_s) {
        let _ = writeln!(
            out,
            "30 simulated days with the bridge active: {b:.1} s wall ({:.2}x without)",
            b / w
        );
    }

    let _ = writeln!(
        out,
        "\nmachine conditions (1-minute load average before -> after; CPU time of the work)"
    );
    for c in &r.conditions {
        let load = |l: Option<f64>| l.map_or_else(|| "?".to_owned(), |l| format!("{l:.2}"));
        let cpu = c.cpu_s.map_or_else(|| "?".to_owned(), |s| format!("{s:.2}"));
        let _ = writeln!(
            out,
            "  {:<28} {:>8.2} s wall {:>8} s CPU   load {} -> {}{}",
            c.figure,
            c.wall_s,
            cpu,
            load(c.load_before),
            load(c.load_after),
            if c.disturbed { "   DISTURBED" } else { "" }
        );
    }
    if r.disturbed {
        let _ = writeln!(
            out,
            "DISTURBED: the load exceeded the {} cores during the figures marked so; they say as much about the other processes as about sonprop. Measure again on a quiet machine.",
            r.cores
        );
    }

    let _ = writeln!(out, "\ntargets");
    let row = |n: usize| r.triggers.iter().find(|t| t.sons == n);
    if let (Some(small), Some(big)) = (row(1_000), row(100_000)) {
        let growth = big.indexed_ns_per_block as f64 / small.indexed_ns_per_block as f64;
        let _ = writeln!(
            out,
            "  [{}] indexed cost at 100 000 SONs <= 2x its cost at 1 000: {growth:.2}x",
            mark(growth <= 2.0)
        );
        let _ = writeln!(
            out,
            "  [{}] indexed >= 100x faster than the scan at 100 000 SONs: {:.0}x",
            mark(big.ratio >= 100.0),
            big.ratio
        );
    }
    let _ = writeln!(
        out,
        "  [{}] apply_block per heartbeat <= 0.65x raw verification: {:.2}x",
        mark(r.apply_vs_verify <= 0.65),
        r.apply_vs_verify
    );
    let _ = writeln!(
        out,
        "  [{}] scheduler round with nothing to do <= 500 ns: {} ns",
        mark(r.scheduler_ns_per_empty_block <= 500),
        r.scheduler_ns_per_empty_block
    );
    let durable = r.sim_1d_durable_wall_s / r.sim_1d_wall_s;
    let _ = writeln!(
        out,
        "  [{}] 1 simulated day with --data-dir <= 1.25x in memory: {durable:.2}x",
        mark(durable <= 1.25)
    );
    if let Some(w) = r.sim_1d_replicas_wall_s {
        let x = w / r.sim_1d_wall_s;
        let _ = writeln!(
            out,
            "  [{}] 1 simulated day with a replica per node <= 15x: {x:.0}x",
            mark(x <= 15.0)
        );
    }
    if let (Some(w), Some(m)) = (r.sim_30d_wall_s, r.sim_30d_peak_rss_mib) {
        let _ = writeln!(out, "  [{}] 30 simulated days in <= 10 s: {w:.1} s", mark(w <= 10.0));
        let flat = r.sim_10d_peak_rss_mib.is_some_and(|m10| m <= m10 * 1.1 + 1.0);
        let _ = writeln!(
            out,
            "  [{}] peak RSS < 200 MiB and not growing with days: {m:.1} MiB",
            mark(m < 200.0 && flat)
        );
    }
    if let Some(x) = r.data_dir_vs_memory {
        let _ = writeln!(
            out,
            "  [{}] 30 days with --data-dir <= 1.25x in memory: {x:.2}x",
            mark(x <= 1.25)
        );
    }
    let _ = writeln!(
        out,
        "  [{}] bridge deposits and withdrawals >= 1 000 per wall second: {:.0}",
        mark(r.btc_flows_per_s >= 1000.0),
        r.btc_flows_per_s
    );
    if let (Some(b), Some(w)) = (r.sim_30d_bridge_wall_s, r.sim_30d_wall_s) {
        let x = b / w;
        let _ = writeln!(
            out,
            "  [{}] 30 simulated days with the bridge <= 1.5x without: {x:.2}x",
            mark(x <= 1.5)
        );
    }
    if r.quick {
        let _ = writeln!(out, "  (--quick: the 100 000-SON and 30-day targets are not measured)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(disturbed: bool) -> BenchReport {
        let c = Conditions {
            figure: "1 day".into(),
            wall_s: 0.5,
            cpu_s: Some(0.4),
            load_before: Some(if disturbed { 6.5 } else { 0.4 }),
            load_after: Some(0.5),
            disturbed,
        };
        BenchReport {
            quick: true,
            cores: 2,
            triggers: Vec::new(),
            apply_block_ns_per_tx: 1,
            sig_verify_ns: 1,
            apply_vs_verify: 1.0,
            scheduler_ns_per_empty_block: 1,
            apply_block_mempool_checked_ns_per_tx: 1,
            apply_txs_per_block: 1,
            lifecycle_per_s: 1.0,
            sim_days_per_s: 1.0,
            sim_1d_wall_s: 0.5,
            sim_1d_durable_wall_s: 0.5,
            sim_1d_replicas_wall_s: None,
            sim_30d_wall_s: None,
            sim_30d_peak_rss_mib: None,
            sim_10d_peak_rss_mib: None,
            sim_1d_peak_rss_mib: None,
            commit_fsync_every_block_ns: 1,
            commit_fsync_every_1000_ns: 1,
            sim_30d_data_dir_wall_s: None,
            data_dir_vs_memory: None,
            btc_flows_per_s: 1.0,
            btc_flows: 1,
            sim_30d_bridge_wall_s: None,
            conditions: vec![c],
            disturbed,
        }
    }

    #[test]
    fn figures_taken_on_a_busy_machine_are_marked_in_the_text_and_the_json() {
        let mut text = Vec::new();
        print_table(&report(true), &mut text);
        let text = String::from_utf8(text).expect("utf-8");
        assert!(text.contains("load 6.50 -> 0.50   DISTURBED"), "{text}");
        assert!(text.contains("DISTURBED: the load exceeded the 2 cores"), "{text}");
        let json = serde_json::to_value(report(true)).expect("json");
        assert_eq!(json["disturbed"], true);
        assert_eq!(json["conditions"][0]["disturbed"], true);
        assert_eq!(json["conditions"][0]["cpu_s"], 0.4);

        let mut quiet = Vec::new();
        print_table(&report(false), &mut quiet);
        let quiet = String::from_utf8(quiet).expect("utf-8");
        assert!(!quiet.contains("DISTURBED"), "{quiet}");
        assert!(quiet.contains("1 day") && quiet.contains("0.40 s CPU"), "{quiet}");
    }
}
