//! The one sanctioned in-place change of stored events: an operator's migration replaces
//! payloads (free text an older release stored in clear, now sealed), recomputes each
//! event's content hash and records the run in `eventlog_rewrites`, all in one transaction.
//! Nothing else ever updates `eventlog_events` (components may not: `grant_component_role`).

use uuid::Uuid;

use crate::consumer::Tx;
use crate::model::content_hash;
use crate::{Error, EventStore, RecordedEvent};

/// One stored event's payload to replace.
#[derive(Debug, Clone)]
pub struct PayloadRewrite {
    /// The event.
    pub event_id: Uuid,
    stream_id: String,
    event_type: String,
    schema_version: i32,
    /// The content hash of the payload as it was read: the rewrite is refused if the stored
    /// event changed since.
    read_hash: Vec<u8>,
    payload: String,
    /// The payload fields that changed (recorded in the audit entry; never their content).
    pub fields: Vec<String>,
}

impl PayloadRewrite {
    /// Replaces `event`'s payload (as read) by `payload`; `fields` names what changed.
    pub fn new(event: &RecordedEvent, payload: &serde_json::Value, fields: Vec<String>) -> Self {
        PayloadRewrite {
            event_id: event.id,
            stream_id: event.stream_id.clone(),
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            read_hash: content_hash(&event.stream_id, &event.event_type, event.schema_version, event.payload.get()),
            payload: payload.to_string(),
            fields,
        }
    }
}

/// A recorded rewrite (a row of `eventlog_rewrites`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteEntry {
    /// Its number.
    pub rewrite_id: i64,
    /// Why (the migration's words).
    pub reason: String,
    /// The events and fields rewritten: `[{"event_id", "stream_id", "event_type", "fields"}]`.
    pub events: serde_json::Value,
    /// How many events.
    pub event_count: i64,
    /// When (RFC 3339, UTC).
    pub rewritten_at: String,
}

impl EventStore {
    /// Replaces the payloads of stored events in place, recomputes their content hashes and
    /// records one audit entry naming the events and fields, in one transaction: if any
    /// event is missing or changed since it was read, nothing is written
    /// ([`Error::Rewrite`]). Event ids, streams, versions, positions, metadata and times
    /// stay as they were, so readers' cursors are unaffected; a reader that already
    /// processed an event does not see it again. Returns the entry's id, or `None` when
    /// there was nothing to rewrite (no entry is recorded then).
    ///
    /// This is for operators' migrations run while the services are stopped (`samskab
    /// migrate`); a service never calls it.
    pub async fn rewrite_payloads(&self, reason: &str, rewrites: Vec<PayloadRewrite>) -> Result<Option<i64>, Error> {
        if rewrites.is_empty() {
            return Ok(None);
        }
        let reason = reason.to_owned();
        let events = serde_json::Value::Array(
            rewrites
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "event_id": r.event_id,
                        "stream_id": r.stream_id,
                        "event_type": r.event_type,
                        "fields": r.fields,
                    })
                })
                .collect(),
        )
        .to_string();
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let id = self
            .transaction(move |tx| {
                Box::pin(async move {
                    let count = rewrites.len() as i64;
                    for r in &rewrites {
                        let hash = content_hash(&r.stream_id, &r.event_type, r.schema_version, &r.payload);
                        let changed = match tx {
                            Tx::Sqlite(conn) => sqlx::query(
                                "UPDATE eventlog_events SET payload = $2, content_hash = $3 \
                                 WHERE event_id = $1 AND content_hash = $4",
                            )
                            .bind(r.event_id)
                            .bind(&r.payload)
                            .bind(&hash)
                            .bind(&r.read_hash)
                            .execute(&mut **conn)
                            .await?
                            .rows_affected(),
                            Tx::Postgres(conn) => sqlx::query(
                                "UPDATE eventlog_events SET payload = $2::json, content_hash = $3 \
                                 WHERE event_id = $1 AND content_hash = $4",
                            )
                            .bind(r.event_id)
                            .bind(&r.payload)
                            .bind(&hash)
                            .bind(&r.read_hash)
                            .execute(&mut **conn)
                            .await?
                            .rows_affected(),
                        };
                        if changed != 1 {
                            return Err(Error::Rewrite(format!(
                                "event {} ({}) is missing or changed since it was read",
                                r.event_id, r.event_type
                            )));
                        }
                    }
                    let insert = "INSERT INTO eventlog_rewrites (reason, events, event_count, rewritten_at) \
                                  VALUES ($1, $2, $3, $4) RETURNING rewrite_id";
                    let id: i64 = match tx {
                        Tx::Sqlite(conn) => {
                            sqlx::query_scalar(insert)
                                .bind(&reason)
                                .bind(&events)
                                .bind(count)
                                .bind(&at)
                                .fetch_one(&mut **conn)
                                .await?
                        }
                        Tx::Postgres(conn) => {
                            sqlx::query_scalar(
                                "INSERT INTO eventlog_rewrites (reason, events, event_count, rewritten_at) \
                                 VALUES ($1, $2::json, $3, $4) RETURNING rewrite_id",
                            )
                            .bind(&reason)
                            .bind(&events)
                            .bind(count)
                            .bind(&at)
                            .fetch_one(&mut **conn)
                            .await?
                        }
                    };
                    Ok(id)
                })
            })
            .await?;
        Ok(Some(id))
    }

    /// Every recorded rewrite, oldest first.
    pub async fn rewrites(&self) -> Result<Vec<RewriteEntry>, Error> {
        let rows: Vec<(i64, String, String, i64, String)> = self
            .fetch_rows(
                "SELECT rewrite_id, reason, CAST(events AS TEXT), event_count, rewritten_at \
                 FROM eventlog_rewrites ORDER BY rewrite_id",
                &[],
            )
            .await?;
        rows.into_iter()
            .map(|(rewrite_id, reason, events, event_count, rewritten_at)| {
                Ok(RewriteEntry {
                    rewrite_id,
                    reason,
                    events: serde_json::from_str(&events).map_err(Error::Payload)?,
                    event_count,
                    rewritten_at,
                })
            })
            .collect()
    }
}
