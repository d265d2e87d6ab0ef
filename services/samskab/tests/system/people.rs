//! Access decisions hold across gateway *processes* (`api.md` → *People and access*): two
//! `samskab run gateway` processes share the services and PostgreSQL, each with its own
//! caches. A redemption through one is in force on the other at the next request; revoking
//! a grant, retiring a pilot and revoking an API key through one are refused by both
//! within 2 s. `samskab invite --role admin` bootstraps the first admin person against the
//! running system's database; no invitation code or API key is in any database in clear.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::oidc::OidcProvider;

use crate::binary::{Component, call, run_component, wait_ready};
use crate::support::{BIN, SHARED_SECRETS, client, free_port, shared_token};

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
            (grant["role_grant_id"].as_str().unwrap().to_owned(), inv["code"].as_str().unwrap().to_owned())
        }
    };

    // Hana has been seen by gateway 1 without a role (which it must not remember); she
    // redeems through gateway 0 and is a pilot on gateway 1 at her next request.
    let (p1, p2) = (pilot("Hana").await, pilot("Ida").await);
    let hana = provider.sign_in("hana").await.access_token;
    assert_eq!(get(1, format!("/v1/pilots/{p1}"), hana.clone()).await, 403);
    let (grant, hana_code) = redeem(0, p1.clone(), hana.clone()).await;
    for g in [1, 0] {
        assert_eq!(get(g, format!("/v1/pilots/{p1}"), hana.clone()).await, 200, "gateway {g}");
    }
    // Ida redeems through gateway 1: in force on gateway 0 at once.
    let ida = provider.sign_in("ida").await.access_token;
    assert_eq!(get(0, format!("/v1/pilots/{p2}"), ida.clone()).await, 403);
    let (_, ida_code) = redeem(1, p2.clone(), ida.clone()).await;
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

    // The first admin person, bootstrapped by `samskab invite --role admin` against the
    // running system's database (the code is the last word of stdout).
    let out = std::process::Command::new(BIN)
        .args(["invite", "--role", "admin", "--database-url", &db.url, "--data-dir"])
        .arg(&dir)
        .envs(SHARED_SECRETS)
        .output()
        .unwrap();
    assert!(out.status.success(), "samskab invite: {}", String::from_utf8_lossy(&out.stderr));
    let code = String::from_utf8(out.stdout).unwrap().split_whitespace().last().unwrap().to_owned();
    let root = provider.sign_in("root").await.access_token;
    let (st, grant) = post(1, "/v1/invitations/redeem", &root, json!({"code": code})).await;
    assert_eq!((st, grant["role"].as_str()), (200, Some("admin")), "{grant}");

    // An API key in use on both, revoked through gateway 0: refused by each within 2 s.
    let admin = root;
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

    // Neither the codes nor the key are in any table of any component's database in
    // clear (every row of every table, as text).
    for component in ["carehome", "volunteer", "booking", "gateway"] {
        let store = eventlog::EventStore::connect(&url(component)).await.unwrap();
        let dump = store.fetch_texts(DUMP, &[]).await.unwrap().concat();
        assert!(dump.len() > 1000, "{component}: the dump holds the data ({} bytes)", dump.len());
        if component == "carehome" {
            assert!(dump.contains(&chapter) && dump.contains(&key_id), "the dump reads the records");
        }
        let secrets = [&hana_code[4..], &ida_code[4..], &code[4..], &key[3..]];
        for (what, secret) in
            ["a pilot's code", "a pilot's code", "the admin's code", "the API key"].iter().zip(secrets)
        {
            assert!(!dump.contains(secret), "{what} is in {component}'s database");
        }
        store.close().await;
    }
    drop(procs);
}

/// Every row of every table in the current schema, as XML text.
const DUMP: &str = "SELECT query_to_xml(format('SELECT * FROM %I', table_name), true, false, '')::text \
    FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'";
