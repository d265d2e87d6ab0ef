//! The audit trail of one object: who did what and when, answered by the service that owns
//! the object (its `Audit` service names its events and knows its streams; the gateway
//! scopes and renders). Actors stay pseudonymous ids (a token's `sub`, `system` for
//! cascades); summaries are built by the owner from the events' public payloads only, and
//! name nobody.

use access::{Action, Object};
use axum::extract::State;
use samskab_proto::common::v1 as common;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::clients::{Found, Service};
use crate::extract::Params;
use crate::problem::{ApiError, Problem};
use crate::routes::{bikes, carehomes, chapters, pilots, requests, residents, rides, series};
use crate::views::time;

/// The object types of `?object_type=`.
pub const OBJECT_TYPES: &[&str] =
    &["chapter", "carehome", "bike", "resident", "pilot", "ride", "ride_request", "ride_series"];

/// `GET /v1/audit` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// `chapter`, `carehome`, `bike`, `resident`, `pilot`, `ride`, `ride_request` or `ride_series`.
    #[param(pattern = "^(chapter|carehome|bike|resident|pilot|ride|ride_request|ride_series)$")]
    pub object_type: String,
    /// The object's id.
    pub object_id: Uuid,
}

/// One thing done to the object.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditItem {
    /// When it was recorded (UTC).
    pub at: Option<String>,
    /// When it happened, as the event says (UTC).
    pub occurred_at: Option<String>,
    /// The role it was done in (`system` for cascades and automatic steps).
    pub actor_role: String,
    /// Who: a pseudonymous user id (a token's `sub`), never a name.
    pub actor: String,
    /// The event's name (`RideBooked`, ...).
    #[serde(rename = "type")]
    pub event_type: String,
    /// What happened, in a few words, without personal data.
    pub summary: String,
    /// The object's version after it.
    pub version: u64,
    /// The event's id.
    pub event_id: String,
}

/// The trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditTrail {
    /// In the order they happened.
    pub items: Vec<AuditItem>,
}

/// The object's chapter (the caller may read it, else 404) and the service that owns it.
async fn locate(s: &AppState, caller: &Caller, kind: &str, id: Uuid) -> Result<(Uuid, Service), ApiError> {
    let chapter = |c: &str| c.parse::<Uuid>().map_err(|_| ApiError::not_found());
    Ok(match kind {
        "chapter" => (chapters::visible(s, caller, id).await.map(|_| id)?, Service::CareHome),
        "carehome" => (chapter(&carehomes::visible(s, caller, id).await?.chapter_id)?, Service::CareHome),
        "bike" => (bikes::visible(s, caller, id).await?.chapter, Service::CareHome),
        "resident" => (chapter(&residents::visible(s, caller, id).await?.chapter_id)?, Service::CareHome),
        "pilot" => (chapter(&pilots::visible(s, caller, id).await?.chapter_id)?, Service::Volunteer),
        "ride" => (chapter(&rides::visible(s, caller, id).await?.chapter_id)?, Service::Booking),
        "ride_request" => (chapter(&requests::visible(s, caller, id).await?.chapter_id)?, Service::Booking),
        "ride_series" => (chapter(&series::visible(s, caller, id).await?.chapter_id)?, Service::Booking),
        _ => return Err(ApiError::invalid("/object_type", format!("must be one of {}", OBJECT_TYPES.join(", ")))),
    })
}

/// Who did what and when on one object (its chapter's admin, admin).
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditTrail), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn audit(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<AuditQuery>,
) -> Result<axum::Json<AuditTrail>, ApiError> {
    if !OBJECT_TYPES.contains(&q.object_type.as_str()) {
        return Err(ApiError::invalid("/object_type", format!("must be one of {}", OBJECT_TYPES.join(", "))));
    }
    let (chapter, service) = locate(&s, &caller, &q.object_type, q.object_id).await?;
    if !caller.may(Action::ReadAudit, &Object::Chapter(chapter)) {
        return Err(ApiError::forbidden());
    }
    let trail = s
        .clients
        .audit(service)
        .trail(common::AuditRequest { object_type: q.object_type.clone(), object_id: q.object_id.to_string() })
        .await
        .reply()?;
    let items = trail
        .entries
        .into_iter()
        .map(|e| AuditItem {
            at: time(&e.recorded_at),
            occurred_at: time(&e.occurred_at),
            actor_role: e.actor_role,
            actor: e.actor,
            summary: e.summary,
            event_type: e.event_type,
            version: e.version,
            event_id: e.event_id,
        })
        .collect();
    Ok(axum::Json(AuditTrail { items }))
}

/// The audit route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit))
}
