//! Stats over HTTP on the real system, checked figure by figure against hand-computed
//! scenarios: the worked example of `api.md` (one completed pleasure ride 10:00–10:55 local
//! with two riders and 7.5 km, one cancelled for weather, one no-show); an event ride
//! counts the riders who checked in; months split at the chapter's local midnight; an
//! erased resident's rides still count; `as_of` reproduces an earlier answer exactly after
//! later changes (a late completion of a ride started before, another completion, a
//! cancellation, a new booking); the network stats per chapter and in total with no ids of
//! persons; and who may read which scope (foreign 404, another home 403, pilots 403).

use chrono::{SecondsFormat, Utc};
use e2e::{System, World};
use gateway::Role;
use serde_json::{Value, json};
use uuid::Uuid;

testkit::both_backends!(setup = e2e::System::start;
    the_worked_example_figure_by_figure,
    an_event_ride_counts_the_riders_who_checked_in,
    months_split_at_the_chapters_local_midnight,
    an_erased_residents_rides_still_count,
    as_of_reproduces_an_earlier_answer_after_later_changes,
    network_stats_per_chapter_and_in_total_without_person_ids,
    who_may_read_which_stats,
);

/// The figures of the counting rule as the API answers them (`bike_minutes` is the exact
/// form of `bike_hours`).
#[allow(clippy::too_many_arguments)]
fn figures(
    trips: u64,
    rides: u64,
    distinct: u64,
    ride_minutes: u64,
    bike_minutes: u64,
    km: f64,
    no_shows: u64,
    cancelled: &[(&str, u64)],
) -> Value {
    let mut c = json!({"weather": 0, "rider": 0, "facility": 0, "volunteer": 0, "equipment": 0, "no_riders": 0});
    for (reason, n) in cancelled {
        assert!(c.get(*reason).is_some(), "no reason {reason}");
        c[*reason] = json!(n);
    }
    json!({
        "trips": trips, "rides": rides, "distinct_residents": distinct, "ride_minutes": ride_minutes,
        "bike_hours": bike_minutes as f64 / 60.0, "bike_minutes": bike_minutes, "distance_km": km,
        "no_shows": no_shows, "no_shows_by": {"pilot": 0, "riders": no_shows}, "cancelled": c,
    })
}

fn zero() -> Value {
    figures(0, 0, 0, 0, 0, 0.0, 0, &[])
}

/// A whole answer: the total and its months.
fn answer(total: Value, months: &[(&str, Value)]) -> Value {
    let mut out = total;
    let by_month: Vec<Value> = months
        .iter()
        .map(|(m, f)| {
            let mut v = f.clone();
            v["month"] = json!(m);
            v
        })
        .collect();
    out["by_month"] = json!(by_month);
    out
}

/// Polls a stats path until it answers `expected` (stats may lag the log by a moment);
/// on timeout shows the last answer against the expectation.
async fn settles(s: &System, path: &str, token: &str, expected: &Value) -> Value {
    testkit::eventually(&format!("{path} to answer {expected}"), testkit::DEFAULT_TIMEOUT, || async {
        let r = s.get(path, token).await;
        if r.status.as_u16() == 200 && &r.body == expected {
            Ok(r.body)
        } else {
            Err(format!("{} {}", r.status, r.body))
        }
    })
    .await
}

/// Books a ride (as the chapter admin) and returns its id.
async fn book(s: &System, w: &World, start: &str, minutes: u32, riders: &[Uuid]) -> String {
    book_with(s, w, json!({"start": start, "duration_minutes": minutes, "resident_ids": riders})).await
}

async fn book_with(s: &System, w: &World, extra: Value) -> String {
    let mut body = json!({"bike_id": w.bike, "pilot_id": w.pilot});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    s.post("/v1/rides", &s.token(Role::ChapterAdmin(w.chapter)), body).await.expect(201).str("ride_id")
}

async fn start(s: &System, w: &World, ride: &str) {
    s.post(&format!("/v1/rides/{ride}/start"), &s.token(Role::Pilot(w.pilot)), json!({})).await.expect(200);
}

async fn finish(s: &System, w: &World, ride: &str, ended_at: &str, km: f64) {
    let body = json!({"ended_at": ended_at, "distance_km": km, "story": "Vi så havnen"});
    s.post(&format!("/v1/rides/{ride}/complete"), &s.token(Role::Pilot(w.pilot)), body).await.expect(200);
}

async fn complete(s: &System, w: &World, ride: &str, ended_at: &str, km: f64) {
    start(s, w, ride).await;
    finish(s, w, ride, ended_at, km).await;
}

async fn cancel(s: &System, w: &World, ride: &str, reason: &str) {
    let body = json!({"reason": reason});
    s.post(&format!("/v1/rides/{ride}/cancel"), &s.token(Role::ChapterAdmin(w.chapter)), body).await.expect(200);
}

async fn no_show(s: &System, w: &World, ride: &str) {
    s.post(&format!("/v1/rides/{ride}/no-show"), &s.token(Role::Pilot(w.pilot)), json!({})).await.expect(200);
}

/// The worked example in a world: returns its expected answer.
async fn worked_example(s: &System, w: &World) -> Value {
    let [a, b] = [w.residents[0], w.residents[1]];
    let done = book(s, w, "2027-05-03T10:00:00+02:00", 60, &[a, b]).await;
    complete(s, w, &done, "2027-05-03T10:55:00+02:00", 7.5).await;
    let rained = book(s, w, "2027-05-03T12:00:00+02:00", 60, &[a]).await;
    cancel(s, w, &rained, "weather").await;
    let nobody = book(s, w, "2027-05-03T14:00:00+02:00", 45, &[b]).await;
    no_show(s, w, &nobody).await;
    // bike_hours: the scheduled 60 + 45 minutes of the completed and the no-show ride.
    let f = figures(1, 2, 2, 55, 105, 7.5, 1, &[("weather", 1)]);
    answer(f.clone(), &[("2027-05", f)])
}

async fn the_worked_example_figure_by_figure(s: System) {
    let w = s.world().await;
    let expected = worked_example(&s, &w).await;
    assert_eq!(expected["bike_hours"], json!(1.75));
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let got = settles(&s, "/v1/stats", &admin, &expected).await;
    assert_eq!(got["trips"], 1);
    assert_eq!(got["rides"], 2, "two riders on one trip are two rides");
    assert_eq!(got["ride_minutes"], 55);
    assert_eq!(got["distance_km"], 7.5);
    assert_eq!(got["no_shows"], 1);
    assert_eq!(got["cancelled"]["weather"], 1);
    // The same figures through every scope that holds all three rides, and for every reader.
    let (c, h, b, p) = (w.chapter, w.home, w.bike, w.pilot);
    for (who, query) in [
        (Role::ChapterAdmin(c), format!("?chapter_id={c}")),
        (Role::ChapterAdmin(c), format!("?carehome_id={h}")),
        (Role::ChapterAdmin(c), format!("?bike_id={b}")),
        (Role::ChapterAdmin(c), format!("?pilot_id={p}")),
        (Role::ChapterAdmin(c), format!("?chapter_id={c}&carehome_id={h}&bike_id={b}&pilot_id={p}")),
        (Role::ChapterAdmin(c), "?from=2027-05-03T00:00:00%2B02:00&to=2027-05-04T00:00:00%2B02:00".into()),
        (Role::Admin, format!("?chapter_id={c}")),
        (Role::Admin, String::new()),
        (Role::Integrator(Some(c)), String::new()),
        (Role::Integrator(None), format!("?carehome_id={h}")),
        (Role::Coordinator(h), String::new()),
        (Role::Coordinator(h), format!("?carehome_id={h}")),
    ] {
        let r = s.get(&format!("/v1/stats{query}"), &s.token(who)).await.expect(200);
        assert_eq!(r.body, expected, "{who:?} {query}");
    }
    // `from` inclusive, `to` exclusive, on the scheduled start.
    let only_first =
        s.get("/v1/stats?from=2027-05-03T10:00:00%2B02:00&to=2027-05-03T12:00:00%2B02:00", &admin).await.expect(200);
    let f = figures(1, 2, 2, 55, 60, 7.5, 0, &[]);
    assert_eq!(only_first.body, answer(f.clone(), &[("2027-05", f)]));
    let after = s.get("/v1/stats?from=2027-05-03T14:00:01%2B02:00", &admin).await.expect(200);
    assert_eq!(after.body, answer(zero(), &[]));
    // Another care home of the chapter: its ride counts for the chapter, not for this home.
    let other_home = s.carehome(w.chapter).await;
    let bike = s.bike(w.chapter, other_home, 1).await;
    let other = World { chapter: w.chapter, home: other_home, bike, pilot: w.pilot, residents: w.residents.clone() };
    s.settle(&other).await;
    let there = book(&s, &other, "2027-05-04T10:00:00+02:00", 30, &[]).await;
    let mut chapter = expected.clone();
    chapter["bike_minutes"] = json!(135);
    chapter["bike_hours"] = json!(2.25);
    chapter["by_month"][0]["bike_minutes"] = json!(135);
    chapter["by_month"][0]["bike_hours"] = json!(2.25);
    settles(&s, "/v1/stats", &admin, &chapter).await;
    let home_only = s.get(&format!("/v1/stats?carehome_id={h}"), &admin).await.expect(200);
    assert_eq!(home_only.body, expected);
    let f = figures(0, 0, 0, 0, 30, 0.0, 0, &[]);
    let r = s.get(&format!("/v1/stats?carehome_id={other_home}"), &admin).await.expect(200);
    assert_eq!(r.body, answer(f.clone(), &[("2027-05", f)]), "ride {there}");
}

async fn an_event_ride_counts_the_riders_who_checked_in(s: System) {
    let w = s.world().await;
    let [a, b] = [w.residents[0], w.residents[1]];
    let event = book_with(
        &s,
        &w,
        json!({"start": "2027-05-05T10:00:00+02:00", "duration_minutes": 60, "kind": "event", "trip_minutes": 30,
            "resident_ids": [a, b]}),
    )
    .await;
    start(&s, &w, &event).await;
    let pilot = s.token(Role::Pilot(w.pilot));
    s.post(&format!("/v1/rides/{event}/roster/{a}/check-in"), &pilot, json!({})).await.expect(200);
    finish(&s, &w, &event, "2027-05-05T10:50:00+02:00", 3.25).await;
    // A pleasure ride counts its roster at completion, checked in or not.
    let pleasure = book(&s, &w, "2027-05-05T13:00:00+02:00", 30, &[a, b]).await;
    complete(&s, &w, &pleasure, "2027-05-05T13:30:00+02:00", 2.0).await;
    let event_only = figures(1, 1, 1, 50, 60, 3.25, 0, &[]);
    let both = figures(2, 3, 2, 80, 90, 5.25, 0, &[]);
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    settles(&s, "/v1/stats", &admin, &answer(both.clone(), &[("2027-05", both)])).await;
    let r = s.get("/v1/stats?to=2027-05-05T12:00:00%2B02:00", &admin).await.expect(200);
    assert_eq!(r.body, answer(event_only.clone(), &[("2027-05", event_only)]));
}

/// A world in a chapter in `zone`.
async fn world_in(s: &System, zone: &str) -> World {
    let chapter = s
        .post("/v1/chapters", &s.admin(), json!({"name": "Auckland", "timezone": zone}))
        .await
        .expect(201)
        .str("chapter_id")
        .parse()
        .unwrap();
    let home = s.carehome(chapter).await;
    let w = World {
        chapter,
        home,
        bike: s.bike(chapter, home, 2).await,
        pilot: s.pilot(chapter).await,
        residents: vec![s.resident(home).await, s.resident(home).await],
    };
    s.settle(&w).await;
    w
}

async fn months_split_at_the_chapters_local_midnight(s: System) {
    // Auckland is 12 hours ahead in June: 10:00 on 1 June there is 22:00 on 31 May in UTC.
    let w = world_in(&s, "Pacific/Auckland").await;
    let may = book(&s, &w, "2027-05-31T10:00:00+12:00", 60, &[w.residents[0]]).await;
    complete(&s, &w, &may, "2027-05-31T11:00:00+12:00", 4.0).await;
    let june = book(&s, &w, "2027-06-01T10:00:00+12:00", 60, &[w.residents[0], w.residents[1]]).await;
    complete(&s, &w, &june, "2027-06-01T10:30:00+12:00", 2.5).await;
    let (m, j) = (figures(1, 1, 1, 60, 60, 4.0, 0, &[]), figures(1, 2, 2, 30, 60, 2.5, 0, &[]));
    let total = figures(2, 3, 2, 90, 120, 6.5, 0, &[]);
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    settles(&s, "/v1/stats", &admin, &answer(total, &[("2027-05", m), ("2027-06", j.clone())])).await;
    let r = s.get("/v1/stats?from=2027-06-01T00:00:00%2B12:00", &admin).await.expect(200);
    assert_eq!(r.body, answer(j.clone(), &[("2027-06", j)]));
}

async fn an_erased_residents_rides_still_count(s: System) {
    let w = s.world().await;
    let [a, b] = [w.residents[0], w.residents[1]];
    let done = book(&s, &w, "2027-05-06T10:00:00+02:00", 60, &[a, b]).await;
    complete(&s, &w, &done, "2027-05-06T11:00:00+02:00", 6.0).await;
    let again = book(&s, &w, "2027-05-07T10:00:00+02:00", 60, &[a]).await;
    complete(&s, &w, &again, "2027-05-07T10:45:00+02:00", 4.0).await;
    let f = figures(2, 3, 2, 105, 120, 10.0, 0, &[]);
    let expected = answer(f.clone(), &[("2027-05", f)]);
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let before = settles(&s, "/v1/stats", &admin, &expected).await;
    let as_of = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true).replace('+', "%2B");
    s.post(&format!("/v1/residents/{a}/erasure"), &s.token(Role::Coordinator(w.home)), json!({})).await.expect(200);
    // Booking has worked the erasure once the rides' stories (sealed with the rides' keys)
    // can no longer be read.
    s.eventually("booking to forget the erased resident's rides", || async {
        let r = s.get(&format!("/v1/rides/{done}"), &admin).await;
        r.status.as_u16() == 200 && r.body.get("story").is_none()
    })
    .await;
    let ride = s.get(&format!("/v1/rides/{again}"), &admin).await.expect(200);
    assert_eq!(ride.body["riders"][0]["resident_id"], json!(a), "the completed ride keeps its roster");
    assert!(ride.body["riders"][0].get("display_name").is_none());
    let after = s.get("/v1/stats", &admin).await.expect(200);
    assert_eq!(after.body, before, "counts, minutes and kilometres unchanged after erasure");
    let r = s.get(&format!("/v1/stats?as_of={as_of}"), &admin).await.expect(200);
    assert_eq!(r.body, before);
}

async fn as_of_reproduces_an_earlier_answer_after_later_changes(s: System) {
    let w = s.world().await;
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let stamp = || Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true).replace('+', "%2B");
    let t0 = stamp();
    let [a, b] = [w.residents[0], w.residents[1]];
    // Before T: one completed ride, one started (completed only after T), one booked to be
    // completed after T, one booked to be cancelled after T.
    let done = book(&s, &w, "2027-05-10T10:00:00+02:00", 60, &[a, b]).await;
    complete(&s, &w, &done, "2027-05-10T10:40:00+02:00", 5.5).await;
    let late = book(&s, &w, "2027-05-11T10:00:00+02:00", 60, &[a]).await;
    start(&s, &w, &late).await;
    let later = book(&s, &w, "2027-06-12T10:00:00+02:00", 30, &[b]).await;
    let doomed = book(&s, &w, "2027-06-13T10:00:00+02:00", 45, &[a, b]).await;
    let may = figures(1, 2, 2, 40, 120, 5.5, 0, &[]);
    let june = figures(0, 0, 0, 0, 75, 0.0, 0, &[]);
    let total = figures(1, 2, 2, 40, 195, 5.5, 0, &[]);
    let a_answer = settles(&s, "/v1/stats", &admin, &answer(total, &[("2027-05", may), ("2027-06", june)])).await;
    let t = stamp();
    // After T: the late completion of a ride started before T, another completion, a
    // cancellation and a new booking.
    finish(&s, &w, &late, "2027-05-11T10:50:00+02:00", 4.5).await;
    complete(&s, &w, &later, "2027-06-12T10:30:00+02:00", 2.0).await;
    cancel(&s, &w, &doomed, "rider").await;
    book(&s, &w, "2027-07-01T10:00:00+02:00", 60, &[a]).await;
    let may = figures(2, 3, 2, 90, 120, 10.0, 0, &[]);
    let june = figures(1, 1, 1, 30, 30, 2.0, 0, &[("rider", 1)]);
    let july = figures(0, 0, 0, 0, 60, 0.0, 0, &[]);
    let total = figures(3, 4, 2, 120, 210, 12.0, 0, &[("rider", 1)]);
    let now_answer = answer(total, &[("2027-05", may), ("2027-06", june), ("2027-07", july)]);
    settles(&s, "/v1/stats", &admin, &now_answer).await;
    assert_ne!(now_answer, a_answer);
    // As of T: exactly the earlier answer, for every reader and scope that gave it.
    let r = s.get(&format!("/v1/stats?as_of={t}"), &admin).await.expect(200);
    assert_eq!(r.body, a_answer, "as_of reproduces the answer taken at T");
    for (who, q) in [
        (Role::Admin, format!("&chapter_id={}", w.chapter)),
        (Role::Integrator(Some(w.chapter)), String::new()),
        (Role::Coordinator(w.home), String::new()),
        (Role::ChapterAdmin(w.chapter), format!("&bike_id={}&pilot_id={}", w.bike, w.pilot)),
    ] {
        let r = s.get(&format!("/v1/stats?as_of={t}{q}"), &s.token(who)).await.expect(200);
        assert_eq!(r.body, a_answer, "{who:?} {q}");
    }
    // With a period: as of T, June held only the two booked rides.
    let r = s.get(&format!("/v1/stats?as_of={t}&from=2027-06-01T00:00:00%2B02:00"), &admin).await.expect(200);
    let june = figures(0, 0, 0, 0, 75, 0.0, 0, &[]);
    assert_eq!(r.body, answer(june.clone(), &[("2027-06", june)]));
    // As of now, folded from the log, the same as the read model's answer; before anything, nothing.
    let r = s.get(&format!("/v1/stats?as_of={}", stamp()), &admin).await.expect(200);
    assert_eq!(r.body, now_answer, "the log folded up to now agrees with the read model");
    let r = s.get(&format!("/v1/stats?as_of={t0}"), &admin).await.expect(200);
    assert_eq!(r.body, answer(zero(), &[]));
    // A moment that has not come yet cannot be answered for.
    let heads = s.heads().await;
    let future = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let r = s.get(&format!("/v1/stats?as_of={future}"), &admin).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/as_of");
    let r = s.get("/v1/stats?as_of=yesterday", &admin).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/as_of");
    assert_eq!(s.heads().await, heads);
}

/// Every string in a JSON document (keys included).
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => {
            for (k, x) in o {
                out.push(k.clone());
                strings(x, out);
            }
        }
        _ => {}
    }
}

fn sum(entries: &[&Value], field: &str) -> Value {
    if entries.iter().all(|e| e[field].is_u64()) {
        json!(entries.iter().map(|e| e[field].as_u64().unwrap()).sum::<u64>())
    } else {
        json!(entries.iter().map(|e| e[field].as_f64().unwrap()).sum::<f64>())
    }
}

async fn network_stats_per_chapter_and_in_total_without_person_ids(s: System) {
    let w = s.world().await;
    let v = s.world().await;
    let idle = s.chapter().await;
    let expected_w = worked_example(&s, &w).await;
    let one = book(&s, &v, "2027-06-02T10:00:00+02:00", 30, &[v.residents[0]]).await;
    complete(&s, &v, &one, "2027-06-02T10:30:00+02:00", 2.25).await;
    let f = figures(1, 1, 1, 30, 30, 2.25, 0, &[]);
    let expected_v = answer(f.clone(), &[("2027-06", f)]);
    settles(&s, "/v1/stats", &s.token(Role::ChapterAdmin(w.chapter)), &expected_w).await;
    settles(&s, "/v1/stats", &s.token(Role::ChapterAdmin(v.chapter)), &expected_v).await;

    let total = figures(2, 3, 3, 85, 135, 9.75, 1, &[("weather", 1)]);
    let (may, june) = (figures(1, 2, 2, 55, 105, 7.5, 1, &[("weather", 1)]), figures(1, 1, 1, 30, 30, 2.25, 0, &[]));
    let expected_total = answer(total, &[("2027-05", may), ("2027-06", june)]);
    let mut chapters: Vec<(Uuid, Value)> = vec![(w.chapter, expected_w), (v.chapter, expected_v)];
    chapters.push((idle, answer(zero(), &[])));
    chapters.sort_by_key(|(c, _)| *c);
    let mut entries = Vec::new();
    for (c, figures) in &chapters {
        let mut e = figures.clone();
        e["chapter_id"] = json!(c);
        e["name"] = json!("Aarhus");
        entries.push(e);
    }
    let expected = json!({"chapters": entries, "total": expected_total});
    let got = settles(&s, "/v1/stats/network", &s.admin(), &expected).await;
    let r = s.get("/v1/stats/network", &s.token(Role::Integrator(None))).await.expect(200);
    assert_eq!(r.body, got, "the network integrator reads the same");

    // The total is the sum of the chapters, figure by figure and month by month.
    let each: Vec<&Value> = got["chapters"].as_array().unwrap().iter().collect();
    for field in ["trips", "rides", "distinct_residents", "ride_minutes", "bike_minutes", "bike_hours", "distance_km"] {
        assert_eq!(got["total"][field], sum(&each, field), "{field}");
    }
    assert_eq!(got["total"]["no_shows"], sum(&each, "no_shows"));
    for reason in ["weather", "rider", "facility", "volunteer", "equipment", "no_riders"] {
        let cancelled: Vec<&Value> = each.iter().map(|e| &e["cancelled"]).collect();
        assert_eq!(got["total"]["cancelled"][reason], sum(&cancelled, reason), "{reason}");
    }
    for month in got["total"]["by_month"].as_array().unwrap() {
        let m = month["month"].as_str().unwrap();
        let parts: Vec<&Value> =
            each.iter().flat_map(|e| e["by_month"].as_array().unwrap().iter().filter(|x| x["month"] == m)).collect();
        assert_eq!(month["trips"], sum(&parts, "trips"), "{m}");
        assert_eq!(month["rides"], sum(&parts, "rides"), "{m}");
    }
    // Each chapter's entry is what the chapter's own stats say.
    for e in &each {
        let c = e["chapter_id"].as_str().unwrap();
        let own = s.get(&format!("/v1/stats?chapter_id={c}"), &s.admin()).await.expect(200);
        let mut entry = (*e).clone();
        entry.as_object_mut().unwrap().remove("chapter_id");
        entry.as_object_mut().unwrap().remove("name");
        assert_eq!(entry, own.body, "chapter {c}");
    }
    // No person anywhere: no pilot or resident id, no field naming one, no names.
    let mut all = Vec::new();
    strings(&got, &mut all);
    let persons: Vec<String> = [w.pilot, v.pilot]
        .into_iter()
        .chain(w.residents.iter().copied())
        .chain(v.residents.clone())
        .map(|i| i.to_string())
        .collect();
    for text in &all {
        assert!(!persons.contains(text), "a person's id in the network stats: {text}");
        // `no_shows_by.pilot` is a count of rides, not a person: the one "pilot" allowed.
        let pilotish = text.contains("pilot") && text != "pilot";
        assert!(!pilotish && !text.contains("resident_id") && !text.contains("Ærø"), "{text}");
    }
    let ids: Vec<&String> = all.iter().filter(|t| t.parse::<Uuid>().is_ok()).collect();
    assert_eq!(ids.len(), 3, "the only ids are the three chapters': {ids:?}");

    // Only admin and the network integrator; a period works as on /v1/stats.
    for who in [
        Role::ChapterAdmin(w.chapter),
        Role::Integrator(Some(w.chapter)),
        Role::Coordinator(w.home),
        Role::Pilot(w.pilot),
    ] {
        let r = s.get("/v1/stats/network", &s.token(who)).await.expect(403);
        assert_eq!(r.code(), "forbidden", "{who:?}");
    }
    s.call(reqwest::Method::GET, "/v1/stats/network", None, None).await.expect(401);
    let june_only = s.get("/v1/stats/network?from=2027-06-01T00:00:00Z", &s.admin()).await.expect(200);
    let june = figures(1, 1, 1, 30, 30, 2.25, 0, &[]);
    assert_eq!(june_only.body["total"], answer(june.clone(), &[("2027-06", june)]));
    let r = s.get("/v1/stats/network?chapter_id=x", &s.admin()).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/chapter_id");
}

async fn who_may_read_which_stats(s: System) {
    let w = s.world().await;
    let expected = worked_example(&s, &w).await;
    settles(&s, "/v1/stats", &s.token(Role::ChapterAdmin(w.chapter)), &expected).await;
    let sibling = s.carehome(w.chapter).await;
    let sibling_bike = s.bike(w.chapter, sibling, 1).await;
    let other_pilot = s.pilot(w.chapter).await;
    let f = s.world().await;
    let (c, h, b, p) = (w.chapter, w.home, w.bike, w.pilot);
    let heads = s.heads().await;
    let unknown = Uuid::now_v7();
    let cells: Vec<(Role, String, u16)> = vec![
        // A foreign chapter's callers: every object of A looks unknown.
        (Role::ChapterAdmin(f.chapter), format!("chapter_id={c}"), 404),
        (Role::ChapterAdmin(f.chapter), format!("carehome_id={h}"), 404),
        (Role::ChapterAdmin(f.chapter), format!("bike_id={b}"), 404),
        (Role::ChapterAdmin(f.chapter), format!("pilot_id={p}"), 404),
        (Role::Integrator(Some(f.chapter)), format!("chapter_id={c}"), 404),
        (Role::Coordinator(f.home), format!("carehome_id={h}"), 404),
        (Role::Pilot(f.pilot), format!("carehome_id={h}"), 404),
        (Role::ChapterAdmin(c), format!("chapter_id={unknown}"), 404),
        (Role::ChapterAdmin(c), format!("carehome_id={unknown}"), 404),
        (Role::ChapterAdmin(c), format!("pilot_id={unknown}"), 404),
        (Role::ChapterAdmin(c), format!("bike_id={unknown}"), 404),
        // Another home of the chapter: the coordinator reads the home but not its stats.
        (Role::Coordinator(sibling), format!("carehome_id={h}"), 403),
        (Role::Coordinator(sibling), format!("bike_id={b}"), 403),
        (Role::Coordinator(h), format!("carehome_id={sibling}"), 403),
        (Role::Coordinator(h), format!("bike_id={sibling_bike}"), 403),
        // Pilots read no stats, not even their own.
        (Role::Pilot(p), String::new(), 403),
        (Role::Pilot(p), format!("pilot_id={p}"), 403),
        (Role::Pilot(other_pilot), format!("carehome_id={h}"), 403),
        // Allowed.
        (Role::Coordinator(h), format!("pilot_id={p}"), 200),
        (Role::Coordinator(h), format!("chapter_id={c}"), 200),
        (Role::Coordinator(sibling), String::new(), 200),
        (Role::Integrator(None), format!("chapter_id={c}"), 200),
        (Role::Admin, format!("carehome_id={h}"), 200),
    ];
    let mut wrong = Vec::new();
    for (who, q, status) in &cells {
        let r = s.get(&format!("/v1/stats?{q}"), &s.token(*who)).await;
        if r.status.as_u16() != *status {
            wrong.push(format!("{who:?} ?{q}: expected {status}, got {} {}", r.status, r.body));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // A foreign object looks exactly like an unknown one.
    let admin_f = s.token(Role::ChapterAdmin(f.chapter));
    let foreign = s.get(&format!("/v1/stats?carehome_id={h}"), &admin_f).await.expect(404);
    let ghost = s.get(&format!("/v1/stats?carehome_id={unknown}"), &admin_f).await.expect(404);
    assert_eq!(foreign.body, ghost.body);
    // The coordinator's own home by default; another home's coordinator sees nothing of it.
    let r = s.get(&format!("/v1/stats?pilot_id={p}"), &s.token(Role::Coordinator(h))).await.expect(200);
    assert_eq!(r.body, expected);
    let r = s.get("/v1/stats", &s.token(Role::Coordinator(sibling))).await.expect(200);
    assert_eq!(r.body, answer(zero(), &[]));
    // A foreign chapter's scope holds none of A's rides.
    let r = s.get("/v1/stats", &admin_f).await.expect(200);
    assert_eq!(r.body, answer(zero(), &[]));
    // Bad input: 400 naming the field.
    let admin = s.token(Role::ChapterAdmin(c));
    for (q, field) in [
        ("chapter_id=nope", "/chapter_id"),
        ("carehome_id=1", "/carehome_id"),
        ("from=monday", "/from"),
        ("from=2027-05-02T00:00:00Z&to=2027-05-01T00:00:00Z", "/to"),
        ("colour=red", "/colour"),
    ] {
        let r = s.get(&format!("/v1/stats?{q}"), &admin).await.expect(400);
        assert_eq!(r.body["errors"][0]["field"], field, "{q}: {}", r.body);
    }
    // `to` equal to `from` is an empty period (docs/gateway.md): nothing is in it.
    let r = s.get("/v1/stats?from=2027-05-02T00:00:00Z&to=2027-05-02T00:00:00Z", &admin).await.expect(200);
    assert_eq!(r.body, answer(zero(), &[]));
    s.call(reqwest::Method::GET, "/v1/stats", None, None).await.expect(401);
    assert_eq!(s.heads().await, heads, "reading stats writes nothing");
}
