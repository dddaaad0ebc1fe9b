//! Crash safety of `sonprop simulate --data-dir`: the binary is killed with SIGKILL at
//! pseudo-random moments and restarted until the run completes; the final state hash and proposal
//! list equal those of an uninterrupted run.
//!
//! This test lives in the simulator package rather than the workspace's `tests/` binary because
//! it runs the `sonprop` executable, which cargo builds for, and names to (`CARGO_BIN_EXE_sonprop`),
//! only the package's own integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SCENARIO: &str = "\
name = \"crash\"
seed = 21
duration = \"3h\"
[network]
witnesses = 5
sons = 9
[params]
son_deregister_time = \"1h\"
[[events]]
at = \"20m\"
son = 2
do = \"stop\"
[[events]]
at = \"25m\"
son = 5
do = \"stop\"
[[events]]
at = \"70m\"
son = 5
do = \"start\"
[[expect]]
son = 2
status = \"deregistered\"
";

fn dir(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("sonprop-crash-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("temp dir");
    p
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report")).expect("JSON report")
}

/// splitmix64: the kill schedule is reproducible from the printed seed.
fn next(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Runs the scenario once uninterrupted, then on a data directory with `--fsync-every fsync`,
/// SIGKILLed `kills_wanted` times at pseudo-random moments during the run and restarted until it
/// completes; the final state hash, proposal list and SON table must equal the uninterrupted
/// run's. Returns how many restarts resumed from a block the store held.
fn crash_run(kills_wanted: u32, seed: u64, duration: &str, fsync: u64) -> u32 {
    println!("crash schedule seed {seed}, fsync every {fsync} (set SONPROP_CRASH_SEED to replay)");
    let work = dir(&format!("{seed}-{fsync}"));
    let scenario = work.join("crash.toml");
    std::fs::write(&scenario, SCENARIO.replace("\"3h\"", &format!("\"{duration}\"")))
        .expect("scenario");
    let exe = env!("CARGO_BIN_EXE_sonprop");

    let clean = work.join("clean.json");
    let status = Command::new(exe)
        .args([
            "simulate",
            "--quiet",
            scenario.to_str().expect("utf-8"),
            "--report",
            clean.to_str().expect("utf-8"),
        ])
        .status()
        .expect("run");
    assert!(status.success(), "uninterrupted run");
    // The same run on a data directory, uninterrupted: it must end the same, and its length
    // spreads the kill moments below over a whole run on disk, whatever this machine's speed.
    let reference = work.join("reference.json");
    let started = std::time::Instant::now();
    let status = Command::new(exe)
        .args(["simulate", "--quiet", scenario.to_str().expect("utf-8"), "--data-dir"])
        .arg(work.join("reference-data"))
        .args(["--fsync-every", &fsync.to_string(), "--report"])
        .arg(&reference)
        .status()
        .expect("run");
    assert!(status.success(), "uninterrupted run on disk");
    let run_ms = started.elapsed().as_millis().max(100) as u64;
    assert_eq!(report(&clean)["state_hash"], report(&reference)["state_hash"]);

    let data = work.join("data");
    let crashed = work.join("crashed.json");
    let mut rng = seed;
    let (mut kills, mut resumes, mut attempts) = (0u32, 0u32, 0u32);
    loop {
        attempts += 1;
        assert!(attempts < 200, "no progress after {attempts} starts");
        // Not --quiet: a restart that resumes says so on its first lines.
        let log = work.join(format!("attempt-{attempts}.txt"));
        let mut child = Command::new(exe)
            .args([
                "simulate",
                scenario.to_str().expect("utf-8"),
                "--data-dir",
                data.to_str().expect("utf-8"),
                "--fsync-every",
                &fsync.to_string(),
                "--report",
                crashed.to_str().expect("utf-8"),
            ])
            .stdout(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn");
        let mut killed = false;
        // Kills go on past the wanted count (up to three times it) until one restart has
        // resumed: on a loaded machine every kill may land before the first commit.
        let more = kills < kills_wanted || (resumes == 0 && kills < 3 * kills_wanted);
        if more {
            // Every other kill lands in the later three quarters of a run, after commits.
            let wait = if kills % 2 == 0 {
                10 + next(&mut rng) % run_ms
            } else {
                run_ms / 4 + next(&mut rng) % (run_ms - run_ms / 4)
            };
            std::thread::sleep(Duration::from_millis(wait));
            if child.try_wait().expect("poll").is_none() {
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                kills += 1;
                killed = true;
                println!("killed after {wait} ms (kill {kills})");
            }
        }
        let printed = std::fs::read_to_string(&log).unwrap_or_default();
        if killed {
            resumes += u32::from(printed.contains("resuming at block"));
            continue;
        }
        let status = child.wait().expect("wait");
        assert!(status.success(), "the resumed run completes: {status}");
        if !printed.contains("resuming at block")
            && std::fs::read_to_string(&log).unwrap_or_default().contains("resuming at block")
        {
            resumes += 1;
        }
        if more {
            // It finished before the next kill (a resumed run has less left to do): start the
            // run over on a fresh directory, keeping the kills that landed.
            std::fs::remove_dir_all(&data).ok();
            continue;
        }
        break;
    }
    let (a, b) = (report(&clean), report(&crashed));
    assert_eq!(a["state_hash"], b["state_hash"], "the same final state as the uninterrupted run");
    assert_eq!(
        a["proposals"], b["proposals"],
        "the same proposals, each once, with the same outcomes"
    );
    assert_eq!(a["sons"], b["sons"]);
    assert_eq!(a["height"], b["height"]);
    std::fs::remove_dir_all(&work).ok();
    println!("{kills} kills landed, {resumes} restarts resumed");
    resumes
}

fn seed() -> u64 {
    std::env::var("SONPROP_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7)
}

/// Ten kills during a run, for a node that fsyncs every block, every 7 blocks, and every 5000
/// (more than the 1000-block undo window: the runner must commit its own state with the blocks
/// when the window fills, never the ledger alone).
#[test]
fn runs_killed_ten_times_end_as_uninterrupted_ones_whatever_the_fsync_policy() {
    for fsync in [1, 7, 5000] {
        let resumes = crash_run(10, seed() ^ fsync, "3h", fsync);
        // How many restarts find blocks to resume from depends on when the kills land; at
        // least one must, or the test proved nothing about resuming.
        assert!(resumes >= 1, "fsync every {fsync}: no restart resumed from the store");
    }
}

/// Twenty-five kills over a 14-hour run (a deregistration and its vesting included), fsync every
/// 20 blocks: about 30 s in a debug build, so it runs with the others.
#[test]
fn a_run_killed_twenty_five_times_ends_as_an_uninterrupted_one() {
    crash_run(25, seed() ^ 0xdead_beef, "14h", 20);
}

/// A damaged or empty store is one clean error: no panic text, no backtrace, and never a fresh
/// start from genesis.
#[test]
fn a_truncated_or_empty_store_is_one_clean_error_never_a_fresh_start() {
    let d = dir("damaged");
    let scenario = d.join("s.toml");
    std::fs::write(&scenario, SCENARIO.replace("duration = \"3h\"", "duration = \"90m\""))
        .expect("scenario");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_sonprop"))
            .args(["simulate", "--quiet", scenario.to_str().expect("utf-8"), "--data-dir"])
            .arg(&d)
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("runs")
    };
    // 90 minutes: the expectation (a deregistration) does not hold yet, so exit 1.
    assert!(matches!(run().status.code(), Some(0 | 1)), "a first run writes the store");
    let file = d.join("chain.redb");
    let bytes = std::fs::read(&file).expect("store");
    for (what, damaged) in [("truncated", bytes[..bytes.len() / 3].to_vec()), ("empty", Vec::new())]
    {
        std::fs::write(&file, &damaged).expect("damage");
        let out = run();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains("chain.redb") && err.contains("corrupt"), "{what}: {err}");
        assert!(!err.contains("panicked") && !err.contains("backtrace"), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        assert_eq!(std::fs::read(&file).expect("store"), damaged, "{what}: left as it was");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// Starts `sonprop simulate` on `d` and returns once it holds the directory and has run a
/// moment.
fn start_durable(d: &Path, scenario: &Path) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_sonprop"))
        .args(["simulate", scenario.to_str().expect("utf-8"), "--data-dir"])
        .arg(d)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !d.join("owner").exists() {
        assert!(std::time::Instant::now() < deadline, "the run never opened its directory");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child
}

fn waited(child: std::process::Child) -> (Option<i32>, String, String) {
    let out = child.wait_with_output().expect("ends");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Ctrl-C (SIGINT) on a durable run: it stops after the block under way, commits it, says
/// where, and exits 130; the same command resumes there.
#[test]
fn ctrl_c_on_a_durable_run_commits_says_where_and_the_same_command_resumes() {
    let d = dir("sigint");
    let scenario = d.join("s.toml");
    // Long enough that the signal lands mid-run on any machine.
    std::fs::write(&scenario, SCENARIO.replace("duration = \"3h\"", "duration = \"30d\""))
        .expect("scenario");
    let child = start_durable(&d.join("data"), &scenario);
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(sent.expect("kill runs").success());
    let (code, out, err) = waited(child);
    assert_eq!(code, Some(130), "{out}{err}");
    let line = out.lines().find(|l| l.starts_with("interrupted at block ")).expect(&out);
    let n: u64 = line["interrupted at block ".len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect(line);
    assert!(
        line.ends_with(&format!("; last commit at block {n}; run the same command to resume")),
        "{line}"
    );
    assert!(!out.contains("summary:"), "no summary of a run not done: {out}");
    // Resumed at the commit, then interrupted again (a 30-day run is not waited for).
    let child = start_durable(&d.join("data"), &scenario);
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let (code, out, err) = waited(child);
    assert_eq!(code, Some(130), "{out}{err}");
    assert!(out.contains(&format!("resuming at block {n} ")), "{out}");
    let _ = std::fs::remove_dir_all(&d);
}

/// A run killed with SIGKILL and restarted at once, before the killed process has ended: the
/// restart waits for the lock the dead process held and takes the directory over.
#[test]
fn a_restart_right_after_kill_9_takes_the_directory_over() {
    let d = dir("takeover");
    let scenario = d.join("s.toml");
    std::fs::write(&scenario, SCENARIO.replace("duration = \"3h\"", "duration = \"90m\""))
        .expect("scenario");
    let data = d.join("data");
    let mut child = start_durable(&data, &scenario);
    child.kill().expect("SIGKILL");
    // Not waited for: the restart races the killed process's end.
    let restart = Command::new(env!("CARGO_BIN_EXE_sonprop"))
        .args(["simulate", "--quiet", scenario.to_str().expect("utf-8"), "--data-dir"])
        .arg(&data)
        .output()
        .expect("runs");
    let _ = child.wait();
    let err = String::from_utf8_lossy(&restart.stderr);
    assert!(matches!(restart.status.code(), Some(0 | 1)), "{err}");
    assert!(!err.contains("in use"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}
