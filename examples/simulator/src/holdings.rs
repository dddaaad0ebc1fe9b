//! A scenario's own assets and accounts (`[[assets]]`, `[[accounts]]`): whatever an operation
//! crate needs at genesis that the built-in tables (`[bitcoin]`'s PBTC, `[lifecycle]`'s PPY and
//! members) do not make, such as a wrapped sidechain coin and the users who will hold it.
//!
//! ```toml
//! [[assets]]
//! symbol = "SIDE"        # ids 1.3.2, 1.3.3, … in the file's order
//! precision = 8
//! max_supply = 21000000  # in whole units; "0.5" for fractions
//! # issuer = "alice"     # an account of [[accounts]]; left out: the SON consensus authority
//!
//! [[accounts]]
//! name = "alice"
//! balances = { SIDE = "1.5" }
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use sonprop_core::testkit::NetworkBuilder;
use sonprop_core::{AccountId, Asset, AssetId};

/// The id of a scenario's first own asset (1.3.0 is PPY, 1.3.1 PBTC).
pub const FIRST_ASSET: u64 = 2;

/// An amount as a scenario writes it: whole units (`12`) or a decimal (`"0.25"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum AmountSpec {
    Whole(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssetSpec {
    symbol: String,
    precision: u8,
    max_supply: AmountSpec,
    issuer: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountSpec {
    name: String,
    #[serde(default)]
    balances: BTreeMap<String, AmountSpec>,
}

/// An asset a scenario declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioAsset {
    /// Its id (from [`FIRST_ASSET`] on, in the file's order).
    pub id: AssetId,
    /// Its symbol.
    pub symbol: String,
    /// Its decimal places.
    pub precision: u8,
    /// Its largest supply, in its smallest units.
    pub max_supply: u64,
    /// The account of `[[accounts]]` that issues it; `None`: the SON consensus authority.
    pub issuer: Option<String>,
}

/// An account a scenario declares, with its genesis balances in smallest units by symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioAccount {
    /// Its name.
    pub name: String,
    /// Its balances, by asset symbol, in the asset's smallest units.
    pub balances: BTreeMap<String, u64>,
}

/// `amount` in smallest units of an asset of `precision` decimals: `"1.5"` of 8 decimals is
/// 150 000 000. More decimals than the asset has, a sign, or an overflow is an error.
pub(crate) fn parse_amount(amount: &AmountSpec, precision: u8) -> Result<u64, String> {
    let scale = 10u64.checked_pow(u32::from(precision)).ok_or("precision too large")?;
    let too_big = || format!("{} is more than this asset can count", show(amount));
    let text = match amount {
        AmountSpec::Whole(n) => return n.checked_mul(scale).ok_or_else(too_big),
        AmountSpec::Text(t) => t.trim(),
    };
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(frac.is_empty() || digits(frac)) {
        return Err(format!("`{text}` is not an amount (write 12 or \"0.25\")"));
    }
    if frac.len() > usize::from(precision) {
        return Err(format!("`{text}` has more than the asset's {precision} decimals"));
    }
    let padded = format!("{frac:0<w$}", w = usize::from(precision));
    let whole: u64 = whole.parse().map_err(|_| too_big())?;
    let frac: u64 = if padded.is_empty() { 0 } else { padded.parse().map_err(|_| too_big())? };
    whole.checked_mul(scale).and_then(|w| w.checked_add(frac)).ok_or_else(too_big)
}

fn show(amount: &AmountSpec) -> String {
    match amount {
        AmountSpec::Whole(n) => n.to_string(),
        AmountSpec::Text(t) => format!("`{t}`"),
    }
}

/// Names the generated nodes' accounts take: a scenario account may not take one.
fn reserved(name: &str) -> bool {
    let numbered = ["witness-", "son-", "user-", "member-"]
        .iter()
        .any(|p| name.strip_prefix(p).is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())));
    numbered || name == "son-budget"
}

/// The assets a scenario's built-in tables put in its genesis: PPY with `[lifecycle]`, PBTC
/// with `[bitcoin]`.
pub fn builtin_assets(lifecycle: bool, bitcoin: bool) -> Vec<Asset> {
    let ppy = lifecycle.then(crate::members::ppy_asset);
    ppy.into_iter().chain(bitcoin.then(crate::bridge::pbtc_asset)).collect()
}

/// A scenario's `[[assets]]` and `[[accounts]]`, checked.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) assets: Vec<ScenarioAsset>,
    pub(crate) accounts: Vec<ScenarioAccount>,
    /// Every asset of the genesis, built in or declared: its precision by symbol.
    pub(crate) precision: BTreeMap<String, u8>,
}

/// What the file's `[[assets]]` and `[[accounts]]` declare, checked: `builtin` are the assets
/// the scenario's other tables already put in its genesis. An error is `(field, message)`.
pub(crate) fn check(
    assets: &[AssetSpec],
    accounts: &[AccountSpec],
    builtin: &[Asset],
) -> Result<Checked, (String, String)> {
    let mut names = BTreeMap::new();
    for (i, a) in accounts.iter().enumerate() {
        let field = format!("accounts[{i}].name");
        if a.name.trim().is_empty() || reserved(&a.name) {
            return Err((field, format!("`{}` is empty or a generated node's name", a.name)));
        }
        if names.insert(a.name.as_str(), i).is_some() {
            return Err((field, format!("account `{}` is declared twice", a.name)));
        }
    }
    let mut precision: BTreeMap<String, u8> =
        builtin.iter().map(|a| (a.symbol.clone(), a.precision)).collect();
    let mut out = Vec::new();
    for (i, a) in assets.iter().enumerate() {
        let at = |f: &str| format!("assets[{i}].{f}");
        let valid = !a.symbol.is_empty() && a.symbol.bytes().all(|b| b.is_ascii_uppercase());
        if !valid || precision.insert(a.symbol.clone(), a.precision).is_some() {
            let m = format!("`{}` is not a new symbol of capital letters", a.symbol);
            return Err((at("symbol"), m));
        }
        if let Some(issuer) = a.issuer.as_ref().filter(|n| !names.contains_key(n.as_str())) {
            return Err((at("issuer"), format!("no account `{issuer}` in [[accounts]]")));
        }
        out.push(ScenarioAsset {
            id: AssetId(FIRST_ASSET + i as u64),
            symbol: a.symbol.clone(),
            precision: a.precision,
            max_supply: parse_amount(&a.max_supply, a.precision)
                .map_err(|m| (at("max_supply"), m))?,
            issuer: a.issuer.clone(),
        });
    }
    let known = || precision.keys().cloned().collect::<Vec<_>>().join(", ");
    let mut holders = Vec::new();
    for (i, a) in accounts.iter().enumerate() {
        let mut balances = BTreeMap::new();
        for (symbol, amount) in &a.balances {
            let field = format!("accounts[{i}].balances.{symbol}");
            let p = *precision.get(symbol).ok_or_else(|| {
                (field.clone(), format!("no asset `{symbol}` (known: {})", known()))
            })?;
            balances.insert(symbol.clone(), parse_amount(amount, p).map_err(|m| (field, m))?);
        }
        holders.push(ScenarioAccount { name: a.name.clone(), balances });
    }
    Ok(Checked { assets: out, accounts: holders, precision })
}

/// `builder` with the scenario's accounts, assets and balances. `existing` are the assets the
/// builder already holds (for balances in PPY or PBTC).
pub fn genesis(
    builder: NetworkBuilder,
    assets: &[ScenarioAsset],
    accounts: &[ScenarioAccount],
    existing: &[Asset],
) -> Result<NetworkBuilder, String> {
    let builder = accounts.iter().fold(builder, |b, a| b.account(&a.name));
    let users = builder.genesis().3;
    let id = |name: &str| users.iter().find(|u| u.name == name).map(|u| u.account);
    let mut b = builder;
    let mut all: Vec<Asset> = existing.to_vec();
    for a in assets {
        let issuer = match &a.issuer {
            None => AccountId::SON_CONSENSUS,
            Some(n) => id(n).ok_or_else(|| format!("no account `{n}`"))?,
        };
        let asset = Asset {
            id: a.id,
            symbol: a.symbol.clone(),
            precision: a.precision,
            issuer,
            max_supply: a.max_supply,
            supply: 0,
        };
        all.push(asset.clone());
        b = b.asset(asset);
    }
    for a in accounts {
        let account = id(&a.name).ok_or_else(|| format!("no account `{}`", a.name))?;
        for (symbol, amount) in &a.balances {
            let asset = all.iter().find(|x| &x.symbol == symbol).ok_or(format!("no `{symbol}`"))?;
            b = b.balance(account, asset.id, *amount);
        }
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_in_the_assets_smallest_units_and_bad_ones_refused() {
        let t = |s: &str| AmountSpec::Text(s.into());
        assert_eq!(parse_amount(&AmountSpec::Whole(12), 8), Ok(1_200_000_000));
        assert_eq!(parse_amount(&t("1.5"), 8), Ok(150_000_000));
        assert_eq!(parse_amount(&t("0.00000001"), 8), Ok(1));
        assert_eq!(parse_amount(&t("7"), 0), Ok(7));
        for bad in ["-1", "1e3", ".5", "", "1.2.3", "1.x"] {
            let e = parse_amount(&t(bad), 8).expect_err(bad);
            assert!(e.contains("is not an amount"), "{bad}: {e}");
        }
        let e = parse_amount(&t("1.000000001"), 8).expect_err("9 decimals");
        assert!(e.contains("more than the asset's 8 decimals"), "{e}");
        let e = parse_amount(&AmountSpec::Whole(u64::MAX), 8).expect_err("overflow");
        assert!(e.contains("18446744073709551615 is more than"), "{e}");
        assert!(parse_amount(&t("184467440737.09551616"), 8).is_err(), "one past u64::MAX");
    }

    fn spec(symbol: &str, issuer: Option<&str>) -> AssetSpec {
        let max_supply = AmountSpec::Whole(100);
        AssetSpec {
            symbol: symbol.into(),
            precision: 2,
            max_supply,
            issuer: issuer.map(Into::into),
        }
    }

    fn holder(name: &str, balances: &[(&str, &str)]) -> AccountSpec {
        let balances = balances
            .iter()
            .map(|(s, a)| ((*s).to_owned(), AmountSpec::Text((*a).into())))
            .collect();
        AccountSpec { name: name.into(), balances }
    }

    #[test]
    fn assets_take_ids_in_order_and_balances_name_known_symbols() {
        let assets = [spec("SIDE", None), spec("GOLD", Some("alice"))];
        let accounts = [holder("alice", &[("SIDE", "1.5"), ("PPY", "2")]), holder("bob", &[])];
        let c = check(&assets, &accounts, &builtin_assets(true, false)).expect("valid");
        let (a, h) = (c.assets, c.accounts);
        assert_eq!(c.precision.get("PPY"), Some(&5), "the built-in assets' precisions too");
        assert_eq!(a[0].id, AssetId(2));
        assert_eq!((a[1].id, a[1].issuer.as_deref()), (AssetId(3), Some("alice")));
        assert_eq!(h[0].balances, BTreeMap::from([("PPY".into(), 200_000), ("SIDE".into(), 150)]));
    }

    #[test]
    fn bad_declarations_are_refused_naming_the_field() {
        let field = |assets: &[AssetSpec], accounts: &[AccountSpec]| {
            check(assets, accounts, &builtin_assets(false, true)).expect_err("refused").0
        };
        assert_eq!(field(&[spec("PBTC", None)], &[]), "assets[0].symbol", "taken by [bitcoin]");
        assert_eq!(field(&[spec("side", None)], &[]), "assets[0].symbol");
        assert_eq!(field(&[spec("SIDE", Some("carol"))], &[]), "assets[0].issuer");
        assert_eq!(field(&[], &[holder("son-3", &[])]), "accounts[0].name");
        assert_eq!(field(&[], &[holder("a", &[]), holder("a", &[])]), "accounts[1].name");
        let pbtc = builtin_assets(false, true);
        let e = check(&[], &[holder("a", &[("PPY", "1")])], &pbtc).expect_err("no PPY");
        assert_eq!(e.0, "accounts[0].balances.PPY");
        assert!(e.1.contains("known: PBTC"), "{}", e.1);
        let e = field(&[spec("SIDE", None)], &[holder("a", &[("SIDE", "0.001")])]);
        assert_eq!(e, "accounts[0].balances.SIDE", "more decimals than the asset has");
        assert!(reserved("user-12") && !reserved("user-x") && reserved("son-budget"));
    }
}
