//! People sign in at a real OpenID Provider (`oidc-provider`, started by the test) and
//! get their roles by redeeming invitations (`api.md` → *People and access*).

use std::time::{Duration, Instant};

use e2e::{System, World};
use gateway::Role;
use reqwest::Method;
use serde_json::json;
use testkit::oidc::OidcProvider;

testkit::both_backends!(
    a_person_signs_in_redeems_a_pilot_invitation_and_acts_as_that_pilot,
    provider_tokens_that_do_not_fit_are_refused_and_write_nothing,
    the_first_admin_is_bootstrapped_and_staff_act_under_their_grants,
    api_keys_act_as_integrators_until_revoked_and_are_never_stored_in_clear,
    redemptions_are_rate_limited_targets_must_be_active_and_people_can_be_erased,
    a_second_gateway_sees_a_redemption_at_once_and_revocations_within_two_seconds,
    webhooks_and_calendar_tokens_stop_with_the_key_or_grant_they_were_made_with,
    invitations_expire_when_their_time_is_up_and_redeeming_one_writes_nothing,
);

/// A system that trusts the provider, with Samskab's own tokens kept on for the admin
/// who sets the chapter up.
async fn system_trusting(db: testkit::TestDb, provider: &OidcProvider) -> System {
    let issuer = provider.issuer.clone();
    System::start_with(db, move |c| {
        c.http.oidc.issuers = format!("{issuer}|samskab-api");
        c.http.local_tokens = Some("on".into());
    })
    .await
}

async fn a_person_signs_in_redeems_a_pilot_invitation_and_acts_as_that_pilot(db: testkit::TestDb) {
    let provider = OidcProvider::start().await;
    let s = system_trusting(db, &provider).await;
    let admin = s.admin();
    let chapter = s.chapter().await;
    let pilot = s.pilot(chapter).await;

    // Signed in, no role yet: `GET /v1/me` answers, everything else is 403.
    let alice = provider.sign_in("alice").await.access_token;
    let bob = provider.sign_in("bob").await.access_token;
    let me = s.get("/v1/me", &alice).await.expect(200);
    assert_eq!(me.body["roles"], json!([]));
    let alice_id = me.str("person_id");
    assert_eq!(s.get("/v1/me", &alice).await.str("person_id"), alice_id, "stable");
    assert_ne!(s.get("/v1/me", &bob).await.str("person_id"), alice_id);
    assert_eq!(s.get(&format!("/v1/pilots/{pilot}"), &alice).await.status, 403);

    // The chapter's admin invites; the code is shown once.
    let inv = s.post("/v1/invitations", &admin, json!({"role": "pilot", "pilot_id": pilot})).await.expect(201);
    let code = inv.str("code");
    let inv_id = inv.str("invitation_id");
    assert!(code.starts_with("inv_") && code.len() >= 40, "{code}");
    let read = s.get(&format!("/v1/invitations/{inv_id}"), &admin).await.expect(200);
    assert_eq!(read.body["status"], "open");
    assert!(read.body.get("code").is_none(), "reads never show the code");
    // A person without a role may not read it.
    assert_eq!(s.get(&format!("/v1/invitations/{inv_id}"), &alice).await.status, 403);

    // Unknown codes and a tampered code are 404.
    let unknown = s.post("/v1/invitations/redeem", &alice, json!({"code": "inv_nothing"})).await;
    assert_eq!((unknown.status.as_u16(), unknown.code()), (404, "not-found"));
    let mut tampered = code.clone();
    tampered.replace_range(tampered.len() - 3.., if code.ends_with("AAA") { "BBB" } else { "AAA" });
    assert_eq!(s.post("/v1/invitations/redeem", &alice, json!({"code": tampered})).await.status, 404);

    // Two persons redeem the one code at once: exactly one wins.
    let (a, b) = tokio::join!(
        s.post("/v1/invitations/redeem", &alice, json!({"code": code})),
        s.post("/v1/invitations/redeem", &bob, json!({"code": code})),
    );
    let mut outcomes = [(a.status.as_u16(), a.code().to_owned()), (b.status.as_u16(), b.code().to_owned())];
    outcomes.sort();
    assert_eq!(outcomes[0].0, 200, "{outcomes:?}");
    assert_eq!(outcomes[1], (409, "invitation-used".to_owned()), "{outcomes:?}");
    let (winner, loser, grant) = if a.status == 200 { (&alice, &bob, a) } else { (&bob, &alice, b) };
    assert_eq!(grant.body["role"], "pilot");
    assert_eq!(grant.str("pilot_id"), pilot.to_string());

    // In force at the next request: the winner is that pilot.
    let me = s.get("/v1/me", winner).await.expect(200);
    assert_eq!(me.body["roles"][0]["role_grant_id"], grant.body["role_grant_id"]);
    s.get(&format!("/v1/pilots/{pilot}"), winner).await.expect(200);
    assert_eq!(s.get(&format!("/v1/pilots/{pilot}"), loser).await.status, 403);
    // The same person again: the same grant, nothing new.
    let again = s.post("/v1/invitations/redeem", winner, json!({"code": code})).await.expect(200);
    assert_eq!(again.body["role_grant_id"], grant.body["role_grant_id"]);
    assert_eq!(s.get(&format!("/v1/invitations/{inv_id}"), &admin).await.body["status"], "redeemed");
    // Naming a grant one does not hold is 403.
    let other = uuid::Uuid::now_v7().to_string();
    let named = s
        .call_with(Method::GET, &format!("/v1/pilots/{pilot}"), Some(winner), None, &[("samskab-role-grant", &other)])
        .await;
    assert_eq!(named.status, 403);

    // A second invitation for the same pilot: the pilot is linked to the winner already.
    let second = s.post("/v1/invitations", &admin, json!({"role": "pilot", "pilot_id": pilot})).await.expect(201);
    let taken = s.post("/v1/invitations/redeem", loser, json!({"code": second.str("code")})).await;
    assert_eq!((taken.status.as_u16(), taken.code()), (409, "pilot-already-linked"));
    // A revoked invitation is expired.
    let third = s.post("/v1/invitations", &admin, json!({"role": "pilot", "pilot_id": pilot})).await.expect(201);
    s.delete(&format!("/v1/invitations/{}", third.str("invitation_id")), &admin).await.expect(200);
    let revoked = s.post("/v1/invitations/redeem", loser, json!({"code": third.str("code")})).await;
    assert_eq!((revoked.status.as_u16(), revoked.code()), (410, "invitation-expired"));

    // Retiring the pilot ends the person's access within 2 s.
    s.post(&format!("/v1/pilots/{pilot}/retire"), &admin, json!({})).await.expect(200);
    let retired = Instant::now();
    loop {
        let r = s.get(&format!("/v1/pilots/{pilot}"), winner).await;
        if r.status == 403 || r.status == 401 {
            break;
        }
        assert!(retired.elapsed() < Duration::from_secs(2), "still {} after 2 s", r.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.get("/v1/me", winner).await.expect(200).body["roles"], json!([]));
}

async fn provider_tokens_that_do_not_fit_are_refused_and_write_nothing(db: testkit::TestDb) {
    let provider = OidcProvider::start().await;
    let s = system_trusting(db, &provider).await;
    let before = s.heads().await;
    let good = provider.client_credentials_token("samskab-api").await;
    s.get("/v1/me", &good).await.expect(200);
    for (what, token) in [
        ("wrong audience", provider.client_credentials_token("https://other.example/api").await),
        ("lifetime over the maximum", provider.client_credentials_token("samskab-api;ttl=172800").await),
        ("an ID token where access tokens are expected", provider.sign_in("carol").await.id_token),
    ] {
        let r = s.post("/v1/invitations/redeem", &token, json!({"code": "inv_x"})).await;
        assert_eq!((r.status.as_u16(), r.code()), (401, "unauthenticated"), "{what}");
    }
    // The provider rotates its signing key: new tokens verify after one JWKS fetch.
    let asked = provider.jwks_requests().await;
    provider.rotate_keys_dropping_old().await;
    tokio::time::sleep(gateway::oidc::REFETCH_COOLDOWN).await;
    let fresh = provider.sign_in("dave").await.access_token;
    s.get("/v1/me", &fresh).await.expect(200);
    // One more JWKS fetch for the new key, not one per request.
    for _ in 0..20 {
        s.get("/v1/me", &fresh).await.expect(200);
    }
    let asked_after_rotation = provider.jwks_requests().await;
    assert!(asked_after_rotation <= asked + 1, "{asked} → {asked_after_rotation}");
    // Nothing was written by any refused request.
    assert_eq!(s.heads().await, before);
}

/// Polls until `check` holds, for at most 2 s (the revocation bound of `api.md`).
async fn within_two_seconds<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(2), "{what}: not within 2 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A world whose care home requires the coordinator's confirmation of pilots' bookings.
async fn confirming_world(s: &System) -> World {
    let chapter = s.chapter().await;
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let body = json!({
        "chapter_id": chapter, "name": "Bakkehuset", "address": "Bakkevej 2, Aarhus",
        "ride_hours": days.iter().map(|d| json!({"weekday": d, "opens": "09:00", "closes": "17:00"})).collect::<Vec<_>>(),
        "turnaround_minutes": 15, "requires_confirmation": true, "pilots_choose_riders": true,
    });
    let home = s.post("/v1/carehomes", &s.admin(), body).await.expect(201).str("carehome_id").parse().unwrap();
    let bike = s.bike(chapter, home, 2).await;
    let pilot = s.pilot(chapter).await;
    let residents = vec![s.resident(home).await];
    let w = World { chapter, home, bike, pilot, residents };
    s.settle(&w).await;
    w
}

async fn redeem(s: &System, token: &str, code: &str) -> serde_json::Value {
    s.post("/v1/invitations/redeem", token, json!({"code": code})).await.expect(200).body
}

async fn the_first_admin_is_bootstrapped_and_staff_act_under_their_grants(db: testkit::TestDb) {
    let provider = OidcProvider::start().await;
    let s = system_trusting(db, &provider).await;
    let w = confirming_world(&s).await;

    // `samskab invite --role admin` against the running system's database.
    let args = samskab::ops::InviteArgs { role: "admin".into(), expires_in_hours: 24 };
    let code = samskab::ops::invite(&s.config, &args).await.expect("an admin invitation");
    let root = provider.sign_in("root").await.access_token;
    let grant = redeem(&s, &root, &code).await;
    assert_eq!(grant["role"], "admin");
    assert_eq!(s.get("/v1/me", &root).await.body["roles"][0]["role"], "admin");

    // The admin invites a chapter admin; she invites a coordinator and a pilot, who are
    // the same person.
    let carla = provider.sign_in("carla").await.access_token;
    let inv = json!({"role": "chapter_admin", "chapter_id": w.chapter});
    let code = s.post("/v1/invitations", &root, inv).await.expect(201).str("code");
    let carla_grant = redeem(&s, &carla, &code).await;
    assert_eq!(carla_grant["chapter_id"], w.chapter.to_string());
    let pia = provider.sign_in("pia").await.access_token;
    let inv = json!({"role": "coordinator", "carehome_id": w.home});
    let code = s.post("/v1/invitations", &carla, inv).await.expect(201).str("code");
    let coordinator = redeem(&s, &pia, &code).await;
    let inv = json!({"role": "pilot", "pilot_id": w.pilot});
    let code = s.post("/v1/invitations", &carla, inv).await.expect(201).str("code");
    let pilot = redeem(&s, &pia, &code).await;
    let roles = s.get("/v1/me", &pia).await.expect(200).body["roles"].clone();
    assert_eq!(roles.as_array().map(Vec::len), Some(2), "{roles}");
    // A chapter admin may not invite an admin, nor into another chapter.
    assert_eq!(s.post("/v1/invitations", &carla, json!({"role": "admin"})).await.status, 403);
    let other = s.chapter().await;
    let inv = json!({"role": "chapter_admin", "chapter_id": other});
    assert_eq!(s.post("/v1/invitations", &carla, inv).await.status, 404);

    // Under the coordinator grant (the more powerful) a booking is booked; under the pilot
    // grant it waits for the coordinator's confirmation.
    let body = |start: &str| {
        json!({"bike_id": w.bike, "pilot_id": w.pilot, "start": start, "duration_minutes": 60,
               "resident_ids": [w.residents[0]]})
    };
    let as_coordinator = s.post("/v1/rides", &pia, body("2027-05-03T10:00:00+02:00")).await.expect(201);
    assert_eq!(as_coordinator.str("status"), "booked");
    let pilot_grant = pilot["role_grant_id"].as_str().unwrap();
    let as_pilot = s
        .call_with(
            Method::POST,
            "/v1/rides",
            Some(&pia),
            Some(body("2027-05-04T10:00:00+02:00")),
            &[("samskab-role-grant", pilot_grant)],
        )
        .await
        .expect(201);
    assert_eq!(as_pilot.str("status"), "pending_confirmation");
    // The audit names the person and the role it acted as.
    let me = s.get("/v1/me", &pia).await.str("person_id");
    let trail = format!("/v1/audit?object_type=ride&object_id={}", as_pilot.str("ride_id"));
    s.eventually("the audit trail", || async { s.get(&trail, &carla).await.body["items"][0]["actor"] == me.as_str() })
        .await;
    assert_eq!(s.get(&trail, &carla).await.body["items"][0]["actor_role"], "pilot");

    // Without the header a request acts under the most powerful grant that allows it: at
    // another care home of the chapter the coordinator grant may not book, so pia books
    // there as the pilot she is (and the audit says so). Naming the coordinator grant
    // there is 403: the grant named does not allow it.
    let home_b = s.carehome(w.chapter).await;
    let bike_b = s.bike(w.chapter, home_b, 2).await;
    let resident_b = s.resident(home_b).await;
    s.settle(&World { chapter: w.chapter, home: home_b, bike: bike_b, pilot: w.pilot, residents: vec![resident_b] })
        .await;
    let at_b = |start: &str| {
        json!({"bike_id": bike_b, "pilot_id": w.pilot, "start": start, "duration_minutes": 60,
               "resident_ids": [resident_b]})
    };
    let coordinator_grant = coordinator["role_grant_id"].as_str().unwrap();
    let named = s
        .call_with(
            Method::POST,
            "/v1/rides",
            Some(&pia),
            Some(at_b("2027-05-05T10:00:00+02:00")),
            &[("samskab-role-grant", coordinator_grant)],
        )
        .await;
    assert_eq!(named.status, 403, "{:?}", named.body);
    let as_pilot_at_b = s.post("/v1/rides", &pia, at_b("2027-05-05T10:00:00+02:00")).await.expect(201);
    let trail = format!("/v1/audit?object_type=ride&object_id={}", as_pilot_at_b.str("ride_id"));
    s.eventually("the audit trail at home B", || async {
        s.get(&trail, &carla).await.body["items"][0]["actor"] == me.as_str()
    })
    .await;
    assert_eq!(s.get(&trail, &carla).await.body["items"][0]["actor_role"], "pilot");
    // A pilot may not book for another pilot: no grant of pia's allows it (403).
    let other_pilot = s.pilot(w.chapter).await;
    let for_other = json!({"bike_id": bike_b, "pilot_id": other_pilot, "start": "2027-05-06T10:00:00+02:00",
                           "duration_minutes": 60, "resident_ids": [resident_b]});
    assert_eq!(s.post("/v1/rides", &pia, for_other).await.status, 403);

    // The chapter lists its grants; revoking the coordinator grant is in force within 2 s.
    let list = s.get(&format!("/v1/role-grants?chapter_id={}", w.chapter), &carla).await.expect(200);
    let ids: Vec<&str> =
        list.body["items"].as_array().unwrap().iter().filter_map(|g| g["role_grant_id"].as_str()).collect();
    for g in [&carla_grant, &coordinator, &pilot] {
        assert!(ids.contains(&g["role_grant_id"].as_str().unwrap()), "{g} in {ids:?}");
    }
    s.delete(&format!("/v1/role-grants/{}", coordinator["role_grant_id"].as_str().unwrap()), &carla).await.expect(200);
    let home = format!("/v1/residents/{}", w.residents[0]);
    within_two_seconds("a revoked coordinator", || async { s.get(&home, &pia).await.status == 404 }).await;
    s.get(&format!("/v1/pilots/{}", w.pilot), &pia).await.expect(200);

    // The chapter's last admin stays, unless an admin removes her.
    let carla_id = carla_grant["role_grant_id"].as_str().unwrap();
    let last = s.delete(&format!("/v1/role-grants/{carla_id}"), &carla).await;
    assert_eq!((last.status.as_u16(), last.code()), (409, "last-admin"));
    s.delete(&format!("/v1/role-grants/{carla_id}"), &root).await.expect(200);
    within_two_seconds("a removed chapter admin", || async {
        s.get(&format!("/v1/role-grants?chapter_id={}", w.chapter), &carla).await.status == 403
    })
    .await;
}

async fn api_keys_act_as_integrators_until_revoked_and_are_never_stored_in_clear(db: testkit::TestDb) {
    let backend = db.backend;
    let provider = OidcProvider::start().await;
    let s = system_trusting(db, &provider).await;
    let chapter = s.chapter().await;
    let cadmin = s.token(Role::ChapterAdmin(chapter));
    let r = s.post("/v1/api-keys", &cadmin, json!({"name": "municipality reports", "chapter_id": chapter})).await;
    let r = r.expect(201);
    let key = r.str("key");
    let key_id = r.str("api_key_id");
    assert!(key.starts_with("sk_") && key.len() > 50, "{key}");
    let read = s.get(&format!("/v1/api-keys/{key_id}"), &cadmin).await.expect(200);
    assert!(read.body.get("key").is_none(), "the key is shown once");
    // A chapter admin's key is the chapter's integrator: it reads the chapter's stats, not
    // another chapter's, and may not write.
    let stats = format!("/v1/stats?chapter_id={chapter}&from=2027-01-01T00:00:00Z&to=2027-02-01T00:00:00Z");
    s.get(&stats, &key).await.expect(200);
    let other = s.chapter().await;
    assert_eq!(
        s.get(&format!("/v1/stats?chapter_id={other}&from=2027-01-01T00:00:00Z&to=2027-02-01T00:00:00Z"), &key)
            .await
            .status,
        404
    );
    let pilot = json!({"chapter_id": chapter, "display_name": "X", "email": "x@example.org"});
    assert_eq!(s.post("/v1/pilots", &key, pilot).await.status, 403);
    // A network key is an admin's to issue.
    let net = json!({"name": "network", "network": true});
    assert_eq!(s.post("/v1/api-keys", &cadmin, net.clone()).await.status, 403);
    s.post("/v1/api-keys", &s.admin(), net).await.expect(201);
    // Used: `last_used_at` is set.
    s.eventually("last_used_at", || async {
        s.get(&format!("/v1/api-keys/{key_id}"), &cadmin).await.body["last_used_at"].is_string()
    })
    .await;
    // A tampered key is refused.
    let mut forged = key.clone();
    forged.replace_range(forged.len() - 2.., if key.ends_with("AA") { "BB" } else { "AA" });
    assert_eq!(s.get(&stats, &forged).await.status, 401);

    // Never in clear: not in the databases' files (SQLite), nor in the event feed.
    if backend == testkit::Backend::Sqlite {
        let mut files = vec![s.config.data_dir().to_path_buf()];
        while let Some(p) = files.pop() {
            if p.is_dir() {
                files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            } else if let Ok(bytes) = std::fs::read(&p) {
                let secret = &key.as_bytes()[3..];
                assert!(!bytes.windows(secret.len()).any(|w| w == secret), "the key is in {}", p.display());
            }
        }
    }
    let feed = s.get("/v1/events?limit=500", &s.admin()).await.expect(200);
    assert!(!feed.body.to_string().contains("ApiKeyIssued"), "access records stay out of the feed");

    // Revoked: refused within 2 s.
    s.delete(&format!("/v1/api-keys/{key_id}"), &cadmin).await.expect(200);
    within_two_seconds("a revoked key", || async { s.get(&stats, &key).await.status == 401 }).await;
    assert_eq!(s.get(&format!("/v1/api-keys/{key_id}"), &cadmin).await.body["status"], "revoked");
}

async fn redemptions_are_rate_limited_targets_must_be_active_and_people_can_be_erased(db: testkit::TestDb) {
    let provider = OidcProvider::start().await;
    let s = system_trusting(db, &provider).await;
    let admin = s.admin();
    let chapter = s.chapter().await;
    let invite = |pilot: uuid::Uuid| {
        let admin = admin.clone();
        let s = &s;
        async move { s.post("/v1/invitations", &admin, json!({"role": "pilot", "pilot_id": pilot})).await.expect(201) }
    };

    // A retired pilot's invitation has expired.
    let retired = s.pilot(chapter).await;
    let code = invite(retired).await.str("code");
    s.post(&format!("/v1/pilots/{retired}/retire"), &admin, json!({})).await.expect(200);
    let eve = provider.sign_in("eve").await.access_token;
    let r = s.post("/v1/invitations/redeem", &eve, json!({"code": code})).await;
    assert_eq!((r.status.as_u16(), r.code()), (410, "invitation-expired"));

    // Guessing: after 10 failures in an hour, even a good code is 429 for that person.
    let pilot = s.pilot(chapter).await;
    let good = invite(pilot).await.str("code");
    for i in 0..9 {
        let r = s.post("/v1/invitations/redeem", &eve, json!({"code": format!("inv_guess{i}")})).await;
        assert_eq!(r.status, 404, "guess {i}");
    }
    let r = s.post("/v1/invitations/redeem", &eve, json!({"code": good})).await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "rate-limited"));
    let wait: u64 = r.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=3600).contains(&wait), "{wait}");
    // Another person is not held back by eve's guesses.
    let finn = provider.sign_in("finn").await.access_token;
    let grant = redeem(&s, &finn, &good).await;

    // Finn erases himself: his grant goes at once, and the pilot can be linked again.
    let erased = s.delete("/v1/me", &finn).await.expect(200);
    assert_eq!(erased.body["revoked"][0]["role_grant_id"], grant["role_grant_id"]);
    assert_eq!(s.get("/v1/me", &finn).await.expect(200).body["roles"], json!([]));
    assert_eq!(s.get(&format!("/v1/pilots/{pilot}"), &finn).await.status, 403);
    let gina = provider.sign_in("gina").await.access_token;
    let again = invite(pilot).await.str("code");
    redeem(&s, &gina, &again).await;

    // The chapter's admin erases gina; a chapter admin of another chapter may not.
    let gina_id = s.get("/v1/me", &gina).await.str("person_id");
    let other = s.token(Role::ChapterAdmin(s.chapter().await));
    assert_eq!(s.post(&format!("/v1/people/{gina_id}/erasure"), &other, json!({})).await.status, 404);
    let cadmin = s.token(Role::ChapterAdmin(chapter));
    let r = s.post(&format!("/v1/people/{gina_id}/erasure"), &cadmin, json!({})).await.expect(200);
    assert_eq!(r.body["revoked"].as_array().map(Vec::len), Some(1));
    within_two_seconds("an erased person", || async {
        s.get(&format!("/v1/pilots/{pilot}"), &gina).await.status == 403
    })
    .await;
    let export = s.get("/v1/me/export", &gina).await.expect(200);
    assert_eq!(export.body["roles"], json!([]));
}

async fn a_second_gateway_sees_a_redemption_at_once_and_revocations_within_two_seconds(db: testkit::TestDb) {
    let provider = OidcProvider::start().await;
    let s = system_trusting(db, &provider).await;
    let b = s.second_gateway().await;
    let w = s.world().await;
    let admin = s.admin();
    let on_b = |path: String, token: String| {
        let (s, b) = (&s, b.clone());
        async move { s.call_at(&b, Method::GET, &path, &token, None).await }
    };
    let hana = provider.sign_in("hana").await.access_token;
    // B has seen hana without a role (and must not remember that).
    assert_eq!(on_b(format!("/v1/pilots/{}", w.pilot), hana.clone()).await.status, 403);

    // Redeemed through A: in force on B at the next request.
    let code = s.post("/v1/invitations", &admin, json!({"role": "pilot", "pilot_id": w.pilot})).await.expect(201);
    redeem(&s, &hana, &code.str("code")).await;
    assert_eq!(on_b(format!("/v1/pilots/{}", w.pilot), hana.clone()).await.status, 200);
    let code = s.post("/v1/invitations", &admin, json!({"role": "coordinator", "carehome_id": w.home})).await;
    let coordinator = redeem(&s, &hana, &code.expect(201).str("code")).await;
    let resident = format!("/v1/residents/{}", w.residents[0]);
    // A further grant of someone who holds one: within the 1 s B may keep her grants.
    within_two_seconds("a second grant on B", || async { on_b(resident.clone(), hana.clone()).await.status == 200 })
        .await;

    // Revoked through A: refused on B within 2 s.
    let grant = coordinator["role_grant_id"].as_str().unwrap();
    s.delete(&format!("/v1/role-grants/{grant}"), &admin).await.expect(200);
    within_two_seconds("a revoked grant on B", || async { on_b(resident.clone(), hana.clone()).await.status == 404 })
        .await;
    // The pilot retired through A: refused on B within 2 s.
    s.post(&format!("/v1/pilots/{}/retire", w.pilot), &admin, json!({})).await.expect(200);
    within_two_seconds("a retired pilot on B", || async {
        matches!(on_b(format!("/v1/pilots/{}", w.pilot), hana.clone()).await.status.as_u16(), 401 | 403)
    })
    .await;

    // An API key used on B, revoked through A: refused on B within 2 s.
    let r = s.post("/v1/api-keys", &admin, json!({"name": "portal", "chapter_id": w.chapter})).await.expect(201);
    let (key, key_id) = (r.str("key"), r.str("api_key_id"));
    let stats = format!("/v1/stats?chapter_id={}&from=2027-01-01T00:00:00Z&to=2027-02-01T00:00:00Z", w.chapter);
    assert_eq!(on_b(stats.clone(), key.clone()).await.status, 200);
    s.delete(&format!("/v1/api-keys/{key_id}"), &admin).await.expect(200);
    within_two_seconds("a revoked key on B", || async { on_b(stats.clone(), key.clone()).await.status == 401 }).await;
}

async fn webhooks_and_calendar_tokens_stop_with_the_key_or_grant_they_were_made_with(db: testkit::TestDb) {
    use std::sync::{Arc, Mutex};
    let provider = OidcProvider::start().await;
    let issuer = provider.issuer.clone();
    let s = System::start_with(db, move |c| {
        c.http.oidc.issuers = format!("{issuer}|samskab-api");
        c.http.local_tokens = Some("on".into());
        c.http.webhooks.allow_loopback = true;
        c.http.webhooks.poll_ms = 100;
    })
    .await;
    let w = s.world().await;
    let admin = s.admin();

    // A coordinator who signed in makes a calendar token; revoking her grant stops it.
    let ines = provider.sign_in("ines").await.access_token;
    let code = s.post("/v1/invitations", &admin, json!({"role": "coordinator", "carehome_id": w.home})).await;
    let grant = redeem(&s, &ines, &code.expect(201).str("code")).await;
    let cal = s.post("/v1/calendar-tokens", &ines, json!({"carehome_id": w.home})).await.expect(201);
    let url = cal.str("url");
    let fetch = || async { s.http.get(format!("{}{url}", s.base)).send().await.expect("answered").status().as_u16() };
    assert_eq!(fetch().await, 200);
    s.delete(&format!("/v1/role-grants/{}", grant["role_grant_id"].as_str().unwrap()), &admin).await.expect(200);
    within_two_seconds("a calendar token of a revoked grant", || async { fetch().await == 401 }).await;

    // A webhook made with an API key delivers until the key is revoked, then stops.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let got = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let got = got.clone();
            async move {
                got.lock().unwrap().push(body);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let r = s.post("/v1/api-keys", &admin, json!({"name": "portal", "chapter_id": w.chapter})).await.expect(201);
    let (key, key_id) = (r.str("key"), r.str("api_key_id"));
    let hook = json!({"url": hook_url, "event_types": ["PilotRegistered"]});
    s.post("/v1/webhooks", &key, hook).await.expect(201);
    let pilots_seen = || seen.lock().unwrap().iter().filter(|b| b.contains("PilotRegistered")).count();
    s.pilot(w.chapter).await;
    s.eventually("a delivery", || async { pilots_seen() == 1 }).await;
    s.delete(&format!("/v1/api-keys/{key_id}"), &admin).await.expect(200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.pilot(w.chapter).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(pilots_seen(), 1, "a revoked key's webhook delivered again");
}

/// Time moved past an invitation's expiry (the test clock, `docs/testing.md`): it shows as
/// `expired` and redeeming it is 410 `invitation-expired`, for invitations of both owners
/// (a pilot's at volunteer, a coordinator's at care-home), and nothing is written.
async fn invitations_expire_when_their_time_is_up_and_redeeming_one_writes_nothing(db: testkit::TestDb) {
    use servicekit::clock::{self, TestClockFile};
    let dir = tempfile::tempdir().unwrap();
    let time = TestClockFile::create(dir.path().join("offset")).unwrap();
    clock::use_test_file(time.path());
    let provider = OidcProvider::start().await;
    let s = system_trusting(db, &provider).await;
    let w = s.world().await;
    let admin = s.admin();
    let mut invitations = Vec::new();
    for target in [json!({"role": "pilot", "pilot_id": w.pilot}), json!({"role": "coordinator", "carehome_id": w.home})]
    {
        let mut body = target;
        body["expires_in_hours"] = json!(1);
        let inv = s.post("/v1/invitations", &admin, body).await.expect(201);
        assert_eq!(inv.str("status"), "open");
        invitations.push((inv.str("invitation_id"), inv.str("code")));
    }
    let jo = provider.sign_in("jo").await.access_token;

    // A minute before the hour they are open; a minute after, expired.
    time.set_offset_seconds(59 * 60).unwrap();
    for (id, _) in &invitations {
        assert_eq!(s.get(&format!("/v1/invitations/{id}"), &admin).await.expect(200).str("status"), "open");
    }
    time.set_offset_seconds(61 * 60).unwrap();
    let before = s.heads().await;
    for (id, code) in &invitations {
        assert_eq!(s.get(&format!("/v1/invitations/{id}"), &admin).await.expect(200).str("status"), "expired");
        let r = s.post("/v1/invitations/redeem", &jo, json!({"code": code})).await;
        assert_eq!((r.status.as_u16(), r.code()), (410, "invitation-expired"), "{:?}", r.body);
    }
    assert_eq!(s.heads().await, before, "a refused redemption writes nothing");
    assert_eq!(s.get("/v1/me", &jo).await.expect(200).body["roles"], json!([]));
}
