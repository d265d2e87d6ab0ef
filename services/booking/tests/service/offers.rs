//! Candidates and offers of ride requests (issue 21), on both backends and the test clock:
//! a table of pilots ranked exactly with their free intervals; offers widening after 24 h
//! to the next candidates only; a window within 24 h offered to every candidate at once; a
//! claimed request offered nothing more.

use std::time::Duration;

use crate::common::*;
use samskab_proto::booking::v1 as bpb;
use samskab_proto::carehome::v1 as cpb;
use samskab_proto::volunteer::v1 as vpb;
use servicekit::clock::{self, TestClockFile};
use uuid::Uuid;

testkit::both_backends!(setup = World::new;
    a_table_of_pilots_is_ranked_exactly_and_offers_widen_daily_until_claimed,
    pilots_whose_facts_predate_availability_get_it_from_the_backfill,
);

fn test_clock(at: &str) -> (tempfile::TempDir, TestClockFile) {
    let dir = tempfile::tempdir().unwrap();
    let time = TestClockFile::create(dir.path().join("offset")).unwrap();
    clock::use_test_file(time.path());
    time.jump_to(t(at)).unwrap();
    (dir, time)
}

/// The pilots offered a request, round by round.
async fn offers(w: &World, request: &str) -> Vec<Vec<String>> {
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
            v["pilot_ids"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect()
        })
        .collect()
}

async fn declare(w: &mut World, pilot: Uuid, days: &[&str], homes: &[Uuid]) {
    w.volunteer
        .declare_availability(vpb::DeclareAvailabilityRequest {
            context: ctx(),
            pilot_id: pilot.to_string(),
            availability: Some(vpb::Availability {
                weekly: days
                    .iter()
                    .map(|d| vpb::WeeklyWindow { weekday: (*d).into(), from: "08:00".into(), to: "12:00".into() })
                    .collect(),
                carehome_ids: homes.iter().map(Uuid::to_string).collect(),
            }),
        })
        .await
        .unwrap();
}

/// A candidate as the test compares it: pilot id, free intervals, recent rides.
type Row = (String, Vec<(String, String)>, u32);

async fn candidates(w: &World, request: &str) -> Vec<Row> {
    let c = w
        .booking
        .clone()
        .ride_request_candidates(bpb::RideRequestCandidatesRequest { ride_request_id: request.into() })
        .await
        .unwrap()
        .into_inner();
    let at = |t: &Option<prost_types::Timestamp>| {
        samskab_proto::time::from_proto(t.as_ref().unwrap()).unwrap().format("%Y-%m-%dT%H:%MZ").to_string()
    };
    c.candidates
        .into_iter()
        .map(|c| (c.pilot_id, c.free.iter().map(|f| (at(&f.start), at(&f.end))).collect(), c.rides_last_30_days))
        .collect()
}

async fn a_table_of_pilots_is_ranked_exactly_and_offers_widen_daily_until_claimed(mut w: World) {
    // Monday 6 September 2027, 08:00 in Copenhagen (UTC+2).
    let (_dir, time) = test_clock("2027-09-06T06:00:00Z");
    let chapter = w.chapter().await;
    w.carehome
        .change_chapter_settings(cpb::ChangeChapterSettingsRequest {
            context: ctx_as("admin"),
            chapter_id: chapter.to_string(),
            settings: Some(cpb::ChapterSettings {
                lead_time_minutes: 60,
                default_turnaround_minutes: 15,
                reminder_lead_minutes: vec![60],
                offer_fanout: Some(2),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let home = w.home(chapter, false).await;
    let other_home = w.home(chapter, false).await;
    let bike = w.bike(home, 2).await;
    let rider = w.resident(home, &["rides"]).await;
    // Five pilots free on Monday and Friday mornings (08:00-12:00 local), and four who are not candidates.
    let mut good = Vec::new();
    for _ in 0..5 {
        let p = w.pilot(chapter).await;
        declare(&mut w, p, &["monday", "friday"], &[]).await;
        good.push(p);
    }
    let (a, b, c, d, e) = (good[0], good[1], good[2], good[3], good[4]);
    // c chose this home (and another).
    declare(&mut w, c, &["monday", "friday"], &[other_home, home]).await;
    let suspended = w.pilot(chapter).await;
    declare(&mut w, suspended, &["monday", "friday"], &[]).await;
    w.volunteer
        .suspend_pilot(vpb::PilotCommandRequest { context: ctx(), pilot_id: suspended.to_string() })
        .await
        .unwrap();
    let elsewhere = w.pilot(chapter).await;
    declare(&mut w, elsewhere, &["monday", "friday"], &[other_home]).await;
    let thursdays = w.pilot(chapter).await;
    declare(&mut w, thursdays, &["thursday"], &[]).await;
    let lapsing = w.pilot_until(chapter, "2027-09-09").await;
    declare(&mut w, lapsing, &["monday", "friday"], &[]).await;
    let undeclared = w.pilot(chapter).await;
    w.settle().await;
    let _ = undeclared;

    // e completed a ride last week; d has a ride on Friday 09:30-10:00 local.
    w.booking
        .record_ride(bpb::RecordRideRequest {
            context: ctx(),
            bike_id: bike.to_string(),
            pilot_id: e.to_string(),
            started_at: ts("2027-09-01T08:00:00Z"),
            ended_at: ts("2027-09-01T09:00:00Z"),
            distance_km: 5.0,
            resident_ids: vec![rider.to_string()],
            ..Default::default()
        })
        .await
        .unwrap();
    w.book(bike, d, "2027-09-10T07:30:00Z", 30, &[]).await.unwrap();
    w.settle().await;

    // Friday 10 September, 09:00-13:00 local (UTC+2), an hour's ride: four days ahead.
    let r = w.request_ride(home, &[rider], ("2027-09-10T07:00:00Z", "2027-09-10T11:00:00Z"), 60, "").await;
    let mut first: Vec<Uuid> = vec![a, b, c, d];
    first.sort();
    let s = |p: Uuid| p.to_string();
    let free = |from: &str, to: &str| vec![(from.to_owned(), to.to_owned())];
    let mut want: Vec<Row> = first
        .iter()
        .map(|p| {
            // Availability ∩ window ∩ ride hours: 09:00-12:00 local; d's ride 09:30-10:00
            // with 15 min turnaround either side leaves 10:15-12:00.
            if *p == d {
                (s(*p), free("2027-09-10T08:15Z", "2027-09-10T10:00Z"), 0)
            } else {
                (s(*p), free("2027-09-10T07:00Z", "2027-09-10T10:00Z"), 0)
            }
        })
        .collect();
    want.push((s(e), free("2027-09-10T07:00Z", "2027-09-10T10:00Z"), 1));
    assert_eq!(candidates(&w, &r.ride_request_id).await, want, "ranked by recent rides, ties by id");
    let ranked: Vec<String> = want.iter().map(|c| c.0.clone()).collect();

    // Offered at once to the first two.
    assert_eq!(offers(&w, &r.ride_request_id).await, vec![ranked[..2].to_vec()]);
    // 23 hours on: nothing new.
    time.jump_to(t("2027-09-07T05:00:00Z")).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(offers(&w, &r.ride_request_id).await.len(), 1, "no second round before 24 h");
    // 24 hours on: the next two only.
    time.jump_to(t("2027-09-07T06:01:00Z")).unwrap();
    testkit::eventually("the second round", testkit::DEFAULT_TIMEOUT, || async {
        offers(&w, &r.ride_request_id).await.len() == 2
    })
    .await;
    assert_eq!(offers(&w, &r.ride_request_id).await, vec![ranked[..2].to_vec(), ranked[2..4].to_vec()]);
    // Claimed by one offered first; a day later nothing more is offered.
    w.booking
        .claim_ride_request(bpb::ClaimRideRequestRequest {
            context: ctx_as("pilot"),
            ride_request_id: r.ride_request_id.clone(),
            pilot_id: ranked[0].clone(),
            bike_id: bike.to_string(),
            start: ts("2027-09-10T08:30:00Z"),
        })
        .await
        .unwrap();
    time.jump_to(t("2027-09-08T06:01:00Z")).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(offers(&w, &r.ride_request_id).await.len(), 2, "a claimed request is offered no more");

    // A window starting within 24 h (Monday 13 September, 10:00-13:00 local, posted at 07:00).
    time.jump_to(t("2027-09-13T05:00:00Z")).unwrap();
    let soon = w.request_ride(home, &[rider], ("2027-09-13T08:00:00Z", "2027-09-13T11:00:00Z"), 60, "").await;
    let all = offers(&w, &soon.ride_request_id).await;
    assert_eq!(all.len(), 1, "one round");
    let mut everyone = all[0].clone();
    everyone.sort();
    let mut want: Vec<String> = good.iter().map(|p| p.to_string()).collect();
    want.sort();
    assert_eq!(everyone, want, "every candidate at once");
    // The sweep offers it no second time.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(offers(&w, &soon.ride_request_id).await.len(), 1);
    assert_eq!(
        w.booking_store
            .fetch_i64("SELECT count(*) FROM eventlog_events WHERE event_type = 'RideRequestOffered'", &[])
            .await
            .unwrap(),
        Some(3)
    );
}

/// A pilot fact stored before booking learnt availability (as an upgraded database has
/// them) holds none: the backfill follower reads the volunteer feed from its start and
/// gives it the pilot's declaration, so the pilot becomes a candidate again.
async fn pilots_whose_facts_predate_availability_get_it_from_the_backfill(mut w: World) {
    let b = w.basic().await;
    let rider = w.resident(b.home, &["rides"]).await;
    declare(&mut w, b.pilot, &["monday"], &[]).await;
    w.settle().await;
    // Monday 3 May 2027, 09:00-13:00 in Copenhagen.
    let r = w.request_ride(b.home, &[rider], ("2027-05-03T07:00:00Z", "2027-05-03T11:00:00Z"), 60, "").await;
    let id = r.ride_request_id.clone();
    let pilot = b.pilot.to_string();
    let listed = |rows: Vec<Row>| rows.into_iter().map(|r| r.0).collect::<Vec<_>>();
    testkit::eventually("the pilot to be a candidate", testkit::DEFAULT_TIMEOUT, || async {
        listed(candidates(&w, &id).await) == vec![pilot.clone()]
    })
    .await;

    // The fact as an older booking stored it: no availability; the backfill not yet run.
    let sql = "SELECT doc FROM booking_facts WHERE kind = 'pilot' AND id = $1";
    let doc = w.booking_store.fetch_texts(sql, &[pilot.as_str().into()]).await.unwrap().remove(0);
    let mut old: serde_json::Value = serde_json::from_str(&doc).unwrap();
    for field in ["weekly", "carehome_ids", "availability_version"] {
        old.as_object_mut().unwrap().remove(field);
    }
    let old = old.to_string();
    w.booking_store
        .transaction(move |tx| {
            let (old, pilot) = (old.clone(), pilot.clone());
            Box::pin(async move {
                tx.execute(
                    "UPDATE booking_facts SET doc = $1 WHERE kind = 'pilot' AND id = $2",
                    &[old.as_str().into(), pilot.as_str().into()],
                )
                .await?;
                tx.execute(
                    "DELETE FROM eventlog_checkpoints WHERE consumer = 'booking_facts_volunteer_availability'",
                    &[],
                )
                .await
            })
        })
        .await
        .unwrap();
    assert!(candidates(&w, &id).await.is_empty(), "a fact without availability is no candidate");

    // Booking starts again: the backfill reads the feed from its start.
    let w = w.reopen().await;
    let pilot = b.pilot.to_string();
    testkit::eventually("the backfill to restore the pilot's availability", testkit::DEFAULT_TIMEOUT, || async {
        listed(candidates(&w, &id).await) == vec![pilot.clone()]
    })
    .await;
}
