//! The operation: what goes on chain, and what executing it does; the table that remembers
//! what was announced, and the event it reports.

use serde::{Deserialize, Serialize};
use sonprop_core::{
    AccountId, ApplyContext, ChainEvent, Eligibility, Operation, OperationError, ProposalPolicy,
    SonId, State, Subject, TableSchema, Timestamp,
};

use crate::rule::check_notice;
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

/// The expiries announced so far, by `(SON, sidechain)`: the same expiry is announced once.
pub struct Announced;

impl TableSchema for Announced {
    const NAME: &'static str = "son_key_expiry_notice.announced";
    type Key = (SonId, String);
    type Value = Timestamp;
}

/// Reported when a notice executes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ChainEvent)]
#[event(
    kind = KIND,
    name = "announced",
    display = "son {son}: {sidechain} key expires at {expires_at}"
)]
pub struct KeyExpiryAnnounced {
    /// The SON.
    pub son: SonId,
    /// The sidechain.
    pub sidechain: String,
    /// When the key expires.
    pub expires_at: Timestamp,
}

/// The kind, declared once: its name, what it is, who may propose it and for how long.
#[sonprop_core::operation(
    name = "son_key_expiry_notice",
    description = "announce that a SON's sidechain key expires soon",
    proposal = ProposalPolicy {
        son_record: true,
        eligible: Eligibility::WitnessOrSon,
        lifetime: |state| state.witness_cycles_lifetime(3),
        readiness: None,
    },
    example = SonKeyExpiryNotice {
        son: SonId(3),
        sidechain: "bitcoin".into(),
        expires_at: Timestamp(1_767_830_400),
    }
)]
impl Operation for SonKeyExpiryNotice {
    /// One live notice per SON and sidechain.
    fn subject(&self) -> Option<Subject> {
        Some(Subject::Named(format!("{}/{}", self.son, self.sidechain)))
    }

    fn required_authorities(&self) -> Vec<AccountId> {
        vec![AccountId::SON_CONSENSUS]
    }

    fn check(&self, state: &State) -> Result<(), OperationError> {
        check_notice(state, self.son, &self.sidechain, self.expires_at)
            .map_err(|e| OperationError::rule(KIND, e))
    }

    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<(), OperationError> {
        ctx.emit_event(&KeyExpiryAnnounced {
            son: self.son,
            sidechain: self.sidechain.clone(),
            expires_at: self.expires_at,
        });
        ctx.put_row::<Announced>(&(self.son, self.sidechain.clone()), Some(self.expires_at))
    }
}
