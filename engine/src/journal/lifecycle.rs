//! The job state machine, pure (no SQL): which state may follow which, and
//! which events a job's log admits in its current state. The journal applies
//! [`admit`] to every append, in the same transaction, so no writer —
//! executor, recovery, retry — can put a job's log out of order.
//!
//! ```text
//! queued ─▶ running ─▶ committing ─▶ succeeded
//!   │          │            │
//!   │          ▼            ▼
//!   └──▶ rolling_back ─▶ rolled_back | cancelled | failed
//!                              failed ─▶ rolling_back | committing  (retry)
//! ```

use super::{Event, JobState};

/// Why an event is not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The job ended in this state; only log lines may follow.
    Terminal(JobState),
    /// A cancel is recorded: the job may not start its commit.
    CancelPending,
    /// The state machine has no such transition.
    Transition {
        /// The job's state.
        from: JobState,
        /// The state the event names.
        to: JobState,
    },
}

impl JobState {
    /// The states no engine works on any more.
    pub const TERMINAL: [JobState; 4] = [
        JobState::Succeeded,
        JobState::Cancelled,
        JobState::RolledBack,
        JobState::Failed,
    ];

    /// The terminal states that need nothing more (all but `failed`, which
    /// waits for a retry or the operator).
    pub const SETTLED: [JobState; 3] = [
        JobState::Succeeded,
        JobState::Cancelled,
        JobState::RolledBack,
    ];

    /// Whether no engine works on a job in this state any more.
    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }

    /// Whether a job in this state may move to `next` (staying in a state
    /// that is not terminal is allowed: recovery re-enters it).
    pub fn may_become(self, next: JobState) -> bool {
        use JobState::*;
        match self {
            Queued => matches!(next, Queued | Running | RollingBack | Cancelled | Failed),
            Running => matches!(next, Running | Committing | RollingBack | Failed),
            Committing => matches!(next, Committing | Succeeded | Failed),
            RollingBack => matches!(next, RollingBack | RolledBack | Cancelled | Failed),
            // An operator's retry resumes the rollback or the commit.
            Failed => matches!(next, RollingBack | Committing),
            Succeeded | Cancelled | RolledBack => false,
        }
    }

    /// `states` as an SQL list of their stored names (`'a','b'`), for
    /// `state IN (…)`.
    pub(super) fn sql_list(states: &[JobState]) -> String {
        states
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Whether a job in state `current` (with a cancel recorded or not) admits
/// `event`.
pub fn admit(current: JobState, cancel_requested: bool, event: &Event) -> Result<(), Refusal> {
    match event {
        // A log line is history, never a change: always admitted.
        Event::Log { .. } => Ok(()),
        Event::State { state: next, .. } => {
            if cancel_requested && *next == JobState::Committing && current != JobState::Failed {
                return Err(Refusal::CancelPending);
            }
            if current.may_become(*next) {
                Ok(())
            } else if current.is_terminal() && current != JobState::Failed {
                Err(Refusal::Terminal(current))
            } else {
                Err(Refusal::Transition {
                    from: current,
                    to: *next,
                })
            }
        }
        _ if current.is_terminal() => Err(Refusal::Terminal(current)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    fn state(s: JobState) -> Event {
        Event::State {
            state: s,
            error: None,
        }
    }

    #[test]
    fn a_job_goes_through_its_lifecycle_in_order() {
        for (from, to) in [
            (Queued, Running),
            (Running, Committing),
            (Committing, Succeeded),
            (Running, RollingBack),
            (RollingBack, RolledBack),
            (RollingBack, Cancelled),
            (RollingBack, Failed),
            (Committing, Failed),
            (Queued, Cancelled),
        ] {
            assert_eq!(admit(from, false, &state(to)), Ok(()), "{from} → {to}");
        }
    }

    #[test]
    fn a_terminal_state_is_never_left_except_by_a_retry_of_a_failed_job() {
        for end in [Succeeded, Cancelled, RolledBack] {
            for next in JobState::ALL {
                assert_eq!(admit(end, false, &state(next)), Err(Refusal::Terminal(end)));
            }
            let step = Event::Phase {
                phase: "pulling".into(),
            };
            assert_eq!(admit(end, false, &step), Err(Refusal::Terminal(end)));
        }
        assert_eq!(admit(Failed, false, &state(RollingBack)), Ok(()));
        assert_eq!(
            admit(Failed, true, &state(Committing)),
            Ok(()),
            "a commit retried"
        );
        assert_eq!(
            admit(Failed, false, &state(Succeeded)),
            Err(Refusal::Transition {
                from: Failed,
                to: Succeeded
            })
        );
    }

    #[test]
    fn log_lines_are_admitted_in_every_state() {
        let log = Event::Log {
            level: "info".into(),
            message: "x".into(),
        };
        for s in JobState::ALL {
            assert_eq!(admit(s, true, &log), Ok(()));
        }
    }

    #[test]
    fn a_recorded_cancel_keeps_a_job_from_committing() {
        assert_eq!(
            admit(Running, true, &state(Committing)),
            Err(Refusal::CancelPending)
        );
        assert_eq!(admit(Running, true, &state(RollingBack)), Ok(()));
    }

    #[test]
    fn a_job_cannot_skip_its_commit_or_its_rollback() {
        assert!(admit(Running, false, &state(Succeeded)).is_err());
        assert!(admit(Running, false, &state(RolledBack)).is_err());
        assert!(admit(Committing, false, &state(RollingBack)).is_err());
        assert!(admit(Queued, false, &state(Succeeded)).is_err());
    }

    #[test]
    fn the_terminal_states_are_named_once() {
        for s in JobState::ALL {
            assert_eq!(s.is_terminal(), JobState::TERMINAL.contains(&s));
        }
        assert_eq!(
            JobState::sql_list(&JobState::SETTLED),
            "'succeeded','cancelled','rolled_back'"
        );
    }
}
