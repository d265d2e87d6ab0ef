//! Reports, CSV exports and the reach report over REST, on the real system: every figure
//! of each report checked against a hand-built scenario; CSV exports parsed back in both
//! dialects (BOM, separator, decimal comma, quoting of a name holding `;`, `"` and a line
//! break, a formula-looking name neutralised), streamed (chunked, no length); reach lists
//! exactly the residents without a completed ride in the window; who may read them.

use e2e::{Reply, System, World};
use gateway::Role;
use serde_json::{Value, json};
use uuid::Uuid;

testkit::both_backends!(setup = e2e::System::start; reports_exports_and_reach_match_the_scenario, a_large_export_streams, only_admins_read_reports);

/// A name that needs quoting in both dialects (names may not hold line breaks).
const TRICKY: &str = "Jens; \"Fyr\", Hansen";
/// A cancellation note with a separator and quotes (notes, like names, refuse line
/// breaks: no exported field can hold one; the quoting of line breaks is unit-tested in
/// the gateway's `exports.rs`).
const NOTE: &str = "Storm; \"kuling\", fra vest";
/// A name a spreadsheet would run as a formula.
const FORMULA: &str = "=HYPERLINK(\"http://evil.example\",\"klik\")";

fn uuid(r: &Reply, field: &str) -> Uuid {
    r.body[field].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no {field} in {}", r.body))
}

/// The scenario of the chapter, built over HTTP.
struct Scenario {
    w: World,
    /// Second pilot (tricky name), third pilot (erased).
    p2: Uuid,
    p3: Uuid,
    /// Residents of the home: r2 (formula name, stories only), r3 (rode, then erased),
    /// r4 (moved out), r5 (rode before the window, then withdrew consent).
    r2: Uuid,
    r3: Uuid,
    r4: Uuid,
    r5: Uuid,
    /// A second home with one resident and a second trishaw with a maintenance history.
    home2: Uuid,
    r6: Uuid,
    bike2: Uuid,
    /// Rides: A completed (r0, r1), B cancelled, C no-show, D booked, E event completed
    /// (r1 checked in, r0 not), F completed (r3), G completed before the window (r5).
    rides: Vec<String>,
}

async fn admit(s: &System, home: Uuid, name: &str, scope: &[&str], given_at: &str) -> Uuid {
    let body = json!({"display_name": name, "consent": {"given_by": "resident", "given_at": given_at, "scope": scope}});
    let r =
        s.post(&format!("/v1/carehomes/{home}/residents"), &s.token(Role::Coordinator(home)), body).await.expect(201);
    uuid(&r, "resident_id")
}

async fn book(s: &System, w: &World, pilot: Uuid, start: &str, minutes: u32, riders: &[Uuid], kind: &str) -> String {
    let body = json!({"bike_id": w.bike, "pilot_id": pilot, "start": start, "duration_minutes": minutes,
        "resident_ids": riders, "kind": kind});
    // Booking learns of new pilots and residents a moment later: retry while it refuses them.
    testkit::eventually("booking to accept the ride", testkit::DEFAULT_TIMEOUT, || async {
        let r = s.post("/v1/rides", &s.token(Role::Pilot(pilot)), body.clone()).await;
        if r.status.as_u16() == 201 {
            return Ok(r.str("ride_id"));
        }
        assert!(
            r.status.as_u16() == 422 && ["not-qualified", "no-consent", "not-resident-here"].contains(&r.code()),
            "booking refused: {}",
            r.body
        );
        Err(r.body)
    })
    .await
}

async fn complete(s: &System, pilot: Uuid, ride: &str, ended_at: &str, km: f64) {
    let t = s.token(Role::Pilot(pilot));
    s.post(&format!("/v1/rides/{ride}/start"), &t, json!({})).await.expect(200);
    s.post(&format!("/v1/rides/{ride}/complete"), &t, json!({"ended_at": ended_at, "distance_km": km}))
        .await
        .expect(200);
}

async fn scenario(s: &System) -> Scenario {
    let w = s.world().await;
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    // The ride season and default settings.
    s.put(
        &format!("/v1/chapters/{}/settings", w.chapter),
        &admin,
        json!({"lead_time_minutes": 60, "default_turnaround_minutes": 15, "reminder_lead_minutes": [1440, 60],
            "ride_season": {"starts": "2026-10-01", "ends": "2027-10-01"}}),
    )
    .await
    .expect(200);
    let r = s
        .post("/v1/pilots", &admin, json!({"chapter_id": w.chapter, "display_name": "Jens\nHansen"}))
        .await
        .expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/display_name", "a name never holds a line break");
    let r = s.post("/v1/pilots", &admin, json!({"chapter_id": w.chapter, "display_name": TRICKY})).await.expect(201);
    let p2 = uuid(&r, "pilot_id");
    let q = |bike_type: &str, until: &str| json!({"bike_type": bike_type, "qualified_on": "2026-01-01", "valid_until": until});
    s.post(&format!("/v1/pilots/{p2}/qualifications"), &admin, q("trishaw", "2029-06-30")).await.expect(200);
    s.post(&format!("/v1/pilots/{p2}/qualifications"), &admin, q("wheelchair", "2028-12-01")).await.expect(200);
    let r =
        s.post("/v1/pilots", &admin, json!({"chapter_id": w.chapter, "display_name": "Glemt Pilot"})).await.expect(201);
    let p3 = uuid(&r, "pilot_id");
    s.post(&format!("/v1/pilots/{p3}/erasure"), &admin, json!({})).await.expect(200);

    let home = w.home;
    let r2 = admit(s, home, FORMULA, &["stories"], "2026-09-01T10:00:00Z").await;
    let r3 = admit(s, home, "Ruth Slettes", &["rides"], "2026-11-01T10:00:00Z").await;
    let r4 = admit(s, home, "Flyttet Frede", &["rides"], "2026-11-01T10:00:00Z").await;
    let r5 = admit(s, home, "Tove Trækker", &["rides"], "2026-11-01T10:00:00Z").await;
    let home2 = s.carehome(w.chapter).await;
    let r6 = admit(s, home2, "Anden Anna", &["rides"], "2027-01-01T10:00:00Z").await;
    let bike2 = s.bike(w.chapter, home2, 1).await;
    // Booking must know the new pilot and residents.
    s.settle(&w).await;
    let (p1, r0, r1) = (w.pilot, w.residents[0], w.residents[1]);
    let mut rides = Vec::new();
    // A: completed pleasure ride 10:00–10:55 local, r0 and r1, 7.5 km.
    let a = book(s, &w, p1, "2027-05-03T08:00:00Z", 60, &[r0, r1], "pleasure").await;
    complete(s, p1, &a, "2027-05-03T08:55:00Z", 7.5).await;
    rides.push(a);
    // B: cancelled for weather.
    let b = book(s, &w, p1, "2027-05-04T08:00:00Z", 60, &[r0], "pleasure").await;
    s.post(&format!("/v1/rides/{b}/cancel"), &s.token(Role::Pilot(p1)), json!({"reason": "weather", "note": NOTE}))
        .await
        .expect(200);
    rides.push(b);
    // C: no-show of the second pilot with r1.
    let c = book(s, &w, p2, "2027-05-05T08:00:00Z", 60, &[r1], "pleasure").await;
    s.post(&format!("/v1/rides/{c}/no-show"), &s.token(Role::Pilot(p2)), json!({})).await.expect(200);
    rides.push(c);
    // D: booked, still ahead.
    rides.push(book(s, &w, p2, "2027-05-06T08:00:00Z", 60, &[r0], "pleasure").await);
    // E: an event ride with r0 and r1 on the roster; only r1 checks in.
    let e = book(s, &w, p1, "2027-05-07T08:00:00Z", 120, &[r0, r1], "event").await;
    let t1 = s.token(Role::Pilot(p1));
    s.post(&format!("/v1/rides/{e}/start"), &t1, json!({})).await.expect(200);
    s.post(&format!("/v1/rides/{e}/roster/{r1}/check-in"), &t1, json!({})).await.expect(200);
    s.post(&format!("/v1/rides/{e}/complete"), &t1, json!({"ended_at": "2027-05-07T09:30:00Z", "distance_km": 3.25}))
        .await
        .expect(200);
    rides.push(e);
    // F: r3 rides, then is erased.
    let f = book(s, &w, p1, "2027-05-08T08:00:00Z", 30, &[r3], "pleasure").await;
    complete(s, p1, &f, "2027-05-08T08:30:00Z", 2.0).await;
    rides.push(f);
    let coord = s.token(Role::Coordinator(home));
    s.post(&format!("/v1/residents/{r3}/erasure"), &coord, json!({})).await.expect(200);
    // G: r5 rides early, then withdraws consent.
    let g = book(s, &w, p2, "2027-04-01T08:00:00Z", 30, &[r5], "pleasure").await;
    complete(s, p2, &g, "2027-04-01T08:30:00Z", 1.0).await;
    rides.push(g);
    s.delete(&format!("/v1/residents/{r5}/consent"), &coord).await.expect(200);
    s.post(&format!("/v1/residents/{r4}/move-out"), &coord, json!({})).await.expect(200);
    // The second trishaw's maintenance history (its home has no rides to cancel).
    let c2 = s.token(Role::Coordinator(home2));
    s.post(&format!("/v1/bikes/{bike2}/issues"), &c2, json!({"description": "squeaky bell", "grounding": false}))
        .await
        .expect(200);
    s.post(&format!("/v1/bikes/{bike2}/out-of-service"), &c2, json!({"reason": "annual service"})).await.expect(200);
    s.post(&format!("/v1/bikes/{bike2}/return-to-service"), &c2, json!({})).await.expect(200);
    Scenario { w, p2, p3, r2, r3, r4, r5, home2, r6, bike2, rides }
}

/// The item of a report whose `field` is `id`.
fn item<'a>(report: &'a Value, field: &str, id: impl ToString) -> &'a Value {
    let id = id.to_string();
    report["items"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i[field] == id.as_str()))
        .unwrap_or_else(|| panic!("no {field} {id} in {report}"))
}

fn counts(v: &Value) -> [u64; 4] {
    ["signed_up", "completed", "no_show", "cancelled"].map(|k| v[k].as_u64().unwrap_or(u64::MAX))
}

/// A tiny RFC 4180 reader: rows of cells, quotes and embedded separators and line breaks
/// honoured; the BOM is the caller's to strip.
fn parse_csv(text: &str, sep: char) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.is_empty() => quoted = true,
            (false, c) if c == sep => row.push(std::mem::take(&mut cell)),
            (false, '\r') => assert_eq!(chars.next(), Some('\n'), "a bare CR ends no line"),
            (false, '\n') => panic!("lines must end with CRLF"),
            (false, c) => cell.push(c),
        }
        if !quoted && c == '\r' {
            row.push(std::mem::take(&mut cell));
            rows.push(std::mem::take(&mut row));
        }
    }
    assert!(cell.is_empty() && row.is_empty(), "the file ends with a complete line");
    rows
}

/// A CSV download: status, headers and the text.
async fn download(s: &System, path: &str, token: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = s.http.get(format!("{}{path}", s.base)).bearer_auth(token).send().await.expect("answered");
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.text().await.expect("the whole body"))
}

/// Rows as maps from column name to cell.
fn records(rows: &[Vec<String>]) -> Vec<std::collections::HashMap<String, String>> {
    let header = &rows[0];
    rows[1..]
        .iter()
        .map(|r| {
            assert_eq!(r.len(), header.len(), "every row has every column: {r:?}");
            header.iter().cloned().zip(r.iter().cloned()).collect()
        })
        .collect()
}

async fn reports_exports_and_reach_match_the_scenario(s: System) {
    let sc = scenario(&s).await;
    let w = &sc.w;
    let (p1, r0, r1) = (w.pilot, w.residents[0], w.residents[1]);
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let q = format!("chapter_id={}&from=2027-03-01&to=2027-06-01", w.chapter);
    // Lists (and so reports) may lag the last writes by a moment: wait for the last ones.
    s.eventually("the reports to reflect the scenario", || async {
        let p = s.get(&format!("/v1/reports/pilot-participation?{q}"), &admin).await;
        let c = s.get(&format!("/v1/reports/consent-census?chapter_id={}", w.chapter), &admin).await;
        let settled = |v: &Value, f: &str, id: Uuid| {
            v["items"].as_array().is_some_and(|a| a.iter().any(|i| i[f] == id.to_string().as_str() && i["erased"] == 1))
        };
        p.status.as_u16() == 200
            && counts(item(&p.body, "pilot_id", sc.p2)) == [3, 1, 1, 0]
            && counts(item(&p.body, "pilot_id", p1)) == [3, 3, 0, 1]
            && item(&c.body, "carehome_id", w.home)["withdrawn"] == 1
            && settled(&c.body, "carehome_id", w.home)
    })
    .await;

    // Pilot participation: signed up (not cancelled), completed, no-show, cancelled.
    let rep = s.get(&format!("/v1/reports/pilot-participation?{q}"), &admin).await.expect(200);
    assert_eq!(rep.str("from"), "2027-02-28T23:00:00Z", "a date is local midnight in the chapter's zone");
    assert_eq!(rep.str("to"), "2027-05-31T22:00:00Z");
    assert_eq!(rep.body["items"].as_array().unwrap().len(), 3);
    let one = item(&rep.body, "pilot_id", p1);
    assert_eq!(counts(one), [3, 3, 0, 1], "A, E, F completed; B cancelled: {one}");
    assert_eq!(one["display_name"], "Pilot");
    assert_eq!((one["ride_minutes"].as_i64(), one["distance_km"].as_f64()), (Some(55 + 90 + 30), Some(12.75)));
    let two = item(&rep.body, "pilot_id", sc.p2);
    assert_eq!(counts(two), [3, 1, 1, 0], "C no-show, D booked, G completed: {two}");
    let months: Vec<(String, [u64; 4])> = two["by_month"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["month"].as_str().unwrap().to_owned(), counts(m)))
        .collect();
    assert_eq!(months, [("2027-04".to_owned(), [1, 1, 0, 0]), ("2027-05".to_owned(), [2, 0, 1, 0])], "per month");
    assert_eq!(two["display_name"], TRICKY);
    let three = item(&rep.body, "pilot_id", sc.p3);
    assert_eq!((three["erased"].as_bool(), three["status"].as_str()), (Some(true), Some("erased")));
    assert!(three.get("display_name").is_none(), "an erased pilot shows no name: {three}");
    assert_eq!(counts(three), [0, 0, 0, 0]);
    // A narrower period: May only leaves G out.
    let may = s
        .get(&format!("/v1/reports/pilot-participation?chapter_id={}&from=2027-05-01&to=2027-06-01", w.chapter), &admin)
        .await
        .expect(200);
    assert_eq!(counts(item(&may.body, "pilot_id", sc.p2)), [2, 0, 1, 0]);

    // Rider participation: the counting rule (E carried r1 only: r0 did not check in).
    let rep = s.get(&format!("/v1/reports/rider-participation?{q}"), &admin).await.expect(200);
    assert_eq!(rep.body["items"].as_array().unwrap().len(), 7, "every resident of both homes");
    assert_eq!(counts(item(&rep.body, "resident_id", r0)), [3, 1, 0, 1], "A carried; B cancelled; D, E signed up");
    assert_eq!(counts(item(&rep.body, "resident_id", r1)), [3, 2, 1, 0], "A, E carried; C no-show");
    let r5 = item(&rep.body, "resident_id", sc.r5);
    assert_eq!(
        (r5["by_month"][0]["month"].as_str(), r5["by_month"].as_array().map(Vec::len)),
        (Some("2027-04"), Some(1))
    );
    assert_eq!(counts(item(&rep.body, "resident_id", sc.r2)), [0, 0, 0, 0]);
    assert_eq!(item(&rep.body, "resident_id", sc.r2)["display_name"], FORMULA);
    let erased = item(&rep.body, "resident_id", sc.r3);
    assert_eq!(counts(erased), [1, 1, 0, 0], "an erased resident's rides still count");
    assert_eq!((erased["erased"].as_bool(), erased.get("display_name")), (Some(true), None));
    assert_eq!(item(&rep.body, "resident_id", sc.r4)["status"], "moved_out");
    assert_eq!(counts(item(&rep.body, "resident_id", sc.r5)), [1, 1, 0, 0]);
    assert_eq!(item(&rep.body, "resident_id", sc.r6)["carehome_id"], sc.home2.to_string());

    // Volunteer roster: expiry judged on a given day.
    let rep = s
        .get(&format!("/v1/reports/volunteer-roster?chapter_id={}&on=2028-12-15", w.chapter), &admin)
        .await
        .expect(200);
    assert_eq!(rep.str("on"), "2028-12-15");
    let quals = |p: Uuid| -> Vec<(String, String, i64)> {
        item(&rep.body, "pilot_id", p)["qualifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| {
                (
                    q["bike_type"].as_str().unwrap().into(),
                    q["state"].as_str().unwrap().into(),
                    q["days_left"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(quals(p1), [("trishaw".into(), "expiring".into(), 16)]);
    let mut q2 = quals(sc.p2);
    q2.sort();
    assert_eq!(q2, [("trishaw".into(), "valid".into(), 197), ("wheelchair".into(), "expired".into(), -14)]);
    assert!(quals(sc.p3).is_empty());
    let earlier = s
        .get(&format!("/v1/reports/volunteer-roster?chapter_id={}&on=2028-11-30", w.chapter), &admin)
        .await
        .expect(200);
    let q1 = &item(&earlier.body, "pilot_id", p1)["qualifications"][0];
    assert_eq!(
        (q1["state"].as_str(), q1["days_left"].as_i64()),
        (Some("valid"), Some(31)),
        "31 days ahead is not expiring yet"
    );

    // Consent census per home for the season 2026-10-01 – 2027-10-01.
    let rep = s.get(&format!("/v1/reports/consent-census?chapter_id={}", w.chapter), &admin).await.expect(200);
    assert_eq!(rep.body["season"], json!({"starts": "2026-10-01", "ends": "2027-10-01"}));
    let census = |h: Uuid| {
        let v = item(&rep.body, "carehome_id", h);
        ["residents", "consent_rides", "consent_stories", "withdrawn", "none", "given_in_season", "moved_out", "erased"]
            .map(|k| v[k].as_u64().unwrap_or(u64::MAX))
    };
    // Home 1: r0, r1 (rides+stories, in season), r2 (stories only, before it), r5 (withdrawn); r4 moved out; r3 erased.
    assert_eq!(census(w.home), [4, 2, 3, 1, 2, 2, 1, 1]);
    assert_eq!(census(sc.home2), [1, 1, 0, 0, 0, 1, 0, 0]);

    // Maintenance history per trishaw, in order; a period filters the entries.
    let rep = s.get(&format!("/v1/reports/maintenance?chapter_id={}", w.chapter), &admin).await.expect(200);
    let kinds = |b: Uuid, r: &Value| -> Vec<String> {
        item(r, "bike_id", b)["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().into())
            .collect()
    };
    assert_eq!(kinds(w.bike, &rep.body), ["commissioned"]);
    assert_eq!(
        kinds(sc.bike2, &rep.body),
        ["commissioned", "issue_reported", "taken_out_of_service", "returned_to_service"]
    );
    assert_eq!(item(&rep.body, "bike_id", sc.bike2)["entries"][1]["description"], "squeaky bell");
    let later =
        s.get(&format!("/v1/reports/maintenance?chapter_id={}&from=2030-01-01", w.chapter), &admin).await.expect(200);
    assert!(kinds(sc.bike2, &later.body).is_empty());

    // CSV, RFC 4180: no BOM, commas, decimal point, CRLF; parsed back exactly.
    let (status, h, text) = download(&s, &format!("/v1/exports/rides.csv?{q}"), &admin).await;
    assert_eq!(status, 200, "{text}");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/csv"));
    let cd = h["content-disposition"].to_str().unwrap();
    assert!(cd.starts_with("attachment; filename=\"rides-") && cd.ends_with(".csv\""), "{cd}");
    assert!(!text.starts_with('\u{feff}'), "no BOM by default");
    let rows = records(&parse_csv(&text, ','));
    let ids: Vec<&str> = rows.iter().map(|r| r["ride_id"].as_str()).collect();
    assert_eq!(ids.len(), 7);
    assert_eq!(ids[0], sc.rides[6], "in order of start: G first");
    let a = rows.iter().find(|r| r["ride_id"] == sc.rides[0]).unwrap();
    assert_eq!((a["status"].as_str(), a["distance_km"].as_str(), a["rides"].as_str()), ("completed", "7.5", "2"));
    assert_eq!((a["ride_minutes"].as_str(), a["pilot_name"].as_str()), ("55", "Pilot"));
    assert_eq!(a["rider_names"], "Ærø Østergård | Ærø Østergård");
    let e = rows.iter().find(|r| r["ride_id"] == sc.rides[4]).unwrap();
    assert_eq!((e["riders"].as_str(), e["rides"].as_str(), e["distance_km"].as_str()), ("2", "1", "3.25"));
    let c = rows.iter().find(|r| r["ride_id"] == sc.rides[2]).unwrap();
    assert_eq!((c["status"].as_str(), c["pilot_name"].as_str()), ("no_show", TRICKY), "quoting keeps ; \" and ,");
    let f = rows.iter().find(|r| r["ride_id"] == sc.rides[5]).unwrap();
    assert_eq!(
        (f["resident_ids"].as_str(), f["rider_names"].as_str()),
        (sc.r3.to_string().as_str(), ""),
        "erased: no name"
    );
    let b = rows.iter().find(|r| r["ride_id"] == sc.rides[1]).unwrap();
    assert_eq!((b["cancel_reason"].as_str(), b["cancel_note"].as_str()), ("weather", NOTE));

    // excel-da: BOM, semicolons, decimal comma, CRLF.
    let (status, _, text) = download(&s, &format!("/v1/exports/rides.csv?{q}&dialect=excel-da"), &admin).await;
    assert_eq!(status, 200);
    let body = text.strip_prefix('\u{feff}').expect("a BOM first");
    assert!(body.starts_with("ride_id;status;kind;"));
    let rows = records(&parse_csv(body, ';'));
    let e = rows.iter().find(|r| r["ride_id"] == sc.rides[4]).unwrap();
    assert_eq!(e["distance_km"], "3,25");
    let c = rows.iter().find(|r| r["ride_id"] == sc.rides[2]).unwrap();
    assert_eq!(c["pilot_name"], TRICKY);
    let b = rows.iter().find(|r| r["ride_id"] == sc.rides[1]).unwrap();
    assert_eq!(b["cancel_note"], NOTE);

    // Pilots: the tricky name survives both dialects; counts as in the report.
    for (dialect, sep, km) in [("rfc4180", ',', "12.75"), ("excel-da", ';', "12,75")] {
        let (status, _, text) = download(&s, &format!("/v1/exports/pilots.csv?{q}&dialect={dialect}"), &admin).await;
        assert_eq!(status, 200);
        let rows = records(&parse_csv(text.trim_start_matches('\u{feff}'), sep));
        assert_eq!(rows.len(), 3);
        let two = rows.iter().find(|r| r["pilot_id"] == sc.p2.to_string()).unwrap();
        assert_eq!(two["display_name"], TRICKY);
        assert_eq!([&two["signed_up"], &two["completed"], &two["no_show"], &two["cancelled"]], ["3", "1", "1", "0"]);
        let one = rows.iter().find(|r| r["pilot_id"] == p1.to_string()).unwrap();
        assert_eq!((one["distance_km"].as_str(), one["ride_minutes"].as_str()), (km, "175"));
        assert_eq!(one["qualifications"], "trishaw until 2028-12-31");
        let three = rows.iter().find(|r| r["pilot_id"] == sc.p3.to_string()).unwrap();
        assert_eq!((three["display_name"].as_str(), three["status"].as_str()), ("", "erased"));
    }

    // Residents: the formula-looking name is neutralised with an apostrophe.
    let (status, _, text) = download(&s, &format!("/v1/exports/residents.csv?{q}&dialect=excel-da"), &admin).await;
    assert_eq!(status, 200);
    let raw = text.strip_prefix('\u{feff}').expect("a BOM first");
    assert!(!raw.contains(";=HYPERLINK") && !raw.contains(";\"=HYPERLINK"), "no cell starts with =");
    let rows = records(&parse_csv(raw, ';'));
    assert_eq!(rows.len(), 7);
    let two = rows.iter().find(|r| r["resident_id"] == sc.r2.to_string()).unwrap();
    assert_eq!(two["display_name"], format!("'{FORMULA}"));
    assert_eq!(two["consent_scope"], "stories");
    let one = rows.iter().find(|r| r["resident_id"] == r1.to_string()).unwrap();
    assert_eq!([&one["signed_up"], &one["completed"], &one["no_show"]], ["3", "2", "1"]);
    assert!(!raw.contains("loves the harbour"), "care notes are never exported");
    let gone = rows.iter().find(|r| r["resident_id"] == sc.r3.to_string()).unwrap();
    assert_eq!((gone["display_name"].as_str(), gone["status"].as_str()), ("", "erased"));

    // Reach: window [2027-04-20, 2027-05-20): r0 rode A, r1 rode A and E; r2 and r5 none.
    let coord = s.token(Role::Coordinator(w.home));
    let reach = |days: u32, until: &str| format!("/v1/reach?carehome_id={}&days={days}&until={until}", w.home);
    let r = s.get(&reach(30, "2027-05-20T00:00:00Z"), &coord).await.expect(200);
    let mut without: Vec<String> =
        r.body["without_ride"].as_array().unwrap().iter().map(|x| x["resident_id"].as_str().unwrap().into()).collect();
    without.sort();
    let mut expected = vec![sc.r2.to_string(), sc.r5.to_string()];
    expected.sort();
    assert_eq!(without, expected, "exactly the residents without a completed ride (moved-out and erased left out)");
    let listed: Vec<(String, u64)> = r.body["residents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["resident_id"].as_str().unwrap().into(), x["rides"].as_u64().unwrap()))
        .collect();
    assert_eq!(listed.len(), 4);
    assert!(listed.contains(&(r0.to_string(), 1)) && listed.contains(&(r1.to_string(), 2)), "{listed:?}");
    assert_eq!(
        r.body["histogram"],
        json!([{"rides": 0, "residents": 2}, {"rides": 1, "residents": 1}, {"rides": 2, "residents": 1}])
    );
    assert_eq!(
        r.body["summary"],
        json!({"residents": 4, "without_ride": 2, "rides": 3, "min": 0, "max": 2, "mean": 0.75, "median": 0.5})
    );
    let r1_row = r.body["residents"].as_array().unwrap().iter().find(|x| x["resident_id"] == r1.to_string()).unwrap();
    assert_eq!(
        (r1_row["display_name"].as_str(), r1_row["last_ride_at"].as_str()),
        (Some("Ærø Østergård"), Some("2027-05-07T08:00:00Z"))
    );
    // An earlier window: only r5 rode (G); the others did not.
    let r = s.get(&reach(30, "2027-04-15T00:00:00Z"), &coord).await.expect(200);
    let mut without: Vec<String> =
        r.body["without_ride"].as_array().unwrap().iter().map(|x| x["resident_id"].as_str().unwrap().into()).collect();
    without.sort();
    let mut expected = vec![r0.to_string(), r1.to_string(), sc.r2.to_string()];
    expected.sort();
    assert_eq!(without, expected);
    assert_eq!(r.body["summary"]["rides"], 1);
    s.get(&reach(0, "2027-04-15T00:00:00Z"), &coord).await.expect(400);
}

async fn a_large_export_streams(s: System) {
    let w = s.world().await;
    let pilot = s.token(Role::Pilot(w.pilot));
    // More rides than one page of the gateway's walk through booking's list (200), so the
    // export writes several pages, each as it arrives.
    let n = 250;
    let first = chrono::NaiveDate::from_ymd_opt(2027, 5, 3).unwrap();
    for i in 0..n {
        let day = first + chrono::Duration::days(i64::from(i / 6));
        let hour = 8 + i % 6;
        let body = json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": format!("{day}T{hour:02}:00:00Z"),
            "duration_minutes": 30, "resident_ids": [w.residents[(i % 2) as usize]]});
        s.post("/v1/rides", &pilot, body).await.expect(201);
    }
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let path = format!("/v1/exports/rides.csv?chapter_id={}", w.chapter);
    // Lists may lag the last writes by a moment.
    s.eventually("the export to list every ride", || async {
        download(&s, &path, &admin).await.2.matches("\r\n").count() == 1 + n as usize
    })
    .await;
    let r = s
        .http
        .get(format!("{}/v1/exports/rides.csv?chapter_id={}", s.base, w.chapter))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers().get("transfer-encoding").and_then(|v| v.to_str().ok()), Some("chunked"));
    assert!(r.headers().get("content-length").is_none(), "a streamed body has no length up front");
    let text = r.text().await.expect("body");
    let rows = parse_csv(&text, ',');
    assert_eq!(rows.len(), 1 + n as usize);
    let ids: std::collections::BTreeSet<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids.len(), n as usize, "every ride once across the pages");
    let starts: Vec<&str> = rows[1..].iter().map(|r| r[3].as_str()).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "in order of start across pages");
}

async fn only_admins_read_reports(s: System) {
    let w = s.world().await;
    let foreign = s.chapter().await;
    let sibling = s.carehome(w.chapter).await;
    let before = s.heads().await;
    let paths = [
        "/v1/reports/pilot-participation",
        "/v1/reports/rider-participation",
        "/v1/reports/volunteer-roster",
        "/v1/reports/consent-census",
        "/v1/reports/maintenance",
        "/v1/exports/rides.csv",
        "/v1/exports/pilots.csv",
        "/v1/exports/residents.csv",
    ];
    for path in paths {
        let at = |c: Uuid| format!("{path}?chapter_id={c}");
        for (role, status) in [
            (Role::Admin, 200),
            (Role::ChapterAdmin(w.chapter), 200),
            (Role::Coordinator(w.home), 403),
            (Role::Pilot(w.pilot), 403),
            (Role::Integrator(Some(w.chapter)), 403),
            (Role::ChapterAdmin(foreign), 404),
        ] {
            let r = s.get(&at(w.chapter), &s.token(role)).await;
            assert_eq!(r.status.as_u16(), status, "{path} as {role:?}: {}", r.body);
        }
        let unknown = s.get(&at(Uuid::now_v7()), &s.token(Role::ChapterAdmin(foreign))).await.expect(404);
        let foreign_reply = s.get(&at(w.chapter), &s.token(Role::ChapterAdmin(foreign))).await.expect(404);
        assert_eq!(unknown.body, foreign_reply.body, "a foreign chapter looks unknown");
        let admin = s.token(Role::ChapterAdmin(w.chapter));
        let missing = s.get(path, &admin).await.expect(400);
        assert_eq!(missing.body["errors"][0]["field"], "/chapter_id");
        if !path.ends_with("roster") {
            let bad = s.get(&format!("{}&from=yesterday", at(w.chapter)), &admin).await.expect(400);
            assert_eq!(bad.body["errors"][0]["field"], "/from");
        }
        let unknown_param = s.get(&format!("{}&colour=red", at(w.chapter)), &admin).await.expect(400);
        assert_eq!(unknown_param.code(), "validation");
    }
    let admin = s.token(Role::ChapterAdmin(w.chapter));
    let r = s.get(&format!("/v1/exports/rides.csv?chapter_id={}&dialect=excel", w.chapter), &admin).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/dialect");
    let r = s.get(&format!("/v1/reports/volunteer-roster?chapter_id={}&on=soon", w.chapter), &admin).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/on");
    let r = s
        .get(&format!("/v1/reports/pilot-participation?chapter_id={}&from=2027-06-01&to=2027-05-01", w.chapter), &admin)
        .await
        .expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/to");

    // Reach: the home's coordinator and the chapter's admins; others of the chapter 403.
    let reach = format!("/v1/reach?carehome_id={}", w.home);
    for (role, status) in [
        (Role::Admin, 200),
        (Role::ChapterAdmin(w.chapter), 200),
        (Role::Coordinator(w.home), 200),
        (Role::Coordinator(sibling), 403),
        (Role::Pilot(w.pilot), 403),
        (Role::Integrator(Some(w.chapter)), 403),
        (Role::ChapterAdmin(foreign), 404),
    ] {
        let r = s.get(&reach, &s.token(role)).await;
        assert_eq!(r.status.as_u16(), status, "reach as {role:?}: {}", r.body);
    }
    let r = s.get(&reach, &s.token(Role::Coordinator(w.home))).await.expect(200);
    assert_eq!(r.body["days"], 30);
    assert_eq!(r.body["summary"]["without_ride"], 2, "nobody has ridden yet");
    s.get(&format!("/v1/reach?carehome_id={}", Uuid::now_v7()), &s.admin()).await.expect(404);
    let r = s.get(&format!("{reach}&days=abc"), &s.admin()).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/days");
    let r = s.get(&format!("{reach}&days=4000"), &s.admin()).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/days");
    let r = s.get("/v1/reach", &s.admin()).await.expect(400);
    assert_eq!(r.body["errors"][0]["field"], "/carehome_id");
    assert_eq!(s.heads().await, before, "reading reports writes nothing");
}
