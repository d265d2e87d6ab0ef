//! Web Push subscriptions, kept by the notify service: the VAPID public key a browser
//! subscribes with (`GET /v1/push/vapid-public-key`, no sign-in: it is public), and a
//! person's subscriptions (`/v1/me/push-subscriptions`: anyone signed in with a role grant;
//! an API key is no person, 403). Notify checks the endpoint (https, a public address, as
//! webhook URLs are checked) and the keys, and keeps at most ten a person.

use axum::extract::State;
use axum::http::StatusCode;
use samskab_proto::notify::v1 as npb;
use serde::{Deserialize, Serialize};
use servicekit::ErrorCode;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::caller::Person;
use crate::clients::Found;
use crate::extract::{Body, Ids, NoBody};
use crate::problem::{ApiError, Problem};
use crate::routes::preferences::Granted;

/// The application server's key.
#[derive(Debug, Serialize, ToSchema)]
pub struct VapidPublicKey {
    /// P-256 public key, uncompressed, base64url without padding: a browser's
    /// `applicationServerKey` for `pushManager.subscribe`.
    #[schema(pattern = "^[A-Za-z0-9_-]{87}$")]
    pub key: String,
}

/// The key Samskab signs its pushes with (VAPID, RFC 8292). No sign-in: it is public.
#[utoipa::path(get, path = "/v1/push/vapid-public-key", tag = "notifications",
    responses((status = 200, body = VapidPublicKey),
        (status = 503, description = "The notify service is not configured or not reachable", body = Problem)),
    security(()))]
pub async fn vapid_public_key(State(s): State<AppState>) -> Result<axum::Json<VapidPublicKey>, ApiError> {
    let key = s.clients.notify()?.vapid_public_key(npb::VapidPublicKeyRequest {}).await.reply()?.key;
    Ok(axum::Json(VapidPublicKey { key }))
}

/// A browser's keys (`PushSubscription.toJSON().keys`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushKeys {
    /// The browser's P-256 public key, base64url (65 bytes).
    #[schema(min_length = 86, max_length = 88)]
    pub p256dh: String,
    /// Its auth secret, base64url (16 bytes).
    #[schema(min_length = 22, max_length = 24)]
    pub auth: String,
}

/// `POST /v1/me/push-subscriptions`: a browser's `PushSubscription.toJSON()` (its
/// `expirationTime`, if sent, is ignored).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPushSubscription {
    /// The push service's URL for this browser: https, at a public address.
    #[schema(max_length = 2000)]
    pub endpoint: String,
    /// The browser's keys.
    pub keys: PushKeys,
    /// Ignored.
    #[serde(default, rename = "expirationTime")]
    #[schema(value_type = Option<i64>, nullable)]
    pub expiration_time: Option<serde_json::Value>,
}

/// A push subscription (its keys are never shown).
#[derive(Debug, Serialize, ToSchema)]
pub struct PushSubscriptionView {
    /// Its id.
    pub push_subscription_id: Uuid,
    /// The push service's URL for the browser.
    pub endpoint: String,
    /// When it was added.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The person's subscriptions.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushSubscriptionList {
    /// Oldest first (at most ten).
    pub items: Vec<PushSubscriptionView>,
}

fn view(s: npb::PushSubscription) -> Result<PushSubscriptionView, ApiError> {
    let bad = || ApiError::new(ErrorCode::Unavailable).detail("notify answered a malformed subscription");
    Ok(PushSubscriptionView {
        push_subscription_id: s.push_subscription_id.parse().map_err(|_| bad())?,
        endpoint: s.endpoint,
        created_at: s.created_at.as_ref().and_then(samskab_proto::time::from_proto).ok_or_else(bad)?,
    })
}

/// Adds the browser's subscription: 201, or 200 with the same subscription when this
/// endpoint is subscribed already (anyone signed in with a grant).
#[utoipa::path(post, path = "/v1/me/push-subscriptions", tag = "notifications", request_body = NewPushSubscription,
    responses((status = 201, body = PushSubscriptionView),
        (status = 200, description = "The endpoint was subscribed already", body = PushSubscriptionView),
        (status = 400, description = "`validation`: `/endpoint` (not https, or not a public address), `/keys/p256dh`, `/keys/auth`", body = Problem),
        (status = 401, body = Problem),
        (status = 403, description = "No role grant (or an API key, an integrator)", body = Problem),
        (status = 404, description = "The person was erased", body = Problem),
        (status = 422, description = "`limit-reached`: ten subscriptions already; delete one first", body = Problem),
        (status = 503, description = "The notify service is not configured or not reachable", body = Problem)),
    security(("bearer" = [])))]
pub async fn add(
    State(s): State<AppState>,
    person: Person,
    Body(b): Body<NewPushSubscription>,
) -> Result<(StatusCode, axum::Json<PushSubscriptionView>), ApiError> {
    let who = Granted::of(person)?;
    if b.endpoint.len() > 2000 {
        return Err(ApiError::invalid("/endpoint", "must be at most 2000 characters"));
    }
    let req = npb::AddPushSubscriptionRequest {
        recipient: who.recipient(),
        endpoint: b.endpoint,
        p256dh: b.keys.p256dh,
        auth: b.keys.auth,
    };
    let answer = s.clients.notify()?.add_push_subscription(req).await.reply()?;
    let status = if answer.created { StatusCode::CREATED } else { StatusCode::OK };
    let sub = answer
        .subscription
        .ok_or_else(|| ApiError::new(ErrorCode::Unavailable).detail("notify answered no subscription"))?;
    Ok((status, axum::Json(view(sub)?)))
}

/// The signed-in person's push subscriptions (anyone signed in with a grant).
#[utoipa::path(get, path = "/v1/me/push-subscriptions", tag = "notifications",
    responses((status = 200, body = PushSubscriptionList), (status = 401, body = Problem),
        (status = 403, description = "No role grant (or an API key, an integrator)", body = Problem),
        (status = 503, description = "The notify service is not configured or not reachable", body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<AppState>, person: Person) -> Result<axum::Json<PushSubscriptionList>, ApiError> {
    let who = Granted::of(person)?;
    let req = npb::ListPushSubscriptionsRequest { recipient: who.recipient() };
    let answer = s.clients.notify()?.list_push_subscriptions(req).await.reply()?;
    let items = answer.subscriptions.into_iter().map(view).collect::<Result<_, _>>()?;
    Ok(axum::Json(PushSubscriptionList { items }))
}

/// Deletes one of the signed-in person's push subscriptions (anyone signed in with a
/// grant; another person's is 404).
#[utoipa::path(delete, path = "/v1/me/push-subscriptions/{id}", tag = "notifications", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, description = "No role grant (or an API key, an integrator)", body = Problem),
        (status = 404, description = "No such subscription of this person", body = Problem),
        (status = 503, description = "The notify service is not configured or not reachable", body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(s): State<AppState>,
    person: Person,
    Ids(id): Ids<Uuid>,
    _: NoBody,
) -> Result<StatusCode, ApiError> {
    let who = Granted::of(person)?;
    let req = npb::DeletePushSubscriptionRequest { recipient: who.recipient(), push_subscription_id: id.to_string() };
    s.clients.notify()?.delete_push_subscription(req).await.reply()?;
    Ok(StatusCode::NO_CONTENT)
}

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(vapid_public_key)).routes(routes!(add, list)).routes(routes!(delete))
}
