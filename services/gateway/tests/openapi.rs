//! The OpenAPI document against the router itself: every route the router serves is in
//! the document, every documented operation is served, and the document is valid 3.1.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use eventlog::EventStore;
use gateway::{Clients, HttpConfig, Keys, ServiceUrls};
use keystore::{KeyStore, MasterKey};
use tower::ServiceExt;

async fn app() -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::connect(&format!("sqlite://{}", dir.path().join("gw.db").display())).await.unwrap();
    let keys = KeyStore::connect(&store, MasterKey::generate()).await.unwrap();
    // No services behind it: routing and documentation do not need them.
    let urls = ServiceUrls {
        booking: "http://127.0.0.1:9".into(),
        carehome: "http://127.0.0.1:9".into(),
        volunteer: "http://127.0.0.1:9".into(),
        notify: None,
    };
    let tokens = Keys::parse("k1=0123456789abcdef0123456789abcdef").unwrap();
    let state =
        gateway::state(store, keys, tokens, Clients::connect(&urls).unwrap(), &HttpConfig::default()).await.unwrap();
    (gateway::app(state, &HttpConfig::default()), dir)
}

/// The path templates the router itself holds, read from its debug description (axum
/// has no other way to list them): `{...}` parameters as axum writes them.
fn router_paths(router: &axum::Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    let mut out = BTreeSet::new();
    for part in debug.split('"') {
        if part.starts_with('/') && !part.contains(' ') {
            out.insert(part.to_owned());
        }
    }
    out
}

#[tokio::test]
async fn every_route_is_documented_and_every_operation_is_served() {
    let (router, _dir) = app().await;
    let doc_resp = router.clone().oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(doc_resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(doc_resp.into_body(), usize::MAX).await.unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();

    let served = router_paths(&router);
    let v1: BTreeSet<String> = served.iter().filter(|p| p.starts_with("/v1/")).cloned().collect();
    assert!(v1.len() >= 40, "the router's /v1 routes were found: {v1:?}");
    let undocumented: Vec<_> = v1.difference(&documented).collect();
    assert!(undocumented.is_empty(), "routes missing from /openapi.json: {undocumented:?}");

    // Every documented operation is served: without a token it is 401, never 404/405; one
    // that needs no sign-in (`security: [{}]`, the unsubscribe link) is never 404/405.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let open = op["security"] == serde_json::json!([{}]);
            let m: Method = method.to_uppercase().parse().unwrap();
            let concrete = path
                .replace("{user_id}", "u-1")
                .split('/')
                .map(|seg| {
                    if seg.starts_with('{') {
                        "01938f5e-1d2c-7b3a-9c4d-5e6f7a8b9c0d".to_owned()
                    } else {
                        seg.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let req = Request::builder()
                .method(m.clone())
                .uri(&concrete)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let resp = router.clone().oneshot(req).await.unwrap();
            if open {
                let status = resp.status();
                assert!(
                    ![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&status),
                    "{m} {concrete} ({path}) is documented but not served ({status})"
                );
                continue;
            }
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "{m} {concrete} ({path}) is documented but not served as such"
            );
        }
    }
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let (router, _dir) = app().await;
    let resp = router.oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap()).await.unwrap();
    let text = String::from_utf8(axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    let spec = oas3::from_json(&text).expect("the document parses as OpenAPI 3.1");
    assert!(spec.openapi.starts_with("3.1"), "{}", spec.openapi);
    // Every $ref resolves.
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
    // Every operation has a problem answer and a security requirement, except the ops endpoints.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["responses"].as_object().is_some_and(|r| r.len() >= 2), "{method} {path} documents its errors");
            assert!(op["security"].is_array(), "{method} {path} names its security");
        }
    }
}

fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_owned());
                    }
                } else {
                    collect_refs(v, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_docs_page_is_served_without_network() {
    let (router, _dir) = app().await;
    let resp = router.clone().oneshot(Request::get("/docs/").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = String::from_utf8(axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    assert!(html.contains("swagger-ui"), "the interactive page");
    assert!(!html.contains("https://"), "no asset is loaded from the network");
    let js = router.oneshot(Request::get("/docs/swagger-ui-bundle.js").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(js.status(), StatusCode::OK, "the page's script is served from the binary");
}
