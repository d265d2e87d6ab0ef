//! The users' journeys over REST, on the real system: a chapter admin running a chapter
//! (settings, care homes, closures, pilots, weather days, erasure), a coordinator running a
//! care home (trishaws and their maintenance, residents and consent, ride requests), a
//! pilot (availability, claiming a request, its own record), an integrator (read only), and
//! a restart in the middle of a coordinator's and a pilot's journey. Rides' own life cycle
//! is in `rides.rs`; reports, stats, calendars, events and webhooks come later.

use e2e::{Reply, System, World};
use gateway::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

testkit::both_backends!(setup = e2e::System::start;
    a_chapter_admin_runs_a_chapter,
    a_coordinator_runs_a_care_home,
    a_pilot_finds_claims_and_reads_its_own,
    an_integrator_reads_and_never_writes,
    a_restart_in_the_middle_keeps_everything,
);

/// Cells where the gateway answers against api.md and the fix is not ours to make here:
/// `(endpoint, role, expected, got)`. Printed by the tests that meet them.
const KNOWN_GAPS: &[(&str, &str, &str, &str)] = &[(
    "GET /v1/residents/{id}/export",
    "coordinator",
    "every ride that holds the resident, including rides they were taken off (roster history)",
    "only rides whose current roster names them (booking's read model `booking_ride_riders`)",
)];

fn print_known_gaps() {
    for (endpoint, role, expected, got) in KNOWN_GAPS {
        eprintln!("KNOWN GAP: {endpoint} as {role}: api.md says {expected}, the gateway answers {got}");
    }
}

/// Polls `GET path` until `pred` holds (lists and facts from another service lag a moment).
async fn until(s: &System, path: &str, token: &str, what: &str, pred: impl Fn(&Reply) -> bool) -> Reply {
    testkit::eventually(what, testkit::DEFAULT_TIMEOUT, || async {
        let r = s.get(path, token).await;
        if pred(&r) { Ok(r) } else { Err(format!("{} {}", r.status, r.body)) }
    })
    .await
}

fn uuid(r: &Reply, field: &str) -> Uuid {
    r.body[field].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no {field} in {}", r.body))
}

fn items(r: &Reply) -> Vec<Value> {
    r.body["items"].as_array().unwrap_or_else(|| panic!("no items in {}", r.body)).clone()
}

fn ids(r: &Reply, field: &str) -> Vec<String> {
    items(r).iter().map(|i| i[field].as_str().unwrap_or_default().to_owned()).collect()
}

fn rider_ids(ride: &Value) -> Vec<String> {
    ride["riders"].as_array().unwrap().iter().map(|r| r["resident_id"].as_str().unwrap().to_owned()).collect()
}

/// Books a ride and returns its id. (No wait: cascades and weather days must find a ride
/// the moment it is acknowledged.)
async fn book(s: &System, token: &str, bike: Uuid, pilot: Uuid, start: &str, residents: &[Uuid]) -> String {
    let body =
        json!({"bike_id": bike, "pilot_id": pilot, "start": start, "duration_minutes": 60, "resident_ids": residents});
    let r = s.post("/v1/rides", token, body).await.expect(201);
    assert_eq!(r.str("status"), "booked");
    r.str("ride_id")
}

/// Waits until a ride is cancelled and returns it.
async fn cancelled(s: &System, token: &str, ride: &str) -> Value {
    until(s, &format!("/v1/rides/{ride}"), token, "the ride to be cancelled", |r| r.body["status"] == "cancelled")
        .await
        .body
}

async fn ride(s: &System, token: &str, ride: &str) -> Value {
    s.get(&format!("/v1/rides/{ride}"), token).await.expect(200).body
}

fn every_day(opens: &str, closes: &str) -> Vec<Value> {
    ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        .iter()
        .map(|d| json!({"weekday": d, "opens": opens, "closes": closes}))
        .collect()
}

fn etag(r: &Reply) -> String {
    r.header("etag").unwrap_or_else(|| panic!("no ETag on {}", r.body))
}

async fn a_chapter_admin_runs_a_chapter(s: System) {
    print_known_gaps();
    // The admin registers a chapter; it starts empty with the default settings.
    let created = s
        .post("/v1/chapters", &s.admin(), json!({"name": "Odense", "timezone": "Europe/Copenhagen"}))
        .await
        .expect(201);
    let chapter = uuid(&created, "chapter_id");
    assert_eq!(created.header("location"), Some(format!("/v1/chapters/{chapter}")));
    assert_eq!((created.str("name"), created.str("timezone")), ("Odense".into(), "Europe/Copenhagen".into()));
    assert_eq!(
        created.body["settings"],
        json!({"lead_time_minutes": 60, "default_turnaround_minutes": 15, "reminder_lead_minutes": [1440, 60],
            "record_window_days": 14, "series_horizon_days": 56, "offer_fanout": 5})
    );
    let admin = s.token(Role::ChapterAdmin(chapter));
    let path = format!("/v1/chapters/{chapter}");
    let counts = |r: &Reply| {
        (r.body["carehome_count"].as_u64(), r.body["bike_count"].as_u64(), r.body["active_pilot_count"].as_u64())
    };
    let read = s.get(&path, &admin).await.expect(200);
    assert_eq!(counts(&read), (Some(0), Some(0), Some(0)));
    assert_eq!(read.body["chapter_id"], created.body["chapter_id"]);

    // Settings: lead time, turnaround, reminders and the season, read back.
    let settings = json!({
        "lead_time_minutes": 120, "default_turnaround_minutes": 20, "reminder_lead_minutes": [2880, 30],
        "ride_season": {"starts": "2027-03-01", "ends": "2027-11-01"},
    });
    let put = s.put(&format!("{path}/settings"), &admin, settings.clone()).await.expect(200);
    // The settings left out keep their values (the defaults here).
    let mut settings = settings;
    settings["record_window_days"] = json!(14);
    settings["series_horizon_days"] = json!(56);
    settings["offer_fanout"] = json!(5);
    assert_eq!(put.body["settings"], settings);
    assert_ne!(etag(&put), etag(&read), "the change is a new version");
    let read = s.get(&path, &admin).await.expect(200);
    assert_eq!(read.body["settings"], settings);
    assert_eq!(etag(&read), etag(&put));
    // Only the chapter's admin changes them; a foreign chapter admin cannot even see the chapter.
    let foreign = s.chapter().await;
    s.put(&format!("{path}/settings"), &s.token(Role::ChapterAdmin(foreign)), settings.clone()).await.expect(404);
    s.get(&path, &s.token(Role::ChapterAdmin(foreign))).await.expect(404);

    // Care homes: three of them, listed by chapter in pages.
    let mut homes = Vec::new();
    for name in ["Lindehuset", "Egebo", "Birkely"] {
        let body = json!({
            "chapter_id": chapter, "name": name, "address": format!("{name}vej 1, Odense"),
            "ride_hours": every_day("09:00", "17:00"), "turnaround_minutes": 15, "requires_confirmation": false,
        });
        let r = s.post("/v1/carehomes", &admin, body).await.expect(201);
        let id = uuid(&r, "carehome_id");
        assert_eq!(r.header("location"), Some(format!("/v1/carehomes/{id}")));
        assert_eq!((r.str("name"), r.str("effective_timezone")), (name.to_owned(), "Europe/Copenhagen".to_owned()));
        assert_eq!(r.body["ride_hours"].as_array().unwrap().len(), 7);
        homes.push(id);
    }
    let home = homes[0];
    let list = format!("/v1/carehomes?chapter_id={chapter}");
    let all = until(&s, &format!("{list}&limit=500"), &admin, "three care homes", |r| {
        r.body["items"].as_array().is_some_and(|i| i.len() == 3)
    })
    .await;
    let mut names: Vec<_> = items(&all).iter().map(|h| h["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    assert_eq!(names, ["Birkely", "Egebo", "Lindehuset"]);
    let first = s.get(&format!("{list}&limit=2"), &admin).await.expect(200);
    assert_eq!(items(&first).len(), 2);
    let cursor = first.body["next_cursor"].as_str().expect("a next page").to_owned();
    let second = s.get(&format!("{list}&limit=2&cursor={cursor}"), &admin).await.expect(200);
    assert_eq!(items(&second).len(), 1);
    assert_eq!(second.body["next_cursor"], Value::Null);
    let mut paged = ids(&first, "carehome_id");
    paged.extend(ids(&second, "carehome_id"));
    let mut want: Vec<_> = homes.iter().map(Uuid::to_string).collect();
    paged.sort();
    want.sort();
    assert_eq!(paged, want, "the pages hold every care home once");
    s.get(&list, &s.token(Role::ChapterAdmin(foreign))).await.expect(404);
    until(&s, &path, &admin, "three care homes counted", |r| counts(r).0 == Some(3)).await;

    // Ride hours change (the coordinator may too).
    let coord = s.token(Role::Coordinator(home));
    let hours = every_day("08:00", "18:00");
    let r = s.put(&format!("/v1/carehomes/{home}/ride-hours"), &coord, json!({"ride_hours": hours})).await.expect(200);
    assert_eq!(r.body["ride_hours"], json!(hours));
    let r = s.get(&format!("/v1/carehomes/{home}"), &admin).await.expect(200);
    assert_eq!(r.body["ride_hours"], json!(hours));

    // A trishaw, pilots and residents: the counts follow.
    let bike = s.bike(chapter, home, 2).await;
    let rider = s.pilot(chapter).await;
    until(&s, &path, &admin, "a trishaw and a pilot counted", |r| counts(r) == (Some(3), Some(1), Some(1))).await;
    let registered = s
        .post(
            "/v1/pilots",
            &admin,
            json!({"chapter_id": chapter, "display_name": "Søren Kierkegaard", "email": "soren@example.org", "phone": "+45 12 34 56 78"}),
        )
        .await
        .expect(201);
    let pilot = uuid(&registered, "pilot_id");
    assert_eq!(registered.header("location"), Some(format!("/v1/pilots/{pilot}")));
    assert_eq!(
        (registered.str("display_name"), registered.str("email"), registered.str("phone"), registered.str("status")),
        ("Søren Kierkegaard".into(), "soren@example.org".into(), "+45 12 34 56 78".into(), "active".into())
    );
    assert_eq!(
        (registered.body["qualifications"].clone(), registered.body["erased"].clone()),
        (json!([]), json!(false))
    );
    until(&s, &path, &admin, "two active pilots", |r| counts(r).2 == Some(2)).await;

    // Qualify, then renew by posting again for the same type.
    let q = s
        .post(
            &format!("/v1/pilots/{pilot}/qualifications"),
            &admin,
            json!({"qualified_on": "2026-05-01", "valid_until": "2027-04-30"}),
        )
        .await
        .expect(200);
    assert_eq!(
        q.body["qualifications"],
        json!([{"bike_type": "trishaw", "qualified_on": "2026-05-01", "valid_until": "2027-04-30"}])
    );
    let q = s
        .post(
            &format!("/v1/pilots/{pilot}/qualifications"),
            &admin,
            json!({"qualified_on": "2027-04-01", "valid_until": "2028-12-31"}),
        )
        .await
        .expect(200);
    assert_eq!(
        q.body["qualifications"],
        json!([{"bike_type": "trishaw", "qualified_on": "2027-04-01", "valid_until": "2028-12-31"}]),
        "renewed, not a second qualification"
    );
    let listed = until(&s, &format!("/v1/pilots?chapter_id={chapter}"), &admin, "both pilots listed", |r| {
        r.body["items"].as_array().is_some_and(|i| i.len() == 2)
    })
    .await;
    let mut listed_ids = ids(&listed, "pilot_id");
    listed_ids.sort();
    let mut want = vec![pilot.to_string(), rider.to_string()];
    want.sort();
    assert_eq!(listed_ids, want);
    let listed_soren = items(&listed).into_iter().find(|p| p["pilot_id"] == pilot.to_string()).unwrap();
    assert_eq!(listed_soren["email"], "soren@example.org");
    s.get(&format!("/v1/pilots?chapter_id={chapter}"), &s.token(Role::ChapterAdmin(foreign))).await.expect(404);

    let residents = vec![s.resident(home).await, s.resident(home).await];
    let w = World { chapter, home, bike, pilot: rider, residents: residents.clone() };
    s.settle(&w).await;

    // A closure cancels the rides in it (facility) and leaves the others.
    let closed_day = book(&s, &admin, bike, rider, "2027-05-03T08:00:00Z", &residents[..1]).await;
    let open_day = book(&s, &admin, bike, rider, "2027-05-05T08:00:00Z", &residents[..1]).await;
    let c = s
        .post(
            &format!("/v1/carehomes/{home}/closures"),
            &admin,
            json!({"from": "2027-05-03", "to": "2027-05-05", "reason": "renovation"}),
        )
        .await
        .expect(200);
    let closure_id = c.body["closures"][0]["closure_id"].as_str().unwrap_or_default().to_owned();
    assert!(closure_id.parse::<uuid::Uuid>().is_ok(), "a closure has an id: {}", c.body);
    assert_eq!(
        c.body["closures"],
        json!([{"closure_id": closure_id, "from": "2027-05-03", "to": "2027-05-05", "reason": "renovation"}])
    );
    let r = cancelled(&s, &admin, &closed_day).await;
    assert_eq!(r["cancel_reason"], "facility");
    assert_eq!(ride(&s, &admin, &open_day).await["status"], "booked", "the day after the closure is untouched");

    // A weather day cancels that local day's rides and nothing else, once.
    // 2027-05-11T22:30Z is already 00:30 on the 12th in Copenhagen; ride hours start 08:00,
    // so the local day is 06:00Z to 16:00Z: book at its edges and on the days around it.
    let wet = [
        book(&s, &admin, bike, rider, "2027-05-12T06:00:00Z", &residents[..1]).await,
        book(&s, &admin, bike, rider, "2027-05-12T15:00:00Z", &residents[..1]).await,
    ];
    let dry = [
        book(&s, &admin, bike, rider, "2027-05-11T15:00:00Z", &residents[..1]).await,
        book(&s, &admin, bike, rider, "2027-05-13T06:00:00Z", &residents[..1]).await,
    ];
    let weather = format!("{path}/weather-cancellations");
    s.post(&weather, &coord, json!({"date": "2027-05-12"})).await.expect(403);
    let r = s.post(&weather, &admin, json!({"date": "2027-05-12", "note": "storm"})).await.expect(200);
    assert_eq!(r.body, json!({"cancelled": 2}));
    for id in &wet {
        let r = ride(&s, &admin, id).await;
        assert_eq!((r["status"].as_str(), r["cancel_reason"].as_str()), (Some("cancelled"), Some("weather")));
    }
    for id in &dry {
        assert_eq!(ride(&s, &admin, id).await["status"], "booked");
    }
    let again = s.post(&weather, &admin, json!({"date": "2027-05-12"})).await.expect(200);
    assert_eq!(again.body, json!({"cancelled": 0}), "each ride is cancelled once");

    // Suspend (future rides cancelled: volunteer), reinstate, and the count follows.
    let pilot_path = format!("/v1/pilots/{rider}");
    let r = s.post(&format!("{pilot_path}/suspend"), &admin, json!({})).await.expect(200);
    assert_eq!(r.str("status"), "suspended");
    for id in [&open_day, &dry[0], &dry[1]] {
        assert_eq!(cancelled(&s, &admin, id).await["cancel_reason"], "volunteer");
    }
    until(&s, &path, &admin, "one active pilot", |r| counts(r).2 == Some(1)).await;
    let r = s.post(&format!("{pilot_path}/reinstate"), &admin, json!({})).await.expect(200);
    assert_eq!(r.str("status"), "active");
    assert_eq!(s.get(&pilot_path, &admin).await.expect(200).str("status"), "active");
    until(&s, &path, &admin, "two active pilots again", |r| counts(r).2 == Some(2)).await;
    let r = s.post(&format!("{pilot_path}/retire"), &admin, json!({})).await.expect(200);
    assert_eq!(r.str("status"), "retired");
    until(&s, &path, &admin, "a retired pilot no longer counted", |r| counts(r).2 == Some(1)).await;

    // GDPR: export Søren (decrypted), then erase; nothing personal is readable afterwards.
    let soren = format!("/v1/pilots/{pilot}");
    let export = s.get(&format!("{soren}/export"), &admin).await.expect(200);
    assert_eq!(
        (export.str("display_name"), export.str("email"), export.str("phone")),
        ("Søren Kierkegaard".into(), "soren@example.org".into(), "+45 12 34 56 78".into())
    );
    assert_eq!(export.str("pilot_id"), pilot.to_string());
    assert!(export.body["events"].as_array().is_some_and(|e| e.len() >= 3), "registration and two qualifications");
    assert!(export.body.to_string().contains("soren@example.org"));
    let erased = s.post(&format!("{soren}/erasure"), &admin, json!({})).await.expect(200);
    let personal = ["Søren", "soren@example.org", "12 34 56 78"];
    let clean = |what: &str, v: &Value| {
        let text = v.to_string();
        for p in personal {
            assert!(!text.contains(p), "{what} still shows {p}: {text}");
        }
    };
    clean("the erasure's answer", &erased.body);
    assert_eq!((erased.body["erased"].clone(), erased.str("status")), (json!(true), "erased".into()));
    for field in ["display_name", "email", "phone"] {
        assert!(erased.body.get(field).is_none(), "{field} absent once erased");
    }
    let read = s.get(&soren, &admin).await.expect(200);
    clean("the pilot", &read.body);
    assert_eq!(read.body["erased"], true);
    clean("the pilot list", &s.get(&format!("/v1/pilots?chapter_id={chapter}"), &admin).await.expect(200).body);
    let export = s.get(&format!("{soren}/export"), &admin).await.expect(200);
    clean("the export", &export.body);
    assert_eq!(export.body["erased"], true);
    let twice = s.post(&format!("{soren}/erasure"), &admin, json!({})).await.expect(200);
    clean("a second erasure", &twice.body);
    assert_eq!(twice.body["erased"], true);
    // An erased pilot's token is refused.
    s.get(&soren, &s.token(Role::Pilot(pilot))).await.expect(401);
    // Only the chapter admin erases: the coordinator may not even see the pilot.
    s.post(&format!("/v1/pilots/{rider}/erasure"), &coord, json!({})).await.expect(404);
}

async fn a_coordinator_runs_a_care_home(s: System) {
    print_known_gaps();
    let w = s.world().await;
    let coord = s.token(Role::Coordinator(w.home));
    let pilot = s.token(Role::Pilot(w.pilot));
    let admin = s.token(Role::ChapterAdmin(w.chapter));

    // Trishaws: a one-seat wheelchair trishaw beside the world's; both listed.
    let r = s
        .post(
            &format!("/v1/carehomes/{}/bikes", w.home),
            &coord,
            json!({"name": "Kørestol", "bike_type": "wheelchair", "seats": 1}),
        )
        .await
        .expect(201);
    let chair = uuid(&r, "bike_id");
    assert_eq!(r.header("location"), Some(format!("/v1/bikes/{chair}")));
    assert_eq!(
        (r.str("name"), r.str("bike_type"), r.body["seats"].as_u64(), r.str("status")),
        ("Kørestol".into(), "wheelchair".into(), Some(1), "in_service".into())
    );
    assert_eq!(r.str("carehome_id"), w.home.to_string());
    let got = s.get(&format!("/v1/bikes/{chair}"), &coord).await.expect(200);
    assert_eq!(got.body, r.body);
    let list = until(&s, &format!("/v1/carehomes/{}/bikes", w.home), &coord, "two trishaws", |r| {
        r.body["items"].as_array().is_some_and(|i| i.len() == 2)
    })
    .await;
    let world_bike =
        items(&list).into_iter().find(|b| b["bike_id"] == w.bike.to_string()).expect("the world's trishaw");
    assert_eq!((world_bike["bike_type"].as_str(), world_bike["seats"].as_u64()), (Some("trishaw"), Some(2)));

    // Issues: a small one keeps it in service; a grounding one takes it out and cancels its
    // future rides (equipment); back in service; out of service with a date; back again.
    let ride_a = book(&s, &pilot, w.bike, w.pilot, "2027-05-03T08:00:00Z", &w.residents[..1]).await;
    let bike_path = format!("/v1/bikes/{}", w.bike);
    let r = s
        .post(&format!("{bike_path}/issues"), &coord, json!({"description": "squeaky bell", "grounding": false}))
        .await
        .expect(200);
    assert_eq!(r.str("status"), "in_service");
    let r = s
        .post(&format!("{bike_path}/issues"), &coord, json!({"description": "brake cable frayed", "grounding": true}))
        .await
        .expect(200);
    assert_eq!(r.str("status"), "out_of_service");
    assert_eq!(cancelled(&s, &coord, &ride_a).await["cancel_reason"], "equipment");
    let r = s
        .post(&format!("{bike_path}/return-to-service"), &coord, json!({"reason": "new brake cable"}))
        .await
        .expect(200);
    assert_eq!(r.str("status"), "in_service");
    assert!(r.body.get("out_of_service_reason").is_none());
    let r = s
        .post(
            &format!("{bike_path}/out-of-service"),
            &coord,
            json!({"reason": "annual service", "expected_back": "2027-04-01"}),
        )
        .await
        .expect(200);
    assert_eq!(
        (r.str("status"), r.str("out_of_service_reason"), r.str("expected_back")),
        ("out_of_service".into(), "annual service".into(), "2027-04-01".into())
    );
    s.post(&format!("{bike_path}/return-to-service"), &coord, json!({})).await.expect(200);
    let log = s.get(&format!("{bike_path}/maintenance"), &coord).await.expect(200);
    let kinds: Vec<_> = items(&log).iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        kinds,
        [
            "commissioned",
            "issue_reported",
            "issue_reported",
            "taken_out_of_service",
            "repaired",
            "returned_to_service",
            "taken_out_of_service",
            "returned_to_service"
        ],
        "the log in order: {}",
        log.body
    );
    let log_items = items(&log);
    assert_eq!(
        (log_items[1]["description"].as_str(), log_items[1]["grounding"].as_bool()),
        (Some("squeaky bell"), Some(false))
    );
    assert_eq!(
        (log_items[2]["description"].as_str(), log_items[2]["grounding"].as_bool()),
        (Some("brake cable frayed"), Some(true))
    );
    assert_eq!(log_items[3]["reason"], "brake cable frayed", "the grounding issue took it out");
    assert_eq!(log_items[4]["description"], "new brake cable", "a return with a note records the repair");
    assert_eq!(
        (log_items[6]["reason"].as_str(), log_items[6]["expected_back"].as_str()),
        (Some("annual service"), Some("2027-04-01"))
    );
    assert!(log_items[1..].iter().all(|e| e["actor_role"] == "coordinator"));
    let ats: Vec<_> = log_items.iter().map(|e| e["at"].as_str().unwrap().to_owned()).collect();
    let mut sorted = ats.clone();
    sorted.sort();
    assert_eq!(ats, sorted, "oldest first");
    // Pilots report issues but do not run trishaws nor read their logs.
    s.get(&format!("{bike_path}/maintenance"), &pilot).await.expect(403);
    s.post(&format!("{bike_path}/out-of-service"), &pilot, json!({"reason": "x"})).await.expect(403);
    // Retiring the wheelchair trishaw cancels its rides too, and it stays retired.
    let r = s.post(&format!("/v1/bikes/{chair}/retire"), &coord, json!({"reason": "sold"})).await.expect(200);
    assert_eq!(r.str("status"), "retired");

    // Residents: admitted with consent; names for the home's coordinator, nobody else's.
    let body = json!({
        "display_name": "Karen Blixen", "notes": "afraid of dogs",
        "consent": {"given_by": "guardian", "given_at": "2026-11-20T09:00:00+01:00", "scope": ["rides"]},
    });
    let r = s.post(&format!("/v1/carehomes/{}/residents", w.home), &coord, body).await.expect(201);
    let karen = uuid(&r, "resident_id");
    assert_eq!(r.header("location"), Some(format!("/v1/residents/{karen}")));
    assert_eq!(
        (r.str("display_name"), r.str("notes"), r.str("status"), r.body["erased"].as_bool()),
        ("Karen Blixen".into(), "afraid of dogs".into(), "living_here".into(), Some(false))
    );
    assert_eq!(
        (r.body["consent"]["given_by"].as_str(), r.body["consent"]["scope"].clone()),
        (Some("guardian"), json!(["rides"]))
    );
    let karen_path = format!("/v1/residents/{karen}");
    assert_eq!(s.get(&karen_path, &coord).await.expect(200).str("display_name"), "Karen Blixen");
    assert_eq!(s.get(&karen_path, &admin).await.expect(200).str("display_name"), "Karen Blixen");
    let other_home = s.carehome(w.chapter).await;
    s.get(&karen_path, &s.token(Role::Coordinator(other_home))).await.expect(404);
    s.get(&karen_path, &pilot).await.expect(404);
    let listed = until(&s, &format!("/v1/carehomes/{}/residents", w.home), &coord, "three residents", |r| {
        r.body["items"].as_array().is_some_and(|i| i.len() == 3)
    })
    .await;
    assert!(ids(&listed, "resident_id").contains(&karen.to_string()));
    s.get(&format!("/v1/carehomes/{}/residents", w.home), &s.token(Role::Coordinator(other_home))).await.expect(403);

    // Withdrawing consent takes the resident off future rosters and out of bookings.
    s.eventually("booking to know Karen", || async {
        let b = json!({"carehome_id": w.home, "resident_ids": [karen], "window": {"from": "2027-05-20T08:00:00Z", "to": "2027-05-20T12:00:00Z"}, "duration_minutes": 60});
        // A refused request writes nothing, so asking until it is accepted is harmless.
        s.post("/v1/ride-requests", &coord, b).await.status.as_u16() == 201
    })
    .await;
    let with_karen = book(&s, &coord, w.bike, w.pilot, "2027-05-04T08:00:00Z", &[w.residents[0], karen]).await;
    let r = s.delete(&format!("{karen_path}/consent"), &coord).await.expect(200);
    assert!(r.body.get("consent").is_none(), "no consent on record: {}", r.body);
    until(&s, &format!("/v1/rides/{with_karen}"), &coord, "Karen off the roster", |r| {
        !rider_ids(&r.body).contains(&karen.to_string())
    })
    .await;
    let r = ride(&s, &coord, &with_karen).await;
    assert_eq!((r["status"].as_str(), rider_ids(&r)), (Some("booked"), vec![w.residents[0].to_string()]));
    let refused = s
        .post(
            "/v1/rides",
            &coord,
            json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": "2027-05-04T12:00:00Z", "duration_minutes": 60, "resident_ids": [karen]}),
        )
        .await
        .expect(422);
    assert_eq!(refused.code(), "no-consent");
    // Consent given again: bookable again.
    let consent = json!({"given_by": "resident", "given_at": "2026-11-28T10:00:00Z", "scope": ["rides", "stories"]});
    let r = s.post(&format!("{karen_path}/consent"), &coord, consent.clone()).await.expect(200);
    assert_eq!(r.body["consent"], consent);
    let again = json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": "2027-05-04T12:00:00Z", "duration_minutes": 60, "resident_ids": [karen]});
    s.eventually("Karen bookable again", || async {
        s.post("/v1/rides", &coord, again.clone()).await.status.as_u16() == 201
    })
    .await;

    // Moving out takes a resident off future rosters.
    let mover = w.residents[1];
    let with_mover = book(&s, &coord, w.bike, w.pilot, "2027-05-06T08:00:00Z", &[w.residents[0], mover]).await;
    let r = s.post(&format!("/v1/residents/{mover}/move-out"), &coord, json!({})).await.expect(200);
    assert_eq!(r.str("status"), "moved_out");
    until(&s, &format!("/v1/rides/{with_mover}"), &coord, "the mover off the roster", |r| {
        rider_ids(&r.body) == [w.residents[0].to_string()]
    })
    .await;

    // Export (decrypted), then erasure: the name is gone everywhere, the rides stay.
    let export = s.get(&format!("{karen_path}/export"), &coord).await.expect(200);
    assert_eq!(
        (export.body["resident"]["display_name"].as_str(), export.body["resident"]["notes"].as_str()),
        (Some("Karen Blixen"), Some("afraid of dogs"))
    );
    assert!(export.body["events"].as_array().is_some_and(|e| !e.is_empty()));
    let home_rides = format!("/v1/rides?carehome_id={}&limit=500", w.home);
    let karen_rides = until(&s, &home_rides, &coord, "the home's rides listed", |r| {
        r.body["items"].as_array().is_some_and(|i| i.iter().any(|x| rider_ids(x).contains(&karen.to_string())))
    })
    .await;
    let before = items(&karen_rides).len();
    let karen_ride =
        items(&karen_rides).into_iter().find(|x| rider_ids(x).contains(&karen.to_string())).unwrap()["ride_id"]
            .as_str()
            .unwrap()
            .to_owned();
    let exported_rides: Vec<_> = export.body["rides"]["rides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ride_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(exported_rides.contains(&karen_ride), "the export names her rides: {}", export.body["rides"]);
    // KNOWN_GAPS: `with_karen`, the ride she was taken off when consent was withdrawn, still
    // holds her in its history but is missing from the export.
    assert_eq!(ride(&s, &coord, &karen_ride).await["riders"][0]["display_name"], "Karen Blixen");
    let r = s.post(&format!("{karen_path}/erasure"), &coord, json!({})).await.expect(200);
    assert_eq!((r.body["erased"].as_bool(), r.str("status")), (Some(true), "erased".into()));
    assert!(r.body.get("display_name").is_none() && r.body.get("notes").is_none(), "{}", r.body);
    let after = ride(&s, &coord, &karen_ride).await;
    assert_eq!(rider_ids(&after), [karen.to_string()], "the ride keeps its rider");
    assert!(after["riders"][0].get("display_name").is_none(), "no name once erased: {after}");
    assert!(!s.get(&home_rides, &coord).await.expect(200).body.to_string().contains("Karen"));
    assert_eq!(items(&s.get(&home_rides, &coord).await.expect(200)).len(), before, "the ride count is unchanged");
    let read = s.get(&karen_path, &coord).await.expect(200);
    assert!(!read.body.to_string().contains("Karen") && !read.body.to_string().contains("dogs"), "{}", read.body);
    let export = s.get(&format!("{karen_path}/export"), &coord).await.expect(200);
    assert!(!export.body.to_string().contains("Karen Blixen"), "{}", export.body);
    assert!(!export.body.to_string().contains("afraid of dogs"), "{}", export.body);

    // Ride requests: asked, listed by home and status, withdrawn once.
    let body = json!({
        "carehome_id": w.home, "resident_ids": [w.residents[0]], "duration_minutes": 45, "note": "wants to see the harbour",
        "window": {"from": "2027-06-01T10:00:00+02:00", "to": "2027-06-01T14:00:00+02:00"},
    });
    let r = s.post("/v1/ride-requests", &coord, body).await.expect(201);
    let request = r.str("ride_request_id");
    assert_eq!(r.header("location"), Some(format!("/v1/ride-requests/{request}")));
    assert_eq!(
        (r.str("status"), r.str("kind"), r.str("note"), r.body["duration_minutes"].as_u64()),
        ("open".into(), "pleasure".into(), "wants to see the harbour".into(), Some(45))
    );
    assert_eq!(r.body["window"], json!({"from": "2027-06-01T08:00:00Z", "to": "2027-06-01T12:00:00Z"}));
    assert_eq!(r.body["resident_ids"], json!([w.residents[0]]));
    let open = format!("/v1/ride-requests?carehome_id={}&status=open", w.home);
    let listed = until(&s, &open, &coord, "the request listed", |r| {
        r.status.as_u16() == 200 && ids(r, "ride_request_id").contains(&request)
    })
    .await;
    assert!(items(&listed).iter().all(|i| i["status"] == "open"));
    // Its candidates (the coordinator's): an answer of the documented shape, pilot ids only;
    // an unknown request 404, a malformed id 400.
    let c = s.get(&format!("/v1/ride-requests/{request}/candidates"), &coord).await.expect(200);
    for item in c.body["items"].as_array().expect("items") {
        let mut keys: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["free", "pilot_id", "rides_last_30_days"], "no names: {item}");
    }
    s.get(&format!("/v1/ride-requests/{}/candidates", Uuid::now_v7()), &coord).await.expect(404);
    s.get("/v1/ride-requests/not-a-uuid/candidates", &coord).await.expect(400);
    let r = s.post(&format!("/v1/ride-requests/{request}/withdraw"), &coord, json!({})).await.expect(200);
    assert_eq!(r.str("status"), "withdrawn");
    let again = s.post(&format!("/v1/ride-requests/{request}/withdraw"), &coord, json!({})).await.expect(409);
    assert_eq!(again.code(), "illegal-transition");
    until(&s, &format!("/v1/ride-requests?carehome_id={}&status=withdrawn", w.home), &coord, "withdrawn listed", |r| {
        r.status.as_u16() == 200 && ids(r, "ride_request_id").contains(&request)
    })
    .await;
    assert!(!ids(&s.get(&open, &coord).await.expect(200), "ride_request_id").contains(&request));
    s.get(&format!("/v1/ride-requests?carehome_id={}", w.home), &s.token(Role::Coordinator(other_home)))
        .await
        .expect(403);
}

async fn a_pilot_finds_claims_and_reads_its_own(s: System) {
    let w = s.world().await;
    let me = s.token(Role::Pilot(w.pilot));
    let coord = s.token(Role::Coordinator(w.home));

    // Availability of a day: ride hours 09-17 Copenhagen (07-15 UTC in May).
    let avail = format!(
        "/v1/carehomes/{}/availability?from=2027-05-03T00:00:00Z&to=2027-05-04T00:00:00Z&duration_minutes=60",
        w.home
    );
    let r = s.get(&avail, &me).await.expect(200);
    assert_eq!(
        r.body,
        json!({"bikes": [{"bike_id": w.bike, "bike_type": "trishaw", "seats": 2,
            "free": [{"start": "2027-05-03T07:00:00Z", "end": "2027-05-03T15:00:00Z"}]}]})
    );
    // A booking shrinks it, with the 15 minutes of turnaround kept free on both sides.
    let first = book(&s, &me, w.bike, w.pilot, "2027-05-03T10:00:00Z", &w.residents[..1]).await;
    // Availability is computed from booking's schedule, which may lag a moment.
    let shrunk = json!([{"start": "2027-05-03T07:00:00Z", "end": "2027-05-03T09:45:00Z"},
                        {"start": "2027-05-03T11:15:00Z", "end": "2027-05-03T15:00:00Z"}]);
    let r = until(&s, &avail, &me, "the free time to shrink", |r| {
        r.body["bikes"][0]["free"] != json!([{"start": "2027-05-03T07:00:00Z", "end": "2027-05-03T15:00:00Z"}])
    })
    .await;
    assert_eq!(r.body["bikes"][0]["free"], shrunk);
    // A foreign care home's availability is invisible.
    let elsewhere = s.chapter().await;
    let foreign_home = s.carehome(elsewhere).await;
    s.get(&avail.replace(&w.home.to_string(), &foreign_home.to_string()), &me).await.expect(404);

    // Its own availability.
    let mine = json!({"weekly": [{"weekday": "monday", "from": "09:00", "to": "12:00"}, {"weekday": "thursday", "from": "13:00", "to": "17:00"}], "carehome_ids": [w.home]});
    let r = s.put(&format!("/v1/pilots/{}/availability", w.pilot), &me, mine.clone()).await.expect(200);
    assert_eq!(r.body["availability"], mine);
    assert_eq!(s.get(&format!("/v1/pilots/{}", w.pilot), &me).await.expect(200).body["availability"], mine);
    let bad = json!({"weekly": [], "carehome_ids": [foreign_home]});
    let r = s.put(&format!("/v1/pilots/{}/availability", w.pilot), &me, bad).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/carehome_ids/0");

    // Claiming an open request books the ride under the rules; a second claim is refused.
    let body = json!({
        "carehome_id": w.home, "resident_ids": [w.residents[1]], "duration_minutes": 60, "note": "room 12",
        "window": {"from": "2027-05-04T08:00:00Z", "to": "2027-05-04T12:00:00Z"},
    });
    let request = s.post("/v1/ride-requests", &coord, body).await.expect(201).str("ride_request_id");
    let seen =
        until(&s, &format!("/v1/ride-requests?carehome_id={}&status=open", w.home), &me, "the pilot to see it", |r| {
            r.status.as_u16() == 200 && ids(r, "ride_request_id").contains(&request)
        })
        .await;
    assert!(!seen.body.to_string().contains("room 12"), "the note is the home's: {}", seen.body);
    let req_path = format!("/v1/ride-requests/{request}");
    let r = s.get(&req_path, &me).await.expect(200);
    assert_eq!(r.str("status"), "open");
    assert!(r.body.get("note").is_none());
    // Outside the window is refused and writes nothing.
    let heads = s.heads().await;
    let outside = s
        .post(&format!("{req_path}/claim"), &me, json!({"bike_id": w.bike, "start": "2027-05-04T11:30:00Z"}))
        .await
        .expect(400);
    assert_eq!(outside.body["errors"][0]["field"], "/start");
    assert_eq!(heads, s.heads().await);
    let claimed = s
        .post(&format!("{req_path}/claim"), &me, json!({"bike_id": w.bike, "start": "2027-05-04T09:00:00Z"}))
        .await
        .expect(200);
    let ride_id = claimed.body["ride"]["ride_id"].as_str().unwrap().to_owned();
    assert_eq!(claimed.header("location"), Some(format!("/v1/rides/{ride_id}")));
    assert_eq!(
        (claimed.body["ride_request"]["status"].as_str(), claimed.body["ride_request"]["ride_id"].as_str()),
        (Some("claimed"), Some(ride_id.as_str()))
    );
    assert_eq!(claimed.body["ride_request"]["pilot_id"], w.pilot.to_string());
    let ride_view = ride(&s, &me, &ride_id).await;
    assert_eq!(
        (ride_view["status"].as_str(), ride_view["start"].as_str(), ride_view["duration_minutes"].as_u64()),
        (Some("booked"), Some("2027-05-04T09:00:00Z"), Some(60))
    );
    assert_eq!(
        (ride_view["pilot_id"].clone(), ride_view["ride_request_id"].as_str()),
        (json!(w.pilot), Some(request.as_str()))
    );
    assert_eq!(rider_ids(&ride_view), [w.residents[1].to_string()]);
    assert_eq!(s.get(&req_path, &coord).await.expect(200).str("status"), "claimed");
    let other = s.pilot(w.chapter).await;
    s.quiet().await;
    let second = s
        .post(
            &format!("{req_path}/claim"),
            &s.token(Role::Pilot(other)),
            json!({"bike_id": w.bike, "start": "2027-05-04T10:30:00Z"}),
        )
        .await
        .expect(409);
    assert_eq!(second.code(), "illegal-transition");

    // A trishaw issue, then its own record and export.
    let r = s
        .post(&format!("/v1/bikes/{}/issues", w.bike), &me, json!({"description": "flat tyre", "grounding": false}))
        .await
        .expect(200);
    assert_eq!(r.str("status"), "in_service");
    let log = s.get(&format!("/v1/bikes/{}/maintenance", w.bike), &coord).await.expect(200);
    let last = items(&log).last().cloned().unwrap();
    assert_eq!((last["kind"].as_str(), last["actor_role"].as_str()), (Some("issue_reported"), Some("pilot")));
    let r = s.get(&format!("/v1/pilots/{}", w.pilot), &me).await.expect(200);
    assert_eq!(
        (r.str("pilot_id"), r.str("status"), r.str("display_name")),
        (w.pilot.to_string(), "active".into(), "Pilot".into())
    );
    assert_eq!(r.body["qualifications"][0]["bike_type"], "trishaw");
    // The export lists the pilot's rides from booking's read model, which may lag a moment.
    let export = until(&s, &format!("/v1/pilots/{}/export", w.pilot), &me, "the claimed ride in the export", |r| {
        r.body["rides"].as_array().is_some_and(|a| a.iter().any(|x| x["ride_id"] == ride_id.as_str()))
    })
    .await;
    assert_eq!(export.status.as_u16(), 200);
    assert_eq!(export.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(export.str("display_name"), "Pilot");
    assert!(export.str("email").ends_with("@example.org"));
    let exported: Vec<_> =
        export.body["rides"].as_array().unwrap().iter().map(|r| r["ride_id"].as_str().unwrap()).collect();
    let mut want = vec![first.as_str(), ride_id.as_str()];
    let mut exported = exported;
    exported.sort();
    want.sort();
    assert_eq!(exported, want, "its rides: {}", export.body["rides"]);

    // What it may not do: other pilots are invisible, chapter things are not its to change.
    let heads = s.heads().await;
    let cases: Vec<(Method, String, Option<Value>, u16)> = vec![
        (Method::GET, format!("/v1/pilots/{other}"), None, 404),
        (Method::GET, format!("/v1/pilots/{other}/export"), None, 404),
        (Method::PUT, format!("/v1/pilots/{other}/availability"), Some(json!({"weekly": [], "carehome_ids": []})), 404),
        (Method::POST, format!("/v1/pilots/{other}/suspend"), Some(json!({})), 404),
        (Method::GET, format!("/v1/pilots?chapter_id={}", w.chapter), None, 403),
        (
            Method::POST,
            format!("/v1/pilots/{}/qualifications", w.pilot),
            Some(json!({"qualified_on": "2026-01-01", "valid_until": "2030-01-01"})),
            403,
        ),
        (Method::POST, format!("/v1/pilots/{}/suspend", w.pilot), Some(json!({})), 403),
        (Method::POST, format!("/v1/pilots/{}/erasure", w.pilot), Some(json!({})), 403),
        (Method::POST, "/v1/pilots".into(), Some(json!({"chapter_id": w.chapter, "display_name": "Friend"})), 403),
        (
            Method::PUT,
            format!("/v1/chapters/{}/settings", w.chapter),
            Some(json!({"lead_time_minutes": 1, "default_turnaround_minutes": 1, "reminder_lead_minutes": []})),
            403,
        ),
        (
            Method::POST,
            format!("/v1/chapters/{}/weather-cancellations", w.chapter),
            Some(json!({"date": "2027-05-04"})),
            403,
        ),
        (Method::POST, "/v1/chapters".into(), Some(json!({"name": "Mine", "timezone": "Europe/Copenhagen"})), 403),
        (
            Method::POST,
            "/v1/carehomes".into(),
            Some(
                json!({"chapter_id": w.chapter, "name": "X", "address": "Y", "ride_hours": [], "turnaround_minutes": 15, "requires_confirmation": false}),
            ),
            403,
        ),
        (Method::PUT, format!("/v1/carehomes/{}/ride-hours", w.home), Some(json!({"ride_hours": []})), 403),
        (
            Method::POST,
            format!("/v1/carehomes/{}/closures", w.home),
            Some(json!({"from": "2027-05-04", "to": "2027-05-05", "reason": "x"})),
            403,
        ),
        (Method::POST, format!("/v1/carehomes/{}/bikes", w.home), Some(json!({"name": "Mine", "seats": 2})), 403),
        (Method::POST, format!("/v1/bikes/{}/retire", w.bike), Some(json!({"reason": "x"})), 403),
        (
            Method::POST,
            format!("/v1/carehomes/{}/residents", w.home),
            Some(
                json!({"display_name": "X", "consent": {"given_by": "resident", "given_at": "2026-11-01T10:00:00Z", "scope": ["rides"]}}),
            ),
            403,
        ),
        (Method::GET, format!("/v1/carehomes/{}/residents", w.home), None, 403),
        (Method::GET, format!("/v1/residents/{}", w.residents[0]), None, 404),
        (Method::GET, format!("/v1/residents/{}/export", w.residents[0]), None, 404),
        (Method::POST, format!("/v1/residents/{}/move-out", w.residents[0]), Some(json!({})), 404),
        (
            Method::POST,
            "/v1/ride-requests".into(),
            Some(
                json!({"carehome_id": w.home, "resident_ids": [w.residents[0]], "duration_minutes": 60, "window": {"from": "2027-05-04T08:00:00Z", "to": "2027-05-04T12:00:00Z"}}),
            ),
            403,
        ),
        (Method::POST, format!("{req_path}/withdraw"), Some(json!({})), 403),
    ];
    for (method, path, body, status) in cases {
        let r = s.call(method.clone(), &path, Some(&me), body).await;
        assert_eq!(r.status.as_u16(), status, "{method} {path}: {}", r.body);
        let code = if status == 403 { "forbidden" } else { "not-found" };
        assert_eq!(r.code(), code, "{method} {path}");
    }
    assert_eq!(heads, s.heads().await, "no refused request wrote anything");
}

async fn an_integrator_reads_and_never_writes(s: System) {
    // Operations answer without a token.
    let r = s.call(Method::GET, "/healthz", None, None).await.expect(200);
    assert_eq!(r.body["status"], "ok");
    // Ready once every service answers and follows its feeds (a moment after the start).
    s.eventually("the system to be ready", || async { s.call(Method::GET, "/readyz", None, None).await.status == 200 })
        .await;
    let r = s.call(Method::GET, "/readyz", None, None).await.expect(200);
    assert_eq!(r.body["status"], "ready");
    assert!(r.body["services"].as_object().is_some_and(|m| !m.is_empty() && m.values().all(|v| v == true)));
    let r = s.call(Method::GET, "/openapi.json", None, None).await.expect(200);
    assert!(r.str("openapi").starts_with("3.1"), "OpenAPI 3.1: {}", r.body["openapi"]);
    for path in ["/v1/chapters/{id}", "/v1/carehomes", "/v1/bikes/{id}/maintenance", "/v1/ride-requests/{id}/claim"] {
        assert!(r.body["paths"].get(path).is_some(), "{path} is described");
    }
    let docs = s.http.get(format!("{}/docs", s.base)).send().await.expect("docs answer");
    assert_eq!(docs.status().as_u16(), 200);
    assert!(docs.text().await.unwrap().to_lowercase().contains("<html"), "an HTML page");

    let w = s.world().await;
    let ride =
        book(&s, &s.token(Role::Pilot(w.pilot)), w.bike, w.pilot, "2027-05-03T08:00:00Z", &w.residents[..1]).await;
    let request = s
        .post(
            "/v1/ride-requests",
            &s.token(Role::Coordinator(w.home)),
            json!({"carehome_id": w.home, "resident_ids": [w.residents[1]], "duration_minutes": 60, "note": "x",
                "window": {"from": "2027-05-04T08:00:00Z", "to": "2027-05-04T12:00:00Z"}}),
        )
        .await
        .expect(201)
        .str("ride_request_id");
    let foreign = s.chapter().await;

    for integrator in [Role::Integrator(Some(w.chapter)), Role::Integrator(None)] {
        let t = s.token(integrator);
        // Reads of the chapter's plain records answer; personal records do not exist for it.
        let r = s.get(&format!("/v1/chapters/{}", w.chapter), &t).await.expect(200);
        assert_eq!((r.str("chapter_id"), r.body["carehome_count"].as_u64()), (w.chapter.to_string(), Some(1)));
        let r = s.get(&format!("/v1/carehomes/{}", w.home), &t).await.expect(200);
        assert_eq!(r.str("carehome_id"), w.home.to_string());
        let r = s.get(&format!("/v1/carehomes?chapter_id={}", w.chapter), &t).await.expect(200);
        assert_eq!(ids(&r, "carehome_id"), [w.home.to_string()]);
        let r = s.get(&format!("/v1/bikes/{}", w.bike), &t).await.expect(200);
        assert_eq!(r.str("bike_id"), w.bike.to_string());
        let r = s.get(&format!("/v1/carehomes/{}/bikes", w.home), &t).await.expect(200);
        assert_eq!(ids(&r, "bike_id"), [w.bike.to_string()]);
        for path in [
            format!("/v1/residents/{}", w.residents[0]),
            format!("/v1/residents/{}/export", w.residents[0]),
            format!("/v1/pilots/{}", w.pilot),
            format!("/v1/pilots/{}/export", w.pilot),
            format!("/v1/rides/{ride}"),
            format!("/v1/ride-requests/{request}"),
        ] {
            let r = s.get(&path, &t).await.expect(404);
            assert_eq!(r.code(), "not-found", "{path}");
        }
        for path in [
            format!("/v1/carehomes/{}/residents", w.home),
            format!("/v1/pilots?chapter_id={}", w.chapter),
            format!("/v1/bikes/{}/maintenance", w.bike),
            format!(
                "/v1/carehomes/{}/availability?from=2027-05-03T00:00:00Z&to=2027-05-04T00:00:00Z&duration_minutes=30",
                w.home
            ),
            format!("/v1/ride-requests?carehome_id={}", w.home),
        ] {
            let r = s.get(&path, &t).await.expect(403);
            assert_eq!(r.code(), "forbidden", "{path}");
        }
        // A chapter integrator does not see another chapter at all.
        if integrator == Role::Integrator(Some(w.chapter)) {
            s.get(&format!("/v1/chapters/{foreign}"), &t).await.expect(404);
            s.get(&format!("/v1/carehomes?chapter_id={foreign}"), &t).await.expect(404);
        }

        // Every write is refused: 403 on what it can read, 404 on what it cannot.
        let heads = s.heads().await;
        let consent = json!({"given_by": "resident", "given_at": "2026-11-01T10:00:00Z", "scope": ["rides"]});
        let cases: Vec<(Method, String, Value, u16)> = vec![
            (Method::POST, "/v1/chapters".into(), json!({"name": "X", "timezone": "Europe/Copenhagen"}), 403),
            (
                Method::PUT,
                format!("/v1/chapters/{}/settings", w.chapter),
                json!({"lead_time_minutes": 1, "default_turnaround_minutes": 1, "reminder_lead_minutes": []}),
                403,
            ),
            (
                Method::POST,
                format!("/v1/chapters/{}/weather-cancellations", w.chapter),
                json!({"date": "2027-05-03"}),
                403,
            ),
            (
                Method::POST,
                "/v1/carehomes".into(),
                json!({"chapter_id": w.chapter, "name": "X", "address": "Y", "ride_hours": [], "turnaround_minutes": 15, "requires_confirmation": false}),
                403,
            ),
            (Method::PUT, format!("/v1/carehomes/{}/ride-hours", w.home), json!({"ride_hours": []}), 403),
            (
                Method::POST,
                format!("/v1/carehomes/{}/closures", w.home),
                json!({"from": "2027-05-03", "to": "2027-05-04", "reason": "x"}),
                403,
            ),
            (Method::POST, format!("/v1/carehomes/{}/bikes", w.home), json!({"name": "X", "seats": 2}), 403),
            (
                Method::POST,
                format!("/v1/carehomes/{}/residents", w.home),
                json!({"display_name": "X", "consent": consent}),
                403,
            ),
            (Method::POST, format!("/v1/bikes/{}/issues", w.bike), json!({"description": "x", "grounding": true}), 403),
            (Method::POST, format!("/v1/bikes/{}/out-of-service", w.bike), json!({"reason": "x"}), 403),
            (Method::POST, format!("/v1/bikes/{}/return-to-service", w.bike), json!({}), 403),
            (Method::POST, format!("/v1/bikes/{}/retire", w.bike), json!({"reason": "x"}), 403),
            (Method::POST, "/v1/pilots".into(), json!({"chapter_id": w.chapter, "display_name": "X"}), 403),
            (
                Method::POST,
                "/v1/ride-requests".into(),
                json!({"carehome_id": w.home, "resident_ids": [w.residents[0]], "duration_minutes": 60, "window": {"from": "2027-05-05T08:00:00Z", "to": "2027-05-05T12:00:00Z"}}),
                403,
            ),
            (
                Method::POST,
                "/v1/rides".into(),
                json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": "2027-05-05T08:00:00Z", "duration_minutes": 60}),
                403,
            ),
            (Method::POST, format!("/v1/residents/{}/consent", w.residents[0]), consent.clone(), 404),
            (Method::DELETE, format!("/v1/residents/{}/consent", w.residents[0]), Value::Null, 404),
            (Method::POST, format!("/v1/residents/{}/move-out", w.residents[0]), json!({}), 404),
            (Method::POST, format!("/v1/residents/{}/erasure", w.residents[0]), json!({}), 404),
            (
                Method::POST,
                format!("/v1/pilots/{}/qualifications", w.pilot),
                json!({"qualified_on": "2026-01-01", "valid_until": "2030-01-01"}),
                404,
            ),
            (
                Method::PUT,
                format!("/v1/pilots/{}/availability", w.pilot),
                json!({"weekly": [], "carehome_ids": []}),
                404,
            ),
            (Method::POST, format!("/v1/pilots/{}/suspend", w.pilot), json!({}), 404),
            (Method::POST, format!("/v1/pilots/{}/erasure", w.pilot), json!({}), 404),
            (Method::POST, format!("/v1/rides/{ride}/cancel"), json!({"reason": "weather"}), 404),
            (
                Method::POST,
                format!("/v1/ride-requests/{request}/claim"),
                json!({"bike_id": w.bike, "start": "2027-05-04T09:00:00Z"}),
                404,
            ),
            (Method::POST, format!("/v1/ride-requests/{request}/withdraw"), json!({}), 404),
        ];
        for (method, path, body, status) in cases {
            let body = (!body.is_null()).then_some(body);
            let r = s.call(method.clone(), &path, Some(&t), body).await;
            assert_eq!(r.status.as_u16(), status, "{} {method} {path}: {}", integrator.name(), r.body);
            let code = if status == 403 { "forbidden" } else { "not-found" };
            assert_eq!(r.code(), code, "{method} {path}");
        }
        assert_eq!(heads, s.heads().await, "no refused write wrote anything");
    }
}

async fn a_restart_in_the_middle_keeps_everything(s: System) {
    let w = s.world().await;
    // The same tokens before and after: idempotency keys are scoped to the caller.
    let coord = s.token(Role::Coordinator(w.home));
    let me = s.token(Role::Pilot(w.pilot));
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let post = |path: String, token: String, body: Value, key: &'static str| {
        let s = &s;
        async move { s.call_with(Method::POST, &path, Some(&token), Some(body), &[("Idempotency-Key", key)]).await }
    };

    // Before: a coordinator commissions a trishaw, admits a resident, asks for a ride; the
    // pilot claims it and reports an issue; one request is refused.
    let bike_body = json!({"name": "Cykel 2", "bike_type": "trishaw", "seats": 1});
    let bike =
        post(format!("/v1/carehomes/{}/bikes", w.home), coord.clone(), bike_body.clone(), "bike-1").await.expect(201);
    let new_bike = uuid(&bike, "bike_id");
    let resident_body = json!({"display_name": "H. C. Andersen", "notes": "writes stories",
        "consent": {"given_by": "resident", "given_at": "2026-11-01T10:00:00Z", "scope": ["rides", "stories"]}});
    let resident =
        post(format!("/v1/carehomes/{}/residents", w.home), coord.clone(), resident_body.clone(), "resident-1")
            .await
            .expect(201);
    let hc = uuid(&resident, "resident_id");
    let request_body = json!({"carehome_id": w.home, "resident_ids": [w.residents[0]], "duration_minutes": 60, "note": "by the water",
        "window": {"from": "2027-05-03T08:00:00Z", "to": "2027-05-03T12:00:00Z"}});
    let request = post("/v1/ride-requests".into(), coord.clone(), request_body.clone(), "request-1").await.expect(201);
    let request_id = request.str("ride_request_id");
    let claim_path = format!("/v1/ride-requests/{request_id}/claim");
    let claim_body = json!({"bike_id": w.bike, "start": "2027-05-03T09:00:00Z"});
    let claimed = post(claim_path.clone(), me.clone(), claim_body.clone(), "claim-1").await.expect(200);
    let ride_id = claimed.body["ride"]["ride_id"].as_str().unwrap().to_owned();
    let issue_body = json!({"description": "loose mudguard", "grounding": false});
    let issue =
        post(format!("/v1/bikes/{}/issues", w.bike), me.clone(), issue_body.clone(), "issue-1").await.expect(200);
    let late = json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": "2027-05-03T03:00:00Z", "duration_minutes": 60});
    let refused = post("/v1/rides".into(), me.clone(), late.clone(), "late-1").await.expect(422);
    assert_eq!(refused.code(), "outside-ride-hours");
    let moved = s.post(&format!("/v1/residents/{}/move-out", w.residents[1]), &coord, json!({})).await.expect(200);

    let reads = [
        (format!("/v1/chapters/{}", w.chapter), admin.clone()),
        (format!("/v1/carehomes/{}", w.home), coord.clone()),
        (format!("/v1/bikes/{}", w.bike), coord.clone()),
        (format!("/v1/bikes/{new_bike}"), coord.clone()),
        (format!("/v1/bikes/{}/maintenance", w.bike), coord.clone()),
        (format!("/v1/residents/{hc}"), coord.clone()),
        (format!("/v1/residents/{}", w.residents[1]), coord.clone()),
        (format!("/v1/pilots/{}", w.pilot), me.clone()),
        (format!("/v1/ride-requests/{request_id}"), coord.clone()),
        (format!("/v1/rides/{ride_id}"), me.clone()),
        (format!("/v1/carehomes/{}/residents?limit=500", w.home), coord.clone()),
    ];
    let mut before = Vec::new();
    for (path, token) in &reads {
        let r = s.get(path, token).await.expect(200);
        before.push((r.header("etag"), r.body));
    }
    assert_eq!(before[9].1["status"], "booked");
    assert_eq!(before[8].1["status"], "claimed");
    assert_eq!(before[6].1["status"], "moved_out");
    assert_eq!(before[5].1["display_name"], "H. C. Andersen");
    assert_eq!(before[2].0, issue.header("etag"));
    assert_eq!(before[6].0, moved.header("etag"));

    let s = s.restart().await;

    // After: every object as it was, version for version.
    for ((path, token), (etag, body)) in reads.iter().zip(&before) {
        let r = s.get(path, token).await.expect(200);
        assert_eq!(&r.header("etag"), etag, "{path} keeps its version");
        assert_eq!(&r.body, body, "{path} keeps its state");
    }
    // Replays of the POSTs made before the restart answer as they did, marked as replays.
    let post = |path: String, token: String, body: Value, key: &'static str| {
        let s = &s;
        async move { s.call_with(Method::POST, &path, Some(&token), Some(body), &[("Idempotency-Key", key)]).await }
    };
    let replays = [
        (format!("/v1/carehomes/{}/bikes", w.home), coord.clone(), bike_body.clone(), "bike-1", &bike),
        (format!("/v1/carehomes/{}/residents", w.home), coord.clone(), resident_body.clone(), "resident-1", &resident),
        ("/v1/ride-requests".into(), coord.clone(), request_body.clone(), "request-1", &request),
        (claim_path.clone(), me.clone(), claim_body.clone(), "claim-1", &claimed),
        (format!("/v1/bikes/{}/issues", w.bike), me.clone(), issue_body.clone(), "issue-1", &issue),
        ("/v1/rides".into(), me.clone(), late.clone(), "late-1", &refused),
    ];
    for (path, token, body, key, original) in replays {
        let r = post(path.clone(), token, body, key).await;
        assert_eq!(r.status, original.status, "{path} replays its status");
        assert_eq!(r.body, original.body, "{path} replays its body");
        assert_eq!(r.header("idempotent-replayed").as_deref(), Some("true"), "{path}");
        assert_eq!(r.header("location"), original.header("location"), "{path}");
        assert_eq!(r.header("etag"), original.header("etag"), "{path}");
    }
    // The same key with another body is refused, and a replay created nothing new.
    let other = post(
        format!("/v1/carehomes/{}/bikes", w.home),
        coord.clone(),
        json!({"name": "Cykel 3", "seats": 2}),
        "bike-1",
    )
    .await
    .expect(422);
    assert_eq!(other.code(), "idempotency-key-reused");
    let bikes = until(&s, &format!("/v1/carehomes/{}/bikes", w.home), &coord, "two trishaws", |r| {
        r.body["items"].as_array().is_some_and(|i| i.len() == 2)
    })
    .await;
    let mut listed = ids(&bikes, "bike_id");
    listed.sort();
    let mut want = vec![w.bike.to_string(), new_bike.to_string()];
    want.sort();
    assert_eq!(listed, want);

    // The journey goes on: the claimed slot is still taken, the pilot cancels its ride.
    let taken = s
        .post(
            "/v1/rides",
            &coord,
            json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": "2027-05-03T09:30:00Z", "duration_minutes": 30}),
        )
        .await
        .expect(409);
    assert_eq!((taken.code(), taken.body["conflict_with"].as_str()), ("bike-taken", Some(ride_id.as_str())));
    let second = s
        .post(
            &claim_path,
            &s.token(Role::Pilot(s.pilot(w.chapter).await)),
            json!({"bike_id": w.bike, "start": "2027-05-03T10:30:00Z"}),
        )
        .await
        .expect(409);
    assert_eq!(second.code(), "illegal-transition");
    let c = s.post(&format!("/v1/rides/{ride_id}/cancel"), &me, json!({"reason": "rider"})).await.expect(200);
    assert_eq!((c.str("status"), c.str("cancel_reason")), ("cancelled".into(), "rider".into()));
    let v_before: u64 = before[9].0.as_deref().unwrap().trim_matches('"').parse().unwrap();
    assert_eq!(etag(&c), format!("\"{}\"", v_before + 1), "the version goes on from where it was");
}
