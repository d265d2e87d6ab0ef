//! The signed-in person's inbox (`/v1/me/notifications`), kept by the notify service: the
//! notices addressed to the person and to every pilot record they act as (a pilot grant,
//! or a development token's pilot claim), newest first.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use samskab_proto::notify::v1 as npb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Role;
use crate::caller::Person;
use crate::clients::Found;
use crate::extract::{Ids, NoBody, Params};
use crate::problem::{ApiError, Problem};
use crate::views::{Page, PageParams};

/// `?cursor=&unread=&limit=` of the inbox.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InboxParams {
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Where to continue (the previous page's `next_cursor`).
    #[param(pattern = r"^[0-9]{1,19}\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub cursor: Option<String>,
    /// Only notices not yet read.
    pub unread: Option<bool>,
}

/// What a notification is about.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationLinks {
    /// The ride.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ride_id: Option<Uuid>,
    /// The ride request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ride_request_id: Option<Uuid>,
}

/// A notification in the inbox, in the reader's language (until a person chooses one:
/// Danish for rides in the `Europe/Copenhagen` zone, else English).
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    /// Id.
    pub notification_id: Uuid,
    /// Its kind (`ride.reminder`, `ride.cancelled`, ...; docs/notifications.md).
    pub kind: String,
    /// When it was decided (RFC 3339, UTC).
    pub created_at: String,
    /// When it was first read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
    /// Title.
    pub title: String,
    /// Text (riders as a count; no resident is named).
    pub body: String,
    /// What it is about.
    pub links: NotificationLinks,
}

fn rfc3339(t: &Option<prost_types::Timestamp>) -> Option<String> {
    t.as_ref().and_then(samskab_proto::time::from_proto).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn view(n: npb::Notice) -> NotificationView {
    NotificationView {
        notification_id: n.notice_id.parse().unwrap_or_default(),
        kind: n.kind,
        created_at: rfc3339(&n.created_at).unwrap_or_default(),
        read_at: rfc3339(&n.read_at),
        title: n.title,
        body: n.body,
        links: NotificationLinks { ride_id: n.ride_id.parse().ok(), ride_request_id: n.ride_request_id.parse().ok() },
    }
}

/// Whose notices the person reads: their own and those of each pilot record they act as.
pub(crate) fn recipients(person: &Person) -> Vec<String> {
    let mut to = vec![format!("person:{}", person.person_id)];
    let roles = person.claimed.into_iter().chain(person.grants.iter().filter_map(Person::role_of));
    for role in roles {
        if let Role::Pilot(p) = role {
            let r = format!("pilot:{p}");
            if !to.contains(&r) && to.len() < 16 {
                to.push(r);
            }
        }
    }
    to
}

/// The signed-in person's notifications, newest first (anyone signed in).
#[utoipa::path(get, path = "/v1/me/notifications", tag = "notifications", params(InboxParams),
    responses((status = 200, body = Page<NotificationView>), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 503, description = "The notify service is not configured or not reachable", body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    person: Person,
    Params(p): Params<InboxParams>,
) -> Result<axum::Json<Page<NotificationView>>, ApiError> {
    let limit = PageParams { limit: p.limit, cursor: None }.limit()?;
    let req = npb::ListNoticesRequest {
        recipients: recipients(&person),
        cursor: p.cursor.unwrap_or_default(),
        limit,
        unread_only: p.unread.unwrap_or(false),
        ..Default::default()
    };
    let page = s.clients.notify()?.list_notices(req).await.reply()?;
    Ok(axum::Json(Page::new(page.notices.into_iter().map(view).collect(), page.next_cursor)))
}

/// Marks one of the person's notifications read; the first reading's time stays.
#[utoipa::path(post, path = "/v1/me/notifications/{id}/read", tag = "notifications", params(("id" = Uuid, Path)),
    responses((status = 200, body = NotificationView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, description = "No such notification of this person", body = Problem),
        (status = 503, description = "The notify service is not configured or not reachable", body = Problem)),
    security(("bearer" = [])))]
pub async fn read(
    State(s): State<AppState>,
    person: Person,
    Ids(id): Ids<Uuid>,
    _: NoBody,
) -> Result<axum::Json<NotificationView>, ApiError> {
    let req = npb::MarkNoticeReadRequest {
        recipients: recipients(&person),
        notice_id: id.to_string(),
        language: String::new(),
    };
    let notice = s.clients.notify()?.mark_notice_read(req).await.or_404()?;
    Ok(axum::Json(view(notice)))
}

/// `?max_seconds=` of the inbox's stream.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InboxStreamParams {
    /// Close the stream after this many seconds (1 to 86400; absent or longer: after the
    /// gateway's own limit, an hour by default); the client reconnects with `Last-Event-ID`.
    #[param(minimum = 1, maximum = 86400)]
    pub max_seconds: Option<u32>,
}

/// The inbox stream's header (documentation: the handler reads it from the headers).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct InboxStreamHeaders {
    /// Resume after this notification: an `id:` this stream sent (empty: as if absent).
    // (Its schema is written by `openapi::header_schema`, as every header's.)
    #[param(rename = "Last-Event-ID")]
    pub last_event_id: Option<String>,
}

/// The `id:` of a notification in the inbox's stream: `inbox.<n>`, n the order the inbox
/// received it in.
fn stream_id(seq: u64) -> String {
    format!("inbox.{seq}")
}

/// One server-sent event of the inbox's stream, as an SSE parser reads it.
#[derive(Debug, ToSchema)]
pub struct InboxStreamEvent {
    /// `inbox.<n>`, n the order the inbox received the notification in (resume with it as
    /// `Last-Event-ID`).
    pub id: String,
    /// The SSE event type (always the default, `message`).
    pub event: Option<String>,
    /// One notification as JSON (the shape of an item of `GET /v1/me/notifications`).
    pub data: String,
}

/// How often an open inbox stream asks notify for what arrived.
const STREAM_POLL: Duration = Duration::from_secs(1);

/// Follow one's inbox as server-sent events (anyone signed in): each notification as it
/// arrives; `id:` resumes with `Last-Event-ID` (absent: from now on).
#[utoipa::path(get, path = "/v1/me/notifications/stream", tag = "notifications",
    params(InboxStreamParams, InboxStreamHeaders),
    responses((status = 200, description = "`text/event-stream`: each event's `data` is a notification, its `id` the order the inbox received it in", content_type = "text/event-stream", body = InboxStreamEvent),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 429, body = Problem, description = "`rate-limited`: the caller, or the gateway, holds as many open streams as it may"),
        (status = 503, description = "The notify service is not configured or not reachable", body = Problem)),
    security(("bearer" = [])))]
pub async fn stream(
    State(s): State<AppState>,
    person: Person,
    headers: HeaderMap,
    Params(p): Params<InboxStreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let most = s.stream_max_seconds.max(1);
    let seconds = match p.max_seconds {
        None => most,
        Some(n) if (1..=86_400).contains(&n) => u64::from(n).min(most),
        Some(_) => return Err(ApiError::invalid("/max_seconds", "must be between 1 and 86400")),
    };
    let until = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let who = recipients(&person);
    let notify = s.clients.notify()?;
    let last = headers.get("last-event-id").map(|v| v.to_str().unwrap_or("\u{0}")).filter(|l| !l.is_empty());
    let after: u64 = match last {
        Some(l) => l
            .strip_prefix("inbox.")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| ApiError::invalid("/Last-Event-ID", "must be an id of this stream"))?,
        // From now on: after the last notification the inbox received (the highest
        // number, which is not always the newest by time: a reminder decided late).
        None => {
            let head = npb::ListNoticesRequest { recipients: who.clone(), limit: 1, ..Default::default() };
            notify.clone().list_notices(head).await.reply()?.head_seq
        }
    };
    // A place among the open streams (the event feed's limits; 429 beyond them).
    let slot = s.streams.admit(&format!("person:{}", person.person_id))?;
    let state = (s, notify, after, std::collections::VecDeque::<npb::Notice>::new(), slot);
    let events = futures_util::stream::unfold(state, move |(s, notify, mut after, mut buf, slot)| {
        let who = who.clone();
        async move {
            loop {
                if let Some(n) = buf.pop_front() {
                    let id = stream_id(n.seq);
                    let data = serde_json::to_string(&view(n)).unwrap_or_default();
                    return Some((Ok(Event::default().id(id).data(data)), (s, notify, after, buf, slot)));
                }
                if tokio::time::Instant::now() >= until {
                    return None;
                }
                let req = npb::ListNoticesRequest {
                    recipients: who.clone(),
                    follow: true,
                    after_seq: after,
                    limit: 100,
                    ..Default::default()
                };
                if let Ok(page) = notify.clone().list_notices(req).await {
                    let page = page.into_inner();
                    after = page.notices.last().map_or(after, |n| n.seq);
                    buf.extend(page.notices);
                }
                if buf.is_empty() {
                    let pause = STREAM_POLL.min(until.saturating_duration_since(tokio::time::Instant::now()));
                    tokio::select! {
                        _ = s.stop.stopped() => return None,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("keep-alive")))
}

/// The inbox's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(read)).routes(routes!(stream))
}
