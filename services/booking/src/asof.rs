//! A chapter's stats as of a moment, from snapshots plus the events after them (issue 22,
//! part 5; `docs/reports.md`, *Stats as of a moment*).
//!
//! `GET /v1/stats?as_of=T` counts the rides as the log stood at T: every ride event the log
//! had *recorded* at or before T, folded. Without a snapshot that is a read of every ride
//! event of the chapter. A [`Snapshot`] holds that fold for one moment (`taken_at`): every
//! ride as the counting rule sees it ([`Counted`], a tenth of a ride's size) and, whole,
//! the rides still active (later events fold onto them). An answer as of T starts from the
//! latest snapshot taken at or before T and folds the events recorded after it and at or
//! before T.
//!
//! Those events are found without reading the log from its start, and without stopping
//! early: `recorded_at` is not monotone in read order on PostgreSQL (an event is read in
//! its transaction's order, recorded when it was inserted), so a snapshot also stores
//! `resume`, a cursor before every event recorded after `taken_at`; the events between
//! `resume` and the head that were recorded at or before `taken_at` are skipped as already
//! folded, those recorded after T as not yet recorded then.
//!
//! A snapshot is only correct if every event recorded at or before `taken_at` was readable
//! when it was taken: [`take`] waits with [`EventStore::settle`] until every transaction
//! in progress at that moment has ended.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::DomainEvent;
use domain::events::BookingEvent;
use eventlog::{Arg, Cursor, Error, EventStore, Filter};
use servicekit::Aggregate;
use uuid::Uuid;

use crate::rides::Ride;
use crate::stats::Counted;

/// Ride events of a chapter between two snapshots worth a new one.
pub const SNAPSHOT_AFTER_EVENTS: usize = 5_000;
/// How often the snapshotter looks at each chapter.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(300);
/// Snapshots kept per chapter besides the first of each month (UTC).
pub const KEEP_LATEST: usize = 3;
/// Events read per page.
const PAGE: usize = 5_000;

/// A chapter's rides as the log stood at `taken_at`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Every ride event of the chapter recorded at or before this moment (µs) is folded in.
    pub taken_at: i64,
    /// Every ride event of the chapter recorded after `taken_at` comes after this cursor
    /// in read order (empty: the start of the log).
    pub resume: String,
    /// Every ride, as counted.
    pub counted: BTreeMap<Uuid, Counted>,
    /// The rides still active, whole.
    pub open: BTreeMap<Uuid, Ride>,
}

impl Snapshot {
    /// Before the first event.
    pub fn empty() -> Self {
        Snapshot { taken_at: i64::MIN, resume: String::new(), counted: BTreeMap::new(), open: BTreeMap::new() }
    }
}

fn ride_id(stream: &str) -> Option<Uuid> {
    stream.strip_prefix("ride-").and_then(|s| s.parse().ok())
}

/// Folds onto `base` the chapter's ride events recorded after `base.taken_at` and at or
/// before `at` (µs, not before `base.taken_at`); returns the snapshot at `at` and how many
/// events it folded.
pub async fn advance(store: &EventStore, chapter: Uuid, base: Snapshot, at: i64) -> Result<(Snapshot, usize), Error> {
    let filter = Filter { stream_prefix: Some("ride-".into()), tenant: Some(chapter) };
    let start = if base.resume.is_empty() { Cursor::START } else { base.resume.parse()? };
    let (mut cursor, mut last, mut resume) = (start, start, None);
    let before = base.taken_at;
    let mut snap = base;
    // Folded as they are read, in read order, a page at a time: an active ride stays whole
    // in `open`; every ride is kept as counted. A ride that had ended and is touched again
    // (a correction) is rebuilt from its stream: its events recorded by the base, and those
    // of this fold read so far.
    let mut folded = 0;
    loop {
        let page = store.read_all(cursor, &filter, PAGE).await?;
        if page.events.is_empty() {
            break;
        }
        for e in &page.events {
            let recorded = e.recorded_at.timestamp_micros();
            if recorded > at {
                resume.get_or_insert(last);
            } else if recorded > before
                && let Some(id) = ride_id(&e.stream_id)
                && let Some(ev) = BookingEvent::from_stored(&e.event_type, e.payload.get()).map_err(Error::Payload)?
            {
                let state = match snap.open.remove(&id) {
                    Some(r) => Some(r),
                    None if snap.counted.contains_key(&id) => fold_stream(store, id, before, at, last).await?,
                    None => None,
                };
                match Ride::apply(state, &ev) {
                    Some(r) => {
                        snap.counted.insert(id, Counted::of(&r));
                        if r.status.is_active() {
                            snap.open.insert(id, r);
                        }
                    }
                    None => {
                        snap.counted.remove(&id);
                    }
                }
                folded += 1;
            }
            last = e.cursor;
        }
        cursor = page.next;
    }
    snap.taken_at = at.max(before);
    snap.resume = resume.unwrap_or(last).to_string();
    Ok((snap, folded))
}

/// A ride from its stream: the events recorded at or before `before` (µs), and those
/// recorded at or before `at` that come no later than `read` in read order (what a fold
/// from a snapshot at `before` has applied when it has read up to `read`).
async fn fold_stream(store: &EventStore, id: Uuid, before: i64, at: i64, read: Cursor) -> Result<Option<Ride>, Error> {
    let mut ride = None;
    let stream = format!("ride-{id}");
    let mut after = 0;
    loop {
        let events = store.read_stream(&stream, after, PAGE).await?;
        let Some(last) = events.last() else { break };
        after = last.version;
        for e in &events {
            let recorded = e.recorded_at.timestamp_micros();
            if (recorded <= before || (recorded <= at && e.cursor <= read))
                && let Some(ev) = BookingEvent::from_stored(&e.event_type, e.payload.get()).map_err(Error::Payload)?
            {
                ride = Ride::apply(ride, &ev);
            }
        }
    }
    Ok(ride)
}

/// The latest stored snapshot of `chapter` taken at or before `at` (µs).
pub async fn latest(store: &EventStore, chapter: Uuid, at: i64) -> Result<Option<Snapshot>, Error> {
    let body = store
        .fetch_texts(
            "SELECT body FROM booking_stats_snapshots WHERE chapter_id = $1 AND taken_at <= $2 \
             ORDER BY taken_at DESC LIMIT 1",
            &[chapter.into(), Arg::Int(at)],
        )
        .await?;
    body.first().map(|b| serde_json::from_str(b).map_err(Error::Payload)).transpose()
}

/// The chapter's rides as counted as of `at`: the latest snapshot at or before it and the
/// events after it.
pub async fn rides(store: &EventStore, chapter: Uuid, at: DateTime<Utc>) -> Result<Vec<Counted>, Error> {
    let at = at.timestamp_micros();
    let base = latest(store, chapter, at).await?.unwrap_or_else(Snapshot::empty);
    let (snap, _) = advance(store, chapter, base, at).await?;
    Ok(snap.counted.into_values().collect())
}

/// Takes a snapshot of `chapter` now and stores it if at least `min_events` ride events
/// were recorded since the one before; returns its moment (µs) if stored. Waits first until
/// every transaction in progress has ended (up to 30 s; none is taken otherwise).
pub async fn take(store: &EventStore, chapter: Uuid, min_events: usize) -> Result<Option<i64>, Error> {
    let at = Utc::now().timestamp_micros();
    if !store.settle(Duration::from_secs(30)).await? {
        return Ok(None);
    }
    let base = latest(store, chapter, at).await?.unwrap_or_else(Snapshot::empty);
    let (snap, folded) = advance(store, chapter, base, at).await?;
    if folded == 0 || folded < min_events {
        return Ok(None);
    }
    store_snapshot(store, chapter, &snap).await?;
    Ok(Some(at))
}

/// Stores a snapshot and prunes the chapter's: the latest [`KEEP_LATEST`] and the first of
/// each month (UTC) stay.
pub async fn store_snapshot(store: &EventStore, chapter: Uuid, snap: &Snapshot) -> Result<(), Error> {
    let body = serde_json::to_string(snap).map_err(Error::Payload)?;
    let taken_at = snap.taken_at;
    // Derived from the log: taken again if a crash of the machine takes it.
    store
        .transaction_relaxed(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO booking_stats_snapshots (chapter_id, taken_at, body) VALUES ($1, $2, $3) \
                     ON CONFLICT (chapter_id, taken_at) DO NOTHING",
                    &[chapter.into(), Arg::Int(taken_at), Arg::Text(body)],
                )
                .await?;
                let all = tx
                    .fetch_i64s(
                        "SELECT taken_at FROM booking_stats_snapshots WHERE chapter_id = $1 ORDER BY taken_at",
                        &[chapter.into()],
                    )
                    .await?;
                for t in pruned(&all) {
                    tx.execute(
                        "DELETE FROM booking_stats_snapshots WHERE chapter_id = $1 AND taken_at = $2",
                        &[chapter.into(), Arg::Int(t)],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
}

/// Of snapshot moments in order, those to delete: all but the latest [`KEEP_LATEST`] and
/// the first of each month (UTC).
fn pruned(moments: &[i64]) -> Vec<i64> {
    let month = |t: i64| DateTime::<Utc>::from_timestamp_micros(t).map(|d| d.format("%Y-%m").to_string());
    let keep_from = moments.len().saturating_sub(KEEP_LATEST);
    let mut out = Vec::new();
    for (i, &t) in moments.iter().enumerate() {
        let first_of_month = i == 0 || month(moments[i - 1]) != month(t);
        if i < keep_from && !first_of_month {
            out.push(t);
        }
    }
    out
}

/// How long after the start the first pass waits (a start's own work goes first).
pub const SNAPSHOT_FIRST: Duration = Duration::from_secs(30);

/// Takes snapshots of every chapter booking knows, every [`SNAPSHOT_EVERY`] (the first
/// [`SNAPSHOT_FIRST`] after the start), on one booking process at a time; runs until the
/// store closes. Each chapter's outcome counts in `booking_stats_snapshots_total{outcome}`
/// (`stored`, `unchanged`: too few events since the last, `failed`).
pub async fn snapshotter(store: EventStore) -> Result<(), Error> {
    let _leading = store.lead("booking/stats-snapshots", Duration::from_secs(5)).await?;
    tokio::time::sleep(SNAPSHOT_FIRST).await;
    loop {
        for chapter in crate::stats::zones(&store).await?.into_keys() {
            let outcome = match take(&store, chapter, SNAPSHOT_AFTER_EVENTS).await {
                Ok(Some(_)) => "stored",
                Ok(None) => "unchanged",
                Err(e) => {
                    tracing::warn!(%chapter, error = %e, "stats snapshot not taken");
                    "failed"
                }
            };
            snapshots_counter().add(1, &[opentelemetry::KeyValue::new("outcome", outcome)]);
        }
        tokio::time::sleep(SNAPSHOT_EVERY).await;
    }
}

fn snapshots_counter() -> &'static opentelemetry::metrics::Counter<u64> {
    static C: std::sync::OnceLock<opentelemetry::metrics::Counter<u64>> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        telemetry::metrics::metrics();
        opentelemetry::global::meter("samskab-booking")
            .u64_counter("booking.stats.snapshots")
            .with_description("Stats snapshot attempts per chapter, by outcome")
            .build()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_latest_and_the_first_of_each_month() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros();
        let all = [
            at("2026-10-01T00:00:00Z"),
            at("2026-10-15T00:00:00Z"),
            at("2026-11-02T00:00:00Z"),
            at("2026-11-03T00:00:00Z"),
            at("2026-11-04T00:00:00Z"),
            at("2026-12-01T00:00:00Z"),
            at("2026-12-02T00:00:00Z"),
        ];
        assert_eq!(pruned(&all), vec![all[1], all[3]]);
        assert!(pruned(&all[..3]).is_empty());
    }
}
