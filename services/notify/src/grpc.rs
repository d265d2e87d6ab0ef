//! The gRPC face of notify: the inbox, for the gateway.

use domain::types::Invalid;
use eventlog::{EventStore, ExpectedVersion, NewEvent, StreamAppend};
use samskab_proto::notify::v1::{self as pb, notify_service_server::NotifyService};
use servicekit::ServiceError;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::inbox::{self, Entry};
use crate::notices::{self, Language, NoticeRead};

/// Pages hold at most this many notices.
pub const MAX_PAGE: u32 = 500;

/// The service's handlers.
#[derive(Clone)]
pub struct Notify {
    pub(crate) store: EventStore,
}

fn recipients(list: &[String]) -> Result<Vec<String>, ServiceError> {
    let ok = |r: &String| {
        r.split_once(':').is_some_and(|(k, id)| ["person", "pilot"].contains(&k) && !id.is_empty() && id.len() <= 200)
    };
    if list.is_empty() || list.len() > 16 || !list.iter().all(ok) {
        return Err(ServiceError::Invalid(vec![Invalid::new(
            "/recipients",
            "1 to 16 of `person:<id>` or `pilot:<id>`",
        )]));
    }
    Ok(list.to_vec())
}

fn to_proto(e: &Entry, lang: Option<Language>) -> pb::Notice {
    let lang = lang.unwrap_or_else(|| Language::default_for(&e.facts));
    let (title, body) = notices::words(&e.kind, &e.facts, lang);
    pb::Notice {
        notice_id: e.notice_id.to_string(),
        kind: e.kind.clone(),
        created_at: Some(samskab_proto::time::to_proto(e.created_at)),
        read_at: e.read_at.map(samskab_proto::time::to_proto),
        title,
        body,
        ride_id: e.facts.ride_id.map(|r| r.to_string()).unwrap_or_default(),
        ride_request_id: String::new(),
        seq: e.seq.max(0) as u64,
    }
}

#[tonic::async_trait]
impl NotifyService for Notify {
    async fn list_notices(&self, req: Request<pb::ListNoticesRequest>) -> Result<Response<pb::NoticePage>, Status> {
        let r = req.into_inner();
        let who = recipients(&r.recipients)?;
        let limit = if r.limit == 0 { 50 } else { r.limit.min(MAX_PAGE) } as usize;
        let lang = Language::parse(&r.language);
        if r.follow {
            let after = i64::try_from(r.after_seq)
                .map_err(|_| ServiceError::Invalid(vec![Invalid::new("/after_seq", "out of range")]))?;
            let new = inbox::since(&self.store, &who, after, limit).await.map_err(ServiceError::from)?;
            let notices = new.iter().map(|e| to_proto(e, lang)).collect();
            return Ok(Response::new(pb::NoticePage { notices, next_cursor: String::new() }));
        }
        let after = if r.cursor.is_empty() {
            None
        } else {
            Some(
                inbox::parse_cursor(&r.cursor)
                    .ok_or_else(|| ServiceError::Invalid(vec![Invalid::new("/cursor", "not a cursor of this list")]))?,
            )
        };
        let page = inbox::page(&self.store, &who, after, limit, r.unread_only).await.map_err(ServiceError::from)?;
        let next_cursor =
            if page.len() == limit { page.last().map(inbox::cursor_of).unwrap_or_default() } else { String::new() };
        Ok(Response::new(pb::NoticePage { notices: page.iter().map(|e| to_proto(e, lang)).collect(), next_cursor }))
    }

    async fn mark_notice_read(&self, req: Request<pb::MarkNoticeReadRequest>) -> Result<Response<pb::Notice>, Status> {
        let r = req.into_inner();
        let who = recipients(&r.recipients)?;
        let id: Uuid = r
            .notice_id
            .parse()
            .map_err(|_| ServiceError::Invalid(vec![Invalid::new("/notice_id", "must be a UUID")]))?;
        let lang = Language::parse(&r.language);
        let not_found = || ServiceError::NotFound("notice".into());
        let mut entry = inbox::get(&self.store, &who, id).await.map_err(ServiceError::from)?.ok_or_else(not_found)?;
        if entry.read_at.is_some() {
            return Ok(Response::new(to_proto(&entry, lang)));
        }
        // Microseconds, as the inbox keeps times: every answer tells the same time.
        let at = chrono::SubsecRound::trunc_subsecs(servicekit::clock::now(), 6);
        let event = NewEvent::new("NoticeRead", &NoticeRead { notice_id: id, at }).map_err(ServiceError::from)?;
        // Version 1 is the decision: the first reader's time stays.
        let stream = notices::stream(id);
        match self.store.append(vec![StreamAppend::new(stream.clone(), ExpectedVersion::Exact(1), vec![event])]).await {
            Ok(_) => entry.read_at = Some(at),
            Err(eventlog::Error::WrongExpectedVersion { .. }) => {
                let read = self.store.read_stream(&stream, 1, 1).await.map_err(ServiceError::from)?;
                let first = read.first().and_then(|e| e.payload_as::<NoticeRead>().ok());
                entry.read_at = Some(first.map_or(at, |r| r.at));
            }
            Err(e) => return Err(ServiceError::from(e).into()),
        }
        Ok(Response::new(to_proto(&entry, lang)))
    }
}
