//! Errors of the on-chain half: an operation's rules ([`OperationError`]) and blocks and
//! transactions ([`LedgerError`]).

use crate::chain::crypto::{Digest, PublicKey};
use crate::chain::ids::{AccountId, AssetId, ProposalId, SonId, Subject, VestingId, WitnessId};
use crate::chain::objects::SonStatus;
use crate::chain::time::Timestamp;

/// Why an operation was refused. Raised by checks and evaluators; it never leaves a change
/// behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperationError {
    /// No such SON.
    #[error("son {0} does not exist")]
    UnknownSon(SonId),
    /// No such asset.
    #[error("asset {0} does not exist")]
    UnknownAsset(AssetId),
    /// An account holds less than it would spend.
    #[error("account {account} holds {balance} of asset {asset}, less than {amount}")]
    InsufficientBalance {
        /// The account.
        account: AccountId,
        /// The asset.
        asset: AssetId,
        /// What it holds.
        balance: u64,
        /// What it would spend.
        amount: u64,
    },
    /// A balance or supply would pass `u64::MAX` or the asset's `max_supply`.
    #[error("{amount} more of asset {asset} would exceed its maximum supply or a balance's range")]
    AmountOverflow {
        /// The asset.
        asset: AssetId,
        /// The amount.
        amount: u64,
    },
    /// An operation named an issuer that is not the asset's.
    #[error("asset {asset} is issued by {issuer}, not {given}")]
    NotIssuer {
        /// The asset.
        asset: AssetId,
        /// Its issuer.
        issuer: AccountId,
        /// Who claimed it.
        given: AccountId,
    },
    /// A zero amount.
    #[error("the amount must be positive")]
    ZeroAmount,
    /// A write to an operation crate's table that no registered crate declares.
    #[error("table `{table}` is not declared by any registered operation crate")]
    UndeclaredTable {
        /// The table.
        table: &'static str,
    },
    /// A guard defers proposals of this kind about this subject.
    #[error("{kind} for {subject} is deferred by guard `{guard}`: {reason}")]
    Deferred {
        /// The kind.
        kind: &'static str,
        /// The subject.
        subject: Subject,
        /// The guard's name.
        guard: &'static str,
        /// The guard's reason.
        reason: String,
    },
    /// No such account.
    #[error("account {0} does not exist")]
    UnknownAccount(AccountId),
    /// No such live proposal.
    #[error("proposal {0} does not exist (it may have executed, expired or been deleted)")]
    UnknownProposal(ProposalId),
    /// A SON operation signed by someone other than the SON's owner.
    #[error("son {son} is owned by {owner}, not {given}")]
    NotSonOwner {
        /// The SON.
        son: SonId,
        /// Its owner.
        owner: AccountId,
        /// Who claimed it.
        given: AccountId,
    },
    /// A SON is in the wrong status for the operation.
    #[error("son {son} is {status}; {operation} needs it {expected}")]
    SonStatus {
        /// The SON.
        son: SonId,
        /// Its status.
        status: SonStatus,
        /// The operation kind.
        operation: &'static str,
        /// What the operation needs, e.g. `in_maintenance`.
        expected: &'static str,
    },
    /// A deregistered SON cannot change again.
    #[error("son {0} is deregistered; deregistration is terminal")]
    Deregistered(SonId),
    /// A heartbeat whose timestamp is too far from head time.
    #[error("heartbeat of son {son} at {timestamp} is outside the window of {window} s around head time {head}")]
    HeartbeatOutsideWindow {
        /// The SON.
        son: SonId,
        /// The heartbeat's timestamp.
        timestamp: Timestamp,
        /// Head time.
        head: Timestamp,
        /// The allowed distance, 5 block intervals.
        window: u64,
    },
    /// A heartbeat not later than the last heartbeat or the last down time.
    #[error("heartbeat of son {son} at {timestamp} is not later than {previous}")]
    StaleHeartbeat {
        /// The SON.
        son: SonId,
        /// The heartbeat's timestamp.
        timestamp: Timestamp,
        /// The time it must follow.
        previous: Timestamp,
    },
    /// A proposal without operations.
    #[error("a proposal must carry at least one operation")]
    EmptyProposal,
    /// A proposal inside a proposal.
    #[error("proposals cannot be nested ({kind} inside a proposal)")]
    NestedProposal {
        /// The nested kind.
        kind: &'static str,
    },
    /// An operation kind the registry does not know.
    #[error("operation kind `{kind}` is not registered on this chain")]
    UnregisteredKind {
        /// The kind.
        kind: &'static str,
    },
    /// An operation kind that may not be proposed.
    #[error("operation kind `{kind}` cannot be proposed")]
    NotProposable {
        /// The kind.
        kind: &'static str,
    },
    /// A SON proposal kind combined with other operations.
    #[error("a `{kind}` proposal must carry that one operation only")]
    SonProposalNotAlone {
        /// The kind.
        kind: &'static str,
    },
    /// A SON proposal kind whose operation names no subject.
    #[error("a `{kind}` operation must name its subject")]
    MissingSubject {
        /// The kind.
        kind: &'static str,
    },
    /// The proposer is not allowed to propose this kind.
    #[error("account {proposer} may not propose `{kind}` ({rule})")]
    IneligibleProposer {
        /// The kind.
        kind: &'static str,
        /// The proposer.
        proposer: AccountId,
        /// Who may.
        rule: &'static str,
    },
    /// Expiration not after head time.
    #[error("expiration {expiration} is not after head time {head}")]
    ExpirationNotInFuture {
        /// Requested expiration.
        expiration: Timestamp,
        /// Head time.
        head: Timestamp,
    },
    /// A proposal lifetime over the chain's or the kind's cap.
    #[error("proposal lifetime {requested} s exceeds the {cap_of} cap of {max} s")]
    LifetimeTooLong {
        /// Requested lifetime.
        requested: u64,
        /// The cap.
        max: u64,
        /// Whose cap: `maximum_proposal_lifetime` or the kind.
        cap_of: &'static str,
    },
    /// A review period not shorter than the lifetime.
    #[error("review period {review} s must be shorter than the proposal lifetime {lifetime} s")]
    ReviewPeriodTooLong {
        /// The review period.
        review: u64,
        /// The lifetime.
        lifetime: u64,
    },
    /// A second live proposal for the same kind and subject.
    #[error("a `{kind}` proposal for {subject} is already live: {live}")]
    DuplicateProposal {
        /// The kind.
        kind: &'static str,
        /// The subject.
        subject: Subject,
        /// The live proposal.
        live: ProposalId,
    },
    /// A proposal update that adds and removes nothing.
    #[error("a proposal update must add or remove at least one approval")]
    EmptyUpdate,
    /// An approval already present.
    #[error("{account} already approved proposal {proposal}")]
    AlreadyApproved {
        /// The proposal.
        proposal: ProposalId,
        /// The account.
        account: AccountId,
    },
    /// Removing an approval that is not there.
    #[error("{account} has not approved proposal {proposal}")]
    NotApproved {
        /// The proposal.
        proposal: ProposalId,
        /// The account.
        account: AccountId,
    },
    /// An approval from an account outside the required authorities.
    #[error("{account} is not part of any authority required by proposal {proposal}")]
    NotAnApprover {
        /// The proposal.
        proposal: ProposalId,
        /// The account.
        account: AccountId,
    },
    /// New approvals during the review period.
    #[error("proposal {0} is in its review period; no approvals may be added")]
    InReviewPeriod(ProposalId),
    /// A delete by an account that is not a required approver.
    #[error("{account} is not a required approver of proposal {proposal} and cannot delete it")]
    NotRequiredApprover {
        /// The proposal.
        proposal: ProposalId,
        /// The account.
        account: AccountId,
    },
    /// A rule of the SON lifecycle (registering, updating, voting, withdrawing).
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// A rule of an operation crate, with that crate's own typed error as the source.
    #[error("{kind}: {source}")]
    Rule {
        /// The operation kind.
        kind: &'static str,
        /// The crate's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl OperationError {
    /// Wraps an operation crate's own error.
    pub fn rule(
        kind: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        OperationError::Rule { kind, source: Box::new(source) }
    }

    /// The operation crate's error, if this is one of type `E`.
    pub fn rule_source<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            OperationError::Rule { source, .. } => source.downcast_ref(),
            _ => None,
        }
    }
}

/// Why a lifecycle operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// A SON deposit below `son_vesting_amount`.
    #[error("a SON deposit of {deposit} is below the minimum of {min} (son_vesting_amount)")]
    DepositTooSmall {
        /// The deposit offered.
        deposit: u64,
        /// `son_vesting_amount`.
        min: u64,
    },
    /// The account already registered a SON (one per account, ever, as in Peerplays).
    #[error("account {owner} already registered son {son}; an account registers one SON")]
    AlreadyOwnsSon {
        /// The account.
        owner: AccountId,
        /// Its SON.
        son: SonId,
    },
    /// A URL longer than [`MAX_SON_URL_LEN`](crate::chain::objects::MAX_SON_URL_LEN).
    #[error("a SON URL of {len} bytes is longer than {max}")]
    UrlTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A `son_update` that changes nothing.
    #[error("son_update changes nothing: give a new URL, signing key or sidechain keys")]
    NothingToUpdate,
    /// A registered sidechain crate cannot use the keys.
    #[error("son {son}'s sidechain keys are refused by {reason}")]
    BadKeys {
        /// The SON.
        son: SonId,
        /// The crate and its reason.
        reason: String,
    },
    /// More SONs voted for than there are seats.
    #[error("{votes} SON votes: an account votes for at most maximum_son_count ({max})")]
    TooManyVotes {
        /// How many.
        votes: usize,
        /// `maximum_son_count`.
        max: u32,
    },
    /// A vote for a deregistered SON.
    #[error("son {0} is deregistered: it cannot be voted for")]
    VoteForDeregistered(SonId),
    /// No such vesting balance (never created, or withdrawn in full).
    #[error("vesting balance {0} does not exist (it may have been withdrawn in full)")]
    UnknownVesting(VestingId),
    /// A withdrawal by someone other than the balance's owner.
    #[error("vesting balance {vesting} belongs to {owner}, not {given}")]
    NotVestingOwner {
        /// The balance.
        vesting: VestingId,
        /// Its owner.
        owner: AccountId,
        /// Who tried.
        given: AccountId,
    },
    /// A withdrawal before the cliff.
    #[error("vesting balance {vesting} can be withdrawn from {cliff}; it is {now}")]
    BeforeCliff {
        /// The balance.
        vesting: VestingId,
        /// Its cliff.
        cliff: Timestamp,
        /// Head time.
        now: Timestamp,
    },
    /// A withdrawal of more than the balance holds.
    #[error("vesting balance {vesting} holds {available}, less than {amount}")]
    ExceedsVesting {
        /// The balance.
        vesting: VestingId,
        /// What was asked for.
        amount: u64,
        /// What it holds.
        available: u64,
    },
}

/// Why a block, a transaction or a ledger request was refused. The ledger is unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The genesis is inconsistent.
    #[error("invalid genesis: {0}")]
    Genesis(String),
    /// A block at the wrong height.
    #[error("block height {got} does not follow head height {head}")]
    BadHeight {
        /// Head height.
        head: u64,
        /// The block's height.
        got: u64,
    },
    /// A block that does not link to the head.
    #[error("block {height} does not link to the head block {head}")]
    BadPrevious {
        /// The block's height.
        height: u64,
        /// The head block id.
        head: Digest,
    },
    /// A block timestamp that is not a slot after the head.
    #[error("block {height} timestamp {timestamp} is not a block slot after head time {head}")]
    BadTimestamp {
        /// The block's height.
        height: u64,
        /// Its timestamp.
        timestamp: Timestamp,
        /// Head time.
        head: Timestamp,
    },
    /// A block from a witness not scheduled for its slot.
    #[error(
        "block {height} at {timestamp} was produced by {got}, but the slot belongs to {expected}"
    )]
    WrongProducer {
        /// The block's height.
        height: u64,
        /// Its timestamp.
        timestamp: Timestamp,
        /// The scheduled witness.
        expected: WitnessId,
        /// The producer named in the block.
        got: WitnessId,
    },
    /// A transaction in a block was invalid.
    #[error("block {height}, transaction {index}: {source}")]
    InBlock {
        /// The block's height.
        height: u64,
        /// The transaction's position.
        index: usize,
        /// What was wrong.
        #[source]
        source: Box<LedgerError>,
    },
    /// A transaction with no operations.
    #[error("a transaction must carry at least one operation")]
    EmptyTransaction,
    /// A transaction past its expiration.
    #[error("transaction expired at {expiration} (head time {head})")]
    TransactionExpired {
        /// Its expiration.
        expiration: Timestamp,
        /// Head time.
        head: Timestamp,
    },
    /// A transaction expiring too far ahead.
    #[error("transaction expiration {expiration} is more than {max} s after head time {head}")]
    ExpirationTooFar {
        /// Its expiration.
        expiration: Timestamp,
        /// Head time.
        head: Timestamp,
        /// The limit.
        max: u64,
    },
    /// A transaction already applied.
    #[error("transaction {0} was already applied")]
    DuplicateTransaction(Digest),
    /// A signature that does not verify.
    #[error("signature by key {key} does not verify")]
    InvalidSignature {
        /// The claimed key.
        key: PublicKey,
    },
    /// Two signatures by one key.
    #[error("key {key} signed twice")]
    DuplicateSignature {
        /// The key.
        key: PublicKey,
    },
    /// A required authority not satisfied by the signatures.
    #[error("missing signatures for the active authority of {account}")]
    MissingAuthority {
        /// The account.
        account: AccountId,
    },
    /// An operation was refused.
    #[error("operation {index} ({kind}): {source}")]
    Operation {
        /// The operation's position in the transaction.
        index: usize,
        /// Its kind.
        kind: &'static str,
        /// Why.
        #[source]
        source: OperationError,
    },
    /// Malformed JSON, or an operation kind no linked crate defines.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// The store failed or was refused.
    #[error("{0}")]
    Store(#[source] crate::chain::store::StoreError),
    /// A block not signed by its producer's witness key over its id.
    #[error("block {height} is not signed by its producer {producer}")]
    BadBlockSignature {
        /// The block's height.
        height: u64,
        /// Its producer.
        producer: WitnessId,
    },
    /// A producer asked to sign with a key that is not the scheduled witness's.
    #[error("the key given is not the signing key of witness {producer}, scheduled for this slot")]
    NotTheProducer {
        /// The scheduled witness.
        producer: WitnessId,
    },
    /// A signature by a key that no required authority counts.
    #[error("the signature by {key} counts for no authority the transaction requires")]
    IrrelevantSignature {
        /// The key.
        key: PublicKey,
    },
    /// A transaction larger than `maximum_transaction_size`.
    #[error("the transaction takes {size} bytes; maximum_transaction_size is {max}")]
    TransactionTooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A block whose transactions take more than `maximum_block_size`.
    #[error("the block's transactions take {size} bytes; maximum_block_size is {max}")]
    BlockTooLarge {
        /// Their size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The blocks applied since the last commit fill the undo window: commit (with the
    /// node-local values that go with them) before the next block.
    #[error("{unwritten} blocks are not committed and fill the undo window: commit before the next block")]
    CommitRequired {
        /// Blocks applied since the last commit.
        unwritten: usize,
    },
    /// Operation-crate code panicked while the transaction was applied (a bug in that crate);
    /// the transaction is refused and the state left as it was.
    #[error("a transaction's operation code panicked: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// `pop_block` with no undo history left.
    #[error("no block to pop: the undo history is empty (head height {head})")]
    NothingToPop {
        /// Head height.
        head: u64,
    },
}

impl LedgerError {
    /// The operation error inside, however deeply it is wrapped.
    pub fn operation_error(&self) -> Option<&OperationError> {
        match self {
            LedgerError::Operation { source, .. } => Some(source),
            LedgerError::InBlock { source, .. } => source.operation_error(),
            _ => None,
        }
    }
}
