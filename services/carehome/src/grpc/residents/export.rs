//! ExportResident (GDPR access): everything the service holds about one resident, as
//! JSON: the current record with personal fields opened, and every event of their stream
//! with its metadata, sealed values replaced by what they open to (null once erased).

use domain::types::Sealed;
use samskab_proto::carehome::v1 as pb;
use serde_json::{Value, json};
use servicekit::{ServiceError, ServiceResult};

use super::{Handlers, existing, id, open, rfc3339, view};
use crate::residents;

/// ExportResident.
pub async fn export(h: &Handlers, req: pb::IdRequest) -> ServiceResult<pb::PersonalExport> {
    let resident_id = id("/id", &req.id)?;
    let (r, version, chapter_id) = existing(h, resident_id).await?;
    let current = view(h, &r, chapter_id, version).await?;
    let stored = h.store.read_whole_stream(&residents::stream(resident_id)).await?;
    let mut events = Vec::with_capacity(stored.len());
    for e in &stored {
        let mut data: Value = serde_json::from_str(e.payload.get())
            .map_err(|err| ServiceError::Internal(format!("{} v{}: {err}", e.stream_id, e.version)))?;
        if let Some(Value::String(s)) = data.get("personal")
            && s.starts_with(Sealed::PREFIX)
        {
            let opened = open(h, resident_id, &Sealed(s.clone())).await?;
            data["personal"] = serde_json::to_value(opened).unwrap_or(Value::Null);
        }
        events.push(json!({
            "event_id": e.id,
            "type": e.event_type,
            "version": e.version,
            "occurred_at": rfc3339(e.occurred_at),
            "recorded_at": rfc3339(e.recorded_at),
            "actor": e.metadata.actor.as_ref().map(|a| json!({"id": a.id, "role": a.role})),
            "data": data,
        }));
    }
    let consent =
        current.consent.as_ref().map(|c| json!({"given_by": c.given_by, "given_at": c.given_at, "scope": c.scope}));
    let doc = json!({
        "resident": {
            "resident_id": current.resident_id,
            "carehome_id": current.carehome_id,
            "chapter_id": current.chapter_id,
            "status": current.status,
            "erased": current.erased,
            "display_name": (!current.erased).then_some(&current.display_name),
            "notes": (!current.notes.is_empty()).then_some(&current.notes),
            "consent": consent,
            "version": current.version,
        },
        "events": events,
    });
    let json = serde_json::to_string_pretty(&doc).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(pb::PersonalExport { json })
}
