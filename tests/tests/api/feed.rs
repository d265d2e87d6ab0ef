//! The integrators' event feed, its server-sent events stream and webhooks, over HTTP on
//! the real system: paging yields every event once and in order per stream with a cursor
//! that is never null; a chapter integrator sees its chapter only; no personal data or
//! ciphertext ever appears; the stream resumes with `Last-Event-ID` without loss or
//! duplicates; webhooks are signed, retried per stream while other streams flow, delivered
//! in order per stream, survive a restart, and refuse private targets.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::{System, World};
use gateway::Role;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use uuid::Uuid;

testkit::both_backends!(setup = start;
    paging_yields_every_event_once_in_order_and_polls_at_the_end,
    a_chapter_integrator_sees_its_chapter_only,
    the_feed_carries_no_personal_data,
    the_stream_resumes_after_a_disconnect_without_loss_or_duplicates,
    webhooks_retry_one_failing_stream_while_others_flow_and_survive_a_restart,
    webhooks_refuse_private_targets_and_bad_input,
    webhooks_are_the_integrators_own,
    webhooks_are_capped_per_owner_under_concurrent_creation,
    a_receiver_that_holds_its_request_delays_only_its_own_webhook,
    event_streams_are_capped_per_caller_and_in_all,
    an_event_stream_ends_by_itself_after_the_gateways_limit,
    caught_up_streams_are_woken_by_the_shared_poller,
);

/// The system with fast webhook retries; loopback targets allowed (the receiver runs on
/// 127.0.0.1) unless a test starts its own system with the switch off.
async fn start(db: testkit::TestDb) -> System {
    System::start_with(db, |c| {
        c.http.webhooks.allow_loopback = true;
        c.http.webhooks.backoff_base_ms = 100;
        c.http.webhooks.backoff_max_ms = 400;
        c.http.webhooks.poll_ms = 100;
    })
    .await
}

fn book_body(w: &World, start: &str, resident: Uuid) -> Value {
    json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": start, "duration_minutes": 60, "resident_ids": [resident]})
}

/// Pages through the feed from `cursor` with `limit`, checking every page; returns the
/// items and the cursor at the end.
async fn read_all(s: &System, token: &str, cursor: &str, limit: u32) -> (Vec<Value>, String) {
    let mut cursor = cursor.to_owned();
    let mut items = Vec::new();
    loop {
        let q = if cursor.is_empty() { format!("?limit={limit}") } else { format!("?limit={limit}&cursor={cursor}") };
        let page = s.get(&format!("/v1/events{q}"), token).await.expect(200);
        let next = page.body["next_cursor"].as_str().expect("next_cursor is never null").to_owned();
        assert!(!next.is_empty(), "next_cursor is never empty");
        let got = page.body["items"].as_array().expect("items").clone();
        assert!(got.len() <= limit as usize);
        if got.is_empty() {
            return (items, next);
        }
        items.extend(got);
        cursor = next;
    }
}

/// Reads the feed from `cursor` until `done` holds of it (the feed lags a moment).
async fn feed_until(s: &System, token: &str, cursor: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    testkit::eventually(what, testkit::DEFAULT_TIMEOUT, || async {
        let items = read_all(s, token, cursor, 500).await.0;
        done(&items).then_some(items)
    })
    .await
}

/// The feed's end now.
async fn feed_end(s: &System, token: &str) -> String {
    read_all(s, token, "", 500).await.1
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| i["event_id"].as_str().unwrap().to_owned()).collect()
}

/// Items grouped per stream, in the order given.
fn per_stream(items: &[Value]) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for i in items {
        m.entry(i["stream"].as_str().unwrap().to_owned()).or_default().push(i["event_id"].as_str().unwrap().to_owned());
    }
    m
}

fn stream_of<'a>(items: &'a [Value], id: &str) -> Vec<&'a Value> {
    items.iter().filter(|i| i["stream"].as_str().unwrap().contains(id)).collect()
}

fn types(items: &[&Value]) -> Vec<String> {
    items.iter().map(|i| i["type"].as_str().unwrap().to_owned()).collect()
}

async fn paging_yields_every_event_once_in_order_and_polls_at_the_end(s: System) {
    let w = s.world().await;
    let admin = s.admin();
    let coord = s.token(Role::Coordinator(w.home));
    let ride = s.post("/v1/rides", &coord, book_body(&w, "2027-05-03T08:00:00Z", w.residents[0])).await.expect(201);
    let ride = ride.str("ride_id");
    s.post(&format!("/v1/rides/{ride}/roster"), &coord, json!({"resident_id": w.residents[1]})).await.expect(200);
    s.post(&format!("/v1/rides/{ride}/cancel"), &coord, json!({"reason": "weather"})).await.expect(200);
    let whole = feed_until(&s, &admin, "", "the cancellation to reach the feed", |whole| {
        types(&stream_of(whole, &ride)).contains(&"RideCancelled".to_owned())
    })
    .await;
    let (small, end) = read_all(&s, &admin, "", 3).await;
    // Every event once.
    let unique: HashSet<String> = ids(&small).into_iter().collect();
    assert_eq!(unique.len(), small.len(), "no event twice");
    let whole_set: HashSet<String> = ids(&whole).into_iter().collect();
    assert!(whole_set.is_subset(&unique), "small pages miss nothing the big page had");
    // In order per stream, whichever the page size.
    let (a, b) = (per_stream(&small), per_stream(&whole));
    for (stream, events) in &b {
        assert_eq!(&a[stream][..events.len()], &events[..], "order of {stream}");
    }
    assert_eq!(
        types(&stream_of(&small, &ride)),
        ["RideBooked", "RiderAddedToRoster", "RideCancelled"],
        "a ride's events in the order they happened"
    );
    for i in &small {
        for field in ["cursor", "event_id", "stream", "type", "occurred_at"] {
            assert!(i[field].as_str().is_some_and(|v| !v.is_empty()), "{field} in {i}");
        }
        assert!(i["occurred_at"].as_str().unwrap().ends_with('Z'));
        assert!(i["data"].is_object());
        assert!(!["SlotHeld", "SlotReleased"].contains(&i["type"].as_str().unwrap()), "internal events stay inside");
    }
    // The booked ride's public payload names its ids.
    let booked = stream_of(&small, &ride)[0];
    assert_eq!(booked["data"]["ride_id"], ride.as_str());
    // A poll at the end: nothing new, the same cursor; then the next event after a write.
    let poll = s.get(&format!("/v1/events?cursor={end}"), &admin).await.expect(200);
    assert_eq!(poll.body["items"], json!([]));
    assert_eq!(poll.str("next_cursor"), end);
    let next = s.post("/v1/rides", &coord, book_body(&w, "2027-05-04T08:00:00Z", w.residents[0])).await.expect(201);
    let next = next.str("ride_id");
    s.eventually("the new ride to show after the end", || async {
        let page = s.get(&format!("/v1/events?cursor={end}"), &admin).await.expect(200);
        let items = page.body["items"].as_array().unwrap().clone();
        !items.is_empty()
            && items.iter().all(|i| !whole_set.contains(i["event_id"].as_str().unwrap()))
            && types(&stream_of(&items, &next)).first().map(String::as_str) == Some("RideBooked")
    })
    .await;
    // A malformed cursor or limit is 400 naming it.
    for (q, field) in [
        ("cursor=nonsense", "/cursor"),
        ("cursor=b.c1.0.0~c.c1.0.0", "/cursor"),
        ("limit=501", "/limit"),
        ("limit=0", "/limit"),
        ("colour=red", "/colour"),
    ] {
        let r = s.get(&format!("/v1/events?{q}"), &admin).await.expect(400);
        assert_eq!(r.body["errors"][0]["field"], field, "{q}");
    }
    // Who may read it.
    for (role, status) in [
        (Role::Admin, 200),
        (Role::Integrator(None), 200),
        (Role::Integrator(Some(w.chapter)), 200),
        (Role::ChapterAdmin(w.chapter), 403),
        (Role::Coordinator(w.home), 403),
        (Role::Pilot(w.pilot), 403),
    ] {
        s.get("/v1/events?limit=1", &s.token(role)).await.expect(status);
        s.get("/v1/events/stream?cursor=nonsense", &s.token(role)).await.expect(if status == 200 { 400 } else { 403 });
    }
    s.call(reqwest::Method::GET, "/v1/events", None, None).await.expect(401);
}

async fn a_chapter_integrator_sees_its_chapter_only(s: System) {
    let a = s.world().await;
    let b = s.world().await;
    let ride_a = s
        .post("/v1/rides", &s.token(Role::Coordinator(a.home)), book_body(&a, "2027-05-03T08:00:00Z", a.residents[0]))
        .await
        .expect(201)
        .str("ride_id");
    let ride_b = s
        .post("/v1/rides", &s.token(Role::Coordinator(b.home)), book_body(&b, "2027-05-03T08:00:00Z", b.residents[0]))
        .await
        .expect(201)
        .str("ride_id");
    let admin = s.admin();
    s.eventually("both rides in the feed", || async {
        let all = read_all(&s, &admin, "", 500).await.0;
        !stream_of(&all, &ride_a).is_empty() && !stream_of(&all, &ride_b).is_empty()
    })
    .await;
    let ids_of = |w: &World, ride: &str| {
        let mut v =
            vec![w.chapter.to_string(), w.home.to_string(), w.bike.to_string(), w.pilot.to_string(), ride.to_owned()];
        v.extend(w.residents.iter().map(Uuid::to_string));
        v
    };
    for (mine, theirs, ride) in [(&a, ids_of(&b, &ride_b), &ride_a), (&b, ids_of(&a, &ride_a), &ride_b)] {
        let token = s.token(Role::Integrator(Some(mine.chapter)));
        let items = read_all(&s, &token, "", 7).await.0;
        assert!(!stream_of(&items, ride).is_empty(), "an integrator sees its chapter's rides");
        assert!(!stream_of(&items, &mine.pilot.to_string()).is_empty(), "and its pilots");
        let text = serde_json::to_string(&items).unwrap();
        for id in &theirs {
            assert!(!text.contains(id.as_str()), "an integrator of one chapter saw {id} of another");
        }
    }
    // The network integrator sees both.
    let all = read_all(&s, &s.token(Role::Integrator(None)), "", 500).await.0;
    assert!(!stream_of(&all, &ride_a).is_empty() && !stream_of(&all, &ride_b).is_empty());
}

async fn the_feed_carries_no_personal_data(s: System) {
    let w = s.world().await;
    let (admin, coord) = (s.token(Role::ChapterAdmin(w.chapter)), s.token(Role::Coordinator(w.home)));
    let secrets = [
        "Qwyllimir Fjordbakke",
        "quietly-hums-xq7",
        "zebulon.pilot.x9@example.test",
        "+45 9988 7766",
        "Vindmøllevej 4711",
        "Havnegade 8123",
        "saw-the-herons-k2",
        "knee-hurt-note-v5",
        "requestnote-j3",
        "Hyacinth Pilotdottir",
    ];
    let resident = s
        .post(
            &format!("/v1/carehomes/{}/residents", w.home),
            &coord,
            json!({"display_name": secrets[0], "notes": secrets[1],
                   "consent": {"given_by": "guardian", "given_at": "2026-11-01T10:00:00Z", "scope": ["rides", "stories"]}}),
        )
        .await
        .expect(201)
        .str("resident_id");
    let pilot = s
        .post(
            "/v1/pilots",
            &admin,
            json!({"chapter_id": w.chapter, "display_name": secrets[9], "email": secrets[2], "phone": secrets[3]}),
        )
        .await
        .expect(201)
        .str("pilot_id");
    let resident: Uuid = resident.parse().unwrap();
    s.eventually("booking to learn the resident", || async {
        s.post("/v1/rides", &coord, book_body(&w, "2027-05-03T08:00:00Z", resident)).await.status.as_u16() == 201
    })
    .await;
    let functional = s
        .post(
            "/v1/rides",
            &coord,
            json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": "2027-05-04T08:00:00Z", "duration_minutes": 60,
                   "resident_ids": [w.residents[0]], "kind": "functional", "pickup": secrets[4], "dropoff": secrets[5]}),
        )
        .await
        .expect(201)
        .str("ride_id");
    let p = s.token(Role::Pilot(w.pilot));
    s.post(&format!("/v1/rides/{functional}/start"), &p, json!({})).await.expect(200);
    s.post(
        &format!("/v1/rides/{functional}/complete"),
        &p,
        json!({"ended_at": "2027-05-04T08:50:00Z", "distance_km": 3.5, "story": secrets[6]}),
    )
    .await
    .expect(200);
    let other = s.post("/v1/rides", &coord, book_body(&w, "2027-05-05T08:00:00Z", w.residents[1])).await.expect(201);
    s.post(
        &format!("/v1/rides/{}/cancel", other.str("ride_id")),
        &coord,
        json!({"reason": "rider", "note": secrets[7]}),
    )
    .await
    .expect(200);
    s.post(
        "/v1/ride-requests",
        &coord,
        json!({"carehome_id": w.home, "resident_ids": [w.residents[0]], "window": {"from": "2027-06-01T08:00:00Z", "to": "2027-06-01T12:00:00Z"},
               "duration_minutes": 60, "note": secrets[8]}),
    )
    .await
    .expect(201);
    let token = s.admin();
    let items = feed_until(&s, &token, "", "the story's ride to complete in the feed", |items| {
        types(&stream_of(items, &functional)).contains(&"RideCompleted".to_owned())
    })
    .await;
    assert!(!stream_of(&items, &pilot).is_empty() && !stream_of(&items, &resident.to_string()).is_empty());
    let text = serde_json::to_string(&items).unwrap();
    for secret in secrets {
        assert!(!text.contains(secret), "the feed shows {secret:?}");
    }
    assert!(!text.contains("sealed:"), "the feed shows ciphertext");
    // Nor anything that looks like ciphertext: no long base64-ish strings.
    fn strings(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            Value::Object(o) => o.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    for i in &items {
        strings(&i["data"], &mut all);
    }
    for v in all {
        let long_opaque = v.len() > 60 && v.chars().all(|c| c.is_ascii_alphanumeric() || "+/=_-".contains(c));
        assert!(!long_opaque, "a ciphertext-looking value in the feed: {v}");
    }
}

/// Reads server-sent events until `want` events arrived; returns (id, item) pairs.
async fn read_sse(resp: &mut reqwest::Response, buf: &mut String, want: usize) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    while out.len() < want {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut id, mut data) = (None, None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str::<Value>(v.trim()).expect("data is a feed item"));
                }
            }
            if let (Some(id), Some(data)) = (id, data) {
                assert_eq!(data["cursor"].as_str(), Some(id.as_str()), "the id is the item's cursor");
                out.push((id, data));
                if out.len() == want {
                    return out;
                }
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(20), resp.chunk())
            .await
            .expect("the stream delivers within 20 s")
            .expect("the stream stays open")
            .expect("the stream does not end");
        buf.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
    out
}

async fn the_stream_resumes_after_a_disconnect_without_loss_or_duplicates(s: System) {
    let w = s.world().await;
    let token = s.token(Role::Integrator(Some(w.chapter)));
    let coord = s.token(Role::Coordinator(w.home));
    let start = feed_end(&s, &token).await;
    let first = s.post("/v1/rides", &coord, book_body(&w, "2027-05-03T08:00:00Z", w.residents[0])).await.expect(201);
    let first = first.str("ride_id");
    s.post(&format!("/v1/rides/{first}/roster"), &coord, json!({"resident_id": w.residents[1]})).await.expect(200);
    let url = format!("{}/v1/events/stream?cursor={start}", s.base);
    let mut resp = s.http.get(&url).bearer_auth(&token).send().await.expect("the stream opens");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut buf = String::new();
    let seen = read_sse(&mut resp, &mut buf, 1).await;
    drop(resp);
    // While disconnected, more happens.
    s.post(&format!("/v1/rides/{first}/cancel"), &coord, json!({"reason": "weather"})).await.expect(200);
    let second = s.post("/v1/rides", &coord, book_body(&w, "2027-05-04T08:00:00Z", w.residents[0])).await.expect(201);
    let second = second.str("ride_id");
    // What the stream must deliver in all: the feed from `start` up to the second ride.
    let expected = feed_until(&s, &token, &start, "the second ride in the feed", |expected| {
        !stream_of(expected, &second).is_empty()
    })
    .await;
    let last_id = seen.last().unwrap().0.clone();
    let mut resp = s
        .http
        .get(format!("{}/v1/events/stream", s.base))
        .bearer_auth(&token)
        .header("Last-Event-ID", &last_id)
        .send()
        .await
        .expect("the stream reopens");
    assert_eq!(resp.status().as_u16(), 200);
    let mut buf = String::new();
    let rest = read_sse(&mut resp, &mut buf, expected.len() - seen.len()).await;
    let got: Vec<Value> = seen.iter().chain(rest.iter()).map(|(_, v)| v.clone()).collect();
    let got_ids = ids(&got);
    assert_eq!(got_ids.iter().collect::<HashSet<_>>().len(), got_ids.len(), "no duplicates");
    assert_eq!(
        got_ids.iter().collect::<HashSet<_>>(),
        ids(&expected).iter().collect::<HashSet<_>>(),
        "no loss: the stream carried exactly the feed"
    );
    assert_eq!(per_stream(&got), per_stream(&expected), "in order per stream");
    assert_eq!(types(&stream_of(&got, &first)), ["RideBooked", "RiderAddedToRoster", "RideCancelled"]);
    // A bad Last-Event-ID is 400 naming it.
    let bad = s
        .call_with(reqwest::Method::GET, "/v1/events/stream", Some(&token), None, &[("Last-Event-ID", "nope")])
        .await
        .expect(400);
    assert_eq!(bad.body["errors"][0]["field"], "/Last-Event-ID");
}

/// What the local receiver saw: every request, and which stream it fails.
#[derive(Default)]
struct Receiver {
    /// (signature header, body, answered 200) of every request, in arrival order.
    seen: Mutex<Vec<(String, String, bool)>>,
    /// Requests about a stream containing this text fail with 500 ([`BOOKED_AT`] and a
    /// start: the stream of the ride booked for that start, from its first delivery on).
    fail: Mutex<Option<String>>,
}

/// Armed in [`Receiver::fail`] with a start before a booking, so that the ride's stream
/// fails from its first delivery on: set after the booking's answer, the dispatcher could
/// deliver first, and the first ride stream delivered need not be this one (the
/// dispatcher sends several streams at once).
const BOOKED_AT: &str = "booked at ";

async fn receiver() -> (Arc<Receiver>, String) {
    use axum::http::{HeaderMap, StatusCode};
    let r = Arc::new(Receiver::default());
    let state = r.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let r = state.clone();
            async move {
                let sig = headers.get("samskab-signature").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let item: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let stream = item["stream"].as_str().unwrap_or("").to_owned();
                let ok = {
                    let mut failing = r.fail.lock().unwrap();
                    let armed = failing.as_deref().and_then(|f| f.strip_prefix(BOOKED_AT)).is_some_and(|start| {
                        item["type"] == "RideBooked"
                            && item["data"]["start"].as_str().is_some_and(|s| s.starts_with(start))
                    });
                    if armed {
                        *failing = Some(stream.clone());
                    }
                    !failing.as_ref().is_some_and(|f| stream.contains(f.as_str()))
                };
                r.seen.lock().unwrap().push((sig, body, ok));
                if ok { StatusCode::OK } else { StatusCode::INTERNAL_SERVER_ERROR }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, url)
}

/// Checks a `Samskab-Signature` against the secret, independently of the gateway's code.
fn verify(secret: &str, header: &str, body: &str) -> bool {
    let Some((t, v1)) = header.strip_prefix("t=").and_then(|h| h.split_once(",v1=")) else { return false };
    let Ok(t) = t.parse::<i64>() else { return false };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let fresh = (chrono::Utc::now().timestamp() - t).abs() < 300;
    fresh && hex::encode(mac.finalize().into_bytes()) == v1
}

impl Receiver {
    /// Items it answered 200 to, in arrival order.
    fn delivered(&self) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(.., ok)| *ok)
            .map(|(_, b, _)| serde_json::from_str(b).unwrap())
            .collect()
    }

    /// Every item it was sent, failed ones included.
    fn tried(&self) -> Vec<Value> {
        self.seen.lock().unwrap().iter().map(|(_, b, _)| serde_json::from_str(b).unwrap()).collect()
    }
}

async fn webhooks_retry_one_failing_stream_while_others_flow_and_survive_a_restart(s: System) {
    let w = s.world().await;
    let integrator = s.token(Role::Integrator(Some(w.chapter)));
    let coord = s.token(Role::Coordinator(w.home));
    let (rx, url) = receiver().await;
    let created = s.post("/v1/webhooks", &integrator, json!({"url": url, "event_types": []})).await.expect(201);
    let hook = created.str("webhook_id");
    let secret = created.str("secret");
    assert!(secret.len() >= 32, "a signing secret is shown at creation");
    assert_eq!(created.header("location"), Some(format!("/v1/webhooks/{hook}")));
    let read = s.get(&format!("/v1/webhooks/{hook}"), &integrator).await.expect(200);
    assert!(read.body.get("secret").is_none(), "the secret is shown once only");
    assert_eq!((read.str("status"), read.str("url")), ("active".to_owned(), url.clone()));
    let start = feed_end(&s, &integrator).await;

    // Ride A's stream fails; rides B and C flow, interleaved with A's events.
    *rx.fail.lock().unwrap() = Some(format!("{BOOKED_AT}2027-05-03T08:00:00"));
    let a = s.post("/v1/rides", &coord, book_body(&w, "2027-05-03T08:00:00Z", w.residents[0])).await.expect(201);
    let a = a.str("ride_id");
    let b = s.post("/v1/rides", &coord, book_body(&w, "2027-05-04T08:00:00Z", w.residents[0])).await.expect(201);
    let b = b.str("ride_id");
    s.post(&format!("/v1/rides/{a}/roster"), &coord, json!({"resident_id": w.residents[1]})).await.expect(200);
    let c = s.post("/v1/rides", &coord, book_body(&w, "2027-05-05T08:00:00Z", w.residents[0])).await.expect(201);
    let c = c.str("ride_id");
    s.post(&format!("/v1/rides/{b}/roster"), &coord, json!({"resident_id": w.residents[1]})).await.expect(200);
    s.post(&format!("/v1/rides/{a}/cancel"), &coord, json!({"reason": "weather"})).await.expect(200);
    s.post(&format!("/v1/rides/{c}/cancel"), &coord, json!({"reason": "rider"})).await.expect(200);
    s.post(&format!("/v1/rides/{b}/cancel"), &coord, json!({"reason": "volunteer"})).await.expect(200);

    let expected = feed_until(&s, &integrator, &start, "the last cancellation in the feed", |expected| {
        types(&stream_of(expected, &b)).contains(&"RideCancelled".to_owned())
    })
    .await;
    let expect_of = |ride: &str| ids(&stream_of(&expected, ride).into_iter().cloned().collect::<Vec<_>>());
    assert_eq!(expect_of(&a).len(), 3);
    // B and C arrive in full while A is retried and never gets past its first event.
    s.eventually("B and C delivered while A retries", || async {
        let got = rx.delivered();
        let of = |ride: &str| got.iter().filter(|i| i["stream"].as_str().unwrap().contains(ride)).count();
        let a_tries = rx.tried().iter().filter(|i| i["stream"].as_str().unwrap().contains(&a)).count();
        of(&b) >= expect_of(&b).len() && of(&c) >= expect_of(&c).len() && a_tries >= 3
    })
    .await;
    {
        assert!(!rx.delivered().iter().any(|i| i["stream"].as_str().unwrap().contains(&a)));
        let got = rx.tried();
        let a_seen: Vec<&str> = got
            .iter()
            .filter(|i| i["stream"].as_str().unwrap().contains(&a))
            .map(|i| i["event_id"].as_str().unwrap())
            .collect();
        assert!(a_seen.iter().all(|e| *e == expect_of(&a)[0]), "a failing stream waits at its first event: {a_seen:?}");
    }
    let backlog = s.get(&format!("/v1/webhooks/{hook}"), &integrator).await.expect(200);
    assert!(backlog.body["backlog"].as_i64().unwrap() >= 3, "A's events wait: {}", backlog.body);
    let metrics = s.http.get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("webhook_backlog") && l.contains(&hook)),
        "the backlog is a gauge at /metrics"
    );
    // The receiver recovers: A's events arrive, in order.
    *rx.fail.lock().unwrap() = None;
    s.eventually("A delivered after recovery", || async {
        let got = rx.delivered();
        let a_ok: HashSet<&str> = got
            .iter()
            .filter(|i| i["stream"].as_str().unwrap().contains(&a))
            .map(|i| i["event_id"].as_str().unwrap())
            .collect();
        a_ok.len() == 3
    })
    .await;
    let got = rx.delivered();
    for (sig, body, _) in rx.seen.lock().unwrap().iter() {
        assert!(verify(&secret, sig, body), "every delivery is signed: {sig}");
    }
    // Every expected event arrived once, in the feed's order per stream.
    for ride in [&a, &b, &c] {
        let want = expect_of(ride);
        let arrived: Vec<String> = got
            .iter()
            .filter(|i| i["stream"].as_str().unwrap().contains(ride.as_str()))
            .map(|i| i["event_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(arrived, want, "stream of {ride}: every event once, in order");
    }
    let all_expected: HashSet<String> = ids(&expected).into_iter().collect();
    let all_got: HashSet<String> = got.iter().map(|i| i["event_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(all_got, all_expected, "every event of the chapter since the webhook was made, nothing else");
    // The integrator sees the attempts, failures included. An attempt is recorded in the
    // transaction that takes its event off the queue, after the receiver has answered: so
    // once the backlog is empty, every delivery is in the log.
    s.eventually("the backlog to drain", || async {
        s.get(&format!("/v1/webhooks/{hook}"), &integrator).await.body["backlog"] == 0
    })
    .await;
    let log = s.get(&format!("/v1/webhooks/{hook}/deliveries?limit=500"), &integrator).await.expect(200);
    let log = log.body["items"].as_array().unwrap().clone();
    let failed_a = log
        .iter()
        .filter(|d| d["outcome"] == "failed" && d["stream"].as_str().unwrap().contains(&a) && d["status_code"] == 500)
        .count();
    assert!(failed_a >= 3, "the failed attempts are listed: {log:?}");
    assert_eq!(log.iter().filter(|d| d["outcome"] == "delivered").count(), all_expected.len());
    let head_attempts: Vec<i64> = log
        .iter()
        .filter(|d| d["event_id"].as_str() == Some(expect_of(&a)[0].as_str()))
        .map(|d| d["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(head_attempts, (1..=head_attempts.len() as i64).collect::<Vec<_>>(), "attempts count up");

    // A restart in the middle: a new event fails, the system restarts, then it recovers.
    *rx.fail.lock().unwrap() = Some(c.clone());
    let before = rx.seen.lock().unwrap().len();
    let d = s.post("/v1/rides", &coord, book_body(&w, "2027-05-06T08:00:00Z", w.residents[0])).await.expect(201);
    let d = d.str("ride_id");
    *rx.fail.lock().unwrap() = Some(d.clone());
    s.eventually("D's booking to be tried", || async {
        rx.seen.lock().unwrap()[before..].iter().any(|(_, b, _)| b.contains(&d))
    })
    .await;
    let s = s.restart().await;
    let coord = s.token(Role::Coordinator(w.home));
    s.post(&format!("/v1/rides/{d}/cancel"), &coord, json!({"reason": "rider"})).await.expect(200);
    *rx.fail.lock().unwrap() = None;
    s.eventually("D's events delivered after the restart", || async {
        let got = rx.delivered();
        let d_types: Vec<String> = got
            .iter()
            .filter(|i| i["stream"].as_str().unwrap().contains(&d))
            .map(|i| i["type"].as_str().unwrap().to_owned())
            .collect();
        d_types == ["RideBooked", "RideCancelled"]
    })
    .await;
    for (sig, body, _) in rx.seen.lock().unwrap().iter() {
        assert!(verify(&secret, sig, body), "signed after the restart too");
    }
    // Deleting it stops deliveries.
    s.delete(&format!("/v1/webhooks/{hook}"), &integrator).await.expect(204);
    s.get(&format!("/v1/webhooks/{hook}"), &integrator).await.expect(404);
}

async fn webhooks_refuse_private_targets_and_bad_input(s: System) {
    let w = s.world().await;
    let s = {
        // The switch off: a fresh system on the same data.
        let mut s = s;
        s.config.http.webhooks.allow_loopback = false;
        s.restart().await
    };
    let integrator = s.token(Role::Integrator(Some(w.chapter)));
    let heads = s.heads().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:8080/hook",
        "http://[::1]/hook",
        "http://[fd00:ec2::254]/",
        "http://100.64.1.1/",
        "http://0.0.0.0/",
        "http://192.168.0.10/",
        "http://[2002:a00:1::1]/",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        "http://[64:ff9b:1::a00:1]/",
        "http://does-not-resolve.invalid/hook",
        "ftp://example.org/",
        "not a url",
        "http://user:pw@example.org/",
    ] {
        let r =
            s.post("/v1/webhooks", &integrator, json!({"url": url, "event_types": ["RideBooked"]})).await.expect(400);
        assert_eq!(r.body["errors"][0]["field"], "/url", "{url}: {}", r.body);
        // A refusal never says which address a name resolved to.
        let text = r.body.to_string();
        assert!(!text.contains("127.0.0.1") && !text.contains("::1"), "{url}: {text}");
    }
    let r = s
        .post("/v1/webhooks", &integrator, json!({"url": "http://example.org/", "event_types": ["NoSuchEvent"]}))
        .await;
    assert_eq!(r.expect(400).body["errors"][0]["field"], "/event_types/0");
    let r =
        s.post("/v1/webhooks", &integrator, json!({"url": "http://example.org/", "event_types": ["SlotHeld"]})).await;
    assert_eq!(r.expect(400).body["errors"][0]["field"], "/event_types/0", "internal events are not offered");
    let r = s.post("/v1/webhooks", &integrator, json!({"event_types": []})).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/url");
    let r = s.post("/v1/webhooks", &integrator, json!({"url": "http://example.org/", "event_types": [], "x": 1})).await;
    assert_eq!(r.expect(400).body["errors"][0]["field"], "/x");
    let list = s.get("/v1/webhooks", &integrator).await.expect(200);
    assert_eq!(list.body["items"], json!([]), "nothing stored on refusal");
    assert_eq!(s.heads().await, heads);
    s.get("/v1/webhooks?limit=501", &integrator).await.expect(400);
    s.get("/v1/webhooks/not-a-uuid", &integrator).await.expect(400);
}

async fn webhooks_are_the_integrators_own(s: System) {
    let w = s.world().await;
    let mine = s.token(Role::Integrator(Some(w.chapter)));
    let other = s.token(Role::Integrator(Some(w.chapter)));
    let network = s.token(Role::Integrator(None));
    let (_rx, url) = receiver().await;
    let hook = s
        .post("/v1/webhooks", &mine, json!({"url": url, "event_types": ["RideBooked", "RideCancelled"]}))
        .await
        .expect(201)
        .str("webhook_id");
    let path = format!("/v1/webhooks/{hook}");
    s.get(&path, &mine).await.expect(200);
    s.get(&format!("{path}/deliveries"), &mine).await.expect(200);
    for t in [&other, &network] {
        s.get(&path, t).await.expect(404);
        s.get(&format!("{path}/deliveries"), t).await.expect(404);
        s.delete(&path, t).await.expect(404);
        assert_eq!(s.get("/v1/webhooks", t).await.expect(200).body["items"], json!([]));
    }
    let listed = s.get("/v1/webhooks", &mine).await.expect(200);
    assert_eq!(listed.body["items"][0]["webhook_id"], hook.as_str());
    assert_eq!(listed.body["items"][0]["event_types"], json!(["RideBooked", "RideCancelled"]));
    s.get(&path, &s.admin()).await.expect(200);
    for role in [Role::ChapterAdmin(w.chapter), Role::Coordinator(w.home), Role::Pilot(w.pilot)] {
        let t = s.token(role);
        s.get(&path, &t).await.expect(404);
        s.get("/v1/webhooks", &t).await.expect(403);
        s.post("/v1/webhooks", &t, json!({"url": url, "event_types": []})).await.expect(403);
    }
    // Only the chosen types are delivered.
    let (rx, url2) = receiver().await;
    let typed = s.post("/v1/webhooks", &mine, json!({"url": url2, "event_types": ["RideCancelled"]})).await.expect(201);
    let coord = s.token(Role::Coordinator(w.home));
    let ride = s.post("/v1/rides", &coord, book_body(&w, "2027-05-03T08:00:00Z", w.residents[0])).await.expect(201);
    let ride = ride.str("ride_id");
    s.post(&format!("/v1/rides/{ride}/cancel"), &coord, json!({"reason": "rider"})).await.expect(200);
    s.eventually("the cancellation delivered", || async { !rx.delivered().is_empty() }).await;
    let got = rx.delivered();
    assert!(got.iter().all(|i| i["type"] == "RideCancelled"), "{got:?}");
    let first = rx.seen.lock().unwrap()[0].clone();
    assert!(verify(&typed.str("secret"), &first.0, &first.1), "signed with its own secret");
    s.delete(&path, &mine).await.expect(204);
    s.get(&path, &mine).await.expect(404);
}

async fn event_streams_are_capped_per_caller_and_in_all(mut s: System) {
    s.config.http.streams_per_caller = 10;
    s.config.http.streams_total = 15;
    let s = s.restart().await;
    let url = format!("{}/v1/events/stream", s.base);
    let open = |token: String| {
        let (http, url) = (s.http.clone(), url.clone());
        async move { http.get(url).bearer_auth(token).send().await.expect("an answer") }
    };
    // 300 streams from one token at once: ten open, the rest are told 429.
    let network = s.token(Role::Integrator(None));
    let answers = futures_util::future::join_all((0..300).map(|_| open(network.clone()))).await;
    let (mut streams, refused): (Vec<_>, Vec<_>) = answers.into_iter().partition(|r| r.status() == 200);
    assert_eq!((streams.len(), refused.len()), (10, 290));
    let first = refused.into_iter().next().unwrap();
    assert!(first.headers().get("retry-after").is_some());
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["code"], "rate-limited", "{body}");
    // While they are open, others are served.
    s.call(reqwest::Method::GET, "/healthz", None, None).await.expect(200);
    s.get("/v1/events?limit=1", &s.admin()).await.expect(200);
    // Another caller has its own ten, but the gateway holds fifteen in all.
    let admin = s.admin();
    let mut more = Vec::new();
    for _ in 0..5 {
        let r = open(admin.clone()).await;
        assert_eq!(r.status(), 200);
        more.push(r);
    }
    assert_eq!(open(admin.clone()).await.status(), 429, "the gateway's limit");
    // A stream that closes gives its place back.
    drop(streams.pop());
    s.eventually("a closed stream's place to be free again", || {
        let open = open(network.clone());
        async move { open.await.status() == 200 }
    })
    .await;
    drop((streams, more));
}

async fn an_event_stream_ends_by_itself_after_the_gateways_limit(mut s: System) {
    s.config.http.stream_max_seconds = 1;
    let s = s.restart().await;
    let resp = s
        .http
        .get(format!("{}/v1/events/stream", s.base))
        .bearer_auth(s.admin())
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(resp.status(), 200);
    // Without max_seconds, the gateway's limit ends it: the body completes.
    let body = tokio::time::timeout(std::time::Duration::from_secs(30), resp.text()).await;
    assert!(body.is_ok_and(|b| b.is_ok()), "the stream ended by itself");
}

async fn caught_up_streams_are_woken_by_the_shared_poller(s: System) {
    let token = s.token(Role::Integrator(None));
    let start = feed_end(&s, &token).await;
    // Three streams at the feed's end, caught up and waiting.
    let mut streams = Vec::new();
    for _ in 0..3 {
        let url = format!("{}/v1/events/stream?cursor={start}", s.base);
        let resp = s.http.get(&url).bearer_auth(&token).send().await.expect("the stream opens");
        assert_eq!(resp.status().as_u16(), 200);
        streams.push(resp);
    }
    // Let them read to the end and wait (nothing in the feed can show when they do).
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Something happens afterwards: the shared poller wakes each stream, well before the
    // streams' own one-minute safety net.
    let chapter = s.chapter().await;
    let woken = tokio::time::timeout(Duration::from_secs(30), async {
        for resp in &mut streams {
            let mut buf = String::new();
            let got = read_sse(resp, &mut buf, 1).await;
            assert!(got[0].1["stream"].as_str().is_some_and(|st| st.contains(&chapter.to_string())), "{:?}", got[0].1);
        }
    })
    .await;
    assert!(woken.is_ok(), "the streams were not woken");
}

async fn webhooks_are_capped_per_owner_under_concurrent_creation(mut s: System) {
    s.config.http.webhooks.per_owner = 3;
    let s = s.restart().await;
    let w = s.world().await;
    let (_rx, url) = receiver().await;
    let (a, b) = (s.token(Role::Integrator(Some(w.chapter))), s.token(Role::Integrator(Some(w.chapter))));
    let body = json!({"url": url, "event_types": []});
    // Eight creations by one owner at once: exactly three are made.
    let answers = futures_util::future::join_all((0..8).map(|_| s.post("/v1/webhooks", &a, body.clone()))).await;
    let made: Vec<String> = answers.iter().filter(|r| r.status == 201).map(|r| r.str("webhook_id")).collect();
    let refused: Vec<_> = answers.iter().filter(|r| r.status == 422).collect();
    assert_eq!(
        (made.len(), refused.len()),
        (3, 5),
        "{:?}",
        answers.iter().map(|r| r.status.as_u16()).collect::<Vec<_>>()
    );
    assert_eq!(refused[0].body["code"], "limit-reached", "{}", refused[0].body);
    assert_eq!(s.get("/v1/webhooks", &a).await.expect(200).body["items"].as_array().unwrap().len(), 3);
    // Another owner has its own three.
    for _ in 0..3 {
        s.post("/v1/webhooks", &b, body.clone()).await.expect(201);
    }
    s.post("/v1/webhooks", &b, body.clone()).await.expect(422);
    // Two deletions of one webhook at once count it off once: one place, not two.
    let path = format!("/v1/webhooks/{}", made[0]);
    let (d1, d2) = futures_util::join!(s.delete(&path, &a), s.delete(&path, &a));
    let mut statuses = [d1.status.as_u16(), d2.status.as_u16()];
    statuses.sort();
    assert!(statuses == [204, 204] || statuses == [204, 404], "{statuses:?}");
    let again = futures_util::future::join_all((0..4).map(|_| s.post("/v1/webhooks", &a, body.clone()))).await;
    let mut got: Vec<u16> = again.iter().map(|r| r.status.as_u16()).collect();
    got.sort();
    assert_eq!(got, [201, 422, 422, 422], "one place freed");
    // A refused creation wrote nothing.
    assert_eq!(s.get("/v1/webhooks", &a).await.expect(200).body["items"].as_array().unwrap().len(), 3);
}

/// A receiver that holds every request until released, and knows whether the gateway
/// still waits for its answer (a request the gateway gave up on is dropped).
#[derive(Default)]
struct Holding {
    /// Requests received.
    arrived: std::sync::atomic::AtomicUsize,
    /// Requests whose connection the gateway dropped before the answer.
    abandoned: std::sync::atomic::AtomicUsize,
    release: tokio::sync::Notify,
    released: std::sync::atomic::AtomicBool,
}

async fn holding_receiver() -> (Arc<Holding>, String) {
    use std::sync::atomic::Ordering::SeqCst;
    struct Abandoned(Arc<Holding>, bool);
    impl Drop for Abandoned {
        fn drop(&mut self) {
            if !self.1 {
                self.0.abandoned.fetch_add(1, SeqCst);
            }
        }
    }
    let h = Arc::new(Holding::default());
    let state = h.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let h = state.clone();
            async move {
                h.arrived.fetch_add(1, SeqCst);
                let mut guard = Abandoned(h.clone(), false);
                while !h.released.load(SeqCst) {
                    let notified = h.release.notified();
                    if h.released.load(SeqCst) {
                        break;
                    }
                    notified.await;
                }
                guard.1 = true;
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (h, url)
}

async fn a_receiver_that_holds_its_request_delays_only_its_own_webhook(s: System) {
    use std::sync::atomic::Ordering::SeqCst;
    let w = s.world().await;
    let coord = s.token(Role::Coordinator(w.home));
    // Owner A's webhook is made first (the dispatcher used to serve webhooks in this order).
    let (held, held_url) = holding_receiver().await;
    let a = s.token(Role::Integrator(Some(w.chapter)));
    s.post("/v1/webhooks", &a, json!({"url": held_url, "event_types": ["RideBooked"]})).await.expect(201);
    let (rx, url) = receiver().await;
    let b = s.token(Role::Integrator(Some(w.chapter)));
    s.post("/v1/webhooks", &b, json!({"url": url, "event_types": ["RideBooked"]})).await.expect(201);
    let ride = s.post("/v1/rides", &coord, book_body(&w, "2027-05-04T08:00:00Z", w.residents[0])).await.expect(201);
    let ride = ride.str("ride_id");
    s.eventually("owner A's receiver to hold the booking", || async { held.arrived.load(SeqCst) >= 1 }).await;
    s.eventually("owner B's delivery", || async {
        rx.delivered().iter().any(|i| i["stream"] == format!("ride-{ride}"))
    })
    .await;
    // B was served while the gateway still waited for A's answer.
    assert_eq!(held.abandoned.load(SeqCst), 0, "A's request was still open when B's arrived");
    assert!(!held.released.load(SeqCst));
    held.released.store(true, SeqCst);
    held.release.notify_waiters();
    s.eventually("A's delivery recorded", || async {
        let hooks = s.get("/v1/webhooks", &a).await.expect(200);
        hooks.body["items"][0]["backlog"] == 0
    })
    .await;
}
