use std::collections::BTreeMap;
use std::sync::Arc;

use sonprop_core::scheduler::SchedulerConfig;
use sonprop_core::testkit::TestNetwork;
use sonprop_core::{LedgerEvent, Registry, SonId, Subject};

use crate::rule::{check_notice, NoticeError};
use crate::{FixedExpiries, NoticeTrigger, NoticeValidator, KIND, NOTICE_WINDOW, PLUGIN};

fn network() -> TestNetwork {
    let registry = Registry::builder().with(&PLUGIN).build().expect("unique").into_arc();
    TestNetwork::builder().witnesses(3).sons(6).build(registry)
}

#[test]
fn notices_are_accepted_only_inside_the_window_before_expiry() {
    let net = network();
    let st = net.ledger.state();
    let head = st.head_time();
    check_notice(st, SonId(1), "bitcoin", head.plus(NOTICE_WINDOW))
        .expect("the window is inclusive");
    let e = check_notice(st, SonId(1), "bitcoin", head.plus(NOTICE_WINDOW + 1)).expect_err("early");
    assert!(matches!(e, NoticeError::TooEarly { .. }), "{e}");
    let e = check_notice(st, SonId(1), "bitcoin", head).expect_err("expired");
    assert!(matches!(e, NoticeError::Expired { .. }), "{e}");
    let e = check_notice(st, SonId(1), "hive", head.plus(60)).expect_err("no hive key");
    assert!(matches!(e, NoticeError::NoKey { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_source_raises_a_notice_that_the_sons_approve() {
    let mut net = network();
    let expires = net.now().plus(3 * 24 * 3600);
    let source =
        Arc::new(FixedExpiries(BTreeMap::from([((SonId(4), "bitcoin".to_owned()), expires)])));
    net.start_schedulers_with(SchedulerConfig::default(), |s| {
        s.set_trigger(KIND, Arc::new(NoticeTrigger(source.clone())));
        s.set_validator(KIND, Arc::new(NoticeValidator(source.clone())));
    });
    let events = net.run_until(net.now().plus(120)).await;
    let notices: Vec<_> = events
        .iter()
        .filter_map(|(_, _, e)| match e {
            LedgerEvent::Notice { kind, subject, message } if kind == KIND => {
                Some((subject.clone(), message.clone()))
            }
            _ => None,
        })
        .collect();
    let subject = Some(Subject::Named("1.33.4/bitcoin".into()));
    assert_eq!(
        notices,
        vec![(subject, format!("bitcoin key expires at {expires}"))],
        "announced once"
    );
    let e = check_notice(net.ledger.state(), SonId(4), "bitcoin", expires).expect_err("remembered");
    assert!(matches!(e, NoticeError::AlreadyAnnounced { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_defaults_know_no_expiries_and_raise_nothing() {
    let mut net = network();
    net.start_schedulers(SchedulerConfig::default());
    let events = net.run_until(net.now().plus(30)).await;
    assert!(events.iter().all(|(_, _, e)| !matches!(e, LedgerEvent::ProposalCreated { .. })));
}

#[test]
fn the_guide_quotes_this_crate_verbatim() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("../../docs/writing-an-operation.md"))
        .expect("guide exists");
    let mut sources = String::new();
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "src/rule.rs",
        "src/op.rs",
        "src/plugin.rs",
        "src/registration.rs",
        "src/tests.rs",
    ] {
        sources += &std::fs::read_to_string(root.join(f)).expect("source");
    }
    let blocks: Vec<&str> = guide.split("```").skip(1).step_by(2).collect();
    assert!(blocks.len() >= 6, "the guide shows the crate");
    for block in blocks {
        let code = block.split_once('\n').map_or("", |(_, code)| code);
        assert!(sources.contains(code), "guide block not found in the crate:\n{code}");
    }
}
