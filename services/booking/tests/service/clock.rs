//! The controllable clock of test builds (`servicekit::clock`, cargo feature `test-clock`):
//! moving it moves every timer and every rule that reads the time, without waiting.

use crate::common::*;
use samskab_proto::booking::v1 as bpb;
use servicekit::ErrorCode;
use servicekit::clock::{self, TestClockFile};

testkit::both_backends!(setup = World::new; a_request_expires_when_the_clock_passes_its_window);

async fn a_request_expires_when_the_clock_passes_its_window(mut w: World) {
    let dir = tempfile::tempdir().unwrap();
    let time = TestClockFile::create(dir.path().join("offset")).unwrap();
    clock::use_test_file(time.path());
    let b = w.basic().await;
    let rider = w.resident(b.home, &["rides"]).await;
    w.settle().await;
    let window = ("2027-05-03T07:00:00Z", "2027-05-03T12:00:00Z");
    let request = w.request_ride(b.home, &[rider], window, 60, "").await;
    assert_eq!(request.status, "open");
    // Just before the window: inside the chapter's lead time, a booking is refused.
    time.jump_to(t("2027-05-03T07:30:00Z")).unwrap();
    let early = w.book(b.bike, b.pilot, "2027-05-03T08:00:00Z", 60, &[]).await.unwrap_err();
    assert_eq!(code(&early), ErrorCode::LeadTime, "the rules read the moved clock");
    // Past the window: the expiry timer, which runs on the same clock, expires it.
    time.jump_to(t("2027-05-03T12:00:01Z")).unwrap();
    let get = bpb::GetRideRequestRequest { ride_request_id: request.ride_request_id.clone(), include_personal: false };
    testkit::eventually("the request to expire", std::time::Duration::from_secs(20), || {
        let (mut booking, get) = (w.booking.clone(), get.clone());
        async move { booking.get_ride_request(get).await.is_ok_and(|r| r.into_inner().status == "expired") }
    })
    .await;
}
