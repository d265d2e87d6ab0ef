//! Calendar feeds (RFC 5545) of a care home and of a pilot, and the calendar tokens that
//! let a calendar application subscribe to one without an `Authorization` header.
//!
//! A feed holds one VEVENT per ride starting from 30 days ago to 365 days ahead, whatever
//! its status: UID `<ride_id>@samskab` (stable), SEQUENCE the ride's stream version (it
//! grows with every change), STATUS `TENTATIVE` while pending confirmation, `CANCELLED`
//! once cancelled, `CONFIRMED` otherwise; times in UTC. Calendars end up in third-party
//! services, so a feed names nobody: riders are a count, the pilot is not named, no
//! notes, stories or addresses; LOCATION is the care home's name. Rides still ahead
//! (pending or booked) carry a VALARM per reminder lead time of the chapter's settings.

use std::collections::HashMap;

use access::{Action, Object};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use samskab_proto::booking::v1 as bpb;
use samskab_proto::carehome::v1 as cpb;
use samskab_proto::volunteer::v1 as vpb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::calendar_tokens::{Calendar, CalendarCaller, Record};
use crate::caller::Caller;
use crate::clients::Found;
use crate::extract::{Body, Ids, Params};
use crate::ical::Writer;
use crate::problem::{ApiError, Problem};
use crate::routes::carehomes;
use crate::views::{Created, Page, PageParams};

/// How far back a feed reaches.
pub const PAST_DAYS: i64 = 30;
/// How far ahead a feed reaches.
pub const FUTURE_DAYS: i64 = 365;
/// The most rides one feed holds.
pub const MAX_RIDES: usize = 5000;

/// A care home whose calendar the caller may read: its coordinator, its chapter's admin,
/// admin, integrators of its chapter (404 when the caller may not read the care home, 403
/// when it may read the home but not its calendar). Returns the home and its chapter.
pub async fn home_calendar(s: &AppState, caller: &Caller, id: Uuid) -> Result<(cpb::CareHome, Uuid), ApiError> {
    let home = carehomes::visible(s, caller, id).await?;
    let chapter = carehomes::chapter_of(&home).ok_or_else(ApiError::not_found)?;
    if !caller.may(Action::ReadCalendar, &Object::CareHome { id, chapter }) {
        return Err(ApiError::forbidden());
    }
    Ok((home, chapter))
}

/// A pilot whose calendar the caller may read: the pilot itself, its chapter's admin,
/// admin, integrators of its chapter (404 for everyone else, who may not read the pilot).
/// Returns the pilot's chapter.
pub async fn pilot_calendar(s: &AppState, caller: &Caller, id: Uuid) -> Result<Uuid, ApiError> {
    let p = s.clients.volunteer().get_pilot(vpb::GetPilotRequest { pilot_id: id.to_string() }).await.or_404()?;
    let chapter: Uuid = p.chapter_id.parse().map_err(|_| ApiError::not_found())?;
    if !caller.may(Action::ReadCalendar, &Object::Pilot { id, chapter }) {
        return Err(ApiError::not_found());
    }
    Ok(chapter)
}

/// The rides of a feed's window, of a care home or of a pilot.
async fn rides(s: &AppState, calendar: Calendar, now: DateTime<Utc>) -> Result<Vec<bpb::Ride>, ApiError> {
    let mut q = bpb::ListRidesRequest {
        from: Some(samskab_proto::time::to_proto(now - Duration::days(PAST_DAYS))),
        to: Some(samskab_proto::time::to_proto(now + Duration::days(FUTURE_DAYS))),
        limit: 500,
        ..Default::default()
    };
    match calendar {
        Calendar::CareHome(h) => q.carehome_id = h.to_string(),
        Calendar::Pilot(p) => q.pilot_id = p.to_string(),
    }
    let mut out = Vec::new();
    loop {
        let page = s.clients.booking().list_rides(q.clone()).await?.into_inner();
        out.extend(page.rides);
        if page.next_cursor.is_empty() || out.len() >= MAX_RIDES {
            break;
        }
        q.cursor = page.next_cursor;
    }
    out.truncate(MAX_RIDES);
    Ok(out)
}

/// What a ride's VEVENT needs besides the ride: its care home's name, its chapter's
/// reminder lead times.
struct Lookups<'a> {
    s: &'a AppState,
    homes: HashMap<String, String>,
    reminders: HashMap<String, Vec<u32>>,
}

impl Lookups<'_> {
    async fn home(&mut self, id: &str) -> Result<String, ApiError> {
        if let Some(n) = self.homes.get(id) {
            return Ok(n.clone());
        }
        let home = self.s.clients.carehome().get_care_home(cpb::IdRequest { id: id.to_owned() }).await.found()?;
        let name = home.map(|h| h.name).unwrap_or_default();
        self.homes.insert(id.to_owned(), name.clone());
        Ok(name)
    }

    async fn reminders(&mut self, chapter: &str) -> Result<Vec<u32>, ApiError> {
        if let Some(r) = self.reminders.get(chapter) {
            return Ok(r.clone());
        }
        let c = self.s.clients.carehome().get_chapter(cpb::IdRequest { id: chapter.to_owned() }).await.found()?;
        let r = c.and_then(|c| c.settings).map(|s| s.reminder_lead_minutes).unwrap_or_default();
        self.reminders.insert(chapter.to_owned(), r.clone());
        Ok(r)
    }
}

/// The SUMMARY of a ride: what and how many riders, never who.
pub fn summary(ride: &bpb::Ride) -> String {
    let what = match ride.kind.as_str() {
        "event" => "Trishaw event",
        "functional" => "Trishaw trip",
        _ => "Trishaw ride",
    };
    match ride.riders.len() {
        0 => format!("{what} (no riders yet)"),
        1 => format!("{what} (1 rider)"),
        n => format!("{what} ({n} riders)"),
    }
}

fn status(ride: &bpb::Ride) -> &'static str {
    match ride.status.as_str() {
        "pending_confirmation" => "TENTATIVE",
        "cancelled" => "CANCELLED",
        _ => "CONFIRMED",
    }
}

/// The feed of `calendar` named `name`.
async fn feed(s: &AppState, calendar: Calendar, name: &str) -> Result<Response, ApiError> {
    let now = servicekit::clock::now();
    let rides = rides(s, calendar, now).await?;
    let mut look = Lookups { s, homes: HashMap::new(), reminders: HashMap::new() };
    let mut w = Writer::new();
    w.begin("VCALENDAR");
    w.raw("VERSION", "2.0");
    w.raw("PRODID", "-//Samskab//Samskab calendar 1.0//EN");
    w.raw("CALSCALE", "GREGORIAN");
    w.raw("METHOD", "PUBLISH");
    w.text("X-WR-CALNAME", name);
    w.raw("REFRESH-INTERVAL;VALUE=DURATION", "PT15M");
    w.raw("X-PUBLISHED-TTL", "PT15M");
    let stamp = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    for ride in &rides {
        let Some(start) = ride.start.as_ref().and_then(samskab_proto::time::from_proto) else { continue };
        let end = start + Duration::minutes(i64::from(ride.duration_minutes));
        let summary = summary(ride);
        w.begin("VEVENT");
        w.raw("UID", &format!("{}@samskab", ride.ride_id));
        w.time("DTSTAMP", stamp);
        w.time("DTSTART", start);
        w.time("DTEND", end);
        w.raw("SEQUENCE", &ride.version.to_string());
        w.raw("STATUS", status(ride));
        w.text("SUMMARY", &summary);
        w.text("DESCRIPTION", &format!("Kind: {}. Status: {}.", ride.kind, ride.status));
        let home = look.home(&ride.carehome_id).await?;
        if !home.is_empty() {
            w.text("LOCATION", &home);
        }
        w.raw("TRANSP", "OPAQUE");
        if matches!(ride.status.as_str(), "pending_confirmation" | "booked") {
            for minutes in look.reminders(&ride.chapter_id).await? {
                w.begin("VALARM");
                w.raw("ACTION", "DISPLAY");
                w.raw("TRIGGER", &format!("-PT{minutes}M"));
                w.text("DESCRIPTION", &summary);
                w.end("VALARM");
            }
        }
        w.end("VEVENT");
    }
    w.end("VCALENDAR");
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=60"),
            (header::CONTENT_DISPOSITION, "inline; filename=\"calendar.ics\""),
        ],
        w.finish(),
    )
        .into_response())
}

/// `?token=` of a feed (documented as the `calendar_token` security scheme: it is a
/// credential, not a filter).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// A calendar token (from `POST /v1/calendar-tokens`), instead of the Authorization header.
    pub token: Option<String>,
}

/// A care home's calendar (its coordinator, its chapter's admin, admin, its chapter's
/// integrators; or a calendar token for it in `?token=`).
#[utoipa::path(get, path = "/v1/carehomes/{id}/calendar.ics", tag = "calendars", params(("id" = Uuid, Path)),
    responses((status = 200, description = "RFC 5545 calendar", content_type = "text/calendar", body = String),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []), ("calendar_token" = [])))]
pub async fn carehome_feed(
    State(s): State<AppState>,
    who: CalendarCaller,
    Ids(id): Ids<Uuid>,
    Params(_token): Params<FeedParams>,
) -> Result<Response, ApiError> {
    who.opens(Calendar::CareHome(id))?;
    let (home, _) = home_calendar(&s, &who.caller, id).await.map_err(|e| who.refused(e))?;
    feed(&s, Calendar::CareHome(id), &format!("Trishaw rides – {}", home.name)).await
}

/// A pilot's calendar (the pilot itself, its chapter's admin, admin, its chapter's
/// integrators; or a calendar token for it in `?token=`).
#[utoipa::path(get, path = "/v1/pilots/{id}/calendar.ics", tag = "calendars", params(("id" = Uuid, Path)),
    responses((status = 200, description = "RFC 5545 calendar", content_type = "text/calendar", body = String),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []), ("calendar_token" = [])))]
pub async fn pilot_feed(
    State(s): State<AppState>,
    who: CalendarCaller,
    Ids(id): Ids<Uuid>,
    Params(_token): Params<FeedParams>,
) -> Result<Response, ApiError> {
    who.opens(Calendar::Pilot(id))?;
    pilot_calendar(&s, &who.caller, id).await.map_err(|e| who.refused(e))?;
    feed(&s, Calendar::Pilot(id), "Trishaw rides").await
}

/// `POST /v1/calendar-tokens`: exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCalendarToken {
    /// A care home's calendar.
    #[serde(default)]
    pub carehome_id: Option<Uuid>,
    /// A pilot's calendar.
    #[serde(default)]
    pub pilot_id: Option<Uuid>,
    /// When it stops working (in the future); left out, it works until revoked.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

// Written by hand: "exactly one of the two" is a `oneOf`, which the derive cannot say.
impl utoipa::PartialSchema for NewCalendarToken {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, KnownFormat, SchemaFormat};
        use utoipa::openapi::{ObjectBuilder, OneOfBuilder, Type};
        let one = |given: &str, absent: &str, description: &str| {
            ObjectBuilder::new()
                .property(
                    given,
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                        .description(Some(description)),
                )
                .required(given)
                .property(absent, ObjectBuilder::new().schema_type(Type::Null))
                .property(
                    "expires_at",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                        .description(Some("When it stops working (in the future); left out, it works until revoked.")),
                )
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
                .build()
        };
        OneOfBuilder::new()
            .item(one("carehome_id", "pilot_id", "A care home's calendar."))
            .item(one("pilot_id", "carehome_id", "A pilot's calendar."))
            .description(Some("Exactly one of `carehome_id` and `pilot_id`."))
            .into()
    }
}

impl ToSchema for NewCalendarToken {}

/// A calendar token (its secret only in the answer to its creation).
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarTokenView {
    /// Id.
    pub calendar_token_id: String,
    /// The care home whose calendar it opens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carehome_id: Option<String>,
    /// The pilot whose calendar it opens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pilot_id: Option<String>,
    /// The token itself: shown once, at creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The feed (relative to the API's base); at creation with `?token=`, ready to subscribe.
    pub url: String,
    /// When it was made.
    pub created_at: String,
    /// When it stops working; absent: when revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

fn view(r: &Record, token: Option<String>) -> CalendarTokenView {
    let (carehome_id, pilot_id) = match r.calendar {
        Calendar::CareHome(h) => (Some(h.to_string()), None),
        Calendar::Pilot(p) => (None, Some(p.to_string())),
    };
    let url = match &token {
        Some(t) => format!("{}?token={t}", r.calendar.path()),
        None => r.calendar.path(),
    };
    let at = |secs: i64| {
        DateTime::from_timestamp(secs, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    CalendarTokenView {
        calendar_token_id: r.id.to_string(),
        carehome_id,
        pilot_id,
        token,
        url,
        created_at: at(r.created_at),
        expires_at: r.expires_at.map(at),
    }
}

/// Make a read-only calendar token for a calendar the caller may read.
#[utoipa::path(post, path = "/v1/calendar-tokens", tag = "calendars", request_body = NewCalendarToken,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = CalendarTokenView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Body(b): Body<NewCalendarToken>,
) -> Result<Created<CalendarTokenView>, ApiError> {
    let (calendar, chapter) = match (b.carehome_id, b.pilot_id) {
        (Some(h), None) => (Calendar::CareHome(h), home_calendar(&s, &caller, h).await?.1),
        (None, Some(p)) => (Calendar::Pilot(p), pilot_calendar(&s, &caller, p).await?),
        (Some(_), Some(_)) => return Err(ApiError::invalid("/pilot_id", "give carehome_id or pilot_id, not both")),
        (None, None) => return Err(ApiError::invalid("/carehome_id", "give carehome_id or pilot_id")),
    };
    if b.expires_at.is_some_and(|e| e <= servicekit::clock::now()) {
        return Err(ApiError::invalid("/expires_at", "must be in the future"));
    }
    let expires_at = b.expires_at.map(|e| e.timestamp());
    let (record, token) = s.calendar_tokens.create(&caller, calendar, chapter, expires_at).await?;
    Ok(Created(format!("/v1/calendar-tokens/{}", record.id), view(&record, Some(token)), 1))
}

/// The caller's own calendar tokens.
#[utoipa::path(get, path = "/v1/calendar-tokens", tag = "calendars", params(PageParams),
    responses((status = 200, body = Page<CalendarTokenView>), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Params(p): Params<PageParams>,
) -> Result<axum::Json<Page<CalendarTokenView>>, ApiError> {
    let limit = p.limit()?;
    let after = match p.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<Uuid>().map_err(|_| ApiError::invalid("/cursor", "not a cursor of this list"))?),
    };
    let mut rows = s.calendar_tokens.list(&caller, after, limit + 1).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(|r| r.id.to_string()).unwrap_or_default() } else { String::new() };
    Ok(axum::Json(Page::new(rows.iter().map(|r| view(r, None)).collect(), next)))
}

/// A token the caller manages: its maker, and whoever manages that calendar (the care
/// home's coordinator or the pilot itself, the chapter's admin, admin); 404 for others.
async fn managed(s: &AppState, caller: &Caller, id: Uuid) -> Result<Record, ApiError> {
    let r = s.calendar_tokens.get(id).await?.ok_or_else(ApiError::not_found)?;
    let object = match r.calendar {
        Calendar::CareHome(id) => Object::CareHome { id, chapter: r.chapter },
        Calendar::Pilot(id) => Object::Pilot { id, chapter: r.chapter },
    };
    let manages = r.owned_by(caller) || caller.may(Action::ManageCalendar, &object);
    if manages { Ok(r) } else { Err(ApiError::not_found()) }
}

/// A calendar token (without its secret).
#[utoipa::path(get, path = "/v1/calendar-tokens/{id}", tag = "calendars", params(("id" = Uuid, Path)),
    responses((status = 200, body = CalendarTokenView), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Result<axum::Json<CalendarTokenView>, ApiError> {
    let r = managed(&s, &caller, id).await?;
    Ok(axum::Json(view(&r, None)))
}

/// Revoke a calendar token: from now on it is refused (401).
#[utoipa::path(delete, path = "/v1/calendar-tokens/{id}", tag = "calendars", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke(State(s): State<AppState>, caller: Caller, Ids(id): Ids<Uuid>) -> Result<StatusCode, ApiError> {
    let r = managed(&s, &caller, id).await?;
    s.calendar_tokens.delete(r.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The calendar routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(carehome_feed))
        .routes(routes!(pilot_feed))
        .routes(routes!(create, list))
        .routes(routes!(get, revoke))
}
