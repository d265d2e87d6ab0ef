//! Care homes: registration, reading and listing a chapter's, weekly ride hours,
//! closures and coordinators. Anyone in the care home's chapter may read it; its chapter
//! admin (and its coordinator, for hours and closures) may change it.

use access::{Action, Object};
use axum::extract::State;
use samskab_proto::booking::v1 as bpb;
use samskab_proto::carehome::v1 as cpb;
use serde::{Deserialize, Serialize};
use servicekit::ErrorCode;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::clients::Found;
use crate::extract::{Body, Command, Ids, Params};
use crate::problem::{ApiError, Problem};
use crate::views::{Created, Page, PageParams, Versioned, opt};

/// Ride hours of one weekday, in the care home's local time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RideHours {
    /// Lowercase English weekday (`monday`).
    #[schema(pattern = "^(monday|tuesday|wednesday|thursday|friday|saturday|sunday)$")]
    pub weekday: String,
    /// Opening time, `HH:MM`.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub opens: String,
    /// Closing time, `HH:MM`.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub closes: String,
}

impl From<RideHours> for cpb::RideHours {
    fn from(h: RideHours) -> Self {
        cpb::RideHours { weekday: h.weekday, opens: h.opens, closes: h.closes }
    }
}

impl From<cpb::RideHours> for RideHours {
    fn from(h: cpb::RideHours) -> Self {
        RideHours { weekday: h.weekday, opens: h.opens, closes: h.closes }
    }
}

/// A closure of a care home: dates `from` (inclusive) to `to` (exclusive).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Closure {
    /// First closed day, `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub from: String,
    /// First day open again.
    #[schema(format = Date)]
    pub to: String,
    /// Why it is closed.
    pub reason: String,
}

/// A closure in force, with the id that lifts it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClosureView {
    /// The closure's id (the id of the event that recorded it).
    pub closure_id: String,
    /// First closed day, `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub from: String,
    /// First day open again.
    #[schema(format = Date)]
    pub to: String,
    /// Why it is closed.
    pub reason: String,
}

/// `PATCH /v1/carehomes/{id}` (JSON merge patch): a field left out keeps its value; no
/// field may be `null`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CareHomePatch {
    /// Name.
    #[serde(default)]
    #[schema(
        nullable = false,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 200
    )]
    pub name: Option<String>,
    /// Postal address.
    #[serde(default)]
    #[schema(
        nullable = false,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 300
    )]
    pub address: Option<String>,
    /// Minimum minutes between two rides on one trishaw (409 `conflicts-with-rides` if
    /// two booked future rides would then overlap).
    #[serde(default)]
    #[schema(nullable = false, maximum = 240)]
    pub turnaround_minutes: Option<u32>,
    /// Whether pilot-booked rides wait for confirmation (new bookings only).
    #[serde(default)]
    #[schema(nullable = false)]
    pub requires_confirmation: Option<bool>,
    /// Whether pilots may put residents on their own rides.
    #[serde(default)]
    #[schema(nullable = false)]
    pub pilots_choose_riders: Option<bool>,
}

impl crate::extract::Patchable for CareHomePatch {
    const CLEARABLE: &'static [&'static str] = &[];
}

/// Path of a closure of a care home.
#[derive(Debug, Deserialize)]
pub struct ClosurePath {
    /// The care home.
    pub id: Uuid,
    /// The closure.
    pub closure_id: Uuid,
}

/// `POST /v1/carehomes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCareHome {
    /// The chapter it belongs to.
    pub chapter_id: Uuid,
    /// Name.
    #[schema(
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 200
    )]
    pub name: String,
    /// Postal address.
    #[schema(
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 300
    )]
    pub address: String,
    /// Its own IANA time zone (default: the chapter's).
    #[serde(default)]
    #[schema(schema_with = crate::views::optional_timezone)]
    pub timezone: Option<String>,
    /// Weekly ride hours.
    pub ride_hours: Vec<RideHours>,
    /// Minimum minutes between two rides on one trishaw.
    pub turnaround_minutes: u32,
    /// Whether pilot-booked rides wait for the coordinator's confirmation.
    pub requires_confirmation: bool,
    /// Whether pilots may put residents on their own rides (booking, roster); otherwise
    /// only residents named in a request they claimed (default false).
    #[serde(default)]
    pub pilots_choose_riders: bool,
}

/// `PUT /v1/carehomes/{id}/ride-hours`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RideHoursChange {
    /// The new weekly ride hours (replacing the old).
    pub ride_hours: Vec<RideHours>,
}

/// `POST /v1/carehomes/{id}/coordinators`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCoordinator {
    /// The coordinator's pseudonymous user id (a token's `sub`).
    #[schema(
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 128
    )]
    pub user_id: String,
}

/// A care home.
#[derive(Debug, Serialize, ToSchema)]
pub struct CareHomeView {
    /// Id.
    pub carehome_id: String,
    /// Chapter.
    pub chapter_id: String,
    /// Name.
    pub name: String,
    /// Postal address.
    pub address: String,
    /// Its own time zone, if it sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The zone in effect (its own or the chapter's).
    pub effective_timezone: String,
    /// Weekly ride hours.
    pub ride_hours: Vec<RideHours>,
    /// Minimum minutes between two rides on one trishaw.
    pub turnaround_minutes: u32,
    /// Whether pilot-booked rides wait for confirmation.
    pub requires_confirmation: bool,
    /// Whether pilots may put residents on their own rides.
    pub pilots_choose_riders: bool,
    /// Closures in force.
    pub closures: Vec<ClosureView>,
    /// Its coordinators' user ids, in order of assignment.
    pub coordinator_ids: Vec<String>,
}

/// `GET /v1/carehomes?chapter_id=&limit=&cursor=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CareHomeQuery {
    /// The chapter whose care homes to list (required).
    pub chapter_id: Uuid,
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Where to continue.
    #[param(pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub cursor: Option<String>,
}

/// Path of a coordinator of a care home.
#[derive(Debug, Deserialize)]
pub struct CoordinatorPath {
    /// The care home.
    pub id: Uuid,
    /// The coordinator's user id.
    pub user_id: String,
}

fn view_of(h: cpb::CareHome) -> CareHomeView {
    CareHomeView {
        carehome_id: h.carehome_id,
        chapter_id: h.chapter_id,
        name: h.name,
        address: h.address,
        timezone: opt(h.timezone),
        effective_timezone: h.effective_timezone,
        ride_hours: h.ride_hours.into_iter().map(Into::into).collect(),
        turnaround_minutes: h.turnaround_minutes,
        requires_confirmation: h.requires_confirmation,
        pilots_choose_riders: h.pilots_choose_riders,
        closures: h
            .closures
            .into_iter()
            .map(|c| ClosureView { closure_id: c.closure_id, from: c.from, to: c.to, reason: c.reason })
            .collect(),
        coordinator_ids: h.coordinator_ids,
    }
}

/// The care home as answered, with its `ETag`.
pub fn view(h: cpb::CareHome) -> Versioned<CareHomeView> {
    let version = h.version;
    Versioned(view_of(h), version)
}

/// The chapter of a care home as read from its record.
pub fn chapter_of(h: &cpb::CareHome) -> Option<Uuid> {
    h.chapter_id.parse().ok()
}

/// The facts of a care home the read rules ask about (`Network` when its chapter is
/// unreadable: only admins see it then).
pub fn object(home: &cpb::CareHome, id: Uuid) -> Object {
    chapter_of(home).map_or(Object::Network, |chapter| Object::CareHome { id, chapter })
}

/// Loads a care home the caller may read: anyone in its chapter (404 otherwise).
pub async fn visible(s: &AppState, caller: &Caller, id: Uuid) -> Result<cpb::CareHome, ApiError> {
    let home = s.clients.carehome().get_care_home(cpb::IdRequest { id: id.to_string() }).await.or_404()?;
    if chapter_of(&home).is_none() || !caller.may_read(&object(&home, id)) {
        return Err(ApiError::not_found());
    }
    Ok(home)
}

/// Whether the caller runs the care home: its coordinator or its chapter's admin (or admin).
pub fn manages(caller: &Caller, home: &cpb::CareHome, id: Uuid) -> bool {
    chapter_of(home).is_some() && caller.may(Action::Manage, &object(home, id))
}

/// Refuses a change based on another version of the care home than `current` (412 with
/// the current `ETag`); for commands the care home's own stream does not check.
pub fn precondition(if_match: Option<u64>, current: u64) -> Result<(), ApiError> {
    match if_match {
        Some(v) if v != current => {
            let mut e = ApiError::new(ErrorCode::PreconditionFailed);
            e.current_version = Some(current);
            Err(e)
        }
        _ => Ok(()),
    }
}

/// Register a care home (its chapter's admin).
#[utoipa::path(post, path = "/v1/carehomes", tag = "carehomes", request_body = NewCareHome,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = CareHomeView), (status = 400, description = "Malformed (`malformed`, `validation`), or ride hours that close at or before they open or overlap another row of the same weekday (`validation` on `/ride_hours/{i}/closes`: rules between fields, which the schema cannot state)", body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    cmd: Command,
    Body(b): Body<NewCareHome>,
) -> Result<Created<CareHomeView>, ApiError> {
    let caller = &cmd.caller;
    caller.check(Action::Administer, &Object::Chapter(b.chapter_id))?;
    let h = s
        .clients
        .carehome()
        .register_care_home(cpb::RegisterCareHomeRequest {
            context: cmd.context(),
            chapter_id: b.chapter_id.to_string(),
            name: b.name,
            address: b.address,
            timezone: b.timezone.unwrap_or_default(),
            ride_hours: b.ride_hours.into_iter().map(Into::into).collect(),
            turnaround_minutes: b.turnaround_minutes,
            requires_confirmation: b.requires_confirmation,
            pilots_choose_riders: b.pilots_choose_riders,
        })
        .await?
        .into_inner();
    let Versioned(v, version) = view(h);
    Ok(Created(format!("/v1/carehomes/{}", v.carehome_id), v, version))
}

/// List a chapter's care homes (anyone in the chapter).
#[utoipa::path(get, path = "/v1/carehomes", tag = "carehomes", params(CareHomeQuery),
    responses((status = 200, body = Page<CareHomeView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<CareHomeQuery>,
) -> Result<axum::Json<Page<CareHomeView>>, ApiError> {
    let limit = PageParams { limit: q.limit, cursor: None }.limit()?;
    if !caller.may_read(&Object::Chapter(q.chapter_id)) {
        return Err(ApiError::not_found());
    }
    let page = s
        .clients
        .carehome()
        .list_care_homes(cpb::ListRequest {
            parent_id: q.chapter_id.to_string(),
            limit,
            cursor: q.cursor.unwrap_or_default(),
        })
        .await?
        .into_inner();
    Ok(axum::Json(Page::new(page.carehomes.into_iter().map(view_of).collect(), page.next_cursor)))
}

/// Read a care home (anyone in its chapter).
#[utoipa::path(get, path = "/v1/carehomes/{id}", tag = "carehomes", params(("id" = Uuid, Path)),
    responses((status = 200, body = CareHomeView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Result<Versioned<CareHomeView>, ApiError> {
    Ok(view(visible(&s, &caller, id).await?))
}

/// Replace a care home's weekly ride hours (its coordinator, its chapter's admin).
#[utoipa::path(put, path = "/v1/carehomes/{id}/ride-hours", tag = "carehomes", request_body = RideHoursChange,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 200, body = CareHomeView), (status = 400, description = "Malformed (`malformed`, `validation`), or ride hours that close at or before they open or overlap another row of the same weekday (`validation` on `/ride_hours/{i}/closes`: rules between fields, which the schema cannot state)", body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn put_ride_hours(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<RideHoursChange>,
) -> Result<Versioned<CareHomeView>, ApiError> {
    let caller = &cmd.caller;
    let home = visible(&s, caller, id).await?;
    if !manages(caller, &home, id) {
        return Err(ApiError::forbidden());
    }
    let h = s
        .clients
        .carehome()
        .change_ride_hours(cpb::ChangeRideHoursRequest {
            context: cmd.context(),
            carehome_id: id.to_string(),
            ride_hours: b.ride_hours.into_iter().map(Into::into).collect(),
        })
        .await?
        .into_inner();
    Ok(view(h))
}

/// Close a care home for a date range, cancelling its rides then (its coordinator, its
/// chapter's admin).
#[utoipa::path(post, path = "/v1/carehomes/{id}/closures", tag = "carehomes", request_body = Closure,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 200, body = CareHomeView), (status = 400, description = "Malformed (`malformed`, `validation`), or `to` not after `from` (`validation` on `/to`: a rule between fields, which the schema cannot state)", body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn close(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<Closure>,
) -> Result<Versioned<CareHomeView>, ApiError> {
    let caller = &cmd.caller;
    let home = visible(&s, caller, id).await?;
    if !manages(caller, &home, id) {
        return Err(ApiError::forbidden());
    }
    let h = s
        .clients
        .carehome()
        .close_care_home(cpb::CloseCareHomeRequest {
            context: cmd.context(),
            carehome_id: id.to_string(),
            closure: Some(cpb::Closure { from: b.from, to: b.to, reason: b.reason, ..Default::default() }),
        })
        .await?
        .into_inner();
    Ok(view(h))
}

/// Refuses a correction that would break booked future rides: booking names them (409
/// `conflicts-with-rides`, listed in `ride_ids`). A booking that slips in after this
/// check is cancelled by booking's cascade on the correction's event.
pub async fn refuse_broken_rides(s: &AppState, ask: bpb::BrokenRidesRequest) -> Result<(), ApiError> {
    let ids = s.clients.booking().broken_rides(ask).await?.into_inner().ride_ids;
    if ids.is_empty() {
        return Ok(());
    }
    let mut e = ApiError::new(ErrorCode::ConflictsWithRides)
        .detail(format!("the change would break {} booked ride(s); cancel or move them first", ids.len()));
    e.conflict = Some(Box::new(crate::problem::Conflict { with: None, ride_ids: ids }));
    Err(e)
}

/// Correct a care home's details (its chapter's admin): a JSON merge patch with
/// `If-Match`. A turnaround that would make two booked future rides of one trishaw overlap
/// is 409 `conflicts-with-rides`; `requires_confirmation` applies to new bookings only.
#[utoipa::path(patch, path = "/v1/carehomes/{id}", tag = "carehomes",
    request_body(content = CareHomePatch, content_type = "application/merge-patch+json"),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = String, Header, description = "The care home's ETag (428 without)")),
    responses((status = 200, body = CareHomeView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "`conflicts-with-rides` (the rides in `ride_ids`)", body = Problem),
        (status = 412, body = Problem), (status = 415, description = "Not `application/merge-patch+json` (`unsupported-media-type`)", body = Problem),
        (status = 428, description = "No `If-Match` (`precondition-required`)", body = Problem)),
    security(("bearer" = [])))]
pub async fn correct(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    patch: crate::extract::MergePatch<CareHomePatch>,
) -> Result<Versioned<CareHomeView>, ApiError> {
    let caller = &cmd.caller;
    let home = visible(&s, caller, id).await?;
    if !caller.may(Action::Administer, &object(&home, id)) {
        return Err(ApiError::forbidden());
    }
    cmd.require_if_match()?;
    precondition(cmd.if_match, home.version)?;
    let p = patch.patch;
    if let Some(t) = p.turnaround_minutes.filter(|t| *t > home.turnaround_minutes) {
        let ask =
            bpb::BrokenRidesRequest { carehome_id: id.to_string(), turnaround_minutes: Some(t), ..Default::default() };
        refuse_broken_rides(&s, ask).await?;
    }
    let h = s
        .clients
        .carehome()
        .correct_care_home(cpb::CorrectCareHomeRequest {
            context: cmd.context(),
            carehome_id: id.to_string(),
            name: p.name,
            address: p.address,
            turnaround_minutes: p.turnaround_minutes,
            requires_confirmation: p.requires_confirmation,
            pilots_choose_riders: p.pilots_choose_riders,
        })
        .await?
        .into_inner();
    Ok(view(h))
}

/// Lift a closure (its coordinator, its chapter's admin): the days are open again; rides
/// it cancelled stay cancelled. Lifting it again changes nothing.
#[utoipa::path(delete, path = "/v1/carehomes/{id}/closures/{closure_id}", tag = "carehomes",
    params(("id" = Uuid, Path), ("closure_id" = Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The care home's ETag")),
    responses((status = 200, body = CareHomeView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn lift_closure(
    State(s): State<AppState>,
    cmd: Command,
    Ids(p): Ids<ClosurePath>,
) -> Result<Versioned<CareHomeView>, ApiError> {
    let caller = &cmd.caller;
    let home = visible(&s, caller, p.id).await?;
    if !manages(caller, &home, p.id) {
        return Err(ApiError::forbidden());
    }
    let h = s
        .clients
        .carehome()
        .lift_closure(cpb::LiftClosureRequest {
            context: cmd.context(),
            carehome_id: p.id.to_string(),
            closure_id: p.closure_id.to_string(),
        })
        .await?
        .into_inner();
    Ok(view(h))
}

/// Only the chapter's admin (or admin) changes who coordinates a care home.
async fn coordinator_admin(s: &AppState, caller: &Caller, id: Uuid) -> Result<(), ApiError> {
    let home = visible(s, caller, id).await?;
    if chapter_of(&home).is_none() || !caller.may(Action::Administer, &object(&home, id)) {
        return Err(ApiError::forbidden());
    }
    Ok(())
}

/// Assign a coordinator to a care home (its chapter's admin); assigning again changes nothing.
#[utoipa::path(post, path = "/v1/carehomes/{id}/coordinators", tag = "carehomes", request_body = NewCoordinator,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 200, body = CareHomeView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn assign_coordinator(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<NewCoordinator>,
) -> Result<Versioned<CareHomeView>, ApiError> {
    let caller = &cmd.caller;
    coordinator_admin(&s, caller, id).await?;
    let h = s
        .clients
        .carehome()
        .assign_coordinator(cpb::CoordinatorRequest {
            context: cmd.context(),
            carehome_id: id.to_string(),
            user_id: b.user_id,
        })
        .await?
        .into_inner();
    Ok(view(h))
}

/// Remove a coordinator from a care home (its chapter's admin); removing one who is not
/// assigned changes nothing.
#[utoipa::path(delete, path = "/v1/carehomes/{id}/coordinators/{user_id}", tag = "carehomes",
    params(("id" = Uuid, Path), ("user_id" = String, Path), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 200, body = CareHomeView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn remove_coordinator(
    State(s): State<AppState>,
    cmd: Command,
    Ids(p): Ids<CoordinatorPath>,
) -> Result<Versioned<CareHomeView>, ApiError> {
    let caller = &cmd.caller;
    let id = p.id;
    coordinator_admin(&s, caller, id).await?;
    let h = s
        .clients
        .carehome()
        .remove_coordinator(cpb::CoordinatorRequest {
            context: cmd.context(),
            carehome_id: id.to_string(),
            user_id: p.user_id,
        })
        .await?
        .into_inner();
    Ok(view(h))
}

/// The care-home routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, correct))
        .routes(routes!(put_ride_hours))
        .routes(routes!(close))
        .routes(routes!(lift_closure))
        .routes(routes!(assign_coordinator))
        .routes(routes!(remove_coordinator))
}
