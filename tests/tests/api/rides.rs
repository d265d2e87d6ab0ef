//! Rides over REST, on the real system: the pilot's and coordinator's journeys through a
//! ride's life cycle, who may see and do what, idempotency, If-Match, conflicts, the
//! booking rules' codes, hostile input, and a restart in the middle.

use e2e::{System, World};
use gateway::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

testkit::both_backends!(setup = e2e::System::start;
    a_pilot_books_reads_and_cancels_a_ride,
    a_ride_runs_its_life_cycle_with_roster_and_story,
    only_the_rides_people_see_them,
    a_retried_post_answers_the_same_and_another_body_is_refused,
    if_match_guards_a_ride,
    conflicts_and_rules_answer_with_their_codes,
    hostile_bodies_get_exact_problems_and_write_nothing,
    a_suspended_pilot_reads_but_cannot_book,
    a_suspended_pilot_reports_issues_but_grounds_nothing,
    another_chapters_pilot_is_not_there,
    lists_page_and_refuse_big_limits,
    a_restart_keeps_everything,
);

fn book_body(w: &World, start: &str) -> Value {
    json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": start, "duration_minutes": 60, "resident_ids": [w.residents[0]]})
}

async fn a_pilot_books_reads_and_cancels_a_ride(s: System) {
    let w = s.world().await;
    let pilot = s.token(Role::Pilot(w.pilot));
    let r = s.post("/v1/rides", &pilot, book_body(&w, "2027-05-03T10:00:00+02:00")).await.expect(201);
    let id = r.str("ride_id");
    assert_eq!(r.header("location"), Some(format!("/v1/rides/{id}")));
    assert_eq!(r.header("etag").as_deref(), Some("\"1\""));
    assert_eq!(r.str("status"), "booked");
    assert_eq!(r.str("start"), "2027-05-03T08:00:00Z", "input in any offset, output UTC");
    assert_eq!(r.body["riders"][0]["display_name"], "Ærø Østergård", "the ride's pilot sees its riders' names");
    assert!(r.header("x-trace-id").is_some_and(|t| t.len() == 32));
    let got = s.get(&format!("/v1/rides/{id}"), &pilot).await.expect(200);
    assert_eq!(got.body["ride_id"], r.body["ride_id"]);
    let c = s
        .post(&format!("/v1/rides/{id}/cancel"), &pilot, json!({"reason": "rider", "note": "forkølet"}))
        .await
        .expect(200);
    assert_eq!(
        (c.str("status"), c.str("cancel_reason"), c.str("cancel_note")),
        ("cancelled".into(), "rider".into(), "forkølet".into())
    );
    assert_eq!(c.str("cancelled_by_role"), "pilot");
    let again = s.post(&format!("/v1/rides/{id}/cancel"), &pilot, json!({"reason": "rider"})).await.expect(409);
    assert_eq!(again.code(), "illegal-transition");
}

async fn a_ride_runs_its_life_cycle_with_roster_and_story(s: System) {
    let w = s.world().await;
    let (pilot, coord) = (s.token(Role::Pilot(w.pilot)), s.token(Role::Coordinator(w.home)));
    let r = s.post("/v1/rides", &coord, book_body(&w, "2027-05-04T08:00:00Z")).await.expect(201);
    let id = r.str("ride_id");
    let two =
        s.post(&format!("/v1/rides/{id}/roster"), &coord, json!({"resident_id": w.residents[1]})).await.expect(200);
    assert_eq!(two.body["riders"].as_array().unwrap().len(), 2);
    let one = s.delete(&format!("/v1/rides/{id}/roster/{}", w.residents[1]), &pilot).await.expect(200);
    assert_eq!(one.body["riders"].as_array().unwrap().len(), 1);
    s.post(&format!("/v1/rides/{id}/confirm"), &coord, json!({})).await.expect(409);
    s.post(&format!("/v1/rides/{id}/start"), &coord, json!({})).await.expect(403);
    s.post(&format!("/v1/rides/{id}/start"), &pilot, json!({})).await.expect(200);
    let checked =
        s.post(&format!("/v1/rides/{id}/roster/{}/check-in", w.residents[0]), &pilot, json!({})).await.expect(200);
    assert_eq!(checked.body["riders"][0]["checked_in"], true);
    let done = s
        .post(
            &format!("/v1/rides/{id}/complete"),
            &pilot,
            json!({"ended_at": "2027-05-04T08:55:00Z", "distance_km": 7.5, "story": "Vi så havnen"}),
        )
        .await
        .expect(200);
    assert_eq!((done.str("status"), done.body["distance_km"].as_f64()), ("completed".into(), Some(7.5)));
    assert_eq!(done.str("story"), "Vi så havnen");
    s.post(&format!("/v1/rides/{id}/no-show"), &coord, json!({})).await.expect(409);
}

async fn only_the_rides_people_see_them(s: System) {
    let w = s.world().await;
    let other_pilot = s.pilot(w.chapter).await;
    let foreign = s.chapter().await;
    let r =
        s.post("/v1/rides", &s.token(Role::Pilot(w.pilot)), book_body(&w, "2027-05-05T08:00:00Z")).await.expect(201);
    let id = r.str("ride_id");
    let path = format!("/v1/rides/{id}");
    for (role, status) in [
        (Role::Admin, 200),
        (Role::ChapterAdmin(w.chapter), 200),
        (Role::Coordinator(w.home), 200),
        (Role::Pilot(w.pilot), 200),
        (Role::Pilot(other_pilot), 404),
        (Role::ChapterAdmin(foreign), 404),
        (Role::Integrator(Some(w.chapter)), 404),
    ] {
        s.get(&path, &s.token(role)).await.expect(status);
    }
    // An unknown id looks exactly like a foreign one.
    let unknown =
        s.get(&format!("/v1/rides/{}", Uuid::now_v7()), &s.token(Role::ChapterAdmin(foreign))).await.expect(404);
    let foreign_reply = s.get(&path, &s.token(Role::ChapterAdmin(foreign))).await.expect(404);
    assert_eq!(unknown.body, foreign_reply.body);
    // Another pilot of the chapter may not cancel it (cannot even see it); the coordinator may.
    s.post(&format!("{path}/cancel"), &s.token(Role::Pilot(other_pilot)), json!({"reason": "rider"})).await.expect(404);
    s.post(&format!("{path}/confirm"), &s.token(Role::Pilot(w.pilot)), json!({})).await.expect(403);
    // Names only for those allowed: the chapter admin sees them.
    let admin_view = s.get(&path, &s.token(Role::ChapterAdmin(w.chapter))).await.expect(200);
    assert_eq!(admin_view.body["riders"][0]["display_name"], "Ærø Østergård");
    // A pilot books only for itself.
    let for_other =
        json!({"bike_id": w.bike, "pilot_id": other_pilot, "start": "2027-05-06T08:00:00Z", "duration_minutes": 60});
    s.post("/v1/rides", &s.token(Role::Pilot(w.pilot)), for_other).await.expect(403);
    s.post("/v1/rides", &s.token(Role::Integrator(Some(w.chapter))), book_body(&w, "2027-05-06T08:00:00Z"))
        .await
        .expect(403);
    s.post("/v1/rides", &s.token(Role::ChapterAdmin(foreign)), book_body(&w, "2027-05-06T08:00:00Z")).await.expect(404);
}

async fn a_retried_post_answers_the_same_and_another_body_is_refused(s: System) {
    let w = s.world().await;
    let pilot = s.token(Role::Pilot(w.pilot));
    let key = [("Idempotency-Key", "book-42")];
    let body = book_body(&w, "2027-05-07T08:00:00Z");
    let a = s.call_with(Method::POST, "/v1/rides", Some(&pilot), Some(body.clone()), &key).await.expect(201);
    let b = s.call_with(Method::POST, "/v1/rides", Some(&pilot), Some(body.clone()), &key).await.expect(201);
    assert_eq!(a.body, b.body);
    assert_eq!(b.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(a.header("location"), b.header("location"));
    let other = s
        .call_with(Method::POST, "/v1/rides", Some(&pilot), Some(book_body(&w, "2027-05-08T08:00:00Z")), &key)
        .await
        .expect(422);
    assert_eq!(other.code(), "idempotency-key-reused");
    // An error is replayed too.
    let bad = json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": "2027-05-07T03:00:00Z", "duration_minutes": 60});
    let e1 = s
        .call_with(Method::POST, "/v1/rides", Some(&pilot), Some(bad.clone()), &[("Idempotency-Key", "bad-1")])
        .await
        .expect(422);
    let e2 = s
        .call_with(Method::POST, "/v1/rides", Some(&pilot), Some(bad), &[("Idempotency-Key", "bad-1")])
        .await
        .expect(422);
    assert_eq!(e1.body, e2.body);
    // Keys are scoped to the caller: another caller with the same key books its own ride.
    let coord = s.token(Role::Coordinator(w.home));
    let c = s
        .call_with(Method::POST, "/v1/rides", Some(&coord), Some(book_body(&w, "2027-05-09T08:00:00Z")), &key)
        .await
        .expect(201);
    assert_ne!(c.str("ride_id"), a.str("ride_id"));
}

async fn if_match_guards_a_ride(s: System) {
    let w = s.world().await;
    let pilot = s.token(Role::Pilot(w.pilot));
    let r = s.post("/v1/rides", &pilot, book_body(&w, "2027-05-10T08:00:00Z")).await.expect(201);
    let id = r.str("ride_id");
    let stale = s
        .call_with(
            Method::POST,
            &format!("/v1/rides/{id}/cancel"),
            Some(&pilot),
            Some(json!({"reason": "rider"})),
            &[("If-Match", "\"7\"")],
        )
        .await
        .expect(412);
    assert_eq!(stale.code(), "precondition-failed");
    assert_eq!(stale.header("etag").as_deref(), Some("\"1\""));
    s.call_with(
        Method::POST,
        &format!("/v1/rides/{id}/cancel"),
        Some(&pilot),
        Some(json!({"reason": "rider"})),
        &[("If-Match", "\"1\"")],
    )
    .await
    .expect(200);
}

async fn conflicts_and_rules_answer_with_their_codes(s: System) {
    let w = s.world().await;
    let other_pilot = s.pilot(w.chapter).await;
    // Booking learns of the new pilot's qualification from volunteer's feed: wait for it,
    // or a busy machine answers `not-qualified` before `bike-taken`.
    s.quiet().await;
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let first = s.post("/v1/rides", &admin, book_body(&w, "2027-05-11T08:00:00Z")).await.expect(201);
    let taken = s
        .post("/v1/rides", &admin, json!({"bike_id": w.bike, "pilot_id": other_pilot, "start": "2027-05-11T08:30:00Z", "duration_minutes": 30}))
        .await
        .expect(409);
    assert_eq!(taken.code(), "bike-taken");
    assert_eq!(taken.body["conflict_with"], first.body["ride_id"]);
    for (start, code) in [("2027-05-11T03:00:00Z", "outside-ride-hours"), ("2026-11-28T10:00:00Z", "lead-time")] {
        let r = s
            .post(
                "/v1/rides",
                &admin,
                json!({"bike_id": w.bike, "pilot_id": other_pilot, "start": start, "duration_minutes": 30}),
            )
            .await
            .expect(422);
        assert_eq!(r.code(), code);
        assert_eq!(r.header("content-type").as_deref(), Some("application/problem+json"));
        assert_eq!(r.body["type"], format!("urn:samskab:problem:{code}"));
    }
    let da = s
        .call_with(
            Method::POST,
            "/v1/rides",
            Some(&admin),
            Some(book_body(&w, "2027-05-11T08:00:00Z")),
            &[("Accept-Language", "da")],
        )
        .await
        .expect(409);
    assert_eq!(da.body["title"], "Cyklen er optaget");
    assert_eq!(da.header("content-language").as_deref(), Some("da"));
}

async fn hostile_bodies_get_exact_problems_and_write_nothing(s: System) {
    let w = s.world().await;
    let pilot = s.token(Role::Pilot(w.pilot));
    let before = s.get(&format!("/v1/rides?pilot_id={}", w.pilot), &pilot).await.expect(200).body["items"]
        .as_array()
        .unwrap()
        .len();
    let heads = s.heads().await;
    let url = format!("{}/v1/rides", s.base);
    let send = |body: Vec<u8>, ct: &'static str| {
        let (http, url, pilot) = (s.http.clone(), url.clone(), pilot.clone());
        async move {
            let r = http.post(url).bearer_auth(pilot).header("content-type", ct).body(body).send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null);
            (status, v)
        }
    };
    let (st, v) = send(b"{\"bike_id\":".to_vec(), "application/json").await;
    assert_eq!((st, v["code"].as_str()), (400, Some("malformed")));
    let (st, v) =
        send(br#"{"bike_id":"x","pilot_id":"y","start":"s","duration_minutes":1}"#.to_vec(), "application/json").await;
    assert_eq!((st, v["errors"][0]["field"].as_str()), (400, Some("/bike_id")));
    let mut wrong = book_body(&w, "2027-05-12T08:00:00Z");
    wrong["duration_minutes"] = json!("sixty");
    let (st, v) = send(serde_json::to_vec(&wrong).unwrap(), "application/json").await;
    assert_eq!((st, v["errors"][0]["field"].as_str()), (400, Some("/duration_minutes")));
    let (st, v) = send(
        serde_json::to_vec(&json!({"bike_id": w.bike, "pilot_id": w.pilot, "duration_minutes": 60})).unwrap(),
        "application/json",
    )
    .await;
    assert_eq!((st, v["errors"][0]["field"].as_str()), (400, Some("/start")));
    let mut extra = book_body(&w, "2027-05-12T08:00:00Z");
    extra["colour"] = json!("red");
    let (st, v) = send(serde_json::to_vec(&extra).unwrap(), "application/json").await;
    assert_eq!((st, v["errors"][0]["field"].as_str()), (400, Some("/colour")));
    let (st, v) = send(serde_json::to_vec(&book_body(&w, "tomorrow")).unwrap(), "application/json").await;
    assert_eq!((st, v["errors"][0]["field"].as_str()), (400, Some("/start")));
    let (st, v) = send(serde_json::to_vec(&book_body(&w, "2027-05-12T08:00:00Z")).unwrap(), "text/plain").await;
    assert_eq!((st, v["code"].as_str()), (415, Some("unsupported-media-type")));
    let (st, v) = send(vec![b' '; 1024 * 1024 + 10], "application/json").await;
    assert_eq!((st, v["code"].as_str()), (413, Some("too-large")));
    s.get("/v1/rides/not-a-uuid", &pilot).await.expect(400);
    let after = s.get(&format!("/v1/rides?pilot_id={}", w.pilot), &pilot).await.expect(200).body["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "nothing was written");
    assert_eq!(heads, s.heads().await, "no event was appended anywhere");
}

async fn a_suspended_pilot_reads_but_cannot_book(mut s: System) {
    // Without the gateway's scope cache (2 s by default), a status change shows on the next
    // request: the test need not wait out the cache's lifetime.
    s.config.http.scope_cache_ms = 0;
    let s = s.restart().await;
    let w = s.world().await;
    let pilot = s.token(Role::Pilot(w.pilot));
    let r = s.post("/v1/rides", &pilot, book_body(&w, "2027-05-13T08:00:00Z")).await.expect(201);
    s.post(&format!("/v1/pilots/{}/suspend", w.pilot), &s.token(Role::ChapterAdmin(w.chapter)), json!({}))
        .await
        .expect(200);
    // The suspension cancels the pilot's future rides (volunteer) and the token may still read.
    let id = r.str("ride_id");
    let sys = &s;
    s.eventually("the ride to be cancelled", || {
        let (path, t) = (format!("/v1/rides/{id}"), pilot.clone());
        async move { sys.get(&path, &t).await.body["cancel_reason"] == "volunteer" }
    })
    .await;
    let refused = s.post("/v1/rides", &pilot, book_body(&w, "2027-05-14T08:00:00Z")).await.expect(422);
    assert_eq!(refused.code(), "pilot-suspended");
    // Nor plan a series (2027-05-14 is a Friday).
    let mut series = book_body(&w, "2027-05-14T08:00:00Z");
    series["recurrence"] = json!({"weekdays": ["friday"], "count": 2});
    let heads = s.heads().await;
    assert_eq!(s.post("/v1/ride-series", &pilot, series).await.expect(422).code(), "pilot-suspended");
    assert_eq!(s.heads().await, heads, "nothing written");
    s.post(&format!("/v1/pilots/{}/retire", w.pilot), &s.token(Role::ChapterAdmin(w.chapter)), json!({}))
        .await
        .expect(200);
    s.get(&format!("/v1/rides/{id}"), &pilot).await.expect(401);
}

async fn a_suspended_pilot_reports_issues_but_grounds_nothing(mut s: System) {
    s.config.http.scope_cache_ms = 0;
    let s = s.restart().await;
    let w = s.world().await;
    let pilot = s.token(Role::Pilot(w.pilot));
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    s.post(&format!("/v1/pilots/{}/suspend", w.pilot), &admin, json!({})).await.expect(200);
    let issues = format!("/v1/bikes/{}/issues", w.bike);
    let heads = s.heads().await;
    let refused =
        s.post(&issues, &pilot, json!({"description": "The chain is off", "grounding": true})).await.expect(422);
    assert_eq!(refused.code(), "pilot-suspended");
    assert_eq!(s.heads().await, heads, "nothing written");
    assert_eq!(s.get(&format!("/v1/bikes/{}", w.bike), &admin).await.expect(200).str("status"), "in_service");
    // What it sees it may still say.
    let r = s.post(&issues, &pilot, json!({"description": "A squeaky pedal", "grounding": false})).await.expect(200);
    assert_eq!(r.str("status"), "in_service");
    // An active pilot grounds it.
    let other = s.pilot(w.chapter).await;
    let r = s
        .post(&issues, &s.token(Role::Pilot(other)), json!({"description": "The chain is off", "grounding": true}))
        .await
        .expect(200);
    assert_eq!(r.str("status"), "out_of_service");
}

async fn another_chapters_pilot_is_not_there(s: System) {
    let w = s.world().await;
    let elsewhere = s.chapter().await;
    let foreign = s.pilot(elsewhere).await;
    s.quiet().await;
    let book =
        || json!({"bike_id": w.bike, "pilot_id": foreign, "start": "2027-05-12T08:00:00Z", "duration_minutes": 60});
    let heads = s.heads().await;
    // Named by the home's coordinator or its chapter's admin: 404, as for an unknown id,
    // never a rule that says the pilot exists elsewhere.
    for token in [s.token(Role::Coordinator(w.home)), s.token(Role::ChapterAdmin(w.chapter))] {
        let r = s.post("/v1/rides", &token, book()).await.expect(404);
        assert_eq!(r.code(), "not-found", "{}", r.body);
        assert!(!r.body.to_string().contains("chapter"), "{}", r.body);
    }
    assert_eq!(s.heads().await, heads, "nothing written");
    // Suspended, it is still not there: its status is not told either.
    s.post(&format!("/v1/pilots/{foreign}/suspend"), &s.token(Role::ChapterAdmin(elsewhere)), json!({}))
        .await
        .expect(200);
    s.quiet().await;
    let r = s.post("/v1/rides", &s.token(Role::ChapterAdmin(w.chapter)), book()).await.expect(404);
    assert_eq!(r.code(), "not-found", "{}", r.body);
}

async fn lists_page_and_refuse_big_limits(s: System) {
    let w = s.world().await;
    let coord = s.token(Role::Coordinator(w.home));
    let mut ids = Vec::new();
    for day in 15..20 {
        let r = s.post("/v1/rides", &coord, json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": format!("2027-05-{day}T08:00:00Z"), "duration_minutes": 60})).await.expect(201);
        ids.push(r.str("ride_id"));
    }
    let mut seen = Vec::new();
    s.eventually("the list to show every ride", || async {
        s.get(&format!("/v1/rides?carehome_id={}&limit=500", w.home), &coord).await.body["items"]
            .as_array()
            .map_or(0, Vec::len)
            == 5
    })
    .await;
    let mut cursor = String::new();
    loop {
        let q = if cursor.is_empty() { String::new() } else { format!("&cursor={cursor}") };
        let page = s.get(&format!("/v1/rides?carehome_id={}&limit=2{q}", w.home), &coord).await.expect(200);
        seen.extend(page.body["items"].as_array().unwrap().iter().map(|r| r["ride_id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ids, "pages follow each other in start order");
    let big = s.get(&format!("/v1/rides?carehome_id={}&limit=501", w.home), &coord).await.expect(400);
    assert_eq!(big.body["errors"][0]["field"], "/limit");
    s.get(&format!("/v1/rides?carehome_id={}&colour=red", w.home), &coord).await.expect(400);
    let foreign = s.chapter().await;
    s.get(&format!("/v1/rides?carehome_id={}", w.home), &s.token(Role::ChapterAdmin(foreign))).await.expect(404);
}

async fn a_restart_keeps_everything(s: System) {
    let w = s.world().await;
    let pilot = s.token(Role::Pilot(w.pilot));
    let r = s.post("/v1/rides", &pilot, book_body(&w, "2027-05-20T08:00:00Z")).await.expect(201);
    let s = s.restart().await;
    let got = s.get(&format!("/v1/rides/{}", r.str("ride_id")), &pilot).await.expect(200);
    assert_eq!(got.body["status"], "booked");
    // The schedule survived too: the slot is still taken.
    s.post("/v1/rides", &s.token(Role::Coordinator(w.home)), book_body(&w, "2027-05-20T08:30:00Z")).await.expect(409);
}
