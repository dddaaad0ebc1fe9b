//! Who holds a data directory, and taking it over from a process that died.
//!
//! The store's lock is the operating system's file lock, which a process loses when it ends,
//! however it ends. But a process killed with `kill -9` takes a moment to end, so a restart
//! typed at once can find the lock still held. The owner file (`process N since T`, written by
//! whoever opened the directory) says who held it: a directory whose holder has ended, or is
//! ending, is waited for and taken over; one held by a running process is refused, naming it.

use std::path::Path;
use std::time::Duration;

use sonprop_core::chain::store::StoreError;

/// The file in a data directory naming the process that has it open.
pub const OWNER_FILE: &str = "owner";

/// How long a locked directory is waited for before it is refused: long enough for a killed
/// process to end and release its lock.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// How often the lock is tried while waiting.
const POLL: Duration = Duration::from_millis(50);

/// The process the owner file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Its process id.
    pub pid: u32,
    /// The owner file's line, as written (`process 1234 since 2026-12-07T03:00:00Z`).
    pub line: String,
}

impl Owner {
    /// Parses an owner file's text; `None` if it names no process.
    pub fn parse(text: &str) -> Option<Owner> {
        let line = text.trim();
        let pid = line.strip_prefix("process ")?.split_whitespace().next()?.parse().ok()?;
        Some(Owner { pid, line: line.to_owned() })
    }

    /// The owner file of `dir`, if it names a process.
    pub fn of(dir: &Path) -> Option<Owner> {
        Owner::parse(&std::fs::read_to_string(dir.join(OWNER_FILE)).ok()?)
    }
}

/// Whether process `pid` is running: on Linux, read from `/proc` (a zombie, ended but not yet
/// reaped, has released its files and counts as ended); elsewhere it is taken as running.
pub fn running(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => !matches!(
            stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()),
            Some("Z" | "X" | "x")
        ),
        Err(_) => false,
    }
}

/// Why a data directory was not opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process holds it.
    #[error("it is in use by another process{}", match .0 { Some(o) => format!(" ({}, still running)", o.line), None => String::new() })]
    InUse(Option<Owner>),
    /// The store refused for another reason.
    #[error("{0}")]
    Store(StoreError),
}

/// Opens a store with `open`, waiting up to `patience` while it is locked (`sleep` waits, so
/// tests need not). A lock still held after that is refused, naming the owner when it runs.
/// When the owner has ended, the wait goes on as long again: its lock is being released.
pub fn open_taking_over<S>(
    mut open: impl FnMut() -> Result<S, StoreError>,
    owner: impl Fn() -> Option<Owner>,
    running: impl Fn(u32) -> bool,
    patience: Duration,
    mut sleep: impl FnMut(Duration),
) -> Result<S, OpenError> {
    let mut waited = Duration::ZERO;
    let mut said = false;
    loop {
        match open() {
            Ok(store) => {
                if said {
                    tracing::info!("the data directory's previous holder released it");
                }
                return Ok(store);
            }
            Err(StoreError::InUse { .. }) => {}
            Err(other) => return Err(OpenError::Store(other)),
        }
        let holder = owner();
        let ended = holder.as_ref().is_some_and(|o| !running(o.pid));
        let limit = if ended { patience * 2 } else { patience };
        if waited >= limit {
            return Err(OpenError::InUse(holder.filter(|o| running(o.pid))));
        }
        if !said {
            match &holder {
                Some(o) if ended => tracing::warn!(
                    "the data directory was held by {}, which has ended: taking it over",
                    o.line
                ),
                _ => tracing::warn!("the data directory is locked: waiting for it"),
            }
            said = true;
        }
        sleep(POLL);
        waited += POLL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn in_use() -> StoreError {
        StoreError::InUse { path: "chain.redb".into() }
    }

    fn owner() -> Option<Owner> {
        Owner::parse("process 4242 since 2026-12-07T03:00:00Z\n")
    }

    #[test]
    fn an_owner_line_names_its_process_and_anything_else_names_none() {
        let o = owner().expect("parsed");
        assert_eq!(o.pid, 4242);
        assert_eq!(o.line, "process 4242 since 2026-12-07T03:00:00Z");
        assert_eq!(Owner::parse("process x since y"), None);
        assert_eq!(Owner::parse("someone"), None);
        assert_eq!(Owner::parse(""), None);
    }

    #[test]
    fn this_process_runs_and_a_process_id_nobody_has_does_not() {
        assert!(running(std::process::id()));
        // Above the kernel's largest process id (2^22).
        assert!(!running(4_194_305));
    }

    #[test]
    fn a_lock_left_by_an_ended_process_is_waited_for_and_taken_over() {
        let tries = Cell::new(0u32);
        let slept = Cell::new(Duration::ZERO);
        let opened = open_taking_over(
            || {
                tries.set(tries.get() + 1);
                if tries.get() < 40 {
                    Err(in_use())
                } else {
                    Ok("store")
                }
            },
            owner,
            |_| false,
            Duration::from_secs(1),
            |d| slept.set(slept.get() + d),
        );
        // 39 refusals, 39 waits: longer than the patience, as the owner has ended.
        assert_eq!(opened.expect("taken over"), "store");
        assert_eq!(tries.get(), 40);
        assert_eq!(slept.get(), POLL * 39);
    }

    #[test]
    fn a_lock_held_by_a_running_process_is_refused_after_the_patience_naming_it() {
        let slept = Cell::new(Duration::ZERO);
        let refused = open_taking_over(
            || Err::<(), _>(in_use()),
            owner,
            |pid| pid == 4242,
            Duration::from_secs(1),
            |d| slept.set(slept.get() + d),
        );
        assert_eq!(slept.get(), Duration::from_secs(1));
        let e = refused.expect_err("refused");
        assert_eq!(
            e.to_string(),
            "it is in use by another process (process 4242 since 2026-12-07T03:00:00Z, still running)"
        );
    }

    #[test]
    fn a_lock_that_outlasts_its_ended_owner_is_refused_without_naming_it() {
        let slept = Cell::new(Duration::ZERO);
        let refused = open_taking_over(
            || Err::<(), _>(in_use()),
            owner,
            |_| false,
            Duration::from_secs(1),
            |d| slept.set(slept.get() + d),
        );
        assert_eq!(slept.get(), Duration::from_secs(2));
        assert_eq!(refused.expect_err("refused").to_string(), "it is in use by another process");
    }

    #[test]
    fn other_store_errors_are_not_waited_on() {
        let slept = Cell::new(Duration::ZERO);
        let refused = open_taking_over(
            || {
                Err::<(), _>(StoreError::Corrupt {
                    path: "chain.redb".into(),
                    detail: "bad page".into(),
                })
            },
            owner,
            |_| false,
            Duration::from_secs(1),
            |d| slept.set(slept.get() + d),
        );
        assert!(matches!(refused, Err(OpenError::Store(StoreError::Corrupt { .. }))));
        assert_eq!(slept.get(), Duration::ZERO);
    }
}
