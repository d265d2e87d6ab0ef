//! Two booking service processes (the real binary, twice) on one PostgreSQL database race
//! for one trishaw: the schedule streams in the shared log keep the invariant across
//! processes exactly as within one.

use std::time::Duration;

use crate::common::*;
use crate::spawn::{Process, spawn_booking};
use chrono::{DateTime, Utc};
use samskab_proto::booking::v1::booking_service_client::BookingServiceClient;
use servicekit::ErrorCode;

use testkit::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_booking_processes_on_one_postgres_keep_one_trishaw_unshared() {
    let Some(db) = testkit::TestDb::postgres() else { return };
    let mut w = World::new(db).await;
    let b = w.basic().await;
    let mut pilots = Vec::new();
    for _ in 0..32 {
        pilots.push(w.pilot(b.chapter).await);
    }
    w.settle().await;
    let ports = [free_port(), free_port()];
    let _procs: Vec<Process> = ports.iter().map(|p| spawn_booking(&w, *p, None)).collect();
    let mut clients = Vec::new();
    for p in ports {
        clients.push(BookingServiceClient::new(servicekit::client::channel(&format!("http://127.0.0.1:{p}")).unwrap()));
    }
    // Both processes are up once they answer (a NotFound for an unknown ride is an answer).
    for c in &clients {
        testkit::eventually("a booking process to come up", Duration::from_secs(60), || async {
            let r = c
                .clone()
                .get_ride(samskab_proto::booking::v1::GetRideRequest {
                    ride_id: uuid::Uuid::nil().to_string(),
                    include_personal: false,
                })
                .await;
            match r {
                Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
                r => Err(format!("{r:?}")),
            }
        })
        .await;
    }
    let starts = ["2027-05-03T08:00:00Z", "2027-05-03T08:30:00Z", "2027-05-03T09:15:00Z", "2027-05-03T10:30:00Z"];
    let mut tasks = Vec::new();
    for (i, pilot) in pilots.iter().enumerate() {
        let start = starts[i % starts.len()];
        let req = w.book_req(b.bike, *pilot, start, 60, &[]);
        let mut client = clients[i % 2].clone();
        tasks.push(tokio::spawn(async move { (start, client.book_ride(req).await) }));
    }
    let mut accepted: Vec<DateTime<Utc>> = Vec::new();
    let mut refused: Vec<DateTime<Utc>> = Vec::new();
    for task in tasks {
        let (start, result) = task.await.unwrap();
        match result {
            Ok(_) => accepted.push(t(start)),
            Err(e) => {
                assert_eq!(code(&e), ErrorCode::BikeTaken, "{e:?}");
                refused.push(t(start));
            }
        }
    }
    let held = |s: DateTime<Utc>| (s, s + chrono::Duration::minutes(75));
    for (i, a) in accepted.iter().enumerate() {
        for c in accepted.iter().skip(i + 1) {
            let (x, y) = (held(*a), held(*c));
            assert!(x.1 <= y.0 || y.1 <= x.0, "accepted rides overlap: {a} and {c}");
        }
    }
    for s in &refused {
        assert!(
            accepted.iter().any(|a| held(*a).0 < held(*s).1 && held(*s).0 < held(*a).1),
            "{s} refused though it fits"
        );
    }
    assert!(accepted.len() >= 2);
    let booked = w
        .booking_store
        .fetch_i64("SELECT count(*) FROM eventlog_events WHERE event_type = 'RideBooked'", &[])
        .await
        .unwrap();
    assert_eq!(booked, Some(accepted.len() as i64), "the shared log holds exactly the accepted rides");
}
