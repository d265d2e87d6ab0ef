//! The reach report of a care home (domain.md, "Does it create inequality?"): the
//! residents living there with no completed ride in the last `days` days, and the spread
//! of rides per resident (a list per resident and a histogram), so coordinators can reach
//! those who are hard to reach. Rides are counted by the counting rule (a resident rode a
//! completed ride when on its roster at completion; on an event ride, when checked in).
//! Residents who moved out or were erased are left out. Read by the care home's
//! coordinator, its chapter's admin and admin.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::extract::Params;
use crate::problem::{ApiError, Problem};
use crate::routes::carehomes;
use crate::routes::reports::{self, Period};

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

fn spread(counts: &[u32]) -> Spread {
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let total: u32 = sorted.iter().sum();
    let median = match n {
        0 => 0.0,
        _ if n % 2 == 1 => f64::from(sorted[n / 2]),
        _ => f64::from(sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    Spread {
        residents: n as u32,
        without_ride: sorted.iter().filter(|c| **c == 0).count() as u32,
        rides: total,
        min: sorted.first().copied().unwrap_or(0),
        max: sorted.last().copied().unwrap_or(0),
        mean: if n == 0 { 0.0 } else { (f64::from(total) / n as f64 * 100.0).round() / 100.0 },
        median,
    }
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
    if !carehomes::manages(&caller, &home, f.carehome_id) {
        return Err(ApiError::forbidden());
    }
    let from = until - chrono::Duration::days(i64::from(days));
    let q =
        reports::ride_query(None, Some(f.carehome_id), Period { from: Some(from), to: Some(until) }, &["completed"]);
    let mut rode: HashMap<String, (u32, String)> = HashMap::new();
    reports::each_ride(&s, &q, |r| {
        let start = reports::start_of(&r);
        for id in reports::carried(&r) {
            let e = rode.entry(id.to_owned()).or_default();
            e.0 += 1;
            if start > e.1 {
                e.1.clone_from(&start);
            }
        }
    })
    .await?;
    let mut residents: Vec<ResidentReach> = reports::residents(&s, &f.carehome_id.to_string())
        .await?
        .into_iter()
        .filter(|r| r.status == "living_here" && !r.erased)
        .map(|r| {
            let (rides, last) = rode.remove(&r.resident_id).unwrap_or_default();
            ResidentReach {
                display_name: reports::name(r.erased, &r.display_name),
                resident_id: r.resident_id,
                rides,
                last_ride_at: (!last.is_empty()).then_some(last),
            }
        })
        .collect();
    residents.sort_by(|a, b| a.rides.cmp(&b.rides).then_with(|| a.resident_id.cmp(&b.resident_id)));
    let counts: Vec<u32> = residents.iter().map(|r| r.rides).collect();
    let mut buckets: BTreeMap<u32, u32> = BTreeMap::new();
    for c in &counts {
        *buckets.entry(*c).or_default() += 1;
    }
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
    let text = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    Ok(axum::Json(Reach {
        carehome_id: f.carehome_id.to_string(),
        days,
        from: text(from),
        to: text(until),
        without_ride,
        histogram: buckets.into_iter().map(|(rides, residents)| Bucket { rides, residents }).collect(),
        summary: spread(&counts),
        residents,
    }))
}

/// The reach route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get))
}
