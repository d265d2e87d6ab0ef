//! The programme's reports of a chapter (domain.md, "Reports the programme asks for"):
//! pilot participation, rider participation, the volunteer roster with qualifications and
//! their expiry, the consent census per care home for the chapter's ride season, and the
//! maintenance history per trishaw. Read by the chapter's admin and admin only: they carry
//! names (erased persons show as erased, without one). Booking counts the rides (its
//! `Participation` call applies the counting rule, the same as its stats); the gateway
//! joins the counts with the owners' lists of people and renders. The helpers here (scope
//! check, periods, paging through the services) serve the CSV exports and reach too.

use std::collections::HashMap;

use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use samskab_proto::booking::v1 as bpb;
use samskab_proto::carehome::v1 as cpb;
use samskab_proto::volunteer::v1 as vpb;
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
use crate::routes::bikes::MaintenanceEntry;
use crate::routes::chapters;
use crate::views::{opt, time};

/// Page size used when a report or an export walks a service's list (an export writes
/// each page as it arrives).
pub const PAGE: u32 = 200;

/// Loads a chapter whose reports the caller may read: its admin, admin (404 when the
/// caller may not read the chapter, 403 when it may read it but not its reports).
pub async fn chapter_reports(s: &AppState, caller: &Caller, chapter: Uuid) -> Result<cpb::Chapter, ApiError> {
    let c = chapters::visible(s, caller, chapter).await?;
    if !caller.may(access::Action::ReadReports, &access::Object::Chapter(chapter)) {
        return Err(ApiError::forbidden());
    }
    Ok(c)
}

/// The time zone of a chapter (UTC when unreadable).
pub fn zone(chapter: &cpb::Chapter) -> chrono_tz::Tz {
    chapter.timezone.parse().unwrap_or(chrono_tz::UTC)
}

/// Parses a period bound: a date `YYYY-MM-DD` (local midnight in `tz`) or an RFC 3339 time.
pub fn bound(field: &str, value: &str, tz: chrono_tz::Tz) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let midnight = d.and_hms_opt(0, 0, 0).expect("midnight");
        return midnight
            .and_local_timezone(tz)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| ApiError::invalid(field, "is not a local time of the chapter"));
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.to_utc())
        .map_err(|_| ApiError::invalid(field, "must be a date (2027-05-01) or an RFC 3339 time"))
}

/// A period `from` (inclusive) – `to` (exclusive); either end open.
#[derive(Debug, Clone, Copy, Default)]
pub struct Period {
    /// Start.
    pub from: Option<DateTime<Utc>>,
    /// End.
    pub to: Option<DateTime<Utc>>,
}

impl Period {
    /// Parses `from`/`to` (400 naming the field; `to` must not come before `from`; equal
    /// is an empty period).
    pub fn parse(from: Option<&str>, to: Option<&str>, tz: chrono_tz::Tz) -> Result<Period, ApiError> {
        let from = from.map(|v| bound("/from", v, tz)).transpose()?;
        let to = to.map(|v| bound("/to", v, tz)).transpose()?;
        if let (Some(a), Some(b)) = (from, to)
            && b < a
        {
            return Err(ApiError::invalid("/to", "must not be before from"));
        }
        Ok(Period { from, to })
    }

    /// Whether an RFC 3339 time lies in the period.
    pub fn holds(&self, at: &str) -> bool {
        let Ok(t) = DateTime::parse_from_rfc3339(at).map(|t| t.to_utc()) else { return true };
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t < e)
    }

    fn text(t: Option<DateTime<Utc>>) -> Option<String> {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

/// One page of a chapter's rides in a period, in order of start.
pub async fn rides_page(
    s: &AppState,
    q: &bpb::ListRidesRequest,
    cursor: String,
) -> Result<bpb::ListRidesResponse, ApiError> {
    let q = bpb::ListRidesRequest { cursor, limit: PAGE, ..q.clone() };
    Ok(s.clients.booking().list_rides(q).await?.into_inner())
}

/// The ride query of a chapter and period.
pub fn ride_query(chapter: Uuid, p: Period) -> bpb::ListRidesRequest {
    bpb::ListRidesRequest {
        chapter_id: chapter.to_string(),
        from: p.from.map(samskab_proto::time::to_proto),
        to: p.to.map(samskab_proto::time::to_proto),
        ..Default::default()
    }
}

/// Every item of a service's list, page by page (`page(cursor)` gives a page's items and
/// the next cursor, empty at the end).
async fn walk<T, F, Fut>(mut page: F) -> Result<Vec<T>, ApiError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), ApiError>>,
{
    let (mut out, mut cursor) = (Vec::new(), String::new());
    loop {
        let (items, next) = page(cursor).await?;
        out.extend(items);
        if next.is_empty() {
            return Ok(out);
        }
        cursor = next;
    }
}

/// Every pilot of a chapter; with `on`, each qualification's state on that day as the
/// volunteer service judges it.
pub async fn pilots(s: &AppState, chapter: Uuid, on: Option<NaiveDate>) -> Result<Vec<vpb::Pilot>, ApiError> {
    let on = on.map(|d| d.to_string()).unwrap_or_default();
    walk(|cursor| {
        let on = on.clone();
        async move {
            let q = vpb::ListPilotsRequest { chapter_id: chapter.to_string(), limit: PAGE, cursor, on };
            let page = s.clients.volunteer().list_pilots(q).await.reply()?;
            Ok((page.pilots, page.next_cursor))
        }
    })
    .await
}

/// Every care home of a chapter.
pub async fn carehomes(s: &AppState, chapter: Uuid) -> Result<Vec<cpb::CareHome>, ApiError> {
    walk(|cursor| async move {
        let q = cpb::ListRequest { parent_id: chapter.to_string(), limit: PAGE, cursor };
        let page = s.clients.carehome().list_care_homes(q).await.reply()?;
        Ok((page.carehomes, page.next_cursor))
    })
    .await
}

/// Every resident of a care home (moved out and erased ones included).
pub async fn residents(s: &AppState, home: &str) -> Result<Vec<cpb::Resident>, ApiError> {
    walk(|cursor| async move {
        let q = cpb::ListRequest { parent_id: home.to_owned(), limit: PAGE, cursor };
        let page = s.clients.carehome().list_residents(q).await.reply()?;
        Ok((page.residents, page.next_cursor))
    })
    .await
}

/// Every trishaw of a care home.
async fn bikes(s: &AppState, home: &str) -> Result<Vec<cpb::Bike>, ApiError> {
    walk(|cursor| async move {
        let q = cpb::ListRequest { parent_id: home.to_owned(), limit: PAGE, cursor };
        let page = s.clients.carehome().list_bikes(q).await.reply()?;
        Ok((page.bikes, page.next_cursor))
    })
    .await
}

/// A name, unless erased (then none).
pub fn name(erased: bool, n: &str) -> Option<String> {
    if erased { None } else { opt(n.to_owned()) }
}

/// `?chapter_id=&from=&to=` of the period reports.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PeriodFilter {
    /// The chapter.
    pub chapter_id: Uuid,
    /// Rides starting at or after: a date (local midnight in the chapter's zone) or an RFC 3339 time.
    #[param(schema_with = crate::views::date_or_time)]
    pub from: Option<String>,
    /// Rides starting before: a date or an RFC 3339 time.
    #[param(schema_with = crate::views::date_or_time)]
    pub to: Option<String>,
}

/// Participation counts of a pilot or a resident over a period.
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct Participation {
    /// Rides they were on that were not cancelled (whatever became of them).
    pub signed_up: u32,
    /// Completed rides (for a resident: rides carried by the counting rule).
    pub completed: u32,
    /// Rides marked no-show.
    pub no_show: u32,
    /// Rides they were on that were cancelled.
    pub cancelled: u32,
}

/// The counts of one month (`YYYY-MM` in the chapter's zone, by scheduled start).
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthParticipation {
    /// `YYYY-MM`.
    pub month: String,
    /// Counts of the month.
    #[serde(flatten)]
    pub counts: Participation,
}

impl From<Option<bpb::ParticipationCounts>> for Participation {
    fn from(c: Option<bpb::ParticipationCounts>) -> Self {
        let c = c.unwrap_or_default();
        Participation { signed_up: c.signed_up, completed: c.completed, no_show: c.no_show, cancelled: c.cancelled }
    }
}

/// Per pilot or per resident (`by`: `pilots`, `residents`), what booking counts of the
/// rides of a chapter's period under the counting rule, by person id.
pub async fn participation(
    s: &AppState,
    chapter: Uuid,
    p: Period,
    by: &str,
) -> Result<HashMap<String, bpb::PersonParticipation>, ApiError> {
    let reply = s
        .clients
        .booking()
        .participation(bpb::ParticipationRequest {
            chapter_id: chapter.to_string(),
            carehome_id: String::new(),
            from: p.from.map(samskab_proto::time::to_proto),
            to: p.to.map(samskab_proto::time::to_proto),
            by: by.to_owned(),
        })
        .await
        .reply()?;
    Ok(reply.people.into_iter().map(|x| (x.person_id.clone(), x)).collect())
}

/// A person's months in order.
pub fn by_month(p: &bpb::PersonParticipation) -> Vec<MonthParticipation> {
    p.by_month.iter().map(|m| MonthParticipation { month: m.month.clone(), counts: m.counts.into() }).collect()
}

/// Kilometres from booking's whole metres.
pub fn km(distance_m: u64) -> f64 {
    distance_m as f64 / 1000.0
}

/// One pilot's participation.
#[derive(Debug, Serialize, ToSchema)]
pub struct PilotParticipation {
    /// Pilot.
    pub pilot_id: String,
    /// Name (absent once erased).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Whether the pilot's personal data is erased.
    pub erased: bool,
    /// `active`, `suspended`, `retired` or `erased`.
    pub status: String,
    /// Counts over the period.
    #[serde(flatten)]
    pub counts: Participation,
    /// The same per month with rides (`YYYY-MM` in the chapter's zone).
    pub by_month: Vec<MonthParticipation>,
    /// Minutes of completed rides (as the stats count them).
    pub ride_minutes: i64,
    /// Kilometres of completed rides.
    pub distance_km: f64,
}

/// `GET /v1/reports/pilot-participation`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PilotParticipationReport {
    /// Chapter.
    pub chapter_id: String,
    /// Period start (UTC), if any.
    pub from: Option<String>,
    /// Period end (UTC, exclusive), if any.
    pub to: Option<String>,
    /// Every pilot of the chapter.
    pub items: Vec<PilotParticipation>,
}

/// Per pilot: rides signed up for, completed, no-show and cancelled in a period (the
/// chapter's admin, admin).
#[utoipa::path(get, path = "/v1/reports/pilot-participation", tag = "reports", params(PeriodFilter),
    responses((status = 200, body = PilotParticipationReport), (status = 400, description = "Malformed (`malformed`, `validation`), or `to` before `from` (`validation` on `/to`: a rule between two fields, which the schema cannot state)", body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn pilot_participation(
    State(s): State<AppState>,
    caller: Caller,
    Params(f): Params<PeriodFilter>,
) -> Result<axum::Json<PilotParticipationReport>, ApiError> {
    let chapter = chapter_reports(&s, &caller, f.chapter_id).await?;
    let p = Period::parse(f.from.as_deref(), f.to.as_deref(), zone(&chapter))?;
    let mut by = participation(&s, f.chapter_id, p, "pilots").await?;
    let items = pilots(&s, f.chapter_id, None)
        .await?
        .into_iter()
        .map(|pl| {
            let t = by.remove(&pl.pilot_id).unwrap_or_default();
            PilotParticipation {
                display_name: name(pl.erased, &pl.display_name),
                erased: pl.erased,
                pilot_id: pl.pilot_id,
                status: pl.status,
                by_month: by_month(&t),
                counts: t.total.into(),
                ride_minutes: t.ride_minutes as i64,
                distance_km: km(t.distance_m),
            }
        })
        .collect();
    Ok(axum::Json(PilotParticipationReport {
        chapter_id: f.chapter_id.to_string(),
        from: Period::text(p.from),
        to: Period::text(p.to),
        items,
    }))
}

/// One resident's participation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RiderParticipation {
    /// Resident.
    pub resident_id: String,
    /// Care home.
    pub carehome_id: String,
    /// Name (absent once erased).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Whether the resident's personal data is erased.
    pub erased: bool,
    /// `living_here`, `moved_out` or `erased`.
    pub status: String,
    /// Counts over the period (`completed`: rides carried, by the counting rule).
    #[serde(flatten)]
    pub counts: Participation,
    /// The same per month with rides (`YYYY-MM` in the chapter's zone).
    pub by_month: Vec<MonthParticipation>,
}

/// `GET /v1/reports/rider-participation`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RiderParticipationReport {
    /// Chapter.
    pub chapter_id: String,
    /// Period start (UTC), if any.
    pub from: Option<String>,
    /// Period end (UTC, exclusive), if any.
    pub to: Option<String>,
    /// Every resident of the chapter's care homes.
    pub items: Vec<RiderParticipation>,
}

/// Per resident: rides signed up for, carried (counting rule), no-show and cancelled in a
/// period (the chapter's admin, admin).
#[utoipa::path(get, path = "/v1/reports/rider-participation", tag = "reports", params(PeriodFilter),
    responses((status = 200, body = RiderParticipationReport), (status = 400, description = "Malformed (`malformed`, `validation`), or `to` before `from` (`validation` on `/to`: a rule between two fields, which the schema cannot state)", body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn rider_participation(
    State(s): State<AppState>,
    caller: Caller,
    Params(f): Params<PeriodFilter>,
) -> Result<axum::Json<RiderParticipationReport>, ApiError> {
    let chapter = chapter_reports(&s, &caller, f.chapter_id).await?;
    let p = Period::parse(f.from.as_deref(), f.to.as_deref(), zone(&chapter))?;
    let mut by = participation(&s, f.chapter_id, p, "residents").await?;
    let mut items = Vec::new();
    for home in carehomes(&s, f.chapter_id).await? {
        for r in residents(&s, &home.carehome_id).await? {
            let t = by.remove(&r.resident_id).unwrap_or_default();
            items.push(RiderParticipation {
                by_month: by_month(&t),
                counts: t.total.into(),
                display_name: name(r.erased, &r.display_name),
                erased: r.erased,
                resident_id: r.resident_id,
                carehome_id: r.carehome_id,
                status: r.status,
            });
        }
    }
    Ok(axum::Json(RiderParticipationReport {
        chapter_id: f.chapter_id.to_string(),
        from: Period::text(p.from),
        to: Period::text(p.to),
        items,
    }))
}

/// `?chapter_id=&on=` of the volunteer roster.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RosterFilter {
    /// The chapter.
    pub chapter_id: Uuid,
    /// The day expiry is judged on, `YYYY-MM-DD` (default: today in the chapter's zone).
    #[param(format = Date)]
    pub on: Option<String>,
}

/// A qualification with its state on the day of the report.
#[derive(Debug, Serialize, ToSchema)]
pub struct RosterQualification {
    /// Trishaw type.
    pub bike_type: String,
    /// Training date.
    pub qualified_on: String,
    /// Valid through this date.
    pub valid_until: String,
    /// `valid`, `expiring` (valid through at most 30 more days) or `expired`.
    pub state: String,
    /// Days from the report's day to `valid_until` (negative once expired).
    pub days_left: i64,
}

/// A pilot on the roster.
#[derive(Debug, Serialize, ToSchema)]
pub struct RosterPilot {
    /// Pilot.
    pub pilot_id: String,
    /// Name (absent once erased).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Whether the pilot's personal data is erased.
    pub erased: bool,
    /// `active`, `suspended`, `retired` or `erased`.
    pub status: String,
    /// Qualifications per trishaw type.
    pub qualifications: Vec<RosterQualification>,
}

/// `GET /v1/reports/volunteer-roster`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VolunteerRoster {
    /// Chapter.
    pub chapter_id: String,
    /// The day expiry is judged on.
    pub on: String,
    /// Every pilot of the chapter.
    pub items: Vec<RosterPilot>,
}

/// Every pilot with its qualifications per trishaw type and their expiry: `expiring`
/// within 30 days, `expired` (the chapter's admin, admin).
#[utoipa::path(get, path = "/v1/reports/volunteer-roster", tag = "reports", params(RosterFilter),
    responses((status = 200, body = VolunteerRoster), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn volunteer_roster(
    State(s): State<AppState>,
    caller: Caller,
    Params(f): Params<RosterFilter>,
) -> Result<axum::Json<VolunteerRoster>, ApiError> {
    let on =
        f.on.as_deref()
            .map(|d| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| ApiError::invalid("/on", "must be a date such as 2027-05-01"))
            })
            .transpose()?;
    let chapter = chapter_reports(&s, &caller, f.chapter_id).await?;
    let on = on.unwrap_or_else(|| servicekit::clock::now().with_timezone(&zone(&chapter)).date_naive());
    let items = pilots(&s, f.chapter_id, Some(on))
        .await?
        .into_iter()
        .map(|p| RosterPilot {
            display_name: name(p.erased, &p.display_name),
            erased: p.erased,
            qualifications: p
                .qualifications
                .into_iter()
                .map(|q| RosterQualification {
                    bike_type: q.bike_type,
                    qualified_on: q.qualified_on,
                    valid_until: q.valid_until,
                    state: q.state,
                    days_left: q.days_left,
                })
                .collect(),
            pilot_id: p.pilot_id,
            status: p.status,
        })
        .collect();
    Ok(axum::Json(VolunteerRoster { chapter_id: f.chapter_id.to_string(), on: on.to_string(), items }))
}

/// The census's parameters as documented: the census is per ride season, so the period
/// of [`ChapterFilter`] is refused (400) rather than offered.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CensusFilter {
    /// The chapter.
    pub chapter_id: Uuid,
}

/// `?chapter_id=` of the census and the maintenance history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChapterFilter {
    /// The chapter.
    pub chapter_id: Uuid,
    /// Maintenance: entries at or after (a date or an RFC 3339 time).
    #[param(schema_with = crate::views::date_or_time)]
    pub from: Option<String>,
    /// Maintenance: entries before (a date or an RFC 3339 time).
    #[param(schema_with = crate::views::date_or_time)]
    pub to: Option<String>,
}

/// A ride season (`ends` exclusive).
#[derive(Debug, Serialize, ToSchema)]
pub struct Season {
    /// First day.
    pub starts: String,
    /// First day after the season.
    pub ends: String,
}

/// The consent census of one care home (counted by the care-home service).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct CensusHome {
    /// Care home.
    pub carehome_id: String,
    /// Its name.
    pub name: String,
    /// Residents living there.
    pub residents: u32,
    /// Of them: with consent on record covering rides.
    pub consent_rides: u32,
    /// Of them: with consent on record covering stories.
    pub consent_stories: u32,
    /// Of them: whose consent was withdrawn (none on record; admission requires one).
    pub withdrawn: u32,
    /// Of them: without consent to rides (withdrawn, or consent to stories only).
    pub none: u32,
    /// Of them: whose consent on record was given during the season (null without a season).
    pub given_in_season: Option<u32>,
    /// Residents who moved out (not counted above).
    pub moved_out: u32,
    /// Residents erased (not counted above).
    pub erased: u32,
}

/// `GET /v1/reports/consent-census`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentCensus {
    /// Chapter.
    pub chapter_id: String,
    /// The chapter's ride season, if set.
    pub season: Option<Season>,
    /// Per care home.
    pub items: Vec<CensusHome>,
}

/// Consent census per care home for the chapter's ride season (the chapter's admin, admin).
#[utoipa::path(get, path = "/v1/reports/consent-census", tag = "reports", params(CensusFilter),
    responses((status = 200, body = ConsentCensus), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn consent_census(
    State(s): State<AppState>,
    caller: Caller,
    Params(f): Params<ChapterFilter>,
) -> Result<axum::Json<ConsentCensus>, ApiError> {
    if f.from.is_some() || f.to.is_some() {
        let field = if f.from.is_some() { "/from" } else { "/to" };
        return Err(ApiError::invalid(field, "the census is per ride season: it takes no period"));
    }
    chapter_reports(&s, &caller, f.chapter_id).await?;
    let census =
        s.clients.carehome().get_consent_census(cpb::IdRequest { id: f.chapter_id.to_string() }).await.reply()?;
    let items = census
        .homes
        .into_iter()
        .map(|h| CensusHome {
            carehome_id: h.carehome_id,
            name: h.name,
            residents: h.residents,
            consent_rides: h.consent_rides,
            consent_stories: h.consent_stories,
            withdrawn: h.withdrawn,
            none: h.none,
            given_in_season: h.given_in_season,
            moved_out: h.moved_out,
            erased: h.erased,
        })
        .collect();
    let season =
        (!census.season_starts.is_empty()).then_some(Season { starts: census.season_starts, ends: census.season_ends });
    Ok(axum::Json(ConsentCensus { chapter_id: f.chapter_id.to_string(), season, items }))
}

/// One trishaw's maintenance history.
#[derive(Debug, Serialize, ToSchema)]
pub struct BikeHistory {
    /// Trishaw.
    pub bike_id: String,
    /// Its care home.
    pub carehome_id: String,
    /// Its name.
    pub name: String,
    /// Its type.
    pub bike_type: String,
    /// `in_service`, `out_of_service` or `retired`.
    pub status: String,
    /// Issues, repairs and service changes in order (within the period).
    pub entries: Vec<MaintenanceEntry>,
}

/// `GET /v1/reports/maintenance`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MaintenanceReport {
    /// Chapter.
    pub chapter_id: String,
    /// Period start (UTC), if any.
    pub from: Option<String>,
    /// Period end (UTC, exclusive), if any.
    pub to: Option<String>,
    /// Every trishaw of the chapter.
    pub items: Vec<BikeHistory>,
}

/// Maintenance history per trishaw: issues, repairs and service changes in order (the
/// chapter's admin, admin).
#[utoipa::path(get, path = "/v1/reports/maintenance", tag = "reports", params(ChapterFilter),
    responses((status = 200, body = MaintenanceReport), (status = 400, description = "Malformed (`malformed`, `validation`), or `to` before `from` (`validation` on `/to`: a rule between two fields, which the schema cannot state)", body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn maintenance(
    State(s): State<AppState>,
    caller: Caller,
    Params(f): Params<ChapterFilter>,
) -> Result<axum::Json<MaintenanceReport>, ApiError> {
    let chapter = chapter_reports(&s, &caller, f.chapter_id).await?;
    let p = Period::parse(f.from.as_deref(), f.to.as_deref(), zone(&chapter))?;
    let mut items = Vec::new();
    for home in carehomes(&s, f.chapter_id).await? {
        for b in bikes(&s, &home.carehome_id).await? {
            let log =
                s.clients.carehome().get_maintenance_log(cpb::IdRequest { id: b.bike_id.clone() }).await?.into_inner();
            let entries = log
                .entries
                .into_iter()
                .filter(|e| p.holds(&e.at))
                .map(|e| MaintenanceEntry {
                    grounding: (e.kind == "issue_reported").then_some(e.grounding),
                    at: e.at,
                    kind: e.kind,
                    description: opt(e.description),
                    reason: opt(e.reason),
                    expected_back: opt(e.expected_back),
                    actor_role: e.actor_role,
                })
                .collect();
            items.push(BikeHistory {
                bike_id: b.bike_id,
                carehome_id: b.carehome_id,
                name: b.name,
                bike_type: b.bike_type,
                status: b.status,
                entries,
            });
        }
    }
    Ok(axum::Json(MaintenanceReport {
        chapter_id: f.chapter_id.to_string(),
        from: Period::text(p.from),
        to: Period::text(p.to),
        items,
    }))
}

/// A ride's start as RFC 3339 UTC.
pub fn start_of(r: &bpb::Ride) -> String {
    time(&r.start).unwrap_or_default()
}

/// The report routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pilot_participation))
        .routes(routes!(rider_participation))
        .routes(routes!(volunteer_roster))
        .routes(routes!(consent_census))
        .routes(routes!(maintenance))
}
