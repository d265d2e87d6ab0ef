//! The event feed for integrators (and admin): the three services' logs merged, paged by
//! an opaque cursor that is never null, and the same as server-sent events resumable with
//! `Last-Event-ID`. A chapter integrator sees its chapter's events only.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{FutureExt, Stream};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Role;
use crate::caller::Caller;
use crate::extract::Params;
use crate::feed::{FeedCursor, FeedItem};
use crate::problem::{ApiError, Problem};
use crate::views::PageParams;

/// A page of the feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPage {
    /// The events, in order per stream and per service.
    pub items: Vec<FeedItem>,
    /// Where to continue; never null (at the end it is where to poll next).
    pub next_cursor: String,
}

/// `?cursor=&limit=` of the feed.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Where to continue (absent: from the beginning).
    #[param(
        pattern = r"^b\.c1\.[0-9a-f]{1,15}\.[0-9a-f]{1,15}~c\.c1\.[0-9a-f]{1,15}\.[0-9a-f]{1,15}~v\.c1\.[0-9a-f]{1,15}\.[0-9a-f]{1,15}$"
    )]
    pub cursor: Option<String>,
}

/// The chapter whose events the caller may read (`Ok(None)`: all); 403 for roles that may
/// not read the feed.
pub fn tenant_of(caller: &Caller) -> Result<Option<Uuid>, ApiError> {
    match caller.role() {
        Role::Admin | Role::Integrator(None) => Ok(None),
        Role::Integrator(Some(c)) => Ok(Some(c)),
        _ => Err(ApiError::forbidden().detail("the event feed is for integrators")),
    }
}

fn cursor_of(text: Option<&str>, field: &str) -> Result<FeedCursor, ApiError> {
    match text {
        None | Some("") => Ok(FeedCursor::default()),
        Some(t) => FeedCursor::parse(t, field),
    }
}

/// Read the event feed (integrator, admin).
#[utoipa::path(get, path = "/v1/events", tag = "events", params(FeedParams),
    responses((status = 200, body = FeedPage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Params(p): Params<FeedParams>,
) -> Result<axum::Json<FeedPage>, ApiError> {
    let tenant = tenant_of(&caller)?;
    let limit = PageParams { limit: p.limit, cursor: None }.limit()?;
    let after = cursor_of(p.cursor.as_deref(), "/cursor")?;
    let (items, next) = s.feed.read(&after, limit, tenant).await?;
    Ok(axum::Json(FeedPage { items, next_cursor: next.to_string() }))
}

/// `?cursor=` of the stream (`Last-Event-ID` wins when both are given).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Where to start (absent: from the beginning).
    #[param(
        pattern = r"^b\.c1\.[0-9a-f]{1,15}\.[0-9a-f]{1,15}~c\.c1\.[0-9a-f]{1,15}\.[0-9a-f]{1,15}~v\.c1\.[0-9a-f]{1,15}\.[0-9a-f]{1,15}$"
    )]
    pub cursor: Option<String>,
    /// Close the stream after this many seconds (1 to 86400; absent or longer: after the
    /// gateway's own limit, an hour by default), for clients and proxies that prefer to
    /// reconnect with `Last-Event-ID` now and then.
    #[param(minimum = 1, maximum = 86400)]
    pub max_seconds: Option<u32>,
}

/// One server-sent event of the stream, as an SSE parser reads it.
#[derive(Debug, ToSchema)]
pub struct StreamEvent {
    /// The item's cursor (resume with it as `Last-Event-ID`).
    pub id: String,
    /// The SSE event type (always the default, `message`).
    pub event: Option<String>,
    /// One feed item as JSON (the shape of an item of `GET /v1/events`).
    pub data: String,
}

/// Follow the event feed as server-sent events (integrator, admin); `id:` is the cursor.
#[utoipa::path(get, path = "/v1/events/stream", tag = "events",
    params(StreamParams, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (empty: as if absent)")),
    responses((status = 200, description = "`text/event-stream`: each event's `data` is a feed item, its `id` the item's cursor", content_type = "text/event-stream", body = StreamEvent),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 429, body = Problem, description = "`rate-limited`: the caller, or the gateway, holds as many open streams as it may")),
    security(("bearer" = [])))]
pub async fn stream(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Params(p): Params<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let tenant = tenant_of(&caller)?;
    // The client's limit, at most the gateway's (`SAMSKAB_STREAM_MAX_SECONDS`): a stream
    // ends by itself and its client reconnects with `Last-Event-ID`.
    let most = s.stream_max_seconds.max(1);
    let seconds = match p.max_seconds {
        None => most,
        Some(n) if (1..=86_400).contains(&n) => u64::from(n).min(most),
        Some(_) => return Err(ApiError::invalid("/max_seconds", "must be between 1 and 86400")),
    };
    let until = Some(tokio::time::Instant::now() + Duration::from_secs(seconds));
    // An empty `Last-Event-ID` is what an SSE client sends before it has seen an id: none.
    let last = headers.get("last-event-id").map(|v| v.to_str().unwrap_or("\u{0}")).filter(|l| !l.is_empty());
    let after = match last {
        Some(l) => cursor_of(Some(l), "/Last-Event-ID")?,
        None => cursor_of(p.cursor.as_deref(), "/cursor")?,
    };
    // A place among the open streams (429 beyond the caller's or the gateway's limit),
    // held until the stream ends or its client goes away.
    let slot = s.streams.admit(&caller.rate_key())?;
    let changes = s.streams.changes();
    let state = (s, after, VecDeque::<FeedItem>::new(), changes, slot);
    let events = futures_util::stream::unfold(state, move |(s, mut at, mut buf, mut changes, slot)| async move {
        loop {
            if let Some(item) = buf.pop_front() {
                let data = serde_json::to_string(&item).unwrap_or_default();
                let event = Event::default().id(item.cursor).data(data);
                return Some((Ok(event), (s, at, buf, changes, slot)));
            }
            let over = until.is_some_and(|u| tokio::time::Instant::now() >= u);
            if over || s.stop.stopped().now_or_never().is_some() {
                return None;
            }
            // Moves of the feed's end from here on wake this stream.
            changes.borrow_and_update();
            let pause = match s.feed.read(&at, 100, tenant).await {
                Ok((items, next)) => {
                    at = next;
                    buf.extend(items);
                    None
                }
                // A service is unavailable: try again shortly.
                Err(_) => Some(Duration::from_secs(1)),
            };
            if buf.is_empty() {
                // Caught up: wait for the shared poller to see the end move, not polling on
                // our own (a minute at most: a safety net, should a wake-up be missed).
                if pause.is_none() {
                    s.streams.caught_up(&at, &s.stop);
                }
                let pause = pause.unwrap_or(Duration::from_secs(60));
                let pause =
                    until.map_or(pause, |u| pause.min(u.saturating_duration_since(tokio::time::Instant::now())));
                tokio::select! {
                    _ = s.stop.stopped() => return None,
                    _ = changes.changed() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("keep-alive")))
}

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(stream))
}
