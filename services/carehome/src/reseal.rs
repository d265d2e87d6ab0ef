//! Free text that releases before 2026-12-07 stored in clear in the log (issue
//! descriptions, out-of-service and retirement reasons, repair notes of trishaws; closure
//! reasons of care homes) is sealed in place under the trishaw's or care home's key, as
//! new events are (`grpc::seal_text`): the one sanctioned in-place change of the log
//! (`EventStore::rewrite_payloads`, docs/eventlog.md), run by `samskab migrate`.

use eventlog::{Cursor, EventStore, Filter, PayloadRewrite, RecordedEvent};
use keystore::KeyStore;
use uuid::Uuid;

use crate::grpc::{bike_subject, carehome_subject};

/// The words of the audit entry.
pub const REASON: &str = "samskab migrate: free text about trishaws and closures that an older release stored in \
                          clear, sealed under the trishaw's or care home's key (issue 17)";

/// The event types with free text, its field, and the id field naming the key's subject.
const FREE_TEXT: [(&str, &str, &str); 5] = [
    ("BikeIssueReported", "description", "bike_id"),
    ("BikeTakenOutOfService", "reason", "bike_id"),
    ("BikeRepaired", "note", "bike_id"),
    ("BikeRetired", "reason", "bike_id"),
    ("CareHomeClosed", "reason", "carehome_id"),
];

/// An event of the log whose free text is in clear.
#[derive(Debug, Clone)]
pub struct ClearText {
    event: RecordedEvent,
    field: &'static str,
    subject: String,
    text: String,
}

impl ClearText {
    /// The event's id.
    pub fn event_id(&self) -> Uuid {
        self.event.id
    }

    /// The payload field in clear.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

/// Whether `e` holds free text in clear: the field, its key's subject and the text.
fn clear_text(e: &RecordedEvent) -> Result<Option<ClearText>, eventlog::Error> {
    let Some((_, field, id_field)) = FREE_TEXT.iter().find(|(t, _, _)| *t == e.event_type) else {
        return Ok(None);
    };
    let payload: serde_json::Value = e.payload_as()?;
    let text = match payload.get(*field).and_then(|v| v.as_str()) {
        Some(t) if !t.is_empty() && !t.starts_with(domain::types::Sealed::PREFIX) => t.to_owned(),
        _ => return Ok(None),
    };
    let id = payload
        .get(*id_field)
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| eventlog::Error::Corrupt(format!("{} {}: no {id_field}", e.event_type, e.id)))?;
    let subject = if *id_field == "bike_id" { bike_subject(id) } else { carehome_subject(id) };
    Ok(Some(ClearText { event: e.clone(), field, subject, text }))
}

/// The events of the log whose free text is in clear (none on a log written by this
/// release), read without any key.
pub async fn pending(store: &EventStore) -> Result<Vec<ClearText>, eventlog::Error> {
    // Everything committed before this call, also what PostgreSQL's gap-safe reader does
    // not show yet while an older transaction anywhere in the cluster is open.
    let last = store.last_committed().await?;
    if !store.wait_until_readable(last, std::time::Duration::from_secs(30)).await? {
        return Err(eventlog::Error::Handler("the log's last events did not become readable within 30 s".into()));
    }
    let mut found = Vec::new();
    for category in ["bike-", "carehome-"] {
        let filter = Filter::category(category);
        let mut cursor = Cursor::START;
        loop {
            let page = store.read_all(cursor, &filter, 1000).await?;
            for e in &page.events {
                if let Some(c) = clear_text(e)? {
                    found.push(c);
                }
            }
            if page.events.is_empty() {
                break;
            }
            cursor = page.next;
        }
    }
    Ok(found)
}

/// Seals each event's clear text under its subject's key and rewrites the events in one
/// transaction with one audit entry; returns the entry's id (`None`: nothing was in clear).
/// Text of a subject whose key was erased cannot be sealed and is removed (nobody could
/// read it any more).
pub async fn reseal(store: &EventStore, keys: &KeyStore, found: Vec<ClearText>) -> Result<Option<i64>, Error> {
    let mut rewrites = Vec::with_capacity(found.len());
    for c in found {
        let sealed = match keys.seal(&c.subject, "text", &c.text).await {
            Ok(s) => s.0,
            Err(keystore::Error::Erased(_)) => String::new(),
            Err(e) => return Err(Error::Keys(e)),
        };
        let mut payload: serde_json::Value = c.event.payload_as()?;
        payload[c.field] = serde_json::Value::String(sealed);
        rewrites.push(PayloadRewrite::new(&c.event, &payload, vec![c.field.to_owned()]));
    }
    Ok(store.rewrite_payloads(REASON, rewrites).await?)
}

/// Errors of re-sealing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The log failed.
    #[error(transparent)]
    Store(#[from] eventlog::Error),
    /// The key store failed.
    #[error(transparent)]
    Keys(#[from] keystore::Error),
}
