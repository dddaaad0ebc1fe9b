//! The node-local half: a trigger and a validator that consult an external source.

use std::collections::BTreeMap;
use std::sync::Arc;

use sonprop_core::{
    async_trait, NodeIdentity, PluginError, Proposal, ProposalDraft, SonId, State, Timestamp,
    Trigger, TriggerOutput, Validator, Verdict,
};

use crate::rule::check_notice;
use crate::SonKeyExpiryNotice;

/// Where a node learns when SON keys expire (a key manager, a certificate store, …). Declared
/// external input of the trigger and validator: node-local, never read on chain.
pub trait KeyExpirySource: Send + Sync {
    /// When `son`'s key on `sidechain` expires, if known.
    fn expiry(&self, son: SonId, sidechain: &str) -> Option<Timestamp>;
}

/// The node service the trigger and validator are built from: each node gets its own.
pub type ExpirySource = Arc<dyn KeyExpirySource>;

/// A source backed by a fixed table (tests, simulations, static configuration).
#[derive(Debug, Clone, Default)]
pub struct FixedExpiries(pub BTreeMap<(SonId, String), Timestamp>);

impl KeyExpirySource for FixedExpiries {
    fn expiry(&self, son: SonId, sidechain: &str) -> Option<Timestamp> {
        self.0.get(&(son, sidechain.to_owned())).copied()
    }
}

/// Drafts a notice for every elected SON key that its source says expires within the window.
#[derive(Clone)]
pub struct NoticeTrigger(pub ExpirySource);

#[async_trait]
impl Trigger for NoticeTrigger {
    async fn drafts(&self, state: &State, _: &NodeIdentity) -> Result<TriggerOutput, PluginError> {
        let mut drafts = Vec::new();
        // The elected set is small (at most maximum_son_count): no scan over all SONs.
        for son in state.globals().elected_sons.iter().filter_map(|id| state.son(*id)) {
            for sidechain in son.sidechain_public_keys.keys() {
                let Some(expires_at) = self.0.expiry(son.id, sidechain) else {
                    continue;
                };
                if check_notice(state, son.id, sidechain, expires_at).is_ok() {
                    let op = SonKeyExpiryNotice {
                        son: son.id,
                        sidechain: sidechain.clone(),
                        expires_at,
                    };
                    drafts.push(ProposalDraft::new(op));
                }
            }
        }
        Ok(drafts.into())
    }
}

/// Approves a notice when the on-chain rule holds and this node's own source agrees.
#[derive(Clone)]
pub struct NoticeValidator(pub ExpirySource);

#[async_trait]
impl Validator for NoticeValidator {
    async fn review(
        &self,
        state: &State,
        proposal: &Proposal,
        _: &NodeIdentity,
    ) -> Result<Verdict, PluginError> {
        let Some(op) = proposal.only::<SonKeyExpiryNotice>() else {
            return Err(PluginError::msg("not a son_key_expiry_notice proposal"));
        };
        if let Err(e) = check_notice(state, op.son, &op.sidechain, op.expires_at) {
            return Ok(Verdict::Abstain(e.to_string()));
        }
        Ok(match self.0.expiry(op.son, &op.sidechain) {
            Some(t) if t == op.expires_at => Verdict::Approve,
            Some(t) => Verdict::Abstain(format!("my source says the key expires at {t}")),
            None => Verdict::Abstain("my source does not know this key".into()),
        })
    }
}
