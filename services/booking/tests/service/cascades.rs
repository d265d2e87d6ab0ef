//! Invariant 7 over real gRPC on both backends: facts from the care-home and volunteer
//! services cancel rides or change rosters, exactly once even when their events are
//! delivered twice; weather days; booking catching up after the care-home service restarts.

use crate::common::*;
use samskab_proto::booking::v1 as bpb;
use samskab_proto::carehome::v1 as cpb;
use samskab_proto::volunteer::v1 as vpb;
use servicekit::ErrorCode;

testkit::both_backends!(setup = World::new;
    a_trishaw_out_of_service_cancels_its_future_rides_once,
    a_suspended_pilot_loses_future_rides,
    withdrawn_consent_takes_the_resident_off_future_rosters,
    a_closed_care_home_cancels_the_closed_days,
    a_weather_day_cancels_the_local_day_once,
    booking_catches_up_after_the_carehome_service_restarts,
    corrections_that_slip_past_the_check_cancel_the_rides_they_break_once,
);

async fn status(w: &mut World, ride: &str) -> (String, String) {
    let r = w.ride(ride).await;
    (r.status, r.cancel_reason)
}

async fn count(w: &World, event_type: &str) -> i64 {
    let sql = "SELECT count(*) FROM eventlog_events WHERE event_type = $1";
    w.booking_store.fetch_i64(sql, &[event_type.into()]).await.unwrap().unwrap_or(0)
}

/// Makes booking receive every care-home and volunteer event a second time: its feed
/// checkpoints are forgotten, so the followers start over from the beginning.
async fn redeliver_everything(w: &mut World) {
    w.booking_store
        .transaction(|tx| {
            Box::pin(async move {
                tx.execute("DELETE FROM eventlog_checkpoints WHERE consumer LIKE 'booking_facts_%'", &[]).await
            })
        })
        .await
        .unwrap();
    // Reconnect the followers by bouncing the care-home server; the volunteer follower
    // picks the reset up on its next batch (or we just wait: cascades are idempotent).
    w.stop_carehome().await;
    w.restart_carehome().await;
    // The care-home follower reconnects, finds no checkpoint and starts over: once its
    // checkpoint is back at the care-home log's end, everything was delivered again.
    let head = w.carehome_store.last_committed().await.unwrap();
    let store = w.booking_store.clone();
    testkit::eventually("the care-home feed delivered again from the start", testkit::DEFAULT_TIMEOUT, || async {
        let checkpoint = store.load_checkpoint("booking_facts_carehome").await.unwrap();
        checkpoint.as_deref().and_then(|c| c.parse::<eventlog::Cursor>().ok()).filter(|c| *c >= head)
    })
    .await;
    w.settle().await;
    // And every event of both peers worked as a cascade once more, as a second sweep would.
    for store in [w.carehome_store.clone(), w.volunteer_store.clone()] {
        let page = store.read_all(eventlog::Cursor::START, &eventlog::Filter::all(), 10_000).await.unwrap();
        for e in page.events {
            let changed = w.server.booking().cascade(e.id, &e.event_type, e.payload.get()).await.unwrap();
            assert_eq!(changed, 0, "{} worked twice changed rides", e.event_type);
        }
    }
}

async fn a_trishaw_out_of_service_cancels_its_future_rides_once(mut w: World) {
    let b = w.basic().await;
    w.settle().await;
    let a = w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[]).await.unwrap();
    let c = w.book(b.bike, b.pilot, "2027-05-04T08:00:00Z", 60, &[]).await.unwrap();
    w.carehome
        .take_bike_out_of_service(cpb::BikeServiceRequest {
            context: ctx(),
            bike_id: b.bike.to_string(),
            reason: "brakes".into(),
            expected_back: String::new(),
        })
        .await
        .unwrap();
    for id in [&a.ride_id, &c.ride_id] {
        let booking = w.booking.clone();
        testkit::eventually("equipment cancellation", testkit::DEFAULT_TIMEOUT, || {
            let (mut booking, id) = (booking.clone(), id.clone());
            async move {
                let r = booking
                    .get_ride(bpb::GetRideRequest { ride_id: id, include_personal: false })
                    .await
                    .unwrap()
                    .into_inner();
                (r.status.as_str(), r.cancel_reason.as_str()) == ("cancelled", "equipment")
            }
        })
        .await;
        assert_eq!(status(&mut w, id).await.1, "equipment");
    }
    assert_eq!(count(&w, "RideCancelled").await, 2);
    redeliver_everything(&mut w).await;
    assert_eq!(count(&w, "RideCancelled").await, 2, "a cascade delivered twice cancels once");
}

async fn a_suspended_pilot_loses_future_rides(mut w: World) {
    let b = w.basic().await;
    w.settle().await;
    let ride = w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[]).await.unwrap();
    w.volunteer
        .suspend_pilot(vpb::PilotCommandRequest { context: ctx(), pilot_id: b.pilot.to_string() })
        .await
        .unwrap();
    let booking = w.booking.clone();
    let id = ride.ride_id.clone();
    testkit::eventually("volunteer cancellation", testkit::DEFAULT_TIMEOUT, || {
        let (mut booking, id) = (booking.clone(), id.clone());
        async move {
            let r = booking
                .get_ride(bpb::GetRideRequest { ride_id: id, include_personal: false })
                .await
                .unwrap()
                .into_inner();
            r.status == "cancelled" && r.cancel_reason == "volunteer" && r.cancelled_by_role == "system"
        }
    })
    .await;
    redeliver_everything(&mut w).await;
    assert_eq!(count(&w, "RideCancelled").await, 1);
    let err = w.book(b.bike, b.pilot, "2027-05-05T08:00:00Z", 60, &[]).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::PilotSuspended);
}

async fn withdrawn_consent_takes_the_resident_off_future_rosters(mut w: World) {
    let b = w.basic().await;
    let (r1, r2) = (w.resident(b.home, &["rides"]).await, w.resident(b.home, &["rides"]).await);
    w.settle().await;
    let ride = w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[r1, r2]).await.unwrap();
    w.carehome
        .withdraw_consent(cpb::ResidentCommandRequest { context: ctx_as("coordinator"), resident_id: r1.to_string() })
        .await
        .unwrap();
    let booking = w.booking.clone();
    let id = ride.ride_id.clone();
    testkit::eventually("roster removal", testkit::DEFAULT_TIMEOUT, || {
        let (mut booking, id) = (booking.clone(), id.clone());
        async move {
            let r = booking
                .get_ride(bpb::GetRideRequest { ride_id: id, include_personal: false })
                .await
                .unwrap()
                .into_inner();
            r.riders.len() == 1
        }
    })
    .await;
    let r = w.ride(&ride.ride_id).await;
    assert_eq!(r.riders[0].resident_id, r2.to_string());
    assert_eq!(r.status, "booked", "a ride keeps its other riders");
    redeliver_everything(&mut w).await;
    assert_eq!(count(&w, "RiderRemovedFromRoster").await, 1);
    // Removing the last rider leaves the ride booked until someone cancels it (no_riders).
    w.carehome
        .move_out_resident(cpb::ResidentCommandRequest { context: ctx_as("coordinator"), resident_id: r2.to_string() })
        .await
        .unwrap();
    let booking = w.booking.clone();
    testkit::eventually("empty roster", testkit::DEFAULT_TIMEOUT, || {
        let (mut booking, id) = (booking.clone(), id.clone());
        async move {
            let r = booking
                .get_ride(bpb::GetRideRequest { ride_id: id, include_personal: false })
                .await
                .unwrap()
                .into_inner();
            r.riders.is_empty()
        }
    })
    .await;
    assert_eq!(w.ride(&ride.ride_id).await.status, "booked");
}

async fn a_closed_care_home_cancels_the_closed_days(mut w: World) {
    let b = w.basic().await;
    w.settle().await;
    let inside = w.book(b.bike, b.pilot, "2027-05-04T08:00:00Z", 60, &[]).await.unwrap();
    let outside = w.book(b.bike, b.pilot, "2027-05-06T08:00:00Z", 60, &[]).await.unwrap();
    w.carehome
        .close_care_home(cpb::CloseCareHomeRequest {
            context: ctx(),
            carehome_id: b.home.to_string(),
            closure: Some(cpb::Closure {
                from: "2027-05-04".into(),
                to: "2027-05-06".into(),
                reason: "outbreak".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let booking = w.booking.clone();
    let id = inside.ride_id.clone();
    testkit::eventually("facility cancellation", testkit::DEFAULT_TIMEOUT, || {
        let (mut booking, id) = (booking.clone(), id.clone());
        async move {
            let r = booking
                .get_ride(bpb::GetRideRequest { ride_id: id, include_personal: false })
                .await
                .unwrap()
                .into_inner();
            r.cancel_reason == "facility"
        }
    })
    .await;
    assert_eq!(w.ride(&outside.ride_id).await.status, "booked", "to is exclusive");
    let err = w.book(b.bike, b.pilot, "2027-05-05T08:00:00Z", 60, &[]).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::OutsideRideHours);
    redeliver_everything(&mut w).await;
    assert_eq!(count(&w, "RideCancelled").await, 1);
}

async fn a_weather_day_cancels_the_local_day_once(mut w: World) {
    let b = w.basic().await;
    let other_pilot = w.pilot(b.chapter).await;
    w.settle().await;
    // 2027-05-03 in Copenhagen is 2027-05-02T22:00Z to 2027-05-03T22:00Z.
    let a = w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[]).await.unwrap();
    let c = w.book(b.bike, other_pilot, "2027-05-03T12:00:00Z", 60, &[]).await.unwrap();
    let next_day = w.book(b.bike, b.pilot, "2027-05-04T08:00:00Z", 60, &[]).await.unwrap();
    let req = bpb::CancelDayForWeatherRequest {
        context: ctx(),
        chapter_id: b.chapter.to_string(),
        date: "2027-05-03".into(),
        note: "Storm".into(),
    };
    let n = w.booking.cancel_day_for_weather(req.clone()).await.unwrap().into_inner().cancelled;
    assert_eq!(n, 2);
    assert_eq!(
        w.booking.cancel_day_for_weather(req).await.unwrap().into_inner().cancelled,
        2,
        "a retry answers the same"
    );
    for id in [&a.ride_id, &c.ride_id] {
        let r = w.ride(id).await;
        assert_eq!(
            (r.status.as_str(), r.cancel_reason.as_str(), r.cancel_note.as_str()),
            ("cancelled", "weather", "Storm")
        );
    }
    assert_eq!(w.ride(&next_day.ride_id).await.status, "booked");
    assert_eq!(count(&w, "RideCancelled").await, 2);
    assert_eq!(count(&w, "DayCancelledForWeather").await, 1);
}

async fn booking_catches_up_after_the_carehome_service_restarts(mut w: World) {
    let b = w.basic().await;
    w.settle().await;
    w.stop_carehome().await;
    // Booking keeps working from what it has seen while its neighbour is down.
    w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[]).await.unwrap();
    // A trishaw commissioned while booking cannot hear about it.
    let new_bike = {
        let store = w.carehome_store.clone();
        let keys = keystore::KeyStore::connect(&store, w.master.clone()).await.unwrap();
        let offline = carehome::CareHomeServer::start(store, keys).await.unwrap();
        let s = servicekit::server::spawn("127.0.0.1:0".parse().unwrap(), offline.routes(), carehome::SERVICE_NAMES)
            .await
            .unwrap();
        let mut c = samskab_proto::carehome::v1::care_home_service_client::CareHomeServiceClient::new(
            servicekit::client::channel(&s.url()).unwrap(),
        );
        let bike = c
            .commission_bike(cpb::CommissionBikeRequest {
                context: ctx(),
                carehome_id: b.home.to_string(),
                name: "New".into(),
                bike_type: String::new(),
                seats: 1,
            })
            .await
            .unwrap()
            .into_inner();
        s.stop().await;
        bike.bike_id.parse::<uuid::Uuid>().unwrap()
    };
    let err = w.book(new_bike, b.pilot, "2027-05-04T08:00:00Z", 60, &[]).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::NotFound, "booking has not heard of the new trishaw yet");
    w.restart_carehome().await;
    w.settle().await;
    w.book(new_bike, b.pilot, "2027-05-04T08:00:00Z", 60, &[]).await.unwrap();
}

async fn broken(w: &mut World, ask: bpb::BrokenRidesRequest) -> Vec<String> {
    let mut ids = w.booking.broken_rides(ask).await.unwrap().into_inner().ride_ids;
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

async fn wait_cancelled(w: &World, ride: &str, reason: &str) {
    let booking = w.booking.clone();
    testkit::eventually("a cancellation by the correction's cascade", testkit::DEFAULT_TIMEOUT, || {
        let (mut booking, id) = (booking.clone(), ride.to_owned());
        async move {
            let r = booking.get_ride(bpb::GetRideRequest { ride_id: id, include_personal: false }).await.unwrap();
            let r = r.into_inner();
            (r.status.as_str(), r.cancel_reason.as_str()) == ("cancelled", reason)
        }
    })
    .await;
}

/// The gateway asks booking which rides a correction would break (`BrokenRides`) and
/// refuses it while there are any; a booking that slips in between is cancelled by the
/// cascade on the correction's event. Here the corrections go to the care-home service
/// directly, past any check, as such a booking would find them.
async fn corrections_that_slip_past_the_check_cancel_the_rides_they_break_once(mut w: World) {
    let b = w.basic().await;
    let (r1, r2) = (w.resident(b.home, &["rides"]).await, w.resident(b.home, &["rides"]).await);
    w.settle().await;
    let two = w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[r1, r2]).await.unwrap().ride_id;
    let one = w.book(b.bike, b.pilot, "2027-05-04T08:00:00Z", 60, &[r1]).await.unwrap().ride_id;
    // Two rides 20 minutes apart: fine with a turnaround of 15, not of 30.
    let early = w.book(b.bike, b.pilot, "2027-05-05T08:00:00Z", 60, &[]).await.unwrap().ride_id;
    let late = w.book(b.bike, b.pilot, "2027-05-05T09:20:00Z", 60, &[]).await.unwrap().ride_id;
    let bike = b.bike.to_string();
    let seats = bpb::BrokenRidesRequest { bike_id: bike.clone(), seats: Some(1), ..Default::default() };
    assert_eq!(broken(&mut w, seats).await, vec![two.clone()], "one seat: the two-rider ride");
    let tandem =
        bpb::BrokenRidesRequest { bike_id: bike.clone(), bike_type: Some("tandem".into()), ..Default::default() };
    let all = sorted(vec![two.clone(), one.clone(), early.clone(), late.clone()]);
    assert_eq!(broken(&mut w, tandem).await, all, "a type the pilot is not qualified for: every ride");
    let qualified =
        bpb::BrokenRidesRequest { bike_id: bike.clone(), bike_type: Some("trishaw".into()), ..Default::default() };
    assert!(broken(&mut w, qualified).await.is_empty());
    let moved = bpb::BrokenRidesRequest { bike_id: bike.clone(), every_future: true, ..Default::default() };
    assert_eq!(broken(&mut w, moved).await, all, "a move: every future ride");
    let home = b.home.to_string();
    let wider =
        bpb::BrokenRidesRequest { carehome_id: home.clone(), turnaround_minutes: Some(30), ..Default::default() };
    assert_eq!(broken(&mut w, wider).await, sorted(vec![early.clone(), late.clone()]), "both rides of the pair");
    let fits =
        bpb::BrokenRidesRequest { carehome_id: home.clone(), turnaround_minutes: Some(20), ..Default::default() };
    assert!(broken(&mut w, fits).await.is_empty(), "20 minutes still fit");

    // Fewer seats: the two-rider ride is cancelled (equipment), exactly once.
    let correction =
        cpb::CorrectBikeRequest { context: ctx(), bike_id: bike.clone(), seats: Some(1), ..Default::default() };
    w.carehome.correct_bike(correction).await.unwrap();
    wait_cancelled(&w, &two, "equipment").await;
    // A wider turnaround: of the pair, the ride booked later is cancelled (facility).
    let correction = cpb::CorrectCareHomeRequest {
        context: ctx(),
        carehome_id: home,
        turnaround_minutes: Some(30),
        ..Default::default()
    };
    w.carehome.correct_care_home(correction).await.unwrap();
    wait_cancelled(&w, &late, "facility").await;
    w.settle().await;
    for ride in [&one, &early] {
        assert_eq!(status(&mut w, ride).await.0, "booked", "a ride the corrections do not break stays");
    }
    // The new facts hold for new bookings: two riders on one seat are refused.
    let refused = w.book(b.bike, b.pilot, "2027-05-06T08:00:00Z", 60, &[r1, r2]).await.unwrap_err();
    assert_eq!(code(&refused), ErrorCode::TooManyRiders);
    assert_eq!(count(&w, "RideCancelled").await, 2);
    redeliver_everything(&mut w).await;
    assert_eq!(count(&w, "RideCancelled").await, 2, "a cascade delivered twice cancels once");
}
