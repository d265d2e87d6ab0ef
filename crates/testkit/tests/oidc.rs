//! The OIDC test provider (tests/oidc-provider) issues what the gateway's tests rely on.

use testkit::oidc::{API_RESOURCE, CC_CLIENT_ID, LONG_RESOURCE, OidcProvider, WEB_CLIENT_ID, jwt_parts};

fn aud_contains(payload: &serde_json::Value, audience: &str) -> bool {
    match &payload["aud"] {
        serde_json::Value::String(s) => s == audience,
        serde_json::Value::Array(a) => a.iter().any(|v| v == audience),
        _ => false,
    }
}

fn lifetime(payload: &serde_json::Value) -> i64 {
    payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap()
}

#[tokio::test]
async fn oidc_provider_issues_jwt_access_tokens() {
    let op = OidcProvider::start().await;
    assert!(op.issuer.starts_with("http://127.0.0.1:"), "{}", op.issuer);

    // Client credentials.
    let (header, payload) = jwt_parts(&op.client_credentials_token(API_RESOURCE).await);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    assert!(header["kid"].is_string());
    assert!(aud_contains(&payload, API_RESOURCE), "{payload}");
    assert_eq!(payload["iss"], op.issuer.as_str());
    assert_eq!(payload["sub"], CC_CLIENT_ID);
    assert_eq!(payload["scope"], "api");
    assert_eq!(lifetime(&payload), 300);

    // Authorization code with PKCE, no browser.
    let signed_in = op.sign_in("alice").await;
    let (header, payload) = jwt_parts(&signed_in.access_token);
    assert_eq!(header["typ"], "at+jwt");
    assert!(aud_contains(&payload, API_RESOURCE), "{payload}");
    assert_eq!(payload["iss"], op.issuer.as_str());
    assert_eq!(payload["sub"], "alice");
    assert_eq!(payload["client_id"], WEB_CLIENT_ID);
    let (_, id) = jwt_parts(&signed_in.id_token);
    assert!(aud_contains(&id, WEB_CLIENT_ID), "{id}");
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["iss"], op.issuer.as_str());
    // Another subject is another login (no session carried over).
    let (_, bob) = jwt_parts(&op.sign_in("bob@example.org").await.access_token);
    assert_eq!(bob["sub"], "bob@example.org");

    // Other audiences, lifetimes and algorithms.
    let (_, long) = jwt_parts(&op.client_credentials_token(LONG_RESOURCE).await);
    assert!(aud_contains(&long, LONG_RESOURCE), "{long}");
    assert_eq!(lifetime(&long), 2 * 24 * 3600);
    let (_, long_api) = jwt_parts(&op.client_credentials_token("samskab-api;ttl=172800").await);
    assert!(aud_contains(&long_api, API_RESOURCE), "{long_api}");
    assert_eq!(lifetime(&long_api), 172_800);
    let (es, es_payload) = jwt_parts(&op.client_credentials_token("samskab-api;alg=ES256").await);
    assert_eq!((es["alg"].as_str(), es["typ"].as_str()), (Some("ES256"), Some("at+jwt")));
    assert!(aud_contains(&es_payload, API_RESOURCE));
    let (_, https) = jwt_parts(&op.client_credentials_token("https://api.samskab.test/").await);
    assert!(aud_contains(&https, "https://api.samskab.test/"), "{https}");
    let (_, signed_in_long) = jwt_parts(&op.sign_in_for("carol", "samskab-api;ttl=7200").await.access_token);
    assert!(aud_contains(&signed_in_long, API_RESOURCE), "{signed_in_long}");
    assert_eq!(lifetime(&signed_in_long), 7200);
    assert_eq!(signed_in_long["sub"], "carol");

    assert_eq!(op.jwks_requests().await, 0);
    assert_eq!(op.discovery_requests().await, 0);
}

#[tokio::test]
async fn oidc_provider_rotates_its_signing_key() {
    let op = OidcProvider::start().await;
    let (before, _) = jwt_parts(&op.client_credentials_token(API_RESOURCE).await);
    let old_kid = before["kid"].as_str().unwrap().to_owned();
    assert!(op.jwks_kids().await.contains(&old_kid));
    assert_eq!(op.jwks_requests().await, 1);

    let new_kid = op.rotate_keys().await;
    assert_ne!(new_kid, old_kid);
    let (after, _) = jwt_parts(&op.client_credentials_token(API_RESOURCE).await);
    assert_eq!(after["kid"], new_kid.as_str());
    let (after_sign_in, _) = jwt_parts(&op.sign_in("alice").await.access_token);
    assert_eq!(after_sign_in["kid"], new_kid.as_str());
    let kids = op.jwks_kids().await;
    assert!(kids.contains(&new_kid) && kids.contains(&old_kid), "the previous key stays: {kids:?}");

    let newest = op.rotate_keys_dropping_old().await;
    let kids = op.jwks_kids().await;
    assert!(kids.contains(&newest), "{kids:?}");
    assert!(!kids.contains(&new_kid) && !kids.contains(&old_kid), "earlier keys dropped: {kids:?}");
    let (last, _) = jwt_parts(&op.client_credentials_token(API_RESOURCE).await);
    assert_eq!(last["kid"], newest.as_str());
    assert_eq!(op.jwks_requests().await, 3);
}
