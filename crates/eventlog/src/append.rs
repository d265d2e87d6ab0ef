//! Checks an append call and puts it in the shape both backends store: streams sorted by
//! id (so concurrent multi-stream appends lock in one order), each event knowing its
//! stream and its offset within that stream's events.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{AppendResult, Appended, Error, ExpectedVersion, StreamAppend};

pub(crate) struct PreparedStream {
    pub stream_id: String,
    pub expected: ExpectedVersion,
    pub count: usize,
}

pub(crate) struct PreparedEvent {
    pub id: Uuid,
    pub stream_index: usize,
    /// 1-based offset within its stream's events of this call.
    pub offset: usize,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Box<RawValue>,
    pub metadata: String,
    pub tenant: Option<Uuid>,
    pub occurred_at: DateTime<Utc>,
    pub hash: Vec<u8>,
}

pub(crate) struct PreparedAppend {
    pub streams: Vec<PreparedStream>,
    /// In the caller's order.
    pub events: Vec<PreparedEvent>,
}

impl PreparedAppend {
    pub(crate) fn new(mut appends: Vec<StreamAppend>) -> Result<Self, Error> {
        if appends.is_empty() || appends.iter().any(|a| a.events.is_empty()) {
            return Err(Error::InvalidAppend("every stream needs at least one event".into()));
        }
        // Keep the caller's event order, but number streams in sorted order.
        let mut order: Vec<usize> = (0..appends.len()).collect();
        order.sort_by(|&a, &b| appends[a].stream_id.cmp(&appends[b].stream_id));
        let mut index_of = vec![0; appends.len()];
        for (sorted, &original) in order.iter().enumerate() {
            index_of[original] = sorted;
        }
        let mut streams: Vec<PreparedStream> = order
            .iter()
            .map(|&i| PreparedStream {
                stream_id: appends[i].stream_id.clone(),
                expected: appends[i].expected,
                count: appends[i].events.len(),
            })
            .collect();
        for pair in streams.windows(2) {
            if pair[0].stream_id == pair[1].stream_id {
                return Err(Error::InvalidAppend(format!("stream {} named twice", pair[0].stream_id)));
            }
        }
        if streams.iter().any(|s| s.stream_id.is_empty()) {
            return Err(Error::InvalidAppend("empty stream id".into()));
        }
        let mut seen = HashSet::new();
        let mut events = Vec::new();
        for (original, append) in appends.iter_mut().enumerate() {
            let stream_index = index_of[original];
            for (k, e) in append.events.drain(..).enumerate() {
                if !seen.insert(e.id) {
                    return Err(Error::InvalidAppend(format!("event id {} used twice", e.id)));
                }
                let hash = e.content_hash(&streams[stream_index].stream_id);
                events.push(PreparedEvent {
                    id: e.id,
                    stream_index,
                    offset: k + 1,
                    metadata: serde_json::to_string(&e.metadata).map_err(Error::Payload)?,
                    tenant: e.metadata.tenant,
                    event_type: e.event_type,
                    schema_version: e.schema_version,
                    payload: e.payload,
                    occurred_at: e.occurred_at,
                    hash,
                });
            }
        }
        streams.shrink_to_fit();
        Ok(PreparedAppend { streams, events })
    }

    /// Orders what the backend reports in the caller's event order.
    pub(crate) fn result_from(&self, mut landed: Vec<Appended>, replayed: bool) -> Result<AppendResult, Error> {
        if landed.len() != self.events.len() {
            return Err(Error::Corrupt(format!("{} events appended, {} reported", self.events.len(), landed.len())));
        }
        let mut events = Vec::with_capacity(landed.len());
        for e in &self.events {
            let at = landed
                .iter()
                .position(|a| a.event_id == e.id)
                .ok_or_else(|| Error::Corrupt(format!("event {} not reported", e.id)))?;
            events.push(landed.swap_remove(at));
        }
        Ok(AppendResult { events, replayed })
    }
}
