//! The on-chain rule, shared by the operation's check, the trigger and the validator.

use sonprop_core::{SonId, SonStatus, State, Timestamp};

use crate::{Announced, NoticeWindow};

/// Why a notice is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoticeError {
    /// No such SON, or it is deregistered.
    #[error("son {0} does not exist or is deregistered")]
    NoSuchSon(SonId),
    /// The SON has no key on that sidechain.
    #[error("son {son} has no key on sidechain `{sidechain}`")]
    NoKey {
        /// The SON.
        son: SonId,
        /// The sidechain.
        sidechain: String,
    },
    /// Already expired.
    #[error("the key already expired at {expires_at} (head time {head})")]
    Expired {
        /// The expiry.
        expires_at: Timestamp,
        /// Head time.
        head: Timestamp,
    },
    /// This very expiry was announced already.
    #[error("the expiry {expires_at} of son {son}'s `{sidechain}` key was already announced")]
    AlreadyAnnounced {
        /// The SON.
        son: SonId,
        /// The sidechain.
        sidechain: String,
        /// The expiry.
        expires_at: Timestamp,
    },
    /// Too early to announce.
    #[error("expiry {expires_at} is more than {window} s after head time {head}")]
    TooEarly {
        /// The expiry.
        expires_at: Timestamp,
        /// Head time.
        head: Timestamp,
        /// The notice window.
        window: u64,
    },
}

/// A notice about `son`'s key on `sidechain` expiring at `expires_at` is acceptable now.
pub fn check_notice(
    state: &State,
    son: SonId,
    sidechain: &str,
    expires_at: Timestamp,
) -> Result<(), NoticeError> {
    let s = state
        .son(son)
        .filter(|s| s.status != SonStatus::Deregistered)
        .ok_or(NoticeError::NoSuchSon(son))?;
    if !s.sidechain_public_keys.contains_key(sidechain) {
        return Err(NoticeError::NoKey { son, sidechain: sidechain.to_owned() });
    }
    let head = state.head_time();
    if expires_at <= head {
        return Err(NoticeError::Expired { expires_at, head });
    }
    let window = state.param::<NoticeWindow>();
    if expires_at.since(head) > window {
        return Err(NoticeError::TooEarly { expires_at, head, window });
    }
    let announced = state.row::<Announced>(&(son, sidechain.to_owned()));
    if announced == Some(&expires_at) {
        let sidechain = sidechain.to_owned();
        return Err(NoticeError::AlreadyAnnounced { son, sidechain, expires_at });
    }
    Ok(())
}
