//! Fault injection for the crash tests: kill the engine *during* a Docker
//! call, after its intent is durable and while the daemon works on it.
//!
//! `DECKHAND_FAULT_KILL_DURING=KIND:N:MS` makes the process kill itself
//! (SIGKILL) `MS` milliseconds after it starts the `N`-th call of `KIND`
//! (1-based, counted in this process). `KIND` is a journaled call's `op`
//! (`stop_container`, `create_container`, `pull_image`, …) for a forward
//! step, `undo:` and a compensation's `op` (`undo:start_container`) for an
//! undo a rollback runs, or `commit:` and a deferred effect's `op`
//! (`commit:remove_container`) for an effect a commit applies. Unset (the
//! default), nothing is ever killed.
//!
//! The journal's own kill point (`DECKHAND_FAULT_KILL_AFTER_EVENTS`, in the
//! journal writer) kills between two writes; this one kills while a call is
//! in flight, which is where a daemon may finish work the engine no longer
//! waits for.

use std::sync::Mutex;
use std::time::Duration;

const VARIABLE: &str = "DECKHAND_FAULT_KILL_DURING";

struct KillPoint {
    kind: String,
    nth: u32,
    delay: Duration,
    seen: u32,
}

static KILL_POINT: Mutex<Option<Option<KillPoint>>> = Mutex::new(None);

fn parse(spec: &str) -> Option<KillPoint> {
    let mut parts = spec.rsplitn(3, ':');
    let delay = parts.next()?.parse().ok()?;
    let nth = parts.next()?.parse().ok()?;
    let kind = parts.next()?.to_owned();
    Some(KillPoint {
        kind,
        nth,
        delay: Duration::from_millis(delay),
        seen: 0,
    })
}

/// A call of `kind` is starting (its intent is durable): if it is the
/// configured one, the process is killed after the configured delay,
/// whatever it is doing then.
pub fn call_starting(kind: &str) {
    let mut point = KILL_POINT.lock().expect("kill point lock");
    let point = point.get_or_insert_with(|| std::env::var(VARIABLE).ok().and_then(|s| parse(&s)));
    let Some(p) = point.as_mut() else { return };
    if p.kind != kind {
        return;
    }
    p.seen += 1;
    if p.seen != p.nth {
        return;
    }
    let delay = p.delay;
    // A thread, not a task: the kill must come even if the runtime is busy.
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        // SAFETY: raising a signal on our own process has no memory effects.
        unsafe { libc::raise(libc::SIGKILL) };
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_points_name_a_kind_an_occurrence_and_a_delay() {
        let p = parse("undo:start_container:2:150").unwrap();
        assert_eq!(p.kind, "undo:start_container");
        assert_eq!(p.nth, 2);
        assert_eq!(p.delay, Duration::from_millis(150));
        let p = parse("stop_container:1:0").unwrap();
        assert_eq!(p.kind, "stop_container");
        assert!(parse("stop_container").is_none());
        assert!(parse("stop_container:x:1").is_none());
    }
}
