//! Ride series over REST (api.md → *Scheduling*), on both backends: a pilot plans a weekly
//! series inside the chapter's horizon; the dates are booked as rides carrying the series'
//! id, a date whose trishaw is taken is listed with its problem and the ride it would have
//! overlapped, and 201 comes back with `Location` and `ETag`; a replay with the same key
//! answers the same series; the series is read and listed by its people (a pilot sees only
//! its own, a care home's list needs `carehome_id`); cancelling it from a date cancels the
//! rides from then on and answers how many.

use chrono::{Datelike, Duration, Utc};
use e2e::System;
use gateway::Role;
use reqwest::Method;
use serde_json::{Value, json};

testkit::both_backends!(setup = e2e::System::start; a_series_is_planned_read_listed_and_cancelled);

const DAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

fn items(r: &e2e::Reply) -> Vec<Value> {
    r.body["items"].as_array().cloned().unwrap_or_default()
}

async fn a_series_is_planned_read_listed_and_cancelled(s: System) {
    let w = s.world().await;
    let other = s.pilot(w.chapter).await;
    s.quiet().await; // booking knows the second pilot
    let pilot = s.token(Role::Pilot(w.pilot));
    let coord = s.token(Role::Coordinator(w.home));

    // Three weekly dates from eight days ahead, at 11:00 UTC (midday in Copenhagen, inside
    // the ride hours whatever the season): well inside the default 56-day horizon.
    let first = (Utc::now() + Duration::days(8)).date_naive();
    let at = |weeks: i64| format!("{}T11:00:00Z", first + Duration::weeks(weeks));
    let weekday = DAYS[first.weekday().num_days_from_monday() as usize];
    // The second date's slot is taken on the trishaw by another pilot's ride.
    let taken = s
        .post(
            "/v1/rides",
            &coord,
            json!({"bike_id": w.bike, "pilot_id": other, "start": at(1), "duration_minutes": 60, "resident_ids": []}),
        )
        .await
        .expect(201)
        .str("ride_id");

    let plan = json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": at(0), "duration_minutes": 60,
        "resident_ids": [w.residents[0]], "recurrence": {"weekdays": [weekday], "count": 3}});
    let key = [("idempotency-key", "series-journey-1")];
    let created =
        s.call_with(Method::POST, "/v1/ride-series", Some(&pilot), Some(plan.clone()), &key).await.expect(201);
    let id = created.str("ride_series_id");
    assert_eq!(created.header("location"), Some(format!("/v1/ride-series/{id}")));
    assert_eq!(created.header("etag"), Some(format!("\"{}\"", created.body["version"])));
    let b = &created.body;
    assert_eq!((b["pilot_id"].clone(), b["carehome_id"].clone()), (json!(w.pilot), json!(w.home)));
    assert_eq!(b["recurrence"], json!({"weekdays": [weekday], "interval_weeks": 1, "count": 3}));
    assert_eq!(b["status"], "active", "{b}");
    assert_eq!(b["kind"], "pleasure");
    for absent in ["cancelled_from", "cancel_reason", "cancelled_by_role", "trip_minutes"] {
        assert!(b.get(absent).is_none(), "{absent} in {b}");
    }
    let occurrences = b["occurrences"].as_array().cloned().unwrap_or_default();
    let dates: Vec<String> = (0..3).map(|k| (first + Duration::weeks(k)).to_string()).collect();
    assert_eq!(occurrences.iter().map(|o| o["date"].as_str().unwrap_or("").to_owned()).collect::<Vec<_>>(), dates);
    let (one, two, three) = (&occurrences[0], &occurrences[1], &occurrences[2]);
    assert_eq!(one["start"], at(0));
    for booked in [one, three] {
        assert_eq!(booked["status"], "booked", "{booked}");
        assert!(booked.get("problem").is_none(), "{booked}");
    }
    assert!(two.get("ride_id").is_none() && two.get("status").is_none(), "{two}");
    assert_eq!(two["problem"], json!({"code": "bike-taken", "conflict_with": taken}));

    // Each booked date is a ride of the series.
    let ride_one = one["ride_id"].as_str().expect("a ride").to_owned();
    let ride_three = three["ride_id"].as_str().expect("a ride").to_owned();
    let ride = s.get(&format!("/v1/rides/{ride_one}"), &pilot).await.expect(200);
    assert_eq!((ride.str("ride_series_id"), ride.str("start")), (id.clone(), at(0)));
    let plain = s.get(&format!("/v1/rides/{taken}"), &coord).await.expect(200);
    assert!(plain.body.get("ride_series_id").is_none(), "{}", plain.body);

    // A replay with the same key is the same answer; reading it back is the same series.
    let again = s.call_with(Method::POST, "/v1/ride-series", Some(&pilot), Some(plan), &key).await.expect(201);
    assert_eq!(again.body, created.body);
    let read = s.get(&format!("/v1/ride-series/{id}"), &coord).await.expect(200);
    assert_eq!(read.body, created.body);
    assert_eq!(read.header("etag"), created.header("etag"));
    let stranger = s.token(Role::Pilot(other));
    let unknown = s.get(&format!("/v1/ride-series/{}", uuid::Uuid::now_v7()), &stranger).await.expect(404);
    assert_eq!(s.get(&format!("/v1/ride-series/{id}"), &stranger).await.expect(404).body, unknown.body);

    // Lists: the home's people see it, another pilot sees none of it; the home is required.
    let list = format!("/v1/ride-series?carehome_id={}", w.home);
    s.eventually("the series to be listed", || async {
        items(&s.get(&list, &coord).await.expect(200)).iter().any(|x| x["ride_series_id"] == id.as_str())
    })
    .await;
    let mine = s.get(&list, &pilot).await.expect(200);
    assert_eq!(items(&mine).len(), 1, "{}", mine.body);
    assert!(items(&s.get(&list, &stranger).await.expect(200)).is_empty());
    let missing = s.get("/v1/ride-series", &coord).await.expect(400);
    assert_eq!(missing.body["errors"][0]["field"], "/carehome_id", "{}", missing.body);
    let paged = s.get(&format!("{list}&limit=1"), &coord).await.expect(200);
    assert_eq!(items(&paged).len(), 1);

    // Another pilot may not cancel it (it cannot read it); its own pilot cancels it from
    // the third date: that ride is cancelled, the first stays booked.
    let cancel = format!("/v1/ride-series/{id}/cancel");
    let from = dates[2].clone();
    s.post(&cancel, &stranger, json!({"from": from, "reason": "rider"})).await.expect(404);
    let done = s.post(&cancel, &pilot, json!({"from": from, "reason": "rider", "note": "Sommerhus"})).await.expect(200);
    assert_eq!(done.body["cancelled"], 1, "{}", done.body);
    assert_eq!(done.str("ride_series_id"), id);
    let series = &done.body["ride_series"];
    assert_eq!((series["status"].clone(), series["cancelled_from"].clone()), (json!("cancelled"), json!(from)));
    assert_eq!(
        (series["cancel_reason"].clone(), series["cancelled_by_role"].clone()),
        (json!("rider"), json!("pilot"))
    );
    let third = s.get(&format!("/v1/rides/{ride_three}"), &pilot).await.expect(200);
    assert_eq!((third.str("status"), third.str("cancel_reason")), ("cancelled".to_owned(), "rider".to_owned()));
    assert_eq!(s.get(&format!("/v1/rides/{ride_one}"), &pilot).await.expect(200).str("status"), "booked");
    // The cancellation's note travels with the ride it cancelled, for those who see notes.
    assert_eq!(third.str("cancel_note"), "Sommerhus");

    // The series' audit trail: who planned, what became of each date, who cancelled; in
    // words without the note.
    let cadmin = s.token(Role::ChapterAdmin(w.chapter));
    let trail = s.get(&format!("/v1/audit?object_type=ride_series&object_id={id}"), &cadmin).await.expect(200);
    let types: Vec<&str> = trail.body["items"].as_array().unwrap().iter().filter_map(|i| i["type"].as_str()).collect();
    assert_eq!(types.first(), Some(&"RideSeriesPlanned"), "{}", trail.body);
    assert!(types.contains(&"RideSeriesOccurrenceSkipped") && types.contains(&"RideSeriesCancelled"), "{types:?}");
    assert!(!trail.body.to_string().contains("Sommerhus"));
    s.get(&format!("/v1/audit?object_type=ride_series&object_id={id}"), &pilot).await.expect(403);
}
