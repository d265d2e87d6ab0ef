//! Ride series (issue 20), on both backends: the same local time across the October change,
//! a closure day reported and not booked, the horizon moving at 02:00 local on the test
//! clock with two more booking processes (the real binary) sweeping the same log, each date
//! booked once, cancellation from a week on, and cascades and stops.

use std::time::Duration;

use crate::common::*;
use crate::spawn::{Process, spawn_booking};
use chrono::{NaiveTime, Timelike};
use chrono_tz::Europe::Copenhagen;
use samskab_proto::booking::v1::{self as bpb, booking_service_client::BookingServiceClient};
use samskab_proto::carehome::v1 as cpb;
use samskab_proto::volunteer::v1 as vpb;
use servicekit::ErrorCode;
use servicekit::clock::{self, TestClockFile};
use testkit::free_port;
use uuid::Uuid;

testkit::both_backends!(setup = World::new;
    twelve_tuesdays_keep_ten_oclock_skip_a_closure_book_as_days_pass_once_and_cancel_from_week_six,
    occurrences_are_rides_to_cascades_and_a_series_stops_at_a_retired_trishaw,
    a_pilots_series_needs_confirmation_and_names_only_riders_it_may,
    concurrent_retries_book_each_date_once_and_rival_series_never_share_a_trishaw,
    a_create_cut_short_by_a_killed_process_completes_on_retry_with_its_key,
);

fn test_clock(at: &str) -> (tempfile::TempDir, TestClockFile) {
    let dir = tempfile::tempdir().unwrap();
    let time = TestClockFile::create(dir.path().join("offset")).unwrap();
    clock::use_test_file(time.path());
    time.jump_to(t(at)).unwrap();
    (dir, time)
}

async fn answering(port: u16) -> BookingServiceClient<tonic::transport::Channel> {
    let c = BookingServiceClient::new(servicekit::client::channel(&format!("http://127.0.0.1:{port}")).unwrap());
    testkit::eventually("a booking process to answer", Duration::from_secs(60), || async {
        let r =
            c.clone().get_ride(bpb::GetRideRequest { ride_id: Uuid::nil().to_string(), include_personal: false }).await;
        matches!(r, Err(s) if s.code() == tonic::Code::NotFound)
    })
    .await;
    c
}

fn plan(b: &Basic, start: &str, riders: &[Uuid], weekdays: &[&str], count: Option<u32>) -> bpb::PlanRideSeriesRequest {
    bpb::PlanRideSeriesRequest {
        context: ctx(),
        bike_id: b.bike.to_string(),
        pilot_id: b.pilot.to_string(),
        start: ts(start),
        duration_minutes: 60,
        resident_ids: riders.iter().map(Uuid::to_string).collect(),
        kind: String::new(),
        trip_minutes: 0,
        recurrence: Some(bpb::Recurrence {
            weekdays: weekdays.iter().map(|w| (*w).into()).collect(),
            interval_weeks: None,
            until: String::new(),
            count,
        }),
    }
}

async fn series(w: &World, id: &str) -> bpb::RideSeries {
    w.booking
        .clone()
        .get_ride_series(bpb::GetRideSeriesRequest { ride_series_id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

fn booked_dates(s: &bpb::RideSeries) -> Vec<&str> {
    s.occurrences.iter().filter(|o| !o.ride_id.is_empty()).map(|o| o.date.as_str()).collect()
}

async fn count(w: &World, event_type: &str) -> i64 {
    w.booking_store
        .fetch_i64("SELECT count(*) FROM eventlog_events WHERE event_type = $1", &[event_type.into()])
        .await
        .unwrap()
        .unwrap_or(0)
}

fn start_of(o: &bpb::Occurrence) -> chrono::DateTime<chrono::Utc> {
    samskab_proto::time::from_proto(o.start.as_ref().unwrap()).unwrap()
}

async fn twelve_tuesdays_keep_ten_oclock_skip_a_closure_book_as_days_pass_once_and_cancel_from_week_six(mut w: World) {
    // Wednesday 1 September 2027, 08:00 in Copenhagen: the horizon (56 days) is 27 October.
    let (dir, time) = test_clock("2027-09-01T06:00:00Z");
    let b = w.basic().await;
    let rider = w.resident(b.home, &["rides"]).await;
    // The care home is closed on the fourth Tuesday.
    w.carehome
        .close_care_home(cpb::CloseCareHomeRequest {
            context: ctx(),
            carehome_id: b.home.to_string(),
            closure: Some(cpb::Closure {
                from: "2027-10-05".into(),
                to: "2027-10-06".into(),
                reason: "painters".into(),
                closure_id: String::new(),
            }),
        })
        .await
        .unwrap();
    w.settle().await;
    // 10:00 local on Tuesday 14 September (CEST, UTC+2), twelve Tuesdays: the last five
    // after the change to CET on 31 October.
    let req = plan(&b, "2027-09-14T08:00:00Z", &[rider], &["tuesday"], Some(12));
    let s = w.booking.plan_ride_series(req.clone()).await.unwrap().into_inner();
    assert_eq!(s.occurrences.len(), 12, "a bounded series lists every date");
    assert_eq!((s.local_time.as_str(), s.timezone.as_str()), ("10:00", "Europe/Copenhagen"));
    for o in &s.occurrences {
        let local = start_of(o).with_timezone(&Copenhagen);
        assert_eq!(local.time(), NaiveTime::from_hms_opt(10, 0, 0).unwrap(), "{} at 10:00 local", o.date);
        assert_eq!(local.date_naive().to_string(), o.date);
    }
    assert_eq!(start_of(&s.occurrences[6]).hour(), 8, "26 October: 10:00 CEST is 08:00 UTC");
    assert_eq!(start_of(&s.occurrences[7]).hour(), 9, "2 November: 10:00 CET is 09:00 UTC");
    // Booked up to the horizon; the closed Tuesday reported, not booked.
    assert_eq!(booked_dates(&s), ["2027-09-14", "2027-09-21", "2027-09-28", "2027-10-12", "2027-10-19", "2027-10-26"]);
    let closed = &s.occurrences[3];
    assert_eq!(closed.date, "2027-10-05");
    assert!(closed.ride_id.is_empty());
    assert_eq!(closed.problem.as_ref().map(|p| p.code.as_str()), Some("outside-ride-hours"));
    assert!(s.occurrences[7..].iter().all(|o| o.ride_id.is_empty() && o.problem.is_none()), "beyond the horizon");
    for o in s.occurrences.iter().filter(|o| !o.ride_id.is_empty()) {
        let ride = w.ride(&o.ride_id).await;
        assert_eq!(ride.start, o.start);
        assert_eq!((ride.status.as_str(), o.status.as_str()), ("booked", "booked"));
        assert_eq!(ride.ride_series_id, s.ride_series_id);
        assert_eq!(ride.riders.len(), 1);
    }
    // A retry with the same key is the same series, and books nothing twice.
    let again = w.booking.plan_ride_series(req.clone()).await.unwrap().into_inner();
    assert_eq!(again.ride_series_id, s.ride_series_id);
    assert_eq!(booked_dates(&again), booked_dates(&s));
    assert_eq!(count(&w, "RideBooked").await, 6);

    // Two more booking processes on the same log and the same clock.
    let ports = [free_port(), free_port()];
    let _procs: Vec<Process> = ports.iter().map(|p| spawn_booking(&w, *p, Some(time.path()))).collect();
    for p in ports {
        answering(p).await;
    }
    // Tuesday 7 September, 01:00 local: the daily run has not moved the horizon yet.
    time.jump_to(t("2027-09-06T23:00:00Z")).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(booked_dates(&series(&w, &s.ride_series_id).await).len(), 6, "before 02:00 local, nothing new");
    // 02:30 local: the horizon is 2 November, the eighth Tuesday.
    time.jump_to(t("2027-09-07T00:30:00Z")).unwrap();
    testkit::eventually("the eighth Tuesday to be booked", Duration::from_secs(30), || async {
        booked_dates(&series(&w, &s.ride_series_id).await).len() == 7
    })
    .await;
    // Four weeks on, the horizon passes the last Tuesday.
    time.jump_to(t("2027-10-05T00:30:00Z")).unwrap();
    testkit::eventually("every Tuesday to be decided", Duration::from_secs(30), || async {
        booked_dates(&series(&w, &s.ride_series_id).await).len() == 11
    })
    .await;
    let s = series(&w, &s.ride_series_id).await;
    assert_eq!(s.booked_through, "2027-11-30");
    assert!(s.occurrences[7..].iter().all(|o| o.status == "booked"));
    // Once each, whoever swept.
    assert_eq!(count(&w, "RideBooked").await, 11, "eleven rides, one per date");
    assert_eq!(count(&w, "RideSeriesOccurrenceBooked").await, 11);
    assert_eq!(count(&w, "RideSeriesOccurrenceSkipped").await, 1, "the closed date recorded once, not retried");

    // Cancelling from the sixth week cancels exactly weeks 6 to 12.
    let cancel = bpb::CancelRideSeriesRequest {
        context: ctx_as("coordinator"),
        ride_series_id: s.ride_series_id.clone(),
        from: "2027-10-19".into(),
        reason: "volunteer".into(),
        note: "Karen moves away".into(),
    };
    let done = w.booking.cancel_ride_series(cancel.clone()).await.unwrap().into_inner();
    assert_eq!(done.cancelled, 7);
    let retried = w.booking.cancel_ride_series(cancel).await.unwrap().into_inner();
    assert_eq!(retried.cancelled, 7, "a retry answers the same number");
    let s = series(&w, &s.ride_series_id).await;
    assert_eq!((s.status.as_str(), s.cancelled_from.as_str()), ("cancelled", "2027-10-19"));
    for (i, o) in s.occurrences.iter().enumerate() {
        if o.ride_id.is_empty() {
            continue;
        }
        let ride = w.ride(&o.ride_id).await;
        let want = if i >= 5 { "cancelled" } else { "booked" };
        assert_eq!(ride.status, want, "week {} ({})", i + 1, o.date);
        if i >= 5 {
            assert_eq!((ride.cancel_reason.as_str(), ride.cancelled_by_role.as_str()), ("volunteer", "coordinator"));
            assert_eq!(ride.cancel_note, "Karen moves away", "the note goes with each ride, sealed under it");
        }
    }
    assert_eq!(count(&w, "RideCancelled").await, 7);
    // The note is sealed: not in the log.
    let plain = w
        .booking_store
        .fetch_i64("SELECT count(*) FROM eventlog_events WHERE CAST(payload AS TEXT) LIKE '%Karen%'", &[])
        .await
        .unwrap();
    assert_eq!(plain, Some(0));
    drop(dir);
}

async fn occurrences_are_rides_to_cascades_and_a_series_stops_at_a_retired_trishaw(mut w: World) {
    let (_dir, time) = test_clock("2027-05-03T06:00:00Z");
    let b = w.basic().await;
    w.settle().await;
    // Mondays and Thursdays at 14:00 local, no end.
    let s =
        w.booking.plan_ride_series(plan(&b, "2027-05-06T12:00:00Z", &[], &["monday", "thursday"], None)).await.unwrap();
    let s = s.into_inner();
    // Through the horizon (28 June): 16 dates, all booked.
    assert_eq!(booked_dates(&s).len(), 16, "{:?}", booked_dates(&s));
    assert_eq!(s.occurrences.len(), 16, "an open series lists its dates through the horizon");
    // One occurrence cancelled as a ride: the series goes on and does not book it again.
    let third = s.occurrences[2].ride_id.clone();
    w.booking
        .cancel_ride(bpb::CancelRideRequest {
            context: ctx(),
            ride_id: third.clone(),
            reason: "rider".into(),
            note: String::new(),
        })
        .await
        .unwrap();
    // A suspended pilot: its future rides, occurrences included, are cancelled.
    w.volunteer
        .suspend_pilot(vpb::PilotCommandRequest { context: ctx(), pilot_id: b.pilot.to_string() })
        .await
        .unwrap();
    w.settle().await;
    testkit::eventually("the occurrences to be cancelled with the pilot's rides", Duration::from_secs(30), || async {
        let s = series(&w, &s.ride_series_id).await;
        s.occurrences.iter().filter(|o| o.status == "cancelled").count() == 16
    })
    .await;
    let ride = w.ride(&s.occurrences[5].ride_id).await;
    assert_eq!((ride.cancel_reason.as_str(), ride.cancelled_by_role.as_str()), ("volunteer", "system"));
    assert_eq!(w.ride(&third).await.cancel_reason, "rider");
    // While suspended, new dates are recorded with their problem.
    time.jump_to(t("2027-05-10T01:00:00Z")).unwrap();
    testkit::eventually("the next dates to be skipped", Duration::from_secs(30), || async {
        let s = series(&w, &s.ride_series_id).await;
        s.occurrences.iter().any(|o| o.problem.as_ref().is_some_and(|p| p.code == "pilot-suspended"))
    })
    .await;
    // A retired trishaw stops the series.
    w.carehome
        .retire_bike(cpb::BikeServiceRequest {
            context: ctx(),
            bike_id: b.bike.to_string(),
            reason: "rusted through".into(),
            expected_back: String::new(),
        })
        .await
        .unwrap();
    w.settle().await;
    testkit::eventually("the series to stop", Duration::from_secs(30), || async {
        let s = series(&w, &s.ride_series_id).await;
        s.status == "cancelled" && s.cancelled_by_role == "system" && s.cancel_reason == "equipment"
    })
    .await;
    let before = count(&w, "RideSeriesOccurrenceSkipped").await + count(&w, "RideSeriesOccurrenceBooked").await;
    time.jump_to(t("2027-05-24T01:00:00Z")).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = count(&w, "RideSeriesOccurrenceSkipped").await + count(&w, "RideSeriesOccurrenceBooked").await;
    assert_eq!(before, after, "a stopped series books nothing more");
}

async fn a_pilots_series_needs_confirmation_and_names_only_riders_it_may(mut w: World) {
    let (_dir, _time) = test_clock("2027-05-03T06:00:00Z");
    let chapter = w.chapter().await;
    // A care home that confirms pilots' bookings and chooses their riders.
    let home = w
        .carehome
        .register_care_home(cpb::RegisterCareHomeRequest {
            context: ctx(),
            chapter_id: chapter.to_string(),
            name: "Egebo".into(),
            address: "Egevej 2".into(),
            timezone: String::new(),
            ride_hours: ["monday", "tuesday", "wednesday", "thursday", "friday"]
                .iter()
                .map(|d| cpb::RideHours { weekday: (*d).into(), opens: "09:00".into(), closes: "17:00".into() })
                .collect(),
            turnaround_minutes: 15,
            requires_confirmation: true,
            pilots_choose_riders: false,
        })
        .await
        .unwrap()
        .into_inner();
    let home: Uuid = home.carehome_id.parse().unwrap();
    let bike = w.bike(home, 2).await;
    let pilot = w.pilot(chapter).await;
    let rider = w.resident(home, &["rides"]).await;
    w.settle().await;
    let b = Basic { chapter, home, bike, pilot };
    let as_pilot = |mut r: bpb::PlanRideSeriesRequest| {
        r.context = ctx_as("pilot");
        r
    };
    // Naming a resident the care home did not name to the pilot: 403, nothing written.
    let refused = w
        .booking
        .plan_ride_series(as_pilot(plan(&b, "2027-05-04T08:00:00Z", &[rider], &["tuesday"], Some(4))))
        .await
        .unwrap_err();
    assert_eq!(code(&refused), ErrorCode::Forbidden);
    assert_eq!(count(&w, "RideSeriesPlanned").await, 0);
    // Without riders: every occurrence waits for the care home's confirmation.
    let s = w
        .booking
        .plan_ride_series(as_pilot(plan(&b, "2027-05-04T08:00:00Z", &[], &["tuesday"], Some(4))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.occurrences.iter().filter(|o| o.status == "pending_confirmation").count(), 4);
    // The start must fall on one of the weekdays, in the care home's zone.
    let wrong =
        w.booking.plan_ride_series(plan(&b, "2027-05-04T08:00:00Z", &[], &["wednesday"], Some(4))).await.unwrap_err();
    assert_eq!(code(&wrong), ErrorCode::Validation);
    assert!(wrong.message().contains("/recurrence/weekdays"), "{}", wrong.message());
    assert_eq!(count(&w, "RideSeriesPlanned").await, 1);
}

/// Six retries of one create at once make one series with each date booked once; two
/// series planned at once for one trishaw at overlapping times never both book a date: of
/// each date one has the ride, the other the `bike-taken` problem naming it.
async fn concurrent_retries_book_each_date_once_and_rival_series_never_share_a_trishaw(mut w: World) {
    let (_dir, _time) = test_clock("2027-05-03T06:00:00Z");
    let b = w.basic().await;
    let other_pilot = w.pilot(b.chapter).await;
    w.settle().await;
    let req = plan(&b, "2027-05-04T08:00:00Z", &[], &["tuesday", "friday"], Some(10));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (mut c, r) = (w.booking.clone(), req.clone());
        tasks.push(tokio::spawn(async move { c.plan_ride_series(r).await.map(|s| s.into_inner()) }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().unwrap().ride_series_id);
    }
    assert_eq!(ids.len(), 1, "one series");
    let s = series(&w, ids.first().unwrap()).await;
    assert_eq!(booked_dates(&s).len(), 10);
    assert_eq!(count(&w, "RideSeriesPlanned").await, 1);
    assert_eq!(count(&w, "RideBooked").await, 10, "each date once");

    // Two rival series on another weekday, 30 minutes apart, at once.
    let first = plan(&b, "2027-05-05T08:00:00Z", &[], &["wednesday"], Some(6));
    let mut second = plan(&b, "2027-05-05T08:30:00Z", &[], &["wednesday"], Some(6));
    second.pilot_id = other_pilot.to_string();
    let (mut c1, mut c2) = (w.booking.clone(), w.booking.clone());
    let (a, z) = tokio::join!(c1.plan_ride_series(first), c2.plan_ride_series(second));
    let (a, z) = (a.unwrap().into_inner(), z.unwrap().into_inner());
    let (a, z) = (series(&w, &a.ride_series_id).await, series(&w, &z.ride_series_id).await);
    for (x, y) in a.occurrences.iter().zip(&z.occurrences) {
        assert_eq!(x.date, y.date);
        let (winner, loser) = match (x.ride_id.is_empty(), y.ride_id.is_empty()) {
            (false, true) => (x, y),
            (true, false) => (y, x),
            other => panic!("{}: exactly one series books the trishaw, got {other:?}", x.date),
        };
        let problem = loser.problem.as_ref().expect("the other date has its problem");
        assert_eq!((problem.code.as_str(), problem.conflict_with.as_str()), ("bike-taken", winner.ride_id.as_str()));
    }
}

/// A create whose booking process is killed (SIGKILL) after its first dates: the retry with
/// the same key, on another process, answers the same series with every date booked once.
async fn a_create_cut_short_by_a_killed_process_completes_on_retry_with_its_key(mut w: World) {
    let (_dir, time) = test_clock("2027-01-04T06:00:00Z");
    // A chapter that books a year ahead.
    let chapter = w
        .carehome
        .register_chapter(cpb::RegisterChapterRequest {
            context: ctx_as("admin"),
            name: "Vejle".into(),
            timezone: "Europe/Copenhagen".into(),
            settings: Some(cpb::ChapterSettings {
                lead_time_minutes: 60,
                default_turnaround_minutes: 15,
                reminder_lead_minutes: vec![60],
                series_horizon_days: Some(365),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let chapter: Uuid = chapter.chapter_id.parse().unwrap();
    let home = w.home(chapter, false).await;
    let b = Basic { chapter, home, bike: w.bike(home, 2).await, pilot: w.pilot(chapter).await };
    w.settle().await;
    let port = free_port();
    let mut process = spawn_booking(&w, port, Some(time.path()));
    let mut client = answering(port).await;
    // Every day at 10:00, 260 times: all inside the horizon, booked by the create.
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let req = plan(&b, "2027-01-05T09:00:00Z", &[], &days, Some(260));
    let first = req.clone();
    let cut = tokio::spawn(async move { client.plan_ride_series(first).await });
    testkit::eventually("the first dates to be booked", Duration::from_secs(60), || async {
        count(&w, "RideSeriesOccurrenceBooked").await > 0
    })
    .await;
    process.0.start_kill().unwrap();
    process.0.wait().await.unwrap();
    assert!(cut.await.unwrap().is_err(), "the create was cut short");
    let booked = count(&w, "RideSeriesOccurrenceBooked").await;
    assert!(booked < 260, "killed part-way: {booked} of 260 dates booked");
    // The retry (the client's, with its key) on the in-process service.
    let s = w.booking.plan_ride_series(req).await.unwrap().into_inner();
    assert_eq!(booked_dates(&s).len(), 260, "the retry booked the rest");
    assert_eq!(count(&w, "RideSeriesPlanned").await, 1);
    assert_eq!(count(&w, "RideBooked").await, 260, "every date once");
    assert_eq!(count(&w, "RideSeriesOccurrenceBooked").await, 260);
}
