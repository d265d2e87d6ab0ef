//! Deciding notices when they fall due, on the one clock (`servicekit::clock`, which tests
//! move). Two sources: occasions events started (`notify_pending`, written with the feed's
//! checkpoint) and reminders, which follow each booked ride's start and its chapter's
//! `reminder_lead_minutes` in the ride's zone (so a 24 h reminder of a 10:00 ride is at
//! 10:00 the day before, also across a change of the clocks). A decision is an append of
//! `NoticeDecided` (or `NoticeSkipped`, when its occasion passed more than an hour ago) under
//! the notice's own id, so any number of processes deciding the same notice store it once.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use eventlog::{Arg, Error, EventStore, ExpectedVersion, NewEvent, StreamAppend};
use uuid::Uuid;

use crate::facts::{Pending, STALE_AFTER_MINUTES, from_micros, micros};
use crate::notices::{self, Facts, NoticeDecided, NoticeSkipped, channel, kind};

/// A ride as notify knows it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct RideRow {
    ride_id: String,
    chapter_id: String,
    carehome_id: String,
    pilot_id: String,
    starts_at: i64,
    riders: i64,
    reminded: String,
}

/// A chapter's zone and reminder lead times.
#[derive(Debug, Clone)]
struct Chapter {
    timezone: String,
    leads: Vec<u32>,
}

/// The zone a ride's times are told in: its home's, else its chapter's.
fn zone(home_tz: &str, chapter_tz: &str) -> String {
    if home_tz.is_empty() { chapter_tz.to_owned() } else { home_tz.to_owned() }
}

/// When a reminder `lead` minutes before `start` falls due: that many minutes earlier on
/// the wall clock of `tz` (a day-before reminder keeps the hour across a change of the
/// clocks); a wall time the change skipped moves on by the hour skipped.
pub fn reminder_due(start: DateTime<Utc>, tz: &str, lead: u32) -> DateTime<Utc> {
    let Ok(tz) = tz.parse::<Tz>() else { return start - Duration::minutes(i64::from(lead)) };
    let local = start.with_timezone(&tz).naive_local() - Duration::minutes(i64::from(lead));
    match local.and_local_timezone(tz) {
        chrono::LocalResult::Single(t) => t.to_utc(),
        chrono::LocalResult::Ambiguous(first, _) => first.to_utc(),
        chrono::LocalResult::None => {
            (local + Duration::hours(1)).and_local_timezone(tz).earliest().map_or(start, |t| t.to_utc())
        }
    }
}

async fn chapters(store: &EventStore) -> Result<HashMap<String, Chapter>, Error> {
    let rows: Vec<(String, String, String)> =
        store.fetch_rows("SELECT chapter_id, timezone, reminder_leads FROM notify_chapters", &[]).await?;
    Ok(rows
        .into_iter()
        .map(|(id, timezone, leads)| {
            (id, Chapter { timezone, leads: serde_json::from_str(&leads).unwrap_or_default() })
        })
        .collect())
}

/// Every care home's name and zone (a small table, read once per look).
async fn homes(store: &EventStore) -> Result<HashMap<String, (String, String)>, Error> {
    let rows: Vec<(String, String, String)> =
        store.fetch_rows("SELECT carehome_id, name, timezone FROM notify_carehomes", &[]).await?;
    Ok(rows.into_iter().map(|(id, name, tz)| (id, (name, tz))).collect())
}

async fn coordinators(store: &EventStore, carehome_id: &str) -> Result<Vec<String>, Error> {
    let ids = store
        .fetch_texts(
            "SELECT person_id FROM notify_coordinators WHERE carehome_id = $1 ORDER BY person_id",
            &[carehome_id.into()],
        )
        .await?;
    Ok(ids.into_iter().map(|p| format!("person:{p}")).collect())
}

/// What the decider reads once per look: chapters and care homes.
struct World {
    chapters: HashMap<String, Chapter>,
    homes: HashMap<String, (String, String)>,
}

impl World {
    /// The zone of a home's times.
    fn zone_of_home(&self, carehome_id: &str, chapter_id: &str) -> String {
        let home_tz = self.homes.get(carehome_id).map(|h| h.1.as_str()).unwrap_or("");
        let chapter_tz = self.chapters.get(chapter_id).map(|c| c.timezone.as_str()).unwrap_or("");
        zone(home_tz, chapter_tz)
    }

    /// The zone a ride's times are told in.
    fn zone_of(&self, ride: &RideRow) -> String {
        let home_tz = self.homes.get(&ride.carehome_id).map(|h| h.1.as_str()).unwrap_or("");
        let chapter_tz = self.chapters.get(&ride.chapter_id).map(|c| c.timezone.as_str()).unwrap_or("");
        zone(home_tz, chapter_tz)
    }

    fn facts_of(&self, ride: &RideRow) -> Facts {
        Facts {
            ride_id: ride.ride_id.parse().ok(),
            start: Some(from_micros(ride.starts_at)),
            timezone: self.zone_of(ride),
            carehome: self.homes.get(&ride.carehome_id).map(|h| h.0.clone()).unwrap_or_default(),
            riders: ride.riders.max(0) as u32,
            ..Facts::default()
        }
    }
}

/// What a decision is about: the kind, the occasion's key, when it fell due, the chapter.
pub(crate) struct Occasion<'a> {
    pub(crate) tenant: Option<Uuid>,
    pub(crate) kind: &'a str,
    pub(crate) key: &'a str,
    pub(crate) due_at: DateTime<Utc>,
    /// It passed more than an hour ago: recorded as skipped, never sent.
    pub(crate) stale: bool,
}

/// Decides one notice on each of `channels`: appends each decision (or, when stale, its
/// skipping) under its own id, in one append. An id already stored (another process, a
/// retry) is success. Nothing is decided for an erased recipient.
pub(crate) async fn decide(
    store: &EventStore,
    o: &Occasion<'_>,
    recipient: &str,
    facts: &Facts,
    channels: &[&str],
) -> Result<(), Error> {
    let mut batch = Batch::default();
    batch.add(store, o, recipient, facts, channels).await?;
    batch.commit(store).await
}

/// Decisions gathered to be appended together: a look at many occasions costs one turn
/// at the database's writer, not one per notice (on SQLite, whose one writer the feed
/// followers' batches also queue for, that is what keeps a burst of events from delaying
/// the next look, and with it the reminders that fall due meanwhile).
#[derive(Default)]
pub(crate) struct Batch {
    /// Each recipient's notice on its channels: one append's worth.
    decisions: Vec<Vec<StreamAppend>>,
    /// (kind, channel, outcome) of every notice, counted once stored.
    counted: Vec<(String, String, &'static str)>,
    ids: std::collections::HashSet<Uuid>,
}

impl Batch {
    /// Adds the notice of `o` to `recipient` on each of `channels` (none for an erased
    /// recipient, nor twice).
    pub(crate) async fn add(
        &mut self,
        store: &EventStore,
        o: &Occasion<'_>,
        recipient: &str,
        facts: &Facts,
        channels: &[&str],
    ) -> Result<(), Error> {
        if crate::people::erased(store, recipient).await? {
            return Ok(());
        }
        let (tenant, kind, occasion, due_at, stale) = (o.tenant, o.kind, o.key, o.due_at, o.stale);
        let mut appends = Vec::new();
        for &ch in channels {
            let notice_id = notices::notice_id(kind, occasion, recipient, ch);
            if !self.ids.insert(notice_id) {
                continue;
            }
            let decided = NoticeDecided {
                notice_id,
                kind: kind.into(),
                occasion: occasion.into(),
                recipient: recipient.into(),
                channel: ch.into(),
                due_at,
                facts: facts.clone(),
            };
            let mut event = if stale {
                NewEvent::with_id(notice_id, "NoticeSkipped", &NoticeSkipped::from(&decided))?
            } else {
                NewEvent::with_id(notice_id, "NoticeDecided", &decided)?
            };
            event.metadata.tenant = tenant;
            event.occurred_at = due_at;
            appends.push(StreamAppend::new(notices::stream(notice_id), ExpectedVersion::NoStream, vec![event]));
            self.counted.push((kind.into(), ch.into(), if stale { "skipped" } else { "decided" }));
        }
        if !appends.is_empty() {
            self.decisions.push(appends);
        }
        Ok(())
    }

    /// Appends every decision in one append. When some were stored before (another process
    /// deciding the same occasions, or this one again after a crash), that append is refused
    /// as a whole: each recipient's notice is then appended alone, and one stored before is
    /// success.
    pub(crate) async fn commit(self, store: &EventStore) -> Result<(), Error> {
        if self.decisions.is_empty() {
            return Ok(());
        }
        let all: Vec<StreamAppend> = self.decisions.iter().flatten().cloned().collect();
        match store.append(all).await {
            Ok(r) => {
                if !r.replayed {
                    for (kind, ch, outcome) in &self.counted {
                        crate::metrics::notice(kind, ch, outcome);
                    }
                }
                return Ok(());
            }
            Err(Error::IdempotencyClash { .. }) | Err(Error::WrongExpectedVersion { .. }) => {}
            Err(e) => return Err(e),
        }
        if self.decisions.len() == 1 {
            return Ok(());
        }
        let mut counted = self.counted.iter();
        for appends in self.decisions {
            let mine: Vec<_> = counted.by_ref().take(appends.len()).collect();
            match store.append(appends).await {
                Ok(r) if !r.replayed => {
                    for (kind, ch, outcome) in mine {
                        crate::metrics::notice(kind, ch, outcome);
                    }
                }
                Ok(_) | Err(Error::IdempotencyClash { .. }) | Err(Error::WrongExpectedVersion { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The channels of a ride notice: the inbox, and e-mail (whether it goes out is settled at
/// send time: the recipient's choice, an address, a relay).
const RIDE_CHANNELS: &[&str] = &[channel::INBOX, channel::EMAIL];

/// The channels of a notice of `kind` to `recipient`: the inbox and e-mail always (whether
/// e-mail goes out is settled at send time), SMS and push only when whoever chooses for the
/// recipient chose them for this kind (and it is checked again at send time).
async fn channels_for(store: &EventStore, recipient: &str, kind: &str) -> Result<Vec<&'static str>, Error> {
    let mut out = RIDE_CHANNELS.to_vec();
    if let Some(p) = crate::people::chooser_preferences(store, recipient).await? {
        let chosen = p.channels_of(kind);
        for ch in [channel::SMS, channel::PUSH] {
            if chosen.iter().any(|c| c == ch) {
                out.push(ch);
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct RequestRow {
    ride_request_id: String,
    chapter_id: String,
    carehome_id: String,
    window_from: i64,
    status: String,
    told: String,
}

async fn request(store: &EventStore, id: Uuid) -> Result<Option<RequestRow>, Error> {
    let rows: Vec<RequestRow> = store
        .fetch_rows(
            "SELECT ride_request_id, chapter_id, carehome_id, window_from, status, told FROM notify_requests \
             WHERE ride_request_id = $1",
            &[id.into()],
        )
        .await?;
    Ok(rows.into_iter().next())
}

/// How many hours before its window an unclaimed request is escalated to the chapter's
/// admins (`request.unclaimed`), each once.
pub const UNCLAIMED_LEAD_HOURS: &[i64] = &[72, 48];

/// `request.unclaimed`: 72 h and 48 h before the window of a request still open, to the
/// chapter's admins; once per (request, lead): the leads settled are kept with the request
/// (`told`), and each notice's id derives from its occasion, so a restart or a second
/// process decides none twice. A lead already past when the request was posted is settled
/// from the start.
async fn unclaimed(store: &EventStore, world: &World, now: DateTime<Utc>) -> Result<usize, Error> {
    let longest = UNCLAIMED_LEAD_HOURS.iter().copied().max().unwrap_or(0);
    let rows: Vec<RequestRow> = store
        .fetch_rows(
            "SELECT ride_request_id, chapter_id, carehome_id, window_from, status, told FROM notify_requests \
             WHERE status = 'open' AND window_from > $1 AND window_from <= $2",
            &[Arg::Int(micros(now)), Arg::Int(micros(now + Duration::hours(longest)))],
        )
        .await?;
    let stale_before = now - Duration::minutes(STALE_AFTER_MINUTES);
    let mut n = 0;
    for req in rows {
        let mut told: Vec<String> = serde_json::from_str(&req.told).unwrap_or_default();
        let before = told.len();
        let start = from_micros(req.window_from);
        for &hours in UNCLAIMED_LEAD_HOURS {
            let due_at = start - Duration::hours(hours);
            if due_at > now || told.contains(&hours.to_string()) {
                continue;
            }
            let occasion = format!("{}/{}/{hours}", kind::UNCLAIMED, req.ride_request_id);
            let facts = Facts {
                ride_request_id: req.ride_request_id.parse().ok(),
                start: Some(start),
                timezone: world.zone_of_home(&req.carehome_id, &req.chapter_id),
                carehome: world.homes.get(&req.carehome_id).map(|h| h.0.clone()).unwrap_or_default(),
                ..Facts::default()
            };
            let tenant = req.chapter_id.parse().ok();
            let o = Occasion { tenant, kind: kind::UNCLAIMED, key: &occasion, due_at, stale: due_at < stale_before };
            let chapter: Uuid = req.chapter_id.parse().unwrap_or_default();
            let object = access::Object::RideRequest { chapter, carehome: req.carehome_id.parse().unwrap_or_default() };
            let admins = store
                .fetch_texts(
                    "SELECT person_id FROM notify_chapter_admins WHERE chapter_id = $1 ORDER BY person_id",
                    &[req.chapter_id.as_str().into()],
                )
                .await?;
            for r in admins.into_iter().map(|p| format!("person:{p}")) {
                if may_read(&r, access::Role::ChapterAdmin(chapter), chapter, &object) {
                    decide(store, &o, &r, &facts, &channels_for(store, &r, o.kind).await?).await?;
                    n += 1;
                }
            }
            told.push(hours.to_string());
        }
        if told.len() != before {
            let sql = "UPDATE notify_requests SET told = $2 WHERE ride_request_id = $1";
            keep_markers(store, sql, req.ride_request_id.clone(), &told).await?;
        }
    }
    Ok(n)
}

/// How long before a qualification's last day its holder and the chapter's admins are told.
pub const QUALIFICATION_NOTICE_DAYS: i64 = 30;

#[derive(Debug, Clone, sqlx::FromRow)]
struct QualificationRow {
    pilot_id: String,
    bike_type: String,
    valid_until: String,
    chapter_id: String,
}

/// `qualification.expiring`: at midnight in the chapter's zone 30 days before a
/// qualification's last day, to the pilot and the chapter's admins; once per (pilot, type,
/// valid until): a renewal is a new occasion.
async fn qualifications(store: &EventStore, world: &World, now: DateTime<Utc>) -> Result<usize, Error> {
    let limit = (now + Duration::days(QUALIFICATION_NOTICE_DAYS + 1)).date_naive().to_string();
    let rows: Vec<QualificationRow> = store
        .fetch_rows(
            "SELECT q.pilot_id, q.bike_type, q.valid_until, p.chapter_id FROM notify_qualifications q \
             JOIN notify_pilots p ON p.pilot_id = q.pilot_id \
             WHERE p.erased = 0 AND q.told <> q.valid_until AND q.valid_until <= $1",
            &[limit.into()],
        )
        .await?;
    let stale_before = now - Duration::minutes(STALE_AFTER_MINUTES);
    let mut n = 0;
    for q in rows {
        let Ok(until) = q.valid_until.parse::<chrono::NaiveDate>() else { continue };
        let tz = world.chapters.get(&q.chapter_id).map(|c| c.timezone.clone()).unwrap_or_default();
        let day = until - Duration::days(QUALIFICATION_NOTICE_DAYS);
        let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        let due_at = match tz.parse::<Tz>() {
            Ok(tz) => midnight.and_local_timezone(tz).earliest().map_or(midnight.and_utc(), |t| t.to_utc()),
            Err(_) => midnight.and_utc(),
        };
        if due_at > now {
            continue;
        }
        let occasion = format!("{}/{}/{}/{}", kind::QUALIFICATION_EXPIRING, q.pilot_id, q.bike_type, q.valid_until);
        let facts = Facts { timezone: tz, qualification: Some((q.bike_type.clone(), until)), ..Facts::default() };
        let o = Occasion {
            tenant: q.chapter_id.parse().ok(),
            kind: kind::QUALIFICATION_EXPIRING,
            key: &occasion,
            due_at,
            stale: due_at < stale_before,
        };
        let mut to = vec![format!("pilot:{}", q.pilot_id)];
        let admins = store
            .fetch_texts(
                "SELECT person_id FROM notify_chapter_admins WHERE chapter_id = $1 ORDER BY person_id",
                &[q.chapter_id.as_str().into()],
            )
            .await?;
        to.extend(admins.into_iter().map(|p| format!("person:{p}")));
        let chapter: Uuid = q.chapter_id.parse().unwrap_or_default();
        let object = access::Object::Pilot { id: q.pilot_id.parse().unwrap_or_default(), chapter };
        for r in to.iter().filter(|r| may_read(r, access::Role::ChapterAdmin(chapter), chapter, &object)) {
            decide(store, &o, r, &facts, &channels_for(store, r, o.kind).await?).await?;
            n += 1;
        }
        let (pilot, bike_type, told) = (q.pilot_id.clone(), q.bike_type.clone(), q.valid_until.clone());
        store
            .transaction(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "UPDATE notify_qualifications SET told = $3 WHERE pilot_id = $1 AND bike_type = $2",
                        &[pilot.into(), bike_type.into(), told.into()],
                    )
                    .await
                })
            })
            .await?;
    }
    Ok(n)
}

async fn ride(store: &EventStore, ride_id: Uuid) -> Result<Option<RideRow>, Error> {
    let rows: Vec<RideRow> = store
        .fetch_rows(
            "SELECT ride_id, chapter_id, carehome_id, pilot_id, starts_at, riders, reminded FROM notify_rides \
             WHERE ride_id = $1",
            &[ride_id.into()],
        )
        .await?;
    Ok(rows.into_iter().next())
}

/// Who is told of an occasion an event started, the person who caused it left out.
async fn recipients(store: &EventStore, p: &Pending, ride: &RideRow) -> Result<Vec<String>, Error> {
    let pilot = format!("pilot:{}", ride.pilot_id);
    let by_pilot = p.actor_role == "pilot";
    let mut to = match p.kind.as_str() {
        kind::PENDING_CONFIRMATION => coordinators(store, &ride.carehome_id).await?,
        kind::BOOKED_FOR_YOU => vec![pilot.clone()],
        kind::CANCELLED | kind::WAITLIST_PROMOTED => {
            let mut to = vec![pilot.clone()];
            to.extend(coordinators(store, &ride.carehome_id).await?);
            to
        }
        // Confirmed, rescheduled, roster changed: the pilot, and the home's coordinators
        // when the pilot made the change.
        _ => {
            let mut to = vec![pilot.clone()];
            if by_pilot {
                to.extend(coordinators(store, &ride.carehome_id).await?);
            }
            to
        }
    };
    let actor = format!("person:{}", p.actor_id);
    to.retain(|r| *r != actor && !(by_pilot && *r == pilot));
    // Whoever may read the ride now, by the read rules.
    Ok(readers_of(ride, to))
}

/// Of `to`, those who may read the ride now (persons addressed as the home's coordinators).
fn readers_of(ride: &RideRow, mut to: Vec<String>) -> Vec<String> {
    let (Ok(chapter), Ok(home), Ok(pilot)) =
        (ride.chapter_id.parse(), ride.carehome_id.parse(), ride.pilot_id.parse::<Uuid>())
    else {
        return Vec::new();
    };
    let object = access::Object::Ride { chapter, carehome: home, pilot };
    to.retain(|r| may_read(r, access::Role::Coordinator(home), chapter, &object));
    to
}

/// Whether `recipient` may read `object` by the read rules (`crates/access`): a pilot
/// record as that pilot, a person in the role notify addresses them in (`as_person`).
fn may_read(recipient: &str, as_person: access::Role, chapter: Uuid, object: &access::Object) -> bool {
    let role = match recipient.split_once(':') {
        Some(("pilot", id)) => match id.parse() {
            Ok(id) => access::Role::Pilot(id),
            Err(_) => return false,
        },
        Some(("person", _)) => as_person,
        _ => return false,
    };
    access::may_read(&access::Caller { role, chapter: Some(chapter), suspended: false }, object)
}

/// What one look did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Look {
    /// Notices decided or skipped (per recipient, over every channel).
    pub decided: usize,
    /// More occasions were due than one look takes: look again at once.
    pub more: bool,
}

/// Occasions decided in one look at most (their notices are appended together).
pub const OCCASIONS_PER_LOOK: usize = 200;

/// Decides what fell due by `now`. Reminders first: their time matters most, and
/// occasions started by a burst of events (at most [`OCCASIONS_PER_LOOK`] a look, appended
/// together) wait behind them, not the other way round.
pub async fn tick(store: &EventStore, now: DateTime<Utc>) -> Result<Look, Error> {
    let world = World { chapters: chapters(store).await?, homes: homes(store).await? };
    let mut decided = reminders(store, &world, now).await?;
    decided += qualifications(store, &world, now).await?;
    decided += unclaimed(store, &world, now).await?;
    let (n, more) = occasions(store, &world, now).await?;
    Ok(Look { decided: decided + n, more })
}

/// A notice about a ride request: what it says, its occasion, and the request as the
/// access rules see it (chapter, home, object).
fn request_notice<'a>(
    world: &World,
    (request_id, req): (Uuid, &RequestRow),
    kind: &'a str,
    key: &'a str,
    due_at: i64,
    stale_before: DateTime<Utc>,
) -> (Facts, Occasion<'a>, (Uuid, Uuid, access::Object)) {
    let due_at = from_micros(due_at);
    let facts = Facts {
        ride_request_id: Some(request_id),
        start: Some(from_micros(req.window_from)),
        timezone: world.zone_of_home(&req.carehome_id, &req.chapter_id),
        carehome: world.homes.get(&req.carehome_id).map(|h| h.0.clone()).unwrap_or_default(),
        ..Facts::default()
    };
    let o = Occasion { tenant: req.chapter_id.parse().ok(), kind, key, due_at, stale: due_at < stale_before };
    let (chapter, home) = (req.chapter_id.parse().unwrap_or_default(), req.carehome_id.parse().unwrap_or_default());
    (facts, o, (chapter, home, access::Object::RideRequest { chapter, carehome: home }))
}

/// Occasions events started (`notify_pending`), oldest first; and whether more are due.
async fn occasions(store: &EventStore, world: &World, now: DateTime<Utc>) -> Result<(usize, bool), Error> {
    let stale_before = now - Duration::minutes(STALE_AFTER_MINUTES);
    let mut n = 0;
    let waiting = store.fetch_i64("SELECT COUNT(*) FROM notify_pending", &[]).await?.unwrap_or(0);
    crate::metrics::backlog(waiting);
    let due: Vec<(String, i64, String)> = store
        .fetch_rows(
            "SELECT occasion, due_at, doc FROM notify_pending WHERE due_at <= $1 ORDER BY due_at, occasion LIMIT $2",
            &[Arg::Int(micros(now)), Arg::Int(OCCASIONS_PER_LOOK as i64)],
        )
        .await?;
    let more = due.len() == OCCASIONS_PER_LOOK;
    let mut settled = Vec::with_capacity(due.len());
    let mut batch = Batch::default();
    for (occasion, due_at, doc) in due {
        let p: Pending = serde_json::from_str(&doc).map_err(Error::Payload)?;
        if let (Some(request_id), Some(pilot)) = (p.ride_request_id, p.pilot_id) {
            // An offer: to the pilot offered, while the request is still open.
            if let Some(req) = request(store, request_id).await?
                && req.status == "open"
            {
                let (facts, o, (chapter, home, object)) =
                    request_notice(world, (request_id, &req), &p.kind, &occasion, due_at, stale_before);
                let r = format!("pilot:{pilot}");
                if may_read(&r, access::Role::Coordinator(home), chapter, &object) {
                    batch.add(store, &o, &r, &facts, &channels_for(store, &r, o.kind).await?).await?;
                    n += 1;
                }
            }
        } else if let Some(request_id) = p.ride_request_id {
            if let Some(req) = request(store, request_id).await? {
                let (mut facts, o, (chapter, home, object)) =
                    request_notice(world, (request_id, &req), &p.kind, &occasion, due_at, stale_before);
                facts.ride_id = Some(p.ride_id);
                let actor = format!("person:{}", p.actor_id);
                let readers = coordinators(store, &req.carehome_id)
                    .await?
                    .into_iter()
                    .filter(|r| *r != actor && may_read(r, access::Role::Coordinator(home), chapter, &object));
                for r in readers {
                    batch.add(store, &o, &r, &facts, &channels_for(store, &r, o.kind).await?).await?;
                    n += 1;
                }
            }
        } else if let Some(ride) = ride(store, p.ride_id).await? {
            let mut facts = world.facts_of(&ride);
            facts.reason = p.reason.clone();
            let due_at = from_micros(due_at);
            let tenant = ride.chapter_id.parse().ok();
            let o = Occasion { tenant, kind: &p.kind, key: &occasion, due_at, stale: due_at < stale_before };
            for r in recipients(store, &p, &ride).await? {
                batch.add(store, &o, &r, &facts, &channels_for(store, &r, o.kind).await?).await?;
                n += 1;
            }
        }
        settled.push(occasion);
    }
    batch.commit(store).await?;
    // Settled occasions leave in one commit: after a crash before it, they are decided
    // again, which appends nothing (each notice's id is stored once).
    if !settled.is_empty() {
        store
            .transaction(move |tx| {
                Box::pin(async move {
                    let mut gone = 0;
                    for occasion in settled {
                        gone +=
                            tx.execute("DELETE FROM notify_pending WHERE occasion = $1", &[occasion.into()]).await?;
                    }
                    Ok(gone)
                })
            })
            .await?;
    }
    Ok((n, more))
}

/// How long before a ride with an empty roster its pilot and coordinators are told (24 h).
pub const NO_RIDERS_LEAD: u32 = 24 * 60;

/// Reminders of booked rides, and the empty-roster check a day before each.
async fn reminders(store: &EventStore, world: &World, now: DateTime<Utc>) -> Result<usize, Error> {
    let stale_before = now - Duration::minutes(STALE_AFTER_MINUTES);
    let mut n = 0;

    // Reminders of rides that start within the longest lead time (a day more for the
    // clocks), each lead once per start (`reminded`): a moved ride is reminded of its new
    // start.
    // (At least a day: the empty-roster check looks 24 hours ahead.)
    let longest = world.chapters.values().flat_map(|c| c.leads.iter().copied()).max().unwrap_or(0).max(NO_RIDERS_LEAD);
    let horizon = now + Duration::minutes(i64::from(longest)) + Duration::days(1);
    let rides: Vec<RideRow> = store
        .fetch_rows(
            "SELECT ride_id, chapter_id, carehome_id, pilot_id, starts_at, riders, reminded FROM notify_rides \
             WHERE status IN ('booked', 'pending_confirmation') AND starts_at > $1 AND starts_at <= $2",
            &[Arg::Int(micros(now)), Arg::Int(micros(horizon))],
        )
        .await?;
    for ride in rides {
        let Some(chapter) = world.chapters.get(&ride.chapter_id) else { continue };
        let start = from_micros(ride.starts_at);
        let zone = world.zone_of(&ride);
        let mut reminded: Vec<String> = serde_json::from_str(&ride.reminded).unwrap_or_default();
        let before = reminded.len();
        // A day before a ride with nobody on its roster: the pilot and the home's
        // coordinators, once per start (a ride moved is checked again for its new start).
        let done = format!("{}/no_riders", ride.starts_at);
        let due_at = start - Duration::minutes(i64::from(NO_RIDERS_LEAD));
        if ride.riders == 0 && due_at <= now && !reminded.contains(&done) {
            let occasion = format!("{}/{}/{}", kind::NO_RIDERS, ride.ride_id, ride.starts_at);
            let tenant = ride.chapter_id.parse().ok();
            let o = Occasion { tenant, kind: kind::NO_RIDERS, key: &occasion, due_at, stale: due_at < stale_before };
            let f = world.facts_of(&ride);
            let mut to = vec![format!("pilot:{}", ride.pilot_id)];
            to.extend(coordinators(store, &ride.carehome_id).await?);
            for r in readers_of(&ride, to) {
                decide(store, &o, &r, &f, &channels_for(store, &r, o.kind).await?).await?;
                n += 1;
            }
            reminded.push(done);
        }
        for &lead in &chapter.leads {
            let done = format!("{}/{lead}", ride.starts_at);
            let due_at = reminder_due(start, &zone, lead);
            if due_at > now || reminded.contains(&done) {
                continue;
            }
            let mut f = world.facts_of(&ride);
            f.lead_minutes = Some(lead);
            let occasion = format!("{}/{}/{done}", kind::REMINDER, ride.ride_id);
            let pilot = format!("pilot:{}", ride.pilot_id);
            let tenant = ride.chapter_id.parse().ok();
            let o = Occasion { tenant, kind: kind::REMINDER, key: &occasion, due_at, stale: due_at < stale_before };
            decide(store, &o, &pilot, &f, &channels_for(store, &pilot, o.kind).await?).await?;
            reminded.push(done);
            n += 1;
        }
        if reminded.len() != before {
            // Only the reminders of the current start are kept.
            let prefix = format!("{}/", ride.starts_at);
            reminded.retain(|r| r.starts_with(&prefix));
            let sql = "UPDATE notify_rides SET reminded = $2 WHERE ride_id = $1";
            keep_markers(store, sql, ride.ride_id.clone(), &reminded).await?;
        }
    }
    Ok(n)
}

/// Keeps the settled occasions of a ride or request (`sql`: an `UPDATE` setting its list
/// to `$2` where its id is `$1`), so a restart does not decide them again.
async fn keep_markers(store: &EventStore, sql: &'static str, id: String, markers: &[String]) -> Result<(), Error> {
    let list = serde_json::to_string(markers).map_err(Error::Payload)?;
    store.transaction(move |tx| Box::pin(async move { tx.execute(sql, &[id.into(), list.into()]).await })).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    mod batches {
        use super::*;
        testkit::both_backends!(a_look_appends_together_and_what_was_stored_before_holds_back_nothing);
    }

    /// A look's decisions go in one append; when some were stored before (another process,
    /// a look repeated after a crash) the rest are still stored, and two processes
    /// committing the same look at once store each notice once.
    async fn a_look_appends_together_and_what_was_stored_before_holds_back_nothing(db: testkit::TestDb) {
        let store = EventStore::connect(&db.sibling("notify")).await.unwrap();
        crate::migrate(&store).await.unwrap();
        let due_at = t("2027-09-06T08:00:00Z");
        let o = |key: &'static str| Occasion { tenant: None, kind: kind::CANCELLED, key, due_at, stale: false };
        let facts = Facts::default();
        let count = || async {
            let page = store.read_all(eventlog::Cursor::default(), &eventlog::Filter::all(), 10_000).await.unwrap();
            let ids: std::collections::HashSet<Uuid> = page.events.iter().map(|e| e.id).collect();
            assert_eq!(ids.len(), page.events.len(), "a notice stored twice");
            page.events.len()
        };

        decide(&store, &o("one"), "pilot:b", &facts, RIDE_CHANNELS).await.unwrap();
        assert_eq!(count().await, 2);
        let mut batch = Batch::default();
        for r in ["pilot:a", "pilot:b", "pilot:c", "pilot:a"] {
            batch.add(&store, &o("one"), r, &facts, RIDE_CHANNELS).await.unwrap();
        }
        batch.commit(&store).await.unwrap();
        assert_eq!(count().await, 6, "three recipients on two channels, each once");

        let look = || async {
            let mut batch = Batch::default();
            for n in 0..50 {
                batch.add(&store, &o("two"), &format!("pilot:{n}"), &facts, RIDE_CHANNELS).await.unwrap();
            }
            batch
        };
        let (first, second) = (look().await, look().await);
        let (a, b) = tokio::join!(first.commit(&store), second.commit(&store));
        a.unwrap();
        b.unwrap();
        assert_eq!(count().await, 106);
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_day_before_reminder_keeps_the_local_hour_across_the_change_of_the_clocks() {
        // 2027-03-28: Copenhagen moves from +01:00 to +02:00. A ride at 10:00 local on the
        // 29th (08:00 UTC) is reminded at 10:00 local on the 28th (08:00 UTC): 23 hours.
        assert_eq!(reminder_due(t("2027-03-29T08:00:00Z"), "Europe/Copenhagen", 1440), t("2027-03-28T08:00:00Z"));
        // And in autumn (2027-10-31, back to +01:00): a ride at 10:00 local that day (09:00
        // UTC) is reminded at 10:00 local on the 30th (08:00 UTC): 25 hours.
        assert_eq!(reminder_due(t("2027-10-31T09:00:00Z"), "Europe/Copenhagen", 1440), t("2027-10-30T08:00:00Z"));
        // An hour's lead is an hour.
        assert_eq!(reminder_due(t("2027-03-29T08:00:00Z"), "Europe/Copenhagen", 60), t("2027-03-29T07:00:00Z"));
        // A wall time the change skips (02:30 on the 28th) moves on by the hour skipped.
        assert_eq!(reminder_due(t("2027-03-29T00:30:00Z"), "Europe/Copenhagen", 1440), t("2027-03-28T01:30:00Z"));
        // An unknown zone: plain minutes.
        assert_eq!(reminder_due(t("2027-03-29T08:00:00Z"), "Nowhere/Else", 1440), t("2027-03-28T08:00:00Z"));
    }
}
