//! `--history EVENTS`: a long history, then the cost of rebuilding from it and of starting
//! with it (issue 8, item 2).
//!
//! 1. builds the world over REST on the all-in-one (as the mix does) and stops it;
//! 2. appends EVENTS events of past rides to booking's log, the events and streams the
//!    booking service writes (`RideBooked` on the ride with `SlotHeld` on each trishaw, pilot
//!    and resident day it holds, booked two weeks ahead; then `RideStarted`,
//!    `RiderCheckedIn` and `RideCompleted`, or `RideCancelled` with `SlotReleased`, or
//!    `RideMarkedNoShow`, on the day), interleaved in time order, in large appends;
//! 3. runs `samskab rebuild-projections` as a process and times it (events/s of the log);
//! 4. starts `samskab serve` on that history several times and times each start to
//!    `/readyz` 200 and to the first answer of a chapter's stats;
//! 5. checks that the stats agree with what was generated (the rebuild is right).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use booking::schedule::Holder;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use domain::DomainEvent;
use domain::events::{
    BookingEvent, RideBooked, RideCancelled, RideCompleted, RideMarkedNoShow, RideStarted, RiderCheckedIn, SlotHeld,
    SlotReleased,
};
use domain::types::{CancellationReason, RideKind, RideStatus};
use eventlog::{Actor, EventStore, ExpectedVersion, Metadata, NewEvent, StreamAppend};
use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

use crate::world::{RIDE_MINUTES, Rng, SLOTS, World, call};
use crate::{Args, system::System};

/// Days between a booking and its ride.
const LEAD_DAYS: i64 = 14;
/// Events per append (one transaction).
const APPEND_EVENTS: usize = 4_000;

/// What happened to a generated ride.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Completed,
    Cancelled,
    NoShow,
}

struct PastRide {
    id: Uuid,
    chapter: Uuid,
    home: Uuid,
    bike: Uuid,
    pilot: Uuid,
    riders: Vec<Uuid>,
    start: DateTime<Utc>,
    fate: Fate,
    distance_km: f64,
}

/// Generated counts per chapter, to check the rebuilt read models against.
#[derive(Default, Clone, Copy)]
struct Expected {
    trips: u64,
    rides: u64,
    no_shows: u64,
    cancelled_rider: u64,
}

fn meta(chapter: Uuid, role: &str, actor: Uuid, correlation: Uuid) -> Metadata {
    Metadata {
        tenant: Some(chapter),
        actor: Some(Actor { id: format!("{role}-{}", &actor.simple().to_string()[..8]), role: role.to_owned() }),
        correlation_id: Some(correlation),
        causation_id: None,
        traceparent: None,
    }
}

fn event(e: impl Into<BookingEvent>, m: &Metadata, at: DateTime<Utc>) -> Result<NewEvent, String> {
    let e: BookingEvent = e.into();
    Ok(NewEvent::new(e.event_type(), &e.to_json()).map_err(|e| e.to_string())?.metadata(m.clone()).occurred_at(at))
}

/// The rides of one day: every trishaw in every slot, with a pilot of its chapter and
/// riders of its care home that are free in that slot.
fn rides_of_day(world: &World, day: NaiveDate, index: u64, rng: &mut Rng) -> Vec<PastRide> {
    let mut out = Vec::new();
    let first = Utc.from_utc_datetime(&day.and_time(NaiveTime::from_hms_opt(6, 0, 0).expect("06:00")));
    for slot in 0..SLOTS as usize {
        let start = first + chrono::Duration::minutes(slot as i64 * (RIDE_MINUTES + 15));
        let turn = index as usize + slot;
        for (c, homes) in world.homes_of.iter().enumerate() {
            let pilots: Vec<Uuid> = world.pilots.iter().filter(|p| p.chapter == c).map(|p| p.id).collect();
            let mut next_pilot = turn;
            let mut used = 0;
            for &h in homes {
                let home = &world.homes[h];
                let seats_each = if home.residents.len() >= 2 * home.bikes.len() { 2 } else { 1 };
                for (b, &bike) in home.bikes.iter().enumerate() {
                    // One ride per pilot and per resident in a slot.
                    if used == pilots.len() || (b + 1) * seats_each > home.residents.len() {
                        break;
                    }
                    let pilot = pilots[next_pilot % pilots.len()];
                    next_pilot += 1;
                    used += 1;
                    let n = home.residents.len();
                    let riders = (0..seats_each).map(|s| home.residents[(b * seats_each + s + turn) % n]).collect();
                    let roll = rng.below(100);
                    let fate = match roll {
                        0..=84 => Fate::Completed,
                        85..=94 => Fate::Cancelled,
                        _ => Fate::NoShow,
                    };
                    out.push(PastRide {
                        id: Uuid::now_v7(),
                        chapter: world.chapters[c],
                        home: home.id,
                        bike,
                        pilot,
                        riders,
                        start,
                        fate,
                        distance_km: 2.0 + rng.below(80) as f64 / 10.0,
                    });
                }
            }
        }
    }
    out
}

fn holders(r: &PastRide) -> Vec<Holder> {
    let mut h = vec![Holder::Bike(r.bike), Holder::Pilot(r.pilot)];
    h.extend(r.riders.iter().map(|&x| Holder::Resident(x)));
    h
}

/// The events of booking a ride, as the service writes them (ride stream, then its holds).
fn booking_events(r: &PastRide, out: &mut Vec<(String, NewEvent)>) -> Result<(), String> {
    let booked_at = r.start - chrono::Duration::days(LEAD_DAYS);
    let m = meta(r.chapter, "pilot", r.pilot, Uuid::now_v7());
    let booked = RideBooked {
        ride_id: r.id,
        kind: RideKind::Pleasure,
        status: RideStatus::Booked,
        chapter_id: r.chapter,
        carehome_id: r.home,
        bike_id: r.bike,
        pilot_id: r.pilot,
        start: r.start,
        duration_minutes: RIDE_MINUTES as u32,
        turnaround_minutes: 15,
        riders: r.riders.clone(),
        trip_minutes: None,
        route: None,
        ride_request_id: None,
        booked_at: Some(booked_at),
    };
    out.push((booking::service::ride_stream(r.id), event(booked, &m, booked_at)?));
    for (stream, start, end) in booking::rides::holds_of(&holders(r), r.start, RIDE_MINUTES as u32, 15) {
        out.push((stream, event(SlotHeld { ride_id: r.id, start, end }, &m, booked_at)?));
    }
    Ok(())
}

/// The events of the ride's day.
fn day_events(r: &PastRide, out: &mut Vec<(String, NewEvent)>) -> Result<(), String> {
    let stream = booking::service::ride_stream(r.id);
    let m = meta(r.chapter, "pilot", r.pilot, Uuid::now_v7());
    match r.fate {
        Fate::Completed => {
            out.push((stream.clone(), event(RideStarted { ride_id: r.id, at: r.start }, &m, r.start)?));
            for &resident in &r.riders {
                out.push((
                    stream.clone(),
                    event(RiderCheckedIn { ride_id: r.id, resident_id: resident }, &m, r.start)?,
                ));
            }
            let ended = r.start + chrono::Duration::minutes(RIDE_MINUTES - 5);
            let done = RideCompleted {
                ride_id: r.id,
                ended_at: ended,
                distance_km: r.distance_km,
                bike_condition: Some("ok".into()),
                story: None,
            };
            out.push((stream, event(done, &m, ended)?));
        }
        Fate::Cancelled => {
            let at = r.start - chrono::Duration::hours(3);
            let cancelled = RideCancelled {
                ride_id: r.id,
                reason: CancellationReason::Rider,
                by_role: "pilot".into(),
                note: None,
                caused_by: None,
                at: Some(at),
            };
            out.push((stream, event(cancelled, &m, at)?));
            for (s, _, _) in booking::rides::holds_of(&holders(r), r.start, RIDE_MINUTES as u32, 15) {
                out.push((s, event(SlotReleased { ride_id: r.id }, &m, at)?));
            }
        }
        Fate::NoShow => {
            out.push((stream, event(RideMarkedNoShow { ride_id: r.id }, &m, r.start)?));
        }
    }
    Ok(())
}

/// Appends events in transactions of about APPEND_EVENTS, each stream's events together
/// and in order.
async fn flush(store: &EventStore, pending: &mut Vec<(String, NewEvent)>) -> Result<(), String> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut order: Vec<String> = Vec::new();
    let mut by_stream: BTreeMap<String, Vec<NewEvent>> = BTreeMap::new();
    for (s, e) in pending.drain(..) {
        let v = by_stream.entry(s.clone()).or_default();
        if v.is_empty() {
            order.push(s);
        }
        v.push(e);
    }
    let appends = order
        .into_iter()
        .map(|s| {
            let events = by_stream.remove(&s).unwrap_or_default();
            StreamAppend::new(s, ExpectedVersion::Any, events)
        })
        .collect();
    store.append(appends).await.map_err(|e| format!("append: {e}"))?;
    Ok(())
}

/// Writes `target` events (or a few more: whole days) of past rides into booking's log.
async fn generate(
    world: &World,
    store: &EventStore,
    target: u64,
    seed: u64,
) -> Result<BTreeMap<Uuid, Expected>, String> {
    let mut rng = Rng::new(seed);
    let per_day = {
        let mut probe = Rng::new(seed);
        rides_of_day(world, Utc::now().date_naive(), 0, &mut probe).len().max(1)
    };
    // About 7 events per completed one-rider ride; days go back far enough to reach target.
    let mut days = (target as usize).div_ceil(per_day * 6).max(1) as i64;
    let today = Utc::now().date_naive();
    let mut expected: BTreeMap<Uuid, Expected> = BTreeMap::new();
    let mut written = 0u64;
    let mut pending: Vec<(String, NewEvent)> = Vec::new();
    let mut queue: std::collections::VecDeque<Vec<PastRide>> = Default::default();
    let began = Instant::now();
    let mut day = 0i64;
    // Day d's rides are booked on day d - LEAD_DAYS and happen on day d; events are written
    // in that time order. The last LEAD_DAYS days of bookings keep the loop going.
    while day < days + LEAD_DAYS {
        if day < days {
            let date = today - chrono::Duration::days(days + 1) + chrono::Duration::days(day);
            let rides = rides_of_day(world, date, day as u64, &mut rng);
            for r in &rides {
                booking_events(r, &mut pending)?;
            }
            queue.push_back(rides);
        }
        if day >= LEAD_DAYS
            && let Some(rides) = queue.pop_front()
        {
            for r in &rides {
                day_events(r, &mut pending)?;
                let e = expected.entry(r.chapter).or_default();
                match r.fate {
                    Fate::Completed => {
                        e.trips += 1;
                        e.rides += r.riders.len() as u64;
                    }
                    Fate::Cancelled => e.cancelled_rider += 1,
                    Fate::NoShow => e.no_shows += 1,
                }
            }
        }
        while pending.len() >= APPEND_EVENTS {
            let mut chunk: Vec<_> = pending.drain(..APPEND_EVENTS).collect();
            written += chunk.len() as u64;
            flush(store, &mut chunk).await?;
        }
        day += 1;
        // Stop adding days once the target is reached (the queued days still complete).
        if day < days && written + pending.len() as u64 >= target {
            days = day;
        }
        if day % 20 == 0 {
            eprintln!(
                "samskab-load: history: {written} events written ({:.0} events/s)",
                written as f64 / began.elapsed().as_secs_f64().max(1e-9)
            );
        }
    }
    written += pending.len() as u64;
    flush(store, &mut pending).await?;
    eprintln!(
        "samskab-load: history: {written} events over {days} days written in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    Ok(expected)
}

/// The figures of one history run.
pub struct Figures {
    /// Events in the three logs.
    pub events: u64,
    /// Wall time of `samskab rebuild-projections`.
    pub rebuild_secs: f64,
    /// Its peak RSS.
    pub rebuild_rss: Option<u64>,
    /// Baseline: events of booking's log read in one pass, and the seconds it took.
    pub read: (u64, f64),
    /// Lines it printed (per component).
    pub rebuild_lines: Vec<String>,
    /// Start to `/readyz` 200, per start.
    pub ready_secs: Vec<f64>,
    /// Start to the first chapter stats answer, per start.
    pub stats_secs: Vec<f64>,
    /// Peak RSS of the all-in-one after the last start.
    pub rss: Option<u64>,
}

/// Runs the whole measurement on the all-in-one.
pub async fn run(args: &Args, events: u64, http: &reqwest::Client) -> Result<(), String> {
    if args.url.is_some() || args.target != crate::Target::AllInOne {
        return Err("--history runs on the all-in-one it starts (no --url, --target all-in-one)".into());
    }
    let mut sys = System::start(args).await?;
    let world = crate::world::build(args, &sys, http).await;
    sys.stop().await;
    sys.forget_processes();
    let world = world?;
    let booking_url = format!("sqlite://{}", sys.data_dir.join("booking.db").display());
    let store = EventStore::connect(&booking_url).await.map_err(|e| format!("{booking_url}: {e}"))?;
    let expected = generate(&world, &store, events, args.seed).await?;
    store.close().await;

    // Events in all three logs.
    let mut total = 0u64;
    for c in ["carehome", "volunteer", "booking"] {
        let url = format!("sqlite://{}", sys.data_dir.join(format!("{c}.db")).display());
        let s = EventStore::connect(&url).await.map_err(|e| format!("{url}: {e}"))?;
        total += s.head().await.map_err(|e| e.to_string())?.position().max(0) as u64;
        s.close().await;
    }

    // Baseline in the same run: one pass reading every event of booking's log through
    // the event store (what any replay costs before it applies anything).
    let read_secs = {
        let s = EventStore::connect(&booking_url).await.map_err(|e| format!("{booking_url}: {e}"))?;
        let began = Instant::now();
        let mut cursor = eventlog::Cursor::START;
        let mut n = 0u64;
        loop {
            let page = s.read_all(cursor, &eventlog::Filter::all(), 10_000).await.map_err(|e| e.to_string())?;
            if page.events.is_empty() {
                break;
            }
            n += page.events.len() as u64;
            cursor = page.next;
        }
        s.close().await;
        let secs = began.elapsed().as_secs_f64();
        eprintln!("samskab-load: history: read {n} events of booking's log in {secs:.2} s (baseline)");
        (n, secs)
    };

    eprintln!("samskab-load: history: samskab rebuild-projections over {total} events");
    let began = Instant::now();
    // GNU time reports the peak RSS when it is installed.
    let gnu_time = std::path::Path::new("/usr/bin/time").exists();
    let mut cmd = if gnu_time {
        let mut c = tokio::process::Command::new("/usr/bin/time");
        c.args(["-f", "maxrss_kb=%M"]).arg(&sys.bin);
        c
    } else {
        tokio::process::Command::new(&sys.bin)
    };
    let out = cmd
        .arg("rebuild-projections")
        .arg("--data-dir")
        .arg(&sys.data_dir)
        .env("SAMSKAB_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| e.to_string())?;
    let rebuild_secs = began.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!("rebuild-projections failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let rebuild_rss = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb=").and_then(|v| v.trim().parse::<u64>().ok()))
        .map(|kb| kb * 1024);
    let rebuild_lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("events of the log rebuilt"))
        .map(str::to_owned)
        .collect();

    let chapter = world.chapters[0];
    let mut ready_secs = Vec::new();
    let mut stats_secs = Vec::new();
    let mut rss = None;
    for round in 0..3 {
        let began = sys.serve_again()?;
        sys.wait_ready(&[]).await?;
        ready_secs.push(began.elapsed().as_secs_f64());
        let token = sys.token("chapter_admin", Some(("chapter", chapter))).await?;
        let (st, stats) = loop {
            let (st, v) =
                call(http, Method::GET, &format!("{}/v1/stats?chapter_id={chapter}", sys.base), &token, None, None)
                    .await;
            if st != 503 {
                break (st, v);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        stats_secs.push(began.elapsed().as_secs_f64());
        if st != 200 {
            return Err(format!("GET /v1/stats: {st} {stats}"));
        }
        if round == 0 {
            check(&stats, expected.get(&chapter).copied().unwrap_or_default())?;
        }
        rss = sys.memory().into_iter().next().and_then(|m| m.peak_rss);
        sys.stop().await;
        sys.forget_processes();
    }
    let f = Figures {
        events: total,
        rebuild_secs,
        rebuild_rss,
        read: read_secs,
        rebuild_lines,
        ready_secs,
        stats_secs,
        rss,
    };
    print!("{}", table(&f));
    Ok(())
}

fn check(stats: &Value, e: Expected) -> Result<(), String> {
    let got = |k: &str| stats[k].as_u64().unwrap_or(u64::MAX);
    let mut wrong = Vec::new();
    for (k, want) in [("trips", e.trips), ("rides", e.rides), ("no_shows", e.no_shows)] {
        if got(k) != want {
            wrong.push(format!("{k}: {} ≠ {want} generated", got(k)));
        }
    }
    let rider = stats["cancelled"]["rider"].as_u64().unwrap_or(u64::MAX);
    if rider != e.cancelled_rider {
        wrong.push(format!("cancelled.rider: {rider} ≠ {} generated", e.cancelled_rider));
    }
    if !wrong.is_empty() {
        return Err(format!("the stats after the rebuild disagree with the history: {}", wrong.join("; ")));
    }
    eprintln!(
        "samskab-load: history: stats after the rebuild match the history ({} trips, {} rides, {} no-shows, {} cancelled)",
        e.trips, e.rides, e.no_shows, e.cancelled_rider
    );
    Ok(())
}

fn table(f: &Figures) -> String {
    let median = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let rate = f.events as f64 / f.rebuild_secs.max(1e-9);
    let mut out = String::new();
    out.push_str(&format!("# rebuild and cold start over {} events (all-in-one, SQLite)\n\n", f.events));
    out.push_str("| measurement | figure | target |\n|---|---:|---|\n");
    out.push_str(&format!(
        "| `samskab rebuild-projections`, wall time (process start to exit) | {:.2} s | |\n",
        f.rebuild_secs
    ));
    out.push_str(&format!(
        "| events of the logs rebuilt per second | {rate:.0} | ≥ 100,000: {} |\n",
        if rate >= 100_000.0 { "met" } else { "**missed**" }
    ));
    let read_rate = f.read.0 as f64 / f.read.1.max(1e-9);
    out.push_str(&format!(
        "| baseline: one pass reading all {} events of booking's log, events/s | {read_rate:.0} | |\n",
        f.read.0
    ));
    out.push_str(&format!("| rebuild ÷ baseline | {:.2} | |\n", rate / read_rate.max(1e-9)));
    if let Some(r) = f.rebuild_rss {
        out.push_str(&format!("| peak RSS of `samskab rebuild-projections` | {:.0} MB | |\n", r as f64 / 1e6));
    }
    let ready = median(&f.ready_secs);
    out.push_str(&format!(
        "| start to `/readyz` 200, median of {} ({}) | {ready:.2} s | < 3 s: {} |\n",
        f.ready_secs.len(),
        f.ready_secs.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(", "),
        if ready < 3.0 { "met" } else { "**missed**" }
    ));
    out.push_str(&format!(
        "| start to the first chapter stats answer, median ({}) | {:.2} s | |\n",
        f.stats_secs.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(", "),
        median(&f.stats_secs)
    ));
    if let Some(r) = f.rss {
        out.push_str(&format!(
            "| peak RSS of the all-in-one after a start and one stats call | {:.1} MB | |\n",
            r as f64 / 1e6
        ));
    }
    out.push('\n');
    for l in &f.rebuild_lines {
        out.push_str(&format!("    {l}\n"));
    }
    out
}
