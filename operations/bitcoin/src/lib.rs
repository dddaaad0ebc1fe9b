//! The Bitcoin sidechain: Peerplays' SON primary wallet (a weighted P2WSH multisig), rebuilt
//! when the elected SON set changes, with the old wallet's outputs swept to the new one by a
//! transaction the old SONs sign on chain; and the bridge: deposits to users' deposit addresses
//! credited as PBTC once swept into the wallet, withdrawals of PBTC paid from the wallet.
//!
//! - [`script`]: the wallet and deposit scripts and addresses, byte for byte as Peerplays builds
//!   them (pure functions).
//! - [`tx`]: deterministic transactions (a pure function of chain state and the proposal's fee
//!   rate), BIP143 signatures, the witness that spends the weighted script.
//! - [`state`]: the crate's tables (wallet history, the wallets' outputs, sidechain
//!   transactions with their signatures) and parameters.
//! - [`ops`]: `bitcoin_wallet_update` (a SON proposal), `bitcoin_tx_sign` (a SON's signatures,
//!   verified by the ledger), `bitcoin_tx_fail`, `bitcoin_tx_sent`, `bitcoin_tx_settle` (a SON
//!   proposal, approved by SONs whose own view shows the confirmations), `bitcoin_wallet_utxo`
//!   (a SON proposal). A transaction goes valid → complete → sent → settled, or fails.
//! - [`flows`]: `bitcoin_deposit_key`, `bitcoin_deposit_report` (each SON's own report,
//!   tallied by version), `bitcoin_deposit_process` (the deposit sweep, a SON proposal),
//!   `bitcoin_withdraw` (PBTC to escrow), `bitcoin_withdraw_process` (the payment, a SON
//!   proposal) and `bitcoin_withdraw_refund`; PBTC is issued or burnt when the sweep or payment
//!   settles.
//! - [`node`]: the [`node::BitcoinNode`] service (each node's own view of Bitcoin, a
//!   [`node::BitcoinSource`], and its key) and the triggers and validators built from it.
//! - [`sim`]: a simulated Bitcoin network (blocks, mempool, reorganisations, faulty views) for
//!   tests and simulations.
//! - `rpc` (feature `rpc`, on by default): a [`node::BitcoinSource`] over Bitcoin Core's
//!   JSON-RPC.
//!
//! ```
//! use sonprop_core::Registry;
//!
//! let registry = Registry::builder()
//!     .with(&sonprop_deregister_son::PLUGIN)
//!     .with(&sonprop_bitcoin::PLUGIN)
//!     .build()
//!     .expect("unique names; the guard's kind is registered");
//! assert!(registry.operation(sonprop_bitcoin::WALLET_UPDATE).is_some());
//! ```
//!
//! # Invariants
//! - Every transaction the chain records is rebuilt by every node from its own state and the
//!   proposal's fee rate, and accepted only byte for byte.
//! - The ledger verifies every signature against the signing wallet's key for that SON, for the
//!   BIP143 digest of that input; a forged or misplaced signature changes nothing.
//! - A SON whose signature a transaction still needs is not deregistered (guard
//!   `bitcoin-signer` on `son_deregister`) until the transaction completes or fails.
//! - The conservation equation ([`state::conservation`]) holds after every block: the PBTC in
//!   existence never exceeds the BTC the wallets hold (counting what unsettled transactions
//!   spend); PBTC is issued only by a settled deposit sweep and burnt only by a settled
//!   withdrawal payment.

pub mod flows;
pub mod node;
pub mod ops;
pub mod readiness;
pub mod reconcile;
mod registration;
#[cfg(feature = "rpc")]
pub mod rpc;
mod rules;
pub mod script;
pub mod sim;
pub mod state;
pub mod tx;

pub use registration::PLUGIN;

/// Kind: record a new primary wallet (and sweep the old one).
pub const WALLET_UPDATE: &str = ops::WalletUpdate::KIND;
/// Kind: move a batch of wallet outputs into the current wallet (after a wallet update, or to
/// consolidate).
pub const WALLET_SWEEP: &str = ops::WalletSweep::KIND;
/// Kind: replace a complete transaction that did not settle in time by the same transaction at
/// a higher fee rate.
pub const TX_BUMP: &str = ops::BumpTx::KIND;
/// Kind: record what vanished from Bitcoin (reconciliation).
pub const RECONCILE: &str = reconcile::Reconcile::KIND;
/// Kind: the SONs carry on despite a deficit (lift the circuit breaker).
pub const RESUME: &str = reconcile::Resume::KIND;
/// Kind: a SON's signatures of a sidechain transaction.
pub const SIGN: &str = ops::SignTx::KIND;
/// Kind: fail a sidechain transaction past its deadline.
pub const TX_FAIL: &str = ops::FailTx::KIND;
/// Kind: record a confirmed output paying the current wallet.
pub const UTXO: &str = ops::WalletUtxo::KIND;
/// Kind: a SON broadcast a complete sidechain transaction.
pub const SENT: &str = ops::SentTx::KIND;
/// Kind: the SONs saw a sent sidechain transaction confirmed.
pub const SETTLE: &str = ops::SettleTx::KIND;

/// Kind: a user's deposit key (and default withdrawal address).
pub const DEPOSIT_KEY: &str = flows::RegisterDepositKey::KIND;
/// Kind: a SON's report of a payment to a deposit address.
pub const DEPOSIT_REPORT: &str = flows::ReportDeposit::KIND;
/// Kind: sweep a confirmed deposit into the primary wallet.
pub const DEPOSIT_PROCESS: &str = flows::ProcessDeposit::KIND;
/// Kind: a user's withdrawal request (PBTC to escrow).
pub const WITHDRAW: &str = flows::Withdraw::KIND;
/// Kind: pay a pending withdrawal from the primary wallet.
pub const WITHDRAW_PROCESS: &str = flows::ProcessWithdrawal::KIND;
/// Kind: refund a withdrawal the wallet cannot pay.
pub const WITHDRAW_REFUND: &str = flows::RefundWithdrawal::KIND;

#[cfg(test)]
mod adversary_tests;
#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod refusal_tests;
#[cfg(all(test, feature = "rpc"))]
mod rpc_tests;
#[cfg(test)]
mod rule_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
