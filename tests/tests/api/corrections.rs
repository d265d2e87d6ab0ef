//! Corrections (api.md → *Corrections*; issue 17, item 1), over HTTP on the real system,
//! both backends: JSON merge patches of residents, pilots, care homes and trishaws with
//! `If-Match` (428 without, 412 stale, 415 not a merge patch, 400 unknown or `null` where it
//! cannot clear); personal corrections sealed like the originals, so never in clear and
//! gone with the person's erasure; corrections that would break booked future rides
//! refused (409 `conflicts-with-rides`), and under concurrency never leaving a ride with
//! more riders than seats; closures lifted by id; a trishaw moved; the new chapter settings.

use std::time::Duration;

use e2e::{Reply, System};
use gateway::Role;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

testkit::both_backends!(setup = e2e::System::start;
    people_are_corrected_by_merge_patch_sealed_and_erased_with_their_old_values,
    corrections_that_would_break_booked_rides_are_refused,
    one_of_many_concurrent_corrections_with_the_same_etag_wins,
    a_seats_decrease_racing_two_rider_bookings_leaves_no_ride_over_capacity,
);

fn etag(r: &Reply) -> String {
    r.header("etag").unwrap_or_else(|| panic!("no ETag: {}", r.body))
}

/// Whether `text` is anywhere in the data directory's files (SQLite; PostgreSQL keeps its
/// files elsewhere) or in the integrator feed.
async fn in_clear(s: &System, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut files = vec![s.config.data_dir().to_path_buf()];
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(bytes) = std::fs::read(&p)
            && bytes.windows(text.len()).any(|w| w == text.as_bytes())
        {
            found.push(p.display().to_string());
        }
    }
    let feed = s.get("/v1/events?limit=500", &s.admin()).await.expect(200);
    if feed.body.to_string().contains(text) {
        found.push("the event feed".into());
    }
    found
}

async fn people_are_corrected_by_merge_patch_sealed_and_erased_with_their_old_values(s: System) {
    let w = s.world().await;
    let coord = s.token(Role::Coordinator(w.home));
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let r0 = w.residents[0];
    let path = format!("/v1/residents/{r0}");
    let before = s.get(&path, &coord).await.expect(200);
    let tag = etag(&before);
    let other_home = s.carehome(w.chapter).await;
    let heads = s.quiet().await;

    // Refused, each naming why, and nothing written.
    let fix = json!({"display_name": "Zebulon Quistgaard"});
    let r = s.patch(&path, &coord, None, fix.clone()).await.expect(428);
    assert_eq!(r.code(), "precondition-required");
    let r = s
        .send_raw(Method::PATCH, &path, &coord, "application/json", fix.to_string(), &[("if-match", &tag)])
        .await
        .expect(415);
    assert_eq!(r.code(), "unsupported-media-type");
    let r = s.patch(&path, &coord, Some(&tag), json!({"colour": "red"})).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/colour", "{}", r.body);
    let r = s.patch(&path, &coord, Some(&tag), json!({"display_name": null})).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/display_name", "{}", r.body);
    let r = s.patch(&path, &coord, Some(&tag), json!({"display_name": " "})).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/display_name", "{}", r.body);
    let r = s.patch(&path, &coord, Some("\"999\""), fix.clone()).await.expect(412);
    assert_eq!(r.header("etag").as_deref(), Some(tag.as_str()), "a 412 carries the current ETag");
    // Who may: not a pilot (it cannot see residents), not another home's coordinator.
    let pilot = s.token(Role::Pilot(w.pilot));
    s.patch(&path, &pilot, Some(&tag), fix.clone()).await.expect(404);
    s.patch(&path, &s.token(Role::Coordinator(other_home)), Some(&tag), fix.clone()).await.expect(404);
    assert_eq!(s.quiet().await, heads, "refused corrections write nothing");

    // Corrected: the new name, a new ETag; `null` clears the notes.
    let fixed = s.patch(&path, &coord, Some(&tag), fix.clone()).await.expect(200);
    assert_eq!(fixed.body["display_name"], "Zebulon Quistgaard");
    assert_ne!(etag(&fixed), tag);
    let cleared = s.patch(&path, &admin, Some(&etag(&fixed)), json!({"notes": null})).await.expect(200);
    assert!(cleared.body.get("notes").is_none(), "{}", cleared.body);
    assert_eq!(cleared.body["display_name"], "Zebulon Quistgaard", "a field left out keeps its value");
    let same = s.patch(&path, &coord, Some("*"), fix.clone()).await.expect(200);
    assert_eq!(etag(&same), etag(&cleared), "nothing changed: nothing written");
    // The audit names the fields, not the values.
    let audit = s.get(&format!("/v1/audit?object_type=resident&object_id={r0}"), &admin).await.expect(200);
    let text = audit.body.to_string();
    assert!(text.contains("ResidentDetailsCorrected") && text.contains("display_name"), "{text}");
    assert!(!text.contains("Zebulon"), "the audit shows no values: {text}");
    assert_eq!(in_clear(&s, "Zebulon").await, Vec::<String>::new(), "the new name is sealed");

    // A pilot corrects itself; `null` clears its e-mail; a foreign pilot is 404.
    let ppath = format!("/v1/pilots/{}", w.pilot);
    let p = s.get(&ppath, &pilot).await.expect(200);
    let p = s
        .patch(
            &ppath,
            &pilot,
            Some(&etag(&p)),
            json!({"display_name": "Xanthippe Pilot", "email": null, "phone": "+45 12 34 56 78"}),
        )
        .await
        .expect(200);
    assert_eq!((p.body["display_name"].clone(), p.body.get("email")), (json!("Xanthippe Pilot"), None), "{}", p.body);
    let r = s.patch(&ppath, &pilot, Some(&etag(&p)), json!({"email": "not an address"})).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/email", "{}", r.body);
    let stranger = s.pilot(w.chapter).await;
    s.patch(&ppath, &s.token(Role::Pilot(stranger)), Some(&etag(&p)), json!({"phone": null})).await.expect(404);
    assert_eq!(in_clear(&s, "Xanthippe").await, Vec::<String>::new(), "the pilot's new name is sealed");

    // Erasure reaches the old values and the new: the export, the resident, the audit.
    s.post(&format!("{path}/erasure"), &coord, json!({})).await.expect(200);
    let gone = s.get(&path, &coord).await.expect(200);
    assert_eq!((gone.body["erased"].clone(), gone.body.get("display_name")), (json!(true), None));
    let export = s.get(&format!("{path}/export"), &coord).await.expect(200).body.to_string();
    assert!(!export.contains("Zebulon") && !export.contains("Østergård"), "{export}");
    // An erased resident cannot be corrected.
    let r = s.patch(&path, &coord, Some("*"), fix).await.expect(409);
    assert_eq!(r.code(), "illegal-transition");
}

fn ride(w: &e2e::World, start: &str, riders: &[Uuid]) -> Value {
    json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": start, "duration_minutes": 60, "resident_ids": riders})
}

async fn corrections_that_would_break_booked_rides_are_refused(s: System) {
    let w = s.world().await;
    let coord = s.token(Role::Coordinator(w.home));
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let two = s.post("/v1/rides", &coord, ride(&w, "2027-05-03T08:00:00Z", &w.residents)).await.expect(201);
    let two = two.str("ride_id");
    let bike_path = format!("/v1/bikes/{}", w.bike);
    let bike = s.get(&bike_path, &coord).await.expect(200);
    let heads = s.quiet().await;

    // One seat, or a type the pilot is not qualified for: 409 naming the ride.
    for fix in [json!({"seats": 1}), json!({"bike_type": "tandem"})] {
        let r = s.patch(&bike_path, &coord, Some(&etag(&bike)), fix).await.expect(409);
        assert_eq!((r.code(), r.body["ride_ids"].clone()), ("conflicts-with-rides", json!([two])), "{}", r.body);
    }
    let r = s.patch(&bike_path, &coord, Some(&etag(&bike)), json!({"seats": 3})).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/seats");
    let r = s.patch(&bike_path, &coord, Some(&etag(&bike)), json!({"seats": null})).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/seats");
    s.patch(&bike_path, &s.token(Role::Pilot(w.pilot)), Some(&etag(&bike)), json!({"name": "X"})).await.expect(403);
    assert_eq!(s.quiet().await, heads, "nothing written");
    let renamed = s.patch(&bike_path, &coord, Some(&etag(&bike)), json!({"name": "Cyklen Karen"})).await.expect(200);
    assert_eq!(renamed.body["name"], "Cyklen Karen");

    // A turnaround that makes two rides of the trishaw overlap: 409 naming both.
    let next = s.post("/v1/rides", &coord, ride(&w, "2027-05-03T09:20:00Z", &[])).await.expect(201).str("ride_id");
    let home_path = format!("/v1/carehomes/{}", w.home);
    let home = s.get(&home_path, &admin).await.expect(200);
    let r = s.patch(&home_path, &admin, Some(&etag(&home)), json!({"turnaround_minutes": 30})).await.expect(409);
    let mut named: Vec<String> = serde_json::from_value(r.body["ride_ids"].clone()).unwrap();
    named.sort();
    let mut both = vec![two.clone(), next.clone()];
    both.sort();
    assert_eq!(named, both, "{}", r.body);
    s.patch(&home_path, &coord, Some(&etag(&home)), json!({"name": "X"})).await.expect(403);
    let home = s
        .patch(&home_path, &admin, Some(&etag(&home)), json!({"turnaround_minutes": 20, "name": "Lindehuset Syd"}))
        .await
        .expect(200);
    assert_eq!(
        (home.body["turnaround_minutes"].clone(), home.body["name"].clone()),
        (json!(20), json!("Lindehuset Syd"))
    );

    // A move while the trishaw has future rides: 409; once they are cancelled, it moves.
    let other = s.carehome(w.chapter).await;
    let move_path = format!("{bike_path}/move");
    let r = s.post(&move_path, &admin, json!({"carehome_id": other})).await.expect(409);
    assert_eq!(r.code(), "conflicts-with-rides");
    s.post(&move_path, &coord, json!({"carehome_id": other})).await.expect(403);
    let elsewhere = s.carehome(s.chapter().await).await;
    s.post(&move_path, &admin, json!({"carehome_id": elsewhere})).await.expect(404);
    for id in [&two, &next] {
        s.post(&format!("/v1/rides/{id}/cancel"), &coord, json!({"reason": "rider"})).await.expect(200);
    }
    let moved = s.post(&move_path, &admin, json!({"carehome_id": other})).await.expect(200);
    assert_eq!(moved.body["carehome_id"], other.to_string());
    s.eventually("the trishaw listed at its new home", || async {
        let listed = s.get(&format!("/v1/carehomes/{other}/bikes"), &admin).await.expect(200);
        listed.body["items"][0]["bike_id"] == w.bike.to_string()
    })
    .await;

    // A closure is listed with its id and lifted by it; the days are bookable again.
    let closure = json!({"from": "2027-05-10", "to": "2027-05-12", "reason": "renovation"});
    let closed = s.post(&format!("{home_path}/closures"), &coord, closure).await.expect(200);
    let closure_id = closed.body["closures"][0]["closure_id"].as_str().unwrap().to_owned();
    let bike2 = s.bike(w.chapter, w.home, 2).await;
    let on_closed_day = json!({"bike_id": bike2, "pilot_id": w.pilot, "start": "2027-05-10T08:00:00Z",
        "duration_minutes": 60, "resident_ids": []});
    s.eventually("booking to learn the closure and the trishaw", || async {
        s.post("/v1/rides", &coord, on_closed_day.clone()).await.code() == "outside-ride-hours"
    })
    .await;
    let lift = format!("{home_path}/closures/{closure_id}");
    s.delete(&lift, &s.token(Role::Pilot(w.pilot))).await.expect(403);
    s.delete(&format!("{home_path}/closures/{}", Uuid::new_v4()), &coord).await.expect(404);
    let lifted = s.delete(&lift, &coord).await.expect(200);
    assert_eq!(lifted.body["closures"], json!([]));
    assert_eq!(s.delete(&lift, &coord).await.expect(200).header("etag"), lifted.header("etag"), "again: nothing");
    s.eventually("the lifted days to be bookable", || async {
        s.post("/v1/rides", &coord, on_closed_day.clone()).await.status == 201
    })
    .await;

    // The new settings: kept when left out, bounded.
    let settings = format!("/v1/chapters/{}/settings", w.chapter);
    let base = json!({"lead_time_minutes": 60, "default_turnaround_minutes": 15, "reminder_lead_minutes": [60]});
    let mut with = base.clone();
    with["record_window_days"] = json!(30);
    let r = s.put(&settings, &admin, with).await.expect(200);
    assert_eq!(r.body["settings"]["record_window_days"], 30, "{}", r.body);
    let r = s.put(&settings, &admin, base.clone()).await.expect(200);
    let kept = &r.body["settings"];
    assert_eq!(
        (kept["record_window_days"].clone(), kept["series_horizon_days"].clone(), kept["offer_fanout"].clone()),
        (json!(30), json!(56), json!(5))
    );
    for (field, value) in [("record_window_days", 91), ("series_horizon_days", 6), ("offer_fanout", 0)] {
        let mut bad = base.clone();
        bad[field] = json!(value);
        let r = s.put(&settings, &admin, bad).await.expect(400);
        assert_eq!(r.body["errors"][0]["field"], format!("/{field}"), "{}", r.body);
    }
}

async fn one_of_many_concurrent_corrections_with_the_same_etag_wins(s: System) {
    let w = s.world().await;
    let coord = s.token(Role::Coordinator(w.home));
    let path = format!("/v1/residents/{}", w.residents[0]);
    let tag = etag(&s.get(&path, &coord).await.expect(200));
    let answers =
        futures_util::future::join_all((0..32).map(|i| {
            let (s, path, coord, tag) = (&s, &path, &coord, &tag);
            async move {
                s.patch(path, coord, Some(tag), json!({"display_name": format!("Name {i}")})).await.status.as_u16()
            }
        }))
        .await;
    let ok = answers.iter().filter(|c| **c == 200).count();
    let stale = answers.iter().filter(|c| **c == 412).count();
    assert_eq!((ok, stale), (1, 31), "{answers:?}");
    let audit = s
        .get(
            &format!("/v1/audit?object_type=resident&object_id={}", w.residents[0]),
            &s.token(Role::ChapterAdmin(w.chapter)),
        )
        .await
        .expect(200);
    let corrections =
        audit.body["items"].as_array().unwrap().iter().filter(|i| i["type"] == "ResidentDetailsCorrected");
    assert_eq!(corrections.count(), 1);
}

async fn a_seats_decrease_racing_two_rider_bookings_leaves_no_ride_over_capacity(s: System) {
    let w = s.world().await;
    let coord = s.token(Role::Coordinator(w.home));
    let bike_path = format!("/v1/bikes/{}", w.bike);
    let tag = etag(&s.get(&bike_path, &coord).await.expect(200));
    // 32 two-rider half-hour bookings at distinct times (45 minutes apart, within 09:00–17:00
    // local, turnaround 15) race one correction to a single seat.
    let starts: Vec<String> = (0..32)
        .map(|i| {
            let day = 3 + i / 8;
            let minute = 7 * 60 + (i % 8) * 45;
            format!("2027-05-{day:02}T{:02}:{:02}:00Z", minute / 60, minute % 60)
        })
        .collect();
    let patch = s.patch(&bike_path, &coord, Some(&tag), json!({"seats": 1}));
    let bookings = futures_util::future::join_all(starts.iter().map(|start| {
        let (s, coord, w) = (&s, &coord, &w);
        let body = json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": start, "duration_minutes": 30,
            "resident_ids": w.residents});
        async move { s.post("/v1/rides", coord, body).await }
    }));
    let (patched, booked) = tokio::join!(patch, bookings);
    for r in &booked {
        // Booked, or refused for a rule (the one seat known by then), never an error.
        assert!(matches!(r.status.as_u16(), 201 | 422), "{}", r.body);
    }
    let seats = if patched.status == 200 { 1 } else { 2 };
    let n = booked.iter().filter(|r| r.status == 201).count();
    eprintln!("the correction: {}; bookings: {n} booked", patched.status);
    assert!(matches!(patched.status.as_u16(), 200 | 409), "{}", patched.body);
    // Whatever the order, once the cascade's second sweep has passed, no ride still booked
    // has more riders than seats.
    let list = format!("/v1/rides?carehome_id={}&status=booked&limit=100", w.home);
    testkit::eventually("no booked ride over capacity", Duration::from_secs(60), || async {
        let rides = s.get(&list, &coord).await.expect(200);
        let over: Vec<Value> = rides.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["riders"].as_array().map_or(0, Vec::len) > seats)
            .cloned()
            .collect();
        over.is_empty()
    })
    .await;
    let bike = s.get(&bike_path, &coord).await.expect(200);
    assert_eq!(bike.body["seats"], seats, "{}", patched.body);
}
