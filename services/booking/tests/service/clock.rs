//! The controllable clock of test builds (`servicekit::clock`, cargo feature `test-clock`):
//! moving it moves every timer and every rule that reads the time, without waiting.

use crate::common::*;
use samskab_proto::booking::v1 as bpb;
use servicekit::ErrorCode;
use servicekit::clock::{self, TestClockFile};

both_backends!(a_request_expires_when_the_clock_passes_its_window);

async fn a_request_expires_when_the_clock_passes_its_window(mut w: World) {
    let dir = tempfile::tempdir().unwrap();
    let time = TestClockFile::create(dir.path().join("offset")).unwrap();
    clock::use_test_file(time.path());
    let b = w.basic().await;
    let rider = w.resident(b.home, &["rides"]).await;
    w.settle().await;
    let request = w
        .booking
        .request_ride(bpb::RequestRideRequest {
            context: ctx_as("coordinator"),
            carehome_id: b.home.to_string(),
            resident_ids: vec![rider.to_string()],
            window: Some(bpb::TimeWindow { from: ts("2027-05-03T07:00:00Z"), to: ts("2027-05-03T12:00:00Z") }),
            duration_minutes: 60,
            kind: String::new(),
            note: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(request.status, "open");
    // Just before the window: inside the chapter's lead time, a booking is refused.
    time.jump_to(t("2027-05-03T07:30:00Z")).unwrap();
    let early = w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[]).await.unwrap_err();
    assert_eq!(code(&early), ErrorCode::LeadTime, "the rules read the moved clock");
    // Past the window: the expiry timer, which runs on the same clock, expires it.
    time.jump_to(t("2027-05-03T12:00:01Z")).unwrap();
    let get = bpb::GetRideRequestRequest { ride_request_id: request.ride_request_id.clone(), include_personal: false };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let now = w.booking.get_ride_request(get.clone()).await.unwrap().into_inner();
        if now.status == "expired" {
            break;
        }
        assert!(std::time::Instant::now() < until, "the request did not expire: {now:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
