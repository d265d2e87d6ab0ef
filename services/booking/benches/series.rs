//! Ride series at scale: what extending 1,000 active series by one week costs (the daily
//! sweep, run as it would run a week from now), beside single bookings through `BookRide`
//! in the same run; and a single booking's cost in a chapter with 1,000 active series
//! beside its cost in the same chapter before it had any.
//!
//!   cargo bench -p samskab-booking --bench series -- --series 1000 --bookings 300
//!
//! SQLite always; PostgreSQL too when `SAMSKAB_BENCH_PG_URL` is set (scripts/bench-series).

#[path = "../tests/service/common/mod.rs"]
mod common;

use std::time::Instant;

use chrono::{Duration, NaiveDate};
use clap::Parser;
use common::*;
use samskab_proto::booking::v1 as bpb;
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// Active series in the chapter.
    #[arg(long, default_value_t = 1_000)]
    series: usize,
    /// Single bookings measured per case.
    #[arg(long, default_value_t = 300)]
    bookings: usize,
    #[arg(long, hide = true)]
    bench: bool,
}

/// Series per trishaw and pilot: ten 30-minute slots a day (45 minutes apart, turnaround
/// included) on each of seven weekdays.
const PER_BIKE: usize = 70;

/// The n-th half-hour slot from `first_day` inside the ride hours (as benches/history.rs).
fn slot(n: usize, first_day: NaiveDate) -> String {
    let day = first_day + Duration::days((n / 14) as i64);
    let minutes = 8 * 60 + (n % 14) as i64 * 30;
    format!("{}T{:02}:{:02}:00Z", day, minutes / 60, minutes % 60)
}

async fn rate(w: &World, bike: Uuid, pilot: Uuid, first_day: NaiveDate, n: usize) -> f64 {
    let started = Instant::now();
    for i in 0..n {
        let req = w.book_req(bike, pilot, &slot(i, first_day), 15, &[]);
        w.booking.clone().book_ride(req).await.expect("booking");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

async fn run(name: &str, db: testkit::TestDb, args: &Args) {
    let mut w = World::new(db).await;
    let b = w.basic().await;
    let measured = (w.bike(b.home, 2).await, w.pilot_until(b.chapter, "2040-12-31").await);
    let mut pairs = Vec::new();
    for _ in 0..args.series.div_ceil(PER_BIKE) {
        pairs.push((w.bike(b.home, 2).await, w.pilot_until(b.chapter, "2040-12-31").await));
    }
    w.settle().await;
    let now = servicekit::clock::now();
    // Single bookings with no series in the chapter (days far from the series' dates).
    let base = rate(&w, measured.0, measured.1, NaiveDate::from_ymd_opt(2028, 1, 3).unwrap(), args.bookings).await;

    // The series: weekly, from the first week of January (CET), booked to the horizon.
    let monday = NaiveDate::from_ymd_opt(2027, 1, 4).unwrap();
    let planned = Instant::now();
    let mut occurrences = 0;
    for j in 0..args.series {
        let (bike, pilot) = pairs[j / PER_BIKE];
        let k = j % PER_BIKE;
        let date = monday + Duration::days((k % 7) as i64);
        let local = 9 * 60 + (k / 7) as i64 * 45;
        let start = format!("{date}T{:02}:{:02}:00+01:00", local / 60, local % 60);
        let s = w
            .booking
            .clone()
            .plan_ride_series(bpb::PlanRideSeriesRequest {
                context: ctx(),
                bike_id: bike.to_string(),
                pilot_id: pilot.to_string(),
                start: ts(&start),
                duration_minutes: 30,
                resident_ids: vec![],
                kind: String::new(),
                trip_minutes: 0,
                recurrence: Some(bpb::Recurrence {
                    weekdays: vec![
                        ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"][k % 7].into(),
                    ],
                    interval_weeks: None,
                    until: String::new(),
                    count: None,
                }),
            })
            .await
            .expect("a series")
            .into_inner();
        let booked = s.occurrences.iter().filter(|o| !o.ride_id.is_empty()).count();
        assert!(booked > 0 && s.occurrences.iter().all(|o| o.problem.is_none()), "{j}: {:?}", s.occurrences);
        occurrences += booked;
    }
    let planned = planned.elapsed().as_secs_f64();
    eprintln!("{name}: {} series planned, {occurrences} occurrences booked, in {planned:.1} s", args.series);
    // Let the series read model catch up, so the sweep sees every series.
    testkit::eventually("the series read model", std::time::Duration::from_secs(120), || async {
        w.booking_store
            .fetch_i64("SELECT count(*) FROM booking_series WHERE status = 'active'", &[])
            .await
            .unwrap()
            .unwrap_or(0) as usize
            == args.series
    })
    .await;

    // Single bookings with 1,000 active series in the chapter (and the 1-second sweep of
    // a test build scanning them).
    let loaded = rate(&w, measured.0, measured.1, NaiveDate::from_ymd_opt(2028, 3, 6).unwrap(), args.bookings).await;

    // The sweep a week from now: one more date for every series.
    let swept = Instant::now();
    let decided = w.server.booking().sweep_series_at(now + Duration::days(7)).await.expect("sweep");
    let sweep = swept.elapsed().as_secs_f64();
    assert_eq!(decided, args.series, "one week: one date per series");
    let per_s = decided as f64 / sweep;
    println!(
        "| {name} | {base:.0} | {loaded:.0} | {:.2} | {sweep:.2} s ({per_s:.0} dates/s) | {:.2} |",
        loaded / base,
        per_s / base
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    println!("# ride series at scale ({} active series, {} single bookings measured)\n", args.series, args.bookings);
    println!(
        "| backend | bookings/s, no series | bookings/s, {} series | ratio | extending {} series by a week | sweep dates/s ÷ bookings/s |",
        args.series, args.series
    );
    println!("|---|---:|---:|---:|---:|---:|");
    run("SQLite", testkit::TestDb::sqlite(), &args).await;
    if let Ok(url) = std::env::var("SAMSKAB_BENCH_PG_URL") {
        // SAFETY: single-threaded set-up before any PostgreSQL test database is created.
        unsafe { std::env::set_var(testkit::PG_URL_VAR, url) };
        run("PostgreSQL", testkit::TestDb::postgres().expect("pg"), &args).await;
    }
}
