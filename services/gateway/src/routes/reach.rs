//! The reach report of a care home (domain.md, "Does it create inequality?"): the
//! residents living there with no completed ride in the last `days` days, and the spread
//! of rides per resident (a list per resident and a histogram), so coordinators can reach
//! those who are hard to reach. Booking counts (its `Reach` call, under the counting rule:
//! a resident rode a completed ride when on its roster at completion; on an event ride,
//! when checked in) and knows who lives there; the gateway adds names and renders.
//! Residents who moved out or were erased are left out. Read by the care home's
//! coordinator, its chapter's admin and admin.
//!
//! With `?chapter_id=` instead (api.md, *Scheduling*: "reach across homes"), every care
//! home of the chapter in figures only, no names and no resident ids: its residents living
//! there now, rides per resident in each of the last `months` calendar months (chapter's
//! zone) and the share of residents without a completed ride in the last 30, 60 and 90
//! days. Booking counts this too (its `ChapterReach` call, the same count as `Reach`);
//! the gateway divides and rounds. Read by the chapter's admin and admin only.

use std::collections::HashMap;

use access::{Action, Object};
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
use crate::routes::chapters;
use crate::routes::reports;
use crate::views::time;

/// `GET /v1/reach` parameters: `carehome_id` (one home, per resident) or `chapter_id`
/// (every home of a chapter, in figures), exactly one of them.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReachFilter {
    /// The care home (not with `chapter_id`).
    pub carehome_id: Option<Uuid>,
    /// The chapter: every care home of it (not with `carehome_id`).
    pub chapter_id: Option<Uuid>,
    /// With `carehome_id`: how many days back to look, 1 to 3660 (default 30).
    #[param(minimum = 1, maximum = 3660)]
    pub days: Option<u32>,
    /// With `chapter_id`: how many calendar months `rides_per_resident_by_month` covers,
    /// ending with the month of `until`, 1 to 120 (default 12).
    #[param(minimum = 1, maximum = 120)]
    pub months: Option<u32>,
    /// Where the window ends (RFC 3339 time; default now): rides starting in
    /// [`until` − `days`, `until`) count; with `chapter_id`, the months and the 30, 60 and
    /// 90 days end there.
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

/// Rides per resident in one month.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthValue {
    /// `YYYY-MM` in the chapter's zone.
    pub month: String,
    /// Rides that carried the home's residents living there now that month, divided by
    /// their number (2 decimals; 0 for a home without residents).
    pub value: f64,
}

/// Shares of residents without a completed ride.
#[derive(Debug, Serialize, ToSchema)]
pub struct WithoutRide {
    /// In the last 30 days before `until`: 0 to 1 (4 decimals; 0 without residents).
    pub d30: f64,
    /// In the last 60 days.
    pub d60: f64,
    /// In the last 90 days.
    pub d90: f64,
}

/// One care home of the chapter, in figures (no names, no resident ids).
#[derive(Debug, Serialize, ToSchema)]
pub struct HomeReach {
    /// Care home.
    pub carehome_id: String,
    /// Residents living there now (moved-out and erased ones left out).
    pub residents: u32,
    /// Every month of the window, oldest first, zeros included.
    pub rides_per_resident_by_month: Vec<MonthValue>,
    /// Share of the residents without a completed ride in the last 30, 60 and 90 days.
    pub share_without_ride: WithoutRide,
}

/// `GET /v1/reach?chapter_id=`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChapterReach {
    /// Every care home of the chapter, in id order.
    pub carehomes: Vec<HomeReach>,
}

/// `GET /v1/reach`: one care home's residents (`carehome_id`), or every home of a chapter
/// in figures (`chapter_id`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ReachAnswer {
    /// `?carehome_id=`.
    CareHome(Reach),
    /// `?chapter_id=`.
    Chapter(ChapterReach),
}

/// `n / d` rounded to `places` decimals; 0 when `d` is 0.
fn ratio(n: u32, d: u32, places: i32) -> f64 {
    if d == 0 {
        return 0.0;
    }
    let scale = 10f64.powi(places);
    (f64::from(n) / f64::from(d) * scale).round() / scale
}

/// With `carehome_id`: residents of the care home with no completed ride in the last `days`
/// days and the spread of rides per resident (the home's coordinator, its chapter's admin,
/// admin). With `chapter_id`: every care home of the chapter in figures, no names nor
/// resident ids (the chapter's admin, admin).
#[utoipa::path(get, path = "/v1/reach", tag = "reports", params(ReachFilter),
    responses((status = 200, body = ReachAnswer), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Params(f): Params<ReachFilter>,
) -> Result<axum::Json<ReachAnswer>, ApiError> {
    let until: DateTime<Utc> = match f.until.as_deref() {
        None => servicekit::clock::now(),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| t.to_utc())
            .map_err(|_| ApiError::invalid("/until", "must be an RFC 3339 time"))?,
    };
    match (f.carehome_id, f.chapter_id) {
        (Some(_), Some(_)) => Err(ApiError::invalid("/chapter_id", "give carehome_id or chapter_id, not both")),
        (None, None) => Err(ApiError::invalid("/carehome_id", "a care home (or chapter_id) is required")),
        (Some(home), None) => {
            if f.months.is_some() {
                return Err(ApiError::invalid("/months", "is for chapter_id; with carehome_id use days"));
            }
            Ok(axum::Json(ReachAnswer::CareHome(of_home(&s, &caller, home, f.days, until).await?)))
        }
        (None, Some(chapter)) => {
            if f.days.is_some() {
                return Err(ApiError::invalid("/days", "is for carehome_id; with chapter_id use months"));
            }
            Ok(axum::Json(ReachAnswer::Chapter(of_chapter(&s, &caller, chapter, f.months, until).await?)))
        }
    }
}

/// Every care home of a chapter, in figures.
async fn of_chapter(
    s: &AppState,
    caller: &Caller,
    chapter: Uuid,
    months: Option<u32>,
    until: DateTime<Utc>,
) -> Result<ChapterReach, ApiError> {
    let months = months.unwrap_or(12);
    if !(1..=120).contains(&months) {
        return Err(ApiError::invalid("/months", "must be between 1 and 120"));
    }
    chapters::visible(s, caller, chapter).await?;
    if !caller.may(Action::ReadReach, &Object::Chapter(chapter)) {
        return Err(ApiError::forbidden());
    }
    let reach = s
        .clients
        .booking()
        .chapter_reach(bpb::ChapterReachRequest {
            chapter_id: chapter.to_string(),
            until: Some(samskab_proto::time::to_proto(until)),
            months,
        })
        .await?
        .into_inner();
    let carehomes = reach
        .carehomes
        .into_iter()
        .map(|h| HomeReach {
            rides_per_resident_by_month: h
                .by_month
                .into_iter()
                .map(|m| MonthValue { month: m.month, value: ratio(m.rides, h.residents, 2) })
                .collect(),
            share_without_ride: WithoutRide {
                d30: ratio(h.without_ride_30, h.residents, 4),
                d60: ratio(h.without_ride_60, h.residents, 4),
                d90: ratio(h.without_ride_90, h.residents, 4),
            },
            carehome_id: h.carehome_id,
            residents: h.residents,
        })
        .collect();
    Ok(ChapterReach { carehomes })
}

/// One care home, per resident.
async fn of_home(
    s: &AppState,
    caller: &Caller,
    carehome_id: Uuid,
    days: Option<u32>,
    until: DateTime<Utc>,
) -> Result<Reach, ApiError> {
    let days = days.unwrap_or(30);
    if !(1..=3660).contains(&days) {
        return Err(ApiError::invalid("/days", "must be between 1 and 3660"));
    }
    let home = carehomes::visible(s, caller, carehome_id).await?;
    if !caller.may(Action::ReadReach, &carehomes::object(&home, carehome_id)) {
        return Err(ApiError::forbidden());
    }
    let from = until - chrono::Duration::days(i64::from(days));
    let reach = s
        .clients
        .booking()
        .reach(bpb::ReachRequest {
            carehome_id: carehome_id.to_string(),
            from: Some(samskab_proto::time::to_proto(from)),
            to: Some(samskab_proto::time::to_proto(until)),
        })
        .await
        .reply()?;
    // Names from their owner (the callers of this report may see them).
    let names: HashMap<String, Option<String>> = reports::residents(s, &carehome_id.to_string())
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
    Ok(Reach {
        carehome_id: carehome_id.to_string(),
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
    })
}

/// The reach route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get))
}
