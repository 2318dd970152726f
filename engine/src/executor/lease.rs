//! Which job holds each target in this process: a [`TargetLease`] is taken
//! when a job is submitted (or retried) and released when it is dropped,
//! on whatever path the job ends, so that no path can forget to release it
//! or release a newer job's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::journal::{JobId, JournalError};

/// The targets held in this process, by job.
#[derive(Clone, Default)]
pub(super) struct TargetLocks(Arc<Mutex<HashMap<String, JobId>>>);

/// Why a target could not be taken.
pub(super) enum Refused {
    /// This job holds it, and has not ended.
    Busy(JobId),
    /// Whether the holder ended could not be read.
    Journal(JournalError),
}

/// A target held by one job; released when dropped, unless a newer job
/// took the target over meanwhile (see [`TargetLocks::acquire`]).
pub(super) struct TargetLease {
    locks: TargetLocks,
    target: String,
    job: JobId,
}

impl TargetLocks {
    /// Take `target` for `job`. A holder that has ended (`ended` says so:
    /// its terminal state is durable, and its task is about to drop its
    /// lease) is taken over; any other holder refuses. Holding the target
    /// again for the same job (a retry of it) is allowed.
    pub(super) fn acquire(
        &self,
        target: &str,
        job: &JobId,
        ended: impl Fn(&JobId) -> Result<bool, JournalError>,
    ) -> Result<TargetLease, Refused> {
        let mut held = self.0.lock().expect("target lock");
        if let Some(holder) = held.get(target).filter(|h| *h != job)
            && !ended(holder).map_err(Refused::Journal)?
        {
            return Err(Refused::Busy(holder.clone()));
        }
        held.insert(target.to_owned(), job.clone());
        Ok(TargetLease {
            locks: self.clone(),
            target: target.to_owned(),
            job: job.clone(),
        })
    }

    /// The job holding `target`, if any.
    #[cfg(test)]
    fn holder(&self, target: &str) -> Option<JobId> {
        self.0.lock().expect("target lock").get(target).cloned()
    }
}

impl Drop for TargetLease {
    fn drop(&mut self) {
        let mut held = self.locks.0.lock().expect("target lock");
        if held.get(&self.target) == Some(&self.job) {
            held.remove(&self.target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_holds_its_target_until_dropped() {
        let locks = TargetLocks::default();
        let (a, b) = (JobId::new(), JobId::new());
        let lease = locks.acquire("web", &a, |_| Ok(false)).ok().unwrap();
        assert!(matches!(locks.acquire("web", &b, |_| Ok(false)), Err(Refused::Busy(h)) if h == a));
        assert!(
            locks.acquire("api", &b, |_| Ok(false)).is_ok(),
            "other targets are free"
        );
        drop(lease);
        assert_eq!(locks.holder("web"), None);
        assert!(locks.acquire("web", &b, |_| Ok(false)).is_ok());
    }

    #[test]
    fn an_ended_holder_is_taken_over_and_its_late_release_leaves_the_new_one() {
        let locks = TargetLocks::default();
        let (a, b) = (JobId::new(), JobId::new());
        let old = locks.acquire("web", &a, |_| Ok(false)).ok().unwrap();
        let new = locks.acquire("web", &b, |_| Ok(true)).ok().unwrap();
        drop(old);
        assert_eq!(
            locks.holder("web"),
            Some(b.clone()),
            "the old lease does not free the new job's target"
        );
        drop(new);
        assert_eq!(locks.holder("web"), None);
    }
}
