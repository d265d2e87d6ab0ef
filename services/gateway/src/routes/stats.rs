//! Stats under the counting rule (`api.md`, *Stats*): `GET /v1/stats` for a chapter, care
//! home, pilot or trishaw over any period and per month, as of any past moment; and
//! `GET /v1/stats/network`, the same figures per chapter and in total, with no personal
//! data and no ids of persons. The booking service owns the figures (its `Stats` RPC);
//! this module checks who may read which scope.
//!
//! Who: admin and the network integrator anything; a chapter admin and a chapter's
//! integrator their chapter (the default scope); a coordinator its own care home (the
//! default scope; another home of the chapter is 403, one elsewhere 404); pilots none (403).

use access::{Action, Object, StatsFilter};
use axum::extract::State;
use chrono::{DateTime, Utc};
use samskab_proto::booking::v1 as bpb;
use samskab_proto::carehome::v1 as cpb;
use samskab_proto::volunteer::v1 as vpb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::clients::Found;
use crate::extract::Params;
use crate::problem::{ApiError, Problem};

/// No-shows by who did not come.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct NoShowsBy {
    /// The pilot did not come.
    pub pilot: u64,
    /// The riders did not come.
    pub riders: u64,
}

/// Cancelled rides by reason.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct CancelledView {
    /// Weather.
    pub weather: u64,
    /// The rider.
    pub rider: u64,
    /// The care home.
    pub facility: u64,
    /// No pilot.
    pub volunteer: u64,
    /// The trishaw.
    pub equipment: u64,
    /// Nobody left on the roster.
    pub no_riders: u64,
}

/// The figures of the counting rule.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct FiguresView {
    /// Completed rides.
    pub trips: u64,
    /// Riders carried on them (two riders on one trip are two rides): the roster at
    /// completion, for an event ride the riders who checked in.
    pub rides: u64,
    /// The residents among those riders.
    pub distinct_residents: u64,
    /// Actual minutes of completed rides.
    pub ride_minutes: u64,
    /// Scheduled hours of rides not cancelled.
    pub bike_hours: f64,
    /// The same in whole minutes.
    pub bike_minutes: u64,
    /// Kilometres of completed rides.
    pub distance_km: f64,
    /// Rides marked no-show.
    pub no_shows: u64,
    /// No-shows by who did not come.
    pub no_shows_by: NoShowsBy,
    /// Cancelled rides by reason.
    pub cancelled: CancelledView,
}

/// One month's figures.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonthView {
    /// `YYYY-MM` of the rides' scheduled start in the chapter's zone.
    pub month: String,
    /// The figures.
    #[serde(flatten)]
    pub figures: FiguresView,
}

/// Figures in total and per month.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsView {
    /// The figures.
    #[serde(flatten)]
    pub figures: FiguresView,
    /// Per month, in order; months without rides are left out.
    pub by_month: Vec<MonthView>,
}

/// One chapter's figures in the network stats.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChapterStatsView {
    /// The chapter.
    pub chapter_id: String,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its figures.
    #[serde(flatten)]
    pub stats: StatsView,
}

/// The network's figures: per chapter and in total.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NetworkStatsView {
    /// Every chapter, in id order.
    pub chapters: Vec<ChapterStatsView>,
    /// The whole network (each ride's month in its own chapter's zone).
    pub total: StatsView,
}

fn figures(f: Option<bpb::StatsFigures>) -> FiguresView {
    let f = f.unwrap_or_default();
    let c = f.cancelled.unwrap_or_default();
    FiguresView {
        trips: f.trips,
        rides: f.rides,
        distinct_residents: f.distinct_residents,
        ride_minutes: f.ride_minutes,
        bike_hours: f.bike_minutes as f64 / 60.0,
        bike_minutes: f.bike_minutes,
        distance_km: f.distance_m as f64 / 1000.0,
        no_shows: f.no_shows,
        no_shows_by: NoShowsBy { pilot: f.no_shows_by_pilot, riders: f.no_shows_by_riders },
        cancelled: CancelledView {
            weather: c.weather,
            rider: c.rider,
            facility: c.facility,
            volunteer: c.volunteer,
            equipment: c.equipment,
            no_riders: c.no_riders,
        },
    }
}

fn stats(s: Option<bpb::RideStats>) -> StatsView {
    let s = s.unwrap_or_default();
    StatsView {
        figures: figures(s.figures),
        by_month: s.by_month.into_iter().map(|m| MonthView { month: m.month, figures: figures(m.figures) }).collect(),
    }
}

/// `GET /v1/stats` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// Chapter (default: the caller's).
    pub chapter_id: Option<Uuid>,
    /// Care home (a coordinator's default: its own).
    pub carehome_id: Option<Uuid>,
    /// Pilot.
    pub pilot_id: Option<Uuid>,
    /// Trishaw.
    pub bike_id: Option<Uuid>,
    /// Rides scheduled to start at or after (RFC 3339); default: all time.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Rides scheduled to start before (RFC 3339); default: all time.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Answer as the log stood at this moment (RFC 3339, not in the future).
    #[param(format = DateTime)]
    pub as_of: Option<String>,
}

/// `GET /v1/stats/network` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NetworkParams {
    /// Rides scheduled to start at or after (RFC 3339); default: all time.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Rides scheduled to start before (RFC 3339); default: all time.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Answer as the log stood at this moment (RFC 3339, not in the future).
    #[param(format = DateTime)]
    pub as_of: Option<String>,
}

fn parse(field: &str, v: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    v.as_deref()
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.to_utc())
                .map_err(|_| ApiError::invalid(field, "must be an RFC 3339 time such as 2027-05-03T10:00:00+02:00"))
        })
        .transpose()
}

/// The period and moment of a stats request, checked.
struct When {
    from: Option<prost_types::Timestamp>,
    to: Option<prost_types::Timestamp>,
    as_of: Option<prost_types::Timestamp>,
}

fn when(from: &Option<String>, to: &Option<String>, as_of: &Option<String>) -> Result<When, ApiError> {
    let (from, to, as_of) = (parse("/from", from)?, parse("/to", to)?, parse("/as_of", as_of)?);
    if let (Some(f), Some(t)) = (from, to)
        && t < f
    {
        // `to == from` is an empty period (all zeros); `to` before `from` is a mistake.
        return Err(ApiError::invalid("/to", "must not be before from"));
    }
    if as_of.is_some_and(|a| a > servicekit::clock::now()) {
        return Err(ApiError::invalid("/as_of", "must not be in the future: the log cannot answer for it yet"));
    }
    let p = |t: Option<DateTime<Utc>>| t.map(samskab_proto::time::to_proto);
    Ok(When { from: p(from), to: p(to), as_of: p(as_of) })
}

/// Figures of one chapter, care home, pilot or trishaw (or any combination), over a period
/// and per month, now or as the log stood at `as_of`.
#[utoipa::path(get, path = "/v1/stats", tag = "stats", params(StatsParams),
    responses((status = 200, body = StatsView), (status = 400, description = "Malformed (`malformed`, `validation`), `to` before `from` (`validation` on `/to`), or `as_of` in the future (`validation` on `/as_of`: the log cannot answer for a moment still to come); the schema can state neither rule", body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Params(p): Params<StatsParams>,
) -> Result<axum::Json<StatsView>, ApiError> {
    let w = when(&p.from, &p.to, &p.as_of)?;
    // The facts of every object named (404 when unknown); the rules then ask whether the
    // caller may read each one's chapter (404) and narrow the query to its scope (403).
    let id = |text: &str| text.parse::<Uuid>().map_err(|_| ApiError::not_found());
    let mut f = StatsFilter { chapter: p.chapter_id, ..StatsFilter::default() };
    if let Some(c) = p.chapter_id
        && caller.may_read(&Object::Chapter(c))
    {
        s.clients.carehome().get_chapter(cpb::IdRequest { id: c.to_string() }).await.or_404()?;
    }
    if let Some(h) = p.carehome_id {
        let home = s.clients.carehome().get_care_home(cpb::IdRequest { id: h.to_string() }).await.or_404()?;
        f.carehome = Some((h, id(&home.chapter_id)?));
    }
    if let Some(b) = p.bike_id {
        let bike = s.clients.carehome().get_bike(cpb::IdRequest { id: b.to_string() }).await.or_404()?;
        f.bike = Some((b, id(&bike.carehome_id)?, id(&bike.chapter_id)?));
    }
    if let Some(pilot) = p.pilot_id {
        let found =
            s.clients.volunteer().get_pilot(vpb::GetPilotRequest { pilot_id: pilot.to_string() }).await.or_404()?;
        f.pilot = Some((pilot, id(&found.chapter_id)?));
    }
    let scope = access::stats_scope(&caller.facts(), &f)?;
    let (chapter, carehome) = (scope.chapter, scope.carehome);
    let q = bpb::StatsRequest {
        chapter_id: chapter.map(|c| c.to_string()).unwrap_or_default(),
        carehome_id: carehome.map(|c| c.to_string()).unwrap_or_default(),
        pilot_id: p.pilot_id.map(|c| c.to_string()).unwrap_or_default(),
        bike_id: p.bike_id.map(|c| c.to_string()).unwrap_or_default(),
        from: w.from,
        to: w.to,
        as_of: w.as_of,
        per_chapter: false,
    };
    let r = s.clients.booking().stats(q).await?.into_inner();
    Ok(axum::Json(stats(r.total)))
}

/// The network's figures per chapter and in total, for the programme's cross-chapter
/// reporting: no personal data and no ids of persons. Admin and the network integrator.
#[utoipa::path(get, path = "/v1/stats/network", tag = "stats", params(NetworkParams),
    responses((status = 200, body = NetworkStatsView), (status = 400, description = "Malformed (`malformed`, `validation`), `to` before `from` (`validation` on `/to`), or `as_of` in the future (`validation` on `/as_of`: the log cannot answer for a moment still to come); the schema can state neither rule", body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn network(
    State(s): State<AppState>,
    caller: Caller,
    Params(p): Params<NetworkParams>,
) -> Result<axum::Json<NetworkStatsView>, ApiError> {
    let w = when(&p.from, &p.to, &p.as_of)?;
    if !caller.may(Action::ReadStats, &Object::Network) {
        return Err(ApiError::forbidden().detail("the network stats are for admin and the network integrator"));
    }
    let q = bpb::StatsRequest { from: w.from, to: w.to, as_of: w.as_of, per_chapter: true, ..Default::default() };
    let r = s.clients.booking().stats(q).await?.into_inner();
    let mut chapters = Vec::with_capacity(r.chapters.len());
    for c in r.chapters {
        let name = s
            .clients
            .carehome()
            .get_chapter(cpb::IdRequest { id: c.chapter_id.clone() })
            .await
            .found()?
            .map(|ch| ch.name);
        chapters.push(ChapterStatsView { chapter_id: c.chapter_id, name, stats: stats(c.stats) });
    }
    Ok(axum::Json(NetworkStatsView { chapters, total: stats(r.total) }))
}

/// The stats routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get)).routes(routes!(network))
}
