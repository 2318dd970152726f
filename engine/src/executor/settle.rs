//! Undoing one step *provably*: settle the call the step made, run its
//! compensation, then observe the runtime until the state the journal
//! promises holds.
//!
//! A Docker call whose client went away — the engine gave up waiting, or was
//! killed mid-call — may still be carried out by the daemon: a stop goes on
//! until its timeout, a create or rename whose request was already sent
//! lands a moment later. So a step whose outcome is not recorded as `ok` is
//! *unsettled*, and its undo
//!
//! 1. first waits out what the daemon may still be doing: an interrupted
//!    stop is waited for (the daemon's wait API, condition `not-running`),
//!    bounded by the stop's own timeout plus [`HostSettings::call_settle_grace`];
//! 2. runs the compensation and checks its [`Postcondition`] on the runtime
//!    (the container runs again, with the same id; the created container
//!    is gone; the image is gone; the name is back);
//! 3. keeps checking for the grace time (an interrupted pull: the runtime's
//!    [`ContainerRuntime::pull_abort_grace`]), and runs the compensation
//!    again whenever a late effect broke the postcondition.
//!
//! A settled step skips 1 and 3. In every case an undo counts as done only
//! once its postcondition was observed; after [`MAX_ATTEMPTS`] it is not,
//! and the rollback fails with the evidence (the job ends `failed`, never
//! `cancelled` or `rolled_back` over a wrong world).
//!
//! [`HostSettings::call_settle_grace`]: crate::plugin::HostSettings::call_settle_grace
//! [`ContainerRuntime::pull_abort_grace`]: crate::runtime::ContainerRuntime::pull_abort_grace

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::plan::PlannedUndo;
use crate::journal::now_millis;
use crate::runtime::{ContainerRuntime, ContainerState, LABEL_JOB, RuntimeError};
use crate::steps::Call;

/// How often a compensation is run before its postcondition counts as
/// impossible to establish.
pub(crate) const MAX_ATTEMPTS: u32 = 5;

/// How often the runtime is looked at while an unsettled step may still land.
const WATCH_INTERVAL: Duration = Duration::from_millis(50);

/// What must hold on the runtime once an undo is done.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Postcondition {
    /// Nothing the engine can observe: a plugin's own compensation, or an
    /// image kept because something else uses it.
    Unobservable,
    /// The image reference is not in the local store.
    ImageAbsent(String),
    /// No container called `name` that `job` created exists, nor the
    /// container `id` the create returned (when it is known).
    CreatedContainerGone {
        /// The name it was created with.
        name: String,
        /// The job that created it.
        job: String,
        /// The id the create returned.
        id: Option<String>,
    },
    /// The container exists and runs.
    Running(String),
    /// The container does not run (or no longer exists).
    NotRunning(String),
    /// The container exists and has this name.
    Named {
        /// Container id.
        id: String,
        /// Its name.
        name: String,
    },
    /// No volume called this that `job` created exists.
    CreatedVolumeGone {
        /// Docker name.
        name: String,
        /// The job that created it.
        job: String,
    },
    /// No network called this that `job` created exists.
    CreatedNetworkGone {
        /// Network name.
        name: String,
        /// The job that created it.
        job: String,
    },
}

/// What an observation of the runtime showed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Observed {
    /// The postcondition holds; what was seen, for the journal.
    Holds(Value),
    /// It does not; what was seen instead.
    Violated(String),
}

fn describe(c: &ContainerState) -> Value {
    json!({"id": c.id, "name": c.name, "running": c.running, "exit_code": c.exit_code})
}

fn state_words(c: &ContainerState) -> String {
    match (c.running, c.exit_code) {
        (true, _) => format!("running as `{}`", c.name),
        (false, Some(code)) => format!("exited (code {code}) as `{}`", c.name),
        (false, None) => format!("not running (created) as `{}`", c.name),
    }
}

impl Postcondition {
    /// Look at the runtime and say whether the postcondition holds.
    pub(crate) async fn observe(
        &self,
        rt: &dyn ContainerRuntime,
    ) -> Result<Observed, RuntimeError> {
        Ok(match self {
            Postcondition::Unobservable => Observed::Holds(Value::Null),
            Postcondition::ImageAbsent(image) => {
                if rt.image_present(image).await? {
                    Observed::Violated(format!("image {image} is still present"))
                } else {
                    Observed::Holds(json!({"image": image, "present": false}))
                }
            }
            Postcondition::CreatedContainerGone { name, job, id } => {
                if let Some(id) = id
                    && let Some(c) = rt.inspect_container(id).await?
                {
                    return Ok(Observed::Violated(format!(
                        "the created container {} still exists, {}",
                        c.id,
                        state_words(&c)
                    )));
                }
                match rt.inspect_container(name).await? {
                    Some(c) if crate::ownership::made_by_unrecorded_create(&c, job) => {
                        Observed::Violated(format!(
                            "the created container {} still exists, {}",
                            c.id,
                            state_words(&c)
                        ))
                    }
                    _ => Observed::Holds(json!({"name": name, "exists": false})),
                }
            }
            Postcondition::CreatedVolumeGone { name, job } => {
                match rt.inspect_volume(name).await? {
                    Some(v) if v.labels.get(LABEL_JOB) == Some(job) => {
                        Observed::Violated(format!("the created volume {name} still exists"))
                    }
                    _ => Observed::Holds(json!({"volume": name, "exists": false})),
                }
            }
            Postcondition::CreatedNetworkGone { name, job } => {
                match rt.inspect_network(name).await? {
                    Some(n) if n.labels.get(LABEL_JOB) == Some(job) => {
                        Observed::Violated(format!("the created network {name} still exists"))
                    }
                    _ => Observed::Holds(json!({"network": name, "exists": false})),
                }
            }
            Postcondition::Running(id) => match rt.inspect_container(id).await? {
                Some(c) if c.running => Observed::Holds(describe(&c)),
                Some(c) => Observed::Violated(format!("container {id} is {}", state_words(&c))),
                None => Observed::Violated(format!("container {id} no longer exists")),
            },
            Postcondition::NotRunning(id) => match rt.inspect_container(id).await? {
                Some(c) if c.running => {
                    Observed::Violated(format!("container {id} is {}", state_words(&c)))
                }
                Some(c) => Observed::Holds(describe(&c)),
                None => Observed::Holds(json!({"id": id, "exists": false})),
            },
            Postcondition::Named { id, name } => match rt.inspect_container(id).await? {
                Some(c) if c.name == *name => Observed::Holds(describe(&c)),
                Some(c) => Observed::Violated(format!(
                    "container {id} is named `{}`, not `{name}`",
                    c.name
                )),
                None => Observed::Violated(format!("container {id} no longer exists")),
            },
        })
    }
}

/// How long after `since` an unsettled step may still land: what the
/// daemon may be doing for a call of this kind.
pub(crate) fn late_effect_window(call: &Call, grace: Duration, pull_grace: Duration) -> Duration {
    match call {
        Call::PullImage { .. } => pull_grace,
        _ => grace,
    }
}

/// Wait out what the daemon may still do for an unsettled `call` before
/// its undo runs. A stop needs it: the daemon goes on stopping until the
/// stop's timeout, and an undo `start` before that would be answered
/// "already running" and then lost. So does a volume copy: a helper
/// container's create may still be on its way (see below).
pub(crate) async fn settle_before_undo(
    rt: &dyn ContainerRuntime,
    planned: &PlannedUndo,
    call: &Call,
    grace: Duration,
) -> Result<(), RuntimeError> {
    if let Call::SnapshotVolume { .. } = call {
        // Killed in the middle of the copy, the engine may have sent the
        // create of a helper container that the daemon carries out a moment
        // later. The undo removes the copy's helpers with the copy; run
        // before that create lands, it would miss the helper, which would
        // then stay for good, mounting the target's volume. Creates land
        // within the grace from the intent.
        let elapsed =
            Duration::from_millis(now_millis().saturating_sub(planned.intent_at).max(0) as u64);
        tokio::time::sleep(grace.saturating_sub(elapsed)).await;
    }
    if let Call::StopContainer { id, timeout_s, .. } = call {
        // The stop began no earlier than its intent; it ends by its timeout
        // (then the daemon kills), plus the grace for the request's way.
        let bound = Duration::from_secs((*timeout_s).min(300).into()) + grace;
        let elapsed =
            Duration::from_millis(now_millis().saturating_sub(planned.intent_at).max(0) as u64);
        let left = bound.saturating_sub(elapsed);
        match rt.wait_not_running(id, left).await {
            Ok(_) | Err(RuntimeError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Observe `post` until `until`, every [`WATCH_INTERVAL`]; the first
/// violation is returned (a late effect landed), else the last observation.
pub(crate) async fn watch_until(
    rt: &dyn ContainerRuntime,
    post: &Postcondition,
    until: Instant,
) -> Result<Observed, RuntimeError> {
    if *post == Postcondition::Unobservable {
        return post.observe(rt).await;
    }
    loop {
        let seen = post.observe(rt).await?;
        if matches!(seen, Observed::Violated(_)) || Instant::now() >= until {
            return Ok(seen);
        }
        tokio::time::sleep(WATCH_INTERVAL.min(until - Instant::now())).await;
    }
}

/// Run `op` again while it fails because the daemon cannot be reached
/// (restarting, down), pausing 200 ms and doubling up to 5 s, for at most
/// `deadline` from the first try; then its last error is returned. Any other
/// outcome is returned at once.
pub(crate) async fn while_unreachable<T, E, F, Fut>(deadline: Duration, mut op: F) -> Result<T, E>
where
    E: super::step_error::Transient,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let until = Instant::now() + deadline;
    let mut pause = Duration::from_millis(200);
    loop {
        match op().await {
            Err(e) if e.is_transient() && Instant::now() + pause < until => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Remove a container and see it gone. A removal that an interrupted
/// earlier request (the engine was killed while it was on its way) has in
/// progress answers "already in progress": it is waited out, for the grace
/// time and at least 5 s. Used by undos and commits alike.
pub(crate) async fn remove_container_settled(
    rt: &dyn ContainerRuntime,
    id: &str,
    grace: Duration,
) -> Result<(), RuntimeError> {
    let until = Instant::now() + grace.max(Duration::from_secs(5));
    loop {
        match rt.remove_container(id).await {
            Ok(()) | Err(RuntimeError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        if rt.inspect_container(id).await?.is_none() {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(RuntimeError::Daemon(format!(
                "container {id} is still there after its removal"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The pause before attempt `n` (1-based) of a compensation.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 * u64::from(attempt.saturating_sub(1)).pow(2))
        .min(Duration::from_secs(2))
}
