//! The HTML report (`sonprop simulate --html FILE`): one self-contained page, no network, drawn
//! from the same [`Report`] as the JSON one. A SON status strip over time (Gantt-like), every
//! proposal on the same time axis, and for a bridge scenario one row per deposit and withdrawal
//! with its stages and fees, and the conservation figures.
//!
//! The charts are SVG written here; a few lines of script only record what the browser laid
//! out (`data-rendered-*` on `<body>`), for the browser test to read.

use std::collections::BTreeMap;
use std::fmt::Write;

use sonprop_core::SonStatus;

use crate::bridge::BridgeReport;
use crate::json::Time;
use crate::report::{Outcome, Report};

/// Width of the label column, px.
const LABEL: f64 = 110.0;
/// Width of the time axis, px.
const AXIS: f64 = 900.0;
/// Height of one row, px.
const ROW: f64 = 18.0;

/// Escapes text for HTML (element content and attribute values).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A status's colour and name in the legend.
fn status_colour(s: SonStatus) -> &'static str {
    match s {
        SonStatus::Active => "#2e7d32",
        SonStatus::RequestMaintenance => "#fbc02d",
        SonStatus::InMaintenance => "#ef6c00",
        SonStatus::Deregistered => "#9e9e9e",
        SonStatus::Inactive => "#90caf9",
    }
}

fn outcome_colour(o: Outcome) -> &'static str {
    match o {
        Outcome::Executed => "#1565c0",
        Outcome::Expired => "#c62828",
        Outcome::Failed => "#6a1b9a",
        Outcome::Deleted => "#5d4037",
        Outcome::Live => "#00897b",
    }
}

/// Maps chain time to the axis.
struct Axis {
    from: u64,
    to: u64,
}

impl Axis {
    fn x(&self, t: u64) -> f64 {
        let span = self.to.saturating_sub(self.from).max(1) as f64;
        LABEL + (t.clamp(self.from, self.to) - self.from) as f64 / span * AXIS
    }

    /// Tick marks and their labels under a chart `height` px tall.
    fn ticks(&self, height: f64, out: &mut String) {
        let span = self.to.saturating_sub(self.from).max(1);
        let step = [60, 300, 600, 1800, 3600, 2 * 3600, 6 * 3600, 12 * 3600, 86_400, 7 * 86_400]
            .into_iter()
            .find(|s| span / s <= 12)
            .unwrap_or(30 * 86_400);
        let mut t = 0;
        while t <= span {
            let x = self.x(self.from + t);
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" y1="0" x2="{x:.1}" y2="{height:.1}" stroke="#e0e0e0"/><text x="{x:.1}" y="{:.1}" class="tick">{}</text>"##,
                height + 12.0,
                escape(&crate::cli::format_elapsed(t))
            );
            t += step;
        }
    }
}

/// A SON's status from one time to another (unix seconds).
type Span = (u64, u64, SonStatus);

/// Each SON's history as spans, from genesis to the head, in SON order.
fn spans(r: &Report) -> Vec<(String, Vec<Span>)> {
    let (start, end) = (r.genesis.unix, r.head.unix);
    let mut out = Vec::new();
    for s in &r.sons {
        let changes: Vec<_> = r.status_changes.iter().filter(|c| c.son == s.id).collect();
        let mut spans = Vec::new();
        let (mut since, mut status) = (start, changes.first().map_or(s.status, |c| c.from));
        for c in changes {
            spans.push((since, c.at.unix, status));
            (since, status) = (c.at.unix, c.to);
        }
        spans.push((since, end, status));
        out.push((s.id.clone(), spans));
    }
    out
}

fn son_strip(r: &Report, axis: &Axis, out: &mut String) {
    let spans = spans(r);
    let height = spans.len() as f64 * ROW;
    let _ = write!(
        out,
        r#"<svg class="chart" width="{:.0}" height="{:.0}" role="img" aria-label="SON status over time">"#,
        LABEL + AXIS + 60.0,
        height + 20.0
    );
    axis.ticks(height, out);
    for (i, (son, spans)) in spans.iter().enumerate() {
        let y = i as f64 * ROW;
        let _ = write!(
            out,
            r#"<g class="son-row" data-son="{son}"><text x="0" y="{:.1}" class="label">{son}</text>"#,
            y + 13.0
        );
        for (from, to, status) in spans {
            let (x1, x2) = (axis.x(*from), axis.x(*to));
            let _ = write!(
                out,
                r#"<rect class="span" data-status="{status}" x="{x1:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{son} {status} from {} to {}</title></rect>"#,
                y + 2.0,
                (x2 - x1).max(1.0),
                ROW - 4.0,
                status_colour(*status),
                crate::cli::format_elapsed(from - r.genesis.unix),
                crate::cli::format_elapsed(to - r.genesis.unix),
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out.push_str(r#"<p class="legend">"#);
    for s in SonStatus::ALL {
        let _ = write!(out, r#"<span><i style="background:{}"></i>{s}</span>"#, status_colour(s));
    }
    out.push_str("</p>");
}

fn proposal_chart(r: &Report, axis: &Axis, out: &mut String) {
    let mut kinds: BTreeMap<&str, Vec<&crate::json::Proposal>> = BTreeMap::new();
    for p in &r.proposals {
        kinds.entry(p.kind.as_str()).or_default().push(p);
    }
    let height = kinds.len().max(1) as f64 * ROW;
    let _ = write!(
        out,
        r#"<svg class="chart" width="{:.0}" height="{:.0}" role="img" aria-label="proposals over time">"#,
        LABEL + AXIS + 60.0,
        height + 20.0
    );
    axis.ticks(height, out);
    for (i, (kind, ps)) in kinds.iter().enumerate() {
        let y = i as f64 * ROW;
        let short = kind.trim_start_matches("bitcoin_").trim_start_matches("son_");
        let _ = write!(
            out,
            r#"<g class="kind-row" data-kind="{kind}"><text x="0" y="{:.1}" class="label">{}</text>"#,
            y + 13.0,
            escape(short)
        );
        for p in ps {
            let end = p.ended.as_ref().unwrap_or(&r.head).unix.max(p.created.unix);
            let (x1, x2) = (axis.x(p.created.unix), axis.x(end));
            let outcome = format!("{:?}", p.outcome).to_lowercase();
            let _ = write!(
                out,
                r#"<rect class="proposal" data-id="{}" data-outcome="{outcome}" x="{x1:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {} {}: raised {} by {}, {outcome}{}</title></rect>"#,
                p.id,
                y + 3.0,
                (x2 - x1).max(2.0),
                ROW - 6.0,
                outcome_colour(p.outcome),
                p.id,
                escape(&p.kind),
                escape(p.subject.as_deref().unwrap_or("")),
                p.created.offset,
                escape(&p.proposer.to_string()),
                p.ended.as_ref().map(|t| format!(" at {}", t.offset)).unwrap_or_default(),
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
}

fn at(t: &Option<Time>) -> String {
    t.as_ref().map_or_else(|| "—".to_owned(), |t| t.offset.clone())
}

fn sat(n: Option<u64>) -> String {
    n.map_or_else(|| "—".to_owned(), |n| n.to_string())
}

fn bridge(b: &BridgeReport, out: &mut String) {
    out.push_str("<h2>Deposits</h2>");
    out.push_str(
        "<table class=\"flows\" id=\"deposits\"><tr><th>deposit</th><th>user</th><th>sat</th>\
         <th>paid</th><th>reported</th><th>confirmed</th><th>swept</th><th>settled</th>\
         <th>credited</th><th>sweep fee</th><th>status</th></tr>",
    );
    for d in &b.deposits {
        let s = &d.stages;
        let _ = write!(
            out,
            r#"<tr class="deposit{}" data-outpoint="{}"><td title="{}">{}…</td><td>{}</td><td>{}</td><td class="stage" data-stage="paid">{}</td><td class="stage" data-stage="reported">{}</td><td class="stage" data-stage="confirmed">{}</td><td class="stage" data-stage="swept">{}</td><td class="stage" data-stage="settled">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            if d.hostile { " hostile" } else { "" },
            escape(&d.outpoint),
            escape(&d.outpoint),
            escape(&d.outpoint.chars().take(10).collect::<String>()),
            escape(&d.user.to_string()),
            d.sat,
            at(&s.paid),
            at(&s.reported),
            at(&s.confirmed),
            at(&s.swept),
            at(&s.settled),
            sat(d.credited),
            sat(d.fee_sat),
            escape(&d.status),
        );
    }
    out.push_str("</table><h2>Withdrawals</h2>");
    out.push_str(
        "<table class=\"flows\" id=\"withdrawals\"><tr><th>withdrawal</th><th>user</th>\
         <th>sat</th><th>requested</th><th>paying</th><th>paid</th><th>refunded</th>\
         <th>received</th><th>fee</th><th>status</th></tr>",
    );
    for w in &b.withdrawals {
        let s = &w.stages;
        let _ = write!(
            out,
            r#"<tr class="withdrawal" data-id="{}"><td>{}</td><td>{}</td><td>{}</td><td class="stage" data-stage="requested">{}</td><td class="stage" data-stage="paying">{}</td><td class="stage" data-stage="paid">{}</td><td class="stage" data-stage="refunded">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            w.id,
            w.id,
            escape(&w.user.to_string()),
            w.sat,
            at(&s.requested),
            at(&s.paying),
            at(&s.paid),
            at(&s.refunded),
            sat(w.sent_sat),
            sat(w.fee_sat),
            escape(&w.status),
        );
    }
    out.push_str("</table><h2>Conservation</h2>");
    let c = &b.conservation;
    match &c.figures {
        Some(f) => {
            let _ = write!(
                out,
                r#"<table id="conservation" data-holds="{}"><tr><th>wallets</th><th>in flight</th><th>PBTC supply</th><th>SON reserve</th><th>deficit</th><th>checked after</th></tr><tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} blocks</td></tr></table>"#,
                c.holds,
                f.utxos_sat,
                f.in_flight_sat,
                f.pbtc_supply,
                f.books.reserve_sat(),
                f.deficit_sat,
                b.conservation_checks,
            );
        }
        None => {
            let _ = write!(
                out,
                r#"<p id="conservation" data-holds="false" class="broken">BROKEN: {}</p>"#,
                escape(c.broken.as_deref().unwrap_or("?"))
            );
        }
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#212121}\
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}\
.meta{color:#616161}.chart{display:block;margin:8px 0}\
.label,.tick{font:11px monospace;fill:#424242}.legend span{margin-right:14px}\
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}\
table{border-collapse:collapse;font:12px monospace}td,th{border:1px solid #e0e0e0;padding:2px 6px;text-align:right}\
th{background:#f5f5f5}tr.hostile{color:#9e9e9e}.broken,.failed{color:#c62828;font-weight:bold}";

/// Records what the browser laid out, for the browser test.
const SCRIPT: &str =
    "const drawn=s=>[...document.querySelectorAll(s)].filter(e=>e.getBBox().width>0).length;\
document.body.dataset.renderedSonRows=drawn('.son-row');\
document.body.dataset.renderedProposals=drawn('rect.proposal');";

/// The page for `report`.
pub fn render(r: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let axis = Axis { from: r.genesis.unix, to: r.head.unix.max(r.genesis.unix + 1) };
    let held = r.expectations.iter().filter(|x| x.holds).count();
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>sonprop: {name}</title><style>{STYLE}</style></head><body><h1>Scenario {name}</h1><p class="meta">seed {seed} · {height} blocks to {head} ({time}) · state hash <code>{hash}</code></p>"#,
        name = escape(&r.scenario),
        seed = r.seed,
        height = r.height,
        head = r.head.offset,
        time = r.head.time,
        hash = r.state_hash,
    );
    let _ = write!(
        out,
        r#"<p class="meta" id="expectations" data-held="{held}" data-of="{}">expectations: {held} of {} hold</p>"#,
        r.expectations.len(),
        r.expectations.len()
    );
    if held < r.expectations.len() {
        out.push_str("<ul>");
        for x in r.expectations.iter().filter(|x| !x.holds) {
            let _ = write!(
                out,
                r#"<li class="failed">{}</li>"#,
                escape(x.failure.as_deref().unwrap_or(&x.expectation))
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("<h2>SONs</h2>");
    son_strip(r, &axis, &mut out);
    let _ = write!(out, "<h2>Proposals ({})</h2>", r.proposals.len());
    proposal_chart(r, &axis, &mut out);
    out.push_str(r#"<p class="legend">"#);
    for o in [Outcome::Executed, Outcome::Expired, Outcome::Failed, Outcome::Deleted, Outcome::Live]
    {
        let _ = write!(
            out,
            r#"<span><i style="background:{}"></i>{}</span>"#,
            outcome_colour(o),
            format!("{o:?}").to_lowercase()
        );
    }
    out.push_str("</p>");
    if let Some(b) = &r.bitcoin {
        bridge(b, &mut out);
    }
    let _ = writeln!(out, "<script>{SCRIPT}</script></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn the_axis_maps_genesis_to_its_start_and_the_head_to_its_end() {
        let axis = Axis { from: 100, to: 200 };
        assert_eq!(axis.x(100), LABEL);
        assert_eq!(axis.x(150), LABEL + AXIS / 2.0);
        assert_eq!(axis.x(200), LABEL + AXIS);
        assert_eq!(axis.x(50), LABEL, "clamped");
        assert_eq!(axis.x(900), LABEL + AXIS, "clamped");
    }
}
