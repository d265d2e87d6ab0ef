//! Rides through their life cycle, rosters, functional round trips, ride requests,
//! rescheduling and availability, over real gRPC on both backends.

use crate::common::*;
use samskab_proto::booking::v1 as bpb;
use servicekit::ErrorCode;

testkit::both_backends!(setup = World::new;
    a_ride_runs_from_pending_to_completed,
    illegal_transitions_are_refused,
    the_roster_follows_the_booking_rules,
    a_story_needs_the_riders_consent_and_is_sealed,
    a_functional_round_trip_books_two_linked_legs,
    a_claimed_request_books_its_ride_atomically,
    rescheduling_frees_the_old_slot,
    availability_shows_free_intervals_around_rides,
    availability_reads_every_trishaw_of_a_home_with_more_than_one_statement_holds,
);

fn cmd(ride: &str) -> bpb::RideCommandRequest {
    bpb::RideCommandRequest { context: ctx_as("pilot"), ride_id: ride.into(), ..Default::default() }
}

async fn a_ride_runs_from_pending_to_completed(mut w: World) {
    let chapter = w.chapter().await;
    let home = w.home(chapter, true).await;
    let bike = w.bike(home, 2).await;
    let pilot = w.pilot(chapter).await;
    let r = w.resident(home, &["rides", "stories"]).await;
    w.settle().await;
    let mut req = w.book_req(bike, pilot, "2027-05-03T08:00:00Z", 60, &[r]);
    req.context = ctx_as("pilot");
    let ride = w.booking.book_ride(req).await.unwrap().into_inner().ride.unwrap();
    assert_eq!(ride.status, "pending_confirmation", "the care home requires confirmation of pilot bookings");
    let id = ride.ride_id.clone();
    let confirmed = w.booking.confirm_ride(cmd(&id)).await.unwrap().into_inner();
    assert_eq!(confirmed.status, "booked");
    assert_eq!(w.booking.start_ride(cmd(&id)).await.unwrap().into_inner().status, "started");
    let checked = w
        .booking
        .check_in_rider(bpb::RosterRequest {
            context: ctx_as("pilot"),
            ride_id: id.clone(),
            resident_id: r.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(checked.riders[0].checked_in);
    let done = w
        .booking
        .complete_ride(bpb::CompleteRideRequest {
            context: ctx_as("pilot"),
            ride_id: id.clone(),
            ended_at: ts("2027-05-03T08:55:00Z"),
            distance_km: 7.5,
            bike_condition: "ok".into(),
            story: "Vi så havnen".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.status, "completed");
    assert_eq!(done.distance_km, 7.5);
    let full = w.ride(&id).await;
    assert_eq!(full.story, "Vi så havnen");
    assert_eq!(full.version, 5);
}

async fn illegal_transitions_are_refused(mut w: World) {
    let b = w.basic().await;
    w.settle().await;
    let ride = w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[]).await.unwrap();
    let id = ride.ride_id;
    let err = w.booking.confirm_ride(cmd(&id)).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::IllegalTransition);
    let cancelled = w
        .booking
        .cancel_ride(bpb::CancelRideRequest {
            context: ctx(),
            ride_id: id.clone(),
            reason: "rider".into(),
            note: "ill".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status, "cancelled");
    assert_eq!(cancelled.cancel_reason, "rider");
    assert_eq!(w.ride(&id).await.cancel_note, "ill");
    for err in [
        w.booking.start_ride(cmd(&id)).await.unwrap_err(),
        w.booking.mark_no_show(cmd(&id)).await.unwrap_err(),
        w.booking
            .cancel_ride(bpb::CancelRideRequest {
                context: ctx(),
                ride_id: id.clone(),
                reason: "rider".into(),
                note: String::new(),
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(code(&err), ErrorCode::IllegalTransition, "a cancelled ride stays cancelled");
    }
    let bad = w
        .booking
        .cancel_ride(bpb::CancelRideRequest {
            context: ctx(),
            ride_id: id.clone(),
            reason: "rain".into(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(servicekit::RemoteError::from_status(&bad).fields[0].field, "/reason");
    // A new ride may take the cancelled ride's slot.
    w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[]).await.unwrap();
}

async fn the_roster_follows_the_booking_rules(mut w: World) {
    let b = w.basic().await;
    let (r1, r2, r3) = (
        w.resident(b.home, &["rides"]).await,
        w.resident(b.home, &["rides"]).await,
        w.resident(b.home, &["rides"]).await,
    );
    w.settle().await;
    let ride = w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[r1]).await.unwrap();
    let add = |r: uuid::Uuid| bpb::RosterRequest {
        context: ctx_as("coordinator"),
        ride_id: ride.ride_id.clone(),
        resident_id: r.to_string(),
    };
    let two = w.booking.add_rider(add(r2)).await.unwrap().into_inner();
    assert_eq!(two.riders.len(), 2);
    let err = w.booking.add_rider(add(r3)).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::TooManyRiders);
    let one = w.booking.remove_rider(add(r1)).await.unwrap().into_inner();
    assert_eq!(one.riders.len(), 1);
    // r1 is free again at that time: another trishaw may take them.
    let other_bike = w.bike(b.home, 1).await;
    let other_pilot = w.pilot(b.chapter).await;
    w.settle().await;
    w.book(other_bike, other_pilot, "2027-05-03T08:00:00Z", 60, &[r1]).await.unwrap();
    let err = w.booking.remove_rider(add(r1)).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::NotFound);
}

async fn a_story_needs_the_riders_consent_and_is_sealed(mut w: World) {
    let b = w.basic().await;
    let r = w.resident(b.home, &["rides"]).await;
    w.settle().await;
    let ride = w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[r]).await.unwrap();
    w.booking.start_ride(cmd(&ride.ride_id)).await.unwrap();
    let complete = |story: &str| bpb::CompleteRideRequest {
        context: ctx_as("pilot"),
        ride_id: ride.ride_id.clone(),
        ended_at: ts("2027-05-03T09:00:00Z"),
        distance_km: 3.0,
        bike_condition: String::new(),
        story: story.into(),
        ..Default::default()
    };
    let err = w.booking.complete_ride(complete("Fru Østergård smilede")).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::NoConsent);
    w.booking.complete_ride(complete("")).await.unwrap();
    let log = w.booking_store.fetch_texts("SELECT CAST(payload AS TEXT) FROM eventlog_events", &[]).await.unwrap();
    assert!(log.iter().all(|p| !p.contains("Østergård")));
}

async fn a_functional_round_trip_books_two_linked_legs(mut w: World) {
    let b = w.basic().await;
    let r = w.resident(b.home, &["rides"]).await;
    w.settle().await;
    let mut req = w.book_req(b.bike, b.pilot, "2027-05-03T08:00:00Z", 45, &[r]);
    req.kind = "functional".into();
    req.pickup = "Lindevej 1".into();
    req.dropoff = "Lægehuset, Søndergade 12".into();
    let booked = w.booking.book_ride(req).await.unwrap().into_inner();
    let (out, back) = (booked.ride.unwrap(), booked.return_ride.expect("a return leg"));
    let (fo, fb) = (out.functional.unwrap(), back.functional.unwrap());
    assert_eq!(fo.linked_ride_id, back.ride_id);
    assert_eq!(fb.linked_ride_id, out.ride_id);
    assert_eq!((fo.leg.as_str(), fb.leg.as_str()), ("outbound", "return"));
    assert_eq!(fb.pickup, "Lægehuset, Søndergade 12");
    assert_eq!(back.start, ts("2027-05-03T09:45:00Z"), "return after the outbound end plus an hour");
    let log = w.booking_store.fetch_texts("SELECT CAST(payload AS TEXT) FROM eventlog_events", &[]).await.unwrap();
    assert!(log.iter().all(|p| !p.contains("Søndergade")), "addresses are sealed");
    let public = w
        .booking
        .get_ride(bpb::GetRideRequest { ride_id: out.ride_id, include_personal: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(public.functional.unwrap().pickup, "");
}

async fn a_claimed_request_books_its_ride_atomically(mut w: World) {
    let b = w.basic().await;
    let r = w.resident(b.home, &["rides"]).await;
    w.settle().await;
    let window = ("2027-05-03T07:00:00Z", "2027-05-03T12:00:00Z");
    let request = w.request_ride(b.home, &[r], window, 60, "Hun vil gerne se skoven").await;
    assert_eq!(request.status, "open");
    let claim = |start: &str| bpb::ClaimRideRequestRequest {
        context: ctx_as("pilot"),
        ride_request_id: request.ride_request_id.clone(),
        pilot_id: b.pilot.to_string(),
        bike_id: b.bike.to_string(),
        start: ts(start),
    };
    let err = w.booking.claim_ride_request(claim("2027-05-03T11:30:00Z")).await.unwrap_err();
    assert_eq!(servicekit::RemoteError::from_status(&err).fields[0].field, "/start");
    let claimed = w.booking.claim_ride_request(claim("2027-05-03T09:00:00Z")).await.unwrap().into_inner();
    let ride = claimed.ride.unwrap();
    assert_eq!(claimed.ride_request.unwrap().status, "claimed");
    assert_eq!(ride.ride_request_id, request.ride_request_id);
    assert_eq!(ride.riders[0].resident_id, r.to_string());
    let again = w.booking.claim_ride_request(claim("2027-05-03T10:00:00Z")).await.unwrap_err();
    assert_eq!(code(&again), ErrorCode::IllegalTransition);
    let withdraw = w
        .booking
        .withdraw_ride_request(bpb::RideRequestCommandRequest {
            context: ctx(),
            ride_request_id: request.ride_request_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(&withdraw), ErrorCode::IllegalTransition);
}

async fn rescheduling_frees_the_old_slot(mut w: World) {
    let b = w.basic().await;
    let other_pilot = w.pilot(b.chapter).await;
    w.settle().await;
    let ride = w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[]).await.unwrap();
    let moved = w
        .booking
        .reschedule_ride(bpb::RescheduleRideRequest {
            context: ctx(),
            ride_id: ride.ride_id.clone(),
            start: ts("2027-05-03T11:00:00Z"),
            duration_minutes: 90,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.start, ts("2027-05-03T11:00:00Z"));
    w.book(b.bike, other_pilot, "2027-05-03T08:00:00Z", 60, &[]).await.unwrap();
    let err = w.book(b.bike, other_pilot, "2027-05-03T12:00:00Z", 30, &[]).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::BikeTaken);
}

async fn availability_shows_free_intervals_around_rides(mut w: World) {
    let b = w.basic().await;
    w.settle().await;
    w.book(b.bike, b.pilot, "2027-05-03T09:00:00Z", 60, &[]).await.unwrap();
    // Ride hours 09:00-17:00 CEST = 07:00-15:00Z; the ride 09:00-10:00Z holds 08:45-10:15Z.
    let expected = vec![
        (ts("2027-05-03T07:00:00Z"), ts("2027-05-03T08:45:00Z")),
        (ts("2027-05-03T10:15:00Z"), ts("2027-05-03T15:00:00Z")),
    ];
    let free = testkit::eventually("the ride in the availability", testkit::DEFAULT_TIMEOUT, || async {
        let free = day_free(&w, b.home).await.remove(0).1;
        if free == expected { Ok(free) } else { Err(format!("{free:?}")) }
    })
    .await;
    assert_eq!(free, expected);
}

/// Each trishaw of `home` (by id) with its free intervals for an hour's ride on 3 May 2027.
async fn day_free(
    w: &World,
    home: uuid::Uuid,
) -> Vec<(String, Vec<(Option<prost_types::Timestamp>, Option<prost_types::Timestamp>)>)> {
    let a = w
        .booking
        .clone()
        .get_availability(bpb::GetAvailabilityRequest {
            carehome_id: home.to_string(),
            from: ts("2027-05-03T00:00:00Z"),
            to: ts("2027-05-04T00:00:00Z"),
            duration_minutes: 60,
        })
        .await
        .unwrap()
        .into_inner();
    a.bikes.iter().map(|b| (b.bike_id.clone(), b.free.iter().map(|f| (f.start, f.end)).collect())).collect()
}

/// Availability reads the rides of eight trishaws per statement: a home of ten has its
/// rides read in two, and each trishaw's free time shows its own rides only.
async fn availability_reads_every_trishaw_of_a_home_with_more_than_one_statement_holds(mut w: World) {
    let b = w.basic().await;
    let mut bikes = vec![b.bike];
    for _ in 0..9 {
        bikes.push(w.bike(b.home, 2).await);
    }
    let other_pilot = w.pilot(b.chapter).await;
    w.settle().await;
    // The bikes in the order availability lists them (by id): the first and the last are
    // read by different statements.
    bikes.sort();
    w.book(bikes[0], b.pilot, "2027-05-03T09:00:00Z", 60, &[]).await.unwrap();
    w.book(bikes[9], other_pilot, "2027-05-03T12:00:00Z", 60, &[]).await.unwrap();
    let whole_day = vec![(ts("2027-05-03T07:00:00Z"), ts("2027-05-03T15:00:00Z"))];
    let mut expected: Vec<(String, Vec<_>)> = bikes.iter().map(|id| (id.to_string(), whole_day.clone())).collect();
    expected[0].1 = vec![
        (ts("2027-05-03T07:00:00Z"), ts("2027-05-03T08:45:00Z")),
        (ts("2027-05-03T10:15:00Z"), ts("2027-05-03T15:00:00Z")),
    ];
    expected[9].1 = vec![
        (ts("2027-05-03T07:00:00Z"), ts("2027-05-03T11:45:00Z")),
        (ts("2027-05-03T13:15:00Z"), ts("2027-05-03T15:00:00Z")),
    ];
    let seen = testkit::eventually("both rides in the availability", testkit::DEFAULT_TIMEOUT, || async {
        let seen = day_free(&w, b.home).await;
        if seen == expected { Ok(seen) } else { Err(format!("{seen:?}")) }
    })
    .await;
    assert_eq!(seen.len(), 10);
}
