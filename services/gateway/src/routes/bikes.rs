//! Trishaws (`bike` in code): commissioning at a care home, reading and listing, issue
//! reports, taking out of and returning to service, retiring, and the maintenance log.
//! Anyone in the care home's chapter may read a trishaw; its coordinator and chapter admin
//! run it; pilots of the chapter may report issues.

use axum::extract::State;
use samskab_proto::carehome::v1 as cpb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use domain::ErrorCode;

use crate::AppState;
use crate::caller::Caller;
use crate::clients::Found;
use crate::extract::{Body, Command, Ids, Params};
use crate::problem::{ApiError, Problem};
use crate::routes::carehomes;
use crate::views::{Created, Page, PageParams, Versioned, opt};

/// `POST /v1/carehomes/{id}/bikes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBike {
    /// Name.
    #[schema(
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 100
    )]
    pub name: String,
    /// A free label matched against pilots' qualifications (default `trishaw`).
    #[serde(default)]
    pub bike_type: Option<String>,
    /// Rider seats, 1 or 2.
    pub seats: u32,
}

/// `PATCH /v1/bikes/{id}` (JSON merge patch): a field left out keeps its value; no field
/// may be `null`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BikePatch {
    /// Name.
    #[serde(default)]
    #[schema(
        nullable = false,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 100
    )]
    pub name: Option<String>,
    /// Type label (409 `conflicts-with-rides` while a booked future ride's pilot is not
    /// qualified for it).
    #[serde(default)]
    #[schema(
        nullable = false,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 50
    )]
    pub bike_type: Option<String>,
    /// Rider seats, 1 or 2 (409 `conflicts-with-rides` while a booked future ride has
    /// more riders).
    #[serde(default)]
    #[schema(nullable = false, minimum = 1, maximum = 2)]
    pub seats: Option<u32>,
}

impl crate::extract::Patchable for BikePatch {
    const CLEARABLE: &'static [&'static str] = &[];
}

/// `POST /v1/bikes/{id}/move`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BikeMove {
    /// The care home of the same chapter that keeps it from now on.
    pub carehome_id: Uuid,
}

/// A trishaw.
#[derive(Debug, Serialize, ToSchema)]
pub struct BikeView {
    /// Id.
    pub bike_id: String,
    /// The care home keeping it.
    pub carehome_id: String,
    /// Chapter.
    pub chapter_id: String,
    /// Name.
    pub name: String,
    /// Type label.
    pub bike_type: String,
    /// Rider seats.
    pub seats: u32,
    /// `in_service`, `out_of_service` or `retired`.
    pub status: String,
    /// Why it is out of service or retired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_service_reason: Option<String>,
    /// When it is expected back, `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_back: Option<String>,
}

/// `POST /v1/bikes/{id}/issues`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIssue {
    /// What is wrong.
    #[schema(
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 2000
    )]
    pub description: String,
    /// Whether it takes the trishaw out of service.
    pub grounding: bool,
}

/// `POST /v1/bikes/{id}/out-of-service`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutOfService {
    /// Why.
    #[schema(
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 500
    )]
    pub reason: String,
    /// When it is expected back, `YYYY-MM-DD`.
    #[serde(default)]
    #[schema(format = Date)]
    pub expected_back: Option<String>,
}

/// `POST /v1/bikes/{id}/return-to-service`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnToService {
    /// A repair note.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/bikes/{id}/retire`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retirement {
    /// Why.
    #[schema(
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 500
    )]
    pub reason: String,
}

/// One entry of a trishaw's maintenance log.
#[derive(Debug, Serialize, ToSchema)]
pub struct MaintenanceEntry {
    /// When (UTC).
    pub at: String,
    /// `commissioned`, `issue_reported`, `taken_out_of_service`, `repaired`,
    /// `returned_to_service`, `retired`, `details_corrected`, `moved`.
    pub kind: String,
    /// Issue or repair description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// For issues: whether it grounded the trishaw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grounding: Option<bool>,
    /// Reason of a service change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Expected back, `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_back: Option<String>,
    /// The role of who recorded it.
    pub actor_role: String,
}

/// A trishaw's maintenance log, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct MaintenanceLog {
    /// The entries, oldest first.
    pub items: Vec<MaintenanceEntry>,
}

fn view_of(b: cpb::Bike) -> BikeView {
    BikeView {
        bike_id: b.bike_id,
        carehome_id: b.carehome_id,
        chapter_id: b.chapter_id,
        name: b.name,
        bike_type: b.bike_type,
        seats: b.seats,
        status: b.status,
        out_of_service_reason: opt(b.out_of_service_reason),
        expected_back: opt(b.expected_back),
    }
}

fn view(b: cpb::Bike) -> Versioned<BikeView> {
    let version = b.version;
    Versioned(view_of(b), version)
}

/// A trishaw the caller may read (anyone in its chapter; 404 otherwise), with its care
/// home's and chapter's ids parsed.
pub struct VisibleBike {
    /// The trishaw.
    pub bike: cpb::Bike,
    /// Its care home.
    pub carehome: Uuid,
    /// Its chapter.
    pub chapter: Uuid,
}

/// Loads a trishaw the caller may read (404 otherwise).
pub async fn visible(s: &AppState, caller: &Caller, id: Uuid) -> Result<VisibleBike, ApiError> {
    let bike = s.clients.carehome().get_bike(cpb::IdRequest { id: id.to_string() }).await.or_404()?;
    match (bike.carehome_id.parse(), bike.chapter_id.parse()) {
        (Ok(carehome), Ok(chapter)) if caller.may_read(&access::Object::Bike { carehome, chapter }) => {
            Ok(VisibleBike { bike, carehome, chapter })
        }
        _ => Err(ApiError::not_found()),
    }
}

impl VisibleBike {
    /// Whether the caller runs the trishaw: its care home's coordinator, its chapter's admin.
    pub fn managed_by(&self, caller: &Caller) -> bool {
        caller.may(access::Action::Manage, &access::Object::Bike { carehome: self.carehome, chapter: self.chapter })
    }
}

/// Loads a trishaw the caller may read and run (404, 403 otherwise).
async fn managed(s: &AppState, caller: &Caller, id: Uuid) -> Result<VisibleBike, ApiError> {
    let b = visible(s, caller, id).await?;
    if !b.managed_by(caller) {
        return Err(ApiError::forbidden());
    }
    Ok(b)
}

/// Commission a trishaw at a care home (its coordinator, its chapter's admin).
#[utoipa::path(post, path = "/v1/carehomes/{id}/bikes", tag = "bikes", request_body = NewBike,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The care home's ETag the change is based on")),
    responses((status = 201, body = BikeView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<NewBike>,
) -> Result<Created<BikeView>, ApiError> {
    let caller = &cmd.caller;
    let if_match = cmd.if_match;
    let home = carehomes::visible(&s, caller, id).await?;
    if !carehomes::manages(caller, &home, id) {
        return Err(ApiError::forbidden());
    }
    carehomes::precondition(if_match, home.version)?;
    let bike = s
        .clients
        .carehome()
        .commission_bike(cpb::CommissionBikeRequest {
            // `If-Match` is the care home's, checked above; the service writes a new stream.
            context: cmd.context_checked_here(),
            carehome_id: id.to_string(),
            name: b.name,
            bike_type: b.bike_type.unwrap_or_default(),
            seats: b.seats,
        })
        .await?
        .into_inner();
    let Versioned(v, version) = view(bike);
    Ok(Created(format!("/v1/bikes/{}", v.bike_id), v, version))
}

/// List a care home's trishaws (anyone in its chapter).
#[utoipa::path(get, path = "/v1/carehomes/{id}/bikes", tag = "bikes", params(("id" = Uuid, Path),
        ("limit" = Option<u32>, Query, description = "Items per page, 1 to 500 (default 50)", minimum = 1, maximum = 500),
        ("cursor" = Option<String>, Query, description = "Where to continue", pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses((status = 200, body = Page<BikeView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Params(p): Params<PageParams>,
) -> Result<axum::Json<Page<BikeView>>, ApiError> {
    let limit = p.limit()?;
    carehomes::visible(&s, &caller, id).await?;
    let page = s
        .clients
        .carehome()
        .list_bikes(cpb::ListRequest { parent_id: id.to_string(), limit, cursor: p.cursor.unwrap_or_default() })
        .await?
        .into_inner();
    Ok(axum::Json(Page::new(page.bikes.into_iter().map(view_of).collect(), page.next_cursor)))
}

/// Read a trishaw (anyone in its chapter).
#[utoipa::path(get, path = "/v1/bikes/{id}", tag = "bikes", params(("id" = Uuid, Path)),
    responses((status = 200, body = BikeView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Result<Versioned<BikeView>, ApiError> {
    Ok(view(visible(&s, &caller, id).await?.bike))
}

/// Report an issue with a trishaw; a grounding issue takes it out of service (a pilot of
/// the chapter, its coordinator, its chapter's admin).
#[utoipa::path(post, path = "/v1/bikes/{id}/issues", tag = "bikes", request_body = NewIssue,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 200, body = BikeView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem, description = "`pilot-suspended`: a suspended pilot reported a grounding issue")),
    security(("bearer" = [])))]
pub async fn report_issue(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<NewIssue>,
) -> Result<Versioned<BikeView>, ApiError> {
    let caller = &cmd.caller;
    let bike = visible(&s, caller, id).await?;
    if !caller
        .may(access::Action::ReportIssue, &access::Object::Bike { carehome: bike.carehome, chapter: bike.chapter })
    {
        return Err(ApiError::forbidden());
    }
    // A suspended pilot still reports what it sees, but may not take a trishaw out of
    // service (api.md, *Riders' names and pilots*).
    if b.grounding && caller.suspended() {
        return Err(ApiError::new(ErrorCode::PilotSuspended).detail("a suspended pilot may not ground a trishaw"));
    }
    let b = s
        .clients
        .carehome()
        .report_bike_issue(cpb::ReportBikeIssueRequest {
            context: cmd.context(),
            bike_id: id.to_string(),
            description: b.description,
            grounding: b.grounding,
        })
        .await?
        .into_inner();
    Ok(view(b))
}

/// Which service change a request makes.
#[derive(Clone, Copy)]
enum Change {
    OutOfService,
    Return,
    Retire,
}

/// Runs a service change on a trishaw the caller runs.
async fn change(
    s: &AppState,
    cmd: &Command,
    id: Uuid,
    what: Change,
    reason: String,
    expected_back: String,
) -> Result<Versioned<BikeView>, ApiError> {
    managed(s, &cmd.caller, id).await?;
    let request = cpb::BikeServiceRequest { context: cmd.context(), bike_id: id.to_string(), reason, expected_back };
    let mut client = s.clients.carehome();
    let b = match what {
        Change::OutOfService => client.take_bike_out_of_service(request).await?,
        Change::Return => client.return_bike_to_service(request).await?,
        Change::Retire => client.retire_bike(request).await?,
    };
    Ok(view(b.into_inner()))
}

/// Take a trishaw out of service, cancelling its future rides (its coordinator, its
/// chapter's admin).
#[utoipa::path(post, path = "/v1/bikes/{id}/out-of-service", tag = "bikes", request_body = OutOfService,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 200, body = BikeView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn out_of_service(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<OutOfService>,
) -> Result<Versioned<BikeView>, ApiError> {
    change(&s, &cmd, id, Change::OutOfService, b.reason, b.expected_back.unwrap_or_default()).await
}

/// Return a trishaw to service, with an optional repair note (its coordinator, its
/// chapter's admin).
#[utoipa::path(post, path = "/v1/bikes/{id}/return-to-service", tag = "bikes", request_body = ReturnToService,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 200, body = BikeView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn return_to_service(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<ReturnToService>,
) -> Result<Versioned<BikeView>, ApiError> {
    change(&s, &cmd, id, Change::Return, b.reason.unwrap_or_default(), String::new()).await
}

/// Retire a trishaw for good, cancelling its future rides (its coordinator, its chapter's
/// admin).
#[utoipa::path(post, path = "/v1/bikes/{id}/retire", tag = "bikes", request_body = Retirement,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 200, body = BikeView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn retire(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<Retirement>,
) -> Result<Versioned<BikeView>, ApiError> {
    // The reason is required (api.md); the service would retire with an empty one.
    if b.reason.trim().is_empty() {
        return Err(ApiError::invalid("/reason", "must not be empty"));
    }
    change(&s, &cmd, id, Change::Retire, b.reason, String::new()).await
}

/// A trishaw's issues, repairs and service changes in order (its coordinator, its
/// chapter's admin).
#[utoipa::path(get, path = "/v1/bikes/{id}/maintenance", tag = "bikes", params(("id" = Uuid, Path)),
    responses((status = 200, body = MaintenanceLog), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn maintenance(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Result<axum::Json<MaintenanceLog>, ApiError> {
    managed(&s, &caller, id).await?;
    let log = s.clients.carehome().get_maintenance_log(cpb::IdRequest { id: id.to_string() }).await?.into_inner();
    let items = log
        .entries
        .into_iter()
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
    Ok(axum::Json(MaintenanceLog { items }))
}

/// Correct a trishaw's details (its care home's coordinator, its chapter's admin): a JSON
/// merge patch with `If-Match`. Fewer seats than a booked future ride's riders, or a type
/// a booked future ride's pilot is not qualified for, is 409 `conflicts-with-rides`.
#[utoipa::path(patch, path = "/v1/bikes/{id}", tag = "bikes",
    request_body(content = BikePatch, content_type = "application/merge-patch+json"),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = String, Header, description = "The trishaw's ETag (428 without)")),
    responses((status = 200, body = BikeView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "`conflicts-with-rides` (the rides in `ride_ids`), or the trishaw is retired (`illegal-transition`)", body = Problem),
        (status = 412, body = Problem), (status = 415, description = "Not `application/merge-patch+json` (`unsupported-media-type`)", body = Problem),
        (status = 428, description = "No `If-Match` (`precondition-required`)", body = Problem)),
    security(("bearer" = [])))]
pub async fn correct(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    patch: crate::extract::MergePatch<BikePatch>,
) -> Result<Versioned<BikeView>, ApiError> {
    let b = managed(&s, &cmd.caller, id).await?;
    cmd.require_if_match()?;
    carehomes::precondition(cmd.if_match, b.bike.version)?;
    let p = patch.patch;
    let seats = p.seats.filter(|n| *n < b.bike.seats);
    let bike_type = p.bike_type.clone().filter(|t| t.trim() != b.bike.bike_type);
    if seats.is_some() || bike_type.is_some() {
        let ask = samskab_proto::booking::v1::BrokenRidesRequest {
            bike_id: id.to_string(),
            seats,
            bike_type: bike_type.map(|t| t.trim().to_owned()),
            ..Default::default()
        };
        carehomes::refuse_broken_rides(&s, ask).await?;
    }
    let bike = s
        .clients
        .carehome()
        .correct_bike(cpb::CorrectBikeRequest {
            context: cmd.context(),
            bike_id: id.to_string(),
            name: p.name,
            bike_type: p.bike_type,
            seats: p.seats,
        })
        .await?
        .into_inner();
    Ok(view(bike))
}

/// Move a trishaw to another care home of its chapter (its chapter's admin). While it has
/// booked future rides: 409 `conflicts-with-rides`.
#[utoipa::path(post, path = "/v1/bikes/{id}/move", tag = "bikes", request_body = BikeMove,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The trishaw's ETag")),
    responses((status = 200, body = BikeView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "`conflicts-with-rides` (the rides in `ride_ids`), or the trishaw is retired (`illegal-transition`)", body = Problem),
        (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn move_to(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(m): Body<BikeMove>,
) -> Result<Versioned<BikeView>, ApiError> {
    let caller = &cmd.caller;
    let b = visible(&s, caller, id).await?;
    if !caller.may(access::Action::Administer, &access::Object::Bike { carehome: b.carehome, chapter: b.chapter }) {
        return Err(ApiError::forbidden());
    }
    carehomes::precondition(cmd.if_match, b.bike.version)?;
    if m.carehome_id != b.carehome {
        // The target must be a care home of the same chapter the caller may see (404).
        let target = carehomes::visible(&s, caller, m.carehome_id).await?;
        if carehomes::chapter_of(&target) != Some(b.chapter) {
            return Err(ApiError::not_found());
        }
        let ask = samskab_proto::booking::v1::BrokenRidesRequest {
            bike_id: id.to_string(),
            every_future: true,
            ..Default::default()
        };
        carehomes::refuse_broken_rides(&s, ask).await?;
    }
    let bike = s
        .clients
        .carehome()
        .move_bike(cpb::MoveBikeRequest {
            context: cmd.context(),
            bike_id: id.to_string(),
            carehome_id: m.carehome_id.to_string(),
        })
        .await?
        .into_inner();
    Ok(view(bike))
}

/// The trishaw routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, correct))
        .routes(routes!(move_to))
        .routes(routes!(report_issue))
        .routes(routes!(out_of_service))
        .routes(routes!(return_to_service))
        .routes(routes!(retire))
        .routes(routes!(maintenance))
}
