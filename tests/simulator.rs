//! The example runner, through its library entry points: the built-in scenario, determinism,
//! replica verification, and the errors a bad scenario file gets.

use std::path::PathBuf;

use sonprop_simulator::cli::{self, EXIT_EXPECTATION, EXIT_OK, EXIT_USAGE};
use sonprop_simulator::scenario::Scenario;
use sonprop_simulator::sim::{Entry, Options, Simulation};

/// A file under the system temp directory, unique to this process and `name`.
fn temp_file(name: &str, contents: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("sonprop-test-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).expect("temp file");
    path
}

fn run_cli(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cli::run(&args, &mut out, &mut err, false);
    (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

#[test]
fn the_built_in_scenario_deregisters_son_3_and_reports_every_proposal_once() {
    let report =
        std::env::temp_dir().join(format!("sonprop-test-{}-report.json", std::process::id()));
    let path = report.to_str().expect("utf-8 path");
    let (code, out, err) = run_cli(&["simulate", "--quiet", "--report", path]);
    assert_eq!(code, EXIT_OK, "{out}{err}");
    assert!(out.contains("expectations: 3 of 3 hold"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    std::fs::remove_file(&report).ok();

    assert_eq!(json["scenario"], "single-outage");
    assert_eq!(json["height"], 16_800);
    assert_eq!(json["head"]["unix"], 1_767_225_600u64 + 14 * 3600);
    assert_eq!(json["head"]["offset"], "T+14:00:00");
    let sons = json["sons"].as_array().expect("sons");
    assert_eq!(sons.len(), 15);
    let son3 = sons.iter().find(|s| s["id"] == "1.33.3").expect("son 3");
    assert_eq!(son3["status"], "deregistered");
    let down = son3["down_since"]["unix"].as_u64().expect("down");
    let gone = son3["deregistered"]["unix"].as_u64().expect("deregistered");
    assert!(gone >= down + 12 * 3600 && gone <= down + 12 * 3600 + 12, "{down} {gone}");
    assert!(sons.iter().filter(|s| s["id"] != "1.33.3").all(|s| s["status"] == "active"));
    let never_down = sons.iter().filter(|s| s["id"] != "1.33.3");
    assert!(never_down.clone().all(|s| s["down_since"].is_null() && s["deregistered"].is_null()));

    let proposals = json["proposals"].as_array().expect("proposals");
    let ids: std::collections::BTreeSet<_> =
        proposals.iter().map(|p| p["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), proposals.len(), "every proposal appears once");
    let kinds: Vec<_> = proposals
        .iter()
        .map(|p| (p["kind"].as_str(), p["subject"].as_str(), p["outcome"].as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (Some("son_report_down"), Some("1.33.3"), Some("executed")),
            (Some("son_deregister"), Some("1.33.3"), Some("executed")),
        ]
    );
    for p in proposals {
        assert!(p["approvals"].as_u64().expect("approvals") >= 10, "threshold of 14 live SONs");
        assert!(
            p["ended"]["unix"].as_u64().expect("time")
                <= p["expires"]["unix"].as_u64().expect("exp")
        );
    }
}

fn short(seed: u64, extra: &str) -> Scenario {
    let text = format!(
        "name = \"short\"\nseed = {seed}\nduration = \"45m\"\n[network]\nwitnesses = 5\nsons = 9\n\
         [params]\nson_deregister_time = \"20m\"\n\
         [[events]]\nat = \"5m\"\nson = 2\ndo = \"stop\"\n\
         [[events]]\nat = \"5m\"\nson = 6\ndo = \"stop\"\n\
         [[events]]\nat = \"6m\"\nson = 7\ndo = \"stop\"\n{extra}"
    );
    Scenario::from_toml(&text, "short.toml").expect("valid")
}

fn run_to_end(
    s: &Scenario,
    verify_replicas: bool,
) -> (sonprop_simulator::sim::Finished, Vec<Entry>) {
    let registry = cli::registry().expect("registry").into_arc();
    let mut sim = Simulation::new(s, registry, &Options { verify_replicas, ..Options::default() })
        .expect("network");
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let mut timeline: Vec<Entry> = Vec::new();
    let finished = rt.block_on(sim.run(&mut timeline)).expect("runs");
    (finished, timeline)
}

#[test]
fn the_same_seed_gives_the_same_state_hash_and_another_seed_does_not() {
    let (a, ta) = run_to_end(&short(1, ""), false);
    let (b, tb) = run_to_end(&short(1, ""), false);
    assert_eq!(a.report.state_hash, b.report.state_hash);
    assert_eq!(a.report, b.report);
    assert_eq!(ta, tb, "the same timeline, line for line");
    let (c, _) = run_to_end(&short(2, ""), false);
    assert_ne!(
        a.report.state_hash, c.report.state_hash,
        "the seed changes keys, chain id and schedule"
    );
    assert_eq!(
        a.report.sons.iter().filter(|s| s.status == sonprop_core::SonStatus::Deregistered).count(),
        3
    );
}

#[test]
fn verify_replicas_passes_on_a_multi_outage_scenario_and_matches_the_shared_run() {
    let expect = "[[expect]]\nson = 2\nstatus = \"deregistered\"\n[[expect]]\nson = 7\nstatus = \"deregistered\"\n";
    let (verified, _) = run_to_end(&short(5, expect), true);
    assert!(verified.failures.is_empty(), "{:?}", verified.failures);
    let (shared, _) = run_to_end(&short(5, expect), false);
    assert_eq!(
        verified.report.state_hash, shared.report.state_hash,
        "replicas change nothing on chain"
    );

    let path = temp_file(
        "multi.toml",
        "name = \"multi\"\nduration = \"30m\"\n[network]\nwitnesses = 4\nsons = 7\n[params]\nson_deregister_time = \"15m\"\n\
         [[events]]\nat = \"1m\"\nson = 1\ndo = \"stop\"\n[[events]]\nat = \"1m\"\nson = 3\ndo = \"stop\"\n\
         [[expect]]\nson = 1\nstatus = \"deregistered\"\n",
    );
    let (code, out, err) =
        run_cli(&["simulate", path.to_str().expect("utf-8"), "--verify-replicas"]);
    std::fs::remove_file(&path).ok();
    assert_eq!(code, EXIT_OK, "{out}{err}");
    assert!(out.contains("verifying every replica"), "{out}");
}

#[test]
fn every_shipped_scenario_meets_its_expectations() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/simulator/scenarios");
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).expect("scenarios").map(|e| e.expect("entry").path()).collect();
    files.sort();
    assert!(files.len() >= 3);
    for f in files {
        let (code, out, err) = run_cli(&["simulate", "--quiet", f.to_str().expect("utf-8")]);
        assert_eq!(code, EXIT_OK, "{}: {out}{err}", f.display());
    }
}

#[test]
fn a_failed_expectation_exits_1_and_names_it() {
    let path = temp_file("fail.toml", "name = \"f\"\nduration = \"10m\"\n[network]\nwitnesses = 3\nsons = 5\n[[expect]]\nson = 1\nstatus = \"deregistered\"\n");
    let (code, out, _) = run_cli(&["simulate", "--quiet", path.to_str().expect("utf-8")]);
    std::fs::remove_file(&path).ok();
    assert_eq!(code, EXIT_EXPECTATION);
    assert!(out.contains("FAILED son 1.33.1: expected deregistered, got active"), "{out}");
}

#[test]
fn malformed_scenario_files_exit_2_naming_the_problem() {
    let base = "name = \"bad\"\nduration = \"1h\"\n[network]\nwitnesses = 3\nsons = 5\n";
    let cases = [
        ("unknown-field", format!("{base}colour = \"blue\"\n"), "colour"),
        (
            "son-out-of-range",
            format!("{base}[[events]]\nat = \"5m\"\nson = 12\ndo = \"stop\"\n"),
            "events[0].son: SON 12 does not exist",
        ),
        ("negative-duration", base.replace("\"1h\"", "\"-1h\""), "negative"),
        ("unparsable-duration", base.replace("\"1h\"", "\"an hour\""), "`an hour`"),
        (
            "zero-witnesses",
            base.replace("witnesses = 3", "witnesses = 0"),
            "network.witnesses: there must be at least 1 witness",
        ),
    ];
    for (name, text, needle) in cases {
        let path = temp_file(&format!("{name}.toml"), &text);
        let (code, out, err) = run_cli(&["simulate", path.to_str().expect("utf-8")]);
        std::fs::remove_file(&path).ok();
        assert_eq!(code, EXIT_USAGE, "{name}: {out}{err}");
        assert!(err.contains(needle), "{name}: {err}");
        assert!(err.contains(&format!("{name}.toml")), "{name}: the message names the file: {err}");
    }
    let (code, _, err) = run_cli(&["simulate", "/nonexistent/scenario.toml"]);
    assert_eq!(code, EXIT_USAGE);
    assert!(err.contains("/nonexistent/scenario.toml") && err.contains("cannot read"), "{err}");
    let (code, _, err) = run_cli(&["simulate", "--speed", "9"]);
    assert_eq!(code, EXIT_USAGE);
    assert!(err.contains("unexpected argument '--speed'"), "{err}");
}

#[test]
fn operations_lists_the_registered_kinds() {
    let (code, out, _) = run_cli(&["operations"]);
    assert_eq!(code, EXIT_OK);
    for kind in [
        "son_deregister",
        "son_report_down",
        "son_heartbeat",
        "proposal_create",
        "bitcoin_deposit_process",
        "bitcoin_withdraw",
        "son_create",
        "son_update",
        "son_maintenance",
        "account_vote",
        "vesting_balance_withdraw",
    ] {
        assert!(out.lines().any(|l| l.starts_with(kind)), "{kind}: {out}");
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("sonprop-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

#[test]
fn a_run_stopped_and_restarted_at_several_heights_ends_as_an_uninterrupted_one() {
    let scenario = short(9, "");
    let (uninterrupted, _) = run_to_end(&scenario, false);
    let dir = temp_dir("restart");
    let options = Options {
        verify_replicas: false,
        data_dir: Some(dir.clone()),
        fsync_every: 25,
        services: None,
        force: false,
        bitcoin_script_check: None,
    };
    let registry = cli::registry().expect("registry").into_arc();
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let mut timeline: Vec<Entry> = Vec::new();
    for stop_at in [1u64, 137, 400, 401, 700] {
        let mut sim = Simulation::new(&scenario, registry.clone(), &options).expect("open");
        while sim.ledger().state().head_height() < stop_at {
            assert!(
                rt.block_on(sim.step(&mut timeline)).expect("step"),
                "the run ends after {stop_at}"
            );
        }
        sim.checkpoint().expect("clean stop");
    }
    let mut sim = Simulation::new(&scenario, registry, &options).expect("open");
    assert_eq!(sim.resumed_at, 700);
    let finished = rt.block_on(sim.run(&mut timeline)).expect("runs");
    assert_eq!(finished.report.state_hash, uninterrupted.report.state_hash);
    assert_eq!(
        finished.report.proposals, uninterrupted.report.proposals,
        "every proposal, once, with its outcome"
    );
    assert_eq!(finished.report, uninterrupted.report);
    std::fs::remove_dir_all(&dir).ok();
}

/// Stops the run (sets the flag a signal handler would) once `at` blocks are done.
struct StopAt {
    at: u64,
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl sonprop_simulator::sim::Observer for StopAt {
    fn entry(&mut self, _: Entry) {}
    fn progress(&mut self, done: u64, _total: u64) {
        if done >= self.at {
            self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[test]
fn an_interrupted_run_stops_after_its_block_commits_it_and_resumes_to_the_same_end() {
    let scenario = short(9, "");
    let (uninterrupted, _) = run_to_end(&scenario, false);
    let dir = temp_dir("interrupted");
    // A commit every 500 blocks: the interruption at 313 commits what the schedule would not.
    let options = Options { data_dir: Some(dir.clone()), fsync_every: 500, ..Options::default() };
    let registry = cli::registry().expect("registry").into_arc();
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut sim = Simulation::new(&scenario, registry.clone(), &options).expect("open");
    assert_eq!(sim.committed_height(), Some(0));
    let mut stop = StopAt { at: 313, flag: flag.clone() };
    let stopped = rt.block_on(sim.run_until(&mut stop, &flag)).expect("runs");
    assert!(stopped.is_none(), "stopped, not finished");
    assert_eq!(sim.ledger().state().head_height(), 313, "the flag is read between blocks");
    assert_eq!(sim.committed_height(), Some(313), "what was done is committed");
    drop(sim);
    let mut sim = Simulation::new(&scenario, registry.clone(), &options).expect("reopen");
    assert_eq!(sim.resumed_at, 313);
    let never = std::sync::atomic::AtomicBool::new(false);
    let finished = rt.block_on(sim.run_until(&mut Vec::new(), &never)).expect("runs");
    assert_eq!(finished.expect("finished").report, uninterrupted.report);
    // Without a data directory nothing is committed, and the run still stops.
    let mut sim = Simulation::new(&scenario, registry, &Options::default()).expect("open");
    flag.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut stop = StopAt { at: 5, flag: flag.clone() };
    assert!(rt.block_on(sim.run_until(&mut stop, &flag)).expect("runs").is_none());
    assert_eq!((sim.ledger().state().head_height(), sim.committed_height()), (5, None));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_data_dir_of_another_scenario_or_a_damaged_one_is_refused() {
    let dir = temp_dir("other");
    let a = temp_file(
        "a.toml",
        "name = \"a\"\nduration = \"2m\"\n[network]\nwitnesses = 3\nsons = 5\n",
    );
    let b = temp_file("b.toml", "name = \"b\"\nduration = \"2m\"\n[network]\nwitnesses = 3\nsons = 5\n[[events]]\nat = \"1m\"\nson = 1\ndo = \"stop\"\n");
    let c = temp_file(
        "c.toml",
        "name = \"a\"\nduration = \"2m\"\n[network]\nwitnesses = 4\nsons = 5\n",
    );
    let d = dir.to_str().expect("utf-8");
    let (code, out, err) =
        run_cli(&["simulate", "--quiet", a.to_str().expect("utf-8"), "--data-dir", d]);
    assert_eq!(code, EXIT_OK, "{out}{err}");
    // Same network, other events: the chain matches but the run does not.
    let (code, _, err) =
        run_cli(&["simulate", "--quiet", b.to_str().expect("utf-8"), "--data-dir", d]);
    assert_eq!(code, EXIT_USAGE);
    assert!(err.contains("holds a run of scenario `a`"), "{err}");
    // Another network: another chain.
    let (code, _, err) =
        run_cli(&["simulate", "--quiet", c.to_str().expect("utf-8"), "--data-dir", d]);
    assert_eq!(code, EXIT_USAGE);
    assert!(err.contains("another scenario's chain"), "{err}");
    // The same scenario again: the run is complete, and it says so.
    let (code, out, _) = run_cli(&["simulate", a.to_str().expect("utf-8"), "--data-dir", d]);
    assert_eq!(code, EXIT_OK);
    assert!(out.contains("already complete (block 40, T+00:02:00)"), "{out}");
    // inspect reads it back.
    let (code, out, _) = run_cli(&["inspect", d, "--json"]);
    assert_eq!(code, EXIT_OK);
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json["height"], 40);
    assert_eq!(json["scenario"], "a");
    assert_eq!(json["sons"].as_array().map(Vec::len), Some(5));
    let tables: Vec<String> = json["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    for t in ["accounts", "sons", "proposals", "assets", "balances"] {
        assert!(tables.iter().any(|n| n == t), "inspect lists {t}: {tables:?}");
    }
    // Truncated: refused with a message naming the store.
    let file = dir.join("chain.redb");
    let bytes = std::fs::read(&file).expect("read");
    std::fs::write(&file, &bytes[..bytes.len() / 3]).expect("truncate");
    let (code, _, err) =
        run_cli(&["simulate", "--quiet", a.to_str().expect("utf-8"), "--data-dir", d]);
    assert_eq!(code, EXIT_USAGE);
    assert!(err.contains("chain.redb") && err.contains("corrupt"), "{err}");
    let (code, _, err) = run_cli(&["inspect", d]);
    assert_eq!(code, EXIT_USAGE);
    assert!(err.contains("corrupt"), "{err}");
    let (code, _, err) = run_cli(&["simulate", "--data-dir", d, "--verify-replicas"]);
    assert_eq!(code, EXIT_USAGE);
    assert!(err.contains("cannot be used with"), "{err}");
    for f in [a, b, c] {
        std::fs::remove_file(f).ok();
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn operation_crate_parameters_are_set_by_the_scenario_and_bad_ones_exit_2_naming_them() {
    let base =
        "name = \"p\"\nduration = \"30m\"\n[network]\nwitnesses = 3\nsons = 5\n[plugin_params]\n";
    let cases = [
        ("\"son_deregister.witness_cycles\" = 5\n", EXIT_OK, ""),
        ("\"son_deregister.witness_cycles\" = 0\n", EXIT_USAGE, "must be at least 1"),
        ("\"son_deregister.witness_cycles\" = \"x\"\n", EXIT_USAGE, "not a valid value"),
        ("\"nobody.knows\" = 1\n", EXIT_USAGE, "no operation crate declares it"),
    ];
    for (i, (line, code, needle)) in cases.into_iter().enumerate() {
        let path = temp_file(&format!("params-{i}.toml"), &format!("{base}{line}"));
        let (got, _, err) = run_cli(&["simulate", "--quiet", path.to_str().expect("utf-8")]);
        std::fs::remove_file(&path).ok();
        assert_eq!(got, code, "{line}: {err}");
        assert!(err.contains(needle), "{line}: {err}");
        if code == EXIT_USAGE {
            assert!(err.contains("plugin_params."), "names the field: {err}");
        }
    }
}

#[test]
fn the_simulator_gives_each_node_its_own_services_and_shows_typed_events() {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use sonprop_core::{Registry, Services, SonId};
    use sonprop_example_custom_operation::{ExpirySource, FixedExpiries, PLUGIN};

    let s = short(1, "");
    let registry = Registry::builder()
        .with(&sonprop_report_down::PLUGIN)
        .with(&sonprop_deregister_son::PLUGIN)
        .with(&PLUGIN)
        .build()
        .expect("unique")
        .into_arc();
    // Without the service, the network is not built, and the error names kind and service.
    let Err(e) = Simulation::new(&s, Arc::clone(&registry), &Options::default()) else {
        panic!("built without the source its kind needs");
    };
    assert!(e.to_string().contains("son_key_expiry_notice"), "{e}");
    assert!(e.to_string().contains("KeyExpirySource"), "{e}");

    let expires = s.genesis_time.plus(3 * 24 * 3600);
    let services: sonprop_simulator::sim::NodeServices = Arc::new(move |_| {
        let known = BTreeMap::from([((SonId(2), "bitcoin".to_owned()), expires)]);
        Services::new().with(Arc::new(FixedExpiries(known)) as ExpirySource)
    });
    let options = Options { services: Some(services), ..Options::default() };
    let mut sim = Simulation::new(&s, registry, &options).expect("network");
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let mut timeline: Vec<Entry> = Vec::new();
    rt.block_on(sim.run(&mut timeline)).expect("runs");
    let announced: Vec<_> =
        timeline.iter().filter(|e| e.text.starts_with("son_key_expiry_notice:")).collect();
    assert_eq!(announced.len(), 1, "{timeline:?}");
    let report = sim.finish().report;
    assert_eq!(report.events.len(), 1, "the report lists the typed event too");
    assert_eq!(
        (report.events[0].kind.as_str(), report.events[0].name.as_str()),
        ("son_key_expiry_notice", "announced")
    );
    assert_eq!(report.events[0].data["son"], "1.33.2");
    assert!(
        announced[0].text.contains("son 1.33.2: bitcoin key expires at"),
        "{}",
        announced[0].text
    );
}

#[test]
fn bitcoin_address_prints_the_golden_vector_and_refuses_bad_keys_with_exit_2() {
    use sonprop_bitcoin::script::vectors::{PEERPLAYS_SON_KEYS as KEYS, PEERPLAYS_USER_KEY};
    let user = PEERPLAYS_USER_KEY;
    let mut args: Vec<String> = vec!["bitcoin".into(), "address".into()];
    for k in KEYS {
        args.push("--son".into());
        args.push(format!("{k}:1"));
    }
    args.extend(["--user".into(), user.into(), "--json".into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = run_cli(&refs);
    assert_eq!(code, EXIT_OK, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json["address"], "bcrt1qz2cykw980zns8uxpt7dsn4ku7ce24cq3z8mna0tttzhw2qcr4y0qxmgej2");
    assert_eq!(json["threshold"], 11);
    assert!(json["witness_script"].as_str().is_some_and(|s| s.ends_with("5ba268")));

    let k = KEYS[0];
    let (w0, w1, w2, w7) =
        (format!("{k}:0"), format!("{k}:1"), format!("{k}:2"), format!("{k}:70000"));
    let (w_huge, w_word) = (format!("{k}:99999999999999999999999"), format!("{k}:two"));
    let off_curve = format!("02{}:1", "00".repeat(32));
    let bad = [
        (vec!["bitcoin", "address"], "--son"),
        (
            vec!["bitcoin", "address", "--son", "zz:1"],
            "`zz` is not a valid public key: 2 hex digits; a compressed public key is 66",
        ),
        (vec!["bitcoin", "address", "--son", &off_curve], "not a point on the curve"),
        (vec!["bitcoin", "address", "--son", &w0], "weight 0"),
        (
            vec!["bitcoin", "address", "--son", &w7],
            "`70000` is not a valid weight: above 65 535 (weights are 1 to 65 535)",
        ),
        (vec!["bitcoin", "address", "--son", &w_huge], "above 65 535"),
        (
            vec!["bitcoin", "address", "--son", &w_word],
            "`two` is not a valid weight: expected a whole number",
        ),
        (vec!["bitcoin", "address", "--son", &w1, "--user", k], "the user key is signer 0's key"),
        (vec!["bitcoin", "address", "--son", &w1, "--son", &w2], "repeats the key"),
        (vec!["bitcoin", "address", "--son", &w1, "--network", "moon"], "network"),
        (vec!["bitcoin", "address", "--son", &w1, "--csv", "5"], "--user"),
        (vec!["bitcoin", "adress"], "a similar subcommand exists: 'address'"),
    ];
    for (args, needle) in bad {
        let (code, _, err) = run_cli(&args);
        assert_eq!(code, EXIT_USAGE, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// The README shows the built-in run as it is: every line of its example output but the wall
/// time is what `sonprop simulate` prints.
#[test]
fn the_readme_shows_the_built_in_run_as_it_is() {
    let readme = include_str!("../README.md");
    let start = readme.find("```text\nscenario single-outage").expect("the README's example run");
    let block = &readme[start + "```text\n".len()..];
    let block = &block[..block.find("```").expect("closed")];
    let (code, out, err) = run_cli(&["simulate"]);
    assert_eq!(code, EXIT_OK, "{err}");
    let strip = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| match l.find(" simulated in ") {
                Some(i) => l[..i].to_owned(),
                None => l.to_owned(),
            })
            .collect()
    };
    assert_eq!(strip(block), strip(&out), "README.md's example differs from the run");
}

/// A short SON lifecycle without a bridge: a SON registered and voted in, one asking for
/// maintenance (its node stopped once the maintenance starts), a key change, a SON deregistered whose owner withdraws
/// its deposit.
fn lifecycle(extra: &str) -> Scenario {
    let text = format!(
        "name = \"lifecycle\"\nseed = 4\nduration = \"4h\"\n[network]\nwitnesses = 4\nsons = 5\n\
         [params]\nmaximum_son_count = 6\nmin_son_count = 3\nmaintenance_interval = \"30m\"\n\
         son_deregister_time = \"30m\"\nson_vesting_period = \"1h\"\nson_pay_time = \"1h\"\n\
         [lifecycle]\nmembers = 2\n\
         [[events]]\nat = \"10m\"\ndo = \"create\"\nmember = 0\n\
         [[events]]\nat = \"15m\"\ndo = \"vote\"\nmember = 1\nfor = [5, 0]\n\
         [[events]]\nat = \"40m\"\ndo = \"request_maintenance\"\nson = 1\n\
         [[events]]\nat = \"1h1m\"\ndo = \"stop\"\nson = 1\n\
         [[events]]\nat = \"1h20m\"\ndo = \"start\"\nson = 1\n\
         [[events]]\nat = \"50m\"\ndo = \"update_keys\"\nson = 5\n\
         [[events]]\nat = \"1h\"\ndo = \"stop\"\nson = 4\n\
         [[events]]\nat = \"3h\"\ndo = \"withdraw\"\nson = 4\n{extra}"
    );
    Scenario::from_toml(&text, "lifecycle.toml").expect("valid")
}

#[test]
fn a_lifecycle_run_meets_its_expectations_on_every_replica_and_says_what_happened() {
    let expect = "[[expect]]\nson = 5\nelected = true\n[[expect]]\nson = 5\nstatus = \"active\"\n\
                  [[expect]]\nson = 1\nstatus = \"active\"\n\
                  [[expect]]\nson = 4\ndeposit_withdrawn = true\n\
                  [[expect]]\nson = 2\npaid = false\n";
    let (verified, timeline) = run_to_end(&lifecycle(expect), true);
    assert!(verified.failures.is_empty(), "{:?}", verified.failures);
    assert_eq!(verified.expectations, 5);
    let (shared, _) = run_to_end(&lifecycle(expect), false);
    assert_eq!(verified.report.state_hash, shared.report.state_hash, "replicas agree");
    let text: Vec<&str> = timeline.iter().map(|e| e.text.as_str()).collect();
    for line in [
        "member-0 registers son 1.33.5 with a deposit of 50.00000 PPY (scenario)",
        "son 1.33.5 registered by member-0",
        "member-1 votes for 1.33.0, 1.33.5 with its 1000.00000 PPY (scenario)",
        "son 1.33.5 elected",
        "son 1.33.1: request_maintenance -> in_maintenance",
        "son 1.33.1: in_maintenance -> active",
        "son 1.33.5's new sidechain keys take force",
        "son 1.33.4: in_maintenance -> deregistered",
        "son 1.33.4's owner withdraws 500.00000 PPY vested (scenario)",
    ] {
        assert!(text.iter().any(|t| t.starts_with(line)), "no `{line}` in {text:#?}");
    }
}

#[test]
fn a_failed_lifecycle_expectation_says_why() {
    let expect = "[[expect]]\nson = 5\nelected = false\n[[expect]]\nson = 0\npaid = true\n\
                  [[expect]]\nson = 3\ndeposit_withdrawn = true\n";
    let (f, _) = run_to_end(&lifecycle(expect), false);
    assert_eq!(f.failures.len(), 3, "{:?}", f.failures);
    assert!(
        f.failures[0].starts_with("son 1.33.5: expected not elected, it is elected: elected at"),
        "{}",
        f.failures[0]
    );
    assert!(f.failures[1].contains("expected paid: never paid"), "{}", f.failures[1]);
    assert!(
        f.failures[2].contains("expected its deposit withdrawn; it is active"),
        "{}",
        f.failures[2]
    );
}

#[test]
fn a_lifecycle_run_stopped_and_restarted_ends_as_an_uninterrupted_one() {
    let scenario = lifecycle("");
    let (uninterrupted, _) = run_to_end(&scenario, false);
    let dir = temp_dir("lifecycle-restart");
    let options = Options { data_dir: Some(dir.clone()), fsync_every: 50, ..Options::default() };
    let registry = cli::registry().expect("registry").into_arc();
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let mut timeline: Vec<Entry> = Vec::new();
    // Before the SON exists, between its registration and its election, after both.
    for stop_at in [150u64, 250, 700, 2500] {
        let mut sim = Simulation::new(&scenario, registry.clone(), &options).expect("open");
        while sim.ledger().state().head_height() < stop_at {
            assert!(rt.block_on(sim.step(&mut timeline)).expect("step"));
        }
        sim.checkpoint().expect("clean stop");
    }
    let mut sim = Simulation::new(&scenario, registry, &options).expect("open");
    let finished = rt.block_on(sim.run(&mut timeline)).expect("runs");
    assert_eq!(finished.report, uninterrupted.report);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn malformed_lifecycle_events_are_named() {
    const BASE: &str = "name = \"x\"\nduration = \"2h\"\n[network]\nwitnesses = 3\nsons = 5\n";
    let err = |text: &str| Scenario::from_toml(text, "bad.toml").expect_err("invalid");
    let e = err(&format!("{BASE}[[events]]\nat = \"5m\"\ndo = \"create\"\nmember = 0\n"));
    assert_eq!(e.field, "events[0].do");
    assert!(e.message.contains("[lifecycle]"), "{e}");
    let with = format!("{BASE}[lifecycle]\nmembers = 2\n");
    let e = err(&format!("{with}[[events]]\nat = \"5m\"\ndo = \"create\"\nmember = 2\n"));
    assert_eq!(
        (e.field.as_str(), e.message.as_str()),
        ("events[0].member", "member 2 does not exist: there are 2 (0..1)")
    );
    let e = err(&format!("{with}[[events]]\nat = \"5m\"\ndo = \"create\"\nmember = 0\n[[events]]\nat = \"6m\"\ndo = \"create\"\nmember = 0\n"));
    assert!(e.message.contains("one SON per account"), "{e}");
    // SON 5 is registered at 10m: a vote for it at 5m names a SON that does not exist yet.
    let e = err(&format!("{with}[[events]]\nat = \"10m\"\ndo = \"create\"\nmember = 0\n[[events]]\nat = \"5m\"\ndo = \"vote\"\nmember = 1\nfor = [5]\n"));
    assert_eq!(e.field, "events[1].for");
    assert!(e.message.contains("SON 5 does not exist"), "{e}");
    let ok = Scenario::from_toml(&format!("{with}[[events]]\nat = \"10m\"\ndo = \"create\"\nmember = 0\n[[events]]\nat = \"15m\"\ndo = \"vote\"\nmember = 1\nfor = [5]\n[[expect]]\nson = 5\nelected = true\n"), "ok.toml").expect("valid");
    assert_eq!(ok.all_sons(), 6);
    let e =
        err(&format!("{with}[[events]]\nat = \"5m\"\ndo = \"withdraw\"\nson = 1\nmember = 0\n"));
    assert_eq!(e.field, "events[0].member");
    let e = err(&format!("{with}[[events]]\nat = \"5m\"\ndo = \"vote\"\nmember = 0\n"));
    assert_eq!(e.field, "events[0].for");
    let e = err(&format!("{with}[[expect]]\nson = 1\nelected = true\npaid = true\n"));
    assert_eq!(e.field, "expect[0]");
}

/// Breaks once the chain passes block 30.
const UNDER_30: sonprop_core::Plugin = sonprop_core::Plugin {
    invariants: &[sonprop_core::Invariant {
        name: "under 30 blocks",
        check: |st| match st.head_height() {
            h if h < 30 => Ok(()),
            h => Err(format!("the chain is {h} blocks long")),
        },
        reads: None,
    }],
    ..sonprop_core::Plugin::new("test-invariants")
};

/// A crate's invariant is checked after every block by the simulation, whatever the crate:
/// the first block that breaks it stops the run, naming the crate, the invariant and the block.
#[test]
fn a_broken_invariant_of_any_crate_stops_the_run_at_its_block() {
    let scenario = short(9, "");
    let registry = sonprop_core::Registry::builder()
        .with(&sonprop_report_down::PLUGIN)
        .with(&sonprop_deregister_son::PLUGIN)
        .with(&UNDER_30)
        .build()
        .expect("registry")
        .into_arc();
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let mut sim = Simulation::new(&scenario, registry, &Options::default()).expect("builds");
    let e = rt.block_on(sim.run(&mut Vec::new())).expect_err("broken");
    assert_eq!(
        e.to_string(),
        "after block 30: invariant `under 30 blocks` of test-invariants is broken: the chain is \
         30 blocks long"
    );
    assert_eq!(sim.ledger().state().head_height(), 30, "stopped there");
}

/// A scenario's own assets and accounts reach the genesis: balances as declared, the asset's
/// issuer as named, and a balance expectation holds or fails on what the chain holds.
#[test]
fn a_scenario_declares_its_own_assets_and_accounts_and_expects_balances() {
    let extra = "[[assets]]\nsymbol = \"SIDE\"\nprecision = 8\nmax_supply = 21000000\n\
                 [[assets]]\nsymbol = \"GOLD\"\nprecision = 0\nmax_supply = 10\nissuer = \"bob\"\n\
                 [[accounts]]\nname = \"alice\"\nbalances = { SIDE = \"1.5\", GOLD = 3 }\n\
                 [[accounts]]\nname = \"bob\"\n\
                 [[expect]]\naccount = \"alice\"\nasset = \"SIDE\"\nbalance = \"1.5\"\n\
                 [[expect]]\naccount = \"bob\"\nasset = \"GOLD\"\nbalance = 1\n";
    let s = short(1, extra);
    let registry = cli::registry().expect("registry").into_arc();
    let sim = Simulation::new(&s, registry, &Options::default()).expect("network");
    let st = sim.ledger().state();
    let named = |n: &str| st.accounts().iter().find(|(_, a)| a.name == n).map(|(id, _)| *id);
    let (alice, bob) = (named("alice").expect("alice"), named("bob").expect("bob"));
    let side = st.asset_by_symbol("SIDE").expect("SIDE").clone();
    let gold = st.asset_by_symbol("GOLD").expect("GOLD").clone();
    assert_eq!((side.id.0, gold.id.0), (2, 3), "ids from 1.3.2 in the file's order");
    assert_eq!(side.issuer, sonprop_core::AccountId::SON_CONSENSUS);
    assert_eq!(gold.issuer, bob);
    assert_eq!(st.balance(alice, side.id), 150_000_000);
    assert_eq!((st.balance(alice, gold.id), gold.supply), (3, 3));
    let (finished, _) = run_to_end(&s, false);
    let results: Vec<_> = finished
        .report
        .expectations
        .iter()
        .map(|r| (r.expectation.clone(), r.failure.clone()))
        .collect();
    assert!(results.contains(&("alice holds 1.50000000 SIDE".into(), None)), "{results:?}");
    assert!(
        results.contains(&(
            "bob holds 1 GOLD".into(),
            Some("bob: expected 1 GOLD, holds 0 GOLD".into())
        )),
        "{results:?}"
    );
}
