//! The reach report of a care home (domain.md, "Does it create inequality?"): the
//! residents living there with no completed ride in the last `days` days, and the spread
//! of rides per resident (a list per resident and a histogram), so coordinators can reach
//! those who are hard to reach. Booking counts (its `Reach` call, under the counting rule:
//! a resident rode a completed ride when on its roster at completion; on an event ride,
//! when checked in) and knows who lives there; the gateway adds names and renders.
//! Residents who moved out or were erased are left out. Read by the care home's
//! coordinator, its chapter's admin and admin.

use std::collections::HashMap;

use access::Action;
use axum::extract::State;
use chrono::{DateTime, Utc};
use samskab_proto::booking::v1 as bpb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::clients::Found;
use crate::extract::Params;
use crate::problem::{ApiError, Problem};
use crate::routes::carehomes;
use crate::routes::reports;
use crate::views::time;

/// `GET /v1/reach` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReachFilter {
    /// The care home.
    pub carehome_id: Uuid,
    /// How many days back to look, 1 to 3660 (default 30).
    #[param(minimum = 1, maximum = 3660)]
    pub days: Option<u32>,
    /// Where the window ends (RFC 3339 time; default now): rides starting in
    /// [`until` − `days`, `until`) count.
    #[param(format = DateTime)]
    pub until: Option<String>,
}

/// One resident's rides in the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResidentReach {
    /// Resident.
    pub resident_id: String,
    /// Name (for the callers of this report, who may see it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Completed rides carried in the window.
    pub rides: u32,
    /// Start of the last of them (UTC), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_ride_at: Option<String>,
}

/// How many residents rode how many times.
#[derive(Debug, Serialize, ToSchema)]
pub struct Bucket {
    /// Rides in the window.
    pub rides: u32,
    /// Residents with exactly that many.
    pub residents: u32,
}

/// The spread in figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct Spread {
    /// Residents living at the home.
    pub residents: u32,
    /// Of them without a ride in the window.
    pub without_ride: u32,
    /// Rides carried in the window.
    pub rides: u32,
    /// Fewest rides of a resident.
    pub min: u32,
    /// Most rides of a resident.
    pub max: u32,
    /// Mean rides per resident.
    pub mean: f64,
    /// Median rides per resident.
    pub median: f64,
}

/// `GET /v1/reach`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reach {
    /// Care home.
    pub carehome_id: String,
    /// Days looked back.
    pub days: u32,
    /// Window start (UTC).
    pub from: String,
    /// Window end (UTC, exclusive).
    pub to: String,
    /// Residents with no completed ride in the window.
    pub without_ride: Vec<ResidentReach>,
    /// Every resident living there with their rides, fewest first.
    pub residents: Vec<ResidentReach>,
    /// Residents per number of rides, ascending.
    pub histogram: Vec<Bucket>,
    /// The spread in figures.
    pub summary: Spread,
}

/// Residents of a care home with no completed ride in the last `days` days, and the
/// spread of rides per resident (the home's coordinator, its chapter's admin, admin).
#[utoipa::path(get, path = "/v1/reach", tag = "reports", params(ReachFilter),
    responses((status = 200, body = Reach), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Params(f): Params<ReachFilter>,
) -> Result<axum::Json<Reach>, ApiError> {
    let days = f.days.unwrap_or(30);
    if !(1..=3660).contains(&days) {
        return Err(ApiError::invalid("/days", "must be between 1 and 3660"));
    }
    let until: DateTime<Utc> = match f.until.as_deref() {
        None => servicekit::clock::now(),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| t.to_utc())
            .map_err(|_| ApiError::invalid("/until", "must be an RFC 3339 time"))?,
    };
    let home = carehomes::visible(&s, &caller, f.carehome_id).await?;
    if !caller.may(Action::ReadReach, &carehomes::object(&home, f.carehome_id)) {
        return Err(ApiError::forbidden());
    }
    let from = until - chrono::Duration::days(i64::from(days));
    let reach = s
        .clients
        .booking()
        .reach(bpb::ReachRequest {
            carehome_id: f.carehome_id.to_string(),
            from: Some(samskab_proto::time::to_proto(from)),
            to: Some(samskab_proto::time::to_proto(until)),
        })
        .await
        .reply()?;
    // Names from their owner (the callers of this report may see them).
    let names: HashMap<String, Option<String>> = reports::residents(&s, &f.carehome_id.to_string())
        .await?
        .into_iter()
        .map(|r| (r.resident_id, reports::name(r.erased, &r.display_name)))
        .collect();
    let residents: Vec<ResidentReach> = reach
        .residents
        .into_iter()
        .map(|r| ResidentReach {
            display_name: names.get(&r.resident_id).cloned().flatten(),
            resident_id: r.resident_id,
            rides: r.rides,
            last_ride_at: time(&r.last_ride_at),
        })
        .collect();
    let without_ride = residents
        .iter()
        .filter(|r| r.rides == 0)
        .map(|r| ResidentReach {
            resident_id: r.resident_id.clone(),
            display_name: r.display_name.clone(),
            rides: 0,
            last_ride_at: None,
        })
        .collect();
    let sp = reach.spread.unwrap_or_default();
    let text = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    Ok(axum::Json(Reach {
        carehome_id: f.carehome_id.to_string(),
        days,
        from: text(from),
        to: text(until),
        without_ride,
        histogram: reach.histogram.into_iter().map(|b| Bucket { rides: b.rides, residents: b.residents }).collect(),
        summary: Spread {
            residents: sp.residents,
            without_ride: sp.without_ride,
            rides: sp.rides,
            min: sp.min,
            max: sp.max,
            mean: sp.mean,
            median: sp.median,
        },
        residents,
    }))
}

/// The reach route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get))
}
