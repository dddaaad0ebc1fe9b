//! `sonprop explain`: why a proposal about a subject was or was not raised at a given block,
//! and why each node approved or abstained.
//!
//! The chain answers for each proposable kind through `State::explain` (the kind's own rule,
//! the guard deferring it, the live proposal); the run's proposal log adds who raised each
//! proposal, who approved it and which validators abstained, with their reasons.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;
use sonprop_core::chain::lifecycle;
use sonprop_core::{ProposalId, Readiness, Subject, Timestamp};

use crate::cli::format_elapsed;
use crate::json::Time;
use crate::report::{Outcome, ProposalEntry};
use crate::scenario::Scenario;
use crate::sim::{Entry, Observer, Options, Simulation};

/// `sonprop explain`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// What to explain: a SON (`1.33.3`), a proposal (`1.10.0`), or any other subject by name.
    pub subject: String,
    /// The scenario of the run (the built-in one if none).
    pub scenario: Option<PathBuf>,
    /// Replay the scenario to this point, as `T+06:00`, `T+1d02:00:00` or a duration (`6h`);
    /// without it, to the end of the scenario.
    #[arg(long, value_name = "T+OFFSET", conflicts_with = "data_dir")]
    pub at: Option<String>,
    /// Explain the run kept in this directory, at its head block (nothing is simulated).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The whole answer: the `explain` document of [`crate::json`]'s convention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// `explain`.
    pub document: &'static str,
    /// [`crate::json::FORMAT_VERSION`].
    pub format_version: u32,
    /// The subject explained.
    pub subject: String,
    /// The block the answer is about.
    pub height: u64,
    /// Its time.
    pub head: Time,
    /// The SON, when the subject is one.
    pub son: Option<SonFacts>,
    /// Each proposable kind that can speak about the subject.
    pub kinds: Vec<KindStory>,
    /// Every proposal about the subject so far, in id order.
    pub proposals: Vec<crate::json::Proposal>,
    /// The Bitcoin bridge's alarms at that block (the circuit breaker pausing deposits and
    /// withdrawals, a reserve too short for the next sweep), when the scenario has a bridge.
    pub bridge_alarms: Vec<String>,
}

/// What the chain holds about a SON: the SON as every document gives it, with its election
/// and pay in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SonFacts {
    /// The SON.
    #[serde(flatten)]
    pub son: crate::json::Son,
    /// Whether it is in the elected set.
    pub elected: bool,
    /// Its votes.
    pub votes: u64,
    /// Why it was or was not elected.
    pub election: String,
    /// Its pay.
    pub pay: String,
}

/// Where a kind stands for the subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KindVerdict {
    /// Its rule holds and nothing holds it back.
    Due,
    /// Its rule will hold at `due_at`.
    NotDueYet,
    /// Its rule does not hold.
    NotDue,
    /// Its rule holds, but a guard defers it.
    Deferred,
    /// A proposal of it is live.
    Live,
    /// The kind does not say.
    Unknown,
}

/// One kind's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindStory {
    /// The kind.
    pub kind: String,
    /// Where it stands.
    pub verdict: KindVerdict,
    /// When it became or becomes due, if the rule can tell.
    pub due_at: Option<Time>,
    /// Seconds until then, when that is in the future.
    pub due_in_s: Option<u64>,
    /// The rule or the reason, in words.
    pub why: String,
    /// The guard deferring it.
    pub deferred_by: Option<String>,
    /// The live proposal, if one is raised.
    pub live_proposal: Option<String>,
}

/// Reads `T+06:00`, `T+06:00:00`, `T+1d02:00:00` or a duration such as `6h`, in seconds.
pub fn parse_offset(text: &str) -> Result<u64, String> {
    let bad =
        || format!("`{text}`: expected T+hh:mm[:ss], T+<d>dhh:mm[:ss] or a duration such as 6h");
    let t = text.trim();
    let Some(rest) = t.strip_prefix("T+") else {
        return crate::duration::Duration::parse(t).map(|d| d.0).map_err(|e| e.to_string());
    };
    let (days, clock) = match rest.split_once('d') {
        Some((d, c)) => (d.parse::<u64>().map_err(|_| bad())?, c),
        None => (0, rest),
    };
    let parts: Vec<u64> =
        clock.split(':').map(|p| p.parse::<u64>().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let (h, m, s) = match parts.as_slice() {
        [h, m] => (*h, *m, 0),
        [h, m, s] => (*h, *m, *s),
        _ => return Err(bad()),
    };
    if m >= 60 || s >= 60 {
        return Err(bad());
    }
    days.checked_mul(86_400)
        .and_then(|d| h.checked_mul(3600).and_then(|h| d.checked_add(h)))
        .and_then(|v| v.checked_add(m * 60 + s))
        .ok_or_else(bad)
}

struct Silent;
impl Observer for Silent {
    fn entry(&mut self, _: Entry) {}
}

/// Runs `sonprop explain`.
pub fn explain(
    host: &crate::host::Host,
    a: &ExplainArgs,
    out: &mut dyn Write,
) -> Result<(), (i32, String)> {
    use crate::cli::{EXIT_FAILURE, EXIT_USAGE};
    let scenario = match &a.scenario {
        Some(path) => Scenario::load(path).map_err(|e| (EXIT_USAGE, e.to_string()))?,
        None => Scenario::built_in(),
    };
    let at = a.at.as_deref().map(parse_offset).transpose().map_err(|e| (EXIT_USAGE, e))?;
    if let Some(at) = at {
        if at > scenario.duration {
            return Err((
                EXIT_USAGE,
                format!(
                    "--at {}: after the end of scenario `{}` ({})",
                    format_elapsed(at),
                    scenario.name,
                    crate::duration::Duration(scenario.duration)
                ),
            ));
        }
    }
    let registry = host.registry(scenario.bitcoin.is_some()).map_err(|e| (EXIT_FAILURE, e))?;
    let registry = registry.into_arc();
    let options = Options {
        services: host.services(),
        bitcoin_script_check: Some(crate::bridge::consensus_check()),
        data_dir: a.data_dir.clone(),
        fsync_every: crate::cli::DEFAULT_FSYNC_EVERY,
        force: true,
        ..Options::default()
    };
    let mut sim =
        Simulation::new(&scenario, registry, &options).map_err(|e| (EXIT_USAGE, e.to_string()))?;
    if a.data_dir.is_none() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| (EXIT_FAILURE, format!("cannot start the runtime: {e}")))?;
        let until = at.unwrap_or(scenario.duration);
        runtime.block_on(async {
            while sim.ledger().state().next_slot_time().since(scenario.genesis_time) <= until {
                if !sim.step(&mut Silent).await.map_err(|e| (EXIT_FAILURE, e.to_string()))? {
                    break;
                }
            }
            Ok::<(), (i32, String)>(())
        })?;
    }
    let e = explanation(&sim, &scenario, &a.subject);
    if !exists(&sim, &e) {
        return Err((
            EXIT_USAGE,
            format!(
                "no such subject `{}` at block {}: not a SON, an account, a proposal, a bridge \
                 deposit, withdrawal or sidechain transaction, nor anything a proposal of this \
                 run named",
                a.subject, e.height
            ),
        ));
    }
    if a.json {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&e).unwrap_or_default());
    } else {
        print(&e, out);
    }
    Ok(())
}

/// Whether the chain or the run knows the subject of `e`: a SON, an account, a proposal,
/// something a proposal of the run named, or something a kind's rule speaks of (a bridge
/// deposit, withdrawal or sidechain transaction the chain holds is one: the Bitcoin kinds
/// answer about those, and are not about what the chain does not hold).
fn exists(sim: &Simulation, e: &Explanation) -> bool {
    let st = sim.ledger().state();
    let subject = e.subject.as_str();
    // A kind that answers about the subject knows it (one that is not about it says nothing).
    let said = e.kinds.iter().any(|k| k.verdict != KindVerdict::Unknown);
    let account = subject.parse::<sonprop_core::AccountId>().ok().and_then(|id| st.account(id));
    let proposal = subject.parse::<ProposalId>().ok().and_then(|id| st.proposal(id));
    e.son.is_some() || !e.proposals.is_empty() || said || account.is_some() || proposal.is_some()
}

/// The explanation of `subject` at the simulation's head block.
pub fn explanation(sim: &Simulation, scenario: &Scenario, subject: &str) -> Explanation {
    let st = sim.ledger().state();
    let genesis = scenario.genesis_time;
    let when = |t: Timestamp| Time::at(genesis.secs(), t.secs());
    let log: Vec<&ProposalEntry> = sim.proposal_log().entries().collect();
    // A proposal id stands for its own subject.
    let subject: Subject = match subject.parse::<ProposalId>() {
        Ok(id) => log
            .iter()
            .find(|p| p.id == id.to_string())
            .and_then(|p| p.subject.as_deref())
            .map_or_else(
                || Subject::Named(subject.to_owned()),
                |s| s.parse().unwrap_or_else(|e| match e {}),
            ),
        Err(_) => subject.parse().unwrap_or_else(|e| match e {}),
    };
    let son = subject.son().and_then(|id| st.son(id)).map(|s| SonFacts {
        son: crate::json::son(st, s),
        elected: st.is_elected(s.id),
        votes: s.votes,
        election: lifecycle::election_story(st, s.id, &|t| format_elapsed(t.since(genesis))),
        pay: lifecycle::pay_story(st, s.id, &|t| format_elapsed(t.since(genesis))),
    });
    let head = st.head_time();
    let kinds = st
        .registry()
        .operations()
        .filter_map(|d| st.explain(d.name, &subject))
        .filter(|k| k.readiness.is_some() || k.live.is_some() || k.deferred.is_some())
        .map(|k| {
            let live_proposal = k.live.map(|p| p.to_string());
            let deferred_by = k.deferred.as_ref().map(|(g, r)| format!("guard `{g}`: {r}"));
            let (mut verdict, due_at, why) = match &k.readiness {
                Some(Readiness::Due { since, why }) => (KindVerdict::Due, *since, why.clone()),
                Some(Readiness::DueAt { at, why }) => {
                    (KindVerdict::NotDueYet, Some(*at), why.clone())
                }
                Some(Readiness::NotDue { why }) => (KindVerdict::NotDue, None, why.clone()),
                Some(Readiness::NotAbout) | None => {
                    (KindVerdict::Unknown, None, "the kind does not say when it is due".to_owned())
                }
            };
            if deferred_by.is_some() && verdict == KindVerdict::Due {
                verdict = KindVerdict::Deferred;
            }
            if live_proposal.is_some() {
                verdict = KindVerdict::Live;
            }
            KindStory {
                kind: k.kind.to_owned(),
                verdict,
                due_in_s: due_at.filter(|t| *t > head).map(|t| t.since(head)),
                due_at: due_at.map(when),
                why,
                deferred_by,
                live_proposal,
            }
        })
        .collect();
    let subject_text = subject.to_string();
    let account = |id: &str| sim.account(id);
    let proposals = log
        .iter()
        .filter(|p| p.subject.as_deref() == Some(subject_text.as_str()))
        .map(|p| crate::json::Proposal::of(p, genesis.secs(), &account))
        .collect();
    let bridge_alarms = match scenario.bitcoin {
        Some(_) => sonprop_bitcoin::reconcile::alarms(st),
        None => Vec::new(),
    };
    Explanation {
        document: "explain",
        format_version: crate::json::FORMAT_VERSION,
        subject: subject_text,
        height: st.head_height(),
        head: when(head),
        son,
        kinds,
        proposals,
        bridge_alarms,
    }
}

fn span(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) => format!("{m} m {s} s"),
        _ => format!("{h} h {m} m"),
    }
}

fn print(e: &Explanation, out: &mut dyn Write) {
    let _ =
        writeln!(out, "{} at block {}, {} ({})", e.subject, e.height, e.head.time, e.head.offset);
    for a in &e.bridge_alarms {
        let _ = writeln!(out, "  bridge ALARM: {a}");
    }
    if let Some(s) = &e.son {
        let mut line = format!(
            "  son: {}{}, last heartbeat {}",
            s.son.status,
            if s.elected { ", elected" } else { "" },
            s.son.last_heartbeat.offset
        );
        if let Some(d) = &s.son.down_since {
            line += &format!(", down since {}", d.offset);
        }
        if let Some(d) = &s.son.deregistered {
            line += &format!(", deregistered at {}", d.offset);
        }
        let _ = writeln!(out, "{line}");
        let _ = writeln!(out, "  election: {}", s.election);
        let _ = writeln!(out, "  pay: {}", s.pay);
    }
    for k in &e.kinds {
        let at = k.due_at.as_ref().map(|w| w.offset.as_str()).unwrap_or("?");
        let text = match k.verdict {
            KindVerdict::Due if k.due_at.is_none() => format!("due ({})", k.why),
            KindVerdict::Due => format!("due since {at} ({})", k.why),
            KindVerdict::NotDueYet => format!(
                "not due yet: due at {at} ({}); {} to go",
                k.why,
                span(k.due_in_s.unwrap_or(0))
            ),
            KindVerdict::Deferred => format!(
                "due since {at} but deferred by {}",
                k.deferred_by.as_deref().unwrap_or("a guard")
            ),
            KindVerdict::Live => {
                format!("proposal {} is live", k.live_proposal.as_deref().unwrap_or("?"))
            }
            KindVerdict::NotDue => format!("not due: {}", k.why),
            KindVerdict::Unknown => k.why.clone(),
        };
        let _ = writeln!(out, "  {}: {text}", k.kind);
    }
    if e.proposals.is_empty() {
        let _ = writeln!(out, "  no proposal about it so far");
    }
    for p in &e.proposals {
        let ended = match (&p.outcome, &p.ended) {
            (Outcome::Live, _) | (_, None) => "still live".to_owned(),
            (o, Some(w)) => format!("{} at {}", format!("{o:?}").to_lowercase(), w.offset),
        };
        let _ = writeln!(
            out,
            "  proposal {} {}: raised at {} by {}; {ended}",
            p.id, p.kind, p.created.offset, p.proposer
        );
        if !p.approvers.is_empty() {
            let names: Vec<String> = p.approvers.iter().map(ToString::to_string).collect();
            let _ = writeln!(out, "    approved by {}: {}", names.len(), names.join(", "));
        }
        for a in &p.abstentions {
            let _ = writeln!(out, "    {} abstained: {}", a.node, a.why);
        }
        if let Some(why) = &p.expired_needing {
            let _ = writeln!(out, "    when it expired: {why}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_in_every_spelling() {
        assert_eq!(parse_offset("T+06:00"), Ok(6 * 3600));
        assert_eq!(parse_offset("T+13:00:30"), Ok(13 * 3600 + 30));
        assert_eq!(parse_offset("T+1d02:00:00"), Ok(86_400 + 7200));
        assert_eq!(parse_offset("6h"), Ok(6 * 3600));
        for bad in ["T+6", "T+06:61", "T+xx:00", "soon", "T+1d"] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
    }
}
