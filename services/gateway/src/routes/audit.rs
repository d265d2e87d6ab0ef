//! The audit trail of one object: who did what and when, read from the log of the service
//! that owns it (the object's own stream). Actors stay pseudonymous ids (a token's `sub`,
//! `system` for cascades); summaries are built from the events' public payloads only, and
//! name nobody.

use axum::extract::State;
use samskab_proto::common::v1 as common;
use samskab_proto::common::v1::event_feed_client::EventFeedClient;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::clients::req;
use crate::extract::Params;
use crate::problem::{ApiError, Problem};
use crate::routes::{bikes, carehomes, chapters, pilots, requests, residents, rides};
use crate::views::time;

/// The object types of `?object_type=`.
pub const OBJECT_TYPES: &[&str] = &["chapter", "carehome", "bike", "resident", "pilot", "ride", "ride_request"];

/// Pages read from a service per audit (1000 events each).
const MAX_PAGES: usize = 50;

/// `GET /v1/audit` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// `chapter`, `carehome`, `bike`, `resident`, `pilot`, `ride` or `ride_request`.
    #[param(pattern = "^(chapter|carehome|bike|resident|pilot|ride|ride_request)$")]
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

/// Which service holds an object's stream.
#[derive(Clone, Copy)]
enum Service {
    Booking,
    CareHome,
    Volunteer,
}

/// The object's chapter (the caller may read it, else 404), service and stream.
async fn locate(s: &AppState, caller: &Caller, kind: &str, id: Uuid) -> Result<(Uuid, Service, String), ApiError> {
    let chapter = |c: &str| c.parse::<Uuid>().map_err(|_| ApiError::not_found());
    Ok(match kind {
        "chapter" => (chapters::visible(s, caller, id).await.map(|_| id)?, Service::CareHome, format!("chapter-{id}")),
        "carehome" => {
            let h = carehomes::visible(s, caller, id).await?;
            (chapter(&h.chapter_id)?, Service::CareHome, format!("carehome-{id}"))
        }
        "bike" => (bikes::visible(s, caller, id).await?.chapter, Service::CareHome, format!("bike-{id}")),
        "resident" => {
            let r = residents::visible(s, caller, id).await?;
            (chapter(&r.chapter_id)?, Service::CareHome, format!("resident-{id}"))
        }
        "pilot" => {
            let p = pilots::visible(s, caller, id).await?;
            (chapter(&p.chapter_id)?, Service::Volunteer, format!("pilot-{id}"))
        }
        "ride" => {
            let r = rides::visible(s, caller, id).await?;
            (chapter(&r.chapter_id)?, Service::Booking, format!("ride-{id}"))
        }
        "ride_request" => {
            let r = requests::visible(s, caller, id).await?;
            (chapter(&r.chapter_id)?, Service::Booking, format!("riderequest-{id}"))
        }
        _ => return Err(ApiError::invalid("/object_type", format!("must be one of {}", OBJECT_TYPES.join(", ")))),
    })
}

/// Every public event of one stream, in order.
async fn events(s: &AppState, service: Service, stream: &str) -> Result<Vec<common::EventEnvelope>, ApiError> {
    let name = match service {
        Service::Booking => "booking",
        Service::CareHome => "carehome",
        Service::Volunteer => "volunteer",
    };
    let channel = s
        .clients
        .channels
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| c.clone())
        .ok_or_else(|| ApiError::new(servicekit::ErrorCode::Unavailable))?;
    let mut feed = EventFeedClient::new(channel);
    let mut out = Vec::new();
    let mut after = String::new();
    for _ in 0..MAX_PAGES {
        let page = feed
            .read_events(req(common::ReadEventsRequest {
                after: after.clone(),
                limit: 1000,
                stream_prefixes: vec![stream.to_owned()],
                tenant: String::new(),
            }))
            .await?
            .into_inner();
        // A prefix: keep the stream itself only.
        out.extend(page.events.into_iter().filter(|e| e.stream_id == stream));
        if page.next_cursor.is_empty() || page.next_cursor == after {
            break;
        }
        after = page.next_cursor;
    }
    out.sort_by_key(|e| e.version);
    Ok(out)
}

fn field<'a>(d: &'a Value, name: &str) -> &'a str {
    d[name].as_str().unwrap_or("?")
}

fn count(d: &Value, name: &str) -> usize {
    d[name].as_array().map_or(0, Vec::len)
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") }
}

fn list(d: &Value, name: &str) -> String {
    d[name]
        .as_array()
        .map(|a| a.iter().map(|v| v.to_string().trim_matches('"').to_owned()).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// A few words on an event, from its public payload: facts, ids of objects, times, counts;
/// never a name, note, story, address or free text.
pub fn summary(event_type: &str, d: &Value) -> String {
    match event_type {
        "RideBooked" => format!(
            "Ride booked ({}) for {}, {} min, {}; status {}",
            field(d, "kind"),
            field(d, "start"),
            d["duration_minutes"],
            plural(count(d, "riders"), "rider"),
            field(d, "status")
        ),
        "RideConfirmed" => "Ride confirmed by the care home".into(),
        "RiderAddedToRoster" => "A rider was added to the roster".into(),
        "RiderRemovedFromRoster" => format!("A rider left the roster ({})", field(d, "cause")),
        "RideRescheduled" => format!("Ride rescheduled to {}, {} min", field(d, "start"), d["duration_minutes"]),
        "RideCancelled" => format!("Ride cancelled (reason: {})", field(d, "reason")),
        "RideStarted" => format!("Ride started at {}", field(d, "at")),
        "RiderCheckedIn" => "A rider was checked in".into(),
        "RideCompleted" => format!("Ride completed at {}, {} km", field(d, "ended_at"), d["distance_km"]),
        "RideMarkedNoShow" => "Ride marked as no-show".into(),
        "RideReminderSent" => format!("Reminder sent {} min before the start", d["lead_minutes"]),
        "RideRequested" => format!(
            "Ride requested for {}, between {} and {}, {} min",
            plural(count(d, "resident_ids"), "resident"),
            field(d, "window_from"),
            field(d, "window_to"),
            d["duration_minutes"]
        ),
        "RideRequestClaimed" => format!("Request claimed: ride {} booked", field(d, "ride_id")),
        "RideRequestWithdrawn" => "Request withdrawn by the care home".into(),
        "RideRequestExpired" => "Request expired unclaimed".into(),
        "ChapterRegistered" => format!("Chapter registered (time zone {})", field(d, "timezone")),
        "ChapterSettingsChanged" => format!(
            "Settings changed: lead time {} min, default turnaround {} min, reminders [{}] min",
            d["settings"]["lead_time_minutes"],
            d["settings"]["default_turnaround_minutes"],
            list(&d["settings"], "reminder_lead_minutes")
        ),
        "CareHomeRegistered" => format!(
            "Care home registered ({}, turnaround {} min, confirmation {})",
            plural(count(d, "ride_hours"), "ride-hour window"),
            d["turnaround_minutes"],
            if d["requires_confirmation"].as_bool() == Some(true) { "required" } else { "not required" }
        ),
        "RideHoursChanged" => format!("Ride hours changed ({})", plural(count(d, "ride_hours"), "window")),
        "CareHomeClosed" => {
            format!("Closed from {} to {} (exclusive)", field(&d["dates"], "from"), field(&d["dates"], "to"))
        }
        "CoordinatorAssigned" => format!("Coordinator {} assigned", field(d, "user_id")),
        "CoordinatorRemoved" => format!("Coordinator {} removed", field(d, "user_id")),
        "BikeCommissioned" => format!("Commissioned ({}, {} seats)", field(d, "bike_type"), d["seats"]),
        "BikeIssueReported" => {
            if d["grounding"].as_bool() == Some(true) {
                "Issue reported; the trishaw is grounded".into()
            } else {
                "Issue reported".into()
            }
        }
        "BikeTakenOutOfService" => match d["expected_back"].as_str() {
            Some(b) => format!("Taken out of service, expected back {b}"),
            None => "Taken out of service".into(),
        },
        "BikeRepaired" => "Repaired".into(),
        "BikeReturnedToService" => "Returned to service".into(),
        "BikeRetired" => "Retired".into(),
        "ResidentAdmitted" => "Resident admitted".into(),
        "ResidentConsentRecorded" => {
            format!("Consent recorded (given by {}; scope: {})", field(d, "given_by"), list(d, "scope"))
        }
        "ResidentConsentWithdrawn" => "Consent withdrawn".into(),
        "ResidentMovedOut" => "Moved out".into(),
        "ResidentErased" => "Personal data erased".into(),
        "PilotRegistered" => "Pilot registered".into(),
        "PilotQualified" => format!("Qualified for {} until {}", field(d, "bike_type"), field(d, "valid_until")),
        "PilotQualificationRenewed" => {
            format!("Qualification for {} renewed until {}", field(d, "bike_type"), field(d, "valid_until"))
        }
        "PilotSuspended" => "Suspended".into(),
        "PilotReinstated" => "Reinstated".into(),
        "PilotRetired" => "Retired".into(),
        "PilotAvailabilityDeclared" => format!(
            "Availability declared ({}, {})",
            plural(count(d, "weekly"), "weekly window"),
            plural(count(d, "carehome_ids"), "care home")
        ),
        "PilotErased" => "Personal data erased".into(),
        other => {
            // A newer event: its name in words.
            let mut words = String::new();
            for (i, c) in other.chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    words.push(' ');
                    words.extend(c.to_lowercase());
                } else {
                    words.push(c);
                }
            }
            words
        }
    }
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
    let (chapter, service, stream) = locate(&s, &caller, &q.object_type, q.object_id).await?;
    if !caller.admin_of(chapter) {
        return Err(ApiError::forbidden());
    }
    let items = events(&s, service, &stream)
        .await?
        .into_iter()
        .map(|e| {
            let data: Value = serde_json::from_str(&e.data_json).unwrap_or(Value::Null);
            let (actor, actor_role) = match e.actor {
                Some(a) if !a.id.is_empty() => (a.id, if a.role.is_empty() { "system".into() } else { a.role }),
                _ => ("system".to_owned(), "system".to_owned()),
            };
            AuditItem {
                at: time(&e.recorded_at),
                occurred_at: time(&e.occurred_at),
                actor_role,
                actor,
                summary: summary(&e.event_type, &data),
                event_type: e.event_type,
                version: e.version,
                event_id: e.event_id,
            }
        })
        .collect();
    Ok(axum::Json(AuditTrail { items }))
}

/// The audit route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries_hold_facts_and_no_free_text() {
        let d = json!({"ride_id": "r", "kind": "pleasure", "status": "booked", "start": "2027-05-03T08:00:00Z",
            "duration_minutes": 60, "riders": ["a", "b"]});
        assert_eq!(
            summary("RideBooked", &d),
            "Ride booked (pleasure) for 2027-05-03T08:00:00Z, 60 min, 2 riders; status booked"
        );
        assert_eq!(
            summary("RideCancelled", &json!({"reason": "weather", "by_role": "pilot"})),
            "Ride cancelled (reason: weather)"
        );
        assert_eq!(
            summary("BikeIssueReported", &json!({"description": "Jens broke it", "grounding": false})),
            "Issue reported"
        );
        assert_eq!(summary("SomethingNewHappened", &json!({})), "Something new happened");
    }
}
