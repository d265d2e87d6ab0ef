//! The values that go into and come out of the log: new events, stored events,
//! expected versions, metadata and the opaque cursor readers resume from.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::Error;

/// What the caller believes a stream's version is before its events are appended.
///
/// A stream's version is the number of events it holds; its events carry versions
/// 1, 2, 3, ... without gaps, so `Exact(0)` and `NoStream` mean the same thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet (hold no events).
    NoStream,
    /// The stream must hold exactly this many events.
    Exact(u64),
}

impl ExpectedVersion {
    /// The encoding used by the storage layer: -1 any, otherwise the exact version.
    pub(crate) fn code(self) -> i64 {
        match self {
            ExpectedVersion::Any => -1,
            ExpectedVersion::NoStream => 0,
            ExpectedVersion::Exact(n) => n as i64,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(n) => write!(f, "{n}"),
        }
    }
}

/// Who caused an event: a pseudonymous user id and a role, never a name or an e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Actor {
    /// Pseudonymous id of the user (the token's `sub`) or of a system process.
    pub id: String,
    /// The role the actor acted in (`pilot`, `coordinator`, `system`, ...).
    pub role: String,
}

/// Context stored with every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Metadata {
    /// The chapter the event belongs to: the tenant that feeds and reports are scoped by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Uuid>,
    /// Who caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// The request or process this event is part of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The command or event that directly caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The W3C `traceparent` of the request that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event's id (UUID v7); appending the same id twice is idempotent.
    pub id: Uuid,
    /// The event's type name, e.g. `RideBooked`.
    pub event_type: String,
    /// The version of the payload's schema.
    pub schema_version: i32,
    /// The payload as JSON text.
    pub payload: Box<RawValue>,
    /// Context: tenant, actor, correlation, causation, trace.
    pub metadata: Metadata,
    /// When it happened (UTC).
    pub occurred_at: DateTime<Utc>,
}

impl NewEvent {
    /// A new event with a fresh UUID v7, occurring now, with a payload serialised from `payload`.
    pub fn new(event_type: impl Into<String>, payload: &impl Serialize) -> Result<Self, Error> {
        Self::with_id(Uuid::now_v7(), event_type, payload)
    }

    /// A new event with the given id, occurring now.
    pub fn with_id(id: Uuid, event_type: impl Into<String>, payload: &impl Serialize) -> Result<Self, Error> {
        let text = serde_json::to_string(payload).map_err(Error::Payload)?;
        Ok(NewEvent {
            id,
            event_type: event_type.into(),
            schema_version: 1,
            payload: RawValue::from_string(text).map_err(Error::Payload)?,
            metadata: Metadata::default(),
            occurred_at: Utc::now(),
        })
    }

    /// Sets the metadata.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the schema version of the payload.
    pub fn schema_version(mut self, schema_version: i32) -> Self {
        self.schema_version = schema_version;
        self
    }

    /// Sets when the event occurred.
    pub fn occurred_at(mut self, at: DateTime<Utc>) -> Self {
        self.occurred_at = at;
        self
    }

    /// The hash that decides whether a replayed id carries "the same content": stream,
    /// type, schema version and payload. Metadata and times are left out on purpose: a
    /// retry legitimately carries another trace and another clock reading.
    pub(crate) fn content_hash(&self, stream_id: &str) -> Vec<u8> {
        content_hash(stream_id, &self.event_type, self.schema_version, self.payload.get())
    }
}

/// The content hash of an event (see [`NewEvent::content_hash`]); also what a sanctioned
/// rewrite of a stored payload recomputes (`EventStore::rewrite_payloads`).
pub(crate) fn content_hash(stream_id: &str, event_type: &str, schema_version: i32, payload: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    for part in
        [stream_id.as_bytes(), event_type.as_bytes(), &schema_version.to_be_bytes(), canonical_json(payload).as_bytes()]
    {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().to_vec()
}

/// JSON with object keys sorted, so that two serialisations of one value hash alike
/// (sorted by hand: serde_json's key order depends on a crate feature).
fn canonical_json(text: &str) -> String {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => {
            let mut out = String::with_capacity(text.len());
            write(&v, &mut out);
            out
        }
        Err(_) => text.to_owned(),
    }
}

/// The events to append to one stream, with the version the caller expects it to have.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    /// The stream's id; its category is the part before the first `-`.
    pub stream_id: String,
    /// The version the stream must have for the append to go through.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<NewEvent>,
}

impl StreamAppend {
    /// Events for one stream with an expectation.
    pub fn new(stream_id: impl Into<String>, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        StreamAppend { stream_id: stream_id.into(), expected, events }
    }
}

/// Where one appended event landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The event's id.
    pub event_id: Uuid,
    /// Its stream.
    pub stream_id: String,
    /// Its version within the stream.
    pub version: u64,
    /// Its global position.
    pub position: i64,
    /// The cursor that points at it (a reader resuming from it reads what follows).
    pub cursor: Cursor,
}

/// The result of an append call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// Every event of the call, in the order given.
    pub events: Vec<Appended>,
    /// True when every id was already stored with the same content and nothing was written.
    pub replayed: bool,
}

impl AppendResult {
    /// The cursor of the last event of the call: a reader that has reached it has seen the write.
    pub fn last_cursor(&self) -> Option<Cursor> {
        self.events.iter().map(|e| e.cursor).max()
    }

    /// The stream's version after the call.
    pub fn stream_version(&self, stream_id: &str) -> Option<u64> {
        self.events.iter().filter(|e| e.stream_id == stream_id).map(|e| e.version).max()
    }
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    /// The event's id.
    pub id: Uuid,
    /// Its stream.
    pub stream_id: String,
    /// Its version within the stream (1-based, contiguous).
    pub version: u64,
    /// Its global position.
    pub position: i64,
    /// Where a reader that has processed this event resumes.
    pub cursor: Cursor,
    /// The event's type name.
    pub event_type: String,
    /// The version of its payload's schema.
    pub schema_version: i32,
    /// The payload as JSON text.
    pub payload: Box<RawValue>,
    /// Its context.
    pub metadata: Metadata,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// When the log stored it.
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// Deserialises the payload.
    pub fn payload_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Error> {
        serde_json::from_str(self.payload.get()).map_err(Error::Payload)
    }

    /// The stream's category: the part of its id before the first `-`.
    pub fn category(&self) -> &str {
        self.stream_id.split('-').next().unwrap_or(&self.stream_id)
    }
}

/// A reader's place in the log.
///
/// On PostgreSQL it is the pair (transaction id, position), because transactions commit
/// out of position order; on SQLite writers are serialised and the transaction part is 0.
/// Clients see it only as an opaque string (`Display` / `FromStr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cursor {
    pub(crate) tx: u64,
    pub(crate) position: i64,
}

impl Cursor {
    /// The cursor before the first event.
    pub const START: Cursor = Cursor { tx: 0, position: 0 };

    /// The global position of the event this cursor points at (0 at the start).
    pub fn position(&self) -> i64 {
        self.position
    }
}

const CURSOR_PREFIX: &str = "c1.";

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{CURSOR_PREFIX}{:x}.{:x}", self.tx, self.position)
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || Error::BadCursor(s.chars().take(64).collect());
        let rest = s.strip_prefix(CURSOR_PREFIX).ok_or_else(bad)?;
        let (tx, pos) = rest.split_once('.').ok_or_else(bad)?;
        let tx = u64::from_str_radix(tx, 16).map_err(|_| bad())?;
        let position = i64::from_str_radix(pos, 16).map_err(|_| bad())?;
        if position < 0 {
            return Err(bad());
        }
        Ok(Cursor { tx, position })
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Which events a reader wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only streams whose id starts with this prefix (a category such as `ride-`).
    pub stream_prefix: Option<String>,
    /// Only events of this tenant (chapter).
    pub tenant: Option<Uuid>,
}

impl Filter {
    /// Every event.
    pub fn all() -> Self {
        Filter::default()
    }

    /// The events of one category (stream-id prefix).
    pub fn category(prefix: impl Into<String>) -> Self {
        Filter { stream_prefix: Some(prefix.into()), tenant: None }
    }
}

/// A page of the log.
#[derive(Debug, Clone)]
pub struct Page {
    /// The events, in log order.
    pub events: Vec<RecordedEvent>,
    /// Where to read next; equal to the request's cursor when nothing new was readable.
    pub next: Cursor,
}

/// A page of `events` read after `after` with at most `limit` of them. `head` is the last
/// cursor of the log in the read's snapshot, when a filtered read asked for it: a page
/// shorter than the limit holds every matching event up to it, so reading resumes there
/// and skips the events the filter left out instead of scanning them again.
pub(crate) fn page(events: Vec<RecordedEvent>, after: Cursor, limit: usize, head: Option<Cursor>) -> Page {
    let last = events.last().map_or(after, |e| e.cursor);
    let next = match head {
        Some(head) if events.len() < limit && head > last => head,
        _ => last,
    };
    Page { events, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_as_an_opaque_string() {
        let c = Cursor { tx: 0x1234_5678_9abc, position: 42 };
        let s = c.to_string();
        assert_eq!(s.parse::<Cursor>().unwrap(), c);
        assert!("42".parse::<Cursor>().is_err());
        assert!("c1.x.1".parse::<Cursor>().is_err());
        assert_eq!(Cursor::START.to_string().parse::<Cursor>().unwrap(), Cursor::START);
    }

    #[test]
    fn cursors_order_by_transaction_then_position() {
        let a = Cursor { tx: 5, position: 9 };
        let b = Cursor { tx: 6, position: 3 };
        assert!(a < b);
    }

    #[test]
    fn content_hash_ignores_key_order_but_not_values() {
        let a = NewEvent::with_id(Uuid::nil(), "T", &serde_json::json!({"a": 1, "b": 2})).unwrap();
        let mut b = a.clone();
        b.payload = RawValue::from_string(r#"{"b":2,"a":1}"#.into()).unwrap();
        assert_eq!(a.content_hash("s"), b.content_hash("s"));
        b.payload = RawValue::from_string(r#"{"b":3,"a":1}"#.into()).unwrap();
        assert_ne!(a.content_hash("s"), b.content_hash("s"));
        assert_ne!(a.content_hash("s"), a.content_hash("t"));
    }
}
