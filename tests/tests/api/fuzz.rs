//! A fuzzer for request bodies, on the real system over HTTP: proptest generates arbitrary
//! JSON (any type, huge and odd numbers, unicode, deep nesting), near-valid bodies (a valid
//! body with one to three members replaced by arbitrary values, removed, wrapped or
//! joined by unknown members) and raw bytes (truncated or nested JSON, random bytes), and
//! sends them to every route that takes a body. Whatever arrives, the answer is never a
//! 5xx; every 4xx is `application/problem+json` with its code and status; and a refused
//! request writes nothing (the three event logs' heads are unchanged). A body that happens
//! to be valid may succeed (2xx), which is fine.
//!
//! Deterministic: a fixed seed (ChaCha) and a fixed number of requests per backend,
//! `SAMSKAB_FUZZ_CASES` (200 by default); `SAMSKAB_FUZZ_SEED` picks another seed. The long
//! form (`cargo test`: nextest stops a test after 5 minutes), with `SAMSKAB_TEST_PG_URL` set
//! for the PostgreSQL half: `SAMSKAB_FUZZ_CASES=5000 cargo test -p samskab-e2e --test api fuzz::`.

use e2e::System;
use gateway::Role;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use reqwest::Method;
use serde_json::{Map, Value, json};
use uuid::Uuid;

testkit::both_backends!(setup = e2e::System::start; fuzzed_bodies_never_get_a_5xx_and_refusals_write_nothing);

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One route that takes a body: how to call it, as whom, and a valid body to start from.
struct Route {
    name: &'static str,
    method: Method,
    path: String,
    token: String,
    base: Value,
}

// ---------------------------------------------------------------------------------------
// Generators.

/// Numbers a JSON parser or a conversion may trip on.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        proptest::sample::select(vec![
            json!(0),
            json!(-1),
            json!(1e308),
            json!(-1e308),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(4294967296u64),
            json!(2147483648u64),
            json!(0.5),
            json!(-0.0),
            json!(1e-320),
        ]),
    ]
}

/// Strings: any unicode, strings that look like the API's values, long ones.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2}))?",
        "[0-9]{1,2}:[0-9]{1,2}",
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "(monday|sunday|funday|weather|rider|pleasure|event|functional|rides|stories|guardian|trishaw|RideBooked)",
        "(https?|ftp)://[a-z0-9.:\\[\\]]{1,30}/[a-z]{0,8}",
        "[\\u{0}-\\u{1f}\\u{7f}\\u{202e}\\u{feff}\\u{10ffff}a]{0,8}",
        (1usize..70_000).prop_map(|n| "ø".repeat(n)),
    ]
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        string().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// What to do to one member of a valid body.
#[derive(Debug, Clone)]
enum Mutation {
    /// Another value of the same JSON type (a string for a string, a number for a number),
    /// so that the body gets past type checks into the services' validation.
    SameType(String, Value, bool),
    Replace(Value),
    Remove,
    Add(String, Value),
    WrapInArray,
    Nest(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => (string(), number(), any::<bool>()).prop_map(|(s, n, b)| Mutation::SameType(s, n, b)),
        4 => json_value().prop_map(Mutation::Replace),
        2 => Just(Mutation::Remove),
        2 => (string(), json_value()).prop_map(|(k, v)| Mutation::Add(k, v)),
        1 => Just(Mutation::WrapInArray),
        1 => (1usize..300).prop_map(Mutation::Nest),
    ]
}

/// A body to send.
#[derive(Debug, Clone)]
enum Body {
    /// Arbitrary JSON.
    Any(Value),
    /// The route's valid body with a few members mutated.
    Near(Vec<(Index, Mutation)>),
    /// Bytes that may not be JSON at all.
    Raw(Vec<u8>),
    /// The valid body cut short.
    Truncated(Index),
    /// `depth` nested arrays or objects.
    Deep(usize, bool),
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        3 => json_value().prop_map(Body::Any),
        6 => proptest::collection::vec((any::<Index>(), mutation()), 1..4).prop_map(Body::Near),
        1 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Body::Raw),
        1 => any::<Index>().prop_map(Body::Truncated),
        1 => (1usize..5000, any::<bool>()).prop_map(|(d, o)| Body::Deep(d, o)),
    ]
}

/// Every member of `v` (object members and array elements), as pointers, depth first.
fn pointers(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(x, &p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(x, &p, out);
            }
        }
        _ => {}
    }
}

fn mutate(base: &Value, mutations: &[(Index, Mutation)]) -> Value {
    let mut v = base.clone();
    for (at, m) in mutations {
        let mut ps = vec![String::new()];
        pointers(&v, "", &mut ps);
        let p = at.get(&ps).clone();
        match m {
            Mutation::SameType(text, number, flag) => {
                if let Some(slot) = v.pointer_mut(&p) {
                    match slot {
                        Value::String(t) => *t = text.clone(),
                        Value::Number(_) => *slot = number.clone(),
                        Value::Bool(b) => *b = *flag,
                        Value::Array(a) if *flag => a.clear(),
                        Value::Array(a) => a.extend(a.clone()),
                        _ => {}
                    }
                }
            }
            Mutation::Replace(x) => {
                if let Some(slot) = v.pointer_mut(&p) {
                    *slot = x.clone();
                }
            }
            Mutation::Remove => {
                if let Some((parent, key)) = p.rsplit_once('/') {
                    match v.pointer_mut(parent) {
                        Some(Value::Object(m)) => {
                            m.remove(&key.replace("~1", "/").replace("~0", "~"));
                        }
                        Some(Value::Array(a)) => {
                            if let Ok(i) = key.parse::<usize>()
                                && i < a.len()
                            {
                                a.remove(i);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Mutation::Add(k, x) => match v.pointer_mut(&p) {
                Some(Value::Object(m)) => {
                    m.insert(k.clone(), x.clone());
                }
                Some(Value::Array(a)) => a.push(x.clone()),
                _ => {}
            },
            Mutation::WrapInArray => {
                if let Some(slot) = v.pointer_mut(&p) {
                    *slot = Value::Array(vec![slot.take()]);
                }
            }
            Mutation::Nest(depth) => {
                if let Some(slot) = v.pointer_mut(&p) {
                    let mut x = slot.take();
                    for _ in 0..*depth {
                        x = Value::Array(vec![x]);
                    }
                    *slot = x;
                }
            }
        }
    }
    v
}

fn bytes_of(route: &Route, body: &Body) -> Vec<u8> {
    match body {
        Body::Any(v) => serde_json::to_vec(v).unwrap(),
        Body::Near(m) => serde_json::to_vec(&mutate(&route.base, m)).unwrap(),
        Body::Raw(b) => b.clone(),
        Body::Truncated(at) => {
            let b = serde_json::to_vec(&route.base).unwrap();
            let cut = at.index(b.len().max(1));
            b[..cut].to_vec()
        }
        Body::Deep(depth, object) => {
            let (open, close) = if *object { ("{\"a\":", "}") } else { ("[", "]") };
            format!("{}1{}", open.repeat(*depth), close.repeat(*depth)).into_bytes()
        }
    }
}

// ---------------------------------------------------------------------------------------
// The test.

async fn created(s: &System, path: &str, token: &str, body: Value, field: &str) -> Uuid {
    let r = s.post(path, token, body).await.expect(201);
    r.str(field).parse().unwrap_or_else(|_| panic!("no {field} in {}", r.body))
}

/// The three services' event logs, opened once (reopening them for every request would
/// cost more than the request).
struct Logs(Vec<(&'static str, eventlog::EventStore)>);

impl Logs {
    async fn open(s: &System) -> Logs {
        let mut logs = Vec::new();
        for component in ["carehome", "volunteer", "booking"] {
            logs.push((
                component,
                eventlog::EventStore::connect(&s.config.url(component)).await.expect("the store opens"),
            ));
        }
        Logs(logs)
    }

    async fn heads(&self) -> Vec<String> {
        let mut heads = Vec::new();
        for (component, store) in &self.0 {
            heads.push(format!("{component}: {}", store.head().await.expect("head")));
        }
        heads
    }
}

async fn fuzzed_bodies_never_get_a_5xx_and_refusals_write_nothing(s: System) {
    let w = s.world().await;
    let (chapter, home, bike, pilot) = (w.chapter, w.home, w.bike, w.pilot);
    let (r0, r1) = (w.residents[0], w.residents[1]);
    let admin = s.admin();
    let ca = s.token(Role::ChapterAdmin(chapter));
    let coord = s.token(Role::Coordinator(home));
    let pt = s.token(Role::Pilot(pilot));
    let integrator = s.token(Role::Integrator(Some(chapter)));
    let spare = s.bike(chapter, home, 1).await;
    let r3 = s.resident(home).await;
    let p2 = s.pilot(chapter).await;
    let book = |day: u32| {
        json!({"bike_id": bike, "pilot_id": pilot, "start": format!("2027-06-{day:02}T08:00:00Z"),
            "duration_minutes": 60, "resident_ids": []})
    };
    let mut rides = Vec::new();
    for day in 1..=4 {
        rides.push(created(&s, "/v1/rides", &coord, book(day), "ride_id").await);
    }
    let request_body = |day: u32| {
        json!({"carehome_id": home, "resident_ids": [r1],
            "window": {"from": format!("2027-06-{day:02}T07:00:00Z"), "to": format!("2027-06-{day:02}T12:00:00Z")},
            "duration_minutes": 60, "kind": "pleasure", "note": "Hun elsker havnen"})
    };
    let request = created(&s, "/v1/ride-requests", &coord, request_body(9), "ride_request_id").await;
    let series_body = |start: &str, weekday: &str| {
        json!({"bike_id": bike, "pilot_id": pilot, "start": start, "duration_minutes": 60, "resident_ids": [r0],
            "kind": "pleasure", "recurrence": {"weekdays": [weekday], "interval_weeks": 1, "count": 4}})
    };
    let series =
        created(&s, "/v1/ride-series", &coord, series_body("2027-06-17T10:00:00+02:00", "thursday"), "ride_series_id")
            .await;
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let hours: Vec<Value> = days.iter().map(|d| json!({"weekday": d, "opens": "09:00", "closes": "17:00"})).collect();
    let consent = json!({"given_by": "guardian", "given_at": "2026-11-20T10:00:00+01:00", "scope": ["rides"]});
    let settings = json!({"lead_time_minutes": 60, "default_turnaround_minutes": 15,
        "reminder_lead_minutes": [1440, 60], "ride_season": {"starts": "2027-03-01", "ends": "2027-11-01"}});

    let route = |name: &'static str, path: String, token: &str, base: Value| Route {
        name,
        method: if name.starts_with("PUT") { Method::PUT } else { Method::POST },
        path,
        token: token.to_owned(),
        base,
    };
    let [ride_a, ride_b, ride_c, ride_d] = [rides[0], rides[1], rides[2], rides[3]];
    let routes = vec![
        route(
            "POST /v1/chapters",
            "/v1/chapters".into(),
            &admin,
            json!({"name": "Odense", "timezone": "Europe/Copenhagen", "settings": settings}),
        ),
        route("PUT /v1/chapters/{id}/settings", format!("/v1/chapters/{chapter}/settings"), &ca, settings.clone()),
        route(
            "POST /v1/chapters/{id}/weather-cancellations",
            format!("/v1/chapters/{chapter}/weather-cancellations"),
            &ca,
            json!({"date": "2027-07-01", "note": "storm"}),
        ),
        route(
            "POST /v1/carehomes",
            "/v1/carehomes".into(),
            &ca,
            json!({"chapter_id": chapter, "name": "Egehuset", "address": "Egevej 3, Aarhus", "timezone": "Europe/Copenhagen",
                "ride_hours": hours, "turnaround_minutes": 20, "requires_confirmation": false}),
        ),
        route(
            "POST /v1/carehomes/{id}/coordinators",
            format!("/v1/carehomes/{home}/coordinators"),
            &ca,
            json!({"user_id": "coord-anna"}),
        ),
        route(
            "POST /v1/carehomes/{id}/bikes",
            format!("/v1/carehomes/{home}/bikes"),
            &coord,
            json!({"name": "Trishaw 3", "bike_type": "trishaw", "seats": 2}),
        ),
        route(
            "POST /v1/carehomes/{id}/residents",
            format!("/v1/carehomes/{home}/residents"),
            &coord,
            json!({"display_name": "Åse Ølgaard", "notes": "kørestol", "consent": consent}),
        ),
        route(
            "POST /v1/carehomes/{id}/closures",
            format!("/v1/carehomes/{home}/closures"),
            &coord,
            json!({"from": "2027-08-01", "to": "2027-08-03", "reason": "Maling"}),
        ),
        route(
            "PUT /v1/carehomes/{id}/ride-hours",
            format!("/v1/carehomes/{home}/ride-hours"),
            &coord,
            json!({"ride_hours": hours}),
        ),
        route("POST /v1/residents/{id}/consent", format!("/v1/residents/{r1}/consent"), &coord, consent.clone()),
        route("POST /v1/residents/{id}/move-out", format!("/v1/residents/{r3}/move-out"), &coord, json!({})),
        route("POST /v1/residents/{id}/erasure", format!("/v1/residents/{r3}/erasure"), &coord, json!({})),
        route(
            "POST /v1/pilots",
            "/v1/pilots".into(),
            &ca,
            json!({"chapter_id": chapter, "display_name": "Søren", "email": "soeren@example.org", "phone": "+45 12 34 56 78"}),
        ),
        route(
            "POST /v1/pilots/{id}/qualifications",
            format!("/v1/pilots/{pilot}/qualifications"),
            &ca,
            json!({"bike_type": "trishaw", "qualified_on": "2026-01-01", "valid_until": "2028-12-31"}),
        ),
        route(
            "PUT /v1/pilots/{id}/availability",
            format!("/v1/pilots/{pilot}/availability"),
            &pt,
            json!({"weekly": [{"weekday": "monday", "from": "09:00", "to": "12:00"}], "carehome_ids": [home]}),
        ),
        route("POST /v1/pilots/{id}/suspend", format!("/v1/pilots/{p2}/suspend"), &ca, json!({})),
        route("POST /v1/pilots/{id}/reinstate", format!("/v1/pilots/{p2}/reinstate"), &ca, json!({})),
        route("POST /v1/pilots/{id}/retire", format!("/v1/pilots/{p2}/retire"), &ca, json!({})),
        route("POST /v1/pilots/{id}/erasure", format!("/v1/pilots/{p2}/erasure"), &ca, json!({})),
        route(
            "POST /v1/rides",
            "/v1/rides".into(),
            &pt,
            json!({"bike_id": bike, "pilot_id": pilot, "start": "2027-06-08T10:00:00+02:00", "duration_minutes": 60,
                "resident_ids": [r0], "kind": "pleasure"}),
        ),
        route("POST /v1/rides/{id}/roster", format!("/v1/rides/{ride_a}/roster"), &coord, json!({"resident_id": r1})),
        route(
            "POST /v1/rides/{id}/waitlist",
            format!("/v1/rides/{ride_a}/waitlist"),
            &coord,
            json!({"resident_id": r1}),
        ),
        route(
            "POST /v1/rides/{id}/reschedule",
            format!("/v1/rides/{ride_b}/reschedule"),
            &pt,
            json!({"start": "2027-06-02T10:00:00Z", "duration_minutes": 45}),
        ),
        route(
            "POST /v1/rides/{id}/cancel",
            format!("/v1/rides/{ride_c}/cancel"),
            &pt,
            json!({"reason": "weather", "note": "storm"}),
        ),
        route("POST /v1/rides/{id}/start", format!("/v1/rides/{ride_d}/start"), &pt, json!({})),
        route("POST /v1/rides/{id}/no-show", format!("/v1/rides/{ride_d}/no-show"), &coord, json!({})),
        route(
            "POST /v1/rides/{id}/roster/{resident_id}/check-in",
            format!("/v1/rides/{ride_a}/roster/{r0}/check-in"),
            &pt,
            json!({}),
        ),
        route(
            "POST /v1/rides/{id}/complete",
            format!("/v1/rides/{ride_d}/complete"),
            &pt,
            json!({"ended_at": "2027-06-04T08:55:00Z", "distance_km": 7.5, "bike_condition": "fine", "story": "Vi så havnen"}),
        ),
        route("POST /v1/rides/{id}/confirm", format!("/v1/rides/{ride_a}/confirm"), &coord, json!({})),
        route("POST /v1/ride-requests", "/v1/ride-requests".into(), &coord, request_body(11)),
        route(
            "POST /v1/ride-requests/{id}/claim",
            format!("/v1/ride-requests/{request}/claim"),
            &pt,
            json!({"bike_id": bike, "start": "2027-06-09T08:00:00Z"}),
        ),
        route(
            "POST /v1/ride-requests/{id}/withdraw",
            format!("/v1/ride-requests/{request}/withdraw"),
            &coord,
            json!({}),
        ),
        route(
            "POST /v1/ride-series",
            "/v1/ride-series".into(),
            &pt,
            series_body("2027-06-15T10:00:00+02:00", "tuesday"),
        ),
        route(
            "POST /v1/ride-series/{id}/cancel",
            format!("/v1/ride-series/{series}/cancel"),
            &pt,
            json!({"from": "2027-06-24", "reason": "rider", "note": "Sommerferie"}),
        ),
        route(
            "POST /v1/bikes/{id}/issues",
            format!("/v1/bikes/{bike}/issues"),
            &pt,
            json!({"description": "Bremsen knirker", "grounding": false}),
        ),
        route(
            "POST /v1/bikes/{id}/out-of-service",
            format!("/v1/bikes/{spare}/out-of-service"),
            &coord,
            json!({"reason": "Punktering", "expected_back": "2027-06-20"}),
        ),
        route(
            "POST /v1/bikes/{id}/return-to-service",
            format!("/v1/bikes/{spare}/return-to-service"),
            &coord,
            json!({"reason": "Lappet"}),
        ),
        route("POST /v1/bikes/{id}/retire", format!("/v1/bikes/{spare}/retire"), &coord, json!({"reason": "Udtjent"})),
        route(
            "POST /v1/webhooks",
            "/v1/webhooks".into(),
            &integrator,
            json!({"url": "http://203.0.113.10/samskab", "event_types": ["RideBooked"]}),
        ),
        route("POST /v1/calendar-tokens", "/v1/calendar-tokens".into(), &coord, json!({"carehome_id": home})),
        route(
            "PUT /v1/me/notification-preferences",
            "/v1/me/notification-preferences".into(),
            &coord,
            json!({"language": "da", "quiet_hours": {"from": "22:00", "to": "07:00"},
                "channels": {"ride.reminder": ["email"], "ride.cancelled": []}}),
        ),
        route("PUT /v1/me/contact", "/v1/me/contact".into(), &coord, json!({"email": "koordinator@example.org"})),
        route(
            "POST /v1/me/contact/confirm",
            "/v1/me/contact/confirm".into(),
            &coord,
            json!({"channel": "email", "code": "123456"}),
        ),
        route(
            "POST /v1/me/push-subscriptions",
            "/v1/me/push-subscriptions".into(),
            &coord,
            json!({"endpoint": "http://127.0.0.1:9/push/fuzz",
                "keys": {"p256dh": testkit::push::UA_PUBLIC, "auth": testkit::push::AUTH}}),
        ),
    ];

    // The table should cover every POST and PUT of the OpenAPI document (bad_input.rs
    // enforces that for its own table; here a missing row is reported, not fatal).
    let doc = s.call(Method::GET, "/openapi.json", None, None).await.expect(200).body;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in ["post", "put"] {
            let name = format!("{} {path}", m.to_uppercase());
            if item.get(m).is_some() && !routes.iter().any(|r| r.name == name) {
                eprintln!("NOT FUZZED (add a row): {name}");
            }
        }
    }

    let cases: usize = env("SAMSKAB_FUZZ_CASES", 200);
    let seed: u64 = env("SAMSKAB_FUZZ_SEED", 0x5a4d_534b_4142);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let strategy = (any::<Index>(), body(), any::<bool>());

    let mut failures: Vec<String> = Vec::new();
    let mut statuses: std::collections::BTreeMap<u16, usize> = Default::default();
    let logs = Logs::open(&s).await;
    let mut heads = s.quiet().await;
    for n in 0..cases {
        let (which, body, with_content_type) = strategy.new_tree(&mut runner).expect("a case").current();
        let r = which.get(&routes);
        let bytes = bytes_of(r, &body);
        let mut req = s.http.request(r.method.clone(), format!("{}{}", s.base, r.path)).bearer_auth(&r.token);
        // Mostly JSON; sometimes no content type at all.
        if with_content_type || n % 4 != 0 {
            req = req.header("content-type", "application/json");
        }
        let resp = req.body(bytes.clone()).send().await.expect("an answer");
        let status = resp.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let answer: Value = serde_json::from_slice(&resp.bytes().await.unwrap_or_default()).unwrap_or(Value::Null);
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
        let case = format!("#{n} {} with {shown:?} ({} bytes)", r.name, bytes.len());
        if status >= 500 {
            failures.push(format!("{case}: {status} {answer}"));
        }
        if (400..500).contains(&status) {
            if content_type != "application/problem+json" {
                failures.push(format!("{case}: {status} as {content_type:?}"));
            }
            if !answer["code"].is_string() || answer["status"] != status {
                failures.push(format!("{case}: {status} is no problem: {answer}"));
            }
        }
        if (200..300).contains(&status) {
            // A valid body: it may write, and what it wrote may cascade.
            eprintln!("accepted: {case}: {status}");
            heads = s.quiet().await;
        } else {
            let now = logs.heads().await;
            if now != heads {
                failures.push(format!("{case}: refused with {status} but the event logs moved: {heads:?} -> {now:?}"));
                heads = s.quiet().await;
            }
        }
    }
    for f in &failures {
        eprintln!("FUZZ FAILURE {f}");
    }
    eprintln!("{cases} fuzzed requests on {} routes: statuses {statuses:?}", routes.len());
    assert!(failures.is_empty(), "{} fuzzed requests got wrong answers (listed above)", failures.len());
}
