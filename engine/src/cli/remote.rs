//! The CLI as a client of `deckhand serve` (`--server URL` or
//! `DECKHAND_URL`): the same commands, over the HTTP API, with progress read
//! from the job's event stream (reconnecting with `Last-Event-ID`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::live::{LiveView, summary_line};
use crate::executor::JobRequest;
use crate::journal::{Event, EventRecord, JobState};

/// An API client.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// What a job's event stream yields.
pub enum StreamItem {
    /// A journal event.
    Event(Event),
    /// The job ended; its final JSON.
    End(Value),
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8420`).
    pub fn new(base: &str, token: Option<String>) -> Self {
        Client {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        }
    }

    fn builder(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let b = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => b.bearer_auth(t),
            None => b,
        }
    }

    /// Call the API; a problem document becomes an error with its detail.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut b = self.builder(method, path);
        if let Some(body) = body {
            b = b.json(&body);
        }
        let resp = b
            .send()
            .await
            .with_context(|| format!("cannot reach the Deckhand server at {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["detail"].as_str().map(str::to_owned))
                .unwrap_or(text);
            bail!("{status}: {detail}");
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    /// Upload a component to register it under `name`.
    pub async fn upload_plugin(&self, name: &str, bytes: Vec<u8>) -> anyhow::Result<Value> {
        let resp = self
            .builder(Method::POST, &format!("/v1/plugins?name={name}"))
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .with_context(|| format!("cannot reach the Deckhand server at {}", self.base))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{status}: {}", v["detail"].as_str().unwrap_or("refused"));
        }
        Ok(v)
    }

    /// The events of a job recorded so far, with their sequence numbers and
    /// times, read from its event stream: to its end for a finished job
    /// (`true`); for one that goes on, those the server sends at once — the
    /// stream is read until it falls quiet for a moment (`false`).
    pub async fn recorded_events(&self, id: &str) -> anyhow::Result<(Vec<EventRecord>, bool)> {
        const QUIET: Duration = Duration::from_millis(500);
        let resp = self
            .builder(Method::GET, &format!("/v1/jobs/{id}/events"))
            .header("accept", "text/event-stream")
            .send()
            .await
            .with_context(|| format!("cannot reach the Deckhand server at {}", self.base))?;
        if !resp.status().is_success() {
            bail!("{}: the events of job {id} were refused", resp.status());
        }
        let job_id: crate::journal::JobId = id.parse().map_err(anyhow::Error::msg)?;
        let mut frames = resp.bytes_stream().eventsource();
        let mut events = Vec::new();
        loop {
            // A job has events from its creation on: wait longer for the first.
            let wait = if events.is_empty() {
                Duration::from_secs(5)
            } else {
                QUIET
            };
            let frame = match tokio::time::timeout(wait, frames.next()).await {
                Err(_) => return Ok((events, false)),
                Ok(None) => return Ok((events, false)),
                Ok(Some(frame)) => frame.context("reading the event stream")?,
            };
            match frame.event.as_str() {
                "end" => return Ok((events, true)),
                "snapshot" => continue,
                _ => {}
            }
            let data: Value = match serde_json::from_str(&frame.data) {
                Ok(v) => v,
                Err(_) => continue,
            };
            let Ok(event) = serde_json::from_value::<Event>(data.clone()) else {
                continue;
            };
            events.push(EventRecord {
                seq: data["seq"].as_i64().unwrap_or_default(),
                job_id: job_id.clone(),
                at: super::jobs::millis_of(&data["at"]),
                event,
            });
        }
    }

    /// Follow a job's events until it ends, reconnecting after a dropped
    /// connection from the last event seen.
    pub fn watch(&self, id: &str) -> mpsc::Receiver<anyhow::Result<StreamItem>> {
        let (tx, rx) = mpsc::channel(64);
        let (client, id) = (self.clone(), id.to_owned());
        tokio::spawn(async move {
            let mut last: Option<String> = None;
            let mut failures = 0;
            loop {
                let mut req = client
                    .builder(Method::GET, &format!("/v1/jobs/{id}/events"))
                    .header("accept", "text/event-stream");
                if let Some(l) = &last {
                    req = req.header("last-event-id", l);
                }
                match req.send().await {
                    Ok(resp) if resp.status().is_success() => {
                        let mut events = resp.bytes_stream().eventsource();
                        while let Some(ev) = events.next().await {
                            let Ok(ev) = ev else { break };
                            failures = 0;
                            if !ev.id.is_empty() {
                                last = Some(ev.id.clone());
                            }
                            let item = match ev.event.as_str() {
                                "end" => StreamItem::End(
                                    serde_json::from_str(&ev.data).unwrap_or_default(),
                                ),
                                "snapshot" => continue,
                                _ => match serde_json::from_str::<Event>(&ev.data) {
                                    Ok(e) => StreamItem::Event(e),
                                    Err(_) => continue,
                                },
                            };
                            let end = matches!(item, StreamItem::End(_));
                            if tx.send(Ok(item)).await.is_err() || end {
                                return;
                            }
                        }
                    }
                    Ok(resp) => {
                        let _ = tx
                            .send(Err(anyhow::anyhow!(
                                "event stream refused: {}",
                                resp.status()
                            )))
                            .await;
                        return;
                    }
                    Err(_) => {}
                }
                failures += 1;
                if failures > 20 {
                    let _ = tx
                        .send(Err(anyhow::anyhow!("lost the event stream of job {id}")))
                        .await;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        rx
    }
}

fn seconds_between(a: &Value, b: &Value) -> f64 {
    let t = |v: &Value| v.as_str().and_then(|s| humantime::parse_rfc3339(s).ok());
    match (t(a), t(b)) {
        (Some(a), Some(b)) => b.duration_since(a).map(|d| d.as_secs_f64()).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Render a job's stream until it ends; `cancel_on_ctrl_c` for the client
/// that started the job (a watching client never cancels).
pub async fn follow(client: &Client, id: &str, cancel_on_ctrl_c: bool) -> anyhow::Result<ExitCode> {
    let view = LiveView::new();
    let mut stream = client.watch(id);
    let mut ctrl_c_pressed = false;
    // One listener for the whole wait: a Ctrl-C between two polls is not lost.
    let mut interrupts = super::live::interrupts()?;
    let end = loop {
        tokio::select! {
            item = stream.recv() => match item {
                Some(Ok(StreamItem::Event(e))) => {
                    view.show(&e);
                    // A watcher nobody reads any more (`jobs watch ID | head`) stops.
                    if !cancel_on_ctrl_c && super::out::stdout_gone() {
                        view.finish();
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                Some(Ok(StreamItem::End(job))) => break job,
                Some(Err(e)) => { view.finish(); return Err(e); }
                None => { view.finish(); bail!("the event stream ended early"); }
            },
            _ = interrupts.recv(), if !ctrl_c_pressed => {
                ctrl_c_pressed = true;
                if !cancel_on_ctrl_c {
                    view.finish();
                    outln!("stopped watching; job {id} goes on (cancel it with `deckhand jobs cancel {id}`)");
                    return Ok(ExitCode::SUCCESS);
                }
                view.line(format!("Ctrl-C: cancelling job {id} and rolling back…"));
                let o = client.call(Method::POST, &format!("/v1/jobs/{id}/cancel"), None).await?;
                if o["cancelled"] != json!(true) {
                    view.line(format!("not cancelled: {}", o["reason"].as_str().unwrap_or_default()));
                }
            }
        }
    };
    view.finish();
    let state: JobState = end["state"]
        .as_str()
        .unwrap_or("failed")
        .parse()
        .map_err(anyhow::Error::msg)?;
    let secs = seconds_between(&end["created_at"], &end["updated_at"]);
    outln!(
        "{}",
        summary_line(state, secs, end["summary"].as_str(), end["error"].as_str())
    );
    Ok(if state == JobState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Submit a job to the server and follow it in the foreground.
pub async fn foreground(client: &Client, req: JobRequest) -> anyhow::Result<ExitCode> {
    let mut body = json!({ "workflow": req.workflow, "target": req.target, "params": req.params });
    if req.force {
        body["force"] = json!(true);
    }
    let job = client.call(Method::POST, "/v1/jobs", Some(body)).await?;
    let id = job["id"]
        .as_str()
        .context("the server answered without a job id")?
        .to_owned();
    outln!(
        "job {id} ({} {}) accepted",
        job["workflow"].as_str().unwrap_or(""),
        job["target"].as_str().unwrap_or("")
    );
    follow(client, &id, true).await
}
