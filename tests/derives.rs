//! The derive macros (`sonprop-macros`, re-exported by core) generate what the hand-written
//! impls did: a parameter's name, description, default and bounds; an event's kind, name and
//! text; a struct key's order-preserving encoding.

use serde::{Deserialize, Serialize};
use sonprop_core::{ChainEvent, GenesisView, Parameter, SonId, TableKey};

/// Seconds a test thing waits.
///
/// Not part of the description: the second paragraph.
#[derive(Parameter)]
#[parameter(name = "derives.wait", value = u64, default = 60 * 5, min = 10, max = 3600)]
struct Wait;

fn even(v: &u32) -> Result<(), String> {
    if v % 2 == 1 {
        return Err("must be even".into());
    }
    Ok(())
}

fn known_son(v: &u32, genesis: &dyn GenesisView) -> Result<(), String> {
    match genesis.has_son(SonId(u64::from(*v))) {
        true => Ok(()),
        false => Err(format!("no son {v}")),
    }
}

/// A son number.
#[derive(Parameter)]
#[parameter(
    name = "derives.son",
    description = "the son",
    value = u32,
    default = 2,
    check = even,
    at_genesis = known_son
)]
struct SonParam;

#[test]
fn a_derived_parameter_has_its_name_doc_default_and_bounds() {
    assert_eq!(Wait::NAME, "derives.wait");
    assert_eq!(Wait::DESCRIPTION, "Seconds a test thing waits.");
    assert_eq!(Wait::default_value(), 300);
    assert_eq!(Wait::validate(&10), Ok(()));
    assert_eq!(Wait::validate(&3600), Ok(()));
    assert_eq!(Wait::validate(&9), Err("must be at least 10".into()));
    assert_eq!(Wait::validate(&3601), Err("must be at most 3600".into()));
    assert_eq!(SonParam::DESCRIPTION, "the son", "given, not the doc");
    assert_eq!(SonParam::validate(&3), Err("must be even".into()));
    assert_eq!(SonParam::validate(&4), Ok(()));
}

/// A genesis view with SONs 0 to 4.
struct Five;
impl GenesisView for Five {
    fn has_account(&self, _: sonprop_core::AccountId) -> bool {
        false
    }
    fn asset(&self, _: sonprop_core::AssetId) -> Option<&sonprop_core::Asset> {
        None
    }
    fn has_son(&self, id: SonId) -> bool {
        id.0 < 5
    }
}

#[test]
fn a_derived_parameter_is_judged_on_the_genesis_by_its_at_genesis_function() {
    assert_eq!(SonParam::validate_at_genesis(&4, &Five), Ok(()));
    assert_eq!(SonParam::validate_at_genesis(&6, &Five), Err("no son 6".into()));
    assert_eq!(Wait::validate_at_genesis(&6, &Five), Ok(()), "none: accepted");
}

const KIND: &str = "derives_kind";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(kind = KIND, name = "moved", display = "{what} moved {sat} sat to {to}")]
struct Moved {
    what: String,
    sat: u64,
    to: SonId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(kind = "other_kind", name = "told")]
struct Told(u8);

impl std::fmt::Display for Told {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "told {}", self.0)
    }
}

#[test]
fn a_derived_event_has_its_kind_name_and_text() {
    assert_eq!((Moved::KIND, Moved::NAME), (KIND, "moved"));
    let e = Moved { what: "the wallet".into(), sat: 5, to: SonId(3) };
    assert_eq!(e.to_string(), "the wallet moved 5 sat to 1.33.3");
    assert_eq!((Told::KIND, Told::NAME), ("other_kind", "told"));
    assert_eq!(Told(7).to_string(), "told 7", "its own Display");
    // Through the ledger's event and back.
    let event = sonprop_core::LedgerEvent::Plugin {
        kind: KIND.into(),
        name: "moved".into(),
        text: e.to_string(),
        data: serde_json::to_value(&e).expect("JSON"),
    };
    assert_eq!(event.decode::<Moved>(), Some(e));
    assert_eq!(event.decode::<Told>(), None);
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, TableKey)]
struct Key {
    son: SonId,
    chain: String,
    n: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, TableKey)]
struct Pair(u64, bool);

#[test]
fn a_derived_key_is_encoded_as_its_fields_tuple_and_keeps_its_order() {
    let keys = [
        Key { son: SonId(1), chain: "bitcoin".into(), n: 9 },
        Key { son: SonId(1), chain: "bitcoin".into(), n: 10 },
        Key { son: SonId(1), chain: "ethereum".into(), n: 0 },
        Key { son: SonId(2), chain: "".into(), n: 0 },
    ];
    for k in &keys {
        assert_eq!(k.key_bytes(), (k.son, k.chain.clone(), k.n).key_bytes());
        assert_eq!(Key::from_key_bytes(&k.key_bytes()).as_ref(), Some(k));
    }
    for w in keys.windows(2) {
        assert!(w[0] < w[1] && w[0].key_bytes() < w[1].key_bytes(), "{w:?}");
    }
    let p = Pair(7, true);
    assert_eq!(p.key_bytes(), (7u64, true).key_bytes());
    assert_eq!(Pair::from_key_bytes(&p.key_bytes()), Some(p.clone()));
    let mut longer = p.key_bytes();
    longer.push(0);
    assert_eq!(Pair::from_key_bytes(&longer), None, "one key, nothing after it");
    assert_eq!(Pair::from_key_bytes(&[1, 2]), None, "not a key");
}

/// A kind declared once by `#[operation]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Ping {
    son: SonId,
}

#[sonprop_core::operation(
    name = "derives_ping",
    description = "ping a SON",
    proposal = sonprop_core::ProposalPolicy {
        son_record: true,
        eligible: sonprop_core::Eligibility::WitnessOrSon,
        lifetime: |_| 90,
        readiness: None,
    },
    example = Ping { son: SonId(4) }
)]
impl sonprop_core::Operation for Ping {
    fn subject(&self) -> Option<sonprop_core::Subject> {
        Some(sonprop_core::Subject::Son(self.son))
    }
    fn required_authorities(&self) -> Vec<sonprop_core::AccountId> {
        vec![sonprop_core::AccountId::SON_CONSENSUS]
    }
    fn check(&self, _: &sonprop_core::State) -> Result<(), sonprop_core::OperationError> {
        Ok(())
    }
    fn apply(
        &self,
        _: &mut sonprop_core::ApplyContext<'_>,
    ) -> Result<(), sonprop_core::OperationError> {
        Ok(())
    }
}

/// A kind sent directly: no proposal policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Direct;

#[sonprop_core::operation(name = "derives_direct", description = "sent as is", example = Direct)]
impl sonprop_core::Operation for Direct {
    fn required_authorities(&self) -> Vec<sonprop_core::AccountId> {
        Vec::new()
    }
    fn check(&self, _: &sonprop_core::State) -> Result<(), sonprop_core::OperationError> {
        Ok(())
    }
    fn apply(
        &self,
        _: &mut sonprop_core::ApplyContext<'_>,
    ) -> Result<(), sonprop_core::OperationError> {
        Ok(())
    }
}

#[test]
fn a_kind_declared_once_gives_its_name_everywhere_it_is_needed() {
    use sonprop_core::Operation;
    assert_eq!(Ping::KIND, "derives_ping");
    assert_eq!(Ping { son: SonId(1) }.kind(), "derives_ping");
    let d = Ping::DESCRIPTOR;
    assert_eq!((d.name, d.description), ("derives_ping", "ping a SON"));
    let policy = d.proposal.expect("a proposal policy");
    assert!(policy.son_record);
    assert!(matches!(policy.eligible, sonprop_core::Eligibility::WitnessOrSon));
    let example = (d.example)();
    assert_eq!(example.kind(), "derives_ping");
    assert_eq!(example.subject(), Some(sonprop_core::Subject::Son(SonId(4))));
    // Registered with typetag under the same name: it round-trips as a boxed operation.
    let json = serde_json::to_string(&example).expect("JSON");
    assert!(json.contains(r#""derives_ping""#), "{json}");
    let back: Box<dyn Operation> = serde_json::from_str(&json).expect("decodes");
    assert_eq!(back.kind(), "derives_ping");
    assert_eq!(Direct::DESCRIPTOR.proposal.map(|p| p.son_record), None, "no policy");
    assert_eq!(Direct.kind(), "derives_direct");
}
