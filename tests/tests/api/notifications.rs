//! The inbox over HTTP, on the whole system (the notify service inside the all-in-one): a
//! ride booked for a pilot by a coordinator reaches the pilot's inbox, in Danish for a
//! chapter in Copenhagen's zone, naming no resident; paging, the unread filter, reading,
//! and another pilot's refusal. Then what a person chooses: preferences, contact details
//! with their codes, and the unsubscribe link of an e-mail.

use e2e::System;
use gateway::Role;
use serde_json::json;

testkit::both_backends!(
    setup = e2e::System::start;
    a_booking_reaches_the_pilots_inbox_and_is_read_once,
    the_inbox_streams_what_arrives_and_resumes_after_an_id,
    preferences_are_kept_and_shown_with_the_defaults_of_kinds_not_chosen,
    a_contact_code_locks_after_five_wrong_tries,
    an_unsubscribe_link_stops_its_kind_by_email_and_a_forged_one_is_401,
    push_subscriptions_are_a_persons_own_at_most_ten_and_leave_with_the_person
);
/// People signed in at an OpenID Provider, with and without grants.
mod grants {
    use super::only_a_person_with_a_grant_chooses_preferences_and_contact;
    testkit::both_backends!(only_a_person_with_a_grant_chooses_preferences_and_contact);
}

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

const PREFS: &str = "/v1/me/notification-preferences";

/// A pilot's preferences: until chosen every kind goes by e-mail, in Danish (the world's
/// chapter is in Copenhagen's zone); a choice replaces them, kinds left out stay e-mail;
/// what notify refuses names its field.
async fn preferences_are_kept_and_shown_with_the_defaults_of_kinds_not_chosen(s: System) {
    let w = s.world().await;
    let pilot = s.token(Role::Pilot(w.pilot));
    let before = s.get(PREFS, &pilot).await.expect(200);
    assert_eq!(before.body["language"], "da", "{}", before.body);
    assert!(before.body.get("quiet_hours").is_none(), "{}", before.body);
    let kinds = before.body["channels"].as_object().expect("channels").clone();
    assert!(kinds.values().all(|c| *c == json!(["email"])), "{}", before.body);
    // The document lists exactly the kinds notify knows (its schema refuses any other).
    let doc = s.call(reqwest::Method::GET, "/openapi.json", None, None).await.expect(200).body;
    let schema = &doc["components"]["schemas"]["NotificationPreferences"]["properties"]["channels"];
    let documented: Vec<&String> = schema["properties"].as_object().expect("kinds in the schema").keys().collect();
    let known: Vec<&String> = kinds.keys().collect();
    assert_eq!(documented, known, "the schema's kinds are notify's");
    assert_eq!(schema["additionalProperties"], json!(false));

    let choice = json!({"language": "en", "quiet_hours": {"from": "22:00", "to": "07:00"},
        "channels": {"ride.reminder": ["email", "sms"], "ride.cancelled": []}});
    let set = s.put(PREFS, &pilot, choice).await.expect(200);
    let after = s.get(PREFS, &pilot).await.expect(200);
    assert_eq!(set.body, after.body, "PUT answers what GET then shows");
    assert_eq!(after.body["language"], "en");
    // Given without a zone, the quiet hours are kept in the zone of the pilot's chapter.
    let quiet = json!({"from": "22:00", "to": "07:00", "timezone": "Europe/Copenhagen"});
    assert_eq!(after.body["quiet_hours"], quiet);
    assert_eq!(after.body["channels"]["ride.reminder"], json!(["email", "sms"]));
    assert_eq!(after.body["channels"]["ride.cancelled"], json!([]), "the inbox only");
    assert_eq!(after.body["channels"]["ride.confirmed"], json!(["email"]), "a kind not chosen goes by e-mail");
    assert_eq!(after.body["channels"].as_object().unwrap().len(), kinds.len());

    // Refusals name the field and change nothing.
    let field = |r: e2e::Reply| r.body["errors"][0]["field"].as_str().unwrap_or_default().to_owned();
    let same = json!({"language": "da", "quiet_hours": {"from": "07:00", "to": "07:00"}, "channels": {}});
    let r = s.put(PREFS, &pilot, same).await.expect(400);
    assert_eq!((r.code().to_owned(), field(r)), ("validation".to_owned(), "/quiet_hours/to".to_owned()));
    let unknown = json!({"language": "da", "channels": {"ride.foo": ["email"]}});
    assert_eq!(field(s.put(PREFS, &pilot, unknown).await.expect(400)), "/channels/ride.foo");
    let twice = json!({"language": "da", "channels": {"ride.reminder": ["sms", "sms"]}});
    assert_eq!(field(s.put(PREFS, &pilot, twice).await.expect(400)), "/channels/ride.reminder");
    let fax = json!({"language": "da", "channels": {"ride.reminder": ["fax"]}});
    assert_eq!(field(s.put(PREFS, &pilot, fax).await.expect(400)), "/channels/ride.reminder");
    let clock = json!({"language": "da", "quiet_hours": {"from": "7:00", "to": "08:00"}, "channels": {}});
    assert_eq!(field(s.put(PREFS, &pilot, clock).await.expect(400)), "/quiet_hours/from");
    let zone = json!({"language": "da", "quiet_hours": {"from": "22:00", "to": "07:00", "timezone": "Mars/Olympus"},
        "channels": {}});
    assert_eq!(field(s.put(PREFS, &pilot, zone).await.expect(400)), "/quiet_hours/timezone");
    assert_eq!(field(s.put(PREFS, &pilot, json!({"language": "fr", "channels": {}})).await.expect(400)), "/language");
    assert_eq!(s.get(PREFS, &pilot).await.expect(200).body, after.body, "refusals changed nothing");

    // Another person's preferences are their own; an integrator's token is no person's.
    let other = s.token(Role::Pilot(w.pilot));
    assert_eq!(s.get(PREFS, &other).await.expect(200).body["language"], "da");
    let integrator = s.token(Role::Integrator(Some(w.chapter)));
    assert_eq!(s.get(PREFS, &integrator).await.expect(403).code(), "forbidden");
    s.call(reqwest::Method::GET, PREFS, None, None).await.expect(401);
}

/// A new address waits for its code: wrong codes count down, the fifth locks it (409
/// `code-locked`), and after that any code is refused the same way until it is set again.
async fn a_contact_code_locks_after_five_wrong_tries(s: System) {
    let w = s.world().await;
    let pilot = s.token(Role::Pilot(w.pilot));
    let set = s.put("/v1/me/contact", &pilot, json!({"email": "pia@example.org"})).await.expect(202);
    assert_eq!(set.body, json!({"pending": ["email"]}));
    // Nothing waits on SMS.
    let none = s.post("/v1/me/contact/confirm", &pilot, json!({"channel": "sms", "code": "123456"})).await;
    assert_eq!(none.expect(404).code(), "not-found");
    // Codes that cannot all be the one sent (it is one number; these are five).
    let wrong = ["000000", "111111", "222222", "333333", "444444"];
    let mut answers = Vec::new();
    for code in wrong {
        let r = s.post("/v1/me/contact/confirm", &pilot, json!({"channel": "email", "code": code})).await;
        answers.push((r.status.as_u16(), r.code().to_owned()));
    }
    // One of the five might be the code (a chance of 5 in a million): then it is confirmed.
    if answers.iter().any(|(st, _)| *st == 200) {
        eprintln!("a guessed code was the one sent: {answers:?}");
        return;
    }
    let expected: Vec<(u16, String)> = [422, 422, 422, 422, 409]
        .iter()
        .zip(["code-wrong", "code-wrong", "code-wrong", "code-wrong", "code-locked"])
        .map(|(st, c)| (*st, c.to_owned()))
        .collect();
    assert_eq!(answers, expected);
    let sixth = s.post("/v1/me/contact/confirm", &pilot, json!({"channel": "email", "code": "555555"})).await;
    assert_eq!((sixth.status.as_u16(), sixth.code()), (409, "code-locked"), "{}", sixth.body);
    // Setting it again starts over with a new code.
    s.put("/v1/me/contact", &pilot, json!({"email": "pia@example.org", "phone": "+4512345678"})).await.expect(202);
    let again = s.post("/v1/me/contact/confirm", &pilot, json!({"channel": "email", "code": "666666"})).await;
    assert!(matches!(again.status.as_u16(), 422 | 200), "{}", again.body);
    // What is refused names its field.
    let field = |r: e2e::Reply| r.body["errors"][0]["field"].as_str().unwrap_or_default().to_owned();
    let bad = s.put("/v1/me/contact", &pilot, json!({"phone": "12345678"})).await.expect(400);
    assert_eq!(field(bad), "/phone");
    assert_eq!(field(s.put("/v1/me/contact", &pilot, json!({"email": "nope"})).await.expect(400)), "/email");
    assert_eq!(field(s.put("/v1/me/contact", &pilot, json!({})).await.expect(400)), "/email");
    let short = s.post("/v1/me/contact/confirm", &pilot, json!({"channel": "email", "code": "12345"})).await;
    assert_eq!(field(short.expect(400)), "/code");
    let fax = s.post("/v1/me/contact/confirm", &pilot, json!({"channel": "fax", "code": "123456"})).await;
    assert_eq!(field(fax.expect(400)), "/channel");
}

/// A token as notify signs it for an e-mail's `List-Unsubscribe` link
/// (services/notify/src/people.rs, `unsubscribe_token`): the recipient and kind in
/// base64url, a dot, their keyed digest under notify's master key.
async fn unsubscribe_token(s: &System, recipient: &str, kind: &str) -> String {
    let store = eventlog::EventStore::connect(&s.config.url("notify")).await.expect("notify's store");
    let keys =
        servicekit::bootstrap::key_store(&store, &s.config.key_config("notify", false)).await.expect("notify's keys");
    let body = format!("{recipient}\n{kind}");
    let token = format!("{}.{}", base64url(body.as_bytes()), keys.digest("unsubscribe", body.as_bytes()));
    store.close().await;
    token
}

/// Base64url without padding (RFC 4648 §5).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// The link of an e-mail: its page changes nothing; its one-click POST (RFC 8058) stops
/// the kind by e-mail, again without harm; a forged or malformed token is refused.
async fn an_unsubscribe_link_stops_its_kind_by_email_and_a_forged_one_is_401(s: System) {
    let w = s.world().await;
    let pilot = s.token(Role::Pilot(w.pilot));
    let person = s.get("/v1/me", &pilot).await.expect(200).str("person_id");
    let choice = json!({"language": "da", "channels": {"ride.reminder": ["email", "sms"]}});
    s.put(PREFS, &pilot, choice).await.expect(200);
    let token = unsubscribe_token(&s, &format!("person:{person}"), "ride.reminder").await;
    let url = format!("{}/v1/unsubscribe?token={token}", s.base);

    // The page: in Danish and English, a form that POSTs the one-click body here.
    let page = s.http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.contains("påmindelser om ture") && html.contains("ride reminders"), "{html}");
    assert!(html.contains(&format!("action=\"/v1/unsubscribe?token={token}\"")), "{html}");
    assert!(html.contains("name=\"List-Unsubscribe\" value=\"One-Click\""), "{html}");
    let unchanged = s.get(PREFS, &pilot).await.expect(200);
    assert_eq!(unchanged.body["channels"]["ride.reminder"], json!(["email", "sms"]), "the page changes nothing");

    // The one-click POST, as a mail client sends it; again, and with no body at all.
    let one_click = || {
        s.http.post(&url).header("content-type", "application/x-www-form-urlencoded").body("List-Unsubscribe=One-Click")
    };
    let r = one_click().send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body, json!({"kind": "ride.reminder", "unsubscribed": true}));
    let after = s.get(PREFS, &pilot).await.expect(200);
    assert_eq!(after.body["channels"]["ride.reminder"], json!(["sms"]), "e-mail stopped, SMS kept");
    assert_eq!(after.body["channels"]["ride.cancelled"], json!(["email"]), "other kinds untouched");
    assert_eq!(s.http.post(&url).send().await.unwrap().status(), 200, "no body, and again: still 200");
    // A browser submitting the page's form gets a page.
    let browser = one_click().header("accept", "text/html,application/xhtml+xml").send().await.unwrap();
    assert_eq!(browser.status(), 200);
    assert!(browser.text().await.unwrap().contains("Du er afmeldt"));

    // Forged (another kind under the same digest), malformed, missing.
    let (data, mac) = token.split_once('.').unwrap();
    let forged = format!("{}.{mac}", base64url(format!("person:{person}\nride.cancelled").as_bytes()));
    assert_ne!(forged.split('.').next(), Some(data));
    for t in [forged, format!("{data}.{}", "0".repeat(64))] {
        let at = format!("{}/v1/unsubscribe?token={t}", s.base);
        for r in [
            s.http.get(&at).send().await.unwrap(),
            s.http.post(&at).send().await.unwrap(),
            s.http
                .post(&at)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("List-Unsubscribe=One-Click")
                .send()
                .await
                .unwrap(),
        ] {
            assert_eq!(r.status(), 401);
            assert_eq!(r.headers()["content-type"], "application/problem+json");
            let p: serde_json::Value = r.json().await.unwrap();
            assert_eq!(p["code"], "unauthenticated", "{p}");
        }
    }
    assert_eq!(s.get(PREFS, &pilot).await.expect(200).body, after.body, "forged links changed nothing");
    for (path, field) in
        [("/v1/unsubscribe?token=abc", "/token"), ("/v1/unsubscribe", "/token"), ("/v1/unsubscribe?token=", "/token")]
    {
        let r = s.call(reqwest::Method::GET, path, None, None).await.expect(400);
        assert_eq!(r.body["errors"][0]["field"], field, "{path}: {}", r.body);
    }
    let wrong =
        s.http.post(&url).header("content-type", "application/x-www-form-urlencoded").body("List-Unsubscribe=Yes");
    assert_eq!(wrong.send().await.unwrap().status(), 400);
    let json_body = s.http.post(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(json_body.status(), 415);
}

/// Preferences and contact details are for people with a grant: a person signed in at the
/// provider who holds none is refused (403), though their inbox is theirs; once they
/// redeem an invitation they may.
async fn only_a_person_with_a_grant_chooses_preferences_and_contact(db: testkit::TestDb) {
    let provider = testkit::oidc::OidcProvider::start().await;
    let issuer = provider.issuer.clone();
    let s = System::start_with(db, move |c| {
        c.http.oidc.issuers = format!("{issuer}|samskab-api");
        c.http.local_tokens = Some("on".into());
    })
    .await;
    let w = s.world().await;
    let token = provider.sign_in("no-grant-yet").await.access_token;
    let calls = [
        (reqwest::Method::GET, PREFS, None),
        (reqwest::Method::PUT, PREFS, Some(json!({"language": "en", "channels": {}}))),
        (reqwest::Method::PUT, "/v1/me/contact", Some(json!({"email": "nobody@example.org"}))),
        (reqwest::Method::POST, "/v1/me/contact/confirm", Some(json!({"channel": "email", "code": "123456"}))),
    ];
    for (method, path, body) in calls.clone() {
        let r = s.call(method.clone(), path, Some(&token), body).await.expect(403);
        assert_eq!(r.code(), "forbidden", "{method} {path}");
    }
    s.get("/v1/me/notifications", &token).await.expect(200);
    // An API key is no person either.
    let key = s.post("/v1/api-keys", &s.admin(), json!({"name": "reports", "chapter_id": w.chapter})).await;
    let key = key.expect(201).str("key");
    for (method, path, body) in calls.clone() {
        s.call(method, path, Some(&key), body).await.expect(403);
    }
    // With a pilot grant: the chapter's language (Copenhagen's zone), and the choice kept.
    let code = s.post("/v1/invitations", &s.admin(), json!({"role": "pilot", "pilot_id": w.pilot})).await;
    s.post("/v1/invitations/redeem", &token, json!({"code": code.expect(201).str("code")})).await.expect(200);
    let prefs = testkit::eventually("the grant in force", testkit::DEFAULT_TIMEOUT, || async {
        let r = s.get(PREFS, &token).await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(prefs.body["language"], "da", "{}", prefs.body);
    s.put(PREFS, &token, json!({"language": "en", "channels": {}})).await.expect(200);
    assert_eq!(s.get(PREFS, &token).await.expect(200).body["language"], "en");
    s.put("/v1/me/contact", &token, json!({"phone": "+4512345678"})).await.expect(202);
}

/// E-mail through the whole system (the all-in-one with an SMTP relay: a real SMTP server
/// the test starts): a pilot invitation's code reaches the pilot record's address; a
/// coordinator's new address gets its code and, confirmed, is in the person's export with
/// their notifications; once the person is erased, notify keeps nothing of them.
mod email {
    use super::*;
    testkit::both_backends!(an_invitation_and_a_persons_address_travel_by_email_and_leave_with_the_person);
}

async fn an_invitation_and_a_persons_address_travel_by_email_and_leave_with_the_person(db: testkit::TestDb) {
    let smtp = testkit::smtp::SmtpServer::start(testkit::smtp::Options::default()).await;
    let port = smtp.port;
    let s = System::start_with(db, move |c| {
        c.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        c.mail.from = "Samskab <noreply@odense.example.org>".into();
    })
    .await;
    let w = s.world().await;
    let admin = s.admin();
    let address = format!("invited-{}@pilots.example.org", uuid::Uuid::now_v7().simple());
    let pilot = s
        .post("/v1/pilots", &admin, json!({"chapter_id": w.chapter, "display_name": "Hanne Vinther", "email": address}))
        .await
        .expect(201);
    let pilot_id = pilot.str("pilot_id");
    let invited = s.post("/v1/invitations", &admin, json!({"role": "pilot", "pilot_id": pilot_id})).await.expect(201);
    let code = invited.str("code");
    let mails = testkit::eventually("the invitation by e-mail", testkit::DEFAULT_TIMEOUT, || async {
        let m = smtp.messages();
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(mails[0].to, vec![address.clone()]);
    assert!(mails[0].raw.contains(&code), "the code in the e-mail: {}", mails[0].raw);
    assert!(!mails[0].raw.contains("Hanne"), "no name in the e-mail");

    // A coordinator's address: the code arrives there; confirmed, it is in the export.
    let coord = s.token(Role::Coordinator(w.home));
    let mine = "coordinator@home.example.org";
    s.put("/v1/me/contact", &coord, json!({"email": mine})).await.expect(202);
    let mails = testkit::eventually("the code by e-mail", testkit::DEFAULT_TIMEOUT, || async {
        let m = smtp.messages();
        (m.len() >= 2).then_some(m)
    })
    .await;
    assert_eq!(mails[1].to, vec![mine.to_owned()]);
    let code = mails[1].code();
    s.post("/v1/me/contact/confirm", &coord, json!({"channel": "email", "code": code})).await.expect(200);
    let export = testkit::eventually("the address in the export", testkit::DEFAULT_TIMEOUT, || async {
        let e = s.get("/v1/me/export", &coord).await.expect(200);
        (e.body["notifications"][0]["contact"]["email"] == mine).then_some(e)
    })
    .await;
    assert_eq!(export.body["notifications"][0]["recipient"], format!("person:{}", export.str("person_id")));

    // The figures: each e-mail counted once by kind, channel and outcome; nothing waiting.
    let counted = |text: &str, kind: &str, outcome: &str| -> Option<f64> {
        text.lines().find_map(|l| {
            let (labels, value) = l.strip_prefix("notify_notices_total{")?.rsplit_once("} ")?;
            let ours = [format!("kind=\"{kind}\""), "channel=\"email\"".into(), format!("outcome=\"{outcome}\"")];
            ours.iter().all(|p| labels.contains(p.as_str())).then(|| value.trim().parse().unwrap())
        })
    };
    let scrape = || async { s.http.get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap() };
    // (The count follows the relay's answer by a moment.)
    let metrics = testkit::eventually("both e-mails counted", testkit::DEFAULT_TIMEOUT, || async {
        let m = scrape().await;
        counted(&m, "contact.confirmation", "delivered").is_some().then_some(m)
    })
    .await;
    assert_eq!(counted(&metrics, "invitation", "delivered"), Some(1.0), "{metrics}");
    assert_eq!(counted(&metrics, "contact.confirmation", "delivered"), Some(1.0), "{metrics}");
    assert_eq!(counted(&metrics, "invitation", "retried"), None, "{metrics}");
    let backlog = metrics
        .lines()
        .find(|l| l.starts_with("notify_backlog ") || l.starts_with("notify_backlog{"))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse::<f64>());
    assert_eq!(backlog, Some(Ok(0.0)), "{metrics}");

    // Erased: notify keeps nothing of the person.
    s.delete("/v1/me", &coord).await.expect(200);
    let after = s.get("/v1/me/export", &coord).await.expect(200);
    let n = &after.body["notifications"][0];
    assert!(n["contact"]["email"].is_null(), "{n}");
    assert!(n["notifications"].as_array().is_some_and(|a| a.is_empty()), "{n}");
}

/// Web Push over HTTP: the VAPID key needs no sign-in; a person's browser subscribes once
/// (the same endpoint again is 200 with the same subscription), sees only their own, and
/// may keep ten; an API key is no person (403); another person's subscription is 404 to
/// delete; it is in the person's export and gone after their erasure.
async fn push_subscriptions_are_a_persons_own_at_most_ten_and_leave_with_the_person(s: System) {
    let w = s.world().await;
    let service = testkit::push::PushService::start().await;
    let key = s.http.get(format!("{}/v1/push/vapid-public-key", s.base)).send().await.unwrap();
    assert_eq!(key.status(), 200);
    let key: serde_json::Value = key.json().await.unwrap();
    assert_eq!(key["key"].as_str().unwrap().len(), 87, "{key}");

    let coord = s.token(Role::Coordinator(w.home));
    let other = s.token(Role::Coordinator(w.home));
    let browser = |name: &str| {
        json!({"endpoint": service.endpoint(name), "expirationTime": null,
            "keys": {"p256dh": testkit::push::UA_PUBLIC, "auth": testkit::push::AUTH}})
    };
    const SUBS: &str = "/v1/me/push-subscriptions";
    let first = s.post(SUBS, &coord, browser("phone")).await.expect(201);
    let id = first.str("push_subscription_id");
    assert_eq!(first.body["endpoint"], service.endpoint("phone"));
    let again = s.post(SUBS, &coord, browser("phone")).await.expect(200);
    assert_eq!(again.str("push_subscription_id"), id, "the same browser is the same subscription");
    let mine = s.get(SUBS, &coord).await.expect(200);
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1);
    assert!(mine.body["items"][0].get("keys").is_none(), "keys are never shown");
    assert_eq!(s.get(SUBS, &other).await.expect(200).body["items"], json!([]), "another's list is their own");
    s.delete(&format!("{SUBS}/{id}"), &other).await.expect(404);

    // Ten at most.
    for n in 1..10 {
        s.post(SUBS, &coord, browser(&format!("tablet-{n}"))).await.expect(201);
    }
    let eleventh = s.post(SUBS, &coord, browser("one-too-many")).await.expect(422);
    assert_eq!(eleventh.code(), "limit-reached");
    // An API key acts for an integrator, not a person.
    let api_key =
        s.post("/v1/api-keys", &s.admin(), json!({"name": "push", "chapter_id": w.chapter})).await.expect(201);
    s.post(SUBS, &api_key.str("key"), browser("integrator")).await.expect(403);

    // In the export; deleted once; gone after erasure.
    let export = s.get("/v1/me/export", &coord).await.expect(200);
    let listed = &export.body["notifications"][0]["push_subscriptions"];
    assert_eq!(listed.as_array().unwrap().len(), 10, "{listed}");
    s.delete(&format!("{SUBS}/{id}"), &coord).await.expect(204);
    s.delete(&format!("{SUBS}/{id}"), &coord).await.expect(404);
    assert_eq!(s.get(SUBS, &coord).await.expect(200).body["items"].as_array().unwrap().len(), 9);
    s.delete("/v1/me", &coord).await.expect(200);
    let after = s.get("/v1/me/export", &coord).await.expect(200);
    assert_eq!(after.body["notifications"][0]["push_subscriptions"], json!([]), "{}", after.body);
}
