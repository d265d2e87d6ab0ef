//! Recurring rides (api.md → *Scheduling*): a series books the same trishaw, pilot, riders
//! and local wall-clock time on some weekdays every N weeks; booking books its occurrences
//! as rides up to the chapter's horizon and records once why a date could not be booked.
//! Who may plan, read and cancel a series is who may book, read and change its rides: the
//! series is a ride object (chapter, care home, pilot) to the read rules.

use std::str::FromStr;

use access::{Action, ListFilter, Object};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use samskab_proto::booking::v1 as bpb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::{Caller, may_book};
use crate::clients::Found;
use crate::extract::{Body, Command, Ids, Params};
use crate::problem::{ApiError, Problem};
use crate::routes::availability::carehome;
use crate::views::{Created, Page, PageParams, Versioned, opt, parse_time, time};

/// The weekday names, in order.
const WEEKDAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/// Booking answers at most this many series per page.
const BOOKING_PAGE: u32 = 200;

/// How a series recurs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceBody {
    /// Lowercase English weekdays (`monday`), at least one; the first occurrence's
    /// (`start`'s local weekday) must be among them.
    #[schema(schema_with = weekdays_schema)]
    pub weekdays: Vec<String>,
    /// Every N weeks, 1 to 52 (default 1).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 52)]
    pub interval_weeks: Option<u32>,
    /// The last local date (inclusive), `YYYY-MM-DD`: not before `start`, at most two years
    /// after it.
    #[serde(default)]
    #[schema(format = Date)]
    pub until: Option<String>,
    /// How many dates, booked or not (at most 260).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 260)]
    pub count: Option<u32>,
}

/// `weekdays`: a non-empty array of weekday names.
fn weekdays_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(WEEKDAYS)))
        .min_items(Some(1))
        .max_items(Some(WEEKDAYS.len()))
        .unique_items(true)
        .build()
}

/// `POST /v1/ride-series`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRideSeries {
    /// Trishaw.
    pub bike_id: Uuid,
    /// Pilot (a pilot plans for itself).
    pub pilot_id: Uuid,
    /// The first occurrence, RFC 3339 (any offset); its local wall-clock time is kept on
    /// every date (daylight saving kept).
    #[schema(format = DateTime)]
    pub start: String,
    /// Length in minutes.
    pub duration_minutes: u32,
    /// The roster of every occurrence, in order.
    #[serde(default)]
    pub resident_ids: Vec<Uuid>,
    /// `pleasure` (default) or `event`.
    #[serde(default)]
    #[schema(pattern = "^(pleasure|event)$")]
    pub kind: Option<String>,
    /// Event rides: minutes per trip (default 30).
    #[serde(default)]
    pub trip_minutes: Option<u32>,
    /// How it recurs.
    pub recurrence: RecurrenceBody,
}

/// How a series recurs, as planned.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecurrenceView {
    /// Weekdays.
    pub weekdays: Vec<String>,
    /// Every N weeks.
    pub interval_weeks: u32,
    /// The last local date (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// How many dates, booked or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// Why a date of a series was not booked.
#[derive(Debug, Serialize, ToSchema)]
pub struct OccurrenceProblemView {
    /// The error code of the rule it broke (`bike-taken`, `closed`, `lead-time`, ...).
    pub code: String,
    /// The ride it would have overlapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict_with: Option<String>,
}

/// One date of a series.
#[derive(Debug, Serialize, ToSchema)]
pub struct OccurrenceView {
    /// The local date, `YYYY-MM-DD`.
    pub date: String,
    /// Its start (UTC).
    pub start: Option<String>,
    /// Booked: the ride.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ride_id: Option<String>,
    /// Booked: the ride's status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Not booked: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<OccurrenceProblemView>,
}

/// A ride series.
#[derive(Debug, Serialize, ToSchema)]
pub struct RideSeriesView {
    /// Id.
    pub ride_series_id: String,
    /// Chapter.
    pub chapter_id: String,
    /// Care home.
    pub carehome_id: String,
    /// Trishaw.
    pub bike_id: String,
    /// Pilot.
    pub pilot_id: String,
    /// The first occurrence (UTC).
    pub start: Option<String>,
    /// Length in minutes.
    pub duration_minutes: u32,
    /// The roster of every occurrence.
    pub resident_ids: Vec<String>,
    /// `pleasure` or `event`.
    pub kind: String,
    /// Event rides: minutes per trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trip_minutes: Option<u32>,
    /// How it recurs.
    pub recurrence: RecurrenceView,
    /// The local wall-clock time of every occurrence, `HH:MM`.
    pub local_time: String,
    /// The zone that time is kept in (the care home's).
    pub timezone: String,
    /// `active`, `cancelled` (from `cancelled_from`) or `ended` (its last date has passed).
    pub status: String,
    /// The first local date cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_from: Option<String>,
    /// Cancellation reason code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// Role of who cancelled (`system` when it stopped at a retired trishaw or pilot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_by_role: Option<String>,
    /// The last local date booked so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booked_through: Option<String>,
    /// When it was planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned_at: Option<String>,
    /// The version (also the ETag).
    pub version: u64,
    /// Every date through the booking horizon (all of them when the series is bounded).
    pub occurrences: Vec<OccurrenceView>,
}

fn view(s: bpb::RideSeries) -> RideSeriesView {
    let r = s.recurrence.unwrap_or_default();
    RideSeriesView {
        ride_series_id: s.ride_series_id,
        chapter_id: s.chapter_id,
        carehome_id: s.carehome_id,
        bike_id: s.bike_id,
        pilot_id: s.pilot_id,
        start: time(&s.start),
        duration_minutes: s.duration_minutes,
        resident_ids: s.resident_ids,
        kind: s.kind,
        trip_minutes: (s.trip_minutes > 0).then_some(s.trip_minutes),
        recurrence: RecurrenceView {
            weekdays: r.weekdays,
            interval_weeks: r.interval_weeks.filter(|n| *n > 0).unwrap_or(1),
            until: opt(r.until),
            count: r.count,
        },
        local_time: s.local_time,
        timezone: s.timezone,
        status: s.status,
        cancelled_from: opt(s.cancelled_from),
        cancel_reason: opt(s.cancel_reason),
        cancelled_by_role: opt(s.cancelled_by_role),
        booked_through: opt(s.booked_through),
        planned_at: time(&s.planned_at),
        version: s.version,
        occurrences: s
            .occurrences
            .into_iter()
            .map(|o| OccurrenceView {
                date: o.date,
                start: time(&o.start),
                ride_id: opt(o.ride_id),
                status: opt(o.status),
                problem: o
                    .problem
                    .filter(|p| !p.code.is_empty())
                    .map(|p| OccurrenceProblemView { code: p.code, conflict_with: opt(p.conflict_with) }),
            })
            .collect(),
    }
}

fn versioned(s: bpb::RideSeries) -> Versioned<RideSeriesView> {
    let version = s.version;
    Versioned(view(s), version)
}

/// The facts of a series the read rules ask about: those of its rides.
fn object(s: &bpb::RideSeries) -> Option<Object> {
    Some(Object::Ride {
        chapter: s.chapter_id.parse().ok()?,
        carehome: s.carehome_id.parse().ok()?,
        pilot: s.pilot_id.parse().ok()?,
    })
}

/// Loads a series the caller may read (404 otherwise, as for an unknown id).
pub async fn visible(s: &AppState, caller: &Caller, id: Uuid) -> Result<bpb::RideSeries, ApiError> {
    let series = s
        .clients
        .booking()
        .get_ride_series(bpb::GetRideSeriesRequest { ride_series_id: id.to_string() })
        .await
        .or_404()?;
    if !object(&series).is_some_and(|o| caller.may_read(&o)) {
        return Err(ApiError::not_found());
    }
    Ok(series)
}

/// What the gateway checks of a plan before it looks anything up: the syntax of each
/// field. The rules between fields (`start` on one of the weekdays, `until` after `start`
/// and within two years, `count` and `interval_weeks` in range) are booking's, which names
/// the same fields.
fn check_plan(b: &NewRideSeries) -> Result<prost_types::Timestamp, ApiError> {
    let start = parse_time("/start", &b.start)?;
    if let Some(kind) = b.kind.as_deref()
        && !matches!(kind, "pleasure" | "event")
    {
        return Err(ApiError::invalid("/kind", "must be pleasure or event"));
    }
    let r = &b.recurrence;
    if r.weekdays.is_empty() {
        return Err(ApiError::invalid("/recurrence/weekdays", "must name at least one weekday"));
    }
    for (i, day) in r.weekdays.iter().enumerate() {
        if domain::types::Weekday::from_str(day).is_err() {
            return Err(ApiError::invalid(
                format!("/recurrence/weekdays/{i}"),
                format!("must be one of {}", WEEKDAYS.join(", ")),
            ));
        }
        if r.weekdays[..i].contains(day) {
            return Err(ApiError::invalid(format!("/recurrence/weekdays/{i}"), "names a weekday twice"));
        }
    }
    if let Some(until) = r.until.as_deref() {
        domain::types::parse_date("/recurrence/until", until).map_err(|e| ApiError::invalid(e.field, e.message))?;
    }
    Ok(start)
}

/// Plan a series of rides: as `POST /v1/rides`, a pilot for itself, the trishaw's home's
/// coordinator, the chapter admin. Its occurrences up to the chapter's horizon are booked at
/// once (each under every booking rule; a date that breaks one is listed with its problem);
/// 201 even when none could be.
#[utoipa::path(post, path = "/v1/ride-series", tag = "ride-series", request_body = NewRideSeries,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: a retry with the same key completes an interrupted plan")),
    responses((status = 201, body = RideSeriesView, description = "Planned; `Location` names the series"),
        (status = 400, description = "Malformed (`malformed`, `validation`), or a rule between fields the schema cannot state (`validation` naming the field): `start` not on one of `recurrence.weekdays` (`/recurrence/weekdays`), `until` before `start` or more than two years after it (`/recurrence/until`)", body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    cmd: Command,
    Body(b): Body<NewRideSeries>,
) -> Result<Created<RideSeriesView>, ApiError> {
    let caller = &cmd.caller;
    let start = check_plan(&b)?;
    let (chapter, home) = crate::routes::rides::bike_chapter(&s, caller, b.bike_id).await?;
    if !caller.may(Action::Book, &Object::Ride { chapter, carehome: home, pilot: b.pilot_id }) {
        // A suspended pilot planning for itself is told why.
        if caller.is_pilot(b.pilot_id) {
            may_book(caller)?;
        }
        return Err(ApiError::forbidden());
    }
    let r = b.recurrence;
    let series = s
        .clients
        .booking()
        .plan_ride_series(bpb::PlanRideSeriesRequest {
            context: cmd.context(),
            bike_id: b.bike_id.to_string(),
            pilot_id: b.pilot_id.to_string(),
            start: Some(start),
            duration_minutes: b.duration_minutes,
            resident_ids: b.resident_ids.iter().map(Uuid::to_string).collect(),
            kind: b.kind.unwrap_or_default(),
            trip_minutes: b.trip_minutes.unwrap_or(0),
            // As given: a 0 reaches booking, which refuses it naming the field.
            recurrence: Some(bpb::Recurrence {
                weekdays: r.weekdays,
                interval_weeks: r.interval_weeks,
                until: r.until.unwrap_or_default(),
                count: r.count,
            }),
        })
        .await?
        .into_inner();
    let Versioned(v, version) = versioned(series);
    Ok(Created(format!("/v1/ride-series/{}", v.ride_series_id), v, version))
}

/// Read a series (its pilot, the care home's coordinator, the chapter admin, admin).
#[utoipa::path(get, path = "/v1/ride-series/{id}", tag = "ride-series", params(("id" = Uuid, Path)),
    responses((status = 200, body = RideSeriesView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Result<Versioned<RideSeriesView>, ApiError> {
    Ok(versioned(visible(&s, &caller, id).await?))
}

/// `GET /v1/ride-series` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesFilter {
    /// Care home.
    pub carehome_id: Uuid,
    /// Only this pilot's series (a pilot sees only its own).
    pub pilot_id: Option<Uuid>,
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Where to continue (the `next_cursor` of the previous page: a series id).
    #[param(pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub cursor: Option<String>,
}

/// List a care home's series: its coordinator, the chapter admin and admin all of them, a
/// pilot of the chapter its own; a neighbouring coordinator and integrators may not (403).
#[utoipa::path(get, path = "/v1/ride-series", tag = "ride-series",
    params(SeriesFilter),
    responses((status = 200, body = Page<RideSeriesView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Params(f): Params<SeriesFilter>,
) -> Result<axum::Json<Page<RideSeriesView>>, ApiError> {
    let limit = PageParams { limit: f.limit, cursor: None }.limit()?;
    let after = match f.cursor.as_deref() {
        Some(c) => c.parse::<Uuid>().map_err(|_| ApiError::invalid("/cursor", "must be a cursor this API sent"))?,
        None => Uuid::nil(),
    };
    let home = f.carehome_id;
    let (_, chapter) = carehome(&s, &caller, home).await?;
    let filter = ListFilter { chapter: None, carehome: Some((home, chapter)), pilot: f.pilot_id };
    let scope = access::ride_list(&caller.facts(), &filter)?;
    let page = s
        .clients
        .booking()
        .list_ride_series(bpb::ListRideSeriesRequest {
            carehome_id: home.to_string(),
            pilot_id: scope.pilot.map(|p| p.to_string()).unwrap_or_default(),
            after: if after.is_nil() { String::new() } else { after.to_string() },
            // Booking's pages are at most 200: a larger `limit` gets shorter pages.
            limit: limit.min(BOOKING_PAGE),
        })
        .await?
        .into_inner();
    Ok(axum::Json(Page::new(page.items.into_iter().map(view).collect(), page.next_after)))
}

/// `POST /v1/ride-series/{id}/cancel`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelSeries {
    /// The first local date cancelled, `YYYY-MM-DD` (default: today in the series' zone).
    #[serde(default)]
    #[schema(format = Date)]
    pub from: Option<String>,
    /// `weather`, `rider`, `facility`, `volunteer`, `equipment` or `no_riders`.
    #[schema(pattern = "^(weather|rider|facility|volunteer|equipment|no_riders)$")]
    pub reason: String,
    /// A note (personal: stored sealed); no control characters, at most 2000 characters,
    /// blank is none.
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$", max_length = 2000)]
    pub note: Option<String>,
}

/// What cancelling a series did.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesCancelled {
    /// Rides cancelled (pending or booked occurrences from `from` on).
    pub cancelled: u32,
    /// The series.
    pub ride_series_id: String,
    /// The series as it is now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ride_series: Option<RideSeriesView>,
}

/// Cancel a series from a local date (its pilot, the care home's coordinator, the chapter
/// admin): its rides from then on are cancelled and no more are booked. One occurrence alone
/// is cancelled as a ride (`POST /v1/rides/{id}/cancel`).
#[utoipa::path(post, path = "/v1/ride-series/{id}/cancel", tag = "ride-series", request_body = CancelSeries,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The series' ETag")),
    responses((status = 200, body = SeriesCancelled, description = "Cancelled; `ETag` is the series'"), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<CancelSeries>,
) -> Result<Response, ApiError> {
    let caller = &cmd.caller;
    let invalid = |e: domain::types::Invalid| ApiError::invalid(e.field, e.message);
    if let Some(from) = b.from.as_deref() {
        domain::types::parse_date("/from", from).map_err(invalid)?;
    }
    domain::types::parse_enum::<domain::types::CancellationReason>("/reason", &b.reason).map_err(invalid)?;
    if let Some(note) = b.note.as_deref().filter(|n| !n.trim().is_empty()) {
        domain::types::parse_label("/note", note, 2000).map_err(invalid)?;
    }
    let series = visible(&s, caller, id).await?;
    if !object(&series).is_some_and(|o| caller.may(Action::ChangeRide, &o)) {
        return Err(ApiError::forbidden());
    }
    let r = s
        .clients
        .booking()
        .cancel_ride_series(bpb::CancelRideSeriesRequest {
            context: cmd.context(),
            ride_series_id: id.to_string(),
            from: b.from.unwrap_or_default(),
            reason: b.reason,
            note: b.note.unwrap_or_default(),
        })
        .await?
        .into_inner();
    let version = r.series.as_ref().map(|s| s.version);
    let body =
        SeriesCancelled { cancelled: r.cancelled, ride_series_id: id.to_string(), ride_series: r.series.map(view) };
    Ok(match version {
        Some(v) => Versioned(body, v).into_response(),
        None => axum::Json(body).into_response(),
    })
}

/// The series routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create, list)).routes(routes!(get)).routes(routes!(cancel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use servicekit::ErrorCode;

    fn plan(recurrence: serde_json::Value) -> Result<prost_types::Timestamp, ApiError> {
        let body = serde_json::json!({"bike_id": Uuid::nil(), "pilot_id": Uuid::nil(),
            "start": "2027-06-08T10:00:00+02:00", "duration_minutes": 60, "recurrence": recurrence});
        check_plan(&crate::extract::parse_json(body.to_string().as_bytes())?)
    }

    fn field(r: Result<prost_types::Timestamp, ApiError>) -> String {
        let e = r.expect_err("refused");
        assert_eq!(e.code, ErrorCode::Validation);
        e.errors[0].field.clone()
    }

    #[test]
    fn the_syntax_of_a_plan_is_checked_naming_the_field() {
        assert!(plan(serde_json::json!({"weekdays": ["tuesday"], "until": "2027-07-01"})).is_ok());
        assert_eq!(field(plan(serde_json::json!({"weekdays": []}))), "/recurrence/weekdays");
        assert_eq!(field(plan(serde_json::json!({"weekdays": ["tuesday", "funday"]}))), "/recurrence/weekdays/1");
        assert_eq!(field(plan(serde_json::json!({"weekdays": ["tuesday", "tuesday"]}))), "/recurrence/weekdays/1");
        assert_eq!(
            field(plan(serde_json::json!({"weekdays": ["tuesday"], "until": "2027-02-30"}))),
            "/recurrence/until"
        );
        assert_eq!(field(plan(serde_json::json!({"weekdays": ["tuesday"], "colour": "red"}))), "/recurrence/colour");
        // Ranges are booking's: they pass the gateway as given.
        assert!(plan(serde_json::json!({"weekdays": ["tuesday"], "interval_weeks": 0, "count": 261})).is_ok());
    }

    #[test]
    fn empty_strings_of_a_series_are_left_out() {
        let v = serde_json::to_value(view(bpb::RideSeries {
            ride_series_id: "s".into(),
            recurrence: Some(bpb::Recurrence { weekdays: vec!["monday".into()], ..Default::default() }),
            occurrences: vec![bpb::Occurrence { date: "2027-06-07".into(), ..Default::default() }],
            ..Default::default()
        }))
        .expect("json");
        for absent in
            ["cancelled_from", "cancel_reason", "cancelled_by_role", "booked_through", "planned_at", "trip_minutes"]
        {
            assert!(v.get(absent).is_none(), "{absent} in {v}");
        }
        assert_eq!(v["recurrence"], serde_json::json!({"weekdays": ["monday"], "interval_weeks": 1}));
        assert_eq!(v["occurrences"][0], serde_json::json!({"date": "2027-06-07", "start": null}));
    }
}
