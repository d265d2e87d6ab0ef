//! The audit trail of one object, served by the service that owns it: only that service
//! names its event types and builds its stream ids. Each service gives the stream of an
//! object (`stream_of`) and a few words on each of its events (`summary`), built from the
//! event's public payload (sealed values removed): facts, ids, times and counts, never a
//! name, note, story, address or other free text. Actors stay pseudonymous (a token's
//! `sub`, `system` for cascades and automatic steps).

use eventlog::{EventStore, RecordedEvent};
use samskab_proto::common::v1::{self as pb, audit_server::Audit};
use serde_json::Value;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{ServiceError, ServiceResult};

/// The stream holding an object of a type this service owns (`None`: not its type).
pub type StreamOf = fn(&str, Uuid) -> Option<String>;

/// A few words on an event, from its type and public payload.
pub type Summary = fn(&str, &Value) -> String;

/// A service's audit trails.
#[derive(Clone)]
pub struct AuditLog {
    store: EventStore,
    stream_of: StreamOf,
    summary: Summary,
}

impl AuditLog {
    /// The trails of the objects in `store`.
    pub fn new(store: EventStore, stream_of: StreamOf, summary: Summary) -> Self {
        AuditLog { store, stream_of, summary }
    }

    /// The gRPC service.
    pub fn into_server(self) -> pb::audit_server::AuditServer<Self> {
        pb::audit_server::AuditServer::new(self)
    }

    /// Every event of the object's stream, as audit entries, in order.
    pub async fn trail(&self, object_type: &str, object_id: &str) -> ServiceResult<Vec<pb::AuditEntry>> {
        let id = Uuid::parse_str(object_id).map_err(|_| ServiceError::invalid("/object_id", "must be a UUID"))?;
        let stream = (self.stream_of)(object_type, id)
            .ok_or_else(|| ServiceError::invalid("/object_type", "is not a type of this service"))?;
        let events = self.store.read_whole_stream(&stream).await.map_err(ServiceError::from)?;
        Ok(events.iter().map(|e| self.entry(e)).collect())
    }

    fn entry(&self, e: &RecordedEvent) -> pb::AuditEntry {
        let payload: Value = serde_json::from_str(e.payload.get()).unwrap_or(Value::Null);
        let public = domain::events::public_payload(&payload);
        let (actor, actor_role) = match &e.metadata.actor {
            Some(a) if !a.id.is_empty() => {
                (a.id.clone(), if a.role.is_empty() { "system".to_owned() } else { a.role.clone() })
            }
            _ => ("system".to_owned(), "system".to_owned()),
        };
        pb::AuditEntry {
            recorded_at: Some(samskab_proto::time::to_proto(e.recorded_at)),
            occurred_at: Some(samskab_proto::time::to_proto(e.occurred_at)),
            actor_role,
            actor,
            summary: (self.summary)(&e.event_type, &public),
            event_type: e.event_type.clone(),
            version: e.version,
            event_id: e.id.to_string(),
        }
    }
}

#[tonic::async_trait]
impl Audit for AuditLog {
    async fn trail(&self, req: Request<pb::AuditRequest>) -> Result<Response<pb::AuditTrail>, Status> {
        let r = req.into_inner();
        let entries = AuditLog::trail(self, &r.object_type, &r.object_id).await?;
        Ok(Response::new(pb::AuditTrail { entries }))
    }
}

/// A string field of a payload (`?` when absent).
pub fn field<'a>(d: &'a Value, name: &str) -> &'a str {
    d[name].as_str().unwrap_or("?")
}

/// The length of a list field.
pub fn count(d: &Value, name: &str) -> usize {
    d[name].as_array().map_or(0, Vec::len)
}

/// `1 rider`, `2 riders`.
pub fn plural(n: usize, one: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") }
}

/// A list field's values, comma-separated.
pub fn list(d: &Value, name: &str) -> String {
    d[name]
        .as_array()
        .map(|a| a.iter().map(|v| v.to_string().trim_matches('"').to_owned()).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// An event type in words, for a type a summary does not know (a newer writer's).
pub fn words(event_type: &str) -> String {
    let mut out = String::new();
    for (i, c) in event_type.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn helpers_read_facts_and_name_new_types_in_words() {
        let d = json!({"kind": "pleasure", "riders": ["a", "b"], "scope": ["rides", "stories"]});
        assert_eq!(field(&d, "kind"), "pleasure");
        assert_eq!(field(&d, "missing"), "?");
        assert_eq!(plural(count(&d, "riders"), "rider"), "2 riders");
        assert_eq!(plural(1, "rider"), "1 rider");
        assert_eq!(list(&d, "scope"), "rides, stories");
        assert_eq!(words("SomethingNewHappened"), "Something new happened");
    }
}
