//! Text rendering of jobs, steps and progress for the terminal.

use std::collections::HashMap;

use serde_json::Value;

use crate::journal::{
    Event, EventRecord, ImagePullProgress, JobRecord, LayerProgress, Millis, Outcome, Progress,
};

/// Human-readable bytes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `layers 2/5, 34.5 MB / 120.0 MB`, or `layers 2/5, 34.5 MB` while the
/// total is not known (it is given only once it will not grow).
pub fn progress_text(p: &Progress) -> String {
    let mut s = format!("layers {}/{}", p.layers_done, p.layers_total);
    if p.bytes_total > 0 {
        s += &format!(", {} / {}", bytes(p.bytes_done), bytes(p.bytes_total));
    } else if p.bytes_done > 0 {
        s += &format!(", {}", bytes(p.bytes_done));
    }
    s
}

/// One of several pulls: `app:2 layers 2/5, 34.5 MB / 120.0 MB`.
pub fn pull_text(p: &ImagePullProgress) -> String {
    format!("{} {}", one_line(&p.image), progress_text(&p.progress))
}

/// One layer of a pull: `downloading 12.3 MB / 30.0 MB`, `waiting`,
/// `already present`. Control characters (from a server that sent them) are
/// shown escaped, never sent to the terminal.
pub fn layer_text(l: &LayerProgress) -> String {
    let amount = match l.total {
        Some(t) => format!(" {} / {}", bytes(l.current), bytes(t)),
        None if l.current > 0 => format!(" {}", bytes(l.current)),
        None => String::new(),
    };
    match l.state.as_str() {
        "downloading" | "extracting" | "retrying" => format!("{}{amount}", l.state),
        "downloaded" | "done" => match l.total {
            Some(t) => format!("{} {}", l.state, bytes(t)),
            None => l.state.clone(),
        },
        "already_present" => "already present".to_owned(),
        other => one_line(other),
    }
}

/// `s` on one line, every control character shown escaped.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A call or compensation in one line: `pull_image image=app:1`.
pub fn call_text(v: &Value) -> String {
    let Some(obj) = v.as_object() else {
        return v.to_string();
    };
    let op = obj.get("op").and_then(Value::as_str).unwrap_or("?");
    let mut s = op.to_owned();
    for (k, val) in obj {
        if k == "op" {
            continue;
        }
        let shown = match val {
            Value::String(x) => x.chars().take(80).collect(),
            Value::Object(o) if k == "config" => {
                format!(
                    "{{name={}, image={}}}",
                    o.get("name").unwrap_or(&Value::Null),
                    o.get("image").unwrap_or(&Value::Null)
                )
            }
            other => other.to_string(),
        };
        s += &format!(" {k}={shown}");
    }
    s
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Ok { value } if value.is_null() => "ok".to_owned(),
        Outcome::Ok { value } => format!(
            "ok {}",
            value.to_string().chars().take(80).collect::<String>()
        ),
        Outcome::Err { error, .. } => format!("FAILED: {error}"),
    }
}

/// The line a live event is shown as above the progress bar, if any.
pub fn event_line(e: &Event) -> Option<String> {
    match e {
        Event::Intent { step, call, .. } => Some(format!("  step {step}: {}", call_text(call))),
        Event::Result { step, outcome } => {
            Some(format!("  step {step}: {}", outcome_text(outcome)))
        }
        Event::UndoIntent { step, undo } => Some(format!("  undo {step}: {}", call_text(undo))),
        Event::UndoResult { step, outcome } => {
            Some(format!("  undo {step}: {}", outcome_text(outcome)))
        }
        Event::Deferred { step, effect } => {
            Some(format!("  step {step}: at commit: {}", call_text(effect)))
        }
        Event::CommitIntent { step, effect } => {
            Some(format!("  commit {step}: {}", call_text(effect)))
        }
        Event::CommitResult { step, outcome } => {
            Some(format!("  commit {step}: {}", outcome_text(outcome)))
        }
        Event::State { state, error } => Some(match error {
            Some(e) => format!("state: {state} ({e})"),
            None => format!("state: {state}"),
        }),
        Event::CancelRequested { reason } => Some(format!(
            "cancel requested{}",
            reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )),
        Event::Log { level, message } => {
            Some(format!("  [{level}] {}", log_text(message, "      | ")))
        }
        _ => None,
    }
}

/// A log message for the terminal: its first line as is, every further
/// line (a container's logs kept as evidence) on its own line after
/// `indent`. Control characters other than tabs (a terminal escape in a
/// container's output) are shown escaped, never sent to the terminal.
pub fn log_text(message: &str, indent: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, line) in message.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(indent);
        }
        for c in line.strip_suffix('\r').unwrap_or(line).chars() {
            if c.is_control() && c != '\t' {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
    }
    out
}

/// Where a timeline line's text starts: after `   seq  +  0.000s  log     `.
const TIMELINE_LOG_INDENT: &str = "                           | ";

fn time(ms: Millis) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// The job's header lines (secrets masked).
pub fn job_header(j: &JobRecord) -> String {
    let j = &crate::redact::Redaction::for_job(j).masked(j);
    let mut s = format!(
        "job {}\n  workflow  {}\n  target    {}\n  state     {}\n  params    {}\n  plugin    {}\n  created   {}\n  updated   {}\n",
        j.id,
        j.workflow,
        j.target,
        j.state,
        j.params,
        j.plugin_digest,
        time(j.created_at),
        time(j.updated_at)
    );
    // The phase (and its progress) is what the job is doing now: a finished
    // job does nothing, and its last phase would read as if it still did.
    if !j.state.is_terminal()
        && let Some(p) = &j.phase
    {
        s += &format!("  phase     {p}\n");
        if j.progress.layers_total > 0 || j.progress.bytes_total > 0 {
            s += &format!("  progress  {}\n", progress_text(&j.progress));
        }
    }
    if let Some(e) = &j.error {
        s += &format!("  error     {e}\n");
    }
    if let Some(m) = &j.summary {
        s += &format!("  summary   {m}\n");
    }
    if j.cancel_requested {
        s += "  cancel    requested\n";
    }
    s
}

/// The journal timeline of a job: every event with its sequence number,
/// time offset, and each step's duration on its result line.
pub fn timeline(events: &[EventRecord]) -> String {
    // Secrets masked: learnt from every event first (the params are in the
    // first, a plugin may log them anywhere after).
    let mut redaction = crate::redact::Redaction::from_env();
    events.iter().for_each(|e| redaction.learn_from(&e.event));
    let events: Vec<EventRecord> = events.iter().map(|e| redaction.masked(e)).collect();
    let events = &events[..];
    let start = events.first().map(|e| e.at).unwrap_or(0);
    let mut began: HashMap<(&str, u32), Millis> = HashMap::new();
    let mut out = String::new();
    for e in events {
        let offset = (e.at - start) as f64 / 1000.0;
        let duration = |kind: &str, step: u32, began: &HashMap<(&str, u32), Millis>| {
            began
                .get(&(kind, step))
                .map(|t| format!(" ({} ms)", e.at - t))
                .unwrap_or_default()
        };
        let line = match &e.event {
            Event::Created {
                workflow, target, ..
            } => format!("created {workflow} on {target}"),
            Event::Intent { step, call, undo } => {
                began.insert(("step", *step), e.at);
                let undo = undo
                    .as_ref()
                    .map(|u| format!("   undo: {}", call_text(u)))
                    .unwrap_or_default();
                format!("intent  {step}: {}{undo}", call_text(call))
            }
            Event::Result { step, outcome } => format!(
                "result  {step}: {}{}",
                outcome_text(outcome),
                duration("step", *step, &began)
            ),
            Event::UndoIntent { step, undo } => {
                began.insert(("undo", *step), e.at);
                format!("undo    {step}: {}", call_text(undo))
            }
            Event::UndoResult { step, outcome } => format!(
                "undone  {step}: {}{}",
                outcome_text(outcome),
                duration("undo", *step, &began)
            ),
            Event::Deferred { step, effect } => format!("defer   {step}: {}", call_text(effect)),
            Event::CommitIntent { step, effect } => {
                began.insert(("commit", *step), e.at);
                format!("commit  {step}: {}", call_text(effect))
            }
            Event::CommitResult { step, outcome } => {
                format!(
                    "commit  {step}: {}{}",
                    outcome_text(outcome),
                    duration("commit", *step, &began)
                )
            }
            Event::Progress(p) => format!(
                "progress {}{}",
                p.fraction
                    .map(|f| format!("{:.0}% ", f * 100.0))
                    .unwrap_or_default(),
                progress_text(p)
            ),
            Event::Phase { phase } => format!("phase   {phase}"),
            Event::State { state, error } => match error {
                Some(err) => format!("state   {state}: {err}"),
                None => format!("state   {state}"),
            },
            Event::Log { level, message } => {
                format!(
                    "log     [{level}] {}",
                    log_text(message, TIMELINE_LOG_INDENT)
                )
            }
            Event::CancelRequested { reason } => format!(
                "cancel requested{}",
                reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            Event::Finished { summary } => format!("plugin finished: {summary}"),
            Event::Acquired { resource, id, name } => {
                format!("owns    {resource} {} ({name})", short_id(id))
            }
            Event::Released { resource, id } => {
                format!("removed {resource} {} (no longer owned)", short_id(id))
            }
        };
        out += &format!("{:>6}  +{offset:>7.3}s  {line}\n", e.seq);
    }
    out
}

/// The first 12 hex digits of an id (`sha256:` dropped), as Docker shows it.
fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_shown_in_decimal_units() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(31_457_280), "31.5 MB");
    }

    #[test]
    fn a_multi_line_log_is_a_block_under_its_event_and_escapes_are_shown_not_sent() {
        let log = Event::Log {
            level: "error".into(),
            message:
                "container deckhand-web logs (last 27 bytes):\nstarting\r\n\u{1b}[2Jfatal: no\tdb"
                    .into(),
        };
        let events = [EventRecord {
            seq: 12,
            job_id: crate::journal::JobId::new(),
            at: 0,
            event: log.clone(),
        }];
        assert_eq!(
            timeline(&events),
            "    12  +  0.000s  log     [error] container deckhand-web logs (last 27 bytes):\n\
             \x20                          | starting\n\
             \x20                          | \\u{1b}[2Jfatal: no\tdb\n"
        );
        assert_eq!(
            event_line(&log).unwrap(),
            "  [error] container deckhand-web logs (last 27 bytes):\n      | starting\n      | \\u{1b}[2Jfatal: no\tdb"
        );
    }

    #[test]
    fn the_byte_total_is_shown_only_once_known_and_downloaded_bytes_before() {
        let mut p = Progress {
            layers_done: 1,
            layers_total: 5,
            bytes_done: 12_300_000,
            ..Progress::default()
        };
        assert_eq!(progress_text(&p), "layers 1/5, 12.3 MB");
        p.bytes_total = 120_000_000;
        assert_eq!(progress_text(&p), "layers 1/5, 12.3 MB / 120.0 MB");
        p.bytes_done = 0;
        p.bytes_total = 0;
        assert_eq!(progress_text(&p), "layers 1/5");
    }

    #[test]
    fn a_layer_shows_its_state_and_the_bytes_of_its_current_activity() {
        let l = |state: &str, current, total| LayerProgress {
            id: "40f7e7a955c8".into(),
            state: state.into(),
            current,
            total,
        };
        let size = Some(30_009_410);
        assert_eq!(
            layer_text(&l("downloading", 15_728_322, size)),
            "downloading 15.7 MB / 30.0 MB"
        );
        assert_eq!(
            layer_text(&l("downloaded", 30_009_410, size)),
            "downloaded 30.0 MB"
        );
        assert_eq!(
            layer_text(&l("extracting", 327_680, size)),
            "extracting 327.7 kB / 30.0 MB"
        );
        assert_eq!(layer_text(&l("done", 30_009_410, size)), "done 30.0 MB");
        assert_eq!(layer_text(&l("done", 0, None)), "done");
        // A state this build does not know, from a newer server, is shown
        // as it is, its control characters escaped.
        assert_eq!(
            layer_text(&l("paused\u{1b}[2J", 0, None)),
            "paused\\u{1b}[2J"
        );
    }

    #[test]
    fn calls_show_their_op_first() {
        let v = serde_json::json!({"op": "pull_image", "image": "app:1", "present_before": false});
        assert_eq!(call_text(&v), "pull_image image=app:1 present_before=false");
    }
}
