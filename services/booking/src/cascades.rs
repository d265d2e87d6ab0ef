//! Invariant 7: what other services' events do to rides, and weather days. A trishaw out
//! of service or retired cancels its future rides (`equipment`); a pilot suspended,
//! retired or erased cancels theirs (`volunteer`); a closed care home cancels the rides of
//! the closed days (`facility`); consent withdrawn, a move or an erasure takes the resident
//! off future rosters. Each cancellation's event ids derive from the causing event and the
//! ride, so a cascade delivered or worked twice changes nothing the second time.
//!
//! The outbox rows written with the facts are worked at once and again after
//! `SECOND_PASS`: a booking decided on the old fact just before it arrived can commit after
//! the first sweep, never after the second (commands finish well within it).

use std::time::Duration as StdDuration;

use chrono::NaiveDate;
use domain::DomainEvent;
use domain::events::CareHomeEvent;
use domain::events::VolunteerEvent;
use domain::localtime;
use domain::types::{CancellationReason, RideStatus};
use eventlog::Arg;
use servicekit::executor::{self, Loader};
use servicekit::{CommandCtx, ServiceError, ServiceResult, clock};
use uuid::Uuid;

use crate::commands::rides::Cancel;
use crate::commands::weather::{self, WeatherInput, weather_stream};
use crate::facts::{self, CareHomeFact, ChapterFact, kind};
use crate::readmodel::{self, RideQuery};
use crate::requests::request_subject;
use crate::rides::{self, ride_subject};
use crate::rules;
use crate::service::Booking;

/// How long after the first sweep a cascade is swept again.
pub const SECOND_PASS: StdDuration = StdDuration::from_secs(15);

const ACTIVE: [RideStatus; 2] = [RideStatus::PendingConfirmation, RideStatus::Booked];

/// A correction whose effect on booked rides is asked for (`BrokenRides`) or cascaded.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// A trishaw's correction or move.
    pub bike_id: Option<Uuid>,
    /// A care home's correction.
    pub carehome_id: Option<Uuid>,
    /// New seats.
    pub seats: Option<u32>,
    /// New type.
    pub bike_type: Option<String>,
    /// New turnaround.
    pub turnaround_minutes: Option<u32>,
    /// Every future ride of the trishaw (a move).
    pub every_future: bool,
}

enum Target {
    Bike(Uuid, CancellationReason),
    Broken(Change, CancellationReason),
    Pilot(Uuid),
    ErasedPilot(Uuid),
    Home(Uuid, NaiveDate, NaiveDate),
    Resident(Uuid, &'static str),
}

fn target(event_type: &str, data: &str) -> Option<Target> {
    if let Ok(Some(e)) = CareHomeEvent::from_stored(event_type, data) {
        return match e {
            CareHomeEvent::BikeTakenOutOfService(b) => Some(Target::Bike(b.bike_id, CancellationReason::Equipment)),
            CareHomeEvent::BikeRetired(b) => Some(Target::Bike(b.bike_id, CancellationReason::Equipment)),
            CareHomeEvent::CareHomeClosed(c) => Some(Target::Home(c.carehome_id, c.dates.from, c.dates.to)),
            CareHomeEvent::BikeMoved(b) => Some(Target::Bike(b.bike_id, CancellationReason::Equipment)),
            CareHomeEvent::BikeDetailsCorrected(b) if b.seats.is_some() || b.bike_type.is_some() => {
                Some(Target::Broken(
                    Change { bike_id: Some(b.bike_id), seats: b.seats, bike_type: b.bike_type, ..Change::default() },
                    CancellationReason::Equipment,
                ))
            }
            CareHomeEvent::CareHomeDetailsCorrected(c) if c.turnaround_minutes.is_some() => Some(Target::Broken(
                Change {
                    carehome_id: Some(c.carehome_id),
                    turnaround_minutes: c.turnaround_minutes,
                    ..Change::default()
                },
                CancellationReason::Facility,
            )),
            CareHomeEvent::ResidentConsentWithdrawn(r) => Some(Target::Resident(r.resident_id, "consent_withdrawn")),
            CareHomeEvent::ResidentMovedOut(r) => Some(Target::Resident(r.resident_id, "moved_out")),
            CareHomeEvent::ResidentErased(r) => Some(Target::Resident(r.resident_id, "erased")),
            _ => None,
        };
    }
    match VolunteerEvent::from_stored(event_type, data).ok().flatten()? {
        VolunteerEvent::PilotSuspended(p) => Some(Target::Pilot(p.pilot_id)),
        VolunteerEvent::PilotRetired(p) => Some(Target::Pilot(p.pilot_id)),
        VolunteerEvent::PilotErased(p) => Some(Target::ErasedPilot(p.pilot_id)),
        _ => None,
    }
}

impl Booking {
    /// Waits until the rides read model has applied everything in the log now: up to 8 s,
    /// under the gateway's 10 s deadline (5 s was seen to run out on a loaded 2-core CI
    /// machine on PostgreSQL, right after a burst of cascades).
    async fn rides_caught_up(&self) -> ServiceResult<()> {
        servicekit::access::wait_caught_up(&self.store, readmodel::NAME, "rides").await
    }

    async fn active_rides(&self, q: RideQuery) -> ServiceResult<Vec<rides::Ride>> {
        let mut out = Vec::new();
        let mut q = RideQuery { statuses: ACTIVE.to_vec(), limit: 500, ..q };
        loop {
            let page = readmodel::list(&self.store, &q).await?;
            let last = page.last().map(|d| (d.ride.start.timestamp_micros(), d.ride.ride_id));
            let n = page.len();
            out.extend(page.into_iter().map(|d| d.ride));
            if n < q.limit {
                return Ok(out);
            }
            q.after = last;
        }
    }

    /// Cancels one ride because of `cause`, exactly once.
    async fn cancel_for(
        &self,
        cause: Uuid,
        ride_id: Uuid,
        reason: CancellationReason,
        by_role: &str,
        note: Option<&str>,
    ) -> ServiceResult<bool> {
        let ctx = CommandCtx::system(cause, &format!("cancel:{ride_id}"));
        let sealed = match note {
            Some(n) => {
                Some(self.keys.seal(&ride_subject(ride_id), "cancel_note", n).await.map_err(ServiceError::from)?)
            }
            None => None,
        };
        let cancel = Cancel { reason, by_role: by_role.into(), note: sealed, caused_by: Some(cause) };
        match self.cancel(&ctx, ride_id, &cancel).await {
            Ok(()) => Ok(true),
            // Started, completed or already cancelled meanwhile: nothing to do.
            Err(ServiceError::Conflict { .. }) | Err(ServiceError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Works one cascade; returns how many rides it changed.
    pub async fn cascade(&self, event_id: Uuid, event_type: &str, data: &str) -> ServiceResult<u32> {
        // A series stops at a retired trishaw or pilot (its rides go with the rides below).
        let stops = match (CareHomeEvent::from_stored(event_type, data), VolunteerEvent::from_stored(event_type, data))
        {
            (Ok(Some(CareHomeEvent::BikeRetired(b))), _) => {
                Some((Some(b.bike_id), None, CancellationReason::Equipment))
            }
            (_, Ok(Some(VolunteerEvent::PilotRetired(p)))) => {
                Some((None, Some(p.pilot_id), CancellationReason::Volunteer))
            }
            (_, Ok(Some(VolunteerEvent::PilotErased(p)))) => {
                Some((None, Some(p.pilot_id), CancellationReason::Volunteer))
            }
            _ => None,
        };
        if let Some((bike, pilot, reason)) = stops {
            self.stop_series_of(event_id, bike, pilot, reason).await?;
        }
        let Some(target) = target(event_type, data) else { return Ok(0) };
        self.rides_caught_up().await?;
        let now = clock::now().timestamp_micros();
        let mut changed = 0;
        match target {
            Target::Bike(bike, reason) => {
                for r in self
                    .active_rides(RideQuery { bike_id: Some(bike), from: Some(now), ..RideQuery::default() })
                    .await?
                {
                    changed += u32::from(self.cancel_for(event_id, r.ride_id, reason, "system", None).await?);
                }
            }
            Target::Broken(change, reason) => {
                for ride_id in self.broken(&change, now, true).await? {
                    changed += u32::from(self.cancel_for(event_id, ride_id, reason, "system", None).await?);
                }
            }
            Target::ErasedPilot(pilot) => {
                self.forget_pilot(pilot).await?;
                changed += self.cancel_pilot_rides(event_id, pilot, now).await?;
            }
            Target::Pilot(pilot) => changed += self.cancel_pilot_rides(event_id, pilot, now).await?,
            Target::Home(home, from, to) => {
                let Some(h) = facts::get::<CareHomeFact>(&self.store, kind::CAREHOME, home).await? else {
                    return Ok(0);
                };
                let Some(c) = facts::get::<ChapterFact>(&self.store, kind::CHAPTER, h.chapter_id).await? else {
                    return Ok(0);
                };
                let tz = rules::zone(&h, &c);
                let (start, _) = localtime::local_day(tz, from);
                let (end, _) = localtime::local_day(tz, to);
                let q = RideQuery {
                    carehome_id: Some(home),
                    from: Some(start.timestamp_micros().max(now)),
                    to: Some(end.timestamp_micros()),
                    ..RideQuery::default()
                };
                for r in self.active_rides(q).await? {
                    changed += u32::from(
                        self.cancel_for(event_id, r.ride_id, CancellationReason::Facility, "system", None).await?,
                    );
                }
            }
            Target::Resident(resident, cause) => {
                if cause == "erased" {
                    // Done already when the erasure came through the gateway (ForgetPerson);
                    // again here for erasures that did not, and for rides booked since.
                    self.forget_resident(resident).await?;
                }
                for ride_id in readmodel::rides_of_resident(&self.store, resident, now).await? {
                    let ctx = CommandCtx::system(event_id, &format!("roster:{ride_id}"));
                    match self.remove_rider(&ctx, ride_id, resident, cause).await {
                        Ok(()) => changed += 1,
                        Err(ServiceError::Conflict { .. }) | Err(ServiceError::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                for ride_id in readmodel::rides_waited_by(&self.store, resident, now).await? {
                    let ctx = CommandCtx::system(event_id, &format!("waitlist:{ride_id}"));
                    match self.leave_waitlist(&ctx, ride_id, resident, cause).await {
                        Ok(()) => changed += 1,
                        Err(ServiceError::Conflict { .. }) | Err(ServiceError::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(changed)
    }

    /// The booked (or pending) future rides a correction would break: see [`Change`]. With
    /// `one_of_each_pair`, of two rides a new turnaround makes overlap only the one booked
    /// later is named (what the cascade cancels); otherwise both (what a 409 lists).
    pub async fn broken(&self, c: &Change, now: i64, one_of_each_pair: bool) -> ServiceResult<Vec<Uuid>> {
        self.rides_caught_up().await?;
        let mut out = Vec::new();
        if let Some(bike) = c.bike_id {
            let rides =
                self.active_rides(RideQuery { bike_id: Some(bike), from: Some(now), ..RideQuery::default() }).await?;
            for r in rides {
                if c.every_future || self.breaks(c, &r).await? {
                    out.push(r.ride_id);
                }
            }
        }
        if let (Some(home), Some(turnaround)) = (c.carehome_id, c.turnaround_minutes) {
            let mut rides = self
                .active_rides(RideQuery { carehome_id: Some(home), from: Some(now), ..RideQuery::default() })
                .await?;
            rides.sort_by_key(|r| (r.bike_id, r.start, r.ride_id));
            let gap = chrono::Duration::minutes(i64::from(turnaround));
            for (i, a) in rides.iter().enumerate() {
                for b in rides[i + 1..].iter().take_while(|b| b.bike_id == a.bike_id && b.start < a.end() + gap) {
                    let later = if (b.booked_at, b.ride_id) > (a.booked_at, a.ride_id) { b } else { a };
                    let named: &[&rides::Ride] = if one_of_each_pair { &[later] } else { &[a, b] };
                    for r in named {
                        if !out.contains(&r.ride_id) {
                            out.push(r.ride_id);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether a trishaw correction breaks one of its rides: more riders than the new
    /// seats take, or a pilot not qualified for the new type on the ride's local days.
    async fn breaks(&self, c: &Change, r: &rides::Ride) -> ServiceResult<bool> {
        if let Some(seats) = c.seats
            && r.riders.len() as u32 > rides::Ride::capacity(r.kind, seats, r.duration_minutes, r.trip_minutes)
        {
            return Ok(true);
        }
        let Some(bike_type) = &c.bike_type else { return Ok(false) };
        let pilot = facts::get::<facts::PilotFact>(&self.store, kind::PILOT, r.pilot_id).await?;
        let Some((on, until)) = pilot.as_ref().and_then(|p| p.qualifications.get(bike_type)) else {
            return Ok(true);
        };
        let home = facts::get::<CareHomeFact>(&self.store, kind::CAREHOME, r.carehome_id).await?;
        let chapter = facts::get::<ChapterFact>(&self.store, kind::CHAPTER, r.chapter_id).await?;
        let tz = match (&home, &chapter) {
            (Some(h), Some(c)) => rules::zone(h, c),
            _ => chrono_tz::UTC,
        };
        let first = localtime::local_date(tz, r.start);
        let last = localtime::local_date(tz, r.end() - chrono::Duration::microseconds(1));
        Ok(first < *on || last > *until)
    }

    async fn cancel_pilot_rides(&self, cause: Uuid, pilot: Uuid, now: i64) -> ServiceResult<u32> {
        let mut changed = 0;
        for r in self.active_rides(RideQuery { pilot_id: Some(pilot), from: Some(now), ..RideQuery::default() }).await?
        {
            changed +=
                u32::from(self.cancel_for(cause, r.ride_id, CancellationReason::Volunteer, "system", None).await?);
        }
        Ok(changed)
    }

    /// Destroys the keys of every ride the resident was ever on the roster of (taken off
    /// since or not) and of the ride requests naming them; returns how many of each.
    /// Idempotent.
    pub async fn forget_resident(&self, resident: Uuid) -> ServiceResult<(usize, usize)> {
        let rides = readmodel::rides_ever_of_resident(&self.store, resident).await?;
        self.forget_rides(&rides).await?;
        let requests = readmodel::requests_naming(&self.store, resident).await?;
        for request in &requests {
            self.forget(&request_subject(*request)).await?;
        }
        // The notes of series that had the resident on their plan.
        let series = self
            .store
            .fetch_texts(
                "SELECT ride_series_id FROM booking_series WHERE doc LIKE $1",
                &[eventlog::Arg::Text(format!("%{resident}%"))],
            )
            .await?;
        self.forget_series(&series).await?;
        Ok((rides.len(), requests.len()))
    }

    /// Destroys the keys of every ride of the pilot; returns how many. Idempotent.
    pub async fn forget_pilot(&self, pilot: Uuid) -> ServiceResult<usize> {
        let rides = readmodel::rides_of_pilot(&self.store, pilot).await?;
        self.forget_rides(&rides).await?;
        let series = self
            .store
            .fetch_texts("SELECT ride_series_id FROM booking_series WHERE pilot_id = $1", &[pilot.into()])
            .await?;
        self.forget_series(&series).await?;
        Ok(rides.len())
    }

    /// Destroys the keys of series (their cancellation notes) that involved an erased person.
    async fn forget_series(&self, ids: &[String]) -> ServiceResult<()> {
        for id in ids.iter().filter_map(|i| i.parse::<Uuid>().ok()) {
            self.forget(&crate::series::series_stream(id)).await?;
        }
        Ok(())
    }

    /// Destroys the keys of rides that involved an erased person: their stories, notes and
    /// addresses become unreadable with the person's own data.
    async fn forget_rides(&self, rides: &[Uuid]) -> ServiceResult<()> {
        for ride in rides {
            self.forget(&ride_subject(*ride)).await?;
        }
        Ok(())
    }

    async fn forget(&self, subject: &str) -> ServiceResult<()> {
        self.keys.erase(subject).await.map_err(ServiceError::from)?;
        Ok(())
    }

    /// Works the outbox rows that are due; returns how many it worked.
    pub async fn work_outbox(&self) -> ServiceResult<usize> {
        /// An outbox row: `pass` 0 before the first working, 1 before the second.
        #[derive(sqlx::FromRow)]
        struct OutboxRow {
            #[sqlx(try_from = "String")]
            event_id: Uuid,
            pass: i64,
            event_type: String,
            data: String,
        }
        let now = clock::now().timestamp();
        let rows: Vec<OutboxRow> = self
            .store
            .fetch_rows(
                "SELECT event_id, pass, event_type, data FROM booking_outbox \
                 WHERE due_at <= $1 ORDER BY occurred_at, event_id LIMIT 100",
                &[Arg::Int(now)],
            )
            .await?;
        for row in &rows {
            self.cascade(row.event_id, &row.event_type, &row.data).await?;
            let (id, due) = (row.event_id.to_string(), now + SECOND_PASS.as_secs() as i64);
            let last = row.pass != 0;
            self.store
                .transaction(move |tx| {
                    Box::pin(async move {
                        if last {
                            tx.execute("DELETE FROM booking_outbox WHERE event_id = $1", &[Arg::Text(id)]).await
                        } else {
                            tx.execute(
                                "UPDATE booking_outbox SET pass = 1, due_at = $2 WHERE event_id = $1",
                                &[Arg::Text(id), Arg::Int(due)],
                            )
                            .await
                        }
                    })
                })
                .await?;
        }
        Ok(rows.len())
    }

    /// Calls off a chapter's local day for weather: every booked or pending ride starting
    /// that day (chapter's zone) is cancelled with reason `weather`. Returns how many rides
    /// this day's cancellation covers (a retried call answers the same number).
    pub async fn cancel_day_for_weather(
        &self,
        ctx: &CommandCtx,
        chapter_id: Uuid,
        date: NaiveDate,
        note: Option<String>,
    ) -> ServiceResult<u32> {
        let stream = weather_stream(chapter_id, date);
        let load = |mut l: Loader| {
            let stream = stream.clone();
            async move {
                let recorded = !l.read(&stream).await?.is_empty();
                let chapter = facts::get::<ChapterFact>(l.store(), kind::CHAPTER, chapter_id).await?;
                Ok((l, WeatherInput { chapter, recorded }))
            }
        };
        let done = executor::run(&self.store, ctx, &stream, load, |i| weather::cancel_day(i, chapter_id, date)).await?;
        let chapter: ChapterFact = match done.input.as_ref().and_then(|i| i.chapter.clone()) {
            Some(c) => c,
            None => facts::get(&self.store, kind::CHAPTER, chapter_id)
                .await?
                .ok_or_else(|| ServiceError::NotFound("chapter".into()))?,
        };
        // The cascade's cause is the day's event, recorded once. The command that recorded
        // it (and a retry of it) answers every ride that event cancelled; a later call
        // answers only the rides it cancels itself (booked since).
        let recorded_here = done.replayed || !done.decision.is_empty();
        let cause = self.store.read_whole_stream(&stream).await?.first().map_or(ctx.event_id(&stream, 0), |e| e.id);
        self.rides_caught_up().await?;
        let tz: chrono_tz::Tz = chapter.timezone.parse().unwrap_or(chrono_tz::UTC);
        let (from, to) = localtime::local_day(tz, date);
        let q = RideQuery {
            chapter_id: Some(chapter_id),
            from: Some(from.timestamp_micros()),
            to: Some(to.timestamp_micros()),
            statuses: vec![RideStatus::PendingConfirmation, RideStatus::Booked, RideStatus::Cancelled],
            limit: 500,
            ..RideQuery::default()
        };
        let mut count = 0;
        let mut q = q;
        loop {
            let page = readmodel::list(&self.store, &q).await?;
            for d in &page {
                let r = &d.ride;
                let ours = recorded_here && r.cancellation.as_ref().is_some_and(|c| c.caused_by == Some(cause));
                if ours
                    || (ACTIVE.contains(&r.status)
                        && self
                            .cancel_for(cause, r.ride_id, CancellationReason::Weather, &ctx.actor.role, note.as_deref())
                            .await?)
                {
                    count += 1;
                }
            }
            if page.len() < q.limit {
                break;
            }
            q.after = page.last().map(|d| (d.ride.start.timestamp_micros(), d.ride.ride_id));
        }
        Ok(count)
    }
}

/// Removes payload fields from care-home events still waiting in the outbox (`(event id,
/// field)`), which keeps them as the feed sent them: a migration that sealed those fields
/// in care-home's log (`samskab migrate`) leaves no clear copy here. Returns how many
/// changed. Run with booking stopped.
pub async fn drop_outbox_fields(
    store: &eventlog::EventStore,
    drops: &[(String, String)],
) -> Result<u64, eventlog::Error> {
    servicekit::feed::drop_copied_fields(
        store,
        "SELECT event_id, event_id, data FROM booking_outbox",
        "UPDATE booking_outbox SET data = $3 WHERE event_id = $1 AND event_id = $2",
        None,
        drops,
    )
    .await
}
