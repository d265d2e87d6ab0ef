//! Residents: admission with consent, reading and listing a care home's, recording and
//! withdrawing consent, moving out, erasure and the access export (GDPR). Residents are
//! personal data: only their care home's coordinator and their chapter's admin (and admin)
//! may read them at all, and they are exactly the ones who see names and notes.

use access::Object;
use axum::extract::State;
use samskab_proto::booking::v1 as bpb;
use samskab_proto::carehome::v1 as cpb;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::clients::Found;
use crate::extract::{Body, Command, Ids, NoBody, Params};
use crate::problem::{ApiError, Problem};
use crate::routes::carehomes;
use crate::views::{Created, Page, PageParams, Versioned, opt};

/// Consent on record for a resident.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// `resident`, `relative` or `guardian`.
    #[schema(pattern = "^(resident|relative|guardian)$")]
    pub given_by: String,
    /// When it was given (RFC 3339).
    #[schema(format = DateTime)]
    pub given_at: String,
    /// What it covers: `rides`, `stories`.
    pub scope: Vec<String>,
}

impl From<Consent> for cpb::Consent {
    fn from(c: Consent) -> Self {
        cpb::Consent { given_by: c.given_by, given_at: c.given_at, scope: c.scope }
    }
}

/// `POST /v1/carehomes/{id}/residents`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewResident {
    /// The name the care home uses.
    #[schema(
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 200
    )]
    pub display_name: String,
    /// Care notes (mobility, language, what they love to see).
    #[serde(default)]
    pub notes: Option<String>,
    /// Consent to rides (and stories).
    pub consent: Consent,
}

/// `PATCH /v1/residents/{id}` (JSON merge patch): a field left out keeps its value; `null`
/// clears `notes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResidentPatch {
    /// The name the care home uses.
    #[serde(default)]
    #[schema(
        nullable = false,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$",
        max_length = 200
    )]
    pub display_name: Option<String>,
    /// Care notes; `null` clears them.
    #[serde(default)]
    #[schema(nullable)]
    pub notes: Option<String>,
}

impl crate::extract::Patchable for ResidentPatch {
    const CLEARABLE: &'static [&'static str] = &["notes"];
}

/// A resident.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResidentView {
    /// Id.
    pub resident_id: String,
    /// Care home.
    pub carehome_id: String,
    /// Chapter.
    pub chapter_id: String,
    /// Name (absent once erased).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Care notes (absent when none or erased).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Consent on record (absent when withdrawn).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<Consent>,
    /// `living_here`, `moved_out` or `erased`.
    pub status: String,
    /// Whether the personal data is erased.
    pub erased: bool,
}

fn view_of(r: cpb::Resident) -> ResidentView {
    let personal = |v: String| if r.erased { None } else { opt(v) };
    ResidentView {
        display_name: personal(r.display_name.clone()),
        notes: personal(r.notes.clone()),
        consent: r.consent.map(|c| Consent { given_by: c.given_by, given_at: c.given_at, scope: c.scope }),
        resident_id: r.resident_id,
        carehome_id: r.carehome_id,
        chapter_id: r.chapter_id,
        status: r.status,
        erased: r.erased,
    }
}

fn view(r: cpb::Resident) -> Versioned<ResidentView> {
    let version = r.version;
    Versioned(view_of(r), version)
}

/// Whether the caller may read (and run) the residents of `carehome` in `chapter`: its
/// coordinator, the chapter's admin, admin.
pub fn reads_residents(caller: &Caller, carehome: Uuid, chapter: Uuid) -> bool {
    caller.may_read(&Object::Resident { carehome, chapter })
}

/// Loads a resident the caller may read (404 otherwise: nobody else may know of them).
pub async fn visible(s: &AppState, caller: &Caller, id: Uuid) -> Result<cpb::Resident, ApiError> {
    let r = s.clients.carehome().get_resident(cpb::IdRequest { id: id.to_string() }).await.or_404()?;
    match (r.carehome_id.parse(), r.chapter_id.parse()) {
        (Ok(home), Ok(chapter)) if reads_residents(caller, home, chapter) => Ok(r),
        _ => Err(ApiError::not_found()),
    }
}

/// Loads a care home whose residents the caller may read (404 when it may not read the
/// care home, 403 when it may read it but not its residents).
async fn residents_of(s: &AppState, caller: &Caller, id: Uuid) -> Result<cpb::CareHome, ApiError> {
    let home = carehomes::visible(s, caller, id).await?;
    if !carehomes::chapter_of(&home).is_some_and(|c| reads_residents(caller, id, c)) {
        return Err(ApiError::forbidden());
    }
    Ok(home)
}

/// Admit a resident with consent (the care home's coordinator, its chapter's admin).
#[utoipa::path(post, path = "/v1/carehomes/{id}/residents", tag = "residents", request_body = NewResident,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The care home's ETag the change is based on")),
    responses((status = 201, body = ResidentView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<NewResident>,
) -> Result<Created<ResidentView>, ApiError> {
    let caller = &cmd.caller;
    let if_match = cmd.if_match;
    let home = residents_of(&s, caller, id).await?;
    carehomes::precondition(if_match, home.version)?;
    let r = s
        .clients
        .carehome()
        .admit_resident(cpb::AdmitResidentRequest {
            // `If-Match` is the care home's, checked above; the service writes a new stream.
            context: cmd.context_checked_here(),
            carehome_id: id.to_string(),
            display_name: b.display_name,
            notes: b.notes.unwrap_or_default(),
            consent: Some(b.consent.into()),
        })
        .await?
        .into_inner();
    let Versioned(v, version) = view(r);
    Ok(Created(format!("/v1/residents/{}", v.resident_id), v, version))
}

/// List a care home's residents (its coordinator, its chapter's admin).
#[utoipa::path(get, path = "/v1/carehomes/{id}/residents", tag = "residents",
    params(("id" = Uuid, Path),
        ("limit" = Option<u32>, Query, description = "Items per page, 1 to 500 (default 50)", minimum = 1, maximum = 500),
        ("cursor" = Option<String>, Query, description = "Where to continue", pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses((status = 200, body = Page<ResidentView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Params(p): Params<PageParams>,
) -> Result<axum::Json<Page<ResidentView>>, ApiError> {
    let limit = p.limit()?;
    residents_of(&s, &caller, id).await?;
    let page = s
        .clients
        .carehome()
        .list_residents(cpb::ListRequest { parent_id: id.to_string(), limit, cursor: p.cursor.unwrap_or_default() })
        .await?
        .into_inner();
    Ok(axum::Json(Page::new(page.residents.into_iter().map(view_of).collect(), page.next_cursor)))
}

/// Read a resident (their care home's coordinator, their chapter's admin).
#[utoipa::path(get, path = "/v1/residents/{id}", tag = "residents", params(("id" = Uuid, Path)),
    responses((status = 200, body = ResidentView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Result<Versioned<ResidentView>, ApiError> {
    Ok(view(visible(&s, &caller, id).await?))
}

/// Correct a resident's name or care notes (their care home's coordinator, their chapter's
/// admin): a JSON merge patch with `If-Match`. The old values stay sealed under the
/// resident's key, so erasure reaches them; the audit names the changed fields only.
#[utoipa::path(patch, path = "/v1/residents/{id}", tag = "residents",
    request_body(content = ResidentPatch, content_type = "application/merge-patch+json"),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = String, Header, description = "The resident's ETag (428 without)")),
    responses((status = 200, body = ResidentView), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 415, description = "Not `application/merge-patch+json` (`unsupported-media-type`)", body = Problem),
        (status = 428, description = "No `If-Match` (`precondition-required`)", body = Problem)),
    security(("bearer" = [])))]
pub async fn correct(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    patch: crate::extract::MergePatch<ResidentPatch>,
) -> Result<Versioned<ResidentView>, ApiError> {
    visible(&s, &cmd.caller, id).await?;
    cmd.require_if_match()?;
    let notes = if patch.clears("notes") { Some(String::new()) } else { patch.patch.notes.clone() };
    let r = s
        .clients
        .carehome()
        .correct_resident(cpb::CorrectResidentRequest {
            context: cmd.context(),
            resident_id: id.to_string(),
            display_name: patch.patch.display_name.clone(),
            notes,
        })
        .await?
        .into_inner();
    Ok(view(r))
}

/// Record (replace) a resident's consent; the body is the consent itself.
#[utoipa::path(post, path = "/v1/residents/{id}/consent", tag = "residents", request_body = Consent,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 200, body = ResidentView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn record_consent(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    Body(b): Body<Consent>,
) -> Result<Versioned<ResidentView>, ApiError> {
    let caller = &cmd.caller;
    visible(&s, caller, id).await?;
    let r = s
        .clients
        .carehome()
        .record_consent(cpb::RecordConsentRequest {
            context: cmd.context(),
            resident_id: id.to_string(),
            consent: Some(b.into()),
        })
        .await?
        .into_inner();
    Ok(view(r))
}

/// A command on a resident that takes no body.
#[derive(Clone, Copy)]
enum Bodiless {
    WithdrawConsent,
    MoveOut,
    Erase,
}

/// Runs a bodiless command on a resident the caller may read.
async fn command(s: &AppState, cmd: &Command, id: Uuid, what: Bodiless) -> Result<Versioned<ResidentView>, ApiError> {
    visible(s, &cmd.caller, id).await?;
    send(s, cmd, id, what).await
}

/// Sends a bodiless command on a resident whose visibility the caller has checked.
async fn send(s: &AppState, cmd: &Command, id: Uuid, what: Bodiless) -> Result<Versioned<ResidentView>, ApiError> {
    let request = cpb::ResidentCommandRequest { context: cmd.context(), resident_id: id.to_string() };
    let mut client = s.clients.carehome();
    let r = match what {
        Bodiless::WithdrawConsent => client.withdraw_consent(request).await?,
        Bodiless::MoveOut => client.move_out_resident(request).await?,
        Bodiless::Erase => client.erase_resident(request).await?,
    };
    Ok(view(r.into_inner()))
}

/// Withdraw a resident's consent, removing them from future rosters.
#[utoipa::path(delete, path = "/v1/residents/{id}/consent", tag = "residents",
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 200, body = ResidentView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn withdraw_consent(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
) -> Result<Versioned<ResidentView>, ApiError> {
    command(&s, &cmd, id, Bodiless::WithdrawConsent).await
}

/// Record that a resident moved out, removing them from future rosters.
#[utoipa::path(post, path = "/v1/residents/{id}/move-out", tag = "residents",
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 200, body = ResidentView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn move_out(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    _: NoBody,
) -> Result<Versioned<ResidentView>, ApiError> {
    command(&s, &cmd, id, Bodiless::MoveOut).await
}

/// Erase a resident's personal data: the key is deleted before the answer (200, the
/// erased resident), so no later read shows it.
#[utoipa::path(post, path = "/v1/residents/{id}/erasure", tag = "residents",
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 200, body = ResidentView), (status = 400, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn erase(
    State(s): State<AppState>,
    cmd: Command,
    Ids(id): Ids<Uuid>,
    _: NoBody,
) -> Result<Versioned<ResidentView>, ApiError> {
    // Booking forgets every ride the resident was ever on (and the requests naming them)
    // first; idempotent, so a retry after a failure here or below completes the erasure.
    // Both are done before the answer.
    let resident = visible(&s, &cmd.caller, id).await?;
    crate::routes::carehomes::precondition(cmd.if_match, resident.version)?;
    let forget = bpb::ForgetPersonRequest { resident_id: id.to_string(), pilot_id: String::new() };
    s.clients.booking().forget_person(forget).await?;
    let erased = send(&s, &cmd, id, Bodiless::Erase).await?;
    // Kept idempotent answers that named the resident (its admission, rides it was
    // booked on) go too: a replay never shows the erased name.
    s.idempotency.forget_subject(id).await?;
    Ok(erased)
}

/// Everything held about a resident, decrypted (GDPR access): the care-home service's
/// record and events, and under `rides` what booking holds (rides and ride requests).
#[utoipa::path(get, path = "/v1/residents/{id}/export", tag = "residents", params(("id" = Uuid, Path)),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn export(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Result<axum::Json<Value>, ApiError> {
    visible(&s, &caller, id).await?;
    let held = s.clients.carehome().export_resident(cpb::IdRequest { id: id.to_string() }).await?.into_inner();
    let rides = s
        .clients
        .booking()
        .export_rides(bpb::ExportRidesRequest { resident_id: id.to_string(), pilot_id: String::new() })
        .await?
        .into_inner();
    let mut doc = match serde_json::from_str::<Value>(&held.json) {
        Ok(Value::Object(m)) => m,
        Ok(other) => serde_json::Map::from_iter([("resident".to_owned(), other)]),
        Err(_) => return Err(ApiError::new(servicekit::ErrorCode::Internal).detail("the care-home export is not JSON")),
    };
    let rides = serde_json::from_str::<Value>(&rides.json)
        .map_err(|_| ApiError::new(servicekit::ErrorCode::Internal).detail("the booking export is not JSON"))?;
    doc.insert("rides".to_owned(), rides);
    Ok(axum::Json(Value::Object(doc)))
}

/// The resident routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, correct))
        .routes(routes!(record_consent, withdraw_consent))
        .routes(routes!(move_out))
        .routes(routes!(erase))
        .routes(routes!(export))
}
