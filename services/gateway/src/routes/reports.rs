//! The programme's reports of a chapter (domain.md, "Reports the programme asks for"):
//! pilot participation, rider participation, the volunteer roster with qualifications and
//! their expiry, the consent census per care home for the chapter's ride season, and the
//! maintenance history per trishaw. Read by the chapter's admin and admin only: they carry
//! names (erased persons show as erased, without one). The helpers here (scope check,
//! periods, paging through the services, the counting rule) serve the CSV exports and the
//! reach report too.

use std::collections::{BTreeMap, HashMap};

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
use crate::clients::req;
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
    if !caller.admin_of(chapter) {
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
    Ok(s.clients.booking.clone().list_rides(req(q)).await?.into_inner())
}

/// The ride query of a chapter (or a care home) and period.
pub fn ride_query(chapter: Option<Uuid>, home: Option<Uuid>, p: Period, statuses: &[&str]) -> bpb::ListRidesRequest {
    bpb::ListRidesRequest {
        chapter_id: chapter.map(|c| c.to_string()).unwrap_or_default(),
        carehome_id: home.map(|h| h.to_string()).unwrap_or_default(),
        from: p.from.map(samskab_proto::time::to_proto),
        to: p.to.map(samskab_proto::time::to_proto),
        statuses: statuses.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

/// Calls `each` for every ride of the query, page by page (never all in memory).
pub async fn each_ride(
    s: &AppState,
    q: &bpb::ListRidesRequest,
    mut each: impl FnMut(bpb::Ride),
) -> Result<(), ApiError> {
    let mut cursor = String::new();
    loop {
        let page = rides_page(s, q, cursor).await?;
        page.rides.into_iter().for_each(&mut each);
        if page.next_cursor.is_empty() {
            return Ok(());
        }
        cursor = page.next_cursor;
    }
}

/// The riders a completed ride carried, by the counting rule: the roster when it completed
/// (pleasure, functional), the riders who checked in (event). Nothing for other statuses.
pub fn carried(ride: &bpb::Ride) -> Vec<&str> {
    if ride.status != "completed" {
        return Vec::new();
    }
    ride.riders.iter().filter(|r| ride.kind != "event" || r.checked_in).map(|r| r.resident_id.as_str()).collect()
}

/// Every pilot of a chapter.
pub async fn pilots(s: &AppState, chapter: Uuid) -> Result<Vec<vpb::Pilot>, ApiError> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = s
            .clients
            .volunteer
            .clone()
            .list_pilots(req(vpb::ListPilotsRequest { chapter_id: chapter.to_string(), limit: PAGE, cursor }))
            .await?
            .into_inner();
        out.extend(page.pilots);
        if page.next_cursor.is_empty() {
            return Ok(out);
        }
        cursor = page.next_cursor;
    }
}

/// Every care home of a chapter.
pub async fn carehomes(s: &AppState, chapter: Uuid) -> Result<Vec<cpb::CareHome>, ApiError> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = s
            .clients
            .carehome
            .clone()
            .list_care_homes(req(cpb::ListRequest { parent_id: chapter.to_string(), limit: PAGE, cursor }))
            .await?
            .into_inner();
        out.extend(page.carehomes);
        if page.next_cursor.is_empty() {
            return Ok(out);
        }
        cursor = page.next_cursor;
    }
}

/// Every resident of a care home (moved out and erased ones included).
pub async fn residents(s: &AppState, home: &str) -> Result<Vec<cpb::Resident>, ApiError> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = s
            .clients
            .carehome
            .clone()
            .list_residents(req(cpb::ListRequest { parent_id: home.to_owned(), limit: PAGE, cursor }))
            .await?
            .into_inner();
        out.extend(page.residents);
        if page.next_cursor.is_empty() {
            return Ok(out);
        }
        cursor = page.next_cursor;
    }
}

/// Every trishaw of a care home.
async fn bikes(s: &AppState, home: &str) -> Result<Vec<cpb::Bike>, ApiError> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = s
            .clients
            .carehome
            .clone()
            .list_bikes(req(cpb::ListRequest { parent_id: home.to_owned(), limit: PAGE, cursor }))
            .await?
            .into_inner();
        out.extend(page.bikes);
        if page.next_cursor.is_empty() {
            return Ok(out);
        }
        cursor = page.next_cursor;
    }
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

impl Participation {
    fn add(&mut self, ride: &bpb::Ride, completed: bool) {
        match ride.status.as_str() {
            "cancelled" => self.cancelled += 1,
            status => {
                self.signed_up += 1;
                if status == "no_show" {
                    self.no_show += 1;
                }
                if completed {
                    self.completed += 1;
                }
            }
        }
    }
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

/// What a report adds up about one person over the rides of a period.
#[derive(Debug, Default)]
pub struct Tally {
    /// Over the period.
    pub total: Participation,
    /// Per month with rides.
    pub months: BTreeMap<String, Participation>,
    /// Minutes of completed rides (pilots).
    pub minutes: i64,
    /// Kilometres of completed rides (pilots).
    pub km: f64,
}

impl Tally {
    fn add(&mut self, r: &bpb::Ride, completed: bool, tz: chrono_tz::Tz) {
        self.total.add(r, completed);
        let month = r
            .start
            .as_ref()
            .and_then(samskab_proto::time::from_proto)
            .map(|t| t.with_timezone(&tz).format("%Y-%m").to_string())
            .unwrap_or_default();
        self.months.entry(month).or_default().add(r, completed);
    }

    /// The months in order.
    pub fn by_month(&self) -> Vec<MonthParticipation> {
        self.months.iter().map(|(m, c)| MonthParticipation { month: m.clone(), counts: c.clone() }).collect()
    }
}

/// Tallies per pilot of the rides of a query.
pub async fn pilot_tallies(
    s: &AppState,
    q: &bpb::ListRidesRequest,
    tz: chrono_tz::Tz,
) -> Result<HashMap<String, Tally>, ApiError> {
    let mut by: HashMap<String, Tally> = HashMap::new();
    each_ride(s, q, |r| {
        let e = by.entry(r.pilot_id.clone()).or_default();
        let done = r.status == "completed";
        e.add(&r, done, tz);
        if done {
            e.minutes += minutes(&r);
            e.km += r.distance_km;
        }
    })
    .await?;
    Ok(by)
}

/// Tallies per resident of the rides of a query (`completed`: carried, by the counting rule).
pub async fn rider_tallies(
    s: &AppState,
    q: &bpb::ListRidesRequest,
    tz: chrono_tz::Tz,
) -> Result<HashMap<String, Tally>, ApiError> {
    let mut by: HashMap<String, Tally> = HashMap::new();
    each_ride(s, q, |r| {
        let carried = carried(&r);
        for rider in &r.riders {
            by.entry(rider.resident_id.clone()).or_default().add(&r, carried.contains(&rider.resident_id.as_str()), tz);
        }
    })
    .await?;
    Ok(by)
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

/// Minutes of a completed ride as the stats count them: from the later of its scheduled
/// start and the moment the pilot pressed start, to its logged end, rounded to the nearest
/// minute, never negative.
pub fn minutes(r: &bpb::Ride) -> i64 {
    let scheduled = r.start.as_ref().and_then(samskab_proto::time::from_proto);
    let pressed = r.started_at.as_ref().and_then(samskab_proto::time::from_proto);
    let start = match (scheduled, pressed) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let end = r.ended_at.as_ref().and_then(samskab_proto::time::from_proto);
    match (start, end) {
        (Some(a), Some(b)) if b > a => ((b - a).num_seconds() + 30) / 60,
        _ => 0,
    }
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
    let tz = zone(&chapter);
    let mut by = pilot_tallies(&s, &ride_query(Some(f.chapter_id), None, p, &[]), tz).await?;
    let items = pilots(&s, f.chapter_id)
        .await?
        .into_iter()
        .map(|pl| {
            let t = by.remove(&pl.pilot_id).unwrap_or_default();
            PilotParticipation {
                display_name: name(pl.erased, &pl.display_name),
                erased: pl.erased,
                pilot_id: pl.pilot_id,
                status: pl.status,
                by_month: t.by_month(),
                counts: t.total,
                ride_minutes: t.minutes,
                distance_km: (t.km * 1000.0).round() / 1000.0,
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
    let mut by = rider_tallies(&s, &ride_query(Some(f.chapter_id), None, p, &[]), zone(&chapter)).await?;
    let mut items = Vec::new();
    for home in carehomes(&s, f.chapter_id).await? {
        for r in residents(&s, &home.carehome_id).await? {
            let t = by.remove(&r.resident_id).unwrap_or_default();
            items.push(RiderParticipation {
                by_month: t.by_month(),
                counts: t.total,
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

/// How many days ahead a qualification counts as expiring.
pub const EXPIRING_DAYS: i64 = 30;

/// The state of a qualification valid through `until` on day `on`.
pub fn qualification_state(until: NaiveDate, on: NaiveDate) -> (&'static str, i64) {
    let left = (until - on).num_days();
    let state = if left < 0 {
        "expired"
    } else if left <= EXPIRING_DAYS {
        "expiring"
    } else {
        "valid"
    };
    (state, left)
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
    let items = pilots(&s, f.chapter_id)
        .await?
        .into_iter()
        .map(|p| RosterPilot {
            display_name: name(p.erased, &p.display_name),
            erased: p.erased,
            qualifications: p
                .qualifications
                .into_iter()
                .map(|q| {
                    let (state, days_left) = NaiveDate::parse_from_str(&q.valid_until, "%Y-%m-%d")
                        .map(|u| qualification_state(u, on))
                        .unwrap_or(("expired", 0));
                    RosterQualification {
                        bike_type: q.bike_type,
                        qualified_on: q.qualified_on,
                        valid_until: q.valid_until,
                        state: state.to_owned(),
                        days_left,
                    }
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

/// The consent census of one care home.
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
    let chapter = chapter_reports(&s, &caller, f.chapter_id).await?;
    let tz = zone(&chapter);
    let season = chapter.settings.as_ref().and_then(|st| st.ride_season.clone()).filter(|r| !r.starts.is_empty());
    let window = season
        .as_ref()
        .map(|r| Period::parse(Some(&r.starts), Some(&r.ends), tz))
        .transpose()
        .map_err(|_| ApiError::new(servicekit::ErrorCode::Internal))?;
    let mut items = Vec::new();
    for home in carehomes(&s, f.chapter_id).await? {
        let mut c = CensusHome {
            given_in_season: window.map(|_| 0),
            carehome_id: home.carehome_id.clone(),
            name: home.name.clone(),
            ..Default::default()
        };
        for r in residents(&s, &home.carehome_id).await? {
            match r.status.as_str() {
                "moved_out" => c.moved_out += 1,
                "erased" => c.erased += 1,
                _ => {
                    c.residents += 1;
                    match &r.consent {
                        None => {
                            c.withdrawn += 1;
                            c.none += 1;
                        }
                        Some(k) => {
                            let rides = k.scope.iter().any(|x| x == "rides");
                            c.consent_rides += u32::from(rides);
                            c.none += u32::from(!rides);
                            c.consent_stories += u32::from(k.scope.iter().any(|x| x == "stories"));
                            if let (Some(w), Some(n)) = (window, c.given_in_season.as_mut()) {
                                *n += u32::from(w.holds(&k.given_at));
                            }
                        }
                    }
                }
            }
        }
        items.push(c);
    }
    Ok(axum::Json(ConsentCensus {
        chapter_id: f.chapter_id.to_string(),
        season: season.map(|r| Season { starts: r.starts, ends: r.ends }),
        items,
    }))
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
            let log = s
                .clients
                .carehome
                .clone()
                .get_maintenance_log(req(cpb::IdRequest { id: b.bike_id.clone() }))
                .await?
                .into_inner();
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
