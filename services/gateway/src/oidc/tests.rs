//! The verifier against fixed keys served by a small local provider (discovery and JWKS
//! only; the end-to-end tests use a real OpenID Provider).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::*;

const JWKS: &str = include_str!("test_jwks.json");
const RSA: &[u8] = include_bytes!("test_rsa.der");
const RSA_PUBLIC: &[u8] = include_bytes!("test_rsa_pub.pem");
const EC: &[u8] = include_bytes!("test_ec.der");
const ED: &[u8] = include_bytes!("test_ed.der");
const AUDIENCE: &str = "samskab-api";

struct Provider {
    issuer: String,
    jwks_requests: Arc<AtomicU64>,
}

async fn provider() -> Provider {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let jwks_requests = Arc::new(AtomicU64::new(0));
    let counted = jwks_requests.clone();
    let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", axum::routing::get(move || async move { axum::Json(discovery) }))
        .route(
            "/jwks",
            axum::routing::get(move || async move {
                counted.fetch_add(1, Ordering::SeqCst);
                axum::Json(serde_json::from_str::<Value>(JWKS).unwrap())
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Provider { issuer, jwks_requests }
}

fn verifier(p: &Provider, mode: &str) -> Verifier {
    Verifier::new(&OidcConfig { issuers: format!("{}|{AUDIENCE}{mode}", p.issuer), max_token_secs: 86_400 }).unwrap()
}

fn claims(p: &Provider) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"iss": p.issuer, "sub": "person-1", "aud": [AUDIENCE, "other"], "iat": now, "exp": now + 300,
           "email": "someone@example.org"})
}

fn sign(alg: Algorithm, kid: &str, typ: Option<&str>, claims: &Value) -> String {
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_der(RSA),
        Algorithm::ES256 => EncodingKey::from_ec_der(EC),
        Algorithm::EdDSA => EncodingKey::from_ed_der(ED),
        _ => unreachable!(),
    };
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    h.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, &key).unwrap()
}

fn at(alg: Algorithm, kid: &str, claims: &Value) -> String {
    sign(alg, kid, Some("at+jwt"), claims)
}

#[test]
fn issuers_are_parsed_and_must_be_https_off_loopback() {
    let got = parse_issuers("https://id.example.org|api, http://127.0.0.1:9000/realms/x|web|id_token").unwrap();
    assert_eq!(got.len(), 2);
    assert!(!got[0].id_token && got[1].id_token);
    assert_eq!(got[1].issuer, "http://127.0.0.1:9000/realms/x");
    assert!(parse_issuers("").unwrap().is_empty());
    assert!(parse_issuers("http://localhost:8080|a").is_ok());
    assert!(parse_issuers("http://[::1]:8080|a").is_ok());
    for bad in [
        "http://id.example.org|api",
        "https://id.example.org",
        "https://id.example.org|",
        "https://id.example.org|api|access",
        "ftp://127.0.0.1|api",
        "https://a.example|x,https://a.example|y",
    ] {
        assert!(parse_issuers(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn access_tokens_of_each_algorithm_verify_and_name_the_subject() {
    let p = provider().await;
    let v = verifier(&p, "");
    for (alg, kid) in [(Algorithm::RS256, "rsa-1"), (Algorithm::ES256, "ec-1"), (Algorithm::EdDSA, "ed-1")] {
        let id = v.verify(&at(alg, kid, &claims(&p))).await.unwrap_or_else(|e| panic!("{alg:?}: {e:?}"));
        assert_eq!(id, Identity { issuer: p.issuer.clone(), subject: "person-1".into() });
    }
    // `typ: JWT` (Microsoft Entra ID's access tokens) is accepted too.
    assert!(v.verify(&sign(Algorithm::RS256, "rsa-1", Some("JWT"), &claims(&p))).await.is_ok());
    assert_eq!(p.jwks_requests.load(Ordering::SeqCst), 1, "the keys are cached");
}

#[tokio::test]
async fn hostile_and_unfit_tokens_are_refused() {
    let p = provider().await;
    let v = verifier(&p, "");
    let now = chrono::Utc::now().timestamp();
    let with = |patch: Value| {
        let mut c = claims(&p);
        for (k, val) in patch.as_object().unwrap() {
            if val.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = val.clone();
            }
        }
        c
    };
    let cases = [
        ("wrong issuer", at(Algorithm::RS256, "rsa-1", &with(json!({"iss": "https://evil.example"})))),
        ("wrong audience", at(Algorithm::RS256, "rsa-1", &with(json!({"aud": "someone-else"})))),
        ("expired", at(Algorithm::RS256, "rsa-1", &with(json!({"iat": now - 7200, "exp": now - 3600})))),
        ("not yet valid", at(Algorithm::RS256, "rsa-1", &with(json!({"nbf": now + 3600})))),
        ("issued in the future", at(Algorithm::RS256, "rsa-1", &with(json!({"iat": now + 3600, "exp": now + 3900})))),
        ("too long a lifetime", at(Algorithm::RS256, "rsa-1", &with(json!({"exp": now + 90_000})))),
        ("no iat", at(Algorithm::RS256, "rsa-1", &with(json!({"iat": null})))),
        ("no sub", at(Algorithm::RS256, "rsa-1", &with(json!({"sub": null})))),
        ("an ID token where an access token is expected", sign(Algorithm::RS256, "rsa-1", None, &claims(&p))),
        ("an RSA key used for ES256", at(Algorithm::ES256, "rsa-1", &claims(&p))),
    ];
    for (what, token) in cases {
        let e = v.verify(&token).await.expect_err(what);
        assert_eq!(e.status().as_u16(), 401, "{what}");
    }
    // Algorithm confusion: HS256 with the provider's public key as the secret.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rsa-1".into());
    h.typ = Some("at+jwt".into());
    let confused = jsonwebtoken::encode(&h, &claims(&p), &EncodingKey::from_secret(RSA_PUBLIC).unwrap()).unwrap();
    assert!(v.verify(&confused).await.is_err(), "HS256 with the public key");
    // alg: none.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"at+jwt","kid":"rsa-1"}"#),
        b64.encode(claims(&p).to_string())
    );
    assert!(v.verify(&none).await.is_err(), "alg none");
    // A good token's signature on other claims.
    let good = at(Algorithm::RS256, "rsa-1", &claims(&p));
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], b64.encode(with(json!({"sub": "admin"})).to_string()), parts[2]);
    assert!(v.verify(&forged).await.is_err(), "forged claims");
}

#[tokio::test]
async fn id_tokens_are_accepted_only_where_configured() {
    let p = provider().await;
    let v = verifier(&p, "|id_token");
    assert!(v.verify(&sign(Algorithm::RS256, "rsa-1", Some("JWT"), &claims(&p))).await.is_ok());
    assert!(v.verify(&sign(Algorithm::RS256, "rsa-1", None, &claims(&p))).await.is_ok());
    assert!(v.verify(&at(Algorithm::RS256, "rsa-1", &claims(&p))).await.is_err(), "an access token");
}

#[tokio::test]
async fn a_flood_of_unknown_key_ids_asks_the_provider_at_most_once_per_cooldown() {
    let p = provider().await;
    let v = Arc::new(verifier(&p, ""));
    assert!(v.verify(&at(Algorithm::RS256, "rsa-1", &claims(&p))).await.is_ok());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (v, token) = (v.clone(), at(Algorithm::RS256, &format!("bogus-{i}"), &claims(&p)));
        tasks.push(tokio::spawn(async move { v.verify(&token).await.is_err() }));
    }
    for t in tasks {
        assert!(t.await.unwrap(), "a bogus kid is refused");
    }
    let windows = started.elapsed().as_secs() / REFETCH_COOLDOWN.as_secs() + 1;
    let asked = p.jwks_requests.load(Ordering::SeqCst);
    assert!(asked <= 1 + windows, "the provider was asked {asked} times for 200 bogus kids");
    // Known keys keep working during the flood's cooldown.
    assert!(v.verify(&at(Algorithm::ES256, "ec-1", &claims(&p))).await.is_ok());
}

#[tokio::test]
async fn a_provider_that_cannot_be_reached_is_unavailable_not_unauthenticated() {
    let v =
        Verifier::new(&OidcConfig { issuers: "http://127.0.0.1:9|samskab-api".into(), max_token_secs: 60 }).unwrap();
    let now = chrono::Utc::now().timestamp();
    let c = json!({"iss": "http://127.0.0.1:9", "sub": "p", "aud": "samskab-api", "iat": now, "exp": now + 30});
    let e = v.verify(&at(Algorithm::RS256, "rsa-1", &c)).await.unwrap_err();
    assert_eq!(e.status().as_u16(), 503);
}
