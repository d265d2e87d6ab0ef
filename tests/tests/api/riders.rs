//! Riders' names and pilots (api.md → *Riders' names and pilots*), over HTTP on the real
//! system, both backends: where the care home does not let pilots choose their riders, a
//! pilot sees an open request's riders as a count only, and cannot seat a resident on its
//! own ride (booking or roster) unless a request it claimed names them; that closes the
//! way a pilot used to learn any resident's name (seat them, read `riders[].display_name`).
//! And after a resident's erasure, replaying a request whose kept answer named them (its
//! admission, a ride it was booked on) shows no name (issue 17).

use e2e::{System, World};
use gateway::Role;
use reqwest::Method;
use serde_json::{Value, json};

testkit::both_backends!(setup = e2e::System::start;
    a_pilot_cannot_learn_names_where_the_home_chooses_riders,
    a_replay_after_an_erasure_shows_no_name,
);

fn ride(w: &World, start: &str, residents: &[uuid::Uuid]) -> Value {
    json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": start, "duration_minutes": 60, "resident_ids": residents})
}

fn riders(v: &Value) -> Vec<String> {
    v["riders"].as_array().unwrap().iter().map(|r| r["resident_id"].as_str().unwrap().to_owned()).collect()
}

async fn a_pilot_cannot_learn_names_where_the_home_chooses_riders(s: System) {
    let chapter = s.chapter().await;
    let home = s.carehome_where(chapter, false).await;
    let bike = s.bike(chapter, home, 2).await;
    let pilot = s.pilot(chapter).await;
    let residents = vec![s.resident(home).await, s.resident(home).await];
    let w = World { chapter, home, bike, pilot, residents };
    s.settle(&w).await;
    let (r0, r1) = (w.residents[0], w.residents[1]);
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let coord = s.token(Role::Coordinator(w.home));
    let me = s.token(Role::Pilot(w.pilot));
    let shown = s.get(&format!("/v1/carehomes/{}", w.home), &admin).await.expect(200);
    assert_eq!(shown.body["pilots_choose_riders"], false, "the default");
    let bad = json!({"chapter_id": w.chapter, "name": "X", "address": "Y", "ride_hours": [],
        "turnaround_minutes": 15, "requires_confirmation": false, "pilots_choose_riders": "yes"});
    let r = s.post("/v1/carehomes", &admin, bad).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/pilots_choose_riders", "{}", r.body);

    // A request names r0: its coordinator sees whom, a pilot only how many.
    let body = json!({"carehome_id": w.home, "resident_ids": [r0], "duration_minutes": 60,
        "window": {"from": "2027-05-03T07:00:00Z", "to": "2027-05-03T12:00:00Z"}});
    let request = s.post("/v1/ride-requests", &coord, body).await.expect(201).str("ride_request_id");
    let path = format!("/v1/ride-requests/{request}");
    let theirs = s.get(&path, &coord).await.expect(200);
    assert_eq!((theirs.body["resident_ids"].clone(), theirs.body["resident_count"].clone()), (json!([r0]), json!(1)));
    let mine = s.get(&path, &me).await.expect(200);
    assert_eq!((mine.body.get("resident_ids"), mine.body["resident_count"].clone()), (None, json!(1)), "{}", mine.body);
    // Lists may lag the write (api.md: up to a second; more on a loaded machine).
    let list = format!("/v1/ride-requests?carehome_id={}", w.home);
    s.eventually("the request in the pilot's list", || async {
        s.get(&list, &me).await.expect(200).body["items"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let listed = s.get(&list, &me).await.expect(200);
    assert_eq!(listed.body["items"][0].get("resident_ids"), None, "{}", listed.body);
    assert_eq!(listed.body["items"][0]["resident_count"], 1);

    // Seating anyone on its own ride is refused, and nothing is booked.
    for who in [vec![r0], vec![r1], vec![r0, r1]] {
        let r = s.post("/v1/rides", &me, ride(&w, "2027-05-04T08:00:00Z", &who)).await.expect(403);
        assert_eq!(r.code(), "forbidden", "{}", r.body);
    }
    let empty = s.post("/v1/rides", &me, ride(&w, "2027-05-04T08:00:00Z", &[])).await.expect(201);
    let own = empty.str("ride_id");
    let roster = format!("/v1/rides/{own}/roster");
    let r = s.post(&roster, &me, json!({"resident_id": r1})).await.expect(403);
    assert_eq!(r.code(), "forbidden");
    let read = s.get(&format!("/v1/rides/{own}"), &me).await.expect(200);
    assert!(riders(&read.body).is_empty(), "nothing seated: {}", read.body);
    // The care home chooses: its coordinator may seat r1 on the pilot's ride.
    s.post(&roster, &coord, json!({"resident_id": r1})).await.expect(200);

    // Once it claims the request, the pilot sees whom it names and may seat them again.
    let claim = json!({"bike_id": w.bike, "start": "2027-05-03T08:00:00Z"});
    let claimed = s.post(&format!("{path}/claim"), &me, claim).await;
    assert!(claimed.status.is_success(), "{}", claimed.body);
    assert_eq!(claimed.body["ride_request"]["resident_ids"], json!([r0]));
    let claimed_ride = claimed.body["ride"]["ride_id"].as_str().unwrap().to_owned();
    assert_eq!(s.get(&path, &me).await.expect(200).body["resident_ids"], json!([r0]));
    let its_roster = format!("/v1/rides/{claimed_ride}/roster");
    s.delete(&format!("{its_roster}/{r0}"), &me).await.expect(200);
    let back = s.post(&its_roster, &me, json!({"resident_id": r0})).await.expect(200);
    assert_eq!(riders(&back.body), vec![r0.to_string()]);
    // ... but nobody the request does not name.
    s.post(&its_roster, &me, json!({"resident_id": r1})).await.expect(403);
    // A new booking of its own with the named resident is its choice too; with another, not.
    s.post("/v1/rides", &me, ride(&w, "2027-05-03T10:00:00Z", &[r0])).await.expect(201);
    s.post("/v1/rides", &me, ride(&w, "2027-05-05T10:00:00Z", &[r1])).await.expect(403);
    // Another pilot of the chapter still sees the claimed request's count only.
    let other = s.token(Role::Pilot(s.pilot(w.chapter).await));
    let theirs = s.get(&path, &other).await.expect(200);
    assert_eq!((theirs.body.get("resident_ids"), theirs.body["resident_count"].clone()), (None, json!(1)));
}

async fn a_replay_after_an_erasure_shows_no_name(s: System) {
    let w = s.world().await;
    let coord = s.token(Role::Coordinator(w.home));
    let name = "Karen Blixen-Dinesen";
    let admit = json!({"display_name": name,
        "consent": {"given_by": "relative", "given_at": "2026-11-01T10:00:00Z", "scope": ["rides", "stories"]}});
    let admit_path = format!("/v1/carehomes/{}/residents", w.home);
    let send = |path: String, body: Value, key: &'static str| {
        let (s, coord) = (&s, coord.clone());
        async move { s.call_with(Method::POST, &path, Some(&coord), Some(body), &[("Idempotency-Key", key)]).await }
    };
    let first = send(admit_path.clone(), admit.clone(), "admit-karen").await.expect(201);
    assert_eq!(first.str("display_name"), name);
    let resident = first.str("resident_id");
    s.quiet().await; // booking knows the resident
    let ride = json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": "2027-05-03T08:00:00Z",
        "duration_minutes": 60, "resident_ids": [resident]});
    let booked = send("/v1/rides".into(), ride.clone(), "ride-karen").await.expect(201);
    assert!(booked.body.to_string().contains(name), "{}", booked.body);
    let again = send(admit_path.clone(), admit.clone(), "admit-karen").await.expect(201);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(again.str("display_name"), name, "before the erasure a replay is the answer");

    s.post(&format!("/v1/residents/{resident}/erasure"), &coord, json!({})).await.expect(200);
    for (path, body, key) in [(admit_path, admit, "admit-karen"), ("/v1/rides".to_owned(), ride, "ride-karen")] {
        let r = send(path.clone(), body, key).await;
        assert!(!r.status.is_server_error(), "{path}: {}", r.status);
        assert!(!r.body.to_string().contains(name), "{path} after the erasure: {} {}", r.status, r.body);
        assert!(!r.body.to_string().contains("Karen"), "{path}: {}", r.body);
    }
}
