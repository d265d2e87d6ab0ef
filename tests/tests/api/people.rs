//! People sign in at a real OpenID Provider (`oidc-provider`, started by the test) and
//! get their roles by redeeming invitations (`api.md` → *People and access*).

use std::time::{Duration, Instant};

use e2e::System;
use reqwest::Method;
use serde_json::json;
use testkit::oidc::OidcProvider;

testkit::both_backends!(
    a_person_signs_in_redeems_a_pilot_invitation_and_acts_as_that_pilot,
    provider_tokens_that_do_not_fit_are_refused_and_write_nothing,
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
