//! The operation: what goes on chain, and what executing it does.

use serde::{Deserialize, Serialize};
use sonprop_core::{
    AccountId, ApplyContext, LedgerEvent, Operation, OperationError, SonId, State, Subject,
    Timestamp,
};

use crate::rule::{announced_key, check_notice};
use crate::KIND;

/// Announces that `son`'s key on `sidechain` expires at `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SonKeyExpiryNotice {
    /// The SON.
    pub son: SonId,
    /// The sidechain, e.g. `bitcoin`.
    pub sidechain: String,
    /// When the key expires.
    pub expires_at: Timestamp,
}

#[typetag::serde(name = "son_key_expiry_notice")]
impl Operation for SonKeyExpiryNotice {
    fn kind(&self) -> &'static str {
        KIND
    }

    /// One live notice per SON and sidechain.
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named(announced_key(self.son, &self.sidechain)))
    }

    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }

    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_notice(state, self.son, &self.sidechain, self.expires_at)
            .map_err(|e| OperationError::rule(KIND, e))
    }

    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        ctx.emit(LedgerEvent::Notice {
            kind: KIND.to_owned(),
            subject: self.subject(),
            message: format!("{} key expires at {}", self.sidechain, self.expires_at),
        });
        // Remembered on chain, so the same expiry is announced once.
        let key = announced_key(self.son, &self.sidechain);
        ctx.put_extension(KIND, key, Some(&self.expires_at))
    }
}
