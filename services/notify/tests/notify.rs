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
use samskab_proto::volunteer::v1 as vpb;
use servicekit::clock::{self, TestClockFile};
use servicekit::server::Spawned;
use tonic::transport::Channel;
use uuid::Uuid;

testkit::both_backends!(
    setup = World::new;
    notices_follow_a_ride_from_its_booking_to_its_cancellation,
    a_first_start_on_history_sends_nothing_about_the_past,
    the_backlog_gauge_counts_the_occasions_waiting,
    a_weather_day_and_a_grounded_trishaw_tell_every_affected_pilot_once,
    reminders_reach_the_pilot_record_by_email_once_per_notice_naming_no_resident,
    over_starttls_a_confirmed_address_gets_notices_until_unsubscribed,
    over_smtps_a_contact_code_goes_out_encrypted,
    an_invitation_is_emailed_once_and_an_erased_person_is_told_nothing_more,
    a_claim_tells_the_coordinators_and_an_expiring_qualification_the_pilot_and_admins,
    two_notify_processes_one_killed_and_restarted_tell_each_reminder_once,
    a_refused_address_holds_back_nobody_a_linked_person_is_mailed_and_a_dead_relay_fails_after_a_day,
    by_sms_a_code_and_a_cancellation_go_out_once_per_key_and_an_invalid_number_is_refused_once,
    quiet_hours_hold_sms_until_seven_on_a_night_the_clocks_change_unless_the_ride_starts_first,
    by_push_each_browser_gets_the_notice_encrypted_and_signed_and_a_gone_one_is_deleted,
    at_most_ten_push_subscriptions_a_person_even_when_added_at_once,
    a_ride_without_riders_is_told_to_its_pilot_and_coordinators_a_day_before_once,
    offers_tell_each_pilot_once_and_an_unclaimed_request_its_admins_at_72_and_48_hours_once_across_restarts
);

/// A notify server on its own database next to `w`'s, without e-mail.
async fn notify(w: &World) -> (Spawned, NotifyServiceClient<Channel>, notify::NotifyServer) {
    notify_mailing(w, None).await
}

/// The master key every notify server of a test shares (one per process: tests of one
/// binary run in processes of their own under nextest).
fn notify_master() -> keystore::MasterKey {
    static KEY: std::sync::OnceLock<keystore::MasterKey> = std::sync::OnceLock::new();
    KEY.get_or_init(keystore::MasterKey::generate).clone()
}

/// The same, sending e-mail as `mail` says.
async fn notify_mailing(
    w: &World,
    mail: Option<notify::mail::MailConfig>,
) -> (Spawned, NotifyServiceClient<Channel>, notify::NotifyServer) {
    let mailer = mail.map(|m| notify::mail::Mailer::from_config(&m).unwrap().unwrap());
    notify_with(w, notify::Outbound { mailer, ..Default::default() }).await
}

/// The test clock, at `at`; its file lives in the returned directory.
fn test_clock(at: &str) -> (tempfile::TempDir, TestClockFile) {
    let dir = tempfile::tempdir().unwrap();
    let time = TestClockFile::create(dir.path().join("offset")).unwrap();
    clock::use_test_file(time.path());
    time.jump_to(t(at)).unwrap();
    (dir, time)
}

/// A coordinator's cancellation of `ride_id` for the weather.
fn cancel(ride_id: &str) -> bpb::CancelRideRequest {
    bpb::CancelRideRequest { context: ctx(), ride_id: ride_id.into(), reason: "weather".into(), note: String::new() }
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

/// Grants `person` a role by redeeming an invitation at the service that keeps it
/// (`url`): `role` with its scope field set in `scope`.
async fn redeem(url: &str, role: &str, scope: pbc::IssueInvitationRequest, person: Uuid) {
    let mut access = AccessClient::new(servicekit::client::channel(url).unwrap());
    let req = pbc::IssueInvitationRequest { context: ctx(), role: role.into(), ..scope };
    let issued = access.issue_invitation(req).await.unwrap().into_inner();
    let redeem = pbc::RedeemRequest { context: ctx_as(role), code: issued.code, person_id: person.to_string() };
    access.redeem(redeem).await.unwrap();
}

/// Makes `person` a coordinator of `home`.
async fn coordinator(w: &World, home: Uuid, person: Uuid) {
    let scope = pbc::IssueInvitationRequest { carehome_id: home.to_string(), ..Default::default() };
    redeem(&w.carehome_server.as_ref().unwrap().url(), "coordinator", scope, person).await;
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
    let (_dir, time) = test_clock("2027-03-26T12:00:00Z");
    let b = world(&mut w).await;
    // (A rider on the roster: an empty one is told of a day before, `ride.no_riders`.)
    let rider = w.resident(b.home, &["rides"]).await;
    w.settle().await;
    // (After settling: booking does not follow invitations, so its cursor stays behind them.)
    let person = Uuid::now_v7();
    coordinator(&w, b.home, person).await;
    let (_a, client, _) = notify(&w).await;
    let (_b, _, _) = notify(&w).await;
    let (pilot, coord) = (format!("pilot:{}", b.pilot), format!("person:{person}"));

    // Monday 29 March 2027, 10:00 in Copenhagen (summer time since Sunday): 08:00 UTC.
    let ride = w.book(b.bike, b.pilot, "2027-03-29T08:00:00Z", 60, &[rider]).await.unwrap();
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

    w.booking.cancel_ride(cancel(&ride.ride_id)).await.unwrap();
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
    let (_dir, time) = test_clock("2027-05-01T10:00:00Z");
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

/// `notify_backlog` at `/metrics` is the number of occasions waiting to be decided, as of
/// the decider's last look: three not due yet are three; decided or gone, none.
async fn the_backlog_gauge_counts_the_occasions_waiting(mut w: World) {
    let (_dir, _time) = test_clock("2027-09-06T06:00:00Z");
    world(&mut w).await;
    let (_a, _client, _) = notify(&w).await;
    let store = eventlog::EventStore::connect(&format!("{}{}", w.db.sibling("notify"), w.url_options)).await.unwrap();
    let later = t("2027-09-10T06:00:00Z").timestamp_micros();
    store
        .transaction(move |tx| {
            Box::pin(async move {
                for n in 0..3 {
                    tx.execute(
                        "INSERT INTO notify_pending (occasion, due_at, doc) VALUES ($1, $2, '{}')",
                        &[format!("test/{n}").into(), eventlog::Arg::Int(later)],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
        .unwrap();
    let backlog = || async {
        let text = tokio::task::spawn_blocking(|| telemetry::metrics::metrics().render()).await.unwrap();
        text.lines().find(|l| l.starts_with("notify_backlog")).and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    testkit::eventually("three waiting", Duration::from_secs(30), || async { backlog().await == Some(3.0) }).await;
    store.transaction(|tx| Box::pin(async move { tx.execute("DELETE FROM notify_pending", &[]).await })).await.unwrap();
    testkit::eventually("none waiting", Duration::from_secs(30), || async { backlog().await == Some(0.0) }).await;
}

/// Cascades tell too: a weather day cancels two pilots' rides and each is told once; a
/// grounded trishaw cancels another ride and its pilot is told once, with the reason.
async fn a_weather_day_and_a_grounded_trishaw_tell_every_affected_pilot_once(mut w: World) {
    let (_dir, _time) = test_clock("2027-06-01T10:00:00Z");
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

/// `recipient` sets an e-mail address (`Some`) or, else, the phone number `phone`.
fn contact(recipient: &str, email: Option<&str>, phone: Option<&str>, language: &str) -> npb::SetContactRequest {
    npb::SetContactRequest {
        recipient: recipient.into(),
        email: email.map(Into::into),
        phone: phone.map(Into::into),
        language: language.into(),
    }
}

/// A pilot with an e-mail address on their record, qualified and known to booking.
async fn pilot_with_email(w: &mut World, chapter: Uuid, email: &str) -> Uuid {
    let pilot = w.pilot_with(chapter, "2028-12-31", "Kirsten Holm", email).await;
    w.settle().await;
    pilot
}

fn mail_to(port: u16) -> notify::mail::MailConfig {
    notify::mail::MailConfig {
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        from: "Samskab <notices@odense.example.org>".into(),
        public_url: "https://samskab.example.org".into(),
        ..Default::default()
    }
}

async fn messages_until(smtp: &testkit::smtp::SmtpServer, n: usize) -> Vec<testkit::smtp::Received> {
    testkit::eventually(&format!("{n} e-mails"), Duration::from_secs(60), || async { smtp.messages().len() >= n })
        .await;
    smtp.messages()
}

/// Every payload in notify's log, as text.
async fn notify_log_text(w: &World) -> String {
    let store = eventlog::EventStore::connect(&format!("{}{}", w.db.sibling("notify"), w.url_options)).await.unwrap();
    let page = store.read_all(eventlog::Cursor::default(), &eventlog::Filter::all(), 100_000).await.unwrap();
    page.events.iter().map(|e| format!("{}\n", e.payload.get())).collect()
}

/// A booked ride's reminders go by e-mail to the pilot record's address: each notice at
/// least once (the relay refuses the first attempt: it is retried) and every copy with one
/// `Message-ID`, never a resident's name; the address stays out of notify's log and
/// database; two notify processes send each notice's e-mail under one `Message-ID`.
async fn reminders_reach_the_pilot_record_by_email_once_per_notice_naming_no_resident(mut w: World) {
    let (_dir, time) = test_clock("2027-09-06T06:00:00Z");
    let b = world(&mut w).await;
    let address = format!("kirsten-{}@pilots.example.org", Uuid::now_v7().simple());
    let pilot = pilot_with_email(&mut w, b.chapter, &address).await;
    let resident = w.resident(b.home, &["rides"]).await;
    w.settle().await;
    let smtp = testkit::smtp::SmtpServer::start(testkit::smtp::Options { fail_first: 1, ..Default::default() }).await;
    let (_a, client, _) = notify_mailing(&w, Some(mail_to(smtp.port))).await;
    let (_b, _, _) = notify_mailing(&w, Some(mail_to(smtp.port))).await;
    let recipient = format!("pilot:{pilot}");

    // Tuesday 7 September 2027, 10:00 in Copenhagen (08:00 UTC), booked by an admin.
    w.book(b.bike, pilot, "2027-09-07T08:00:00Z", 60, &[resident]).await.unwrap();
    until(&client, &recipient, "ride.booked_for_you", 1).await;
    time.jump_to(t("2027-09-06T08:00:30Z")).unwrap();
    until(&client, &recipient, "ride.reminder", 1).await;
    // The first e-mail was refused (451): retried after its backoff (at most a minute).
    time.jump_to(t("2027-09-06T08:02:00Z")).unwrap();
    let got = messages_until(&smtp, 2).await;
    time.jump_to(t("2027-09-07T07:00:30Z")).unwrap();
    until(&client, &recipient, "ride.reminder", 2).await;
    let got = if got.len() < 3 { messages_until(&smtp, 3).await } else { got };
    tokio::time::sleep(notify::TICK * 6).await;
    let got_all = smtp.messages();
    let ids: std::collections::BTreeSet<String> = got_all.iter().map(|m| m.header("Message-ID").unwrap()).collect();
    assert_eq!(ids.len(), 3, "booked for you, two reminders: one Message-ID each: {ids:?}");
    assert!(got.len() >= 3);
    for m in &got_all {
        assert_eq!(m.to, vec![address.clone()]);
        assert!(!m.secure);
        assert!(m.header("Message-ID").unwrap().ends_with("@odense.example.org>"));
        let unsubscribe = m.header("List-Unsubscribe").unwrap();
        assert!(unsubscribe.starts_with("<https://samskab.example.org/v1/unsubscribe?token="), "{unsubscribe}");
        assert_eq!(m.header("List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
        assert!(m.raw.contains("multipart/alternative"), "{}", m.raw);
        for name in ["Ærø", "Østergård", "=C3=86r=C3=B8", "Kirsten"] {
            assert!(!m.raw.contains(name), "a name in an e-mail: {}", m.raw);
        }
    }
    // The inbox holds each notice once.
    let (kinds, _) = inbox(&client, &recipient).await;
    assert_eq!(kinds.get("ride.reminder"), Some(&2));
    // Nothing in notify's log or database names the address.
    let log = notify_log_text(&w).await;
    assert!(!log.contains(&address) && !log.contains("pilots.example.org"), "the address in notify's log");
    if let Some(path) = w.db.sibling("notify").strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap();
        for file in [path.to_owned(), format!("{path}-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                let text = String::from_utf8_lossy(&bytes);
                assert!(!text.contains("pilots.example.org"), "the address in {file}");
            }
        }
    }
}

/// Over STARTTLS with the relay's CA: a coordinator sets an address, receives its code
/// there, confirms it after wrong tries (and a second address locks after five wrong
/// ones); a cancellation then reaches the confirmed address with a one-click unsubscribe
/// link; after unsubscribing that kind, the next cancellation is not e-mailed (the inbox
/// still has it); a forged token is refused.
async fn over_starttls_a_confirmed_address_gets_notices_until_unsubscribed(mut w: World) {
    let (dir, _time) = test_clock("2027-09-06T06:00:00Z");
    let b = world(&mut w).await;
    w.settle().await;
    let person = Uuid::now_v7();
    coordinator(&w, b.home, person).await;
    let (smtp, ca_file) = tls_relay(dir.path(), false).await;
    let mail = notify::mail::MailConfig {
        smtp_url: Some(format!("smtp://localhost:{}?tls=required", smtp.port)),
        smtp_ca_file: Some(ca_file),
        ..mail_to(smtp.port)
    };
    let (_a, client, _) = notify_mailing(&w, Some(mail)).await;
    let me = format!("person:{person}");

    let address = "coordinator@home.example.org";
    let set = contact(&me, Some(address), None, "en");
    let pending = client.clone().set_contact(set.clone()).await.unwrap().into_inner();
    assert_eq!(pending.pending, vec!["email".to_owned()]);
    let got = messages_until(&smtp, 1).await;
    assert!(got[0].secure, "STARTTLS");
    assert_eq!(got[0].to, vec![address.to_owned()]);
    assert!(got[0].header("List-Unsubscribe").is_none(), "a code is not a kind one stops");
    let code = got[0].code();
    let confirm =
        |code: &str| npb::ConfirmContactRequest { recipient: me.clone(), channel: "email".into(), code: code.into() };
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in [4, 3] {
        let e = client.clone().confirm_contact(confirm(wrong)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert!(e.message().contains(&format!("{left} tries left")), "{}", e.message());
    }
    client.clone().confirm_contact(confirm(&code)).await.unwrap();

    // A cancellation reaches the confirmed address.
    let ride = w.book(b.bike, b.pilot, "2027-09-08T08:00:00Z", 60, &[]).await.unwrap();
    w.booking.cancel_ride(cancel(&ride.ride_id)).await.unwrap();
    let got = messages_until(&smtp, 2).await;
    assert_eq!(got[1].to, vec![address.to_owned()]);
    let link = got[1].header("List-Unsubscribe").unwrap();
    let token = link.split("token=").nth(1).unwrap().trim_end_matches('>').to_owned();

    // A forged token (another kind under the same signature) is refused; the real one stops
    // cancellations by e-mail.
    let forged = {
        let (body, mac) = token.split_once('.').unwrap();
        let mut chars: Vec<char> = body.chars().collect();
        chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
        format!("{}.{mac}", chars.into_iter().collect::<String>())
    };
    let refused =
        client.clone().unsubscribe(npb::UnsubscribeRequest { token: forged, check_only: false }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let stopped =
        client.clone().unsubscribe(npb::UnsubscribeRequest { token, check_only: false }).await.unwrap().into_inner();
    assert_eq!(stopped.kind, "ride.cancelled");
    let prefs = client
        .clone()
        .get_preferences(npb::GetPreferencesRequest { recipient: me.clone(), default_language: "da".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(prefs.channels["ride.cancelled"].channels.is_empty());
    assert_eq!(prefs.channels["ride.reminder"].channels, vec!["email".to_owned()]);
    assert_eq!(prefs.language, "da");

    let ride = w.book(b.bike, b.pilot, "2027-09-09T08:00:00Z", 60, &[]).await.unwrap();
    w.booking.cancel_ride(cancel(&ride.ride_id)).await.unwrap();
    until(&client, &me, "ride.cancelled", 2).await;
    tokio::time::sleep(notify::TICK * 6).await;
    assert_eq!(smtp.messages().len(), 2, "no e-mail after unsubscribing");

    // The inbox speaks the language the person chose (Danish by the zone until then).
    let titles = |client: NotifyServiceClient<Channel>, me: String| async move {
        let req = npb::ListNoticesRequest { recipients: vec![me], limit: 10, ..Default::default() };
        let page = client.clone().list_notices(req).await.unwrap().into_inner();
        (page.notices.iter().map(|n| n.title.clone()).collect::<Vec<_>>(), page.head_seq)
    };
    assert_eq!(titles(client.clone(), me.clone()).await.0, vec!["Turen er aflyst".to_owned(); 2]);
    let english = npb::SetPreferencesRequest {
        recipient: me.clone(),
        preferences: Some(npb::Preferences { language: "en".into(), ..Default::default() }),
        default_language: "da".into(),
        default_timezone: "Europe/Copenhagen".into(),
    };
    client.clone().set_preferences(english).await.unwrap();
    testkit::eventually("English titles", Duration::from_secs(10), || async {
        titles(client.clone(), me.clone()).await.0 == vec!["Ride cancelled".to_owned(); 2]
    })
    .await;
    let (_, head) = titles(client.clone(), me.clone()).await;
    assert!(head >= 2, "the highest number the inbox gave: {head}");

    // Five wrong codes lock a new address; a sixth try, even the right one, is refused.
    client
        .clone()
        .set_contact(npb::SetContactRequest { email: Some("other@home.example.org".into()), ..set })
        .await
        .unwrap();
    for _ in 0..4 {
        let e = client.clone().confirm_contact(confirm(wrong)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    }
    let e = client.clone().confirm_contact(confirm(wrong)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Aborted, "the fifth wrong code locks: {}", e.message());
    let e = client.clone().confirm_contact(confirm(wrong)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Aborted);
}

/// A relay speaking TLS (from the first byte, as `smtps://` on port 465 expects, when
/// `implicit_tls`; else by STARTTLS), its certificate issued by a new test CA for
/// `localhost`; the CA's certificate is the returned file (in `dir`).
async fn tls_relay(dir: &std::path::Path, implicit_tls: bool) -> (testkit::smtp::SmtpServer, std::path::PathBuf) {
    let ca = servicekit::tls::DevCa::generate().unwrap();
    let pem = ca.issue_for(&["localhost"]).unwrap();
    let (cert, key, ca_file) = (dir.join("smtp.crt"), dir.join("smtp.key"), dir.join("ca.crt"));
    std::fs::write(&cert, &pem.cert).unwrap();
    std::fs::write(&key, &pem.key).unwrap();
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let options = testkit::smtp::Options { tls: Some((cert, key)), implicit_tls, ..Default::default() };
    (testkit::smtp::SmtpServer::start(options).await, ca_file)
}

/// Over `smtps://` with the relay's CA: a new address's code goes out encrypted and is
/// recorded delivered.
async fn over_smtps_a_contact_code_goes_out_encrypted(mut w: World) {
    let (dir, _time) = test_clock("2027-09-06T06:00:00Z");
    world(&mut w).await;
    let (smtp, ca_file) = tls_relay(dir.path(), true).await;
    let mail = notify::mail::MailConfig {
        smtp_url: Some(format!("smtps://localhost:{}", smtp.port)),
        smtp_ca_file: Some(ca_file),
        ..mail_to(smtp.port)
    };
    let (_a, client, _) = notify_mailing(&w, Some(mail)).await;
    let me = format!("person:{}", Uuid::now_v7());
    let set = contact(&me, Some("secure@home.example.org"), None, "en");
    client.clone().set_contact(set).await.unwrap();
    let got = messages_until(&smtp, 1).await;
    assert!(got[0].secure, "over TLS");
    assert_eq!(got[0].to, vec!["secure@home.example.org".to_owned()]);
    testkit::eventually("the code recorded delivered", Duration::from_secs(30), || async {
        outcomes(&client, &me).await == vec![("contact.confirmation".to_owned(), "delivered".to_owned())]
    })
    .await;
}

/// What a man in the middle would try on the way to the relay, and why the sender gives
/// it nothing: over `smtps://` it sends only to a relay whose certificate chains to the
/// system's roots or `SAMSKAB_SMTP_CA_FILE` (another CA's certificate: refused, and
/// retried later, not sent in the clear); neither `smtps://` nor `?tls=required` falls
/// back to plain SMTP when the relay does not speak TLS.
#[tokio::test]
async fn tls_to_the_relay_is_never_given_up_for_an_untrusted_certificate_or_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca_file) = tls_relay(dir.path(), true).await;
    let other = tempfile::tempdir().unwrap();
    let (_, other_ca) = tls_relay(other.path(), true).await;
    let plain = testkit::smtp::SmtpServer::start(testkit::smtp::Options::default()).await;
    let email = notify::mail::Email {
        to: "pilot@pilots.example.org".into(),
        subject: "Reminder".into(),
        text: "Your ride is tomorrow.".into(),
        notice_id: Uuid::now_v7(),
        unsubscribe: None,
        language: "en",
    };
    let mailer = |url: String, ca: Option<&std::path::Path>| {
        let cfg = notify::mail::MailConfig { smtp_url: Some(url), smtp_ca_file: ca.map(Into::into), ..mail_to(0) };
        notify::mail::Mailer::from_config(&cfg).unwrap().unwrap()
    };
    let refused = [
        ("no CA: only the system's roots", mailer(format!("smtps://localhost:{}", tls.port), None)),
        ("another CA", mailer(format!("smtps://localhost:{}", tls.port), Some(&other_ca))),
        ("smtps:// to a plain relay", mailer(format!("smtps://localhost:{}", plain.port), Some(&ca_file))),
        ("STARTTLS required, not offered", mailer(format!("smtp://localhost:{}?tls=required", plain.port), None)),
    ];
    for (what, m) in refused {
        match m.send(&email).await {
            Err(notify::mail::SendError::Transient(e)) => eprintln!("{what}: {e}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    assert!(tls.messages().is_empty() && plain.messages().is_empty(), "nothing reached either relay");
    mailer(format!("smtps://localhost:{}", tls.port), Some(&ca_file)).send(&email).await.unwrap();
    let got = tls.messages();
    assert_eq!(got.len(), 1);
    assert!(got[0].secure);
}

/// A pilot invitation's code reaches the pilot record's address once, however often it is
/// handed over; a person's export lists their address, notices and deliveries; once erased
/// they are told nothing more, by inbox or e-mail, and their export is empty.
async fn an_invitation_is_emailed_once_and_an_erased_person_is_told_nothing_more(mut w: World) {
    let (_dir, _time) = test_clock("2027-09-06T06:00:00Z");
    let b = world(&mut w).await;
    let address = format!("new-pilot-{}@pilots.example.org", Uuid::now_v7().simple());
    let pilot = pilot_with_email(&mut w, b.chapter, &address).await;
    // (Settled by pilot_with_email: booking does not follow invitations.)
    let person = Uuid::now_v7();
    coordinator(&w, b.home, person).await;
    let smtp = testkit::smtp::SmtpServer::start(testkit::smtp::Options::default()).await;
    let (_a, client, _) = notify_mailing(&w, Some(mail_to(smtp.port))).await;

    let invitation = npb::SendInvitationRequest {
        pilot_id: pilot.to_string(),
        invitation_id: Uuid::now_v7().to_string(),
        code: "PEDAL-7731-XQ".into(),
        expires_at: ts("2027-09-13T06:00:00Z"),
        language: "da".into(),
        chapter_id: b.chapter.to_string(),
    };
    let first = client.clone().send_invitation(invitation.clone()).await.unwrap().into_inner();
    let again = client.clone().send_invitation(invitation).await.unwrap().into_inner();
    assert_eq!(first.notice_id, again.notice_id);
    let got = messages_until(&smtp, 1).await;
    assert_eq!(got[0].to, vec![address.clone()]);
    assert!(got[0].raw.contains("PEDAL-7731-XQ"), "{}", got[0].raw);
    assert_eq!(got[0].header("Content-Language").as_deref(), Some("da"));
    assert!(!notify_log_text(&w).await.contains("PEDAL-7731-XQ"), "the code is sealed in notify's log");

    // The coordinator's address, confirmed; a cancellation by e-mail and in the inbox.
    let me = format!("person:{person}");
    let mine = "erase-me@home.example.org";
    let set = contact(&me, Some(mine), None, "en");
    client.clone().set_contact(set).await.unwrap();
    let got = messages_until(&smtp, 2).await;
    let code = got[1].code();
    client
        .clone()
        .confirm_contact(npb::ConfirmContactRequest { recipient: me.clone(), channel: "email".into(), code })
        .await
        .unwrap();
    let ride = w.book(b.bike, b.pilot, "2027-09-08T08:00:00Z", 60, &[]).await.unwrap();
    w.booking.cancel_ride(cancel(&ride.ride_id)).await.unwrap();
    until(&client, &me, "ride.cancelled", 1).await;
    let got = messages_until(&smtp, 3).await;
    assert_eq!(got[2].to, vec![mine.to_owned()]);

    let export = |recipient: String| npb::ExportRecipientsRequest { recipients: vec![recipient] };
    let exported = testkit::eventually("the delivery in the export", Duration::from_secs(30), || async {
        let e = client.clone().export_recipients(export(me.clone())).await.unwrap().into_inner().recipients;
        if e[0].deliveries.iter().any(|d| d.kind == "ride.cancelled" && d.outcome == "delivered") {
            Ok(e)
        } else {
            Err(format!("{e:?}"))
        }
    })
    .await;
    assert_eq!(exported[0].email, mine);
    assert_eq!(exported[0].notices.len(), 1);

    client.clone().erase_recipient(npb::EraseRecipientRequest { recipient: me.clone() }).await.unwrap();
    testkit::eventually("the erasure to reach the tables", Duration::from_secs(30), || async {
        let e = client.clone().export_recipients(export(me.clone())).await.unwrap().into_inner().recipients;
        e[0].email.is_empty() && e[0].notices.is_empty() && e[0].deliveries.is_empty()
    })
    .await;
    // Nothing new is kept for them either (a development token outlives its person).
    let again = contact(&me, Some(mine), None, "en");
    let refused = client.clone().set_contact(again).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
    let ride = w.book(b.bike, b.pilot, "2027-09-09T08:00:00Z", 60, &[]).await.unwrap();
    w.booking.cancel_ride(cancel(&ride.ride_id)).await.unwrap();
    // The pilot is told; the erased coordinator is not.
    until(&client, &format!("pilot:{}", b.pilot), "ride.cancelled", 2).await;
    tokio::time::sleep(notify::TICK * 6).await;
    assert!(inbox(&client, &me).await.1.is_empty(), "an erased person gets nothing more");
    assert_eq!(smtp.messages().len(), 3, "no e-mail to an erased person");
    assert!(!notify_log_text(&w).await.contains(mine), "no address in clear in notify's log");
}

/// Makes `person` an admin of `chapter`.
async fn chapter_admin(w: &World, chapter: Uuid, person: Uuid) {
    let scope = pbc::IssueInvitationRequest { chapter_id: chapter.to_string(), ..Default::default() };
    redeem(&w.carehome_server.as_ref().unwrap().url(), "chapter_admin", scope, person).await;
}

/// A pilot's claim of a ride request tells the home's coordinators (`request.claimed`,
/// linking the request); a qualification's last day 30 days ahead tells the pilot and the
/// chapter's admins at midnight in the chapter's zone, once.
async fn a_claim_tells_the_coordinators_and_an_expiring_qualification_the_pilot_and_admins(mut w: World) {
    let (_dir, time) = test_clock("2027-05-01T10:00:00Z");
    let b = world(&mut w).await;
    let rider = w.resident(b.home, &["rides"]).await;
    // Valid until 2027-06-30: told at 00:00 on 31 May in Copenhagen (22:00 UTC on the 30th).
    let expiring = w.pilot_until(b.chapter, "2027-06-30").await;
    w.settle().await;
    let (coord, admin) = (Uuid::now_v7(), Uuid::now_v7());
    coordinator(&w, b.home, coord).await;
    chapter_admin(&w, b.chapter, admin).await;
    let (_n, client, _) = notify(&w).await;
    let request = w.request_ride(b.home, &[rider], ("2027-05-03T07:00:00Z", "2027-05-03T15:00:00Z"), 60, "").await;
    let claim = bpb::ClaimRideRequestRequest {
        context: ctx_as("pilot"),
        ride_request_id: request.ride_request_id.clone(),
        pilot_id: b.pilot.to_string(),
        bike_id: b.bike.to_string(),
        start: ts("2027-05-03T08:00:00Z"),
    };
    w.booking.claim_ride_request(claim).await.unwrap();
    let claimed = until(&client, &format!("person:{coord}"), "request.claimed", 1).await;
    assert_eq!(claimed[0].ride_request_id, request.ride_request_id);
    assert!(!claimed[0].ride_id.is_empty());

    let (pilot, admin) = (format!("pilot:{expiring}"), format!("person:{admin}"));
    time.jump_to(t("2027-05-30T21:59:00Z")).unwrap();
    tokio::time::sleep(notify::TICK * 4).await;
    assert_eq!(inbox(&client, &pilot).await.0.get("qualification.expiring"), None, "not before midnight");
    time.jump_to(t("2027-05-30T22:00:30Z")).unwrap();
    let told = until(&client, &pilot, "qualification.expiring", 1).await;
    assert_eq!(at(&told[0]), t("2027-05-30T22:00:00Z"));
    assert!(told[0].body.contains("2027-06-30"), "{}", told[0].body);
    until(&client, &admin, "qualification.expiring", 1).await;
    time.jump_to(t("2027-06-02T10:00:00Z")).unwrap();
    tokio::time::sleep(notify::TICK * 4).await;
    assert_eq!(inbox(&client, &pilot).await.0.get("qualification.expiring"), Some(&1), "once");
    // Other pilots (valid until 2028) are not told.
    assert_eq!(inbox(&client, &format!("pilot:{}", b.pilot)).await.0.get("qualification.expiring"), None);
}

/// The `samskab-notify` binary, on the test's clock file, over plain TCP to `w`'s services.
fn spawn_notify(w: &World, port: u16, smtp_port: u16, clock_file: &std::path::Path) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_samskab-notify"))
        .env("SAMSKAB_NOTIFY_DATABASE_URL", format!("{}{}", w.db.sibling("notify"), w.url_options))
        .env("SAMSKAB_NOTIFY_LISTEN", format!("127.0.0.1:{port}"))
        .env("SAMSKAB_CAREHOME_URL", w.carehome_server.as_ref().unwrap().url())
        .env("SAMSKAB_BOOKING_URL", w.booking_server.url())
        .env("SAMSKAB_VOLUNTEER_URL", w.volunteer_url())
        .env("SAMSKAB_MASTER_KEY", notify_master().to_hex())
        .env("SAMSKAB_ERASURE_LEDGER_URL", w.db.sibling("ledger_notify"))
        .env("SAMSKAB_INSECURE_PLAINTEXT", "true")
        .env("SAMSKAB_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}"))
        .env("SAMSKAB_MAIL_FROM", "Samskab <notices@odense.example.org>")
        .env(servicekit::clock::TEST_CLOCK_VAR, clock_file)
        .env("SAMSKAB_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start samskab-notify")
}

async fn client_at(port: u16) -> NotifyServiceClient<Channel> {
    let client = NotifyServiceClient::new(servicekit::client::channel(&format!("http://127.0.0.1:{port}")).unwrap());
    testkit::eventually("a notify process to answer", Duration::from_secs(60), || async {
        let req = npb::ListNoticesRequest { recipients: vec!["person:x".into()], ..Default::default() };
        client.clone().list_notices(req).await.is_ok()
    })
    .await;
    client
}

/// Two `samskab-notify` processes on one database; one is killed (SIGKILL) after the
/// day-before reminder and started again before the hour-before one: the inbox holds each
/// notice once, and every notice's e-mails (at least one each) share one `Message-ID`.
async fn two_notify_processes_one_killed_and_restarted_tell_each_reminder_once(mut w: World) {
    let (_dir, time) = test_clock("2027-09-06T06:00:00Z");
    let b = world(&mut w).await;
    let address = format!("kirsten-{}@pilots.example.org", Uuid::now_v7().simple());
    let pilot = pilot_with_email(&mut w, b.chapter, &address).await;
    let smtp = testkit::smtp::SmtpServer::start(testkit::smtp::Options::default()).await;
    let ports = [testkit::free_port(), testkit::free_port()];
    let mut first = spawn_notify(&w, ports[0], smtp.port, time.path());
    let _second = spawn_notify(&w, ports[1], smtp.port, time.path());
    let client = client_at(ports[0]).await;
    let other = client_at(ports[1]).await;
    let recipient = format!("pilot:{pilot}");
    // (A rider on the roster: an empty one is told of a day before, `ride.no_riders`.)
    let rider = w.resident(b.home, &["rides"]).await;
    w.settle().await;

    w.book(b.bike, pilot, "2027-09-07T08:00:00Z", 60, &[rider]).await.unwrap();
    until(&client, &recipient, "ride.booked_for_you", 1).await;
    time.jump_to(t("2027-09-06T08:00:30Z")).unwrap();
    until(&client, &recipient, "ride.reminder", 1).await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    time.jump_to(t("2027-09-07T07:00:30Z")).unwrap();
    until(&other, &recipient, "ride.reminder", 2).await;
    let _first = spawn_notify(&w, ports[0], smtp.port, time.path());
    let client = client_at(ports[0]).await;
    time.jump_to(t("2027-09-07T07:05:00Z")).unwrap();
    tokio::time::sleep(notify::TICK * 8).await;
    let (kinds, _) = inbox(&client, &recipient).await;
    let expected: BTreeMap<String, usize> =
        [("ride.booked_for_you", 1), ("ride.reminder", 2)].into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
    assert_eq!(kinds, expected, "each notice once in the inbox");
    let mails = messages_until(&smtp, 3).await;
    let ids: std::collections::BTreeSet<String> = mails.iter().map(|m| m.header("Message-ID").unwrap()).collect();
    assert_eq!(ids.len(), 3, "three notices, one Message-ID each, however many copies: {ids:?}");
    assert!(mails.iter().all(|m| m.to == vec![address.clone()]));
}

/// Links `pilot` to `person` (a pilot invitation redeemed at volunteer).
async fn link_pilot(w: &World, pilot: Uuid, person: Uuid) {
    let scope = pbc::IssueInvitationRequest { pilot_id: pilot.to_string(), ..Default::default() };
    redeem(&w.volunteer_url(), "pilot", scope, person).await;
}

async fn outcomes(client: &NotifyServiceClient<Channel>, recipient: &str) -> Vec<(String, String)> {
    let req = npb::ExportRecipientsRequest { recipients: vec![recipient.into()] };
    let e = client.clone().export_recipients(req).await.unwrap().into_inner();
    e.recipients[0].deliveries.iter().map(|d| (d.kind.clone(), d.outcome.clone())).collect()
}

/// One pilot's address is refused for good (550): that notice is `rejected` at once and
/// another pilot's goes out. A pilot linked to a person with a confirmed address is mailed
/// there, not at the record's. With the relay gone, a notice is retried (with backoff) and
/// recorded `failed` once it is a day old.
async fn a_refused_address_holds_back_nobody_a_linked_person_is_mailed_and_a_dead_relay_fails_after_a_day(
    mut w: World,
) {
    let (_dir, time) = test_clock("2027-09-06T06:00:00Z");
    let b = world(&mut w).await;
    let refused = pilot_with_email(&mut w, b.chapter, "reject-me@pilots.example.org").await;
    let fine = pilot_with_email(&mut w, b.chapter, "fine@pilots.example.org").await;
    let second = w.bike(b.home, 2).await;
    w.settle().await;
    // (After settling: booking does not follow pilot links.)
    let person = Uuid::now_v7();
    link_pilot(&w, fine, person).await;
    let smtp = testkit::smtp::SmtpServer::start(testkit::smtp::Options::default()).await;
    let (_a, client, server) = notify_mailing(&w, Some(mail_to(smtp.port))).await;
    testkit::eventually("the link to reach notify", Duration::from_secs(30), || async {
        server.volunteer_feed.borrow().applied >= 5
    })
    .await;

    w.book(b.bike, refused, "2027-09-08T08:00:00Z", 60, &[]).await.unwrap();
    w.book(second, fine, "2027-09-08T08:00:00Z", 60, &[]).await.unwrap();
    let (refused_r, fine_r) = (format!("pilot:{refused}"), format!("pilot:{fine}"));
    testkit::eventually("both outcomes", Duration::from_secs(30), || async {
        outcomes(&client, &refused_r).await == vec![("ride.booked_for_you".to_owned(), "rejected".to_owned())]
            && outcomes(&client, &fine_r).await == vec![("ride.booked_for_you".to_owned(), "delivered".to_owned())]
    })
    .await;
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(smtp.messages()[0].to, vec!["fine@pilots.example.org".to_owned()]);

    // The linked person's confirmed address wins over the record's.
    let me = format!("person:{person}");
    let set = contact(&me, Some("person@linked.example.org"), None, "en");
    client.clone().set_contact(set).await.unwrap();
    let got = messages_until(&smtp, 2).await;
    let code = got[1].code();
    let confirm = npb::ConfirmContactRequest { recipient: me, channel: "email".into(), code };
    client.clone().confirm_contact(confirm).await.unwrap();
    let ride = w.book(second, fine, "2027-09-09T08:00:00Z", 60, &[]).await.unwrap();
    let got = messages_until(&smtp, 3).await;
    assert_eq!(got[2].to, vec!["person@linked.example.org".to_owned()]);

    // The relay goes away: the cancellation is retried, and after a day it has failed.
    drop(smtp);
    w.booking.cancel_ride(cancel(&ride.ride_id)).await.unwrap();
    until(&client, &fine_r, "ride.cancelled", 1).await;
    tokio::time::sleep(notify::TICK * 4).await;
    let waiting = ("ride.cancelled".to_owned(), "waiting".to_owned());
    let now = outcomes(&client, &fine_r).await;
    assert!(now.contains(&waiting), "still being retried: {now:?}");
    time.jump_to(t("2027-09-06T20:00:00Z")).unwrap();
    tokio::time::sleep(notify::TICK * 4).await;
    let now = outcomes(&client, &fine_r).await;
    assert!(now.contains(&waiting), "retried within the day: {now:?}");
    time.jump_to(t("2027-09-07T06:30:00Z")).unwrap();
    testkit::eventually("the day-old notice to fail", Duration::from_secs(30), || async {
        outcomes(&client, &fine_r).await.contains(&("ride.cancelled".to_owned(), "failed".to_owned()))
    })
    .await;
}

/// A notify server sending SMS through `provider` (token `sms-token`), no e-mail.
async fn notify_texting(
    w: &World,
    provider: &testkit::sms::SmsProvider,
    dir: &std::path::Path,
) -> (Spawned, NotifyServiceClient<Channel>, notify::NotifyServer) {
    notify_with(w, notify::Outbound { sms: sms_sender(provider, dir), ..Default::default() }).await
}

/// An SMS sender to `provider` with the token `sms-token` (its file in `dir`).
fn sms_sender(provider: &testkit::sms::SmsProvider, dir: &std::path::Path) -> Option<notify::sms::SmsSender> {
    let token = dir.join("sms-token");
    std::fs::write(&token, "sms-token\n").unwrap();
    let cfg = notify::sms::SmsConfig {
        url: Some(provider.url.clone()),
        token_file: Some(token),
        format: "samskab".into(),
        sender: "Samskab".into(),
    };
    notify::sms::SmsSender::from_config(&cfg).unwrap()
}

/// A notify server sending through `outbound`.
async fn notify_with(
    w: &World,
    outbound: notify::Outbound,
) -> (Spawned, NotifyServiceClient<Channel>, notify::NotifyServer) {
    let store = eventlog::EventStore::connect(&format!("{}{}", w.db.sibling("notify"), w.url_options)).await.unwrap();
    let keys = keystore::KeyStore::connect(&store, notify_master()).await.unwrap();
    let peers = notify::Peers {
        carehome_url: w.carehome_server.as_ref().unwrap().url(),
        booking_url: w.booking_server.url(),
        volunteer_url: w.volunteer_url(),
        tls: servicekit::tls::TlsConfig::plaintext(),
    };
    let server = notify::NotifyServer::start_with(store, keys, peers, outbound).await.unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let spawned = servicekit::server::spawn(any, server.routes(), notify::SERVICE_NAMES).await.unwrap();
    let client = NotifyServiceClient::new(servicekit::client::channel(&spawned.url()).unwrap());
    (spawned, client, server)
}

async fn texts_until(provider: &testkit::sms::SmsProvider, n: usize) -> Vec<testkit::sms::SmsRequest> {
    testkit::eventually(&format!("{n} accepted SMS"), Duration::from_secs(60), || async {
        provider.accepted().len() >= n
    })
    .await;
    provider.accepted()
}

/// `person` confirms `phone` with the code texted to it (the code is the last run of six
/// digits in the newest accepted SMS to it).
async fn confirm_phone(
    client: &NotifyServiceClient<Channel>,
    provider: &testkit::sms::SmsProvider,
    person: Uuid,
    phone: &str,
    nth: usize,
) {
    let me = format!("person:{person}");
    let set = contact(&me, None, Some(phone), "da");
    client.clone().set_contact(set).await.unwrap();
    let texts = texts_until(provider, nth).await;
    let text = texts.iter().rev().find(|r| r.body["to"] == phone).unwrap().body["text"].as_str().unwrap().to_owned();
    let code = text.split(|c: char| !c.is_ascii_digit()).rfind(|d| d.len() == 6).unwrap().to_owned();
    let confirm = npb::ConfirmContactRequest { recipient: me, channel: "sms".into(), code };
    client.clone().confirm_contact(confirm).await.unwrap();
}

/// `person` takes `kinds` by SMS only, with `quiet` hours (in Copenhagen) if any.
async fn choose_sms(client: &NotifyServiceClient<Channel>, person: Uuid, kinds: &[&str], quiet: Option<(&str, &str)>) {
    let channels = kinds.iter().map(|k| ((*k).to_owned(), npb::ChannelList { channels: vec!["sms".into()] })).collect();
    let req = npb::SetPreferencesRequest {
        recipient: format!("person:{person}"),
        preferences: Some(npb::Preferences {
            language: "da".into(),
            quiet_hours: quiet.map(|(from, to)| npb::QuietHours {
                from: from.into(),
                to: to.into(),
                timezone: String::new(),
            }),
            channels,
        }),
        default_language: "da".into(),
        default_timezone: "Europe/Copenhagen".into(),
    };
    client.clone().set_preferences(req).await.unwrap();
}

/// By SMS: a person's number is confirmed with a texted code (the provider's first answer
/// is 503: the retry carries the same key); a cancellation reaches the pilot linked to that
/// person who chose SMS, in Danish, naming no resident, once per key, with the token as
/// the provider's bearer; a number the provider refuses (400) is recorded `rejected` and
/// never retried; no number is in notify's log or database in clear.
async fn by_sms_a_code_and_a_cancellation_go_out_once_per_key_and_an_invalid_number_is_refused_once(mut w: World) {
    let (dir, time) = test_clock("2027-09-06T08:00:00Z");
    let b = world(&mut w).await;
    let resident = w.resident(b.home, &["rides"]).await;
    w.settle().await;
    let person = Uuid::now_v7();
    link_pilot(&w, b.pilot, person).await;
    let provider = testkit::sms::SmsProvider::start(1).await;
    let (_a, client, server) = notify_texting(&w, &provider, dir.path()).await;
    testkit::eventually("the link to reach notify", Duration::from_secs(30), || async {
        server.volunteer_feed.borrow().applied >= 3
    })
    .await;

    // The code: refused once with 503, then sent again (after its backoff) under one key.
    let me = format!("person:{person}");
    let set = contact(&me, None, Some("+4512345678"), "da");
    client.clone().set_contact(set).await.unwrap();
    testkit::eventually("the first try", Duration::from_secs(30), || async { !provider.requests().is_empty() }).await;
    time.jump_to(t("2027-09-06T08:02:00Z")).unwrap();
    let texts = texts_until(&provider, 1).await;
    let all = provider.requests();
    assert_eq!(all[0].status, 503);
    assert_eq!(all[0].idempotency_key, texts[0].idempotency_key, "one key for every copy");
    assert_eq!(texts[0].body["reference"], texts[0].idempotency_key.as_str());
    assert_eq!(texts[0].authorization, "Bearer sms-token");
    assert_eq!(texts[0].body["to"], "+4512345678");
    let text = texts[0].body["text"].as_str().unwrap();
    let code = text.split(|c: char| !c.is_ascii_digit()).rfind(|d| d.len() == 6).unwrap().to_owned();
    let confirm = npb::ConfirmContactRequest { recipient: me.clone(), channel: "sms".into(), code };
    client.clone().confirm_contact(confirm).await.unwrap();

    // Cancellations by SMS: the linked person's confirmed number, Danish, no resident.
    choose_sms(&client, person, &["ride.cancelled"], None).await;
    let ride = w.book(b.bike, b.pilot, "2027-09-08T08:00:00Z", 60, &[resident]).await.unwrap();
    w.booking.cancel_ride(cancel(&ride.ride_id)).await.unwrap();
    let texts = texts_until(&provider, 2).await;
    let sms = &texts[1];
    assert_eq!(sms.body["to"], "+4512345678");
    let text = sms.body["text"].as_str().unwrap();
    assert!(text.starts_with("Turen er aflyst"), "{text}");
    assert!(text.chars().count() <= notify::sms::MAX_CHARS);
    for name in ["Ærø", "Østergård", "harbour"] {
        assert!(!text.contains(name), "a resident in an SMS: {text}");
    }
    let pilot_r = format!("pilot:{}", b.pilot);
    testkit::eventually("the SMS recorded delivered", Duration::from_secs(30), || async {
        outcomes(&client, &pilot_r).await.contains(&("ride.cancelled".to_owned(), "delivered".to_owned()))
    })
    .await;
    // Booked for you was not chosen by SMS: not texted.
    tokio::time::sleep(notify::TICK * 6).await;
    assert_eq!(provider.accepted().len(), 2);

    // A number the provider refuses: recorded once, never retried.
    let other = Uuid::now_v7();
    let them = format!("person:{other}");
    let set = contact(&them, None, Some("+4599123456"), "da");
    client.clone().set_contact(set).await.unwrap();
    testkit::eventually("the refusal recorded", Duration::from_secs(30), || async {
        outcomes(&client, &them).await == vec![("contact.confirmation".to_owned(), "rejected".to_owned())]
    })
    .await;
    time.jump_to(t("2027-09-06T12:00:00Z")).unwrap();
    tokio::time::sleep(notify::TICK * 6).await;
    let to_it = provider.requests().iter().filter(|r| r.body["to"] == "+4599123456").count();
    assert_eq!(to_it, 1, "a refused number is tried once");

    // No number in clear in notify's log or database.
    let log = notify_log_text(&w).await;
    for number in ["12345678", "99123456"] {
        assert!(!log.contains(number), "a number in notify's log");
    }
    if let Some(path) = w.db.sibling("notify").strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap();
        for file in [path.to_owned(), format!("{path}-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                let text = String::from_utf8_lossy(&bytes);
                assert!(!text.contains("12345678") && !text.contains("99123456"), "a number in {file}");
            }
        }
    }
}

/// A home whose rides may start from 06:00.
async fn early_home(w: &mut World, chapter: Uuid) -> Uuid {
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let h = w
        .carehome
        .register_care_home(cpb::RegisterCareHomeRequest {
            context: ctx(),
            chapter_id: chapter.to_string(),
            name: "Morgenhuset".into(),
            address: "Morgenvej 1, Odense".into(),
            timezone: String::new(),
            ride_hours: days
                .iter()
                .map(|d| cpb::RideHours { weekday: (*d).into(), opens: "06:00".into(), closes: "20:00".into() })
                .collect(),
            turnaround_minutes: 15,
            requires_confirmation: false,
            pilots_choose_riders: true,
        })
        .await
        .unwrap()
        .into_inner();
    h.carehome_id.parse().unwrap()
}

/// Quiet hours 22:00-07:00 in Copenhagen, on the night the clocks go forward (28 March
/// 2027): a cancellation at 23:00 is in the inbox at once but texted and pushed only at
/// 07:00 (05:00 UTC, summer time), unless its ride starts at 06:30, which goes at once. The
/// number's confirmation code is never held.
async fn quiet_hours_hold_sms_until_seven_on_a_night_the_clocks_change_unless_the_ride_starts_first(mut w: World) {
    // Saturday 27 March 2027, 23:00 in Copenhagen (+01:00).
    let (dir, time) = test_clock("2027-03-27T22:00:00Z");
    let b = world(&mut w).await;
    let home = early_home(&mut w, b.chapter).await;
    let bike = w.bike(home, 2).await;
    w.settle().await;
    let person = Uuid::now_v7();
    link_pilot(&w, b.pilot, person).await;
    let provider = testkit::sms::SmsProvider::start(0).await;
    let service = testkit::push::PushService::start().await;
    let push = notify::push::PushConfig { subject: Some("mailto:ops@odense.example.org".into()), allow_loopback: true };
    let outbound = notify::Outbound { sms: sms_sender(&provider, dir.path()), push, ..Default::default() };
    let (_a, client, server) = notify_with(&w, outbound).await;
    testkit::eventually("the link to reach notify", Duration::from_secs(30), || async {
        server.volunteer_feed.borrow().applied >= 3
    })
    .await;
    client.clone().add_push_subscription(subscribe(person, &service.endpoint("phone"))).await.unwrap();
    let prefs = npb::SetPreferencesRequest {
        recipient: format!("person:{person}"),
        preferences: Some(npb::Preferences {
            language: "da".into(),
            quiet_hours: Some(npb::QuietHours { from: "22:00".into(), to: "07:00".into(), timezone: String::new() }),
            channels: [("ride.cancelled".to_owned(), npb::ChannelList { channels: vec!["sms".into(), "push".into()] })]
                .into(),
        }),
        default_language: "da".into(),
        default_timezone: "Europe/Copenhagen".into(),
    };
    client.clone().set_preferences(prefs).await.unwrap();
    // The code comes at once, quiet hours or not.
    confirm_phone(&client, &provider, person, "+4512345678", 1).await;

    // Sunday 28 March: 10:00 summer time is 08:00 UTC; 06:30 is 04:30 UTC.
    let late = w.book(bike, b.pilot, "2027-03-28T08:00:00Z", 60, &[]).await.unwrap();
    let early = w.book(bike, b.pilot, "2027-03-28T04:30:00Z", 60, &[]).await.unwrap();
    w.booking.cancel_ride(cancel(&late.ride_id)).await.unwrap();
    let pilot_r = format!("pilot:{}", b.pilot);
    until(&client, &pilot_r, "ride.cancelled", 1).await;
    w.booking.cancel_ride(cancel(&early.ride_id)).await.unwrap();
    let texts = texts_until(&provider, 2).await;
    let ride_of = |r: &testkit::sms::SmsRequest| r.body["text"].as_str().unwrap().to_owned();
    assert!(ride_of(&texts[1]).contains("06:30"), "the early ride's goes at once: {}", ride_of(&texts[1]));
    until(&client, &pilot_r, "ride.cancelled", 2).await;
    testkit::eventually("the early ride's push", Duration::from_secs(30), || async { !service.received().is_empty() })
        .await;
    tokio::time::sleep(notify::TICK * 6).await;
    assert_eq!(provider.accepted().len(), 2, "the 10:00 ride's SMS waits");
    let pushed = service.received();
    assert_eq!(pushed.len(), 1, "the 10:00 ride's push waits");
    assert_eq!(pushed[0].payload["links"]["ride_id"], early.ride_id.as_str());

    // 06:59 summer time: still waiting; 07:00: sent.
    time.jump_to(t("2027-03-28T04:59:00Z")).unwrap();
    tokio::time::sleep(notify::TICK * 6).await;
    assert_eq!(provider.accepted().len(), 2, "still quiet at 06:59");
    assert_eq!(service.received().len(), 1, "still quiet at 06:59");
    time.jump_to(t("2027-03-28T05:00:30Z")).unwrap();
    let texts = texts_until(&provider, 3).await;
    assert!(ride_of(&texts[2]).contains("10:00"), "{}", ride_of(&texts[2]));
    testkit::eventually("the 10:00 ride's push", Duration::from_secs(30), || async { service.received().len() == 2 })
        .await;
    assert_eq!(service.received()[1].payload["links"]["ride_id"], late.ride_id.as_str());
}

/// A notify server pushing to push services on loopback (the test's), no e-mail or SMS.
async fn notify_pushing(w: &World) -> (Spawned, NotifyServiceClient<Channel>, notify::NotifyServer) {
    let push = notify::push::PushConfig { subject: Some("mailto:ops@odense.example.org".into()), allow_loopback: true };
    notify_with(w, notify::Outbound { push, ..Default::default() }).await
}

fn subscribe(person: Uuid, endpoint: &str) -> npb::AddPushSubscriptionRequest {
    npb::AddPushSubscriptionRequest {
        recipient: format!("person:{person}"),
        endpoint: endpoint.into(),
        p256dh: testkit::push::UA_PUBLIC.into(),
        auth: testkit::push::AUTH.into(),
    }
}

async fn subscriptions(client: &NotifyServiceClient<Channel>, person: Uuid) -> Vec<String> {
    let req = npb::ListPushSubscriptionsRequest { recipient: format!("person:{person}") };
    let list = client.clone().list_push_subscriptions(req).await.unwrap().into_inner();
    list.subscriptions.into_iter().map(|s| s.endpoint).collect()
}

/// Web Push: a person's two browsers each get a cancellation, encrypted for them (the
/// stand-in push service decrypts with the browser's keys) and signed with the VAPID key
/// the API hands out, under the notice's topic, naming no resident; a push service that
/// answers 410 has its subscription deleted and the other browser still gets the next one;
/// endpoints that are not https or reach a private address, and keys that are not P-256
/// points, are refused; a person deletes their own subscriptions only.
async fn by_push_each_browser_gets_the_notice_encrypted_and_signed_and_a_gone_one_is_deleted(mut w: World) {
    let (_dir, _time) = test_clock("2027-09-06T08:00:00Z");
    let b = world(&mut w).await;
    let resident = w.resident(b.home, &["rides"]).await;
    w.settle().await;
    let person = Uuid::now_v7();
    link_pilot(&w, b.pilot, person).await;
    let service = testkit::push::PushService::start().await;
    let (_a, client, server) = notify_pushing(&w).await;
    testkit::eventually("the link to reach notify", Duration::from_secs(30), || async {
        server.volunteer_feed.borrow().applied >= 3
    })
    .await;
    let vapid = client.clone().vapid_public_key(npb::VapidPublicKeyRequest {}).await.unwrap().into_inner().key;
    assert_eq!(base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &vapid).unwrap().len(), 65);

    // Refused: not https, a private address, keys that are not a browser's.
    let refused = |req: npb::AddPushSubscriptionRequest, field: &'static str| {
        let client = client.clone();
        async move {
            let e = client.clone().add_push_subscription(req).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
            assert!(e.message().contains(field), "{field}: {}", e.message());
        }
    };
    refused(subscribe(person, "https://10.1.2.3/push/x"), "/endpoint").await;
    refused(subscribe(person, "http://push.example.org/push/x"), "/endpoint").await;
    refused(
        npb::AddPushSubscriptionRequest { p256dh: "BAAA".into(), ..subscribe(person, &service.endpoint("a")) },
        "/keys/p256dh",
    )
    .await;
    refused(
        npb::AddPushSubscriptionRequest { auth: "AAAA".into(), ..subscribe(person, &service.endpoint("a")) },
        "/keys/auth",
    )
    .await;
    assert!(subscriptions(&client, person).await.is_empty(), "nothing kept of a refusal");

    // Two browsers; the same one again is the same subscription.
    let first =
        client.clone().add_push_subscription(subscribe(person, &service.endpoint("a"))).await.unwrap().into_inner();
    assert!(first.created);
    let again =
        client.clone().add_push_subscription(subscribe(person, &service.endpoint("a"))).await.unwrap().into_inner();
    assert!(!again.created);
    assert_eq!(
        again.subscription.unwrap().push_subscription_id,
        first.subscription.as_ref().unwrap().push_subscription_id
    );
    client.clone().add_push_subscription(subscribe(person, &service.endpoint("b"))).await.unwrap();
    assert_eq!(subscriptions(&client, person).await, vec![service.endpoint("a"), service.endpoint("b")]);

    // A cancellation, chosen by push: both browsers, decrypted and verified.
    let prefs = npb::SetPreferencesRequest {
        recipient: format!("person:{person}"),
        preferences: Some(npb::Preferences {
            language: "da".into(),
            quiet_hours: None,
            channels: [("ride.cancelled".to_owned(), npb::ChannelList { channels: vec!["push".into()] })].into(),
        }),
        default_language: "da".into(),
        default_timezone: "Europe/Copenhagen".into(),
    };
    client.clone().set_preferences(prefs).await.unwrap();
    let ride = w.book(b.bike, b.pilot, "2027-09-08T08:00:00Z", 60, &[resident]).await.unwrap();
    w.booking.cancel_ride(cancel(&ride.ride_id)).await.unwrap();
    testkit::eventually("two pushes", Duration::from_secs(30), || async { service.received().len() >= 2 }).await;
    let got = service.received();
    let mut to: Vec<&str> = got.iter().map(|r| r.subscription.as_str()).collect();
    to.sort();
    assert_eq!(to, vec!["a", "b"]);
    for r in &got {
        assert_eq!(r.error, None, "checked and decrypted");
        assert_eq!(r.status, 201);
        assert_eq!(r.vapid_key, vapid, "signed with the key browsers subscribe with");
        assert_eq!(r.payload["kind"], "ride.cancelled");
        assert_eq!(r.payload["title"], "Turen er aflyst");
        assert_eq!(r.payload["links"]["ride_id"], ride.ride_id.as_str());
        assert_eq!(r.topic, r.payload["notification_id"].as_str().unwrap().replace('-', ""), "one topic per notice");
        assert_eq!(r.urgency, "high");
        let text = r.payload.to_string();
        for name in ["Ærø", "Østergård", "harbour"] {
            assert!(!text.contains(name), "a resident in a push: {text}");
        }
    }
    let pilot_r = format!("pilot:{}", b.pilot);
    testkit::eventually("the push recorded delivered", Duration::from_secs(30), || async {
        outcomes(&client, &pilot_r).await.contains(&("ride.cancelled".to_owned(), "delivered".to_owned()))
    })
    .await;

    // Browser b's push service says it is gone: b is deleted, a still gets the next one.
    service.gone("b");
    let ride = w.book(b.bike, b.pilot, "2027-09-09T08:00:00Z", 60, &[]).await.unwrap();
    w.booking.cancel_ride(cancel(&ride.ride_id)).await.unwrap();
    testkit::eventually("b deleted", Duration::from_secs(30), || async {
        subscriptions(&client, person).await == vec![service.endpoint("a")]
    })
    .await;
    let got = service.received();
    assert!(got.iter().any(|r| r.subscription == "a" && r.payload["links"]["ride_id"] == ride.ride_id.as_str()));
    assert!(got.iter().any(|r| r.subscription == "b" && r.status == 410));

    // The export lists the browser; another person cannot delete it; the person can, once.
    let export = client
        .clone()
        .export_recipients(npb::ExportRecipientsRequest { recipients: vec![format!("person:{person}")] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(export.recipients[0].push_subscriptions.len(), 1);
    let id = export.recipients[0].push_subscriptions[0].push_subscription_id.clone();
    let delete = |who: Uuid| npb::DeletePushSubscriptionRequest {
        recipient: format!("person:{who}"),
        push_subscription_id: id.clone(),
    };
    let e = client.clone().delete_push_subscription(delete(Uuid::now_v7())).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    client.clone().delete_push_subscription(delete(person)).await.unwrap();
    let e = client.clone().delete_push_subscription(delete(person)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(subscriptions(&client, person).await.is_empty());
    // No endpoint in clear in notify's log.
    let log = notify_log_text(&w).await;
    assert!(!log.contains("/push/a") && !log.contains("127.0.0.1"), "an endpoint in notify's log");
}

/// Twelve browsers subscribing at once: ten are kept, two are refused (limit-reached).
async fn at_most_ten_push_subscriptions_a_person_even_when_added_at_once(mut w: World) {
    let (_dir, _time) = test_clock("2027-09-06T08:00:00Z");
    world(&mut w).await;
    let service = testkit::push::PushService::start().await;
    let (_a, client, _) = notify_pushing(&w).await;
    let person = Uuid::now_v7();
    let adds = (0..12).map(|i| {
        let (client, endpoint) = (client.clone(), service.endpoint(&format!("browser-{i}")));
        tokio::spawn(async move { client.clone().add_push_subscription(subscribe(person, &endpoint)).await })
    });
    let results = futures_util::future::join_all(adds).await;
    let mut kept = 0;
    for r in results {
        match r.unwrap() {
            Ok(r) => {
                assert!(r.into_inner().created);
                kept += 1;
            }
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{}", e.message());
                assert!(e.message().contains("at most 10"), "{}", e.message());
            }
        }
    }
    assert_eq!(kept, 10);
    assert_eq!(subscriptions(&client, person).await.len(), 10);
}

/// A day before a booked ride with nobody on its roster, its pilot and the home's
/// coordinators are told (`ride.no_riders`), once; a ride with a rider tells nobody.
async fn a_ride_without_riders_is_told_to_its_pilot_and_coordinators_a_day_before_once(mut w: World) {
    let (_dir, time) = test_clock("2027-05-01T10:00:00Z");
    let b = world(&mut w).await;
    let rider = w.resident(b.home, &["rides"]).await;
    w.settle().await;
    let coord = Uuid::now_v7();
    coordinator(&w, b.home, coord).await;
    let (_n, client, _) = notify(&w).await;
    let empty = w.book(b.bike, b.pilot, "2027-05-04T08:00:00Z", 60, &[]).await.unwrap();
    w.book(b.bike, b.pilot, "2027-05-04T10:00:00Z", 60, &[rider]).await.unwrap();
    let (pilot, coord) = (format!("pilot:{}", b.pilot), format!("person:{coord}"));
    time.jump_to(t("2027-05-03T07:59:00Z")).unwrap();
    tokio::time::sleep(notify::TICK * 4).await;
    assert_eq!(inbox(&client, &pilot).await.0.get("ride.no_riders"), None, "not before 24 hours ahead");
    time.jump_to(t("2027-05-03T08:00:30Z")).unwrap();
    let told = until(&client, &pilot, "ride.no_riders", 1).await;
    assert_eq!((told[0].ride_id.as_str(), at(&told[0])), (empty.ride_id.as_str(), t("2027-05-03T08:00:00Z")));
    assert!(told[0].body.contains("nobody"), "{}", told[0].body);
    until(&client, &coord, "ride.no_riders", 1).await;
    time.jump_to(t("2027-05-03T11:00:00Z")).unwrap();
    tokio::time::sleep(notify::TICK * 4).await;
    assert_eq!(inbox(&client, &pilot).await.0.get("ride.no_riders"), Some(&1), "once; not for the ride with a rider");
    assert_eq!(inbox(&client, &coord).await.0.get("ride.no_riders"), Some(&1));
}

/// The pilots booking offered `request`, round by round (its `RideRequestOffered` events).
async fn offered_by_booking(w: &World, request: &str) -> Vec<Vec<String>> {
    let docs = w
        .booking_store
        .fetch_texts(
            "SELECT CAST(payload AS TEXT) FROM eventlog_events WHERE stream_id = $1 \
             AND event_type = 'RideRequestOffered' ORDER BY version",
            &[format!("riderequest-{request}").into()],
        )
        .await
        .unwrap();
    docs.iter()
        .map(|d| {
            let v: serde_json::Value = serde_json::from_str(d).unwrap();
            let mut ids: Vec<String> =
                v["pilot_ids"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect();
            ids.sort();
            ids
        })
        .collect()
}

/// How many notices of `kind` `recipient` holds, by ride request.
async fn by_request(client: &NotifyServiceClient<Channel>, recipient: &str, kind: &str) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for notice in inbox(client, recipient).await.1.into_iter().filter(|n| n.kind == kind) {
        *n.entry(notice.ride_request_id).or_insert(0) += 1;
    }
    n
}

/// Two requests posted for Friday morning, offered by booking to its candidates (pilots
/// who declared availability then) two a round: `request.offered` tells each pilot offered
/// once per request, the second round (24 h on) only the pilot it adds. Neither claimed,
/// the chapter's admin is told `request.unclaimed` 72 h before the window, once per
/// request; one is then claimed, and 48 h before only the other is told; notify killed
/// and started again in between (the 48 h lead passing while it is down) and after tells
/// nothing twice and forgets nothing.
async fn offers_tell_each_pilot_once_and_an_unclaimed_request_its_admins_at_72_and_48_hours_once_across_restarts(
    mut w: World,
) {
    // Monday 6 September 2027, 08:00 in Copenhagen (UTC+2).
    let (_dir, time) = test_clock("2027-09-06T06:00:00Z");
    let c = w
        .carehome
        .register_chapter(cpb::RegisterChapterRequest {
            context: ctx_as("admin"),
            name: "Odense".into(),
            timezone: "Europe/Copenhagen".into(),
            settings: Some(cpb::ChapterSettings {
                lead_time_minutes: 60,
                default_turnaround_minutes: 15,
                reminder_lead_minutes: vec![60],
                offer_fanout: Some(2),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let chapter: Uuid = c.chapter_id.parse().unwrap();
    let home = w.home(chapter, false).await;
    let bike = w.bike(home, 2).await;
    let rider = w.resident(home, &["rides"]).await;
    // Three candidates (free Friday 08:00-12:00 local) and one pilot who declared nothing.
    let mut pilots = Vec::new();
    for _ in 0..3 {
        let p = w.pilot(chapter).await;
        w.volunteer
            .declare_availability(vpb::DeclareAvailabilityRequest {
                context: ctx(),
                pilot_id: p.to_string(),
                availability: Some(vpb::Availability {
                    weekly: vec![vpb::WeeklyWindow {
                        weekday: "friday".into(),
                        from: "08:00".into(),
                        to: "12:00".into(),
                    }],
                    carehome_ids: vec![],
                }),
            })
            .await
            .unwrap();
        pilots.push(p.to_string());
    }
    pilots.sort();
    let idle = w.pilot(chapter).await;
    w.settle().await;
    let (admin, coord) = (Uuid::now_v7(), Uuid::now_v7());
    chapter_admin(&w, chapter, admin).await;
    coordinator(&w, home, coord).await;
    let smtp = testkit::smtp::SmtpServer::start(testkit::smtp::Options::default()).await;
    let port = testkit::free_port();
    let mut process = spawn_notify(&w, port, smtp.port, time.path());
    let mut client = client_at(port).await;

    // Friday 10 September, 09:00-13:00 local: 72 h before is Tuesday 07:00 UTC, 48 h Wednesday.
    let window = ("2027-09-10T07:00:00Z", "2027-09-10T11:00:00Z");
    let open = w.request_ride(home, &[rider], window, 60, "").await.ride_request_id;
    let claimed = w.request_ride(home, &[rider], window, 60, "").await.ride_request_id;
    let both = |n: usize| -> BTreeMap<String, usize> { [(open.clone(), n), (claimed.clone(), n)].into() };
    let first_round = pilots[..2].to_vec();
    for r in [&open, &claimed] {
        assert_eq!(offered_by_booking(&w, r).await, vec![first_round.clone()], "round 0: the first two by id");
    }
    for p in &first_round {
        until(&client, &format!("pilot:{p}"), "request.offered", 2).await;
    }
    let offered = |p: &str| format!("pilot:{p}");
    tokio::time::sleep(notify::TICK * 4).await;
    for p in &first_round {
        assert_eq!(by_request(&client, &offered(p), "request.offered").await, both(1), "once per request");
    }
    assert!(by_request(&client, &offered(&pilots[2]), "request.offered").await.is_empty(), "not offered yet");

    // 24 hours on: the second round adds the third pilot only.
    time.jump_to(t("2027-09-07T06:00:30Z")).unwrap();
    for r in [&open, &claimed] {
        testkit::eventually("the second round", testkit::DEFAULT_TIMEOUT, || async {
            offered_by_booking(&w, r).await.len() == 2
        })
        .await;
        assert_eq!(offered_by_booking(&w, r).await[1], vec![pilots[2].clone()]);
    }
    until(&client, &offered(&pilots[2]), "request.offered", 2).await;
    tokio::time::sleep(notify::TICK * 4).await;
    for p in &pilots {
        assert_eq!(by_request(&client, &offered(p), "request.offered").await, both(1), "once per (request, pilot)");
    }
    assert!(inbox(&client, &offered(&idle.to_string())).await.1.is_empty(), "no offer to a non-candidate");

    // 72 hours before: the admin, once for each request.
    let admin = format!("person:{admin}");
    time.jump_to(t("2027-09-07T06:59:00Z")).unwrap();
    tokio::time::sleep(notify::TICK * 4).await;
    assert!(by_request(&client, &admin, "request.unclaimed").await.is_empty(), "not before 72 hours ahead");
    time.jump_to(t("2027-09-07T07:00:30Z")).unwrap();
    let told = until(&client, &admin, "request.unclaimed", 2).await;
    assert!(told.iter().all(|n| at(n) == t("2027-09-07T07:00:00Z")), "{told:?}");
    assert_eq!(by_request(&client, &admin, "request.unclaimed").await, both(1));

    // Notify is killed; one request is claimed while it is down, and the 48 h lead passes.
    // On its start notify first catches up with the feeds, so it knows of the claim before
    // it decides the 48 h notices.
    process.start_kill().unwrap();
    process.wait().await.unwrap();
    w.booking
        .claim_ride_request(bpb::ClaimRideRequestRequest {
            context: ctx_as("pilot"),
            ride_request_id: claimed.clone(),
            pilot_id: pilots[0].clone(),
            bike_id: bike.to_string(),
            start: ts("2027-09-10T08:30:00Z"),
        })
        .await
        .unwrap();
    time.jump_to(t("2027-09-08T07:00:30Z")).unwrap();
    let port = testkit::free_port();
    process = spawn_notify(&w, port, smtp.port, time.path());
    client = client_at(port).await;
    let told = until(&client, &admin, "request.unclaimed", 3).await;
    let late: Vec<_> = told.iter().filter(|n| at(n) == t("2027-09-08T07:00:00Z")).collect();
    assert_eq!(late.len(), 1, "{told:?}");
    assert_eq!(late[0].ride_request_id, open, "48 hours before: the open request only");
    tokio::time::sleep(notify::TICK * 4).await;
    let want: BTreeMap<String, usize> = [(open.clone(), 2), (claimed.clone(), 1)].into();
    assert_eq!(by_request(&client, &admin, "request.unclaimed").await, want);

    // Killed and started again: nothing is told twice.
    process.start_kill().unwrap();
    process.wait().await.unwrap();
    time.jump_to(t("2027-09-08T07:10:00Z")).unwrap();
    let port = testkit::free_port();
    let _process = spawn_notify(&w, port, smtp.port, time.path());
    let client = client_at(port).await;
    tokio::time::sleep(notify::TICK * 8).await;
    assert_eq!(by_request(&client, &admin, "request.unclaimed").await, want, "each lead once across restarts");
    for p in &pilots {
        assert_eq!(by_request(&client, &offered(p), "request.offered").await, both(1), "no offer told twice");
    }
}
