//! Folding repetition out of the timeline: when SON proposals of one kind about one subject
//! keep expiring unexecuted (a stopped SON's report-down while too few SONs are live, say),
//! the first cycle is printed whole and the ones after it become one line, printed when the
//! run of them ends (a proposal that does not expire, or the end of the simulation).
//!
//! Lines of a proposal raised while such a run is going on are held back until it ends: if
//! it expires unexecuted too it joins the fold; if it executes, fails or is deleted, its lines
//! come out as they happened, then the fold's line, then how it ended, so the timeline stays
//! in block order.

use std::collections::BTreeMap;

use sonprop_core::ProposalId;

use crate::cli::format_elapsed;
use crate::sim::{Entry, Observer};

/// What a timeline line says about a proposal, for folding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Raised, as `kinds for subject` (SON proposals only: they have a subject).
    Raised(String),
    /// Approved by nodes in this block.
    Approved,
    /// Expired unexecuted with this many approvals, and what the authority needed then.
    Expired(u32, Option<String>),
    /// Executed, failed or deleted.
    Ended,
}

/// A timeline line's tag: the proposal it is about, and what it says of it (`None`: not a
/// proposal's line).
pub type Tag = Option<(ProposalId, Phase)>;

/// Proposals expired unexecuted, one after another, of one kind about one subject.
#[derive(Debug, Clone)]
struct Run {
    /// The folded proposals: first and last.
    first: Option<ProposalId>,
    last: Option<ProposalId>,
    count: u32,
    /// When the first folded one was raised and the last one expired (seconds from genesis).
    from: u64,
    to: u64,
    /// Fewest and most approvals any held.
    approvals: (u32, u32),
    /// What the authority needed at the last expiry.
    needing: Option<String>,
}

/// The timeline's folding state (node-local to the simulator; never part of chain state).
#[derive(Debug, Default)]
pub struct Fold {
    /// `kinds for subject` of each proposal printed whole and not ended.
    open: BTreeMap<ProposalId, String>,
    /// Runs under way, by `kinds for subject`.
    runs: BTreeMap<String, Run>,
    /// Lines held back of proposals raised during a run.
    held: BTreeMap<ProposalId, (String, Vec<Entry>)>,
}

impl Fold {
    /// Passes `entry` on to `out`, or holds or folds it, by what it says about `proposal`.
    pub fn entry(
        &mut self,
        tag: Option<(ProposalId, Phase)>,
        entry: Entry,
        out: &mut dyn Observer,
    ) {
        let Some((p, phase)) = tag else { return out.entry(entry) };
        match phase {
            Phase::Raised(key) => {
                if self.runs.contains_key(&key) {
                    self.held.insert(p, (key, vec![entry]));
                } else {
                    self.open.insert(p, key);
                    out.entry(entry);
                }
            }
            Phase::Approved => match self.held.get_mut(&p) {
                Some((_, lines)) => lines.push(entry),
                None => out.entry(entry),
            },
            Phase::Expired(approvals, needing) => {
                if let Some((key, lines)) = self.held.remove(&p) {
                    let raised = lines.first().map_or(entry.elapsed, |l| l.elapsed);
                    if let Some(run) = self.runs.get_mut(&key) {
                        if run.count == 0 {
                            run.from = raised;
                            run.first = Some(p);
                            run.approvals = (approvals, approvals);
                        }
                        run.count += 1;
                        run.last = Some(p);
                        run.to = entry.elapsed;
                        run.approvals =
                            (run.approvals.0.min(approvals), run.approvals.1.max(approvals));
                        run.needing = needing;
                    }
                    return;
                }
                out.entry(entry);
                if let Some(key) = self.open.remove(&p) {
                    let run = Run {
                        first: None,
                        last: None,
                        count: 0,
                        from: 0,
                        to: 0,
                        approvals: (0, 0),
                        needing: None,
                    };
                    self.runs.insert(key, run);
                }
            }
            Phase::Ended => {
                self.open.remove(&p);
                if let Some((key, lines)) = self.held.remove(&p) {
                    for l in lines {
                        out.entry(l);
                    }
                    if let Some(run) = self.runs.remove(&key) {
                        say(&key, &run, entry.height, entry.elapsed, out);
                    }
                }
                out.entry(entry);
            }
        }
    }

    /// The end of the run: the held lines of proposals still live, then each fold's line
    /// (so the timeline stays in block order).
    pub fn finish(&mut self, height: u64, elapsed: u64, out: &mut dyn Observer) {
        let mut held: Vec<Entry> =
            std::mem::take(&mut self.held).into_values().flat_map(|(_, lines)| lines).collect();
        held.sort_by_key(|l| l.height);
        for l in held {
            out.entry(l);
        }
        for (key, run) in std::mem::take(&mut self.runs) {
            say(&key, &run, height, elapsed, out);
        }
        self.open.clear();
    }
}

/// A fold's line, at `height` (when it is printed).
fn say(key: &str, run: &Run, height: u64, elapsed: u64, out: &mut dyn Observer) {
    if run.count == 0 {
        return;
    }
    let ids = match (run.first, run.last) {
        (Some(a), Some(b)) if a != b => format!("proposals {a} to {b}"),
        (Some(a), _) => format!("proposal {a}"),
        _ => "proposals".to_owned(),
    };
    let approvals = match run.approvals {
        (1, 1) => "1 approval".to_owned(),
        (a, b) if a == b => format!("{a} approvals"),
        (a, b) => format!("{a} to {b} approvals"),
    };
    let more = if run.count == 1 { "once more" } else { "more times" };
    let times = if run.count == 1 { String::new() } else { format!(" ×{}", run.count) };
    let mut text = format!(
        "{key}: raised and expired unexecuted{times} {more} ({ids}, from {} to {}), with {approvals}",
        format_elapsed(run.from),
        format_elapsed(run.to),
    );
    if let Some(n) = &run.needing {
        text += &format!("; {n}");
    }
    out.entry(Entry { height, elapsed, text });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(height: u64, text: &str) -> Entry {
        Entry { height, elapsed: height * 3, text: text.to_owned() }
    }

    fn p(n: u64) -> ProposalId {
        ProposalId(n)
    }

    const KEY: &str = "son_report_down for 1.33.2";
    const WHY: &str = "approvals needed: none suffice";

    /// Three cycles that expire, then one that executes: the first cycle whole, the next two
    /// as one line, then the executed one whole; nothing lost, nothing out of order.
    #[test]
    fn expiring_cycles_fold_into_one_line_and_the_cycle_that_passes_is_shown_whole() {
        let mut fold = Fold::default();
        let mut out: Vec<Entry> = Vec::new();
        let needing = || Some(WHY.to_owned());
        for n in 0..3u64 {
            let h = n * 10;
            fold.entry(Some((p(n), Phase::Raised(KEY.into()))), e(h, "raised"), &mut out);
            fold.entry(Some((p(n), Phase::Approved)), e(h + 1, "approved"), &mut out);
            fold.entry(Some((p(n), Phase::Expired(4, needing()))), e(h + 2, "expired"), &mut out);
            fold.entry(None, e(h + 3, "other"), &mut out);
        }
        fold.entry(Some((p(3), Phase::Raised(KEY.into()))), e(40, "raised 3"), &mut out);
        fold.entry(Some((p(3), Phase::Ended)), e(41, "executed 3"), &mut out);
        let texts: Vec<&str> = out.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "raised",
                "approved",
                "expired",
                "other",
                "other",
                "other",
                "raised 3",
                &format!(
                    "{KEY}: raised and expired unexecuted ×2 more times (proposals 1.10.1 to \
                     1.10.2, from T+00:00:30 to T+00:01:06), with 4 approvals; {WHY}"
                ),
                "executed 3",
            ]
        );
        assert!(out.windows(2).all(|w| w[0].height <= w[1].height), "in block order");
        // The run ended with the executed proposal: nothing left to say.
        fold.finish(50, 150, &mut out);
        assert_eq!(out.len(), 9, "nothing left to say");
    }

    /// A fold whose proposals held different numbers of approvals gives the range.
    #[test]
    fn a_fold_gives_the_range_of_approvals_its_proposals_held() {
        let mut fold = Fold::default();
        let mut out: Vec<Entry> = Vec::new();
        for (n, approvals) in [(0u64, 4u32), (1, 3), (2, 4), (3, 1)] {
            fold.entry(Some((p(n), Phase::Raised(KEY.into()))), e(n * 10, "raised"), &mut out);
            fold.entry(Some((p(n), Phase::Expired(approvals, None))), e(n * 10 + 2, "x"), &mut out);
        }
        fold.finish(40, 120, &mut out);
        let last = out.last().map(|e| e.text.as_str()).unwrap_or_default();
        assert!(last.ends_with("with 1 to 4 approvals"), "{last}");
        assert!(last.contains("×3 more times (proposals 1.10.1 to 1.10.3"), "{last}");
    }

    /// At the end, a run's line comes out, then a proposal still live with its lines; another
    /// subject is never folded into it.
    #[test]
    fn the_end_of_the_run_says_what_was_folded_and_what_is_still_live() {
        let mut fold = Fold::default();
        let mut out: Vec<Entry> = Vec::new();
        for n in 0..2u64 {
            fold.entry(Some((p(n), Phase::Raised(KEY.into()))), e(n * 10, "raised"), &mut out);
            fold.entry(Some((p(n), Phase::Expired(3, None))), e(n * 10 + 2, "expired"), &mut out);
        }
        let other = "son_report_down for 1.33.4";
        fold.entry(Some((p(7), Phase::Raised(other.into()))), e(21, "other raised"), &mut out);
        fold.entry(Some((p(8), Phase::Raised(KEY.into()))), e(22, "raised 8"), &mut out);
        fold.entry(Some((p(8), Phase::Approved)), e(23, "approved 8"), &mut out);
        fold.finish(30, 90, &mut out);
        assert!(out.windows(2).all(|w| w[0].height <= w[1].height), "in block order");
        let texts: Vec<&str> = out.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "raised",
                "expired",
                "other raised",
                "raised 8",
                "approved 8",
                &format!(
                    "{KEY}: raised and expired unexecuted once more (proposal 1.10.1, from \
                     T+00:00:30 to T+00:00:36), with 3 approvals"
                ),
            ]
        );
    }
}
