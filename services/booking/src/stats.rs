//! The figures of `GET /v1/stats` under the counting rule (`api.md`, *Stats*): trips,
//! rides (riders carried), distinct residents, ride minutes, trishaw hours, kilometres,
//! no-shows and cancellations by reason, in total and per month in the chapter's zone.
//!
//! Two sources, one aggregation: without `as_of` the rides come from the rides read model;
//! with `as_of` they are folded again from the ride events the log had recorded at that
//! moment (`recorded_at`, not `occurred_at`: an event recorded late about an earlier ride
//! changes no answer taken before it was recorded). Both give [`Ride`]s folded by the same
//! [`Ride::apply`], and [`Tally`] counts them, so the two paths cannot disagree.
//!
//! The rules where `api.md` is silent (see `docs/reports.md`): a ride belongs to the period
//! and the month of its scheduled start; `ride_minutes` runs from the later of the
//! scheduled start and the moment it was started to its logged end, rounded to the nearest
//! minute; kilometres are summed in whole metres so the sum does not depend on order;
//! `distinct_residents` counts the residents among the riders counted in `rides`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use domain::DomainEvent;
use domain::events::BookingEvent;
use domain::types::{CancellationReason, RideKind, RideStatus};
use eventlog::{Arg, Cursor, EventStore, Filter};
use samskab_proto::booking::v1 as pb;
use samskab_proto::time::from_proto;
use servicekit::{Aggregate, ServiceError, ServiceResult};
use uuid::Uuid;

use crate::facts::ChapterFact;
use crate::readmodel::RideDoc;
use crate::rides::Ride;

/// Which rides count: the scope filters and the period of their scheduled start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// Chapter.
    pub chapter_id: Option<Uuid>,
    /// Care home.
    pub carehome_id: Option<Uuid>,
    /// Pilot.
    pub pilot_id: Option<Uuid>,
    /// Trishaw.
    pub bike_id: Option<Uuid>,
    /// Scheduled start at or after.
    pub from: Option<DateTime<Utc>>,
    /// Scheduled start before.
    pub to: Option<DateTime<Utc>>,
}

impl Scope {
    /// Refuses a period that ends before it starts (`to == from` is an empty period, `to`
    /// being exclusive: all zeros).
    fn check_period(&self) -> ServiceResult<()> {
        match (self.from, self.to) {
            (Some(f), Some(t)) if t < f => Err(ServiceError::invalid("/to", "must not be before from")),
            _ => Ok(()),
        }
    }

    /// Whether a ride is in scope.
    pub fn contains(&self, r: &Ride) -> bool {
        self.holds(r.chapter_id, r.carehome_id, r.pilot_id, r.bike_id, r.counted_start())
    }

    /// Whether a ride as counted is in scope.
    pub fn contains_counted(&self, c: &Counted) -> bool {
        self.holds(c.chapter_id, c.carehome_id, c.pilot_id, c.bike_id, c.start)
    }

    fn holds(&self, chapter: Uuid, carehome: Uuid, pilot: Uuid, bike: Uuid, start: DateTime<Utc>) -> bool {
        self.chapter_id.is_none_or(|c| c == chapter)
            && self.carehome_id.is_none_or(|h| h == carehome)
            && self.pilot_id.is_none_or(|p| p == pilot)
            && self.bike_id.is_none_or(|b| b == bike)
            && self.from.is_none_or(|f| start >= f)
            && self.to.is_none_or(|t| start < t)
    }
}

/// What the counting rule reads of a ride, and nothing more: the scope's keys and the
/// ride's contribution to each figure. The stats count these; snapshots for `as_of`
/// (`crate::asof`) keep them instead of whole rides (a tenth of the size).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Counted {
    /// Chapter.
    #[serde(rename = "c")]
    pub chapter_id: Uuid,
    /// Care home.
    #[serde(rename = "h")]
    pub carehome_id: Uuid,
    /// Pilot.
    #[serde(rename = "p")]
    pub pilot_id: Uuid,
    /// Trishaw.
    #[serde(rename = "b")]
    pub bike_id: Uuid,
    /// The start periods and months go by ([`Ride::counted_start`]).
    #[serde(rename = "s")]
    pub start: DateTime<Utc>,
    /// Status.
    #[serde(rename = "st")]
    pub status: RideStatus,
    /// Riders carried (completed rides).
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    pub carried: Vec<Uuid>,
    /// Actual minutes (completed rides).
    #[serde(rename = "m", default)]
    pub minutes: u64,
    /// Whole metres (completed rides).
    #[serde(rename = "d", default)]
    pub distance_m: u64,
    /// Scheduled minutes.
    #[serde(rename = "n")]
    pub duration_minutes: u32,
    /// A no-show the pilot did not come to.
    #[serde(rename = "np", default)]
    pub no_show_by_pilot: bool,
    /// Why it was cancelled.
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub cancelled_for: Option<CancellationReason>,
}

impl Counted {
    /// The counting rule's view of a ride.
    pub fn of(r: &Ride) -> Counted {
        let completed = r.status == RideStatus::Completed;
        Counted {
            chapter_id: r.chapter_id,
            carehome_id: r.carehome_id,
            pilot_id: r.pilot_id,
            bike_id: r.bike_id,
            start: r.counted_start(),
            status: r.status,
            carried: if completed { riders_carried(r).collect() } else { Vec::new() },
            minutes: if completed { actual_minutes(r) } else { 0 },
            distance_m: if completed { distance_m(r) } else { 0 },
            duration_minutes: r.duration_minutes,
            no_show_by_pilot: r.status == RideStatus::NoShow && r.no_show_by.as_deref() == Some("pilot"),
            cancelled_for: if r.status == RideStatus::Cancelled {
                r.cancellation.as_ref().map(|c| c.reason)
            } else {
                None
            },
        }
    }
}

/// The figures of a set of rides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Completed rides.
    pub trips: u64,
    /// Riders carried on them.
    pub rides: u64,
    /// The residents among those riders.
    pub residents: BTreeSet<Uuid>,
    /// Actual minutes of completed rides.
    pub ride_minutes: u64,
    /// Scheduled minutes of rides not cancelled.
    pub bike_minutes: u64,
    /// Kilometres of completed rides, in whole metres.
    pub distance_m: u64,
    /// Rides marked no-show.
    pub no_shows: u64,
    /// Of them, those the pilot did not come to.
    pub no_shows_by_pilot: u64,
    /// Cancelled rides by reason.
    pub cancelled: BTreeMap<CancellationReason, u64>,
}

/// The riders a completed ride carried (the counting rule, api.md): the roster at
/// completion, or for an event ride the riders who checked in; riders recorded absent
/// (on completion, in a record or a correction) count in no figure. A recorded ride's
/// riders were all there but the absent ones.
pub fn riders_carried(r: &Ride) -> impl Iterator<Item = Uuid> + '_ {
    r.riders
        .iter()
        .filter(move |x| r.kind != RideKind::Event || x.checked_in || r.recorded)
        .map(|x| x.resident_id)
        .filter(move |id| !r.absent.contains(id))
}

/// The actual minutes of a completed ride: from the later of its scheduled start and the
/// moment it was started, to its logged end; rounded to the nearest minute, never negative.
pub fn actual_minutes(r: &Ride) -> u64 {
    let Some(end) = r.ended_at else { return 0 };
    let began = r.started_at.map_or(r.start, |s| s.max(r.start));
    let seconds = (end - began).num_seconds().max(0) as u64;
    (seconds + 30) / 60
}

impl Figures {
    /// Counts one ride.
    pub fn add(&mut self, r: &Counted) {
        match r.status {
            RideStatus::Completed => {
                self.trips += 1;
                for resident in &r.carried {
                    self.rides += 1;
                    self.residents.insert(*resident);
                }
                self.ride_minutes += r.minutes;
                self.distance_m += r.distance_m;
            }
            RideStatus::NoShow => {
                self.no_shows += 1;
                self.no_shows_by_pilot += u64::from(r.no_show_by_pilot);
            }
            RideStatus::Cancelled => {
                if let Some(reason) = r.cancelled_for {
                    *self.cancelled.entry(reason).or_default() += 1;
                }
            }
            _ => {}
        }
        if r.status != RideStatus::Cancelled {
            self.bike_minutes += u64::from(r.duration_minutes);
        }
    }

    fn proto(&self) -> pb::StatsFigures {
        let n = |reason| self.cancelled.get(&reason).copied().unwrap_or(0);
        pb::StatsFigures {
            trips: self.trips,
            rides: self.rides,
            distinct_residents: self.residents.len() as u64,
            ride_minutes: self.ride_minutes,
            bike_minutes: self.bike_minutes,
            distance_m: self.distance_m,
            no_shows: self.no_shows,
            no_shows_by_pilot: self.no_shows_by_pilot,
            no_shows_by_riders: self.no_shows - self.no_shows_by_pilot,
            cancelled: Some(pb::CancelledCounts {
                weather: n(CancellationReason::Weather),
                rider: n(CancellationReason::Rider),
                facility: n(CancellationReason::Facility),
                volunteer: n(CancellationReason::Volunteer),
                equipment: n(CancellationReason::Equipment),
                no_riders: n(CancellationReason::NoRiders),
            }),
        }
    }
}

/// Figures in total and per month ("YYYY-MM" of the scheduled start in the chapter's zone).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// All rides.
    pub total: Figures,
    /// Per month.
    pub months: BTreeMap<String, Figures>,
}

impl Tally {
    /// Counts one ride; `zone` is its chapter's.
    pub fn add(&mut self, r: &Counted, zone: Tz) {
        self.total.add(r);
        let month = r.start.with_timezone(&zone).format("%Y-%m").to_string();
        self.months.entry(month).or_default().add(r);
    }

    /// The proto form.
    pub fn proto(&self) -> pb::RideStats {
        pb::RideStats {
            figures: Some(self.total.proto()),
            by_month: self
                .months
                .iter()
                .map(|(m, f)| pb::MonthFigures { month: m.clone(), figures: Some(f.proto()) })
                .collect(),
        }
    }
}

/// The single aggregation both paths use: the rides in scope, in total and per chapter.
pub fn tally(rides: &[Ride], scope: &Scope, zones: &HashMap<Uuid, Tz>) -> (Tally, BTreeMap<Uuid, Tally>) {
    let counted: Vec<Counted> = rides.iter().map(Counted::of).collect();
    tally_counted(counted.iter(), scope, zones)
}

/// [`tally`] of rides as counted.
pub fn tally_counted<'a>(
    rides: impl Iterator<Item = &'a Counted>,
    scope: &Scope,
    zones: &HashMap<Uuid, Tz>,
) -> (Tally, BTreeMap<Uuid, Tally>) {
    let mut total = Tally::default();
    let mut chapters: BTreeMap<Uuid, Tally> = BTreeMap::new();
    for r in rides.filter(|r| scope.contains_counted(r)) {
        let zone = zones.get(&r.chapter_id).copied().unwrap_or(chrono_tz::UTC);
        total.add(r, zone);
        chapters.entry(r.chapter_id).or_default().add(r, zone);
    }
    (total, chapters)
}

fn opt(id: Option<Uuid>) -> Arg {
    Arg::Text(id.map(|i| i.to_string()).unwrap_or_default())
}

/// The rides in scope as the rides read model has them now.
pub async fn current_rides(store: &EventStore, scope: &Scope) -> Result<Vec<Ride>, eventlog::Error> {
    macro_rules! rides_led_by {
        ($lead:literal) => {
            concat!(
                "SELECT doc FROM booking_rides WHERE ",
                $lead,
                "($1 = '' OR chapter_id = $1) AND ($2 = '' OR carehome_id = $2) \
                 AND ($3 = '' OR pilot_id = $3) AND ($4 = '' OR bike_id = $4) AND start_at >= $5 AND start_at < $6 \
                 ORDER BY start_at, ride_id"
            )
        };
    }
    let sql = crate::readmodel::led_by(
        scope.bike_id,
        scope.pilot_id,
        scope.carehome_id,
        scope.chapter_id,
        [
            rides_led_by!("bike_id = $4 AND "),
            rides_led_by!("pilot_id = $3 AND "),
            rides_led_by!("carehome_id = $2 AND "),
            rides_led_by!("chapter_id = $1 AND "),
            rides_led_by!(""),
        ],
    );
    let docs = store
        .fetch_texts(
            sql,
            &[
                opt(scope.chapter_id),
                opt(scope.carehome_id),
                opt(scope.pilot_id),
                opt(scope.bike_id),
                Arg::Int(scope.from.map_or(i64::MIN, |t| t.timestamp_micros())),
                Arg::Int(scope.to.map_or(i64::MAX, |t| t.timestamp_micros())),
            ],
        )
        .await?;
    docs.iter().map(|d| serde_json::from_str::<RideDoc>(d).map(|d| d.ride).map_err(eventlog::Error::Payload)).collect()
}

/// Every ride as the log stood at `as_of`: the ride events recorded at or before it, folded.
pub async fn rides_as_of(
    store: &EventStore,
    chapter: Option<Uuid>,
    as_of: DateTime<Utc>,
) -> Result<Vec<Ride>, eventlog::Error> {
    let filter = Filter { stream_prefix: Some("ride-".into()), tenant: chapter };
    let mut rides: BTreeMap<Uuid, Ride> = BTreeMap::new();
    let mut cursor = Cursor::START;
    loop {
        let page = store.read_all(cursor, &filter, 1000).await?;
        if page.events.is_empty() {
            break;
        }
        for e in &page.events {
            if e.recorded_at > as_of {
                continue;
            }
            let Some(id) = e.stream_id.strip_prefix("ride-").and_then(|s| s.parse::<Uuid>().ok()) else { continue };
            let Some(ev) =
                BookingEvent::from_stored(&e.event_type, e.payload.get()).map_err(eventlog::Error::Payload)?
            else {
                continue;
            };
            match Ride::apply(rides.remove(&id), &ev) {
                Some(r) => {
                    rides.insert(id, r);
                }
                None => {
                    rides.remove(&id);
                }
            }
        }
        cursor = page.next;
    }
    Ok(rides.into_values().collect())
}

/// Every chapter booking knows, with its zone.
pub async fn zones(store: &EventStore) -> Result<HashMap<Uuid, Tz>, eventlog::Error> {
    let docs =
        store.fetch_texts("SELECT doc FROM booking_facts WHERE kind = $1 ORDER BY id", &["chapter".into()]).await?;
    let mut out = HashMap::new();
    for d in docs {
        let c: ChapterFact = serde_json::from_str(&d).map_err(eventlog::Error::Payload)?;
        out.insert(c.chapter_id, c.timezone.parse().unwrap_or(chrono_tz::UTC));
    }
    Ok(out)
}

/// Participation counts of one person (reports and CSV exports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rides they were on that were not cancelled (whatever became of them).
    pub signed_up: u32,
    /// Completed rides; for a resident, rides carried by the counting rule.
    pub completed: u32,
    /// Rides marked no-show.
    pub no_show: u32,
    /// Rides they were on that were cancelled.
    pub cancelled: u32,
}

impl Counts {
    fn add(&mut self, r: &Ride, completed: bool) {
        if r.status == RideStatus::Cancelled {
            self.cancelled += 1;
            return;
        }
        self.signed_up += 1;
        self.no_show += u32::from(r.status == RideStatus::NoShow);
        self.completed += u32::from(completed);
    }

    fn proto(self) -> pb::ParticipationCounts {
        pb::ParticipationCounts {
            signed_up: self.signed_up,
            completed: self.completed,
            no_show: self.no_show,
            cancelled: self.cancelled,
        }
    }
}

/// What the rides of a period add up to for one pilot or resident.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Person {
    /// Over the period.
    pub total: Counts,
    /// Per month ("YYYY-MM" of the scheduled start in the chapter's zone).
    pub months: BTreeMap<String, Counts>,
    /// Actual minutes of the completed rides.
    pub ride_minutes: u64,
    /// Whole metres of the completed rides.
    pub distance_m: u64,
    /// Scheduled start of the last ride counted as completed.
    pub last_completed: Option<DateTime<Utc>>,
}

impl Person {
    fn add(&mut self, r: &Ride, completed: bool, zone: Tz) {
        self.total.add(r, completed);
        self.months
            .entry(r.counted_start().with_timezone(&zone).format("%Y-%m").to_string())
            .or_default()
            .add(r, completed);
        if completed {
            self.last_completed = self.last_completed.max(Some(r.start));
        }
    }
}

/// Whose participation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// Per pilot: completed is the ride's status; minutes and metres are the pilot's.
    Pilots,
    /// Per resident on the roster: completed means carried, by the counting rule.
    Residents,
}

/// The whole metres of a completed ride.
pub fn distance_m(r: &Ride) -> u64 {
    (r.distance_km.unwrap_or(0.0).max(0.0) * 1000.0).round() as u64
}

/// Per person, the rides in scope under the counting rule (the one rule [`Figures::add`]
/// applies too: [`riders_carried`], [`actual_minutes`], [`distance_m`]).
pub fn participation(rides: &[Ride], by: By, zones: &HashMap<Uuid, Tz>) -> BTreeMap<Uuid, Person> {
    let mut people: BTreeMap<Uuid, Person> = BTreeMap::new();
    for r in rides {
        let zone = zones.get(&r.chapter_id).copied().unwrap_or(chrono_tz::UTC);
        let completed = r.status == RideStatus::Completed;
        match by {
            By::Pilots => {
                let p = people.entry(r.pilot_id).or_default();
                p.add(r, completed, zone);
                if completed {
                    p.ride_minutes += actual_minutes(r);
                    p.distance_m += distance_m(r);
                }
            }
            By::Residents => {
                let carried: BTreeSet<Uuid> = if completed { riders_carried(r).collect() } else { BTreeSet::new() };
                for rider in &r.riders {
                    people.entry(rider.resident_id).or_default().add(r, carried.contains(&rider.resident_id), zone);
                }
            }
        }
    }
    people
}

/// Answers a `Participation` call.
pub async fn answer_participation(
    store: &EventStore,
    r: pb::ParticipationRequest,
) -> ServiceResult<pb::ParticipationResponse> {
    let by = match r.by.as_str() {
        "pilots" => By::Pilots,
        "residents" => By::Residents,
        _ => return Err(ServiceError::invalid("/by", "must be pilots or residents")),
    };
    let scope = Scope {
        chapter_id: id("/chapter_id", &r.chapter_id)?,
        carehome_id: id("/carehome_id", &r.carehome_id)?,
        from: time("/from", &r.from)?,
        to: time("/to", &r.to)?,
        ..Scope::default()
    };
    if scope.chapter_id.is_none() && scope.carehome_id.is_none() {
        return Err(ServiceError::invalid("/chapter_id", "a chapter or a care home is required"));
    }
    scope.check_period()?;
    let rides = current_rides(store, &scope).await?;
    let zones = zones(store).await?;
    let people = participation(&rides, by, &zones)
        .into_iter()
        .map(|(id, p)| pb::PersonParticipation {
            person_id: id.to_string(),
            total: Some(p.total.proto()),
            by_month: p
                .months
                .into_iter()
                .map(|(month, c)| pb::MonthParticipation { month, counts: Some(c.proto()) })
                .collect(),
            ride_minutes: p.ride_minutes,
            distance_m: p.distance_m,
            last_completed_start: p.last_completed.map(samskab_proto::time::to_proto),
        })
        .collect();
    Ok(pb::ParticipationResponse { people })
}

/// The spread of rides per resident.
pub fn spread(counts: &[u32]) -> pb::ReachSpread {
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let total: u32 = sorted.iter().sum();
    let median = match n {
        0 => 0.0,
        _ if n % 2 == 1 => f64::from(sorted[n / 2]),
        _ => f64::from(sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    pb::ReachSpread {
        residents: n as u32,
        without_ride: sorted.iter().filter(|c| **c == 0).count() as u32,
        rides: total,
        min: sorted.first().copied().unwrap_or(0),
        max: sorted.last().copied().unwrap_or(0),
        mean: if n == 0 { 0.0 } else { (f64::from(total) / n as f64 * 100.0).round() / 100.0 },
        median,
    }
}

/// The residents living at a care home now (moved-out and erased ones left out), in id order.
async fn living_at(store: &EventStore, home: Uuid) -> ServiceResult<Vec<Uuid>> {
    let residents: Vec<crate::facts::ResidentFact> =
        crate::facts::children(store, crate::facts::kind::RESIDENT, home).await?;
    Ok(residents
        .into_iter()
        .filter(|x| x.status == domain::types::ResidentStatus::LivingHere)
        .map(|x| x.resident_id)
        .collect())
}

/// What the counting rule says carried each of `living` on `rides` (one care home's, in a
/// window), zeros included, in the order of `living`: the one count behind both reach
/// answers ([`answer_reach`] per resident, [`answer_chapter_reach`] per home and month).
/// Months are in the zone `zones` gives the ride's chapter.
pub fn reach_of(rides: &[Ride], living: &[Uuid], zones: &HashMap<Uuid, Tz>) -> Vec<(Uuid, Person)> {
    let mut carried = participation(rides, By::Residents, zones);
    living.iter().map(|id| (*id, carried.remove(id).unwrap_or_default())).collect()
}

/// Answers a `Reach` call: every resident living at the care home (booking's facts), with
/// the rides the counting rule says carried them in the window.
pub async fn answer_reach(store: &EventStore, r: pb::ReachRequest) -> ServiceResult<pb::ReachResponse> {
    let home = id("/carehome_id", &r.carehome_id)?
        .ok_or_else(|| ServiceError::invalid("/carehome_id", "a care home is required"))?;
    let scope =
        Scope { carehome_id: Some(home), from: time("/from", &r.from)?, to: time("/to", &r.to)?, ..Scope::default() };
    let rides = current_rides(store, &scope).await?;
    let living = living_at(store, home).await?;
    let mut out: Vec<pb::ResidentReach> = reach_of(&rides, &living, &HashMap::new())
        .into_iter()
        .map(|(id, p)| pb::ResidentReach {
            resident_id: id.to_string(),
            rides: p.total.completed,
            last_ride_at: p.last_completed.map(samskab_proto::time::to_proto),
        })
        .collect();
    out.sort_by(|a, b| a.rides.cmp(&b.rides).then_with(|| a.resident_id.cmp(&b.resident_id)));
    let counts: Vec<u32> = out.iter().map(|x| x.rides).collect();
    let mut buckets: BTreeMap<u32, u32> = BTreeMap::new();
    for c in &counts {
        *buckets.entry(*c).or_default() += 1;
    }
    Ok(pb::ReachResponse {
        residents: out,
        histogram: buckets.into_iter().map(|(rides, residents)| pb::ReachBucket { rides, residents }).collect(),
        spread: Some(spread(&counts)),
    })
}

/// The windows of `share_without_ride`, in days before `until`.
pub const WITHOUT_RIDE_DAYS: [i64; 3] = [30, 60, 90];

/// The `months` calendar months in `zone` ending with the month of `until`, oldest first:
/// each as `YYYY-MM`, and the instant the first of them starts (local midnight on its 1st).
pub fn month_window(until: DateTime<Utc>, months: u32, zone: Tz) -> (Vec<String>, DateTime<Utc>) {
    use chrono::{Datelike, NaiveDate, TimeZone};
    let local = until.with_timezone(&zone);
    let last = NaiveDate::from_ymd_opt(local.year(), local.month(), 1).expect("the 1st of a month");
    let first = last.checked_sub_months(chrono::Months::new(months.saturating_sub(1))).unwrap_or(NaiveDate::MIN);
    let keys = (0..months)
        .filter_map(|i| first.checked_add_months(chrono::Months::new(i)))
        .map(|m| m.format("%Y-%m").to_string())
        .collect();
    // Midnight on the 1st exists in every zone in use; a zone that skips it starts at the
    // earliest local time of that day instead.
    let start = zone
        .from_local_datetime(&first.and_hms_opt(0, 0, 0).expect("midnight"))
        .earliest()
        .or_else(|| zone.from_local_datetime(&first.and_hms_opt(1, 0, 0).expect("one o'clock")).earliest())
        .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc));
    (keys, start)
}

/// Answers a `ChapterReach` call: for every care home of the chapter (booking's facts), its
/// residents living there now, the rides that carried them per month of the window, and
/// how many of them no completed ride carried in each of the last 30, 60 and 90 days before
/// `until`. Rides belong to a window by their scheduled start, as in [`answer_reach`] (its
/// `from`/`to`), so a home's `without_ride_30` equals what `Reach` over
/// [`until` − 30 days, `until`) counts without a ride.
pub async fn answer_chapter_reach(
    store: &EventStore,
    r: pb::ChapterReachRequest,
) -> ServiceResult<pb::ChapterReachResponse> {
    let chapter = id("/chapter_id", &r.chapter_id)?
        .ok_or_else(|| ServiceError::invalid("/chapter_id", "a chapter is required"))?;
    let until = time("/until", &r.until)?.unwrap_or_else(servicekit::clock::now);
    let months = match r.months {
        0 => 12,
        m @ 1..=120 => m,
        _ => return Err(ServiceError::invalid("/months", "must be between 1 and 120")),
    };
    let zone = crate::facts::get::<ChapterFact>(store, crate::facts::kind::CHAPTER, chapter)
        .await?
        .map_or(chrono_tz::UTC, |c| c.timezone.parse().unwrap_or(chrono_tz::UTC));
    let zones = HashMap::from([(chapter, zone)]);
    let (month_keys, first) = month_window(until, months, zone);
    let since = WITHOUT_RIDE_DAYS.map(|d| until - chrono::Duration::days(d));
    let from = first.min(since[2]);
    let rides = current_rides(
        store,
        &Scope { chapter_id: Some(chapter), from: Some(from), to: Some(until), ..Scope::default() },
    )
    .await?;
    let homes: Vec<crate::facts::CareHomeFact> =
        crate::facts::children(store, crate::facts::kind::CAREHOME, chapter).await?;
    let mut out = Vec::with_capacity(homes.len());
    for home in homes {
        let living = living_at(store, home.carehome_id).await?;
        // The home's rides from `start` on (all of them end before `until`).
        let of_home = |start: DateTime<Utc>| -> Vec<Ride> {
            rides.iter().filter(|x| x.carehome_id == home.carehome_id && x.start >= start).cloned().collect()
        };
        let per_month = reach_of(&of_home(first), &living, &zones);
        let by_month = month_keys
            .iter()
            .map(|m| pb::MonthReach {
                month: m.clone(),
                rides: per_month.iter().map(|(_, p)| p.months.get(m).map_or(0, |c| c.completed)).sum(),
            })
            .collect();
        let [d30, d60, d90] = since.map(|start| {
            reach_of(&of_home(start), &living, &zones).iter().filter(|(_, p)| p.total.completed == 0).count() as u32
        });
        out.push(pb::CareHomeReach {
            carehome_id: home.carehome_id.to_string(),
            residents: living.len() as u32,
            by_month,
            without_ride_30: d30,
            without_ride_60: d60,
            without_ride_90: d90,
        });
    }
    Ok(pb::ChapterReachResponse { carehomes: out })
}

fn id(field: &str, v: &str) -> ServiceResult<Option<Uuid>> {
    if v.is_empty() { Ok(None) } else { Ok(Some(domain::types::parse_id(field, v)?)) }
}

fn time(field: &str, v: &Option<prost_types::Timestamp>) -> ServiceResult<Option<DateTime<Utc>>> {
    match v {
        None => Ok(None),
        Some(t) => from_proto(t).map(Some).ok_or_else(|| ServiceError::invalid(field, "must be an RFC 3339 time")),
    }
}

/// Answers a `Stats` call.
pub async fn answer(store: &EventStore, r: pb::StatsRequest) -> ServiceResult<pb::StatsResponse> {
    let scope = Scope {
        chapter_id: id("/chapter_id", &r.chapter_id)?,
        carehome_id: id("/carehome_id", &r.carehome_id)?,
        pilot_id: id("/pilot_id", &r.pilot_id)?,
        bike_id: id("/bike_id", &r.bike_id)?,
        from: time("/from", &r.from)?,
        to: time("/to", &r.to)?,
    };
    scope.check_period()?;
    let rides: Vec<Counted> = match time("/as_of", &r.as_of)? {
        None => current_rides(store, &scope).await?.iter().map(Counted::of).collect(),
        Some(at) => {
            // Everything committed so far must be readable before folding: on PostgreSQL an
            // older transaction open anywhere in the cluster keeps later commits unreadable
            // for a moment, and the fold would then silently miss events recorded before `at`.
            let last = store.last_committed().await?;
            if !store.wait_until_readable(last, std::time::Duration::from_secs(5)).await? {
                return Err(ServiceError::Unavailable("the log is not readable up to its last commit yet".into()));
            }
            match scope.chapter_id {
                // From the chapter's latest snapshot before `at` and the events after it.
                Some(chapter) => crate::asof::rides(store, chapter, at).await?,
                // Every chapter (the network's stats): the whole fold.
                None => rides_as_of(store, None, at).await?.iter().map(Counted::of).collect(),
            }
        }
    };
    let zones = zones(store).await?;
    let (total, per_chapter) = tally_counted(rides.iter(), &scope, &zones);
    let chapters = if r.per_chapter {
        let mut all: BTreeMap<Uuid, Tally> = zones
            .keys()
            .filter(|c| scope.chapter_id.is_none_or(|s| s == **c))
            .map(|c| (*c, Tally::default()))
            .collect();
        all.extend(per_chapter);
        all.into_iter().map(|(c, t)| pb::ChapterStats { chapter_id: c.to_string(), stats: Some(t.proto()) }).collect()
    } else {
        Vec::new()
    };
    Ok(pb::StatsResponse { total: Some(total.proto()), chapters })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rides::{Cancellation, Rider};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn ride(n: u128, status: RideStatus, start: &str, minutes: u32) -> Ride {
        Ride {
            ride_id: Uuid::from_u128(n),
            kind: RideKind::Pleasure,
            status,
            chapter_id: Uuid::from_u128(100),
            carehome_id: Uuid::from_u128(200),
            bike_id: Uuid::from_u128(300),
            pilot_id: Uuid::from_u128(400),
            start: t(start),
            duration_minutes: minutes,
            turnaround_minutes: 15,
            riders: vec![
                Rider { resident_id: Uuid::from_u128(1), checked_in: false },
                Rider { resident_id: Uuid::from_u128(2), checked_in: true },
            ],
            trip_minutes: None,
            route: None,
            ride_request_id: None,
            cancellation: None,
            started_at: None,
            ended_at: None,
            distance_km: None,
            bike_condition: None,
            story: None,
            booked_at: t("2027-01-01T00:00:00Z"),
            absent: vec![],
            recorded: false,
            no_show_by: None,
            notes: vec![],
            ride_series_id: None,
            waitlist: vec![],
        }
    }

    fn cancelled(mut r: Ride, reason: CancellationReason) -> Ride {
        r.cancellation = Some(Cancellation { reason, by_role: "x".into(), at: r.start, note: None, caused_by: None });
        r
    }

    #[test]
    fn the_worked_example_of_the_contract() {
        let mut done = ride(1, RideStatus::Completed, "2027-05-03T08:00:00Z", 60);
        done.started_at = Some(t("2026-11-01T00:00:00Z"));
        done.ended_at = Some(t("2027-05-03T08:55:00Z"));
        done.distance_km = Some(7.5);
        let rides = vec![
            done,
            cancelled(ride(2, RideStatus::Cancelled, "2027-05-03T10:00:00Z", 60), CancellationReason::Weather),
            ride(3, RideStatus::NoShow, "2027-05-03T12:00:00Z", 45),
        ];
        let zones = HashMap::from([(Uuid::from_u128(100), chrono_tz::Europe::Copenhagen)]);
        let (total, chapters) = tally(&rides, &Scope::default(), &zones);
        let f = &total.total;
        assert_eq!((f.trips, f.rides, f.residents.len(), f.ride_minutes), (1, 2, 2, 55));
        assert_eq!((f.bike_minutes, f.distance_m, f.no_shows), (105, 7500, 1));
        assert_eq!(f.cancelled.get(&CancellationReason::Weather), Some(&1));
        assert_eq!(total.months.keys().collect::<Vec<_>>(), ["2027-05"]);
        assert_eq!(chapters[&Uuid::from_u128(100)], total);
    }

    #[test]
    fn an_event_ride_counts_checked_in_riders_and_months_follow_the_zone() {
        let mut r = ride(1, RideStatus::Completed, "2027-01-31T23:30:00Z", 60);
        r.kind = RideKind::Event;
        r.ended_at = Some(t("2027-02-01T00:20:00Z"));
        r.started_at = Some(t("2027-01-31T23:40:00Z"));
        let zones = HashMap::from([(Uuid::from_u128(100), chrono_tz::Europe::Copenhagen)]);
        let (total, _) = tally(&[r], &Scope::default(), &zones);
        assert_eq!((total.total.rides, total.total.ride_minutes), (1, 40));
        // 23:30 UTC on 31 January is 00:30 on 1 February in Copenhagen.
        assert_eq!(total.months.keys().collect::<Vec<_>>(), ["2027-02"]);
    }

    #[test]
    fn participation_counts_by_the_same_rule_as_the_figures() {
        let mut done = ride(1, RideStatus::Completed, "2027-05-03T08:00:00Z", 60);
        done.kind = RideKind::Event;
        done.ended_at = Some(t("2027-05-03T08:55:00Z"));
        done.distance_km = Some(7.5);
        let rides = vec![
            done,
            cancelled(ride(2, RideStatus::Cancelled, "2027-05-03T10:00:00Z", 60), CancellationReason::Weather),
            ride(3, RideStatus::NoShow, "2027-06-03T12:00:00Z", 45),
        ];
        let zones = HashMap::from([(Uuid::from_u128(100), chrono_tz::Europe::Copenhagen)]);
        let pilots = participation(&rides, By::Pilots, &zones);
        let p = &pilots[&Uuid::from_u128(400)];
        assert_eq!(p.total, Counts { signed_up: 2, completed: 1, no_show: 1, cancelled: 1 });
        assert_eq!((p.ride_minutes, p.distance_m), (55, 7500));
        assert_eq!(p.months.keys().collect::<Vec<_>>(), ["2027-05", "2027-06"]);
        let residents = participation(&rides, By::Residents, &zones);
        // An event ride carries only the riders who checked in: resident 2, not 1.
        assert_eq!(residents[&Uuid::from_u128(1)].total.completed, 0);
        assert_eq!(residents[&Uuid::from_u128(2)].total.completed, 1);
        assert_eq!(residents[&Uuid::from_u128(2)].last_completed, Some(t("2027-05-03T08:00:00Z")));
        let (figures, _) = tally(&rides, &Scope::default(), &zones);
        let carried: u32 = residents.values().map(|p| p.total.completed).sum();
        assert_eq!(u64::from(carried), figures.total.rides, "reports and stats count riders alike");
    }

    #[test]
    fn the_spread_of_rides_per_resident() {
        let s = spread(&[2, 0, 1, 0]);
        assert_eq!((s.residents, s.without_ride, s.rides, s.min, s.max), (4, 2, 3, 0, 2));
        assert_eq!((s.mean, s.median), (0.75, 0.5));
        assert_eq!(spread(&[]).mean, 0.0);
    }

    #[test]
    fn the_scope_filters_by_object_and_scheduled_start() {
        let r = ride(1, RideStatus::Booked, "2027-05-03T08:00:00Z", 60);
        let from = Some(t("2027-05-03T08:00:00Z"));
        assert!(Scope { from, ..Scope::default() }.contains(&r));
        assert!(!Scope { to: from, ..Scope::default() }.contains(&r));
        assert!(!Scope { bike_id: Some(Uuid::from_u128(9)), ..Scope::default() }.contains(&r));
        assert!(Scope { pilot_id: Some(Uuid::from_u128(400)), ..Scope::default() }.contains(&r));
    }

    #[test]
    fn the_months_of_chapter_reach_are_local_and_end_with_the_month_of_until() {
        // 23:30 UTC on 31 January is 00:30 on 1 February in Copenhagen.
        let (keys, first) = month_window(t("2027-01-31T23:30:00Z"), 3, chrono_tz::Europe::Copenhagen);
        assert_eq!(keys, ["2026-12", "2027-01", "2027-02"]);
        assert_eq!(first, t("2026-11-30T23:00:00Z"), "local midnight on 1 December");
        let (keys, first) = month_window(t("2027-06-15T00:00:00Z"), 1, chrono_tz::UTC);
        assert_eq!((keys, first), (vec!["2027-06".to_owned()], t("2027-06-01T00:00:00Z")));
        assert_eq!(month_window(t("2027-06-15T00:00:00Z"), 12, chrono_tz::UTC).0.first().unwrap(), "2026-07");
    }

    #[test]
    fn reach_counts_only_residents_living_there_zeros_included() {
        let mut done = ride(1, RideStatus::Completed, "2027-05-03T08:00:00Z", 60);
        done.ended_at = Some(t("2027-05-03T08:55:00Z"));
        // Resident 1 (not checked in) rode a pleasure ride: carried; 2 moved out; 3 never rode.
        let living = [Uuid::from_u128(1), Uuid::from_u128(3)];
        let zones = HashMap::from([(Uuid::from_u128(100), chrono_tz::Europe::Copenhagen)]);
        let got: Vec<(Uuid, u32)> =
            reach_of(&[done], &living, &zones).into_iter().map(|(id, p)| (id, p.total.completed)).collect();
        assert_eq!(got, [(Uuid::from_u128(1), 1), (Uuid::from_u128(3), 0)]);
    }
}
