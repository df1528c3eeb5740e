//! The CLI commands that can talk to a running daemon's operations API
//! instead of opening the store (`--api URL --token-file FILE`): alarms,
//! ack, unack, history and silence. They return the text the local commands
//! print, from the same typed values and the same renderer.
//!
//! Nothing here reads the configuration or the store.

use crate::alarm::silence::{NewSilence, Silence};
use crate::api::client::{ApiClient, ClientError};
use crate::render;
use crate::store::{AlarmRow, HistoryRow};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

fn json_text<T: serde::Serialize + ?Sized>(
    value: &T,
    json: bool,
    text: impl FnOnce(&T) -> String,
) -> Result<String, ClientError> {
    render::render(value, json, text)
        .map_err(|e| ClientError::Setup(format!("encoding the answer: {e}")))
}

/// `laxmon alarms --api`.
pub async fn alarms(client: &ApiClient, open: bool, json: bool) -> Result<String, ClientError> {
    let rows: AlarmsPage = client.get(&format!("/alarms?open={open}")).await?;
    json_text(&rows.alarms[..], json, render::alarms_text)
}

#[derive(Deserialize)]
struct AlarmsPage {
    alarms: Vec<AlarmRow>,
}

/// `laxmon ack --api`: the author is the token's name.
pub async fn ack(
    client: &ApiClient,
    id: u64,
    comment: &str,
    expires: Option<&str>,
    sticky: bool,
) -> Result<String, ClientError> {
    let mut body = json!({"comment": comment, "sticky": sticky});
    if let Some(e) = expires {
        body["expires"] = json!(e);
    }
    let alarm: AlarmRow = client.post(&format!("/alarms/{id}/ack"), &body).await?;
    Ok(format!(
        "alarm {} acknowledged by {}\n",
        alarm.id,
        alarm.ack_by.as_deref().unwrap_or("?")
    ))
}

/// `laxmon unack --api`.
pub async fn unack(client: &ApiClient, id: u64) -> Result<String, ClientError> {
    let alarm: AlarmRow = client
        .post(&format!("/alarms/{id}/unack"), &json!({}))
        .await?;
    Ok(format!("alarm {} is no longer acknowledged\n", alarm.id))
}

/// `laxmon history --api`.
pub async fn history(
    client: &ApiClient,
    check: &str,
    since: Duration,
    json: bool,
) -> Result<String, ClientError> {
    let path = format!(
        "/checks/{}/results?since_s={}",
        crate::alarm::template::url_encode(check),
        since.as_secs()
    );
    let rows: Vec<HistoryRow> = client.get(&path).await?;
    json_text(&rows[..], json, |r| render::history_text(check, r))
}

/// `laxmon silence list --api`.
pub async fn silences(client: &ApiClient, all: bool, json: bool) -> Result<String, ClientError> {
    let rows: Vec<Silence> = client.get(&format!("/silences?all={all}")).await?;
    json_text(&rows[..], json, render::silences_text)
}

#[derive(Deserialize)]
struct SilenceAnswer {
    silence: Option<Silence>,
    checks: Vec<String>,
}

/// `laxmon silence add --api`: the author is the token's name.
pub async fn add_silence(
    client: &ApiClient,
    new: &NewSilence,
    dry_run: bool,
    json: bool,
) -> Result<String, ClientError> {
    let body = json!({
        "matchers": new.matchers,
        "comment": new.comment,
        "starts": new.starts,
        "ends": new.ends.to_rfc3339(),
        "dry_run": dry_run,
    });
    let answer: SilenceAnswer = client.post("/silences", &body).await?;
    match answer.silence {
        Some(s) => json_text(&s, json, |s| render::silence_added_text(s, &answer.checks)),
        None => Ok(render::silence_preview_text(new, &answer.checks)),
    }
}

/// `laxmon silence remove --api`.
pub async fn remove_silence(client: &ApiClient, id: u64) -> Result<String, ClientError> {
    let s: Silence = client.delete(&format!("/silences/{id}")).await?;
    Ok(format!(
        "silence {id} ({}) removed by {}; what it held back happens now\n",
        s.comment,
        s.removed_by.as_deref().unwrap_or("?")
    ))
}
