use std::collections::BTreeMap;
use std::sync::Arc;

use sonprop_core::node::scheduler::{PluginStatus, SchedulerConfig};
use sonprop_core::testkit::TestNetwork;
use sonprop_core::{Registry, SchedulerError, ServiceError, Services, SonId, State, Timestamp};

use crate::rule::{check_notice, NoticeError};
use crate::{ExpirySource, FixedExpiries, KeyExpiryAnnounced, NoticeWindow, KIND, PLUGIN};

fn network() -> TestNetwork {
    let registry = Registry::builder().with(&PLUGIN).build().expect("unique").into_arc();
    TestNetwork::builder().witnesses(3).sons(6).build(registry)
}

#[test]
fn notices_are_accepted_only_inside_the_window_before_expiry() {
    let net = network();
    let st = net.ledger.state();
    let head = st.head_time();
    const NOTICE_WINDOW: u64 = 7 * 24 * 3600;
    assert_eq!(st.param::<NoticeWindow>(), NOTICE_WINDOW, "the default");
    check_notice(st, SonId(1), "bitcoin", head.plus(NOTICE_WINDOW))
        .expect("the window is inclusive");
    let e = check_notice(st, SonId(1), "bitcoin", head.plus(NOTICE_WINDOW + 1)).expect_err("early");
    assert!(matches!(e, NoticeError::TooEarly { .. }), "{e}");
    let e = check_notice(st, SonId(1), "bitcoin", head).expect_err("expired");
    assert!(matches!(e, NoticeError::Expired { .. }), "{e}");
    let e = check_notice(st, SonId(1), "hive", head.plus(60)).expect_err("no hive key");
    assert!(matches!(e, NoticeError::NoKey { .. }), "{e}");
}

/// Every node's services: a source that knows SON 4's bitcoin key expires at `expires`.
fn services_knowing(expires: Timestamp) -> impl Fn(&sonprop_core::NodeIdentity) -> Services {
    move |_| {
        let known = BTreeMap::from([((SonId(4), "bitcoin".to_owned()), expires)]);
        let source: ExpirySource = Arc::new(FixedExpiries(known));
        Services::new().with(source)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_son_on_duty_raises_a_notice_from_its_source_and_the_sons_approve() {
    let mut net = network();
    let expires = net.now().plus(3 * 24 * 3600);
    net.start_schedulers_with(SchedulerConfig::for_tests(), services_knowing(expires))
        .expect("every node has the source");
    let run = net.run_for(120).await;
    let expected =
        KeyExpiryAnnounced { son: SonId(4), sidechain: "bitcoin".into(), expires_at: expires };
    assert_eq!(run.decoded::<KeyExpiryAnnounced>(), vec![expected], "announced once");
    let drafted = run.statuses(KIND).into_iter().filter(|(_, s)| **s == PluginStatus::Drafts(1));
    let proposers: Vec<&str> = drafted.map(|(node, _)| node).collect();
    assert!(!proposers.is_empty(), "a node drafted it");
    assert!(proposers.iter().all(|n| n.starts_with("son-")), "only SONs run it: {proposers:?}");
    let st = net.ledger.state();
    assert_eq!(st.row::<crate::Announced>(&(SonId(4), "bitcoin".into())), Some(&expires));
    let e = check_notice(st, SonId(4), "bitcoin", expires).expect_err("remembered");
    assert!(matches!(e, NoticeError::AlreadyAnnounced { .. }), "{e}");
}

/// A restart test: every node restarts after the notice executed, forgetting what it sent.
/// The chain's table remembers, so nothing is announced twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_restarted_after_a_notice_executed_do_not_announce_it_again() {
    let mut net = network();
    let expires = net.now().plus(3 * 24 * 3600);
    let mut announced = Vec::new();
    for run in 0..2 {
        // A restart: new schedulers, with no memory of what the old ones sent.
        net.start_schedulers_with(SchedulerConfig::for_tests(), services_knowing(expires))
            .expect("every node has the source");
        announced.extend(net.run_for(150).await.decoded::<KeyExpiryAnnounced>());
        assert_eq!(announced.len(), 1, "announced once (run {run})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sons_whose_own_source_disagrees_abstain_with_their_reason() {
    let mut net = network();
    let expires = net.now().plus(3 * 24 * 3600);
    // son-1 and son-2 know the truth; the other four SONs know a later expiry. With 6 elected
    // SONs the threshold is 5: neither side can pass its notice alone.
    net.start_schedulers_with(SchedulerConfig::for_tests(), |node| {
        let honest = ["son-1", "son-2"].contains(&node.name.as_str());
        let t = if honest { expires } else { expires.plus(60) };
        let known = BTreeMap::from([((SonId(4), "bitcoin".to_owned()), t)]);
        Services::new().with(Arc::new(FixedExpiries(known)) as ExpirySource)
    })
    .expect("every node has a source");
    let run = net.run_for(120).await;
    let abstentions: Vec<&String> = run
        .statuses(KIND)
        .into_iter()
        .filter_map(|(_, s)| if let PluginStatus::Abstained(why) = s { Some(why) } else { None })
        .collect();
    assert!(run.decoded::<KeyExpiryAnnounced>().is_empty(), "no side reaches the threshold");
    assert!(
        abstentions.iter().any(|w| **w == format!("my source says the key expires at {expires}")),
        "the majority abstains from the honest notice: {abstentions:?}"
    );
    let later = expires.plus(60);
    assert!(
        abstentions.iter().any(|w| **w == format!("my source says the key expires at {later}")),
        "the honest SONs abstain from the wrong one: {abstentions:?}"
    );
}

#[test]
fn a_node_without_the_source_fails_at_start_up_naming_kind_and_service() {
    let mut net = network();
    let e = net
        .start_schedulers_with(SchedulerConfig::for_tests(), |_| Services::new())
        .expect_err("no source");
    let SchedulerError::Service(ServiceError::Missing { kind, service, .. }) = &e else {
        panic!("{e}");
    };
    assert_eq!(*kind, KIND);
    assert!(service.contains("KeyExpirySource"), "{service}");
    assert!(e.to_string().contains(KIND) && e.to_string().contains("KeyExpirySource"), "{e}");
}

#[test]
fn the_notice_window_is_a_chain_parameter_set_at_genesis_and_validated() {
    let reg = Registry::builder().with(&PLUGIN).build().expect("unique").into_arc();
    let net = TestNetwork::builder()
        .witnesses(3)
        .sons(6)
        .plugin_param("son_key_expiry_notice.window", serde_json::json!(3600))
        .build(reg.clone());
    let st: &State = net.ledger.state();
    assert_eq!(st.param::<NoticeWindow>(), 3600);
    let head = st.head_time();
    let e = check_notice(st, SonId(1), "bitcoin", head.plus(3601)).expect_err("outside 1 h");
    assert!(matches!(e, NoticeError::TooEarly { window: 3600, .. }), "{e}");

    let (mut genesis, ..) = TestNetwork::builder().witnesses(3).sons(6).genesis();
    genesis.plugin_params.insert("son_key_expiry_notice.window".into(), serde_json::json!(0));
    let e = sonprop_core::Ledger::new(&genesis, reg.chain()).expect_err("zero window");
    assert!(e.to_string().contains("son_key_expiry_notice.window"), "{e}");
}
