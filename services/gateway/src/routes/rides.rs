//! Rides and their whole life cycle: booking (three kinds), reading and listing, the
//! roster and check-in, confirmation, rescheduling, cancellation, start, completion and
//! no-show. Who may do what follows the role table of the API contract; personal fields
//! (riders' names, addresses, story, note) only reach callers allowed to see them.

use std::collections::HashMap;

use axum::extract::State;
use samskab_proto::booking::v1 as bpb;
use samskab_proto::carehome::v1 as cpb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::clients::{Found, Svc};
use access::{Action, ListFilter, Object};
use samskab_proto::booking::v1::booking_service_client::BookingServiceClient;

use crate::caller::{Caller, may_book};
use crate::extract::{Body, Command, Ids, MaybeBody, NoBody, Params};
use crate::problem::{ApiError, Problem};
use crate::views::{Created, Page, PageParams, Versioned, opt, parse_time, time};

/// A rider on a ride's roster.
#[derive(Debug, Serialize, ToSchema)]
pub struct RiderView {
    /// The resident.
    pub resident_id: String,
    /// Name, for callers allowed to see it (absent once erased).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Checked in.
    pub checked_in: bool,
}

/// A ride.
#[derive(Debug, Serialize, ToSchema)]
pub struct RideView {
    /// Id.
    pub ride_id: String,
    /// `pleasure`, `event` or `functional`.
    pub kind: String,
    /// `pending_confirmation`, `booked`, `started`, `completed`, `cancelled`, `no_show`.
    pub status: String,
    /// Trishaw.
    pub bike_id: String,
    /// Pilot.
    pub pilot_id: String,
    /// Care home.
    pub carehome_id: String,
    /// Chapter.
    pub chapter_id: String,
    /// Start (UTC).
    pub start: Option<String>,
    /// Length in minutes.
    pub duration_minutes: u32,
    /// The roster, in order.
    pub riders: Vec<RiderView>,
    /// Residents waiting for a seat, first in line first (`pleasure` and `functional` rides).
    pub waitlist: Vec<String>,
    /// Event rides: minutes per trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trip_minutes: Option<u32>,
    /// Functional rides: `outbound` or `return`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leg: Option<String>,
    /// Functional rides: the other leg of a round trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linked_ride_id: Option<String>,
    /// Functional rides: pickup address (for callers allowed to see it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup: Option<String>,
    /// Functional rides: drop-off address (for callers allowed to see it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropoff: Option<String>,
    /// On booking a round trip: the return leg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_ride_id: Option<String>,
    /// The ride request it fulfils.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ride_request_id: Option<String>,
    /// The series it is an occurrence of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ride_series_id: Option<String>,
    /// Cancellation reason code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// Role of who cancelled (`system` for cascades).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_by_role: Option<String>,
    /// When it was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
    /// Cancellation note (for callers allowed to see it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_note: Option<String>,
    /// When it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Kilometres.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<f64>,
    /// The trishaw's condition afterwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bike_condition: Option<String>,
    /// The story (for callers allowed to see it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub story: Option<String>,
    /// When it was booked.
    pub booked_at: Option<String>,
    /// Riders on the roster who did not come (they count in no figure).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub absent_resident_ids: Vec<String>,
    /// Recorded after the fact, without a booking.
    pub recorded: bool,
    /// A no-show: `riders` or `pilot`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_show_by: Option<String>,
    /// Notes of its record and corrections (for callers allowed to see them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The version (also the ETag).
    pub version: u64,
}

/// The facts of a ride the read rules ask about (`None`: ids a service should never send).
pub fn object(ride: &bpb::Ride) -> Option<Object> {
    Some(Object::Ride {
        chapter: ride.chapter_id.parse().ok()?,
        carehome: ride.carehome_id.parse().ok()?,
        pilot: ride.pilot_id.parse().ok()?,
    })
}

/// Whether the caller may see the personal fields of a ride (riders' names, addresses,
/// story, note): `access::sees_personal`.
pub fn sees_personal(caller: &Caller, ride: &bpb::Ride) -> bool {
    object(ride).is_some_and(|o| caller.sees_personal(&o))
}

/// Whether the caller may read a ride at all: `access::may_read`.
pub fn may_read(caller: &Caller, ride: &bpb::Ride) -> bool {
    object(ride).is_some_and(|o| caller.may_read(&o))
}

/// The view of a ride for this caller (names looked up only when the caller may see them).
pub async fn view(s: &AppState, caller: &Caller, ride: bpb::Ride) -> Result<RideView, ApiError> {
    Ok(views(s, caller, vec![ride]).await?.pop().expect("one view per ride"))
}

/// Residents one GetResidents call asks for (the care home's limit).
const RESIDENTS_AT_ONCE: usize = 200;

/// The views of several rides for this caller, each rider's name looked up once however
/// many of the rides it is on (a pilot's list of 50 rides names a dozen residents).
pub async fn views(s: &AppState, caller: &Caller, rides: Vec<bpb::Ride>) -> Result<Vec<RideView>, ApiError> {
    let mut wanted: Vec<&str> = rides
        .iter()
        .filter(|r| sees_personal(caller, r))
        .flat_map(|r| r.riders.iter().map(|x| x.resident_id.as_str()))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    // One call per RESIDENTS_AT_ONCE riders (care home's GetResidents): a resident it
    // leaves out (unknown) has no name, as an erased one.
    let mut names: HashMap<String, Option<String>> = HashMap::with_capacity(wanted.len());
    for chunk in wanted.chunks(RESIDENTS_AT_ONCE) {
        let ids = chunk.iter().map(|id| (*id).to_owned()).collect();
        let found = s.clients.carehome().get_residents(cpb::IdsRequest { ids }).await.reply()?;
        names.extend(found.residents.into_iter().map(|r| (r.resident_id, opt(r.display_name))));
    }
    Ok(rides.into_iter().map(|r| view_named(caller, r, &names)).collect())
}

fn view_named(caller: &Caller, ride: bpb::Ride, names: &HashMap<String, Option<String>>) -> RideView {
    let personal = sees_personal(caller, &ride);
    let riders = ride
        .riders
        .iter()
        .map(|r| RiderView {
            resident_id: r.resident_id.clone(),
            display_name: if personal { names.get(&r.resident_id).cloned().flatten() } else { None },
            checked_in: r.checked_in,
        })
        .collect();
    let f = ride.functional.clone();
    let keep = |v: String| if personal { opt(v) } else { None };
    RideView {
        ride_id: ride.ride_id,
        kind: ride.kind,
        status: ride.status,
        bike_id: ride.bike_id,
        pilot_id: ride.pilot_id,
        carehome_id: ride.carehome_id,
        chapter_id: ride.chapter_id,
        start: time(&ride.start),
        duration_minutes: ride.duration_minutes,
        riders,
        waitlist: ride.waitlist.clone(),
        trip_minutes: (ride.trip_minutes > 0).then_some(ride.trip_minutes),
        leg: f.as_ref().map(|f| f.leg.clone()),
        linked_ride_id: f.as_ref().and_then(|f| opt(f.linked_ride_id.clone())),
        pickup: f.as_ref().and_then(|f| keep(f.pickup.clone())),
        dropoff: f.as_ref().and_then(|f| keep(f.dropoff.clone())),
        return_ride_id: None,
        ride_request_id: opt(ride.ride_request_id),
        ride_series_id: opt(ride.ride_series_id),
        cancel_reason: opt(ride.cancel_reason),
        cancelled_by_role: opt(ride.cancelled_by_role),
        cancelled_at: time(&ride.cancelled_at),
        cancel_note: keep(ride.cancel_note),
        started_at: time(&ride.started_at),
        ended_at: time(&ride.ended_at),
        distance_km: ride.ended_at.is_some().then_some(ride.distance_km),
        bike_condition: opt(ride.bike_condition),
        story: keep(ride.story),
        booked_at: time(&ride.booked_at),
        absent_resident_ids: ride.absent_resident_ids,
        recorded: ride.recorded,
        no_show_by: opt(ride.no_show_by),
        notes: if personal { ride.notes } else { Vec::new() },
        version: ride.version,
    }
}

/// Loads a ride the caller may read (404 otherwise), with personal fields opened.
pub async fn visible(s: &AppState, caller: &Caller, id: Uuid) -> Result<bpb::Ride, ApiError> {
    let ride = s
        .clients
        .booking()
        .get_ride(bpb::GetRideRequest { ride_id: id.to_string(), include_personal: true })
        .await
        .or_404()?;
    if !may_read(caller, &ride) {
        return Err(ApiError::not_found());
    }
    Ok(ride)
}

/// 403 unless the caller may do `action` to the ride (`access::may`).
fn allowed(caller: &Caller, ride: &bpb::Ride, action: Action) -> Result<(), ApiError> {
    if object(ride).is_some_and(|o| caller.may(action, &o)) { Ok(()) } else { Err(ApiError::forbidden()) }
}

/// `POST /v1/rides`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRide {
    /// Trishaw.
    pub bike_id: Uuid,
    /// Pilot (a pilot books for itself).
    pub pilot_id: Uuid,
    /// Start, RFC 3339 (any offset).
    #[schema(format = DateTime)]
    pub start: String,
    /// Length in minutes.
    pub duration_minutes: u32,
    /// The roster, in order.
    #[serde(default)]
    pub resident_ids: Vec<Uuid>,
    /// `pleasure` (default), `event` or `functional`.
    #[serde(default)]
    #[schema(pattern = "^(pleasure|event|functional)$")]
    pub kind: Option<String>,
    /// Event rides: minutes per trip (default 30).
    #[serde(default)]
    pub trip_minutes: Option<u32>,
    /// Functional rides: pickup address.
    #[serde(default)]
    pub pickup: Option<String>,
    /// Functional rides: drop-off address.
    #[serde(default)]
    pub dropoff: Option<String>,
    /// Functional rides: book the return leg too (default true).
    #[serde(default)]
    pub round_trip: Option<bool>,
    /// Functional rides: start of the return leg (default: the outbound end plus max(turnaround, 60 min)).
    #[serde(default)]
    #[schema(format = DateTime)]
    pub return_start: Option<String>,
}

/// The trishaw of a booking, as the caller may see it: 404 when invisible.
pub(crate) async fn bike_chapter(s: &AppState, caller: &Caller, bike: Uuid) -> Result<(Uuid, Uuid), ApiError> {
    let b = s.clients.carehome().get_bike(cpb::IdRequest { id: bike.to_string() }).await.or_404()?;
    let chapter: Uuid = b.chapter_id.parse().map_err(|_| ApiError::not_found())?;
    let home: Uuid = b.carehome_id.parse().map_err(|_| ApiError::not_found())?;
    if !caller.may_read(&Object::Bike { carehome: home, chapter }) {
        return Err(ApiError::not_found());
    }
    Ok((chapter, home))
}

/// Book a ride: a pilot for itself, a coordinator at its care home, a chapter admin.
#[utoipa::path(post, path = "/v1/rides", tag = "rides", request_body = NewRide,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = RideView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    cmd: Command,
    Body(b): Body<NewRide>,
) -> Result<Created<RideView>, ApiError> {
    let caller = &cmd.caller;
    let start = parse_time("/start", &b.start)?;
    let return_start = b.return_start.as_deref().map(|t| parse_time("/return_start", t)).transpose()?;
    let (chapter, home) = bike_chapter(&s, caller, b.bike_id).await?;
    let booked = Object::Ride { chapter, carehome: home, pilot: b.pilot_id };
    if !caller.may(Action::Book, &booked) {
        // A suspended pilot booking for itself is told why.
        if caller.is_pilot(b.pilot_id) {
            may_book(caller)?;
        }
        return Err(ApiError::forbidden());
    }
    let booked = s
        .clients
        .booking()
        .book_ride(bpb::BookRideRequest {
            context: cmd.context(),
            bike_id: b.bike_id.to_string(),
            pilot_id: b.pilot_id.to_string(),
            start: Some(start),
            duration_minutes: b.duration_minutes,
            resident_ids: b.resident_ids.iter().map(Uuid::to_string).collect(),
            kind: b.kind.unwrap_or_default(),
            trip_minutes: b.trip_minutes.unwrap_or(0),
            pickup: b.pickup.unwrap_or_default(),
            dropoff: b.dropoff.unwrap_or_default(),
            round_trip: b.round_trip,
            return_start,
        })
        .await?
        .into_inner();
    let ride = booked.ride.ok_or_else(|| ApiError::new(servicekit::ErrorCode::Internal))?;
    let mut v = view(&s, caller, ride).await?;
    v.return_ride_id = booked.return_ride.map(|r| r.ride_id);
    let version = v.version;
    Ok(Created(format!("/v1/rides/{}", v.ride_id), v, version))
}

/// Read a ride: its pilot, its care home's coordinator, the chapter's admin.
#[utoipa::path(get, path = "/v1/rides/{id}", tag = "rides", params(("id" = Uuid, Path)),
    responses((status = 200, body = RideView), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Result<Versioned<RideView>, ApiError> {
    let ride = visible(&s, &caller, id).await?;
    let v = view(&s, &caller, ride).await?;
    let version = v.version;
    Ok(Versioned(v, version))
}

/// `GET /v1/rides` filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RideFilter {
    /// Care home.
    pub carehome_id: Option<Uuid>,
    /// Pilot.
    pub pilot_id: Option<Uuid>,
    /// Chapter (admins).
    pub chapter_id: Option<Uuid>,
    /// Starting at or after (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Starting before (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Statuses, comma-separated (`pending_confirmation`, `booked`, `started`, `completed`,
    /// `cancelled`, `no_show`).
    #[param(
        pattern = "^(pending_confirmation|booked|started|completed|cancelled|no_show)(,(pending_confirmation|booked|started|completed|cancelled|no_show))*$"
    )]
    pub status: Option<String>,
    /// Items per page (≤ 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Where to continue.
    #[param(pattern = r"^-?[0-9]{1,18}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub cursor: Option<String>,
}

/// The chapter of a care home, or 404 when the caller may not see it.
async fn home_chapter(s: &AppState, caller: &Caller, home: Uuid) -> Result<Uuid, ApiError> {
    let h = s.clients.carehome().get_care_home(cpb::IdRequest { id: home.to_string() }).await.or_404()?;
    let chapter: Uuid = h.chapter_id.parse().map_err(|_| ApiError::not_found())?;
    if !caller.may_read(&Object::CareHome { id: home, chapter }) {
        return Err(ApiError::not_found());
    }
    Ok(chapter)
}

/// List rides in scope: a pilot its own, a coordinator its care home's, a chapter admin its chapter's.
#[utoipa::path(get, path = "/v1/rides", tag = "rides", params(RideFilter),
    responses((status = 200, body = Page<RideView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Params(f): Params<RideFilter>,
) -> Result<axum::Json<Page<RideView>>, ApiError> {
    let limit = PageParams { limit: f.limit, cursor: None }.limit()?;
    let from = f.from.as_deref().map(|t| parse_time("/from", t)).transpose()?;
    let to = f.to.as_deref().map(|t| parse_time("/to", t)).transpose()?;
    let statuses: Vec<String> =
        // Exactly the documented syntax: no spaces, no empty items (`booked,,started` is 400).
        f.status.iter().flat_map(|s| s.split(',')).map(str::to_owned).collect();
    let mut q = bpb::ListRidesRequest {
        from,
        to,
        statuses,
        limit,
        cursor: f.cursor.clone().unwrap_or_default(),
        ..Default::default()
    };
    let carehome = match f.carehome_id {
        Some(h) => Some((h, home_chapter(&s, &caller, h).await?)),
        None => None,
    };
    let filter = ListFilter { chapter: f.chapter_id, carehome, pilot: f.pilot_id };
    let scope = access::ride_list(&caller.facts(), &filter)?;
    let text = |id: Option<Uuid>| id.map(|i| i.to_string()).unwrap_or_default();
    (q.chapter_id, q.carehome_id, q.pilot_id) = (text(scope.chapter), text(scope.carehome), text(scope.pilot));
    let page = s.clients.booking().list_rides(q).await?.into_inner();
    let items = views(&s, &caller, page.rides).await?;
    Ok(axum::Json(Page::new(items, page.next_cursor)))
}

/// Answers with the ride as it is after a command.
async fn after(s: &AppState, caller: &Caller, ride: bpb::Ride, id: Uuid) -> Result<Versioned<RideView>, ApiError> {
    // Commands answer without personal fields: read the ride back for those who may see them.
    let ride = if sees_personal(caller, &ride) { visible(s, caller, id).await? } else { ride };
    let v = view(s, caller, ride).await?;
    let version = v.version;
    Ok(Versioned(v, version))
}

/// A roster or waitlist command (`rpc`) on a ride the caller may see and `action` on,
/// answered with the ride after it.
async fn on_roster<F, Fut>(
    s: &AppState,
    cmd: &Command,
    id: Uuid,
    resident: Uuid,
    action: Action,
    rpc: F,
) -> Result<Versioned<RideView>, ApiError>
where
    F: FnOnce(BookingServiceClient<Svc>, bpb::RosterRequest) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<bpb::Ride>, tonic::Status>>,
{
    let caller = &cmd.caller;
    let ride = visible(s, caller, id).await?;
    allowed(caller, &ride, action)?;
    let req = bpb::RosterRequest { context: cmd.context(), ride_id: id.to_string(), resident_id: resident.to_string() };
    let r = rpc(s.clients.booking(), req).await?.into_inner();
    after(s, caller, r, id).await
}

/// `POST /v1/rides/{id}/roster`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RosterAdd {
    /// The resident to add.
    pub resident_id: Uuid,
}

/// Put a resident on the roster (the care home's coordinator, the ride's pilot).
#[utoipa::path(post, path = "/v1/rides/{id}/roster", tag = "rides", request_body = RosterAdd, params(("id" = Uuid, Path)),
    responses((status = 200, body = RideView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn roster_add(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<RosterAdd>,
) -> Result<Versioned<RideView>, ApiError> {
    on_roster(&s, &cmd, id, b.resident_id, Action::ChangeRide, |mut c, r| async move { c.add_rider(r).await }).await
}

/// Take a resident off the roster.
#[utoipa::path(delete, path = "/v1/rides/{id}/roster/{resident_id}", tag = "rides", params(("id" = Uuid, Path), ("resident_id" = Uuid, Path)),
    responses((status = 200, body = RideView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn roster_remove(
    State(s): State<AppState>,
    cmd: Command,
    Ids((id, resident)): Ids<(Uuid, Uuid)>,
) -> Result<Versioned<RideView>, ApiError> {
    on_roster(&s, &cmd, id, resident, Action::ChangeRide, |mut c, r| async move { c.remove_rider(r).await }).await
}

/// Put a resident last on a full ride's waitlist (the care home's coordinator, the
/// chapter's admins): a pending or booked `pleasure` or `functional` ride with no free seat
/// (409 `seat-free` otherwise). The first waiting resident who may ride takes a seat as
/// soon as one frees.
#[utoipa::path(post, path = "/v1/rides/{id}/waitlist", tag = "rides", request_body = RosterAdd, params(("id" = Uuid, Path)),
    responses((status = 200, body = RideView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn waitlist_add(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<RosterAdd>,
) -> Result<Versioned<RideView>, ApiError> {
    on_roster(&s, &cmd, id, b.resident_id, Action::ConfirmRide, |mut c, r| async move { c.join_waitlist(r).await })
        .await
}

/// Take a resident off a ride's waitlist (the care home's coordinator, the chapter's admins).
#[utoipa::path(delete, path = "/v1/rides/{id}/waitlist/{resident_id}", tag = "rides", params(("id" = Uuid, Path), ("resident_id" = Uuid, Path)),
    responses((status = 200, body = RideView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn waitlist_remove(
    State(s): State<AppState>,
    cmd: Command,
    Ids((id, resident)): Ids<(Uuid, Uuid)>,
) -> Result<Versioned<RideView>, ApiError> {
    on_roster(&s, &cmd, id, resident, Action::ConfirmRide, |mut c, r| async move { c.leave_waitlist(r).await }).await
}

/// Check a rider in.
#[utoipa::path(post, path = "/v1/rides/{id}/roster/{resident_id}/check-in", tag = "rides", params(("id" = Uuid, Path), ("resident_id" = Uuid, Path)),
    responses((status = 200, body = RideView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn check_in(
    State(s): State<AppState>,
    cmd: Command,
    Ids((id, resident)): Ids<(Uuid, Uuid)>,
    _: NoBody,
) -> Result<Versioned<RideView>, ApiError> {
    let caller = &cmd.caller;
    let ride = visible(&s, caller, id).await?;
    allowed(caller, &ride, Action::ChangeRide)?;
    let r = s
        .clients
        .booking()
        .check_in_rider(bpb::RosterRequest {
            context: cmd.context(),
            ride_id: id.to_string(),
            resident_id: resident.to_string(),
        })
        .await?
        .into_inner();
    after(&s, caller, r, id).await
}

/// A command on a ride with no body, by those who may do `who` to it.
async fn simple(
    s: &AppState,
    cmd: &Command,
    id: Uuid,
    who: Action,
    tail: &str,
) -> Result<Versioned<RideView>, ApiError> {
    let caller = &cmd.caller;
    let ride = visible(s, caller, id).await?;
    allowed(caller, &ride, who)?;
    let mut b = s.clients.booking();
    let r = bpb::RideCommandRequest { context: cmd.context(), ride_id: id.to_string(), ..Default::default() };
    let ride = match tail {
        "/confirm" => b.confirm_ride(r).await?,
        _ => return Err(ApiError::not_found()),
    }
    .into_inner();
    after(s, caller, ride, id).await
}

/// `POST /v1/rides/{id}/start` (optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// When it started, as an app that was offline reports it: no earlier than 60 minutes
    /// before the slot, no later than now + 5 minutes (400 on `/started_at` otherwise).
    #[serde(default)]
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
}

/// `POST /v1/rides/{id}/no-show` (optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoShowBody {
    /// Who did not come: `riders` (default) or `pilot` (a coordinator or chapter admin only).
    #[serde(default)]
    #[schema(pattern = "^(riders|pilot)$")]
    pub by: Option<String>,
}

/// Confirm a pending ride (the care home's coordinator).
#[utoipa::path(post, path = "/v1/rides/{id}/confirm", tag = "rides", params(("id" = Uuid, Path)),
    responses((status = 200, body = RideView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn confirm(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    _: NoBody,
) -> Result<Versioned<RideView>, ApiError> {
    simple(&s, &cmd, id, Action::ConfirmRide, "/confirm").await
}

/// Start a ride (its pilot), now or when its app says it started.
#[utoipa::path(post, path = "/v1/rides/{id}/start", tag = "rides", request_body(content = Option<StartBody>, description = "Optional"), params(("id" = Uuid, Path)),
    responses((status = 200, body = RideView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn start(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    MaybeBody(b): MaybeBody<StartBody>,
) -> Result<Versioned<RideView>, ApiError> {
    let caller = &cmd.caller;
    let started_at = b.and_then(|b| b.started_at).map(|t| parse_time("/started_at", &t)).transpose()?;
    let ride = visible(&s, caller, id).await?;
    allowed(caller, &ride, Action::RunRide)?;
    let r = bpb::RideCommandRequest { context: cmd.context(), ride_id: id.to_string(), started_at, by: String::new() };
    let ride = s.clients.booking().start_ride(r).await?.into_inner();
    after(&s, caller, ride, id).await
}

/// Mark a ride as no-show (its pilot, the care home's coordinator): the riders did not
/// come (default), or the pilot did not (`by: pilot`: the coordinator or chapter admin).
#[utoipa::path(post, path = "/v1/rides/{id}/no-show", tag = "rides", request_body(content = Option<NoShowBody>, description = "Optional"), params(("id" = Uuid, Path)),
    responses((status = 200, body = RideView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn no_show(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    MaybeBody(b): MaybeBody<NoShowBody>,
) -> Result<Versioned<RideView>, ApiError> {
    let caller = &cmd.caller;
    let by = b.and_then(|b| b.by).unwrap_or_else(|| "riders".into());
    if !matches!(by.as_str(), "riders" | "pilot") {
        return Err(ApiError::invalid("/by", "must be riders or pilot"));
    }
    let ride = visible(&s, caller, id).await?;
    allowed(caller, &ride, Action::ChangeRide)?;
    if by == "pilot" {
        // Only the care home's side says the pilot did not come.
        allowed(caller, &ride, Action::ConfirmRide)?;
    }
    let r = bpb::RideCommandRequest { context: cmd.context(), ride_id: id.to_string(), started_at: None, by };
    let ride = s.clients.booking().mark_no_show(r).await?.into_inner();
    after(&s, caller, ride, id).await
}

/// `POST /v1/rides/{id}/reschedule`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reschedule {
    /// New start.
    #[schema(format = DateTime)]
    pub start: String,
    /// New length.
    pub duration_minutes: u32,
}

/// Move a ride to another slot under the booking rules (its pilot, the coordinator).
#[utoipa::path(post, path = "/v1/rides/{id}/reschedule", tag = "rides", request_body = Reschedule, params(("id" = Uuid, Path)),
    responses((status = 200, body = RideView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn reschedule(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<Reschedule>,
) -> Result<Versioned<RideView>, ApiError> {
    let caller = &cmd.caller;
    let start = parse_time("/start", &b.start)?;
    let ride = visible(&s, caller, id).await?;
    allowed(caller, &ride, Action::ChangeRide)?;
    let r = s
        .clients
        .booking()
        .reschedule_ride(bpb::RescheduleRideRequest {
            context: cmd.context(),
            ride_id: id.to_string(),
            start: Some(start),
            duration_minutes: b.duration_minutes,
        })
        .await?
        .into_inner();
    after(&s, caller, r, id).await
}

/// `POST /v1/rides/{id}/cancel`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cancel {
    /// `weather`, `rider`, `facility`, `volunteer`, `equipment` or `no_riders`.
    #[schema(pattern = "^(weather|rider|facility|volunteer|equipment|no_riders)$")]
    pub reason: String,
    /// A note (personal: stored sealed); no control characters, at most 2000 characters,
    /// blank is none.
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$", max_length = 2000)]
    pub note: Option<String>,
}

/// Cancel a ride (its pilot, the coordinator, the chapter admin).
#[utoipa::path(post, path = "/v1/rides/{id}/cancel", tag = "rides", request_body = Cancel, params(("id" = Uuid, Path)),
    responses((status = 200, body = RideView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<Cancel>,
) -> Result<Versioned<RideView>, ApiError> {
    let caller = &cmd.caller;
    let ride = visible(&s, caller, id).await?;
    allowed(caller, &ride, Action::ChangeRide)?;
    let r = s
        .clients
        .booking()
        .cancel_ride(bpb::CancelRideRequest {
            context: cmd.context(),
            ride_id: id.to_string(),
            reason: b.reason,
            note: b.note.unwrap_or_default(),
        })
        .await?
        .into_inner();
    after(&s, caller, r, id).await
}

/// `POST /v1/rides/{id}/complete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Complete {
    /// When it actually ended.
    #[schema(format = DateTime)]
    pub ended_at: String,
    /// Kilometres ridden.
    pub distance_km: f64,
    /// The trishaw's condition afterwards.
    #[serde(default)]
    pub bike_condition: Option<String>,
    /// A short story (personal: stored sealed; needs the riders' consent to stories).
    #[serde(default)]
    pub story: Option<String>,
    /// Riders on the roster who did not come (the whole set; each on the roster, 422
    /// `not-on-roster` otherwise; not every rider: that is a no-show by the riders).
    #[serde(default)]
    pub absent_resident_ids: Option<Vec<Uuid>>,
}

/// Complete and log a ride (its pilot).
#[utoipa::path(post, path = "/v1/rides/{id}/complete", tag = "rides", request_body = Complete, params(("id" = Uuid, Path)),
    responses((status = 200, body = RideView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn complete(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<Complete>,
) -> Result<Versioned<RideView>, ApiError> {
    let caller = &cmd.caller;
    let ended_at = parse_time("/ended_at", &b.ended_at)?;
    let ride = visible(&s, caller, id).await?;
    allowed(caller, &ride, Action::RunRide)?;
    let r = s
        .clients
        .booking()
        .complete_ride(bpb::CompleteRideRequest {
            context: cmd.context(),
            ride_id: id.to_string(),
            ended_at: Some(ended_at),
            distance_km: b.distance_km,
            bike_condition: b.bike_condition.unwrap_or_default(),
            story: b.story.unwrap_or_default(),
            absent_resident_ids: b.absent_resident_ids.unwrap_or_default().iter().map(Uuid::to_string).collect(),
        })
        .await?
        .into_inner();
    after(&s, caller, r, id).await
}

/// `POST /v1/ride-records`: a ride that happened without a booking.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRecord {
    /// Trishaw.
    pub bike_id: Uuid,
    /// Pilot (a pilot records its own rides).
    pub pilot_id: Uuid,
    /// When it actually started (not in the future; a pilot: within the chapter's
    /// `record_window_days`, 422 `outside-record-window` otherwise).
    #[schema(format = DateTime)]
    pub started_at: String,
    /// When it actually ended: after `started_at`, at most 24 hours later.
    #[schema(format = DateTime)]
    pub ended_at: String,
    /// Kilometres ridden.
    #[schema(minimum = 0, maximum = 500)]
    pub distance_km: f64,
    /// The riders (absent ones included).
    pub resident_ids: Vec<Uuid>,
    /// Riders who did not come (on the roster; not all of them).
    #[serde(default)]
    pub absent_resident_ids: Option<Vec<Uuid>>,
    /// `pleasure` (default) or `event`.
    #[serde(default)]
    #[schema(pattern = "^(pleasure|event)$")]
    pub kind: Option<String>,
    /// A short story (personal: sealed; needs the riders' consent to stories).
    #[serde(default)]
    pub story: Option<String>,
    /// The trishaw's condition afterwards.
    #[serde(default)]
    #[schema(
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 60
    )]
    pub bike_condition: Option<String>,
    /// A note (sealed under the ride's key).
    #[serde(default)]
    pub note: Option<String>,
}

/// Record a ride that happened without a booking (a pilot for itself, within the record
/// window; the trishaw's coordinator; the chapter's admin). It is checked against the
/// facts of its own time and against other rides on its actual times.
#[utoipa::path(post, path = "/v1/ride-records", tag = "rides", request_body = NewRecord,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = RideView), (status = 400, description = "Malformed, or a time rule the schema cannot state (`ended_at` not after `started_at`, longer than 24 h, in the future: `validation` on the field)", body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn record(
    State(s): State<AppState>,
    cmd: Command,
    Body(b): Body<NewRecord>,
) -> Result<Created<RideView>, ApiError> {
    let caller = &cmd.caller;
    let started_at = parse_time("/started_at", &b.started_at)?;
    let ended_at = parse_time("/ended_at", &b.ended_at)?;
    let (chapter, home) = bike_chapter(&s, caller, b.bike_id).await?;
    let recorded = Object::Ride { chapter, carehome: home, pilot: b.pilot_id };
    if !caller.may(Action::Book, &recorded) {
        return Err(ApiError::forbidden());
    }
    let r = s
        .clients
        .booking()
        .record_ride(bpb::RecordRideRequest {
            context: cmd.context(),
            bike_id: b.bike_id.to_string(),
            pilot_id: b.pilot_id.to_string(),
            started_at: Some(started_at),
            ended_at: Some(ended_at),
            distance_km: b.distance_km,
            resident_ids: b.resident_ids.iter().map(Uuid::to_string).collect(),
            absent_resident_ids: b.absent_resident_ids.unwrap_or_default().iter().map(Uuid::to_string).collect(),
            kind: b.kind.unwrap_or_default(),
            story: b.story.unwrap_or_default(),
            bike_condition: b.bike_condition.unwrap_or_default(),
            note: b.note.unwrap_or_default(),
        })
        .await?
        .into_inner();
    let id: Uuid = r.ride_id.parse().map_err(|_| ApiError::new(servicekit::ErrorCode::Internal))?;
    let Versioned(v, version) = after(&s, caller, r, id).await?;
    Ok(Created(format!("/v1/rides/{}", v.ride_id), v, version))
}

/// `POST /v1/rides/{id}/corrections`: fields left out keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RideCorrection {
    /// Actual start.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    /// Actual end.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub ended_at: Option<String>,
    /// Kilometres.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 500)]
    pub distance_km: Option<f64>,
    /// The whole set of absent riders (`[]` clears it).
    #[serde(default)]
    pub absent_resident_ids: Option<Vec<Uuid>>,
    /// A note on the correction (sealed under the ride's key).
    #[serde(default)]
    pub note: Option<String>,
}

/// Correct a completed ride (its pilot, within the record window; the coordinator; the
/// chapter's admin). Earlier `as_of` answers do not change.
#[utoipa::path(post, path = "/v1/rides/{id}/corrections", tag = "rides", request_body = RideCorrection,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The ride's ETag")),
    responses((status = 200, body = RideView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn correct(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<RideCorrection>,
) -> Result<Versioned<RideView>, ApiError> {
    let caller = &cmd.caller;
    let started_at = b.started_at.as_deref().map(|t| parse_time("/started_at", t)).transpose()?;
    let ended_at = b.ended_at.as_deref().map(|t| parse_time("/ended_at", t)).transpose()?;
    let ride = visible(&s, caller, id).await?;
    allowed(caller, &ride, Action::ChangeRide)?;
    let r = s
        .clients
        .booking()
        .correct_ride(bpb::CorrectRideRequest {
            context: cmd.context(),
            ride_id: id.to_string(),
            started_at,
            ended_at,
            distance_km: b.distance_km,
            set_absent: b.absent_resident_ids.is_some(),
            absent_resident_ids: b.absent_resident_ids.unwrap_or_default().iter().map(Uuid::to_string).collect(),
            note: b.note.unwrap_or_default(),
        })
        .await?
        .into_inner();
    after(&s, caller, r, id).await
}

/// The ride routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get))
        .routes(routes!(roster_add))
        .routes(routes!(roster_remove))
        .routes(routes!(waitlist_add))
        .routes(routes!(waitlist_remove))
        .routes(routes!(check_in))
        .routes(routes!(confirm))
        .routes(routes!(start))
        .routes(routes!(no_show))
        .routes(routes!(reschedule))
        .routes(routes!(cancel))
        .routes(routes!(complete))
        .routes(routes!(correct))
        .routes(routes!(record))
}
