//! Pilots racing to claim one ride request, on both backends: exactly one claim wins and
//! books the ride; every other pilot is refused with `illegal-transition` (409 at the
//! gateway), never `unavailable`. Each pilot brings a trishaw of their own and a slot of
//! their own in the window, so that nothing but the request itself is contested: a loser
//! that decided on the open request must decide again on the claimed one.

use crate::common::*;
use samskab_proto::booking::v1 as bpb;
use servicekit::ErrorCode;

testkit::both_backends!(setup = World::new; thirty_two_pilots_claiming_one_request_leave_one_winner);

async fn thirty_two_pilots_claiming_one_request_leave_one_winner(mut w: World) {
    let b = w.basic().await;
    let rider = w.resident(b.home, &["rides"]).await;
    let mut crews = Vec::new();
    for _ in 0..32 {
        crews.push((w.pilot(b.chapter).await, w.bike(b.home, 2).await));
    }
    w.settle().await;
    let window = ("2027-05-03T07:00:00Z", "2027-05-03T15:00:00Z");
    let request = w.request_ride(b.home, &[rider], window, 15, "").await;
    let mut tasks = Vec::new();
    for (i, (pilot, bike)) in crews.iter().enumerate() {
        let start = t("2027-05-03T07:00:00Z") + chrono::Duration::minutes(15 * i as i64);
        let claim = bpb::ClaimRideRequestRequest {
            context: ctx_as("pilot"),
            ride_request_id: request.ride_request_id.clone(),
            pilot_id: pilot.to_string(),
            bike_id: bike.to_string(),
            start: Some(samskab_proto::time::to_proto(start)),
        };
        let mut client = w.booking.clone();
        let pilot = *pilot;
        tasks.push(tokio::spawn(async move { (pilot, client.claim_ride_request(claim).await) }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (pilot, result) = task.await.unwrap();
        match result {
            Ok(r) => winners.push((pilot, r.into_inner())),
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::Aborted, "a losing claim is a conflict: {e:?}");
                assert_eq!(code(&e), ErrorCode::IllegalTransition, "a losing claim: {e:?}");
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    let (pilot, won) = winners.pop().unwrap();
    let ride = won.ride.unwrap();
    assert_eq!(ride.pilot_id, pilot.to_string());
    let now = w
        .booking
        .get_ride_request(bpb::GetRideRequestRequest {
            ride_request_id: request.ride_request_id.clone(),
            include_personal: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (now.status.as_str(), now.ride_id.as_str(), now.pilot_id),
        ("claimed", ride.ride_id.as_str(), pilot.to_string())
    );
    let booked = w
        .booking_store
        .fetch_i64("SELECT count(*) FROM eventlog_events WHERE event_type = 'RideBooked'", &[])
        .await
        .unwrap();
    assert_eq!(booked, Some(1), "one ride booked for the request");
}
