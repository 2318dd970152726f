//! A self-contained HTML timeline of a job: a Gantt-like chart of its steps,
//! undos and commit effects over time, with the details on hover.

use std::collections::HashMap;

use crate::journal::{Event, EventRecord, JobRecord, Outcome};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Bar {
    lane: &'static str,
    label: String,
    detail: String,
    start: i64,
    end: Option<i64>,
    ok: Option<bool>,
}

/// The page for `job` and its `events`.
pub fn timeline(job: &JobRecord, events: &[EventRecord]) -> String {
    let t0 = events.first().map(|e| e.at).unwrap_or(job.created_at);
    let t_end = events.last().map(|e| e.at).unwrap_or(t0).max(t0 + 1);
    let mut bars: Vec<Bar> = Vec::new();
    let mut open: HashMap<(&'static str, u32), usize> = HashMap::new();
    let mut marks: Vec<(i64, String)> = Vec::new();
    let op = |v: &serde_json::Value| v["op"].as_str().unwrap_or("?").to_owned();
    for e in events {
        let (lane, step, label, detail) = match &e.event {
            Event::Intent { step, call, .. } => ("step", *step, op(call), call.to_string()),
            Event::UndoIntent { step, undo } => (
                "undo",
                *step,
                format!("undo {}", op(undo)),
                undo.to_string(),
            ),
            Event::CommitIntent { step, effect } => (
                "commit",
                *step,
                format!("commit {}", op(effect)),
                effect.to_string(),
            ),
            Event::Result { step, outcome }
            | Event::UndoResult { step, outcome }
            | Event::CommitResult { step, outcome } => {
                let lane = match &e.event {
                    Event::Result { .. } => "step",
                    Event::UndoResult { .. } => "undo",
                    _ => "commit",
                };
                if let Some(i) = open.remove(&(lane, *step)) {
                    bars[i].end = Some(e.at);
                    bars[i].ok = Some(outcome.is_ok());
                    if let Outcome::Err { error, .. } = outcome {
                        bars[i].detail += &format!("\nfailed: {error}");
                    }
                }
                continue;
            }
            Event::State { state, error } => {
                marks.push((
                    e.at,
                    format!(
                        "{state}{}",
                        error.as_ref().map(|x| format!(": {x}")).unwrap_or_default()
                    ),
                ));
                continue;
            }
            Event::CancelRequested { .. } => {
                marks.push((e.at, "cancel requested".into()));
                continue;
            }
            _ => continue,
        };
        open.insert((lane, step), bars.len());
        bars.push(Bar {
            lane,
            label: format!("{step}: {label}"),
            detail,
            start: e.at,
            end: None,
            ok: None,
        });
    }
    let span = (t_end - t0) as f64;
    let pct = |t: i64| (t - t0) as f64 / span * 100.0;
    let mut rows = String::new();
    for b in &bars {
        let end = b.end.unwrap_or(t_end);
        let class = match (b.lane, b.ok) {
            (_, Some(false)) => "failed",
            (_, None) => "open",
            ("undo", _) => "undo",
            ("commit", _) => "commit",
            _ => "ok",
        };
        rows += &format!(
            "<div class=row><div class=label>{}</div><div class=track><div class='bar {class}' style='left:{:.3}%;width:{:.3}%' title=\"{}\"></div><span class=ms style='left:{:.3}%'>{} ms</span></div></div>\n",
            escape(&b.label),
            pct(b.start),
            (pct(end) - pct(b.start)).max(0.3),
            escape(&format!("{}\n{} ms", b.detail, end - b.start)),
            pct(end).min(92.0),
            end - b.start
        );
    }
    let mut mark_html = String::new();
    for (at, text) in &marks {
        mark_html += &format!(
            "<div class=mark style='left:{:.3}%' title=\"{}\"></div>",
            pct(*at),
            escape(text)
        );
    }
    let legend: String = marks
        .iter()
        .map(|(at, t)| {
            format!(
                "<li>+{:.3} s — {}</li>",
                (at - t0) as f64 / 1000.0,
                escape(t)
            )
        })
        .collect();
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Deckhand job {id}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; color: #222; }}
h1 {{ font-size: 1.3em; }} .meta {{ color: #555; }}
.chart {{ position: relative; margin-top: 1em; }}
.row {{ display: flex; align-items: center; height: 24px; }}
.label {{ width: 260px; font-family: monospace; font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
.track {{ position: relative; flex: 1; height: 18px; background: #f4f4f4; }}
.bar {{ position: absolute; top: 2px; height: 14px; border-radius: 3px; }}
.ok {{ background: #3b82f6; }} .undo {{ background: #f59e0b; }} .commit {{ background: #10b981; }}
.failed {{ background: #ef4444; }} .open {{ background: repeating-linear-gradient(45deg,#999,#999 4px,#ccc 4px,#ccc 8px); }}
.ms {{ position: absolute; top: 1px; margin-left: 4px; font-size: 11px; color: #555; }}
.marks {{ position: absolute; top: 0; bottom: 0; left: 260px; right: 0; pointer-events: none; }}
.mark {{ position: absolute; top: 0; bottom: 0; border-left: 1px dashed #888; pointer-events: auto; }}
.key span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: middle; }}
</style></head><body>
<h1>{workflow} on <code>{target}</code> — {state}</h1>
<p class=meta>job {id} · params <code>{params}</code> · {secs:.3} s{error}</p>
<p class=key><span class=ok></span>step <span class=undo></span>undo <span class=commit></span>commit <span class=failed></span>failed <span class=open></span>no result</p>
<div class=chart>{rows}<div class=marks>{mark_html}</div></div>
<h2>States</h2><ul>{legend}</ul>
</body></html>
"#,
        id = job.id,
        workflow = escape(&job.workflow),
        target = escape(&job.target),
        state = job.state,
        params = escape(&job.params.to_string()),
        secs = (t_end - t0) as f64 / 1000.0,
        error = job
            .error
            .as_ref()
            .map(|e| format!(" · {}", escape(e)))
            .unwrap_or_default(),
    )
}
