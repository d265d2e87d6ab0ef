//! Integrators' API keys (`api.md` → *People and access*): issued by a chapter admin for
//! its chapter or by an admin for the network, shown once, kept by the care-home service as
//! a hash; a key acts only as `integrator` of its scope.

use axum::extract::State;
use samskab_proto::common::v1 as common;
use serde::{Deserialize, Serialize};
use servicekit::ErrorCode;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::clients::{Found, Service};
use crate::extract::{Body, Command, Ids, NoBody, Params};
use crate::problem::{ApiError, Problem};
use crate::routes::people::administers;
use crate::views::{Created, Versioned, time};

/// `POST /v1/api-keys`: a chapter's key or the network's.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// What it is for (an integration's name; not a person's).
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The chapter it reads (a chapter admin's key).
    pub chapter_id: Option<Uuid>,
    /// `true`: the whole network (an admin's key).
    pub network: Option<bool>,
    /// When it stops working (RFC 3339), if ever.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// An API key (never the key, except in the answer that issued it).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// Id.
    pub api_key_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its chapter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chapter_id: Option<Uuid>,
    /// Whether it reads the whole network.
    pub network: bool,
    /// `active`, `revoked` or `expired`.
    pub status: String,
    /// When it was issued.
    pub issued_at: Option<String>,
    /// When it expires.
    pub expires_at: Option<String>,
    /// When it was last used (to the minute).
    pub last_used_at: Option<String>,
    /// Who issued it (a person id).
    pub issued_by: String,
    /// The key (`sk_...`), shown once: in the answer that issued it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

fn view(k: common::ApiKey, key: Option<String>) -> Versioned<ApiKeyView> {
    let version = k.version;
    Versioned(
        ApiKeyView {
            api_key_id: k.api_key_id.parse().unwrap_or_default(),
            name: k.name,
            chapter_id: k.chapter_id.parse().ok(),
            network: k.network,
            status: k.status,
            issued_at: time(&k.issued_at),
            expires_at: time(&k.expires_at),
            last_used_at: time(&k.last_used_at),
            issued_by: k.issued_by,
            key,
        },
        version,
    )
}

/// Issue an API key: 201 with `key`, shown this once.
#[utoipa::path(post, path = "/v1/api-keys", tag = "people", request_body = NewApiKey,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = ApiKeyView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    cmd: Command,
    Body(b): Body<NewApiKey>,
) -> Result<Created<ApiKeyView>, ApiError> {
    let network = b.network.unwrap_or(false);
    match (network, b.chapter_id) {
        (true, Some(_)) => return Err(ApiError::invalid("/chapter_id", "a network key names no chapter")),
        (false, None) => return Err(ApiError::invalid("/chapter_id", "name the chapter, or network: true")),
        _ => {}
    }
    if b.name.trim().is_empty() {
        return Err(ApiError::invalid("/name", "must not be blank"));
    }
    if b.expires_at.is_some_and(|e| e <= chrono::Utc::now()) {
        return Err(ApiError::invalid("/expires_at", "must be in the future"));
    }
    administers(&s, &cmd.caller, b.chapter_id).await?;
    let issued = s
        .clients
        .access(Service::CareHome)
        .issue_api_key(common::IssueApiKeyRequest {
            context: cmd.context(),
            name: b.name,
            chapter_id: b.chapter_id.map(|c| c.to_string()).unwrap_or_default(),
            network,
            expires_at: b.expires_at.map(samskab_proto::time::to_proto),
        })
        .await
        .reply()?;
    let k = issued.api_key.ok_or_else(|| ApiError::new(ErrorCode::Internal))?;
    let Versioned(v, version) = view(k, Some(issued.key));
    Ok(Created(format!("/v1/api-keys/{}", v.api_key_id), v, version))
}

async fn managed(s: &AppState, caller: &Caller, key: Uuid) -> Result<common::ApiKey, ApiError> {
    let req = common::ApiKeyRequest { context: None, api_key_id: key.to_string() };
    let k = s.clients.access(Service::CareHome).get_api_key(req).await.or_404()?;
    let chapter = if k.network { None } else { k.chapter_id.parse().ok() };
    crate::routes::people::administers_or_404(caller, chapter)?;
    Ok(k)
}

/// Read an API key (never the key itself).
#[utoipa::path(get, path = "/v1/api-keys/{id}", tag = "people", params(("id" = Uuid, Path)),
    responses((status = 200, body = ApiKeyView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Ids(key): Ids<Uuid>,
) -> Result<Versioned<ApiKeyView>, ApiError> {
    Ok(view(managed(&s, &caller, key).await?, None))
}

/// Revoke an API key: refused within 2 s on every replica.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "people", params(("id" = Uuid, Path)),
    responses((status = 200, body = ApiKeyView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(s): State<AppState>,
    cmd: Command,
    Ids(key): Ids<Uuid>,
    _: NoBody,
) -> Result<Versioned<ApiKeyView>, ApiError> {
    managed(&s, &cmd.caller, key).await?;
    let req = common::ApiKeyRequest { context: cmd.context(), api_key_id: key.to_string() };
    Ok(view(s.clients.access(Service::CareHome).revoke_api_key(req).await.reply()?, None))
}

/// `?chapter_id=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct KeysQuery {
    /// The chapter (omitted: the caller's chapter; for admin, the network's keys).
    pub chapter_id: Option<Uuid>,
}

/// A list of API keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// The keys, in id order.
    pub items: Vec<ApiKeyView>,
    /// Always null: one page.
    pub next_cursor: Option<String>,
}

/// API keys of a chapter (its chapter admin, admin) or, for admin without `chapter_id`,
/// the network's.
#[utoipa::path(get, path = "/v1/api-keys", tag = "people", params(KeysQuery),
    responses((status = 200, body = ApiKeyList), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<KeysQuery>,
) -> Result<axum::Json<ApiKeyList>, ApiError> {
    let chapter = q.chapter_id.or(match caller.role() {
        access::Role::ChapterAdmin(c) => Some(c),
        _ => None,
    });
    administers(&s, &caller, chapter).await?;
    let req = common::ListApiKeysRequest {
        chapter_id: chapter.map(|c| c.to_string()).unwrap_or_default(),
        network: chapter.is_none(),
    };
    let keys = s.clients.access(Service::CareHome).list_api_keys(req).await.reply()?;
    Ok(axum::Json(ApiKeyList {
        items: keys.api_keys.into_iter().map(|k| view(k, None).0).collect(),
        next_cursor: None,
    }))
}

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create, list)).routes(routes!(get, revoke))
}
