//! Ride series as I/O around their deciders ([`crate::commands::series`]): planning one and
//! booking its dates up to the chapter's horizon, the daily extension (02:00 in the
//! chapter's zone, on the one clock), cancellation, the stop at a retired trishaw or pilot,
//! and the `booking_series` read model that lists them.
//!
//! Every date is its own command, keyed by (series, local date): its ride id and its
//! events' ids derive from that key, so the create's own extension, a retried create, the
//! daily sweep and a second booking process all book a date once; each of them also
//! writes the series' stream at the version it read, so a cancellation and the booking
//! of a date never cross.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use domain::DomainEvent;
use domain::events::{BookingEvent, RideSeriesOccurrenceBooked, RideSeriesOccurrenceSkipped, RideSeriesPlanned};
use domain::localtime;
use eventlog::{Actor, Arg, Error, Filter, Projection, RecordedEvent, Tx};
use futures_util::future::BoxFuture;
use servicekit::aggregate;
use servicekit::executor::{self, Loader};
use servicekit::{CommandCtx, ServiceError, ServiceResult};
use uuid::Uuid;

use crate::Booking;
use crate::commands::booking::BookInput;
use crate::commands::rides::{RideInput, releases_of};
use crate::commands::schedule::streams_of;
use crate::commands::series::{
    self as series_cmd, CancelInput, CancelSeries, OccurrenceInput, PlanInput, PlanSeries, occurrence_booking,
};
use crate::facts::{self, ChapterFact, kind};
use crate::rides::{Ride, ride_stream, ride_subject};
use crate::series::{Outcome, RideSeries, occurrence_id, series_stream};
use crate::service::{book_input, claimed_residents, fact_parts, residents, schedules};

/// How often the sweep looks for series to extend (every second in a `test-clock` build,
/// so that a test that moves the clock past 02:00 sees them extended at once).
pub const SWEEP: Duration =
    if servicekit::clock::is_test_clock() { Duration::from_secs(1) } else { Duration::from_secs(60) };

/// The local hour the daily extension runs at, in the chapter's zone.
pub const DAILY_AT_HOUR: u32 = 2;

/// The last local date a series books through now: today + `series_horizon_days` in the
/// chapter's zone; before 02:00 local (the daily run), yesterday's horizon, except at the
/// series' creation.
pub fn horizon(chapter: &ChapterFact, now: DateTime<Utc>, at_creation: bool) -> NaiveDate {
    let tz: chrono_tz::Tz = chapter.timezone.parse().unwrap_or(chrono_tz::UTC);
    let local = now.with_timezone(&tz);
    let today = local.date_naive();
    let day = if at_creation || local.hour() >= DAILY_AT_HOUR { today } else { today.pred_opt().unwrap_or(today) };
    day + chrono::Duration::days(i64::from(chapter.settings.series_horizon_days))
}

/// The context of booking one date: keyed by (series, date), the same in every process.
fn occurrence_ctx(series: Uuid, date: NaiveDate, correlation_id: Uuid) -> CommandCtx {
    CommandCtx {
        idempotency_key: format!("series-occurrence:{series}:{date}"),
        actor: Actor { id: "system".into(), role: "system".into() },
        correlation_id,
        expected_version: None,
    }
}

/// A series' dates as answered: every date through `through`, each with its start, and
/// its ride (and the ride's status) or the rule it broke.
#[derive(Debug, Clone)]
pub struct OccurrenceView {
    /// The local date.
    pub date: NaiveDate,
    /// Its start.
    pub start: DateTime<Utc>,
    /// What became of it (`None`: not yet booked, or cancelled with the series first).
    pub outcome: Option<Outcome>,
    /// The booked ride's status.
    pub status: Option<String>,
}

impl Booking {
    /// A series that exists, with its stream's version.
    pub async fn series(&self, id: Uuid) -> ServiceResult<(RideSeries, u64)> {
        aggregate::load_existing::<RideSeries>(&self.store, &series_stream(id), "ride series").await
    }

    /// The chapter of a series (its horizon and zone).
    async fn chapter_of(&self, s: &RideSeries) -> ServiceResult<Option<ChapterFact>> {
        Ok(facts::get(&self.store, kind::CHAPTER, s.plan.chapter_id).await?)
    }

    /// Plans a series and books its dates up to the horizon; a retry with the same key
    /// books what an interrupted first attempt did not.
    pub async fn plan_series(&self, ctx: &CommandCtx, cmd: &PlanSeries) -> ServiceResult<(RideSeries, u64)> {
        let stream = series_stream(cmd.ride_series_id);
        let load = |l: Loader| async move {
            let facts = fact_parts(l.store(), cmd.bike_id, cmd.pilot_id).await?;
            let named = match &facts.home {
                Some(h) if cmd.actor_role == "pilot" && !h.pilots_choose_riders && !cmd.resident_ids.is_empty() => {
                    claimed_residents(l.store(), h.carehome_id, cmd.pilot_id, l.now()).await?
                }
                _ => Vec::new(),
            };
            let riders = residents(l.store(), &cmd.resident_ids).await?;
            let now = l.now();
            Ok((l, PlanInput { facts, riders, named, now }))
        };
        executor::run(&self.store, ctx, &stream, load, |i| series_cmd::plan(i, cmd)).await?;
        let (s, _) = self.series(cmd.ride_series_id).await?;
        if let Some(chapter) = self.chapter_of(&s).await? {
            let through = horizon(&chapter, servicekit::clock::now(), true);
            self.extend_series(&s, through, ctx.correlation_id).await?;
        }
        self.series(cmd.ride_series_id).await
    }

    /// Books every date of the series up to `through` not yet booked or skipped; returns
    /// how many dates it decided (booked, skipped, or the series stopped).
    pub async fn extend_series(
        &self,
        s: &RideSeries,
        through: NaiveDate,
        correlation_id: Uuid,
    ) -> ServiceResult<usize> {
        let id = s.plan.ride_series_id;
        let mut decided = 0;
        for date in s.due_through(through) {
            let ctx = occurrence_ctx(id, date, correlation_id);
            let (done, stopped) = self.book_occurrence(&ctx, id, date).await?;
            decided += usize::from(done);
            // A stop (retired trishaw or pilot) ends the walk: nothing later is due.
            if stopped {
                break;
            }
        }
        Ok(decided)
    }

    /// Books one date (or records why not): whether it decided anything (`false`: done
    /// before), and whether that was the series' stop.
    async fn book_occurrence(&self, ctx: &CommandCtx, id: Uuid, date: NaiveDate) -> ServiceResult<(bool, bool)> {
        let stream = series_stream(id);
        let load = |mut l: Loader| {
            let stream = stream.clone();
            async move {
                let series = l.fold::<RideSeries>(&stream).await?;
                let (riders, book) = match &series {
                    Some(s) if !s.dates.contains_key(&date) && !s.cancelled_on(date) => {
                        let riders = residents(l.store(), &s.plan.riders).await?;
                        let book = book_input(&mut l, &occurrence_booking(s, date, &riders)).await?;
                        (riders, book)
                    }
                    _ => (Vec::new(), BookInput { now: l.now(), ..BookInput::default() }),
                };
                Ok((l, OccurrenceInput { series, riders, book }))
            }
        };
        let primary = ride_stream(occurrence_id(id, date));
        let done = executor::run(&self.store, ctx, &primary, load, |i| series_cmd::occurrence(i, date)).await?;
        let stopped = done.decision.events.iter().any(|(_, e)| matches!(e, BookingEvent::RideSeriesCancelled(_)));
        Ok((!done.replayed && !done.decision.is_empty(), stopped))
    }

    /// Cancels a series from a date; returns how many rides it cancelled (a retry answers
    /// the first attempt's number).
    pub async fn cancel_series(
        &self,
        ctx: &CommandCtx,
        id: Uuid,
        c: &CancelSeries,
        note: Option<&str>,
    ) -> ServiceResult<u32> {
        let stream = series_stream(id);
        let load = |mut l: Loader| {
            let stream = stream.clone();
            async move {
                let series = l.fold::<RideSeries>(&stream).await?;
                let now = l.now();
                let (mut rides, mut notes) = (Vec::new(), std::collections::BTreeMap::new());
                if let Some(s) = &series {
                    for (_, ride_id) in s.booked_from(series_cmd::cancel_from(s, c, now)) {
                        let mut input =
                            RideInput { ride: l.fold::<Ride>(&ride_stream(ride_id)).await?, now, ..Default::default() };
                        if let Some(r) = input.ride.as_ref().filter(|r| r.status.is_active()) {
                            input.schedules = schedules(&mut l, &streams_of(&[], &releases_of(r))).await?;
                            if let Some(text) = note {
                                let sealed = self.keys.seal(&ride_subject(ride_id), "cancel_note", text).await;
                                notes.insert(ride_id, sealed.map_err(ServiceError::from)?);
                            }
                        }
                        rides.push(input);
                    }
                }
                Ok((l, CancelInput { series, rides, notes, now }))
            }
        };
        let done = executor::run(&self.store, ctx, &stream, load, |i| series_cmd::cancel(i, c)).await?;
        let first = ctx.event_id(&stream, 0);
        let cancelled = |e: &BookingEvent| match e {
            BookingEvent::RideSeriesCancelled(c) => Some(c.rides.len() as u32),
            _ => None,
        };
        if done.replayed {
            let events = self.store.read_whole_stream(&stream).await?;
            let mine = events.iter().find(|e| e.id == first);
            return Ok(mine
                .and_then(|e| BookingEvent::from_stored(&e.event_type, e.payload.get()).ok().flatten())
                .and_then(|e| cancelled(&e))
                .unwrap_or(0));
        }
        Ok(done.decision.of(&stream).find_map(cancelled).unwrap_or(0))
    }

    /// Stops the active series of a retired trishaw or erased/retired pilot (the cascade
    /// of that event; their rides are cancelled by the same cascade).
    pub async fn stop_series_of(
        &self,
        cause: Uuid,
        bike: Option<Uuid>,
        pilot: Option<Uuid>,
        reason: domain::types::CancellationReason,
    ) -> ServiceResult<u32> {
        let ids = match (bike, pilot) {
            (Some(b), _) => {
                self.store
                    .fetch_texts(
                        "SELECT ride_series_id FROM booking_series WHERE bike_id = $1 AND status = 'active'",
                        &[b.into()],
                    )
                    .await?
            }
            (None, Some(p)) => {
                self.store
                    .fetch_texts(
                        "SELECT ride_series_id FROM booking_series WHERE pilot_id = $1 AND status = 'active'",
                        &[p.into()],
                    )
                    .await?
            }
            (None, None) => Vec::new(),
        };
        let mut stopped = 0;
        for id in ids.iter().filter_map(|i| i.parse::<Uuid>().ok()) {
            let stream = series_stream(id);
            let ctx = CommandCtx::system(cause, &format!("stop-series:{id}"));
            let load = |mut l: Loader| {
                let stream = stream.clone();
                async move {
                    let series = l.fold::<RideSeries>(&stream).await?;
                    let now = l.now();
                    Ok((l, (series, now)))
                }
            };
            let decide = |(s, now): &(Option<RideSeries>, DateTime<Utc>)| match s {
                Some(s) => Ok(series_cmd::stop(s, localtime::local_date(s.zone(), *now), reason, Some(cause), *now)),
                None => Ok(domain::Decision::nothing()),
            };
            let done = executor::run(&self.store, &ctx, &stream, load, decide).await?;
            stopped += u32::from(!done.decision.is_empty());
        }
        Ok(stopped)
    }

    /// The dates of a series through its horizon (every date when it is bounded), each
    /// with what became of it; `statuses` maps its rides to their status.
    pub async fn occurrences(
        &self,
        s: &RideSeries,
        statuses: &HashMap<Uuid, String>,
    ) -> ServiceResult<(Vec<OccurrenceView>, Option<NaiveDate>)> {
        let now = servicekit::clock::now();
        let horizon = match self.chapter_of(s).await? {
            Some(c) => horizon(&c, now, true),
            None => localtime::local_date(s.zone(), now),
        };
        let through = s.last_date().unwrap_or(horizon).max(s.dates.keys().next_back().copied().unwrap_or(horizon));
        let out = s
            .dates_through(through)
            .into_iter()
            .map(|date| {
                let outcome = s.dates.get(&date).cloned();
                let status = match &outcome {
                    Some(Outcome::Booked(r)) => statuses.get(r).cloned(),
                    _ => None,
                };
                OccurrenceView { date, start: s.start_on(date), outcome, status }
            })
            .collect();
        Ok((out, s.dates.keys().next_back().copied()))
    }

    /// The status of each ride a series booked, from the rides' streams (reflects every
    /// acknowledged write: the create's own answer shows the rides it booked).
    pub async fn series_ride_statuses(&self, s: &RideSeries) -> ServiceResult<HashMap<Uuid, String>> {
        let mut out = HashMap::new();
        for o in s.dates.values() {
            if let Outcome::Booked(ride_id) = o
                && let Ok((ride, _)) = self.ride(*ride_id).await
            {
                out.insert(*ride_id, ride.status.to_string());
            }
        }
        Ok(out)
    }

    /// Series of a care home (optionally of one pilot), by id after `after`.
    pub async fn list_series(
        &self,
        carehome: Uuid,
        pilot: Option<Uuid>,
        after: Option<Uuid>,
        limit: u32,
    ) -> ServiceResult<Vec<(RideSeries, u64)>> {
        let after = after.map(|a| a.to_string()).unwrap_or_default();
        let ids = match pilot {
            Some(p) => {
                self.store
                    .fetch_texts(
                        "SELECT ride_series_id FROM booking_series WHERE carehome_id = $1 AND pilot_id = $2 \
                         AND ride_series_id > $3 ORDER BY ride_series_id LIMIT $4",
                        &[carehome.into(), p.into(), Arg::Text(after), Arg::Int(i64::from(limit))],
                    )
                    .await?
            }
            None => {
                self.store
                    .fetch_texts(
                        "SELECT ride_series_id FROM booking_series WHERE carehome_id = $1 \
                         AND ride_series_id > $2 ORDER BY ride_series_id LIMIT $3",
                        &[carehome.into(), Arg::Text(after), Arg::Int(i64::from(limit))],
                    )
                    .await?
            }
        };
        let mut out = Vec::new();
        for id in ids.iter().filter_map(|i| i.parse::<Uuid>().ok()) {
            out.push(self.series(id).await?);
        }
        Ok(out)
    }

    /// Extends every active series whose horizon has moved past what it booked (the daily
    /// run: at 02:00 in its chapter's zone the horizon moves a day). Returns dates decided.
    pub async fn sweep_series(&self) -> ServiceResult<usize> {
        self.sweep_series_at(servicekit::clock::now()).await
    }

    /// The sweep as it would run at `now` (benchmarks extend a week ahead with it).
    pub async fn sweep_series_at(&self, now: DateTime<Utc>) -> ServiceResult<usize> {
        let rows: Vec<(String, String, String)> = self
            .store
            .fetch_rows(
                "SELECT ride_series_id, booked_through, doc FROM booking_series WHERE status = 'active' \
                 ORDER BY ride_series_id",
                &[],
            )
            .await?;
        let mut chapters: HashMap<Uuid, Option<ChapterFact>> = HashMap::new();
        let mut decided = 0;
        for (id, booked_through, doc) in rows {
            let (Ok(id), Ok(plan)) = (id.parse::<Uuid>(), serde_json::from_str::<RideSeriesPlanned>(&doc)) else {
                continue;
            };
            let chapter = match chapters.get(&plan.chapter_id) {
                Some(c) => c.clone(),
                None => {
                    let c: Option<ChapterFact> = facts::get(&self.store, kind::CHAPTER, plan.chapter_id).await?;
                    chapters.insert(plan.chapter_id, c.clone());
                    c
                }
            };
            let Some(chapter) = chapter else { continue };
            let through = horizon(&chapter, now, false);
            // Only series with a date after what they booked and up to the horizon (pure:
            // from the plan, without reading the series' stream).
            let probe = RideSeries { plan, dates: Default::default(), cancellation: None };
            let booked: Option<NaiveDate> = booked_through.parse().ok();
            if !probe.dates_through(through).iter().any(|d| booked.is_none_or(|b| *d > b)) {
                continue;
            }
            let extended = match self.series(id).await {
                Ok((s, _)) => self.extend_series(&s, through, Uuid::now_v7()).await,
                Err(e) => Err(e),
            };
            match extended {
                Ok(n) => decided += n,
                Err(e) => {
                    tracing::warn!(series = %id, error = %e, "extending a ride series failed; retried next sweep")
                }
            }
        }
        Ok(decided)
    }
}

/// The projection's checkpoint name.
pub const NAME: &str = "booking_series";

/// Keeps `booking_series`: one row per series (its plan, status and the last date decided).
pub struct SeriesProjection;

fn id_of(stream: &str) -> Result<Uuid, Error> {
    stream
        .strip_prefix("rideseries-")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Corrupt(format!("stream {stream}")))
}

impl Projection for SeriesProjection {
    fn name(&self) -> &str {
        NAME
    }

    fn filter(&self) -> Filter {
        Filter::category("rideseries-")
    }

    fn apply<'a>(&'a self, tx: &'a mut Tx<'_>, event: &'a RecordedEvent) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if !event.stream_id.starts_with("rideseries-") {
                return Ok(());
            }
            let Some(ev) = BookingEvent::from_stored(&event.event_type, event.payload.get()).map_err(Error::Payload)?
            else {
                return Ok(());
            };
            let id = id_of(&event.stream_id)?;
            match ev {
                BookingEvent::RideSeriesPlanned(p) => {
                    let s = RideSeries { plan: p, dates: Default::default(), cancellation: None };
                    let last = s.last_date().map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default();
                    let p = s.plan;
                    tx.execute(
                        "INSERT INTO booking_series (ride_series_id, chapter_id, carehome_id, bike_id, pilot_id, \
                         status, booked_through, last_date, doc) VALUES ($1, $2, $3, $4, $5, 'active', '', $6, $7) \
                         ON CONFLICT (ride_series_id) DO NOTHING",
                        &[
                            id.into(),
                            p.chapter_id.into(),
                            p.carehome_id.into(),
                            p.bike_id.into(),
                            p.pilot_id.into(),
                            Arg::Text(last),
                            Arg::Text(serde_json::to_string(&p).map_err(Error::Payload)?),
                        ],
                    )
                    .await?;
                }
                BookingEvent::RideSeriesOccurrenceBooked(RideSeriesOccurrenceBooked { date, .. })
                | BookingEvent::RideSeriesOccurrenceSkipped(RideSeriesOccurrenceSkipped { date, .. }) => {
                    // The last date decided ends a bounded series.
                    let d = Arg::Text(date.format("%Y-%m-%d").to_string());
                    tx.execute(
                        "UPDATE booking_series SET booked_through = CASE WHEN booked_through < $2 THEN $2 \
                         ELSE booked_through END, status = CASE WHEN status = 'active' AND last_date <> '' \
                         AND $2 >= last_date THEN 'ended' ELSE status END WHERE ride_series_id = $1",
                        &[id.into(), d],
                    )
                    .await?;
                }
                BookingEvent::RideSeriesCancelled(_) => {
                    tx.execute(
                        "UPDATE booking_series SET status = 'cancelled' WHERE ride_series_id = $1",
                        &[id.into()],
                    )
                    .await?;
                }
                _ => {}
            }
            Ok(())
        })
    }
}

/// Runs the daily extension: at start, then every [`SWEEP`].
pub async fn run_sweep(b: Booking) -> Result<(), String> {
    loop {
        b.sweep_series().await.map_err(|e| e.to_string())?;
        tokio::time::sleep(SWEEP).await;
    }
}
