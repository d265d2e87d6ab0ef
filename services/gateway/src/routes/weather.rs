//! Weather days: a chapter admin cancels every booked ride of one local day (the
//! chapter's zone) with reason `weather`, exactly once each, however often it is asked.

use axum::extract::State;
use samskab_proto::booking::v1 as bpb;
use serde::{Deserialize, Serialize};
use servicekit::ErrorCode;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::extract::{Body, Command, Ids};
use crate::problem::{ApiError, Problem};
use crate::routes::chapters;

/// `POST /v1/chapters/{id}/weather-cancellations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeatherDay {
    /// The local day, `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub date: String,
    /// A note kept with each cancellation (personal: shown only to those who see rides' notes);
    /// no control characters, at most 2000 characters, blank is none.
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$", max_length = 2000)]
    pub note: Option<String>,
}

/// How many rides a weather day cancelled.
#[derive(Debug, Serialize, ToSchema)]
pub struct WeatherCancellations {
    /// Rides cancelled by this weather day.
    pub cancelled: u32,
}

/// Cancel a day for weather (the chapter's admin, admin). `If-Match` is checked against the
/// chapter's ETag.
#[utoipa::path(post, path = "/v1/chapters/{id}/weather-cancellations", tag = "chapters", request_body = WeatherDay,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The chapter's ETag")),
    responses((status = 200, body = WeatherCancellations), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn cancel_day(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<WeatherDay>,
) -> Result<axum::Json<WeatherCancellations>, ApiError> {
    let caller = &cmd.caller;
    let if_match = cmd.if_match;
    let chapter = chapters::visible(&s, caller, id).await?;
    if !caller.may(access::Action::Administer, &access::Object::Chapter(id)) {
        return Err(ApiError::forbidden());
    }
    // The body is checked before the precondition (as booking checks it again): a malformed
    // request is a 400 whatever its `If-Match`.
    let invalid = |e: domain::types::Invalid| ApiError::invalid(e.field, e.message);
    domain::types::parse_date("/date", &b.date).map_err(invalid)?;
    if let Some(note) = b.note.as_deref().filter(|n| !n.trim().is_empty()) {
        domain::types::parse_label("/note", note, 2000).map_err(invalid)?;
    }
    // Booking keeps no version of a chapter: the precondition is the chapter's own ETag.
    if if_match.is_some_and(|v| v != chapter.version) {
        let mut e = ApiError::new(ErrorCode::PreconditionFailed);
        e.current_version = Some(chapter.version);
        return Err(e);
    }
    let r = s
        .clients
        .booking()
        .cancel_day_for_weather(bpb::CancelDayForWeatherRequest {
            // `If-Match` is the chapter's, checked above; booking writes the day's own stream.
            context: cmd.context_checked_here(),
            chapter_id: id.to_string(),
            date: b.date,
            note: b.note.unwrap_or_default(),
        })
        .await?
        .into_inner();
    Ok(axum::Json(WeatherCancellations { cancelled: r.cancelled }))
}

/// The weather routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(cancel_day))
}
