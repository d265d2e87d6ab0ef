//! Free trishaw slots at a care home: the maximal intervals in which each trishaw is free
//! and a ride of the asked length fits (ride hours and turnaround respected), as booking
//! computes them. Read by the chapter's pilots, the home's coordinator and admins.

use access::{Action, Object};
use axum::extract::State;
use samskab_proto::booking::v1 as bpb;
use samskab_proto::carehome::v1 as cpb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::clients::Found;
use crate::extract::{Ids, Params};
use crate::problem::{ApiError, Problem};
use crate::views::{parse_time, time};

/// Loads a care home whose chapter the caller belongs to (404 otherwise: unknown and
/// foreign homes look the same).
pub async fn carehome(s: &AppState, caller: &Caller, id: Uuid) -> Result<(cpb::CareHome, Uuid), ApiError> {
    let home = s.clients.carehome().get_care_home(cpb::IdRequest { id: id.to_string() }).await.or_404()?;
    let chapter: Uuid = home.chapter_id.parse().map_err(|_| ApiError::not_found())?;
    if !caller.may_read(&Object::CareHome { id, chapter }) {
        return Err(ApiError::not_found());
    }
    Ok((home, chapter))
}

/// `?from=&to=&duration_minutes=` of an availability query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityQuery {
    /// Period start (RFC 3339, inclusive).
    #[param(format = DateTime)]
    pub from: String,
    /// Period end (RFC 3339, exclusive; at most 31 days after `from`).
    #[param(format = DateTime)]
    pub to: String,
    /// The length of the ride that must fit, in minutes.
    pub duration_minutes: u32,
}

/// A free interval (UTC).
#[derive(Debug, Serialize, ToSchema)]
pub struct FreeInterval {
    /// Start.
    pub start: String,
    /// End.
    pub end: String,
}

impl From<bpb::FreeInterval> for FreeInterval {
    fn from(f: bpb::FreeInterval) -> Self {
        FreeInterval { start: time(&f.start).unwrap_or_default(), end: time(&f.end).unwrap_or_default() }
    }
}

/// One trishaw's free intervals.
#[derive(Debug, Serialize, ToSchema)]
pub struct BikeAvailability {
    /// Trishaw.
    pub bike_id: String,
    /// Its type.
    pub bike_type: String,
    /// Rider seats.
    pub seats: u32,
    /// Maximal free intervals in which the ride fits.
    pub free: Vec<FreeInterval>,
}

/// The answer of an availability query.
#[derive(Debug, Serialize, ToSchema)]
pub struct AvailabilityView {
    /// Per trishaw in service.
    pub bikes: Vec<BikeAvailability>,
}

/// Free trishaw slots at a care home (the chapter's pilots, the home's coordinator, the
/// chapter's admin, admin).
#[utoipa::path(get, path = "/v1/carehomes/{id}/availability", tag = "availability", params(("id" = Uuid, Path), AvailabilityQuery),
    responses((status = 200, body = AvailabilityView), (status = 400, description = "Malformed (`malformed`, `validation`), or `to` not after `from` or more than 31 days later (`validation` on `/to`: a rule between fields, which the schema cannot state)", body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Params(q): Params<AvailabilityQuery>,
) -> Result<axum::Json<AvailabilityView>, ApiError> {
    let from = parse_time("/from", &q.from)?;
    let to = parse_time("/to", &q.to)?;
    let (_, chapter) = carehome(&s, &caller, id).await?;
    if !caller.may(Action::ReadAvailability, &Object::CareHome { id, chapter }) {
        return Err(ApiError::forbidden());
    }
    let a = s
        .clients
        .booking()
        .get_availability(bpb::GetAvailabilityRequest {
            carehome_id: id.to_string(),
            from: Some(from),
            to: Some(to),
            duration_minutes: q.duration_minutes,
        })
        .await?
        .into_inner();
    let bikes = a
        .bikes
        .into_iter()
        .map(|b| BikeAvailability {
            bike_id: b.bike_id,
            bike_type: b.bike_type,
            seats: b.seats,
            free: b.free.into_iter().map(FreeInterval::from).collect(),
        })
        .collect();
    Ok(axum::Json(AvailabilityView { bikes }))
}

/// The availability routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get))
}
