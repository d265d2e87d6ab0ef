//! Reach across the care homes of a chapter (`GET /v1/reach?chapter_id=`, api.md →
//! *Scheduling*; issue 21, part 5) over REST, on the real system: three homes of one
//! chapter with residents and rides in different months and days, each home's figures
//! asserted exactly (rides per resident per month, shares without a ride in the last 30,
//! 60 and 90 days, a home without residents at zero), the same count as the per-home reach,
//! no names nor resident ids in the answer; who may read it and the refusals of bad input.

use e2e::{Reply, System, World};
use gateway::Role;
use serde_json::{Value, json};
use uuid::Uuid;

testkit::both_backends!(setup = e2e::System::start; reach_across_homes_counts_each_home_exactly, reach_across_homes_is_the_chapter_admins_and_refuses_bad_input);

/// Where every window of the scenario ends: the 30, 60 and 90 days start on 16 May,
/// 16 April and 17 March 2027 (00:00 UTC).
const UNTIL: &str = "2027-06-15T00:00:00Z";

fn uuid(r: &Reply, field: &str) -> Uuid {
    r.body[field].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no {field} in {}", r.body))
}

async fn admit(s: &System, home: Uuid, name: &str) -> Uuid {
    let body = json!({"display_name": name,
        "consent": {"given_by": "resident", "given_at": "2026-11-01T10:00:00Z", "scope": ["rides"]}});
    let r =
        s.post(&format!("/v1/carehomes/{home}/residents"), &s.token(Role::Coordinator(home)), body).await.expect(201);
    uuid(&r, "resident_id")
}

/// Books a ride as the pilot, retrying while booking has not yet heard of what it names.
async fn book(s: &System, pilot: Uuid, bike: Uuid, start: &str, riders: &[Uuid]) -> String {
    let body = json!({"bike_id": bike, "pilot_id": pilot, "start": start, "duration_minutes": 30,
        "resident_ids": riders});
    testkit::eventually("booking to accept the ride", testkit::DEFAULT_TIMEOUT, || async {
        let r = s.post("/v1/rides", &s.token(Role::Pilot(pilot)), body.clone()).await;
        if r.status.as_u16() == 201 {
            return Ok(r.str("ride_id"));
        }
        assert!(
            matches!(r.status.as_u16(), 404 | 422),
            "booking refused {start} with {riders:?}: {} {}",
            r.status,
            r.body
        );
        Err(r.body)
    })
    .await
}

/// Books, starts and completes a ride of 30 minutes.
async fn ride(s: &System, pilot: Uuid, bike: Uuid, start: &str, riders: &[Uuid]) -> String {
    let id = book(s, pilot, bike, start, riders).await;
    let t = s.token(Role::Pilot(pilot));
    s.post(&format!("/v1/rides/{id}/start"), &t, json!({})).await.expect(200);
    let end = chrono::DateTime::parse_from_rfc3339(start).unwrap() + chrono::Duration::minutes(30);
    s.post(&format!("/v1/rides/{id}/complete"), &t, json!({"ended_at": end.to_rfc3339(), "distance_km": 2.0}))
        .await
        .expect(200);
    id
}

/// `[month, value]` for every month from July 2026 to June 2027, zeros but the given ones.
fn twelve_months(values: &[(&str, f64)]) -> Value {
    let months = [
        "2026-07", "2026-08", "2026-09", "2026-10", "2026-11", "2026-12", "2027-01", "2027-02", "2027-03", "2027-04",
        "2027-05", "2027-06",
    ];
    months
        .iter()
        .map(|m| {
            let v = values.iter().find(|(k, _)| k == m).map_or(0.0, |(_, v)| *v);
            json!({"month": m, "value": v})
        })
        .collect()
}

async fn reach_across_homes_counts_each_home_exactly(s: System) {
    let w: World = s.world().await;
    let (pilot, r0, r1) = (w.pilot, w.residents[0], w.residents[1]);
    // Home A (the world's): r0, r1, r2, r3. Home B: r4, r5, r7 living, r6 moves out after
    // riding. Home C: nobody. Another chapter's home stays out of the answer.
    let (r2, r3) = (admit(&s, w.home, "Anna A").await, admit(&s, w.home, "Bent A").await);
    let home_b = s.carehome(w.chapter).await;
    let bike_b = s.bike(w.chapter, home_b, 2).await;
    let (r4, r5, r6, r7) = (
        admit(&s, home_b, "Carl B").await,
        admit(&s, home_b, "Dorte B").await,
        admit(&s, home_b, "Erik B").await,
        admit(&s, home_b, "Frida B").await,
    );
    let home_c = s.carehome(w.chapter).await;
    let other = s.chapter().await;
    s.carehome(other).await;
    s.settle(&w).await;

    // Home A: June r0; May r1; April r1 and r3 together; March r2 (before the 90 days);
    // a cancelled ride of r2 in June counts for nothing.
    ride(&s, pilot, w.bike, "2027-06-01T08:00:00Z", &[r0]).await;
    ride(&s, pilot, w.bike, "2027-05-03T08:00:00Z", &[r1]).await;
    ride(&s, pilot, w.bike, "2027-04-01T08:00:00Z", &[r1, r3]).await;
    ride(&s, pilot, w.bike, "2027-03-10T09:00:00Z", &[r2]).await;
    let cancelled = book(&s, pilot, w.bike, "2027-06-05T08:00:00Z", &[r2]).await;
    s.post(&format!("/v1/rides/{cancelled}/cancel"), &s.token(Role::Pilot(pilot)), json!({"reason": "rider"}))
        .await
        .expect(200);
    // A completed ride after `until` is outside every window.
    ride(&s, pilot, w.bike, "2027-06-20T08:00:00Z", &[r2]).await;
    // Home B: June r4 with r6 (who then moves out: only r4 counts); April r4; a no-show of
    // r5 in May counts for nothing.
    ride(&s, pilot, bike_b, "2027-06-10T08:00:00Z", &[r4, r6]).await;
    ride(&s, pilot, bike_b, "2027-04-20T08:00:00Z", &[r4]).await;
    let no_show = book(&s, pilot, bike_b, "2027-05-20T08:00:00Z", &[r5]).await;
    s.post(&format!("/v1/rides/{no_show}/no-show"), &s.token(Role::Pilot(pilot)), json!({})).await.expect(200);
    s.post(&format!("/v1/residents/{r6}/move-out"), &s.token(Role::Coordinator(home_b)), json!({})).await.expect(200);

    let mut homes = [w.home, home_b, home_c];
    homes.sort();
    let home = |id: Uuid, residents: u32, months: Value, d: [f64; 3]| {
        json!({"carehome_id": id, "residents": residents, "rides_per_resident_by_month": months,
            "share_without_ride": {"d30": d[0], "d60": d[1], "d90": d[2]}})
    };
    let expected: Vec<Value> = homes
        .iter()
        .map(|h| match *h {
            // 4 residents. Months: March r2, April r1 + r3, May r1, June r0. Without a ride
            // since 16 May: r1, r2, r3; since 16 April: r2, r3; since 17 March: r2.
            h if h == w.home => home(
                h,
                4,
                twelve_months(&[("2027-03", 0.25), ("2027-04", 0.5), ("2027-05", 0.25), ("2027-06", 0.25)]),
                [0.75, 0.5, 0.25],
            ),
            // 3 living there (r6 moved out). April r4, June r4: 1/3 each. r5 and r7 never rode.
            h if h == home_b => {
                home(h, 3, twelve_months(&[("2027-04", 0.33), ("2027-06", 0.33)]), [0.6667, 0.6667, 0.6667])
            }
            // Nobody lives there: zeros, not null.
            h => home(h, 0, twelve_months(&[]), [0.0, 0.0, 0.0]),
        })
        .collect();
    let expected = json!({ "carehomes": expected });

    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let path = format!("/v1/reach?chapter_id={}&until={UNTIL}", w.chapter);
    // The rides read model may lag the last writes by a moment.
    s.eventually("reach across homes to reflect the rides", || async {
        let r = s.get(&path, &admin).await;
        r.status.as_u16() == 200 && r.body == expected
    })
    .await;
    let r = s.get(&path, &admin).await.expect(200);
    assert_eq!(r.body, expected, "every home's figures, exactly");

    // No names and no resident ids: only care home ids and figures.
    let text = r.body.to_string();
    for (id, name) in
        [(r0, ""), (r1, ""), (r2, "Anna"), (r3, "Bent"), (r4, "Carl"), (r5, "Dorte"), (r6, "Erik"), (r7, "Frida")]
    {
        assert!(!text.contains(&id.to_string()), "a resident id in the answer: {text}");
        assert!(name.is_empty() || !text.contains(name), "a name in the answer: {text}");
    }
    assert!(!text.contains("Ærø"), "a name in the answer: {text}");

    // Fewer months: the three ending with June.
    let r = s.get(&format!("{path}&months=3"), &admin).await.expect(200);
    let a = r.body["carehomes"].as_array().unwrap().iter().find(|h| h["carehome_id"] == w.home.to_string()).unwrap();
    assert_eq!(
        a["rides_per_resident_by_month"],
        json!([{"month": "2027-04", "value": 0.5}, {"month": "2027-05", "value": 0.25}, {"month": "2027-06", "value": 0.25}])
    );
    assert_eq!(
        a["share_without_ride"],
        json!({"d30": 0.75, "d60": 0.5, "d90": 0.25}),
        "the days do not depend on months"
    );

    // One count: the per-home reach over the same 30, 60 and 90 days finds the same residents
    // without a ride.
    for (h, residents) in [(w.home, 4.0), (home_b, 3.0)] {
        let across =
            r.body["carehomes"].as_array().unwrap().iter().find(|x| x["carehome_id"] == h.to_string()).unwrap();
        for days in [30, 60, 90] {
            let one = s.get(&format!("/v1/reach?carehome_id={h}&days={days}&until={UNTIL}"), &admin).await.expect(200);
            let without = one.body["summary"]["without_ride"].as_f64().unwrap();
            let share = across["share_without_ride"][format!("d{days}")].as_f64().unwrap();
            assert_eq!(((without / residents) * 10_000.0).round() / 10_000.0, share, "home {h}, {days} days");
        }
    }

    // Later, the ride after `until` counts in June: r2 rode on 20 June.
    let r = s
        .get(&format!("/v1/reach?chapter_id={}&until=2027-06-30T00:00:00Z&months=1", w.chapter), &admin)
        .await
        .expect(200);
    let a = r.body["carehomes"].as_array().unwrap().iter().find(|h| h["carehome_id"] == w.home.to_string()).unwrap();
    assert_eq!(a["rides_per_resident_by_month"], json!([{"month": "2027-06", "value": 0.5}]));
}

async fn reach_across_homes_is_the_chapter_admins_and_refuses_bad_input(s: System) {
    let w = s.world().await;
    let foreign = s.chapter().await;
    let before = s.heads().await;
    let path = format!("/v1/reach?chapter_id={}", w.chapter);
    for (role, status) in [
        (Role::Admin, 200),
        (Role::ChapterAdmin(w.chapter), 200),
        (Role::Coordinator(w.home), 403),
        (Role::Pilot(w.pilot), 403),
        (Role::Integrator(Some(w.chapter)), 403),
        (Role::Integrator(None), 403),
        (Role::ChapterAdmin(foreign), 404),
    ] {
        let r = s.get(&path, &s.token(role)).await;
        assert_eq!(r.status.as_u16(), status, "reach across homes as {role:?}: {}", r.body);
    }
    let ca = s.token(Role::ChapterAdmin(w.chapter));
    let r = s.get(&path, &ca).await.expect(200);
    let homes = r.body["carehomes"].as_array().unwrap();
    assert_eq!(homes.len(), 1);
    assert_eq!(homes[0]["carehome_id"], w.home.to_string());
    assert_eq!(homes[0]["residents"], 2);
    assert_eq!(homes[0]["rides_per_resident_by_month"].as_array().map(Vec::len), Some(12), "12 months by default");
    assert_eq!(homes[0]["share_without_ride"], json!({"d30": 1.0, "d60": 1.0, "d90": 1.0}), "nobody has ridden yet");
    // A foreign chapter looks unknown.
    let unknown =
        s.get(&format!("/v1/reach?chapter_id={}", Uuid::now_v7()), &s.token(Role::ChapterAdmin(foreign))).await;
    let foreign_reply = s.get(&path, &s.token(Role::ChapterAdmin(foreign))).await;
    assert_eq!((unknown.status.as_u16(), &unknown.body), (404, &foreign_reply.body));

    // Bad input: 400 problem naming the field.
    let both = format!("/v1/reach?chapter_id={}&carehome_id={}", w.chapter, w.home);
    for (query, field) in [
        (both.as_str(), "/chapter_id"),
        ("/v1/reach", "/carehome_id"),
        ("/v1/reach?chapter_id=nope", "/chapter_id"),
        (&format!("{path}&days=30") as &str, "/days"),
        (&format!("/v1/reach?carehome_id={}&months=3", w.home) as &str, "/months"),
        (&format!("{path}&months=0") as &str, "/months"),
        (&format!("{path}&months=121") as &str, "/months"),
        (&format!("{path}&months=abc") as &str, "/months"),
        (&format!("{path}&until=yesterday") as &str, "/until"),
    ] {
        let r = s.get(query, &ca).await;
        assert_eq!(r.status.as_u16(), 400, "{query}: {}", r.body);
        assert_eq!(r.code(), "validation", "{query}: {}", r.body);
        assert_eq!(r.body["errors"][0]["field"], field, "{query}: {}", r.body);
        assert!(
            r.headers.get("content-type").and_then(|v| v.to_str().ok()) == Some("application/problem+json"),
            "{query}: a problem"
        );
    }
    let r = s.get(&format!("{path}&colour=red"), &ca).await.expect(400);
    assert_eq!(r.code(), "validation");
    assert_eq!(s.heads().await, before, "reading reach writes nothing");
}
