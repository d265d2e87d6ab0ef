//! The event feed every service serves (`samskab.common.v1.EventFeed`): catch-up then
//! live, from an opaque cursor, carrying public payloads only (sealed values removed) and
//! leaving out the service's internal events.

use std::pin::Pin;

use eventlog::{Cursor, EventStore, Filter, RecordedEvent};
use futures_util::{Stream, StreamExt};
use samskab_proto::common::v1::{self as pb, event_feed_server::EventFeed};
use tonic::{Request, Response, Status};

use crate::ServiceError;

/// Serves a store's events.
#[derive(Clone)]
pub struct Feed {
    store: EventStore,
    internal: &'static [&'static str],
    stop: crate::server::Stop,
}

impl Feed {
    /// A feed of `store`, without the event types in `internal`; its subscriptions end
    /// when `stop` is triggered (the server is stopping).
    pub fn new(store: EventStore, internal: &'static [&'static str], stop: crate::server::Stop) -> Self {
        Feed { store, internal, stop }
    }

    /// The gRPC server for it.
    pub fn into_server(self) -> pb::event_feed_server::EventFeedServer<Self> {
        pb::event_feed_server::EventFeedServer::new(self)
    }
}

/// The envelope of a stored event, with its public payload.
pub fn envelope(e: &RecordedEvent) -> pb::EventEnvelope {
    let payload: serde_json::Value = serde_json::from_str(e.payload.get()).unwrap_or(serde_json::Value::Null);
    let m = &e.metadata;
    pb::EventEnvelope {
        cursor: e.cursor.to_string(),
        event_id: e.id.to_string(),
        stream_id: e.stream_id.clone(),
        version: e.version,
        event_type: e.event_type.clone(),
        schema_version: e.schema_version,
        occurred_at: Some(samskab_proto::time::to_proto(e.occurred_at)),
        recorded_at: Some(samskab_proto::time::to_proto(e.recorded_at)),
        tenant: m.tenant.map(|t| t.to_string()).unwrap_or_default(),
        data_json: domain::events::public_payload(&payload).to_string(),
        actor: m.actor.as_ref().map(|a| pb::Actor { id: a.id.clone(), role: a.role.clone() }),
        correlation_id: m.correlation_id.map(|c| c.to_string()).unwrap_or_default(),
        causation_id: m.causation_id.map(|c| c.to_string()).unwrap_or_default(),
        traceparent: m.traceparent.clone().unwrap_or_default(),
    }
}

fn parse_request(after: &str, prefixes: &[String], tenant: &str) -> Result<(Cursor, Filter), ServiceError> {
    let cursor = if after.is_empty() {
        Cursor::START
    } else {
        after.parse().map_err(|_| ServiceError::invalid("/after", "not a cursor of this feed"))?
    };
    let tenant = if tenant.is_empty() {
        None
    } else {
        Some(uuid::Uuid::parse_str(tenant).map_err(|_| ServiceError::invalid("/tenant", "must be a UUID"))?)
    };
    // One prefix is filtered by the database; several in memory.
    let stream_prefix = match prefixes {
        [one] => Some(one.clone()),
        _ => None,
    };
    Ok((cursor, Filter { stream_prefix, tenant }))
}

/// Whether the caller may read the internal events: notify (in-process or by its
/// certificate); over plain TCP no caller is known and nothing is checked anywhere
/// (`docs/security.md`), so the request is honoured there too.
fn may_read_internal<T>(req: &Request<T>) -> bool {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    if let Some(crate::inproc::Peer(caller)) = req.extensions().get::<crate::inproc::Peer>() {
        return caller == "notify";
    }
    if req.extensions().get::<TlsConnectInfo<TcpConnectInfo>>().is_some() {
        return crate::tls::caller(req) == Some("notify");
    }
    true
}

fn wanted(e: &RecordedEvent, prefixes: &[String], internal: &[&str]) -> bool {
    !internal.contains(&e.event_type.as_str())
        && (prefixes.is_empty() || prefixes.iter().any(|p| e.stream_id.starts_with(p.as_str())))
}

type EnvelopeStream = Pin<Box<dyn Stream<Item = Result<pb::EventEnvelope, Status>> + Send>>;

#[tonic::async_trait]
impl EventFeed for Feed {
    type SubscribeStream = EnvelopeStream;

    async fn subscribe(&self, req: Request<pb::SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        let all = req.get_ref().with_internal && may_read_internal(&req);
        let req = req.into_inner();
        let (cursor, filter) = parse_request(&req.after, &req.stream_prefixes, &req.tenant)?;
        let internal = if all { &[] } else { self.internal };
        let prefixes = req.stream_prefixes;
        let stream = self.store.subscribe(cursor, filter).take_until(self.stop.stopped()).filter_map(move |e| {
            let out = match e {
                Ok(e) if wanted(&e, &prefixes, internal) => Some(Ok(envelope(&e))),
                Ok(_) => None,
                Err(e) => Some(Err(Status::from(ServiceError::from(e)))),
            };
            std::future::ready(out)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn read_events(
        &self,
        req: Request<pb::ReadEventsRequest>,
    ) -> Result<Response<pb::ReadEventsResponse>, Status> {
        let all = req.get_ref().with_internal && may_read_internal(&req);
        let req = req.into_inner();
        let (cursor, filter) = parse_request(&req.after, &req.stream_prefixes, &req.tenant)?;
        let internal = if all { &[] } else { self.internal };
        let limit = match req.limit {
            0 => 100,
            n if n <= 1000 => n as usize,
            _ => return Err(ServiceError::invalid("/limit", "must be at most 1000").into()),
        };
        let page = self.store.read_all(cursor, &filter, limit).await.map_err(ServiceError::from)?;
        let events = page.events.iter().filter(|e| wanted(e, &req.stream_prefixes, internal)).map(envelope).collect();
        Ok(Response::new(pb::ReadEventsResponse { events, next_cursor: page.next.to_string() }))
    }

    async fn head(&self, _req: Request<pb::HeadRequest>) -> Result<Response<pb::HeadResponse>, Status> {
        let head = self.store.head().await.map_err(ServiceError::from)?;
        Ok(Response::new(pb::HeadResponse { cursor: head.to_string() }))
    }
}

/// Removes payload fields from copies of feed items that a component keeps in a table
/// (booking's outbox, the gateway's webhook queue), after `samskab migrate` sealed those
/// fields in the log, so no clear copy of them stays. `drops` names (event id, field);
/// `select` returns (key, event id, JSON document) rows and `update` takes ($1 key, $2 event
/// id, $3 document); `member` is where the payload sits in the document (`None`: the
/// document is the payload). Returns how many documents changed. Run with the component
/// stopped.
pub async fn drop_copied_fields(
    store: &eventlog::EventStore,
    select: &'static str,
    update: &'static str,
    member: Option<&'static str>,
    drops: &[(String, String)],
) -> Result<u64, eventlog::Error> {
    use eventlog::Arg;
    if drops.is_empty() {
        return Ok(0);
    }
    let rows: Vec<(String, String, String)> = store.fetch_rows(select, &[]).await?;
    let mut changed = Vec::new();
    for (key, event, doc) in rows {
        let fields: Vec<&String> = drops.iter().filter(|(e, _)| *e == event).map(|(_, f)| f).collect();
        if fields.is_empty() {
            continue;
        }
        let mut value: serde_json::Value = serde_json::from_str(&doc).map_err(eventlog::Error::Payload)?;
        let payload = match member {
            Some(m) => value.get_mut(m),
            None => Some(&mut value),
        };
        let Some(payload) = payload.and_then(|p| p.as_object_mut()) else { continue };
        let before = payload.len();
        payload.retain(|k, _| !fields.contains(&k));
        if payload.len() != before {
            changed.push((key, event, value.to_string()));
        }
    }
    let n = changed.len() as u64;
    store
        .transaction(move |tx| {
            Box::pin(async move {
                for (key, event, doc) in changed {
                    tx.execute(update, &[Arg::Text(key), Arg::Text(event), Arg::Text(doc)]).await?;
                }
                Ok(())
            })
        })
        .await?;
    Ok(n)
}
