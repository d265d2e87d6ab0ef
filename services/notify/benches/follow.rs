//! Notices decided per second while notify follows ride events: `--events` booking events
//! (a ride booked for its pilot by a coordinator, a rider added, the ride moved, the ride
//! cancelled: each occasions one notice for the pilot, decided for the inbox and e-mail)
//! are applied as the feed follower applies them (batches of 200, each in one transaction
//! with its checkpoint's work), while the decider runs beside it, as in the service, until
//! every occasion is decided. Beside it, in the same run, the baseline: the same number of
//! decisions appended to a fresh log with nothing read (one append of two notices each, as
//! the decider appends them).
//!
//! Then reminder lateness: rides whose reminders fall due during a second follow of the
//! same size; for each reminder, how long after its due time the decider appended it.
//! Its baseline, in the same run: as many reminders falling due with nothing to follow.
//! The decider loops as in the service: at once while more occasions are due than one
//! look takes, else after a pause of `notify::TICK`.
//!
//!   cargo bench -p samskab-notify --bench follow -- --events 100000
//!
//! SQLite always; PostgreSQL too when `SAMSKAB_BENCH_PG_URL` is set (scripts/bench-notify).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use clap::Parser;
use domain::DomainEvent;
use domain::events::{
    BookingEvent, CareHomeEvent, CareHomeRegistered, ChapterRegistered, ChapterSettings, RideBooked, RideCancelled,
    RideRescheduled, RiderAddedToRoster,
};
use domain::types::{CancellationReason, RideKind, RideStatus};
use eventlog::{EventStore, ExpectedVersion, NewEvent, StreamAppend};
use samskab_proto::common::v1::{Actor, EventEnvelope};
use servicekit::remote::RemoteProjection;
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// Booking events followed per run.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Rides whose reminders fall due during the lateness run.
    #[arg(long, default_value_t = 200)]
    reminders: usize,
    #[arg(long, hide = true)]
    bench: bool,
}

fn envelope(e: impl Into<BookingEvent>, at: DateTime<Utc>) -> EventEnvelope {
    let e: BookingEvent = e.into();
    EventEnvelope {
        event_id: Uuid::now_v7().to_string(),
        event_type: e.event_type().into(),
        data_json: e.to_json().to_string(),
        occurred_at: Some(samskab_proto::time::to_proto(at)),
        actor: Some(Actor { id: "coordinator-1".into(), role: "coordinator".into() }),
        ..Default::default()
    }
}

fn carehome_envelope(e: impl Into<CareHomeEvent>) -> EventEnvelope {
    let e: CareHomeEvent = e.into();
    EventEnvelope { event_type: e.event_type().into(), data_json: e.to_json().to_string(), ..Default::default() }
}

struct World {
    chapter: Uuid,
    home: Uuid,
}

async fn setup(store: &EventStore, leads: Vec<u32>) -> World {
    notify::migrate(store).await.expect("migrate");
    let (chapter, home) = (Uuid::now_v7(), Uuid::now_v7());
    let settings = ChapterSettings {
        lead_time_minutes: 60,
        default_turnaround_minutes: 15,
        reminder_lead_minutes: leads,
        ride_season: None,
        record_window_days: 14,
        series_horizon_days: 56,
        offer_fanout: 5,
    };
    let events = vec![
        carehome_envelope(ChapterRegistered {
            chapter_id: chapter,
            name: "Bench".into(),
            timezone: "Europe/Copenhagen".into(),
            settings,
        }),
        carehome_envelope(CareHomeRegistered {
            carehome_id: home,
            chapter_id: chapter,
            name: "Egeparken".into(),
            address: String::new(),
            timezone: None,
            ride_hours: Vec::new(),
            turnaround_minutes: 15,
            requires_confirmation: false,
            pilots_choose_riders: false,
        }),
    ];
    apply(store, Arc::new(notify::facts::CareHomeFacts), events).await;
    World { chapter, home }
}

async fn apply<P: RemoteProjection>(store: &EventStore, p: Arc<P>, batch: Vec<EventEnvelope>) {
    store
        .transaction(move |tx| {
            Box::pin(async move {
                for e in &batch {
                    p.apply(tx, e).await?;
                }
                Ok(0)
            })
        })
        .await
        .expect("apply a batch");
}

/// Four events per ride, each occasioning one notice for the pilot.
fn ride_events(w: &World, n: usize, start: impl Fn(usize) -> DateTime<Utc>, now: DateTime<Utc>) -> Vec<EventEnvelope> {
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while out.len() < n {
        let (ride, pilot) = (Uuid::now_v7(), Uuid::now_v7());
        let s = start(i);
        out.push(envelope(
            RideBooked {
                ride_id: ride,
                kind: RideKind::Pleasure,
                status: RideStatus::Booked,
                chapter_id: w.chapter,
                carehome_id: w.home,
                bike_id: Uuid::now_v7(),
                pilot_id: pilot,
                start: s,
                duration_minutes: 60,
                turnaround_minutes: 15,
                riders: Vec::new(),
                trip_minutes: None,
                route: None,
                ride_request_id: None,
                booked_at: None,
                ride_series_id: None,
            },
            now,
        ));
        out.push(envelope(RiderAddedToRoster { ride_id: ride, resident_id: Uuid::now_v7() }, now));
        out.push(envelope(RideRescheduled { ride_id: ride, start: s, duration_minutes: 60 }, now));
        out.push(envelope(
            RideCancelled {
                ride_id: ride,
                reason: CancellationReason::Weather,
                by_role: "coordinator".into(),
                note: None,
                caused_by: None,
                at: None,
            },
            now,
        ));
        i += 1;
    }
    out.truncate(n);
    out
}

/// Applies `events` in batches of 200 while the decider runs beside it; returns the
/// seconds until every occasion was decided.
async fn follow_and_decide(store: &EventStore, events: Vec<EventEnvelope>) -> f64 {
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let (s, d) = (store.clone(), done.clone());
    let decider = tokio::spawn(async move {
        loop {
            let look = notify::decider::tick(&s, servicekit::clock::now()).await.expect("tick");
            let waiting = s.fetch_i64("SELECT COUNT(*) FROM notify_pending", &[]).await.expect("count").unwrap_or(0);
            if d.load(Ordering::SeqCst) && waiting == 0 {
                break;
            }
            // As the service does: at once while more is due, else after a pause.
            if !look.more {
                tokio::time::sleep(notify::TICK).await;
            }
        }
    });
    let rides = Arc::new(notify::facts::Rides);
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let batch: Vec<EventEnvelope> = events.by_ref().take(200).collect();
        apply(store, rides.clone(), batch).await;
    }
    done.store(true, Ordering::SeqCst);
    decider.await.expect("decider");
    started.elapsed().as_secs_f64()
}

/// The baseline: `n` appends of two notice events each, nothing read.
async fn baseline(store: &EventStore, n: usize) -> f64 {
    let started = Instant::now();
    let facts = notify::notices::Facts { carehome: "Egeparken".into(), riders: 1, ..Default::default() };
    for i in 0..n {
        let mut appends = Vec::with_capacity(2);
        for channel in ["inbox", "email"] {
            let occasion = format!("bench/{i}");
            let id = notify::notices::notice_id("ride.cancelled", &occasion, "pilot:x", channel);
            let e = notify::notices::NoticeDecided {
                notice_id: id,
                kind: "ride.cancelled".into(),
                occasion,
                recipient: "pilot:x".into(),
                channel: channel.into(),
                due_at: Utc::now(),
                facts: facts.clone(),
            };
            let event = NewEvent::with_id(id, "NoticeDecided", &e).expect("event");
            appends.push(StreamAppend::new(notify::notices::stream(id), ExpectedVersion::NoStream, vec![event]));
        }
        store.append(appends).await.expect("append");
    }
    started.elapsed().as_secs_f64()
}

/// Reminders due during a follow of `events` load events (none: the baseline, reminders
/// falling due on an idle service): how late each was decided (ms), sorted.
async fn lateness(store: &EventStore, reminders: usize, events: usize) -> Vec<f64> {
    // One 60-minute lead; rides start 60 minutes plus 1..20 s from now, so their reminders
    // fall due one by one while the follow runs.
    let w = setup(store, vec![60]).await;
    let now = Utc::now();
    let due_spread =
        |i: usize| now + chrono::Duration::minutes(60) + chrono::Duration::milliseconds(1000 + 100 * i as i64);
    let reminded = ride_events(&w, reminders * 4, due_spread, now);
    // Only the bookings: the rides stay booked.
    let booked: Vec<EventEnvelope> = reminded.into_iter().filter(|e| e.event_type == "RideBooked").collect();
    apply(store, Arc::new(notify::facts::Rides), booked).await;
    // The load: cancelled rides far ahead, as in the first run.
    let far = |_| now + chrono::Duration::days(30);
    let load = ride_events(&w, events, far, now);
    follow_and_decide(store, load).await;
    // Let the last reminders fall due and be decided.
    let until = now + chrono::Duration::milliseconds(1000 + 100 * reminders as i64 + 500);
    while Utc::now() < until {
        notify::decider::tick(store, servicekit::clock::now()).await.expect("tick");
        tokio::time::sleep(notify::TICK).await;
    }
    notify::decider::tick(store, servicekit::clock::now()).await.expect("tick");
    let page = store.read_all(eventlog::Cursor::default(), &eventlog::Filter::all(), 1_000_000).await.expect("read");
    let mut late: Vec<f64> = page
        .events
        .iter()
        .filter(|e| e.event_type == "NoticeDecided")
        .filter_map(|e| {
            let d: notify::notices::NoticeDecided = e.payload_as().ok()?;
            (d.kind == "ride.reminder" && d.channel == "inbox")
                .then(|| (e.recorded_at - d.due_at).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        })
        .collect();
    late.sort_by(|a, b| a.total_cmp(b));
    late
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(name: &str, db: testkit::TestDb, args: &Args) {
    let store = EventStore::connect(&db.sibling("follow")).await.expect("store");
    let w = setup(&store, vec![1440, 60]).await;
    let now = Utc::now();
    // Rides a month ahead: every event is fresh, no reminder falls due.
    let events = ride_events(&w, args.events, |_| now + chrono::Duration::days(30), now);
    let secs = follow_and_decide(&store, events).await;
    let decided = store.fetch_i64("SELECT COUNT(*) FROM eventlog_events", &[]).await.ok().flatten().unwrap_or(0) / 2;
    let base_store = EventStore::connect(&db.sibling("baseline")).await.expect("store");
    let base_secs = baseline(&base_store, args.events).await;
    let late_store = EventStore::connect(&db.sibling("lateness")).await.expect("store");
    let late = lateness(&late_store, args.reminders, args.events).await;
    let idle_store = EventStore::connect(&db.sibling("idle")).await.expect("store");
    let idle = lateness(&idle_store, args.reminders, 0).await;
    println!(
        "{name:>8}: followed {} events and decided {decided} notices (x2 channels) in {secs:.1} s: {:.0} events/s, \
         {:.0} notices/s | baseline (appends only): {:.0} notices/s | ratio {:.2}",
        args.events,
        args.events as f64 / secs,
        decided as f64 / secs,
        args.events as f64 / base_secs,
        (decided as f64 / secs) / (args.events as f64 / base_secs),
    );
    let figures = |v: &[f64]| {
        format!(
            "late by p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            pct(v, 0.5),
            pct(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        )
    };
    println!(
        "{name:>8}: {} reminders due during a follow of {} events: {} | baseline, {} due on an idle service: {} \
         (the decider looks every {} ms when nothing more is due)",
        late.len(),
        args.events,
        figures(&late),
        idle.len(),
        figures(&idle),
        notify::TICK.as_millis(),
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    println!("load average: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    run("sqlite", testkit::TestDb::sqlite(), &args).await;
    if let Ok(url) = std::env::var("SAMSKAB_BENCH_PG_URL") {
        // SAFETY: set-up before any PostgreSQL test database is made; nothing else reads
        // the environment concurrently.
        unsafe { std::env::set_var(testkit::PG_URL_VAR, url) };
        run("postgres", testkit::TestDb::postgres().expect("pg"), &args).await;
    }
}
