//! Pilots: the volunteers of a chapter, their qualifications per trishaw type, weekly
//! availability and status (suspend, reinstate, retire), erasure and the GDPR access
//! export. A pilot is seen by itself, its chapter's admin and admin; nobody else.

use access::Object;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use samskab_proto::booking::v1 as bpb;
use samskab_proto::carehome::v1 as cpb;
use samskab_proto::volunteer::v1 as vpb;
use serde::{Deserialize, Serialize};
use servicekit::ErrorCode;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::clients::Found;
use crate::extract::{Body, Command, Ids, NoBody, Params};
use crate::problem::{ApiError, Problem};
use crate::routes::chapters;
use crate::views::{Created, Page, PageParams, Versioned, opt};

/// `POST /v1/pilots`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPilot {
    /// The chapter the pilot volunteers in.
    pub chapter_id: Uuid,
    /// Name (personal, stored encrypted).
    #[schema(
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 200
    )]
    pub display_name: String,
    /// E-mail (personal).
    #[serde(default)]
    pub email: Option<String>,
    /// Phone (personal).
    #[serde(default)]
    pub phone: Option<String>,
}

/// `POST /v1/pilots/{id}/qualifications`: qualifies, or renews a type already held.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewQualification {
    /// Trishaw type (`trishaw` by default).
    #[serde(default)]
    pub bike_type: Option<String>,
    /// Training date, `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub qualified_on: String,
    /// Valid through this date, `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub valid_until: String,
}

/// `PATCH /v1/pilots/{id}` (JSON merge patch): a field left out keeps its value; `null`
/// clears `email` or `phone`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PilotPatch {
    /// Name (personal, stored encrypted).
    #[serde(default)]
    #[schema(
        nullable = false,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 200
    )]
    pub display_name: Option<String>,
    /// E-mail (personal); `null` clears it.
    #[serde(default)]
    #[schema(nullable)]
    pub email: Option<String>,
    /// Phone (personal); `null` clears it.
    #[serde(default)]
    #[schema(nullable)]
    pub phone: Option<String>,
}

impl crate::extract::Patchable for PilotPatch {
    const CLEARABLE: &'static [&'static str] = &["email", "phone"];
}

/// A qualification for one trishaw type.
#[derive(Debug, Serialize, ToSchema)]
pub struct QualificationView {
    /// Trishaw type.
    pub bike_type: String,
    /// Training date.
    pub qualified_on: String,
    /// Valid through this date.
    pub valid_until: String,
}

/// A weekly window in local clock time.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeeklyWindow {
    /// Lowercase English weekday (`monday`).
    #[schema(pattern = "^(monday|tuesday|wednesday|thursday|friday|saturday|sunday)$")]
    pub weekday: String,
    /// `HH:MM`.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub from: String,
    /// `HH:MM`, after `from`.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub to: String,
}

/// A pilot's declared availability (also the body of `PUT .../availability`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Availability {
    /// Weekly windows.
    pub weekly: Vec<WeeklyWindow>,
    /// Care homes of the pilot's chapter it rides at.
    pub carehome_ids: Vec<Uuid>,
}

/// A pilot. Personal fields are absent once erased.
#[derive(Debug, Serialize, ToSchema)]
pub struct PilotView {
    /// Id.
    pub pilot_id: String,
    /// Chapter.
    pub chapter_id: String,
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// E-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// `active`, `suspended`, `retired` or `erased`.
    pub status: String,
    /// Qualifications per trishaw type.
    pub qualifications: Vec<QualificationView>,
    /// Declared availability.
    pub availability: Availability,
    /// Whether the pilot's personal data has been erased.
    pub erased: bool,
}

fn view(p: vpb::Pilot) -> Versioned<PilotView> {
    let personal = |v: String| if p.erased { None } else { opt(v) };
    let a = p.availability.clone().unwrap_or_default();
    let v = PilotView {
        display_name: personal(p.display_name.clone()),
        email: personal(p.email.clone()),
        phone: personal(p.phone.clone()),
        pilot_id: p.pilot_id,
        chapter_id: p.chapter_id,
        status: p.status,
        qualifications: p
            .qualifications
            .into_iter()
            .map(|q| QualificationView {
                bike_type: q.bike_type,
                qualified_on: q.qualified_on,
                valid_until: q.valid_until,
            })
            .collect(),
        availability: Availability {
            weekly: a.weekly.into_iter().map(|w| WeeklyWindow { weekday: w.weekday, from: w.from, to: w.to }).collect(),
            carehome_ids: a.carehome_ids.iter().filter_map(|h| h.parse().ok()).collect(),
        },
        erased: p.erased,
    };
    Versioned(v, p.version)
}

/// Loads a pilot the caller may read: the pilot itself, its chapter's admin, admin (404 otherwise).
pub async fn visible(s: &AppState, caller: &Caller, id: Uuid) -> Result<vpb::Pilot, ApiError> {
    let p = s.clients.volunteer().get_pilot(vpb::GetPilotRequest { pilot_id: id.to_string() }).await.or_404()?;
    let chapter: Option<Uuid> = p.chapter_id.parse().ok();
    if chapter.is_some_and(|chapter| caller.may_read(&access::Object::Pilot { id, chapter })) {
        Ok(p)
    } else {
        Err(ApiError::not_found())
    }
}

/// Loads a pilot the caller may read and manage as its chapter's admin (403 for the pilot itself).
async fn managed(s: &AppState, caller: &Caller, id: Uuid) -> Result<vpb::Pilot, ApiError> {
    let p = visible(s, caller, id).await?;
    if !p.chapter_id.parse().is_ok_and(|chapter| caller.may(access::Action::Administer, &Object::Pilot { id, chapter }))
    {
        return Err(ApiError::forbidden());
    }
    Ok(p)
}

/// Register a pilot (its chapter's admin, admin).
#[utoipa::path(post, path = "/v1/pilots", tag = "pilots", request_body = NewPilot,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = PilotView), (status = 400, description = "Malformed (`malformed`, `validation`), or a weekly window whose `to` is not after its `from` (`validation` on `.../weekly/{i}/to`: a rule between fields, which the schema cannot state)", body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    cmd: Command,
    Body(b): Body<NewPilot>,
) -> Result<Created<PilotView>, ApiError> {
    let caller = &cmd.caller;
    chapters::visible(&s, caller, b.chapter_id).await?;
    if !caller.may(access::Action::Administer, &Object::Chapter(b.chapter_id)) {
        return Err(ApiError::forbidden());
    }
    let p = s
        .clients
        .volunteer()
        .register_pilot(vpb::RegisterPilotRequest {
            context: cmd.context(),
            chapter_id: b.chapter_id.to_string(),
            display_name: b.display_name,
            email: b.email.unwrap_or_default(),
            phone: b.phone.unwrap_or_default(),
        })
        .await?
        .into_inner();
    let Versioned(v, version) = view(p);
    Ok(Created(format!("/v1/pilots/{}", v.pilot_id), v, version))
}

/// Read a pilot (the pilot itself, its chapter's admin, admin).
#[utoipa::path(get, path = "/v1/pilots/{id}", tag = "pilots", params(("id" = Uuid, Path)),
    responses((status = 200, body = PilotView), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Result<Versioned<PilotView>, ApiError> {
    Ok(view(visible(&s, &caller, id).await?))
}

/// `GET /v1/pilots` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PilotFilter {
    /// The chapter whose pilots to list.
    pub chapter_id: Uuid,
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Where to continue.
    #[param(pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub cursor: Option<String>,
}

/// List a chapter's pilots (its chapter admin, admin).
#[utoipa::path(get, path = "/v1/pilots", tag = "pilots", params(PilotFilter),
    responses((status = 200, body = Page<PilotView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Params(f): Params<PilotFilter>,
) -> Result<axum::Json<Page<PilotView>>, ApiError> {
    let limit = PageParams { limit: f.limit, cursor: None }.limit()?;
    chapters::visible(&s, &caller, f.chapter_id).await?;
    if !caller.may(access::Action::Administer, &Object::Chapter(f.chapter_id)) {
        return Err(ApiError::forbidden());
    }
    let page = s
        .clients
        .volunteer()
        .list_pilots(vpb::ListPilotsRequest {
            chapter_id: f.chapter_id.to_string(),
            limit,
            cursor: f.cursor.unwrap_or_default(),
            on: String::new(),
        })
        .await?
        .into_inner();
    Ok(axum::Json(Page::new(page.pilots.into_iter().map(|p| view(p).0).collect(), page.next_cursor)))
}

/// Qualify a pilot for a trishaw type, or renew it (its chapter's admin).
#[utoipa::path(post, path = "/v1/pilots/{id}/qualifications", tag = "pilots", request_body = NewQualification,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The pilot's ETag")),
    responses((status = 200, body = PilotView), (status = 400, description = "Malformed (`malformed`, `validation`), or `valid_until` before `qualified_on` (`validation` on `/valid_until`: a rule between fields, which the schema cannot state)", body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn qualify(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<NewQualification>,
) -> Result<Versioned<PilotView>, ApiError> {
    let caller = &cmd.caller;
    managed(&s, caller, id).await?;
    let p = s
        .clients
        .volunteer()
        .qualify_pilot(vpb::QualifyPilotRequest {
            context: cmd.context(),
            pilot_id: id.to_string(),
            qualification: Some(vpb::Qualification {
                bike_type: b.bike_type.unwrap_or_default(),
                qualified_on: b.qualified_on,
                valid_until: b.valid_until,
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    Ok(view(p))
}

/// Declare a pilot's weekly availability and care homes (the pilot itself, its chapter's admin).
#[utoipa::path(put, path = "/v1/pilots/{id}/availability", tag = "pilots", request_body = Availability,
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The pilot's ETag")),
    responses((status = 200, body = PilotView), (status = 400, description = "Malformed (`malformed`, `validation`), or a weekly window whose `to` is not after its `from` (`validation` on `/weekly/{i}/to`: a rule between fields, which the schema cannot state)", body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn put_availability(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<Availability>,
) -> Result<Versioned<PilotView>, ApiError> {
    let caller = &cmd.caller;
    let p = visible(&s, caller, id).await?;
    for (i, home) in b.carehome_ids.iter().enumerate() {
        let home = s.clients.carehome().get_care_home(cpb::IdRequest { id: home.to_string() }).await.found()?;
        let found = home.is_some_and(|h| h.chapter_id == p.chapter_id);
        if !found {
            return Err(ApiError::invalid(format!("/carehome_ids/{i}"), "must be a care home of the pilot's chapter"));
        }
    }
    let p = s
        .clients
        .volunteer()
        .declare_availability(vpb::DeclareAvailabilityRequest {
            context: cmd.context(),
            pilot_id: id.to_string(),
            availability: Some(vpb::Availability {
                weekly: b
                    .weekly
                    .into_iter()
                    .map(|w| vpb::WeeklyWindow { weekday: w.weekday, from: w.from, to: w.to })
                    .collect(),
                carehome_ids: b.carehome_ids.iter().map(Uuid::to_string).collect(),
            }),
        })
        .await?
        .into_inner();
    Ok(view(p))
}

/// Correct a pilot's personal details (the pilot itself, its chapter's admin): a JSON merge
/// patch with `If-Match`. The old values stay sealed under the pilot's key, so erasure
/// reaches them; the audit names the changed fields, never the values.
#[utoipa::path(patch, path = "/v1/pilots/{id}", tag = "pilots",
    request_body(content = PilotPatch, content_type = "application/merge-patch+json"),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = String, Header, description = "The pilot's ETag (428 without)")),
    responses((status = 200, body = PilotView), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 415, description = "Not `application/merge-patch+json` (`unsupported-media-type`)", body = Problem),
        (status = 428, description = "No `If-Match` (`precondition-required`)", body = Problem)),
    security(("bearer" = [])))]
pub async fn correct(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    patch: crate::extract::MergePatch<PilotPatch>,
) -> Result<Versioned<PilotView>, ApiError> {
    visible(&s, &cmd.caller, id).await?;
    cmd.require_if_match()?;
    let clear = |field: &str, value: Option<String>| {
        if patch.clears(field) { Some(String::new()) } else { value }
    };
    let p = s
        .clients
        .volunteer()
        .correct_pilot(vpb::CorrectPilotRequest {
            context: cmd.context(),
            pilot_id: id.to_string(),
            display_name: patch.patch.display_name.clone(),
            email: clear("email", patch.patch.email.clone()),
            phone: clear("phone", patch.patch.phone.clone()),
        })
        .await?
        .into_inner();
    Ok(view(p))
}

/// The status commands a chapter admin gives a pilot.
#[derive(Debug, Clone, Copy)]
enum Action {
    Suspend,
    Reinstate,
    Retire,
    Erase,
}

async fn act(s: &AppState, cmd: &Command, id: Uuid, action: Action) -> Result<Versioned<PilotView>, ApiError> {
    let pilot = managed(s, &cmd.caller, id).await?;
    if matches!(action, Action::Erase) {
        // Booking forgets the pilot's rides first (idempotent: a retry after a failure
        // here or below does it again), so their keys are gone before the answer.
        crate::routes::carehomes::precondition(cmd.if_match, pilot.version)?;
        let forget = bpb::ForgetPersonRequest { resident_id: String::new(), pilot_id: id.to_string() };
        s.clients.booking().forget_person(forget).await?;
    }
    let r = vpb::PilotCommandRequest { context: cmd.context(), pilot_id: id.to_string() };
    let mut v = s.clients.volunteer();
    let p = match action {
        Action::Suspend => v.suspend_pilot(r).await,
        Action::Reinstate => v.reinstate_pilot(r).await,
        Action::Retire => v.retire_pilot(r).await,
        Action::Erase => v.erase_pilot(r).await,
    }?;
    Ok(view(p.into_inner()))
}

/// Suspend a pilot: it may read but not book; its future rides are cancelled (`volunteer`).
#[utoipa::path(post, path = "/v1/pilots/{id}/suspend", tag = "pilots",
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The pilot's ETag")),
    responses((status = 200, body = PilotView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn suspend(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    _: NoBody,
) -> Result<Versioned<PilotView>, ApiError> {
    act(&s, &cmd, id, Action::Suspend).await
}

/// Reinstate a suspended pilot (its chapter's admin).
#[utoipa::path(post, path = "/v1/pilots/{id}/reinstate", tag = "pilots",
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The pilot's ETag")),
    responses((status = 200, body = PilotView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn reinstate(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    _: NoBody,
) -> Result<Versioned<PilotView>, ApiError> {
    act(&s, &cmd, id, Action::Reinstate).await
}

/// Retire a pilot: its token is refused from now on; its future rides are cancelled (`volunteer`).
#[utoipa::path(post, path = "/v1/pilots/{id}/retire", tag = "pilots",
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The pilot's ETag")),
    responses((status = 200, body = PilotView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn retire(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    _: NoBody,
) -> Result<Versioned<PilotView>, ApiError> {
    act(&s, &cmd, id, Action::Retire).await
}

/// Erase a pilot's personal data: the key is deleted before the answer (its chapter's admin).
#[utoipa::path(post, path = "/v1/pilots/{id}/erasure", tag = "pilots",
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The pilot's ETag")),
    responses((status = 200, body = PilotView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn erase(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    _: NoBody,
) -> Result<Versioned<PilotView>, ApiError> {
    let erased = act(&s, &cmd, id, Action::Erase).await?;
    // Kept idempotent answers that named the pilot go too (see residents::erase).
    s.idempotency.forget_subject(id).await?;
    Ok(erased)
}

fn json(text: &str) -> Result<serde_json::Value, ApiError> {
    serde_json::from_str(text).map_err(|_| ApiError::new(ErrorCode::Internal))
}

/// Everything held about a pilot, decrypted (GDPR access): the volunteer record and its
/// history, and its rides under `rides` (the pilot itself, its chapter's admin).
#[utoipa::path(get, path = "/v1/pilots/{id}/export", tag = "pilots", params(("id" = Uuid, Path)),
    responses((status = 200, body = Object, description = "The pilot's record, history and rides"), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn export(State(s): State<AppState>, caller: Caller, Ids(id): Ids<Uuid>) -> Result<Response, ApiError> {
    visible(&s, &caller, id).await?;
    let record =
        s.clients.volunteer().export_pilot(vpb::ExportPilotRequest { pilot_id: id.to_string() }).await?.into_inner();
    let rides = s
        .clients
        .booking()
        .export_rides(bpb::ExportRidesRequest { resident_id: String::new(), pilot_id: id.to_string() })
        .await?
        .into_inner();
    let mut doc = json(&record.json)?;
    let rides = json(&rides.json)?;
    doc["rides"] = rides.get("rides").cloned().unwrap_or_else(|| serde_json::json!([]));
    let mut resp = axum::Json(doc).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The pilot routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, correct))
        .routes(routes!(qualify))
        .routes(routes!(put_availability))
        .routes(routes!(suspend))
        .routes(routes!(reinstate))
        .routes(routes!(retire))
        .routes(routes!(erase))
        .routes(routes!(export))
}
