//! What really happened (api.md → *What really happened*; issue 17, item 2), over HTTP on
//! the real system, both backends: rides recorded after the fact, corrections of completed
//! rides, a reported start, absent riders, no-shows by whom; the counting rule and `as_of`
//! (a record or correction never changes an earlier `as_of` answer); each refusal names its
//! field and writes nothing; and, with the test clock, a record checked against the facts
//! of its own time (a trishaw out of service then, a qualification that has since lapsed,
//! the pilots' record window).

use chrono::{DateTime, Duration, Utc};
use e2e::{Reply, System};
use gateway::Role;
use serde_json::{Value, json};
use uuid::Uuid;

testkit::both_backends!(setup = e2e::System::start;
    records_and_corrections_count_and_never_change_an_earlier_as_of,
    starts_completions_and_no_shows_say_what_really_happened,
    a_record_is_checked_against_the_facts_of_its_own_time,
    one_of_many_concurrent_corrections_of_a_ride_with_the_same_etag_wins,
);

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn figures(r: &Reply) -> (u64, u64, u64) {
    let n = |k: &str| r.body[k].as_u64().unwrap_or_else(|| panic!("no {k} in {}", r.body));
    (n("trips"), n("rides"), n("distinct_residents"))
}

/// The stats once they show `expected` (the rides read model follows the log a moment
/// behind), or the last answer after the default wait.
async fn settled(s: &System, token: &str, home: Uuid, expected: (u64, u64, u64)) -> Reply {
    let mut last = None;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let r = stats(s, token, home, None).await;
            let done = figures(&r) == expected;
            last = Some(r);
            if done {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    last.expect("an answer")
}

async fn stats(s: &System, token: &str, home: Uuid, as_of: Option<DateTime<Utc>>) -> Reply {
    let mut path = format!("/v1/stats?carehome_id={home}");
    if let Some(t) = as_of {
        path.push_str(&format!("&as_of={}", t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)));
    }
    s.get(&path, token).await.expect(200)
}

fn record(bike: Uuid, pilot: Uuid, from: DateTime<Utc>, minutes: i64, riders: &[Uuid]) -> Value {
    json!({"bike_id": bike, "pilot_id": pilot, "started_at": at(from), "ended_at": at(from + Duration::minutes(minutes)),
        "distance_km": 5.5, "resident_ids": riders})
}

async fn records_and_corrections_count_and_never_change_an_earlier_as_of(s: System) {
    let w = s.world().await;
    let (r0, r1) = (w.residents[0], w.residents[1]);
    let pilot = s.token(Role::Pilot(w.pilot));
    let coord = s.token(Role::Coordinator(w.home));
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let now = Utc::now();
    assert_eq!(figures(&stats(&s, &admin, w.home, None).await), (0, 0, 0));

    // Refused, naming the field, and nothing written.
    let heads = s.quiet().await;
    let base = record(w.bike, w.pilot, now - Duration::hours(3), 60, &[r0, r1]);
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"started_at": at(now + Duration::hours(1)), "ended_at": at(now + Duration::hours(2))}),
            400,
            "validation",
            "/started_at",
        ),
        (json!({"ended_at": at(now - Duration::hours(3))}), 400, "validation", "/ended_at"),
        (json!({"ended_at": at(now - Duration::hours(4))}), 400, "validation", "/ended_at"),
        (
            json!({"started_at": at(now - Duration::hours(30)), "ended_at": at(now - Duration::hours(3))}),
            400,
            "validation",
            "/ended_at",
        ),
        (json!({"kind": "functional"}), 400, "validation", "/kind"),
        (json!({"distance_km": -1}), 400, "validation", "/distance_km"),
        (json!({"absent_resident_ids": [Uuid::new_v4()]}), 422, "not-on-roster", ""),
        (json!({"absent_resident_ids": [r0, r1]}), 422, "all-riders-absent", ""),
    ];
    for (change, status, code, field) in cases {
        let mut body = base.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = s.post("/v1/ride-records", &pilot, body.clone()).await.expect(status);
        assert_eq!(r.code(), code, "{body}: {}", r.body);
        if !field.is_empty() {
            assert_eq!(r.body["errors"][0]["field"], field, "{body}: {}", r.body);
        }
    }
    // Another pilot's ride is not a pilot's to record; an integrator records nothing.
    let other = s.pilot(w.chapter).await;
    let theirs = record(w.bike, other, now - Duration::hours(3), 60, &[r0]);
    s.post("/v1/ride-records", &pilot, theirs).await.expect(403);
    s.post("/v1/ride-records", &s.token(Role::Integrator(Some(w.chapter))), base.clone()).await.expect(403);
    // `other` was registered meanwhile: compare the logs of booking and volunteer only.
    let after = s.quiet().await;
    assert_eq!((&after[0], &after[2]), (&heads[0], &heads[2]), "refused records write nothing");

    // Recorded: completed, counted by the counting rule; its trishaw hours are its length.
    let t1 = Utc::now();
    let made = s.post("/v1/ride-records", &pilot, base.clone()).await.expect(201);
    let ride = made.str("ride_id");
    assert_eq!(made.header("location"), Some(format!("/v1/rides/{ride}")));
    assert_eq!((made.str("status"), made.body["recorded"].clone()), ("completed".into(), json!(true)));
    let s1 = settled(&s, &admin, w.home, (1, 2, 2)).await;
    assert_eq!(figures(&s1), (1, 2, 2), "{}", s1.body);
    assert_eq!(s1.body["bike_minutes"], 60);
    // The same trishaw at an overlapping actual time: 409 naming the recorded ride, and
    // nothing written.
    let overlapping = record(w.bike, other, now - Duration::minutes(150), 60, &[]);
    let r = s.post("/v1/ride-records", &coord, overlapping).await.expect(409);
    assert_eq!((r.code(), r.str("conflict_with")), ("bike-taken", ride.clone()), "{}", r.body);

    // Corrected: r1 was absent after all; the note stays sealed and the audit names fields.
    let t2 = Utc::now();
    let path = format!("/v1/rides/{ride}/corrections");
    let r = s.post(&path, &pilot, json!({"absent_resident_ids": [Uuid::new_v4()]})).await.expect(422);
    assert_eq!(r.code(), "not-on-roster");
    let r = s.post(&path, &pilot, json!({"ended_at": at(now - Duration::hours(4))})).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/ended_at");
    let fixed = s
        .post(&path, &pilot, json!({"absent_resident_ids": [r1], "distance_km": 4.0, "note": "Bo was ill that day"}))
        .await
        .expect(200);
    assert_eq!(fixed.body["absent_resident_ids"], json!([r1.to_string()]), "{}", fixed.body);
    assert_eq!(fixed.body["distance_km"], 4.0);
    let read = s.get(&format!("/v1/rides/{ride}"), &coord).await.expect(200);
    assert_eq!(read.body["notes"], json!(["Bo was ill that day"]), "{}", read.body);
    let feed = s.get("/v1/events?limit=500", &s.admin()).await.expect(200);
    assert!(!feed.body.to_string().contains("Bo was ill"), "the note is sealed");
    assert_eq!(figures(&settled(&s, &admin, w.home, (1, 1, 1)).await), (1, 1, 1), "absent riders count in no figure");

    // `as_of` answers as the log stood: before the record, nothing; between the record and
    // the correction, the record as it was. (On PostgreSQL the log is read up to its head,
    // which lags while a transaction is open anywhere in the cluster: wait for it.)
    s.quiet().await;
    assert_eq!(figures(&stats(&s, &admin, w.home, Some(t1)).await), (0, 0, 0));
    assert_eq!(figures(&stats(&s, &admin, w.home, Some(t2)).await), (1, 2, 2));
    // `[]` clears the absent riders.
    s.post(&path, &coord, json!({"absent_resident_ids": []})).await.expect(200);
    s.quiet().await;
    assert_eq!(figures(&settled(&s, &admin, w.home, (1, 2, 2)).await), (1, 2, 2));
    assert_eq!(figures(&stats(&s, &admin, w.home, Some(t2)).await), (1, 2, 2));
    let audit = s.get(&format!("/v1/audit?object_type=ride&object_id={ride}"), &admin).await.expect(200);
    let text = audit.body.to_string();
    assert!(text.contains("RideRecorded") && text.contains("RideCorrected"), "{text}");
    assert!(!text.contains("Bo was ill"), "{text}");
}

async fn starts_completions_and_no_shows_say_what_really_happened(s: System) {
    use servicekit::clock::{self, TestClockFile};
    // Ride hours are 09–17 in Copenhagen: the system's clock reads 08:00 UTC tomorrow.
    let dir = tempfile::tempdir().unwrap();
    let time = TestClockFile::create(dir.path().join("offset")).unwrap();
    clock::use_test_file(time.path());
    let tomorrow = (Utc::now() + Duration::days(1)).date_naive();
    let eight = tomorrow.and_hms_opt(8, 0, 0).unwrap().and_utc();
    time.jump_to(eight).unwrap();
    let offset = eight - Utc::now();
    let now = move || Utc::now() + offset;
    let w = s.world().await;
    let (r0, r1) = (w.residents[0], w.residents[1]);
    let pilot = s.token(Role::Pilot(w.pilot));
    let coord = s.token(Role::Coordinator(w.home));
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    // A ride whose slot starts 62 minutes from now (the lead time is 60): a start may be
    // reported from 60 minutes before the slot, and up to 5 minutes past now.
    let slot = now() + Duration::minutes(62);
    let body = json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": at(slot), "duration_minutes": 60,
        "resident_ids": [r0, r1]});
    let ride = s.post("/v1/rides", &coord, body).await.expect(201).str("ride_id");
    let start = format!("/v1/rides/{ride}/start");
    let r = s.post(&start, &pilot, json!({"started_at": at(slot - Duration::minutes(61))})).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/started_at");
    let r = s.post(&start, &pilot, json!({"started_at": at(now() + Duration::minutes(10))})).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/started_at");
    s.post(&start, &pilot, json!({"colour": "red"})).await.expect(400);
    let reported = slot - Duration::minutes(59);
    let started = s.post(&start, &pilot, json!({"started_at": at(reported)})).await.expect(200);
    assert_eq!(started.str("started_at"), at(reported));
    // Completed with r1 absent: one ride counted, not two.
    let done = format!("/v1/rides/{ride}/complete");
    let end = at(reported + Duration::minutes(30));
    let r = s.post(&done, &pilot, json!({"ended_at": end, "distance_km": 3.0, "absent_resident_ids": [r0, r1]})).await;
    assert_eq!((r.status.as_u16(), r.code()), (422, "all-riders-absent"), "{}", r.body);
    let r = s.post(&done, &pilot, json!({"ended_at": end, "distance_km": 3.0, "absent_resident_ids": [r1]})).await;
    assert_eq!(r.expect(200).body["absent_resident_ids"], json!([r1.to_string()]));
    let f = settled(&s, &admin, w.home, (1, 1, 1)).await;
    assert_eq!(figures(&f), (1, 1, 1), "{}", f.body);

    // No-shows by whom: a pilot may not say the pilot did not come; the home may.
    let booked = |minutes: i64| {
        json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": at(slot + Duration::days(1) + Duration::minutes(minutes)),
            "duration_minutes": 30, "resident_ids": []})
    };
    let a = s.post("/v1/rides", &coord, booked(0)).await.expect(201).str("ride_id");
    let b = s.post("/v1/rides", &coord, booked(120)).await.expect(201).str("ride_id");
    s.post(&format!("/v1/rides/{a}/no-show"), &pilot, json!({"by": "pilot"})).await.expect(403);
    s.post(&format!("/v1/rides/{a}/no-show"), &coord, json!({"by": "nobody"})).await.expect(400);
    let r = s.post(&format!("/v1/rides/{a}/no-show"), &coord, json!({"by": "pilot"})).await.expect(200);
    assert_eq!(r.str("no_show_by"), "pilot");
    let r = s.call(reqwest::Method::POST, &format!("/v1/rides/{b}/no-show"), Some(&pilot), None).await.expect(200);
    assert_eq!(r.str("no_show_by"), "riders", "the default");
    s.eventually("both no-shows counted", || async { stats(&s, &admin, w.home, None).await.body["no_shows"] == 2 })
        .await;
    let f = stats(&s, &admin, w.home, None).await;
    assert_eq!(f.body["no_shows"], 2);
    assert_eq!(f.body["no_shows_by"], json!({"pilot": 1, "riders": 1}), "{}", f.body);
}

async fn a_record_is_checked_against_the_facts_of_its_own_time(s: System) {
    use servicekit::clock::{self, TestClockFile};
    let dir = tempfile::tempdir().unwrap();
    let time = TestClockFile::create(dir.path().join("offset")).unwrap();
    clock::use_test_file(time.path());
    let w = s.world().await;
    let r0 = w.residents[0];
    let coord = s.token(Role::Coordinator(w.home));
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let pilot = s.token(Role::Pilot(w.pilot));
    let t0 = Utc::now();
    // A second pilot whose qualification runs through tomorrow (Copenhagen is at most two
    // hours ahead of UTC, so "tomorrow" in UTC covers the next hours there too).
    let p2 = s
        .post("/v1/pilots", &admin, json!({"chapter_id": w.chapter, "display_name": "Pia"}))
        .await
        .expect(201)
        .str("pilot_id");
    let p2: Uuid = p2.parse().unwrap();
    let until = (t0 + Duration::days(1)).date_naive();
    s.post(
        &format!("/v1/pilots/{p2}/qualifications"),
        &admin,
        json!({"qualified_on": "2026-01-01", "valid_until": until.to_string()}),
    )
    .await
    .expect(200);
    // A ride booked on a second trishaw for day 2, 08:00 UTC (in ride hours), by the pilot.
    let bike2 = s.bike(w.chapter, w.home, 2).await;
    let slot = (t0 + Duration::days(2)).date_naive().and_hms_opt(8, 0, 0).unwrap().and_utc();
    let booking =
        json!({"bike_id": bike2, "pilot_id": w.pilot, "start": at(slot), "duration_minutes": 60, "resident_ids": []});
    let booked = testkit::eventually("booking to learn the second trishaw", testkit::DEFAULT_TIMEOUT, || async {
        let r = s.post("/v1/rides", &coord, booking.clone()).await;
        (r.status == 201).then(|| r.str("ride_id"))
    })
    .await;
    // The trishaw is out of service from day 1 to day 2.
    time.set_offset_seconds(86_400).unwrap();
    s.post(&format!("/v1/bikes/{}/out-of-service", w.bike), &coord, json!({"reason": "brakes"})).await.expect(200);
    time.set_offset_seconds(2 * 86_400).unwrap();
    s.post(&format!("/v1/bikes/{}/return-to-service", w.bike), &coord, json!({})).await.expect(200);
    time.set_offset_seconds(3 * 86_400).unwrap();
    s.quiet().await;

    // Out of service then: 422, though it is in service now.
    let r = s.post("/v1/ride-records", &coord, record(w.bike, w.pilot, t0 + Duration::hours(36), 60, &[r0])).await;
    assert_eq!((r.status.as_u16(), r.code()), (422, "bike-out-of-service"), "{}", r.body);
    // In service then: 201.
    s.post("/v1/ride-records", &pilot, record(w.bike, w.pilot, t0 + Duration::hours(60), 60, &[r0])).await.expect(201);
    // A qualification valid then, lapsed since: 201; after it lapsed: 422.
    s.post("/v1/ride-records", &coord, record(w.bike, p2, t0 + Duration::hours(1), 30, &[])).await.expect(201);
    let r = s.post("/v1/ride-records", &coord, record(w.bike, p2, t0 + Duration::hours(62), 30, &[])).await;
    assert_eq!((r.status.as_u16(), r.code()), (422, "not-qualified"), "{}", r.body);

    // A record on the second trishaw overlapping the ride booked there (whose time has
    // come): 409 naming it.
    let p3 = s.pilot(w.chapter).await;
    s.quiet().await;
    let r = s.post("/v1/ride-records", &coord, record(bike2, p3, slot + Duration::minutes(10), 30, &[])).await;
    assert_eq!((r.status.as_u16(), r.code(), r.str("conflict_with")), (409, "bike-taken", booked), "{}", r.body);

    // The pilots' record window (14 days by default): older is the coordinator's to record
    // (and before the trishaw, pilot and rider were registered, they count as registered).
    let old = Utc::now() + Duration::days(3) - Duration::days(15);
    let r = s.post("/v1/ride-records", &pilot, record(w.bike, w.pilot, old, 60, &[r0])).await;
    assert_eq!((r.status.as_u16(), r.code()), (422, "outside-record-window"), "{}", r.body);
    s.post("/v1/ride-records", &coord, record(w.bike, w.pilot, old, 60, &[r0])).await.expect(201);

    // Where the home chooses the riders, a pilot's record may not name one: 403.
    let home = format!("/v1/carehomes/{}", w.home);
    s.patch(&home, &admin, Some("*"), json!({"pilots_choose_riders": false})).await.expect(200);
    s.quiet().await;
    let recent = Utc::now() + Duration::days(3) - Duration::hours(5);
    let r = s.post("/v1/ride-records", &pilot, record(w.bike, w.pilot, recent, 30, &[r0])).await.expect(403);
    assert_eq!(r.code(), "forbidden");
    s.post("/v1/ride-records", &pilot, record(w.bike, w.pilot, recent, 30, &[])).await.expect(201);
}

async fn one_of_many_concurrent_corrections_of_a_ride_with_the_same_etag_wins(s: System) {
    let w = s.world().await;
    let coord = s.token(Role::Coordinator(w.home));
    let made = s
        .post("/v1/ride-records", &coord, record(w.bike, w.pilot, Utc::now() - Duration::hours(5), 60, &w.residents))
        .await
        .expect(201);
    let tag = made.header("etag").expect("an ETag");
    let path = format!("/v1/rides/{}/corrections", made.str("ride_id"));
    let answers = futures_util::future::join_all((0..32).map(|i| {
        let (s, path, coord, tag) = (&s, &path, &coord, &tag);
        async move {
            let body = json!({"distance_km": 1.0 + f64::from(i) / 10.0});
            s.call_with(reqwest::Method::POST, path, Some(coord), Some(body), &[("if-match", tag)])
                .await
                .status
                .as_u16()
        }
    }))
    .await;
    let ok = answers.iter().filter(|c| **c == 200).count();
    let stale = answers.iter().filter(|c| **c == 412).count();
    assert_eq!((ok, stale), (1, 31), "{answers:?}");
}
