//! The integrators' event feed: the three services' logs (each served by
//! `samskab.common.v1.EventFeed`) merged into one, behind an opaque composite cursor
//! `b.<booking>~c.<carehome>~v.<volunteer>` that holds one service cursor per service.
//! Order is kept per service (hence per stream); across services events are interleaved
//! by the time they were recorded. Payloads are the services' public payloads (sealed
//! values removed), filtered once more here; internal event types never leave their
//! service. A chapter integrator reads with its chapter as tenant.

use std::collections::VecDeque;
use std::fmt;

use samskab_proto::common::v1 as pb;
use samskab_proto::common::v1::event_feed_client::EventFeedClient;
use serde::Serialize;
use tonic::transport::Channel;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::clients::Clients;
use crate::problem::ApiError;

/// The services in cursor order, with their one-letter tags.
const SERVICES: [(&str, &str); 3] = [("b", "booking"), ("c", "carehome"), ("v", "volunteer")];

/// A position in the merged feed: one cursor per service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedCursor([String; 3]);

impl Default for FeedCursor {
    fn default() -> Self {
        let start = eventlog::Cursor::START.to_string();
        FeedCursor([start.clone(), start.clone(), start])
    }
}

impl FeedCursor {
    /// Parses a cursor this feed handed out (400 naming `field` otherwise).
    pub fn parse(text: &str, field: &str) -> Result<Self, ApiError> {
        let bad = || ApiError::invalid(field, "not a cursor of this feed");
        if text.len() > 200 {
            return Err(bad());
        }
        let parts: Vec<&str> = text.split('~').collect();
        if parts.len() != 3 {
            return Err(bad());
        }
        let mut out = FeedCursor::default();
        for (i, (part, (tag, _))) in parts.iter().zip(SERVICES).enumerate() {
            let c = part.strip_prefix(tag).and_then(|p| p.strip_prefix('.')).ok_or_else(bad)?;
            c.parse::<eventlog::Cursor>().map_err(|_| bad())?;
            out.0[i] = c.to_owned();
        }
        Ok(out)
    }
}

impl fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b.{}~c.{}~v.{}", self.0[0], self.0[1], self.0[2])
    }
}

/// One event of the feed.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct FeedItem {
    /// Resume after this event by passing it as `cursor` (or `Last-Event-ID`).
    pub cursor: String,
    /// The event's id.
    pub event_id: String,
    /// The stream (object) it belongs to, e.g. `ride-<uuid>`.
    pub stream: String,
    /// The event's name from the domain (e.g. `RideBooked`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened (RFC 3339, UTC).
    pub occurred_at: String,
    /// The public payload: ids and facts, never personal data or ciphertext.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// Every event type the feed can carry (the public ones of the three services).
pub fn event_types() -> impl Iterator<Item = &'static str> {
    use domain::events::{BookingEvent, CareHomeEvent, INTERNAL_EVENT_TYPES, VolunteerEvent};
    BookingEvent::NAMES
        .iter()
        .chain(CareHomeEvent::NAMES)
        .chain(VolunteerEvent::NAMES)
        .copied()
        .filter(|n| !INTERNAL_EVENT_TYPES.contains(n))
}

/// Reads the merged feed.
#[derive(Clone)]
pub struct FeedReader {
    feeds: Vec<EventFeedClient<Channel>>,
}

/// A service page: its events and where it continues.
struct ServicePage {
    events: VecDeque<pb::EventEnvelope>,
    next: String,
}

impl FeedReader {
    /// Over the services' channels.
    pub fn new(clients: &Clients) -> Self {
        let channels = clients.channels();
        let channel = |name: &str| {
            channels.iter().find(|(n, _)| *n == name).map(|(_, c)| c.clone()).expect("a channel per service")
        };
        FeedReader { feeds: SERVICES.iter().map(|(_, name)| EventFeedClient::new(channel(name))).collect() }
    }

    async fn read_service(
        &self,
        i: usize,
        after: &str,
        limit: u32,
        tenant: Option<Uuid>,
    ) -> Result<ServicePage, ApiError> {
        let mut after = after.to_owned();
        // A page may hold only internal events: read on until something public or the end.
        for _ in 0..20 {
            let page = self.feeds[i]
                .clone()
                .read_events(pb::ReadEventsRequest {
                    after: after.clone(),
                    limit,
                    stream_prefixes: Vec::new(),
                    tenant: tenant.map(|t| t.to_string()).unwrap_or_default(),
                    with_internal: false,
                })
                .await?
                .into_inner();
            let moved = !page.next_cursor.is_empty() && page.next_cursor != after;
            if !page.events.is_empty() || !moved {
                let next = if page.next_cursor.is_empty() { after } else { page.next_cursor };
                return Ok(ServicePage { events: page.events.into(), next });
            }
            after = page.next_cursor;
        }
        Ok(ServicePage { events: VecDeque::new(), next: after })
    }

    /// Where the feed ends now: each service's head, asked at once, without reading any
    /// event. Reading after it yields only what is appended later.
    pub async fn end(&self) -> Result<FeedCursor, ApiError> {
        let head = |i: usize| {
            let mut feed = self.feeds[i].clone();
            async move { Ok::<_, ApiError>(feed.head(pb::HeadRequest {}).await?.into_inner().cursor) }
        };
        let (b, c, v) = futures_util::join!(head(0), head(1), head(2));
        let mut end = FeedCursor::default();
        for (i, cursor) in [b?, c?, v?].into_iter().enumerate() {
            if !cursor.is_empty() {
                end.0[i] = cursor;
            }
        }
        Ok(end)
    }

    /// Up to `limit` events after `after`, and where to read next (never nothing: at the
    /// end it is where to poll).
    pub async fn read(
        &self,
        after: &FeedCursor,
        limit: u32,
        tenant: Option<Uuid>,
    ) -> Result<(Vec<FeedItem>, FeedCursor), ApiError> {
        let (b, c, v) = futures_util::join!(
            self.read_service(0, &after.0[0], limit, tenant),
            self.read_service(1, &after.0[1], limit, tenant),
            self.read_service(2, &after.0[2], limit, tenant),
        );
        let mut pages = [b?, c?, v?];
        let mut at = after.clone();
        let mut items = Vec::new();
        while items.len() < limit as usize {
            // The head recorded first (ties: service order).
            let next = (0..3).filter_map(|i| pages[i].events.front().map(|e| (recorded(e), i))).min();
            let Some((_, i)) = next else { break };
            let e = pages[i].events.pop_front().expect("a head");
            at.0[i] = e.cursor.clone();
            items.push(item(e, at.to_string()));
        }
        // A service whose page was taken whole continues after its page (past any
        // internal events at its end).
        for (i, page) in pages.iter().enumerate() {
            if page.events.is_empty() {
                at.0[i] = page.next.clone();
            }
        }
        Ok((items, at))
    }
}

fn recorded(e: &pb::EventEnvelope) -> (i64, i32) {
    e.recorded_at.as_ref().map(|t| (t.seconds, t.nanos)).unwrap_or((0, 0))
}

fn item(e: pb::EventEnvelope, cursor: String) -> FeedItem {
    let data: serde_json::Value = serde_json::from_str(&e.data_json).unwrap_or(serde_json::Value::Null);
    FeedItem {
        cursor,
        event_id: e.event_id,
        stream: e.stream_id,
        event_type: e.event_type,
        occurred_at: crate::views::time(&e.occurred_at).unwrap_or_default(),
        data: domain::events::public_payload(&data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = FeedCursor::default();
        assert_eq!(FeedCursor::parse(&c.to_string(), "/cursor").unwrap(), c);
        for bad in ["", "x", "b.~c.~v.", "c.c10.0~b.c10.0~v.c10.0", "b.c10.0~c.c10.0", "b.zz~c.zz~v.zz"] {
            assert!(FeedCursor::parse(bad, "/cursor").is_err(), "{bad}");
        }
    }
}
