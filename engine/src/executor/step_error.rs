//! Why an undo or a commit effect failed, kept apart by where it failed —
//! the container runtime, the journal, the plugin's own compensation, a
//! record that does not decode, a postcondition that does not hold, or a
//! resource that is not the engine's — so that each is reported as what it
//! is (a journal that cannot be read is not a Docker error) with its source.

use crate::journal::JournalError;
use crate::runtime::RuntimeError;

/// Why an undo or a commit effect failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The container runtime failed (or could not be reached).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The journal could not be read or written.
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    /// The plugin's own compensation failed.
    #[error("plugin compensation `{action}`: {detail}")]
    Plugin {
        /// The compensation's action.
        action: String,
        /// How it failed.
        detail: String,
    },
    /// The job's plugin is not registered (any more).
    #[error("plugin {workflow} ({digest}) is not registered")]
    PluginMissing {
        /// The job's workflow.
        workflow: String,
        /// The digest the job recorded.
        digest: String,
    },
    /// A journaled undo or effect does not decode.
    #[error("unreadable {what} in the journal: {detail}")]
    Unreadable {
        /// What it is (`compensation`, `deferred effect`).
        what: &'static str,
        /// Why it does not decode.
        detail: String,
    },
    /// The undo ran, but the state it must restore was not observed.
    #[error("the prior state could not be established after {attempts} attempts: {evidence}")]
    NotEstablished {
        /// Attempts made.
        attempts: u32,
        /// What was observed instead.
        evidence: String,
    },
    /// The effect names a resource the journal does not record as the
    /// engine's (for the job's target).
    #[error("{0}")]
    NotOwned(String),
}

impl StepError {
    /// Whether the failure is the daemon's being away: worth retrying later.
    pub fn is_transient(&self) -> bool {
        matches!(self, StepError::Runtime(e) if e.is_transient())
    }
}

/// An error that may be the daemon's being away (see
/// [`super::settle::while_unreachable`]).
pub(crate) trait Transient {
    /// Whether trying again later may succeed where trying now would not.
    fn is_transient(&self) -> bool;
}

impl Transient for RuntimeError {
    fn is_transient(&self) -> bool {
        RuntimeError::is_transient(self)
    }
}

impl Transient for StepError {
    fn is_transient(&self) -> bool {
        StepError::is_transient(self)
    }
}
