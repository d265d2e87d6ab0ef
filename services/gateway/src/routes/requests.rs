//! Ride requests: a care home asks for a ride for named residents in a time window, a
//! pilot of the chapter claims it (which books the ride under the same rules), the home
//! withdraws it. The request's note is personal and shown only to the home and admins.

use access::{Action, Object};
use axum::extract::State;
use axum::http::{HeaderName, header};
use samskab_proto::booking::v1 as bpb;
use serde::{Deserialize, Serialize};
use servicekit::ErrorCode;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::{Caller, may_book};
use crate::clients::Found;
use crate::extract::{Body, Command, Ids, NoBody, Params};
use crate::problem::{ApiError, Problem};
use crate::routes::availability::{FreeInterval, carehome};
use crate::routes::chapters;
use crate::routes::rides::{self, RideView};
use crate::views::{Created, Page, PageParams, Versioned, opt, parse_time, time};

/// A time window (`from` inclusive, `to` exclusive; RFC 3339).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Earliest start.
    #[schema(format = DateTime)]
    pub from: String,
    /// Latest end.
    #[schema(format = DateTime)]
    pub to: String,
}

/// `POST /v1/ride-requests`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRideRequest {
    /// The care home asking.
    pub carehome_id: Uuid,
    /// Residents who would ride (at least one).
    pub resident_ids: Vec<Uuid>,
    /// When the ride may happen.
    pub window: Window,
    /// The ride's length in minutes.
    pub duration_minutes: u32,
    /// `pleasure` (default) or `event`.
    #[serde(default)]
    #[schema(pattern = "^(pleasure|event)$")]
    pub kind: Option<String>,
    /// A note for the pilot (personal); no control characters, at most 2000 characters, blank
    /// is none.
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$", max_length = 2000)]
    pub note: Option<String>,
}

/// A ride request.
#[derive(Debug, Serialize, ToSchema)]
pub struct RideRequestView {
    /// Id.
    pub ride_request_id: String,
    /// Care home.
    pub carehome_id: String,
    /// Chapter.
    pub chapter_id: String,
    /// The residents it names: for the home's coordinator, the chapter's admins and the
    /// pilot that claimed it; other pilots see `resident_count` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resident_ids: Option<Vec<String>>,
    /// How many residents it names.
    pub resident_count: u32,
    /// When the ride may happen (UTC).
    pub window: Window,
    /// Length in minutes.
    pub duration_minutes: u32,
    /// Ride kind.
    pub kind: String,
    /// The note, for the home's coordinator and admins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `open`, `claimed`, `withdrawn` or `expired`.
    pub status: String,
    /// The ride booked by the claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ride_id: Option<String>,
    /// The pilot who claimed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pilot_id: Option<String>,
}

fn chapter_of(r: &bpb::RideRequest) -> Option<Uuid> {
    r.chapter_id.parse().ok()
}

fn home_of(r: &bpb::RideRequest) -> Option<Uuid> {
    r.carehome_id.parse().ok()
}

/// Whether the caller may see a request's note: the home's coordinator, the chapter's admin, admin.
fn sees_note(caller: &Caller, r: &bpb::RideRequest) -> bool {
    object(r).is_some_and(|o| caller.sees_personal(&o))
}

/// The facts of a request the read rules ask about.
fn object(r: &bpb::RideRequest) -> Option<access::Object> {
    Some(access::Object::RideRequest { chapter: chapter_of(r)?, carehome: home_of(r)? })
}

/// Whether the caller may read a request: those who see its note, and the chapter's pilots.
fn may_read(caller: &Caller, r: &bpb::RideRequest) -> bool {
    object(r).is_some_and(|o| caller.may_read(&o))
}

/// Whether the caller sees which residents a request names: those who see its note, and
/// the pilot that claimed it. A pilot before claiming sees how many, not whom (it could
/// otherwise seat them on its own ride and read their names).
fn sees_riders(caller: &Caller, r: &bpb::RideRequest) -> bool {
    sees_note(caller, r) || r.pilot_id.parse::<Uuid>().is_ok_and(|p| caller.is_pilot(p))
}

fn view(caller: &Caller, r: bpb::RideRequest) -> RideRequestView {
    let w = r.window.unwrap_or_default();
    let resident_count = r.resident_ids.len() as u32;
    let resident_ids = sees_riders(caller, &r).then_some(r.resident_ids);
    RideRequestView {
        ride_request_id: r.ride_request_id,
        carehome_id: r.carehome_id,
        chapter_id: r.chapter_id,
        resident_ids,
        resident_count,
        window: Window { from: time(&w.from).unwrap_or_default(), to: time(&w.to).unwrap_or_default() },
        duration_minutes: r.duration_minutes,
        kind: r.kind,
        note: opt(r.note),
        status: r.status,
        ride_id: opt(r.ride_id),
        pilot_id: opt(r.pilot_id),
    }
}

async fn load(s: &AppState, id: &str, personal: bool) -> Result<bpb::RideRequest, ApiError> {
    let r = bpb::GetRideRequestRequest { ride_request_id: id.to_owned(), include_personal: personal };
    s.clients.booking().get_ride_request(r).await.or_404()
}

/// Loads a ride request the caller may read (404 otherwise); the note only for those who see it.
pub async fn visible(s: &AppState, caller: &Caller, id: Uuid) -> Result<bpb::RideRequest, ApiError> {
    let r = load(s, &id.to_string(), false).await?;
    if !may_read(caller, &r) {
        return Err(ApiError::not_found());
    }
    if sees_note(caller, &r) { load(s, &id.to_string(), true).await } else { Ok(r) }
}

/// The request as the caller may see it after a command (commands answer without the note).
async fn shown(s: &AppState, caller: &Caller, r: bpb::RideRequest) -> Result<Versioned<RideRequestView>, ApiError> {
    let r = if sees_note(caller, &r) { load(s, &r.ride_request_id, true).await? } else { r };
    let version = r.version;
    Ok(Versioned(view(caller, r), version))
}

/// Ask for a ride (the home's coordinator, the chapter's admin).
#[utoipa::path(post, path = "/v1/ride-requests", tag = "ride-requests", request_body = NewRideRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = RideRequestView), (status = 400, description = "Malformed (`malformed`, `validation`), or a window whose `to` is not after its `from` or is already past (`validation` on `/window/to`: a rule between fields and one against the clock, which the schema cannot state)", body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    cmd: Command,
    Body(b): Body<NewRideRequest>,
) -> Result<Created<RideRequestView>, ApiError> {
    let caller = &cmd.caller;
    let from = parse_time("/window/from", &b.window.from)?;
    let to = parse_time("/window/to", &b.window.to)?;
    let (_, chapter) = carehome(&s, caller, b.carehome_id).await?;
    if !caller.may(Action::RequestRide, &Object::RideRequest { chapter, carehome: b.carehome_id }) {
        return Err(ApiError::forbidden());
    }
    let r = s
        .clients
        .booking()
        .request_ride(bpb::RequestRideRequest {
            context: cmd.context(),
            carehome_id: b.carehome_id.to_string(),
            resident_ids: b.resident_ids.iter().map(Uuid::to_string).collect(),
            window: Some(bpb::TimeWindow { from: Some(from), to: Some(to) }),
            duration_minutes: b.duration_minutes,
            kind: b.kind.unwrap_or_default(),
            note: b.note.unwrap_or_default(),
        })
        .await?
        .into_inner();
    let Versioned(v, version) = shown(&s, caller, r).await?;
    Ok(Created(format!("/v1/ride-requests/{}", v.ride_request_id), v, version))
}

/// Read a ride request (the home's coordinator, the chapter's pilots and admin, admin).
#[utoipa::path(get, path = "/v1/ride-requests/{id}", tag = "ride-requests", params(("id" = Uuid, Path)),
    responses((status = 200, body = RideRequestView), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Result<Versioned<RideRequestView>, ApiError> {
    let r = visible(&s, &caller, id).await?;
    let version = r.version;
    Ok(Versioned(view(&caller, r), version))
}

/// `GET /v1/ride-requests` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RequestFilter {
    /// Care home.
    pub carehome_id: Option<Uuid>,
    /// Chapter (defaults to the caller's).
    pub chapter_id: Option<Uuid>,
    /// Statuses, comma-separated (`open`, `claimed`, `withdrawn`, `expired`).
    #[param(pattern = "^(open|claimed|withdrawn|expired)(,(open|claimed|withdrawn|expired))*$")]
    pub status: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Where to continue (the `next_cursor` of the previous page: a ride request id).
    #[param(pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub cursor: Option<String>,
}

/// Fills in the scope of a list: 404 for a foreign home or chapter, 403 for a role that
/// may not list requests there.
async fn scope(
    s: &AppState,
    caller: &Caller,
    f: &RequestFilter,
    q: &mut bpb::ListRideRequestsRequest,
) -> Result<(), ApiError> {
    let carehome = match f.carehome_id {
        Some(h) => Some((h, carehome(s, caller, h).await?.1)),
        None => None,
    };
    if let Some(c) = f.chapter_id {
        chapters::visible(s, caller, c).await?;
    }
    let filter = access::ListFilter { chapter: f.chapter_id, carehome, pilot: None };
    let scope = access::request_list(&caller.facts(), &filter)?;
    let text = |id: Option<Uuid>| id.map(|i| i.to_string()).unwrap_or_default();
    (q.chapter_id, q.carehome_id) = (text(scope.chapter), text(scope.carehome));
    Ok(())
}

/// List ride requests in scope: a coordinator its home's, pilots and the chapter's admin the chapter's.
#[utoipa::path(get, path = "/v1/ride-requests", tag = "ride-requests", params(RequestFilter),
    responses((status = 200, body = Page<RideRequestView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Params(f): Params<RequestFilter>,
) -> Result<axum::Json<Page<RideRequestView>>, ApiError> {
    let limit = PageParams { limit: f.limit, cursor: None }.limit()?;
    let statuses: Vec<String> =
        // Exactly the documented syntax: no spaces, no empty items (`booked,,started` is 400).
        f.status.iter().flat_map(|s| s.split(',')).map(str::to_owned).collect();
    if let Some(bad) = statuses.iter().find(|s| s.parse::<domain::types::RideRequestStatus>().is_err()) {
        return Err(ApiError::invalid("/status", format!("`{bad}` is not one of open, claimed, withdrawn, expired")));
    }
    let mut q = bpb::ListRideRequestsRequest {
        statuses,
        limit,
        cursor: f.cursor.clone().unwrap_or_default(),
        ..Default::default()
    };
    scope(&s, &caller, &f, &mut q).await?;
    let page = s.clients.booking().list_ride_requests(q).await?.into_inner();
    let mut items = Vec::with_capacity(page.ride_requests.len());
    for r in page.ride_requests {
        items.push(shown(&s, &caller, r).await?.0);
    }
    Ok(axum::Json(Page::new(items, page.next_cursor)))
}

/// `POST /v1/ride-requests/{id}/claim`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// A trishaw of the request's care home.
    pub bike_id: Uuid,
    /// Start inside the request's window (RFC 3339).
    #[schema(format = DateTime)]
    pub start: String,
}

/// A claimed request and the ride booked for it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Claimed {
    /// The request, now `claimed`.
    pub ride_request: RideRequestView,
    /// The ride.
    pub ride: RideView,
}

/// Claim a ride request: a pilot of the chapter books the ride for itself.
#[utoipa::path(post, path = "/v1/ride-requests/{id}/claim", tag = "ride-requests", request_body = Claim,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The request's ETag")),
    responses((status = 200, body = Claimed, description = "Claimed; `Location` names the ride, `ETag` is the request's"),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn claim(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<Claim>,
) -> Result<([(HeaderName, String); 1], Versioned<Claimed>), ApiError> {
    let caller = &cmd.caller;
    let start = parse_time("/start", &b.start)?;
    let request = visible(&s, caller, id).await?;
    if !object(&request).is_some_and(|o| caller.may(Action::ClaimRequest, &o)) {
        // A suspended pilot is told why; the rules refuse nothing else to a chapter's pilot.
        may_book(caller)?;
        return Err(ApiError::forbidden());
    }
    // The pilot grant the claim acts under (a person may pilot in more than one chapter).
    let Some(pilot) = caller.pilot() else { return Err(ApiError::forbidden()) };
    let c = s
        .clients
        .booking()
        .claim_ride_request(bpb::ClaimRideRequestRequest {
            context: cmd.context(),
            ride_request_id: id.to_string(),
            pilot_id: pilot.to_string(),
            bike_id: b.bike_id.to_string(),
            start: Some(start),
        })
        .await?
        .into_inner();
    let (Some(request), Some(ride)) = (c.ride_request, c.ride) else { return Err(ApiError::new(ErrorCode::Internal)) };
    let version = request.version;
    let ride = rides::view(&s, caller, ride).await?;
    let location = format!("/v1/rides/{}", ride.ride_id);
    Ok(([(header::LOCATION, location)], Versioned(Claimed { ride_request: view(caller, request), ride }, version)))
}

/// Withdraw an open ride request (the home's coordinator, the chapter's admin).
#[utoipa::path(post, path = "/v1/ride-requests/{id}/withdraw", tag = "ride-requests",
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The request's ETag")),
    responses((status = 200, body = RideRequestView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn withdraw(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    _: NoBody,
) -> Result<Versioned<RideRequestView>, ApiError> {
    let caller = &cmd.caller;
    let r = visible(&s, caller, id).await?;
    if !sees_note(caller, &r) {
        return Err(ApiError::forbidden());
    }
    let r = s
        .clients
        .booking()
        .withdraw_ride_request(bpb::RideRequestCommandRequest {
            context: cmd.context(),
            ride_request_id: id.to_string(),
        })
        .await?
        .into_inner();
    shown(&s, caller, r).await
}

/// A pilot who could ride a request (no name: the pilot's id only).
#[derive(Debug, Serialize, ToSchema)]
pub struct CandidateView {
    /// The pilot.
    pub pilot_id: String,
    /// The maximal intervals (UTC) in which the ride fits: the pilot's declared
    /// availability ∩ the window ∩ the home's ride hours, minus the pilot's rides with the
    /// home's turnaround, each at least `duration_minutes` long.
    pub free: Vec<FreeInterval>,
    /// Rides the pilot completed in the last 30 days (the ranking's key).
    pub rides_last_30_days: u32,
}

/// The candidates of a ride request, best placed first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Candidates {
    /// Ranked by fewest completed rides in the last 30 days, ties by pilot id.
    pub items: Vec<CandidateView>,
}

/// The pilots who could ride a request (the home's coordinator, the chapter's admin, admin):
/// qualified for a trishaw of the home, not suspended, who chose the home or none, and free
/// for the ride in its window.
#[utoipa::path(get, path = "/v1/ride-requests/{id}/candidates", tag = "ride-requests", params(("id" = Uuid, Path)),
    responses((status = 200, body = Candidates), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn candidates(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Result<axum::Json<Candidates>, ApiError> {
    let r = visible(&s, &caller, id).await?;
    if !sees_note(&caller, &r) {
        return Err(ApiError::forbidden());
    }
    let c = s
        .clients
        .booking()
        .ride_request_candidates(bpb::RideRequestCandidatesRequest { ride_request_id: id.to_string() })
        .await
        .or_404()?;
    let items = c
        .candidates
        .into_iter()
        .map(|c| CandidateView {
            pilot_id: c.pilot_id,
            free: c.free.into_iter().map(FreeInterval::from).collect(),
            rides_last_30_days: c.rides_last_30_days,
        })
        .collect();
    Ok(axum::Json(Candidates { items }))
}

/// The ride-request routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get))
        .routes(routes!(claim))
        .routes(routes!(withdraw))
        .routes(routes!(candidates))
}
