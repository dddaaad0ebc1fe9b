//! The `sonprop` command as a user meets it: help, version, typos, bad input and the
//! resume rules, run as a process. Outputs people read are pinned by `insta` snapshots
//! (`tests/snapshots/`); a change to them shows up as a diff to review.

use std::path::PathBuf;

use assert_cmd::Command;

fn sonprop() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sonprop"));
    // Help is wrapped to the terminal width: fix it, and keep the log level the default.
    c.env("COLUMNS", "100").env_remove("RUST_LOG");
    c
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Out {
    let o = sonprop().args(args).output().expect("runs");
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn temp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("sonprop-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("temp dir");
    p
}

fn scenario(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("scenario");
    path.to_str().expect("utf-8").to_owned()
}

const SHORT: &str = "name = \"short\"\nduration = \"DUR\"\n[network]\nwitnesses = 3\nsons = 5\n";

#[test]
fn help_is_there_for_every_command() {
    let top = run(&["--help"]);
    assert_eq!(top.code, Some(0));
    insta::assert_snapshot!("help", top.stdout);
    let simulate = run(&["simulate", "--help"]);
    assert_eq!(simulate.code, Some(0));
    insta::assert_snapshot!("simulate_help", simulate.stdout);
    for cmd in [
        &["inspect", "--help"][..],
        &["operations", "--help"],
        &["bench", "-h"],
        &["bitcoin", "address", "--help"],
        &["completions", "--help"],
        &["devnet", "init", "--help"],
        &["devnet", "up", "--help"],
        &["status", "--help"],
        &["tx", "transfer", "--help"],
    ] {
        let o = run(cmd);
        assert_eq!(o.code, Some(0), "{cmd:?}: {}", o.stderr);
        assert!(o.stdout.contains("Usage: sonprop"), "{cmd:?}: {}", o.stdout);
    }
    // `help` is a command with its own help, and gives any command's help.
    let o = run(&["help", "--help"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(o.stdout.contains("Usage: sonprop help [OPTIONS] [COMMAND]..."), "{}", o.stdout);
    for cmd in [&["simulate"][..], &["bitcoin", "address"]] {
        let via_help = run(&[&["help"][..], cmd].concat());
        let direct = run(&[cmd, &["-h"]].concat());
        assert_eq!(via_help.code, Some(0), "{cmd:?}: {}", via_help.stderr);
        assert_eq!(via_help.stdout, direct.stdout, "{cmd:?}");
    }
    let o = run(&["help", "simulat"]);
    assert_eq!(o.code, Some(2));
    assert!(o.stderr.contains("no such command `simulat`"), "{}", o.stderr);
    // No command at all: the help, on stderr, exit 2.
    let none = run(&[]);
    assert_eq!(none.code, Some(2));
    assert!(none.stderr.contains("Usage: sonprop"), "{}", none.stderr);
}

#[test]
fn version_prints_the_crate_version_and_its_commit() {
    // The commit as git names it here (the tests run in a checkout).
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    for flag in ["-V", "--version", "version"] {
        let o = run(&[flag]);
        assert_eq!(o.code, Some(0));
        let want = format!("sonprop {} (commit {head})", env!("CARGO_PKG_VERSION"));
        assert_eq!(o.stdout.trim(), want);
    }
}

#[test]
fn typos_get_a_suggestion_and_only_the_relevant_usage() {
    let o = run(&["simualte"]);
    assert_eq!(o.code, Some(2));
    insta::assert_snapshot!("typo_command", o.stderr);
    let o = run(&["simulate", "--raport", "r.json"]);
    assert_eq!(o.code, Some(2));
    insta::assert_snapshot!("typo_flag", o.stderr);
    let o = run(&["bench-sim"]);
    assert_eq!(o.code, Some(2));
    assert!(o.stderr.contains("--days"), "{}", o.stderr);
}

#[test]
fn completions_are_generated() {
    let o = run(&["completions", "bash"]);
    assert_eq!(o.code, Some(0));
    assert!(o.stdout.contains("_sonprop()") && o.stdout.contains("simulate"), "{}", o.stdout);
    assert_eq!(run(&["completions", "tcsh"]).code, Some(2), "an unknown shell is refused");
}

#[test]
fn a_bad_scenario_shows_the_line_and_the_span() {
    let d = temp("bad");
    let float = scenario(&d, "float.toml", &SHORT.replace("\"DUR\"", "14.5"));
    let o = run(&["simulate", &float]);
    assert_eq!(o.code, Some(2));
    insta::assert_snapshot!("bad_duration", o.stderr.replace(&float, "float.toml"));
    let zero = scenario(&d, "zero.toml", &SHORT.replace("DUR", "1h").replace("= 3", "= 0"));
    let o = run(&["simulate", &zero]);
    assert_eq!(o.code, Some(2));
    insta::assert_snapshot!("no_witness", o.stderr.replace(&zero, "zero.toml"));
    std::fs::remove_dir_all(&d).ok();
}

/// An expectation counting a kind that does not exist is refused before the run, underlined,
/// with the kind it was probably meant to be; one that is nothing like a kind lists them.
#[test]
fn an_expectation_of_an_unknown_kind_is_refused_with_a_suggestion() {
    let d = temp("kind");
    let expect = |kind: &str| {
        format!(
            "{}[[expect]]\nson = 1\nkind = \"{kind}\"\nexecuted = 0\n",
            SHORT.replace("DUR", "10m")
        )
    };
    let typo = scenario(&d, "typo.toml", &expect("son_reportdown"));
    let o = run(&["simulate", &typo]);
    assert_eq!(o.code, Some(2), "{}", o.stdout);
    assert!(o.stdout.is_empty(), "refused before the run: {}", o.stdout);
    insta::assert_snapshot!("unknown_kind", o.stderr.replace(&typo, "typo.toml"));
    let far = scenario(&d, "far.toml", &expect("withdraw_everything"));
    let o = run(&["simulate", &far]);
    assert_eq!(o.code, Some(2));
    assert!(o.stderr.contains("kinds proposals carry here: "), "{}", o.stderr);
    assert!(o.stderr.contains("son_deregister, son_report_down"), "{}", o.stderr);
    let right = scenario(&d, "right.toml", &expect("son_report_down"));
    assert_eq!(run(&["simulate", "-q", &right]).code, Some(0));
    std::fs::remove_dir_all(&d).ok();
}

/// A proposal that can never pass says why: the scenario warns before the run, each expired
/// report-down says what the authority needed, and the report carries it.
#[test]
fn a_proposal_that_cannot_pass_says_why() {
    let d = temp("quorum");
    let five = SHORT.replace("DUR", "20m") + "[[events]]\nat = \"2m\"\nson = 2\ndo = \"stop\"\n";
    let path = scenario(&d, "five.toml", &five);
    let report = d.join("r.json");
    let o = run(&["simulate", &path, "--report", report.to_str().expect("utf-8")]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(
        o.stdout.contains(
            "warning: 5 elected SONs = min_son_count 5: while any SON is down, fewer are live"
        ),
        "{}",
        o.stdout
    );
    let why = "approvals needed: none suffice while live SONs 4 < min_son_count 5 (5 elected)";
    assert!(
        o.stdout.contains(&format!("proposal 1.10.0 expired unexecuted with 4 approvals; {why}")),
        "{}",
        o.stdout
    );
    // The cycles after the first fold into one line, at the end of the run.
    let folded = o.stdout.lines().filter(|l| l.contains("raised and expired unexecuted ×")).count();
    assert_eq!(folded, 1, "{}", o.stdout);
    assert!(o.stdout.lines().count() < 20, "{}", o.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    let first = &json["proposals"][0];
    assert_eq!(
        (first["outcome"].as_str(), first["expired_needing"].as_str()),
        (Some("expired"), Some(why))
    );
    let three =
        scenario(&d, "three.toml", &SHORT.replace("DUR", "1m").replace("sons = 5", "sons = 3"));
    let o = run(&["simulate", &three]);
    assert!(
        o.stdout
            .contains("warning: 3 elected SONs < min_son_count 5: no SON proposal can ever pass"),
        "{}",
        o.stdout
    );
    // Quiet: the summary alone. The built-in scenario (15 SONs) warns of nothing.
    let o = run(&["simulate", "-q", &path]);
    assert!(o.stdout.starts_with("summary:"), "{}", o.stdout);
    let o = run(&["simulate"]);
    assert!(!o.stdout.contains("warning"), "{}", o.stdout);
    std::fs::remove_dir_all(&d).ok();
}

/// `operations --json` lists every kind a scenario can run, with what it is; a `RUST_LOG` that
/// does not parse is refused naming it (it was ignored, and the default level used instead).
#[test]
fn operations_print_json_and_a_bad_rust_log_is_refused() {
    let o = run(&["operations", "--json"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let all: Vec<serde_json::Value> = serde_json::from_str(&o.stdout).expect("a JSON array");
    let kind_of = |name: &str| {
        all.iter().find(|k| k["name"] == name).map(|k| k["kind"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(kind_of("son_report_down").as_deref(), Some("son proposal"));
    assert_eq!(kind_of("asset_issue").as_deref(), Some("operation"));
    assert!(kind_of("bitcoin_deposit_process").is_some(), "the Bitcoin crate's kinds too");
    assert!(all.iter().all(|k| k["description"].as_str().is_some_and(|d| !d.is_empty())));
    let bad = sonprop().env("RUST_LOG", "foo=[bar").args(["operations"]).output().expect("runs");
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("RUST_LOG=`foo=[bar` does not parse"), "{stderr}");
    assert!(bad.stdout.is_empty(), "nothing done");
    let good = sonprop().env("RUST_LOG", "sonprop_core=debug").args(["operations"]).output();
    assert_eq!(good.expect("runs").status.code(), Some(0));
}

#[test]
fn an_unwritable_report_fails_before_the_run() {
    let o = run(&["simulate", "--report", "/nonexistent-dir/r.json"]);
    assert_eq!(o.code, Some(3));
    assert!(o.stderr.contains("cannot write the report"), "{}", o.stderr);
    assert!(!o.stdout.contains("summary"), "it stopped before simulating: {}", o.stdout);
}

#[test]
fn quiet_output_is_the_summary_alone() {
    let d = temp("quiet");
    let s = scenario(&d, "s.toml", &SHORT.replace("DUR", "10m"));
    let o = run(&["simulate", "--quiet", &s]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(o.stdout.starts_with("summary: 200 blocks"), "{}", o.stdout);
    assert_eq!(o.stderr, "", "nothing logged at the default level");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn resuming_says_what_it_does() {
    let d = temp("resume");
    let two = scenario(&d, "two.toml", &SHORT.replace("DUR", "2h"));
    let one = scenario(&d, "one.toml", &SHORT.replace("DUR", "1h"));
    let data = d.join("data");
    let data = data.to_str().expect("utf-8");
    let first = run(&["simulate", "-q", &one, "--data-dir", data]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    // Longer: it resumes where the directory ends.
    let longer = run(&["simulate", &two, "--data-dir", data]);
    assert_eq!(longer.code, Some(0), "{}", longer.stderr);
    assert!(longer.stdout.contains("resuming at block 1200 (T+01:00:00)"), "{}", longer.stdout);
    // Again: nothing left to do, and it says so.
    let again = run(&["simulate", &two, "--data-dir", data]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(again.stdout.contains("already complete (block 2400, T+02:00:00)"), "{}", again.stdout);
    assert!(!again.stdout.contains("resuming"), "{}", again.stdout);
    // Shorter than what it holds: an error, unless --force.
    let shorter = run(&["simulate", &one, "--data-dir", data]);
    assert_eq!(shorter.code, Some(2));
    assert!(shorter.stderr.contains("longer than this scenario's 1h"), "{}", shorter.stderr);
    assert!(shorter.stderr.contains("--force"), "{}", shorter.stderr);
    let forced = run(&["simulate", "-q", &one, "--data-dir", data, "--force"]);
    assert_eq!(forced.code, Some(0), "{}", forced.stderr);
    assert!(forced.stdout.contains("summary: 2400 blocks"), "{}", forced.stdout);
    // Timestamps people read: RFC 3339 with the offset from genesis.
    let inspect = run(&["inspect", data]);
    assert_eq!(inspect.code, Some(0), "{}", inspect.stderr);
    assert!(
        inspect.stdout.contains("head block 2400 at 2026-01-01T02:00:00Z (T+02:00:00)"),
        "{}",
        inspect.stdout
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_data_directory_in_use_names_the_process_holding_it_after_waiting_for_it() {
    let d = temp("lock");
    let long = scenario(&d, "long.toml", &SHORT.replace("DUR", "60d"));
    let data = d.join("data");
    let mut holder = std::process::Command::new(env!("CARGO_BIN_EXE_sonprop"))
        .args(["simulate", "-q", &long, "--data-dir"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Wait until it has opened the store and said so.
    let owner = data.join("owner");
    for _ in 0..600 {
        if std::fs::read_to_string(&owner).is_ok_and(|o| !o.is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = run(&["simulate", "-q", &long, "--data-dir", data.to_str().expect("utf-8")]);
    holder.kill().expect("kill");
    holder.wait().expect("reap");
    assert_eq!(second.code, Some(2), "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains(&format!("in use by another process (process {} since ", holder.id()))
            && second.stderr.contains(", still running)"),
        "{}",
        second.stderr
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn explain_says_when_the_default_scenario_son_becomes_due_and_who_deregistered_it() {
    let before = run(&["explain", "1.33.3", "--at", "T+06:00"]);
    assert_eq!(before.code, Some(0), "{}", before.stderr);
    insta::assert_snapshot!("explain_t6", before.stdout);
    let after = run(&["explain", "1.33.3", "--at", "T+13:00", "--json"]);
    assert_eq!(after.code, Some(0), "{}", after.stderr);
    let json: serde_json::Value = serde_json::from_str(&after.stdout).expect("JSON");
    assert_eq!(json["son"]["status"], "deregistered");
    let dereg = json["proposals"]
        .as_array()
        .expect("proposals")
        .iter()
        .find(|p| p["kind"] == "son_deregister")
        .expect("the deregistration");
    assert_eq!(dereg["id"], "1.10.1");
    assert_eq!(dereg["outcome"], "executed");
    assert_eq!(dereg["approvers"].as_array().map(Vec::len), Some(10));
    let bad = run(&["explain", "1.33.3", "--at", "T+99:00"]);
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("after the end of scenario"), "{}", bad.stderr);
}

/// Something the run never knew is an error naming it, not an empty explanation with exit 0;
/// an account with nothing proposed about it is still explained.
#[test]
fn explain_of_something_that_does_not_exist_says_so_and_fails() {
    for subject in ["foo", "1.10.99", "1.33.99"] {
        let o = run(&["explain", subject]);
        assert_eq!(o.code, Some(2), "{subject}: {}", o.stdout);
        assert!(
            o.stderr.contains(&format!("no such subject `{subject}` at block")),
            "{}",
            o.stderr
        );
        assert!(o.stdout.is_empty(), "{}", o.stdout);
        let json = run(&["explain", subject, "--json"]);
        assert_eq!(json.code, Some(2), "{subject} --json");
    }
    let account = run(&["explain", "1.2.5"]);
    assert_eq!(account.code, Some(0), "{}", account.stderr);
    assert!(account.stdout.starts_with("1.2.5 at block"), "{}", account.stdout);
    // The bridge scenario's first deposit: unknown before its first report, known from the
    // block that records it (before any proposal names it).
    let deposit =
        "bitcoin:deposit:d32d4f96148f797a3527ea1c523af8e108783ce3757566a1b8b23201514ba4b0:0";
    let scenario = "scenarios/bitcoin-bridge.toml";
    for (at, code) in [("T+00:30:00", 2), ("T+00:40:03", 0)] {
        let o = run(&["explain", deposit, scenario, "--at", at]);
        assert_eq!(o.code, Some(code), "{at}: {}{}", o.stdout, o.stderr);
    }
}

#[test]
fn explain_reads_a_data_directory_at_its_head() {
    let d = temp("explain");
    let data = d.join("data");
    let data = data.to_str().expect("utf-8");
    let run1 = run(&["simulate", "-q", "--data-dir", data]);
    assert_eq!(run1.code, Some(0), "{}", run1.stderr);
    let o = run(&["explain", "1.33.3", "--data-dir", data]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(o.stdout.starts_with("1.33.3 at block 16800"), "{}", o.stdout);
    assert!(o.stdout.contains("proposal 1.10.1 son_deregister"), "{}", o.stdout);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn the_report_gives_times_accounts_expectations_and_counts_by_the_json_convention() {
    let d = temp("report");
    let report = d.join("r.json");
    let o = run(&["simulate", "-q", "--report", report.to_str().expect("utf-8")]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    assert_eq!((&json["document"], &json["format_version"]), (&"report".into(), &3.into()));
    let son3 = json["sons"].as_array().expect("sons").iter().find(|s| s["id"] == "1.33.3");
    let son3 = son3.expect("son 1.33.3");
    let gone = serde_json::json!({
        "unix": 1_767_225_600u64 + 12 * 3600 + 59 * 60 + 57,
        "time": "2026-01-01T12:59:57Z",
        "offset": "T+12:59:57"
    });
    assert_eq!(son3["deregistered"], gone);
    let p = &json["proposals"][1];
    assert_eq!(p["ended"], gone);
    // Witness accounts are 1.2.1 onwards, named witness-0 onwards: the name is the account's.
    let proposer = p["proposer"]["id"].as_str().expect("proposer id");
    let n: u64 = proposer.trim_start_matches("1.2.").parse().expect("an account id");
    assert_eq!(p["proposer"]["name"], format!("witness-{}", n - 1), "{proposer}");
    assert_eq!(p["approvers"].as_array().map(Vec::len), Some(10));
    assert_eq!(p["approvers"][0]["name"].as_str().map(|n| n.starts_with("son-")), Some(true));
    // The expectations and the summary's counts are in the report too.
    let held: Vec<bool> = json["expectations"]
        .as_array()
        .expect("expectations")
        .iter()
        .map(|x| x["holds"].as_bool().expect("holds"))
        .collect();
    assert_eq!(held, [true, true, true]);
    assert_eq!(json["summary"]["sons_by_status"]["deregistered"], 1);
    assert_eq!(json["bitcoin"], serde_json::Value::Null, "always there, null without a bridge");
    std::fs::remove_dir_all(&d).ok();
}

/// `-vv` logs each plugin call and block with the node and the block it is about; `-vvv` adds
/// every transaction; `-q` logs nothing but errors and prints only the summary.
#[test]
fn verbosity_levels_differ_as_documented_and_name_the_node_and_block() {
    let d = temp("verbosity");
    let short = scenario(&d, "short.toml", &SHORT.replace("DUR", "10m"));
    let at = |level: &str| run(&["simulate", level, &short]);
    let debug = at("-vv");
    assert!(matches!(debug.code, Some(0 | 1)), "{}", debug.stderr);
    let ran = debug.stderr.lines().find(|l| l.contains("plugin ran")).expect(&debug.stderr);
    assert!(ran.contains("node=") && ran.contains("block="), "{ran}");
    let produced = debug.stderr.lines().find(|l| l.contains("block produced")).expect("a block");
    assert!(produced.contains("node=witness-") && produced.contains("block=1 "), "{produced}");
    assert!(!debug.stderr.contains("transaction applied"), "not at -vv");
    let trace = at("-vvv");
    let applied =
        trace.stderr.lines().find(|l| l.contains("transaction applied")).expect(&trace.stderr);
    assert!(applied.contains("block=") && applied.contains("transaction="), "{applied}");
    let quiet = at("-q");
    assert_eq!(quiet.stderr, "", "nothing logged");
    assert!(quiet.stdout.starts_with("summary: "), "{}", quiet.stdout);
    let bench = run(&["bench", "--quick", "-q", "--json"]);
    assert_eq!(bench.stderr, "", "no progress lines");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn node_commands_refuse_a_silent_node_a_used_folder_and_a_missing_devnet() {
    // Port 1 on loopback: nothing listens there.
    let o = run(&["status", "--rpc", "http://127.0.0.1:1"]);
    assert_eq!(o.code, Some(3), "{}", o.stderr);
    assert!(o.stderr.contains("http://127.0.0.1:1"), "{}", o.stderr);
    let dir = std::env::temp_dir().join(format!("sonprop-cli-{}-devnet", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("x"), "x").expect("file");
    let d = dir.to_str().expect("utf-8");
    let o = run(&["devnet", "init", d]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("is not empty"), "{}", o.stderr);
    let o = run(&["devnet", "up", d, "--node-bin", "/nonexistent/sonprop-node"]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("cargo build -p sonprop-node"), "{}", o.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}
