//! Holding and releasing slots on schedule streams ([`crate::schedule`]): a hold that
//! overlaps another ride's interval on the same stream is a conflict (`bike-taken`,
//! `pilot-busy`, `resident-busy`); a release is written only where the ride holds a slot.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::events::{BookingEvent, SlotAwaited, SlotHeld, SlotReleased};
use domain::{DomainError, ErrorCode};
use uuid::Uuid;

use crate::schedule::DaySchedule;

/// The schedule streams a command read, folded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schedules(pub BTreeMap<String, DaySchedule>);

impl Schedules {
    /// Folds each stream's events (with their versions).
    pub fn from_streams<'a>(streams: impl IntoIterator<Item = (String, &'a [(BookingEvent, u64)])>) -> Self {
        Schedules(
            streams
                .into_iter()
                .map(|(s, events)| (s, DaySchedule::fold(events.iter().map(|(e, v)| (e, *v)))))
                .collect(),
        )
    }

    fn get(&self, stream: &str) -> Option<&DaySchedule> {
        self.0.get(stream)
    }
}

/// An interval a ride is to hold on one schedule stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    /// The schedule stream.
    pub stream: String,
    /// The ride holding it.
    pub ride_id: Uuid,
    /// Start.
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
}

impl Hold {
    /// Holds of one ride from `(stream, start, end)` triples.
    pub fn of(ride_id: Uuid, holds: Vec<(String, DateTime<Utc>, DateTime<Utc>)>) -> Vec<Hold> {
        holds.into_iter().map(|(stream, start, end)| Hold { stream, ride_id, start, end }).collect()
    }
}

fn conflict(stream: &str, other: Uuid) -> DomainError {
    let (code, message) = if stream.starts_with("bikeday-") {
        (ErrorCode::BikeTaken, "the trishaw is taken in that slot (turnaround included)")
    } else if stream.starts_with("pilotday-") {
        (ErrorCode::PilotBusy, "the pilot rides elsewhere in that slot")
    } else {
        (ErrorCode::ResidentBusy, "a rider is on another ride in that slot")
    };
    DomainError::conflict(code, message, Some(other))
}

/// The schedule events of holding `holds` and releasing `releases` (stream, ride): per
/// stream, its releases, then its holds. A hold conflicts with any ride on its stream but
/// itself and the rides being released, and with the other holds of this command (the
/// two legs of a round trip).
pub fn schedule_events(
    schedules: &Schedules,
    holds: &[Hold],
    releases: &[(String, Uuid)],
) -> Result<Vec<(String, BookingEvent)>, DomainError> {
    let releasing: Vec<Uuid> = releases.iter().map(|(_, r)| *r).collect();
    let empty = DaySchedule::default();
    let mut per_stream: BTreeMap<&str, Vec<BookingEvent>> = BTreeMap::new();
    for (stream, ride_id) in releases {
        if schedules.get(stream).is_some_and(|s| s.held.contains_key(ride_id) || s.waiting.contains_key(ride_id)) {
            per_stream.entry(stream).or_default().push(SlotReleased { ride_id: *ride_id }.into());
        }
    }
    for h in holds {
        let schedule = schedules.get(&h.stream).unwrap_or(&empty);
        let mut except = releasing.clone();
        except.push(h.ride_id);
        let ours = holds
            .iter()
            .filter(|o| o.stream == h.stream && o.ride_id != h.ride_id)
            .find(|o| o.start < h.end && h.start < o.end)
            .map(|o| o.ride_id);
        if let Some(other) = schedule.overlapping(h.start, h.end, &except).or(ours) {
            return Err(conflict(&h.stream, other));
        }
        per_stream
            .entry(&h.stream)
            .or_default()
            .push(SlotHeld { ride_id: h.ride_id, start: h.start, end: h.end }.into());
    }
    Ok(per_stream.into_iter().flat_map(|(s, events)| events.into_iter().map(move |e| (s.to_owned(), e))).collect())
}

/// The places of a waiting resident (`SlotAwaited`), one per stream: not holds, so nothing
/// conflicts with them.
pub fn await_events(waits: &[Hold]) -> Vec<(String, BookingEvent)> {
    waits
        .iter()
        .map(|w| (w.stream.clone(), SlotAwaited { ride_id: w.ride_id, start: w.start, end: w.end }.into()))
        .collect()
}

/// The streams a command must read to decide these holds and releases.
pub fn streams_of(holds: &[Hold], releases: &[(String, Uuid)]) -> Vec<String> {
    let mut out: Vec<String> =
        holds.iter().map(|h| h.stream.clone()).chain(releases.iter().map(|r| r.0.clone())).collect();
    out.sort();
    out.dedup();
    out
}
