//! Calendar feeds, calendar tokens and the audit trail over REST, on the real system.
//!
//! The feeds are read as raw bytes and parsed with a real iCalendar parser (`ical`); the
//! raw text is checked for what a parser forgives (CRLF endings, 75-octet folding) and
//! for what must never be in it (residents' names and notes).

use std::io::BufReader;

use chrono::{DateTime, Duration, Utc};
use e2e::{System, World};
use gateway::{Claims, Keys, Role};
use ical::parser::ical::component::{IcalCalendar, IcalEvent};
use ical::property::Property;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

testkit::both_backends!(setup = e2e::System::start;
    a_care_home_feed_is_valid_rfc5545_and_names_nobody,
    a_pilot_feed_follows_its_rides,
    calendar_tokens_open_one_feed_and_nothing_else,
    calendar_tokens_expire_and_stop_with_their_makers_access,
    the_audit_trail_tells_who_did_what_in_order,
);

/// Residents' names and notes that must never reach a calendar or an audit summary.
const NAMES: [&str; 2] = ["Zebedæus Quorndon", "Philippa Yarrowby"];
const NOTES: &str = "Hemmelig note om Zebedæus: bange for hunde";
/// A long care-home name with æøå and characters TEXT must escape.
const HOME_NAME: &str =
    "Plejehjemmet Æblegården ved Østre Fælled; Søndergårdens afdeling for ældre, bygning C \\ Åbakken";

/// A token with a known pseudonymous subject (the audit shows it as the actor).
fn token_as(s: &System, sub: &str, role: Role) -> String {
    let keys = Keys::from_env_or_data_dir(s.config.data_dir()).expect("keys");
    keys.sign(&Claims::new(sub, role, chrono::Duration::hours(1)))
}

/// A start `days` ahead at noon, Copenhagen winter time (inside ride hours in summer too).
fn start_in(days: i64) -> String {
    let day = (Utc::now() + Duration::days(days)).date_naive();
    format!("{day}T12:00:00+01:00")
}

/// The same time as iCalendar writes it in UTC.
fn ical_utc(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc().format("%Y%m%dT%H%M%SZ").to_string()
}

/// The escaping of a TEXT value (RFC 5545 §3.3.11), to compare raw property values.
fn escaped(text: &str) -> String {
    text.replace('\\', "\\\\").replace(';', "\\;").replace(',', "\\,").replace('\n', "\\n")
}

/// A chapter with reminders at 1440 and 90 minutes, a care home with a long name that
/// requires confirmation, a two-seat trishaw, a pilot and two residents with distinctive
/// names and notes; waits until booking knows them.
async fn world(s: &System) -> World {
    let admin = s.admin();
    let chapter = s
        .post(
            "/v1/chapters",
            &admin,
            json!({"name": "Aarhus", "timezone": "Europe/Copenhagen", "settings": {"lead_time_minutes": 60,
                "default_turnaround_minutes": 15, "reminder_lead_minutes": [1440, 90]}}),
        )
        .await
        .expect(201)
        .str("chapter_id")
        .parse()
        .unwrap();
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let home = s
        .post(
            "/v1/carehomes",
            &s.token(Role::ChapterAdmin(chapter)),
            json!({"chapter_id": chapter, "name": HOME_NAME, "address": "Åbakken 7, 8000 Aarhus C",
                "ride_hours": days.iter().map(|d| json!({"weekday": d, "opens": "09:00", "closes": "17:00"})).collect::<Vec<_>>(),
                "turnaround_minutes": 15, "requires_confirmation": true, "pilots_choose_riders": true}),
        )
        .await
        .expect(201)
        .str("carehome_id")
        .parse()
        .unwrap();
    let bike = s.bike(chapter, home, 2).await;
    let pilot = s.pilot(chapter).await;
    let mut residents = Vec::new();
    for name in NAMES {
        let body = json!({"display_name": name, "notes": NOTES,
            "consent": {"given_by": "relative", "given_at": "2026-11-01T10:00:00Z", "scope": ["rides", "stories"]}});
        let r = s
            .post(&format!("/v1/carehomes/{home}/residents"), &s.token(Role::Coordinator(home)), body)
            .await
            .expect(201);
        residents.push(r.str("resident_id").parse().unwrap());
    }
    let w = World { chapter, home, bike, pilot, residents };
    s.settle(&w).await;
    w
}

/// Books a ride (retrying while booking still learns of the world).
async fn book(s: &System, token: &str, w: &World, start: &str, riders: &[Uuid]) -> Value {
    let body =
        json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": start, "duration_minutes": 60, "resident_ids": riders});
    testkit::eventually("booking to accept the ride", testkit::DEFAULT_TIMEOUT, || async {
        let r = s.post("/v1/rides", token, body.clone()).await;
        if r.status.as_u16() == 201 {
            return Ok(r.body);
        }
        assert!(matches!(r.status.as_u16(), 404 | 422), "booking answered {}: {}", r.status, r.body);
        Err(r.body)
    })
    .await
}

/// A raw GET: status, content type, body text.
async fn fetch(s: &System, path: &str, bearer: Option<&str>) -> (u16, String, String) {
    let mut req = s.http.get(format!("{}{path}", s.base));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("answered");
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, ct, resp.text().await.expect("text"))
}

/// The problem code of a raw answer.
fn code(body: &str) -> String {
    serde_json::from_str::<Value>(body).ok().and_then(|v| v["code"].as_str().map(str::to_owned)).unwrap_or_default()
}

/// Parses a feed with the `ical` parser: exactly one calendar.
fn parse(text: &str) -> IcalCalendar {
    let mut cals: Vec<IcalCalendar> = ical::IcalParser::new(BufReader::new(text.as_bytes()))
        .collect::<Result<_, _>>()
        .expect("the parser accepts it");
    assert_eq!(cals.len(), 1, "one VCALENDAR");
    cals.remove(0)
}

fn prop<'a>(props: &'a [Property], name: &str) -> Option<&'a str> {
    props.iter().find(|p| p.name == name).and_then(|p| p.value.as_deref())
}

fn event<'a>(cal: &'a IcalCalendar, ride: &str) -> Option<&'a IcalEvent> {
    cal.events.iter().find(|e| prop(&e.properties, "UID") == Some(&format!("{ride}@samskab")))
}

/// What a feed must be, whatever it holds: the RFC's framing, and nobody's name.
fn check_raw(text: &str) {
    assert!(text.starts_with("BEGIN:VCALENDAR\r\n") && text.ends_with("END:VCALENDAR\r\n"), "{text}");
    assert!(!text.replace("\r\n", "").contains('\n'), "every line ends in CRLF");
    for line in text.split("\r\n") {
        assert!(line.len() <= 75, "a line of {} octets: {line:?}", line.len());
    }
    for secret in NAMES.iter().chain([&NOTES, &"Zebedæus", &"Yarrowby", &"Åbakken 7"]) {
        assert!(!text.contains(secret), "the feed holds {secret:?}");
    }
}

/// Reads a feed until `ok` holds (the ride lists behind it lag a moment).
async fn feed_until(s: &System, path: &str, token: &str, what: &str, ok: impl Fn(&IcalCalendar) -> bool) -> String {
    testkit::eventually(&format!("the feed to show {what}"), testkit::DEFAULT_TIMEOUT, || async {
        let (status, ct, body) = fetch(s, path, Some(token)).await;
        assert_eq!((status, ct.as_str()), (200, "text/calendar; charset=utf-8"), "{body}");
        if ok(&parse(&body)) { Ok(body) } else { Err(format!("\n{body}")) }
    })
    .await
}

/// Reads an audit trail until it holds at least `n` items (it is read from the services'
/// logs, whose readers may lag the last commit by a moment, like any report).
async fn trail_until(s: &System, path: &str, token: &str, n: usize) -> e2e::Reply {
    testkit::eventually(&format!("the trail at {path} to reach {n} items"), testkit::DEFAULT_TIMEOUT, || async {
        let r = s.get(path, token).await.expect(200);
        r.body["items"].as_array().is_some_and(|i| i.len() >= n).then_some(r)
    })
    .await
}

async fn a_care_home_feed_is_valid_rfc5545_and_names_nobody(s: System) {
    let w = world(&s).await;
    let (coord, pilot) = (s.token(Role::Coordinator(w.home)), s.token(Role::Pilot(w.pilot)));
    // Booked by the coordinator with both residents; pending when the pilot books; one cancelled.
    let (a_start, b_start, c_start) = (start_in(10), start_in(11), start_in(12));
    let a = book(&s, &coord, &w, &a_start, &w.residents).await;
    assert_eq!(a["status"], "booked");
    let b = book(&s, &pilot, &w, &b_start, &w.residents[..1]).await;
    assert_eq!(b["status"], "pending_confirmation");
    let c = book(&s, &coord, &w, &c_start, &w.residents[1..]).await;
    let (a, b, c) = (a["ride_id"].as_str().unwrap(), b["ride_id"].as_str().unwrap(), c["ride_id"].as_str().unwrap());
    s.post(&format!("/v1/rides/{c}/cancel"), &coord, json!({"reason": "weather", "note": NOTES})).await.expect(200);

    let path = format!("/v1/carehomes/{}/calendar.ics", w.home);
    let text = feed_until(&s, &path, &coord, "three rides, one cancelled", |cal| {
        cal.events.len() == 3 && event(cal, c).is_some_and(|e| prop(&e.properties, "STATUS") == Some("CANCELLED"))
    })
    .await;
    check_raw(&text);
    assert!(text.contains("\r\n "), "the long LOCATION is folded");
    let cal = parse(&text);
    assert_eq!(prop(&cal.properties, "VERSION"), Some("2.0"));
    assert!(prop(&cal.properties, "PRODID").is_some_and(|p| !p.is_empty()));
    assert_eq!(prop(&cal.properties, "CALSCALE"), Some("GREGORIAN"));

    let ea = event(&cal, a).expect("ride A");
    let p = &ea.properties;
    assert_eq!(prop(p, "STATUS"), Some("CONFIRMED"));
    assert_eq!(prop(p, "SUMMARY"), Some("Trishaw ride (2 riders)"));
    assert_eq!(prop(p, "DTSTART"), Some(ical_utc(&a_start).as_str()), "DTSTART in UTC");
    let end = (DateTime::parse_from_rfc3339(&a_start).unwrap() + Duration::minutes(60)).to_rfc3339();
    assert_eq!(prop(p, "DTEND"), Some(ical_utc(&end).as_str()));
    assert!(prop(p, "DTSTAMP").is_some_and(|t| t.len() == 16 && t.ends_with('Z')));
    assert_eq!(prop(p, "LOCATION"), Some(escaped(HOME_NAME).as_str()), "the care home's name, escaped");
    let seq_a: u64 = prop(p, "SEQUENCE").expect("SEQUENCE").parse().expect("a number");
    let mut triggers: Vec<&str> = ea
        .alarms
        .iter()
        .map(|al| {
            assert_eq!(prop(&al.properties, "ACTION"), Some("DISPLAY"));
            assert!(prop(&al.properties, "DESCRIPTION").is_some(), "a DISPLAY alarm has a DESCRIPTION");
            prop(&al.properties, "TRIGGER").unwrap()
        })
        .collect();
    triggers.sort_unstable();
    assert_eq!(triggers, ["-PT1440M", "-PT90M"], "one VALARM per reminder lead time of the chapter");

    let eb = event(&cal, b).expect("ride B");
    assert_eq!(prop(&eb.properties, "STATUS"), Some("TENTATIVE"), "pending confirmation");
    assert_eq!(prop(&eb.properties, "SUMMARY"), Some("Trishaw ride (1 rider)"));
    assert_eq!(eb.alarms.len(), 2);
    let ec = event(&cal, c).expect("ride C");
    assert!(ec.alarms.is_empty(), "no reminder for a cancelled ride");

    // A reschedule keeps the UID and raises the SEQUENCE.
    let a2_start = start_in(13);
    s.post(&format!("/v1/rides/{a}/reschedule"), &coord, json!({"start": a2_start, "duration_minutes": 45}))
        .await
        .expect(200);
    let want = ical_utc(&a2_start);
    let text = feed_until(&s, &path, &coord, "the rescheduled ride", |cal| {
        event(cal, a).is_some_and(|e| prop(&e.properties, "DTSTART") == Some(want.as_str()))
    })
    .await;
    check_raw(&text);
    let cal = parse(&text);
    assert_eq!(cal.events.len(), 3, "the same ride, not a new event");
    let seq_a2: u64 = prop(&event(&cal, a).unwrap().properties, "SEQUENCE").unwrap().parse().unwrap();
    assert!(seq_a2 > seq_a, "SEQUENCE grows: {seq_a} then {seq_a2}");
    // Confirming the pending ride turns it CONFIRMED with a higher SEQUENCE too.
    let seq_b: u64 = prop(&eb.properties, "SEQUENCE").unwrap().parse().unwrap();
    s.post(&format!("/v1/rides/{b}/confirm"), &coord, json!({})).await.expect(200);
    let text = feed_until(&s, &path, &coord, "the confirmed ride", |cal| {
        event(cal, b).is_some_and(|e| prop(&e.properties, "STATUS") == Some("CONFIRMED"))
    })
    .await;
    let cal = parse(&text);
    let seq_b2: u64 = prop(&event(&cal, b).unwrap().properties, "SEQUENCE").unwrap().parse().unwrap();
    assert!(seq_b2 > seq_b);

    // Who reads it: the home's people, its chapter's integrator; a pilot of the chapter
    // reads the home but not its calendar (403); another chapter's admin sees nothing (404).
    let other = s.chapter().await;
    for (role, status) in [
        (Role::Admin, 200),
        (Role::ChapterAdmin(w.chapter), 200),
        (Role::Integrator(Some(w.chapter)), 200),
        (Role::Integrator(None), 200),
        (Role::Pilot(w.pilot), 403),
        (Role::ChapterAdmin(other), 404),
        (Role::Integrator(Some(other)), 404),
    ] {
        let (got, _, body) = fetch(&s, &path, Some(&s.token(role))).await;
        assert_eq!(got, status, "{role:?}: {body}");
        if status == 200 {
            check_raw(&body);
        }
    }
    let (got, _, body) = fetch(&s, &path, None).await;
    assert_eq!((got, code(&body).as_str()), (401, "unauthenticated"));
    let (got, _, body) = fetch(&s, &format!("/v1/carehomes/{}/calendar.ics", Uuid::now_v7()), Some(&coord)).await;
    assert_eq!((got, code(&body).as_str()), (404, "not-found"));
    let (got, _, body) = fetch(&s, &format!("{path}?colour=red"), Some(&coord)).await;
    assert_eq!(got, 400, "unknown parameters are refused: {body}");
}

async fn a_pilot_feed_follows_its_rides(s: System) {
    let w = world(&s).await;
    let pilot = s.token(Role::Pilot(w.pilot));
    let start = start_in(20);
    let r = book(&s, &s.token(Role::ChapterAdmin(w.chapter)), &w, &start, &w.residents).await;
    let id = r["ride_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/pilots/{}/calendar.ics", w.pilot);
    let text = feed_until(&s, &path, &pilot, "the pilot's ride", |cal| event(cal, &id).is_some()).await;
    check_raw(&text);
    let cal = parse(&text);
    let e = event(&cal, &id).unwrap();
    assert_eq!(prop(&e.properties, "SUMMARY"), Some("Trishaw ride (2 riders)"));
    assert_eq!(prop(&e.properties, "DTSTART"), Some(ical_utc(&start).as_str()));
    assert!(!text.contains("Pilot"), "the pilot is not named either");
    s.post(&format!("/v1/rides/{id}/cancel"), &pilot, json!({"reason": "volunteer"})).await.expect(200);
    let text = feed_until(&s, &path, &pilot, "the cancelled ride", |cal| {
        event(cal, &id).is_some_and(|e| prop(&e.properties, "STATUS") == Some("CANCELLED"))
    })
    .await;
    check_raw(&text);
    // The pilot itself, its chapter's admin and integrators; nobody else may know the pilot.
    let other_pilot = s.pilot(w.chapter).await;
    for (role, status) in [
        (Role::ChapterAdmin(w.chapter), 200),
        (Role::Integrator(Some(w.chapter)), 200),
        (Role::Coordinator(w.home), 404),
        (Role::Pilot(other_pilot), 404),
    ] {
        let (got, _, body) = fetch(&s, &path, Some(&s.token(role))).await;
        assert_eq!(got, status, "{role:?}: {body}");
    }
}

async fn calendar_tokens_open_one_feed_and_nothing_else(s: System) {
    let w = world(&s).await;
    let coord = s.token(Role::Coordinator(w.home));
    let feed = format!("/v1/carehomes/{}/calendar.ics", w.home);

    // Made by whoever may read that calendar; the secret is shown once.
    let made = s.post("/v1/calendar-tokens", &coord, json!({"carehome_id": w.home})).await.expect(201);
    let (id, token, url) = (made.str("calendar_token_id"), made.str("token"), made.str("url"));
    assert_eq!(made.header("location"), Some(format!("/v1/calendar-tokens/{id}")));
    assert!(token.starts_with("sct_") && token.len() > 40, "{token}");
    assert_eq!(url, format!("{feed}?token={token}"));
    let read = s.get(&format!("/v1/calendar-tokens/{id}"), &coord).await.expect(200);
    assert_eq!(read.body["token"], Value::Null, "the secret is never shown again");
    assert_eq!(read.str("carehome_id"), w.home.to_string());
    let mine = s.get("/v1/calendar-tokens", &coord).await.expect(200);
    assert_eq!(mine.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(mine.body["items"][0]["calendar_token_id"], id.as_str());
    let theirs = s.get("/v1/calendar-tokens", &s.token(Role::Coordinator(w.home))).await.expect(200);
    assert_eq!(theirs.body["items"], json!([]), "a list of one's own tokens only");

    // The gateway keeps a hash of it, never the secret.
    let store = eventlog::EventStore::connect(&s.config.url("gateway")).await.expect("the gateway's store opens");
    let rows: Vec<(String, String, String)> = store
        .fetch_rows("SELECT calendar_token_id, token_hash, owner_sub FROM gateway_calendar_tokens", &[])
        .await
        .expect("the tokens' table");
    store.close().await;
    assert_eq!(rows.len(), 1);
    let secret = token.trim_start_matches("sct_");
    assert!(
        rows.iter().all(|(id, hash, sub)| ![id, hash, sub].iter().any(|c| c.contains(secret))),
        "the secret is stored: {rows:?}"
    );
    assert_eq!(rows[0].0, id, "{rows:?}");
    assert!(rows[0].1.len() == 64 && rows[0].1.chars().all(|c| c.is_ascii_hexdigit()), "a SHA-256 hash: {rows:?}");

    // It opens the feed without any header.
    let (status, ct, body) = fetch(&s, &url, None).await;
    assert_eq!((status, ct.as_str()), (200, "text/calendar; charset=utf-8"), "{body}");
    check_raw(&body);

    // It is refused everywhere else, in the query and in the header alike.
    let pilot_feed = format!("/v1/pilots/{}/calendar.ics", w.pilot);
    for path in [
        format!("{pilot_feed}?token={token}"),
        format!("/v1/carehomes/{}?token={token}", w.home),
        format!("/v1/rides?carehome_id={}&token={token}", w.home),
        format!("/v1/calendar-tokens?token={token}"),
    ] {
        let (status, _, body) = fetch(&s, &path, None).await;
        assert_eq!((status, code(&body).as_str()), (401, "unauthenticated"), "{path}: {body}");
    }
    for path in [feed.clone(), format!("/v1/carehomes/{}", w.home), "/v1/calendar-tokens".into()] {
        let (status, _, body) = fetch(&s, &path, Some(&token)).await;
        assert_eq!((status, code(&body).as_str()), (401, "unauthenticated"), "{path} with the token as bearer: {body}");
    }
    let r = s
        .call(Method::POST, &format!("/v1/rides?token={token}"), None, Some(json!({"bike_id": w.bike})))
        .await
        .expect(401);
    assert_eq!(r.code(), "unauthenticated");

    // A bearer JWT is never accepted in the query string.
    for path in [format!("{feed}?token={coord}"), format!("/v1/carehomes/{}?token={coord}", w.home)] {
        let (status, _, body) = fetch(&s, &path, None).await;
        assert_eq!((status, code(&body).as_str()), (401, "unauthenticated"), "{path}: {body}");
    }

    // A pilot makes one for its own calendar; not for the home's (it reads the home: 403);
    // another chapter's admin cannot even see the home (404).
    let pilot = s.token(Role::Pilot(w.pilot));
    let p = s.post("/v1/calendar-tokens", &pilot, json!({"pilot_id": w.pilot})).await.expect(201);
    let (status, _, _) = fetch(&s, &p.str("url"), None).await;
    assert_eq!(status, 200);
    s.post("/v1/calendar-tokens", &pilot, json!({"carehome_id": w.home})).await.expect(403);
    let foreign = s.token(Role::ChapterAdmin(s.chapter().await));
    s.post("/v1/calendar-tokens", &foreign, json!({"carehome_id": w.home})).await.expect(404);
    s.get(&format!("/v1/calendar-tokens/{id}"), &foreign).await.expect(404);
    s.delete(&format!("/v1/calendar-tokens/{id}"), &foreign).await.expect(404);

    // Bad bodies name the field.
    for (body, field) in [
        (json!({}), "/carehome_id"),
        (json!({"carehome_id": w.home, "pilot_id": w.pilot}), "/pilot_id"),
        (json!({"carehome_id": "nope"}), "/carehome_id"),
        (json!({"carehome_id": w.home, "scope": "all"}), "/scope"),
    ] {
        let r = s.post("/v1/calendar-tokens", &coord, body.clone()).await.expect(400);
        assert_eq!(r.body["errors"][0]["field"], field, "{body}");
    }

    // Revoked: refused from then on, and gone.
    s.delete(&format!("/v1/calendar-tokens/{id}"), &coord).await.expect(204);
    let (status, _, body) = fetch(&s, &url, None).await;
    assert_eq!((status, code(&body).as_str()), (401, "unauthenticated"), "{body}");
    s.get(&format!("/v1/calendar-tokens/{id}"), &coord).await.expect(404);
    s.delete(&format!("/v1/calendar-tokens/{id}"), &coord).await.expect(404);
    let (status, _, _) = fetch(&s, &p.str("url"), None).await;
    assert_eq!(status, 200, "other tokens keep working");
    // The chapter's admin may revoke a token of its chapter's calendars.
    s.delete(&format!("/v1/calendar-tokens/{}", p.str("calendar_token_id")), &s.token(Role::ChapterAdmin(w.chapter)))
        .await
        .expect(204);
    let (status, _, _) = fetch(&s, &p.str("url"), None).await;
    assert_eq!(status, 401);
}

async fn calendar_tokens_expire_and_stop_with_their_makers_access(s: System) {
    let w = world(&s).await;
    let coord = s.token(Role::Coordinator(w.home));
    // An expiry in the past, or not a time: 400 on the field, nothing made.
    for expires_at in [json!("2020-01-01T00:00:00Z"), json!("tomorrow"), json!(17)] {
        let r = s
            .post("/v1/calendar-tokens", &coord, json!({"carehome_id": w.home, "expires_at": expires_at}))
            .await
            .expect(400);
        assert_eq!(r.body["errors"][0]["field"], "/expires_at", "{}", r.body);
    }
    assert_eq!(s.get("/v1/calendar-tokens", &coord).await.expect(200).body["items"], json!([]));
    // One that expires in a moment works until then, says when, and is refused after.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let made =
        s.post("/v1/calendar-tokens", &coord, json!({"carehome_id": w.home, "expires_at": soon})).await.expect(201);
    assert_eq!(made.str("expires_at"), soon);
    let url = made.str("url");
    let (status, _, body) = fetch(&s, &url, None).await;
    assert_eq!(status, 200, "{body}");
    s.eventually("the token to expire", || {
        let (s, url) = (&s, url.clone());
        async move {
            let (status, _, body) = fetch(s, &url, None).await;
            status == 401 && body.contains("expired")
        }
    })
    .await;
    // One without an expiry has none.
    let lasting = s.post("/v1/calendar-tokens", &coord, json!({"carehome_id": w.home})).await.expect(201);
    assert!(lasting.body.get("expires_at").is_none(), "{}", lasting.body);

    // A pilot makes one for its own calendar; retired, it no longer reads that calendar,
    // and the token stops with it (401), while the chapter admin's token for the same
    // calendar keeps working.
    let (pilot, admin) = (s.token(Role::Pilot(w.pilot)), s.token(Role::ChapterAdmin(w.chapter)));
    let own = s.post("/v1/calendar-tokens", &pilot, json!({"pilot_id": w.pilot})).await.expect(201);
    let admins = s.post("/v1/calendar-tokens", &admin, json!({"pilot_id": w.pilot})).await.expect(201);
    assert_eq!(fetch(&s, &own.str("url"), None).await.0, 200);
    s.post(&format!("/v1/pilots/{}/retire", w.pilot), &admin, json!({})).await.expect(200);
    s.eventually("the retired pilot's token to stop", || {
        let (s, url) = (&s, own.str("url"));
        async move {
            let (status, _, body) = fetch(s, &url, None).await;
            status == 401 && code(&body) == "unauthenticated"
        }
    })
    .await;
    assert_eq!(fetch(&s, &admins.str("url"), None).await.0, 200, "the admin still reads it");
}

async fn the_audit_trail_tells_who_did_what_in_order(s: System) {
    let w = world(&s).await;
    let n = Uuid::new_v4().simple().to_string();
    let (p_sub, c_sub, a_sub) = (format!("pilot-{n}"), format!("coord-{n}"), format!("cadmin-{n}"));
    let pilot = token_as(&s, &p_sub, Role::Pilot(w.pilot));
    let coord = token_as(&s, &c_sub, Role::Coordinator(w.home));
    let cadmin = token_as(&s, &a_sub, Role::ChapterAdmin(w.chapter));

    let r = book(&s, &pilot, &w, &start_in(15), &w.residents).await;
    let id = r["ride_id"].as_str().unwrap().to_owned();
    s.post(&format!("/v1/rides/{id}/reschedule"), &coord, json!({"start": start_in(16), "duration_minutes": 30}))
        .await
        .expect(200);
    s.post(&format!("/v1/rides/{id}/cancel"), &cadmin, json!({"reason": "rider", "note": NOTES})).await.expect(200);

    let path = format!("/v1/audit?object_type=ride&object_id={id}");
    let trail = trail_until(&s, &path, &cadmin, 3).await;
    let items = trail.body["items"].as_array().expect("items").clone();
    let seen: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|i| (i["type"].as_str().unwrap(), i["actor_role"].as_str().unwrap(), i["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("RideBooked", "pilot", s.person_of(&p_sub).as_str()),
            ("RideRescheduled", "coordinator", s.person_of(&c_sub).as_str()),
            ("RideCancelled", "chapter_admin", s.person_of(&a_sub).as_str()),
        ],
        "{}",
        trail.body
    );
    let ats: Vec<DateTime<Utc>> =
        items.iter().map(|i| i["at"].as_str().unwrap().parse().expect("an RFC 3339 time")).collect();
    assert!(ats.windows(2).all(|p| p[0] <= p[1]), "in order: {ats:?}");
    assert!(items[2]["summary"].as_str().unwrap().contains("rider"), "{}", items[2]);
    assert!(items[0]["summary"].as_str().unwrap().contains("2 riders"), "{}", items[0]);
    let text = trail.body.to_string();
    for secret in NAMES.iter().chain([&NOTES, &"Zebedæus", &"Yarrowby"]) {
        assert!(!text.contains(secret), "the trail holds {secret:?}");
    }
    // Admin reads it too; the others who read the ride may not (403); foreign or unknown: 404.
    s.get(&path, &s.admin()).await.expect(200);
    for t in [&pilot, &coord] {
        assert_eq!(s.get(&path, t).await.expect(403).code(), "forbidden");
    }
    let foreign = s.token(Role::ChapterAdmin(s.chapter().await));
    assert_eq!(s.get(&path, &foreign).await.expect(404).code(), "not-found");
    s.get(&format!("/v1/audit?object_type=ride&object_id={}", Uuid::now_v7()), &cadmin).await.expect(404);

    // The other objects: a resident's trail names nobody either; a pilot's is the volunteer log.
    let res =
        trail_until(&s, &format!("/v1/audit?object_type=resident&object_id={}", w.residents[0]), &cadmin, 1).await;
    let types: Vec<&str> = res.body["items"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"ResidentAdmitted"), "{}", res.body);
    assert!(!res.body.to_string().contains("Zebedæus") && !res.body.to_string().contains("Yarrowby"));
    let pil = trail_until(&s, &format!("/v1/audit?object_type=pilot&object_id={}", w.pilot), &cadmin, 2).await;
    let types: Vec<&str> = pil.body["items"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["PilotRegistered", "PilotQualified"], "{}", pil.body);
    for (kind, obj) in [("chapter", w.chapter), ("carehome", w.home), ("bike", w.bike)] {
        let r = trail_until(&s, &format!("/v1/audit?object_type={kind}&object_id={obj}"), &cadmin, 1).await;
        assert!(r.body["items"][0]["actor"].is_string(), "{kind}: {}", r.body);
    }

    // Bad input names the parameter.
    for (query, field) in [
        (format!("object_type=trishaw&object_id={id}"), "/object_type"),
        ("object_type=ride".to_owned(), "/object_id"),
        ("object_type=ride&object_id=42".to_owned(), "/object_id"),
        (format!("object_id={id}"), "/object_type"),
    ] {
        let r = s.get(&format!("/v1/audit?{query}"), &cadmin).await.expect(400);
        assert_eq!(r.body["errors"][0]["field"], field, "{query}: {}", r.body);
    }
}
