//! Booking's own read models, projected from its log: rides (for lists, availability and
//! cascades) with their riders, and ride requests. Single objects are read from their
//! streams; these tables may lag the log by a moment.

use domain::DomainEvent;
use domain::events::BookingEvent;
use domain::types::RideStatus;
use eventlog::{Arg, Error, EventStore, Filter, Projection, RecordedEvent, Tx};
use futures_util::future::BoxFuture;
use servicekit::Aggregate;
use uuid::Uuid;

use crate::requests::RideRequest;
use crate::rides::Ride;

/// The projection's checkpoint name.
pub const NAME: &str = "booking_rides";

/// Keeps `booking_rides`, `booking_ride_riders` and `booking_ride_requests` up to date.
pub struct RidesProjection;

fn id_of(stream: &str, prefix: &str) -> Result<Uuid, Error> {
    stream.strip_prefix(prefix).and_then(|s| s.parse().ok()).ok_or_else(|| Error::Corrupt(format!("stream {stream}")))
}

/// A ride as stored in the read model.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RideDoc {
    /// The ride.
    pub ride: Ride,
    /// Its stream's version.
    pub version: u64,
}

/// A ride request as stored in the read model.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RequestDoc {
    /// The request.
    pub request: RideRequest,
    /// Its stream's version.
    pub version: u64,
}

impl Projection for RidesProjection {
    fn name(&self) -> &str {
        NAME
    }

    /// One event is a batch of one: the same fold and writes as [`Self::apply_batch`].
    fn apply<'a>(&'a self, tx: &'a mut Tx<'_>, event: &'a RecordedEvent) -> BoxFuture<'a, Result<(), Error>> {
        self.apply_batch(tx, std::slice::from_ref(event))
    }

    fn filter(&self) -> Filter {
        Filter::all()
    }

    /// `ride-` and `riderequest-` streams: `apply` ignores every other event.
    fn rebuild_filter(&self) -> Filter {
        Filter::category("ride")
    }

    /// Folds the batch in memory: each ride and request touched is read once, brought up
    /// to date with all of its events of the batch, and written once (multi-row
    /// statements). The outcome equals applying the events one by one.
    fn apply_batch<'a>(&'a self, tx: &'a mut Tx<'_>, events: &'a [RecordedEvent]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut fold = Fold::default();
            let (rides, requests) = fold.touch(events)?;
            fold.load(tx, &rides, &requests).await?;
            fold.apply();
            fold.flush(tx, |_| true, |_| true).await?;
            Ok(())
        })
    }
}

/// The rides projection as a rebuild runs it ([`crate::rebuild`]): the fold is carried
/// from page to page, so a ride is written when it can change no more (completed,
/// cancelled, no-show) or at the end, not once per page it has events in (a booking and
/// its ride's day are weeks of history apart). What it holds is bounded: past `hold`
/// objects held, everything is written. The outcome equals applying the events one by one.
pub struct RidesRebuild {
    hold: usize,
    carried: std::sync::Mutex<Carried>,
}

/// What a rebuild carries between pages.
#[derive(Default)]
struct Carried {
    fold: Fold,
    /// Rides and requests written to the tables so far (the rebuild emptied them first):
    /// only these need reading back when an event touches them again.
    written_rides: std::collections::HashSet<Uuid>,
    written_requests: std::collections::HashSet<Uuid>,
}

impl RidesRebuild {
    /// Holds at most `hold` rides and requests between pages.
    pub fn new(hold: usize) -> Self {
        RidesRebuild { hold, carried: Default::default() }
    }

    fn take(&self) -> Carried {
        std::mem::take(&mut *self.carried.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn put(&self, c: Carried) {
        *self.carried.lock().unwrap_or_else(|e| e.into_inner()) = c;
    }
}

impl Projection for RidesRebuild {
    fn name(&self) -> &str {
        NAME
    }

    fn apply<'a>(&'a self, tx: &'a mut Tx<'_>, event: &'a RecordedEvent) -> BoxFuture<'a, Result<(), Error>> {
        self.apply_batch(tx, std::slice::from_ref(event))
    }

    fn rebuild_filter(&self) -> Filter {
        RidesProjection.rebuild_filter()
    }

    /// The rides' secondary indexes are created once at the end, not kept up per row.
    fn rebuild_tables(&self) -> &'static [&'static str] {
        &["booking_rides", "booking_ride_riders", "booking_ride_requests"]
    }

    fn apply_batch<'a>(&'a self, tx: &'a mut Tx<'_>, events: &'a [RecordedEvent]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut c = self.take();
            let (rides, requests) = c.fold.touch(events)?;
            let rides: Vec<Uuid> = rides.into_iter().filter(|id| c.written_rides.contains(id)).collect();
            let requests: Vec<Uuid> = requests.into_iter().filter(|id| c.written_requests.contains(id)).collect();
            c.fold.load(tx, &rides, &requests).await?;
            c.fold.apply();
            let all = c.fold.rides.held() + c.fold.requests.held() > self.hold;
            // A ride that is no longer active takes no more events in the usual history; a
            // later one (a correction) reads it back. Requests are few: held to the end.
            let (written_rides, written_requests) =
                c.fold.flush(tx, |r: &Ride| all || !r.status.is_active(), |_: &RideRequest| all).await?;
            c.written_rides.extend(written_rides);
            c.written_requests.extend(written_requests);
            self.put(c);
            Ok(())
        })
    }

    fn finish_rebuild<'a>(&'a self, tx: &'a mut Tx<'_>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut c = self.take();
            c.fold.flush(tx, |_| true, |_| true).await?;
            Ok(())
        })
    }
}

/// Rides and requests being folded: their stored state, then after each event.
#[derive(Default)]
struct Fold {
    rides: Folding<Ride>,
    requests: Folding<RideRequest>,
    /// Events touched and not yet applied: (is a ride, id, event, stream version).
    decoded: Vec<(bool, Uuid, BookingEvent, u64)>,
}

impl Fold {
    /// Decodes the events of ride and request streams and notes their objects; returns the
    /// rides and requests not held before (their stored rows may need reading).
    fn touch(&mut self, events: &[RecordedEvent]) -> Result<(Vec<Uuid>, Vec<Uuid>), Error> {
        let (mut new_rides, mut new_requests) = (Vec::new(), Vec::new());
        for event in events {
            let is_ride = event.stream_id.starts_with("ride-");
            let is_request = event.stream_id.starts_with("riderequest-");
            if !is_ride && !is_request {
                continue;
            }
            let Some(ev) = BookingEvent::from_stored(&event.event_type, event.payload.get()).map_err(Error::Payload)?
            else {
                continue;
            };
            if is_ride {
                let id = id_of(&event.stream_id, "ride-")?;
                if self.rides.touch(id) {
                    new_rides.push(id);
                }
                self.decoded.push((true, id, ev, event.version));
            } else {
                let id = id_of(&event.stream_id, "riderequest-")?;
                if self.requests.touch(id) {
                    new_requests.push(id);
                }
                self.decoded.push((false, id, ev, event.version));
            }
        }
        Ok((new_rides, new_requests))
    }

    /// Reads the stored rows of these rides and requests.
    async fn load(&mut self, tx: &mut Tx<'_>, rides: &[Uuid], requests: &[Uuid]) -> Result<(), Error> {
        let ids = |ids: &[Uuid]| ids.iter().map(|&id| Arg::from(id)).collect::<Vec<_>>();
        for (id, doc) in
            tx.fetch_pairs_in("SELECT ride_id, doc FROM booking_rides WHERE ride_id IN", &ids(rides), "").await?
        {
            let d: RideDoc = serde_json::from_str(&doc).map_err(Error::Payload)?;
            self.rides.stored(&id, d.ride, d.version)?;
        }
        for (id, doc) in tx
            .fetch_pairs_in(
                "SELECT ride_request_id, doc FROM booking_ride_requests WHERE ride_request_id IN",
                &ids(requests),
                "",
            )
            .await?
        {
            let d: RequestDoc = serde_json::from_str(&doc).map_err(Error::Payload)?;
            self.requests.stored(&id, d.request, d.version)?;
        }
        Ok(())
    }

    /// Applies the events touched, in log order.
    fn apply(&mut self) {
        for (is_ride, id, ev, version) in std::mem::take(&mut self.decoded) {
            if is_ride {
                self.rides.apply(id, &ev, version);
            } else {
                self.requests.apply(id, &ev, version);
            }
        }
    }

    /// Writes the changed rides and requests that `ride`/`request` pick (multi-row
    /// statements), and stops holding every one picked; returns the ids written.
    async fn flush(
        &mut self,
        tx: &mut Tx<'_>,
        ride: impl Fn(&Ride) -> bool,
        request: impl Fn(&RideRequest) -> bool,
    ) -> Result<(Vec<Uuid>, Vec<Uuid>), Error> {
        let requests = self.requests.take(request);
        let mut request_rows = Vec::new();
        for (id, r, version, _) in &requests {
            let doc = RequestDoc { request: r.clone(), version: *version };
            request_rows.push(vec![
                (*id).into(),
                r.chapter_id.into(),
                r.carehome_id.into(),
                Arg::Text(r.status.to_string()),
                Arg::Int(r.window_to.timestamp_micros()),
                Arg::Text(serde_json::to_string(&doc).map_err(Error::Payload)?),
            ]);
        }
        tx.insert_rows(
            "INSERT INTO booking_ride_requests (ride_request_id, chapter_id, carehome_id, status, window_to, doc)",
            &request_rows,
            "ON CONFLICT (ride_request_id) DO UPDATE SET status = excluded.status, \
             window_to = excluded.window_to, doc = excluded.doc",
        )
        .await?;
        let rides = self.rides.take(ride);
        // Riders are replaced for rides that had a row; a ride new to the table has none.
        let (mut ride_rows, mut rider_rows, mut stored_ids) = (Vec::new(), Vec::new(), Vec::new());
        for (id, r, version, was_stored) in &rides {
            let doc = RideDoc { ride: r.clone(), version: *version };
            if *was_stored {
                stored_ids.push(Arg::from(*id));
            }
            ride_rows.push(vec![
                (*id).into(),
                r.chapter_id.into(),
                r.carehome_id.into(),
                r.bike_id.into(),
                r.pilot_id.into(),
                // Periods select rides by their start, the actual one once completed.
                Arg::Int(r.counted_start().timestamp_micros()),
                Arg::Int(r.end().timestamp_micros()),
                Arg::Text(r.status.to_string()),
                Arg::Int(*version as i64),
                Arg::Text(serde_json::to_string(&doc).map_err(Error::Payload)?),
            ]);
            for x in &r.riders {
                rider_rows.push(vec![(*id).into(), x.resident_id.into(), Arg::Int(r.start.timestamp_micros())]);
            }
        }
        tx.insert_rows(
            "INSERT INTO booking_rides (ride_id, chapter_id, carehome_id, bike_id, pilot_id, start_at, end_at, status, version, doc)",
            &ride_rows,
            "ON CONFLICT (ride_id) DO UPDATE SET start_at = excluded.start_at, end_at = excluded.end_at, \
             status = excluded.status, version = excluded.version, doc = excluded.doc",
        )
        .await?;
        tx.execute_in("DELETE FROM booking_ride_riders WHERE ride_id IN", &stored_ids, "").await?;
        tx.insert_rows("INSERT INTO booking_ride_riders (ride_id, resident_id, start_at)", &rider_rows, "").await?;
        Ok((rides.iter().map(|r| r.0).collect(), requests.iter().map(|r| r.0).collect()))
    }
}

/// Objects of one table being folded: their state as stored (if read), then after each
/// of their events, in the order first touched.
struct Folding<T> {
    order: Vec<Uuid>,
    /// State, stream version, changed since read.
    state: std::collections::HashMap<Uuid, (Option<T>, u64, bool)>,
    stored: std::collections::HashSet<Uuid>,
}

impl<T> Default for Folding<T> {
    fn default() -> Self {
        Folding { order: Vec::new(), state: Default::default(), stored: Default::default() }
    }
}

impl<T: Aggregate<Event = BookingEvent> + Clone> Folding<T> {
    /// Notes an object; true if it was not held.
    fn touch(&mut self, id: Uuid) -> bool {
        if self.state.contains_key(&id) {
            return false;
        }
        self.order.push(id);
        self.state.insert(id, (None, 0, false));
        true
    }

    fn held(&self) -> usize {
        self.state.len()
    }

    fn stored(&mut self, id: &str, value: T, version: u64) -> Result<(), Error> {
        let id: Uuid = id.parse().map_err(|_| Error::Corrupt(format!("read-model id {id}")))?;
        if let Some(s) = self.state.get_mut(&id) {
            *s = (Some(value), version, false);
            self.stored.insert(id);
        }
        Ok(())
    }

    /// As `apply` does for one event: an event the aggregate ignores changes nothing.
    fn apply(&mut self, id: Uuid, event: &BookingEvent, version: u64) {
        let Some(s) = self.state.get_mut(&id) else { return };
        if let Some(after) = T::apply(s.0.clone(), event) {
            *s = (Some(after), version, true);
        }
    }

    /// Stops holding the objects that are absent, unchanged, or that `pick` picks, in the
    /// order first touched; returns those changed, as (id, state, version, whether the
    /// table held a row for it before).
    fn take(&mut self, pick: impl Fn(&T) -> bool) -> Vec<(Uuid, T, u64, bool)> {
        let mut out = Vec::new();
        let (state, stored) = (&mut self.state, &mut self.stored);
        self.order.retain(|id| {
            let release = match state.get(id) {
                Some((Some(v), _, true)) => pick(v),
                _ => true,
            };
            if release {
                if let Some((Some(v), version, true)) = state.remove(id) {
                    out.push((*id, v, version, stored.remove(id)));
                } else {
                    stored.remove(id);
                }
            }
            !release
        });
        out
    }
}

/// Which rides to list.
#[derive(Debug, Clone, Default)]
pub struct RideQuery {
    /// Chapter.
    pub chapter_id: Option<Uuid>,
    /// Care home.
    pub carehome_id: Option<Uuid>,
    /// Pilot.
    pub pilot_id: Option<Uuid>,
    /// Trishaw.
    pub bike_id: Option<Uuid>,
    /// Starting at or after (µs).
    pub from: Option<i64>,
    /// Starting before (µs).
    pub to: Option<i64>,
    /// Statuses (empty: all).
    pub statuses: Vec<RideStatus>,
    /// After this (start µs, ride id).
    pub after: Option<(i64, Uuid)>,
    /// Page size.
    pub limit: usize,
}

fn opt(id: Option<Uuid>) -> Arg {
    Arg::Text(id.map(|i| i.to_string()).unwrap_or_default())
}

/// Lists rides in (start, id) order.
pub async fn list(store: &EventStore, q: &RideQuery) -> Result<Vec<RideDoc>, Error> {
    let statuses: Vec<&str> = if q.statuses.is_empty() {
        RideStatus::ALL.iter().map(|s| s.as_str()).collect()
    } else {
        q.statuses.iter().map(|s| s.as_str()).collect()
    };
    let mut args = vec![
        opt(q.chapter_id),
        opt(q.carehome_id),
        opt(q.pilot_id),
        opt(q.bike_id),
        Arg::Int(q.from.unwrap_or(i64::MIN)),
        Arg::Int(q.to.unwrap_or(i64::MAX)),
        Arg::Int(q.after.map_or(i64::MIN, |a| a.0)),
        Arg::Text(q.after.map(|a| a.1.to_string()).unwrap_or_default()),
        Arg::Int(q.limit as i64),
    ];
    for i in 0..6 {
        args.push(Arg::Text(statuses.get(i).copied().unwrap_or(statuses[0]).to_owned()));
    }
    let sql = led_by(
        q.bike_id,
        q.pilot_id,
        q.carehome_id,
        q.chapter_id,
        [
            statements::LIST_BY_BIKE,
            statements::LIST_BY_PILOT,
            statements::LIST_BY_CAREHOME,
            statements::LIST_BY_CHAPTER,
            statements::LIST_UNLED,
        ],
    );
    let docs = store.fetch_texts(sql, &args).await?;
    docs.iter().map(|d| serde_json::from_str(d).map_err(Error::Payload)).collect()
}

/// How many trishaws one [`statements::ACTIVE_OF_BIKES`] asks for.
pub const BIKES_PER_STATEMENT: usize = 8;

/// The rides of `bikes` starting in [from, to) (µs) that still hold their trishaw (pending
/// confirmation, booked, started), in no particular order: a care home's availability
/// asks for all its trishaws in one statement per [`BIKES_PER_STATEMENT`] instead of one
/// per trishaw.
pub async fn active_of_bikes(store: &EventStore, bikes: &[Uuid], from: i64, to: i64) -> Result<Vec<RideDoc>, Error> {
    let mut out = Vec::new();
    for chunk in bikes.chunks(BIKES_PER_STATEMENT) {
        // Unused slots repeat the first trishaw: one statement text whatever the count.
        let mut args: Vec<Arg> =
            (0..BIKES_PER_STATEMENT).map(|i| Arg::Text(chunk.get(i).unwrap_or(&chunk[0]).to_string())).collect();
        args.extend([Arg::Int(from), Arg::Int(to)]);
        for d in store.fetch_texts(statements::ACTIVE_OF_BIKES, &args).await? {
            out.push(serde_json::from_str(&d).map_err(Error::Payload)?);
        }
    }
    Ok(out)
}

/// The statement led by an equality on the most selective filter present (trishaw, pilot,
/// care home, chapter: each has an index on `(column, start_at)`), or the last one.
///
/// The filters also stay in the `($n = '' OR column = $n)` form that lets one statement
/// serve every combination; but a planner cannot use an index for that form, so a
/// statement of that form alone scanned and sorted every ride on each call (a pilot's
/// list, each trishaw's availability), which was most of the CPU under load.
pub(crate) fn led_by(
    bike: Option<Uuid>,
    pilot: Option<Uuid>,
    carehome: Option<Uuid>,
    chapter: Option<Uuid>,
    statements: [&'static str; 5],
) -> &'static str {
    let [by_bike, by_pilot, by_carehome, by_chapter, unled] = statements;
    if bike.is_some() {
        by_bike
    } else if pilot.is_some() {
        by_pilot
    } else if carehome.is_some() {
        by_carehome
    } else if chapter.is_some() {
        by_chapter
    } else {
        unled
    }
}

/// The read model's hot statements, one constant each: the functions here run them and
/// `plan_tests` EXPLAINs these texts on both backends (issue 22).
pub mod statements {
    macro_rules! list_led_by {
        ($lead:literal) => {
            concat!(
                "SELECT doc FROM booking_rides WHERE ",
                $lead,
                "($1 = '' OR chapter_id = $1) AND ($2 = '' OR carehome_id = $2) \
                 AND ($3 = '' OR pilot_id = $3) AND ($4 = '' OR bike_id = $4) AND start_at >= $5 AND start_at < $6 \
                 AND (start_at > $7 OR (start_at = $7 AND ride_id > $8)) \
                 AND status IN ($10, $11, $12, $13, $14, $15) ORDER BY start_at, ride_id LIMIT $9"
            )
        };
    }
    /// Rides of a trishaw (its availability, every booking's check of the day).
    pub const LIST_BY_BIKE: &str = list_led_by!("bike_id = $4 AND ");
    /// Rides of a pilot.
    pub const LIST_BY_PILOT: &str = list_led_by!("pilot_id = $3 AND ");
    /// Rides of a care home.
    pub const LIST_BY_CAREHOME: &str = list_led_by!("carehome_id = $2 AND ");
    /// Rides of a chapter.
    pub const LIST_BY_CHAPTER: &str = list_led_by!("chapter_id = $1 AND ");
    /// Every ride in a window (an admin's list), by `booking_rides_start`.
    pub const LIST_UNLED: &str = list_led_by!("");
    /// The rides holding one of eight trishaws in a window (`$1`..`$8`: the trishaws,
    /// `$9`, `$10`: the window), by `booking_rides_bike`.
    pub const ACTIVE_OF_BIKES: &str = "SELECT doc FROM booking_rides \
         WHERE bike_id IN ($1, $2, $3, $4, $5, $6, $7, $8) AND start_at >= $9 AND start_at < $10 \
         AND status IN ('pending_confirmation', 'booked', 'started')";
    /// Active rides of a resident not yet ended.
    pub const RIDES_OF_RESIDENT: &str = "SELECT r.ride_id FROM booking_ride_riders r \
         JOIN booking_rides d ON d.ride_id = r.ride_id \
         WHERE r.resident_id = $1 AND d.end_at > $2 AND d.status IN ('pending_confirmation', 'booked')";
    /// Every ride of a pilot.
    pub const RIDES_OF_PILOT: &str = "SELECT ride_id FROM booking_rides WHERE pilot_id = $1";
    /// Every ride a resident is on the roster of.
    pub const ALL_RIDES_OF_RESIDENT: &str = "SELECT ride_id FROM booking_ride_riders WHERE resident_id = $1";

    macro_rules! requests_led_by {
        ($lead:literal) => {
            concat!(
                "SELECT doc FROM booking_ride_requests WHERE ",
                $lead,
                "($1 = '' OR carehome_id = $1) AND ($2 = '' OR chapter_id = $2) \
                 AND ride_request_id > $3 AND status IN ($5, $6, $7, $8) ORDER BY ride_request_id LIMIT $4"
            )
        };
    }
    /// Ride requests of a care home.
    pub const REQUESTS_BY_CAREHOME: &str = requests_led_by!("carehome_id = $1 AND ");
    /// Ride requests of a chapter or of all (in id order, filtered on the way: requests are few).
    pub const REQUESTS_UNLED: &str = requests_led_by!("");

    /// Every one that must read an index, named.
    pub const HOT: &[(&str, &str)] = &[
        ("list_by_bike", LIST_BY_BIKE),
        ("list_by_pilot", LIST_BY_PILOT),
        ("list_by_carehome", LIST_BY_CAREHOME),
        ("list_by_chapter", LIST_BY_CHAPTER),
        ("list_unled", LIST_UNLED),
        ("active_of_bikes", ACTIVE_OF_BIKES),
        ("booking_facts", crate::facts::statements::BOOKING_FACTS),
        ("home_facts", crate::facts::statements::HOME_FACTS),
        ("residents", crate::facts::statements::RESIDENTS),
        ("rides_of_resident", RIDES_OF_RESIDENT),
        ("rides_of_pilot", RIDES_OF_PILOT),
        ("all_rides_of_resident", ALL_RIDES_OF_RESIDENT),
        ("requests_by_carehome", REQUESTS_BY_CAREHOME),
    ];
}

/// Active rides of a resident overlapping [from, to) (µs).
pub async fn rides_of_resident(store: &EventStore, resident: Uuid, from: i64) -> Result<Vec<Uuid>, Error> {
    let ids = store.fetch_texts(statements::RIDES_OF_RESIDENT, &[resident.into(), Arg::Int(from)]).await?;
    Ok(ids.iter().filter_map(|i| i.parse().ok()).collect())
}

/// The pending or booked rides not yet ended whose waitlist may name `resident` (a
/// candidate list: the caller checks each ride's stream).
pub async fn rides_waited_by(store: &EventStore, resident: Uuid, from: i64) -> Result<Vec<Uuid>, Error> {
    let ids = store
        .fetch_texts(
            "SELECT ride_id FROM booking_rides \
             WHERE end_at > $2 AND status IN ('pending_confirmation', 'booked') AND doc LIKE $1",
            &[Arg::Text(format!("%\"waitlist\":[%{resident}%")), Arg::Int(from)],
        )
        .await?;
    Ok(ids.iter().filter_map(|i| i.parse().ok()).collect())
}

/// Every ride a pilot has been booked on, in any status.
pub async fn rides_of_pilot(store: &EventStore, pilot: Uuid) -> Result<Vec<Uuid>, Error> {
    let ids = store.fetch_texts(statements::RIDES_OF_PILOT, &[pilot.into()]).await?;
    Ok(ids.iter().filter_map(|i| i.parse().ok()).collect())
}

/// Every ride a resident is on the roster of, in any status.
pub async fn all_rides_of_resident(store: &EventStore, resident: Uuid) -> Result<Vec<Uuid>, Error> {
    let ids = store.fetch_texts(statements::ALL_RIDES_OF_RESIDENT, &[resident.into()]).await?;
    Ok(ids.iter().filter_map(|i| i.parse().ok()).collect())
}

/// Every ride a resident was ever on the roster of: booked with them or given them later,
/// whether taken off since or not. Derived from the log (the read model keeps today's
/// rosters only); one scan of the rides' roster events, for erasures and access exports.
pub async fn rides_ever_of_resident(store: &EventStore, resident: Uuid) -> Result<Vec<Uuid>, Error> {
    let streams = store
        .fetch_texts(
            "SELECT DISTINCT stream_id FROM eventlog_events \
             WHERE event_type IN ('RideBooked', 'RiderAddedToRoster', 'RideRecorded') AND stream_id LIKE 'ride-%' \
               AND CAST(payload AS TEXT) LIKE $1 ORDER BY stream_id",
            &[Arg::Text(format!("%{resident}%"))],
        )
        .await?;
    let mut ids: Vec<Uuid> = streams.iter().filter_map(|s| s.strip_prefix("ride-")?.parse().ok()).collect();
    for id in all_rides_of_resident(store, resident).await? {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Ride requests that name a resident.
pub async fn requests_naming(store: &EventStore, resident: Uuid) -> Result<Vec<Uuid>, Error> {
    let ids = store
        .fetch_texts(
            "SELECT ride_request_id FROM booking_ride_requests WHERE doc LIKE $1",
            &[Arg::Text(format!("%{resident}%"))],
        )
        .await?;
    Ok(ids.iter().filter_map(|i| i.parse().ok()).collect())
}

/// Ride requests of a care home or chapter, by status, in id order.
pub async fn list_requests(
    store: &EventStore,
    carehome_id: Option<Uuid>,
    chapter_id: Option<Uuid>,
    statuses: &[String],
    after: Option<Uuid>,
    limit: usize,
) -> Result<Vec<RequestDoc>, Error> {
    let all = ["open", "claimed", "withdrawn", "expired"];
    let st: Vec<String> =
        if statuses.is_empty() { all.iter().map(|s| s.to_string()).collect() } else { statuses.to_vec() };
    let mut args = vec![
        opt(carehome_id),
        opt(chapter_id),
        Arg::Text(after.map(|a| a.to_string()).unwrap_or_default()),
        Arg::Int(limit as i64),
    ];
    for i in 0..4 {
        args.push(Arg::Text(st.get(i).cloned().unwrap_or_else(|| st[0].clone())));
    }
    // Led by the care home when there is one, for its index (see `led_by`).
    let sql = if carehome_id.is_some() { statements::REQUESTS_BY_CAREHOME } else { statements::REQUESTS_UNLED };
    let docs = store.fetch_texts(sql, &args).await?;
    docs.iter().map(|d| serde_json::from_str(d).map_err(Error::Payload)).collect()
}

/// Open requests whose window ended before `now` (µs).
pub async fn expired_requests(store: &EventStore, now: i64) -> Result<Vec<Uuid>, Error> {
    let ids = store
        .fetch_texts(
            "SELECT ride_request_id FROM booking_ride_requests WHERE status = 'open' AND window_to <= $1",
            &[Arg::Int(now)],
        )
        .await?;
    Ok(ids.iter().filter_map(|i| i.parse().ok()).collect())
}

/// Whether the projection has applied every event committed so far (read your writes for
/// lists and cascades). Measured against the last committed event, not the readable head:
/// on PostgreSQL the head stays behind a ride committed just now while any older
/// transaction in the cluster is open, and a cascade would then miss that ride.
pub async fn caught_up(store: &EventStore) -> Result<bool, Error> {
    servicekit::access::caught_up(store, NAME).await
}

/// The hot statements' plans, pinned on both backends (issue 22): each must read an index
/// and no whole table, on read models seeded as in use (`testkit::plans`).
#[cfg(test)]
mod plan_tests {
    use super::statements;
    use eventlog::EventStore;
    use testkit::TestDb;
    use testkit::plans::{Planner, uses_an_index};

    /// 20,000 rides an hour apart of 4 chapters, 40 homes, 120 trishaws and 300 pilots, a
    /// rider each of 800 residents, and 2,000 ride requests.
    const SEED: &str = "\
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
        INSERT INTO booking_rides \
            (ride_id, chapter_id, carehome_id, bike_id, pilot_id, start_at, end_at, status, version, doc) \
        SELECT 'r' || i, 'c' || (i % 4), 'h' || (i % 40), 'b' || (i % 120), 'p' || (i % 300), \
               i * 3600000000, i * 3600000000 + 3600000000, 'booked', 1, '{}' FROM n; \
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
        INSERT INTO booking_ride_riders (ride_id, resident_id, start_at) \
        SELECT 'r' || i, 'res' || (i % 800), i * 3600000000 FROM n; \
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
        INSERT INTO booking_ride_requests (ride_request_id, chapter_id, carehome_id, status, window_to, doc) \
        SELECT 'q' || i, 'c' || (i % 4), 'h' || (i % 40), 'open', i * 3600000000, '{}' FROM n";

    /// A week's window of a list (µs), the page's first cursor, the limit, all statuses.
    macro_rules! list_args {
        ($chapter:literal, $home:literal, $pilot:literal, $bike:literal) => {
            concat!(
                "('",
                $chapter,
                "', '",
                $home,
                "', '",
                $pilot,
                "', '",
                $bike,
                "', 36000000000000, 36604800000000, -9223372036854775808, '', 51, ",
                "'pending_confirmation', 'booked', 'started', 'completed', 'cancelled', 'no_show')"
            )
        };
    }

    /// The arguments each statement is executed with on PostgreSQL, as SQL literals.
    fn pg_args(name: &str) -> &'static str {
        match name {
            "list_by_bike" => list_args!("", "", "", "b7"),
            "list_by_pilot" => list_args!("", "", "p7", ""),
            "list_by_carehome" => list_args!("", "h7", "", ""),
            "list_by_chapter" => list_args!("c1", "", "", ""),
            "list_unled" => list_args!("", "", "", ""),
            "active_of_bikes" => "('b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7', 'b7', 36000000000000, 36604800000000)",
            "booking_facts" => "('b7', 'p7')",
            "home_facts" => "('h7')",
            "residents" => "('res1', 'res2', 'res3', 'res1')",
            "rides_of_resident" => "('res7', 36000000000000)",
            "rides_of_pilot" => "('p7')",
            "all_rides_of_resident" => "('res7')",
            "requests_by_carehome" => "('h7', '', '', 51, 'open', 'claimed', 'withdrawn', 'expired')",
            other => panic!("no sample arguments for the hot statement {other}: add them here"),
        }
    }

    async fn hot_statements_read_their_indexes(db: TestDb) {
        let store = EventStore::connect(&db.url).await.unwrap();
        crate::migrate(&store).await.unwrap();
        let mut planner = Planner::connect(&db).await;
        planner.execute(SEED).await;
        planner.analyze().await;
        for (name, sql) in statements::HOT {
            for (how, plan) in planner.plans(sql, pg_args(name)).await {
                assert!(uses_an_index(&plan), "{name} ({how}) reads no index: {plan:#?}");
                let unbounded = planner.unbounded(&plan).await;
                assert!(
                    unbounded.is_empty(),
                    "{name} ({how}) reads a whole table or index: {unbounded:#?} in {plan:#?}"
                );
            }
        }
        // The check can fail: a list of every ride in a status reads them all.
        let plan = planner.plan("SELECT doc FROM booking_rides WHERE status = 'booked' ORDER BY start_at").await;
        assert!(!planner.unbounded(&plan).await.is_empty(), "{plan:#?}");
        store.close().await;
    }

    #[tokio::test]
    async fn sqlite_hot_statements_read_their_indexes() {
        hot_statements_read_their_indexes(TestDb::sqlite()).await;
    }

    #[tokio::test]
    async fn postgres_hot_statements_read_their_indexes_as_custom_and_generic_plans() {
        let Some(db) = TestDb::postgres() else { return };
        hot_statements_read_their_indexes(db).await;
    }
}
