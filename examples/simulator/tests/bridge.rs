//! The Bitcoin bridge in the simulator: the shipped `bitcoin-bridge` scenario with Bitcoin
//! Core's interpreter judging every broadcast, replicas agreeing block by block, a run stopped
//! and resumed ending as an uninterrupted one, and the scenario table's typed errors.

use std::sync::Arc;

use sonprop_simulator::bridge::BridgeReport;
use sonprop_simulator::cli::registry_for;
use sonprop_simulator::scenario::{Scenario, BRIDGE};
use sonprop_simulator::sim::Entry;
use sonprop_simulator::sim::{Finished, Options, Simulation};

const SMALL: &str = include_str!("scenarios/bridge-small.toml");
const ADVERSARIES: &str = include_str!("../scenarios/bitcoin-adversaries.toml");

fn judge() -> Arc<sonprop_bitcoin::sim::ScriptCheck> {
    sonprop_simulator::bridge::consensus_check()
}

fn run(scenario: &Scenario, options: &Options) -> (Finished, Vec<Entry>, usize) {
    let registry = registry_for(scenario).expect("registry").into_arc();
    let mut sim = Simulation::new(scenario, registry, options).expect("simulation");
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("rt");
    let mut timeline = Vec::new();
    let finished = rt.block_on(sim.run(&mut timeline)).expect("run");
    let accepted = sim.bitcoin().map_or(0, |b| b.accepted().len());
    (finished, timeline, accepted)
}

fn bridge(f: &Finished) -> &BridgeReport {
    f.report.bitcoin.as_ref().expect("a bridge section")
}

#[test]
fn the_bridge_scenario_credits_every_deposit_and_pays_every_withdrawal_bitcoin_core_agreeing() {
    let scenario = Scenario::from_toml(BRIDGE, "bitcoin-bridge.toml").expect("valid");
    let options = Options { bitcoin_script_check: Some(judge()), ..Options::default() };
    let (finished, timeline, accepted) = run(&scenario, &options);
    assert_eq!(finished.failures, Vec::<String>::new());
    let b = bridge(&finished);
    assert!(b.rejected_broadcasts.is_empty(), "{:?}", b.rejected_broadcasts);
    let credited = b.deposits.iter().filter(|d| d.credited.is_some()).count();
    let vanished = b.deposits.iter().filter(|d| d.status.contains("vanished")).count();
    assert_eq!((credited, vanished), (5, 1), "{:?}", b.deposits);
    assert_eq!(b.withdrawals.iter().filter(|w| w.sent_sat.is_some()).count(), 4);
    let c = b.conservation.figures.as_ref().expect("conservation held");
    assert_eq!(c.utxos_sat + c.in_flight_sat, c.pbtc_supply + c.books.reserve_sat());
    assert!(c.books.carried_sat > 0, "deposits pre-paid their later sweep");
    assert_eq!(b.conservation_checks, finished.report.height, "checked after every block");
    // Every sidechain transaction reached Bitcoin, judged by Bitcoin Core's interpreter: five
    // deposit sweeps, four payments, one wallet sweep.
    assert_eq!(accepted, 10);
    // The timeline a person follows.
    let text: Vec<&str> = timeline.iter().map(|e| e.text.as_str()).collect();
    let has = |needle: &str| text.iter().any(|t| t.contains(needle));
    assert!(has("user-0 pays 0.50000000 BTC to its deposit address bcrt1q"), "{text:#?}");
    assert!(has("deposit 0.50000000 BTC from user-0 (1.2.28) seen by 11/15 SONs; confirmed on chain (1 SON reported another amount or user)"));
    // 0.5 BTC less the sweep's fee (1 602 sat) and its carry into the reserve (9 420 sat).
    assert!(has("settled, 0.49988978 PBTC issued to user-0 (1.2.28)"));
    assert!(has("Bitcoin reorganises its last 1 block: 1 transaction vanish"));
    assert!(has("son 1.33.3: in_maintenance -> deregistered"));
    assert!(has("son 1.33.15: inactive -> active"));
    assert!(has("sweeps 4 outputs of wallet 0"));
    assert!(has("withdrawal 3 settled: "));
    // Each flow's stages, in the order they happen, with its sidechain transaction's fee.
    let t = |s: &Option<sonprop_simulator::json::Time>| s.as_ref().map(|t| t.unix);
    let fee_of =
        |tx: Option<u64>| b.transactions.iter().find(|x| Some(x.id) == tx).map(|x| x.fee_sat);
    for d in b.deposits.iter().filter(|d| d.credited.is_some()) {
        let s = &d.stages;
        let times = [t(&s.paid), t(&s.reported), t(&s.confirmed), t(&s.swept), t(&s.settled)];
        assert!(times.iter().all(Option::is_some), "{d:?}");
        assert!(times.windows(2).all(|w| w[0] <= w[1]) && times[0] < times[4], "{d:?}");
        assert!(d.fee_sat.is_some() && d.fee_sat == fee_of(d.tx), "{d:?}");
        let sweep = b.transactions.iter().find(|x| Some(x.id) == d.tx).expect("its sweep");
        assert_eq!(sweep.kind, "deposit_sweep", "{d:?}");
    }
    let vanished = b.deposits.iter().find(|d| d.status.contains("vanished")).expect("one");
    assert!(vanished.stages.paid.is_some() && vanished.stages.reported.is_none());
    for w in &b.withdrawals {
        let s = &w.stages;
        let times = [t(&s.requested), t(&s.paying), t(&s.paid)];
        assert!(times.iter().all(Option::is_some) && s.refunded.is_none(), "{w:?}");
        assert!(times.windows(2).all(|p| p[0] <= p[1]) && times[0] < times[2], "{w:?}");
        let payment = b.transactions.iter().find(|x| Some(x.id) == w.tx).expect("its payment");
        assert_eq!((payment.kind, w.fee_sat), ("payment", Some(payment.fee_sat)), "{w:?}");
    }
}

#[test]
fn replicas_of_a_bridge_run_agree_block_by_block() {
    let scenario = Scenario::from_toml(SMALL, "bridge-small.toml").expect("valid");
    let (plain, _, _) = run(&scenario, &Options::default());
    let (replicated, _, _) =
        run(&scenario, &Options { verify_replicas: true, ..Options::default() });
    assert_eq!(replicated.failures, Vec::<String>::new());
    assert_eq!(plain.report.state_hash, replicated.report.state_hash);
    assert_eq!(bridge(&plain), bridge(&replicated));
}

#[test]
fn a_bridge_run_stopped_and_resumed_ends_as_an_uninterrupted_one() {
    let scenario = Scenario::from_toml(SMALL, "bridge-small.toml").expect("valid");
    let (whole, _, _) = run(&scenario, &Options::default());
    let dir = std::env::temp_dir().join(format!("sonprop-bridge-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = Options { data_dir: Some(dir.clone()), fsync_every: 50, ..Options::default() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("rt");
    // Stopped mid-flow (a deposit confirmed, not swept) and at a wallet update, then finished.
    for stop in [420u64, 1805] {
        let registry = registry_for(&scenario).expect("registry").into_arc();
        let mut sim = Simulation::new(&scenario, registry, &options).expect("simulation");
        let mut timeline = Vec::new();
        while sim.ledger().state().head_height() < stop {
            assert!(rt.block_on(sim.step(&mut timeline)).expect("step"));
        }
        sim.checkpoint().expect("checkpoint");
    }
    let (resumed, _, _) = run(&scenario, &options);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(resumed.failures, Vec::<String>::new());
    assert_eq!(resumed.report.state_hash, whole.report.state_hash);
    assert_eq!(bridge(&resumed), bridge(&whole));
}

#[test]
fn bitcoin_tables_with_mistakes_are_refused_naming_the_field() {
    let base = "name = \"b\"\nduration = \"2h\"\n[network]\nwitnesses = 3\nsons = 6\n";
    let error = |extra: &str| {
        Scenario::from_toml(&format!("{base}{extra}"), "b.toml").expect_err("invalid")
    };
    let e = error("[bitcoin]\nusers = 2\n[[bitcoin.deposits]]\nat = \"1h\"\nuser = 2\nsat = 5\n");
    assert_eq!(e.field, "bitcoin.deposits[0].user");
    assert!(e.message.contains("user 2 does not exist"), "{e}");
    let e = error("[bitcoin]\n[[bitcoin.withdrawals]]\nat = \"3h\"\nuser = 0\nsat = 5\n");
    assert_eq!(e.field, "bitcoin.withdrawals[0].at");
    let e = error("[bitcoin]\n[[bitcoin.deposits]]\nat = \"1h\"\nuser = 0\nsat = 0\n");
    assert_eq!(e.field, "bitcoin.deposits[0].sat");
    let e = error("[bitcoin]\n[[bitcoin.faults]]\nson = 1\nview = \"lies\"\n");
    assert_eq!(e.field, "bitcoin.faults[0]");
    let e = error("[bitcoin]\n[[bitcoin.faults]]\nson = 9\nview = \"offline\"\n");
    assert_eq!(e.field, "bitcoin.faults[0].son");
    let e = error("[bitcoin]\n[[bitcoin.reorgs]]\nat = \"1h\"\ndepth = 0\n");
    assert_eq!(e.field, "bitcoin.reorgs[0].depth");
    let e = error("[bitcoin]\nblock_interval = \"1s\"\n");
    assert_eq!(e.field, "bitcoin.block_interval");
    let e = error("[bitcoin]\nfee = 3\n");
    assert!(e.message.contains("fee"), "an unknown field is named: {e}");
    let e = error("[bitcoin]\n[[bitcoin.faults]]\nson = 1\nview = \"sulks\"\n");
    assert!(e.message.contains("sulks"), "{e}");
    assert!(e.span.is_some(), "the parser's span points at it");
    // Byzantine SONs and hostile users.
    let e = error("[bitcoin]\n[[bitcoin.byzantine]]\nson = 9\ndo = \"invent_deposits\"\n");
    assert_eq!(e.field, "bitcoin.byzantine[0].son");
    let e = error("[bitcoin]\n[[bitcoin.byzantine]]\nson = 1\ndo = \"sulk\"\n");
    assert!(e.message.contains("sulk"), "{e}");
    let twice = "[[bitcoin.faults]]\nson = 1\nview = \"offline\"\n[[bitcoin.byzantine]]\nson = 1\ndo = \"withhold_signatures\"\n";
    let e = error(&format!("[bitcoin]\n{twice}"));
    assert_eq!(e.field, "bitcoin.byzantine[0].son");
    assert!(e.message.contains("misbehaves already"), "{e}");
    let e = error("[bitcoin]\n[[bitcoin.hostile]]\nuser = 0\ndo = \"steal_key\"\nat = \"1h\"\n");
    assert_eq!(e.field, "bitcoin.hostile[0]", "steal_key needs a victim");
    let e = error(
        "[bitcoin]\n[[bitcoin.hostile]]\nuser = 0\ndo = \"steal_key\"\nvictim = 0\nat = \"1h\"\n",
    );
    assert_eq!(e.field, "bitcoin.hostile[0].victim");
    let e = error("[bitcoin]\n[[bitcoin.hostile]]\nuser = 7\ndo = \"dust\"\nat = \"1h\"\ncount = 2\nsat = 5\n");
    assert_eq!(e.field, "bitcoin.hostile[0].user");
    let e = error("[bitcoin]\n[[bitcoin.hostile]]\nuser = 0\ndo = \"fragment\"\nat = \"1h\"\ncount = 0\nsat = 5\n");
    assert_eq!(e.field, "bitcoin.hostile[0]");
}

/// The shipped adversaries scenario: four Byzantine SONs (below a third) and a hostile user
/// with 320 small deposits, a SON replaced mid-way. Every honest flow settles, every hostile
/// deposit is decided, every broadcast is valid by Bitcoin Core's interpreter and standard,
/// the reserve is never short, and the report lists every transaction the SONs signed.
#[test]
fn the_adversaries_scenario_settles_every_honest_flow() {
    let scenario = Scenario::from_toml(ADVERSARIES, "bitcoin-adversaries.toml").expect("valid");
    let options = Options { bitcoin_script_check: Some(judge()), ..Options::default() };
    let (finished, timeline, _) = run(&scenario, &options);
    assert_eq!(finished.failures, Vec::<String>::new());
    let b = bridge(&finished);
    assert!(b.rejected_broadcasts.is_empty(), "{:?}", b.rejected_broadcasts);
    assert!(b.alarms_raised.is_empty(), "the reserve was never short: {:?}", b.alarms_raised);
    let honest = b.deposits.iter().filter(|d| !d.hostile);
    assert!(honest.clone().count() == 3 && honest.clone().all(|d| d.credited.is_some()));
    let too_small = b.deposits.iter().filter(|d| d.hostile && d.status.contains("too small"));
    assert_eq!(too_small.count(), 20, "the dust is recorded as such");
    assert_eq!(b.withdrawals.iter().filter(|w| w.sent_sat.is_some()).count(), 3);
    assert_eq!(b.key_thefts.len(), 1);
    assert!(b.key_thefts[0].contains("proof is refused"), "{:?}", b.key_thefts);
    // Every transaction the chain built is standard; each signed one is in the report as
    // hex, whose txid and weight are the entry's.
    assert!(b.transactions.iter().any(|t| t.kind == "consolidation"));
    assert!(b.transactions.iter().any(|t| t.kind == "wallet_sweep"));
    for t in &b.transactions {
        assert!(t.weight <= 400_000, "{t:?}");
        let hex = t.hex.as_deref().expect("every transaction settled, so signed");
        let tx = sonprop_bitcoin::tx::from_hex(hex).expect("decodes");
        assert_eq!(tx.compute_txid().to_string(), t.txid);
        assert_eq!(tx.weight().to_wu(), t.weight);
    }
    let text: Vec<&str> = timeline.iter().map(|e| e.text.as_str()).collect();
    let has = |needle: &str| text.iter().any(|t| t.contains(needle));
    assert!(has("broadcast by son 1.33.6"), "the Byzantine SON claimed broadcasts");
    assert!(has("(Byzantine) reports a deposit of 10 BTC"));
    assert!(has("1 SON reported another amount or user"), "the previous-wallet reports");
    assert!(has("is not credited: 1000 sat is below bitcoin.min_deposit_sat"));
}

/// The scenario files the docs show are valid scenarios.
#[test]
fn every_scenario_in_the_docs_is_valid() {
    let docs = [
        ("docs/simulator.md", include_str!("../../../docs/simulator.md")),
        ("docs/bitcoin.md", include_str!("../../../docs/bitcoin.md")),
    ];
    let mut checked = 0;
    for (name, text) in docs {
        let mut block: Option<String> = None;
        for line in text.lines() {
            match (&mut block, line.trim_start()) {
                (None, l) if l.starts_with("```toml") => block = Some(String::new()),
                (Some(b), l) if l.starts_with("```") => {
                    if b.contains("name = ") {
                        let s = Scenario::from_toml(b, name);
                        assert!(s.is_ok(), "{name}: a scenario block does not parse: {s:?}\n{b}");
                        checked += 1;
                    }
                    block = None;
                }
                (Some(b), _) => {
                    b.push_str(line);
                    b.push('\n');
                }
                (None, _) => {}
            }
        }
    }
    assert!(checked >= 2, "the docs show at least the reference scenario and the bridge's");
}
