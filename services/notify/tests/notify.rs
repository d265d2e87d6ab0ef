//! Notify end to end: the care-home, volunteer and booking services (booking's test world)
//! and notify, each on its own database (SQLite files or PostgreSQL schemas), over real
//! gRPC on loopback ports, on the test clock (`servicekit::clock`).

#[path = "../../booking/tests/service/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use samskab_proto::booking::v1 as bpb;
use samskab_proto::carehome::v1 as cpb;
use samskab_proto::common::v1::{self as pbc, access_client::AccessClient};
use samskab_proto::notify::v1::{self as npb, notify_service_client::NotifyServiceClient};
use servicekit::clock::{self, TestClockFile};
use servicekit::server::Spawned;
use tonic::transport::Channel;
use uuid::Uuid;

testkit::both_backends!(
    setup = World::new;
    notices_follow_a_ride_from_its_booking_to_its_cancellation,
    a_first_start_on_history_sends_nothing_about_the_past,
    a_weather_day_and_a_grounded_trishaw_tell_every_affected_pilot_once
);

/// A notify server on its own database next to `w`'s.
async fn notify(w: &World) -> (Spawned, NotifyServiceClient<Channel>, notify::NotifyServer) {
    let store = eventlog::EventStore::connect(&format!("{}{}", w.db.sibling("notify"), w.url_options)).await.unwrap();
    let peers = notify::Peers {
        carehome_url: w.carehome_server.as_ref().unwrap().url(),
        booking_url: w.booking_server.url(),
        tls: servicekit::tls::TlsConfig::plaintext(),
    };
    let server = notify::NotifyServer::start(store, peers).await.unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let spawned = servicekit::server::spawn(any, server.routes(), notify::SERVICE_NAMES).await.unwrap();
    let client = NotifyServiceClient::new(servicekit::client::channel(&spawned.url()).unwrap());
    (spawned, client, server)
}

/// A chapter reminding 24 h and 1 h before, with one home, trishaw and pilot.
async fn world(w: &mut World) -> Basic {
    let c = w
        .carehome
        .register_chapter(cpb::RegisterChapterRequest {
            context: ctx_as("admin"),
            name: "Odense".into(),
            timezone: "Europe/Copenhagen".into(),
            settings: Some(cpb::ChapterSettings {
                lead_time_minutes: 60,
                default_turnaround_minutes: 15,
                reminder_lead_minutes: vec![1440, 60],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let chapter = c.chapter_id.parse().unwrap();
    let home = w.home(chapter, false).await;
    let bike = w.bike(home, 2).await;
    let pilot = w.pilot(chapter).await;
    Basic { chapter, home, bike, pilot }
}

/// Makes `person` a coordinator of `home` (an invitation redeemed).
async fn coordinator(w: &World, home: Uuid, person: Uuid) {
    let mut access =
        AccessClient::new(servicekit::client::channel(&w.carehome_server.as_ref().unwrap().url()).unwrap());
    let issued = access
        .issue_invitation(pbc::IssueInvitationRequest {
            context: ctx(),
            role: "coordinator".into(),
            carehome_id: home.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    access
        .redeem(pbc::RedeemRequest { context: ctx_as("coordinator"), code: issued.code, person_id: person.to_string() })
        .await
        .unwrap();
}

/// The kinds in a recipient's inbox, counted, and the notices.
async fn inbox(client: &NotifyServiceClient<Channel>, recipient: &str) -> (BTreeMap<String, usize>, Vec<npb::Notice>) {
    let page = client
        .clone()
        .list_notices(npb::ListNoticesRequest {
            recipients: vec![recipient.into()],
            limit: 200,
            language: "en".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut kinds = BTreeMap::new();
    for n in &page.notices {
        *kinds.entry(n.kind.clone()).or_insert(0) += 1;
    }
    (kinds, page.notices)
}

async fn until(client: &NotifyServiceClient<Channel>, recipient: &str, kind: &str, count: usize) -> Vec<npb::Notice> {
    let what = format!("{count} × {kind} for {recipient}");
    testkit::eventually(&what, Duration::from_secs(30), || async {
        inbox(client, recipient).await.0.get(kind).copied().unwrap_or(0) >= count
    })
    .await;
    inbox(client, recipient).await.1.into_iter().filter(|n| n.kind == kind).collect()
}

fn at(n: &npb::Notice) -> chrono::DateTime<chrono::Utc> {
    samskab_proto::time::from_proto(n.created_at.as_ref().unwrap()).unwrap()
}

/// Booked by an admin for a pilot: `ride.booked_for_you`; the 24 h reminder at 10:00 local
/// the day before across the change to summer time; a reschedule moves the reminders (the
/// old start's hour passes without one); a cancellation tells the pilot and the home's
/// coordinator; two notify servers on one database decide every notice once; a notice is
/// read once.
async fn notices_follow_a_ride_from_its_booking_to_its_cancellation(mut w: World) {
    let dir = tempfile::tempdir().unwrap();
    let time = TestClockFile::create(dir.path().join("offset")).unwrap();
    clock::use_test_file(time.path());
    time.jump_to(t("2027-03-26T12:00:00Z")).unwrap();
    let b = world(&mut w).await;
    w.settle().await;
    // (After settling: booking does not follow invitations, so its cursor stays behind them.)
    let person = Uuid::now_v7();
    coordinator(&w, b.home, person).await;
    let (_a, client, _) = notify(&w).await;
    let (_b, _, _) = notify(&w).await;
    let (pilot, coord) = (format!("pilot:{}", b.pilot), format!("person:{person}"));

    // Monday 29 March 2027, 10:00 in Copenhagen (summer time since Sunday): 08:00 UTC.
    let ride = w.book(b.bike, b.pilot, "2027-03-29T08:00:00Z", 60, &[]).await.unwrap();
    until(&client, &pilot, "ride.booked_for_you", 1).await;

    // Sunday 28 March, 10:00 local (08:00 UTC, 23 hours before): the day-before reminder.
    time.jump_to(t("2027-03-28T08:00:30Z")).unwrap();
    let reminders = until(&client, &pilot, "ride.reminder", 1).await;
    assert_eq!(at(&reminders[0]), t("2027-03-28T08:00:00Z"), "10:00 local the day before");
    assert!(reminders[0].body.contains("2027-03-29 at 10:00"), "{}", reminders[0].body);

    // Moved to 12:00 local: the hour before the old start passes without a reminder.
    let moved = bpb::RescheduleRideRequest {
        context: ctx(),
        ride_id: ride.ride_id.clone(),
        start: ts("2027-03-29T10:00:00Z"),
        duration_minutes: 60,
    };
    w.booking.reschedule_ride(moved).await.unwrap();
    until(&client, &pilot, "ride.rescheduled", 1).await;
    time.jump_to(t("2027-03-29T07:00:30Z")).unwrap();
    tokio::time::sleep(notify::TICK * 4).await;
    let (kinds, _) = inbox(&client, &pilot).await;
    assert_eq!(kinds.get("ride.reminder"), Some(&1), "no reminder of the old start: {kinds:?}");
    time.jump_to(t("2027-03-29T09:00:30Z")).unwrap();
    let reminders = until(&client, &pilot, "ride.reminder", 2).await;
    assert_eq!(at(&reminders[0]), t("2027-03-29T09:00:00Z"), "an hour before the new start");

    let cancel = bpb::CancelRideRequest {
        context: ctx(),
        ride_id: ride.ride_id.clone(),
        reason: "weather".into(),
        note: String::new(),
    };
    w.booking.cancel_ride(cancel).await.unwrap();
    let cancelled = until(&client, &pilot, "ride.cancelled", 1).await;
    assert!(cancelled[0].body.contains("weather"), "{}", cancelled[0].body);
    until(&client, &coord, "ride.cancelled", 1).await;

    // Exactly once, though two servers decide: nothing more comes.
    tokio::time::sleep(notify::TICK * 4).await;
    let (kinds, notices) = inbox(&client, &pilot).await;
    let expected: BTreeMap<String, usize> =
        [("ride.booked_for_you", 1), ("ride.reminder", 2), ("ride.rescheduled", 1), ("ride.cancelled", 1)]
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect();
    assert_eq!(kinds, expected);
    let (kinds, _) = inbox(&client, &coord).await;
    assert_eq!(kinds, [("ride.cancelled".to_owned(), 1)].into_iter().collect(), "the coordinator: the cancellation");

    // Read once: the first time stays; another's notice is not found; unread hides it.
    let read = |recipient: &str, id: &str| npb::MarkNoticeReadRequest {
        recipients: vec![recipient.into()],
        notice_id: id.into(),
        language: "da".into(),
    };
    let id = notices[0].notice_id.clone();
    let first = client.clone().mark_notice_read(read(&pilot, &id)).await.unwrap().into_inner();
    assert!(first.read_at.is_some());
    let again = client.clone().mark_notice_read(read(&pilot, &id)).await.unwrap().into_inner();
    testkit::eventually("the read to be in the inbox", Duration::from_secs(10), || async {
        let page = client
            .clone()
            .list_notices(npb::ListNoticesRequest {
                recipients: vec![pilot.clone()],
                unread_only: true,
                limit: 50,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        page.notices.len() == notices.len() - 1 && page.notices.iter().all(|n| n.notice_id != id)
    })
    .await;
    let again2 = client.clone().mark_notice_read(read(&pilot, &id)).await.unwrap().into_inner();
    assert_eq!(again2.read_at, first.read_at, "the first reading's time stays");
    assert_eq!(again.read_at, first.read_at);
    let theirs = client.clone().mark_notice_read(read(&coord, &id)).await.unwrap_err();
    assert_eq!(theirs.code(), tonic::Code::NotFound);
}

/// Notify starts on a booking log whose events are hours old: nothing about them is told,
/// and a reminder whose time passed long ago is skipped; one still to come is sent.
async fn a_first_start_on_history_sends_nothing_about_the_past(mut w: World) {
    let dir = tempfile::tempdir().unwrap();
    let time = TestClockFile::create(dir.path().join("offset")).unwrap();
    clock::use_test_file(time.path());
    time.jump_to(t("2027-05-01T10:00:00Z")).unwrap();
    let b = world(&mut w).await;
    w.settle().await;
    // Thursday 6 May, 12:00 local (10:00 UTC).
    w.book(b.bike, b.pilot, "2027-05-06T10:00:00Z", 60, &[]).await.unwrap();
    // Two hours before the start: the booking is old, the day-before reminder long due.
    time.jump_to(t("2027-05-06T08:00:00Z")).unwrap();
    let (_n, client, server) = notify(&w).await;
    let pilot = format!("pilot:{}", b.pilot);
    testkit::eventually("notify to read both feeds", Duration::from_secs(30), || async {
        server.booking_feed.borrow().applied > 0 && server.carehome_feed.borrow().applied > 0
    })
    .await;
    tokio::time::sleep(notify::TICK * 4).await;
    assert_eq!(inbox(&client, &pilot).await.0, BTreeMap::new(), "nothing about the past");
    time.jump_to(t("2027-05-06T09:00:30Z")).unwrap();
    let reminders = until(&client, &pilot, "ride.reminder", 1).await;
    assert_eq!(at(&reminders[0]), t("2027-05-06T09:00:00Z"));
    assert_eq!(inbox(&client, &pilot).await.0.len(), 1, "only the reminder");
}

/// Cascades tell too: a weather day cancels two pilots' rides and each is told once; a
/// grounded trishaw cancels another ride and its pilot is told once, with the reason.
async fn a_weather_day_and_a_grounded_trishaw_tell_every_affected_pilot_once(mut w: World) {
    let dir = tempfile::tempdir().unwrap();
    let time = TestClockFile::create(dir.path().join("offset")).unwrap();
    clock::use_test_file(time.path());
    time.jump_to(t("2027-06-01T10:00:00Z")).unwrap();
    let b = world(&mut w).await;
    let other = w.pilot(b.chapter).await;
    w.settle().await;
    let (_n, client, _) = notify(&w).await;
    // Thursday 3 June: both pilots; Friday 4 June: the first again.
    w.book(b.bike, b.pilot, "2027-06-03T08:00:00Z", 60, &[]).await.unwrap();
    w.book(b.bike, other, "2027-06-03T10:00:00Z", 60, &[]).await.unwrap();
    w.book(b.bike, b.pilot, "2027-06-04T08:00:00Z", 60, &[]).await.unwrap();
    let (first, second) = (format!("pilot:{}", b.pilot), format!("pilot:{other}"));
    until(&client, &first, "ride.booked_for_you", 2).await;
    let weather = bpb::CancelDayForWeatherRequest {
        context: ctx(),
        chapter_id: b.chapter.to_string(),
        date: "2027-06-03".into(),
        note: String::new(),
    };
    w.booking.cancel_day_for_weather(weather).await.unwrap();
    let theirs = until(&client, &second, "ride.cancelled", 1).await;
    assert!(theirs[0].body.contains("weather"), "{}", theirs[0].body);
    until(&client, &first, "ride.cancelled", 1).await;
    let ground = cpb::ReportBikeIssueRequest {
        context: ctx_as("pilot"),
        bike_id: b.bike.to_string(),
        description: "the chain is off".into(),
        grounding: true,
    };
    w.carehome.report_bike_issue(ground).await.unwrap();
    let mine = until(&client, &first, "ride.cancelled", 2).await;
    assert!(mine[0].body.contains("equipment"), "{}", mine[0].body);
    tokio::time::sleep(notify::TICK * 4).await;
    assert_eq!(inbox(&client, &first).await.0.get("ride.cancelled"), Some(&2));
    assert_eq!(inbox(&client, &second).await.0.get("ride.cancelled"), Some(&1));
    assert!(!inbox(&client, &second).await.1.iter().any(|n| n.body.contains("chain")), "no free text is told");
}
