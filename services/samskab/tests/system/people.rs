//! Access decisions hold across gateway *processes* (`api.md` → *People and access*): two
//! `samskab run gateway` processes share the services and PostgreSQL, each with its own
//! caches. A redemption through one is in force on the other at the next request; revoking
//! a grant, retiring a pilot and revoking an API key through one are refused by both
//! within 2 s.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::oidc::OidcProvider;

use crate::binary::{Component, call, run_component, wait_ready};
use crate::support::{client, free_port, shared_token};

/// Polls `check` until it holds, failing if that takes more than 2 s (plus a request's
/// worth of slack on a loaded machine: the bound is the caches', not the HTTP round trip).
async fn within_two_seconds<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        let asked = Instant::now();
        if check().await {
            // The answer reflects the state when the request was sent.
            let took = asked.duration_since(started);
            assert!(took <= Duration::from_millis(2_000), "{what}: took {took:?}");
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{what}: still not refused after 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateway_processes_see_redemptions_at_once_and_revocations_within_two_seconds() {
    let Some(db) = testkit::TestDb::postgres() else { return };
    let provider = OidcProvider::start().await;
    let dir: PathBuf = tempfile::tempdir().unwrap().keep();
    let [carehome, volunteer, booking] = [free_port(), free_port(), free_port()];
    let gateways = [free_port(), free_port()];
    let url = |c: &str| db.sibling(c);
    let grpc = |p: u16| format!("http://127.0.0.1:{p}");
    let service = |name: &str, port: u16, extra: &[String]| {
        let mut args =
            vec![name.to_owned(), "--database-url".into(), url(name), "--listen".into(), format!("127.0.0.1:{port}")];
        args.extend_from_slice(extra);
        run_component(&dir, &args)
    };
    let peers = ["--carehome-url".into(), grpc(carehome), "--volunteer-url".into(), grpc(volunteer)];
    let mut procs: Vec<Component> = vec![
        service("carehome", carehome, &[]),
        service("volunteer", volunteer, &[]),
        service("booking", booking, &peers),
    ];
    for port in gateways {
        let mut extra = vec!["--booking-url".into(), grpc(booking)];
        extra.extend_from_slice(&peers);
        extra.extend([
            "--oidc-issuers".into(),
            format!("{}|samskab-api", provider.issuer),
            "--auth-local-tokens".into(),
            "on".into(),
        ]);
        procs.push(service("gateway", port, &extra));
    }
    for port in gateways {
        wait_ready(port).await;
    }
    let http = client(Duration::from_secs(30));
    let at = |g: usize, path: &str| format!("http://127.0.0.1:{}{path}", gateways[g]);
    let get = |g: usize, path: String, token: String| {
        let (http, url) = (http.clone(), at(g, &path));
        async move { call(&http, reqwest::Method::GET, &url, &token, None, None).await.0 }
    };
    let send = |g: usize, method: reqwest::Method, path: String, token: String, body: Value| {
        let (http, url) = (http.clone(), at(g, &path));
        async move { call(&http, method, &url, &token, Some(body), None).await }
    };
    let post = |g: usize, path: &str, token: &str, body: Value| {
        send(g, reqwest::Method::POST, path.into(), token.into(), body)
    };
    let delete = |g: usize, path: String, token: &str| send(g, reqwest::Method::DELETE, path, token.into(), json!({}));

    // The chapter, set up with Samskab's own admin token.
    let admin = shared_token(&dir, &["--role", "admin"]);
    let (st, ch) = post(0, "/v1/chapters", &admin, json!({"name": "Odense", "timezone": "Europe/Copenhagen"})).await;
    assert_eq!(st, 201, "{ch}");
    let chapter = ch["chapter_id"].as_str().unwrap().to_owned();
    let pilot = |name: &'static str| {
        let (admin, chapter) = (admin.clone(), chapter.clone());
        async move {
            let (st, p) = post(0, "/v1/pilots", &admin, json!({"chapter_id": chapter, "display_name": name})).await;
            assert_eq!(st, 201, "{p}");
            p["pilot_id"].as_str().unwrap().to_owned()
        }
    };
    let redeem = |g: usize, pilot: String, person: String| {
        let admin = admin.clone();
        async move {
            let invitation = json!({"role": "pilot", "pilot_id": pilot});
            let (st, inv) = post(0, "/v1/invitations", &admin, invitation).await;
            assert_eq!(st, 201, "{inv}");
            let (st, grant) = post(g, "/v1/invitations/redeem", &person, json!({"code": inv["code"]})).await;
            assert_eq!(st, 200, "{grant}");
            grant["role_grant_id"].as_str().unwrap().to_owned()
        }
    };

    // Hana has been seen by gateway 1 without a role (which it must not remember); she
    // redeems through gateway 0 and is a pilot on gateway 1 at her next request.
    let (p1, p2) = (pilot("Hana").await, pilot("Ida").await);
    let hana = provider.sign_in("hana").await.access_token;
    assert_eq!(get(1, format!("/v1/pilots/{p1}"), hana.clone()).await, 403);
    let grant = redeem(0, p1.clone(), hana.clone()).await;
    for g in [1, 0] {
        assert_eq!(get(g, format!("/v1/pilots/{p1}"), hana.clone()).await, 200, "gateway {g}");
    }
    // Ida redeems through gateway 1: in force on gateway 0 at once.
    let ida = provider.sign_in("ida").await.access_token;
    assert_eq!(get(0, format!("/v1/pilots/{p2}"), ida.clone()).await, 403);
    redeem(1, p2.clone(), ida.clone()).await;
    for g in [0, 1] {
        assert_eq!(get(g, format!("/v1/pilots/{p2}"), ida.clone()).await, 200, "gateway {g}");
    }

    // Hana's grant revoked through gateway 0, with both gateways' caches warm: refused by
    // each within 2 s.
    let (st, r) = delete(0, format!("/v1/role-grants/{grant}"), &admin).await;
    assert_eq!(st, 200, "{r}");
    for g in [0, 1] {
        within_two_seconds(&format!("a revoked grant on gateway {g}"), || {
            let (path, token) = (format!("/v1/pilots/{p1}"), hana.clone());
            async move {
                let st = get(g, path, token).await;
                st == 403
            }
        })
        .await;
    }

    // Ida's pilot retired through gateway 1: refused by each within 2 s.
    let (st, r) = post(1, &format!("/v1/pilots/{p2}/retire"), &admin, json!({})).await;
    assert_eq!(st, 200, "{r}");
    for g in [1, 0] {
        within_two_seconds(&format!("a retired pilot on gateway {g}"), || {
            let (path, token) = (format!("/v1/pilots/{p2}"), ida.clone());
            async move {
                let st = get(g, path, token).await;
                matches!(st, 401 | 403)
            }
        })
        .await;
    }

    // An API key in use on both, revoked through gateway 0: refused by each within 2 s.
    let (st, k) = post(0, "/v1/api-keys", &admin, json!({"name": "portal", "chapter_id": chapter})).await;
    assert_eq!(st, 201, "{k}");
    let (key, key_id) = (k["key"].as_str().unwrap().to_owned(), k["api_key_id"].as_str().unwrap().to_owned());
    let chapter_path = format!("/v1/chapters/{chapter}");
    for g in [0, 1] {
        assert_eq!(get(g, chapter_path.clone(), key.clone()).await, 200, "gateway {g}");
    }
    let (st, r) = delete(0, format!("/v1/api-keys/{key_id}"), &admin).await;
    assert_eq!(st, 200, "{r}");
    for g in [0, 1] {
        within_two_seconds(&format!("a revoked API key on gateway {g}"), || {
            let (path, token) = (chapter_path.clone(), key.clone());
            async move {
                let st = get(g, path, token).await;
                st == 401
            }
        })
        .await;
    }
    drop(procs);
}
