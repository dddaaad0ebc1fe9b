//! The runner's own scenario under the stock command line: three deposits credited, once each,
//! and the balances it expects hold; one it does not expect fails the run.

use std::process::Command;

fn simulate(scenario: &str) -> (Option<i32>, String) {
    let path = std::env::temp_dir().join(format!("sidechain-deposit-{}.toml", std::process::id()));
    std::fs::write(&path, scenario).expect("written");
    let out = Command::new(env!("CARGO_BIN_EXE_sidechain-deposit"))
        .args(["simulate", path.to_str().expect("utf-8")])
        .output()
        .expect("runs");
    let _ = std::fs::remove_file(&path);
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn its_scenario_credits_each_deposit_once_and_a_wrong_balance_fails_the_run() {
    let scenario = include_str!("../its-scenario.toml");
    let (code, out) = simulate(scenario);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("proposals sidechain_deposit executed: 3"), "{out}");
    assert!(out.contains("expectations: 2 of 2 hold"), "{out}");
    let (code, out) = simulate(&scenario.replace("balance = \"2.5\"", "balance = \"4\""));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("alice: expected 4.00000000 SIDE, holds 2.50000000 SIDE"), "{out}");
}
