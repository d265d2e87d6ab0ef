//! Waitlists over real gRPC on both backends: residents wait in order for a seat on a full
//! ride; a seat that frees (a rider removed, consent withdrawn, moved out) goes to the
//! first waiting resident who may ride, in the same append; a promoted resident leaves the
//! waitlists of overlapping rides; a cancelled ride drops its waitlist; a 64-way race of
//! joins, removals and bookings keeps every roster within its seats.

use std::collections::BTreeMap;

use crate::common::*;
use samskab_proto::booking::v1 as bpb;
use samskab_proto::carehome::v1 as cpb;
use servicekit::ErrorCode;
use uuid::Uuid;

testkit::both_backends!(setup = World::new;
    ten_waiting_residents_take_freed_seats_in_order,
    a_promoted_resident_leaves_overlapping_waitlists_and_a_cancelled_ride_drops_its_own,
    a_race_of_joins_removals_and_bookings_keeps_every_roster_within_its_seats,
);

fn roster(ride: &str, resident: Uuid) -> bpb::RosterRequest {
    bpb::RosterRequest { context: ctx_as("coordinator"), ride_id: ride.into(), resident_id: resident.to_string() }
}

fn ids(v: &[Uuid]) -> Vec<String> {
    v.iter().map(Uuid::to_string).collect()
}

fn riders(r: &bpb::Ride) -> Vec<String> {
    r.riders.iter().map(|x| x.resident_id.clone()).collect()
}

async fn count(w: &World, event_type: &str) -> i64 {
    w.booking_store
        .fetch_i64("SELECT count(*) FROM eventlog_events WHERE event_type = $1", &[event_type.into()])
        .await
        .unwrap()
        .unwrap_or(0)
}

async fn ten_waiting_residents_take_freed_seats_in_order(mut w: World) {
    let b = w.basic().await;
    let (r1, r2) = (w.resident(b.home, &["rides"]).await, w.resident(b.home, &["rides"]).await);
    let mut waiting = Vec::new();
    for _ in 0..10 {
        waiting.push(w.resident(b.home, &["rides"]).await);
    }
    let other_home = w.home(b.chapter, false).await;
    let stranger = w.resident(other_home, &["rides"]).await;
    let elsewhere_bike = w.bike(b.home, 2).await;
    let elsewhere_pilot = w.pilot(b.chapter).await;
    w.settle().await;
    let ride = w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[r1]).await.unwrap();
    let id = ride.ride_id.clone();

    // A free seat: put them on the roster instead.
    let err = w.booking.join_waitlist(roster(&id, waiting[0])).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::SeatFree);
    w.booking.add_rider(roster(&id, r2)).await.unwrap();
    for r in &waiting {
        w.booking.join_waitlist(roster(&id, *r)).await.unwrap();
    }
    // Again: nothing changes; a rider, and a resident of another home, cannot wait.
    let again = w.booking.join_waitlist(roster(&id, waiting[0])).await.unwrap().into_inner();
    assert_eq!(again.waitlist, ids(&waiting), "first in line first, once each");
    let err = w.booking.join_waitlist(roster(&id, r1)).await.unwrap_err();
    assert_eq!(servicekit::RemoteError::from_status(&err).fields[0].field, "/resident_id");
    let err = w.booking.join_waitlist(roster(&id, stranger)).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::NotResidentHere);
    assert_eq!(count(&w, "ResidentWaitlisted").await, 10);

    // waiting[2] is booked elsewhere at that time: passed over, keeping their place.
    w.book(elsewhere_bike, elsewhere_pilot, "2027-05-03T08:30:00Z", 30, &[waiting[2]]).await.unwrap();
    // waiting[4] withdraws consent: they leave the waitlist (the cascade).
    w.carehome
        .withdraw_consent(cpb::ResidentCommandRequest {
            context: ctx_as("coordinator"),
            resident_id: waiting[4].to_string(),
        })
        .await
        .unwrap();
    let booking = w.booking.clone();
    let (gone, want) = (id.clone(), waiting[4].to_string());
    testkit::eventually("the cascade takes the resident off the waitlist", testkit::DEFAULT_TIMEOUT, || {
        let (mut booking, id, want) = (booking.clone(), gone.clone(), want.clone());
        async move {
            let r = booking.get_ride(bpb::GetRideRequest { ride_id: id, include_personal: false }).await.unwrap();
            !r.into_inner().waitlist.contains(&want)
        }
    })
    .await;
    waiting.remove(4);
    // waiting[6] (now index 5) is taken off by the coordinator.
    let left = w.booking.leave_waitlist(roster(&id, waiting[5])).await.unwrap().into_inner();
    assert!(!left.waitlist.contains(&waiting[5].to_string()));
    let err = w.booking.leave_waitlist(roster(&id, waiting[5])).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::NotFound);
    waiting.remove(5);

    // Seats free one by one: the first who may ride takes each, in order.
    let mut on = vec![r1, r2];
    let mut expected_order = Vec::new();
    let mut line: Vec<Uuid> = waiting.clone();
    for step in 0..7 {
        let leaving = on.remove(0);
        let after = w.booking.remove_rider(roster(&id, leaving)).await.unwrap().into_inner();
        // The first in line who is not busy elsewhere.
        let next = *line.iter().find(|r| **r != waiting[2]).unwrap();
        line.retain(|r| *r != next);
        on.push(next);
        expected_order.push(next);
        assert_eq!(riders(&after), ids(&on), "step {step}: the seat went to the first who may ride");
        assert_eq!(after.waitlist, ids(&line), "step {step}: the others keep their order");
    }
    assert!(line.contains(&waiting[2]), "the busy resident keeps their place");
    assert_eq!(count(&w, "RiderPromotedFromWaitlist").await, 7);
    assert_eq!(count(&w, "ResidentLeftWaitlist").await, 2);
    // Each promotion is in the same append as the removal that freed the seat: its event
    // follows the removal's directly in the ride's stream.
    let stream = format!("ride-{id}");
    let types = w
        .booking_store
        .fetch_texts(
            "SELECT event_type FROM eventlog_events WHERE stream_id = $1 ORDER BY version",
            &[stream.as_str().into()],
        )
        .await
        .unwrap();
    let removed: Vec<usize> =
        types.iter().enumerate().filter(|(_, t)| *t == "RiderRemovedFromRoster").map(|(i, _)| i).collect();
    assert_eq!(removed.len(), 7);
    for i in removed {
        assert_eq!(types[i + 1], "RiderPromotedFromWaitlist");
    }
    // A roster with room again takes a direct addition; the waitlist is for full rides.
    let last = w.ride(&id).await;
    assert_eq!(last.riders.len(), 2);
}

async fn a_promoted_resident_leaves_overlapping_waitlists_and_a_cancelled_ride_drops_its_own(mut w: World) {
    let b = w.basic().await;
    let bike2 = w.bike(b.home, 1).await;
    let pilot2 = w.pilot(b.chapter).await;
    let bike3 = w.bike(b.home, 1).await;
    let pilot3 = w.pilot(b.chapter).await;
    let (a1, a2, c1, x) = (
        w.resident(b.home, &["rides"]).await,
        w.resident(b.home, &["rides"]).await,
        w.resident(b.home, &["rides"]).await,
        w.resident(b.home, &["rides"]).await,
    );
    w.settle().await;
    let a = w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[a1, a2]).await.unwrap();
    let c = w.book(bike2, pilot2, "2027-05-03T08:30:00Z", 60, &[c1]).await.unwrap();
    // x waits for both overlapping rides.
    w.booking.join_waitlist(roster(&a.ride_id, x)).await.unwrap();
    w.booking.join_waitlist(roster(&c.ride_id, x)).await.unwrap();
    // A seat frees on a: x takes it, and leaves c's waitlist in the same append.
    let after = w.booking.remove_rider(roster(&a.ride_id, a2)).await.unwrap().into_inner();
    assert_eq!(riders(&after), ids(&[a1, x]));
    assert!(after.waitlist.is_empty());
    let c_now = w.ride(&c.ride_id).await;
    assert!(c_now.waitlist.is_empty(), "a promoted resident leaves every overlapping waitlist");
    let cause = w
        .booking_store
        .fetch_texts(
            "SELECT CAST(payload AS TEXT) FROM eventlog_events WHERE event_type = 'ResidentLeftWaitlist' AND stream_id = $1",
            &[format!("ride-{}", c.ride_id).as_str().into()],
        )
        .await
        .unwrap();
    assert_eq!(cause.len(), 1);
    assert!(cause[0].contains("promoted_elsewhere"), "{}", cause[0]);
    // Riding a then, x cannot wait for another ride at that time.
    let err = w.booking.join_waitlist(roster(&c.ride_id, x)).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::ResidentBusy);

    // c is full again with a waiting resident; cancelling it drops the waitlist, and the
    // waiting resident's place is released (they may join another ride at that time).
    w.booking.join_waitlist(roster(&c.ride_id, a2)).await.unwrap();
    let cancelled = w
        .booking
        .cancel_ride(bpb::CancelRideRequest {
            context: ctx_as("coordinator"),
            ride_id: c.ride_id.clone(),
            reason: "rider".into(),
            note: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(cancelled.waitlist.is_empty(), "a cancelled ride drops its waitlist");
    let d = w.book(bike2, pilot2, "2027-05-03T08:30:00Z", 60, &[a2]).await.unwrap();
    assert_eq!(riders(&d), ids(&[a2]));

    // Rescheduling keeps the waitlist, and a seat freed afterwards is still given.
    let (e1, e2) = (w.resident(b.home, &["rides"]).await, w.resident(b.home, &["rides"]).await);
    w.settle().await;
    let e = w.book(bike3, pilot3, "2027-05-04T08:00:00Z", 60, &[e1]).await.unwrap();
    w.booking.join_waitlist(roster(&e.ride_id, e2)).await.unwrap();
    w.booking
        .reschedule_ride(bpb::RescheduleRideRequest {
            context: ctx_as("coordinator"),
            ride_id: e.ride_id.clone(),
            start: ts("2027-05-05T09:00:00Z"),
            duration_minutes: 60,
        })
        .await
        .unwrap();
    let moved = w.booking.remove_rider(roster(&e.ride_id, e1)).await.unwrap().into_inner();
    assert_eq!(riders(&moved), ids(&[e2]));
    // e2 holds the new slot: another ride then is refused for them.
    let err = w.book(b.bike, b.pilot, "2027-05-05T09:30:00Z", 30, &[e2]).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::ResidentBusy);
}

/// 64 concurrent commands on four overlapping two-seat rides: residents join waitlists,
/// riders are taken off (each freeing a seat that a promotion fills), residents are added
/// directly, and new rides are booked for waiting residents. However the race resolves,
/// no roster exceeds its seats, no resident rides two overlapping rides, and nobody is on
/// a ride's roster and its waitlist at once.
async fn a_race_of_joins_removals_and_bookings_keeps_every_roster_within_its_seats(mut w: World) {
    let b = w.basic().await;
    let mut rides = Vec::new();
    let mut residents = Vec::new();
    for _ in 0..24 {
        residents.push(w.resident(b.home, &["rides"]).await);
    }
    let mut spare = Vec::new();
    for _ in 0..4 {
        spare.push((w.bike(b.home, 2).await, w.pilot(b.chapter).await));
    }
    let mut bikes = vec![(b.bike, b.pilot)];
    for _ in 0..3 {
        bikes.push((w.bike(b.home, 2).await, w.pilot(b.chapter).await));
    }
    w.settle().await;
    let starts = ["2027-05-03T08:00:00Z", "2027-05-03T08:30:00Z", "2027-05-03T08:45:00Z", "2027-05-03T09:00:00Z"];
    for (i, (bike, pilot)) in bikes.iter().enumerate() {
        let seated = [residents[2 * i], residents[2 * i + 1]];
        rides.push(w.book(*bike, *pilot, starts[i], 60, &seated).await.unwrap().ride_id);
    }
    // Each ride's waitlist holds three residents of its own, and one resident waits for all.
    for (r, ride) in rides.iter().enumerate() {
        for k in [8 + 3 * r, 9 + 3 * r, 10 + 3 * r, 20] {
            w.booking.join_waitlist(roster(ride, residents[k])).await.unwrap();
        }
    }
    let mut tasks = Vec::new();
    for i in 0..64usize {
        let mut client = w.booking.clone();
        let r = (i / 4) % rides.len();
        let ride = rides[r].clone();
        let resident = residents[8 + (i * 7) % 16];
        let seated = residents[2 * r + (i / 16) % 2];
        let (bike, pilot) = spare[i % spare.len()];
        let req = w.book_req(bike, pilot, starts[(i + 1) % starts.len()], 60, &[resident]);
        tasks.push(tokio::spawn(async move {
            match i % 4 {
                0 | 1 => client.join_waitlist(roster(&ride, resident)).await.map(|_| None),
                2 => client.remove_rider(roster(&ride, seated)).await.map(|_| None),
                _ if i % 8 == 3 => client.add_rider(roster(&ride, resident)).await.map(|_| None),
                _ => client.book_ride(req).await.map(|r| r.into_inner().ride.map(|r| r.ride_id)),
            }
        }));
    }
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut booked = Vec::new();
    for t in tasks {
        let key = match t.await.unwrap() {
            Ok(id) => {
                booked.extend(id);
                "ok".to_owned()
            }
            Err(e) => {
                let c = code(&e);
                assert!(
                    matches!(
                        c,
                        ErrorCode::SeatFree
                            | ErrorCode::ResidentBusy
                            | ErrorCode::TooManyRiders
                            | ErrorCode::NotFound
                            | ErrorCode::BikeTaken
                            | ErrorCode::PilotBusy
                            | ErrorCode::Validation
                    ),
                    "{e:?}"
                );
                c.to_string()
            }
        };
        *outcomes.entry(key).or_default() += 1;
    }
    assert!(outcomes.get("ok").copied().unwrap_or(0) > 0, "{outcomes:?}");
    // Read every ride the residents are on.
    let mut all = Vec::new();
    for id in &rides {
        all.push(w.ride(id).await);
    }
    for id in &booked {
        all.push(w.ride(id).await);
    }
    let span = |r: &bpb::Ride| {
        let s = samskab_proto::time::from_proto(r.start.as_ref().unwrap()).unwrap();
        (s, s + chrono::Duration::minutes(i64::from(r.duration_minutes)))
    };
    for r in &all {
        assert!(r.riders.len() <= 2, "ride {} has {} riders on two seats", r.ride_id, r.riders.len());
        for x in &r.waitlist {
            assert!(!riders(r).contains(x), "{x} both rides and waits on {}", r.ride_id);
        }
    }
    for (i, p) in all.iter().enumerate() {
        for q in all.iter().skip(i + 1) {
            let ((ps, pe), (qs, qe)) = (span(p), span(q));
            if ps < qe && qs < pe {
                for x in riders(p) {
                    assert!(!riders(q).contains(&x), "{x} rides {} and {} at once", p.ride_id, q.ride_id);
                }
            }
        }
    }
    // A seat left free while residents wait: each of them rides an overlapping ride (no
    // command in the race frees a waiting resident, so busy stays busy).
    for r in &all {
        if r.riders.len() < 2 && r.status != "cancelled" {
            for x in &r.waitlist {
                let busy = all.iter().any(|q| {
                    let ((ps, pe), (qs, qe)) = (span(r), span(q));
                    q.ride_id != r.ride_id && ps < qe && qs < pe && riders(q).contains(x)
                });
                assert!(busy, "{x} waits for a free seat on {} and may ride it", r.ride_id);
            }
        }
    }
    // Every promotion seated someone who was waiting, and the books balance: riders now =
    // booked riders + added + promoted - removed, per ride.
    let promoted = count(&w, "RiderPromotedFromWaitlist").await;
    let removed = count(&w, "RiderRemovedFromRoster").await;
    assert!(promoted <= removed, "a promotion only follows a freed seat ({promoted} > {removed})");
}
