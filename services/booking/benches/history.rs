//! Does a booking's cost grow with history? Bookings/s for a trishaw, pilot and resident
//! with no past rides, beside the same for a trishaw, pilot and resident that already have
//! 10,000 rides each (booked through the service's commands), in one run.
//!
//!   cargo bench -p samskab-booking --bench history -- --history 10000 --bookings 300
//!
//! SQLite always; PostgreSQL too when `SAMSKAB_BENCH_PG_URL` is set (scripts/bench-booking).

#[path = "../tests/service/common/mod.rs"]
mod common;

use std::time::Instant;

use chrono::{Duration, NaiveDate};
use clap::Parser;
use common::*;
use futures_util::StreamExt;
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// Past rides of the busy trishaw, pilot and resident.
    #[arg(long, default_value_t = 10_000)]
    history: usize,
    /// Bookings measured per case.
    #[arg(long, default_value_t = 300)]
    bookings: usize,
    #[arg(long, hide = true)]
    bench: bool,
}

/// The n-th half-hour slot (for 15-minute rides, leaving the 15-minute turnaround) from 2027-01-01 inside 09:00-17:00 Copenhagen time (08:00-16:00Z
/// in winter, 07:00-15:00Z in summer; 07:00-15:00Z is inside both windows only in summer,
/// so slots use 08:00-15:00Z: 14 a day).
fn slot(n: usize, first_day: NaiveDate) -> String {
    let day = first_day + Duration::days((n / 14) as i64);
    let minutes = 8 * 60 + (n % 14) as i64 * 30;
    format!("{}T{:02}:{:02}:00Z", day, minutes / 60, minutes % 60)
}

async fn rate(w: &World, bike: Uuid, pilot: Uuid, resident: Uuid, first_day: NaiveDate, n: usize) -> f64 {
    let started = Instant::now();
    for i in 0..n {
        let req = w.book_req(bike, pilot, &slot(i, first_day), 15, &[resident]);
        w.booking.clone().book_ride(req).await.expect("booking");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

async fn run(name: &str, db: testkit::TestDb, args: &Args) {
    let mut w = World::new(db).await;
    let b = w.basic().await;
    // 10,000 rides at 14 a day reach into 2029: qualifications must last.
    let fresh = (b.bike, w.pilot_until(b.chapter, "2040-12-31").await, w.resident(b.home, &["rides"]).await);
    let busy =
        (w.bike(b.home, 2).await, w.pilot_until(b.chapter, "2040-12-31").await, w.resident(b.home, &["rides"]).await);
    w.settle().await;
    let start = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
    let filled = Instant::now();
    let reqs: Vec<_> = (0..args.history).map(|i| w.book_req(busy.0, busy.1, &slot(i, start), 15, &[busy.2])).collect();
    futures_util::stream::iter(reqs)
        .for_each_concurrent(4, |req| {
            let mut c = w.booking.clone();
            async move {
                c.book_ride(req).await.expect("history booking");
            }
        })
        .await;
    eprintln!("{name}: {} past rides booked in {:.1} s", args.history, filled.elapsed().as_secs_f64());
    let after = start + Duration::days((args.history / 14 + 2) as i64);
    let base = rate(&w, fresh.0, fresh.1, fresh.2, after, args.bookings).await;
    let loaded = rate(&w, busy.0, busy.1, busy.2, after, args.bookings).await;
    println!("| {name} | {base:.0} | {loaded:.0} | {:.2} |", loaded / base);
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    println!("# booking cost against history ({} past rides, {} bookings measured)\n", args.history, args.bookings);
    println!("| backend | bookings/s, no history | bookings/s, {} past rides each | ratio |", args.history);
    println!("|---|---:|---:|---:|");
    run("SQLite", testkit::TestDb::sqlite(), &args).await;
    if let Ok(url) = std::env::var("SAMSKAB_BENCH_PG_URL") {
        // SAFETY: single-threaded set-up before any PostgreSQL test database is created.
        unsafe { std::env::set_var(testkit::PG_URL_VAR, url) };
        run("PostgreSQL", testkit::TestDb::postgres().expect("pg"), &args).await;
    }
}
