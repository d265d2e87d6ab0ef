//! Webhooks: an integrator registers a URL and the event types it wants; the signing
//! secret is shown once, at creation. An integrator sees and manages its own webhooks
//! (admin: all); deliveries and failures are listed per webhook. Targets on loopback,
//! private, link-local, cloud-metadata and other special addresses are refused.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Role;
use crate::caller::Caller;
use crate::extract::{Body, Ids, Params};
use crate::problem::{ApiError, Problem};
use crate::views::{Created, Page, PageParams};
use crate::webhooks::{DeliveryView, Hook, check_url, owner_of, resolve};

/// `POST /v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where to `POST` each feed item (`http://`; no private or loopback addresses).
    #[schema(pattern = "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$")]
    pub url: String,
    /// Event names from the domain (e.g. `RideBooked`); an empty list means every type.
    #[schema(max_items = 200)]
    pub event_types: Vec<String>,
}

/// A webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Id.
    pub webhook_id: String,
    /// Target.
    pub url: String,
    /// The event types it receives (empty: all).
    pub event_types: Vec<String>,
    /// `active`, or `disabled` after 24 h of failed deliveries.
    pub status: String,
    /// The chapter whose events it receives (absent: the whole network).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chapter_id: Option<String>,
    /// Created (RFC 3339, UTC).
    pub created_at: String,
    /// When it was disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<String>,
    /// Events not yet delivered.
    pub backlog: i64,
}

/// A webhook as created: with its signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// Id.
    pub webhook_id: String,
    /// Target.
    pub url: String,
    /// The event types it receives (empty: all).
    pub event_types: Vec<String>,
    /// `active`.
    pub status: String,
    /// The chapter whose events it receives (absent: the whole network).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chapter_id: Option<String>,
    /// Created (RFC 3339, UTC).
    pub created_at: String,
    /// The HMAC-SHA256 key of `Samskab-Signature`; never shown again.
    pub secret: String,
}

fn millis(t: i64) -> String {
    chrono::DateTime::from_timestamp_millis(t).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn view(h: Hook, backlog: i64) -> WebhookView {
    WebhookView {
        webhook_id: h.id.to_string(),
        url: h.url,
        event_types: h.event_types,
        status: h.status,
        chapter_id: h.chapter.map(|c| c.to_string()),
        created_at: millis(h.created_at),
        disabled_at: (h.disabled_at > 0).then(|| millis(h.disabled_at)),
        backlog,
    }
}

/// Integrators and admin manage webhooks; 403 for the others.
fn may_manage(caller: &Caller) -> Result<(), ApiError> {
    match caller.role() {
        Role::Admin | Role::Integrator(_) => Ok(()),
        _ => Err(ApiError::forbidden().detail("webhooks are for integrators")),
    }
}

/// A webhook the caller may see: its own, or any for admin (404 otherwise).
async fn visible(s: &AppState, caller: &Caller, id: Uuid) -> Result<Hook, ApiError> {
    let hook = s.webhooks.get(id).await?.ok_or_else(ApiError::not_found)?;
    match caller.role() {
        Role::Admin => Ok(hook),
        Role::Integrator(_) if hook.owner == owner_of(caller) => Ok(hook),
        _ => Err(ApiError::not_found()),
    }
}

fn uuid_cursor(c: Option<&str>) -> Result<String, ApiError> {
    match c {
        None | Some("") => Ok(String::new()),
        Some(c) => c
            .parse::<Uuid>()
            .map(|u| u.to_string())
            .map_err(|_| ApiError::invalid("/cursor", "not a cursor of this list")),
    }
}

/// Register a webhook (integrator, admin); the signing secret is in this answer only.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = CreatedWebhook),
        (status = 400, body = Problem, description = "Malformed (`malformed`, `validation`), or `/url` names a host that does not resolve or resolves to a private, loopback, link-local or otherwise non-public address (`validation`; checked when the request arrives, so it depends on DNS)"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem, description = "The caller has as many webhooks as an owner may (`limit-reached`; `SAMSKAB_WEBHOOKS_PER_OWNER`, 25 by default): delete one first"),
        (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Body(b): Body<NewWebhook>,
) -> Result<Created<CreatedWebhook>, ApiError> {
    may_manage(&caller)?;
    let url = check_url(&b.url).map_err(|why| ApiError::invalid("/url", why))?;
    if b.event_types.len() > 200 {
        return Err(ApiError::invalid("/event_types", "must list at most 200 types"));
    }
    for (i, t) in b.event_types.iter().enumerate() {
        if !crate::feed::event_types().any(|k| k == t) {
            return Err(ApiError::invalid(format!("/event_types/{i}"), "not an event type of the feed"));
        }
    }
    // Refused now when it resolves to a refused address (and again at every delivery).
    let addrs = resolve(&url, s.webhooks.config.allow_loopback).await.map_err(|why| ApiError::invalid("/url", why))?;
    if addrs.is_empty() {
        return Err(ApiError::invalid("/url", "the target's host does not resolve"));
    }
    let chapter = match caller.role() {
        Role::Integrator(Some(c)) => Some(c),
        _ => None,
    };
    let (h, secret) =
        s.webhooks.create(owner_of(&caller), caller.credential(), chapter, url.to_string(), b.event_types).await?;
    let v = CreatedWebhook {
        webhook_id: h.id.to_string(),
        url: h.url,
        event_types: h.event_types,
        status: h.status,
        chapter_id: h.chapter.map(|c| c.to_string()),
        created_at: millis(h.created_at),
        secret,
    };
    Ok(Created(format!("/v1/webhooks/{}", v.webhook_id), v, 1))
}

/// List the caller's webhooks (admin: all).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(PageParams),
    responses((status = 200, body = Page<WebhookView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Params(p): Params<PageParams>,
) -> Result<axum::Json<Page<WebhookView>>, ApiError> {
    let limit = p.limit()?;
    let after = uuid_cursor(p.cursor.as_deref())?;
    may_manage(&caller)?;
    let owner = (!matches!(caller.role(), Role::Admin)).then(|| owner_of(&caller));
    let hooks = s.webhooks.list(owner.as_deref(), &after, limit).await?;
    let next = if hooks.len() == limit as usize { hooks.last().map(|h| h.id.to_string()) } else { None };
    let mut items = Vec::with_capacity(hooks.len());
    for h in hooks {
        let backlog = s.webhooks.backlog(h.id).await?;
        items.push(view(h, backlog));
    }
    Ok(axum::Json(Page { items, next_cursor: next }))
}

/// Read a webhook (its integrator, admin).
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    let h = visible(&s, &caller, id).await?;
    let backlog = s.webhooks.backlog(id).await?;
    Ok(axum::Json(view(h, backlog)))
}

/// Delete a webhook (its integrator, admin): no more deliveries.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(State(s): State<AppState>, caller: Caller, Ids(id): Ids<Uuid>) -> Result<Response, ApiError> {
    let hook = visible(&s, &caller, id).await?;
    s.webhooks.delete(&hook).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A webhook's delivery attempts, oldest first (its integrator, admin).
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<DeliveryView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn deliveries(
    State(s): State<AppState>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Params(p): Params<PageParams>,
) -> Result<axum::Json<Page<DeliveryView>>, ApiError> {
    let limit = p.limit()?;
    let after = uuid_cursor(p.cursor.as_deref())?;
    visible(&s, &caller, id).await?;
    let items = s.webhooks.deliveries(id, &after, limit).await?;
    let next = if items.len() == limit as usize { items.last().map(|d| d.delivery_id.clone()) } else { None };
    Ok(axum::Json(Page { items, next_cursor: next }))
}

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create, list)).routes(routes!(get, delete)).routes(routes!(deliveries))
}
