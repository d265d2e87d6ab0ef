//! The read models are the same whichever way the log is applied: by the live projection
//! (batches as they arrive), one event at a time (the reference), and by a rebuild (which
//! reads only ride streams and folds whole pages in memory, writing each ride once).

use crate::common::*;
use eventlog::{Cursor, EventStore, Filter, Projection};
use samskab_proto::booking::v1 as bpb;

testkit::both_backends!(setup = World::new;live_one_by_one_and_rebuilt_read_models_are_equal);

/// A row of `booking_rides`.
#[derive(Debug, PartialEq, sqlx::FromRow)]
struct RideRow {
    ride_id: String,
    chapter_id: String,
    carehome_id: String,
    bike_id: String,
    pilot_id: String,
    start_at: i64,
    end_at: i64,
    status: String,
    version: i64,
    doc: String,
}

/// A row of `booking_ride_riders`.
#[derive(Debug, PartialEq, sqlx::FromRow)]
struct RiderRow {
    ride_id: String,
    resident_id: String,
    start_at: i64,
}

/// A row of `booking_ride_requests`.
#[derive(Debug, PartialEq, sqlx::FromRow)]
struct RequestRow {
    ride_request_id: String,
    chapter_id: String,
    carehome_id: String,
    status: String,
    window_to: i64,
    doc: String,
}

/// Every row of the read models, in key order.
#[derive(Debug, PartialEq)]
struct Dump {
    rides: Vec<RideRow>,
    riders: Vec<RiderRow>,
    requests: Vec<RequestRow>,
}

impl Dump {
    fn is_empty(&self) -> bool {
        self.rides.is_empty() && self.riders.is_empty() && self.requests.is_empty()
    }
}

async fn dump(store: &EventStore) -> Dump {
    Dump {
        rides: store
            .fetch_rows(
                "SELECT ride_id, chapter_id, carehome_id, bike_id, pilot_id, start_at, end_at, status, version, doc \
                 FROM booking_rides ORDER BY ride_id",
                &[],
            )
            .await
            .unwrap(),
        riders: store
            .fetch_rows(
                "SELECT ride_id, resident_id, start_at FROM booking_ride_riders ORDER BY ride_id, resident_id",
                &[],
            )
            .await
            .unwrap(),
        requests: store
            .fetch_rows(
                "SELECT ride_request_id, chapter_id, carehome_id, status, window_to, doc FROM booking_ride_requests \
                 ORDER BY ride_request_id",
                &[],
            )
            .await
            .unwrap(),
    }
}

fn cmd(ride: &str) -> bpb::RideCommandRequest {
    bpb::RideCommandRequest { context: ctx_as("pilot"), ride_id: ride.into(), ..Default::default() }
}

async fn live_one_by_one_and_rebuilt_read_models_are_equal(mut w: World) {
    // A history with every kind of ride event, several per ride.
    let b = w.basic().await;
    let confirming = w.home(b.chapter, true).await;
    let confirming_bike = w.bike(confirming, 2).await;
    let (r1, r2, r3) = (
        w.resident(b.home, &["rides"]).await,
        w.resident(b.home, &["rides"]).await,
        w.resident(confirming, &["rides"]).await,
    );
    w.settle().await;
    let roster = |ride: &str, r: uuid::Uuid| bpb::RosterRequest {
        context: ctx_as("coordinator"),
        ride_id: ride.into(),
        resident_id: r.to_string(),
    };
    // Completed, after roster changes and a check-in.
    let done = w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[r1]).await.unwrap().ride_id;
    w.booking.add_rider(roster(&done, r2)).await.unwrap();
    w.booking.remove_rider(roster(&done, r2)).await.unwrap();
    w.booking.add_rider(roster(&done, r2)).await.unwrap();
    w.booking.start_ride(cmd(&done)).await.unwrap();
    w.booking
        .check_in_rider(bpb::RosterRequest {
            context: ctx_as("pilot"),
            ride_id: done.clone(),
            resident_id: r1.to_string(),
        })
        .await
        .unwrap();
    w.booking
        .complete_ride(bpb::CompleteRideRequest {
            context: ctx_as("pilot"),
            ride_id: done.clone(),
            ended_at: ts("2027-05-03T08:50:00Z"),
            distance_km: 6.5,
            bike_condition: "ok".into(),
            story: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Rescheduled, then cancelled.
    let moved = w.book(b.bike, b.pilot, "2027-05-04T08:00:00Z", 60, &[r1, r2]).await.unwrap().ride_id;
    w.booking
        .reschedule_ride(bpb::RescheduleRideRequest {
            context: ctx(),
            ride_id: moved.clone(),
            start: ts("2027-05-04T11:00:00Z"),
            duration_minutes: 90,
        })
        .await
        .unwrap();
    w.booking
        .cancel_ride(bpb::CancelRideRequest {
            context: ctx(),
            ride_id: moved.clone(),
            reason: "rider".into(),
            note: "ill".into(),
        })
        .await
        .unwrap();
    // No-show; pending then confirmed; still booked.
    let absent = w.book(b.bike, b.pilot, "2027-05-05T08:00:00Z", 60, &[r2]).await.unwrap().ride_id;
    w.booking.mark_no_show(cmd(&absent)).await.unwrap();
    let mut req = w.book_req(confirming_bike, b.pilot, "2027-05-06T08:00:00Z", 60, &[r3]);
    req.context = ctx_as("pilot");
    let pending = w.booking.book_ride(req).await.unwrap().into_inner().ride.unwrap().ride_id;
    w.booking.confirm_ride(cmd(&pending)).await.unwrap();
    w.book(b.bike, b.pilot, "2027-05-07T08:00:00Z", 30, &[r1]).await.unwrap();
    // A claimed request and a withdrawn one.
    let request = |from: &str, to: &str| bpb::RequestRideRequest {
        context: ctx_as("coordinator"),
        carehome_id: b.home.to_string(),
        resident_ids: vec![r1.to_string()],
        window: Some(bpb::TimeWindow { from: ts(from), to: ts(to) }),
        duration_minutes: 60,
        kind: String::new(),
        note: String::new(),
    };
    let claimed =
        w.booking.request_ride(request("2027-05-08T07:00:00Z", "2027-05-08T12:00:00Z")).await.unwrap().into_inner();
    w.booking
        .claim_ride_request(bpb::ClaimRideRequestRequest {
            context: ctx_as("pilot"),
            ride_request_id: claimed.ride_request_id.clone(),
            pilot_id: b.pilot.to_string(),
            bike_id: b.bike.to_string(),
            start: ts("2027-05-08T09:00:00Z"),
        })
        .await
        .unwrap();
    let withdrawn =
        w.booking.request_ride(request("2027-05-09T07:00:00Z", "2027-05-09T12:00:00Z")).await.unwrap().into_inner();
    w.booking
        .withdraw_ride_request(bpb::RideRequestCommandRequest {
            context: ctx(),
            ride_request_id: withdrawn.ride_request_id.clone(),
        })
        .await
        .unwrap();

    // 1. The live projection, once it has caught up.
    let store = w.booking_store.clone();
    testkit::eventually("the live projection to catch up", std::time::Duration::from_secs(30), || async {
        booking::readmodel::caught_up(&store).await.unwrap()
    })
    .await;
    let live = dump(&store).await;
    assert_eq!(live.rides.len(), 6, "six rides: {live:#?}");
    assert_eq!(live.requests.len(), 2);
    assert!(!live.riders.is_empty(), "rosters: {live:#?}");
    for status in ["completed", "cancelled", "no_show", "booked"] {
        assert!(live.rides.iter().any(|r| r.status == status), "a {status} ride in {live:#?}");
    }

    // 2. The reference: every event of the log applied on its own, in its own transaction.
    store
        .transaction(|tx| {
            Box::pin(async move {
                for sql in [
                    "DELETE FROM booking_rides",
                    "DELETE FROM booking_ride_riders",
                    "DELETE FROM booking_ride_requests",
                ] {
                    tx.execute(sql, &[]).await?;
                }
                Ok(())
            })
        })
        .await
        .unwrap();
    assert!(dump(&store).await.is_empty());
    let projection = std::sync::Arc::new(booking::readmodel::RidesProjection);
    let mut cursor = Cursor::START;
    let mut applied = 0;
    loop {
        let page = store.read_all(cursor, &Filter::all(), 100).await.unwrap();
        if page.events.is_empty() {
            break;
        }
        for e in page.events {
            let p = projection.clone();
            store.transaction(move |tx| Box::pin(async move { p.apply(tx, &e).await })).await.unwrap();
            applied += 1;
        }
        cursor = page.next;
    }
    assert!(applied > 30, "the scenario wrote {applied} events");
    let one_by_one = dump(&store).await;
    assert_eq!(one_by_one, live, "the live projection equals applying events one by one");

    // 3. A rebuild (ride streams only, folded across pages in memory, indexes dropped and
    // created again), with its default pages, and with the log cut into many small pages
    // and rides held between them or written at once (a ride ended in one page and
    // touched in a later one is read back).
    let indexes = index_sets(&store).await;
    assert!(indexes.iter().filter(|(_, list)| !list.is_empty()).count() >= 2, "secondary indexes: {indexes:?}");
    let rebuilt_events = booking::rebuild(&store, |_, _| {}).await.unwrap();
    assert!(rebuilt_events < applied, "the rebuild read only ride streams ({rebuilt_events} of {applied})");
    assert_eq!(dump(&store).await, one_by_one, "a rebuild equals applying events one by one");
    assert!(booking::readmodel::caught_up(&store).await.unwrap(), "the rebuild's checkpoint is at the head");
    assert_eq!(index_sets(&store).await, indexes, "the rebuild created every index it dropped, as it was");
    for (page, hold) in [(1, 0), (1, 1000), (3, 1), (7, 0), (7, 1000)] {
        let progress = std::sync::Mutex::new(Vec::new());
        booking::rebuild_paged(&store, page, hold, |done, total| progress.lock().unwrap().push((done, total)))
            .await
            .unwrap();
        assert_eq!(dump(&store).await, one_by_one, "pages of {page}, holding {hold}: equal to one by one");
        let progress = progress.into_inner().unwrap();
        assert!(progress.len() > rebuilt_events as usize / page / 2, "progress after each page: {progress:?}");
        assert!(progress.windows(2).all(|w| w[0].0 <= w[1].0), "progress only moves on: {progress:?}");
    }
    assert_eq!(index_sets(&store).await, indexes);

    // 4. A rebuild that fails half way (a corrupt event at the end of a ride's stream)
    // leaves the read model, its indexes and its checkpoint as it found them.
    let checkpoint = checkpoint_of(&store).await;
    let ride = live.rides[0].ride_id.clone();
    let version = store.stream_version(&format!("ride-{ride}")).await.unwrap();
    store
        .append_to(eventlog::StreamAppend::new(
            format!("ride-{ride}"),
            eventlog::ExpectedVersion::Exact(version),
            vec![eventlog::NewEvent::new("RideCompleted", &"not a ride event").unwrap()],
        ))
        .await
        .unwrap();
    let failed = booking::rebuild_paged(&store, 2, 0, |_, _| {}).await;
    assert!(failed.is_err(), "the corrupt event fails the rebuild: {failed:?}");
    assert_eq!(dump(&store).await, one_by_one, "a failed rebuild leaves the read model it found");
    assert_eq!(index_sets(&store).await, indexes, "and its indexes");
    assert_eq!(checkpoint_of(&store).await, checkpoint, "and its checkpoint");
}

/// The secondary indexes of the rides' tables, as (table, [(name, definition)]).
async fn index_sets(store: &EventStore) -> Vec<(&'static str, Vec<(String, String)>)> {
    store
        .transaction(|tx| {
            Box::pin(async move {
                let mut out = Vec::new();
                for table in ["booking_rides", "booking_ride_riders", "booking_ride_requests"] {
                    out.push((table, tx.secondary_indexes(table).await?));
                }
                Ok(out)
            })
        })
        .await
        .unwrap()
}

async fn checkpoint_of(store: &EventStore) -> Option<String> {
    store.load_checkpoint(booking::readmodel::NAME).await.unwrap()
}
