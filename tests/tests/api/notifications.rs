//! The inbox over HTTP, on the whole system (the notify service inside the all-in-one): a
//! ride booked for a pilot by a coordinator reaches the pilot's inbox, in Danish for a
//! chapter in Copenhagen's zone, naming no resident; paging, the unread filter, reading,
//! and another pilot's refusal.

use e2e::System;
use gateway::Role;
use serde_json::json;

testkit::both_backends!(
    setup = e2e::System::start;
    a_booking_reaches_the_pilots_inbox_and_is_read_once,
    the_inbox_streams_what_arrives_and_resumes_after_an_id
);

async fn a_booking_reaches_the_pilots_inbox_and_is_read_once(s: System) {
    let w = s.world().await;
    let coord = s.token(Role::Coordinator(w.home));
    let pilot = s.token(Role::Pilot(w.pilot));
    let other = s.token(Role::Pilot(s.pilot(w.chapter).await));
    for day in [3, 4] {
        let body = json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": format!("2027-05-{day:02}T08:00:00Z"),
            "duration_minutes": 60, "resident_ids": [w.residents[0]]});
        s.post("/v1/rides", &coord, body).await.expect(201);
    }
    let items = testkit::eventually("both bookings in the pilot's inbox", testkit::DEFAULT_TIMEOUT, || async {
        let r = s.get("/v1/me/notifications", &pilot).await.expect(200);
        let items = r.body["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 2).then_some(items)
    })
    .await;
    for n in &items {
        assert_eq!(n["kind"], "ride.booked_for_you");
        assert_eq!(n["title"], "Du er booket til en tur", "Danish in Copenhagen's zone: {n}");
        assert!(n["links"]["ride_id"].is_string() && n.get("read_at").is_none(), "{n}");
    }
    let text = serde_json::to_string(&items).unwrap();
    let resident = s.get(&format!("/v1/residents/{}", w.residents[0]), &coord).await.expect(200);
    let name = resident.str("display_name");
    assert!(!name.is_empty() && !text.contains(&name), "no resident is named: {text}");
    // Newest first, one per page.
    let first = s.get("/v1/me/notifications?limit=1", &pilot).await.expect(200);
    assert_eq!(first.body["items"][0]["notification_id"], items[0]["notification_id"]);
    let cursor = first.str("next_cursor");
    let second = s.get(&format!("/v1/me/notifications?limit=1&cursor={cursor}"), &pilot).await.expect(200);
    assert_eq!(second.body["items"][0]["notification_id"], items[1]["notification_id"]);
    let bad = s.get("/v1/me/notifications?cursor=nonsense", &pilot).await.expect(400);
    assert!(bad.body.to_string().contains("/cursor"), "{}", bad.body);
    // Read once; unread hides it; another pilot cannot read or mark it.
    let id = items[0]["notification_id"].as_str().unwrap().to_owned();
    let read = s.post(&format!("/v1/me/notifications/{id}/read"), &pilot, json!({})).await.expect(200);
    assert!(read.body["read_at"].is_string(), "{}", read.body);
    let again = s.post(&format!("/v1/me/notifications/{id}/read"), &pilot, json!({})).await.expect(200);
    assert_eq!(again.body["read_at"], read.body["read_at"], "the first reading's time stays");
    s.eventually("the unread list to leave it out", || async {
        let r = s.get("/v1/me/notifications?unread=true", &pilot).await.expect(200);
        r.body["items"].as_array().is_some_and(|i| i.len() == 1 && i[0]["notification_id"] != id.as_str())
    })
    .await;
    s.post(&format!("/v1/me/notifications/{id}/read"), &other, json!({})).await.expect(404);
    let theirs = s.get("/v1/me/notifications", &other).await.expect(200);
    assert_eq!(theirs.body["items"], json!([]), "another pilot's inbox is empty");
    // The figures: decided notices by kind, channel and outcome.
    let metrics = s.http.get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("notify_notices_total{")
            && l.contains("kind=\"ride.booked_for_you\"")
            && l.contains("outcome=\"decided\"")),
        "{metrics}"
    );
    assert!(metrics.contains("notify_backlog"), "{metrics}");
    // An API key acts as an integrator, not as a person: it has no inbox.
    let key = s.post("/v1/api-keys", &s.admin(), json!({"name": "reports", "chapter_id": w.chapter})).await.expect(201);
    let refused = s.get("/v1/me/notifications", &key.str("key")).await.expect(403);
    assert_eq!(refused.str("code"), "forbidden");
}

/// The events of an SSE body: (id, data as JSON).
fn sse(text: &str) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    let mut id = String::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            out.push((id.clone(), serde_json::from_str(v.trim()).unwrap_or_default()));
        }
    }
    out
}

/// A stream opened before a booking carries its notification as it arrives, from now on
/// (nothing older); a stream resumed with `Last-Event-ID` carries only what came after it.
async fn the_inbox_streams_what_arrives_and_resumes_after_an_id(s: System) {
    let w = s.world().await;
    let coord = s.token(Role::Coordinator(w.home));
    let pilot = s.token(Role::Pilot(w.pilot));
    let book = |day: u32| {
        json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": format!("2027-05-{day:02}T08:00:00Z"),
            "duration_minutes": 60, "resident_ids": []})
    };
    // One notification before the stream opens: the stream starts after it.
    s.post("/v1/rides", &coord, book(3)).await.expect(201);
    testkit::eventually("the first notification", testkit::DEFAULT_TIMEOUT, || async {
        s.get("/v1/me/notifications", &pilot).await.body["items"].as_array().is_some_and(|i| i.len() == 1)
    })
    .await;
    let url = format!("{}/v1/me/notifications/stream?max_seconds=4", s.base);
    let open = s.http.get(&url).bearer_auth(&pilot).send();
    let (response, _) = tokio::join!(open, async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        s.post("/v1/rides", &coord, book(4)).await.expect(201);
    });
    let response = response.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let events = sse(&response.text().await.unwrap());
    assert_eq!(events.len(), 1, "only what arrived while it was open: {events:?}");
    let (id, n) = &events[0];
    assert_eq!(n["kind"], "ride.booked_for_you");
    assert!(n["body"].as_str().unwrap().contains("04.05.2027"), "{n}");
    // A third booking; a stream resumed after the second's id carries only the third.
    s.post("/v1/rides", &coord, book(5)).await.expect(201);
    testkit::eventually("the third notification", testkit::DEFAULT_TIMEOUT, || async {
        s.get("/v1/me/notifications", &pilot).await.body["items"].as_array().is_some_and(|i| i.len() == 3)
    })
    .await;
    let resumed = s
        .http
        .get(format!("{}/v1/me/notifications/stream?max_seconds=1", s.base))
        .bearer_auth(&pilot)
        .header("last-event-id", id.as_str())
        .send()
        .await
        .unwrap();
    let events = sse(&resumed.text().await.unwrap());
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].1["body"].as_str().unwrap().contains("05.05.2027"), "{:?}", events[0]);
    let n = |id: &str| id.strip_prefix("inbox.").and_then(|n| n.parse::<u64>().ok()).expect("an inbox id");
    assert!(n(&events[0].0) > n(id), "{events:?} after {id}");
    let bad = s
        .http
        .get(format!("{}/v1/me/notifications/stream?max_seconds=1", s.base))
        .bearer_auth(&pilot)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}
