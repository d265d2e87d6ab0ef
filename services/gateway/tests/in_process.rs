//! Handlers tested in process: the router answers `tower::ServiceExt::oneshot` requests and
//! the care-home service is served on tonic's in-memory transport (a duplex stream, no
//! socket), on a real SQLite file. Cheaper than the end-to-end suite for what only needs
//! the gateway and two services: the audit trail comes from the object's owner and is
//! scoped by the read rules, and every call crosses the client facade.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use eventlog::EventStore;
use gateway::auth::{Claims, Role};
use gateway::{Clients, HttpConfig, Keys};
use hyper_util::rt::TokioIo;
use keystore::{KeyStore, MasterKey};
use serde_json::{Value, json};
use tonic::transport::{Channel, Endpoint, Server};
use tower::ServiceExt;
use uuid::Uuid;

/// A channel to `routes` over an in-memory duplex stream.
async fn in_memory(routes: tonic::service::Routes) -> Channel {
    let (client, server) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        Server::builder()
            .add_routes(routes)
            .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server)))
            .await
    });
    let mut client = Some(client);
    Endpoint::from_static("http://in-process")
        .connect_with_connector(tower::service_fn(move |_| {
            let io = client.take().ok_or_else(|| std::io::Error::other("one connection only"));
            async move { io.map(TokioIo::new) }
        }))
        .await
        .expect("an in-memory channel")
}

struct App {
    router: axum::Router,
    keys: Keys,
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let db = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let store = EventStore::connect(&db("carehome.db")).await.unwrap();
    let keys = KeyStore::connect(&store, MasterKey::generate()).await.unwrap();
    let carehome = carehome::CareHomeServer::start(store, keys).await.unwrap();
    let store = EventStore::connect(&db("volunteer.db")).await.unwrap();
    let keys = KeyStore::connect(&store, MasterKey::generate()).await.unwrap();
    let volunteer = volunteer::VolunteerServer::start(store, keys).await.unwrap();
    let (carehome, volunteer) = (in_memory(carehome.routes().routes).await, in_memory(volunteer.routes().routes).await);
    // Booking is not needed here: its channel leads nowhere.
    let nowhere = Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
    let clients = Clients::from_channels(nowhere, carehome, volunteer);
    let gw = EventStore::connect(&db("gateway.db")).await.unwrap();
    let gw_keys = KeyStore::connect(&gw, MasterKey::generate()).await.unwrap();
    let tokens = Keys::parse("k1=0123456789abcdef0123456789abcdef").unwrap();
    let state = gateway::state(gw, gw_keys, tokens.clone(), clients, &HttpConfig::default()).await.unwrap();
    App { router: gateway::app(state, &HttpConfig::default()), keys: tokens, _dir: dir }
}

impl App {
    fn token(&self, role: Role) -> String {
        self.keys.sign(&Claims::new(&format!("user-{}", role.name()), role, chrono::Duration::hours(1)))
    }

    async fn call(&self, method: &str, path: &str, role: Role, body: Option<Value>) -> (StatusCode, Value) {
        let mut req =
            Request::builder().method(method).uri(path).header("authorization", format!("Bearer {}", self.token(role)));
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let resp = self.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn a_care_homes_audit_trail_comes_from_its_owner_and_is_scoped() {
    let app = app().await;
    let (status, chapter) = app
        .call("POST", "/v1/chapters", Role::Admin, Some(json!({"name": "Aarhus", "timezone": "Europe/Copenhagen"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{chapter}");
    let chapter_id: Uuid = chapter["chapter_id"].as_str().unwrap().parse().unwrap();
    let home = json!({"chapter_id": chapter_id, "name": "Solgården", "address": "Parkvej 1, 8000 Aarhus",
        "ride_hours": [{"weekday": "monday", "opens": "10:00", "closes": "16:00"}],
        "turnaround_minutes": 15, "requires_confirmation": false});
    let (status, home) = app.call("POST", "/v1/carehomes", Role::ChapterAdmin(chapter_id), Some(home)).await;
    assert_eq!(status, StatusCode::CREATED, "{home}");
    let home_id: Uuid = home["carehome_id"].as_str().unwrap().parse().unwrap();

    let path = format!("/v1/audit?object_type=carehome&object_id={home_id}");
    let (status, trail) = app.call("GET", &path, Role::ChapterAdmin(chapter_id), None).await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    let items = trail["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{trail}");
    assert_eq!(items[0]["type"], "CareHomeRegistered");
    // The actor is the person a Samskab token acts for, never the token's subject itself.
    let person = app.keys.person_id(gateway::auth::ISSUER, "user-chapter_admin");
    assert_eq!(items[0]["actor"], person.to_string());
    assert_eq!(items[0]["actor_role"], "chapter_admin");
    let summary = items[0]["summary"].as_str().unwrap();
    assert!(summary.starts_with("Care home registered (1 ride-hour window"), "{summary}");
    assert!(!summary.contains("Solgården") && !summary.contains("Parkvej"), "no name or address: {summary}");

    // The read rules: its coordinator may read the home but not its trail (403); an admin
    // of another chapter may not know it exists (404, as for an unknown id).
    let (status, _) = app.call("GET", &path, Role::Coordinator(home_id), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, foreign) = app.call("GET", &path, Role::ChapterAdmin(Uuid::now_v7()), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let unknown = format!("/v1/audit?object_type=carehome&object_id={}", Uuid::now_v7());
    let (status, missing) = app.call("GET", &unknown, Role::Admin, None).await;
    assert_eq!((status, &foreign), (StatusCode::NOT_FOUND, &missing), "a foreign home looks unknown");
}
