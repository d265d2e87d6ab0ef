//! The stats as of a moment from snapshots (`booking::asof`) equal the whole fold of the
//! log (`stats::rides_as_of`) at every moment: before, at and after each snapshot, with
//! rides completed, cancelled, corrected after they ended (read back from their streams)
//! and booked after a snapshot; and snapshots taken while bookings race stay exact.

use std::collections::BTreeMap;

use crate::common::*;
use booking::asof;
use booking::stats::{self, Counted};
use chrono::Utc;
use eventlog::EventStore;
use samskab_proto::booking::v1 as bpb;
use uuid::Uuid;

testkit::both_backends!(setup = World::new;
    snapshots_and_the_events_after_them_equal_the_whole_fold_at_every_moment,
    snapshots_taken_while_bookings_race_hold_exactly_what_was_recorded_before_them,
);

/// The chapter's rides as counted as of `at`, from the whole log (the reference).
async fn whole(store: &EventStore, chapter: Uuid, at: i64) -> Vec<Counted> {
    let at = chrono::DateTime::from_timestamp_micros(at).unwrap();
    stats::rides_as_of(store, Some(chapter), at).await.unwrap().iter().map(Counted::of).collect()
}

async fn from_snapshots(store: &EventStore, chapter: Uuid, at: i64) -> Vec<Counted> {
    asof::rides(store, chapter, chrono::DateTime::from_timestamp_micros(at).unwrap()).await.unwrap()
}

fn now() -> i64 {
    Utc::now().timestamp_micros()
}

#[derive(Debug, sqlx::FromRow)]
struct Stored {
    taken_at: i64,
    body: String,
}

async fn stored(store: &EventStore, chapter: Uuid) -> Vec<(i64, asof::Snapshot)> {
    let rows: Vec<Stored> = store
        .fetch_rows(
            "SELECT taken_at, body FROM booking_stats_snapshots WHERE chapter_id = $1 ORDER BY taken_at",
            &[chapter.into()],
        )
        .await
        .unwrap();
    rows.into_iter().map(|r| (r.taken_at, serde_json::from_str(&r.body).unwrap())).collect()
}

fn cmd(ride: &str) -> bpb::RideCommandRequest {
    bpb::RideCommandRequest { context: ctx_as("pilot"), ride_id: ride.into(), ..Default::default() }
}

async fn complete(w: &mut World, ride: &str, ended: &str, km: f64) {
    w.booking.start_ride(cmd(ride)).await.unwrap();
    w.booking
        .complete_ride(bpb::CompleteRideRequest {
            context: ctx_as("pilot"),
            ride_id: ride.into(),
            ended_at: ts(ended),
            distance_km: km,
            bike_condition: "ok".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn cancel(w: &mut World, ride: &str) {
    w.booking
        .cancel_ride(bpb::CancelRideRequest {
            context: ctx_as("coordinator"),
            ride_id: ride.into(),
            reason: "weather".into(),
            note: String::new(),
        })
        .await
        .unwrap();
}

async fn snapshots_and_the_events_after_them_equal_the_whole_fold_at_every_moment(mut w: World) {
    let b = w.basic().await;
    let [r1, r2] = [w.resident(b.home, &["rides"]).await, w.resident(b.home, &["rides"]).await];
    w.settle().await;
    let store = w.booking_store.clone();
    let mut moments = vec![now()];

    // Before the first snapshot: one ride completed, two booked (one to end later, one to
    // be cancelled later).
    let done = w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[r1, r2]).await.unwrap().ride_id;
    complete(&mut w, &done, "2027-05-03T08:50:00Z", 6.5).await;
    let later = w.book(b.bike, b.pilot, "2027-05-04T08:00:00Z", 60, &[r1]).await.unwrap().ride_id;
    let cancelled = w.book(b.bike, b.pilot, "2027-05-05T08:00:00Z", 45, &[r2]).await.unwrap().ride_id;
    moments.push(now());
    let first = asof::take(&store, b.chapter, 0).await.unwrap().expect("a first snapshot");
    moments.push(now());

    // After it: the booked ride completes, the other is cancelled, the ended one is
    // corrected (it was stored only as counted: its stream is read back), one more booked.
    complete(&mut w, &later, "2027-05-04T08:40:00Z", 3.0).await;
    moments.push(now());
    // Ended and corrected within one fold: rebuilt from its stream up to what was read.
    w.booking
        .correct_ride(bpb::CorrectRideRequest {
            context: ctx_as("coordinator"),
            ride_id: later.clone(),
            distance_km: Some(4.75),
            note: "further than logged".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    moments.push(now());
    cancel(&mut w, &cancelled).await;
    w.booking
        .correct_ride(bpb::CorrectRideRequest {
            context: ctx_as("coordinator"),
            ride_id: done.clone(),
            distance_km: Some(9.25),
            set_absent: true,
            absent_resident_ids: vec![r2.to_string()],
            note: "r2 stayed in".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let fresh = w.book(b.bike, b.pilot, "2027-05-06T08:00:00Z", 30, &[r1]).await.unwrap().ride_id;
    moments.push(now());
    let second = asof::take(&store, b.chapter, 0).await.unwrap().expect("a second snapshot");
    moments.push(now());

    // After the second: a no-show, and one more ride.
    w.booking.mark_no_show(cmd(&fresh)).await.unwrap();
    w.book(b.bike, b.pilot, "2027-05-07T08:00:00Z", 60, &[r2]).await.unwrap();
    moments.push(now());
    assert_eq!(asof::take(&store, b.chapter, 100).await.unwrap(), None, "two events are fewer than asked for");

    let snaps = stored(&store, b.chapter).await;
    assert_eq!(snaps.iter().map(|s| s.0).collect::<Vec<_>>(), vec![first, second]);
    for (taken_at, snap) in &snaps {
        let reference = whole(&store, b.chapter, *taken_at).await;
        assert_eq!(snap.counted.values().cloned().collect::<Vec<_>>(), reference, "snapshot at {taken_at}");
        assert!(snap.open.values().all(|r| r.status.is_active()), "only active rides are held whole");
    }
    assert_eq!(snaps[0].1.open.len(), 2, "two rides were active at the first snapshot");
    moments.extend([first, second, first - 1, second + 1, i64::MAX / 2]);
    let mut answers = BTreeMap::new();
    for at in moments {
        let reference = whole(&store, b.chapter, at).await;
        assert_eq!(from_snapshots(&store, b.chapter, at).await, reference, "as of {at}");
        answers.insert(at, reference);
    }
    // The moments saw different states (the test would not notice a snapshot standing for
    // every moment otherwise).
    let distinct: std::collections::BTreeSet<String> = answers.values().map(|v| format!("{v:?}")).collect();
    assert!(distinct.len() >= 5, "{} distinct states", distinct.len());

    // The service answers from them: the same figures as the whole fold.
    let at = chrono::DateTime::from_timestamp_micros(second).unwrap();
    let answer = |chapter: Option<Uuid>| bpb::StatsRequest {
        chapter_id: chapter.map(|c| c.to_string()).unwrap_or_default(),
        as_of: Some(prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }),
        ..Default::default()
    };
    let chapter_figures = w.booking.stats(answer(Some(b.chapter))).await.unwrap().into_inner().total;
    let zones = stats::zones(&store).await.unwrap();
    let (expected, _) =
        stats::tally_counted(whole(&store, b.chapter, second).await.iter(), &Default::default(), &zones);
    assert_eq!(chapter_figures, Some(expected.proto()));
    assert_eq!(expected.total.trips, 2, "two trips as of the second snapshot: {expected:?}");
}

async fn snapshots_taken_while_bookings_race_hold_exactly_what_was_recorded_before_them(mut w: World) {
    let b = w.basic().await;
    let mut bikes = vec![b.bike];
    let mut pilots = vec![b.pilot];
    for _ in 0..3 {
        bikes.push(w.bike(b.home, 2).await);
        pilots.push(w.pilot(b.chapter).await);
    }
    w.settle().await;
    let store = w.booking_store.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // 16 writers book (and cancel every third) on four trishaws and pilots, some slots
    // contended; a snapshot is taken as often as it can meanwhile.
    let mut writers = Vec::new();
    for n in 0..16u32 {
        let mut client = w.booking.clone();
        let (bike, pilot) = (bikes[n as usize % 4], pilots[n as usize % 4]);
        let req = w.book_req(bike, pilot, "2027-06-01T08:00:00Z", 30, &[]);
        writers.push(tokio::spawn(async move {
            for k in 0..12u32 {
                let mut req = req.clone();
                let day = 1 + (n / 4 + k * 4) % 28;
                req.start = ts(&format!("2027-06-{day:02}T{:02}:00:00Z", 8 + k % 3));
                req.context = ctx();
                if let Ok(r) = client.book_ride(req).await
                    && k % 3 == 0
                {
                    let ride_id = r.into_inner().ride.unwrap().ride_id;
                    let _ = client
                        .cancel_ride(bpb::CancelRideRequest {
                            context: ctx_as("coordinator"),
                            ride_id,
                            reason: "rider".into(),
                            note: String::new(),
                        })
                        .await;
                }
            }
        }));
    }
    let taker = {
        let (store, stop, chapter) = (store.clone(), stop.clone(), b.chapter);
        tokio::spawn(async move {
            let mut taken = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if asof::take(&store, chapter, 1).await.unwrap().is_some() {
                    taken += 1;
                }
            }
            taken
        })
    };
    for t in writers {
        t.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let taken = taker.await.unwrap();
    assert!(taken >= 3, "snapshots taken during the race: {taken}");
    let snaps = stored(&store, b.chapter).await;
    assert!(snaps.len() >= 3, "kept: {}", snaps.len());
    for (taken_at, snap) in &snaps {
        assert_eq!(
            snap.counted.values().cloned().collect::<Vec<_>>(),
            whole(&store, b.chapter, *taken_at).await,
            "the snapshot at {taken_at} holds every event recorded before it, and none after"
        );
        assert_eq!(
            from_snapshots(&store, b.chapter, *taken_at + 1).await,
            whole(&store, b.chapter, *taken_at + 1).await
        );
    }
    let end = now();
    let all = whole(&store, b.chapter, end).await;
    assert!(all.len() > 20, "rides booked: {}", all.len());
    assert_eq!(from_snapshots(&store, b.chapter, end).await, all);
}
