//! Invariants: properties of the chain state an operation crate promises after every block (a
//! conservation equation, say). A crate declares them in its `Plugin`; the simulator and the
//! test kit check every registered one after every block, and a broken one stops them, naming
//! the crate, the invariant and the block.

use crate::chain::model::State;

/// One invariant of a crate.
#[derive(Debug, Clone, Copy)]
pub struct Invariant {
    /// Its name, within its crate.
    pub name: &'static str,
    /// Whether it holds on `state`; the message says how it is broken.
    pub check: fn(&State) -> Result<(), String>,
    /// What the check reads, as a fingerprint of the state (the generations of the tables it
    /// reads, say): while it is unchanged the check gives the same answer and is skipped.
    /// `None`: checked after every block.
    pub reads: Option<fn(&State) -> Vec<u64>>,
}

/// An invariant found broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invariant `{name}` of {plugin} is broken: {message}")]
pub struct InvariantBroken {
    /// The crate that declared it.
    pub plugin: &'static str,
    /// The invariant.
    pub name: &'static str,
    /// How it is broken.
    pub message: String,
}

/// Checks a registry's invariants block after block, skipping those whose inputs did not
/// change since they last held.
#[derive(Debug, Default, Clone)]
pub struct InvariantWatch {
    /// Per invariant, the fingerprint it last held at.
    held_at: Vec<Option<Vec<u64>>>,
    /// Checks run (not skipped).
    checked: u64,
}

impl InvariantWatch {
    /// Checks `invariants` (each with its crate's name) on `state`: the first broken one.
    pub fn check(
        &mut self,
        invariants: &[(&'static str, Invariant)],
        state: &State,
    ) -> Result<(), InvariantBroken> {
        self.held_at.resize(invariants.len(), None);
        for ((plugin, inv), held_at) in invariants.iter().zip(&mut self.held_at) {
            let reads = inv.reads.map(|f| f(state));
            if reads.is_some() && *held_at == reads {
                continue;
            }
            self.checked += 1;
            // A check that panics is a broken check, reported as such, never a crash.
            let run = std::panic::AssertUnwindSafe(|| (inv.check)(state));
            let held = std::panic::catch_unwind(run).unwrap_or_else(|payload| {
                Err(format!(
                    "its check panicked: {}",
                    crate::chain::panic::panic_message(&*payload)
                ))
            });
            held.map_err(|message| InvariantBroken { plugin, name: inv.name, message })?;
            *held_at = reads;
        }
        Ok(())
    }

    /// How many checks ran (skipped ones not counted).
    pub fn checked(&self) -> u64 {
        self.checked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    static CALLS: AtomicU64 = AtomicU64::new(0);

    fn counted(_: &State) -> Result<(), String> {
        CALLS.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn broken(_: &State) -> Result<(), String> {
        Err("2 + 2 = 5".into())
    }

    fn panics(_: &State) -> Result<(), String> {
        panic!("index out of bounds")
    }

    fn head(st: &State) -> Vec<u64> {
        vec![st.head_height()]
    }

    #[test]
    fn an_invariant_is_checked_again_only_when_what_it_reads_changed_and_a_broken_one_is_named() {
        let st = crate::testkit::TestNetwork::builder()
            .witnesses(1)
            .sons(1)
            .build(crate::Registry::builder().build().expect("empty").into_arc());
        let st = st.ledger.state();
        let skipped = Invariant { name: "skipped", check: counted, reads: Some(head) };
        let always = Invariant { name: "always", check: counted, reads: None };
        let mut watch = InvariantWatch::default();
        let before = CALLS.load(Ordering::SeqCst);
        for _ in 0..3 {
            watch.check(&[("a", skipped), ("b", always)], st).expect("holds");
        }
        // Once for `skipped` (its input never changed), three times for `always`.
        assert_eq!(CALLS.load(Ordering::SeqCst) - before, 4);
        assert_eq!(watch.checked(), 4);
        let bad = Invariant { name: "sums", check: broken, reads: None };
        let e = watch.check(&[("a", skipped), ("c", bad)], st).expect_err("broken");
        assert_eq!(e.to_string(), "invariant `sums` of c is broken: 2 + 2 = 5");
        let bad = Invariant { name: "indexing", check: panics, reads: None };
        let e = watch.check(&[("d", bad)], st).expect_err("a panic is a broken check");
        assert_eq!(
            e.to_string(),
            "invariant `indexing` of d is broken: its check panicked: index out of bounds"
        );
    }
}
